//! The way out: [`ImageService::snapshot`] commits a container and streams the
//! engine's export of the commit into Glance.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Map, Value};

use crate::context::RequestContext;

use super::engine::{channel_stream, ByteStream, CommitRequest};
use super::registry;
use super::{
    patch_ops_for, validate_image_id, ImageError, ImageRecord, ImageService, PatchOp,
    SNAPSHOT_REPO_PREFIX,
};

/// Data is sent to Glance in chunks of about this size.
const UPLOAD_CHUNK: usize = 64 * 1024;

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
    /// `backup` for a backup; None keeps what Nova's API recorded.
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
        // Nova's API set image_type (`snapshot`, or what the user's metadata
        // asked for) when it created the record: only a backup says it again
        if let Some(t) = &self.image_type {
            m.insert("image_type".into(), json!(t));
        }
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

impl ImageService {
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
        let engine = &self.inner.engine;
        let repo = format!("{SNAPSHOT_REPO_PREFIX}{image_id}");
        let commit = engine
            .commit(CommitRequest {
                container: container.to_string(),
                repo: repo.clone(),
                tag: "latest".into(),
                comment: format!("nova snapshot to glance image {image_id}"),
                pause: true,
            })
            .await;
        let commit_id = match commit {
            Ok(id) => id,
            Err(e) => {
                let err = if e.is_not_found() {
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
        if let Err(e) = engine.remove(&format!("{repo}:latest"), true).await {
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

    /// After a crash cut off a snapshot or backup of `instance_uuid`: delete
    /// the images of that instance Glance still has half-made (`queued` or
    /// `saving`: created by Nova's API, their upload never finished), and the
    /// transient commits of them in the engine. Returns the ids deleted.
    pub async fn discard_interrupted_snapshots(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
    ) -> Result<Vec<String>, ImageError> {
        let mut gone = Vec::new();
        for status in ["queued", "saving"] {
            let found = self
                .inner
                .glance
                .list(
                    ctx,
                    &[("instance_uuid", instance_uuid), ("status", status)],
                    None,
                )
                .await?;
            for rec in found {
                self.delete_failed(ctx, &rec.id).await;
                let commit = format!("{SNAPSHOT_REPO_PREFIX}{}:latest", rec.id);
                if let Err(e) = self.inner.engine.remove(&commit, true).await {
                    if !e.is_not_found() {
                        tracing::warn!(image_id = %rec.id, error = %e, "cannot remove the commit of an interrupted snapshot");
                    }
                }
                gone.push(rec.id);
            }
        }
        Ok(gone)
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
        let mut ops = patch_ops_for(&rec, &props.to_fields());
        // Nova copies the base image's properties into the snapshot's record: a
        // registry reference would make the snapshot boot its base image
        if rec.raw.contains_key(registry::REF_PROPERTY) {
            ops.push(PatchOp::Remove(registry::REF_PROPERTY.into()));
        }
        if !ops.is_empty() {
            glance.patch(ctx, image_id, &ops).await?;
        }
        let data: ByteStream = Box::pin(
            self.inner
                .engine
                .export(commit_id)
                .map(|r| r.map_err(|e| std::io::Error::other(format!("docker save: {e}")))),
        );
        // Glance reads the chunked body 64 KiB at a time: chunks of that size suit it
        // best (larger ones get re-copied by gunicorn's reader, smaller ones cost
        // per-chunk overhead).
        match self.inner.cfg.registry.snapshot_target(image_id) {
            None => {
                glance
                    .upload(ctx, image_id, coalesce(data, UPLOAD_CHUNK))
                    .await?
            }
            Some(target) => {
                // one `docker save`, read once, into Glance and the registry at once
                let (to_glance, glance_rx) = tokio::sync::mpsc::channel(TEE_QUEUE);
                let (to_registry, registry_rx) = tokio::sync::mpsc::channel(TEE_QUEUE);
                let upload = glance.upload(
                    ctx,
                    image_id,
                    coalesce(channel_stream(glance_rx), UPLOAD_CHUNK),
                );
                let push = async {
                    registry::push_save(&self.inner.registry, &target, channel_stream(registry_rx))
                        .await
                        .map_err(|e| ImageError::Upload {
                            image_id: image_id.into(),
                            reason: format!("push to the registry: {e}"),
                        })
                };
                let ((), (), pushed) =
                    tokio::try_join!(tee(data, to_glance, to_registry), upload, push)?;
                tracing::info!(%image_id, reference = %pushed.reference, uploaded = pushed.uploaded,
                    existing = pushed.existing, bytes = pushed.bytes, "snapshot pushed to the registry");
                glance
                    .patch(
                        ctx,
                        image_id,
                        &[PatchOp::Add(
                            registry::REF_PROPERTY.into(),
                            json!(pushed.reference.to_string()),
                        )],
                    )
                    .await?;
            }
        }
        let rec = glance.get(ctx, image_id).await?;
        if rec.status != "active" {
            return Err(ImageError::Upload {
                image_id: image_id.into(),
                reason: format!("image status is {} after the upload", rec.status),
            });
        }
        Ok(rec)
    }
}

/// Chunks of a snapshot that may wait for the slower of its two readers.
const TEE_QUEUE: usize = 8;

type Chunk = Result<Bytes, std::io::Error>;

/// Copy `data` to both `a` and `b`. A reader that went away has failed (its own
/// result says why): the other then gets an error, never a short clean end.
async fn tee(
    mut data: ByteStream,
    a: tokio::sync::mpsc::Sender<Chunk>,
    b: tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), ImageError> {
    let cut = || std::io::Error::other("the other copy of the snapshot failed");
    while let Some(item) = data.next().await {
        match item {
            Ok(chunk) => {
                let sent_a = a.send(Ok(chunk.clone())).await.is_ok();
                let sent_b = sent_a && b.send(Ok(chunk)).await.is_ok();
                if !sent_b {
                    let _ = a.send(Err(cut())).await;
                    let _ = b.send(Err(cut())).await;
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = a
                    .send(Err(std::io::Error::new(e.kind(), e.to_string())))
                    .await;
                let _ = b.send(Err(e)).await;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Regroup a byte stream into pieces of about `size` bytes (the last may be
/// shorter); an error passes through after the bytes before it.
pub fn coalesce(
    inner: ByteStream,
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
                        let rest: ByteStream =
                            Box::pin(futures_util::stream::once(async { Err(e) }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testing::{ctx, stack};

    fn props() -> SnapshotProps {
        SnapshotProps {
            instance_uuid: "u1".into(),
            user_id: Some("user".into()),
            owner: Some("project".into()),
            base_image_ref: Some("base".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn snapshot_commits_uploads_and_drops_the_commit() {
        let (glance, engine, svc) = stack("").await;
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        engine
            .state()
            .containers
            .insert("nova-u1".into(), content.clone());
        // as Nova's API made it, with the user's metadata image_type=test and the
        // base image's properties (a registry reference among them)
        {
            let mut g = glance.state();
            let rec = g.add_record("snap1", "queued");
            rec.insert("image_type".into(), json!("test"));
            rec.insert(
                "docker_image_ref".into(),
                json!("reg.example:5000/app@sha256:00"),
            );
        }
        let rec = svc
            .snapshot(&ctx(), "nova-u1", "snap1", props())
            .await
            .unwrap();
        assert_eq!(rec.status, "active");
        assert_eq!(rec.container_format.as_deref(), Some("docker"));
        assert_eq!(rec.disk_format.as_deref(), Some("raw"));
        // what Nova's API recorded stays (a user's image_type metadata too), but
        // the snapshot's data is its own: it names no registry image
        assert_eq!(rec.property("image_type"), Some("test"));
        assert_eq!(rec.property("docker_image_ref"), None);
        for (k, v) in [
            ("instance_uuid", "u1"),
            ("user_id", "user"),
            ("owner_id", "project"),
            ("base_image_ref", "base"),
            ("image_location", "snapshot"),
        ] {
            assert_eq!(rec.property(k), Some(v), "{k}");
        }
        assert_eq!(glance.state().data["snap1"], content);
        let e = engine.state();
        assert_eq!(
            e.commits,
            vec![CommitRequest {
                container: "nova-u1".into(),
                repo: "nova-snapshot/snap1".into(),
                tag: "latest".into(),
                comment: "nova snapshot to glance image snap1".into(),
                pause: true,
            }]
        );
        assert!(e.images.is_empty(), "the committed image is gone");
    }

    #[tokio::test]
    async fn a_failed_snapshot_deletes_its_image() {
        let (glance, engine, svc) = stack("").await;
        glance.state().add_record("snap1", "queued");
        let e = svc
            .snapshot(&ctx(), "nova-missing", "snap1", props())
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ImageError::Snapshot {
                image_id: "snap1".into(),
                reason: "container nova-missing not found".into()
            }
        );
        assert!(glance.state().records.is_empty());

        // the export breaks off: the upload fails, the image and the commit go
        engine
            .state()
            .containers
            .insert("nova-u1".into(), vec![1; 50_000]);
        engine.state().fail_export = Some("unexpected EOF".into());
        glance.state().add_record("snap2", "queued");
        let e = svc
            .snapshot(&ctx(), "nova-u1", "snap2", props())
            .await
            .unwrap_err();
        assert!(matches!(e, ImageError::Upload { .. }), "{e}");
        assert!(glance.state().records.is_empty());
        assert!(engine.state().images.is_empty());
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
}
