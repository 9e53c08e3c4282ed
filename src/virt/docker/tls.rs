//! The engine connection: unix socket, plain HTTP, or TLS (rustls with ring).
//!
//! TLS goes through our own hyper client (a bollard custom transport) so that the two
//! cases the old driver supported both work: verify the engine against `ca_file`, or,
//! with `api_insecure = True`, do not verify it. A client certificate is sent when
//! `cert_file`/`key_file` are set.

use std::path::Path;
use std::sync::Arc;

use bollard::{Docker, API_DEFAULT_VERSION};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::Endpoint;
use super::DriverError;

/// A client for `endpoint` whose calls time out after `timeout_secs` (not yet negotiated).
pub(crate) fn connect(endpoint: &Endpoint, timeout_secs: u64) -> Result<Docker, DriverError> {
    let fail = |url: &str, e: String| DriverError::Connect {
        url: url.to_string(),
        reason: e,
    };
    match endpoint {
        Endpoint::Unix(path) => Docker::connect_with_unix(path, timeout_secs, API_DEFAULT_VERSION)
            .map_err(|e| fail(&format!("unix://{path}"), e.to_string())),
        Endpoint::Http(addr) => {
            Docker::connect_with_http(&format!("http://{addr}"), timeout_secs, API_DEFAULT_VERSION)
                .map_err(|e| fail(&format!("tcp://{addr}"), e.to_string()))
        }
        Endpoint::Tls {
            addr,
            ca_file,
            cert_file,
            key_file,
            verify,
        } => {
            let url = format!("https://{addr}");
            let config = client_config(
                ca_file.as_deref(),
                cert_file.as_deref(),
                key_file.as_deref(),
                *verify,
            )
            .map_err(|e| fail(&url, e))?;
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            let https = hyper_rustls::HttpsConnector::from((http, config));
            let client = Client::builder(TokioExecutor::new()).build(https);
            let transport = move |req: bollard::BollardRequest| {
                let client = client.clone();
                async move { Ok(client.request(req).await?) }
            };
            Docker::connect_with_custom_transport(
                transport,
                Some(url.clone()),
                timeout_secs,
                API_DEFAULT_VERSION,
            )
            .map_err(|e| fail(&url, e.to_string()))
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn client_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    verify: bool,
) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if verify {
        let ca = ca_file.ok_or("TLS verification needs ca_file")?;
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("ca_file {}: {e}", ca.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "ca_file {} holds no usable certificate",
                ca.display()
            ));
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    };
    match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("cert_file {}: {e}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cert_file {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("cert_file and key_file must be given together".into()),
    }
}

/// `api_insecure = True`: any engine certificate is accepted (the handshake signatures
/// are still checked, so the channel is encrypted, just not authenticated).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_needs_no_files_and_verify_needs_a_ca() {
        assert!(client_config(None, None, None, false).is_ok());
        assert!(client_config(None, None, None, true).is_err());
        let e =
            client_config(Some(Path::new("/nonexistent/ca.pem")), None, None, true).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
