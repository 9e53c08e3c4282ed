//! Open vSwitch VIFs (plain and hybrid plug) against a real ovs-vswitchd, real
//! veths and real containers. Needs root, Docker and Open vSwitch; run by
//! devstack/run-tests.sh (which exports NOVA_DOCKER_TEST_OVS_DATAPATH: `netdev`
//! where the kernel has no openvswitch module).

mod common;
mod network_support;

use network_support::*;
use nova_docker::config::Ini;
use nova_docker::network::{GuestInfo, VifManager};

fn datapath() -> String {
    std::env::var("NOVA_DOCKER_TEST_OVS_DATAPATH").unwrap_or_else(|_| {
        if std::path::Path::new("/sys/module/openvswitch").exists() {
            "system".into()
        } else {
            "netdev".into()
        }
    })
}

fn manager(bridge: &str) -> VifManager {
    let mut ini = Ini::default();
    ini.merge_text(
        &format!(
            "[docker]\novs_bridge = {bridge}\novs_datapath_type = {}\n",
            datapath()
        ),
        std::path::Path::new("nova.conf"),
    )
    .unwrap();
    VifManager::from_ini(&ini).unwrap()
}

/// Deletes the test's integration bridge at the end, even on failure.
struct OvsBridgeGuard(String);

impl Drop for OvsBridgeGuard {
    fn drop(&mut self) {
        let _ = ovs_vsctl(&["--if-exists", "del-br", &self.0]);
    }
}

fn external_ids(iface: &str) -> String {
    let (ok, out) = ovs_vsctl(&["get", "Interface", iface, "external_ids"]);
    assert!(ok, "{out}");
    out
}

fn assert_external_ids(iface: &str, vif_id: &str, mac: &str, uuid: &str) {
    let ids = external_ids(iface);
    assert!(ids.contains(&format!("iface-id=\"{vif_id}\"")), "{ids}");
    assert!(ids.contains(&format!("attached-mac=\"{mac}\"")), "{ids}");
    assert!(ids.contains("iface-status=active"), "{ids}");
    assert!(ids.contains(&format!("vm-uuid=\"{uuid}\"")), "{ids}");
}

fn ports(bridge: &str) -> Vec<String> {
    let (ok, out) = ovs_vsctl(&["list-ports", bridge]);
    assert!(ok, "{out}");
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[tokio::test]
#[ignore = "needs root, Docker and Open vSwitch; run by devstack/run-tests.sh"]
async fn ovs_ports_with_external_ids_and_cleanup() {
    let d = docker();
    let br = format!("ndo{}", token());
    let _g = OvsBridgeGuard(br.clone());
    let (_, vifs_a) = fixture("ovs.json", &[("br-int", &br)]);
    let (_, vifs_b) = fixture(
        "ovs.json",
        &[
            ("br-int", &br),
            ("10.77.0.41", "10.77.0.43"),
            ("fd00:77::29", "fd00:77::2b"),
            ("fa:16:3e:00:77:29", "fa:16:3e:00:77:2b"),
        ],
    );
    let tokens = [
        vifs_a[0].short_id().to_string(),
        vifs_b[0].short_id().to_string(),
    ];
    let tok: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let before = snapshot(&tok);

    let m = manager("br-unused");
    let a = TestContainer::start(&d, "vm-ovs-a").await;
    let b = TestContainer::start(&d, "vm-ovs-b").await;
    let ga = GuestInfo {
        hostname: a.hostname.clone(),
        domain: None,
    };
    let gb = GuestInfo {
        hostname: b.hostname.clone(),
        domain: None,
    };
    // details.bridge_name names the bridge (here the test's own)
    m.attach_all(&a.uuid, a.pid(&d).await, &vifs_a, &ga)
        .await
        .unwrap();
    m.attach_all(&b.uuid, b.pid(&d).await, &vifs_b, &gb)
        .await
        .unwrap();
    let (ok, _) = ovs_vsctl(&["br-exists", "br-unused"]);
    assert!(
        !ok,
        "the VIF's details.bridge_name wins over [docker] ovs_bridge"
    );
    let (_, dp) = ovs_vsctl(&["get", "Bridge", &br, "datapath_type"]);
    assert_eq!(dp.trim(), datapath());

    let mut want = vec![vifs_a[0].tap_name(), vifs_b[0].tap_name()];
    want.sort();
    assert_eq!(ports(&br), want);
    assert_external_ids(
        &vifs_a[0].tap_name(),
        &vifs_a[0].id,
        "fa:16:3e:00:77:29",
        &a.uuid,
    );
    assert_external_ids(
        &vifs_b[0].tap_name(),
        &vifs_b[0].id,
        "fa:16:3e:00:77:2b",
        &b.uuid,
    );

    let addr = a.sh(&d, "ip addr show eth0").await;
    assert!(
        addr.contains("inet 10.77.0.41/24") && addr.contains("mtu 1442"),
        "{addr}"
    );
    assert!(addr.contains("link/ether fa:16:3e:00:77:29"), "{addr}");
    for (from, to) in [(&a, "10.77.0.43"), (&b, "fd00:77::29")] {
        let (ok, out) = ping(&d, from, to).await;
        assert!(ok, "no traffic over OVS ({} datapath): {out}", datapath());
    }

    // restart: the port is re-made with the same external-ids
    a.restart(&d).await;
    m.attach_all(&a.uuid, a.pid(&d).await, &vifs_a, &ga)
        .await
        .unwrap();
    assert_eq!(ports(&br), want);
    assert_external_ids(
        &vifs_a[0].tap_name(),
        &vifs_a[0].id,
        "fa:16:3e:00:77:29",
        &a.uuid,
    );
    let addr = a.sh(&d, "ip addr show eth0").await;
    assert!(addr.contains("inet 10.77.0.41/24"), "{addr}");
    let (ok, out) = ping(&d, &a, "10.77.0.43").await;
    assert!(ok, "after restart: {out}");

    a.remove(&d).await;
    b.remove(&d).await;
    m.unplug_all(&a.uuid, &vifs_a).await.unwrap();
    m.unplug_all(&b.uuid, &vifs_b).await.unwrap();
    assert!(ports(&br).is_empty());
    assert_eq!(snapshot(&tok), before);
}

#[tokio::test]
#[ignore = "needs root, Docker and Open vSwitch; run by devstack/run-tests.sh"]
async fn ovs_hybrid_plug_makes_qbr_qvb_qvo_and_cleans_up() {
    allow_test_bridges();
    let d = docker();
    let br = format!("ndo{}", token());
    let _g = OvsBridgeGuard(br.clone());
    // no details.bridge_name: [docker] ovs_bridge is used
    let (_, mut vifs) = fixture("ovs_hybrid.json", &[]);
    vifs[0].details.remove("bridge_name");
    let v = vifs[0].clone();
    // a second instance on the same network, also hybrid-plugged
    let (_, mut peer) = fixture(
        "ovs_hybrid.json",
        &[
            ("10.77.0.42", "10.77.0.44"),
            ("fd00:77::2a", "fd00:77::2c"),
            ("fa:16:3e:00:77:2a", "fa:16:3e:00:77:2c"),
        ],
    );
    peer[0].details.remove("bridge_name");
    // the iptables hybrid firewall of Neutron would open these per port
    let _fw = (
        ForwardAccept::new(&v.qbr_name()),
        ForwardAccept::new(&peer[0].qbr_name()),
    );
    let tok = [v.short_id(), peer[0].short_id()];
    let before = snapshot(&tok);
    let m = manager(&br);
    let c = TestContainer::start(&d, "vm-hybrid").await;
    let p = TestContainer::start(&d, "vm-hybrid-peer").await;
    let g = GuestInfo {
        hostname: c.hostname.clone(),
        domain: None,
    };
    m.plug_all(&c.uuid, &vifs).await.unwrap();
    m.attach_all(&c.uuid, c.pid(&d).await, &vifs, &g)
        .await
        .unwrap();
    m.attach_all(&p.uuid, p.pid(&d).await, &peer, &g)
        .await
        .unwrap();

    assert_eq!(v.qbr_name(), format!("qbr{}", &v.id[..11]));
    for l in [v.qbr_name(), v.qvb_name(), v.qvo_name(), v.tap_name()] {
        assert!(link_exists(&l), "{l} missing");
    }
    let mut want = vec![v.qvb_name(), v.tap_name()];
    want.sort();
    assert_eq!(bridge_members(&v.qbr_name()), want);
    let mut want_ports = vec![v.qvo_name(), peer[0].qvo_name()];
    want_ports.sort();
    assert_eq!(ports(&br), want_ports);
    assert_external_ids(&v.qvo_name(), &v.id, "fa:16:3e:00:77:2a", &c.uuid);
    for to in ["10.77.0.44", "fd00:77::2c"] {
        let (ok, out) = ping(&d, &c, to).await;
        assert!(
            ok,
            "no traffic over the hybrid plug ({} datapath): {out}",
            datapath()
        );
    }
    let addr = c.sh(&d, "ip addr show eth0").await;
    assert!(
        addr.contains("inet 10.77.0.42/24") && addr.contains("inet6 fd00:77::2a/64"),
        "{addr}"
    );
    assert!(addr.contains("mtu 1442"), "{addr}");

    // stop/start: tap re-plugged on the same qbr, qvo kept
    c.stop(&d).await;
    c.start_again(&d).await;
    m.attach_all(&c.uuid, c.pid(&d).await, &vifs, &g)
        .await
        .unwrap();
    assert_eq!(bridge_members(&v.qbr_name()), want);
    assert_eq!(ports(&br), want_ports);
    let (ok, out) = ping(&d, &c, "10.77.0.44").await;
    assert!(ok, "after stop/start: {out}");

    // destroy
    m.detach_all(&c.uuid, Some(c.pid(&d).await), &vifs)
        .await
        .unwrap();
    c.remove(&d).await;
    p.remove(&d).await;
    m.unplug_all(&c.uuid, &vifs).await.unwrap();
    m.unplug_all(&p.uuid, &peer).await.unwrap();
    for l in [
        v.qbr_name(),
        v.qvb_name(),
        v.qvo_name(),
        v.tap_name(),
        v.ns_name(),
    ] {
        assert!(!link_exists(&l), "{l} left behind");
    }
    assert!(ports(&br).is_empty());
    assert_eq!(snapshot(&tok), before);
}
