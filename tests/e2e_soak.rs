//! The long run (issue 18): boot/stop/start/delete cycles against the lab, with
//! the daemon's RSS, open file descriptors and threads and the Docker objects
//! of its host sampled along the way. They must be flat at the end: no growth
//! past the warm-up beyond a small margin, nothing of the host left in Docker.
//!
//! Behind a flag: `devstack/run-tests.sh` skips it unless `ND_SOAK=1`
//! (`ND_SOAK=1 ./devstack/run-tests.sh --test e2e_soak`); `ND_SOAK_CYCLES`
//! (1000) cycles in all, run by `ND_SOAK_WORKERS` (4) servers at a time. The
//! report (CSV, one line per sample) is written to `$ND_STATE/soak-report.csv`
//! and printed.

mod common;
mod e2e_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_support::daemon::Daemon;
use e2e_support::{docker, docker_status, inspect, Stack};
use serde_json::json;

const T: Duration = Duration::from_secs(120);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    cycles: usize,
    secs: f64,
    rss_mib: f64,
    fds: usize,
    threads: usize,
    containers: usize,
    images: usize,
    networks: usize,
    volumes: usize,
}

fn sample(d: &Daemon, host: &str, cycles: usize, t0: Instant) -> Sample {
    let pid = d.pid().expect("pid");
    let v = d.status(&["VmRSS:", "Threads:"]);
    let label = format!("label=org.openstack.nova.host={host}");
    let count = |args: &[&str]| docker(args).lines().filter(|l| !l.is_empty()).count();
    Sample {
        cycles,
        secs: t0.elapsed().as_secs_f64(),
        rss_mib: v[0] / 1024.0,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0),
        threads: v[1] as usize,
        containers: count(&["ps", "-aq", "--filter", &label]),
        images: count(&["images", "-q"]),
        networks: count(&["network", "ls", "-q"]),
        volumes: count(&["volume", "ls", "-q"]),
    }
}

/// Boot one server to ACTIVE. A boot the control plane failed before any host
/// had it (ERROR with no host: the scheduler's NoValidHost after a placement
/// hiccup) is not the daemon's doing: it is counted in `unscheduled`, deleted
/// and tried again. An ERROR on our host fails the test.
async fn boot(
    stack: &Stack,
    name: &str,
    image: &str,
    flavor: &str,
    host: &str,
    unscheduled: &AtomicUsize,
) -> String {
    loop {
        let id = stack.create_server(name, image, flavor, host, None).await;
        let t = Instant::now();
        loop {
            let s = stack.server(&id).await;
            match s["status"].as_str() {
                Some("ACTIVE") if s["OS-EXT-STS:task_state"].is_null() => return id,
                Some("ERROR") if s["OS-EXT-SRV-ATTR:host"].is_null() => {
                    eprintln!(
                        "{id}: failed before it reached a host: {}",
                        s["fault"]["message"]
                    );
                    unscheduled.fetch_add(1, Ordering::SeqCst);
                    stack.delete_server(&id).await;
                    stack.wait_gone(&id, T).await;
                    break;
                }
                Some("ERROR") => panic!("server {id} went to ERROR on {host}: {}", s["fault"]),
                _ => {}
            }
            assert!(t.elapsed() < T, "server {id} not ACTIVE after {T:?}: {s}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// One cycle of one server: boot, stop, start, delete, each to its end state
/// with the container to match.
async fn cycle(
    stack: &Stack,
    name: &str,
    image: &str,
    flavor: &str,
    host: &str,
    unscheduled: &AtomicUsize,
) {
    let id = boot(stack, name, image, flavor, host, unscheduled).await;
    assert_eq!(docker_status(&id).as_deref(), Some("running"), "{id}");
    let (st, v) = stack.action(&id, json!({"os-stop": null})).await;
    assert_eq!(st, 202, "{v}");
    stack.wait_status(&id, "SHUTOFF", T).await;
    assert_eq!(docker_status(&id).as_deref(), Some("exited"), "{id}");
    let (st, v) = stack.action(&id, json!({"os-start": null})).await;
    assert_eq!(st, 202, "{v}");
    stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(docker_status(&id).as_deref(), Some("running"), "{id}");
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    assert!(
        inspect(&format!("nova-{id}")).is_none(),
        "{id}: container left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a long run behind ND_SOAK=1; see the module's documentation"]
async fn soak_boot_stop_start_delete_cycles() {
    let cycles = env_usize("ND_SOAK_CYCLES", 1000);
    let workers = env_usize("ND_SOAK_WORKERS", 4).max(1);
    let stack = Arc::new(Stack::from_env());
    let host = "nd-e2e-soak";
    stack.delete_servers_named("e2e-soak-").await;
    let d = Daemon::start(&stack, host, "").await;
    let image = stack
        .docker_image(
            "nd-e2e-busybox",
            &std::env::var("NOVA_DOCKER_TEST_IMAGE")
                .unwrap_or_else(|_| "nova-docker-test/busybox:latest".into()),
        )
        .await;
    let flavor = stack.flavor("nd.e2e", 128, 1).await;
    let t0 = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let unscheduled = Arc::new(AtomicUsize::new(0));
    let mut samples = vec![sample(&d, host, 0, t0)];
    let every = (cycles / 40).max(1);
    let mut ws = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (stack, image, flavor, done, unscheduled) = (
            stack.clone(),
            image.clone(),
            flavor.clone(),
            done.clone(),
            unscheduled.clone(),
        );
        ws.spawn(async move {
            let mut i = 0;
            while done.fetch_add(1, Ordering::SeqCst) < cycles {
                let name = format!("e2e-soak-{w}-{i}");
                cycle(&stack, &name, &image, &flavor, host, &unscheduled).await;
                i += 1;
            }
        });
    }
    let mut next = every;
    loop {
        tokio::select! {
            r = ws.join_next() => match r {
                Some(r) => r.expect("a cycle failed"),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let n = done.load(Ordering::SeqCst).min(cycles);
        if n >= next {
            let s = sample(&d, host, n, t0);
            // as it goes, so that a run cut short still has its figures
            eprintln!("sample: {s:?}");
            samples.push(s);
            next += every;
        }
    }
    // the last sample after the daemon's periodic tasks had a round
    tokio::time::sleep(Duration::from_secs(10)).await;
    let end = sample(&d, host, cycles, t0);
    samples.push(end);
    let mut csv =
        String::from("cycles,seconds,rss_mib,fds,threads,containers,images,networks,volumes\n");
    for s in &samples {
        csv.push_str(&format!(
            "{},{:.0},{:.1},{},{},{},{},{},{}\n",
            s.cycles,
            s.secs,
            s.rss_mib,
            s.fds,
            s.threads,
            s.containers,
            s.images,
            s.networks,
            s.volumes
        ));
    }
    let report = stack.state.join("soak-report.csv");
    std::fs::write(&report, &csv).unwrap();
    eprintln!("{csv}report: {}", report.display());
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{cycles} cycles in {secs:.0} s ({:.2} s per cycle, {workers} at a time)",
        secs / cycles as f64
    );
    let unscheduled = unscheduled.load(Ordering::SeqCst);
    eprintln!("boots the control plane failed before a host had them: {unscheduled}");
    assert!(
        unscheduled * 100 <= cycles,
        "{unscheduled} boots failed in the control plane, more than 1 %"
    );
    // flat: the end against the first sample past a tenth of the run
    let warm = samples
        .iter()
        .find(|s| s.cycles >= cycles / 10)
        .copied()
        .unwrap_or(samples[0]);
    let start = samples[0];
    assert!(
        end.rss_mib <= warm.rss_mib * 1.15 + 2.0,
        "RSS grew: {:.1} MiB after the warm-up, {:.1} MiB at the end",
        warm.rss_mib,
        end.rss_mib
    );
    assert!(
        end.fds <= warm.fds + 4,
        "fds grew: {} -> {}",
        warm.fds,
        end.fds
    );
    assert!(
        end.threads <= warm.threads + 2,
        "threads grew: {} -> {}",
        warm.threads,
        end.threads
    );
    assert_eq!(end.containers, 0, "containers of the host left");
    assert!(
        end.images <= start.images,
        "images grew: {} -> {}",
        start.images,
        end.images
    );
    assert!(
        end.networks <= start.networks && end.volumes <= start.volumes,
        "Docker networks or volumes grew: {start:?} -> {end:?}"
    );
    drop(d);
}
