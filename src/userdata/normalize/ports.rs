//! Ports: `docker run -p` specs, the mapping forms of `ports` and
//! `PortBindings`, and exposing what is published.

use serde_json::{Map, Value};

use super::values::{invalid, kind, nonempty, pascal, string};
use crate::userdata::{ContainerOptions, UserDataError};

/// Port ranges wider than this are refused (they expand to one entry a port).
const MAX_PORT_RANGE: u32 = 1024;

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
pub(super) struct Ports {
    pub(super) exposed: Vec<String>,
    pub(super) bindings: Map<String, Value>,
}

impl Ports {
    pub(super) fn bind(&mut self, key: &str, ip: &str, port: &str) {
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

    pub(super) fn expose(&mut self, key: &str) {
        if !self.exposed.iter().any(|k| k == key) {
            self.exposed.push(key.to_string());
        }
    }
}

/// Container port keys of `80`, `80/udp`, `8000-8010/tcp`.
pub(super) fn container_ports(s: &str) -> Result<Vec<String>, String> {
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
pub(super) fn host_binding(
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

pub(super) fn ports(v: &Value, key: &str) -> Result<Ports, UserDataError> {
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

/// A published port is an exposed port (as `docker run -p` makes it; the
/// engine publishes only exposed ports).
pub(super) fn expose_bound_ports(body: &mut ContainerOptions) {
    let keys: Vec<String> = body
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    if keys.is_empty() {
        return;
    }
    let exposed = body.exposed_ports.get_or_insert_with(Default::default);
    for k in keys {
        exposed.entry(k).or_default();
    }
}
