//! Backups: a snapshot of type `backup`, then the rotation that keeps only the
//! newest of an instance's backups of one type.

use crate::context::RequestContext;

use super::{ImageError, ImageRecord, ImageService, SnapshotProps};

impl ImageService {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::image::testing::{ctx, stack, GlanceStub};

    /// Backups b1 (oldest) .. b3 of u1/daily, one weekly, one of another
    /// instance, and the queued record of the new backup, created (by the clock
    /// of Glance) before them all.
    async fn setup() -> (GlanceStub, ImageService) {
        let (glance, engine, svc) = stack("").await;
        engine
            .state()
            .containers
            .insert("nova-u1".into(), vec![7; 1000]);
        {
            let mut g = glance.state();
            for (id, day, uuid, kind) in [
                ("b1", 1, "u1", "daily"),
                ("b2", 2, "u1", "daily"),
                ("b3", 3, "u1", "daily"),
                ("w1", 1, "u1", "weekly"),
                ("o1", 1, "u2", "daily"),
            ] {
                let r = g.add_record(id, "active");
                r.insert(
                    "created_at".into(),
                    json!(format!("2024-01-0{day}T00:00:00Z")),
                );
                r.insert("image_type".into(), json!("backup"));
                r.insert("backup_type".into(), json!(kind));
                r.insert("instance_uuid".into(), json!(uuid));
            }
            g.add_record("new", "queued")
                .insert("created_at".into(), json!("2023-12-01T00:00:00Z"));
        }
        (glance, svc)
    }

    fn props() -> SnapshotProps {
        SnapshotProps {
            instance_uuid: "u1".into(),
            ..Default::default()
        }
    }

    fn ids(glance: &GlanceStub) -> Vec<String> {
        glance.state().records.keys().cloned().collect()
    }

    #[tokio::test]
    async fn backup_keeps_the_newest_of_its_instance_and_type() {
        // the new one counts first, whatever its created_at; rotation 0 deletes
        // it too
        for (rotation, want_deleted, want_left) in [
            (2, &["b2", "b1"][..], &["b3", "new", "o1", "w1"][..]),
            (0, &["new", "b3", "b2", "b1"][..], &["o1", "w1"][..]),
        ] {
            let (glance, svc) = setup().await;
            let (rec, deleted) = svc
                .backup(&ctx(), "nova-u1", "new", props(), "daily", rotation)
                .await
                .unwrap();
            assert_eq!(rec.property("image_type"), Some("backup"));
            assert_eq!(rec.property("backup_type"), Some("daily"));
            assert_eq!(rec.status, "active");
            assert_eq!(deleted, want_deleted, "rotation {rotation}");
            assert_eq!(ids(&glance), want_left, "rotation {rotation}");
        }
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
}
