//! The compute RPC API (nova/compute/rpcapi.py, 6.x) as typed requests: each
//! message is decoded once, here, into a [`ComputeRequest`]; the handlers never
//! see the raw argument map. The methods we serve are [`Method`]; every other
//! method of the API is [`UNSUPPORTED`] and answers NotSupported. The endpoint's
//! method list is made of these two lists, so a method cannot be listed as
//! handled and yet have no handler.

use serde_json::{Map, Value};

use super::power::PowerOp;
use super::reschedule::Retry;
use crate::exception::NovaException;
use crate::objects::{ImageMeta, Instance, Migration, NovaObject, VmState};
use crate::virt::RebootType;

macro_rules! methods {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// A compute RPC method this service handles.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Method {
            $($variant),*
        }

        impl Method {
            pub const ALL: &'static [Method] = &[$(Method::$variant),*];

            pub const fn name(self) -> &'static str {
                match self {
                    $(Method::$variant => $name),*
                }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Method::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

methods! {
    BuildAndRunInstance = "build_and_run_instance",
    RebuildInstance = "rebuild_instance",
    TerminateInstance = "terminate_instance",
    StopInstance = "stop_instance",
    StartInstance = "start_instance",
    PauseInstance = "pause_instance",
    UnpauseInstance = "unpause_instance",
    SuspendInstance = "suspend_instance",
    ResumeInstance = "resume_instance",
    SoftDeleteInstance = "soft_delete_instance",
    RestoreInstance = "restore_instance",
    RebootInstance = "reboot_instance",
    SnapshotInstance = "snapshot_instance",
    BackupInstance = "backup_instance",
    GetConsoleOutput = "get_console_output",
    GetInstanceDiagnostics = "get_instance_diagnostics",
    GetDiagnostics = "get_diagnostics",
    GetHostUptime = "get_host_uptime",
    ExternalInstanceEvent = "external_instance_event",
    AttachInterface = "attach_interface",
    DetachInterface = "detach_interface",
    GetSerialConsole = "get_serial_console",
    ValidateConsolePort = "validate_console_port",
    CacheImages = "cache_images",
    CheckCanLiveMigrateDestination = "check_can_live_migrate_destination",
    CheckCanLiveMigrateSource = "check_can_live_migrate_source",
    ShelveInstance = "shelve_instance",
    ShelveOffloadInstance = "shelve_offload_instance",
    UnshelveInstance = "unshelve_instance",
    PrepResize = "prep_resize",
    ResizeInstance = "resize_instance",
    FinishResize = "finish_resize",
    ConfirmResize = "confirm_resize",
    RevertResize = "revert_resize",
    FinishRevertResize = "finish_revert_resize",
}

/// The rest of the compute RPC API: answered with NotSupported (the instance
/// the call was about gets a fault and keeps no task state).
pub const UNSUPPORTED: &[&str] = &[
    "add_fixed_ip_to_instance",
    "allow_share",
    "attach_volume",
    "change_instance_metadata",
    "check_instance_shared_storage",
    "confirm_snapshot_based_resize_at_source",
    "deny_share",
    "detach_volume",
    "drop_move_claim_at_destination",
    "finish_revert_snapshot_based_resize_at_source",
    "finish_snapshot_based_resize_at_dest",
    "get_mks_console",
    "get_spice_console",
    "get_vnc_console",
    "host_maintenance_mode",
    "host_power_action",
    "inject_network_info",
    "live_migration",
    "live_migration_abort",
    "live_migration_force_complete",
    "post_live_migration_at_destination",
    "pre_live_migration",
    "prep_snapshot_based_resize_at_dest",
    "prep_snapshot_based_resize_at_source",
    "quiesce_instance",
    "refresh_instance_security_rules",
    "remove_fixed_ip_from_instance",
    "remove_volume_connection",
    "rescue_instance",
    "reserve_block_device_name",
    "revert_snapshot_based_resize_at_dest",
    "rollback_live_migration_at_destination",
    "set_admin_password",
    "set_host_enabled",
    "swap_volume",
    "trigger_crash_dump",
    "unquiesce_instance",
    "unrescue_instance",
    "volume_snapshot_create",
    "volume_snapshot_delete",
];

/// Every method name the compute endpoint answers.
pub fn served_methods() -> Vec<&'static str> {
    Method::ALL
        .iter()
        .map(|m| m.name())
        .chain(UNSUPPORTED.iter().copied())
        .collect()
}

/// One decoded compute request.
#[derive(Debug, Clone)]
pub enum ComputeRequest {
    BuildAndRunInstance(Box<BuildRequest>),
    RebuildInstance(Box<RebuildRequest>),
    TerminateInstance(Instance),
    /// stop, start, pause, unpause, suspend, resume, soft delete, restore.
    Power(PowerOp, Instance),
    RebootInstance {
        instance: Instance,
        reboot_type: RebootType,
    },
    Snapshot(SnapshotRequest),
    GetConsoleOutput {
        instance: Instance,
        tail_length: Option<usize>,
    },
    GetInstanceDiagnostics(Instance),
    GetDiagnostics(Instance),
    GetHostUptime,
    ExternalInstanceEvent(Vec<ExternalEvent>),
    AttachInterface(AttachInterfaceRequest),
    DetachInterface {
        instance: Instance,
        port_id: String,
    },
    GetSerialConsole {
        instance: Instance,
        console_type: String,
    },
    /// `port` as the proxy sends it (a string).
    ValidateConsolePort {
        instance: Instance,
        port: String,
        console_type: String,
    },
    /// Pre-cache Glance images (aggregate image pre-cache, API 2.81).
    CacheImages(Vec<String>),
    /// The conductor's checks before a live migration, to this host
    /// (`destination`) or from it: refused, see [`super::moves`].
    LiveMigrationCheck {
        instance: Instance,
        destination: bool,
    },
    /// `shelve_instance`: the container committed to a Glance image, then
    /// (with `shelved_offload_time = 0`) offloaded; see [`super::shelve`].
    Shelve(ShelveRequest),
    /// `shelve_offload_instance`: a shelved instance's container and
    /// resources on this host given back.
    ShelveOffload {
        instance: Instance,
        clean_shutdown: bool,
    },
    /// `unshelve_instance`: a shelved-offloaded instance made again here from
    /// its shelved image.
    Unshelve(Box<UnshelveRequest>),
    /// One step of a resize or cold migration ([`super::resize`]).
    Resize(Box<ResizeStep>),
    /// A method of the API the driver does not support.
    Unsupported {
        method: &'static str,
        instance: Option<Instance>,
    },
}

/// `build_and_run_instance`.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub instance: Instance,
    pub image: ImageMeta,
    /// `None`: Nova's API sent none (an old caller); see [`NetworkRequest`].
    pub requested_networks: Option<Vec<NetworkRequest>>,
    /// Security group names (`["default"]` by default).
    pub security_groups: Vec<String>,
    /// What the conductor needs to try the build on another host.
    pub retry: Retry,
}

impl BuildRequest {
    /// The request asks for no network (`--nic none`, the only request being
    /// network_id `none`) or for nothing at all.
    pub fn no_networks(&self) -> bool {
        match &self.requested_networks {
            None => true,
            Some(r) => r.is_empty() || r.iter().all(NetworkRequest::is_none),
        }
    }
}

/// One `NetworkRequest` (nova/objects/network_request.py 1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkRequest {
    /// A network uuid, or the special values `none` and `auto`.
    pub network_id: Option<String>,
    /// A fixed IP asked for on that network.
    pub address: Option<String>,
    /// A port created beforehand.
    pub port_id: Option<String>,
    pub tag: Option<String>,
}

impl NetworkRequest {
    pub fn is_none(&self) -> bool {
        self.network_id.as_deref() == Some("none") && self.port_id.is_none()
    }
    pub fn is_auto(&self) -> bool {
        self.network_id.as_deref() == Some("auto") && self.port_id.is_none()
    }
}

/// `attach_interface` (a call; answers the new VIF).
#[derive(Debug, Clone)]
pub struct AttachInterfaceRequest {
    pub instance: Instance,
    /// One of the two: a network to make a port on, or a port made beforehand.
    pub network: NetworkRequest,
}

/// `rebuild_instance` (6.2).
#[derive(Debug, Clone)]
pub struct RebuildRequest {
    pub instance: Instance,
    /// The image to rebuild from (its record, from the request spec when the
    /// API sent one, else just its id).
    pub image: ImageMeta,
    /// Evacuation to this host (`recreate`): the instance's host is down.
    pub recreate: bool,
    /// The evacuation's Migration record (with `recreate`).
    pub migration: Option<Migration>,
    /// The state an evacuated instance ends in (API 2.95: `stopped`).
    pub target_state: Option<VmState>,
}

/// What a snapshot is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotKind {
    Snapshot,
    /// A backup, keeping the newest `rotation` of `backup_type`.
    Backup {
        backup_type: String,
        rotation: u32,
    },
}

/// `snapshot_instance` and `backup_instance`.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub instance: Instance,
    /// The Glance image Nova's API created to receive the data.
    pub image_id: String,
    pub kind: SnapshotKind,
}

/// `shelve_instance`.
#[derive(Debug, Clone)]
pub struct ShelveRequest {
    pub instance: Instance,
    /// The Glance image Nova's API created (`<name>-shelved`).
    pub image_id: String,
    /// Stop within `shutdown_timeout` (false: at once).
    pub clean_shutdown: bool,
}

/// `unshelve_instance`.
#[derive(Debug, Clone)]
pub struct UnshelveRequest {
    pub instance: Instance,
    /// The shelved image's record (the conductor read it from Glance); None
    /// when the instance's sysmeta names none (a volume-backed one).
    pub image: Option<ImageMeta>,
}

/// The steps of a resize (and of a cold migration, the same calls with the
/// flavor unchanged), each on the host Nova sends it to.
#[derive(Debug, Clone)]
pub enum ResizeStep {
    /// `prep_resize`, on the destination: the claim.
    Prep(MoveRequest),
    /// `resize_instance`, on the source: the container made ready to move.
    Resize(MoveRequest),
    /// `finish_resize`, on the destination: the container with the new
    /// flavor, the instance RESIZED.
    Finish {
        instance: Instance,
        migration: Migration,
        /// What the source passed on (the carrier image's id).
        disk_info: Option<String>,
    },
    /// `confirm_resize`, on the source: what the source kept goes.
    Confirm {
        instance: Instance,
        migration: Migration,
    },
    /// `revert_resize`, on the destination: what it made goes.
    Revert {
        instance: Instance,
        migration: Migration,
        request_spec: Option<Value>,
    },
    /// `finish_revert_resize`, on the source: the old flavor back.
    FinishRevert {
        instance: Instance,
        migration: Migration,
    },
}

/// The arguments `prep_resize` and `resize_instance` share.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub instance: Instance,
    pub migration: Migration,
    /// The image record as it came, passed on to the next steps.
    pub image: Value,
    /// The new flavor (a Flavor primitive, stashed as `new_flavor`).
    pub flavor: Value,
    pub clean_shutdown: bool,
    pub request_spec: Option<Value>,
}

impl ResizeStep {
    pub fn method(&self) -> Method {
        match self {
            ResizeStep::Prep(_) => Method::PrepResize,
            ResizeStep::Resize(_) => Method::ResizeInstance,
            ResizeStep::Finish { .. } => Method::FinishResize,
            ResizeStep::Confirm { .. } => Method::ConfirmResize,
            ResizeStep::Revert { .. } => Method::RevertResize,
            ResizeStep::FinishRevert { .. } => Method::FinishRevertResize,
        }
    }
}

/// One `InstanceExternalEvent` (1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalEvent {
    pub instance_uuid: String,
    /// `network-vif-plugged`, `network-changed`, ...
    pub name: String,
    /// `completed`, `failed` or `in-progress`.
    pub status: String,
    /// For network events: the port id.
    pub tag: Option<String>,
}

/// Reads the arguments of one message; every problem is an InvalidInput that
/// names the method and the argument.
struct Args<'a> {
    method: &'static str,
    args: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn bad(&self, arg: &str, why: impl std::fmt::Display) -> NovaException {
        NovaException::invalid_input(format!("{} argument {arg}: {why}", self.method))
    }

    fn get(&self, arg: &str) -> Option<&'a Value> {
        self.args.get(arg).filter(|v| !v.is_null())
    }

    fn instance(&self) -> Result<Instance, NovaException> {
        self.instance_at("instance")
    }

    fn instance_at(&self, arg: &str) -> Result<Instance, NovaException> {
        let v = self.get(arg).ok_or_else(|| self.bad(arg, "missing"))?;
        Instance::from_primitive(v).map_err(|e| self.bad(arg, e))
    }

    fn str(&self, arg: &str) -> Result<Option<String>, NovaException> {
        match self.get(arg) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(arg, format!("{v} is not a string"))),
        }
    }

    fn required_str(&self, arg: &str) -> Result<String, NovaException> {
        self.str(arg)?.ok_or_else(|| self.bad(arg, "missing"))
    }

    fn bool(&self, arg: &str, default: bool) -> Result<bool, NovaException> {
        match self.get(arg) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.bad(arg, format!("{v} is not a boolean"))),
        }
    }

    /// A non-negative integer, also as Nova's API may pass it (a string).
    fn count(&self, arg: &str) -> Result<Option<u64>, NovaException> {
        match self.get(arg) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.bad(arg, format!("{n} is not a count"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.bad(arg, format!("{s:?} is not a count"))),
            Some(v) => Err(self.bad(arg, format!("{v} is not a count"))),
        }
    }

    fn migration(&self) -> Result<Migration, NovaException> {
        let v = self
            .get("migration")
            .ok_or_else(|| self.bad("migration", "missing"))?;
        Migration::from_primitive(v).map_err(|e| self.bad("migration", e))
    }

    /// An image record (a dict, or an ImageMeta primitive) as it came;
    /// none is `{}`.
    fn image_record(&self) -> Result<Value, NovaException> {
        match self.get("image") {
            None => Ok(Value::Object(Map::new())),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(v) => Err(self.bad("image", format!("{v} is not an image record"))),
        }
    }

    /// A Flavor primitive.
    fn flavor(&self) -> Result<Value, NovaException> {
        let v = self
            .get("flavor")
            .ok_or_else(|| self.bad("flavor", "missing"))?;
        crate::objects::Flavor::from_primitive(v).map_err(|e| self.bad("flavor", e))?;
        Ok(v.clone())
    }

    fn object_list(&self, arg: &str) -> Result<Option<Vec<NovaObject>>, NovaException> {
        let Some(v) = self.get(arg) else {
            return Ok(None);
        };
        let list = NovaObject::from_primitive(v).map_err(|e| self.bad(arg, e))?;
        list.list_objects().map(Some).map_err(|e| self.bad(arg, e))
    }
}

fn obj_str(o: &NovaObject, field: &str) -> Option<String> {
    o.get_str(field).map(str::to_string)
}

impl ComputeRequest {
    /// Decode the message of `method` (one of [`served_methods`]).
    pub fn decode(method: &str, args: &Map<String, Value>) -> Result<Self, NovaException> {
        let Some(m) = Method::from_name(method) else {
            return match UNSUPPORTED.iter().find(|u| **u == method) {
                Some(name) => Ok(ComputeRequest::Unsupported {
                    method: name,
                    // the instance the call is about, when it names one we can read
                    instance: args
                        .get("instance")
                        .and_then(|v| Instance::from_primitive(v).ok()),
                }),
                None => Err(NovaException::invalid_input(format!(
                    "{method} is not a compute RPC method"
                ))),
            };
        };
        let a = Args {
            method: m.name(),
            args,
        };
        let power = |op: PowerOp| Ok(ComputeRequest::Power(op, a.instance()?));
        let resize = |step: ResizeStep| Ok(ComputeRequest::Resize(Box::new(step)));
        match m {
            Method::BuildAndRunInstance => Ok(ComputeRequest::BuildAndRunInstance(Box::new(
                decode_build(&a)?,
            ))),
            Method::RebuildInstance => Ok(ComputeRequest::RebuildInstance(Box::new(
                decode_rebuild(&a)?,
            ))),
            Method::TerminateInstance => Ok(ComputeRequest::TerminateInstance(a.instance()?)),
            Method::StopInstance => power(PowerOp::Stop),
            Method::StartInstance => power(PowerOp::Start),
            Method::PauseInstance => power(PowerOp::Pause),
            Method::UnpauseInstance => power(PowerOp::Unpause),
            Method::SuspendInstance => power(PowerOp::Suspend),
            Method::ResumeInstance => power(PowerOp::Resume),
            Method::SoftDeleteInstance => power(PowerOp::SoftDelete),
            Method::RestoreInstance => power(PowerOp::Restore),
            Method::RebootInstance => {
                let t = a.str("reboot_type")?.unwrap_or_else(|| "SOFT".into());
                let reboot_type = RebootType::parse(&t)
                    .ok_or_else(|| a.bad("reboot_type", format!("{t:?} is not SOFT or HARD")))?;
                Ok(ComputeRequest::RebootInstance {
                    instance: a.instance()?,
                    reboot_type,
                })
            }
            Method::SnapshotInstance => Ok(ComputeRequest::Snapshot(SnapshotRequest {
                instance: a.instance()?,
                image_id: a.required_str("image_id")?,
                kind: SnapshotKind::Snapshot,
            })),
            Method::BackupInstance => {
                let rotation = a.count("rotation")?.unwrap_or(1);
                let rotation = u32::try_from(rotation)
                    .map_err(|_| a.bad("rotation", format!("{rotation} is too large")))?;
                Ok(ComputeRequest::Snapshot(SnapshotRequest {
                    instance: a.instance()?,
                    image_id: a.required_str("image_id")?,
                    kind: SnapshotKind::Backup {
                        backup_type: a.str("backup_type")?.unwrap_or_else(|| "daily".into()),
                        rotation,
                    },
                }))
            }
            Method::GetConsoleOutput => Ok(ComputeRequest::GetConsoleOutput {
                instance: a.instance()?,
                tail_length: a.count("tail_length")?.map(|n| n as usize),
            }),
            Method::GetInstanceDiagnostics => {
                Ok(ComputeRequest::GetInstanceDiagnostics(a.instance()?))
            }
            Method::GetDiagnostics => Ok(ComputeRequest::GetDiagnostics(a.instance()?)),
            Method::GetHostUptime => Ok(ComputeRequest::GetHostUptime),
            Method::ExternalInstanceEvent => {
                Ok(ComputeRequest::ExternalInstanceEvent(decode_events(&a)?))
            }
            Method::AttachInterface => {
                let network = NetworkRequest {
                    network_id: a.str("network_id")?,
                    address: a.str("requested_ip")?,
                    port_id: a.str("port_id")?,
                    tag: a.str("tag")?,
                };
                if network.network_id.is_none() && network.port_id.is_none() {
                    return Err(a.bad("network_id", "neither a network nor a port given"));
                }
                Ok(ComputeRequest::AttachInterface(AttachInterfaceRequest {
                    instance: a.instance()?,
                    network,
                }))
            }
            Method::DetachInterface => Ok(ComputeRequest::DetachInterface {
                instance: a.instance()?,
                port_id: a.required_str("port_id")?,
            }),
            Method::GetSerialConsole => Ok(ComputeRequest::GetSerialConsole {
                instance: a.instance()?,
                console_type: a.str("console_type")?.unwrap_or_else(|| "serial".into()),
            }),
            Method::ValidateConsolePort => Ok(ComputeRequest::ValidateConsolePort {
                instance: a.instance()?,
                // Nova sends str(port); a number is taken as well
                port: match a.get("port") {
                    Some(Value::String(p)) => p.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(v) => return Err(a.bad("port", format!("{v} is not a port"))),
                    None => return Err(a.bad("port", "missing")),
                },
                console_type: a.required_str("console_type")?,
            }),
            Method::CacheImages => {
                let ids = match a.get("image_ids") {
                    Some(Value::Array(v)) => v
                        .iter()
                        .map(|i| match i {
                            Value::String(s) => Ok(s.clone()),
                            other => Err(a.bad("image_ids", format!("{other} is not an image id"))),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    Some(v) => return Err(a.bad("image_ids", format!("{v} is not a list"))),
                    None => return Err(a.bad("image_ids", "missing")),
                };
                Ok(ComputeRequest::CacheImages(ids))
            }
            Method::ShelveInstance => Ok(ComputeRequest::Shelve(ShelveRequest {
                instance: a.instance()?,
                image_id: a.required_str("image_id")?,
                clean_shutdown: a.bool("clean_shutdown", true)?,
            })),
            Method::ShelveOffloadInstance => Ok(ComputeRequest::ShelveOffload {
                instance: a.instance()?,
                clean_shutdown: a.bool("clean_shutdown", true)?,
            }),
            Method::UnshelveInstance => {
                let image = match a.get("image") {
                    None => None,
                    Some(v @ Value::Object(_)) => Some(ImageMeta::from_value(v)),
                    Some(v) => return Err(a.bad("image", format!("{v} is not an image record"))),
                };
                Ok(ComputeRequest::Unshelve(Box::new(UnshelveRequest {
                    instance: a.instance()?,
                    image,
                })))
            }
            Method::PrepResize => resize(ResizeStep::Prep(decode_move(&a)?)),
            Method::ResizeInstance => resize(ResizeStep::Resize(decode_move(&a)?)),
            Method::FinishResize => resize(ResizeStep::Finish {
                instance: a.instance()?,
                migration: a.migration()?,
                disk_info: a.str("disk_info")?,
            }),
            Method::ConfirmResize => resize(ResizeStep::Confirm {
                instance: a.instance()?,
                migration: a.migration()?,
            }),
            Method::RevertResize => resize(ResizeStep::Revert {
                instance: a.instance()?,
                migration: a.migration()?,
                request_spec: a.get("request_spec").cloned(),
            }),
            Method::FinishRevertResize => resize(ResizeStep::FinishRevert {
                instance: a.instance()?,
                migration: a.migration()?,
            }),
            Method::CheckCanLiveMigrateDestination | Method::CheckCanLiveMigrateSource => {
                Ok(ComputeRequest::LiveMigrationCheck {
                    instance: a.instance()?,
                    destination: m == Method::CheckCanLiveMigrateDestination,
                })
            }
        }
    }

    /// The method's name (for logs).
    pub fn method(&self) -> &'static str {
        use ComputeRequest as R;
        match self {
            R::BuildAndRunInstance(_) => Method::BuildAndRunInstance.name(),
            R::RebuildInstance(_) => Method::RebuildInstance.name(),
            R::TerminateInstance(_) => Method::TerminateInstance.name(),
            R::Power(op, _) => op.method(),
            R::RebootInstance { .. } => Method::RebootInstance.name(),
            R::Snapshot(s) => match s.kind {
                SnapshotKind::Snapshot => Method::SnapshotInstance.name(),
                SnapshotKind::Backup { .. } => Method::BackupInstance.name(),
            },
            R::GetConsoleOutput { .. } => Method::GetConsoleOutput.name(),
            R::GetInstanceDiagnostics(_) => Method::GetInstanceDiagnostics.name(),
            R::GetDiagnostics(_) => Method::GetDiagnostics.name(),
            R::GetHostUptime => Method::GetHostUptime.name(),
            R::ExternalInstanceEvent(_) => Method::ExternalInstanceEvent.name(),
            R::AttachInterface(_) => Method::AttachInterface.name(),
            R::DetachInterface { .. } => Method::DetachInterface.name(),
            R::GetSerialConsole { .. } => Method::GetSerialConsole.name(),
            R::ValidateConsolePort { .. } => Method::ValidateConsolePort.name(),
            R::CacheImages(_) => Method::CacheImages.name(),
            R::LiveMigrationCheck { destination, .. } => match destination {
                true => Method::CheckCanLiveMigrateDestination.name(),
                false => Method::CheckCanLiveMigrateSource.name(),
            },
            R::Shelve(_) => Method::ShelveInstance.name(),
            R::ShelveOffload { .. } => Method::ShelveOffloadInstance.name(),
            R::Unshelve(_) => Method::UnshelveInstance.name(),
            R::Resize(step) => step.method().name(),
            R::Unsupported { method, .. } => method,
        }
    }
}

fn decode_build(a: &Args<'_>) -> Result<BuildRequest, NovaException> {
    let image = match a.get("image") {
        Some(Value::Object(_)) => ImageMeta::from_value(a.get("image").unwrap_or(&Value::Null)),
        Some(v) => return Err(a.bad("image", format!("{v} is not an image record"))),
        None => ImageMeta::default(),
    };
    let requested_networks = a
        .object_list("requested_networks")?
        .map(|list| {
            list.iter()
                .map(|o| {
                    if o.name != "NetworkRequest" {
                        return Err(a.bad(
                            "requested_networks",
                            format!("holds a {}, not a NetworkRequest", o.name),
                        ));
                    }
                    Ok(NetworkRequest {
                        network_id: obj_str(o, "network_id"),
                        address: obj_str(o, "address"),
                        port_id: obj_str(o, "port_id"),
                        tag: obj_str(o, "tag"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let security_groups = match a.get("security_groups") {
        None => Vec::new(),
        Some(Value::Array(l)) => l
            .iter()
            .map(|g| {
                g.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| a.bad("security_groups", format!("{g} is not a name")))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(a.bad("security_groups", format!("{v} is not a list"))),
    };
    let filter_properties = match a.get("filter_properties") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(v) => return Err(a.bad("filter_properties", format!("{v} is not a dict"))),
    };
    let host_list = match a.get("host_list") {
        None => Vec::new(),
        Some(Value::Array(l)) => l.clone(),
        Some(v) => return Err(a.bad("host_list", format!("{v} is not a list"))),
    };
    Ok(BuildRequest {
        instance: a.instance()?,
        image,
        requested_networks,
        security_groups,
        retry: Retry::new(filter_properties, host_list, a.args),
    })
}

fn decode_move(a: &Args<'_>) -> Result<MoveRequest, NovaException> {
    Ok(MoveRequest {
        instance: a.instance()?,
        migration: a.migration()?,
        image: a.image_record()?,
        flavor: a.flavor()?,
        clean_shutdown: a.bool("clean_shutdown", true)?,
        request_spec: a.get("request_spec").cloned(),
    })
}

fn decode_rebuild(a: &Args<'_>) -> Result<RebuildRequest, NovaException> {
    let instance = a.instance()?;
    let image_ref = a.str("image_ref")?;
    // the new image's record travels in the request spec (6.0+)
    let spec_image = a
        .get("request_spec")
        .and_then(|rs| rs.get("nova_object.data"))
        .and_then(|d| d.get("image"))
        .filter(|v| !v.is_null())
        .map(ImageMeta::from_value);
    let mut image = match spec_image {
        Some(i) if i.id.is_some() && (image_ref.is_none() || i.id == image_ref) => i,
        _ => ImageMeta {
            id: image_ref.or_else(|| instance.image_ref().map(str::to_string)),
            ..ImageMeta::default()
        },
    };
    // what the API already wrote into system_metadata for the new image
    for (k, v) in instance.system_metadata() {
        match k.as_str() {
            "image_container_format" if image.container_format.is_none() => {
                image.container_format = Some(v)
            }
            "image_os_command_line" if image.os_command_line().is_none() => {
                image
                    .properties
                    .insert("os_command_line".into(), Value::String(v));
            }
            _ => {}
        }
    }
    let migration = match a.get("migration") {
        None => None,
        Some(_) => Some(a.migration()?),
    };
    let target_state = match a.str("target_state")? {
        None => None,
        Some(t) => Some(
            VmState::parse(&t)
                .ok_or_else(|| a.bad("target_state", format!("{t:?} is not a vm_state")))?,
        ),
    };
    Ok(RebuildRequest {
        instance,
        image,
        recreate: a.bool("recreate", false)?,
        migration,
        target_state,
    })
}

fn decode_events(a: &Args<'_>) -> Result<Vec<ExternalEvent>, NovaException> {
    let Some(Value::Array(list)) = a.get("events") else {
        return Err(a.bad("events", "missing or not a list"));
    };
    list.iter()
        .map(|e| {
            let o = NovaObject::from_primitive_of(e, "InstanceExternalEvent")
                .map_err(|err| a.bad("events", err))?;
            let need = |f: &str| {
                obj_str(&o, f).ok_or_else(|| a.bad("events", format!("an event has no {f}")))
            };
            Ok(ExternalEvent {
                instance_uuid: need("instance_uuid")?,
                name: need("name")?,
                status: obj_str(&o, "status").unwrap_or_else(|| "completed".into()),
                tag: obj_str(&o, "tag"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn capture(name: &str) -> Map<String, Value> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wire/compute-bound")
            .join(name);
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v["oslo_message"]["args"].as_object().unwrap().clone()
    }

    #[test]
    fn every_method_is_served_once() {
        let mut all = served_methods();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a method listed twice");
        for m in [
            "build_and_run_instance",
            "rescue_instance",
            "shelve_instance",
            "resize_instance",
            "prep_snapshot_based_resize_at_dest",
            "live_migration",
            "attach_volume",
            "get_vnc_console",
            "set_admin_password",
            "unshelve_instance",
            "reserve_block_device_name",
        ] {
            assert!(all.contains(&m), "{m}");
        }
    }

    /// A handled method never decodes to Unsupported: each has its own variant.
    #[test]
    fn handled_methods_decode_to_their_own_request() {
        let inst = capture("stop_instance.json")["instance"].clone();
        let args = json!({"instance": inst, "image_id": "i1", "reboot_type": "HARD",
            "events": [], "image": {}, "tail_length": 10, "network_id": "n1", "port_id": "p1",
            "console_type": "serial", "port": "10000", "image_ids": ["i1"],
            "migration": {"nova_object.name": "Migration", "nova_object.namespace": "nova",
                "nova_object.version": "1.8", "nova_object.data": {"uuid": "m1"}},
            "flavor": {"nova_object.name": "Flavor", "nova_object.namespace": "nova",
                "nova_object.version": "1.2", "nova_object.data": {"id": 2}}})
        .as_object()
        .unwrap()
        .clone();
        for m in Method::ALL {
            let r = ComputeRequest::decode(m.name(), &args)
                .unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert!(
                !matches!(r, ComputeRequest::Unsupported { .. }),
                "{} is handled",
                m.name()
            );
            assert_eq!(r.method(), m.name());
        }
        let r = ComputeRequest::decode("rescue_instance", &args).unwrap();
        assert!(matches!(
            r,
            ComputeRequest::Unsupported {
                method: "rescue_instance",
                instance: Some(_)
            }
        ));
    }

    /// The serial console calls as nova-api and nova-serialproxy send them
    /// (compute rpcapi 6.x: `console_type`; `port` as a string).
    #[test]
    fn serial_console_calls_decode() {
        let inst = capture("stop_instance.json")["instance"].clone();
        let args = json!({"instance": inst.clone(), "console_type": "serial"});
        let ComputeRequest::GetSerialConsole { console_type, .. } =
            ComputeRequest::decode("get_serial_console", args.as_object().unwrap()).unwrap()
        else {
            panic!("not get_serial_console")
        };
        assert_eq!(console_type, "serial");
        for port in [json!("10001"), json!(10001)] {
            let args = json!({"instance": inst.clone(), "port": port, "console_type": "serial"});
            let ComputeRequest::ValidateConsolePort { port, .. } =
                ComputeRequest::decode("validate_console_port", args.as_object().unwrap()).unwrap()
            else {
                panic!("not validate_console_port")
            };
            assert_eq!(port, "10001");
        }
        let args = json!({"instance": inst, "port": [1], "console_type": "serial"});
        assert!(
            ComputeRequest::decode("validate_console_port", args.as_object().unwrap()).is_err()
        );
    }

    #[test]
    fn captured_messages_decode() {
        let ComputeRequest::BuildAndRunInstance(b) = ComputeRequest::decode(
            "build_and_run_instance",
            &capture("build_and_run_instance.json"),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(b.image.container_format.as_deref(), Some("docker"));
        assert_eq!(b.security_groups, ["default"]);
        assert!(b.no_networks());
        assert_eq!(
            b.requested_networks.as_deref().unwrap()[0]
                .network_id
                .as_deref(),
            Some("none")
        );
        let ComputeRequest::RebuildInstance(r) =
            ComputeRequest::decode("rebuild_instance", &capture("rebuild_instance.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.image.name.as_deref(), Some("busybox"));
        assert_eq!(r.image.container_format.as_deref(), Some("docker"));
        assert!(!r.recreate);
        let ComputeRequest::RebootInstance { reboot_type, .. } =
            ComputeRequest::decode("reboot_instance", &capture("reboot_instance.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!(reboot_type, RebootType::Soft);
        let ComputeRequest::GetConsoleOutput { tail_length, .. } =
            ComputeRequest::decode("get_console_output", &capture("get_console_output.json"))
                .unwrap()
        else {
            panic!()
        };
        assert!(tail_length.is_some());
    }

    #[test]
    fn bad_arguments_are_named() {
        let inst = capture("stop_instance.json")["instance"].clone();
        let e = ComputeRequest::decode("stop_instance", &Map::new()).unwrap_err();
        assert_eq!(e.class, "InvalidInput");
        assert!(
            e.message
                .contains("stop_instance argument instance: missing"),
            "{}",
            e.message
        );
        let args = json!({"instance": inst, "reboot_type": "GENTLE"});
        let e = ComputeRequest::decode("reboot_instance", args.as_object().unwrap()).unwrap_err();
        assert!(e.message.contains("GENTLE"), "{}", e.message);
        let args = json!({"instance": {"nova_object.name": "Flavor"}});
        let e = ComputeRequest::decode("start_instance", args.as_object().unwrap()).unwrap_err();
        assert!(
            e.message.contains("start_instance argument instance"),
            "{}",
            e.message
        );
        let args = json!({"instance": inst, "tail_length": "many"});
        assert!(ComputeRequest::decode("get_console_output", args.as_object().unwrap()).is_err());
        assert!(ComputeRequest::decode("no_such_method", &Map::new()).is_err());
    }

    #[test]
    fn network_requests() {
        let none = NetworkRequest {
            network_id: Some("none".into()),
            ..Default::default()
        };
        let net = NetworkRequest {
            network_id: Some("5f3c".into()),
            ..Default::default()
        };
        let inst = Instance::from_primitive(&capture("stop_instance.json")["instance"]).unwrap();
        let b = |r: Option<Vec<NetworkRequest>>| BuildRequest {
            instance: inst.clone(),
            image: ImageMeta::default(),
            requested_networks: r,
            security_groups: vec![],
            retry: Retry::default(),
        };
        assert!(b(None).no_networks());
        assert!(b(Some(vec![none.clone()])).no_networks());
        assert!(!b(Some(vec![net])).no_networks());
        assert!(!b(Some(vec![NetworkRequest {
            port_id: Some("p".into()),
            ..Default::default()
        }]))
        .no_networks());
        assert!(NetworkRequest {
            network_id: Some("auto".into()),
            ..Default::default()
        }
        .is_auto());
    }

    /// The captured shelve and unshelve messages of Nova 34.
    #[test]
    fn shelve_and_unshelve_decode_from_nova_s_messages() {
        let r =
            ComputeRequest::decode("shelve_instance", &capture("shelve_instance.json")).unwrap();
        let ComputeRequest::Shelve(s) = r else {
            panic!("{r:?}")
        };
        assert_eq!(s.image_id, "03bd8a6c-3a4d-40f0-83a1-a0a942c4f101");
        assert!(s.clean_shutdown);
        let r = ComputeRequest::decode("unshelve_instance", &capture("unshelve_instance.json"))
            .unwrap();
        let ComputeRequest::Unshelve(u) = r else {
            panic!("{r:?}")
        };
        let image = u.image.expect("the shelved image's record");
        assert_eq!(
            image.id.as_deref(),
            Some("03bd8a6c-3a4d-40f0-83a1-a0a942c4f101")
        );
        assert_eq!(image.name.as_deref(), Some("smoke-1795373323-shelved"));
        assert!(u.instance.host().is_none());
        let mut args = capture("unshelve_instance.json");
        args.insert("image".into(), json!("not a record"));
        let e = ComputeRequest::decode("unshelve_instance", &args).unwrap_err();
        assert_eq!(e.class, "InvalidInput");
        assert!(
            e.message.contains("unshelve_instance argument image"),
            "{}",
            e.message
        );
    }
}
