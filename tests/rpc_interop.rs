//! Our RPC server and client against real RabbitMQ and real Python
//! oslo.messaging 18.3.1 peers. Each test has its own vhost.

mod common;
mod rpc_support;

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use nova_docker::context::RequestContext;
use nova_docker::rpc::connection::message_properties;
use nova_docker::rpc::envelope::{envelope, ReplyFrame};
use nova_docker::rpc::{RpcClient, RpcError, Target};
use rpc_support::{ctxt, py_client, py_client_mode, OurServer, PyServer, Vhost};
use serde_json::{json, Map, Value};

fn host() -> String {
    format!(
        "nd-host-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn python_client_calls_our_server() {
    let vh = Vhost::new();
    let h = host();
    let server = OurServer::start(vh.config(), &h, &["compute", "compute-alt"]).await;
    let (c, _) = ctxt("u1", "p1");
    let uuid = uuid::Uuid::new_v4().to_string();
    let calls = json!([
        {"topic": "compute", "server": h, "version": "6.0", "method": "echo", "args": {"value": {"a": [1, "é"]}}, "ctxt": c},
        {"topic": "compute", "server": h, "version": "6.0", "method": "no_such_thing", "args": {}, "ctxt": c},
        {"topic": "compute", "server": h, "version": "6.0", "method": "fail", "args": {"instance_uuid": uuid}, "ctxt": c},
        {"topic": "compute", "server": h, "version": "7.0", "method": "echo", "args": {"value": 1}, "ctxt": c},
        {"topic": "compute", "server": h, "version": "6.6", "method": "echo", "args": {"value": 1}, "ctxt": c},
        {"topic": "compute", "server": h, "version": "6.0", "method": "_private", "args": {}, "ctxt": c},
        {"topic": "compute", "server": h, "namespace": "baseapi", "version": "1.1", "method": "ping", "args": {"arg": "1.21 GigaWatts"}, "ctxt": c},
        {"topic": "compute-alt", "server": h, "version": "6.5", "method": "echo", "args": {"value": "alt"}, "ctxt": c},
        {"topic": "compute", "version": "6.0", "method": "echo", "args": {"value": "shared queue"}, "ctxt": c}
    ]);
    let r = py_client(&vh.url, calls).await;
    assert_eq!(r[0], json!({"ok": {"a": [1, "é"]}}));

    let e = &r[1]["error"];
    assert_eq!(e["exc_type"], "NoSuchMethod", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Endpoint does not support RPC method no_such_thing"),
        "{e}"
    );

    let e = &r[2]["error"];
    assert!(
        e["mro"]
            .as_array()
            .unwrap()
            .contains(&json!("nova.exception.InstanceNotFound")),
        "{e}"
    );
    assert_eq!(e["kwargs"]["instance_id"], json!(uuid), "{e}");
    assert_eq!(e["kwargs"]["code"], 404, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("Instance {uuid} could not be found.")),
        "{e}"
    );

    for i in [3, 4] {
        let e = &r[i]["error"];
        assert_eq!(e["exc_type"], "UnsupportedVersion", "{e}");
    }
    assert_eq!(r[5]["error"]["exc_type"], "NoSuchMethod", "{}", r[5]);
    assert_eq!(
        r[6],
        json!({"ok": {"service": "compute", "arg": "1.21 GigaWatts"}})
    );
    assert_eq!(r[7], json!({"ok": "alt"}));
    assert_eq!(r[8], json!({"ok": "shared queue"}));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn python_casts_reach_our_handlers_with_context() {
    let vh = Vhost::new();
    let h = host();
    let mut server = OurServer::start(vh.config(), &h, &["compute"]).await;
    let (c1, req1) = ctxt("cast-user", "cast-project");
    let (c2, req2) = ctxt("fan-user", "fan-project");
    py_client(
        &vh.url,
        json!([
            {"topic": "compute", "server": h, "cast": true, "version": "6.0", "method": "record", "args": {"n": 1}, "ctxt": c1},
            {"topic": "compute", "fanout": true, "version": "6.0", "method": "record", "args": {"n": 2}, "ctxt": c2}
        ]),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let s = tokio::time::timeout(Duration::from_secs(30), server.seen.recv())
            .await
            .expect("cast arrives")
            .expect("channel open");
        got.push(s);
    }
    got.sort_by_key(|s| s.args["n"].as_i64());
    assert_eq!(got[0].ctx.user_id.as_deref(), Some("cast-user"));
    assert_eq!(got[0].ctx.project_id.as_deref(), Some("cast-project"));
    assert_eq!(got[0].ctx.request_id.as_deref(), Some(req1.as_str()));
    assert_eq!(got[0].ctx.roles, vec!["member"]);
    assert_eq!(got[1].ctx.user_id.as_deref(), Some("fan-user"));
    assert_eq!(got[1].ctx.project_id.as_deref(), Some("fan-project"));
    assert_eq!(got[1].ctx.request_id.as_deref(), Some(req2.as_str()));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn our_client_calls_python_conductor() {
    let vh = Vhost::new();
    let h = host();
    let py = PyServer::start(&vh.url, "conductor", &h, None).await;
    let client = RpcClient::connect(vh.config())
        .await
        .expect("client connects");
    assert!(vh.queues().iter().any(|q| q == client.reply_queue()));
    let mut ctx = RequestContext::admin();
    ctx.user_id = Some("rust-user".into());
    let target = Target::new("conductor", "3.0");

    let r = client
        .call(&ctx, &target, "echo", args(json!({"value": "hello"})))
        .await
        .expect("echo");
    assert_eq!(r["value"], "hello");
    assert_eq!(r["user_id"], "rust-user");
    assert_eq!(r["request_id"], json!(ctx.request_id));

    // to the server's own queue too
    let r = client
        .call(
            &ctx,
            &target.clone().server(&h),
            "echo",
            args(json!({"value": 2})),
        )
        .await
        .expect("echo to server");
    assert_eq!(r["value"], 2);

    let uuid = uuid::Uuid::new_v4().to_string();
    match client
        .call(&ctx, &target, "fail", args(json!({"instance_uuid": uuid})))
        .await
    {
        Err(RpcError::Remote(e)) => {
            assert!(e.is("nova.exception", "InstanceNotFound"), "{e:?}");
            assert_eq!(e.kwargs["instance_id"], json!(uuid));
            assert_eq!(e.message, format!("Instance {uuid} could not be found."));
        }
        other => panic!("expected a remote InstanceNotFound, got {other:?}"),
    }

    match client
        .call(
            &ctx,
            &Target::new("conductor", "3.0"),
            "no_such",
            Map::new(),
        )
        .await
    {
        Err(RpcError::Remote(e)) => assert!(
            e.is("oslo_messaging.rpc.dispatcher", "NoSuchMethod"),
            "{e:?}"
        ),
        other => panic!("expected NoSuchMethod, got {other:?}"),
    }

    match client
        .call_with_timeout(
            &ctx,
            &target,
            "slow",
            args(json!({"secs": 6})),
            Duration::from_secs(2),
        )
        .await
    {
        Err(RpcError::Timeout { method, .. }) => assert_eq!(method, "slow"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // nobody serves this topic at all
    match client
        .call_with_timeout(
            &ctx,
            &Target::new("nobody-here", "3.0"),
            "echo",
            Map::new(),
            Duration::from_secs(1),
        )
        .await
    {
        Err(RpcError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // a cast is accepted by the broker
    client
        .cast(&ctx, &target, "echo", args(json!({"value": "cast"})))
        .await
        .expect("cast");
    client.close().await;
    py.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn our_client_and_server_talk_and_heartbeat() {
    let vh = Vhost::new();
    let h = host();
    let server = OurServer::start(vh.config(), &h, &["compute"]).await;
    let client = RpcClient::connect(vh.config()).await.expect("client");
    let ctx = RequestContext::admin();
    let t = Target::new("compute", "6.0").server(&h);
    // a slow call and a fast one at once: the fast one is not held up
    let slow = tokio::spawn({
        let client = client.clone();
        let ctx = ctx.clone();
        let t = t.clone();
        async move {
            client
                .call(&ctx, &t, "sleep", args(json!({"secs": 5})))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fast = client
        .call(&ctx, &t, "echo", args(json!({"value": "fast"})))
        .await;
    assert_eq!(fast.expect("fast"), json!("fast"));
    assert!(!slow.is_finished(), "the fast call waited for the slow one");
    assert_eq!(slow.await.expect("join").expect("slow"), json!("slept"));
    // a Python caller with a call-monitor timeout of 2 s stays alive through a
    // 5 s call only thanks to our heartbeats
    let (c, _) = ctxt("u", "p");
    let r = py_client(
        &vh.url,
        json!([{"topic": "compute", "server": h, "version": "6.0", "method": "sleep", "args": {"secs": 5},
                "ctxt": c, "call_monitor_timeout": 2, "timeout": 30},
               {"topic": "compute", "server": h, "version": "6.0", "method": "sleep", "args": {"secs": 5},
                "ctxt": c, "timeout": 2}]),
    )
    .await;
    assert_eq!(r[0], json!({"ok": "slept"}));
    assert_eq!(r[1]["error"]["class"], "MessagingTimeout", "{}", r[1]);
    // a graceful stop lets a running handler finish and send its reply
    let running = tokio::spawn({
        let client = client.clone();
        let ctx = ctx.clone();
        let t = t.clone();
        async move {
            client
                .call(&ctx, &t, "sleep", args(json!({"secs": 2})))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.shutdown().await;
    assert_eq!(
        running.await.expect("join").expect("reply after stop"),
        json!("slept")
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn garbage_gets_failures_or_warnings_and_serving_goes_on() {
    let vh = Vhost::new();
    let h = host();
    let server = OurServer::start(vh.config(), &h, &["compute"]).await;
    let conn = lapin::Connection::connect(
        &vh.url.replacen("rabbit://", "amqp://", 1),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("raw connection");
    let ch = conn.create_channel().await.expect("channel");
    let reply_q = format!("reply_{}", uuid::Uuid::new_v4().simple());
    ch.queue_declare(
        &reply_q,
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("reply queue");
    let mut replies = ch
        .basic_consume(
            &reply_q,
            "",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let rk = format!("compute.{h}");
    let call_inner = |extra: &str, id: &str| {
        format!(r#"{{"_msg_id": "{id}", "_reply_q": "{reply_q}", "_unique_id": "{id}"{extra}}}"#)
    };
    let bodies: Vec<(Vec<u8>, Option<&str>)> = vec![
        (b"not json at all".to_vec(), None),
        (b"\xff\xfe\x00".to_vec(), None),
        (b"[1, 2]".to_vec(), None),
        (
            br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#.to_vec(),
            None,
        ),
        (
            format!(
                r#"{{"oslo.version": "3.0", "oslo.message": {}}}"#,
                serde_json::to_string(&call_inner("", "m1")).unwrap_or_default()
            )
            .into_bytes(),
            Some("m1"),
        ),
        (envelope(&call_inner(r#", "args": {}"#, "m2")), Some("m2")),
        (
            envelope(&call_inner(r#", "method": "echo", "args": [1]"#, "m3")),
            Some("m3"),
        ),
        (envelope(&call_inner(r#", "method": 7"#, "m4")), Some("m4")),
        (
            envelope(&call_inner(
                r#", "method": "unknown_method", "version": "6.0", "args": {}"#,
                "m5",
            )),
            Some("m5"),
        ),
        (
            envelope(r#"{"method": "unknown_cast", "version": "6.0", "args": {}}"#),
            None,
        ),
        // the same message twice: the repeat of a _unique_id is dropped
        (
            envelope(&call_inner(
                r#", "method": "echo", "version": "6.0", "args": {"value": 6}"#,
                "m6",
            )),
            Some("m6"),
        ),
        (
            envelope(&call_inner(
                r#", "method": "echo", "version": "6.0", "args": {"value": 6}"#,
                "m6",
            )),
            None,
        ),
    ];
    let mut expected = Vec::new();
    for (body, id) in &bodies {
        ch.basic_publish(
            "nova",
            &rk,
            BasicPublishOptions::default(),
            body,
            message_properties(None),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
        if let Some(id) = id {
            expected.push(id.to_string());
        }
    }
    let mut got = std::collections::HashMap::new();
    while got.len() < expected.len() {
        let d = tokio::time::timeout(Duration::from_secs(20), replies.next())
            .await
            .expect("a failure reply for every malformed call")
            .expect("stream open")
            .expect("delivery");
        let f = ReplyFrame::decode(&d.data).expect("our reply decodes");
        got.insert(f.msg_id.clone(), f);
    }
    // a duplicate reply would have come before the answer to this later call
    let r = py_client(
        &vh.url,
        json!([{"topic": "compute", "server": h, "version": "6.0", "method": "echo", "args": {"value": "x"}, "ctxt": ctxt("u", "p").0}]),
    )
    .await;
    assert_eq!(r[0], json!({"ok": "x"}));
    let extra = tokio::time::timeout(Duration::from_secs(1), replies.next()).await;
    assert!(extra.is_err(), "unexpected extra reply: {extra:?}");
    assert!(
        got.contains_key("m6"),
        "{:?}",
        got.keys().collect::<Vec<_>>()
    );
    assert_eq!(got["m6"].result, json!(6));
    assert!(got["m6"].failure.is_none());
    for id in expected.iter().filter(|i| *i != "m6") {
        let f = &got[id];
        assert!(f.ending, "{f:?}");
        let failure: Value = serde_json::from_str(f.failure.as_deref().expect("a failure"))
            .expect("failure is JSON");
        for k in ["class", "module", "message", "tb", "args", "kwargs"] {
            assert!(failure.get(k).is_some(), "{k} missing in {failure}");
        }
        match id.as_str() {
            "m1" => assert_eq!(failure["class"], "UnsupportedRpcEnvelopeVersion"),
            "m5" => assert_eq!(failure["class"], "NoSuchMethod"),
            _ => assert_eq!(failure["class"], "ValueError", "{failure}"),
        }
    }
    // and the server still serves a Python call
    let (c, _) = ctxt("u", "p");
    let r = py_client(
        &vh.url,
        json!([{"topic": "compute", "server": h, "version": "6.0", "method": "echo", "args": {"value": "still here"}, "ctxt": c}]),
    )
    .await;
    assert_eq!(r[0], json!({"ok": "still here"}));
    let _ = conn.close(200, "bye").await;
    server.shutdown().await;
}

async fn coexist(mode: &str) {
    let vh = Vhost::new();
    let mut cfg = vh.config();
    match mode {
        "durable" => cfg.amqp_durable_queues = true,
        _ => cfg.rabbit_quorum_queue = true,
    }
    let topics = "compute,compute-alt";
    let py_host = host();
    // Python first, then us, then Python again: nobody gets a 406
    let py1 = PyServer::start(&vh.url, topics, &py_host, Some(mode)).await;
    let h = host();
    let server = OurServer::start(cfg.clone(), &h, &["compute", "compute-alt"]).await;
    let py_host2 = host();
    let py2 = PyServer::start(&vh.url, topics, &py_host2, Some(mode)).await;
    let queues = vh.queues();
    for q in [
        "compute",
        "compute-alt",
        &format!("compute.{h}"),
        &format!("compute-alt.{py_host}"),
    ] {
        assert!(queues.iter().any(|x| x == q), "{q} missing in {queues:?}");
    }
    let (c, _) = ctxt("u", "p");
    let r = py_client_mode(
        &vh.url,
        json!([{"topic": "compute", "server": h, "version": "6.0", "method": "echo", "args": {"value": mode}, "ctxt": c}]),
        Some(mode),
    )
    .await;
    assert_eq!(r[0], json!({"ok": mode}));
    let client = RpcClient::connect(cfg).await.expect("client");
    let r = client
        .call(
            &RequestContext::admin(),
            &Target::new("compute-alt", "3.0").server(&py_host2),
            "echo",
            args(json!({"value": 5})),
        )
        .await
        .expect("call to python");
    assert_eq!(r["value"], 5);
    client.close().await;
    server.shutdown().await;
    py1.stop().await;
    py2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn durable_queues_coexist_with_python() {
    coexist("durable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn quorum_queues_coexist_with_python() {
    coexist("quorum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn a_refused_declare_is_retried_and_shutdown_still_works() {
    let vh = Vhost::new();
    // Python made the queues durable; we are configured non-durable: RabbitMQ
    // refuses our declare (406). We keep retrying with back-off, never Ready.
    let py = PyServer::start(&vh.url, "compute", &host(), Some("durable")).await;
    let (tx, _seen) = tokio::sync::mpsc::unbounded_channel();
    let dispatcher = nova_docker::rpc::Dispatcher::new("compute")
        .with(std::sync::Arc::new(rpc_support::TestEndpoint { seen: tx }));
    let server = nova_docker::rpc::RpcServer::new(vh.config(), &host(), &["compute"], dispatcher)
        .expect("server");
    let mut state = server.state();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(server.run(stop_rx));
    let ready = tokio::time::timeout(
        Duration::from_secs(4),
        state.wait_for(|s| matches!(s, nova_docker::rpc::ServerState::Ready { .. })),
    )
    .await;
    assert!(
        ready.is_err(),
        "a server with conflicting queue flags must not get ready"
    );
    assert!(!task.is_finished());
    stop.send_replace(true);
    let r = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("stops");
    assert!(matches!(r, Ok(Ok(()))), "{r:?}");
    py.stop().await;

    // The other way round, oslo falls back to non-durable, and so do we.
    let vh2 = Vhost::new();
    let py = PyServer::start(&vh2.url, "compute", &host(), None).await;
    let mut cfg = vh2.config();
    cfg.amqp_durable_queues = true;
    let h = host();
    let server = OurServer::start(cfg, &h, &["compute"]).await;
    let r = py_client(
        &vh2.url,
        json!([{"topic": "compute", "server": h, "version": "6.0", "method": "echo", "args": {"value": "fallback"}, "ctxt": ctxt("u", "p").0}]),
    )
    .await;
    assert_eq!(r[0], json!({"ok": "fallback"}));
    let mut ccfg = vh2.config();
    ccfg.amqp_durable_queues = true;
    let client = RpcClient::connect(ccfg).await.expect("client");
    let v = client
        .call(
            &RequestContext::admin(),
            &Target::new("compute", "6.0").server(&h),
            "echo",
            args(json!({"value": 3})),
        )
        .await
        .expect("durable-configured client falls back to the non-durable exchange");
    assert_eq!(v, json!(3));
    client.close().await;
    server.shutdown().await;
    py.stop().await;
}

/// A cast whose handler acknowledges it when its work started (a build) is
/// not lost when the server dies before that: the broker hands it to the next
/// server, marked redelivered. One whose handler finished is not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the python venv; run by devstack/run-tests.sh"]
async fn a_cast_cut_off_before_it_started_is_delivered_again() {
    let vh = Vhost::new();
    let h = format!(
        "nd-late-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let late = ["hang", "record"];
    let mut first =
        OurServer::start_acking_when_started(vh.config(), &h, &["compute"], &late).await;
    let (c, _) = ctxt("late-user", "late-project");
    py_client(
        &vh.url,
        json!([
            {"topic": "compute", "server": h, "cast": true, "version": "6.0", "method": "record", "args": {"n": 1}, "ctxt": c},
            {"topic": "compute", "server": h, "cast": true, "version": "6.0", "method": "hang", "args": {"n": 2}, "ctxt": c},
        ]),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let s = tokio::time::timeout(Duration::from_secs(15), first.seen.recv())
            .await
            .expect("cast arrives")
            .expect("seen");
        assert!(!s.ctx.delivery.redelivered, "{}", s.method);
        got.push(s.method);
    }
    got.sort();
    assert_eq!(got, ["hang", "record"]);
    // the server dies with `hang` running: its connection goes, unacknowledged
    first.task.abort();
    let _ = first.task.await;
    let mut second =
        OurServer::start_acking_when_started(vh.config(), &h, &["compute"], &late).await;
    let again = tokio::time::timeout(Duration::from_secs(30), second.seen.recv())
        .await
        .expect("the cut-off cast is delivered again")
        .expect("seen");
    assert_eq!(again.method, "hang");
    assert_eq!(again.args.get("n"), Some(&json!(2)));
    assert!(again.ctx.delivery.redelivered, "marked redelivered");
    assert_eq!(again.ctx.user_id.as_deref(), Some("late-user"));
    // `record` finished in the first life: it does not come back
    let more = tokio::time::timeout(Duration::from_secs(3), second.seen.recv()).await;
    assert!(more.is_err(), "delivered again: {more:?}");
    second.task.abort();
}
