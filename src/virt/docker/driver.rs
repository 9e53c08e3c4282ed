//! The lifecycle operations. Each one acts, then inspects the container to confirm the
//! state it reports; none assumes that a call the engine accepted did what it says.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, EventMessage};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, InspectContainerOptions, KillContainerOptions,
    ListContainersOptions, LogsOptions, RemoveContainerOptions, RenameContainerOptions,
    StartContainerOptions, StatsOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tracing::{debug, info, warn};

use super::config::DockerConfig;
use super::diagnostics::{self, parse_net_dev, Diagnostics, DiagnosticsContext, NicCounters};
use super::spec::{build_create_body, InstanceSpec, Limits, LABEL_MEMORY_MB, LABEL_VCPUS};
use super::state::{power_state, valid_uuid, Marker, Markers};
use super::{tls, DriverError};
use crate::virt::{
    container_name, InstanceInfo, PowerState, RebootType, LABEL_HOST, LABEL_INSTANCE_UUID,
    LABEL_MANAGED_BY, MANAGED_BY,
};

/// Most bytes of console output returned (the end is kept).
pub const CONSOLE_CAP: usize = 100 * 1024;
/// Lines of the log tail quoted in a spawn fault.
const FAULT_LOG_LINES: usize = 10;
const FAULT_LOG_BYTES: usize = 2048;
/// A stop whose own grace time is unknown waits this long before SIGKILL.
const DEFAULT_STOP_SECS: u64 = 10;

/// A lifecycle change of one of our containers, from the engine's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub uuid: String,
    pub container_id: String,
    pub kind: EventKind,
    /// For `Died`: the exit code the engine reported.
    pub exit_code: Option<i64>,
    /// Unix time in nanoseconds.
    pub time_nano: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Started,
    Died,
    Stopped,
    Paused,
    Unpaused,
    Oom,
    Destroyed,
}

impl EventKind {
    fn parse(action: &str) -> Option<Self> {
        Some(match action {
            "start" => Self::Started,
            "die" => Self::Died,
            "stop" => Self::Stopped,
            "pause" => Self::Paused,
            "unpause" => Self::Unpaused,
            "oom" => Self::Oom,
            "destroy" => Self::Destroyed,
            _ => return None,
        })
    }
}

/// What the host offers and what our instances use of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostResources {
    pub vcpus: i64,
    pub vcpus_used: i64,
    pub memory_mb: i64,
    pub memory_mb_used: i64,
    /// Size and free space of the filesystem holding the Docker root dir, in GiB.
    pub local_gb: i64,
    pub local_gb_used: i64,
    pub disk_available_least: i64,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub hypervisor_hostname: String,
    pub running_vms: i64,
    pub docker_root_dir: String,
}

/// "20.10.24+dfsg1" -> 20010024; "28.3.1" -> 28003001 (Nova's integer version form).
pub fn hypervisor_version(v: &str) -> i64 {
    let mut parts = v.split('.').map(|p| {
        let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<i64>().unwrap_or(0)
    });
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    major * 1_000_000 + minor.min(999) * 1000 + patch.min(999)
}

fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// An error with its causes ("client error (connect): invalid peer certificate: ...").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// The engine's own words for a failure.
fn reason(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The last `cap` bytes of `buf`, starting at a character boundary.
fn tail_bytes(buf: &[u8], cap: usize) -> String {
    let mut start = buf.len().saturating_sub(cap);
    while start < buf.len() && (buf[start] & 0b1100_0000) == 0b1000_0000 {
        start += 1;
    }
    String::from_utf8_lossy(&buf[start..]).into_owned()
}

fn is_ours(c: &ContainerInspectResponse) -> bool {
    c.config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == MANAGED_BY)
}

/// Driver of one Docker engine; cheap to clone (the client and config are shared).
#[derive(Clone)]
pub struct DockerDriver {
    docker: Docker,
    inner: Arc<Inner>,
}

struct Inner {
    cfg: DockerConfig,
    host: String,
    markers: Markers,
    engine_version: String,
    api_version: String,
    os_type: String,
}

impl std::fmt::Debug for DockerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDriver")
            .field("host_url", &self.inner.cfg.host_url)
            .field("host", &self.inner.host)
            .field("engine_version", &self.inner.engine_version)
            .field("api_version", &self.inner.api_version)
            .finish()
    }
}

impl DockerDriver {
    /// Connect to the engine, negotiate the API version (the client speaks up to 1.49 and
    /// goes down to what the engine offers, e.g. 1.41 on Docker 20.10) and prepare the
    /// state dir. `host` is Nova's `CONF.host`: our containers carry it as a label.
    pub async fn connect(cfg: DockerConfig, host: impl Into<String>) -> Result<Self, DriverError> {
        let endpoint = cfg.endpoint().map_err(DriverError::Config)?;
        let docker = tls::connect(&endpoint, cfg.api_timeout.as_secs().max(1))?;
        let url = cfg.host_url.clone();
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| DriverError::Connect {
                url: url.clone(),
                reason: error_chain(&e),
            })?;
        let version = docker.version().await.map_err(|e| DriverError::Connect {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        let markers = Markers::new(&cfg.state_dir).map_err(|source| DriverError::StateDir {
            path: cfg.state_dir.display().to_string(),
            source,
        })?;
        let engine_version = version.version.unwrap_or_default();
        let api_version = docker.client_version().to_string();
        info!(%url, engine = %engine_version, api = %api_version, "connected to the Docker engine");
        Ok(DockerDriver {
            docker,
            inner: Arc::new(Inner {
                cfg,
                host: host.into(),
                markers,
                engine_version,
                api_version,
                os_type: version.os.unwrap_or_else(|| "linux".into()),
            }),
        })
    }

    /// The client for ordinary calls (bounded by `api_timeout`).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// A client with no request timeout, for image load/save/commit and event streams.
    pub fn docker_unbounded(&self) -> Docker {
        self.docker.clone().with_timeout(Duration::MAX)
    }

    pub fn config(&self) -> &DockerConfig {
        &self.inner.cfg
    }

    /// The engine's version string ("20.10.24+dfsg1").
    pub fn engine_version(&self) -> &str {
        &self.inner.engine_version
    }

    /// The negotiated API version ("1.41").
    pub fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    fn name(uuid: &str) -> Result<String, DriverError> {
        if valid_uuid(uuid) {
            Ok(container_name(uuid))
        } else {
            Err(DriverError::InvalidUuid(uuid.to_string()))
        }
    }

    fn markers(&self) -> &Markers {
        &self.inner.markers
    }

    fn marker_err(&self, e: std::io::Error) -> DriverError {
        DriverError::StateDir {
            path: self.markers().root().display().to_string(),
            source: e,
        }
    }

    fn set_marker(&self, m: Marker, uuid: &str) -> Result<(), DriverError> {
        self.markers().set(m, uuid).map_err(|e| self.marker_err(e))
    }

    fn clear_marker(&self, m: Marker, uuid: &str) -> Result<(), DriverError> {
        self.markers()
            .clear(m, uuid)
            .map_err(|e| self.marker_err(e))
    }

    /// Inspect our container of `uuid`; a missing container, or one Nova did not make,
    /// is `NotFound`.
    async fn inspect(&self, uuid: &str) -> Result<ContainerInspectResponse, DriverError> {
        let name = Self::name(uuid)?;
        match self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) if is_ours(&c) => Ok(c),
            Ok(_) => {
                warn!(container = %name, "container has our name but not our label: not ours");
                Err(DriverError::NotFound {
                    uuid: uuid.to_string(),
                })
            }
            Err(e) if status_of(&e) == Some(404) => Err(DriverError::NotFound {
                uuid: uuid.to_string(),
            }),
            Err(source) => Err(DriverError::Docker {
                op: "inspect",
                source,
            }),
        }
    }

    fn info_of(&self, uuid: &str, c: &ContainerInspectResponse) -> InstanceInfo {
        let st = c.state.clone().unwrap_or_default();
        let state = power_state(
            &st,
            self.markers().is_set(Marker::Suspended, uuid),
            self.markers().is_set(Marker::Stopped, uuid),
        );
        let running = st.running == Some(true);
        InstanceInfo {
            state,
            internal_id: c.id.clone().unwrap_or_default(),
            pid: st
                .pid
                .filter(|p| running && *p > 0)
                .and_then(|p| u32::try_from(p).ok()),
            status: st.status.map(|s| s.to_string()).unwrap_or_default(),
            exit_code: if running { None } else { st.exit_code },
            oom_killed: st.oom_killed == Some(true),
            started_at: st.started_at.clone(),
            finished_at: if running {
                None
            } else {
                st.finished_at.clone()
            },
        }
    }

    /// The power state and details of an instance.
    pub async fn get_info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let c = self.inspect(uuid).await?;
        Ok(self.info_of(uuid, &c))
    }

    async fn confirm(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.get_info(uuid).await
    }

    // ---- low-level steps (errors as the engine's words, wrapped by each operation) ----

    async fn start(&self, name: &str) -> Result<(), String> {
        self.docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(|e| reason(&e))
    }

    async fn stop(&self, name: &str, timeout: Duration) -> Result<(), String> {
        let secs = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        let client = self
            .docker
            .clone()
            .with_timeout(self.inner.cfg.api_timeout + timeout + Duration::from_secs(5));
        match client
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(secs),
                    signal: None,
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(304)) => Ok(()),
            Err(e) => Err(reason(&e)),
        }
    }

    async fn kill(&self, name: &str) -> Result<(), String> {
        match self
            .docker
            .kill_container(
                name,
                Some(KillContainerOptions {
                    signal: "SIGKILL".into(),
                }),
            )
            .await
        {
            Ok(()) => {}
            // 409: not running any more
            Err(e) if status_of(&e) == Some(409) => {}
            Err(e) => return Err(reason(&e)),
        }
        self.wait_not_running(name, self.inner.cfg.api_timeout)
            .await;
        Ok(())
    }

    async fn unfreeze(&self, name: &str) -> Result<(), String> {
        match self.docker.unpause_container(name).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => Ok(()), // not paused
            Err(e) => Err(reason(&e)),
        }
    }

    /// Returns when the container is not running, or after `limit`.
    async fn wait_not_running(&self, name: &str, limit: Duration) -> bool {
        let opts = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut s = Box::pin(self.docker.wait_container(name, Some(opts)));
        tokio::time::timeout(limit, s.next()).await.is_ok()
    }

    /// The last lines the container printed, for a fault message.
    async fn log_tail(&self, name: &str) -> String {
        let out = self
            .logs(name, Some(FAULT_LOG_LINES), FAULT_LOG_BYTES)
            .await
            .unwrap_or_default();
        let t = out.trim();
        if t.is_empty() {
            "(no output)".into()
        } else {
            t.to_string()
        }
    }

    async fn logs(
        &self,
        name: &str,
        tail: Option<usize>,
        cap: usize,
    ) -> Result<String, BollardError> {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.map(|n| n.to_string()).unwrap_or_else(|| "all".into()),
            ..Default::default()
        };
        let mut s = Box::pin(self.docker.logs(name, Some(opts)));
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = s.next().await {
            buf.extend_from_slice(&chunk?.into_bytes());
            if buf.len() > cap * 2 {
                buf.drain(..buf.len() - cap);
            }
        }
        Ok(tail_bytes(&buf, cap))
    }

    async fn remove(&self, name: &str) -> Result<(), String> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            // "removal already in progress": confirmed by the caller's inspect
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(reason(&e)),
        }
    }

    // ---- operations ----

    /// Create and start the instance's container, then confirm it stays up for
    /// `spawn_confirm_window`. A container that exits in that time is removed and the
    /// call fails with [`DriverError::ExitedImmediately`] quoting its last output.
    pub async fn spawn(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let uuid = spec.uuid.as_str();
        let name = Self::name(uuid)?;
        let cfg = &self.inner.cfg;
        let (_, body) = build_create_body(
            spec,
            Limits {
                cpu_mode: cfg.cpu_mode,
                pids_limit: cfg.pids_limit,
            },
        );
        let opts = CreateContainerOptions {
            name: Some(name.clone()),
            platform: String::new(),
        };
        match self.docker.create_container(Some(opts), body).await {
            Ok(r) => debug!(%uuid, id = %r.id, "container created"),
            Err(e) => {
                return Err(match status_of(&e) {
                    Some(409) => DriverError::Exists {
                        uuid: uuid.into(),
                        name,
                    },
                    Some(404) => DriverError::ImageNotFound {
                        image: spec.image.clone(),
                    },
                    _ => DriverError::Deploy {
                        uuid: uuid.into(),
                        reason: reason(&e),
                    },
                })
            }
        }
        // A leftover marker of an earlier life of this uuid must not colour the new one.
        if let Err(e) = self.markers().clear_all(uuid) {
            let _ = self.remove(&name).await;
            return Err(self.marker_err(e));
        }
        if let Err(r) = self.start(&name).await {
            let _ = self.remove(&name).await;
            return Err(DriverError::Deploy {
                uuid: uuid.into(),
                reason: format!("start failed: {r}"),
            });
        }
        let window = cfg.spawn_confirm_window;
        if !window.is_zero() {
            self.wait_not_running(&name, window).await;
        }
        let c = match self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let _ = self.remove(&name).await;
                return Err(DriverError::Deploy {
                    uuid: uuid.into(),
                    reason: format!("inspect after start: {}", reason(&e)),
                });
            }
        };
        let st = c.state.clone().unwrap_or_default();
        if st.running == Some(true) {
            let info = self.info_of(uuid, &c);
            info!(%uuid, id = %info.internal_id, "instance spawned");
            return Ok(info);
        }
        let exit_code = st.exit_code.unwrap_or(-1);
        let mut logs = self.log_tail(&name).await;
        if st.oom_killed == Some(true) {
            logs = format!(
                "killed by the kernel OOM killer (memory limit {} MiB); {logs}",
                spec.memory_mb
            );
        }
        if let Some(err) = st.error.filter(|e| !e.is_empty()) {
            logs = format!("{err}; {logs}");
        }
        let _ = self.remove(&name).await;
        warn!(%uuid, exit_code, "the image's command exited immediately");
        Err(DriverError::ExitedImmediately {
            uuid: uuid.into(),
            exit_code,
            logs,
        })
    }

    /// Stop (gracefully, within `timeout`) and remove the container with its volumes.
    /// Idempotent: an instance already gone is not an error.
    pub async fn destroy(&self, uuid: &str, timeout: Duration) -> Result<(), DriverError> {
        let name = Self::name(uuid)?;
        let op_err = |reason: String| DriverError::Operation {
            op: "destroy",
            uuid: uuid.into(),
            reason,
        };
        match self.inspect(uuid).await {
            Err(DriverError::NotFound { .. }) => {
                self.remove_strays(uuid, &name).await.map_err(op_err)?;
            }
            Err(e) => return Err(e),
            Ok(c) => {
                let st = c.state.unwrap_or_default();
                if st.paused == Some(true) {
                    self.unfreeze(&name).await.map_err(op_err)?;
                }
                if st.running == Some(true) && !timeout.is_zero() {
                    if let Err(r) = self.stop(&name, timeout).await {
                        warn!(%uuid, reason = %r, "graceful stop failed; removing by force");
                    }
                }
                self.remove(&name).await.map_err(op_err)?;
                // confirm: gone (a removal in progress settles within moments)
                let mut gone = false;
                for _ in 0..50 {
                    match self
                        .docker
                        .inspect_container(&name, None::<InspectContainerOptions>)
                        .await
                    {
                        Err(e) if status_of(&e) == Some(404) => {
                            gone = true;
                            break;
                        }
                        Ok(c) if !is_ours(&c) => {
                            gone = true;
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                if !gone {
                    return Err(op_err("the container is still there after removal".into()));
                }
                self.remove_strays(uuid, &name).await.map_err(op_err)?;
                info!(%uuid, "instance destroyed");
            }
        }
        self.markers()
            .clear_all(uuid)
            .map_err(|e| self.marker_err(e))
    }

    /// Graceful stop within `timeout` (then SIGKILL). Already stopped is fine.
    pub async fn power_off(
        &self,
        uuid: &str,
        timeout: Duration,
    ) -> Result<InstanceInfo, DriverError> {
        let name = Self::name(uuid)?;
        let fail = |reason: String| DriverError::PowerOff {
            uuid: uuid.into(),
            reason,
        };
        let c = self.inspect(uuid).await?;
        let st = c.state.unwrap_or_default();
        self.set_marker(Marker::Stopped, uuid)?;
        self.clear_marker(Marker::Suspended, uuid)?;
        if st.paused == Some(true) {
            self.unfreeze(&name).await.map_err(fail)?;
        }
        if st.running == Some(true) {
            self.stop(&name, timeout).await.map_err(fail)?;
        }
        let info = self.confirm(uuid).await?;
        if info.state == PowerState::Running || info.state == PowerState::Paused {
            return Err(fail(format!("container is still {}", info.status)));
        }
        Ok(info)
    }

    async fn start_confirmed(&self, uuid: &str) -> Result<InstanceInfo, String> {
        let name = Self::name(uuid).map_err(|e| e.to_string())?;
        let c = self.inspect(uuid).await.map_err(|e| e.to_string())?;
        let st = c.state.unwrap_or_default();
        self.markers().clear_all(uuid).map_err(|e| e.to_string())?;
        if st.paused == Some(true) {
            self.unfreeze(&name).await?;
        }
        if st.running != Some(true) || st.paused == Some(true) {
            self.start(&name).await?;
        }
        let info = self.confirm(uuid).await.map_err(|e| e.to_string())?;
        if info.state != PowerState::Running {
            let logs = self.log_tail(&name).await;
            return Err(format!(
                "container is {} (exit code {}) after start: {logs}",
                info.status,
                info.exit_code.unwrap_or(-1)
            ));
        }
        Ok(info)
    }

    /// Start a stopped instance (also unfreezes a paused or suspended one).
    pub async fn power_on(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        Self::name(uuid)?;
        self.inspect(uuid).await?;
        self.start_confirmed(uuid)
            .await
            .map_err(|reason| DriverError::PowerOn {
                uuid: uuid.into(),
                reason,
            })
    }

    /// Soft: graceful stop (the container's own stop timeout) then start. Hard: SIGKILL
    /// then start; a hard reboot also brings up a stopped or crashed instance.
    pub async fn reboot(&self, uuid: &str, kind: RebootType) -> Result<InstanceInfo, DriverError> {
        let name = Self::name(uuid)?;
        let fail = |reason: String| DriverError::Reboot {
            uuid: uuid.into(),
            reason,
        };
        let c = self.inspect(uuid).await?;
        let st = c.state.clone().unwrap_or_default();
        if kind == RebootType::Soft && st.running != Some(true) {
            return Err(fail(format!(
                "a soft reboot needs a running instance; it is {}",
                self.info_of(uuid, &c).state.name()
            )));
        }
        self.set_marker(Marker::Stopped, uuid)?;
        if st.paused == Some(true) {
            self.unfreeze(&name).await.map_err(fail)?;
        }
        if st.running == Some(true) {
            match kind {
                RebootType::Soft => {
                    let secs = c
                        .config
                        .as_ref()
                        .and_then(|c| c.stop_timeout)
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(DEFAULT_STOP_SECS);
                    self.stop(&name, Duration::from_secs(secs))
                        .await
                        .map_err(fail)?;
                }
                RebootType::Hard => self.kill(&name).await.map_err(fail)?,
            }
        }
        self.start_confirmed(uuid).await.map_err(fail)
    }

    /// Freeze the container (cgroup freezer).
    pub async fn pause(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let name = Self::name(uuid)?;
        let c = self.inspect(uuid).await?;
        let info = self.info_of(uuid, &c);
        let fail = |reason: String| DriverError::Operation {
            op: "pause",
            uuid: uuid.into(),
            reason,
        };
        match info.state {
            PowerState::Running => {
                self.docker
                    .pause_container(&name)
                    .await
                    .map_err(|e| fail(reason(&e)))?;
            }
            PowerState::Paused | PowerState::Suspended => {}
            s => {
                return Err(DriverError::InvalidState {
                    uuid: uuid.into(),
                    state: s.name(),
                    op: "pause",
                })
            }
        }
        self.clear_marker(Marker::Suspended, uuid)?;
        let info = self.confirm(uuid).await?;
        if info.state != PowerState::Paused {
            return Err(fail(format!("container is {} after pause", info.status)));
        }
        Ok(info)
    }

    pub async fn unpause(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let name = Self::name(uuid)?;
        let c = self.inspect(uuid).await?;
        let info = self.info_of(uuid, &c);
        let fail = |reason: String| DriverError::Operation {
            op: "unpause",
            uuid: uuid.into(),
            reason,
        };
        match info.state {
            PowerState::Paused | PowerState::Suspended => {
                self.unfreeze(&name).await.map_err(fail)?
            }
            PowerState::Running => {}
            s => {
                return Err(DriverError::InvalidState {
                    uuid: uuid.into(),
                    state: s.name(),
                    op: "unpause",
                })
            }
        }
        self.clear_marker(Marker::Suspended, uuid)?;
        let info = self.confirm(uuid).await?;
        if info.state != PowerState::Running {
            return Err(fail(format!("container is {} after unpause", info.status)));
        }
        Ok(info)
    }

    /// Suspend = freeze (docker pause) + the suspended marker, so that get_info reports
    /// SUSPENDED rather than PAUSED. Memory stays allocated; processes keep their state.
    pub async fn suspend(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let name = Self::name(uuid)?;
        let c = self.inspect(uuid).await?;
        let info = self.info_of(uuid, &c);
        let fail = |reason: String| DriverError::Suspend {
            uuid: uuid.into(),
            reason,
        };
        match info.state {
            PowerState::Running => {
                self.set_marker(Marker::Suspended, uuid)?;
                if let Err(e) = self.docker.pause_container(&name).await {
                    let _ = self.clear_marker(Marker::Suspended, uuid);
                    return Err(fail(reason(&e)));
                }
            }
            PowerState::Paused | PowerState::Suspended => {
                self.set_marker(Marker::Suspended, uuid)?
            }
            s => {
                return Err(DriverError::InvalidState {
                    uuid: uuid.into(),
                    state: s.name(),
                    op: "suspend",
                })
            }
        }
        let info = self.confirm(uuid).await?;
        if info.state != PowerState::Suspended {
            return Err(fail(format!("container is {} after suspend", info.status)));
        }
        Ok(info)
    }

    /// Thaw a suspended instance (and start it if it stopped meanwhile).
    pub async fn resume(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        Self::name(uuid)?;
        self.inspect(uuid).await?;
        self.start_confirmed(uuid)
            .await
            .map_err(|reason| DriverError::Resume {
                uuid: uuid.into(),
                reason,
            })
    }

    /// Nova's soft delete: the instance is stopped, kept for a later restore.
    pub async fn soft_delete(
        &self,
        uuid: &str,
        timeout: Duration,
    ) -> Result<InstanceInfo, DriverError> {
        self.power_off(uuid, timeout).await
    }

    pub async fn restore(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.power_on(uuid).await
    }

    /// Replace the instance's container by one of `spec` (a new image, same name, labels
    /// and uuid). The old container is stopped and set aside under another name until the
    /// new one runs; if the new one fails, the old one is put back as it was.
    pub async fn rebuild(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let uuid = spec.uuid.as_str();
        let name = Self::name(uuid)?;
        let fail = |reason: String| DriverError::Deploy {
            uuid: uuid.into(),
            reason,
        };
        let old = self.inspect(uuid).await?;
        let old_id = old.id.clone().unwrap_or_default();
        let st = old.state.unwrap_or_default();
        let was_running = st.running == Some(true);
        if st.paused == Some(true) {
            self.unfreeze(&name).await.map_err(fail)?;
        }
        if was_running {
            self.stop(&old_id, spec.stop_timeout).await.map_err(fail)?;
        }
        let aside = format!(
            "{name}-rebuild-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.docker
            .rename_container(
                &old_id,
                RenameContainerOptions {
                    name: aside.clone(),
                },
            )
            .await
            .map_err(|e| fail(format!("rename of the old container: {}", reason(&e))))?;
        match self.spawn(spec).await {
            Ok(info) => {
                if let Err(r) = self.remove(&old_id).await {
                    warn!(%uuid, container = %aside, reason = %r, "old container of a rebuild not removed");
                }
                info!(%uuid, image = %spec.image, "instance rebuilt");
                Ok(info)
            }
            Err(e) => {
                let back = self
                    .docker
                    .rename_container(&old_id, RenameContainerOptions { name: name.clone() })
                    .await;
                if let Err(b) = back {
                    warn!(%uuid, container = %aside, reason = %reason(&b), "could not put the old container back");
                } else if was_running {
                    let _ = self.start(&name).await;
                }
                Err(e)
            }
        }
    }

    /// What the container printed (stdout and stderr), the last `tail_length` lines if
    /// given, at most [`CONSOLE_CAP`] bytes (the end is kept).
    pub async fn get_console_output(
        &self,
        uuid: &str,
        tail_length: Option<usize>,
    ) -> Result<String, DriverError> {
        let name = Self::name(uuid)?;
        self.inspect(uuid).await?;
        self.logs(&name, tail_length, CONSOLE_CAP)
            .await
            .map_err(|source| DriverError::Docker { op: "logs", source })
    }

    async fn sample(
        &self,
        uuid: &str,
    ) -> Result<(Diagnostics, ContainerStatsResponse, Vec<NicCounters>), DriverError> {
        let name = Self::name(uuid)?;
        let c = self.inspect(uuid).await?;
        let info = self.info_of(uuid, &c);
        let opts = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut s = Box::pin(self.docker.stats(&name, Some(opts)));
        let stats = match s.next().await {
            Some(Ok(st)) => st,
            Some(Err(source)) => {
                return Err(DriverError::Docker {
                    op: "stats",
                    source,
                })
            }
            None => ContainerStatsResponse::default(),
        };
        let nics = diagnostics::nics_of(&stats, info.pid.map(local_nics).unwrap_or_default());
        let uptime = if info.pid.is_some() {
            info.started_at
                .as_deref()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| {
                    (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                        .num_seconds()
                        .max(0)
                })
        } else {
            None
        };
        let vcpus = c
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_VCPUS))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let ctx = DiagnosticsContext {
            state: info.state.name().into(),
            hypervisor_os: Some(self.inner.os_type.clone()),
            uptime,
            vcpus,
            nics: nics.clone(),
        };
        Ok((diagnostics::diagnostics(&stats, &ctx), stats, nics))
    }

    /// Nova's `get_instance_diagnostics` (objects.Diagnostics fields) from one stats sample.
    pub async fn get_diagnostics(&self, uuid: &str) -> Result<Diagnostics, DriverError> {
        Ok(self.sample(uuid).await?.0)
    }

    /// The legacy `get_diagnostics` flat dict.
    pub async fn get_legacy_diagnostics(
        &self,
        uuid: &str,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Value>, DriverError> {
        let (d, stats, nics) = self.sample(uuid).await?;
        Ok(diagnostics::legacy_diagnostics(&d, &stats, &nics))
    }

    fn our_filters(&self) -> HashMap<String, Vec<String>> {
        let mut labels = vec![format!("{LABEL_MANAGED_BY}={MANAGED_BY}")];
        if !self.inner.host.is_empty() {
            labels.push(format!("{LABEL_HOST}={}", self.inner.host));
        }
        HashMap::from([("label".to_string(), labels)])
    }

    /// The uuids of our instances on this host (by label; other containers are not ours).
    pub async fn list_instances(&self) -> Result<Vec<String>, DriverError> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(self.our_filters()),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|source| DriverError::Docker {
                op: "list containers",
                source,
            })?;
        let mut v: Vec<String> = list
            .into_iter()
            .filter_map(|c| c.labels.and_then(|mut l| l.remove(LABEL_INSTANCE_UUID)))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    /// Containers of ours labelled with `uuid` under another name (left over by an
    /// interrupted rebuild): removed with the instance, so none is orphaned.
    async fn remove_strays(&self, uuid: &str, name: &str) -> Result<(), String> {
        let mut filters = self.our_filters();
        if let Some(l) = filters.get_mut("label") {
            l.push(format!("{LABEL_INSTANCE_UUID}={uuid}"));
        }
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| reason(&e))?;
        for c in list {
            let named = c.names.unwrap_or_default();
            if named.iter().any(|n| n.trim_start_matches('/') == name) {
                continue;
            }
            if let Some(id) = c.id {
                warn!(%uuid, container = %id, names = ?named, "removing a stray container of the instance");
                self.remove(&id).await?;
            }
        }
        Ok(())
    }

    /// Host capacity and what our instances use of it.
    pub async fn host_resources(&self) -> Result<HostResources, DriverError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|source| DriverError::Docker { op: "info", source })?;
        let opts = ListContainersOptions {
            all: true,
            size: true,
            filters: Some(self.our_filters()),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|source| DriverError::Docker {
                op: "list containers",
                source,
            })?;
        let (mut vcpus_used, mut mem_used, mut disk_used, mut running) = (0i64, 0i64, 0i64, 0i64);
        for c in &list {
            let label = |k: &str| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(k))
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            vcpus_used += label(LABEL_VCPUS);
            mem_used += label(LABEL_MEMORY_MB);
            disk_used += c.size_rw.unwrap_or(0).max(0);
            if c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING) {
                running += 1;
            }
        }
        let root = info
            .docker_root_dir
            .clone()
            .unwrap_or_else(|| "/var/lib/docker".into());
        let (total, avail) = match nix::sys::statvfs::statvfs(root.as_str()) {
            // the statvfs field types differ between platforms
            #[allow(clippy::unnecessary_cast)]
            Ok(s) => {
                let f = s.fragment_size() as u64;
                (s.blocks() as u64 * f, s.blocks_available() as u64 * f)
            }
            Err(e) => {
                warn!(dir = %root, error = %e, "statvfs of the Docker root dir failed (remote engine?)");
                (0, 0)
            }
        };
        const GIB: u64 = 1 << 30;
        Ok(HostResources {
            vcpus: info.ncpu.unwrap_or(0),
            vcpus_used,
            memory_mb: info.mem_total.unwrap_or(0) >> 20,
            memory_mb_used: mem_used,
            local_gb: (total / GIB) as i64,
            local_gb_used: (disk_used as u64).div_ceil(GIB) as i64,
            disk_available_least: (avail / GIB) as i64,
            hypervisor_type: "docker".into(),
            hypervisor_version: hypervisor_version(&self.inner.engine_version),
            hypervisor_hostname: crate::config::default_hostname(),
            running_vms: running,
            docker_root_dir: root,
        })
    }

    /// Lifecycle events of our containers on this host, as the engine reports them
    /// (start, die, stop, pause, unpause, oom, destroy). The stream ends if the engine
    /// connection drops; the caller re-subscribes with [`Self::events_since`] the last
    /// event's time (and re-syncs with list_instances). Events from the moment of this
    /// call on are delivered, even if the stream is first polled later.
    pub fn events(
        &self,
    ) -> impl Stream<Item = Result<LifecycleEvent, DriverError>> + Send + 'static {
        self.events_since(std::time::SystemTime::now())
    }

    /// [`Self::events`] from `since` on (the engine replays what it still keeps).
    pub fn events_since(
        &self,
        since: std::time::SystemTime,
    ) -> impl Stream<Item = Result<LifecycleEvent, DriverError>> + Send + 'static {
        let mut filters = self.our_filters();
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert(
            "event".into(),
            ["start", "die", "stop", "pause", "unpause", "oom", "destroy"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        // The request goes out when the stream is first polled; `since` makes sure
        // nothing between this call and the first poll is lost.
        let now = since
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let since = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let opts = EventsOptions {
            filters: Some(filters),
            since: Some(since),
            until: None,
        };
        self.docker_unbounded()
            .events(Some(opts))
            .filter_map(|r| async move {
                match r {
                    Ok(m) => lifecycle_event(m).map(Ok),
                    Err(source) => Some(Err(DriverError::Docker {
                        op: "events",
                        source,
                    })),
                }
            })
    }
}

fn lifecycle_event(m: EventMessage) -> Option<LifecycleEvent> {
    let kind = EventKind::parse(m.action.as_deref()?.split(':').next()?)?;
    let actor = m.actor?;
    let attrs = actor.attributes.unwrap_or_default();
    if attrs.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    Some(LifecycleEvent {
        uuid: attrs.get(LABEL_INSTANCE_UUID)?.clone(),
        container_id: actor.id.unwrap_or_default(),
        kind,
        exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
        time_nano: m
            .time_nano
            .unwrap_or_else(|| m.time.unwrap_or(0).saturating_mul(1_000_000_000)),
    })
}

/// Interface counters inside the container's network namespace, read from /proc
/// (for interfaces our VIF drivers plugged, which the engine does not know).
fn local_nics(pid: u32) -> Vec<NicCounters> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return Vec::new();
    };
    let mut v = parse_net_dev(&text);
    for n in &mut v {
        n.mac_address =
            std::fs::read_to_string(format!("/proc/{pid}/root/sys/class/net/{}/address", n.name))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    #[test]
    fn versions() {
        assert_eq!(hypervisor_version("20.10.24+dfsg1"), 20_010_024);
        assert_eq!(hypervisor_version("28.3.1"), 28_003_001);
        assert_eq!(hypervisor_version("27.0.0-rc.1"), 27_000_000);
        assert_eq!(hypervisor_version("garbage"), 0);
    }

    #[test]
    fn console_cap_keeps_the_end_on_a_char_boundary() {
        let s = "é".repeat(10); // 20 bytes
        let t = tail_bytes(s.as_bytes(), 5);
        assert_eq!(t, "éé");
        assert_eq!(tail_bytes(b"abc", 10), "abc");
    }

    #[test]
    fn events_of_ours_only() {
        let ev = |action: &str, ours: bool| EventMessage {
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("cid".into()),
                attributes: Some(HashMap::from([
                    (
                        LABEL_MANAGED_BY.to_string(),
                        if ours { MANAGED_BY } else { "x" }.to_string(),
                    ),
                    (LABEL_INSTANCE_UUID.to_string(), "u1".to_string()),
                    ("exitCode".to_string(), "3".to_string()),
                ])),
            }),
            time: Some(2),
            ..Default::default()
        };
        let e = lifecycle_event(ev("die", true)).unwrap();
        assert_eq!(
            (e.kind, e.uuid.as_str(), e.exit_code, e.time_nano),
            (EventKind::Died, "u1", Some(3), 2_000_000_000)
        );
        assert!(lifecycle_event(ev("die", false)).is_none());
        assert!(lifecycle_event(ev("exec_start: sh", true)).is_none());
        assert_eq!(
            lifecycle_event(ev("oom", true)).unwrap().kind,
            EventKind::Oom
        );
    }
}
