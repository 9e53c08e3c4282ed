//! What `get_instance_diagnostics` reports of an instance: the fields of Nova's
//! `objects.Diagnostics`, filled in by a driver.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuDiagnostics {
    pub id: Option<i64>,
    /// CPU time in nanoseconds.
    pub time: Option<i64>,
    /// Percent.
    pub utilisation: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NicDiagnostics {
    pub mac_address: Option<String>,
    pub rx_octets: Option<i64>,
    pub rx_errors: Option<i64>,
    pub rx_drop: Option<i64>,
    pub rx_packets: Option<i64>,
    pub rx_rate: Option<i64>,
    pub tx_octets: Option<i64>,
    pub tx_errors: Option<i64>,
    pub tx_drop: Option<i64>,
    pub tx_packets: Option<i64>,
    pub tx_rate: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskDiagnostics {
    pub read_bytes: Option<i64>,
    pub read_requests: Option<i64>,
    pub write_bytes: Option<i64>,
    pub write_requests: Option<i64>,
    pub errors_count: Option<i64>,
}

/// MiB, as the libvirt driver reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryDiagnostics {
    pub maximum: Option<i64>,
    pub used: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Power state name ("running", "paused", ...).
    pub state: String,
    pub driver: String,
    pub hypervisor: Option<String>,
    pub hypervisor_os: Option<String>,
    /// Seconds since the container started.
    pub uptime: Option<i64>,
    pub config_drive: bool,
    pub memory_details: MemoryDiagnostics,
    pub cpu_details: Vec<CpuDiagnostics>,
    pub nic_details: Vec<NicDiagnostics>,
    pub disk_details: Vec<DiskDiagnostics>,
    pub num_cpus: i64,
    pub num_nics: i64,
    pub num_disks: i64,
}

impl Diagnostics {
    /// `nova.objects.diagnostics.Diagnostics` as a primitive (what
    /// `get_instance_diagnostics` returns).
    pub fn to_primitive(&self) -> Value {
        fn obj(name: &str, data: Value) -> Value {
            json!({"nova_object.name": name, "nova_object.namespace": "nova",
                   "nova_object.version": "1.0", "nova_object.data": data})
        }
        let list = |name: &str, v: &Value| -> Value {
            Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| obj(name, x.clone()))
                    .collect(),
            )
        };
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut data = v.as_object().cloned().unwrap_or_default();
        // Nova's HypervisorDriverField accepts only libvirt, xenapi, vmwareapi,
        // ironic and hyperv; any other value makes nova-api fail to read the reply.
        // The engine is named in `hypervisor` instead, which is a free string.
        data.insert("driver".into(), json!("libvirt"));
        data.insert(
            "memory_details".into(),
            obj("MemoryDiagnostics", v["memory_details"].clone()),
        );
        data.insert(
            "cpu_details".into(),
            list("CpuDiagnostics", &v["cpu_details"]),
        );
        data.insert(
            "nic_details".into(),
            list("NicDiagnostics", &v["nic_details"]),
        );
        data.insert(
            "disk_details".into(),
            list("DiskDiagnostics", &v["disk_details"]),
        );
        obj("Diagnostics", Value::Object(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_names_a_driver_nova_accepts() {
        let d = Diagnostics {
            state: "running".into(),
            driver: "docker".into(),
            hypervisor: Some("docker".into()),
            cpu_details: vec![CpuDiagnostics {
                id: Some(0),
                time: Some(5),
                utilisation: None,
            }],
            ..Default::default()
        };
        let p = d.to_primitive();
        assert_eq!(p["nova_object.name"], "Diagnostics");
        assert_eq!(p["nova_object.data"]["driver"], "libvirt");
        assert_eq!(p["nova_object.data"]["hypervisor"], "docker");
        let cpu = &p["nova_object.data"]["cpu_details"][0];
        assert_eq!(cpu["nova_object.name"], "CpuDiagnostics");
        assert_eq!(cpu["nova_object.data"]["time"], 5);
        assert_eq!(
            p["nova_object.data"]["memory_details"]["nova_object.name"],
            "MemoryDiagnostics"
        );
    }
}
