//! Helpers of the networking integration tests: real containers (bollard), the
//! fixtures with per-test unique ids and bridge names, host state snapshots.
#![allow(dead_code)]

use std::process::Command;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use nova_docker::network::{NetworkInfo, Vif};

use crate::common;

pub fn docker() -> Docker {
    Docker::connect_with_local_defaults().expect("docker socket")
}

/// A short unique token for names (8 hex chars).
pub fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// A fixture's network_info text with fresh VIF ids (and so fresh device names)
/// and the given replacements applied; parsed.
pub fn fixture(name: &str, replace: &[(&str, &str)]) -> (String, Vec<Vif>) {
    let mut text =
        std::fs::read_to_string(common::test_file(&format!("fixtures/network/{name}"))).unwrap();
    let vifs = NetworkInfo::parse(&text).unwrap();
    for v in &vifs {
        let new = uuid::Uuid::new_v4().to_string();
        text = text.replace(&v.id, &new).replace(v.short_id(), &new[..11]);
    }
    for (a, b) in replace {
        text = text.replace(a, b);
    }
    let vifs = NetworkInfo::parse(&text).unwrap().into_vifs();
    (text, vifs)
}

/// A running test container with no network (`NetworkMode: none`), removed on drop.
pub struct TestContainer {
    pub name: String,
    pub uuid: String,
    pub hostname: String,
}

impl TestContainer {
    pub async fn start(d: &Docker, hostname: &str) -> Self {
        let uuid = uuid::Uuid::new_v4().to_string();
        let name = format!("nova-nettest-{uuid}");
        let body = ContainerCreateBody {
            image: Some(common::busybox_image()),
            hostname: Some(hostname.to_string()),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .expect("create container");
        let c = TestContainer {
            name,
            uuid,
            hostname: hostname.to_string(),
        };
        d.start_container(
            &c.name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start container");
        c
    }

    pub async fn pid(&self, d: &Docker) -> u32 {
        let i = d
            .inspect_container(
                &self.name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .expect("inspect");
        let pid = i.state.and_then(|s| s.pid).unwrap_or(0);
        assert!(pid > 0, "container {} has no pid", self.name);
        pid as u32
    }

    pub async fn restart(&self, d: &Docker) {
        d.restart_container(
            &self.name,
            Some(RestartContainerOptionsBuilder::new().t(5).build()),
        )
        .await
        .expect("restart");
    }

    pub async fn stop(&self, d: &Docker) {
        d.stop_container(
            &self.name,
            Some(StopContainerOptionsBuilder::new().t(5).build()),
        )
        .await
        .expect("stop");
    }

    pub async fn start_again(&self, d: &Docker) {
        d.start_container(
            &self.name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start");
    }

    /// Run a command in the container: (exit code, stdout+stderr).
    pub async fn exec(&self, d: &Docker, cmd: &[&str]) -> (i64, String) {
        let e = d
            .create_exec(
                &self.name,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                    ..Default::default()
                },
            )
            .await
            .expect("create exec");
        let mut out = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            d.start_exec(&e.id, None).await.expect("start exec")
        {
            while let Some(Ok(chunk)) = output.next().await {
                out.push_str(&chunk.to_string());
            }
        }
        let code = d
            .inspect_exec(&e.id)
            .await
            .expect("inspect exec")
            .exit_code
            .unwrap_or(-1);
        (code, out)
    }

    pub async fn sh(&self, d: &Docker, script: &str) -> String {
        let (code, out) = self.exec(d, &["sh", "-c", script]).await;
        assert_eq!(code, 0, "`{script}` failed in {}: {out}", self.name);
        out
    }

    pub async fn remove(&self, d: &Docker) {
        let _ = d
            .remove_container(
                &self.name,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await;
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        // a failed assertion must not leave the container behind
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Host state that names any of `tokens` (device names or id prefixes of this
/// test): `ip -o link` (names, masters, MTU and state only), `bridge link`,
/// `ovs-vsctl show`. Other tests run in parallel, so only our lines count.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub ip_link: Vec<String>,
    pub bridge_link: Vec<String>,
    pub ovs: Vec<String>,
}

pub fn snapshot(tokens: &[&str]) -> Snapshot {
    let keep = |text: String| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| tokens.iter().any(|t| l.contains(t)))
            .map(|l| {
                // drop the leading ifindex and the counters that change with traffic
                let l = l.split_once(": ").map_or(l, |(_, r)| r);
                l.split("link/").next().unwrap_or(l).trim().to_string()
            })
            .collect();
        v.sort();
        v
    };
    Snapshot {
        ip_link: keep(run("ip", &["-o", "link"])),
        bridge_link: keep(run("bridge", &["link"])),
        ovs: keep(run("ovs-vsctl", &["show"])),
    }
}

/// Names of the links enslaved to `bridge`.
pub fn bridge_members(bridge: &str) -> Vec<String> {
    let out = run("ip", &["-o", "link", "show", "master", bridge]);
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    v.sort();
    v
}

pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn ovs_vsctl(args: &[&str]) -> (bool, String) {
    let o = Command::new("ovs-vsctl")
        .args(args)
        .output()
        .expect("ovs-vsctl");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).trim().to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}

pub fn delete_link(name: &str) {
    let _ = Command::new("ip").args(["link", "del", name]).output();
}

/// Ping from `from` to `addr` (a few tries: a fresh bridge port learns MACs).
pub async fn ping(d: &Docker, from: &TestContainer, addr: &str) -> (bool, String) {
    let v6 = addr.contains(':');
    let cmd = if v6 { "ping6" } else { "ping" };
    let (code, out) = from.exec(d, &[cmd, "-c", "3", "-W", "2", addr]).await;
    (code == 0, out)
}

/// With br_netfilter, bridged frames pass iptables FORWARD, whose policy Docker
/// sets to DROP: accept frames that stay on the tests' `nd*` bridges (what
/// devstack/lib/test-setup-network.sh does; repeated for runs by hand).
pub fn allow_test_bridges() {
    for ipt in ["iptables", "ip6tables"] {
        let rule = ["FORWARD", "-i", "nd+", "-o", "nd+", "-j", "ACCEPT"];
        let check = Command::new(ipt).args(["-w", "-C"]).args(rule).output();
        if !check.map(|o| o.status.success()).unwrap_or(true) {
            let _ = Command::new(ipt).args(["-w", "-I"]).args(rule).output();
        }
    }
}

/// Links deleted when the test ends, even on a failed assertion.
pub struct LinkGuard(pub Vec<String>);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        for l in &self.0 {
            delete_link(l);
        }
    }
}

/// Whether the kernel can make VLAN interfaces (8021q).
pub fn kernel_has_vlan() -> bool {
    let t = token();
    let (a, b, v) = (format!("ndqa{t}"), format!("ndqb{t}"), format!("ndqv{t}"));
    let mk = Command::new("ip")
        .args(["link", "add", &a, "type", "veth", "peer", "name", &b])
        .output();
    if !mk.map(|o| o.status.success()).unwrap_or(false) {
        return false;
    }
    let ok = Command::new("ip")
        .args([
            "link", "add", "link", &a, "name", &v, "type", "vlan", "id", "5",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    delete_link(&v);
    delete_link(&a);
    ok
}

/// Accepts bridged frames on one bridge for the life of the guard (iptables and
/// ip6tables FORWARD; see [`allow_test_bridges`]).
pub struct ForwardAccept(pub String);

impl ForwardAccept {
    pub fn new(bridge: &str) -> Self {
        for ipt in ["iptables", "ip6tables"] {
            let _ = Command::new(ipt)
                .args([
                    "-w", "-I", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT",
                ])
                .output();
        }
        ForwardAccept(bridge.to_string())
    }
}

impl Drop for ForwardAccept {
    fn drop(&mut self) {
        for ipt in ["iptables", "ip6tables"] {
            let _ = Command::new(ipt)
                .args([
                    "-w", "-D", "FORWARD", "-i", &self.0, "-o", &self.0, "-j", "ACCEPT",
                ])
                .output();
        }
    }
}
