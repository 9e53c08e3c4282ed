//! The messaging options of nova.conf: `[DEFAULT] transport_url`, `control_exchange`,
//! `rpc_response_timeout` and the `[oslo_messaging_rabbit]` group, with oslo's defaults.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, Ini};

/// One broker of a transport URL.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpHost {
    pub username: String,
    pub password: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Debug for AmqpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

impl AmqpHost {
    /// `user:***@host:port`: what may be logged.
    pub fn redacted(&self) -> String {
        format!(
            "{}:***@{}:{}",
            self.username,
            bracket(&self.host),
            self.port
        )
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost`. Display and Debug
/// never show the passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportUrl {
    pub hosts: Vec<AmqpHost>,
    /// The AMQP virtual host, `/` when the URL names none (as kombu).
    pub virtual_host: String,
}

impl fmt::Display for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self.hosts.iter().map(AmqpHost::redacted).collect();
        let vhost = if self.virtual_host == "/" {
            String::new()
        } else {
            self.virtual_host.clone()
        };
        write!(f, "rabbit://{}/{}", hosts.join(","), vhost)
    }
}

impl fmt::Debug for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a transport URL was refused (the message never repeats the URL itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportUrlError {
    #[error("transport_url scheme must be rabbit:// (got {0:?})")]
    Scheme(String),
    #[error("transport_url names no host")]
    NoHost,
    #[error("transport_url host #{0} has a bad port")]
    Port(usize),
    #[error("transport_url host #{0} is empty")]
    EmptyHost(usize),
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TransportUrl {
    /// Parse an oslo.messaging transport URL (`rabbit://` or `amqp://`). Hosts
    /// without credentials take those of the host before them (guest/guest if none).
    pub fn parse(url: &str) -> Result<Self, TransportUrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| TransportUrlError::Scheme(String::new()))?;
        let scheme = scheme.trim();
        if !matches!(scheme, "rabbit" | "amqp" | "kombu+rabbit" | "kombu+amqp") {
            return Err(TransportUrlError::Scheme(scheme.to_string()));
        }
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (netloc, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let mut hosts = Vec::new();
        let (mut last_user, mut last_pass) = ("guest".to_string(), "guest".to_string());
        for (i, part) in netloc.split(',').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (cred, hostport) = match part.rfind('@') {
                Some(at) => (Some(&part[..at]), &part[at + 1..]),
                None => (None, part),
            };
            if let Some(cred) = cred {
                let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
                last_user = pct_decode(u);
                last_pass = pct_decode(p);
            }
            let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
                let (h, after) = h.split_once(']').ok_or(TransportUrlError::EmptyHost(i))?;
                (h.to_string(), after.strip_prefix(':'))
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p)),
                    None => (hostport.to_string(), None),
                }
            };
            if host.is_empty() {
                return Err(TransportUrlError::EmptyHost(i));
            }
            let port = match port {
                Some("") | None => 5672,
                Some(p) => p.parse().map_err(|_| TransportUrlError::Port(i))?,
            };
            hosts.push(AmqpHost {
                username: last_user.clone(),
                password: last_pass.clone(),
                host,
                port,
            });
        }
        if hosts.is_empty() {
            return Err(TransportUrlError::NoHost);
        }
        let vhost = pct_decode(path);
        Ok(TransportUrl {
            hosts,
            virtual_host: if vhost.is_empty() { "/".into() } else { vhost },
        })
    }
}

/// Everything the RPC layer reads from nova.conf.
#[derive(Debug, Clone)]
pub struct RabbitConfig {
    pub transport_url: TransportUrl,
    pub control_exchange: String,
    pub rpc_response_timeout: Duration,
    pub amqp_durable_queues: bool,
    pub amqp_auto_delete: bool,
    pub rabbit_quorum_queue: bool,
    pub rabbit_ha_queues: bool,
    /// Seconds; `x-expires` of fanout and reply queues is this * 1000.
    pub rabbit_transient_queues_ttl: u32,
    /// Seconds; the AMQP heartbeat asked of the broker (0 = off).
    pub heartbeat_timeout_threshold: u16,
    /// Unsettled messages the broker hands each consumer at once (AMQP
    /// `basic.qos`); never 0 here (see [`DEFAULT_PREFETCH`]).
    pub rabbit_qos_prefetch_count: u16,
    pub rabbit_retry_interval: Duration,
    pub rabbit_retry_backoff: Duration,
    pub rabbit_interval_max: Duration,
    pub ssl: bool,
    pub ssl_ca_file: Option<PathBuf>,
    pub ssl_cert_file: Option<PathBuf>,
    pub ssl_key_file: Option<PathBuf>,
}

/// The prefetch when `rabbit_qos_prefetch_count` is 0, oslo's default, which
/// there means no limit: a flood of messages on our queues would then be
/// pushed into the daemon's memory as fast as the broker can send it. With a
/// bound, what the daemon holds at once is this many messages per consumer,
/// whatever the backlog.
pub const DEFAULT_PREFETCH: u16 = 32;

impl RabbitConfig {
    /// The config for a transport URL with every other option at oslo's default.
    pub fn new(transport_url: TransportUrl) -> Self {
        RabbitConfig {
            transport_url,
            control_exchange: "nova".into(),
            rpc_response_timeout: Duration::from_secs(60),
            amqp_durable_queues: false,
            amqp_auto_delete: false,
            rabbit_quorum_queue: false,
            rabbit_ha_queues: false,
            rabbit_transient_queues_ttl: 1800,
            heartbeat_timeout_threshold: 60,
            rabbit_qos_prefetch_count: DEFAULT_PREFETCH,
            rabbit_retry_interval: Duration::from_secs(1),
            rabbit_retry_backoff: Duration::from_secs(2),
            rabbit_interval_max: Duration::from_secs(30),
            ssl: false,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
        }
    }

    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let d = ini.group("DEFAULT");
        let url = d.opt_nonempty("transport_url")?.ok_or_else(|| {
            d.invalid(
                "transport_url",
                "must be set (rabbit://user:pass@host:5672/)",
            )
        })?;
        let transport_url =
            TransportUrl::parse(&url).map_err(|e| d.invalid("transport_url", e.to_string()))?;
        let r = ini.group("oslo_messaging_rabbit");
        let cfg = RabbitConfig {
            transport_url,
            control_exchange: d.str("control_exchange", "nova")?,
            rpc_response_timeout: d.secs("rpc_response_timeout", 60)?,
            amqp_durable_queues: r.bool("amqp_durable_queues", false)?,
            amqp_auto_delete: r.bool("amqp_auto_delete", false)?,
            rabbit_quorum_queue: r.bool("rabbit_quorum_queue", false)?,
            rabbit_ha_queues: r.bool("rabbit_ha_queues", false)?,
            rabbit_transient_queues_ttl: r.int_range(
                "rabbit_transient_queues_ttl",
                1800,
                0,
                2_147_483,
            )? as u32,
            heartbeat_timeout_threshold: r.int_range("heartbeat_timeout_threshold", 60, 0, 65535)?
                as u16,
            rabbit_qos_prefetch_count: match r.int_range(
                "rabbit_qos_prefetch_count",
                0,
                0,
                65535,
            )? {
                0 => DEFAULT_PREFETCH,
                n => n as u16,
            },
            rabbit_retry_interval: ms(r.float("rabbit_retry_interval", 1.0)?),
            rabbit_retry_backoff: ms(r.float("rabbit_retry_backoff", 2.0)?),
            rabbit_interval_max: ms(r.float("rabbit_interval_max", 30.0)?),
            ssl: r.bool("ssl", false)?,
            ssl_ca_file: r.opt_nonempty("ssl_ca_file")?.map(PathBuf::from),
            ssl_cert_file: r.opt_nonempty("ssl_cert_file")?.map(PathBuf::from),
            ssl_key_file: r.opt_nonempty("ssl_key_file")?.map(PathBuf::from),
        };
        if cfg.rabbit_quorum_queue && cfg.rabbit_ha_queues {
            return Err(r.invalid(
                "rabbit_quorum_queue",
                "rabbit_quorum_queue and rabbit_ha_queues cannot both be enabled",
            ));
        }
        if cfg.ssl_cert_file.is_some() != cfg.ssl_key_file.is_some() {
            return Err(r.invalid(
                "ssl_cert_file",
                "ssl_cert_file and ssl_key_file go together",
            ));
        }
        Ok(cfg)
    }

    /// Durability of the topic exchange and queues (`amqp_durable_queues or
    /// rabbit_quorum_queue`, as oslo's `Connection.durable`).
    pub fn durable(&self) -> bool {
        self.amqp_durable_queues || self.rabbit_quorum_queue
    }

    /// The wait before reconnect attempt `attempt` (0-based): oslo's
    /// `interval_start + attempt * stepping`, capped at `rabbit_interval_max`.
    pub fn reconnect_delay(&self, attempt: u32) -> Duration {
        let d = self.rabbit_retry_interval + self.rabbit_retry_backoff.saturating_mul(attempt);
        d.min(self.rabbit_interval_max)
    }
}

fn ms(secs: f64) -> Duration {
    if secs.is_finite() && secs > 0.0 {
        Duration::from_millis((secs * 1000.0) as u64)
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(t: &str) -> Ini {
        Ini::parse(t).unwrap()
    }

    #[test]
    fn several_hosts_and_redaction() {
        let c = RabbitConfig::from_ini(&ini(
            "[DEFAULT]\ntransport_url = rabbit://nova:s3cr%40t@r1:5673,nova:s3cr%40t@r2,[::1]:5674/nova%2Fvh\n\
             [oslo_messaging_rabbit]\nrabbit_quorum_queue = True\nheartbeat_timeout_threshold = 30\n",
        ))
        .unwrap();
        let u = &c.transport_url;
        assert_eq!(u.hosts.len(), 3);
        assert_eq!(u.hosts[0].password, "s3cr@t");
        assert_eq!(u.hosts[0].port, 5673);
        assert_eq!(u.hosts[1].port, 5672);
        assert_eq!(u.hosts[2].host, "::1");
        assert_eq!(u.hosts[2].username, "nova");
        assert_eq!(u.virtual_host, "nova/vh");
        let shown = format!("{u} {u:?} {c:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("nova:***@r1:5673"));
        assert!(c.durable());
        assert_eq!(c.heartbeat_timeout_threshold, 30);
        assert_eq!(c.control_exchange, "nova");
        assert_eq!(c.rabbit_transient_queues_ttl, 1800);
        // oslo's 0 (no limit) is our bound
        assert_eq!(c.rabbit_qos_prefetch_count, DEFAULT_PREFETCH);
    }

    #[test]
    fn a_prefetch_count_of_the_operator() {
        let c = |v: &str| {
            RabbitConfig::from_ini(&ini(&format!(
                "[DEFAULT]\ntransport_url = rabbit://r1/\n[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = {v}\n"
            )))
        };
        assert_eq!(c("5").unwrap().rabbit_qos_prefetch_count, 5);
        assert_eq!(c("0").unwrap().rabbit_qos_prefetch_count, DEFAULT_PREFETCH);
        assert!(c("-1").is_err());
        assert!(c("70000").is_err());
    }

    #[test]
    fn defaults_and_errors() {
        let c = RabbitConfig::from_ini(&ini(
            "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n",
        ))
        .unwrap();
        assert_eq!(c.transport_url.virtual_host, "/");
        assert!(!c.durable());
        assert_eq!(c.rpc_response_timeout, Duration::from_secs(60));
        assert_eq!(c.reconnect_delay(0), Duration::from_secs(1));
        assert_eq!(c.reconnect_delay(100), Duration::from_secs(30));
        assert!(RabbitConfig::from_ini(&ini("[DEFAULT]\n")).is_err());
        let e = RabbitConfig::from_ini(&ini("[DEFAULT]\ntransport_url = http://u:pw@h/\n"))
            .unwrap_err();
        assert!(!e.to_string().contains("pw"));
        assert!(RabbitConfig::from_ini(&ini(
            "[DEFAULT]\ntransport_url = rabbit://h/\n[oslo_messaging_rabbit]\nrabbit_ha_queues=true\nrabbit_quorum_queue=true\n"
        ))
        .is_err());
        assert!(TransportUrl::parse("rabbit://u:p@h:notaport/").is_err());
    }
}
