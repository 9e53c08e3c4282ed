//! The lifecycle operations after build: each one with the task state Nova's API
//! set, the driver call, the container's real state written back, and the
//! instance action event around it.

use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::build::instance_arg;
use super::{
    expect, now_value, ComputeManager, SnapshotKind, HARD_REBOOT_STATES, SOFT_REBOOT_STATES,
};
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{task_state, vm_state, Instance};
use crate::virt::{InstanceInfo, PowerState, RebootType};

/// A simple state transition: which driver call, the task state it completes,
/// and the vm_state it ends in.
#[derive(Debug, Clone, Copy)]
pub enum PowerOp {
    Stop,
    Start,
    Pause,
    Unpause,
    Suspend,
    Resume,
    SoftDelete,
    Restore,
}

impl PowerOp {
    fn event(self) -> &'static str {
        match self {
            PowerOp::Stop => "stop_instance",
            PowerOp::Start => "start_instance",
            PowerOp::Pause => "pause_instance",
            PowerOp::Unpause => "unpause_instance",
            PowerOp::Suspend => "suspend_instance",
            PowerOp::Resume => "resume_instance",
            PowerOp::SoftDelete => "soft_delete_instance",
            PowerOp::Restore => "restore_instance",
        }
    }

    /// The task state Nova's API set before casting.
    fn expected(self) -> &'static str {
        match self {
            PowerOp::Stop => task_state::POWERING_OFF,
            PowerOp::Start => task_state::POWERING_ON,
            PowerOp::Pause => task_state::PAUSING,
            PowerOp::Unpause => task_state::UNPAUSING,
            PowerOp::Suspend => task_state::SUSPENDING,
            PowerOp::Resume => task_state::RESUMING,
            PowerOp::SoftDelete => task_state::SOFT_DELETING,
            PowerOp::Restore => task_state::RESTORING,
        }
    }

    fn final_vm_state(self) -> &'static str {
        match self {
            PowerOp::Stop => vm_state::STOPPED,
            PowerOp::Pause => vm_state::PAUSED,
            PowerOp::Suspend => vm_state::SUSPENDED,
            PowerOp::SoftDelete => vm_state::SOFT_DELETED,
            PowerOp::Start | PowerOp::Unpause | PowerOp::Resume | PowerOp::Restore => {
                vm_state::ACTIVE
            }
        }
    }

    /// Whether the container's process (and network namespace) is new afterwards.
    fn starts(self) -> bool {
        matches!(self, PowerOp::Start | PowerOp::Resume | PowerOp::Restore)
    }
}

impl ComputeManager {
    async fn driver_power_op(
        &self,
        op: PowerOp,
        uuid: &str,
    ) -> Result<InstanceInfo, NovaException> {
        let t = self.cfg.shutdown_timeout;
        let r = match op {
            PowerOp::Stop => self.driver.power_off(uuid, t).await,
            PowerOp::Start => self.driver.power_on(uuid).await,
            PowerOp::Pause => self.driver.pause(uuid).await,
            PowerOp::Unpause => self.driver.unpause(uuid).await,
            PowerOp::Suspend => self.driver.suspend(uuid).await,
            PowerOp::Resume => self.driver.resume(uuid).await,
            PowerOp::SoftDelete => self.driver.soft_delete(uuid, t).await,
            PowerOp::Restore => self.driver.restore(uuid).await,
        };
        Ok(r?)
    }

    /// Re-plug and re-address the networking of a container that just started.
    async fn rewire(&self, inst: &Instance, info: &InstanceInfo) -> Result<(), NovaException> {
        if let Some(pid) = info.pid {
            let nw = inst.network_info_json();
            self.network.plug(inst, &nw).await?;
            self.network.attach(inst, &nw, pid).await?;
        }
        Ok(())
    }

    /// stop, start, pause, unpause, suspend, resume, soft delete, restore.
    pub async fn power_op(
        &self,
        op: PowerOp,
        ctx: RequestContext,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        let mut inst = instance_arg(&args)?;
        let uuid = inst.uuid().to_string();
        let lock = self.instance_lock(&uuid);
        let _g = lock.lock().await;
        let r = self
            .with_event(&ctx, &uuid, op.event(), async {
                let info = self.driver_power_op(op, &uuid).await?;
                if op.starts() {
                    self.rewire(&inst, &info).await?;
                }
                inst.set_power_state(info.state);
                inst.set_vm_state(op.final_vm_state());
                inst.set_task_state(None);
                self.conductor
                    .instance_save(&ctx, &mut inst, Some(&expect(&[op.expected()])))
                    .await?;
                info!(instance = %uuid, op = op.event(), power_state = info.state.name(), "done");
                Ok(())
            })
            .await;
        if let Err(e) = &r {
            self.fail_instance(&ctx, &mut inst, e, false).await;
            // stop is a call when the API asked with do_cast=False: the caller sees it
            if matches!(op, PowerOp::Stop) {
                return Err(e.clone());
            }
        }
        Ok(Value::Null)
    }

    /// reboot_instance: SOFT (graceful stop, start) or HARD (kill, start).
    pub async fn reboot_instance(
        &self,
        ctx: RequestContext,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        let mut inst = instance_arg(&args)?;
        let kind_s = args
            .get("reboot_type")
            .and_then(Value::as_str)
            .unwrap_or("SOFT");
        let kind = RebootType::parse(kind_s).unwrap_or(RebootType::Soft);
        let uuid = inst.uuid().to_string();
        let lock = self.instance_lock(&uuid);
        let _g = lock.lock().await;
        let (pending, started, allowed) = match kind {
            RebootType::Soft => (
                task_state::REBOOT_PENDING,
                task_state::REBOOT_STARTED,
                SOFT_REBOOT_STATES,
            ),
            RebootType::Hard => (
                task_state::REBOOT_PENDING_HARD,
                task_state::REBOOT_STARTED_HARD,
                HARD_REBOOT_STATES,
            ),
        };
        let r = self
            .with_event(&ctx, &uuid, "reboot_instance", async {
                let before = self.driver.get_info(&uuid).await?;
                inst.set_task_state(Some(pending));
                inst.set_power_state(before.state);
                self.conductor
                    .instance_save(&ctx, &mut inst, Some(&expect(allowed)))
                    .await?;
                inst.set_task_state(Some(started));
                self.conductor
                    .instance_save(&ctx, &mut inst, Some(&expect(&[pending])))
                    .await?;
                let info = self.driver.reboot(&uuid, kind).await?;
                self.rewire(&inst, &info).await?;
                inst.set_power_state(info.state);
                inst.set_vm_state(vm_state::ACTIVE);
                inst.set_task_state(None);
                self.conductor.instance_save(&ctx, &mut inst, None).await?;
                Ok(())
            })
            .await;
        if let Err(e) = &r {
            // nova: a failed reboot leaves the instance in ERROR
            self.fail_instance(&ctx, &mut inst, e, true).await;
        }
        Ok(Value::Null)
    }

    /// terminate_instance: container and networking gone, allocations removed,
    /// the instance record destroyed.
    pub async fn terminate_instance(
        &self,
        ctx: RequestContext,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        let mut inst = instance_arg(&args)?;
        let uuid = inst.uuid().to_string();
        let lock = self.instance_lock(&uuid);
        let _g = lock.lock().await;
        let r = self
            .with_event(&ctx, &uuid, "terminate_instance", async {
                let nw = inst.network_info_json();
                self.driver.destroy(&uuid, self.cfg.shutdown_timeout).await?;
                self.network.unplug(&inst, &nw).await?;
                inst.set_vm_state(vm_state::DELETED);
                inst.set_task_state(None);
                inst.set_power_state(PowerState::NoState);
                inst.set("terminated_at", now_value());
                self.conductor.instance_save(&ctx, &mut inst, None).await?;
                if let Some(p) = &self.placement {
                    if let Err(e) = p.delete_allocations(&uuid).await {
                        warn!(instance = %uuid, error = %e, "could not remove the placement allocations");
                    }
                }
                self.conductor.instance_destroy(&ctx, &mut inst).await?;
                info!(instance = %uuid, "deleted");
                Ok(())
            })
            .await;
        if let Err(e) = &r {
            if e.class != "InstanceNotFound" {
                self.fail_instance(&ctx, &mut inst, e, true).await;
            }
        }
        Ok(Value::Null)
    }

    /// snapshot_instance and backup_instance.
    pub async fn snapshot_instance(
        &self,
        ctx: RequestContext,
        args: Map<String, Value>,
        kind: SnapshotKind,
    ) -> Result<Value, NovaException> {
        let mut inst = instance_arg(&args)?;
        let image_id = args
            .get("image_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let uuid = inst.uuid().to_string();
        let lock = self.instance_lock(&uuid);
        let _g = lock.lock().await;
        let (event, first, expected) = match kind {
            SnapshotKind::Snapshot => (
                "snapshot_instance",
                task_state::IMAGE_SNAPSHOT,
                task_state::IMAGE_SNAPSHOT_PENDING,
            ),
            SnapshotKind::Backup { .. } => (
                "backup_instance",
                task_state::IMAGE_BACKUP,
                task_state::IMAGE_BACKUP,
            ),
        };
        let r = self
            .with_event(&ctx, &uuid, event, async {
                inst.set_task_state(Some(first));
                self.conductor
                    .instance_save(&ctx, &mut inst, Some(&[Some(expected), None]))
                    .await?;
                let info = self.driver.get_info(&uuid).await?;
                inst.set_power_state(info.state);
                inst.set_task_state(Some(task_state::IMAGE_PENDING_UPLOAD));
                self.conductor
                    .instance_save(&ctx, &mut inst, Some(&[Some(first)]))
                    .await?;
                inst.set_task_state(Some(task_state::IMAGE_UPLOADING));
                self.conductor
                    .instance_save(
                        &ctx,
                        &mut inst,
                        Some(&expect(&[task_state::IMAGE_PENDING_UPLOAD])),
                    )
                    .await?;
                self.images
                    .snapshot(&ctx, &inst, &image_id, kind.clone())
                    .await?;
                inst.set_task_state(None);
                self.conductor
                    .instance_save(
                        &ctx,
                        &mut inst,
                        Some(&expect(&[task_state::IMAGE_UPLOADING])),
                    )
                    .await?;
                Ok(())
            })
            .await;
        if let Err(e) = &r {
            self.fail_instance(&ctx, &mut inst, e, false).await;
        }
        Ok(Value::Null)
    }

    /// get_console_output (call).
    pub async fn get_console_output(
        &self,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        let inst = instance_arg(&args)?;
        let tail = args
            .get("tail_length")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map(|n| n as usize);
        let out = self.driver.get_console_output(inst.uuid(), tail).await?;
        Ok(json!(out))
    }

    /// get_instance_diagnostics (call): a Diagnostics object.
    pub async fn get_instance_diagnostics(
        &self,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        let inst = instance_arg(&args)?;
        let info = self.driver.get_info(inst.uuid()).await?;
        if info.state != PowerState::Running {
            return Err(NovaException::nova(
                "InstanceInvalidState",
                format!(
                    "Instance {} in power state {} cannot get_diagnostics while the instance is in this state.",
                    inst.uuid(),
                    info.state.name()
                ),
                json!({"attr": "power state", "instance_uuid": inst.uuid(),
                       "state": info.state.name(), "method": "get_diagnostics", "code": 409}),
            ));
        }
        let d = self.driver.get_diagnostics(inst.uuid()).await?;
        Ok(diagnostics_primitive(&d))
    }

    /// get_diagnostics (call): the legacy dict.
    pub async fn get_diagnostics(&self, args: Map<String, Value>) -> Result<Value, NovaException> {
        let inst = instance_arg(&args)?;
        let d = self.driver.get_legacy_diagnostics(inst.uuid()).await?;
        Ok(json!(d))
    }

    /// external_instance_event (cast): network-vif-plugged and friends, handed to
    /// whoever waits for them (a build waiting for its VIFs).
    pub async fn external_instance_event(
        &self,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        if let Some(Value::Array(events)) = args.get("events") {
            for e in events {
                let d = e.get("nova_object.data").unwrap_or(e);
                let f = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                let (instance, name, tag, status) =
                    (f("instance_uuid"), f("name"), f("tag"), f("status"));
                let waited = self.deliver_event(&instance, &name, &tag, &status);
                info!(
                    %instance,
                    %name,
                    %tag,
                    %status,
                    waited,
                    "external instance event"
                );
            }
        }
        Ok(Value::Null)
    }

    /// Any compute RPC the Docker driver does not support: the caller gets
    /// NotSupported; an instance it was about is not left in a task state.
    pub async fn unsupported(
        &self,
        ctx: RequestContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        let e = NovaException::not_supported(method.to_string());
        if let Ok(mut inst) = instance_arg(&args) {
            let uuid = inst.uuid().to_string();
            let lock = self.instance_lock(&uuid);
            let _g = lock.lock().await;
            let fail = e.clone();
            let _ = self
                .with_event(&ctx, &uuid, method, async { Err::<(), _>(fail) })
                .await;
            if inst.task_state().is_some() {
                self.fail_instance(&ctx, &mut inst, &e, false).await;
            } else if let Err(fe) = self
                .conductor
                .add_fault(&ctx, &uuid, &self.cfg.host, &e)
                .await
            {
                warn!(instance = %uuid, error = %fe, "could not record the fault");
            }
        }
        Err(e)
    }
}

/// nova.objects.diagnostics.Diagnostics as a primitive.
pub fn diagnostics_primitive(d: &crate::virt::docker::Diagnostics) -> Value {
    fn obj(name: &str, data: Value) -> Value {
        json!({"nova_object.name": name, "nova_object.namespace": "nova",
               "nova_object.version": "1.0", "nova_object.data": data})
    }
    let list = |name: &str, v: Value| -> Value {
        Value::Array(
            v.as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|x| obj(name, x))
                .collect(),
        )
    };
    let v = serde_json::to_value(d).unwrap_or(Value::Null);
    let mut data = v.as_object().cloned().unwrap_or_default();
    // Nova's HypervisorDriverField accepts only libvirt, xenapi, vmwareapi, ironic and
    // hyperv; any other value makes nova-api fail to read the reply. Docker is named in
    // `hypervisor` instead, which is a free string.
    data.insert("driver".into(), json!("libvirt"));
    data.insert("hypervisor".into(), json!("docker"));
    data.insert(
        "memory_details".into(),
        obj("MemoryDiagnostics", v["memory_details"].clone()),
    );
    data.insert(
        "cpu_details".into(),
        list("CpuDiagnostics", v["cpu_details"].clone()),
    );
    data.insert(
        "nic_details".into(),
        list("NicDiagnostics", v["nic_details"].clone()),
    );
    data.insert(
        "disk_details".into(),
        list("DiskDiagnostics", v["disk_details"].clone()),
    );
    obj("Diagnostics", Value::Object(data))
}
