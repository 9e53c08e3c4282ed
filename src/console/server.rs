//! The listeners Nova's serial proxy connects to: one per instance whose
//! console was asked for, on `proxyclient_address`, at the first free port of
//! `port_range`.
//!
//! Access is as narrow as Nova's and a little narrower: the port is open only
//! from the `get_serial_console` that made a token until no token of it can be
//! valid any more (`[consoleauth] token_ttl` with no session and no new token),
//! and a connection is taken only within a few seconds after the proxy, having
//! checked a user's token, asked `validate_console_port` for this instance and
//! port. Any other connection is closed at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::bridge::{self, End};
use super::ConsoleConfig;
use crate::exception::{Class, NovaException};
use crate::tasks::Tasks;
use crate::virt::ComputeDriver;

/// How long after `validate_console_port` the proxy's connection is expected.
pub const ADMIT_WINDOW: Duration = Duration::from_secs(10);
/// How often an unused listener checks whether it can close.
const IDLE_CHECK: Duration = Duration::from_secs(5);

#[derive(Debug, Error, PartialEq)]
pub enum ConsoleError {
    #[error("the serial console is not enabled on this host ([serial_console] enabled)")]
    Disabled { console_type: String },
    #[error("no free port in {start}:{stop} on {host}")]
    PortsExhausted { host: String, start: u16, stop: u16 },
}

impl From<ConsoleError> for NovaException {
    fn from(e: ConsoleError) -> Self {
        match e {
            ConsoleError::Disabled { console_type } => NovaException::nova(
                Class::ConsoleTypeUnavailable,
                format!("Unavailable console type {console_type}."),
                json!({"console_type": console_type, "code": 400}),
            ),
            ConsoleError::PortsExhausted { host, .. } => NovaException::nova(
                Class::SocketPortRangeExhaustedException,
                format!("Not able to acquire a free port for {host}"),
                json!({"host": host, "code": 500}),
            ),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One instance's listener.
struct Listener {
    port: u16,
    closed: CancellationToken,
    gate: Mutex<Gate>,
}

struct Gate {
    /// Until when each announced connection may arrive.
    admitted: Vec<Instant>,
    /// The last token made or session ended.
    last_used: Instant,
    sessions: usize,
}

impl Listener {
    fn touch(&self) {
        lock(&self.gate).last_used = Instant::now();
    }

    fn admit(&self) {
        lock(&self.gate)
            .admitted
            .push(Instant::now() + ADMIT_WINDOW);
    }

    /// Take one announced connection, if there is one still in its window.
    fn take_admission(&self) -> bool {
        let mut g = lock(&self.gate);
        let now = Instant::now();
        g.admitted.retain(|until| *until > now);
        if g.admitted.is_empty() {
            return false;
        }
        g.admitted.remove(0);
        g.sessions += 1;
        true
    }

    fn session_ended(&self) {
        let mut g = lock(&self.gate);
        g.sessions = g.sessions.saturating_sub(1);
        g.last_used = Instant::now();
    }

    /// No session, no connection announced, and no token that can still be valid.
    fn idle(&self, ttl: Duration) -> bool {
        let g = lock(&self.gate);
        let now = Instant::now();
        g.sessions == 0 && g.admitted.iter().all(|u| *u <= now) && g.last_used.elapsed() >= ttl
    }
}

type Open = Arc<Mutex<HashMap<String, Arc<Listener>>>>;

/// The serial consoles of this host's instances.
pub struct ConsoleServer {
    cfg: ConsoleConfig,
    driver: Arc<dyn ComputeDriver>,
    tasks: Tasks,
    open: Open,
}

impl ConsoleServer {
    pub fn new(cfg: ConsoleConfig, driver: Arc<dyn ComputeDriver>, tasks: Tasks) -> Self {
        ConsoleServer {
            cfg,
            driver,
            tasks,
            open: Arc::default(),
        }
    }

    pub fn config(&self) -> &ConsoleConfig {
        &self.cfg
    }

    /// The port of the instance's listener, opened now if it has none. Each call
    /// stands for a new token: the listener stays at least `token_ttl` more.
    pub fn open(&self, uuid: &str, console_type: &str) -> Result<u16, ConsoleError> {
        if !self.cfg.enabled {
            return Err(ConsoleError::Disabled {
                console_type: console_type.to_string(),
            });
        }
        let mut open = lock(&self.open);
        if let Some(l) = open.get(uuid).filter(|l| !l.closed.is_cancelled()) {
            l.touch();
            return Ok(l.port);
        }
        let (start, stop) = self.cfg.ports;
        let taken: Vec<u16> = open.values().map(|l| l.port).collect();
        let addr = self.cfg.proxyclient_address;
        // bound here, under the lock, so that two requests never race for a port
        let bound = (start..stop).filter(|p| !taken.contains(p)).find_map(|p| {
            std::net::TcpListener::bind(SocketAddr::new(addr, p))
                .ok()
                .map(|s| (p, s))
        });
        let Some((port, std_listener)) = bound else {
            return Err(ConsoleError::PortsExhausted {
                host: addr.to_string(),
                start,
                stop,
            });
        };
        let socket = std_listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(std_listener))
            .map_err(|e| {
                warn!(port, error = %e, "console: cannot use the bound port");
                ConsoleError::PortsExhausted {
                    host: addr.to_string(),
                    start,
                    stop,
                }
            })?;
        let l = Arc::new(Listener {
            port,
            closed: CancellationToken::new(),
            gate: Mutex::new(Gate {
                admitted: Vec::new(),
                last_used: Instant::now(),
                sessions: 0,
            }),
        });
        open.insert(uuid.to_string(), l.clone());
        info!(instance = %uuid, %addr, port, "console: listening for the serial proxy");
        self.tasks.spawn(serve(
            uuid.to_string(),
            l,
            socket,
            self.open.clone(),
            self.driver.clone(),
            self.tasks.clone(),
            self.cfg.token_ttl,
        ));
        Ok(port)
    }

    /// `validate_console_port`: whether `port` is this instance's console; if
    /// so, the proxy's connection that follows is let in.
    pub fn admit(&self, uuid: &str, port: &str) -> bool {
        let open = lock(&self.open);
        match open.get(uuid).filter(|l| !l.closed.is_cancelled()) {
            Some(l) if l.port.to_string() == port.trim() => {
                l.admit();
                true
            }
            _ => false,
        }
    }

    /// The instance's listener port, while it has one.
    pub fn port_of(&self, uuid: &str) -> Option<u16> {
        lock(&self.open)
            .get(uuid)
            .filter(|l| !l.closed.is_cancelled())
            .map(|l| l.port)
    }

    /// Close the instance's listener and end its sessions (it is deleted).
    pub fn close(&self, uuid: &str) {
        if let Some(l) = lock(&self.open).remove(uuid) {
            l.closed.cancel();
            info!(instance = %uuid, port = l.port, "console: closed");
        }
    }
}

async fn serve(
    uuid: String,
    l: Arc<Listener>,
    socket: TcpListener,
    open: Open,
    driver: Arc<dyn ComputeDriver>,
    tasks: Tasks,
    ttl: Duration,
) {
    let mut tick = tokio::time::interval(IDLE_CHECK.min(ttl));
    loop {
        tokio::select! {
            _ = l.closed.cancelled() => break,
            _ = tasks.stopping() => break,
            _ = tick.tick() => {
                if l.idle(ttl) {
                    info!(instance = %uuid, port = l.port, "console: no token can be valid any more, closing");
                    break;
                }
            }
            r = socket.accept() => match r {
                Ok((conn, peer)) => {
                    if !l.take_admission() {
                        warn!(instance = %uuid, port = l.port, %peer,
                              "console: connection refused: not announced by the serial proxy (validate_console_port)");
                        continue;
                    }
                    info!(instance = %uuid, port = l.port, %peer, "console: session opened");
                    tasks.spawn(session(uuid.clone(), conn, l.clone(), driver.clone(), tasks.clone()));
                }
                Err(e) => {
                    warn!(instance = %uuid, error = %e, "console: accept failed");
                    if !tasks.sleep(Duration::from_millis(100)).await {
                        break;
                    }
                }
            },
        }
    }
    l.closed.cancel();
    let mut o = lock(&open);
    if o.get(&uuid).is_some_and(|cur| Arc::ptr_eq(cur, &l)) {
        o.remove(&uuid);
    }
}

async fn session(
    uuid: String,
    mut conn: TcpStream,
    l: Arc<Listener>,
    driver: Arc<dyn ComputeDriver>,
    tasks: Tasks,
) {
    let _ = conn.set_nodelay(true);
    match driver.open_console(&uuid).await {
        Ok(io) => {
            let kind = io.kind;
            let closed = l.closed.clone();
            let stop = async move {
                tokio::select! {
                    _ = closed.cancelled() => {}
                    _ = tasks.stopping() => {}
                }
            };
            let end = bridge::pump(conn, io, stop).await;
            let why = match end {
                End::ClientGone => "the user left",
                End::InstanceEnded => "the instance side ended",
                End::Stopping => "closed",
            };
            info!(instance = %uuid, kind = kind.name(), why, "console: session ended");
        }
        Err(e) => {
            warn!(instance = %uuid, error = %e, "console: cannot open the instance's console");
            let _ = conn
                .write_all(format!("\r\nNo console: {e}\r\n").as_bytes())
                .await;
            let _ = conn.shutdown().await;
        }
    }
    l.session_ended();
}
