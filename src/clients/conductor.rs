//! nova-conductor, reached over RPC (topic `conductor`, version 3.0): the
//! compute host's only way to read and write Nova's database, through
//! versioned objects (`object_class_action_versions`, `object_action`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::context::RequestContext;
use crate::exception::{Class, NovaException};
use crate::objects::{object_versions, Instance, NovaObject, ObjectError};

/// How a call to another service failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CallError {
    #[error("timed out waiting for a reply to {method} on topic {topic}")]
    Timeout { topic: String, method: String },
    #[error("remote error {module}.{class}: {message}")]
    Remote {
        class: String,
        module: String,
        message: String,
        kwargs: Map<String, Value>,
    },
    #[error("messaging: {0}")]
    Transport(String),
    #[error("unexpected reply: {0}")]
    Reply(String),
}

impl CallError {
    /// No answer in time, or the connection lost under the call: the callee
    /// may or may not have done what it was asked.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, CallError::Timeout { .. } | CallError::Transport(_))
    }

    /// A remote failure of `nova.exception.<class>`.
    pub fn is_remote(&self, class: Class) -> bool {
        matches!(self, CallError::Remote { class: c, module, .. }
            if c == class.name() && module == "nova.exception")
    }
}

impl From<ObjectError> for CallError {
    fn from(e: ObjectError) -> Self {
        CallError::Reply(e.to_string())
    }
}

impl From<CallError> for NovaException {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Remote {
                class,
                module,
                message,
                kwargs,
            } => NovaException {
                class,
                module,
                message,
                kwargs,
            },
            CallError::Timeout { .. } => NovaException::other(
                "MessagingTimeout",
                "oslo_messaging.exceptions",
                e.to_string(),
                json!({}),
            ),
            other => NovaException::internal(other.to_string()),
        }
    }
}

/// How many times an instance save of unknown outcome is read back (and sent
/// again) before its error stands.
const SAVE_RESOLVE_ATTEMPTS: u32 = 3;

/// The RPC calls the conductor client needs (implemented by the oslo.messaging
/// client; a recording stand-in in unit tests).
#[async_trait]
pub trait RpcCaller: Send + Sync {
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        ctx: &RequestContext,
        topic: &str,
        namespace: Option<&str>,
        version: &str,
        method: &str,
        args: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, CallError>;

    /// A cast; `fanout` sends it to every server of the topic.
    #[allow(clippy::too_many_arguments)]
    async fn cast(
        &self,
        ctx: &RequestContext,
        topic: &str,
        namespace: Option<&str>,
        version: &str,
        method: &str,
        args: Map<String, Value>,
        fanout: bool,
    ) -> Result<(), CallError>;
}

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The conductor API of a compute host.
#[derive(Clone)]
pub struct Conductor {
    rpc: Arc<dyn RpcCaller>,
    timeout: Duration,
}

impl Conductor {
    pub fn new(rpc: Arc<dyn RpcCaller>, timeout: Duration) -> Self {
        Self { rpc, timeout }
    }

    /// `ping` (baseapi 1.0) as nova-compute does until the conductor answers.
    pub async fn ping(&self, ctx: &RequestContext, timeout: Duration) -> Result<Value, CallError> {
        self.rpc
            .call(
                ctx,
                "conductor",
                Some("baseapi"),
                "1.0",
                "ping",
                args(json!({"arg": "1.21 GigaWatts"})),
                timeout,
            )
            .await
    }

    /// A class method of an object (`Service.get_by_host_and_binary`, ...).
    pub async fn object_class_action(
        &self,
        ctx: &RequestContext,
        objname: &str,
        objmethod: &str,
        a: Vec<Value>,
        kwargs: Value,
    ) -> Result<Value, CallError> {
        self.rpc
            .call(
                ctx,
                "conductor",
                None,
                "3.0",
                "object_class_action_versions",
                args(json!({
                    "objname": objname,
                    "objmethod": objmethod,
                    "object_versions": object_versions(),
                    "args": a,
                    "kwargs": kwargs,
                })),
                self.timeout,
            )
            .await
    }

    /// A method of an object instance (`save`, `create`, `destroy`, ...): sends the
    /// whole object with its changes, applies the updates the conductor returns.
    pub async fn object_action(
        &self,
        ctx: &RequestContext,
        obj: &mut NovaObject,
        objmethod: &str,
        kwargs: Value,
    ) -> Result<Value, CallError> {
        let r = self
            .rpc
            .call(
                ctx,
                "conductor",
                None,
                "3.0",
                "object_action",
                args(json!({
                    "objinst": obj.to_primitive(),
                    "objmethod": objmethod,
                    "args": [],
                    "kwargs": kwargs,
                })),
                self.timeout,
            )
            .await?;
        match r {
            Value::Array(mut a) if a.len() == 2 => {
                let result = a.pop().unwrap_or(Value::Null);
                obj.apply_updates(&a[0]);
                Ok(result)
            }
            other => Err(CallError::Reply(format!(
                "object_action {objmethod} returned {other}, not [updates, result]"
            ))),
        }
    }

    /// `instance.save(expected_task_state=...)`; `expected` = None sends no check.
    ///
    /// A save whose outcome is unknown (no answer in time, or the broker
    /// connection lost under it: the conductor may or may not have applied it)
    /// is resolved by reading the record back: where its task state still
    /// passes the check, the save is sent again (it applies the same values);
    /// where the record already shows what the save wrote (its vm and task
    /// state and host), it had been applied; otherwise the first error stands.
    pub async fn instance_save(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        expected: Option<&[Option<&str>]>,
    ) -> Result<(), CallError> {
        let mut first = match self.save_once(ctx, inst, expected).await {
            Err(e) if e.outcome_unknown() => e,
            other => return other,
        };
        for attempt in 1..=SAVE_RESOLVE_ATTEMPTS {
            tracing::warn!(instance = inst.uuid(), attempt, error = %first,
                "the outcome of an instance save is unknown: reading the record back");
            let cur = match self.instance_get(ctx, inst.uuid()).await {
                Ok(cur) => cur,
                Err(e) if e.outcome_unknown() => continue,
                Err(e) => return Err(e),
            };
            let passes =
                expected.is_none_or(|ex| ex.contains(&cur.task_state().map(|t| t.as_str())));
            if !passes {
                let applied = cur.vm_state() == inst.vm_state()
                    && cur.task_state() == inst.task_state()
                    && cur.host() == inst.host();
                if applied {
                    tracing::info!(instance = inst.uuid(), "the instance save had been applied");
                    inst.object_mut().changes.clear();
                    return Ok(());
                }
                return Err(first);
            }
            match self.save_once(ctx, inst, expected).await {
                Err(e) if e.outcome_unknown() => first = e,
                other => return other,
            }
        }
        Err(first)
    }

    async fn save_once(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        expected: Option<&[Option<&str>]>,
    ) -> Result<(), CallError> {
        let kwargs = match expected {
            Some(e) => json!({"expected_task_state": e}),
            None => json!({}),
        };
        let updates = self
            .object_action(ctx, inst.object_mut(), "save", kwargs)
            .await;
        // object_action applied the updates to the object; the typed view
        // re-reads what it derives from them
        updates?;
        inst.refresh_derived();
        Ok(())
    }

    pub async fn instance_get(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Result<Instance, CallError> {
        let v = self
            .object_class_action(
                ctx,
                "Instance",
                "get_by_uuid",
                vec![],
                json!({"uuid": uuid, "expected_attrs": ["flavor", "info_cache", "metadata", "system_metadata"]}),
            )
            .await?;
        Ok(Instance::from_primitive(&v)?)
    }

    pub async fn instance_destroy(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
    ) -> Result<(), CallError> {
        self.object_action(ctx, inst.object_mut(), "destroy", json!({}))
            .await?;
        Ok(())
    }

    /// `ConsoleAuthToken.authorize(ttl)`: the conductor stores the token's hash
    /// and gives back the token (the only place it exists in clear).
    pub async fn console_auth_authorize(
        &self,
        ctx: &RequestContext,
        token: &mut NovaObject,
        ttl: std::time::Duration,
    ) -> Result<String, CallError> {
        let r = self
            .object_action(ctx, token, "authorize", json!({"ttl": ttl.as_secs()}))
            .await?;
        match r {
            Value::String(t) => Ok(t),
            other => Err(CallError::Reply(format!(
                "ConsoleAuthToken.authorize returned {}, not a token",
                if other.is_null() {
                    "nothing"
                } else {
                    "something else"
                }
            ))),
        }
    }

    /// `ConsoleAuthToken.clean_console_auths_for_instance`: no token of the
    /// instance works any more.
    pub async fn clean_console_auths(
        &self,
        ctx: &RequestContext,
        instance_uuid: &str,
    ) -> Result<(), CallError> {
        self.object_class_action(
            ctx,
            "ConsoleAuthToken",
            "clean_console_auths_for_instance",
            vec![],
            json!({"instance_uuid": instance_uuid}),
        )
        .await?;
        Ok(())
    }

    /// Instances Nova has on this host.
    pub async fn instances_on_host(
        &self,
        ctx: &RequestContext,
        host: &str,
    ) -> Result<Vec<Instance>, CallError> {
        let v = self
            .object_class_action(
                ctx,
                "InstanceList",
                "get_by_host",
                vec![json!(host)],
                json!({"expected_attrs": ["info_cache", "metadata", "system_metadata", "flavor"]}),
            )
            .await?;
        let list = NovaObject::from_primitive_of(&v, "InstanceList")?;
        Ok(list
            .list_objects()?
            .into_iter()
            .map(Instance::from_object)
            .collect::<Result<_, _>>()?)
    }

    /// `InstanceAction.action_start`: an action the API did not record (one
    /// the compute service takes itself, as Nova's power sync does through
    /// `compute_api.force_stop`), under the request id of `ctx`.
    pub async fn action_start(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        action: &str,
    ) -> Result<(), CallError> {
        self.object_class_action(
            ctx,
            "InstanceAction",
            "action_start",
            vec![json!(uuid), json!(action)],
            json!({"want_result": false}),
        )
        .await
        .map(|_| ())
    }

    /// `InstanceActionEvent.event_start` (the instance action was created by the API).
    pub async fn event_start(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        event: &str,
        host: &str,
    ) -> Result<(), CallError> {
        self.object_class_action(
            ctx,
            "InstanceActionEvent",
            "event_start",
            vec![json!(uuid), json!(event)],
            json!({"want_result": false, "host": host}),
        )
        .await
        .map(|_| ())
    }

    /// `InstanceActionEvent.event_finish_with_failure`; `failure` None = success.
    pub async fn event_finish(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        event: &str,
        failure: Option<&str>,
    ) -> Result<(), CallError> {
        self.object_class_action(
            ctx,
            "InstanceActionEvent",
            "event_finish_with_failure",
            vec![json!(uuid), json!(event)],
            json!({"exc_val": failure, "exc_tb": failure.map(|f| format!("{f}\n")), "want_result": false}),
        )
        .await
        .map(|_| ())
    }

    /// `build_instances` (compute_task 1.19, a cast): a build handed back
    /// for another host, with the arguments of
    /// [`crate::compute::reschedule::Retry::build_instances_args`].
    pub async fn build_instances(
        &self,
        ctx: &RequestContext,
        args: Map<String, Value>,
    ) -> Result<(), CallError> {
        self.rpc
            .cast(
                ctx,
                "conductor",
                Some("compute_task"),
                "1.19",
                "build_instances",
                args,
                false,
            )
            .await
    }

    /// A cast to the compute service of `host` (compute 6.0): the next step
    /// of a resize, on the host it belongs to.
    pub async fn cast_compute(
        &self,
        ctx: &RequestContext,
        host: &str,
        method: &str,
        arguments: Value,
    ) -> Result<(), CallError> {
        self.rpc
            .cast(
                ctx,
                &format!("compute.{host}"),
                None,
                "6.0",
                method,
                args(arguments),
                false,
            )
            .await
    }

    /// Record an InstanceFault, as `compute_utils.add_instance_fault_from_exc`.
    pub async fn add_fault(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        host: &str,
        e: &NovaException,
    ) -> Result<(), CallError> {
        let code = e.kwargs.get("code").and_then(Value::as_i64).unwrap_or(500);
        let mut f = NovaObject::new("InstanceFault", "1.2");
        f.set("host", json!(host));
        f.set("instance_uuid", json!(uuid));
        f.set("code", json!(code));
        f.set("message", json!(truncate(&e.message, 255)));
        // Nova shows details only to admins, and only the class for 5xx faults.
        f.set("details", json!(format!("{}: {}", e.class, e.message)));
        self.object_action(ctx, &mut f, "create", json!({})).await?;
        Ok(())
    }
}

/// At most `n` bytes: cut at the last space that leaves room for an ellipsis,
/// so the user reads whole words.
fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let room = s.floor_char_boundary(n.saturating_sub('…'.len_utf8()));
    let cut = s[..room]
        .rfind(' ')
        .filter(|&i| i > room / 2)
        .unwrap_or(room);
    format!("{}…", s[..cut].trim_end())
}

/// The oslo.messaging client is how the conductor is reached.
#[async_trait]
impl RpcCaller for crate::rpc::RpcClient {
    async fn call(
        &self,
        ctx: &RequestContext,
        topic: &str,
        namespace: Option<&str>,
        version: &str,
        method: &str,
        args: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let mut target = crate::rpc::Target::new(topic, version);
        if let Some(ns) = namespace {
            target = target.namespace(ns);
        }
        let started = std::time::Instant::now();
        let r = self
            .call_with_timeout(ctx, &target, method, args, timeout)
            .await
            .map_err(|e| rpc_error(topic, method, e));
        let outcome = match &r {
            Ok(_) => "ok",
            Err(CallError::Timeout { .. }) => "timeout",
            Err(CallError::Remote { .. }) => "remote_error",
            Err(_) => "error",
        };
        crate::metrics::conductor_call(method, outcome, started);
        r
    }

    async fn cast(
        &self,
        ctx: &RequestContext,
        topic: &str,
        namespace: Option<&str>,
        version: &str,
        method: &str,
        args: Map<String, Value>,
        fanout: bool,
    ) -> Result<(), CallError> {
        let mut target = crate::rpc::Target::new(topic, version).fanout(fanout);
        if let Some(ns) = namespace {
            target = target.namespace(ns);
        }
        crate::rpc::RpcClient::cast(self, ctx, &target, method, args)
            .await
            .map_err(|e| rpc_error(topic, method, e))
    }
}

fn rpc_error(topic: &str, method: &str, e: crate::rpc::RpcError) -> CallError {
    match e {
        crate::rpc::RpcError::Timeout { .. } => CallError::Timeout {
            topic: topic.to_string(),
            method: method.to_string(),
        },
        crate::rpc::RpcError::Remote(r) => CallError::Remote {
            class: r.class,
            module: r.module,
            message: r.message,
            kwargs: r.kwargs,
        },
        other => CallError::Transport(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_fault_is_cut_between_words_with_an_ellipsis() {
        let msg = "word ".repeat(80);
        let t = super::truncate(&msg, 255);
        assert!(t.len() <= 255, "{}", t.len());
        assert!(t.ends_with("word…"), "{t}");
        assert_eq!(super::truncate("short", 255), "short");
        // no space to cut at: cut inside, still within the limit
        let t = super::truncate(&"é".repeat(300), 255);
        assert!(t.len() <= 255 && t.ends_with('…'));
    }

    use super::*;
    use std::sync::Mutex;

    /// Replays captured conductor replies, recording what we sent.
    struct Replay {
        sent: Mutex<Vec<(String, Map<String, Value>)>>,
        reply: Value,
    }

    #[async_trait]
    impl RpcCaller for Replay {
        async fn call(
            &self,
            _ctx: &RequestContext,
            topic: &str,
            _ns: Option<&str>,
            version: &str,
            method: &str,
            args: Map<String, Value>,
            _t: Duration,
        ) -> Result<Value, CallError> {
            assert_eq!((topic, version), ("conductor", "3.0"));
            self.sent.lock().unwrap().push((method.into(), args));
            Ok(self.reply.clone())
        }
        async fn cast(
            &self,
            _: &RequestContext,
            _: &str,
            _: Option<&str>,
            _: &str,
            _: &str,
            _: Map<String, Value>,
            _: bool,
        ) -> Result<(), CallError> {
            Ok(())
        }
    }

    fn capture(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wire/conductor-bound")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn instance_save_sends_what_nova_compute_sends_and_applies_the_reply() {
        let c = capture("Instance.save.json");
        let replay = Arc::new(Replay {
            sent: Mutex::new(vec![]),
            reply: c["reply"]["oslo_message"]["result"].clone(),
        });
        let conductor = Conductor::new(replay.clone(), Duration::from_secs(1));
        let sent_args = &c["oslo_message"]["args"];
        let mut inst = Instance::from_primitive(&sent_args["objinst"]).unwrap();
        conductor
            .instance_save(
                &RequestContext::admin(),
                &mut inst,
                Some(&[Some("scheduling"), None]),
            )
            .await
            .unwrap();
        let sent = replay.sent.lock().unwrap();
        let (method, args) = &sent[0];
        assert_eq!(method, "object_action");
        assert_eq!(args["objmethod"], "save");
        assert_eq!(args["kwargs"], sent_args["kwargs"]);
        assert_eq!(args["objinst"], sent_args["objinst"]);
        // the reply's updates were applied and its obj_what_changed adopted, as
        // oslo.versionedobjects' remotable wrapper does
        assert_eq!(inst.changes(), ["ec2_ids"]);
    }

    #[tokio::test]
    async fn class_action_carries_the_version_manifest() {
        let c = capture("InstanceActionEvent.event_start.json");
        let replay = Arc::new(Replay {
            sent: Mutex::new(vec![]),
            reply: Value::Null,
        });
        let conductor = Conductor::new(replay.clone(), Duration::from_secs(1));
        let a = &c["oslo_message"]["args"];
        conductor
            .event_start(
                &RequestContext::admin(),
                a["args"][0].as_str().unwrap(),
                a["args"][1].as_str().unwrap(),
                "fakehost1",
            )
            .await
            .unwrap();
        let sent = replay.sent.lock().unwrap();
        let args = &sent[0].1;
        assert_eq!(args["objname"], a["objname"]);
        assert_eq!(args["objmethod"], a["objmethod"]);
        assert_eq!(args["args"], a["args"]);
        assert_eq!(args["kwargs"], a["kwargs"]);
        for (k, v) in a["object_versions"].as_object().unwrap() {
            assert_eq!(&args["object_versions"][k], v, "{k}");
        }
    }

    #[tokio::test]
    async fn object_action_rejects_a_malformed_reply() {
        let replay = Arc::new(Replay {
            sent: Mutex::new(vec![]),
            reply: json!({"not": "a pair"}),
        });
        let conductor = Conductor::new(replay, Duration::from_secs(1));
        let mut s = crate::objects::new_service("h", 74);
        let e = conductor
            .object_action(&RequestContext::admin(), &mut s, "create", json!({}))
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Reply(_)));
    }
}
