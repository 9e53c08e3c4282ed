//! `build_and_run_instance` and `rebuild_instance`: image, container options,
//! networking, container, with Nova's task states at each step.

use std::time::Duration;

use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::{expect, now_value, ComputeManager};
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{task_state, vm_state, ImageMeta, Instance};
use crate::virt::docker::{split_command_line, InstanceSpec};

impl ComputeManager {
    /// The container spec of an instance, with its image already in Docker.
    async fn instance_spec(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &ImageMeta,
        network_mode: Option<String>,
    ) -> Result<InstanceSpec, NovaException> {
        let image_id = image
            .id
            .clone()
            .or_else(|| inst.image_ref().map(str::to_string))
            .ok_or_else(|| NovaException::build_abort(inst.uuid(), "the instance has no image"))?;
        if let Some(cf) = image.container_format.as_deref() {
            if cf != "docker" {
                return Err(NovaException::image_unacceptable(
                    &image_id,
                    format!("container_format is {cf:?}; the Docker driver boots only images with container_format \"docker\" (a `docker save` tarball)"),
                ));
            }
        }
        let user_options = self.options.container_options(ctx, inst).await?;
        let local = self.images.ensure_image(ctx, &image_id).await?;
        let command = match image.os_command_line() {
            Some(c) => Some(split_command_line(c).map_err(|e| {
                NovaException::image_unacceptable(&image_id, format!("image property {e}"))
            })?),
            None => None,
        };
        Ok(InstanceSpec {
            uuid: inst.uuid().to_string(),
            display_name: inst.display_name().to_string(),
            hostname: inst.hostname().to_string(),
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

    /// Create, start and wire the container. On any failure nothing is left behind.
    async fn spawn_instance(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image: &ImageMeta,
    ) -> Result<crate::virt::InstanceInfo, NovaException> {
        let nw = inst.network_info_json();
        let waits = self.expect_events(inst.uuid(), &self.network.expected_events(&nw));
        let mode = match self.network.plug(inst, &nw).await {
            Ok(m) => m,
            Err(e) => {
                // forget the waiters, then report
                let _ = self.wait_events(inst.uuid(), Vec::new()).await;
                return Err(e);
            }
        };
        let result = async {
            let spec = self.instance_spec(ctx, inst, image, mode).await?;
            self.wait_events(inst.uuid(), waits).await?;
            let info = self.driver.spawn(&spec).await?;
            if let Some(pid) = info.pid {
                self.network.attach(inst, &nw, pid).await?;
            }
            Ok::<_, NovaException>(info)
        }
        .await;
        if result.is_err() {
            if let Err(e) = self
                .driver
                .destroy(inst.uuid(), Duration::from_secs(1))
                .await
            {
                warn!(instance = inst.uuid(), error = %e, "cleanup after a failed spawn");
            }
            if let Err(e) = self.network.unplug(inst, &nw).await {
                warn!(instance = inst.uuid(), error = %e, "network cleanup after a failed spawn");
            }
        }
        result
    }

    /// build_and_run_instance (cast). Failures put the instance in ERROR with a fault.
    pub async fn build_and_run_instance(
        &self,
        ctx: RequestContext,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        let mut inst = instance_arg(&args)?;
        let image = args
            .get("image")
            .map(ImageMeta::from_value)
            .unwrap_or_default();
        let uuid = inst.uuid().to_string();
        let lock = self.instance_lock(&uuid);
        let _g = lock.lock().await;
        info!(instance = %uuid, "building");
        let r = self
            .with_event(&ctx, &uuid, "_do_build_and_run_instance", async {
                inst.set_vm_state(vm_state::BUILDING);
                inst.set_task_state(None);
                self.conductor
                    .instance_save(&ctx, &mut inst, Some(&[Some(task_state::SCHEDULING), None]))
                    .await?;
                self.do_build(&ctx, &mut inst, &image).await
            })
            .await;
        if let Err(e) = &r {
            if e.class != "UnexpectedDeletingTaskStateError" && e.class != "InstanceNotFound" {
                self.fail_instance(&ctx, &mut inst, e, true).await;
            }
        }
        // a cast: the outcome is in the instance record
        Ok(Value::Null)
    }

    async fn do_build(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        image: &ImageMeta,
    ) -> Result<(), NovaException> {
        // the claim: the instance is ours
        inst.set("host", json!(self.cfg.host));
        inst.set("node", json!(self.cfg.host));
        inst.set("launched_on", json!(self.cfg.host));
        if let Some((id, _)) = self.node() {
            inst.set("compute_id", json!(id));
        }
        self.conductor.instance_save(ctx, inst, None).await?;
        for (next, expected) in [
            (task_state::NETWORKING, None),
            (
                task_state::BLOCK_DEVICE_MAPPING,
                Some(task_state::NETWORKING),
            ),
            (task_state::SPAWNING, Some(task_state::BLOCK_DEVICE_MAPPING)),
        ] {
            inst.set_task_state(Some(next));
            self.conductor
                .instance_save(ctx, inst, Some(&[expected]))
                .await?;
        }
        let info = self.spawn_instance(ctx, inst, image).await?;
        inst.set_power_state(info.state);
        inst.set_vm_state(vm_state::ACTIVE);
        inst.set_task_state(None);
        inst.set("launched_at", now_value());
        self.conductor
            .instance_save(ctx, inst, Some(&expect(&[task_state::SPAWNING])))
            .await?;
        info!(instance = inst.uuid(), "instance is ACTIVE");
        Ok(())
    }

    /// rebuild_instance (cast, 6.x): the same instance on a new image.
    pub async fn rebuild_instance(
        &self,
        ctx: RequestContext,
        args: Map<String, Value>,
    ) -> Result<Value, NovaException> {
        let mut inst = instance_arg(&args)?;
        let image = match args.get("image_ref").and_then(Value::as_str) {
            Some(r) => ImageMeta {
                id: Some(r.to_string()),
                ..ImageMeta::default()
            },
            None => ImageMeta::default(),
        };
        let uuid = inst.uuid().to_string();
        let lock = self.instance_lock(&uuid);
        let _g = lock.lock().await;
        let r = self
            .with_event(&ctx, &uuid, "rebuild_instance", async {
                inst.set_task_state(Some(task_state::REBUILDING));
                self.conductor
                    .instance_save(&ctx, &mut inst, Some(&expect(&[task_state::REBUILDING])))
                    .await?;
                // the old container and its networking go; identity stays
                let nw = inst.network_info_json();
                self.driver
                    .destroy(&uuid, self.cfg.shutdown_timeout)
                    .await?;
                self.network.unplug(&inst, &nw).await?;
                inst.set_task_state(Some(task_state::REBUILD_BLOCK_DEVICE_MAPPING));
                self.conductor
                    .instance_save(&ctx, &mut inst, Some(&expect(&[task_state::REBUILDING])))
                    .await?;
                inst.set_task_state(Some(task_state::REBUILD_SPAWNING));
                self.conductor
                    .instance_save(
                        &ctx,
                        &mut inst,
                        Some(&expect(&[task_state::REBUILD_BLOCK_DEVICE_MAPPING])),
                    )
                    .await?;
                let image = Self::image_meta(&inst, image);
                let info = self.spawn_instance(&ctx, &inst, &image).await?;
                inst.set_power_state(info.state);
                inst.set_vm_state(vm_state::ACTIVE);
                inst.set_task_state(None);
                inst.set("launched_at", now_value());
                self.conductor
                    .instance_save(
                        &ctx,
                        &mut inst,
                        Some(&expect(&[task_state::REBUILD_SPAWNING])),
                    )
                    .await?;
                Ok(())
            })
            .await;
        if let Err(e) = &r {
            self.fail_instance(&ctx, &mut inst, e, true).await;
        }
        Ok(Value::Null)
    }

    /// Fill in the container_format (and os_command_line) of a rebuild's image
    /// from the instance's system_metadata, which Nova updated to the new image.
    fn image_meta(inst: &Instance, mut image: ImageMeta) -> ImageMeta {
        for (k, v) in inst.system_metadata() {
            match k.as_str() {
                "image_container_format" if image.container_format.is_none() => {
                    image.container_format = Some(v)
                }
                "image_os_command_line" => {
                    image.properties.insert("os_command_line".into(), json!(v));
                }
                _ => {}
            }
        }
        image
    }
}

/// The `instance` argument of a compute RPC message.
pub(crate) fn instance_arg(args: &Map<String, Value>) -> Result<Instance, NovaException> {
    let v = args.get("instance").ok_or_else(|| {
        NovaException::other(
            "InvalidInput",
            "nova.exception",
            "the message has no instance argument",
            json!({"code": 400}),
        )
    })?;
    Instance::from_primitive(v).map_err(|e| {
        NovaException::other(
            "InvalidInput",
            "nova.exception",
            format!("the instance argument is not an Instance object: {e}"),
            json!({"code": 400}),
        )
    })
}
