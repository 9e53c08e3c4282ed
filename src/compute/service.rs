//! Being a compute node: start-up registration (Service, ComputeNode,
//! placement), the heartbeat and the resource reports.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{info, warn};

use super::ComputeManager;
use crate::clients::conductor::CallError;
use crate::clients::placement::{Inventory, TRAITS};
use crate::config::DefaultConfig;
use crate::context::RequestContext;
use crate::exception::{Class, NovaException};
use crate::objects::{new_service, NovaObject, SERVICE_VERSION};
use crate::virt::HostResources;

/// The node uuid, kept in `<state_path>/compute_id` like nova's, so that it
/// survives restarts (a new uuid would be a new node to Nova and placement).
/// Blocking: call it off the async workers.
pub fn node_uuid(state_path: &Path) -> std::io::Result<String> {
    let f = state_path.join("compute_id");
    match std::fs::read_to_string(&f) {
        Ok(s) if uuid::Uuid::parse_str(s.trim()).is_ok() => Ok(s.trim().to_string()),
        Ok(s) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} holds {:?}, not a uuid", f.display(), s.trim()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(state_path)?;
            let u = uuid::Uuid::new_v4().to_string();
            let tmp = state_path.join("compute_id.tmp");
            std::fs::write(&tmp, format!("{u}\n"))?;
            std::fs::rename(&tmp, &f)?;
            Ok(u)
        }
        Err(e) => Err(e),
    }
}

/// Allocation ratios and reserved amounts from nova.conf, as Nova computes them.
#[derive(Debug, Clone)]
pub struct ResourcePolicy {
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub reserved_host_memory_mb: i64,
    pub reserved_host_disk_gb: i64,
    pub reserved_host_cpus: i64,
}

impl ResourcePolicy {
    pub fn from_config(d: &DefaultConfig) -> Self {
        ResourcePolicy {
            cpu_allocation_ratio: d
                .cpu_allocation_ratio
                .unwrap_or(d.initial_cpu_allocation_ratio),
            ram_allocation_ratio: d
                .ram_allocation_ratio
                .unwrap_or(d.initial_ram_allocation_ratio),
            disk_allocation_ratio: d
                .disk_allocation_ratio
                .unwrap_or(d.initial_disk_allocation_ratio),
            reserved_host_memory_mb: d.reserved_host_memory_mb,
            // nova rounds the reserved disk up to whole GB
            reserved_host_disk_gb: (d.reserved_host_disk_mb + 1023) / 1024,
            reserved_host_cpus: d.reserved_host_cpus,
        }
    }

    /// The placement inventory of a host.
    pub fn inventory(&self, r: &HostResources) -> Vec<(&'static str, Inventory)> {
        vec![
            (
                "VCPU",
                Inventory {
                    total: r.vcpus,
                    reserved: self.reserved_host_cpus,
                    max_unit: r.vcpus,
                    allocation_ratio: self.cpu_allocation_ratio,
                },
            ),
            (
                "MEMORY_MB",
                Inventory {
                    total: r.memory_mb,
                    reserved: self.reserved_host_memory_mb,
                    max_unit: r.memory_mb,
                    allocation_ratio: self.ram_allocation_ratio,
                },
            ),
            (
                "DISK_GB",
                Inventory {
                    total: r.local_gb,
                    reserved: self.reserved_host_disk_gb,
                    max_unit: r.local_gb,
                    allocation_ratio: self.disk_allocation_ratio,
                },
            ),
        ]
    }
}

impl ComputeManager {
    /// Ping the conductor until it answers (nova-compute waits the same way).
    pub async fn wait_for_conductor(&self) -> Result<(), CallError> {
        let ctx = RequestContext::admin();
        let mut delay = Duration::from_secs(1);
        loop {
            match self.conductor.ping(&ctx, Duration::from_secs(10)).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    warn!(error = %e, "conductor did not answer the ping; retrying");
                    if !self.tasks.sleep(delay).await {
                        return Err(CallError::Transport("shutting down".into()));
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Create or update our Service record; returns it.
    pub async fn register_service(&self) -> Result<NovaObject, CallError> {
        let ctx = RequestContext::admin();
        let found = self
            .conductor
            .object_class_action(
                &ctx,
                "Service",
                "get_by_host_and_binary",
                vec![json!(self.cfg.host), json!("nova-compute")],
                json!({}),
            )
            .await?;
        if found.is_null() {
            let mut s = new_service(&self.cfg.host, SERVICE_VERSION);
            self.conductor
                .object_action(&ctx, &mut s, "create", json!({}))
                .await?;
            info!(host = %self.cfg.host, id = s.get_i64("id"), "service record created");
            Ok(s)
        } else {
            let mut s = NovaObject::from_primitive_of(&found, "Service")?;
            s.reset_changes();
            if s.get_i64("version") != Some(SERVICE_VERSION) {
                s.set("version", json!(SERVICE_VERSION));
                self.conductor
                    .object_action(&ctx, &mut s, "save", json!({}))
                    .await?;
            }
            info!(host = %self.cfg.host, id = s.get_i64("id"), "service record found");
            Ok(s)
        }
    }

    fn fill_node(&self, n: &mut NovaObject, r: &HostResources, p: &ResourcePolicy, host_ip: &str) {
        let set = |n: &mut NovaObject, k: &str, v: Value| {
            if n.get(k) != Some(&v) {
                n.set(k, v);
            }
        };
        set(n, "vcpus", json!(r.vcpus));
        set(n, "memory_mb", json!(r.memory_mb));
        set(n, "local_gb", json!(r.local_gb));
        set(n, "vcpus_used", json!(r.vcpus_used));
        set(
            n,
            "memory_mb_used",
            json!(r.memory_mb_used + p.reserved_host_memory_mb),
        );
        set(n, "local_gb_used", json!(r.local_gb_used));
        set(
            n,
            "free_ram_mb",
            json!(r.memory_mb - r.memory_mb_used - p.reserved_host_memory_mb),
        );
        set(n, "free_disk_gb", json!(r.local_gb - r.local_gb_used));
        set(n, "disk_available_least", json!(r.disk_available_least));
        set(n, "running_vms", json!(r.running_vms));
        set(n, "current_workload", json!(0));
        set(n, "hypervisor_type", json!(r.hypervisor_type));
        set(n, "hypervisor_version", json!(r.hypervisor_version));
        set(n, "hypervisor_hostname", json!(r.hypervisor_hostname));
        set(n, "host_ip", json!(host_ip));
        set(n, "cpu_allocation_ratio", json!(p.cpu_allocation_ratio));
        set(n, "ram_allocation_ratio", json!(p.ram_allocation_ratio));
        set(n, "disk_allocation_ratio", json!(p.disk_allocation_ratio));
        set(n, "stats", json!({}));
        let arch = std::env::consts::ARCH;
        set(
            n,
            "cpu_info",
            json!(
                json!({"arch": arch, "vendor": "", "model": "", "features": [],
                         "topology": {"sockets": 1, "cores": r.vcpus, "threads": 1}})
                .to_string()
            ),
        );
        if n.get("supported_hv_specs").is_none() {
            n.set(
                "supported_hv_specs",
                json!([{"nova_object.name": "HVSpec", "nova_object.namespace": "nova",
                        "nova_object.version": "1.2",
                        "nova_object.data": {"arch": arch, "hv_type": "docker", "vm_mode": "exe"},
                        "nova_object.changes": ["arch", "hv_type", "vm_mode"]}]),
            );
        }
    }

    /// Create or update our ComputeNode and publish it to placement.
    pub async fn register_node(
        &self,
        service_id: i64,
        node_uuid: &str,
        policy: &ResourcePolicy,
        host_ip: &str,
    ) -> Result<(), NovaException> {
        let ctx = RequestContext::admin();
        let mut r = self.driver.host_resources().await?;
        r.hypervisor_hostname = self.cfg.host.clone();
        let existing = self
            .conductor
            .object_class_action(
                &ctx,
                "ComputeNode",
                "get_by_uuid",
                vec![json!(node_uuid)],
                json!({}),
            )
            .await;
        let mut node = match existing {
            Ok(v) => {
                let mut n = NovaObject::from_primitive_of(&v, "ComputeNode")
                    .map_err(|e| NovaException::internal(e.to_string()))?;
                n.reset_changes();
                self.fill_node(&mut n, &r, policy, host_ip);
                if !n.changes.is_empty() {
                    self.conductor
                        .object_action(&ctx, &mut n, "save", json!({}))
                        .await?;
                }
                n
            }
            Err(e) if e.is_remote(Class::ComputeHostNotFound) => {
                let mut n = NovaObject::new("ComputeNode", "1.19");
                n.set("uuid", json!(node_uuid));
                n.set("host", json!(self.cfg.host));
                n.set("service_id", json!(service_id));
                n.set("numa_topology", Value::Null);
                self.fill_node(&mut n, &r, policy, host_ip);
                self.conductor
                    .object_action(&ctx, &mut n, "create", json!({}))
                    .await?;
                info!(
                    node = node_uuid,
                    id = n.get_i64("id"),
                    "compute node created"
                );
                n
            }
            Err(e) => return Err(e.into()),
        };
        node.reset_changes();
        self.set_node(node.get_i64("id").unwrap_or(0), node_uuid.to_string());
        // placement (or the Keystone behind it) being away for a moment must not
        // stop the service: the periodic resource update reports again
        if let Err(e) = self.publish_inventory(node_uuid, policy, &r).await {
            warn!(node = node_uuid, error = %e, "placement did not take the inventory; the periodic resource update tries again");
        }
        Ok(())
    }

    async fn publish_inventory(
        &self,
        node_uuid: &str,
        policy: &ResourcePolicy,
        r: &HostResources,
    ) -> Result<(), NovaException> {
        if let Some(p) = &self.placement {
            p.set_inventory_and_traits(node_uuid, &self.cfg.host, &policy.inventory(r), TRAITS)
                .await
                .map_err(|e| NovaException::internal(e.to_string()))?;
        }
        Ok(())
    }

    /// The periodic resource update: ComputeNode usage and placement inventory.
    pub async fn update_resources(&self, policy: &ResourcePolicy, host_ip: &str) {
        let Some((_, node_uuid)) = self.node() else {
            return;
        };
        let ctx = RequestContext::admin();
        let mut r = match self.driver.host_resources().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "could not read host resources");
                return;
            }
        };
        r.hypervisor_hostname = self.cfg.host.clone();
        match self
            .conductor
            .object_class_action(
                &ctx,
                "ComputeNode",
                "get_by_uuid",
                vec![json!(node_uuid)],
                json!({}),
            )
            .await
            .map_err(|e| e.to_string())
            .and_then(|v| {
                NovaObject::from_primitive_of(&v, "ComputeNode").map_err(|e| e.to_string())
            }) {
            Ok(mut n) => {
                n.reset_changes();
                self.fill_node(&mut n, &r, policy, host_ip);
                if !n.changes.is_empty() {
                    if let Err(e) = self
                        .conductor
                        .object_action(&ctx, &mut n, "save", json!({}))
                        .await
                    {
                        warn!(error = %e, "compute node save failed");
                    }
                }
            }
            Err(e) => warn!(error = %e, "could not read our compute node"),
        }
        if let Err(e) = self.publish_inventory(&node_uuid, policy, &r).await {
            warn!(error = %e, "placement inventory update failed");
        }
    }

    /// One heartbeat: `report_count += 1; service.save()`.
    pub async fn heartbeat(&self, service: &mut NovaObject) -> Result<(), CallError> {
        let n = service.get_i64("report_count").unwrap_or(0) + 1;
        service.set("report_count", json!(n));
        self.conductor
            .object_action(&RequestContext::admin(), service, "save", json!({}))
            .await?;
        service.reset_changes();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_uuid_is_created_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let a = node_uuid(d.path()).unwrap();
        let b = node_uuid(d.path()).unwrap();
        assert_eq!(a, b);
        std::fs::write(d.path().join("compute_id"), "garbage").unwrap();
        assert!(node_uuid(d.path()).is_err());
    }

    #[test]
    fn inventory_uses_ratios_and_reserved() {
        let mut ini = crate::config::Ini::default();
        ini.merge_text(
            "[DEFAULT]\nreserved_host_memory_mb = 256\nreserved_host_disk_mb = 1500\ncpu_allocation_ratio = 8.0\n",
            Path::new("n.conf"),
        )
        .unwrap();
        let p = ResourcePolicy::from_config(&DefaultConfig::from_ini(&ini).unwrap());
        let r = HostResources {
            vcpus: 2,
            vcpus_used: 0,
            memory_mb: 24000,
            memory_mb_used: 0,
            local_gb: 100,
            local_gb_used: 1,
            disk_available_least: 99,
            hypervisor_type: "docker".into(),
            hypervisor_version: 20010024,
            hypervisor_hostname: "h".into(),
            running_vms: 0,
            docker_root_dir: "/var/lib/docker".into(),
        };
        let inv = p.inventory(&r);
        assert_eq!(inv[0].1.allocation_ratio, 8.0);
        assert_eq!(inv[1].1.reserved, 256);
        assert_eq!(inv[2].1.reserved, 2);
        assert_eq!(inv[1].1.allocation_ratio, 1.0);
    }
}
