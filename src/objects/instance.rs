//! Typed views of Instance, Flavor and ImageMeta.

use serde_json::{json, Map, Value};

use super::{NovaObject, ObjectError};

/// nova/compute/vm_states.py
pub mod vm_state {
    pub const ACTIVE: &str = "active";
    pub const BUILDING: &str = "building";
    pub const PAUSED: &str = "paused";
    pub const SUSPENDED: &str = "suspended";
    pub const STOPPED: &str = "stopped";
    pub const RESCUED: &str = "rescued";
    pub const RESIZED: &str = "resized";
    pub const SOFT_DELETED: &str = "soft-delete";
    pub const DELETED: &str = "deleted";
    pub const ERROR: &str = "error";
    pub const SHELVED: &str = "shelved";
    pub const SHELVED_OFFLOADED: &str = "shelved_offloaded";
}

/// nova/compute/task_states.py (the ones a compute host sets or expects)
pub mod task_state {
    pub const SCHEDULING: &str = "scheduling";
    pub const BLOCK_DEVICE_MAPPING: &str = "block_device_mapping";
    pub const NETWORKING: &str = "networking";
    pub const SPAWNING: &str = "spawning";
    pub const IMAGE_SNAPSHOT: &str = "image_snapshot";
    pub const IMAGE_SNAPSHOT_PENDING: &str = "image_snapshot_pending";
    pub const IMAGE_PENDING_UPLOAD: &str = "image_pending_upload";
    pub const IMAGE_UPLOADING: &str = "image_uploading";
    pub const IMAGE_BACKUP: &str = "image_backup";
    pub const UPDATING_PASSWORD: &str = "updating_password";
    pub const REBOOTING: &str = "rebooting";
    pub const REBOOT_PENDING: &str = "reboot_pending";
    pub const REBOOT_STARTED: &str = "reboot_started";
    pub const REBOOTING_HARD: &str = "rebooting_hard";
    pub const REBOOT_PENDING_HARD: &str = "reboot_pending_hard";
    pub const REBOOT_STARTED_HARD: &str = "reboot_started_hard";
    pub const PAUSING: &str = "pausing";
    pub const UNPAUSING: &str = "unpausing";
    pub const SUSPENDING: &str = "suspending";
    pub const RESUMING: &str = "resuming";
    pub const POWERING_OFF: &str = "powering-off";
    pub const POWERING_ON: &str = "powering-on";
    pub const REBUILDING: &str = "rebuilding";
    pub const REBUILD_BLOCK_DEVICE_MAPPING: &str = "rebuild_block_device_mapping";
    pub const REBUILD_SPAWNING: &str = "rebuild_spawning";
    pub const DELETING: &str = "deleting";
    pub const SOFT_DELETING: &str = "soft-deleting";
    pub const RESTORING: &str = "restoring";
}

/// An Instance object with typed access to the fields the compute service uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance(pub NovaObject);

impl Instance {
    pub fn from_primitive(v: &Value) -> Result<Self, ObjectError> {
        let o = NovaObject::from_primitive_of(v, "Instance")?;
        if o.get_str("uuid").is_none() {
            return Err(ObjectError::Field {
                name: "Instance".into(),
                field: "uuid".into(),
                reason: "missing".into(),
            });
        }
        Ok(Instance(o))
    }

    pub fn to_primitive(&self) -> Value {
        self.0.to_primitive()
    }

    pub fn uuid(&self) -> &str {
        self.0.get_str("uuid").unwrap_or_default()
    }

    fn opt_str(&self, f: &str) -> Option<&str> {
        self.0.get_str(f)
    }

    pub fn vm_state(&self) -> Option<&str> {
        self.opt_str("vm_state")
    }
    pub fn task_state(&self) -> Option<&str> {
        self.opt_str("task_state")
    }
    pub fn power_state(&self) -> i64 {
        self.0.get_i64("power_state").unwrap_or(0)
    }
    pub fn host(&self) -> Option<&str> {
        self.opt_str("host")
    }
    pub fn project_id(&self) -> &str {
        self.opt_str("project_id").unwrap_or_default()
    }
    pub fn user_id(&self) -> &str {
        self.opt_str("user_id").unwrap_or_default()
    }
    pub fn hostname(&self) -> &str {
        self.opt_str("hostname").unwrap_or_default()
    }
    pub fn display_name(&self) -> &str {
        self.opt_str("display_name").unwrap_or_default()
    }
    pub fn image_ref(&self) -> Option<&str> {
        self.opt_str("image_ref").filter(|s| !s.is_empty())
    }
    /// The base64 user_data as Nova stores it.
    pub fn user_data(&self) -> Option<&str> {
        self.opt_str("user_data").filter(|s| !s.is_empty())
    }
    pub fn memory_mb(&self) -> i64 {
        self.flavor()
            .map(|f| f.memory_mb)
            .or_else(|| self.0.get_i64("memory_mb"))
            .unwrap_or(0)
    }
    pub fn vcpus(&self) -> i64 {
        self.flavor()
            .map(|f| f.vcpus)
            .or_else(|| self.0.get_i64("vcpus"))
            .unwrap_or(0)
    }
    pub fn root_gb(&self) -> i64 {
        self.flavor()
            .map(|f| f.root_gb)
            .or_else(|| self.0.get_i64("root_gb"))
            .unwrap_or(0)
    }

    /// `metadata`, the user's key/value pairs (the old driver put them in the environment).
    pub fn metadata(&self) -> Vec<(String, String)> {
        str_map(self.0.get("metadata"))
    }

    pub fn system_metadata(&self) -> Vec<(String, String)> {
        str_map(self.0.get("system_metadata"))
    }

    pub fn flavor(&self) -> Option<Flavor> {
        self.0
            .get("flavor")
            .filter(|v| !v.is_null())
            .and_then(|v| Flavor::from_primitive(v).ok())
    }

    /// `info_cache.network_info` as the JSON text Nova stores ("[]" when none).
    pub fn network_info_json(&self) -> String {
        self.0
            .get("info_cache")
            .and_then(|ic| ic.get("nova_object.data"))
            .and_then(|d| d.get("network_info"))
            .and_then(|n| match n {
                Value::String(s) => Some(s.clone()),
                Value::Array(_) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "[]".into())
    }

    pub fn set(&mut self, field: &str, value: Value) {
        self.0.set(field, value)
    }
    pub fn set_vm_state(&mut self, s: &str) {
        self.0.set("vm_state", json!(s))
    }
    pub fn set_task_state(&mut self, s: Option<&str>) {
        self.0.set("task_state", s.map_or(Value::Null, |s| json!(s)))
    }
    pub fn set_power_state(&mut self, p: crate::virt::PowerState) {
        self.0.set("power_state", json!(p.as_int()))
    }
}

fn str_map(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Flavor (the fields a compute host uses).
#[derive(Debug, Clone, PartialEq)]
pub struct Flavor {
    pub name: String,
    pub memory_mb: i64,
    pub vcpus: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub swap: i64,
    pub extra_specs: Map<String, Value>,
}

impl Flavor {
    pub fn from_primitive(v: &Value) -> Result<Self, ObjectError> {
        let o = NovaObject::from_primitive_of(v, "Flavor")?;
        let int = |f: &str| o.get_i64(f).unwrap_or(0);
        Ok(Flavor {
            name: o.get_str("name").unwrap_or_default().to_string(),
            memory_mb: int("memory_mb"),
            vcpus: int("vcpus"),
            root_gb: int("root_gb"),
            ephemeral_gb: int("ephemeral_gb"),
            swap: int("swap"),
            extra_specs: o
                .get("extra_specs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        })
    }
}

/// The Glance image record as `build_and_run_instance` passes it (a plain dict),
/// or an ImageMeta object: the fields the driver needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageMeta {
    pub id: Option<String>,
    pub name: Option<String>,
    pub container_format: Option<String>,
    pub disk_format: Option<String>,
    pub properties: Map<String, Value>,
}

impl ImageMeta {
    /// From the plain image dict of build/rebuild (`image` / `image_meta` args),
    /// or from an ImageMeta object primitive.
    pub fn from_value(v: &Value) -> Self {
        let (data, props) = if v.get("nova_object.name").is_some() {
            let d = v.get("nova_object.data").cloned().unwrap_or(Value::Null);
            let p = d
                .get("properties")
                .and_then(|p| p.get("nova_object.data"))
                .cloned()
                .unwrap_or(Value::Null);
            (d, p)
        } else {
            (v.clone(), v.get("properties").cloned().unwrap_or(Value::Null))
        };
        let s = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
        ImageMeta {
            id: s("id"),
            name: s("name"),
            container_format: s("container_format"),
            disk_format: s("disk_format"),
            properties: props.as_object().cloned().unwrap_or_default(),
        }
    }

    /// `os_command_line` image property (the command the old driver ran).
    pub fn os_command_line(&self) -> Option<&str> {
        self.properties
            .get("os_command_line")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_request() -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wire/compute-bound/build_and_run_instance.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v["oslo_message"]["args"].clone()
    }

    #[test]
    fn instance_from_captured_build_request() {
        let args = build_request();
        let i = Instance::from_primitive(&args["instance"]).unwrap();
        assert_eq!(i.uuid(), "003a5dbb-fd82-4d17-9f70-c0e8529af5a1");
        assert_eq!(i.vm_state(), Some(vm_state::BUILDING));
        assert_eq!(i.task_state(), Some(task_state::SCHEDULING));
        assert_eq!(i.memory_mb(), 512);
        assert_eq!(i.vcpus(), 1);
        assert_eq!(i.flavor().unwrap().name, "m1.tiny");
        assert_eq!(i.network_info_json(), "[]");
        assert!(i.user_data().is_none());
        let img = ImageMeta::from_value(&args["image"]);
        assert_eq!(img.container_format.as_deref(), Some("docker"));
        assert_eq!(img.id.as_deref(), Some("e4f42838-c0d7-4916-b706-e16d761a0f5d"));
        let spec_img = ImageMeta::from_value(&args["request_spec"]["nova_object.data"]["image"]);
        assert_eq!(spec_img.container_format.as_deref(), Some("docker"));
    }

    #[test]
    fn state_setters_mark_changes() {
        let args = build_request();
        let mut i = Instance::from_primitive(&args["instance"]).unwrap();
        i.0.reset_changes();
        i.set_vm_state(vm_state::ACTIVE);
        i.set_task_state(None);
        i.set_power_state(crate::virt::PowerState::Running);
        assert_eq!(i.0.changes, vec!["vm_state", "task_state", "power_state"]);
        let p = i.to_primitive();
        assert_eq!(p["nova_object.data"]["task_state"], Value::Null);
        assert_eq!(p["nova_object.data"]["power_state"], 1);
    }

    #[test]
    fn wrong_class_refused() {
        let args = build_request();
        assert!(Instance::from_primitive(&args["request_spec"]).is_err());
    }
}
