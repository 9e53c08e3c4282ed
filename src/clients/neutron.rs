//! Neutron's networking API v2.0, the calls nova-compute's network API makes
//! (nova/network/neutron.py), with typed answers.
//!
//! One [`Session`] of the `[neutron]` group serves both of Nova's clients: the
//! *user* client (the request context's token, with a service token beside it when
//! `[service_user] send_service_user_token` is set) and the *admin* client (the
//! group's own credentials), chosen per call with [`As`]. Nova needs the admin
//! client for everything touching `binding:*`, `device_owner` and for reading the
//! ports back when it builds network_info.

use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use thiserror::Error;

use super::keystone::{KeystoneError, SendError, Session, TokenSource};
use crate::context::RequestContext;

/// A Neutron request that takes longer fails (`[neutron] timeout` overrides).
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Which of Nova's two Neutron clients makes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    /// The user's token from the request context (`get_client(context)`).
    User,
    /// The `[neutron]` group's credentials (`get_client(context, admin=True)`).
    Admin,
}

#[derive(Debug, Error)]
pub enum NeutronError {
    /// Neutron answered with an error status; `kind` is its `NeutronError.type`
    /// (`IpAddressGenerationFailure`, `PortNotFound`, ...).
    #[error("Neutron {method} {path}: HTTP {status}{}: {message}", kind.as_deref().map(|k| format!(" {k}")).unwrap_or_default())]
    Status {
        method: String,
        path: String,
        status: u16,
        kind: Option<String>,
        message: String,
    },
    /// Neutron could not be reached.
    #[error("Neutron is unreachable ({method} {path}): {reason}")]
    Unreachable {
        method: String,
        path: String,
        reason: String,
    },
    #[error("Neutron authentication: {0}")]
    Auth(#[from] KeystoneError),
    #[error("Neutron {path}: unreadable answer: {reason}")]
    Decode { path: String, reason: String },
}

impl NeutronError {
    pub fn status(&self) -> Option<u16> {
        match self {
            NeutronError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
    pub fn kind(&self) -> Option<&str> {
        match self {
            NeutronError::Status { kind, .. } => kind.as_deref(),
            _ => None,
        }
    }
}

/// One fixed IP of a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortFixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

/// A port as Neutron shows it to an admin.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub network_id: String,
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub fixed_ips: Vec<PortFixedIp>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default = "yes")]
    pub admin_state_up: bool,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub device_owner: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub dns_name: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default, rename = "binding:host_id")]
    pub binding_host_id: Option<String>,
    #[serde(default, rename = "binding:vif_type")]
    pub binding_vif_type: Option<String>,
    #[serde(default, rename = "binding:vif_details")]
    pub binding_vif_details: Option<Map<String, Value>>,
    #[serde(default, rename = "binding:vnic_type")]
    pub binding_vnic_type: Option<String>,
    #[serde(default, rename = "binding:profile")]
    pub binding_profile: Option<Map<String, Value>>,
    #[serde(default)]
    pub resource_request: Option<Value>,
}

fn yes() -> bool {
    true
}

impl Port {
    /// The owning project (Neutron answers `project_id` and, still, `tenant_id`).
    pub fn project(&self) -> Option<&str> {
        self.project_id.as_deref().or(self.tenant_id.as_deref())
    }
    /// `binding:vif_type` is `binding_failed`.
    pub fn binding_failed(&self) -> bool {
        self.binding_vif_type.as_deref() == Some("binding_failed")
    }
    /// Bound to a host, with a VIF type other than `unbound`/`binding_failed`.
    pub fn bound(&self) -> bool {
        !matches!(
            self.binding_vif_type.as_deref(),
            None | Some("unbound") | Some("binding_failed")
        )
    }
}

/// A network.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub shared: bool,
    #[serde(default, rename = "router:external")]
    pub router_external: bool,
    #[serde(default, rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    #[serde(default, rename = "provider:network_type")]
    pub network_type: Option<String>,
    #[serde(default)]
    pub port_security_enabled: Option<bool>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub status: Option<String>,
}

impl Network {
    pub fn project(&self) -> Option<&str> {
        self.project_id.as_deref().or(self.tenant_id.as_deref())
    }
    /// Tunnelled networks (`tunneled` in Nova's network meta).
    pub fn tunneled(&self) -> bool {
        matches!(
            self.network_type.as_deref(),
            Some("vxlan") | Some("gre") | Some("geneve")
        )
    }
}

/// A host route of a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

/// A subnet.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Subnet {
    pub id: String,
    #[serde(default)]
    pub network_id: String,
    #[serde(default)]
    pub cidr: String,
    #[serde(default)]
    pub ip_version: u8,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    #[serde(default)]
    pub enable_dhcp: bool,
    #[serde(default)]
    pub ipv6_address_mode: Option<String>,
    #[serde(default)]
    pub ipv6_ra_mode: Option<String>,
}

/// A floating IP.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    #[serde(default)]
    pub floating_ip_address: Option<String>,
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
    #[serde(default)]
    pub port_id: Option<String>,
}

/// A security group (only what Nova's name lookup needs).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The Neutron API client.
#[derive(Clone)]
pub struct Neutron {
    session: Arc<Session>,
}

impl std::fmt::Debug for Neutron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neutron").finish_non_exhaustive()
    }
}

/// Query strings: repeated keys, in order.
pub type Query<'a> = Vec<(&'a str, String)>;

impl Neutron {
    pub fn new(session: Arc<Session>) -> Self {
        Neutron { session }
    }

    async fn request<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        who: As,
        method: Method,
        path: &str,
        query: &Query<'_>,
        body: Option<Value>,
    ) -> Result<T, NeutronError> {
        let base = self.session.endpoint(Some(ctx)).await?;
        let url = format!("{}/v2.0/{}", base.trim_end_matches('/'), path);
        let source = match who {
            As::User => TokenSource::UserIfPresent,
            As::Admin => TokenSource::Service,
        };
        let request_id = ctx.global_request_id.clone().or(ctx.request_id.clone());
        let timeout = self.session.options().timeout.unwrap_or(DEFAULT_TIMEOUT);
        let m = method.clone();
        let resp = self
            .session
            .send(Some(ctx), source, |http, token| {
                let mut r = http
                    .request(m.clone(), &url)
                    .header("Accept", "application/json")
                    .timeout(timeout)
                    .query(query);
                if let Some(t) = token {
                    r = r.header("X-Auth-Token", t.expose());
                }
                if let Some(id) = &request_id {
                    r = r.header("X-OpenStack-Request-ID", id);
                }
                if let Some(b) = &body {
                    r = r.json(b);
                }
                r
            })
            .await
            .map_err(|e| match e {
                SendError::Auth(k) => NeutronError::Auth(k),
                SendError::Http(h) => NeutronError::Unreachable {
                    method: method.to_string(),
                    path: path.to_string(),
                    reason: h.to_string(),
                },
            })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| NeutronError::Unreachable {
            method: method.to_string(),
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        if !status.is_success() {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let err = &v["NeutronError"];
            let message = err["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(NeutronError::Status {
                method: method.to_string(),
                path: path.to_string(),
                status: status.as_u16(),
                kind: err["type"].as_str().map(str::to_string),
                message,
            });
        }
        let text = if text.trim().is_empty() {
            "null".to_string()
        } else {
            text
        };
        serde_json::from_str(&text).map_err(|e| NeutronError::Decode {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    fn unwrap<T: DeserializeOwned>(mut v: Value, key: &str, path: &str) -> Result<T, NeutronError> {
        serde_json::from_value(v[key].take()).map_err(|e| NeutronError::Decode {
            path: path.to_string(),
            reason: format!("{key}: {e}"),
        })
    }

    pub async fn show_port(
        &self,
        ctx: &RequestContext,
        who: As,
        id: &str,
    ) -> Result<Port, NeutronError> {
        let path = format!("ports/{id}");
        let v = self
            .request(ctx, who, Method::GET, &path, &vec![], None)
            .await?;
        Self::unwrap(v, "port", &path)
    }

    pub async fn list_ports(
        &self,
        ctx: &RequestContext,
        who: As,
        query: &Query<'_>,
    ) -> Result<Vec<Port>, NeutronError> {
        let v = self
            .request(ctx, who, Method::GET, "ports", query, None)
            .await?;
        Self::unwrap(v, "ports", "ports")
    }

    pub async fn create_port(
        &self,
        ctx: &RequestContext,
        who: As,
        body: Value,
    ) -> Result<Port, NeutronError> {
        let v = self
            .request(
                ctx,
                who,
                Method::POST,
                "ports",
                &vec![],
                Some(json!({ "port": body })),
            )
            .await?;
        Self::unwrap(v, "port", "ports")
    }

    pub async fn update_port(
        &self,
        ctx: &RequestContext,
        who: As,
        id: &str,
        body: Value,
    ) -> Result<Port, NeutronError> {
        let path = format!("ports/{id}");
        let v = self
            .request(
                ctx,
                who,
                Method::PUT,
                &path,
                &vec![],
                Some(json!({ "port": body })),
            )
            .await?;
        Self::unwrap(v, "port", &path)
    }

    pub async fn delete_port(
        &self,
        ctx: &RequestContext,
        who: As,
        id: &str,
    ) -> Result<(), NeutronError> {
        let path = format!("ports/{id}");
        let _: Value = self
            .request(ctx, who, Method::DELETE, &path, &vec![], None)
            .await?;
        Ok(())
    }

    pub async fn list_networks(
        &self,
        ctx: &RequestContext,
        who: As,
        query: &Query<'_>,
    ) -> Result<Vec<Network>, NeutronError> {
        let v = self
            .request(ctx, who, Method::GET, "networks", query, None)
            .await?;
        Self::unwrap(v, "networks", "networks")
    }

    pub async fn show_network(
        &self,
        ctx: &RequestContext,
        who: As,
        id: &str,
    ) -> Result<Network, NeutronError> {
        let path = format!("networks/{id}");
        let v = self
            .request(ctx, who, Method::GET, &path, &vec![], None)
            .await?;
        Self::unwrap(v, "network", &path)
    }

    pub async fn list_subnets(
        &self,
        ctx: &RequestContext,
        who: As,
        ids: &[String],
    ) -> Result<Vec<Subnet>, NeutronError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let q: Query = ids.iter().map(|i| ("id", i.clone())).collect();
        let v = self
            .request(ctx, who, Method::GET, "subnets", &q, None)
            .await?;
        Self::unwrap(v, "subnets", "subnets")
    }

    pub async fn list_floating_ips(
        &self,
        ctx: &RequestContext,
        who: As,
        port_id: &str,
    ) -> Result<Vec<FloatingIp>, NeutronError> {
        let q: Query = vec![("port_id", port_id.to_string())];
        let v = self
            .request(ctx, who, Method::GET, "floatingips", &q, None)
            .await?;
        Self::unwrap(v, "floatingips", "floatingips")
    }

    pub async fn list_security_groups(
        &self,
        ctx: &RequestContext,
        who: As,
        query: &Query<'_>,
    ) -> Result<Vec<SecurityGroup>, NeutronError> {
        let v = self
            .request(ctx, who, Method::GET, "security-groups", query, None)
            .await?;
        Self::unwrap(v, "security_groups", "security-groups")
    }

    /// `GET /v2.0/auto-allocated-topology/{project}`: the network of the
    /// project's auto-allocated topology (made on first use).
    pub async fn auto_allocated_network(
        &self,
        ctx: &RequestContext,
        project_id: &str,
    ) -> Result<String, NeutronError> {
        let path = format!("auto-allocated-topology/{project_id}");
        let v: Value = self
            .request(ctx, As::User, Method::GET, &path, &vec![], None)
            .await?;
        v["auto_allocated_topology"]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| NeutronError::Decode {
                path,
                reason: "no auto_allocated_topology.id".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_reads_bindings_and_both_project_fields() {
        let p: Port = serde_json::from_value(json!({
            "id": "p1", "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"}],
            "status": "DOWN", "admin_state_up": true, "tenant_id": "t1",
            "binding:vif_type": "ovs", "binding:vif_details": {"port_filter": true},
            "binding:host_id": "h1", "binding:vnic_type": "normal", "binding:profile": {}
        }))
        .unwrap();
        assert_eq!(p.project(), Some("t1"));
        assert!(p.bound() && !p.binding_failed());
        assert_eq!(p.binding_vif_details.unwrap()["port_filter"], json!(true));
        let p: Port =
            serde_json::from_value(json!({"id": "p2", "binding:vif_type": "binding_failed"}))
                .unwrap();
        assert!(p.binding_failed() && !p.bound());
        assert!(p.admin_state_up, "admin_state_up defaults to true");
    }

    #[test]
    fn errors_carry_neutrons_type() {
        let e = NeutronError::Status {
            method: "POST".into(),
            path: "ports".into(),
            status: 409,
            kind: Some("IpAddressGenerationFailure".into()),
            message: "No more IP addresses available on network n1.".into(),
        };
        assert_eq!(e.kind(), Some("IpAddressGenerationFailure"));
        assert!(e
            .to_string()
            .contains("HTTP 409 IpAddressGenerationFailure"));
        assert!(!e.is_not_found());
    }
}
