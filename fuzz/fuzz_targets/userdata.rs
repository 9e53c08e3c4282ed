//! user_data on hostile bytes: the decoder (MIME multipart, JSON, YAML, both
//! vocabularies, normalization) must not panic, and what it accepts goes through
//! the policy check under the safe default policy and under a policy that allows
//! everything (with the admin bypass), which must not panic either.
#![no_main]

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use libfuzzer_sys::fuzz_target;
use nova_docker::userdata::{
    decode, decode_raw, ContainerLookup, LookupError, Policy, PolicyContext, TargetOwner,
    UserOptions,
};

/// Answers at once, by the name: every kind of owner, and a failed lookup.
struct Lookup;

#[async_trait]
impl ContainerLookup for Lookup {
    async fn owner(&self, name: &str) -> Result<TargetOwner, LookupError> {
        Ok(match name.len() % 5 {
            0 => TargetOwner::Missing,
            1 => TargetOwner::NotAnInstance,
            2 => TargetOwner::Instance {
                project_id: Some("p1".into()),
            },
            3 => TargetOwner::Instance { project_id: None },
            _ => {
                return Err(LookupError::Failed {
                    name: name.into(),
                    reason: "fuzz".into(),
                })
            }
        })
    }
}

/// The check awaits nothing but [`Lookup`], which is ready at once.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the policy check waited on something other than the lookup"),
    }
}

fn permissive() -> Policy {
    Policy {
        allow_privileged: true,
        allowed_host_paths: vec![PathBuf::from("/")],
        allow_docker_socket: true,
        allow_named_volumes: true,
        allow_devices: true,
        allowed_capabilities: vec!["ALL".into()],
        allow_host_namespaces: true,
        allow_container_namespaces: true,
        allow_unconfined_security_opts: true,
        allow_sysctls: true,
        allow_cross_project_links: true,
        allow_host_resource_overrides: true,
        allowed_runtimes: vec!["runc".into(), "nvidia".into()],
        allow_log_drivers: true,
        allow_port_bindings: true,
        admin_bypass: true,
        ..Policy::default()
    }
}

fn check(opts: &UserOptions) {
    let tenant = PolicyContext::new("p1", false);
    if let Err(v) = now(Policy::default().check(opts, &tenant, &Lookup)) {
        assert!(!v.refusals.is_empty());
        let _ = v.to_string();
    }
    let p = permissive();
    if let Err(v) = now(p.check(opts, &tenant, &Lookup)) {
        let _ = v.to_string();
    }
    let admin = PolicyContext::new("p2", true);
    assert!(
        now(p.check(opts, &admin, &Lookup)).is_ok(),
        "the admin bypass refused"
    );
}

fuzz_target!(|data: &[u8]| {
    match decode_raw(data) {
        Ok(Some(opts)) => check(&opts),
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // as Nova passes it: base64 text
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(Some(opts)) = decode(Some(text)) {
            check(&opts);
        }
    }
});
