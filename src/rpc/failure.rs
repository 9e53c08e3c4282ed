//! Remote exceptions: a [`NovaException`] serialized the way oslo's
//! `serialize_remote_exception` does, and a remote failure parsed back into a
//! typed [`RemoteError`].

use serde_json::{Map, Value};

use crate::exception::NovaException;

use super::envelope::{ordered_object, DecodeError};

/// Module of the dispatcher's own exceptions.
pub const DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";

/// The failure JSON text of a reply: class, module, message, tb, args, kwargs.
/// `args` is `[message]`, as a Nova exception's `args` in Python.
pub fn serialize_failure(e: &NovaException) -> String {
    let qualified = if e.module == "builtins" {
        e.class.clone()
    } else {
        format!("{}.{}", e.module, e.class)
    };
    let tb = vec![
        Value::String("Traceback (most recent call last):\n".into()),
        Value::String("  File \"nova-docker\", line 0, in dispatch\n".into()),
        Value::String(format!("{qualified}: {}\n", e.message)),
    ];
    ordered_object(&[
        ("class".into(), Value::String(e.class.clone())),
        ("module".into(), Value::String(e.module.clone())),
        ("message".into(), Value::String(e.message.clone())),
        ("tb".into(), Value::Array(tb)),
        (
            "args".into(),
            Value::Array(vec![Value::String(e.message.clone())]),
        ),
        ("kwargs".into(), Value::Object(e.kwargs.clone())),
    ])
}

/// `oslo_messaging.rpc.dispatcher.NoSuchMethod` (no kwargs: Python's class has none).
pub fn no_such_method(method: &str) -> NovaException {
    NovaException::other(
        "NoSuchMethod",
        DISPATCHER_MODULE,
        format!("Endpoint does not support RPC method {method}"),
        Value::Null,
    )
}

/// `oslo_messaging.rpc.dispatcher.UnsupportedVersion`.
pub fn unsupported_version(version: &str, method: &str) -> NovaException {
    NovaException::other(
        "UnsupportedVersion",
        DISPATCHER_MODULE,
        format!("Endpoint does not support RPC version {version}. Attempted method: {method}"),
        Value::Null,
    )
}

/// The failure sent for a call whose body could not be decoded.
pub fn decode_failure(e: &DecodeError) -> NovaException {
    match e {
        DecodeError::EnvelopeVersion(v) => NovaException::other(
            "UnsupportedRpcEnvelopeVersion",
            "oslo_messaging._drivers.common",
            e.to_string(),
            serde_json::json!({ "version": v }),
        ),
        _ => NovaException::other(
            "ValueError",
            "builtins",
            format!("Malformed RPC message: {e}"),
            Value::Null,
        ),
    }
}

/// An exception raised by the remote side of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    pub class: String,
    pub module: String,
    pub message: String,
    pub kwargs: Map<String, Value>,
    pub args: Vec<Value>,
    pub traceback: Vec<String>,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Remote error: {}.{} {}",
            self.module, self.class, self.message
        )
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    /// Parse the `failure` text of a reply. Never fails: text that is not the
    /// expected JSON becomes a `RemoteError` carrying it as the message.
    pub fn parse(failure: &str) -> Self {
        let m = match serde_json::from_str::<Value>(failure) {
            Ok(Value::Object(m)) => m,
            _ => {
                return RemoteError {
                    class: "RemoteError".into(),
                    module: "oslo_messaging.rpc.client".into(),
                    message: failure.to_string(),
                    kwargs: Map::new(),
                    args: Vec::new(),
                    traceback: Vec::new(),
                }
            }
        };
        let s = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut module = s("module");
        if module == "exceptions" {
            module = "builtins".into();
        }
        RemoteError {
            class: s("class"),
            module,
            message: s("message"),
            kwargs: m
                .get("kwargs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            args: m
                .get("args")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            traceback: m
                .get("tb")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// True for `module.class`, e.g. `is("nova.exception", "InstanceNotFound")`.
    pub fn is(&self, module: &str, class: &str) -> bool {
        self.module == module && self.class == class
    }

    /// The same exception, to pass on to our own caller.
    pub fn to_nova_exception(&self) -> NovaException {
        NovaException {
            class: self.class.clone(),
            module: self.module.clone(),
            message: self.message.clone(),
            kwargs: self.kwargs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = NovaException::instance_not_found("abc");
        let text = serialize_failure(&e);
        assert!(text.starts_with(r#"{"class": "InstanceNotFound", "module": "nova.exception", "message": "Instance abc could not be found.", "tb": ["#));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["args"],
            serde_json::json!(["Instance abc could not be found."])
        );
        assert_eq!(v["kwargs"]["instance_id"], "abc");
        assert_eq!(v["kwargs"]["code"], 404);
        let r = RemoteError::parse(&text);
        assert!(r.is("nova.exception", "InstanceNotFound"));
        assert_eq!(r.kwargs["instance_id"], "abc");
        assert_eq!(r.to_nova_exception(), e);
    }

    #[test]
    fn dispatcher_errors_have_no_kwargs() {
        let v: Value = serde_json::from_str(&serialize_failure(&no_such_method("foo"))).unwrap();
        assert_eq!(v["module"], DISPATCHER_MODULE);
        assert_eq!(v["kwargs"], serde_json::json!({}));
        assert_eq!(v["message"], "Endpoint does not support RPC method foo");
        let v: Value =
            serde_json::from_str(&serialize_failure(&unsupported_version("7.0", "foo"))).unwrap();
        assert_eq!(v["class"], "UnsupportedVersion");
    }

    #[test]
    fn garbage_failure_text() {
        let r = RemoteError::parse("not json");
        assert_eq!(r.class, "RemoteError");
        assert_eq!(r.message, "not json");
        let r =
            RemoteError::parse(r#"{"class": "KeyError", "module": "exceptions", "message": "x"}"#);
        assert!(r.is("builtins", "KeyError"));
    }
}
