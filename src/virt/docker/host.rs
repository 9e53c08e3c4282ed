//! The host: our containers on it (the one listing everything else uses), and
//! its capacity.

use std::collections::HashMap;

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::ListContainersOptions;
use tracing::warn;

use super::driver::{engine_err, DockerDriver};
use super::spec::{LABEL_MEMORY_MB, LABEL_VCPUS};
use crate::virt::{
    DriverError, HostResources, InstanceSummary, LABEL_HOST, LABEL_INSTANCE_UUID, LABEL_MANAGED_BY,
    MANAGED_BY,
};

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

impl DockerDriver {
    pub(super) fn our_filters(&self, uuid: Option<&str>) -> HashMap<String, Vec<String>> {
        let mut labels = vec![format!("{LABEL_MANAGED_BY}={MANAGED_BY}")];
        if !self.inner.host.is_empty() {
            labels.push(format!("{LABEL_HOST}={}", self.inner.host));
        }
        if let Some(u) = uuid {
            labels.push(format!("{LABEL_INSTANCE_UUID}={u}"));
        }
        HashMap::from([("label".to_string(), labels)])
    }

    /// Our containers on this host (by label: other containers are never ours),
    /// all of `uuid`'s if given; with their writable layer's size if `size`.
    /// The one listing of our containers.
    pub(super) async fn list_ours(
        &self,
        uuid: Option<&str>,
        size: bool,
    ) -> Result<Vec<InstanceSummary>, DriverError> {
        let opts = ListContainersOptions {
            all: true,
            size,
            filters: Some(self.our_filters(uuid)),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine_err("list containers"))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let int = |k: &str| {
                    labels
                        .get(k)
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(0)
                };
                Some(InstanceSummary {
                    uuid: labels.get(LABEL_INSTANCE_UUID)?.clone(),
                    id: c.id.unwrap_or_default(),
                    names: c
                        .names
                        .unwrap_or_default()
                        .into_iter()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .collect(),
                    image: c.image,
                    image_id: c.image_id,
                    running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                    memory_mb: int(LABEL_MEMORY_MB),
                    vcpus: int(LABEL_VCPUS),
                    size_rw: c.size_rw,
                })
            })
            .collect())
    }

    /// Our instances on this host.
    pub async fn list_instances(&self) -> Result<Vec<InstanceSummary>, DriverError> {
        self.list_ours(None, false).await
    }

    /// Containers of ours labelled with `uuid` under another name (left over by an
    /// interrupted rebuild): removed with the instance, so none is orphaned.
    pub(super) async fn remove_strays(&self, uuid: &str, name: &str) -> Result<(), String> {
        let list = self
            .list_ours(Some(uuid), false)
            .await
            .map_err(|e| e.to_string())?;
        for c in list {
            if c.names.iter().any(|n| n == name) {
                continue;
            }
            warn!(%uuid, container = %c.id, names = ?c.names, "removing a stray container of the instance");
            self.remove(&c.id).await?;
        }
        Ok(())
    }

    /// Host capacity and what our instances use of it.
    pub async fn host_resources(&self) -> Result<HostResources, DriverError> {
        let info = self.docker.info().await.map_err(engine_err("info"))?;
        let list = self.list_ours(None, true).await?;
        let vcpus_used = list.iter().map(|c| c.vcpus).sum();
        let mem_used = list.iter().map(|c| c.memory_mb).sum();
        let disk_used: i64 = list.iter().map(|c| c.size_rw.unwrap_or(0).max(0)).sum();
        let running = list.iter().filter(|c| c.running).count() as i64;
        let root = info
            .docker_root_dir
            .clone()
            .unwrap_or_else(|| "/var/lib/docker".into());
        let (total, avail) = disk_of(root.clone()).await;
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
}

/// Size and free bytes of the file system holding `dir` (0, 0 when it is not
/// on this host, as with a remote engine); read on a blocking thread.
async fn disk_of(dir: String) -> (u64, u64) {
    let r = tokio::task::spawn_blocking(move || {
        nix::sys::statvfs::statvfs(dir.as_str()).map_err(|e| (dir, e))
    })
    .await;
    match r {
        // the statvfs field types differ between platforms
        #[allow(clippy::unnecessary_cast)]
        Ok(Ok(s)) => {
            let f = s.fragment_size() as u64;
            (s.blocks() as u64 * f, s.blocks_available() as u64 * f)
        }
        Ok(Err((dir, e))) => {
            warn!(%dir, error = %e, "statvfs of the Docker root dir failed (remote engine?)");
            (0, 0)
        }
        Err(e) => {
            warn!(error = %e, "statvfs task failed");
            (0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(hypervisor_version("20.10.24+dfsg1"), 20_010_024);
        assert_eq!(hypervisor_version("28.3.1"), 28_003_001);
        assert_eq!(hypervisor_version("27.0.0-rc.1"), 27_000_000);
        assert_eq!(hypervisor_version("garbage"), 0);
    }
}
