//! The end-to-end harness: a real Nova control plane (brought up by
//! devstack/run-tests.sh through devstack/lib/controlplane.sh), our daemon started
//! here as a compute host, and Nova's REST API to drive it.
#![allow(dead_code)]

pub mod daemon;
pub mod neutron;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Stack {
    pub state: PathBuf,
    pub nova: String,
    pub glance: String,
    pub placement: String,
    pub token: String,
    pub venv: PathBuf,
    pub http: reqwest::Client,
}

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

impl Stack {
    pub fn from_env() -> Self {
        Stack {
            state: PathBuf::from(env("NOVA_DOCKER_E2E_STATE", "/tmp/nova-docker-stack")),
            nova: env("NOVA_DOCKER_E2E_NOVA_URL", "http://127.0.0.1:8774/v2.1"),
            glance: env("NOVA_DOCKER_E2E_GLANCE_URL", "http://127.0.0.1:9292"),
            placement: env("NOVA_DOCKER_E2E_PLACEMENT_URL", "http://127.0.0.1:8778"),
            token: env("NOVA_DOCKER_E2E_TOKEN", "admin:admin"),
            venv: PathBuf::from(env("NOVA_DOCKER_E2E_VENV", "/opt/nova-docker-venv")),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .pool_max_idle_per_host(0)
                .build()
                .expect("http client"),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, url)
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "compute 2.95, placement 1.39")
            .header("X-OpenStack-Nova-API-Version", "2.95");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let st = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, url: &str) -> Value {
        let (st, v) = self.call(reqwest::Method::GET, url, None).await;
        assert!(st < 300, "GET {url}: {st} {v}");
        v
    }

    /// The compute config of a host of this lab (what devstack writes).
    pub fn compute_conf(&self, host: &str, extra: &str) -> PathBuf {
        let out = self
            .state
            .join(format!("etc/nova/nova-compute-{host}.conf"));
        let script = format!(
            "set -e; source devstack/lib/functions.sh; source devstack/lib/controlplane.sh; nd_compute_conf {host} {out}",
            out = out.display()
        );
        let st = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("ND_STATE", &self.state)
            .status()
            .expect("bash");
        assert!(st.success(), "writing the compute config failed");
        if !extra.is_empty() {
            let mut s = std::fs::read_to_string(&out).unwrap();
            s.push_str(extra);
            std::fs::write(&out, s).unwrap();
        }
        out
    }

    /// Start our daemon for `host`; its log goes to the state dir.
    pub fn start_daemon(&self, host: &str, conf: &PathBuf) -> Child {
        let log = std::fs::File::create(
            self.state
                .join(format!("run/nova-docker-compute-{host}.log")),
        )
        .expect("log file");
        Command::new(env!("CARGO_BIN_EXE_nova-docker-compute"))
            .arg("--config-file")
            .arg(conf)
            .env("RUST_LOG", "info,nova_docker=debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nova-docker-compute")
    }

    /// Run SQL in Nova's cell database (the stack's private MariaDB, as root
    /// over its socket): the tests use it to stage states a crash leaves behind.
    pub fn sql(&self, sql: &str) {
        let sock = self.state.join("data/mysqlrun/mysqld.sock");
        let out = Command::new("mysql")
            .args(["--no-defaults", "-u", "root", "nova", "-e", sql])
            .arg(format!("--socket={}", sock.display()))
            .output()
            .expect("mysql client");
        assert!(
            out.status.success(),
            "mysql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn service_state(&self, host: &str) -> Option<String> {
        let v = self
            .get(&format!(
                "{}/os-services?binary=nova-compute&host={host}",
                self.nova
            ))
            .await;
        v["services"][0]["state"].as_str().map(str::to_string)
    }

    /// Wait until our service is up, its provider in placement, and the host mapped.
    pub async fn wait_registered(&self, host: &str, daemon: &mut Child) {
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = daemon.try_wait() {
                panic!("nova-docker-compute exited with {st}; see {}/run/nova-docker-compute-{host}.log", self.state.display());
            }
            let up = self.service_state(host).await.as_deref() == Some("up");
            let rp = self
                .get(&format!(
                    "{}/resource_providers?name={host}",
                    self.placement
                ))
                .await;
            if up
                && rp["resource_providers"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "{host} did not register"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let st = Command::new(self.venv.join("bin/nova-manage"))
            .arg("--config-file")
            .arg(self.state.join("etc/nova/nova.conf"))
            .args(["cell_v2", "discover_hosts"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("nova-manage");
        assert!(st.success(), "discover_hosts failed");
    }

    /// A Glance image of `docker save <docker_ref>`, created once per name.
    pub async fn docker_image(&self, name: &str, docker_ref: &str) -> String {
        let v = self
            .get(&format!("{}/v2/images?name={name}", self.glance))
            .await;
        if let Some(id) = v["images"][0]["id"].as_str() {
            if v["images"][0]["status"] == "active" {
                return id.to_string();
            }
        }
        let (st, v) = self
            .call(
                reqwest::Method::POST,
                &format!("{}/v2/images", self.glance),
                Some(json!({"name": name, "container_format": "docker", "disk_format": "raw", "visibility": "public"})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let tar = Command::new("docker")
            .args(["save", docker_ref])
            .output()
            .expect("docker save");
        assert!(tar.status.success());
        self.upload(&id, tar.stdout).await;
        id
    }

    pub async fn upload(&self, id: &str, data: Vec<u8>) {
        let r = self
            .http
            .put(format!("{}/v2/images/{id}/file", self.glance))
            .header("X-Auth-Token", &self.token)
            .header("Content-Type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }

    pub async fn flavor(&self, name: &str, ram: i64, vcpus: i64) -> String {
        let (st, _) = self
            .call(
                reqwest::Method::GET,
                &format!("{}/flavors/{name}", self.nova),
                None,
            )
            .await;
        if st != 200 {
            let (st, v) = self
                .call(
                    reqwest::Method::POST,
                    &format!("{}/flavors", self.nova),
                    Some(json!({"flavor": {"name": name, "id": name, "ram": ram, "vcpus": vcpus, "disk": 1}})),
                )
                .await;
            assert!(st == 200 || st == 409, "{st} {v}");
        }
        name.to_string()
    }

    /// POST /servers on `host`; returns the server id.
    pub async fn create_server(
        &self,
        name: &str,
        image: &str,
        flavor: &str,
        host: &str,
        user_data: Option<&str>,
    ) -> String {
        use base64::Engine;
        let mut server = json!({"name": name, "imageRef": image, "flavorRef": flavor,
                                "networks": "none", "availability_zone": format!("nova:{host}")});
        if let Some(u) = user_data {
            server["user_data"] = json!(base64::engine::general_purpose::STANDARD.encode(u));
        }
        let (st, v) = self
            .call(
                reqwest::Method::POST,
                &format!("{}/servers", self.nova),
                Some(json!({"server": server})),
            )
            .await;
        assert_eq!(st, 202, "create: {v}");
        v["server"]["id"].as_str().unwrap().to_string()
    }

    pub async fn server(&self, id: &str) -> Value {
        self.get(&format!("{}/servers/{id}", self.nova)).await["server"].clone()
    }

    /// Wait until the server's status is `want` and it has no task state.
    pub async fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Value {
        let t = Instant::now();
        loop {
            let s = self.server(id).await;
            let st = s["status"].as_str().unwrap_or("").to_string();
            if st == want && s["OS-EXT-STS:task_state"].is_null() {
                return s;
            }
            if st == "ERROR" && want != "ERROR" {
                panic!("server {id} went to ERROR: {}", s["fault"]);
            }
            assert!(
                t.elapsed() < timeout,
                "server {id} is {st} (task {}) after {timeout:?}, not {want}",
                s["OS-EXT-STS:task_state"]
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn action(&self, id: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("{}/servers/{id}/action", self.nova),
            Some(body),
        )
        .await
    }

    pub async fn delete_server(&self, id: &str) {
        let (st, v) = self
            .call(
                reqwest::Method::DELETE,
                &format!("{}/servers/{id}", self.nova),
                None,
            )
            .await;
        assert!(st == 204 || st == 404, "{st} {v}");
    }

    pub async fn wait_gone(&self, id: &str, timeout: Duration) {
        let t = Instant::now();
        loop {
            let (st, _) = self
                .call(
                    reqwest::Method::GET,
                    &format!("{}/servers/{id}", self.nova),
                    None,
                )
                .await;
            if st == 404 {
                return;
            }
            assert!(
                t.elapsed() < timeout,
                "server {id} still there after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// `docker inspect` of a container, or None.
pub fn inspect(name: &str) -> Option<Value> {
    let out = Command::new("docker")
        .args(["inspect", name])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0).cloned()
}

/// The container's state word ("running", "paused", "exited", ...).
pub fn docker_status(server_id: &str) -> Option<String> {
    inspect(&format!("nova-{server_id}"))
        .and_then(|v| v["State"]["Status"].as_str().map(str::to_string))
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
