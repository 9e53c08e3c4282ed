//! The compute RPC API (nova/compute/rpcapi.py, 6.x): every method Nova may send
//! to a compute host, and where it is handled. Methods the Docker driver does not
//! support answer NotSupported and leave no instance stuck in a task state.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::ops::PowerOp;
use super::{ComputeManager, SnapshotKind};
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::rpc::dispatcher::{Endpoint, EndpointTarget};

/// The compute RPC API version we serve.
pub const COMPUTE_RPC_VERSION: &str = "6.5";

/// Methods with a handler of their own.
const HANDLED: &[&str] = &[
    "build_and_run_instance",
    "terminate_instance",
    "stop_instance",
    "start_instance",
    "reboot_instance",
    "pause_instance",
    "unpause_instance",
    "suspend_instance",
    "resume_instance",
    "soft_delete_instance",
    "restore_instance",
    "snapshot_instance",
    "backup_instance",
    "rebuild_instance",
    "get_console_output",
    "get_instance_diagnostics",
    "get_diagnostics",
    "get_host_uptime",
    "external_instance_event",
];

/// The rest of the compute RPC API: answered with NotSupported.
const UNSUPPORTED: &[&str] = &[
    "add_fixed_ip_to_instance",
    "allow_share",
    "attach_interface",
    "attach_volume",
    "cache_images",
    "change_instance_metadata",
    "check_can_live_migrate_destination",
    "check_can_live_migrate_source",
    "check_instance_shared_storage",
    "confirm_resize",
    "confirm_snapshot_based_resize_at_source",
    "deny_share",
    "detach_interface",
    "detach_volume",
    "drop_move_claim_at_destination",
    "finish_resize",
    "finish_revert_resize",
    "finish_revert_snapshot_based_resize_at_source",
    "finish_snapshot_based_resize_at_dest",
    "get_mks_console",
    "get_serial_console",
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
    "prep_resize",
    "prep_snapshot_based_resize_at_dest",
    "prep_snapshot_based_resize_at_source",
    "quiesce_instance",
    "refresh_instance_security_rules",
    "remove_fixed_ip_from_instance",
    "remove_volume_connection",
    "rescue_instance",
    "reserve_block_device_name",
    "resize_instance",
    "revert_resize",
    "revert_snapshot_based_resize_at_dest",
    "rollback_live_migration_at_destination",
    "set_admin_password",
    "set_host_enabled",
    "shelve_instance",
    "shelve_offload_instance",
    "swap_volume",
    "trigger_crash_dump",
    "unquiesce_instance",
    "unrescue_instance",
    "unshelve_instance",
    "validate_console_port",
    "volume_snapshot_create",
    "volume_snapshot_delete",
];

/// The compute manager as an RPC endpoint.
pub struct ComputeEndpoint(pub Arc<ComputeManager>);

#[async_trait]
impl Endpoint for ComputeEndpoint {
    fn target(&self) -> EndpointTarget {
        let all: Vec<&str> = HANDLED.iter().chain(UNSUPPORTED).copied().collect();
        EndpointTarget::new(None, COMPUTE_RPC_VERSION, &all)
    }

    async fn dispatch(
        &self,
        ctx: RequestContext,
        method: &str,
        args: Map<String, Value>,
        _version: &str,
    ) -> Result<Value, NovaException> {
        let m = &self.0;
        match method {
            "build_and_run_instance" => m.build_and_run_instance(ctx, args).await,
            "rebuild_instance" => m.rebuild_instance(ctx, args).await,
            "terminate_instance" => m.terminate_instance(ctx, args).await,
            "stop_instance" => m.power_op(PowerOp::Stop, ctx, args).await,
            "start_instance" => m.power_op(PowerOp::Start, ctx, args).await,
            "pause_instance" => m.power_op(PowerOp::Pause, ctx, args).await,
            "unpause_instance" => m.power_op(PowerOp::Unpause, ctx, args).await,
            "suspend_instance" => m.power_op(PowerOp::Suspend, ctx, args).await,
            "resume_instance" => m.power_op(PowerOp::Resume, ctx, args).await,
            "soft_delete_instance" => m.power_op(PowerOp::SoftDelete, ctx, args).await,
            "restore_instance" => m.power_op(PowerOp::Restore, ctx, args).await,
            "reboot_instance" => m.reboot_instance(ctx, args).await,
            "snapshot_instance" => m.snapshot_instance(ctx, args, SnapshotKind::Snapshot).await,
            "backup_instance" => {
                let kind = SnapshotKind::Backup {
                    backup_type: args
                        .get("backup_type")
                        .and_then(Value::as_str)
                        .unwrap_or("daily")
                        .to_string(),
                    rotation: args.get("rotation").and_then(Value::as_u64).unwrap_or(1) as u32,
                };
                m.snapshot_instance(ctx, args, kind).await
            }
            "get_console_output" => m.get_console_output(args).await,
            "get_instance_diagnostics" => m.get_instance_diagnostics(args).await,
            "get_diagnostics" => m.get_diagnostics(args).await,
            "get_host_uptime" => Ok(Value::String(host_uptime())),
            "external_instance_event" => m.external_instance_event(args).await,
            other => m.unsupported(ctx, other, args).await,
        }
    }
}

/// What `uptime` prints, as nova's get_host_uptime returns it.
pub fn host_uptime() -> String {
    let up = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()))
        .unwrap_or(0.0) as u64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let l: Vec<&str> = load.split_whitespace().take(3).collect();
    let now = chrono::Local::now().format("%H:%M:%S");
    let (d, h, m) = (up / 86400, (up % 86400) / 3600, (up % 3600) / 60);
    let dur = if d > 0 {
        format!("{d} days, {h:2}:{m:02}")
    } else {
        format!("{h:2}:{m:02}")
    };
    format!(
        " {now} up {dur},  load average: {}",
        if l.len() == 3 { l.join(", ") } else { "0.00, 0.00, 0.00".into() }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compute_rpc_method_has_an_answer_and_none_twice() {
        let mut all: Vec<&str> = HANDLED.iter().chain(UNSUPPORTED).copied().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a method listed twice");
        // every method nova 34's compute rpcapi sends
        for m in [
            "build_and_run_instance", "terminate_instance", "rescue_instance", "shelve_instance",
            "resize_instance", "live_migration", "attach_volume", "get_vnc_console",
            "set_admin_password", "unshelve_instance", "reserve_block_device_name",
        ] {
            assert!(all.contains(&m), "{m}");
        }
    }

    #[test]
    fn uptime_looks_like_uptime() {
        let u = host_uptime();
        assert!(u.contains(" up ") && u.contains("load average:"), "{u}");
    }
}
