//! Being a compute node: start-up registration (Service, ComputeNode, placement),
//! the heartbeat, resource reports, and keeping Nova's power states in step with
//! Docker, which is the truth.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::ops::PowerOp;
use super::ComputeManager;
use crate::clients::conductor::CallError;
use crate::clients::placement::{Inventory, TRAITS};
use crate::config::DefaultConfig;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{new_service, vm_state, Instance, NovaObject, SERVICE_VERSION};
use crate::virt::docker::{EventKind, HostResources};
use crate::virt::PowerState;

/// The node uuid, kept in `<state_path>/compute_id` like nova's, so that it
/// survives restarts (a new uuid would be a new node to Nova and placement).
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
    pub async fn wait_for_conductor(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), CallError> {
        let ctx = RequestContext::admin();
        let mut delay = Duration::from_secs(1);
        loop {
            match self.conductor.ping(&ctx, Duration::from_secs(10)).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    warn!(error = %e, "conductor did not answer the ping; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return Err(CallError::Transport("shutting down".into())),
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
    ) -> Result<(), crate::exception::NovaException> {
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
                    .map_err(|e| crate::exception::NovaException::internal(e.to_string()))?;
                n.reset_changes();
                self.fill_node(&mut n, &r, policy, host_ip);
                if !n.changes.is_empty() {
                    self.conductor
                        .object_action(&ctx, &mut n, "save", json!({}))
                        .await?;
                }
                n
            }
            Err(e) if e.is_remote("ComputeHostNotFound") => {
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
        self.publish_inventory(node_uuid, policy, &r).await
    }

    async fn publish_inventory(
        &self,
        node_uuid: &str,
        policy: &ResourcePolicy,
        r: &HostResources,
    ) -> Result<(), crate::exception::NovaException> {
        if let Some(p) = &self.placement {
            p.set_inventory_and_traits(node_uuid, &self.cfg.host, &policy.inventory(r), TRAITS)
                .await
                .map_err(|e| crate::exception::NovaException::internal(e.to_string()))?;
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

    /// Bring one instance's record in line with its container (the power-state
    /// sync): an ACTIVE instance whose container stopped or died becomes SHUTOFF.
    pub async fn sync_instance(&self, uuid: &str) {
        let lock = self.instance_lock(uuid);
        let _g = lock.lock().await;
        let ctx = RequestContext::admin();
        let mut inst = match self.conductor.instance_get(&ctx, uuid).await {
            Ok(i) => i,
            Err(e) => {
                debug!(instance = uuid, error = %e, "not syncing: instance not readable");
                return;
            }
        };
        self.sync_record(&ctx, &mut inst).await;
    }

    /// The power state of an instance's container (`NoState` when there is
    /// none); `None`, logged under `during`, when Docker cannot say.
    async fn container_state(&self, uuid: &str, during: &str) -> Option<PowerState> {
        match self.driver.get_info(uuid).await {
            Ok(i) => Some(i.state),
            Err(crate::virt::docker::DriverError::NotFound { .. }) => Some(PowerState::NoState),
            Err(e) => {
                warn!(instance = %uuid, error = %e, "{during}: cannot read the container");
                None
            }
        }
    }

    async fn sync_record(&self, ctx: &RequestContext, inst: &mut Instance) {
        if inst.host() != Some(self.cfg.host.as_str()) || inst.task_state().is_some() {
            return;
        }
        let uuid = inst.uuid().to_string();
        let Some(state) = self.container_state(&uuid, "power sync").await else {
            return;
        };
        let recorded = inst.power_state();
        let vm = inst.vm_state().unwrap_or_default().to_string();
        let stopped = matches!(
            state,
            PowerState::Shutdown | PowerState::Crashed | PowerState::NoState
        );
        if vm == vm_state::ACTIVE && stopped {
            info!(instance = %uuid, power_state = state.name(), "container stopped behind Nova's back: instance is now SHUTOFF");
            inst.set_power_state(state);
            inst.set_vm_state(vm_state::STOPPED);
            inst.set_task_state(None);
            if let Err(e) = self.conductor.instance_save(ctx, inst, Some(&[None])).await {
                warn!(instance = %uuid, error = %e, "power sync save failed");
            }
        } else if recorded != state.as_int() && vm != vm_state::BUILDING && vm != vm_state::DELETED
        {
            inst.set_power_state(state);
            if let Err(e) = self.conductor.instance_save(ctx, inst, Some(&[None])).await {
                warn!(instance = %uuid, error = %e, "power sync save failed");
            }
        }
    }

    /// Start-up, before RPC is served (Nova's `init_host` / `_init_instance`): an
    /// operation this service was doing when it stopped (a crash, a kill, a host
    /// reboot) left its task state behind, and Nova's API refuses every action on
    /// an instance with a task state. A build or rebuild that was cut off ends in
    /// ERROR with a fault; a delete, stop or start is carried out again; any other
    /// task state is dropped and the vm_state follows the container.
    ///
    /// Instances without a task state are synced as [`Self::sync_all`] does; one
    /// listing serves both.
    pub async fn start_up(&self) {
        let ctx = RequestContext::admin();
        let Some(list) = self.our_instances(&ctx).await else {
            return;
        };
        for mut inst in list {
            match inst.task_state().map(str::to_string) {
                Some(ts) if inst.host() == Some(self.cfg.host.as_str()) => {
                    self.init_instance(&ctx, inst, &ts).await
                }
                _ => {
                    let lock = self.instance_lock(inst.uuid());
                    let _g = lock.lock().await;
                    self.sync_record(&ctx, &mut inst).await;
                }
            }
        }
    }

    /// The instances Nova has on this host; `None` (logged) when it cannot say.
    async fn our_instances(&self, ctx: &RequestContext) -> Option<Vec<Instance>> {
        match self.conductor.instances_on_host(ctx, &self.cfg.host).await {
            Ok(l) => Some(l),
            Err(e) => {
                warn!(error = %e, "cannot list our instances");
                None
            }
        }
    }

    async fn init_instance(&self, ctx: &RequestContext, mut inst: Instance, ts: &str) {
        use crate::objects::task_state as t;
        let uuid = inst.uuid().to_string();
        info!(instance = %uuid, task_state = ts, "start-up: the operation in progress when the service stopped is resolved");
        let args = || {
            let mut m = serde_json::Map::new();
            m.insert("instance".into(), inst.to_primitive());
            m
        };
        let cut_off = |what: &str| {
            NovaException::internal(format!(
                "The compute service restarted while the instance was being {what}; the operation did not finish."
            ))
        };
        let building = inst.vm_state() == Some(vm_state::BUILDING)
            || [
                t::SCHEDULING,
                t::BLOCK_DEVICE_MAPPING,
                t::NETWORKING,
                t::SPAWNING,
            ]
            .contains(&ts);
        let rebuilding = [
            t::REBUILDING,
            t::REBUILD_BLOCK_DEVICE_MAPPING,
            t::REBUILD_SPAWNING,
        ]
        .contains(&ts);
        let op = match ts {
            t::POWERING_OFF => Some(PowerOp::Stop),
            t::POWERING_ON => Some(PowerOp::Start),
            _ => None,
        };
        if building || rebuilding {
            let lock = self.instance_lock(&uuid);
            let _g = lock.lock().await;
            let e = cut_off(if building { "built" } else { "rebuilt" });
            self.fail_instance(ctx, &mut inst, &e, true).await;
        } else if ts == t::DELETING {
            let _ = self.terminate_instance(ctx.clone(), args()).await;
        } else if let Some(op) = op {
            let _ = self.power_op(op, ctx.clone(), args()).await;
        } else {
            let lock = self.instance_lock(&uuid);
            let _g = lock.lock().await;
            let Some(state) = self.container_state(&uuid, "start-up").await else {
                return;
            };
            let vm = match state {
                PowerState::Running => vm_state::ACTIVE,
                PowerState::Paused => vm_state::PAUSED,
                PowerState::Suspended => vm_state::SUSPENDED,
                _ => vm_state::STOPPED,
            };
            // a soft-deleted instance stays soft-deleted
            if inst.vm_state() != Some(vm_state::SOFT_DELETED) || ts == t::RESTORING {
                inst.set_vm_state(vm);
            }
            inst.set_power_state(state);
            inst.set_task_state(None);
            if let Err(e) = self
                .conductor
                .instance_save(ctx, &mut inst, Some(&[Some(ts)]))
                .await
            {
                warn!(instance = %uuid, error = %e, "start-up: cannot clear the task state");
            }
        }
    }

    /// Sync every instance Nova has on this host (start-up and periodic backstop).
    pub async fn sync_all(&self) {
        let ctx = RequestContext::admin();
        let Some(list) = self.our_instances(&ctx).await else {
            return;
        };
        for mut inst in list {
            let lock = self.instance_lock(inst.uuid());
            let _g = lock.lock().await;
            self.sync_record(&ctx, &mut inst).await;
        }
    }

    /// Follow Docker's event stream: a container of ours that stops or dies is
    /// noticed within seconds (as libvirt's lifecycle events do for Nova).
    pub async fn watch_events(self: std::sync::Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let mut events = Box::pin(self.driver.events());
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    ev = events.next() => match ev {
                        Some(Ok(ev)) => {
                            if matches!(ev.kind, EventKind::Died | EventKind::Stopped | EventKind::Oom | EventKind::Destroyed) {
                                let me = self.clone();
                                tokio::spawn(async move {
                                    // let our own operation on it finish first
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                    me.sync_instance(&ev.uuid).await;
                                });
                            }
                        }
                        Some(Err(e)) => { warn!(error = %e, "docker event stream error"); break; }
                        None => break,
                    }
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            // events may have been missed while the stream was down
            self.sync_all().await;
        }
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
