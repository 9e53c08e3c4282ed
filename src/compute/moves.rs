//! Moving instances between hosts.
//!
//! Live migration is refused: a container's memory and processes cannot be
//! carried to another host while it runs (that would take CRIU checkpoints
//! of every process, which Docker offers only experimentally and never across
//! engines). The refusal comes from the conductor's pre-checks
//! (`check_can_live_migrate_destination` on the destination, which asks the
//! source with `check_can_live_migrate_source`): answered with
//! `MigrationPreCheckError`, one of the failures the conductor's live
//! migration task expects, so it records the reason in its action event,
//! sets the migration to `error`, gives the allocations back to the source
//! and leaves the instance ACTIVE where it is. Any other answer (Nova's
//! `NotSupported` included) is an unexpected failure to the conductor, which
//! then puts the instance in ERROR. As Nova's compute manager does for these
//! two methods, the refusal is an action event (its details, in
//! `openstack server event show`, give the reason) and an instance fault; the
//! instance's states are not touched: its `migrating` task state is the
//! conductor's to clear. (The conductor takes a refused pre-check as a host
//! that does not fit and asks the scheduler for another, so what the user
//! reads last is its NoValidHost; the reason is in our event.)

use super::action::OnFailure;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::{Class, NovaException};
use crate::objects::Instance;

impl ComputeManager {
    /// `check_can_live_migrate_destination` / `_source` (calls): refused.
    pub async fn live_migration_check(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        method: &'static str,
    ) -> Result<serde_json::Value, NovaException> {
        let action = self.begin(ctx, &inst, method).await;
        let refused = live_migration_refused(&inst);
        action
            .end(ctx, &mut inst, Err(refused), OnFailure::FaultOnly)
            .await
    }
}

/// Why a container is not live-migrated, as the user reads it.
pub const LIVE_MIGRATION_REFUSED: &str = "the Docker driver does not live-migrate: a container's memory and processes cannot be moved to another host while it runs";

/// The answer to the live migration pre-checks about `inst`.
pub fn live_migration_refused(inst: &Instance) -> NovaException {
    tracing::info!(instance = inst.uuid(), "live migration refused");
    NovaException::nova(
        Class::MigrationPreCheckError,
        format!("Migration pre-check error: {LIVE_MIGRATION_REFUSED}"),
        serde_json::json!({"reason": LIVE_MIGRATION_REFUSED}),
    )
}
