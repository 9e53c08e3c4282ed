//! nova-docker: a Docker compute service for OpenStack Nova.
//!
//! Where things live:
//! - [`rpc`]: the oslo.messaging transport (AMQP framing, server, client);
//! - [`objects`]: Nova's versioned objects;
//! - [`compute`]: the compute manager, one handler per compute RPC method;
//! - [`virt`]: the driver seam and the Docker driver behind it;
//! - [`image`]: Glance images in and out of Docker;
//! - [`userdata`]: container options from user_data and their policy;
//! - [`network`]: VIF drivers;
//! - [`notifications`]: Nova's versioned notifications;
//! - [`console`]: the serial console Nova's serial proxy connects to;
//! - [`clients`]: the keystone, conductor and placement clients;
//! - [`config`]: nova.conf reading;
//! - [`logging`]: log lines in oslo.log's format (text or JSON), with the request;
//! - [`metrics`]: Prometheus metrics (`[metrics] listen_address`);
//! - [`tasks`]: the long-lived tasks and how they stop; [`systemd`]: readiness
//!   and watchdog notifications.

pub mod clients;
pub mod compute;
pub mod config;
pub mod console;
pub mod context;
pub mod daemon;
pub mod exception;
pub mod image;
pub mod logging;
pub mod metrics;
pub mod network;
pub mod notifications;
pub mod objects;
pub mod rpc;
pub mod systemd;
pub mod tasks;
pub mod userdata;
pub mod virt;
