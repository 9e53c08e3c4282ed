//! The driver seam: what the compute manager asks of a hypervisor (here, a
//! container engine), in driver-neutral types. [`super::docker::DockerDriver`]
//! implements it; the manager's state machine is tested against a fake.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde::Serialize;

use super::{ConsoleIo, Diagnostics, DriverError, InstanceSpec};

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

    /// Not running: shut down, crashed, or gone.
    pub fn is_stopped(self) -> bool {
        matches!(self, Self::Shutdown | Self::Crashed | Self::NoState)
    }
}

/// What a driver knows of one instance right now (`get_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub state: PowerState,
    /// The hypervisor's own id of the instance (the container id).
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

/// One of our instances as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSummary {
    pub uuid: String,
    /// The engine's id of the container.
    pub id: String,
    /// The names it has (an instance's own container is `nova-<uuid>`; a
    /// container set aside by a rebuild has another).
    pub names: Vec<String>,
    /// The image reference and id it runs.
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub running: bool,
    /// The flavor size recorded on it.
    pub memory_mb: i64,
    pub vcpus: i64,
    /// Bytes written to its own filesystem layer, when asked for.
    pub size_rw: Option<i64>,
}

/// What the host offers and what our instances use of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostResources {
    pub vcpus: i64,
    pub vcpus_used: i64,
    pub memory_mb: i64,
    pub memory_mb_used: i64,
    /// Size and free space of the filesystem holding the engine's data, in GiB.
    pub local_gb: i64,
    pub local_gb_used: i64,
    pub disk_available_least: i64,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub hypervisor_hostname: String,
    pub running_vms: i64,
    pub docker_root_dir: String,
}

/// A lifecycle change of one of our instances, from the engine's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub uuid: String,
    pub container_id: String,
    pub kind: EventKind,
    /// For `Died`: the exit code the engine reported.
    pub exit_code: Option<i64>,
    /// Unix time in nanoseconds.
    pub time_nano: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Started,
    Died,
    Stopped,
    Paused,
    Unpaused,
    Oom,
    Destroyed,
}

impl EventKind {
    /// The instance is not running any more (what the power sync follows).
    pub fn ends_a_run(self) -> bool {
        matches!(
            self,
            EventKind::Died | EventKind::Stopped | EventKind::Oom | EventKind::Destroyed
        )
    }
}

/// A hypervisor as the compute manager uses it. Every operation confirms the
/// instance's real state afterwards and reports it; none assumes that a call the
/// engine accepted did what it says.
#[async_trait]
pub trait ComputeDriver: Send + Sync + 'static {
    /// Create and start the instance of `spec` (its image already present).
    /// On failure nothing of it is left.
    async fn spawn(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError>;

    /// Replace the instance by one of `spec` (a new image; same identity). The old
    /// one is kept aside until the new one runs; if the new one fails, the old one
    /// is put back as it was.
    async fn rebuild(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError>;

    /// Give the running instance the limits of `spec` (a resize on the same
    /// host: its new flavor's memory and CPUs, within its user_data options)
    /// in place; the container keeps running, with its processes.
    async fn resize(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError>;

    /// Stop (within `timeout`) and remove the instance. Idempotent.
    async fn destroy(&self, uuid: &str, timeout: Duration) -> Result<(), DriverError>;

    /// Graceful stop within `timeout`, then kill. Already stopped is fine.
    async fn power_off(&self, uuid: &str, timeout: Duration) -> Result<InstanceInfo, DriverError>;

    /// Start a stopped instance (also unfreezes a paused or suspended one).
    async fn power_on(&self, uuid: &str) -> Result<InstanceInfo, DriverError>;

    /// Soft: graceful stop, then start. Hard: kill, then start (also brings up a
    /// stopped or crashed instance).
    async fn reboot(&self, uuid: &str, kind: RebootType) -> Result<InstanceInfo, DriverError>;

    async fn pause(&self, uuid: &str) -> Result<InstanceInfo, DriverError>;
    async fn unpause(&self, uuid: &str) -> Result<InstanceInfo, DriverError>;
    async fn suspend(&self, uuid: &str) -> Result<InstanceInfo, DriverError>;
    /// Thaw a suspended instance (and start it if it stopped meanwhile).
    async fn resume(&self, uuid: &str) -> Result<InstanceInfo, DriverError>;

    /// The power state and details of an instance; `NotFound` when it has none.
    async fn get_info(&self, uuid: &str) -> Result<InstanceInfo, DriverError>;

    /// What the instance printed: the last `tail_length` lines if given.
    async fn get_console_output(
        &self,
        uuid: &str,
        tail_length: Option<usize>,
    ) -> Result<String, DriverError>;

    /// An interactive console of a running instance (see [`ConsoleKind`](super::ConsoleKind)
    /// for what it is attached to).
    async fn open_console(&self, uuid: &str) -> Result<ConsoleIo, DriverError>;

    /// Nova's `get_instance_diagnostics`.
    async fn get_diagnostics(&self, uuid: &str) -> Result<Diagnostics, DriverError>;

    /// The legacy `get_diagnostics` flat dict.
    async fn get_legacy_diagnostics(
        &self,
        uuid: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, DriverError>;

    /// Every instance of ours on this host (the one listing everything else uses).
    async fn list_instances(&self) -> Result<Vec<InstanceSummary>, DriverError>;

    /// Host capacity and what our instances use of it.
    async fn host_resources(&self) -> Result<HostResources, DriverError>;

    /// Lifecycle events of our instances from now on. The stream ends when the
    /// engine connection drops; the caller subscribes again and re-syncs.
    fn events(&self) -> BoxStream<'static, Result<LifecycleEvent, DriverError>>;
}
