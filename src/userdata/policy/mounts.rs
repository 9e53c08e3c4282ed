//! Host paths and volumes: `Binds`, `Mounts`, `VolumeDriver`.

use std::path::{Component, Path, PathBuf};

use super::check::Checker;
use crate::userdata::normalize::{parse_bind, BindSource};
use crate::userdata::{HostOptions, MountType};

/// `..` and `.` resolved, repeated slashes collapsed, lexically. `None` for a
/// relative path.
pub fn normalize_path(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// The path with symlinks resolved as far as it exists on this machine (the
/// rest appended as written, as Docker would create it).
fn resolve_existing(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match existing.file_name() {
            Some(n) => {
                rest.push(n.to_os_string());
                existing.pop();
            }
            None => return p.to_path_buf(),
        }
    }
}

impl Checker<'_> {
    fn under_allowed(&self, p: &Path) -> bool {
        self.policy
            .allowed_host_paths
            .iter()
            .any(|a| p.starts_with(a) || p.starts_with(resolve_existing(a)))
    }

    fn named_exactly(&self, p: &Path) -> bool {
        self.policy
            .allowed_host_paths
            .iter()
            .any(|a| a == p || resolve_existing(a) == p)
    }

    /// The runtime socket that binding `p` would expose, if any.
    fn exposed_socket(&self, p: &Path) -> Option<PathBuf> {
        self.policy
            .runtime_sockets
            .iter()
            .flat_map(|s| [s.clone(), resolve_existing(s)])
            .find(|s| s.starts_with(p))
    }

    pub(super) fn host_path(&mut self, field: &str, raw: &str) {
        let Some(lexical) = normalize_path(raw) else {
            self.refuse_hc(field, raw, "a host path must be absolute", None);
            return;
        };
        let resolved = resolve_existing(&lexical);
        let shown = if resolved != Path::new(raw) {
            format!("{raw} (resolves to {})", resolved.display())
        } else {
            raw.to_string()
        };
        for p in [&lexical, &resolved] {
            if let Some(sock) = self.exposed_socket(p) {
                let ok = self.named_exactly(&lexical)
                    || self.named_exactly(&resolved)
                    || (self.policy.allow_docker_socket
                        && self.under_allowed(&lexical)
                        && self.under_allowed(&resolved));
                if !ok {
                    let what = if sock == *p {
                        "it is the container runtime's socket".to_string()
                    } else {
                        format!("it holds the container runtime's socket {}", sock.display())
                    };
                    self.refuse_hc(
                        field,
                        format!("host path {shown}"),
                        format!("{what}, which gives control of every container on the host"),
                        Some("allowed_host_paths (naming it exactly) or allow_docker_socket"),
                    );
                }
                return;
            }
        }
        if !(self.under_allowed(&lexical) && self.under_allowed(&resolved)) {
            let reason = if self.policy.allowed_host_paths.is_empty() {
                "host directories are not shared with instances on this host".to_string()
            } else {
                format!(
                    "it is not under an allowed host path ({})",
                    self.policy
                        .allowed_host_paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            self.refuse_hc(
                field,
                format!("host path {shown}"),
                reason,
                Some("allowed_host_paths"),
            );
        }
    }

    fn named_volume(&mut self, field: &str, name: &str) {
        if !self.policy.allow_named_volumes {
            self.refuse_hc(
                field,
                format!("named volume {name}"),
                "named volumes are shared by name across every project on the host",
                Some("allow_named_volumes"),
            );
        }
    }
    pub(super) fn mounts(&mut self, h: &HostOptions) {
        let p = self.policy;
        for b in h.binds.iter().flatten() {
            match parse_bind(b) {
                Ok(bind) => match &bind.source {
                    BindSource::HostPath(path) => self.host_path("Binds", path),
                    BindSource::Named(n) => self.named_volume("Binds", n),
                },
                Err(e) => self.refuse_hc("Binds", b.clone(), e, None),
            }
        }
        for m in h.mounts.iter().flatten() {
            let source = m.source.clone().unwrap_or_default();
            match m.typ {
                Some(MountType::Bind) => {
                    if source.is_empty() {
                        self.refuse_hc(
                            "Mounts",
                            "bind without Source",
                            "a bind mount needs a Source",
                            None,
                        );
                    } else {
                        self.host_path("Mounts", &source);
                    }
                }
                Some(MountType::Volume) | None | Some(MountType::Empty) => {
                    if !source.is_empty() {
                        self.named_volume("Mounts", &source);
                    }
                    let opts = m.volume_options.as_ref();
                    if opts.is_some_and(|o| o.driver_config.is_some() || o.subpath.is_some())
                        && !p.allow_named_volumes
                    {
                        self.refuse_hc(
                            "Mounts",
                            format!("volume options of {}", m.target.clone().unwrap_or_default()),
                            "volume driver options can mount host paths",
                            Some("allow_named_volumes"),
                        );
                    }
                }
                Some(MountType::Tmpfs) => {}
                Some(other) => self.refuse_hc(
                    "Mounts",
                    format!("type {other}"),
                    "only bind, volume and tmpfs mounts are allowed",
                    None,
                ),
            }
        }
        if let Some(d) = h
            .volume_driver
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "local")
        {
            if !p.allow_named_volumes {
                self.refuse_hc(
                    "VolumeDriver",
                    d,
                    "volume plugins act on the host",
                    Some("allow_named_volumes"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, policy};

    #[test]
    fn host_paths_normalized_and_socket_guarded() {
        let p = policy("allowed_host_paths = /srv/data, /var");
        for (bind, ok) in [
            ("/srv/data:/x", true),
            ("/srv/data/sub/dir:/x", true),
            ("/srv/database:/x", false),
            ("/srv/data/../../etc:/x", false),
            ("/srv//data/./a:/x", true),
            ("/var/lib/x:/x", true),
            ("/var/run/docker.sock:/s", false),
            ("/var/run:/r", false),
            ("/var/../run/docker.sock:/s", false),
            ("/:/root", false),
        ] {
            let text = format!("{{\"HostConfig\": {{\"Binds\": [\"{bind}\"]}}}}");
            assert_eq!(
                check(&p, &text).is_ok(),
                ok,
                "{bind}: {:?}",
                check(&p, &text)
            );
        }
        // the socket named exactly is allowed; under a prefix only with allow_docker_socket
        let p = policy("allowed_host_paths = /var/run/docker.sock");
        assert_eq!(
            check(
                &p,
                r#"{"HostConfig": {"Binds": ["/var/run/docker.sock:/s"]}}"#
            ),
            Ok(())
        );
        // (/var/run is usually a symlink to /run: both must be allowed)
        let p = policy("allowed_host_paths = /var, /run\nallow_docker_socket = True");
        assert_eq!(
            check(
                &p,
                r#"{"HostConfig": {"Binds": ["/var/run/docker.sock:/s"]}}"#
            ),
            Ok(())
        );
        let p = policy("allowed_host_paths = /var, /run");
        assert!(check(
            &p,
            r#"{"HostConfig": {"Binds": ["/var/run/docker.sock:/s"]}}"#
        )
        .is_err());
        let p = policy("host_url = unix:///srv/d/docker.sock\nallowed_host_paths = /srv");
        let e = check(&p, r#"{"HostConfig": {"Binds": ["/srv/d:/s"]}}"#).unwrap_err();
        assert!(e.to_string().contains("/srv/d/docker.sock"), "{e}");
    }

    #[test]
    fn symlinks_are_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        let secret = dir.path().join("secret");
        std::fs::create_dir(&secret).unwrap();
        std::os::unix::fs::symlink(&secret, allowed.join("link")).unwrap();
        let p = policy(&format!("allowed_host_paths = {}", allowed.display()));
        let ok = format!(
            "{{\"HostConfig\": {{\"Binds\": [\"{}/plain:/x\"]}}}}",
            allowed.display()
        );
        assert!(check(&p, &ok).is_ok());
        let text = format!(
            "{{\"HostConfig\": {{\"Binds\": [\"{}/link/sub:/x\"]}}}}",
            allowed.display()
        );
        let e = check(&p, &text).unwrap_err().to_string();
        assert!(e.contains("resolves to") && e.contains("secret"), "{e}");
    }
}
