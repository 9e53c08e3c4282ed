//! Evacuation: rebuilt here from the image with the instance's ports; a
//! failed one leaves nothing here; the failed host's start-up removes what
//! the evacuated instances left there.

use serde_json::{json, Value};

use super::fakes::fake_vif;
use super::harness::*;
use crate::compute::request::RebuildRequest;
use crate::compute::ComputeRequest;
use crate::exception::NovaException;
use crate::objects::{ImageMeta, Instance, Migration, TaskState as T, VmState as V};

fn evacuation(inst: &Instance, source: &str) -> Value {
    json!({"nova_object.name": "Migration", "nova_object.namespace": "nova",
           "nova_object.version": "1.8",
           "nova_object.data": {"id": 7, "uuid": "evac-1", "instance_uuid": inst.uuid(),
               "source_compute": source, "source_node": source, "status": "accepted",
               "migration_type": "evacuation"}})
}

/// An instance of `failed-host` (down), as the conductor sends its evacuation here.
fn evacuate(h: &Harness) -> (Instance, ComputeRequest) {
    let inst = h.instance(V::Active, Some(T::Rebuilding), Some("failed-host"));
    h.network_api
        .ports
        .lock()
        .unwrap()
        .insert(inst.uuid().into(), vec![fake_vif("port-9", false, true)]);
    let req = ComputeRequest::RebuildInstance(Box::new(RebuildRequest {
        instance: inst.clone(),
        image: ImageMeta {
            id: Some("img-1".into()),
            container_format: Some("docker".into()),
            ..Default::default()
        },
        recreate: true,
        migration: Some(Migration::from_primitive(&evacuation(&inst, "failed-host")).unwrap()),
        target_state: None,
    }));
    (inst, req)
}

#[tokio::test]
async fn an_evacuation_rebuilds_the_instance_here_with_its_ports() {
    let h = Harness::new();
    let (inst, req) = evacuate(&h);
    h.handle(req).await.unwrap();
    assert_eq!(
        h.saves(&inst),
        [
            s(V::Active, Some(T::Rebuilding), Some(&[Some(T::Rebuilding)])),
            s(
                V::Active,
                Some(T::RebuildBlockDeviceMapping),
                Some(&[Some(T::Rebuilding)])
            ),
            s(
                V::Active,
                Some(T::RebuildSpawning),
                Some(&[Some(T::RebuildBlockDeviceMapping)])
            ),
            s(V::Active, None, Some(&[Some(T::RebuildSpawning)])),
        ]
    );
    assert_eq!(h.last_save(&inst).host.as_deref(), Some(HOST));
    assert_eq!(h.neutron_calls(), [format!("bind {} {HOST}", inst.uuid())]);
    assert_eq!(h.cache_saves(&inst), [1]);
    assert_eq!(
        h.driver.container(inst.uuid()).unwrap().image,
        "glance/img-1"
    );
    let migrations: Vec<String> = h
        .trace(&inst)
        .into_iter()
        .filter(|t| t.starts_with("migration "))
        .collect();
    assert_eq!(migrations, ["migration pre-migrating", "migration done"]);
    assert!(h.faults(&inst).is_empty());
}

#[tokio::test]
async fn a_failed_evacuation_leaves_nothing_here() {
    let h = Harness::new();
    let (inst, req) = evacuate(&h);
    *h.images.fail.lock().unwrap() = Some(NovaException::internal("glance said no"));
    assert!(h.handle(req).await.is_err());
    assert!(h.driver.container(inst.uuid()).is_none());
    assert!(h.trace(&inst).contains(&"migration failed".to_string()));
    assert_eq!(
        *h.placement.trimmed.lock().unwrap(),
        [(inst.uuid().to_string(), "node-uuid".to_string())]
    );
    assert_eq!(h.last_save(&inst).vm_state.as_deref(), Some("error"));
    assert!(h.faults(&inst)[0].contains("glance said no"));
}

/// The failed host's start-up: the evacuated instance's container there is
/// removed (not started), its allocation there removed, the migration
/// completed; an instance that is still this host's is left alone.
#[tokio::test]
async fn the_failed_host_removes_what_evacuated_instances_left_at_start_up() {
    let h = Harness::new();
    let gone = h.instance(V::Active, None, Some("new-host"));
    h.driver
        .insert(gone.uuid(), crate::virt::PowerState::Shutdown);
    let mine = h.running(V::Active, None);
    h.conductor
        .migrations
        .lock()
        .unwrap()
        .push(evacuation(&gone, HOST));
    h.manager.destroy_evacuated().await;
    assert!(h.driver.container(gone.uuid()).is_none());
    assert_eq!(h.driver_ops(&gone), ["destroy"]);
    assert!(h
        .network_calls()
        .iter()
        .any(|c| c.starts_with(&format!("unplug {}", gone.uuid()))));
    assert_eq!(
        *h.placement.trimmed.lock().unwrap(),
        [(gone.uuid().to_string(), "node-uuid".to_string())]
    );
    assert!(h.trace(&gone).contains(&"migration completed".to_string()));
    assert!(h.driver.container(mine.uuid()).is_some());
    assert!(h.driver_ops(&mine).is_empty());
}
