//! Rescheduling a build that failed here for a reason of this host, as
//! nova-compute's `_do_build_and_run_instance` does on a
//! `RescheduledException`: the instance goes back to the conductor's
//! `build_instances` with the scheduler's alternate hosts, which the conductor
//! claims in placement and tries in turn, up to `[scheduler] max_attempts`.
//!
//! Whether a failure is this host's ([`host_local`]) and what the conductor
//! is sent ([`Retry::build_instances_args`]) are pure functions of the
//! request; [`super::build`] does the cleanup and the cast.

use serde_json::{json, Map, Value};

use crate::exception::{Class, NovaException};
use crate::objects::Instance;

/// What a `build_and_run_instance` request carries for a retry, as Nova sent
/// it: handed back to the conductor untouched but for `filter_properties`'
/// `retry`, which records the failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retry {
    /// `filter_properties`; its `retry` (the attempts so far and the hosts
    /// tried) is there only when rescheduling is on: not for a forced host or
    /// `[scheduler] max_attempts = 1`.
    filter_properties: Map<String, Value>,
    /// The scheduler's alternates left for this instance (`Selection`
    /// objects); the conductor tries the first.
    host_list: Vec<Value>,
    /// `image`, `request_spec`, `admin_password`, `injected_files`,
    /// `requested_networks` and `security_groups` as they came.
    pass_through: Map<String, Value>,
}

/// The arguments of the request that `build_instances` takes back as they came.
const PASSED_THROUGH: &[&str] = &[
    "image",
    "request_spec",
    "admin_password",
    "injected_files",
    "requested_networks",
    "security_groups",
];

/// Why a failed build is not rescheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRetry {
    /// The failure would be the same on any host (the request itself).
    NotHostLocal,
    /// The request has no `retry`: a forced host, or `max_attempts = 1`.
    Disabled,
    /// The scheduler's alternates are used up: the instance ends in ERROR
    /// here, with this host's fault (the conductor's would only say that the
    /// hosts ran out).
    NoAlternateLeft,
}

impl Retry {
    /// From the request's `filter_properties` and `host_list` (checked by the
    /// caller to be an object and a list) and the rest of its arguments.
    pub fn new(
        filter_properties: Map<String, Value>,
        host_list: Vec<Value>,
        args: &Map<String, Value>,
    ) -> Self {
        let pass_through = PASSED_THROUGH
            .iter()
            .filter_map(|k| args.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        Retry {
            filter_properties,
            host_list,
            pass_through,
        }
    }

    /// Whether the failure `e` is rescheduled, and if not, why.
    pub fn decide(&self, e: &NovaException) -> Result<(), NoRetry> {
        if !host_local(e) {
            Err(NoRetry::NotHostLocal)
        } else if !self
            .filter_properties
            .get("retry")
            .is_some_and(Value::is_object)
        {
            Err(NoRetry::Disabled)
        } else if self.host_list.is_empty() {
            Err(NoRetry::NoAlternateLeft)
        } else {
            Ok(())
        }
    }

    /// The attempt this one was (1 for the first host).
    pub fn attempt(&self) -> i64 {
        self.filter_properties
            .get("retry")
            .and_then(|r| r.get("num_attempts"))
            .and_then(Value::as_i64)
            .unwrap_or(1)
    }

    /// The arguments of the conductor's `build_instances` (compute_task 1.19)
    /// for `inst` after the failure `e` here: the request as it came, with
    /// the failure in `retry` (`exc`, which the conductor logs, and
    /// `exc_reason`, which its "Exceeded max scheduling attempts" fault
    /// quotes) and this host's alternates as `host_lists`.
    pub fn build_instances_args(&self, inst: &Instance, e: &NovaException) -> Map<String, Value> {
        let mut fp = self.filter_properties.clone();
        if let Some(Value::Object(retry)) = fp.get_mut("retry") {
            retry.insert("exc".into(), json!([e.to_string()]));
            retry.insert("exc_reason".into(), json!(e.message));
        }
        let mut args = self.pass_through.clone();
        args.insert("instances".into(), json!([inst.to_primitive()]));
        args.insert("filter_properties".into(), Value::Object(fp));
        args.insert("host_lists".into(), json!([self.host_list]));
        for k in PASSED_THROUGH {
            args.entry(k.to_string()).or_insert(Value::Null);
        }
        args
    }
}

/// Whether a build's failure is this host's, so another host may succeed:
/// the engine refused or did not answer, the image could not be loaded here,
/// a port could not be bound to or plugged on this host, the container did
/// not start. Not a failure of the request itself, which every host would
/// meet again: options refused by the user_data policy or an image that is
/// not a Docker image (both `BuildAbortException`), an image Glance does not
/// have or lets nobody read, a network, port, address or security group that
/// does not exist or is taken, the instance deleted or changed meanwhile.
pub fn host_local(e: &NovaException) -> bool {
    use Class::*;
    const THE_REQUEST: &[Class] = &[
        BuildAbortException,
        InvalidInput,
        NotAuthorized,
        ImageNotFound,
        ImageNotAuthorized,
        ImageNotActive,
        ImageBadRequest,
        ImageQuotaExceeded,
        InstanceNotFound,
        UnexpectedTaskStateError,
        UnexpectedDeletingTaskStateError,
        NetworkAmbiguous,
        NetworkNotFound,
        NoMoreFixedIps,
        FixedIpAlreadyInUse,
        PortInUse,
        PortLimitExceeded,
        PortNotFound,
        PortNotUsable,
        SecurityGroupNotFound,
    ];
    !THE_REQUEST.iter().any(|c| e.is(*c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(retry: bool, alternates: usize) -> (Map<String, Value>, Retry) {
        let mut fp = json!({"limits": {}});
        if retry {
            fp["retry"] = json!({"num_attempts": 1, "hosts": [["a", "a"]]});
        }
        let hosts: Vec<Value> = (0..alternates)
            .map(|i| json!({"nova_object.name": "Selection", "nova_object.data": {"service_host": format!("b{i}")}}))
            .collect();
        let args = json!({
            "image": {"id": "img-1", "container_format": "docker"},
            "request_spec": {"nova_object.name": "RequestSpec"},
            "admin_password": "pw",
            "injected_files": [],
            "requested_networks": {"nova_object.name": "NetworkRequestList"},
            "security_groups": ["default"],
            "filter_properties": fp,
            "host_list": hosts,
            "node": "a",
        });
        let args = args.as_object().unwrap().clone();
        let r = Retry::new(
            args["filter_properties"].as_object().unwrap().clone(),
            args["host_list"].as_array().unwrap().clone(),
            &args,
        );
        (args, r)
    }

    fn engine_down() -> NovaException {
        NovaException::internal("the Docker engine at unix:///run/x.sock does not answer")
    }

    #[test]
    fn a_host_local_failure_with_alternates_is_rescheduled() {
        let (_, r) = request(true, 1);
        assert_eq!(r.decide(&engine_down()), Ok(()));
        let bind = NovaException::nova(
            Class::PortBindingFailed,
            "Binding failed for port p",
            json!({}),
        );
        assert_eq!(r.decide(&bind), Ok(()));
        let load = NovaException::image_unacceptable("img-1", "docker load failed");
        assert_eq!(r.decide(&load), Ok(()));
    }

    #[test]
    fn a_failure_of_the_request_itself_is_not() {
        let (_, r) = request(true, 2);
        for e in [
            NovaException::build_abort("u", "user_data refused by the policy"),
            NovaException::image_not_found("img-1"),
            NovaException::nova(Class::PortInUse, "Port p is still in use.", json!({})),
            NovaException::instance_not_found("u"),
        ] {
            assert_eq!(r.decide(&e), Err(NoRetry::NotHostLocal), "{e}");
        }
    }

    #[test]
    fn without_retry_or_alternates_the_build_fails_here() {
        assert_eq!(
            request(false, 2).1.decide(&engine_down()),
            Err(NoRetry::Disabled)
        );
        assert_eq!(
            request(true, 0).1.decide(&engine_down()),
            Err(NoRetry::NoAlternateLeft)
        );
    }

    #[test]
    fn build_instances_gets_the_request_back_with_the_failure_recorded() {
        let (args, r) = request(true, 2);
        let inst = Instance::from_primitive(&json!({
            "nova_object.name": "Instance", "nova_object.namespace": "nova",
            "nova_object.version": "2.8",
            "nova_object.data": {"uuid": "5f3a6c1e-0000-4000-8000-00000000000a",
                                 "vm_state": "building", "task_state": "scheduling", "host": null}}))
        .unwrap();
        let out = r.build_instances_args(&inst, &engine_down());
        for k in PASSED_THROUGH {
            assert_eq!(out[*k], args[*k], "{k}");
        }
        assert_eq!(out["instances"][0], inst.to_primitive());
        assert_eq!(out["host_lists"], json!([args["host_list"]]));
        let retry = &out["filter_properties"]["retry"];
        assert_eq!(retry["num_attempts"], 1);
        assert_eq!(retry["hosts"], json!([["a", "a"]]));
        assert_eq!(
            retry["exc_reason"],
            "the Docker engine at unix:///run/x.sock does not answer"
        );
        assert!(retry["exc"][0]
            .as_str()
            .unwrap()
            .contains("does not answer"));
        assert_eq!(out["filter_properties"]["limits"], json!({}));
        assert!(
            out.get("node").is_none(),
            "only build_instances' own arguments"
        );
        assert_eq!(r.attempt(), 1);
    }
}
