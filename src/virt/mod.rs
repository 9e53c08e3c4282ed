//! The virt layer: what Nova knows of an instance's power state, and the Docker driver.

pub mod docker;

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

/// nova/compute/power_state.py
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PowerState {
    NoState = 0,
    Running = 1,
    Paused = 3,
    Shutdown = 4,
    Crashed = 6,
    Suspended = 7,
}

impl PowerState {
    pub fn as_int(self) -> i64 {
        self as u8 as i64
    }

    pub fn from_int(v: i64) -> Option<Self> {
        Some(match v {
            0 => Self::NoState,
            1 => Self::Running,
            3 => Self::Paused,
            4 => Self::Shutdown,
            6 => Self::Crashed,
            7 => Self::Suspended,
            _ => return None,
        })
    }

    /// The name Nova prints (`power_state.STATE_MAP`).
    pub fn name(self) -> &'static str {
        match self {
            Self::NoState => "pending",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
            Self::Crashed => "crashed",
            Self::Suspended => "suspended",
        }
    }
}

/// What a driver knows of one instance right now (`get_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub state: PowerState,
    /// The hypervisor's own id of the instance (the Docker container id).
    pub internal_id: String,
    /// The init process on the host, while the instance runs (for the networking code).
    pub pid: Option<u32>,
    /// The engine's own status word ("running", "exited", ...).
    pub status: String,
    /// Exit code of the last run, once it has stopped.
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// nova.compute.manager reboot_type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootType {
    Soft,
    Hard,
}

impl RebootType {
    /// "SOFT" / "HARD" as Nova sends them; anything else is None.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SOFT" => Some(Self::Soft),
            "HARD" => Some(Self::Hard),
            _ => None,
        }
    }
}
