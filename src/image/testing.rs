//! Test doubles of the image service's two sides: [`MemoryEngine`], an image
//! engine in memory that loads `docker save` tarballs as Docker does (tags from
//! `manifest.json` included), and [`GlanceStub`], a Glance v2 API on a local
//! port with records, data, JSON patch, filtered listing and delete.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::engine::{
    ByteStream, CommitRequest, EngineError, ExportStream, ImageDetails, ImageEngine, ImageSummary,
    LoadError, LoadReport,
};
use super::hash::Hasher;
use super::{ImageConfig, ImageService};
use crate::config::Ini;
use crate::context::RequestContext;

pub(super) fn ctx() -> RequestContext {
    RequestContext::admin()
}

fn sha256_id(data: &[u8]) -> String {
    let mut h = Hasher::new("sha256").expect("sha256");
    h.update(data);
    format!("sha256:{}", h.hex())
}

fn digest(algo: &str, data: &[u8]) -> String {
    let mut h = Hasher::new(algo).expect("known algorithm");
    h.update(data);
    h.hex()
}

/// A `docker save`-like tarball of images given as (config, RepoTags): the
/// engine double gives each the id `sha256:<sha256 of its config>`, as Docker does.
pub(super) fn save_tarball(images: &[(&str, &[&str])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, body).expect("tar entry");
    };
    let mut manifest = Vec::new();
    for (i, (config, tags)) in images.iter().enumerate() {
        add(&format!("l{i}/layer.tar"), &vec![i as u8; 3000]);
        add(&format!("c{i}.json"), config.as_bytes());
        manifest.push(json!({"Config": format!("c{i}.json"), "RepoTags": tags,
            "Layers": [format!("l{i}/layer.tar")]}));
    }
    add(
        "manifest.json",
        Value::Array(manifest).to_string().as_bytes(),
    );
    b.into_inner().expect("tarball")
}

/// The id the engine double gives the image of `config`.
pub(super) fn image_id_of(config: &str) -> String {
    sha256_id(config.as_bytes())
}

#[derive(Debug, Clone, Default)]
pub(super) struct MemImage {
    pub tags: BTreeSet<String>,
    pub created: i64,
    pub last_tag_time: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub(super) struct EngineState {
    /// Images by id.
    pub images: BTreeMap<String, MemImage>,
    /// Containers by name, with what their commit exports.
    pub containers: HashMap<String, Vec<u8>>,
    pub loads: usize,
    pub commits: Vec<CommitRequest>,
    /// Fail every load with this message, after creating and reporting its images.
    pub fail_load_after_report: Option<String>,
    pub fail_tag: bool,
    /// Exports fail with this message after their first chunk.
    pub fail_export: Option<String>,
    /// References whose removal the engine refuses (a container uses them).
    pub refuse_remove: HashSet<String>,
}

impl EngineState {
    fn resolve(&self, reference: &str) -> Option<String> {
        if self.images.contains_key(reference) {
            return Some(reference.to_string());
        }
        self.images
            .iter()
            .find(|(_, i)| i.tags.contains(reference))
            .map(|(id, _)| id.clone())
    }

    /// Add the image `id` (or a tag to it), moving `tag` off any other image.
    pub fn put(&mut self, id: &str, tag: Option<&str>, data: Vec<u8>) {
        if let Some(t) = tag {
            for i in self.images.values_mut() {
                i.tags.remove(t);
            }
        }
        let img = self
            .images
            .entry(id.to_string())
            .or_insert_with(|| MemImage {
                created: chrono::Utc::now().timestamp(),
                data,
                ..Default::default()
            });
        if let Some(t) = tag {
            img.tags.insert(t.to_string());
            img.last_tag_time = Some(chrono::Utc::now().to_rfc3339());
        }
    }

    /// Every tag of every image, as `tag -> id`.
    pub fn tags(&self) -> BTreeMap<String, String> {
        self.images
            .iter()
            .flat_map(|(id, i)| i.tags.iter().map(move |t| (t.clone(), id.clone())))
            .collect()
    }

    /// Load a `docker save` tarball as Docker does: each manifest entry becomes
    /// an image, tagged with its RepoTags.
    fn load_tarball(&mut self, data: &[u8]) -> Result<LoadReport, String> {
        let mut files = HashMap::new();
        let mut archive = tar::Archive::new(data);
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let path = entry
                .path()
                .map_err(|e| e.to_string())?
                .display()
                .to_string();
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut body).map_err(|e| e.to_string())?;
            files.insert(path, body);
        }
        let manifest: Value = serde_json::from_slice(
            files
                .get("manifest.json")
                .ok_or("open manifest.json: no such file or directory")?,
        )
        .map_err(|e| e.to_string())?;
        let mut report = LoadReport::default();
        for entry in manifest.as_array().into_iter().flatten() {
            let config = entry["Config"].as_str().unwrap_or_default();
            let config = files.get(config).ok_or("missing config")?;
            let id = sha256_id(config);
            self.put(&id, None, data.to_vec());
            let tags: Vec<&str> = entry["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if tags.is_empty() {
                report.ids.push(id.clone());
            }
            for t in tags {
                self.put(&id, Some(t), Vec::new());
                report.names.push(t.to_string());
            }
        }
        Ok(report)
    }
}

/// An image engine in memory.
#[derive(Default)]
pub(super) struct MemoryEngine {
    state: Mutex<EngineState>,
}

impl MemoryEngine {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn state(&self) -> MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn no_such(what: &str, name: &str) -> EngineError {
    EngineError::NotFound(format!("No such {what}: {name}"))
}

#[async_trait]
impl ImageEngine for MemoryEngine {
    async fn inspect(&self, reference: &str) -> Result<ImageDetails, EngineError> {
        let s = self.state();
        let id = s
            .resolve(reference)
            .ok_or_else(|| no_such("image", reference))?;
        Ok(ImageDetails {
            last_tag_time: s.images[&id].last_tag_time.clone(),
            id: Some(id),
        })
    }

    async fn list(
        &self,
        _all: bool,
        reference: Option<&str>,
    ) -> Result<Vec<ImageSummary>, EngineError> {
        let prefix = reference.map(|r| r.trim_end_matches('*'));
        Ok(self
            .state()
            .images
            .iter()
            .filter_map(|(id, i)| {
                let tags: Vec<String> = i
                    .tags
                    .iter()
                    .filter(|t| prefix.is_none_or(|p| t.starts_with(p)))
                    .cloned()
                    .collect();
                (prefix.is_none() || !tags.is_empty()).then(|| ImageSummary {
                    id: id.clone(),
                    repo_tags: tags,
                    created: i.created,
                })
            })
            .collect())
    }

    async fn load(&self, mut tarball: ByteStream) -> Result<LoadReport, LoadError> {
        let failed = |error: String, partial: LoadReport| LoadError {
            partial,
            error: EngineError::Failed(error),
        };
        let mut data = Vec::new();
        while let Some(chunk) = tarball.next().await {
            match chunk {
                Ok(c) => data.extend_from_slice(&c),
                Err(e) => return Err(failed(format!("unexpected EOF: {e}"), Default::default())),
            }
        }
        let mut s = self.state();
        s.loads += 1;
        let report = s
            .load_tarball(&data)
            .map_err(|e| failed(e, Default::default()))?;
        match s.fail_load_after_report.clone() {
            Some(e) => Err(failed(e, report)),
            None => Ok(report),
        }
    }

    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let mut s = self.state();
        if s.fail_tag {
            return Err(EngineError::Failed("tag refused".into()));
        }
        let id = s.resolve(image).ok_or_else(|| no_such("image", image))?;
        s.put(&id, Some(&format!("{repo}:{tag}")), Vec::new());
        Ok(())
    }

    async fn remove(&self, reference: &str, force: bool) -> Result<(), EngineError> {
        let mut s = self.state();
        if s.refuse_remove.contains(reference) {
            return Err(EngineError::Failed(format!(
                "conflict: unable to remove {reference}: image is being used by a container"
            )));
        }
        let id = s
            .resolve(reference)
            .ok_or_else(|| no_such("image", reference))?;
        let img = s.images.get_mut(&id).expect("resolved");
        if img.tags.remove(reference) && !img.tags.is_empty() {
            return Ok(());
        }
        if !force && img.tags.len() > 1 {
            return Err(EngineError::Failed(format!(
                "conflict: unable to delete {reference}: image is referenced in multiple repositories"
            )));
        }
        s.images.remove(&id);
        Ok(())
    }

    async fn commit(&self, req: CommitRequest) -> Result<String, EngineError> {
        let mut s = self.state();
        let data = s
            .containers
            .get(&req.container)
            .cloned()
            .ok_or_else(|| no_such("container", &req.container))?;
        let id = sha256_id(&[data.as_slice(), &s.commits.len().to_be_bytes()].concat());
        s.put(&id, None, data);
        s.put(&id, Some(&format!("{}:{}", req.repo, req.tag)), Vec::new());
        s.commits.push(req);
        Ok(id)
    }

    fn export(&self, image: &str) -> ExportStream {
        let s = self.state();
        let Some(id) = s.resolve(image) else {
            let e = no_such("image", image);
            return Box::pin(futures_util::stream::once(async { Err(e) }));
        };
        let mut items: Vec<Result<Bytes, EngineError>> = s.images[&id]
            .data
            .chunks(10_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        if let Some(e) = &s.fail_export {
            items.truncate(1);
            items.push(Err(EngineError::Failed(e.clone())));
        }
        Box::pin(futures_util::stream::iter(items))
    }
}

enum Reply {
    Json(Value),
    Data(Vec<u8>),
    Empty,
}

#[derive(Debug, Default)]
pub(super) struct GlanceState {
    /// Records by id (the JSON Glance returns).
    pub records: BTreeMap<String, Map<String, Value>>,
    pub data: HashMap<String, Vec<u8>>,
    /// `METHOD path` of each request, in order.
    pub requests: Vec<String>,
    /// How long a data download waits before it answers.
    pub file_delay: Duration,
}

impl GlanceState {
    /// Add an active `docker` image holding `data`, with its size and hashes.
    pub fn add_image(&mut self, id: &str, data: &[u8]) -> &mut Map<String, Value> {
        self.data.insert(id.to_string(), data.to_vec());
        let rec = self.add_record(id, "active");
        rec.insert("container_format".into(), json!("docker"));
        rec.insert("disk_format".into(), json!("raw"));
        rec.insert("size".into(), json!(data.len()));
        rec.insert("checksum".into(), json!(digest("md5", data)));
        rec.insert("os_hash_algo".into(), json!("sha512"));
        rec.insert("os_hash_value".into(), json!(digest("sha512", data)));
        rec
    }

    /// Add a record without data.
    pub fn add_record(&mut self, id: &str, status: &str) -> &mut Map<String, Value> {
        let mut rec = Map::new();
        rec.insert("id".into(), json!(id));
        rec.insert("status".into(), json!(status));
        rec.insert("created_at".into(), json!("2024-01-01T00:00:00Z"));
        self.records.entry(id.to_string()).or_insert(rec)
    }

    /// How many requests were `METHOD path`.
    pub fn count(&self, request: &str) -> usize {
        self.requests.iter().filter(|r| *r == request).count()
    }

    fn handle(&mut self, method: &str, target: &str, body: Vec<u8>) -> (u16, Reply) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        self.requests.push(format!("{method} {path}"));
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let json = |v: Value| (200, Reply::Json(v));
        let none = |status: u16| (status, Reply::Empty);
        match (method, parts.as_slice()) {
            ("GET", ["v2", "images", id, "file"]) => match self.data.get(*id) {
                Some(d) => (200, Reply::Data(d.clone())),
                None if self.records.contains_key(*id) => none(204),
                None => none(404),
            },
            ("GET", ["v2", "images"]) => {
                let filters: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                    .filter(|(k, _)| !matches!(k.as_ref(), "sort" | "limit" | "marker"))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let mut images: Vec<&Map<String, Value>> = self
                    .records
                    .values()
                    .filter(|r| {
                        filters
                            .iter()
                            .all(|(k, v)| r.get(k).and_then(Value::as_str) == Some(v))
                    })
                    .collect();
                images.sort_by(|a, b| {
                    let key = |r: &Map<String, Value>| {
                        let s = |k| r.get(k).and_then(Value::as_str).map(str::to_string);
                        (s("created_at"), s("id"))
                    };
                    key(b).cmp(&key(a))
                });
                json(json!({ "images": images }))
            }
            ("GET", ["v2", "images", id]) => match self.records.get(*id) {
                Some(r) => json(Value::Object(r.clone())),
                None => none(404),
            },
            ("PATCH", ["v2", "images", id]) => {
                let Some(rec) = self.records.get_mut(*id) else {
                    return none(404);
                };
                let ops: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
                for op in ops {
                    let key = op["path"].as_str().unwrap_or("/").trim_start_matches('/');
                    match op["op"].as_str() {
                        Some("add" | "replace") => {
                            rec.insert(key.to_string(), op["value"].clone());
                        }
                        Some("remove") => {
                            rec.remove(key);
                        }
                        _ => return none(400),
                    }
                }
                json(Value::Object(rec.clone()))
            }
            ("DELETE", ["v2", "images", id]) => match self.records.remove(*id) {
                Some(_) => {
                    self.data.remove(*id);
                    none(204)
                }
                None => none(404),
            },
            ("PUT", ["v2", "images", id, "file"]) => {
                let Some(rec) = self.records.get_mut(*id) else {
                    return none(404);
                };
                rec.insert("status".into(), json!("active"));
                rec.insert("size".into(), json!(body.len()));
                rec.insert("checksum".into(), json!(digest("md5", &body)));
                self.data.insert(id.to_string(), body);
                none(204)
            }
            _ => none(404),
        }
    }
}

/// A Glance v2 API on 127.0.0.1 (one request per connection).
pub(super) struct GlanceStub {
    pub url: String,
    state: Arc<Mutex<GlanceState>>,
}

impl GlanceStub {
    pub async fn start() -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", l.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(GlanceState::default()));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve(st.clone(), s));
            }
        });
        GlanceStub { url, state }
    }

    pub fn state(&self) -> MutexGuard<'_, GlanceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An image service on `engine` and this Glance; `extra` is more nova.conf.
    pub fn service(&self, engine: Arc<MemoryEngine>, extra: &str) -> ImageService {
        let mut ini = Ini::default();
        ini.merge_text(
            &format!(
                "[glance]\napi_servers = {}\nnum_retries = 0\n{extra}",
                self.url
            ),
            std::path::Path::new("test.conf"),
        )
        .expect("ini");
        ImageService::new(engine, ImageConfig::from_ini(&ini).expect("config")).expect("service")
    }
}

/// A Glance stub, an engine double and an image service on both (`extra` is
/// more nova.conf).
pub(super) async fn stack(extra: &str) -> (GlanceStub, Arc<MemoryEngine>, ImageService) {
    let glance = GlanceStub::start().await;
    let engine = MemoryEngine::new();
    let svc = glance.service(engine.clone(), extra);
    (glance, engine, svc)
}

/// Read a request body: `Content-Length` or chunked; None if it was cut off.
async fn read_body<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    len: usize,
    chunked: bool,
) -> Option<Vec<u8>> {
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.ok()?;
    if !chunked {
        return Some(body);
    }
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.ok()?;
        let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0u8; size + 2];
        r.read_exact(&mut chunk).await.ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

async fn serve(state: Arc<Mutex<GlanceState>>, s: tokio::net::TcpStream) {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut words = line.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or_default().to_string(),
        words.next().unwrap_or_default().to_string(),
    );
    let (mut len, mut chunked) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let h = line.trim().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if h.starts_with("transfer-encoding:") && h.contains("chunked") {
            chunked = true;
        }
    }
    let Some(body) = read_body(&mut r, len, chunked).await else {
        return;
    };
    let (status, reply, delay) = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let (status, reply) = st.handle(&method, &target, body);
        (status, reply, st.file_delay)
    };
    if matches!(reply, Reply::Data(_)) {
        tokio::time::sleep(delay).await;
    }
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let (ctype, body) = match reply {
        Reply::Json(v) => ("application/json", v.to_string().into_bytes()),
        Reply::Data(d) => ("application/octet-stream", d),
        Reply::Empty => ("text/plain", Vec::new()),
    };
    let mut s = r.into_inner();
    let head = if status == 204 {
        format!("HTTP/1.1 204 {reason}\r\nConnection: close\r\n\r\n")
    } else {
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
    };
    let _ = s.write_all(head.as_bytes()).await;
    if status != 204 {
        let _ = s.write_all(&body).await;
    }
    let _ = s.shutdown().await;
}
