//! Boot cost of `DockerDriver::spawn` against raw bollard create+start of the same
//! image, measured in the same run and interleaved so that engine drift hits both.
//!
//! `cargo bench --bench boot` (or `cargo test --bench boot -- --bench`) runs the full
//! figures: N sequential boots (BOOT_N, default 20) and C concurrent boots (BOOT_C,
//! default 100). Under plain `cargo test` it runs a small smoke pass only.
//!
//! "spawn (work)" is spawn with `spawn_confirm_window = 0`: create, start and the
//! confirming inspect, i.e. the driver's own work. "spawn (default)" adds the idle
//! confirmation window during which a container that exits at once is caught.

use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use futures_util::future::join_all;
use nova_docker::virt::docker::{DockerConfig, DockerDriver};
use nova_docker::virt::InstanceSpec;

fn image() -> String {
    std::env::var("NOVA_DOCKER_TEST_IMAGE")
        .unwrap_or_else(|_| "nova-docker-test/busybox:latest".into())
}

fn spec(host: &str) -> InstanceSpec {
    let uuid = uuid::Uuid::new_v4().to_string();
    InstanceSpec {
        hostname: format!("b-{}", &uuid[..8]),
        domainname: None,
        uuid,
        display_name: "bench".into(),
        project_id: "bench".into(),
        user_id: "bench".into(),
        host: host.into(),
        memory_mb: 64,
        vcpus: 1,
        image: image(),
        stop_timeout: Duration::from_secs(1),
        ..Default::default()
    }
}

async fn raw_boot(docker: &Docker) -> (Duration, String) {
    let name = format!("bench-raw-{}", uuid::Uuid::new_v4().simple());
    let body = ContainerCreateBody {
        image: Some(image()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = Instant::now();
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .expect("raw create");
    docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .expect("raw start");
    (t.elapsed(), name)
}

async fn ours_boot(driver: &DockerDriver, host: &str) -> (Duration, String) {
    let s = spec(host);
    let t = Instant::now();
    driver.spawn(&s).await.expect("spawn");
    (t.elapsed(), s.uuid)
}

async fn rm_raw(docker: &Docker, name: &str) {
    let _ = docker
        .remove_container(
            name,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        )
        .await;
}

fn mean(v: &[Duration]) -> f64 {
    v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len().max(1) as f64
}

fn median(v: &[Duration]) -> f64 {
    let mut s: Vec<f64> = v.iter().map(|d| d.as_secs_f64()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

async fn driver(window: Duration, state: &std::path::Path) -> DockerDriver {
    let cfg = DockerConfig {
        spawn_confirm_window: window,
        state_dir: state.to_path_buf(),
        ..Default::default()
    };
    DockerDriver::connect(cfg, "bench-host")
        .await
        .expect("connect")
}

async fn sequential(n: usize, raw: &Docker, work: &DockerDriver, full: &DockerDriver) {
    let (mut r, mut w, mut f) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (t, name) = raw_boot(raw).await;
        r.push(t);
        rm_raw(raw, &name).await;
        let (t, uuid) = ours_boot(work, "bench-host").await;
        w.push(t);
        work.destroy(&uuid, Duration::ZERO).await.expect("destroy");
        let (t, uuid) = ours_boot(full, "bench-host").await;
        f.push(t);
        full.destroy(&uuid, Duration::ZERO).await.expect("destroy");
    }
    println!("sequential boots, N = {n}");
    println!(
        "  raw create+start   mean {:7.1} ms  median {:7.1} ms",
        mean(&r) * 1e3,
        median(&r) * 1e3
    );
    println!(
        "  spawn (work)       mean {:7.1} ms  median {:7.1} ms",
        mean(&w) * 1e3,
        median(&w) * 1e3
    );
    println!(
        "  spawn (default, {:.1}s confirm window) mean {:7.1} ms  median {:7.1} ms",
        full.config().spawn_confirm_window.as_secs_f64(),
        mean(&f) * 1e3,
        median(&f) * 1e3
    );
    println!(
        "  ratio spawn(work)/raw: mean {:.3}  median {:.3}   (target <= 1.05)",
        mean(&w) / mean(&r),
        median(&w) / median(&r)
    );
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Raw,
    RawSameBody,
    Work,
    Default,
}

/// One batch of `c` concurrent boots; returns its wall time (cleanup not counted).
async fn batch(
    kind: Kind,
    c: usize,
    raw: &Docker,
    work: &DockerDriver,
    full: &DockerDriver,
) -> Duration {
    match kind {
        Kind::Raw | Kind::RawSameBody => {
            let t = Instant::now();
            let names: Vec<String> = if kind == Kind::Raw {
                join_all((0..c).map(|_| raw_boot(raw)))
                    .await
                    .into_iter()
                    .map(|x| x.1)
                    .collect()
            } else {
                join_all((0..c).map(|_| raw_boot_same_body(raw)))
                    .await
                    .into_iter()
                    .map(|x| x.1)
                    .collect()
            };
            let el = t.elapsed();
            join_all(names.iter().map(|n| rm_raw(raw, n))).await;
            el
        }
        Kind::Work | Kind::Default => {
            let d = if kind == Kind::Work { work } else { full };
            let t = Instant::now();
            let uuids: Vec<String> = join_all((0..c).map(|_| ours_boot(d, "bench-host")))
                .await
                .into_iter()
                .map(|x| x.1)
                .collect();
            let el = t.elapsed();
            join_all(uuids.iter().map(|u| d.destroy(u, Duration::ZERO))).await;
            el
        }
    }
}

/// Raw create+start with exactly the body spawn sends (limits, init, labels): the
/// engine's own cost of what we ask, without the driver around it.
async fn raw_boot_same_body(docker: &Docker) -> (Duration, String) {
    let s = spec("bench-raw-host");
    let (name, body) = nova_docker::virt::docker::build_create_body(
        &s,
        nova_docker::virt::docker::Limits {
            cpu_mode: nova_docker::virt::docker::CpuMode::Quota,
            pids_limit: None,
        },
    );
    let t = Instant::now();
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .expect("raw create");
    docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .expect("raw start");
    (t.elapsed(), name)
}

async fn concurrent(c: usize, raw: &Docker, work: &DockerDriver, full: &DockerDriver) {
    // ABBA order so that drift of the engine (or of other load on the host) hits both.
    let mut t = std::collections::HashMap::new();
    for kind in [
        Kind::Raw,
        Kind::Work,
        Kind::Work,
        Kind::Raw,
        Kind::RawSameBody,
        Kind::Default,
    ] {
        let d = batch(kind, c, raw, work, full).await;
        println!("  batch {kind:?}: {:8.1} ms", d.as_secs_f64() * 1e3);
        t.entry(format!("{kind:?}"))
            .or_insert_with(Vec::new)
            .push(d);
    }
    let m = |k: &str| mean(&t[k]);
    println!("concurrent boots, C = {c} (wall time of a whole batch, mean of batches)");
    println!("  raw create+start              {:8.1} ms", m("Raw") * 1e3);
    println!(
        "  raw create+start, spawn body  {:8.1} ms",
        m("RawSameBody") * 1e3
    );
    println!("  spawn (work)                  {:8.1} ms", m("Work") * 1e3);
    println!(
        "  spawn (default)               {:8.1} ms",
        m("Default") * 1e3
    );
    println!(
        "  ratio spawn(work)/raw {:.3} (target <= 1.2); spawn(work)/raw-same-body {:.3}; spawn(default)/raw {:.3}",
        m("Work") / m("Raw"),
        m("Work") / m("RawSameBody"),
        m("Default") / m("Raw")
    );
}

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[tokio::main]
async fn main() {
    let full_run = std::env::args().any(|a| a == "--bench");
    let (n, c) = if full_run {
        (env_usize("BOOT_N", 20), env_usize("BOOT_C", 100))
    } else {
        (1, 2)
    };
    let state = tempfile::tempdir().expect("tempdir");
    let raw = Docker::connect_with_unix_defaults()
        .expect("docker")
        .negotiate_version()
        .await
        .expect("negotiate");
    let work = driver(Duration::ZERO, state.path()).await;
    let full = driver(DockerConfig::default().spawn_confirm_window, state.path()).await;
    println!(
        "engine {} (API {}), image {}{}",
        work.engine_version(),
        work.api_version(),
        image(),
        if full_run {
            ""
        } else {
            " [smoke pass; run with --bench for figures]"
        }
    );
    // warm-up: first create of an image pays one-off costs
    let (_, name) = raw_boot(&raw).await;
    rm_raw(&raw, &name).await;
    sequential(n, &raw, &work, &full).await;
    concurrent(c, &raw, &work, &full).await;
}
