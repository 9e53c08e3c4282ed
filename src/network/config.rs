//! The networking options of nova.conf (`[docker]`, with Nova's own names as fallbacks).

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{ConfigError, Ini};

/// The class path the old Python driver took for its generic VIF driver.
pub const LEGACY_GENERIC_DRIVER: &str = "novadocker.virt.docker.vifs.DockerGenericVIFDriver";

/// Which VIF driver wires instances (`[docker] vif_driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VifDriverKind {
    /// Dispatch per VIF `type` (bridge, ovs, ovs hybrid).
    Generic,
    Bridge,
    Ovs,
    OvsHybrid,
    /// The instance joins a named Docker network (clouds without Neutron).
    Docker,
    Noop,
}

impl VifDriverKind {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "" | "generic" | LEGACY_GENERIC_DRIVER => Self::Generic,
            "bridge" | "linuxbridge" => Self::Bridge,
            "ovs" | "openvswitch" => Self::Ovs,
            "ovs_hybrid" | "ovs-hybrid" => Self::OvsHybrid,
            "docker" | "docker_network" => Self::Docker,
            "noop" | "none" => Self::Noop,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub vif_driver: VifDriverKind,
    /// OVS integration bridge (`[docker] ovs_bridge`, `[docker] integration_bridge`,
    /// `[neutron] ovs_bridge`; default br-int). A VIF's `details.bridge_name` wins.
    pub ovs_bridge: String,
    /// datapath_type of an integration bridge we create (`system`; `netdev` where the
    /// kernel has no openvswitch module).
    pub ovs_datapath_type: String,
    pub ovs_vsctl_timeout: Duration,
    /// Physical interface of VLAN bridges when the network does not name one
    /// (`[docker] vlan_interface`, Nova's old option name).
    pub vlan_interface: Option<String>,
    /// Nameservers for /etc/resolv.conf when no subnet has DNS servers.
    pub default_nameservers: Vec<IpAddr>,
    /// Domain for /etc/hosts and the resolv.conf search line (`[DEFAULT] dhcp_domain`).
    pub dhcp_domain: Option<String>,
    /// The Docker network the `docker` driver puts instances on.
    pub docker_network: String,
    /// Write /etc/resolv.conf, /etc/hosts and /etc/hostname inside the container.
    pub manage_etc_files: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            vif_driver: VifDriverKind::Generic,
            ovs_bridge: "br-int".into(),
            ovs_datapath_type: "system".into(),
            ovs_vsctl_timeout: Duration::from_secs(120),
            vlan_interface: None,
            default_nameservers: Vec::new(),
            dhcp_domain: None,
            docker_network: "bridge".into(),
            manage_etc_files: true,
        }
    }
}

impl NetworkConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let d = ini.group("docker");
        let name = d.str("vif_driver", LEGACY_GENERIC_DRIVER)?;
        let vif_driver = VifDriverKind::parse(&name).ok_or_else(|| {
            d.invalid(
                "vif_driver",
                format!(
                    "unknown VIF driver {name:?} (generic, {LEGACY_GENERIC_DRIVER}, bridge, ovs, ovs_hybrid, docker, noop)"
                ),
            )
        })?;
        let ovs_bridge = match d.opt_nonempty("ovs_bridge")? {
            Some(b) => b,
            None => match d.opt_nonempty("integration_bridge")? {
                Some(b) => b,
                None => ini.group("neutron").str("ovs_bridge", "br-int")?,
            },
        };
        check_ifname(&ovs_bridge).map_err(|r| d.invalid("ovs_bridge", r))?;
        let ovs_datapath_type = d.choice("ovs_datapath_type", "system", &["system", "netdev"])?;
        let ovs_vsctl_timeout = d.secs("ovs_vsctl_timeout", 120)?;
        let vlan_interface = d.opt_nonempty("vlan_interface")?;
        if let Some(v) = &vlan_interface {
            check_ifname(v).map_err(|r| d.invalid("vlan_interface", r))?;
        }
        let mut default_nameservers = Vec::new();
        for ns in d.list("default_nameservers", &[])? {
            let ip = ns.parse().map_err(|_| {
                d.invalid(
                    "default_nameservers",
                    format!("{ns:?} is not an IP address"),
                )
            })?;
            default_nameservers.push(ip);
        }
        let dhcp_domain = ini
            .group("DEFAULT")
            .opt_nonempty("dhcp_domain")?
            .or(ini.group("api").opt_nonempty("dhcp_domain")?);
        Ok(NetworkConfig {
            vif_driver,
            ovs_bridge,
            ovs_datapath_type,
            ovs_vsctl_timeout,
            vlan_interface,
            default_nameservers,
            dhcp_domain,
            docker_network: d.str("docker_network", "bridge")?,
            manage_etc_files: d.bool("manage_etc_files", true)?,
        })
    }
}

/// A Linux interface name: 1..=15 bytes, no '/', whitespace or ':'.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{name:?} is not 1 to 15 characters long"));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(text: &str) -> Ini {
        Ini::parse(text).unwrap()
    }

    #[test]
    fn defaults() {
        let c = NetworkConfig::from_ini(&ini("")).unwrap();
        assert_eq!(c.vif_driver, VifDriverKind::Generic);
        assert_eq!(c.ovs_bridge, "br-int");
        assert_eq!(c.ovs_datapath_type, "system");
        assert!(c.default_nameservers.is_empty());
    }

    #[test]
    fn legacy_class_path_and_names() {
        let c = NetworkConfig::from_ini(&ini(
            "[docker]\nvif_driver = novadocker.virt.docker.vifs.DockerGenericVIFDriver\nintegration_bridge = br-x\ndefault_nameservers = 8.8.8.8, 2001:4860:4860::8888\n",
        ))
        .unwrap();
        assert_eq!(c.vif_driver, VifDriverKind::Generic);
        assert_eq!(c.ovs_bridge, "br-x");
        assert_eq!(c.default_nameservers.len(), 2);
        let c = NetworkConfig::from_ini(&ini(
            "[neutron]\novs_bridge = br-n\n[docker]\nvif_driver=docker\n",
        ))
        .unwrap();
        assert_eq!(c.ovs_bridge, "br-n");
        assert_eq!(c.vif_driver, VifDriverKind::Docker);
        let c = NetworkConfig::from_ini(&ini(
            "[docker]\novs_bridge = br-a\nintegration_bridge = br-b\n",
        ))
        .unwrap();
        assert_eq!(c.ovs_bridge, "br-a");
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = NetworkConfig::from_ini(&ini("[docker]\nvif_driver = nope\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("vif_driver") && e.contains("nova.conf"), "{e}");
        let e = NetworkConfig::from_ini(&ini("[docker]\ndefault_nameservers = x\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("default_nameservers"), "{e}");
        assert!(NetworkConfig::from_ini(&ini("[docker]\novs_bridge = a/b\n")).is_err());
        assert!(
            NetworkConfig::from_ini(&ini("[docker]\novs_bridge = averyveryverylongname\n"))
                .is_err()
        );
    }
}
