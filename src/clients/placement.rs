//! Placement: the resource provider of this compute node, its inventory and
//! traits, and the instance allocations removed on delete — the calls Nova's
//! report client makes, with the microversions it uses.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PlacementError {
    #[error("placement request {method} {path} failed: {source}")]
    Http {
        method: &'static str,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("placement answered {status} to {method} {path}: {body}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        body: String,
    },
    #[error("placement authentication failed: {0}")]
    Auth(String),
    #[error("resource provider generation conflict on {0} (retries exhausted)")]
    Conflict(String),
}

/// Where placement is and how to authenticate to it (implemented by the
/// keystone session; a plain endpoint + token in tests).
#[async_trait]
pub trait Endpoint: Send + Sync {
    /// Base URL of the placement API, without a trailing slash.
    async fn url(&self) -> Result<String, String>;
    /// The X-Auth-Token to send, if any.
    async fn token(&self) -> Result<Option<String>, String>;
    /// Forget a cached token after a 401.
    async fn invalidate(&self) {}
}

/// A fixed endpoint and token (auth_type admin_token / none).
pub struct StaticEndpoint {
    pub url: String,
    pub token: Option<String>,
}

#[async_trait]
impl Endpoint for StaticEndpoint {
    async fn url(&self) -> Result<String, String> {
        Ok(self.url.trim_end_matches('/').to_string())
    }
    async fn token(&self) -> Result<Option<String>, String> {
        Ok(self.token.clone())
    }
}

/// One inventory record.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub total: i64,
    pub reserved: i64,
    pub max_unit: i64,
    pub allocation_ratio: f64,
}

impl Inventory {
    fn to_json(&self) -> Value {
        json!({"total": self.total, "min_unit": 1, "max_unit": self.max_unit.max(1),
               "step_size": 1, "allocation_ratio": self.allocation_ratio, "reserved": self.reserved})
    }
}

/// The traits a Docker compute node reports.
pub const TRAITS: &[&str] = &[
    "COMPUTE_NODE",
    "OWNER_NOVA",
    "COMPUTE_NET_ATTACH_INTERFACE",
    "COMPUTE_IMAGE_TYPE_RAW",
];

/// What the compute manager asks of placement (the HTTP client below; a
/// recording fake in the state machine's tests).
#[async_trait]
pub trait Placement: Send + Sync {
    /// Replace the inventory and traits of the resource provider `uuid`
    /// (created, named `name`, if missing).
    async fn set_inventory_and_traits(
        &self,
        uuid: &str,
        name: &str,
        inventories: &[(&str, Inventory)],
        traits: &[&str],
    ) -> Result<(), PlacementError>;

    /// Remove every allocation of a consumer (an instance).
    async fn delete_allocations(&self, consumer: &str) -> Result<(), PlacementError>;

    /// `move_allocations`: what `from` holds becomes `to`'s (replacing
    /// `to`'s), `from` holds nothing; nothing to move is no error (moved
    /// already). A resize's revert gives the source's resources, held by the
    /// migration, back to the instance.
    async fn move_allocations(&self, from: &str, to: &str) -> Result<(), PlacementError>;

    /// `remove_provider_tree_from_instance_allocation`: the part of
    /// `consumer`'s allocation held on the provider `rp` removed, the rest
    /// kept (an evacuated instance's allocation on the host it left).
    async fn remove_provider_from_allocation(
        &self,
        consumer: &str,
        rp: &str,
    ) -> Result<(), PlacementError>;
}

#[async_trait]
impl Placement for PlacementClient {
    async fn set_inventory_and_traits(
        &self,
        uuid: &str,
        name: &str,
        inventories: &[(&str, Inventory)],
        traits: &[&str],
    ) -> Result<(), PlacementError> {
        PlacementClient::set_inventory_and_traits(self, uuid, name, inventories, traits).await
    }

    async fn delete_allocations(&self, consumer: &str) -> Result<(), PlacementError> {
        PlacementClient::delete_allocations(self, consumer).await
    }

    async fn move_allocations(&self, from: &str, to: &str) -> Result<(), PlacementError> {
        PlacementClient::move_allocations(self, from, to).await
    }

    async fn remove_provider_from_allocation(
        &self,
        consumer: &str,
        rp: &str,
    ) -> Result<(), PlacementError> {
        PlacementClient::remove_provider_from_allocation(self, consumer, rp).await
    }
}

#[derive(Clone)]
pub struct PlacementClient {
    http: reqwest::Client,
    endpoint: Arc<dyn Endpoint>,
}

impl PlacementClient {
    pub fn new(http: reqwest::Client, endpoint: Arc<dyn Endpoint>) -> Self {
        Self { http, endpoint }
    }

    async fn request(
        &self,
        method: &'static str,
        path: &str,
        microversion: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), PlacementError> {
        for attempt in 0..2 {
            let base = self.endpoint.url().await.map_err(PlacementError::Auth)?;
            let url = format!("{base}{path}");
            let m = reqwest::Method::from_bytes(method.as_bytes()).expect("static method");
            let mut req = self
                .http
                .request(m, &url)
                .header("OpenStack-API-Version", format!("placement {microversion}"))
                .header("Accept", "application/json");
            if let Some(t) = self.endpoint.token().await.map_err(PlacementError::Auth)? {
                req = req.header("X-Auth-Token", t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| PlacementError::Http {
                method,
                path: path.to_string(),
                source: e,
            })?;
            let status = resp.status().as_u16();
            if status == 401 && attempt == 0 {
                self.endpoint.invalidate().await;
                continue;
            }
            let text = resp.text().await.unwrap_or_default();
            let v = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok((status, v));
        }
        Err(PlacementError::Auth("401 after re-authentication".into()))
    }

    fn fail(method: &'static str, path: &str, status: u16, body: &Value) -> PlacementError {
        PlacementError::Status {
            method,
            path: path.to_string(),
            status,
            body: body.to_string(),
        }
    }

    /// The provider's generation, creating the provider if it does not exist.
    pub async fn ensure_provider(&self, uuid: &str, name: &str) -> Result<i64, PlacementError> {
        let path = format!("/resource_providers/{uuid}");
        let (st, v) = self.request("GET", &path, "1.14", None).await?;
        match st {
            200 => return Ok(v["generation"].as_i64().unwrap_or(0)),
            404 => {}
            _ => return Err(Self::fail("GET", &path, st, &v)),
        }
        let (st, v) = self
            .request(
                "POST",
                "/resource_providers",
                "1.20",
                Some(&json!({"uuid": uuid, "name": name})),
            )
            .await?;
        match st {
            200 | 201 => Ok(v["generation"].as_i64().unwrap_or(0)),
            // created meanwhile by another of our starts
            409 => {
                let (st, v) = self.request("GET", &path, "1.14", None).await?;
                if st == 200 {
                    Ok(v["generation"].as_i64().unwrap_or(0))
                } else {
                    Err(Self::fail("GET", &path, st, &v))
                }
            }
            _ => Err(Self::fail("POST", "/resource_providers", st, &v)),
        }
    }

    /// Replace the inventory (VCPU, MEMORY_MB, DISK_GB) and traits of the provider,
    /// retrying on generation conflicts.
    pub async fn set_inventory_and_traits(
        &self,
        uuid: &str,
        name: &str,
        inventories: &[(&str, Inventory)],
        traits: &[&str],
    ) -> Result<(), PlacementError> {
        let inv: serde_json::Map<String, Value> = inventories
            .iter()
            .map(|(k, i)| (k.to_string(), i.to_json()))
            .collect();
        for _ in 0..4 {
            let gen = self.ensure_provider(uuid, name).await?;
            let path = format!("/resource_providers/{uuid}/inventories");
            let (st, v) = self
                .request(
                    "PUT",
                    &path,
                    "1.26",
                    Some(&json!({"resource_provider_generation": gen, "inventories": inv})),
                )
                .await?;
            if st == 409 {
                continue;
            }
            if st != 200 {
                return Err(Self::fail("PUT", &path, st, &v));
            }
            let gen = v["resource_provider_generation"]
                .as_i64()
                .unwrap_or(gen + 1);
            let path = format!("/resource_providers/{uuid}/traits");
            let (st, v) = self
                .request(
                    "PUT",
                    &path,
                    "1.6",
                    Some(&json!({"resource_provider_generation": gen, "traits": traits})),
                )
                .await?;
            if st == 409 {
                continue;
            }
            if st != 200 {
                return Err(Self::fail("PUT", &path, st, &v));
            }
            return Ok(());
        }
        Err(PlacementError::Conflict(uuid.to_string()))
    }

    /// Remove every allocation of an instance (on delete); a consumer with no
    /// allocations is fine.
    /// See [`Placement::move_allocations`] (`POST /allocations`, 1.28, with
    /// both consumers' generations: a concurrent change makes it fail).
    pub async fn move_allocations(&self, from: &str, to: &str) -> Result<(), PlacementError> {
        const MV: &str = "1.28";
        let get = |c: String| async move {
            let path = format!("/allocations/{c}");
            match self.request("GET", &path, MV, None).await? {
                (200, v) => Ok(v),
                (st, v) => Err(Self::fail("GET", &path, st, &v)),
            }
        };
        let (source, target) = (get(from.to_string()).await?, get(to.to_string()).await?);
        let held = source["allocations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if held.is_empty() {
            return Ok(());
        }
        let resources: serde_json::Map<String, Value> = held
            .into_iter()
            .map(|(rp, a)| (rp, json!({ "resources": a["resources"] })))
            .collect();
        let body = json!({
            from: {
                "allocations": {},
                "project_id": source["project_id"],
                "user_id": source["user_id"],
                "consumer_generation": source["consumer_generation"],
            },
            to: {
                "allocations": resources,
                "project_id": source["project_id"],
                "user_id": source["user_id"],
                "consumer_generation": target["consumer_generation"],
            },
        });
        let (st, v) = self
            .request("POST", "/allocations", MV, Some(&body))
            .await?;
        match st {
            204 => Ok(()),
            _ => Err(Self::fail("POST", "/allocations", st, &v)),
        }
    }

    /// See [`Placement::remove_provider_from_allocation`] (`PUT
    /// /allocations/{consumer}`, 1.28, with its generation).
    pub async fn remove_provider_from_allocation(
        &self,
        consumer: &str,
        rp: &str,
    ) -> Result<(), PlacementError> {
        const MV: &str = "1.28";
        let path = format!("/allocations/{consumer}");
        let cur = match self.request("GET", &path, MV, None).await? {
            (200, v) => v,
            (st, v) => return Err(Self::fail("GET", &path, st, &v)),
        };
        let mut held = cur["allocations"].as_object().cloned().unwrap_or_default();
        if held.remove(rp).is_none() {
            return Ok(());
        }
        let allocations: serde_json::Map<String, Value> = held
            .into_iter()
            .map(|(p, a)| (p, json!({ "resources": a["resources"] })))
            .collect();
        let body = json!({
            "allocations": allocations,
            "project_id": cur["project_id"],
            "user_id": cur["user_id"],
            "consumer_generation": cur["consumer_generation"],
        });
        let (st, v) = self.request("PUT", &path, MV, Some(&body)).await?;
        match st {
            204 => Ok(()),
            _ => Err(Self::fail("PUT", &path, st, &v)),
        }
    }

    pub async fn delete_allocations(&self, consumer: &str) -> Result<(), PlacementError> {
        let path = format!("/allocations/{consumer}");
        let (st, v) = self.request("DELETE", &path, "1.0", None).await?;
        match st {
            204 | 404 => Ok(()),
            _ => Err(Self::fail("DELETE", &path, st, &v)),
        }
    }
}

/// Placement reached through a keystoneauth-style session (`[placement]` options).
#[async_trait]
impl Endpoint for super::keystone::Session {
    async fn url(&self) -> Result<String, String> {
        self.endpoint(None)
            .await
            .map(|u| u.trim_end_matches('/').to_string())
            .map_err(|e| e.to_string())
    }
    async fn token(&self) -> Result<Option<String>, String> {
        super::keystone::Session::token(self, None, super::keystone::TokenSource::Service)
            .await
            .map(|t| t.map(|s| s.expose().to_string()))
            .map_err(|e| e.to_string())
    }
    async fn invalidate(&self) {
        super::keystone::Session::invalidate(self).await
    }
}
