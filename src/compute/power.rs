//! The power operations: stop, start, pause, unpause, suspend, resume, soft
//! delete, restore ([`PowerOp`], one table of their states) and reboot.

use tracing::{info, warn};

use super::action::{Expect, OnFailure};
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{Instance, TaskState, VmState};
use crate::virt::{DriverError, InstanceInfo, PowerState, RebootType};

/// A simple transition: the task state Nova's API set before casting, the
/// driver call, the vm_state it ends in. On failure the task state is reverted
/// and the vm_state kept (`reverts_task_state`).
///
/// | op           | API's task state | driver     | vm_state after |
/// |--------------|------------------|------------|----------------|
/// | Stop         | powering-off     | power_off  | stopped        |
/// | Start        | powering-on      | power_on   | active         |
/// | Pause        | pausing          | pause      | paused         |
/// | Unpause      | unpausing        | unpause    | active         |
/// | Suspend      | suspending       | suspend    | suspended      |
/// | Resume       | resuming         | resume     | active         |
/// | SoftDelete   | soft-deleting    | power_off  | soft-delete    |
/// | Restore      | restoring        | power_on   | active         |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOp {
    Stop,
    Start,
    Pause,
    Unpause,
    Suspend,
    Resume,
    SoftDelete,
    Restore,
}

impl PowerOp {
    /// The RPC method (and instance action event) name.
    pub fn method(self) -> &'static str {
        match self {
            PowerOp::Stop => "stop_instance",
            PowerOp::Start => "start_instance",
            PowerOp::Pause => "pause_instance",
            PowerOp::Unpause => "unpause_instance",
            PowerOp::Suspend => "suspend_instance",
            PowerOp::Resume => "resume_instance",
            PowerOp::SoftDelete => "soft_delete_instance",
            PowerOp::Restore => "restore_instance",
        }
    }

    /// The task state Nova's API set before casting.
    pub fn expected(self) -> TaskState {
        match self {
            PowerOp::Stop => TaskState::PoweringOff,
            PowerOp::Start => TaskState::PoweringOn,
            PowerOp::Pause => TaskState::Pausing,
            PowerOp::Unpause => TaskState::Unpausing,
            PowerOp::Suspend => TaskState::Suspending,
            PowerOp::Resume => TaskState::Resuming,
            PowerOp::SoftDelete => TaskState::SoftDeleting,
            PowerOp::Restore => TaskState::Restoring,
        }
    }

    pub fn final_vm_state(self) -> VmState {
        match self {
            PowerOp::Stop => VmState::Stopped,
            PowerOp::Pause => VmState::Paused,
            PowerOp::Suspend => VmState::Suspended,
            PowerOp::SoftDelete => VmState::SoftDeleted,
            PowerOp::Start | PowerOp::Unpause | PowerOp::Resume | PowerOp::Restore => {
                VmState::Active
            }
        }
    }

    /// Whether the container's process (and network namespace) is new afterwards.
    fn starts(self) -> bool {
        matches!(self, PowerOp::Start | PowerOp::Resume | PowerOp::Restore)
    }
}

impl ComputeManager {
    /// One of the [`PowerOp`] transitions.
    pub async fn power_op(
        &self,
        ctx: &RequestContext,
        op: PowerOp,
        mut inst: Instance,
    ) -> Result<(), NovaException> {
        let action = self.begin(ctx, &inst, op.method()).await;
        let r = self.power_steps(ctx, op, &mut inst).await;
        action
            .end(ctx, &mut inst, r, OnFailure::RevertTaskState)
            .await
    }

    pub(crate) async fn power_steps(
        &self,
        ctx: &RequestContext,
        op: PowerOp,
        inst: &mut Instance,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        if op.starts() {
            self.load_network_info(ctx, inst).await?;
        }
        let t = self.cfg.shutdown_timeout;
        let d = &self.driver;
        let info = match op {
            PowerOp::Stop | PowerOp::SoftDelete => d.power_off(&uuid, t).await,
            PowerOp::Start | PowerOp::Restore => d.power_on(&uuid).await,
            PowerOp::Pause => d.pause(&uuid).await,
            PowerOp::Unpause => d.unpause(&uuid).await,
            PowerOp::Suspend => d.suspend(&uuid).await,
            PowerOp::Resume => d.resume(&uuid).await,
        };
        let info = match info {
            // a start of an instance whose container vanished makes it again
            Err(DriverError::NotFound { .. })
                if matches!(op, PowerOp::Start | PowerOp::Restore) =>
            {
                self.recreate_container(ctx, inst).await?
            }
            r => r?,
        };
        if op.starts() {
            self.rewire(inst, &info).await?;
        }
        // the unshelve of an instance shelved but not offloaded: its image
        // and the `shelved_*` keys go
        let shelved = (op == PowerOp::Start && inst.vm_state() == Some(VmState::Shelved))
            .then(|| super::shelve::take_shelved_image(inst))
            .flatten();
        inst.set_power_state(info.state);
        inst.set_vm_state(op.final_vm_state());
        inst.set_task_state(None);
        self.save(ctx, inst, Expect::One(op.expected())).await?;
        self.delete_shelved_image(ctx, &uuid, shelved.as_deref())
            .await;
        info!(instance = %uuid, op = op.method(), power_state = info.state.name(), "done");
        Ok(())
    }

    /// Re-plug and re-address the networking of a container that just started
    /// (its network namespace is new).
    /// The container stopped before it moves (within `shutdown_timeout` for
    /// a clean shutdown, else at once); its power state afterwards.
    pub(crate) async fn stop_container(
        &self,
        uuid: &str,
        clean: bool,
    ) -> Result<PowerState, NovaException> {
        let t = if clean {
            self.cfg.shutdown_timeout
        } else {
            std::time::Duration::ZERO
        };
        Ok(self.driver.power_off(uuid, t).await?.state)
    }

    pub(crate) async fn rewire(
        &self,
        inst: &Instance,
        info: &InstanceInfo,
    ) -> Result<(), NovaException> {
        if let Some(pid) = info.pid {
            let nw = inst.network_info();
            self.network.plug(inst, nw).await?;
            self.network.attach(inst, nw, pid).await?;
        }
        Ok(())
    }

    /// reboot_instance: SOFT (graceful stop, start) or HARD (kill, start).
    ///
    /// reboot_pending(_hard) -> reboot_started(_hard) -> active. A reboot that
    /// fails leaves the instance in ERROR, unless its container still runs: then
    /// it stays ACTIVE with a fault, as Nova does.
    pub async fn reboot_instance(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        kind: RebootType,
    ) -> Result<(), NovaException> {
        let action = self.begin(ctx, &inst, "reboot_instance").await;
        let r = self.reboot_steps(ctx, &mut inst, kind).await;
        action.end(ctx, &mut inst, r, OnFailure::Error).await
    }

    async fn reboot_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        kind: RebootType,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        let (pending, started, allowed) = match kind {
            RebootType::Soft => (
                TaskState::RebootPending,
                TaskState::RebootStarted,
                TaskState::SOFT_REBOOT,
            ),
            RebootType::Hard => (
                TaskState::RebootPendingHard,
                TaskState::RebootStartedHard,
                TaskState::HARD_REBOOT,
            ),
        };
        // a hard reboot of an instance whose container vanished makes it again
        let before = match self.driver.get_info(&uuid).await {
            Err(DriverError::NotFound { .. }) if kind == RebootType::Hard => None,
            r => Some(r?),
        };
        inst.set_task_state(Some(pending));
        inst.set_power_state(before.as_ref().map_or(PowerState::NoState, |b| b.state));
        self.save(ctx, inst, Expect::OneOf(allowed)).await?;
        inst.set_task_state(Some(started));
        self.save(ctx, inst, Expect::One(pending)).await?;
        let rebooted = match before {
            None => self.recreate_container(ctx, inst).await,
            Some(_) => self
                .driver
                .reboot(&uuid, kind)
                .await
                .map_err(NovaException::from),
        };
        let state = match rebooted {
            Ok(info) => {
                self.rewire(inst, &info).await?;
                info.state
            }
            Err(e) => match self.driver.get_info(&uuid).await {
                Ok(i) if i.state == PowerState::Running => {
                    warn!(instance = %uuid, error = %e, "reboot failed but the instance is running");
                    self.add_fault(ctx, &uuid, &e).await;
                    i.state
                }
                _ => return Err(e),
            },
        };
        inst.set_power_state(state);
        inst.set_vm_state(VmState::Active);
        inst.set_task_state(None);
        self.save(ctx, inst, Expect::Any).await
    }
}
