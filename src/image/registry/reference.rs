//! Docker image references (`[registry[:port]/]repository[:tag][@sha256:digest]`),
//! parsed once where a Glance record names one, as Docker's own `reference`
//! package reads them: the first component is a registry when it holds a `.` or
//! a `:` or is `localhost`; without one the registry is Docker Hub.

use std::fmt;

use super::RegistryError;

/// Docker Hub, as references without a registry name it.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` (Docker Hub: [`DOCKER_HUB`]).
    pub registry: String,
    /// `team/app` (Docker Hub's official images: `library/busybox`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`: the manifest this reference pins.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let bad = |why: &str| RegistryError::BadReference {
            reference: s.to_string(),
            reason: why.to_string(),
        };
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Err(bad("it is empty"));
        }
        if s_trim.len() > 255 + 128 + 72 {
            return Err(bad("it is too long"));
        }
        let (rest, digest) = match s_trim.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("its digest is not sha256:<64 hex digits>"))?;
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(bad("its digest is not sha256:<64 hex digits>"));
                }
                (r, Some(d.to_string()))
            }
            None => (s_trim, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, p)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), p)
            }
            _ => (DOCKER_HUB.to_string(), rest),
        };
        if !valid_registry(&registry) {
            return Err(bad("its registry is not a host name with an optional port"));
        }
        // a tag is a `:` in the last path component
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
            _ => (path, None),
        };
        if let Some(t) = &tag {
            let ok = t.len() <= 128
                && t.bytes().enumerate().all(|(i, b)| {
                    b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
                });
            if t.is_empty() || !ok {
                return Err(bad(
                    "its tag is not 1-128 letters, digits, '_', '.' or '-' (not first)",
                ));
            }
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(bad(
                "its repository is not lowercase letters and digits in '/'-separated parts (separated inside by '.', '_', '__' or dashes)",
            ));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if repository.len() > 255 {
            return Err(bad("its repository is longer than 255 characters"));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What the manifest is fetched by: the digest if there is one, else the tag
    /// (`latest` when none is named).
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host (and port) of the registry's HTTP API.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (r, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    port_ok && host_ok
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn references_parse_as_docker_reads_them() {
        let x = r("registry.example:5000/team/app:1.4");
        assert_eq!(
            (
                x.registry.as_str(),
                x.repository.as_str(),
                x.tag.as_deref(),
                x.digest.clone()
            ),
            ("registry.example:5000", "team/app", Some("1.4"), None)
        );
        assert_eq!(x.manifest_ref(), "1.4");
        assert_eq!(x.to_string(), "registry.example:5000/team/app:1.4");

        let x = r(&format!("127.0.0.1:5443/lab/busybox@{D}"));
        assert_eq!(x.registry, "127.0.0.1:5443");
        assert_eq!(x.repository, "lab/busybox");
        assert_eq!(x.manifest_ref(), D, "the digest wins");

        let x = r(&format!("localhost/app:v1@{D}"));
        assert_eq!(
            (x.registry.as_str(), x.tag.as_deref()),
            ("localhost", Some("v1"))
        );

        let x = r("busybox");
        assert_eq!(
            (x.registry.as_str(), x.repository.as_str(), x.api_host()),
            ("docker.io", "library/busybox", "registry-1.docker.io")
        );
        assert_eq!(x.manifest_ref(), "latest");
        let x = r("team/app_x__y.z-w");
        assert_eq!(
            (x.registry.as_str(), x.repository.as_str()),
            ("docker.io", "team/app_x__y.z-w")
        );
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        for (s, why) in [
            ("", "empty"),
            ("Team/App", "repository"),
            ("reg:5000/app:", "tag"),
            ("reg:5000/app:-x", "tag"),
            ("reg:99999/app", "registry"),
            ("reg:5000/app@sha256:123", "digest"),
            (
                "reg:5000/app@md5:0123456789abcdef0123456789abcdef",
                "digest",
            ),
            ("reg:5000//app", "repository"),
            ("reg:5000/app/", "repository"),
            ("re_g.x:5000/app", "registry"),
            ("reg.x/a..b", "repository"),
        ] {
            let e = Reference::parse(s).expect_err(s);
            assert!(e.to_string().contains(why), "{s}: {e}");
        }
    }
}
