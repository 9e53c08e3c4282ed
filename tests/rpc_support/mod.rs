//! Shared helpers of the RPC integration tests: a throw-away RabbitMQ vhost per
//! test, the Python oslo.messaging peer (tests/python/rpc_peer.py) and a Rust
//! test endpoint.
#![allow(dead_code)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nova_docker::context::RequestContext;
use nova_docker::exception::NovaException;
use nova_docker::rpc::{
    Dispatcher, Endpoint, EndpointTarget, RabbitConfig, RpcServer, ServerState, TransportUrl,
};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::common;

pub fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A RabbitMQ vhost of its own, deleted (with every queue in it) on drop, so
/// that no test sees another's leftovers.
pub struct Vhost {
    pub name: String,
    pub url: String,
}

impl Vhost {
    pub fn new() -> Self {
        let name = format!("nd-rpc-{}", uuid::Uuid::new_v4().simple());
        let base = common::transport_url();
        let parsed = TransportUrl::parse(&base).expect("test transport URL");
        let user = parsed.hosts[0].username.clone();
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, &user, ".*", ".*", ".*"]);
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let path = base[scheme_end..]
            .find('/')
            .map(|i| i + scheme_end)
            .unwrap_or(base.len());
        let url = format!("{}/{}", &base[..path], name);
        Vhost { name, url }
    }

    /// Our config for this vhost; reconnects quickly.
    pub fn config(&self) -> RabbitConfig {
        let mut c = RabbitConfig::new(TransportUrl::parse(&self.url).expect("vhost URL"));
        c.rabbit_retry_interval = Duration::from_millis(500);
        c.rabbit_retry_backoff = Duration::from_millis(500);
        c.rabbit_interval_max = Duration::from_secs(1);
        c.heartbeat_timeout_threshold = 10;
        c
    }

    /// Queue names in this vhost.
    pub fn queues(&self) -> Vec<String> {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["-q", "list_queues", "-p", &self.name, "name"])
            .output()
            .expect("rabbitmqctl list_queues");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && l != "name")
            .collect()
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .output();
    }
}

fn peer_script() -> String {
    common::test_file("python/rpc_peer.py")
        .display()
        .to_string()
}

/// Run calls/casts from Python; one JSON value per entry.
pub async fn py_client(url: &str, calls: Value) -> Vec<Value> {
    py_client_mode(url, calls, None).await
}

/// [`py_client`] with `amqp_durable_queues` ("durable") or `rabbit_quorum_queue` ("quorum").
pub async fn py_client_mode(url: &str, calls: Value, mode: Option<&str>) -> Vec<Value> {
    let n = calls.as_array().map_or(0, Vec::len);
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new(common::python())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg(peer_script())
            .args(["client", url, &calls.to_string()])
            .args(mode)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("python client did not finish within 180 s")
    .expect("python client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let res: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(
        res.len(),
        n,
        "python client printed {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    res
}

/// A Python oslo.messaging RPC server, killed on drop.
pub struct PyServer {
    child: Child,
}

impl PyServer {
    pub async fn start(url: &str, topics: &str, host: &str, mode: Option<&str>) -> Self {
        let mut cmd = Command::new(common::python());
        cmd.env("PYTHONDONTWRITEBYTECODE", "1")
            .arg(peer_script())
            .args(["server", url, topics, host]);
        if let Some(m) = mode {
            cmd.arg(m);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(90), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if l.trim() == "READY" {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            ready,
            Ok(true),
            "python server for {topics} did not get ready (a declare refused?)"
        );
        PyServer { child }
    }

    pub async fn stop(mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// What a test endpoint saw of a cast.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub ctx: RequestContext,
    pub args: Map<String, Value>,
}

/// A compute-like endpoint (6.5): `echo` returns its `value`, `fail` raises
/// InstanceNotFound, `sleep` sleeps `secs` then returns "slept", `record`
/// reports what it got on a channel.
pub struct TestEndpoint {
    pub seen: mpsc::UnboundedSender<Seen>,
}

#[async_trait]
impl Endpoint for TestEndpoint {
    fn target(&self) -> EndpointTarget {
        EndpointTarget::new(None, "6.5", &["echo", "fail", "sleep", "record", "hang"])
    }

    async fn dispatch(
        &self,
        ctx: RequestContext,
        method: &str,
        args: Map<String, Value>,
        _version: &str,
    ) -> Result<Value, NovaException> {
        match method {
            "echo" => Ok(args.get("value").cloned().unwrap_or(Value::Null)),
            "fail" => Err(NovaException::instance_not_found(
                args.get("instance_uuid")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
            )),
            "sleep" => {
                let secs = args.get("secs").and_then(Value::as_f64).unwrap_or(1.0);
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                Ok(json!("slept"))
            }
            "record" => {
                let _ = self.seen.send(Seen {
                    method: method.into(),
                    ctx,
                    args,
                });
                Ok(Value::Null)
            }
            // reports, then never ends (a handler cut off by a crash)
            "hang" => {
                let _ = self.seen.send(Seen {
                    method: method.into(),
                    ctx,
                    args,
                });
                std::future::pending::<()>().await;
                Ok(Value::Null)
            }
            other => Err(NovaException::internal(format!("unexpected {other}"))),
        }
    }
}

/// A running server of ours.
pub struct OurServer {
    pub stop: watch::Sender<bool>,
    pub state: watch::Receiver<ServerState>,
    pub task: JoinHandle<Result<(), nova_docker::rpc::RpcError>>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
}

impl OurServer {
    pub async fn start(cfg: RabbitConfig, host: &str, topics: &[&str]) -> Self {
        Self::start_acking_when_started(cfg, host, topics, &[]).await
    }

    /// A server that leaves the acknowledgement of casts of `late` to their handler.
    pub async fn start_acking_when_started(
        cfg: RabbitConfig,
        host: &str,
        topics: &[&str],
        late: &[&str],
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "nova_docker=info".into()),
            ))
            .with_test_writer()
            .try_init();
        let (tx, seen) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher::new("compute").with(Arc::new(TestEndpoint { seen: tx }));
        let server = RpcServer::new(cfg, host, topics, dispatcher)
            .expect("server")
            .ack_when_started(late);
        let state = server.state();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(server.run(stop_rx));
        let mut s = OurServer {
            stop,
            state,
            task,
            seen,
        };
        s.wait_ready(1).await;
        s
    }

    /// Wait (at most 30 s) until the server consumes on connection `generation`.
    pub async fn wait_ready(&mut self, generation: u64) {
        self.wait_ready_within(generation, Duration::from_secs(30))
            .await
    }

    pub async fn wait_ready_within(&mut self, generation: u64, within: Duration) {
        let r = tokio::time::timeout(
            within,
            self.state.wait_for(
                |s| matches!(s, ServerState::Ready { generation: g } if *g >= generation),
            ),
        )
        .await
        .map(|r| r.map(|s| s.clone()));
        assert!(
            matches!(r, Ok(Ok(_))),
            "our server did not get ready (generation {generation}): {:?}",
            *self.state.borrow()
        );
    }

    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let r = tokio::time::timeout(Duration::from_secs(40), self.task)
            .await
            .expect("server stops");
        assert!(matches!(r, Ok(Ok(()))), "server ended with {r:?}");
    }
}

/// A Python-style context.
pub fn ctxt(user: &str, project: &str) -> (Value, String) {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    (
        json!({"user_id": user, "project_id": project, "request_id": request_id,
               "roles": ["member"], "is_admin": false, "auth_token": "tok"}),
        request_id,
    )
}
