//! The way out to a registry: a `docker save` tarball (of a committed snapshot)
//! pushed as an OCI image while it streams. Each blob of the tarball (the
//! engine's OCI layout, `blobs/sha256/<hex>`, or the legacy `<id>/layer.tar` and
//! `<id>.json`) is uploaded as it comes (POST, PATCH with the data, PUT with its
//! digest), unless the repository has it already; `manifest.json` then names the
//! config and the layers, and an OCI image manifest of them is put under the
//! tag. What is pushed can be pulled by plain Docker and by [`super::pull`].
//!
//! Memory stays bounded: a blob is never held whole, only the chunks on their
//! way (and `manifest.json`, a few KiB).

use std::collections::HashMap;

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::image::engine::{channel_stream, ByteStream};
use crate::image::hash::{HashWorker, Hasher};

use super::client::{http_error, sha256_of, unreachable, RegistryClient};
use super::{Reference, RegistryError};

const BLOCK: u64 = 512;
/// Chunks of a blob on their way to the registry.
const QUEUE: usize = 8;
const CHUNK: usize = 64 * 1024;
/// `manifest.json` and PAX / GNU long-name records are small.
const MAX_META: u64 = 4 * 1024 * 1024;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// What a push made.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// The pushed image by digest (`registry/repository@sha256:...`).
    pub reference: Reference,
    /// Blobs uploaded, and blobs the repository had already.
    pub uploaded: usize,
    pub existing: usize,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// A blob of the tarball, as the manifest names it.
#[derive(Debug, Clone)]
struct Blob {
    digest: String,
    size: u64,
    /// The layer media type its first bytes tell (tar, gzip or zstd).
    layer_type: &'static str,
}

/// `manifest.json` of a `docker save` tarball (one image).
#[derive(serde::Deserialize)]
struct SaveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn bad(target: &Reference, reason: impl Into<String>) -> RegistryError {
    RegistryError::Unsupported {
        reference: target.to_string(),
        reason: reason.into(),
    }
}

fn layer_type(head: &[u8]) -> &'static str {
    match head {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => "application/vnd.oci.image.layer.v1.tar",
    }
}

/// Which entries of the tarball are blobs: the OCI layout's (whose name is the
/// digest) and the legacy layout's layers and config.
fn blob_path(path: &str) -> Option<Option<String>> {
    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
        let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        return ok.then(|| Some(format!("sha256:{}", hex.to_ascii_lowercase())));
    }
    let legacy = path.ends_with("/layer.tar")
        || (path.ends_with(".json")
            && !path.contains('/')
            && path != "manifest.json"
            && path != "index.json");
    legacy.then_some(None)
}

/// Push the `docker save` tarball `save` as `target` (its tag names the image;
/// without one, `latest`).
pub async fn push_save(
    client: &RegistryClient,
    target: &Reference,
    save: ByteStream,
) -> Result<Pushed, RegistryError> {
    client.check_allowed(target)?;
    let mut rd = tokio_util::io::StreamReader::new(save);
    let mut blobs: HashMap<String, Blob> = HashMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    let (mut uploaded, mut existing, mut bytes) = (0, 0, 0u64);
    let mut long_name: Option<String> = None;
    let mut header = [0u8; BLOCK as usize];
    let io = |e: std::io::Error| bad(target, format!("docker save: {e}"));
    loop {
        rd.read_exact(&mut header).await.map_err(io)?;
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let h = tar::Header::from_byte_slice(&header);
        if h.as_ustar().is_none() && h.as_gnu().is_none() {
            return Err(bad(target, "docker save wrote an entry that is not ustar"));
        }
        let size = h
            .entry_size()
            .map_err(|e| bad(target, format!("docker save: {e}")))?;
        let kind = h.entry_type();
        let path = match long_name.take() {
            Some(p) => p,
            None => String::from_utf8_lossy(&h.path_bytes()).into_owned(),
        };
        let path = path.trim_start_matches("./").to_string();
        let pad = size.div_ceil(BLOCK) * BLOCK - size;
        if kind.is_pax_local_extensions() || kind.is_gnu_longname() {
            let data = read_small(&mut rd, size, target).await?;
            skip(&mut rd, pad).await.map_err(io)?;
            long_name = if kind.is_gnu_longname() {
                Some(
                    String::from_utf8_lossy(&data)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            } else {
                tar::PaxExtensions::new(&data)
                    .filter_map(Result::ok)
                    .find(|e| e.key() == Ok("path"))
                    .and_then(|e| e.value().ok().map(str::to_string))
            };
            continue;
        }
        if !kind.is_file() {
            skip(&mut rd, size + pad).await.map_err(io)?;
            continue;
        }
        if path == "manifest.json" {
            manifest = Some(read_small(&mut rd, size, target).await?);
            skip(&mut rd, pad).await.map_err(io)?;
            continue;
        }
        let Some(named) = blob_path(&path) else {
            skip(&mut rd, size + pad).await.map_err(io)?;
            continue;
        };
        let blob = if let Some(digest) = named.as_ref().filter(|_| size > 0) {
            if has_blob(client, target, digest).await? {
                let head = sniff_and_skip(&mut rd, size).await.map_err(io)?;
                existing += 1;
                Blob {
                    digest: digest.clone(),
                    size,
                    layer_type: layer_type(&head),
                }
            } else {
                let b = upload(client, target, &mut rd, size).await?;
                if &b.digest != digest {
                    return Err(bad(
                        target,
                        format!("docker save's {path} does not match its name"),
                    ));
                }
                uploaded += 1;
                bytes += size;
                b
            }
        } else {
            uploaded += 1;
            bytes += size;
            upload(client, target, &mut rd, size).await?
        };
        skip(&mut rd, pad).await.map_err(io)?;
        blobs.insert(path, blob);
    }
    let manifest = manifest.ok_or_else(|| bad(target, "docker save wrote no manifest.json"))?;
    let body = image_manifest(&manifest, &blobs).map_err(|e| bad(target, e))?;
    put_manifest(client, target, body)
        .await
        .map(|digest| Pushed {
            reference: Reference {
                tag: None,
                digest: Some(digest),
                ..target.clone()
            },
            uploaded,
            existing,
            bytes,
        })
}

/// The OCI image manifest of the one image `manifest.json` names.
fn image_manifest(manifest: &[u8], blobs: &HashMap<String, Blob>) -> Result<Vec<u8>, String> {
    let list: Vec<SaveManifest> = serde_json::from_slice(manifest)
        .map_err(|e| format!("docker save's manifest.json: {e}"))?;
    let [m] = list.as_slice() else {
        return Err(format!(
            "docker save's manifest.json names {} images, not one",
            list.len()
        ));
    };
    let find = |p: &str| {
        blobs
            .get(p.trim_start_matches("./"))
            .ok_or_else(|| format!("docker save's manifest.json names {p}, which it did not write"))
    };
    let config = find(&m.config)?;
    let layers = m
        .layers
        .iter()
        .map(|p| {
            find(p).map(|b| {
                serde_json::json!({"mediaType": b.layer_type, "digest": b.digest, "size": b.size})
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers,
    });
    Ok(serde_json::to_vec(&doc).expect("a JSON value serializes"))
}

fn push_scope(target: &Reference) -> String {
    format!("repository:{}:pull,push", target.repository)
}

async fn read_small<R: AsyncRead + Unpin>(
    rd: &mut R,
    size: u64,
    target: &Reference,
) -> Result<Vec<u8>, RegistryError> {
    if size > MAX_META {
        return Err(bad(
            target,
            format!("docker save wrote {size} bytes of metadata"),
        ));
    }
    let mut data = vec![0; size as usize];
    rd.read_exact(&mut data)
        .await
        .map_err(|e| bad(target, format!("docker save: {e}")))?;
    Ok(data)
}

async fn skip<R: AsyncRead + Unpin>(rd: &mut R, n: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut rd.take(n), &mut tokio::io::sink()).await?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Skip a blob's `size` bytes, keeping its first four.
async fn sniff_and_skip<R: AsyncRead + Unpin>(rd: &mut R, size: u64) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0; size.min(4) as usize];
    rd.read_exact(&mut head).await?;
    skip(rd, size - head.len() as u64).await?;
    Ok(head)
}

/// Whether the repository of `target` has the blob `digest`.
async fn has_blob(
    client: &RegistryClient,
    target: &Reference,
    digest: &str,
) -> Result<bool, RegistryError> {
    let url = client.url(target, &format!("blobs/{digest}"));
    let resp = client
        .send(target, &push_scope(target), || client.http().head(&url))
        .await?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        s => Err(http_error(target, "blob check", s)),
    }
}

/// `location` (a registry's `Location`, maybe relative) as a URL with `query`.
fn upload_url(client: &RegistryClient, target: &Reference, location: &str, query: &str) -> String {
    let base = client.base(target);
    let abs = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        // `base` is `scheme://host/v2`; a relative Location starts with /v2/
        let origin = base.strip_suffix("/v2").unwrap_or(&base);
        format!("{origin}{location}")
    };
    if query.is_empty() {
        abs
    } else if abs.contains('?') {
        format!("{abs}&{query}")
    } else {
        format!("{abs}?{query}")
    }
}

fn location_of(
    target: &Reference,
    resp: &reqwest::Response,
    what: &str,
) -> Result<String, RegistryError> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| RegistryError::Protocol {
            reference: target.to_string(),
            reason: format!("its answer to the {what} has no Location"),
        })
}

/// Upload the next `size` bytes of `rd` as a blob of `target`'s repository:
/// start an upload, stream the data in one PATCH while hashing it, and close the
/// upload with the digest.
async fn upload<R: AsyncRead + Unpin>(
    client: &RegistryClient,
    target: &Reference,
    rd: &mut R,
    size: u64,
) -> Result<Blob, RegistryError> {
    let scope = push_scope(target);
    let start = client.url(target, "blobs/uploads/");
    let resp = client
        .send(target, &scope, || {
            client.http().post(&start).header(CONTENT_LENGTH, 0)
        })
        .await?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(refused_or(client, target, "blob upload", resp.status()));
    }
    let url = upload_url(
        client,
        target,
        &location_of(target, &resp, "upload's start")?,
        "",
    );

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
    let mut req = client
        .http()
        .patch(&url)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(channel_stream(rx)));
    req = client.with_authorization(req, target, &scope);
    let hasher = HashWorker::start(Hasher::new("sha256").expect("sha256 is known"));
    let feed = async {
        let mut left = size;
        let mut head = Vec::new();
        while left > 0 {
            let mut buf = vec![0; CHUNK.min(left as usize)];
            rd.read_exact(&mut buf).await?;
            left -= buf.len() as u64;
            if head.is_empty() {
                head = buf[..buf.len().min(4)].to_vec();
            }
            let chunk = Bytes::from(buf);
            hasher.update(chunk.clone()).await;
            if tx.send(Ok(chunk)).await.is_err() {
                // the request ended early: its answer says why
                break;
            }
        }
        drop(tx);
        Ok::<_, std::io::Error>(head)
    };
    let (sent, fed) = tokio::join!(req.send(), feed);
    let head = fed.map_err(|e| bad(target, format!("docker save: {e}")))?;
    let resp = sent.map_err(|e| unreachable(target, &e))?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(refused_or(client, target, "blob data", resp.status()));
    }
    let digest = format!(
        "sha256:{}",
        hasher
            .finish()
            .await
            .map_err(|e| bad(target, format!("hashing a blob: {e}")))?
    );
    let url = upload_url(
        client,
        target,
        &location_of(target, &resp, "blob data")?,
        &format!("digest={digest}"),
    );
    let req = client.with_authorization(
        client.http().put(&url).header(CONTENT_LENGTH, 0),
        target,
        &scope,
    );
    let resp = req.send().await.map_err(|e| unreachable(target, &e))?;
    if resp.status() != StatusCode::CREATED {
        return Err(refused_or(client, target, "blob's digest", resp.status()));
    }
    Ok(Blob {
        digest,
        size,
        layer_type: layer_type(&head),
    })
}

fn refused_or(
    client: &RegistryClient,
    target: &Reference,
    what: &str,
    status: StatusCode,
) -> RegistryError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => client.refused(target),
        s => http_error(target, what, s),
    }
}

/// Put the manifest under `target`'s tag; its digest.
async fn put_manifest(
    client: &RegistryClient,
    target: &Reference,
    body: Vec<u8>,
) -> Result<String, RegistryError> {
    let digest = sha256_of(&body);
    let url = client.url(
        target,
        &format!("manifests/{}", target.tag.as_deref().unwrap_or("latest")),
    );
    let body = Bytes::from(body);
    let resp = client
        .send(target, &push_scope(target), || {
            client
                .http()
                .put(&url)
                .header(CONTENT_TYPE, OCI_MANIFEST)
                .body(body.clone())
        })
        .await?;
    if resp.status() != StatusCode::CREATED {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(client.refused(target)),
            StatusCode::BAD_REQUEST => Err(RegistryError::Protocol {
                reference: target.to_string(),
                reason: format!(
                    "it refused the manifest: {}",
                    text.chars().take(200).collect::<String>()
                ),
            }),
            s => Err(http_error(target, "manifest", s)),
        };
    }
    if let Some(d) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        if d != digest {
            return Err(RegistryError::DigestMismatch {
                reference: target.name(),
                what: "the pushed manifest".into(),
                expected: digest,
                actual: d.to_string(),
            });
        }
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(d: char, size: u64, t: &'static str) -> Blob {
        Blob {
            digest: format!("sha256:{}", d.to_string().repeat(64)),
            size,
            layer_type: t,
        }
    }

    #[test]
    fn blob_paths_of_both_layouts() {
        let hex = "a".repeat(64);
        assert_eq!(
            blob_path(&format!("blobs/sha256/{hex}")),
            Some(Some(format!("sha256:{hex}")))
        );
        assert_eq!(blob_path("blobs/sha256/short"), None);
        assert_eq!(blob_path(&format!("{hex}/layer.tar")), Some(None));
        assert_eq!(blob_path(&format!("{hex}.json")), Some(None));
        for other in [
            "manifest.json",
            "index.json",
            "oci-layout",
            "repositories",
            "x/json",
            "x/VERSION",
        ] {
            assert_eq!(blob_path(other), None, "{other}");
        }
    }

    #[test]
    fn layer_types_are_told_by_their_first_bytes() {
        assert_eq!(
            layer_type(&[0x1f, 0x8b, 8, 0]),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            layer_type(&[0x28, 0xb5, 0x2f, 0xfd]),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_eq!(
            layer_type(b"etc/"),
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert_eq!(layer_type(&[]), "application/vnd.oci.image.layer.v1.tar");
    }

    #[test]
    fn the_manifest_names_the_config_and_the_layers_in_order() {
        let mut blobs = HashMap::new();
        blobs.insert("blobs/sha256/c".to_string(), blob('c', 10, "x"));
        blobs.insert(
            "blobs/sha256/1".to_string(),
            blob('1', 100, "application/vnd.oci.image.layer.v1.tar"),
        );
        blobs.insert(
            "blobs/sha256/2".to_string(),
            blob('2', 50, "application/vnd.oci.image.layer.v1.tar+gzip"),
        );
        let m = br#"[{"Config":"blobs/sha256/c","RepoTags":["nova-snapshot/x:latest"],"Layers":["blobs/sha256/1","blobs/sha256/2"]}]"#;
        let doc: serde_json::Value =
            serde_json::from_slice(&image_manifest(m, &blobs).unwrap()).unwrap();
        assert_eq!(doc["mediaType"], OCI_MANIFEST);
        assert_eq!(doc["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(doc["config"]["size"], 10);
        assert_eq!(
            doc["layers"][0]["digest"],
            format!("sha256:{}", "1".repeat(64))
        );
        assert_eq!(
            doc["layers"][1]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(doc["layers"].as_array().unwrap().len(), 2);

        let missing = br#"[{"Config":"blobs/sha256/c","Layers":["blobs/sha256/9"]}]"#;
        assert!(image_manifest(missing, &blobs)
            .unwrap_err()
            .contains("did not write"));
        let two = br#"[{"Config":"blobs/sha256/c"},{"Config":"blobs/sha256/c"}]"#;
        assert!(image_manifest(two, &blobs)
            .unwrap_err()
            .contains("2 images"));
        assert!(image_manifest(b"{", &blobs).is_err());
    }
}
