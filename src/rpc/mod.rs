//! oslo.messaging RPC over AMQP (RabbitMQ): framing, server, client.
//!
//! - [`envelope`]: the 2.0 envelope, request and reply frames, `_context_*`;
//! - [`failure`]: remote exceptions out (serialize) and in ([`RemoteError`]);
//! - [`config`]: [`RabbitConfig`] from nova.conf;
//! - [`connection`]: connecting with back-off, heartbeats, TLS;
//! - [`topology`]: the exchanges and queues, as Python declares them;
//! - [`dispatcher`]: [`Endpoint`]s by namespace/version/method;
//! - [`server`]: [`RpcServer`], consuming and replying;
//! - [`client`]: [`RpcClient`], call/cast/fanout to a [`Target`].

pub mod client;
pub mod config;
pub mod connection;
pub mod dispatcher;
pub mod envelope;
pub mod failure;
pub mod server;
pub mod topology;

use std::time::Duration;

pub use client::{RpcClient, Target};
pub use config::{RabbitConfig, TransportUrl};
pub use dispatcher::{Dispatcher, Endpoint, EndpointTarget};
pub use failure::RemoteError;
pub use server::{RpcServer, ServerState};

/// Errors of the RPC layer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No reply within the timeout (oslo `MessagingTimeout`).
    #[error("timed out after {timeout:?} waiting for a reply to {method} (MessagingTimeout)")]
    Timeout { method: String, timeout: Duration },
    /// The remote side raised an exception.
    #[error(transparent)]
    Remote(Box<RemoteError>),
    /// The broker connection dropped while the call was outstanding, or there is
    /// no connection.
    #[error("AMQP connection lost: {0}")]
    ConnectionLost(String),
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the message (publisher confirm nack)")]
    Nacked,
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// The server or client was asked to stop.
    #[error("RPC stopped")]
    Shutdown,
}
