//! The lifecycle operations. Each one acts, then inspects the container to
//! confirm the state it reports.

use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RenameContainerOptions,
};
use tracing::{debug, info, warn};

use super::driver::{is_ours, reason, status_of, DockerDriver};
use super::spec::{build_create_body, Limits};
use super::state::Marker;
use crate::virt::{DriverError, InstanceInfo, InstanceSpec, PowerState, RebootType};

/// A stop whose own grace time is unknown waits this long before SIGKILL.
const DEFAULT_STOP_SECS: u64 = 10;

impl DockerDriver {
    // ---- operations ----

    /// Create and start the instance's container and report its state. With a
    /// `spawn_confirm_window` (off by default) the container must stay up that
    /// long: one that exits in that time is removed and the call fails with
    /// [`DriverError::ExitedImmediately`] quoting its last output. Without one, a
    /// container that already exited is reported as it is (stopped, with its exit
    /// code), as a guest that dies after boot is: the event stream tells the
    /// manager, whose power sync records it.
    pub async fn spawn(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let uuid = spec.uuid.as_str();
        let name = Self::name(uuid)?;
        let body = self.create_body(spec);
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
        if let Err(e) = self.clear_markers(uuid).await {
            let _ = self.remove(&name).await;
            return Err(e);
        }
        if let Err(r) = self.start(&name).await {
            let _ = self.remove(&name).await;
            return Err(DriverError::Deploy {
                uuid: uuid.into(),
                reason: format!("start failed: {r}"),
            });
        }
        let window = self.inner.cfg.spawn_confirm_window;
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
        if st.running == Some(true) || window.is_zero() {
            let info = self.info_of(uuid, &c);
            info!(%uuid, id = %info.internal_id, status = %info.status, "instance spawned");
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
        self.clear_markers(uuid).await
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
        self.set_marker(Marker::Stopped, uuid).await?;
        self.clear_marker(Marker::Suspended, uuid).await?;
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
        self.clear_markers(uuid).await.map_err(|e| e.to_string())?;
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
        self.set_marker(Marker::Stopped, uuid).await?;
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
    /// The create body of `spec`'s container, with this engine's limits.
    fn create_body(&self, spec: &InstanceSpec) -> bollard::models::ContainerCreateBody {
        let cfg = &self.inner.cfg;
        build_create_body(
            spec,
            Limits {
                cpu_mode: cfg.cpu_mode,
                pids_limit: cfg.pids_limit,
            },
        )
        .1
    }

    /// `docker update` with the limits a container of `spec` is created
    /// with (memory and swap, reservation, CPUs, shares, pids).
    pub async fn resize(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let uuid = spec.uuid.as_str();
        let name = Self::name(uuid)?;
        let hc = self.create_body(spec).host_config.unwrap_or_default();
        let update = bollard::models::ContainerUpdateBody {
            memory: hc.memory,
            memory_swap: hc.memory_swap,
            memory_reservation: hc.memory_reservation,
            // 0 lifts a cap the old flavor had and the new one does not
            nano_cpus: Some(hc.nano_cpus.unwrap_or(0)),
            cpu_shares: hc.cpu_shares,
            pids_limit: hc.pids_limit,
            ..Default::default()
        };
        self.docker
            .update_container(&name, update)
            .await
            .map_err(|e| match status_of(&e) {
                Some(404) => DriverError::NotFound { uuid: uuid.into() },
                _ => DriverError::Operation {
                    op: "resize",
                    uuid: uuid.into(),
                    reason: reason(&e),
                },
            })?;
        info!(%uuid, memory_mb = spec.memory_mb, vcpus = spec.vcpus, "container resized in place");
        self.get_info(uuid).await
    }

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
        self.clear_marker(Marker::Suspended, uuid).await?;
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
        self.clear_marker(Marker::Suspended, uuid).await?;
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
                self.set_marker(Marker::Suspended, uuid).await?;
                if let Err(e) = self.docker.pause_container(&name).await {
                    let _ = self.clear_marker(Marker::Suspended, uuid).await;
                    return Err(fail(reason(&e)));
                }
            }
            PowerState::Paused | PowerState::Suspended => {
                self.set_marker(Marker::Suspended, uuid).await?
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
}
