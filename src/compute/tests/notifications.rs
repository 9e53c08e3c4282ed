//! Versioned notifications around the operations, as Nova sends them.

use super::harness::*;
use crate::compute::{ComputeRequest, PowerOp};
use crate::exception::NovaException;
use crate::objects::{TaskState as T, VmState as V};

#[tokio::test]
async fn a_build_sends_create_start_and_end_with_the_instance_as_it_is_then() {
    let h = Harness::new();
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_eq!(
        h.notifier.events(),
        ["instance.create.start", "instance.create.end"]
    );
    let sent = h.notifier.sent.lock().unwrap().clone();
    let end = &sent[1].payload;
    assert_eq!(end["nova_object.name"], "InstanceCreatePayload");
    assert_eq!(end["nova_object.version"], "1.13");
    let d = &end["nova_object.data"];
    assert_eq!(d["uuid"], inst.uuid());
    assert_eq!(d["state"], "active");
    assert_eq!(d["power_state"], "running");
    assert!(d["task_state"].is_null(), "{d}");
    assert_eq!(d["host"], HOST);
    assert_eq!(d["flavor"]["nova_object.name"], "FlavorPayload");
    assert!(d["fault"].is_null());
    // at the start it was still building
    assert_eq!(sent[0].payload["nova_object.data"]["state"], "building");
}

#[tokio::test]
async fn a_failed_build_sends_create_error_with_its_fault() {
    let h = Harness::new();
    *h.images.fail.lock().unwrap() = Some(NovaException::image_not_found("img-1"));
    let inst = h.instance(V::Building, Some(T::Scheduling), None);
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert_eq!(
        h.notifier.events(),
        ["instance.create.start", "instance.create.error"]
    );
    let sent = h.notifier.sent.lock().unwrap().clone();
    assert_eq!(sent[1].priority, crate::notifications::Priority::Error);
    let fault = &sent[1].payload["nova_object.data"]["fault"];
    assert_eq!(fault["nova_object.name"], "ExceptionPayload");
    assert_eq!(fault["nova_object.data"]["exception"], "ImageNotFound");
}

#[tokio::test]
async fn a_stale_build_sends_nothing_and_a_stop_sends_power_off() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::RebootingHard));
    h.handle(h.build_request(inst.clone(), &["none"]))
        .await
        .unwrap();
    assert!(h.notifier.events().is_empty(), "{:?}", h.notifier.events());
    let inst = h.running(V::Active, Some(T::PoweringOff));
    h.handle(ComputeRequest::Power(PowerOp::Stop, inst.clone()))
        .await
        .unwrap();
    assert_eq!(
        h.notifier.events(),
        ["instance.power_off.start", "instance.power_off.end"]
    );
    let sent = h.notifier.sent.lock().unwrap().clone();
    assert_eq!(
        sent[1].payload["nova_object.data"]["power_state"],
        "shutdown"
    );
    assert_eq!(sent[1].payload["nova_object.name"], "InstanceActionPayload");
}

#[tokio::test]
async fn the_addresses_of_network_info_are_ip_payloads() {
    let h = Harness::new();
    let mut inst = h.running(V::Active, None);
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/network/two_vifs.json");
    let nw = crate::network::NetworkInfo::parse(&std::fs::read_to_string(p).unwrap()).unwrap();
    let vifs = nw.vifs().to_vec();
    inst.set_network_info_saved(nw);
    let ctx = h.ctx.clone();
    let v = crate::notifications::payload(&ctx, "instance.power_off", &inst, None, None);
    let ips = v["nova_object.data"]["ip_addresses"]
        .as_array()
        .unwrap()
        .clone();
    let want: usize = vifs
        .iter()
        .map(|vif| {
            vif.network
                .as_ref()
                .map_or(0, |n| n.fixed_addresses().len())
        })
        .sum();
    assert!(want > 0);
    assert_eq!(ips.len(), want, "{ips:?}");
    let first = &ips[0]["nova_object.data"];
    assert_eq!(ips[0]["nova_object.name"], "IpPayload");
    assert_eq!(first["port_uuid"], vifs[0].id.as_str());
    assert_eq!(first["mac"], vifs[0].address.as_deref().unwrap());
    assert!(first["version"] == 4 || first["version"] == 6, "{first}");
    assert!(
        first["label"].as_str().is_some_and(|l| !l.is_empty()),
        "{first}"
    );
}

#[tokio::test]
async fn a_snapshot_names_its_image() {
    use crate::compute::request::{SnapshotKind, SnapshotRequest};
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::ImageSnapshotPending));
    h.handle(ComputeRequest::Snapshot(SnapshotRequest {
        instance: inst.clone(),
        image_id: "6b5f6a0e-9d0e-4a8e-9a3e-1c2d3e4f5a6b".into(),
        kind: SnapshotKind::Snapshot,
    }))
    .await
    .unwrap();
    assert_eq!(
        h.notifier.events(),
        ["instance.snapshot.start", "instance.snapshot.end"]
    );
    let sent = h.notifier.sent.lock().unwrap().clone();
    assert_eq!(
        sent[1].payload["nova_object.name"],
        "InstanceActionSnapshotPayload"
    );
    assert_eq!(
        sent[1].payload["nova_object.data"]["snapshot_image_id"],
        "6b5f6a0e-9d0e-4a8e-9a3e-1c2d3e4f5a6b"
    );
}

#[tokio::test]
async fn a_rebuild_sends_exists_then_rebuild_start_and_end() {
    let h = Harness::new();
    let inst = h.running(V::Active, Some(T::Rebuilding));
    h.handle(super::lifecycle::rebuild(&inst)).await.unwrap();
    assert_eq!(
        h.notifier.events(),
        [
            "instance.exists",
            "instance.rebuild.start",
            "instance.rebuild.end"
        ]
    );
    let sent = h.notifier.sent.lock().unwrap().clone();
    let exists = &sent[0].payload;
    assert_eq!(exists["nova_object.name"], "InstanceExistsPayload");
    assert_eq!(exists["nova_object.version"], "2.1");
    let d = &exists["nova_object.data"];
    assert!(
        d.get("fault").is_none(),
        "an InstancePayload has no fault: {d}"
    );
    let period = &d["audit_period"]["nova_object.data"];
    // the current month so far (Nova's default period)
    let begin = period["audit_period_beginning"].as_str().unwrap();
    assert!(begin.ends_with("-01T00:00:00Z"), "{begin}");
    assert!(period["audit_period_ending"].as_str().unwrap() > begin);
    assert_eq!(
        sent[1].payload["nova_object.name"],
        "InstanceActionRebuildPayload"
    );
    assert_eq!(sent[2].payload["nova_object.version"], "1.10");
    assert!(sent[2].payload["nova_object.data"]["trusted_image_certificates"].is_null());
}

#[test]
fn audit_periods_begin_where_nova_says() {
    use crate::notifications::AuditPeriod as P;
    use chrono::{TimeZone, Utc};
    let t = |y, mo, d, h, mi| Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
    let now = t(2026, 1, 10, 5, 20);
    assert_eq!(P::parse("month"), Some(P::Month(1)));
    assert_eq!(P::Month(1).current_start(now), t(2026, 1, 1, 0, 0));
    // month@15 before the 15th: the period began on December 15th
    assert_eq!(
        P::parse("month@15").unwrap().current_start(now),
        t(2025, 12, 15, 0, 0)
    );
    assert_eq!(
        P::parse("day").unwrap().current_start(now),
        t(2026, 1, 10, 0, 0)
    );
    assert_eq!(
        P::parse("day@18").unwrap().current_start(now),
        t(2026, 1, 9, 18, 0)
    );
    assert_eq!(
        P::parse("hour@30").unwrap().current_start(now),
        t(2026, 1, 10, 4, 30)
    );
    assert_eq!(
        P::parse("year@3").unwrap().current_start(now),
        t(2025, 3, 1, 0, 0)
    );
    assert_eq!(
        P::parse("year").unwrap().current_start(now),
        t(2026, 1, 1, 0, 0)
    );
    // a period that begins right now began a period ago (Nova's `end >= now`)
    assert_eq!(
        P::Day(5).current_start(t(2026, 1, 10, 5, 0)),
        t(2026, 1, 9, 5, 0)
    );
    for bad in ["week", "day@24", "month@31", "hour@x", ""] {
        assert_eq!(P::parse(bad), None, "{bad}");
    }
}
