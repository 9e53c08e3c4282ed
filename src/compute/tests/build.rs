//! build_and_run_instance: the task states of a build, and what each failure
//! leaves behind (a fault, ERROR, host cleared, nothing in the engine, the
//! allocations removed).

use super::harness::*;
use crate::compute::ComputeRequest;
use crate::exception::NovaException;
use crate::objects::{TaskState as T, VmState as V};
use crate::virt::{DriverError, PowerState};

const EVENT: &str = "compute__do_build_and_run_instance";

pub(super) fn build_states() -> Vec<S> {
    vec![
        // with the claim (host and node)
        s(V::Building, None, Some(&[Some(T::Scheduling), None])),
        s(V::Building, Some(T::Networking), Some(&[None])),
        s(V::Building, Some(T::BlockDeviceMapping), None),
        s(
            V::Building,
            Some(T::Spawning),
            Some(&[Some(T::BlockDeviceMapping)]),
        ),
    ]
}

#[tokio::test]
async fn a_build_goes_through_novas_task_states_to_active() {
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    let mut want = build_states();
    want.push(s(V::Active, None, Some(&[Some(T::Spawning)])));
    assert_eq!(h.saves(&inst), want);
    assert_eq!(
        h.full_saves(&inst)[0].host.as_deref(),
        Some(HOST),
        "claimed"
    );
    let last = h.last_save(&inst);
    assert_eq!(last.host.as_deref(), Some(HOST));
    let rec = h.conductor.record(inst.uuid()).unwrap();
    assert_eq!(rec["power_state"], PowerState::Running.as_int());
    assert_eq!(rec["node"], HOST);
    assert_eq!(rec["launched_on"], HOST);
    assert_eq!(rec["compute_id"], 7);
    assert!(rec["launched_at"].is_string());
    assert_eq!(h.events(&inst), [format!("+{EVENT}"), format!("-{EVENT}")]);
    assert!(h.faults(&inst).is_empty());
    assert_eq!(
        h.driver.container(inst.uuid()).unwrap().image,
        "glance/img-1"
    );
    assert!(h.placement.deleted.lock().unwrap().is_empty());
}

/// The container of the next spawn exits at once (code 3).
pub(super) fn exits_at_once(h: &Harness) {
    h.driver.fail(
        "spawn",
        DriverError::ExitedImmediately {
            uuid: "x".into(),
            exit_code: 3,
            logs: "no such file".into(),
        },
    );
}

/// What every failed build must look like after its last successful save.
pub(super) fn assert_failed(
    h: &Harness,
    inst: &crate::objects::Instance,
    fault: &str,
    saved: Vec<S>,
) {
    let mut want = saved;
    want.push(s(V::Error, None, None));
    assert_eq!(h.saves(inst), want);
    let faults = h.faults(inst);
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert!(
        faults[0].contains(fault),
        "fault {:?} lacks {fault:?}",
        faults[0]
    );
    // nova: the fault, then the event finished with the failure, then ERROR
    let t = h.trace(inst);
    let tail: Vec<&str> = t.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(tail, ["fault", "event_finish failed=true", "save None"]);
    let last = h.last_save(inst);
    assert_eq!(last.host, None, "host and node cleared");
    assert!(last.changes.contains(&"host".to_string()));
    assert!(
        h.driver.container(inst.uuid()).is_none(),
        "no container left"
    );
    assert_eq!(
        *h.placement.deleted.lock().unwrap(),
        [inst.uuid().to_string()]
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_loaded_ends_in_error_with_nothing_left() {
    let h = Harness::new();
    *h.images.fail.lock().unwrap() = Some(NovaException::image_not_found("img-1"));
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_failed(&h, &inst, "Image img-1 could not be found", build_states());
    assert_eq!(h.driver_ops(&inst), ["destroy"], "no spawn, a cleanup");
    let net = h.network_calls();
    assert!(net.iter().all(|c| !c.starts_with("plug")), "{net:?}");
}

#[tokio::test]
async fn refused_options_download_no_image() {
    let h = Harness::new();
    *h.options.refuse.lock().unwrap() = Some(NovaException::build_abort(
        "x",
        "user_data option host_config.Privileged: not allowed",
    ));
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_failed(&h, &inst, "Privileged", build_states());
    assert!(h.images.ensured.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_container_that_fails_to_start_is_removed() {
    let h = Harness::new();
    exits_at_once(&h);
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_failed(&h, &inst, "exit code 3", build_states());
    assert_eq!(h.driver_ops(&inst), ["spawn", "destroy"]);
}

#[tokio::test]
async fn an_image_that_is_not_a_docker_tarball_is_refused_before_anything_runs() {
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    let mut r = h.build_request(inst.clone(), &["none"]);
    if let crate::compute::ComputeRequest::BuildAndRunInstance(b) = &mut r {
        b.image.container_format = Some("bare".into());
    }
    h.handle(r).await.unwrap();
    assert_failed(&h, &inst, "container_format is \"bare\"", build_states());
    assert!(h.images.ensured.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_instance_deleted_during_the_build_is_left_to_the_delete() {
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    // after the third save (block_device_mapping) the API deletes it, when
    // the container has started already
    *h.conductor.db_change_after.lock().unwrap() = Some((3, Some("deleting".into())));
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_eq!(h.saves(&inst), build_states()[..3].to_vec());
    assert_eq!(h.driver_ops(&inst), ["spawn", "destroy"]);
    assert!(
        h.faults(&inst).is_empty(),
        "no fault for a deleted instance"
    );
    assert!(h.driver.container(inst.uuid()).is_none());
}

#[tokio::test]
async fn a_build_of_an_instance_in_another_state_does_nothing() {
    let h = Harness::new();
    // the record says it is being deleted already; the message is stale
    let inst = h.instance(V::Building, Some(T::Deleting), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert!(h.saves(&inst).is_empty());
    assert!(h.faults(&inst).is_empty());
    // the container side started with the claim: what it made is gone again
    assert_eq!(h.driver_ops(&inst), ["spawn", "destroy"]);
    assert!(h.driver.container(inst.uuid()).is_none());
    assert!(h.placement.deleted.lock().unwrap().is_empty());
}

/// A stale build of an instance that runs here (its claim fails) leaves the
/// running container alone: the container it could not make is not its own.
#[tokio::test]
async fn a_stale_build_of_a_running_instance_leaves_its_container() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::RebootingHard));
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert!(h.saves(&inst).is_empty());
    assert_eq!(h.driver_ops(&inst), ["spawn"], "refused: the name is taken");
    assert!(h.driver.container(inst.uuid()).is_some(), "still there");
}

#[tokio::test]
async fn a_command_that_exits_after_start_is_active_then_shutoff_with_its_exit_code() {
    let h = Harness::new();
    h.driver.exit_at_start(3);
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    // no confirmation window: the build ends ACTIVE, with the container's state
    let mut want = build_states();
    want.push(s(V::Active, None, Some(&[Some(T::Spawning)])));
    assert_eq!(h.saves(&inst), want);
    assert!(h.faults(&inst).is_empty());
    assert_eq!(h.driver_ops(&inst), ["spawn"], "the container is kept");
    // the engine's event for the exit brings the power sync
    h.manager.sync_instance(inst.uuid()).await;
    let last = h.last_save(&inst);
    assert_eq!(last.vm_state.as_deref(), Some("stopped"));
    let faults = h.faults(&inst);
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert!(
        faults[0].contains("exited with code 3") && faults[0].contains("Last output: console"),
        "{faults:?}"
    );
    // and a `stop` action whose event carries the reason (what users read)
    assert!(h.trace(&inst).contains(&"action_start stop".to_string()));
    assert!(h.events(&inst).ends_with(&[
        "+compute_stop_instance".into(),
        "!compute_stop_instance".into()
    ]));
    // once stopped, a later sync adds nothing
    h.manager.sync_instance(inst.uuid()).await;
    assert_eq!(h.faults(&inst).len(), 1);
}

#[test]
fn an_exit_fault_keeps_the_code_and_the_last_lines() {
    use crate::compute::sync::exit_fault;
    let info = |code, oom| crate::virt::InstanceInfo {
        state: PowerState::Shutdown,
        internal_id: "c".into(),
        pid: None,
        status: "exited".into(),
        exit_code: code,
        oom_killed: oom,
        started_at: None,
        finished_at: None,
    };
    let e = exit_fault(&info(Some(7), false), "first\n\n  boom  \n");
    assert_eq!(
        e.message,
        "The container's command exited with code 7; the instance is stopped. Last output: first | boom"
    );
    let e = exit_fault(&info(Some(137), true), "");
    assert!(
        e.message
            .contains("code 137, killed by the kernel's OOM killer"),
        "{}",
        e.message
    );
    assert!(
        e.message.ends_with("Last output: (no output)"),
        "{}",
        e.message
    );
    // the engine missed the OOM event: the SIGKILL is still named
    let e = exit_fault(&info(Some(137), false), &"y".repeat(400));
    assert!(
        e.message.contains("code 137, killed by SIGKILL"),
        "{}",
        e.message
    );
    assert!(e.message.ends_with("yyy"), "{}", e.message);
    assert!(e.message.len() <= 255, "{}", e.message.len());
    // a long output keeps its end (where the reason is), within Nova's 255
    let long = format!("{}\nfatal: the reason é", "x".repeat(400));
    let e = exit_fault(&info(Some(1), false), &long);
    assert!(e.message.ends_with("fatal: the reason é"), "{}", e.message);
    assert!(e.message.contains("Last output: …"), "{}", e.message);
    assert!(e.message.len() <= 255, "{}", e.message.len());
    let e = exit_fault(&info(None, false), "x");
    assert!(
        e.message.contains("command stopped (exited)"),
        "{}",
        e.message
    );
}

/// A build message is acknowledged once the instance is claimed; one the
/// broker delivers again after a crash is built only if no host claimed it.
#[tokio::test]
async fn a_build_is_acknowledged_once_claimed_and_a_redelivered_one_is_not_built_twice() {
    use crate::context::Delivery;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let h = Harness::new();
    let acks = Arc::new(AtomicUsize::new(0));
    let delivery = |redelivered: bool| {
        let a = acks.clone();
        Delivery::new(redelivered, move || {
            a.fetch_add(1, Ordering::SeqCst);
        })
    };
    // first delivery: acknowledged after the claim, built
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    let mut ctx = h.ctx.clone();
    ctx.delivery = delivery(false);
    h.manager
        .handle(&ctx, h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_eq!(acks.load(Ordering::SeqCst), 1);
    assert_eq!(h.last_save(&inst).vm_state.as_deref(), Some("active"));

    // delivered again (the first life crashed after the claim): nothing done
    let saves = h.saves(&inst).len();
    ctx.delivery = delivery(true);
    h.manager
        .handle(&ctx, h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_eq!(h.saves(&inst).len(), saves, "not built twice");
    assert_eq!(h.driver_ops(&inst), ["spawn"]);

    // delivered again but never claimed (the crash came before): built
    let fresh = h.instance(V::Building, Some(T::Scheduling), None);
    ctx.delivery = delivery(true);
    h.manager
        .handle(&ctx, h.build_request(fresh.clone(), &["none"]))
        .await
        .unwrap();
    assert_eq!(h.last_save(&fresh).vm_state.as_deref(), Some("active"));
    assert_eq!(h.driver_ops(&fresh), ["spawn"]);
}

/// An image the engine lost behind our back (the image service remembered it
/// present) is made present again and the spawn tried once more.
#[tokio::test]
async fn an_image_the_engine_lost_is_made_present_again() {
    let h = Harness::new();
    h.driver.fail(
        "spawn",
        DriverError::ImageNotFound {
            image: "glance/img-1".into(),
        },
    );
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_eq!(h.last_save(&inst).vm_state.as_deref(), Some("active"));
    let image = inst.image_ref().unwrap().to_string();
    assert_eq!(
        h.images.forgotten.lock().unwrap().as_slice(),
        std::slice::from_ref(&image)
    );
    assert_eq!(h.images.ensured.lock().unwrap().last(), Some(&image));
    assert_eq!(h.driver_ops(&inst), ["spawn", "spawn"]);
}

#[tokio::test]
async fn a_build_cut_off_by_an_engine_restart_removes_its_container_once_the_engine_answers() {
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    let gone = |op| DriverError::Unreachable {
        op,
        reason: "client error (Connect): No such file or directory".into(),
    };
    h.driver.fail("spawn", gone("inspect after start"));
    // the first removal gets no answer either; the second one works
    h.driver.fail("destroy", gone("remove"));
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_failed(&h, &inst, "does not answer", build_states());
    assert_eq!(h.driver_ops(&inst), ["spawn", "destroy", "destroy"]);
    assert!(h.driver.container(inst.uuid()).is_none());
}

/// A build request as the scheduler sends it with rescheduling on: `retry`
/// in filter_properties and `alternates` hosts to try next.
fn rescheduling(
    h: &Harness,
    inst: &crate::objects::Instance,
    networks: &[&str],
    alternates: usize,
) -> ComputeRequest {
    let ComputeRequest::BuildAndRunInstance(mut req) = h.build_request(inst.clone(), networks)
    else {
        unreachable!()
    };
    let args = serde_json::json!({
        "image": {"id": "img-1", "container_format": "docker"},
        "request_spec": {"nova_object.name": "RequestSpec", "nova_object.data": {}},
        "requested_networks": {"nova_object.name": "NetworkRequestList"},
        "security_groups": ["default"],
    });
    let fp = serde_json::json!({"retry": {"num_attempts": 1, "hosts": [[HOST, HOST]]}});
    let hosts = (0..alternates)
        .map(|i| serde_json::json!({"nova_object.name": "Selection", "nova_object.data": {"service_host": format!("other-{i}")}}))
        .collect();
    req.retry = crate::compute::reschedule::Retry::new(
        fp.as_object().unwrap().clone(),
        hosts,
        args.as_object().unwrap(),
    );
    ComputeRequest::BuildAndRunInstance(req)
}

#[tokio::test]
async fn a_build_the_engine_refuses_goes_back_to_the_conductor_for_an_alternate() {
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.driver.fail(
        "spawn",
        DriverError::Unreachable {
            op: "create",
            reason: "client error (Connect): Connection refused".into(),
        },
    );
    h.handle(rescheduling(&h, &inst, &["none"], 1))
        .await
        .unwrap();
    // no fault, no ERROR: back to scheduling, with no host
    assert!(h.faults(&inst).is_empty(), "{:?}", h.faults(&inst));
    let mut want = build_states();
    want.push(s(V::Building, Some(T::Scheduling), None));
    assert_eq!(h.saves(&inst), want);
    let last = h.last_save(&inst);
    assert_eq!(last.host, None, "host and node cleared");
    // its allocations here gone before the conductor claims the alternate's
    assert_eq!(
        *h.placement.deleted.lock().unwrap(),
        [inst.uuid().to_string()]
    );
    let t = h.trace(&inst);
    let tail: Vec<&str> = t.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "save Some(\"scheduling\")",
            "cast build_instances",
            "event_finish failed=false"
        ]
    );
    let casts = h.conductor.casts.lock().unwrap().clone();
    assert_eq!(casts.len(), 1);
    let (topic, ns, method, args) = &casts[0];
    assert_eq!(
        (topic.as_str(), ns.as_deref(), method.as_str()),
        ("conductor", Some("compute_task"), "build_instances")
    );
    assert_eq!(
        args["instances"][0]["nova_object.data"]["task_state"],
        "scheduling"
    );
    assert_eq!(
        args["host_lists"][0][0]["nova_object.data"]["service_host"],
        "other-0"
    );
    assert!(args["filter_properties"]["retry"]["exc_reason"]
        .as_str()
        .unwrap()
        .contains("Connection refused"));
    assert!(
        h.driver.container(inst.uuid()).is_none(),
        "no container left here"
    );
    let sent: Vec<String> = h
        .notifier
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.event_type.clone())
        .collect();
    assert_eq!(sent, ["instance.create.start", "instance.create.error"]);
}

#[tokio::test]
async fn a_port_that_cannot_be_bound_here_is_rescheduled_and_the_ports_made_for_it_deleted() {
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    *h.network_api.fail_allocate.lock().unwrap() = Some(NovaException::nova(
        crate::exception::Class::PortBindingFailed,
        "Binding failed for port p, please check neutron logs for more information.",
        serde_json::json!({"port_id": "p"}),
    ));
    h.handle(rescheduling(
        &h,
        &inst,
        &["5f3a6c1e-0000-4000-8000-000000000001"],
        1,
    ))
    .await
    .unwrap();
    assert!(h.faults(&inst).is_empty(), "{:?}", h.faults(&inst));
    assert_eq!(h.conductor.casts.lock().unwrap().len(), 1);
    let neutron = h.neutron_calls();
    assert!(
        neutron.iter().any(|c| c.starts_with("deallocate")),
        "{neutron:?}"
    );
}

#[tokio::test]
async fn a_failure_of_the_request_or_with_no_alternate_left_ends_in_error_here() {
    // user_data the policy refuses: every host refuses it
    let h = Harness::new();
    *h.options.refuse.lock().unwrap() = Some(NovaException::build_abort(
        "x",
        "user_data option host_config.Privileged: not allowed",
    ));
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(rescheduling(&h, &inst, &["none"], 2))
        .await
        .unwrap();
    assert_failed(&h, &inst, "Privileged", build_states());
    assert!(h.conductor.casts.lock().unwrap().is_empty());
    // the engine refuses, but the alternates are used up: this host's fault
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    exits_at_once(&h);
    h.handle(rescheduling(&h, &inst, &["none"], 0))
        .await
        .unwrap();
    assert_failed(&h, &inst, "exit code 3", build_states());
    assert!(h.conductor.casts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn no_more_builds_run_at_once_than_max_concurrent_builds() {
    use std::sync::{atomic::Ordering::SeqCst, Arc};
    use std::time::Duration;
    let h = Arc::new(Harness::with_config(|c| c.max_concurrent_builds = 2));
    let gate = h.driver.hold_spawns();
    let insts: Vec<_> = (0..3)
        .map(|_| h.instance(V::Building, Some(T::Scheduling), None))
        .collect();
    let builds: Vec<_> = insts
        .iter()
        .map(|i| {
            let (h, r) = (h.clone(), h.build_request(i.clone(), &["none"]));
            tokio::spawn(async move { h.handle(r).await })
        })
        .collect();
    let t = std::time::Instant::now();
    while h.driver.spawns_held.load(SeqCst) < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the first two did not reach the spawn"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.driver.spawns_held.load(SeqCst), 2, "a third build runs");
    // the third is claimed (its message acknowledged) and waits
    assert!(
        insts.iter().all(|i| !h.saves(i).is_empty()),
        "a build not claimed"
    );
    gate.add_permits(3);
    for b in builds {
        b.await.unwrap().unwrap();
    }
    for i in &insts {
        let saves = h.saves(i);
        assert_eq!(
            saves.last(),
            Some(&s(V::Active, None, Some(&[Some(T::Spawning)]))),
            "{saves:?}"
        );
    }
}

fn trouble(h: &Harness, expecting: &str, applied: bool, times: usize) {
    *h.conductor.save_trouble.lock().unwrap() = Some(super::fakes::SaveTrouble {
        expecting: expecting.into(),
        applied,
        times,
    });
}

#[tokio::test]
async fn a_build_whose_active_save_keeps_timing_out_leaves_no_container() {
    let h = Harness::new();
    // the first try and every one after the read-back
    trouble(&h, "spawning", false, 100);
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_eq!(h.saves(&inst).last(), Some(&s(V::Error, None, None)));
    assert!(
        h.faults(&inst)[0].contains("timed out"),
        "{:?}",
        h.faults(&inst)
    );
    assert!(
        h.driver.container(inst.uuid()).is_none(),
        "the container outlived the build"
    );
    assert!(
        h.placement
            .deleted
            .lock()
            .unwrap()
            .iter()
            .any(|d| d == inst.uuid()),
        "its allocation is kept"
    );
}

#[tokio::test]
async fn saves_of_unknown_outcome_are_read_back_and_the_build_goes_on() {
    // the claim's reply lost with the connection (applied), the ACTIVE save
    // unanswered once (not applied), then the ACTIVE save applied and its
    // reply lost: each is resolved from the record, the build ends ACTIVE
    for (expecting, applied) in [
        ("scheduling", true),
        ("spawning", false),
        ("spawning", true),
    ] {
        let h = Harness::new();
        trouble(&h, expecting, applied, 1);
        let inst = h.instance(V::Building, Some(T::Scheduling), None);
        h.handle(h.build_request(inst.clone(), &["none"]))
            .await
            .unwrap();
        let saves = h.saves(&inst);
        assert_eq!(
            saves.last(),
            Some(&s(V::Active, None, Some(&[Some(T::Spawning)]))),
            "{expecting} {applied}: {saves:?}"
        );
        assert!(h.faults(&inst).is_empty(), "{expecting} {applied}");
        assert!(h.driver.container(inst.uuid()).is_some());
        let spawns = h
            .driver
            .ops
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| o == "spawn")
            .count();
        assert_eq!(spawns, 1, "{expecting} {applied}");
    }
}
