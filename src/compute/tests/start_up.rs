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
