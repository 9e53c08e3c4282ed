//! The image engine of [`crate::image::ImageService`] on Docker: load, inspect,
//! list, tag, remove, commit and save through bollard.

use async_trait::async_trait;
use bollard::models::ContainerConfig;
use bollard::query_parameters::{
    CommitContainerOptions, ImportImageOptions, ListImagesOptions, RemoveImageOptions,
    TagImageOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::image::{
    ByteStream, CommitRequest, EngineError, ExportStream, ImageDetails, ImageEngine, ImageSummary,
    LoadError, LoadReport,
};

/// Docker as the image engine. Give it a client without a request timeout
/// ([`super::DockerDriver::docker_unbounded`]): loads, saves and commits of large
/// images take long.
#[derive(Clone)]
pub struct DockerImages {
    docker: Docker,
}

impl DockerImages {
    pub fn new(docker: Docker) -> Self {
        DockerImages { docker }
    }
}

fn engine_err(e: bollard::errors::Error) -> EngineError {
    if matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    ) {
        EngineError::NotFound(e.to_string())
    } else {
        // with its causes: "client error (Connect): tcp connect error:
        // Connection refused", not just "client error (Connect)"
        EngineError::Failed(super::driver::error_chain(&e))
    }
}

/// Add what one `stream` text of `docker load` names to `report`.
fn parse_load_line(report: &mut LoadReport, text: &str) {
    for line in text.lines() {
        let line = line.trim();
        if let Some(id) = line.strip_prefix("Loaded image ID:") {
            report.ids.push(id.trim().to_string());
        } else if let Some(name) = line.strip_prefix("Loaded image:") {
            report.names.push(name.trim().to_string());
        }
    }
}

#[async_trait]
impl ImageEngine for DockerImages {
    async fn inspect(&self, reference: &str) -> Result<ImageDetails, EngineError> {
        let i = self
            .docker
            .inspect_image(reference)
            .await
            .map_err(engine_err)?;
        Ok(ImageDetails {
            id: i.id,
            last_tag_time: i.metadata.and_then(|m| m.last_tag_time),
        })
    }

    async fn list(
        &self,
        all: bool,
        reference: Option<&str>,
    ) -> Result<Vec<ImageSummary>, EngineError> {
        let filters = reference.map(|r| {
            std::collections::HashMap::from([("reference".to_string(), vec![r.to_string()])])
        });
        let images = self
            .docker
            .list_images(Some(ListImagesOptions {
                all,
                filters,
                ..Default::default()
            }))
            .await
            .map_err(engine_err)?;
        Ok(images
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                repo_tags: i.repo_tags,
                created: i.created,
            })
            .collect())
    }

    async fn load(&self, tarball: ByteStream) -> Result<LoadReport, LoadError> {
        let mut load = self.docker.import_image(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            bollard::body_try_stream(tarball),
            None,
        );
        let mut report = LoadReport::default();
        while let Some(item) = load.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = &info.stream {
                        parse_load_line(&mut report, s);
                    }
                }
                Err(e) => {
                    return Err(LoadError {
                        partial: report,
                        error: engine_err(e),
                    })
                }
            }
        }
        Ok(report)
    }

    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        self.docker
            .tag_image(
                image,
                Some(TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .map_err(engine_err)
    }

    async fn remove(&self, reference: &str, force: bool) -> Result<(), EngineError> {
        self.docker
            .remove_image(
                reference,
                Some(RemoveImageOptions {
                    force,
                    noprune: false,
                }),
                None,
            )
            .await
            .map(|_| ())
            .map_err(engine_err)
    }

    async fn commit(&self, req: CommitRequest) -> Result<String, EngineError> {
        self.docker
            .commit_container(
                CommitContainerOptions {
                    container: Some(req.container),
                    repo: Some(req.repo),
                    tag: Some(req.tag),
                    comment: Some(req.comment),
                    pause: req.pause,
                    ..Default::default()
                },
                ContainerConfig::default(),
            )
            .await
            .map(|r| r.id)
            .map_err(engine_err)
    }

    fn export(&self, image: &str) -> ExportStream {
        Box::pin(
            self.docker
                .export_image(image)
                .map(|r| r.map_err(engine_err)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_report_lines() {
        let mut r = LoadReport::default();
        parse_load_line(&mut r, "Loaded image: nova-docker-test/busybox:latest\n");
        parse_load_line(&mut r, "Loaded image ID: sha256:abc\n");
        assert_eq!(r.names, vec!["nova-docker-test/busybox:latest"]);
        assert_eq!(r.ids, vec!["sha256:abc"]);
    }

    #[test]
    fn a_404_is_not_found() {
        let e = engine_err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "No such image: x".into(),
        });
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "Docker responded with status code 404: No such image: x"
        );
        let e = engine_err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "conflict".into(),
        });
        assert!(!e.is_not_found());
    }
}
