//! user_data container options applied to real containers on the real Docker
//! engine: every key of both vocabularies, the published examples, and the
//! policy end to end (decode + check with the Docker-backed lookup).

mod common;

use std::collections::{BTreeSet, HashMap};

use base64::Engine;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, ExecConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, InspectContainerOptions};
use bollard::Docker;
use futures_util::StreamExt;
use nova_docker::config::Ini;
use nova_docker::userdata::{
    decode, ContainerLookup, Policy, PolicyContext, TargetOwner, UserOptions, DOCKER_KEYS,
    SHORT_KEYS,
};
use nova_docker::virt::{LABEL_MANAGED_BY, LABEL_PROJECT_ID, MANAGED_BY};

const TEST_LABEL: &str = "org.openstack.nova-docker.test";
const PROJECT: &str = "project-userdata-test";

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .expect("docker client")
        .negotiate_version()
        .await
        .expect("docker engine answers")
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::test_file(&format!("fixtures/userdata/{name}")))
        .expect("fixture")
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A container removed (with its anonymous volumes) when dropped, even when
/// the test fails.
struct Ctr {
    name: String,
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}

/// Create and start a container from a normalized body, the way the driver
/// will after its merge: the test image, our labels, a memory limit when a
/// swap limit is asked (Docker wants both, Nova always sets the flavor's).
async fn run_body(
    d: &Docker,
    body: ContainerCreateBody,
    labels: &[(&str, &str)],
) -> Result<Ctr, String> {
    let (c, started) = create_and_start(d, body, labels).await?;
    started.map(|()| c)
}

/// Create, then start: the container (removed on drop) and how the start went.
async fn create_and_start(
    d: &Docker,
    mut body: ContainerCreateBody,
    labels: &[(&str, &str)],
) -> Result<(Ctr, Result<(), String>), String> {
    let name = unique("ud-test");
    body.image = Some(common::busybox_image());
    let mut l = body.labels.take().unwrap_or_default();
    l.insert(TEST_LABEL.into(), "userdata".into());
    for (k, v) in labels {
        l.insert(k.to_string(), v.to_string());
    }
    body.labels = Some(l);
    if let Some(hc) = body.host_config.as_mut() {
        if hc.memory_swap.is_some() && hc.memory.unwrap_or(0) == 0 {
            hc.memory = Some(256 << 20);
        }
    }
    d.create_container(
        Some(CreateContainerOptionsBuilder::new().name(&name).build()),
        body,
    )
    .await
    .map_err(|e| format!("create: {e}"))?;
    let c = Ctr { name };
    let started = d
        .start_container(
            &c.name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(|e| format!("start: {e}"));
    Ok((c, started))
}

async fn inspect(d: &Docker, name: &str) -> ContainerInspectResponse {
    d.inspect_container(name, None::<InspectContainerOptions>)
        .await
        .expect("inspect")
}

/// Run a command in the container, stdout and stderr together.
async fn exec(d: &Docker, name: &str, cmd: &[&str]) -> String {
    let e = d
        .create_exec(
            name,
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
        )
        .await
        .expect("create exec");
    let mut out = String::new();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } =
        d.start_exec(&e.id, None).await.expect("start exec")
    {
        while let Some(Ok(chunk)) = output.next().await {
            out.push_str(&chunk.to_string());
        }
    }
    out
}

type InspectFn = Box<dyn Fn(&ContainerInspectResponse) -> bool + Send + Sync>;

enum Check {
    /// A named predicate on `docker inspect`.
    Inspect(&'static str, InspectFn),
    /// A command run inside whose output must contain the text.
    Exec(Vec<&'static str>, String),
    /// ... must not contain the text.
    ExecNot(Vec<&'static str>, String),
    /// A warning containing the text.
    Warning(&'static str),
}

fn ins(
    what: &'static str,
    f: impl Fn(&ContainerInspectResponse) -> bool + Send + Sync + 'static,
) -> Check {
    Check::Inspect(what, Box::new(f))
}

fn ex(cmd: &[&'static str], want: impl Into<String>) -> Check {
    Check::Exec(cmd.to_vec(), want.into())
}

struct Row {
    keys: &'static [&'static str],
    user_data: String,
    checks: Vec<Check>,
    /// The engine may refuse to start it when this host itself runs without
    /// every capability (a test host inside a container): then only the
    /// created container's configuration is checked.
    may_not_start: bool,
}

fn row(keys: &'static [&'static str], user_data: impl Into<String>, checks: Vec<Check>) -> Row {
    Row {
        keys,
        user_data: user_data.into(),
        checks,
        may_not_start: false,
    }
}

fn cfg(i: &ContainerInspectResponse) -> &bollard::models::ContainerConfig {
    i.config.as_ref().expect("config")
}

fn hc(i: &ContainerInspectResponse) -> &bollard::models::HostConfig {
    i.host_config.as_ref().expect("host config")
}

fn bound(i: &ContainerInspectResponse, port: &str) -> bool {
    i.network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .and_then(|p| p.get(port).cloned().flatten())
        .is_some_and(|b| {
            b.iter()
                .any(|b| b.host_port.as_deref().is_some_and(|p| !p.is_empty()))
        })
}

const CAPS: &[&str] = &["grep", "CapEff", "/proc/1/status"];
const DEFAULT_CAPS: &str = "00000000a80425fb";

async fn run_rows(rows: Vec<Row>) -> BTreeSet<String> {
    let d = docker().await;
    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    for r in rows {
        let opts = match decode(Some(&b64(&r.user_data))) {
            Ok(Some(o)) => o,
            other => {
                failures.push(format!("{:?}: decode gave {other:?}", r.keys));
                continue;
            }
        };
        let (c, started) = match create_and_start(&d, opts.body.clone().into(), &[]).await {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{:?}: {e}", r.keys));
                continue;
            }
        };
        let started = match started {
            Ok(()) => true,
            Err(e) if r.may_not_start && e.contains("operation not permitted") => {
                eprintln!(
                    "{:?}: this host cannot start it ({e}); configuration checked only",
                    r.keys
                );
                false
            }
            Err(e) => {
                failures.push(format!("{:?}: {e}", r.keys));
                continue;
            }
        };
        let info = inspect(&d, &c.name).await;
        for check in &r.checks {
            if !started && matches!(check, Check::Exec(..) | Check::ExecNot(..)) {
                continue;
            }
            match check {
                Check::Inspect(what, f) => {
                    if !f(&info) {
                        failures.push(format!("{:?}: inspect: {what}", r.keys));
                    }
                }
                Check::Exec(cmd, want) => {
                    let out = exec(&d, &c.name, cmd).await;
                    if !out.contains(want.as_str()) {
                        failures.push(format!(
                            "{:?}: {cmd:?} gave {out:?}, wanted {want:?}",
                            r.keys
                        ));
                    }
                }
                Check::ExecNot(cmd, unwanted) => {
                    let out = exec(&d, &c.name, cmd).await;
                    if out.contains(unwanted.as_str()) {
                        failures.push(format!(
                            "{:?}: {cmd:?} gave {out:?}, which has {unwanted:?}",
                            r.keys
                        ));
                    }
                }
                Check::Warning(w) => {
                    if !opts.warnings.iter().any(|x| x.contains(w)) {
                        failures.push(format!(
                            "{:?}: no warning with {w:?} in {:?}",
                            r.keys, opts.warnings
                        ));
                    }
                }
            }
        }
        covered.extend(r.keys.iter().map(|k| k.to_string()));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    covered
}

/// A running plain container with an anonymous volume holding a file, as the
/// target of links and volumes_from.
async fn source_container(d: &Docker, labels: &[(&str, &str)]) -> Ctr {
    let body = ContainerCreateBody {
        volumes: Some(HashMap::from([("/shared".to_string(), HashMap::new())])),
        ..Default::default()
    };
    let c = run_body(d, body, labels).await.expect("source container");
    exec(d, &c.name, &["touch", "/shared/from-source"]).await;
    c
}

#[tokio::test]
#[ignore = "needs docker; run by devstack/run-tests.sh"]
async fn every_short_key_applied_to_a_real_container() {
    let d = docker().await;
    let src = source_container(&d, &[]).await;
    let host_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(host_dir.path().join("hello"), "hello from the host\n").expect("write");
    let hd = host_dir.path().display().to_string();
    let rows = vec![
        row(&["command"], "command: sh -c 'echo \"hello world\" > /tmp/out; exec sleep 1000'", vec![
            ex(&["cat", "/tmp/out"], "hello world"),
            ins("Cmd split like a shell", |i| cfg(i).cmd.as_deref() == Some(&["sh".to_string(), "-c".into(), "echo \"hello world\" > /tmp/out; exec sleep 1000".into()][..])),
        ]),
        row(&["entrypoint"], "entrypoint: [/bin/sh, -c]\ncommand: ['echo via-entrypoint > /tmp/ep; exec sleep 1000']\n", vec![
            ex(&["cat", "/tmp/ep"], "via-entrypoint"),
            ins("Entrypoint", |i| cfg(i).entrypoint.as_deref() == Some(&["/bin/sh".to_string(), "-c".into()][..])),
        ]),
        row(&["user"], "user: 65534\n", vec![ex(&["id", "-u"], "65534")]),
        row(&["detach"], "detach: false\n", vec![ins("AttachStdout", |i| cfg(i).attach_stdout == Some(true) && cfg(i).attach_stderr == Some(true))]),
        row(&["stdin_open"], "stdin_open: true\n", vec![
            ins("OpenStdin", |i| cfg(i).open_stdin == Some(true)),
            ex(&["ls", "-l", "/proc/1/fd/0"], "pipe:"),
        ]),
        row(&["tty"], "tty: true\n", vec![
            ins("Tty", |i| cfg(i).tty == Some(true)),
            ex(&["ls", "-l", "/proc/1/fd/0"], "/dev/pts"),
        ]),
        row(&["ports"], "ports: ['127.0.0.1::80', '81/udp']\n", vec![
            ins("80/tcp bound on the host", |i| bound(i, "80/tcp")),
            ins("81/udp exposed", |i| cfg(i).exposed_ports.as_ref().is_some_and(|e| e.contains_key("81/udp"))),
        ]),
        row(&["environment"], "environment:\n  ETCD: 10.144.192.168\n  WITH_SPACE: a b\n", vec![
            ex(&["env"], "ETCD=10.144.192.168"),
            ex(&["env"], "WITH_SPACE=a b"),
        ]),
        row(&["environment"], "environment: [LIST_FORM=1, 'X=y=z']\n", vec![ex(&["env"], "LIST_FORM=1"), ex(&["env"], "X=y=z")]),
        row(&["dns"], "dns: [192.0.2.53]\n", vec![ex(&["cat", "/etc/resolv.conf"], "nameserver 192.0.2.53")]),
        row(&["volumes"], format!("volumes:\n  {hd}: /mnt/host\n"), vec![ex(&["cat", "/mnt/host/hello"], "hello from the host")]),
        row(&["volumes"], format!("volumes: ['{hd}:/mnt/ro:ro', /anon]\n"), vec![
            ex(&["cat", "/mnt/ro/hello"], "hello from the host"),
            ex(&["touch", "/mnt/ro/x"], "Read-only file system"),
            ins("anonymous volume /anon", |i| i.mounts.iter().flatten().any(|m| m.destination.as_deref() == Some("/anon") && m.name.is_some())),
        ]),
        row(&["volumes_from"], format!("volumes_from: {}\n", src.name), vec![ex(&["ls", "/shared"], "from-source")]),
        row(&["name"], "name: my-container\n", vec![
            Check::Warning("my-container"),
            ins("named by us", |i| i.name.as_deref().is_some_and(|n| n.starts_with("/ud-test-"))),
        ]),
        row(&["working_dir"], "working_dir: /tmp\n", vec![ex(&["pwd"], "/tmp")]),
        row(&["domainname"], "domainname: example.test\n", vec![ins("Domainname", |i| cfg(i).domainname.as_deref() == Some("example.test"))]),
        row(&["memswap_limit"], "memswap_limit: 512m\n", vec![ins("MemorySwap", |i| hc(i).memory_swap == Some(512 << 20))]),
        row(&["cpuset"], "cpuset: '0'\n", vec![
            ins("CpusetCpus", |i| hc(i).cpuset_cpus.as_deref() == Some("0")),
            ex(&["cat", "/sys/fs/cgroup/cpuset/cpuset.cpus"], "0"),
        ]),
        row(&["host_config"], "host_config:\n  cap_drop: [MKNOD]\n  read_only: true\n  tmpfs: ['/scratch:size=1m']\n  ExtraHosts: ['myhost:192.0.2.10']\n", vec![
            ex(CAPS, "00000000a00425fb"),
            ex(&["touch", "/x"], "Read-only file system"),
            ex(&["grep", "/scratch", "/proc/mounts"], "tmpfs"),
            ex(&["cat", "/etc/hosts"], "myhost"),
        ]),
    ];
    let covered = run_rows(rows).await;
    let missing: Vec<&&str> = SHORT_KEYS
        .iter()
        .filter(|k| !covered.contains(**k))
        .collect();
    assert!(missing.is_empty(), "short keys without a test: {missing:?}");
    drop(src);
}

#[tokio::test]
#[ignore = "needs docker; run by devstack/run-tests.sh"]
async fn every_docker_key_applied_to_a_real_container() {
    let d = docker().await;
    let src = source_container(&d, &[]).await;
    let host_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(host_dir.path().join("hello"), "bound\n").expect("write");
    let hd = host_dir.path().display().to_string();
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    let mac = format!("02:42:ac:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]);
    let s = src.name.clone();
    let rows = vec![
        row(
            &["Hostname"],
            r#"{"Hostname": "ud-host"}"#,
            vec![ex(&["hostname"], "ud-host"), Check::Warning("Hostname")],
        ),
        row(
            &["Domainname"],
            r#"{"Domainname": "example.test"}"#,
            vec![ins("Domainname", |i| {
                cfg(i).domainname.as_deref() == Some("example.test")
            })],
        ),
        row(
            &["User"],
            r#"{"User": "nobody"}"#,
            vec![ex(&["id", "-u"], "65534")],
        ),
        row(
            &["Memory", "CpuShares", "Cpuset"],
            r#"{"Memory": 67108864, "CpuShares": 512, "Cpuset": "1"}"#,
            vec![
                ex(
                    &["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
                    "67108864",
                ),
                ex(&["cat", "/sys/fs/cgroup/cpu/cpu.shares"], "512"),
                ex(&["cat", "/sys/fs/cgroup/cpuset/cpuset.cpus"], "1"),
            ],
        ),
        row(
            &["MemorySwap"],
            r#"{"Memory": "64m", "MemorySwap": "128m"}"#,
            vec![ins("MemorySwap", |i| hc(i).memory_swap == Some(128 << 20))],
        ),
        row(
            &["AttachStdin", "AttachStdout", "AttachStderr"],
            r#"{"AttachStdin": true, "AttachStdout": false, "AttachStderr": false}"#,
            vec![ins("Attach*", |i| {
                cfg(i).attach_stdin == Some(true)
                    && cfg(i).attach_stdout == Some(false)
                    && cfg(i).attach_stderr == Some(false)
            })],
        ),
        row(
            &["Tty"],
            r#"{"Tty": true}"#,
            vec![ex(&["ls", "-l", "/proc/1/fd/0"], "/dev/pts")],
        ),
        row(
            &["OpenStdin", "StdinOnce"],
            r#"{"OpenStdin": true, "StdinOnce": true}"#,
            vec![
                ins("OpenStdin, StdinOnce", |i| {
                    cfg(i).open_stdin == Some(true) && cfg(i).stdin_once == Some(true)
                }),
                ex(&["ls", "-l", "/proc/1/fd/0"], "pipe:"),
            ],
        ),
        row(
            &["Env"],
            r#"{"Env": ["A=1", "B=two words"]}"#,
            vec![ex(&["env"], "A=1"), ex(&["env"], "B=two words")],
        ),
        row(
            &["Cmd"],
            r#"{"Cmd": "sh -c 'echo from-cmd > /tmp/c; exec sleep 1000'"}"#,
            vec![ex(&["cat", "/tmp/c"], "from-cmd")],
        ),
        row(
            &["Entrypoint"],
            r#"{"Entrypoint": "/bin/sh -c", "Cmd": ["echo from-ep > /tmp/e; exec sleep 1000"]}"#,
            vec![ex(&["cat", "/tmp/e"], "from-ep")],
        ),
        row(
            &["Image", "Name"],
            r#"{"Image": "base", "Name": "theirs"}"#,
            vec![
                Check::Warning("Image \"base\""),
                Check::Warning("Name \"theirs\""),
                ex(&["cat", "/proc/1/cmdline"], "started on"),
            ],
        ),
        row(
            &["Volumes"],
            r#"{"Volumes": {"/data": {}}}"#,
            vec![ex(&["grep", " /data ", "/proc/mounts"], "/data")],
        ),
        row(
            &["WorkingDir"],
            r#"{"WorkingDir": "/root"}"#,
            vec![ex(&["pwd"], "/root")],
        ),
        row(
            &["NetworkDisabled"],
            r#"{"NetworkDisabled": true}"#,
            vec![
                Check::Warning("NetworkDisabled"),
                Check::ExecNot(vec!["cat", "/proc/net/dev"], "eth0".into()),
            ],
        ),
        row(
            &["MacAddress"],
            format!(r#"{{"MacAddress": "{mac}"}}"#),
            vec![ex(&["cat", "/sys/class/net/eth0/address"], mac.clone())],
        ),
        row(
            &["ExposedPorts"],
            r#"{"ExposedPorts": {"22/tcp": {}}, "HostConfig": {"PublishAllPorts": true}}"#,
            vec![ins("22/tcp published", |i| bound(i, "22/tcp"))],
        ),
        row(
            &["SecurityOpts"],
            r#"{"SecurityOpts": ["no-new-privileges"]}"#,
            vec![ex(&["grep", "NoNewPrivs", "/proc/1/status"], "1")],
        ),
        row(
            &["Labels", "StopSignal", "StopTimeout"],
            r#"{"Labels": {"app": "web"}, "StopSignal": "SIGUSR1", "StopTimeout": 3}"#,
            vec![ins("Labels, StopSignal, StopTimeout", |i| {
                cfg(i)
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.get("app").map(String::as_str) == Some("web"))
                    && cfg(i).stop_signal.as_deref() == Some("SIGUSR1")
                    && cfg(i).stop_timeout == Some(3)
            })],
        ),
        row(
            &["Healthcheck"],
            r#"{"Healthcheck": {"Test": "true", "Interval": 1000000000}}"#,
            vec![ins("Healthcheck", |i| {
                cfg(i).healthcheck.as_ref().and_then(|h| h.test.clone())
                    == Some(vec!["CMD-SHELL".into(), "true".into()])
            })],
        ),
        row(
            &["Shell", "OnBuild", "ArgsEscaped"],
            r#"{"Shell": ["/bin/sh", "-c"], "OnBuild": [], "ArgsEscaped": false}"#,
            vec![ins("Shell", |i| {
                cfg(i).shell.as_deref() == Some(&["/bin/sh".to_string(), "-c".into()][..])
            })],
        ),
        row(
            &["PortSpecs"],
            r#"{"PortSpecs": ["22"]}"#,
            vec![Check::Warning("PortSpecs")],
        ),
        row(
            &["NetworkingConfig"],
            r#"{"NetworkingConfig": {"EndpointsConfig": {"bridge": {}}}}"#,
            vec![ins("on the bridge", |i| {
                i.network_settings
                    .as_ref()
                    .and_then(|n| n.networks.as_ref())
                    .is_some_and(|n| n.contains_key("bridge"))
            })],
        ),
        row(
            &["HostConfig", "Binds"],
            format!(r#"{{"HostConfig": {{"Binds": ["{hd}:/mnt/b:ro"]}}}}"#),
            vec![
                ex(&["cat", "/mnt/b/hello"], "bound"),
                ex(&["touch", "/mnt/b/x"], "Read-only file system"),
            ],
        ),
        row(
            &["Links"],
            format!(r#"{{"HostConfig": {{"Links": ["{s}:db"]}}}}"#),
            vec![ex(&["cat", "/etc/hosts"], "db")],
        ),
        row(
            &["VolumesFrom"],
            format!(r#"{{"HostConfig": {{"VolumesFrom": ["{s}:ro"]}}}}"#),
            vec![
                ex(&["ls", "/shared"], "from-source"),
                ex(&["touch", "/shared/x"], "Read-only file system"),
            ],
        ),
        row(
            &["LxcConf"],
            r#"{"HostConfig": {"LxcConf": {"lxc.utsname": "docker"}}}"#,
            vec![Check::Warning("LxcConf")],
        ),
        row(
            &["PortBindings"],
            r#"{"HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}}"#,
            vec![ins("22/tcp bound", |i| bound(i, "22/tcp"))],
        ),
        row(
            &["PublishAllPorts"],
            r#"{"ExposedPorts": {"23/tcp": {}}, "HostConfig": {"PublishAllPorts": true}}"#,
            vec![ins("23/tcp published", |i| bound(i, "23/tcp"))],
        ),
        Row {
            may_not_start: true,
            ..row(
                &["Privileged"],
                r#"{"HostConfig": {"Privileged": true}}"#,
                vec![
                    ins("Privileged", |i| hc(i).privileged == Some(true)),
                    Check::ExecNot(CAPS.to_vec(), DEFAULT_CAPS.into()),
                    ex(CAPS, "ffffffff"),
                ],
            )
        },
        row(
            &["Dns", "DnsSearch", "DnsOptions"],
            r#"{"HostConfig": {"Dns": ["192.0.2.53"], "DnsSearch": ["example.test"], "DnsOptions": ["ndots:2"]}}"#,
            vec![
                ex(&["cat", "/etc/resolv.conf"], "nameserver 192.0.2.53"),
                ex(&["cat", "/etc/resolv.conf"], "search example.test"),
                ex(&["cat", "/etc/resolv.conf"], "ndots:2"),
            ],
        ),
        row(
            &["CapAdd"],
            r#"{"HostConfig": {"CapAdd": ["NET_ADMIN"]}}"#,
            vec![ex(CAPS, "00000000a80435fb")],
        ),
        row(
            &["CapDrop"],
            r#"{"HostConfig": {"CapDrop": ["MKNOD"]}}"#,
            vec![ex(CAPS, "00000000a00425fb")],
        ),
        row(
            &["RestartPolicy"],
            r#"{"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}}"#,
            vec![ins("RestartPolicy", |i| {
                hc(i)
                    .restart_policy
                    .as_ref()
                    .is_some_and(|r| r.maximum_retry_count == Some(2))
            })],
        ),
        row(
            &["NetworkMode"],
            r#"{"HostConfig": {"NetworkMode": "none"}}"#,
            vec![Check::ExecNot(vec!["cat", "/proc/net/dev"], "eth0".into())],
        ),
        row(
            &["Devices"],
            r#"{"HostConfig": {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rwm"}]}}"#,
            vec![ex(&["ls", "-l", "/dev/mynull"], "/dev/mynull")],
        ),
        row(
            &["Init", "ReadonlyRootfs", "Tmpfs", "ShmSize"],
            r#"{"HostConfig": {"Init": true, "ReadonlyRootfs": true, "Tmpfs": {"/scratch": "size=1m"}, "ShmSize": "16m"}}"#,
            vec![
                ex(&["cat", "/proc/1/cmdline"], "docker-init"),
                ex(&["touch", "/x"], "Read-only file system"),
                ex(&["grep", "/scratch", "/proc/mounts"], "tmpfs"),
                ex(&["grep", "/dev/shm", "/proc/mounts"], "size=16384k"),
            ],
        ),
        row(
            &["Sysctls"],
            r#"{"HostConfig": {"Sysctls": {"net.ipv4.ip_forward": "1"}}}"#,
            vec![ex(&["cat", "/proc/sys/net/ipv4/ip_forward"], "1")],
        ),
        row(
            &["Ulimits", "PidsLimit", "OomScoreAdj"],
            r#"{"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1000, "Hard": 1000}], "PidsLimit": 50, "OomScoreAdj": 500}}"#,
            vec![
                ex(&["sh", "-c", "ulimit -n"], "1000"),
                ex(&["cat", "/sys/fs/cgroup/pids/pids.max"], "50"),
                ex(&["cat", "/proc/1/oom_score_adj"], "500"),
            ],
        ),
        row(
            &["ExtraHosts", "GroupAdd"],
            r#"{"HostConfig": {"ExtraHosts": ["myhost:192.0.2.10"], "GroupAdd": ["1234"]}}"#,
            vec![
                ex(&["cat", "/etc/hosts"], "192.0.2.10"),
                ex(&["id", "-G"], "1234"),
            ],
        ),
        row(
            &["CpuPeriod", "CpuQuota", "MemoryReservation"],
            r#"{"HostConfig": {"CpuPeriod": 100000, "CpuQuota": 50000, "MemoryReservation": "32m"}}"#,
            vec![
                ex(&["cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"], "50000"),
                ex(
                    &["cat", "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes"],
                    "33554432",
                ),
            ],
        ),
        row(
            &["Mounts", "LogConfig", "IpcMode"],
            r#"{"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/mt"}], "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}, "IpcMode": "shareable"}}"#,
            vec![
                ex(&["grep", "/mt", "/proc/mounts"], "tmpfs"),
                ins("LogConfig, IpcMode", |i| {
                    hc(i).log_config.as_ref().and_then(|l| l.typ.as_deref()) == Some("json-file")
                        && hc(i).ipc_mode.as_deref() == Some("shareable")
                }),
            ],
        ),
    ];
    let covered = run_rows(rows).await;
    let brief_host_config = [
        "Binds",
        "Links",
        "LxcConf",
        "PortBindings",
        "PublishAllPorts",
        "Privileged",
        "Dns",
        "DnsSearch",
        "VolumesFrom",
        "CapAdd",
        "CapDrop",
        "RestartPolicy",
        "NetworkMode",
        "Devices",
    ];
    let missing: Vec<&str> = DOCKER_KEYS
        .iter()
        .copied()
        .chain(brief_host_config)
        .filter(|k| !covered.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "Docker keys without a test: {missing:?}"
    );
    drop(src);
}

fn policy(conf: &str) -> Policy {
    let mut i = Ini::default();
    i.merge_text(
        &format!("[docker]\n{conf}\n"),
        std::path::Path::new("nova.conf"),
    )
    .expect("ini");
    Policy::from_ini(&i).expect("policy")
}

fn ctx() -> PolicyContext {
    PolicyContext::new(PROJECT, false)
}

/// The heat template's user_data, as Heat sends it by default: inside the
/// `cfn-userdata` part of a MIME multipart.
fn heat_user_data() -> String {
    let t: serde_yaml::Value = serde_yaml::from_str(&fixture("heat-server.yaml")).expect("yaml");
    t["resources"]["docker_image"]["properties"]["user_data"]
        .as_str()
        .expect("user_data")
        .to_string()
}

#[tokio::test]
#[ignore = "needs docker; run by devstack/run-tests.sh"]
async fn examples_refused_by_default_naming_each_field() {
    let d = docker().await;
    let horizon = decode(Some(&b64(&fixture("horizon-docker-create-body.json"))))
        .expect("decode")
        .expect("options");
    let e = Policy::default()
        .check(&horizon, &ctx(), &d)
        .await
        .expect_err("refused");
    let msg = e.to_string();
    for needle in [
        "HostConfig.Binds host path /tmp",
        "HostConfig.CapAdd NET_ADMIN",
        "HostConfig.Links redis3",
        "HostConfig.VolumesFrom parent",
        "HostConfig.VolumesFrom other",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
    assert_eq!(e.refusals.len(), 5, "{msg}");
    assert!(horizon.warnings.iter().any(|w| w.contains("LxcConf")));

    let short = decode(Some(&b64(&fixture("short-keys.yaml"))))
        .expect("decode")
        .expect("options");
    let e = Policy::default()
        .check(&short, &ctx(), &d)
        .await
        .expect_err("refused");
    assert_eq!(e.refusals.len(), 1, "{e}");
    assert!(
        e.to_string()
            .contains("volumes (HostConfig.Binds) host path /var/run/docker.sock"),
        "{e}"
    );
    assert!(e.to_string().contains("socket"), "{e}");

    let heat = decode(Some(&b64(&heat_user_data())))
        .expect("decode")
        .expect("options");
    let e = Policy::default()
        .check(&heat, &ctx(), &d)
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("host path /tmp/test112233"), "{e}");
    let n: nova_docker::exception::NovaException = e.into();
    assert!(n.message.contains("/tmp/test112233"), "{}", n.message);
}

#[tokio::test]
#[ignore = "needs docker; run by devstack/run-tests.sh"]
async fn horizon_body_runs_under_an_operator_policy_that_allows_it() {
    let d = docker().await;
    let ours = [(LABEL_MANAGED_BY, MANAGED_BY), (LABEL_PROJECT_ID, PROJECT)];
    // the body's link and volume sources, as instances of the same project
    let redis = source_container(&d, &ours).await;
    let parent = source_container(&d, &ours).await;
    let other = source_container(&d, &ours).await;
    let host_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(host_dir.path().join("f"), "x").expect("write");
    let hd = host_dir.path().display().to_string();
    let port = 20000 + (uuid::Uuid::new_v4().as_u128() % 20000) as u16;
    let text = fixture("horizon-docker-create-body.json")
        .replace("\"/tmp:/tmp\"", &format!("\"{hd}:/tmp\""))
        .replace("redis3:redis", &format!("{}:redis", redis.name))
        .replace("\"parent\"", &format!("\"{}\"", parent.name))
        .replace("\"other:ro\"", &format!("\"{}:ro\"", other.name))
        .replace("11022", &port.to_string());
    let opts = decode(Some(&b64(&text))).expect("decode").expect("options");
    let p = policy(&format!(
        "allowed_host_paths = {hd}\nallowed_capabilities = NET_ADMIN"
    ));
    assert_eq!(p.check(&opts, &ctx(), &d).await, Ok(()));
    // the default policy still refuses it: host path and capability
    let e = Policy::default()
        .check(&opts, &ctx(), &d)
        .await
        .expect_err("refused");
    assert_eq!(e.refusals.len(), 2, "{e}");

    let c = run_body(&d, opts.body.clone().into(), &[])
        .await
        .expect("container");
    let i = inspect(&d, &c.name).await;
    let h = hc(&i);
    assert_eq!(cfg(&i).cmd.as_deref(), Some(&["date".to_string()][..]));
    assert_eq!(h.binds.as_deref(), Some(&[format!("{hd}:/tmp")][..]));
    assert!(
        h.links.iter().flatten().any(|l| l.contains(&redis.name)),
        "{:?}",
        h.links
    );
    assert_eq!(
        h.volumes_from.as_deref(),
        Some(&[parent.name.clone(), format!("{}:ro", other.name)][..])
    );
    assert_eq!(h.cap_add.as_deref(), Some(&["NET_ADMIN".to_string()][..]));
    assert_eq!(h.cap_drop.as_deref(), Some(&["MKNOD".to_string()][..]));
    assert_eq!(h.dns.as_deref(), Some(&["8.8.8.8".to_string()][..]));
    assert_eq!(h.cpu_shares, Some(512));
    assert_eq!(h.cpuset_cpus.as_deref(), Some("0,1"));
    assert_eq!(
        h.port_bindings
            .as_ref()
            .and_then(|p| p.get("22/tcp").cloned().flatten())
            .and_then(|b| b[0].host_port.clone()),
        Some(port.to_string())
    );
    assert!(cfg(&i)
        .exposed_ports
        .as_ref()
        .is_some_and(|e| e.contains_key("22/tcp")));
    assert!(cfg(&i)
        .volumes
        .as_ref()
        .is_some_and(|v| v.contains_key("/tmp")));
    assert_eq!(cfg(&i).mac_address.as_deref(), Some("12:34:56:78:9a:bc"));

    // a link or volume source that does not exist: a clear refusal, even when
    // the operator allows everything else
    let missing = fixture("horizon-docker-create-body.json")
        .replace("\"/tmp:/tmp\"", &format!("\"{hd}:/tmp\""))
        .replace("\"parent\"", &format!("\"{}\"", parent.name))
        .replace("\"other:ro\"", &format!("\"{}:ro\"", other.name));
    let opts = decode(Some(&b64(&missing)))
        .expect("decode")
        .expect("options");
    let p = policy(&format!("allowed_host_paths = {hd}\nallowed_capabilities = NET_ADMIN\nallow_cross_project_links = True"));
    let e = p.check(&opts, &ctx(), &d).await.expect_err("refused");
    assert_eq!(e.refusals.len(), 1, "{e}");
    assert!(e.to_string().contains("\"redis3\" does not exist"), "{e}");
    drop((redis, parent, other));
}

#[tokio::test]
#[ignore = "needs docker; run by devstack/run-tests.sh"]
async fn docker_lookup_tells_owners_apart() {
    let d = docker().await;
    let mine = source_container(
        &d,
        &[(LABEL_MANAGED_BY, MANAGED_BY), (LABEL_PROJECT_ID, PROJECT)],
    )
    .await;
    let plain = source_container(&d, &[]).await;
    assert_eq!(
        d.owner(&mine.name).await,
        Ok(TargetOwner::Instance {
            project_id: Some(PROJECT.into())
        })
    );
    assert_eq!(d.owner(&plain.name).await, Ok(TargetOwner::NotAnInstance));
    assert_eq!(d.owner(&unique("no-such")).await, Ok(TargetOwner::Missing));
    assert_eq!(d.owner("../../images/json").await, Ok(TargetOwner::Missing));
}

#[tokio::test]
#[ignore = "needs docker; run by devstack/run-tests.sh"]
async fn every_refused_option_end_to_end_by_default() {
    let d = docker().await;
    let theirs = source_container(
        &d,
        &[
            (LABEL_MANAGED_BY, MANAGED_BY),
            (LABEL_PROJECT_ID, "another-project"),
        ],
    )
    .await;
    let plain = source_container(&d, &[]).await;
    let mine = source_container(
        &d,
        &[(LABEL_MANAGED_BY, MANAGED_BY), (LABEL_PROJECT_ID, PROJECT)],
    )
    .await;
    let (t, p, m) = (&theirs.name, &plain.name, &mine.name);
    let ghost = unique("ghost");
    let cases: Vec<(String, String)> = vec![
        (
            "host_config: {privileged: true}".into(),
            "host_config.Privileged true".into(),
        ),
        (
            "volumes: {/etc: /x}".into(),
            "volumes (HostConfig.Binds) host path /etc".into(),
        ),
        (
            "volumes: ['/run/docker.sock:/s']".into(),
            "runtime's socket".into(),
        ),
        (
            "volumes: ['/var/run:/r']".into(),
            "holds the container runtime's socket".into(),
        ),
        (
            "volumes: ['/tmp/../etc:/x']".into(),
            "host path /tmp/../etc".into(),
        ),
        (
            "volumes: ['shared-vol:/x']".into(),
            "named volume shared-vol".into(),
        ),
        (
            r#"{"HostConfig": {"Devices": ["/dev/kmsg"]}}"#.into(),
            "HostConfig.Devices /dev/kmsg".into(),
        ),
        (
            r#"{"HostConfig": {"CapAdd": ["SYS_ADMIN"]}}"#.into(),
            "HostConfig.CapAdd SYS_ADMIN".into(),
        ),
        (
            r#"{"HostConfig": {"NetworkMode": "host"}}"#.into(),
            "HostConfig.NetworkMode host".into(),
        ),
        (
            r#"{"HostConfig": {"PidMode": "host"}}"#.into(),
            "HostConfig.PidMode host".into(),
        ),
        (
            r#"{"HostConfig": {"IpcMode": "host"}}"#.into(),
            "HostConfig.IpcMode host".into(),
        ),
        (
            r#"{"HostConfig": {"UTSMode": "host"}}"#.into(),
            "HostConfig.UTSMode host".into(),
        ),
        (
            r#"{"HostConfig": {"UsernsMode": "host"}}"#.into(),
            "HostConfig.UsernsMode host".into(),
        ),
        (
            r#"{"HostConfig": {"CgroupnsMode": "host"}}"#.into(),
            "HostConfig.CgroupnsMode host".into(),
        ),
        (
            format!(r#"{{"HostConfig": {{"PidMode": "container:{m}"}}}}"#),
            format!("HostConfig.PidMode container:{m}"),
        ),
        (
            format!(r#"{{"HostConfig": {{"NetworkMode": "container:{m}"}}}}"#),
            format!("HostConfig.NetworkMode container:{m}"),
        ),
        (
            r#"{"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}}"#.into(),
            "seccomp".into(),
        ),
        (
            r#"{"HostConfig": {"SecurityOpt": ["apparmor=unconfined"]}}"#.into(),
            "AppArmor".into(),
        ),
        (
            r#"{"HostConfig": {"SecurityOpt": ["label=disable"]}}"#.into(),
            "SELinux".into(),
        ),
        (
            r#"{"HostConfig": {"Sysctls": {"kernel.shm_rmid_forced": "1"}}}"#.into(),
            "HostConfig.Sysctls kernel.shm_rmid_forced=1".into(),
        ),
        (
            format!(r#"{{"HostConfig": {{"Links": ["{t}:db"]}}}}"#),
            "instance of another project".into(),
        ),
        (
            format!("volumes_from: [{t}]"),
            format!("volumes_from (HostConfig.VolumesFrom) {t}"),
        ),
        (
            format!("volumes_from: [{p}]"),
            "is not an instance of project".into(),
        ),
        (
            format!("volumes_from: [{ghost}]"),
            format!("\"{ghost}\" does not exist"),
        ),
        (
            r#"{"HostConfig": {"CgroupParent": "/"}}"#.into(),
            "HostConfig.CgroupParent".into(),
        ),
        (
            r#"{"HostConfig": {"PidsLimit": -1}}"#.into(),
            "HostConfig.PidsLimit -1".into(),
        ),
        (
            r#"{"HostConfig": {"Runtime": "io.containerd.runc.v2"}}"#.into(),
            "HostConfig.Runtime".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (text, needle) in &cases {
        let opts: UserOptions = match decode(Some(&b64(text))) {
            Ok(Some(o)) => o,
            other => {
                failures.push(format!("{text}: decode gave {other:?}"));
                continue;
            }
        };
        match Policy::default().check(&opts, &ctx(), &d).await {
            Ok(()) => failures.push(format!("{text}: allowed")),
            Err(e) if e.refusals.len() != 1 || !e.to_string().contains(needle.as_str()) => {
                failures.push(format!("{text}: {needle:?} not the one refusal in {e}"))
            }
            Err(_) => {}
        }
    }
    // what stays inside the container is allowed, and a same-project link too
    let fine = format!("volumes_from: ['{m}:ro']\nhost_config: {{links: ['{m}:db'], cap_drop: [ALL], dns: [192.0.2.1]}}\n");
    let opts = decode(Some(&b64(&fine))).expect("decode").expect("options");
    if let Err(e) = Policy::default().check(&opts, &ctx(), &d).await {
        failures.push(format!("same-project options refused: {e}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    drop((theirs, plain, mine));
}
