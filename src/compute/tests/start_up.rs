//! Start-up recovery and the power-state sync.

use super::harness::*;
use crate::objects::{TaskState as T, VmState as V};
use crate::virt::PowerState;

#[tokio::test]
async fn start_up_resolves_what_a_crash_cut_off() {
    let h = Harness::new();
    let building = h.instance(V::Building, Some(T::Spawning), Some(HOST));
    h.driver.insert(building.uuid(), PowerState::Running); // its container had started
                                                           // claimed by the build's first save, no task state yet
    let claimed = h.instance(V::Building, None, Some(HOST));
    // never claimed: its message is the broker's to deliver again
    let unclaimed = h.instance(V::Building, None, None);
    let rebuilding = h.running(V::Active, Some(T::RebuildSpawning));
    let stopping = h.running(V::Active, Some(T::PoweringOff));
    let starting = h.running(V::Stopped, Some(T::PoweringOn));
    let deleting = h.running(V::Active, Some(T::Deleting));
    let pausing = h.running(V::Active, Some(T::Pausing));
    // a snapshot we were uploading, and one the API asked for (its message
    // may still come)
    let uploading = h.running(V::Active, Some(T::ImageUploading));
    let pending = h.running(V::Active, Some(T::ImageSnapshotPending));
    let quiet = h.running(V::Active, None);
    h.driver.insert(quiet.uuid(), PowerState::Shutdown); // stopped behind Nova's back
    let elsewhere = h.instance(V::Active, Some(T::PoweringOff), Some("other-host"));

    h.manager.start_up().await;

    assert_eq!(h.saves(&building), [s(V::Error, None, None)]);
    assert!(h.faults(&building)[0].contains("restarted while the instance was being built"));
    assert!(
        h.driver.container(building.uuid()).is_none(),
        "the cut-off build's container is removed"
    );
    assert_eq!(h.saves(&claimed), [s(V::Error, None, None)]);
    assert!(h.faults(&claimed)[0].contains("being built"));
    assert!(h.saves(&unclaimed).is_empty(), "not ours yet");
    assert_eq!(h.saves(&rebuilding), [s(V::Error, None, None)]);
    assert!(h.faults(&rebuilding)[0].contains("being rebuilt"));
    // the cut-off builds give back their ports and their allocations, as a
    // failed build does; the rebuilt instance keeps its own
    let deleted = h.placement.deleted.lock().unwrap().clone();
    for b in [&building, &claimed] {
        assert!(deleted.iter().any(|d| d == b.uuid()), "{deleted:?}");
    }
    assert!(
        !deleted.iter().any(|d| d == rebuilding.uuid()),
        "{deleted:?}"
    );
    let calls = h.network_api.calls.lock().unwrap().clone();
    for b in [&building, &claimed] {
        assert!(
            calls.contains(&format!("deallocate {} keep ", b.uuid())),
            "{calls:?}"
        );
    }
    assert!(
        !calls.iter().any(|c| c.contains(rebuilding.uuid())),
        "{calls:?}"
    );
    // the host stays (as in Nova's init_host): a delete of it comes here
    assert_eq!(
        h.full_saves(&building).last().unwrap().host.as_deref(),
        Some(HOST)
    );
    assert_eq!(
        h.saves(&stopping),
        [s(V::Stopped, None, Some(&[Some(T::PoweringOff)]))]
    );
    assert_eq!(
        h.saves(&starting),
        [s(V::Active, None, Some(&[Some(T::PoweringOn)]))]
    );
    assert!(h.destroyed(&deleting));
    // a cut-off pause: the task state goes, the vm_state follows the container
    assert_eq!(
        h.saves(&pausing),
        [s(V::Active, None, Some(&[Some(T::Pausing)]))]
    );
    assert_eq!(h.saves(&quiet), [s(V::Stopped, None, Some(&[None]))]);
    assert!(h.saves(&elsewhere).is_empty(), "not our instance");
    // the cut-off upload: its half-made images deleted, the task state gone
    assert_eq!(
        *h.images.discarded.lock().unwrap(),
        [uploading.uuid().to_string()],
        "only the snapshot this host had begun"
    );
    assert_eq!(
        h.saves(&uploading),
        [s(V::Active, None, Some(&[Some(T::ImageUploading)]))]
    );
    assert_eq!(
        h.saves(&pending),
        [s(V::Active, None, Some(&[Some(T::ImageSnapshotPending)]))]
    );
}

#[tokio::test]
async fn the_sync_follows_the_container_and_leaves_busy_instances_alone() {
    let h = Harness::new();
    let gone = h.running(V::Active, None);
    h.driver.containers.lock().unwrap().remove(gone.uuid());
    let busy = h.running(V::Active, Some(T::Rebooting));
    h.driver.insert(busy.uuid(), PowerState::Shutdown);
    let fine = h.running(V::Active, None);
    h.manager.sync_all().await;
    assert_eq!(h.saves(&gone), [s(V::Stopped, None, Some(&[None]))]);
    assert_eq!(
        h.conductor.record(gone.uuid()).unwrap()["power_state"],
        PowerState::NoState.as_int()
    );
    assert!(h.saves(&busy).is_empty());
    assert!(
        h.saves(&fine).is_empty(),
        "nothing to change, nothing saved"
    );
}

#[tokio::test]
async fn after_a_reconnection_the_requests_sent_meanwhile_are_resolved() {
    use chrono::{Duration, Utc};
    let h = Harness::new();
    let lost = Utc::now() - Duration::seconds(30);
    let back = Utc::now() - Duration::seconds(5);
    let at = |inst: &crate::objects::Instance, t: chrono::DateTime<Utc>| {
        let mut i = inst.clone();
        i.object_mut().data.insert(
            "updated_at".into(),
            serde_json::json!(crate::objects::format_datetime(t)),
        );
        h.conductor.put(&i);
        i
    };
    // stopped and deleted while our queues were away: carried out
    let stop = at(
        &h.running(V::Active, Some(T::PoweringOff)),
        lost + Duration::seconds(10),
    );
    let delete = at(
        &h.running(V::Active, Some(T::Deleting)),
        lost + Duration::seconds(12),
    );
    // a lost reboot: the task state goes, with a fault that says why
    let reboot = at(
        &h.running(V::Active, Some(T::RebootingHard)),
        lost + Duration::seconds(2),
    );
    // set before the loss (not ours to guess) or after we were back (its
    // message reached our queue): left alone
    let before = at(
        &h.running(V::Active, Some(T::PoweringOff)),
        lost - Duration::seconds(60),
    );
    let after = at(
        &h.running(V::Active, Some(T::PoweringOff)),
        back + Duration::seconds(3),
    );
    // one being worked on here (its lock held): left alone
    let busy = at(
        &h.running(V::Active, Some(T::PoweringOff)),
        lost + Duration::seconds(5),
    );
    let lock = h.manager.instance_lock(busy.uuid());
    let _held = lock.lock().await;

    h.manager.recover_lost_requests(lost, back).await;

    assert_eq!(
        h.saves(&stop),
        [s(V::Stopped, None, Some(&[Some(T::PoweringOff)]))]
    );
    assert!(h.destroyed(&delete));
    assert_eq!(
        h.saves(&reboot),
        [s(V::Active, None, Some(&[Some(T::RebootingHard)]))]
    );
    assert!(h.faults(&reboot)[0].contains("did not reach the compute service"));
    for i in [&before, &after, &busy] {
        assert!(h.saves(i).is_empty(), "{:?}", h.saves(i));
    }
}

#[tokio::test]
async fn containers_of_deleted_instances_are_reaped_and_others_left() {
    let h = Harness::new();
    // deleted by nova-api alone while we were down: its record says deleted
    let deleted = h.running(V::Active, None);
    let mut d = deleted.clone();
    d.set_vm_state(V::Deleted);
    d.object_mut()
        .data
        .insert("deleted".into(), serde_json::json!(true));
    h.conductor.put(&d);
    // deleted and purged from the database since: no record at all
    let purged = h.running(V::Active, None);
    h.conductor.db.lock().unwrap().remove(purged.uuid());
    // live on another host with no operation (evacuated while we were down,
    // or a build rescheduled when our engine did not answer): a leftover
    let moved = h.running(V::Active, None);
    let mut m = moved.clone();
    m.set_host_and_node(Some("other-host"), None);
    h.conductor.put(&m);
    // on another host but in an operation, or resized there and not yet
    // confirmed (this one is the source to go back to): left alone
    let moving = h.running(V::Active, None);
    let mut m = moving.clone();
    m.set_host_and_node(Some("other-host"), None);
    m.set_task_state(Some(T::RebuildSpawning));
    h.conductor.put(&m);
    let resized = h.running(V::Active, None);
    let mut m = resized.clone();
    m.set_host_and_node(Some("other-host"), None);
    m.set_vm_state(V::Resized);
    h.conductor.put(&m);
    // one of ours; and a build of ours whose lock is held
    let live = h.running(V::Active, None);
    let building = h.running(V::Building, Some(T::Spawning));
    let mut b = building.clone();
    b.set_host_and_node(None, None);
    h.conductor.put(&b);
    h.conductor.db.lock().unwrap().remove(building.uuid());
    let lock = h.manager.instance_lock(building.uuid());
    let _held = lock.lock().await;

    h.manager.reap_deleted().await;

    assert!(
        h.driver.container(deleted.uuid()).is_none(),
        "deleted: reaped"
    );
    assert!(
        h.driver.container(purged.uuid()).is_none(),
        "purged: reaped"
    );
    assert!(
        h.driver.container(moved.uuid()).is_none(),
        "moved: the leftover removed"
    );
    for (what, i) in [
        ("moving", &moving),
        ("resized", &resized),
        ("live", &live),
        ("building", &building),
    ] {
        assert!(h.driver.container(i.uuid()).is_some(), "{what}: kept");
    }
    assert_eq!(h.driver_ops(&moved), ["destroy"], "removed, never started");
    assert!(h.saves(&deleted).is_empty() && h.saves(&live).is_empty());
}

#[tokio::test]
async fn running_deleted_instance_action_shutdown_and_timeout() {
    use crate::compute::reap::{RunningDeleted, RunningDeletedAction};
    let h = Harness::with_config(|c| {
        c.running_deleted = RunningDeleted {
            action: RunningDeletedAction::Shutdown,
            timeout: std::time::Duration::from_secs(600),
        }
    });
    let old = h.running(V::Active, None);
    let recent = h.running(V::Active, None);
    for (i, ago) in [(&old, 3600), (&recent, 60)] {
        let mut d = i.clone();
        d.set_vm_state(V::Deleted);
        let at = chrono::Utc::now() - chrono::Duration::seconds(ago);
        d.object_mut()
            .data
            .insert("deleted".into(), serde_json::json!(true));
        d.object_mut().data.insert(
            "deleted_at".into(),
            serde_json::json!(crate::objects::format_datetime(at)),
        );
        h.conductor.put(&d);
    }

    h.manager.reap_deleted().await;

    assert_eq!(
        h.driver.container(old.uuid()).map(|c| c.state),
        Some(PowerState::Shutdown),
        "deleted an hour ago: stopped, kept"
    );
    assert_eq!(
        h.driver.container(recent.uuid()).map(|c| c.state),
        Some(PowerState::Running),
        "deleted within the timeout: left alone"
    );
}
