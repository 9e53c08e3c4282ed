//! The old driver fork's short keys to the options document.

use serde_json::{Map, Value};

use super::binds::{to_set, volumes};
use super::host_config::{finish_host_config, host_config, merge_host_config};
use super::ports::{expose_bound_ports, ports};
use super::values::{boolean, bytes, command, env, list_value, nonempty, string_list};
use crate::userdata::{ContainerOptions, UserDataError, UserOptions, Vocabulary};

pub(super) fn short_body(map: Map<String, Value>) -> Result<UserOptions, UserDataError> {
    let mut body = ContainerOptions::default();
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

#[cfg(test)]
mod tests {
    use super::super::tests::{hc, norm};
    use crate::userdata::{PortBinding, Vocabulary};
    use serde_json::json;

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
}
