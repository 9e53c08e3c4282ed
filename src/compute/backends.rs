//! The seams between the compute manager and the services it drives: images,
//! networking and container options. Each is a trait so the state machine can be
//! exercised without them; the real implementations wrap [`crate::image`],
//! [`crate::network`] and [`crate::userdata`].

use async_trait::async_trait;

use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::Instance;

/// What a snapshot is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotKind {
    Snapshot,
    /// A backup, keeping the newest `rotation` of `backup_type`.
    Backup {
        backup_type: String,
        rotation: u32,
    },
}

/// Glance images in and out of Docker.
#[async_trait]
pub trait ImageBackend: Send + Sync {
    /// Make the Glance image present in Docker; returns the local reference.
    async fn ensure_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<String, NovaException>;

    /// Upload the container of `instance` into the (already created) image `image_id`.
    async fn snapshot(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        image_id: &str,
        kind: SnapshotKind,
    ) -> Result<(), NovaException>;
}

/// Networking of an instance from its network_info.
#[async_trait]
pub trait NetworkBackend: Send + Sync {
    /// Host-side plumbing before the container starts. Returns the Docker
    /// NetworkMode the container must be created with (None = "none").
    async fn plug(
        &self,
        instance: &Instance,
        network_info: &str,
    ) -> Result<Option<String>, NovaException>;

    /// Wire the started container (its network namespace is that of `pid`);
    /// called after every start, since a container's namespace is new each time.
    async fn attach(
        &self,
        instance: &Instance,
        network_info: &str,
        pid: u32,
    ) -> Result<(), NovaException>;

    /// Remove everything `plug` and `attach` made.
    async fn unplug(&self, instance: &Instance, network_info: &str) -> Result<(), NovaException>;

    /// The external events (name, tag) Neutron sends once the plugged VIFs are
    /// wired (`network-vif-plugged` for each VIF not active yet).
    fn expected_events(&self, _network_info: &str) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Container options from the instance's user_data, checked against the policy.
#[async_trait]
pub trait OptionsBackend: Send + Sync {
    async fn container_options(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
    ) -> Result<Option<crate::userdata::ContainerOptions>, NovaException>;
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

    async fn snapshot(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
        image_id: &str,
        kind: SnapshotKind,
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
                    &backup_type,
                    rotation as usize,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// VIF drivers through [`crate::network::VifManager`].
#[async_trait]
impl NetworkBackend for crate::network::VifManager {
    async fn plug(
        &self,
        instance: &Instance,
        network_info: &str,
    ) -> Result<Option<String>, NovaException> {
        let vifs = crate::network::parse_network_info(network_info)?;
        if vifs.is_empty() {
            return Ok(None);
        }
        self.plug_all(instance.uuid(), &vifs).await?;
        Ok(Some(self.network_mode()))
    }

    async fn attach(
        &self,
        instance: &Instance,
        network_info: &str,
        pid: u32,
    ) -> Result<(), NovaException> {
        let vifs = crate::network::parse_network_info(network_info)?;
        if vifs.is_empty() {
            return Ok(());
        }
        let guest = crate::network::GuestInfo {
            hostname: instance.hostname().to_string(),
            domain: None,
        };
        self.attach_all(instance.uuid(), pid, &vifs, &guest).await?;
        Ok(())
    }

    async fn unplug(&self, instance: &Instance, network_info: &str) -> Result<(), NovaException> {
        let vifs = crate::network::parse_network_info(network_info)?;
        if vifs.is_empty() {
            return Ok(());
        }
        self.unplug_all(instance.uuid(), &vifs).await?;
        Ok(())
    }

    fn expected_events(&self, network_info: &str) -> Vec<(String, String)> {
        crate::network::parse_network_info(network_info)
            .map(|v| crate::network::model::vif_plugged_events(&v))
            .unwrap_or_default()
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
    ) -> Result<Option<crate::userdata::ContainerOptions>, NovaException> {
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
