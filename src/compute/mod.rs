//! The compute manager: every compute RPC method and the instance state machine.
//!
//! - [`endpoint`]: the RPC method table — where each compute RPC method is handled;
//! - [`build`]: `build_and_run_instance` and `rebuild_instance`;
//! - [`ops`]: the lifecycle casts and calls (stop, start, reboot, pause, ..., delete);
//! - [`service`]: start-up (Service, ComputeNode, placement), heartbeat, resource
//!   reports and power-state sync with Docker;
//! - [`backends`]: the seams to images, networking and user_data options.
//!
//! Operations on one instance run one at a time (a lock per instance uuid);
//! different instances run in parallel.

pub mod backends;
pub mod build;
pub mod endpoint;
pub mod events;
pub mod ops;
pub mod service;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

use crate::clients::conductor::Conductor;
use crate::clients::placement::PlacementClient;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{task_state, vm_state, Instance};
use crate::virt::docker::DockerDriver;

pub use backends::{ImageBackend, NetworkBackend, OptionsBackend, SnapshotKind};

/// Settings of the manager itself.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub host: String,
    /// Graceful stop time before a container is killed (`shutdown_timeout`).
    pub shutdown_timeout: Duration,
    /// Docker network joined by instances booted with no Nova networks
    /// (`[docker] default_network`); None = no network.
    pub default_network: Option<String>,
}

/// Everything the manager works with.
pub struct ComputeManager {
    pub cfg: ManagerConfig,
    pub conductor: Conductor,
    pub placement: Option<PlacementClient>,
    pub driver: DockerDriver,
    pub images: Arc<dyn ImageBackend>,
    pub network: Arc<dyn NetworkBackend>,
    pub options: Arc<dyn OptionsBackend>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The ComputeNode record's id and uuid, once registered.
    node: Mutex<Option<(i64, String)>>,
    events: events::InstanceEvents,
    /// How long to wait for network-vif-plugged, and whether a timeout is fatal.
    pub vif_plugging: (Duration, bool),
}

impl ComputeManager {
    pub fn new(
        cfg: ManagerConfig,
        conductor: Conductor,
        placement: Option<PlacementClient>,
        driver: DockerDriver,
        images: Arc<dyn ImageBackend>,
        network: Arc<dyn NetworkBackend>,
        options: Arc<dyn OptionsBackend>,
    ) -> Self {
        ComputeManager {
            cfg,
            conductor,
            placement,
            driver,
            images,
            network,
            options,
            locks: Mutex::new(HashMap::new()),
            node: Mutex::new(None),
            events: events::InstanceEvents::default(),
            vif_plugging: (Duration::from_secs(300), true),
        }
    }

    pub(crate) fn expect_events(
        &self,
        uuid: &str,
        events: &[(String, String)],
    ) -> Vec<events::Wait> {
        self.events.expect(uuid, events)
    }

    pub(crate) fn deliver_event(&self, uuid: &str, name: &str, tag: &str, status: &str) -> bool {
        self.events.deliver(uuid, name, tag, status)
    }

    pub(crate) async fn wait_events(
        &self,
        uuid: &str,
        waits: Vec<events::Wait>,
    ) -> Result<(), NovaException> {
        let (timeout, fatal) = self.vif_plugging;
        self.events.wait(uuid, waits, timeout, fatal).await
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

    pub(crate) fn node(&self) -> Option<(i64, String)> {
        self.node.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_node(&self, id: i64, uuid: String) {
        *self.node.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, uuid));
    }

    /// Record a failure the way Nova's decorators do: an InstanceFault, the task
    /// state reverted (`reverts_task_state`), optionally the instance in ERROR.
    pub(crate) async fn fail_instance(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        e: &NovaException,
        set_error: bool,
    ) {
        warn!(instance = inst.uuid(), class = %e.class, error = %e.message, "operation failed");
        if let Err(fe) = self
            .conductor
            .add_fault(ctx, inst.uuid(), &self.cfg.host, e)
            .await
        {
            warn!(instance = inst.uuid(), error = %fe, "could not record the instance fault");
        }
        if set_error {
            inst.set_vm_state(vm_state::ERROR);
        }
        inst.set_task_state(None);
        if let Err(se) = self.conductor.instance_save(ctx, inst, None).await {
            warn!(instance = inst.uuid(), error = %se, "could not save the instance after a failure");
        }
    }

    /// Run `f` as the instance action event `compute_<name>` (event_start, then
    /// event_finish with the failure if any), as `wrap_instance_event` does.
    pub(crate) async fn with_event<T, F>(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        name: &str,
        f: F,
    ) -> Result<T, NovaException>
    where
        F: std::future::Future<Output = Result<T, NovaException>>,
    {
        let event = format!("compute_{name}");
        if let Err(e) = self
            .conductor
            .event_start(ctx, uuid, &event, &self.cfg.host)
            .await
        {
            // an operation Nova's API did not record (no InstanceAction) still runs
            info!(instance = uuid, event, error = %e, "no instance action event");
        }
        let r = f.await;
        let failure = r.as_ref().err().map(|e| e.to_string());
        if let Err(e) = self
            .conductor
            .event_finish(ctx, uuid, &event, failure.as_deref())
            .await
        {
            info!(instance = uuid, event, error = %e, "could not finish the instance action event");
        }
        r
    }
}

/// Expected task states as `instance.save(expected_task_state=...)` takes them.
pub(crate) fn expect(states: &[&'static str]) -> Vec<Option<&'static str>> {
    states.iter().map(|s| Some(*s)).collect()
}

/// `task_states.soft_reboot_states` / `hard_reboot_states`.
pub(crate) const SOFT_REBOOT_STATES: &[&str] = &[
    task_state::REBOOTING,
    task_state::REBOOT_PENDING,
    task_state::REBOOT_STARTED,
];
pub(crate) const HARD_REBOOT_STATES: &[&str] = &[
    task_state::REBOOTING_HARD,
    task_state::REBOOT_PENDING_HARD,
    task_state::REBOOT_STARTED_HARD,
];

pub(crate) fn now_value() -> serde_json::Value {
    json!(crate::objects::now())
}
