//! Shelve, shelve offload, unshelve: their states, what each leaves on the
//! host, in Neutron and in placement, and a failed unshelve's undoing.

use super::fakes::fake_vif;
use super::harness::*;
use crate::compute::request::{ShelveRequest, UnshelveRequest};
use crate::compute::shelve::ShelvedOffload;
use crate::compute::{ComputeRequest, PowerOp, SnapshotKind};
use crate::exception::NovaException;
use crate::objects::{ImageMeta, Instance, TaskState as T, VmState as V};

fn shelve(inst: &Instance) -> ComputeRequest {
    ComputeRequest::Shelve(ShelveRequest {
        instance: inst.clone(),
        image_id: "shelved-1".into(),
        clean_shutdown: true,
    })
}

fn sysmeta(h: &Harness, inst: &Instance, key: &str) -> Option<String> {
    let rec = h.conductor.record(inst.uuid()).unwrap();
    rec.get("system_metadata")
        .and_then(|m| m.get(key))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// With `shelved_offload_time = 0` (Nova's default), a shelve commits the
/// container into the API's image and offloads it in the same action: the
/// container and VIFs gone, the ports unbound (not deleted), the allocations
/// given back, host and node cleared.
#[tokio::test]
async fn a_shelve_commits_the_container_then_offloads_it() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::Shelving));
    h.network_api
        .ports
        .lock()
        .unwrap()
        .insert(inst.uuid().into(), vec![fake_vif("port-9", false, true)]);
    h.handle(shelve(&inst)).await.unwrap();
    assert_eq!(
        h.saves(&inst),
        [
            s(
                V::Active,
                Some(T::ShelvingImagePendingUpload),
                Some(&[Some(T::Shelving)])
            ),
            s(
                V::Active,
                Some(T::ShelvingImageUploading),
                Some(&[Some(T::ShelvingImagePendingUpload)])
            ),
            s(
                V::Shelved,
                Some(T::ShelvingOffloading),
                Some(&[Some(T::Shelving), Some(T::ShelvingImageUploading)])
            ),
            s(
                V::ShelvedOffloaded,
                None,
                Some(&[Some(T::Shelving), Some(T::ShelvingOffloading)])
            ),
            s(V::ShelvedOffloaded, None, None),
        ]
    );
    assert_eq!(
        *h.images.snapshots.lock().unwrap(),
        [("shelved-1".to_string(), SnapshotKind::Snapshot)]
    );
    // stopped before the commit, removed after
    assert_eq!(h.driver_ops(&inst), ["power_off", "power_off", "destroy"]);
    assert!(h.driver.container(inst.uuid()).is_none());
    assert!(h
        .network_calls()
        .iter()
        .any(|c| c.starts_with(&format!("unplug {}", inst.uuid()))));
    assert!(h
        .neutron_calls()
        .contains(&format!("unbind {}", inst.uuid())));
    assert!(
        !h.neutron_calls()
            .iter()
            .any(|c| c.starts_with("deallocate")),
        "the ports are kept"
    );
    assert_eq!(*h.placement.deleted.lock().unwrap(), [inst.uuid()]);
    assert_eq!(h.last_save(&inst).host, None);
    assert_eq!(
        sysmeta(&h, &inst, "shelved_image_id").as_deref(),
        Some("shelved-1")
    );
    assert_eq!(sysmeta(&h, &inst, "shelved_host").as_deref(), Some(HOST));
    assert!(sysmeta(&h, &inst, "shelved_at").is_some());
    assert_eq!(
        h.events(&inst),
        ["+compute_shelve_instance", "-compute_shelve_instance"]
    );
    let sent: Vec<String> = h
        .notifier
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.event_type.clone())
        .collect();
    assert_eq!(
        sent,
        [
            "instance.shelve.start",
            "instance.shelve_offload.start",
            "instance.shelve_offload.end",
            "instance.shelve.end"
        ]
    );
}

/// With `shelved_offload_time = -1` the instance stays on the host, stopped;
/// an unshelve is then a start, which deletes the shelved image and keys.
#[tokio::test]
async fn a_shelved_instance_kept_on_the_host_is_unshelved_by_a_start() {
    let h = Harness::with_config(|c| c.shelved_offload = ShelvedOffload::Never);
    let inst = h.running(V::Active, Some(T::Shelving));
    h.handle(shelve(&inst)).await.unwrap();
    let last = h.saves(&inst).pop().unwrap();
    assert_eq!(
        last,
        s(
            V::Shelved,
            None,
            Some(&[Some(T::Shelving), Some(T::ShelvingImageUploading)])
        )
    );
    assert!(h.driver.container(inst.uuid()).is_some(), "kept, stopped");
    assert!(h.placement.deleted.lock().unwrap().is_empty());
    // the conductor's unshelve of a SHELVED instance
    let data = h.conductor.record(inst.uuid()).unwrap();
    let mut rec = Instance::from_primitive(&serde_json::json!({
        "nova_object.name": "Instance", "nova_object.namespace": "nova",
        "nova_object.version": "2.8", "nova_object.data": data}))
    .unwrap();
    rec.set_task_state(Some(T::PoweringOn));
    h.conductor.put(&rec);
    h.handle(ComputeRequest::Power(PowerOp::Start, rec.clone()))
        .await
        .unwrap();
    assert_eq!(
        h.saves(&inst).pop().unwrap(),
        s(V::Active, None, Some(&[Some(T::PoweringOn)]))
    );
    assert_eq!(*h.images.deleted.lock().unwrap(), ["shelved-1"]);
    assert_eq!(sysmeta(&h, &inst, "shelved_image_id"), None);
    assert_eq!(sysmeta(&h, &inst, "shelved_host"), None);
}

/// A shelved-offloaded instance, as the conductor sends it to unshelve.
fn offloaded(h: &Harness) -> Instance {
    let mut inst = h.instance(V::ShelvedOffloaded, Some(T::Unshelving), None);
    inst.update_system_metadata(
        &[
            ("shelved_image_id", "shelved-1".into()),
            ("shelved_host", "other-host".into()),
            ("shelved_at", "2026-11-22T18:48:51.877378".into()),
        ],
        &[],
    );
    inst.reset_changes();
    h.conductor.put(&inst);
    h.network_api
        .ports
        .lock()
        .unwrap()
        .insert(inst.uuid().into(), vec![fake_vif("port-9", false, true)]);
    inst
}

fn unshelve(inst: &Instance) -> ComputeRequest {
    ComputeRequest::Unshelve(Box::new(UnshelveRequest {
        instance: inst.clone(),
        image: Some(ImageMeta {
            id: Some("shelved-1".into()),
            container_format: Some("docker".into()),
            ..Default::default()
        }),
    }))
}

/// Unshelve: claimed here, its ports bound here, the container made from the
/// shelved image, ACTIVE; then the image and the shelved keys go.
#[tokio::test]
async fn an_unshelve_makes_the_container_from_the_shelved_image_with_its_ports() {
    let h = Harness::new();
    let inst = offloaded(&h);
    h.handle(unshelve(&inst)).await.unwrap();
    assert_eq!(
        h.saves(&inst),
        [
            s(V::ShelvedOffloaded, Some(T::Spawning), None),
            s(V::Active, None, Some(&[Some(T::Spawning)])),
        ]
    );
    assert_eq!(h.full_saves(&inst)[0].host.as_deref(), Some(HOST));
    assert_eq!(h.neutron_calls(), [format!("bind {} {HOST}", inst.uuid())]);
    assert_eq!(h.cache_saves(&inst), [1]);
    let c = h.driver.container(inst.uuid()).expect("its container");
    assert_eq!(c.image, "glance/shelved-1");
    assert!(h
        .network_calls()
        .iter()
        .any(|c| c.starts_with(&format!("plug {}", inst.uuid()))));
    assert_eq!(*h.images.deleted.lock().unwrap(), ["shelved-1"]);
    assert_eq!(sysmeta(&h, &inst, "shelved_image_id"), None);
    // the instance keeps its own image
    let rec = h.conductor.record(inst.uuid()).unwrap();
    assert_eq!(
        rec["image_ref"],
        inst.object().get("image_ref").unwrap().clone()
    );
    assert!(h.faults(&inst).is_empty());
}

/// A failed unshelve leaves nothing here: no container, the ports unbound,
/// the conductor's allocations removed, host cleared; the instance stays
/// SHELVED_OFFLOADED (with its image) to be unshelved again.
#[tokio::test]
async fn a_failed_unshelve_leaves_nothing_on_the_host() {
    let h = Harness::new();
    let inst = offloaded(&h);
    *h.images.fail.lock().unwrap() = Some(NovaException::internal("glance said no"));
    assert!(h.handle(unshelve(&inst)).await.is_err());
    let last = h.last_save(&inst);
    assert_eq!(last.vm_state.as_deref(), Some("shelved_offloaded"));
    assert_eq!(last.task_state, None);
    assert_eq!(last.host, None);
    assert!(h.driver.container(inst.uuid()).is_none());
    assert!(h
        .neutron_calls()
        .contains(&format!("unbind {}", inst.uuid())));
    assert_eq!(*h.placement.deleted.lock().unwrap(), [inst.uuid()]);
    assert!(
        h.images.deleted.lock().unwrap().is_empty(),
        "the image is kept"
    );
    assert_eq!(
        sysmeta(&h, &inst, "shelved_image_id").as_deref(),
        Some("shelved-1")
    );
    assert!(h.faults(&inst)[0].contains("glance said no"));
}

/// A port Neutron cannot bind here fails the unshelve the same way.
#[tokio::test]
async fn an_unshelve_whose_port_cannot_be_bound_here_fails_cleanly() {
    let h = Harness::new();
    let inst = offloaded(&h);
    *h.network_api.fail_allocate.lock().unwrap() = Some(NovaException::nova(
        crate::exception::Class::PortBindingFailed,
        "Binding failed for port port-9",
        serde_json::json!({}),
    ));
    assert!(h.handle(unshelve(&inst)).await.is_err());
    assert!(h.driver.container(inst.uuid()).is_none());
    assert_eq!(h.last_save(&inst).host, None);
    assert!(h.faults(&inst)[0].contains("port-9"));
}
