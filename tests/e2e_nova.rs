//! End to end: an unmodified Nova control plane (nova-api, conductor, scheduler,
//! placement, glance from PyPI, RabbitMQ, MariaDB) uses nova-docker-compute as a
//! compute host. Each test runs its own daemon under its own host name.

mod common;
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::daemon::Daemon;
use e2e_support::{docker, docker_status, inspect, Stack};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(90);

/// The crash test's daemons stop containers within 15 s.
const CRASH_CONF: &str = "\n[DEFAULT]\nshutdown_timeout = 15\n";
const BURST_CONF: &str = "\n[DEFAULT]\ncpu_allocation_ratio = 64.0\n";

fn busybox() -> String {
    std::env::var("NOVA_DOCKER_TEST_IMAGE")
        .unwrap_or_else(|_| "nova-docker-test/busybox:latest".into())
}

#[tokio::test]
#[ignore = "needs the Nova control plane; run by devstack/run-tests.sh"]
async fn compute_node_registers_with_real_resources() {
    let stack = Stack::from_env();
    let host = "nd-e2e-register";
    let mut d = Daemon::start(&stack, host, "").await;
    assert_eq!(stack.service_state(host).await.as_deref(), Some("up"));

    let hv = stack
        .get(&format!(
            "{}/os-hypervisors/detail?hypervisor_hostname_pattern={host}",
            stack.nova
        ))
        .await;
    let h = &hv["hypervisors"][0];
    assert_eq!(h["hypervisor_type"], "docker", "{hv}");
    assert_eq!(h["state"], "up");
    // get_host_uptime, as nova-api asks for it (microversion >= 2.88)
    let one = stack
        .get(&format!(
            "{}/os-hypervisors/{}",
            stack.nova,
            h["id"].as_str().unwrap()
        ))
        .await;
    let uptime = one["hypervisor"]["uptime"].as_str().unwrap_or_default();
    assert!(uptime.contains("load average"), "{one}");

    let rp = stack
        .get(&format!(
            "{}/resource_providers?name={host}",
            stack.placement
        ))
        .await;
    let uuid = rp["resource_providers"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let inv = stack
        .get(&format!(
            "{}/resource_providers/{uuid}/inventories",
            stack.placement
        ))
        .await;
    let nproc = std::thread::available_parallelism().unwrap().get() as i64;
    assert_eq!(inv["inventories"]["VCPU"]["total"], nproc, "{inv}");
    let mem_kb: i64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        inv["inventories"]["MEMORY_MB"]["total"],
        mem_kb / 1024,
        "{inv}"
    );
    assert!(inv["inventories"]["DISK_GB"]["total"].as_i64().unwrap() > 0);
    let traits = stack
        .get(&format!(
            "{}/resource_providers/{uuid}/traits",
            stack.placement
        ))
        .await;
    let t: Vec<&str> = traits["traits"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(
        t.contains(&"COMPUTE_NODE") && t.contains(&"OWNER_NOVA"),
        "{t:?}"
    );

    // a clean stop logs no error (lapin logs one when a channel is left to its
    // drop while the connection closes)
    d.stop();
    let log = std::fs::read_to_string(stack.daemon_log(host)).unwrap();
    assert!(log.contains("stopped clean=true"), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
#[ignore = "needs the Nova control plane; run by devstack/run-tests.sh"]
async fn server_lifecycle_end_to_end() {
    let stack = Stack::from_env();
    let host = "nd-e2e-life";
    // with its Prometheus metrics on (a free port of this machine)
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // and its versioned notifications to a topic of this test, where a real
    // oslo.messaging listener checks each payload with Nova's own classes
    let topic = format!("nd_e2e_notifications_{}", uuid::Uuid::new_v4().simple());
    let seen = stack.state.join(format!("run/{topic}.jsonl"));
    let mut listener = std::process::Command::new(common::python())
        .arg(common::test_file("python/notification_listener.py"))
        .args([common::transport_url(), topic.clone()])
        .arg(&seen)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("notification listener");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(listener.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "listening");
    }
    let _d = Daemon::start(
        &stack,
        host,
        &format!(
            "\n[metrics]\nlisten_address = {metrics}\n\
             [oslo_messaging_notifications]\ndriver = messagingv2\n\
             [notifications]\nnotification_format = versioned\nversioned_notifications_topics = {topic}\n"
        ),
    )
    .await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let opts = "environment:\n  GREETING: hello from user_data\nworking_dir: /tmp\n";

    // create -> ACTIVE, with the options from user_data on the container
    let id = stack
        .create_server("e2e-life", &image, &flavor, host, Some(opts))
        .await;
    let s = stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], host);
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    let c = inspect(&format!("nova-{id}")).expect("container exists");
    assert_eq!(c["State"]["Status"], "running");
    let env: Vec<String> = serde_json::from_value(c["Config"]["Env"].clone()).unwrap();
    assert!(
        env.contains(&"GREETING=hello from user_data".to_string()),
        "{env:?}"
    );
    assert_eq!(c["Config"]["WorkingDir"], "/tmp");
    assert_eq!(c["HostConfig"]["Memory"], 128 * 1024 * 1024);

    // the daemon's log lines about the build are oslo.log's, with the request id
    // of the API call that made it (Nova's instance action records it) and the
    // instance
    let acts = stack
        .get(&format!("{}/servers/{id}/os-instance-actions", stack.nova))
        .await;
    let req = acts["instanceActions"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["action"] == "create"))
        .and_then(|x| x["request_id"].as_str())
        .unwrap_or_else(|| panic!("no create action: {acts}"))
        .to_string();
    let log = std::fs::read_to_string(stack.daemon_log(host)).unwrap();
    let about: Vec<&str> = log.lines().filter(|l| l.contains(&req)).collect();
    assert!(about.len() >= 2, "lines with {req}: {about:?}");
    for l in &about {
        // 2026-12-02 05:44:15.045 4242 INFO nova_docker.compute.build [None req-... user project - - -] [instance: <id>] ...
        let f: Vec<&str> = l.splitn(7, ' ').collect();
        assert!(
            f.len() == 7
                && f[0].len() == 10
                && f[1].len() == 12
                && f[2].parse::<u32>().is_ok()
                && ["DEBUG", "INFO", "WARNING", "ERROR"].contains(&f[3])
                && f[4].starts_with("nova_docker.")
                && f[5].starts_with('[')
                && f[6].starts_with(&format!("{req} ")),
            "not oslo.log's format: {l}"
        );
        assert!(
            l.contains(&format!("[instance: {id}] ")),
            "no instance: {l}"
        );
    }

    // diagnostics (get_instance_diagnostics): real numbers from the container
    let d = stack
        .get(&format!("{}/servers/{id}/diagnostics", stack.nova))
        .await;
    assert_eq!(d["state"], "running", "{d}");
    assert_eq!(d["hypervisor"], "docker", "{d}");
    assert!(d["memory_details"]["used"].as_i64().unwrap_or(0) > 0, "{d}");
    assert!(d["uptime"].as_i64().is_some(), "{d}");

    // each lifecycle operation ends in the right status with the container in step
    for (action, status, docker_state) in [
        (json!({"os-stop": null}), "SHUTOFF", "exited"),
        (json!({"os-start": null}), "ACTIVE", "running"),
        (json!({"reboot": {"type": "SOFT"}}), "ACTIVE", "running"),
        (json!({"reboot": {"type": "HARD"}}), "ACTIVE", "running"),
        (json!({"pause": null}), "PAUSED", "paused"),
        (json!({"unpause": null}), "ACTIVE", "running"),
        (json!({"suspend": null}), "SUSPENDED", "paused"),
        (json!({"resume": null}), "ACTIVE", "running"),
    ] {
        let (st, v) = stack.action(&id, action.clone()).await;
        assert_eq!(st, 202, "{action}: {v}");
        stack.wait_status(&id, status, T).await;
        assert_eq!(
            docker_status(&id).as_deref(),
            Some(docker_state),
            "after {action}"
        );
    }

    // console log: what the container printed
    let (st, v) = stack
        .action(&id, json!({"os-getConsoleOutput": {"length": 5}}))
        .await;
    assert_eq!(st, 200, "{v}");
    let out = v["output"].as_str().unwrap();
    assert!(out.contains("started on"), "{out:?}");
    assert!(out.lines().count() <= 5);

    // server image create: an active Glance image that boots again
    docker(&[
        "exec",
        &format!("nova-{id}"),
        "sh",
        "-c",
        "echo snapshot-marker > /root/marker",
    ]);
    let (st, v) = stack
        .action(
            &id,
            json!({"createImage": {"name": format!("e2e-snap-{id}")}}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let snap = v["image_id"].as_str().unwrap().to_string();
    let t = Instant::now();
    loop {
        let img = stack
            .get(&format!("{}/v2/images/{snap}", stack.glance))
            .await;
        if img["status"] == "active" {
            assert_eq!(img["container_format"], "docker");
            break;
        }
        assert!(
            img["status"] != "killed" && t.elapsed() < T,
            "snapshot: {img}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.wait_status(&id, "ACTIVE", T).await;
    let id2 = stack
        .create_server("e2e-from-snap", &snap, &flavor, host, None)
        .await;
    stack.wait_status(&id2, "ACTIVE", T).await;
    let marker = docker(&["exec", &format!("nova-{id2}"), "cat", "/root/marker"]);
    assert_eq!(marker.trim(), "snapshot-marker");

    // rebuild onto another image keeps the server
    let (st, v) = stack
        .action(&id, json!({"rebuild": {"imageRef": snap}}))
        .await;
    assert_eq!(st, 202, "{v}");
    let s = stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(s["image"]["id"], snap.as_str());
    let marker = docker(&["exec", &format!("nova-{id}"), "cat", "/root/marker"]);
    assert_eq!(marker.trim(), "snapshot-marker");

    // what the daemon did, as Prometheus scrapes it
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    for (method, n) in [
        ("build_and_run_instance", 2.0),
        ("stop_instance", 1.0),
        ("start_instance", 1.0),
        ("pause_instance", 1.0),
        ("snapshot_instance", 1.0),
        ("rebuild_instance", 1.0),
    ] {
        assert_eq!(
            value(&format!(
                "nova_docker_rpc_requests_total{{method=\"{method}\",outcome=\"ok\"}}"
            )),
            n,
            "{method}"
        );
    }
    assert!(
        value(
            r#"nova_docker_docker_operation_duration_seconds_count{operation="spawn",outcome="ok"}"#
        ) >= 2.0
    );
    assert!(value(r#"nova_docker_instances{state="running"}"#) >= 1.0);
    assert!(value(r#"nova_docker_image_cache_total{result="miss"}"#) >= 1.0);
    assert!(value(r#"nova_docker_image_bytes_total{source="glance"}"#) > 100_000.0);
    assert!(
        text.contains("nova_docker_conductor_call_duration_seconds_count{"),
        "{text}"
    );

    // delete: no container, no allocation
    for sid in [&id, &id2] {
        stack.delete_server(sid).await;
        stack.wait_gone(sid, T).await;
        assert!(
            inspect(&format!("nova-{sid}")).is_none(),
            "container of {sid} left behind"
        );
        let a = stack
            .get(&format!("{}/allocations/{sid}", stack.placement))
            .await;
        assert!(a["allocations"].as_object().unwrap().is_empty(), "{a}");
    }

    // the notifications of the first server, in order, each one Nova's
    let want = [
        "instance.create.start",
        "instance.create.end",
        "instance.power_off.start",
        "instance.power_off.end",
        "instance.power_on.start",
        "instance.power_on.end",
        "instance.reboot.start",
        "instance.reboot.end",
        "instance.reboot.start",
        "instance.reboot.end",
        "instance.pause.start",
        "instance.pause.end",
        "instance.unpause.start",
        "instance.unpause.end",
        "instance.suspend.start",
        "instance.suspend.end",
        "instance.resume.start",
        "instance.resume.end",
        "instance.snapshot.start",
        "instance.snapshot.end",
        "instance.exists",
        "instance.rebuild.start",
        "instance.rebuild.end",
        "instance.delete.start",
        "instance.delete.end",
    ];
    let t0 = std::time::Instant::now();
    let lines: Vec<Value> = loop {
        let lines: Vec<Value> = std::fs::read_to_string(&seen)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &Value| v["uuid"] == id.as_str())
            .collect();
        if lines.len() >= want.len() || t0.elapsed() > Duration::from_secs(30) {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(listener.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = listener.wait();
    let got: Vec<&str> = lines
        .iter()
        .map(|v| v["event_type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got, want, "{lines:#?}");
    for v in &lines {
        assert_eq!(v["error"], "", "not Nova's: {v}");
        assert_eq!(v["publisher_id"], format!("nova-compute:{host}"), "{v}");
        assert_eq!(v["context_has_token"], false, "{v}");
    }
    assert_eq!(lines[0]["payload_name"], "InstanceCreatePayload");
    assert_eq!(
        lines[0]["request_id"],
        req.as_str(),
        "the API call's request id"
    );
    assert_eq!(lines[2]["payload_name"], "InstanceActionPayload");
    assert_eq!(lines[18]["payload_name"], "InstanceActionSnapshotPayload");
    assert_eq!(lines[20]["payload_name"], "InstanceExistsPayload");
    assert_eq!(lines[21]["payload_name"], "InstanceActionRebuildPayload");
}

#[tokio::test]
#[ignore = "needs the Nova control plane; run by devstack/run-tests.sh"]
async fn bad_images_and_options_end_in_error_with_a_readable_fault() {
    let stack = Stack::from_env();
    let host = "nd-e2e-fail";
    let _d = Daemon::start(&stack, host, "").await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let good = stack.docker_image("nd-e2e-busybox", &busybox()).await;

    // an image that is not a docker save tarball
    let (st, v) = stack
        .call(
            reqwest::Method::POST,
            &format!("{}/v2/images", stack.glance),
            Some(json!({"name": "nd-e2e-bare", "container_format": "bare", "disk_format": "raw"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let bare = v["id"].as_str().unwrap().to_string();
    stack.upload(&bare, b"not an image".to_vec()).await;

    let cases = [
        (bare.clone(), None, "container_format"),
        (
            good.clone(),
            Some("command: [sleep, 1000]\nno_such_option: 1\n"),
            "no_such_option",
        ),
        (
            good.clone(),
            Some("host_config:\n  Privileged: true\n"),
            "Privileged",
        ),
    ];
    for (image, ud, needle) in cases {
        let id = stack
            .create_server("e2e-fail", &image, &flavor, host, ud)
            .await;
        let s = stack.wait_status(&id, "ERROR", T).await;
        let msg = s["fault"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        eprintln!("fault of {id}: {msg}");
        assert!(
            msg.contains(needle),
            "fault {:?} does not name {needle}",
            s["fault"]
        );
        assert!(
            inspect(&format!("nova-{id}")).is_none(),
            "a container was created for {id}"
        );
        stack.delete_server(&id).await;
        stack.wait_gone(&id, T).await;
    }
}

#[tokio::test]
#[ignore = "needs the Nova control plane; run by devstack/run-tests.sh"]
async fn container_stopped_behind_novas_back_becomes_shutoff_and_restart_keeps_states() {
    let stack = Stack::from_env();
    let host = "nd-e2e-sync";
    let mut d = Daemon::start(&stack, host, "").await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let a = stack
        .create_server("e2e-sync-a", &image, &flavor, host, None)
        .await;
    let b = stack
        .create_server("e2e-sync-b", &image, &flavor, host, None)
        .await;
    // a command that exits right after start: ACTIVE (there is no
    // confirmation window), then stopped through the engine's event
    let quits =
        r#"{"command": ["sh", "-c", "echo starting; echo config file missing >&2; exit 4"]}"#;
    let c = stack
        .create_server("e2e-sync-c", &image, &flavor, host, Some(quits))
        .await;
    stack.wait_status(&a, "ACTIVE", T).await;
    stack.wait_status(&b, "ACTIVE", T).await;
    stack.wait_status(&c, "SHUTOFF", T).await;
    assert_eq!(docker_status(&c).as_deref(), Some("exited"));
    // the user reads why in the `stop` action's event, as for Nova's power sync
    let actions = stack
        .get(&format!("{}/servers/{c}/os-instance-actions", stack.nova))
        .await;
    let list = actions["instanceActions"].as_array().expect("actions");
    let create = list
        .iter()
        .find(|a| a["action"] == "create")
        .expect("create");
    let stop = list.iter().find(|a| a["action"] == "stop");
    let stop = stop.unwrap_or_else(|| panic!("no stop action in {actions}"));
    let detail = stack
        .get(&format!(
            "{}/servers/{c}/os-instance-actions/{}",
            stack.nova,
            stop["request_id"].as_str().unwrap()
        ))
        .await;
    let ev = &detail["instanceAction"]["events"][0];
    assert_eq!(
        (ev["event"].as_str(), ev["result"].as_str()),
        (Some("compute_stop_instance"), Some("Error")),
        "{detail}"
    );
    let why = ev["details"].as_str().unwrap_or_default();
    assert!(
        why.contains("exited with code 4") && why.contains("config file missing"),
        "{detail}"
    );
    let built = stack
        .get(&format!(
            "{}/servers/{c}/os-instance-actions/{}",
            stack.nova,
            create["request_id"].as_str().unwrap()
        ))
        .await;
    assert!(
        built["instanceAction"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["result"] == "Success"),
        "the build itself succeeded: {built}"
    );
    stack.delete_server(&c).await;

    // Docker is the truth: a container stopped by hand is noticed through events
    docker(&["stop", "-t", "1", &format!("nova-{a}")]);
    let t = Instant::now();
    stack
        .wait_status(&a, "SHUTOFF", Duration::from_secs(30))
        .await;
    eprintln!("external stop noticed in {:?}", t.elapsed());

    // stop the daemon: Nova sees the service down; the containers keep running
    d.stop();
    let t = Instant::now();
    while stack.service_state(host).await.as_deref() != Some("down") {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "service still up after the daemon stopped"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(docker_status(&b).as_deref(), Some("running"));
    // while it is down, b's container stops too
    docker(&["stop", "-t", "1", &format!("nova-{b}")]);

    // start it again: up, and every instance's status matches its container
    let d2 = Daemon::start(&stack, host, "").await;
    stack.wait_status(&a, "SHUTOFF", T).await;
    stack
        .wait_status(&b, "SHUTOFF", Duration::from_secs(60))
        .await;
    assert_eq!(docker_status(&a).as_deref(), Some("exited"));
    for sid in [&a, &b] {
        stack.delete_server(sid).await;
    }
    for sid in [&a, &b, &c] {
        stack.wait_gone(sid, T).await;
    }
    drop(d2);
}

/// A daemon killed in the middle of an operation (here a stop that waits for a
/// container which ignores SIGTERM) finishes it when it starts again, as
/// nova-compute's `init_host` does: the instance does not keep its task state
/// (which makes Nova's API refuse every later action) forever.
#[tokio::test]
#[ignore = "needs the Nova control plane; run by devstack/run-tests.sh"]
async fn an_operation_cut_off_by_a_crash_is_finished_at_start_up() {
    let stack = Stack::from_env();
    let host = "nd-e2e-crash";
    let mut d = Daemon::start(&stack, host, CRASH_CONF).await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let stubborn = r#"{"command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}"#;
    let a = stack
        .create_server("e2e-crash-a", &image, &flavor, host, Some(stubborn))
        .await;
    let b = stack
        .create_server("e2e-crash-b", &image, &flavor, host, None)
        .await;
    let r = stack
        .create_server("e2e-crash-c", &image, &flavor, host, None)
        .await;
    stack.wait_status(&a, "ACTIVE", T).await;
    stack.wait_status(&b, "ACTIVE", T).await;
    stack.wait_status(&r, "ACTIVE", T).await;

    let (st, v) = stack.action(&a, json!({"os-stop": null})).await;
    assert_eq!(st, 202, "{v}");
    let t = Instant::now();
    while stack.server(&a).await["OS-EXT-STS:task_state"] != json!("powering-off") {
        assert!(t.elapsed() < T, "no powering-off task state");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the daemon is inside the graceful stop, which lasts shutdown_timeout ...
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(docker_status(&a).as_deref(), Some("running"));
    // ... when it is killed
    d.kill();
    assert_eq!(
        stack.server(&a).await["OS-EXT-STS:task_state"],
        json!("powering-off")
    );

    // started again, it carries the stop out: SHUTOFF, no task state
    let mut d2 = Daemon::start(&stack, host, CRASH_CONF).await;
    stack.wait_status(&a, "SHUTOFF", T).await;
    assert_eq!(docker_status(&a).as_deref(), Some("exited"));

    // Other cut-off states, written into Nova's database while the daemon is
    // down: an operation with nothing to redo loses its task state; a build
    // that never finished ends in ERROR with a fault saying why.
    d2.stop();
    stack.sql(&format!(
        "UPDATE instances SET task_state='pausing' WHERE uuid='{a}'; \
         UPDATE instances SET vm_state='building', task_state='spawning' WHERE uuid='{b}';"
    ));
    assert_eq!(
        stack.server(&a).await["OS-EXT-STS:task_state"],
        json!("pausing")
    );
    let mut d3 = Daemon::start(&stack, host, CRASH_CONF).await;
    stack.wait_status(&a, "SHUTOFF", T).await;
    let sb = stack.wait_status(&b, "ERROR", T).await;
    let fault = sb["fault"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        fault.contains("restarted while the instance was being built"),
        "fault: {}",
        sb["fault"]
    );

    // The branches that carry an operation out or fail it: a cut-off start
    // starts the container, a cut-off delete deletes, a cut-off rebuild ends in
    // ERROR with a fault.
    d3.stop();
    assert_eq!(docker_status(&a).as_deref(), Some("exited"));
    stack.sql(&format!(
        "UPDATE instances SET task_state='powering-on' WHERE uuid='{a}'; \
         UPDATE instances SET task_state='deleting' WHERE uuid='{b}'; \
         UPDATE instances SET task_state='rebuilding' WHERE uuid='{r}';"
    ));
    let d4 = Daemon::start(&stack, host, CRASH_CONF).await;
    let sa = stack.wait_status(&a, "ACTIVE", T).await;
    assert_eq!(sa["OS-EXT-STS:task_state"], json!(null), "{sa}");
    assert_eq!(docker_status(&a).as_deref(), Some("running"));
    stack.wait_gone(&b, T).await;
    assert_eq!(
        docker_status(&b),
        None,
        "the deleted server's container stays"
    );
    let sc = stack.wait_status(&r, "ERROR", T).await;
    let fault = sc["fault"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        fault.contains("restarted while the instance was being rebuilt"),
        "fault: {}",
        sc["fault"]
    );
    // deleted through us, not behind our back by nova-api (which it does when the
    // service's heartbeat is stale: start-up above waited on containers that
    // ignore SIGTERM), so no container stays behind
    for sid in [&a, &r] {
        stack.delete_server(sid).await;
        stack.wait_gone(sid, T).await;
        assert_eq!(
            docker_status(sid),
            None,
            "the deleted server's container stays"
        );
    }
    drop(d4);
}

/// A server deleted while its compute service was down is deleted by nova-api
/// alone (its "local delete"), and its container goes on running. The daemon
/// removes it when it starts again, as Nova's `running_deleted_instance_action =
/// reap` does, and leaves its live servers alone.
#[tokio::test]
#[ignore = "needs the Nova control plane; run by devstack/run-tests.sh"]
async fn a_container_left_by_a_delete_while_the_service_was_down_is_reaped() {
    let stack = Stack::from_env();
    let host = "nd-e2e-reap";
    stack.delete_servers_named("e2e-reap-").await;
    let mut d = Daemon::start(&stack, host, "").await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let gone = stack
        .create_server("e2e-reap-gone", &image, &flavor, host, None)
        .await;
    let kept = stack
        .create_server("e2e-reap-kept", &image, &flavor, host, None)
        .await;
    stack.wait_status(&gone, "ACTIVE", T).await;
    stack.wait_status(&kept, "ACTIVE", T).await;

    d.kill();
    stack.force_down(host, true).await;
    stack.delete_server(&gone).await;
    stack.wait_gone(&gone, T).await;
    assert_eq!(
        docker_status(&gone).as_deref(),
        Some("running"),
        "nova-api deleted the server alone; its container is left"
    );
    stack.force_down(host, false).await;

    // started again: the container of the deleted server is removed before
    // the daemon serves (Daemon::start waits for that)
    let d2 = Daemon::start(&stack, host, "").await;
    assert_eq!(
        docker_status(&gone),
        None,
        "the deleted server's container stays"
    );
    assert_eq!(docker_status(&kept).as_deref(), Some("running"));
    let s = stack.wait_status(&kept, "ACTIVE", T).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], json!(host));
    stack.delete_server(&kept).await;
    stack.wait_gone(&kept, T).await;
    assert_eq!(docker_status(&kept), None);
    drop(d2);
}

/// A container removed behind Nova's back (`docker rm`): the instance becomes
/// SHUTOFF with a `stop` action saying so, and a hard reboot makes the
/// container again from the instance's image, with its user_data options, as
/// libvirt's hard reboot defines a missing domain again.
#[tokio::test]
#[ignore = "needs the Nova control plane; run by devstack/run-tests.sh"]
async fn a_container_removed_behind_novas_back_is_made_again_by_a_hard_reboot() {
    let stack = Stack::from_env();
    let host = "nd-e2e-vanish";
    let _d = Daemon::start(&stack, host, "").await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let ud = r#"{"environment": {"ND_MARK": "kept"}, "command": ["sh", "-c", "echo mark=$ND_MARK; trap 'exit 0' TERM; while true; do sleep 1; done"]}"#;
    let id = stack
        .create_server("e2e-vanish", &image, &flavor, host, Some(ud))
        .await;
    stack.wait_status(&id, "ACTIVE", T).await;
    let first = inspect(&format!("nova-{id}")).expect("container")["Id"].clone();

    docker(&["rm", "-f", &format!("nova-{id}")]);
    stack.wait_status(&id, "SHUTOFF", T).await;
    // `docker rm -f` kills, then removes: the sync of the kill may record the exit
    // first; the newest stop action says the container is gone
    let t = Instant::now();
    loop {
        let actions = stack
            .get(&format!("{}/servers/{id}/os-instance-actions", stack.nova))
            .await;
        let stop = actions["instanceActions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == "stop")
            .cloned();
        let detail = match stop {
            Some(stop) => {
                stack
                    .get(&format!(
                        "{}/servers/{id}/os-instance-actions/{}",
                        stack.nova,
                        stop["request_id"].as_str().unwrap()
                    ))
                    .await
            }
            None => actions.clone(),
        };
        let why = detail["instanceAction"]["events"][0]["details"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if why.contains("container is gone") {
            break;
        }
        assert!(
            t.elapsed() < T,
            "no stop action says the container is gone: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let (st, v) = stack.action(&id, json!({"reboot": {"type": "HARD"}})).await;
    assert_eq!(st, 202, "{v}");
    stack.wait_status(&id, "ACTIVE", T).await;
    let c = inspect(&format!("nova-{id}")).expect("made again");
    assert_ne!(c["Id"], first, "a new container");
    assert_eq!(c["State"]["Running"], json!(true), "{}", c["State"]);
    let env = c["Config"]["Env"].as_array().unwrap();
    assert!(env.contains(&json!("ND_MARK=kept")), "{env:?}");
    let t = Instant::now();
    loop {
        let log = docker(&["logs", &format!("nova-{id}")]);
        if log.contains("mark=kept") {
            break;
        }
        assert!(t.elapsed() < T, "the command did not run again: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    assert!(inspect(&format!("nova-{id}")).is_none());
}

/// `kill -9` in the middle of a burst of builds (one request for 50 servers),
/// then a restart: every server ends ACTIVE with a running container or ERROR
/// with a fault; none stays in BUILD (a build whose message was taken but not
/// yet claimed is delivered again, since it is acknowledged only once claimed),
/// and no container is left without a server.
#[tokio::test]
#[ignore = "needs the Nova control plane; run by devstack/run-tests.sh"]
async fn a_kill_in_the_middle_of_a_burst_of_builds_loses_none() {
    const N: usize = 50;
    let stack = Stack::from_env();
    let host = "nd-e2e-burst";
    // 50 one-vCPU servers on a 2-core host: the lab's ratio of 16 gives 32
    let mut d = Daemon::start(&stack, host, BURST_CONF).await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    stack.delete_servers_named("e2e-burst").await;
    let (st, v) = stack
        .call(
            reqwest::Method::POST,
            &format!("{}/servers", stack.nova),
            Some(
                json!({"server": {"name": "e2e-burst", "imageRef": image, "flavorRef": flavor,
                "networks": "none", "availability_zone": format!("nova:{host}"),
                "min_count": N, "max_count": N, "return_reservation_id": true}}),
            ),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let reservation = v["reservation_id"]
        .as_str()
        .expect("reservation")
        .to_string();
    let url = format!("{}/servers/detail?reservation_id={reservation}", stack.nova);
    async fn servers_at(stack: &Stack, url: &str) -> Vec<serde_json::Value> {
        stack.get(url).await["servers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
    let status = |l: &[serde_json::Value], st: &str| l.iter().filter(|s| s["status"] == st).count();
    // kill it while the burst is under way: as soon as a few containers run
    // (Nova's API is too slow to watch for this), the rest not yet
    let label = format!("label=org.openstack.nova.host={host}");
    let t = Instant::now();
    let mut polls = 0u32;
    loop {
        let running = docker(&["ps", "-q", "--filter", &label]).lines().count();
        if running >= 3 {
            d.kill();
            eprintln!("killed the daemon with {running} of {N} containers running");
            break;
        }
        polls += 1;
        if polls.is_multiple_of(100) {
            // a burst the scheduler refused never starts: say why at once
            let l = servers_at(&stack, &url).await;
            assert!(
                l.is_empty() || status(&l, "ERROR") < l.len(),
                "every server of the burst is in ERROR: {}",
                l[0]["fault"]
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "the burst did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_kill = servers_at(&stack, &url).await;
    eprintln!(
        "at the kill: {} ACTIVE, {} BUILD",
        status(&at_kill, "ACTIVE"),
        status(&at_kill, "BUILD")
    );
    let _d2 = Daemon::start(&stack, host, BURST_CONF).await;
    let t = Instant::now();
    let list = loop {
        let l = servers_at(&stack, &url).await;
        if l.iter()
            .all(|s| s["status"] != "BUILD" && s["OS-EXT-STS:task_state"].is_null())
        {
            break l;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "still building after 300 s: {:?}",
            l.iter()
                .map(|s| (&s["id"], &s["status"], &s["OS-EXT-STS:task_state"]))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(list.len(), N);
    let (active, error) = (status(&list, "ACTIVE"), status(&list, "ERROR"));
    eprintln!(
        "after the restart: {active} ACTIVE, {error} ERROR, in {:?}",
        t.elapsed()
    );
    assert_eq!(active + error, N, "{list:?}");
    for s in &list {
        let id = s["id"].as_str().unwrap();
        match s["status"].as_str() {
            Some("ACTIVE") => assert_eq!(docker_status(id).as_deref(), Some("running"), "{id}"),
            _ => {
                let msg = s["fault"]["message"].as_str().unwrap_or_default();
                assert!(!msg.is_empty(), "ERROR without a fault: {s}");
                assert!(
                    inspect(&format!("nova-{id}")).is_none(),
                    "a container of {id} in ERROR"
                );
                let a = stack
                    .get(&format!("{}/allocations/{id}", stack.placement))
                    .await;
                assert!(
                    a["allocations"].as_object().is_some_and(|m| m.is_empty()),
                    "an allocation of {id} in ERROR: {a}"
                );
            }
        }
    }
    // no container of this host without its server
    let ids: Vec<&str> = list.iter().filter_map(|s| s["id"].as_str()).collect();
    let ours = docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &label]);
    for name in ours.lines().filter(|l| !l.is_empty()) {
        let uuid = name.trim_start_matches("nova-");
        assert!(ids.contains(&uuid), "container {name} has no server");
    }
    for id in &ids {
        stack.delete_server(id).await;
    }
    for id in &ids {
        stack.wait_gone(id, T).await;
    }
}

/// `kill -9` in the middle of a snapshot's upload (issue 18): when the
/// daemon starts again, the half-written Glance image is gone (not left
/// `saving`), so is the transient commit in the engine, and the server is
/// ACTIVE with no task state, its container running.
#[tokio::test]
#[ignore = "needs the lab; run by devstack/run-tests.sh"]
async fn a_kill_during_a_snapshot_leaves_no_half_written_image() {
    let stack = Stack::from_env();
    let host = "nd-e2e-snap-kill";
    let mut d = Daemon::start(&stack, host, CRASH_CONF).await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    stack.delete_servers_named("e2e-snap-kill").await;
    let id = stack
        .create_server("e2e-snap-kill", &image, &flavor, host, None)
        .await;
    stack.wait_status(&id, "ACTIVE", T).await;
    // 300 MiB of changes: the upload takes long enough to be cut off
    docker(&[
        "exec",
        &format!("nova-{id}"),
        "dd",
        "if=/dev/urandom",
        "of=/root/big",
        "bs=1M",
        "count=300",
    ]);
    let (st, v) = stack
        .action(
            &id,
            json!({"createImage": {"name": format!("e2e-snap-kill-{id}")}}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let snap = v["image_id"].as_str().unwrap().to_string();
    let url = format!("{}/v2/images/{snap}", stack.glance);
    let t = Instant::now();
    loop {
        let img = stack.get(&url).await;
        if img["status"] == "saving" {
            break;
        }
        assert!(
            img["status"] == "queued" && t.elapsed() < T,
            "the upload was not caught under way: {img}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.kill();
    eprintln!("killed the daemon with the snapshot's image saving");
    let (st, _) = stack.call(reqwest::Method::GET, &url, None).await;
    assert_eq!(st, 200, "the image is still there at the kill");
    let _d2 = Daemon::start(&stack, host, CRASH_CONF).await;
    // its start-up (before it serves RPC) deletes it
    let t = Instant::now();
    loop {
        let (st, img) = stack.call(reqwest::Method::GET, &url, None).await;
        if st == 404 {
            break;
        }
        assert!(t.elapsed() < T, "the half-written image is left: {img}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s = stack.wait_settled(&id).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(docker_status(&id).as_deref(), Some("running"));
    let commits = docker(&["images", "-q", &format!("nova-snapshot/{snap}")]);
    assert!(commits.trim().is_empty(), "the transient commit is left");
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
}

/// `kill -9` in the middle of a delete (issue 18): the container ignores
/// SIGTERM, so the daemon is inside the graceful stop when it dies. Started
/// again, it carries the delete out: the server, its container and its
/// placement allocation are gone.
#[tokio::test]
#[ignore = "needs the lab; run by devstack/run-tests.sh"]
async fn a_kill_during_a_delete_is_carried_out_at_start_up() {
    let stack = Stack::from_env();
    let host = "nd-e2e-delete-kill";
    let mut d = Daemon::start(&stack, host, CRASH_CONF).await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    stack.delete_servers_named("e2e-delete-kill").await;
    let stubborn = r#"{"command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}"#;
    let id = stack
        .create_server("e2e-delete-kill", &image, &flavor, host, Some(stubborn))
        .await;
    stack.wait_status(&id, "ACTIVE", T).await;
    stack.delete_server(&id).await;
    let t = Instant::now();
    while stack.server(&id).await["OS-EXT-STS:task_state"] != json!("deleting") {
        assert!(t.elapsed() < T, "no deleting task state");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // inside the graceful stop (shutdown_timeout 15 s) ...
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(docker_status(&id).as_deref(), Some("running"));
    // ... when it is killed
    d.kill();
    let _d2 = Daemon::start(&stack, host, CRASH_CONF).await;
    stack.wait_gone(&id, T).await;
    assert!(
        inspect(&format!("nova-{id}")).is_none(),
        "the container of the deleted server is left"
    );
    let a = stack
        .get(&format!("{}/allocations/{id}", stack.placement))
        .await;
    assert!(a["allocations"].as_object().unwrap().is_empty(), "{a}");
}
