//! The load pump: Glance's data into the engine's image load, counted, hashed on a
//! thread of its own and stripped of its tags on the way, with the last
//! [`HOLD_BACK`] bytes held back until size and hash check out.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::engine::{ImageEngine, LoadError, LoadReport};
use super::hash::{ExpectedHash, HashWorker, Hasher};
use super::{tarfilter, ImageError};

/// How much of the end of the data is held back from Docker until the hash is
/// verified: on a mismatch Docker gets a truncated tarball and fails the load.
const HOLD_BACK: usize = 256 * 1024;
/// How many network chunks may wait for Docker to read them.
const LOAD_QUEUE: usize = 32;

#[derive(Debug)]
enum PumpError {
    /// Docker stopped reading (its own error says why).
    ReceiverGone,
    Fail(ImageError),
}

/// Load Glance's `data` into the engine through [`pump`]. Returns what the engine
/// reported (also when the load failed: the images a failed load created are
/// found through it) and the failure, if any.
pub(super) async fn load(
    engine: &dyn ImageEngine,
    data: impl Stream<Item = Result<Bytes, ImageError>> + Send + 'static,
    expected: Option<ExpectedHash>,
    max: u64,
    image_id: &str,
    expected_size: Option<u64>,
) -> (LoadReport, Option<ImageError>) {
    let image_id_owned = image_id.to_string();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(LOAD_QUEUE);
    let pump = tokio::spawn(async move {
        let r = pump(
            Box::pin(data),
            &tx,
            expected,
            max,
            image_id_owned,
            expected_size,
        )
        .await;
        if let Err(PumpError::Fail(e)) = &r {
            // An error frame aborts the request: Docker sees a broken body.
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
        r
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let (report, load_err) = match engine.load(Box::pin(body)).await {
        Ok(report) => (report, None),
        Err(LoadError { partial, error }) => (partial, Some(error.to_string())),
    };
    let pumped = pump.await.unwrap_or_else(|e| {
        Err(PumpError::Fail(ImageError::Download {
            image_id: image_id.into(),
            reason: format!("data task failed: {e}"),
        }))
    });
    let fail = match (pumped, load_err) {
        (Err(PumpError::Fail(e)), _) => Some(e),
        (_, Some(reason)) => Some(ImageError::Load {
            image_id: image_id.into(),
            reason,
        }),
        (Err(PumpError::ReceiverGone), None) => Some(ImageError::Load {
            image_id: image_id.into(),
            reason: "docker stopped reading the image data".into(),
        }),
        (Ok(_), None) => None,
    };
    (report, fail)
}

/// Copy Glance's data into the channel Docker reads, hashing and counting on the
/// way. The last [`HOLD_BACK`] bytes are sent only once size and hash check out.
async fn pump(
    mut data: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ImageError>> + Send>>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    expected: Option<ExpectedHash>,
    max: u64,
    image_id: String,
    expected_size: Option<u64>,
) -> Result<u64, PumpError> {
    let hasher = expected
        .as_ref()
        .and_then(|e| Hasher::new(&e.algo))
        .map(HashWorker::start);
    let mut held: VecDeque<Bytes> = VecDeque::new();
    let mut held_len = 0usize;
    let mut total = 0u64;
    let mut chunks = 0u64;
    let mut stripper = tarfilter::TagStripper::new();
    let mut parts = Vec::new();
    let mut tar_err = None;
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(PumpError::Fail)?;
        total += chunk.len() as u64;
        chunks += 1;
        if max > 0 && total > max {
            return Err(PumpError::Fail(ImageError::TooLarge {
                image_id,
                size: total,
                max,
            }));
        }
        if let Some(h) = &hasher {
            h.update(chunk.clone()).await;
        }
        if tar_err.is_some() {
            // Docker gets no more; the rest is still hashed so that a corrupt
            // download is reported as such
            continue;
        }
        if let Err(e) = stripper.push(chunk, &mut parts) {
            tar_err = Some(e);
            continue;
        }
        // zero-copy: the network's chunks go on to Docker as they are
        for p in parts.drain(..) {
            held_len += p.len();
            held.push_back(p);
        }
        while held
            .front()
            .is_some_and(|f| held_len - f.len() >= HOLD_BACK)
        {
            if let Some(f) = held.pop_front() {
                held_len -= f.len();
                tx.send(Ok(f)).await.map_err(|_| PumpError::ReceiverGone)?;
            }
        }
    }
    if let Some(size) = expected_size {
        if size != total {
            return Err(PumpError::Fail(ImageError::Download {
                image_id,
                reason: format!("got {total} bytes, the image record says {size}"),
            }));
        }
    }
    // the hash speaks first: a corrupt download is a checksum error, not a tar error
    let tar_err = tar_err.or_else(|| stripper.finish().err());
    if let (Some(h), Some(e)) = (hasher, expected) {
        let actual = h.finish().await.map_err(|reason| {
            PumpError::Fail(ImageError::Download {
                image_id: image_id.clone(),
                reason: format!("the hash of its data could not be computed: {reason}"),
            })
        })?;
        if actual != e.value {
            return Err(PumpError::Fail(ImageError::ChecksumMismatch {
                image_id,
                algo: e.algo,
                expected: e.value,
                actual,
            }));
        }
    }
    if let Some(e) = tar_err {
        return Err(PumpError::Fail(ImageError::Unacceptable {
            image_id,
            reason: format!("its data is not a usable `docker save` tarball: {e}"),
        }));
    }
    for f in held {
        tx.send(Ok(f)).await.map_err(|_| PumpError::ReceiverGone)?;
    }
    tracing::debug!(%image_id, bytes = total, chunks, "all data checked and handed to the engine");
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(
        chunks: Vec<&'static [u8]>,
    ) -> std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ImageError>> + Send>> {
        Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    /// A `docker save`-like tarball with a layer of `n` bytes, tagged in its manifest.
    fn tarball(n: usize) -> &'static [u8] {
        let mut b = tar::Builder::new(Vec::new());
        for (path, body) in [
            ("l1/layer.tar", vec![7u8; n]),
            (
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":["glance/victim:latest"],"Layers":["l1/layer.tar"]}]"#.to_vec(),
            ),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, &body[..]).unwrap();
        }
        Box::leak(b.into_inner().unwrap().into_boxed_slice())
    }

    fn md5_of(parts: &[&[u8]]) -> ExpectedHash {
        let mut h = Hasher::new("md5").unwrap();
        for p in parts {
            h.update(p);
        }
        ExpectedHash {
            algo: "md5".into(),
            value: h.hex(),
        }
    }

    fn received(rx: &mut tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Vec<u8> {
        let mut got = Vec::new();
        while let Ok(Ok(b)) = rx.try_recv() {
            got.extend_from_slice(&b);
        }
        got
    }

    #[tokio::test]
    async fn pump_withholds_the_tail_on_mismatch() {
        let tb = tarball(HOLD_BACK * 4);
        let net = || tb.chunks(64 * 1024).collect::<Vec<_>>();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let bad = ExpectedHash {
            algo: "md5".into(),
            value: "00".into(),
        };
        let r = pump(data(net()), &tx, Some(bad), 0, "i".into(), None).await;
        assert!(matches!(
            r,
            Err(PumpError::Fail(ImageError::ChecksumMismatch { .. }))
        ));
        let got = received(&mut rx);
        assert!(
            !got.is_empty() && got.len() < tb.len(),
            "the tail must not reach docker"
        );

        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let n = pump(
            data(net()),
            &tx,
            Some(md5_of(&[tb])),
            0,
            "i".into(),
            Some(tb.len() as u64),
        )
        .await
        .ok()
        .unwrap();
        assert_eq!(n, tb.len() as u64);
        // what docker got is the tarball without its tags
        let mut want = Vec::new();
        let mut f = tarfilter::TagStripper::new();
        f.push(Bytes::from_static(tb), &mut want).unwrap();
        assert_eq!(received(&mut rx), want.concat());
        let text = String::from_utf8_lossy(&want.concat()).into_owned();
        assert!(text.contains(r#"[{"Config":"c.json","Layers":["l1/layer.tar"]}]"#));
        assert!(!text.contains("victim"));
    }

    #[tokio::test]
    async fn pump_reports_a_corrupt_download_before_a_broken_tarball() {
        let tb = tarball(1000);
        let mut broken = tb.to_vec();
        broken[0] ^= 0xff; // the first tar header
        let broken: &'static [u8] = Box::leak(broken.into_boxed_slice());
        // Glance's hash is of the good data: a checksum error
        let (tx, _rx) = tokio::sync::mpsc::channel(1024);
        let r = pump(
            data(vec![broken]),
            &tx,
            Some(md5_of(&[tb])),
            0,
            "i".into(),
            None,
        )
        .await;
        assert!(matches!(
            r,
            Err(PumpError::Fail(ImageError::ChecksumMismatch { .. }))
        ));
        // Glance's hash is of the broken data: the tarball is unacceptable
        let (tx, _rx) = tokio::sync::mpsc::channel(1024);
        let r = pump(
            data(vec![broken]),
            &tx,
            Some(md5_of(&[broken])),
            0,
            "i".into(),
            None,
        )
        .await;
        match r {
            Err(PumpError::Fail(e @ ImageError::Unacceptable { .. })) => {
                assert!(
                    e.to_string().contains("not a usable `docker save` tarball"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn pump_enforces_max_size() {
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        let r = pump(
            data(vec![b"12345", b"6789"]),
            &tx,
            None,
            8,
            "i".into(),
            None,
        )
        .await;
        assert!(matches!(
            r,
            Err(PumpError::Fail(ImageError::TooLarge {
                size: 9,
                max: 8,
                ..
            }))
        ));
    }
}
