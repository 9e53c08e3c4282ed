//! Container options from user_data, and the policy that guards the host.
//!
//! Users put container options in the instance's user_data (Horizon's
//! "Customization Script" box, `openstack server create --user-data FILE`, a
//! Heat template's `user_data`). [`decode`] takes user_data as Nova passes it
//! (base64, maybe a MIME multipart document from Heat) and gives one normalized
//! [`UserOptions`]: a [`ContainerOptions`] document, the part of a Docker
//! `/containers/create` body that user_data may set, in Docker's field names
//! but independent of the engine client (the Docker driver converts it). Two
//! vocabularies are accepted, told apart by their keys:
//!
//! - the short keys of the old driver's fork (`command`, `environment`,
//!   `volumes`, `ports`, `host_config`, ... see [`SHORT_KEYS`]);
//! - the Docker Engine `/containers/create` body (`Cmd`, `Env`, `HostConfig`,
//!   ... see [`DOCKER_KEYS`]), including the API 1.16-era top-level `Memory`,
//!   `MemorySwap`, `CpuShares`, `Cpuset` and `SecurityOpts`.
//!
//! A document mixing both is refused, so is one with unknown keys (the error
//! lists the valid ones). user_data that is not container options (a shell
//! script, `#cloud-config`, text that is not a mapping) gives `Ok(None)`.
//!
//! Some fields are accepted but not the user's to decide; the Docker driver
//! overrides them when it merges the body: the container name (always
//! `nova-<uuid>`), `Image` (the Glance image), `Hostname`, `MacAddress` and the
//! networks (from the Neutron ports), memory and CPU (never above the flavor),
//! and Nova's labels. Obsolete fields (`LxcConf`, `PortSpecs`, `KernelMemory`)
//! are dropped with a warning. Every warning is logged and kept in
//! [`UserOptions::warnings`].
//!
//! Whether the options may run on this host is [`policy::Policy::check`]'s
//! business: decoding never refuses an option for being dangerous.

mod host_options;
mod mime;
mod normalize;
mod options;
mod parse;
pub mod policy;

use thiserror::Error;

use crate::exception::NovaException;

pub use host_options::{
    BindPropagation, CgroupnsMode, DeviceMapping, DeviceRequest, HostOptions, Isolation, LogConfig,
    Mount, MountBindOptions, MountImageOptions, MountTmpfsOptions, MountType,
    MountVolumeDriverConfig, MountVolumeOptions, PortBinding, PortMap, RestartPolicy,
    RestartPolicyName, ThrottleDevice, Ulimit, WeightDevice,
};
pub use normalize::{parse_bind, Bind, BindSource, DOCKER_KEYS, HOST_CONFIG_KEYS, SHORT_KEYS};
pub use options::{
    ContainerOptions, Empty, EndpointIpamConfig, EndpointSettings, HealthConfig, NetworkingConfig,
    Set,
};
pub use policy::{
    ContainerLookup, LookupError, Policy, PolicyContext, PolicyViolation, Refusal, TargetOwner,
};

/// Which vocabulary a user_data document was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// The old driver fork's keys (`command`, `volumes`, ...).
    Short,
    /// The Docker Engine `/containers/create` body (`Cmd`, `HostConfig`, ...).
    Docker,
}

impl std::fmt::Display for Vocabulary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Vocabulary::Short => "short-key",
            Vocabulary::Docker => "Docker /containers/create",
        })
    }
}

/// Container options taken from user_data, normalized to one Docker body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserOptions {
    /// The `/containers/create` body the user asked for. `Image` and the fields
    /// Nova owns are still to be overridden by the driver.
    pub body: ContainerOptions,
    /// Things ignored or to be overridden, one readable sentence each.
    pub warnings: Vec<String>,
    /// The vocabulary the document used (for messages naming the user's keys).
    pub vocabulary: Option<Vocabulary>,
}

/// Why user_data could not be read as container options.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum UserDataError {
    #[error("user_data is not valid base64: {0}")]
    Base64(String),
    #[error("user_data is not a valid MIME document: {0}")]
    Mime(String),
    #[error("user_data is not valid JSON (line {line}, column {column}): {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("user_data is not valid YAML: {reason}")]
    Yaml { reason: String },
    #[error(
        "user_data mixes the Docker /containers/create keys ({}) with the short keys ({}): use one or the other",
        docker_keys.join(", "), short_keys.join(", ")
    )]
    MixedVocabularies {
        docker_keys: Vec<String>,
        short_keys: Vec<String>,
    },
    #[error(
        "user_data has unknown {vocabulary} key(s) {}{hint}; valid keys are: {}",
        keys.join(", "), valid.join(", ")
    )]
    UnknownKeys {
        vocabulary: Vocabulary,
        keys: Vec<String>,
        valid: Vec<String>,
        /// Extra advice (a near miss, a key the old driver refused), or empty.
        hint: String,
    },
    #[error("user_data option {key}: {reason}")]
    InvalidValue { key: String, reason: String },
}

impl UserDataError {
    /// The exception that aborts the build (not rescheduled: another host
    /// would read the same user_data the same way).
    pub fn to_build_abort(&self, instance_uuid: &str) -> NovaException {
        NovaException::build_abort(instance_uuid, self.to_string())
    }
}

impl From<UserDataError> for NovaException {
    fn from(e: UserDataError) -> Self {
        NovaException::instance_deploy_failure(e.to_string())
    }
}

impl From<&UserDataError> for NovaException {
    fn from(e: &UserDataError) -> Self {
        NovaException::instance_deploy_failure(e.to_string())
    }
}

/// Container options from user_data as Nova passes it (`Instance.user_data`:
/// base64 text, or none).
///
/// `Ok(None)`: no user_data, or user_data that is not container options
/// (logged once at info). `Err`: user_data meant as container options that
/// cannot be used; the message says what to fix.
pub fn decode(user_data: Option<&str>) -> Result<Option<UserOptions>, UserDataError> {
    let Some(b64) = user_data else {
        return Ok(None);
    };
    if b64.trim().is_empty() {
        return Ok(None);
    }
    let raw = mime::decode_base64(b64).map_err(|e| UserDataError::Base64(e.to_string()))?;
    decode_raw(&raw)
}

/// Like [`decode`], for user_data already base64-decoded.
pub fn decode_raw(raw: &[u8]) -> Result<Option<UserOptions>, UserDataError> {
    let (bytes, source) = if mime::looks_like_mime(raw) {
        let parts = mime::leaves(raw).map_err(UserDataError::Mime)?;
        match mime::select(&parts) {
            Some(p) => (p.body.clone(), "MIME part"),
            None => {
                tracing::info!(
                    parts = ?parts.iter().map(|p| p.content_type.as_str()).collect::<Vec<_>>(),
                    "user_data is a MIME document without a JSON, YAML or cfn-userdata part: no container options"
                );
                return Ok(None);
            }
        }
    } else {
        (raw.to_vec(), "user_data")
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        tracing::info!(
            source,
            "user_data is not UTF-8 text (compressed or binary): no container options"
        );
        return Ok(None);
    };
    match parse::parse_text(text)? {
        parse::Parsed::NotOptions(what) => {
            tracing::info!(source, kind = what, "user_data is not container options");
            Ok(None)
        }
        parse::Parsed::Options(map) => {
            let opts = normalize::normalize(map)?;
            for w in &opts.warnings {
                tracing::warn!(warning = %w, "user_data container options");
            }
            Ok(Some(opts))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn none_empty_and_not_options() {
        assert_eq!(decode(None).unwrap(), None);
        assert_eq!(decode(Some("")).unwrap(), None);
        assert_eq!(decode(Some(&b64("#!/bin/sh\necho hi\n"))).unwrap(), None);
        assert_eq!(
            decode(Some(&b64("#cloud-config\npackages: [vim]\n"))).unwrap(),
            None
        );
        assert_eq!(decode(Some(&b64("just some words"))).unwrap(), None);
        assert!(matches!(
            decode(Some("not base64!")),
            Err(UserDataError::Base64(_))
        ));
        // gzip magic: not text
        let gz = base64::engine::general_purpose::STANDARD.encode([0x1f, 0x8b, 0x08, 0xff, 0xfe]);
        assert_eq!(decode(Some(&gz)).unwrap(), None);
    }

    #[test]
    fn exceptions_carry_the_reason() {
        let e = decode(Some(&b64("{\"Bogus\": 1}"))).unwrap_err();
        let n: NovaException = e.clone().into();
        assert_eq!(n.class, "InstanceDeployFailure");
        assert!(n.message.contains("Bogus"), "{}", n.message);
        let a = e.to_build_abort("u-1");
        assert_eq!(a.class, "BuildAbortException");
        assert!(a.kwargs["reason"].as_str().unwrap().contains("Bogus"));
    }
}
