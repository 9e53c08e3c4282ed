//! What an instance shows: its console output and its diagnostics.

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;

use super::driver::{engine_err, DockerDriver, CONSOLE_CAP};
use super::spec::LABEL_VCPUS;
use super::stats::{self, parse_net_dev, DiagnosticsContext, NicCounters};
use crate::virt::{Diagnostics, DriverError};

impl DockerDriver {
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
            .map_err(engine_err("logs"))
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
            Some(Err(e)) => return Err(engine_err("stats")(e)),
            None => ContainerStatsResponse::default(),
        };
        let local = match info.pid {
            Some(pid) => tokio::task::spawn_blocking(move || local_nics(pid))
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let nics = stats::nics_of(&stats, local);
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
        Ok((stats::diagnostics(&stats, &ctx), stats, nics))
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
        Ok(stats::legacy_diagnostics(&d, &stats, &nics))
    }
}

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
