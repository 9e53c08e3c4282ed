//! decode() on the published examples, on the MIME documents Heat builds (made
//! by Python's email package the way Heat makes them), and on arbitrary input
//! (it never panics).

mod common;

use base64::Engine;
use nova_docker::userdata::{decode, decode_raw, UserDataError, Vocabulary};
use proptest::prelude::*;

fn b64(s: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::test_file(&format!("fixtures/userdata/{name}")))
        .expect("fixture")
}

fn heat_user_data() -> String {
    let t: serde_yaml::Value = serde_yaml::from_str(&fixture("heat-server.yaml")).expect("yaml");
    t["resources"]["docker_image"]["properties"]["user_data"]
        .as_str()
        .expect("user_data")
        .to_string()
}

#[test]
fn the_three_examples_parse() {
    let h = decode(Some(&b64(fixture("horizon-docker-create-body.json"))))
        .expect("horizon")
        .expect("options");
    assert_eq!(h.vocabulary, Some(Vocabulary::Docker));
    assert_eq!(h.body.cmd.as_deref(), Some(&["date".to_string()][..]));
    let s = decode(Some(&b64(fixture("short-keys.yaml"))))
        .expect("short keys")
        .expect("options");
    assert_eq!(s.vocabulary, Some(Vocabulary::Short));
    assert_eq!(
        s.body.env.as_deref(),
        Some(&["etcd=10.144.192.168".to_string()][..])
    );
    assert_eq!(
        s.body.host_config.as_ref().and_then(|h| h.binds.clone()),
        Some(vec!["/var/run/docker.sock:/var/run/docker.sock".to_string()])
    );
    let heat = decode(Some(&b64(heat_user_data())))
        .expect("heat")
        .expect("options");
    assert_eq!(
        heat.body.host_config.as_ref().and_then(|h| h.binds.clone()),
        Some(vec!["/tmp/test112233:/tmp/test112233".to_string()])
    );
}

/// Heat's `build_userdata` (HEAT_CFNTOOLS, its default user_data_format):
/// cloud-config, a boothook and a part handler, then the template's user_data
/// as the `cfn-userdata` part; `MIMEText` picks us-ascii (7bit) or utf-8
/// (base64) as Heat does.
const HEAT_MIME: &str = r#"
import sys
from email.mime import multipart, text
def make_subpart(content, filename, subtype=None):
    if subtype is None:
        subtype = filename.rsplit('.', 1)[0]
    try:
        content.encode('us-ascii')
        charset = 'us-ascii'
    except UnicodeEncodeError:
        charset = 'utf-8'
    msg = text.MIMEText(content, _subtype=subtype, _charset=charset)
    msg.add_header('Content-Disposition', 'attachment', filename=filename)
    return msg
userdata = sys.stdin.read()
attachments = [('#cloud-config\nuser: ec2-user\n', 'cloud-config'),
               ('#!/bin/bash\necho boothook\n', 'boothook.sh', 'cloud-boothook'),
               ('#part-handler\ndef list_types(): return []\n', 'part-handler.py'),
               (userdata, 'cfn-userdata', 'x-cfninitdata'),
               ('#!/usr/bin/env python3\nprint(1)\n', 'loguserdata.py', 'x-shellscript')]
subparts = [make_subpart(*a) for a in attachments]
print(multipart.MIMEMultipart(_subparts=subparts).as_string())
"#;

fn heat_mime(user_data: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new(common::python())
        .args(["-c", HEAT_MIME])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(user_data.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed");
    out.stdout
}

#[test]
#[ignore = "needs the Python venv; run by devstack/run-tests.sh"]
fn heat_multipart_takes_the_cfn_userdata_part() {
    let mime = heat_mime(&heat_user_data());
    let o = decode(Some(&b64(&mime))).expect("decode").expect("options");
    assert_eq!(
        o.body.host_config.as_ref().and_then(|h| h.binds.clone()),
        Some(vec!["/tmp/test112233:/tmp/test112233".to_string()])
    );
    // non-ASCII user_data: Python base64-encodes the part
    let mime = heat_mime("environment:\n  GREETING: grüße\n");
    assert!(String::from_utf8_lossy(&mime).contains("base64"));
    let o = decode(Some(&b64(&mime))).expect("decode").expect("options");
    assert_eq!(
        o.body.env.as_deref(),
        Some(&["GREETING=grüße".to_string()][..])
    );
    // a shell script as the template's user_data: not container options
    assert_eq!(
        decode(Some(&b64(heat_mime("#!/bin/sh\necho hi\n")))).expect("decode"),
        None
    );
    // Horizon's JSON through Heat
    let mime = heat_mime(&fixture("horizon-docker-create-body.json"));
    let o = decode(Some(&b64(&mime))).expect("decode").expect("options");
    assert_eq!(o.vocabulary, Some(Vocabulary::Docker));
}

#[test]
fn a_typed_part_of_a_cloud_init_multipart() {
    let doc = "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n--XX\nContent-Type: text/cloud-config\n\n#cloud-config\n--XX\nContent-Type: text/x-yaml\n\ncommand: [sleep, '1000']\n--XX--\n";
    let o = decode(Some(&b64(doc))).expect("decode").expect("options");
    assert_eq!(
        o.body.cmd.as_deref(),
        Some(&["sleep".to_string(), "1000".to_string()][..])
    );
}

#[test]
fn errors_are_readable() {
    let e = decode(Some(&b64(
        "{\"Cmd\": [\"date\"], \"Bogus\": 1, \"Other\": 2}",
    )))
    .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("Bogus, Other") && m.contains("valid keys are") && m.contains("HostConfig"),
        "{m}"
    );
    let e = decode(Some(&b64("volumes: {/a: /b}\nCmd: [x]\n"))).unwrap_err();
    assert!(matches!(e, UserDataError::MixedVocabularies { .. }), "{e}");
}

const KEYS: &[&str] = &[
    "command",
    "volumes",
    "ports",
    "environment",
    "host_config",
    "dns",
    "user",
    "tty",
    "Cmd",
    "Env",
    "HostConfig",
    "Binds",
    "PortBindings",
    "Links",
    "Devices",
    "RestartPolicy",
    "Ulimits",
    "Mounts",
    "LogConfig",
    "Memory",
    "ExposedPorts",
    "Volumes",
    "memswap_limit",
    "binds",
    "port_bindings",
    "Healthcheck",
    "Labels",
    "Tmpfs",
    "Sysctls",
    "entrypoint",
    "Entrypoint",
];

/// Arbitrary JSON built from the keys decode knows, so that the fuzzing
/// reaches deep into normalization.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[ -~]{0,24}".prop_map(serde_json::Value::String),
        prop::sample::select(vec![
            "/a:/b",
            "80",
            "8080:80",
            "1.2.3.4::80/udp",
            "[::1]:1:2",
            "512m",
            "a=b",
            "on-failure:3",
            "sh -c 'x",
            "/dev/null",
            "container:x",
            "host",
            "nofile=1:2",
            "70000",
            "1-65535",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner.clone()), 0..6)
                .prop_map(|kv| serde_json::Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            prop::collection::vec(("[ -~]{0,8}", inner), 0..4)
                .prop_map(|kv| { serde_json::Value::Object(kv.into_iter().collect()) }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_any_string(s in ".{0,300}") {
        let _ = decode(Some(&s));
    }

    #[test]
    fn decode_never_panics_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(Some(&b64(&b)));
        let _ = decode_raw(&b);
    }

    #[test]
    fn decode_never_panics_on_option_shaped_json(v in json_value()) {
        let text = v.to_string();
        let _ = decode(Some(&b64(&text)));
        if let Ok(y) = serde_yaml::to_string(&v) {
            let _ = decode(Some(&b64(y)));
        }
    }

    #[test]
    fn decode_never_panics_on_mime_shaped_text(
        parts in prop::collection::vec(("[a-z/-]{0,20}", "[ -~\n]{0,80}", any::<bool>()), 0..4),
        boundary in "[A-Za-z0-9=]{0,10}",
    ) {
        let mut doc = format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\n\n");
        for (ct, body, b64part) in parts {
            doc.push_str(&format!("--{boundary}\nContent-Type: {ct}\n"));
            if b64part {
                doc.push_str(&format!("Content-Transfer-Encoding: base64\n\n{}\n", b64(body)));
            } else {
                doc.push_str(&format!("\n{body}\n"));
            }
        }
        doc.push_str(&format!("--{boundary}--\n"));
        let _ = decode(Some(&b64(doc)));
    }
}
