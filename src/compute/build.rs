//! `build_and_run_instance`: the claim, then image, container options and
//! networking, then the container, with Nova's task states at each step.

use tracing::{info, warn};

use super::action::{Expect, OnFailure};
use super::request::BuildRequest;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{ImageMeta, Instance, TaskState, VmState};
use crate::virt::{split_command_line, split_hostname, DriverError, InstanceInfo, InstanceSpec};

/// What a failed spawn still has to undo.
const SPAWN_CLEANUP_STOP: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the removal of a failed build's container waits for an engine
/// that does not answer (a restart takes seconds).
const CLEANUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

impl ComputeManager {
    /// build_and_run_instance (cast).
    ///
    /// | step                 | vm_state | task_state           | expected task state   |
    /// |----------------------|----------|----------------------|-----------------------|
    /// | start, claim (host, node) | building | none            | scheduling or none    |
    /// | networks (ports bound, info cache saved) | building | networking | none       |
    /// | block devices        | building | block_device_mapping | (not checked)         |
    /// | spawn                | building | spawning             | block_device_mapping  |
    /// | done                 | active   | none                 | spawning              |
    ///
    /// The container is made while the records are, from the claim on (a
    /// claim that fails removes what it made): with no ports, it is
    /// started by the time `spawning` is saved; with ports, it starts once they
    /// are plugged, and ACTIVE waits for their `network-vif-plugged` (see
    /// `spawn_wired`). ACTIVE means the container was started, not that its
    /// command still runs: one that exits is stopped by the power sync, with a
    /// fault.
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
        if ctx.delivery.redelivered && !self.never_claimed(ctx, &uuid).await {
            info!(instance = %uuid, "a build delivered again after a crash was claimed before: not building it again");
            return Ok(());
        }
        inst.set_vm_state(VmState::Building);
        inst.set_task_state(None);
        // the claim (Nova saves host and node right after this save; one save
        // does both): the instance is ours
        let compute_id = self.node().map(|(id, _)| id);
        inst.set_host_and_node(Some(&self.cfg.host), compute_id);
        // The container side (options, image and, with no ports to wait for, the
        // container itself) starts with the claim, beside Nova's records after it.
        let snapshot = inst.clone();
        let claim_and_records = async {
            let (action, claimed) = self
                .begin_with(
                    ctx,
                    &uuid,
                    "_do_build_and_run_instance",
                    self.save(ctx, &mut inst, Expect::NoneOr(TaskState::Scheduling)),
                )
                .await;
            if let Err(e) = claimed {
                return (action, Err(e));
            }
            // claimed: from here a crash is resolved by the next start-up
            // (ERROR), so the broker may forget the message
            ctx.delivery.started();
            info!(instance = %uuid, "building");
            action.notify_start(ctx, &inst).await;
            let records = self.build_records(ctx, &mut inst, &req).await;
            (action, Ok(records))
        };
        // Nova's `_build_semaphore` (max_concurrent_builds): the work on the
        // host waits for a slot, held to the build's end; the claim does not,
        // so the message is acknowledged (a crash while it waits is resolved
        // at start-up, as for any claimed build) and the broker's prefetch
        // window never fills with waiting builds ahead of the
        // network-vif-plugged events the running ones wait for
        let launch = async {
            let slot = match &self.build_slots {
                Some(s) => s.acquire().await.ok(),
                None => None,
            };
            let launch = self
                .prepare_container(ctx, &snapshot, &req.image, req.no_networks())
                .await;
            (slot, launch)
        };
        let ((action, claimed), (_slot, launch)) = tokio::join!(claim_and_records, launch);
        let records = match claimed {
            Ok(records) => records,
            Err(e) => {
                // deleted before the build, or not ours to build (a repeated
                // message): what this attempt made goes, nothing else (a
                // container of that name it could not make is not its own)
                info!(instance = %uuid, error = %e, "not building");
                if matches!(launch, Ok(Launch::Started(_))) {
                    self.undo_spawn(&inst).await;
                }
                return action
                    .without_notification()
                    .end(ctx, &mut inst, Ok(()), OnFailure::Error)
                    .await;
            }
        };
        let r = self.finish_build(ctx, &mut inst, records, launch).await;
        if r.as_ref().is_err_and(|e| !e.instance_gone()) {
            // `_nil_out_instance_obj_host_and_node`, saved with the error state
            inst.set_host_and_node(None, None);
        }
        if r.is_err() && !req.no_networks() {
            let requested = req.requested_networks.as_deref().unwrap_or_default();
            self.cleanup_allocated_networks(ctx, &mut inst, requested)
                .await;
        }
        if let Err(e) = &r {
            match req.retry.decide(e) {
                Ok(()) => return self.reschedule(ctx, action, &mut inst, &req.retry, e).await,
                Err(why) if !e.instance_gone() => {
                    info!(instance = %uuid, reason = ?why, "the failed build is not rescheduled")
                }
                Err(_) => {}
            }
        }
        let r = action.end(ctx, &mut inst, r, OnFailure::Error).await;
        if r.is_err() {
            self.remove_allocations(&uuid).await;
        }
        r
    }

    /// A build that failed here for a reason of this host, with alternates
    /// left (see [`super::reschedule`]); what it made here is undone already
    /// (container, VIFs, host and node cleared, the ports it made deleted).
    /// As Nova's `_do_build_and_run_instance`: the instance back to
    /// `scheduling`, its allocations on this host removed (the conductor
    /// claims the alternate's), then `build_instances` to the conductor. When
    /// that cannot be done, the build ends in ERROR with this host's fault.
    async fn reschedule(
        &self,
        ctx: &RequestContext,
        action: super::action::Action<'_>,
        inst: &mut Instance,
        retry: &super::reschedule::Retry,
        e: &NovaException,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        warn!(instance = %uuid, attempt = retry.attempt(), error = %e,
            "the build failed on this host: rescheduling it to another");
        inst.set_task_state(Some(TaskState::Scheduling));
        let saved = self.save(ctx, inst, Expect::Any).await;
        self.remove_allocations(&uuid).await;
        let r = match saved {
            Ok(()) => self
                .conductor
                .build_instances(ctx, retry.build_instances_args(inst, e))
                .await
                .map_err(|ce| {
                    warn!(instance = %uuid, error = %ce, "could not hand the build back to the conductor");
                    e.clone()
                }),
            Err(se) if se.instance_gone() => Err(se),
            Err(se) => {
                warn!(instance = %uuid, error = %se, "could not save the instance for the reschedule");
                Err(e.clone())
            }
        };
        match r {
            Ok(()) => {
                crate::metrics::build_rescheduled();
                action.end_rescheduled(ctx, inst, e).await;
                Ok(())
            }
            Err(e) => action.end(ctx, inst, Err(e), OnFailure::Error).await,
        }
    }

    /// The build once Nova's records and the container side are done: the
    /// container started (and wired) if it is not yet, then ACTIVE. Any failure
    /// before ACTIVE leaves no container and no VIF.
    async fn finish_build(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        records: Result<(), NovaException>,
        launch: Result<Launch, NovaException>,
    ) -> Result<(), NovaException> {
        let started = match (records, launch) {
            (Ok(()), Ok(Launch::Started(info))) => Ok(info),
            (Ok(()), Ok(Launch::Ready(spec))) => self.spawn_wired(ctx, inst, *spec).await,
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        };
        let info = match started {
            Ok(info) => info,
            Err(e) => {
                self.undo_spawn(inst).await;
                return Err(e);
            }
        };
        inst.set_power_state(info.state);
        inst.set_vm_state(VmState::Active);
        inst.set_task_state(None);
        inst.set_launched_at_now();
        if let Err(e) = self.save(ctx, inst, Expect::One(TaskState::Spawning)).await {
            // not recorded ACTIVE (the conductor did not answer, say): the build
            // fails, and its container does not outlive it
            self.undo_spawn(inst).await;
            return Err(e);
        }
        info!(instance = inst.uuid(), "instance is ACTIVE");
        Ok(())
    }

    /// Whether a build's instance is still as the conductor made it: not
    /// claimed by any host, building, not being deleted (a redelivered message
    /// whose first life got that far is not built twice).
    async fn never_claimed(&self, ctx: &RequestContext, uuid: &str) -> bool {
        match self.conductor.instance_get(ctx, uuid).await {
            Ok(cur) => {
                cur.host().is_none()
                    && cur.vm_state() == Some(VmState::Building)
                    && matches!(cur.task_state(), None | Some(TaskState::Scheduling))
            }
            Err(e) => {
                info!(instance = uuid, error = %e, "the instance of a redelivered build cannot be read");
                false
            }
        }
    }

    /// Nova's records of a build up to spawning: the task states and, between
    /// them, the ports bound and the info cache saved.
    async fn build_records(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        req: &BuildRequest,
    ) -> Result<(), NovaException> {
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
            .await
    }

    /// The container's spec with its image present; with `start`, the
    /// container created and started too.
    async fn prepare_container(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &ImageMeta,
        start: bool,
    ) -> Result<Launch, NovaException> {
        let spec = self.instance_spec(ctx, inst, image, None).await?;
        if !start {
            return Ok(Launch::Ready(Box::new(spec)));
        }
        Ok(Launch::Started(
            self.spawn_container(ctx, inst, &spec).await?,
        ))
    }

    /// Plug the instance's ports, then start its container and wire it: while
    /// Neutron wires the ports (`start_before_vif_plugged`), waiting for their
    /// `network-vif-plugged` only before ACTIVE, or after the events came. The
    /// waiters are registered before the plug, which causes the events.
    pub(crate) async fn spawn_wired(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        mut spec: InstanceSpec,
    ) -> Result<InstanceInfo, NovaException> {
        let uuid = inst.uuid();
        let nw = inst.network_info();
        let waits = self.events.expect(uuid, &nw.vif_plugged_events());
        let r = async {
            if let Some(mode) = self.network.plug(inst, nw).await? {
                spec.network_mode = Some(mode);
            }
            if self.cfg.start_before_vif_plugged {
                let info = self.start_wired(ctx, inst, &spec).await?;
                self.wait_for_events(uuid, waits).await?;
                Ok(info)
            } else {
                self.wait_for_events(uuid, waits).await?;
                self.start_wired(ctx, inst, &spec).await
            }
        }
        .await;
        if r.is_err() {
            self.events.forget(uuid);
        }
        r
    }

    /// The instance's container made from `image`, an image other than its
    /// own (its shelved image, the one that carried it from another host),
    /// and wired as a build's. Meanwhile its `image_ref` is that image's, so
    /// that an image the engine lost is made present again from it; the
    /// instance keeps its own afterwards.
    pub(crate) async fn spawn_from(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        image: &ImageMeta,
    ) -> Result<InstanceInfo, NovaException> {
        let own = inst.image_ref().map(str::to_string);
        if let Some(id) = &image.id {
            inst.set_image_ref(id);
        }
        let made = async {
            let spec = self.instance_spec(ctx, inst, image, None).await?;
            self.spawn_wired(ctx, inst, spec).await
        }
        .await;
        if let Some(r) = &own {
            inst.set_image_ref(r);
        }
        made
    }

    /// Create and start the container, and wire it when it runs.
    async fn start_wired(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        spec: &InstanceSpec,
    ) -> Result<InstanceInfo, NovaException> {
        let info = self.spawn_container(ctx, inst, spec).await?;
        if let Some(pid) = info.pid {
            self.network.attach(inst, inst.network_info(), pid).await?;
        }
        Ok(info)
    }

    /// Create and start the container of `spec`. An image the engine lost
    /// since it was last made present (removed by hand; the image service
    /// remembers what it made present) is made present again, once.
    async fn spawn_container(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        spec: &InstanceSpec,
    ) -> Result<InstanceInfo, NovaException> {
        match self.driver.spawn(spec).await {
            Err(DriverError::ImageNotFound { image }) => {
                let Some(image_id) = inst.image_ref().filter(|r| !r.is_empty()) else {
                    return Err(DriverError::ImageNotFound { image }.into());
                };
                info!(instance = inst.uuid(), image = %image, "the engine lost the image: making it present again");
                self.images.forget(image_id);
                let image = self.images.ensure_image(ctx, image_id).await?;
                let again = InstanceSpec {
                    image,
                    ..spec.clone()
                };
                Ok(self.driver.spawn(&again).await?)
            }
            r => Ok(r?),
        }
    }

    /// What a failed build still has to undo on the host: its container and
    /// its VIFs (both idempotent; the ports are the caller's).
    /// When the engine does not answer (a build cut off by an engine
    /// restart), the container's removal is tried again until it does, for up
    /// to [`CLEANUP_PATIENCE`]: the build ends in ERROR only after, with no
    /// container left behind.
    pub(crate) async fn undo_spawn(&self, inst: &Instance) {
        let uuid = inst.uuid();
        let t = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(500);
        loop {
            match self.driver.destroy(uuid, SPAWN_CLEANUP_STOP).await {
                Ok(()) => break,
                Err(e) if e.is_unreachable() && t.elapsed() < CLEANUP_PATIENCE => {
                    info!(instance = uuid, error = %e, retry_in = ?wait,
                        "cleanup after a failed spawn: the engine does not answer; trying again");
                    if !self.tasks.sleep(wait).await {
                        break;
                    }
                    wait = (wait * 2).min(std::time::Duration::from_secs(10));
                }
                Err(e) => {
                    warn!(instance = uuid, error = %e, "cleanup after a failed spawn");
                    break;
                }
            }
        }
        if let Err(e) = self.network.unplug(inst, inst.network_info()).await {
            warn!(instance = uuid, error = %e, "network cleanup after a failed spawn");
        }
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

    /// The container of an instance made again and started, from the
    /// instance's image with its options (the instance as stored: its
    /// system_metadata keeps the image's properties): for a container that
    /// vanished behind Nova's back (`docker rm`, an engine whose data was
    /// lost), as libvirt's hard reboot defines a missing domain again. Its
    /// ports are plugged; the caller wires the running container
    /// ([`Self::rewire`]).
    pub(crate) async fn recreate_container(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
    ) -> Result<InstanceInfo, NovaException> {
        let uuid = inst.uuid();
        let stored = self.conductor.instance_get(ctx, uuid).await?;
        let image = ImageMeta::from_system_metadata(stored.image_ref(), &stored.system_metadata());
        info!(instance = uuid, image = ?image.id, "the instance's container is gone: making it again from its image");
        let mode = self.network.plug(inst, inst.network_info()).await?;
        let spec = self.instance_spec(ctx, &stored, &image, mode).await?;
        self.spawn_container(ctx, &stored, &spec)
            .await
            .inspect_err(|e| {
                warn!(instance = uuid, error = %e, "the container could not be made again");
            })
    }

    /// The spec of a container replacing the instance's own (a rebuild): its
    /// ports are plugged already and stay so (the veths move to the new
    /// container); no `network-vif-plugged` comes, none is awaited.
    pub(crate) async fn respawn_spec(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &ImageMeta,
    ) -> Result<InstanceSpec, NovaException> {
        let mode = self.network.plug(inst, inst.network_info()).await?;
        self.instance_spec(ctx, inst, image, mode).await
    }
}

/// The container side of a build when Nova's records are ready.
enum Launch {
    /// Created and started (a build with no ports to wait for).
    Started(InstanceInfo),
    /// Its spec, with the image present: it starts once its ports are plugged.
    Ready(Box<InstanceSpec>),
}
