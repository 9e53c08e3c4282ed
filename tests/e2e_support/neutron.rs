//! Neutron's API for the end-to-end tests (as the lab's admin), and what the
//! tests look at inside containers and on the host.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::Stack;

impl Stack {
    pub async fn neutron_get(&self, path: &str) -> Value {
        self.get(&format!("{}/v2.0/{path}", self.neutron)).await
    }

    pub async fn neutron_call(&self, m: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(m, &format!("{}/v2.0/{path}", self.neutron), body)
            .await
    }

    /// The id of the network called `name`.
    pub async fn network_id(&self, name: &str) -> String {
        let v = self.neutron_get(&format!("networks?name={name}")).await;
        v["networks"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no network {name}: {v}"))
            .to_string()
    }

    pub async fn ports_of(&self, device_id: &str) -> Vec<Value> {
        self.neutron_get(&format!("ports?device_id={device_id}"))
            .await["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn port(&self, id: &str) -> Option<Value> {
        let (st, v) = self
            .neutron_call(Method::GET, &format!("ports/{id}"), None)
            .await;
        (st == 200).then(|| v["port"].clone())
    }

    /// POST /servers with these `networks` (Nova's API form) and optional
    /// security groups; returns the id.
    pub async fn create_server_on(
        &self,
        name: &str,
        image: &str,
        flavor: &str,
        host: &str,
        networks: Value,
        security_groups: &[&str],
    ) -> String {
        let mut server = json!({"name": name, "imageRef": image, "flavorRef": flavor,
                                "networks": networks, "availability_zone": format!("nova:{host}")});
        if !security_groups.is_empty() {
            server["security_groups"] = json!(security_groups
                .iter()
                .map(|n| json!({"name": n}))
                .collect::<Vec<_>>());
        }
        let (st, v) = self
            .call(
                Method::POST,
                &format!("{}/servers", self.nova),
                Some(json!({ "server": server })),
            )
            .await;
        assert_eq!(st, 202, "create: {v}");
        v["server"]["id"].as_str().unwrap().to_string()
    }

    /// A security group with no rules but egress (Neutron adds those).
    pub async fn security_group(&self, name: &str) -> String {
        let (st, v) = self
            .neutron_call(
                Method::POST,
                "security-groups",
                Some(json!({"security_group": {"name": name}})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        v["security_group"]["id"].as_str().unwrap().to_string()
    }

    pub async fn allow(&self, sg: &str, protocol: &str, port: Option<u16>, ethertype: &str) {
        let mut rule = json!({"security_group_id": sg, "direction": "ingress",
                              "protocol": protocol, "ethertype": ethertype});
        if let Some(p) = port {
            rule["port_range_min"] = json!(p);
            rule["port_range_max"] = json!(p);
        }
        let (st, v) = self
            .neutron_call(
                Method::POST,
                "security-group-rules",
                Some(json!({ "security_group_rule": rule })),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }

    /// The server's addresses on `net` as Nova shows them: (v4, v6).
    pub async fn addresses(&self, id: &str, net: &str) -> (Vec<String>, Vec<String>) {
        let s = self.server(id).await;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for a in s["addresses"][net].as_array().cloned().unwrap_or_default() {
            let addr = a["addr"].as_str().unwrap_or_default().to_string();
            match (a["version"].as_i64(), a["OS-EXT-IPS:type"].as_str()) {
                (Some(4), Some("fixed")) => v4.push(addr),
                (Some(6), Some("fixed")) => v6.push(addr),
                _ => {}
            }
        }
        (v4, v6)
    }
}

/// Run a command in the container of server `id`: (exit ok, stdout+stderr).
pub fn exec(id: &str, cmd: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(["exec", &format!("nova-{id}")])
        .args(cmd)
        .output()
        .expect("docker exec");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// One ping from the container of `from` to `to` (v6 addresses use ping6).
pub fn pings(from: &str, to: &str) -> bool {
    let p = if to.contains(':') { "ping6" } else { "ping" };
    exec(from, &[p, "-c", "1", "-W", "2", to]).0
}

/// Ping until it works or `within` passes (flows take a moment after a plug).
pub async fn pings_within(from: &str, to: &str, within: Duration) -> bool {
    let t = Instant::now();
    loop {
        if pings(from, to) {
            return true;
        }
        if t.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A TCP exchange: `server` listens on `port` and answers a word, `client`
/// connects to `addr` and must read it.
pub async fn tcp_works(server: &str, client: &str, addr: &str, port: u16) -> bool {
    let name = format!("nova-{server}");
    let listen = format!("echo tcp-pong-{port} | nc -l -p {port}");
    let mut l = std::process::Command::new("docker")
        .args(["exec", &name, "sh", "-c", &listen])
        .spawn()
        .expect("docker exec nc -l");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, out) = exec(
        client,
        &["sh", "-c", &format!("nc -w 3 {addr} {port} </dev/null")],
    );
    let _ = l.kill();
    let _ = l.wait();
    let _ = exec(
        server,
        &["sh", "-c", &format!("pkill -f 'nc -l -p {port}' || true")],
    );
    out.contains(&format!("tcp-pong-{port}"))
}

/// Run a command in a network namespace of the host.
pub fn netns_exec(ns: &str, cmd: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Host-side devices and OVS ports a VIF of `port_id` would have.
pub fn host_leftovers(port_id: &str) -> Vec<String> {
    let short: String = port_id.chars().take(11).collect();
    let mut left = Vec::new();
    for dev in [format!("tap{short}"), format!("ns{short}")] {
        if Command::new("ip")
            .args(["link", "show", &dev])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            left.push(format!("link {dev}"));
        }
    }
    let ports = Command::new("ovs-vsctl")
        .args(["--timeout=10", "list-ports", "br-int"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if ports.lines().any(|l| l.contains(&short)) {
        left.push(format!("ovs port tap{short}"));
    }
    left
}
