//! The instance's Neutron ports and info cache through the operations: a build
//! on a network, its failures, delete, interface attach and detach, the
//! network events, and a start whose message has no info cache.

use serde_json::json;

use super::build::{assert_failed, build_states, exits_at_once};
use super::fakes::fake_vif;
use super::harness::*;
use crate::compute::request::{AttachInterfaceRequest, ExternalEvent, NetworkRequest};
use crate::compute::{ComputeRequest, PowerOp};
use crate::exception::{Class, NovaException};
use crate::network::NetworkInfo;
use crate::objects::{Instance, TaskState as T, VmState as V};

const NET: &str = "5f3a6c1e-0000-4000-8000-000000000001";

/// A running instance of ours with one port (`port-a`), in its info cache
/// and in Neutron.
fn wired(h: &Harness) -> Instance {
    let mut inst = h.running(V::Active, None);
    let nw = NetworkInfo::new(vec![fake_vif("port-a", false, true)]).unwrap();
    inst.set_network_info_saved(nw.clone());
    h.conductor.put(&inst);
    h.network_api
        .ports
        .lock()
        .unwrap()
        .insert(inst.uuid().into(), nw.into_vifs());
    inst
}

#[tokio::test]
async fn a_build_on_a_network_binds_saves_the_cache_then_plugs() {
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &[NET]))
        .await
        .unwrap();
    let mut want = build_states();
    want.push(s(V::Active, None, Some(&[Some(T::Spawning)])));
    assert_eq!(h.saves(&inst), want);
    assert_eq!(
        h.neutron_calls(),
        [format!("allocate {} {HOST} 1", inst.uuid())]
    );
    // the cache is saved after the networking save, before block devices
    let t = h.trace(&inst);
    let at = |what: &str| {
        t.iter()
            .position(|c| c == what)
            .unwrap_or_else(|| panic!("{what} in {t:?}"))
    };
    assert!(at("save Some(\"networking\")") < at("info_cache 1"));
    assert!(at("info_cache 1") < at("save Some(\"block_device_mapping\")"));
    assert_eq!(h.cache_saves(&inst), [1]);
    let net = h.network_calls();
    assert!(
        net[0].starts_with(&format!("plug {} 1", inst.uuid())),
        "{net:?}"
    );
    assert!(
        net[1].starts_with(&format!("attach {} 1", inst.uuid())),
        "{net:?}"
    );
}

/// Neutron's `network-vif-plugged` for port-1 of `inst`, then the build ends ACTIVE.
async fn plugged_then_active(
    h: &Harness,
    inst: &Instance,
    build: tokio::task::JoinHandle<Result<serde_json::Value, NovaException>>,
) {
    h.handle(ComputeRequest::ExternalInstanceEvent(vec![ExternalEvent {
        instance_uuid: inst.uuid().into(),
        name: "network-vif-plugged".into(),
        status: "completed".into(),
        tag: Some("port-1".into()),
    }]))
    .await
    .unwrap();
    build.await.unwrap().unwrap();
    assert_eq!(h.last_save(inst).vm_state.as_deref(), Some("active"));
    assert!(h.faults(inst).is_empty());
}

#[tokio::test]
async fn a_build_starts_its_container_while_neutron_wires_and_is_active_after_the_event() {
    let h = Harness::new();
    *h.network_api.ports_down.lock().unwrap() = true;
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    let req = h.build_request(inst.clone(), &[NET]);
    let m = h.manager.clone();
    let ctx = h.ctx.clone();
    let build = tokio::spawn(async move { m.handle(&ctx, req).await });
    for _ in 0..100 {
        if h.network_calls().iter().any(|c| c.starts_with("attach")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let net = h.network_calls();
    assert!(
        net[0].starts_with("plug") && net[1].starts_with("attach"),
        "{net:?}"
    );
    assert!(
        h.driver.container(inst.uuid()).is_some(),
        "started before the event"
    );
    assert_eq!(
        h.last_save(&inst).task_state.as_deref(),
        Some("spawning"),
        "not ACTIVE before the event"
    );
    plugged_then_active(&h, &inst, build).await;
}

#[tokio::test]
async fn a_build_can_wait_for_network_vif_plugged_before_starting() {
    let h = Harness::with_config(|c| c.start_before_vif_plugged = false);
    *h.network_api.ports_down.lock().unwrap() = true;
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    let req = h.build_request(inst.clone(), &[NET]);
    let m = h.manager.clone();
    let ctx = h.ctx.clone();
    let build = tokio::spawn(async move { m.handle(&ctx, req).await });
    // Neutron's event once the port is plugged
    for _ in 0..100 {
        if h.network_calls().iter().any(|c| c.starts_with("plug")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        h.driver.container(inst.uuid()).is_none(),
        "not started before the event"
    );
    plugged_then_active(&h, &inst, build).await;
}

#[tokio::test]
async fn without_the_event_the_build_fails_and_gives_its_ports_back() {
    let h = Harness::new();
    *h.network_api.ports_down.lock().unwrap() = true;
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &[NET]))
        .await
        .unwrap();
    assert_failed(&h, &inst, "network-vif-plugged", build_states());
    let calls = h.neutron_calls();
    assert_eq!(calls[1], format!("deallocate {} keep ", inst.uuid()));
    assert_eq!(h.cache_saves(&inst), [1, 0], "the cache emptied again");
    assert!(h.network_calls().iter().any(|c| c.starts_with("unplug")));
}

#[tokio::test]
async fn a_failed_allocation_ends_in_error_naming_neutrons_reason() {
    let h = Harness::new();
    *h.network_api.fail_allocate.lock().unwrap() = Some(NovaException::nova(
        Class::NoMoreFixedIps,
        format!("No fixed IP addresses available for network: {NET}"),
        json!({"code": 400}),
    ));
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &[NET]))
        .await
        .unwrap();
    assert_failed(
        &h,
        &inst,
        "Failed to allocate the network(s) with error NoMoreFixedIps: No fixed IP addresses available",
        build_states()[..2].to_vec(),
    );
    let net = h.network_calls();
    assert!(
        net.iter().all(|c| !c.starts_with("plug")),
        "nothing plugged: {net:?}"
    );
    assert!(h.cache_saves(&inst).is_empty());
    assert_eq!(
        h.neutron_calls()[1],
        format!("deallocate {} keep ", inst.uuid())
    );
}

#[tokio::test]
async fn a_failed_spawn_deletes_made_ports_and_keeps_given_ones() {
    let h = Harness::new();
    exits_at_once(&h);
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    let ComputeRequest::BuildAndRunInstance(mut b) = h.build_request(inst.clone(), &[NET]) else {
        unreachable!()
    };
    b.requested_networks.as_mut().unwrap().push(NetworkRequest {
        port_id: Some("given-port".into()),
        ..Default::default()
    });
    h.handle(ComputeRequest::BuildAndRunInstance(b))
        .await
        .unwrap();
    assert_failed(&h, &inst, "exit code 3", build_states());
    assert_eq!(
        h.neutron_calls()[1],
        format!("deallocate {} keep given-port", inst.uuid())
    );
    assert_eq!(h.cache_saves(&inst), [2, 0]);
}

#[tokio::test]
async fn delete_gives_the_ports_back_after_unplugging() {
    let h = Harness::new();
    let mut inst = wired(&h);
    inst.set_task_state(Some(T::Deleting));
    inst.reset_changes();
    h.conductor.put(&inst);
    h.handle(ComputeRequest::TerminateInstance(inst.clone()))
        .await
        .unwrap();
    assert!(h.destroyed(&inst));
    assert_eq!(
        h.neutron_calls(),
        [format!("deallocate {} keep ", inst.uuid())]
    );
    assert!(h.network_calls()[0].starts_with(&format!("unplug {} 1", inst.uuid())));
}

#[tokio::test]
async fn attach_interface_binds_plugs_into_the_running_container_and_answers_the_vif() {
    let h = Harness::new();
    let inst = wired(&h);
    let vif = h
        .handle(ComputeRequest::AttachInterface(AttachInterfaceRequest {
            instance: inst.clone(),
            network: NetworkRequest {
                network_id: Some(NET.into()),
                ..Default::default()
            },
        }))
        .await
        .unwrap();
    assert_eq!(vif["id"], "port-1");
    assert_eq!(vif["type"], "ovs");
    let net = h.network_calls();
    assert_eq!(net.len(), 1, "{net:?}");
    assert!(
        net[0].starts_with(&format!("attach_interface {} port-1 2 Some(", inst.uuid())),
        "{net:?}"
    );
    assert_eq!(h.cache_saves(&inst), [2]);
    assert!(h.saves(&inst).is_empty(), "no state change");
}

#[tokio::test]
async fn a_failed_hot_plug_gives_the_port_back_and_leaves_a_fault() {
    let h = Harness::new();
    let inst = wired(&h);
    *h.network.fail_plug.lock().unwrap() = Some(NovaException::nova(
        Class::InterfaceAttachFailed,
        "Failed to attach network adapter device",
        json!({"code": 500}),
    ));
    let r = h
        .handle(ComputeRequest::AttachInterface(AttachInterfaceRequest {
            instance: inst.clone(),
            network: NetworkRequest {
                network_id: Some(NET.into()),
                ..Default::default()
            },
        }))
        .await;
    assert!(r.unwrap_err().is(Class::InterfaceAttachFailed));
    assert!(h
        .neutron_calls()
        .contains(&"deallocate_port port-1".to_string()));
    assert!(h.cache_saves(&inst).is_empty());
    assert_eq!(h.faults(&inst).len(), 1);
}

#[tokio::test]
async fn detach_interface_unplugs_deletes_the_port_and_saves_the_cache() {
    let h = Harness::new();
    let inst = wired(&h);
    h.handle(ComputeRequest::DetachInterface {
        instance: inst.clone(),
        port_id: "port-a".into(),
    })
    .await
    .unwrap();
    assert!(
        h.network_calls()[0].starts_with(&format!("detach_interface {} port-a Some(", inst.uuid()))
    );
    assert_eq!(h.neutron_calls(), ["deallocate_port port-a"]);
    assert_eq!(h.cache_saves(&inst), [0]);
    // a port that is not attached: PortNotFound, and a fault
    let r = h
        .handle(ComputeRequest::DetachInterface {
            instance: inst.clone(),
            port_id: "port-a".into(),
        })
        .await;
    assert!(r.unwrap_err().is(Class::PortNotFound));
}

fn event(inst: &Instance, name: &str, tag: &str) -> ComputeRequest {
    ComputeRequest::ExternalInstanceEvent(vec![ExternalEvent {
        instance_uuid: inst.uuid().into(),
        name: name.into(),
        status: "completed".into(),
        tag: Some(tag.into()),
    }])
}

#[tokio::test]
async fn network_vif_deleted_takes_the_vif_out_without_touching_neutron() {
    let h = Harness::new();
    let inst = wired(&h);
    h.handle(event(&inst, "network-vif-deleted", "port-a"))
        .await
        .unwrap();
    assert!(h.network_calls()[0].starts_with(&format!("detach_interface {} port-a", inst.uuid())));
    assert!(h.neutron_calls().is_empty());
    assert_eq!(h.cache_saves(&inst), [0]);
}

#[tokio::test]
async fn network_changed_refreshes_the_cache_from_neutron() {
    let h = Harness::new();
    let inst = wired(&h);
    // Neutron now has a second port for the instance
    h.network_api
        .ports
        .lock()
        .unwrap()
        .get_mut(inst.uuid())
        .unwrap()
        .push(fake_vif("port-b", false, true));
    h.handle(event(&inst, "network-changed", "port-b"))
        .await
        .unwrap();
    assert_eq!(h.neutron_calls(), [format!("refresh {}", inst.uuid())]);
    assert_eq!(h.cache_saves(&inst), [2]);
    // unchanged: nothing saved
    h.handle(event(&inst, "network-changed", "port-b"))
        .await
        .unwrap();
    assert_eq!(h.cache_saves(&inst), [2]);
}

#[tokio::test]
async fn a_start_whose_message_has_no_info_cache_rewires_from_the_database() {
    let h = Harness::new();
    let mut inst = wired(&h);
    inst.set_vm_state(V::Stopped);
    inst.set_task_state(Some(T::PoweringOn));
    inst.reset_changes();
    h.conductor.put(&inst);
    h.driver
        .insert(inst.uuid(), crate::virt::PowerState::Shutdown);
    // start_instance's message carries no info_cache
    let mut prim = inst.to_primitive();
    prim["nova_object.data"]
        .as_object_mut()
        .unwrap()
        .remove("info_cache");
    let bare = Instance::from_primitive(&prim).unwrap();
    assert!(bare.network_info().is_empty());
    h.handle(ComputeRequest::Power(PowerOp::Start, bare))
        .await
        .unwrap();
    let net = h.network_calls();
    assert!(
        net.iter()
            .any(|c| c.starts_with(&format!("plug {} 1", inst.uuid()))),
        "{net:?}"
    );
    assert!(
        net.iter()
            .any(|c| c.starts_with(&format!("attach {} 1", inst.uuid()))),
        "{net:?}"
    );
}

#[tokio::test]
async fn after_an_engine_restart_running_instances_start_again_and_are_rewired() {
    let h = Harness::new();
    let inst = wired(&h);
    // the engine stopped every container; one instance Nova stopped stays so
    h.driver
        .insert(inst.uuid(), crate::virt::PowerState::Shutdown);
    let mut stopped = h.running(V::Stopped, None);
    stopped.reset_changes();
    h.manager.resume_after_engine_restart().await;
    assert_eq!(h.driver_ops(&inst), ["power_on"]);
    assert!(h.driver_ops(&stopped).is_empty());
    let net = h.network_calls();
    assert!(
        net.iter()
            .any(|c| c.starts_with(&format!("attach {} 1", inst.uuid()))),
        "{net:?}"
    );
    assert!(h.saves(&inst).is_empty(), "the record already says running");
}

#[tokio::test]
async fn a_stop_that_ends_while_the_engine_comes_back_is_not_undone() {
    let h = Harness::new();
    let mut inst = wired(&h);
    h.driver
        .insert(inst.uuid(), crate::virt::PowerState::Shutdown);
    // a stop holds the instance when the engine answers again: the listing
    // still says ACTIVE and running
    let lock = h.manager.instance_lock(inst.uuid());
    let stop = lock.lock().await;
    let m = h.manager.clone();
    let resume = tokio::spawn(async move { m.resume_after_engine_restart().await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !resume.is_finished(),
        "the resume waits for the instance's lock"
    );
    inst.set_vm_state(V::Stopped);
    inst.set_power_state(crate::virt::PowerState::Shutdown);
    h.conductor.put(&inst);
    drop(stop);
    resume.await.unwrap();
    assert!(
        h.driver_ops(&inst).is_empty(),
        "the stopped container was started again: {:?}",
        h.driver_ops(&inst)
    );
}

#[tokio::test]
async fn the_heal_refreshes_one_instance_per_turn() {
    let h = Harness::new();
    let a = wired(&h);
    let b = wired(&h);
    for i in [&a, &b] {
        h.network_api
            .ports
            .lock()
            .unwrap()
            .get_mut(i.uuid())
            .unwrap()
            .push(fake_vif(&format!("extra-{}", &i.uuid()[..8]), false, true));
    }
    let mut cursor = 0;
    h.manager.heal_one_info_cache(&mut cursor).await;
    let healed: usize = [&a, &b].iter().map(|i| h.cache_saves(i).len()).sum();
    assert_eq!(healed, 1, "one instance per turn");
    h.manager.heal_one_info_cache(&mut cursor).await;
    assert_eq!(h.cache_saves(&a), [2]);
    assert_eq!(h.cache_saves(&b), [2]);
}

#[tokio::test]
async fn a_rebuild_keeps_the_ports_and_waits_for_no_event() {
    let h = Harness::new();
    let mut inst = h.running(V::Active, Some(T::Rebuilding));
    // the cache as the build saved it: the port was not ACTIVE yet then
    inst.set_network_info_saved(NetworkInfo::new(vec![fake_vif("port-a", false, false)]).unwrap());
    h.conductor.put(&inst);
    let req = ComputeRequest::RebuildInstance(Box::new(crate::compute::request::RebuildRequest {
        instance: inst.clone(),
        image: crate::objects::ImageMeta {
            id: Some("img-2".into()),
            container_format: Some("docker".into()),
            ..Default::default()
        },
        recreate: false,
        migration: None,
        target_state: None,
    }));
    h.handle(req).await.unwrap();
    assert_eq!(h.last_save(&inst).vm_state.as_deref(), Some("active"));
    assert!(h.faults(&inst).is_empty(), "{:?}", h.faults(&inst));
    assert!(h.neutron_calls().is_empty(), "the ports stay as they are");
}
