//! A Glance v2 client on reqwest: image records, streamed data down and up, JSON
//! patch, delete and filtered listing, with fail-over across `[glance] api_servers`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use serde_json::{json, Map, Value};

use crate::clients::keystone::{AuthOptions, SendError, Session, TokenSource};
use crate::config::{ConfigError, Ini};
use crate::context::RequestContext;

use super::ImageError;

/// The `[glance]` options we read.
#[derive(Debug, Clone)]
pub struct GlanceConfig {
    /// `api_servers`: tried in turn (starting with the one that last worked) on
    /// connection errors and 5xx answers. Empty: the keystone endpoint
    /// (`endpoint_override` or the catalog).
    pub api_servers: Vec<String>,
    /// `num_retries`: attempts after the first (at least one per server).
    pub num_retries: usize,
    /// `max_image_size`, in bytes; 0 = unlimited.
    pub max_image_size: u64,
    /// Per-request timeout of metadata calls, and the idle read timeout of data
    /// transfers (`timeout`, default 300 s).
    pub timeout: Duration,
    pub auth: AuthOptions,
    /// `[service_user]` (with `send_service_user_token`): its token goes
    /// beside the user's, as Nova's Glance client sends it.
    pub service_user: Option<std::sync::Arc<Session>>,
}

impl GlanceConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let g = ini.group("glance");
        let api_servers = g
            .list("api_servers", &[])?
            .into_iter()
            .map(|s| normalize_endpoint(&s))
            .collect();
        let max = g.int("max_image_size", 0)?;
        if max < 0 {
            return Err(g.invalid("max_image_size", "must not be negative"));
        }
        let retries = g.int("num_retries", 3)?;
        if retries < 0 {
            return Err(g.invalid("num_retries", "must not be negative"));
        }
        let timeout = g.secs("timeout", 300)?;
        Ok(GlanceConfig {
            api_servers,
            num_retries: retries as usize,
            max_image_size: max as u64,
            timeout: if timeout.is_zero() {
                Duration::from_secs(300)
            } else {
                timeout
            },
            auth: AuthOptions::from_group(ini, "glance")?,
            service_user: None,
        })
    }
}

/// `host:port` gets `http://`; a trailing `/` or `/v2` is dropped (we add `/v2/...`).
pub fn normalize_endpoint(s: &str) -> String {
    let s = s.trim();
    let mut s = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    while s.ends_with('/') {
        s.pop();
    }
    for suffix in ["/v2", "/v2.0", "/v1"] {
        if let Some(stripped) = s.strip_suffix(suffix) {
            s = stripped.to_string();
        }
    }
    s
}

/// A Glance image record (the fields we use; the rest is in `extra`).
#[derive(Debug, Clone, Default)]
pub struct ImageRecord {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub container_format: Option<String>,
    pub disk_format: Option<String>,
    pub size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub created_at: Option<String>,
    /// Every key of the record as Glance sent it (custom properties included).
    pub raw: Map<String, Value>,
}

impl ImageRecord {
    pub fn from_json(v: Value) -> Result<Self, String> {
        let Value::Object(raw) = v else {
            return Err("image record is not a JSON object".into());
        };
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(ImageRecord {
            id: s("id").ok_or("image record without id")?,
            name: s("name"),
            status: s("status").unwrap_or_default(),
            container_format: s("container_format"),
            disk_format: s("disk_format"),
            size: raw.get("size").and_then(Value::as_u64),
            checksum: s("checksum"),
            os_hash_algo: s("os_hash_algo"),
            os_hash_value: s("os_hash_value"),
            created_at: s("created_at"),
            raw,
        })
    }

    /// A custom property (a top-level key in v2).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.raw.get(key).and_then(Value::as_str)
    }
}

/// One JSON-patch operation of `PATCH /v2/images/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    Add(String, Value),
    Replace(String, Value),
    Remove(String),
}

impl PatchOp {
    fn to_json(&self) -> Value {
        match self {
            PatchOp::Add(k, v) => json!({"op": "add", "path": format!("/{k}"), "value": v}),
            PatchOp::Replace(k, v) => {
                json!({"op": "replace", "path": format!("/{k}"), "value": v})
            }
            PatchOp::Remove(k) => json!({"op": "remove", "path": format!("/{k}")}),
        }
    }
}

/// Patch operations that make `record` carry `props`: `replace` for keys it has,
/// `add` for new ones.
pub fn patch_ops_for(record: &ImageRecord, props: &Map<String, Value>) -> Vec<PatchOp> {
    props
        .iter()
        .filter(|(k, v)| record.raw.get(*k) != Some(v))
        .map(|(k, v)| {
            if record.raw.contains_key(k) {
                PatchOp::Replace(k.clone(), v.clone())
            } else {
                PatchOp::Add(k.clone(), v.clone())
            }
        })
        .collect()
}

/// Image ids go into URL paths: allow what Glance generates (UUIDs) and similar.
pub fn validate_image_id(id: &str) -> Result<(), ImageError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ImageError::NotFound {
            image_id: id.chars().take(80).collect(),
        });
    }
    Ok(())
}

/// The Glance v2 client.
#[derive(Clone)]
pub struct GlanceClient {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: GlanceConfig,
    session: Session,
    /// Index of the api_server that answered last.
    next: AtomicUsize,
}

enum Body {
    Empty,
    Json(&'static str, Value),
}

impl GlanceClient {
    pub fn new(cfg: GlanceConfig) -> Result<Self, ImageError> {
        let http = Session::client_builder(&cfg.auth)
            .map_err(|e| ImageError::Config(e.to_string()))?
            .read_timeout(cfg.timeout)
            .build()
            .map_err(|e| ImageError::Config(format!("HTTP client: {e}")))?;
        let session = Session::with_client(cfg.auth.clone(), http)
            .with_service_user(cfg.service_user.clone());
        Ok(GlanceClient {
            inner: Arc::new(Inner {
                cfg,
                session,
                next: AtomicUsize::new(0),
            }),
        })
    }

    pub fn config(&self) -> &GlanceConfig {
        &self.inner.cfg
    }

    async fn servers(&self, ctx: &RequestContext) -> Result<Vec<String>, ImageError> {
        if !self.inner.cfg.api_servers.is_empty() {
            return Ok(self.inner.cfg.api_servers.clone());
        }
        let ep =
            self.inner
                .session
                .endpoint(Some(ctx))
                .await
                .map_err(|e| ImageError::Unavailable {
                    servers: "keystone catalog".into(),
                    reason: e.to_string(),
                })?;
        Ok(vec![normalize_endpoint(&ep)])
    }

    /// Send to each server in turn until one answers with something else than a
    /// connection error or a 5xx. `build` gets the client, the base URL and the token.
    async fn send_failover<F>(
        &self,
        ctx: &RequestContext,
        build: F,
    ) -> Result<reqwest::Response, ImageError>
    where
        F: Fn(&reqwest::Client, &str, Option<&str>) -> reqwest::RequestBuilder,
    {
        let servers = self.servers(ctx).await?;
        let n = servers.len();
        // as Nova's glance client: 1 + num_retries attempts, the servers in
        // turn; a second round waits a second before each try (a Glance
        // restarting comes back meanwhile)
        let attempts = n.max(1 + self.inner.cfg.num_retries);
        let start = self.inner.next.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..attempts {
            if i >= n {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            let idx = (start + i) % n;
            let base = &servers[idx];
            let r = self
                .inner
                .session
                .send(Some(ctx), TokenSource::UserIfPresent, |c, tok| {
                    build(c, base, tok.map(|t| t.expose()))
                })
                .await;
            match r {
                Ok(resp) if resp.status().is_server_error() => {
                    last = format!("{base}: HTTP {}", resp.status());
                    tracing::warn!(server = %base, status = %resp.status(), "glance server error, trying the next server");
                }
                Ok(resp) => {
                    self.inner.next.store(idx, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(SendError::Auth(e)) => {
                    return Err(ImageError::Unauthorized(e.to_string()));
                }
                Err(SendError::Http(e)) => {
                    last = format!("{base}: {}", describe_reqwest(&e));
                    tracing::warn!(server = %base, error = %last, "glance unreachable, trying the next server");
                }
            }
        }
        Err(ImageError::Unavailable {
            servers: servers.join(", "),
            reason: last,
        })
    }

    async fn json_call(
        &self,
        ctx: &RequestContext,
        method: reqwest::Method,
        path: &str,
        body: Body,
        image_id: Option<&str>,
    ) -> Result<Option<Value>, ImageError> {
        let timeout = self.inner.cfg.timeout;
        let resp = self
            .send_failover(ctx, |c, base, tok| {
                let mut rb = c
                    .request(method.clone(), format!("{base}{path}"))
                    .timeout(timeout)
                    .header("Accept", "application/json");
                rb = with_headers(rb, ctx, tok);
                match &body {
                    Body::Empty => rb,
                    Body::Json(ct, v) => rb
                        .header("Content-Type", *ct)
                        .body(serde_json::to_vec(v).unwrap_or_default()),
                }
            })
            .await?;
        let resp = check_status(resp, image_id.unwrap_or("")).await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ImageError::Glance(format!("reading the answer: {e}")))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ImageError::Glance(format!("answer is not JSON: {e}")))
    }

    /// `GET /v2/images/{id}`.
    pub async fn get(&self, ctx: &RequestContext, id: &str) -> Result<ImageRecord, ImageError> {
        validate_image_id(id)?;
        let v = self
            .json_call(
                ctx,
                reqwest::Method::GET,
                &format!("/v2/images/{id}"),
                Body::Empty,
                Some(id),
            )
            .await?
            .ok_or_else(|| ImageError::Glance("empty image record".into()))?;
        ImageRecord::from_json(v).map_err(ImageError::Glance)
    }

    /// `POST /v2/images` with the given record fields.
    pub async fn create(
        &self,
        ctx: &RequestContext,
        fields: Map<String, Value>,
    ) -> Result<ImageRecord, ImageError> {
        let v = self
            .json_call(
                ctx,
                reqwest::Method::POST,
                "/v2/images",
                Body::Json("application/json", Value::Object(fields)),
                None,
            )
            .await?
            .ok_or_else(|| ImageError::Glance("empty image record".into()))?;
        ImageRecord::from_json(v).map_err(ImageError::Glance)
    }

    /// `PATCH /v2/images/{id}` (openstack-images-v2.1-json-patch).
    pub async fn patch(
        &self,
        ctx: &RequestContext,
        id: &str,
        ops: &[PatchOp],
    ) -> Result<ImageRecord, ImageError> {
        validate_image_id(id)?;
        let body = Value::Array(ops.iter().map(PatchOp::to_json).collect());
        let v = self
            .json_call(
                ctx,
                reqwest::Method::PATCH,
                &format!("/v2/images/{id}"),
                Body::Json("application/openstack-images-v2.1-json-patch", body),
                Some(id),
            )
            .await?
            .ok_or_else(|| ImageError::Glance("empty image record".into()))?;
        ImageRecord::from_json(v).map_err(ImageError::Glance)
    }

    /// `DELETE /v2/images/{id}`.
    pub async fn delete(&self, ctx: &RequestContext, id: &str) -> Result<(), ImageError> {
        validate_image_id(id)?;
        self.json_call(
            ctx,
            reqwest::Method::DELETE,
            &format!("/v2/images/{id}"),
            Body::Empty,
            Some(id),
        )
        .await?;
        Ok(())
    }

    /// `GET /v2/images` with filters (`key=value`, custom properties allowed),
    /// sorted by `sort` (e.g. `created_at:desc`), following `next` links.
    pub async fn list(
        &self,
        ctx: &RequestContext,
        filters: &[(&str, &str)],
        sort: Option<&str>,
    ) -> Result<Vec<ImageRecord>, ImageError> {
        // the serializer is not Send: build the query before any await
        let query = {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in filters {
                q.append_pair(k, v);
            }
            if let Some(s) = sort {
                q.append_pair("sort", s);
            }
            q.append_pair("limit", "100");
            q.finish()
        };
        let mut path = format!("/v2/images?{query}");
        let mut out = Vec::new();
        for _ in 0..1000 {
            let v = self
                .json_call(ctx, reqwest::Method::GET, &path, Body::Empty, None)
                .await?
                .unwrap_or(Value::Null);
            if let Some(images) = v.get("images").and_then(Value::as_array) {
                for i in images {
                    out.push(ImageRecord::from_json(i.clone()).map_err(ImageError::Glance)?);
                }
            }
            match v.get("next").and_then(Value::as_str) {
                Some(next) if next.starts_with("/v2/") => path = next.to_string(),
                _ => break,
            }
        }
        Ok(out)
    }

    /// `GET /v2/images/{id}/file`: the data as a stream, and its length if Glance
    /// said it.
    pub async fn download(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<
        (
            Option<u64>,
            impl Stream<Item = Result<Bytes, ImageError>> + Send + 'static,
        ),
        ImageError,
    > {
        validate_image_id(id)?;
        let resp = self
            .send_failover(ctx, |c, base, tok| {
                with_headers(c.get(format!("{base}/v2/images/{id}/file")), ctx, tok)
            })
            .await?;
        let resp = check_status(resp, id).await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Err(ImageError::Unacceptable {
                image_id: id.to_string(),
                reason: "the image has no data".into(),
            });
        }
        let len = resp.content_length();
        let image_id = id.to_string();
        let s = resp.bytes_stream().map_err(move |e| ImageError::Download {
            image_id: image_id.clone(),
            reason: describe_reqwest(&e),
        });
        Ok((len, s))
    }

    /// `PUT /v2/images/{id}/file`: a chunked streaming upload of `data`.
    /// A stream error aborts the upload (Glance sees a broken chunked body).
    pub async fn upload<S>(&self, ctx: &RequestContext, id: &str, data: S) -> Result<(), ImageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        validate_image_id(id)?;
        // The body cannot be sent twice: make sure of a working server and a fresh
        // token with a cheap call first, then send once.
        self.get(ctx, id).await?;
        let servers = self.servers(ctx).await?;
        let base = servers
            .get(self.inner.next.load(Ordering::Relaxed) % servers.len().max(1))
            .cloned()
            .ok_or_else(|| ImageError::Config("no glance server".into()))?;
        let tok = self
            .inner
            .session
            .token(Some(ctx), TokenSource::UserIfPresent)
            .await
            .map_err(|e| ImageError::Unauthorized(e.to_string()))?;
        let rb = self
            .inner
            .session
            .http()
            .put(format!("{base}/v2/images/{id}/file"))
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(data));
        let rb = with_headers(rb, ctx, tok.as_ref().map(|t| t.expose()));
        let resp = rb.send().await.map_err(|e| ImageError::Upload {
            image_id: id.to_string(),
            reason: describe_reqwest(&e),
        })?;
        check_status(resp, id).await?;
        Ok(())
    }
}

fn with_headers(
    mut rb: reqwest::RequestBuilder,
    ctx: &RequestContext,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    if let Some(t) = token {
        rb = rb.header("X-Auth-Token", t);
    }
    if let Some(r) = &ctx.global_request_id {
        rb = rb.header("X-OpenStack-Request-ID", r);
    } else if let Some(r) = &ctx.request_id {
        rb = rb.header("X-OpenStack-Request-ID", r);
    }
    rb
}

/// The chain of causes of a reqwest error (its Display alone says little).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        format!("timed out ({e})")
    } else if e.is_connect() {
        format!("cannot connect ({e})")
    } else {
        e.to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

async fn check_status(
    resp: reqwest::Response,
    image_id: &str,
) -> Result<reqwest::Response, ImageError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    let image_id = image_id.to_string();
    Err(match status.as_u16() {
        404 => ImageError::NotFound { image_id },
        401 => ImageError::Unauthorized(body),
        403 => ImageError::NotAuthorized { image_id },
        400 => ImageError::BadRequest {
            image_id,
            response: body,
        },
        409 => ImageError::Conflict {
            image_id,
            reason: body,
        },
        413 => ImageError::QuotaExceeded { image_id },
        _ => ImageError::Glance(format!("HTTP {status}: {body}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(normalize_endpoint("glance:9292"), "http://glance:9292");
        assert_eq!(normalize_endpoint("https://g/image/v2/"), "https://g/image");
        assert_eq!(normalize_endpoint("http://g:9292/"), "http://g:9292");
    }

    #[test]
    fn config_reads_servers_and_size() {
        let mut i = Ini::default();
        i.merge_text(
            "[glance]\napi_servers = g1:9292, https://g2/\nmax_image_size = 1048576\n",
            Path::new("nova.conf"),
        )
        .unwrap();
        let c = GlanceConfig::from_ini(&i).unwrap();
        assert_eq!(c.api_servers, vec!["http://g1:9292", "https://g2"]);
        assert_eq!(c.max_image_size, 1048576);
        assert_eq!(c.num_retries, 3);
    }

    #[test]
    fn patch_ops_add_or_replace() {
        let rec = ImageRecord::from_json(json!({"id": "x", "status": "queued",
            "container_format": null, "image_type": "snapshot"}))
        .unwrap();
        let mut props = Map::new();
        props.insert("container_format".into(), json!("docker"));
        props.insert("image_location".into(), json!("snapshot"));
        props.insert("image_type".into(), json!("snapshot"));
        let ops = patch_ops_for(&rec, &props);
        assert_eq!(
            ops,
            vec![
                PatchOp::Replace("container_format".into(), json!("docker")),
                PatchOp::Add("image_location".into(), json!("snapshot")),
            ]
        );
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_image_id("6b2c-11aa_x").is_ok());
        assert!(validate_image_id("../etc").is_err());
        assert!(validate_image_id("").is_err());
    }
}
