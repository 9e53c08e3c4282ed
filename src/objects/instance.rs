//! Typed views of Instance, Flavor and ImageMeta.

use serde_json::{json, Map, Value};

use super::{NovaObject, ObjectError, TaskState, VmState};
use crate::network::NetworkInfo;
use crate::virt::PowerState;

/// An Instance object with typed access to the fields the compute service
/// reads and writes. Its network_info is parsed once, when the object arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    obj: NovaObject,
    network_info: NetworkInfo,
}

fn field_err(field: &str, reason: impl Into<String>) -> ObjectError {
    ObjectError::Field {
        name: "Instance".into(),
        field: field.into(),
        reason: reason.into(),
    }
}

impl Instance {
    /// Read an Instance primitive: it must have a uuid, states Nova defines and
    /// a network_info (if any) in Nova's VIF model.
    pub fn from_primitive(v: &Value) -> Result<Self, ObjectError> {
        Self::from_object(NovaObject::from_primitive_of(v, "Instance")?)
    }

    pub fn from_object(obj: NovaObject) -> Result<Self, ObjectError> {
        if obj.get_str("uuid").is_none() {
            return Err(field_err("uuid", "missing"));
        }
        if let Some(s) = obj.get_str("vm_state") {
            VmState::parse(s)
                .ok_or_else(|| field_err("vm_state", format!("unknown state {s:?}")))?;
        }
        if let Some(s) = obj.get_str("task_state") {
            TaskState::parse(s)
                .ok_or_else(|| field_err("task_state", format!("unknown task state {s:?}")))?;
        }
        let network_info = match info_cache_network_info(&obj) {
            Some(text) => {
                NetworkInfo::parse(&text).map_err(|e| field_err("info_cache", e.to_string()))?
            }
            None => NetworkInfo::default(),
        };
        Ok(Instance { obj, network_info })
    }

    pub fn to_primitive(&self) -> Value {
        self.obj.to_primitive()
    }

    /// The object as it travels (for the conductor client).
    pub fn object(&self) -> &NovaObject {
        &self.obj
    }

    pub fn object_mut(&mut self) -> &mut NovaObject {
        &mut self.obj
    }

    /// Fields changed since the object arrived or was last saved.
    pub fn changes(&self) -> &[String] {
        &self.obj.changes
    }

    pub fn uuid(&self) -> &str {
        self.obj.get_str("uuid").unwrap_or_default()
    }

    fn opt_str(&self, f: &str) -> Option<&str> {
        self.obj.get_str(f)
    }

    pub fn vm_state(&self) -> Option<VmState> {
        self.opt_str("vm_state").and_then(VmState::parse)
    }
    pub fn task_state(&self) -> Option<TaskState> {
        self.opt_str("task_state").and_then(TaskState::parse)
    }
    pub fn power_state(&self) -> PowerState {
        self.obj
            .get_i64("power_state")
            .and_then(PowerState::from_int)
            .unwrap_or(PowerState::NoState)
    }
    pub fn host(&self) -> Option<&str> {
        self.opt_str("host")
    }
    pub fn node(&self) -> Option<&str> {
        self.opt_str("node")
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
    pub fn availability_zone(&self) -> Option<&str> {
        self.opt_str("availability_zone").filter(|s| !s.is_empty())
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
            .or_else(|| self.obj.get_i64("memory_mb"))
            .unwrap_or(0)
    }
    pub fn vcpus(&self) -> i64 {
        self.flavor()
            .map(|f| f.vcpus)
            .or_else(|| self.obj.get_i64("vcpus"))
            .unwrap_or(0)
    }
    pub fn root_gb(&self) -> i64 {
        self.flavor()
            .map(|f| f.root_gb)
            .or_else(|| self.obj.get_i64("root_gb"))
            .unwrap_or(0)
    }

    /// `metadata`, the user's key/value pairs (the old driver put them in the environment).
    pub fn metadata(&self) -> Vec<(String, String)> {
        str_map(self.obj.get("metadata"))
    }

    pub fn system_metadata(&self) -> Vec<(String, String)> {
        str_map(self.obj.get("system_metadata"))
    }

    pub fn flavor(&self) -> Option<Flavor> {
        self.obj
            .get("flavor")
            .filter(|v| !v.is_null())
            .and_then(|v| Flavor::from_primitive(v).ok())
    }

    /// `info_cache.network_info`, parsed (empty when the instance has none).
    pub fn network_info(&self) -> &NetworkInfo {
        &self.network_info
    }

    /// Whether the message carried the info cache (`start_instance` and
    /// `stop_instance` send the instance without it).
    pub fn has_info_cache(&self) -> bool {
        self.obj.get("info_cache").is_some_and(|v| !v.is_null())
    }

    /// The `InstanceInfoCache` object holding `nw` (what Nova's network API
    /// saves through the conductor).
    pub fn info_cache_object(&self, nw: &NetworkInfo) -> NovaObject {
        let mut ic = NovaObject::new("InstanceInfoCache", "1.5");
        ic.set("network_info", json!(nw.to_json()));
        ic.set("instance_uuid", json!(self.uuid()));
        ic
    }

    /// Take `nw` as the instance's network_info (saved on its own through
    /// [`Self::info_cache_object`], so the instance's changes do not list it).
    pub fn set_network_info_saved(&mut self, nw: NetworkInfo) {
        let mut ic = NovaObject::new("InstanceInfoCache", "1.5");
        ic.put("network_info", json!(nw.to_json()));
        ic.put("instance_uuid", json!(self.uuid()));
        self.obj.put("info_cache", ic.to_primitive());
        self.network_info = nw;
    }

    // ---- the fields the compute manager writes; each marks its change ----

    pub fn set_vm_state(&mut self, s: VmState) {
        self.obj.set("vm_state", json!(s.as_str()))
    }
    pub fn set_task_state(&mut self, s: Option<TaskState>) {
        self.obj
            .set("task_state", s.map_or(Value::Null, |s| json!(s.as_str())))
    }
    pub fn set_power_state(&mut self, p: PowerState) {
        self.obj.set("power_state", json!(p.as_int()))
    }
    /// The claim (`instance.host`, `node`, `launched_on`, `compute_id`), or its
    /// undoing with `None` (`_nil_out_instance_obj_host_and_node`).
    pub fn set_host_and_node(&mut self, host: Option<&str>, compute_id: Option<i64>) {
        let h = host.map_or(Value::Null, |h| json!(h));
        self.obj.set("host", h.clone());
        self.obj.set("node", h.clone());
        if host.is_some() {
            self.obj.set("launched_on", h);
        }
        self.obj
            .set("compute_id", compute_id.map_or(Value::Null, |i| json!(i)));
    }
    pub fn set_launched_at_now(&mut self) {
        self.obj.set("launched_at", json!(super::now()))
    }
    pub fn set_terminated_at_now(&mut self) {
        self.obj.set("terminated_at", json!(super::now()))
    }
    pub fn set_progress(&mut self, p: i64) {
        self.obj.set("progress", json!(p))
    }
    /// One of the instance's flavors as it travels (a Flavor primitive).
    pub fn flavor_primitive(&self, slot: FlavorSlot) -> Option<Value> {
        self.obj.get(slot.field()).filter(|v| !v.is_null()).cloned()
    }
    /// Set (or, with `None`, clear) `old_flavor` or `new_flavor`.
    pub fn set_stashed_flavor(&mut self, slot: FlavorSlot, flavor: Option<Value>) {
        self.obj.set(slot.field(), flavor.unwrap_or(Value::Null))
    }
    /// `_set_instance_info`: `flavor` becomes the instance's, with the
    /// fields Nova copies from it.
    pub fn set_current_flavor(&mut self, flavor: &Value) {
        let d = flavor
            .get("nova_object.data")
            .cloned()
            .unwrap_or(Value::Null);
        for (field, key) in [
            ("instance_type_id", "id"),
            ("memory_mb", "memory_mb"),
            ("vcpus", "vcpus"),
            ("root_gb", "root_gb"),
            ("ephemeral_gb", "ephemeral_gb"),
        ] {
            if let Some(v) = d.get(key).filter(|v| !v.is_null()) {
                self.obj.set(field, v.clone());
            }
        }
        self.obj.set("flavor", flavor.clone())
    }

    pub fn set_image_ref(&mut self, image_ref: &str) {
        self.obj.set("image_ref", json!(image_ref))
    }

    /// One `system_metadata` key.
    pub fn system_metadata_value(&self, key: &str) -> Option<String> {
        self.system_metadata()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// `system_metadata` with `set` given or replaced and `remove` gone,
    /// saved whole (as Nova's `Instance.save` writes the dict).
    pub fn update_system_metadata(&mut self, set: &[(&str, String)], remove: &[&str]) {
        let mut m: Map<String, Value> = self
            .obj
            .get("system_metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for k in remove {
            m.remove(*k);
        }
        for (k, v) in set {
            m.insert((*k).to_string(), json!(v));
        }
        self.obj.set("system_metadata", Value::Object(m))
    }

    /// Re-read what the typed view derives from the object (its network_info)
    /// after the object was updated in place (an `object_action` reply). A
    /// network_info that no longer parses keeps the last good one.
    pub fn refresh_derived(&mut self) {
        if let Some(text) = info_cache_network_info(&self.obj) {
            if let Ok(n) = NetworkInfo::parse(&text) {
                self.network_info = n;
            }
        }
    }

    /// Forget the changes (after they were saved).
    pub fn reset_changes(&mut self) {
        self.obj.reset_changes()
    }
}

/// Which of an instance's flavors: its own, or the one a resize stashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlavorSlot {
    Current,
    /// The flavor before the resize (kept for a revert).
    Old,
    /// The flavor asked for (stashed by `prep_resize`).
    New,
}

impl FlavorSlot {
    fn field(self) -> &'static str {
        match self {
            FlavorSlot::Current => "flavor",
            FlavorSlot::Old => "old_flavor",
            FlavorSlot::New => "new_flavor",
        }
    }
}

/// `info_cache.network_info` as the JSON text Nova stores.
fn info_cache_network_info(obj: &NovaObject) -> Option<String> {
    obj.get("info_cache")
        .and_then(|ic| ic.get("nova_object.data"))
        .and_then(|d| d.get("network_info"))
        .and_then(|n| match n {
            Value::String(s) => Some(s.clone()),
            Value::Array(_) => Some(n.to_string()),
            _ => None,
        })
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
            (
                v.clone(),
                v.get("properties").cloned().unwrap_or(Value::Null),
            )
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

    /// The image an instance was booted from, as Nova keeps it in the
    /// instance's system_metadata: `image_<key>` (Nova's
    /// `utils.get_image_from_system_metadata`), the id from `image_ref`.
    pub fn from_system_metadata(image_ref: Option<&str>, sysmeta: &[(String, String)]) -> Self {
        let mut m = ImageMeta {
            id: image_ref.filter(|r| !r.is_empty()).map(str::to_string),
            ..Default::default()
        };
        for (k, v) in sysmeta {
            let Some(key) = k.strip_prefix("image_") else {
                continue;
            };
            match key {
                "container_format" => m.container_format = Some(v.clone()),
                "disk_format" => m.disk_format = Some(v.clone()),
                "min_ram" | "min_disk" | "base_image_ref" => {}
                _ => {
                    m.properties
                        .insert(key.to_string(), Value::String(v.clone()));
                }
            }
        }
        m
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
        assert_eq!(i.vm_state(), Some(VmState::Building));
        assert_eq!(i.task_state(), Some(TaskState::Scheduling));
        assert_eq!(i.memory_mb(), 512);
        assert_eq!(i.vcpus(), 1);
        assert_eq!(i.flavor().unwrap().name, "m1.tiny");
        assert!(i.network_info().is_empty());
        assert!(i.user_data().is_none());
        let img = ImageMeta::from_value(&args["image"]);
        assert_eq!(img.container_format.as_deref(), Some("docker"));
        assert_eq!(
            img.id.as_deref(),
            Some("e4f42838-c0d7-4916-b706-e16d761a0f5d")
        );
        let spec_img = ImageMeta::from_value(&args["request_spec"]["nova_object.data"]["image"]);
        assert_eq!(spec_img.container_format.as_deref(), Some("docker"));
    }

    #[test]
    fn state_setters_mark_changes() {
        let args = build_request();
        let mut i = Instance::from_primitive(&args["instance"]).unwrap();
        i.reset_changes();
        i.set_vm_state(VmState::Active);
        i.set_task_state(None);
        i.set_power_state(crate::virt::PowerState::Running);
        assert_eq!(i.changes(), ["vm_state", "task_state", "power_state"]);
        let p = i.to_primitive();
        assert_eq!(p["nova_object.data"]["task_state"], Value::Null);
        assert_eq!(p["nova_object.data"]["power_state"], 1);
    }

    #[test]
    fn unknown_states_and_bad_network_info_are_refused() {
        let args = build_request();
        let mut v = args["instance"].clone();
        v["nova_object.data"]["task_state"] = json!("dancing");
        let e = Instance::from_primitive(&v).unwrap_err();
        assert!(e.to_string().contains("dancing"), "{e}");
        let mut v = args["instance"].clone();
        v["nova_object.data"]["info_cache"]["nova_object.data"]["network_info"] =
            json!("[{\"id\": 3}]");
        let e = Instance::from_primitive(&v).unwrap_err();
        assert!(e.to_string().contains("info_cache"), "{e}");
    }

    #[test]
    fn wrong_class_refused() {
        let args = build_request();
        assert!(Instance::from_primitive(&args["request_spec"]).is_err());
    }
}
