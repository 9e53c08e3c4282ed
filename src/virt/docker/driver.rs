//! The Docker driver's core: the engine connection, reading one of our
//! containers, and the low-level steps the operations are made of (errors in the
//! engine's own words, wrapped by each operation).

use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, LogsOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tracing::{info, warn};

use super::config::DockerConfig;
use super::state::{power_state, valid_uuid, Marker, Markers};
use super::tls;
use crate::virt::{container_name, DriverError, InstanceInfo, LABEL_MANAGED_BY, MANAGED_BY};

/// Most bytes of console output returned (the end is kept).
pub const CONSOLE_CAP: usize = 100 * 1024;
/// Lines of the log tail quoted in a spawn fault.
const FAULT_LOG_LINES: usize = 10;
const FAULT_LOG_BYTES: usize = 2048;

pub(super) fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// An error with its causes ("client error (connect): invalid peer certificate: ...").
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
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
pub(super) fn reason(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The last `cap` bytes of `buf`, starting at a character boundary.
pub(super) fn tail_bytes(buf: &[u8], cap: usize) -> String {
    let mut start = buf.len().saturating_sub(cap);
    while start < buf.len() && (buf[start] & 0b1100_0000) == 0b1000_0000 {
        start += 1;
    }
    String::from_utf8_lossy(&buf[start..]).into_owned()
}

pub(super) fn is_ours(c: &ContainerInspectResponse) -> bool {
    c.config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == MANAGED_BY)
}
/// A failed engine call as a driver error.
pub(super) fn engine_err(op: &'static str) -> impl FnOnce(BollardError) -> DriverError {
    move |e| {
        let reason = error_chain(&e);
        // no answer at all (the socket is gone, the connection refused or
        // cut, no reply in time), as against an answer that says no
        let unreachable = matches!(
            e,
            BollardError::HyperLegacyError { .. }
                | BollardError::IOError { .. }
                | BollardError::RequestTimeoutError
                | BollardError::SocketNotFoundError(_)
        );
        if unreachable {
            DriverError::Unreachable { op, reason }
        } else {
            DriverError::Engine { op, reason }
        }
    }
}

/// Driver of one Docker engine; cheap to clone (the client and config are shared).
#[derive(Clone)]
pub struct DockerDriver {
    pub(super) docker: Docker,
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) cfg: DockerConfig,
    pub(super) host: String,
    pub(super) markers: Markers,
    pub(super) engine_version: String,
    pub(super) api_version: String,
    pub(super) os_type: String,
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
        let dir = cfg.state_dir.clone();
        let markers = tokio::task::spawn_blocking(move || Markers::load(&dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|source| DriverError::StateDir {
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

    pub(super) fn name(uuid: &str) -> Result<String, DriverError> {
        if valid_uuid(uuid) {
            Ok(container_name(uuid))
        } else {
            Err(DriverError::InvalidUuid(uuid.to_string()))
        }
    }

    pub(super) fn markers(&self) -> &Markers {
        &self.inner.markers
    }

    pub(super) fn marker_err(&self, e: std::io::Error) -> DriverError {
        DriverError::StateDir {
            path: self.markers().root().display().to_string(),
            source: e,
        }
    }

    pub(super) async fn set_marker(&self, m: Marker, uuid: &str) -> Result<(), DriverError> {
        self.markers()
            .set(m, uuid)
            .await
            .map_err(|e| self.marker_err(e))
    }

    pub(super) async fn clear_marker(&self, m: Marker, uuid: &str) -> Result<(), DriverError> {
        self.markers()
            .clear(m, uuid)
            .await
            .map_err(|e| self.marker_err(e))
    }

    pub(super) async fn clear_markers(&self, uuid: &str) -> Result<(), DriverError> {
        self.markers()
            .clear_all(uuid)
            .await
            .map_err(|e| self.marker_err(e))
    }

    /// Inspect our container of `uuid`; a missing container, or one Nova did not make,
    /// is `NotFound`.
    pub(super) async fn inspect(
        &self,
        uuid: &str,
    ) -> Result<ContainerInspectResponse, DriverError> {
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
            Err(e) => Err(engine_err("inspect")(e)),
        }
    }

    pub(super) fn info_of(&self, uuid: &str, c: &ContainerInspectResponse) -> InstanceInfo {
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

    pub(super) async fn confirm(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.get_info(uuid).await
    }

    // ---- low-level steps (errors as the engine's words, wrapped by each operation) ----

    pub(super) async fn start(&self, name: &str) -> Result<(), String> {
        self.docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(|e| reason(&e))
    }

    pub(super) async fn stop(&self, name: &str, timeout: Duration) -> Result<(), String> {
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

    pub(super) async fn kill(&self, name: &str) -> Result<(), String> {
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

    pub(super) async fn unfreeze(&self, name: &str) -> Result<(), String> {
        match self.docker.unpause_container(name).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => Ok(()), // not paused
            Err(e) => Err(reason(&e)),
        }
    }

    /// Returns when the container is not running, or after `limit`.
    pub(super) async fn wait_not_running(&self, name: &str, limit: Duration) -> bool {
        let opts = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut s = Box::pin(self.docker.wait_container(name, Some(opts)));
        tokio::time::timeout(limit, s.next()).await.is_ok()
    }

    /// The last lines the container printed, for a fault message.
    pub(super) async fn log_tail(&self, name: &str) -> String {
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

    pub(super) async fn logs(
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

    pub(super) async fn remove(&self, name: &str) -> Result<(), String> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_cap_keeps_the_end_on_a_char_boundary() {
        let s = "é".repeat(10); // 20 bytes
        let t = tail_bytes(s.as_bytes(), 5);
        assert_eq!(t, "éé");
        assert_eq!(tail_bytes(b"abc", 10), "abc");
    }
}
