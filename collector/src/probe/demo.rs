//! The demo's ENT front page: a tiny local HTTP server that answers like the generated traffic
//! says the ENT does — 200 with the login page, and 503 during the scenario's outage — so that
//! `vigie demo`'s probes measure a real outage over a real socket.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::source::demo::Scenario;

/// The page the demo ENT serves while it is up; probes look for this title.
pub const DEMO_ENT_TITLE: &str = "Beneylu School - Connexion";
/// The size of the demo's bandwidth test file.
const DOWNLOAD_BYTES: usize = 4 * 1024 * 1024;

/// A running demo ENT. Its clock starts when it is bound, like the demo sources'.
#[derive(Debug)]
pub struct DemoEnt {
    listener: TcpListener,
    scenario: Scenario,
    started: Instant,
}

impl DemoEnt {
    /// Binds `127.0.0.1:0`.
    pub async fn bind(scenario: Scenario) -> std::io::Result<DemoEnt> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(DemoEnt { listener, scenario, started: Instant::now() })
    }

    /// `http://127.0.0.1:PORT`: the login page is at `/`, the bandwidth file at `/download`.
    pub fn base_url(&self) -> std::io::Result<String> {
        Ok(format!("http://{}", self.listener.local_addr()?))
    }

    fn down(&self) -> bool {
        let cycle = self.scenario.cycle.as_nanos().max(1);
        let in_cycle = self.started.elapsed().as_nanos() % cycle;
        self.scenario.outage.start.as_nanos() <= in_cycle && in_cycle < self.scenario.outage.end.as_nanos()
    }

    /// Serves until `stop` fires. One request per connection.
    pub async fn serve(self, stop: CancellationToken) -> std::io::Result<()> {
        let this = Arc::new(self);
        let download: Arc<[u8]> = (0..DOWNLOAD_BYTES).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
        loop {
            let (mut stream, _) = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                accepted = this.listener.accept() => accepted?,
            };
            let (this, download) = (this.clone(), download.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (status, reason, body): (u16, &str, Vec<u8>) = if this.down() {
                    (503, "Service Unavailable", b"<html><body>Service indisponible</body></html>".to_vec())
                } else if path == "/download" {
                    (200, "OK", download.to_vec())
                } else {
                    let page = format!("<html><head><title>{DEMO_ENT_TITLE}</title></head><body>ENT</body></html>");
                    (200, "OK", page.into_bytes())
                };
                let header = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                if stream.write_all(header.as_bytes()).await.is_ok() {
                    let _ = stream.write_all(&body).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    }
}
