//! What reaches past the instance's Neutron ports: log drivers (they connect
//! out from the host) and ports published on the host's addresses.

use super::check::Checker;
use crate::userdata::HostOptions;

impl Checker<'_> {
    pub(super) fn log_driver(&mut self, h: &HostOptions) {
        let p = self.policy;
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
    }

    pub(super) fn port_bindings(&mut self, h: &HostOptions) {
        let p = self.policy;
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
    }
}
