//! Several compute hosts under one control plane (issue 15): each is a daemon
//! of its own with its own host name, on this machine's Docker engine (one
//! reaches it over TCP, through a relay that can be cut, as a remote engine
//! would be reached). Nova's scheduler chooses between them; nothing in these
//! tests forces a host.

mod common;
mod e2e_support;

use std::time::Duration;

use e2e_support::daemon::Daemon;
use e2e_support::engine::Engine;
use e2e_support::outage::Relay;
use e2e_support::{containers_of, docker, Stack};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(300);

fn busybox() -> String {
    std::env::var("NOVA_DOCKER_TEST_IMAGE")
        .unwrap_or_else(|_| "nova-docker-test/busybox:latest".into())
}

/// `server create --availability-zone az` with no networks; its id.
async fn create_in(stack: &Stack, name: &str, image: &str, flavor: &str, az: &str) -> String {
    let (st, v) = stack
        .call(
            reqwest::Method::POST,
            &format!("{}/servers", stack.nova),
            Some(json!({"server": {"name": name, "imageRef": image,
                "flavorRef": flavor, "networks": "none", "availability_zone": az}})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    v["server"]["id"].as_str().unwrap().to_string()
}

/// The placement provider of `host`'s compute node.
async fn provider_of(stack: &Stack, host: &str) -> String {
    let v = stack
        .get(&format!(
            "{}/os-hypervisors/detail?hypervisor_hostname_pattern={host}",
            stack.nova
        ))
        .await;
    v["hypervisors"]
        .as_array()
        .and_then(|l| l.iter().find(|h| h["service"]["host"] == host))
        .and_then(|h| h["id"].as_str())
        .unwrap_or_else(|| panic!("no hypervisor of {host}: {v}"))
        .to_string()
}

/// A build on a host whose engine stopped goes back to the scheduler's
/// alternate and ends ACTIVE there; nothing of it is left on the first host
/// (container, allocation), and the first host's failure is in its action's
/// events, not in a fault.
#[tokio::test]
#[ignore = "needs the lab; run by devstack/run-tests.sh"]
async fn a_build_whose_first_host_lost_its_engine_ends_active_on_another() {
    let stack = Stack::from_env();
    let (a, b) = ("nd-e2e-resched-a", "nd-e2e-resched-b");
    let zone = "nd-e2e-resched";
    stack.delete_servers_named("e2e-resched").await;
    // host a reaches the engine through the relay; host b holds back most
    // of its memory, so the scheduler (spreading by free RAM) tries a first
    let engine = Relay::to_unix("/var/run/docker.sock").await;
    let _da = Daemon::start(
        &stack,
        a,
        &format!("\n[docker]\nhost_url = http://127.0.0.1:{}\n", engine.port),
    )
    .await;
    let _db = Daemon::start(&stack, b, "\n[DEFAULT]\nreserved_host_memory_mb = 4096\n").await;
    assert!(
        engine.accepted() > 0,
        "host a did not use its engine's relay"
    );
    stack.aggregate(zone, Some(zone), &[a, b]).await;
    let (pa, pb) = (provider_of(&stack, a).await, provider_of(&stack, b).await);
    // a's engine stops
    engine.down();
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let id = create_in(&stack, "e2e-resched", &image, &flavor, zone).await;
    let s = stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], b, "{s}");
    assert_eq!(
        containers_of(b),
        [format!("nova-{id}")],
        "its container on b"
    );
    assert!(containers_of(a).is_empty(), "a container left on a");
    // both hosts tried it: the create action has a build event from each
    let events = stack.action_events(&id, "create").await;
    let builds: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "compute__do_build_and_run_instance")
        .collect();
    let hosts: Vec<&str> = builds.iter().filter_map(|e| e["host"].as_str()).collect();
    assert!(
        hosts.contains(&a) && hosts.contains(&b),
        "a build event from each host: {events:?}"
    );
    assert!(s["fault"].is_null(), "no fault: {s}");
    // its resources are held on b only
    let alloc = stack
        .get(&format!("{}/allocations/{id}", stack.placement))
        .await;
    let held: Vec<&String> = alloc["allocations"].as_object().unwrap().keys().collect();
    assert_eq!(held, [&pb], "allocations {alloc} (a is {pa})");
    // a's daemon said why it gave the build back
    let log = std::fs::read_to_string(stack.daemon_log(a)).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("rescheduling it to another") && l.contains(&id)),
        "no reschedule logged by {a}"
    );
    // a live migration (to a, whose daemon answers its RPC) is refused in
    // the conductor's pre-check: the server stays ACTIVE on b, the
    // migration in error, the reason in the action's event
    live_migration_is_refused(&stack, &id, a, b).await;
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    assert!(
        containers_of(b).is_empty(),
        "the container stayed after the delete"
    );
    stack.delete_aggregate(zone).await;
}

/// `openstack server migrate --live-migration --host to` of `id` (on `on`):
/// refused, with the reason in the action's events, the server as it was.
async fn live_migration_is_refused(stack: &Stack, id: &str, to: &str, on: &str) {
    let (st, v) = stack
        .action(
            id,
            json!({"os-migrateLive": {"host": to, "block_migration": "auto"}}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let migrations = format!(
        "{}/os-migrations?instance_uuid={id}&migration_type=live-migration",
        stack.nova
    );
    let t = std::time::Instant::now();
    let m = loop {
        let l = stack.get(&migrations).await;
        if let Some(m) = l["migrations"]
            .as_array()
            .and_then(|l| l.first())
            .filter(|m| m["status"] == "error")
        {
            break m.clone();
        }
        assert!(t.elapsed() < T, "the live migration did not end: {l}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // (the conductor took the refusal for a host that does not fit, and
    // found no other: the migration names no destination)
    assert_eq!(m["source_compute"], on, "{m}");
    let s = stack.wait_settled(id).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], on, "{s}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &format!("nova-{id}")]).trim(),
        "running"
    );
    // the destination's pre-check event gives the reason
    let events = stack.action_events(id, "live-migration").await;
    assert!(
        events.iter().any(
            |e| e["event"] == "compute_check_can_live_migrate_destination"
                && e["host"] == to
                && e["result"] == "Error"
                && e["details"]
                    .as_str()
                    .is_some_and(|d| d.contains("memory and processes cannot be moved"))
        ),
        "no refused pre-check event with the reason: {events:?}"
    );
}

/// Shelve on one host, unshelve onto another (issue 15.4, `unshelve --host`):
/// the file written before is in the container on the second host; nothing
/// is left on the first, and the allocation is the second host's.
#[tokio::test]
#[ignore = "needs the lab; run by devstack/run-tests.sh"]
async fn a_server_shelved_on_one_host_is_unshelved_on_another() {
    let stack = Stack::from_env();
    let (a, b) = ("nd-e2e-shelve-a", "nd-e2e-shelve-b");
    stack.delete_servers_named("e2e-shelve").await;
    let _da = Daemon::start(&stack, a, "").await;
    let _db = Daemon::start(&stack, b, "").await;
    let pb = provider_of(&stack, b).await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let id = stack
        .create_server("e2e-shelve", &image, &flavor, a, None)
        .await;
    stack.wait_status(&id, "ACTIVE", T).await;
    let name = format!("nova-{id}");
    docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo moved-by-unshelve > /root/marker",
    ]);
    let (st, v) = stack.action(&id, json!({"shelve": null})).await;
    assert_eq!(st, 202, "{v}");
    stack.wait_status(&id, "SHELVED_OFFLOADED", T).await;
    assert!(containers_of(a).is_empty(), "a container left on {a}");
    let (st, v) = stack.action(&id, json!({"unshelve": {"host": b}})).await;
    assert_eq!(st, 202, "{v}");
    let s = stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], b, "{s}");
    assert_eq!(
        containers_of(b),
        std::slice::from_ref(&name),
        "its container on {b}"
    );
    assert!(containers_of(a).is_empty(), "a container on {a}");
    assert_eq!(
        docker(&["exec", &name, "cat", "/root/marker"]).trim(),
        "moved-by-unshelve"
    );
    let alloc = stack
        .get(&format!("{}/allocations/{id}", stack.placement))
        .await;
    let held: Vec<&String> = alloc["allocations"].as_object().unwrap().keys().collect();
    assert_eq!(held, [&pb], "allocations {alloc}");
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    assert!(
        containers_of(b).is_empty(),
        "the container stayed after the delete"
    );
}

/// The container's memory limit in bytes and CPU cap in CPUs, read inside it
/// (cgroup v2 or v1).
fn limits_inside(container: &str) -> (u64, f64) {
    let sh = |cmd: &str| {
        docker(&["exec", container, "sh", "-c", cmd])
            .trim()
            .to_string()
    };
    let mem = sh("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes");
    let cpu = sh("cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)");
    let mem: u64 = mem
        .parse()
        .unwrap_or_else(|_| panic!("memory limit {mem:?}"));
    let q: Vec<f64> = cpu
        .split_whitespace()
        .map(|n| n.parse().unwrap_or(-1.0))
        .collect();
    (mem, q[0] / q[1])
}

/// What placement holds for `consumer`: (provider, MEMORY_MB) pairs.
async fn memory_held(stack: &Stack, consumer: &str) -> Vec<(String, i64)> {
    let a = stack
        .get(&format!("{}/allocations/{consumer}", stack.placement))
        .await;
    a["allocations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(rp, v)| {
                    (
                        rp.clone(),
                        v["resources"]["MEMORY_MB"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Resize on the only host of a zone (issue 15.2): the container is resized
/// in place (the same container, its command still running, a file kept),
/// the limits inside it are the new flavor's; revert gives the old ones and
/// the old allocation back; confirm keeps the new ones and frees the old.
#[tokio::test]
#[ignore = "needs the lab; run by devstack/run-tests.sh"]
async fn a_resize_on_the_same_host_changes_the_limits_in_place() {
    let stack = Stack::from_env();
    let a = "nd-e2e-resize-a";
    let zone = "nd-e2e-resize";
    stack.delete_servers_named("e2e-resize").await;
    let _da = Daemon::start(&stack, a, "").await;
    stack.aggregate(zone, Some(zone), &[a]).await;
    let pa = provider_of(&stack, a).await;
    let small = stack.flavor("nd.e2e", 128, 1).await;
    let big = stack.flavor("nd.e2e.big", 256, 2).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let id = create_in(&stack, "e2e-resize", &image, &small, zone).await;
    stack.wait_status(&id, "ACTIVE", T).await;
    let name = format!("nova-{id}");
    let inspect = |f: &str| docker(&["inspect", "-f", f, &name]).trim().to_string();
    let (container, started) = (inspect("{{.Id}}"), inspect("{{.State.StartedAt}}"));
    docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo kept-by-the-resize > /root/marker",
    ]);
    assert_eq!(limits_inside(&name), (128 << 20, 1.0));
    let resize = |to: String| {
        let (stack, id) = (&stack, &id);
        async move {
            let (st, v) = stack.action(id, json!({"resize": {"flavorRef": to}})).await;
            assert_eq!(st, 202, "{v}");
            let s = stack.wait_status(id, "VERIFY_RESIZE", T).await;
            assert_eq!(s["OS-EXT-SRV-ATTR:host"], a, "{s}");
            let m = stack
                .get(&format!(
                    "{}/os-migrations?instance_uuid={id}&migration_type=resize",
                    stack.nova
                ))
                .await;
            m["migrations"][0]["uuid"].as_str().unwrap().to_string()
        }
    };

    // resize up, then revert
    let mig = resize(big.clone()).await;
    assert_eq!(
        limits_inside(&name),
        (256 << 20, 2.0),
        "the new flavor's limits"
    );
    assert_eq!(memory_held(&stack, &id).await, [(pa.clone(), 256)]);
    assert_eq!(
        memory_held(&stack, &mig).await,
        [(pa.clone(), 128)],
        "the migration holds the old flavor"
    );
    let (st, v) = stack.action(&id, json!({"revertResize": null})).await;
    assert_eq!(st, 202, "{v}");
    let s = stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(s["flavor"]["original_name"], small.as_str(), "{s}");
    assert_eq!(
        limits_inside(&name),
        (128 << 20, 1.0),
        "the old limits back"
    );
    assert_eq!(memory_held(&stack, &id).await, [(pa.clone(), 128)]);
    assert!(memory_held(&stack, &mig).await.is_empty());

    // resize up again, then confirm
    let mig = resize(big.clone()).await;
    let (st, v) = stack.action(&id, json!({"confirmResize": null})).await;
    assert_eq!(st, 204, "{v}");
    let s = stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(s["flavor"]["original_name"], big.as_str(), "{s}");
    let t = std::time::Instant::now();
    while !memory_held(&stack, &mig).await.is_empty() {
        assert!(
            t.elapsed() < T,
            "the migration's allocation stayed after the confirm"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(limits_inside(&name), (256 << 20, 2.0));
    assert_eq!(memory_held(&stack, &id).await, [(pa.clone(), 256)]);
    // in place all along: the same container, never restarted, its files kept
    assert_eq!(inspect("{{.Id}}"), container);
    assert_eq!(inspect("{{.State.StartedAt}}"), started);
    assert_eq!(
        docker(&["exec", &name, "cat", "/root/marker"]).trim(),
        "kept-by-the-resize"
    );
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    assert!(containers_of(a).is_empty());
    stack.delete_aggregate(zone).await;
}

/// Cold migration between two hosts with engines of their own (issue 15.3):
/// `server migrate --host b` carries the container's filesystem through a
/// Glance image to b's engine; a revert brings it back running on a with
/// nothing left on b; a second migration, confirmed, leaves it on b only,
/// with its file, its allocation on b's provider, and no carrier image.
#[tokio::test]
#[ignore = "needs the lab; run by devstack/run-tests.sh"]
async fn a_cold_migration_carries_the_container_to_another_engine() {
    let stack = Stack::from_env();
    let (a, b) = ("nd-e2e-move-a", "nd-e2e-move-b");
    let zone = "nd-e2e-move";
    stack.delete_servers_named("e2e-move").await;
    let engine_b = Engine::start("b");
    let _da = Daemon::start(&stack, a, "").await;
    let _db = Daemon::start(
        &stack,
        b,
        &format!("\n[docker]\nhost_url = {}\n", engine_b.url()),
    )
    .await;
    stack.aggregate(zone, Some(zone), &[a, b]).await;
    let (pa, pb) = (provider_of(&stack, a).await, provider_of(&stack, b).await);
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let id = create_in(&stack, "e2e-move", &image, &flavor, &format!("{zone}:{a}")).await;
    stack.wait_status(&id, "ACTIVE", T).await;
    let name = format!("nova-{id}");
    docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo carried-over > /root/marker",
    ]);
    let migrate = || {
        let (stack, id) = (&stack, &id);
        async move {
            let t = std::time::Instant::now();
            let (st, v) = stack.action(id, json!({"migrate": {"host": b}})).await;
            assert_eq!(st, 202, "{v}");
            let s = stack.wait_status(id, "VERIFY_RESIZE", T).await;
            assert_eq!(s["OS-EXT-SRV-ATTR:host"], b, "{s}");
            eprintln!(
                "cold migration to {b}: POST -> VERIFY_RESIZE {:?}",
                t.elapsed()
            );
            let m = stack
                .get(&format!(
                    "{}/os-migrations?instance_uuid={id}&migration_type=migration",
                    stack.nova
                ))
                .await;
            m["migrations"][0]["uuid"].as_str().unwrap().to_string()
        }
    };
    let carrier_gone = |mig: String| {
        let (stack, id) = (&stack, &id);
        async move {
            let l = stack
                .get(&format!(
                    "{}/v2/images?os_hidden=true&name={id}-migration-{mig}",
                    stack.glance
                ))
                .await;
            assert_eq!(l["images"].as_array().map(Vec::len), Some(0), "{l}");
        }
    };

    // migrate, then revert
    let mig = migrate().await;
    assert_eq!(engine_b.containers_of(b), std::slice::from_ref(&name));
    assert_eq!(
        engine_b
            .docker(&["exec", &name, "cat", "/root/marker"])
            .trim(),
        "carried-over"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]).trim(),
        "exited",
        "the source keeps its container, stopped, until the confirm"
    );
    let (st, v) = stack.action(&id, json!({"revertResize": null})).await;
    assert_eq!(st, 202, "{v}");
    let s = stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], a, "{s}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]).trim(),
        "running"
    );
    assert_eq!(
        docker(&["exec", &name, "cat", "/root/marker"]).trim(),
        "carried-over"
    );
    assert!(
        engine_b.containers_of(b).is_empty(),
        "left on b after the revert"
    );
    assert_eq!(memory_held(&stack, &id).await, [(pa.clone(), 128)]);
    assert!(memory_held(&stack, &mig).await.is_empty());
    carrier_gone(mig).await;

    // migrate again, then confirm
    let mig = migrate().await;
    let (st, v) = stack.action(&id, json!({"confirmResize": null})).await;
    assert_eq!(st, 204, "{v}");
    let s = stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], b, "{s}");
    let t = std::time::Instant::now();
    while !containers_of(a).is_empty() || !memory_held(&stack, &mig).await.is_empty() {
        assert!(
            t.elapsed() < T,
            "the source's container or allocation stayed after the confirm"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(engine_b.containers_of(b), std::slice::from_ref(&name));
    assert_eq!(
        engine_b
            .docker(&["inspect", "-f", "{{.State.Status}}", &name])
            .trim(),
        "running"
    );
    assert_eq!(
        engine_b
            .docker(&["exec", &name, "cat", "/root/marker"])
            .trim(),
        "carried-over"
    );
    assert_eq!(memory_held(&stack, &id).await, [(pb.clone(), 128)]);
    carrier_gone(mig).await;
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    assert!(
        engine_b.containers_of(b).is_empty(),
        "the container stayed after the delete"
    );
    stack.delete_aggregate(zone).await;
}

/// Evacuation (issue 15.5): host b's daemon and engine stop, its service is
/// forced down, and `server evacuate --host a` rebuilds the server on a from
/// its image (stopped, as API 2.95 asks; then started). When b comes back,
/// its daemon removes the evacuated server's container there (never started)
/// and its allocation on b: one container, on a, and the allocation on a.
#[tokio::test]
#[ignore = "needs the lab; run by devstack/run-tests.sh"]
async fn an_evacuated_server_runs_on_another_host_and_the_failed_host_cleans_up() {
    let stack = Stack::from_env();
    let (a, b) = ("nd-e2e-evac-a", "nd-e2e-evac-b");
    let zone = "nd-e2e-evac";
    stack.delete_servers_named("e2e-evac").await;
    stack.lift_forced_down(b).await;
    let engine_b = Engine::start("evac-b");
    let conf_b = format!("\n[docker]\nhost_url = {}\n", engine_b.url());
    let _da = Daemon::start(&stack, a, "").await;
    let mut db = Daemon::start(&stack, b, &conf_b).await;
    stack.aggregate(zone, Some(zone), &[a, b]).await;
    let (pa, pb) = (provider_of(&stack, a).await, provider_of(&stack, b).await);
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let image = stack.docker_image("nd-e2e-busybox", &busybox()).await;
    let id = create_in(&stack, "e2e-evac", &image, &flavor, &format!("{zone}:{b}")).await;
    stack.wait_status(&id, "ACTIVE", T).await;
    let name = format!("nova-{id}");
    assert_eq!(engine_b.containers_of(b), std::slice::from_ref(&name));

    // b fails: its daemon and its engine stop; the operator forces it down
    db.stop();
    drop(engine_b);
    stack.force_down(b, true).await;
    let t = std::time::Instant::now();
    let (st, v) = stack.action(&id, json!({"evacuate": {"host": a}})).await;
    assert_eq!(st, 200, "{v}");
    let s = stack.wait_status(&id, "SHUTOFF", T).await;
    eprintln!("evacuation: POST -> SHUTOFF on {a} {:?}", t.elapsed());
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], a, "{s}");
    let (st, v) = stack.action(&id, json!({"os-start": null})).await;
    assert_eq!(st, 202, "{v}");
    stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(containers_of(a), std::slice::from_ref(&name));
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]).trim(),
        "running"
    );

    // b comes back: its engine still has the old container, its daemon
    // removes it and gives b's part of the allocation back
    let engine_b = Engine::start("evac-b");
    assert_eq!(
        engine_b.containers_of(b),
        std::slice::from_ref(&name),
        "the failed host's engine kept the container"
    );
    // (Nova refuses to force it up before its daemon completed the
    // evacuation's migration)
    let mut db = Daemon::start_forced_down(&stack, b, &conf_b);
    let t = std::time::Instant::now();
    let completed = format!(
        "{}/os-migrations?instance_uuid={id}&migration_type=evacuation",
        stack.nova
    );
    while !engine_b.containers_of(b).is_empty()
        || stack.get(&completed).await["migrations"][0]["status"] != "completed"
    {
        assert!(t.elapsed() < T, "the evacuated container stayed on {b}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stack.force_down(b, false).await;
    db.wait_up(&stack).await;
    let mut held = memory_held(&stack, &id).await;
    while held.len() > 1 {
        assert!(
            t.elapsed() < T,
            "b's part of the allocation stayed: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        held = memory_held(&stack, &id).await;
    }
    assert_eq!(held, [(pa.clone(), 128)], "(b is {pb})");
    let m = stack
        .get(&format!(
            "{}/os-migrations?instance_uuid={id}&migration_type=evacuation",
            stack.nova
        ))
        .await;
    assert_eq!(m["migrations"][0]["status"], "completed", "{m}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &name]).trim(),
        "running",
        "the server on a is untouched"
    );
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    assert!(containers_of(a).is_empty());
    stack.delete_aggregate(zone).await;
}
