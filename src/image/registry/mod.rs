//! Glance images whose content lives in a container registry.
//!
//! A Glance image with `container_format` `docker` and the property
//! [`REF_PROPERTY`] (`docker_image_ref`) names a registry image, by tag or better
//! by digest (`registry.example:5000/team/app@sha256:...`); its Glance data is not
//! read (by convention it is the reference's text, so that Glance shows the image
//! `active`). The daemon pulls it itself, through the registry's HTTP API v2,
//! and streams it into the engine's image load as a `docker save` tarball
//! ([`pull`]): the same path as a Glance tarball, so a remote engine needs no
//! registry configuration, the image is tagged `glance/<image id>:latest` like
//! any other, and one download serves concurrent boots. Every blob is checked
//! against its digest on the way, and a manifest fetched by digest against that
//! digest, so a moved tag cannot change what boots.
//!
//! Options, `[docker_registry]` (see [`RegistryConfig`]): `auth_file` (Docker's
//! `config.json` format, per registry), `ca_file` (CAs trusted for registries
//! beside the system's), `insecure_registries` (reached over plain HTTP),
//! `allowed_registries` (when set, the only ones pulled from).
//!
//! Where things are: `reference`: [`Reference`]; `auth`: credentials and
//! challenges; `manifest`: the manifests; `client`: [`RegistryClient`]; `pull`:
//! the tarball assembled from the blobs; [`mirror`]: a registry's catalogue as
//! Glance images.

mod auth;
mod client;
mod manifest;
pub mod mirror;
mod pull;
mod push;
mod reference;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::config::{ConfigError, Ini};

pub use client::RegistryClient;
pub use pull::{open as open_pull, Pull};
pub use push::{push_save, Pushed};
pub use reference::Reference;

/// The Glance image property that names a registry image.
pub const REF_PROPERTY: &str = "docker_image_ref";

/// The registry reference a Glance record names, if any (not yet parsed).
pub fn reference_of(rec: &super::ImageRecord) -> Option<&str> {
    rec.raw
        .get(REF_PROPERTY)
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// What a pull from a registry fails with. No message holds a credential.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum RegistryError {
    #[error("{reference:?} is not an image reference: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("registry {registry} is not one this host pulls from ([docker_registry] allowed_registries)")]
    NotAllowed { registry: String },
    #[error("registry {registry} cannot be reached: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("registry {registry} refused the credentials of this host for {repository}")]
    BadCredentials {
        registry: String,
        repository: String,
    },
    #[error("registry {registry} requires credentials for {repository}, and [docker_registry] auth_file has none for it")]
    NoCredentials {
        registry: String,
        repository: String,
    },
    #[error("{reference} is not in its registry: {reason}")]
    NotFound { reference: String, reason: String },
    #[error("{what} of {reference} does not match its digest (the registry sent {}...); nothing was kept", short(.actual))]
    DigestMismatch {
        reference: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{reference} cannot be loaded into Docker: {reason}")]
    Unsupported { reference: String, reason: String },
    #[error("registry's answer for {reference} is unusable: {reason}")]
    Protocol { reference: String, reason: String },
    #[error("[docker_registry]: {0}")]
    Config(String),
}

/// The first 19 characters of a digest (`sha256:` and 12 hex digits), for
/// messages that must stay short (Nova keeps 255 characters of a fault).
fn short(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

impl RegistryError {
    /// The registry or its network failed (worth another try later), rather than
    /// the reference or its content.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RegistryError::Unreachable { .. } | RegistryError::Protocol { .. }
        )
    }
}

/// `[docker_registry]`.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Docker `config.json`-style credentials, by registry.
    pub auth_file: Option<PathBuf>,
    /// PEM CAs trusted for registries' TLS, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// Registries (`host:port`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// When not empty, the only registries pulled from.
    pub allowed_registries: Vec<String>,
    /// How long a registry may stay silent in the middle of a transfer.
    pub read_timeout: Duration,
    /// Where snapshots are pushed as well (`host[:port]/repository`), each
    /// tagged with its Glance image id; None: snapshots go to Glance only.
    pub snapshot_repository: Option<Reference>,
}

/// `snapshot_repository`: a registry and a repository, no tag or digest.
fn snapshot_repository(v: &str) -> Result<Reference, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        group: "docker_registry".into(),
        option: "snapshot_repository".into(),
        reason,
    };
    let r = Reference::parse(v).map_err(|e| invalid(e.to_string()))?;
    if r.tag.is_some() || r.digest.is_some() || !v.trim().contains('/') {
        return Err(invalid(format!(
            "{v:?} is not host[:port]/repository (without a tag: each snapshot is tagged with its image id)"
        )));
    }
    Ok(r)
}

impl RegistryConfig {
    /// Where the snapshot `image_id` is pushed, if anywhere.
    pub fn snapshot_target(&self, image_id: &str) -> Option<Reference> {
        self.snapshot_repository.as_ref().map(|r| Reference {
            tag: Some(image_id.to_string()),
            ..r.clone()
        })
    }

    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let g = ini.group("docker_registry");
        Ok(RegistryConfig {
            auth_file: g.opt_nonempty("auth_file")?.map(PathBuf::from),
            ca_file: g.opt_nonempty("ca_file")?.map(PathBuf::from),
            insecure_registries: g.list("insecure_registries", &[])?,
            allowed_registries: g.list("allowed_registries", &[])?,
            read_timeout: g.secs("read_timeout", 60)?,
            snapshot_repository: g
                .opt_nonempty("snapshot_repository")?
                .map(|v| snapshot_repository(&v))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<RegistryConfig, ConfigError> {
        RegistryConfig::from_ini(&Ini::parse(text).unwrap())
    }

    #[test]
    fn a_snapshot_repository_tags_each_snapshot_with_its_image_id() {
        let c = cfg("[docker_registry]\nsnapshot_repository = reg.example:5000/nova/snapshots\n")
            .unwrap();
        let t = c.snapshot_target("0b7d1f6e-aaaa").unwrap();
        assert_eq!(
            t.to_string(),
            "reg.example:5000/nova/snapshots:0b7d1f6e-aaaa"
        );
        assert!(cfg("").unwrap().snapshot_target("x").is_none());
        for bad in [
            "reg.example:5000/app:v1",
            "reg.example:5000/app@sha256:00",
            "app",
            "Bad Name/x",
        ] {
            let e = cfg(&format!("[docker_registry]\nsnapshot_repository = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("snapshot_repository"), "{bad}: {e}");
        }
    }
}
