//! The virt layer: the [`ComputeDriver`] seam and its driver-neutral types, and
//! the Docker driver behind it.
//!
//! - [`driver`]: the trait, power states, instance info, listing, host
//!   resources, lifecycle events;
//! - [`spec`]: what to run ([`InstanceSpec`]);
//! - [`diagnostics`]: Nova's diagnostics shapes;
//! - [`console`]: an interactive console session ([`ConsoleIo`]);
//! - [`error`]: [`DriverError`] and the Nova exceptions it becomes;
//! - [`timed`]: the seam's metrics ([`timed::Timed`] wraps a driver);
//! - [`docker`]: the Docker engine through bollard (the only place bollard types
//!   appear).

pub mod console;
pub mod diagnostics;
pub mod docker;
pub mod driver;
pub mod error;
pub mod spec;
pub mod timed;

pub use console::{ConsoleIo, ConsoleKind};
pub use diagnostics::Diagnostics;
pub use driver::{
    ComputeDriver, EventKind, HostResources, InstanceInfo, InstanceSummary, LifecycleEvent,
    PowerState, RebootType,
};
pub use error::DriverError;
pub use spec::{split_command_line, split_hostname, InstanceSpec};

/// Labels that mark a container as one of our instances. A container without
/// `LABEL_MANAGED_BY = MANAGED_BY` is never ours, whatever its name.
pub const LABEL_MANAGED_BY: &str = "org.openstack.nova.managed-by";
pub const MANAGED_BY: &str = "nova-docker";
pub const LABEL_INSTANCE_UUID: &str = "org.openstack.nova.instance-uuid";
pub const LABEL_HOST: &str = "org.openstack.nova.host";
pub const LABEL_PROJECT_ID: &str = "org.openstack.nova.project-id";
pub const LABEL_USER_ID: &str = "org.openstack.nova.user-id";

/// Container name of an instance.
pub fn container_name(instance_uuid: &str) -> String {
    format!("nova-{instance_uuid}")
}
