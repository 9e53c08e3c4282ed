//! Host devices: `Devices`, `DeviceRequests`, `DeviceCgroupRules`.

use super::check::Checker;
use crate::userdata::HostOptions;

impl Checker<'_> {
    pub(super) fn devices(&mut self, h: &HostOptions) {
        let p = self.policy;
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
    }
}
