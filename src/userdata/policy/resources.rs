//! The host's own limits: `CgroupParent`, `OomKillDisable`, `OomScoreAdj`,
//! `Ulimits`, `PidsLimit`, real-time CPU, and the OCI `Runtime`.

use super::check::Checker;
use crate::userdata::HostOptions;

impl Checker<'_> {
    pub(super) fn resources(&mut self, h: &HostOptions) {
        let p = self.policy;
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
    }
}
