//! End to end through Heat: the lab's real heat-api and heat-engine (as user
//! demo, trusts), Nova, Neutron (ML2/OVN) and our daemon. One stack: a port on
//! `private` and a server on it whose user_data are the short keys (YAML), in
//! Heat's default user_data format (the MIME multipart of HEAT_CFNTOOLS, the
//! options in its `cfn-userdata` part), and a second server on `private` whose
//! user_data is a Docker `/containers/create` body (JSON, `RAW`). The stack
//! must reach CREATE_COMPLETE, the containers carry the options, the ports are
//! bound; `stack delete` leaves no server, port or container.

mod common;
mod e2e_support;

use std::time::{Duration, Instant};

use base64::Engine;
use e2e_support::daemon::Daemon;
use e2e_support::{inspect, keystone_token, lab_credentials, Credentials, Stack};
use reqwest::Method;
use serde_json::{json, Value};

const CREATE_TIMEOUT: Duration = Duration::from_secs(300);
const DELETE_TIMEOUT: Duration = Duration::from_secs(180);
const PREFIX: &str = "nd-e2e-heat";

/// The lab's compute host name.
fn host() -> String {
    e2e_support::lab_host()
}

/// Heat's REST API as one user, its token renewed before it expires (the
/// test run's tokens last 240 s) and once more on a 401.
struct Heat {
    http: reqwest::Client,
    auth_url: String,
    creds: Credentials,
    /// The orchestration endpoint of the user's project, from the catalog.
    url: String,
    token: String,
    renew_at: Instant,
}

impl Heat {
    async fn login(stack: &Stack, who: &str) -> Self {
        let creds = lab_credentials(&stack.state, who);
        let (token, life) = keystone_token(&stack.http, &stack.auth_url, &creds).await;
        let catalog: Value = stack
            .http
            .get(format!("{}/auth/catalog", stack.auth_url))
            .header("X-Auth-Token", &token)
            .send()
            .await
            .expect("keystone catalog")
            .json()
            .await
            .expect("catalog JSON");
        let url = std::env::var("NOVA_DOCKER_E2E_HEAT_URL")
            .ok()
            .unwrap_or_else(|| {
                catalog["catalog"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["type"] == "orchestration")
                    .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                    .find(|e| e["interface"] == "public")
                    .and_then(|e| e["url"].as_str().map(str::to_string))
                    .unwrap_or_else(|| {
                        panic!("no orchestration endpoint in {who}'s catalog: {catalog}")
                    })
            });
        Heat {
            http: stack.http.clone(),
            auth_url: stack.auth_url.clone(),
            creds,
            url: url.trim_end_matches('/').to_string(),
            token,
            renew_at: Instant::now() + life.saturating_sub(Duration::from_secs(30)),
        }
    }

    async fn renew(&mut self) {
        let (token, life) = keystone_token(&self.http, &self.auth_url, &self.creds).await;
        self.token = token;
        self.renew_at = Instant::now() + life.saturating_sub(Duration::from_secs(30));
    }

    async fn call(&mut self, m: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        if Instant::now() >= self.renew_at {
            self.renew().await;
        }
        let mut retried = false;
        loop {
            let url = format!("{}/{path}", self.url);
            let mut r = self
                .http
                .request(m.clone(), &url)
                .header("X-Auth-Token", &self.token);
            if let Some(b) = &body {
                r = r.json(b);
            }
            let resp = r.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let st = resp.status().as_u16();
            if st == 401 && !retried {
                self.renew().await;
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

    /// The stack `name/id`, or None once Heat no longer shows it.
    async fn show(&mut self, name_id: &str) -> Option<Value> {
        let (st, v) = self
            .call(Method::GET, &format!("stacks/{name_id}"), None)
            .await;
        match st {
            200 => Some(v["stack"].clone()),
            404 => None,
            _ => panic!("GET stack {name_id}: {st} {v}"),
        }
    }

    /// Wait while the stack is `*_IN_PROGRESS`; its final status and reason
    /// (DELETE_COMPLETE when Heat no longer shows it).
    async fn settle(&mut self, name_id: &str, timeout: Duration) -> (String, String) {
        let t = Instant::now();
        loop {
            let Some(s) = self.show(name_id).await else {
                return ("DELETE_COMPLETE".into(), "gone".into());
            };
            let status = s["stack_status"].as_str().unwrap_or_default().to_string();
            let reason = s["stack_status_reason"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !status.ends_with("_IN_PROGRESS") {
                return (status, reason);
            }
            assert!(
                t.elapsed() < timeout,
                "stack {name_id} still {status} after {timeout:?}: {reason}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn delete(&mut self, name_id: &str) {
        let (st, v) = self
            .call(Method::DELETE, &format!("stacks/{name_id}"), None)
            .await;
        assert!(st == 204 || st == 404, "DELETE stack {name_id}: {st} {v}");
    }

    /// Delete the stacks an earlier, failed run of this test left behind.
    async fn delete_leftovers(&mut self) {
        let (st, v) = self.call(Method::GET, "stacks", None).await;
        assert_eq!(st, 200, "GET stacks: {v}");
        let old: Vec<String> = v["stacks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                s["stack_name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(PREFIX))
            })
            .map(|s| {
                format!(
                    "{}/{}",
                    s["stack_name"].as_str().unwrap(),
                    s["id"].as_str().unwrap()
                )
            })
            .collect();
        for s in &old {
            self.delete(s).await;
        }
        for s in &old {
            self.settle(s, DELETE_TIMEOUT).await;
        }
    }
}

/// The short-key options (YAML), sent in Heat's default format.
const SHORT_KEYS: &str = r#"environment:
  GREETING: hello-short-keys
  ND_VOCABULARY: short
working_dir: /tmp
command: ["sh", "-c", "echo \"$GREETING from $(pwd)\"; trap 'exit 0' TERM; while true; do sleep 1; done"]
"#;

/// A Docker /containers/create body (JSON), sent RAW.
fn docker_body() -> Value {
    json!({
        "Env": ["GREETING=hello-docker-body", "ND_VOCABULARY=docker"],
        "Cmd": ["sh", "-c", "echo \"$GREETING from $(pwd) as $(id -un)\"; trap 'exit 0' TERM; while true; do sleep 1; done"],
        "WorkingDir": "/root",
        "User": "nobody",
        "Labels": {"nd.e2e.heat": "docker-body"},
        "HostConfig": {"CapDrop": ["MKNOD"]}
    })
}

fn template(image: &str, flavor: &str) -> Value {
    json!({
        "heat_template_version": "2021-04-16",
        "resources": {
            "port": {"type": "OS::Neutron::Port",
                     "properties": {"network": "private"}},
            "short": {"type": "OS::Nova::Server", "properties": {
                "image": image, "flavor": flavor,
                "networks": [{"port": {"get_resource": "port"}}],
                "user_data": SHORT_KEYS}},
            "docker": {"type": "OS::Nova::Server", "properties": {
                "image": image, "flavor": flavor,
                "networks": [{"network": "private"}],
                "user_data_format": "RAW",
                "user_data": serde_json::to_string_pretty(&docker_body()).unwrap()}}
        },
        "outputs": {
            "short_id": {"value": {"get_resource": "short"}},
            "docker_id": {"value": {"get_resource": "docker"}},
            "port_ips": {"value": {"get_attr": ["port", "fixed_ips"]}}
        }
    })
}

fn env_of(c: &Value) -> Vec<String> {
    c["Config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

fn logs(name: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["logs", name])
        .output()
        .expect("docker logs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Wait until the container's output has `want` (the command runs after the
/// server is ACTIVE, a moment later).
async fn wait_log(name: &str, want: &str) -> String {
    let t = Instant::now();
    loop {
        let l = logs(name);
        if l.contains(want) || t.elapsed() > Duration::from_secs(20) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Only our host may take the stack's servers (the user cannot name a host):
/// wait until no other nova-compute service counts as up (the daemons of
/// earlier tests are stopped but count as up for service_down_time).
async fn wait_only_host_up(stack: &Stack, host: &str) {
    let t = Instant::now();
    loop {
        let v = stack
            .get(&format!("{}/os-services?binary=nova-compute", stack.nova))
            .await;
        let others: Vec<String> = v["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["state"] == "up" && s["status"] == "enabled" && s["host"] != host)
            .filter_map(|s| s["host"].as_str().map(str::to_string))
            .collect();
        if others.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "other compute hosts stay up: {others:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The user_data Nova holds for a server (admin, microversion >= 2.3), decoded.
async fn user_data(stack: &Stack, id: &str) -> String {
    let s = stack.server(id).await;
    let b64 = s["OS-EXT-SRV-ATTR:user_data"]
        .as_str()
        .unwrap_or_else(|| panic!("server {id} has no user_data: {s}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("user_data is base64"),
    )
    .expect("user_data is UTF-8")
}

#[tokio::test]
#[ignore = "needs the lab with Heat; run by devstack/run-tests.sh"]
async fn a_heat_stack_with_a_port_and_user_data_in_both_vocabularies_comes_and_goes() {
    let stack = Stack::from_env();
    let host = host();
    let _d = Daemon::start(&stack, &host, "").await;
    let image = stack
        .docker_image("nd-e2e-busybox", &common::busybox_image())
        .await;
    let flavor = stack.flavor("nd.e2e.heat", 64, 1).await;
    let mut heat = Heat::login(&stack, "demo").await;
    heat.delete_leftovers().await;
    wait_only_host_up(&stack, &host).await;

    // create, as demo
    let name = format!(
        "{PREFIX}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let t0 = Instant::now();
    let (st, v) = heat
        .call(
            Method::POST,
            "stacks",
            Some(
                json!({"stack_name": name, "template": template(&image, &flavor),
                        "timeout_mins": 5, "disable_rollback": true}),
            ),
        )
        .await;
    assert_eq!(st, 201, "stack create: {v}");
    let name_id = format!("{name}/{}", v["stack"]["id"].as_str().unwrap());
    let (status, reason) = heat.settle(&name_id, CREATE_TIMEOUT).await;
    assert_eq!(
        status, "CREATE_COMPLETE",
        "stack {name_id}: {status}: {reason}"
    );
    eprintln!("stack {name_id} CREATE_COMPLETE in {:?}", t0.elapsed());

    let (st, v) = heat
        .call(Method::GET, &format!("stacks/{name_id}/resources"), None)
        .await;
    assert_eq!(st, 200, "resources: {v}");
    let resource = |n: &str| -> String {
        v["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["resource_name"] == n)
            .and_then(|r| r["physical_resource_id"].as_str())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| panic!("no resource {n} in {v}"))
            .to_string()
    };
    let (short, docker, port) = (resource("short"), resource("docker"), resource("port"));
    let stack_show = heat.show(&name_id).await.unwrap();
    let output = |k: &str| {
        stack_show["outputs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["output_key"] == k)
            .map(|o| o["output_value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(output("short_id"), json!(short));
    assert_eq!(output("docker_id"), json!(docker));

    // what Heat really sent: a MIME multipart around the short keys, the JSON as it is
    let ud = user_data(&stack, &short).await;
    assert!(
        ud.starts_with("Content-Type: multipart/mixed") && ud.contains("cfn-userdata"),
        "Heat's default format should be a MIME multipart with a cfn-userdata part: {:.300}",
        ud
    );
    let ud = user_data(&stack, &docker).await;
    assert_eq!(
        serde_json::from_str::<Value>(&ud).expect("RAW user_data is the JSON body"),
        docker_body()
    );

    // the servers: ACTIVE on our host, their ports bound and ACTIVE
    for id in [&short, &docker] {
        let s = stack.server(id).await;
        assert_eq!(s["status"], "ACTIVE", "server {id}: {s}");
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], json!(host), "server {id}");
    }
    let p = stack.port(&port).await.expect("the stack's port");
    assert_eq!(p["device_id"], json!(short), "port {port}: {p}");
    assert_eq!(p["status"], "ACTIVE", "port {port}: {p}");
    assert_eq!(p["binding:host_id"], json!(host), "port {port}: {p}");
    let port_ip = p["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let (v4, v6) = stack.addresses(&short, "private").await;
    assert!(
        v4.contains(&port_ip) || v6.contains(&port_ip),
        "server {short} shows {v4:?} {v6:?}, not its port's {port_ip}"
    );
    let docker_ports = stack.ports_of(&docker).await;
    assert_eq!(docker_ports.len(), 1, "ports of {docker}: {docker_ports:?}");
    assert_eq!(docker_ports[0]["status"], "ACTIVE", "{docker_ports:?}");
    let docker_port = docker_ports[0]["id"].as_str().unwrap().to_string();

    // the containers carry the options
    let c = inspect(&format!("nova-{short}")).expect("container of the short-key server");
    let env = env_of(&c);
    for want in ["GREETING=hello-short-keys", "ND_VOCABULARY=short"] {
        assert!(env.iter().any(|e| e == want), "{want} not in {env:?}");
    }
    assert_eq!(c["Config"]["WorkingDir"], "/tmp", "{}", c["Config"]);
    assert_eq!(c["Config"]["Cmd"][0], "sh", "{}", c["Config"]["Cmd"]);
    assert_eq!(c["State"]["Status"], "running", "{}", c["State"]);
    let l = wait_log(&format!("nova-{short}"), "hello-short-keys from /tmp").await;
    assert!(l.contains("hello-short-keys from /tmp"), "output: {l}");

    let c = inspect(&format!("nova-{docker}")).expect("container of the Docker-body server");
    let env = env_of(&c);
    for want in ["GREETING=hello-docker-body", "ND_VOCABULARY=docker"] {
        assert!(env.iter().any(|e| e == want), "{want} not in {env:?}");
    }
    assert_eq!(c["Config"]["WorkingDir"], "/root", "{}", c["Config"]);
    assert_eq!(c["Config"]["User"], "nobody", "{}", c["Config"]);
    assert_eq!(c["Config"]["Cmd"], docker_body()["Cmd"]);
    assert_eq!(c["Config"]["Labels"]["nd.e2e.heat"], "docker-body");
    assert!(
        c["HostConfig"]["CapDrop"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("MKNOD"))),
        "CapDrop: {}",
        c["HostConfig"]["CapDrop"]
    );
    assert_eq!(c["State"]["Status"], "running", "{}", c["State"]);
    let l = wait_log(
        &format!("nova-{docker}"),
        "hello-docker-body from /root as nobody",
    )
    .await;
    assert!(
        l.contains("hello-docker-body from /root as nobody"),
        "output: {l}"
    );

    // delete: nothing of the stack is left
    let t0 = Instant::now();
    heat.delete(&name_id).await;
    let (status, reason) = heat.settle(&name_id, DELETE_TIMEOUT).await;
    assert_eq!(
        status, "DELETE_COMPLETE",
        "stack {name_id}: {status}: {reason}"
    );
    eprintln!("stack {name_id} deleted in {:?}", t0.elapsed());
    for id in [&short, &docker] {
        let (st, v) = stack
            .call(Method::GET, &format!("{}/servers/{id}", stack.nova), None)
            .await;
        assert_eq!(st, 404, "server {id} is left: {v}");
        assert!(
            inspect(&format!("nova-{id}")).is_none(),
            "container nova-{id} is left"
        );
        let left = stack.ports_of(id).await;
        assert!(left.is_empty(), "ports of {id} are left: {left:?}");
    }
    for p in [&port, &docker_port] {
        assert!(stack.port(p).await.is_none(), "port {p} is left");
    }
}
