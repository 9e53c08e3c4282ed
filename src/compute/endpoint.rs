//! The compute manager as an RPC endpoint: each message decoded once into a
//! [`ComputeRequest`], then handed to its handler. This `match` is where every
//! compute RPC method is handled; the handler's doc says what it does to the
//! instance's states.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tracing::info;

use super::query::get_host_uptime;
use super::request::{served_methods, ComputeRequest};
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::rpc::dispatcher::{Endpoint, EndpointTarget};

/// The compute RPC API version we serve.
pub const COMPUTE_RPC_VERSION: &str = "6.5";

/// The compute manager as an RPC endpoint.
pub struct ComputeEndpoint(pub Arc<ComputeManager>);

#[async_trait]
impl Endpoint for ComputeEndpoint {
    fn target(&self) -> EndpointTarget {
        EndpointTarget::new(None, COMPUTE_RPC_VERSION, &served_methods())
    }

    async fn dispatch(
        &self,
        ctx: RequestContext,
        method: &str,
        args: Map<String, Value>,
        _version: &str,
    ) -> Result<Value, NovaException> {
        let request = ComputeRequest::decode(method, &args)?;
        self.0.handle(&ctx, request).await
    }
}

impl ComputeManager {
    /// Handle one request. Casts return `Null`: their outcome is in the
    /// instance record (a build's failure is the instance in ERROR).
    pub async fn handle(
        &self,
        ctx: &RequestContext,
        request: ComputeRequest,
    ) -> Result<Value, NovaException> {
        use ComputeRequest as R;
        let done = |r: Result<(), NovaException>| r.map(|()| Value::Null);
        let method = request.method();
        match request {
            R::BuildAndRunInstance(b) => {
                // its arrival, timestamped: devstack/bench.sh measures from it how
                // long the control plane takes to hand out a batch of builds
                info!(instance = %b.instance.uuid(), "build_and_run_instance received");
                // a failed build is reported in the instance, never to the sender
                let _ = self.build_and_run_instance(ctx, *b).await;
                Ok(Value::Null)
            }
            R::RebuildInstance(r) => done(self.rebuild_instance(ctx, *r).await),
            R::TerminateInstance(i) => done(self.terminate_instance(ctx, i).await),
            R::Power(op, i) => done(self.power_op(ctx, op, i).await),
            R::RebootInstance {
                instance,
                reboot_type,
            } => done(self.reboot_instance(ctx, instance, reboot_type).await),
            R::Snapshot(s) => done(self.snapshot_instance(ctx, s).await),
            R::GetConsoleOutput {
                instance,
                tail_length,
            } => self.get_console_output(&instance, tail_length).await,
            R::GetInstanceDiagnostics(i) => self.get_instance_diagnostics(&i).await,
            R::GetDiagnostics(i) => self.get_diagnostics(&i).await,
            R::GetHostUptime => get_host_uptime().await,
            R::ExternalInstanceEvent(events) => {
                self.external_instance_event(ctx, &events).await;
                Ok(Value::Null)
            }
            R::AttachInterface(a) => self.attach_interface(ctx, a).await,
            R::DetachInterface { instance, port_id } => {
                done(self.detach_interface(ctx, instance, &port_id).await)
            }
            R::GetSerialConsole {
                instance,
                console_type,
            } => self.get_serial_console(ctx, &instance, &console_type).await,
            R::ValidateConsolePort {
                instance,
                port,
                console_type,
            } => Ok(self.validate_console_port(&instance, &port, &console_type)),
            R::CacheImages(ids) => Ok(self.cache_images(ctx, &ids).await),
            R::LiveMigrationCheck { instance, .. } => {
                self.live_migration_check(ctx, instance, method).await
            }
            R::Shelve(s) => done(self.shelve_instance(ctx, s).await),
            R::ShelveOffload {
                instance,
                clean_shutdown,
            } => done(
                self.shelve_offload_instance(ctx, instance, clean_shutdown)
                    .await,
            ),
            R::Unshelve(u) => done(self.unshelve_instance(ctx, *u).await),
            R::Resize(step) => done(self.resize_step(ctx, *step).await),
            R::Unsupported { method, instance } => self.unsupported(ctx, method, instance).await,
        }
    }
}
