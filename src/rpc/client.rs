//! The RPC client: call, cast and fanout cast to a [`Target`], with one
//! `reply_<uuid>` queue per client and publisher confirms. A background task keeps
//! the connection (reconnecting, redeclaring the reply queue); calls outstanding
//! when it drops fail at once with [`RpcError::ConnectionLost`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use serde_json::{Map, Value};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::context::RequestContext;

use super::config::RabbitConfig;
use super::connection::{message_properties, publish_confirmed, stopped, Connector};
use super::envelope::{new_id, ReplyFrame, ReplyTo, Request};
use super::failure::RemoteError;
use super::topology::{
    declare_exchange, declare_queue, fanout_exchange, is_durable_mismatch, notification_queue,
    reply_queue, topic_exchange,
};
use super::RpcError;

/// Where a message goes (oslo `Target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub topic: String,
    /// Send to `topic.server` instead of the shared `topic` queue.
    pub server: Option<String>,
    pub namespace: Option<String>,
    /// The version the message asks for, e.g. `"3.0"`.
    pub version: String,
    /// Cast to every server of the topic (`topic_fanout` exchange).
    pub fanout: bool,
    /// Exchange; `None` = `control_exchange`.
    pub exchange: Option<String>,
}

impl Target {
    pub fn new(topic: &str, version: &str) -> Self {
        Target {
            topic: topic.into(),
            server: None,
            namespace: None,
            version: version.into(),
            fanout: false,
            exchange: None,
        }
    }

    pub fn server(mut self, server: &str) -> Self {
        self.server = Some(server.into());
        self
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    pub fn fanout(mut self, fanout: bool) -> Self {
        self.fanout = fanout;
        self
    }

    pub fn exchange(mut self, exchange: &str) -> Self {
        self.exchange = Some(exchange.into());
        self
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, RpcError>>>>>;

/// The channel of the current connection and the exchanges declared on it.
struct Link {
    connection: Arc<lapin::Connection>,
    channel: Channel,
    declared: Mutex<HashSet<String>>,
}

/// A client of oslo.messaging RPC servers. Cheap to clone; the connection closes
/// when the last clone is dropped or [`RpcClient::close`] is called.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: Arc<RabbitConfig>,
    reply_q: String,
    pending: Pending,
    link: watch::Receiver<Option<Arc<Link>>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("reply_q", &self.inner.reply_q)
            .finish()
    }
}

impl RpcClient {
    /// Start the client's connection task and wait until the reply queue is
    /// consumed, or fail when no broker answers within `rpc_response_timeout`.
    pub async fn connect(cfg: RabbitConfig) -> Result<Self, RpcError> {
        let cfg = Arc::new(cfg);
        let connector = Connector::new(cfg.clone())?;
        let reply_q = format!("reply_{}", new_id());
        let pending: Pending = Arc::default();
        let (link_tx, link_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(connection_task(
            connector,
            reply_q.clone(),
            pending.clone(),
            link_tx,
            stop_rx,
        ));
        let client = RpcClient {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                reply_q,
                pending,
                link: link_rx,
                stop: stop_tx,
                task: Mutex::new(Some(task)),
            }),
        };
        client.link(cfg.rpc_response_timeout).await?;
        Ok(client)
    }

    /// The name of this client's reply queue.
    pub fn reply_queue(&self) -> &str {
        &self.inner.reply_q
    }

    /// Call with `rpc_response_timeout`.
    pub async fn call(
        &self,
        ctx: &RequestContext,
        target: &Target,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RpcError> {
        self.call_with_timeout(
            ctx,
            target,
            method,
            args,
            self.inner.cfg.rpc_response_timeout,
        )
        .await
    }

    /// Call and wait at most `timeout` for the result. A remote exception comes
    /// back as [`RpcError::Remote`], no answer as [`RpcError::Timeout`].
    pub async fn call_with_timeout(
        &self,
        ctx: &RequestContext,
        target: &Target,
        method: &str,
        args: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let link = self.link(timeout).await?;
        let msg_id = new_id();
        let req = Request {
            method: method.into(),
            args,
            version: target.version.clone(),
            namespace: target.namespace.clone(),
            context: ctx.clone(),
            unique_id: None,
            reply_to: Some(ReplyTo {
                msg_id: msg_id.clone(),
                reply_q: self.inner.reply_q.clone(),
            }),
            call_monitor_timeout: None,
        };
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.inner.pending.lock() {
            p.insert(msg_id.clone(), tx);
        }
        let expiration = timeout.max(Duration::from_millis(1));
        if let Err(e) = self.publish(&link, target, &req, Some(expiration)).await {
            self.forget(&msg_id);
            return Err(e);
        }
        tracing::debug!(%method, topic = %target.topic, %msg_id, "RPC call sent");
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RpcError::ConnectionLost("the client was closed".into())),
            Err(_) => {
                self.forget(&msg_id);
                Err(RpcError::Timeout {
                    method: method.into(),
                    timeout,
                })
            }
        }
    }

    /// Cast (no reply); a fanout cast when `target.fanout`.
    pub async fn cast(
        &self,
        ctx: &RequestContext,
        target: &Target,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<(), RpcError> {
        let link = self.link(self.inner.cfg.rpc_response_timeout).await?;
        let req = Request {
            method: method.into(),
            args,
            version: target.version.clone(),
            namespace: target.namespace.clone(),
            context: ctx.clone(),
            unique_id: None,
            reply_to: None,
            call_monitor_timeout: None,
        };
        self.publish(&link, target, &req, None).await
    }

    /// Publish a notification body (see [`crate::notifications`]) to the control
    /// exchange under `routing_key` (`<topic>.<priority>`), its queue declared
    /// first as oslo.messaging's notifier does.
    pub async fn notify(&self, routing_key: &str, body: &[u8]) -> Result<(), RpcError> {
        let link = self.link(self.inner.cfg.rpc_response_timeout).await?;
        let cfg = &self.inner.cfg;
        let ex = topic_exchange(cfg, &cfg.control_exchange);
        self.ensure_exchange(&link, &ex).await?;
        let key = format!("queue:{routing_key}");
        let known = link
            .declared
            .lock()
            .map(|d| d.contains(&key))
            .unwrap_or(false);
        if !known {
            // on a channel of its own: a consumer's queue of other flags (406)
            // closes that channel only, and the binding it has serves as well
            let ch = link.connection.create_channel().await?;
            match declare_queue(&ch, &notification_queue(cfg, &ex.name, routing_key)).await {
                Ok(()) => {
                    let _ = ch.close(200, "declared").await;
                }
                Err(e) => {
                    tracing::debug!(queue = %routing_key, error = %e, "notification queue not declared")
                }
            }
            if let Ok(mut d) = link.declared.lock() {
                d.insert(key);
            }
        }
        publish_confirmed(
            &link.channel,
            &ex.name,
            routing_key,
            false,
            body,
            message_properties(None),
        )
        .await
        .map(|_| ())
    }

    /// Stop the connection task; outstanding calls fail.
    pub async fn close(&self) {
        self.inner.stop.send_replace(true);
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    fn forget(&self, msg_id: &str) {
        if let Ok(mut p) = self.inner.pending.lock() {
            p.remove(msg_id);
        }
    }

    /// The current link, waiting up to `wait` for a (re)connection.
    async fn link(&self, wait: Duration) -> Result<Arc<Link>, RpcError> {
        let mut rx = self.inner.link.clone();
        let r = tokio::time::timeout(wait, rx.wait_for(|l| l.is_some())).await;
        match r {
            Ok(Ok(l)) => l
                .clone()
                .ok_or_else(|| RpcError::ConnectionLost("not connected".into())),
            Ok(Err(_)) => Err(RpcError::Shutdown),
            Err(_) => Err(RpcError::ConnectionLost(format!(
                "no broker connection within {wait:?}"
            ))),
        }
    }

    async fn publish(
        &self,
        link: &Link,
        target: &Target,
        req: &Request,
        expiration: Option<Duration>,
    ) -> Result<(), RpcError> {
        let cfg = &self.inner.cfg;
        let (exchange, routing_key) = if target.fanout {
            let ex = fanout_exchange(&target.topic);
            self.ensure_exchange(link, &ex).await?;
            (ex.name, String::new())
        } else {
            let name = target
                .exchange
                .clone()
                .unwrap_or_else(|| cfg.control_exchange.clone());
            self.ensure_exchange(link, &topic_exchange(cfg, &name))
                .await?;
            let rk = match &target.server {
                Some(s) => format!("{}.{}", target.topic, s),
                None => target.topic.clone(),
            };
            (name, rk)
        };
        publish_confirmed(
            &link.channel,
            &exchange,
            &routing_key,
            false,
            &req.encode(),
            message_properties(expiration),
        )
        .await
        .map(|_| ())
    }

    async fn ensure_exchange(
        &self,
        link: &Link,
        ex: &super::topology::ExchangeDecl,
    ) -> Result<(), RpcError> {
        let known = link
            .declared
            .lock()
            .map(|d| d.contains(&ex.name))
            .unwrap_or(false);
        if known {
            return Ok(());
        }
        // Declared on a channel of its own: a 406 closes that channel only.
        let ch = link.connection.create_channel().await?;
        match declare_exchange(&ch, ex).await {
            Ok(()) => {
                let _ = ch.close(200, "declared").await;
            }
            Err(e) if ex.durable && is_durable_mismatch(&e) => {
                // as oslo's topic_send: use the exchange as the broker has it
                tracing::warn!(exchange = %ex.name, "exchange exists non-durable; declaring it so as oslo.messaging does");
                let ch = link.connection.create_channel().await?;
                let mut nd = ex.clone();
                nd.durable = false;
                declare_exchange(&ch, &nd).await?;
                let _ = ch.close(200, "declared").await;
            }
            Err(e) => return Err(e.into()),
        }
        if let Ok(mut d) = link.declared.lock() {
            d.insert(ex.name.clone());
        }
        Ok(())
    }
}

fn fail_all(pending: &Pending, why: &str) {
    let drained: Vec<_> = match pending.lock() {
        Ok(mut p) => p.drain().collect(),
        Err(_) => return,
    };
    if !drained.is_empty() {
        tracing::warn!(
            calls = drained.len(),
            "failing outstanding RPC calls: {why}"
        );
    }
    for (_, tx) in drained {
        let _ = tx.send(Err(RpcError::ConnectionLost(why.to_string())));
    }
}

fn route_reply(pending: &Pending, body: &[u8]) {
    let frame = match ReplyFrame::decode(body) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "malformed RPC reply dropped");
            return;
        }
    };
    if frame.is_heartbeat() {
        tracing::debug!(msg_id = %frame.msg_id, "call-monitor heartbeat");
        return;
    }
    if !frame.ending && frame.failure.is_none() {
        // pre-"ending" protocol: a result followed by an ending frame; we keep none
        return;
    }
    let tx = pending
        .lock()
        .ok()
        .and_then(|mut p| p.remove(&frame.msg_id));
    let Some(tx) = tx else {
        tracing::debug!(msg_id = %frame.msg_id, "reply for no outstanding call (timed out?)");
        return;
    };
    let r = match frame.failure {
        Some(f) => Err(RpcError::Remote(Box::new(RemoteError::parse(&f)))),
        None => Ok(frame.result),
    };
    let _ = tx.send(r);
}

async fn connection_task(
    connector: Connector,
    reply_q: String,
    pending: Pending,
    link_tx: watch::Sender<Option<Arc<Link>>>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = connector.config().clone();
    let mut set_up_failures = 0u32;
    let mut connected_before = false;
    loop {
        let conn = match connector.connect("nova-docker rpc client", &mut stop).await {
            Ok(c) => {
                if std::mem::replace(&mut connected_before, true) {
                    crate::metrics::reconnected("rpc_client");
                }
                Arc::new(c)
            }
            Err(_) => break,
        };
        let setup = async {
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            declare_queue(&ch, &reply_queue(&cfg, &reply_q)).await?;
            let consumer = ch
                .basic_consume(
                    &reply_q,
                    "",
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((ch, consumer))
        };
        let (ch, mut consumer) = match setup.await {
            Ok(x) => x,
            Err(e) => {
                let delay = cfg.reconnect_delay(set_up_failures);
                set_up_failures = set_up_failures.saturating_add(1);
                tracing::error!(error = %e, retry_in = ?delay, "RPC client set-up failed; reconnecting");
                let _ = conn.close(320, "set-up failed").await;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped(&mut stop) => break,
                }
                continue;
            }
        };
        set_up_failures = 0;
        let own = ch.clone();
        link_tx.send_replace(Some(Arc::new(Link {
            connection: conn.clone(),
            channel: ch,
            declared: Mutex::new(HashSet::new()),
        })));
        let why = loop {
            tokio::select! {
                _ = stopped(&mut stop) => break None,
                d = consumer.next() => match d {
                    Some(Ok(d)) => route_reply(&pending, &d.data),
                    Some(Err(e)) => break Some(e.to_string()),
                    None => break Some("reply consumer cancelled".to_string()),
                },
            }
        };
        link_tx.send_replace(None);
        match why {
            None => {
                fail_all(&pending, "the RPC client was closed");
                // the channel first: one closed by its drop while the connection
                // closes makes lapin log a connection error
                let _ = own.close(200, "closed").await;
                let _ = conn.close(200, "closed").await;
                break;
            }
            Some(why) => {
                fail_all(&pending, &why);
                let _ = conn.close(320, "reconnecting").await;
            }
        }
    }
    link_tx.send_replace(None);
    fail_all(&pending, "the RPC client was closed");
}
