//! The Docker Engine `/containers/create` body (current and API 1.16-era) to
//! the options document.

use serde_json::{json, Map, Value};

use super::binds::{path_set, to_set};
use super::host_config::{finish_host_config, host_config};
use super::ports::{container_ports, expose_bound_ports};
use super::values::{
    boolean, bytes, command, env, integer, invalid, list_value, nonempty, pascal, string_list,
    string_map,
};
use crate::userdata::{ContainerOptions, HostOptions, UserDataError, UserOptions, Vocabulary};

pub(super) fn docker_body(map: Map<String, Value>) -> Result<UserOptions, UserDataError> {
    let mut body = ContainerOptions::default();
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
                serde_json::from_value::<HostOptions>(json!({ k.as_str(): v.clone() }))
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
    use super::super::tests::{hc, norm};
    use crate::userdata::Vocabulary;
    use serde_json::Value;

    #[test]
    fn docker_body_of_api_1_16() {
        let text = include_str!("../../../tests/fixtures/userdata/horizon-docker-create-body.json");
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
}
