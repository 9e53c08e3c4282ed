//! Keeping Nova's records in step with the driver, which is the truth: the
//! engine's event stream and a periodic power-state sync, and, at start-up,
//! finishing what a crash cut off (Nova's `init_host` / `_init_instance`).

use futures_util::StreamExt;
use tracing::{debug, info, warn};

use super::action::Expect;
use super::power::PowerOp;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{Instance, TaskState, VmState};
use crate::virt::{DriverError, InstanceInfo, PowerState};

/// The lines of output an exit fault quotes (the last ones).
const EXIT_FAULT_LINES: usize = 10;
/// A process killed by signal 9 exits with 128 + 9.
const SIGKILL_EXIT: i64 = 137;
/// The length of a fault's message in Nova's database; the output quoted is
/// what is left after the exit code and its reason, so its end (which says
/// why) is never cut.
const FAULT_MESSAGE: usize = 255;

/// The fault of a container that stopped by itself: "exited with code N" (and
/// the OOM killer when it struck), then the end of its output on one line.
pub(crate) fn exit_fault(info: &InstanceInfo, output: &str) -> NovaException {
    let how = match info.exit_code {
        Some(c) => format!("exited with code {c}"),
        None => format!("stopped ({})", info.status),
    };
    let oom = if info.oom_killed {
        ", killed by the kernel's OOM killer (the flavor's memory was not enough)"
    } else if info.exit_code == Some(SIGKILL_EXIT) {
        // the engine records OOMKilled from an event that can come after the
        // exit; a SIGKILL Nova did not send is the OOM killer or a `kill -9`
        ", killed by SIGKILL (the OOM killer if the flavor's memory was short, or a kill -9)"
    } else {
        ""
    };
    let head =
        format!("The container's command {how}{oom}; the instance is stopped. Last output: ");
    let room = FAULT_MESSAGE.saturating_sub(head.len() + '…'.len_utf8());
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join(" | ");
    let tail = if joined.len() > room {
        let from = joined.ceil_char_boundary(joined.len() - room);
        format!("…{}", &joined[from..])
    } else if joined.is_empty() {
        "(no output)".to_string()
    } else {
        joined
    };
    NovaException::internal(format!("{head}{tail}"))
}

/// How long the event watcher waits before subscribing again after the
/// engine's stream broke.
const RESUBSCRIBE: std::time::Duration = std::time::Duration::from_secs(2);

impl ComputeManager {
    /// Bring one instance's record in line with its container (the power-state
    /// sync): an ACTIVE instance whose container stopped or died becomes
    /// SHUTOFF. Waits for any operation on the instance to finish first.
    pub async fn sync_instance(&self, uuid: &str) {
        let lock = self.instance_lock(uuid);
        let _g = lock.lock().await;
        let ctx = RequestContext::admin();
        let mut inst = match self.conductor.instance_get(&ctx, uuid).await {
            Ok(i) => i,
            Err(e) => {
                debug!(instance = uuid, error = %e, "not syncing: instance not readable");
                return;
            }
        };
        self.sync_record(&ctx, &mut inst).await;
    }

    /// The power state of an instance's container (`NoState` when there is
    /// none); `None`, logged under `during`, when the driver cannot say.
    async fn container_state(&self, uuid: &str, during: &str) -> Option<PowerState> {
        let info = self.container_info(uuid, during).await?;
        Some(info.map_or(PowerState::NoState, |i| i.state))
    }

    /// What the driver knows of an instance's container (`Some(None)` when
    /// there is none); `None`, logged under `during`, when it cannot say.
    async fn container_info(&self, uuid: &str, during: &str) -> Option<Option<InstanceInfo>> {
        match self.driver.get_info(uuid).await {
            Ok(i) => Some(Some(i)),
            Err(DriverError::NotFound { .. }) => Some(None),
            Err(e) => {
                warn!(instance = %uuid, error = %e, "{during}: cannot read the container");
                None
            }
        }
    }

    /// The sync of one instance with no task state (the caller holds its lock).
    async fn sync_record(&self, ctx: &RequestContext, inst: &mut Instance) {
        if inst.host() != Some(self.cfg.host.as_str()) || inst.task_state().is_some() {
            return;
        }
        let uuid = inst.uuid().to_string();
        let Some(container) = self.container_info(&uuid, "power sync").await else {
            return;
        };
        let state = container.as_ref().map_or(PowerState::NoState, |i| i.state);
        let vm = inst.vm_state();
        if vm == Some(VmState::Active) && state.is_stopped() {
            info!(instance = %uuid, power_state = state.name(), "container stopped behind Nova's back: instance is now SHUTOFF");
            let fault = self.stopped_fault(&uuid, container.as_ref()).await;
            self.add_fault(ctx, &uuid, &fault).await;
            self.record_stop(ctx, &uuid, &fault).await;
            inst.set_power_state(state);
            inst.set_vm_state(VmState::Stopped);
            inst.set_task_state(None);
        } else if vm == Some(VmState::Stopped)
            && container.is_none()
            && inst.power_state() != PowerState::NoState
        {
            // stopped first (`docker rm -f` kills, then removes): that it is
            // gone is news the user reads too
            info!(instance = %uuid, "the stopped instance's container was removed behind Nova's back");
            let fault = self.stopped_fault(&uuid, None).await;
            self.add_fault(ctx, &uuid, &fault).await;
            self.record_stop(ctx, &uuid, &fault).await;
            inst.set_power_state(state);
        } else if inst.power_state() != state
            && !matches!(vm, Some(VmState::Building | VmState::Deleted))
        {
            inst.set_power_state(state);
        } else {
            return;
        }
        if let Err(e) = self.save(ctx, inst, Expect::Unset).await {
            warn!(instance = %uuid, error = %e, "power sync save failed");
        }
    }

    /// The fault of an instance whose container (`container`, None: gone)
    /// stopped on its own: its exit code and last lines of output, or that it
    /// is gone.
    async fn stopped_fault(&self, uuid: &str, container: Option<&InstanceInfo>) -> NovaException {
        match container {
            Some(info) => {
                let output = self
                    .driver
                    .get_console_output(uuid, Some(EXIT_FAULT_LINES))
                    .await
                    .unwrap_or_default();
                exit_fault(info, &output)
            }
            None => NovaException::internal(
                "The instance's container is gone: it was removed outside Nova (docker rm, or the engine's data was lost). A start or a hard reboot makes it again from the instance's image.",
            ),
        }
    }

    /// A `stop` action with the reason in its event, as Nova's power sync
    /// records one (through `compute_api.force_stop`): the user reads it with
    /// `openstack server event show` (the event's `details`, microversion
    /// 2.84), since Nova's API shows a fault only for ERROR.
    async fn record_stop(&self, ctx: &RequestContext, uuid: &str, why: &NovaException) {
        const EVENT: &str = "compute_stop_instance";
        let c = &self.conductor;
        let r = async {
            c.action_start(ctx, uuid, "stop").await?;
            c.event_start(ctx, uuid, EVENT, &self.cfg.host).await?;
            c.event_finish(ctx, uuid, EVENT, Some(&why.message)).await
        }
        .await;
        if let Err(e) = r {
            warn!(instance = %uuid, error = %e, "could not record the stop action");
        }
    }

    /// Sync every instance Nova has on this host (the periodic backstop).
    pub async fn sync_all(&self) {
        let ctx = RequestContext::admin();
        let Some(list) = self.our_instances(&ctx).await else {
            return;
        };
        for mut inst in list {
            let lock = self.instance_lock(inst.uuid());
            let _g = lock.lock().await;
            self.sync_record(&ctx, &mut inst).await;
        }
    }

    /// The instances Nova has on this host; `None` (logged) when it cannot say.
    pub(crate) async fn our_instances(&self, ctx: &RequestContext) -> Option<Vec<Instance>> {
        match self.conductor.instances_on_host(ctx, &self.cfg.host).await {
            Ok(l) => Some(l),
            Err(e) => {
                warn!(error = %e, "cannot list our instances");
                None
            }
        }
    }

    /// Follow the engine's event stream until the daemon stops: a container of
    /// ours that stops or dies is noticed within moments (as libvirt's lifecycle
    /// events are for Nova). After the stream breaks, everything is synced, since
    /// events may have been missed.
    pub async fn watch_events(self: std::sync::Arc<Self>) {
        loop {
            let mut events = self.driver.events();
            loop {
                let ev = tokio::select! {
                    _ = self.tasks.stopping() => return,
                    ev = events.next() => ev,
                };
                match ev {
                    Some(Ok(ev)) if ev.kind.ends_a_run() => {
                        // the instance's lock orders this after our own operation on it
                        let me = self.clone();
                        self.tasks
                            .spawn(async move { me.sync_instance(&ev.uuid).await });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        warn!(error = %e, "engine event stream error");
                        break;
                    }
                    None => break,
                }
            }
            if !self.tasks.sleep(RESUBSCRIBE).await {
                return;
            }
            // the engine may be restarting: wait until it answers again, then
            // bring back what it stopped before syncing the rest
            while self.driver.list_instances().await.is_err() {
                if !self.tasks.sleep(RESUBSCRIBE).await {
                    return;
                }
            }
            if self.cfg.resume_after_engine_restart {
                self.resume_after_engine_restart().await;
            }
            self.sync_all().await;
        }
    }

    /// After the engine's event stream broke and the engine answers again (a
    /// restart of the Docker daemon stops every container): start again the
    /// containers of instances Nova has as ACTIVE and running, and wire them
    /// anew (their network namespaces are new), as Nova's
    /// `resume_guests_state_on_host_boot` does after a host reboot. Instances
    /// stopped through Nova are not touched.
    pub async fn resume_after_engine_restart(&self) {
        let ctx = RequestContext::admin();
        let Some(list) = self.our_instances(&ctx).await else {
            return;
        };
        let resumable = |inst: &Instance| {
            inst.host() == Some(self.cfg.host.as_str())
                && inst.task_state().is_none()
                && inst.vm_state() == Some(VmState::Active)
                && inst.power_state() == PowerState::Running
        };
        for inst in list {
            if !resumable(&inst) {
                continue;
            }
            let uuid = inst.uuid().to_string();
            let lock = self.instance_lock(&uuid);
            let _g = lock.lock().await;
            // read again under the lock: a stop (or any operation) that came
            // after the listing, or held the lock until now, has changed it,
            // and its container must then stay as that operation left it
            let inst = match self.conductor.instance_get(&ctx, &uuid).await {
                Ok(i) if resumable(&i) => i,
                Ok(_) => continue,
                Err(e) => {
                    warn!(instance = %uuid, error = %e, "engine restart: cannot read the instance again; not starting it");
                    continue;
                }
            };
            if !matches!(
                self.container_state(&uuid, "engine restart").await,
                Some(PowerState::Shutdown | PowerState::Crashed)
            ) {
                continue;
            }
            info!(instance = %uuid, "the engine restarted: starting the instance's container again");
            let r = async {
                let info = self.driver.power_on(&uuid).await?;
                self.rewire(&inst, &info).await
            }
            .await;
            if let Err(e) = r {
                warn!(instance = %uuid, error = %e, "could not start the container again after the engine restarted");
            }
        }
    }

    /// Start-up, before RPC is served (Nova's `init_host` / `_init_instance`):
    /// an operation this service was doing when it stopped (a crash, a kill, a
    /// host reboot) left its task state behind, and Nova's API refuses every
    /// action on an instance with a task state. A build or rebuild that was cut
    /// off ends in ERROR with a fault; a delete, stop or start is carried out
    /// again; any other task state is dropped and the vm_state follows the
    /// container.
    ///
    /// Instances without a task state are synced as [`Self::sync_all`] does; one
    /// listing serves both.
    pub async fn start_up(&self) {
        let ctx = RequestContext::admin();
        let Some(list) = self.our_instances(&ctx).await else {
            return;
        };
        for mut inst in list {
            match inst.task_state() {
                Some(ts) if inst.host() == Some(self.cfg.host.as_str()) => {
                    self.init_instance(&ctx, inst, Some(ts)).await
                }
                // claimed (the build's first save) but no task state yet
                None if inst.host() == Some(self.cfg.host.as_str())
                    && inst.vm_state() == Some(VmState::Building) =>
                {
                    self.init_instance(&ctx, inst, None).await
                }
                _ => {
                    let lock = self.instance_lock(inst.uuid());
                    let _g = lock.lock().await;
                    self.sync_record(&ctx, &mut inst).await;
                }
            }
        }
    }

    async fn init_instance(&self, ctx: &RequestContext, mut inst: Instance, ts: Option<TaskState>) {
        let uuid = inst.uuid().to_string();
        info!(instance = %uuid, task_state = ?ts, "start-up: the operation in progress when the service stopped is resolved");
        let cut_off = |what: &str| {
            NovaException::internal(format!(
                "The compute service restarted while the instance was being {what}; the operation did not finish."
            ))
        };
        let building =
            inst.vm_state() == Some(VmState::Building) || ts.is_some_and(|t| t.is_building());
        let outcome = if building || ts.is_some_and(|t| t.is_rebuilding()) {
            let lock = self.instance_lock(&uuid);
            let _g = lock.lock().await;
            if building {
                // what the build had made: its container and VIFs, its ports
                // (those the user gave, kept in the info cache as such, are
                // unbound and kept); the host stays, as Nova's init_host leaves
                // it, so that a delete comes here
                self.undo_spawn(&inst).await;
                self.cleanup_allocated_networks(ctx, &mut inst, &[]).await;
            }
            let e = cut_off(if building { "built" } else { "rebuilt" });
            self.record_failure(ctx, &mut inst, &e, super::action::OnFailure::Error)
                .await;
            if building {
                // and its placement allocation (a rebuilt instance keeps its own)
                self.remove_allocations(&uuid).await;
            }
            Ok(())
        } else {
            match ts {
                Some(TaskState::Deleting) => self.terminate_instance(ctx, inst).await,
                Some(TaskState::PoweringOff) => self.power_op(ctx, PowerOp::Stop, inst).await,
                Some(TaskState::PoweringOn) => self.power_op(ctx, PowerOp::Start, inst).await,
                Some(ts) if ts.is_uploading_an_image() => {
                    // a snapshot we had begun: its half-made image goes
                    match self.images.discard_interrupted_snapshots(ctx, &uuid).await {
                        Ok(ids) if !ids.is_empty() => {
                            info!(instance = %uuid, images = ?ids, "start-up: deleted the half-made images of a cut-off snapshot")
                        }
                        Ok(_) => {}
                        Err(e) => {
                            warn!(instance = %uuid, error = %e, "start-up: cannot delete the images of a cut-off snapshot")
                        }
                    }
                    self.drop_task_state(ctx, inst, ts).await;
                    Ok(())
                }
                Some(ts) => {
                    self.drop_task_state(ctx, inst, ts).await;
                    Ok(())
                }
                None => Ok(()),
            }
        };
        if let Err(e) = outcome {
            warn!(instance = %uuid, error = %e, "start-up: resolving the cut-off operation failed");
        }
    }

    /// Drop a cut-off task state; the vm_state follows the container.
    async fn drop_task_state(&self, ctx: &RequestContext, mut inst: Instance, ts: TaskState) {
        let uuid = inst.uuid().to_string();
        let lock = self.instance_lock(&uuid);
        let _g = lock.lock().await;
        let Some(state) = self.container_state(&uuid, "start-up").await else {
            return;
        };
        let vm = match state {
            PowerState::Running => VmState::Active,
            PowerState::Paused => VmState::Paused,
            PowerState::Suspended => VmState::Suspended,
            _ => VmState::Stopped,
        };
        // a soft-deleted instance stays soft-deleted, a shelved one shelved
        let keep = match inst.vm_state() {
            Some(VmState::SoftDeleted) => ts != TaskState::Restoring,
            Some(VmState::Shelved) => true,
            _ => false,
        };
        if !keep {
            inst.set_vm_state(vm);
        }
        inst.set_power_state(state);
        inst.set_task_state(None);
        if let Err(e) = self.save(ctx, &mut inst, Expect::One(ts)).await {
            warn!(instance = %uuid, error = %e, "start-up: cannot clear the task state");
        }
    }
}

/// The task states a request sets in nova-api before it casts to us: when the
/// cast was published while our queue was gone (a broker restart deletes the
/// non-durable queues until we declare them again), nothing else will ever
/// end them.
fn lost_with_its_message(ts: TaskState) -> bool {
    matches!(
        ts,
        TaskState::PoweringOff
            | TaskState::PoweringOn
            | TaskState::Deleting
            | TaskState::Pausing
            | TaskState::Unpausing
            | TaskState::Suspending
            | TaskState::Resuming
    ) || TaskState::SOFT_REBOOT.contains(&ts)
        || TaskState::HARD_REBOOT.contains(&ts)
}

impl ComputeManager {
    /// After the RPC server reconnected (`lost` is when it lost the broker,
    /// `back` when it consumed again): the instances of this host left in a
    /// task state set while our queues were away, with no operation running
    /// on them here. Their requests never reached us; as at start-up, a
    /// delete, stop or start is carried out, and any other task state is
    /// dropped with a fault that says the request was lost.
    pub async fn recover_lost_requests(
        &self,
        lost: chrono::DateTime<chrono::Utc>,
        back: chrono::DateTime<chrono::Utc>,
    ) {
        let ctx = RequestContext::admin();
        let Some(list) = self.our_instances(&ctx).await else {
            return;
        };
        // a second of slack: updated_at has whole seconds
        let from = lost - chrono::Duration::seconds(1);
        for inst in list {
            let Some(ts) = inst.task_state() else {
                continue;
            };
            if inst.host() != Some(self.cfg.host.as_str()) || !lost_with_its_message(ts) {
                continue;
            }
            let updated = inst
                .object()
                .get_str("updated_at")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            if !updated.is_some_and(|t| t >= from && t <= back) {
                continue;
            }
            // an operation running on it here: its message did arrive
            if self.instance_lock(inst.uuid()).try_lock().is_err() {
                continue;
            }
            let uuid = inst.uuid().to_string();
            warn!(instance = %uuid, task_state = ?ts,
                "its request was sent while the broker connection was down and never arrived; resolving it");
            let outcome = match ts {
                TaskState::Deleting => self.terminate_instance(&ctx, inst).await,
                TaskState::PoweringOff => self.power_op(&ctx, PowerOp::Stop, inst).await,
                TaskState::PoweringOn => self.power_op(&ctx, PowerOp::Start, inst).await,
                _ => {
                    let e = NovaException::internal(format!(
                        "The request ({}) did not reach the compute service: its message broker connection was down. Ask again.",
                        ts.as_str()
                    ));
                    self.add_fault(&ctx, &uuid, &e).await;
                    self.drop_task_state(&ctx, inst, ts).await;
                    Ok(())
                }
            };
            if let Err(e) = outcome {
                warn!(instance = %uuid, error = %e, "resolving the lost request failed");
            }
        }
    }
}
