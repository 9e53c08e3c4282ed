//! `terminate_instance`: container, VIFs and the Neutron ports made for it
//! gone (ports the user gave unbound and kept), the record deleted,
//! the placement allocations removed, its console closed and its console
//! tokens removed.

use tracing::info;

use super::action::{Expect, OnFailure};
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{Instance, VmState};
use crate::virt::PowerState;

impl ComputeManager {
    /// terminate_instance (cast): the container (stopped within
    /// `shutdown_timeout`) and its networking removed; then vm_state deleted,
    /// no task state, power state none, `terminated_at`, saved; the record
    /// destroyed; the allocations removed. A failure leaves the instance in
    /// ERROR with a fault (a delete can be asked again).
    pub async fn terminate_instance(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
    ) -> Result<(), NovaException> {
        let action = self.begin(ctx, &inst, "terminate_instance").await;
        let r = self.delete_steps(ctx, &mut inst).await;
        action.end(ctx, &mut inst, r, OnFailure::Error).await
    }

    async fn delete_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        self.driver
            .destroy(&uuid, self.cfg.shutdown_timeout)
            .await?;
        self.network.unplug(inst, inst.network_info()).await?;
        self.deallocate_network(ctx, inst).await?;
        inst.set_vm_state(VmState::Deleted);
        inst.set_task_state(None);
        inst.set_power_state(PowerState::NoState);
        inst.set_terminated_at_now();
        self.save(ctx, inst, Expect::Any).await?;
        // Nova's _complete_deletion: the allocations go before the record, so a
        // server that is gone from the API holds no resources any more
        self.remove_allocations(&uuid).await;
        self.forget_consoles(ctx, &uuid).await;
        self.conductor.instance_destroy(ctx, inst).await?;
        info!(instance = %uuid, "deleted");
        Ok(())
    }
}
