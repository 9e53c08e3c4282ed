//! The VIF drivers.
//!
//! Every driver but `docker` and `noop` gives the container one end of a veth
//! pair: the host end `tap<id[:11]>` is plugged into the network (a Linux bridge,
//! the OVS integration bridge, or the per-VIF `qbr` bridge of the OVS hybrid plug),
//! the other end is created as `ns<id[:11]>`, moved into the container's network
//! namespace and renamed `ethN` there. A container's namespace dies with its
//! process (and the veth pair with it), so `attach` re-plugs whenever the pair is
//! gone: starting a container again is plug + attach, both idempotent.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::{debug, info, warn};

use super::config::{check_ifname, NetworkConfig};
use super::guest::plan_interface;
use super::model::Vif;
use super::netlink::{in_netns, open_netns, write_net_sysctl, Netlink};
use super::ovs::Ovs;
use super::NetworkError;

/// A way of wiring a VIF into a container.
#[async_trait]
pub trait VifDriver: Send + Sync {
    fn name(&self) -> &'static str;

    /// Host side: whatever the VIF needs before the container has a namespace.
    async fn plug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError>;

    /// Container side: give the container of `pid` the interface `ifname` with the
    /// VIF's MAC, MTU, addresses and routes. Idempotent; re-plugs when needed.
    async fn attach(
        &self,
        instance_uuid: &str,
        vif: &Vif,
        ifname: &str,
        pid: u32,
    ) -> Result<(), NetworkError>;

    /// Take the VIF's interface out of the container (of `pid`, when it runs).
    async fn detach(
        &self,
        instance_uuid: &str,
        vif: &Vif,
        pid: Option<u32>,
    ) -> Result<(), NetworkError>;

    /// Remove everything `plug` made on the host. Idempotent.
    async fn unplug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError>;

    /// The Docker NetworkMode the container is created with.
    fn network_mode(&self) -> String {
        "none".to_string()
    }

    /// Whether the container's /etc/resolv.conf, hosts and hostname are ours to write.
    fn manages_guest_files(&self) -> bool {
        true
    }
}

/// The veth pair of a VIF on the host. A host end `tap<id>` whose peer is not on
/// the host has its peer in a live namespace (a namespace that dies takes the pair
/// with it): that is the running container's interface, kept as it is, so that
/// plugging a running instance again (Nova's plug_vifs at host start) breaks
/// nothing. Without a host end, a pair is made (a leftover `ns<id>` removed first).
/// Returns the host end's index and whether the pair is new.
async fn ensure_container_veth(nl: &Netlink, vif: &Vif) -> Result<(u32, bool), NetworkError> {
    let (tap, ns) = (vif.tap_name(), vif.ns_name());
    let mac = vif.mac()?;
    let (tap_link, fresh) = match nl.link(&tap).await? {
        Some(t) => (t, false),
        None => {
            if nl.delete(&ns).await? {
                info!(vif = %vif.id, link = %ns, "removed a half-made veth");
            }
            nl.add_veth(&tap, &ns).await?;
            debug!(vif = %vif.id, tap, ns, "created veth pair");
            let t = nl.link(&tap).await?.ok_or_else(|| NetworkError::Netlink {
                op: format!("create veth {tap}"),
                reason: "the new link is not there".into(),
            })?;
            (t, true)
        }
    };
    if let Some(mtu) = vif.mtu() {
        if tap_link.mtu != Some(mtu) {
            nl.set_mtu(tap_link.index, &tap, mtu).await?;
        }
    }
    if let Some(ns_link) = nl.link(&ns).await? {
        if let Some(mtu) = vif.mtu() {
            nl.set_mtu(ns_link.index, &ns, mtu).await?;
        }
        if ns_link.mac.as_deref() != Some(&mac[..]) {
            nl.set_mac(ns_link.index, &ns, &mac).await?;
        }
    }
    Ok((tap_link.index, fresh))
}

/// Remove the container veth pair (either end takes the other with it).
async fn remove_container_veth(nl: &Netlink, vif: &Vif) -> Result<(), NetworkError> {
    nl.delete(&vif.tap_name()).await?;
    nl.delete(&vif.ns_name()).await?;
    Ok(())
}

/// Is the VIF's interface already in the container, as `ifname` with its MAC, and
/// still paired with our host end?
async fn already_attached(
    nl_host: &Netlink,
    vif: &Vif,
    ifname: &str,
    pid: u32,
) -> Result<bool, NetworkError> {
    if nl_host.link(&vif.tap_name()).await?.is_none() {
        return Ok(false);
    }
    let mac = vif.mac()?;
    let name = ifname.to_string();
    in_netns(pid, move |nl| async move {
        Ok(nl
            .link(&name)
            .await?
            .is_some_and(|l| l.mac.as_deref() == Some(&mac[..])))
    })
    .await
}

/// Move `ns<id>` into the container and configure it; `plug` makes the host side
/// again when the pair is gone.
async fn attach_veth<D: VifDriver + ?Sized>(
    driver: &D,
    instance_uuid: &str,
    vif: &Vif,
    ifname: &str,
    pid: u32,
) -> Result<(), NetworkError> {
    check_ifname(ifname).map_err(|reason| NetworkError::InvalidVif {
        vif_id: vif.id.clone(),
        reason,
    })?;
    let plan = plan_interface(vif, ifname)?;
    // a container that is gone fails here, before anything is made on the host
    let ns = open_netns(pid)?;
    let nl = Netlink::connect()?;
    let moved = if already_attached(&nl, vif, ifname, pid).await? {
        debug!(vif = %vif.id, ifname, pid, "already attached; refreshing addresses and routes");
        false
    } else {
        if nl.link(&vif.ns_name()).await?.is_none() {
            // the container end is not on the host: if a host end is left, its
            // peer is in another namespace (an old one still held open), stale
            if nl.delete(&vif.tap_name()).await? {
                info!(vif = %vif.id, link = %vif.tap_name(), "removed a stale host-side veth");
            }
        }
        driver.plug(instance_uuid, vif).await?;
        let ns_name = vif.ns_name();
        let ns_link = nl
            .link(&ns_name)
            .await?
            .ok_or_else(|| NetworkError::Netlink {
                op: format!("find {ns_name} after plugging"),
                reason: "no such device".into(),
            })?;
        // a stale ethN of an earlier attach (another VIF order) goes first
        let stale = ifname.to_string();
        in_netns(pid, move |nl| async move {
            if nl.delete(&stale).await? {
                info!(link = %stale, "removed a stale interface from the container");
            }
            Ok(())
        })
        .await?;
        nl.move_to_netns(ns_link.index, &ns_name, &ns).await?;
        true
    };
    let ns_name = vif.ns_name();
    let vif_id = vif.id.clone();
    in_netns(pid, move |nl| async move {
        let link = match nl.link(&ns_name).await? {
            Some(l) => {
                nl.set_down(l.index, &ns_name).await?;
                nl.set_name(l.index, &ns_name, &plan.ifname).await?;
                l
            }
            None => nl
                .link(&plan.ifname)
                .await?
                .ok_or_else(|| NetworkError::Netlink {
                    op: format!("find {} in the container", plan.ifname),
                    reason: "no such device".into(),
                })?,
        };
        let ifname = plan.ifname.as_str();
        if link.mac.as_deref() != Some(&plan.mac[..]) {
            nl.set_mac(link.index, ifname, &plan.mac).await?;
        }
        if let Some(mtu) = plan.mtu {
            if link.mtu != Some(mtu) {
                nl.set_mtu(link.index, ifname, mtu).await?;
            }
        }
        if let Some(lo) = nl.link("lo").await? {
            nl.set_up(lo.index, "lo").await?;
        }
        if plan.has_ipv6() {
            // Docker turns IPv6 off in containers without an IPv6 network; DAD would
            // leave the address tentative for a second or two after every start.
            for (k, v) in [("disable_ipv6", "0"), ("accept_dad", "0")] {
                if let Err(e) = write_net_sysctl(&format!("ipv6/conf/{ifname}/{k}"), v) {
                    warn!(error = %e, "cannot set an IPv6 sysctl");
                }
            }
        }
        nl.set_up(link.index, ifname).await?;
        for (a, plen) in &plan.addresses {
            nl.replace_address(link.index, ifname, *a, *plen).await?;
        }
        for r in &plan.routes {
            let added = nl
                .add_route(link.index, ifname, r.dest, r.plen, r.gateway)
                .await?;
            if !added {
                debug!(vif = %vif_id, dest = %r.dest, plen = r.plen, "route already present");
            }
        }
        Ok(())
    })
    .await?;
    info!(instance_uuid, vif = %vif.id, ifname, pid, moved, "VIF attached");
    Ok(())
}

/// Take the VIF's interface out of a running container (found by MAC, whatever its
/// name) and remove the host end.
async fn detach_veth(vif: &Vif, pid: Option<u32>) -> Result<(), NetworkError> {
    if let Some(pid) = pid {
        let mac = vif.mac()?;
        let r = in_netns(pid, move |nl| async move {
            for l in nl.links().await? {
                if l.mac.as_deref() == Some(&mac[..]) && l.name != "lo" {
                    nl.delete(&l.name).await?;
                }
            }
            Ok(())
        })
        .await;
        match r {
            // the container is gone: so is its end of the pair
            Err(NetworkError::Netns { .. }) => {}
            other => other?,
        }
    }
    let nl = Netlink::connect()?;
    remove_container_veth(&nl, vif).await
}

pub(crate) struct Shared {
    pub cfg: NetworkConfig,
    pub ovs: Ovs,
}

/// A Linux bridge per network (`network.bridge`), made when missing; on a VLAN
/// network, `vlan<N>` on the physical interface is put on the bridge.
pub struct BridgeDriver {
    shared: Arc<Shared>,
}

impl BridgeDriver {
    fn bridge_name(vif: &Vif) -> Result<String, NetworkError> {
        let net = vif.network.as_ref();
        let name = match net
            .and_then(|n| n.bridge.as_deref())
            .filter(|b| !b.is_empty())
        {
            Some(b) => b.to_string(),
            None => {
                let id = net.and_then(|n| n.id.as_deref()).unwrap_or("");
                if id.is_empty() {
                    return Err(NetworkError::InvalidVif {
                        vif_id: vif.id.clone(),
                        reason: "network has neither a bridge nor an id".into(),
                    });
                }
                format!("brq{}", id.chars().take(11).collect::<String>())
            }
        };
        check_ifname(&name).map_err(|reason| NetworkError::InvalidVif {
            vif_id: vif.id.clone(),
            reason,
        })?;
        Ok(name)
    }
}

#[async_trait]
impl VifDriver for BridgeDriver {
    fn name(&self) -> &'static str {
        "bridge"
    }

    async fn plug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError> {
        let bridge = Self::bridge_name(vif)?;
        let nl = Netlink::connect()?;
        let br = nl.ensure_bridge(&bridge).await?;
        if let Some(vlan) = vif.vlan() {
            let phys = vif
                .network
                .as_ref()
                .and_then(|n| n.meta_str("bridge_interface"))
                .map(str::to_string)
                .or_else(|| vif.detail_str("physical_interface").map(str::to_string))
                .or_else(|| self.shared.cfg.vlan_interface.clone())
                .ok_or_else(|| NetworkError::InvalidVif {
                    vif_id: vif.id.clone(),
                    reason: format!("VLAN {vlan} network without a physical interface (set [docker] vlan_interface)"),
                })?;
            check_ifname(&phys).map_err(|reason| NetworkError::InvalidVif {
                vif_id: vif.id.clone(),
                reason,
            })?;
            let vname = format!("vlan{vlan}");
            let vl = nl.ensure_vlan(&vname, &phys, vlan).await?;
            if vl.master != Some(br.index) {
                nl.set_master(vl.index, &vname, br.index).await?;
            }
        }
        if let Some(mtu) = vif.mtu() {
            // a bridge's MTU follows its ports; only raise a fresh, empty bridge's
            if nl.ports_of(br.index).await?.is_empty() && br.mtu.is_some_and(|m| m < mtu) {
                nl.set_mtu(br.index, &bridge, mtu).await?;
            }
        }
        let (tap, _) = ensure_container_veth(&nl, vif).await?;
        nl.set_master(tap, &vif.tap_name(), br.index).await?;
        nl.set_up(tap, &vif.tap_name()).await?;
        info!(instance_uuid, vif = %vif.id, bridge, "VIF plugged into Linux bridge");
        Ok(())
    }

    async fn attach(
        &self,
        instance_uuid: &str,
        vif: &Vif,
        ifname: &str,
        pid: u32,
    ) -> Result<(), NetworkError> {
        attach_veth(self, instance_uuid, vif, ifname, pid).await
    }

    async fn detach(
        &self,
        _instance_uuid: &str,
        vif: &Vif,
        pid: Option<u32>,
    ) -> Result<(), NetworkError> {
        detach_veth(vif, pid).await
    }

    async fn unplug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError> {
        let nl = Netlink::connect()?;
        remove_container_veth(&nl, vif).await?;
        info!(instance_uuid, vif = %vif.id, "VIF unplugged from Linux bridge");
        Ok(())
    }
}

fn ovs_bridge(shared: &Shared, vif: &Vif) -> Result<String, NetworkError> {
    let b = vif
        .detail_str("bridge_name")
        .unwrap_or(&shared.cfg.ovs_bridge)
        .to_string();
    check_ifname(&b).map_err(|reason| NetworkError::InvalidVif {
        vif_id: vif.id.clone(),
        reason,
    })?;
    Ok(b)
}

fn external_ids<'a>(
    instance_uuid: &'a str,
    vif: &'a Vif,
    mac: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("iface-id", vif.iface_id()),
        ("iface-status", "active"),
        ("attached-mac", mac),
        ("vm-uuid", instance_uuid),
    ]
}

/// The VIF's bridge is on OVS's userspace datapath (Neutron's vif_details
/// say so, or the bridge we create is).
fn netdev_datapath(shared: &Shared, vif: &Vif) -> bool {
    vif.detail_str("datapath_type")
        .unwrap_or(&shared.cfg.ovs_datapath_type)
        == "netdev"
}

/// The container's veth is a port of the integration bridge.
pub struct OvsDriver {
    shared: Arc<Shared>,
}

#[async_trait]
impl VifDriver for OvsDriver {
    fn name(&self) -> &'static str {
        "ovs"
    }

    async fn plug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError> {
        let bridge = ovs_bridge(&self.shared, vif)?;
        let mac = vif.address.clone().unwrap_or_default().to_ascii_lowercase();
        self.shared
            .ovs
            .ensure_bridge(&bridge, &self.shared.cfg.ovs_datapath_type)
            .await?;
        let nl = Netlink::connect()?;
        let (tap, fresh) = ensure_container_veth(&nl, vif).await?;
        if fresh && netdev_datapath(&self.shared, vif) {
            for dev in [vif.tap_name(), vif.ns_name()] {
                super::ethtool::checksum_offload_off(&dev)?;
            }
        }
        self.shared
            .ovs
            .replace_port(
                &bridge,
                &vif.tap_name(),
                &external_ids(instance_uuid, vif, &mac),
                vif.mtu(),
                fresh,
            )
            .await?;
        nl.set_up(tap, &vif.tap_name()).await?;
        info!(instance_uuid, vif = %vif.id, bridge, "VIF plugged into OVS");
        Ok(())
    }

    async fn attach(
        &self,
        instance_uuid: &str,
        vif: &Vif,
        ifname: &str,
        pid: u32,
    ) -> Result<(), NetworkError> {
        attach_veth(self, instance_uuid, vif, ifname, pid).await
    }

    async fn detach(
        &self,
        _instance_uuid: &str,
        vif: &Vif,
        pid: Option<u32>,
    ) -> Result<(), NetworkError> {
        detach_veth(vif, pid).await?;
        self.shared.ovs.del_port(&vif.tap_name()).await
    }

    async fn unplug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError> {
        self.shared.ovs.del_port(&vif.tap_name()).await?;
        let nl = Netlink::connect()?;
        remove_container_veth(&nl, vif).await?;
        info!(instance_uuid, vif = %vif.id, "VIF unplugged from OVS");
        Ok(())
    }
}

/// OVS hybrid plug (iptables firewall): tap on a per-VIF Linux bridge `qbr<id>`,
/// joined to the integration bridge by the veth pair `qvb<id>`/`qvo<id>`.
pub struct OvsHybridDriver {
    shared: Arc<Shared>,
}

#[async_trait]
impl VifDriver for OvsHybridDriver {
    fn name(&self) -> &'static str {
        "ovs_hybrid"
    }

    async fn plug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError> {
        let bridge = ovs_bridge(&self.shared, vif)?;
        let mac = vif.address.clone().unwrap_or_default().to_ascii_lowercase();
        let (qbr, qvb, qvo) = (vif.qbr_name(), vif.qvb_name(), vif.qvo_name());
        self.shared
            .ovs
            .ensure_bridge(&bridge, &self.shared.cfg.ovs_datapath_type)
            .await?;
        let nl = Netlink::connect()?;
        let br = nl.ensure_bridge(&qbr).await?;
        let qvo_is_new = nl.link(&qvb).await?.is_none() || nl.link(&qvo).await?.is_none();
        if qvo_is_new {
            nl.delete(&qvb).await?;
            nl.delete(&qvo).await?;
            nl.add_veth(&qvb, &qvo).await?;
        }
        for name in [&qvb, &qvo] {
            let l = nl.link(name).await?.ok_or_else(|| NetworkError::Netlink {
                op: format!("create veth {name}"),
                reason: "the new link is not there".into(),
            })?;
            if let Some(mtu) = vif.mtu() {
                nl.set_mtu(l.index, name, mtu).await?;
            }
            if name == &qvb && l.master != Some(br.index) {
                nl.set_master(l.index, name, br.index).await?;
            }
            nl.set_up(l.index, name).await?;
        }
        self.shared
            .ovs
            .replace_port(
                &bridge,
                &qvo,
                &external_ids(instance_uuid, vif, &mac),
                vif.mtu(),
                qvo_is_new,
            )
            .await?;
        let (tap, _) = ensure_container_veth(&nl, vif).await?;
        nl.set_master(tap, &vif.tap_name(), br.index).await?;
        nl.set_up(tap, &vif.tap_name()).await?;
        info!(instance_uuid, vif = %vif.id, bridge, qbr, "VIF plugged into OVS (hybrid)");
        Ok(())
    }

    async fn attach(
        &self,
        instance_uuid: &str,
        vif: &Vif,
        ifname: &str,
        pid: u32,
    ) -> Result<(), NetworkError> {
        attach_veth(self, instance_uuid, vif, ifname, pid).await
    }

    async fn detach(
        &self,
        _instance_uuid: &str,
        vif: &Vif,
        pid: Option<u32>,
    ) -> Result<(), NetworkError> {
        detach_veth(vif, pid).await
    }

    async fn unplug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError> {
        self.shared.ovs.del_port(&vif.qvo_name()).await?;
        let nl = Netlink::connect()?;
        remove_container_veth(&nl, vif).await?;
        nl.delete(&vif.qvo_name()).await?;
        nl.delete(&vif.qvb_name()).await?;
        nl.delete(&vif.qbr_name()).await?;
        info!(instance_uuid, vif = %vif.id, "VIF unplugged from OVS (hybrid)");
        Ok(())
    }
}

/// Clouds without Neutron: the container is created on a named Docker network
/// (`[docker] docker_network`) and Docker wires it; nothing to do per VIF.
pub struct DockerNetworkDriver {
    shared: Arc<Shared>,
}

#[async_trait]
impl VifDriver for DockerNetworkDriver {
    fn name(&self) -> &'static str {
        "docker"
    }
    async fn plug(&self, _: &str, _: &Vif) -> Result<(), NetworkError> {
        Ok(())
    }
    async fn attach(&self, _: &str, _: &Vif, _: &str, _: u32) -> Result<(), NetworkError> {
        Ok(())
    }
    async fn detach(&self, _: &str, _: &Vif, _: Option<u32>) -> Result<(), NetworkError> {
        Ok(())
    }
    async fn unplug(&self, _: &str, _: &Vif) -> Result<(), NetworkError> {
        Ok(())
    }
    fn network_mode(&self) -> String {
        self.shared.cfg.docker_network.clone()
    }
    fn manages_guest_files(&self) -> bool {
        false
    }
}

/// Does nothing: the container gets no interface but lo.
pub struct NoopDriver;

#[async_trait]
impl VifDriver for NoopDriver {
    fn name(&self) -> &'static str {
        "noop"
    }
    async fn plug(&self, _: &str, _: &Vif) -> Result<(), NetworkError> {
        Ok(())
    }
    async fn attach(&self, _: &str, _: &Vif, _: &str, _: u32) -> Result<(), NetworkError> {
        Ok(())
    }
    async fn detach(&self, _: &str, _: &Vif, _: Option<u32>) -> Result<(), NetworkError> {
        Ok(())
    }
    async fn unplug(&self, _: &str, _: &Vif) -> Result<(), NetworkError> {
        Ok(())
    }
    fn manages_guest_files(&self) -> bool {
        false
    }
}

/// The old `DockerGenericVIFDriver`: picks the driver from each VIF's `type`.
pub struct GenericDriver {
    bridge: BridgeDriver,
    ovs: OvsDriver,
    hybrid: OvsHybridDriver,
}

/// Which driver the generic driver uses for a VIF.
pub fn driver_for_type(vif: &Vif) -> Result<&'static str, NetworkError> {
    match vif.vif_type.as_deref().unwrap_or("") {
        "bridge" => Ok("bridge"),
        "ovs" | "agilio_ovs" if vif.ovs_hybrid_plug() => Ok("ovs_hybrid"),
        "ovs" | "agilio_ovs" => Ok("ovs"),
        other => Err(NetworkError::UnsupportedVifType {
            vif_id: vif.id.clone(),
            vif_type: other.to_string(),
        }),
    }
}

impl GenericDriver {
    fn pick(&self, vif: &Vif) -> Result<&dyn VifDriver, NetworkError> {
        Ok(match driver_for_type(vif)? {
            "bridge" => &self.bridge,
            "ovs_hybrid" => &self.hybrid,
            _ => &self.ovs,
        })
    }
}

#[async_trait]
impl VifDriver for GenericDriver {
    fn name(&self) -> &'static str {
        "generic"
    }
    async fn plug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError> {
        self.pick(vif)?.plug(instance_uuid, vif).await
    }
    async fn attach(
        &self,
        instance_uuid: &str,
        vif: &Vif,
        ifname: &str,
        pid: u32,
    ) -> Result<(), NetworkError> {
        self.pick(vif)?
            .attach(instance_uuid, vif, ifname, pid)
            .await
    }
    async fn detach(
        &self,
        instance_uuid: &str,
        vif: &Vif,
        pid: Option<u32>,
    ) -> Result<(), NetworkError> {
        match self.pick(vif) {
            Ok(d) => d.detach(instance_uuid, vif, pid).await,
            // a VIF whose binding failed may still have left an interface behind
            Err(e) => {
                warn!(vif = %vif.id, error = %e, "detaching a VIF of an unsupported type: removing its veth");
                detach_veth(vif, pid).await
            }
        }
    }
    async fn unplug(&self, instance_uuid: &str, vif: &Vif) -> Result<(), NetworkError> {
        match self.pick(vif) {
            Ok(d) => d.unplug(instance_uuid, vif).await,
            // destroy must not fail on a VIF we never plugged (binding_failed,
            // unbound): remove whatever could carry its name
            Err(e) => {
                warn!(vif = %vif.id, error = %e, "unplugging a VIF of an unsupported type: removing its devices");
                let nl = Netlink::connect()?;
                remove_container_veth(&nl, vif).await?;
                for l in [vif.qvo_name(), vif.qvb_name(), vif.qbr_name()] {
                    nl.delete(&l).await?;
                }
                Ok(())
            }
        }
    }
}

/// The driver `[docker] vif_driver` names.
pub fn make_driver(cfg: &NetworkConfig) -> Arc<dyn VifDriver> {
    use super::config::VifDriverKind as K;
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        ovs: Ovs::new(cfg.ovs_vsctl_timeout),
    });
    match cfg.vif_driver {
        K::Generic => Arc::new(GenericDriver {
            bridge: BridgeDriver {
                shared: shared.clone(),
            },
            ovs: OvsDriver {
                shared: shared.clone(),
            },
            hybrid: OvsHybridDriver { shared },
        }),
        K::Bridge => Arc::new(BridgeDriver { shared }),
        K::Ovs => Arc::new(OvsDriver { shared }),
        K::OvsHybrid => Arc::new(OvsHybridDriver { shared }),
        K::Docker => Arc::new(DockerNetworkDriver { shared }),
        K::Noop => Arc::new(NoopDriver),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_dispatch() {
        let mut v: Vif = serde_json::from_str(r#"{"id":"abcdef012345","type":"bridge"}"#).unwrap();
        assert_eq!(driver_for_type(&v).unwrap(), "bridge");
        v.vif_type = Some("ovs".into());
        assert_eq!(driver_for_type(&v).unwrap(), "ovs");
        v.details
            .insert("ovs_hybrid_plug".into(), serde_json::Value::Bool(true));
        assert_eq!(driver_for_type(&v).unwrap(), "ovs_hybrid");
        v.vif_type = Some("binding_failed".into());
        assert!(matches!(
            driver_for_type(&v),
            Err(NetworkError::UnsupportedVifType { .. })
        ));
    }

    #[test]
    fn network_modes() {
        let mut cfg = NetworkConfig::default();
        assert_eq!(make_driver(&cfg).network_mode(), "none");
        cfg.vif_driver = super::super::config::VifDriverKind::Docker;
        cfg.docker_network = "tenant-net".into();
        let d = make_driver(&cfg);
        assert_eq!(d.network_mode(), "tenant-net");
        assert!(!d.manages_guest_files());
    }

    #[test]
    fn bridge_names() {
        let v: Vif =
            serde_json::from_str(r#"{"id":"abcdef012345","network":{"id":"0123456789abcdef"}}"#)
                .unwrap();
        assert_eq!(BridgeDriver::bridge_name(&v).unwrap(), "brq0123456789a");
        let v: Vif =
            serde_json::from_str(r#"{"id":"abcdef012345","network":{"bridge":"br/x"}}"#).unwrap();
        assert!(BridgeDriver::bridge_name(&v).is_err());
    }
}
