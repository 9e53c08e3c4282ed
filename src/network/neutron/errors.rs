//! Neutron's failures as the Nova exceptions nova-compute raises for them
//! (nova/network/neutron.py), with messages a user can read in a fault.

use serde_json::json;

use crate::clients::neutron::NeutronError;
use crate::exception::{Class, NovaException};

/// What a Neutron failure of a port operation means to Nova.
pub fn port_failure(e: &NeutronError, network_id: &str) -> NovaException {
    let msg = e.to_string();
    match e.kind() {
        Some("IpAddressGenerationFailure") => NovaException::nova(
            Class::NoMoreFixedIps,
            format!("No fixed IP addresses available for network: {network_id}"),
            json!({"net": network_id, "code": 400}),
        ),
        Some("IpAddressAlreadyAllocated") | Some("IpAddressInUse") => NovaException::nova(
            Class::FixedIpAlreadyInUse,
            format!("Fixed IP address is already in use on network {network_id}: {msg}"),
            json!({"code": 400}),
        ),
        Some("OverQuota") => NovaException::nova(
            Class::PortLimitExceeded,
            "Maximum number of ports exceeded".to_string(),
            json!({"code": 403}),
        ),
        Some("InvalidIpForNetwork") | Some("InvalidIpForSubnet") | Some("InvalidInput") => {
            NovaException::invalid_input(msg)
        }
        _ => neutron_failure(e),
    }
}

/// Any other failure: Neutron down, refused credentials, an unexpected status.
pub fn neutron_failure(e: &NeutronError) -> NovaException {
    NovaException::nova(Class::NeutronError, e.to_string(), json!({"code": 500}))
}

pub fn port_not_found(port_id: &str) -> NovaException {
    NovaException::nova(
        Class::PortNotFound,
        format!("Port id {port_id} could not be found."),
        json!({"port_id": port_id, "code": 404}),
    )
}

pub fn network_not_found(network_id: &str) -> NovaException {
    NovaException::nova(
        Class::NetworkNotFound,
        format!("Network {network_id} could not be found."),
        json!({"network_id": network_id, "code": 404}),
    )
}

pub fn port_in_use(port_id: &str) -> NovaException {
    NovaException::nova(
        Class::PortInUse,
        format!("Port {port_id} is still in use."),
        json!({"port_id": port_id, "code": 409}),
    )
}

pub fn port_not_usable(port_id: &str, instance: &str) -> NovaException {
    NovaException::nova(
        Class::PortNotUsable,
        format!("Port {port_id} not usable for instance {instance}."),
        json!({"port_id": port_id, "instance": instance, "code": 409}),
    )
}

pub fn binding_failed(port_id: &str, host: &str) -> NovaException {
    NovaException::nova(
        Class::PortBindingFailed,
        format!(
            "Binding failed for port {port_id} on host {host}: Neutron found no mechanism driver that can bind it here (is this host a chassis/agent of Neutron under the same host name?)"
        ),
        json!({"port_id": port_id, "code": 500}),
    )
}

pub fn network_ambiguous() -> NovaException {
    NovaException::nova(
        Class::NetworkAmbiguous,
        "Multiple possible networks found, use a Network ID to be more specific.".to_string(),
        json!({"code": 409}),
    )
}

pub fn security_group_not_found(name: &str) -> NovaException {
    NovaException::nova(
        Class::SecurityGroupNotFound,
        format!("Security group {name} not found."),
        json!({"security_group_id": name, "code": 404}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: &str) -> NeutronError {
        NeutronError::Status {
            method: "POST".into(),
            path: "ports".into(),
            status: 409,
            kind: Some(kind.into()),
            message: "m".into(),
        }
    }

    #[test]
    fn neutron_types_map_to_novas_classes() {
        assert!(port_failure(&status("IpAddressGenerationFailure"), "n").is(Class::NoMoreFixedIps));
        assert!(
            port_failure(&status("IpAddressAlreadyAllocated"), "n").is(Class::FixedIpAlreadyInUse)
        );
        assert!(port_failure(&status("OverQuota"), "n").is(Class::PortLimitExceeded));
        assert!(port_failure(&status("Other"), "n").is(Class::NeutronError));
        let down = NeutronError::Unreachable {
            method: "POST".into(),
            path: "ports".into(),
            reason: "connection refused".into(),
        };
        let e = port_failure(&down, "n");
        assert!(e.is(Class::NeutronError));
        assert!(e.message.contains("unreachable"), "{}", e.message);
    }
}
