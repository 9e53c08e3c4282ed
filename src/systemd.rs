//! systemd's service notification (`sd_notify(3)`), without libsystemd: one
//! datagram to `$NOTIFY_SOCKET` (`Type=notify` in the unit): `READY=1` once
//! the service is up, `WATCHDOG=1` while it runs (`WatchdogSec=`),
//! `STOPPING=1` on the way out. Outside systemd (no `NOTIFY_SOCKET`) nothing
//! is sent.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where systemd listens: a path, or `@name` for an abstract socket.
fn socket_addr(v: &str) -> Option<std::os::unix::net::SocketAddr> {
    if let Some(name) = v.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()
    } else if v.starts_with('/') {
        std::os::unix::net::SocketAddr::from_pathname(PathBuf::from(v)).ok()
    } else {
        None
    }
}

/// Send `state` to the socket named `socket` (as in `NOTIFY_SOCKET`).
pub fn notify_to(socket: &str, state: &str) -> std::io::Result<()> {
    let addr = socket_addr(socket).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad NOTIFY_SOCKET")
    })?;
    let s = UnixDatagram::unbound()?;
    s.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// Tell systemd `state`, if it asked to be told (errors are not fatal: the
/// service works the same without).
pub fn notify(state: &str) {
    if let Ok(socket) = std::env::var("NOTIFY_SOCKET") {
        if let Err(e) = notify_to(&socket, state) {
            tracing::warn!(error = %e, "systemd notification failed");
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when systemd set
/// it for this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn a_state_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("nova-docker-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn a_relative_socket_name_is_refused() {
        assert!(notify_to("notify", "READY=1").is_err());
    }
}
