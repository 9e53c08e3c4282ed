//! `ssl = True`: our server and client reach RabbitMQ through TLS (a socat TLS
//! proxy in front of the local broker that demands a client certificate), with
//! `ssl_ca_file`, `ssl_cert_file` and `ssl_key_file` from nova.conf.

mod common;
mod rpc_support;

use std::process::Stdio;
use std::time::Duration;

use nova_docker::config::Ini;
use nova_docker::context::RequestContext;
use nova_docker::rpc::{RabbitConfig, RpcClient, RpcError, Target};
use rpc_support::{OurServer, Vhost};
use serde_json::json;

struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_file(name: &str) -> String {
    common::test_file(&format!("fixtures/rpc/tls/{name}"))
        .display()
        .to_string()
}

/// socat terminating TLS on a free port and forwarding to the broker.
fn proxy() -> (Proxy, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let broker = nova_docker::rpc::TransportUrl::parse(&common::transport_url()).expect("url");
    let b = &broker.hosts[0];
    let child = std::process::Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},cafile={},verify=1",
            tls_file("server.pem"),
            tls_file("server.key"),
            tls_file("ca.pem")
        ))
        .arg(format!("TCP:{}:{}", b.host, b.port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat runs (devstack/lib/test-setup-rpc.sh installs it)");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (Proxy(child), port)
}

fn tls_config(vh: &Vhost, port: u16, client_cert: bool) -> RabbitConfig {
    let user = nova_docker::rpc::TransportUrl::parse(&vh.url)
        .expect("url")
        .hosts[0]
        .clone();
    let mut text = format!(
        "[DEFAULT]\ntransport_url = rabbit://{}:{}@localhost:{port}/{}\nrpc_response_timeout = 5\n\
         [oslo_messaging_rabbit]\nssl = True\nssl_ca_file = {}\nrabbit_interval_max = 1\n",
        user.username,
        user.password,
        vh.name,
        tls_file("ca.pem"),
    );
    if client_cert {
        text.push_str(&format!(
            "ssl_cert_file = {}\nssl_key_file = {}\n",
            tls_file("client.pem"),
            tls_file("client.key")
        ));
    }
    let mut ini = Ini::default();
    ini.merge_text(&text, std::path::Path::new("nova.conf"))
        .expect("ini");
    RabbitConfig::from_ini(&ini).expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and socat; run by devstack/run-tests.sh"]
async fn server_and_client_over_tls() {
    let vh = Vhost::new();
    let (_proxy, port) = proxy();
    let h = format!("nd-tls-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let server = OurServer::start(tls_config(&vh, port, true), &h, &["compute"]).await;
    let client = RpcClient::connect(tls_config(&vh, port, true))
        .await
        .expect("client over TLS");
    let r = client
        .call(
            &RequestContext::admin(),
            &Target::new("compute", "6.0").server(&h),
            "echo",
            json!({"value": "over tls"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .await
        .expect("call over TLS");
    assert_eq!(r, json!("over tls"));
    client.close().await;

    // the proxy demands a client certificate: without one no connection is made
    match RpcClient::connect(tls_config(&vh, port, false)).await {
        Err(RpcError::ConnectionLost(_)) => {}
        other => panic!("expected no connection without a client certificate, got {other:?}"),
    }
    server.shutdown().await;
}
