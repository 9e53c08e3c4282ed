//! Resize: `prep_resize` (destination), `resize_instance` (source),
//! `finish_resize` (destination), then `confirm_resize` (source) or
//! `revert_resize` (destination) and `finish_revert_resize` (source), as
//! nova-compute's manager does them, each step casting the next to its host.
//!
//! On the same host (`allow_resize_to_same_host`) the container is resized in
//! place: `docker update` gives it the new flavor's memory and CPUs (within
//! its user_data options) while it runs, so its processes, memory, filesystem,
//! ports and addresses all stay; a revert gives it the old flavor's limits
//! back the same way. Placement follows Nova's scheme: during the resize the
//! migration holds the old flavor's resources and the instance the new
//! flavor's; a confirm deletes the migration's, a revert gives them back to
//! the instance.
//!
//! To another host (a cold migration, or a resize the scheduler put there)
//! the container's filesystem travels through Glance: the source stops the
//! container, unplugs its VIFs and commits it into a private, hidden image
//! (`<uuid>-migration-<migration>`), which the destination loads and runs
//! with the new flavor, its ports bound there. The source keeps its stopped
//! container until the confirm removes it (with the carrier image); a revert
//! removes the destination's and starts the source's again, its ports bound
//! back. Memory and processes do not travel (the command starts again). A
//! cold migration to the same host is refused as Nova refuses it for drivers
//! without `supports_migrate_to_same_host` (`UnableToMigrateToSelf`): the
//! migration ends in `error`, its allocations go back to the instance, the
//! instance keeps its state, and its fault says why.

use serde_json::{json, Value};
use tracing::{info, warn};

use super::action::{Expect, OnFailure};
use super::request::{MoveRequest, ResizeStep};
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::{Class, NovaException};
use crate::objects::{FlavorSlot, ImageMeta, Instance, Migration, TaskState, VmState};
use crate::virt::PowerState;

/// The `system_metadata` key of the vm_state before the resize.
const OLD_VM_STATE: &str = "old_vm_state";
/// The `system_metadata` key of the Glance image carrying a container to
/// another host, until the move is confirmed or reverted.
const CARRIER: &str = "docker_migration_image";

impl ComputeManager {
    /// One resize step, on the host Nova sent it to.
    pub async fn resize_step(
        &self,
        ctx: &RequestContext,
        step: ResizeStep,
    ) -> Result<(), NovaException> {
        match step {
            ResizeStep::Prep(m) => self.prep_resize(ctx, m).await,
            ResizeStep::Resize(m) => self.resize_instance(ctx, m).await,
            ResizeStep::Finish {
                instance,
                migration,
                disk_info,
            } => {
                self.finish_resize(ctx, instance, migration, disk_info)
                    .await
            }
            ResizeStep::Confirm {
                instance,
                migration,
            } => self.confirm_resize(ctx, instance, migration).await,
            ResizeStep::Revert {
                instance,
                migration,
                request_spec,
            } => {
                self.revert_resize(ctx, instance, migration, request_spec)
                    .await
            }
            ResizeStep::FinishRevert {
                instance,
                migration,
            } => self.finish_revert_resize(ctx, instance, migration).await,
        }
    }

    /// prep_resize (cast, on the destination): the claim.
    ///
    /// The migration names this host as its destination (`pre-migrating`),
    /// the instance stashes the new flavor (`new_flavor`) and its vm_state
    /// (`old_vm_state`), then `resize_instance` goes to the source. The task
    /// state stays `resize_prep`. A refusal (a migration to this same host):
    /// the migration in `error`, its allocations back to the instance, the
    /// task state cleared, a fault; the instance keeps its vm_state (Nova's
    /// `InstanceFaultRollback`).
    async fn prep_resize(
        &self,
        ctx: &RequestContext,
        req: MoveRequest,
    ) -> Result<(), NovaException> {
        let (mut inst, mut migration) = (req.instance.clone(), req.migration.clone());
        let next = &req;
        let action = self.begin(ctx, &inst, "prep_resize").await;
        let r = self.prep_steps(ctx, &mut inst, &mut migration, next).await;
        if r.is_err() {
            self.fail_migration(ctx, &mut migration).await;
            self.give_back_to_instance(&migration, &inst).await;
        }
        action
            .end(ctx, &mut inst, r, OnFailure::RevertTaskState)
            .await
    }

    async fn prep_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: &mut Migration,
        next: &MoveRequest,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        let Some(source) = inst.host().map(str::to_string) else {
            return Err(NovaException::nova(
                Class::MigrationError,
                "Migration error: Instance has no source host",
                json!({}),
            ));
        };
        if source == self.cfg.host && !migration.changes_flavor() {
            return Err(NovaException::nova(
                Class::UnableToMigrateToSelf,
                format!(
                    "Unable to migrate instance ({uuid}) to current host ({}).",
                    self.cfg.host
                ),
                json!({"instance_id": uuid, "host": self.cfg.host}),
            ));
        }
        let compute_id = self.node().map(|(id, _)| id);
        migration.set_destination(&self.cfg.host, compute_id, &self.cfg.my_ip);
        migration.set_status("pre-migrating");
        self.save_migration(ctx, migration).await?;
        inst.set_stashed_flavor(FlavorSlot::New, Some(next.flavor.clone()));
        let vm = inst.vm_state().unwrap_or(VmState::Active);
        inst.update_system_metadata(&[(OLD_VM_STATE, vm.as_str().to_string())], &[]);
        self.save(ctx, inst, Expect::Any).await?;
        info!(instance = %uuid, migration = migration.uuid(), "resize claimed here");
        self.conductor
            .cast_compute(
                ctx,
                &source,
                "resize_instance",
                json!({
                    "instance": inst.to_primitive(),
                    "migration": migration.to_primitive(),
                    "image": next.image,
                    "flavor": next.flavor,
                    "clean_shutdown": next.clean_shutdown,
                    "request_spec": next.request_spec,
                }),
            )
            .await
            .map_err(NovaException::from)
    }

    /// resize_instance (cast, on the source).
    ///
    /// | step        | task_state        | expected      | migration      |
    /// |-------------|-------------------|---------------|----------------|
    /// | start       | resize_migrating  | resize_prep   | migrating      |
    /// | handed over | resize_migrated   | resize_migrating | post-migrating |
    ///
    /// On the same host the container is left as it is (it is resized in
    /// place by `finish_resize`); to another host it is stopped, its VIFs
    /// unplugged, and committed into the carrier image (`disk_info` names
    /// it). The instance's host and node become the destination's,
    /// `old_flavor` its flavor, and `finish_resize` goes to the destination.
    /// A failure: the migration in `error`, the instance in ERROR with a
    /// fault (as Nova's `_error_out_instance_on_exception`).
    async fn resize_instance(
        &self,
        ctx: &RequestContext,
        req: MoveRequest,
    ) -> Result<(), NovaException> {
        let (mut inst, mut migration) = (req.instance.clone(), req.migration.clone());
        let next = &req;
        let action = self.begin(ctx, &inst, "resize_instance").await;
        let r = self
            .resize_steps(ctx, &mut inst, &mut migration, next)
            .await;
        if r.is_err() {
            self.fail_migration(ctx, &mut migration).await;
        }
        action.end(ctx, &mut inst, r, OnFailure::Error).await
    }

    async fn resize_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: &mut Migration,
        next: &MoveRequest,
    ) -> Result<(), NovaException> {
        migration.set_status("migrating");
        self.save_migration(ctx, migration).await?;
        inst.set_task_state(Some(TaskState::ResizeMigrating));
        self.save(ctx, inst, Expect::One(TaskState::ResizePrep))
            .await?;
        let Some(dest) = migration.dest_compute().map(str::to_string) else {
            return Err(NovaException::nova(
                Class::MigrationError,
                "Migration error: the migration names no destination",
                json!({}),
            ));
        };
        let disk_info = if migration.same_host() {
            Value::Null
        } else {
            json!(self.ship_container(ctx, inst, migration, next).await?)
        };
        migration.set_status("post-migrating");
        self.save_migration(ctx, migration).await?;
        let current = inst.flavor_primitive(FlavorSlot::Current);
        inst.set_stashed_flavor(FlavorSlot::Old, current);
        inst.set_host_and_node(Some(&dest), migration.dest_compute_id());
        inst.set_task_state(Some(TaskState::ResizeMigrated));
        self.save(ctx, inst, Expect::One(TaskState::ResizeMigrating))
            .await?;
        self.conductor
            .cast_compute(
                ctx,
                &dest,
                "finish_resize",
                json!({
                    "instance": inst.to_primitive(),
                    "migration": migration.to_primitive(),
                    "image": next.image,
                    "disk_info": disk_info,
                    "request_spec": next.request_spec,
                }),
            )
            .await
            .map_err(NovaException::from)
    }

    /// finish_resize (cast, on the destination).
    ///
    /// | step   | vm_state     | task_state    | expected        | migration |
    /// |--------|--------------|---------------|-----------------|-----------|
    /// | start  | (as it was)  | resize_finish | resize_migrated |           |
    /// | done   | resized      | none          | resize_finish   | finished  |
    ///
    /// The instance takes its new flavor (`flavor`, `memory_mb`, `vcpus`,
    /// ...; the old one stays in `old_flavor`) and the container its limits,
    /// in place; or, come from another host, the ports are bound here and the
    /// container made from the carrier image with the new flavor and wired
    /// (ACTIVE waits for `network-vif-plugged`, as a build). The server is
    /// then VERIFY_RESIZE until a confirm or revert.
    /// A failure: the old flavor back in the record, the migration in
    /// `error`, its allocations removed (as Nova's), the instance in ERROR.
    async fn finish_resize(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        mut migration: Migration,
        disk_info: Option<String>,
    ) -> Result<(), NovaException> {
        let action = self.begin(ctx, &inst, "finish_resize").await;
        let old = inst.flavor_primitive(FlavorSlot::Current);
        let r = self
            .finish_steps(ctx, &mut inst, &mut migration, disk_info.as_deref())
            .await;
        if r.is_err() {
            if !migration.same_host() {
                self.undo_spawn(&inst).await;
            }
            if let Some(old) = &old {
                inst.set_current_flavor(old);
            }
            self.fail_migration(ctx, &mut migration).await;
            self.remove_allocations(migration.uuid()).await;
        }
        action.end(ctx, &mut inst, r, OnFailure::Error).await
    }

    async fn finish_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: &mut Migration,
        disk_info: Option<&str>,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        let current = inst.flavor_primitive(FlavorSlot::Current);
        inst.set_stashed_flavor(FlavorSlot::Old, current);
        let new = inst.flavor_primitive(FlavorSlot::New).ok_or_else(|| {
            NovaException::nova(
                Class::MigrationError,
                "Migration error: the instance has no new flavor",
                json!({}),
            )
        })?;
        inst.set_current_flavor(&new);
        inst.set_task_state(Some(TaskState::ResizeFinish));
        self.save(ctx, inst, Expect::One(TaskState::ResizeMigrated))
            .await?;
        let info = if migration.same_host() {
            self.resize_container(ctx, inst).await?
        } else {
            self.land_container(ctx, inst, disk_info).await?
        };
        migration.set_status("finished");
        self.save_migration(ctx, migration).await?;
        inst.set_power_state(info.state);
        inst.set_vm_state(VmState::Resized);
        inst.set_task_state(None);
        inst.set_launched_at_now();
        self.save(ctx, inst, Expect::One(TaskState::ResizeFinish))
            .await?;
        info!(instance = %uuid, memory_mb = inst.memory_mb(), vcpus = inst.vcpus(), "resized: VERIFY_RESIZE");
        Ok(())
    }

    /// confirm_resize (cast, on the source).
    ///
    /// A migration confirmed already, or not `finished`/`confirming`, is
    /// left (as Nova does). Otherwise the migration is `confirmed`, the
    /// instance ACTIVE (STOPPED when its container is), with no task state
    /// (expected none, deleting or soft-deleting); in every case the
    /// migration's allocations (the old flavor's) are removed and the
    /// stashed flavors and `old_vm_state` cleared.
    async fn confirm_resize(
        &self,
        ctx: &RequestContext,
        inst: Instance,
        mut migration: Migration,
    ) -> Result<(), NovaException> {
        match migration.status() {
            "confirmed" => {
                info!(instance = inst.uuid(), "the resize is confirmed already");
                return Ok(());
            }
            "finished" | "confirming" => {}
            other => {
                warn!(
                    instance = inst.uuid(),
                    status = other,
                    "a confirmation of a migration in an unexpected status: not confirming"
                );
                return Ok(());
            }
        }
        let mut inst = match self.conductor.instance_get(ctx, inst.uuid()).await {
            Ok(i) => i,
            Err(e) => {
                let e = NovaException::from(e);
                if e.instance_gone() {
                    info!(
                        instance = inst.uuid(),
                        "the instance is gone: nothing to confirm"
                    );
                    return Ok(());
                }
                return Err(e);
            }
        };
        let action = self.begin(ctx, &inst, "confirm_resize").await;
        let r = async {
            if !migration.same_host() {
                // this host's stopped container, and the carrier
                self.driver
                    .destroy(inst.uuid(), std::time::Duration::ZERO)
                    .await?;
                self.network.unplug(&inst, inst.network_info()).await?;
                self.drop_carrier(ctx, &mut inst).await;
            }
            migration.set_status("confirmed");
            self.save_migration(ctx, &mut migration).await?;
            // the container the instance runs in (the destination's, as the
            // database has it, after a move)
            let state = match migration.same_host() {
                true => self
                    .driver
                    .get_info(inst.uuid())
                    .await
                    .map(|i| i.state)
                    .unwrap_or(inst.power_state()),
                false => inst.power_state(),
            };
            inst.set_vm_state(if state == PowerState::Shutdown {
                VmState::Stopped
            } else {
                VmState::Active
            });
            inst.set_task_state(None);
            self.save(
                ctx,
                &mut inst,
                Expect::NoneOrOneOf(&[TaskState::Deleting, TaskState::SoftDeleting]),
            )
            .await
        }
        .await;
        self.remove_allocations(migration.uuid()).await;
        self.clear_stashed_flavors(ctx, &mut inst).await;
        if r.is_ok() {
            info!(instance = inst.uuid(), "resize confirmed");
        }
        action.end(ctx, &mut inst, r, OnFailure::Error).await
    }

    /// revert_resize (cast, on the destination): what the destination made
    /// goes (its container and VIFs; on the same host nothing, the container
    /// is the instance's own), the migration is `reverted`, and
    /// `finish_revert_resize` goes to the source. A failure puts the
    /// instance in ERROR.
    async fn revert_resize(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        mut migration: Migration,
        request_spec: Option<Value>,
    ) -> Result<(), NovaException> {
        let action = self.begin(ctx, &inst, "revert_resize").await;
        let r = async {
            let source = migration
                .source_compute()
                .map(str::to_string)
                .ok_or_else(|| {
                    NovaException::nova(
                        Class::MigrationError,
                        "Migration error: the migration names no source",
                        json!({}),
                    )
                })?;
            if !migration.same_host() {
                self.load_network_info(ctx, &mut inst).await?;
                self.driver
                    .destroy(inst.uuid(), std::time::Duration::ZERO)
                    .await?;
                self.network.unplug(&inst, inst.network_info()).await?;
            }
            migration.set_status("reverted");
            self.save_migration(ctx, &mut migration).await?;
            self.conductor
                .cast_compute(
                    ctx,
                    &source,
                    "finish_revert_resize",
                    json!({
                        "instance": inst.to_primitive(),
                        "migration": migration.to_primitive(),
                        "request_spec": request_spec,
                    }),
                )
                .await
                .map_err(NovaException::from)
        }
        .await;
        action.end(ctx, &mut inst, r, OnFailure::Error).await
    }

    /// finish_revert_resize (cast, on the source).
    ///
    /// The old flavor back (`flavor`, `memory_mb`, ...), host and node the
    /// source's; the migration's allocations given back to the instance; the
    /// container's limits the old flavor's again, in place (come back from
    /// another host: the ports bound here again and the kept container
    /// started and wired, the carrier image deleted); then the
    /// vm_state from before the resize (ACTIVE, or STOPPED), no task state
    /// (expected `resize_reverting`). The stashed flavors and `old_vm_state`
    /// are cleared in every case. A failure puts the instance in ERROR.
    async fn finish_revert_resize(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        migration: Migration,
    ) -> Result<(), NovaException> {
        let action = self.begin(ctx, &inst, "finish_revert_resize").await;
        let r = self.finish_revert_steps(ctx, &mut inst, &migration).await;
        self.clear_stashed_flavors(ctx, &mut inst).await;
        action.end(ctx, &mut inst, r, OnFailure::Error).await
    }

    async fn finish_revert_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: &Migration,
    ) -> Result<(), NovaException> {
        let old_vm = inst
            .system_metadata_value(OLD_VM_STATE)
            .and_then(|s| VmState::parse(&s))
            .unwrap_or(VmState::Active);
        if let Some(old) = inst.flavor_primitive(FlavorSlot::Old) {
            inst.set_current_flavor(&old);
        }
        let compute_id = self.node().map(|(id, _)| id);
        inst.set_host_and_node(
            Some(migration.source_compute().unwrap_or(&self.cfg.host)),
            compute_id,
        );
        self.save(ctx, inst, Expect::One(TaskState::ResizeReverting))
            .await?;
        self.give_back_to_instance(migration, inst).await;
        let info = if migration.same_host() {
            self.resize_container(ctx, inst).await?
        } else {
            self.restart_kept_container(ctx, inst, old_vm).await?
        };
        inst.set_power_state(info.state);
        inst.set_vm_state(if old_vm == VmState::Stopped {
            VmState::Stopped
        } else {
            VmState::Active
        });
        inst.set_task_state(None);
        inst.set_launched_at_now();
        self.save(ctx, inst, Expect::One(TaskState::ResizeReverting))
            .await?;
        info!(
            instance = inst.uuid(),
            memory_mb = inst.memory_mb(),
            vcpus = inst.vcpus(),
            "resize reverted"
        );
        Ok(())
    }

    /// The source's part of a move to another host: the container stopped
    /// (within `shutdown_timeout` for a clean shutdown), its VIFs unplugged,
    /// committed into a new carrier image; its id (also kept in the
    /// instance's `system_metadata` until the confirm or revert).
    async fn ship_container(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: &Migration,
        next: &MoveRequest,
    ) -> Result<String, NovaException> {
        let uuid = inst.uuid().to_string();
        let state = self.stop_container(&uuid, next.clean_shutdown).await?;
        inst.set_power_state(state);
        self.load_network_info(ctx, inst).await?;
        self.network.unplug(inst, inst.network_info()).await?;
        let name = format!("{uuid}-migration-{}", migration.uuid());
        let image = self.images.create_image(ctx, inst, &name).await?;
        self.images
            .snapshot(ctx, inst, &image, &super::SnapshotKind::Snapshot)
            .await?;
        inst.update_system_metadata(&[(CARRIER, image.clone())], &[]);
        info!(instance = %uuid, image = %image, to = ?migration.dest_compute(), "container committed for the move");
        Ok(image)
    }

    /// The destination's part of a move from another host: the ports bound
    /// here (the info cache saved), the container made from the carrier
    /// image named by `disk_info` with the instance's (new) flavor and
    /// options, wired; stopped again if the instance was.
    async fn land_container(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        disk_info: Option<&str>,
    ) -> Result<crate::virt::InstanceInfo, NovaException> {
        let uuid = inst.uuid().to_string();
        let carrier = disk_info
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .or_else(|| inst.system_metadata_value(CARRIER))
            .ok_or_else(|| {
                NovaException::nova(
                    Class::MigrationError,
                    "Migration error: the move names no image carrying the container",
                    json!({}),
                )
            })?;
        self.bind_ports_here(ctx, inst).await?;
        let image = ImageMeta::from_system_metadata(Some(&carrier), &inst.system_metadata());
        let info = self.spawn_from(ctx, inst, &image).await?;
        let stopped = inst.system_metadata_value(OLD_VM_STATE).as_deref() == Some("stopped");
        if stopped {
            return Ok(self
                .driver
                .power_off(&uuid, self.cfg.shutdown_timeout)
                .await?);
        }
        info!(instance = %uuid, image = %carrier, "container made here from the moved one");
        Ok(info)
    }

    /// A revert of a move to another host, on the source: the ports bound
    /// here again, the kept container started (unless the instance was
    /// stopped) and wired, the carrier image deleted.
    async fn restart_kept_container(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        old_vm: VmState,
    ) -> Result<crate::virt::InstanceInfo, NovaException> {
        let uuid = inst.uuid().to_string();
        self.bind_ports_here(ctx, inst).await?;
        let info = if old_vm == VmState::Stopped {
            self.driver.get_info(&uuid).await?
        } else {
            let info = self.driver.power_on(&uuid).await?;
            self.rewire(inst, &info).await?;
            info
        };
        self.drop_carrier(ctx, inst).await;
        Ok(info)
    }

    /// The carrier image of a move deleted and forgotten (logged on failure).
    async fn drop_carrier(&self, ctx: &RequestContext, inst: &mut Instance) {
        if let Some(id) = inst.system_metadata_value(CARRIER) {
            if let Err(e) = self.images.delete_image(ctx, &id).await {
                warn!(instance = inst.uuid(), image = %id, error = %e, "could not delete the image that carried the container");
            }
            inst.update_system_metadata(&[], &[CARRIER]);
        }
    }

    /// The container given the limits of the instance's flavor, in place.
    async fn resize_container(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
    ) -> Result<crate::virt::InstanceInfo, NovaException> {
        let image = ImageMeta::from_system_metadata(inst.image_ref(), &inst.system_metadata());
        let spec = self.instance_spec(ctx, inst, &image, None).await?;
        Ok(self.driver.resize(&spec).await?)
    }

    /// `migration.save()`.
    pub(crate) async fn save_migration(
        &self,
        ctx: &RequestContext,
        migration: &mut Migration,
    ) -> Result<(), NovaException> {
        self.conductor
            .object_action(ctx, migration.object_mut(), "save", json!({}))
            .await?;
        migration.object_mut().reset_changes();
        Ok(())
    }

    /// `errors_out_migration`: the migration in `error` (logged if it
    /// cannot be saved).
    async fn fail_migration(&self, ctx: &RequestContext, migration: &mut Migration) {
        self.fail_migration_as(ctx, migration, "error").await
    }

    /// The migration in `status` after a failure (logged if it cannot be
    /// saved).
    pub(crate) async fn fail_migration_as(
        &self,
        ctx: &RequestContext,
        migration: &mut Migration,
        status: &str,
    ) {
        migration.set_status(status);
        if let Err(e) = self.save_migration(ctx, migration).await {
            warn!(migration = migration.uuid(), error = %e, "could not record the migration's failure");
        }
    }

    /// `_revert_allocation`: what the migration holds goes back to the
    /// instance (logged if placement refuses).
    async fn give_back_to_instance(&self, migration: &Migration, inst: &Instance) {
        if let Some(p) = &self.placement {
            if let Err(e) = p.move_allocations(migration.uuid(), inst.uuid()).await {
                warn!(instance = inst.uuid(), migration = migration.uuid(), error = %e,
                    "could not give the migration's allocations back to the instance");
            }
        }
    }

    /// `_delete_stashed_flavor_info`: `old_flavor`, `new_flavor` and
    /// `old_vm_state` cleared, saved (logged if it cannot be).
    async fn clear_stashed_flavors(&self, ctx: &RequestContext, inst: &mut Instance) {
        inst.set_stashed_flavor(FlavorSlot::Old, None);
        inst.set_stashed_flavor(FlavorSlot::New, None);
        inst.update_system_metadata(&[], &[OLD_VM_STATE]);
        if let Err(e) = self.save(ctx, inst, Expect::Any).await {
            if !e.instance_gone() {
                warn!(instance = inst.uuid(), error = %e, "could not clear the stashed flavors");
            }
        }
    }
}
