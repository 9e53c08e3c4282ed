//! The performance budgets of nova-docker-compute against a real Nova control plane,
//! each against a baseline measured in the same run. Run by devstack/bench.sh, which
//! writes the start scripts of the computes and collects the rows this writes (to
//! NOVA_DOCKER_BENCH_RESULTS) into its final table. Two phases:
//!
//! `main` (hosts `bench-fake`: Python nova-compute with the fake driver, and
//! `bench-docker`: ours; all servers with `networks: none`):
//!
//! 7. start-up: each compute started by this bench, one after the other, from a
//!    service record that is down: seconds until Nova has it up (os-services `up`,
//!    its resource provider in placement, its compute queue consumed), and until a
//!    server created right then is ACTIVE (the `discover_hosts` between is not
//!    counted). Ours / Python.
//! 1. boot: median POST /servers -> ACTIVE over BENCH_BOOTS (10) boots on each host,
//!    alternating. Ours / Python + fake, goal <= 1.0.
//! 4. one POST with min_count = max_count = BENCH_BATCH (100) on ours: POST to the
//!    last "instance is ACTIVE" of our log, against the time the control plane took
//!    to hand out the builds (POST to the last "build_and_run_instance received" of
//!    our log) plus one raw Docker create+start (median of 5), goal <= 1.1; and
//!    POST -> all ACTIVE as the API shows it, ours / Python + fake, goal <= 0.3.
//!    Python's batch runs first and stays (ours then builds beside it); a second
//!    batch on each makes the 200 of figure 6.
//! 6. RSS idle and with 2 x BENCH_BATCH (200) instances (<= 20 / 40 MiB; Python's
//!    beside), and the CPU time (utime + stime of /proc/<pid>/stat) of both
//!    computes over BENCH_IDLE_S (120) idle seconds, each holding 200 instances,
//!    per hour: ours / Python, goal <= 0.1.
//!
//! `net` (ours under the lab's host name, the OVN chassis Neutron binds ports to):
//!
//! 2. BENCH_NET_BOOTS (10) boots on network `private`: from the arrival of Neutron's
//!    `network-vif-plugged` at our daemon (the last "external instance event" the
//!    build waited for, in its log) to "instance is ACTIVE" (logged after the save),
//!    median; goal <= 0.1 s. Beside it
//!    the median POST -> ACTIVE of those boots, and the share that is ours.
//!
//! Times from our log are its timestamps (tracing's RFC 3339, microseconds, UTC)
//! against this process' wall clock, on the same machine. A missed goal is
//! reported, not failed; a measurement that cannot be made exits non-zero.

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use chrono::{DateTime, TimeZone, Utc};
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

fn env_path(k: &str) -> PathBuf {
    std::env::var_os(k)
        .map(PathBuf::from)
        .unwrap_or_else(|| die(format!("{k} is not set; run devstack/bench.sh")))
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

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| die(format!("/proc/{pid}/stat: {e}")));
    // after the command name in parentheses: state is [0], utime (field 14) [11]
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    if f.len() != 2 {
        die(format!("no utime/stime in /proc/{pid}/stat"));
    }
    f[0] + f[1]
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
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

fn list(v: &[f64], scale: f64, digits: usize) -> String {
    v.iter()
        .map(|x| format!("{:.*}", digits, x * scale))
        .collect::<Vec<_>>()
        .join(" ")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// One row of the final table.
struct Row {
    id: &'static str,
    figure: String,
    ours: String,
    baseline: String,
    ratio: String,
    goal: String,
    result: &'static str,
}

/// Rows go to stdout as they are made, and to the results file of bench.sh.
struct Results {
    file: PathBuf,
}

impl Results {
    fn add(&self, r: Row) {
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        println!(
            "RESULT {} | {} | {} | {} | {} | {} | {}",
            r.id, r.figure, r.ours, r.baseline, r.ratio, r.goal, r.result
        );
        let line = [
            r.id,
            &clean(&r.figure),
            &clean(&r.ours),
            &clean(&r.baseline),
            &clean(&r.ratio),
            &clean(&r.goal),
            r.result,
        ]
        .join("\t");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .unwrap_or_else(|e| die(format!("{}: {e}", self.file.display())));
        writeln!(f, "{line}").unwrap_or_else(|e| die(format!("{}: {e}", self.file.display())));
    }
}

/// A compute started by this bench from a start script bench.sh wrote (the
/// script execs the service, so the child's pid is the service's).
struct Compute {
    name: String,
    host: String,
    /// our daemon's log (only ours: the bench reads its lines)
    log: Option<PathBuf>,
    child: Child,
}

impl Compute {
    fn start(name: &str, host: &str, script: &Path, log: Option<PathBuf>) -> Self {
        let child = Command::new("bash")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| die(format!("{}: {e}", script.display())));
        Compute {
            name: name.into(),
            host: host.into(),
            log,
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            die(format!(
                "{} ({}) exited with {st}; see its log in $ND_STATE/run",
                self.name, self.host
            ));
        }
    }

    async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of our daemon's log with `message` and each of `also`: (timestamp,
/// instance uuid).
fn log_lines(path: &Path, message: &str, also: &[&str]) -> Vec<(DateTime<Utc>, String)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| die(format!("{}: {e}", path.display())));
    text.lines()
        .filter(|l| l.contains(message) && also.iter().all(|a| l.contains(a)))
        .filter_map(|l| {
            // oslo.log's `2026-12-02 05:44:15.045 <pid> ...`, local time
            let mut f = l.splitn(3, ' ');
            let stamp = format!("{} {}", f.next()?, f.next()?);
            let at = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S%.3f").ok()?;
            let at = chrono::Local
                .from_local_datetime(&at)
                .earliest()?
                .with_timezone(&Utc);
            let rest = &l[l.find("[instance: ")? + "[instance: ".len()..];
            let uuid: String = rest
                .chars()
                .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
                .collect();
            Some((at, uuid))
        })
        .collect()
}

fn secs_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
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

    async fn post_servers(&self, name: &str, host: &str, count: usize, networks: Value) -> String {
        let mut server = json!({"name": name, "imageRef": self.image, "flavorRef": self.flavor,
                                "networks": networks, "availability_zone": format!("nova:{host}")});
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

    /// Poll until the server is ACTIVE with no task state.
    async fn wait_active(&self, id: &str, host: &str, t: Instant) {
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
                    return;
                }
                if s["status"] == "ERROR" {
                    die(format!(
                        "server {id} on {host} went to ERROR: {}",
                        s["fault"]
                    ));
                }
            }
            if t.elapsed() > Duration::from_secs(180) {
                die(format!("server {id} on {host} not ACTIVE after 180 s"));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn delete(&self, id: &str) {
        self.stack.delete_server(id).await;
        self.stack.wait_gone(id, Duration::from_secs(180)).await;
    }

    /// One boot: POST -> ACTIVE (no task state); (seconds, id). Not deleted.
    async fn boot(&self, name: &str, host: &str, networks: Value) -> (f64, String) {
        let t = Instant::now();
        let id = self.post_servers(name, host, 1, networks).await;
        self.wait_active(&id, host, t).await;
        (t.elapsed().as_secs_f64(), id)
    }

    /// One boot with no network, deleted afterwards; seconds to ACTIVE.
    async fn boot_once(&self, host: &str) -> f64 {
        let (secs, id) = self
            .boot(&format!("bench-{host}"), host, json!("none"))
            .await;
        self.delete(&id).await;
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

    /// POST min_count = max_count = n -> all n ACTIVE; returns (when the POST was
    /// sent, seconds, server ids).
    async fn batch(&self, host: &str, n: usize, tag: &str) -> (DateTime<Utc>, f64, Vec<String>) {
        let posted = Utc::now();
        let t = Instant::now();
        let r = self
            .post_servers(&format!("bench-batch-{tag}"), host, n, json!("none"))
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
                return (posted, t.elapsed().as_secs_f64(), ids);
            }
            if t.elapsed() > Duration::from_secs(900) {
                die(format!("batch {tag}: {active}/{n} ACTIVE after 900 s"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn delete_all(&self, ids: &[String]) {
        join_all(ids.iter().map(|id| self.stack.delete_server(id))).await;
        for id in ids {
            self.stack.wait_gone(id, Duration::from_secs(600)).await;
        }
    }

    /// Servers on `host` (of any project): what an interrupted run left.
    async fn servers_on(&self, host: &str) -> Vec<String> {
        let v = self
            .stack
            .get(&format!(
                "{}/servers?all_tenants=1&host={host}&limit=1000",
                self.stack.nova
            ))
            .await;
        v["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Die at once unless placement has room for `need` servers of the bench
    /// flavor on `host` (VCPU and MEMORY_MB; total - reserved, times the ratio).
    async fn check_capacity(&self, host: &str, need: usize) {
        let rp = self
            .stack
            .get(&format!(
                "{}/resource_providers?name={host}",
                self.stack.placement
            ))
            .await;
        let uuid = rp["resource_providers"][0]["uuid"]
            .as_str()
            .unwrap_or_else(|| die(format!("no resource provider {host}")))
            .to_string();
        let inv = self
            .stack
            .get(&format!(
                "{}/resource_providers/{uuid}/inventories",
                self.stack.placement
            ))
            .await;
        for (rc, per) in [("VCPU", 1.0), ("MEMORY_MB", FLAVOR_RAM_MB as f64)] {
            let i = &inv["inventories"][rc];
            let room = (i["total"].as_f64().unwrap_or(0.0) - i["reserved"].as_f64().unwrap_or(0.0))
                * i["allocation_ratio"].as_f64().unwrap_or(0.0);
            if room < per * need as f64 {
                die(format!(
                    "{host} has room in placement for {room} {rc}, {need} servers need {}: raise its allocation ratio",
                    per * need as f64
                ));
            }
        }
    }

    async fn service_up(&self, host: &str) -> bool {
        self.stack.service_state(host).await.as_deref() == Some("up")
    }

    async fn has_provider(&self, host: &str) -> bool {
        let rp = self
            .stack
            .get(&format!(
                "{}/resource_providers?name={host}",
                self.stack.placement
            ))
            .await;
        rp["resource_providers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    }

    /// Up as Nova sees it: `up` in os-services, a resource provider, and (ours:
    /// its log says so) the compute queue consumed. Python nova-compute starts its
    /// RPC server before its first heartbeat; ours heartbeats from before it
    /// consumes, so the log line makes the two the same condition.
    async fn wait_up(&self, c: &mut Compute, every: Duration) {
        let t = Instant::now();
        loop {
            c.check_alive();
            let consuming = c.log.as_ref().is_none_or(|l| {
                std::fs::read_to_string(l).is_ok_and(|s| s.contains("RPC server consuming"))
            });
            if consuming && self.service_up(&c.host).await && self.has_provider(&c.host).await {
                return;
            }
            if t.elapsed() > Duration::from_secs(180) {
                die(format!("{} ({}) not up after 180 s", c.name, c.host));
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Wait until a host's service is not `up` (a compute stopped less than
    /// service_down_time ago still is).
    async fn wait_down(&self, host: &str) {
        let t = Instant::now();
        while self.service_up(host).await {
            if t.elapsed() > Duration::from_secs(90) {
                die(format!(
                    "the service of {host} is up before its start: does another compute run as {host}?"
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// nova-manage cell_v2 discover_hosts (maps a new host to the cell).
    fn discover_hosts(&self) -> f64 {
        let t = Instant::now();
        let st = Command::new(self.stack.venv.join("bin/nova-manage"))
            .arg("--config-file")
            .arg(self.stack.state.join("etc/nova/nova.conf"))
            .args(["cell_v2", "discover_hosts"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| die(format!("nova-manage: {e}")));
        if !st.success() {
            die("nova-manage cell_v2 discover_hosts failed");
        }
        t.elapsed().as_secs_f64()
    }

    /// Start a compute and time it: (compute, seconds to up, seconds to the first
    /// server ACTIVE, discover_hosts not counted).
    async fn start_timed(
        &self,
        name: &str,
        host: &str,
        script: &Path,
        log: Option<PathBuf>,
    ) -> (Compute, f64, f64) {
        self.wait_down(host).await;
        let t = Instant::now();
        let mut c = Compute::start(name, host, script, log);
        self.wait_up(&mut c, self.poll * 5).await;
        let up = t.elapsed().as_secs_f64();
        let discover = self.discover_hosts();
        let (boot, id) = self
            .boot(&format!("bench-first-{host}"), host, json!("none"))
            .await;
        println!(
            "start-up of {name}: up after {up:.2} s, first server ACTIVE {boot:.2} s later (discover_hosts {discover:.2} s between, not counted)"
        );
        self.delete(&id).await;
        (c, up, up + boot)
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
                network_mode: Some("none".into()),
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

/// The latest log timestamp of `message` for each of `ids`; the latest of all.
fn last_of(log: &Path, message: &str, ids: &[String]) -> DateTime<Utc> {
    let lines = log_lines(log, message, &[]);
    let mut last = None;
    for id in ids {
        let t = lines
            .iter()
            .filter(|(_, u)| u == id)
            .map(|(t, _)| *t)
            .max()
            .unwrap_or_else(|| {
                die(format!(
                    "no \"{message}\" line for {id} in {}",
                    log.display()
                ))
            });
        last = last.max(Some(t));
    }
    last.unwrap_or_else(|| die("no servers"))
}

async fn main_phase(b: &Bench, docker: &Docker, docker_ref: &str, out: &Results) {
    let fake_host = env_or("NOVA_DOCKER_BENCH_FAKE_HOST", "bench-fake");
    let our_host = env_or("NOVA_DOCKER_BENCH_HOST", "bench-docker");
    let py_script = env_path("NOVA_DOCKER_BENCH_PY_START");
    let our_script = env_path("NOVA_DOCKER_BENCH_OUR_START");
    let our_log = env_path("NOVA_DOCKER_BENCH_OUR_LOG");
    let boots = env_num("BENCH_BOOTS", 10);
    let n = env_num("BENCH_BATCH", 100);
    let idle_s = env_num("BENCH_IDLE_S", 120) as u64;
    let mut loads = vec![format!("start {}", loadavg())];

    // 7. start-up, one after the other
    let (py, py_up, py_first) = b
        .start_timed("python+fake", &fake_host, &py_script, None)
        .await;
    let (ours, our_up, our_first) = b
        .start_timed("ours", &our_host, &our_script, Some(our_log.clone()))
        .await;
    let (py_pid, our_pid) = (py.pid(), ours.pid());
    // what an interrupted run left on these hosts
    let mut left = b.servers_on(&fake_host).await;
    left.extend(b.servers_on(&our_host).await);
    if !left.is_empty() {
        println!("deleting {} servers an earlier run left", left.len());
        b.delete_all(&left).await;
    }
    out.add(Row {
        id: "7a",
        figure: "compute start -> service up (os-services up, provider, queue)".into(),
        ours: format!("{our_up:.2} s"),
        baseline: format!("{py_up:.2} s python"),
        ratio: format!("{:.2}", our_up / py_up),
        goal: "<= 1.0".into(),
        result: verdict(our_up <= py_up),
    });
    out.add(Row {
        id: "7b",
        figure: "compute start -> first server ACTIVE".into(),
        ours: format!("{our_first:.2} s"),
        baseline: format!("{py_first:.2} s python"),
        ratio: format!("{:.2}", our_first / py_first),
        goal: "<= 1.0".into(),
        result: verdict(our_first <= py_first),
    });

    // 6a. idle RSS, after start-up and its one server
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle_rss, idle_hwm) = rss(our_pid);
    let (py_rss, py_hwm) = rss(py_pid);
    println!(
        "idle: ours VmRSS {:.1} MiB VmHWM {:.1} MiB ({} threads); python nova-compute VmRSS {:.1} MiB VmHWM {:.1} MiB",
        idle_rss as f64 / MIB, idle_hwm as f64 / MIB, threads(our_pid), py_rss as f64 / MIB, py_hwm as f64 / MIB
    );

    // 1. boots, alternating; one warm-up each
    let w_fake = b.boot_once(&fake_host).await;
    let w_ours = b.boot_once(&our_host).await;
    println!("warm-up boot: python+fake {w_fake:.3} s, ours {w_ours:.3} s");
    let (mut py_b, mut ours_b) = (Vec::new(), Vec::new());
    for i in 0..boots {
        if i % 2 == 0 {
            py_b.push(b.boot_once(&fake_host).await);
            ours_b.push(b.boot_once(&our_host).await);
        } else {
            ours_b.push(b.boot_once(&our_host).await);
            py_b.push(b.boot_once(&fake_host).await);
        }
    }
    println!("boot python+fake s: {}", list(&py_b, 1.0, 3));
    println!("boot ours        s: {}", list(&ours_b, 1.0, 3));
    let (m_py, m_ours) = (median(&py_b), median(&ours_b));
    loads.push(format!("after boots {}", loadavg()));
    out.add(Row {
        id: "1",
        figure: format!("boot, networks none: POST -> ACTIVE, median of {boots}"),
        ours: format!("{m_ours:.3} s"),
        baseline: format!("{m_py:.3} s python+fake"),
        ratio: format!("{:.2}", m_ours / m_py),
        goal: "<= 1.0".into(),
        result: verdict(m_ours <= m_py),
    });

    // 4. n at once
    let mut raw1 = Vec::new();
    for _ in 0..5 {
        raw1.push(raw_docker(docker, docker_ref, 1).await);
    }
    let raw1 = median(&raw1);
    println!(
        "one raw docker create+start (median of 5): {:.1} ms",
        raw1 * 1e3
    );
    b.check_capacity(&our_host, 2 * n).await;
    b.check_capacity(&fake_host, 2 * n).await;
    // Python first, with nothing else running; its servers stay (the first half of
    // the 2n it holds for the idle figures): ours then builds beside Python's idle
    // periodic work, which can only slow ours
    let (_, t_fake, mut fake_ids) = b.batch(&fake_host, n, "fake").await;
    println!("{n} at once on python+fake: {t_fake:.2} s");
    let (posted, t1, mut ids) = b.batch(&our_host, n, "1").await;
    let handout = secs_between(
        posted,
        last_of(&our_log, "build_and_run_instance received", &ids),
    );
    let all_active = secs_between(posted, last_of(&our_log, "instance is ACTIVE", &ids));
    println!(
        "{n} at once on ours: {t1:.2} s (API); from our log: last build_and_run_instance {handout:.2} s, last ACTIVE {all_active:.2} s after the POST"
    );
    loads.push(format!("after batch 1 {}", loadavg()));
    let floor = handout + raw1;
    out.add(Row {
        id: "4a",
        figure: format!("{n} at once: POST -> last ACTIVE (our log)"),
        ours: format!("{all_active:.2} s"),
        baseline: format!(
            "{floor:.2} s = hand-out {handout:.2} + raw create+start {:.3}",
            raw1
        ),
        ratio: format!("{:.2}", all_active / floor),
        goal: "<= 1.1".into(),
        result: verdict(all_active / floor <= 1.1),
    });
    out.add(Row {
        id: "4b",
        figure: format!("{n} at once: POST -> all ACTIVE (API)"),
        ours: format!("{t1:.2} s"),
        baseline: format!("{t_fake:.2} s python+fake"),
        ratio: format!("{:.2}", t1 / t_fake),
        goal: "<= 0.3".into(),
        result: verdict(t1 / t_fake <= 0.3),
    });
    let (_, t2, ids2) = b.batch(&our_host, n, "2").await;
    ids.extend(ids2);
    println!("second batch of {n} on ours (with {n} running): {t2:.2} s");
    let (_, t_fake2, fake_ids2) = b.batch(&fake_host, n, "fake-2").await;
    fake_ids.extend(fake_ids2);
    println!(
        "second batch of {n} on python+fake (with {n} held, and ours with {}): {t_fake2:.2} s",
        ids.len()
    );

    // 6. with 2n instances each: RSS, then CPU over an idle window
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (full_rss, full_hwm) = rss(our_pid);
    let (py_full_rss, py_full_hwm) = rss(py_pid);
    loads.push(format!("with {} instances each {}", ids.len(), loadavg()));
    let tck = clock_ticks_per_sec();
    let (o0, p0) = (cpu_ticks(our_pid), cpu_ticks(py_pid));
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_s)).await;
    let (o1, p1) = (cpu_ticks(our_pid), cpu_ticks(py_pid));
    let window = t.elapsed().as_secs_f64();
    loads.push(format!("after the idle window {}", loadavg()));
    let per_hour = |ticks: u64| ticks as f64 / tck * 3600.0 / window;
    let (o_h, p_h) = (per_hour(o1 - o0), per_hour(p1 - p0));
    println!(
        "CPU over {window:.0} idle s with {} instances each: ours {} ticks, python {} ticks ({tck} per s)",
        ids.len(),
        o1 - o0,
        p1 - p0
    );
    out.add(Row {
        id: "6a",
        figure: "RSS idle (after start-up and one server)".into(),
        ours: format!("{:.1} MiB", idle_rss as f64 / MIB),
        baseline: format!("{:.1} MiB python+fake", py_rss as f64 / MIB),
        ratio: format!("{:.2}", idle_rss as f64 / py_rss as f64),
        goal: "<= 20 MiB".into(),
        result: verdict(idle_rss as f64 <= 20.0 * MIB),
    });
    out.add(Row {
        id: "6b",
        figure: format!("RSS with {} instances (VmHWM, peak)", ids.len()),
        ours: format!(
            "{:.1} MiB (VmRSS {:.1})",
            full_hwm as f64 / MIB,
            full_rss as f64 / MIB
        ),
        baseline: format!(
            "{:.1} MiB python+fake (VmRSS {:.1})",
            py_full_hwm as f64 / MIB,
            py_full_rss as f64 / MIB
        ),
        ratio: format!("{:.2}", full_hwm as f64 / py_full_hwm as f64),
        goal: "<= 40 MiB".into(),
        result: verdict(full_hwm as f64 <= 40.0 * MIB),
    });
    out.add(Row {
        id: "6c",
        figure: format!(
            "CPU per hour idle with {} instances ({window:.0} s window)",
            ids.len()
        ),
        ours: format!("{o_h:.1} s/h"),
        baseline: format!("{p_h:.1} s/h python+fake"),
        ratio: format!("{:.3}", o_h / p_h),
        goal: "<= 0.1".into(),
        result: verdict(o_h / p_h <= 0.1),
    });
    println!(
        "ours with {} instances: {} threads",
        ids.len(),
        threads(our_pid)
    );

    // clean up: delete all, wait until the servers and our containers are gone
    let t = Instant::now();
    let mut all = ids.clone();
    all.extend(fake_ids);
    b.delete_all(&all).await;
    loop {
        let left = nova_containers(docker, &our_host).await;
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
        all.len(),
        t.elapsed().as_secs_f64()
    );
    let (end_rss, end_hwm) = rss(our_pid);
    println!(
        "ours after delete: VmRSS {:.1} MiB VmHWM {:.1} MiB",
        end_rss as f64 / MIB,
        end_hwm as f64 / MIB
    );
    println!("load average (1/5/15 min): {}", loads.join("; "));
    ours.stop().await;
    py.stop().await;
}

async fn net_phase(b: &Bench, out: &Results) {
    let host = env_or("NOVA_DOCKER_BENCH_NET_HOST", &e2e_support::lab_host());
    let script = env_path("NOVA_DOCKER_BENCH_NET_START");
    let log = env_path("NOVA_DOCKER_BENCH_NET_LOG");
    let boots = env_num("BENCH_NET_BOOTS", 10);
    let mut c = Compute::start("ours", &host, &script, Some(log.clone()));
    b.wait_up(&mut c, Duration::from_millis(500)).await;
    let net = json!([{ "uuid": b.stack.network_id("private").await }]);
    // warm-up: the image into Docker, the first port of this daemon
    let (w, id) = b.boot("bench-net", &host, net.clone()).await;
    b.delete(&id).await;
    println!("warm-up boot on private: {w:.3} s");
    let (mut total, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..boots {
        let (secs, id) = b.boot("bench-net", &host, net.clone()).await;
        let active = last_of(&log, "instance is ACTIVE", std::slice::from_ref(&id));
        // the last event the build waited for (Neutron sends more, some after
        // ACTIVE: those nobody waits for)
        let waited = ["network-vif-plugged", "waited=true"];
        let ev = log_lines(&log, "external instance event", &waited)
            .iter()
            .filter(|(t, u)| *u == id && *t <= active)
            .map(|(t, _)| *t)
            .max()
            .unwrap_or_else(|| {
                die(format!(
                    "no network-vif-plugged that the build of {id} waited for in {}",
                    log.display()
                ))
            });
        b.delete(&id).await;
        total.push(secs);
        ours.push(secs_between(ev, active));
    }
    c.stop().await;
    println!(
        "boot on private, POST -> ACTIVE s: {}",
        list(&total, 1.0, 3)
    );
    println!(
        "boot on private, network-vif-plugged -> ACTIVE ms: {}",
        list(&ours, 1e3, 1)
    );
    let (m_ours, m_total) = (median(&ours), median(&total));
    out.add(Row {
        id: "2",
        figure: format!("boot on private: network-vif-plugged -> ACTIVE (ours), median of {boots}"),
        ours: format!("{:.3} s", m_ours),
        baseline: format!("{m_total:.3} s POST -> ACTIVE"),
        ratio: format!("{:.3}", m_ours / m_total),
        goal: "<= 0.100 s".into(),
        result: verdict(m_ours <= 0.1),
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo test --benches` builds and runs benches with --test-ish args; do nothing then.
    let results = std::env::var_os("NOVA_DOCKER_BENCH_RESULTS");
    if std::env::args().any(|a| a == "--list" || a == "--test") || results.is_none() {
        if results.is_none() {
            eprintln!(
                "nova_stack: NOVA_DOCKER_BENCH_RESULTS not set; run devstack/bench.sh (skipping)"
            );
        }
        return;
    }
    let out = Results {
        file: PathBuf::from(results.unwrap_or_default()),
    };
    let net = std::env::args().any(|a| a == "net");
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
    if net {
        net_phase(&b, &out).await;
    } else {
        main_phase(&b, &docker, &docker_ref, &out).await;
    }
}
