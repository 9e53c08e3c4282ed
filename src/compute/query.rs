//! The calls that read an instance or the host (console output, diagnostics,
//! uptime), and the answer to the methods the driver does not support.

use serde_json::{json, Value};

use super::action::OnFailure;
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::{Class, NovaException};
use crate::objects::Instance;
use crate::virt::PowerState;

impl ComputeManager {
    /// get_console_output (call): what the container printed.
    pub async fn get_console_output(
        &self,
        inst: &Instance,
        tail_length: Option<usize>,
    ) -> Result<Value, NovaException> {
        let out = self
            .driver
            .get_console_output(inst.uuid(), tail_length)
            .await?;
        Ok(json!(out))
    }

    /// get_instance_diagnostics (call): a Diagnostics object, for a running
    /// instance only.
    pub async fn get_instance_diagnostics(&self, inst: &Instance) -> Result<Value, NovaException> {
        let info = self.driver.get_info(inst.uuid()).await?;
        if info.state != PowerState::Running {
            return Err(NovaException::nova(
                Class::InstanceInvalidState,
                format!(
                    "Instance {} in power state {} cannot get_diagnostics while the instance is in this state.",
                    inst.uuid(),
                    info.state.name()
                ),
                json!({"attr": "power state", "instance_uuid": inst.uuid(),
                       "state": info.state.name(), "method": "get_diagnostics", "code": 409}),
            ));
        }
        Ok(self
            .driver
            .get_diagnostics(inst.uuid())
            .await?
            .to_primitive())
    }

    /// get_diagnostics (call): the legacy dict.
    pub async fn get_diagnostics(&self, inst: &Instance) -> Result<Value, NovaException> {
        let d = self.driver.get_legacy_diagnostics(inst.uuid()).await?;
        Ok(json!(d))
    }

    /// Any compute RPC the driver does not support: the caller gets
    /// NotSupported; the instance it was about gets a fault and is not left in
    /// a task state.
    pub async fn unsupported(
        &self,
        ctx: &RequestContext,
        method: &'static str,
        instance: Option<Instance>,
    ) -> Result<Value, NovaException> {
        let e = NovaException::not_supported(method);
        if let Some(mut inst) = instance {
            let action = self.begin(ctx, &inst, method).await;
            let _ = action
                .end(
                    ctx,
                    &mut inst,
                    Err::<(), _>(e.clone()),
                    OnFailure::RevertTaskState,
                )
                .await;
        }
        Err(e)
    }
}

/// get_host_uptime (call): what `uptime` prints (read off the async workers).
pub async fn get_host_uptime() -> Result<Value, NovaException> {
    tokio::task::spawn_blocking(host_uptime)
        .await
        .map(Value::String)
        .map_err(|e| NovaException::internal(format!("uptime: {e}")))
}

/// What `uptime` prints, as nova's get_host_uptime returns it.
pub fn host_uptime() -> String {
    let up = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        })
        .unwrap_or(0.0) as u64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let l: Vec<&str> = load.split_whitespace().take(3).collect();
    let now = chrono::Local::now().format("%H:%M:%S");
    let (d, h, m) = (up / 86400, (up % 86400) / 3600, (up % 3600) / 60);
    let dur = if d > 0 {
        format!("{d} days, {h:2}:{m:02}")
    } else {
        format!("{h:2}:{m:02}")
    };
    format!(
        " {now} up {dur},  load average: {}",
        if l.len() == 3 {
            l.join(", ")
        } else {
            "0.00, 0.00, 0.00".into()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_looks_like_uptime() {
        let u = host_uptime();
        assert!(u.contains(" up ") && u.contains("load average:"), "{u}");
    }
}
