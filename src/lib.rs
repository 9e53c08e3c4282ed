//! nova-docker: a Docker compute service for OpenStack Nova.
//!
//! Where things live:
//! - [`rpc`]: the oslo.messaging transport (AMQP framing, server, client);
//! - [`objects`]: Nova's versioned objects;
//! - [`compute`]: the compute manager, one handler per compute RPC method;
//! - [`virt::docker`]: the Docker driver;
//! - [`image`]: Glance images in and out of Docker;
//! - [`userdata`]: container options from user_data and their policy;
//! - [`network`]: VIF drivers;
//! - [`clients`]: keystone, conductor, placement and neutron clients;
//! - [`config`]: nova.conf reading.

pub mod clients;
pub mod compute;
pub mod config;
pub mod context;
pub mod daemon;
pub mod exception;
pub mod image;
pub mod network;
pub mod objects;
pub mod rpc;
pub mod userdata;
pub mod virt;
