//! Horizon in a browser against the lab: headless Chromium (Debian's
//! packages, nothing downloaded) driven by selenium in
//! tests/python/horizon_walk.py logs in to the lab's Horizon as `demo`,
//! launches an instance from `busybox` on `private` with container options in
//! its Customization Script, reads its Log and its serial Console, snapshots it
//! from the row's action menu and launches a second instance from the
//! snapshot, and launches one whose user_data the daemon's policy refuses.
//! Then this test checks what the pages showed against the real services:
//! Nova's servers, their addresses and faults, Glance's snapshot, and `docker
//! inspect` of the containers. Screenshots of every step are kept in
//! `<target dir>/test-artifacts/horizon/` (NN-step.png; NN-step-FAILED.png for
//! the step that failed, whose path the failure names).

mod common;
mod e2e_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use e2e_support::daemon::Daemon;
use e2e_support::{inspect, lab_credentials, Stack};
use reqwest::Method;
use serde_json::{json, Value};

/// What every launched instance's name starts with (leftovers of an earlier
/// run are found by it).
const PREFIX: &str = "nd-hz";
/// The whole browser walk; it is about 2 minutes on the 2-core lab machine.
const WALK_LIMIT: Duration = Duration::from_secs(420);
const T: Duration = Duration::from_secs(120);

/// The lab's compute host name.
fn host() -> String {
    e2e_support::lab_host()
}

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

/// `<target dir>/test-artifacts/horizon`, emptied: the test binary lives in
/// `<target dir>/<profile>/deps/`.
fn artifacts() -> PathBuf {
    let dir = match std::env::var_os("NOVA_DOCKER_TEST_ARTIFACTS") {
        Some(d) => PathBuf::from(d).join("horizon"),
        None => {
            let exe = std::env::current_exe().expect("test binary path");
            let target = exe
                .ancestors()
                .nth(3)
                .expect("<target>/<profile>/deps/<binary>")
                .to_path_buf();
            target.join("test-artifacts/horizon")
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The container options the user types into the Customization Script box:
/// an environment variable, a working directory and a command that prints
/// both and keeps running.
fn user_data(greeting: &str) -> String {
    format!(
        "environment:\n  ND_GREETING: {greeting}\nworking_dir: /tmp\n\
         command: [\"sh\", \"-c\", \"echo \\\"$ND_GREETING in $(pwd)\\\"; trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
    )
}

/// What an operator of the old driver published (a bind of the host's Docker
/// socket): the default policy refuses it.
const REFUSED_USER_DATA: &str =
    "environment:\n  etcd: 10.144.192.168\nvolumes:\n  /var/run/docker.sock: /var/run/docker.sock\n";

#[tokio::test]
#[ignore = "needs the lab with Horizon and Debian's chromium; run by devstack/run-tests.sh"]
async fn a_user_launches_reads_snapshots_and_is_refused_in_horizon() {
    let stack = Arc::new(Stack::from_env());
    let _daemon = Daemon::start(&stack, &host(), "").await;
    cleanup(&stack).await;
    let art = artifacts();
    eprintln!("e2e_horizon: screenshots in {}", art.display());
    let outcome = tokio::spawn(walk_and_check(stack.clone(), art.clone())).await;
    // servers and the snapshot go, whether the walk passed or not
    cleanup(&stack).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn walk_and_check(stack: Arc<Stack>, art: PathBuf) {
    let greeting = format!("hello-from-horizon-{}", std::process::id());
    let typed = user_data(&greeting);
    let log_expect = format!("{greeting} in /tmp");
    let r = walk(&art, &typed, &log_expect).await;
    let servers = &r["servers"];

    // 1. the first instance: Active on our host with the address the table showed
    let first = servers["first"]["id"].as_str().expect("first server id");
    let s = stack.wait_status(first, "ACTIVE", T).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], host().as_str(), "{s}");
    let (v4, _) = stack.addresses(first, "private").await;
    let shown = servers["first"]["address"].as_str().unwrap_or_default();
    assert!(
        v4.iter().any(|a| a == shown),
        "the table showed {shown}, Nova has {v4:?} on private"
    );
    let port = &stack.ports_of(first).await[0];
    assert_eq!(port["status"], "ACTIVE", "{port}");
    // what was typed is the instance's user_data, and the container has its options
    let ud = base64::engine::general_purpose::STANDARD
        .decode(s["OS-EXT-SRV-ATTR:user_data"].as_str().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&ud).trim(),
        typed.trim(),
        "user_data as Nova holds it"
    );
    let c = inspect(&format!("nova-{first}")).expect("the first instance's container");
    let env_list: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        env_list.contains(&format!("ND_GREETING={greeting}").as_str()),
        "Env {env_list:?}"
    );
    assert_eq!(c["Config"]["WorkingDir"], "/tmp", "{}", c["Config"]);
    assert_eq!(c["Config"]["Cmd"][0], "sh", "{}", c["Config"]["Cmd"]);
    assert_eq!(c["Config"]["Cmd"][1], "-c", "{}", c["Config"]["Cmd"]);
    assert!(
        c["Config"]["Cmd"][2]
            .as_str()
            .is_some_and(|s| s.starts_with("echo \"$ND_GREETING in $(pwd)\"")),
        "{}",
        c["Config"]["Cmd"]
    );
    assert_eq!(c["State"]["Status"], "running");
    // 2. the Log tab showed what Nova's console log has
    let log = servers["first"]["log"].as_str().unwrap_or_default();
    assert!(log.contains(&log_expect), "Log tab: {log:?}");
    let (st, out) = stack
        .action(first, json!({"os-getConsoleOutput": {"length": 50}}))
        .await;
    assert_eq!(st, 200, "{out}");
    assert!(
        out["output"]
            .as_str()
            .is_some_and(|o| o.contains(&log_expect)),
        "{out}"
    );

    // 3. the snapshot: a docker image in Glance, of the first instance
    let snap_name = r["snapshot"]["name"].as_str().expect("snapshot name");
    let imgs = stack
        .get(&format!("{}/v2/images?name={snap_name}", stack.glance))
        .await;
    let img = &imgs["images"][0];
    assert_eq!(img["status"], "active", "{imgs}");
    assert_eq!(img["container_format"], "docker", "{img}");
    assert_eq!(img["image_type"], "snapshot", "{img}");
    assert_eq!(img["instance_uuid"], first, "{img}");
    let snap_id = img["id"].as_str().unwrap();
    // 4. the second instance runs from it
    let second = servers["second"]["id"].as_str().expect("second server id");
    let s2 = stack.wait_status(second, "ACTIVE", T).await;
    assert_eq!(s2["image"]["id"], snap_id, "{s2}");
    let c2 = inspect(&format!("nova-{second}")).expect("the second instance's container");
    assert_eq!(c2["State"]["Status"], "running", "{}", c2["State"]);
    // (the daemon's tag of the Glance image: glance/<image id>)
    let image = c2["Config"]["Image"].as_str().unwrap_or_default();
    assert!(
        image == format!("glance/{snap_id}") || image == format!("glance/{snap_id}:latest"),
        "the second container runs {image}, not the snapshot {snap_id}"
    );

    // 5. the refused one: in ERROR, no container, and the fault Horizon showed
    //    is Nova's, naming what was refused
    let refused = servers["refused"]["id"]
        .as_str()
        .expect("refused server id");
    let s3 = stack.wait_status(refused, "ERROR", T).await;
    let fault = s3["fault"]["message"].as_str().unwrap_or_default();
    let page = servers["refused"]["fault_shown"]["Message"]
        .as_str()
        .unwrap_or_default();
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        squash(page),
        squash(fault),
        "the page's fault is Nova's ({})",
        s3["fault"]
    );
    assert!(
        page.contains("/var/run/docker.sock"),
        "the fault names the refused bind: {page:?}"
    );
    for word in [
        "Traceback",
        "NoValidHost",
        "Exceeded maximum number of retries",
        "Unknown",
    ] {
        assert!(
            !page.contains(word),
            "the fault is not in a user's words: {page:?}"
        );
    }
    assert!(inspect(&format!("nova-{refused}")).is_none());

    // 6. the console answered what was typed
    let typed_cmd = r["console"]["typed"].as_str().unwrap_or_default();
    let token = typed_cmd.trim_start_matches("echo ");
    let screen = r["console"]["screen"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        screen
            .iter()
            .any(|l| l.as_str().map(str::trim) == Some(token)),
        "the console's screen: {screen:?}"
    );
    eprintln!(
        "e2e_horizon: {}",
        r["steps"]
            .as_array()
            .map(|a| a
                .iter()
                .map(|s| format!("{} {}s", s["step"].as_str().unwrap_or(""), s["seconds"]))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
}

/// Run the browser walk; its result.json, or a panic naming the failed step and
/// its screenshot.
async fn walk(art: &std::path::Path, typed: &str, log_expect: &str) -> Value {
    let state = PathBuf::from(env("NOVA_DOCKER_E2E_STATE", "/tmp/nova-docker-stack"));
    let demo = lab_credentials(&state, "demo");
    let venv = PathBuf::from(env(
        "NOVA_DOCKER_E2E_HORIZON_VENV",
        "/opt/nova-docker-horizon-venv",
    ));
    let mut cmd = tokio::process::Command::new(venv.join("bin/python"));
    cmd.arg(common::test_file("python/horizon_walk.py"))
        .env(
            "HZ_URL",
            env("NOVA_DOCKER_E2E_HORIZON_URL", "http://127.0.0.1:8080/"),
        )
        .env("HZ_USER", &demo.user)
        .env("HZ_PASSWORD", &demo.password)
        .env("HZ_ARTIFACTS", art)
        .env(
            "HZ_CHROMIUM",
            env("NOVA_DOCKER_E2E_CHROMIUM", "/usr/lib/chromium/chromium"),
        )
        .env(
            "HZ_CHROMEDRIVER",
            env("NOVA_DOCKER_E2E_CHROMEDRIVER", "/usr/bin/chromedriver"),
        )
        .env("HZ_NAME", format!("{PREFIX}-{}", std::process::id()))
        .env("HZ_IMAGE", "busybox")
        .env("HZ_FLAVOR", "m1.tiny")
        .env("HZ_NETWORK", "private")
        .env("HZ_USER_DATA", typed)
        .env("HZ_LOG_EXPECT", log_expect)
        .env("HZ_BAD_USER_DATA", REFUSED_USER_DATA)
        .env("HZ_STEPS", env("NOVA_DOCKER_E2E_HORIZON_STEPS", ""))
        // Horizon's sessions last as long as the lab's tokens
        .env(
            "HZ_TOKEN_LIFE",
            env("NOVA_DOCKER_E2E_TOKEN_EXPIRATION", "3600"),
        )
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("the venv's python");
    let status = match tokio::time::timeout(WALK_LIMIT, child.wait()).await {
        Ok(st) => Some(st.expect("wait for the walk")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let r: Value = std::fs::read(art.join("result.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    match status {
        None => panic!(
            "the Horizon walk took longer than {WALK_LIMIT:?}; screenshots in {}",
            art.display()
        ),
        Some(st) if !st.success() || r["ok"] != true => panic!(
            "Horizon step {} failed: {}\n  at {}\n  screenshot: {}\n  (every step's screenshot in {})",
            r["failed_step"].as_str().unwrap_or("?"),
            r["error"].as_str().unwrap_or("no result.json"),
            r["url"].as_str().unwrap_or("?"),
            r["screenshot"].as_str().unwrap_or("none"),
            art.display()
        ),
        Some(_) => r,
    }
}

/// Delete what a walk made (this one or an earlier, interrupted one): the
/// servers named nd-hz-* and their snapshots.
async fn cleanup(stack: &Stack) {
    stack.delete_servers_named(&format!("{PREFIX}-")).await;
    let imgs = stack
        .get(&format!("{}/v2/images?limit=1000", stack.glance))
        .await;
    for img in imgs["images"].as_array().cloned().unwrap_or_default() {
        if img["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(&format!("{PREFIX}-")))
        {
            let id = img["id"].as_str().unwrap_or_default();
            let (st, body) = stack
                .call(
                    Method::DELETE,
                    &format!("{}/v2/images/{id}", stack.glance),
                    None,
                )
                .await;
            assert!(st == 204 || st == 404, "delete image {id}: {st} {body}");
        }
    }
}
