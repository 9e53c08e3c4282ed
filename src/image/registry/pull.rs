//! A registry image as a `docker save` tarball, assembled while its blobs
//! download: each layer `<hex>/layer.tar` as the registry serves it (Docker's load
//! decompresses it), the config `<hex>.json`, then `manifest.json`. The size of
//! the whole is known before the first byte (the manifest gives every blob's
//! size), each blob is hashed on the way and a blob whose bytes do not match its
//! digest or size ends the stream with an error, which aborts the load: Docker
//! unpacks a tarball completely before it registers anything, so nothing is kept.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::image::hash::{HashWorker, Hasher};

use super::client::{RegistryClient, Resolved};
use super::{Reference, RegistryError};

const BLOCK: u64 = 512;
/// How many chunks may wait for the load to take them.
const QUEUE: usize = 16;

/// A pull ready to stream.
pub struct Pull {
    /// The image's config digest: the id Docker gives the loaded image.
    pub image_id: String,
    /// The digest of the image manifest pulled.
    pub manifest_digest: String,
    /// The bytes [`Pull::data`] yields.
    pub size: u64,
    /// The sum of the layers' sizes as the registry stores them.
    pub download_size: u64,
    pub data: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>,
}

enum Body {
    Blob { digest: String },
    Bytes(Bytes),
}

struct Entry {
    path: String,
    size: u64,
    body: Body,
}

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The entries of the tarball for `res`, in order.
fn plan(res: &Resolved) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut layer_paths = Vec::new();
    for l in &res.layers {
        let path = format!("{}/layer.tar", hex_of(&l.digest));
        // an image may list one layer twice: one file serves both
        if !layer_paths.contains(&path) {
            entries.push(Entry {
                path: path.clone(),
                size: l.size,
                body: Body::Blob {
                    digest: l.digest.clone(),
                },
            });
        }
        layer_paths.push(path);
    }
    let config_path = format!("{}.json", hex_of(&res.config_digest));
    entries.push(Entry {
        path: config_path.clone(),
        size: res.config.len() as u64,
        body: Body::Bytes(res.config.clone()),
    });
    let manifest = serde_json::json!([{
        "Config": config_path,
        "RepoTags": null,
        "Layers": layer_paths,
    }]);
    let manifest = Bytes::from(manifest.to_string());
    entries.push(Entry {
        path: "manifest.json".into(),
        size: manifest.len() as u64,
        body: Body::Bytes(manifest),
    });
    entries
}

fn header(path: &str, size: u64) -> Result<Bytes, String> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).map_err(|e| e.to_string())?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(Bytes::copy_from_slice(h.as_bytes()))
}

/// Resolve `r` and return its tarball as a stream (the blobs are fetched as the
/// stream is read).
pub async fn open(
    client: std::sync::Arc<RegistryClient>,
    r: Reference,
) -> Result<Pull, RegistryError> {
    let res = client.resolve(&r).await?;
    let entries = plan(&res);
    let size = entries.iter().map(|e| BLOCK + padded(e.size)).sum::<u64>() + 2 * BLOCK;
    let download_size = res.layers.iter().map(|l| l.size).sum();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, RegistryError>>(QUEUE);
    let reference = r.clone();
    tokio::spawn(async move {
        if let Err(e) = produce(&client, &reference, entries, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(Pull {
        image_id: res.config_digest.clone(),
        manifest_digest: res.manifest_digest.clone(),
        size,
        download_size,
        data: Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))),
    })
}

/// The receiver went away (the load failed or was given up): stop quietly.
struct Gone;

async fn produce(
    client: &RegistryClient,
    r: &Reference,
    entries: Vec<Entry>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, RegistryError>>,
) -> Result<(), RegistryError> {
    let send = |b: Bytes| async move { tx.send(Ok(b)).await.map_err(|_| Gone) };
    let protocol = |reason: String| RegistryError::Protocol {
        reference: r.to_string(),
        reason,
    };
    for e in entries {
        let h = header(&e.path, e.size).map_err(|why| protocol(format!("{}: {why}", e.path)))?;
        if send(h).await.is_err() {
            return Ok(());
        }
        match e.body {
            Body::Bytes(b) => {
                if send(b).await.is_err() {
                    return Ok(());
                }
            }
            Body::Blob { digest } => match copy_blob(client, r, &digest, e.size, tx).await {
                Ok(()) => {}
                Err(BlobError::Gone) => return Ok(()),
                Err(BlobError::Fail(e)) => return Err(e),
            },
        }
        let pad = padded(e.size) - e.size;
        if pad > 0 && send(Bytes::from(vec![0u8; pad as usize])).await.is_err() {
            return Ok(());
        }
    }
    let _ = send(Bytes::from(vec![0u8; 2 * BLOCK as usize])).await;
    Ok(())
}

enum BlobError {
    Gone,
    Fail(RegistryError),
}

impl From<RegistryError> for BlobError {
    fn from(e: RegistryError) -> Self {
        BlobError::Fail(e)
    }
}

impl From<Gone> for BlobError {
    fn from(_: Gone) -> Self {
        BlobError::Gone
    }
}

/// Copy the blob `digest` of `size` bytes into `tx`, hashed beside the copy.
async fn copy_blob(
    client: &RegistryClient,
    r: &Reference,
    digest: &str,
    size: u64,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, RegistryError>>,
) -> Result<(), BlobError> {
    let resp = client.blob(r, digest).await?;
    let hasher = HashWorker::start(Hasher::new("sha256").expect("sha256 is supported"));
    let mut body = resp.bytes_stream();
    let mut got = 0u64;
    let mismatch = |actual: String| RegistryError::DigestMismatch {
        reference: r.name(),
        what: format!("layer {digest}"),
        expected: digest.to_string(),
        actual,
    };
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| super::client::unreachable(r, &e))?;
        got += chunk.len() as u64;
        if got > size {
            return Err(RegistryError::Protocol {
                reference: r.name(),
                reason: format!("layer {digest} is longer than the {size} bytes its manifest says"),
            }
            .into());
        }
        hasher.update(chunk.clone()).await;
        tx.send(Ok(chunk)).await.map_err(|_| Gone)?;
    }
    if got != size {
        return Err(RegistryError::Unreachable {
            registry: r.registry.clone(),
            reason: format!("layer {digest} ended after {got} of {size} bytes"),
        }
        .into());
    }
    let actual = hasher.finish().await.map_err(|e| RegistryError::Protocol {
        reference: r.to_string(),
        reason: format!("the hash of layer {digest} could not be computed: {e}"),
    })?;
    if format!("sha256:{actual}") != digest {
        return Err(mismatch(format!("sha256:{actual}")).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::registry::manifest::Descriptor;

    fn desc(digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: digest.into(),
            size,
            platform: None,
            urls: None,
        }
    }

    /// The plan's tarball, with the blobs' bytes given, is what `docker load`
    /// reads: each layer once, the config, then a manifest that names them.
    #[test]
    fn the_plan_is_a_docker_save_tarball_of_known_size() {
        let la = format!("sha256:{}", "a".repeat(64));
        let lb = format!("sha256:{}", "b".repeat(64));
        let res = Resolved {
            manifest_digest: "sha256:m".into(),
            config_digest: format!("sha256:{}", "c".repeat(64)),
            config: Bytes::from_static(b"{\"rootfs\":{}}"),
            layers: vec![desc(&la, 700), desc(&lb, 3), desc(&la, 700)],
        };
        let entries = plan(&res);
        let mut out = Vec::new();
        for e in &entries {
            out.extend_from_slice(&header(&e.path, e.size).unwrap());
            match &e.body {
                Body::Bytes(b) => out.extend_from_slice(b),
                Body::Blob { .. } => out.extend(std::iter::repeat_n(7u8, e.size as usize)),
            }
            out.extend(std::iter::repeat_n(0u8, (padded(e.size) - e.size) as usize));
        }
        out.extend(std::iter::repeat_n(0u8, 1024));
        let want: u64 = entries.iter().map(|e| BLOCK + padded(e.size)).sum::<u64>() + 1024;
        assert_eq!(out.len() as u64, want);

        let mut ar = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        let mut manifest = String::new();
        for f in ar.entries().unwrap() {
            let mut f = f.unwrap();
            let p = f.path().unwrap().to_string_lossy().to_string();
            if p == "manifest.json" {
                std::io::Read::read_to_string(&mut f, &mut manifest).unwrap();
            }
            seen.push((p, f.size()));
        }
        assert_eq!(
            seen,
            vec![
                (format!("{}/layer.tar", "a".repeat(64)), 700),
                (format!("{}/layer.tar", "b".repeat(64)), 3),
                (format!("{}.json", "c".repeat(64)), 13),
                ("manifest.json".to_string(), manifest.len() as u64),
            ]
        );
        let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(m[0]["Config"], format!("{}.json", "c".repeat(64)));
        assert_eq!(m[0]["RepoTags"], serde_json::Value::Null);
        assert_eq!(
            m[0]["Layers"],
            serde_json::json!([
                format!("{}/layer.tar", "a".repeat(64)),
                format!("{}/layer.tar", "b".repeat(64)),
                format!("{}/layer.tar", "a".repeat(64)),
            ])
        );
    }
}
