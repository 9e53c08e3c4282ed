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

pub mod glance;
pub mod tarfilter;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::ContainerConfig;
use bollard::query_parameters::{
    CommitContainerOptions, ImportImageOptions, ListImagesOptions, RemoveImageOptions,
    TagImageOptions,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::future::{BoxFuture, Shared};
use futures_util::{FutureExt, Stream, StreamExt};
use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::config::{ConfigError, Ini};
use crate::context::RequestContext;
use crate::exception::{Class, NovaException};

pub use glance::{
    patch_ops_for, validate_image_id, GlanceClient, GlanceConfig, ImageRecord, PatchOp,
};

/// The Docker repository under which Glance images are cached.
pub const LOCAL_REPO_PREFIX: &str = "glance/";
/// Repository of the transient image a snapshot commits.
pub const SNAPSHOT_REPO_PREFIX: &str = "nova-snapshot/";
/// How much of the end of the data is held back from Docker until the hash is
/// verified: on a mismatch Docker gets a truncated tarball and fails the load.
const HOLD_BACK: usize = 256 * 1024;
/// Data is sent to Glance in chunks of about this size.
const UPLOAD_CHUNK: usize = 64 * 1024;
/// How many network chunks the hash may lag behind the copy to Docker.
const HASH_QUEUE: usize = 32;
/// How many network chunks may wait for Docker to read them.
const LOAD_QUEUE: usize = 32;

/// The local Docker reference of a Glance image: `glance/<image_id>:latest`.
pub fn local_ref(image_id: &str) -> String {
    format!("{LOCAL_REPO_PREFIX}{image_id}:latest")
}

#[derive(Debug, Clone, Error, PartialEq)]
pub enum ImageError {
    #[error("Image {image_id} could not be found.")]
    NotFound { image_id: String },
    #[error("Image {image_id} is unacceptable: {reason}")]
    Unacceptable { image_id: String, reason: String },
    #[error("Image {image_id} is {size} bytes, more than [glance] max_image_size = {max} bytes")]
    TooLarge {
        image_id: String,
        size: u64,
        max: u64,
    },
    #[error("Image {image_id} data does not match its recorded {algo} hash (expected {expected}, got {actual}); nothing was kept")]
    ChecksumMismatch {
        image_id: String,
        algo: String,
        expected: String,
        actual: String,
    },
    #[error("Image {image_id} is not active (status {status}).")]
    NotActive { image_id: String, status: String },
    #[error("Not authorized for image {image_id}.")]
    NotAuthorized { image_id: String },
    #[error("Glance refused our credentials: {0}")]
    Unauthorized(String),
    #[error("Request of image {image_id} got BadRequest response: {response}")]
    BadRequest { image_id: String, response: String },
    #[error("Conflict on image {image_id}: {reason}")]
    Conflict { image_id: String, reason: String },
    #[error("Quota exceeded or out of space for image {image_id} in the image service.")]
    QuotaExceeded { image_id: String },
    #[error("Connection to glance host {servers} failed: {reason}")]
    Unavailable { servers: String, reason: String },
    #[error("Download of image {image_id} failed: {reason}")]
    Download { image_id: String, reason: String },
    #[error("Upload of image {image_id} failed: {reason}")]
    Upload { image_id: String, reason: String },
    #[error("Docker could not load image {image_id}: {reason}")]
    Load { image_id: String, reason: String },
    #[error("Snapshot to image {image_id} failed: {reason}")]
    Snapshot { image_id: String, reason: String },
    #[error("Docker: {0}")]
    Docker(String),
    #[error("Glance: {0}")]
    Glance(String),
    #[error("image service configuration: {0}")]
    Config(String),
}

impl From<ImageError> for NovaException {
    fn from(e: ImageError) -> Self {
        let msg = e.to_string();
        match e {
            ImageError::NotFound { image_id } => NovaException::image_not_found(&image_id),
            ImageError::Unacceptable { image_id, reason } => {
                NovaException::image_unacceptable(&image_id, reason)
            }
            ImageError::TooLarge { ref image_id, .. }
            | ImageError::ChecksumMismatch { ref image_id, .. }
            | ImageError::Load { ref image_id, .. }
            | ImageError::Download { ref image_id, .. } => {
                // ImageUnacceptable's message is "Image <id> is unacceptable: <reason>"
                let reason = msg
                    .strip_prefix(&format!("Image {image_id} "))
                    .unwrap_or(&msg)
                    .to_string();
                NovaException::image_unacceptable(image_id, reason)
            }
            ImageError::NotActive { image_id, .. } => {
                NovaException::nova(Class::ImageNotActive, msg, json!({"image_id": image_id}))
            }
            ImageError::NotAuthorized { image_id } => NovaException::nova(
                Class::ImageNotAuthorized,
                msg,
                json!({"image_id": image_id, "code": 403}),
            ),
            ImageError::Unauthorized(_) => {
                NovaException::nova(Class::NotAuthorized, msg, json!({"code": 403}))
            }
            ImageError::BadRequest { image_id, response } => NovaException::nova(
                Class::ImageBadRequest,
                msg,
                json!({"image_id": image_id, "response": response, "code": 400}),
            ),
            ImageError::QuotaExceeded { image_id } => NovaException::nova(
                Class::ImageQuotaExceeded,
                msg,
                json!({"image_id": image_id}),
            ),
            ImageError::Unavailable { servers, reason } => NovaException::nova(
                Class::GlanceConnectionFailed,
                msg,
                json!({"server": servers, "reason": reason}),
            ),
            ImageError::Conflict { .. }
            | ImageError::Upload { .. }
            | ImageError::Snapshot { .. }
            | ImageError::Docker(_)
            | ImageError::Glance(_)
            | ImageError::Config(_) => NovaException::internal(msg),
        }
    }
}

fn docker_err(e: bollard::errors::Error) -> ImageError {
    ImageError::Docker(e.to_string())
}

fn is_docker_404(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Options of the image service.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub glance: GlanceConfig,
    /// `[image_cache] remove_unused_original_minimum_age_seconds`.
    pub remove_unused_minimum_age: Duration,
}

impl ImageConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        Ok(ImageConfig {
            glance: GlanceConfig::from_ini(ini)?,
            remove_unused_minimum_age: ini
                .group("image_cache")
                .secs("remove_unused_original_minimum_age_seconds", 86400)?,
        })
    }
}

/// The hash Glance recorded for the data.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedHash {
    pub algo: String,
    pub value: String,
}

impl ExpectedHash {
    /// `os_hash_algo`/`os_hash_value` (multihash) when set and known, else the
    /// md5 `checksum`, else nothing.
    pub fn from_record(r: &ImageRecord) -> Option<Self> {
        if let (Some(a), Some(v)) = (&r.os_hash_algo, &r.os_hash_value) {
            if Hasher::new(a).is_some() && !v.is_empty() {
                return Some(ExpectedHash {
                    algo: a.to_ascii_lowercase(),
                    value: v.to_ascii_lowercase(),
                });
            }
        }
        r.checksum
            .as_ref()
            .filter(|c| !c.is_empty())
            .map(|c| ExpectedHash {
                algo: "md5".into(),
                value: c.to_ascii_lowercase(),
            })
    }
}

/// A running digest of one of the algorithms Glance uses (SHA-2 through ring's
/// assembly: hashing must keep up with the data).
pub enum Hasher {
    Md5(md5::Md5),
    Sha2(ring::digest::Context),
}

impl Hasher {
    pub fn new(algo: &str) -> Option<Self> {
        use md5::Digest;
        let sha = |a: &'static ring::digest::Algorithm| Hasher::Sha2(ring::digest::Context::new(a));
        Some(match algo.to_ascii_lowercase().as_str() {
            "md5" => Hasher::Md5(md5::Md5::new()),
            "sha256" => sha(&ring::digest::SHA256),
            "sha384" => sha(&ring::digest::SHA384),
            "sha512" => sha(&ring::digest::SHA512),
            _ => return None,
        })
    }
    pub fn update(&mut self, data: &[u8]) {
        use md5::Digest;
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha2(h) => h.update(data),
        }
    }
    pub fn hex(self) -> String {
        use md5::Digest;
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha2(h) => hex::encode(h.finish().as_ref()),
        }
    }
}

/// Hashes on a blocking thread of its own, so that the hash of image data runs
/// beside the copy to Docker instead of in turn with it. Each network chunk is
/// handed over as it arrives (shared, not copied, and hashed while still in the
/// CPU's cache); the worker lags the copy by at most [`HASH_QUEUE`] chunks, which
/// bounds the memory it holds.
struct HashWorker {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<String>,
}

impl HashWorker {
    fn start(mut hasher: Hasher) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.hex()
        });
        Self { tx, done }
    }

    async fn update(&self, chunk: Bytes) {
        // the worker ends only once this sender is dropped
        let _ = self.tx.send(chunk).await;
    }

    /// The hex digest of everything handed over.
    async fn finish(self) -> Result<String, String> {
        drop(self.tx);
        self.done.await.map_err(|e| e.to_string())
    }
}

/// What Docker's image load reported, from its `stream` lines.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LoadReport {
    /// `Loaded image: <name:tag>`
    pub names: Vec<String>,
    /// `Loaded image ID: sha256:...`
    pub ids: Vec<String>,
}

impl LoadReport {
    pub fn parse_line(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if let Some(id) = line.strip_prefix("Loaded image ID:") {
                self.ids.push(id.trim().to_string());
            } else if let Some(name) = line.strip_prefix("Loaded image:") {
                self.names.push(name.trim().to_string());
            }
        }
    }
}

/// What a snapshot or backup records on the Glance image (Nova's API already set
/// `instance_uuid`, `user_id`, `image_type` and, for backups, `backup_type` when it
/// created the queued record; they are set again here so the record is complete
/// whoever created it).
#[derive(Debug, Clone, Default)]
pub struct SnapshotProps {
    pub instance_uuid: String,
    pub user_id: Option<String>,
    /// The instance's project: recorded as `owner_id` as the libvirt driver does.
    pub owner: Option<String>,
    /// The image the instance was booted from.
    pub base_image_ref: Option<String>,
    /// `snapshot` (default) or `backup`.
    pub image_type: Option<String>,
    pub backup_type: Option<String>,
    /// Any other properties to set.
    pub extra: Map<String, Value>,
}

impl SnapshotProps {
    /// The record fields to set before the upload.
    pub fn to_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("container_format".into(), json!("docker"));
        m.insert("disk_format".into(), json!("raw"));
        m.insert("image_location".into(), json!("snapshot"));
        m.insert("image_state".into(), json!("available"));
        m.insert("instance_uuid".into(), json!(self.instance_uuid));
        m.insert(
            "image_type".into(),
            json!(self.image_type.as_deref().unwrap_or("snapshot")),
        );
        if let Some(u) = &self.user_id {
            m.insert("user_id".into(), json!(u));
        }
        if let Some(o) = &self.owner {
            m.insert("owner_id".into(), json!(o));
        }
        if let Some(b) = &self.base_image_ref {
            m.insert("base_image_ref".into(), json!(b));
        }
        if let Some(b) = &self.backup_type {
            m.insert("backup_type".into(), json!(b));
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

type SharedFetch = Shared<BoxFuture<'static, Result<String, ImageError>>>;

struct Inner {
    docker: Docker,
    glance: GlanceClient,
    cfg: ImageConfig,
    inflight: Mutex<HashMap<String, SharedFetch>>,
}

/// Glance images in and out of Docker. Cheap to clone.
#[derive(Clone)]
pub struct ImageService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum PumpError {
    /// Docker stopped reading (its own error says why).
    ReceiverGone,
    Fail(ImageError),
}

impl ImageService {
    pub fn new(docker: Docker, cfg: ImageConfig) -> Result<Self, ImageError> {
        let glance = GlanceClient::new(cfg.glance.clone())?;
        Ok(Self::with_glance(docker, glance, cfg))
    }

    pub fn with_glance(docker: Docker, glance: GlanceClient, cfg: ImageConfig) -> Self {
        ImageService {
            inner: Arc::new(Inner {
                docker,
                glance,
                cfg,
                inflight: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn glance(&self) -> &GlanceClient {
        &self.inner.glance
    }

    /// Make the Glance image `image_id` available to Docker and return its local
    /// reference (`glance/<image_id>:latest`). Downloads only when not cached;
    /// concurrent calls for one image share one download, which runs to its end
    /// even if every caller goes away.
    pub async fn ensure_image(
        &self,
        ctx: &RequestContext,
        image_id: &str,
    ) -> Result<String, ImageError> {
        validate_image_id(image_id)?;
        let reference = local_ref(image_id);
        if self.inner.is_cached(&reference).await? {
            tracing::debug!(%image_id, %reference, "image cached");
            return Ok(reference);
        }
        let fut = {
            let mut map = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match map.get(image_id) {
                Some(f) => f.clone(),
                None => {
                    let inner = self.inner.clone();
                    let ctx = ctx.clone();
                    let id = image_id.to_string();
                    let handle = tokio::spawn(async move {
                        let r = inner.fetch(&ctx, &id).await;
                        inner
                            .inflight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        r
                    });
                    let f: SharedFetch = async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(ImageError::Docker(format!("image fetch task failed: {e}")))
                        })
                    }
                    .boxed()
                    .shared();
                    map.insert(image_id.to_string(), f.clone());
                    f
                }
            }
        };
        fut.await
    }

    /// Remove cached `glance/*` images that no instance uses (`in_use` holds Glance
    /// image ids; local references and Docker image ids are accepted too) and that
    /// were cached longer ago than `remove_unused_original_minimum_age_seconds`.
    /// Returns the references removed. An image Docker refuses to remove (a
    /// container still uses it) is skipped.
    pub async fn prune_unused(&self, in_use: &HashSet<String>) -> Result<Vec<String>, ImageError> {
        let docker = &self.inner.docker;
        let mut filters = HashMap::new();
        filters.insert(
            "reference".to_string(),
            vec![format!("{LOCAL_REPO_PREFIX}*")],
        );
        let images = docker
            .list_images(Some(ListImagesOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(docker_err)?;
        let min_age = chrono::Duration::from_std(self.inner.cfg.remove_unused_minimum_age)
            .unwrap_or(chrono::Duration::MAX);
        let now = chrono::Utc::now();
        let mut removed = Vec::new();
        for img in images {
            for tag in &img.repo_tags {
                let Some(rest) = tag.strip_prefix(LOCAL_REPO_PREFIX) else {
                    continue;
                };
                let glance_id = rest.split(':').next().unwrap_or(rest);
                if in_use.contains(glance_id) || in_use.contains(tag) || in_use.contains(&img.id) {
                    continue;
                }
                let tagged_at = match docker.inspect_image(tag).await {
                    Ok(i) => i
                        .metadata
                        .and_then(|m| m.last_tag_time)
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc)),
                    Err(e) if is_docker_404(&e) => continue,
                    Err(e) => return Err(docker_err(e)),
                };
                // No usable tag time (Docker gives year 1 when unknown): use the
                // image's creation time.
                let tagged_at = tagged_at
                    .filter(|t| t.timestamp() > 0)
                    .or_else(|| chrono::DateTime::from_timestamp(img.created, 0))
                    .unwrap_or(now);
                if now - tagged_at < min_age {
                    continue;
                }
                match docker
                    .remove_image(
                        tag,
                        Some(RemoveImageOptions {
                            force: false,
                            noprune: false,
                        }),
                        None,
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::info!(reference = %tag, "removed unused cached image");
                        removed.push(tag.clone());
                    }
                    Err(e) => {
                        tracing::warn!(reference = %tag, error = %e, "cannot remove unused cached image")
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Snapshot `container` into the (queued) Glance image `image_id` that Nova's
    /// API created: commit the container, set the record's formats and properties,
    /// stream `docker save` of the commit into Glance, and remove the committed
    /// image. On failure the Glance image is deleted, as Nova does.
    pub async fn snapshot(
        &self,
        ctx: &RequestContext,
        container: &str,
        image_id: &str,
        props: SnapshotProps,
    ) -> Result<ImageRecord, ImageError> {
        validate_image_id(image_id)?;
        let docker = &self.inner.docker;
        let repo = format!("{SNAPSHOT_REPO_PREFIX}{image_id}");
        let commit = docker
            .commit_container(
                CommitContainerOptions {
                    container: Some(container.to_string()),
                    repo: Some(repo.clone()),
                    tag: Some("latest".into()),
                    comment: Some(format!("nova snapshot to glance image {image_id}")),
                    pause: true,
                    ..Default::default()
                },
                ContainerConfig::default(),
            )
            .await;
        let commit_id = match commit {
            Ok(r) => r.id,
            Err(e) => {
                let err = if is_docker_404(&e) {
                    ImageError::Snapshot {
                        image_id: image_id.into(),
                        reason: format!("container {container} not found"),
                    }
                } else {
                    ImageError::Snapshot {
                        image_id: image_id.into(),
                        reason: format!("commit of container {container}: {e}"),
                    }
                };
                self.delete_failed(ctx, image_id).await;
                return Err(err);
            }
        };
        tracing::info!(%container, %image_id, commit = %commit_id, "container committed; uploading");
        let r = self.upload_commit(ctx, &commit_id, image_id, &props).await;
        // The committed image is transient in every case.
        if let Err(e) = docker
            .remove_image(
                &format!("{repo}:latest"),
                Some(RemoveImageOptions {
                    force: true,
                    noprune: false,
                }),
                None,
            )
            .await
        {
            tracing::warn!(%image_id, error = %e, "cannot remove the committed snapshot image");
        }
        match r {
            Ok(rec) => Ok(rec),
            Err(e) => {
                self.delete_failed(ctx, image_id).await;
                Err(e)
            }
        }
    }

    async fn delete_failed(&self, ctx: &RequestContext, image_id: &str) {
        match self.inner.glance.delete(ctx, image_id).await {
            Ok(()) | Err(ImageError::NotFound { .. }) => {
                tracing::info!(%image_id, "deleted the image of a failed snapshot")
            }
            Err(e) => {
                tracing::warn!(%image_id, error = %e, "cannot delete the image of a failed snapshot")
            }
        }
    }

    async fn upload_commit(
        &self,
        ctx: &RequestContext,
        commit_id: &str,
        image_id: &str,
        props: &SnapshotProps,
    ) -> Result<ImageRecord, ImageError> {
        let glance = &self.inner.glance;
        let rec = glance.get(ctx, image_id).await?;
        let ops = patch_ops_for(&rec, &props.to_fields());
        if !ops.is_empty() {
            glance.patch(ctx, image_id, &ops).await?;
        }
        let data = self
            .inner
            .docker
            .export_image(commit_id)
            .map(|r| r.map_err(|e| std::io::Error::other(format!("docker save: {e}"))));
        // Glance reads the chunked body 64 KiB at a time: chunks of that size suit it
        // best (larger ones get re-copied by gunicorn's reader, smaller ones cost
        // per-chunk overhead).
        glance
            .upload(ctx, image_id, coalesce(Box::pin(data), UPLOAD_CHUNK))
            .await?;
        let rec = glance.get(ctx, image_id).await?;
        if rec.status != "active" {
            return Err(ImageError::Upload {
                image_id: image_id.into(),
                reason: format!("image status is {} after the upload", rec.status),
            });
        }
        Ok(rec)
    }

    /// A backup: a snapshot with `image_type=backup` and `backup_type`, then keep
    /// only the `rotation` newest backups of this instance and backup type
    /// (`rotation` 0 deletes them all, the new one too, as Nova does). Returns the
    /// new record and the ids of the backups deleted.
    pub async fn backup(
        &self,
        ctx: &RequestContext,
        container: &str,
        image_id: &str,
        mut props: SnapshotProps,
        backup_type: &str,
        rotation: usize,
    ) -> Result<(ImageRecord, Vec<String>), ImageError> {
        props.image_type = Some("backup".into());
        props.backup_type = Some(backup_type.to_string());
        let instance_uuid = props.instance_uuid.clone();
        let rec = self.snapshot(ctx, container, image_id, props).await?;
        let deleted = self
            .rotate_backups(ctx, &instance_uuid, backup_type, rotation, Some(image_id))
            .await?;
        Ok((rec, deleted))
    }

    /// Delete the backups of `instance_uuid`/`backup_type` beyond the `rotation`
    /// newest (by created_at; `newest` is counted first whatever its timestamp).
    pub async fn rotate_backups(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
        backup_type: &str,
        rotation: usize,
        newest: Option<&str>,
    ) -> Result<Vec<String>, ImageError> {
        let glance = &self.inner.glance;
        let images = glance
            .list(
                ctx,
                &[
                    ("image_type", "backup"),
                    ("backup_type", backup_type),
                    ("instance_uuid", instance_uuid),
                ],
                Some("created_at:desc,id:desc"),
            )
            .await?;
        let ordered = order_backups(images, newest);
        let mut deleted = Vec::new();
        for id in ordered.into_iter().skip(rotation) {
            match glance.delete(ctx, &id).await {
                Ok(()) => {
                    tracing::info!(image_id = %id, %instance_uuid, %backup_type, "rotated out backup");
                    deleted.push(id);
                }
                Err(ImageError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

type IoStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Regroup a byte stream into pieces of about `size` bytes (the last may be
/// shorter); an error passes through after the bytes before it.
pub fn coalesce(
    inner: IoStream,
    size: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(
        (Some(inner), bytes::BytesMut::new()),
        move |(inner, mut buf)| async move {
            let mut inner = inner?;
            loop {
                match inner.next().await {
                    Some(Ok(b)) => {
                        if buf.is_empty() && b.len() >= size {
                            return Some((Ok(b), (Some(inner), buf)));
                        }
                        buf.extend_from_slice(&b);
                        if buf.len() >= size {
                            let out = buf.split().freeze();
                            return Some((Ok(out), (Some(inner), buf)));
                        }
                    }
                    Some(Err(e)) => {
                        if buf.is_empty() {
                            return Some((Err(e), (None, buf)));
                        }
                        // the bytes first, the error on the next poll
                        let out = buf.split().freeze();
                        let rest: IoStream = Box::pin(futures_util::stream::once(async { Err(e) }));
                        return Some((Ok(out), (Some(rest), buf)));
                    }
                    None => {
                        if buf.is_empty() {
                            return None;
                        }
                        let out = buf.split().freeze();
                        return Some((Ok(out), (None, buf)));
                    }
                }
            }
        },
    )
}

/// Backup ids newest first: `newest` leads, the rest keep Glance's created_at
/// descending order (ties broken by id, as the listing asks).
fn order_backups(images: Vec<ImageRecord>, newest: Option<&str>) -> Vec<String> {
    let mut rest: Vec<ImageRecord> = images
        .into_iter()
        .filter(|i| Some(i.id.as_str()) != newest)
        .collect();
    rest.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    newest
        .map(str::to_string)
        .into_iter()
        .chain(rest.into_iter().map(|i| i.id))
        .collect()
}

impl Inner {
    async fn is_cached(&self, reference: &str) -> Result<bool, ImageError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(e) if is_docker_404(&e) => Ok(false),
            Err(e) => Err(docker_err(e)),
        }
    }

    async fn image_ids(&self) -> Result<HashSet<String>, ImageError> {
        Ok(self
            .docker
            .list_images(Some(ListImagesOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(docker_err)?
            .into_iter()
            .map(|i| i.id)
            .collect())
    }

    /// The image ids a load report names (names resolved through Docker).
    async fn resolve(&self, report: &LoadReport) -> Vec<String> {
        let mut ids: Vec<String> = report.ids.clone();
        for n in &report.names {
            if let Ok(i) = self.docker.inspect_image(n).await {
                if let Some(id) = i.id {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// Remove the images a failed load created (those not present before it).
    async fn cleanup(&self, image_id: &str, report: &LoadReport, before: &HashSet<String>) {
        for id in self.resolve(report).await {
            if before.contains(&id) {
                continue;
            }
            match self
                .docker
                .remove_image(
                    &id,
                    Some(RemoveImageOptions {
                        force: true,
                        noprune: false,
                    }),
                    None,
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(%image_id, docker_image = %id, "removed the image of a failed load")
                }
                Err(e) => {
                    tracing::warn!(%image_id, docker_image = %id, error = %e, "cannot remove the image of a failed load")
                }
            }
        }
    }

    async fn fetch(&self, ctx: &RequestContext, image_id: &str) -> Result<String, ImageError> {
        let reference = local_ref(image_id);
        // Another fetch may have finished between our caller's cache check and now.
        if self.is_cached(&reference).await? {
            return Ok(reference);
        }
        let rec = self.glance.get(ctx, image_id).await?;
        if rec.status != "active" {
            return Err(ImageError::NotActive {
                image_id: image_id.into(),
                status: rec.status.clone(),
            });
        }
        match rec.container_format.as_deref() {
            Some("docker") => {}
            other => {
                return Err(ImageError::Unacceptable {
                    image_id: image_id.into(),
                    reason: format!(
                        "its container_format is {}, but the Docker driver boots only container_format 'docker' images (the data of `docker save`)",
                        other.map(|f| format!("'{f}'")).unwrap_or_else(|| "unset".into())
                    ),
                })
            }
        }
        let max = self.cfg.glance.max_image_size;
        if let Some(size) = rec.size {
            if max > 0 && size > max {
                return Err(ImageError::TooLarge {
                    image_id: image_id.into(),
                    size,
                    max,
                });
            }
        }
        let expected = ExpectedHash::from_record(&rec);
        if expected.is_none() {
            tracing::warn!(%image_id, "glance records no hash for the image: its data cannot be verified");
        }
        let (len, data) = self.glance.download(ctx, image_id).await?;
        if let Some(len) = len {
            if max > 0 && len > max {
                return Err(ImageError::TooLarge {
                    image_id: image_id.into(),
                    size: len,
                    max,
                });
            }
        }
        let before = self.image_ids().await?;
        let image_id_owned = image_id.to_string();
        tracing::info!(%image_id, size = ?rec.size, "loading image from glance into docker");

        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(LOAD_QUEUE);
        let pump = tokio::spawn(async move {
            let r = pump(Box::pin(data), &tx, expected, max, image_id_owned, rec.size).await;
            if let Err(PumpError::Fail(e)) = &r {
                // An error frame aborts the request: Docker sees a broken body.
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
            r
        });
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut load = self.docker.import_image(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            bollard::body_try_stream(body),
            None,
        );
        let mut report = LoadReport::default();
        let mut load_err = None;
        while let Some(item) = load.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = &info.stream {
                        report.parse_line(s);
                    }
                }
                Err(e) => {
                    load_err = Some(e.to_string());
                    break;
                }
            }
        }
        drop(load);
        let pumped = pump.await.unwrap_or_else(|e| {
            Err(PumpError::Fail(ImageError::Download {
                image_id: image_id.into(),
                reason: format!("data task failed: {e}"),
            }))
        });
        let fail = match (pumped, load_err) {
            (Err(PumpError::Fail(e)), _) => Some(e),
            (_, Some(reason)) => Some(ImageError::Load {
                image_id: image_id.into(),
                reason,
            }),
            (Err(PumpError::ReceiverGone), None) => Some(ImageError::Load {
                image_id: image_id.into(),
                reason: "docker stopped reading the image data".into(),
            }),
            (Ok(_), None) => None,
        };
        if let Some(e) = fail {
            tracing::warn!(%image_id, error = %e, "image load failed; removing what it created");
            self.cleanup(image_id, &report, &before).await;
            return Err(e);
        }
        let ids = self.resolve(&report).await;
        let docker_id = match ids.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(ImageError::Load {
                    image_id: image_id.into(),
                    reason: "docker load reported no image".into(),
                })
            }
            many => {
                self.cleanup(image_id, &report, &before).await;
                return Err(ImageError::Unacceptable {
                    image_id: image_id.into(),
                    reason: format!("its data holds {} images; one is expected", many.len()),
                });
            }
        };
        if let Err(e) = self
            .docker
            .tag_image(
                &docker_id,
                Some(TagImageOptions {
                    repo: Some(format!("{LOCAL_REPO_PREFIX}{image_id}")),
                    tag: Some("latest".into()),
                }),
            )
            .await
        {
            self.cleanup(image_id, &report, &before).await;
            return Err(docker_err(e));
        }
        tracing::info!(%image_id, docker_image = %docker_id, %reference, "image loaded and tagged");
        Ok(reference)
    }
}

/// Copy Glance's data into the channel Docker reads, hashing and counting on the
/// way. The last [`HOLD_BACK`] bytes are sent only once size and hash check out.
async fn pump(
    mut data: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ImageError>> + Send>>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    expected: Option<ExpectedHash>,
    max: u64,
    image_id: String,
    expected_size: Option<u64>,
) -> Result<u64, PumpError> {
    let hasher = expected
        .as_ref()
        .and_then(|e| Hasher::new(&e.algo))
        .map(HashWorker::start);
    let mut held: VecDeque<Bytes> = VecDeque::new();
    let mut held_len = 0usize;
    let mut total = 0u64;
    let mut stripper = tarfilter::TagStripper::new();
    let mut parts = Vec::new();
    let mut tar_err = None;
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(PumpError::Fail)?;
        total += chunk.len() as u64;
        if max > 0 && total > max {
            return Err(PumpError::Fail(ImageError::TooLarge {
                image_id,
                size: total,
                max,
            }));
        }
        if let Some(h) = &hasher {
            h.update(chunk.clone()).await;
        }
        if tar_err.is_some() {
            // Docker gets no more; the rest is still hashed so that a corrupt
            // download is reported as such
            continue;
        }
        if let Err(e) = stripper.push(chunk, &mut parts) {
            tar_err = Some(e);
            continue;
        }
        // zero-copy: the network's chunks go on to Docker as they are
        for p in parts.drain(..) {
            held_len += p.len();
            held.push_back(p);
        }
        while held
            .front()
            .is_some_and(|f| held_len - f.len() >= HOLD_BACK)
        {
            if let Some(f) = held.pop_front() {
                held_len -= f.len();
                tx.send(Ok(f)).await.map_err(|_| PumpError::ReceiverGone)?;
            }
        }
    }
    if let Some(size) = expected_size {
        if size != total {
            return Err(PumpError::Fail(ImageError::Download {
                image_id,
                reason: format!("got {total} bytes, the image record says {size}"),
            }));
        }
    }
    // the hash speaks first: a corrupt download is a checksum error, not a tar error
    let tar_err = tar_err.or_else(|| stripper.finish().err());
    if let (Some(h), Some(e)) = (hasher, expected) {
        let actual = h.finish().await.map_err(|reason| {
            PumpError::Fail(ImageError::Download {
                image_id: image_id.clone(),
                reason: format!("the hash of its data could not be computed: {reason}"),
            })
        })?;
        if actual != e.value {
            return Err(PumpError::Fail(ImageError::ChecksumMismatch {
                image_id,
                algo: e.algo,
                expected: e.value,
                actual,
            }));
        }
    }
    if let Some(e) = tar_err {
        return Err(PumpError::Fail(ImageError::Unacceptable {
            image_id,
            reason: format!("its data is not a usable `docker save` tarball: {e}"),
        }));
    }
    for f in held {
        tx.send(Ok(f)).await.map_err(|_| PumpError::ReceiverGone)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_report_lines() {
        let mut r = LoadReport::default();
        r.parse_line("Loaded image: nova-docker-test/busybox:latest\n");
        r.parse_line("Loaded image ID: sha256:abc\n");
        assert_eq!(r.names, vec!["nova-docker-test/busybox:latest"]);
        assert_eq!(r.ids, vec!["sha256:abc"]);
    }

    #[test]
    fn expected_hash_prefers_multihash() {
        let mut rec = ImageRecord {
            id: "x".into(),
            checksum: Some("ABC".into()),
            ..Default::default()
        };
        assert_eq!(
            ExpectedHash::from_record(&rec),
            Some(ExpectedHash {
                algo: "md5".into(),
                value: "abc".into()
            })
        );
        rec.os_hash_algo = Some("sha512".into());
        rec.os_hash_value = Some("def".into());
        assert_eq!(ExpectedHash::from_record(&rec).unwrap().algo, "sha512");
        rec.os_hash_algo = Some("whirlpool".into());
        assert_eq!(ExpectedHash::from_record(&rec).unwrap().algo, "md5");
    }

    #[test]
    fn hashes_match_known_values() {
        let mut h = Hasher::new("md5").unwrap();
        h.update(b"abc");
        assert_eq!(h.hex(), "900150983cd24fb0d6963f7d28e17f72");
        let mut h = Hasher::new("sha256").unwrap();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(
            h.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Hasher::new("SHA512").unwrap();
        h.update(b"abc");
        assert!(h.hex().starts_with("ddaf35a193617aba"));
    }

    fn data(
        chunks: Vec<&'static [u8]>,
    ) -> std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ImageError>> + Send>> {
        Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    /// A `docker save`-like tarball with a layer of `n` bytes, tagged in its manifest.
    fn tarball(n: usize) -> &'static [u8] {
        let mut b = tar::Builder::new(Vec::new());
        for (path, body) in [
            ("l1/layer.tar", vec![7u8; n]),
            (
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":["glance/victim:latest"],"Layers":["l1/layer.tar"]}]"#.to_vec(),
            ),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, &body[..]).unwrap();
        }
        Box::leak(b.into_inner().unwrap().into_boxed_slice())
    }

    fn md5_of(parts: &[&[u8]]) -> ExpectedHash {
        let mut h = Hasher::new("md5").unwrap();
        for p in parts {
            h.update(p);
        }
        ExpectedHash {
            algo: "md5".into(),
            value: h.hex(),
        }
    }

    fn received(rx: &mut tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Vec<u8> {
        let mut got = Vec::new();
        while let Ok(Ok(b)) = rx.try_recv() {
            got.extend_from_slice(&b);
        }
        got
    }

    #[tokio::test]
    async fn pump_withholds_the_tail_on_mismatch() {
        let tb = tarball(HOLD_BACK * 4);
        let net = || tb.chunks(64 * 1024).collect::<Vec<_>>();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let bad = ExpectedHash {
            algo: "md5".into(),
            value: "00".into(),
        };
        let r = pump(data(net()), &tx, Some(bad), 0, "i".into(), None).await;
        assert!(matches!(
            r,
            Err(PumpError::Fail(ImageError::ChecksumMismatch { .. }))
        ));
        let got = received(&mut rx);
        assert!(
            !got.is_empty() && got.len() < tb.len(),
            "the tail must not reach docker"
        );

        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let n = pump(
            data(net()),
            &tx,
            Some(md5_of(&[tb])),
            0,
            "i".into(),
            Some(tb.len() as u64),
        )
        .await
        .ok()
        .unwrap();
        assert_eq!(n, tb.len() as u64);
        // what docker got is the tarball without its tags
        let mut want = Vec::new();
        let mut f = tarfilter::TagStripper::new();
        f.push(Bytes::from_static(tb), &mut want).unwrap();
        assert_eq!(received(&mut rx), want.concat());
        let text = String::from_utf8_lossy(&want.concat()).into_owned();
        assert!(text.contains(r#"[{"Config":"c.json","Layers":["l1/layer.tar"]}]"#));
        assert!(!text.contains("victim"));
    }

    #[tokio::test]
    async fn pump_reports_a_corrupt_download_before_a_broken_tarball() {
        let tb = tarball(1000);
        let mut broken = tb.to_vec();
        broken[0] ^= 0xff; // the first tar header
        let broken: &'static [u8] = Box::leak(broken.into_boxed_slice());
        // Glance's hash is of the good data: a checksum error
        let (tx, _rx) = tokio::sync::mpsc::channel(1024);
        let r = pump(
            data(vec![broken]),
            &tx,
            Some(md5_of(&[tb])),
            0,
            "i".into(),
            None,
        )
        .await;
        assert!(matches!(
            r,
            Err(PumpError::Fail(ImageError::ChecksumMismatch { .. }))
        ));
        // Glance's hash is of the broken data: the tarball is unacceptable
        let (tx, _rx) = tokio::sync::mpsc::channel(1024);
        let r = pump(
            data(vec![broken]),
            &tx,
            Some(md5_of(&[broken])),
            0,
            "i".into(),
            None,
        )
        .await;
        match r {
            Err(PumpError::Fail(e @ ImageError::Unacceptable { .. })) => {
                assert!(
                    e.to_string().contains("not a usable `docker save` tarball"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn pump_enforces_max_size() {
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        let r = pump(
            data(vec![b"12345", b"6789"]),
            &tx,
            None,
            8,
            "i".into(),
            None,
        )
        .await;
        assert!(matches!(
            r,
            Err(PumpError::Fail(ImageError::TooLarge {
                size: 9,
                max: 8,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn coalesce_regroups_and_keeps_errors() {
        let parts: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"cd")),
            Ok(Bytes::from_static(b"e")),
            Err(std::io::Error::other("boom")),
        ];
        let out: Vec<_> = coalesce(Box::pin(futures_util::stream::iter(parts)), 3)
            .collect()
            .await;
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().unwrap().as_ref(), b"abcd");
        assert_eq!(out[1].as_ref().unwrap().as_ref(), b"e");
        assert!(out[2].is_err());
    }

    #[test]
    fn backups_order_newest_first() {
        let rec = |id: &str, t: &str| ImageRecord {
            id: id.into(),
            created_at: Some(t.into()),
            ..Default::default()
        };
        let v = vec![
            rec("a", "2024-01-01T00:00:00Z"),
            rec("new", "2024-01-01T00:00:00Z"),
            rec("c", "2024-01-03T00:00:00Z"),
        ];
        assert_eq!(order_backups(v, Some("new")), vec!["new", "c", "a"]);
    }

    #[test]
    fn errors_become_nova_exceptions() {
        let e: NovaException = ImageError::Unacceptable {
            image_id: "i1".into(),
            reason: "its container_format is 'bare'".into(),
        }
        .into();
        assert_eq!(e.class, "ImageUnacceptable");
        assert!(e.message.contains("'bare'"));
        let e: NovaException = ImageError::NotFound {
            image_id: "i2".into(),
        }
        .into();
        assert_eq!(e.class, "ImageNotFound");
        let e: NovaException = ImageError::TooLarge {
            image_id: "i3".into(),
            size: 10,
            max: 5,
        }
        .into();
        assert_eq!(e.class, "ImageUnacceptable");
        assert_eq!(e.kwargs["image_id"], "i3");
        let e: NovaException = ImageError::Unavailable {
            servers: "http://g".into(),
            reason: "refused".into(),
        }
        .into();
        assert_eq!(e.class, "GlanceConnectionFailed");
    }
}
