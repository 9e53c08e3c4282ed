//! The daemon: everything built from nova.conf, registered with Nova, serving
//! compute RPC until SIGTERM. The periodic work (heartbeat, resource reports,
//! power-state sync, image cache pruning) runs beside the RPC server; all of it
//! stops through one shutdown channel.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clients::conductor::Conductor;
use crate::clients::keystone::{AuthOptions, Session};
use crate::clients::placement::PlacementClient;
use crate::compute::backends::UserDataOptions;
use crate::compute::endpoint::ComputeEndpoint;
use crate::compute::service::{node_uuid, ResourcePolicy};
use crate::compute::{ComputeManager, ManagerConfig, NetworkBackend};
use crate::config::{ConfigError, DefaultConfig, Ini};
use crate::image::{ImageConfig, ImageService};
use crate::network::VifManager;
use crate::rpc::{Dispatcher, RabbitConfig, RpcClient, RpcServer};
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
    pub default_network: Option<String>,
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
            default_network: ini.group("docker").opt_nonempty("default_network")?,
            default,
        })
    }
}

/// Run until SIGTERM/SIGINT.
pub async fn run(s: Settings) -> Result<(), DaemonError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let host = s.default.host.clone();
    info!(%host, transport = %s.rabbit.transport_url, "starting nova-docker-compute");

    let driver = DockerDriver::connect(s.docker.clone(), host.clone())
        .await
        .map_err(setup("Docker engine"))?;
    let images = Arc::new(
        ImageService::new(
            Arc::new(DockerImages::new(driver.docker_unbounded())),
            s.image.clone(),
        )
        .map_err(setup("image service"))?,
    );
    let client = RpcClient::connect(s.rabbit.clone()).await?;
    let conductor = Conductor::new(Arc::new(client.clone()), s.default.rpc_response_timeout);
    let placement = if s.placement.endpoint_override.is_some()
        || s.placement.endpoint.is_some()
        || s.placement.auth_url.is_some()
    {
        let session = Session::new(s.placement.clone()).map_err(setup("[placement]"))?;
        let http = session.http().clone();
        Some(PlacementClient::new(http, Arc::new(session)))
    } else {
        warn!("no [placement] endpoint or auth_url configured: resources are not reported to placement");
        None
    };
    let network: Arc<dyn NetworkBackend> = Arc::new(s.network);
    let options = Arc::new(UserDataOptions {
        policy: s.policy.clone(),
        lookup: Box::new(driver.docker().clone()),
    });
    let mut manager = ComputeManager::new(
        ManagerConfig {
            host: host.clone(),
            shutdown_timeout: s.default.shutdown_timeout,
            default_network: s.default_network.clone(),
        },
        conductor,
        placement,
        driver,
        images.clone(),
        network,
        options,
    );
    manager.vif_plugging = (
        s.default.vif_plugging_timeout,
        s.default.vif_plugging_is_fatal,
    );
    let manager = Arc::new(manager);

    // register like nova-compute: conductor, Service, ComputeNode, placement
    let mut wait_rx = stop_rx.clone();
    let stop_on_signal = stop_tx.clone();
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        info!("signal received: stopping");
        let _ = stop_on_signal.send(true);
    });
    if let Err(e) = manager.wait_for_conductor(&mut wait_rx).await {
        if *stop_rx.borrow() {
            return Ok(());
        }
        return Err(DaemonError::Setup(format!("conductor: {e}")));
    }
    let mut service = manager
        .register_service()
        .await
        .map_err(setup("Service record"))?;
    let node = node_uuid(&s.default.state_path).map_err(setup("compute_id"))?;
    let policy = ResourcePolicy::from_config(&s.default);
    let host_ip = s.default.my_ip.clone();
    manager
        .register_node(service.get_i64("id").unwrap_or(0), &node, &policy, &host_ip)
        .await
        .map_err(setup("ComputeNode"))?;
    // heartbeat, from before start-up: resolving cut-off operations can take a
    // while (a delete waits up to shutdown_timeout per container), and a service
    // whose heartbeat is older than service_down_time makes nova-api delete its
    // instances from the database without us, leaving their containers running
    {
        let m = manager.clone();
        let mut rx = stop_rx.clone();
        let every = s.default.report_interval;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = rx.changed() => return,
                }
                if let Err(e) = m.heartbeat(&mut service).await {
                    warn!(error = %e, "heartbeat failed");
                }
            }
        });
    }
    manager.start_up().await;

    // serve RPC
    let dispatcher = Dispatcher::new("compute").with(Arc::new(ComputeEndpoint(manager.clone())));
    let server = RpcServer::new(
        s.rabbit.clone(),
        &host,
        &["compute", "compute-alt"],
        dispatcher,
    )?;
    let server_task = tokio::spawn(server.run(stop_rx.clone()));
    info!(%host, node = %node, "compute service up");

    // resources, power-state backstop, image cache
    {
        let m = manager.clone();
        let mut rx = stop_rx.clone();
        let every = s
            .default
            .resource_tracker_interval
            .max(Duration::from_secs(10));
        let sync_every = Duration::from_secs(s.default.sync_power_state_interval.max(10) as u64);
        let images = images.clone();
        tokio::spawn(async move {
            let mut last_sync = tokio::time::Instant::now();
            let mut last_prune = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = rx.changed() => return,
                }
                m.update_resources(&policy, &host_ip).await;
                if last_sync.elapsed() >= sync_every {
                    m.sync_all().await;
                    last_sync = tokio::time::Instant::now();
                }
                if last_prune.elapsed() >= Duration::from_secs(600) {
                    let in_use = m.images_in_use().await;
                    if let Err(e) = images.prune_unused(&in_use).await {
                        warn!(error = %e, "image cache prune failed");
                    }
                    last_prune = tokio::time::Instant::now();
                }
            }
        });
    }
    tokio::spawn(manager.clone().watch_events(stop_rx.clone()));

    let r = server_task.await;
    let _ = stop_tx.send(true);
    signals.abort();
    client.close().await;
    match r {
        Ok(r) => r?,
        Err(e) => return Err(DaemonError::Setup(format!("RPC server task: {e}"))),
    }
    info!("stopped");
    Ok(())
}

impl ComputeManager {
    /// Local image references our containers use (for the cache pruning).
    pub async fn images_in_use(&self) -> HashSet<String> {
        use bollard::query_parameters::ListContainersOptions;
        let mut filters = std::collections::HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!(
                "{}={}",
                crate::virt::LABEL_MANAGED_BY,
                crate::virt::MANAGED_BY
            )],
        );
        let mut set = HashSet::new();
        match self
            .driver
            .docker()
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        {
            Ok(list) => {
                for c in list {
                    set.extend(c.image);
                    set.extend(c.image_id);
                }
            }
            Err(e) => warn!(error = %e, "cannot list our containers"),
        }
        set
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
