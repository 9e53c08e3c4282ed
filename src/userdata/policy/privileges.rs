//! Privileges and confinement: `Privileged`, `CapAdd`, `SecurityOpt`,
//! `Annotations`, `MaskedPaths`, `ReadonlyPaths`, `Sysctls`.

use super::check::Checker;
use super::config::capability_name;
use crate::userdata::HostOptions;

impl Checker<'_> {
    pub(super) fn privileged(&mut self, h: &HostOptions) {
        let p = self.policy;
        if h.privileged == Some(true) && !p.allow_privileged {
            self.refuse_hc(
                "Privileged",
                "true",
                "a privileged container has every capability and the host's devices",
                Some("allow_privileged"),
            );
        }
    }

    pub(super) fn capabilities(&mut self, h: &HostOptions) {
        let p = self.policy;
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

    pub(super) fn confinement(&mut self, h: &HostOptions) {
        let p = self.policy;
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
    }
}
