//! The server loop: plain HTTP (behind a reverse proxy) or TLS from a certificate and key,
//! security headers on every answer, and graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::extract::connect_info::Connected;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the web server runs: TLS, sessions, rate limits, who may read the machine endpoints.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Serve HTTPS with these files; plain HTTP when `None` (behind a TLS reverse proxy).
    pub tls: Option<TlsFiles>,
    /// Mark cookies `Secure` (always under TLS; set it too behind a TLS proxy).
    pub cookie_secure: bool,
    /// A session ends this long after login, whatever the activity.
    pub session_lifetime: Duration,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// Login attempts allowed per client address and per account name, per minute.
    pub login_attempts_per_minute: u32,
    /// Requisition searches allowed per account, per minute.
    pub searches_per_minute: u32,
    /// Trust the last address of `X-Forwarded-For` as the client (only behind a proxy you run).
    pub behind_proxy: bool,
    /// Addresses that may read `/metrics` and `/api/v1/blocklist` without a session
    /// (Prometheus, the firewall's block-list fetcher).
    pub machine_clients: Vec<IpAddr>,
    /// Extra panel files (`*.toml`) read at start, besides the built-in ones.
    pub panels_dir: Option<PathBuf>,
    /// How often pages refresh themselves.
    pub refresh: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            tls: None,
            cookie_secure: false,
            session_lifetime: Duration::from_secs(12 * 3600),
            session_idle: Duration::from_secs(3600),
            login_attempts_per_minute: 10,
            searches_per_minute: 10,
            behind_proxy: false,
            machine_clients: vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)],
            panels_dir: None,
            refresh: Duration::from_secs(30),
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM {what}; give the certificate chain and its private key in PEM")]
    NoPem { path: PathBuf, what: &'static str },
    #[error("the TLS certificate and key do not go together: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The client's address as the connection reports it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Reads the PEM certificate chain and key into a rustls server configuration.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &PathBuf| std::fs::read(path).map_err(|source| ServerError::Read { path: path.clone(), source });
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&cert_pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(ServerError::NoPem { path: files.cert.clone(), what: "certificate" });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| ServerError::NoPem { path: files.key.clone(), what: "private key" })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener whose connections are TLS: handshakes run concurrently in their own tasks
/// (a slow client never holds up the others), finished streams are handed to axum.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`, until `cancel`.
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        cancel: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        // Bounded: when axum does not take connections, the accept loop waits.
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = cancel.cancelled() => return,
                    a = listener.accept() => a,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (shutdown): wait for axum's graceful shutdown to stop us.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The Content-Security-Policy of every page: no inline script, no framing, no third party.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers to every response.
pub(crate) async fn security_headers(tls: bool, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if tls {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    }
    response
}

/// Serves until `cancel` fires, then lets in-flight requests finish (at most 5 s). With
/// `settings.tls`, every connection is TLS.
pub async fn serve(
    listener: TcpListener,
    state: crate::AppState,
    cancel: CancellationToken,
) -> Result<(), ServerError> {
    let addr = listener.local_addr()?;
    let tls = state.settings().tls.clone();
    let app = crate::router(state);
    let graceful = cancel.clone();
    let stop = async move { graceful.cancelled().await };
    let deadline = async {
        cancel.cancelled().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    match tls {
        Some(files) => {
            let config = tls_config(&files)?;
            tracing::info!(%addr, "web interface listening (HTTPS)");
            let listener = TlsListener::new(listener, config, cancel.clone())?;
            let server = axum::serve(listener, app.into_make_service_with_connect_info::<ClientAddr>())
                .with_graceful_shutdown(stop);
            tokio::select! {
                result = server => Ok(result?),
                () = deadline => {
                    tracing::warn!("web requests still running after 5 s; closing them");
                    Ok(())
                }
            }
        }
        None => {
            tracing::info!(%addr, "web interface listening (HTTP)");
            let server = axum::serve(listener, app.into_make_service_with_connect_info::<ClientAddr>())
                .with_graceful_shutdown(stop);
            tokio::select! {
                result = server => Ok(result?),
                () = deadline => {
                    tracing::warn!("web requests still running after 5 s; closing them");
                    Ok(())
                }
            }
        }
    }
}
