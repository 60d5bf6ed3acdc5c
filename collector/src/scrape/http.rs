//! Blocking HTTP GET shared by the HTTP scrapers, run on tokio's blocking pool.
//!
//! ureq rather than an async client: one small request per target per interval does not need
//! hyper's connection pool, and ureq was already in the build. Credentials in the URL
//! (`http://user:pass@host`) are sent as HTTP Basic authentication by ureq itself.

use std::time::Duration;

use super::ScrapeError;

/// Pages larger than this are refused rather than read into memory.
const MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

pub(super) async fn get_text(url: &str, timeout: Duration, accept: &'static str) -> Result<String, ScrapeError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        // ureq's own timeout ends the blocking thread; the caller's tokio timeout alone would not.
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
        let mut response = agent.get(&url).header("Accept", accept).call()?;
        Ok(response.body_mut().with_config().limit(MAX_BODY_BYTES).read_to_string()?)
    })
    .await
    .map_err(|e| ScrapeError::Task(e.to_string()))?
}

/// A tiny HTTP/1.1 server for the scrapers' tests: fixed answers by path, one request per connection.
#[cfg(test)]
pub(crate) mod test_server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves `routes` (request target → status, body) on 127.0.0.1; returns `http://127.0.0.1:PORT`.
    /// Also records each request's `Authorization` header, answered in the body of `/echo-auth`.
    pub(crate) async fn serve(routes: Vec<(&'static str, u16, String)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let routes = routes.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let auth = head
                        .lines()
                        .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
                        .unwrap_or("")
                        .to_owned();
                    let (status, body) = if target == "/echo-auth" {
                        (200, auth)
                    } else {
                        routes
                            .iter()
                            .find(|(path, _, _)| *path == target)
                            .map(|(_, status, body)| (*status, body.clone()))
                            .unwrap_or((404, "not found".to_owned()))
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }
}
