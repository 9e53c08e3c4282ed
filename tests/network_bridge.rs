//! Linux bridge VIFs against real containers, veths, bridges and network namespaces.
//! Needs root and Docker; run by devstack/run-tests.sh.

mod common;
mod network_support;

use network_support::*;
use nova_docker::config::Ini;
use nova_docker::network::{GuestInfo, NetworkError, VifManager};

fn manager(extra: &str) -> VifManager {
    let mut ini = Ini::default();
    ini.merge_text(
        &format!(
            "[docker]\nvif_driver = novadocker.virt.docker.vifs.DockerGenericVIFDriver\n{extra}"
        ),
        std::path::Path::new("nova.conf"),
    )
    .unwrap();
    VifManager::from_ini(&ini).unwrap()
}

fn guest(c: &TestContainer) -> GuestInfo {
    GuestInfo {
        hostname: c.hostname.clone(),
        domain: Some("novalocal".into()),
    }
}

/// What `ip` inside the container says of eth0.
async fn assert_eth0_as_network_info(
    d: &bollard::Docker,
    c: &TestContainer,
    mac: &str,
    v4: &str,
    v6: &str,
) {
    let out = c.sh(d, "ip addr show eth0").await;
    assert!(out.contains(&format!("link/ether {mac}")), "{out}");
    assert!(out.contains("mtu 1400"), "{out}");
    assert!(out.contains(&format!("inet {v4}/24")), "{out}");
    assert!(out.contains(&format!("inet6 {v6}/64")), "{out}");
    assert!(out.contains("state UP") || out.contains(",UP"), "{out}");
    let routes = c.sh(d, "ip route").await;
    assert!(
        routes.contains("default via 10.77.0.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("192.168.177.0/24 via 10.77.0.254 dev eth0"),
        "{routes}"
    );
    let routes6 = c.sh(d, "ip -6 route").await;
    assert!(
        routes6.contains("default via fd00:77::1 dev eth0"),
        "{routes6}"
    );
    let lo = c.sh(d, "ip link show lo").await;
    assert!(lo.contains("UP"), "{lo}");
    assert_eq!(
        c.sh(d, "ip -o link | wc -l").await.trim(),
        "2",
        "only lo and eth0"
    );
}

#[tokio::test]
#[ignore = "needs root, Docker and the test image; run by devstack/run-tests.sh"]
async fn two_containers_on_a_bridge_ping_and_survive_restarts() {
    let d = docker();
    allow_test_bridges();
    let br = format!("ndb{}", token());
    let _g = LinkGuard(vec![br.clone()]);
    let (_, vifs_a) = fixture("bridge_a.json", &[("brq6a8b2c1d-0e", &br)]);
    let (_, vifs_b) = fixture("bridge_b.json", &[("brq6a8b2c1d-0e", &br)]);
    let tokens: Vec<String> = vec![vifs_a[0].short_id().into(), vifs_b[0].short_id().into()];
    let tok: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let before = snapshot(&tok);

    let m = manager("");
    assert_eq!(m.network_mode(), "none");
    let a = TestContainer::start(&d, "vm-a").await;
    let b = TestContainer::start(&d, "vm-b").await;
    m.plug_all(&a.uuid, &vifs_a).await.unwrap();
    m.plug_all(&b.uuid, &vifs_b).await.unwrap();
    assert_eq!(bridge_members(&br), {
        let mut v = vec![vifs_a[0].tap_name(), vifs_b[0].tap_name()];
        v.sort();
        v
    });
    m.attach_all(&a.uuid, a.pid(&d).await, &vifs_a, &guest(&a))
        .await
        .unwrap();
    m.attach_all(&b.uuid, b.pid(&d).await, &vifs_b, &guest(&b))
        .await
        .unwrap();
    // idempotent on a wired container
    m.attach_all(&a.uuid, a.pid(&d).await, &vifs_a, &guest(&a))
        .await
        .unwrap();
    assert!(
        !link_exists(&vifs_a[0].ns_name()),
        "the container end left the host"
    );
    // plugging a running instance again (Nova's plug_vifs at host start) keeps it wired
    m.plug_all(&a.uuid, &vifs_a).await.unwrap();

    assert_eth0_as_network_info(&d, &a, "fa:16:3e:00:77:0b", "10.77.0.11", "fd00:77::b").await;
    assert_eth0_as_network_info(&d, &b, "fa:16:3e:00:77:0c", "10.77.0.12", "fd00:77::c").await;
    let resolv = a.sh(&d, "cat /etc/resolv.conf").await;
    assert!(
        resolv.contains("nameserver 10.77.0.2\nnameserver 10.77.0.3\nnameserver fd00:77::2\n"),
        "{resolv}"
    );
    assert!(resolv.contains("search novalocal"), "{resolv}");
    let hosts = a.sh(&d, "cat /etc/hosts").await;
    assert!(hosts.contains("10.77.0.11\tvm-a.novalocal vm-a"), "{hosts}");
    assert!(hosts.contains("127.0.0.1\tlocalhost"), "{hosts}");
    assert_eq!(a.sh(&d, "cat /etc/hostname").await.trim(), "vm-a");
    assert_eq!(a.sh(&d, "hostname").await.trim(), "vm-a");

    for (from, to) in [
        (&a, "10.77.0.12"),
        (&a, "fd00:77::c"),
        (&b, "10.77.0.11"),
        (&b, "fd00:77::b"),
    ] {
        let (ok, out) = ping(&d, from, to).await;
        assert!(ok, "{} cannot ping {to}: {out}", from.hostname);
    }

    // docker restart: a new network namespace; the old veth pair died with it
    let old_pid = a.pid(&d).await;
    a.restart(&d).await;
    let pid = a.pid(&d).await;
    assert_ne!(pid, old_pid);
    assert_eq!(
        a.sh(&d, "ip -o link | wc -l").await.trim(),
        "1",
        "a restarted container has only lo"
    );
    m.attach_all(&a.uuid, pid, &vifs_a, &guest(&a))
        .await
        .unwrap();
    assert_eth0_as_network_info(&d, &a, "fa:16:3e:00:77:0b", "10.77.0.11", "fd00:77::b").await;
    let (ok, out) = ping(&d, &a, "10.77.0.12").await;
    assert!(ok, "after restart: {out}");
    let (ok, out) = ping(&d, &b, "fd00:77::b").await;
    assert!(ok, "after restart (v6): {out}");

    // stop/start (power_off/power_on)
    b.stop(&d).await;
    // a stopped container's tap is gone with its namespace; attach re-plugs
    b.start_again(&d).await;
    m.attach_all(&b.uuid, b.pid(&d).await, &vifs_b, &guest(&b))
        .await
        .unwrap();
    assert_eth0_as_network_info(&d, &b, "fa:16:3e:00:77:0c", "10.77.0.12", "fd00:77::c").await;
    let (ok, out) = ping(&d, &b, "10.77.0.11").await;
    assert!(ok, "after stop/start: {out}");
    assert_eq!(
        bridge_members(&br).len(),
        2,
        "one port per instance, no stale ones"
    );

    // pause/unpause keeps the namespace and its wiring
    d.pause_container(&a.name).await.unwrap();
    d.unpause_container(&a.name).await.unwrap();
    let (ok, out) = ping(&d, &a, "fd00:77::c").await;
    assert!(ok, "after pause/unpause: {out}");

    // destroy: detach from the running container, remove it, unplug
    m.detach_all(&a.uuid, Some(a.pid(&d).await), &vifs_a)
        .await
        .unwrap();
    assert_eq!(a.sh(&d, "ip -o link | wc -l").await.trim(), "1");
    a.remove(&d).await;
    b.remove(&d).await;
    m.unplug_all(&a.uuid, &vifs_a).await.unwrap();
    m.unplug_all(&b.uuid, &vifs_b).await.unwrap();
    // twice is fine
    m.unplug_all(&b.uuid, &vifs_b).await.unwrap();
    assert_eq!(snapshot(&tok), before);
    assert!(bridge_members(&br).is_empty());
    // the network's bridge is shared infrastructure and stays; this test made it
    assert!(link_exists(&br));
    delete_link(&br);
}

#[tokio::test]
#[ignore = "needs root, Docker and the test image; run by devstack/run-tests.sh"]
async fn two_vifs_hot_attach_and_detach() {
    let d = docker();
    let br1 = format!("ndb{}", token());
    let br2 = format!("ndb{}", token());
    let _g = LinkGuard(vec![br1.clone(), br2.clone()]);
    let (_, vifs) = fixture(
        "two_vifs.json",
        &[("brq6a8b2c1d-0e", &br1), ("brq7b9c3d2e-1f", &br2)],
    );
    let tokens: Vec<String> = vifs.iter().map(|v| v.short_id().to_string()).collect();
    let tok: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let before = snapshot(&tok);
    let m = manager("default_nameservers = 192.0.2.53\n");
    let c = TestContainer::start(&d, "vm-two").await;

    // boot with the first VIF only, then hot plug the second
    m.attach_all(&c.uuid, c.pid(&d).await, &vifs[..1], &guest(&c))
        .await
        .unwrap();
    let ifname = m
        .attach_interface(&c.uuid, Some(c.pid(&d).await), &vifs[1], &vifs)
        .await
        .unwrap();
    assert_eq!(ifname, "eth1");
    let eth1 = c.sh(&d, "ip addr show eth1").await;
    assert!(eth1.contains("inet 10.78.0.21/24"), "{eth1}");
    assert!(eth1.contains("mtu 1450"), "{eth1}");
    assert!(eth1.contains("link/ether fa:16:3e:00:78:15"), "{eth1}");
    let routes = c.sh(&d, "ip route").await;
    assert!(
        routes.contains("default via 10.77.0.1 dev eth0"),
        "{routes}"
    );
    assert_eq!(routes.matches("default").count(), 1, "{routes}");
    assert!(routes.contains("10.78.0.0/24 dev eth1"), "{routes}");
    assert_eq!(bridge_members(&br2), vec![vifs[1].tap_name()]);

    // hot unplug
    m.detach_interface(&c.uuid, Some(c.pid(&d).await), &vifs[1])
        .await
        .unwrap();
    let links = c.sh(&d, "ip -o link").await;
    assert!(!links.contains("eth1"), "{links}");
    assert!(links.contains("eth0"), "{links}");
    assert!(!link_exists(&vifs[1].tap_name()));
    assert!(bridge_members(&br2).is_empty());

    // hot unplug of eth0 then hot plug of a third VIF listed second: eth1 is
    // still the second VIF's, so the new one takes the free eth0
    let (_, third) = fixture("bridge_a.json", &[("brq6a8b2c1d-0e", &br1)]);
    m.attach_interface(&c.uuid, Some(c.pid(&d).await), &vifs[1], &vifs)
        .await
        .unwrap();
    m.detach_interface(&c.uuid, Some(c.pid(&d).await), &vifs[0])
        .await
        .unwrap();
    let now = vec![vifs[1].clone(), third[0].clone()];
    let name = m
        .attach_interface(&c.uuid, Some(c.pid(&d).await), &third[0], &now)
        .await
        .unwrap();
    assert_eq!(name, "eth0");
    let a1 = c.sh(&d, "ip addr show eth1").await;
    assert!(a1.contains("inet 10.78.0.21/24"), "{a1}");
    let a0 = c.sh(&d, "ip addr show eth0").await;
    assert!(
        a0.contains("inet 10.77.0.11/24") && a0.contains("fa:16:3e:00:77:0b"),
        "{a0}"
    );
    m.detach_interface(&c.uuid, Some(c.pid(&d).await), &third[0])
        .await
        .unwrap();
    assert!(!link_exists(&third[0].tap_name()));

    // a start with both VIFs in network_info: eth0 and eth1 with their own addresses
    c.restart(&d).await;
    m.attach_all(&c.uuid, c.pid(&d).await, &vifs, &guest(&c))
        .await
        .unwrap();
    let a0 = c.sh(&d, "ip addr show eth0").await;
    let a1 = c.sh(&d, "ip addr show eth1").await;
    assert!(
        a0.contains("inet 10.77.0.21/24") && a0.contains("fa:16:3e:00:77:15"),
        "{a0}"
    );
    assert!(
        a1.contains("inet 10.78.0.21/24") && a1.contains("fa:16:3e:00:78:15"),
        "{a1}"
    );
    assert!(!a1.contains("10.77.0.21"), "{a1}");
    // the network without DNS servers adds none; the first network's are used
    let resolv = c.sh(&d, "cat /etc/resolv.conf").await;
    assert!(
        resolv.contains("nameserver 10.77.0.2") && !resolv.contains("192.0.2.53"),
        "{resolv}"
    );
    let hosts = c.sh(&d, "cat /etc/hosts").await;
    assert!(
        hosts.contains("10.78.0.21\tvm-two.novalocal vm-two"),
        "{hosts}"
    );

    c.remove(&d).await;
    m.unplug_all(&c.uuid, &vifs).await.unwrap();
    assert_eq!(snapshot(&tok), before);
    delete_link(&br1);
    delete_link(&br2);
}

#[tokio::test]
#[ignore = "needs root, Docker and the test image; run by devstack/run-tests.sh"]
async fn no_gateway_network_and_default_nameservers() {
    let d = docker();
    let br2 = format!("ndb{}", token());
    let _g = LinkGuard(vec![br2.clone()]);
    let (_, vifs) = fixture("two_vifs.json", &[("brq7b9c3d2e-1f", &br2)]);
    let only = &vifs[1..];
    let m = manager("default_nameservers = 192.0.2.53, 2001:db8::53\n");
    let c = TestContainer::start(&d, "vm-nogw").await;
    // a stale host end left over (its peer elsewhere, not the ns<id> we make)
    let stale_peer = format!("ndz{}", token());
    let _g2 = LinkGuard(vec![only[0].tap_name(), stale_peer.clone()]);
    let st = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            &only[0].tap_name(),
            "type",
            "veth",
            "peer",
            "name",
            &stale_peer,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    m.attach_all(&c.uuid, c.pid(&d).await, only, &guest(&c))
        .await
        .unwrap();
    assert!(!link_exists(&stale_peer), "the stale veth was not removed");
    assert_eq!(bridge_members(&br2), vec![only[0].tap_name()]);
    let a = c.sh(&d, "ip addr show eth0").await;
    assert!(a.contains("inet 10.78.0.21/24"), "{a}");
    let routes = c.sh(&d, "ip route").await;
    assert!(!routes.contains("default"), "{routes}");
    let resolv = c.sh(&d, "cat /etc/resolv.conf").await;
    assert!(
        resolv.contains("nameserver 192.0.2.53\nnameserver 2001:db8::53\n"),
        "{resolv}"
    );
    c.remove(&d).await;
    m.unplug_all(&c.uuid, only).await.unwrap();
    assert!(!link_exists(&only[0].tap_name()));
    delete_link(&br2);
}

#[tokio::test]
#[ignore = "needs root, Docker and the test image; run by devstack/run-tests.sh"]
async fn vlan_bridge_puts_the_vlan_interface_on_the_bridge() {
    if !kernel_has_vlan() {
        // the check above makes a VLAN interface the way the driver does; a kernel
        // without 8021q cannot run this test at all
        eprintln!("SKIPPED: this kernel cannot create VLAN interfaces (no 8021q)");
        return;
    }
    let d = docker();
    let t = token();
    let phys = format!("ndp{t}");
    let br = format!("ndv{t}");
    let _g = LinkGuard(vec!["vlan3077".into(), br.clone(), phys.clone()]);
    let status = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            &phys,
            "type",
            "veth",
            "peer",
            "name",
            &format!("ndq{t}"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let (_, vifs) = fixture(
        "vlan.json",
        &[
            ("brq7b9c3d2e-1f", &br),
            ("\"dummy0\"", &format!("\"{phys}\"")),
        ],
    );
    let m = manager("");
    let c = TestContainer::start(&d, "vm-vlan").await;
    m.attach_all(&c.uuid, c.pid(&d).await, &vifs, &guest(&c))
        .await
        .unwrap();
    let detail = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["-d", "link", "show", "vlan3077"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(detail.contains(&format!("vlan3077@{phys}")), "{detail}");
    assert!(detail.contains("vlan protocol 802.1Q id 3077"), "{detail}");
    assert!(detail.contains(&format!("master {br}")), "{detail}");
    let mut want = vec!["vlan3077".to_string(), vifs[0].tap_name()];
    want.sort();
    assert_eq!(bridge_members(&br), want);
    let a = c.sh(&d, "ip addr show eth0").await;
    assert!(a.contains("inet 10.79.0.31/24"), "{a}");
    c.remove(&d).await;
    m.unplug_all(&c.uuid, &vifs).await.unwrap();
    assert_eq!(bridge_members(&br), vec!["vlan3077".to_string()]);
    delete_link("vlan3077");
    delete_link(&br);
    delete_link(&phys);
}

#[tokio::test]
#[ignore = "needs root and Docker; run by devstack/run-tests.sh"]
async fn bad_vifs_fail_cleanly() {
    let d = docker();
    let (_, mut vifs) = fixture(
        "bridge_a.json",
        &[("brq6a8b2c1d-0e", &format!("ndb{}", token()))],
    );
    vifs[0].vif_type = Some("binding_failed".into());
    let m = manager("");
    let c = TestContainer::start(&d, "vm-bad").await;
    let e = m
        .attach_all(&c.uuid, c.pid(&d).await, &vifs, &guest(&c))
        .await
        .unwrap_err();
    assert!(matches!(&e, NetworkError::PlugFailed { .. }), "{e}");
    let nova: nova_docker::exception::NovaException = e.into();
    assert_eq!(nova.class, "VirtualInterfacePlugException");
    // a container that is gone
    let pid = c.pid(&d).await;
    c.remove(&d).await;
    let (_, vifs) = fixture(
        "bridge_a.json",
        &[("brq6a8b2c1d-0e", &format!("ndb{}", token()))],
    );
    let e = m
        .attach_all(&c.uuid, pid, &vifs, &guest(&c))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("network namespace"), "{e}");
    m.unplug_all(&c.uuid, &vifs).await.unwrap();
    // destroy of an instance whose port binding failed does not fail
    let mut failed = vifs.clone();
    failed[0].vif_type = Some("binding_failed".into());
    m.unplug_all(&c.uuid, &failed).await.unwrap();
    assert!(!link_exists(&vifs[0].tap_name()));
}

#[tokio::test]
#[ignore = "needs root, Docker and the test image; run by devstack/run-tests.sh"]
async fn docker_network_driver_puts_the_container_on_a_named_network() {
    use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
    let d = docker();
    let net = format!("nd-net-{}", token());
    d.create_network(NetworkCreateRequest {
        name: net.clone(),
        internal: Some(true),
        ..Default::default()
    })
    .await
    .unwrap();
    let m = manager(&format!("vif_driver = docker\ndocker_network = {net}\n"));
    assert_eq!(m.driver_name(), "docker");
    let (_, vifs) = fixture("bridge_a.json", &[]);
    let name = format!("nova-nettest-{}", uuid::Uuid::new_v4());
    let body = ContainerCreateBody {
        image: Some(common::busybox_image()),
        host_config: Some(HostConfig {
            network_mode: Some(m.network_mode()),
            ..Default::default()
        }),
        ..Default::default()
    };
    d.create_container(
        Some(
            bollard::query_parameters::CreateContainerOptionsBuilder::new()
                .name(&name)
                .build(),
        ),
        body,
    )
    .await
    .unwrap();
    let c = TestContainer {
        name: name.clone(),
        uuid: "u".into(),
        hostname: "h".into(),
    };
    c.start_again(&d).await;
    // nothing to plug: Docker wired it, and the guest files are Docker's
    m.attach_all(&c.uuid, c.pid(&d).await, &vifs, &GuestInfo::default())
        .await
        .unwrap();
    assert!(!link_exists(&vifs[0].tap_name()));
    let i = d
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    let nets = i
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    assert!(nets.contains_key(&net), "{nets:?}");
    let out = c.sh(&d, "ip -o addr show eth0").await;
    assert!(out.contains("inet "), "{out}");
    m.unplug_all(&c.uuid, &vifs).await.unwrap();
    c.remove(&d).await;
    d.remove_network(&net).await.unwrap();
}
