//! Resize on the same host, step by step as Nova sends them (each step's cast
//! decoded and handled as the next message): states, the migration's status,
//! the container's limits, placement; confirm and revert; the refusals.

use serde_json::{json, Map, Value};

use super::harness::*;
use crate::compute::ComputeRequest;
use crate::objects::{Instance, TaskState as T, VmState as V};

fn flavor(id: i64, memory_mb: i64, vcpus: i64) -> Value {
    json!({"nova_object.name": "Flavor", "nova_object.namespace": "nova",
           "nova_object.version": "1.2",
           "nova_object.data": {"id": id, "name": format!("f{id}"), "memory_mb": memory_mb,
               "vcpus": vcpus, "root_gb": 1, "ephemeral_gb": 0, "swap": 0,
               "flavorid": format!("f{id}"), "extra_specs": {}}})
}

fn migration(inst: &Instance, dest: &str, new_type: i64) -> Value {
    json!({"nova_object.name": "Migration", "nova_object.namespace": "nova",
           "nova_object.version": "1.8",
           "nova_object.data": {"id": 5, "uuid": "mig-1", "instance_uuid": inst.uuid(),
               "source_compute": HOST, "source_node": HOST, "dest_compute": dest,
               "status": "pre-migrating", "old_instance_type_id": 1,
               "new_instance_type_id": new_type, "migration_type": "resize"}})
}

/// The instance as the database has it now, with `task`.
fn stored(h: &Harness, inst: &Instance, task: Option<T>) -> Value {
    let mut data = h.conductor.record(inst.uuid()).unwrap();
    data.insert(
        "task_state".into(),
        task.map_or(Value::Null, |t| json!(t.as_str())),
    );
    json!({"nova_object.name": "Instance", "nova_object.namespace": "nova",
           "nova_object.version": "2.8", "nova_object.data": data})
}

/// The last cast: its topic, method and arguments.
fn last_cast(h: &Harness) -> (String, String, Map<String, Value>) {
    let casts = h.conductor.casts.lock().unwrap();
    let (topic, _, method, args) = casts.last().expect("a cast").clone();
    (topic, method, args)
}

/// Handle the message a step cast to the next host (this one).
async fn next_step(h: &Harness, method: &str) {
    let (topic, m, args) = last_cast(h);
    assert_eq!(
        (topic.as_str(), m.as_str()),
        (format!("compute.{HOST}").as_str(), method)
    );
    h.handle(ComputeRequest::decode(&m, &args).unwrap())
        .await
        .unwrap();
}

/// An ACTIVE instance with a running container, prepped to be resized to
/// 1024 MiB and 2 vCPUs on this host, up to VERIFY_RESIZE.
async fn resized(h: &Harness) -> Instance {
    let inst = h.running(V::Active, Some(T::ResizePrep));
    let args = json!({"instance": inst.to_primitive(), "migration": migration(&inst, HOST, 2),
        "image": {}, "flavor": flavor(2, 1024, 2), "clean_shutdown": true,
        "request_spec": null, "filter_properties": {}, "node": HOST, "host_list": []});
    let req = ComputeRequest::decode("prep_resize", args.as_object().unwrap()).unwrap();
    h.handle(req).await.unwrap();
    next_step(h, "resize_instance").await;
    next_step(h, "finish_resize").await;
    inst
}

fn record_field(h: &Harness, inst: &Instance, f: &str) -> Value {
    h.conductor.record(inst.uuid()).unwrap()[f].clone()
}

#[tokio::test]
async fn a_resize_on_the_same_host_changes_the_container_in_place() {
    let h = Harness::new();
    let inst = resized(&h).await;
    assert_eq!(
        h.saves(&inst),
        [
            // prep: new_flavor and old_vm_state stashed
            s(V::Active, Some(T::ResizePrep), None),
            s(
                V::Active,
                Some(T::ResizeMigrating),
                Some(&[Some(T::ResizePrep)])
            ),
            s(
                V::Active,
                Some(T::ResizeMigrated),
                Some(&[Some(T::ResizeMigrating)])
            ),
            s(
                V::Active,
                Some(T::ResizeFinish),
                Some(&[Some(T::ResizeMigrated)])
            ),
            s(V::Resized, None, Some(&[Some(T::ResizeFinish)])),
        ]
    );
    let migrations: Vec<String> = h
        .trace(&inst)
        .into_iter()
        .filter(|t| t.starts_with("migration "))
        .collect();
    assert_eq!(
        migrations,
        [
            "migration pre-migrating",
            "migration migrating",
            "migration post-migrating",
            "migration finished"
        ]
    );
    // the same container, with the new flavor's limits
    let c = h.driver.container(inst.uuid()).unwrap();
    assert_eq!(c.limits, Some((1024, 2)));
    assert_eq!(h.driver_ops(&inst), ["resize"]);
    assert_eq!(record_field(&h, &inst, "memory_mb"), 1024);
    assert_eq!(record_field(&h, &inst, "vcpus"), 2);
    assert_eq!(record_field(&h, &inst, "instance_type_id"), 2);
    assert_eq!(
        record_field(&h, &inst, "old_flavor")["nova_object.data"]["id"],
        1
    );
    assert_eq!(
        record_field(&h, &inst, "system_metadata")["old_vm_state"],
        "active"
    );
    assert_eq!(
        h.events(&inst),
        [
            "+compute_prep_resize",
            "-compute_prep_resize",
            "+compute_resize_instance",
            "-compute_resize_instance",
            "+compute_finish_resize",
            "-compute_finish_resize"
        ]
    );
    assert!(h.faults(&inst).is_empty());
}

#[tokio::test]
async fn a_confirm_keeps_the_new_flavor_and_frees_the_old_one() {
    let h = Harness::new();
    let inst = resized(&h).await;
    let mut mig = migration(&inst, HOST, 2);
    mig["nova_object.data"]["status"] = json!("confirming");
    let args = json!({"instance": stored(&h, &inst, None), "migration": mig});
    h.handle(ComputeRequest::decode("confirm_resize", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    let saves = h.saves(&inst);
    assert_eq!(
        saves[saves.len() - 2],
        s(
            V::Active,
            None,
            Some(&[None, Some(T::Deleting), Some(T::SoftDeleting)])
        )
    );
    assert!(h.trace(&inst).contains(&"migration confirmed".to_string()));
    assert_eq!(*h.placement.deleted.lock().unwrap(), ["mig-1"]);
    assert_eq!(
        h.driver.container(inst.uuid()).unwrap().limits,
        Some((1024, 2))
    );
    assert_eq!(record_field(&h, &inst, "memory_mb"), 1024);
    assert!(record_field(&h, &inst, "old_flavor").is_null());
    assert!(record_field(&h, &inst, "new_flavor").is_null());
    assert!(record_field(&h, &inst, "system_metadata")
        .get("old_vm_state")
        .is_none());
    // a second confirm (the migration confirmed) does nothing
    let n = h.saves(&inst).len();
    let mut mig = migration(&inst, HOST, 2);
    mig["nova_object.data"]["status"] = json!("confirmed");
    let args = json!({"instance": stored(&h, &inst, None), "migration": mig});
    h.handle(ComputeRequest::decode("confirm_resize", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(h.saves(&inst).len(), n);
}

#[tokio::test]
async fn a_revert_gives_the_container_its_old_limits_and_the_instance_its_allocation() {
    let h = Harness::new();
    let inst = resized(&h).await;
    // the API's revert: task resize_reverting, the migration reverting
    let mut mig = migration(&inst, HOST, 2);
    mig["nova_object.data"]["status"] = json!("reverting");
    let args = json!({"instance": stored(&h, &inst, Some(T::ResizeReverting)),
        "migration": mig, "request_spec": null});
    h.conductor
        .put(&Instance::from_primitive(&args["instance"]).unwrap());
    h.handle(ComputeRequest::decode("revert_resize", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    next_step(&h, "finish_revert_resize").await;
    assert!(h.trace(&inst).contains(&"migration reverted".to_string()));
    assert_eq!(
        *h.placement.moved.lock().unwrap(),
        [("mig-1".to_string(), inst.uuid().to_string())]
    );
    let c = h.driver.container(inst.uuid()).unwrap();
    assert_eq!(
        c.limits,
        Some((inst.memory_mb() as u64, inst.vcpus() as u32))
    );
    let saves = h.saves(&inst);
    assert_eq!(
        saves[saves.len() - 2],
        s(V::Active, None, Some(&[Some(T::ResizeReverting)]))
    );
    assert_eq!(record_field(&h, &inst, "memory_mb"), inst.memory_mb());
    assert_eq!(record_field(&h, &inst, "instance_type_id"), 1);
    assert!(record_field(&h, &inst, "old_flavor").is_null());
    assert_eq!(record_field(&h, &inst, "host"), HOST);
    assert!(h.faults(&inst).is_empty());
}

/// A cold migration to this same host: refused by prep_resize; the instance
/// keeps its state and host, the migration is in error, its allocations go
/// back to the instance.
#[tokio::test]
async fn a_cold_migration_to_the_same_host_is_refused_and_undone() {
    let h = Harness::new();
    let mut inst = h.instance(V::Active, Some(T::ResizePrep), Some(HOST));
    inst.reset_changes();
    let args = json!({"instance": inst.to_primitive(), "migration": migration(&inst, HOST, 1),
        "image": {}, "flavor": flavor(1, 512, 1), "clean_shutdown": true});
    let r = h
        .handle(ComputeRequest::decode("prep_resize", args.as_object().unwrap()).unwrap())
        .await;
    assert!(r.is_err());
    assert_eq!(h.saves(&inst), [s(V::Active, None, None)]);
    assert!(h.faults(&inst)[0].contains("Unable to migrate instance"));
    assert!(h.trace(&inst).contains(&"migration error".to_string()));
    assert_eq!(
        *h.placement.moved.lock().unwrap(),
        [("mig-1".to_string(), inst.uuid().to_string())]
    );
    assert!(h.conductor.casts.lock().unwrap().is_empty(), "no next step");
    assert_eq!(record_field(&h, &inst, "host"), HOST);
}

/// A migration whose source is this host and destination `dest-host`, its
/// container running here, as `resize_instance` gets it.
fn shipping(h: &Harness) -> (Instance, Value) {
    let inst = h.running(V::Active, Some(T::ResizePrep));
    h.network_api.ports.lock().unwrap().insert(
        inst.uuid().into(),
        vec![super::fakes::fake_vif("port-9", false, true)],
    );
    let mut mig = migration(&inst, "dest-host", 2);
    mig["nova_object.data"]["dest_node"] = json!("dest-host");
    mig["nova_object.data"]["dest_compute_id"] = json!(9);
    (inst, mig)
}

/// The source of a move to another host: the container stopped, its VIFs
/// unplugged, committed into a carrier image named in finish_resize's
/// disk_info; the instance handed to the destination; the container kept.
#[tokio::test]
async fn a_move_to_another_host_commits_the_container_into_a_carrier_image() {
    let h = Harness::new();
    let (inst, mig) = shipping(&h);
    let args = json!({"instance": inst.to_primitive(), "migration": mig, "image": {},
        "flavor": flavor(2, 1024, 2), "clean_shutdown": true, "request_spec": null});
    h.handle(ComputeRequest::decode("resize_instance", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(h.driver_ops(&inst), ["power_off"]);
    let c = h
        .driver
        .container(inst.uuid())
        .expect("kept until the confirm");
    assert_eq!(c.state, crate::virt::PowerState::Shutdown);
    assert!(h
        .network_calls()
        .iter()
        .any(|c| c.starts_with(&format!("unplug {}", inst.uuid()))));
    assert_eq!(
        *h.images.created.lock().unwrap(),
        [format!("{}-migration-mig-1", inst.uuid())]
    );
    assert_eq!(h.images.snapshots.lock().unwrap()[0].0, "made-1");
    let (topic, method, args) = last_cast(&h);
    assert_eq!(
        (topic.as_str(), method.as_str()),
        ("compute.dest-host", "finish_resize")
    );
    assert_eq!(args["disk_info"], "made-1");
    assert_eq!(record_field(&h, &inst, "host"), "dest-host");
    assert_eq!(record_field(&h, &inst, "compute_id"), 9);
    assert_eq!(
        record_field(&h, &inst, "system_metadata")["docker_migration_image"],
        "made-1"
    );
    assert_eq!(
        h.saves(&inst).last().unwrap(),
        &s(
            V::Active,
            Some(T::ResizeMigrated),
            Some(&[Some(T::ResizeMigrating)])
        )
    );
}

/// The destination of a move: its ports bound here, the container made from
/// the carrier with the new flavor, RESIZED; a revert removes it.
#[tokio::test]
async fn the_destination_runs_the_moved_container_and_a_revert_removes_it() {
    let h = Harness::new();
    let mut inst = h.instance(V::Active, Some(T::ResizeMigrated), Some(HOST));
    inst.set_stashed_flavor(crate::objects::FlavorSlot::New, Some(flavor(2, 1024, 2)));
    inst.update_system_metadata(&[("docker_migration_image", "made-1".into())], &[]);
    inst.reset_changes();
    h.conductor.put(&inst);
    h.network_api.ports.lock().unwrap().insert(
        inst.uuid().into(),
        vec![super::fakes::fake_vif("port-9", false, true)],
    );
    let mut mig = migration(&inst, HOST, 2);
    mig["nova_object.data"]["source_compute"] = json!("src-host");
    let args = json!({"instance": inst.to_primitive(), "migration": mig.clone(), "image": {},
        "disk_info": "made-1", "request_spec": null});
    h.handle(ComputeRequest::decode("finish_resize", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(h.neutron_calls(), [format!("bind {} {HOST}", inst.uuid())]);
    let c = h.driver.container(inst.uuid()).expect("made here");
    assert_eq!(c.image, "glance/made-1");
    assert_eq!(record_field(&h, &inst, "memory_mb"), 1024);
    assert_eq!(
        h.saves(&inst).last().unwrap(),
        &s(V::Resized, None, Some(&[Some(T::ResizeFinish)]))
    );
    // the instance keeps its own image
    assert_eq!(
        record_field(&h, &inst, "image_ref"),
        inst.object().get("image_ref").unwrap().clone()
    );
    // revert: gone from here, the source told to finish
    mig["nova_object.data"]["status"] = json!("reverting");
    let args = json!({"instance": stored(&h, &inst, Some(T::ResizeReverting)),
        "migration": mig, "request_spec": null});
    h.handle(ComputeRequest::decode("revert_resize", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    assert!(h.driver.container(inst.uuid()).is_none());
    let (topic, method, _) = last_cast(&h);
    assert_eq!(
        (topic.as_str(), method.as_str()),
        ("compute.src-host", "finish_revert_resize")
    );
}

/// Back on the source: the revert starts the kept container with its ports
/// bound here again, deletes the carrier; a confirm removes the kept one.
#[tokio::test]
async fn the_source_restarts_its_container_on_a_revert_and_removes_it_on_a_confirm() {
    let h = Harness::new();
    let (inst, mig) = shipping(&h);
    let args = json!({"instance": inst.to_primitive(), "migration": mig.clone(), "image": {},
        "flavor": flavor(2, 1024, 2), "clean_shutdown": true, "request_spec": null});
    h.handle(ComputeRequest::decode("resize_instance", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    let mut m = mig.clone();
    m["nova_object.data"]["status"] = json!("reverted");
    let args = json!({"instance": stored(&h, &inst, Some(T::ResizeReverting)), "migration": m});
    h.conductor
        .put(&Instance::from_primitive(&args["instance"]).unwrap());
    h.handle(ComputeRequest::decode("finish_revert_resize", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    let c = h.driver.container(inst.uuid()).unwrap();
    assert_eq!(c.state, crate::virt::PowerState::Running);
    assert!(h
        .neutron_calls()
        .contains(&format!("bind {} {HOST}", inst.uuid())));
    assert_eq!(*h.images.deleted.lock().unwrap(), ["made-1"]);
    assert_eq!(record_field(&h, &inst, "host"), HOST);
    assert_eq!(record_field(&h, &inst, "instance_type_id"), 1);
    assert_eq!(
        *h.placement.moved.lock().unwrap(),
        [("mig-1".to_string(), inst.uuid().to_string())]
    );
    // a second move, confirmed this time: the kept container goes
    let h = Harness::new();
    let (inst, mig) = shipping(&h);
    let args = json!({"instance": inst.to_primitive(), "migration": mig.clone(), "image": {},
        "flavor": flavor(2, 1024, 2), "clean_shutdown": true, "request_spec": null});
    h.handle(ComputeRequest::decode("resize_instance", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    let mut m = mig;
    m["nova_object.data"]["status"] = json!("confirming");
    let mut rec = stored(&h, &inst, None);
    rec["nova_object.data"]["vm_state"] = json!("resized");
    rec["nova_object.data"]["power_state"] = json!(1);
    h.conductor.put(&Instance::from_primitive(&rec).unwrap());
    let args = json!({"instance": rec, "migration": m});
    h.handle(ComputeRequest::decode("confirm_resize", args.as_object().unwrap()).unwrap())
        .await
        .unwrap();
    assert!(
        h.driver.container(inst.uuid()).is_none(),
        "the kept container stayed"
    );
    assert_eq!(*h.images.deleted.lock().unwrap(), ["made-1"]);
    assert_eq!(*h.placement.deleted.lock().unwrap(), ["mig-1"]);
    assert_eq!(record_field(&h, &inst, "vm_state"), "active");
    assert_eq!(record_field(&h, &inst, "host"), "dest-host");
    assert!(record_field(&h, &inst, "system_metadata")
        .get("docker_migration_image")
        .is_none());
}
