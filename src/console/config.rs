//! `[serial_console]` and `[consoleauth]` of nova.conf, the options Python
//! nova-compute reads for its serial consoles.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{ConfigError, Ini};

#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleConfig {
    /// `[serial_console] enabled` (Nova's default: False).
    pub enabled: bool,
    /// `[serial_console] port_range`, `start:stop` (stop not included), Nova's
    /// 10000:20000: the ports the listeners take.
    pub ports: (u16, u16),
    /// `[serial_console] base_url`: the proxy's URL the users' tokens are for.
    pub base_url: String,
    /// `[serial_console] proxyclient_address`: the address the listeners bind
    /// and the proxy connects to (the operator's management network).
    pub proxyclient_address: IpAddr,
    /// `[consoleauth] token_ttl`: how long a token is valid.
    pub token_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: false,
            ports: (10000, 20000),
            base_url: "ws://127.0.0.1:6083/".into(),
            proxyclient_address: IpAddr::from([127, 0, 0, 1]),
            token_ttl: Duration::from_secs(600),
        }
    }
}

impl ConsoleConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let g = ini.group("serial_console");
        let d = ConsoleConfig::default();
        let range = g.str("port_range", "10000:20000")?;
        let ports = parse_range(&range).ok_or_else(|| {
            g.invalid(
                "port_range",
                format!("{range:?} is not start:stop with 0 < start < stop <= 65535"),
            )
        })?;
        let addr = g.str("proxyclient_address", "127.0.0.1")?;
        let proxyclient_address = addr.trim().parse().map_err(|_| {
            g.invalid(
                "proxyclient_address",
                format!("{addr:?} is not an IP address"),
            )
        })?;
        let ttl = ini
            .group("consoleauth")
            .int("token_ttl", d.token_ttl.as_secs() as i64)?;
        if ttl <= 0 {
            return Err(ini.group("consoleauth").invalid(
                "token_ttl",
                format!("{ttl} must be a positive number of seconds"),
            ));
        }
        Ok(ConsoleConfig {
            enabled: g.bool("enabled", false)?,
            ports,
            base_url: g.str("base_url", &d.base_url)?,
            proxyclient_address,
            token_ttl: Duration::from_secs(ttl as u64),
        })
    }
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.trim().split_once(':')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && a < b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Result<ConsoleConfig, ConfigError> {
        ConsoleConfig::from_ini(&Ini::parse(text).unwrap())
    }

    #[test]
    fn nova_defaults_without_the_groups() {
        assert_eq!(conf("").unwrap(), ConsoleConfig::default());
    }

    #[test]
    fn reads_what_an_operator_sets() {
        let c = conf(
            "[serial_console]\nenabled = True\nport_range = 11000:11010\n\
             base_url = ws://proxy.example:6083/\nproxyclient_address = 10.1.2.3\n\
             [consoleauth]\ntoken_ttl = 120\n",
        )
        .unwrap();
        assert!(c.enabled);
        assert_eq!(c.ports, (11000, 11010));
        assert_eq!(c.base_url, "ws://proxy.example:6083/");
        assert_eq!(c.proxyclient_address.to_string(), "10.1.2.3");
        assert_eq!(c.token_ttl, Duration::from_secs(120));
    }

    #[test]
    fn bad_values_name_the_option() {
        for (text, option) in [
            ("[serial_console]\nport_range = 20000:10000\n", "port_range"),
            ("[serial_console]\nport_range = 10000\n", "port_range"),
            ("[serial_console]\nport_range = 0:10\n", "port_range"),
            (
                "[serial_console]\nproxyclient_address = compute1\n",
                "proxyclient_address",
            ),
            ("[consoleauth]\ntoken_ttl = 0\n", "token_ttl"),
        ] {
            let e = conf(text).unwrap_err().to_string();
            assert!(e.contains(option), "{text:?}: {e}");
        }
    }
}
