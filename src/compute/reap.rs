//! Containers of deleted instances (Nova's `_cleanup_running_deleted_instances`,
//! `running_deleted_instance_action`): an instance deleted while its compute
//! service was down is deleted by nova-api alone (its "local delete"), and its
//! container goes on running with nobody to stop it. At start-up and every
//! `running_deleted_instance_poll_interval` the daemon looks at the containers
//! of its host whose instance is not one of the host's: one whose instance is
//! deleted (or no longer in the database at all) is reaped, shut down or
//! logged, as the option says.
//!
//! A container whose instance lives on another host, with no operation in
//! progress, is a leftover of this host's part in it: a build that failed
//! here and was rescheduled while the engine did not answer (its removal
//! gave up), or an instance evacuated while this host was down. It is
//! removed, with its VIFs here, whatever the option says, and never started
//! (as Nova's `_destroy_evacuated_instances` does at start-up). A resized
//! instance's source container (kept until the resize is confirmed) and an
//! instance in a task are left alone.

use std::collections::HashSet;
use std::time::Duration;

use tracing::{info, warn};

use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::Class;
use crate::objects::{Instance, VmState};

/// What is done with the container of a deleted instance
/// (`[DEFAULT] running_deleted_instance_action`, Nova's default `reap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunningDeletedAction {
    /// Nothing.
    Noop,
    /// A warning in the log.
    Log,
    /// The container stopped (kept, for an operator to look at).
    Shutdown,
    /// The container and its VIFs removed.
    Reap,
}

impl RunningDeletedAction {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "noop" => Self::Noop,
            "log" => Self::Log,
            "shutdown" => Self::Shutdown,
            "reap" => Self::Reap,
            _ => return None,
        })
    }
}

/// `running_deleted_instance_action` and `running_deleted_instance_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningDeleted {
    pub action: RunningDeletedAction,
    /// How long after the deletion the container is left alone.
    pub timeout: Duration,
}

impl Default for RunningDeleted {
    fn default() -> Self {
        RunningDeleted {
            action: RunningDeletedAction::Reap,
            timeout: Duration::ZERO,
        }
    }
}

/// What a container's instance record says of it.
enum Owner {
    /// Deleted (`deleted_at` when known), or purged from the database.
    Deleted(Option<Instance>),
    /// Live on another host, with no operation in progress: what is here is
    /// a leftover.
    Moved(Instance),
    /// Live, in an operation or kept here for one (a resize not yet
    /// confirmed), or on ours since the listing.
    Elsewhere,
    /// The conductor could not say.
    Unknown,
}

impl ComputeManager {
    /// Deal with the containers of this host whose instance is deleted, and
    /// remove those whose instance lives on another host.
    pub async fn reap_deleted(&self) {
        let rd = self.cfg.running_deleted;
        let ctx = RequestContext::admin();
        let Some(ours) = self.our_instances(&ctx).await else {
            return;
        };
        let ours: HashSet<String> = ours.iter().map(|i| i.uuid().to_string()).collect();
        let containers = match self.driver.list_instances().await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "running deleted instances: cannot list the containers");
                return;
            }
        };
        let strays: HashSet<String> = containers
            .into_iter()
            .map(|c| c.uuid)
            .filter(|u| !ours.contains(u))
            .collect();
        let mut deleted_ctx = ctx.clone();
        deleted_ctx.read_deleted = "yes".into();
        for uuid in strays {
            // an operation of ours on it (a build before its claim was listed)
            let lock = self.instance_lock(&uuid);
            let Ok(_g) = lock.try_lock() else {
                continue;
            };
            let inst = match self.owner(&deleted_ctx, &uuid).await {
                Owner::Deleted(inst) => inst,
                Owner::Moved(inst) => {
                    info!(instance = %uuid, now_on = ?inst.host(), "removing the container of an instance that lives on another host now");
                    self.remove_here(&uuid, Some(&inst)).await;
                    continue;
                }
                Owner::Elsewhere | Owner::Unknown => continue,
            };
            if !rd.timeout.is_zero() && !deleted_long_enough(inst.as_ref(), rd.timeout) {
                continue;
            }
            match rd.action {
                RunningDeletedAction::Noop => {}
                RunningDeletedAction::Log => {
                    warn!(instance = %uuid, "the container of a deleted instance is still on this host (running_deleted_instance_action = log)")
                }
                RunningDeletedAction::Shutdown => {
                    info!(instance = %uuid, "stopping the container of a deleted instance");
                    if let Err(e) = self
                        .driver
                        .power_off(&uuid, self.cfg.shutdown_timeout)
                        .await
                    {
                        warn!(instance = %uuid, error = %e, "could not stop the container of a deleted instance");
                    }
                }
                RunningDeletedAction::Reap => {
                    info!(instance = %uuid, "removing the container of a deleted instance");
                    self.remove_here(&uuid, inst.as_ref()).await;
                }
            }
        }
    }

    async fn owner(&self, ctx: &RequestContext, uuid: &str) -> Owner {
        match self.conductor.instance_get(ctx, uuid).await {
            Ok(inst) => {
                let deleted = inst.vm_state() == Some(VmState::Deleted)
                    || inst.object().get("deleted").and_then(|v| v.as_bool()) == Some(true);
                if deleted {
                    Owner::Deleted(Some(inst))
                } else if inst.host() != Some(self.cfg.host.as_str())
                    && inst.task_state().is_none()
                    && inst.vm_state() != Some(VmState::Resized)
                {
                    Owner::Moved(inst)
                } else {
                    Owner::Elsewhere
                }
            }
            Err(e) if e.is_remote(Class::InstanceNotFound) => Owner::Deleted(None),
            Err(e) => {
                warn!(instance = %uuid, error = %e, "running deleted instances: cannot read the instance");
                Owner::Unknown
            }
        }
    }

    /// Remove the container of `uuid` and, with its record, its VIFs here.
    async fn remove_here(&self, uuid: &str, inst: Option<&Instance>) {
        if let Err(e) = self.driver.destroy(uuid, self.cfg.shutdown_timeout).await {
            warn!(instance = %uuid, error = %e, "could not remove the container");
            return;
        }
        if let Some(inst) = inst {
            if let Err(e) = self.network.unplug(inst, inst.network_info()).await {
                warn!(instance = %uuid, error = %e, "could not remove the VIFs");
            }
        }
    }
}

/// Deleted at least `timeout` ago (a record without `deleted_at`, or none at
/// all, counts as long enough).
fn deleted_long_enough(inst: Option<&Instance>, timeout: Duration) -> bool {
    let Some(at) = inst
        .and_then(|i| i.object().get_str("deleted_at"))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return true;
    };
    let age = chrono::Utc::now().signed_duration_since(at.with_timezone(&chrono::Utc));
    age.to_std().is_ok_and(|a| a >= timeout)
}
