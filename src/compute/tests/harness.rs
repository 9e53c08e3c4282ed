//! A manager wired to the fakes, and the words the tests are written in.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::fakes::*;
use crate::clients::conductor::Conductor;
use crate::compute::request::{BuildRequest, NetworkRequest};
use crate::compute::{Backends, ComputeManager, ComputeRequest, ManagerConfig};
use crate::console::{ConsoleConfig, ConsoleServer};
use crate::context::RequestContext;
use crate::objects::{ImageMeta, Instance, TaskState, VmState};
use crate::tasks::Tasks;
use crate::virt::PowerState;

pub const HOST: &str = "fake-host";

pub struct Harness {
    pub manager: Arc<ComputeManager>,
    pub conductor: Arc<FakeConductor>,
    pub driver: Arc<FakeDriver>,
    pub network: Arc<FakeNetwork>,
    pub network_api: Arc<FakeNetworkApi>,
    pub images: Arc<FakeImages>,
    pub options: Arc<FakeOptions>,
    pub placement: Arc<FakePlacement>,
    pub notifier: Arc<FakeNotifier>,
    pub ctx: RequestContext,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_consoles(ConsoleConfig::default())
    }

    /// A manager whose serial consoles are `consoles`.
    pub fn with_consoles(consoles: ConsoleConfig) -> Self {
        Self::with(consoles, |_| {})
    }

    /// A manager with its settings changed by `set`.
    pub fn with_config(set: impl FnOnce(&mut ManagerConfig)) -> Self {
        Self::with(ConsoleConfig::default(), set)
    }

    fn with(consoles: ConsoleConfig, set: impl FnOnce(&mut ManagerConfig)) -> Self {
        let conductor = Arc::new(FakeConductor::default());
        let driver = Arc::new(FakeDriver::default());
        let network = Arc::new(FakeNetwork::default());
        let network_api = Arc::new(FakeNetworkApi::default());
        let images = Arc::new(FakeImages::default());
        let options = Arc::new(FakeOptions::default());
        let placement = Arc::new(FakePlacement::default());
        let notifier = Arc::new(FakeNotifier::default());
        let mut cfg = ManagerConfig::new(HOST);
        cfg.vif_plugging_timeout = Duration::from_millis(200);
        set(&mut cfg);
        let tasks = Tasks::new();
        let consoles = Arc::new(ConsoleServer::new(consoles, driver.clone(), tasks.clone()));
        let manager = ComputeManager::new(
            cfg,
            Backends {
                conductor: Conductor::new(conductor.clone(), Duration::from_secs(5)),
                placement: Some(placement.clone()),
                driver: driver.clone(),
                images: images.clone(),
                network_api: network_api.clone(),
                network: network.clone(),
                options: options.clone(),
                consoles,
                notifier: notifier.clone(),
            },
            tasks,
        );
        manager.set_node(7, "node-uuid".into());
        Harness {
            manager: Arc::new(manager),
            conductor,
            notifier,
            driver,
            network,
            network_api,
            images,
            options,
            placement,
            ctx: RequestContext::admin(),
        }
    }

    /// The captured instance of a build request, in the given states, on our
    /// host (or none), known to the conductor.
    pub fn instance(&self, vm: VmState, task: Option<TaskState>, host: Option<&str>) -> Instance {
        self.instance_in(vm, task, host, PowerState::NoState)
    }

    fn instance_in(
        &self,
        vm: VmState,
        task: Option<TaskState>,
        host: Option<&str>,
        power: PowerState,
    ) -> Instance {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wire/compute-bound/build_and_run_instance.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        let mut prim = v["oslo_message"]["args"]["instance"].clone();
        let d = &mut prim["nova_object.data"];
        d["uuid"] = json!(uuid::Uuid::new_v4().to_string());
        d["vm_state"] = json!(vm.as_str());
        d["task_state"] = task.map_or(Value::Null, |t| json!(t.as_str()));
        d["host"] = host.map_or(Value::Null, |h| json!(h));
        d["node"] = d["host"].clone();
        d["power_state"] = json!(power.as_int());
        prim["nova_object.changes"] = json!([]);
        let inst = Instance::from_primitive(&prim).unwrap();
        self.conductor.put(&inst);
        inst
    }

    /// An instance of ours with a running container.
    /// (The record's power state is the container's.)
    pub fn running(&self, vm: VmState, task: Option<TaskState>) -> Instance {
        let state = match vm {
            VmState::Stopped => PowerState::Shutdown,
            VmState::Paused => PowerState::Paused,
            VmState::Suspended => PowerState::Suspended,
            _ => PowerState::Running,
        };
        let inst = self.instance_in(vm, task, Some(HOST), state);
        self.driver.insert(inst.uuid(), state);
        inst
    }

    pub fn build_request(&self, inst: Instance, networks: &[&str]) -> ComputeRequest {
        let image = ImageMeta {
            id: Some("img-1".into()),
            container_format: Some("docker".into()),
            ..Default::default()
        };
        ComputeRequest::BuildAndRunInstance(Box::new(BuildRequest {
            instance: inst,
            image,
            requested_networks: Some(
                networks
                    .iter()
                    .map(|n| NetworkRequest {
                        network_id: Some(n.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            security_groups: vec!["default".into()],
            retry: Default::default(),
        }))
    }

    pub async fn handle(
        &self,
        r: ComputeRequest,
    ) -> Result<Value, crate::exception::NovaException> {
        self.manager.handle(&self.ctx, r).await
    }

    fn calls(&self, uuid: &str) -> Vec<Call> {
        self.conductor
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| u == uuid)
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// The saves of an instance: (vm_state, task_state, expected task states).
    pub fn saves(&self, inst: &Instance) -> Vec<S> {
        self.calls(inst.uuid())
            .into_iter()
            .filter_map(|c| match c {
                Call::Save(s) => Some(S(
                    s.vm_state.unwrap_or_default(),
                    s.task_state,
                    s.expected.map(|e| {
                        e.into_iter()
                            .map(|x| x.unwrap_or_else(|| "None".into()))
                            .collect()
                    }),
                )),
                _ => None,
            })
            .collect()
    }

    /// The last save's full record.
    pub fn last_save(&self, inst: &Instance) -> Save {
        self.full_saves(inst).pop().expect("a save")
    }

    /// Every save of an instance, as saved.
    pub fn full_saves(&self, inst: &Instance) -> Vec<Save> {
        self.calls(inst.uuid())
            .into_iter()
            .filter_map(|c| match c {
                Call::Save(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// The faults of an instance (their messages).
    pub fn faults(&self, inst: &Instance) -> Vec<String> {
        self.calls(inst.uuid())
            .into_iter()
            .filter_map(|c| match c {
                Call::Fault { message, .. } => Some(message),
                _ => None,
            })
            .collect()
    }

    /// The action events: `+name` started, `-name` finished well, `!name` failed.
    pub fn events(&self, inst: &Instance) -> Vec<String> {
        self.calls(inst.uuid())
            .into_iter()
            .filter_map(|c| match c {
                Call::EventStart(e) => Some(format!("+{e}")),
                Call::EventFinish { event, failed } => {
                    Some(format!("{}{event}", if failed { "!" } else { "-" }))
                }
                _ => None,
            })
            .collect()
    }

    /// Everything the conductor heard of an instance, in order (for the
    /// order of fault, event and save).
    pub fn trace(&self, inst: &Instance) -> Vec<String> {
        self.calls(inst.uuid())
            .into_iter()
            .map(|c| match c {
                Call::Save(s) => format!("save {:?}", s.task_state),
                Call::EventStart(_) => "event_start".into(),
                Call::EventFinish { failed, .. } => format!("event_finish failed={failed}"),
                Call::Fault { .. } => "fault".into(),
                Call::Destroy => "destroy".into(),
                Call::Get => "get".into(),
                Call::List => "list".into(),
                Call::CacheSave(n) => format!("info_cache {n}"),
                Call::Other(o) => o,
            })
            .collect()
    }

    pub fn destroyed(&self, inst: &Instance) -> bool {
        self.calls(inst.uuid()).contains(&Call::Destroy)
    }

    pub fn network_calls(&self) -> Vec<String> {
        self.network.calls.lock().unwrap().clone()
    }

    /// What the network API (Neutron) was asked, in order.
    pub fn neutron_calls(&self) -> Vec<String> {
        self.network_api.calls.lock().unwrap().clone()
    }

    /// The saves of the instance's info cache (their VIF counts).
    pub fn cache_saves(&self, inst: &Instance) -> Vec<usize> {
        self.calls(inst.uuid())
            .into_iter()
            .filter_map(|c| match c {
                Call::CacheSave(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    pub fn driver_ops(&self, inst: &Instance) -> Vec<String> {
        self.driver
            .ops
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, u)| u == inst.uuid())
            .map(|(o, _)| o.clone())
            .collect()
    }
}

/// One save: vm_state, task_state, expected task states (`None` = unchecked;
/// `"None"` in the list = no task state).
#[derive(Debug, Clone, PartialEq)]
pub struct S(pub String, pub Option<String>, pub Option<Vec<String>>);

/// `s(vm, task, expected)`: a save as the tests write it.
pub fn s(vm: VmState, task: Option<TaskState>, expected: Option<&[Option<TaskState>]>) -> S {
    S(
        vm.as_str().into(),
        task.map(|t| t.as_str().into()),
        expected.map(|e| {
            e.iter()
                .map(|x| x.map_or_else(|| "None".to_string(), |t| t.as_str().to_string()))
                .collect()
        }),
    )
}
