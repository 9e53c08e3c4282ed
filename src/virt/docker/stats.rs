//! Instance diagnostics from one `docker stats` sample: Nova's
//! [`Diagnostics`] (what `get_instance_diagnostics` returns) and the flat dict of
//! the older `get_diagnostics` call ([`legacy_diagnostics`], libvirt's key names).

use std::collections::BTreeMap;

use bollard::models::ContainerStatsResponse;
use serde_json::{json, Value};

use crate::virt::diagnostics::{
    CpuDiagnostics, Diagnostics, DiskDiagnostics, MemoryDiagnostics, NicDiagnostics,
};

/// Counters of one interface as `/proc/<pid>/net/dev` gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NicCounters {
    pub name: String,
    pub mac_address: Option<String>,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parse `/proc/<pid>/net/dev`, leaving out `lo`.
pub fn parse_net_dev(text: &str) -> Vec<NicCounters> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() < 12 {
                return None;
            }
            Some(NicCounters {
                name: name.to_string(),
                mac_address: None,
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            })
        })
        .collect()
}

/// The interfaces of a stats sample; `fallback` (from /proc) when the engine has none
/// (network mode "none" with interfaces plugged by our VIF drivers).
pub fn nics_of(stats: &ContainerStatsResponse, fallback: Vec<NicCounters>) -> Vec<NicCounters> {
    match &stats.networks {
        Some(n) if !n.is_empty() => {
            let mut v: Vec<NicCounters> = n
                .iter()
                .map(|(name, s)| NicCounters {
                    name: name.clone(),
                    mac_address: None,
                    rx_bytes: s.rx_bytes.unwrap_or(0),
                    rx_packets: s.rx_packets.unwrap_or(0),
                    rx_errors: s.rx_errors.unwrap_or(0),
                    rx_dropped: s.rx_dropped.unwrap_or(0),
                    tx_bytes: s.tx_bytes.unwrap_or(0),
                    tx_packets: s.tx_packets.unwrap_or(0),
                    tx_errors: s.tx_errors.unwrap_or(0),
                    tx_dropped: s.tx_dropped.unwrap_or(0),
                })
                .collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        }
        _ => fallback,
    }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn blkio_sum(stats: &ContainerStatsResponse, requests: bool, op: &str) -> Option<i64> {
    let b = stats.blkio_stats.as_ref()?;
    let list = if requests {
        b.io_serviced_recursive.as_ref()?
    } else {
        b.io_service_bytes_recursive.as_ref()?
    };
    Some(
        list.iter()
            .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
            .map(|e| i(e.value.unwrap_or(0)))
            .sum(),
    )
}

/// Memory in use as `docker stats` shows it (page cache not counted).
pub fn memory_used_bytes(stats: &ContainerStatsResponse) -> Option<u64> {
    let m = stats.memory_stats.as_ref()?;
    let usage = m.usage?;
    let cache = m
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("total_inactive_file")
                .or_else(|| s.get("inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    Some(usage.saturating_sub(cache))
}

/// Everything a diagnostics reply is made of besides the stats sample.
#[derive(Debug, Clone, Default)]
pub struct DiagnosticsContext {
    pub state: String,
    pub hypervisor_os: Option<String>,
    pub uptime: Option<i64>,
    /// The flavor's vCPUs, listed when the engine gives no per-CPU figures.
    pub vcpus: u32,
    pub nics: Vec<NicCounters>,
}

pub const DIAGNOSTICS_DRIVER: &str = "docker";

pub fn diagnostics(stats: &ContainerStatsResponse, ctx: &DiagnosticsContext) -> Diagnostics {
    let cpu = stats.cpu_stats.as_ref().and_then(|c| c.cpu_usage.as_ref());
    let percpu: Vec<u64> = cpu.and_then(|c| c.percpu_usage.clone()).unwrap_or_default();
    let cpu_details: Vec<CpuDiagnostics> = if !percpu.is_empty() {
        percpu
            .iter()
            .enumerate()
            .filter(|(_, t)| **t > 0)
            .map(|(n, t)| CpuDiagnostics {
                id: Some(n as i64),
                time: Some(i(*t)),
                utilisation: None,
            })
            .collect()
    } else {
        // cgroup v2 gives only a total: spread it over the flavor's vCPUs.
        let total = cpu.and_then(|c| c.total_usage).unwrap_or(0);
        let n = u64::from(ctx.vcpus.max(1));
        (0..n)
            .map(|k| CpuDiagnostics {
                id: Some(k as i64),
                time: Some(i(total / n)),
                utilisation: None,
            })
            .collect()
    };
    let limit = stats.memory_stats.as_ref().and_then(|m| m.limit);
    let memory_details = MemoryDiagnostics {
        maximum: limit.map(|l| i(l >> 20)),
        used: memory_used_bytes(stats).map(|u| i(u.div_ceil(1 << 20))),
    };
    let nic_details: Vec<NicDiagnostics> = ctx
        .nics
        .iter()
        .map(|n| NicDiagnostics {
            mac_address: n.mac_address.clone(),
            rx_octets: Some(i(n.rx_bytes)),
            rx_errors: Some(i(n.rx_errors)),
            rx_drop: Some(i(n.rx_dropped)),
            rx_packets: Some(i(n.rx_packets)),
            rx_rate: None,
            tx_octets: Some(i(n.tx_bytes)),
            tx_errors: Some(i(n.tx_errors)),
            tx_drop: Some(i(n.tx_dropped)),
            tx_packets: Some(i(n.tx_packets)),
            tx_rate: None,
        })
        .collect();
    let disk_details = vec![DiskDiagnostics {
        read_bytes: blkio_sum(stats, false, "read"),
        read_requests: blkio_sum(stats, true, "read"),
        write_bytes: blkio_sum(stats, false, "write"),
        write_requests: blkio_sum(stats, true, "write"),
        errors_count: None,
    }];
    Diagnostics {
        state: ctx.state.clone(),
        driver: DIAGNOSTICS_DRIVER.into(),
        hypervisor: Some("docker".into()),
        hypervisor_os: ctx.hypervisor_os.clone(),
        uptime: ctx.uptime,
        config_drive: false,
        memory_details,
        num_cpus: cpu_details.len() as i64,
        num_nics: nic_details.len() as i64,
        num_disks: disk_details.len() as i64,
        cpu_details,
        nic_details,
        disk_details,
    }
}

/// The flat dict of the legacy `get_diagnostics` (libvirt's key names: `cpuN_time` in
/// ns, `memory`/`memory-actual`/`memory-rss` in KiB, `<nic>_rx` ..., `root_read` ...).
pub fn legacy_diagnostics(
    d: &Diagnostics,
    stats: &ContainerStatsResponse,
    nics: &[NicCounters],
) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for c in &d.cpu_details {
        m.insert(
            format!("cpu{}_time", c.id.unwrap_or(0)),
            json!(c.time.unwrap_or(0)),
        );
    }
    if let Some(limit) = stats.memory_stats.as_ref().and_then(|s| s.limit) {
        m.insert("memory".into(), json!(limit >> 10));
        m.insert("memory-actual".into(), json!(limit >> 10));
    }
    if let Some(used) = memory_used_bytes(stats) {
        m.insert("memory-rss".into(), json!(used.div_ceil(1024)));
    }
    for n in nics {
        m.insert(format!("{}_rx", n.name), json!(n.rx_bytes));
        m.insert(format!("{}_rx_packets", n.name), json!(n.rx_packets));
        m.insert(format!("{}_rx_errors", n.name), json!(n.rx_errors));
        m.insert(format!("{}_rx_drop", n.name), json!(n.rx_dropped));
        m.insert(format!("{}_tx", n.name), json!(n.tx_bytes));
        m.insert(format!("{}_tx_packets", n.name), json!(n.tx_packets));
        m.insert(format!("{}_tx_errors", n.name), json!(n.tx_errors));
        m.insert(format!("{}_tx_drop", n.name), json!(n.tx_dropped));
    }
    if let Some(disk) = d.disk_details.first() {
        m.insert("root_read".into(), json!(disk.read_bytes.unwrap_or(0)));
        m.insert(
            "root_read_req".into(),
            json!(disk.read_requests.unwrap_or(0)),
        );
        m.insert("root_write".into(), json!(disk.write_bytes.unwrap_or(0)));
        m.insert(
            "root_write_req".into(),
            json!(disk.write_requests.unwrap_or(0)),
        );
        m.insert("root_errors".into(), json!(-1));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};

    #[test]
    fn net_dev() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0:    1500      10    1    2    0     0          0         0      700       5    3    4    0     0       0          0\n";
        let v = parse_net_dev(t);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "eth0");
        assert_eq!(
            (
                v[0].rx_bytes,
                v[0].rx_packets,
                v[0].rx_errors,
                v[0].rx_dropped
            ),
            (1500, 10, 1, 2)
        );
        assert_eq!(
            (
                v[0].tx_bytes,
                v[0].tx_packets,
                v[0].tx_errors,
                v[0].tx_dropped
            ),
            (700, 5, 3, 4)
        );
    }

    #[test]
    fn shape_matches_nova_objects() {
        let stats = ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(3000),
                    percpu_usage: None,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(10 << 20),
                limit: Some(64 << 20),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ctx = DiagnosticsContext {
            state: "running".into(),
            uptime: Some(5),
            vcpus: 2,
            ..Default::default()
        };
        let d = diagnostics(&stats, &ctx);
        assert_eq!(d.num_cpus, 2);
        assert_eq!(d.cpu_details[1].time, Some(1500));
        assert_eq!(
            d.memory_details,
            MemoryDiagnostics {
                maximum: Some(64),
                used: Some(10)
            }
        );
        let v = serde_json::to_value(&d).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|s| s.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "config_drive",
                "cpu_details",
                "disk_details",
                "driver",
                "hypervisor",
                "hypervisor_os",
                "memory_details",
                "nic_details",
                "num_cpus",
                "num_disks",
                "num_nics",
                "state",
                "uptime"
            ]
        );
        let legacy = legacy_diagnostics(&d, &stats, &[]);
        assert_eq!(legacy["memory"], json!(65536));
        assert_eq!(legacy["cpu0_time"], json!(1500));
    }
}
