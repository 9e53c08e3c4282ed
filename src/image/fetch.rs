//! The way in: [`ImageService::ensure_image`], one shared download per uncached
//! image, the checks of the Glance record before it, the tag after the load, and
//! the removal of what a failed load left.

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::context::RequestContext;

use super::error::engine_err;
use super::hash::ExpectedHash;
use super::registry::{self, Reference, RegistryError};
use super::{
    local_ref, pump, validate_image_id, ImageError, ImageRecord, ImageService, Inner, LoadReport,
    SharedFetch, LOCAL_REPO_PREFIX,
};

/// Where a load's data comes from, and what it must check out as.
struct Source {
    data: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ImageError>> + Send>>,
    /// The hash of the whole (Glance's record).
    expected: Option<ExpectedHash>,
    /// The length of the whole.
    size: Option<u64>,
    /// The id Docker must give the loaded image (a registry image's config digest).
    docker_id: Option<String>,
}

/// A registry's failure as the boot's fault: the reference or its content is
/// unacceptable, or the registry could not deliver it.
fn registry_err(image_id: &str, e: RegistryError) -> ImageError {
    if e.is_transient() {
        ImageError::Download {
            image_id: image_id.into(),
            reason: e.to_string(),
        }
    } else {
        ImageError::Unacceptable {
            image_id: image_id.into(),
            reason: e.to_string(),
        }
    }
}

impl ImageService {
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
        if self.inner.known_present(&reference) {
            crate::metrics::image_cache(true);
            return Ok(reference);
        }
        if self.inner.is_cached(&reference).await? {
            tracing::debug!(%image_id, %reference, "image cached");
            crate::metrics::image_cache(true);
            self.inner.remember(&reference);
            return Ok(reference);
        }
        crate::metrics::image_cache(false);
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
                    let download = async move {
                        let r = inner.fetch(&ctx, &id).await;
                        inner
                            .inflight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        r
                    };
                    let handle = match self.inner.tasks.get() {
                        Some(t) => t.spawn_with_result(download),
                        None => tokio::spawn(download),
                    };
                    let image_id_for_error = image_id.to_string();
                    let f: SharedFetch = async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(ImageError::Download {
                                image_id: image_id_for_error.clone(),
                                reason: format!("the download task failed: {e}"),
                            })
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

    /// Pre-cache the image (Nova's `cache_images`): Ok(true) when it was fetched
    /// now, Ok(false) when it was present, in which case it is tagged again so
    /// that its age in the cache (what [`Self::prune_unused`] goes by) starts
    /// again, as Nova's own image cache does for a pre-cached image.
    pub async fn precache(&self, ctx: &RequestContext, image_id: &str) -> Result<bool, ImageError> {
        validate_image_id(image_id)?;
        let reference = local_ref(image_id);
        if self.inner.is_cached(&reference).await? {
            self.inner
                .engine
                .tag(
                    &reference,
                    &format!("{LOCAL_REPO_PREFIX}{image_id}"),
                    "latest",
                )
                .await
                .map_err(engine_err)?;
            self.inner.remember(&reference);
            return Ok(false);
        }
        self.ensure_image(ctx, image_id).await?;
        Ok(true)
    }

    /// The engine lacks the image of `image_id` after all (removed by hand):
    /// the next [`Self::ensure_image`] asks the engine, and loads it again.
    pub fn forget(&self, image_id: &str) {
        self.inner.forget(&local_ref(image_id));
    }
}

impl Inner {
    fn known_present(&self, reference: &str) -> bool {
        self.present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(reference)
    }

    pub(super) fn remember(&self, reference: &str) {
        self.present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reference.to_string());
    }

    pub(super) fn forget(&self, reference: &str) {
        self.present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(reference);
    }

    async fn is_cached(&self, reference: &str) -> Result<bool, ImageError> {
        match self.engine.inspect(reference).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(engine_err(e)),
        }
    }

    async fn image_ids(&self) -> Result<HashSet<String>, ImageError> {
        Ok(self
            .engine
            .list(true, None)
            .await
            .map_err(engine_err)?
            .into_iter()
            .map(|i| i.id)
            .collect())
    }

    /// The image ids a load report names (names resolved through Docker).
    async fn resolve(&self, report: &LoadReport) -> Vec<String> {
        let mut ids: Vec<String> = report.ids.clone();
        for n in &report.names {
            if let Ok(i) = self.engine.inspect(n).await {
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
            match self.engine.remove(&id, true).await {
                Ok(_) => {
                    tracing::info!(%image_id, docker_image = %id, "removed the image of a failed load")
                }
                Err(e) => {
                    tracing::warn!(%image_id, docker_image = %id, error = %e, "cannot remove the image of a failed load")
                }
            }
        }
    }

    /// The data of a tarball image: Glance's, with the record's size and hash.
    async fn glance_source(
        &self,
        ctx: &RequestContext,
        image_id: &str,
        rec: &ImageRecord,
    ) -> Result<Source, ImageError> {
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
        let expected = ExpectedHash::from_record(rec);
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
        tracing::info!(%image_id, size = ?rec.size, "loading image from glance into docker");
        Ok(Source {
            data: Box::pin(data),
            expected,
            size: rec.size,
            docker_id: None,
        })
    }

    /// The data of a registry image: the tarball assembled from its blobs, each
    /// checked against its digest.
    async fn registry_source(&self, image_id: &str, text: &str) -> Result<Source, ImageError> {
        let err = |e: RegistryError| registry_err(image_id, e);
        let reference = Reference::parse(text).map_err(err)?;
        let pull = registry::open_pull(self.registry.clone(), reference.clone())
            .await
            .map_err(err)?;
        let max = self.cfg.glance.max_image_size;
        if max > 0 && pull.size > max {
            return Err(ImageError::TooLarge {
                image_id: image_id.into(),
                size: pull.size,
                max,
            });
        }
        tracing::info!(%image_id, %reference, manifest = %pull.manifest_digest, bytes = pull.download_size,
            "pulling image from its registry into docker");
        let id = image_id.to_string();
        Ok(Source {
            data: Box::pin(pull.data.map(move |r| r.map_err(|e| registry_err(&id, e)))),
            expected: None,
            size: Some(pull.size),
            docker_id: Some(pull.image_id),
        })
    }

    async fn fetch(&self, ctx: &RequestContext, image_id: &str) -> Result<String, ImageError> {
        let reference = local_ref(image_id);
        // Another fetch may have finished between our caller's cache check and now.
        if self.is_cached(&reference).await? {
            self.remember(&reference);
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
        let (source, from) = match registry::reference_of(&rec) {
            Some(text) => (self.registry_source(image_id, text).await?, "registry"),
            None => (self.glance_source(ctx, image_id, &rec).await?, "glance"),
        };
        let size = source.size;
        let max = self.cfg.glance.max_image_size;
        let before = self.image_ids().await?;
        let (report, fail) = pump::load(
            self.engine.as_ref(),
            source.data,
            source.expected,
            max,
            image_id,
            source.size,
        )
        .await;
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
        if let Some(want) = source.docker_id.filter(|w| *w != docker_id) {
            self.cleanup(image_id, &report, &before).await;
            return Err(ImageError::Load {
                image_id: image_id.into(),
                reason: format!("docker made image {docker_id} of it, not {want}"),
            });
        }
        if let Err(e) = self
            .engine
            .tag(
                &docker_id,
                &format!("{LOCAL_REPO_PREFIX}{image_id}"),
                "latest",
            )
            .await
        {
            self.cleanup(image_id, &report, &before).await;
            return Err(engine_err(e));
        }
        tracing::info!(%image_id, docker_image = %docker_id, %reference, "image loaded and tagged");
        crate::metrics::image_loaded(from, size.unwrap_or(0));
        self.remember(&reference);
        Ok(reference)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::image::testing::{ctx, image_id_of, save_tarball, stack};

    const FILE: &str = "GET /v2/images/img1/file";

    #[tokio::test]
    async fn concurrent_boots_share_one_download_and_tags_stay_out() {
        let (glance, engine, svc) = stack("").await;
        // another Glance image is cached; the tarball names its tag, and busybox's
        engine
            .state()
            .put("sha256:victim", Some("glance/victim:latest"), Vec::new());
        let tar = save_tarball(&[("config-1", &["glance/victim:latest", "busybox:latest"][..])]);
        {
            let mut g = glance.state();
            g.add_image("img1", &tar);
            g.file_delay = Duration::from_millis(200);
        }
        let c = ctx();
        let calls = (0..10).map(|_| svc.ensure_image(&c, "img1"));
        for r in futures_util::future::join_all(calls).await {
            assert_eq!(r.unwrap(), "glance/img1:latest");
        }
        assert_eq!(glance.state().count(FILE), 1);
        assert_eq!(engine.state().loads, 1);
        let tags = engine.state().tags();
        let want: std::collections::BTreeMap<String, String> = [
            ("glance/img1:latest".to_string(), image_id_of("config-1")),
            (
                "glance/victim:latest".to_string(),
                "sha256:victim".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(tags, want, "the tarball's own tags reach no image");
        // cached: no second download
        assert_eq!(
            svc.ensure_image(&c, "img1").await.unwrap(),
            "glance/img1:latest"
        );
        assert_eq!(glance.state().count(FILE), 1);
        assert!(svc.inner.inflight.lock().unwrap().is_empty());
    }

    /// A boot of a cached image does not ask the engine again; an image the
    /// engine lost (removed by hand) is loaded again once forgotten.
    #[tokio::test]
    async fn a_present_image_is_remembered_until_forgotten() {
        let (glance, engine, svc) = stack("").await;
        glance
            .state()
            .add_image("img1", &save_tarball(&[("config-1", &[][..])]));
        let c = ctx();
        assert_eq!(
            svc.ensure_image(&c, "img1").await.unwrap(),
            "glance/img1:latest"
        );
        // the image goes behind our back: the next boot still finds it known
        engine.state().images.clear();
        assert_eq!(
            svc.ensure_image(&c, "img1").await.unwrap(),
            "glance/img1:latest"
        );
        assert_eq!(engine.state().loads, 1, "no engine lookup, no load");
        // told that the engine lacks it: loaded again
        svc.forget("img1");
        assert_eq!(
            svc.ensure_image(&c, "img1").await.unwrap(),
            "glance/img1:latest"
        );
        assert_eq!(engine.state().loads, 2);
        assert_eq!(glance.state().count(FILE), 2);
    }

    #[tokio::test]
    async fn a_shared_failure_reaches_every_caller_and_the_next_call_retries() {
        let (glance, engine, svc) = stack("").await;
        let tar = save_tarball(&[("config-1", &[][..])]);
        {
            let mut g = glance.state();
            g.add_image("img1", &tar)
                .insert("os_hash_value".into(), serde_json::json!("00"));
            g.file_delay = Duration::from_millis(100);
        }
        let c = ctx();
        let calls = (0..4).map(|_| svc.ensure_image(&c, "img1"));
        for r in futures_util::future::join_all(calls).await {
            assert!(
                matches!(r, Err(ImageError::ChecksumMismatch { ref algo, .. }) if algo == "sha512"),
                "{r:?}"
            );
        }
        assert_eq!(glance.state().count(FILE), 1);
        assert!(engine.state().images.is_empty(), "nothing was kept");
        // the failure is not cached: the next call downloads again
        let r = svc.ensure_image(&c, "img1").await;
        assert!(matches!(r, Err(ImageError::ChecksumMismatch { .. })));
        assert_eq!(glance.state().count(FILE), 2);
    }

    #[tokio::test]
    async fn a_failed_load_removes_what_it_created_and_nothing_else() {
        let (glance, engine, svc) = stack("").await;
        // one image of the tarball was there before the load: it stays
        engine
            .state()
            .put(&image_id_of("old"), Some("old:latest"), Vec::new());
        glance
            .state()
            .add_image("img1", &save_tarball(&[("old", &[][..]), ("new", &[][..])]));
        engine.state().fail_load_after_report = Some("no space left on device".into());
        let e = svc.ensure_image(&ctx(), "img1").await.unwrap_err();
        assert_eq!(
            e,
            ImageError::Load {
                image_id: "img1".into(),
                reason: "no space left on device".into()
            }
        );
        let ids: Vec<String> = engine.state().images.keys().cloned().collect();
        assert_eq!(ids, vec![image_id_of("old")]);

        // two images in one tarball: refused, the new one removed
        engine.state().fail_load_after_report = None;
        let e = svc.ensure_image(&ctx(), "img1").await.unwrap_err();
        match &e {
            ImageError::Unacceptable { reason, .. } => {
                assert_eq!(reason, "its data holds 2 images; one is expected")
            }
            other => panic!("{other:?}"),
        }
        let ids: Vec<String> = engine.state().images.keys().cloned().collect();
        assert_eq!(ids, vec![image_id_of("old")]);
    }

    #[tokio::test]
    async fn a_failed_tag_removes_the_loaded_image() {
        let (glance, engine, svc) = stack("").await;
        glance
            .state()
            .add_image("img1", &save_tarball(&[("config-1", &[][..])]));
        engine.state().fail_tag = true;
        let e = svc.ensure_image(&ctx(), "img1").await.unwrap_err();
        assert_eq!(e, ImageError::Docker("tag refused".into()));
        assert_eq!(engine.state().loads, 1);
        assert!(engine.state().images.is_empty());
    }

    #[tokio::test]
    async fn the_record_is_checked_before_any_download() {
        let (glance, engine, svc) = stack("max_image_size = 1000\n").await;
        let tar = save_tarball(&[("config-1", &[][..])]);
        {
            let mut g = glance.state();
            for id in ["bare", "big", "queued"] {
                g.add_image(id, &tar);
            }
            let mut set = |id: &str, k: &str, v: &str| {
                let rec = g.records.get_mut(id).unwrap();
                rec.insert(k.into(), serde_json::json!(v));
            };
            set("bare", "container_format", "bare");
            set("queued", "status", "queued");
        }
        let e = svc.ensure_image(&ctx(), "bare").await.unwrap_err();
        assert!(e.to_string().contains("container_format is 'bare'"), "{e}");
        let e = svc.ensure_image(&ctx(), "big").await.unwrap_err();
        assert!(matches!(e, ImageError::TooLarge { max: 1000, .. }), "{e}");
        let e = svc.ensure_image(&ctx(), "queued").await.unwrap_err();
        assert!(matches!(e, ImageError::NotActive { ref status, .. } if status == "queued"));
        let e = svc.ensure_image(&ctx(), "missing").await.unwrap_err();
        assert!(matches!(e, ImageError::NotFound { .. }));
        let g = glance.state();
        assert!(
            g.requests.iter().all(|r| !r.ends_with("/file")),
            "{:?}",
            g.requests
        );
        assert_eq!(engine.state().loads, 0);
    }
}
