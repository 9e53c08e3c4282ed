//! nova.conf as the daemon reads it: the file Python nova-compute was configured
//! with works unchanged, and a bad file stops start-up naming file, line and option.

use std::path::Path;
use std::process::Command;

use nova_docker::config::Ini;
use nova_docker::daemon::Settings;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

#[test]
fn the_compute_config_of_a_python_nova_compute_configures_us() {
    let ini = Ini::load(&[fixture("harness-compute.conf")], &[]).unwrap();
    let s = Settings::from_ini(&ini).unwrap();
    assert_eq!(s.default.host, "fakehost1");
    assert!(s.default.debug);
    assert_eq!(
        s.default.state_path,
        Path::new("/tmp/nova-harness/data/compute-fakehost1")
    );
    assert_eq!(s.rabbit.transport_url.hosts[0].host, "127.0.0.1");
    assert_eq!(s.rabbit.transport_url.hosts[0].port, 5672);
    assert_eq!(
        s.placement.endpoint_override.as_deref(),
        Some("http://127.0.0.1:8778")
    );
    assert_eq!(s.docker.host_url, "unix:///var/run/docker.sock");
    // the user_data policy defaults are the safe ones
    assert!(!s.policy.allow_privileged);
}

#[test]
fn the_sample_config_is_valid() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/nova-docker.conf.sample");
    let d = tempfile::tempdir().unwrap();
    let url = d.path().join("url.conf");
    std::fs::write(
        &url,
        "[DEFAULT]\ntransport_url = rabbit://nova:x@10.0.0.1:5672/\n",
    )
    .unwrap();
    let ini = Ini::load(&[sample, url], &[]).unwrap();
    let s = Settings::from_ini(&ini).unwrap();
    assert_eq!(s.default.report_interval.as_secs(), 10);
}

#[test]
fn later_files_and_config_dir_override_earlier_ones() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("nova.conf.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("10-host.conf"), "[DEFAULT]\nhost = from-dir\n").unwrap();
    std::fs::write(
        dir.join("ignored.txt"),
        "[DEFAULT]\nhost = not-a-conf-file\n",
    )
    .unwrap();
    let second = d.path().join("second.conf");
    std::fs::write(
        &second,
        "[DEFAULT]\nhost = second\n[docker]\ncpu_mode = shares\n",
    )
    .unwrap();
    let ini = Ini::load(&[fixture("harness-compute.conf"), second.clone()], &[]).unwrap();
    let s = Settings::from_ini(&ini).unwrap();
    assert_eq!(s.default.host, "second");
    let ini = Ini::load(&[fixture("harness-compute.conf"), second], &[dir]).unwrap();
    assert_eq!(Settings::from_ini(&ini).unwrap().default.host, "from-dir");
}

const URL: &str = "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n";

fn run_with(conf: &str) -> (bool, String) {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("nova.conf");
    std::fs::write(&f, conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nova-docker-compute"))
        .arg("--config-file")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&f.display().to_string(), "FILE");
    (out.status.success(), err)
}

#[test]
fn a_bad_value_stops_start_up_naming_file_line_and_option() {
    let (ok, err) = run_with(&format!("{URL}host = h\n\n[docker]\ncpu_mode = turbo\n"));
    assert!(!ok);
    assert!(
        err.contains("FILE:6") && err.contains("cpu_mode") && err.contains("turbo"),
        "{err}"
    );

    let (ok, err) = run_with(&format!("{URL}report_interval = often\n"));
    assert!(!ok);
    assert!(
        err.contains("FILE:3") && err.contains("report_interval"),
        "{err}"
    );

    let (ok, err) = run_with("[DEFAULT]\nhost = h\nthis line is not an option\n");
    assert!(!ok);
    assert!(err.contains("FILE:3"), "{err}");

    let (ok, err) = run_with("[DEFAULT]\ntransport_url = http://not-rabbit/\n");
    assert!(!ok);
    assert!(err.contains("transport_url"), "{err}");
}

#[test]
fn transport_url_credentials_never_reach_the_error_output() {
    let (ok, err) = run_with(
        "[DEFAULT]\ntransport_url = rabbit://nova:s3cr3t-pass@127.0.0.1:5672/\n[docker]\npids_limit = -1\n",
    );
    assert!(!ok);
    assert!(!err.contains("s3cr3t-pass"), "{err}");
}

#[test]
fn check_config_prints_what_it_will_use_without_secrets_or_says_what_is_wrong() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("nova.conf");
    std::fs::write(
        &good,
        "[DEFAULT]\nhost = compute7\ntransport_url = rabbit://nova:s3cret-rabbit@10.0.0.1:5672/\n\
         [neutron]\nauth_type = password\nauth_url = http://keystone:5000/v3\nusername = nova\n\
         password = s3cret-neutron\nproject_name = service\n\
         [serial_console]\nenabled = True\nproxyclient_address = 10.0.0.7\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nova-docker-compute"))
        .arg("--check-config")
        .arg("--config-file")
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("usable"), "{text}");
    assert!(text.contains("host: compute7"), "{text}");
    assert!(text.contains("rabbit://nova:***@10.0.0.1:5672/"), "{text}");
    assert!(
        text.contains("neutron: Password auth at http://keystone:5000/v3 as nova"),
        "{text}"
    );
    assert!(
        text.contains("serial console: on, listening on 10.0.0.7"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "a secret was printed: {text}");

    let bad = d.path().join("bad.conf");
    std::fs::write(
        &bad,
        "[DEFAULT]\ntransport_url = rabbit://nova:x@10.0.0.1:5672/\n\
         [serial_console]\nport_range = 20000:10000\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nova-docker-compute"))
        .arg("--check-config")
        .arg("--config-file")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port_range"), "{err}");
}
