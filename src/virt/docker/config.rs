//! `[docker]` options (the old driver's names) and how they turn into an engine connection.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, Ini};

/// How a container's CPU share of the flavor is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    /// A hard cap (`NanoCpus = vcpus * 1e9`) plus proportional weight (`CpuShares`).
    Quota,
    /// Proportional weight only (`CpuShares = vcpus * 1024`): idle CPU may be borrowed.
    Shares,
}

/// The `[docker]` group.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `unix:///var/run/docker.sock`, `tcp://host:2376`, `http://...` or `https://...`.
    pub host_url: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// True: TLS without verifying the engine's certificate (the old driver inverted this).
    pub api_insecure: bool,
    pub cpu_mode: CpuMode,
    /// `PidsLimit` of every container, if set.
    pub pids_limit: Option<i64>,
    /// Timeout of ordinary API calls. Image load/save/commit use a client without one
    /// ([`super::DockerDriver::docker_unbounded`]); stops get this plus their own grace time.
    pub api_timeout: Duration,
    /// How long a freshly started container must stay up before spawn calls it a
    /// success (a command that exits sooner fails the build); zero (the default)
    /// waits for nothing: the instance is ACTIVE once its container started, and
    /// one that exits later is stopped by the power sync with a fault.
    pub spawn_confirm_window: Duration,
    /// Where per-instance markers (suspended, stopped by Nova) live.
    pub state_dir: PathBuf,
    /// The shell a serial console session starts in a container whose command
    /// has no TTY of its own (`console_shell`, default `/bin/sh`); None (the
    /// option set empty): no shell, the console shows the container's output.
    pub console_shell: Option<String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            host_url: "unix:///var/run/docker.sock".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            api_insecure: false,
            cpu_mode: CpuMode::Quota,
            pids_limit: None,
            api_timeout: Duration::from_secs(120),
            spawn_confirm_window: Duration::ZERO,
            state_dir: PathBuf::from("/var/lib/nova/nova-docker"),
            console_shell: Some("/bin/sh".into()),
        }
    }
}

/// Where and how to reach the engine, decided from the options alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A local socket path.
    Unix(String),
    /// Plain HTTP, `host:port`.
    Http(String),
    /// TLS to `host:port`; `verify` false means the engine's certificate is not checked.
    Tls {
        addr: String,
        ca_file: Option<PathBuf>,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
        verify: bool,
    },
}

impl DockerConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let g = ini.group("docker");
        let d = DockerConfig::default();
        let cpu_mode = match g
            .choice("cpu_mode", "quota", &["quota", "shares"])?
            .as_str()
        {
            "shares" => CpuMode::Shares,
            _ => CpuMode::Quota,
        };
        let pids_limit = match g.opt_int("pids_limit")? {
            Some(n) if n <= 0 => {
                return Err(g.invalid(
                    "pids_limit",
                    format!("{n} must be a positive number of processes"),
                ))
            }
            other => other,
        };
        let api_timeout = g.secs("api_timeout", d.api_timeout.as_secs())?;
        if api_timeout.is_zero() {
            return Err(g.invalid("api_timeout", "must be at least 1 second"));
        }
        let window = g.float("spawn_confirm_window", d.spawn_confirm_window.as_secs_f64())?;
        if !(0.0..=60.0).contains(&window) {
            return Err(g.invalid(
                "spawn_confirm_window",
                format!("{window} must be between 0 and 60 seconds"),
            ));
        }
        let state_path = ini.group("DEFAULT").str("state_path", "/var/lib/nova")?;
        let state_dir = g
            .opt_nonempty("state_dir")?
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(state_path).join("nova-docker"));
        let cfg = DockerConfig {
            host_url: g.str("host_url", &d.host_url)?,
            ca_file: g.opt_nonempty("ca_file")?.map(PathBuf::from),
            cert_file: g.opt_nonempty("cert_file")?.map(PathBuf::from),
            key_file: g.opt_nonempty("key_file")?.map(PathBuf::from),
            api_insecure: g.bool("api_insecure", false)?,
            cpu_mode,
            pids_limit,
            api_timeout,
            spawn_confirm_window: Duration::from_secs_f64(window),
            state_dir,
            console_shell: match g.opt_str("console_shell")? {
                None => d.console_shell.clone(),
                Some(s) if s.trim().is_empty() => None,
                Some(s) => Some(s.trim().to_string()),
            },
        };
        cfg.endpoint()
            .map_err(|reason| g.invalid("host_url", reason))?;
        Ok(cfg)
    }

    /// The connection the options describe. TLS is used for `https://`, or for `tcp://`
    /// when any of ca_file, cert_file, key_file or api_insecure is set (as the old driver
    /// did); the certificate is verified unless `api_insecure` is true.
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        let url = self.host_url.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("{url:?} has no scheme (unix://, tcp://, http:// or https://)")
        })?;
        match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Err(format!("{url:?} names no socket"));
                }
                // unix:///var/run/docker.sock -> /var/run/docker.sock
                Ok(Endpoint::Unix(rest.to_string()))
            }
            "tcp" | "http" | "https" => {
                let addr = rest.trim_end_matches('/').to_string();
                if addr.is_empty() || addr.contains('/') {
                    return Err(format!("{url:?} is not host:port"));
                }
                let tls = scheme == "https"
                    || (scheme == "tcp"
                        && (self.ca_file.is_some()
                            || self.cert_file.is_some()
                            || self.key_file.is_some()
                            || self.api_insecure));
                if !tls {
                    return Ok(Endpoint::Http(addr));
                }
                if self.cert_file.is_some() != self.key_file.is_some() {
                    return Err("cert_file and key_file must be given together".into());
                }
                let verify = !self.api_insecure;
                if verify && self.ca_file.is_none() {
                    return Err(
                        "TLS with verification needs ca_file (or set api_insecure = True)".into(),
                    );
                }
                Ok(Endpoint::Tls {
                    addr,
                    ca_file: self.ca_file.clone(),
                    cert_file: self.cert_file.clone(),
                    key_file: self.key_file.clone(),
                    verify,
                })
            }
            other => Err(format!("unsupported scheme {other:?} in {url:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Result<DockerConfig, ConfigError> {
        let mut i = Ini::default();
        i.merge_text(text, Path::new("nova.conf")).unwrap();
        DockerConfig::from_ini(&i)
    }

    #[test]
    fn defaults() {
        let c = cfg("[DEFAULT]\nstate_path = /srv/nova\n").unwrap();
        assert_eq!(c.host_url, "unix:///var/run/docker.sock");
        assert_eq!(
            c.endpoint().unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(c.cpu_mode, CpuMode::Quota);
        assert_eq!(c.pids_limit, None);
        assert!(!c.api_insecure);
        assert_eq!(c.state_dir, PathBuf::from("/srv/nova/nova-docker"));
    }

    #[test]
    fn options_read() {
        let c = cfg("[docker]\ncpu_mode = shares\npids_limit = 200\napi_timeout = 30\nspawn_confirm_window = 0.5\nstate_dir = /x\n").unwrap();
        assert_eq!(c.cpu_mode, CpuMode::Shares);
        assert_eq!(c.pids_limit, Some(200));
        assert_eq!(c.api_timeout, Duration::from_secs(30));
        assert_eq!(c.spawn_confirm_window, Duration::from_millis(500));
        assert_eq!(c.state_dir, PathBuf::from("/x"));
    }

    #[test]
    fn bad_values_are_refused_with_their_place() {
        let e = cfg("[docker]\ncpu_mode = turbo\n").unwrap_err().to_string();
        assert!(e.contains("nova.conf") && e.contains("cpu_mode"), "{e}");
        assert!(cfg("[docker]\npids_limit = 0\n").is_err());
        assert!(cfg("[docker]\napi_timeout = 0\n").is_err());
        assert!(cfg("[docker]\nhost_url = /var/run/docker.sock\n").is_err());
        assert!(cfg("[docker]\nhost_url = ftp://x:1\n").is_err());
    }

    #[test]
    fn plain_tcp_without_tls_options() {
        let c = cfg("[docker]\nhost_url = tcp://10.0.0.5:2375\n").unwrap();
        assert_eq!(
            c.endpoint().unwrap(),
            Endpoint::Http("10.0.0.5:2375".into())
        );
    }

    #[test]
    fn tls_verifies_unless_api_insecure_is_true() {
        let c = cfg(
            "[docker]\nhost_url = tcp://h:2376\nca_file = /ca\ncert_file = /c\nkey_file = /k\n",
        )
        .unwrap();
        match c.endpoint().unwrap() {
            Endpoint::Tls { verify, addr, .. } => {
                assert!(verify, "api_insecure unset must verify");
                assert_eq!(addr, "h:2376");
            }
            e => panic!("{e:?}"),
        }
        let c = cfg("[docker]\nhost_url = tcp://h:2376\nca_file = /ca\napi_insecure = False\n")
            .unwrap();
        assert!(matches!(
            c.endpoint().unwrap(),
            Endpoint::Tls { verify: true, .. }
        ));
        // The old driver passed verify=api_insecure; True must mean "do not verify".
        let c = cfg("[docker]\nhost_url = tcp://h:2376\napi_insecure = True\n").unwrap();
        assert!(matches!(
            c.endpoint().unwrap(),
            Endpoint::Tls { verify: false, .. }
        ));
    }

    #[test]
    fn tls_needs_consistent_files() {
        assert!(cfg("[docker]\nhost_url = tcp://h:2376\ncert_file = /c\n").is_err());
        // verification without a CA to verify against
        assert!(cfg("[docker]\nhost_url = https://h:2376\n").is_err());
    }
}
