//! The host's policy on container options from user_data.
//!
//! user_data is written by tenants; the container it shapes runs on a host
//! shared with other tenants. Options that hand a tenant the host (or another
//! tenant's data) are refused unless the operator allows them in `[docker]`.
//! Every default is the safe one:
//!
//! | option (`[docker]`) | default | what it allows |
//! |---|---|---|
//! | `allow_privileged` | False | `Privileged: true` |
//! | `allowed_host_paths` | (empty) | binds of host paths under these prefixes (compared component by component, after `..` and symlinks are resolved) |
//! | `allow_docker_socket` | False | binding a Docker/containerd socket, or a directory holding one, that lies under an allowed prefix. Without it, such a path is allowed only when listed exactly in `allowed_host_paths` |
//! | `allow_named_volumes` | False | named volumes (host-wide: shared by name across projects), `VolumeDriver`, volume driver options of `Mounts` (the local driver's `o=bind` reaches host paths) |
//! | `allow_devices` | False | `Devices`, `DeviceRequests` (GPUs), `DeviceCgroupRules` |
//! | `allowed_capabilities` | (empty) | these `CapAdd` capabilities (`ALL` only when listed) |
//! | `allow_host_namespaces` | False | `host` network, PID, IPC, UTS, user, cgroup namespaces |
//! | `allow_container_namespaces` | False | joining another container's namespaces (`container:<x>`); the target is checked like a link |
//! | `allow_unconfined_security_opts` | False | `SecurityOpt` other than `no-new-privileges` (seccomp/AppArmor/SELinux profiles or `unconfined`, `systempaths=unconfined`), `MaskedPaths`, `ReadonlyPaths`, `Annotations` (read by some OCI runtimes) |
//! | `allow_sysctls` | False | `Sysctls` |
//! | `allow_cross_project_links` | False | `Links`, `VolumesFrom` (and `container:<x>` modes) naming a container that is not an instance of the same project |
//! | `allow_host_resource_overrides` | False | `CgroupParent`, `OomKillDisable: true`, negative `OomScoreAdj`, `Ulimits`, `PidsLimit` <= 0 (unlimited), real-time CPU (`CpuRealtimePeriod`/`Runtime`) |
//! | `allowed_runtimes` | (empty) | these OCI `Runtime`s |
//! | `allow_log_drivers` | False | `LogConfig` types other than json-file, local, none (a log driver connects out from the host) |
//! | `allow_port_bindings` | True | `PortBindings`, `PublishAllPorts` (host ports on the host's addresses, outside Neutron's security groups) |
//! | `policy_admin_bypass` | False | requests with an admin context skip the policy (what it would have refused is logged) |
//!
//! Always refused (no option): a link or volume source that does not exist,
//! `AutoRemove` (Nova manages the container's lifecycle), `NetworkingConfig`
//! and network modes other than bridge/default/none/host/container (Nova wires
//! networks from the Neutron ports), Nova's own labels (`org.openstack.nova.*`),
//! mounts of type other than bind, volume, tmpfs.
//!
//! Allowed because they stay inside the container or its own limits: `CapDrop`,
//! `Dns*`, `ExtraHosts`, `GroupAdd`, `ReadonlyRootfs`, `Tmpfs`, `ShmSize`,
//! `Init`, `RestartPolicy`, `Blkio*`, `Cpuset*`, memory and CPU values (capped
//! to the flavor by the driver), `IpcMode` private/shareable/none,
//! `no-new-privileges`, healthchecks, `StorageOpt`.
//!
//! For example, an operator who shares one data directory and lets tenants
//! add `NET_ADMIN` (which acts inside the container's own network namespace):
//!
//! ```ini
//! [docker]
//! allowed_host_paths = /srv/shared
//! allowed_capabilities = NET_ADMIN
//! ```
//!
//! Host paths are resolved on this machine (the Docker engine is local); a
//! symlink changed between the check and the container's start is not caught.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bollard::models::{HostConfig, HostConfigCgroupnsModeEnum, MountTypeEnum};
use thiserror::Error;

use super::normalize::{parse_bind, BindSource};
use super::{UserOptions, Vocabulary};
use crate::config::{ConfigError, Ini};
use crate::context::RequestContext;
use crate::virt::{LABEL_MANAGED_BY, LABEL_PROJECT_ID, MANAGED_BY};

/// Runtime sockets whose bind gives control of every container on the host.
const RUNTIME_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/docker/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
];

/// Labels under this prefix are Nova's.
const NOVA_LABEL_PREFIX: &str = "org.openstack.nova.";

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

/// Who asks: the instance's project, and whether the request is an admin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyContext {
    pub project_id: String,
    pub is_admin: bool,
}

impl PolicyContext {
    pub fn new(project_id: impl Into<String>, is_admin: bool) -> Self {
        PolicyContext {
            project_id: project_id.into(),
            is_admin,
        }
    }

    /// For an instance of `instance_project_id` built by `ctx`.
    pub fn from_request(ctx: &RequestContext, instance_project_id: &str) -> Self {
        Self::new(instance_project_id, ctx.is_admin)
    }
}

/// Whose a container named by a link, `VolumesFrom` or `container:<x>` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetOwner {
    /// No such container.
    Missing,
    /// A container that is not one of Nova's instances.
    NotAnInstance,
    /// A Nova instance (labelled managed-by nova-docker) of this project
    /// (`None` when the label is missing).
    Instance { project_id: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    #[error("cannot look up container {name}: {reason}")]
    Failed { name: String, reason: String },
}

/// Finds out whose a container is, by name or id.
#[async_trait]
pub trait ContainerLookup: Send + Sync {
    async fn owner(&self, name_or_id: &str) -> Result<TargetOwner, LookupError>;
}

#[async_trait]
impl ContainerLookup for bollard::Docker {
    async fn owner(&self, name_or_id: &str) -> Result<TargetOwner, LookupError> {
        if name_or_id.is_empty() || name_or_id.contains(['/', '?', '#', '%']) {
            return Ok(TargetOwner::Missing);
        }
        match self
            .inspect_container(
                name_or_id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(c) => {
                let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
                if labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY) {
                    Ok(TargetOwner::Instance {
                        project_id: labels.get(LABEL_PROJECT_ID).cloned(),
                    })
                } else {
                    Ok(TargetOwner::NotAnInstance)
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(TargetOwner::Missing),
            Err(e) => Err(LookupError::Failed {
                name: name_or_id.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// One refused option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The option as the user wrote it (`HostConfig.CapAdd`, `volumes`).
    pub option: String,
    /// The offending value (a host path, a capability, a mode).
    pub value: String,
    /// Why, in words a user understands.
    pub reason: String,
    /// The `[docker]` option that would allow it, if one does.
    pub allowed_by: Option<&'static str>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} is refused: {}",
            self.option, self.value, self.reason
        )?;
        match self.allowed_by {
            Some(o) => write!(f, " (the operator may allow it with [docker] {o})."),
            None => write!(f, "."),
        }
    }
}

/// Everything the policy refused, in the order of the options.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct PolicyViolation {
    pub refusals: Vec<Refusal>,
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the container options in user_data are not allowed on this host: "
        )?;
        for (i, r) in self.refusals.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

struct Checker<'a> {
    policy: &'a Policy,
    ctx: &'a PolicyContext,
    vocabulary: Option<Vocabulary>,
    out: Vec<Refusal>,
}

impl Checker<'_> {
    /// The name of a HostConfig field in the user's vocabulary.
    fn hc_name(&self, field: &str) -> String {
        match self.vocabulary {
            Some(Vocabulary::Short) => {
                let short = match field {
                    "Binds" => Some("volumes"),
                    "VolumesFrom" => Some("volumes_from"),
                    "PortBindings" => Some("ports"),
                    _ => None,
                };
                match short {
                    Some(s) => format!("{s} (HostConfig.{field})"),
                    None => format!("host_config.{field}"),
                }
            }
            _ => format!("HostConfig.{field}"),
        }
    }

    fn refuse(
        &mut self,
        option: String,
        value: impl Into<String>,
        reason: impl Into<String>,
        allowed_by: Option<&'static str>,
    ) {
        self.out.push(Refusal {
            option,
            value: value.into(),
            reason: reason.into(),
            allowed_by,
        });
    }

    fn refuse_hc(
        &mut self,
        field: &str,
        value: impl Into<String>,
        reason: impl Into<String>,
        allowed_by: Option<&'static str>,
    ) {
        let option = self.hc_name(field);
        self.refuse(option, value, reason, allowed_by);
    }

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

    fn host_path(&mut self, field: &str, raw: &str) {
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

    fn namespace_mode(
        &mut self,
        field: &str,
        value: &str,
        fine: &[&str],
        targets: &mut Vec<(String, String, bool)>,
    ) {
        if fine.contains(&value) {
            return;
        }
        if value == "host" {
            if !self.policy.allow_host_namespaces {
                self.refuse_hc(
                    field,
                    "host",
                    "sharing the host's namespace gives the container a view of (and a hand on) the host",
                    Some("allow_host_namespaces"),
                );
            }
            return;
        }
        if let Some(target) = value.strip_prefix("container:") {
            if self.policy.allow_container_namespaces {
                targets.push((field.to_string(), target.to_string(), true));
            } else {
                self.refuse_hc(
                    field,
                    value,
                    "joining another container's namespace lets the instance see into that container",
                    Some("allow_container_namespaces"),
                );
            }
            return;
        }
        if field == "NetworkMode" {
            self.refuse_hc(
                field,
                value,
                "the instance's networks are wired by Nova from its Neutron ports",
                None,
            );
        } else {
            self.refuse_hc(
                field,
                value,
                format!("it is not a known {field} value"),
                None,
            );
        }
    }

    fn security_opt(&mut self, field: &str, opt: &str) {
        let norm = opt.replacen(':', "=", 1);
        let (k, v) = norm.split_once('=').unwrap_or((norm.as_str(), ""));
        if k == "no-new-privileges" && matches!(v, "" | "true" | "false") {
            return;
        }
        if self.policy.allow_unconfined_security_opts {
            return;
        }
        let reason = match (k, v) {
            ("seccomp", "unconfined") => "it turns off the seccomp system call filter",
            ("apparmor", "unconfined") => "it turns off AppArmor confinement",
            ("label", "disable") => "it turns off SELinux separation",
            ("seccomp", _) => "it replaces the default seccomp profile",
            ("apparmor", _) => "it replaces the default AppArmor profile",
            ("label", _) => "it changes the SELinux label of the container",
            ("systempaths", _) => "it unmasks the kernel's /proc and /sys paths",
            ("writable-cgroups", _) => "it makes the cgroup file system writable",
            _ => "it is not a security option this host knows to be safe",
        };
        self.refuse_hc(field, opt, reason, Some("allow_unconfined_security_opts"));
    }

    fn host_config(&mut self, h: &HostConfig, targets: &mut Vec<(String, String, bool)>) {
        let p = self.policy;
        if h.privileged == Some(true) && !p.allow_privileged {
            self.refuse_hc(
                "Privileged",
                "true",
                "a privileged container has every capability and the host's devices",
                Some("allow_privileged"),
            );
        }
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
                Some(MountTypeEnum::BIND) => {
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
                Some(MountTypeEnum::VOLUME) | None | Some(MountTypeEnum::EMPTY) => {
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
                Some(MountTypeEnum::TMPFS) => {}
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
        if !p.allow_devices {
            for d in h.devices.iter().flatten() {
                let v = d.path_on_host.clone().unwrap_or_default();
                self.refuse_hc(
                    "Devices",
                    v,
                    "host devices are not passed to instances",
                    Some("allow_devices"),
                );
            }
            if h.device_requests.as_ref().is_some_and(|r| !r.is_empty()) {
                self.refuse_hc(
                    "DeviceRequests",
                    "(GPU or other device request)",
                    "host devices are not passed to instances",
                    Some("allow_devices"),
                );
            }
            for r in h.device_cgroup_rules.iter().flatten() {
                self.refuse_hc(
                    "DeviceCgroupRules",
                    r.clone(),
                    "it opens host devices to the container",
                    Some("allow_devices"),
                );
            }
        }
        for c in h.cap_add.iter().flatten() {
            let name = capability_name(c);
            if !p.allowed_capabilities.contains(&name) {
                let reason = if name == "ALL" {
                    "it grants every capability".to_string()
                } else {
                    format!("the capability CAP_{name} is not granted to instances on this host")
                };
                self.refuse_hc("CapAdd", c.clone(), reason, Some("allowed_capabilities"));
            }
        }
        let modes: [(&str, Option<&String>, &[&str]); 5] = [
            (
                "NetworkMode",
                h.network_mode.as_ref(),
                &["", "default", "bridge", "none"],
            ),
            ("PidMode", h.pid_mode.as_ref(), &[""]),
            (
                "IpcMode",
                h.ipc_mode.as_ref(),
                &["", "none", "private", "shareable"],
            ),
            ("UTSMode", h.uts_mode.as_ref(), &[""]),
            ("UsernsMode", h.userns_mode.as_ref(), &["", "private"]),
        ];
        for (field, v, fine) in modes {
            if let Some(v) = v {
                self.namespace_mode(field, v, fine, targets);
            }
        }
        if let Some(c) = h.cgroup.as_ref() {
            self.namespace_mode("Cgroup", c, &[""], targets);
        }
        if h.cgroupns_mode == Some(HostConfigCgroupnsModeEnum::HOST) {
            self.namespace_mode("CgroupnsMode", "host", &[], targets);
        }
        for o in h.security_opt.iter().flatten() {
            self.security_opt("SecurityOpt", o);
        }
        if !p.allow_unconfined_security_opts {
            if let Some(a) = h.annotations.as_ref().filter(|a| !a.is_empty()) {
                let mut keys: Vec<&String> = a.keys().collect();
                keys.sort();
                for k in keys {
                    self.refuse_hc(
                        "Annotations",
                        k.clone(),
                        "OCI runtime annotations can change how the runtime confines the container",
                        Some("allow_unconfined_security_opts"),
                    );
                }
            }
            for (field, v) in [
                ("MaskedPaths", &h.masked_paths),
                ("ReadonlyPaths", &h.readonly_paths),
            ] {
                if let Some(v) = v {
                    self.refuse_hc(
                        field,
                        format!("{v:?}"),
                        "it changes which kernel paths are hidden or read-only",
                        Some("allow_unconfined_security_opts"),
                    );
                }
            }
        }
        if !p.allow_sysctls {
            if let Some(s) = h.sysctls.as_ref().filter(|s| !s.is_empty()) {
                let mut keys: Vec<&String> = s.keys().collect();
                keys.sort();
                for k in keys {
                    self.refuse_hc(
                        "Sysctls",
                        format!("{k}={}", s[k]),
                        "kernel parameters are set by the operator",
                        Some("allow_sysctls"),
                    );
                }
            }
        }
        for l in h.links.iter().flatten() {
            let name = l.split(':').next().unwrap_or("").trim_start_matches('/');
            targets.push(("Links".into(), name.to_string(), false));
        }
        for v in h.volumes_from.iter().flatten() {
            let name = v.split(':').next().unwrap_or("");
            targets.push(("VolumesFrom".into(), name.to_string(), false));
        }
        if !p.allow_host_resource_overrides {
            const WHY: Option<&str> = Some("allow_host_resource_overrides");
            if let Some(c) = h.cgroup_parent.as_deref().filter(|c| !c.is_empty()) {
                self.refuse_hc(
                    "CgroupParent",
                    c,
                    "it moves the container out of the cgroup that limits it",
                    WHY,
                );
            }
            if h.oom_kill_disable == Some(true) {
                self.refuse_hc(
                    "OomKillDisable",
                    "true",
                    "an instance out of memory would take the host's memory with it",
                    WHY,
                );
            }
            if let Some(s) = h.oom_score_adj.filter(|s| *s < 0) {
                self.refuse_hc(
                    "OomScoreAdj",
                    s.to_string(),
                    "a negative score makes the kernel kill host processes before the instance",
                    WHY,
                );
            }
            for u in h.ulimits.iter().flatten() {
                let v = format!(
                    "{}={}:{}",
                    u.name.clone().unwrap_or_default(),
                    u.soft.unwrap_or_default(),
                    u.hard.unwrap_or_default()
                );
                self.refuse_hc("Ulimits", v, "resource limits are set by the operator", WHY);
            }
            if let Some(n) = h.pids_limit.filter(|n| *n <= 0) {
                self.refuse_hc(
                    "PidsLimit",
                    n.to_string(),
                    "an unlimited process count lets the instance exhaust the host's",
                    WHY,
                );
            }
            for (field, v) in [
                ("CpuRealtimePeriod", h.cpu_realtime_period),
                ("CpuRealtimeRuntime", h.cpu_realtime_runtime),
            ] {
                if let Some(v) = v.filter(|v| *v > 0) {
                    self.refuse_hc(
                        field,
                        v.to_string(),
                        "real-time scheduling can starve the host",
                        WHY,
                    );
                }
            }
        }
        if let Some(r) = h.runtime.as_deref().filter(|r| !r.is_empty()) {
            if !p.allowed_runtimes.iter().any(|a| a == r) {
                self.refuse_hc(
                    "Runtime",
                    r,
                    "the container runtime is chosen by the operator",
                    Some("allowed_runtimes"),
                );
            }
        }
        if let Some(t) = h.log_config.as_ref().and_then(|l| l.typ.as_deref()) {
            if !matches!(t, "" | "json-file" | "local" | "none") && !p.allow_log_drivers {
                self.refuse_hc(
                    "LogConfig",
                    format!("type {t}"),
                    "log drivers connect out from the host itself",
                    Some("allow_log_drivers"),
                );
            }
        }
        if !p.allow_port_bindings {
            if let Some(pb) = h.port_bindings.as_ref() {
                let mut keys: Vec<&String> = pb
                    .iter()
                    .filter(|(_, v)| v.as_ref().is_some_and(|v| !v.is_empty()))
                    .map(|(k, _)| k)
                    .collect();
                keys.sort();
                for k in keys {
                    self.refuse_hc(
                        "PortBindings",
                        k.clone(),
                        "publishing ports on the host bypasses the instance's security groups",
                        Some("allow_port_bindings"),
                    );
                }
            }
            if h.publish_all_ports == Some(true) {
                self.refuse_hc(
                    "PublishAllPorts",
                    "true",
                    "publishing ports on the host bypasses the instance's security groups",
                    Some("allow_port_bindings"),
                );
            }
        }
        if h.auto_remove == Some(true) {
            self.refuse_hc("AutoRemove", "true", "Nova manages the container's lifecycle; a removed container would lose the instance", None);
        }
    }

    async fn target(
        &mut self,
        field: &str,
        name: &str,
        is_namespace: bool,
        lookup: &dyn ContainerLookup,
    ) {
        let what = if is_namespace {
            "the namespace owner"
        } else {
            "the container"
        };
        match lookup.owner(name).await {
            Ok(TargetOwner::Missing) => self.refuse_hc(
                field,
                name,
                format!("{what} {name:?} does not exist on this host"),
                None,
            ),
            Ok(TargetOwner::NotAnInstance) => {
                if !self.policy.allow_cross_project_links {
                    self.refuse_hc(
                        field,
                        name,
                        format!(
                            "{what} {name:?} is not an instance of project {}",
                            self.ctx.project_id
                        ),
                        Some("allow_cross_project_links"),
                    );
                }
            }
            Ok(TargetOwner::Instance { project_id }) => {
                if project_id.as_deref() != Some(self.ctx.project_id.as_str())
                    && !self.policy.allow_cross_project_links
                {
                    self.refuse_hc(
                        field,
                        name,
                        format!("{what} {name:?} is an instance of another project"),
                        Some("allow_cross_project_links"),
                    );
                }
            }
            Err(e) => self.refuse_hc(field, name, format!("it could not be checked ({e})"), None),
        }
    }
}

impl Policy {
    /// Check options against the policy; every refusal is collected.
    pub async fn check(
        &self,
        opts: &UserOptions,
        ctx: &PolicyContext,
        lookup: &dyn ContainerLookup,
    ) -> Result<(), PolicyViolation> {
        let mut c = Checker {
            policy: self,
            ctx,
            vocabulary: opts.vocabulary,
            out: Vec::new(),
        };
        let body = &opts.body;
        let mut targets = Vec::new();
        if let Some(h) = &body.host_config {
            c.host_config(h, &mut targets);
        }
        if let Some(labels) = &body.labels {
            let mut keys: Vec<&String> = labels
                .keys()
                .filter(|k| k.starts_with(NOVA_LABEL_PREFIX))
                .collect();
            keys.sort();
            for k in keys {
                c.refuse(
                    "Labels".into(),
                    k.clone(),
                    "labels under org.openstack.nova. are Nova's own",
                    None,
                );
            }
        }
        if body
            .networking_config
            .as_ref()
            .is_some_and(|n| n.endpoints_config.as_ref().is_some_and(|e| !e.is_empty()))
        {
            let mut names: Vec<String> = body
                .networking_config
                .iter()
                .flat_map(|n| n.endpoints_config.iter().flat_map(|e| e.keys().cloned()))
                .collect();
            names.sort();
            c.refuse(
                "NetworkingConfig".into(),
                names.join(", "),
                "the instance's networks are wired by Nova from its Neutron ports",
                None,
            );
        }
        for (field, name, ns) in targets {
            c.target(&field, &name, ns, lookup).await;
        }
        if c.out.is_empty() {
            return Ok(());
        }
        let violation = PolicyViolation { refusals: c.out };
        if ctx.is_admin && self.admin_bypass {
            tracing::warn!(
                project_id = %ctx.project_id,
                refused = %violation,
                "admin request: user_data container policy bypassed ([docker] policy_admin_bypass)"
            );
            return Ok(());
        }
        Err(violation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userdata::decode_raw;
    use std::collections::HashMap;

    struct Fake(HashMap<String, TargetOwner>);

    #[async_trait]
    impl ContainerLookup for Fake {
        async fn owner(&self, name: &str) -> Result<TargetOwner, LookupError> {
            if name == "broken" {
                return Err(LookupError::Failed {
                    name: name.into(),
                    reason: "engine down".into(),
                });
            }
            Ok(self.0.get(name).cloned().unwrap_or(TargetOwner::Missing))
        }
    }

    fn fake() -> Fake {
        Fake(HashMap::from([
            (
                "mine".to_string(),
                TargetOwner::Instance {
                    project_id: Some("p1".into()),
                },
            ),
            (
                "theirs".to_string(),
                TargetOwner::Instance {
                    project_id: Some("p2".into()),
                },
            ),
            ("plain".to_string(), TargetOwner::NotAnInstance),
        ]))
    }

    fn ctx() -> PolicyContext {
        PolicyContext::new("p1", false)
    }

    fn opts(text: &str) -> UserOptions {
        decode_raw(text.as_bytes()).unwrap().unwrap()
    }

    fn check(p: &Policy, text: &str) -> Result<(), PolicyViolation> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(p.check(&opts(text), &ctx(), &fake()))
    }

    fn policy(conf: &str) -> Policy {
        let mut i = Ini::default();
        i.merge_text(&format!("[docker]\n{conf}\n"), Path::new("nova.conf"))
            .unwrap();
        Policy::from_ini(&i).unwrap()
    }

    /// Every refused option, one by one, under the default policy: (user_data,
    /// text the refusal must contain, the [docker] option that allows it).
    const REFUSED: &[(&str, &str, &str)] = &[
        (
            r#"{"HostConfig": {"Privileged": true}}"#,
            "HostConfig.Privileged true",
            "allow_privileged",
        ),
        (
            r#"{"HostConfig": {"Binds": ["/etc:/x"]}}"#,
            "host path /etc",
            "allowed_host_paths",
        ),
        (
            r#"{"HostConfig": {"Binds": ["/var/run/docker.sock:/s"]}}"#,
            "docker.sock",
            "allow_docker_socket",
        ),
        (
            r#"{"HostConfig": {"Binds": ["vol:/x"]}}"#,
            "named volume vol",
            "allow_named_volumes",
        ),
        (
            r#"{"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}]}}"#,
            "HostConfig.Mounts host path /etc",
            "allowed_host_paths",
        ),
        (
            r#"{"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"o": "bind", "device": "/etc"}}}}]}}"#,
            "volume options",
            "allow_named_volumes",
        ),
        (
            r#"{"HostConfig": {"VolumeDriver": "nfs"}}"#,
            "VolumeDriver nfs",
            "allow_named_volumes",
        ),
        (
            r#"{"HostConfig": {"Devices": ["/dev/sda"]}}"#,
            "Devices /dev/sda",
            "allow_devices",
        ),
        (
            r#"{"HostConfig": {"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]}}"#,
            "DeviceRequests",
            "allow_devices",
        ),
        (
            r#"{"HostConfig": {"DeviceCgroupRules": ["c 1:3 mr"]}}"#,
            "DeviceCgroupRules c 1:3 mr",
            "allow_devices",
        ),
        (
            r#"{"HostConfig": {"CapAdd": ["NET_ADMIN"]}}"#,
            "CapAdd NET_ADMIN",
            "allowed_capabilities",
        ),
        (
            r#"{"HostConfig": {"CapAdd": ["ALL"]}}"#,
            "every capability",
            "allowed_capabilities",
        ),
        (
            r#"{"HostConfig": {"NetworkMode": "host"}}"#,
            "NetworkMode host",
            "allow_host_namespaces",
        ),
        (
            r#"{"HostConfig": {"PidMode": "host"}}"#,
            "PidMode host",
            "allow_host_namespaces",
        ),
        (
            r#"{"HostConfig": {"IpcMode": "host"}}"#,
            "IpcMode host",
            "allow_host_namespaces",
        ),
        (
            r#"{"HostConfig": {"UTSMode": "host"}}"#,
            "UTSMode host",
            "allow_host_namespaces",
        ),
        (
            r#"{"HostConfig": {"UsernsMode": "host"}}"#,
            "UsernsMode host",
            "allow_host_namespaces",
        ),
        (
            r#"{"HostConfig": {"CgroupnsMode": "host"}}"#,
            "CgroupnsMode host",
            "allow_host_namespaces",
        ),
        (
            r#"{"HostConfig": {"NetworkMode": "container:mine"}}"#,
            "NetworkMode container:mine",
            "allow_container_namespaces",
        ),
        (
            r#"{"HostConfig": {"PidMode": "container:mine"}}"#,
            "PidMode container:mine",
            "allow_container_namespaces",
        ),
        (
            r#"{"HostConfig": {"IpcMode": "container:mine"}}"#,
            "IpcMode container:mine",
            "allow_container_namespaces",
        ),
        (
            r#"{"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}}"#,
            "seccomp",
            "allow_unconfined_security_opts",
        ),
        (
            r#"{"HostConfig": {"SecurityOpt": ["apparmor:unconfined"]}}"#,
            "AppArmor",
            "allow_unconfined_security_opts",
        ),
        (
            r#"{"HostConfig": {"SecurityOpt": ["label=disable"]}}"#,
            "SELinux",
            "allow_unconfined_security_opts",
        ),
        (
            r#"{"HostConfig": {"SecurityOpt": ["systempaths=unconfined"]}}"#,
            "/proc",
            "allow_unconfined_security_opts",
        ),
        (
            r#"{"SecurityOpts": ["seccomp=/tmp/p.json"]}"#,
            "seccomp profile",
            "allow_unconfined_security_opts",
        ),
        (
            r#"{"HostConfig": {"MaskedPaths": []}}"#,
            "MaskedPaths",
            "allow_unconfined_security_opts",
        ),
        (
            r#"{"HostConfig": {"ReadonlyPaths": []}}"#,
            "ReadonlyPaths",
            "allow_unconfined_security_opts",
        ),
        (
            r#"{"HostConfig": {"Annotations": {"run.oci.keep_original_groups": "1"}}}"#,
            "Annotations run.oci",
            "allow_unconfined_security_opts",
        ),
        (
            r#"{"HostConfig": {"Sysctls": {"net.ipv4.ip_forward": "1"}}}"#,
            "Sysctls net.ipv4.ip_forward=1",
            "allow_sysctls",
        ),
        (
            r#"{"HostConfig": {"Links": ["theirs:db"]}}"#,
            "another project",
            "allow_cross_project_links",
        ),
        (
            r#"{"HostConfig": {"Links": ["plain:db"]}}"#,
            "not an instance of project p1",
            "allow_cross_project_links",
        ),
        (
            r#"{"HostConfig": {"VolumesFrom": ["theirs:ro"]}}"#,
            "HostConfig.VolumesFrom theirs",
            "allow_cross_project_links",
        ),
        (
            r#"{"HostConfig": {"CgroupParent": "/"}}"#,
            "CgroupParent",
            "allow_host_resource_overrides",
        ),
        (
            r#"{"HostConfig": {"OomKillDisable": true}}"#,
            "OomKillDisable",
            "allow_host_resource_overrides",
        ),
        (
            r#"{"HostConfig": {"OomScoreAdj": -1000}}"#,
            "OomScoreAdj -1000",
            "allow_host_resource_overrides",
        ),
        (
            r#"{"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1048576, "Hard": 1048576}]}}"#,
            "Ulimits nofile",
            "allow_host_resource_overrides",
        ),
        (
            r#"{"HostConfig": {"PidsLimit": -1}}"#,
            "PidsLimit -1",
            "allow_host_resource_overrides",
        ),
        (
            r#"{"HostConfig": {"CpuRealtimeRuntime": 950000}}"#,
            "CpuRealtimeRuntime",
            "allow_host_resource_overrides",
        ),
        (
            r#"{"HostConfig": {"Runtime": "runsc"}}"#,
            "Runtime runsc",
            "allowed_runtimes",
        ),
        (
            r#"{"HostConfig": {"LogConfig": {"Type": "syslog", "Config": {"syslog-address": "tcp://10.0.0.1:514"}}}}"#,
            "LogConfig type syslog",
            "allow_log_drivers",
        ),
    ];

    /// Refused whatever the operator allows.
    const ALWAYS_REFUSED: &[(&str, &str)] = &[
        (
            r#"{"HostConfig": {"Links": ["ghost:db"]}}"#,
            "\"ghost\" does not exist",
        ),
        (
            r#"{"HostConfig": {"VolumesFrom": ["ghost"]}}"#,
            "\"ghost\" does not exist",
        ),
        (r#"{"HostConfig": {"Links": ["broken"]}}"#, "engine down"),
        (r#"{"HostConfig": {"AutoRemove": true}}"#, "AutoRemove"),
        (
            r#"{"HostConfig": {"NetworkMode": "tenant-b-net"}}"#,
            "Neutron",
        ),
        (
            r#"{"NetworkingConfig": {"EndpointsConfig": {"host": {}}}}"#,
            "NetworkingConfig host",
        ),
        (
            r#"{"Labels": {"org.openstack.nova.project-id": "p2"}}"#,
            "Nova's own",
        ),
        (
            r#"{"HostConfig": {"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/x"}]}}"#,
            "type npipe",
        ),
    ];

    #[test]
    fn each_option_refused_by_default_and_allowed_by_its_setting() {
        let default = Policy::default();
        for (text, needle, setting) in REFUSED {
            let e = check(&default, text).expect_err(text);
            let msg = e.to_string();
            assert_eq!(e.refusals.len(), 1, "{text}: {msg}");
            assert!(msg.contains(needle), "{text}: {needle:?} not in {msg}");
            assert!(msg.contains(setting), "{text}: {setting} not in {msg}");
            let allow = match *setting {
                "allowed_host_paths" => "allowed_host_paths = /etc".to_string(),
                "allow_docker_socket" => "allowed_host_paths = /var/run/docker.sock".to_string(),
                "allowed_capabilities" => "allowed_capabilities = NET_ADMIN, ALL".to_string(),
                "allowed_runtimes" => "allowed_runtimes = runsc".to_string(),
                "allow_container_namespaces" => "allow_container_namespaces = True".to_string(),
                s => format!("{s} = True"),
            };
            let p = policy(&allow);
            assert_eq!(check(&p, text), Ok(()), "{text} with {allow}");
        }
    }

    #[test]
    fn always_refused() {
        let all = policy(
            "allow_privileged=True\nallowed_host_paths=/\nallow_docker_socket=True\nallow_named_volumes=True\nallow_devices=True\nallow_host_namespaces=True\nallow_container_namespaces=True\nallow_unconfined_security_opts=True\nallow_sysctls=True\nallow_cross_project_links=True\nallow_host_resource_overrides=True\nallow_log_drivers=True",
        );
        for (text, needle) in ALWAYS_REFUSED {
            let e = check(&all, text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {needle:?} not in {e}");
            let e = check(&Policy::default(), text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {needle:?} not in {e}");
        }
    }

    #[test]
    fn harmless_options_pass_by_default() {
        for text in [
            r#"{"HostConfig": {"CapDrop": ["ALL"], "Dns": ["1.1.1.1"], "ReadonlyRootfs": true, "Tmpfs": {"/run": ""}, "Init": true, "RestartPolicy": {"Name": "always"}, "IpcMode": "shareable", "NetworkMode": "bridge", "SecurityOpt": ["no-new-privileges"], "PidsLimit": 100, "OomScoreAdj": 500, "Links": ["mine:db"], "VolumesFrom": ["mine:ro"], "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}, "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}, "Mounts": [{"Type": "tmpfs", "Target": "/scratch"}]}}"#,
            "volumes: [/data]\nenvironment: {A: b}\ncommand: sleep 1\n",
        ] {
            assert_eq!(check(&Policy::default(), text), Ok(()), "{text}");
        }
    }

    #[test]
    fn all_violations_collected_and_named_in_the_users_words() {
        let e = check(
            &Policy::default(),
            include_str!("../../tests/fixtures/userdata/horizon-docker-create-body.json"),
        )
        .unwrap_err();
        let options: Vec<&str> = e.refusals.iter().map(|r| r.option.as_str()).collect();
        assert!(options.contains(&"HostConfig.Binds"), "{e}");
        assert!(options.contains(&"HostConfig.CapAdd"), "{e}");
        assert!(options.contains(&"HostConfig.Links"), "{e}");
        assert_eq!(
            options
                .iter()
                .filter(|o| **o == "HostConfig.VolumesFrom")
                .count(),
            2,
            "{e}"
        );
        let e = check(
            &Policy::default(),
            include_str!("../../tests/fixtures/userdata/short-keys.yaml"),
        )
        .unwrap_err();
        assert_eq!(e.refusals[0].option, "volumes (HostConfig.Binds)");
        assert!(e.refusals[0].value.contains("/var/run/docker.sock"), "{e}");
        let e = check(&Policy::default(), "host_config: {privileged: true}").unwrap_err();
        assert_eq!(e.refusals[0].option, "host_config.Privileged");
    }

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

    #[test]
    fn admin_bypass_and_config_errors() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let o = opts(r#"{"HostConfig": {"Privileged": true}}"#);
        let admin = PolicyContext::new("p1", true);
        assert!(rt
            .block_on(Policy::default().check(&o, &admin, &fake()))
            .is_err());
        let p = policy("policy_admin_bypass = True");
        assert!(rt.block_on(p.check(&o, &admin, &fake())).is_ok());
        assert!(rt.block_on(p.check(&o, &ctx(), &fake())).is_err());
        let mut i = Ini::default();
        i.merge_text(
            "[docker]\nallowed_host_paths = relative/path\n",
            Path::new("nova.conf"),
        )
        .unwrap();
        let e = Policy::from_ini(&i).unwrap_err().to_string();
        assert!(
            e.contains("nova.conf:2") && e.contains("allowed_host_paths"),
            "{e}"
        );
        assert_eq!(
            Policy::from_ini(&Ini::default()).unwrap(),
            Policy::default()
        );
        assert_eq!(
            policy("allowed_capabilities = cap_net_admin").allowed_capabilities,
            ["NET_ADMIN"]
        );
    }

    #[test]
    fn violation_to_nova_exception() {
        let e = check(
            &Policy::default(),
            r#"{"HostConfig": {"Privileged": true, "CapAdd": ["SYS_ADMIN"]}}"#,
        )
        .unwrap_err();
        let n: crate::exception::NovaException = e.clone().into();
        assert_eq!(n.class, "InstanceDeployFailure");
        assert!(
            n.message.contains("Privileged") && n.message.contains("SYS_ADMIN"),
            "{}",
            n.message
        );
        assert_eq!(n.kwargs["refused_options"].as_array().unwrap().len(), 2);
        let a = e.to_build_abort("u-1");
        assert!(a.message.contains("SYS_ADMIN"));
    }
}
