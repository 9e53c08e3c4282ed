//! Shared set-up for the integration tests. The services themselves are brought up
//! by `devstack/run-tests.sh` (the README's test command); these helpers only read
//! where they are. Integration tests are `#[ignore]`d so that a bare `cargo test`
//! runs the unit tests alone; the test command runs them with `--include-ignored`.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// AMQP URL of the test RabbitMQ.
pub fn transport_url() -> String {
    std::env::var("NOVA_DOCKER_TEST_TRANSPORT_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into())
}

/// The venv python that has oslo.messaging (and nova, glance) installed.
pub fn python() -> String {
    std::env::var("NOVA_DOCKER_TEST_PYTHON")
        .unwrap_or_else(|_| "/opt/nova-docker-venv/bin/python".into())
}

/// A locally built busybox image whose default command stays running.
pub fn busybox_image() -> String {
    std::env::var("NOVA_DOCKER_TEST_IMAGE")
        .unwrap_or_else(|_| "nova-docker-test/busybox:latest".into())
}

/// Glance API endpoint of the test stack.
pub fn glance_url() -> String {
    std::env::var("NOVA_DOCKER_TEST_GLANCE_URL").unwrap_or_else(|_| "http://127.0.0.1:9292".into())
}

/// Path of a file under tests/.
pub fn test_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel)
}

/// Whether the Docker engine answers.
pub fn docker_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Restart dockerd: through systemd where it manages docker, else by stopping
/// the running dockerd and starting it again with the same command line.
pub fn restart_docker_daemon() {
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
        // dockerd stops the running containers first, each within its stop
        // timeout: ours have Nova's shutdown_timeout (60 s) for a command that
        // ignores SIGTERM
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                t.elapsed() < Duration::from_secs(180),
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
