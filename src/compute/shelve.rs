//! `shelve_instance`, `shelve_offload_instance`, `unshelve_instance`: the
//! container committed to the Glance image Nova's API made for it, the host
//! given back, and the container made again (here or on another host) from
//! that image with the instance's ports, as nova-compute's `_shelve_instance`,
//! `_shelve_offload_instance` and `_unshelve_instance` do.
//!
//! What a container keeps: its filesystem (every change since it was made is
//! in the image) and its ports and addresses; its memory and processes do not
//! survive (the command starts again, as after a stop and start).
//!
//! An unshelve of an instance shelved but not offloaded is a
//! `start_instance` (the conductor sends that); its end deletes the shelved
//! image and the `shelved_*` keys, as here ([`take_shelved_image`],
//! [`ComputeManager::delete_shelved_image`]).

use tracing::{info, warn};

use super::action::{Expect, OnFailure};
use super::request::{ShelveRequest, SnapshotKind, UnshelveRequest};
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{ImageMeta, Instance, TaskState, VmState};
use crate::virt::PowerState;

/// The `system_metadata` keys of a shelved instance
/// (`compute_utils.remove_shelved_keys_from_system_metadata`).
const SHELVED_KEYS: &[&str] = &["shelved_at", "shelved_image_id", "shelved_host"];

/// When a shelved instance is offloaded (`[DEFAULT] shelved_offload_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShelvedOffload {
    /// 0 (Nova's default): right after the shelve.
    AtOnce,
    /// > 0: by the periodic task, this long after the shelve.
    After(std::time::Duration),
    /// -1: never (the instance keeps its host until unshelved or deleted).
    Never,
}

impl ShelvedOffload {
    pub fn from_secs(s: i64) -> Self {
        match s {
            0 => ShelvedOffload::AtOnce,
            s if s < 0 => ShelvedOffload::Never,
            s => ShelvedOffload::After(std::time::Duration::from_secs(s as u64)),
        }
    }
}

impl ComputeManager {
    /// shelve_instance (cast).
    ///
    /// | step            | vm_state | task_state                     | expected                       |
    /// |-----------------|----------|--------------------------------|--------------------------------|
    /// | (API)           | active   | shelving                       |                                |
    /// | stopped         | active   | shelving_image_pending_upload  | shelving                       |
    /// | uploading       | active   | shelving_image_uploading       | shelving_image_pending_upload  |
    /// | done            | shelved  | none (shelving_offloading with `shelved_offload_time = 0`) | shelving, shelving_image_uploading |
    ///
    /// The container is stopped (at once when paused, or when the API asked
    /// for no clean shutdown) and committed into `image_id`; the
    /// `system_metadata` gets `shelved_at`, `shelved_image_id` and
    /// `shelved_host`. Then, with `shelved_offload_time = 0`, the offload
    /// below. A failure reverts the task state, with a fault; the half-written
    /// image is deleted (as a snapshot's).
    pub async fn shelve_instance(
        &self,
        ctx: &RequestContext,
        req: ShelveRequest,
    ) -> Result<(), NovaException> {
        let mut inst = req.instance.clone();
        let action = self
            .begin_writing(ctx, &inst, "shelve_instance", Some(&req.image_id))
            .await;
        let r = async {
            self.shelve_steps(ctx, &mut inst, &req).await?;
            if self.cfg.shelved_offload != ShelvedOffload::AtOnce {
                return Ok(());
            }
            // within the shelve's own action event, as Nova's shelve calls
            // `_shelve_offload_instance`
            let n = "instance.shelve_offload";
            self.notify(ctx, n, "start", &inst, None, None).await;
            self.offload_steps(ctx, &mut inst, false).await?;
            self.notify(ctx, n, "end", &inst, None, None).await;
            Ok(())
        }
        .await;
        action
            .end(ctx, &mut inst, r, OnFailure::RevertTaskState)
            .await
    }

    async fn shelve_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        req: &ShelveRequest,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        let clean = req.clean_shutdown && inst.power_state() != PowerState::Paused;
        let info = self.stop_container(&uuid, clean).await?;
        inst.set_power_state(info);
        inst.set_task_state(Some(TaskState::ShelvingImagePendingUpload));
        self.save(ctx, inst, Expect::One(TaskState::Shelving))
            .await?;
        inst.set_task_state(Some(TaskState::ShelvingImageUploading));
        self.save(
            ctx,
            inst,
            Expect::One(TaskState::ShelvingImagePendingUpload),
        )
        .await?;
        self.images
            .snapshot(ctx, inst, &req.image_id, &SnapshotKind::Snapshot)
            .await?;
        inst.update_system_metadata(
            &[
                (
                    "shelved_at",
                    // Nova's `utcnow().isoformat()`
                    chrono::Utc::now()
                        .naive_utc()
                        .format("%Y-%m-%dT%H:%M:%S%.6f")
                        .to_string(),
                ),
                ("shelved_image_id", req.image_id.clone()),
                ("shelved_host", self.cfg.host.clone()),
            ],
            &[],
        );
        inst.set_vm_state(VmState::Shelved);
        inst.set_task_state(match self.cfg.shelved_offload {
            ShelvedOffload::AtOnce => Some(TaskState::ShelvingOffloading),
            _ => None,
        });
        self.save(
            ctx,
            inst,
            Expect::OneOf(&[TaskState::Shelving, TaskState::ShelvingImageUploading]),
        )
        .await?;
        info!(instance = %uuid, image = %req.image_id, "shelved");
        Ok(())
    }

    /// shelve_offload_instance (cast), and the end of a shelve with
    /// `shelved_offload_time = 0`.
    ///
    /// The container stopped and removed with its VIFs, the ports unbound
    /// from this host (still the instance's), the placement allocations
    /// removed; then vm_state `shelved_offloaded`, no task state (expected
    /// `shelving` or `shelving_offloading`), and host and node cleared. A
    /// failure reverts the task state, with a fault.
    pub async fn shelve_offload_instance(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        clean_shutdown: bool,
    ) -> Result<(), NovaException> {
        let action = self.begin(ctx, &inst, "shelve_offload_instance").await;
        let r = self.offload_steps(ctx, &mut inst, clean_shutdown).await;
        action
            .end(ctx, &mut inst, r, OnFailure::RevertTaskState)
            .await
    }

    async fn offload_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        clean: bool,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        let state = match self.stop_container(&uuid, clean).await {
            Ok(s) => s,
            // gone already (removed by hand): there is nothing to stop
            Err(e) if e.is(crate::exception::Class::InstanceNotFound) => PowerState::NoState,
            Err(e) => return Err(e),
        };
        self.load_network_info(ctx, inst).await?;
        self.network_api.unbind_ports(ctx, inst).await?;
        self.driver
            .destroy(&uuid, std::time::Duration::ZERO)
            .await?;
        self.network.unplug(inst, inst.network_info()).await?;
        // before the state changes: a client that waits for SHELVED_OFFLOADED
        // to boot more finds the resources free
        self.remove_allocations(&uuid).await;
        inst.set_power_state(state);
        inst.set_vm_state(VmState::ShelvedOffloaded);
        inst.set_task_state(None);
        self.save(
            ctx,
            inst,
            Expect::OneOf(&[TaskState::Shelving, TaskState::ShelvingOffloading]),
        )
        .await?;
        inst.set_host_and_node(None, None);
        self.save(ctx, inst, Expect::Any).await?;
        info!(instance = %uuid, "shelved instance offloaded");
        Ok(())
    }

    /// unshelve_instance (cast), to the host the conductor chose.
    ///
    /// | step         | vm_state          | task_state | expected  |
    /// |--------------|-------------------|------------|-----------|
    /// | (conductor)  | shelved_offloaded | unshelving |           |
    /// | claim        | shelved_offloaded | spawning   | (none)    |
    /// | done         | active            | none       | spawning  |
    ///
    /// The claim takes the instance to this host (host, node); its ports are
    /// bound here and the info cache saved; the container is made from the
    /// shelved image with the instance's options and wired, and ACTIVE waits
    /// for its ports' `network-vif-plugged` as a build does. Then the shelved
    /// image is deleted and the `shelved_*` keys removed. A failure: a fault,
    /// no container or VIF left, the ports unbound, the allocations the
    /// conductor made here removed, host and node cleared, the task state
    /// reverted (the instance stays SHELVED_OFFLOADED, to be unshelved again).
    pub async fn unshelve_instance(
        &self,
        ctx: &RequestContext,
        req: UnshelveRequest,
    ) -> Result<(), NovaException> {
        let mut inst = req.instance.clone();
        let action = self.begin(ctx, &inst, "unshelve_instance").await;
        let shelved_ref = inst.image_ref().map(str::to_string);
        let r = self.unshelve_steps(ctx, &mut inst, &req).await;
        if r.is_err() {
            self.undo_spawn(&inst).await;
            if let Err(e) = self.network_api.unbind_ports(ctx, &inst).await {
                warn!(instance = inst.uuid(), error = %e, "could not unbind the ports of a failed unshelve");
            }
            self.remove_allocations(inst.uuid()).await;
            if let Some(r) = &shelved_ref {
                inst.set_image_ref(r);
            }
            inst.set_host_and_node(None, None);
        }
        action
            .end(ctx, &mut inst, r, OnFailure::RevertTaskState)
            .await
    }

    async fn unshelve_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        req: &UnshelveRequest,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        inst.set_task_state(Some(TaskState::Spawning));
        let compute_id = self.node().map(|(id, _)| id);
        inst.set_host_and_node(Some(&self.cfg.host), compute_id);
        self.save(ctx, inst, Expect::Any).await?;
        let image = match &req.image {
            Some(i) => i.clone(),
            None => ImageMeta::from_system_metadata(inst.image_ref(), &inst.system_metadata()),
        };
        self.bind_ports_here(ctx, inst).await?;
        info!(instance = %uuid, image = ?image.id, vifs = inst.network_info().len(), "unshelving");
        let info = self.spawn_from(ctx, inst, &image).await?;
        inst.set_power_state(info.state);
        inst.set_vm_state(VmState::Active);
        inst.set_task_state(None);
        inst.set_launched_at_now();
        let shelved = take_shelved_image(inst).or(image.id.clone());
        self.save(ctx, inst, Expect::One(TaskState::Spawning))
            .await?;
        info!(instance = %uuid, "unshelved: instance is ACTIVE");
        self.delete_shelved_image(ctx, &uuid, shelved.as_deref())
            .await;
        Ok(())
    }

    /// `_delete_snapshot_of_shelved_instance`, once the instance that was
    /// shelved runs again (and that is saved): a failure is logged only, as
    /// in Nova.
    pub(crate) async fn delete_shelved_image(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        image_id: Option<&str>,
    ) {
        let Some(id) = image_id else {
            return;
        };
        match self.images.delete_image(ctx, id).await {
            Ok(()) => info!(instance = uuid, image = %id, "the shelved image is deleted"),
            Err(e) => {
                warn!(instance = uuid, image = %id, error = %e, "could not delete the shelved image")
            }
        }
    }

    /// `_poll_shelved_instances`: with `shelved_offload_time` > 0, the
    /// instances of this host shelved longer than that are offloaded.
    pub async fn offload_shelved(&self) {
        let ShelvedOffload::After(after) = self.cfg.shelved_offload else {
            return;
        };
        let ctx = RequestContext::admin();
        let Some(list) = self.our_instances(&ctx).await else {
            return;
        };
        let now = chrono::Utc::now().naive_utc();
        for mut inst in list {
            if inst.vm_state() != Some(VmState::Shelved) || inst.task_state().is_some() {
                continue;
            }
            let due = inst
                .system_metadata_value("shelved_at")
                .and_then(|t| parse_shelved_at(&t))
                .is_some_and(|at| (now - at).to_std().is_ok_and(|d| d >= after));
            if !due {
                continue;
            }
            inst.set_task_state(Some(TaskState::ShelvingOffloading));
            if let Err(e) = self.save(&ctx, &mut inst, Expect::Unset).await {
                info!(instance = inst.uuid(), error = %e, "not offloading the shelved instance");
                continue;
            }
            info!(
                instance = inst.uuid(),
                "offloading an instance shelved for longer than shelved_offload_time"
            );
            let _ = self.shelve_offload_instance(&ctx, inst, true).await;
        }
    }
}

/// The `shelved_*` keys removed from the instance's `system_metadata` (saved
/// with its next save); the shelved image they named.
pub(crate) fn take_shelved_image(inst: &mut Instance) -> Option<String> {
    let id = inst.system_metadata_value("shelved_image_id");
    if SHELVED_KEYS
        .iter()
        .any(|k| inst.system_metadata_value(k).is_some())
    {
        inst.update_system_metadata(&[], SHELVED_KEYS);
    }
    id
}

/// `shelved_at` as Nova writes it (`isoformat()`: `2026-11-22T18:48:51.877378`).
fn parse_shelved_at(s: &str) -> Option<chrono::NaiveDateTime> {
    let s = s.trim_end_matches('Z');
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shelved_at_is_read_as_nova_writes_it() {
        let nova = parse_shelved_at("2026-11-22T18:48:51.877378").unwrap();
        let ours = nova.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        assert_eq!(ours, "2026-11-22T18:48:51.877378");
        assert!(parse_shelved_at("yesterday").is_none());
        assert_eq!(ShelvedOffload::from_secs(0), ShelvedOffload::AtOnce);
        assert_eq!(ShelvedOffload::from_secs(-1), ShelvedOffload::Never);
        assert_eq!(
            ShelvedOffload::from_secs(60),
            ShelvedOffload::After(std::time::Duration::from_secs(60))
        );
    }
}
