//! The checker: runs the rules of every area in the order of the options,
//! and names each refused option in the user's own vocabulary.

use super::context::{ContainerLookup, PolicyContext};
use super::namespaces::Target;
use super::refusal::{PolicyViolation, Refusal};
use super::Policy;
use crate::userdata::{HostOptions, UserOptions, Vocabulary};

/// Labels under this prefix are Nova's.
const NOVA_LABEL_PREFIX: &str = "org.openstack.nova.";

pub(super) struct Checker<'a> {
    pub(super) policy: &'a Policy,
    pub(super) ctx: &'a PolicyContext,
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

    pub(super) fn refuse(
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

    pub(super) fn refuse_hc(
        &mut self,
        field: &str,
        value: impl Into<String>,
        reason: impl Into<String>,
        allowed_by: Option<&'static str>,
    ) {
        let option = self.hc_name(field);
        self.refuse(option, value, reason, allowed_by);
    }

    /// Every rule on HostConfig, in the order of its options. Links,
    /// `VolumesFrom` and `container:<x>` targets are collected for the lookup.
    fn host_config(&mut self, h: &HostOptions, targets: &mut Vec<Target>) {
        self.privileged(h);
        self.mounts(h);
        self.devices(h);
        self.capabilities(h);
        self.namespaces(h, targets);
        self.confinement(h);
        self.link_targets(h, targets);
        self.resources(h);
        self.log_driver(h);
        self.port_bindings(h);
        if h.auto_remove == Some(true) {
            self.refuse_hc("AutoRemove", "true", "Nova manages the container's lifecycle; a removed container would lose the instance", None);
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
    use std::path::Path;

    use super::super::tests::{ctx, fake, opts, policy};
    use super::*;
    use crate::config::Ini;

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
}
