//! What the image service fails with, and the Nova exception each becomes.

use serde_json::json;
use thiserror::Error;

use crate::exception::{Class, NovaException};

use super::engine::EngineError;

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

/// An engine call that failed (its message is the engine's own).
pub(super) fn engine_err(e: EngineError) -> ImageError {
    ImageError::Docker(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
