//! Dispatch of decoded requests to endpoints, by namespace, version and method,
//! as oslo's `RPCDispatcher`. An endpoint says what it serves in [`EndpointTarget`]
//! (namespace, version, method names) and handles the calls in
//! [`Endpoint::dispatch`], one `match` on the method name.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::exception::NovaException;

use super::envelope::version_is_compatible;
use super::failure::{no_such_method, unsupported_version};

/// What an endpoint serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointTarget {
    /// `None` for the default namespace (compute, conductor); `Some("baseapi")`...
    pub namespace: Option<String>,
    /// The highest version served, e.g. `"6.5"`: requests of the same major and a
    /// minor not above this one are accepted.
    pub version: String,
    /// The RPC methods this endpoint handles.
    pub methods: Vec<String>,
}

impl EndpointTarget {
    pub fn new(namespace: Option<&str>, version: &str, methods: &[&str]) -> Self {
        EndpointTarget {
            namespace: namespace.map(str::to_string),
            version: version.to_string(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
        }
    }
}

/// An RPC endpoint (the compute manager is one).
#[async_trait]
pub trait Endpoint: Send + Sync + 'static {
    /// Namespace, version and method names; read once when registered.
    fn target(&self) -> EndpointTarget;

    /// Handle `method` (one of the target's methods) with its keyword `args`.
    /// `version` is the version the caller asked for. The value returned is the
    /// call's result (ignored for casts); an error goes back as a remote exception.
    async fn dispatch(
        &self,
        ctx: RequestContext,
        method: &str,
        args: Map<String, Value>,
        version: &str,
    ) -> Result<Value, NovaException>;
}

/// The endpoints of one RPC server.
#[derive(Clone, Default)]
pub struct Dispatcher {
    endpoints: Vec<(EndpointTarget, Arc<dyn Endpoint>)>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.endpoints.iter().map(|(t, _)| t))
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher with Nova's `baseapi` endpoint (namespace `baseapi`, 1.1:
    /// `ping`, `get_backdoor_port`) for `service_name` (e.g. `"compute"`).
    pub fn new(service_name: &str) -> Self {
        let mut d = Dispatcher::default();
        d.add(Arc::new(BaseApi {
            service_name: service_name.to_string(),
        }));
        d
    }

    /// Register an endpoint; endpoints are tried in registration order.
    pub fn add(&mut self, endpoint: Arc<dyn Endpoint>) -> &mut Self {
        self.endpoints.push((endpoint.target(), endpoint));
        self
    }

    pub fn with(mut self, endpoint: Arc<dyn Endpoint>) -> Self {
        self.add(endpoint);
        self
    }

    /// The endpoint that would handle the request, or the dispatcher error
    /// (`NoSuchMethod` when some endpoint of a compatible version exists but none
    /// serves the method, else `UnsupportedVersion`). Methods starting with `_`
    /// are never served.
    pub fn route(
        &self,
        namespace: Option<&str>,
        method: &str,
        version: &str,
    ) -> Result<&Arc<dyn Endpoint>, NovaException> {
        let mut found_compatible = false;
        for (t, ep) in &self.endpoints {
            if t.namespace.as_deref() != namespace || !version_is_compatible(&t.version, version) {
                continue;
            }
            if !method.starts_with('_') && t.methods.iter().any(|m| m == method) {
                return Ok(ep);
            }
            found_compatible = true;
        }
        if found_compatible {
            Err(no_such_method(method))
        } else {
            Err(unsupported_version(version, method))
        }
    }

    pub async fn dispatch(
        &self,
        ctx: RequestContext,
        namespace: Option<&str>,
        method: &str,
        args: Map<String, Value>,
        version: &str,
    ) -> Result<Value, NovaException> {
        let ep = self.route(namespace, method, version)?;
        ep.dispatch(ctx, method, args, version).await
    }
}

/// Nova's `BaseServerRPCAPI` (nova/baseapi.py).
struct BaseApi {
    service_name: String,
}

#[async_trait]
impl Endpoint for BaseApi {
    fn target(&self) -> EndpointTarget {
        EndpointTarget::new(Some("baseapi"), "1.1", &["ping", "get_backdoor_port"])
    }

    async fn dispatch(
        &self,
        _ctx: RequestContext,
        method: &str,
        args: Map<String, Value>,
        _version: &str,
    ) -> Result<Value, NovaException> {
        match method {
            "ping" => Ok(
                json!({"service": self.service_name, "arg": args.get("arg").cloned().unwrap_or(Value::Null)}),
            ),
            "get_backdoor_port" => Ok(Value::Null),
            other => Err(no_such_method(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    #[async_trait]
    impl Endpoint for Echo {
        fn target(&self) -> EndpointTarget {
            EndpointTarget::new(None, "6.5", &["echo", "_private"])
        }
        async fn dispatch(
            &self,
            _c: RequestContext,
            _m: &str,
            args: Map<String, Value>,
            v: &str,
        ) -> Result<Value, NovaException> {
            Ok(json!({"args": args, "version": v}))
        }
    }

    #[tokio::test]
    async fn routing() {
        let d = Dispatcher::new("compute").with(Arc::new(Echo));
        let ctx = RequestContext::default();
        let args: Map<String, Value> = json!({"x": 1}).as_object().cloned().unwrap_or_default();
        let r = d
            .dispatch(ctx.clone(), None, "echo", args.clone(), "6.0")
            .await
            .unwrap();
        assert_eq!(r["args"]["x"], 1);
        let e = d
            .dispatch(ctx.clone(), None, "nope", args.clone(), "6.0")
            .await
            .unwrap_err();
        assert_eq!(
            (e.class.as_str(), e.module.as_str()),
            ("NoSuchMethod", "oslo_messaging.rpc.dispatcher")
        );
        let e = d
            .dispatch(ctx.clone(), None, "_private", args.clone(), "6.0")
            .await
            .unwrap_err();
        assert_eq!(e.class, "NoSuchMethod");
        let e = d
            .dispatch(ctx.clone(), None, "echo", args.clone(), "6.6")
            .await
            .unwrap_err();
        assert_eq!(e.class, "UnsupportedVersion");
        assert_eq!(
            e.message,
            "Endpoint does not support RPC version 6.6. Attempted method: echo"
        );
        let e = d
            .dispatch(ctx.clone(), Some("other"), "echo", args, "6.0")
            .await
            .unwrap_err();
        assert_eq!(e.class, "UnsupportedVersion");
        let ping = json!({"arg": "hi"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let r = d
            .dispatch(ctx, Some("baseapi"), "ping", ping, "1.0")
            .await
            .unwrap();
        assert_eq!(r, json!({"service": "compute", "arg": "hi"}));
    }
}
