//! External instance events (Neutron's `network-vif-plugged`, ...): a build
//! registers what it expects before plugging, `external_instance_event` delivers,
//! the build waits with Nova's `vif_plugging_timeout` / `vif_plugging_is_fatal`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::request::ExternalEvent;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::{Class, NovaException};

/// One expected event: (name, tag) and where its status arrives.
pub type Wait = ((String, String), oneshot::Receiver<String>);

type Key = (String, String, String);

#[derive(Default)]
pub struct InstanceEvents {
    waiters: Mutex<HashMap<Key, oneshot::Sender<String>>>,
}

impl InstanceEvents {
    /// Register waiters before the action that causes the events.
    pub fn expect(&self, uuid: &str, events: &[(String, String)]) -> Vec<Wait> {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        events
            .iter()
            .map(|(name, tag)| {
                let (tx, rx) = oneshot::channel();
                w.insert((uuid.to_string(), name.clone(), tag.clone()), tx);
                ((name.clone(), tag.clone()), rx)
            })
            .collect()
    }

    /// Hand over an event; true when somebody waited for it.
    pub fn deliver(&self, uuid: &str, name: &str, tag: &str, status: &str) -> bool {
        let tx = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(uuid.to_string(), name.to_string(), tag.to_string()));
        tx.is_some_and(|tx| tx.send(status.to_string()).is_ok())
    }

    /// Wait for `waits` until `timeout` in all. A failed event, or a timeout, is an
    /// error when `fatal`, a warning otherwise. Undelivered waiters of the instance
    /// are forgotten afterwards.
    pub async fn wait(
        &self,
        uuid: &str,
        waits: Vec<Wait>,
        timeout: Duration,
        fatal: bool,
    ) -> Result<(), NovaException> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut result = Ok(());
        for ((name, tag), rx) in waits {
            let failure = match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(status)) if status == "failed" => {
                    Some(format!("Neutron reported {name} for {tag} as failed"))
                }
                Ok(Ok(_)) => None,
                Ok(Err(_)) | Err(_) => Some(format!("timed out waiting for {name} for {tag}")),
            };
            if let Some(f) = failure {
                if fatal {
                    result = Err(NovaException::nova(
                        Class::VirtualInterfaceCreateException,
                        format!("Virtual Interface creation failed: {f}"),
                        json!({"code": 500}),
                    ));
                    break;
                }
                warn!(
                    instance = uuid,
                    "{f}; vif_plugging_is_fatal is False: going on"
                );
            }
        }
        self.forget(uuid);
        result
    }

    /// Drop the waiters of an instance (its build failed or gave up waiting).
    pub fn forget(&self, uuid: &str) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(u, _, _), _| u != uuid);
    }
}

impl ComputeManager {
    /// Wait for the events a build registered, as `vif_plugging_timeout` and
    /// `vif_plugging_is_fatal` say.
    pub(crate) async fn wait_for_events(
        &self,
        uuid: &str,
        waits: Vec<Wait>,
    ) -> Result<(), NovaException> {
        self.events
            .wait(
                uuid,
                waits,
                self.cfg.vif_plugging_timeout,
                self.cfg.vif_plugging_is_fatal,
            )
            .await
    }

    /// external_instance_event (cast): `network-vif-plugged` and friends,
    /// handed to whoever waits for them (a build waiting for its VIFs).
    ///
    /// `network-vif-plugged` / `-unplugged` wake a waiting build (others are
    /// logged); `network-changed` refreshes the info cache from Neutron;
    /// `network-vif-deleted` takes the VIF of a port deleted in Neutron out of
    /// the container and the cache. The two last run after the events are
    /// delivered, so a build waiting for `network-vif-plugged` never waits
    /// behind them.
    pub async fn external_instance_event(&self, ctx: &RequestContext, events: &[ExternalEvent]) {
        let mut later = Vec::new();
        for e in events {
            let tag = e.tag.as_deref().unwrap_or_default();
            let waited = self
                .events
                .deliver(&e.instance_uuid, &e.name, tag, &e.status);
            info!(
                instance = %e.instance_uuid,
                name = %e.name,
                tag,
                status = %e.status,
                waited,
                "external instance event"
            );
            if matches!(e.name.as_str(), "network-changed" | "network-vif-deleted") {
                later.push(e);
            }
        }
        for e in later {
            if let Err(err) = self.network_event(ctx, e).await {
                if err.instance_gone() || err.is(Class::PortNotFound) {
                    info!(instance = %e.instance_uuid, name = %e.name, error = %err, "network event: nothing to do");
                } else {
                    warn!(instance = %e.instance_uuid, name = %e.name, error = %err, "network event failed");
                }
            }
        }
    }

    async fn network_event(
        &self,
        ctx: &RequestContext,
        e: &ExternalEvent,
    ) -> Result<(), NovaException> {
        let mut inst = self.conductor.instance_get(ctx, &e.instance_uuid).await?;
        if inst.host() != Some(self.cfg.host.as_str()) {
            return Ok(());
        }
        match e.name.as_str() {
            "network-changed" => self.refresh_network_info(ctx, &mut inst).await,
            _ => {
                let port = e.tag.as_deref().unwrap_or_default();
                let lock = self.instance_lock(&e.instance_uuid);
                let _g = lock.lock().await;
                self.detach_steps(ctx, &mut inst, port, false).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tag: &str) -> Vec<(String, String)> {
        vec![("network-vif-plugged".into(), tag.into())]
    }

    #[tokio::test]
    async fn delivered_events_end_the_wait() {
        let e = InstanceEvents::default();
        let w = e.expect("i1", &ev("port-1"));
        assert!(!e.deliver("i1", "network-vif-plugged", "other-port", "completed"));
        assert!(e.deliver("i1", "network-vif-plugged", "port-1", "completed"));
        e.wait("i1", w, Duration::from_secs(5), true).await.unwrap();
    }

    #[tokio::test]
    async fn timeout_is_fatal_or_not_as_configured() {
        let e = InstanceEvents::default();
        let w = e.expect("i1", &ev("port-1"));
        let err = e
            .wait("i1", w, Duration::from_millis(20), true)
            .await
            .unwrap_err();
        assert_eq!(err.class, "VirtualInterfaceCreateException");
        assert!(err.message.contains("port-1"), "{}", err.message);
        // nothing left behind: a late event finds no waiter
        assert!(!e.deliver("i1", "network-vif-plugged", "port-1", "completed"));
        let w = e.expect("i1", &ev("port-1"));
        e.wait("i1", w, Duration::from_millis(20), false)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_failed_event_fails_the_build() {
        let e = InstanceEvents::default();
        let w = e.expect("i1", &ev("port-1"));
        e.deliver("i1", "network-vif-plugged", "port-1", "failed");
        let err = e
            .wait("i1", w, Duration::from_secs(5), true)
            .await
            .unwrap_err();
        assert!(err.message.contains("failed"));
    }
}
