//! Image I/O throughput and memory against real Glance and Docker.
//!
//! `cargo bench --bench image_io` (needs the test stack: devstack/lib/test-setup-image.sh).
//! Builds (once) a FROM-scratch image with one random layer of ND_BENCH_IMAGE_MIB
//! (default 1024) MiB, then measures in the same run:
//! - upload: `docker save | curl -T - <glance>/v2/images/<id>/file` against our
//!   `ImageService::snapshot` of a container of that image;
//! - load: `curl <glance>/v2/images/<id>/file | docker load` against our
//!   `ImageService::ensure_image`;
//!
//! and the peak RSS of this process during our operations (VmHWM, reset through
//! /proc/self/clear_refs before each). Targets: >= 0.9x the pipelines' throughput,
//! peak RSS < 64 MiB.
//!
//! Fairness on a shared, noisy 2-core machine: every timed run starts after `sync`
//! (no dirty pages of the previous run are written back during the next), the
//! order of baseline and ours alternates from round to round, and the verdict is
//! the ratio of the medians over ND_BENCH_ROUNDS (default 6, rounded up to an even
//! count) rounds; the per-round ratios are printed too. The count is even because
//! on this kind of host whichever side runs first in a round is often faster
//! (uploads: a median of 14.5 s first against 17.6 s second over 11 rounds on
//! 2026-11-23); with an odd count one side would run first once more.
//!
//! Each side's CPU seconds are printed by process as well (dockerd with the untar
//! children it waits for, Glance's gunicorn worker, the client: our process, or
//! the baseline's curl and docker CLI), as the mean per run. ND_BENCH_ONLY=load
//! measures the load alone (its source is uploaded untimed).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, RemoveImageOptions, TagImageOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use nova_docker::config::Ini;
use nova_docker::context::RequestContext;
use nova_docker::image::{coalesce, local_ref, ImageConfig, ImageService, SnapshotProps};
use nova_docker::virt::docker::DockerImages;
use serde_json::{json, Map};

fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail; {script}"))
        .output()
        .expect("bash runs");
    if !out.status.success() {
        panic!(
            "command failed: {script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Before each timed run: write back what the previous run left dirty, so that
/// neither side pays for the other's disk writes.
fn settle() {
    sh("sync");
    std::thread::sleep(std::time::Duration::from_millis(500));
}

fn reset_peak_rss() {
    // "5" resets the peak RSS (VmHWM) of the process (Linux >= 4.0)
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after ")": state is [0]; utime is field 14 of the line, [11] here
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// CPU seconds (user + system) of the children this process has waited for
/// (the baseline's bash, curl and docker CLI), from /proc/self/stat.
fn children_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the line, [13] and [14] here
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(13) + t(14)) / 100.0
}

/// Every process's CPU seconds (user + system, its own and that of the children it
/// has waited for: dockerd's untar runs in a child of its own) so far, by (pid,
/// start time), with its name (a kernel thread's without its `/...` suffix).
fn all_procs_cpu() -> HashMap<(u32, u64), (String, f64)> {
    let mut m = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return m;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close]
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let start = f.get(19).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        m.insert(
            (pid, start),
            (comm, (t(11) + t(12) + t(13) + t(14)) / 100.0),
        );
    }
    m
}

/// CPU seconds each process name used between two [`all_procs_cpu`] snapshots
/// (processes that ended in between are missing: the caller counts its own
/// children apart). The bench process itself is left out.
fn procs_cpu_delta(
    before: &HashMap<(u32, u64), (String, f64)>,
    after: &HashMap<(u32, u64), (String, f64)>,
) -> BTreeMap<String, f64> {
    let me = std::process::id();
    let mut out = BTreeMap::new();
    for (k, (comm, secs)) in after {
        if k.0 == me {
            continue;
        }
        let d = secs - before.get(k).map(|(_, s)| *s).unwrap_or(0.0);
        if d > 0.0 {
            *out.entry(comm.clone()).or_insert(0.0) += d;
        }
    }
    out
}

/// Add `one` run's per-process CPU to `sum`.
fn add_cpu(sum: &mut BTreeMap<String, f64>, one: &BTreeMap<String, f64>) {
    for (k, v) in one {
        *sum.entry(k.clone()).or_insert(0.0) += v;
    }
}

/// One line per process name: the mean CPU seconds per run of each side, the
/// largest first; names under 0.1 s on both sides are summed as `rest`.
fn print_cpu_table(
    what: &str,
    base: &BTreeMap<String, f64>,
    ours: &BTreeMap<String, f64>,
    runs: f64,
) {
    let mut names: Vec<&String> = base.keys().chain(ours.keys()).collect();
    names.sort();
    names.dedup();
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0) / runs;
    names.sort_by(|a, b| (get(ours, b) + get(base, b)).total_cmp(&(get(ours, a) + get(base, a))));
    println!("{what}: CPU s per run by process (mean), baseline / ours:");
    let (mut rest_b, mut rest_o, mut tot_b, mut tot_o) = (0.0, 0.0, 0.0, 0.0);
    for n in names {
        let (b, o) = (get(base, n), get(ours, n));
        tot_b += b;
        tot_o += o;
        if b < 0.1 && o < 0.1 {
            rest_b += b;
            rest_o += o;
            continue;
        }
        println!("  {n:<24} {b:6.2} {o:6.2}");
    }
    println!("  {:<24} {rest_b:6.2} {rest_o:6.2}", "rest");
    println!("  {:<24} {tot_b:6.2} {tot_o:6.2}", "total");
}

/// Machine-wide busy CPU seconds (user, nice, system, irq, softirq; not steal).
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let g = |i: usize| f.get(i).copied().unwrap_or(0.0);
    (g(0) + g(1) + g(2) + g(5) + g(6)) / 100.0
}

fn ctx() -> RequestContext {
    RequestContext {
        user_id: Some("admin".into()),
        project_id: Some("admin".into()),
        ..RequestContext::admin()
    }
}

async fn queued(svc: &ImageService, name: &str, formats: bool) -> String {
    let mut f = Map::new();
    f.insert("name".into(), json!(name));
    if formats {
        f.insert("container_format".into(), json!("docker"));
        f.insert("disk_format".into(), json!("raw"));
    }
    svc.glance().create(&ctx(), f).await.expect("create").id
}

async fn rmi(docker: &Docker, r: &str) {
    let _ = docker
        .remove_image(
            r,
            Some(RemoveImageOptions {
                force: true,
                noprune: false,
            }),
            None,
        )
        .await;
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    // NaN for a side not measured (ND_BENCH_ONLY)
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("image_io: a benchmark; run it with `cargo bench --bench image_io`");
        return;
    }
    // RUST_LOG (e.g. nova_docker=debug): our log lines, timed, on stderr
    if let Ok(f) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(f)
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let glance = std::env::var("NOVA_DOCKER_TEST_GLANCE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:9292".into());
    let mib: u64 = std::env::var("ND_BENCH_IMAGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let big = format!("nova-docker-bench/random:{mib}m");
    let docker = Docker::connect_with_local_defaults().expect("docker");
    if docker.inspect_image(&big).await.is_err() {
        eprintln!("building {big} ({mib} MiB random layer)");
        sh(&format!(
            "d=$(mktemp -d); head -c {mib}M /dev/urandom > $d/random.bin; \
             tar -C $d -c . | docker import --change 'CMD [\"/random.bin\"]' - {big} >/dev/null; rm -rf $d"
        ));
    }
    let mut ini = Ini::default();
    ini.merge_text(
        &format!("[glance]\napi_servers = {glance}\n"),
        std::path::Path::new("bench.conf"),
    )
    .expect("ini");
    let svc = ImageService::new(
        Arc::new(DockerImages::new(docker.clone())),
        ImageConfig::from_ini(&ini).expect("cfg"),
    )
    .expect("service");

    let rounds: usize = std::env::var("ND_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
        .max(1);
    // an even count, so that each side runs first equally often: the first run of
    // a round is measurably faster here (see the module note)
    let rounds = rounds + rounds % 2;
    let (mut up_base, mut up_ours, mut load_base, mut load_ours) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut rss_up, mut rss_load, mut size) = (0u64, 0u64, 0u64);
    let (mut cpu_up, mut cpu_load) = (Vec::new(), Vec::new());
    // machine-wide busy CPU seconds of each timed run: [upload base, ours, load base, ours]
    let mut busy: [Vec<f64>; 4] = Default::default();
    // CPU seconds by process name, summed over the rounds: [upload base, ours, load base, ours]
    // (the client of each side counted as `client`: our process, or the
    // baseline's bash, curl and docker CLI)
    let mut procs: [BTreeMap<String, f64>; 4] = Default::default();
    // ND_BENCH_ONLY=load: the load alone (its source uploaded untimed)
    let only_load = std::env::var("ND_BENCH_ONLY").is_ok_and(|v| v == "load");
    let rss0 = peak_rss_kib();
    for round in 0..rounds {
        // odd rounds run ours first, even rounds the baseline first
        let ours_first = round % 2 == 1;

        // ---- upload: `docker save | curl -T` against a snapshot of a container
        let a = queued(&svc, "bench-upload-baseline", true).await;
        if only_load {
            // the load's source only, untimed
            sh(&format!(
                "docker save {big} | curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T - {glance}/v2/images/{a}/file"
            ));
        }
        let cname = format!("nd-bench-{}", uuid::Uuid::new_v4());
        docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(cname.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(big.clone()),
                    ..Default::default()
                },
            )
            .await
            .expect("create container");
        if std::env::var_os("ND_BENCH_DIAG").is_some() {
            let d = queued(&svc, "bench-diag-upload", true).await;
            let t = Instant::now();
            let data = docker
                .export_image(&big)
                .map(|r| r.map_err(std::io::Error::other));
            svc.glance()
                .upload(&ctx(), &d, coalesce(Box::pin(data), 64 * 1024))
                .await
                .expect("upload");
            eprintln!(
                "diag: upload alone (export_image -> PUT file) {:.2}s",
                t.elapsed().as_secs_f64()
            );
            let _ = svc.glance().delete(&ctx(), &d).await;
        }
        let b = queued(&svc, "bench-snapshot", false).await;
        let upload_sides = if only_load {
            &[][..]
        } else {
            &[ours_first, !ours_first][..]
        };
        for &ours in upload_sides {
            settle();
            let m0 = machine_busy_secs();
            let (p0, k0, s0) = (all_procs_cpu(), children_cpu_secs(), cpu_secs());
            if ours {
                reset_peak_rss();
                let c0 = cpu_secs();
                let t = Instant::now();
                svc.snapshot(
                    &ctx(),
                    &cname,
                    &b,
                    SnapshotProps {
                        instance_uuid: uuid::Uuid::new_v4().to_string(),
                        ..Default::default()
                    },
                )
                .await
                .expect("snapshot");
                up_ours.push(t.elapsed().as_secs_f64());
                cpu_up.push(cpu_secs() - c0);
                rss_up = rss_up.max(peak_rss_kib());
            } else {
                let t = Instant::now();
                sh(&format!(
                    "docker save {big} | curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T - {glance}/v2/images/{a}/file"
                ));
                up_base.push(t.elapsed().as_secs_f64());
            }
            busy[usize::from(ours)].push(machine_busy_secs() - m0);
            let mut d = procs_cpu_delta(&p0, &all_procs_cpu());
            d.insert(
                "client".into(),
                children_cpu_secs() - k0 + if ours { cpu_secs() - s0 } else { 0.0 },
            );
            add_cpu(&mut procs[usize::from(ours)], &d);
        }
        size = svc
            .glance()
            .get(&ctx(), &a)
            .await
            .expect("get")
            .size
            .unwrap_or(0);
        let _ = docker
            .remove_container(
                &cname,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        let _ = svc.glance().delete(&ctx(), &b).await;

        // ---- load: `curl | docker load` against ensure_image, both from image `a`
        // (whose tarball carries the bench image's tag, which only the baseline
        // applies); neither finds it in Docker
        if std::env::var_os("ND_BENCH_DIAG").is_some() {
            let t = Instant::now();
            sh(&format!(
                "curl -sf {glance}/v2/images/{a}/file -o /dev/null"
            ));
            let t_curl = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let c = cpu_secs();
            let (_, s) = svc.glance().download(&ctx(), &a).await.expect("download");
            let mut s = Box::pin(s);
            let mut chunks = 0u64;
            while let Some(b) = s.next().await {
                let _ = b.expect("data");
                chunks += 1;
            }
            eprintln!(
                "diag: our download alone {:.2}s ({:.2} CPU s, {chunks} chunks)",
                t.elapsed().as_secs_f64(),
                cpu_secs() - c
            );
            let t = Instant::now();
            let c = cpu_secs();
            let (_, s) = svc.glance().download(&ctx(), &a).await.expect("download");
            let mut s = Box::pin(s);
            let mut h = nova_docker::image::Hasher::new("sha512").expect("sha512");
            while let Some(b) = s.next().await {
                h.update(&b.expect("data"));
            }
            let _ = h.hex();
            eprintln!(
                "diag: curl -o /dev/null {t_curl:.2}s; our download+sha512 {:.2}s ({:.2} CPU s)",
                t.elapsed().as_secs_f64(),
                cpu_secs() - c
            );
        }
        rmi(&docker, &big).await;
        for (i, ours) in [ours_first, !ours_first].into_iter().enumerate() {
            settle();
            let m0 = machine_busy_secs();
            let (p0, k0, s0) = (all_procs_cpu(), children_cpu_secs(), cpu_secs());
            if ours {
                reset_peak_rss();
                let c0 = cpu_secs();
                let t = Instant::now();
                let r = svc.ensure_image(&ctx(), &a).await.expect("ensure_image");
                load_ours.push(t.elapsed().as_secs_f64());
                cpu_load.push(cpu_secs() - c0);
                rss_load = rss_load.max(peak_rss_kib());
                assert_eq!(r, local_ref(&a));
                // Docker got the tarball without its tags: the bench image's tag
                // comes back by hand for the next round
                let (repo, tag) = big.split_once(':').expect("bench image tag");
                docker
                    .tag_image(
                        &r,
                        Some(TagImageOptions {
                            repo: Some(repo.into()),
                            tag: Some(tag.into()),
                        }),
                    )
                    .await
                    .expect("tag");
            } else {
                let t = Instant::now();
                sh(&format!(
                    "curl -sf {glance}/v2/images/{a}/file | docker load -q >/dev/null"
                ));
                load_base.push(t.elapsed().as_secs_f64());
            }
            busy[2 + usize::from(ours)].push(machine_busy_secs() - m0);
            let mut d = procs_cpu_delta(&p0, &all_procs_cpu());
            d.insert(
                "client".into(),
                children_cpu_secs() - k0 + if ours { cpu_secs() - s0 } else { 0.0 },
            );
            add_cpu(&mut procs[2 + usize::from(ours)], &d);
            // after the first load the image goes; after the second the bench
            // image's tag stays for the next round
            rmi(&docker, &local_ref(&a)).await;
            if i == 0 {
                rmi(&docker, &big).await;
            }
        }
        let _ = svc.glance().delete(&ctx(), &a).await;
        let upload = if only_load {
            String::new()
        } else {
            format!(
                "upload base {:.2}s ours {:.2}s ({:.2} CPU s) ratio {:.2}; ",
                up_base[round],
                up_ours[round],
                cpu_up[round],
                up_base[round] / up_ours[round]
            )
        };
        eprintln!(
            "round {round} ({} first): {upload}load base {:.2}s ours {:.2}s ({:.2} CPU s) ratio {:.2}",
            if ours_first { "ours" } else { "baseline" },
            load_base[round], load_ours[round], cpu_load[round], load_base[round] / load_ours[round]
        );
    }
    let paired = |base: &[f64], ours: &[f64]| {
        let mut r: Vec<f64> = base.iter().zip(ours).map(|(b, o)| b / o).collect();
        median(&mut r)
    };
    let (pair_up, pair_load) = (paired(&up_base, &up_ours), paired(&load_base, &load_ours));
    let busy_med: Vec<f64> = busy.iter_mut().map(|v| median(v)).collect();
    let (t_up_base, t_up_ours, t_load_base, t_load_ours) = (
        median(&mut up_base),
        median(&mut up_ours),
        median(&mut load_base),
        median(&mut load_ours),
    );
    let mb = size as f64 / (1024.0 * 1024.0);
    println!("image_io: image {big}, docker save tarball {mb:.0} MiB, median of {rounds} rounds (peak RSS before: {rss0} KiB)");
    println!(
        "upload  baseline (docker save | curl -T -): {:7.1} MiB/s ({t_up_base:.2} s)",
        mb / t_up_base
    );
    println!(
        "upload  ours (ImageService::snapshot):       {:7.1} MiB/s ({t_up_ours:.2} s)  ratio {:.2}x  peak RSS {:.1} MiB",
        mb / t_up_ours,
        t_up_base / t_up_ours,
        rss_up as f64 / 1024.0
    );
    println!(
        "load    baseline (curl | docker load):      {:7.1} MiB/s ({t_load_base:.2} s)",
        mb / t_load_base
    );
    println!(
        "load    ours (ImageService::ensure_image):  {:7.1} MiB/s ({t_load_ours:.2} s)  ratio {:.2}x  peak RSS {:.1} MiB",
        mb / t_load_ours,
        t_load_base / t_load_ours,
        rss_load as f64 / 1024.0
    );
    println!(
        "median of the per-round ratios: upload {pair_up:.2}x, load {pair_load:.2}x; \
         our process CPU (median): upload {:.2} s, load {:.2} s",
        median(&mut cpu_up),
        median(&mut cpu_load)
    );
    println!(
        "machine-wide busy CPU s (median): upload base {:.1} ours {:.1}; load base {:.1} ours {:.1}",
        busy_med[0], busy_med[1], busy_med[2], busy_med[3]
    );
    print_cpu_table("upload", &procs[0], &procs[1], rounds as f64);
    print_cpu_table("load", &procs[2], &procs[3], rounds as f64);
    let ok = t_up_base / t_up_ours >= 0.9
        && t_load_base / t_load_ours >= 0.9
        && rss_up < 64 * 1024
        && rss_load < 64 * 1024;
    println!(
        "targets (>= 0.9x, peak RSS < 64 MiB): {}",
        if ok { "met" } else { "NOT met" }
    );
}
