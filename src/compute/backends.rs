//! The seams between the compute manager and the services it drives: images,
//! networking and container options. Each is a trait so the state machine can be
//! exercised without them; the real implementations wrap [`crate::image`],
//! [`crate::network`] and [`crate::userdata`].

use async_trait::async_trait;
use bollard::models::ContainerCreateBody;

use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::Instance;

/// What a snapshot is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotKind {
    Snapshot,
    /// A backup, keeping the newest `rotation` of `backup_type`.
    Backup { backup_type: String, rotation: u32 },
}

/// Glance images in and out of Docker.
#[async_trait]
pub trait ImageBackend: Send + Sync {
    /// Make the Glance image present in Docker; returns the local reference.
    async fn ensure_image(&self, ctx: &RequestContext, image_id: &str) -> Result<String, NovaException>;

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
    async fn plug(&self, instance: &Instance, network_info: &str) -> Result<Option<String>, NovaException>;

    /// Wire the started container (its network namespace is that of `pid`);
    /// called after every start, since a container's namespace is new each time.
    async fn attach(&self, instance: &Instance, network_info: &str, pid: u32) -> Result<(), NovaException>;

    /// Remove everything `plug` and `attach` made.
    async fn unplug(&self, instance: &Instance, network_info: &str) -> Result<(), NovaException>;
}

/// Container options from the instance's user_data, checked against the policy.
#[async_trait]
pub trait OptionsBackend: Send + Sync {
    async fn container_options(
        &self,
        ctx: &RequestContext,
        instance: &Instance,
    ) -> Result<Option<ContainerCreateBody>, NovaException>;
}

/// Networking for clouds without any: nothing to plug.
pub struct NoNetwork;

#[async_trait]
impl NetworkBackend for NoNetwork {
    async fn plug(&self, _: &Instance, _: &str) -> Result<Option<String>, NovaException> {
        Ok(None)
    }
    async fn attach(&self, _: &Instance, _: &str, _: u32) -> Result<(), NovaException> {
        Ok(())
    }
    async fn unplug(&self, _: &Instance, _: &str) -> Result<(), NovaException> {
        Ok(())
    }
}
