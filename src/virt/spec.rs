//! What the compute manager asks a driver to run: one [`InstanceSpec`].

use std::time::Duration;

/// The container options a user asked for in user_data (policy-checked).
pub use crate::userdata::ContainerOptions;

/// Longest host name Linux takes (`HOST_NAME_MAX`), and the longest DNS label.
const MAX_LABEL: usize = 63;

/// One instance to run, as the compute manager fills it in.
#[derive(Debug, Clone, Default)]
pub struct InstanceSpec {
    pub uuid: String,
    pub display_name: String,
    /// The guest's host name: the first label of Nova's `hostname` (see
    /// [`split_hostname`]).
    pub hostname: String,
    /// The rest of an FQDN `hostname`, as the guest's domain.
    pub domainname: Option<String>,
    pub project_id: String,
    pub user_id: String,
    /// The compute host (Nova's `CONF.host`) that owns the instance.
    pub host: String,
    pub memory_mb: u64,
    pub vcpus: u32,
    /// The image, already present in the engine (its local reference).
    pub image: String,
    /// From instance metadata, as the old driver did.
    pub env: Vec<(String, String)>,
    /// From the image property `os_command_line` (see [`split_command_line`]).
    pub command: Option<Vec<String>>,
    /// Container options from user_data, already policy-checked.
    pub user_options: Option<ContainerOptions>,
    /// An engine network the container joins; `None`: none, the VIF driver wires
    /// the container's network namespace itself.
    pub network_mode: Option<String>,
    /// Grace time of a stop before SIGKILL; recorded as the container's StopTimeout.
    pub stop_timeout: Duration,
}

/// Split an `os_command_line` image property like a POSIX shell would.
pub fn split_command_line(s: &str) -> Result<Vec<String>, String> {
    let words = shell_words::split(s).map_err(|e| format!("os_command_line {s:?}: {e}"))?;
    if words.is_empty() {
        return Err("os_command_line is empty".into());
    }
    Ok(words)
}

/// Nova's `hostname` as a guest sees it: an FQDN (API 2.94 allows 255
/// characters) is split at its first dot into the host name and the domain, as a
/// resolver would; the host name is cut to 63 characters (a DNS label, and what
/// Linux's `sethostname` takes).
pub fn split_hostname(fqdn: &str) -> (String, Option<String>) {
    let fqdn = fqdn.trim().trim_end_matches('.');
    let (host, domain) = match fqdn.split_once('.') {
        Some((h, d)) if !d.is_empty() => (h, Some(d.to_string())),
        Some((h, _)) => (h, None),
        None => (fqdn, None),
    };
    let mut host = host.to_string();
    if host.len() > MAX_LABEL {
        host.truncate(MAX_LABEL);
        host = host.trim_end_matches('-').to_string();
    }
    (host, domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_split_like_a_shell() {
        assert_eq!(
            split_command_line(r#"/bin/sh -c "echo 'a b'; sleep 1""#).unwrap(),
            vec!["/bin/sh", "-c", "echo 'a b'; sleep 1"]
        );
        assert!(split_command_line("echo \"unterminated").is_err());
        assert!(split_command_line("   ").is_err());
    }

    #[test]
    fn an_fqdn_is_a_host_name_and_a_domain() {
        assert_eq!(split_hostname("web-1"), ("web-1".into(), None));
        assert_eq!(
            split_hostname("web-1.example.org"),
            ("web-1".into(), Some("example.org".into()))
        );
        assert_eq!(split_hostname("web-1."), ("web-1".into(), None));
        // tempest's long FQDN: 255 characters of labels
        let long = format!("{}.{}", "a".repeat(70), "b".repeat(180));
        let (h, d) = split_hostname(&long);
        assert_eq!(h.len(), 63);
        assert_eq!(d.as_deref(), Some(&*"b".repeat(180)));
    }
}
