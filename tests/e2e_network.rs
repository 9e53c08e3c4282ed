//! End to end against the lab's real Keystone, Neutron (ML2/OVN) and Nova:
//! servers on `private` get their Neutron ports, addresses and connectivity;
//! security groups, floating IPs, interface hot plug, pre-created ports,
//! delete, the lifecycle, engine and daemon restarts, Neutron down during a
//! build. Our daemon runs under the lab's host name (the OVN chassis' name,
//! which Neutron binds ports to), one test at a time.

mod common;
mod e2e_support;

use std::time::Duration;

use e2e_support::daemon::Daemon;
use e2e_support::neutron::*;
use e2e_support::{docker_status, Stack};
use reqwest::Method;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(120);
const NET_UP: Duration = Duration::from_secs(20);

/// One test at a time: they share the host name and its chassis.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The lab's compute host name.
fn host() -> String {
    e2e_support::lab_host()
}

async fn setup() -> (
    tokio::sync::MutexGuard<'static, ()>,
    Stack,
    Daemon,
    String,
    String,
) {
    let g = ONE_AT_A_TIME.lock().await;
    let stack = Stack::from_env();
    let d = Daemon::start(&stack, &host(), "").await;
    let image = stack
        .docker_image("nd-e2e-busybox", &common::busybox_image())
        .await;
    let flavor = stack.flavor("nd.e2e.net", 64, 1).await;
    (g, stack, d, image, flavor)
}

async fn boot(stack: &Stack, image: &str, flavor: &str, name: &str, networks: Value) -> String {
    let id = stack
        .create_server_on(name, image, flavor, &host(), networks, &[])
        .await;
    stack.wait_status(&id, "ACTIVE", T).await;
    id
}

async fn private(stack: &Stack) -> Value {
    json!([{ "uuid": stack.network_id("private").await }])
}

/// The server's first v4 and v6 addresses on private.
async fn addrs(stack: &Stack, id: &str) -> (String, String) {
    let (v4, v6) = stack.addresses(id, "private").await;
    assert!(
        !v4.is_empty() && !v6.is_empty(),
        "server {id} has v4 {v4:?} and v6 {v6:?}"
    );
    (v4[0].clone(), v6[0].clone())
}

async fn stop_and_start(stack: &Stack, id: &str) {
    for (action, status) in [("os-stop", "SHUTOFF"), ("os-start", "ACTIVE")] {
        let (st, v) = stack.action(id, json!({ action: null })).await;
        assert_eq!(st, 202, "{action}: {v}");
        stack.wait_status(id, status, T).await;
    }
}

async fn delete_all(stack: &Stack, ids: &[&str]) {
    for id in ids {
        stack.delete_server(id).await;
    }
    for id in ids {
        stack.wait_gone(id, T).await;
    }
}

#[tokio::test]
#[ignore = "needs the Keystone and Neutron lab; run by devstack/run-tests.sh"]
async fn two_servers_on_private_have_their_ports_addresses_and_talk() {
    let (_g, stack, _d, image, flavor) = setup().await;
    let net = private(&stack).await;
    let a = boot(&stack, &image, &flavor, "nd-net-a", net.clone()).await;
    let b = boot(&stack, &image, &flavor, "nd-net-b", net).await;
    let (a4, a6) = addrs(&stack, &a).await;
    let (b4, b6) = addrs(&stack, &b).await;
    let mut port_ids = Vec::new();
    for id in [&a, &b] {
        let ports = stack.ports_of(id).await;
        assert_eq!(ports.len(), 1, "{ports:?}");
        let p = &ports[0];
        assert_eq!(p["status"], "ACTIVE", "{p}");
        assert_eq!(p["binding:host_id"], host().as_str());
        assert_eq!(p["binding:vif_type"], "ovs");
        assert_eq!(p["device_owner"], "compute:nova");
        port_ids.push(p["id"].as_str().unwrap().to_string());
        // inside the container: the port's MAC, the network's MTU, both addresses
        let mac = p["mac_address"].as_str().unwrap();
        let (ok, link) = exec(id, &["ip", "-o", "link", "show", "eth0"]);
        assert!(ok, "{link}");
        assert!(link.contains(mac), "MAC {mac} not in {link}");
        let mtu = stack
            .neutron_get(&format!("networks/{}", p["network_id"].as_str().unwrap()))
            .await["network"]["mtu"]
            .as_i64()
            .unwrap();
        assert!(
            link.contains(&format!("mtu {mtu}")),
            "MTU {mtu} not in {link}"
        );
        let (_, inet) = exec(id, &["ip", "-o", "addr", "show", "eth0"]);
        for f in p["fixed_ips"].as_array().unwrap() {
            let ip = f["ip_address"].as_str().unwrap();
            assert!(inet.contains(ip), "{ip} not in {inet}");
        }
    }
    // the info cache Nova shows carries the same addresses
    let s = stack.server(&a).await;
    assert!(
        s["addresses"]["private"].as_array().unwrap().len() >= 2,
        "{}",
        s["addresses"]
    );
    assert!(
        pings_within(&a, &b4, NET_UP).await,
        "a cannot ping b over IPv4"
    );
    assert!(
        pings_within(&b, &a4, NET_UP).await,
        "b cannot ping a over IPv4"
    );
    assert!(
        pings_within(&a, &b6, NET_UP).await,
        "a cannot ping b over IPv6"
    );
    assert!(
        pings_within(&b, &a6, NET_UP).await,
        "b cannot ping a over IPv6"
    );
    assert!(tcp_works(&b, &a, &b4, 7001).await, "TCP from a to b failed");
    assert!(
        tcp_works(&a, &b, &a6, 7002).await,
        "TCP over IPv6 from b to a failed"
    );
    // the gateway (router1) answers too
    let gw = stack.neutron_get("subnets?name=private-subnet").await;
    if let Some(g) = gw["subnets"][0]["gateway_ip"].as_str() {
        assert!(
            pings_within(&a, g, NET_UP).await,
            "router {g} does not answer"
        );
    }
    delete_all(&stack, &[&a, &b]).await;
    for p in &port_ids {
        assert!(stack.port(p).await.is_none(), "port {p} left in Neutron");
        assert!(
            host_leftovers(p).is_empty(),
            "left on the host: {:?}",
            host_leftovers(p)
        );
    }
}

#[tokio::test]
#[ignore = "needs the Keystone and Neutron lab; run by devstack/run-tests.sh"]
async fn connectivity_survives_the_lifecycle_and_restarts() {
    let (_g, stack, mut d, image, flavor) = setup().await;
    let net = private(&stack).await;
    let a = boot(&stack, &image, &flavor, "nd-life-a", net.clone()).await;
    let b = boot(&stack, &image, &flavor, "nd-life-b", net).await;
    let (b4, _) = addrs(&stack, &b).await;
    let (a4, _) = addrs(&stack, &a).await;
    assert!(pings_within(&a, &b4, NET_UP).await, "before anything");
    let check = |what: &'static str| {
        let (a, b, a4, b4) = (a.clone(), b.clone(), a4.clone(), b4.clone());
        async move {
            assert!(pings_within(&a, &b4, NET_UP).await, "a -> b after {what}");
            assert!(pings_within(&b, &a4, NET_UP).await, "b -> a after {what}");
            assert!(
                tcp_works(&b, &a, &b4, 7010).await,
                "TCP a -> b after {what}"
            );
        }
    };
    // stop / start
    stop_and_start(&stack, &a).await;
    check("stop and start").await;
    for kind in ["SOFT", "HARD"] {
        let (st, v) = stack.action(&a, json!({"reboot": {"type": kind}})).await;
        assert_eq!(st, 202, "{v}");
        stack.wait_status(&a, "ACTIVE", T).await;
    }
    check("reboots").await;
    let (st, v) = stack
        .action(&a, json!({"rebuild": {"imageRef": image}}))
        .await;
    assert_eq!(st, 202, "{v}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.wait_status(&a, "ACTIVE", T).await;
    assert_eq!(addrs(&stack, &a).await.0, a4, "rebuild changed the address");
    check("rebuild").await;
    let (st, v) = stack.action(&a, json!({"pause": null})).await;
    assert_eq!(st, 202, "{v}");
    stack.wait_status(&a, "PAUSED", T).await;
    // (a frozen container's kernel side still answers ping: nothing to check here)
    let (st, v) = stack.action(&a, json!({"unpause": null})).await;
    assert_eq!(st, 202, "{v}");
    stack.wait_status(&a, "ACTIVE", T).await;
    check("pause and unpause").await;
    // our own restart: the containers and their wiring stay
    d.stop();
    let d2 = Daemon::start(&stack, &host(), "").await;
    check("a restart of nova-docker-compute").await;
    // the Docker daemon's restart stops every container; ours come back wired
    common::restart_docker_daemon();
    for id in [&a, &b] {
        let t = std::time::Instant::now();
        while docker_status(id).as_deref() != Some("running") {
            assert!(
                t.elapsed() < T,
                "container of {id} not running again after the engine restart"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        stack.wait_status(id, "ACTIVE", T).await;
    }
    check("a restart of the Docker daemon").await;
    delete_all(&stack, &[&a, &b]).await;
    drop(d2);
}

#[tokio::test]
#[ignore = "needs the Keystone and Neutron lab; run by devstack/run-tests.sh"]
async fn security_groups_decide_what_reaches_a_server() {
    let (_g, stack, _d, image, flavor) = setup().await;
    let net = private(&stack).await;
    let sg = stack
        .security_group(&format!("nd-sg-{}", std::process::id()))
        .await;
    let a = boot(&stack, &image, &flavor, "nd-sg-client", net.clone()).await;
    let id = stack
        .create_server_on("nd-sg-server", &image, &flavor, &host(), net, &[&sg])
        .await;
    stack.wait_status(&id, "ACTIVE", T).await;
    let (s4, _) = addrs(&stack, &id).await;
    // the client's own default group lets it out; the server's group lets nothing in
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!pings(&a, &s4), "ICMP passed a group with no ICMP rule");
    assert!(
        !tcp_works(&id, &a, &s4, 7020).await,
        "TCP passed a group with no TCP rule"
    );
    stack.allow(&sg, "icmp", None, "IPv4").await;
    assert!(
        pings_within(&a, &s4, NET_UP).await,
        "ICMP blocked after the rule"
    );
    assert!(
        !tcp_works(&id, &a, &s4, 7021).await,
        "TCP passed with only an ICMP rule"
    );
    stack.allow(&sg, "tcp", Some(7022), "IPv4").await;
    let t = std::time::Instant::now();
    while !tcp_works(&id, &a, &s4, 7022).await {
        assert!(t.elapsed() < NET_UP, "TCP 7022 blocked after its rule");
    }
    assert!(!tcp_works(&id, &a, &s4, 7023).await, "another port passed");
    delete_all(&stack, &[&a, &id]).await;
    let _ = stack
        .neutron_call(Method::DELETE, &format!("security-groups/{sg}"), None)
        .await;
}

#[tokio::test]
#[ignore = "needs the Keystone and Neutron lab; run by devstack/run-tests.sh"]
async fn a_floating_ip_reaches_the_server_and_the_server_reaches_outside() {
    let (_g, stack, _d, image, flavor) = setup().await;
    let net = private(&stack).await;
    let id = boot(&stack, &image, &flavor, "nd-fip", net).await;
    // let ICMP in through the default group of our project
    let port = stack.ports_of(&id).await[0].clone();
    let sg = port["security_groups"][0].as_str().unwrap().to_string();
    let rules = stack
        .neutron_get(&format!(
            "security-group-rules?security_group_id={sg}&protocol=icmp"
        ))
        .await;
    if rules["security_group_rules"]
        .as_array()
        .is_none_or(|r| r.is_empty())
    {
        stack.allow(&sg, "icmp", None, "IPv4").await;
    }
    let public = stack.network_id("public").await;
    let (st, v) = stack
        .neutron_call(
            Method::POST,
            "floatingips",
            Some(json!({"floatingip": {"floating_network_id": public, "port_id": port["id"]}})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let fip = v["floatingip"]["floating_ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let fip_id = v["floatingip"]["id"].as_str().unwrap().to_string();
    let t = std::time::Instant::now();
    while !netns_exec("nd-outside", &["ping", "-c", "1", "-W", "2", &fip]).0 {
        assert!(
            t.elapsed() < NET_UP * 2,
            "floating IP {fip} unreachable from nd-outside"
        );
    }
    // the server sees its floating IP in Nova (network-changed refreshed the cache)
    let t = std::time::Instant::now();
    loop {
        let s = stack.server(&id).await;
        let has = s["addresses"]["private"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["addr"] == fip.as_str()));
        if has {
            break;
        }
        assert!(
            t.elapsed() < NET_UP,
            "floating IP not in the server's addresses: {}",
            s["addresses"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // out through the router (SNAT): the outside namespace's address
    assert!(
        pings_within(&id, "172.24.4.1", NET_UP).await,
        "no way out through router1"
    );
    let _ = stack
        .neutron_call(Method::DELETE, &format!("floatingips/{fip_id}"), None)
        .await;
    delete_all(&stack, &[&id]).await;
}

#[tokio::test]
#[ignore = "needs the Keystone and Neutron lab; run by devstack/run-tests.sh"]
async fn interfaces_come_and_go_and_given_ports_are_kept() {
    let (_g, stack, _d, image, flavor) = setup().await;
    let private_id = stack.network_id("private").await;
    // a port made beforehand, with a fixed IP
    let subnets = stack
        .neutron_get(&format!("subnets?network_id={private_id}&ip_version=4"))
        .await;
    let subnet = subnets["subnets"][0]["id"].as_str().unwrap().to_string();
    // a free address of the subnet (ports of earlier runs may hold some)
    let taken = stack
        .neutron_get(&format!("ports?network_id={private_id}"))
        .await
        .to_string();
    let fixed_owned = (40..60)
        .map(|n| format!("10.0.0.{n}"))
        .find(|ip| !taken.contains(&format!("\"{ip}\"")))
        .expect("a free address in 10.0.0.40-59");
    let fixed = fixed_owned.as_str();
    let (st, v) = stack
        .neutron_call(
            Method::POST,
            "ports",
            Some(
                json!({"port": {"network_id": private_id, "name": "nd-given",
                                  "fixed_ips": [{"subnet_id": subnet, "ip_address": fixed}]}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let given = v["port"]["id"].as_str().unwrap().to_string();
    let id = boot(
        &stack,
        &image,
        &flavor,
        "nd-given-port",
        json!([{"port": given}]),
    )
    .await;
    let (_, inet) = exec(&id, &["ip", "-o", "addr"]);
    assert!(inet.contains(fixed), "{fixed} not in {inet}");
    let p = stack.port(&given).await.unwrap();
    assert_eq!(p["device_id"], id.as_str());
    assert_eq!(p["binding:host_id"], host().as_str());
    // hot plug a second interface on private
    let (st, v) = stack
        .call(
            Method::POST,
            &format!("{}/servers/{id}/os-interface", stack.nova),
            Some(json!({"interfaceAttachment": {"net_id": private_id}})),
        )
        .await;
    assert_eq!(st, 200, "attach: {v}");
    let new_port = v["interfaceAttachment"]["port_id"]
        .as_str()
        .unwrap()
        .to_string();
    let new_mac = v["interfaceAttachment"]["mac_addr"]
        .as_str()
        .unwrap()
        .to_string();
    let t = std::time::Instant::now();
    loop {
        let (_, links) = exec(&id, &["ip", "-o", "link"]);
        if links.contains(&new_mac) {
            break;
        }
        assert!(
            t.elapsed() < NET_UP,
            "attached interface {new_mac} not in {links}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ifaces = stack
        .get(&format!("{}/servers/{id}/os-interface", stack.nova))
        .await;
    assert_eq!(
        ifaces["interfaceAttachments"].as_array().unwrap().len(),
        2,
        "{ifaces}"
    );
    // and out again
    let (st, v) = stack
        .call(
            Method::DELETE,
            &format!("{}/servers/{id}/os-interface/{new_port}", stack.nova),
            None,
        )
        .await;
    assert_eq!(st, 202, "detach: {v}");
    let t = std::time::Instant::now();
    loop {
        let (_, links) = exec(&id, &["ip", "-o", "link"]);
        if !links.contains(&new_mac) && stack.port(&new_port).await.is_none() {
            break;
        }
        assert!(
            t.elapsed() < NET_UP,
            "detached interface still there: {links}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        host_leftovers(&new_port).is_empty(),
        "{:?}",
        host_leftovers(&new_port)
    );
    // `server add port` with a port made beforehand: in, then out and kept
    let (st, v) = stack
        .neutron_call(
            Method::POST,
            "ports",
            Some(json!({"port": {"network_id": private_id, "name": "nd-given-2"}})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let port2 = v["port"]["id"].as_str().unwrap().to_string();
    let mac2 = v["port"]["mac_address"].as_str().unwrap().to_string();
    let (st, v) = stack
        .call(
            Method::POST,
            &format!("{}/servers/{id}/os-interface", stack.nova),
            Some(json!({"interfaceAttachment": {"port_id": port2}})),
        )
        .await;
    assert_eq!(st, 200, "attach the given port: {v}");
    let (_, links) = exec(&id, &["ip", "-o", "link"]);
    assert!(links.contains(&mac2), "given port {mac2} not in {links}");
    let (st, v) = stack
        .call(
            Method::DELETE,
            &format!("{}/servers/{id}/os-interface/{port2}", stack.nova),
            None,
        )
        .await;
    assert_eq!(st, 202, "detach the given port: {v}");
    let t = std::time::Instant::now();
    loop {
        let p = stack
            .port(&port2)
            .await
            .expect("a given port is kept on detach");
        let (_, links) = exec(&id, &["ip", "-o", "link"]);
        if p["device_id"] == "" && !links.contains(&mac2) {
            break;
        }
        assert!(
            t.elapsed() < NET_UP,
            "given port not unbound and out: {p} {links}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = stack
        .neutron_call(Method::DELETE, &format!("ports/{port2}"), None)
        .await;
    // delete: the given port stays, unbound
    delete_all(&stack, &[&id]).await;
    let p = stack.port(&given).await.expect("the given port is kept");
    assert_eq!(p["device_id"], "");
    assert!(
        p["binding:host_id"].is_null() || p["binding:host_id"] == "",
        "{p}"
    );
    assert!(
        host_leftovers(&given).is_empty(),
        "{:?}",
        host_leftovers(&given)
    );
    let _ = stack
        .neutron_call(Method::DELETE, &format!("ports/{given}"), None)
        .await;
}

#[tokio::test]
#[ignore = "needs the Keystone and Neutron lab; run by devstack/run-tests.sh"]
async fn neutron_down_during_a_build_ends_in_error_with_nothing_left() {
    let (_g, stack, d, image, flavor) = setup().await;
    let net = private(&stack).await;
    // nova-api checks the network with Neutron when the server is created, so
    // Neutron goes away between the API and our daemon: the daemon is held
    // (SIGSTOP) until the build is queued for it, then Neutron is cut off
    d.signal(nix::sys::signal::Signal::SIGSTOP);
    let id = stack
        .create_server_on(
            "nd-neutron-down",
            &image,
            &flavor,
            &host(),
            net.clone(),
            &[],
        )
        .await;
    let t = std::time::Instant::now();
    while sql(
        &stack,
        &format!("SELECT count(*) FROM instances WHERE uuid = '{id}'"),
    ) != "1"
    {
        assert!(
            t.elapsed() < T,
            "the instance never reached the cell database"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cut = e2e_support::outage::Refused::port(
        url::Url::parse(&stack.neutron)
            .ok()
            .and_then(|u| u.port_or_known_default())
            .unwrap_or(9696),
    );
    d.signal(nix::sys::signal::Signal::SIGCONT);
    // nova-api itself needs Neutron to show a server: watch the database
    let t = std::time::Instant::now();
    while sql(
        &stack,
        &format!("SELECT vm_state FROM instances WHERE uuid = '{id}'"),
    ) != "error"
    {
        assert!(t.elapsed() < T, "the build did not end in ERROR");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(docker_status(&id).is_none(), "a container was left");
    drop(cut);
    let s = stack.wait_status(&id, "ERROR", T).await;
    let fault = s["fault"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        fault.contains("Failed to allocate the network(s)"),
        "fault: {}",
        s["fault"]
    );
    assert!(
        fault.contains("Neutron is unreachable"),
        "fault: {}",
        s["fault"]
    );
    assert!(stack.ports_of(&id).await.is_empty(), "a port was left");
    // with Neutron back, the next build works
    let ok = boot(&stack, &image, &flavor, "nd-neutron-back", net).await;
    delete_all(&stack, &[&id, &ok]).await;
}

#[tokio::test]
#[ignore = "needs the Keystone and Neutron lab; run by devstack/run-tests.sh"]
async fn operations_keep_working_after_the_daemons_tokens_expire() {
    let (_g, stack, _d, image, flavor) = setup().await;
    let net = private(&stack).await;
    let a = boot(&stack, &image, &flavor, "nd-token-a", net.clone()).await;
    // the lab's tokens are short-lived in the test run (ND_TOKEN_EXPIRATION)
    let life: u64 = std::env::var("NOVA_DOCKER_E2E_TOKEN_EXPIRATION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    assert!(
        life <= 300,
        "token lifetime {life} s is too long for this test"
    );
    tokio::time::sleep(Duration::from_secs(life + 5)).await;
    // our Neutron, placement and service tokens are now all past their expiry
    let b = boot(&stack, &image, &flavor, "nd-token-b", net).await;
    let (b4, _) = addrs(&stack, &b).await;
    assert!(
        pings_within(&a, &b4, NET_UP).await,
        "no traffic after the expiry"
    );
    stop_and_start(&stack, &a).await;
    assert!(
        pings_within(&a, &b4, NET_UP).await,
        "no traffic after the start"
    );
    let pa = stack.ports_of(&a).await;
    delete_all(&stack, &[&a, &b]).await;
    for p in pa {
        let pid = p["id"].as_str().unwrap();
        assert!(
            stack.port(pid).await.is_none(),
            "port {pid} left after the expiry"
        );
    }
}

/// One value from Nova's cell database (the lab's MariaDB, as root over its socket).
fn sql(stack: &Stack, query: &str) -> String {
    let sock = stack.state.join("data/mysqlrun/mysqld.sock");
    let out = std::process::Command::new("mysql")
        .args([
            "--no-defaults",
            "-u",
            "root",
            "-N",
            "-B",
            "nova",
            "-e",
            query,
        ])
        .arg(format!("--socket={}", sock.display()))
        .output()
        .expect("mysql");
    assert!(
        out.status.success(),
        "mysql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Shelve (offloaded at once, Nova's default) and unshelve (issue 15.4): the
/// container committed to the `<name>-shelved` Glance image and gone from the
/// host, its port kept but bound nowhere, its allocation given back; after
/// the unshelve, a file written before is there, the address is the same,
/// the port bound and up again and the server reachable; the shelved image
/// is deleted.
#[tokio::test]
#[ignore = "needs the Keystone and Neutron lab; run by devstack/run-tests.sh"]
async fn a_shelved_server_comes_back_with_its_files_port_and_address() {
    let (_g, stack, _d, image, flavor) = setup().await;
    let net = private(&stack).await;
    let a = boot(&stack, &image, &flavor, "nd-shelve-a", net.clone()).await;
    let b = boot(&stack, &image, &flavor, "nd-shelve-b", net).await;
    let (a4, _) = addrs(&stack, &a).await;
    let port = stack.ports_of(&a).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out) = exec(&a, &["sh", "-c", "echo kept-by-the-shelve > /root/marker"]);
    assert!(ok, "{out}");

    let (st, v) = stack.action(&a, json!({"shelve": null})).await;
    assert_eq!(st, 202, "{v}");
    stack.wait_status(&a, "SHELVED_OFFLOADED", T).await;
    let s = stack.server(&a).await;
    assert!(s["OS-EXT-SRV-ATTR:host"].is_null(), "{s}");
    assert_eq!(docker_status(&a), None, "the container stayed on the host");
    let p = stack.neutron_get(&format!("ports/{port}")).await["port"].clone();
    assert_eq!(
        p["device_id"],
        a.as_str(),
        "the port stays the server's: {p}"
    );
    assert!(
        p["binding:host_id"].as_str().unwrap_or("").is_empty(),
        "the port is still bound: {p}"
    );
    let alloc = stack
        .get(&format!("{}/allocations/{a}", stack.placement))
        .await;
    assert!(
        alloc["allocations"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "allocations kept: {alloc}"
    );
    let images = stack
        .get(&format!(
            "{}/v2/images?name=nd-shelve-a-shelved",
            stack.glance
        ))
        .await;
    let shelved = images["images"][0].clone();
    assert_eq!(shelved["status"], "active", "{images}");
    assert_eq!(shelved["container_format"], "docker", "{shelved}");
    let shelved_id = shelved["id"].as_str().unwrap().to_string();

    let (st, v) = stack.action(&a, json!({"unshelve": null})).await;
    assert_eq!(st, 202, "{v}");
    let s = stack.wait_status(&a, "ACTIVE", T).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], host().as_str(), "{s}");
    let (ok, marker) = exec(&a, &["cat", "/root/marker"]);
    assert!(ok && marker.trim() == "kept-by-the-shelve", "{marker}");
    assert_eq!(addrs(&stack, &a).await.0, a4, "the address changed");
    let p = stack.neutron_get(&format!("ports/{port}")).await["port"].clone();
    assert_eq!(p["binding:host_id"], host().as_str(), "{p}");
    assert_eq!(p["status"], "ACTIVE", "{p}");
    assert!(
        pings_within(&b, &a4, NET_UP).await,
        "b -> a after the unshelve"
    );
    let (st, _) = stack
        .call(
            Method::GET,
            &format!("{}/v2/images/{shelved_id}", stack.glance),
            None,
        )
        .await;
    assert_eq!(st, 404, "the shelved image was kept");
    let alloc = stack
        .get(&format!("{}/allocations/{a}", stack.placement))
        .await;
    assert_eq!(
        alloc["allocations"].as_object().map(|m| m.len()),
        Some(1),
        "{alloc}"
    );
    delete_all(&stack, &[&a, &b]).await;
}
