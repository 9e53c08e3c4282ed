//! The compute manager: every compute RPC method and the instance state machine.
//!
//! Where a method is handled: [`endpoint`] decodes each message into a typed
//! [`request::ComputeRequest`] and hands it to one handler, which says in its
//! doc comment what it does to the instance's states:
//!
//! - [`build`]: `build_and_run_instance`; [`rebuild`]: `rebuild_instance`;
//! - [`power`]: stop, start, pause, unpause, suspend, resume, soft delete,
//!   restore (one table), reboot;
//! - [`delete`]: `terminate_instance`; [`snapshot`]: snapshot and backup;
//! - [`shelve`]: shelve, shelve offload, unshelve; [`resize`]: resize (in
//!   place on the same host, through Glance to another) with its confirm
//!   and revert; [`evacuate`]: evacuation here, and its leftovers removed at
//!   the failed host's start-up;
//! - [`query`]: console output, diagnostics, host uptime, unsupported methods;
//! - [`console`]: `get_serial_console`, `validate_console_port`;
//! - [`events`]: external instance events (`network-vif-plugged`,
//!   `network-changed`, `network-vif-deleted`);
//! - [`interfaces`]: `attach_interface`, `detach_interface`;
//! - [`network`]: the instance's Neutron ports and info cache around the
//!   operations (allocate, refresh, deallocate);
//! - [`action`]: what every operation does around its steps (lock, action
//!   event, fault, task state reverted);
//! - [`service`]: registration, heartbeat, resource reports;
//!   [`sync`]: power-state sync with the driver and start-up recovery;
//! - [`backends`]: the seams to images, Neutron, host networking and
//!   user_data options.
//!
//! Operations on one instance run one at a time (a lock per instance uuid);
//! different instances run in parallel.

pub mod action;
pub mod backends;
pub mod build;
pub mod console;
pub mod delete;
pub mod endpoint;
pub mod evacuate;
pub mod events;
pub mod interfaces;
pub mod moves;
pub mod network;
pub mod power;
pub mod precache;
pub mod query;
pub mod reap;
pub mod rebuild;
pub mod request;
pub mod reschedule;
pub mod resize;
pub mod service;
pub mod shelve;
pub mod snapshot;
pub mod sync;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clients::conductor::Conductor;
use crate::clients::placement::Placement;
use crate::console::ConsoleServer;
use crate::tasks::Tasks;
use crate::virt::ComputeDriver;

pub use backends::{ImageBackend, NetworkApi, NetworkBackend, OptionsBackend};
pub use power::PowerOp;
pub use request::{ComputeRequest, SnapshotKind};

/// Settings of the manager itself (from nova.conf).
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Nova's `CONF.host`: our service's and our instances' host.
    pub host: String,
    /// Graceful stop time before a container is killed (`shutdown_timeout`).
    pub shutdown_timeout: Duration,
    /// Docker network joined by instances booted with no Nova networks
    /// (`[docker] default_network`); None = no network.
    pub default_network: Option<String>,
    /// How long a build waits for `network-vif-plugged` (`vif_plugging_timeout`)
    /// and whether a timeout fails it (`vif_plugging_is_fatal`).
    pub vif_plugging_timeout: Duration,
    pub vif_plugging_is_fatal: bool,
    /// Start again the containers of running instances after the Docker
    /// daemon restarted (`[docker] resume_after_engine_restart`, default on).
    pub resume_after_engine_restart: bool,
    /// Start a new container while Neutron wires its ports, and wait for
    /// `network-vif-plugged` only before ACTIVE (`[docker]
    /// start_before_vif_plugged`, default on); off: start it after the event.
    pub start_before_vif_plugged: bool,
    /// The usage period `instance.exists` reports
    /// (`instance_usage_audit_period`, default a month).
    pub audit_period: crate::notifications::AuditPeriod,
    /// What becomes of the containers of deleted instances
    /// (`running_deleted_instance_action` / `_timeout`).
    pub running_deleted: reap::RunningDeleted,
    /// Builds run at once on the host (`max_concurrent_builds`, default 10;
    /// 0 = no limit); the others are claimed and wait.
    pub max_concurrent_builds: usize,
    /// When a shelved instance leaves this host (`shelved_offload_time`).
    pub shelved_offload: shelve::ShelvedOffload,
    /// `my_ip`: the address a migration names this host by (`dest_host`).
    pub my_ip: String,
}

impl ManagerConfig {
    /// Nova's defaults for `host`.
    pub fn new(host: impl Into<String>) -> Self {
        ManagerConfig {
            host: host.into(),
            shutdown_timeout: Duration::from_secs(60),
            default_network: None,
            vif_plugging_timeout: Duration::from_secs(300),
            vif_plugging_is_fatal: true,
            resume_after_engine_restart: true,
            start_before_vif_plugged: true,
            audit_period: crate::notifications::AuditPeriod::Month(1),
            running_deleted: reap::RunningDeleted::default(),
            max_concurrent_builds: 10,
            shelved_offload: shelve::ShelvedOffload::AtOnce,
            my_ip: "127.0.0.1".into(),
        }
    }
}

/// The services the manager drives.
pub struct Backends {
    pub conductor: Conductor,
    /// None when nova.conf names no placement (resources are not reported).
    pub placement: Option<Arc<dyn Placement>>,
    pub driver: Arc<dyn ComputeDriver>,
    pub images: Arc<dyn ImageBackend>,
    /// Neutron (ports, network_info); [`backends::NoNeutron`] without `[neutron]`.
    pub network_api: Arc<dyn NetworkApi>,
    /// The host side of the VIFs.
    pub network: Arc<dyn NetworkBackend>,
    pub options: Arc<dyn OptionsBackend>,
    /// The serial consoles (disabled unless `[serial_console] enabled`).
    pub consoles: Arc<ConsoleServer>,
    /// Nova's versioned notifications ([`crate::notifications::NoNotifier`]
    /// unless nova.conf asks for them).
    pub notifier: Arc<dyn crate::notifications::Notifier>,
}

/// Everything the manager works with.
pub struct ComputeManager {
    pub cfg: ManagerConfig,
    conductor: Conductor,
    placement: Option<Arc<dyn Placement>>,
    driver: Arc<dyn ComputeDriver>,
    images: Arc<dyn ImageBackend>,
    network_api: Arc<dyn NetworkApi>,
    network: Arc<dyn NetworkBackend>,
    options: Arc<dyn OptionsBackend>,
    consoles: Arc<ConsoleServer>,
    notifier: Arc<dyn crate::notifications::Notifier>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The ComputeNode record's id and uuid, once registered.
    node: Mutex<Option<(i64, String)>>,
    events: events::InstanceEvents,
    tasks: Tasks,
    /// Nova's `_build_semaphore` (None: no limit).
    build_slots: Option<tokio::sync::Semaphore>,
}

impl ComputeManager {
    /// The manager; what it starts in the background goes on `tasks`.
    pub fn new(cfg: ManagerConfig, b: Backends, tasks: Tasks) -> Self {
        let build_slots = (cfg.max_concurrent_builds > 0)
            .then(|| tokio::sync::Semaphore::new(cfg.max_concurrent_builds));
        ComputeManager {
            cfg,
            conductor: b.conductor,
            placement: b.placement,
            driver: b.driver,
            images: b.images,
            network_api: b.network_api,
            network: b.network,
            options: b.options,
            consoles: b.consoles,
            notifier: b.notifier,
            locks: Mutex::new(HashMap::new()),
            node: Mutex::new(None),
            events: events::InstanceEvents::default(),
            tasks,
            build_slots,
        }
    }

    pub fn driver(&self) -> &Arc<dyn ComputeDriver> {
        &self.driver
    }

    /// Where the manager's background work runs.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The local image references and ids our containers use (what the image
    /// cache must keep).
    pub async fn images_in_use(&self) -> std::collections::HashSet<String> {
        match self.driver.list_instances().await {
            Ok(list) => list
                .into_iter()
                .flat_map(|c| c.image.into_iter().chain(c.image_id))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list our containers");
                Default::default()
            }
        }
    }

    pub(crate) fn node(&self) -> Option<(i64, String)> {
        self.node.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_node(&self, id: i64, uuid: String) {
        *self.node.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, uuid));
    }
}
