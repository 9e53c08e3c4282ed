//! The driver's metrics decorator over the fake engine: every operation timed,
//! the `instances{state}` gauge following what the operations answered.

use std::time::Duration;

use super::fakes::FakeDriver;
use crate::virt::timed::Timed;
use crate::virt::{ComputeDriver, PowerState};

fn gauge(text: &str, state: &str) -> i64 {
    let series = format!("nova_docker_instances{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

#[tokio::test]
async fn the_instances_gauge_follows_the_operations_and_each_is_timed() {
    let fake = FakeDriver::default();
    fake.insert("m-1", PowerState::Running);
    fake.insert("m-2", PowerState::Running);
    let d = Timed::new(fake);
    d.list_instances().await.unwrap();
    let t = crate::metrics::render();
    assert_eq!((gauge(&t, "running"), gauge(&t, "paused")), (2, 0));

    d.pause("m-1").await.unwrap();
    d.power_off("m-2", Duration::from_secs(1)).await.unwrap();
    let t = crate::metrics::render();
    assert_eq!(
        (
            gauge(&t, "running"),
            gauge(&t, "paused"),
            gauge(&t, "shutdown")
        ),
        (0, 1, 1)
    );
    // a listing keeps the paused one paused (it is "running" to the engine)
    d.list_instances().await.unwrap();
    assert_eq!(gauge(&crate::metrics::render(), "paused"), 1);

    d.destroy("m-2", Duration::from_secs(1)).await.unwrap();
    assert!(d.get_info("m-2").await.is_err());
    let t = crate::metrics::render();
    assert_eq!((gauge(&t, "paused"), gauge(&t, "shutdown")), (1, 0));
    assert!(
        t.contains(r#"nova_docker_docker_operation_duration_seconds_count{operation="pause",outcome="ok"}"#)
            && t.contains(r#"nova_docker_docker_operation_duration_seconds_count{operation="get_info",outcome="error"}"#),
        "{t}"
    );
}
