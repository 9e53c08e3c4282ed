//! Nova's network_info (`nova/network/model.py`) as typed serde structs.
//!
//! `InstanceInfoCache.network_info` is a JSON string holding a list of VIF dicts.
//! Every dict here is a `Model` in Python: known keys become fields, everything
//! else (and Nova's `meta` dicts) is kept verbatim, so a round trip loses nothing
//! and newer Nova releases with more keys still parse.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::NetworkError;

/// Longest Linux interface name Nova builds (`model.NIC_NAME_LEN`).
pub const NIC_NAME_LEN: usize = 14;

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `model.IP` (and the gateway / DNS entries, which are IPs with a `type`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ip {
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, rename = "type")]
    pub ip_type: Option<String>,
    #[serde(default)]
    pub version: Option<u8>,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Ip {
    /// The address, when there is one and it parses.
    pub fn addr(&self) -> Option<IpAddr> {
        self.address.as_deref().and_then(|a| a.trim().parse().ok())
    }
}

/// `model.FixedIP`: an IP with its floating IPs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FixedIp {
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, rename = "type")]
    pub ip_type: Option<String>,
    #[serde(default)]
    pub version: Option<u8>,
    #[serde(default, deserialize_with = "null_default")]
    pub floating_ips: Vec<Ip>,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FixedIp {
    pub fn addr(&self) -> Option<IpAddr> {
        self.address.as_deref().and_then(|a| a.trim().parse().ok())
    }
}

/// `model.Route`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    #[serde(default)]
    pub cidr: Option<String>,
    #[serde(default)]
    pub gateway: Option<Ip>,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `model.Subnet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    #[serde(default)]
    pub cidr: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub dns: Vec<Ip>,
    #[serde(default)]
    pub gateway: Option<Ip>,
    #[serde(default, deserialize_with = "null_default")]
    pub ips: Vec<FixedIp>,
    #[serde(default, deserialize_with = "null_default")]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub version: Option<u8>,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Subnet {
    /// The subnet's network address and prefix length, from `cidr`.
    pub fn prefix(&self) -> Option<(IpAddr, u8)> {
        self.cidr.as_deref().and_then(parse_cidr)
    }

    /// The gateway address, when the subnet has one (`gateway.address` is null on
    /// subnets created with `--no-gateway`).
    pub fn gateway_addr(&self) -> Option<IpAddr> {
        self.gateway.as_ref().and_then(Ip::addr)
    }
}

/// `model.Network`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub subnets: Vec<Subnet>,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An int that Python may have stored as an int or a numeric string.
fn value_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn value_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        _ => None,
    }
}

impl Network {
    /// `meta.mtu`, when set and sane (68..=65535).
    pub fn mtu(&self) -> Option<u32> {
        self.meta
            .get("mtu")
            .and_then(value_u64)
            .filter(|m| (68..=65535).contains(m))
            .map(|m| m as u32)
    }

    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn meta_bool(&self, key: &str) -> Option<bool> {
        self.meta.get(key).and_then(value_bool)
    }

    /// Every fixed IP of the network with the prefix length of its subnet.
    pub fn fixed_addresses(&self) -> Vec<(IpAddr, u8)> {
        let mut out = Vec::new();
        for s in &self.subnets {
            let Some((net, plen)) = s.prefix() else {
                continue;
            };
            for ip in &s.ips {
                if let Some(a) = ip.addr() {
                    if a.is_ipv4() == net.is_ipv4() {
                        out.push((a, plen));
                    }
                }
            }
        }
        out
    }
}

/// `model.VIF`: one entry of network_info.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vif {
    pub id: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub network: Option<Network>,
    #[serde(default, rename = "type")]
    pub vif_type: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub details: Map<String, Value>,
    #[serde(default)]
    pub devname: Option<String>,
    #[serde(default)]
    pub ovs_interfaceid: Option<String>,
    #[serde(default)]
    pub qbh_params: Option<Value>,
    #[serde(default)]
    pub qbg_params: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub active: bool,
    #[serde(default)]
    pub vnic_type: Option<String>,
    #[serde(default)]
    pub profile: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub preserve_on_delete: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub delegate_create: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub meta: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Vif {
    /// The first 11 characters of the VIF id, the suffix of every device name
    /// built for it (as Nova and os-vif do: `tap` + id, cut to 14 characters).
    pub fn short_id(&self) -> &str {
        let end = self
            .id
            .char_indices()
            .nth(11)
            .map_or(self.id.len(), |(i, _)| i);
        &self.id[..end]
    }

    /// Host end of the container's veth pair (`tap<id[:11]>`).
    pub fn tap_name(&self) -> String {
        format!("tap{}", self.short_id())
    }

    /// Container end of the veth pair while it is still on the host (`ns<id[:11]>`).
    pub fn ns_name(&self) -> String {
        format!("ns{}", self.short_id())
    }

    /// OVS hybrid plug devices, named as os-vif names them.
    pub fn qbr_name(&self) -> String {
        format!("qbr{}", self.short_id())
    }
    pub fn qvb_name(&self) -> String {
        format!("qvb{}", self.short_id())
    }
    pub fn qvo_name(&self) -> String {
        format!("qvo{}", self.short_id())
    }

    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn detail_bool(&self, key: &str) -> Option<bool> {
        self.details.get(key).and_then(value_bool)
    }

    /// `details.ovs_hybrid_plug`.
    pub fn ovs_hybrid_plug(&self) -> bool {
        self.detail_bool("ovs_hybrid_plug").unwrap_or(false)
    }

    /// The VLAN the network asks for: `details.vlan`, else `network.meta.vlan`.
    pub fn vlan(&self) -> Option<u16> {
        self.details
            .get("vlan")
            .and_then(value_u64)
            .or_else(|| {
                self.network
                    .as_ref()
                    .and_then(|n| n.meta.get("vlan"))
                    .and_then(value_u64)
            })
            .filter(|v| (1..4095).contains(v))
            .map(|v| v as u16)
    }

    /// The MAC as six bytes.
    pub fn mac(&self) -> Result<[u8; 6], NetworkError> {
        let raw = self.address.as_deref().unwrap_or("");
        parse_mac(raw).ok_or_else(|| NetworkError::InvalidVif {
            vif_id: self.id.clone(),
            reason: format!("invalid MAC address {raw:?}"),
        })
    }

    pub fn mtu(&self) -> Option<u32> {
        self.network.as_ref().and_then(Network::mtu)
    }

    /// The OVS `iface-id`: `ovs_interfaceid`, else the VIF id (os-vif).
    pub fn iface_id(&self) -> &str {
        self.ovs_interfaceid
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.id)
    }

    /// Check what the drivers rely on: an id usable in device names.
    pub fn validate(&self) -> Result<(), NetworkError> {
        let bad = |reason: String| NetworkError::InvalidVif {
            vif_id: self.id.clone(),
            reason,
        };
        if self.short_id().len() < 4 {
            return Err(bad("VIF id is too short to name its devices".into()));
        }
        if !self
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "VIF id has characters not allowed in a device name".into()
            ));
        }
        Ok(())
    }
}

/// `a.b.c.d/n` or `x::/n` to (address, prefix length).
pub fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = cidr.trim().split_once('/')?;
    let addr: IpAddr = a.parse().ok()?;
    let plen: u8 = p.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (plen <= max).then_some((addr, plen))
}

/// `fa:16:3e:00:00:01` (or with `-`) to bytes; a multicast MAC is refused.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        out[i] = u8::from_str_radix(p, 16).ok()?;
    }
    (out[0] & 1 == 0 && out != [0; 6]).then_some(out)
}

/// Parse `InstanceInfoCache.network_info` (a JSON list of VIF dicts; `null` or an
/// empty string is an instance without networking).
/// An instance's network_info (`nova.network.model.NetworkInfo`): its VIFs, in
/// the order they appear in the container (`eth0`, `eth1`, ...). Parsed once,
/// where it enters (the instance's info cache, or Neutron's ports), and passed
/// on as this type.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct NetworkInfo(Vec<Vif>);

impl NetworkInfo {
    /// Read network_info as Nova stores it (a JSON list of VIF dicts; empty or
    /// `null` means no VIFs). Every VIF is validated, and no two may share the
    /// interface-name prefix of their ids.
    pub fn parse(json: &str) -> Result<Self, NetworkError> {
        let t = json.trim();
        if t.is_empty() || t == "null" {
            return Ok(Self::default());
        }
        let vifs: Vec<Vif> =
            serde_json::from_str(t).map_err(|e| NetworkError::InvalidNetworkInfo(e.to_string()))?;
        Self::new(vifs)
    }

    /// From VIFs built here, with the same checks as [`Self::parse`].
    pub fn new(vifs: Vec<Vif>) -> Result<Self, NetworkError> {
        let mut seen = std::collections::HashSet::new();
        for v in &vifs {
            v.validate()?;
            if !seen.insert(v.short_id().to_string()) {
                return Err(NetworkError::InvalidNetworkInfo(format!(
                    "two VIFs share the id prefix {} (VIF {})",
                    v.short_id(),
                    v.id
                )));
            }
        }
        Ok(NetworkInfo(vifs))
    }

    pub fn vifs(&self) -> &[Vif] {
        &self.0
    }

    pub fn into_vifs(self) -> Vec<Vif> {
        self.0
    }

    /// The JSON text Nova stores in the info cache.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }

    /// The Neutron events to wait for before starting an instance with these
    /// VIFs: `("network-vif-plugged", vif id)` for each VIF that is not active
    /// yet (as Nova's libvirt driver computes them; honour
    /// `vif_plugging_timeout` and `vif_plugging_is_fatal` while waiting).
    pub fn vif_plugged_events(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|v| !v.active)
            .map(|v| ("network-vif-plugged".to_string(), v.id.clone()))
            .collect()
    }
}

impl<'a> IntoIterator for &'a NetworkInfo {
    type Item = &'a Vif;
    type IntoIter = std::slice::Iter<'a, Vif>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::ops::Deref for NetworkInfo {
    type Target = [Vif];
    fn deref(&self) -> &[Vif] {
        &self.0
    }
}

/// The interface name of the n-th VIF of network_info inside the container.
pub fn ifname(index: usize) -> String {
    format!("eth{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/network")
            .join(name);
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn parses_every_fixture_and_round_trips() {
        for f in [
            "bridge_a.json",
            "bridge_b.json",
            "two_vifs.json",
            "vlan.json",
            "ovs.json",
            "ovs_hybrid.json",
        ] {
            let text = fixture(f);
            let vifs = NetworkInfo::parse(&text).unwrap();
            assert!(!vifs.is_empty(), "{f}");
            let back = serde_json::to_value(&vifs).unwrap();
            let orig: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, orig, "{f} does not round-trip");
        }
    }

    #[test]
    fn dual_stack_fields() {
        let vifs = NetworkInfo::parse(&fixture("two_vifs.json")).unwrap();
        let v = &vifs[0];
        assert_eq!(v.vif_type.as_deref(), Some("bridge"));
        assert_eq!(v.mtu(), Some(1400));
        assert_eq!(v.tap_name(), "tap2c3d4e5f-6a");
        assert_eq!(v.tap_name(), v.devname.clone().unwrap());
        assert_eq!(v.ns_name(), "ns2c3d4e5f-6a");
        assert_eq!(v.mac().unwrap(), [0xfa, 0x16, 0x3e, 0, 0x77, 0x15]);
        let net = v.network.as_ref().unwrap();
        let addrs = net.fixed_addresses();
        assert_eq!(
            addrs,
            vec![
                ("10.77.0.21".parse().unwrap(), 24),
                ("fd00:77::15".parse().unwrap(), 64)
            ]
        );
        assert_eq!(
            net.subnets[0].gateway_addr(),
            Some("10.77.0.1".parse().unwrap())
        );
        // the second network has no gateway: address null
        let n2 = vifs[1].network.as_ref().unwrap();
        assert_eq!(n2.subnets[0].gateway_addr(), None);
        assert!(n2.subnets[0].gateway.is_some());
    }

    #[test]
    fn vlan_and_ovs_details() {
        let v = &NetworkInfo::parse(&fixture("vlan.json")).unwrap()[0];
        assert_eq!(v.vlan(), Some(3077));
        assert_eq!(
            v.network.as_ref().unwrap().meta_str("bridge_interface"),
            Some("dummy0")
        );
        let o = &NetworkInfo::parse(&fixture("ovs_hybrid.json")).unwrap()[0];
        assert!(o.ovs_hybrid_plug());
        assert_eq!(o.iface_id(), o.id);
        assert_eq!(o.qvo_name(), "qvo6a7b8c9d-0e");
        let o = &NetworkInfo::parse(&fixture("ovs.json")).unwrap()[0];
        assert!(!o.ovs_hybrid_plug());
    }

    #[test]
    fn tolerant_of_unknown_fields_and_nulls() {
        let j = r#"[{"id":"abcdef01-2345","address":"fa:16:3e:aa:bb:cc","type":"ovs",
            "details":null,"network":{"id":"n","subnets":null,"meta":null,"new_key":[1]},
            "future_field":{"x":1}}]"#;
        let v = NetworkInfo::parse(j).unwrap();
        assert!(v[0].details.is_empty());
        assert_eq!(
            v[0].extra.get("future_field"),
            Some(&serde_json::json!({"x":1}))
        );
        assert_eq!(
            v[0].network.as_ref().unwrap().extra.get("new_key"),
            Some(&serde_json::json!([1]))
        );
        assert!(NetworkInfo::parse("").unwrap().is_empty());
        assert!(NetworkInfo::parse("null").unwrap().is_empty());
        assert!(NetworkInfo::parse("[]").unwrap().is_empty());
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(matches!(
            NetworkInfo::parse("{"),
            Err(NetworkError::InvalidNetworkInfo(_))
        ));
        assert!(matches!(
            NetworkInfo::parse(r#"[{"address":"x"}]"#),
            Err(NetworkError::InvalidNetworkInfo(_))
        ));
        assert!(matches!(
            NetworkInfo::parse(r#"[{"id":"../../etc/x"}]"#),
            Err(NetworkError::InvalidVif { .. })
        ));
        assert!(matches!(
            NetworkInfo::parse(r#"[{"id":"abcdef012345"},{"id":"abcdef01234z"}]"#),
            Err(NetworkError::InvalidNetworkInfo(_))
        ));
        let v: Vif =
            serde_json::from_str(r#"{"id":"abcdef012345","address":"01:00:5e:00:00:01"}"#).unwrap();
        assert!(v.mac().is_err());
    }

    #[test]
    fn plug_events_for_inactive_vifs() {
        let nw = NetworkInfo::parse(&fixture("two_vifs.json")).unwrap();
        assert!(nw.vif_plugged_events().is_empty());
        let mut vifs = nw.vifs().to_vec();
        vifs[1].active = false;
        let nw = NetworkInfo::new(vifs).unwrap();
        assert_eq!(
            nw.vif_plugged_events(),
            vec![("network-vif-plugged".to_string(), nw[1].id.clone())]
        );
    }

    #[test]
    fn cidr_and_mac_parsing() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(
            parse_cidr("fd00::/64"),
            Some(("fd00::".parse().unwrap(), 64))
        );
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert_eq!(parse_cidr("10.0.0.0"), None);
        assert_eq!(
            parse_mac("FA-16-3E-00-00-01"),
            Some([0xfa, 0x16, 0x3e, 0, 0, 1])
        );
        assert_eq!(parse_mac("fa:16:3e:00:00"), None);
        assert_eq!(parse_mac("00:00:00:00:00:00"), None);
    }
}
