//! The daemon: everything built from nova.conf, registered with Nova, serving
//! compute RPC until SIGTERM. The periodic work (heartbeat, resource reports,
//! power-state sync, image cache pruning) and the engine's event watcher run
//! beside the RPC server; every one of them is a task on one [`Tasks`], and a
//! stop waits for all of them within `graceful_shutdown_timeout`.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::clients::conductor::Conductor;
use crate::clients::keystone::{AuthOptions, Session};
use crate::clients::neutron::Neutron;
use crate::clients::placement::{Placement, PlacementClient};
use crate::compute::backends::{NoNeutron, UserDataOptions};
use crate::compute::endpoint::ComputeEndpoint;
use crate::compute::service::{node_uuid, ResourcePolicy};
use crate::compute::{Backends, ComputeManager, ManagerConfig, NetworkApi};
use crate::config::{ConfigError, DefaultConfig, Ini};
use crate::console::{ConsoleConfig, ConsoleServer};
use crate::image::{ImageConfig, ImageService};
use crate::network::neutron::{NeutronApi, NeutronConfig};
use crate::network::VifManager;
use crate::objects::NovaObject;
use crate::rpc::{Dispatcher, RabbitConfig, RpcClient, RpcServer};
use crate::tasks::Tasks;
use crate::virt::docker::{DockerConfig, DockerDriver, DockerImages};

impl From<crate::rpc::RpcError> for DaemonError {
    fn from(e: crate::rpc::RpcError) -> Self {
        DaemonError::Rpc(Box::new(e))
    }
}

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Setup(String),
    #[error("messaging: {0}")]
    Rpc(Box<crate::rpc::RpcError>),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DaemonError + '_ {
    move |e| DaemonError::Setup(format!("{what}: {e}"))
}

/// Everything the configuration says, checked before anything starts.
pub struct Settings {
    pub default: DefaultConfig,
    pub rabbit: RabbitConfig,
    pub docker: DockerConfig,
    pub image: ImageConfig,
    pub policy: crate::userdata::Policy,
    pub network: VifManager,
    pub placement: AuthOptions,
    /// `[neutron]`; None when nova.conf names no Neutron (no auth_url,
    /// endpoint or endpoint_override).
    pub neutron: Option<(AuthOptions, NeutronConfig)>,
    /// `[service_user]` when `send_service_user_token` is set.
    pub service_user: Option<Arc<Session>>,
    pub default_network: Option<String>,
    pub resume_after_engine_restart: bool,
    pub start_before_vif_plugged: bool,
    /// `[serial_console]`, `[consoleauth]`.
    pub console: ConsoleConfig,
    /// `[metrics]`.
    pub metrics: crate::metrics::MetricsConfig,
    /// `[notifications]`, `[oslo_messaging_notifications]`.
    pub notifications: crate::notifications::NotificationConfig,
}

impl Settings {
    pub fn from_ini(ini: &Ini) -> Result<Self, DaemonError> {
        let default = DefaultConfig::from_ini(ini)?;
        Ok(Settings {
            rabbit: RabbitConfig::from_ini(ini)?,
            docker: DockerConfig::from_ini(ini)?,
            image: ImageConfig::from_ini(ini)?,
            policy: crate::userdata::Policy::from_ini(ini)?,
            network: VifManager::from_ini(ini).map_err(setup("[docker] networking"))?,
            placement: AuthOptions::from_group(ini, "placement")?,
            neutron: neutron_settings(ini)?,
            service_user: crate::clients::keystone::service_user(ini)?,
            default_network: ini.group("docker").opt_nonempty("default_network")?,
            resume_after_engine_restart: ini
                .group("docker")
                .bool("resume_after_engine_restart", true)?,
            start_before_vif_plugged: ini.group("docker").bool("start_before_vif_plugged", true)?,
            console: ConsoleConfig::from_ini(ini)?,
            metrics: crate::metrics::MetricsConfig::from_ini(ini)?,
            notifications: crate::notifications::NotificationConfig::from_ini(ini)?,
            default,
        })
    }
}

impl Settings {
    /// What the daemon will use, for `--check-config`: one `name: value` line
    /// each, with no secret (the transport URL's passwords are hidden; no
    /// password is printed).
    pub fn describe(&self) -> Vec<String> {
        let auth = |a: &AuthOptions| match (&a.auth_url, &a.username) {
            (Some(url), Some(user)) => format!(
                "{:?} auth at {url} as {user} (project {})",
                a.auth_type,
                a.project_name.as_deref().unwrap_or("-")
            ),
            (Some(url), None) => format!("{:?} auth at {url}", a.auth_type),
            _ => match (&a.endpoint_override, &a.endpoint) {
                (Some(e), _) | (None, Some(e)) => format!("{:?} auth, endpoint {e}", a.auth_type),
                _ => "not configured".into(),
            },
        };
        let on = |b: bool| if b { "yes" } else { "no" };
        let c = &self.console;
        vec![
            format!("host: {}", self.default.host),
            format!("transport_url: {}", self.rabbit.transport_url),
            format!("docker: {}", self.docker.host_url),
            format!("docker state_dir: {}", self.docker.state_dir.display()),
            format!("vif driver: {}", self.network.driver_name()),
            format!("placement: {}", auth(&self.placement)),
            format!(
                "neutron: {}",
                self.neutron.as_ref().map_or(
                    "not configured: only builds with no network (--nic none) work".into(),
                    |(a, _)| auth(a)
                )
            ),
            format!(
                "glance: {}",
                match (
                    &self.image.glance.api_servers,
                    auth(&self.image.glance.auth)
                ) {
                    (servers, _) if !servers.is_empty() =>
                        format!("api_servers {}", servers.join(", ")),
                    (_, a) if a != "not configured" => a,
                    _ => "the request's token, endpoint from the Keystone catalog".into(),
                }
            ),
            format!("registries: {}", {
                let r = &self.image.registry;
                format!(
                    "credentials {}, CAs {}, insecure [{}], allowed [{}], snapshots pushed to {}",
                    r.auth_file
                        .as_ref()
                        .map_or("none".into(), |p| p.display().to_string()),
                    r.ca_file
                        .as_ref()
                        .map_or("the system's".into(), |p| p.display().to_string()),
                    r.insecure_registries.join(", "),
                    if r.allowed_registries.is_empty() {
                        "any".into()
                    } else {
                        r.allowed_registries.join(", ")
                    },
                    r.snapshot_repository
                        .as_ref()
                        .map_or("no registry".into(), |t| t.to_string()),
                )
            }),
            format!(
                "versioned notifications: {}",
                if self.notifications.enabled {
                    format!("on, topics {}", self.notifications.topics.join(", "))
                } else {
                    "off".into()
                }
            ),
            format!(
                "metrics: {}",
                self.metrics
                    .listen_address
                    .map_or("off".into(), |a| format!("http://{a}/metrics"))
            ),
            format!(
                "service token to neutron and glance: {}",
                on(self.service_user.is_some())
            ),
            format!(
                "serial console: {}",
                if c.enabled {
                    format!(
                        "on, listening on {} ports {}:{} for the proxy at {}; shell {}",
                        c.proxyclient_address,
                        c.ports.0,
                        c.ports.1,
                        c.base_url,
                        self.docker.console_shell.as_deref().unwrap_or("off")
                    )
                } else {
                    "off".into()
                }
            ),
            format!(
                "user_data: privileged containers allowed: {}",
                on(self.policy.allow_privileged)
            ),
            format!(
                "default docker network (no Nova networks): {}",
                self.default_network.as_deref().unwrap_or("none")
            ),
        ]
    }
}

fn neutron_settings(ini: &Ini) -> Result<Option<(AuthOptions, NeutronConfig)>, DaemonError> {
    let opts = AuthOptions::from_group(ini, "neutron")?;
    if opts.endpoint_override.is_none() && opts.endpoint.is_none() && opts.auth_url.is_none() {
        return Ok(None);
    }
    let cfg = NeutronConfig {
        ovs_bridge: ini.group("neutron").str("ovs_bridge", "br-int")?,
    };
    Ok(Some((opts, cfg)))
}

/// Run until SIGTERM/SIGINT (or until the RPC server fails for good).
pub async fn run(s: Settings) -> Result<(), DaemonError> {
    let tasks = Tasks::new();
    tasks.spawn(stop_on_signal(tasks.clone()));
    info!(host = %s.default.host, transport = %s.rabbit.transport_url, "starting nova-docker-compute");
    if let Some(addr) = s.metrics.listen_address {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(setup(&format!("[metrics] listen_address {addr}")))?;
        info!(%addr, "serving Prometheus metrics on /metrics");
        tasks.spawn(crate::metrics::serve(l, tasks.clone()));
    }
    let (manager, images, client) = build(&s, &tasks).await?;
    let outcome = serve(&s, &tasks, &manager, images).await;
    let clean = tasks.shut_down(s.default.graceful_shutdown_timeout).await;
    client.close().await;
    outcome?;
    info!(clean, "stopped");
    Ok(())
}

/// The manager and what it drives, from the settings.
async fn build(
    s: &Settings,
    tasks: &Tasks,
) -> Result<(Arc<ComputeManager>, Arc<ImageService>, RpcClient), DaemonError> {
    let host = s.default.host.clone();
    let driver = DockerDriver::connect(s.docker.clone(), host.clone())
        .await
        .map_err(setup("Docker engine"))?;
    let mut image_cfg = s.image.clone();
    image_cfg.glance.service_user = s.service_user.clone();
    let images = Arc::new(
        ImageService::new(
            Arc::new(DockerImages::new(driver.docker_unbounded())),
            image_cfg,
        )
        .map_err(setup("image service"))?,
    );
    images.run_on(tasks.clone());
    let client = RpcClient::connect(s.rabbit.clone()).await?;
    let options = Arc::new(UserDataOptions {
        policy: s.policy.clone(),
        lookup: Box::new(driver.docker().clone()),
    });
    let driver: Arc<dyn crate::virt::ComputeDriver> =
        Arc::new(crate::virt::timed::Timed::new(driver));
    let consoles = Arc::new(ConsoleServer::new(
        s.console.clone(),
        driver.clone(),
        tasks.clone(),
    ));
    let backends = Backends {
        conductor: Conductor::new(Arc::new(client.clone()), s.default.rpc_response_timeout),
        placement: placement(&s.placement)?,
        driver,
        images: images.clone(),
        network_api: network_api(s)?,
        network: Arc::new(s.network.clone()),
        options,
        consoles,
        notifier: if s.notifications.enabled {
            info!(topics = ?s.notifications.topics, "sending versioned notifications");
            Arc::new(crate::notifications::AmqpNotifier::new(
                client.clone(),
                &s.notifications,
                &s.default.host,
            ))
        } else {
            Arc::new(crate::notifications::NoNotifier)
        },
    };
    let cfg = ManagerConfig {
        host,
        shutdown_timeout: s.default.shutdown_timeout,
        default_network: s.default_network.clone(),
        vif_plugging_timeout: s.default.vif_plugging_timeout,
        vif_plugging_is_fatal: s.default.vif_plugging_is_fatal,
        resume_after_engine_restart: s.resume_after_engine_restart,
        start_before_vif_plugged: s.start_before_vif_plugged,
        audit_period: s.notifications.audit_period,
        running_deleted: s.default.running_deleted,
        max_concurrent_builds: s.default.max_concurrent_builds,
        shelved_offload: crate::compute::shelve::ShelvedOffload::from_secs(
            s.default.shelved_offload_time,
        ),
        my_ip: s.default.my_ip.clone(),
    };
    let manager = Arc::new(ComputeManager::new(cfg, backends, tasks.clone()));
    Ok((manager, images, client))
}

/// Neutron, through `[neutron]` (with the service token of `[service_user]`).
fn network_api(s: &Settings) -> Result<Arc<dyn NetworkApi>, DaemonError> {
    let Some((opts, cfg)) = &s.neutron else {
        warn!("no [neutron] auth_url or endpoint_override configured: only builds with no network (--nic none) will work");
        return Ok(Arc::new(NoNeutron));
    };
    let session = Session::new(opts.clone())
        .map_err(setup("[neutron]"))?
        .with_service_user(s.service_user.clone());
    Ok(Arc::new(NeutronApi::new(
        Neutron::new(Arc::new(session)),
        cfg.clone(),
    )))
}

/// The placement client of `[placement]`, if it names placement at all.
fn placement(opts: &AuthOptions) -> Result<Option<Arc<dyn Placement>>, DaemonError> {
    if opts.endpoint_override.is_none() && opts.endpoint.is_none() && opts.auth_url.is_none() {
        warn!("no [placement] endpoint or auth_url configured: resources are not reported to placement");
        return Ok(None);
    }
    let session = Session::new(opts.clone()).map_err(setup("[placement]"))?;
    let http = session.http().clone();
    Ok(Some(Arc::new(PlacementClient::new(
        http,
        Arc::new(session),
    ))))
}

/// Register like nova-compute, finish what a crash cut off, serve RPC and the
/// periodic work until the daemon stops.
async fn serve(
    s: &Settings,
    tasks: &Tasks,
    manager: &Arc<ComputeManager>,
    images: Arc<ImageService>,
) -> Result<(), DaemonError> {
    let host = &s.default.host;
    if manager.wait_for_conductor().await.is_err() {
        return Ok(()); // stopped while waiting
    }
    let service = manager
        .register_service()
        .await
        .map_err(setup("Service record"))?;
    let state_path = s.default.state_path.clone();
    let node = tokio::task::spawn_blocking(move || node_uuid(&state_path))
        .await
        .map_err(setup("compute_id"))?
        .map_err(setup("compute_id"))?;
    let policy = ResourcePolicy::from_config(&s.default);
    manager
        .register_node(
            service.get_i64("id").unwrap_or(0),
            &node,
            &policy,
            &s.default.my_ip,
        )
        .await
        .map_err(setup("ComputeNode"))?;
    // the heartbeat from before start-up: resolving cut-off operations can take
    // a while (a delete waits up to shutdown_timeout per container), and a
    // service whose heartbeat is older than service_down_time makes nova-api
    // delete its instances from the database behind our back
    tasks.spawn(heartbeat(
        manager.clone(),
        service,
        s.default.report_interval,
    ));
    // what an evacuation away from this host left here, before anything of
    // ours is started again
    manager.destroy_evacuated().await;
    manager.start_up().await;
    // what was deleted while we were away (Nova does it only periodically)
    if !s.default.running_deleted_instance_poll_interval.is_zero() {
        manager.reap_deleted().await;
    }
    let server_done = serve_rpc(s, tasks, manager)?;
    info!(%host, node = %node, "compute service up");
    crate::systemd::notify("READY=1");
    if let Some(every) = crate::systemd::watchdog_interval() {
        tasks.spawn(watchdog(tasks.clone(), every));
    }
    let every = Periods {
        resources: s
            .default
            .resource_tracker_interval
            .max(Duration::from_secs(10)),
        power_sync: Duration::from_secs(s.default.sync_power_state_interval.max(10) as u64),
        image_prune: Duration::from_secs(600),
        reap_deleted: Some(s.default.running_deleted_instance_poll_interval)
            .filter(|d| !d.is_zero())
            .map(|d| d.max(Duration::from_secs(10))),
        offload_shelved: Some(s.default.shelved_poll_interval)
            .filter(|d| !d.is_zero() && s.default.shelved_offload_time > 0)
            .map(|d| d.max(Duration::from_secs(10))),
    };
    tasks.spawn(periodic(
        manager.clone(),
        images,
        policy,
        s.default.my_ip.clone(),
        every,
    ));
    tasks.spawn(manager.clone().watch_events());
    if s.default.heal_instance_info_cache_interval > 0 {
        let every = Duration::from_secs(s.default.heal_instance_info_cache_interval as u64);
        tasks.spawn(heal_info_cache(manager.clone(), every));
    }
    tasks.stopping().await;
    // the RPC server's own result: a fatal messaging error stops the daemon
    server_done.await.unwrap_or(Ok(()))
}

/// The RPC server as a task; its result arrives on the returned channel, and
/// its end (for whatever reason) stops the daemon.
fn serve_rpc(
    s: &Settings,
    tasks: &Tasks,
    manager: &Arc<ComputeManager>,
) -> Result<oneshot::Receiver<Result<(), DaemonError>>, DaemonError> {
    let dispatcher = Dispatcher::new("compute").with(Arc::new(ComputeEndpoint(manager.clone())));
    let server = RpcServer::new(
        s.rabbit.clone(),
        &s.default.host,
        &["compute", "compute-alt"],
        dispatcher,
    )?
    .with_shutdown_grace(s.default.graceful_shutdown_timeout)
    // a build is acknowledged once claimed: one cut off before is not lost
    .ack_when_started(&["build_and_run_instance"]);
    tasks.spawn(recover_after_reconnects(manager.clone(), server.state()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = oneshot::channel();
    let t = tasks.clone();
    tasks.spawn(async move {
        t.stopping().await;
        let _ = stop_tx.send(true);
    });
    let t = tasks.clone();
    tasks.spawn(async move {
        let r = server.run(stop_rx).await.map_err(DaemonError::from);
        if let Err(e) = &r {
            warn!(error = %e, "the RPC server stopped");
        }
        let _ = done_tx.send(r);
        t.stop();
    });
    Ok(done_rx)
}

/// How long after a reconnection the requests that arrived meanwhile have to
/// start before those that did not are taken as lost.
const RECOVERY_DELAY: Duration = Duration::from_secs(5);

/// Each time the RPC server consumes again after losing its broker, the
/// requests sent to us while our queues were away are resolved
/// ([`ComputeManager::recover_lost_requests`]).
async fn recover_after_reconnects(
    manager: Arc<ComputeManager>,
    mut state: tokio::sync::watch::Receiver<crate::rpc::server::ServerState>,
) {
    use crate::rpc::server::ServerState;
    // when the connection went (the watch may skip a short Connecting: then
    // the last time it was seen consuming is the bound)
    let mut lost = None;
    let mut seen = (0, chrono::Utc::now());
    loop {
        let now = state.borrow_and_update().clone();
        match now {
            ServerState::Ready { generation } => {
                let (before, ready_at) = seen;
                seen = (generation, chrono::Utc::now());
                if before >= 1 && generation > before {
                    let lost = lost.take().unwrap_or(ready_at);
                    let back = chrono::Utc::now();
                    if !manager.tasks().sleep(RECOVERY_DELAY).await {
                        return;
                    }
                    manager.recover_lost_requests(lost, back).await;
                }
                lost = None;
            }
            ServerState::Connecting if seen.0 >= 1 => {
                lost.get_or_insert_with(chrono::Utc::now);
            }
            ServerState::Connecting => {}
            ServerState::Stopped => return,
        }
        tokio::select! {
            r = state.changed() => if r.is_err() { return },
            _ = manager.tasks().stopping() => return,
        }
    }
}

/// `report_count += 1; service.save()` every `report_interval`.
async fn heartbeat(manager: Arc<ComputeManager>, mut service: NovaObject, every: Duration) {
    while manager.tasks().sleep(every).await {
        if let Err(e) = manager.heartbeat(&mut service).await {
            warn!(error = %e, "heartbeat failed");
        }
    }
}

/// `_heal_instance_info_cache`: one instance per period.
async fn heal_info_cache(manager: Arc<ComputeManager>, every: Duration) {
    let mut cursor = 0;
    while manager.tasks().sleep(every).await {
        manager.heal_one_info_cache(&mut cursor).await;
    }
}

/// How often the periodic work runs.
struct Periods {
    resources: Duration,
    power_sync: Duration,
    image_prune: Duration,
    /// Containers of deleted instances; None: never.
    reap_deleted: Option<Duration>,
    /// `shelved_poll_interval`, when `shelved_offload_time` > 0.
    offload_shelved: Option<Duration>,
}

/// Resources, the power-state backstop, the image cache, the containers of
/// deleted instances, the shelved instances to offload.
async fn periodic(
    m: Arc<ComputeManager>,
    images: Arc<ImageService>,
    policy: ResourcePolicy,
    host_ip: String,
    every: Periods,
) {
    let now = tokio::time::Instant::now();
    let (mut last_sync, mut last_prune, mut last_reap, mut last_offload) = (now, now, now, now);
    while m.tasks().sleep(every.resources).await {
        m.update_resources(&policy, &host_ip).await;
        if last_sync.elapsed() >= every.power_sync {
            m.sync_all().await;
            last_sync = tokio::time::Instant::now();
        }
        if last_prune.elapsed() >= every.image_prune {
            let in_use = m.images_in_use().await;
            if let Err(e) = images.prune_unused(&in_use).await {
                warn!(error = %e, "image cache prune failed");
            }
            last_prune = tokio::time::Instant::now();
        }
        if every.reap_deleted.is_some_and(|d| last_reap.elapsed() >= d) {
            m.reap_deleted().await;
            last_reap = tokio::time::Instant::now();
        }
        if every
            .offload_shelved
            .is_some_and(|d| last_offload.elapsed() >= d)
        {
            m.offload_shelved().await;
            last_offload = tokio::time::Instant::now();
        }
    }
}

/// Stop the daemon on SIGTERM or SIGINT.
async fn stop_on_signal(tasks: Tasks) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received: stopping"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received: stopping"),
        _ = tasks.stopping() => return,
    }
    crate::systemd::notify("STOPPING=1");
    tasks.stop();
}

/// `WATCHDOG=1` to systemd while the runtime runs its tasks.
async fn watchdog(tasks: Tasks, every: Duration) {
    while tasks.sleep(every).await {
        crate::systemd::notify("WATCHDOG=1");
    }
}
