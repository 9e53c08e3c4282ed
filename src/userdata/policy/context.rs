//! Who asks, and how the policy finds out whose another container is.

use async_trait::async_trait;
use thiserror::Error;

use crate::context::RequestContext;

/// Who asks: the instance's project, and whether the request is an admin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyContext {
    pub project_id: String,
    pub is_admin: bool,
}

impl PolicyContext {
    pub fn new(project_id: impl Into<String>, is_admin: bool) -> Self {
        PolicyContext {
            project_id: project_id.into(),
            is_admin,
        }
    }

    /// For an instance of `instance_project_id` built by `ctx`.
    pub fn from_request(ctx: &RequestContext, instance_project_id: &str) -> Self {
        Self::new(instance_project_id, ctx.is_admin)
    }
}

/// Whose a container named by a link, `VolumesFrom` or `container:<x>` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetOwner {
    /// No such container.
    Missing,
    /// A container that is not one of Nova's instances.
    NotAnInstance,
    /// A Nova instance (labelled managed-by nova-docker) of this project
    /// (`None` when the label is missing).
    Instance { project_id: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    #[error("cannot look up container {name}: {reason}")]
    Failed { name: String, reason: String },
}

/// Finds out whose a container is, by name or id.
#[async_trait]
pub trait ContainerLookup: Send + Sync {
    async fn owner(&self, name_or_id: &str) -> Result<TargetOwner, LookupError>;
}
