//! Nova's serial console for our instances.
//!
//! Nova's `nova-serialproxy` takes a user's websocket (with the token Nova's API
//! handed out), asks this host `validate_console_port`, then opens a plain TCP
//! connection to the host and port that `get_serial_console` gave, as it does to
//! a libvirt guest's TCP serial port. Here:
//!
//! - [`config`]: `[serial_console]` and `[consoleauth]` as Nova reads them;
//! - [`server`]: one listener per instance with a console in use, on
//!   `proxyclient_address`, taking a connection only right after the proxy
//!   announced it (`validate_console_port`), and closed when no token for it can
//!   still be valid;
//! - [`bridge`]: the bytes between that connection and the instance's console
//!   ([`crate::virt::ConsoleIo`]).

pub mod bridge;
pub mod config;
pub mod server;

pub use config::ConsoleConfig;
pub use server::{ConsoleError, ConsoleServer};
