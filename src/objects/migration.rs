//! A typed view of the Migration object of a resize (nova/objects/migration.py):
//! the fields the compute service reads and the status it writes.

use serde_json::{json, Value};

use super::{NovaObject, ObjectError};

/// A Migration as the conductor and the API made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    obj: NovaObject,
}

impl Migration {
    pub fn from_primitive(v: &Value) -> Result<Self, ObjectError> {
        let obj = NovaObject::from_primitive_of(v, "Migration")?;
        if obj.get_str("uuid").is_none() {
            return Err(ObjectError::Field {
                name: "Migration".into(),
                field: "uuid".into(),
                reason: "missing".into(),
            });
        }
        Ok(Migration { obj })
    }

    pub fn object(&self) -> &NovaObject {
        &self.obj
    }
    pub fn object_mut(&mut self) -> &mut NovaObject {
        &mut self.obj
    }
    pub fn to_primitive(&self) -> Value {
        self.obj.to_primitive()
    }

    /// The placement consumer holding the source's resources during the move.
    pub fn uuid(&self) -> &str {
        self.obj.get_str("uuid").unwrap_or_default()
    }
    pub fn status(&self) -> &str {
        self.obj.get_str("status").unwrap_or_default()
    }
    pub fn source_compute(&self) -> Option<&str> {
        self.obj.get_str("source_compute")
    }
    pub fn dest_compute(&self) -> Option<&str> {
        self.obj.get_str("dest_compute")
    }
    pub fn source_node(&self) -> Option<&str> {
        self.obj.get_str("source_node")
    }
    pub fn dest_node(&self) -> Option<&str> {
        self.obj.get_str("dest_node")
    }
    pub fn dest_compute_id(&self) -> Option<i64> {
        self.obj.get_i64("dest_compute_id")
    }
    /// A resize (the flavor changes) rather than a migration.
    pub fn changes_flavor(&self) -> bool {
        self.obj.get_i64("old_instance_type_id") != self.obj.get_i64("new_instance_type_id")
    }
    /// Both ends on the same host.
    pub fn same_host(&self) -> bool {
        self.source_compute().is_some() && self.source_compute() == self.dest_compute()
    }

    pub fn set_status(&mut self, status: &str) {
        self.obj.set("status", json!(status))
    }
    /// `_claim_existing_migration`: this host is the destination.
    pub fn set_destination(&mut self, host: &str, compute_id: Option<i64>, host_ip: &str) {
        self.obj.set("dest_compute", json!(host));
        self.obj.set("dest_node", json!(host));
        if let Some(id) = compute_id {
            self.obj.set("dest_compute_id", json!(id));
        }
        self.obj.set("dest_host", json!(host_ip));
    }
}
