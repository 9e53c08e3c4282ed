//! The registry's HTTP API v2 as a pull needs it: manifests by tag or digest,
//! blobs by digest, behind the registry's `Basic` or `Bearer` challenge. TLS
//! through the daemon's one stack (rustls), with the operator's CAs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use crate::clients::keystone::Secret;

use super::auth::{parse_auth_file, parse_challenge, Challenge, Credentials};
use super::manifest::{self, Manifest};
use super::{Reference, RegistryConfig, RegistryError};

/// The largest manifest or config blob read into memory.
const MAX_DOCUMENT: u64 = 8 * 1024 * 1024;

/// A client of the registries this host pulls from. Cheap to share.
pub struct RegistryClient {
    http: reqwest::Client,
    cfg: RegistryConfig,
    creds: HashMap<String, Credentials>,
    /// The Authorization that last worked, per `registry/repository`.
    auth: Mutex<HashMap<String, Arc<Secret>>>,
}

/// An image resolved to what a load needs: its config and its layers.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The digest of the image manifest (for a list: of this platform's entry).
    pub manifest_digest: String,
    pub config_digest: String,
    pub config: Bytes,
    pub layers: Vec<manifest::Descriptor>,
}

impl RegistryClient {
    pub fn new(cfg: RegistryConfig) -> Result<Self, RegistryError> {
        let creds = match &cfg.auth_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    RegistryError::Config(format!("auth_file {}: {e}", p.display()))
                })?;
                parse_auth_file(&text)
                    .map_err(|e| RegistryError::Config(format!("auth_file {}: {e}", p.display())))?
            }
            None => HashMap::new(),
        };
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(cfg.read_timeout)
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(p) = &cfg.ca_file {
            let pem = std::fs::read(p)
                .map_err(|e| RegistryError::Config(format!("ca_file {}: {e}", p.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| RegistryError::Config(format!("ca_file {}: {e}", p.display())))?;
            if certs.is_empty() {
                return Err(RegistryError::Config(format!(
                    "ca_file {}: no certificate in it",
                    p.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| RegistryError::Config(format!("HTTP client: {e}")))?;
        Ok(RegistryClient {
            http,
            cfg,
            creds,
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// Refuse a registry the configuration does not allow.
    pub(super) fn check_allowed(&self, r: &Reference) -> Result<(), RegistryError> {
        if self.cfg.allowed_registries.is_empty()
            || self.cfg.allowed_registries.contains(&r.registry)
        {
            Ok(())
        } else {
            Err(RegistryError::NotAllowed {
                registry: r.registry.clone(),
            })
        }
    }

    /// `https://<registry>/v2` (`http` for the registries listed insecure).
    pub(super) fn base(&self, r: &Reference) -> String {
        let scheme = if self.cfg.insecure_registries.contains(&r.registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2", r.api_host())
    }

    pub(super) fn url(&self, r: &Reference, tail: &str) -> String {
        format!("{}/{}/{tail}", self.base(r), r.repository)
    }

    /// GET `tail` of the repository, answering one challenge.
    pub(super) async fn get(
        &self,
        r: &Reference,
        tail: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let scope = format!("repository:{}:pull", r.repository);
        self.get_url(r, &self.url(r, tail), &scope, accept).await
    }

    /// GET `url` of `r`'s registry, answering one challenge; `scope` is what a
    /// token is asked for (the Authorization that works is kept per scope).
    async fn get_url(
        &self,
        r: &Reference,
        url: &str,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        self.send(r, scope, || {
            let req = self.http.get(url);
            match accept {
                Some(a) => req.header(ACCEPT, a),
                None => req,
            }
        })
        .await
    }

    /// Send the request `build` makes (again after answering a challenge: its
    /// body must be one that can be made twice) with the Authorization that last
    /// worked for `scope`, answering one `Basic` or `Bearer` challenge.
    pub(super) async fn send(
        &self,
        r: &Reference,
        scope: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let key = format!("{}/{scope}", r.registry);
        let mut answered = false;
        loop {
            let req = self.with_authorization(build(), r, scope);
            let resp = req.send().await.map_err(|e| unreachable(r, &e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if answered {
                return Err(self.refused(r));
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge)
                .ok_or_else(|| RegistryError::Protocol {
                    reference: r.to_string(),
                    reason: "401 without a Basic or Bearer challenge".into(),
                })?;
            let auth = match challenge {
                Challenge::Basic => Secret::new(
                    self.creds
                        .get(&r.registry)
                        .ok_or_else(|| self.refused(r))?
                        .basic_header(),
                ),
                Challenge::Bearer {
                    realm,
                    service,
                    scope: asked,
                } => {
                    self.token(
                        r,
                        &realm,
                        service,
                        Some(asked.unwrap_or_else(|| scope.to_string())),
                    )
                    .await?
                }
            };
            self.auth
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), Arc::new(auth));
            answered = true;
        }
    }

    /// The Authorization that last worked for `scope` at `r`'s registry.
    fn authorization(&self, r: &Reference, scope: &str) -> Option<Arc<Secret>> {
        self.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{}/{scope}", r.registry))
            .cloned()
    }

    /// `req` with that Authorization (for a request whose streamed body cannot
    /// be sent twice, so cannot answer a challenge).
    pub(super) fn with_authorization(
        &self,
        req: reqwest::RequestBuilder,
        r: &Reference,
        scope: &str,
    ) -> reqwest::RequestBuilder {
        match self.authorization(r, scope) {
            Some(a) => req.header(AUTHORIZATION, a.expose()),
            None => req,
        }
    }

    /// The HTTP client (for requests [`RegistryClient::send`] cannot repeat).
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The repositories of `registry` (its `_catalog`).
    pub async fn catalog(&self, registry: &str) -> Result<Vec<String>, RegistryError> {
        let r = Reference {
            registry: registry.to_string(),
            repository: "_catalog".into(),
            tag: None,
            digest: None,
        };
        let url = format!("{}/_catalog?n=10000", self.base(&r));
        let resp = self.get_url(&r, &url, "registry:catalog:*", None).await?;
        if !resp.status().is_success() {
            return Err(http_error(&r, "catalog", resp.status()));
        }
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let c: Catalog = resp.json().await.map_err(|e| RegistryError::Protocol {
            reference: registry.to_string(),
            reason: format!("its catalog is not JSON of the v2 API: {e}"),
        })?;
        Ok(c.repositories.unwrap_or_default())
    }

    /// The tags of the repository of `r`.
    pub async fn tags(&self, r: &Reference) -> Result<Vec<String>, RegistryError> {
        let resp = self.get(r, "tags/list?n=10000", None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !resp.status().is_success() {
            return Err(http_error(r, "tag list", resp.status()));
        }
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let t: Tags = resp.json().await.map_err(|e| RegistryError::Protocol {
            reference: r.to_string(),
            reason: format!("its tag list is not JSON of the v2 API: {e}"),
        })?;
        Ok(t.tags.unwrap_or_default())
    }

    /// The digest of the manifest `r` names now (a tag's current manifest).
    pub async fn manifest_digest(&self, r: &Reference) -> Result<String, RegistryError> {
        let (body, _) = self
            .document(
                r,
                &format!("manifests/{}", r.manifest_ref()),
                Some(manifest::ACCEPT),
                "such manifest",
            )
            .await?;
        Ok(sha256_of(&body))
    }

    pub(super) fn refused(&self, r: &Reference) -> RegistryError {
        if self.creds.contains_key(&r.registry) {
            RegistryError::BadCredentials {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
            }
        } else {
            RegistryError::NoCredentials {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
            }
        }
    }

    /// A bearer token from the registry's token service.
    async fn token(
        &self,
        r: &Reference,
        realm: &str,
        service: Option<String>,
        scope: Option<String>,
    ) -> Result<Secret, RegistryError> {
        let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", r.repository));
        // (the scope of a challenge is the registry's; ours is only a default)
        let mut q: Vec<(&str, String)> = vec![("scope", scope)];
        if let Some(s) = service {
            q.push(("service", s));
        }
        let mut req = self.http.get(realm).query(&q);
        if let Some(c) = self.creds.get(&r.registry) {
            req = req.header(AUTHORIZATION, c.basic_header());
        }
        let resp = req.send().await.map_err(|e| unreachable(r, &e))?;
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(self.refused(r));
        }
        if !resp.status().is_success() {
            return Err(RegistryError::Protocol {
                reference: r.to_string(),
                reason: format!("its token service answered {}", resp.status()),
            });
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = resp.json().await.map_err(|e| RegistryError::Protocol {
            reference: r.to_string(),
            reason: format!("its token service's answer is not a token: {e}"),
        })?;
        let t = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                reference: r.to_string(),
                reason: "its token service sent no token".into(),
            })?;
        Ok(Secret::new(format!("Bearer {t}")))
    }

    /// A small document (manifest, config) by `tail`, with its content type.
    async fn document(
        &self,
        r: &Reference,
        tail: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<(Bytes, String), RegistryError> {
        let resp = self.get(r, tail, accept).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            let body = resp.text().await.unwrap_or_default();
            return Err(RegistryError::NotFound {
                reference: r.to_string(),
                reason: format!("the registry has no {what} ({})", error_code(&body)),
            });
        }
        if !status.is_success() {
            return Err(http_error(r, what, status));
        }
        let len = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if len.is_some_and(|l| l > MAX_DOCUMENT) {
            return Err(RegistryError::Unsupported {
                reference: r.to_string(),
                reason: format!("its {what} is larger than {MAX_DOCUMENT} bytes"),
            });
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.map_err(|e| unreachable(r, &e))?;
        if body.len() as u64 > MAX_DOCUMENT {
            return Err(RegistryError::Unsupported {
                reference: r.to_string(),
                reason: format!("its {what} is larger than {MAX_DOCUMENT} bytes"),
            });
        }
        Ok((body, ct))
    }

    /// Resolve `r` to its config and layers (for a list: this host's platform),
    /// every document checked against the digest it was fetched by.
    pub async fn resolve(&self, r: &Reference) -> Result<Resolved, RegistryError> {
        self.check_allowed(r)?;
        let what = r.to_string();
        let by = r.manifest_ref().to_string();
        let (body, ct) = self
            .document(
                r,
                &format!("manifests/{by}"),
                Some(manifest::ACCEPT),
                "such manifest",
            )
            .await?;
        let mut digest = sha256_of(&body);
        if r.digest.is_some() && digest != by {
            return Err(RegistryError::DigestMismatch {
                reference: r.name(),
                what: "its manifest".into(),
                expected: by,
                actual: digest,
            });
        }
        let mut m = Manifest::decode(&body, &ct, &what)?;
        if let Manifest::List(list) = &m {
            let (os, arch) = manifest::host_platform();
            let entry = manifest::choose(list, os, arch, &what)?.digest.clone();
            let (body, ct) = self
                .document(
                    r,
                    &format!("manifests/{entry}"),
                    Some(manifest::ACCEPT),
                    "manifest for this platform",
                )
                .await?;
            digest = sha256_of(&body);
            if digest != entry {
                return Err(RegistryError::DigestMismatch {
                    reference: r.name(),
                    what: format!("its {os}/{arch} manifest"),
                    expected: entry,
                    actual: digest,
                });
            }
            m = Manifest::decode(&body, &ct, &what)?;
        }
        let Manifest::Image { config, layers } = m else {
            return Err(RegistryError::Unsupported {
                reference: what,
                reason: "its list names another list".into(),
            });
        };
        let (cfg, _) = self
            .document(r, &format!("blobs/{}", config.digest), None, "config blob")
            .await?;
        let actual = sha256_of(&cfg);
        if actual != config.digest {
            return Err(RegistryError::DigestMismatch {
                reference: r.name(),
                what: "its config".into(),
                expected: config.digest,
                actual,
            });
        }
        Ok(Resolved {
            manifest_digest: digest,
            config_digest: config.digest,
            config: cfg,
            layers,
        })
    }

    /// The response carrying the blob `digest` (its body not yet read).
    pub async fn blob(
        &self,
        r: &Reference,
        digest: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let resp = self.get(r, &format!("blobs/{digest}"), None).await?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                reference: r.to_string(),
                reason: format!("the registry has no blob {digest}"),
            }),
            s => Err(http_error(r, "blob", s)),
        }
    }
}

pub(super) fn sha256_of(b: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
    )
}

pub(super) fn unreachable(r: &Reference, e: &reqwest::Error) -> RegistryError {
    // the error's chain names the cause (DNS, refused, TLS); URLs hold no secret
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        src = s.source();
    }
    RegistryError::Unreachable {
        registry: r.registry.clone(),
        reason,
    }
}

pub(super) fn http_error(r: &Reference, what: &str, status: StatusCode) -> RegistryError {
    if status.is_server_error() {
        RegistryError::Unreachable {
            registry: r.registry.clone(),
            reason: format!("it answered {status} for the {what}"),
        }
    } else {
        RegistryError::Protocol {
            reference: r.to_string(),
            reason: format!("it answered {status} for the {what}"),
        }
    }
}

/// The first error code of a registry's error body (`MANIFEST_UNKNOWN`).
fn error_code(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["errors"][0]["code"]
                .as_str()
                .map(|c| c.to_string())
                .or_else(|| v["errors"][0]["message"].as_str().map(str::to_string))
        })
        .unwrap_or_else(|| "404".into())
}
