//! A registry's catalogue as Glance images (`nova-docker-compute mirror-registry`):
//! one image per repository and tag, named `<repository>:<tag>`, naming the tag's
//! current manifest by digest in [`REF_PROPERTY`], and found again on the next
//! run by [`SOURCE_PROPERTY`] (`<registry>/<repository>:<tag>`). A re-run changes
//! nothing while the registry is unchanged; a new tag becomes a new image; a
//! moved tag gets its image's reference updated (images booted before keep the
//! content they booted).

use serde_json::{json, Map, Value};

use super::{Reference, RegistryClient, RegistryError, REF_PROPERTY};
use crate::context::RequestContext;
use crate::image::{GlanceClient, ImageError, PatchOp};

/// The Glance property that says which registry tag an image mirrors.
pub const SOURCE_PROPERTY: &str = "docker_registry_source";

/// What a mirror run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MirrorReport {
    /// `<repository>:<tag>` of the images created.
    pub created: Vec<String>,
    /// ... of the images whose reference moved.
    pub updated: Vec<String>,
    pub unchanged: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Glance(#[from] ImageError),
}

/// What to mirror.
#[derive(Debug, Clone)]
pub struct MirrorRequest {
    /// `host[:port]`.
    pub registry: String,
    /// Only these repositories (empty: the whole catalogue).
    pub repositories: Vec<String>,
    /// Glance visibility of created images (`public`, `shared`, ...).
    pub visibility: String,
}

pub async fn mirror(
    client: &RegistryClient,
    glance: &GlanceClient,
    ctx: &RequestContext,
    req: &MirrorRequest,
) -> Result<MirrorReport, MirrorError> {
    let repos = if req.repositories.is_empty() {
        client.catalog(&req.registry).await?
    } else {
        req.repositories.clone()
    };
    let mut report = MirrorReport::default();
    for repo in repos {
        let base = Reference::parse(&format!("{}/{repo}", req.registry))?;
        let mut tags = client.tags(&base).await?;
        tags.sort();
        for tag in tags {
            let tagged = Reference {
                tag: Some(tag.clone()),
                ..base.clone()
            };
            let digest = client.manifest_digest(&tagged).await?;
            let pinned = Reference {
                tag: None,
                digest: Some(digest),
                ..base.clone()
            }
            .to_string();
            let source = tagged.to_string();
            let name = format!("{repo}:{tag}");
            let found = glance
                .list(ctx, &[(SOURCE_PROPERTY, source.as_str())], None)
                .await?;
            match found.first() {
                Some(rec) if rec.property(REF_PROPERTY) == Some(pinned.as_str()) => {
                    report.unchanged += 1
                }
                Some(rec) => {
                    let op = if rec.raw.contains_key(REF_PROPERTY) {
                        PatchOp::Replace(REF_PROPERTY.into(), json!(pinned))
                    } else {
                        PatchOp::Add(REF_PROPERTY.into(), json!(pinned))
                    };
                    glance.patch(ctx, &rec.id, &[op]).await?;
                    tracing::info!(image_id = %rec.id, %source, reference = %pinned, "mirror: tag moved, image updated");
                    report.updated.push(name);
                }
                None => {
                    let mut f = Map::new();
                    f.insert("name".into(), json!(name));
                    f.insert("container_format".into(), json!("docker"));
                    f.insert("disk_format".into(), json!("raw"));
                    f.insert("visibility".into(), json!(req.visibility));
                    f.insert(REF_PROPERTY.into(), json!(pinned));
                    f.insert(SOURCE_PROPERTY.into(), json!(source));
                    let rec = glance.create(ctx, f).await?;
                    // the data is the reference's text: Glance shows the image active
                    let data = futures_util::stream::iter([Ok::<_, std::io::Error>(
                        bytes::Bytes::from(pinned.clone()),
                    )]);
                    glance.upload(ctx, &rec.id, Box::pin(data)).await?;
                    tracing::info!(image_id = %rec.id, %source, reference = %pinned, "mirror: image created");
                    report.created.push(name);
                }
            }
        }
    }
    Ok(report)
}

impl MirrorReport {
    pub fn to_json(&self) -> Value {
        json!({"created": self.created, "updated": self.updated, "unchanged": self.unchanged})
    }
}
