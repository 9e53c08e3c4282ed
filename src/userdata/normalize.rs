//! Both vocabularies to one `/containers/create` body.
//!
//! Values are read leniently in the forms people write (a command as a string
//! or a list, environment as a map or `K=V` list, volumes and ports in the
//! `docker run` notations), and strictly in what they mean: a value that
//! cannot be understood is an error naming the key, never silently dropped.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use serde_json::{json, Map, Value};

use super::{UserDataError, UserOptions, Vocabulary};

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

/// HostConfig fields (those of the Docker API bollard knows, plus the
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

const OBSOLETE_HOST_CONFIG: &[&str] = &["LxcConf", "KernelMemory"];

/// Port ranges wider than this are refused (they expand to one entry a port).
const MAX_PORT_RANGE: u32 = 1024;

/// Whether `key` is a top-level key of either vocabulary.
pub(crate) fn is_known_key(key: &str) -> bool {
    SHORT_KEYS.contains(&key) || DOCKER_KEYS.contains(&key)
}

fn invalid(key: &str, reason: impl Into<String>) -> UserDataError {
    UserDataError::InvalidValue {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn squash(s: &str) -> String {
    s.replace(['_', '-'], "").to_ascii_lowercase()
}

pub(crate) fn normalize(map: Map<String, Value>) -> Result<UserOptions, UserDataError> {
    let (docker, short): (Vec<&String>, Vec<&String>) = map
        .keys()
        .partition(|k| k.starts_with(|c: char| c.is_ascii_uppercase()));
    if !docker.is_empty() && !short.is_empty() {
        return Err(UserDataError::MixedVocabularies {
            docker_keys: docker.into_iter().cloned().collect(),
            short_keys: short.into_iter().cloned().collect(),
        });
    }
    if docker.is_empty() {
        check_keys(&map, Vocabulary::Short, SHORT_KEYS)?;
        short_body(map)
    } else {
        check_keys(&map, Vocabulary::Docker, DOCKER_KEYS)?;
        docker_body(map)
    }
}

fn check_keys(
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

// ---------------------------------------------------------------- values

fn string(v: &Value, key: &str) -> Result<Option<String>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(invalid(
            key,
            format!("expected a string, got {}", kind(other)),
        )),
    }
}

/// A string where "" means unset (as Docker reads it).
fn nonempty(v: &Value, key: &str) -> Result<Option<String>, UserDataError> {
    Ok(string(v, key)?.filter(|s| !s.is_empty()))
}

fn boolean(v: &Value, key: &str) -> Result<Option<bool>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(Some(false)),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(Some(true)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Some(true)),
            "false" | "no" | "off" | "0" => Ok(Some(false)),
            _ => Err(invalid(key, format!("expected true or false, got {s:?}"))),
        },
        other => Err(invalid(
            key,
            format!("expected true or false, got {}", kind(other)),
        )),
    }
}

fn integer(v: &Value, key: &str) -> Result<Option<i64>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| invalid(key, format!("expected an integer, got {n}"))),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| invalid(key, format!("expected an integer, got {s:?}"))),
        other => Err(invalid(
            key,
            format!("expected an integer, got {}", kind(other)),
        )),
    }
}

/// Bytes: an integer, or a size with a unit as docker-py and the CLI take
/// them (`512m`, `1g`, `100k`, `1.5gb`).
fn bytes(v: &Value, key: &str) -> Result<Option<i64>, UserDataError> {
    let Value::String(s) = v else {
        return integer(v, key);
    };
    let t = s.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(Some(n));
    }
    let bad = || {
        invalid(
            key,
            format!("expected a size in bytes or with a unit (512m, 1g), got {s:?}"),
        )
    };
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(num_end);
    let mult: f64 = match unit.trim() {
        "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let total = (n * mult).round();
    if !total.is_finite() || total >= 9.0e18 {
        return Err(bad());
    }
    Ok(Some(total as i64))
}

/// A list of strings; a single string is a list of one; empty strings dropped.
fn string_list(v: &Value, key: &str) -> Result<Option<Vec<String>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match string(item, &format!("{key}[{i}]"))? {
                    Some(s) if !s.is_empty() => out.push(s),
                    _ => {}
                }
            }
            Ok(Some(out))
        }
        Value::String(s) if s.is_empty() => Ok(Some(Vec::new())),
        other => Ok(Some(vec![string(other, key)?.unwrap_or_default()])),
    }
}

/// A command: a list, or a string split the way a shell splits words.
fn command(v: &Value, key: &str) -> Result<Option<Vec<String>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            if s.trim().is_empty() {
                return Ok(None);
            }
            let words = shell_words::split(s)
                .map_err(|e| invalid(key, format!("cannot split {s:?} into words: {e}")))?;
            Ok(Some(words))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| string(item, &format!("{key}[{i}]")).map(|s| s.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(invalid(
            key,
            format!(
                "expected a string or a list of strings, got {}",
                kind(other)
            ),
        )),
    }
}

/// Environment: a mapping, or a list of `NAME=value`.
fn env(v: &Value, key: &str) -> Result<Option<Vec<String>>, UserDataError> {
    let check_name = |name: &str, at: &str| {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            Err(invalid(at, format!("{name:?} is not a variable name")))
        } else {
            Ok(())
        }
    };
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => {
            let mut out = Vec::with_capacity(m.len());
            for (name, val) in m {
                let at = format!("{key}.{name}");
                check_name(name, &at)?;
                let val = match val {
                    Value::Object(_) | Value::Array(_) => {
                        return Err(invalid(
                            &at,
                            format!("expected a plain value, got {}", kind(val)),
                        ))
                    }
                    other => string(other, &at)?.unwrap_or_default(),
                };
                out.push(format!("{name}={val}"));
            }
            Ok(Some(out))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let Value::String(s) = item else {
                    return Err(invalid(
                        &at,
                        format!("expected NAME=value, got {}", kind(item)),
                    ));
                };
                if s.is_empty() {
                    continue;
                }
                check_name(s.split('=').next().unwrap_or(""), &at)?;
                out.push(s.clone());
            }
            Ok(Some(out))
        }
        other => Err(invalid(
            key,
            format!(
                "expected a mapping or a list of NAME=value, got {}",
                kind(other)
            ),
        )),
    }
}

/// A string-to-string mapping; a list of `k=v` is accepted too.
fn string_map(v: &Value, key: &str) -> Result<Option<Map<String, Value>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let at = format!("{key}.{k}");
                let s = match val {
                    Value::Object(_) | Value::Array(_) => {
                        return Err(invalid(
                            &at,
                            format!("expected a plain value, got {}", kind(val)),
                        ))
                    }
                    other => string(other, &at)?.unwrap_or_default(),
                };
                out.insert(k.clone(), Value::String(s));
            }
            Ok(Some(out))
        }
        Value::Array(items) => {
            let mut out = Map::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let s = string(item, &at)?.unwrap_or_default();
                if s.is_empty() {
                    continue;
                }
                let (k, val) = s.split_once('=').unwrap_or((s.as_str(), ""));
                out.insert(k.to_string(), Value::String(val.to_string()));
            }
            Ok(Some(out))
        }
        other => Err(invalid(
            key,
            format!("expected a mapping, got {}", kind(other)),
        )),
    }
}

fn object<'a>(v: &'a Value, key: &str) -> Result<Option<&'a Map<String, Value>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        other => Err(invalid(
            key,
            format!("expected a mapping, got {}", kind(other)),
        )),
    }
}

/// Rename keys that match `known` ignoring case and underscores (either
/// casing: `maximum_retry_count` -> `MaximumRetryCount`).
fn pascal(v: &Value, known: &[&str]) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, val)| {
                    let sq = squash(k);
                    let name = known
                        .iter()
                        .find(|n| squash(n) == sq)
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| k.clone());
                    (name, val.clone())
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------- volumes

/// Where a bind's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSource {
    /// An absolute path on the host.
    HostPath(String),
    /// A named Docker volume.
    Named(String),
}

/// A `source:target[:mode]` bind as Docker reads `HostConfig.Binds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: BindSource,
    pub target: String,
    pub modes: Vec<String>,
}

impl Bind {
    pub fn read_only(&self) -> bool {
        self.modes.iter().any(|m| m == "ro")
    }
}

const BIND_MODES: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "consistent",
    "cached",
    "delegated",
];

fn valid_volume_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parse one `HostConfig.Binds` entry.
pub fn parse_bind(s: &str) -> Result<Bind, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        [_] => {
            return Err(format!(
                "{s:?} has no target: write host-path:container-path (a container path alone is an anonymous volume)"
            ))
        }
        _ => return Err(format!("{s:?} is not source:target[:mode]")),
    };
    if !dst.starts_with('/') {
        return Err(format!(
            "{s:?}: the container path {dst:?} must be absolute"
        ));
    }
    let source = if src.starts_with('/') {
        BindSource::HostPath(src.to_string())
    } else if valid_volume_name(src) {
        BindSource::Named(src.to_string())
    } else {
        return Err(format!(
            "{s:?}: {src:?} is neither an absolute host path nor a volume name"
        ));
    };
    let modes: Vec<String> = mode
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = modes.iter().find(|m| !BIND_MODES.contains(&m.as_str())) {
        return Err(format!(
            "{s:?}: unknown mode {bad:?} (valid: {})",
            BIND_MODES.join(", ")
        ));
    }
    Ok(Bind {
        source,
        target: dst.to_string(),
        modes,
    })
}

fn container_path(p: &str, key: &str) -> Result<String, UserDataError> {
    if p.starts_with('/') && !p.contains('\0') {
        Ok(p.to_string())
    } else {
        Err(invalid(
            key,
            format!("the container path {p:?} must be absolute"),
        ))
    }
}

/// Binds and anonymous volumes out of the short `volumes` key (and the
/// lenient forms of `HostConfig.Binds`).
#[derive(Default)]
struct Volumes {
    anonymous: Vec<String>,
    binds: Vec<String>,
}

fn volumes(v: &Value, key: &str, allow_anonymous: bool) -> Result<Volumes, UserDataError> {
    let mut out = Volumes::default();
    let anon = |p: String, at: &str, out: &mut Volumes| {
        if allow_anonymous {
            out.anonymous.push(container_path(&p, at)?);
            Ok(())
        } else {
            Err(invalid(
                at,
                format!("{p:?} has no target: write host-path:container-path"),
            ))
        }
    };
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let Some(s) = nonempty(item, &at)? else {
                    continue;
                };
                if s.contains(':') {
                    parse_bind(&s).map_err(|e| invalid(&at, e))?;
                    out.binds.push(s);
                } else {
                    anon(s, &at, &mut out)?;
                }
            }
        }
        Value::String(s) => {
            return volumes(
                &Value::Array(vec![Value::String(s.clone())]),
                key,
                allow_anonymous,
            )
        }
        Value::Object(m) => {
            for (src, val) in m {
                let at = format!("{key}.{src}");
                let spec = match val {
                    Value::Null => {
                        anon(src.clone(), &at, &mut out)?;
                        continue;
                    }
                    Value::Object(o) if o.is_empty() => {
                        anon(src.clone(), &at, &mut out)?;
                        continue;
                    }
                    Value::String(dst) => format!("{src}:{dst}"),
                    // docker-py: {host: {bind: container, mode: ro}} or {bind, ro: true}
                    Value::Object(o) => {
                        let o = pascal(&Value::Object(o.clone()), &["bind", "mode", "ro"]);
                        let dst = o.get("bind").and_then(Value::as_str).ok_or_else(|| {
                            invalid(&at, "expected {bind: container-path, mode: ro|rw}")
                        })?;
                        let mode = match (o.get("mode"), o.get("ro")) {
                            (Some(m), _) => string(m, &format!("{at}.mode"))?.unwrap_or_default(),
                            (None, Some(ro)) => {
                                if boolean(ro, &format!("{at}.ro"))?.unwrap_or(false) {
                                    "ro".into()
                                } else {
                                    "rw".into()
                                }
                            }
                            _ => String::new(),
                        };
                        if mode.is_empty() {
                            format!("{src}:{dst}")
                        } else {
                            format!("{src}:{dst}:{mode}")
                        }
                    }
                    other => {
                        return Err(invalid(
                            &at,
                            format!("expected a container path, got {}", kind(other)),
                        ))
                    }
                };
                parse_bind(&spec).map_err(|e| invalid(&at, e))?;
                out.binds.push(spec);
            }
        }
        other => {
            return Err(invalid(
                key,
                format!("expected a list or a mapping, got {}", kind(other)),
            ))
        }
    }
    Ok(out)
}

fn path_set(v: &Value, key: &str) -> Result<Option<Vec<String>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => m
            .keys()
            .map(|p| container_path(p, &format!("{key}.{p}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => {
            let list = string_list(other, key)?.unwrap_or_default();
            list.iter()
                .enumerate()
                .map(|(i, p)| container_path(p, &format!("{key}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
    }
}

fn to_set(items: Vec<String>) -> HashMap<String, HashMap<(), ()>> {
    items.into_iter().map(|k| (k, HashMap::new())).collect()
}

// ---------------------------------------------------------------- ports

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let one = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{p:?} is not a port number (1-65535)")),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(format!("{s:?} is an empty range"));
            }
            if u32::from(b - a) >= MAX_PORT_RANGE {
                return Err(format!("{s:?} spans more than {MAX_PORT_RANGE} ports"));
            }
            Ok((a, b))
        }
        None => one(s).map(|p| (p, p)),
    }
}

fn split_proto(s: &str) -> Result<(&str, String), String> {
    match s.rsplit_once('/') {
        Some((rest, proto)) => {
            let proto = proto.to_ascii_lowercase();
            if matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                Ok((rest, proto))
            } else {
                Err(format!("{proto:?} is not a protocol (tcp, udp, sctp)"))
            }
        }
        None => Ok((s, "tcp".into())),
    }
}

fn check_ip(ip: &str) -> Result<(), String> {
    if ip.is_empty() || ip.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!("{ip:?} is not an IP address"))
    }
}

/// Exposed ports and their bindings, keyed `port/proto`.
#[derive(Default)]
struct Ports {
    exposed: Vec<String>,
    bindings: Map<String, Value>,
}

impl Ports {
    fn bind(&mut self, key: &str, ip: &str, port: &str) {
        let mut b = Map::new();
        if !ip.is_empty() {
            b.insert("HostIp".into(), Value::String(ip.to_string()));
        }
        b.insert("HostPort".into(), Value::String(port.to_string()));
        let e = self
            .bindings
            .entry(key.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = e {
            a.push(Value::Object(b));
        }
    }

    fn expose(&mut self, key: &str) {
        if !self.exposed.iter().any(|k| k == key) {
            self.exposed.push(key.to_string());
        }
    }
}

/// Container port keys of `80`, `80/udp`, `8000-8010/tcp`.
fn container_ports(s: &str) -> Result<Vec<String>, String> {
    let (rest, proto) = split_proto(s.trim())?;
    let (a, b) = port_range(rest)?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// One `docker run -p` spec: `80`, `8080:80`, `127.0.0.1:8080:80/udp`,
/// `127.0.0.1::80`, `[::1]:8080:80`, ranges `8000-8001:9000-9001`.
fn port_spec(s: &str, out: &mut Ports) -> Result<(), String> {
    let (rest, proto) = split_proto(s.trim())?;
    let (ip, host, cont) = if let Some(after) = rest.strip_prefix('[') {
        let (ip, tail) = after
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed [ in an IPv6 address"))?;
        let tail = tail
            .strip_prefix(':')
            .ok_or_else(|| format!("{s:?}: expected [ip]:host-port:container-port"))?;
        let (h, c) = tail
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected [ip]:host-port:container-port"))?;
        (ip, Some(h), c)
    } else {
        let segs: Vec<&str> = rest.split(':').collect();
        match segs.as_slice() {
            [c] => ("", None, *c),
            [h, c] => ("", Some(*h), *c),
            [ip, h, c] => (*ip, Some(*h), *c),
            _ => return Err(format!("{s:?} is not [ip:][host-port:]container-port[/proto] (IPv6 addresses go in [brackets])")),
        }
    };
    check_ip(ip)?;
    let (ca, cb) = port_range(cont)?;
    let Some(host) = host else {
        for p in ca..=cb {
            out.expose(&format!("{p}/{proto}"));
        }
        return Ok(());
    };
    if host.is_empty() {
        for p in ca..=cb {
            let key = format!("{p}/{proto}");
            out.expose(&key);
            out.bind(&key, ip, "");
        }
        return Ok(());
    }
    let (ha, hb) = port_range(host)?;
    if ca == cb {
        let key = format!("{ca}/{proto}");
        out.expose(&key);
        let hp = if ha == hb {
            ha.to_string()
        } else {
            format!("{ha}-{hb}")
        };
        out.bind(&key, ip, &hp);
        return Ok(());
    }
    if hb - ha != cb - ca {
        return Err(format!(
            "{s:?}: the host and container ranges differ in length"
        ));
    }
    for i in 0..=(cb - ca) {
        let key = format!("{}/{proto}", ca + i);
        out.expose(&key);
        out.bind(&key, ip, &(ha + i).to_string());
    }
    Ok(())
}

/// A host-side binding in a mapping form: `8080`, `"127.0.0.1:8080"`,
/// `["127.0.0.1", 8080]`, `{HostIp, HostPort}`, or a list of those.
fn host_binding(
    v: &Value,
    key: &str,
    cont: &str,
    out: &mut Ports,
    at: &str,
) -> Result<(), UserDataError> {
    match v {
        Value::Null => Ok(()),
        Value::Number(_) | Value::String(_) => {
            let s = string(v, at)?.unwrap_or_default();
            let (ip, port) = match s.strip_prefix('[') {
                Some(after) => {
                    let (ip, tail) = after
                        .split_once(']')
                        .ok_or_else(|| invalid(at, format!("{s:?}: unclosed [")))?;
                    (ip.to_string(), tail.trim_start_matches(':').to_string())
                }
                None => match s.rsplit_once(':') {
                    Some((ip, p)) => (ip.to_string(), p.to_string()),
                    None => (String::new(), s.clone()),
                },
            };
            check_ip(&ip).map_err(|e| invalid(at, e))?;
            if !port.is_empty() {
                port_range(&port).map_err(|e| invalid(at, e))?;
            }
            out.bind(key, &ip, &port);
            Ok(())
        }
        Value::Array(items) => {
            // docker-py's (ip, port) tuple
            if let [Value::String(ip), port] = items.as_slice() {
                if ip.parse::<std::net::IpAddr>().is_ok() && !port.is_array() && !port.is_object() {
                    let port = string(port, at)?.unwrap_or_default();
                    if !port.is_empty() {
                        port_range(&port).map_err(|e| invalid(at, e))?;
                    }
                    out.bind(key, ip, &port);
                    return Ok(());
                }
            }
            for (i, item) in items.iter().enumerate() {
                host_binding(item, key, cont, out, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        Value::Object(_) => {
            let o = pascal(v, &["HostIp", "HostPort"]);
            let ip = o
                .get("HostIp")
                .map(|x| string(x, &format!("{at}.HostIp")))
                .transpose()?
                .flatten()
                .unwrap_or_default();
            let port = o
                .get("HostPort")
                .map(|x| string(x, &format!("{at}.HostPort")))
                .transpose()?
                .flatten()
                .unwrap_or_default();
            check_ip(&ip).map_err(|e| invalid(at, e))?;
            if !port.is_empty() {
                port_range(&port).map_err(|e| invalid(at, e))?;
            }
            out.bind(key, &ip, &port);
            Ok(())
        }
        Value::Bool(_) => Err(invalid(
            at,
            format!("expected a host port for {cont}, got a boolean"),
        )),
    }
}

fn ports(v: &Value, key: &str) -> Result<Ports, UserDataError> {
    let mut out = Ports::default();
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let Some(s) = nonempty(item, &at)? else {
                    continue;
                };
                port_spec(&s, &mut out).map_err(|e| invalid(&at, e))?;
            }
        }
        Value::String(_) | Value::Number(_) => {
            let s = string(v, key)?.unwrap_or_default();
            port_spec(&s, &mut out).map_err(|e| invalid(key, e))?;
        }
        Value::Object(m) => {
            for (cont, val) in m {
                let at = format!("{key}.{cont}");
                let keys = container_ports(cont).map_err(|e| invalid(&at, e))?;
                if keys.len() > 1 && !val.is_null() {
                    return Err(invalid(
                        &at,
                        "a port range takes the list form (\"8000-8001:8000-8001\")",
                    ));
                }
                for k in &keys {
                    out.expose(k);
                    host_binding(val, k, cont, &mut out, &at)?;
                }
            }
        }
        other => {
            return Err(invalid(
                key,
                format!("expected a list or a mapping, got {}", kind(other)),
            ))
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- HostConfig

/// The HostConfig field a key names, in either casing.
fn host_config_key(k: &str) -> Option<&'static str> {
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

/// A HostConfig (Docker casing or docker-py's snake_case) as validated JSON
/// in Docker casing.
fn host_config(
    v: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, UserDataError> {
    let mut out = Map::new();
    let Some(m) = object(v, path)? else {
        return Ok(out);
    };
    let mut unknown = Vec::new();
    let mut seen: HashMap<&'static str, &str> = HashMap::new();
    for (k, val) in m {
        let Some(name) = host_config_key(k) else {
            unknown.push(k.clone());
            continue;
        };
        if let Some(prev) = seen.insert(name, k) {
            return Err(invalid(
                &format!("{path}.{k}"),
                format!("{prev} and {k} both set {name}"),
            ));
        }
        let at = format!("{path}.{name}");
        if OBSOLETE_HOST_CONFIG.contains(&name) {
            if !val.is_null() {
                warnings.push(format!(
                    "{at} is obsolete (Docker no longer supports it) and is ignored"
                ));
            }
            continue;
        }
        if let Some(val) = host_config_field(name, val, &at)? {
            // each field alone through bollard's type, so the error names it
            serde_json::from_value::<HostConfig>(json!({ name: val.clone() }))
                .map_err(|e| invalid(&at, e.to_string()))?;
            out.insert(name.to_string(), val);
        }
    }
    if !unknown.is_empty() {
        let valid: Vec<&str> = HOST_CONFIG_KEYS
            .iter()
            .copied()
            .filter(|k| !OBSOLETE_HOST_CONFIG.contains(k))
            .collect();
        return Err(invalid(
            path,
            format!(
                "unknown field(s) {}; valid fields are: {}",
                unknown.join(", "),
                valid.join(", ")
            ),
        ));
    }
    Ok(out)
}

fn list_value(v: Option<Vec<String>>) -> Option<Value> {
    v.map(|l| Value::Array(l.into_iter().map(Value::String).collect()))
}

fn host_config_field(name: &str, v: &Value, at: &str) -> Result<Option<Value>, UserDataError> {
    Ok(match name {
        "Binds" => {
            let vols = volumes(v, at, false)?;
            list_value(Some(vols.binds))
        }
        "PortBindings" => {
            let Some(m) = object(v, at)? else {
                return Ok(None);
            };
            let mut p = Ports::default();
            for (cont, val) in m {
                let keys =
                    container_ports(cont).map_err(|e| invalid(&format!("{at}.{cont}"), e))?;
                for k in &keys {
                    host_binding(val, k, cont, &mut p, &format!("{at}.{cont}"))?;
                }
            }
            Some(Value::Object(p.bindings))
        }
        "Links" => match v {
            Value::Object(m) => Some(Value::Array(
                m.iter()
                    .map(|(name, alias)| {
                        let alias = string(alias, &format!("{at}.{name}"))?.unwrap_or_default();
                        Ok(Value::String(if alias.is_empty() {
                            name.clone()
                        } else {
                            format!("{name}:{alias}")
                        }))
                    })
                    .collect::<Result<_, UserDataError>>()?,
            )),
            other => list_value(string_list(other, at)?),
        },
        "ExtraHosts" => match v {
            Value::Object(m) => Some(Value::Array(
                m.iter()
                    .map(|(host, ip)| {
                        let ip = string(ip, &format!("{at}.{host}"))?.unwrap_or_default();
                        Ok(Value::String(format!("{host}:{ip}")))
                    })
                    .collect::<Result<_, UserDataError>>()?,
            )),
            other => list_value(string_list(other, at)?),
        },
        "MaskedPaths" | "ReadonlyPaths" => match v {
            Value::Null => None,
            other => list_value(string_list(other, at)?),
        },
        "VolumesFrom" | "Dns" | "DnsSearch" | "DnsOptions" | "CapAdd" | "CapDrop"
        | "SecurityOpt" | "GroupAdd" | "DeviceCgroupRules" => list_value(string_list(v, at)?),
        "Devices" => match v {
            Value::Null => None,
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| device(item, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )),
            other => Some(Value::Array(vec![device(other, at)?])),
        },
        "RestartPolicy" => match v {
            Value::String(s) => {
                let (name, count) = match s.split_once(':') {
                    Some((n, c)) => (
                        n,
                        Some(c.trim().parse::<i64>().map_err(|_| {
                            invalid(at, format!("{s:?}: the retry count must be an integer"))
                        })?),
                    ),
                    None => (s.as_str(), None),
                };
                let mut m = Map::new();
                m.insert("Name".into(), Value::String(name.trim().to_string()));
                if let Some(c) = count {
                    m.insert("MaximumRetryCount".into(), c.into());
                }
                Some(Value::Object(m))
            }
            other => Some(pascal(other, &["Name", "MaximumRetryCount"])),
        },
        "LogConfig" => Some(pascal(v, &["Type", "Config"])),
        "Ulimits" => match v {
            Value::Null => None,
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| ulimit(item, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Object(m) => Some(Value::Array(
                m.iter()
                    .map(|(name, lim)| {
                        let at = format!("{at}.{name}");
                        let mut o = match pascal(lim, &["Soft", "Hard"]) {
                            Value::Object(o) => o,
                            scalar => {
                                let n = integer(&scalar, &at)?;
                                let mut o = Map::new();
                                o.insert("Soft".into(), json!(n));
                                o.insert("Hard".into(), json!(n));
                                o
                            }
                        };
                        o.insert("Name".into(), Value::String(name.clone()));
                        Ok(Value::Object(o))
                    })
                    .collect::<Result<_, UserDataError>>()?,
            )),
            other => return Err(invalid(at, format!("expected a list, got {}", kind(other)))),
        },
        "Memory" | "MemorySwap" | "MemoryReservation" | "KernelMemoryTCP" | "ShmSize" => {
            bytes(v, at)?.map(Value::from)
        }
        "Sysctls" | "StorageOpt" | "Annotations" => string_map(v, at)?.map(Value::Object),
        "Tmpfs" => match v {
            Value::Array(items) => {
                let mut m = Map::new();
                for (i, item) in items.iter().enumerate() {
                    let s = string(item, &format!("{at}[{i}]"))?.unwrap_or_default();
                    let (p, opts) = s.split_once(':').unwrap_or((s.as_str(), ""));
                    m.insert(
                        container_path(p, &format!("{at}[{i}]"))?,
                        Value::String(opts.to_string()),
                    );
                }
                Some(Value::Object(m))
            }
            other => string_map(other, at)?.map(Value::Object),
        },
        "Mounts" => match v {
            Value::Null => None,
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|item| {
                        let mut o = pascal(
                            item,
                            &[
                                "Target",
                                "Source",
                                "Type",
                                "ReadOnly",
                                "Consistency",
                                "BindOptions",
                                "VolumeOptions",
                                "TmpfsOptions",
                                "ImageOptions",
                            ],
                        );
                        if let Value::Object(m) = &mut o {
                            for (sub, known) in [
                                (
                                    "BindOptions",
                                    &[
                                        "Propagation",
                                        "NonRecursive",
                                        "CreateMountpoint",
                                        "ReadOnlyNonRecursive",
                                        "ReadOnlyForceRecursive",
                                    ][..],
                                ),
                                (
                                    "VolumeOptions",
                                    &["NoCopy", "Labels", "DriverConfig", "Subpath"][..],
                                ),
                                ("TmpfsOptions", &["SizeBytes", "Mode", "Options"][..]),
                            ] {
                                if let Some(s) = m.get_mut(sub) {
                                    *s = pascal(s, known);
                                    if let Some(dc) = s.get_mut("DriverConfig") {
                                        *dc = pascal(dc, &["Name", "Options"]);
                                    }
                                }
                            }
                        }
                        o
                    })
                    .collect(),
            )),
            other => return Err(invalid(at, format!("expected a list, got {}", kind(other)))),
        },
        "BlkioWeightDevice"
        | "BlkioDeviceReadBps"
        | "BlkioDeviceWriteBps"
        | "BlkioDeviceReadIOps"
        | "BlkioDeviceWriteIOps" => match v {
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|i| pascal(i, &["Path", "Weight", "Rate"]))
                    .collect(),
            )),
            other => Some(other.clone()),
        },
        "DeviceRequests" => match v {
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|i| {
                        pascal(
                            i,
                            &["Driver", "Count", "DeviceIDs", "Capabilities", "Options"],
                        )
                    })
                    .collect(),
            )),
            other => Some(other.clone()),
        },
        "CpusetCpus" | "CpusetMems" | "NetworkMode" | "PidMode" | "IpcMode" | "UTSMode"
        | "UsernsMode" | "Cgroup" | "CgroupParent" | "VolumeDriver" | "Runtime"
        | "ContainerIDFile" | "CgroupnsMode" | "Isolation" => string(v, at)?.map(Value::String),
        _ => match v {
            Value::Null => None,
            other => Some(other.clone()),
        },
    })
}

/// `/dev/x[:/dev/y[:rwm]]` or `{PathOnHost, PathInContainer, CgroupPermissions}`.
fn device(v: &Value, at: &str) -> Result<Value, UserDataError> {
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            let (host, cont, perms) = match parts.as_slice() {
                [h] => (*h, *h, "rwm"),
                [h, c] if c.starts_with('/') => (*h, *c, "rwm"),
                [h, p] => (*h, *h, *p),
                [h, c, p] => (*h, *c, *p),
                _ => {
                    return Err(invalid(
                        at,
                        format!("{s:?} is not host-path[:container-path[:rwm]]"),
                    ))
                }
            };
            Ok(json!({"PathOnHost": host, "PathInContainer": cont, "CgroupPermissions": perms}))
        }
        Value::Object(_) => Ok(pascal(
            v,
            &["PathOnHost", "PathInContainer", "CgroupPermissions"],
        )),
        other => Err(invalid(
            at,
            format!("expected a device, got {}", kind(other)),
        )),
    }
}

/// `{Name, Soft, Hard}` or `nofile=1024:2048`.
fn ulimit(v: &Value, at: &str) -> Result<Value, UserDataError> {
    match v {
        Value::String(s) => {
            let (name, lims) = s
                .split_once('=')
                .ok_or_else(|| invalid(at, format!("{s:?} is not name=soft[:hard]")))?;
            let (soft, hard) = lims.split_once(':').unwrap_or((lims, lims));
            let n = |x: &str| {
                x.trim()
                    .parse::<i64>()
                    .map_err(|_| invalid(at, format!("{s:?}: {x:?} is not an integer")))
            };
            Ok(json!({"Name": name.trim(), "Soft": n(soft)?, "Hard": n(hard)?}))
        }
        Value::Object(_) => Ok(pascal(v, &["Name", "Soft", "Hard"])),
        other => Err(invalid(
            at,
            format!("expected a ulimit, got {}", kind(other)),
        )),
    }
}

/// Merge a HostConfig from another source: lists add up, mappings merge,
/// scalars must agree.
fn merge_host_config(
    into: &mut Map<String, Value>,
    from: Map<String, Value>,
    from_name: &str,
) -> Result<(), UserDataError> {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (None, v) => {
                into.insert(k, v);
            }
            (Some(Value::Array(a)), Value::Array(b)) => a.extend(b),
            (Some(Value::Object(a)), Value::Object(b)) => {
                for (bk, bv) in b {
                    match (a.get_mut(&bk), bv) {
                        (Some(Value::Array(x)), Value::Array(y)) => x.extend(y),
                        (_, bv) => {
                            a.insert(bk, bv);
                        }
                    }
                }
            }
            (Some(existing), v) => {
                if *existing != v {
                    return Err(invalid(
                        &format!("{from_name}.{k}"),
                        format!("{v} disagrees with {existing} given by another key"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn finish_host_config(hc: Map<String, Value>) -> Result<Option<HostConfig>, UserDataError> {
    if hc.is_empty() {
        return Ok(None);
    }
    serde_json::from_value::<HostConfig>(Value::Object(hc))
        .map(Some)
        .map_err(|e| invalid("HostConfig", e.to_string()))
}

/// A published port is an exposed port (as `docker run -p` makes it; the
/// engine publishes only exposed ports).
fn expose_bound_ports(body: &mut ContainerCreateBody) {
    let keys: Vec<String> = body
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    if keys.is_empty() {
        return;
    }
    let exposed = body.exposed_ports.get_or_insert_with(HashMap::new);
    for k in keys {
        exposed.entry(k).or_default();
    }
}

// ---------------------------------------------------------------- vocabularies

fn short_body(map: Map<String, Value>) -> Result<UserOptions, UserDataError> {
    let mut body = ContainerCreateBody::default();
    let mut warnings = Vec::new();
    let mut hc = Map::new();
    let mut user_hc = Map::new();
    for (k, v) in &map {
        let k = k.as_str();
        match k {
            "command" => body.cmd = command(v, k)?,
            "entrypoint" => body.entrypoint = command(v, k)?,
            "user" => body.user = nonempty(v, k)?,
            "detach" => {
                if let Some(d) = boolean(v, k)? {
                    body.attach_stdout = Some(!d);
                    body.attach_stderr = Some(!d);
                }
            }
            "stdin_open" => body.open_stdin = boolean(v, k)?,
            "tty" => body.tty = boolean(v, k)?,
            "ports" => {
                let p = ports(v, k)?;
                if !p.exposed.is_empty() {
                    body.exposed_ports = Some(to_set(p.exposed));
                }
                if !p.bindings.is_empty() {
                    merge_host_config(
                        &mut hc,
                        Map::from_iter([("PortBindings".to_string(), Value::Object(p.bindings))]),
                        k,
                    )?;
                }
            }
            "environment" => body.env = env(v, k)?,
            "dns" => {
                if let Some(l) = list_value(string_list(v, k)?) {
                    hc.insert("Dns".into(), l);
                }
            }
            "volumes" => {
                let vols = volumes(v, k, true)?;
                if !vols.anonymous.is_empty() {
                    body.volumes = Some(to_set(vols.anonymous));
                }
                if !vols.binds.is_empty() {
                    hc.insert(
                        "Binds".into(),
                        list_value(Some(vols.binds)).unwrap_or_default(),
                    );
                }
            }
            "volumes_from" => {
                if let Some(l) = list_value(string_list(v, k)?) {
                    hc.insert("VolumesFrom".into(), l);
                }
            }
            "name" => {
                if let Some(n) = nonempty(v, k)? {
                    warnings.push(format!(
                        "name {n:?} is ignored: the container is named after the instance (nova-<uuid>)"
                    ));
                }
            }
            "working_dir" => body.working_dir = nonempty(v, k)?,
            "domainname" => body.domainname = nonempty(v, k)?,
            "memswap_limit" => {
                if let Some(b) = bytes(v, k)? {
                    hc.insert("MemorySwap".into(), b.into());
                }
            }
            "cpuset" => {
                if let Some(s) = nonempty(v, k)? {
                    hc.insert("CpusetCpus".into(), s.into());
                }
            }
            "host_config" => user_hc = host_config(v, k, &mut warnings)?,
            _ => {}
        }
    }
    merge_host_config(&mut hc, user_hc, "host_config")?;
    body.host_config = finish_host_config(hc)?;
    expose_bound_ports(&mut body);
    Ok(UserOptions {
        body,
        warnings,
        vocabulary: Some(Vocabulary::Short),
    })
}

fn docker_body(map: Map<String, Value>) -> Result<UserOptions, UserDataError> {
    let mut body = ContainerCreateBody::default();
    let mut warnings = Vec::new();
    let mut top_hc = Map::new();
    let mut hc = Map::new();
    for (k, v) in &map {
        let k = k.as_str();
        match k {
            "Hostname" => {
                body.hostname = nonempty(v, k)?;
                if let Some(h) = &body.hostname {
                    warnings.push(format!(
                        "Hostname {h:?} is overridden: the hostname is the instance's"
                    ));
                }
            }
            "Domainname" => body.domainname = nonempty(v, k)?,
            "User" => body.user = nonempty(v, k)?,
            "WorkingDir" => body.working_dir = nonempty(v, k)?,
            "StopSignal" => body.stop_signal = nonempty(v, k)?,
            "MacAddress" => {
                body.mac_address = nonempty(v, k)?;
                if let Some(m) = &body.mac_address {
                    warnings.push(format!(
                        "MacAddress {m:?} is overridden: MAC addresses come from the instance's ports"
                    ));
                }
            }
            "Image" => {
                body.image = nonempty(v, k)?;
                if let Some(i) = &body.image {
                    warnings.push(format!(
                        "Image {i:?} is overridden: the container runs the instance's Glance image"
                    ));
                }
            }
            "Name" => {
                if let Some(n) = nonempty(v, k)? {
                    warnings.push(format!(
                        "Name {n:?} is ignored: the container is named after the instance (nova-<uuid>)"
                    ));
                }
            }
            "AttachStdin" => body.attach_stdin = boolean(v, k)?,
            "AttachStdout" => body.attach_stdout = boolean(v, k)?,
            "AttachStderr" => body.attach_stderr = boolean(v, k)?,
            "Tty" => body.tty = boolean(v, k)?,
            "OpenStdin" => body.open_stdin = boolean(v, k)?,
            "StdinOnce" => body.stdin_once = boolean(v, k)?,
            "ArgsEscaped" => body.args_escaped = boolean(v, k)?,
            "NetworkDisabled" => {
                body.network_disabled = boolean(v, k)?;
                if body.network_disabled == Some(true) {
                    warnings.push(
                        "NetworkDisabled is overridden: Nova wires the instance's networks from its ports"
                            .into(),
                    );
                }
            }
            "Env" => body.env = env(v, k)?,
            "Cmd" => body.cmd = command(v, k)?,
            "Entrypoint" => body.entrypoint = command(v, k)?,
            "Shell" => body.shell = command(v, k)?,
            "OnBuild" => body.on_build = string_list(v, k)?,
            "Volumes" => body.volumes = path_set(v, k)?.map(to_set),
            "ExposedPorts" => {
                let keys: Vec<String> = match v {
                    Value::Object(m) => m.keys().cloned().collect(),
                    other => string_list(other, k)?.unwrap_or_default(),
                };
                let mut out = Vec::new();
                for key in keys {
                    out.extend(
                        container_ports(&key).map_err(|e| invalid(&format!("{k}.{key}"), e))?,
                    );
                }
                if !out.is_empty() || !v.is_null() {
                    body.exposed_ports = Some(to_set(out));
                }
            }
            "Labels" => {
                body.labels = string_map(v, k)?.map(|m| {
                    m.into_iter()
                        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
            }
            "StopTimeout" => body.stop_timeout = integer(v, k)?,
            "Healthcheck" if !v.is_null() => {
                let mut h = pascal(
                    v,
                    &[
                        "Test",
                        "Interval",
                        "Timeout",
                        "Retries",
                        "StartPeriod",
                        "StartInterval",
                    ],
                );
                if let Some(Value::String(s)) = h.get("Test").cloned() {
                    h["Test"] = json!(["CMD-SHELL", s]);
                }
                body.healthcheck =
                    Some(serde_json::from_value(h).map_err(|e| invalid(k, e.to_string()))?);
            }
            "NetworkingConfig" if !v.is_null() => {
                body.networking_config =
                    Some(serde_json::from_value(v.clone()).map_err(|e| invalid(k, e.to_string()))?);
            }
            "HostConfig" => hc = host_config(v, k, &mut warnings)?,
            "Memory" | "MemorySwap" => {
                if let Some(b) = bytes(v, k)? {
                    top_hc.insert(k.to_string(), b.into());
                }
            }
            "CpuShares" => {
                if let Some(n) = integer(v, k)? {
                    top_hc.insert(k.to_string(), n.into());
                }
            }
            "Cpuset" => {
                if let Some(s) = nonempty(v, k)? {
                    top_hc.insert("CpusetCpus".into(), s.into());
                }
            }
            "SecurityOpts" => {
                if let Some(l) = string_list(v, k)? {
                    if !l.is_empty() {
                        top_hc.insert(
                            "SecurityOpt".into(),
                            list_value(Some(l)).unwrap_or_default(),
                        );
                    }
                }
            }
            "PortSpecs" if !v.is_null() => {
                warnings.push(
                    "PortSpecs is obsolete (Docker no longer supports it) and is ignored: use ExposedPorts and HostConfig.PortBindings".into(),
                );
            }
            _ => {}
        }
    }
    // API 1.16-era top-level fields: HostConfig's own value wins.
    for (k, v) in top_hc {
        let inside = if k == "CpusetCpus" {
            "Cpuset"
        } else if k == "SecurityOpt" {
            "SecurityOpts"
        } else {
            k.as_str()
        };
        match hc.get(&k) {
            Some(existing) if *existing != v => warnings.push(format!(
                "{inside} is given at the top level and as HostConfig.{k}: HostConfig.{k} ({existing}) is used"
            )),
            Some(_) => {}
            None => {
                serde_json::from_value::<HostConfig>(json!({ k.as_str(): v.clone() }))
                    .map_err(|e| invalid(inside, e.to_string()))?;
                hc.insert(k, v);
            }
        }
    }
    body.host_config = finish_host_config(hc)?;
    expose_bound_ports(&mut body);
    Ok(UserOptions {
        body,
        warnings,
        vocabulary: Some(Vocabulary::Docker),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::PortBinding;

    fn norm(v: Value) -> Result<UserOptions, UserDataError> {
        match v {
            Value::Object(m) => normalize(m),
            _ => panic!("not a mapping"),
        }
    }

    fn hc(o: &UserOptions) -> &HostConfig {
        o.body.host_config.as_ref().expect("host config")
    }

    #[test]
    fn short_keys_every_one() {
        let o = norm(json!({
            "command": "sh -c 'echo \"a b\"; sleep 1'",
            "entrypoint": ["/bin/sh"],
            "user": 65534,
            "detach": true,
            "stdin_open": true,
            "tty": true,
            "ports": ["80", "8080:81", "127.0.0.1:9000:90/udp", "[::1]::91", "7000-7001:8000-8001"],
            "environment": {"A": 1, "B": "x y", "C": null},
            "dns": "8.8.8.8",
            "volumes": ["/data", "/tmp/h:/c:ro", "vol1:/v"],
            "volumes_from": "other:ro",
            "name": "mine",
            "working_dir": "/tmp",
            "domainname": "example.org",
            "memswap_limit": "1g",
            "cpuset": "0",
            "host_config": {"cap_drop": ["MKNOD"], "Privileged": false, "restart_policy": "on-failure:3"}
        }))
        .unwrap();
        let b = &o.body;
        assert_eq!(
            b.cmd.as_deref().unwrap(),
            ["sh", "-c", "echo \"a b\"; sleep 1"]
        );
        assert_eq!(b.entrypoint.as_deref().unwrap(), ["/bin/sh"]);
        assert_eq!(b.user.as_deref(), Some("65534"));
        assert_eq!(
            (b.attach_stdout, b.attach_stderr),
            (Some(false), Some(false))
        );
        assert_eq!((b.open_stdin, b.tty), (Some(true), Some(true)));
        let ex = b.exposed_ports.as_ref().unwrap();
        for k in [
            "80/tcp", "81/tcp", "90/udp", "91/tcp", "8000/tcp", "8001/tcp",
        ] {
            assert!(ex.contains_key(k), "{k} in {ex:?}");
        }
        let h = hc(&o);
        let pb = h.port_bindings.as_ref().unwrap();
        assert_eq!(
            pb["90/udp"].as_ref().unwrap()[0],
            PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("9000".into())
            }
        );
        assert_eq!(
            pb["91/tcp"].as_ref().unwrap()[0].host_ip.as_deref(),
            Some("::1")
        );
        assert_eq!(
            pb["8001/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("7001")
        );
        assert!(!pb.contains_key("80/tcp"));
        assert_eq!(b.env.as_deref().unwrap(), ["A=1", "B=x y", "C="]);
        assert_eq!(h.dns.as_deref().unwrap(), ["8.8.8.8"]);
        assert!(b.volumes.as_ref().unwrap().contains_key("/data"));
        assert_eq!(h.binds.as_deref().unwrap(), ["/tmp/h:/c:ro", "vol1:/v"]);
        assert_eq!(h.volumes_from.as_deref().unwrap(), ["other:ro"]);
        assert!(o.warnings.iter().any(|w| w.contains("mine")));
        assert_eq!(b.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(b.domainname.as_deref(), Some("example.org"));
        assert_eq!(h.memory_swap, Some(1 << 30));
        assert_eq!(h.cpuset_cpus.as_deref(), Some("0"));
        assert_eq!(h.cap_drop.as_deref().unwrap(), ["MKNOD"]);
        assert_eq!(h.privileged, Some(false));
        assert_eq!(
            h.restart_policy.as_ref().unwrap().maximum_retry_count,
            Some(3)
        );
        assert_eq!(o.vocabulary, Some(Vocabulary::Short));
    }

    #[test]
    fn short_forms() {
        let o = norm(json!({
            "volumes": {"/tmp/a": "/a", "/tmp/b": {"bind": "/b", "mode": "ro"}, "/anon": {}},
            "ports": {"80": 8080, "81/udp": null, "82": ["127.0.0.1", 8082], "83": "10.0.0.1:8083", "84": [{"HostPort": "8084"}]},
            "environment": ["X=1", "Y=2=3"],
            "command": ["echo", 1, true],
        }))
        .unwrap();
        let h = hc(&o);
        let mut binds = h.binds.clone().unwrap();
        binds.sort();
        assert_eq!(binds, ["/tmp/a:/a", "/tmp/b:/b:ro"]);
        assert!(o.body.volumes.as_ref().unwrap().contains_key("/anon"));
        let pb = h.port_bindings.as_ref().unwrap();
        assert_eq!(
            pb["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        assert!(o
            .body
            .exposed_ports
            .as_ref()
            .unwrap()
            .contains_key("81/udp"));
        assert_eq!(
            pb["82/tcp"].as_ref().unwrap()[0].host_ip.as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            pb["83/tcp"].as_ref().unwrap()[0].host_ip.as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            pb["84/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("8084")
        );
        assert_eq!(o.body.env.as_deref().unwrap(), ["X=1", "Y=2=3"]);
        assert_eq!(o.body.cmd.as_deref().unwrap(), ["echo", "1", "true"]);
    }

    #[test]
    fn docker_body_of_api_1_16() {
        let text = include_str!("../../tests/fixtures/userdata/horizon-docker-create-body.json");
        let v: Value = serde_json::from_str(text).unwrap();
        let o = norm(v).unwrap();
        let b = &o.body;
        let h = hc(&o);
        assert_eq!(o.vocabulary, Some(Vocabulary::Docker));
        assert_eq!(b.cmd.as_deref().unwrap(), ["date"]);
        assert_eq!(b.entrypoint, None);
        assert_eq!(b.hostname, None);
        assert_eq!(b.image.as_deref(), Some("base"));
        assert_eq!(h.cpu_shares, Some(512));
        assert_eq!(h.cpuset_cpus.as_deref(), Some("0,1"));
        assert_eq!(h.memory, Some(0));
        assert_eq!(h.security_opt, None);
        assert_eq!(h.binds.as_deref().unwrap(), ["/tmp:/tmp"]);
        assert_eq!(h.links.as_deref().unwrap(), ["redis3:redis"]);
        assert_eq!(h.volumes_from.as_deref().unwrap(), ["parent", "other:ro"]);
        assert_eq!(h.cap_add.as_deref().unwrap(), ["NET_ADMIN"]);
        assert_eq!(h.dns_search.as_deref().unwrap(), [] as [String; 0]);
        assert_eq!(h.network_mode.as_deref(), Some("bridge"));
        assert!(b.volumes.as_ref().unwrap().contains_key("/tmp"));
        assert!(b.exposed_ports.as_ref().unwrap().contains_key("22/tcp"));
        assert_eq!(
            h.port_bindings.as_ref().unwrap()["22/tcp"]
                .as_ref()
                .unwrap()[0]
                .host_port
                .as_deref(),
            Some("11022")
        );
        assert!(
            o.warnings.iter().any(|w| w.contains("LxcConf")),
            "{:?}",
            o.warnings
        );
        assert!(o.warnings.iter().any(|w| w.contains("Image")));
        assert!(o.warnings.iter().any(|w| w.contains("MacAddress")));
    }

    #[test]
    fn vocabulary_errors() {
        let e = norm(json!({"Cmd": ["a"], "command": "b"})).unwrap_err();
        assert!(matches!(e, UserDataError::MixedVocabularies { .. }), "{e}");
        let e = norm(json!({"command": "a", "bogus": 1, "hostname": "h"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bogus") && e.contains("hostname") && e.contains("working_dir"),
            "{e}"
        );
        assert!(e.contains("set by Nova"), "{e}");
        let e = norm(json!({"Dns": ["1.1.1.1"]})).unwrap_err().to_string();
        assert!(e.contains("belongs inside HostConfig"), "{e}");
        let e = norm(json!({"HostConfig": {"Bogus": 1}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Bogus") && e.contains("CapAdd"), "{e}");
        let e = norm(json!({"HostConfig": {"Privileged": "maybe"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("HostConfig.Privileged"), "{e}");
        let e = norm(json!({"host_config": {"binds": [], "Binds": []}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("both set Binds"), "{e}");
        let e = norm(json!({"cpuset": "0", "host_config": {"cpuset_cpus": "1"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CpusetCpus"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (v, key) in [
            (json!({"command": "echo 'unclosed"}), "command"),
            (json!({"ports": ["99999"]}), "ports[0]"),
            (json!({"ports": ["1:2:3:4"]}), "ports[0]"),
            (json!({"ports": ["80/xyz"]}), "ports[0]"),
            (json!({"ports": ["1-5000"]}), "ports[0]"),
            (json!({"volumes": ["./rel:/x"]}), "volumes[0]"),
            (json!({"volumes": ["/x:rel"]}), "volumes[0]"),
            (json!({"volumes": ["/x:/y:bogus"]}), "volumes[0]"),
            (json!({"volumes": ["rel"]}), "volumes[0]"),
            (json!({"environment": ["=x"]}), "environment[0]"),
            (json!({"environment": "A=1"}), "environment"),
            (json!({"memswap_limit": "lots"}), "memswap_limit"),
            (json!({"tty": "maybe"}), "tty"),
            (json!({"Env": [{"a": 1}]}), "Env[0]"),
            (json!({"Memory": []}), "Memory"),
            (
                json!({"HostConfig": {"Binds": ["/only"]}}),
                "HostConfig.Binds[0]",
            ),
            (
                json!({"HostConfig": {"RestartPolicy": "sometimes"}}),
                "HostConfig.RestartPolicy",
            ),
            (json!({"HostConfig": []}), "HostConfig"),
        ] {
            let e = norm(v.clone()).unwrap_err();
            match &e {
                UserDataError::InvalidValue { key: k, .. } => assert_eq!(k, key, "{v}: {e}"),
                other => panic!("{v}: {other}"),
            }
        }
    }

    #[test]
    fn sizes_and_binds() {
        assert_eq!(bytes(&json!("512m"), "k").unwrap(), Some(512 << 20));
        assert_eq!(bytes(&json!("1.5g"), "k").unwrap(), Some(1536 << 20));
        assert_eq!(bytes(&json!(-1), "k").unwrap(), Some(-1));
        assert_eq!(bytes(&json!("100KB"), "k").unwrap(), Some(102400));
        let b = parse_bind("/a:/b:ro,z").unwrap();
        assert!(b.read_only());
        assert_eq!(b.source, BindSource::HostPath("/a".into()));
        assert_eq!(
            parse_bind("v:/b").unwrap().source,
            BindSource::Named("v".into())
        );
    }

    #[test]
    fn host_config_either_casing_and_value_forms() {
        let o = norm(json!({"host_config": {
            "binds": {"/h": {"bind": "/c", "ro": true}},
            "links": {"db": "database"},
            "extra_hosts": {"h1": "1.2.3.4"},
            "devices": ["/dev/null:/dev/n:r"],
            "ulimits": [{"name": "nofile", "soft": 10, "hard": 20}, "nproc=5:6"],
            "log_config": {"type": "json-file", "config": {"max-size": "1m"}},
            "mem_limit": "64m",
            "read_only": true,
            "tmpfs": ["/run:size=1m"],
            "sysctls": {"net.core.somaxconn": 1024},
            "port_bindings": {"80": 8080},
            "mounts": [{"type": "tmpfs", "target": "/scratch"}],
        }}))
        .unwrap();
        let h = hc(&o);
        assert_eq!(h.binds.as_deref().unwrap(), ["/h:/c:ro"]);
        assert_eq!(h.links.as_deref().unwrap(), ["db:database"]);
        assert_eq!(h.extra_hosts.as_deref().unwrap(), ["h1:1.2.3.4"]);
        let d = &h.devices.as_ref().unwrap()[0];
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/n"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("r"));
        let u = h.ulimits.as_ref().unwrap();
        assert_eq!(
            (u[0].soft, u[1].name.as_deref(), u[1].hard),
            (Some(10), Some("nproc"), Some(6))
        );
        assert_eq!(
            h.log_config.as_ref().unwrap().typ.as_deref(),
            Some("json-file")
        );
        assert_eq!(h.memory, Some(64 << 20));
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.tmpfs.as_ref().unwrap()["/run"], "size=1m");
        assert_eq!(h.sysctls.as_ref().unwrap()["net.core.somaxconn"], "1024");
        assert!(h.port_bindings.as_ref().unwrap().contains_key("80/tcp"));
        assert!(o
            .body
            .exposed_ports
            .as_ref()
            .unwrap()
            .contains_key("80/tcp"));
        assert_eq!(
            h.mounts.as_ref().unwrap()[0].target.as_deref(),
            Some("/scratch")
        );
    }
}
