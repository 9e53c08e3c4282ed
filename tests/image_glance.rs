//! The image service against a real Glance (devstack/lib/test-setup-image.sh) and
//! the real Docker engine.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, WaitContainerOptions,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use nova_docker::config::Ini;
use nova_docker::context::RequestContext;
use nova_docker::exception::NovaException;
use nova_docker::image::{
    local_ref, ImageConfig, ImageEngine, ImageError, ImageService, SnapshotProps,
};
use nova_docker::virt::docker::DockerImages;
use serde_json::{json, Map, Value};

const NEEDS: &str = "needs glance and docker; run by devstack/run-tests.sh";

fn access_log() -> PathBuf {
    std::env::var("NOVA_DOCKER_TEST_GLANCE_ACCESS_LOG")
        .unwrap_or_else(|_| "/tmp/nova-docker-stack/glance/run/access.log".into())
        .into()
}

fn glance_datadir() -> PathBuf {
    std::env::var("NOVA_DOCKER_TEST_GLANCE_DATADIR")
        .unwrap_or_else(|_| "/tmp/nova-docker-stack/glance/images".into())
        .into()
}

fn service_with(extra: &str) -> ImageService {
    let mut ini = Ini::default();
    let text = format!("[glance]\napi_servers = {}\n{extra}", common::glance_url());
    ini.merge_text(&text, std::path::Path::new("test.conf"))
        .unwrap();
    let cfg = ImageConfig::from_ini(&ini).unwrap();
    ImageService::new(engine(), cfg).unwrap()
}

fn service() -> ImageService {
    service_with("")
}

fn docker() -> Docker {
    Docker::connect_with_local_defaults().unwrap()
}

fn engine() -> Arc<dyn ImageEngine> {
    Arc::new(DockerImages::new(docker()))
}

fn ctx() -> RequestContext {
    RequestContext {
        user_id: Some("admin".into()),
        project_id: Some("admin".into()),
        ..RequestContext::admin()
    }
}

/// `GET /v2/images/<id>/file` requests Glance logged.
fn data_gets(image_id: &str) -> usize {
    let needle = format!("\"GET /v2/images/{image_id}/file ");
    std::fs::read_to_string(access_log())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .count()
}

async fn run(docker: &Docker, image: &str, cmd: &[&str]) -> String {
    let name = format!("nd-image-test-{}", uuid::Uuid::new_v4());
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(image.to_string()),
                cmd: if cmd.is_empty() {
                    None
                } else {
                    Some(cmd.iter().map(|s| s.to_string()).collect())
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker
        .start_container(
            &name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    name
}

async fn logs(docker: &Docker, c: &str) -> String {
    let mut s = docker.logs(
        c,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        }),
    );
    let mut out = String::new();
    while let Some(Ok(l)) = s.next().await {
        out.push_str(&l.to_string());
    }
    out
}

/// Wait (bounded, not a timing assertion) until the container logged `needle`.
async fn wait_logs(docker: &Docker, c: &str, needle: &str) -> String {
    for _ in 0..600 {
        let l = logs(docker, c).await;
        if l.contains(needle) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "container {c} never logged {needle:?}: {}",
        logs(docker, c).await
    );
}

async fn rm_container(docker: &Docker, c: &str) {
    let _ = docker
        .remove_container(
            c,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
}

async fn rm_image(docker: &Docker, r: &str) {
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

/// The image id of busybox after `script` ran in it (the container is removed).
async fn commit_of(docker: &Docker, script: &str) -> String {
    let c = run(docker, &common::busybox_image(), &["/bin/sh", "-c", script]).await;
    let mut w = docker.wait_container(&c, None::<WaitContainerOptions>);
    while w.next().await.is_some() {}
    let id = docker
        .commit_container(
            CommitContainerOptions {
                container: Some(c.clone()),
                ..Default::default()
            },
            ContainerConfig::default(),
        )
        .await
        .unwrap()
        .id;
    rm_container(docker, &c).await;
    id
}

/// A new image unknown to Docker: busybox plus a file with a random line; saved
/// by ID (so the tarball carries no tags) and removed locally. Returns the
/// tarball and the Docker image id.
async fn unique_image_tarball(docker: &Docker) -> (Vec<u8>, String) {
    let mark = uuid::Uuid::new_v4().to_string();
    let id = commit_of(docker, &format!("echo {mark} > /uniq")).await;
    let mut data = Vec::new();
    let mut s = docker.export_image(&id);
    while let Some(b) = s.next().await {
        data.extend_from_slice(&b.unwrap());
    }
    rm_image(docker, &id).await;
    assert!(docker.inspect_image(&id).await.is_err());
    (data, id)
}

/// Every `glance/*` reference in Docker.
async fn cached_glance_refs(d: &Docker) -> Vec<String> {
    d.list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .filter(|t| t.starts_with("glance/"))
        .collect()
}

async fn busybox_tarball(docker: &Docker) -> Vec<u8> {
    let mut data = Vec::new();
    let mut s = docker.export_image(&common::busybox_image());
    while let Some(b) = s.next().await {
        data.extend_from_slice(&b.unwrap());
    }
    data
}

/// Create an image record and upload `data` through our client.
async fn upload_new(
    svc: &ImageService,
    name: &str,
    container_format: &str,
    data: Vec<u8>,
) -> String {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("container_format".into(), json!(container_format));
    fields.insert("disk_format".into(), json!("raw"));
    let rec = svc.glance().create(&ctx(), fields).await.unwrap();
    assert_eq!(rec.status, "queued");
    // several chunks, as a real upload sends
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    svc.glance()
        .upload(&ctx(), &rec.id, futures_util::stream::iter(chunks))
        .await
        .unwrap();
    let rec = svc.glance().get(&ctx(), &rec.id).await.unwrap();
    assert_eq!(rec.status, "active");
    rec.id
}

#[tokio::test]
#[ignore = "needs glance and docker; run by devstack/run-tests.sh"]
async fn ensure_image_loads_boots_and_caches() {
    let _ = NEEDS;
    let d = docker();
    let svc = service();
    let name = format!("some-unrelated-name-{}", uuid::Uuid::new_v4());
    let id = upload_new(&svc, &name, "docker", busybox_tarball(&d).await).await;

    let r = svc.ensure_image(&ctx(), &id).await.unwrap();
    assert_eq!(r, format!("glance/{id}:latest"));
    assert_eq!(r, local_ref(&id));
    assert_eq!(data_gets(&id), 1);
    let c = run(&d, &r, &[]).await;
    wait_logs(&d, &c, "started on").await;
    rm_container(&d, &c).await;

    // cached: no second download
    let r2 = svc.ensure_image(&ctx(), &id).await.unwrap();
    assert_eq!(r2, r);
    assert_eq!(data_gets(&id), 1);

    // the busybox tag itself is untouched; remove only our tag
    let _ = d
        .remove_image(&r, None::<RemoveImageOptions>, None)
        .await
        .unwrap();
    assert!(d.inspect_image(&common::busybox_image()).await.is_ok());
    svc.glance().delete(&ctx(), &id).await.unwrap();
}

#[tokio::test]
#[ignore = "needs glance and docker; run by devstack/run-tests.sh"]
async fn concurrent_ensure_image_downloads_once_even_untagged() {
    let d = docker();
    let svc = service();
    let (tar, docker_id) = unique_image_tarball(&d).await;
    let id = upload_new(&svc, "untagged-by-id", "docker", tar).await;
    assert_eq!(data_gets(&id), 0);

    let c = ctx();
    let calls = (0..10).map(|_| svc.ensure_image(&c, &id));
    let results = futures_util::future::join_all(calls).await;
    for r in &results {
        assert_eq!(r.as_deref().unwrap(), local_ref(&id));
    }
    assert_eq!(
        data_gets(&id),
        1,
        "ten concurrent calls must share one download"
    );
    let inspected = d.inspect_image(&local_ref(&id)).await.unwrap();
    assert_eq!(inspected.id.as_deref(), Some(docker_id.as_str()));

    // prune: in use -> kept; younger than the minimum age -> kept; older and
    // unused -> removed. Tests run in parallel: every other cached image is
    // declared in use, and one cached after that listing is younger than 2 s.
    let removed = svc.prune_unused(&HashSet::new()).await.unwrap();
    assert!(!removed.contains(&local_ref(&id)), "younger than a day");
    let pruner = service_with("[image_cache]\nremove_unused_original_minimum_age_seconds = 2\n");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let others: HashSet<String> = cached_glance_refs(&d)
        .await
        .into_iter()
        .filter(|r| *r != local_ref(&id))
        .collect();
    let mut in_use = others.clone();
    in_use.insert(id.clone()); // by Glance image id
    let removed = pruner.prune_unused(&in_use).await.unwrap();
    assert!(!removed.contains(&local_ref(&id)));
    assert!(d.inspect_image(&local_ref(&id)).await.is_ok());
    let in_use = others;
    let removed = pruner.prune_unused(&in_use).await.unwrap();
    assert_eq!(removed, vec![local_ref(&id)]);
    assert!(d.inspect_image(&local_ref(&id)).await.is_err());
    assert!(d.inspect_image(&docker_id).await.is_err());
    svc.glance().delete(&ctx(), &id).await.unwrap();
}

#[tokio::test]
#[ignore = "needs glance and docker; run by devstack/run-tests.sh"]
async fn corrupted_data_is_refused_and_leaves_nothing() {
    let d = docker();
    let svc = service();
    let (tar, docker_id) = unique_image_tarball(&d).await;
    let len = tar.len();
    let id = upload_new(&svc, "bit-rot", "docker", tar).await;
    // Bit rot at rest in Glance's file store: same size, one byte changed in the
    // middle; Glance serves it as it is, with the hash it recorded at upload.
    let path = glance_datadir().join(&id);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), len);
    bytes[len / 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let e = svc.ensure_image(&ctx(), &id).await.unwrap_err();
    assert!(
        matches!(e, ImageError::ChecksumMismatch { ref algo, .. } if algo == "sha512"),
        "{e}"
    );
    assert_eq!(data_gets(&id), 1);
    assert!(d.inspect_image(&local_ref(&id)).await.is_err());
    assert!(
        d.inspect_image(&docker_id).await.is_err(),
        "no half-loaded image may stay behind"
    );
    let n: NovaException = e.into();
    assert_eq!(n.class, "ImageUnacceptable");
    assert!(n.message.contains("hash"), "{}", n.message);
    svc.glance().delete(&ctx(), &id).await.unwrap();
}

#[tokio::test]
#[ignore = "needs glance and docker; run by devstack/run-tests.sh"]
async fn wrong_format_missing_image_and_size_cap_are_refused() {
    let svc = service();
    let id = upload_new(&svc, "a-qcow", "bare", b"not a tarball".to_vec()).await;
    let e = svc.ensure_image(&ctx(), &id).await.unwrap_err();
    let n: NovaException = e.clone().into();
    assert_eq!(n.class, "ImageUnacceptable");
    assert!(n.message.contains("'bare'"), "{}", n.message);
    assert_eq!(data_gets(&id), 0);
    svc.glance().delete(&ctx(), &id).await.unwrap();

    let missing = uuid::Uuid::new_v4().to_string();
    let e = svc.ensure_image(&ctx(), &missing).await.unwrap_err();
    assert_eq!(e, ImageError::NotFound { image_id: missing });
    let e = svc.ensure_image(&ctx(), "../../etc").await.unwrap_err();
    assert!(matches!(e, ImageError::NotFound { .. }));

    let small = service_with("max_image_size = 1000\n");
    let d = docker();
    let id = upload_new(&small, "too-big", "docker", busybox_tarball(&d).await).await;
    let e = small.ensure_image(&ctx(), &id).await.unwrap_err();
    assert!(matches!(e, ImageError::TooLarge { max: 1000, .. }), "{e}");
    small.glance().delete(&ctx(), &id).await.unwrap();
}

#[tokio::test]
#[ignore = "needs glance and docker; run by devstack/run-tests.sh"]
async fn glance_failover_and_glance_down() {
    // a closed port first, then the real Glance
    let svc = service_with("");
    let mut ini = Ini::default();
    ini.merge_text(
        &format!(
            "[glance]\napi_servers = 127.0.0.1:9, {}\n",
            common::glance_url()
        ),
        std::path::Path::new("t.conf"),
    )
    .unwrap();
    let fo = ImageService::new(engine(), ImageConfig::from_ini(&ini).unwrap()).unwrap();
    let id = upload_new(&svc, "failover", "bare", b"x".to_vec()).await;
    assert_eq!(fo.glance().get(&ctx(), &id).await.unwrap().id, id);

    let mut ini = Ini::default();
    ini.merge_text(
        "[glance]\napi_servers = 127.0.0.1:9\n",
        std::path::Path::new("t.conf"),
    )
    .unwrap();
    let down = ImageService::new(engine(), ImageConfig::from_ini(&ini).unwrap()).unwrap();
    let e = down.ensure_image(&ctx(), &id).await.unwrap_err();
    assert!(matches!(e, ImageError::Unavailable { .. }), "{e}");
    let n: NovaException = e.into();
    assert_eq!(n.class, "GlanceConnectionFailed");
    svc.glance().delete(&ctx(), &id).await.unwrap();
}

/// A queued record as Nova's API creates it for a snapshot or backup.
async fn queued(
    svc: &ImageService,
    instance: &str,
    image_type: &str,
    backup_type: Option<&str>,
) -> String {
    let mut f = Map::new();
    f.insert("name".into(), json!(format!("{image_type}-of-{instance}")));
    f.insert("instance_uuid".into(), json!(instance));
    f.insert("user_id".into(), json!("admin"));
    f.insert("image_type".into(), json!(image_type));
    if let Some(b) = backup_type {
        f.insert("backup_type".into(), json!(b));
    }
    svc.glance().create(&ctx(), f).await.unwrap().id
}

#[tokio::test]
#[ignore = "needs glance and docker; run by devstack/run-tests.sh"]
async fn snapshot_then_boot_from_it_and_backup_rotation() {
    let d = docker();
    let svc = service();
    let instance = uuid::Uuid::new_v4().to_string();
    let mark = uuid::Uuid::new_v4().to_string();
    let c = run(
        &d,
        &common::busybox_image(),
        &[
            "/bin/sh",
            "-c",
            &format!("echo {mark} > /root/mark; echo written; trap 'exit 0' TERM; while true; do sleep 1; done"),
        ],
    )
    .await;
    wait_logs(&d, &c, "written").await;

    let snap = queued(&svc, &instance, "snapshot", None).await;
    let props = SnapshotProps {
        instance_uuid: instance.clone(),
        user_id: Some("admin".into()),
        owner: Some("admin".into()),
        base_image_ref: Some("base-ref".into()),
        ..Default::default()
    };
    let rec = svc
        .snapshot(&ctx(), &c, &snap, props.clone())
        .await
        .unwrap();
    assert_eq!(rec.status, "active");
    assert_eq!(rec.container_format.as_deref(), Some("docker"));
    assert_eq!(rec.disk_format.as_deref(), Some("raw"));
    assert_eq!(rec.property("image_location"), Some("snapshot"));
    assert_eq!(rec.property("instance_uuid"), Some(instance.as_str()));
    assert_eq!(rec.property("base_image_ref"), Some("base-ref"));
    // the committed image is gone
    assert!(d
        .inspect_image(&format!("nova-snapshot/{snap}:latest"))
        .await
        .is_err());

    let r = svc.ensure_image(&ctx(), &snap).await.unwrap();
    let c2 = run(&d, &r, &["/bin/cat", "/root/mark"]).await;
    let out = wait_logs(&d, &c2, &mark).await;
    assert!(out.contains(&mark));
    rm_container(&d, &c2).await;
    rm_image(&d, &r).await;

    // backups: rotation 2 keeps exactly the two newest
    let mut made = Vec::new();
    for _ in 0..3 {
        let b = queued(&svc, &instance, "backup", Some("daily")).await;
        let (rec, _deleted) = svc
            .backup(&ctx(), &c, &b, props.clone(), "daily", 2)
            .await
            .unwrap();
        assert_eq!(rec.property("image_type"), Some("backup"));
        made.push(b);
    }
    let left = svc
        .glance()
        .list(
            &ctx(),
            &[
                ("instance_uuid", instance.as_str()),
                ("image_type", "backup"),
                ("backup_type", "daily"),
            ],
            None,
        )
        .await
        .unwrap();
    let left: HashSet<String> = left.into_iter().map(|r| r.id).collect();
    let want: HashSet<String> = made[1..].iter().cloned().collect();
    assert_eq!(left, want);
    // the snapshot is not a backup and is kept
    assert!(svc.glance().get(&ctx(), &snap).await.is_ok());

    // a failed snapshot deletes its image record
    let bad = queued(&svc, &instance, "snapshot", None).await;
    let e = svc
        .snapshot(&ctx(), "no-such-container-xyz", &bad, props.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::Snapshot { .. }), "{e}");
    assert!(matches!(
        svc.glance().get(&ctx(), &bad).await,
        Err(ImageError::NotFound { .. })
    ));

    rm_container(&d, &c).await;
    for id in left.iter().chain([&snap]) {
        let _ = svc.glance().delete(&ctx(), id).await;
    }
    let _: Value = json!(null);
}

/// A tenant's tarball that names other images' tags (the cached tag of another
/// Glance image, an operator's local tag) loads, but moves neither: Docker gets
/// the tarball without its tags and the image is tagged by its own Glance id.
#[tokio::test]
#[ignore = "needs glance and docker; run by devstack/run-tests.sh"]
async fn a_tarball_cannot_take_over_tags_on_the_host() {
    let d = docker();
    let svc = service();
    let busybox = d
        .inspect_image(&common::busybox_image())
        .await
        .unwrap()
        .id
        .unwrap();
    // the victim: a cached Glance image and an operator's tag
    let victim = upload_new(&svc, "victim", "docker", busybox_tarball(&d).await).await;
    let victim_ref = svc.ensure_image(&ctx(), &victim).await.unwrap();
    let operator_tag = format!("nd-operator-{}:latest", uuid::Uuid::new_v4().simple());
    let (repo, tag) = operator_tag.split_once(':').unwrap();
    let retag = |id: String, repo: String, tag: String| {
        let d = d.clone();
        async move {
            d.tag_image(
                &id,
                Some(bollard::query_parameters::TagImageOptions {
                    repo: Some(repo),
                    tag: Some(tag),
                }),
            )
            .await
            .unwrap()
        }
    };
    retag(busybox.clone(), repo.into(), tag.into()).await;

    // the attacker's image, saved under both names (tags put back right after)
    let evil = commit_of(&d, "echo evil > /evil").await;
    let victim_repo = format!("glance/{victim}");
    retag(evil.clone(), victim_repo.clone(), "latest".into()).await;
    retag(evil.clone(), repo.into(), tag.into()).await;
    let mut tarball = Vec::new();
    let mut s = d.export_images(&[victim_ref.as_str(), operator_tag.as_str()]);
    while let Some(b) = s.next().await {
        tarball.extend_from_slice(&b.unwrap());
    }
    retag(busybox.clone(), victim_repo, "latest".into()).await;
    retag(busybox.clone(), repo.into(), tag.into()).await;
    rm_image(&d, &evil).await;
    assert!(
        String::from_utf8_lossy(&tarball).contains(&operator_tag),
        "the tarball carries the tags"
    );

    let attacker = upload_new(&svc, "attacker", "docker", tarball).await;
    let r = svc.ensure_image(&ctx(), &attacker).await.unwrap();
    let loaded = d.inspect_image(&r).await.unwrap();
    assert_eq!(loaded.id.as_deref(), Some(evil.as_str()));
    assert_eq!(loaded.repo_tags, Some(vec![local_ref(&attacker)]));
    for name in [&victim_ref, &operator_tag] {
        assert_eq!(
            d.inspect_image(name).await.unwrap().id.as_deref(),
            Some(busybox.as_str()),
            "{name} was moved"
        );
    }

    rm_image(&d, &r).await;
    rm_image(&d, &operator_tag).await;
    let _ = d
        .remove_image(&victim_ref, None::<RemoveImageOptions>, None)
        .await;
    for id in [victim, attacker] {
        svc.glance().delete(&ctx(), &id).await.unwrap();
    }
}
