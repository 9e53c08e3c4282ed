//! The conversion loses nothing: a document with every field set (struct
//! literals without `..`, so a new field must be set here too) serializes to
//! the same JSON as the body it converts to, and its keys are exactly the
//! accepted ones.

use std::collections::HashMap;

use bollard::models as b;
use serde_json::Value;

use crate::userdata as u;

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn l(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|x| x.to_string()).collect())
}

fn m(k: &str, v: &str) -> Option<HashMap<String, String>> {
    Some(HashMap::from([(k.to_string(), v.to_string())]))
}

fn set(k: &str) -> Option<u::Set> {
    Some(HashMap::from([(k.to_string(), u::Empty {})]))
}

fn mount(typ: u::MountType) -> u::Mount {
    u::Mount {
        target: s("/t"),
        source: s("/s"),
        typ: Some(typ),
        read_only: Some(true),
        consistency: s("cached"),
        bind_options: Some(u::MountBindOptions {
            propagation: Some(u::BindPropagation::Rslave),
            non_recursive: Some(true),
            create_mountpoint: Some(false),
            read_only_non_recursive: Some(true),
            read_only_force_recursive: Some(false),
        }),
        volume_options: Some(u::MountVolumeOptions {
            no_copy: Some(true),
            labels: m("a", "b"),
            driver_config: Some(u::MountVolumeDriverConfig {
                name: s("local"),
                options: m("o", "bind"),
            }),
            subpath: s("sub"),
        }),
        image_options: Some(u::MountImageOptions { subpath: s("img") }),
        tmpfs_options: Some(u::MountTmpfsOptions {
            size_bytes: Some(1 << 20),
            mode: Some(0o1777),
            options: Some(vec![vec!["noexec".into()]]),
        }),
    }
}

fn throttle(rate: i64) -> Option<Vec<u::ThrottleDevice>> {
    Some(vec![u::ThrottleDevice {
        path: s("/dev/sda"),
        rate: Some(rate),
    }])
}

fn host_options() -> u::HostOptions {
    u::HostOptions {
        cpu_shares: Some(512),
        memory: Some(1 << 30),
        cgroup_parent: s("/p"),
        blkio_weight: Some(300),
        blkio_weight_device: Some(vec![u::WeightDevice {
            path: s("/dev/sda"),
            weight: Some(200),
        }]),
        blkio_device_read_bps: throttle(1),
        blkio_device_write_bps: throttle(2),
        blkio_device_read_iops: throttle(3),
        blkio_device_write_iops: throttle(4),
        cpu_period: Some(100_000),
        cpu_quota: Some(50_000),
        cpu_realtime_period: Some(1_000_000),
        cpu_realtime_runtime: Some(950_000),
        cpuset_cpus: s("0-1"),
        cpuset_mems: s("0"),
        devices: Some(vec![u::DeviceMapping {
            path_on_host: s("/dev/null"),
            path_in_container: s("/dev/n"),
            cgroup_permissions: s("rwm"),
        }]),
        device_cgroup_rules: l(&["c 1:3 mr"]),
        device_requests: Some(vec![u::DeviceRequest {
            driver: s("nvidia"),
            count: Some(-1),
            device_ids: l(&["0"]),
            capabilities: Some(vec![vec!["gpu".into()]]),
            options: m("k", "v"),
        }]),
        kernel_memory_tcp: Some(1 << 20),
        memory_reservation: Some(1 << 29),
        memory_swap: Some(2 << 30),
        memory_swappiness: Some(10),
        nano_cpus: Some(1_000_000_000),
        oom_kill_disable: Some(false),
        init: Some(true),
        pids_limit: Some(100),
        ulimits: Some(vec![u::Ulimit {
            name: s("nofile"),
            soft: Some(1024),
            hard: Some(2048),
        }]),
        cpu_count: Some(2),
        cpu_percent: Some(50),
        io_maximum_iops: Some(1000),
        io_maximum_bandwidth: Some(1 << 20),
        binds: l(&["/a:/b:ro"]),
        container_id_file: s("/cid"),
        log_config: Some(u::LogConfig {
            typ: s("json-file"),
            config: m("max-size", "1m"),
        }),
        network_mode: s("bridge"),
        port_bindings: Some(HashMap::from([
            (
                "80/tcp".to_string(),
                Some(vec![u::PortBinding {
                    host_ip: s("127.0.0.1"),
                    host_port: s("8080"),
                }]),
            ),
            ("81/udp".to_string(), None),
        ])),
        restart_policy: Some(u::RestartPolicy {
            name: Some(u::RestartPolicyName::OnFailure),
            maximum_retry_count: Some(3),
        }),
        auto_remove: Some(false),
        volume_driver: s("local"),
        volumes_from: l(&["other:ro"]),
        mounts: Some(vec![mount(u::MountType::Bind), mount(u::MountType::Tmpfs)]),
        console_size: Some(vec![24, 80]),
        annotations: m("run.oci.x", "1"),
        cap_add: l(&["NET_ADMIN"]),
        cap_drop: l(&["MKNOD"]),
        cgroupns_mode: Some(u::CgroupnsMode::Private),
        dns: l(&["1.1.1.1"]),
        dns_options: l(&["ndots:1"]),
        dns_search: l(&["example.org"]),
        extra_hosts: l(&["h:1.2.3.4"]),
        group_add: l(&["users"]),
        ipc_mode: s("shareable"),
        cgroup: s("c"),
        links: l(&["db:database"]),
        oom_score_adj: Some(500),
        pid_mode: s("host"),
        privileged: Some(false),
        publish_all_ports: Some(true),
        readonly_rootfs: Some(true),
        security_opt: l(&["no-new-privileges"]),
        storage_opt: m("size", "1G"),
        tmpfs: m("/run", "size=1m"),
        uts_mode: s("host"),
        userns_mode: s("private"),
        shm_size: Some(64 << 20),
        sysctls: m("net.core.somaxconn", "1024"),
        runtime: s("runc"),
        isolation: Some(u::Isolation::Process),
        masked_paths: l(&["/proc/kcore"]),
        readonly_paths: l(&["/proc/sys"]),
    }
}

fn container_options() -> u::ContainerOptions {
    u::ContainerOptions {
        hostname: s("h"),
        domainname: s("example.org"),
        user: s("65534"),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        exposed_ports: set("80/tcp"),
        tty: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(false),
        env: l(&["A=1"]),
        cmd: l(&["sleep", "1"]),
        healthcheck: Some(u::HealthConfig {
            test: l(&["CMD-SHELL", "true"]),
            interval: Some(1),
            timeout: Some(2),
            retries: Some(3),
            start_period: Some(4),
            start_interval: Some(5),
        }),
        args_escaped: Some(false),
        image: s("img"),
        volumes: set("/data"),
        working_dir: s("/tmp"),
        entrypoint: l(&["/bin/sh"]),
        network_disabled: Some(false),
        mac_address: s("02:42:ac:11:00:02"),
        on_build: l(&["RUN true"]),
        labels: m("team", "blue"),
        stop_signal: s("SIGTERM"),
        stop_timeout: Some(7),
        shell: l(&["/bin/sh", "-c"]),
        host_config: Some(host_options()),
        networking_config: Some(u::NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                "net".to_string(),
                u::EndpointSettings {
                    ipam_config: Some(u::EndpointIpamConfig {
                        ipv4_address: s("10.0.0.2"),
                        ipv6_address: s("fd00::2"),
                        link_local_ips: l(&["169.254.0.2"]),
                    }),
                    links: l(&["a:b"]),
                    mac_address: s("02:42:ac:11:00:03"),
                    aliases: l(&["alias"]),
                    driver_opts: m("k", "v"),
                    gw_priority: Some(1),
                    network_id: s("nid"),
                    endpoint_id: s("eid"),
                    gateway: s("10.0.0.1"),
                    ip_address: s("10.0.0.2"),
                    ip_prefix_len: Some(24),
                    ipv6_gateway: s("fd00::1"),
                    global_ipv6_address: s("fd00::2"),
                    global_ipv6_prefix_len: Some(64),
                    dns_names: l(&["n"]),
                },
            )])),
        }),
    }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn every_field_arrives_under_its_docker_name() {
    let ours = container_options();
    let json = serde_json::to_value(&ours).unwrap();
    let body = b::ContainerCreateBody::from(ours.clone());
    assert_eq!(serde_json::to_value(&body).unwrap(), json);
    // and back: the document reads what it writes
    assert_eq!(
        serde_json::from_value::<u::ContainerOptions>(json).unwrap(),
        ours
    );
}

#[test]
fn the_document_has_exactly_the_accepted_keys() {
    let json = serde_json::to_value(container_options()).unwrap();
    // top-level keys normalization moves into HostConfig, or drops
    let into_host_config = [
        "Memory",
        "MemorySwap",
        "CpuShares",
        "Cpuset",
        "SecurityOpts",
    ];
    let dropped = ["PortSpecs", "Name"];
    let mut top: Vec<String> = u::DOCKER_KEYS
        .iter()
        .filter(|k| !into_host_config.contains(k) && !dropped.contains(k))
        .map(|k| k.to_string())
        .collect();
    top.sort();
    assert_eq!(keys(&json), top);
    let mut host: Vec<String> = u::HOST_CONFIG_KEYS
        .iter()
        .filter(|k| !["LxcConf", "KernelMemory"].contains(k))
        .map(|k| k.to_string())
        .collect();
    host.sort();
    assert_eq!(keys(&json["HostConfig"]), host);
}

#[test]
fn every_enumerated_value_converts() {
    fn same<U: serde::de::DeserializeOwned, B: serde::Serialize>(
        values: &[&str],
        convert: impl Fn(U) -> B,
    ) {
        for v in values {
            let ours: U = serde_json::from_value(Value::from(*v)).expect(v);
            assert_eq!(
                serde_json::to_value(convert(ours)).unwrap(),
                Value::from(*v)
            );
        }
    }
    same(&["", "no", "always", "unless-stopped", "on-failure"], |n| {
        b::HostConfig::from(u::HostOptions {
            restart_policy: Some(u::RestartPolicy {
                name: Some(n),
                maximum_retry_count: None,
            }),
            ..Default::default()
        })
        .restart_policy
        .and_then(|r| r.name)
    });
    same(&["", "private", "host"], |c| {
        b::HostConfig::from(u::HostOptions {
            cgroupns_mode: Some(c),
            ..Default::default()
        })
        .cgroupns_mode
    });
    same(&["default", "process", "hyperv", ""], |i| {
        b::HostConfig::from(u::HostOptions {
            isolation: Some(i),
            ..Default::default()
        })
        .isolation
    });
    same(
        &["", "bind", "volume", "image", "tmpfs", "npipe", "cluster"],
        |t| super::mount(mount(t)).typ,
    );
    same(
        &[
            "", "private", "rprivate", "shared", "rshared", "slave", "rslave",
        ],
        |p| {
            super::bind_options_of(u::MountBindOptions {
                propagation: Some(p),
                ..Default::default()
            })
            .propagation
        },
    );
}
