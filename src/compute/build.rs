//! `build_and_run_instance`: the claim, then image, container options and
//! networking, then the container, with Nova's task states at each step.

use tracing::{info, warn};

use super::action::{Expect, OnFailure};
use super::request::BuildRequest;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{ImageMeta, Instance, TaskState, VmState};
use crate::virt::{split_command_line, split_hostname, InstanceInfo, InstanceSpec};

/// What a failed spawn still has to undo.
const SPAWN_CLEANUP_STOP: std::time::Duration = std::time::Duration::from_secs(1);

impl ComputeManager {
    /// build_and_run_instance (cast).
    ///
    /// | step                 | vm_state | task_state           | expected task state   |
    /// |----------------------|----------|----------------------|-----------------------|
    /// | start                | building | none                 | scheduling or none    |
    /// | claim (host, node)   | building | none                 | (not checked)         |
    /// | networks (ports bound, info cache saved) | building | networking | none       |
    /// | block devices        | building | block_device_mapping | (not checked)         |
    /// | spawn                | building | spawning             | block_device_mapping  |
    /// | done                 | active   | none                 | spawning              |
    ///
    /// A failure: a fault, host and node cleared, vm_state ERROR, the
    /// placement allocations removed, no container or VIF left, the ports made
    /// for it deleted (those the user gave unbound) and its info cache emptied. An instance
    /// deleted meanwhile is left to the delete. The outcome is in the instance
    /// record (a cast has no reply).
    pub async fn build_and_run_instance(
        &self,
        ctx: &RequestContext,
        req: BuildRequest,
    ) -> Result<(), NovaException> {
        let mut inst = req.instance.clone();
        let uuid = inst.uuid().to_string();
        let action = self.begin(ctx, &inst, "_do_build_and_run_instance").await;
        inst.set_vm_state(VmState::Building);
        inst.set_task_state(None);
        if let Err(e) = self
            .save(ctx, &mut inst, Expect::NoneOr(TaskState::Scheduling))
            .await
        {
            // deleted before the build, or not ours to build (a repeated message):
            // nothing was done, nothing to undo
            info!(instance = %uuid, error = %e, "not building");
            return action.end(ctx, &mut inst, Ok(()), OnFailure::Error).await;
        }
        info!(instance = %uuid, "building");
        let r = self.build_steps(ctx, &mut inst, &req).await;
        if r.as_ref().is_err_and(|e| !e.instance_gone()) {
            // `_nil_out_instance_obj_host_and_node`, saved with the error state
            inst.set_host_and_node(None, None);
        }
        if r.is_err() && !req.no_networks() {
            let requested = req.requested_networks.as_deref().unwrap_or_default();
            self.cleanup_allocated_networks(ctx, &mut inst, requested)
                .await;
        }
        let r = action.end(ctx, &mut inst, r, OnFailure::Error).await;
        if r.is_err() {
            self.remove_allocations(&uuid).await;
        }
        r
    }

    async fn build_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        req: &BuildRequest,
    ) -> Result<(), NovaException> {
        // the claim: the instance is ours
        let compute_id = self.node().map(|(id, _)| id);
        inst.set_host_and_node(Some(&self.cfg.host), compute_id);
        self.save(ctx, inst, Expect::Any).await?;
        inst.set_task_state(Some(TaskState::Networking));
        self.save(ctx, inst, Expect::Unset).await?;
        if !req.no_networks() {
            let requested = req.requested_networks.as_deref().unwrap_or_default();
            self.allocate_network(ctx, inst, requested, &req.security_groups)
                .await?;
        }
        inst.set_task_state(Some(TaskState::BlockDeviceMapping));
        self.save(ctx, inst, Expect::Any).await?;
        inst.set_task_state(Some(TaskState::Spawning));
        self.save(ctx, inst, Expect::One(TaskState::BlockDeviceMapping))
            .await?;
        let info = self.spawn_instance(ctx, inst, &req.image).await?;
        inst.set_power_state(info.state);
        inst.set_vm_state(VmState::Active);
        inst.set_task_state(None);
        inst.set_launched_at_now();
        self.save(ctx, inst, Expect::One(TaskState::Spawning))
            .await?;
        info!(instance = inst.uuid(), "instance is ACTIVE");
        Ok(())
    }

    /// Remove the placement allocations of an instance whose build failed (as
    /// Nova's `_locked_do_build_and_run_instance` does).
    pub(crate) async fn remove_allocations(&self, uuid: &str) {
        if let Some(p) = &self.placement {
            if let Err(e) = p.delete_allocations(uuid).await {
                warn!(instance = %uuid, error = %e, "could not remove the placement allocations");
            }
        }
    }

    /// The container spec of an instance, with its image made present.
    pub(crate) async fn instance_spec(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &ImageMeta,
        network_mode: Option<String>,
    ) -> Result<InstanceSpec, NovaException> {
        let uuid = inst.uuid();
        let image_id = image
            .id
            .clone()
            .or_else(|| inst.image_ref().map(str::to_string))
            .ok_or_else(|| NovaException::build_abort(uuid, "the instance has no image"))?;
        let unacceptable = |reason: String| {
            let e = NovaException::image_unacceptable(&image_id, reason);
            NovaException::build_abort(uuid, e.message)
        };
        if let Some(cf) = image.container_format.as_deref() {
            if cf != "docker" {
                return Err(unacceptable(format!(
                    "container_format is {cf:?}; the Docker driver boots only images with container_format \"docker\" (a `docker save` tarball)"
                )));
            }
        }
        let command = match image.os_command_line() {
            Some(c) => Some(
                split_command_line(c).map_err(|e| unacceptable(format!("image property {e}")))?,
            ),
            None => None,
        };
        // the options first: a refused user_data downloads no image
        let user_options = self.options.container_options(ctx, inst).await?;
        let local = self.images.ensure_image(ctx, &image_id).await?;
        let (hostname, domainname) = split_hostname(inst.hostname());
        Ok(InstanceSpec {
            uuid: uuid.to_string(),
            display_name: inst.display_name().to_string(),
            hostname,
            domainname,
            project_id: inst.project_id().to_string(),
            user_id: inst.user_id().to_string(),
            host: self.cfg.host.clone(),
            memory_mb: inst.memory_mb().max(0) as u64,
            vcpus: inst.vcpus().max(0) as u32,
            image: local,
            env: inst.metadata(),
            command,
            user_options,
            network_mode: network_mode.or_else(|| self.cfg.default_network.clone()),
            stop_timeout: self.cfg.shutdown_timeout,
        })
    }

    /// Host-side networking plugged and the spec ready. With `vifs_new` (a
    /// build: Neutron wires the ports when they are plugged), waiters for their
    /// `network-vif-plugged` are registered before the plug, and the image is
    /// made present while Neutron wires them. A rebuild's ports are plugged
    /// already and stay so (the veths move to the new container): no event
    /// comes, none is awaited. On failure the caller undoes the plug.
    pub(crate) async fn prepare_spawn(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &ImageMeta,
        vifs_new: bool,
    ) -> Result<InstanceSpec, NovaException> {
        let uuid = inst.uuid();
        let nw = inst.network_info();
        let expected = if vifs_new {
            nw.vif_plugged_events()
        } else {
            Vec::new()
        };
        let waits = self.events.expect(uuid, &expected);
        let r = async {
            let mode = self.network.plug(inst, nw).await?;
            let spec = self.instance_spec(ctx, inst, image, mode).await?;
            self.wait_for_events(uuid, waits).await?;
            Ok(spec)
        }
        .await;
        if r.is_err() {
            self.events.forget(uuid);
        }
        r
    }

    /// Plug, create, start and wire a new container. On any failure nothing is
    /// left of it.
    pub(crate) async fn spawn_instance(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &ImageMeta,
    ) -> Result<InstanceInfo, NovaException> {
        let uuid = inst.uuid();
        let nw = inst.network_info();
        let result = async {
            let spec = self.prepare_spawn(ctx, inst, image, true).await?;
            let info = self.driver.spawn(&spec).await?;
            if let Some(pid) = info.pid {
                self.network.attach(inst, nw, pid).await?;
            }
            Ok::<_, NovaException>(info)
        }
        .await;
        if result.is_err() {
            if let Err(e) = self.driver.destroy(uuid, SPAWN_CLEANUP_STOP).await {
                warn!(instance = uuid, error = %e, "cleanup after a failed spawn");
            }
            if let Err(e) = self.network.unplug(inst, nw).await {
                warn!(instance = uuid, error = %e, "network cleanup after a failed spawn");
            }
        }
        result
    }
}
