//! Registry credentials and the registry's authentication challenge.
//!
//! Credentials come from a file in Docker's `config.json` format (what
//! `docker login` writes), named by `[docker_registry] auth_file`:
//! `{"auths": {"registry.example:5000": {"auth": "<base64 user:password>"}}}`
//! (`username` and `password` keys work too; keys may carry a scheme and a path,
//! as Docker Hub's `https://index.docker.io/v1/`). The passwords are kept as
//! [`Secret`]s and never formatted.

use std::collections::HashMap;

use base64::Engine as _;
use serde::Deserialize;

use crate::clients::keystone::Secret;

use super::reference::DOCKER_HUB;

/// A user name and password for one registry.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl Credentials {
    /// The value of a `Basic` Authorization header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The credentials of a `config.json`, by registry (`host[:port]`). The error
/// names the entry, never its content.
pub fn parse_auth_file(text: &str) -> Result<HashMap<String, Credentials>, String> {
    let cfg: ConfigJson =
        serde_json::from_str(text).map_err(|e| format!("not Docker's config.json format: {e}"))?;
    let mut out = HashMap::new();
    for (key, entry) in cfg.auths {
        let creds = match (entry.auth, entry.username, entry.password) {
            (Some(a), _, _) if !a.is_empty() => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .map_err(|_| format!("the auth of {key:?} is not base64"))?;
                let raw = String::from_utf8(raw)
                    .map_err(|_| format!("the auth of {key:?} is not UTF-8"))?;
                let (u, p) = raw
                    .split_once(':')
                    .ok_or_else(|| format!("the auth of {key:?} is not user:password"))?;
                Credentials {
                    username: u.to_string(),
                    password: Secret::new(p),
                }
            }
            (_, Some(u), Some(p)) => Credentials {
                username: u,
                password: Secret::new(p),
            },
            _ => continue, // an identity token or a credential helper: not ours
        };
        out.insert(registry_key(&key), creds);
    }
    Ok(out)
}

/// `https://index.docker.io/v1/` -> `docker.io`, `http://reg:5000/` -> `reg:5000`.
fn registry_key(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        h => h.to_string(),
    }
}

/// A `WWW-Authenticate` challenge of a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// A token from `realm` (with `service` and `scope`).
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(v: &str) -> Option<Challenge> {
    let v = v.trim();
    let (scheme, params) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut map = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=')?;
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        map.insert(k, val.to_string());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: map.remove("realm")?,
        service: map.remove("service"),
        scope: map.remove("scope"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_json_credentials_are_read_by_registry() {
        let text = r#"{"auths": {
            "127.0.0.1:5443": {"auth": "bm92YS1kb2NrZXI6czNjcmV0OndpdGg6Y29sb25z"},
            "https://index.docker.io/v1/": {"username": "hub", "password": "pw"},
            "http://plain:5000/": {"auth": "dTpw"},
            "helper.example": {"identitytoken": "x"}
        }}"#;
        let c = parse_auth_file(text).unwrap();
        let lab = &c["127.0.0.1:5443"];
        assert_eq!(lab.username, "nova-docker");
        assert_eq!(lab.password.expose(), "s3cret:with:colons");
        assert_eq!(c["docker.io"].username, "hub");
        assert_eq!(c["plain:5000"].basic_header(), "Basic dTpw");
        assert!(!c.contains_key("helper.example"));
        assert!(
            !format!("{lab:?}").contains("s3cret"),
            "no password in Debug"
        );
    }

    #[test]
    fn a_bad_auth_file_names_the_entry_not_its_content() {
        let e = parse_auth_file(r#"{"auths": {"r:1": {"auth": "!!notbase64"}}}"#).unwrap_err();
        assert_eq!(e, "the auth of \"r:1\" is not base64");
        assert!(parse_auth_file("not json").is_err());
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("Bearer realm=https://t.example/token, service=reg"),
            Some(Challenge::Bearer {
                realm: "https://t.example/token".into(),
                service: Some("reg".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "no realm");
    }
}
