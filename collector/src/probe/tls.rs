//! Reading a server's TLS certificate: when it expires, and whether it is trusted.
//!
//! ureq does not hand out the peer certificate, so the HTTPS probe makes one more TLS handshake
//! of its own (no HTTP request on it). Its verifier records the end-entity certificate and the
//! verdict of the real WebPKI verification, then lets the handshake finish either way: an
//! expired or untrusted certificate is exactly what must be reported, with its date.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What the handshake showed of the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject, as `CN=ent.ville.fr`.
    pub subject: String,
    pub not_after: jiff::Timestamp,
    /// Why the certificate is not trusted (expired, unknown issuer, wrong name), if it is not.
    pub problem: Option<String>,
}

impl CertificateInfo {
    /// Whether the WebPKI verification (or the configured CA) accepted the certificate.
    pub fn trusted(&self) -> bool {
        self.problem.is_none()
    }

    /// Whole days left before expiry at `now` (negative once expired).
    pub fn days_left(&self, now: jiff::Timestamp) -> i64 {
        self.not_after.duration_since(now).as_secs().div_euclid(86_400)
    }
}

/// Reads the CA certificates of a PEM file.
pub(crate) fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no \"-----BEGIN CERTIFICATE-----\" block", path.display()));
    }
    Ok(certs)
}

#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<(Vec<u8>, Option<String>)>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        let problem = verdict.err().map(|e| e.to_string());
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((end_entity.to_vec(), problem));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Connects to the host of `url` (an `https://` URL), completes a TLS handshake and returns the
/// server's certificate. Trust is judged against the Mozilla roots, or only `ca_file` if given.
pub async fn fetch_certificate(
    url: &str,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<CertificateInfo, String> {
    let parts = crate::scrape::UrlParts::parse(url)?;
    let port = parts.port.unwrap_or(443);
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in load_ca_file(path)? {
                roots.add(cert).map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
    let recorder = Arc::new(Recorder { inner, seen: Mutex::new(None) });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("no usable TLS version: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let server_name =
        ServerName::try_from(parts.host.clone()).map_err(|e| format!("`{}` is not a server name: {e}", parts.host))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((parts.host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {}:{port}: {e}", parts.host))?;
        connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {}:{port} failed: {e}", parts.host))
    };
    let handshake_result = tokio::time::timeout(timeout, handshake).await;
    let seen = recorder.seen.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some((der, problem)) = seen else {
        return Err(match handshake_result {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => "the server sent no certificate".to_owned(),
            Err(_) => format!("no TLS handshake within {timeout:?}"),
        });
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("the server's certificate is not valid X.509: {e}"))?;
    let not_after = jiff::Timestamp::from_second(cert.validity().not_after.timestamp())
        .map_err(|e| format!("certificate expiry out of range: {e}"))?;
    Ok(CertificateInfo { subject: cert.subject().to_string(), not_after, problem })
}
