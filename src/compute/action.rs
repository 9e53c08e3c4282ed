//! What every operation on an instance does around its own steps, as Nova's
//! decorators do (`wrap_instance_event`, `wrap_instance_fault`,
//! `reverts_task_state`): one at a time per instance, an instance action event
//! around it, and on failure a fault and the task state reverted (or the
//! instance in ERROR).
//!
//! ```ignore
//! let action = self.begin(ctx, &inst, "stop_instance").await;
//! let r = self.stop_steps(ctx, &mut inst).await;
//! action.end(ctx, &mut inst, r, OnFailure::RevertTaskState).await
//! ```

use std::sync::Arc;

use tracing::{info, warn};

use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{Instance, TaskState, VmState};

/// How a failed operation leaves the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// A fault; the task state back to None; the vm_state as it was
    /// (`reverts_task_state`).
    RevertTaskState,
    /// A fault; vm_state ERROR, no task state (a failed build, rebuild, reboot).
    Error,
    /// A fault only: the instance's states are another service's to set (a
    /// live migration pre-check, whose `migrating` the conductor clears).
    FaultOnly,
}

/// An operation in progress on one instance: holds the instance's lock and
/// its action event until [`Action::end`].
#[must_use = "an action must be ended, or its event stays open"]
pub struct Action<'m> {
    manager: &'m ComputeManager,
    uuid: String,
    event: String,
    /// The versioned notification of the operation (`instance.power_off`), if
    /// Nova sends one.
    notification: Option<&'static str>,
    /// The image a snapshot writes (its notification names it).
    snapshot_image: Option<String>,
    _lock: tokio::sync::OwnedMutexGuard<()>,
}

impl ComputeManager {
    /// Send the versioned notification `<event>.<phase>` about `inst`.
    pub(crate) async fn notify(
        &self,
        ctx: &RequestContext,
        event: &str,
        phase: &str,
        inst: &Instance,
        fault: Option<&NovaException>,
        snapshot_image: Option<&str>,
    ) {
        use crate::notifications::{payload, Notification, Priority};
        self.notifier
            .notify(
                ctx,
                Notification {
                    event_type: format!("{event}.{phase}"),
                    priority: if fault.is_some() {
                        Priority::Error
                    } else {
                        Priority::Info
                    },
                    payload: payload(ctx, event, inst, fault, snapshot_image),
                },
            )
            .await;
    }

    /// `instance.exists`: the usage of the audit period so far.
    pub(crate) async fn notify_exists(&self, ctx: &RequestContext, inst: &Instance) {
        use crate::notifications::{exists_payload, Notification, Priority};
        let now = chrono::Utc::now();
        let begin = self.cfg.audit_period.current_start(now);
        self.notifier
            .notify(
                ctx,
                Notification {
                    event_type: "instance.exists".into(),
                    priority: Priority::Info,
                    payload: exists_payload(ctx, inst, begin, now),
                },
            )
            .await;
    }

    /// The lock that serialises operations on one instance.
    pub(crate) fn instance_lock(&self, uuid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // forget locks nobody holds, so the map does not grow with every instance ever seen
        if m.len() > 1024 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry(uuid.to_string()).or_default().clone()
    }

    /// Start the operation `name` on `inst`: wait for the instance's lock, then
    /// record the action event `compute_<name>`.
    pub(crate) async fn begin(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        name: &str,
    ) -> Action<'_> {
        self.begin_writing(ctx, inst, name, None).await
    }

    /// [`Self::begin`] of an operation that writes the image `snapshot_image`
    /// (a snapshot or backup, whose notifications name it).
    pub(crate) async fn begin_writing(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        name: &str,
        snapshot_image: Option<&str>,
    ) -> Action<'_> {
        let mut action = self.begin_with(ctx, inst.uuid(), name, async {}).await.0;
        action.snapshot_image = snapshot_image.map(str::to_string);
        action.notify_start(ctx, inst).await;
        action
    }

    /// [`Self::begin`], with `first` (the operation's first step) run under
    /// the lock while the action event is recorded rather than after it: the
    /// two are independent records, and a build's first save need not wait.
    pub(crate) async fn begin_with<T>(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        name: &str,
        first: impl std::future::Future<Output = T>,
    ) -> (Action<'_>, T) {
        let lock = self.instance_lock(uuid).lock_owned().await;
        let event = format!("compute_{name}");
        let (started, out) = tokio::join!(
            self.conductor
                .event_start(ctx, uuid, &event, &self.cfg.host),
            first
        );
        if let Err(e) = started {
            // an operation Nova's API did not record (no InstanceAction) still runs
            info!(instance = %uuid, event, error = %e, "no instance action event");
        }
        let action = Action {
            manager: self,
            uuid: uuid.to_string(),
            event,
            notification: crate::notifications::event_of(name),
            snapshot_image: None,
            _lock: lock,
        };
        (action, out)
    }

    /// Record a failure as Nova does: an InstanceFault, then the task state
    /// reverted (and the instance in ERROR for [`OnFailure::Error`]). An
    /// instance that is gone or being deleted gets neither.
    pub(crate) async fn record_failure(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        e: &NovaException,
        on_failure: OnFailure,
    ) {
        if self.fault_for(ctx, inst, e).await {
            self.revert(ctx, inst, on_failure).await;
        }
    }

    /// The fault of a failure (`wrap_instance_fault`); false when the instance
    /// is gone or being deleted, which gets no fault and no state change.
    async fn fault_for(&self, ctx: &RequestContext, inst: &Instance, e: &NovaException) -> bool {
        if e.instance_gone() {
            info!(instance = inst.uuid(), error = %e, "the instance went away during the operation");
            return false;
        }
        warn!(instance = inst.uuid(), class = %e.class, error = %e.message, "operation failed");
        self.add_fault(ctx, inst.uuid(), e).await;
        true
    }

    /// The task state back to None (`reverts_task_state`), the instance in
    /// ERROR for [`OnFailure::Error`].
    async fn revert(&self, ctx: &RequestContext, inst: &mut Instance, on_failure: OnFailure) {
        if on_failure == OnFailure::FaultOnly {
            return;
        }
        if on_failure == OnFailure::Error {
            inst.set_vm_state(VmState::Error);
        }
        inst.set_task_state(None);
        if let Err(se) = self.conductor.instance_save(ctx, inst, None).await {
            warn!(instance = inst.uuid(), error = %se, "could not save the instance after a failure");
        }
    }

    /// An InstanceFault for `uuid` (logged when it cannot be written).
    pub(crate) async fn add_fault(&self, ctx: &RequestContext, uuid: &str, e: &NovaException) {
        if let Err(fe) = self.conductor.add_fault(ctx, uuid, &self.cfg.host, e).await {
            warn!(instance = uuid, error = %fe, "could not record the instance fault");
        }
    }

    /// `instance.save(expected_task_state=expected)`: the save fails when the
    /// instance's task state is not one of `expected` (Nova's guard against two
    /// operations at once); `Expect::Any` checks nothing.
    pub(crate) async fn save(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        expected: Expect<'_>,
    ) -> Result<(), NovaException> {
        let states: Option<Vec<Option<&str>>> = match expected {
            Expect::Any => None,
            Expect::One(s) => Some(vec![Some(s.as_str())]),
            Expect::OneOf(l) => Some(l.iter().map(|s| Some(s.as_str())).collect()),
            Expect::NoneOr(s) => Some(vec![Some(s.as_str()), None]),
            Expect::NoneOrOneOf(l) => Some(
                std::iter::once(None)
                    .chain(l.iter().map(|s| Some(s.as_str())))
                    .collect(),
            ),
            Expect::Unset => Some(vec![None]),
        };
        self.conductor
            .instance_save(ctx, inst, states.as_deref())
            .await?;
        Ok(())
    }
}

/// The task states an `Instance.save` expects to find.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// No check.
    Any,
    One(TaskState),
    OneOf(&'a [TaskState]),
    /// The state, or none (`(SCHEDULING, None)` of a build).
    NoneOr(TaskState),
    /// None or one of these.
    NoneOrOneOf(&'a [TaskState]),
    /// No task state.
    Unset,
}

impl Action<'_> {
    /// No notification for this one (an operation that turned out not to be
    /// ours to do).
    pub fn without_notification(mut self) -> Self {
        self.notification = None;
        self
    }

    /// `<notification>.start`, with the instance as the operation finds it.
    pub async fn notify_start(&self, ctx: &RequestContext, inst: &Instance) {
        if self.notification == Some("instance.rebuild") {
            // the usage of the period so far, before the image changes
            self.manager.notify_exists(ctx, inst).await;
        }
        if let Some(n) = self.notification {
            self.manager
                .notify(ctx, n, "start", inst, None, self.snapshot_image.as_deref())
                .await;
        }
    }

    /// End a build that failed here and went back to the conductor for
    /// another host: the action event finishes as done (Nova's
    /// `_do_build_and_run_instance` returns normally after the cast), no
    /// fault, the state as the reschedule saved it; `instance.create.error`
    /// says what failed here.
    pub async fn end_rescheduled(self, ctx: &RequestContext, inst: &Instance, e: &NovaException) {
        let m = self.manager;
        if let Err(fe) = m
            .conductor
            .event_finish(ctx, &self.uuid, &self.event, None)
            .await
        {
            info!(instance = %self.uuid, event = %self.event, error = %fe, "could not finish the instance action event");
        }
        if let Some(n) = self.notification {
            m.notify(ctx, n, "error", inst, Some(e), None).await;
        }
    }

    /// End the operation with its result, in the order of Nova's decorators:
    /// the fault (if it failed), the action event finished (with the failure),
    /// the task state reverted as `on_failure` says. The lock is released
    /// afterwards. Returns the result unchanged.
    pub async fn end<T>(
        self,
        ctx: &RequestContext,
        inst: &mut Instance,
        r: Result<T, NovaException>,
        on_failure: OnFailure,
    ) -> Result<T, NovaException> {
        let m = self.manager;
        let faulted = match &r {
            Err(e) => m.fault_for(ctx, inst, e).await,
            Ok(_) => false,
        };
        let failure = r.as_ref().err().map(|e| e.to_string());
        if let Err(e) = m
            .conductor
            .event_finish(ctx, &self.uuid, &self.event, failure.as_deref())
            .await
        {
            info!(instance = %self.uuid, event = %self.event, error = %e, "could not finish the instance action event");
        }
        if faulted {
            m.revert(ctx, inst, on_failure).await;
        }
        // `.end` once it worked; of failures Nova reports a build's and a rebuild's
        match (self.notification, &r) {
            (Some(n), Ok(_)) => {
                m.notify(ctx, n, "end", inst, None, self.snapshot_image.as_deref())
                    .await
            }
            (Some(n @ ("instance.create" | "instance.rebuild")), Err(e)) => {
                m.notify(ctx, n, "error", inst, Some(e), None).await
            }
            _ => {}
        }
        r
    }
}
