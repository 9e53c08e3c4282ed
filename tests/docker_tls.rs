//! TLS to the engine, the right way round: the real engine is put behind a TLS
//! endpoint (socat, with certificates made by openssl for this test), and the driver
//! connects with verification (ca_file) and with `api_insecure = True`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nova_docker::virt::docker::{DockerConfig, DockerDriver};
use nova_docker::virt::DriverError;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt: openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate signed by it for `name` with the given extensions.
fn ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "1",
            "-subj",
            &format!("/CN={ca}"),
        ],
    );
}

fn signed(dir: &Path, ca: &str, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_proxy(dir: &Path) -> (Proxy, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!(
        "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},cafile={},verify=1",
        dir.join("server.pem").display(),
        dir.join("server.key").display(),
        dir.join("ca.pem").display()
    );
    let child = Command::new("socat")
        .args([listen.as_str(), "UNIX-CONNECT:/var/run/docker.sock"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (apt: socat)");
    let proxy = Proxy(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (proxy, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("socat did not listen on {port}");
}

fn cfg(
    port: u16,
    state: &Path,
    ca: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
    insecure: bool,
) -> DockerConfig {
    DockerConfig {
        host_url: format!("tcp://127.0.0.1:{port}"),
        ca_file: ca,
        cert_file: client.as_ref().map(|c| c.0.clone()),
        key_file: client.map(|c| c.1),
        api_insecure: insecure,
        state_dir: state.to_path_buf(),
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs Docker, socat and openssl; run by devstack/run-tests.sh"]
async fn tls_verifies_by_default_and_api_insecure_true_skips_verification() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ca(dir, "ca");
    ca(dir, "other-ca");
    signed(
        dir,
        "ca",
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    signed(dir, "ca", "client", "extendedKeyUsage=clientAuth\n");
    let (_proxy, port) = tls_proxy(dir);
    let client = Some((dir.join("client.pem"), dir.join("client.key")));
    let state = dir.join("state");

    // verified against the right CA, with a client certificate: works end to end
    let drv = DockerDriver::connect(
        cfg(
            port,
            &state,
            Some(dir.join("ca.pem")),
            client.clone(),
            false,
        ),
        "tls-host",
    )
    .await
    .expect("verified TLS connection");
    assert!(!drv.engine_version().is_empty());
    drv.list_instances().await.unwrap();

    // verification against a CA that did not sign the engine's certificate: refused
    let err = DockerDriver::connect(
        cfg(
            port,
            &state,
            Some(dir.join("other-ca.pem")),
            client.clone(),
            false,
        ),
        "tls-host",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DriverError::Connect { .. }), "{err:?}");
    let msg = format!("{err:?}").to_lowercase();
    assert!(
        msg.contains("certificate") || msg.contains("unknownissuer") || msg.contains("invalid"),
        "{msg}"
    );

    // api_insecure = True: the same wrong CA (or none) is not consulted
    let drv = DockerDriver::connect(
        cfg(
            port,
            &state,
            Some(dir.join("other-ca.pem")),
            client.clone(),
            true,
        ),
        "tls-host",
    )
    .await
    .expect("api_insecure = True must not verify");
    drv.list_instances().await.unwrap();
    let drv = DockerDriver::connect(cfg(port, &state, None, client, true), "tls-host")
        .await
        .expect("api_insecure = True without ca_file");
    assert!(!drv.api_version().is_empty());

    // the client certificate is what the engine checks: without it, no entry
    assert!(
        DockerDriver::connect(cfg(port, &state, None, None, true), "tls-host")
            .await
            .is_err()
    );
}
