//! End to end: Glance images that name a registry image (property
//! `docker_image_ref`), booted by the real Nova of the lab from the lab's real
//! registry (Debian's docker-registry, TLS and basic auth: devstack/lib/registry.sh).
//! Each test pushes images of its own (unique content, a repository of its own),
//! so the registry's access log tells what our daemon fetched.

mod e2e_support;

use std::process::Command;
use std::time::Duration;

use e2e_support::daemon::Daemon;
use e2e_support::{docker, docker_status, inspect, Stack};
use serde_json::json;

const T: Duration = Duration::from_secs(120);

/// The command of the images the tests push: runs until SIGTERM.
const KEEP_RUNNING: &str =
    r#"CMD ["/bin/sh", "-c", "trap \"exit 0\" TERM; while true; do sleep 1; done"]"#;

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run through devstack/run-tests.sh"))
}

fn busybox() -> String {
    std::env::var("NOVA_DOCKER_TEST_IMAGE")
        .unwrap_or_else(|_| "nova-docker-test/busybox:latest".into())
}

/// The lab's registry, as the tests reach it.
struct Registry {
    host: String,
    log: String,
}

impl Registry {
    fn from_env() -> Self {
        Registry {
            host: env("NOVA_DOCKER_E2E_REGISTRY"),
            log: env("NOVA_DOCKER_E2E_REGISTRY_LOG"),
        }
    }

    /// `docker` with the lab's CLI config, which is logged in to the registry.
    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .env(
                "DOCKER_CONFIG",
                env("NOVA_DOCKER_E2E_REGISTRY_DOCKER_CONFIG"),
            )
            .args(args)
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Build an image whose top layer holds `marker` in /marker, push it as
    /// `repo:tag`, remove it from the engine, and return its digest reference.
    fn push_unique(&self, repo: &str, tag: &str, marker: &str) -> String {
        let name = format!("{}/{repo}:{tag}", self.host);
        let tmp = format!("e2e-reg-build-{}", uuid::Uuid::new_v4().simple());
        docker(&[
            "run",
            "--name",
            &tmp,
            &busybox(),
            "sh",
            "-c",
            &format!("echo {marker} > /marker"),
        ]);
        // the image's command is the base's (a commit would make it the `echo`)
        docker(&["commit", "--change", KEEP_RUNNING, &tmp, &name]);
        docker(&["rm", "-f", &tmp]);
        self.docker(&["push", &name]);
        let digest = docker(&["inspect", "--format", "{{index .RepoDigests 0}}", &name]);
        let id = docker(&["inspect", "--format", "{{.Id}}", &name]);
        // gone from the engine: a boot must fetch it
        docker(&["rmi", "-f", &name]);
        let _ = Command::new("docker")
            .args(["rmi", "-f", id.trim()])
            .output();
        let digest = digest.trim().to_string();
        assert!(digest.contains("@sha256:"), "{digest}");
        digest
    }

    /// Lines of the access log so far.
    fn mark(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// GETs of `/v2/<repo>/<kind>/` (kind `manifests` or `blobs`) answered 200
    /// since `mark`.
    fn gets_since(&self, mark: usize, repo: &str, kind: &str) -> usize {
        let needle = format!("\"GET /v2/{repo}/{kind}/");
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .skip(mark)
            .filter(|l| l.contains(&needle) && answered_ok(l))
            .count()
    }
}

/// The status of a Combined Log Format line (`"GET /path HTTP/1.1" 200 527 ...`)
/// is 200: a fetch, not the 401 of a challenge.
fn answered_ok(line: &str) -> bool {
    line.split("\" ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        == Some("200")
}

/// A public Glance image naming `reference`; its data is the reference's text.
async fn registry_image(stack: &Stack, name: &str, reference: &str) -> String {
    let (st, v) = stack
        .call(
            reqwest::Method::POST,
            &format!("{}/v2/images", stack.glance),
            Some(
                json!({"name": name, "container_format": "docker", "disk_format": "raw",
                        "visibility": "public", "docker_image_ref": reference}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    stack.upload(&id, reference.as_bytes().to_vec()).await;
    id
}

async fn delete_image(stack: &Stack, id: &str) {
    let _ = stack
        .call(
            reqwest::Method::DELETE,
            &format!("{}/v2/images/{id}", stack.glance),
            None,
        )
        .await;
}

fn marker_of(server: &str) -> String {
    docker(&["exec", &format!("nova-{server}"), "cat", "/marker"])
        .trim()
        .to_string()
}

fn short() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

#[tokio::test]
#[ignore = "needs the lab's control plane and registry; run by devstack/run-tests.sh"]
async fn a_registry_image_boots_and_a_second_boot_pulls_nothing() {
    let stack = Stack::from_env();
    let reg = Registry::from_env();
    stack.delete_servers_named("e2e-reg-boot").await;
    let host = "nd-e2e-registry";
    let _d = Daemon::start(&stack, host, "").await;
    let flavor = stack.flavor("e2e-reg", 64, 1).await;

    // the lab's own registry image, as stack.sh registered it
    let v = stack
        .get(&format!("{}/v2/images?name=busybox-registry", stack.glance))
        .await;
    assert_eq!(v["images"][0]["status"], "active", "{v}");
    let lab_ref = v["images"][0]["docker_image_ref"]
        .as_str()
        .unwrap_or_default();
    assert!(
        lab_ref.starts_with(&format!("{}/lab/busybox@sha256:", reg.host)),
        "{v}"
    );

    let lab_image = v["images"][0]["id"].as_str().unwrap().to_string();
    // booted with the CLI, as a user does
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}/openrc-admin && openstack --os-compute-api-version 2.95 server create \
             --image busybox-registry --flavor {flavor} --nic none \
             --availability-zone nova:{host} --wait -f value -c id e2e-reg-boot-cli",
            stack.state.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openstack server create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let s = stack.wait_status(&cli, "ACTIVE", T).await;
    assert_eq!(s["image"]["id"], lab_image.as_str());
    let c = inspect(&format!("nova-{cli}")).expect("the CLI's server has a container");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["Config"]["Image"], format!("glance/{lab_image}:latest"));
    stack.delete_server(&cli).await;

    let repo = format!("e2e/boot-{}", short());
    let marker = uuid::Uuid::new_v4().to_string();
    let reference = reg.push_unique(&repo, "v1", &marker);
    let image = registry_image(&stack, "e2e-reg-boot", &reference).await;

    let m = reg.mark();
    let a = stack
        .create_server("e2e-reg-boot-1", &image, &flavor, host, None)
        .await;
    stack.wait_status(&a, "ACTIVE", T).await;
    assert_eq!(marker_of(&a), marker, "the container runs the pulled image");
    assert_eq!(reg.gets_since(m, &repo, "manifests"), 1);
    // the config and the two layers (busybox's base, the marker's)
    assert_eq!(reg.gets_since(m, &repo, "blobs"), 3);
    let c = inspect(&format!("nova-{a}")).unwrap();
    assert_eq!(c["Config"]["Image"], format!("glance/{image}:latest"));

    let m = reg.mark();
    let b = stack
        .create_server("e2e-reg-boot-2", &image, &flavor, host, None)
        .await;
    stack.wait_status(&b, "ACTIVE", T).await;
    assert_eq!(marker_of(&b), marker);
    assert_eq!(
        reg.gets_since(m, &repo, "manifests") + reg.gets_since(m, &repo, "blobs"),
        0,
        "a second boot on the host pulls nothing"
    );

    // a snapshot of it is a tarball image of its own, not the registry image again
    let (st, v) = stack
        .action(&a, json!({"createImage": {"name": "e2e-reg-snap"}}))
        .await;
    assert_eq!(st, 202, "{v}");
    let snap = v["image_id"].as_str().unwrap().to_string();
    let t = std::time::Instant::now();
    let rec = loop {
        let rec = stack
            .get(&format!("{}/v2/images/{snap}", stack.glance))
            .await;
        if rec["status"] == "active" {
            break rec;
        }
        assert!(t.elapsed() < T, "snapshot not active: {rec}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(rec.get("docker_image_ref").is_none(), "{rec}");
    assert!(rec["size"].as_u64().unwrap_or(0) > 100_000, "{rec}");

    for s in [&a, &b] {
        stack.delete_server(s).await;
    }
    for s in [&a, &b] {
        stack.wait_gone(s, T).await;
    }
    delete_image(&stack, &snap).await;
    delete_image(&stack, &image).await;
}

#[tokio::test]
#[ignore = "needs the lab's control plane and registry; run by devstack/run-tests.sh"]
async fn ten_boots_at_once_pull_once_and_a_moved_tag_changes_nothing() {
    let stack = Stack::from_env();
    let reg = Registry::from_env();
    stack.delete_servers_named("e2e-reg-ten").await;
    let host = "nd-e2e-registry-ten";
    let _d = Daemon::start(&stack, host, "").await;
    let flavor = stack.flavor("e2e-reg", 64, 1).await;

    // the Glance image names the digest of the first push of :moving
    let repo = format!("e2e/ten-{}", short());
    let first = uuid::Uuid::new_v4().to_string();
    let reference = reg.push_unique(&repo, "moving", &first);
    let image = registry_image(&stack, "e2e-reg-ten", &reference).await;
    // then the tag moves to other content
    let second = uuid::Uuid::new_v4().to_string();
    let moved = reg.push_unique(&repo, "moving", &second);
    assert_ne!(moved, reference);

    let m = reg.mark();
    const N: usize = 10;
    let (st, v) = stack
        .call(
            reqwest::Method::POST,
            &format!("{}/servers", stack.nova),
            Some(
                json!({"server": {"name": "e2e-reg-ten", "imageRef": image, "flavorRef": flavor,
                "networks": "none", "availability_zone": format!("nova:{host}"),
                "min_count": N, "max_count": N, "return_reservation_id": true}}),
            ),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let rid = v["reservation_id"].as_str().unwrap().to_string();
    let list = stack
        .get(&format!("{}/servers?reservation_id={rid}", stack.nova))
        .await;
    let ids: Vec<String> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), N, "{list}");
    for id in &ids {
        stack
            .wait_status(id, "ACTIVE", Duration::from_secs(300))
            .await;
        assert_eq!(marker_of(id), first, "the digest boots, not the moved tag");
    }
    assert_eq!(
        reg.gets_since(m, &repo, "manifests"),
        1,
        "one pull for ten boots"
    );
    assert_eq!(reg.gets_since(m, &repo, "blobs"), 3);

    for id in &ids {
        stack.delete_server(id).await;
    }
    for id in &ids {
        stack.wait_gone(id, T).await;
    }
    delete_image(&stack, &image).await;
}

/// Snapshot `server` into a new image and wait until Glance has it `active`
/// (`Err` with the image id when it is deleted instead, as a failed snapshot is).
async fn snapshot(stack: &Stack, server: &str, name: &str) -> Result<serde_json::Value, String> {
    let (st, v) = stack
        .action(server, json!({"createImage": {"name": name}}))
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["image_id"].as_str().unwrap().to_string();
    let t = std::time::Instant::now();
    loop {
        let (st, rec) = stack
            .call(
                reqwest::Method::GET,
                &format!("{}/v2/images/{id}", stack.glance),
                None,
            )
            .await;
        if st == 404 {
            return Err(id);
        }
        if rec["status"] == "active" && rec.get("docker_image_ref").is_some() {
            return Ok(rec);
        }
        assert!(
            t.elapsed() < T,
            "snapshot {id} neither active nor gone: {rec}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
#[ignore = "needs the lab's control plane and registry; run by devstack/run-tests.sh"]
async fn a_snapshot_is_pushed_to_the_registry_and_boots_from_it_anywhere() {
    let stack = Stack::from_env();
    let reg = Registry::from_env();
    stack.delete_servers_named("e2e-reg-push").await;
    let host = "nd-e2e-registry-push";
    let repo = format!("e2e/snapshots-{}", short());
    let conf = format!(
        "\n[docker_registry]\nsnapshot_repository = {}/{repo}\n",
        reg.host
    );
    let _d = Daemon::start(&stack, host, &conf).await;
    let flavor = stack.flavor("e2e-reg", 64, 1).await;
    let base = stack.docker_image("nd-e2e-busybox", &busybox()).await;

    let a = stack
        .create_server("e2e-reg-push-1", &base, &flavor, host, None)
        .await;
    stack.wait_status(&a, "ACTIVE", T).await;
    let marker = uuid::Uuid::new_v4().to_string();
    docker(&[
        "exec",
        &format!("nova-{a}"),
        "sh",
        "-c",
        &format!("echo {marker} > /marker"),
    ]);
    let m = reg.mark();
    let rec = snapshot(&stack, &a, "e2e-reg-push-snap")
        .await
        .expect("the snapshot is active");
    let snap = rec["id"].as_str().unwrap().to_string();
    // recorded by digest, in the configured repository, tagged with the image id
    let pushed = rec["docker_image_ref"].as_str().unwrap().to_string();
    assert!(
        pushed.starts_with(&format!("{}/{repo}@sha256:", reg.host)),
        "{rec}"
    );
    let log = std::fs::read_to_string(&reg.log).unwrap();
    let put = format!("\"PUT /v2/{repo}/manifests/{snap} ");
    assert!(
        log.lines()
            .skip(m)
            .any(|l| l.contains(&put) && l.contains("\" 201 ")),
        "no manifest PUT {put} in the registry's log"
    );
    // the Glance image is a tarball of its own as well
    assert!(rec["size"].as_u64().unwrap_or(0) > 100_000, "{rec}");
    stack.delete_server(&a).await;
    stack.wait_gone(&a, T).await;

    // plain Docker pulls it and finds the file
    reg.docker(&["pull", &pushed]);
    let out = docker(&["run", "--rm", &pushed, "cat", "/marker"]);
    assert_eq!(out.trim(), marker);
    docker(&["rmi", "-f", &pushed]);

    // and Nova boots it from the registry
    let m = reg.mark();
    let b = stack
        .create_server("e2e-reg-push-2", &snap, &flavor, host, None)
        .await;
    stack.wait_status(&b, "ACTIVE", T).await;
    assert_eq!(marker_of(&b), marker);
    assert_eq!(
        reg.gets_since(m, &repo, "manifests"),
        1,
        "booted from the registry"
    );
    stack.delete_server(&b).await;

    // a host whose snapshot registry is down: the snapshot fails, its image is
    // deleted, the server stays ACTIVE and nothing of the snapshot is left
    let bad_host = "nd-e2e-registry-push-down";
    let conf = "\n[docker_registry]\nsnapshot_repository = 127.0.0.1:9/nowhere\ninsecure_registries = 127.0.0.1:9\n";
    let _bad = Daemon::start(&stack, bad_host, conf).await;
    let c = stack
        .create_server("e2e-reg-push-3", &base, &flavor, bad_host, None)
        .await;
    stack.wait_status(&c, "ACTIVE", T).await;
    let gone = snapshot(&stack, &c, "e2e-reg-push-fail").await;
    let failed = gone.expect_err("a snapshot whose push failed is deleted");
    let s = stack.wait_status(&c, "ACTIVE", T).await;
    assert!(s["OS-EXT-STS:task_state"].is_null(), "{s}");
    assert_eq!(docker_status(&c).as_deref(), Some("running"));
    let images = docker(&["images", "--format", "{{.Repository}}"]);
    assert!(
        !images.contains(&format!("nova-snapshot/{failed}")),
        "the commit is removed: {images}"
    );
    stack.delete_server(&c).await;
    stack.wait_gone(&b, T).await;
    stack.wait_gone(&c, T).await;
    delete_image(&stack, &snap).await;
}

/// Boot `reference` on `host`; the server must end in ERROR with a fault whose
/// message holds `want`, and leave no container and no image behind.
async fn boot_fails(stack: &Stack, host: &str, name: &str, reference: &str, want: &str) -> String {
    let flavor = stack.flavor("e2e-reg", 64, 1).await;
    let image = registry_image(stack, name, reference).await;
    let id = stack.create_server(name, &image, &flavor, host, None).await;
    let s = stack.wait_status(&id, "ERROR", T).await;
    let fault = s["fault"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        fault.contains(want),
        "{reference}: fault {fault:?} should say {want:?}"
    );
    assert!(
        inspect(&format!("nova-{id}")).is_none(),
        "{reference}: a container is left"
    );
    let out = Command::new("docker")
        .args(["image", "inspect", &format!("glance/{image}:latest")])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{reference}: an image is left in Docker"
    );
    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    delete_image(stack, &image).await;
    fault
}

#[tokio::test]
#[ignore = "needs the lab's control plane and registry; run by devstack/run-tests.sh"]
async fn bad_registry_references_end_in_error_with_the_cause_and_leave_nothing() {
    let stack = Stack::from_env();
    let reg = Registry::from_env();
    stack.delete_servers_named("e2e-reg-bad").await;
    let host = "nd-e2e-registry-bad";
    let d = Daemon::start(&stack, host, "").await;
    let h = &reg.host;
    let zero = "0".repeat(64);
    for (reference, want) in [
        ("Not A Reference!".to_string(), "is not an image reference"),
        (
            "no-such-registry.invalid:5000/e2e/app:1".to_string(),
            "registry no-such-registry.invalid:5000 cannot be reached",
        ),
        (
            // nothing listens there: a registry that is down
            "127.0.0.1:9/e2e/app:1".to_string(),
            "registry 127.0.0.1:9 cannot be reached",
        ),
        (
            format!("{h}/lab/busybox:no-such-tag"),
            "is not in its registry",
        ),
        (
            format!("{h}/lab/busybox@sha256:{zero}"),
            "is not in its registry",
        ),
    ] {
        boot_fails(&stack, host, "e2e-reg-bad", &reference, want).await;
    }

    // a blob whose bytes the registry's storage corrupted: the digest check
    // refuses it and Docker keeps nothing
    let repo = format!("e2e/bad-{}", short());
    let marker = uuid::Uuid::new_v4().to_string();
    let reference = reg.push_unique(&repo, "v1", &marker);
    let layer = top_layer_digest(&reference);
    corrupt_blob(&layer);
    let fault = boot_fails(
        &stack,
        host,
        "e2e-reg-bad",
        &reference,
        "does not match its digest",
    )
    .await;
    assert!(fault.contains(&layer), "{fault}");
    drop(d);

    // wrong credentials: refused, and the password is in no fault and no log line
    let wrong = "wrong-pass-e2e-7f3a";
    let auth = stack.state.join("etc/registry-wrong-auth.json");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{wrong}", env("NOVA_DOCKER_E2E_REGISTRY_USER")));
    std::fs::write(
        &auth,
        json!({"auths": {h.as_str(): {"auth": b64}}}).to_string(),
    )
    .unwrap();
    let host = "nd-e2e-registry-creds";
    let _d = Daemon::start(
        &stack,
        host,
        &format!("\n[docker_registry]\nauth_file = {}\n", auth.display()),
    )
    .await;
    let fault = boot_fails(
        &stack,
        host,
        "e2e-reg-bad-creds",
        &format!("{h}/lab/busybox:latest"),
        &format!("registry {h} refused the credentials"),
    )
    .await;
    assert!(!fault.contains(wrong));
    let log = std::fs::read_to_string(stack.daemon_log(host)).unwrap_or_default();
    assert!(
        !log.is_empty(),
        "the daemon's log is where the test expects it"
    );
    assert!(
        !log.contains(wrong) && !log.contains(&b64),
        "a credential is in the log"
    );
}

/// The digest of the last layer of the image `reference` (from the registry).
fn top_layer_digest(reference: &str) -> String {
    let (name, digest) = reference.split_once('@').unwrap();
    let (host, repo) = name.split_once('/').unwrap();
    let out = Command::new("curl")
        .args([
            "-sf",
            "--cacert",
            &env("NOVA_DOCKER_E2E_REGISTRY_CA"),
            "-u",
            &format!(
                "{}:{}",
                env("NOVA_DOCKER_E2E_REGISTRY_USER"),
                env("NOVA_DOCKER_E2E_REGISTRY_PASSWORD")
            ),
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            &format!("https://{host}/v2/{repo}/manifests/{digest}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "manifest of {reference}");
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Flip bytes of a blob in the registry's storage (same size).
fn corrupt_blob(digest: &str) {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let path = std::path::Path::new(&env("NOVA_DOCKER_E2E_REGISTRY_STORAGE")).join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(&path, b).unwrap();
}

#[tokio::test]
#[ignore = "needs the lab's control plane and registry; run by devstack/run-tests.sh"]
async fn an_aggregate_image_precache_fetches_so_that_a_boot_does_not() {
    let stack = Stack::from_env();
    let reg = Registry::from_env();
    stack.delete_servers_named("e2e-reg-pre").await;
    let host = "nd-e2e-registry-pre";
    let _d = Daemon::start(&stack, host, "").await;
    let flavor = stack.flavor("e2e-reg", 64, 1).await;

    // an aggregate holding the host (made again if an earlier run left it)
    let name = "e2e-reg-precache";
    let agg = stack.aggregate(name, None, &[host]).await;

    let repo = format!("e2e/pre-{}", short());
    let marker = uuid::Uuid::new_v4().to_string();
    let reference = reg.push_unique(&repo, "v1", &marker);
    let image = registry_image(&stack, "e2e-reg-pre", &reference).await;
    let local = format!("glance/{image}:latest");

    let m = reg.mark();
    let (st, v) = stack
        .call(
            reqwest::Method::POST,
            &format!("{}/os-aggregates/{agg}/images", stack.nova),
            Some(json!({"cache": [{"id": image}]})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let t = std::time::Instant::now();
    while !Command::new("docker")
        .args(["image", "inspect", &local])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(t.elapsed() < T, "the pre-cache did not fetch {local}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(reg.gets_since(m, &repo, "manifests"), 1);

    let m = reg.mark();
    let id = stack
        .create_server("e2e-reg-pre-1", &image, &flavor, host, None)
        .await;
    stack.wait_status(&id, "ACTIVE", T).await;
    assert_eq!(marker_of(&id), marker);
    assert_eq!(
        reg.gets_since(m, &repo, "manifests") + reg.gets_since(m, &repo, "blobs"),
        0,
        "a boot after the pre-cache fetches nothing"
    );

    stack.delete_server(&id).await;
    stack.wait_gone(&id, T).await;
    stack.delete_aggregate(name).await;
    delete_image(&stack, &image).await;
}

/// `nova-docker-compute mirror-registry` with the lab's compute config.
fn mirror(stack: &Stack, host: &str, registry: &str, repo: &str) -> serde_json::Value {
    let conf = stack.compute_conf(host, "");
    let out = Command::new(env!("CARGO_BIN_EXE_nova-docker-compute"))
        .arg("--config-file")
        .arg(&conf)
        .args(["mirror-registry", registry, "--repository", repo])
        .output()
        .expect("mirror-registry");
    assert!(
        out.status.success(),
        "mirror-registry: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[tokio::test]
#[ignore = "needs the lab's control plane and registry; run by devstack/run-tests.sh"]
async fn the_mirror_imports_a_catalogue_once_and_then_only_what_is_new() {
    let stack = Stack::from_env();
    let reg = Registry::from_env();
    let repo = format!("e2e/mirror-{}", short());
    let v1 = reg.push_unique(&repo, "v1", "one");
    let v2 = reg.push_unique(&repo, "v2", "two");

    let r = mirror(&stack, "nd-e2e-mirror", &reg.host, &repo);
    assert_eq!(
        r,
        json!({"created": [format!("{repo}:v1"), format!("{repo}:v2")], "updated": [], "unchanged": 0})
    );
    for (tag, pinned) in [("v1", &v1), ("v2", &v2)] {
        let v = stack
            .get(&format!("{}/v2/images?name=eq:{repo}:{tag}", stack.glance))
            .await;
        let img = &v["images"][0];
        assert_eq!(img["status"], "active", "{v}");
        assert_eq!(img["container_format"], "docker");
        assert_eq!(img["visibility"], "public");
        assert_eq!(img["docker_image_ref"], pinned.as_str(), "by digest");
    }

    let r = mirror(&stack, "nd-e2e-mirror", &reg.host, &repo);
    assert_eq!(
        r,
        json!({"created": [], "updated": [], "unchanged": 2}),
        "a re-run changes nothing"
    );

    reg.push_unique(&repo, "v3", "three");
    let r = mirror(&stack, "nd-e2e-mirror", &reg.host, &repo);
    assert_eq!(
        r,
        json!({"created": [format!("{repo}:v3")], "updated": [], "unchanged": 2}),
        "a new tag is a new image"
    );

    let v = stack
        .get(&format!(
            "{}/v2/images?docker_registry_source={}/{repo}:v1",
            stack.glance, reg.host
        ))
        .await;
    let one = v["images"][0]["id"].as_str().unwrap().to_string();
    let v = stack
        .get(&format!("{}/v2/images?name=eq:{repo}:v2", stack.glance))
        .await;
    let two = v["images"][0]["id"].as_str().unwrap().to_string();
    let v = stack
        .get(&format!("{}/v2/images?name=eq:{repo}:v3", stack.glance))
        .await;
    let three = v["images"][0]["id"].as_str().unwrap().to_string();
    for id in [one, two, three] {
        delete_image(&stack, &id).await;
    }
}
