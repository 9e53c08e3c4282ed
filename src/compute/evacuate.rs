//! Evacuation: the instances of a host that is down (its service forced
//! down) rebuilt on another host from their image, with the same ports and
//! addresses (`rebuild_instance` with `recreate`, on the destination); and,
//! when the failed host comes back, its leftovers removed at start-up
//! (Nova's `_destroy_evacuated_instances`): the evacuated instances'
//! containers and VIFs there (never started), their allocations on its
//! provider, the migrations `completed`.
//!
//! What a container keeps: its ports and addresses. Its filesystem is its
//! image's again (the one it had is on the failed host, and goes), and its
//! memory and processes start anew.

use serde_json::json;
use tracing::{info, warn};

use super::action::Expect;
use super::power::PowerOp;
use super::request::RebuildRequest;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{Instance, Migration, NovaObject, TaskState, VmState};
use crate::virt::PowerState;

impl ComputeManager {
    /// The destination's part, inside `rebuild_instance`'s action.
    ///
    /// | step          | vm_state  | task_state                   | expected                     |
    /// |---------------|-----------|------------------------------|------------------------------|
    /// | claim         | (as was)  | rebuilding                   | rebuilding                   |
    /// | ports here    | (as was)  | rebuild_block_device_mapping | rebuilding                   |
    /// | spawn         | (as was)  | rebuild_spawning             | rebuild_block_device_mapping |
    /// | done          | active    | none (host, node: this one)  | rebuild_spawning             |
    ///
    /// The migration is `pre-migrating` with this host as its destination,
    /// then `done`. The ports are bound here (info cache saved), the container
    /// made from the instance's image with its options, wired, and ACTIVE
    /// waits for `network-vif-plugged` as a build does; then it is stopped
    /// when the API asked for that (`target_state`, API 2.95) or it was. A failure ([`Self::evacuation_failed`]): no
    /// container or VIF left here, the migration `failed`, this host's part of
    /// the allocation removed, the instance in ERROR.
    pub(crate) async fn evacuate_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        req: &RebuildRequest,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        // `_do_rebuild_instance`: the API's target state (2.95: stopped)
        // unless the instance was in ERROR, else the state it had
        let end_stopped = match (req.target_state, inst.vm_state()) {
            (Some(t), v) if v != Some(VmState::Error) => t == VmState::Stopped,
            (_, v) => v == Some(VmState::Stopped),
        };
        let mut migration = req.migration.clone();
        let compute_id = self.node().map(|(id, _)| id);
        if let Some(m) = &mut migration {
            m.set_destination(&self.cfg.host, compute_id, &self.cfg.my_ip);
            m.set_status("pre-migrating");
            self.save_migration(ctx, m).await?;
        }
        info!(instance = %uuid, from = ?inst.host(), "evacuating the instance to this host");
        inst.set_power_state(PowerState::NoState);
        inst.set_task_state(Some(TaskState::Rebuilding));
        self.save(ctx, inst, Expect::One(TaskState::Rebuilding))
            .await?;
        self.bind_ports_here(ctx, inst).await?;
        inst.set_task_state(Some(TaskState::RebuildBlockDeviceMapping));
        self.save(ctx, inst, Expect::One(TaskState::Rebuilding))
            .await?;
        inst.set_task_state(Some(TaskState::RebuildSpawning));
        self.save(ctx, inst, Expect::One(TaskState::RebuildBlockDeviceMapping))
            .await?;
        let spec = self.instance_spec(ctx, inst, &req.image, None).await?;
        let info = self.spawn_wired(ctx, inst, spec).await?;
        inst.set_power_state(info.state);
        inst.set_vm_state(VmState::Active);
        inst.set_task_state(None);
        inst.set_launched_at_now();
        // `finish_evacuation`: the instance is this host's
        inst.set_host_and_node(Some(&self.cfg.host), compute_id);
        self.save(ctx, inst, Expect::One(TaskState::RebuildSpawning))
            .await?;
        if let Some(m) = &mut migration {
            m.set_status("done");
            self.save_migration(ctx, m).await?;
        }
        info!(instance = %uuid, "evacuated here: instance is ACTIVE");
        if end_stopped {
            info!(instance = %uuid, "bringing the evacuated instance to its target state: stopped");
            inst.set_task_state(Some(TaskState::PoweringOff));
            self.save(ctx, inst, Expect::Any).await?;
            self.power_steps(ctx, PowerOp::Stop, inst).await?;
        }
        Ok(())
    }

    /// What a failed evacuation leaves undone here: its container and VIFs,
    /// the migration `failed`, this host's part of the instance's allocation.
    pub(crate) async fn evacuation_failed(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        req: &RebuildRequest,
    ) {
        self.undo_spawn(inst).await;
        if let Some(m) = &req.migration {
            let mut m = m.clone();
            self.fail_migration_as(ctx, &mut m, "failed").await;
        }
        self.remove_our_part_of(inst.uuid()).await;
    }

    /// This host's provider removed from `consumer`'s allocation (logged if
    /// placement refuses).
    async fn remove_our_part_of(&self, consumer: &str) {
        let (Some(p), Some((_, rp))) = (&self.placement, self.node()) else {
            return;
        };
        if let Err(e) = p.remove_provider_from_allocation(consumer, &rp).await {
            warn!(instance = consumer, error = %e, "could not remove this host's part of the allocation");
        }
    }

    /// `_destroy_evacuated_instances`, at start-up: for each evacuation away
    /// from this host (`accepted`, `pre-migrating` or `done`), the container
    /// left here removed with its VIFs (never started), this host's part of
    /// the instance's allocation removed, the migration `completed`.
    pub async fn destroy_evacuated(&self) {
        let mut ctx = RequestContext::admin();
        ctx.read_deleted = "yes".into();
        let filters = json!({"filters": {
            "source_compute": self.cfg.host,
            "status": ["accepted", "pre-migrating", "done"],
            "migration_type": "evacuation",
        }});
        let list = match self
            .conductor
            .object_class_action(&ctx, "MigrationList", "get_by_filters", vec![], filters)
            .await
            .map_err(NovaException::from)
            .and_then(|v| {
                NovaObject::from_primitive(&v)
                    .and_then(|l| l.list_objects())
                    .map_err(|e| NovaException::internal(e.to_string()))
            }) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "start-up: cannot list the evacuations from this host");
                return;
            }
        };
        for obj in list {
            let Ok(mut m) = Migration::from_primitive(&obj.to_primitive()) else {
                continue;
            };
            let Some(uuid) = m.object().get_str("instance_uuid").map(str::to_string) else {
                continue;
            };
            let lock = self.instance_lock(&uuid);
            let _g = lock.lock().await;
            let inst = self.conductor.instance_get(&ctx, &uuid).await.ok();
            if self.driver.get_info(&uuid).await.is_ok() {
                info!(instance = %uuid, now_on = ?inst.as_ref().and_then(|i| i.host()),
                    "start-up: removing the container of an instance evacuated from this host");
                if let Err(e) = self.driver.destroy(&uuid, std::time::Duration::ZERO).await {
                    warn!(instance = %uuid, error = %e, "start-up: could not remove an evacuated instance's container");
                    continue;
                }
                if let Some(i) = &inst {
                    if let Err(e) = self.network.unplug(i, i.network_info()).await {
                        warn!(instance = %uuid, error = %e, "start-up: could not remove an evacuated instance's VIFs");
                    }
                }
            }
            let deleted = inst
                .as_ref()
                .is_none_or(|i| i.object().get("deleted").and_then(|v| v.as_bool()) == Some(true));
            if !deleted {
                self.remove_our_part_of(&uuid).await;
            }
            m.set_status("completed");
            if let Err(e) = self.save_migration(&ctx, &mut m).await {
                warn!(instance = %uuid, error = %e, "start-up: could not complete an evacuation's migration");
            }
        }
    }
}
