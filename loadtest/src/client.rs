//! The HTTP client: one connection per virtual user, kept alive across its requests, like a
//! browser tab. HTTP/1.1 is spoken by [`crate::h1`], inline in the user's task; HTTP/2 by
//! hyper's low-level `client::conn` API; TLS by rustls. No pool, no per-request allocation of
//! a client, no hidden extra connections — at 10,000 virtual users, the connection count is
//! exactly the user count.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::h1::{H1Connection, Keep, Outgoing, Response, Stream};
use crate::stats::ErrorKind;

/// Where requests go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `true` for https.
    pub https: bool,
    /// Host name or address, lowercase, without brackets.
    pub host: String,
    /// Port (the scheme's default when the URL has none).
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute http(s) URL.
    pub fn from_url(url: &str) -> Result<Origin, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        Origin::from_uri(&uri).ok_or_else(|| format!("`{url}` is not an absolute http:// or https:// URL"))
    }

    pub(crate) fn from_uri(uri: &http::Uri) -> Option<Origin> {
        let https = match uri.scheme_str()? {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Origin { https, host, port })
    }

    /// `Host` header value: the port only when it is not the scheme's default.
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.https { 443 } else { 80 } { host } else { format!("{host}:{}", self.port) }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{}://{host}:{}", if self.https { "https" } else { "http" }, self.port)
    }
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTP/1.1 with keep-alive (over TLS, ALPN offers only http/1.1).
    #[default]
    Http1,
    /// HTTP/2: negotiated by ALPN over TLS, prior knowledge (h2c) over plain TCP.
    Http2,
}

/// What every connection shares: TLS settings and the HTTP version.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub(crate) version: HttpVersion,
    tls_h1: Arc<rustls::ClientConfig>,
    tls_h2: Arc<rustls::ClientConfig>,
}

/// TLS set-up failures (reading extra CA certificates).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A CA file could not be read or holds no certificate.
    #[error("CA certificate file {path}: {message}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl ClientSettings {
    /// Trusts the system's certificate store plus the PEM files in `extra_ca` (a city's own CA,
    /// or a test certificate).
    pub fn new(version: HttpVersion, extra_ca: &[&Path]) -> Result<ClientSettings, TlsSetupError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system store may hold a certificate rustls cannot use; skipping it is what
            // browsers do too.
            let _ = roots.add(cert);
        }
        for path in extra_ca {
            use rustls_pki_types::pem::PemObject;
            let err = |message: String| TlsSetupError::CaFile { path: path.display().to_string(), message };
            let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no PEM certificate in it".to_owned()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| err(e.to_string()))?;
            }
        }
        let config = |alpn: &[&[u8]]| -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
            let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(c))
        };
        Ok(ClientSettings { version, tls_h1: config(&[b"http/1.1"])?, tls_h2: config(&[b"h2", b"http/1.1"])? })
    }
}

#[derive(Debug)]
enum Sender {
    /// Driven inline by the user's task: see [`crate::h1`].
    H1(H1Connection),
    /// hyper's HTTP/2 connection task multiplexes the streams.
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A kept-alive connection to one origin.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) origin: Origin,
    sender: Sender,
}

impl Connection {
    /// Opens a connection (TCP, then TLS for https, then the HTTP/2 handshake if spoken).
    pub(crate) async fn open(origin: &Origin, settings: &ClientSettings) -> Result<Connection, ErrorKind> {
        let tcp = TcpStream::connect((origin.host.as_str(), origin.port)).await.map_err(|_| ErrorKind::Connect)?;
        // Requests are small and written whole: do not wait for Nagle's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let (stream, h2) = if origin.https {
            let config = match settings.version {
                HttpVersion::Http1 => settings.tls_h1.clone(),
                HttpVersion::Http2 => settings.tls_h2.clone(),
            };
            let name = rustls_pki_types::ServerName::try_from(origin.host.clone()).map_err(|_| ErrorKind::Tls)?;
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| {
                // A peer that hangs up during the handshake is a reset, not a certificate problem.
                if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof)
                    && e.get_ref().is_none()
                {
                    ErrorKind::Reset
                } else {
                    ErrorKind::Tls
                }
            })?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            (Stream::Tls(Box::new(tls)), h2)
        } else {
            (Stream::Tcp(tcp), settings.version == HttpVersion::Http2)
        };
        let sender = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| classify(&e, ErrorKind::Protocol))?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let host = http::HeaderValue::from_str(&origin.authority()).map_err(|_| ErrorKind::InvalidUrl)?;
            Sender::H1(H1Connection::new(stream, host))
        };
        Ok(Connection { origin: origin.clone(), sender })
    }

    /// Whether the peer or an error closed the connection.
    pub(crate) fn is_closed(&mut self) -> bool {
        match &mut self.sender {
            Sender::H1(c) => c.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// Sends one request and reads the whole response, keeping what `keep` asks for.
    pub(crate) async fn send(&mut self, request: &Outgoing<'_>, keep: Keep) -> Result<Response, ErrorKind> {
        let s = match &mut self.sender {
            Sender::H1(c) => return c.send(request, keep).await,
            Sender::H2(s) => s,
        };
        let mut r = http::Request::new(Full::new(request.body.clone()));
        *r.method_mut() = request.method.clone();
        *r.uri_mut() = request.uri.clone();
        *r.headers_mut() = request.headers.clone();
        s.ready().await.map_err(|e| classify(&e, ErrorKind::Reset))?;
        let response = s.send_request(r).await.map_err(|e| classify(&e, ErrorKind::Protocol))?;
        let (parts, mut body) = response.into_parts();
        let mut body_len = 0u64;
        let body = if keep.body {
            let bytes = body.collect().await.map_err(|e| classify(&e, ErrorKind::Protocol))?.to_bytes();
            body_len = bytes.len() as u64;
            bytes
        } else {
            // Drained frame by frame, never concatenated: the stream is released afterwards.
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| classify(&e, ErrorKind::Protocol))?;
                if let Some(data) = frame.data_ref() {
                    body_len += data.len() as u64;
                }
            }
            Bytes::new()
        };
        Ok(Response { status: parts.status, headers: parts.headers, body, body_len })
    }
}

/// Sorts a hyper error into the report's kinds: the peer closing or resetting the connection
/// before a complete response is `Reset`; anything else is `fallback`.
fn classify(e: &hyper::Error, fallback: ErrorKind) -> ErrorKind {
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return ErrorKind::Reset;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(io.kind(), K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) {
                return ErrorKind::Reset;
            }
        }
        if let Some(h2) = s.downcast_ref::<h2::Error>()
            && (h2.is_io() || h2.is_go_away() || h2.is_reset())
        {
            return ErrorKind::Reset;
        }
        source = s.source();
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_host_headers() {
        let o = Origin::from_url("https://ENT.example.fr/login").unwrap();
        assert_eq!(o, Origin { https: true, host: "ent.example.fr".into(), port: 443 });
        assert_eq!(o.authority(), "ent.example.fr");
        let o = Origin::from_url("http://127.0.0.1:8080/").unwrap();
        assert_eq!(o.authority(), "127.0.0.1:8080");
        assert_eq!(o.to_string(), "http://127.0.0.1:8080");
        let o = Origin::from_url("http://[::1]:81/x").unwrap();
        assert_eq!(o.host, "::1");
        assert_eq!(o.authority(), "[::1]:81");
        assert!(Origin::from_url("ftp://h/").is_err());
        assert!(Origin::from_url("/relative").is_err());
    }
}
