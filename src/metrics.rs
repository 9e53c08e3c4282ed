//! Prometheus metrics: what the daemon did, counted where it happens and served
//! in the OpenMetrics text format on `[metrics] listen_address` (unset: off, no
//! port is opened; the counting itself is a few atomics).
//!
//! Families (all `nova_docker_...`):
//! - `rpc_requests_total{method,outcome}`, `rpc_request_duration_seconds{method}`:
//!   the compute RPC methods served (`outcome` is `ok` or the Nova exception the
//!   caller got);
//! - `conductor_call_duration_seconds{method,outcome}`: round trips to the
//!   conductor (`outcome`: `ok`, `timeout`, `remote_error`, `error`);
//! - `docker_operation_duration_seconds{operation,outcome}`: each driver
//!   operation on the Docker engine (a spawn is a create, a start and an inspect);
//! - `instances{state}`: our instances by power state (`running`, `paused`,
//!   `suspended`, `shutdown`, `crashed`, `pending`), from each operation's answer
//!   and each listing;
//! - `image_bytes_total{source}`: image data loaded into Docker from `glance` or a
//!   `registry`; `image_cache_total{result}`: boots whose image was a `hit` or a
//!   `miss` (fetched);
//! - `vif_plug_duration_seconds{driver}`: a port's datapath plugged;
//! - `reconnects_total{connection}`: the broker connections made again
//!   (`rpc_server`, `rpc_client`);
//! - `builds_rescheduled_total`: builds that failed here and went back to the
//!   conductor for another host.
//!
//! Label values come from a closed set (RPC method names, exception classes,
//! driver operations): no instance id, no user input, no secret.

use std::sync::OnceLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{ConfigError, Ini};

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsConfig {
    /// `host:port` to serve `/metrics` on; None: off.
    pub listen_address: Option<std::net::SocketAddr>,
}

impl MetricsConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let g = ini.group("metrics");
        let listen_address = match g.opt_nonempty("listen_address")? {
            None => None,
            Some(v) => Some(v.parse().map_err(|e| ConfigError::Invalid {
                group: "metrics".into(),
                option: "listen_address".into(),
                reason: format!("{v:?} is not host:port ({e})"),
            })?),
        };
        Ok(MetricsConfig { listen_address })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodOutcome {
    method: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Source {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheResult {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VifDriver {
    driver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Connection {
    connection: &'static str,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to about 65 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

struct Metrics {
    registry: Registry,
    rpc: Family<MethodOutcome, Counter>,
    rpc_seconds: Hist<Method>,
    conductor_seconds: Hist<MethodOutcome>,
    docker_seconds: Hist<Operation>,
    instances: Family<State, Gauge>,
    image_bytes: Family<Source, Counter>,
    image_cache: Family<CacheResult, Counter>,
    vif_seconds: Hist<VifDriver>,
    reconnects: Family<Connection, Counter>,
    rescheduled: Counter,
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let mut m = Metrics {
            registry: Registry::with_prefix("nova_docker"),
            rpc: Family::default(),
            rpc_seconds: Family::new_with_constructor(seconds),
            conductor_seconds: Family::new_with_constructor(seconds),
            docker_seconds: Family::new_with_constructor(seconds),
            instances: Family::default(),
            image_bytes: Family::default(),
            image_cache: Family::default(),
            vif_seconds: Family::new_with_constructor(seconds),
            reconnects: Family::default(),
            rescheduled: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "rpc_requests",
            "Compute RPC requests served, by method and outcome",
            m.rpc.clone(),
        );
        r.register(
            "rpc_request_duration_seconds",
            "Time to serve a compute RPC request",
            m.rpc_seconds.clone(),
        );
        r.register(
            "conductor_call_duration_seconds",
            "Round trips to nova-conductor",
            m.conductor_seconds.clone(),
        );
        r.register(
            "docker_operation_duration_seconds",
            "Driver operations on the Docker engine",
            m.docker_seconds.clone(),
        );
        r.register(
            "instances",
            "Our instances by power state",
            m.instances.clone(),
        );
        r.register(
            "image_bytes",
            "Image data loaded into Docker, by source",
            m.image_bytes.clone(),
        );
        r.register(
            "image_cache",
            "Boots whose image was in the engine (hit) or fetched (miss)",
            m.image_cache.clone(),
        );
        r.register(
            "vif_plug_duration_seconds",
            "Time to plug a port's datapath",
            m.vif_seconds.clone(),
        );
        r.register(
            "reconnects",
            "Broker connections made again",
            m.reconnects.clone(),
        );
        r.register(
            "builds_rescheduled",
            "Builds that failed here and went back to the conductor for another host",
            m.rescheduled.clone(),
        );
        m
    })
}

/// A compute RPC request served.
pub fn rpc_served(method: &str, outcome: &str, started: Instant) {
    let m = metrics();
    m.rpc
        .get_or_create(&MethodOutcome {
            method: method.to_string(),
            outcome: outcome.to_string(),
        })
        .inc();
    m.rpc_seconds
        .get_or_create(&Method {
            method: method.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// A round trip to the conductor.
pub fn conductor_call(method: &str, outcome: &str, started: Instant) {
    metrics()
        .conductor_seconds
        .get_or_create(&MethodOutcome {
            method: method.to_string(),
            outcome: outcome.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// A driver operation on the engine.
pub fn docker_operation(operation: &'static str, ok: bool, started: Instant) {
    metrics()
        .docker_seconds
        .get_or_create(&Operation {
            operation,
            outcome: if ok { "ok" } else { "error" },
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Our instances by power state (Nova's names: `running`, `paused`, ...).
pub fn instances(counts: &[(&'static str, i64)]) {
    let m = metrics();
    for (state, n) in counts {
        m.instances.get_or_create(&State { state }).set(*n);
    }
}

/// Image bytes loaded from `source` (`glance` or `registry`).
pub fn image_loaded(source: &'static str, bytes: u64) {
    metrics()
        .image_bytes
        .get_or_create(&Source { source })
        .inc_by(bytes);
}

/// A boot's image was in the engine already (`hit`) or had to be fetched.
pub fn image_cache(hit: bool) {
    metrics()
        .image_cache
        .get_or_create(&CacheResult {
            result: if hit { "hit" } else { "miss" },
        })
        .inc();
}

/// A port's datapath plugged by `driver`.
pub fn vif_plugged(driver: &str, started: Instant) {
    metrics()
        .vif_seconds
        .get_or_create(&VifDriver {
            driver: driver.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// A broker connection made again (`rpc_server` or `rpc_client`).
pub fn reconnected(connection: &'static str) {
    metrics()
        .reconnects
        .get_or_create(&Connection { connection })
        .inc();
}

/// A build handed back to the conductor for another host.
pub fn build_rescheduled() {
    metrics().rescheduled.inc();
}

/// Everything, in the OpenMetrics text format.
pub fn render() -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &metrics().registry)
        .expect("writing to a String does not fail");
    out
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve `GET /metrics` on `listener` until `tasks` stops. One short
/// HTTP/1.1 exchange per connection (what a Prometheus scrape is).
pub async fn serve(listener: tokio::net::TcpListener, tasks: crate::tasks::Tasks) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = tasks.stopping() => return,
        };
        let Ok((mut sock, _)) = conn else { continue };
        tasks.spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                let mut head = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let target = line.split_whitespace().take(2).collect::<Vec<_>>();
                let (status, ctype, body) = match target.as_slice() {
                    ["GET", path] if *path == "/metrics" || path.starts_with("/metrics?") => {
                        ("200 OK", CONTENT_TYPE, render())
                    }
                    ["GET", _] => ("404 Not Found", "text/plain", "see /metrics\n".into()),
                    _ => (
                        "405 Method Not Allowed",
                        "text/plain",
                        "only GET /metrics\n".into(),
                    ),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_counted_is_rendered() {
        let t = Instant::now();
        rpc_served("test_method_x", "ok", t);
        rpc_served("test_method_x", "InstanceNotFound", t);
        docker_operation("spawn", true, t);
        image_loaded("registry", 1234);
        image_cache(false);
        instances(&[("running", 3), ("shutdown", 1)]);
        reconnected("rpc_server");
        let text = render();
        assert!(
            text.contains(
                r#"nova_docker_rpc_requests_total{method="test_method_x",outcome="InstanceNotFound"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"nova_docker_rpc_request_duration_seconds_count{method="test_method_x"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"nova_docker_docker_operation_duration_seconds_bucket{le="0.001",operation="spawn",outcome="ok"}"#)
            || text.contains(r#"nova_docker_docker_operation_duration_seconds_bucket{operation="spawn",outcome="ok",le="0.001"}"#), "{text}");
        assert!(
            text.contains(r#"nova_docker_image_bytes_total{source="registry"} 1234"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nova_docker_instances{state="running"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nova_docker_reconnects_total{connection="rpc_server"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn off_unless_an_address_is_set() {
        let ini = |t: &str| MetricsConfig::from_ini(&Ini::parse(t).unwrap());
        assert_eq!(ini("").unwrap().listen_address, None);
        assert_eq!(
            ini("[metrics]\nlisten_address = 127.0.0.1:9520\n")
                .unwrap()
                .listen_address,
            Some("127.0.0.1:9520".parse().unwrap())
        );
        let e = ini("[metrics]\nlisten_address = nowhere\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_address"), "{e}");
    }

    #[tokio::test]
    async fn a_scrape_gets_the_text_and_other_paths_do_not() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let tasks = crate::tasks::Tasks::new();
        tasks.spawn(serve(l, tasks.clone()));
        image_cache(true);
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(
            ok.contains(r#"nova_docker_image_cache_total{result="hit"}"#),
            "{ok}"
        );
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        assert!(tasks.shut_down(std::time::Duration::from_secs(5)).await);
    }
}
