//! cache_images (call): the aggregate image pre-cache (`openstack aggregate cache
//! image`, API microversion 2.81). Answers what nova-compute answers: per image
//! `cached` (fetched now), `existing` (already present; its age in the image
//! cache starts again, so the cache prune keeps it), or `error`.

use serde_json::{Map, Value};

use super::ComputeManager;
use crate::context::RequestContext;

impl ComputeManager {
    pub async fn cache_images(&self, ctx: &RequestContext, image_ids: &[String]) -> Value {
        tracing::info!(count = image_ids.len(), "caching images by request");
        let mut out = Map::new();
        // one at a time, as nova-compute does: a pre-cache must not starve boots
        for id in image_ids {
            let r = match self.images.precache(ctx, id).await {
                Ok(true) => "cached",
                Ok(false) => "existing",
                Err(e) => {
                    tracing::error!(image_id = %id, error = %e.message, "failed to cache image");
                    "error"
                }
            };
            out.insert(id.clone(), Value::from(r));
        }
        Value::Object(out)
    }
}
