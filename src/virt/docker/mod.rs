//! The Docker driver: instances as containers through bollard (the only place
//! bollard types appear).
//!
//! - [`config`]: the `[docker]` options and the engine endpoint they describe;
//! - [`spec`]: an [`InstanceSpec`](crate::virt::InstanceSpec) as a
//!   `/containers/create` body (pure);
//! - [`driver`]: the engine connection, inspecting one of our containers, the
//!   low-level steps;
//! - [`lifecycle`]: spawn, destroy, power, reboot, pause, suspend, rebuild;
//! - [`observe`]: console output and diagnostics; [`console`]: the interactive
//!   console (the container's own TTY, or a shell started in it); [`stats`]: diagnostics from a
//!   stats sample;
//! - [`host`]: the listing of our containers, host resources;
//! - [`events`]: the engine's event stream;
//! - [`state`]: Docker state -> Nova power state; suspended/stopped markers.
//! - [`images`]: the image engine of [`crate::image::ImageService`].

pub mod config;
mod console;
mod driver;
mod events;
mod host;
mod images;
mod lifecycle;
mod lookup;
mod observe;
mod options;
pub mod spec;
pub mod state;
pub mod stats;
mod tls;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

pub use config::{CpuMode, DockerConfig, Endpoint};
pub use driver::{DockerDriver, CONSOLE_CAP};
pub use host::hypervisor_version;
pub use spec::{build_create_body, Limits};

use crate::virt::{
    ComputeDriver, Diagnostics, DriverError, HostResources, InstanceInfo, InstanceSpec,
    InstanceSummary, LifecycleEvent, RebootType,
};
pub use images::DockerImages;

#[async_trait]
impl ComputeDriver for DockerDriver {
    async fn spawn(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        DockerDriver::spawn(self, spec).await
    }
    async fn rebuild(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        DockerDriver::rebuild(self, spec).await
    }
    async fn resize(&self, spec: &InstanceSpec) -> Result<InstanceInfo, DriverError> {
        DockerDriver::resize(self, spec).await
    }
    async fn destroy(&self, uuid: &str, timeout: Duration) -> Result<(), DriverError> {
        DockerDriver::destroy(self, uuid, timeout).await
    }
    async fn power_off(&self, uuid: &str, timeout: Duration) -> Result<InstanceInfo, DriverError> {
        DockerDriver::power_off(self, uuid, timeout).await
    }
    async fn power_on(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        DockerDriver::power_on(self, uuid).await
    }
    async fn reboot(&self, uuid: &str, kind: RebootType) -> Result<InstanceInfo, DriverError> {
        DockerDriver::reboot(self, uuid, kind).await
    }
    async fn pause(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        DockerDriver::pause(self, uuid).await
    }
    async fn unpause(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        DockerDriver::unpause(self, uuid).await
    }
    async fn suspend(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        DockerDriver::suspend(self, uuid).await
    }
    async fn resume(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        DockerDriver::resume(self, uuid).await
    }
    async fn get_info(&self, uuid: &str) -> Result<InstanceInfo, DriverError> {
        DockerDriver::get_info(self, uuid).await
    }
    async fn get_console_output(
        &self,
        uuid: &str,
        tail_length: Option<usize>,
    ) -> Result<String, DriverError> {
        DockerDriver::get_console_output(self, uuid, tail_length).await
    }
    async fn get_diagnostics(&self, uuid: &str) -> Result<Diagnostics, DriverError> {
        DockerDriver::get_diagnostics(self, uuid).await
    }
    async fn get_legacy_diagnostics(
        &self,
        uuid: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, DriverError> {
        DockerDriver::get_legacy_diagnostics(self, uuid).await
    }
    async fn list_instances(&self) -> Result<Vec<InstanceSummary>, DriverError> {
        DockerDriver::list_instances(self).await
    }
    async fn host_resources(&self) -> Result<HostResources, DriverError> {
        DockerDriver::host_resources(self).await
    }
    async fn open_console(&self, uuid: &str) -> Result<crate::virt::ConsoleIo, DriverError> {
        DockerDriver::open_console(self, uuid).await
    }
    fn events(&self) -> BoxStream<'static, Result<LifecycleEvent, DriverError>> {
        DockerDriver::events(self).boxed()
    }
}
