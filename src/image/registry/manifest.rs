//! Image manifests as registries serve them (Docker's schema 2 and OCI's, single
//! images and multi-platform lists), decoded once into [`Manifest`]; the choice of
//! this host's platform out of a list.

use serde::Deserialize;

use super::RegistryError;

pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// What a manifest GET accepts.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Layer types `docker load` unpacks (it decompresses gzip itself).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+zstd",
];

/// A blob a manifest names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// One image: its config blob and its layers, base first.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// Images for several platforms.
    List(Vec<Descriptor>),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// Decode `body`, served with `content_type`. `what` names it in errors.
    pub fn decode(body: &[u8], content_type: &str, what: &str) -> Result<Self, RegistryError> {
        let unsupported = |reason: String| RegistryError::Unsupported {
            reference: what.to_string(),
            reason,
        };
        let raw: Raw = serde_json::from_slice(body).map_err(|e| RegistryError::Protocol {
            reference: what.to_string(),
            reason: format!("its manifest is not JSON of a known shape: {e}"),
        })?;
        let ct = content_type.split(';').next().unwrap_or("").trim();
        let kind = raw.media_type.as_deref().unwrap_or(ct);
        if raw.schema_version == Some(1)
            || kind.starts_with("application/vnd.docker.distribution.manifest.v1")
        {
            return Err(unsupported(
                "its manifest is schema 1, which Docker no longer loads; push it again with a current client".into(),
            ));
        }
        match (raw.config, raw.layers, raw.manifests) {
            (_, _, Some(list)) if kind == DOCKER_LIST || kind == OCI_INDEX || kind.is_empty() => {
                Ok(Manifest::List(list))
            }
            (Some(config), Some(layers), None) => {
                for l in &layers {
                    if l.urls.as_ref().is_some_and(|u| !u.is_empty())
                        || l.media_type.contains("foreign")
                        || l.media_type.contains("nondistributable")
                    {
                        return Err(unsupported(format!(
                            "its layer {} is stored outside the registry ({})",
                            l.digest, l.media_type
                        )));
                    }
                    if !LAYER_TYPES.contains(&l.media_type.as_str()) {
                        return Err(unsupported(format!(
                            "its layer {} has media type {:?}, not a tar layer",
                            l.digest, l.media_type
                        )));
                    }
                    check_digest(&l.digest, what)?;
                }
                check_digest(&config.digest, what)?;
                Ok(Manifest::Image { config, layers })
            }
            _ => Err(unsupported(format!(
                "its manifest (media type {kind:?}) is neither an image nor a list of images"
            ))),
        }
    }
}

fn check_digest(d: &str, what: &str) -> Result<(), RegistryError> {
    let ok = d
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Unsupported {
            reference: what.to_string(),
            reason: format!("it names blob {d:?}, not a sha256 digest"),
        })
    }
}

/// This host's platform in the terms of image indexes (`linux`, `amd64`).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        a => a,
    };
    ("linux", arch)
}

/// The entry of `list` for `os`/`arch` (for arm64 the `v8` variant or none).
pub fn choose<'a>(
    list: &'a [Descriptor],
    os: &str,
    arch: &str,
    what: &str,
) -> Result<&'a Descriptor, RegistryError> {
    list.iter()
        .find(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.os == os
                    && p.architecture == arch
                    && (arch != "arm64" || p.variant.as_deref().is_none_or(|v| v == "v8"))
            })
        })
        .ok_or_else(|| {
            let have: Vec<String> = list
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            RegistryError::Unsupported {
                reference: what.to_string(),
                reason: format!(
                    "it has no image for {os}/{arch} (it has: {})",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn dg(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn an_image_manifest_decodes_with_its_layers_in_order() {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10, "digest": dg('c')},
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 5, "digest": dg('a')},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": 7, "digest": dg('b')}
            ]
        });
        let m = Manifest::decode(body.to_string().as_bytes(), DOCKER_MANIFEST, "r").unwrap();
        let Manifest::Image { config, layers } = m else {
            panic!()
        };
        assert_eq!(config.digest, dg('c'));
        assert_eq!(
            layers.iter().map(|l| l.size).collect::<Vec<_>>(),
            vec![5, 7]
        );
    }

    #[test]
    fn a_list_gives_this_platform_or_says_what_it_has() {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "size": 1, "digest": dg('1'), "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "size": 1, "digest": dg('2'), "platform": {"architecture": "amd64", "os": "linux"}}
            ]
        });
        let Manifest::List(l) = Manifest::decode(body.to_string().as_bytes(), "", "r").unwrap()
        else {
            panic!()
        };
        assert_eq!(choose(&l, "linux", "amd64", "r").unwrap().digest, dg('2'));
        assert_eq!(choose(&l, "linux", "arm64", "r").unwrap().digest, dg('1'));
        let e = choose(&l, "linux", "s390x", "r").unwrap_err();
        assert!(
            e.to_string()
                .contains("no image for linux/s390x (it has: linux/arm64, linux/amd64)"),
            "{e}"
        );
    }

    #[test]
    fn what_docker_cannot_load_is_refused_with_the_reason() {
        let e = Manifest::decode(br#"{"schemaVersion": 1, "fsLayers": []}"#, "", "r").unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        let foreign = serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "x", "size": 1, "digest": dg('c')},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 1, "digest": dg('a'), "urls": ["https://x"]}]
        });
        let e = Manifest::decode(foreign.to_string().as_bytes(), "", "r").unwrap_err();
        assert!(e.to_string().contains("outside the registry"), "{e}");
        let helm = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "size": 1, "digest": dg('c')},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "size": 1, "digest": dg('a')}]
        });
        let e = Manifest::decode(helm.to_string().as_bytes(), "", "r").unwrap_err();
        assert!(e.to_string().contains("not a tar layer"), "{e}");
        let e = Manifest::decode(b"<html>", "text/html", "r").unwrap_err();
        assert!(e.to_string().contains("not JSON"), "{e}");
    }
}
