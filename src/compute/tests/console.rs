//! The serial console: the token made through the conductor, the listener,
//! who gets in, and what ends it.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::fakes::Call;
use super::harness::*;
use crate::compute::ComputeRequest;
use crate::console::ConsoleConfig;
use crate::exception::Class;
use crate::objects::{Instance, TaskState, VmState};

fn enabled(ports: (u16, u16), ttl: u64) -> ConsoleConfig {
    ConsoleConfig {
        enabled: true,
        ports,
        base_url: "ws://proxy.example:6083/".into(),
        proxyclient_address: [127, 0, 0, 1].into(),
        token_ttl: Duration::from_secs(ttl),
    }
}

fn harness() -> Harness {
    Harness::with_consoles(enabled((31000, 31200), 600))
}

async fn ask(
    h: &Harness,
    inst: &Instance,
    console_type: &str,
) -> Result<serde_json::Value, crate::exception::NovaException> {
    h.handle(ComputeRequest::GetSerialConsole {
        instance: inst.clone(),
        console_type: console_type.into(),
    })
    .await
}

async fn console(h: &Harness, inst: &Instance) -> serde_json::Value {
    ask(h, inst, "serial").await.expect("a console")
}

fn validate(h: &Harness, inst: &Instance, port: &str, console_type: &str) -> bool {
    h.manager
        .validate_console_port(inst, port, console_type)
        .as_bool()
        .unwrap()
}

/// What the connection gives within a second (up to `n` bytes), and whether it
/// was closed.
async fn read_some(c: &mut TcpStream, n: usize) -> (String, bool) {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf[got..])).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(k)) => {
                got += k;
                if got == n {
                    break false;
                }
            }
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&buf[..got]).into_owned(), closed)
}

#[tokio::test]
async fn the_token_is_made_by_the_conductor_for_this_instance_and_port() {
    let h = harness();
    let inst = h.running(VmState::Active, None);
    let info = console(&h, &inst).await;
    let port = info["port"].as_u64().unwrap();
    assert!((31000..31200).contains(&port), "{info}");
    assert_eq!(info["host"], "127.0.0.1");
    assert_eq!(info["token"], "token-1");
    assert_eq!(info["access_url"], "ws://proxy.example:6083/?token=token-1");
    let tokens = h.conductor.console_tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1);
    let t = &tokens[0].1;
    assert_eq!(t["console_type"], "serial");
    assert_eq!(t["host"], "127.0.0.1");
    assert_eq!(t["port"], json!(port));
    assert_eq!(t["instance_uuid"], inst.uuid());
    assert_eq!(t["access_url_base"], "ws://proxy.example:6083/");
    assert!(h
        .trace(&inst)
        .iter()
        .any(|c| c.contains("ConsoleAuthToken.authorize ttl=600")));
    // a second request: a new token, the same port
    let again = console(&h, &inst).await;
    assert_eq!(again["port"], info["port"]);
    assert_eq!(again["token"], "token-2");
    // another instance gets a port of its own
    let other = h.running(VmState::Active, None);
    assert_ne!(console(&h, &other).await["port"], info["port"]);
}

#[tokio::test]
async fn only_a_connection_the_proxy_announced_gets_in_and_only_once() {
    let h = harness();
    let inst = h.running(VmState::Active, None);
    let port = console(&h, &inst).await["port"].as_u64().unwrap();
    let addr = format!("127.0.0.1:{port}");

    // not announced: closed at once, nothing read from the instance
    let mut c = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(read_some(&mut c, 16).await, (String::new(), true));

    // the proxy's check: the wrong port, another type, another instance say no
    let other = h.running(VmState::Active, None);
    assert!(!validate(&h, &inst, &(port + 1).to_string(), "serial"));
    assert!(!validate(&h, &inst, &port.to_string(), "novnc"));
    assert!(!validate(&h, &other, &port.to_string(), "serial"));
    let mut c = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(read_some(&mut c, 16).await, (String::new(), true));

    // announced: the session is the instance's console
    assert!(validate(&h, &inst, &port.to_string(), "serial"));
    let mut c = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(read_some(&mut c, 2).await, ("$ ".into(), false));
    c.write_all(b"hi").await.unwrap();
    assert_eq!(read_some(&mut c, 7).await, ("echo:hi".into(), false));
    // one announcement, one connection
    let mut second = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(read_some(&mut second, 16).await, (String::new(), true));
}

#[tokio::test]
async fn disabled_consoles_and_other_types_are_refused_with_novas_errors() {
    let h = Harness::new();
    let inst = h.running(VmState::Active, None);
    let e = ask(&h, &inst, "serial").await.unwrap_err();
    assert!(e.is(Class::ConsoleTypeUnavailable), "{e}");
    assert_eq!(e.message, "Unavailable console type serial.");
    assert!(h.conductor.console_tokens.lock().unwrap().is_empty());

    let h = harness();
    let inst = h.running(VmState::Active, None);
    let e = ask(&h, &inst, "novnc").await.unwrap_err();
    assert!(e.is(Class::ConsoleTypeInvalid), "{e}");
}

#[tokio::test]
async fn a_stopped_or_building_instance_is_not_ready_and_opens_no_port() {
    let h = harness();
    let stopped = h.running(VmState::Stopped, None);
    h.driver
        .containers
        .lock()
        .unwrap()
        .get_mut(stopped.uuid())
        .unwrap()
        .state = crate::virt::PowerState::Shutdown;
    let building = h.instance(VmState::Building, Some(TaskState::Spawning), Some(HOST));
    for inst in [&stopped, &building] {
        let e = ask(&h, inst, "serial").await.unwrap_err();
        assert!(e.is(Class::InstanceNotReady), "{e}");
        assert_eq!(e.message, format!("Instance {} is not ready", inst.uuid()));
        assert!(!validate(&h, inst, "31000", "serial"));
    }
    assert!(h.conductor.console_tokens.lock().unwrap().is_empty());
}

#[tokio::test]
async fn no_free_port_is_novas_port_range_exhausted() {
    // a range of one port: the first instance takes it
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = Harness::with_consoles(enabled((free, free + 1), 600));
    let a = h.running(VmState::Active, None);
    assert_eq!(console(&h, &a).await["port"], json!(free));
    let b = h.running(VmState::Active, None);
    let e = ask(&h, &b, "serial").await.unwrap_err();
    assert!(e.is(Class::SocketPortRangeExhaustedException), "{e}");
    assert_eq!(e.message, "Not able to acquire a free port for 127.0.0.1");
}

#[tokio::test]
async fn delete_closes_the_port_ends_the_session_and_removes_the_tokens() {
    // a range of its own: after the delete, no other test's console may take
    // the port this one checks is closed
    let h = Harness::with_consoles(enabled((31300, 31310), 600));
    let inst = h.running(VmState::Active, Some(TaskState::Deleting));
    let port = console(&h, &inst).await["port"].as_u64().unwrap();
    assert!(validate(&h, &inst, &port.to_string(), "serial"));
    let mut session = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(read_some(&mut session, 2).await.0, "$ ");

    h.handle(ComputeRequest::TerminateInstance(inst.clone()))
        .await
        .unwrap();
    // the session ends, the port is closed
    assert!(read_some(&mut session, 16).await.1, "the session was ended");
    let refused = TcpStream::connect(format!("127.0.0.1:{port}")).await;
    assert!(refused.is_err(), "the port is closed");
    assert!(!validate(&h, &inst, &port.to_string(), "serial"));
    assert!(h.conductor.calls.lock().unwrap().iter().any(
        |(_, c)| *c == Call::Other("ConsoleAuthToken.clean_console_auths_for_instance".into())
    ));
}

#[tokio::test]
async fn the_port_closes_once_no_token_can_be_valid() {
    let h = Harness::with_consoles(enabled((31200, 31300), 1));
    let inst = h.running(VmState::Active, None);
    let port = console(&h, &inst).await["port"].as_u64().unwrap();
    let addr = format!("127.0.0.1:{port}");
    assert!(
        TcpStream::connect(&addr).await.is_ok(),
        "open while the token is valid"
    );
    let mut closed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if TcpStream::connect(&addr).await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the listener closed after the token's lifetime");
    assert!(!validate(&h, &inst, &port.to_string(), "serial"));
}
