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
//!
//! The rules are grouped by area (`mounts`: host paths and volumes,
//! `privileges`, `devices`, `namespaces` and other containers, `resources`,
//! `network`); `check` runs them in the order of the options and collects
//! the [`Refusal`]s.

mod check;
mod config;
mod context;
mod devices;
mod mounts;
mod namespaces;
mod network;
mod privileges;
mod refusal;
mod resources;
#[cfg(test)]
mod tests;

pub use config::{capability_name, Policy};
pub use context::{ContainerLookup, LookupError, PolicyContext, TargetOwner};
pub use mounts::normalize_path;
pub use refusal::{PolicyViolation, Refusal};
