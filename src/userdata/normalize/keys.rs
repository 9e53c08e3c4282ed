//! The keys of both vocabularies, and the error that lists the valid ones.

use serde_json::{Map, Value};

use super::values::squash;
use crate::userdata::{UserDataError, Vocabulary};

/// The old driver fork's keys.
pub const SHORT_KEYS: &[&str] = &[
    "command",
    "user",
    "detach",
    "stdin_open",
    "tty",
    "ports",
    "environment",
    "dns",
    "volumes",
    "volumes_from",
    "name",
    "entrypoint",
    "working_dir",
    "domainname",
    "memswap_limit",
    "cpuset",
    "host_config",
];

/// Short keys the old fork refused because Nova sets them.
const SHORT_NOVA_OWNED: &[&str] = &["hostname", "mem_limit", "cpu_shares", "network_disabled"];

/// Top-level keys of the Docker `/containers/create` body (current API plus
/// the API 1.16-era `Memory`, `MemorySwap`, `CpuShares`, `Cpuset`,
/// `SecurityOpts`, and the obsolete `PortSpecs`).
pub const DOCKER_KEYS: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Entrypoint",
    "Image",
    "Volumes",
    "WorkingDir",
    "NetworkDisabled",
    "MacAddress",
    "ExposedPorts",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Healthcheck",
    "ArgsEscaped",
    "OnBuild",
    "Shell",
    "HostConfig",
    "NetworkingConfig",
    "Memory",
    "MemorySwap",
    "CpuShares",
    "Cpuset",
    "SecurityOpts",
    "PortSpecs",
    "Name",
];

/// HostConfig fields (those of the Docker API [`HostOptions`](crate::userdata::HostOptions) holds, plus the
/// obsolete `LxcConf` and `KernelMemory`, dropped with a warning).
pub const HOST_CONFIG_KEYS: &[&str] = &[
    "CpuShares",
    "Memory",
    "CgroupParent",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "NanoCpus",
    "OomKillDisable",
    "Init",
    "PidsLimit",
    "Ulimits",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "VolumesFrom",
    "Mounts",
    "ConsoleSize",
    "Annotations",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "StorageOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "Isolation",
    "MaskedPaths",
    "ReadonlyPaths",
    "LxcConf",
    "KernelMemory",
];

pub(super) const OBSOLETE_HOST_CONFIG: &[&str] = &["LxcConf", "KernelMemory"];

/// Whether `key` is a top-level key of either vocabulary.
pub(crate) fn is_known_key(key: &str) -> bool {
    SHORT_KEYS.contains(&key) || DOCKER_KEYS.contains(&key)
}

pub(super) fn check_keys(
    map: &Map<String, Value>,
    vocabulary: Vocabulary,
    valid: &[&str],
) -> Result<(), UserDataError> {
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !valid.contains(&k.as_str()))
        .cloned()
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut hints = Vec::new();
    for k in &unknown {
        let sq = squash(k);
        if SHORT_NOVA_OWNED.contains(&k.as_str()) {
            hints.push(format!(
                "{k} is set by Nova from the instance and its flavor"
            ));
        } else if let Some(v) = valid.iter().find(|v| squash(v) == sq) {
            hints.push(format!("did you mean {v}?"));
        } else if vocabulary == Vocabulary::Docker && HOST_CONFIG_KEYS.contains(&k.as_str()) {
            hints.push(format!("{k} belongs inside HostConfig"));
        } else if vocabulary == Vocabulary::Short {
            if let Some(h) = HOST_CONFIG_KEYS.iter().find(|h| squash(h) == sq) {
                hints.push(format!("{k} belongs inside host_config (as {h})"));
            }
        }
    }
    Err(UserDataError::UnknownKeys {
        vocabulary,
        keys: unknown,
        valid: valid.iter().map(|s| s.to_string()).collect(),
        hint: if hints.is_empty() {
            String::new()
        } else {
            format!(" ({})", hints.join("; "))
        },
    })
}

/// The HostConfig field a key names, in either casing.
pub(super) fn host_config_key(k: &str) -> Option<&'static str> {
    if let Some(x) = HOST_CONFIG_KEYS.iter().find(|x| **x == k) {
        return Some(x);
    }
    let alias = match k {
        "mem_limit" => Some("Memory"),
        "memswap_limit" => Some("MemorySwap"),
        "mem_reservation" => Some("MemoryReservation"),
        "mem_swappiness" => Some("MemorySwappiness"),
        "read_only" => Some("ReadonlyRootfs"),
        "cpu_rt_period" => Some("CpuRealtimePeriod"),
        "cpu_rt_runtime" => Some("CpuRealtimeRuntime"),
        "cgroupns" => Some("CgroupnsMode"),
        "dns_opt" => Some("DnsOptions"),
        "device_read_bps" => Some("BlkioDeviceReadBps"),
        "device_write_bps" => Some("BlkioDeviceWriteBps"),
        "device_read_iops" => Some("BlkioDeviceReadIOps"),
        "device_write_iops" => Some("BlkioDeviceWriteIOps"),
        _ => None,
    };
    if alias.is_some() {
        return alias;
    }
    let sq = squash(k);
    HOST_CONFIG_KEYS.iter().copied().find(|x| squash(x) == sq)
}
