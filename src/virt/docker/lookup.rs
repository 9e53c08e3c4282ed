//! Whose a container is, asked of the engine: the user_data policy's
//! [`ContainerLookup`] for links, `VolumesFrom` and `container:<x>` targets.

use async_trait::async_trait;

use crate::userdata::{ContainerLookup, LookupError, TargetOwner};
use crate::virt::{LABEL_MANAGED_BY, LABEL_PROJECT_ID, MANAGED_BY};

#[async_trait]
impl ContainerLookup for bollard::Docker {
    async fn owner(&self, name_or_id: &str) -> Result<TargetOwner, LookupError> {
        if name_or_id.is_empty() || name_or_id.contains(['/', '?', '#', '%']) {
            return Ok(TargetOwner::Missing);
        }
        match self
            .inspect_container(
                name_or_id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(c) => {
                let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
                if labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY) {
                    Ok(TargetOwner::Instance {
                        project_id: labels.get(LABEL_PROJECT_ID).cloned(),
                    })
                } else {
                    Ok(TargetOwner::NotAnInstance)
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(TargetOwner::Missing),
            Err(e) => Err(LookupError::Failed {
                name: name_or_id.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}
