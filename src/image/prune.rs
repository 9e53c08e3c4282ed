//! Cache pruning: cached `glance/*` images no instance uses go after a minimum age.

use std::collections::HashSet;

use super::error::engine_err;
use super::{ImageError, ImageService, LOCAL_REPO_PREFIX};

impl ImageService {
    /// Remove cached `glance/*` images that no instance uses (`in_use` holds Glance
    /// image ids; local references and Docker image ids are accepted too) and that
    /// were cached longer ago than `remove_unused_original_minimum_age_seconds`.
    /// Returns the references removed. An image Docker refuses to remove (a
    /// container still uses it) is skipped.
    pub async fn prune_unused(&self, in_use: &HashSet<String>) -> Result<Vec<String>, ImageError> {
        let engine = &self.inner.engine;
        let images = engine
            .list(false, Some(&format!("{LOCAL_REPO_PREFIX}*")))
            .await
            .map_err(engine_err)?;
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
                let tagged_at = match engine.inspect(tag).await {
                    Ok(i) => i
                        .last_tag_time
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc)),
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(engine_err(e)),
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
                match engine.remove(tag, false).await {
                    Ok(_) => {
                        self.inner.forget(tag);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testing::stack;

    #[tokio::test]
    async fn prune_removes_old_unused_cached_images_only() {
        let (glance, engine, svc) =
            stack("[image_cache]\nremove_unused_original_minimum_age_seconds = 3600\n").await;
        let old = Some("2020-01-01T00:00:00Z".to_string());
        {
            let mut e = engine.state();
            for (id, tag) in [
                ("sha256:a", "glance/a:latest"),
                ("sha256:b", "glance/b:latest"),
                ("sha256:c", "glance/c:latest"),
                ("sha256:d", "glance/d:latest"),
                ("sha256:e", "glance/e:latest"),
                ("sha256:f", "other/f:latest"),
            ] {
                e.put(id, Some(tag), Vec::new());
            }
            for (id, img) in e.images.iter_mut() {
                if id != "sha256:c" {
                    img.last_tag_time = old.clone();
                }
            }
            // no usable tag time: the creation time counts
            let d = e.images.get_mut("sha256:d").unwrap();
            d.last_tag_time = Some("0001-01-01T00:00:00Z".into());
            d.created = 1_000_000;
            e.refuse_remove.insert("glance/e:latest".into());
        }
        // a is in use by its Glance id, c was tagged just now, d has no tag time
        // but an old creation time, and the engine refuses to remove e
        let in_use: HashSet<String> = ["a".to_string()].into_iter().collect();
        let removed = svc.prune_unused(&in_use).await.unwrap();
        assert_eq!(removed, vec!["glance/b:latest", "glance/d:latest"]);
        let left: Vec<String> = engine.state().tags().into_keys().collect();
        assert_eq!(
            left,
            vec![
                "glance/a:latest",
                "glance/c:latest",
                "glance/e:latest",
                "other/f:latest"
            ]
        );
        let in_use: HashSet<String> = ["sha256:c".to_string()].into_iter().collect();
        let svc = glance.service(engine.clone(), "");
        let removed = svc.prune_unused(&in_use).await.unwrap();
        assert_eq!(removed, vec!["glance/a:latest"]);
    }
}
