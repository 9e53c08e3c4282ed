//! `attach_interface` and `detach_interface` (nova/compute/manager.py
//! `attach_interface`, `detach_interface`): a Neutron port hot plugged into,
//! or out of, the instance's container. Neither changes the instance's
//! vm_state or task state; a failure leaves a fault and the instance as it was.

use serde_json::Value;
use tracing::info;

use super::action::OnFailure;
use super::request::AttachInterfaceRequest;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::network::neutron::errors::port_not_found;
use crate::network::Vif;
use crate::objects::Instance;

impl ComputeManager {
    /// attach_interface (call): the port made on the network (or the given
    /// port) bound to this host, plugged into the container (running or not:
    /// a stopped container gets it at its next start), the info cache saved;
    /// answers the new VIF. When the plug fails the port is given back and
    /// the answer is InterfaceAttachFailed.
    pub async fn attach_interface(
        &self,
        ctx: &RequestContext,
        req: AttachInterfaceRequest,
    ) -> Result<Value, NovaException> {
        let mut inst = req.instance;
        let action = self.begin(ctx, &inst, "attach_interface").await;
        let r = self.attach_steps(ctx, &mut inst, &req.network).await;
        action
            .end(ctx, &mut inst, r, OnFailure::RevertTaskState)
            .await
    }

    async fn attach_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        network: &super::request::NetworkRequest,
    ) -> Result<Value, NovaException> {
        let uuid = inst.uuid().to_string();
        self.read_network_info(ctx, inst).await?;
        let (nw, new) = self
            .network_api
            .allocate_for_instance(
                ctx,
                inst,
                &self.cfg.host,
                std::slice::from_ref(network),
                &[],
            )
            .await?;
        let vif: Vif = match new.as_slice() {
            [id] => nw.iter().find(|v| &v.id == id).cloned(),
            _ => None,
        }
        .ok_or_else(|| {
            NovaException::nova(
                crate::exception::Class::InterfaceAttachFailed,
                format!("Failed to attach network adapter device to {uuid}"),
                serde_json::json!({"instance_uuid": uuid, "code": 500}),
            )
        })?;
        let pid = self.driver.get_info(&uuid).await.ok().and_then(|i| i.pid);
        if let Err(e) = self.network.attach_interface(inst, &vif, &nw, pid).await {
            if let Err(de) = self.network_api.deallocate_port(ctx, &vif).await {
                tracing::warn!(instance = %uuid, port = %vif.id, error = %de, "could not give back the port of a failed attach");
            }
            return Err(e);
        }
        {
            let lock = self.refresh_cache_lock(&uuid);
            let _g = lock.lock().await;
            self.save_network_info(ctx, inst, nw).await?;
        }
        info!(instance = %uuid, port = %vif.id, running = pid.is_some(), "interface attached");
        Ok(serde_json::to_value(&vif).unwrap_or(Value::Null))
    }

    /// detach_interface (cast): the VIF of `port_id` taken out of the
    /// container and unplugged, its port deleted (or unbound when the user
    /// gave it), the info cache saved without it.
    pub async fn detach_interface(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        port_id: &str,
    ) -> Result<(), NovaException> {
        let action = self.begin(ctx, &inst, "detach_interface").await;
        let r = self.detach_steps(ctx, &mut inst, port_id, true).await;
        action
            .end(ctx, &mut inst, r, OnFailure::RevertTaskState)
            .await
    }

    /// Take the VIF of `port_id` out of the instance; with `give_back`, also
    /// its port (a `network-vif-deleted` event: the port is gone already).
    pub(crate) async fn detach_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        port_id: &str,
        give_back: bool,
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        let lock = self.refresh_cache_lock(&uuid);
        let _g = lock.lock().await;
        self.read_network_info(ctx, inst).await?;
        let Some(vif) = inst
            .network_info()
            .iter()
            .find(|v| v.id == port_id)
            .cloned()
        else {
            return Err(port_not_found(port_id));
        };
        let pid = self.driver.get_info(&uuid).await.ok().and_then(|i| i.pid);
        self.network.detach_interface(inst, &vif, pid).await?;
        if give_back {
            self.network_api.deallocate_port(ctx, &vif).await?;
        }
        let rest: Vec<Vif> = inst
            .network_info()
            .iter()
            .filter(|v| v.id != port_id)
            .cloned()
            .collect();
        let nw = crate::network::NetworkInfo::new(rest)?;
        self.save_network_info(ctx, inst, nw).await?;
        info!(instance = %uuid, port = port_id, "interface detached");
        Ok(())
    }
}
