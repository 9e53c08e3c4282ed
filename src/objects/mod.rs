//! Nova versioned objects as they travel on the wire (oslo.versionedobjects
//! primitives).
//!
//! An object is kept as the primitive it arrived as ([`NovaObject`]: name,
//! version, every field, the set of changed fields), so that fields we do not
//! know, and newer minor versions, round-trip to the conductor untouched. Typed
//! views ([`Instance`], [`Flavor`], ...) read and write the fields the compute
//! service uses and mark what they change, which is what `save()` sends.

mod instance;
mod manifest;
mod migration;
mod states;

pub use instance::{Flavor, FlavorSlot, ImageMeta, Instance};
pub use manifest::{object_versions, OBJECT_VERSIONS};
pub use migration::Migration;
pub use states::{TaskState, VmState};

use serde_json::{json, Map, Value};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum ObjectError {
    #[error("not a Nova object primitive: {0}")]
    NotAnObject(String),
    #[error("expected a {expected} object, got {found}")]
    WrongClass { expected: String, found: String },
    #[error("{name} {version} is not compatible with our {ours} (different major version)")]
    IncompatibleVersion {
        name: String,
        version: String,
        ours: String,
    },
    #[error("field {field} of {name}: {reason}")]
    Field {
        name: String,
        field: String,
        reason: String,
    },
}

/// The oslo.versionedobjects datetime format (`%Y-%m-%dT%H:%M:%SZ`).
pub fn format_datetime(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now, in the wire datetime format.
pub fn now() -> String {
    format_datetime(chrono::Utc::now())
}

/// One object primitive.
#[derive(Debug, Clone, PartialEq)]
pub struct NovaObject {
    pub name: String,
    pub namespace: String,
    pub version: String,
    pub data: Map<String, Value>,
    /// Fields changed since the object was received or last saved, in order.
    pub changes: Vec<String>,
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl NovaObject {
    /// A new object of ours (every field we set is a change).
    pub fn new(name: &str, version: &str) -> Self {
        NovaObject {
            name: name.into(),
            namespace: "nova".into(),
            version: version.into(),
            data: Map::new(),
            changes: Vec::new(),
        }
    }

    /// Read a primitive. Unknown fields are kept; a newer minor version of a
    /// class we know is accepted (its extra fields travel along untouched).
    pub fn from_primitive(v: &Value) -> Result<Self, ObjectError> {
        let o = v
            .as_object()
            .ok_or_else(|| ObjectError::NotAnObject(short(v)))?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let name = s("nova_object.name").ok_or_else(|| ObjectError::NotAnObject(short(v)))?;
        let version = s("nova_object.version").ok_or_else(|| ObjectError::NotAnObject(short(v)))?;
        if let (Some(ours), Some(theirs)) = (
            OBJECT_VERSIONS
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| parse_version(v)),
            parse_version(&version),
        ) {
            if ours.0 != theirs.0 {
                return Err(ObjectError::IncompatibleVersion {
                    name,
                    version,
                    ours: format!("{}.{}", ours.0, ours.1),
                });
            }
        }
        let data = match o.get("nova_object.data") {
            Some(Value::Object(m)) => m.clone(),
            Some(Value::Null) | None => Map::new(),
            Some(_) => return Err(ObjectError::NotAnObject(short(v))),
        };
        let changes = o
            .get("nova_object.changes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(NovaObject {
            name,
            namespace: s("nova_object.namespace").unwrap_or_else(|| "nova".into()),
            version,
            data,
            changes,
        })
    }

    /// Read a primitive that must be of class `name`.
    pub fn from_primitive_of(v: &Value, name: &str) -> Result<Self, ObjectError> {
        let o = Self::from_primitive(v)?;
        if o.name != name {
            return Err(ObjectError::WrongClass {
                expected: name.into(),
                found: o.name,
            });
        }
        Ok(o)
    }

    /// The primitive to send: every field, and the changes list when not empty.
    pub fn to_primitive(&self) -> Value {
        let mut m = Map::new();
        m.insert("nova_object.name".into(), json!(self.name));
        m.insert("nova_object.namespace".into(), json!(self.namespace));
        m.insert("nova_object.version".into(), json!(self.version));
        m.insert("nova_object.data".into(), Value::Object(self.data.clone()));
        if !self.changes.is_empty() {
            m.insert("nova_object.changes".into(), json!(self.changes));
        }
        Value::Object(m)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.data.get(field)
    }

    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(Value::as_str)
    }

    pub fn get_i64(&self, field: &str) -> Option<i64> {
        self.data.get(field).and_then(Value::as_i64)
    }

    /// Set a field and mark it changed (only when the value differs, as
    /// oslo.versionedobjects does not, but the conductor writes only changes).
    pub fn set(&mut self, field: &str, value: Value) {
        self.data.insert(field.to_string(), value);
        if !self.changes.iter().any(|c| c == field) {
            self.changes.push(field.to_string());
        }
    }

    pub fn reset_changes(&mut self) {
        self.changes.clear();
    }

    /// Set a field without marking it changed (a nested object saved on its own).
    pub fn put(&mut self, field: &str, value: Value) {
        self.data.insert(field.to_string(), value);
    }

    /// Apply the `updates` dict of an `object_action` reply: each field is set
    /// (nested objects as primitives), `obj_what_changed` becomes our changes.
    pub fn apply_updates(&mut self, updates: &Value) {
        let Some(u) = updates.as_object() else {
            return;
        };
        let mut changed = Vec::new();
        for (k, v) in u {
            if k == "obj_what_changed" {
                if let Some(a) = v.as_array() {
                    changed = a
                        .iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect();
                }
                continue;
            }
            self.data.insert(k.clone(), v.clone());
        }
        self.changes = changed;
    }

    /// The `objects` of a list object (InstanceList, ...).
    pub fn list_objects(&self) -> Result<Vec<NovaObject>, ObjectError> {
        match self.data.get("objects") {
            Some(Value::Array(a)) => a.iter().map(NovaObject::from_primitive).collect(),
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(_) => Err(ObjectError::Field {
                name: self.name.clone(),
                field: "objects".into(),
                reason: "not a list".into(),
            }),
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!("{}...", &s[..s.floor_char_boundary(120)])
    } else {
        s
    }
}

/// `Service` as nova-compute creates it.
pub fn new_service(host: &str, version: i64) -> NovaObject {
    let mut s = NovaObject::new("Service", "1.22");
    s.set("host", json!(host));
    s.set("binary", json!("nova-compute"));
    s.set("topic", json!("compute"));
    s.set("report_count", json!(0));
    s.set("version", json!(version));
    s
}

/// The service version we claim: the one nova 34.0.0 (2025.2) reports. Too low and
/// other services refuse to start or cap compute RPC; the RPC API we serve is 6.x.
pub const SERVICE_VERSION: i64 = 74;

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wire/conductor-bound")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn round_trips_captured_objects_unchanged() {
        let c = capture("Instance.save.json");
        let inst = &c["oslo_message"]["args"]["objinst"];
        let o = NovaObject::from_primitive(inst).unwrap();
        assert_eq!(o.name, "Instance");
        assert_eq!(&o.to_primitive(), inst);
    }

    #[test]
    fn newer_minor_with_unknown_fields_is_kept_and_other_major_refused() {
        let v = json!({"nova_object.name":"Instance","nova_object.namespace":"nova",
            "nova_object.version":"2.99","nova_object.data":{"uuid":"u","brand_new":{"x":1}}});
        let o = NovaObject::from_primitive(&v).unwrap();
        assert_eq!(o.to_primitive()["nova_object.data"]["brand_new"]["x"], 1);
        let v = json!({"nova_object.name":"Instance","nova_object.namespace":"nova",
            "nova_object.version":"3.0","nova_object.data":{}});
        assert!(matches!(
            NovaObject::from_primitive(&v),
            Err(ObjectError::IncompatibleVersion { .. })
        ));
        assert!(NovaObject::from_primitive(&json!([1])).is_err());
        assert!(NovaObject::from_primitive(&json!({"nova_object.name": 3})).is_err());
    }

    #[test]
    fn set_marks_changes_and_updates_apply() {
        let mut s = new_service("h1", SERVICE_VERSION);
        let sent = capture("Service.create.json");
        let want = &sent["oslo_message"]["args"]["objinst"];
        assert_eq!(s.data, {
            let mut d = want["nova_object.data"].as_object().unwrap().clone();
            d.insert("host".into(), json!("h1"));
            d
        });
        let reply = &sent["reply"]["oslo_message"]["result"][0];
        s.apply_updates(reply);
        assert_eq!(s.get_i64("id"), Some(4));
        assert!(s.changes.is_empty());
        s.set("report_count", json!(1));
        assert_eq!(s.changes, vec!["report_count"]);
    }
}
