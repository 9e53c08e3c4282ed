//! The seams between the compute manager and the services it drives besides
//! the driver: images, networking and container options. Each is a trait, with
//! the real implementation here (wrapping [`crate::image`], [`crate::network`]
//! and [`crate::userdata`]) and a fake in the state machine's tests.

use async_trait::async_trait;

use super::request::{NetworkRequest, SnapshotKind};
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::network::{NetworkInfo, Vif};
use crate::objects::Instance;
use crate::virt::spec::ContainerOptions;
use crate::virt::split_hostname;

/// Glance images in and out of the engine.
#[async_trait]
pub trait ImageBackend: Send + Sync {
    /// Make the Glance image present in the engine; returns the local reference.
    async fn ensure_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<String, NovaException>;

    /// Pre-cache the Glance image (Nova's `cache_images`): true when it was
    /// fetched now, false when it was present (its cache age starts again).
    async fn precache(&self, ctx: &RequestContext, image_id: &str) -> Result<bool, NovaException>;

    /// The engine turned out not to have the image of `image_id` (removed
    /// behind our back): the next `ensure_image` makes it present again.
    fn forget(&self, _image_id: &str) {}

    /// Delete what a snapshot of `instance_uuid` cut off by a crash left
    /// (its half-made Glance images); returns their ids.
    async fn discard_interrupted_snapshots(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
    ) -> Result<Vec<String>, NovaException>;

    /// Upload the container of `instance` into the (already created) image `image_id`.
    async fn snapshot(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        image_id: &str,
        kind: &SnapshotKind,
    ) -> Result<(), NovaException>;

    /// A private, hidden Glance image record named `name` for `instance`'s
    /// container to be committed into (a cold migration's carrier); its id.
    async fn create_image(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        name: &str,
    ) -> Result<String, NovaException>;

    /// Delete the Glance image `image_id` (a shelved instance's, once it is
    /// unshelved); one already gone is no error.
    async fn delete_image(&self, ctx: &RequestContext, image_id: &str)
        -> Result<(), NovaException>;
}

/// Networking of an instance from its network_info.
#[async_trait]
pub trait NetworkBackend: Send + Sync {
    /// Host-side plumbing before the container starts. Returns the engine
    /// network the container must join (None: none).
    async fn plug(
        &self,
        instance: &Instance,
        network_info: &NetworkInfo,
    ) -> Result<Option<String>, NovaException>;

    /// Wire the started container (its network namespace is that of `pid`);
    /// called after every start, since a container's namespace is new each time.
    async fn attach(
        &self,
        instance: &Instance,
        network_info: &NetworkInfo,
        pid: u32,
    ) -> Result<(), NovaException>;

    /// Remove everything `plug` and `attach` made.
    async fn unplug(
        &self,
        instance: &Instance,
        network_info: &NetworkInfo,
    ) -> Result<(), NovaException>;

    /// Hot plug `vif` (in `network_info`, the list after the attach) into the
    /// instance, and into its container when it runs (`pid`).
    async fn attach_interface(
        &self,
        instance: &Instance,
        vif: &Vif,
        network_info: &NetworkInfo,
        pid: Option<u32>,
    ) -> Result<(), NovaException>;

    /// Hot unplug `vif` from the instance (and its running container).
    async fn detach_interface(
        &self,
        instance: &Instance,
        vif: &Vif,
        pid: Option<u32>,
    ) -> Result<(), NovaException>;
}

/// Nova's network API: the instance's Neutron ports and its network_info
/// (nova/network/neutron.py). The manager saves the info cache.
#[async_trait]
pub trait NetworkApi: Send + Sync {
    /// Create or take the requested ports and bind them to `host`; the
    /// instance's whole network_info afterwards, and the ids of the VIFs this
    /// call added. Leaves nothing behind on failure.
    async fn allocate_for_instance(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        host: &str,
        requested: &[NetworkRequest],
        security_groups: &[String],
    ) -> Result<(NetworkInfo, Vec<String>), NovaException>;

    /// network_info from Neutron's ports of the instance; with `keep_missing`,
    /// VIFs whose port is gone stay (a later unplug still finds them).
    async fn get_instance_nw_info(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        keep_missing: bool,
    ) -> Result<NetworkInfo, NovaException>;

    /// Delete the ports made for the instance; unbind those the user gave
    /// (`preserve_on_delete`, or listed in `keep`).
    async fn deallocate_for_instance(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        keep: &[String],
    ) -> Result<(), NovaException>;

    /// Give one detached VIF's port back (deleted, or unbound if the user gave it).
    async fn deallocate_port(&self, ctx: &RequestContext, vif: &Vif) -> Result<(), NovaException>;

    /// `unbind_ports(detach=False)` of a shelve offload: the instance's ports
    /// bound to no host; they stay the instance's (device and owner kept).
    async fn unbind_ports(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
    ) -> Result<(), NovaException>;

    /// `setup_instance_network_on_host`: the instance's ports bound to
    /// `host` (an unshelve there); its network_info afterwards. A port
    /// Neutron cannot bind there is `PortBindingFailed`.
    async fn bind_ports_to_host(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        host: &str,
    ) -> Result<NetworkInfo, NovaException>;
}

/// A host without `[neutron]` in nova.conf: builds that ask for a network fail
/// with a readable fault, everything else has no ports to look after.
pub struct NoNeutron;

#[async_trait]
impl NetworkApi for NoNeutron {
    async fn allocate_for_instance(
        &self,
        _: &RequestContext,
        instance: &Instance,
        _: &str,
        _: &[NetworkRequest],
        _: &[String],
    ) -> Result<(NetworkInfo, Vec<String>), NovaException> {
        Err(NovaException::build_abort(
            instance.uuid(),
            "this compute host has no [neutron] section in nova.conf, so it cannot give the instance a network: boot with --nic none, or configure [neutron]",
        ))
    }

    async fn get_instance_nw_info(
        &self,
        _: &RequestContext,
        instance: &Instance,
        _: bool,
    ) -> Result<NetworkInfo, NovaException> {
        Ok(instance.network_info().clone())
    }

    async fn deallocate_for_instance(
        &self,
        _: &RequestContext,
        _: &Instance,
        _: &[String],
    ) -> Result<(), NovaException> {
        Ok(())
    }

    async fn deallocate_port(&self, _: &RequestContext, _: &Vif) -> Result<(), NovaException> {
        Ok(())
    }

    async fn unbind_ports(&self, _: &RequestContext, _: &Instance) -> Result<(), NovaException> {
        Ok(())
    }

    async fn bind_ports_to_host(
        &self,
        _: &RequestContext,
        instance: &Instance,
        _: &str,
    ) -> Result<NetworkInfo, NovaException> {
        Ok(instance.network_info().clone())
    }
}

#[async_trait]
impl NetworkApi for crate::network::neutron::NeutronApi {
    async fn allocate_for_instance(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        host: &str,
        requested: &[NetworkRequest],
        security_groups: &[String],
    ) -> Result<(NetworkInfo, Vec<String>), NovaException> {
        crate::network::neutron::NeutronApi::allocate_for_instance(
            self,
            ctx,
            instance,
            host,
            requested,
            security_groups,
        )
        .await
    }

    async fn get_instance_nw_info(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        keep_missing: bool,
    ) -> Result<NetworkInfo, NovaException> {
        self.network_info(ctx, instance, &Default::default(), keep_missing)
            .await
    }

    async fn deallocate_for_instance(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        keep: &[String],
    ) -> Result<(), NovaException> {
        crate::network::neutron::NeutronApi::deallocate_for_instance(self, ctx, instance, keep)
            .await
    }

    async fn deallocate_port(&self, ctx: &RequestContext, vif: &Vif) -> Result<(), NovaException> {
        crate::network::neutron::NeutronApi::deallocate_port(self, ctx, vif).await
    }

    async fn unbind_ports(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
    ) -> Result<(), NovaException> {
        crate::network::neutron::NeutronApi::unbind_ports(self, ctx, instance).await
    }

    async fn bind_ports_to_host(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        host: &str,
    ) -> Result<NetworkInfo, NovaException> {
        crate::network::neutron::NeutronApi::bind_ports_to_host(self, ctx, instance, host).await
    }
}

/// Container options from the instance's user_data, checked against the policy.
#[async_trait]
pub trait OptionsBackend: Send + Sync {
    async fn container_options(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
    ) -> Result<Option<ContainerOptions>, NovaException>;
}

/// Glance and Docker through [`crate::image::ImageService`].
#[async_trait]
impl ImageBackend for crate::image::ImageService {
    async fn ensure_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<String, NovaException> {
        Ok(crate::image::ImageService::ensure_image(self, ctx, image_id).await?)
    }

    async fn precache(&self, ctx: &RequestContext, image_id: &str) -> Result<bool, NovaException> {
        Ok(crate::image::ImageService::precache(self, ctx, image_id).await?)
    }

    fn forget(&self, image_id: &str) {
        crate::image::ImageService::forget(self, image_id)
    }

    async fn discard_interrupted_snapshots(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
    ) -> Result<Vec<String>, NovaException> {
        Ok(
            crate::image::ImageService::discard_interrupted_snapshots(self, ctx, instance_uuid)
                .await?,
        )
    }

    async fn snapshot(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        image_id: &str,
        kind: &SnapshotKind,
    ) -> Result<(), NovaException> {
        let container = crate::virt::container_name(instance.uuid());
        let props = crate::image::SnapshotProps {
            instance_uuid: instance.uuid().to_string(),
            user_id: Some(instance.user_id().to_string()),
            owner: Some(instance.project_id().to_string()),
            base_image_ref: instance.image_ref().map(str::to_string),
            image_type: None,
            backup_type: None,
            extra: Default::default(),
        };
        match kind {
            SnapshotKind::Snapshot => {
                crate::image::ImageService::snapshot(self, ctx, &container, image_id, props)
                    .await?;
            }
            SnapshotKind::Backup {
                backup_type,
                rotation,
            } => {
                crate::image::ImageService::backup(
                    self,
                    ctx,
                    &container,
                    image_id,
                    props,
                    backup_type,
                    *rotation as usize,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn create_image(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        name: &str,
    ) -> Result<String, NovaException> {
        let mut fields = serde_json::Map::new();
        for (k, v) in [
            ("name", name),
            ("container_format", "docker"),
            ("disk_format", "raw"),
            ("visibility", "private"),
            ("instance_uuid", instance.uuid()),
            ("image_type", "migration"),
        ] {
            fields.insert(k.into(), serde_json::json!(v));
        }
        fields.insert("os_hidden".into(), serde_json::json!(true));
        Ok(self.glance().create(ctx, fields).await?.id)
    }

    async fn delete_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<(), NovaException> {
        match self.glance().delete(ctx, image_id).await {
            Err(crate::image::ImageError::NotFound { .. }) => Ok(()),
            r => Ok(r?),
        }
    }
}

/// VIF drivers through [`crate::network::VifManager`].
#[async_trait]
impl NetworkBackend for crate::network::VifManager {
    async fn plug(
        &self,
        instance: &Instance,
        network_info: &NetworkInfo,
    ) -> Result<Option<String>, NovaException> {
        if network_info.is_empty() {
            return Ok(None);
        }
        self.plug_all(instance.uuid(), network_info).await?;
        Ok(Some(self.network_mode()))
    }

    async fn attach(
        &self,
        instance: &Instance,
        network_info: &NetworkInfo,
        pid: u32,
    ) -> Result<(), NovaException> {
        if network_info.is_empty() {
            return Ok(());
        }
        let (hostname, domain) = split_hostname(instance.hostname());
        let guest = crate::network::GuestInfo { hostname, domain };
        self.attach_all(instance.uuid(), pid, network_info, &guest)
            .await?;
        Ok(())
    }

    async fn unplug(
        &self,
        instance: &Instance,
        network_info: &NetworkInfo,
    ) -> Result<(), NovaException> {
        if network_info.is_empty() {
            return Ok(());
        }
        self.unplug_all(instance.uuid(), network_info).await?;
        Ok(())
    }

    async fn attach_interface(
        &self,
        instance: &Instance,
        vif: &Vif,
        network_info: &NetworkInfo,
        pid: Option<u32>,
    ) -> Result<(), NovaException> {
        crate::network::VifManager::attach_interface(self, instance.uuid(), pid, vif, network_info)
            .await?;
        Ok(())
    }

    async fn detach_interface(
        &self,
        instance: &Instance,
        vif: &Vif,
        pid: Option<u32>,
    ) -> Result<(), NovaException> {
        crate::network::VifManager::detach_interface(self, instance.uuid(), pid, vif).await?;
        Ok(())
    }
}

/// user_data decoding and the host policy ([`crate::userdata`]).
pub struct UserDataOptions {
    pub policy: crate::userdata::Policy,
    pub lookup: Box<dyn crate::userdata::ContainerLookup>,
}

#[async_trait]
impl OptionsBackend for UserDataOptions {
    async fn container_options(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
    ) -> Result<Option<ContainerOptions>, NovaException> {
        let uuid = instance.uuid();
        let Some(opts) =
            crate::userdata::decode(instance.user_data()).map_err(|e| e.to_build_abort(uuid))?
        else {
            return Ok(None);
        };
        for w in &opts.warnings {
            tracing::warn!(instance = uuid, warning = %w, "user_data option ignored");
        }
        let pctx = crate::userdata::PolicyContext::from_request(ctx, instance.project_id());
        self.policy
            .check(&opts, &pctx, self.lookup.as_ref())
            .await
            .map_err(|v| v.to_build_abort(uuid))?;
        Ok(Some(opts.body))
    }
}
