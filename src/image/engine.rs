//! What the image service needs of the container engine, in the engine's own
//! terms but none of its client library's types: the Docker implementation is
//! `crate::virt::docker::DockerImages`; the unit tests use an in-memory one.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use thiserror::Error;

/// A byte stream handed to the engine (an error item aborts it).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;
/// The chunks sent into `rx`, as a [`ByteStream`].
pub fn channel_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> ByteStream {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// A byte stream the engine sends.
pub type ExportStream = Pin<Box<dyn Stream<Item = Result<Bytes, EngineError>> + Send>>;

/// The engine refused or failed a call. The message is the engine's own.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum EngineError {
    /// The image or container named does not exist (Docker's 404).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

impl EngineError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::NotFound(_))
    }
}

/// An image as the engine lists it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageSummary {
    /// `sha256:...`
    pub id: String,
    /// `repo:tag` references.
    pub repo_tags: Vec<String>,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// An image as the engine inspects it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageDetails {
    pub id: Option<String>,
    /// When the image was last tagged (RFC 3339), if the engine knows.
    pub last_tag_time: Option<String>,
}

/// What the engine's image load reported.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LoadReport {
    /// Loaded `name:tag` references.
    pub names: Vec<String>,
    /// Loaded image ids (`sha256:...`).
    pub ids: Vec<String>,
}

/// A failed load, with what the engine had reported before it failed (the images
/// a failed load created are found through it).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub partial: LoadReport,
    pub error: EngineError,
}

/// A container committed into an image `repo:tag`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRequest {
    pub container: String,
    pub repo: String,
    pub tag: String,
    pub comment: String,
    /// Pause the container during the commit.
    pub pause: bool,
}

/// The engine side of [`super::ImageService`].
#[async_trait]
pub trait ImageEngine: Send + Sync {
    /// Inspect a local image by reference or id.
    async fn inspect(&self, reference: &str) -> Result<ImageDetails, EngineError>;

    /// The local images: with `all`, intermediate ones too; with `reference`,
    /// only those matching the pattern (`glance/*`).
    async fn list(
        &self,
        all: bool,
        reference: Option<&str>,
    ) -> Result<Vec<ImageSummary>, EngineError>;

    /// Load a `docker save` tarball read from `tarball`; an error item of the
    /// stream aborts the load. Returns once the engine has answered.
    async fn load(&self, tarball: ByteStream) -> Result<LoadReport, LoadError>;

    /// Tag `image` as `repo:tag`.
    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), EngineError>;

    /// Remove the image `reference` (`force`: also while tagged elsewhere or used).
    async fn remove(&self, reference: &str, force: bool) -> Result<(), EngineError>;

    /// Commit a container into an image; returns the new image's id.
    async fn commit(&self, req: CommitRequest) -> Result<String, EngineError>;

    /// The `docker save` tarball of `image` (the request goes out when the stream
    /// is first polled).
    fn export(&self, image: &str) -> ExportStream;
}
