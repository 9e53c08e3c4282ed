//! The request context that travels with every RPC message as `_context_*` keys
//! (nova/context.py `RequestContext.to_dict()`).

use serde_json::{Map, Value};

/// A typed view of the context keys Nova sends, plus every key as received so that
/// a context handed back to the conductor round-trips unchanged.
#[derive(Clone, Default, PartialEq)]
pub struct RequestContext {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub auth_token: Option<String>,
    pub request_id: Option<String>,
    pub global_request_id: Option<String>,
    pub roles: Vec<String>,
    pub is_admin: bool,
    pub read_deleted: String,
    pub timestamp: Option<String>,
    pub service_catalog: Vec<Value>,
    /// Every `_context_<key>` as received (without the prefix).
    pub raw: Map<String, Value>,
    /// The broker's side of the message that brought the request (not on the wire).
    pub delivery: Delivery,
}

/// How the message that brought a request is settled with the broker. The RPC
/// server settles most messages before dispatch, as oslo.messaging does; for
/// the casts it is told to, it leaves that to the handler, which calls
/// [`Delivery::started`] once the work is recorded (a build, once claimed):
/// until then the broker keeps the message, and a crash hands it to the
/// service's next life instead of losing it. The server settles it anyway
/// when the handler returns.
#[derive(Clone, Default)]
pub struct Delivery {
    /// The broker delivered the message before, to a consumer that went away
    /// without settling it: the work may have been started.
    pub redelivered: bool,
    settle: Option<std::sync::Arc<std::sync::Mutex<Option<Settle>>>>,
}

type Settle = Box<dyn FnOnce() + Send>;

impl Delivery {
    /// A message settled by `settle`, once.
    pub fn new(redelivered: bool, settle: impl FnOnce() + Send + 'static) -> Self {
        Delivery {
            redelivered,
            settle: Some(std::sync::Arc::new(std::sync::Mutex::new(Some(Box::new(
                settle,
            ))))),
        }
    }

    /// The work is recorded: the broker may forget the message (idempotent).
    pub fn started(&self) {
        let Some(s) = &self.settle else { return };
        let f = s.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(f) = f {
            f();
        }
    }
}

/// Deliveries do not make two contexts different.
impl PartialEq for Delivery {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

// Hand-written so that the token never reaches a log line.
impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("user_id", &self.user_id)
            .field("project_id", &self.project_id)
            .field("request_id", &self.request_id)
            .field("global_request_id", &self.global_request_id)
            .field("roles", &self.roles)
            .field("is_admin", &self.is_admin)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "***"))
            .finish()
    }
}

fn opt_string(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

impl RequestContext {
    /// An admin context of our own (for periodic tasks and start-up), like
    /// `nova.context.get_admin_context()`.
    pub fn admin() -> Self {
        let request_id = format!("req-{}", uuid::Uuid::new_v4());
        let mut c = RequestContext {
            is_admin: true,
            read_deleted: "no".into(),
            request_id: Some(request_id),
            timestamp: Some(
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.6f")
                    .to_string(),
            ),
            ..Default::default()
        };
        c.raw = c.to_map();
        c
    }

    /// Build from the `_context_*` keys (prefix already stripped).
    pub fn from_map(raw: Map<String, Value>) -> Self {
        let roles = match raw.get("roles") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        RequestContext {
            user_id: opt_string(&raw, "user_id").or_else(|| opt_string(&raw, "user")),
            project_id: opt_string(&raw, "project_id")
                .or_else(|| opt_string(&raw, "tenant"))
                .or_else(|| opt_string(&raw, "project")),
            auth_token: opt_string(&raw, "auth_token"),
            request_id: opt_string(&raw, "request_id"),
            global_request_id: opt_string(&raw, "global_request_id"),
            roles,
            is_admin: raw
                .get("is_admin")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            read_deleted: opt_string(&raw, "read_deleted").unwrap_or_else(|| "no".into()),
            timestamp: opt_string(&raw, "timestamp"),
            service_catalog: match raw.get("service_catalog") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            },
            raw,
            delivery: Delivery::default(),
        }
    }

    /// The keys to send (without the `_context_` prefix): what we received, with
    /// the typed fields laid over it.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = self.raw.clone();
        let mut set = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        set(
            "user_id",
            self.user_id.clone().map_or(Value::Null, Value::String),
        );
        set(
            "user",
            self.user_id.clone().map_or(Value::Null, Value::String),
        );
        set(
            "project_id",
            self.project_id.clone().map_or(Value::Null, Value::String),
        );
        set(
            "project",
            self.project_id.clone().map_or(Value::Null, Value::String),
        );
        set(
            "auth_token",
            self.auth_token.clone().map_or(Value::Null, Value::String),
        );
        set(
            "request_id",
            self.request_id.clone().map_or(Value::Null, Value::String),
        );
        set(
            "global_request_id",
            self.global_request_id
                .clone()
                .map_or(Value::Null, Value::String),
        );
        set("roles", Value::from(self.roles.clone()));
        set("is_admin", Value::Bool(self.is_admin));
        set("read_deleted", Value::String(self.read_deleted.clone()));
        if let Some(t) = &self.timestamp {
            set("timestamp", Value::String(t.clone()));
        }
        m
    }

    /// An elevated copy (admin), as `context.elevated()`.
    pub fn elevated(&self) -> Self {
        let mut c = self.clone();
        c.is_admin = true;
        if !c.roles.iter().any(|r| r == "admin") {
            c.roles.push("admin".into());
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_debug_hides_token() {
        let m = json!({"user_id":"u","project_id":"p","auth_token":"SECRET","roles":["admin","member"],
            "is_admin":true,"request_id":"req-1","user_identity":"u p - default default"});
        let c = RequestContext::from_map(m.as_object().unwrap().clone());
        assert_eq!(c.user_id.as_deref(), Some("u"));
        assert_eq!(c.roles, vec!["admin", "member"]);
        let back = c.to_map();
        assert_eq!(back["user_identity"], "u p - default default");
        assert_eq!(back["auth_token"], "SECRET");
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
