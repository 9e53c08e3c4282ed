//! Fakes of the manager's seams: the conductor (over the `RpcCaller` seam),
//! the driver, images, networking, container options and placement.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde_json::{json, Map, Value};

use crate::clients::conductor::{CallError, RpcCaller};
use crate::clients::placement::{Inventory, Placement, PlacementError};
use crate::compute::backends::{ImageBackend, NetworkApi, NetworkBackend, OptionsBackend};
use crate::compute::request::NetworkRequest;
use crate::compute::SnapshotKind;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::network::{NetworkInfo, Vif};
use crate::objects::Instance;
use crate::virt::spec::ContainerOptions;
use crate::virt::{
    ComputeDriver, ConsoleIo, ConsoleKind, Diagnostics, DriverError, HostResources, InstanceInfo,
    InstanceSpec, InstanceSummary, LifecycleEvent, PowerState, RebootType,
};

/// The receiver as a stream (what tokio-stream's wrapper does).
fn tokio_stream_of<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One `Instance.save` as the conductor received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Save {
    pub vm_state: Option<String>,
    pub task_state: Option<String>,
    /// `expected_task_state`; `None` when the save checked nothing.
    pub expected: Option<Vec<Option<String>>>,
    /// The fields it changed, in order.
    pub changes: Vec<String>,
    /// `host` after the save.
    pub host: Option<String>,
}

/// A call to the conductor, as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Save(Save),
    EventStart(String),
    EventFinish {
        event: String,
        failed: bool,
    },
    Fault {
        message: String,
        code: i64,
    },
    Destroy,
    Get,
    List,
    /// `InstanceInfoCache.save` with this many VIFs.
    CacheSave(usize),
    Other(String),
}

/// The argument keys of the captured conductor-bound messages.
fn captured_keys(name: &str) -> (Vec<String>, Value) {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wire/conductor-bound")
        .join(name);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let args = v["oslo_message"]["args"].clone();
    let mut keys: Vec<String> = args.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    (keys, args)
}

fn sorted_keys(m: &Map<String, Value>) -> Vec<String> {
    let mut k: Vec<String> = m.keys().cloned().collect();
    k.sort();
    k
}

/// A cast to the conductor: (topic, namespace, method, args).
pub type Cast = (String, Option<String>, String, Map<String, Value>);

/// nova-conductor as far as a compute host sees it: each instance's record
/// (`nova_object.data`), kept up to date by the saves.
#[derive(Default)]
pub struct FakeConductor {
    pub db: Mutex<HashMap<String, Map<String, Value>>>,
    pub calls: Mutex<Vec<(String, Call)>>,
    /// After this many saves of an instance, its record's task state becomes
    /// the given one (a delete arriving meanwhile, say).
    pub db_change_after: Mutex<Option<(usize, Option<String>)>>,
    saves_seen: Mutex<usize>,
    /// `ConsoleAuthToken.authorize`: each token and the object's fields.
    pub console_tokens: Mutex<Vec<(String, Value)>>,
    /// The casts, in order.
    pub casts: Mutex<Vec<Cast>>,
    /// Saves that expect a task state fail with an unknown outcome.
    pub save_trouble: Mutex<Option<SaveTrouble>>,
    /// The Migration primitives `MigrationList.get_by_filters` answers
    /// (those of the filter's `source_compute`).
    pub migrations: Mutex<Vec<Value>>,
}

/// The next `times` saves that expect the task state `expecting` get no
/// answer: not applied and timed out (the conductor down), or applied and the
/// connection lost before the reply (`applied`).
#[derive(Debug, Clone)]
pub struct SaveTrouble {
    pub expecting: String,
    pub applied: bool,
    pub times: usize,
}

impl FakeConductor {
    pub fn put(&self, inst: &Instance) {
        let data = inst.to_primitive()["nova_object.data"]
            .as_object()
            .cloned()
            .unwrap();
        lock(&self.db).insert(inst.uuid().to_string(), data);
    }

    pub fn record(&self, uuid: &str) -> Option<Map<String, Value>> {
        lock(&self.db).get(uuid).cloned()
    }

    fn push(&self, uuid: &str, c: Call) {
        lock(&self.calls).push((uuid.to_string(), c));
    }

    fn instance_primitive(data: &Map<String, Value>) -> Value {
        json!({"nova_object.name": "Instance", "nova_object.namespace": "nova",
               "nova_object.version": "2.8", "nova_object.data": data})
    }

    fn save(&self, args: &Map<String, Value>) -> Result<Value, CallError> {
        let (keys, captured) = captured_keys("Instance.save.json");
        assert_eq!(sorted_keys(args), keys, "Instance.save arguments");
        let obj = &args["objinst"];
        assert_eq!(obj["nova_object.name"], "Instance");
        assert_eq!(args["args"], captured["args"]);
        let kwargs = args["kwargs"].as_object().unwrap();
        let expected: Option<Vec<Option<String>>> = kwargs.get("expected_task_state").map(|e| {
            e.as_array()
                .expect("expected_task_state is a list, as captured")
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        });
        let data = obj["nova_object.data"].as_object().unwrap();
        let uuid = data["uuid"].as_str().unwrap().to_string();
        let lost_reply = {
            let mut t = lock(&self.save_trouble);
            match t.as_mut() {
                Some(tr)
                    if tr.times > 0
                        && expected
                            .as_ref()
                            .is_some_and(|e| e.contains(&Some(tr.expecting.clone()))) =>
                {
                    tr.times -= 1;
                    if !tr.applied {
                        return Err(CallError::Timeout {
                            topic: "conductor".into(),
                            method: "object_action".into(),
                        });
                    }
                    true
                }
                _ => false,
            }
        };
        let changes: Vec<String> = obj["nova_object.changes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut db = lock(&self.db);
        let Some(rec) = db.get_mut(&uuid) else {
            return Err(remote(
                "InstanceNotFound",
                &format!("Instance {uuid} could not be found."),
            ));
        };
        // what nova's Instance.save does with expected_task_state
        if let Some(exp) = &expected {
            let actual = rec
                .get("task_state")
                .and_then(Value::as_str)
                .map(str::to_string);
            if !exp.contains(&actual) {
                let class = if actual.as_deref() == Some("deleting") {
                    "UnexpectedDeletingTaskStateError"
                } else {
                    "UnexpectedTaskStateError"
                };
                return Err(remote(
                    class,
                    &format!(
                        "Conflict updating instance {uuid}. Expected: {exp:?}. Actual: {actual:?}"
                    ),
                ));
            }
        }
        for c in &changes {
            rec.insert(c.clone(), data.get(c).cloned().unwrap_or(Value::Null));
        }
        let save = Save {
            vm_state: rec
                .get("vm_state")
                .and_then(Value::as_str)
                .map(str::to_string),
            task_state: rec
                .get("task_state")
                .and_then(Value::as_str)
                .map(str::to_string),
            expected,
            changes,
            host: rec.get("host").and_then(Value::as_str).map(str::to_string),
        };
        let mut n = lock(&self.saves_seen);
        *n += 1;
        if let Some((after, ts)) = lock(&self.db_change_after).clone() {
            if *n == after {
                rec.insert("task_state".into(), ts.map_or(Value::Null, Value::String));
            }
        }
        drop(db);
        self.push(&uuid, Call::Save(save));
        if lost_reply {
            return Err(CallError::Transport(
                "AMQP connection lost: IO error: connection aborted".into(),
            ));
        }
        Ok(json!([{}, null]))
    }
}

pub fn remote(class: &str, message: &str) -> CallError {
    CallError::Remote {
        class: class.into(),
        module: "nova.exception".into(),
        message: message.into(),
        kwargs: Map::new(),
    }
}

#[async_trait]
impl RpcCaller for FakeConductor {
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
        match method {
            "object_action" => {
                let name = args["objinst"]["nova_object.name"].as_str().unwrap_or("");
                let data = &args["objinst"]["nova_object.data"];
                match (name, args["objmethod"].as_str().unwrap_or("")) {
                    ("Instance", "save") => self.save(&args),
                    ("Instance", "destroy") => {
                        let uuid = data["uuid"].as_str().unwrap().to_string();
                        lock(&self.db).remove(&uuid);
                        self.push(&uuid, Call::Destroy);
                        Ok(json!([{}, null]))
                    }
                    ("InstanceFault", "create") => {
                        let uuid = data["instance_uuid"].as_str().unwrap().to_string();
                        self.push(
                            &uuid,
                            Call::Fault {
                                message: data["message"].as_str().unwrap_or("").into(),
                                code: data["code"].as_i64().unwrap_or(0),
                            },
                        );
                        Ok(json!([{}, null]))
                    }
                    ("InstanceInfoCache", "save") => {
                        let (keys, captured) = captured_keys("InstanceInfoCache.save.json");
                        assert_eq!(sorted_keys(&args), keys, "InstanceInfoCache.save arguments");
                        let obj = &args["objinst"];
                        assert_eq!(
                            obj["nova_object.version"],
                            captured["objinst"]["nova_object.version"]
                        );
                        let mut changes: Vec<String> = obj["nova_object.changes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|c| c.as_str().unwrap().to_string())
                            .collect();
                        changes.sort();
                        assert_eq!(changes, vec!["instance_uuid", "network_info"]);
                        let uuid = data["instance_uuid"].as_str().unwrap().to_string();
                        let text = data["network_info"]
                            .as_str()
                            .expect("network_info is a JSON string");
                        let nw = NetworkInfo::parse(text).unwrap();
                        if let Some(rec) = lock(&self.db).get_mut(&uuid) {
                            rec.insert(
                                "info_cache".into(),
                                json!({"nova_object.name": "InstanceInfoCache", "nova_object.namespace": "nova",
                                       "nova_object.version": "1.5",
                                       "nova_object.data": {"instance_uuid": uuid, "network_info": text}}),
                            );
                        }
                        self.push(&uuid, Call::CacheSave(nw.len()));
                        Ok(json!([{}, null]))
                    }
                    ("Migration", "save") => {
                        let uuid = data["instance_uuid"].as_str().unwrap_or("").to_string();
                        let status = data["status"].as_str().unwrap_or("").to_string();
                        self.push(&uuid, Call::Other(format!("migration {status}")));
                        Ok(json!([{}, null]))
                    }
                    ("ConsoleAuthToken", "authorize") => {
                        let uuid = data["instance_uuid"].as_str().unwrap().to_string();
                        let ttl = args["kwargs"]["ttl"].as_u64().expect("ttl");
                        let mut tokens = lock(&self.console_tokens);
                        let token = format!("token-{}", tokens.len() + 1);
                        tokens.push((token.clone(), data.clone()));
                        self.push(
                            &uuid,
                            Call::Other(format!("ConsoleAuthToken.authorize ttl={ttl}")),
                        );
                        Ok(json!([{"id": tokens.len(), "token": token, "expires": 0}, token]))
                    }
                    (n, m) => {
                        self.push("", Call::Other(format!("{n}.{m}")));
                        Ok(json!([{}, null]))
                    }
                }
            }
            "object_class_action_versions" => {
                let objname = args["objname"].as_str().unwrap_or("");
                let objmethod = args["objmethod"].as_str().unwrap_or("");
                match (objname, objmethod) {
                    ("InstanceAction", "action_start") => {
                        let uuid = args["args"][0].as_str().unwrap();
                        let action = args["args"][1].as_str().unwrap();
                        self.push(uuid, Call::Other(format!("action_start {action}")));
                        Ok(Value::Null)
                    }
                    ("InstanceActionEvent", "event_start") => {
                        let (keys, _) = captured_keys("InstanceActionEvent.event_start.json");
                        assert_eq!(sorted_keys(&args), keys);
                        let uuid = args["args"][0].as_str().unwrap();
                        let ev = args["args"][1].as_str().unwrap().to_string();
                        self.push(uuid, Call::EventStart(ev));
                        Ok(Value::Null)
                    }
                    ("InstanceActionEvent", "event_finish_with_failure") => {
                        let (keys, _) =
                            captured_keys("InstanceActionEvent.event_finish_with_failure.json");
                        assert_eq!(sorted_keys(&args), keys);
                        let uuid = args["args"][0].as_str().unwrap();
                        let event = args["args"][1].as_str().unwrap().to_string();
                        let failed = !args["kwargs"]["exc_val"].is_null();
                        self.push(uuid, Call::EventFinish { event, failed });
                        Ok(Value::Null)
                    }
                    ("Instance", "get_by_uuid") => {
                        let uuid = args["kwargs"]["uuid"].as_str().unwrap().to_string();
                        self.push(&uuid, Call::Get);
                        match lock(&self.db).get(&uuid) {
                            Some(d) => Ok(Self::instance_primitive(d)),
                            None => Err(remote("InstanceNotFound", "gone")),
                        }
                    }
                    ("InstanceInfoCache", "get_by_instance_uuid") => {
                        let uuid = args["kwargs"]["instance_uuid"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        match lock(&self.db).get(&uuid) {
                            Some(d) => Ok(d.get("info_cache").cloned().unwrap_or_else(|| {
                                json!({"nova_object.name": "InstanceInfoCache", "nova_object.namespace": "nova",
                                       "nova_object.version": "1.5",
                                       "nova_object.data": {"instance_uuid": uuid, "network_info": "[]"}})
                            })),
                            None => Err(remote("InstanceNotFound", "gone")),
                        }
                    }
                    ("MigrationList", "get_by_filters") => {
                        let f = &args["kwargs"]["filters"];
                        let objects: Vec<Value> = lock(&self.migrations)
                            .iter()
                            .filter(|m| {
                                m["nova_object.data"]["source_compute"] == f["source_compute"]
                            })
                            .cloned()
                            .collect();
                        Ok(
                            json!({"nova_object.name": "MigrationList", "nova_object.namespace": "nova",
                                  "nova_object.version": "1.5", "nova_object.data": {"objects": objects}}),
                        )
                    }
                    ("InstanceList", "get_by_host") => {
                        let host = args["args"][0].as_str().unwrap_or("");
                        self.push("", Call::List);
                        let objects: Vec<Value> = lock(&self.db)
                            .values()
                            .filter(|d| d.get("host").and_then(Value::as_str) == Some(host))
                            // read_deleted "no", as the daemon lists them
                            .filter(|d| d.get("deleted").and_then(Value::as_bool) != Some(true))
                            .map(Self::instance_primitive)
                            .collect();
                        Ok(
                            json!({"nova_object.name": "InstanceList", "nova_object.namespace": "nova",
                                  "nova_object.version": "2.6", "nova_object.data": {"objects": objects}}),
                        )
                    }
                    (n, m) => {
                        self.push("", Call::Other(format!("{n}.{m}")));
                        Ok(Value::Null)
                    }
                }
            }
            other => panic!("unexpected conductor method {other}"),
        }
    }

    async fn cast(
        &self,
        _: &RequestContext,
        topic: &str,
        namespace: Option<&str>,
        _: &str,
        method: &str,
        args: Map<String, Value>,
        _: bool,
    ) -> Result<(), CallError> {
        // a cast about instances is part of their trace
        let inst = args
            .get("instances")
            .and_then(|l| l.get(0))
            .or_else(|| args.get("instance"));
        let uuid = inst
            .and_then(|i| i["nova_object.data"]["uuid"].as_str())
            .unwrap_or_default()
            .to_string();
        self.push(&uuid, Call::Other(format!("cast {method}")));
        lock(&self.casts).push((
            topic.to_string(),
            namespace.map(str::to_string),
            method.to_string(),
            args,
        ));
        Ok(())
    }
}

/// One container of the fake engine.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeContainer {
    pub state: PowerState,
    pub image: String,
    pub pid: u32,
    /// A rebuild set this one aside.
    pub aside: Option<Box<FakeContainer>>,
    /// The exit code of its command, once it exited by itself.
    pub exit_code: Option<i64>,
    /// `(memory_mb, vcpus)` of its last in-place resize.
    pub limits: Option<(u64, u32)>,
}

/// An engine in memory. `fail(op)` makes the next call of `op` fail.
#[derive(Default)]
pub struct FakeDriver {
    pub containers: Mutex<HashMap<String, FakeContainer>>,
    pub ops: Mutex<Vec<(String, String)>>,
    failures: Mutex<HashMap<&'static str, DriverError>>,
    next_pid: Mutex<u32>,
    /// The command of the next spawned container exits with this code at once.
    exit_at_start: Mutex<Option<i64>>,
    /// When set, each spawn waits for a permit of it (see [`Self::hold_spawns`]).
    spawn_gate: Mutex<Option<std::sync::Arc<tokio::sync::Semaphore>>>,
    /// Spawns waiting at the gate now.
    pub spawns_held: std::sync::atomic::AtomicUsize,
}

impl FakeDriver {
    pub fn fail(&self, op: &'static str, e: DriverError) {
        lock(&self.failures).insert(op, e);
    }

    /// From now on spawns wait at a gate; the semaphore returned lets them on.
    pub fn hold_spawns(&self) -> std::sync::Arc<tokio::sync::Semaphore> {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        *lock(&self.spawn_gate) = Some(gate.clone());
        gate
    }

    /// The next spawned container's command exits with `code` right after start.
    pub fn exit_at_start(&self, code: i64) {
        *lock(&self.exit_at_start) = Some(code);
    }

    pub fn container(&self, uuid: &str) -> Option<FakeContainer> {
        lock(&self.containers).get(uuid).cloned()
    }

    pub fn insert(&self, uuid: &str, state: PowerState) {
        let pid = self.pid();
        lock(&self.containers).insert(
            uuid.into(),
            FakeContainer {
                state,
                image: "glance/old".into(),
                pid,
                aside: None,
                exit_code: None,
                limits: None,
            },
        );
    }

    fn pid(&self) -> u32 {
        let mut p = lock(&self.next_pid);
        *p += 1;
        1000 + *p
    }

    fn op(&self, op: &'static str, uuid: &str) -> Result<(), DriverError> {
        lock(&self.ops).push((op.into(), uuid.into()));
        match lock(&self.failures).remove(op) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let c = self
            .container(uuid)
            .ok_or_else(|| DriverError::NotFound { uuid: uuid.into() })?;
        Ok(InstanceInfo {
            state: c.state,
            internal_id: format!("id-{uuid}"),
            pid: (c.state == PowerState::Running).then_some(c.pid),
            status: c.state.name().into(),
            exit_code: c.exit_code,
            oom_killed: false,
            started_at: None,
            finished_at: None,
        })
    }

    fn set(
        &self,
        uuid: &str,
        state: PowerState,
        new_pid: bool,
    ) -> Result<InstanceInfo, DriverError> {
        let pid = self.pid();
        {
            let mut m = lock(&self.containers);
            let c = m
                .get_mut(uuid)
                .ok_or_else(|| DriverError::NotFound { uuid: uuid.into() })?;
            c.state = state;
            if new_pid {
                c.pid = pid;
            }
        }
        self.info(uuid)
    }
}

#[async_trait]
impl ComputeDriver for FakeDriver {
    async fn spawn(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let gate = lock(&self.spawn_gate).clone();
        if let Some(g) = gate {
            use std::sync::atomic::Ordering::SeqCst;
            self.spawns_held.fetch_add(1, SeqCst);
            g.acquire().await.expect("open").forget();
            self.spawns_held.fetch_sub(1, SeqCst);
        }
        self.op("spawn", &spec.uuid)?;
        if self.container(&spec.uuid).is_some() {
            return Err(DriverError::Exists {
                uuid: spec.uuid.clone(),
                name: crate::virt::container_name(&spec.uuid),
            });
        }
        let pid = self.pid();
        let exit_code = lock(&self.exit_at_start).take();
        lock(&self.containers).insert(
            spec.uuid.clone(),
            FakeContainer {
                state: if exit_code.is_some() {
                    PowerState::Shutdown
                } else {
                    PowerState::Running
                },
                image: spec.image.clone(),
                pid,
                aside: None,
                exit_code,
                limits: None,
            },
        );
        self.info(&spec.uuid)
    }
    async fn resize(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        self.op("resize", &spec.uuid)?;
        let mut m = lock(&self.containers);
        let c = m.get_mut(&spec.uuid).ok_or_else(|| DriverError::NotFound {
            uuid: spec.uuid.clone(),
        })?;
        c.limits = Some((spec.memory_mb, spec.vcpus));
        drop(m);
        self.info(&spec.uuid)
    }
    async fn rebuild(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let uuid = spec.uuid.as_str();
        let old = self
            .container(uuid)
            .ok_or_else(|| DriverError::NotFound { uuid: uuid.into() })?;
        // the old one is kept as it was when the new one fails
        self.op("rebuild", uuid)?;
        let pid = self.pid();
        lock(&self.containers).insert(
            uuid.into(),
            FakeContainer {
                state: PowerState::Running,
                image: spec.image.clone(),
                pid,
                aside: Some(Box::new(old)),
                exit_code: None,
                limits: None,
            },
        );
        self.info(uuid)
    }
    async fn destroy(&self, uuid: &str, _t: Duration) -> Result<(), DriverError> {
        self.op("destroy", uuid)?;
        lock(&self.containers).remove(uuid);
        Ok(())
    }
    async fn power_off(&self, uuid: &str, _t: Duration) -> Result<InstanceInfo, DriverError> {
        self.op("power_off", uuid)?;
        self.set(uuid, PowerState::Shutdown, false)
    }
    async fn power_on(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.op("power_on", uuid)?;
        self.set(uuid, PowerState::Running, true)
    }
    async fn reboot(&self, uuid: &str, _k: RebootType) -> Result<InstanceInfo, DriverError> {
        self.op("reboot", uuid)?;
        self.set(uuid, PowerState::Running, true)
    }
    async fn pause(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.op("pause", uuid)?;
        self.set(uuid, PowerState::Paused, false)
    }
    async fn unpause(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.op("unpause", uuid)?;
        self.set(uuid, PowerState::Running, false)
    }
    async fn suspend(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.op("suspend", uuid)?;
        self.set(uuid, PowerState::Suspended, false)
    }
    async fn resume(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.op("resume", uuid)?;
        self.set(uuid, PowerState::Running, true)
    }
    async fn get_info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        self.info(uuid)
    }
    async fn get_console_output(
        &self,
        uuid: &str,
        _tail: Option<usize>,
    ) -> Result<String, DriverError> {
        self.info(uuid).map(|_| "console\n".into())
    }
    /// A console that answers each chunk typed with `echo:<chunk>` (a shell in
    /// miniature), for a running container only.
    async fn open_console(&self, uuid: &str) -> Result<ConsoleIo, DriverError> {
        self.op("open_console", uuid)?;
        let c = self
            .container(uuid)
            .ok_or_else(|| DriverError::NotFound { uuid: uuid.into() })?;
        if c.state != PowerState::Running {
            return Err(DriverError::InvalidState {
                uuid: uuid.into(),
                state: "not running",
                op: "open a console",
            });
        }
        let (input, mut typed) = tokio::io::duplex(4096);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, DriverError>>(16);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            let _ = tx.send(Ok(bytes::Bytes::from_static(b"$ "))).await;
            while let Ok(n) = typed.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut out = b"echo:".to_vec();
                out.extend_from_slice(&buf[..n]);
                if tx.send(Ok(out.into())).await.is_err() {
                    break;
                }
            }
        });
        Ok(ConsoleIo {
            kind: ConsoleKind::Shell,
            output: futures_util::StreamExt::boxed(tokio_stream_of(rx)),
            input: Box::pin(input),
        })
    }

    async fn get_diagnostics(&self, uuid: &str) -> Result<Diagnostics, DriverError> {
        self.info(uuid).map(|i| Diagnostics {
            state: i.state.name().into(),
            ..Default::default()
        })
    }
    async fn get_legacy_diagnostics(
        &self,
        uuid: &str,
    ) -> Result<BTreeMap<String, Value>, DriverError> {
        self.info(uuid).map(|_| BTreeMap::new())
    }
    async fn list_instances(&self) -> Result<Vec<InstanceSummary>, DriverError> {
        Ok(lock(&self.containers)
            .iter()
            .map(|(u, c)| InstanceSummary {
                uuid: u.clone(),
                id: format!("id-{u}"),
                names: vec![crate::virt::container_name(u)],
                image: Some(c.image.clone()),
                image_id: None,
                running: c.state == PowerState::Running,
                memory_mb: 0,
                vcpus: 0,
                size_rw: None,
            })
            .collect())
    }
    async fn host_resources(&self) -> Result<HostResources, DriverError> {
        Ok(HostResources {
            vcpus: 2,
            vcpus_used: 0,
            memory_mb: 1024,
            memory_mb_used: 0,
            local_gb: 10,
            local_gb_used: 0,
            disk_available_least: 10,
            hypervisor_type: "docker".into(),
            hypervisor_version: 1,
            hypervisor_hostname: "h".into(),
            running_vms: 0,
            docker_root_dir: "/".into(),
        })
    }
    fn events(&self) -> BoxStream<'static, Result<LifecycleEvent, DriverError>> {
        Box::pin(futures_util::stream::pending())
    }
}

/// Networking that records what it was asked.
#[derive(Default)]
pub struct FakeNetwork {
    pub calls: Mutex<Vec<String>>,
    pub fail_plug: Mutex<Option<NovaException>>,
}

#[async_trait]
impl NetworkBackend for FakeNetwork {
    async fn plug(&self, i: &Instance, nw: &NetworkInfo) -> Result<Option<String>, NovaException> {
        lock(&self.calls).push(format!("plug {} {}", i.uuid(), nw.len()));
        match lock(&self.fail_plug).take() {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
    async fn attach(&self, i: &Instance, nw: &NetworkInfo, pid: u32) -> Result<(), NovaException> {
        lock(&self.calls).push(format!("attach {} {} {pid}", i.uuid(), nw.len()));
        Ok(())
    }
    async fn unplug(&self, i: &Instance, nw: &NetworkInfo) -> Result<(), NovaException> {
        lock(&self.calls).push(format!("unplug {} {}", i.uuid(), nw.len()));
        Ok(())
    }
    async fn attach_interface(
        &self,
        i: &Instance,
        vif: &Vif,
        nw: &NetworkInfo,
        pid: Option<u32>,
    ) -> Result<(), NovaException> {
        lock(&self.calls).push(format!(
            "attach_interface {} {} {} {pid:?}",
            i.uuid(),
            vif.id,
            nw.len()
        ));
        match lock(&self.fail_plug).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    async fn detach_interface(
        &self,
        i: &Instance,
        vif: &Vif,
        pid: Option<u32>,
    ) -> Result<(), NovaException> {
        lock(&self.calls).push(format!("detach_interface {} {} {pid:?}", i.uuid(), vif.id));
        Ok(())
    }
}

/// Neutron as the network API sees it: every requested network gets a port
/// `port-<n>` (an ovs VIF, not active yet), every given port is taken as it is.
#[derive(Default)]
pub struct FakeNetworkApi {
    pub calls: Mutex<Vec<String>>,
    /// The ports each instance has, in order (uuid -> VIFs).
    pub ports: Mutex<HashMap<String, Vec<Vif>>>,
    pub fail_allocate: Mutex<Option<NovaException>>,
    /// New ports are DOWN (a build waits for their `network-vif-plugged`).
    pub ports_down: Mutex<bool>,
    next: Mutex<usize>,
}

pub fn fake_vif(id: &str, preserve: bool, active: bool) -> Vif {
    serde_json::from_value(json!({
        "id": id, "address": "fa:16:3e:00:00:01", "type": "ovs", "active": active,
        "devname": format!("tap{id}").chars().take(14).collect::<String>(),
        "preserve_on_delete": preserve,
        "network": {"id": "net-1", "bridge": "br-int", "label": "private",
                    "subnets": [{"cidr": "10.0.0.0/26", "version": 4,
                                 "ips": [{"address": "10.0.0.5", "type": "fixed", "version": 4}],
                                 "gateway": {"address": "10.0.0.1", "type": "gateway"}}],
                    "meta": {"mtu": 1442}}
    }))
    .unwrap()
}

#[async_trait]
impl NetworkApi for FakeNetworkApi {
    async fn allocate_for_instance(
        &self,
        _: &RequestContext,
        i: &Instance,
        host: &str,
        requested: &[NetworkRequest],
        _: &[String],
    ) -> Result<(NetworkInfo, Vec<String>), NovaException> {
        lock(&self.calls).push(format!("allocate {} {host} {}", i.uuid(), requested.len()));
        if let Some(e) = lock(&self.fail_allocate).take() {
            return Err(e);
        }
        let mut new = Vec::new();
        let active = !*lock(&self.ports_down);
        for r in requested {
            let vif = match &r.port_id {
                Some(p) => fake_vif(p, true, active),
                None => {
                    let mut n = lock(&self.next);
                    *n += 1;
                    fake_vif(&format!("port-{n}"), false, active)
                }
            };
            new.push(vif);
        }
        let mut ports = lock(&self.ports);
        let all = ports.entry(i.uuid().to_string()).or_default();
        all.extend(new.iter().cloned());
        Ok((
            NetworkInfo::new(all.clone()).unwrap(),
            new.into_iter().map(|v| v.id).collect(),
        ))
    }

    async fn get_instance_nw_info(
        &self,
        _: &RequestContext,
        i: &Instance,
        _: bool,
    ) -> Result<NetworkInfo, NovaException> {
        lock(&self.calls).push(format!("refresh {}", i.uuid()));
        let all = lock(&self.ports).get(i.uuid()).cloned().unwrap_or_default();
        Ok(NetworkInfo::new(all).unwrap())
    }

    async fn deallocate_for_instance(
        &self,
        _: &RequestContext,
        i: &Instance,
        keep: &[String],
    ) -> Result<(), NovaException> {
        lock(&self.calls).push(format!("deallocate {} keep {}", i.uuid(), keep.join(",")));
        lock(&self.ports).remove(i.uuid());
        Ok(())
    }

    async fn deallocate_port(&self, _: &RequestContext, vif: &Vif) -> Result<(), NovaException> {
        lock(&self.calls).push(format!("deallocate_port {}", vif.id));
        for list in lock(&self.ports).values_mut() {
            list.retain(|v| v.id != vif.id);
        }
        Ok(())
    }

    async fn unbind_ports(&self, _: &RequestContext, i: &Instance) -> Result<(), NovaException> {
        lock(&self.calls).push(format!("unbind {}", i.uuid()));
        Ok(())
    }

    async fn bind_ports_to_host(
        &self,
        _: &RequestContext,
        i: &Instance,
        host: &str,
    ) -> Result<NetworkInfo, NovaException> {
        lock(&self.calls).push(format!("bind {} {host}", i.uuid()));
        if let Some(e) = lock(&self.fail_allocate).take() {
            return Err(e);
        }
        let all = lock(&self.ports).get(i.uuid()).cloned().unwrap_or_default();
        Ok(NetworkInfo::new(all).unwrap())
    }
}

/// Images: every image is present as `glance/<id>` unless told to fail.
#[derive(Default)]
pub struct FakeImages {
    pub ensured: Mutex<Vec<String>>,
    pub forgotten: Mutex<Vec<String>>,
    pub snapshots: Mutex<Vec<(String, SnapshotKind)>>,
    pub fail: Mutex<Option<NovaException>>,
    /// The instances whose interrupted snapshots were discarded.
    pub discarded: Mutex<Vec<String>>,
    /// The images deleted.
    pub deleted: Mutex<Vec<String>>,
    /// The names of the image records made.
    pub created: Mutex<Vec<String>>,
}

#[async_trait]
impl ImageBackend for FakeImages {
    async fn ensure_image(&self, _: &RequestContext, id: &str) -> Result<String, NovaException> {
        lock(&self.ensured).push(id.into());
        match lock(&self.fail).take() {
            Some(e) => Err(e),
            None => Ok(format!("glance/{id}")),
        }
    }
    async fn precache(&self, _: &RequestContext, id: &str) -> Result<bool, NovaException> {
        let fetched = !lock(&self.ensured).contains(&id.to_string());
        lock(&self.ensured).push(id.into());
        match lock(&self.fail).take() {
            Some(e) => Err(e),
            None => Ok(fetched),
        }
    }
    fn forget(&self, id: &str) {
        lock(&self.forgotten).push(id.into());
    }
    async fn discard_interrupted_snapshots(
        &self,
        _: &RequestContext,
        instance_uuid: &str,
    ) -> Result<Vec<String>, NovaException> {
        lock(&self.discarded).push(instance_uuid.into());
        Ok(vec![format!("half-{instance_uuid}")])
    }
    async fn snapshot(
        &self,
        _: &RequestContext,
        _: &Instance,
        image_id: &str,
        kind: &SnapshotKind,
    ) -> Result<(), NovaException> {
        lock(&self.snapshots).push((image_id.into(), kind.clone()));
        match lock(&self.fail).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    async fn create_image(
        &self,
        _: &RequestContext,
        _: &Instance,
        name: &str,
    ) -> Result<String, NovaException> {
        lock(&self.created).push(name.into());
        Ok(format!("made-{}", lock(&self.created).len()))
    }
    async fn delete_image(&self, _: &RequestContext, image_id: &str) -> Result<(), NovaException> {
        lock(&self.deleted).push(image_id.into());
        Ok(())
    }
}

/// Container options: none, or a refusal.
#[derive(Default)]
pub struct FakeOptions {
    pub refuse: Mutex<Option<NovaException>>,
}

#[async_trait]
impl OptionsBackend for FakeOptions {
    async fn container_options(
        &self,
        _: &RequestContext,
        _: &Instance,
    ) -> Result<Option<ContainerOptions>, NovaException> {
        match lock(&self.refuse).take() {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

/// Placement that records the allocations it removed.
#[derive(Default)]
pub struct FakePlacement {
    pub deleted: Mutex<Vec<String>>,
    /// `(from, to)` of each allocation move.
    pub moved: Mutex<Vec<(String, String)>>,
    /// `(consumer, provider)` of each provider part removed.
    pub trimmed: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Placement for FakePlacement {
    async fn set_inventory_and_traits(
        &self,
        _: &str,
        _: &str,
        _: &[(&str, Inventory)],
        _: &[&str],
    ) -> Result<(), PlacementError> {
        Ok(())
    }
    async fn delete_allocations(&self, consumer: &str) -> Result<(), PlacementError> {
        lock(&self.deleted).push(consumer.into());
        Ok(())
    }
    async fn move_allocations(&self, from: &str, to: &str) -> Result<(), PlacementError> {
        lock(&self.moved).push((from.into(), to.into()));
        Ok(())
    }
    async fn remove_provider_from_allocation(
        &self,
        consumer: &str,
        rp: &str,
    ) -> Result<(), PlacementError> {
        lock(&self.trimmed).push((consumer.into(), rp.into()));
        Ok(())
    }
}

/// The notifications sent, in order.
#[derive(Default)]
pub struct FakeNotifier {
    pub sent: Mutex<Vec<crate::notifications::Notification>>,
}

impl FakeNotifier {
    pub fn events(&self) -> Vec<String> {
        lock(&self.sent)
            .iter()
            .map(|n| n.event_type.clone())
            .collect()
    }
}

#[async_trait]
impl crate::notifications::Notifier for FakeNotifier {
    async fn notify(&self, _: &RequestContext, n: crate::notifications::Notification) {
        lock(&self.sent).push(n);
    }
}
