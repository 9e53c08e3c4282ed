//! The oslo.messaging 2.0 envelope and the frames inside it: requests (call/cast),
//! replies (result, failure, call-monitor heartbeat), the `_context_*` keys and the
//! duplicate `_unique_id` filter. Pure functions on bytes: no I/O here.
//!
//! What we write is what Python writes, key order and separators included
//! (`json.dumps` with `", "`/`": "` and `ensure_ascii`), so a capture of ours
//! reads like one of theirs.

use std::collections::VecDeque;
use std::io;

use serde_json::{Map, Value};

use crate::context::RequestContext;

pub const OSLO_VERSION_KEY: &str = "oslo.version";
pub const OSLO_MESSAGE_KEY: &str = "oslo.message";
pub const ENVELOPE_VERSION: &str = "2.0";
/// How many recent `_unique_id`s a receiver remembers (oslo `DUP_MSG_CHECK_SIZE`).
pub const DUP_MSG_CHECK_SIZE: usize = 16;
const CONTEXT_PREFIX: &str = "_context_";

/// Why an incoming body is not a usable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("message body is not a JSON object")]
    NotObject,
    #[error("Specified RPC envelope version, {0}, not supported by this endpoint.")]
    EnvelopeVersion(String),
    #[error("oslo.message is not a JSON object text: {0}")]
    BadInner(String),
    #[error("message has no {0}")]
    Missing(&'static str),
    #[error("message field {field} must be {expected}")]
    BadField {
        field: &'static str,
        expected: &'static str,
    },
}

/// Where a call wants its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub msg_id: String,
    pub reply_q: String,
}

/// A body that could not be decoded, with what could be salvaged from it so that a
/// call still gets a failure reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure {
    pub error: DecodeError,
    pub reply_to: Option<ReplyTo>,
    pub unique_id: Option<String>,
    pub method: Option<String>,
}

/// One RPC request (call or cast) as oslo.messaging sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub args: Map<String, Value>,
    /// `"1.0"` when the sender gave none (as the Python dispatcher).
    pub version: String,
    pub namespace: Option<String>,
    pub context: RequestContext,
    pub unique_id: Option<String>,
    /// Present for calls.
    pub reply_to: Option<ReplyTo>,
    /// The caller's call-monitor timeout in seconds (`_timeout`), if any.
    pub call_monitor_timeout: Option<u64>,
}

impl Request {
    pub fn is_call(&self) -> bool {
        self.reply_to.is_some()
    }

    /// The body to publish (fresh `_unique_id` if none is set).
    pub fn encode(&self) -> Vec<u8> {
        let mut fields: Vec<(String, Value)> = vec![
            ("method".into(), Value::String(self.method.clone())),
            ("args".into(), Value::Object(self.args.clone())),
        ];
        if let Some(ns) = &self.namespace {
            fields.push(("namespace".into(), Value::String(ns.clone())));
        }
        fields.push(("version".into(), Value::String(self.version.clone())));
        if let Some(rt) = &self.reply_to {
            fields.push(("_msg_id".into(), Value::String(rt.msg_id.clone())));
            fields.push(("_reply_q".into(), Value::String(rt.reply_q.clone())));
            fields.push((
                "_timeout".into(),
                self.call_monitor_timeout.map_or(Value::Null, Value::from),
            ));
        }
        let uid = self.unique_id.clone().unwrap_or_else(new_id);
        fields.push(("_unique_id".into(), Value::String(uid)));
        for (k, v) in self.context.to_map() {
            fields.push((format!("{CONTEXT_PREFIX}{k}"), v));
        }
        envelope(&ordered_object(&fields))
    }
}

/// A uuid4 in hex, as oslo's ids.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Wrap an inner message text in the 2.0 envelope.
pub fn envelope(inner_json: &str) -> Vec<u8> {
    ordered_object(&[
        (
            OSLO_VERSION_KEY.into(),
            Value::String(ENVELOPE_VERSION.into()),
        ),
        (OSLO_MESSAGE_KEY.into(), Value::String(inner_json.into())),
    ])
    .into_bytes()
}

/// Open the envelope: the inner message as a JSON object. A body without
/// `oslo.version` is taken as an unenveloped message, as Python does.
pub fn open_envelope(body: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Value::Object(mut outer) = v else {
        return Err(DecodeError::NotObject);
    };
    let Some(version) = outer.get(OSLO_VERSION_KEY) else {
        return Ok(outer);
    };
    let version = match version {
        Value::String(s) => s.clone(),
        other => return Err(DecodeError::EnvelopeVersion(other.to_string())),
    };
    if !version_is_compatible(ENVELOPE_VERSION, &version) {
        return Err(DecodeError::EnvelopeVersion(version));
    }
    let inner = match outer.remove(OSLO_MESSAGE_KEY) {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(DecodeError::BadField {
                field: "oslo.message",
                expected: "a JSON text string",
            })
        }
        None => return Err(DecodeError::Missing("oslo.message")),
    };
    match serde_json::from_str(&inner) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DecodeError::BadInner("not an object".into())),
        Err(e) => Err(DecodeError::BadInner(e.to_string())),
    }
}

fn opt_str(m: &Map<String, Value>, k: &'static str) -> Result<Option<String>, DecodeError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(DecodeError::BadField {
            field: k,
            expected: "a string",
        }),
    }
}

/// Best-effort salvage of the reply address and ids from a broken body (the
/// envelope version is not checked here: a call in an envelope we refuse still
/// deserves its failure reply).
fn salvage(body: &[u8]) -> (Option<ReplyTo>, Option<String>, Option<String>) {
    let Ok(Value::Object(outer)) = serde_json::from_slice::<Value>(body) else {
        return (None, None, None);
    };
    let m = match outer.get(OSLO_MESSAGE_KEY) {
        Some(Value::String(inner)) => match serde_json::from_str::<Value>(inner) {
            Ok(Value::Object(m)) => m,
            _ => return (None, None, None),
        },
        _ => outer,
    };
    let s = |k| m.get(k).and_then(Value::as_str).map(str::to_string);
    let reply_to = match (s("_msg_id"), s("_reply_q")) {
        (Some(msg_id), Some(reply_q)) => Some(ReplyTo { msg_id, reply_q }),
        _ => None,
    };
    (reply_to, s("_unique_id"), s("method"))
}

/// Decode a request body.
#[allow(clippy::result_large_err)] // decoding failures are rare; no need to box
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeFailure> {
    decode_request_inner(body).map_err(|error| {
        let (reply_to, unique_id, method) = salvage(body);
        DecodeFailure {
            error,
            reply_to,
            unique_id,
            method,
        }
    })
}

fn decode_request_inner(body: &[u8]) -> Result<Request, DecodeError> {
    let m = open_envelope(body)?;
    let method = opt_str(&m, "method")?.ok_or(DecodeError::Missing("method"))?;
    let args = match m.get("args") {
        None => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => {
            return Err(DecodeError::BadField {
                field: "args",
                expected: "an object",
            })
        }
    };
    let version = opt_str(&m, "version")?.unwrap_or_else(|| "1.0".into());
    if parse_version(&version).is_none() {
        return Err(DecodeError::BadField {
            field: "version",
            expected: "a version string like \"6.0\"",
        });
    }
    let namespace = opt_str(&m, "namespace")?;
    let unique_id = opt_str(&m, "_unique_id")?;
    let msg_id = opt_str(&m, "_msg_id")?;
    let reply_q = opt_str(&m, "_reply_q")?;
    let reply_to = match (msg_id, reply_q) {
        (Some(msg_id), Some(reply_q)) => Some(ReplyTo { msg_id, reply_q }),
        (Some(_), None) => return Err(DecodeError::Missing("_reply_q")),
        _ => None,
    };
    // Python does int(_timeout) and ignores what is not a positive integer.
    let call_monitor_timeout = match m.get("_timeout") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 1.0).map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .filter(|t| *t > 0);
    let ctx: Map<String, Value> = m
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(CONTEXT_PREFIX)
                .map(|k| (k.to_string(), v.clone()))
        })
        .collect();
    Ok(Request {
        method,
        args,
        version,
        namespace,
        context: RequestContext::from_map(ctx),
        unique_id,
        reply_to,
        call_monitor_timeout,
    })
}

/// One reply frame: a result, a failure, or (ending = false, both null) a
/// call-monitor heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyFrame {
    pub msg_id: String,
    pub result: Value,
    /// The serialized remote exception (a JSON text), if the call failed.
    pub failure: Option<String>,
    pub ending: bool,
    pub unique_id: Option<String>,
}

impl ReplyFrame {
    pub fn result(msg_id: &str, result: Value) -> Self {
        ReplyFrame {
            msg_id: msg_id.into(),
            result,
            failure: None,
            ending: true,
            unique_id: Some(new_id()),
        }
    }

    pub fn failure(msg_id: &str, failure: String) -> Self {
        ReplyFrame {
            msg_id: msg_id.into(),
            result: Value::Null,
            failure: Some(failure),
            ending: true,
            unique_id: Some(new_id()),
        }
    }

    pub fn heartbeat(msg_id: &str) -> Self {
        ReplyFrame {
            msg_id: msg_id.into(),
            result: Value::Null,
            failure: None,
            ending: false,
            unique_id: Some(new_id()),
        }
    }

    pub fn is_heartbeat(&self) -> bool {
        !self.ending && self.failure.is_none() && self.result.is_null()
    }

    /// The body to publish, in Python's key order.
    pub fn encode(&self) -> Vec<u8> {
        let mut fields: Vec<(String, Value)> = vec![
            ("result".into(), self.result.clone()),
            (
                "failure".into(),
                self.failure.clone().map_or(Value::Null, Value::String),
            ),
            ("ending".into(), Value::Bool(self.ending)),
            ("_msg_id".into(), Value::String(self.msg_id.clone())),
        ];
        if let Some(u) = &self.unique_id {
            fields.push(("_unique_id".into(), Value::String(u.clone())));
        }
        envelope(&ordered_object(&fields))
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let m = open_envelope(body)?;
        let msg_id = opt_str(&m, "_msg_id")?.ok_or(DecodeError::Missing("_msg_id"))?;
        let failure = match m.get("failure") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            // A failure that is not a string is still a failure: keep its text.
            Some(other) => Some(other.to_string()),
        };
        let ending = match m.get("ending") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(DecodeError::BadField {
                    field: "ending",
                    expected: "a boolean",
                })
            }
        };
        Ok(ReplyFrame {
            msg_id,
            result: m.get("result").cloned().unwrap_or(Value::Null),
            failure,
            ending,
            unique_id: opt_str(&m, "_unique_id")?,
        })
    }
}

/// The last [`DUP_MSG_CHECK_SIZE`] `_unique_id`s seen; a repeat is dropped.
#[derive(Debug, Default)]
pub struct DuplicateFilter {
    recent: VecDeque<String>,
}

impl DuplicateFilter {
    /// True when `id` is new (and remember it); false for a repeat.
    pub fn check_and_add(&mut self, id: &str) -> bool {
        if self.recent.iter().any(|x| x == id) {
            return false;
        }
        if self.recent.len() == DUP_MSG_CHECK_SIZE {
            self.recent.pop_front();
        }
        self.recent.push_back(id.to_string());
        true
    }
}

/// `(major, minor, revision)` of `"6.0"`, `"1"` or `"1.2.3"`.
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.');
    let major = it.next()?.trim().parse().ok()?;
    let minor = match it.next() {
        Some(s) => s.trim().parse().ok()?,
        None => 0,
    };
    let rev = match it.next() {
        Some(s) => s.trim().parse().ok()?,
        None => 0,
    };
    if it.next().is_some() {
        return None;
    }
    Some((major, minor, rev))
}

/// oslo `version_is_compatible(imp_version, version)`: same major, and the
/// requested minor (then revision) not above ours.
pub fn version_is_compatible(ours: &str, requested: &str) -> bool {
    let (Some((a_maj, a_min, a_rev)), Some((r_maj, r_min, r_rev))) =
        (parse_version(ours), parse_version(requested))
    else {
        return false;
    };
    if a_maj != r_maj || r_min > a_min {
        return false;
    }
    !(r_min == a_min && r_rev > a_rev)
}

/// JSON text as Python's `json.dumps` writes it: `", "` and `": "` separators,
/// non-ASCII as `\uXXXX`.
pub fn py_dumps(v: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    // Serializing a Value into a Vec cannot fail.
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8(out).unwrap_or_default()
}

/// An object with keys in the given order, Python style.
pub fn ordered_object(fields: &[(String, Value)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&py_dumps(&Value::String(k.clone())));
        s.push_str(": ");
        s.push_str(&py_dumps(v));
    }
    s.push('}');
    s
}

struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_style_json() {
        assert_eq!(
            py_dumps(&json!({"a": [1, "é😀"], "b": null})),
            r#"{"a": [1, "\u00e9\ud83d\ude00"], "b": null}"#
        );
    }

    #[test]
    fn request_round_trip_and_key_order() {
        let mut ctx = Map::new();
        ctx.insert("user_id".into(), json!("u1"));
        ctx.insert("project_id".into(), json!("p1"));
        ctx.insert("request_id".into(), json!("req-1"));
        let req = Request {
            method: "ping".into(),
            args: json!({"arg": "x"}).as_object().cloned().unwrap_or_default(),
            version: "1.1".into(),
            namespace: Some("baseapi".into()),
            context: RequestContext::from_map(ctx),
            unique_id: Some("u".into()),
            reply_to: Some(ReplyTo {
                msg_id: "m".into(),
                reply_q: "reply_q".into(),
            }),
            call_monitor_timeout: Some(10),
        };
        let body = req.encode();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.starts_with(r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"ping\", \"args\": {\"arg\": \"x\"}, \"namespace\": \"baseapi\", \"version\": \"1.1\", \"_msg_id\": \"m\", \"_reply_q\": \"reply_q\", \"_timeout\": 10, \"_unique_id\": \"u\", \"_context_"#), "{text}");
        let back = decode_request(&body).unwrap();
        assert_eq!(back.method, "ping");
        assert_eq!(back.namespace.as_deref(), Some("baseapi"));
        assert_eq!(back.context.user_id.as_deref(), Some("u1"));
        assert_eq!(back.context.request_id.as_deref(), Some("req-1"));
        assert_eq!(back.call_monitor_timeout, Some(10));
        assert!(back.is_call());
    }

    #[test]
    fn bad_bodies() {
        let e = decode_request(b"garbage").unwrap_err();
        assert!(matches!(e.error, DecodeError::NotJson(_)));
        assert_eq!(e.reply_to, None);
        let e = decode_request(br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#).unwrap_err();
        assert_eq!(e.error, DecodeError::EnvelopeVersion("3.0".into()));
        let e = decode_request(br#"{"oslo.version": "3.0", "oslo.message": "{\"_msg_id\": \"m\", \"_reply_q\": \"r\"}"}"#)
            .unwrap_err();
        assert_eq!(
            e.reply_to,
            Some(ReplyTo {
                msg_id: "m".into(),
                reply_q: "r".into()
            })
        );
        let inner = r#"{"method": 5, "_msg_id": "m", "_reply_q": "r"}"#;
        let body = envelope(inner);
        let e = decode_request(&body).unwrap_err();
        assert_eq!(
            e.error,
            DecodeError::BadField {
                field: "method",
                expected: "a string"
            }
        );
        assert_eq!(
            e.reply_to,
            Some(ReplyTo {
                msg_id: "m".into(),
                reply_q: "r".into()
            })
        );
        let e = decode_request(&envelope(r#"{"method": "x", "args": []}"#)).unwrap_err();
        assert!(matches!(
            e.error,
            DecodeError::BadField { field: "args", .. }
        ));
        let e = decode_request(&envelope(r#"{"args": {}}"#)).unwrap_err();
        assert_eq!(e.error, DecodeError::Missing("method"));
        let e = decode_request(&envelope(r#"{"method": "x", "version": "six"}"#)).unwrap_err();
        assert!(matches!(
            e.error,
            DecodeError::BadField {
                field: "version",
                ..
            }
        ));
        // unenveloped messages are accepted, as Python does
        let r = decode_request(br#"{"method": "x"}"#).unwrap();
        assert_eq!(r.version, "1.0");
        assert!(!r.is_call());
    }

    #[test]
    fn versions() {
        assert!(version_is_compatible("6.5", "6.0"));
        assert!(version_is_compatible("6.5", "6.5"));
        assert!(!version_is_compatible("6.5", "6.6"));
        assert!(!version_is_compatible("6.5", "5.0"));
        assert!(!version_is_compatible("6.5", "7.0"));
        assert!(version_is_compatible("1.1", "1.0"));
        assert!(!version_is_compatible("1.1", "1.1.1"));
        assert!(!version_is_compatible("1.1", "x"));
        assert!(version_is_compatible("2.0", "2.0"));
    }

    #[test]
    fn duplicate_filter_remembers_16() {
        let mut f = DuplicateFilter::default();
        assert!(f.check_and_add("a"));
        assert!(!f.check_and_add("a"));
        for i in 0..16 {
            assert!(f.check_and_add(&i.to_string()));
        }
        assert!(f.check_and_add("a"), "a fell out of the window");
        assert!(!f.check_and_add("15"));
    }

    #[test]
    fn reply_frames() {
        let hb = ReplyFrame::heartbeat("m");
        let back = ReplyFrame::decode(&hb.encode()).unwrap();
        assert!(back.is_heartbeat());
        let r = ReplyFrame::result("m", json!({"a": 1}));
        let text = String::from_utf8(r.encode()).unwrap();
        assert!(text.contains(r#"{\"result\": {\"a\": 1}, \"failure\": null, \"ending\": true, \"_msg_id\": \"m\", \"_unique_id\": \""#), "{text}");
        assert!(ReplyFrame::decode(b"{}").is_err());
    }
}

#[cfg(test)]
mod float_tests {
    /// Floats found by the fuzzing of the round trips (10 M runs): decoded and
    /// encoded again, each is the same float.
    #[test]
    fn floats_survive_a_round_trip() {
        for text in [
            "1.4333333333333333e+84",
            "1.8888888888888888e+46",
            "1.8888888888888e+46",
            "0.1",
            "2.2250738585072014e-308",
            "9007199254740993.0",
        ] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let again: serde_json::Value = serde_json::from_str(&v.to_string()).unwrap();
            assert_eq!(v, again, "{text}");
        }
    }
}
