//! The serial console end to end, as a user gets it: the console URL from
//! Nova's API (`openstack console url show --serial`), a websocket to the lab's
//! real nova-serialproxy, which checks the token, asks our daemon
//! `validate_console_port` and connects to the instance's listener; what is
//! typed runs in the container. Also: what does not get in (no token, a wrong
//! token, a token of a deleted server, a connection past the proxy), and what a
//! session leaves behind (nothing).

mod common;
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::daemon::Daemon;
use e2e_support::{docker, Stack};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(120);

/// The lab's compute host name.
fn host() -> String {
    e2e_support::lab_host()
}

/// POST /servers/{id}/remote-consoles, protocol serial.
async fn console_url(stack: &Stack, id: &str) -> (u16, Value) {
    stack
        .call(
            Method::POST,
            &format!("{}/servers/{id}/remote-consoles", stack.nova),
            Some(json!({"remote_console": {"protocol": "serial", "type": "serial"}})),
        )
        .await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A websocket to the proxy, as Horizon's terminal opens it (subprotocol
/// `binary`); None when the proxy refuses the handshake.
async fn open(url: &str) -> Option<Ws> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    match tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async(req),
    )
    .await
    {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

/// Type `line` and read the screen until `want` shows (or `within` passes);
/// returns everything read and whether `want` showed.
async fn type_and_read(ws: &mut Ws, line: &str, want: &str, within: Duration) -> (String, bool) {
    let mut screen = String::new();
    if ws
        .send(Message::binary(line.as_bytes().to_vec()))
        .await
        .is_err()
    {
        return (screen, false);
    }
    let t = Instant::now();
    while t.elapsed() < within {
        match tokio::time::timeout(within.saturating_sub(t.elapsed()), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => screen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Ok(Message::Text(s)))) => screen.push_str(s.as_str()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
        }
        if screen.contains(want) {
            return (screen, true);
        }
    }
    (screen, false)
}

/// The daemon's console listeners (ports in the lab's range that it listens on).
fn listening_ports(pid: u32) -> Vec<u16> {
    let out = std::process::Command::new("ss")
        .args(["-Hltnp"])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .filter_map(|l| {
            let local = l.split_whitespace().nth(3)?;
            local.rsplit(':').next()?.parse().ok()
        })
        .filter(|p| (10000..20000).contains(p))
        .collect()
}

/// The processes in the container (`docker top`), as one line each.
fn processes(id: &str) -> String {
    docker(&["top", &format!("nova-{id}"), "-o", "pid,args"])
}

#[tokio::test]
#[ignore = "needs the lab: ./devstack/run-tests.sh"]
async fn serial_console_through_novas_proxy() {
    let stack = std::sync::Arc::new(Stack::from_env());
    let d = Daemon::start(&stack, &host(), "").await;
    stack.delete_servers_named(PREFIX).await;
    let outcome = tokio::spawn(console_walk(stack.clone(), d.pid().unwrap())).await;
    // the servers go whether the walk passed or not
    stack.delete_servers_named(PREFIX).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// What the servers' names start with.
const PREFIX: &str = "nd-console-";

async fn console_walk(stack: std::sync::Arc<Stack>, daemon_pid: u32) {
    let image = stack
        .docker_image("nd-e2e-busybox", &common::busybox_image())
        .await;
    let flavor = stack.flavor("nd.e2e.console", 64, 1).await;

    // 1. a command without a TTY: the console is a shell started in the container
    let plain = stack
        .create_server(
            "nd-console-shell",
            &image,
            &flavor,
            &host(),
            Some("command: sleep 3600\n"),
        )
        .await;
    stack.wait_status(&plain, "ACTIVE", T).await;
    let (st, v) = console_url(&stack, &plain).await;
    assert_eq!(st, 200, "console url: {v}");
    let url = v["remote_console"]["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("ws://127.0.0.1:6083/?token="), "{url}");
    let mut ws = open(&url).await.expect("the proxy takes the token");
    // 6*7 is computed by the container's shell: the typed line does not hold "42x"
    let (screen, ok) = type_and_read(&mut ws, "echo $((6*7))x\r", "42x", T).await;
    assert!(ok, "the shell answered: {screen:?}");
    let (screen, ok) = type_and_read(
        &mut ws,
        "tr '\\0' ' ' </proc/1/cmdline; echo :pid1\r",
        "sleep 3600 :pid1",
        T,
    )
    .await;
    assert!(ok, "the shell runs in the instance's container: {screen:?}");
    let during = processes(&plain);
    assert!(
        during.contains("/bin/sh"),
        "a shell while the session is open: {during}"
    );
    // the user leaves: our shell ends, the instance's command goes on
    let _ = ws.close(None).await;
    drop(ws);
    let t = Instant::now();
    loop {
        let now = processes(&plain);
        if !now.contains("/bin/sh") {
            assert!(now.contains("sleep 3600"), "{now}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the console's shell is still there after the user left: {now}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // 2. nothing gets in past the proxy or without a valid token
    let ports = listening_ports(daemon_pid);
    assert_eq!(
        ports.len(),
        1,
        "one listener, for the one console: {ports:?}"
    );
    let mut direct = tokio::net::TcpStream::connect(("127.0.0.1", ports[0]))
        .await
        .unwrap();
    let _ = tokio::io::AsyncWriteExt::write_all(&mut direct, b"echo $((6*7))x\r").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut direct, &mut buf),
    )
    .await
    .expect("closed at once")
    .unwrap_or(0);
    assert_eq!(n, 0, "a connection the proxy did not announce gets nothing");
    let bogus = format!("ws://127.0.0.1:6083/?token={}", uuid::Uuid::new_v4());
    if let Some(mut ws) = open(&bogus).await {
        let (screen, ok) =
            type_and_read(&mut ws, "echo $((6*7))x\r", "42x", Duration::from_secs(5)).await;
        assert!(!ok, "a made-up token reached a console: {screen:?}");
    }

    // 3. a stopped server has no console
    let (st, _) = stack.action(&plain, json!({"os-stop": null})).await;
    assert_eq!(st, 202);
    stack.wait_status(&plain, "SHUTOFF", T).await;
    let (st, v) = console_url(&stack, &plain).await;
    assert_eq!(st, 409, "a stopped server: {v}");

    // 4. a command with its own TTY: the console is that TTY (the shell is the
    //    container's command, the child of Docker's init; a shell of ours would
    //    be a child of no process in the container, PPID 0)
    let own = stack
        .create_server(
            "nd-console-tty",
            &image,
            &flavor,
            &host(),
            Some("command: /bin/sh\ntty: true\nstdin_open: true\n"),
        )
        .await;
    stack.wait_status(&own, "ACTIVE", T).await;
    let (st, v) = console_url(&stack, &own).await;
    assert_eq!(st, 200, "console url: {v}");
    let own_url = v["remote_console"]["url"].as_str().unwrap().to_string();
    let mut ws = open(&own_url).await.expect("the proxy takes the token");
    let (screen, ok) = type_and_read(&mut ws, "echo ppid=$PPID\r", "ppid=1\r", T).await;
    assert!(ok, "the instance's own terminal: {screen:?}");
    let _ = ws.close(None).await;
    drop(ws);
    // leaving does not end the instance's own shell
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack.server(&own).await["status"],
        "ACTIVE",
        "the instance's command goes on after the console is closed"
    );

    // 5. delete: the server's tokens no longer work, its listener is gone
    stack.delete_server(&own).await;
    stack.delete_server(&plain).await;
    stack.wait_gone(&own, T).await;
    stack.wait_gone(&plain, T).await;
    if let Some(mut ws) = open(&own_url).await {
        let (screen, ok) = type_and_read(
            &mut ws,
            "echo ppid=$PPID\r",
            "ppid=1\r",
            Duration::from_secs(5),
        )
        .await;
        assert!(
            !ok,
            "a deleted server's token reached a console: {screen:?}"
        );
    }
    let t = Instant::now();
    while !listening_ports(daemon_pid).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "listeners left after the servers were deleted: {:?}",
            listening_ports(daemon_pid)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
