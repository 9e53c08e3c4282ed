//! The RPC server: declares the topology of its topics, consumes, decodes,
//! dispatches each message in its own task and replies on the default exchange.
//! Reconnects (and redeclares) when the broker goes away; stops on the shutdown
//! channel, letting running handlers finish for a grace period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{select_all, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::RabbitConfig;
use super::connection::{message_properties, publish_confirmed, stopped, Connector};
use super::dispatcher::Dispatcher;
use super::envelope::{decode_request, new_id, DuplicateFilter, ReplyFrame, ReplyTo, Request};
use super::failure::{decode_failure, serialize_failure};
use super::topology::{declare, is_durable_mismatch, non_durable, server_topology};
use super::RpcError;
use crate::context::Delivery;

/// How long a reply waits for a usable channel (across a reconnect) before it is
/// given up.
const REPLY_RETRY_WINDOW: Duration = Duration::from_secs(30);

/// Where the server is; watch it with [`RpcServer::state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    Connecting,
    /// Consuming; `generation` counts the connections made so far (1 = first).
    Ready {
        generation: u64,
    },
    Stopped,
}

/// An oslo.messaging RPC server for some topics on one host.
pub struct RpcServer {
    cfg: Arc<RabbitConfig>,
    connector: Connector,
    host: String,
    topics: Vec<String>,
    dispatcher: Arc<Dispatcher>,
    state: watch::Sender<ServerState>,
    grace: Duration,
    /// Casts whose message the handler settles (see [`Delivery`]).
    ack_when_started: Vec<String>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("host", &self.host)
            .field("topics", &self.topics)
            .field("dispatcher", &self.dispatcher)
            .finish()
    }
}

/// The channel replies go out on; replaced on reconnect.
type Publisher = watch::Receiver<Option<Channel>>;

impl RpcServer {
    /// A server for `topics` (e.g. `["compute", "compute-alt"]`) on `host`.
    /// Fails only on unreadable TLS files.
    pub fn new(
        cfg: RabbitConfig,
        host: &str,
        topics: &[&str],
        dispatcher: Dispatcher,
    ) -> Result<Self, RpcError> {
        let cfg = Arc::new(cfg);
        Ok(RpcServer {
            connector: Connector::new(cfg.clone())?,
            cfg,
            host: host.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            dispatcher: Arc::new(dispatcher),
            state: watch::channel(ServerState::Connecting).0,
            grace: Duration::from_secs(30),
            ack_when_started: Vec::new(),
        })
    }

    /// How long running handlers may go on after shutdown (default 30 s).
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Casts of `methods` are acknowledged to the broker when their handler
    /// says the work started ([`Delivery::started`]) or returns, not before
    /// dispatch: a crash in between leaves them queued for the next consumer.
    pub fn ack_when_started(mut self, methods: &[&str]) -> Self {
        self.ack_when_started = methods.iter().map(|m| m.to_string()).collect();
        self
    }

    /// Watch the server's state (e.g. wait for [`ServerState::Ready`]).
    pub fn state(&self) -> watch::Receiver<ServerState> {
        self.state.subscribe()
    }

    /// Serve until `shutdown` holds `true` (or its sender is dropped). Connection
    /// losses are retried forever; returns `Ok(())` after a graceful stop.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), RpcError> {
        let (pub_tx, pub_rx) = watch::channel::<Option<Channel>>(None);
        let dup = Arc::new(Mutex::new(DuplicateFilter::default()));
        // One fanout queue name per topic for the life of the server, redeclared
        // as is on reconnect (as kombu does).
        let fanout_ids: HashMap<String, String> =
            self.topics.iter().map(|t| (t.clone(), new_id())).collect();
        let mut tasks = JoinSet::new();
        let mut generation = 0u64;
        let mut set_up_failures = 0u32;
        let mut connected_before = false;
        let mut keep = Vec::new();
        loop {
            self.state.send_replace(ServerState::Connecting);
            let conn = match self
                .connector
                .connect(
                    &format!("nova-docker rpc server {}", self.host),
                    &mut shutdown,
                )
                .await
            {
                Ok(c) => {
                    if std::mem::replace(&mut connected_before, true) {
                        crate::metrics::reconnected("rpc_server");
                    }
                    c
                }
                Err(RpcError::Shutdown) => break,
                Err(e) => {
                    self.state.send_replace(ServerState::Stopped);
                    return Err(e);
                }
            };
            generation += 1;
            let res = self
                .serve(
                    &conn,
                    generation,
                    &fanout_ids,
                    &pub_tx,
                    &pub_rx,
                    &dup,
                    &mut tasks,
                    &mut shutdown,
                    &mut keep,
                )
                .await;
            pub_tx.send_replace(None);
            match res {
                Ok(()) => {
                    if let Some(ch) = self.drain(&mut tasks, &pub_tx, Some(&conn)).await {
                        keep.push(ch);
                    }
                    // every channel before the connection: one closed by its drop
                    // while the connection closes makes lapin log a connection error
                    for ch in keep.drain(..) {
                        let _ = ch.close(200, "shutdown").await;
                    }
                    let _ = conn.close(200, "shutdown").await;
                    self.state.send_replace(ServerState::Stopped);
                    return Ok(());
                }
                Err(e) => {
                    let _ = conn.close(320, "reconnecting").await;
                    let was_ready = matches!(*self.state.borrow(), ServerState::Ready { generation: g } if g == generation);
                    if was_ready {
                        set_up_failures = 0;
                        tracing::warn!(error = %e, "RPC server lost its broker connection; reconnecting");
                    } else {
                        // e.g. a 406 from a declare whose flags differ from an existing
                        // queue's: no point hammering the broker
                        let delay = self.cfg.reconnect_delay(set_up_failures);
                        set_up_failures = set_up_failures.saturating_add(1);
                        tracing::error!(error = %e, retry_in = ?delay,
                            "RPC server set-up failed (queue/exchange flags differing from the broker's?)");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stopped(&mut shutdown) => break,
                        }
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        // stopped while (re)connecting: handlers still get their grace period
        self.drain(&mut tasks, &pub_tx, None).await;
        self.state.send_replace(ServerState::Stopped);
        Ok(())
    }

    /// Let running handlers finish (their replies still go out) for the grace period.
    async fn drain(
        &self,
        tasks: &mut JoinSet<()>,
        pub_tx: &watch::Sender<Option<Channel>>,
        conn: Option<&Connection>,
    ) -> Option<Channel> {
        while tasks.try_join_next().is_some() {}
        if tasks.is_empty() {
            return None;
        }
        let mut replies = None;
        if let Some(conn) = conn {
            if let Ok(ch) = conn.create_channel().await {
                if ch
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .is_ok()
                {
                    pub_tx.send_replace(Some(ch.clone()));
                    replies = Some(ch);
                }
            }
        }
        tracing::info!(running = tasks.len(), grace = ?self.grace, "waiting for running RPC handlers");
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.grace, all).await.is_err() {
            tracing::warn!(
                abandoned = tasks.len(),
                "RPC handlers still running after the grace period"
            );
            tasks.abort_all();
        }
        pub_tx.send_replace(None);
        replies
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve(
        &self,
        conn: &Connection,
        generation: u64,
        fanout_ids: &HashMap<String, String>,
        pub_tx: &watch::Sender<Option<Channel>>,
        pub_rx: &Publisher,
        dup: &Arc<Mutex<DuplicateFilter>>,
        tasks: &mut JoinSet<()>,
        shutdown: &mut watch::Receiver<bool>,
        keep: &mut Vec<Channel>,
    ) -> Result<(), RpcError> {
        let publish_ch = conn.create_channel().await?;
        publish_ch
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consumers = Vec::new();
        // what to cancel at a stop: (channel, consumer tag)
        let mut tags = Vec::new();
        // one channel per topic: a refused declare closes only its own channel
        for topic in &self.topics {
            let fid = fanout_ids.get(topic).cloned().unwrap_or_else(new_id);
            let topo = server_topology(&self.cfg, topic, &self.host, &fid);
            let mut ch = conn.create_channel().await?;
            if let Err(e) = declare(&ch, &topo).await {
                if !(self.cfg.durable() && is_durable_mismatch(&e)) {
                    return Err(e.into());
                }
                // as oslo does: the broker has them non-durable; use them so
                tracing::warn!(topic = %topic, error = %e,
                    "exchange or queue exists with another durability; declaring non-durable as oslo.messaging does");
                ch = conn.create_channel().await?;
                declare(&ch, &non_durable(&topo)).await?;
            }
            // a bound on what the broker pushes before we settle it
            ch.basic_qos(
                self.cfg.rabbit_qos_prefetch_count,
                BasicQosOptions::default(),
            )
            .await?;
            for q in &topo.queues {
                let c = ch
                    .basic_consume(
                        &q.name,
                        "",
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                tags.push((ch.clone(), c.tag()));
                consumers.push(c);
            }
        }
        pub_tx.send_replace(Some(publish_ch.clone()));
        self.state.send_replace(ServerState::Ready { generation });
        tracing::info!(host = %self.host, topics = ?self.topics, generation, "RPC server consuming");
        let mut deliveries = select_all(consumers);
        loop {
            let item = tokio::select! {
                _ = stopped(shutdown) => {
                    // no delivery after this (the handlers still running settle
                    // theirs; what was delivered and not started goes back to the
                    // queue at the close), so the close races no incoming frame
                    for (ch, tag) in &tags {
                        let _ = ch
                            .basic_cancel(tag.as_str(), BasicCancelOptions::default())
                            .await;
                    }
                    // closed once the running handlers are done (theirs settle
                    // on them)
                    keep.push(publish_ch.clone());
                    keep.extend(tags.into_iter().map(|(ch, _)| ch));
                    return Ok(());
                }
                item = deliveries.next() => item,
            };
            let delivery = match item {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(RpcError::ConnectionLost("consumers cancelled".into())),
            };
            let decoded = decode_request(&delivery.data);
            let late = matches!(&decoded, Ok(r) if !r.is_call() && self.ack_when_started.contains(&r.method));
            // Acked before dispatch, as the Python listener does, but for the
            // casts whose handler says when
            if !late {
                if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                    return Err(e.into());
                }
            }
            let mut req = match decoded {
                Ok(r) => r,
                Err(f) => {
                    match f.reply_to {
                        Some(rt) => {
                            tracing::warn!(error = %f.error, msg_id = %rt.msg_id, method = ?f.method,
                                "malformed RPC call; sending a failure reply");
                            let frame = ReplyFrame::failure(
                                &rt.msg_id,
                                serialize_failure(&decode_failure(&f.error)),
                            );
                            let p = pub_rx.clone();
                            tasks.spawn(async move { send_reply(p, &rt, frame).await });
                        }
                        None => {
                            tracing::warn!(error = %f.error, routing_key = %delivery.routing_key,
                            "malformed RPC message dropped")
                        }
                    }
                    continue;
                }
            };
            if late {
                let acker = delivery.acker.clone();
                let method = req.method.clone();
                req.context.delivery = Delivery::new(delivery.redelivered, move || {
                    tokio::spawn(async move {
                        // a lost ack means a redelivery, which the handler recognises
                        if let Err(e) = acker.ack(BasicAckOptions::default()).await {
                            tracing::warn!(%method, error = %e, "could not acknowledge the message");
                        }
                    });
                });
            }
            if let Some(uid) = &req.unique_id {
                let fresh = dup.lock().map(|mut d| d.check_and_add(uid)).unwrap_or(true);
                if !fresh {
                    tracing::warn!(unique_id = %uid, method = %req.method, "duplicate RPC message dropped");
                    req.context.delivery.started();
                    continue;
                }
            }
            let dispatcher = self.dispatcher.clone();
            let p = pub_rx.clone();
            let span = request_span(&req);
            tasks.spawn(tracing::Instrument::instrument(
                handle(dispatcher, p, req),
                span,
            ));
            while tasks.try_join_next().is_some() {}
        }
    }
}

/// The span of one request: the ids and user identity of the Nova API call it
/// serves and the instance it is about, on every line logged while it runs
/// (see [`crate::logging`]).
fn request_span(req: &Request) -> tracing::Span {
    let c = &req.context;
    let raw = |k: &str| c.raw.get(k).and_then(Value::as_str);
    tracing::info_span!(
        crate::logging::REQUEST_SPAN,
        method = %req.method,
        request_id = c.request_id.as_deref(),
        global_request_id = c.global_request_id.as_deref(),
        user = c.user_id.as_deref(),
        project = c.project_id.as_deref(),
        domain = raw("domain"),
        user_domain = raw("user_domain"),
        project_domain = raw("project_domain"),
        instance = crate::logging::instance_of(&req.args),
    )
}

/// Dispatch one request and reply if it is a call, with call-monitor heartbeats
/// every `_timeout / 2` seconds while the handler runs.
async fn handle(dispatcher: Arc<Dispatcher>, publisher: Publisher, req: Request) {
    let Request {
        method,
        args,
        version,
        namespace,
        context,
        reply_to,
        call_monitor_timeout,
        ..
    } = req;
    let request_id = context.request_id.clone().unwrap_or_default();
    let delivery = context.delivery.clone();
    let started = std::time::Instant::now();
    tracing::debug!(%method, %version, ?namespace, %request_id, call = reply_to.is_some(), "RPC request");
    let fut = dispatcher.dispatch(context, namespace.as_deref(), &method, args, &version);
    tokio::pin!(fut);
    let heartbeat_every = call_monitor_timeout
        .filter(|t| *t >= 2 && reply_to.is_some())
        .map(|t| Duration::from_secs_f64(t as f64 / 2.0));
    let result = match (heartbeat_every, &reply_to) {
        (Some(every), Some(rt)) => {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = tick.tick() => {
                        tracing::debug!(%method, "sending call-monitor heartbeat");
                        send_reply(publisher.clone(), rt, ReplyFrame::heartbeat(&rt.msg_id)).await;
                    }
                }
            }
        }
        _ => fut.await,
    };
    delivery.started();
    // a method this server does not serve (the dispatcher's routing said so)
    // is counted as `unknown`: a label never takes a sender's arbitrary text
    let (label, outcome) = match &result {
        Ok(_) => (method.as_str(), "ok"),
        Err(e) if matches!(e.class.as_str(), "NoSuchMethod" | "UnsupportedVersion") => {
            ("unknown", e.class.as_str())
        }
        Err(e) => (method.as_str(), e.class.as_str()),
    };
    crate::metrics::rpc_served(label, outcome, started);
    match (reply_to, result) {
        (Some(rt), Ok(v)) => send_reply(publisher, &rt, ReplyFrame::result(&rt.msg_id, v)).await,
        (Some(rt), Err(e)) => {
            tracing::info!(%method, %request_id, error = %e, "RPC call failed; replying with the exception");
            send_reply(
                publisher,
                &rt,
                ReplyFrame::failure(&rt.msg_id, serialize_failure(&e)),
            )
            .await
        }
        (None, Ok(Value::Null)) | (None, Ok(_)) => {}
        (None, Err(e)) => tracing::warn!(%method, %request_id, error = %e, "RPC cast failed"),
    }
}

/// Publish a reply on the default exchange to the caller's queue (mandatory),
/// waiting across a reconnect for a usable channel.
async fn send_reply(mut publisher: Publisher, rt: &ReplyTo, frame: ReplyFrame) {
    let body = frame.encode();
    let deadline = tokio::time::Instant::now() + REPLY_RETRY_WINDOW;
    loop {
        let ch = publisher.borrow_and_update().clone();
        if let Some(ch) = ch {
            tracing::debug!(msg_id = %rt.msg_id, reply_q = %rt.reply_q, ending = frame.ending, "sending reply");
            match publish_confirmed(&ch, "", &rt.reply_q, true, &body, message_properties(None))
                .await
            {
                Ok(true) => {
                    tracing::debug!(msg_id = %rt.msg_id, "reply confirmed");
                    return;
                }
                Ok(false) => {
                    tracing::warn!(msg_id = %rt.msg_id, reply_q = %rt.reply_q,
                        "reply queue does not exist; reply dropped (caller gone?)");
                    return;
                }
                Err(e) => {
                    tracing::warn!(msg_id = %rt.msg_id, error = %e, "reply publish failed; retrying")
                }
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            tracing::error!(msg_id = %rt.msg_id, reply_q = %rt.reply_q, "reply could not be sent; given up");
            return;
        }
        // wait for a new channel (reconnect) or a short while
        let _ = tokio::time::timeout(
            (deadline - now).min(Duration::from_secs(1)),
            publisher.changed(),
        )
        .await;
    }
}
