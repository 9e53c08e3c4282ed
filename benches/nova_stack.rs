//! The performance budgets of nova-docker-compute against a real Nova control plane,
//! each checked against a baseline measured in the same run:
//!
//! a. boot: median POST /servers -> ACTIVE over BENCH_BOOTS (10) sequential boots on
//!    `bench-fake` (Python nova-compute, fake driver) and `bench-docker` (ours),
//!    interleaved; target ours < Python+fake.
//! b. RSS of our daemon (VmRSS/VmHWM) idle after registration and with 2 x BENCH_BATCH
//!    (200) instances ACTIVE; Python nova-compute's idle RSS for comparison; targets
//!    <= 20 MiB idle, <= 40 MiB with 200 instances.
//! c. one POST /servers with min_count = max_count = BENCH_BATCH (100) on bench-docker ->
//!    all ACTIVE, against BENCH_BATCH concurrent raw Docker create+start of the same
//!    image with the same memory limit; target <= 1.2x.
//!
//! Run by devstack/bench.sh, which starts both computes and passes their pids in
//! NOVA_DOCKER_BENCH_PID (ours) and NOVA_DOCKER_BENCH_PYTHON_PID. A missed target is
//! reported, not failed; a measurement that cannot be made exits non-zero.

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use e2e_support::Stack;
use futures_util::future::join_all;
use serde_json::{json, Value};

const MIB: f64 = 1024.0 * 1024.0;
const FLAVOR_RAM_MB: i64 = 64;

fn env_or(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

fn env_num(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("nova_stack bench: measurement failed: {msg}");
    std::process::exit(2)
}

/// (VmRSS, VmHWM) in bytes of a process.
fn rss(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| die(format!("/proc/{pid}/status: {e}")));
    let field = |name: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| die(format!("no {name} in /proc/{pid}/status")))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn threads(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .map(|l| l[8..].trim().to_string())
        })
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

struct Row {
    what: String,
    value: String,
    target: String,
    result: &'static str,
}

struct Bench {
    stack: Stack,
    image: String,
    flavor: String,
    poll: Duration,
}

impl Bench {
    /// Lift the instance/core/RAM quotas so 200 instances fit. Without Keystone Nova
    /// cannot check a project id, so this sets the default quota class of the lab.
    async fn unlimited_quota(&self) {
        let (st, v) = self
            .stack
            .call(
                reqwest::Method::PUT,
                &format!("{}/os-quota-class-sets/default", self.stack.nova),
                Some(json!({"quota_class_set": {"instances": -1, "cores": -1, "ram": -1}})),
            )
            .await;
        if st != 200 {
            die(format!("quota class update: {st} {v}"));
        }
    }

    async fn post_servers(&self, name: &str, host: &str, count: usize) -> String {
        let mut server = json!({"name": name, "imageRef": self.image, "flavorRef": self.flavor,
                                "networks": "none", "availability_zone": format!("nova:{host}")});
        if count > 1 {
            server["min_count"] = json!(count);
            server["max_count"] = json!(count);
            server["return_reservation_id"] = json!(true);
        }
        let (st, v) = self
            .stack
            .call(
                reqwest::Method::POST,
                &format!("{}/servers", self.stack.nova),
                Some(json!({"server": server})),
            )
            .await;
        if st != 202 {
            die(format!("POST /servers on {host}: {st} {v}"));
        }
        let key = if count > 1 {
            v["reservation_id"].as_str()
        } else {
            v["server"]["id"].as_str()
        };
        key.map(str::to_string)
            .unwrap_or_else(|| die(format!("POST /servers answer: {v}")))
    }

    /// One boot: POST -> ACTIVE (no task state); the server is deleted afterwards.
    async fn boot_once(&self, host: &str) -> f64 {
        let t = Instant::now();
        let id = self.post_servers(&format!("bench-{host}"), host, 1).await;
        loop {
            let (st, v) = self
                .stack
                .call(
                    reqwest::Method::GET,
                    &format!("{}/servers/{id}", self.stack.nova),
                    None,
                )
                .await;
            if st == 200 {
                let s = &v["server"];
                if s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null() {
                    break;
                }
                if s["status"] == "ERROR" {
                    die(format!(
                        "server {id} on {host} went to ERROR: {}",
                        s["fault"]
                    ));
                }
            }
            if t.elapsed() > Duration::from_secs(120) {
                die(format!("server {id} on {host} not ACTIVE after 120 s"));
            }
            tokio::time::sleep(self.poll).await;
        }
        let secs = t.elapsed().as_secs_f64();
        self.stack.delete_server(&id).await;
        self.stack.wait_gone(&id, Duration::from_secs(120)).await;
        secs
    }

    async fn servers_of(&self, reservation: &str) -> Vec<Value> {
        let v = self
            .stack
            .get(&format!(
                "{}/servers/detail?reservation_id={reservation}&limit=1000",
                self.stack.nova
            ))
            .await;
        v["servers"].as_array().cloned().unwrap_or_default()
    }

    /// POST min_count = max_count = n -> all n ACTIVE; returns (seconds, server ids).
    async fn batch(&self, host: &str, n: usize, tag: &str) -> (f64, Vec<String>) {
        let t = Instant::now();
        let r = self
            .post_servers(&format!("bench-batch-{tag}"), host, n)
            .await;
        loop {
            let servers = self.servers_of(&r).await;
            if let Some(bad) = servers.iter().find(|s| s["status"] == "ERROR") {
                die(format!(
                    "server {} of batch {tag} went to ERROR: {}",
                    bad["id"], bad["fault"]
                ));
            }
            let active = servers
                .iter()
                .filter(|s| s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null())
                .count();
            if servers.len() == n && active == n {
                let ids = servers
                    .iter()
                    .filter_map(|s| s["id"].as_str().map(str::to_string))
                    .collect();
                return (t.elapsed().as_secs_f64(), ids);
            }
            if t.elapsed() > Duration::from_secs(900) {
                die(format!("batch {tag}: {active}/{n} ACTIVE after 900 s"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// n concurrent raw create+start of the image with the flavor's memory limit; seconds
/// until all are started. The containers are removed afterwards.
async fn raw_docker(docker: &Docker, image: &str, n: usize) -> f64 {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let names: Vec<String> = (0..n)
        .map(|i| format!("ndbench-raw-{}-{i}", &run[..8]))
        .collect();
    let t = Instant::now();
    let results = join_all(names.iter().map(|name| async move {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            host_config: Some(HostConfig {
                memory: Some(FLAVOR_RAM_MB * 1024 * 1024),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(name.clone()),
            platform: String::new(),
        };
        docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| e.to_string())?;
        docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(|e| e.to_string())
    }))
    .await;
    let secs = t.elapsed().as_secs_f64();
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    join_all(names.iter().map(|name| {
        docker.remove_container(
            name,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
    }))
    .await;
    if !failed.is_empty() {
        die(format!(
            "raw docker: {} of {n} failed, first: {}",
            failed.len(),
            failed[0]
        ));
    }
    secs
}

/// Number of containers our driver made for `host` (by its host label).
async fn nova_containers(docker: &Docker, host: &str) -> usize {
    let mut filters = std::collections::HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("{}={host}", nova_docker::virt::LABEL_HOST)],
    );
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map(|v| v.len())
        .unwrap_or_else(|e| die(format!("docker ps: {e}")))
}

fn pid_env(k: &str) -> u32 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            die(format!(
                "{k} (the pid of a compute service) is not set; run devstack/bench.sh"
            ))
        })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo test --benches` builds and runs benches with --test-ish args; do nothing then.
    if std::env::args().any(|a| a == "--list" || a == "--test")
        || std::env::var_os("NOVA_DOCKER_BENCH_PID").is_none()
    {
        if std::env::var_os("NOVA_DOCKER_BENCH_PID").is_none() {
            eprintln!(
                "nova_stack: NOVA_DOCKER_BENCH_PID not set; run devstack/bench.sh (skipping)"
            );
        }
        return;
    }
    let ours_pid = pid_env("NOVA_DOCKER_BENCH_PID");
    let py_pid = pid_env("NOVA_DOCKER_BENCH_PYTHON_PID");
    let fake_host = env_or("NOVA_DOCKER_BENCH_FAKE_HOST", "bench-fake");
    let our_host = env_or("NOVA_DOCKER_BENCH_HOST", "bench-docker");
    let boots = env_num("BENCH_BOOTS", 10);
    let n = env_num("BENCH_BATCH", 100);
    let poll = Duration::from_millis(env_num("BENCH_POLL_MS", 50) as u64);
    let docker_ref = env_or("NOVA_DOCKER_TEST_IMAGE", "nova-docker-test/busybox:latest");
    let docker =
        Docker::connect_with_local_defaults().unwrap_or_else(|e| die(format!("docker: {e}")));

    let stack = Stack::from_env();
    let image = stack.docker_image("nd-bench-busybox", &docker_ref).await;
    let flavor = stack.flavor("nd.bench", FLAVOR_RAM_MB, 1).await;
    let b = Bench {
        stack,
        image,
        flavor,
        poll,
    };
    b.unlimited_quota().await;
    let mut rows: Vec<Row> = Vec::new();
    let mut loads = vec![format!("start {}", loadavg())];

    // b. idle RSS, before any instance
    let (idle_rss, idle_hwm) = rss(ours_pid);
    let (py_rss, py_hwm) = rss(py_pid);
    println!(
        "idle: ours VmRSS {:.1} MiB VmHWM {:.1} MiB ({} threads); python nova-compute VmRSS {:.1} MiB VmHWM {:.1} MiB",
        idle_rss as f64 / MIB, idle_hwm as f64 / MIB, threads(ours_pid), py_rss as f64 / MIB, py_hwm as f64 / MIB
    );

    // a. boots, interleaved; one warm-up each (image load into Docker, Python's first build)
    let w_fake = b.boot_once(&fake_host).await;
    let w_ours = b.boot_once(&our_host).await;
    println!("warm-up boot: python+fake {w_fake:.3} s, ours {w_ours:.3} s (image load)");
    let (mut py, mut ours) = (Vec::new(), Vec::new());
    for i in 0..boots {
        if i % 2 == 0 {
            py.push(b.boot_once(&fake_host).await);
            ours.push(b.boot_once(&our_host).await);
        } else {
            ours.push(b.boot_once(&our_host).await);
            py.push(b.boot_once(&fake_host).await);
        }
    }
    println!(
        "boot python+fake s: {}",
        py.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "boot ours        s: {}",
        ours.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (m_py, m_ours) = (median(&mut py), median(&mut ours));
    loads.push(format!("after boots {}", loadavg()));
    rows.push(Row {
        what: format!("boot median, python+fake ({boots} boots)"),
        value: format!("{m_py:.3} s"),
        target: "baseline".into(),
        result: "-",
    });
    rows.push(Row {
        what: format!("boot median, ours ({boots} boots)"),
        value: format!("{m_ours:.3} s (ratio ours/python {:.2})", m_ours / m_py),
        target: "< python+fake".into(),
        result: verdict(m_ours < m_py),
    });

    // c. 100 at once, against raw Docker in the same run
    let raw = raw_docker(&docker, &docker_ref, n).await;
    println!("{n} concurrent raw docker create+start: {raw:.2} s");
    // the control plane's own floor: the same request on Python nova-compute + fake driver
    let (t_fake, fake_ids) = b.batch(&fake_host, n, "fake").await;
    println!("{n} at once on python+fake: {t_fake:.2} s");
    join_all(fake_ids.iter().map(|id| b.stack.delete_server(id))).await;
    for id in &fake_ids {
        b.stack.wait_gone(id, Duration::from_secs(600)).await;
    }
    let (t1, mut ids) = b.batch(&our_host, n, "1").await;
    println!("{n} at once on ours: {t1:.2} s");
    loads.push(format!("after batch 1 {}", loadavg()));
    rows.push(Row {
        what: format!("{n} concurrent raw docker create+start"),
        value: format!("{raw:.2} s"),
        target: "baseline".into(),
        result: "-",
    });
    rows.push(Row {
        what: format!("{n} at once (min_count={n}) -> all ACTIVE"),
        value: format!("{t1:.2} s (ratio {:.2}x)", t1 / raw),
        target: "<= 1.2x raw".into(),
        result: verdict(t1 / raw <= 1.2),
    });
    rows.push(Row {
        what: format!("{n} at once on python+fake (control-plane floor)"),
        value: format!("{t_fake:.2} s (ours/python+fake {:.2})", t1 / t_fake),
        target: "comparison".into(),
        result: "-",
    });
    let (t2, ids2) = b.batch(&our_host, n, "2").await;
    ids.extend(ids2);
    println!("second batch of {n} (with {n} running): {t2:.2} s");
    // let the periodic tasks (resource report, power sync) run with 200 instances
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (full_rss, full_hwm) = rss(ours_pid);
    loads.push(format!("with {} instances {}", ids.len(), loadavg()));
    rows.push(Row {
        what: "ours RSS idle after registration".into(),
        value: format!(
            "VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            idle_rss as f64 / MIB,
            idle_hwm as f64 / MIB
        ),
        target: "<= 20 MiB".into(),
        result: verdict(idle_rss as f64 <= 20.0 * MIB),
    });
    rows.push(Row {
        what: format!("ours RSS with {} instances ACTIVE", ids.len()),
        value: format!(
            "VmRSS {:.1} MiB, VmHWM {:.1} MiB ({} threads)",
            full_rss as f64 / MIB,
            full_hwm as f64 / MIB,
            threads(ours_pid)
        ),
        target: "<= 40 MiB".into(),
        result: verdict(full_hwm as f64 <= 40.0 * MIB),
    });
    rows.push(Row {
        what: "python nova-compute (fake) RSS idle".into(),
        value: format!(
            "VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            py_rss as f64 / MIB,
            py_hwm as f64 / MIB
        ),
        target: "comparison".into(),
        result: "-",
    });

    // clean up: delete all, wait until the servers and their containers are gone
    let t = Instant::now();
    join_all(ids.iter().map(|id| b.stack.delete_server(id))).await;
    for id in &ids {
        b.stack.wait_gone(id, Duration::from_secs(600)).await;
    }
    loop {
        let left = nova_containers(&docker, &our_host).await;
        if left == 0 {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            die(format!(
                "{left} nova- containers left 600 s after the delete"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "deleted {} servers and their containers in {:.1} s",
        ids.len(),
        t.elapsed().as_secs_f64()
    );
    let (end_rss, end_hwm) = rss(ours_pid);
    println!(
        "ours after delete: VmRSS {:.1} MiB VmHWM {:.1} MiB",
        end_rss as f64 / MIB,
        end_hwm as f64 / MIB
    );

    println!();
    println!(
        "{:<46} | {:<52} | {:<15} | result",
        "figure", "value", "target"
    );
    println!("{}", "-".repeat(128));
    for r in &rows {
        println!(
            "{:<46} | {:<52} | {:<15} | {}",
            r.what, r.value, r.target, r.result
        );
    }
    println!("load average (1/5/15 min): {}", loads.join("; "));
}
