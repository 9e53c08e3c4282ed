//! The RPC framing against real captured Nova messages (tests/fixtures/rpc/,
//! captured off RabbitMQ between real Nova services), and the decoder against
//! arbitrary input. No services needed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use nova_docker::exception::NovaException;
use nova_docker::rpc::envelope::{decode_request, envelope, ReplyFrame, Request, OSLO_MESSAGE_KEY};
use nova_docker::rpc::failure::{serialize_failure, RemoteError};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn fixtures(dir: &str) -> Vec<(PathBuf, Value)> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rpc")
        .join(dir);
    let mut v: Vec<_> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: Value =
                serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("fixture JSON");
            (p, v)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn inner(body: &[u8]) -> Map<String, Value> {
    let outer: Value = serde_json::from_slice(body).expect("body JSON");
    let text = outer[OSLO_MESSAGE_KEY]
        .as_str()
        .expect("oslo.message string");
    serde_json::from_str::<Value>(text)
        .expect("inner JSON")
        .as_object()
        .cloned()
        .expect("object")
}

fn keys(m: &Map<String, Value>) -> BTreeSet<String> {
    m.keys().cloned().collect()
}

#[test]
fn every_compute_bound_capture_decodes_into_a_typed_request() {
    let all = fixtures("compute-bound");
    assert!(all.len() >= 17, "fixtures missing: {}", all.len());
    for (path, fx) in all {
        let name = path.display();
        let om = fx["oslo_message"].as_object().expect("oslo_message");
        let body = serde_json::to_vec(&fx["body"]).expect("body");
        let req = decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(json!(req.method), om["method"], "{name}");
        assert_eq!(json!(req.version), om["version"], "{name}");
        assert_eq!(Value::Object(req.args.clone()), om["args"], "{name}");
        assert_eq!(
            req.namespace.as_ref().map(|n| json!(n)),
            om.get("namespace").cloned(),
            "{name}"
        );
        assert_eq!(json!(req.context.user_id), om["_context_user_id"], "{name}");
        assert_eq!(
            json!(req.context.project_id),
            om["_context_project_id"],
            "{name}"
        );
        assert_eq!(
            json!(req.context.request_id),
            om["_context_request_id"],
            "{name}"
        );
        assert_eq!(json!(req.context.roles), om["_context_roles"], "{name}");
        assert_eq!(json!(req.unique_id), om["_unique_id"], "{name}");
        assert_eq!(req.is_call(), om.contains_key("_msg_id"), "{name}");
        if let Some(rt) = &req.reply_to {
            assert_eq!(json!(rt.msg_id), om["_msg_id"], "{name}");
            assert_eq!(json!(rt.reply_q), om["_reply_q"], "{name}");
        }
        assert_eq!(fx["exchange"], "nova", "{name}");
        assert_eq!(
            fx["properties"]["content_type"], "application/json",
            "{name}"
        );

        // what we would send for the same request has the same keys and values
        let ours = inner(&req.encode());
        assert_eq!(keys(&ours), keys(om), "{name}: key sets differ");
        for (k, v) in om {
            assert_eq!(&ours[k], v, "{name}: {k}");
        }
    }
}

#[test]
fn a_captured_call_re_encodes_with_the_same_envelope_and_leading_fields() {
    // Keys of `args` and context come out in Python's insertion order only if we
    // keep it; the envelope and separators must match exactly.
    let all = fixtures("compute-bound");
    let (_, fx) = all
        .iter()
        .find(|(p, _)| p.ends_with("get_console_output.json"))
        .expect("get_console_output fixture");
    let captured = fx["body"][OSLO_MESSAGE_KEY].as_str().expect("text");
    let req = decode_request(&serde_json::to_vec(&fx["body"]).expect("body")).expect("decodes");
    let ours = String::from_utf8(req.encode()).expect("utf8");
    let ours_outer: Value = serde_json::from_str(&ours).expect("json");
    let ours_inner = ours_outer[OSLO_MESSAGE_KEY].as_str().expect("text");
    // same leading fields, in the same order and spelling
    let prefix_end = captured.find("\"_context_").expect("context keys");
    let ours_prefix_end = ours_inner.find("\"_context_").expect("context keys");
    let strip_args = |s: &str| -> String {
        let a = s.find("\"args\": ").unwrap_or(0);
        let v = s.find(", \"version\"").unwrap_or(s.len());
        format!("{}{}", &s[..a], &s[v..])
    };
    assert_eq!(
        strip_args(&ours_inner[..ours_prefix_end]),
        strip_args(&captured[..prefix_end])
    );
    assert!(ours.starts_with("{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": "));
}

#[test]
fn our_replies_have_the_shape_of_captured_replies() {
    let mut seen = 0;
    for dir in ["compute-bound", "conductor-bound"] {
        for (path, fx) in fixtures(dir) {
            let Some(reply) = fx.get("reply") else {
                continue;
            };
            seen += 1;
            let name = path.display();
            let captured = reply["oslo_message"]
                .as_object()
                .expect("reply oslo_message");
            let msg_id = captured["_msg_id"].as_str().expect("msg id");
            let frame = ReplyFrame::result(msg_id, captured["result"].clone());
            let ours = inner(&frame.encode());
            assert_eq!(keys(&ours), keys(captured), "{name}");
            for k in ["result", "failure", "ending", "_msg_id"] {
                assert_eq!(ours[k], captured[k], "{name}: {k}");
            }
            assert_eq!(
                ours["_unique_id"].as_str().map(str::len),
                Some(32),
                "{name}"
            );
            // and the reply we receive from Python decodes
            let back = ReplyFrame::decode(&serde_json::to_vec(&reply["body"]).expect("body"))
                .expect("decodes");
            assert_eq!(back.result, captured["result"], "{name}");
            assert!(back.ending && back.failure.is_none(), "{name}");
            // a scalar result is byte-identical apart from the unique id
            if captured["result"].is_string() {
                let ours_text = String::from_utf8(frame.encode()).expect("utf8");
                let theirs = serde_json::to_string(&reply["body"][OSLO_MESSAGE_KEY]).expect("text");
                let uid = captured["_unique_id"].as_str().expect("uid");
                let ours_uid = frame.unique_id.as_deref().expect("uid");
                assert!(
                    ours_text.contains(&theirs.replace(uid, ours_uid)),
                    "{name}:\n{ours_text}\n{theirs}"
                );
            }
        }
    }
    assert!(seen >= 4, "captured replies: {seen}");
    // failure replies carry the fields a Python caller reads
    let f = ReplyFrame::failure(
        "m",
        serialize_failure(&NovaException::instance_not_found("x")),
    );
    let ours = inner(&f.encode());
    let failure: Value =
        serde_json::from_str(ours["failure"].as_str().expect("string")).expect("json");
    let k: BTreeSet<_> = failure.as_object().expect("obj").keys().cloned().collect();
    assert_eq!(
        k,
        ["args", "class", "kwargs", "message", "module", "tb"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(ours["result"], Value::Null);
    assert_eq!(ours["ending"], true);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("method"),
            Just("args"),
            Just("version"),
            Just("namespace"),
            Just("_msg_id"),
            Just("_reply_q"),
            Just("_timeout"),
            Just("_unique_id"),
            Just("_context_roles"),
            Just("2.0")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("method".to_string()),
                        Just("args".to_string()),
                        Just("version".to_string()),
                        Just("namespace".to_string()),
                        Just("_msg_id".to_string()),
                        Just("_reply_q".to_string()),
                        Just("_timeout".to_string()),
                        Just("_unique_id".to_string()),
                        Just("_context_user_id".to_string()),
                        Just("_context_roles".to_string()),
                        Just("oslo.version".to_string()),
                        Just("oslo.message".to_string()),
                        Just("result".to_string()),
                        Just("failure".to_string()),
                        Just("ending".to_string()),
                        ".{0,8}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(&bytes);
        let _ = ReplyFrame::decode(&bytes);
        let _ = RemoteError::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let raw = serde_json::to_vec(&v).expect("json");
        let _ = decode_request(&raw);
        let _ = ReplyFrame::decode(&raw);
        let text = serde_json::to_string(&v).expect("json");
        let wrapped = envelope(&text);
        if let Ok(req) = decode_request(&wrapped) {
            // whatever decodes re-encodes and decodes to the same request
            let again: Request = decode_request(&req.encode()).expect("re-decodes");
            prop_assert_eq!(again.method, req.method);
            prop_assert_eq!(again.args, req.args);
            prop_assert_eq!(again.reply_to, req.reply_to);
        }
        let _ = ReplyFrame::decode(&wrapped);
        let _ = RemoteError::parse(&text);
    }
}
