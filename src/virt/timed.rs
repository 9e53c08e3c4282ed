//! [`Timed`]: a [`ComputeDriver`] that times every operation of the one it
//! wraps (the `docker_operation_duration_seconds` metric) and keeps the
//! `instances{state}` gauge current: each operation's answer says the
//! instance's power state, a destroy removes it, a listing resets them all.
//! Nothing else changes.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use super::driver::{
    ComputeDriver, HostResources, InstanceInfo, InstanceSummary, LifecycleEvent, PowerState,
    RebootType,
};
use super::{ConsoleIo, Diagnostics, DriverError, InstanceSpec};

pub struct Timed<D> {
    inner: D,
    states: Mutex<HashMap<String, PowerState>>,
}

impl<D> Timed<D> {
    pub fn new(inner: D) -> Self {
        Timed {
            inner,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn publish(states: &HashMap<String, PowerState>) {
        let mut counts: Vec<(&'static str, i64)> = [
            PowerState::Running,
            PowerState::Paused,
            PowerState::Suspended,
            PowerState::Shutdown,
            PowerState::Crashed,
            PowerState::NoState,
        ]
        .iter()
        .map(|s| (s.name(), 0))
        .collect();
        for st in states.values() {
            if let Some(c) = counts.iter_mut().find(|(n, _)| *n == st.name()) {
                c.1 += 1;
            }
        }
        crate::metrics::instances(&counts);
    }

    /// What an operation's answer says of `uuid`.
    fn track(
        &self,
        uuid: &str,
        r: Result<InstanceInfo, DriverError>,
    ) -> Result<InstanceInfo, DriverError> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        match &r {
            Ok(info) => {
                states.insert(uuid.to_string(), info.state);
            }
            Err(DriverError::NotFound { .. }) => {
                states.remove(uuid);
            }
            Err(_) => return r,
        }
        Self::publish(&states);
        r
    }
}

async fn timed<T>(
    operation: &'static str,
    f: impl Future<Output = Result<T, DriverError>>,
) -> Result<T, DriverError> {
    let started = Instant::now();
    let r = f.await;
    crate::metrics::docker_operation(operation, r.is_ok(), started);
    r
}

#[async_trait]
impl<D: ComputeDriver> ComputeDriver for Timed<D> {
    async fn spawn(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let r = timed("spawn", self.inner.spawn(spec)).await;
        self.track(&spec.uuid, r)
    }
    async fn rebuild(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let r = timed("rebuild", self.inner.rebuild(spec)).await;
        self.track(&spec.uuid, r)
    }
    async fn resize(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        let r = timed("resize", self.inner.resize(spec)).await;
        self.track(&spec.uuid, r)
    }
    async fn destroy(&self, uuid: &str, timeout: Duration) -> Result<(), DriverError> {
        let r = timed("destroy", self.inner.destroy(uuid, timeout)).await;
        if r.is_ok() {
            let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
            states.remove(uuid);
            Self::publish(&states);
        }
        r
    }
    async fn power_off(&self, uuid: &str, timeout: Duration) -> Result<InstanceInfo, DriverError> {
        let r = timed("power_off", self.inner.power_off(uuid, timeout)).await;
        self.track(uuid, r)
    }
    async fn power_on(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let r = timed("power_on", self.inner.power_on(uuid)).await;
        self.track(uuid, r)
    }
    async fn reboot(&self, uuid: &str, kind: RebootType) -> Result<InstanceInfo, DriverError> {
        let r = timed("reboot", self.inner.reboot(uuid, kind)).await;
        self.track(uuid, r)
    }
    async fn pause(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let r = timed("pause", self.inner.pause(uuid)).await;
        self.track(uuid, r)
    }
    async fn unpause(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let r = timed("unpause", self.inner.unpause(uuid)).await;
        self.track(uuid, r)
    }
    async fn suspend(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let r = timed("suspend", self.inner.suspend(uuid)).await;
        self.track(uuid, r)
    }
    async fn resume(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let r = timed("resume", self.inner.resume(uuid)).await;
        self.track(uuid, r)
    }
    async fn get_info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        let r = timed("get_info", self.inner.get_info(uuid)).await;
        self.track(uuid, r)
    }
    async fn get_console_output(
        &self,
        uuid: &str,
        tail_length: Option<usize>,
    ) -> Result<String, DriverError> {
        timed(
            "get_console_output",
            self.inner.get_console_output(uuid, tail_length),
        )
        .await
    }
    async fn open_console(&self, uuid: &str) -> Result<ConsoleIo, DriverError> {
        timed("open_console", self.inner.open_console(uuid)).await
    }
    async fn get_diagnostics(&self, uuid: &str) -> Result<Diagnostics, DriverError> {
        timed("get_diagnostics", self.inner.get_diagnostics(uuid)).await
    }
    async fn get_legacy_diagnostics(
        &self,
        uuid: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, DriverError> {
        timed(
            "get_legacy_diagnostics",
            self.inner.get_legacy_diagnostics(uuid),
        )
        .await
    }
    async fn list_instances(&self) -> Result<Vec<InstanceSummary>, DriverError> {
        let list = timed("list_instances", self.inner.list_instances()).await?;
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut now = HashMap::new();
        for c in &list {
            // a listing tells running from not: what an operation said more
            // precisely (paused, suspended, crashed) stays
            let st = match (c.running, states.get(&c.uuid)) {
                (true, _) => PowerState::Running,
                (
                    false,
                    Some(s @ (PowerState::Paused | PowerState::Suspended | PowerState::Crashed)),
                ) => *s,
                (false, _) => PowerState::Shutdown,
            };
            now.insert(c.uuid.clone(), st);
        }
        *states = now;
        Self::publish(&states);
        Ok(list)
    }
    async fn host_resources(&self) -> Result<HostResources, DriverError> {
        timed("host_resources", self.inner.host_resources()).await
    }
    fn events(&self) -> BoxStream<'static, Result<LifecycleEvent, DriverError>> {
        self.inner.events()
    }
}
