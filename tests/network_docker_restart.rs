//! Networking survives a restart of the Docker daemon itself (the old driver's most
//! reported bug: instances lost their network after the host's Docker restarted).
//! In a test binary of its own, since it restarts the engine every other test uses;
//! cargo runs test binaries one after another. Needs root; run by devstack/run-tests.sh.

mod common;
mod network_support;

use common::restart_docker_daemon;

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
