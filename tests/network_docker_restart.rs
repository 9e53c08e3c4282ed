//! Networking survives a restart of the Docker daemon itself (the old driver's most
//! reported bug: instances lost their network after the host's Docker restarted).
//! In a test binary of its own, since it restarts the engine every other test uses;
//! cargo runs test binaries one after another. Needs root; run by devstack/run-tests.sh.

mod common;
mod network_support;

use std::process::Command;
use std::time::{Duration, Instant};

use network_support::*;
use nova_docker::config::Ini;
use nova_docker::network::{GuestInfo, VifManager};

fn manager() -> VifManager {
    let mut ini = Ini::default();
    ini.merge_text(
        "[docker]\nvif_driver = generic\n",
        std::path::Path::new("nova.conf"),
    )
    .unwrap();
    VifManager::from_ini(&ini).unwrap()
}

fn guest(c: &TestContainer) -> GuestInfo {
    GuestInfo {
        hostname: c.hostname.clone(),
        domain: None,
    }
}

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Restart dockerd: through systemd where it manages docker, else by stopping
/// the running dockerd and starting it again with the same command line.
fn restart_docker_daemon() {
    let systemd = Command::new("systemctl")
        .args(["is-active", "--quiet", "docker"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if systemd {
        let st = Command::new("systemctl")
            .args(["restart", "docker"])
            .status()
            .unwrap();
        assert!(st.success(), "systemctl restart docker failed");
    } else {
        let pid = String::from_utf8(
            Command::new("pidof")
                .arg("dockerd")
                .output()
                .expect("pidof")
                .stdout,
        )
        .unwrap();
        let pid: i32 = pid
            .split_whitespace()
            .next()
            .expect("dockerd runs")
            .parse()
            .unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let t = Instant::now();
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "dockerd did not stop"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // detached from this test process (setsid -f), logging where dockerd logs
        let st = Command::new("setsid")
            .arg("-f")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("setsid dockerd");
        assert!(st.success());
    }
    let t = Instant::now();
    while !docker_answers() {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "dockerd did not come back"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test]
#[ignore = "needs root, Docker and the test image; restarts dockerd; run by devstack/run-tests.sh"]
async fn instances_ping_again_after_the_docker_daemon_restarts() {
    allow_test_bridges();
    let br = format!("ndr{}", token());
    let _g = LinkGuard(vec![br.clone()]);
    let (_, vifs_a) = fixture("bridge_a.json", &[("brq6a8b2c1d-0e", &br)]);
    let (_, vifs_b) = fixture("bridge_b.json", &[("brq6a8b2c1d-0e", &br)]);
    let m = manager();
    let d = docker();
    let a = TestContainer::start(&d, "vm-a").await;
    let b = TestContainer::start(&d, "vm-b").await;
    for (c, vifs) in [(&a, &vifs_a), (&b, &vifs_b)] {
        m.plug_all(&c.uuid, vifs).await.unwrap();
        m.attach_all(&c.uuid, c.pid(&d).await, vifs, &guest(c))
            .await
            .unwrap();
    }
    let (ok, out) = ping(&d, &a, "10.77.0.12").await;
    assert!(ok, "before the restart: {out}");

    restart_docker_daemon();
    let d = docker();
    allow_test_bridges();
    // what the compute service does when it finds the instances stopped and Nova
    // starts them: start the container, then re-plug and re-address it
    for (c, vifs) in [(&a, &vifs_a), (&b, &vifs_b)] {
        let running = d
            .inspect_container(
                &c.name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .unwrap()
            .state
            .and_then(|s| s.running)
            .unwrap_or(false);
        if !running {
            c.start_again(&d).await;
        }
        m.plug_all(&c.uuid, vifs).await.unwrap();
        m.attach_all(&c.uuid, c.pid(&d).await, vifs, &guest(c))
            .await
            .unwrap();
    }
    for (from, to) in [
        (&a, "10.77.0.12"),
        (&a, "fd00:77::c"),
        (&b, "10.77.0.11"),
        (&b, "fd00:77::b"),
    ] {
        let (ok, out) = ping(&d, from, to).await;
        assert!(
            ok,
            "after the Docker daemon restart {} cannot ping {to}: {out}",
            from.hostname
        );
    }
    assert_eq!(
        bridge_members(&br).len(),
        2,
        "one port per instance, no stale ones"
    );

    a.remove(&d).await;
    b.remove(&d).await;
    m.unplug_all(&a.uuid, &vifs_a).await.unwrap();
    m.unplug_all(&b.uuid, &vifs_b).await.unwrap();
    assert!(bridge_members(&br).is_empty());
}
