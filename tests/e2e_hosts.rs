//! Several compute hosts under one control plane (issue 15): each is a daemon
//! of its own with its own host name, on this machine's Docker engine (one
//! reaches it over TCP, through a relay that can be cut, as a remote engine
//! would be reached). Nova's scheduler chooses between them; nothing in these
//! tests forces a host.

mod common;
mod e2e_support;

use std::time::Duration;

use e2e_support::daemon::Daemon;
use e2e_support::outage::Relay;
use e2e_support::{containers_of, docker, Stack};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(300);

fn busybox() -> String {
    std::env::var("NOVA_DOCKER_TEST_IMAGE")
        .unwrap_or_else(|_| "nova-docker-test/busybox:latest".into())
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
    let (st, v) = stack
        .call(
            reqwest::Method::POST,
            &format!("{}/servers", stack.nova),
            Some(json!({"server": {"name": "e2e-resched", "imageRef": image,
                "flavorRef": flavor, "networks": "none", "availability_zone": zone}})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["server"]["id"].as_str().unwrap().to_string();
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
