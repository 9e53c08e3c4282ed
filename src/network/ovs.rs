//! Open vSwitch through `ovs-vsctl` (one transaction per call, as os-vif does).

use std::time::Duration;

use tokio::process::Command;
use tracing::debug;

use super::NetworkError;

#[derive(Debug, Clone)]
pub struct Ovs {
    pub timeout: Duration,
    pub vsctl: String,
}

impl Ovs {
    pub fn new(timeout: Duration) -> Self {
        Ovs {
            timeout,
            vsctl: "ovs-vsctl".into(),
        }
    }

    /// Run one ovs-vsctl transaction; its stdout.
    pub async fn vsctl(&self, args: &[String]) -> Result<String, NetworkError> {
        let mut full = vec![format!("--timeout={}", self.timeout.as_secs().max(1))];
        full.extend(args.iter().cloned());
        debug!(args = ?full, "ovs-vsctl");
        let out = Command::new(&self.vsctl)
            .args(&full)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| NetworkError::Ovs {
                command: format!("{} {}", self.vsctl, full.join(" ")),
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(NetworkError::Ovs {
                command: format!("{} {}", self.vsctl, full.join(" ")),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn bridge_exists(&self, bridge: &str) -> Result<bool, NetworkError> {
        let out = Command::new(&self.vsctl)
            .args([
                format!("--timeout={}", self.timeout.as_secs().max(1)),
                "br-exists".into(),
                bridge.to_string(),
            ])
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| NetworkError::Ovs {
                command: format!("{} br-exists {bridge}", self.vsctl),
                reason: e.to_string(),
            })?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(2) => Ok(false),
            _ => Err(NetworkError::Ovs {
                command: format!("{} br-exists {bridge}", self.vsctl),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
        }
    }

    /// Create the integration bridge when it is missing (an existing bridge keeps
    /// its datapath type).
    pub async fn ensure_bridge(
        &self,
        bridge: &str,
        datapath_type: &str,
    ) -> Result<(), NetworkError> {
        if self.bridge_exists(bridge).await? {
            return Ok(());
        }
        self.vsctl(&[
            "--may-exist".into(),
            "add-br".into(),
            bridge.into(),
            "--".into(),
            "set".into(),
            "Bridge".into(),
            bridge.into(),
            format!("datapath_type={datapath_type}"),
        ])
        .await?;
        Ok(())
    }

    /// Put `port` on `bridge` with its Interface external-ids. When the device was
    /// just (re)made, a port of that name is removed first in a transaction of its
    /// own: a port deleted and added back in one transaction is no change to
    /// ovs-vswitchd, which would keep using the old, deleted device.
    pub async fn replace_port(
        &self,
        bridge: &str,
        port: &str,
        external_ids: &[(&str, &str)],
        mtu: Option<u32>,
        device_is_new: bool,
    ) -> Result<(), NetworkError> {
        if device_is_new {
            self.del_port(port).await?;
        }
        let mut args: Vec<String> = vec![
            "--".into(),
            "--may-exist".into(),
            "add-port".into(),
            bridge.into(),
            port.into(),
            "--".into(),
            "set".into(),
            "Interface".into(),
            port.into(),
        ];
        for (k, v) in external_ids {
            args.push(format!("external-ids:{k}={}", quote(v)));
        }
        if let Some(m) = mtu {
            args.push(format!("mtu_request={m}"));
        }
        self.vsctl(&args).await?;
        Ok(())
    }

    /// Remove `port` from whatever bridge holds it.
    pub async fn del_port(&self, port: &str) -> Result<(), NetworkError> {
        self.vsctl(&["--if-exists".into(), "del-port".into(), port.into()])
            .await?;
        Ok(())
    }
}

/// Quote an ovsdb string value (always quoted, so ':' '=' ',' are literal).
fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting() {
        assert_eq!(super::quote("fa:16:3e:00:00:01"), "\"fa:16:3e:00:00:01\"");
        assert_eq!(super::quote("a\"b\\"), "\"a\\\"b\\\\\"");
    }
}
