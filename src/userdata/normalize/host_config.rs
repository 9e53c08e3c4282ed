//! `HostConfig` in Docker casing or docker-py's snake_case, each field read in
//! its lenient forms and validated by its type; merging HostConfigs given by
//! several keys.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::binds::{container_path, volumes};
use super::keys::{host_config_key, HOST_CONFIG_KEYS, OBSOLETE_HOST_CONFIG};
use super::ports::{container_ports, host_binding, Ports};
use super::values::{
    bytes, integer, invalid, kind, list_value, object, pascal, string, string_list, string_map,
};
use crate::userdata::{HostOptions, UserDataError};

/// A HostConfig (Docker casing or docker-py's snake_case) as validated JSON
/// in Docker casing.
pub(super) fn host_config(
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
            // each field alone through its type, so the error names it
            serde_json::from_value::<HostOptions>(json!({ name: val.clone() }))
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

/// scalars must agree.
pub(super) fn merge_host_config(
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

pub(super) fn finish_host_config(
    hc: Map<String, Value>,
) -> Result<Option<HostOptions>, UserDataError> {
    if hc.is_empty() {
        return Ok(None);
    }
    serde_json::from_value::<HostOptions>(Value::Object(hc))
        .map(Some)
        .map_err(|e| invalid("HostConfig", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{hc, norm};
    use serde_json::json;

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
