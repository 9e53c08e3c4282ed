//! network_info (the instance info cache's JSON, Neutron's VIF model) on hostile
//! text: `NetworkInfo::parse` and every accessor the VIF drivers use must not
//! panic, and what parses must read back the same from `to_json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_docker::network::model::{ifname, parse_cidr, parse_mac};
use nova_docker::network::NetworkInfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_cidr(text);
    let _ = parse_mac(text);
    let Ok(info) = NetworkInfo::parse(text) else {
        return;
    };
    for (i, vif) in info.iter().enumerate() {
        let _ = ifname(i);
        for name in [
            vif.tap_name(),
            vif.ns_name(),
            vif.qbr_name(),
            vif.qvb_name(),
            vif.qvo_name(),
        ] {
            // a validated VIF names devices within Linux's IFNAMSIZ
            assert!(name.len() <= 15, "device name {name:?} too long");
        }
        let _ = vif.iface_id();
        let _ = vif.ovs_hybrid_plug();
        let _ = vif.vlan();
        let _ = vif.mac();
        let _ = vif.mtu();
        let _ = vif.detail_str("vhostuser_socket");
        if let Some(net) = &vif.network {
            let _ = net.mtu();
            let _ = net.meta_bool("should_create_bridge");
            let _ = net.meta_str("bridge_interface");
            let _ = net.fixed_addresses();
            for s in &net.subnets {
                let _ = s.prefix();
                let _ = s.gateway_addr();
                for ip in &s.ips {
                    let _ = ip.addr();
                }
            }
        }
    }
    let _ = info.vif_plugged_events();
    let back = NetworkInfo::parse(&info.to_json()).expect("our own network_info parses");
    assert_eq!(info, back);
});
