//! The user_data options document ([`crate::userdata::ContainerOptions`]) as the
//! engine client's `/containers/create` body.
//!
//! Field by field, and nothing lost: every engine field is written out (no
//! `..`), and the tests build a document with every field set (struct literals
//! without `..`, so a field added to the document must be set there) and check
//! that it serializes to the same JSON as the body it converts to.

use std::collections::HashMap;

use bollard::models as b;

use crate::userdata as u;

fn map_vec<T, U>(v: Option<Vec<T>>, f: impl Fn(T) -> U) -> Option<Vec<U>> {
    v.map(|v| v.into_iter().map(f).collect())
}

/// A Docker set, as the engine client types it.
fn set(s: Option<u::Set>) -> Option<HashMap<String, HashMap<(), ()>>> {
    s.map(|s| s.into_keys().map(|k| (k, Default::default())).collect())
}

impl From<u::ContainerOptions> for b::ContainerCreateBody {
    fn from(o: u::ContainerOptions) -> Self {
        b::ContainerCreateBody {
            hostname: o.hostname,
            domainname: o.domainname,
            user: o.user,
            attach_stdin: o.attach_stdin,
            attach_stdout: o.attach_stdout,
            attach_stderr: o.attach_stderr,
            exposed_ports: set(o.exposed_ports),
            tty: o.tty,
            open_stdin: o.open_stdin,
            stdin_once: o.stdin_once,
            env: o.env,
            cmd: o.cmd,
            healthcheck: o.healthcheck.map(health),
            args_escaped: o.args_escaped,
            image: o.image,
            volumes: set(o.volumes),
            working_dir: o.working_dir,
            entrypoint: o.entrypoint,
            network_disabled: o.network_disabled,
            mac_address: o.mac_address,
            on_build: o.on_build,
            labels: o.labels,
            stop_signal: o.stop_signal,
            stop_timeout: o.stop_timeout,
            shell: o.shell,
            host_config: o.host_config.map(Into::into),
            networking_config: o.networking_config.map(networking),
        }
    }
}

fn health(h: u::HealthConfig) -> b::HealthConfig {
    b::HealthConfig {
        test: h.test,
        interval: h.interval,
        timeout: h.timeout,
        retries: h.retries,
        start_period: h.start_period,
        start_interval: h.start_interval,
    }
}

fn networking(n: u::NetworkingConfig) -> b::NetworkingConfig {
    b::NetworkingConfig {
        endpoints_config: n
            .endpoints_config
            .map(|m| m.into_iter().map(|(k, e)| (k, endpoint(e))).collect()),
    }
}

fn endpoint(e: u::EndpointSettings) -> b::EndpointSettings {
    b::EndpointSettings {
        ipam_config: e.ipam_config.map(|i| b::EndpointIpamConfig {
            ipv4_address: i.ipv4_address,
            ipv6_address: i.ipv6_address,
            link_local_ips: i.link_local_ips,
        }),
        links: e.links,
        mac_address: e.mac_address,
        aliases: e.aliases,
        driver_opts: e.driver_opts,
        gw_priority: e.gw_priority,
        network_id: e.network_id,
        endpoint_id: e.endpoint_id,
        gateway: e.gateway,
        ip_address: e.ip_address,
        ip_prefix_len: e.ip_prefix_len,
        ipv6_gateway: e.ipv6_gateway,
        global_ipv6_address: e.global_ipv6_address,
        global_ipv6_prefix_len: e.global_ipv6_prefix_len,
        dns_names: e.dns_names,
    }
}

impl From<u::HostOptions> for b::HostConfig {
    fn from(h: u::HostOptions) -> Self {
        b::HostConfig {
            cpu_shares: h.cpu_shares,
            memory: h.memory,
            cgroup_parent: h.cgroup_parent,
            blkio_weight: h.blkio_weight,
            blkio_weight_device: map_vec(h.blkio_weight_device, |d| {
                b::ResourcesBlkioWeightDevice {
                    path: d.path,
                    weight: d.weight,
                }
            }),
            blkio_device_read_bps: map_vec(h.blkio_device_read_bps, throttle),
            blkio_device_write_bps: map_vec(h.blkio_device_write_bps, throttle),
            blkio_device_read_iops: map_vec(h.blkio_device_read_iops, throttle),
            blkio_device_write_iops: map_vec(h.blkio_device_write_iops, throttle),
            cpu_period: h.cpu_period,
            cpu_quota: h.cpu_quota,
            cpu_realtime_period: h.cpu_realtime_period,
            cpu_realtime_runtime: h.cpu_realtime_runtime,
            cpuset_cpus: h.cpuset_cpus,
            cpuset_mems: h.cpuset_mems,
            devices: map_vec(h.devices, |d| b::DeviceMapping {
                path_on_host: d.path_on_host,
                path_in_container: d.path_in_container,
                cgroup_permissions: d.cgroup_permissions,
            }),
            device_cgroup_rules: h.device_cgroup_rules,
            device_requests: map_vec(h.device_requests, |r| b::DeviceRequest {
                driver: r.driver,
                count: r.count,
                device_ids: r.device_ids,
                capabilities: r.capabilities,
                options: r.options,
            }),
            kernel_memory_tcp: h.kernel_memory_tcp,
            memory_reservation: h.memory_reservation,
            memory_swap: h.memory_swap,
            memory_swappiness: h.memory_swappiness,
            nano_cpus: h.nano_cpus,
            oom_kill_disable: h.oom_kill_disable,
            init: h.init,
            pids_limit: h.pids_limit,
            ulimits: map_vec(h.ulimits, |l| b::ResourcesUlimits {
                name: l.name,
                soft: l.soft,
                hard: l.hard,
            }),
            cpu_count: h.cpu_count,
            cpu_percent: h.cpu_percent,
            io_maximum_iops: h.io_maximum_iops,
            io_maximum_bandwidth: h.io_maximum_bandwidth,
            binds: h.binds,
            container_id_file: h.container_id_file,
            log_config: h.log_config.map(|l| b::HostConfigLogConfig {
                typ: l.typ,
                config: l.config,
            }),
            network_mode: h.network_mode,
            port_bindings: h.port_bindings.map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k, map_vec(v, port_binding)))
                    .collect()
            }),
            restart_policy: h.restart_policy.map(|r| b::RestartPolicy {
                name: r.name.map(restart_policy_name),
                maximum_retry_count: r.maximum_retry_count,
            }),
            auto_remove: h.auto_remove,
            volume_driver: h.volume_driver,
            volumes_from: h.volumes_from,
            mounts: map_vec(h.mounts, mount),
            console_size: h.console_size,
            annotations: h.annotations,
            cap_add: h.cap_add,
            cap_drop: h.cap_drop,
            cgroupns_mode: h.cgroupns_mode.map(|m| match m {
                u::CgroupnsMode::Empty => b::HostConfigCgroupnsModeEnum::EMPTY,
                u::CgroupnsMode::Private => b::HostConfigCgroupnsModeEnum::PRIVATE,
                u::CgroupnsMode::Host => b::HostConfigCgroupnsModeEnum::HOST,
            }),
            dns: h.dns,
            dns_options: h.dns_options,
            dns_search: h.dns_search,
            extra_hosts: h.extra_hosts,
            group_add: h.group_add,
            ipc_mode: h.ipc_mode,
            cgroup: h.cgroup,
            links: h.links,
            oom_score_adj: h.oom_score_adj,
            pid_mode: h.pid_mode,
            privileged: h.privileged,
            publish_all_ports: h.publish_all_ports,
            readonly_rootfs: h.readonly_rootfs,
            security_opt: h.security_opt,
            storage_opt: h.storage_opt,
            tmpfs: h.tmpfs,
            uts_mode: h.uts_mode,
            userns_mode: h.userns_mode,
            shm_size: h.shm_size,
            sysctls: h.sysctls,
            runtime: h.runtime,
            isolation: h.isolation.map(|i| match i {
                u::Isolation::Default => b::HostConfigIsolationEnum::DEFAULT,
                u::Isolation::Process => b::HostConfigIsolationEnum::PROCESS,
                u::Isolation::Hyperv => b::HostConfigIsolationEnum::HYPERV,
                u::Isolation::Empty => b::HostConfigIsolationEnum::EMPTY,
            }),
            masked_paths: h.masked_paths,
            readonly_paths: h.readonly_paths,
        }
    }
}

fn throttle(d: u::ThrottleDevice) -> b::ThrottleDevice {
    b::ThrottleDevice {
        path: d.path,
        rate: d.rate,
    }
}

fn port_binding(p: u::PortBinding) -> b::PortBinding {
    b::PortBinding {
        host_ip: p.host_ip,
        host_port: p.host_port,
    }
}

fn restart_policy_name(n: u::RestartPolicyName) -> b::RestartPolicyNameEnum {
    match n {
        u::RestartPolicyName::Empty => b::RestartPolicyNameEnum::EMPTY,
        u::RestartPolicyName::No => b::RestartPolicyNameEnum::NO,
        u::RestartPolicyName::Always => b::RestartPolicyNameEnum::ALWAYS,
        u::RestartPolicyName::UnlessStopped => b::RestartPolicyNameEnum::UNLESS_STOPPED,
        u::RestartPolicyName::OnFailure => b::RestartPolicyNameEnum::ON_FAILURE,
    }
}

fn mount(m: u::Mount) -> b::Mount {
    b::Mount {
        target: m.target,
        source: m.source,
        typ: m.typ.map(|t| match t {
            u::MountType::Empty => b::MountTypeEnum::EMPTY,
            u::MountType::Bind => b::MountTypeEnum::BIND,
            u::MountType::Volume => b::MountTypeEnum::VOLUME,
            u::MountType::Image => b::MountTypeEnum::IMAGE,
            u::MountType::Tmpfs => b::MountTypeEnum::TMPFS,
            u::MountType::Npipe => b::MountTypeEnum::NPIPE,
            u::MountType::Cluster => b::MountTypeEnum::CLUSTER,
        }),
        read_only: m.read_only,
        consistency: m.consistency,
        bind_options: m.bind_options.map(bind_options_of),
        volume_options: m.volume_options.map(|v| b::MountVolumeOptions {
            no_copy: v.no_copy,
            labels: v.labels,
            driver_config: v.driver_config.map(|d| b::MountVolumeOptionsDriverConfig {
                name: d.name,
                options: d.options,
            }),
            subpath: v.subpath,
        }),
        image_options: m
            .image_options
            .map(|i| b::MountImageOptions { subpath: i.subpath }),
        tmpfs_options: m.tmpfs_options.map(|t| b::MountTmpfsOptions {
            size_bytes: t.size_bytes,
            mode: t.mode,
            options: t.options,
        }),
    }
}

fn bind_options_of(o: u::MountBindOptions) -> b::MountBindOptions {
    use b::MountBindOptionsPropagationEnum as P;
    b::MountBindOptions {
        propagation: o.propagation.map(|p| match p {
            u::BindPropagation::Empty => P::EMPTY,
            u::BindPropagation::Private => P::PRIVATE,
            u::BindPropagation::Rprivate => P::RPRIVATE,
            u::BindPropagation::Shared => P::SHARED,
            u::BindPropagation::Rshared => P::RSHARED,
            u::BindPropagation::Slave => P::SLAVE,
            u::BindPropagation::Rslave => P::RSLAVE,
        }),
        non_recursive: o.non_recursive,
        create_mountpoint: o.create_mountpoint,
        read_only_non_recursive: o.read_only_non_recursive,
        read_only_force_recursive: o.read_only_force_recursive,
    }
}

#[cfg(test)]
mod tests;
