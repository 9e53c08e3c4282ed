//! The operations after a build: the saves of each, on success and on failure.

use super::harness::*;
use crate::compute::request::{RebuildRequest, SnapshotKind, SnapshotRequest};
use crate::compute::{ComputeRequest, PowerOp};
use crate::exception::NovaException;
use crate::objects::{ImageMeta, TaskState as T, VmState as V};
use crate::virt::{DriverError, PowerState, RebootType};

fn failed(uuid: &str) -> DriverError {
    DriverError::Operation {
        op: "test",
        uuid: uuid.into(),
        reason: "the engine said no".into(),
    }
}

/// (op, vm_state before, container state before, driver op name)
const POWER: &[(PowerOp, V, &str)] = &[
    (PowerOp::Stop, V::Active, "power_off"),
    (PowerOp::Start, V::Stopped, "power_on"),
    (PowerOp::Pause, V::Active, "pause"),
    (PowerOp::Unpause, V::Paused, "unpause"),
    (PowerOp::Suspend, V::Active, "suspend"),
    (PowerOp::Resume, V::Suspended, "resume"),
    (PowerOp::SoftDelete, V::Active, "power_off"),
    (PowerOp::Restore, V::SoftDeleted, "power_on"),
];

#[tokio::test]
async fn each_power_operation_saves_its_final_state_expecting_the_apis() {
    for &(op, before, driver_op) in POWER {
        let h = Harness::new();
        let inst = h.running(before, Some(op.expected()));
        h.handle(ComputeRequest::Power(op, inst.clone()))
            .await
            .unwrap();
        assert_eq!(
            h.saves(&inst),
            [s(op.final_vm_state(), None, Some(&[Some(op.expected())]))],
            "{op:?}"
        );
        assert_eq!(h.driver_ops(&inst), [driver_op], "{op:?}");
        let rec = h.conductor.record(inst.uuid()).unwrap();
        let state = h.driver.container(inst.uuid()).unwrap().state;
        assert_eq!(rec["power_state"], state.as_int(), "{op:?}");
        assert_eq!(
            h.events(&inst),
            [
                format!("+compute_{}", op.method()),
                format!("-compute_{}", op.method())
            ]
        );
        // a start gets the container's new network namespace wired
        let attached = h.network_calls().iter().any(|c| c.starts_with("attach"));
        assert_eq!(
            attached,
            matches!(op, PowerOp::Start | PowerOp::Resume | PowerOp::Restore),
            "{op:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_power_operation_reverts_the_task_state_and_keeps_the_vm_state() {
    for &(op, before, driver_op) in POWER {
        let h = Harness::new();
        let inst = h.running(before, Some(op.expected()));
        h.driver.fail(driver_op, failed(inst.uuid()));
        let r = h.handle(ComputeRequest::Power(op, inst.clone())).await;
        assert!(r.is_err(), "{op:?}");
        assert_eq!(h.saves(&inst), [s(before, None, None)], "{op:?}");
        assert_eq!(h.faults(&inst).len(), 1, "{op:?}");
        assert!(h.faults(&inst)[0].contains("the engine said no"));
        assert_eq!(
            h.trace(&inst),
            [
                "event_start",
                "fault",
                "event_finish failed=true",
                "save None"
            ],
            "{op:?}"
        );
    }
}

#[tokio::test]
async fn a_stop_whose_save_is_refused_still_records_what_the_container_is() {
    let h = Harness::new();
    // the API sent stop, but the record says a reboot is under way: the final
    // save is refused (UnexpectedTaskStateError); the revert, unchecked as in
    // Nova's reverts_task_state, records the container's real state
    let inst = h.running(V::Active, Some(T::RebootingHard));
    let r = h
        .handle(ComputeRequest::Power(PowerOp::Stop, inst.clone()))
        .await;
    assert_eq!(r.unwrap_err().class, "UnexpectedTaskStateError");
    assert_eq!(h.saves(&inst), [s(V::Stopped, None, None)]);
    assert_eq!(
        h.conductor.record(inst.uuid()).unwrap()["power_state"],
        PowerState::Shutdown.as_int()
    );
    assert_eq!(h.faults(&inst).len(), 1);
}

#[tokio::test]
async fn reboot_states_soft_and_hard() {
    for (kind, pending, started, allowed) in [
        (
            RebootType::Soft,
            T::RebootPending,
            T::RebootStarted,
            T::SOFT_REBOOT,
        ),
        (
            RebootType::Hard,
            T::RebootPendingHard,
            T::RebootStartedHard,
            T::HARD_REBOOT,
        ),
    ] {
        let h = Harness::new();
        let inst = h.running(V::Active, Some(allowed[0]));
        h.handle(ComputeRequest::RebootInstance {
            instance: inst.clone(),
            reboot_type: kind,
        })
        .await
        .unwrap();
        let allowed: Vec<Option<T>> = allowed.iter().copied().map(Some).collect();
        assert_eq!(
            h.saves(&inst),
            [
                s(V::Active, Some(pending), Some(&allowed)),
                s(V::Active, Some(started), Some(&[Some(pending)])),
                s(V::Active, None, None),
            ]
        );
        assert!(h.network_calls().iter().any(|c| c.starts_with("attach")));
    }
}

#[tokio::test]
async fn a_failed_reboot_is_error_unless_the_container_still_runs() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::RebootingHard));
    h.driver.fail("reboot", failed(inst.uuid()));
    h.handle(ComputeRequest::RebootInstance {
        instance: inst.clone(),
        reboot_type: RebootType::Hard,
    })
    .await
    .unwrap();
    // the container still runs: ACTIVE, with a fault
    assert_eq!(h.last_save(&inst).vm_state.as_deref(), Some("active"));
    assert_eq!(h.faults(&inst).len(), 1);

    let h = Harness::new();
    let inst = h.running(V::Stopped, Some(T::RebootingHard));
    h.driver.fail("reboot", failed(inst.uuid()));
    let r = h
        .handle(ComputeRequest::RebootInstance {
            instance: inst.clone(),
            reboot_type: RebootType::Hard,
        })
        .await;
    assert!(r.is_err());
    let saves = h.saves(&inst);
    assert_eq!(saves.last(), Some(&s(V::Error, None, None)), "{saves:?}");
    assert_eq!(h.faults(&inst).len(), 1);
}

pub(super) fn rebuild(inst: &crate::objects::Instance) -> ComputeRequest {
    ComputeRequest::RebuildInstance(Box::new(RebuildRequest {
        instance: inst.clone(),
        image: ImageMeta {
            id: Some("img-2".into()),
            container_format: Some("docker".into()),
            ..Default::default()
        },
        recreate: false,
        migration: None,
        target_state: None,
    }))
}

fn rebuild_states(vm: V) -> Vec<S> {
    vec![
        s(vm, Some(T::Rebuilding), Some(&[Some(T::Rebuilding)])),
        s(
            vm,
            Some(T::RebuildBlockDeviceMapping),
            Some(&[Some(T::Rebuilding)]),
        ),
        s(
            vm,
            Some(T::RebuildSpawning),
            Some(&[Some(T::RebuildBlockDeviceMapping)]),
        ),
        s(V::Active, None, Some(&[Some(T::RebuildSpawning)])),
    ]
}

#[tokio::test]
async fn rebuild_states_and_the_new_image() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::Rebuilding));
    h.handle(rebuild(&inst)).await.unwrap();
    assert_eq!(h.saves(&inst), rebuild_states(V::Active));
    let c = h.driver.container(inst.uuid()).unwrap();
    assert_eq!(c.image, "glance/img-2");
    assert_eq!(c.state, PowerState::Running);
}

/// Tempest's test_rebuild_server_in_stop_state: a stopped server is stopped
/// again after its rebuild, as Nova's `_do_rebuild_instance` does.
#[tokio::test]
async fn a_stopped_server_is_stopped_again_after_its_rebuild() {
    let h = Harness::new();
    let inst = h.running(V::Stopped, Some(T::Rebuilding));
    h.handle(rebuild(&inst)).await.unwrap();
    let mut want = rebuild_states(V::Stopped);
    want.push(s(V::Active, Some(T::PoweringOff), None));
    want.push(s(V::Stopped, None, Some(&[Some(T::PoweringOff)])));
    assert_eq!(h.saves(&inst), want);
    assert_eq!(
        h.driver.container(inst.uuid()).unwrap().state,
        PowerState::Shutdown
    );
    assert_eq!(h.driver_ops(&inst), ["rebuild", "power_off"]);
}

#[tokio::test]
async fn a_failed_rebuild_is_error_and_keeps_the_old_container() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::Rebuilding));
    h.driver.fail("rebuild", failed(inst.uuid()));
    assert!(h.handle(rebuild(&inst)).await.is_err());
    let mut want = rebuild_states(V::Active)[..3].to_vec();
    want.push(s(V::Error, None, None));
    assert_eq!(h.saves(&inst), want);
    assert_eq!(h.faults(&inst).len(), 1);
    let c = h.driver.container(inst.uuid()).unwrap();
    assert_eq!(c.image, "glance/old", "the old container is still there");
    assert!(h.driver_ops(&inst).iter().all(|o| o != "destroy"));
}

#[tokio::test]
async fn delete_removes_container_networking_record_and_allocations() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::Deleting));
    h.handle(ComputeRequest::TerminateInstance(inst.clone()))
        .await
        .unwrap();
    assert_eq!(h.saves(&inst), [s(V::Deleted, None, None)]);
    assert!(h.destroyed(&inst));
    assert!(h.driver.container(inst.uuid()).is_none());
    assert!(h.network_calls().iter().any(|c| c.starts_with("unplug")));
    assert_eq!(
        *h.placement.deleted.lock().unwrap(),
        [inst.uuid().to_string()]
    );
    let t = h.trace(&inst);
    let i_destroy = t.iter().position(|c| c == "destroy").unwrap();
    assert!(t[..i_destroy].contains(&"save None".to_string()), "{t:?}");
}

#[tokio::test]
async fn a_failed_delete_is_error_and_can_be_asked_again() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::Deleting));
    h.driver.fail("destroy", failed(inst.uuid()));
    assert!(h
        .handle(ComputeRequest::TerminateInstance(inst.clone()))
        .await
        .is_err());
    assert_eq!(h.saves(&inst), [s(V::Error, None, None)]);
    assert!(!h.destroyed(&inst));
    assert!(h.placement.deleted.lock().unwrap().is_empty());
    // asked again, it goes
    h.handle(ComputeRequest::TerminateInstance(inst.clone()))
        .await
        .unwrap();
    assert!(h.destroyed(&inst));
}

fn snapshot(inst: &crate::objects::Instance, kind: SnapshotKind) -> ComputeRequest {
    ComputeRequest::Snapshot(SnapshotRequest {
        instance: inst.clone(),
        image_id: "snap-1".into(),
        kind,
    })
}

#[tokio::test]
async fn snapshot_and_backup_states() {
    let backup = SnapshotKind::Backup {
        backup_type: "daily".into(),
        rotation: 2,
    };
    for (kind, api_state, first) in [
        (
            SnapshotKind::Snapshot,
            T::ImageSnapshotPending,
            T::ImageSnapshot,
        ),
        (backup, T::ImageBackup, T::ImageBackup),
    ] {
        let h = Harness::new();
        let inst = h.running(V::Active, Some(api_state));
        h.handle(snapshot(&inst, kind.clone())).await.unwrap();
        assert_eq!(
            h.saves(&inst),
            [
                s(V::Active, Some(first), Some(&[Some(api_state)])),
                s(V::Active, Some(T::ImagePendingUpload), Some(&[Some(first)])),
                s(
                    V::Active,
                    Some(T::ImageUploading),
                    Some(&[Some(T::ImagePendingUpload)])
                ),
                s(V::Active, None, Some(&[Some(T::ImageUploading)])),
            ]
        );
        assert_eq!(
            *h.images.snapshots.lock().unwrap(),
            [("snap-1".into(), kind)]
        );
    }
}

#[tokio::test]
async fn a_failed_snapshot_reverts_the_task_state() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::ImageSnapshotPending));
    *h.images.fail.lock().unwrap() = Some(NovaException::internal("glance said no"));
    assert!(h
        .handle(snapshot(&inst, SnapshotKind::Snapshot))
        .await
        .is_err());
    let saves = h.saves(&inst);
    assert_eq!(saves.len(), 4, "{saves:?}");
    assert_eq!(saves[3], s(V::Active, None, None));
    assert!(h.faults(&inst)[0].contains("glance said no"));
}

#[tokio::test]
async fn unsupported_methods_fault_and_leave_no_task_state() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::Rescuing));
    let e = h
        .handle(ComputeRequest::Unsupported {
            method: "rescue_instance",
            instance: Some(inst.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.class, "NotSupported");
    assert_eq!(h.saves(&inst), [s(V::Active, None, None)]);
    assert!(h.faults(&inst)[0].contains("rescue_instance is not supported"));
}

#[tokio::test]
async fn a_live_migration_is_refused_in_its_pre_check_and_the_instance_left_to_the_conductor() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::Migrating));
    for destination in [true, false] {
        let e = h
            .handle(ComputeRequest::LiveMigrationCheck {
                instance: inst.clone(),
                destination,
            })
            .await
            .unwrap_err();
        // one of the failures the conductor's live migration task expects
        // (anything else puts the instance in ERROR there)
        assert_eq!(e.class, "MigrationPreCheckError");
        assert_eq!(e.module, "nova.exception");
        assert!(e.kwargs["reason"]
            .as_str()
            .unwrap()
            .contains("memory and processes"));
    }
    assert!(
        h.saves(&inst).is_empty(),
        "its task state is the conductor's"
    );
    // as Nova's compute manager: a fault and a failed action event for each
    let faults = h.faults(&inst);
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults[0].contains("memory and processes"), "{faults:?}");
    assert_eq!(
        h.events(&inst),
        [
            "+compute_check_can_live_migrate_destination",
            "!compute_check_can_live_migrate_destination",
            "+compute_check_can_live_migrate_source",
            "!compute_check_can_live_migrate_source"
        ]
    );
    assert!(h.driver_ops(&inst).is_empty());
}

#[tokio::test]
async fn diagnostics_need_a_running_instance() {
    let h = Harness::new();
    let inst = h.running(V::Active, None);
    let d = h
        .handle(ComputeRequest::GetInstanceDiagnostics(inst.clone()))
        .await
        .unwrap();
    assert_eq!(d["nova_object.name"], "Diagnostics");
    let inst = h.running(V::Stopped, None);
    let e = h
        .handle(ComputeRequest::GetInstanceDiagnostics(inst))
        .await
        .unwrap_err();
    assert_eq!(e.class, "InstanceInvalidState");
}

/// A container removed behind Nova's back: the power sync says so in a fault;
/// a hard reboot, or a start, makes it again from the instance's image (as
/// stored, with its system_metadata) and wires it.
#[tokio::test]
async fn a_vanished_container_is_made_again_by_a_hard_reboot_or_a_start() {
    let h = Harness::new();
    let inst = h.running(V::Active, None);
    h.driver.containers.lock().unwrap().remove(inst.uuid());
    h.manager.sync_instance(inst.uuid()).await;
    assert_eq!(h.last_save(&inst).vm_state.as_deref(), Some("stopped"));
    let faults = h.faults(&inst);
    assert!(
        faults.len() == 1
            && faults[0].contains("container is gone")
            && faults[0].contains("hard reboot"),
        "{faults:?}"
    );

    let mut rebooting = inst.clone();
    rebooting.set_task_state(Some(T::RebootingHard));
    h.conductor.put(&rebooting);
    h.handle(ComputeRequest::RebootInstance {
        instance: rebooting.clone(),
        reboot_type: RebootType::Hard,
    })
    .await
    .unwrap();
    let last = h.last_save(&inst);
    assert_eq!(
        (last.vm_state.as_deref(), last.task_state.as_deref()),
        (Some("active"), None)
    );
    let c = h.driver.container(inst.uuid()).expect("made again");
    assert_eq!(c.state, PowerState::Running);
    assert_eq!(c.image, format!("glance/{}", inst.image_ref().unwrap()));
    assert_eq!(
        h.driver_ops(&inst).last().map(String::as_str),
        Some("spawn")
    );
    let net = h.network_calls();
    assert!(net.iter().any(|c| c.starts_with("attach")), "{net:?}");
    assert_eq!(h.faults(&inst).len(), 1, "no new fault");

    // gone again, while stopped: a start makes it again too
    h.driver.containers.lock().unwrap().remove(inst.uuid());
    let mut starting = inst.clone();
    starting.set_vm_state(V::Stopped);
    starting.set_task_state(Some(T::PoweringOn));
    h.conductor.put(&starting);
    h.handle(ComputeRequest::Power(PowerOp::Start, starting))
        .await
        .unwrap();
    assert_eq!(h.last_save(&inst).vm_state.as_deref(), Some("active"));
    assert_eq!(
        h.driver.container(inst.uuid()).map(|c| c.state),
        Some(PowerState::Running)
    );
}

/// `docker rm -f` kills the container, then removes it: the sync of the kill
/// stops the instance with the exit fault, the sync of the removal says in a
/// second fault that the container is gone.
#[tokio::test]
async fn a_container_killed_then_removed_is_reported_gone_after_its_stop() {
    let h = Harness::new();
    let inst = h.running(V::Active, None);
    h.driver.insert(inst.uuid(), PowerState::Crashed);
    h.manager.sync_instance(inst.uuid()).await;
    assert_eq!(h.last_save(&inst).vm_state.as_deref(), Some("stopped"));
    assert_eq!(h.faults(&inst).len(), 1);
    let mut stopped = inst.clone();
    stopped.set_vm_state(V::Stopped);
    stopped.set_power_state(PowerState::Crashed);
    h.conductor.put(&stopped);
    h.driver.containers.lock().unwrap().remove(inst.uuid());
    h.manager.sync_instance(inst.uuid()).await;
    let faults = h.faults(&inst);
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults[1].contains("container is gone"), "{faults:?}");
    // once known gone, a later sync adds nothing
    let mut gone = stopped.clone();
    gone.set_power_state(PowerState::NoState);
    h.conductor.put(&gone);
    h.manager.sync_instance(inst.uuid()).await;
    assert_eq!(h.faults(&inst).len(), 2);
}

#[test]
fn the_image_of_an_instance_comes_from_its_system_metadata() {
    let sm: Vec<(String, String)> = [
        ("image_container_format", "docker"),
        ("image_disk_format", "raw"),
        ("image_min_ram", "0"),
        ("image_os_command_line", "sleep 100"),
        ("owner_user_name", "demo"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let m = ImageMeta::from_system_metadata(Some("img-9"), &sm);
    assert_eq!(m.id.as_deref(), Some("img-9"));
    assert_eq!(m.container_format.as_deref(), Some("docker"));
    assert_eq!(m.os_command_line(), Some("sleep 100"));
    assert_eq!(m.properties.len(), 1, "{:?}", m.properties);
}

/// cache_images answers per image as nova-compute does: `cached` when fetched
/// now, `existing` when present, `error` when the image service failed.
#[tokio::test]
async fn cache_images_reports_per_image() {
    let h = Harness::new();
    h.handle(ComputeRequest::CacheImages(vec!["img-a".into()]))
        .await
        .unwrap();
    *h.images.fail.lock().unwrap() = None;
    let args = serde_json::json!({"image_ids": ["img-a", "img-b"]});
    let r = ComputeRequest::decode("cache_images", args.as_object().unwrap()).unwrap();
    let v = h.handle(r).await.unwrap();
    assert_eq!(
        v,
        serde_json::json!({"img-a": "existing", "img-b": "cached"})
    );
    *h.images.fail.lock().unwrap() = Some(NovaException::image_not_found("img-c"));
    let v = h
        .handle(ComputeRequest::CacheImages(vec![
            "img-c".into(),
            "img-a".into(),
        ]))
        .await
        .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"img-c": "error", "img-a": "existing"})
    );
    let bad = serde_json::json!({"image_ids": "img-a"});
    let e = ComputeRequest::decode("cache_images", bad.as_object().unwrap()).unwrap_err();
    assert_eq!(e.class, "InvalidInput");
}
