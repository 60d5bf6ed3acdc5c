//! A lean HTTP/1.1 client connection, driven inline by its virtual user's task.
//!
//! Why not hyper's `client::conn::http1` here: hyper runs each connection as a task of its own
//! and hands requests and responses (and every body frame) to it through channels, so one
//! request costs two task wake-ups and a few extra read attempts. A load generator at 10,000
//! connections on one core spends most of its time there. This connection writes the request
//! head and body with one `write`, reads the response into a per-connection buffer and parses
//! it with `httparse` (hyper's own parser), all in the calling task: the cost per request is
//! the two system calls and the parse, as in wrk.
//!
//! Framing follows RFC 9112 section 6: no body for HEAD, 1xx, 204 and 304; `Transfer-Encoding:
//! chunked` (trailers skipped); `Content-Length`; otherwise the body runs to the end of the
//! connection. Interim 1xx responses are skipped. `Connection: close` (or HTTP/1.0 without
//! keep-alive) makes the connection unusable after the response. HTTP/2 stays on hyper.

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::stats::ErrorKind;

/// Plain TCP or rustls over TCP.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// A request as the connection writes it.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) method: &'a http::Method,
    /// Origin-form target: path and query.
    pub(crate) target: &'a str,
    /// The absolute URI (HTTP/2 sends it as pseudo-headers).
    pub(crate) uri: &'a http::Uri,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) body: &'a Bytes,
}

/// What the caller wants kept from a response besides its status and size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keep {
    /// The body bytes (for extraction); otherwise only counted.
    pub(crate) body: bool,
    /// Every header (for header extraction); otherwise only `Set-Cookie`.
    pub(crate) headers: bool,
}

/// A response with its body read.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: http::HeaderMap,
    /// The body when it was asked for; empty otherwise.
    pub(crate) body: Bytes,
    pub(crate) body_len: u64,
}

/// Response heads larger than this are refused (hyper's default limit is about 400 KiB).
const MAX_HEAD: usize = 256 * 1024;
/// Header lines per response head.
const MAX_HEADERS: usize = 128;
/// Chunk-size and trailer lines longer than this are refused.
const MAX_LINE: usize = 8 * 1024;
/// The read buffer's first size; it grows for larger heads.
const READ_BUFFER: usize = 4 * 1024;

/// One kept-alive HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct H1Connection {
    io: Stream,
    /// Bytes read and not consumed yet are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The request being written, reused from one request to the next.
    out: Vec<u8>,
    /// The host header value.
    host: http::HeaderValue,
    /// False once the peer said `Connection: close`, the body ran to EOF, or an exchange failed.
    reusable: bool,
}

/// The facts of a response head that decide what comes next.
struct Head {
    status: u16,
    len: usize,
    headers: http::HeaderMap,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
}

/// Where body bytes go.
struct Sink {
    keep: bool,
    data: Vec<u8>,
    len: u64,
}

impl Sink {
    fn push(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.keep {
            self.data.extend_from_slice(bytes);
        }
    }
}

fn io_error(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => ErrorKind::Reset,
        _ => ErrorKind::Protocol,
    }
}

fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a complete response head at the start of `buf`, or `None` when more bytes are needed.
fn parse_head(buf: &[u8], all_headers: bool) -> Result<Option<Head>, ErrorKind> {
    // Left uninitialised: httparse writes the headers it finds, no need to clear 128 slots first.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ErrorKind::Protocol),
    };
    let status = response.code.ok_or(ErrorKind::Protocol)?;
    let http10 = response.version == Some(0);
    let mut head =
        Head { status, len, headers: http::HeaderMap::new(), content_length: None, chunked: false, close: false };
    let mut keep_alive = false;
    let mut transfer_encoding = false;
    for h in response.headers.iter() {
        let value = h.value;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(ErrorKind::Protocol)?;
            if head.content_length.is_some_and(|m| m != n) {
                return Err(ErrorKind::Protocol);
            }
            head.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only the last coding decides the framing.
            let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
            head.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.close |= has_token(value, "close");
            keep_alive |= has_token(value, "keep-alive");
        }
        if all_headers || h.name.eq_ignore_ascii_case("set-cookie") {
            let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| ErrorKind::Protocol)?;
            let value = http::HeaderValue::from_bytes(value).map_err(|_| ErrorKind::Protocol)?;
            head.headers.append(name, value);
        }
    }
    if transfer_encoding {
        // Transfer-Encoding overrides Content-Length (RFC 9112 section 6.3).
        head.content_length = None;
    }
    if http10 && !keep_alive {
        head.close = true;
    }
    Ok(Some(head))
}

/// Writes the request head and body into `out` (cleared first).
fn encode(out: &mut Vec<u8>, host: &http::HeaderValue, r: &Outgoing<'_>) {
    out.clear();
    out.extend_from_slice(r.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(r.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut framed = false;
    for (name, value) in r.headers {
        if name == http::header::HOST {
            continue;
        }
        framed |= name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Like hyper: a length for every body, and `0` for the methods that expect one.
    let expects_body = matches!(r.method, &http::Method::POST | &http::Method::PUT | &http::Method::PATCH);
    if !framed && (!r.body.is_empty() || expects_body) {
        let _ = write!(out, "content-length: {}\r\n", r.body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(r.body);
}

impl H1Connection {
    pub(crate) fn new(io: Stream, host: http::HeaderValue) -> H1Connection {
        H1Connection { io, buf: Vec::new(), start: 0, end: 0, out: Vec::new(), host, reusable: true }
    }

    /// Whether the connection cannot take another request: the last response ended it, or the
    /// peer closed it (or sent something unasked) while it was idle. Costs no system call while
    /// the socket has not been reported readable.
    pub(crate) fn is_closed(&mut self) -> bool {
        if !self.reusable {
            return true;
        }
        let mut probe = [0u8; 1];
        let hung_up = match &mut self.io {
            Stream::Tcp(tcp) => {
                !matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
            Stream::Tls(tls) => {
                // rustls may have session tickets to process: poll once, without waiting.
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                !Pin::new(&mut **tls).poll_read(&mut cx, &mut buf).is_pending()
            }
        };
        if hung_up {
            self.reusable = false;
        }
        hung_up
    }

    /// Sends one request and reads its whole response. On error the connection is left
    /// unusable.
    pub(crate) async fn send(&mut self, request: &Outgoing<'_>, keep: Keep) -> Result<Response, ErrorKind> {
        let result = self.exchange(request, keep).await;
        if result.is_err() {
            self.reusable = false;
        }
        result
    }

    async fn exchange(&mut self, request: &Outgoing<'_>, keep: Keep) -> Result<Response, ErrorKind> {
        self.write_head(request);
        self.io.write_all(&self.out).await.map_err(|e| io_error(&e))?;
        self.io.flush().await.map_err(|e| io_error(&e))?;
        let head = loop {
            let head = self.read_head(keep.headers).await?;
            match head.status {
                // Interim responses (100 Continue, 103 Early Hints): the real one follows.
                100 | 102..=199 => continue,
                // Nothing here asks to switch protocols.
                101 => return Err(ErrorKind::Protocol),
                _ => break head,
            }
        };
        let mut sink = Sink { keep: keep.body, data: Vec::new(), len: 0 };
        let no_body = request.method == http::Method::HEAD || head.status == 204 || head.status == 304;
        if no_body {
            // Nothing follows the head.
        } else if head.chunked {
            self.read_chunked(&mut sink).await?;
        } else if let Some(n) = head.content_length {
            self.read_exact(n, &mut sink).await?;
        } else {
            // No framing (or a coding other than chunked): the body runs until the server closes.
            self.read_to_eof(&mut sink).await?;
            self.reusable = false;
        }
        if head.close || self.start != self.end {
            // Closing, or bytes nobody asked for: do not send another request on it.
            self.reusable = false;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let status = http::StatusCode::from_u16(head.status).map_err(|_| ErrorKind::Protocol)?;
        Ok(Response { status, headers: head.headers, body: Bytes::from(sink.data), body_len: sink.len })
    }

    fn write_head(&mut self, r: &Outgoing<'_>) {
        encode(&mut self.out, &self.host, r);
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> Result<usize, ErrorKind> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < READ_BUFFER / 4 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < READ_BUFFER / 4 {
                let grown = (self.buf.len() * 2).max(READ_BUFFER);
                self.buf.resize(grown, 0);
            }
        }
        let n = self.io.read(&mut self.buf[self.end..]).await.map_err(|e| io_error(&e))?;
        self.end += n;
        Ok(n)
    }

    async fn read_head(&mut self, all_headers: bool) -> Result<Head, ErrorKind> {
        loop {
            if self.end > self.start
                && let Some(head) = parse_head(&self.buf[self.start..self.end], all_headers)?
            {
                self.start += head.len;
                return Ok(head);
            }
            if self.end - self.start > MAX_HEAD {
                return Err(ErrorKind::Protocol);
            }
            if self.fill().await? == 0 {
                // The peer closed before a complete response.
                return Err(ErrorKind::Reset);
            }
        }
    }

    async fn read_exact(&mut self, mut n: u64, sink: &mut Sink) -> Result<(), ErrorKind> {
        while n > 0 {
            if self.start == self.end && self.fill().await? == 0 {
                return Err(ErrorKind::Reset);
            }
            let take = (self.end - self.start).min(usize::try_from(n).unwrap_or(usize::MAX));
            sink.push(&self.buf[self.start..self.start + take]);
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    async fn read_to_eof(&mut self, sink: &mut Sink) -> Result<(), ErrorKind> {
        loop {
            sink.push(&self.buf[self.start..self.end]);
            self.start = self.end;
            if self.fill().await? == 0 {
                return Ok(());
            }
        }
    }

    /// One line without its CRLF (or bare LF), as a range of the buffer, consumed.
    async fn read_line(&mut self) -> Result<std::ops::Range<usize>, ErrorKind> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[self.start + searched..self.end].iter().position(|b| *b == b'\n') {
                let nl = self.start + searched + i;
                let mut line_end = nl;
                if line_end > self.start && self.buf[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                let range = self.start..line_end;
                self.start = nl + 1;
                return Ok(range);
            }
            searched = self.end - self.start;
            if searched > MAX_LINE {
                return Err(ErrorKind::Protocol);
            }
            let before = self.start;
            if self.fill().await? == 0 {
                return Err(ErrorKind::Reset);
            }
            // `fill` may have moved the unread bytes to the front; `searched` is relative.
            debug_assert!(self.start <= before);
        }
    }

    async fn read_chunked(&mut self, sink: &mut Sink) -> Result<(), ErrorKind> {
        loop {
            let line = self.read_line().await?;
            let size_text = &self.buf[line];
            let size_text = size_text.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or(ErrorKind::Protocol)?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let line = self.read_line().await?;
                    if line.is_empty() {
                        return Ok(());
                    }
                }
            }
            self.read_exact(size, sink).await?;
            let end = self.read_line().await?;
            if !end.is_empty() {
                return Err(ErrorKind::Protocol);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request (head, and body per its content-length) with the next
    /// canned reply, written in two halves to exercise partial reads; it returns the requests.
    /// After the replies it closes the connection, or waits for the client to (`hold_open`).
    async fn serve(
        replies: Vec<&'static [u8]>,
        hold_open: bool,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut requests = Vec::new();
            let mut pending = Vec::new();
            for reply in replies {
                loop {
                    if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..i]).to_ascii_lowercase();
                        let body = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                        if pending.len() >= i + 4 + body {
                            requests.push(pending.drain(..i + 4 + body).collect());
                            break;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return requests;
                    }
                    pending.extend_from_slice(&chunk[..n]);
                }
                let (a, b) = reply.split_at(reply.len() / 2);
                s.write_all(a).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                s.write_all(b).await.unwrap();
            }
            if hold_open {
                // Until the client hangs up.
                while s.read(&mut [0u8; 64]).await.is_ok_and(|n| n > 0) {}
            }
            requests
        });
        (addr, task)
    }

    async fn connect(addr: std::net::SocketAddr) -> H1Connection {
        let tcp = TcpStream::connect(addr).await.unwrap();
        H1Connection::new(Stream::Tcp(tcp), http::HeaderValue::from_static("example.test"))
    }

    fn get<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap, body: &'a Bytes) -> Outgoing<'a> {
        Outgoing { method: &http::Method::GET, target: uri.path(), uri, headers, body }
    }

    const KEEP_ALL: Keep = Keep { body: true, headers: true };

    #[tokio::test]
    async fn content_length_chunked_interim_and_bodiless_responses_keep_the_connection() {
        let (addr, server) = serve(
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nset-cookie: a=1\r\nx-id: 7\r\n\r\nhello",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nset-cookie: b=2\r\nx-id: 8\r\n\
              transfer-encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\ntrailer: x\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n",
            ],
            true,
        )
        .await;
        let (headers, body) = (http::HeaderMap::new(), Bytes::new());
        let uri: http::Uri = "http://example.test/a".parse().unwrap();
        let mut c = connect(addr).await;
        let r = c.send(&get(&uri, &headers, &body), KEEP_ALL).await.unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..], r.body_len), (200, &b"hello"[..], 5));
        assert_eq!(r.headers.get("x-id").unwrap(), "7");
        assert_eq!(r.headers.get("set-cookie").unwrap(), "a=1");
        assert!(!c.is_closed());
        // Neither body nor headers asked for: the body is counted, only Set-Cookie is kept.
        let r = c.send(&get(&uri, &headers, &body), Keep { body: false, headers: false }).await.unwrap();
        assert_eq!((r.status.as_u16(), r.body.len(), r.body_len), (201, 0, 9));
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers.get("set-cookie").unwrap(), "b=2");
        let r = c.send(&get(&uri, &headers, &body), KEEP_ALL).await.unwrap();
        assert_eq!((r.status.as_u16(), r.body_len), (204, 0));
        let r = c.send(&get(&uri, &headers, &body), KEEP_ALL).await.unwrap();
        assert_eq!((r.status.as_u16(), r.body_len), (304, 0));
        assert!(!c.is_closed());
        drop(c);
        let requests = server.await.unwrap();
        assert_eq!(requests.len(), 4);
        assert_eq!(requests[0], b"GET /a HTTP/1.1\r\nhost: example.test\r\n\r\n");
    }

    #[tokio::test]
    async fn a_peer_closing_an_idle_connection_is_noticed_before_the_next_request() {
        let (addr, server) = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"], false).await;
        let (headers, body) = (http::HeaderMap::new(), Bytes::new());
        let uri: http::Uri = "http://example.test/".parse().unwrap();
        let mut c = connect(addr).await;
        c.send(&get(&uri, &headers, &body), KEEP_ALL).await.unwrap();
        // The server's task ends and closes its socket; the runtime then sees it readable.
        server.await.unwrap();
        let mut closed = false;
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if c.is_closed() {
                closed = true;
                break;
            }
        }
        assert!(closed);
    }

    #[tokio::test]
    async fn close_delimited_and_connection_close_responses_end_the_connection() {
        let (headers, body) = (http::HeaderMap::new(), Bytes::new());
        let uri: http::Uri = "http://example.test/".parse().unwrap();
        let (addr, _server) =
            serve(vec![b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"], true).await;
        let mut c = connect(addr).await;
        let r = c.send(&get(&uri, &headers, &body), KEEP_ALL).await.unwrap();
        assert_eq!(&r.body[..], b"ok");
        assert!(c.is_closed());

        let (addr, _server) = serve(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil the end"], false).await;
        let mut c = connect(addr).await;
        let r = c.send(&get(&uri, &headers, &body), KEEP_ALL).await.unwrap();
        assert_eq!((&r.body[..], r.body_len), (&b"until the end"[..], 13));
        assert!(c.is_closed());
    }

    #[tokio::test]
    async fn truncated_and_malformed_responses_are_reset_and_protocol_errors() {
        let (headers, body) = (http::HeaderMap::new(), Bytes::new());
        let uri: http::Uri = "http://example.test/".parse().unwrap();
        let (addr, _server) = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort"], false).await;
        let mut c = connect(addr).await;
        assert_eq!(c.send(&get(&uri, &headers, &body), KEEP_ALL).await.unwrap_err(), ErrorKind::Reset);
        assert!(c.is_closed());

        for reply in [
            &b"SMTP ready\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nwiki\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            let (addr, _server) = serve(vec![reply], true).await;
            let mut c = connect(addr).await;
            let err = c.send(&get(&uri, &headers, &body), KEEP_ALL).await.unwrap_err();
            assert_eq!(err, ErrorKind::Protocol, "{}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn requests_carry_the_host_their_headers_and_the_body_length() {
        let uri: http::Uri = "http://example.test/login?x=1".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-token", http::HeaderValue::from_static("t1"));
        headers.insert(http::header::HOST, http::HeaderValue::from_static("ignored"));
        let body = Bytes::from_static(b"a=1");
        let host = http::HeaderValue::from_static("example.test:8080");
        let mut out = b"stale".to_vec();
        let post =
            Outgoing { method: &http::Method::POST, target: "/login?x=1", uri: &uri, headers: &headers, body: &body };
        encode(&mut out, &host, &post);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /login?x=1 HTTP/1.1\r\nhost: example.test:8080\r\nx-token: t1\r\ncontent-length: 3\r\n\r\na=1"
        );
        // An empty POST says so; an empty GET sends no length.
        let empty = Bytes::new();
        let none = http::HeaderMap::new();
        encode(&mut out, &host, &Outgoing { body: &empty, headers: &none, ..post });
        assert!(String::from_utf8_lossy(&out).ends_with("\r\ncontent-length: 0\r\n\r\n"));
        encode(&mut out, &host, &Outgoing { method: &http::Method::GET, body: &empty, headers: &none, ..post });
        assert_eq!(String::from_utf8(out).unwrap(), "GET /login?x=1 HTTP/1.1\r\nhost: example.test:8080\r\n\r\n");
    }
}
