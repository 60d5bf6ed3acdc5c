//! Receiving syslog from firewalls and servers: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425).
//!
//! This is how Stormshield and pfSense ship their logs. Each received message becomes a
//! [`RawRecord`] whose `line` is the frame exactly as sent — `<PRI>` and RFC 3164 / RFC 5424
//! header included — so the `netfilter`, `filterlog`, `stormshield` and `auto` parsers read
//! the envelope themselves.
//!
//! Socket tasks feed one bounded queue that [`Source::read`] drains. When the queue is full,
//! UDP datagrams are dropped and counted (a UDP sender cannot be slowed down, and the kernel
//! would drop them anyway once its buffer is full), while TCP and TLS peers simply stop being
//! read, so their own buffers fill and they wait: backpressure. Messages longer than
//! `max_frame` are cut to that length and counted; no peer can make us allocate more.
//!
//! **Delivery guarantee.** A syslog sender cannot resend, so the checkpoint cannot bring
//! anything back: the messages received but not yet acknowledged downstream (those in the
//! queue and in flight in the pipeline) are lost if the process crashes, as with Vector's
//! memory buffer. A clean shutdown loses nothing that was handed out.
//!
//! Positions are a sequence number. Event ids are `source:position`, so positions must never
//! repeat across restarts, even after a crash that lost acknowledgements; each run therefore
//! starts numbering at the current time in microseconds, or after the checkpoint if that is
//! further (see [`first_position`]).

mod framing;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Checkpoint, Source, SourceError};
use crate::pipe::RawRecord;
use framing::{Frame, Framer};

/// The checkpoint identity of a syslog source: its positions are sequence numbers.
const IDENTITY: &str = "syslog";

/// Concurrent TCP/TLS peers, at most; further peers wait in the listen backlog. Each costs
/// a read buffer and up to one `max_frame`.
const MAX_CONNECTIONS: usize = 1024;

/// A peer that opens a connection and does not finish the TLS handshake is dropped after this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const READ_BUFFER: usize = 16 * 1024;

/// The largest UDP payload (65,535 minus the IPv4 and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

/// Pause after a socket error, so that a persistent one (no file descriptors left) does not
/// spin a core.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Where a syslog source listens. Raw values: the configuration validates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Address to receive UDP datagrams on, one message each (RFC 5426); usually port 514.
    pub udp: Option<SocketAddr>,
    /// Address to accept TCP connections on (RFC 6587, octet counting or LF/NUL delimited);
    /// with `tls`, connections on it speak TLS only (RFC 5425; usually port 6514).
    pub tcp: Option<SocketAddr>,
    /// The certificate and key presented to TLS peers; needs `tcp`.
    pub tls: Option<TlsFiles>,
    /// Messages longer than this many bytes are truncated to it and counted.
    pub max_frame: usize,
}

impl SyslogConfig {
    /// Messages longer than this are truncated, unless configured otherwise.
    pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig { udp: None, tcp: None, tls: None, max_frame: SyslogConfig::DEFAULT_MAX_FRAME }
    }
}

/// PEM files for the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate, followed by its intermediate certificates.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What the listeners have seen, for the dashboards. Cheap to clone; stays readable after
/// the source itself moved into [`run_source`](super::run_source).
#[derive(Debug, Clone, Default)]
pub struct SyslogStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    dropped: AtomicU64,
    oversized: AtomicU64,
    framing_errors: AtomicU64,
    connections: AtomicU64,
}

impl SyslogStats {
    /// Messages queued for reading, from every transport.
    pub fn received_messages(&self) -> u64 {
        self.0.received.load(Ordering::Relaxed)
    }

    /// UDP datagrams dropped because the queue was full (the pipeline fell behind).
    pub fn dropped_datagrams(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// Messages longer than `max_frame`, queued truncated.
    pub fn oversized_messages(&self) -> u64 {
        self.0.oversized.load(Ordering::Relaxed)
    }

    /// TCP/TLS connections closed because their stream broke its framing.
    pub fn framing_errors(&self) -> u64 {
        self.0.framing_errors.load(Ordering::Relaxed)
    }

    /// TCP/TLS peers connected now.
    pub fn open_connections(&self) -> u64 {
        self.0.connections.load(Ordering::Relaxed)
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A syslog receiver. Binding starts the listeners; dropping the source stops them.
#[derive(Debug)]
pub struct SyslogSource {
    id: Arc<str>,
    queue: mpsc::Receiver<String>,
    next: u64,
    stats: SyslogStats,
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    _stop: DropGuard,
}

impl SyslogSource {
    /// Messages waiting for [`Source::read`], at most, with [`SyslogSource::bind`]. About a
    /// second of a busy firewall; the memory bound is this times `max_frame` (256 MiB at the
    /// default 64 KiB), though real messages are a few hundred bytes.
    pub const DEFAULT_QUEUE: usize = 4096;

    /// Binds the configured addresses and starts receiving, with a queue of
    /// [`SyslogSource::DEFAULT_QUEUE`] messages. Must run inside a Tokio runtime. Errors
    /// name the address or file at fault.
    pub async fn bind(id: impl Into<Arc<str>>, config: &SyslogConfig) -> Result<SyslogSource, SourceError> {
        SyslogSource::bind_with_queue(id, config, SyslogSource::DEFAULT_QUEUE).await
    }

    /// [`SyslogSource::bind`] with a queue of `queue` messages (at least one).
    pub async fn bind_with_queue(
        id: impl Into<Arc<str>>,
        config: &SyslogConfig,
        queue: usize,
    ) -> Result<SyslogSource, SourceError> {
        let id: Arc<str> = id.into();
        let usage = |what: &str, message: &str| SourceError::Io {
            source_id: id.to_string(),
            path: what.to_owned(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, message.to_owned()),
        };
        if config.udp.is_none() && config.tcp.is_none() {
            return Err(usage("syslog", "no address to listen on: set `udp` and/or `tcp`"));
        }
        if config.tls.is_some() && config.tcp.is_none() {
            return Err(usage("syslog", "`tls` needs a `tcp` address to listen on (usually port 6514)"));
        }
        let max_frame = config.max_frame.max(1);
        let acceptor = config.tls.as_ref().map(|files| tls::acceptor(&id, files)).transpose()?;
        let udp = match config.udp {
            Some(addr) => Some(UdpSocket::bind(addr).await.map_err(|e| bind_error(&id, "udp", addr, e))?),
            None => None,
        };
        let tcp = match config.tcp {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| bind_error(&id, "tcp", addr, e))?),
            None => None,
        };
        let udp_addr = udp
            .as_ref()
            .map(UdpSocket::local_addr)
            .transpose()
            .map_err(|e| bind_error(&id, "udp", config.udp.expect("bound"), e))?;
        let tcp_addr = tcp
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()
            .map_err(|e| bind_error(&id, "tcp", config.tcp.expect("bound"), e))?;

        // The one queue between the sockets and `read`: bounded, full means drop (UDP) or wait (TCP).
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = SyslogStats::default();
        let cancel = CancellationToken::new();
        let inbound = Inbound { id: id.clone(), tx, max_frame, stats: stats.clone(), cancel: cancel.clone() };
        if let Some(socket) = udp {
            tracing::info!(source = %id, address = %udp_addr.expect("bound"), "syslog listening on udp");
            tokio::spawn(inbound.clone().receive_udp(socket));
        }
        if let Some(listener) = tcp {
            let transport = if acceptor.is_some() { "tls" } else { "tcp" };
            tracing::info!(source = %id, address = %tcp_addr.expect("bound"), transport, "syslog listening");
            tokio::spawn(inbound.accept(listener, acceptor));
        }
        Ok(SyslogSource {
            next: first_position(None, jiff::Timestamp::now()),
            id,
            queue: rx,
            stats,
            udp_addr,
            tcp_addr,
            _stop: cancel.drop_guard(),
        })
    }

    /// The UDP address actually bound (with the port chosen when configured as 0).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The TCP (or TLS) address actually bound.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The listeners' counters; keep a clone before handing the source to `run_source`.
    pub fn stats(&self) -> SyslogStats {
        self.stats.clone()
    }

    /// UDP datagrams dropped because the queue was full.
    pub fn dropped_datagrams(&self) -> u64 {
        self.stats.dropped_datagrams()
    }
}

fn bind_error(id: &str, transport: &str, addr: SocketAddr, error: std::io::Error) -> SourceError {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another program (rsyslog?) already listens there: stop it or choose another port"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: grant it or choose a port above 1024"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "; this machine has no such address: listen on 0.0.0.0 or one of its own"
        }
        _ => "",
    };
    SourceError::Io {
        source_id: id.to_owned(),
        path: format!("{transport}://{addr}"),
        error: std::io::Error::new(error.kind(), format!("cannot listen there: {error}{hint}")),
    }
}

/// Where numbering starts for a run: after the checkpoint, and no earlier than `now` in
/// microseconds since 1970. The second bound keeps ids unique across a crash, when records
/// were numbered past the checkpoint but never acknowledged; it holds as long as a run
/// averages under a million messages a second.
fn first_position(checkpoint: Option<&Checkpoint>, now: jiff::Timestamp) -> u64 {
    let floor = u64::try_from(now.as_microsecond()).unwrap_or(0);
    let after = checkpoint.filter(|c| c.identity == IDENTITY).map_or(0, |c| c.position);
    floor.max(after)
}

/// What every socket task shares.
#[derive(Debug, Clone)]
struct Inbound {
    id: Arc<str>,
    tx: mpsc::Sender<String>,
    max_frame: usize,
    stats: SyslogStats,
    cancel: CancellationToken,
}

impl Inbound {
    async fn receive_udp(self, socket: UdpSocket) {
        // One byte more than a message may have, to tell a message of exactly `max_frame`
        // bytes from a longer one the kernel cut to fit.
        let mut buf = vec![0u8; self.max_frame.min(MAX_DATAGRAM) + 1];
        loop {
            let received = tokio::select! {
                () = self.cancel.cancelled() => return,
                received = socket.recv_from(&mut buf) => received,
            };
            let (len, peer) = match received {
                Ok(r) => r,
                Err(error) => {
                    tracing::warn!(source = %self.id, %error, "cannot receive a syslog datagram");
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            };
            let truncated = len > self.max_frame;
            let mut bytes = &buf[..len.min(self.max_frame)];
            while let [rest @ .., b'\n' | b'\r' | b'\0'] = bytes {
                bytes = rest;
            }
            if bytes.is_empty() {
                continue;
            }
            if truncated {
                let n = SyslogStats::count(&self.stats.0.oversized);
                tracing::debug!(source = %self.id, %peer, max_frame = self.max_frame, oversized = n, "syslog datagram truncated");
            }
            match self.tx.try_send(to_line(bytes.to_vec())) {
                Ok(()) => {
                    SyslogStats::count(&self.stats.0.received);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let n = SyslogStats::count(&self.stats.0.dropped);
                    // Every drop is counted; the log says so at 1, 2, 4, 8... to stay readable.
                    if n.is_power_of_two() {
                        tracing::warn!(source = %self.id, dropped = n, "syslog queue full, dropping udp datagrams");
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }

    async fn accept(self, listener: TcpListener, acceptor: Option<TlsAcceptor>) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let slot = tokio::select! {
                () = self.cancel.cancelled() => return,
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            };
            let accepted = tokio::select! {
                () = self.cancel.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(source = %self.id, %error, "cannot accept a syslog connection");
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            };
            let this = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                this.stats.0.connections.fetch_add(1, Ordering::Relaxed);
                this.serve(stream, peer, acceptor).await;
                this.stats.0.connections.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
            });
        }
    }

    async fn serve(&self, stream: TcpStream, peer: SocketAddr, acceptor: Option<TlsAcceptor>) {
        tracing::debug!(source = %self.id, %peer, "syslog peer connected");
        let Some(acceptor) = acceptor else {
            return self.read_stream(stream, peer).await;
        };
        let handshake = tokio::select! {
            () = self.cancel.cancelled() => return,
            handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => handshake,
        };
        match handshake {
            Ok(Ok(stream)) => self.read_stream(stream, peer).await,
            Ok(Err(error)) => tracing::warn!(source = %self.id, %peer, %error, "syslog tls handshake failed"),
            Err(_) => tracing::warn!(source = %self.id, %peer, "syslog tls handshake timed out"),
        }
    }

    /// Frames one connection until it closes, breaks its framing, or the source is dropped.
    async fn read_stream<S: AsyncRead + Unpin>(&self, mut stream: S, peer: SocketAddr) {
        let mut framer = Framer::new(self.max_frame);
        let mut buf = vec![0u8; READ_BUFFER];
        let mut frames = Vec::new();
        loop {
            let read = tokio::select! {
                () = self.cancel.cancelled() => return,
                read = stream.read(&mut buf) => read,
            };
            let len = match read {
                Ok(0) => break,
                Ok(len) => len,
                Err(error) => {
                    // A TLS peer that closes without close_notify lands here too.
                    tracing::debug!(source = %self.id, %peer, %error, "syslog connection ended with an error");
                    break;
                }
            };
            let framed = framer.push(&buf[..len], &mut frames);
            for frame in frames.drain(..) {
                if !self.deliver(frame).await {
                    return;
                }
            }
            if let Err(error) = framed {
                SyslogStats::count(&self.stats.0.framing_errors);
                tracing::warn!(source = %self.id, %peer, framing = ?framer.framing(), %error,
                    "closing a syslog connection that broke its framing");
                return;
            }
        }
        match framer.finish() {
            Ok(Some(frame)) => {
                self.deliver(frame).await;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(source = %self.id, %peer, %error, "syslog connection closed mid-message"),
        }
        tracing::debug!(source = %self.id, %peer, "syslog peer disconnected");
    }

    /// Queues a message, waiting while the queue is full: the peer is not read meanwhile,
    /// which is the backpressure. False when the source is gone.
    async fn deliver(&self, frame: Frame) -> bool {
        if frame.truncated {
            SyslogStats::count(&self.stats.0.oversized);
        }
        let sent = tokio::select! {
            () = self.cancel.cancelled() => return false,
            sent = self.tx.send(to_line(frame.bytes)) => sent,
        };
        if sent.is_ok() {
            SyslogStats::count(&self.stats.0.received);
        }
        sent.is_ok()
    }
}

/// The message as text; RFC 5424 says UTF-8, older senders may use Latin-1, whose bytes
/// are replaced rather than the message lost.
fn to_line(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Source for SyslogSource {
    fn id(&self) -> &Arc<str> {
        &self.id
    }

    fn resume(&mut self, checkpoint: Option<&Checkpoint>) -> Result<(), SourceError> {
        self.next = first_position(checkpoint, jiff::Timestamp::now());
        Ok(())
    }

    /// Returns what is queued, up to `max`, without waiting for more.
    async fn read(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        let mut lines = Vec::new();
        if self.queue.is_empty() && !self.queue.is_closed() {
            return Ok(Some(Vec::new()));
        }
        // Cancel-safe: nothing is taken from the queue unless this returns.
        if self.queue.recv_many(&mut lines, max.max(1)).await == 0 {
            return Err(SourceError::Io {
                source_id: self.id.to_string(),
                path: "syslog".to_owned(),
                error: std::io::Error::other("every syslog listener stopped"),
            });
        }
        let records = lines
            .into_iter()
            .map(|line| {
                let position = self.next;
                self.next += 1;
                RawRecord { source: self.id.clone(), position, file: None, line }
            })
            .collect();
        Ok(Some(records))
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint { position: self.next, identity: IDENTITY.to_owned() }
    }
}

#[cfg(test)]
mod tests;
