//! The certificate and key the TLS syslog listener presents (RFC 5425), read from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::TlsFiles;
use crate::source::SourceError;

/// Builds the TLS acceptor from `files`. Errors name the file and say what it must hold.
pub(super) fn acceptor(source_id: &str, files: &TlsFiles) -> Result<TlsAcceptor, SourceError> {
    let err = |path: &Path, error: std::io::Error| SourceError::Io {
        source_id: source_id.to_owned(),
        path: path.display().to_string(),
        error,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(&files.cert, pem_error(e, "certificate")))?;
    if certs.is_empty() {
        return Err(err(&files.cert, pem_error(pem::Error::NoItemsFound, "certificate")));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| err(&files.key, pem_error(e, "private key")))?;
    // The provider is named rather than taken from the process default, so that another crate
    // enabling a second provider cannot make this ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&files.cert, invalid(format!("no usable TLS version: {e}"))))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            err(
                &files.key,
                invalid(format!(
                    "this key cannot serve the certificate in {} ({e}); give the key that matches it",
                    files.cert.display()
                )),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn pem_error(error: pem::Error, what: &str) -> std::io::Error {
    match error {
        pem::Error::Io(e) => e,
        pem::Error::NoItemsFound => invalid(format!(
            "no PEM {what} found; the file must hold a \"-----BEGIN {}-----\" block",
            if what == "certificate" { "CERTIFICATE" } else { "PRIVATE KEY" }
        )),
        other => invalid(format!("not a valid PEM {what} file: {other}")),
    }
}
