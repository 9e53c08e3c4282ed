//! Namespaces and other containers: the `*Mode` fields, `Cgroup`,
//! `CgroupnsMode`, and the containers named by `Links`, `VolumesFrom` and
//! `container:<x>` (looked up: missing, not an instance, another project's).

use super::check::Checker;
use super::context::{ContainerLookup, TargetOwner};
use crate::userdata::{CgroupnsMode, HostOptions};

/// A container to look up: the field naming it, its name, and whether it is
/// a namespace owner (`container:<x>`) rather than a link or volume source.
pub(super) type Target = (String, String, bool);

impl Checker<'_> {
    fn namespace_mode(
        &mut self,
        field: &str,
        value: &str,
        fine: &[&str],
        targets: &mut Vec<Target>,
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

    pub(super) fn namespaces(&mut self, h: &HostOptions, targets: &mut Vec<Target>) {
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
        if h.cgroupns_mode == Some(CgroupnsMode::Host) {
            self.namespace_mode("CgroupnsMode", "host", &[], targets);
        }
    }

    pub(super) fn link_targets(&mut self, h: &HostOptions, targets: &mut Vec<Target>) {
        for l in h.links.iter().flatten() {
            let name = l.split(':').next().unwrap_or("").trim_start_matches('/');
            targets.push(("Links".into(), name.to_string(), false));
        }
        for v in h.volumes_from.iter().flatten() {
            let name = v.split(':').next().unwrap_or("");
            targets.push(("VolumesFrom".into(), name.to_string(), false));
        }
    }

    pub(super) async fn target(
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
