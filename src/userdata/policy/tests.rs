//! The policy end to end: every refused option, the always refused, the
//! harmless, and the refusals named in the user's words.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;

use super::*;
use crate::config::Ini;
use crate::userdata::{decode_raw, UserOptions};

pub(super) struct Fake(HashMap<String, TargetOwner>);

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

pub(super) fn fake() -> Fake {
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

pub(super) fn ctx() -> PolicyContext {
    PolicyContext::new("p1", false)
}

pub(super) fn opts(text: &str) -> UserOptions {
    decode_raw(text.as_bytes()).unwrap().unwrap()
}

pub(super) fn check(p: &Policy, text: &str) -> Result<(), PolicyViolation> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(p.check(&opts(text), &ctx(), &fake()))
}

pub(super) fn policy(conf: &str) -> Policy {
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
        include_str!("../../../tests/fixtures/userdata/horizon-docker-create-body.json"),
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
        include_str!("../../../tests/fixtures/userdata/short-keys.yaml"),
    )
    .unwrap_err();
    assert_eq!(e.refusals[0].option, "volumes (HostConfig.Binds)");
    assert!(e.refusals[0].value.contains("/var/run/docker.sock"), "{e}");
    let e = check(&Policy::default(), "host_config: {privileged: true}").unwrap_err();
    assert_eq!(e.refusals[0].option, "host_config.Privileged");
}
