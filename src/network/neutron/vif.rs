//! Nova's VIF model built from what Neutron returns (`_build_vif_model`,
//! `_nw_info_build_network`, `_get_subnets_from_port` in
//! nova/network/neutron.py): pure functions of the port, its network, its
//! subnets and its floating IPs.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::clients::neutron::{FloatingIp, Network, Port, Subnet};
use crate::network::model::NIC_NAME_LEN;
use crate::network::{FixedIp, Ip, Network as NetModel, Route, Subnet as SubnetModel, Vif};

/// The VIF types whose `ovs_interfaceid` is the port id.
const OVS_TYPES: &[&str] = &["ovs", "agilio_ovs", "vhostuser"];

/// What the VIF model needs besides the port.
pub struct PortContext<'a> {
    pub network: &'a Network,
    /// The subnets of the port's fixed IPs (others are ignored).
    pub subnets: &'a [Subnet],
    pub floating_ips: &'a [FloatingIp],
    /// The port was given by the user (`preserve_on_delete`).
    pub preserve_on_delete: bool,
    /// `[neutron] ovs_bridge` (br-int) when vif_details names no bridge.
    pub ovs_bridge: &'a str,
}

fn ip(address: &str, kind: &str) -> Ip {
    Ip {
        address: Some(address.to_string()),
        ip_type: Some(kind.to_string()),
        version: Some(if address.contains(':') { 6 } else { 4 }),
        meta: Map::new(),
        extra: Map::new(),
    }
}

/// One VIF of network_info for `port`.
pub fn build_vif(port: &Port, c: &PortContext<'_>) -> Vif {
    let vif_type = port
        .binding_vif_type
        .clone()
        .unwrap_or_else(|| "unbound".into());
    let details = port.binding_vif_details.clone().unwrap_or_default();
    let is_ovs = OVS_TYPES.contains(&vif_type.as_str());
    let bridge = if is_ovs {
        let b = details
            .get("bridge_name")
            .and_then(Value::as_str)
            .unwrap_or(c.ovs_bridge);
        Some(b.chars().take(NIC_NAME_LEN).collect())
    } else {
        None
    };
    let network = NetModel {
        id: Some(port.network_id.clone()),
        bridge,
        label: c.network.name.clone(),
        subnets: subnets_of(port, c),
        meta: network_meta(c.network),
        extra: Map::new(),
    };
    let devname: String = format!("tap{}", port.id)
        .chars()
        .take(NIC_NAME_LEN)
        .collect();
    Vif {
        id: port.id.clone(),
        address: port.mac_address.clone(),
        network: Some(network),
        vif_type: Some(vif_type),
        details,
        devname: Some(devname),
        ovs_interfaceid: is_ovs.then(|| port.id.clone()),
        qbh_params: None,
        qbg_params: None,
        active: port.status.as_deref() == Some("ACTIVE") || !port.admin_state_up,
        vnic_type: Some(
            port.binding_vnic_type
                .clone()
                .unwrap_or_else(|| "normal".into()),
        ),
        profile: Some(Value::Object(
            port.binding_profile.clone().unwrap_or_default(),
        )),
        preserve_on_delete: c.preserve_on_delete,
        delegate_create: true,
        meta: Map::new(),
        extra: Map::new(),
    }
}

fn network_meta(n: &Network) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("injected".into(), json!(false));
    if let Some(p) = n.project() {
        m.insert("tenant_id".into(), json!(p));
    }
    if let Some(mtu) = n.mtu {
        m.insert("mtu".into(), json!(mtu));
    }
    m.insert("physical_network".into(), json!(n.physical_network));
    m.insert("tunneled".into(), json!(n.tunneled()));
    m
}

/// The subnets of the port's fixed IPs, each with the port's addresses on it
/// and their floating IPs, in the order of the port's fixed IPs.
fn subnets_of(port: &Port, c: &PortContext<'_>) -> Vec<SubnetModel> {
    let by_id: HashMap<&str, &Subnet> = c.subnets.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut order: Vec<&str> = Vec::new();
    for f in &port.fixed_ips {
        if !order.contains(&f.subnet_id.as_str()) {
            order.push(&f.subnet_id);
        }
    }
    order
        .into_iter()
        .filter_map(|sid| by_id.get(sid).copied())
        .map(|s| {
            let ips = port
                .fixed_ips
                .iter()
                .filter(|f| f.subnet_id == s.id)
                .map(|f| FixedIp {
                    address: Some(f.ip_address.clone()),
                    ip_type: Some("fixed".into()),
                    version: Some(s.ip_version),
                    floating_ips: c
                        .floating_ips
                        .iter()
                        .filter(|fip| fip.fixed_ip_address.as_deref() == Some(&f.ip_address))
                        .filter_map(|fip| fip.floating_ip_address.as_deref())
                        .map(|a| ip(a, "floating"))
                        .collect(),
                    meta: Map::new(),
                    extra: Map::new(),
                })
                .collect();
            let gateway = Ip {
                address: s.gateway_ip.clone(),
                ip_type: Some("gateway".into()),
                version: Some(s.ip_version),
                meta: Map::new(),
                extra: Map::new(),
            };
            let mut meta = Map::new();
            meta.insert("enable_dhcp".into(), json!(s.enable_dhcp));
            if s.ip_version == 6 {
                meta.insert("ipv6_address_mode".into(), json!(s.ipv6_address_mode));
            }
            SubnetModel {
                cidr: Some(s.cidr.clone()),
                dns: s.dns_nameservers.iter().map(|d| ip(d, "dns")).collect(),
                gateway: Some(gateway),
                ips,
                routes: s
                    .host_routes
                    .iter()
                    .map(|r| Route {
                        cidr: Some(r.destination.clone()),
                        gateway: Some(ip(&r.nexthop, "gateway")),
                        interface: None,
                        meta: Map::new(),
                        extra: Map::new(),
                    })
                    .collect(),
                version: Some(s.ip_version),
                meta,
                extra: Map::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::NetworkInfo;

    fn port() -> Port {
        serde_json::from_value(json!({
            "id": "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "network_id": "net-1",
            "mac_address": "fa:16:3e:11:22:33", "status": "DOWN", "admin_state_up": true,
            "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.7"},
                          {"subnet_id": "s6", "ip_address": "fd00:10::f816:3eff:fe11:2233"}],
            "binding:vif_type": "ovs", "binding:vnic_type": "normal",
            "binding:vif_details": {"port_filter": true, "connectivity": "l2",
                                     "bridge_name": "br-int", "datapath_type": "netdev"},
            "tenant_id": "proj"
        }))
        .unwrap()
    }

    fn subnets() -> Vec<Subnet> {
        serde_json::from_value(json!([
            {"id": "s6", "network_id": "net-1", "cidr": "fd00:10::/64", "ip_version": 6,
             "gateway_ip": "fd00:10::1", "enable_dhcp": true, "ipv6_address_mode": "slaac"},
            {"id": "s4", "network_id": "net-1", "cidr": "10.0.0.0/26", "ip_version": 4,
             "gateway_ip": "10.0.0.1", "dns_nameservers": ["10.0.0.2"], "enable_dhcp": true,
             "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.3"}]},
            {"id": "other", "cidr": "10.9.0.0/24", "ip_version": 4}
        ]))
        .unwrap()
    }

    #[test]
    fn the_vif_model_nova_builds() {
        let net: Network = serde_json::from_value(json!({
            "id": "net-1", "name": "private", "mtu": 1442, "tenant_id": "proj",
            "provider:network_type": "geneve", "provider:physical_network": null
        }))
        .unwrap();
        let fips: Vec<FloatingIp> = serde_json::from_value(json!([
            {"id": "f1", "floating_ip_address": "172.24.4.50", "fixed_ip_address": "10.0.0.7"}
        ]))
        .unwrap();
        let subnets = subnets();
        let c = PortContext {
            network: &net,
            subnets: &subnets,
            floating_ips: &fips,
            preserve_on_delete: false,
            ovs_bridge: "br-int",
        };
        let v = build_vif(&port(), &c);
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["devname"], "tap0f1e2d3c-4b");
        assert_eq!(j["ovs_interfaceid"], "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9");
        assert_eq!(j["type"], "ovs");
        assert_eq!(j["active"], false);
        assert_eq!(j["delegate_create"], true);
        assert_eq!(j["network"]["bridge"], "br-int");
        assert_eq!(j["network"]["label"], "private");
        assert_eq!(j["network"]["meta"]["mtu"], 1442);
        assert_eq!(j["network"]["meta"]["tunneled"], true);
        assert_eq!(j["network"]["meta"]["tenant_id"], "proj");
        let s = &j["network"]["subnets"];
        assert_eq!(s.as_array().unwrap().len(), 2, "only the port's subnets");
        assert_eq!(s[0]["cidr"], "10.0.0.0/26", "in the port's fixed_ips order");
        assert_eq!(s[0]["ips"][0]["address"], "10.0.0.7");
        assert_eq!(s[0]["ips"][0]["floating_ips"][0]["address"], "172.24.4.50");
        assert_eq!(s[0]["gateway"]["address"], "10.0.0.1");
        assert_eq!(s[0]["dns"][0]["address"], "10.0.0.2");
        assert_eq!(s[0]["routes"][0]["cidr"], "192.168.0.0/16");
        assert_eq!(s[0]["routes"][0]["gateway"]["address"], "10.0.0.3");
        assert_eq!(s[1]["version"], 6);
        assert_eq!(s[1]["meta"]["ipv6_address_mode"], "slaac");
        // what the VIF drivers read back
        let nw = NetworkInfo::new(vec![v.clone()]).unwrap();
        assert_eq!(nw.vif_plugged_events().len(), 1);
        assert_eq!(v.mtu(), Some(1442));
        assert_eq!(v.tap_name(), "tap0f1e2d3c-4b");
        // a round trip through the info cache text
        let back = NetworkInfo::parse(&nw.to_json()).unwrap();
        assert_eq!(back, nw);
    }

    #[test]
    fn an_active_or_admin_down_port_is_active_and_other_types_have_no_bridge() {
        let net = Network {
            id: "net-1".into(),
            ..Default::default()
        };
        let c = PortContext {
            network: &net,
            subnets: &[],
            floating_ips: &[],
            preserve_on_delete: true,
            ovs_bridge: "br-int",
        };
        let mut p = port();
        p.status = Some("ACTIVE".into());
        assert!(build_vif(&p, &c).active);
        p.status = Some("DOWN".into());
        p.admin_state_up = false;
        assert!(build_vif(&p, &c).active);
        p.binding_vif_type = Some("tap".into());
        let v = build_vif(&p, &c);
        assert!(v.preserve_on_delete);
        assert_eq!(v.ovs_interfaceid, None);
        assert_eq!(v.network.unwrap().bridge, None);
    }
}
