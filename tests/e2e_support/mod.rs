//! The end-to-end harness: a real Nova control plane behind Keystone (brought up
//! by devstack/run-tests.sh through devstack/lib/controlplane.sh), our daemon
//! started here as a compute host, and Nova's REST API to drive it as the lab's
//! admin. Tokens are short-lived in the test run (ND_TOKEN_EXPIRATION=240): the
//! harness re-authenticates when its token is within 30 s of expiry or on a 401.
#![allow(dead_code)]

pub mod daemon;
pub mod engine;
pub mod neutron;
pub mod outage;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Re-authenticate this long before the token expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

pub struct Stack {
    pub state: PathBuf,
    pub nova: String,
    pub glance: String,
    pub placement: String,
    pub neutron: String,
    /// Keystone's v3 URL.
    pub auth_url: String,
    pub venv: PathBuf,
    pub http: reqwest::Client,
    creds: Credentials,
    /// The current token and when to fetch a new one.
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// A Keystone user scoped to a project of the Default domain.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub project: String,
}

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

/// `KEY=value` lines of the lab's passwords file ($ND_STATE/etc/passwords).
/// The lab's compute host name (`NOVA_DOCKER_E2E_HOST`: the OVN chassis'
/// hostname, which Neutron binds ports to), this machine's name by default.
pub fn lab_host() -> String {
    std::env::var("NOVA_DOCKER_E2E_HOST").unwrap_or_else(|_| {
        hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into())
    })
}

pub fn lab_password(state: &Path, user: &str) -> Option<String> {
    let key = format!("ND_{}_PASSWORD=", user.to_ascii_uppercase());
    let text = std::fs::read_to_string(state.join("etc/passwords")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().to_string())
}

/// The credentials of the lab's `admin` or `demo` user: from
/// NOVA_DOCKER_E2E_<WHO>_{USER,PASSWORD,PROJECT}, else the passwords file.
pub fn lab_credentials(state: &Path, who: &str) -> Credentials {
    let var =
        |k: &str| std::env::var(format!("NOVA_DOCKER_E2E_{}_{k}", who.to_ascii_uppercase())).ok();
    let user = var("USER").unwrap_or_else(|| who.to_string());
    let password = var("PASSWORD")
        .or_else(|| lab_password(state, &user))
        .unwrap_or_else(|| panic!("no password for {user}: set NOVA_DOCKER_E2E_{}_PASSWORD or run devstack/run-tests.sh", who.to_ascii_uppercase()));
    Credentials {
        project: var("PROJECT").unwrap_or_else(|| who.to_string()),
        user,
        password,
    }
}

/// A project-scoped token: (token, lifetime Keystone gave it).
pub async fn keystone_token(
    http: &reqwest::Client,
    auth_url: &str,
    c: &Credentials,
) -> (String, Duration) {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": c.user, "domain": {"id": "default"}, "password": c.password}}},
        "scope": {"project": {"name": c.project, "domain": {"id": "default"}}}}});
    let resp = http
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("keystone {auth_url}: {e}"));
    let st = resp.status().as_u16();
    let token = resp
        .headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let token = match (st, token) {
        (201, Some(t)) => t,
        _ => panic!("keystone refused {} ({st}): {v}", c.user),
    };
    let at = |k: &str| {
        v["token"][k]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    let life = match (at("issued_at"), at("expires_at")) {
        (Some(i), Some(e)) => (e - i).to_std().unwrap_or_default(),
        _ => Duration::from_secs(60),
    };
    (token, life)
}

impl Stack {
    pub fn from_env() -> Self {
        let state = PathBuf::from(env("NOVA_DOCKER_E2E_STATE", "/tmp/nova-docker-stack"));
        Stack {
            nova: env("NOVA_DOCKER_E2E_NOVA_URL", "http://127.0.0.1:8774/v2.1"),
            glance: env("NOVA_DOCKER_E2E_GLANCE_URL", "http://127.0.0.1:9292"),
            placement: env("NOVA_DOCKER_E2E_PLACEMENT_URL", "http://127.0.0.1:8778"),
            neutron: env("NOVA_DOCKER_E2E_NEUTRON_URL", "http://127.0.0.1:9696"),
            auth_url: env("NOVA_DOCKER_E2E_AUTH_URL", "http://127.0.0.1:5000/v3"),
            venv: PathBuf::from(env("NOVA_DOCKER_E2E_VENV", "/opt/nova-docker-venv")),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .pool_max_idle_per_host(0)
                .build()
                .expect("http client"),
            creds: lab_credentials(&state, "admin"),
            token: tokio::sync::Mutex::new(None),
            state,
        }
    }

    /// A valid admin token: the cached one unless it is within 30 s of expiry.
    pub async fn token(&self) -> String {
        let mut t = self.token.lock().await;
        if let Some((tok, refresh_at)) = t.as_ref() {
            if Instant::now() < *refresh_at {
                return tok.clone();
            }
        }
        let (tok, life) = keystone_token(&self.http, &self.auth_url, &self.creds).await;
        let refresh_at = Instant::now() + life.saturating_sub(TOKEN_MARGIN);
        *t = Some((tok.clone(), refresh_at));
        tok
    }

    /// Drop the cached token if it is still `stale` (a service answered 401).
    async fn forget_token(&self, stale: &str) {
        let mut t = self.token.lock().await;
        if t.as_ref().is_some_and(|(tok, _)| tok == stale) {
            *t = None;
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut retried = false;
        loop {
            let token = self.token().await;
            let mut r = self
                .http
                .request(method.clone(), url)
                .header("X-Auth-Token", &token)
                .header("OpenStack-API-Version", "compute 2.95, placement 1.39")
                .header("X-OpenStack-Nova-API-Version", "2.95");
            if let Some(b) = &body {
                r = r.json(b);
            }
            let resp = r.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let st = resp.status().as_u16();
            if st == 401 && !retried {
                self.forget_token(&token).await;
                retried = true;
                continue;
            }
            let text = resp.text().await.unwrap_or_default();
            return (
                st,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            );
        }
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

    /// The log of our daemon for `host` (see [`Self::start_daemon`]).
    pub fn daemon_log(&self, host: &str) -> PathBuf {
        self.state
            .join(format!("run/nova-docker-compute-{host}.log"))
    }

    /// Start our daemon for `host`; its log goes to the state dir.
    pub fn start_daemon(&self, host: &str, conf: &PathBuf) -> Child {
        let log = std::fs::File::create(self.daemon_log(host)).expect("log file");
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

    /// The nova-compute service of `host`, as the API shows it (Null if none).
    pub async fn service(&self, host: &str) -> Value {
        let v = self
            .get(&format!(
                "{}/os-services?binary=nova-compute&host={host}",
                self.nova
            ))
            .await;
        v["services"][0].clone()
    }

    pub async fn service_state(&self, host: &str) -> Option<String> {
        self.service(host).await["state"]
            .as_str()
            .map(str::to_string)
    }

    /// Force the service of `host` down (or lift it), as an operator does
    /// before an evacuation (microversion 2.53).
    pub async fn force_down(&self, host: &str, down: bool) {
        let svc = self.service(host).await;
        let id = svc["id"].as_str().expect("the service's id");
        let (st, v) = self
            .call(
                reqwest::Method::PUT,
                &format!("{}/os-services/{id}", self.nova),
                Some(json!({"forced_down": down})),
            )
            .await;
        assert_eq!(st, 200, "forced_down {down}: {v}");
    }

    /// Lift a `forced_down` a failed run of a test left on `host`, if any
    /// (Nova may refuse it while evacuations from the host are not
    /// completed; the host's daemon completes them when it starts).
    pub async fn lift_forced_down(&self, host: &str) {
        let svc = self.service(host).await;
        if svc["forced_down"] == true {
            if let Some(id) = svc["id"].as_str() {
                let _ = self
                    .call(
                        reqwest::Method::PUT,
                        &format!("{}/os-services/{id}", self.nova),
                        Some(json!({"forced_down": false})),
                    )
                    .await;
            }
        }
    }

    /// Wait until our service is up, its provider in placement, and the host mapped.
    pub async fn wait_registered(&self, host: &str, daemon: &mut Child) {
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = daemon.try_wait() {
                panic!(
                    "nova-docker-compute exited with {st}; see {}",
                    self.daemon_log(host).display()
                );
            }
            let up = self.service_state(host).await.as_deref() == Some("up");
            let rp = self
                .get(&format!(
                    "{}/resource_providers?name={host}",
                    self.placement
                ))
                .await;
            // and its RPC server consumes: the service reports up (its heartbeat
            // runs from before start-up) before the compute queue exists, and a
            // call sent to no queue is lost (nova-api would time out on it)
            let consuming = std::fs::read_to_string(self.daemon_log(host))
                .is_ok_and(|l| l.contains("RPC server consuming"));
            if up
                && consuming
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

    /// The events of server `id`'s latest instance action named `action`
    /// (`create`, `live-migration`, ...), as an admin sees them.
    pub async fn action_events(&self, id: &str, action: &str) -> Vec<Value> {
        let actions = self
            .get(&format!("{}/servers/{id}/os-instance-actions", self.nova))
            .await;
        let req = actions["instanceActions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["action"] == action)
            .and_then(|a| a["request_id"].as_str())
            .unwrap_or_else(|| panic!("no {action} action: {actions}"))
            .to_string();
        let a = self
            .get(&format!(
                "{}/servers/{id}/os-instance-actions/{req}",
                self.nova
            ))
            .await;
        a["instanceAction"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A host aggregate `name` holding `hosts`, with availability zone `az`
    /// if given (made again if an earlier run left it). Returns its id.
    pub async fn aggregate(&self, name: &str, az: Option<&str>, hosts: &[&str]) -> i64 {
        self.delete_aggregate(name).await;
        let mut body = json!({"aggregate": {"name": name}});
        if let Some(az) = az {
            body["aggregate"]["availability_zone"] = json!(az);
        }
        let (st, v) = self
            .call(
                reqwest::Method::POST,
                &format!("{}/os-aggregates", self.nova),
                Some(body),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let agg = v["aggregate"]["id"].as_i64().unwrap();
        for host in hosts {
            let (st, v) = self
                .call(
                    reqwest::Method::POST,
                    &format!("{}/os-aggregates/{agg}/action", self.nova),
                    Some(json!({"add_host": {"host": host}})),
                )
                .await;
            assert_eq!(st, 200, "{v}");
        }
        agg
    }

    /// Remove the aggregate `name` (its hosts first), if there is one.
    pub async fn delete_aggregate(&self, name: &str) {
        let list = self.get(&format!("{}/os-aggregates", self.nova)).await;
        for a in list["aggregates"].as_array().into_iter().flatten() {
            if a["name"] != name {
                continue;
            }
            let id = a["id"].as_i64().unwrap();
            for h in a["hosts"].as_array().into_iter().flatten() {
                let _ = self
                    .call(
                        reqwest::Method::POST,
                        &format!("{}/os-aggregates/{id}/action", self.nova),
                        Some(json!({"remove_host": {"host": h}})),
                    )
                    .await;
            }
            let _ = self
                .call(
                    reqwest::Method::DELETE,
                    &format!("{}/os-aggregates/{id}", self.nova),
                    None,
                )
                .await;
        }
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
        let mut retried = false;
        loop {
            let token = self.token().await;
            let r = self
                .http
                .put(format!("{}/v2/images/{id}/file", self.glance))
                .header("X-Auth-Token", &token)
                .header("Content-Type", "application/octet-stream")
                .body(data.clone())
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 401 && !retried {
                self.forget_token(&token).await;
                retried = true;
                continue;
            }
            assert_eq!(r.status().as_u16(), 204);
            return;
        }
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

    /// Wait until the server is in no task (whatever its status), within 120 s.
    pub async fn wait_settled(&self, id: &str) -> Value {
        let t = Instant::now();
        loop {
            let s = self.server(id).await;
            if s["OS-EXT-STS:task_state"].is_null() && s["status"] != "BUILD" {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "server {id} still in task {} after 120 s",
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

    /// Delete every server (of any project) whose name starts with `prefix`
    /// and wait until they are gone: what a test, or an earlier interrupted
    /// run of it, left.
    pub async fn delete_servers_named(&self, prefix: &str) {
        let v = self
            .get(&format!(
                "{}/servers?all_tenants=1&name=^{prefix}",
                self.nova
            ))
            .await;
        let ids: Vec<String> = v["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str().map(str::to_string))
            .collect();
        for id in &ids {
            self.delete_server(id).await;
        }
        for id in &ids {
            self.wait_gone(id, Duration::from_secs(120)).await;
        }
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

/// The names of the containers (all states) the daemon of `host` made.
pub fn containers_of(host: &str) -> Vec<String> {
    let label = format!("label=org.openstack.nova.host={host}");
    docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &label])
        .lines()
        .map(str::to_string)
        .collect()
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
