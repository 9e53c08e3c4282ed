//! What the policy refused, and the exception that aborts the build.

use serde_json::json;
use thiserror::Error;

use crate::exception::NovaException;

/// One refused option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The option as the user wrote it (`HostConfig.CapAdd`, `volumes`).
    pub option: String,
    /// The offending value (a host path, a capability, a mode).
    pub value: String,
    /// Why, in words a user understands.
    pub reason: String,
    /// The `[docker]` option that would allow it, if one does.
    pub allowed_by: Option<&'static str>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.option, self.value, self.reason)?;
        match self.allowed_by {
            Some(o) => write!(f, " (the operator may allow it with [docker] {o})."),
            None => write!(f, "."),
        }
    }
}

/// Everything the policy refused, in the order of the options.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct PolicyViolation {
    pub refusals: Vec<Refusal>,
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "container options refused: ")?;
        for (i, r) in self.refusals.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The payload of an instance fault for a policy refusal, as
/// [`NovaException`] kwargs expect it.
fn violation_kwargs(v: &PolicyViolation) -> serde_json::Value {
    json!({
        "reason": v.to_string(),
        "refused_options": v.refusals.iter().map(|r| r.option.clone()).collect::<Vec<_>>(),
    })
}

impl PolicyViolation {
    /// The exception that aborts the build (not rescheduled: every host of
    /// the same policy refuses the same options).
    pub fn to_build_abort(&self, instance_uuid: &str) -> NovaException {
        NovaException::build_abort(instance_uuid, self.to_string())
    }
}

impl From<PolicyViolation> for NovaException {
    fn from(v: PolicyViolation) -> Self {
        let mut e = NovaException::instance_deploy_failure(v.to_string());
        if let serde_json::Value::Object(extra) = violation_kwargs(&v) {
            for (k, val) in extra {
                if k != "reason" {
                    e.kwargs.insert(k, val);
                }
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::check;
    use super::super::Policy;

    #[test]
    fn violation_to_nova_exception() {
        let e = check(
            &Policy::default(),
            r#"{"HostConfig": {"Privileged": true, "CapAdd": ["SYS_ADMIN"]}}"#,
        )
        .unwrap_err();
        let n: crate::exception::NovaException = e.clone().into();
        assert_eq!(n.class, "InstanceDeployFailure");
        assert!(
            n.message.contains("Privileged") && n.message.contains("SYS_ADMIN"),
            "{}",
            n.message
        );
        assert_eq!(n.kwargs["refused_options"].as_array().unwrap().len(), 2);
        let a = e.to_build_abort("u-1");
        assert!(a.message.contains("SYS_ADMIN"));
    }
}
