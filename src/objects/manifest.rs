//! The object version manifest nova-compute sends with every
//! `object_class_action_versions` call: the conductor backports results to these.

use serde_json::{Map, Value};

/// Object classes and the versions we speak (nova 34.x).
pub const OBJECT_VERSIONS: &[(&str, &str)] = &[
    ("BlockDeviceMapping", "1.21"),
    ("BlockDeviceMappingList", "1.18"),
    ("ComputeNode", "1.19"),
    ("ComputeNodeList", "1.17"),
    ("ConsoleAuthToken", "1.3"),
    ("DeviceBus", "1.0"),
    ("DeviceMetadata", "1.0"),
    ("EC2Ids", "1.0"),
    ("Flavor", "1.2"),
    ("HVSpec", "1.2"),
    ("ImageMeta", "1.8"),
    ("ImageMetaProps", "1.44"),
    ("Instance", "2.8"),
    ("InstanceAction", "1.2"),
    ("InstanceActionEvent", "1.4"),
    ("InstanceDeviceMetadata", "1.0"),
    ("InstanceExternalEvent", "1.5"),
    ("InstanceFault", "1.2"),
    ("InstanceInfoCache", "1.5"),
    ("InstanceList", "2.6"),
    ("InstanceNUMACell", "1.6"),
    ("InstanceNUMATopology", "1.3"),
    ("InstancePCIRequest", "1.4"),
    ("InstancePCIRequests", "1.1"),
    ("KeyPair", "1.4"),
    ("KeyPairList", "1.3"),
    ("Migration", "1.8"),
    ("MigrationContext", "1.2"),
    ("MigrationList", "1.5"),
    ("PciDevice", "1.7"),
    ("PciDeviceList", "1.3"),
    ("PciDevicePool", "1.1"),
    ("PciDevicePoolList", "1.1"),
    ("RequestSpec", "1.15"),
    ("Resource", "1.0"),
    ("ResourceList", "1.0"),
    ("ResourceMetadata", "1.0"),
    ("SecurityGroup", "1.2"),
    ("SecurityGroupList", "1.1"),
    ("Service", "1.22"),
    ("ServiceList", "1.19"),
    ("ShareMapping", "1.2"),
    ("ShareMappingList", "1.1"),
    ("Tag", "1.1"),
    ("TagList", "1.1"),
    ("TrustedCerts", "1.0"),
    ("VirtCPUFeature", "1.0"),
    ("VirtCPUModel", "1.0"),
    ("VirtCPUTopology", "1.0"),
    ("VirtualInterface", "1.3"),
];

/// The `object_versions` dict for a call (nova sends the whole tree of the
/// class it asks about; sending every class we know is accepted the same way).
pub fn object_versions() -> Value {
    let mut m = Map::new();
    for (k, v) in OBJECT_VERSIONS {
        m.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    Value::Object(m)
}
