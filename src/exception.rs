//! Nova exceptions as they travel back to a Python caller.
//!
//! A failure reply names a class and a module; Python re-raises the class when the
//! module is in `allowed_remote_exmods` (Nova allows `nova.exception`), passing the
//! kwargs to its constructor. Every error of ours that reaches the RPC layer is
//! turned into one of these.

use serde_json::{json, Map, Value};

macro_rules! nova_classes {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The classes of `nova.exception` this service raises or acts on. A remote
        /// failure may name any class; these are the ones our code compares with,
        /// through [`NovaException::is`] and `CallError::is_remote`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Class {
            $($(#[$doc])* $name),*
        }

        impl Class {
            /// The Python class name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Class::$name => stringify!($name)),*
                }
            }
        }
    };
}

nova_classes! {
    BuildAbortException,
    ComputeHostNotFound,
    ConsoleTypeInvalid,
    ConsoleTypeUnavailable,
    GlanceConnectionFailed,
    ImageBadRequest,
    ImageNotActive,
    ImageNotAuthorized,
    ImageNotFound,
    ImageQuotaExceeded,
    ImageUnacceptable,
    InstanceDeployFailure,
    InstanceExists,
    InstanceInvalidState,
    InstanceNotFound,
    InstanceNotReady,
    InstancePowerOffFailure,
    InstancePowerOnFailure,
    InstanceRebootFailure,
    InstanceResumeFailure,
    InstanceSuspendFailure,
    InterfaceAttachFailed,
    InterfaceDetachFailed,
    InvalidInput,
    MigrationError,
    MigrationPreCheckError,
    NotAuthorized,
    NotSupported,
    NetworkAmbiguous,
    NetworkNotFound,
    NoMoreFixedIps,
    FixedIpAlreadyInUse,
    PortBindingFailed,
    PortInUse,
    PortLimitExceeded,
    PortNotFound,
    PortNotUsable,
    SecurityGroupNotFound,
    SocketPortRangeExhaustedException,
    UnableToMigrateToSelf,
    /// Neutron failed or could not be reached.
    NeutronError,
    /// The base class, for failures without a more specific one.
    NovaException,
    /// `instance.save(expected_task_state=...)` found another task state.
    UnexpectedTaskStateError,
    /// The same, because the instance is being deleted.
    UnexpectedDeletingTaskStateError,
    VirtualInterfaceCreateException,
    VirtualInterfacePlugException,
    VirtualInterfaceUnplugException,
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Nova exception class with its message and constructor kwargs.
#[derive(Debug, Clone, PartialEq)]
pub struct NovaException {
    pub class: String,
    pub module: String,
    pub message: String,
    pub kwargs: Map<String, Value>,
}

impl std::fmt::Display for NovaException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for NovaException {}

fn kw(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl NovaException {
    /// Whether this is (a remote failure of) `nova.exception.<class>`.
    pub fn is(&self, class: Class) -> bool {
        self.module == "nova.exception" && self.class == class.name()
    }

    /// The instance is gone or going (deleted while we worked on it): Nova's
    /// decorators record no fault and set no error state for these.
    pub fn instance_gone(&self) -> bool {
        self.is(Class::InstanceNotFound) || self.is(Class::UnexpectedDeletingTaskStateError)
    }

    /// A class of `nova.exception` with its message and kwargs (`code` included
    /// where Nova's class has one).
    pub fn nova(class: Class, message: impl Into<String>, kwargs: Value) -> Self {
        NovaException {
            class: class.name().to_string(),
            module: "nova.exception".to_string(),
            message: message.into(),
            kwargs: kw(kwargs),
        }
    }

    pub fn instance_not_found(uuid: &str) -> Self {
        Self::nova(
            Class::InstanceNotFound,
            format!("Instance {uuid} could not be found."),
            json!({"instance_id": uuid, "code": 404}),
        )
    }

    pub fn instance_exists(name: &str) -> Self {
        Self::nova(
            Class::InstanceExists,
            format!("Instance {name} already exists."),
            json!({"name": name, "code": 500}),
        )
    }

    pub fn power_on_failure(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::nova(
            Class::InstancePowerOnFailure,
            format!("Failed to power on instance: {reason}"),
            json!({"reason": reason, "code": 500}),
        )
    }

    pub fn power_off_failure(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::nova(
            Class::InstancePowerOffFailure,
            format!("Failed to power off instance: {reason}"),
            json!({"reason": reason, "code": 500}),
        )
    }

    pub fn reboot_failure(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::nova(
            Class::InstanceRebootFailure,
            format!("Failed to reboot instance: {reason}"),
            json!({"reason": reason, "code": 500}),
        )
    }

    pub fn instance_deploy_failure(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::nova(
            Class::InstanceDeployFailure,
            format!("Failed to deploy instance: {reason}"),
            json!({"reason": reason, "code": 500}),
        )
    }

    pub fn build_abort(instance_uuid: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::nova(
            Class::BuildAbortException,
            format!("Build of instance {instance_uuid} aborted: {reason}"),
            json!({"instance_uuid": instance_uuid, "reason": reason, "code": 500}),
        )
    }

    pub fn image_not_found(image_id: &str) -> Self {
        Self::nova(
            Class::ImageNotFound,
            format!("Image {image_id} could not be found."),
            json!({"image_id": image_id, "code": 404}),
        )
    }

    pub fn image_unacceptable(image_id: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::nova(
            Class::ImageUnacceptable,
            format!("Image {image_id} is unacceptable: {reason}"),
            json!({"image_id": image_id, "reason": reason, "code": 400}),
        )
    }

    pub fn not_supported(what: impl Into<String>) -> Self {
        let what = what.into();
        Self::nova(
            Class::NotSupported,
            format!("{what} is not supported by the Docker driver."),
            json!({"code": 400}),
        )
    }

    pub fn invalid_state(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::nova(Class::InstanceInvalidState, reason, json!({"code": 409}))
    }

    /// A malformed request (a missing or ill-typed RPC argument).
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::nova(
            Class::InvalidInput,
            format!("Invalid input received: {reason}"),
            json!({"reason": reason, "code": 400}),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::nova(Class::NovaException, message, json!({"code": 500}))
    }

    /// A class outside nova.exception (oslo_messaging, builtins, ...).
    pub fn other(class: &str, module: &str, message: impl Into<String>, kwargs: Value) -> Self {
        NovaException {
            class: class.to_string(),
            module: module.to_string(),
            message: message.into(),
            kwargs: kw(kwargs),
        }
    }
}
