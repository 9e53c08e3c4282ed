//! `rebuild_instance`: the same instance (identity, networking) on a new image.

use tracing::{info, warn};

use super::action::{Expect, OnFailure};
use super::power::PowerOp;
use super::request::RebuildRequest;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{Instance, TaskState, VmState};
use crate::virt::PowerState;

impl ComputeManager {
    /// rebuild_instance (cast, 6.x).
    ///
    /// | step          | vm_state  | task_state                   | expected                     |
    /// |---------------|-----------|------------------------------|------------------------------|
    /// | start         | (as was)  | rebuilding                   | rebuilding                   |
    /// | block devices | (as was)  | rebuild_block_device_mapping | rebuilding                   |
    /// | spawn         | (as was)  | rebuild_spawning             | rebuild_block_device_mapping |
    /// | done          | active    | none                         | rebuild_spawning             |
    /// | was stopped   | active    | powering-off, then the stop  | (not checked)                |
    ///
    /// The driver's rebuild keeps the old container aside until the new one
    /// runs, and puts it back if the new one fails: a failed rebuild loses
    /// nothing (the instance is ERROR with a fault, as in Nova, and a hard
    /// reboot brings the old container back). A server that was stopped is
    /// stopped again afterwards, as Nova's `_do_rebuild_instance` does.
    /// Evacuation (`recreate`) is [`super::evacuate`]'s.
    pub async fn rebuild_instance(
        &self,
        ctx: &RequestContext,
        req: RebuildRequest,
    ) -> Result<(), NovaException> {
        let mut inst = req.instance.clone();
        let action = self.begin(ctx, &inst, "rebuild_instance").await;
        let r = if req.recreate {
            let r = self.evacuate_steps(ctx, &mut inst, &req).await;
            if r.is_err() {
                self.evacuation_failed(ctx, &inst, &req).await;
            }
            r
        } else {
            self.rebuild_steps(ctx, &mut inst, &req).await
        };
        action.end(ctx, &mut inst, r, OnFailure::Error).await
    }

    async fn rebuild_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        req: &RebuildRequest,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        let was_stopped = inst.vm_state() == Some(VmState::Stopped);
        let before = self.driver.get_info(&uuid).await?;
        inst.set_power_state(before.state);
        inst.set_task_state(Some(TaskState::Rebuilding));
        self.save(ctx, inst, Expect::One(TaskState::Rebuilding))
            .await?;
        inst.set_task_state(Some(TaskState::RebuildBlockDeviceMapping));
        self.save(ctx, inst, Expect::One(TaskState::Rebuilding))
            .await?;
        inst.set_task_state(Some(TaskState::RebuildSpawning));
        self.save(ctx, inst, Expect::One(TaskState::RebuildBlockDeviceMapping))
            .await?;
        let spec = self.respawn_spec(ctx, inst, &req.image).await?;
        let info = match self.driver.rebuild(&spec).await {
            Ok(info) => info,
            Err(e) => {
                // the old container is back: give it its networking again
                if let Ok(old) = self.driver.get_info(&uuid).await {
                    if old.state == PowerState::Running {
                        if let Err(we) = self.rewire(inst, &old).await {
                            warn!(instance = %uuid, error = %we, "rewiring the old container after a failed rebuild");
                        }
                    }
                }
                return Err(e.into());
            }
        };
        self.rewire(inst, &info).await?;
        inst.set_power_state(info.state);
        inst.set_vm_state(VmState::Active);
        inst.set_task_state(None);
        inst.set_launched_at_now();
        self.save(ctx, inst, Expect::One(TaskState::RebuildSpawning))
            .await?;
        info!(instance = %uuid, image = ?req.image.id, "instance rebuilt");
        if was_stopped {
            info!(instance = %uuid, "bringing the instance to its original state: stopped");
            inst.set_vm_state(VmState::Active);
            inst.set_task_state(Some(TaskState::PoweringOff));
            inst.set_progress(0);
            self.save(ctx, inst, Expect::Any).await?;
            self.power_steps(ctx, PowerOp::Stop, inst).await?;
        }
        Ok(())
    }
}
