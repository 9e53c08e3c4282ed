//! Glance images in and out of Docker.
//!
//! Instances boot from Glance images whose `container_format` is `docker` and
//! whose data is a `docker save` tarball. [`ImageService::ensure_image`] streams
//! the data from Glance straight into Docker's image load (no temporary file,
//! bounded memory), checks the hash Glance recorded, and tags the loaded image
//! `glance/<image id>:latest` ([`local_ref`]), so the Glance name never has to
//! match a Docker tag and an image saved by ID (no tags) works as well. That tag
//! is the cache: a tagged image is not downloaded again, and concurrent calls for
//! one uncached image share one download. [`ImageService::prune_unused`] removes
//! cached images no instance uses. [`ImageService::snapshot`] and
//! [`ImageService::backup`] commit a container and stream `docker save` into
//! Glance.
//!
//! Options: `[glance]` (see [`GlanceConfig`]; `max_image_size` is in bytes, 0 =
//! unlimited) and `[image_cache] remove_unused_original_minimum_age_seconds`
//! (default 86400).
//!
//! Docker is reached through [`ImageEngine`] (implemented by
//! `crate::virt::docker::DockerImages`). Where things are:
//! - `error`: [`ImageError`] and the Nova exception each becomes;
//! - `config`: [`ImageConfig`];
//! - `engine`: [`ImageEngine`], what the service needs of the engine;
//! - `hash`: the hashes Glance records, computed beside the copy to Docker;
//! - `pump`: Glance's data into the engine's load, checked on the way;
//! - `fetch`: [`ImageService::ensure_image`], one download shared by concurrent boots;
//! - `snapshot`, `backup`: commits streamed into Glance, backups rotation;
//! - `prune`: removal of unused cached images;
//! - [`glance`]: the Glance client; [`tarfilter`]: the tag filter of the load.

mod backup;
mod config;
mod engine;
mod error;
mod fetch;
pub mod glance;
mod hash;
mod prune;
mod pump;
pub mod registry;
mod snapshot;
pub mod tarfilter;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, Shared};

pub use config::ImageConfig;
pub use engine::{
    ByteStream, CommitRequest, EngineError, ExportStream, ImageDetails, ImageEngine, ImageSummary,
    LoadError, LoadReport,
};
pub use error::ImageError;
pub use glance::{
    patch_ops_for, validate_image_id, GlanceClient, GlanceConfig, ImageRecord, PatchOp,
};
pub use hash::{ExpectedHash, Hasher};
pub use snapshot::{coalesce, SnapshotProps};

/// The Docker repository under which Glance images are cached.
pub const LOCAL_REPO_PREFIX: &str = "glance/";
/// Repository of the transient image a snapshot commits.
pub const SNAPSHOT_REPO_PREFIX: &str = "nova-snapshot/";

/// The local Docker reference of a Glance image: `glance/<image_id>:latest`.
pub fn local_ref(image_id: &str) -> String {
    format!("{LOCAL_REPO_PREFIX}{image_id}:latest")
}

type SharedFetch = Shared<BoxFuture<'static, Result<String, ImageError>>>;

struct Inner {
    engine: Arc<dyn ImageEngine>,
    glance: GlanceClient,
    registry: Arc<registry::RegistryClient>,
    cfg: ImageConfig,
    inflight: Mutex<HashMap<String, SharedFetch>>,
    /// Local references known to be in the engine (a boot does not ask the
    /// engine again); forgotten when pruned, or when the engine says otherwise.
    present: Mutex<std::collections::HashSet<String>>,
    /// Where downloads run (the daemon's tracker, once set).
    tasks: std::sync::OnceLock<crate::tasks::Tasks>,
}

/// Glance images in and out of Docker. Cheap to clone.
#[derive(Clone)]
pub struct ImageService {
    inner: Arc<Inner>,
}

impl ImageService {
    /// Run downloads on `tasks` (so a stop waits for them).
    pub fn run_on(&self, tasks: crate::tasks::Tasks) {
        let _ = self.inner.tasks.set(tasks);
    }

    pub fn new(engine: Arc<dyn ImageEngine>, cfg: ImageConfig) -> Result<Self, ImageError> {
        let glance = GlanceClient::new(cfg.glance.clone())?;
        Self::with_glance(engine, glance, cfg)
    }

    pub fn with_glance(
        engine: Arc<dyn ImageEngine>,
        glance: GlanceClient,
        cfg: ImageConfig,
    ) -> Result<Self, ImageError> {
        let registry = registry::RegistryClient::new(cfg.registry.clone())
            .map_err(|e| ImageError::Config(e.to_string()))?;
        Ok(ImageService {
            inner: Arc::new(Inner {
                engine,
                glance,
                registry: Arc::new(registry),
                cfg,
                tasks: std::sync::OnceLock::new(),
                inflight: Mutex::new(HashMap::new()),
                present: Mutex::new(Default::default()),
            }),
        })
    }

    pub fn glance(&self) -> &GlanceClient {
        &self.inner.glance
    }
}
