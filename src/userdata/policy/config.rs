//! The policy as the operator sets it in nova.conf's `[docker]` group.

use std::path::PathBuf;

use super::mounts::normalize_path;
use crate::config::{ConfigError, Ini};

/// Runtime sockets whose bind gives control of every container on the host.
const RUNTIME_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/docker/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
];

/// What the operator allows; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub allow_privileged: bool,
    /// Absolute, normalized path prefixes.
    pub allowed_host_paths: Vec<PathBuf>,
    pub allow_docker_socket: bool,
    pub allow_named_volumes: bool,
    pub allow_devices: bool,
    /// Upper-case capability names without `CAP_`.
    pub allowed_capabilities: Vec<String>,
    pub allow_host_namespaces: bool,
    pub allow_container_namespaces: bool,
    pub allow_unconfined_security_opts: bool,
    pub allow_sysctls: bool,
    pub allow_cross_project_links: bool,
    pub allow_host_resource_overrides: bool,
    pub allowed_runtimes: Vec<String>,
    pub allow_log_drivers: bool,
    pub allow_port_bindings: bool,
    pub admin_bypass: bool,
    /// Socket paths treated as the Docker socket (the built-in ones plus the
    /// path of a `unix://` `[docker] host_url`).
    pub runtime_sockets: Vec<PathBuf>,
}

impl Default for Policy {
    /// The safe defaults.
    fn default() -> Self {
        Policy {
            allow_privileged: false,
            allowed_host_paths: Vec::new(),
            allow_docker_socket: false,
            allow_named_volumes: false,
            allow_devices: false,
            allowed_capabilities: Vec::new(),
            allow_host_namespaces: false,
            allow_container_namespaces: false,
            allow_unconfined_security_opts: false,
            allow_sysctls: false,
            allow_cross_project_links: false,
            allow_host_resource_overrides: false,
            allowed_runtimes: Vec::new(),
            allow_log_drivers: false,
            allow_port_bindings: true,
            admin_bypass: false,
            runtime_sockets: RUNTIME_SOCKETS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Normalize a capability name: upper case, without `CAP_`.
pub fn capability_name(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    up.strip_prefix("CAP_").map(str::to_string).unwrap_or(up)
}

impl Policy {
    /// The policy from nova.conf's `[docker]` group.
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let g = ini.group("docker");
        let d = Policy::default();
        let mut allowed_host_paths = Vec::new();
        for p in g.list("allowed_host_paths", &[])? {
            match normalize_path(&p) {
                Some(n) => allowed_host_paths.push(n),
                None => {
                    return Err(g.invalid(
                        "allowed_host_paths",
                        format!("{p:?} is not an absolute path"),
                    ))
                }
            }
        }
        let mut runtime_sockets = d.runtime_sockets.clone();
        if let Some(url) = g.opt_nonempty("host_url")? {
            if let Some(path) = url.strip_prefix("unix://") {
                if let Some(n) = normalize_path(path) {
                    if !runtime_sockets.contains(&n) {
                        runtime_sockets.push(n);
                    }
                }
            }
        }
        Ok(Policy {
            allow_privileged: g.bool("allow_privileged", d.allow_privileged)?,
            allowed_host_paths,
            allow_docker_socket: g.bool("allow_docker_socket", d.allow_docker_socket)?,
            allow_named_volumes: g.bool("allow_named_volumes", d.allow_named_volumes)?,
            allow_devices: g.bool("allow_devices", d.allow_devices)?,
            allowed_capabilities: g
                .list("allowed_capabilities", &[])?
                .iter()
                .map(|c| capability_name(c))
                .collect(),
            allow_host_namespaces: g.bool("allow_host_namespaces", d.allow_host_namespaces)?,
            allow_container_namespaces: g
                .bool("allow_container_namespaces", d.allow_container_namespaces)?,
            allow_unconfined_security_opts: g.bool(
                "allow_unconfined_security_opts",
                d.allow_unconfined_security_opts,
            )?,
            allow_sysctls: g.bool("allow_sysctls", d.allow_sysctls)?,
            allow_cross_project_links: g
                .bool("allow_cross_project_links", d.allow_cross_project_links)?,
            allow_host_resource_overrides: g.bool(
                "allow_host_resource_overrides",
                d.allow_host_resource_overrides,
            )?,
            allowed_runtimes: g.list("allowed_runtimes", &[])?,
            allow_log_drivers: g.bool("allow_log_drivers", d.allow_log_drivers)?,
            allow_port_bindings: g.bool("allow_port_bindings", d.allow_port_bindings)?,
            admin_bypass: g.bool("policy_admin_bypass", d.admin_bypass)?,
            runtime_sockets,
        })
    }
}
