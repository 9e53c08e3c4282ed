//! Connecting to RabbitMQ: the hosts of the transport URL in turn with oslo's
//! back-off, AMQP heartbeats from `heartbeat_timeout_threshold`, TLS (rustls)
//! when `ssl = True`. The server and the client each run their own reconnect
//! loop on top of [`Connector::connect`] and redeclare what they need.

use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::tcp::{RustlsConnector, RustlsConnectorConfig, TcpStream};
use lapin::types::LongString;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;

use super::config::{AmqpHost, RabbitConfig};
use super::RpcError;

/// How long one TCP connect may take before the next host is tried.
/// The frame_max we ask for (the broker's default is 128 KiB). lapin keeps a receive
/// and a send buffer of 32 frames per connection, zero-filled: at 128 KiB that is 8 MiB
/// resident per connection. Larger messages are split into more body frames.
const FRAME_MAX: u32 = 16 * 1024;
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Opens connections to the configured brokers.
#[derive(Clone)]
pub struct Connector {
    cfg: Arc<RabbitConfig>,
    tls: Option<RustlsConnector>,
    next_host: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("url", &self.cfg.transport_url)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, RpcError> {
    std::fs::read(path).map_err(|e| RpcError::Tls(format!("cannot read {}: {e}", path.display())))
}

fn tls_connector(cfg: &RabbitConfig) -> Result<RustlsConnector, RpcError> {
    let roots = match &cfg.ssl_ca_file {
        Some(ca) => {
            let pem = read_pem(ca)?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(pem.as_slice()))
                .collect::<Result<_, _>>()
                .map_err(|e| RpcError::Tls(format!("{}: {e}", ca.display())))?;
            if certs.is_empty() {
                return Err(RpcError::Tls(format!(
                    "{}: no certificate found",
                    ca.display()
                )));
            }
            let mut roots = RustlsConnectorConfig::default();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(RpcError::Tls(format!(
                    "{}: no usable CA certificate",
                    ca.display()
                )));
            }
            roots
        }
        None => RustlsConnectorConfig::new_with_native_certs()
            .map_err(|e| RpcError::Tls(format!("system CA certificates: {e}")))?,
    };
    match (&cfg.ssl_cert_file, &cfg.ssl_key_file) {
        (Some(cert), Some(key)) => {
            let pem = read_pem(cert)?;
            let chain: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(pem.as_slice()))
                .collect::<Result<_, _>>()
                .map_err(|e| RpcError::Tls(format!("{}: {e}", cert.display())))?;
            let kpem = read_pem(key)?;
            let key_der = rustls_pemfile::private_key(&mut BufReader::new(kpem.as_slice()))
                .map_err(|e| RpcError::Tls(format!("{}: {e}", key.display())))?
                .ok_or_else(|| RpcError::Tls(format!("{}: no private key found", key.display())))?;
            roots
                .connector_with_single_cert(chain, key_der)
                .map_err(|e| RpcError::Tls(format!("client certificate: {e}")))
        }
        _ => Ok(roots.connector_with_no_client_auth()),
    }
}

impl Connector {
    /// Reads the TLS files now, so that a bad path fails at start-up.
    pub fn new(cfg: Arc<RabbitConfig>) -> Result<Self, RpcError> {
        let tls = if cfg.ssl {
            Some(tls_connector(&cfg)?)
        } else {
            None
        };
        Ok(Connector {
            cfg,
            tls,
            next_host: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn config(&self) -> &Arc<RabbitConfig> {
        &self.cfg
    }

    fn uri(&self, h: &AmqpHost) -> AMQPUri {
        AMQPUri {
            scheme: if self.cfg.ssl {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: h.username.clone(),
                    password: h.password.clone(),
                },
                host: h.host.clone(),
                port: h.port,
            },
            vhost: self.cfg.transport_url.virtual_host.clone(),
            query: AMQPQueryString {
                heartbeat: Some(self.cfg.heartbeat_timeout_threshold),
                connection_timeout: Some(CONNECT_TIMEOUT_MS),
                frame_max: Some(FRAME_MAX),
                ..Default::default()
            },
        }
    }

    /// One attempt against one host.
    #[allow(clippy::result_large_err)] // lapin's HandshakeError, not ours
    pub async fn connect_host(&self, h: &AmqpHost, name: &str) -> Result<Connection, lapin::Error> {
        let uri = self.uri(h);
        let props = ConnectionProperties::default()
            .with_connection_name(LongString::from(name.as_bytes().to_vec()));
        match &self.tls {
            None => Connection::connect_uri(uri, props).await,
            Some(tls) => {
                let tls = tls.clone();
                let host = h.host.clone();
                let addr = format!("{}:{}", h.host, h.port);
                Connection::connector(
                    uri,
                    Box::new(move |_uri| {
                        let s = TcpStream::connect_timeout(
                            addr.as_str(),
                            Duration::from_millis(CONNECT_TIMEOUT_MS),
                        )?;
                        let s = s.into_rustls(&tls, &host)?;
                        s.set_nonblocking(true)?;
                        Ok(s)
                    }),
                    props,
                )
                .await
            }
        }
    }

    /// Connect to the next host that answers, trying the hosts in turn and
    /// waiting oslo's back-off between rounds; returns [`RpcError::Shutdown`] when
    /// `shutdown` fires first.
    pub async fn connect(
        &self,
        name: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Connection, RpcError> {
        let hosts = &self.cfg.transport_url.hosts;
        let mut attempt: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return Err(RpcError::Shutdown);
            }
            let i = self.next_host.fetch_add(1, Ordering::Relaxed) % hosts.len().max(1);
            let Some(h) = hosts.get(i) else {
                return Err(RpcError::ConnectionLost("no broker host configured".into()));
            };
            let res = tokio::select! {
                r = self.connect_host(h, name) => r,
                _ = stopped(shutdown) => return Err(RpcError::Shutdown),
            };
            match res {
                Ok(c) => {
                    // stay on the host that answered next time
                    self.next_host.store(i, Ordering::Relaxed);
                    tracing::info!(broker = %h.redacted(), connection = name, "connected to AMQP broker");
                    return Ok(c);
                }
                Err(e) => {
                    let delay = self.cfg.reconnect_delay(attempt);
                    tracing::warn!(broker = %h.redacted(), error = %e, retry_in = ?delay,
                        "AMQP broker unreachable");
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped(shutdown) => return Err(RpcError::Shutdown),
                    }
                }
            }
        }
    }
}

/// Resolves once `rx` holds `true` or its sender is gone.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// The properties kombu puts on every oslo message; `expiration` (ms) for calls.
pub fn message_properties(expiration: Option<Duration>) -> lapin::BasicProperties {
    let p = lapin::BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(lapin::types::FieldTable::default());
    match expiration {
        Some(t) => p.with_expiration(t.as_millis().to_string().into()),
        None => p,
    }
}

/// Publish and wait for the broker's confirm (the channel must be in confirm
/// mode). `Ok(false)` when a mandatory message could not be routed.
pub async fn publish_confirmed(
    ch: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    body: &[u8],
    props: lapin::BasicProperties,
) -> Result<bool, RpcError> {
    let confirm = ch
        .basic_publish(
            exchange,
            routing_key,
            lapin::options::BasicPublishOptions {
                mandatory,
                ..Default::default()
            },
            body,
            props,
        )
        .await?
        .await?;
    match confirm {
        lapin::publisher_confirm::Confirmation::Ack(None)
        | lapin::publisher_confirm::Confirmation::NotRequested => Ok(true),
        lapin::publisher_confirm::Confirmation::Ack(Some(_)) => Ok(false),
        lapin::publisher_confirm::Confirmation::Nack(_) => Err(RpcError::Nacked),
    }
}
