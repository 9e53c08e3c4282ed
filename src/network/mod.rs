//! Networking: VIF drivers that wire containers from Nova's network_info.
//!
//! The compute manager uses [`VifManager`]:
//! - at spawn: [`VifManager::network_mode`] for the container's `HostConfig.NetworkMode`
//!   (`none`, or a Docker network with the `docker` driver), then
//!   [`VifManager::plug_all`] (optional: attach plugs what is missing);
//! - after every container start (spawn, power_on, reboot, resume, unpause of a
//!   restarted container, host reboot, Docker daemon restart):
//!   [`VifManager::attach_all`] with the container's pid. The container's network
//!   namespace is new on every start; attaching is idempotent and re-plugs;
//! - at destroy: [`VifManager::unplug_all`] (after the container is gone, or with
//!   [`VifManager::detach_all`] first while it runs);
//! - interface hot plug: [`VifManager::attach_interface`] / [`VifManager::detach_interface`]
//!   (not reached through Nova yet: its `attach_interface` answers NotSupported).
//!
//! Interfaces are `eth0`, `eth1`, ... in network_info order.

pub mod config;
pub mod drivers;
pub mod ethtool;
pub mod guest;
pub mod model;
pub mod netlink;
pub mod neutron;
pub mod ovs;

use std::sync::Arc;

use serde_json::json;
use thiserror::Error;
use tracing::{info, warn};

pub use config::{NetworkConfig, VifDriverKind};
pub use drivers::{make_driver, VifDriver};
pub use guest::GuestInfo;
pub use model::{FixedIp, Ip, Network, NetworkInfo, Route, Subnet, Vif};

use crate::config::{ConfigError, Ini};
use crate::exception::{Class, NovaException};

#[derive(Debug, Error)]
pub enum NetworkError {
    #[error("invalid network_info: {0}")]
    InvalidNetworkInfo(String),
    #[error("invalid VIF {vif_id}: {reason}")]
    InvalidVif { vif_id: String, reason: String },
    #[error("VIF {vif_id}: unsupported VIF type {vif_type:?}")]
    UnsupportedVifType { vif_id: String, vif_type: String },
    #[error("netlink: {op}: {reason}")]
    Netlink { op: String, reason: String },
    #[error("network namespace of pid {pid}: {reason}")]
    Netns { pid: u32, reason: String },
    #[error("{command}: {reason}")]
    Ovs { command: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    GuestFile { path: String, reason: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("plugging VIF {vif_id} of instance {instance_uuid} failed: {source}")]
    PlugFailed {
        instance_uuid: String,
        vif_id: String,
        #[source]
        source: Box<NetworkError>,
    },
    #[error("unplugging VIF {vif_id} of instance {instance_uuid} failed: {source}")]
    UnplugFailed {
        instance_uuid: String,
        vif_id: String,
        #[source]
        source: Box<NetworkError>,
    },
    #[error("attaching VIF {vif_id} to instance {instance_uuid} failed: {source}")]
    AttachFailed {
        instance_uuid: String,
        vif_id: String,
        #[source]
        source: Box<NetworkError>,
    },
    #[error("detaching VIF {vif_id} from instance {instance_uuid} failed: {source}")]
    DetachFailed {
        instance_uuid: String,
        vif_id: String,
        #[source]
        source: Box<NetworkError>,
    },
}

impl From<NetworkError> for NovaException {
    fn from(e: NetworkError) -> Self {
        let message = e.to_string();
        match &e {
            NetworkError::AttachFailed { instance_uuid, .. } => NovaException::nova(
                Class::InterfaceAttachFailed,
                format!("Failed to attach network adapter device to {instance_uuid}"),
                json!({"instance_uuid": instance_uuid, "code": 500}),
            ),
            NetworkError::DetachFailed { instance_uuid, .. } => NovaException::nova(
                Class::InterfaceDetachFailed,
                format!("Failed to detach network adapter device from {instance_uuid}"),
                json!({"instance_uuid": instance_uuid, "code": 400}),
            ),
            NetworkError::UnplugFailed { .. } => NovaException::nova(
                Class::VirtualInterfaceUnplugException,
                format!("Failed to unplug virtual interface: {message}"),
                json!({"reason": message, "code": 500}),
            ),
            NetworkError::Config(_) => NovaException::internal(message),
            _ => NovaException::nova(
                Class::VirtualInterfacePlugException,
                message,
                json!({"code": 500}),
            ),
        }
    }
}

/// The facade the compute manager calls.
#[derive(Clone)]
pub struct VifManager {
    cfg: NetworkConfig,
    driver: Arc<dyn VifDriver>,
}

impl std::fmt::Debug for VifManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VifManager")
            .field("driver", &self.driver.name())
            .finish()
    }
}

impl VifManager {
    /// The driver `[docker] vif_driver` names, with the options of nova.conf.
    pub fn from_ini(ini: &Ini) -> Result<Self, NetworkError> {
        Ok(Self::new(NetworkConfig::from_ini(ini)?))
    }

    pub fn new(cfg: NetworkConfig) -> Self {
        let driver = make_driver(&cfg);
        VifManager { cfg, driver }
    }

    /// With another driver (a seam for tests of the callers).
    pub fn with_driver(cfg: NetworkConfig, driver: Arc<dyn VifDriver>) -> Self {
        VifManager { cfg, driver }
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }

    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    /// `HostConfig.NetworkMode` of a new container: `none` (we wire it), or the
    /// Docker network of the `docker` driver.
    pub fn network_mode(&self) -> String {
        self.driver.network_mode()
    }

    /// Host side of every VIF, before the container exists.
    pub async fn plug_all(&self, instance_uuid: &str, vifs: &[Vif]) -> Result<(), NetworkError> {
        for vif in vifs {
            let started = std::time::Instant::now();
            self.driver
                .plug(instance_uuid, vif)
                .await
                .map_err(|e| NetworkError::PlugFailed {
                    instance_uuid: instance_uuid.to_string(),
                    vif_id: vif.id.clone(),
                    source: Box::new(e),
                })?;
            crate::metrics::vif_plugged(self.driver.name(), started);
        }
        Ok(())
    }

    /// Wire every VIF into the running container of `pid` as eth0, eth1, ... and
    /// write its /etc/resolv.conf, /etc/hosts and /etc/hostname. Call after every
    /// start of the container; safe to call again on a wired container.
    pub async fn attach_all(
        &self,
        instance_uuid: &str,
        pid: u32,
        vifs: &[Vif],
        guest: &GuestInfo,
    ) -> Result<(), NetworkError> {
        for (i, vif) in vifs.iter().enumerate() {
            let ifname = model::ifname(i);
            self.driver
                .attach(instance_uuid, vif, &ifname, pid)
                .await
                .map_err(|e| NetworkError::PlugFailed {
                    instance_uuid: instance_uuid.to_string(),
                    vif_id: vif.id.clone(),
                    source: Box::new(e),
                })?;
        }
        if self.cfg.manage_etc_files && self.driver.manages_guest_files() {
            self.write_guest_files(pid, vifs, guest)?;
        }
        info!(
            instance_uuid,
            pid,
            vifs = vifs.len(),
            "instance networking attached"
        );
        Ok(())
    }

    /// /etc/resolv.conf, /etc/hosts and /etc/hostname of the container.
    pub fn write_guest_files(
        &self,
        pid: u32,
        vifs: &[Vif],
        guest: &GuestInfo,
    ) -> Result<(), NetworkError> {
        let domain = guest.domain.as_deref().or(self.cfg.dhcp_domain.as_deref());
        let servers = guest::nameservers(vifs, &self.cfg.default_nameservers);
        if !servers.is_empty() {
            guest::write_etc_file(
                pid,
                "resolv.conf",
                &guest::render_resolv_conf(&servers, domain),
            )?;
        }
        if !guest.hostname.is_empty() {
            guest::write_etc_file(
                pid,
                "hosts",
                &guest::render_hosts(vifs, &guest.hostname, domain),
            )?;
            guest::write_etc_file(pid, "hostname", &format!("{}\n", guest.hostname))?;
        }
        Ok(())
    }

    /// Take every VIF out of the container (of `pid` when it runs).
    pub async fn detach_all(
        &self,
        instance_uuid: &str,
        pid: Option<u32>,
        vifs: &[Vif],
    ) -> Result<(), NetworkError> {
        let mut first = None;
        for vif in vifs {
            if let Err(e) = self.driver.detach(instance_uuid, vif, pid).await {
                warn!(instance_uuid, vif = %vif.id, error = %e, "detach failed");
                first.get_or_insert(NetworkError::DetachFailed {
                    instance_uuid: instance_uuid.to_string(),
                    vif_id: vif.id.clone(),
                    source: Box::new(e),
                });
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Remove every host-side device and port of the instance. Goes through all
    /// VIFs even when one fails; the first failure is returned.
    pub async fn unplug_all(&self, instance_uuid: &str, vifs: &[Vif]) -> Result<(), NetworkError> {
        let mut first = None;
        for vif in vifs {
            if let Err(e) = self.driver.unplug(instance_uuid, vif).await {
                warn!(instance_uuid, vif = %vif.id, error = %e, "unplug failed");
                first.get_or_insert(NetworkError::UnplugFailed {
                    instance_uuid: instance_uuid.to_string(),
                    vif_id: vif.id.clone(),
                    source: Box::new(e),
                });
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Hot plug `vif` (already in `network_info`, Nova's list after the attach) into
    /// the instance; into the running container of `pid` as `eth<its index>`.
    pub async fn attach_interface(
        &self,
        instance_uuid: &str,
        pid: Option<u32>,
        vif: &Vif,
        network_info: &[Vif],
    ) -> Result<String, NetworkError> {
        let fail = |e: NetworkError| NetworkError::AttachFailed {
            instance_uuid: instance_uuid.to_string(),
            vif_id: vif.id.clone(),
            source: Box::new(e),
        };
        vif.validate().map_err(fail)?;
        let index = network_info
            .iter()
            .position(|v| v.id == vif.id)
            .unwrap_or(network_info.len());
        let mut ifname = model::ifname(index);
        self.driver.plug(instance_uuid, vif).await.map_err(fail)?;
        if let Some(pid) = pid {
            // after a hot unplug the running container's names no longer follow
            // network_info order: never take over another VIF's live interface
            let mac = vif.mac().map_err(fail)?;
            let links = netlink::in_netns(pid, |nl| async move { nl.links().await })
                .await
                .map_err(fail)?;
            let taken = |name: &str| {
                links
                    .iter()
                    .any(|l| l.name == name && l.mac.as_deref() != Some(&mac[..]))
            };
            if taken(&ifname) {
                if let Some(free) = (0..).map(model::ifname).find(|n| !taken(n)) {
                    ifname = free;
                }
            }
            self.driver
                .attach(instance_uuid, vif, &ifname, pid)
                .await
                .map_err(fail)?;
        }
        info!(instance_uuid, vif = %vif.id, ifname, "interface attached");
        Ok(ifname)
    }

    /// Hot unplug `vif` from the instance (and the running container of `pid`).
    pub async fn detach_interface(
        &self,
        instance_uuid: &str,
        pid: Option<u32>,
        vif: &Vif,
    ) -> Result<(), NetworkError> {
        let fail = |e: NetworkError| NetworkError::DetachFailed {
            instance_uuid: instance_uuid.to_string(),
            vif_id: vif.id.clone(),
            source: Box::new(e),
        };
        self.driver
            .detach(instance_uuid, vif, pid)
            .await
            .map_err(fail)?;
        self.driver.unplug(instance_uuid, vif).await.map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_nova_exceptions() {
        let inner = || {
            Box::new(NetworkError::Netlink {
                op: "x".into(),
                reason: "y".into(),
            })
        };
        let e: NovaException = NetworkError::AttachFailed {
            instance_uuid: "u1".into(),
            vif_id: "v".into(),
            source: inner(),
        }
        .into();
        assert_eq!(e.class, "InterfaceAttachFailed");
        assert_eq!(e.module, "nova.exception");
        assert_eq!(e.kwargs["instance_uuid"], "u1");
        let e: NovaException = NetworkError::DetachFailed {
            instance_uuid: "u1".into(),
            vif_id: "v".into(),
            source: inner(),
        }
        .into();
        assert_eq!(e.class, "InterfaceDetachFailed");
        let e: NovaException = NetworkError::PlugFailed {
            instance_uuid: "u1".into(),
            vif_id: "v".into(),
            source: inner(),
        }
        .into();
        assert_eq!(e.class, "VirtualInterfacePlugException");
        assert!(e.message.contains("netlink: x: y"), "{}", e.message);
        let e: NovaException = NetworkError::UnplugFailed {
            instance_uuid: "u1".into(),
            vif_id: "v".into(),
            source: inner(),
        }
        .into();
        assert_eq!(e.class, "VirtualInterfaceUnplugException");
        assert!(e.kwargs.contains_key("reason"));
    }

    #[test]
    fn from_ini_picks_the_driver() {
        let mut ini = Ini::default();
        ini.merge_text(
            "[docker]\nvif_driver = noop\n",
            std::path::Path::new("nova.conf"),
        )
        .unwrap();
        let m = VifManager::from_ini(&ini).unwrap();
        assert_eq!(m.driver_name(), "noop");
        assert_eq!(m.network_mode(), "none");
        let m = VifManager::from_ini(&Ini::default()).unwrap();
        assert_eq!(m.driver_name(), "generic");
    }
}
