//! Hashing image data as Glance records it: [`ExpectedHash`] from the record,
//! [`Hasher`] for the algorithms, [`HashWorker`] on a thread of its own.

use bytes::Bytes;

use super::ImageRecord;

/// How many network chunks the hash may lag behind the copy to Docker.
const HASH_QUEUE: usize = 32;

/// The hash Glance recorded for the data.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedHash {
    pub algo: String,
    pub value: String,
}

impl ExpectedHash {
    /// `os_hash_algo`/`os_hash_value` (multihash) when set and known, else the
    /// md5 `checksum`, else nothing.
    pub fn from_record(r: &ImageRecord) -> Option<Self> {
        if let (Some(a), Some(v)) = (&r.os_hash_algo, &r.os_hash_value) {
            if Hasher::new(a).is_some() && !v.is_empty() {
                return Some(ExpectedHash {
                    algo: a.to_ascii_lowercase(),
                    value: v.to_ascii_lowercase(),
                });
            }
        }
        r.checksum
            .as_ref()
            .filter(|c| !c.is_empty())
            .map(|c| ExpectedHash {
                algo: "md5".into(),
                value: c.to_ascii_lowercase(),
            })
    }
}

/// A running digest of one of the algorithms Glance uses (SHA-2 through ring's
/// assembly: hashing must keep up with the data).
pub enum Hasher {
    Md5(md5::Md5),
    Sha2(ring::digest::Context),
}

impl Hasher {
    pub fn new(algo: &str) -> Option<Self> {
        use md5::Digest;
        let sha = |a: &'static ring::digest::Algorithm| Hasher::Sha2(ring::digest::Context::new(a));
        Some(match algo.to_ascii_lowercase().as_str() {
            "md5" => Hasher::Md5(md5::Md5::new()),
            "sha256" => sha(&ring::digest::SHA256),
            "sha384" => sha(&ring::digest::SHA384),
            "sha512" => sha(&ring::digest::SHA512),
            _ => return None,
        })
    }
    pub fn update(&mut self, data: &[u8]) {
        use md5::Digest;
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha2(h) => h.update(data),
        }
    }
    pub fn hex(self) -> String {
        use md5::Digest;
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha2(h) => hex::encode(h.finish().as_ref()),
        }
    }
}

/// Hashes on a blocking thread of its own, so that the hash of image data runs
/// beside the copy to Docker instead of in turn with it. Each network chunk is
/// handed over as it arrives (shared, not copied, and hashed while still in the
/// CPU's cache); the worker lags the copy by at most [`HASH_QUEUE`] chunks, which
/// bounds the memory it holds.
pub(super) struct HashWorker {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<String>,
}

impl HashWorker {
    pub(super) fn start(mut hasher: Hasher) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.hex()
        });
        Self { tx, done }
    }

    pub(super) async fn update(&self, chunk: Bytes) {
        // the worker ends only once this sender is dropped
        let _ = self.tx.send(chunk).await;
    }

    /// The hex digest of everything handed over.
    pub(super) async fn finish(self) -> Result<String, String> {
        drop(self.tx);
        self.done.await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_hash_prefers_multihash() {
        let mut rec = ImageRecord {
            id: "x".into(),
            checksum: Some("ABC".into()),
            ..Default::default()
        };
        assert_eq!(
            ExpectedHash::from_record(&rec),
            Some(ExpectedHash {
                algo: "md5".into(),
                value: "abc".into()
            })
        );
        rec.os_hash_algo = Some("sha512".into());
        rec.os_hash_value = Some("def".into());
        assert_eq!(ExpectedHash::from_record(&rec).unwrap().algo, "sha512");
        rec.os_hash_algo = Some("whirlpool".into());
        assert_eq!(ExpectedHash::from_record(&rec).unwrap().algo, "md5");
    }

    #[test]
    fn hashes_match_known_values() {
        let mut h = Hasher::new("md5").unwrap();
        h.update(b"abc");
        assert_eq!(h.hex(), "900150983cd24fb0d6963f7d28e17f72");
        let mut h = Hasher::new("sha256").unwrap();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(
            h.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Hasher::new("SHA512").unwrap();
        h.update(b"abc");
        assert!(h.hex().starts_with("ddaf35a193617aba"));
    }
}
