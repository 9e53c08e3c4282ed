//! What nova-compute's network API (nova/network/neutron.py) does with Neutron
//! for an instance: allocate and bind its ports, build its network_info, refresh
//! it, and give the ports back. The compute manager reaches it through the
//! `NetworkApi` trait (compute/backends.rs); saving the info cache is the
//! manager's job.
//!
//! Credentials as Nova uses them: the user's token (and a service token beside
//! it) to create, list and delete ports and to look networks up; the `[neutron]`
//! group's own credentials for everything that touches `binding:*` or
//! `device_owner` and for reading ports back.

pub mod errors;
pub mod vif;

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};
use tracing::{info, warn};

use crate::clients::neutron::{As, Network, Neutron, Port, Query};
use crate::compute::request::NetworkRequest;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::network::{NetworkInfo, Vif};
use crate::objects::Instance;
use errors::*;
use vif::{build_vif, PortContext};

/// The `binding:profile` keys Nova removes when it unbinds a port.
const PROFILE_KEYS_DROPPED_ON_UNBIND: &[&str] = &[
    "pci_vendor_info",
    "pci_slot",
    "allocation",
    "arq_uuid",
    "physical_network",
    "card_serial_number",
    "vf_num",
    "pf_mac_address",
    "device_mac_address",
];

/// The options of `[neutron]` besides the session's.
#[derive(Debug, Clone)]
pub struct NeutronConfig {
    /// `[neutron] ovs_bridge`: the bridge of OVS VIFs whose details name none.
    pub ovs_bridge: String,
}

impl Default for NeutronConfig {
    fn default() -> Self {
        NeutronConfig {
            ovs_bridge: "br-int".into(),
        }
    }
}

/// Nova's network API against one Neutron.
#[derive(Debug, Clone)]
pub struct NeutronApi {
    client: Neutron,
    cfg: NeutronConfig,
}

/// One port to bind, with where it came from.
struct Planned {
    port: Port,
    /// Given by the user (kept, unbound, on delete).
    preexisting: bool,
}

impl NeutronApi {
    pub fn new(client: Neutron, cfg: NeutronConfig) -> Self {
        NeutronApi { client, cfg }
    }

    /// `allocate_for_instance`: the requested ports created (or the given ones
    /// taken), bound to `host` for `inst`; returns the instance's whole
    /// network_info (the VIFs it had, then the new ones) and the ids of the new
    /// VIFs. On a failure nothing it did is left: created ports are deleted,
    /// given ports unbound.
    pub async fn allocate_for_instance(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        requested: &[NetworkRequest],
        security_groups: &[String],
    ) -> Result<(NetworkInfo, Vec<String>), NovaException> {
        let uuid = inst.uuid();
        let project = inst.project_id();
        // 1. given ports
        let mut preexisting: Vec<Port> = Vec::new();
        for r in requested.iter().filter(|r| r.port_id.is_some()) {
            let id = r.port_id.as_deref().unwrap_or_default();
            let p = match self.client.show_port(ctx, As::Admin, id).await {
                Ok(p) => p,
                Err(e) if e.is_not_found() => return Err(port_not_found(id)),
                Err(e) => return Err(neutron_failure(&e)),
            };
            if p.project().is_some_and(|pp| pp != project) && !ctx.is_admin {
                return Err(port_not_usable(id, uuid));
            }
            if p.device_id
                .as_deref()
                .is_some_and(|d| !d.is_empty() && d != uuid)
            {
                return Err(port_in_use(id));
            }
            if p.binding_failed() {
                return Err(port_not_usable(id, uuid));
            }
            preexisting.push(p);
        }
        // 2. the networks of the requests without a port
        let mut wanted: Vec<(String, Option<String>)> = Vec::new(); // (network, fixed ip)
        for r in requested.iter().filter(|r| r.port_id.is_none()) {
            match r.network_id.as_deref() {
                Some("none") => {}
                Some("auto") => {
                    let net = self
                        .client
                        .auto_allocated_network(ctx, project)
                        .await
                        .map_err(|e| neutron_failure(&e))?;
                    wanted.push((net, None));
                }
                Some(n) => wanted.push((n.to_string(), r.address.clone())),
                None => {}
            }
        }
        if requested.is_empty() {
            // nothing asked for: the project's one network, if it has just one
            let mine = self
                .client
                .list_networks(
                    ctx,
                    As::User,
                    &vec![
                        ("tenant_id", project.to_string()),
                        ("shared", "False".into()),
                    ],
                )
                .await
                .map_err(|e| neutron_failure(&e))?;
            let shared = self
                .client
                .list_networks(ctx, As::User, &vec![("shared", "True".into())])
                .await
                .map_err(|e| neutron_failure(&e))?;
            let all: Vec<Network> = mine
                .into_iter()
                .chain(shared)
                .filter(|n| !n.router_external)
                .collect();
            match all.len() {
                0 => {}
                1 => wanted.push((all[0].id.clone(), None)),
                _ => return Err(network_ambiguous()),
            }
        }
        let ids: Vec<String> = {
            let mut seen = HashSet::new();
            wanted
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| seen.insert(n.clone()))
                .collect()
        };
        if !ids.is_empty() {
            let q: Query = ids.iter().map(|i| ("id", i.clone())).collect();
            let found = self
                .client
                .list_networks(ctx, As::User, &q)
                .await
                .map_err(|e| neutron_failure(&e))?;
            if let Some(missing) = ids.iter().find(|i| !found.iter().any(|n| &n.id == *i)) {
                return Err(network_not_found(missing));
            }
        }
        // 3. security groups by name ("default" alone: Neutron's default)
        let sg_ids = self
            .security_group_ids(ctx, project, security_groups)
            .await?;
        // 4. create, then 5. bind; undo on any failure
        let mut created: Vec<Port> = Vec::new();
        let mut bound_given: Vec<String> = Vec::new();
        let result = async {
            for (net, addr) in &wanted {
                let mut body = json!({
                    "device_id": uuid,
                    "network_id": net,
                    "admin_state_up": true,
                    "tenant_id": project,
                });
                if let Some(a) = addr {
                    body["fixed_ips"] = json!([{ "ip_address": a }]);
                }
                if !sg_ids.is_empty() {
                    body["security_groups"] = json!(sg_ids);
                }
                let p = self
                    .client
                    .create_port(ctx, As::User, body)
                    .await
                    .map_err(|e| port_failure(&e, net))?;
                info!(instance = uuid, port = %p.id, network = %net, "port created");
                created.push(p);
            }
            let mut planned: Vec<Planned> = preexisting
                .iter()
                .cloned()
                .map(|port| Planned {
                    port,
                    preexisting: true,
                })
                .chain(created.iter().cloned().map(|port| Planned {
                    port,
                    preexisting: false,
                }))
                .collect();
            for pl in &mut planned {
                let az = inst.availability_zone().unwrap_or("nova");
                let mut body = json!({
                    "device_id": uuid,
                    "device_owner": format!("compute:{az}"),
                    "binding:host_id": host,
                });
                if let Some(profile) = pl.port.binding_profile.as_ref().filter(|p| !p.is_empty()) {
                    body["binding:profile"] = Value::Object(profile.clone());
                }
                if pl.preexisting {
                    bound_given.push(pl.port.id.clone());
                }
                let p = self
                    .client
                    .update_port(ctx, As::Admin, &pl.port.id, body)
                    .await
                    .map_err(|e| port_failure(&e, &pl.port.network_id))?;
                if p.binding_failed() {
                    return Err(binding_failed(&p.id, host));
                }
                info!(instance = uuid, port = %p.id, vif_type = ?p.binding_vif_type, host, "port bound");
                pl.port = p;
            }
            let new_ids: Vec<String> = planned.iter().map(|p| p.port.id.clone()).collect();
            let given: HashSet<String> = planned
                .iter()
                .filter(|p| p.preexisting)
                .map(|p| p.port.id.clone())
                .collect();
            let nw = self
                .network_info(ctx, inst, &given, false)
                .await?;
            Ok((nw, new_ids))
        }
        .await;
        if result.is_err() {
            for p in &created {
                if let Err(e) = self.client.delete_port(ctx, As::User, &p.id).await {
                    if !e.is_not_found() {
                        warn!(instance = uuid, port = %p.id, error = %e, "could not delete a port after a failed allocation");
                    }
                }
            }
            for id in &bound_given {
                self.unbind(ctx, id, true).await;
            }
        }
        result
    }

    async fn security_group_ids(
        &self,
        ctx: &RequestContext,
        project: &str,
        names: &[String],
    ) -> Result<Vec<String>, NovaException> {
        if names.is_empty() || (names.len() == 1 && names[0] == "default") {
            return Ok(vec![]);
        }
        let list = |filter: (&'static str, String)| async move {
            let q: Query = vec![("fields", "id".into()), ("fields", "name".into()), filter];
            self.client.list_security_groups(ctx, As::User, &q).await
        };
        let mut groups = list(("tenant_id", project.to_string()))
            .await
            .map_err(|e| neutron_failure(&e))?;
        if names
            .iter()
            .any(|n| !groups.iter().any(|g| &g.name == n || &g.id == n))
        {
            // the security-groups-shared-filtering extension: groups shared with us
            if let Ok(shared) = list(("shared", "True".into())).await {
                groups.extend(shared);
            }
        }
        let mut ids = Vec::new();
        for n in names {
            let m: Vec<_> = groups
                .iter()
                .filter(|g| &g.name == n || &g.id == n)
                .collect();
            match m.len() {
                0 => return Err(security_group_not_found(n)),
                1 => ids.push(m[0].id.clone()),
                _ => {
                    return Err(NovaException::nova(
                        crate::exception::Class::NeutronError,
                        format!("Multiple security groups found matching '{n}'. Use an ID to be more specific."),
                        json!({"code": 409}),
                    ))
                }
            }
        }
        Ok(ids)
    }

    /// `get_instance_nw_info`: network_info from Neutron's ports of the
    /// instance, in the order of `inst`'s current network_info, new ports last;
    /// `also_given` are ports the user gave (kept on delete). With
    /// `keep_missing` (a `network-changed` refresh), a VIF whose port Neutron no
    /// longer lists is kept, so that a later detach or delete still unplugs it.
    pub async fn network_info(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        also_given: &HashSet<String>,
        keep_missing: bool,
    ) -> Result<NetworkInfo, NovaException> {
        let ports = self.ports_of(ctx, inst).await?;
        self.network_info_from(ctx, inst, ports, also_given, keep_missing)
            .await
    }

    /// The instance's ports in its project, as Neutron has them now.
    async fn ports_of(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
    ) -> Result<Vec<Port>, NovaException> {
        self.client
            .list_ports(
                ctx,
                As::Admin,
                &vec![
                    ("tenant_id", inst.project_id().to_string()),
                    ("device_id", inst.uuid().to_string()),
                ],
            )
            .await
            .map_err(|e| neutron_failure(&e))
    }

    /// [`Self::network_info`] of the instance's `ports`, listed already.
    async fn network_info_from(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        ports: Vec<Port>,
        also_given: &HashSet<String>,
        keep_missing: bool,
    ) -> Result<NetworkInfo, NovaException> {
        let current = inst.network_info();
        let preserve: HashSet<&str> = current
            .iter()
            .filter(|v| v.preserve_on_delete)
            .map(|v| v.id.as_str())
            .chain(also_given.iter().map(String::as_str))
            .collect();
        let mut order: Vec<String> = current.iter().map(|v| v.id.clone()).collect();
        for p in &ports {
            if !order.contains(&p.id) {
                order.push(p.id.clone());
            }
        }
        let by_id: HashMap<&str, &Port> = ports.iter().map(|p| (p.id.as_str(), p)).collect();
        // every port's lookups at once, then in order
        let built = futures_util::future::try_join_all(
            order
                .iter()
                .filter_map(|id| by_id.get(id.as_str()))
                .map(|p| self.vif_of(ctx, p, preserve.contains(p.id.as_str()))),
        )
        .await?;
        let mut built: HashMap<String, Vif> =
            built.into_iter().map(|v| (v.id.clone(), v)).collect();
        let mut vifs = Vec::new();
        for id in &order {
            match built.remove(id) {
                Some(v) => vifs.push(v),
                None if keep_missing => {
                    if let Some(old) = current.iter().find(|v| &v.id == id) {
                        vifs.push(old.clone());
                    }
                }
                None => {}
            }
        }
        NetworkInfo::new(vifs).map_err(NovaException::from)
    }

    async fn vif_of(
        &self,
        ctx: &RequestContext,
        port: &Port,
        preserve_on_delete: bool,
    ) -> Result<Vif, NovaException> {
        let subnet_ids: Vec<String> = {
            let mut s: Vec<String> = Vec::new();
            for f in &port.fixed_ips {
                if !s.contains(&f.subnet_id) {
                    s.push(f.subnet_id.clone());
                }
            }
            s
        };
        // the three lookups of one port at once (each is a round trip to Neutron)
        let (network, subnets, floating_ips) = tokio::join!(
            self.client.show_network(ctx, As::Admin, &port.network_id),
            self.client.list_subnets(ctx, As::Admin, &subnet_ids),
            self.client.list_floating_ips(ctx, As::Admin, &port.id),
        );
        let network = network.map_err(|e| neutron_failure(&e))?;
        let subnets = subnets.map_err(|e| neutron_failure(&e))?;
        // no L3 (404) means no floating IPs
        let floating_ips = match floating_ips {
            Ok(f) => f,
            Err(e) if e.is_not_found() => vec![],
            Err(e) => return Err(neutron_failure(&e)),
        };
        Ok(build_vif(
            port,
            &PortContext {
                network: &network,
                subnets: &subnets,
                floating_ips: &floating_ips,
                preserve_on_delete,
                ovs_bridge: &self.cfg.ovs_bridge,
            },
        ))
    }

    /// `deallocate_for_instance`: the ports Nova created for `inst` deleted,
    /// the given ones (`preserve_on_delete`, or listed in `keep`) unbound.
    pub async fn deallocate_for_instance(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        keep: &[String],
    ) -> Result<(), NovaException> {
        let uuid = inst.uuid();
        let ports = self
            .client
            .list_ports(ctx, As::Admin, &vec![("device_id", uuid.to_string())])
            .await
            .map_err(|e| neutron_failure(&e))?;
        let preserve: HashSet<&str> = inst
            .network_info()
            .iter()
            .filter(|v| v.preserve_on_delete)
            .map(|v| v.id.as_str())
            .chain(keep.iter().map(String::as_str))
            .collect();
        let mut first_err = None;
        for p in &ports {
            if preserve.contains(p.id.as_str()) {
                self.unbind(ctx, &p.id, true).await;
                continue;
            }
            match self.client.delete_port(ctx, As::User, &p.id).await {
                Ok(()) => info!(instance = uuid, port = %p.id, "port deleted"),
                Err(e) if e.is_not_found() => {
                    warn!(instance = uuid, port = %p.id, "port already gone")
                }
                Err(e) => {
                    warn!(instance = uuid, port = %p.id, error = %e, "could not delete a port");
                    first_err.get_or_insert(neutron_failure(&e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// `deallocate_port_for_instance` (detach): delete the port, or unbind it
    /// when the user gave it.
    pub async fn deallocate_port(
        &self,
        ctx: &RequestContext,
        vif: &Vif,
    ) -> Result<(), NovaException> {
        if vif.preserve_on_delete {
            self.unbind(ctx, &vif.id, true).await;
            return Ok(());
        }
        match self.client.delete_port(ctx, As::User, &vif.id).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(neutron_failure(&e)),
        }
    }

    /// `unbind_ports(detach=False)` (a shelve offload): every port of the
    /// instance bound to no host, still the instance's.
    pub async fn unbind_ports(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
    ) -> Result<(), NovaException> {
        let ports = self
            .client
            .list_ports(
                ctx,
                As::Admin,
                &vec![("device_id", inst.uuid().to_string())],
            )
            .await
            .map_err(|e| neutron_failure(&e))?;
        for p in &ports {
            self.unbind(ctx, &p.id, false).await;
        }
        Ok(())
    }

    /// `setup_instance_network_on_host` (`_update_port_binding_for_instance`):
    /// each port of the instance not bound to `host` (or whose binding
    /// failed) bound there, its owner naming the instance's zone; then the
    /// instance's network_info. Unlike Nova, a port Neutron cannot bind to
    /// `host` fails the operation (the caller gives the ports back).
    pub async fn bind_ports_to_host(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
    ) -> Result<NetworkInfo, NovaException> {
        let uuid = inst.uuid();
        let mut ports = self.ports_of(ctx, inst).await?;
        for p in ports
            .iter_mut()
            .filter(|p| p.binding_host_id.as_deref() != Some(host) || !p.bound())
        {
            let az = inst.availability_zone().unwrap_or("nova");
            let mut body = json!({
                "binding:host_id": host,
                "device_owner": format!("compute:{az}"),
            });
            if let Some(mut profile) = p.binding_profile.clone() {
                if profile.remove("migrating_to").is_some() {
                    body["binding:profile"] = Value::Object(profile);
                }
            }
            let bound = self
                .client
                .update_port(ctx, As::Admin, &p.id, body)
                .await
                .map_err(|e| port_failure(&e, &p.network_id))?;
            if bound.binding_failed() {
                return Err(binding_failed(&p.id, host));
            }
            info!(instance = uuid, port = %p.id, host, "port bound");
            *p = bound;
        }
        self.network_info_from(ctx, inst, ports, &Default::default(), false)
            .await
    }

    /// `_unbind_ports` for one port: host cleared (with `detach`, device and
    /// owner too), the binding profile's host-specific keys removed. Failures
    /// are logged only (as Nova does).
    async fn unbind(&self, ctx: &RequestContext, port_id: &str, detach: bool) {
        let profile = match self.client.show_port(ctx, As::Admin, port_id).await {
            Ok(p) => p.binding_profile.unwrap_or_default(),
            Err(e) if e.is_not_found() => return,
            Err(e) => {
                warn!(port = port_id, error = %e, "cannot read a port to unbind it");
                Map::new()
            }
        };
        let profile: Map<String, Value> = profile
            .into_iter()
            .filter(|(k, _)| !PROFILE_KEYS_DROPPED_ON_UNBIND.contains(&k.as_str()))
            .collect();
        let mut body = json!({
            "binding:host_id": null,
            "binding:profile": profile,
        });
        if detach {
            body["device_id"] = json!("");
            body["device_owner"] = json!("");
        }
        match self.client.update_port(ctx, As::Admin, port_id, body).await {
            Ok(_) => info!(port = port_id, "port unbound"),
            Err(e) if e.is_not_found() => {}
            Err(e) => warn!(port = port_id, error = %e, "could not unbind a port"),
        }
    }
}
