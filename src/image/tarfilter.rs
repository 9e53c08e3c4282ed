//! The tarball's own tags never reach Docker.
//!
//! `docker load` applies the repository tags written in the tarball
//! (`manifest.json` `RepoTags`, the legacy `repositories` file and, with the
//! containerd image store, the name annotations of an OCI `index.json`). A
//! tenant's image could therefore re-point any tag on the host, such as
//! `glance/<another image's id>:latest` or an operator's image, to its own
//! content. [`TagStripper`] sits between Glance and Docker and rewrites the
//! stream on the way: those three files lose their tags, everything else passes
//! through byte for byte (as slices of the chunks it was given: no copy), and the
//! image is then tagged by its Glance id only.
//!
//! Docker reads the archive with Go's `archive/tar`; the stripper follows the
//! same rules where they decide which bytes belong to which entry (ustar prefix,
//! GNU long names, PAX `path` and `size` records) and refuses what would let the
//! two disagree or let a file reach `manifest.json` sideways: sparse entries,
//! paths that leave the archive, entries written through a symbolic link, and a
//! `manifest.json` or `index.json` that is not a regular file.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::{Map, Value};

const BLOCK: usize = 512;
/// Pending PAX / GNU long-name data for one entry.
const MAX_META: usize = 1024 * 1024;
/// `manifest.json` / `index.json` of a `docker save` tarball are a few KiB.
const MAX_JSON: u64 = 4 * 1024 * 1024;
/// The largest entry size Go's `archive/tar` (an `int64`) reads; a larger one
/// would also overflow the block arithmetic.
const MAX_SIZE: u64 = i64::MAX as u64;
/// Symbolic links remembered to refuse writes through them.
const MAX_SYMLINKS: usize = 100_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TarError {
    #[error("its tar header at byte {offset} is corrupt ({reason})")]
    Header { offset: u64, reason: String },
    #[error("its tar entry {path:?} {reason}")]
    Entry { path: String, reason: String },
    #[error("its {name} cannot be read: {reason}")]
    Json { name: &'static str, reason: String },
}

/// Which file an entry is, for the stripper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    Manifest,
    Index,
}

impl Special {
    fn name(self) -> &'static str {
        match self {
            Special::Manifest => "manifest.json",
            Special::Index => "index.json",
        }
    }
}

#[derive(Debug)]
enum State {
    /// Collecting a 512-byte header.
    Header,
    /// A PAX (`x`) or GNU long name (`L`, `K`) entry: kept until its entry comes.
    Meta {
        kind: u8,
        size: u64,
        left: u64,
        data: Vec<u8>,
    },
    /// Entry data and padding passed through.
    Pass { left: u64 },
    /// Entry data and padding dropped (the legacy `repositories` file).
    Drop { left: u64 },
    /// A JSON file collected to be rewritten.
    Rewrite {
        which: Special,
        size: u64,
        left: u64,
        mtime: u64,
        data: Vec<u8>,
    },
    /// After the end-of-archive block: the rest passes as it is.
    Trailer,
}

/// A streaming filter over the bytes of a `docker save` tarball; see the module.
#[derive(Debug)]
pub struct TagStripper {
    state: State,
    header: [u8; BLOCK],
    header_len: usize,
    /// Raw bytes (headers, data, padding) of the pending metadata entries.
    meta_raw: Vec<u8>,
    pax_path: Option<String>,
    pax_size: Option<u64>,
    gnu_name: Option<String>,
    symlinks: HashSet<String>,
    /// Bytes of input consumed so far (for error messages).
    offset: u64,
}

impl Default for TagStripper {
    fn default() -> Self {
        Self::new()
    }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// A path as Go's `filepath.Clean` and Docker's untar see it, relative to the
/// archive root; `None` when it leaves the root.
fn clean(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl TagStripper {
    pub fn new() -> Self {
        TagStripper {
            state: State::Header,
            header: [0; BLOCK],
            header_len: 0,
            meta_raw: Vec::new(),
            pax_path: None,
            pax_size: None,
            gnu_name: None,
            symlinks: HashSet::new(),
            offset: 0,
        }
    }

    /// Feed one chunk; what Docker gets is appended to `out`.
    pub fn push(&mut self, mut chunk: Bytes, out: &mut Vec<Bytes>) -> Result<(), TarError> {
        while !chunk.is_empty() {
            match &mut self.state {
                State::Trailer => {
                    self.offset += chunk.len() as u64;
                    out.push(chunk);
                    return Ok(());
                }
                State::Header => {
                    let n = (BLOCK - self.header_len).min(chunk.len());
                    self.header[self.header_len..self.header_len + n].copy_from_slice(&chunk[..n]);
                    self.header_len += n;
                    chunk = chunk.slice(n..);
                    self.offset += n as u64;
                    if self.header_len == BLOCK {
                        self.header_len = 0;
                        self.on_header(out)?;
                    }
                }
                State::Pass { left } | State::Drop { left } => {
                    let n = (*left).min(chunk.len() as u64) as usize;
                    *left -= n as u64;
                    let done = *left == 0;
                    let part = chunk.split_to(n);
                    self.offset += n as u64;
                    if matches!(self.state, State::Pass { .. }) {
                        out.push(part);
                    }
                    if done {
                        self.state = State::Header;
                    }
                }
                State::Meta {
                    size, left, data, ..
                }
                | State::Rewrite {
                    size, left, data, ..
                } => {
                    let n = (*left).min(chunk.len() as u64) as usize;
                    let consumed = padded(*size) - *left;
                    // keep the data, not the padding
                    let keep = (*size).saturating_sub(consumed).min(n as u64) as usize;
                    data.extend_from_slice(&chunk[..keep]);
                    *left -= n as u64;
                    let done = *left == 0;
                    chunk = chunk.slice(n..);
                    self.offset += n as u64;
                    if done {
                        self.on_data_complete(out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The input ended; an archive cut in the middle of an entry is an error.
    pub fn finish(&mut self) -> Result<(), TarError> {
        match self.state {
            State::Trailer => Ok(()),
            State::Header if self.header_len == 0 => Ok(()),
            _ => Err(TarError::Header {
                offset: self.offset,
                reason: "the archive ends in the middle of an entry".into(),
            }),
        }
    }

    fn on_header(&mut self, out: &mut Vec<Bytes>) -> Result<(), TarError> {
        let at = self.offset - BLOCK as u64;
        if self.header.iter().all(|b| *b == 0) {
            // end of archive (Go stops reading here)
            self.meta_raw.clear();
            out.push(Bytes::copy_from_slice(&self.header));
            self.state = State::Trailer;
            return Ok(());
        }
        let bad = |reason: String| TarError::Header { offset: at, reason };
        let h = tar::Header::from_byte_slice(&self.header);
        let sum = h.cksum().map_err(|e| bad(e.to_string()))?;
        // signed or unsigned byte sums are both accepted, as Go does; the
        // checksum field itself counts as spaces
        let (unsigned, signed) =
            self.header
                .iter()
                .enumerate()
                .fold((0u32, 0i64), |(u, s), (i, b)| {
                    let (bu, bs) = if (148..156).contains(&i) {
                        (32, 32)
                    } else {
                        (u32::from(*b), i64::from(*b as i8))
                    };
                    (u + bu, s + bs)
                });
        if sum != unsigned && i64::from(sum) != signed {
            return Err(bad("bad checksum".into()));
        }
        let kind = h.entry_type().as_byte();
        let mut size = h.entry_size().map_err(|e| bad(e.to_string()))?;
        // Go's archive/tar reads sizes as int64 and refuses a negative one
        if size > MAX_SIZE {
            return Err(bad(format!("entry size {size} is too large")));
        }
        match kind {
            b'x' | b'L' | b'K' => {
                if self.meta_raw.len() as u64 + BLOCK as u64 + padded(size) > MAX_META as u64 {
                    return Err(bad("extended header data is too large".into()));
                }
                self.meta_raw.extend_from_slice(&self.header);
                self.state = if size == 0 {
                    self.on_meta(kind, Vec::new())?;
                    State::Header
                } else {
                    State::Meta {
                        kind,
                        size,
                        left: padded(size),
                        data: Vec::with_capacity(size as usize),
                    }
                };
                return Ok(());
            }
            b'S' => {
                return Err(TarError::Entry {
                    path: String::from_utf8_lossy(&h.path_bytes()).into_owned(),
                    reason: "is a GNU sparse file, which an image tarball never holds".into(),
                })
            }
            _ => {}
        }
        if let Some(s) = self.pax_size.take() {
            if s > MAX_SIZE {
                return Err(bad(format!("PAX size record {s} is too large")));
            }
            size = s;
        }
        let raw_path = self
            .pax_path
            .take()
            .or_else(|| self.gnu_name.take())
            .unwrap_or_else(|| String::from_utf8_lossy(&h.path_bytes()).into_owned());
        self.gnu_name = None;
        let meta = std::mem::take(&mut self.meta_raw);
        let entry_err = |reason: &str| TarError::Entry {
            path: raw_path.clone(),
            reason: reason.into(),
        };
        if kind == b'g' {
            // a PAX global header: Docker's untar ignores it
            out.push(Bytes::from(meta));
            out.push(Bytes::copy_from_slice(&self.header));
            self.state = Self::data_state(size, false);
            return Ok(());
        }
        let path = clean(&raw_path).ok_or_else(|| entry_err("leaves the archive"))?;
        // a write through a symbolic link could reach any file, manifest.json too
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() && self.symlinks.contains(&prefix) {
                return Err(entry_err("is written through a symbolic link"));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
        }
        let regular = matches!(kind, b'0' | b'\0' | b'7');
        if kind == b'2' {
            if self.symlinks.len() >= MAX_SYMLINKS {
                return Err(entry_err("is one symbolic link too many"));
            }
            self.symlinks.insert(path.clone());
        } else {
            self.symlinks.remove(&path);
        }
        let special = match path.as_str() {
            "manifest.json" => Some(Special::Manifest),
            "index.json" => Some(Special::Index),
            "repositories" => {
                // the legacy tag file goes, whatever it is
                self.state = Self::data_state(size, true);
                return Ok(());
            }
            _ => None,
        };
        match special {
            Some(which) => {
                if !regular {
                    return Err(entry_err("must be a regular file"));
                }
                if size > MAX_JSON {
                    return Err(entry_err("is too large"));
                }
                let mtime = h.mtime().unwrap_or(0);
                if size == 0 {
                    self.emit_json(which, mtime, Vec::new(), out)?;
                    self.state = State::Header;
                } else {
                    self.state = State::Rewrite {
                        which,
                        size,
                        left: padded(size),
                        mtime,
                        data: Vec::with_capacity(size as usize),
                    };
                }
            }
            None => {
                if !meta.is_empty() {
                    out.push(Bytes::from(meta));
                }
                out.push(Bytes::copy_from_slice(&self.header));
                self.state = Self::data_state(size, false);
            }
        }
        Ok(())
    }

    fn data_state(size: u64, drop: bool) -> State {
        match (padded(size), drop) {
            (0, _) => State::Header,
            (left, true) => State::Drop { left },
            (left, false) => State::Pass { left },
        }
    }

    fn on_data_complete(&mut self, out: &mut Vec<Bytes>) -> Result<(), TarError> {
        match std::mem::replace(&mut self.state, State::Header) {
            State::Meta {
                kind, size, data, ..
            } => {
                // the raw entry (header already kept) goes out with its entry
                let end = self.meta_raw.len() + padded(size) as usize;
                self.meta_raw.extend_from_slice(&data);
                self.meta_raw.resize(end, 0);
                self.on_meta(kind, data)
            }
            State::Rewrite {
                which, mtime, data, ..
            } => self.emit_json(which, mtime, data, out),
            other => {
                self.state = other;
                Ok(())
            }
        }
    }

    /// Records of a PAX header or a GNU long name, as Go merges them into the next entry.
    fn on_meta(&mut self, kind: u8, data: Vec<u8>) -> Result<(), TarError> {
        let at = self.offset;
        match kind {
            b'x' => {
                for rec in tar::PaxExtensions::new(&data) {
                    let rec = rec.map_err(|e| TarError::Header {
                        offset: at,
                        reason: format!("bad PAX record: {e}"),
                    })?;
                    match rec.key() {
                        Ok("path") => {
                            self.pax_path = Some(String::from_utf8_lossy(rec.value_bytes()).into())
                        }
                        Ok("size") => {
                            let v = rec.value().ok().and_then(|v| v.parse::<u64>().ok());
                            self.pax_size = Some(v.ok_or_else(|| TarError::Header {
                                offset: at,
                                reason: "bad PAX size record".into(),
                            })?);
                        }
                        _ => {}
                    }
                }
            }
            b'L' => {
                let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                self.gnu_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            _ => {}
        }
        Ok(())
    }

    fn emit_json(
        &mut self,
        which: Special,
        mtime: u64,
        data: Vec<u8>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), TarError> {
        let bad = |reason: String| TarError::Json {
            name: which.name(),
            reason,
        };
        let doc: Value = serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?;
        let doc = match which {
            Special::Manifest => strip_manifest(doc),
            Special::Index => strip_index(doc),
        }
        .map_err(bad)?;
        let body = serde_json::to_vec(&doc).map_err(|e| bad(e.to_string()))?;
        let mut h = tar::Header::new_ustar();
        h.set_path(which.name())
            .map_err(|e| bad(format!("tar header: {e}")))?;
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.push(Bytes::copy_from_slice(h.as_bytes()));
        let pad = padded(body.len() as u64) as usize - body.len();
        out.push(Bytes::from(body));
        if pad > 0 {
            out.push(Bytes::from(vec![0u8; pad]));
        }
        Ok(())
    }
}

/// Keep only the fields of each manifest.json item that load an image (Go's JSON
/// decoder matches keys without regard to case, so a whitelist of exact names is
/// the only safe way to drop every spelling of `RepoTags`).
fn strip_manifest(doc: Value) -> Result<Value, String> {
    let Value::Array(items) = doc else {
        return Err("it is not a JSON array".into());
    };
    let items = items
        .into_iter()
        .map(|item| {
            let Value::Object(m) = item else {
                return Err("an item is not an object".to_string());
            };
            Ok(Value::Object(keep(
                m,
                &["Config", "Layers", "Parent", "LayerSources"],
            )))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(items))
}

/// An OCI index without the image-name annotations the containerd store tags by.
fn strip_index(doc: Value) -> Result<Value, String> {
    let Value::Object(m) = doc else {
        return Err("it is not a JSON object".into());
    };
    let mut m = keep(m, &["schemaVersion", "mediaType", "manifests"]);
    if let Some(Value::Array(ms)) = m.remove("manifests") {
        let ms = ms
            .into_iter()
            .map(|d| match d {
                Value::Object(d) => Ok(Value::Object(keep(
                    d,
                    &[
                        "mediaType",
                        "digest",
                        "size",
                        "platform",
                        "urls",
                        "artifactType",
                    ],
                ))),
                _ => Err("a manifest descriptor is not an object".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        m.insert("manifests".into(), Value::Array(ms));
    }
    Ok(Value::Object(m))
}

fn keep(m: Map<String, Value>, names: &[&str]) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut h, path, target).unwrap();
    }

    const MANIFEST: &str = r#"[{"Config":"abc.json","RepoTags":["glance/victim:latest","busybox:latest"],"Layers":["l1/layer.tar"]}]"#;

    fn save_like() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "l1/VERSION", b"1.0");
        entry(&mut b, "l1/layer.tar", &vec![0x5a; 3000]);
        entry(&mut b, "abc.json", br#"{"architecture":"amd64"}"#);
        entry(&mut b, "manifest.json", MANIFEST.as_bytes());
        entry(&mut b, "repositories", br#"{"busybox":{"latest":"abc"}}"#);
        b.into_inner().unwrap()
    }

    fn run(input: &[u8], cuts: &[usize]) -> Result<Vec<u8>, TarError> {
        let mut f = TagStripper::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort();
        cuts.push(input.len());
        for c in cuts {
            f.push(Bytes::copy_from_slice(&input[at..c]), &mut out)?;
            at = c;
        }
        f.finish()?;
        Ok(out.concat())
    }

    /// (path, data) of every entry, as Go-like readers see them.
    fn entries(tarball: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(tarball);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().into_owned();
                let mut d = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut d).unwrap();
                (p, d)
            })
            .collect()
    }

    /// Found by the fuzzer (fuzz/fuzz_targets/tarfilter.rs): a size above
    /// `i64::MAX` overflowed the padding arithmetic (a panic with overflow
    /// checks, a zero-length entry without them); Go refuses such a header.
    #[test]
    fn sizes_go_refuses_are_refused() {
        for size in [u64::MAX, u64::MAX - 511, i64::MAX as u64 + 1] {
            for kind in [tar::EntryType::Regular, tar::EntryType::XHeader] {
                let mut h = tar::Header::new_gnu();
                h.set_path("a").unwrap();
                h.set_entry_type(kind);
                h.set_size(size);
                h.set_cksum();
                let err = run(h.as_bytes(), &[]).unwrap_err();
                assert!(err.to_string().contains("too large"), "{err}");
            }
        }
        let rec = format!("size={}\n", u64::MAX);
        let rec = format!("{} {rec}", rec.len() + 3);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(rec.len() as u64);
        h.set_entry_type(tar::EntryType::XHeader);
        b.append_data(&mut h, "pax", rec.as_bytes()).unwrap();
        entry(&mut b, "a", b"x");
        let err = run(&b.into_inner().unwrap(), &[]).unwrap_err();
        assert!(err.to_string().contains("PAX size record"), "{err}");
        // the largest size Go reads is still an entry (cut short here)
        let mut h = tar::Header::new_gnu();
        h.set_path("a").unwrap();
        h.set_size(i64::MAX as u64);
        h.set_cksum();
        let err = run(h.as_bytes(), &[]).unwrap_err();
        assert!(err.to_string().contains("ends in the middle"), "{err}");
    }

    #[test]
    fn tags_go_and_everything_else_stays() {
        let input = save_like();
        let out = run(&input, &[]).unwrap();
        let before = entries(&input);
        let after = entries(&out);
        let names: Vec<&str> = after.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            ["l1/VERSION", "l1/layer.tar", "abc.json", "manifest.json"]
        );
        for i in 0..3 {
            assert_eq!(before[i], after[i]);
        }
        let m: Value = serde_json::from_slice(&after[3].1).unwrap();
        assert_eq!(
            m,
            serde_json::json!([{"Config":"abc.json","Layers":["l1/layer.tar"]}])
        );
    }

    #[test]
    fn every_spelling_of_repotags_goes() {
        let mut b = tar::Builder::new(Vec::new());
        entry(
            &mut b,
            "./manifest.json",
            r#"[{"Config":"c.json","repotags":["x:1"],"REPOTAGS":["y:1"],"RepoTagſ":["z:1"],"Layers":[]}]"#
                .as_bytes(),
        );
        let out = run(&b.into_inner().unwrap(), &[]).unwrap();
        let after = entries(&out);
        assert_eq!(after[0].0, "manifest.json");
        assert_eq!(
            serde_json::from_slice::<Value>(&after[0].1).unwrap(),
            serde_json::json!([{"Config":"c.json","Layers":[]}])
        );
    }

    #[test]
    fn oci_index_loses_its_name_annotations() {
        let mut b = tar::Builder::new(Vec::new());
        entry(
            &mut b,
            "index.json",
            br#"{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:1","size":3,"annotations":{"io.containerd.image.name":"docker.io/library/busybox:latest","org.opencontainers.image.ref.name":"latest"}}]}"#,
        );
        let out = run(&b.into_inner().unwrap(), &[]).unwrap();
        let v: Value = serde_json::from_slice(&entries(&out)[0].1).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:1","size":3}]})
        );
    }

    #[test]
    fn long_and_pax_names_are_seen_as_go_sees_them() {
        // a GNU long name and a PAX path that both say manifest.json
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/../manifest.json", "d".repeat(120));
        entry(&mut b, &long, MANIFEST.as_bytes());
        let mut gnu = b.into_inner().unwrap();
        gnu.truncate(gnu.len() - 1024);
        let mut pax = tar::Builder::new(Vec::new());
        pax.append_pax_extensions([("path", &b"manifest.json"[..])])
            .unwrap();
        entry(&mut pax, "innocent.txt", MANIFEST.as_bytes());
        for input in [gnu, pax.into_inner().unwrap()] {
            let out = run(&input, &[]).unwrap();
            let after = entries(&out);
            assert_eq!(after.len(), 1);
            assert_eq!(after[0].0, "manifest.json");
            assert!(!String::from_utf8_lossy(&after[0].1).contains("victim"));
        }
    }

    #[test]
    fn refuses_what_would_reach_the_manifest_sideways() {
        let mut b = tar::Builder::new(Vec::new());
        symlink(&mut b, "manifest.json", "evil.json");
        assert!(matches!(
            run(&b.into_inner().unwrap(), &[]),
            Err(TarError::Entry { reason, .. }) if reason.contains("regular file")
        ));

        let mut b = tar::Builder::new(Vec::new());
        symlink(&mut b, "d", ".");
        entry(&mut b, "d/manifest.json", MANIFEST.as_bytes());
        assert!(matches!(
            run(&b.into_inner().unwrap(), &[]),
            Err(TarError::Entry { reason, .. }) if reason.contains("symbolic link")
        ));

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_gnu_mut().unwrap().name[..19].copy_from_slice(b"../../manifest.json");
        h.set_cksum();
        b.append(&h, &b"abc"[..]).unwrap();
        assert!(matches!(
            run(&b.into_inner().unwrap(), &[]),
            Err(TarError::Entry { reason, .. }) if reason.contains("leaves")
        ));
    }

    #[test]
    fn a_symlink_to_a_file_like_docker_25_writes_is_fine() {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "blobs/sha256/aa", &[1, 2, 3]);
        symlink(&mut b, "l1/layer.tar", "../blobs/sha256/aa");
        entry(&mut b, "manifest.json", MANIFEST.as_bytes());
        let out = run(&b.into_inner().unwrap(), &[]).unwrap();
        assert_eq!(entries(&out).len(), 3);
    }

    #[test]
    fn corrupt_and_truncated_archives_are_errors() {
        let mut input = save_like();
        input[100] ^= 0xff; // inside the first header (its mode field)
        assert!(matches!(
            run(&input, &[]),
            Err(TarError::Header { offset: 0, .. })
        ));
        let input = save_like();
        assert!(matches!(
            run(&input[..700], &[]),
            Err(TarError::Header { .. })
        ));
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "manifest.json", b"[{\"Config\":");
        assert!(matches!(
            run(&b.into_inner().unwrap(), &[]),
            Err(TarError::Json { .. })
        ));
    }

    proptest! {
        #[test]
        fn output_does_not_depend_on_chunking(cuts in proptest::collection::vec(0usize..10_000, 0..12)) {
            let input = save_like();
            prop_assert_eq!(run(&input, &cuts).unwrap(), run(&input, &[]).unwrap());
        }

        #[test]
        fn never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..4096), cuts in proptest::collection::vec(0usize..4096, 0..4)) {
            let _ = run(&data, &cuts);
        }
    }
}
