//! Keystone authentication the way keystoneauth reads it from a `[group]` of
//! nova.conf (`[glance]`, `[placement]`, `[neutron]`, ...).
//!
//! [`AuthOptions::from_group`] reads the options; [`Session`] turns them into a
//! token (cached until shortly before it expires, re-fetched once on a 401) and an
//! endpoint (`endpoint_override`, the `admin_token` plugin's `endpoint`, or the
//! service catalog by service type, interface and region). Where Nova acts with
//! the caller's token, [`Session`] uses the `auth_token` of the
//! [`RequestContext`] instead of its own.
//!
//! Secrets (password, application credential secret, tokens) are held in
//! [`Secret`], whose `Debug` prints `***`; nothing here logs them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::config::{ConfigError, Ini};
use crate::context::RequestContext;

/// Refresh a cached token this long before it expires.
/// (At most: half the token's lifetime for short-lived tokens, or every call
/// would fetch a new one.)
const EXPIRY_MARGIN_SECS: i64 = 120;

#[derive(Debug, Error, Clone)]
pub enum KeystoneError {
    #[error("keystone auth options of [{group}]: {reason}")]
    Options { group: String, reason: String },
    #[error("keystone at {url} refused the credentials (HTTP {status})")]
    Unauthorized { url: String, status: u16 },
    #[error("keystone at {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("no {service_type} endpoint in the service catalog for interfaces {interfaces:?} region {region:?}")]
    EndpointNotFound {
        service_type: String,
        interfaces: Vec<String>,
        region: Option<String>,
    },
}

/// A string that must not reach a log line.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// keystoneauth's `auth_type` plugins that we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// `password` (also `v3password`).
    Password,
    /// `v3applicationcredential`.
    ApplicationCredential,
    /// `admin_token`: a fixed token and a fixed endpoint.
    AdminToken,
    /// `none` (or unset): no token at all.
    None,
}

/// The keystoneauth options of one config group.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    pub group: String,
    pub auth_type: AuthType,
    pub auth_url: Option<String>,
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub password: Option<Secret>,
    pub user_domain_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub application_credential_id: Option<String>,
    pub application_credential_name: Option<String>,
    pub application_credential_secret: Option<Secret>,
    /// `admin_token`'s token.
    pub token: Option<Secret>,
    /// `admin_token`'s endpoint.
    pub endpoint: Option<String>,
    pub region_name: Option<String>,
    pub valid_interfaces: Vec<String>,
    pub endpoint_override: Option<String>,
    pub cafile: Option<String>,
    pub insecure: bool,
    pub service_type: String,
    pub timeout: Option<Duration>,
}

/// The service type a group's client looks for in the catalog by default.
pub fn default_service_type(group: &str) -> &str {
    match group {
        "glance" => "image",
        "neutron" => "network",
        "cinder" => "volumev3",
        "keystone" => "identity",
        "barbican" | "key_manager" => "key-manager",
        "ironic" => "baremetal",
        other => other,
    }
}

impl AuthOptions {
    /// Read `[group]`: `auth_type` password | v3password | v3applicationcredential |
    /// admin_token | none, with that plugin's options and the adapter options
    /// (`region_name`, `valid_interfaces`, `endpoint_override`, `service_type`,
    /// `cafile`, `insecure`, `timeout`).
    pub fn from_group(ini: &Ini, group: &str) -> Result<Self, ConfigError> {
        let g = ini.group(group);
        let auth_type = match g.opt_nonempty("auth_type")?.as_deref() {
            None | Some("none") | Some("noauth") => AuthType::None,
            Some("password") | Some("v3password") => AuthType::Password,
            Some("v3applicationcredential") | Some("applicationcredential") => {
                AuthType::ApplicationCredential
            }
            Some("admin_token") | Some("token_endpoint") => AuthType::AdminToken,
            Some(other) => {
                return Err(g.invalid(
                    "auth_type",
                    format!(
                        "{other:?} is not supported (password, v3applicationcredential, admin_token, none)"
                    ),
                ))
            }
        };
        let s = |k: &str| g.opt_nonempty(k);
        let interfaces = g
            .list("valid_interfaces", &["internal", "public"])?
            .into_iter()
            .map(|i| i.trim_end_matches("URL").to_ascii_lowercase())
            .collect();
        let timeout = match g.opt_int("timeout")? {
            Some(t) if t > 0 => Some(Duration::from_secs(t as u64)),
            _ => None,
        };
        let opts = AuthOptions {
            group: group.to_string(),
            auth_type,
            auth_url: s("auth_url")?,
            username: s("username")?,
            user_id: s("user_id")?,
            password: s("password")?.map(Secret),
            user_domain_name: s("user_domain_name")?,
            user_domain_id: s("user_domain_id")?,
            project_name: s("project_name")?,
            project_id: s("project_id")?,
            project_domain_name: s("project_domain_name")?,
            project_domain_id: s("project_domain_id")?,
            application_credential_id: s("application_credential_id")?,
            application_credential_name: s("application_credential_name")?,
            application_credential_secret: s("application_credential_secret")?.map(Secret),
            token: s("token")?.map(Secret),
            endpoint: s("endpoint")?,
            region_name: s("region_name")?,
            valid_interfaces: interfaces,
            endpoint_override: s("endpoint_override")?,
            cafile: s("cafile")?,
            insecure: g.bool("insecure", false)?,
            service_type: s("service_type")?
                .unwrap_or_else(|| default_service_type(group).to_string()),
            timeout,
        };
        opts.validate()
            .map_err(|reason| g.invalid("auth_type", reason))?;
        Ok(opts)
    }

    fn validate(&self) -> Result<(), String> {
        match self.auth_type {
            AuthType::Password => {
                if self.auth_url.is_none() {
                    return Err("password auth needs auth_url".into());
                }
                if self.username.is_none() && self.user_id.is_none() {
                    return Err("password auth needs username or user_id".into());
                }
                if self.password.is_none() {
                    return Err("password auth needs password".into());
                }
            }
            AuthType::ApplicationCredential => {
                if self.auth_url.is_none() {
                    return Err("application credential auth needs auth_url".into());
                }
                if self.application_credential_secret.is_none()
                    || (self.application_credential_id.is_none()
                        && self.application_credential_name.is_none())
                {
                    return Err("application credential auth needs application_credential_id and application_credential_secret".into());
                }
            }
            AuthType::AdminToken => {
                if self.token.is_none() {
                    return Err("admin_token auth needs token".into());
                }
                if self.endpoint.is_none() && self.endpoint_override.is_none() {
                    return Err("admin_token auth needs endpoint or endpoint_override".into());
                }
            }
            AuthType::None => {}
        }
        Ok(())
    }

    /// The Keystone v3 `POST /v3/auth/tokens` body of a password or application
    /// credential plugin.
    pub fn auth_body(&self) -> Option<Value> {
        match self.auth_type {
            AuthType::Password => {
                let mut user = serde_json::Map::new();
                if let Some(id) = &self.user_id {
                    user.insert("id".into(), json!(id));
                } else if let Some(name) = &self.username {
                    user.insert("name".into(), json!(name));
                    user.insert(
                        "domain".into(),
                        domain(&self.user_domain_id, &self.user_domain_name),
                    );
                }
                user.insert(
                    "password".into(),
                    json!(self.password.as_ref().map(Secret::expose).unwrap_or("")),
                );
                let mut auth = json!({"identity": {"methods": ["password"],
                    "password": {"user": Value::Object(user)}}});
                if let Some(id) = &self.project_id {
                    auth["scope"] = json!({"project": {"id": id}});
                } else if let Some(name) = &self.project_name {
                    auth["scope"] = json!({"project": {"name": name,
                        "domain": domain(&self.project_domain_id, &self.project_domain_name)}});
                }
                Some(json!({ "auth": auth }))
            }
            AuthType::ApplicationCredential => {
                let secret = self
                    .application_credential_secret
                    .as_ref()
                    .map(Secret::expose)
                    .unwrap_or("");
                let cred = match &self.application_credential_id {
                    Some(id) => json!({"id": id, "secret": secret}),
                    None => {
                        let mut user = serde_json::Map::new();
                        if let Some(id) = &self.user_id {
                            user.insert("id".into(), json!(id));
                        } else {
                            user.insert("name".into(), json!(self.username));
                            user.insert(
                                "domain".into(),
                                domain(&self.user_domain_id, &self.user_domain_name),
                            );
                        }
                        json!({"name": self.application_credential_name, "secret": secret,
                               "user": Value::Object(user)})
                    }
                };
                Some(
                    json!({"auth": {"identity": {"methods": ["application_credential"],
                    "application_credential": cred}}}),
                )
            }
            AuthType::AdminToken | AuthType::None => None,
        }
    }

    /// `auth_url` with `/v3/auth/tokens` appended (once).
    pub fn tokens_url(&self) -> Option<String> {
        let base = self.auth_url.as_deref()?.trim_end_matches('/');
        if base.ends_with("/v3") {
            Some(format!("{base}/auth/tokens"))
        } else {
            Some(format!("{base}/v3/auth/tokens"))
        }
    }
}

fn domain(id: &Option<String>, name: &Option<String>) -> Value {
    match (id, name) {
        (Some(id), _) => json!({"id": id}),
        (None, Some(name)) => json!({"name": name}),
        (None, None) => json!({"id": "default"}),
    }
}

/// Find the endpoint of `service_type` in a Keystone v3 catalog (the token's or a
/// RequestContext's `service_catalog`): the first of `interfaces` (in order) that
/// has an endpoint in `region` (any region when `None`).
pub fn catalog_lookup(
    catalog: &[Value],
    service_type: &str,
    interfaces: &[String],
    region: Option<&str>,
) -> Option<String> {
    let services: Vec<&Value> = catalog
        .iter()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some(service_type))
        .collect();
    for iface in interfaces {
        for svc in &services {
            let Some(eps) = svc.get("endpoints").and_then(Value::as_array) else {
                continue;
            };
            for ep in eps {
                let ep_iface = ep
                    .get("interface")
                    .and_then(Value::as_str)
                    .map(|s| s.trim_end_matches("URL").to_ascii_lowercase());
                // v2-style catalogs (publicURL, internalURL...) in one endpoint
                let url = match ep_iface {
                    Some(i) if &i == iface => ep.get("url").and_then(Value::as_str),
                    Some(_) => None,
                    None => ep.get(format!("{iface}URL")).and_then(Value::as_str),
                };
                let Some(url) = url else { continue };
                if let Some(want) = region {
                    let r = ep
                        .get("region_id")
                        .and_then(Value::as_str)
                        .or_else(|| ep.get("region").and_then(Value::as_str));
                    if r != Some(want) {
                        continue;
                    }
                }
                return Some(url.to_string());
            }
        }
    }
    None
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    /// When to fetch a new one: [`EXPIRY_MARGIN_SECS`] before it expires, or
    /// half-way through its life when that is earlier.
    renew_at: Option<DateTime<Utc>>,
    catalog: Vec<Value>,
}

impl CachedToken {
    fn fresh(&self) -> bool {
        match self.renew_at {
            Some(t) => t > Utc::now(),
            None => true,
        }
    }
}

/// When to renew a token that expires at `expires`: the margin before its
/// expiry, but never earlier than half-way through its life.
fn refresh_at(issued: Option<DateTime<Utc>>, expires: DateTime<Utc>) -> DateTime<Utc> {
    let margin = chrono::Duration::seconds(EXPIRY_MARGIN_SECS);
    let margin = match issued {
        Some(i) if expires > i => margin.min((expires - i) / 2),
        _ => margin,
    };
    expires - margin
}

/// Which token a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// The service's own credentials from the config group.
    Service,
    /// The caller's token from the RequestContext when it has one (as Nova does for
    /// Glance), the service's own otherwise.
    UserIfPresent,
}

/// An authenticated HTTP session for one service.
pub struct Session {
    opts: AuthOptions,
    http: reqwest::Client,
    cached: Mutex<Option<CachedToken>>,
    /// `[service_user]` with `send_service_user_token`: requests made with a
    /// user's token also carry this session's token as `X-Service-Token`, so a
    /// user token that expires during a long operation is still accepted.
    service_user: Option<Arc<Session>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("opts", &self.opts).finish()
    }
}

impl Session {
    /// A session with its own HTTP client (CA file, `insecure`, connect timeout).
    pub fn new(opts: AuthOptions) -> Result<Self, KeystoneError> {
        let http = Self::client_builder(&opts)?
            .build()
            .map_err(|e| KeystoneError::Options {
                group: opts.group.clone(),
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(Self::with_client(opts, http))
    }

    /// A reqwest builder with the TLS options of `opts` applied.
    pub fn client_builder(opts: &AuthOptions) -> Result<reqwest::ClientBuilder, KeystoneError> {
        // Idle connections are dropped after 1 s: WSGI servers (gunicorn's keep-alive is
        // 2 s) close them, and a request written into a connection being closed fails.
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(1));
        if let Some(ca) = &opts.cafile {
            let pem = std::fs::read(ca).map_err(|e| KeystoneError::Options {
                group: opts.group.clone(),
                reason: format!("cafile {ca}: {e}"),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                KeystoneError::Options {
                    group: opts.group.clone(),
                    reason: format!("cafile {ca}: {e}"),
                }
            })?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if opts.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        Ok(b)
    }

    pub fn with_client(opts: AuthOptions, http: reqwest::Client) -> Self {
        Session {
            opts,
            http,
            cached: Mutex::new(None),
            service_user: None,
        }
    }

    /// Send a service token beside every user token (see [`service_user`]).
    pub fn with_service_user(mut self, service_user: Option<Arc<Session>>) -> Self {
        self.service_user = service_user;
        self
    }

    pub fn options(&self) -> &AuthOptions {
        &self.opts
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Forget the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn authenticate(&self) -> Result<CachedToken, KeystoneError> {
        let mut guard = self.cached.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.fresh() {
                return Ok(c.clone());
            }
        }
        let url = self
            .opts
            .tokens_url()
            .ok_or_else(|| KeystoneError::Options {
                group: self.opts.group.clone(),
                reason: "no auth_url".into(),
            })?;
        let body = self
            .opts
            .auth_body()
            .ok_or_else(|| KeystoneError::Options {
                group: self.opts.group.clone(),
                reason: "auth plugin has no token request".into(),
            })?;
        let req_err = |reason: String| KeystoneError::Request {
            url: url.clone(),
            reason,
        };
        tracing::debug!(group = %self.opts.group, %url, "requesting a keystone token");
        let mut req = self.http.post(&url).json(&body);
        if let Some(t) = self.opts.timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| req_err(e.to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(KeystoneError::Unauthorized {
                url,
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(req_err(format!("HTTP {status}")));
        }
        let token = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(Secret::new)
            .ok_or_else(|| req_err("no X-Subject-Token in the answer".into()))?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| req_err(format!("bad token body: {e}")))?;
        let at = |k: &str| {
            v["token"][k]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let renew_at = at("expires_at").map(|exp| refresh_at(at("issued_at"), exp));
        let catalog = v["token"]["catalog"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let c = CachedToken {
            token,
            renew_at,
            catalog,
        };
        *guard = Some(c.clone());
        Ok(c)
    }

    /// The session that gets this one's own tokens from Keystone: itself with
    /// password or application credentials; with no credentials of its own
    /// (the usual `[glance]`), the `[service_user]`, so that what the service
    /// does on its own behalf (a clean-up at start-up) is authenticated too.
    fn authenticating(&self) -> Option<&Session> {
        match self.opts.auth_type {
            AuthType::Password | AuthType::ApplicationCredential => Some(self),
            AuthType::None => self.service_user.as_deref(),
            AuthType::AdminToken => None,
        }
    }

    /// The token to send, if any.
    pub async fn token(
        &self,
        ctx: Option<&RequestContext>,
        source: TokenSource,
    ) -> Result<Option<Secret>, KeystoneError> {
        if source == TokenSource::UserIfPresent {
            if let Some(t) = ctx.and_then(|c| c.auth_token.as_deref()) {
                return Ok(Some(Secret::new(t)));
            }
        }
        match (self.opts.auth_type, self.authenticating()) {
            (AuthType::AdminToken, _) => Ok(self.opts.token.clone()),
            (_, Some(s)) => Ok(Some(s.authenticate().await?.token)),
            (_, None) => Ok(None),
        }
    }

    /// The service endpoint: `endpoint_override`, then the admin_token plugin's
    /// `endpoint`, then the RequestContext's catalog, then our token's catalog
    /// (the `[service_user]`'s when the group has no credentials).
    pub async fn endpoint(&self, ctx: Option<&RequestContext>) -> Result<String, KeystoneError> {
        if let Some(e) = &self.opts.endpoint_override {
            return Ok(e.clone());
        }
        if let Some(e) = &self.opts.endpoint {
            return Ok(e.clone());
        }
        let region = self.opts.region_name.as_deref();
        if let Some(c) = ctx {
            if let Some(u) = catalog_lookup(
                &c.service_catalog,
                &self.opts.service_type,
                &self.opts.valid_interfaces,
                region,
            ) {
                return Ok(u);
            }
        }
        if let Some(s) = self.authenticating() {
            let tok = s.authenticate().await?;
            if let Some(u) = catalog_lookup(
                &tok.catalog,
                &self.opts.service_type,
                &self.opts.valid_interfaces,
                region,
            ) {
                return Ok(u);
            }
        }
        Err(KeystoneError::EndpointNotFound {
            service_type: self.opts.service_type.clone(),
            interfaces: self.opts.valid_interfaces.clone(),
            region: self.opts.region_name.clone(),
        })
    }

    /// Send a request built by `build` (called with the client and the token to
    /// put in `X-Auth-Token`); on a 401 with our own cached token, re-authenticate
    /// once and send again.
    pub async fn send<F>(
        &self,
        ctx: Option<&RequestContext>,
        source: TokenSource,
        build: F,
    ) -> Result<reqwest::Response, SendError>
    where
        F: Fn(&reqwest::Client, Option<&Secret>) -> reqwest::RequestBuilder,
    {
        let ours =
            !(source == TokenSource::UserIfPresent && ctx.is_some_and(|c| c.auth_token.is_some()));
        let service_token = match (&self.service_user, ours) {
            (Some(s), false) => s
                .token(None, TokenSource::Service)
                .await
                .map_err(SendError::Auth)?,
            _ => None,
        };
        let with_service = |r: reqwest::RequestBuilder| match &service_token {
            Some(t) => r.header("X-Service-Token", t.expose()),
            None => r,
        };
        let token = self.token(ctx, source).await.map_err(SendError::Auth)?;
        let resp = with_service(build(&self.http, token.as_ref()))
            .send()
            .await
            .map_err(SendError::Http)?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED && service_token.is_some() {
            // our service token may have expired under us: fetch it anew, once
            if let Some(s) = &self.service_user {
                tracing::info!(group = %self.opts.group, "401 with a service token: re-authenticating [service_user] once");
                s.invalidate().await;
                let st = s
                    .token(None, TokenSource::Service)
                    .await
                    .map_err(SendError::Auth)?;
                let mut r = build(&self.http, token.as_ref());
                if let Some(t) = &st {
                    r = r.header("X-Service-Token", t.expose());
                }
                return r.send().await.map_err(SendError::Http);
            }
        }
        if let (reqwest::StatusCode::UNAUTHORIZED, true, Some(c)) =
            (resp.status(), ours, self.authenticating())
        {
            tracing::info!(group = %self.opts.group, "401 with a cached token: re-authenticating once");
            c.invalidate().await;
            let token = self.token(ctx, source).await.map_err(SendError::Auth)?;
            return build(&self.http, token.as_ref())
                .send()
                .await
                .map_err(SendError::Http);
        }
        Ok(resp)
    }
}

/// The `[service_user]` session when `send_service_user_token` is set (Nova's
/// `service_auth.get_auth_plugin`): its token goes beside user tokens.
pub fn service_user(ini: &Ini) -> Result<Option<Arc<Session>>, ConfigError> {
    let g = ini.group("service_user");
    if !g.bool("send_service_user_token", false)? {
        return Ok(None);
    }
    let opts = AuthOptions::from_group(ini, "service_user")?;
    if !matches!(
        opts.auth_type,
        AuthType::Password | AuthType::ApplicationCredential
    ) {
        return Err(g.invalid(
            "auth_type",
            "send_service_user_token needs password or application credential auth".to_string(),
        ));
    }
    let s = Session::new(opts).map_err(|e| g.invalid("auth_type", e.to_string()))?;
    Ok(Some(Arc::new(s)))
}

/// Why [`Session::send`] failed.
#[derive(Debug, Error)]
pub enum SendError {
    #[error(transparent)]
    Auth(KeystoneError),
    #[error("{0}")]
    Http(reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(text: &str) -> Ini {
        Ini::parse(text).unwrap()
    }

    #[test]
    fn password_options_and_body() {
        let i = ini("[glance]\nauth_type = password\nauth_url = http://ks:5000/identity\nusername = nova\npassword = s3cret\nuser_domain_name = Default\nproject_name = service\nproject_domain_name = Default\nregion_name = RegionOne\nvalid_interfaces = internal,public\n");
        let o = AuthOptions::from_group(&i, "glance").unwrap();
        assert_eq!(o.auth_type, AuthType::Password);
        assert_eq!(o.service_type, "image");
        assert_eq!(o.valid_interfaces, vec!["internal", "public"]);
        assert_eq!(
            o.tokens_url().unwrap(),
            "http://ks:5000/identity/v3/auth/tokens"
        );
        let b = o.auth_body().unwrap();
        assert_eq!(
            b["auth"]["identity"]["password"]["user"]["name"],
            json!("nova")
        );
        assert_eq!(
            b["auth"]["identity"]["password"]["user"]["password"],
            json!("s3cret")
        );
        assert_eq!(
            b["auth"]["scope"]["project"]["domain"]["name"],
            json!("Default")
        );
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn admin_token_as_the_harness_writes_it() {
        let i = ini("[placement]\nauth_type = admin_token\nendpoint = http://127.0.0.1:8778\ntoken = admin:admin\nendpoint_override = http://127.0.0.1:8778\n");
        let o = AuthOptions::from_group(&i, "placement").unwrap();
        assert_eq!(o.auth_type, AuthType::AdminToken);
        assert_eq!(o.token.as_ref().unwrap().expose(), "admin:admin");
        assert!(!format!("{o:?}").contains("admin:admin"));
        let bad = ini("[neutron]\nauth_type = admin_token\ntoken = x\n");
        assert!(AuthOptions::from_group(&bad, "neutron").is_err());
    }

    #[test]
    fn app_credential_and_unknown_type() {
        let i = ini("[glance]\nauth_type = v3applicationcredential\nauth_url = http://ks/v3\napplication_credential_id = abc\napplication_credential_secret = xyz\n");
        let o = AuthOptions::from_group(&i, "glance").unwrap();
        assert_eq!(o.tokens_url().unwrap(), "http://ks/v3/auth/tokens");
        let b = o.auth_body().unwrap();
        assert_eq!(
            b["auth"]["identity"]["application_credential"]["id"],
            json!("abc")
        );
        assert!(b["auth"].get("scope").is_none());
        let bad = ini("[glance]\nauth_type = v2password\n");
        let e = AuthOptions::from_group(&bad, "glance").unwrap_err();
        assert!(e.to_string().contains("v2password"), "{e}");
        let none = AuthOptions::from_group(&ini(""), "glance").unwrap();
        assert_eq!(none.auth_type, AuthType::None);
    }

    #[test]
    fn catalog_lookup_by_interface_and_region() {
        let cat = vec![
            json!({"type": "compute", "endpoints": [{"interface": "public", "region_id": "R1", "url": "http://nova"}]}),
            json!({"type": "image", "name": "glance", "endpoints": [
                {"interface": "public", "region_id": "R1", "url": "http://pub1"},
                {"interface": "internal", "region_id": "R2", "url": "http://int2"},
                {"interface": "internal", "region": "R1", "url": "http://int1"}]}),
        ];
        let i = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            catalog_lookup(&cat, "image", &i(&["internal", "public"]), Some("R1")).as_deref(),
            Some("http://int1")
        );
        assert_eq!(
            catalog_lookup(&cat, "image", &i(&["public"]), Some("R2")),
            None
        );
        assert_eq!(
            catalog_lookup(&cat, "image", &i(&["internal"]), None).as_deref(),
            Some("http://int2")
        );
        assert_eq!(catalog_lookup(&cat, "network", &i(&["public"]), None), None);
        let v2 = vec![
            json!({"type": "image", "endpoints": [{"region": "R1", "publicURL": "http://v2pub"}]}),
        ];
        assert_eq!(
            catalog_lookup(&v2, "image", &i(&["public"]), Some("R1")).as_deref(),
            Some("http://v2pub")
        );
    }

    /// A one-shot-per-connection HTTP server answering token requests.
    async fn fake_keystone(
        hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let hits = hits.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut got = Vec::new();
                    loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&got);
                        if let Some(h) = text.find("\r\n\r\n") {
                            let len: usize = text[..h]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if got.len() >= h + 4 + len {
                                break;
                            }
                        }
                    }
                    let n = hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = json!({"token": {"expires_at": "2999-01-01T00:00:00.000000Z",
                        "catalog": [{"type": "image", "endpoints": [{"interface": "internal", "region_id": "R1", "url": "http://glance.internal:9292"}]}]}}).to_string();
                    let resp = format!("HTTP/1.1 201 Created\r\nX-Subject-Token: tok{n}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        addr
    }

    #[test]
    fn short_tokens_are_renewed_half_way_through() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // an hour-long token: 120 s before it expires
        assert_eq!(
            refresh_at(Some(t("2026-01-01T10:00:00Z")), t("2026-01-01T11:00:00Z")),
            t("2026-01-01T10:58:00Z")
        );
        // a 90 s token: after 45 s, not at once
        assert_eq!(
            refresh_at(Some(t("2026-01-01T10:00:00Z")), t("2026-01-01T10:01:30Z")),
            t("2026-01-01T10:00:45Z")
        );
        assert_eq!(
            refresh_at(None, t("2026-01-01T11:00:00Z")),
            t("2026-01-01T10:58:00Z")
        );
    }

    #[tokio::test]
    async fn token_is_cached_and_catalog_used() {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let addr = fake_keystone(hits.clone()).await;
        let i = ini(&format!("[glance]\nauth_type = password\nauth_url = http://{addr}/identity\nusername = nova\npassword = pw\nproject_name = service\nregion_name = R1\n"));
        let s = Session::new(AuthOptions::from_group(&i, "glance").unwrap()).unwrap();
        let t1 = s.token(None, TokenSource::Service).await.unwrap().unwrap();
        let t2 = s.token(None, TokenSource::Service).await.unwrap().unwrap();
        assert_eq!(t1.expose(), "tok0");
        assert_eq!(t2.expose(), "tok0");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            s.endpoint(None).await.unwrap(),
            "http://glance.internal:9292"
        );
        s.invalidate().await;
        let t3 = s.token(None, TokenSource::Service).await.unwrap().unwrap();
        assert_eq!(t3.expose(), "tok1");
        assert_the_users_token_wins(&s).await;
    }

    /// The caller's token wins where Nova uses it.
    async fn assert_the_users_token_wins(s: &Session) {
        let ctx = RequestContext {
            auth_token: Some("usertok".into()),
            ..Default::default()
        };
        let t = s
            .token(Some(&ctx), TokenSource::UserIfPresent)
            .await
            .unwrap();
        assert_eq!(t.unwrap().expose(), "usertok");
    }

    #[tokio::test]
    async fn a_group_without_credentials_uses_the_service_user_on_its_own_behalf() {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ks = fake_keystone(hits.clone()).await;
        let i = ini(&format!(
            "[glance]\nregion_name = R1\n\
             [service_user]\nsend_service_user_token = true\nauth_type = password\nauth_url = http://{ks}/v3\nusername = nova\npassword = pw\nproject_name = service\n"
        ));
        let opts = AuthOptions::from_group(&i, "glance").unwrap();
        // alone, as before: no token, no endpoint
        let alone = Session::new(opts.clone()).unwrap();
        assert!(alone
            .token(None, TokenSource::UserIfPresent)
            .await
            .unwrap()
            .is_none());
        assert!(alone.endpoint(None).await.is_err());
        let su = service_user(&i).unwrap().expect("a service user");
        let s = Session::new(opts).unwrap().with_service_user(Some(su));
        // no user token (a start-up clean-up): the service user's, and its catalog
        let t = s.token(None, TokenSource::UserIfPresent).await.unwrap();
        assert_eq!(t.unwrap().expose(), "tok0");
        assert_eq!(
            s.endpoint(None).await.unwrap(),
            "http://glance.internal:9292"
        );
        // a user's request still goes with the user's token
        assert_the_users_token_wins(&s).await;
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one token, cached"
        );
    }

    /// A server that answers 200 to everything and keeps each request's head.
    async fn recording_server() -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                h.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&got).to_ascii_lowercase());
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                    )
                    .await;
            }
        });
        (addr, heads)
    }

    #[tokio::test]
    async fn a_service_token_goes_beside_user_tokens_only() {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ks = fake_keystone(hits.clone()).await;
        let (svc, heads) = recording_server().await;
        let i = ini(&format!(
            "[neutron]\nauth_type = password\nauth_url = http://{ks}/v3\nusername = nova\npassword = pw\nproject_name = service\nendpoint_override = http://{svc}\n\
             [service_user]\nsend_service_user_token = true\nauth_type = password\nauth_url = http://{ks}/v3\nusername = nova\npassword = pw\nproject_name = service\n"
        ));
        let su = service_user(&i).unwrap().expect("a service user");
        let s = Session::new(AuthOptions::from_group(&i, "neutron").unwrap())
            .unwrap()
            .with_service_user(Some(su));
        let ctx = RequestContext {
            auth_token: Some("usertok".into()),
            ..Default::default()
        };
        let url = format!("http://{svc}/v2.0/ports");
        let send = |source| {
            let url = url.clone();
            let ctx = ctx.clone();
            let s = &s;
            async move {
                s.send(Some(&ctx), source, |http, t| {
                    let mut r = http.get(&url);
                    if let Some(t) = t {
                        r = r.header("X-Auth-Token", t.expose());
                    }
                    r
                })
                .await
                .unwrap()
            }
        };
        send(TokenSource::UserIfPresent).await;
        send(TokenSource::Service).await;
        let heads = heads.lock().unwrap().clone();
        assert!(heads[0].contains("x-auth-token: usertok"), "{}", heads[0]);
        assert!(heads[0].contains("x-service-token: tok"), "{}", heads[0]);
        assert!(heads[1].contains("x-auth-token: tok"), "{}", heads[1]);
        assert!(!heads[1].contains("x-service-token"), "{}", heads[1]);
        // without send_service_user_token there is no service user
        let off = ini("[service_user]\nauth_type = password\nauth_url = http://ks/v3\nusername = u\npassword = p\n");
        assert!(service_user(&off).unwrap().is_none());
    }
}
