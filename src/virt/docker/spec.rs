//! The `/containers/create` body of an instance: its [`InstanceSpec`] with the
//! user's options as the base and Nova's settings over them.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};

use super::config::CpuMode;
use crate::virt::{
    container_name, InstanceSpec, LABEL_HOST, LABEL_INSTANCE_UUID, LABEL_MANAGED_BY,
    LABEL_PROJECT_ID, LABEL_USER_ID, MANAGED_BY,
};

/// Flavor size recorded on the container, so resource accounting needs no inspect per instance.
pub const LABEL_MEMORY_MB: &str = "org.openstack.nova.memory-mb";
pub const LABEL_VCPUS: &str = "org.openstack.nova.vcpus";

/// What of the driver's configuration shapes the body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub cpu_mode: CpuMode,
    pub pids_limit: Option<i64>,
}

/// The labels every container of ours carries.
pub fn instance_labels(spec: &InstanceSpec) -> Vec<(&'static str, String)> {
    vec![
        (LABEL_MANAGED_BY, MANAGED_BY.to_string()),
        (LABEL_INSTANCE_UUID, spec.uuid.clone()),
        (LABEL_HOST, spec.host.clone()),
        (LABEL_PROJECT_ID, spec.project_id.clone()),
        (LABEL_USER_ID, spec.user_id.clone()),
        (LABEL_MEMORY_MB, spec.memory_mb.to_string()),
        (LABEL_VCPUS, spec.vcpus.to_string()),
    ]
}

fn lower_positive(user: Option<i64>, ours: i64) -> i64 {
    match user {
        Some(u) if u > 0 && u < ours => u,
        _ => ours,
    }
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map(|(k, _)| k).unwrap_or(entry)
}

/// The container name and create body of an instance.
///
/// The user's options are the base; Nova's settings win where they conflict: image,
/// hostname, labels (ours over the user's), memory and CPU never above the flavor (a
/// lower user value is kept), no extra swap, `Init`, restart policy "no", network mode,
/// and the instance metadata environment over same-named user variables. A user `Cmd`
/// is kept over the image's `os_command_line` (the more specific choice).
pub fn build_create_body(spec: &InstanceSpec, limits: Limits) -> (String, ContainerCreateBody) {
    let mut body: ContainerCreateBody = spec
        .user_options
        .clone()
        .map(Into::into)
        .unwrap_or_default();

    body.image = Some(spec.image.clone());
    body.hostname = Some(spec.hostname.clone());
    body.domainname = spec.domainname.clone();

    let mut labels: HashMap<String, String> = body.labels.take().unwrap_or_default();
    for (k, v) in instance_labels(spec) {
        labels.insert(k.to_string(), v);
    }
    body.labels = Some(labels);

    if !spec.env.is_empty() || body.env.is_some() {
        let mut env: Vec<String> = body
            .env
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| !spec.env.iter().any(|(k, _)| k == env_key(e)))
            .collect();
        env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        body.env = Some(env);
    }

    if body.cmd.is_none() {
        body.cmd = spec.command.clone();
    }
    body.stop_timeout = Some(spec.stop_timeout.as_secs() as i64);

    let mut hc: HostConfig = body.host_config.take().unwrap_or_default();

    let mem = (spec.memory_mb as i64).saturating_mul(1024 * 1024);
    let mem = lower_positive(hc.memory, mem);
    hc.memory = Some(mem);
    hc.memory_swap = Some(mem);
    if let Some(r) = hc.memory_reservation {
        if r > mem {
            hc.memory_reservation = Some(mem);
        }
    }

    let vcpus = i64::from(spec.vcpus.max(1));
    let flavor_nano = vcpus * 1_000_000_000;
    // A user cap given as quota/period counts like NanoCpus (the engine refuses both at once).
    let user_nano =
        hc.nano_cpus
            .filter(|n| *n > 0)
            .or_else(|| match (hc.cpu_quota, hc.cpu_period) {
                (Some(q), Some(p)) if q > 0 && p > 0 => Some(q.saturating_mul(1_000_000_000) / p),
                (Some(q), None) if q > 0 => Some(q.saturating_mul(10_000)), // default period 100ms
                _ => None,
            });
    hc.cpu_quota = None;
    hc.cpu_period = None;
    hc.cpu_count = None;
    hc.cpu_percent = None;
    hc.nano_cpus = match limits.cpu_mode {
        CpuMode::Quota => Some(lower_positive(user_nano, flavor_nano)),
        CpuMode::Shares => user_nano.filter(|n| *n < flavor_nano),
    };
    hc.cpu_shares = Some(lower_positive(hc.cpu_shares, vcpus * 1024));

    if let Some(p) = limits.pids_limit {
        hc.pids_limit = Some(lower_positive(hc.pids_limit, p));
    }
    hc.init = Some(true);
    hc.restart_policy = Some(RestartPolicy {
        name: Some(RestartPolicyNameEnum::NO),
        maximum_retry_count: None,
    });
    hc.network_mode = Some(
        spec.network_mode
            .clone()
            .unwrap_or_else(|| "none".to_string()),
    );
    body.host_config = Some(hc);

    (container_name(&spec.uuid), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userdata::{self, ContainerOptions, HostOptions};
    use std::time::Duration;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            uuid: "0b3c6c36-6f57-4a57-8d55-6a2f2a4f7d10".into(),
            display_name: "vm1".into(),
            hostname: "vm1".into(),
            domainname: None,
            project_id: "p".into(),
            user_id: "u".into(),
            host: "cmp1".into(),
            memory_mb: 512,
            vcpus: 2,
            image: "img:1".into(),
            env: vec![("A".into(), "1".into())],
            command: Some(vec!["/bin/sh".into(), "-c".into(), "sleep 1".into()]),
            user_options: None,
            network_mode: None,
            stop_timeout: Duration::from_secs(7),
        }
    }

    const Q: Limits = Limits {
        cpu_mode: CpuMode::Quota,
        pids_limit: Some(100),
    };

    #[test]
    fn nova_settings_without_user_options() {
        let (name, b) = build_create_body(&spec(), Q);
        assert_eq!(name, "nova-0b3c6c36-6f57-4a57-8d55-6a2f2a4f7d10");
        assert_eq!(b.image.as_deref(), Some("img:1"));
        assert_eq!(b.hostname.as_deref(), Some("vm1"));
        assert_eq!(b.env, Some(vec!["A=1".to_string()]));
        assert_eq!(b.cmd.as_ref().unwrap()[2], "sleep 1");
        assert_eq!(b.stop_timeout, Some(7));
        let l = b.labels.unwrap();
        assert_eq!(l[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(
            l[LABEL_INSTANCE_UUID],
            "0b3c6c36-6f57-4a57-8d55-6a2f2a4f7d10"
        );
        assert_eq!(l[LABEL_HOST], "cmp1");
        assert_eq!(l[LABEL_PROJECT_ID], "p");
        assert_eq!(l[LABEL_USER_ID], "u");
        let hc = b.host_config.unwrap();
        assert_eq!(hc.memory, Some(512 << 20));
        assert_eq!(hc.memory_swap, Some(512 << 20));
        assert_eq!(hc.nano_cpus, Some(2_000_000_000));
        assert_eq!(hc.cpu_shares, Some(2048));
        assert_eq!(hc.pids_limit, Some(100));
        assert_eq!(hc.init, Some(true));
        assert_eq!(
            hc.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
    }

    #[test]
    fn shares_mode_sets_no_cap() {
        let (_, b) = build_create_body(
            &spec(),
            Limits {
                cpu_mode: CpuMode::Shares,
                pids_limit: None,
            },
        );
        let hc = b.host_config.unwrap();
        assert_eq!(hc.nano_cpus, None);
        assert_eq!(hc.cpu_shares, Some(2048));
        assert_eq!(hc.pids_limit, None);
    }

    #[test]
    fn user_options_are_the_base_and_nova_wins_conflicts() {
        let mut s = spec();
        s.network_mode = Some("bridge".into());
        s.user_options = Some(ContainerOptions {
            image: Some("evil".into()),
            hostname: Some("other".into()),
            working_dir: Some("/srv".into()),
            cmd: Some(vec!["top".into()]),
            env: Some(vec!["A=user".into(), "B=2".into()]),
            labels: Some(HashMap::from([
                ("team".to_string(), "x".to_string()),
                (LABEL_MANAGED_BY.to_string(), "me".to_string()),
                (LABEL_INSTANCE_UUID.to_string(), "spoof".to_string()),
            ])),
            host_config: Some(HostOptions {
                memory: Some(8 << 30),
                memory_swap: Some(-1),
                nano_cpus: Some(16_000_000_000),
                cpu_shares: Some(99_999),
                pids_limit: Some(100_000),
                init: Some(false),
                restart_policy: Some(userdata::RestartPolicy {
                    name: Some(userdata::RestartPolicyName::Always),
                    maximum_retry_count: None,
                }),
                network_mode: Some("host".into()),
                cap_add: Some(vec!["NET_ADMIN".into()]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let (_, b) = build_create_body(&s, Q);
        assert_eq!(b.image.as_deref(), Some("img:1"));
        assert_eq!(b.hostname.as_deref(), Some("vm1"));
        assert_eq!(b.working_dir.as_deref(), Some("/srv"), "user option kept");
        assert_eq!(
            b.cmd,
            Some(vec!["top".to_string()]),
            "user Cmd kept over os_command_line"
        );
        assert_eq!(b.env, Some(vec!["B=2".to_string(), "A=1".to_string()]));
        let l = b.labels.unwrap();
        assert_eq!(l["team"], "x");
        assert_eq!(l[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(l[LABEL_INSTANCE_UUID], s.uuid);
        let hc = b.host_config.unwrap();
        assert_eq!(hc.memory, Some(512 << 20));
        assert_eq!(hc.memory_swap, Some(512 << 20));
        assert_eq!(hc.nano_cpus, Some(2_000_000_000));
        assert_eq!(hc.cpu_shares, Some(2048));
        assert_eq!(hc.pids_limit, Some(100));
        assert_eq!(hc.init, Some(true));
        assert_eq!(
            hc.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(hc.network_mode.as_deref(), Some("bridge"));
        assert_eq!(hc.cap_add, Some(vec!["NET_ADMIN".to_string()]));
    }

    #[test]
    fn lower_user_limits_are_kept() {
        let mut s = spec();
        s.user_options = Some(ContainerOptions {
            host_config: Some(HostOptions {
                memory: Some(64 << 20),
                memory_reservation: Some(1 << 30),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                cpu_shares: Some(512),
                pids_limit: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        });
        let (_, b) = build_create_body(&s, Q);
        let hc = b.host_config.unwrap();
        assert_eq!(hc.memory, Some(64 << 20));
        assert_eq!(hc.memory_swap, Some(64 << 20));
        assert_eq!(hc.memory_reservation, Some(64 << 20));
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        assert_eq!((hc.cpu_quota, hc.cpu_period), (None, None));
        assert_eq!(hc.cpu_shares, Some(512));
        assert_eq!(hc.pids_limit, Some(10));
        // shares mode keeps a lower user cap but never adds one
        let (_, b) = build_create_body(
            &s,
            Limits {
                cpu_mode: CpuMode::Shares,
                pids_limit: None,
            },
        );
        assert_eq!(b.host_config.unwrap().nano_cpus, Some(500_000_000));
    }

    #[test]
    fn zero_or_negative_user_limits_mean_the_flavor() {
        let mut s = spec();
        s.user_options = Some(ContainerOptions {
            host_config: Some(HostOptions {
                memory: Some(0),
                nano_cpus: Some(-1),
                ..Default::default()
            }),
            ..Default::default()
        });
        let hc = build_create_body(&s, Q).1.host_config.unwrap();
        assert_eq!(hc.memory, Some(512 << 20));
        assert_eq!(hc.nano_cpus, Some(2_000_000_000));
    }
}
