//! The instance's Neutron ports and info cache around the operations: what
//! nova-compute's manager does with its network API (`_allocate_network`,
//! `_cleanup_allocated_networks`, `_try_deallocate_network`, the
//! `refresh_cache` decorator). The info cache is saved through the conductor
//! as `InstanceInfoCache.save`, and read back from the database (under the
//! instance's `refresh_cache` lock) where the message did not carry it.

use serde_json::json;
use tracing::{info, warn};

use super::request::NetworkRequest;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::network::NetworkInfo;
use crate::objects::Instance;

impl ComputeManager {
    /// The lock Nova names `refresh_cache-<uuid>`: one info-cache update of an
    /// instance at a time.
    pub(crate) fn refresh_cache_lock(&self, uuid: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.instance_lock(&format!("refresh_cache-{uuid}"))
    }

    /// `update_instance_cache_with_nw_info`: save `nw` as the instance's
    /// info cache and take it as its network_info.
    pub(crate) async fn save_network_info(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        nw: NetworkInfo,
    ) -> Result<(), NovaException> {
        let mut ic = inst.info_cache_object(&nw);
        self.conductor
            .object_action(ctx, &mut ic, "save", json!({}))
            .await?;
        inst.set_network_info_saved(nw);
        Ok(())
    }

    /// The instance's info cache as the database has it now.
    pub(crate) async fn read_network_info(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
    ) -> Result<(), NovaException> {
        let v = self
            .conductor
            .object_class_action(
                ctx,
                "InstanceInfoCache",
                "get_by_instance_uuid",
                vec![],
                json!({ "instance_uuid": inst.uuid() }),
            )
            .await?;
        let text = v["nova_object.data"]["network_info"]
            .as_str()
            .unwrap_or("[]")
            .to_string();
        let nw = NetworkInfo::parse(&text)?;
        inst.set_network_info_saved(nw);
        Ok(())
    }

    /// The network_info of an instance whose message did not carry its info
    /// cache (`start_instance`, `stop_instance`), from the database.
    pub(crate) async fn load_network_info(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
    ) -> Result<(), NovaException> {
        if inst.has_info_cache() {
            return Ok(());
        }
        self.read_network_info(ctx, inst).await
    }

    /// `_allocate_network`: the ports of a new instance, bound to this host,
    /// and its info cache saved. A failure names its cause in the build's
    /// fault and aborts the build, as Nova's does, but for a port Neutron
    /// could not bind to this host (its agent or chassis): that one is this
    /// host's, and the build is rescheduled ([`super::reschedule`]).
    pub(crate) async fn allocate_network(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        requested: &[NetworkRequest],
        security_groups: &[String],
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid().to_string();
        let (nw, _) = self
            .network_api
            .allocate_for_instance(ctx, inst, &self.cfg.host, requested, security_groups)
            .await
            .map_err(|e| {
                if e.is(crate::exception::Class::PortBindingFailed) {
                    return e;
                }
                NovaException::build_abort(
                    &uuid,
                    format!(
                        "Failed to allocate the network(s) with error {}: {}, not rescheduling.",
                        e.class, e.message
                    ),
                )
            })?;
        info!(instance = %uuid, vifs = nw.len(), "network allocated");
        let lock = self.refresh_cache_lock(&uuid);
        let _g = lock.lock().await;
        self.save_network_info(ctx, inst, nw).await
    }

    /// `setup_instance_network_on_host` for this host (an instance arriving
    /// here: unshelved, moved, evacuated): its ports bound here and its info
    /// cache saved.
    pub(crate) async fn bind_ports_here(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
    ) -> Result<(), NovaException> {
        let lock = self.refresh_cache_lock(inst.uuid());
        let _g = lock.lock().await;
        let nw = self
            .network_api
            .bind_ports_to_host(ctx, inst, &self.cfg.host)
            .await?;
        self.save_network_info(ctx, inst, nw).await
    }

    /// `_cleanup_allocated_networks` after a failed build: the ports given
    /// back (those the user gave are unbound and kept), the cache emptied.
    pub(crate) async fn cleanup_allocated_networks(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        requested: &[NetworkRequest],
    ) {
        let uuid = inst.uuid().to_string();
        let keep: Vec<String> = requested.iter().filter_map(|r| r.port_id.clone()).collect();
        if let Err(e) = self
            .network_api
            .deallocate_for_instance(ctx, inst, &keep)
            .await
        {
            warn!(instance = %uuid, error = %e, "could not give the ports of a failed build back");
        }
        if inst.network_info().is_empty() {
            return;
        }
        let lock = self.refresh_cache_lock(&uuid);
        let _g = lock.lock().await;
        if let Err(e) = self
            .save_network_info(ctx, inst, NetworkInfo::default())
            .await
        {
            if !e.instance_gone() {
                warn!(instance = %uuid, error = %e, "could not empty the info cache");
            }
        }
    }

    /// `_try_deallocate_network` of a delete: the instance's ports given
    /// back. Its record is about to be destroyed, so the cache is left.
    pub(crate) async fn deallocate_network(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
    ) -> Result<(), NovaException> {
        self.network_api
            .deallocate_for_instance(ctx, inst, &[])
            .await
    }

    /// `get_instance_nw_info` with a refresh from Neutron, saved: for a
    /// `network-changed` event and the periodic heal.
    pub async fn refresh_network_info(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
    ) -> Result<(), NovaException> {
        let lock = self.refresh_cache_lock(inst.uuid());
        let _g = lock.lock().await;
        self.read_network_info(ctx, inst).await?;
        let nw = self
            .network_api
            .get_instance_nw_info(ctx, inst, true)
            .await?;
        if &nw != inst.network_info() {
            info!(
                instance = inst.uuid(),
                vifs = nw.len(),
                "info cache refreshed from Neutron"
            );
            self.save_network_info(ctx, inst, nw).await?;
        }
        Ok(())
    }

    /// `_heal_instance_info_cache`: one instance's info cache refreshed from
    /// Neutron per call, round robin over the instances of this host that are
    /// not being built, deleted or worked on; `cursor` keeps the turn.
    pub async fn heal_one_info_cache(&self, cursor: &mut usize) {
        let ctx = RequestContext::admin();
        let Some(list) = self.our_instances(&ctx).await else {
            return;
        };
        let mut list: Vec<Instance> = list
            .into_iter()
            .filter(|i| {
                i.host() == Some(self.cfg.host.as_str())
                    && i.task_state().is_none()
                    && !matches!(
                        i.vm_state(),
                        Some(crate::objects::VmState::Building | crate::objects::VmState::Deleted)
                    )
            })
            .collect();
        if list.is_empty() {
            return;
        }
        list.sort_by(|a, b| a.uuid().cmp(b.uuid()));
        let mut inst = list.swap_remove(*cursor % list.len());
        *cursor = cursor.wrapping_add(1);
        if let Err(e) = self.refresh_network_info(&ctx, &mut inst).await {
            warn!(instance = inst.uuid(), error = %e, "info cache heal failed");
        }
    }
}
