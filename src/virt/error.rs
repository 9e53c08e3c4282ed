//! How a driver operation fails, and the Nova exception each failure becomes.

use serde_json::json;

use crate::exception::{Class, NovaException};

/// Everything the driver can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid instance uuid {0:?}")]
    InvalidUuid(String),
    #[error("instance {uuid} could not be found")]
    NotFound { uuid: String },
    #[error("instance {uuid} already exists (container {name})")]
    Exists { uuid: String, name: String },
    #[error("image {image} is not present in the Docker engine")]
    ImageNotFound { image: String },
    #[error("the image's command exited immediately (exit code {exit_code}): {logs}")]
    ExitedImmediately {
        uuid: String,
        exit_code: i64,
        logs: String,
    },
    #[error("deploy of instance {uuid} failed: {reason}")]
    Deploy { uuid: String, reason: String },
    #[error("power on of instance {uuid} failed: {reason}")]
    PowerOn { uuid: String, reason: String },
    #[error("power off of instance {uuid} failed: {reason}")]
    PowerOff { uuid: String, reason: String },
    #[error("reboot of instance {uuid} failed: {reason}")]
    Reboot { uuid: String, reason: String },
    #[error("suspend of instance {uuid} failed: {reason}")]
    Suspend { uuid: String, reason: String },
    #[error("resume of instance {uuid} failed: {reason}")]
    Resume { uuid: String, reason: String },
    #[error("{op} of instance {uuid} failed: {reason}")]
    Operation {
        op: &'static str,
        uuid: String,
        reason: String,
    },
    #[error("instance {uuid} is {state}: cannot {op}")]
    InvalidState {
        uuid: String,
        state: &'static str,
        op: &'static str,
    },
    #[error("engine configuration: {0}")]
    Config(String),
    #[error("cannot reach the engine at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// An engine call failed (its own words).
    #[error("engine {op}: {reason}")]
    Engine { op: &'static str, reason: String },
    /// An engine call got no answer: the engine is down or restarting.
    #[error("engine {op}: the Docker engine does not answer: {reason}")]
    Unreachable { op: &'static str, reason: String },
    #[error("state dir {path}: {source}")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl DriverError {
    /// The engine did not answer (what is worth trying again once it is back).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            DriverError::Unreachable { .. } | DriverError::Connect { .. }
        )
    }

    /// The instance uuid the error is about, when it is about one.
    pub fn uuid(&self) -> Option<&str> {
        use DriverError::*;
        match self {
            NotFound { uuid }
            | Exists { uuid, .. }
            | ExitedImmediately { uuid, .. }
            | Deploy { uuid, .. }
            | PowerOn { uuid, .. }
            | PowerOff { uuid, .. }
            | Reboot { uuid, .. }
            | Suspend { uuid, .. }
            | Resume { uuid, .. }
            | Operation { uuid, .. }
            | InvalidState { uuid, .. } => Some(uuid),
            _ => None,
        }
    }
}

impl From<DriverError> for NovaException {
    fn from(e: DriverError) -> Self {
        use DriverError::*;
        let msg = e.to_string();
        match e {
            NotFound { uuid } => NovaException::instance_not_found(&uuid),
            Exists { name, .. } => NovaException::instance_exists(&name),
            ImageNotFound { image } => NovaException::image_not_found(&image),
            ExitedImmediately { .. } => NovaException::instance_deploy_failure(msg),
            Deploy { reason, .. } => NovaException::instance_deploy_failure(reason),
            PowerOn { reason, .. } => NovaException::power_on_failure(reason),
            PowerOff { reason, .. } => NovaException::power_off_failure(reason),
            Reboot { reason, .. } => NovaException::reboot_failure(reason),
            Suspend { reason, .. } => NovaException::nova(
                Class::InstanceSuspendFailure,
                format!("Failed to suspend instance: {reason}"),
                json!({"reason": reason, "code": 500}),
            ),
            Resume { reason, .. } => NovaException::nova(
                Class::InstanceResumeFailure,
                format!("Failed to resume instance: {reason}"),
                json!({"reason": reason, "code": 500}),
            ),
            InvalidState { uuid, state, op } => NovaException::nova(
                Class::InstanceInvalidState,
                format!("Instance {uuid} in power state {state}. Cannot {op} while the instance is in this state."),
                json!({"instance_uuid": uuid, "attr": "power_state", "state": state, "method": op, "code": 409}),
            ),
            InvalidUuid(_) | Operation { .. } | Config(_) | Connect { .. } | Engine { .. } | Unreachable { .. } | StateDir { .. } => {
                NovaException::internal(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_classes() {
        let u = "u1".to_string();
        let c = |e: DriverError| NovaException::from(e).class;
        assert_eq!(
            c(DriverError::NotFound { uuid: u.clone() }),
            "InstanceNotFound"
        );
        assert_eq!(
            c(DriverError::Exists {
                uuid: u.clone(),
                name: "nova-u1".into()
            }),
            "InstanceExists"
        );
        assert_eq!(
            c(DriverError::PowerOn {
                uuid: u.clone(),
                reason: "x".into()
            }),
            "InstancePowerOnFailure"
        );
        assert_eq!(
            c(DriverError::PowerOff {
                uuid: u.clone(),
                reason: "x".into()
            }),
            "InstancePowerOffFailure"
        );
        assert_eq!(
            c(DriverError::Reboot {
                uuid: u.clone(),
                reason: "x".into()
            }),
            "InstanceRebootFailure"
        );
        assert_eq!(
            c(DriverError::Suspend {
                uuid: u.clone(),
                reason: "x".into()
            }),
            "InstanceSuspendFailure"
        );
        assert_eq!(
            c(DriverError::Resume {
                uuid: u.clone(),
                reason: "x".into()
            }),
            "InstanceResumeFailure"
        );
        assert_eq!(
            c(DriverError::ImageNotFound { image: "i".into() }),
            "ImageNotFound"
        );
        let e = NovaException::from(DriverError::ExitedImmediately {
            uuid: u,
            exit_code: 3,
            logs: "boom".into(),
        });
        assert_eq!(e.class, "InstanceDeployFailure");
        assert!(
            e.message
                .contains("the image's command exited immediately (exit code 3): boom"),
            "{}",
            e.message
        );
        assert_eq!(e.module, "nova.exception");
    }
}
