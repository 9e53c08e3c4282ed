//! The serial console calls: `get_serial_console` makes a token for a console
//! of a running instance (stored by the conductor, as nova-compute does) and
//! opens the instance's listener; `validate_console_port` is the serial proxy
//! asking, with a user's token in hand, whether a port is that instance's
//! console. See [`crate::console`] for what a connection then reaches.

use serde_json::{json, Value};
use tracing::{info, warn};

use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::{Class, NovaException};
use crate::objects::{Instance, NovaObject, VmState};
use crate::virt::{DriverError, PowerState};

/// The one console type of the serial console.
pub const SERIAL: &str = "serial";

fn not_ready(uuid: &str) -> NovaException {
    NovaException::nova(
        Class::InstanceNotReady,
        format!("Instance {uuid} is not ready"),
        json!({"instance_id": uuid, "code": 409}),
    )
}

impl ComputeManager {
    /// get_serial_console (call): `{host, port, internal_access_path, token,
    /// access_url}` for a running instance. No state changes; the instance's
    /// listener opens (or stays open for the new token's lifetime).
    pub async fn get_serial_console(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        console_type: &str,
    ) -> Result<Value, NovaException> {
        let cfg = self.consoles.config();
        if !cfg.enabled {
            return Err(super::super::console::ConsoleError::Disabled {
                console_type: console_type.to_string(),
            }
            .into());
        }
        if console_type != SERIAL {
            return Err(NovaException::nova(
                Class::ConsoleTypeInvalid,
                format!("Invalid console type {console_type}"),
                json!({"console_type": console_type, "code": 400}),
            ));
        }
        let uuid = inst.uuid();
        match self.driver.get_info(uuid).await {
            Ok(info) if info.state == PowerState::Running => {}
            Ok(_) => return Err(not_ready(uuid)),
            Err(DriverError::NotFound { .. }) if inst.vm_state() == Some(VmState::Building) => {
                return Err(not_ready(uuid))
            }
            Err(e) => return Err(e.into()),
        }
        let port = self.consoles.open(uuid, console_type)?;
        let host = cfg.proxyclient_address.to_string();
        let mut token = NovaObject::new("ConsoleAuthToken", "1.3");
        token.set("console_type", json!(console_type));
        token.set("host", json!(host));
        token.set("port", json!(port));
        token.set("internal_access_path", Value::Null);
        token.set("instance_uuid", json!(uuid));
        token.set("access_url_base", json!(cfg.base_url));
        let secret = self
            .conductor
            .console_auth_authorize(ctx, &mut token, cfg.token_ttl)
            .await?;
        info!(instance = %uuid, port, "serial console token made");
        Ok(json!({
            "host": host,
            "port": port,
            "internal_access_path": null,
            "token": secret,
            "access_url": format!("{}?token={}", cfg.base_url, secret),
        }))
    }

    /// validate_console_port (call): true when `port` is the instance's serial
    /// console; the proxy's connection that follows is then let in.
    pub fn validate_console_port(&self, inst: &Instance, port: &str, console_type: &str) -> Value {
        let ok = console_type == SERIAL && self.consoles.admit(inst.uuid(), port);
        if !ok {
            warn!(instance = %inst.uuid(), port, console_type, "console port not valid for this instance");
        }
        Value::Bool(ok)
    }

    /// On delete: the listener closes, and no token of the instance works any
    /// more (Nova's `_clean_instance_console_tokens`, done when consoles are on).
    pub(super) async fn forget_consoles(&self, ctx: &RequestContext, uuid: &str) {
        self.consoles.close(uuid);
        if self.consoles.config().enabled {
            if let Err(e) = self.conductor.clean_console_auths(ctx, uuid).await {
                warn!(instance = %uuid, error = %e, "could not remove the instance's console tokens");
            }
        }
    }
}
