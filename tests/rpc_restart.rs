//! RabbitMQ restarts under a running server and client. In its own test binary
//! because it disturbs every connection to the broker (cargo runs test binaries
//! one after another).

mod common;
mod rpc_support;

use std::time::Duration;

use nova_docker::context::RequestContext;
use nova_docker::rpc::{RpcClient, RpcError, Target};
use rpc_support::{ctxt, py_client, rabbitmqctl, OurServer, PyServer, Vhost};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq (restarted by the test) and the python venv; run by devstack/run-tests.sh"]
async fn server_and_client_survive_a_broker_restart() {
    let vh = Vhost::new();
    let h = format!(
        "nd-restart-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let py_h = format!("py-{h}");
    let mut server = OurServer::start(vh.config(), &h, &["compute"]).await;
    let py = PyServer::start(&vh.url, "conductor", &py_h, None).await;
    let client = RpcClient::connect(vh.config()).await.expect("client");
    let ctx = RequestContext::admin();
    let conductor = Target::new("conductor", "3.0");

    // a call outstanding when the broker goes away fails at once, not at its timeout
    let outstanding = tokio::spawn({
        let client = client.clone();
        let ctx = ctx.clone();
        let t = conductor.clone();
        async move {
            client
                .call_with_timeout(
                    &ctx,
                    &t,
                    "slow",
                    json!({"secs": 30}).as_object().cloned().unwrap_or_default(),
                    Duration::from_secs(120),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["stop_app"]);
    let r = tokio::time::timeout(Duration::from_secs(30), outstanding).await;
    rabbitmqctl(&["start_app"]);
    match r {
        Ok(Ok(Err(RpcError::ConnectionLost(why)))) => assert!(!why.is_empty()),
        other => panic!("expected ConnectionLost for the outstanding call, got {other:?}"),
    }

    // our server is back within 15 s of the broker
    server.wait_ready_within(2, Duration::from_secs(15)).await;
    let (c, _) = ctxt("u", "p");
    let r = py_client(
        &vh.url,
        json!([{"topic": "compute", "server": h, "version": "6.0", "method": "echo", "args": {"value": "after restart"},
                "ctxt": c, "timeout": 15}]),
    )
    .await;
    assert_eq!(r[0], json!({"ok": "after restart"}));

    // and our client calls again once the Python server is back too
    let mut last = None;
    for _ in 0..6 {
        match client
            .call_with_timeout(
                &ctx,
                &conductor,
                "echo",
                json!({"value": 1}).as_object().cloned().unwrap_or_default(),
                Duration::from_secs(10),
            )
            .await
        {
            Ok(v) => {
                last = Some(Ok(v));
                break;
            }
            Err(e) => last = Some(Err(e)),
        }
    }
    match last {
        Some(Ok(v)) => assert_eq!(v["value"], 1),
        other => panic!("client call after restart: {other:?}"),
    }
    client.close().await;
    server.shutdown().await;
    py.stop().await;
}
