//! Anti-virus watch (CCTP 4.2.5): how old each server's ClamAV signature database is.
//!
//! Two sources: clamd's `VERSION` command (over TCP or its unix socket), whose answer carries
//! the build time of the loaded `daily` database — `ClamAV 1.0.7/27580/Mon Apr  7 08:24:02 2025`
//! — or freshclam's log, whose last "up-to-date"/"updated" line tells when the database was last
//! brought up to date. clamd prints that time in the server's local time (C's `ctime`), so it is
//! read in the configured time zone.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::scrape::Sample;

/// Where a server's signature age is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamavSource {
    /// clamd's TCP address, `HOST:PORT` (3310).
    Tcp(String),
    /// clamd's unix socket (`/run/clamav/clamd.ctl`).
    Unix(PathBuf),
    /// freshclam's log (`/var/log/clamav/freshclam.log`).
    FreshclamLog(PathBuf),
}

/// What was read of one server's signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClamavStatus {
    pub server: String,
    /// When the signatures were built (clamd) or last brought up to date (freshclam).
    pub updated: Option<Timestamp>,
    /// The `daily` database version, when known.
    pub version: Option<u64>,
    pub max_age: Duration,
    pub error: Option<String>,
}

impl ClamavStatus {
    /// Age of the signatures at `now`.
    pub fn age(&self, now: Timestamp) -> Option<Duration> {
        let secs = now.duration_since(self.updated?).as_secs_f64().max(0.0);
        Some(Duration::from_secs_f64(secs))
    }

    /// `clamav_up`, `clamav_signature_age_seconds`, `clamav_signature_max_age_seconds` and
    /// `clamav_signature_version`, labelled `server`.
    pub fn samples(&self, now: Timestamp) -> Vec<Sample> {
        let mut out = vec![
            Sample::new("clamav_up", f64::from(u8::from(self.error.is_none()))),
            Sample::new("clamav_signature_max_age_seconds", self.max_age.as_secs_f64()),
        ];
        if let Some(age) = self.age(now) {
            out.push(Sample::new("clamav_signature_age_seconds", age.as_secs_f64()));
        }
        if let Some(v) = self.version {
            out.push(Sample::new("clamav_signature_version", v as f64));
        }
        out.into_iter().map(|s| s.with_label("server", self.server.as_str())).collect()
    }
}

/// Parses clamd's answer to `VERSION`: `ClamAV 1.0.7/27580/Mon Apr  7 08:24:02 2025`.
pub fn parse_clamd_version(reply: &str, tz: &TimeZone) -> Result<(u64, Timestamp), String> {
    let reply = reply.trim_end_matches(['\0', '\n', '\r']).trim();
    let mut parts = reply.splitn(3, '/');
    let engine = parts.next().unwrap_or_default();
    if !engine.starts_with("ClamAV ") {
        return Err(format!("`{reply}` is not a clamd VERSION reply (ClamAV x.y.z/DB/DATE)"));
    }
    let (Some(version), Some(date)) = (parts.next(), parts.next()) else {
        return Err(format!("`{reply}` has no signature database version and date; is clamd's database loaded?"));
    };
    let version = version.parse().map_err(|_| format!("`{version}` is not a database version"))?;
    Ok((version, parse_ctime(date, tz)?))
}

/// Parses C's `ctime` format, `Mon Apr  7 08:24:02 2025`, as a local time in `tz`.
fn parse_ctime(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let normalized = match words.as_slice() {
        [_weekday, month, day, time, year] => format!("{month} {day:0>2} {time} {year}"),
        _ => return Err(format!("`{text}` is not a date like `Mon Apr  7 08:24:02 2025`")),
    };
    let dt = jiff::civil::DateTime::strptime("%b %d %H:%M:%S %Y", &normalized)
        .map_err(|e| format!("`{text}` is not a date like `Mon Apr  7 08:24:02 2025`: {e}"))?;
    tz.to_ambiguous_timestamp(dt).compatible().map_err(|e| format!("`{text}`: {e}"))
}

/// The last time freshclam's log says the `daily` database was up to date or updated, and its
/// version. Lines look like `Mon Apr  7 08:00:01 2025 -> daily.cld database is up-to-date
/// (version: 27580, sigs: 2073400, f-level: 90, builder: raynman)` or `… -> daily.cvd updated
/// (version: 27581, …)`.
pub fn parse_freshclam_log(text: &str, tz: &TimeZone) -> Option<(Timestamp, Option<u64>)> {
    text.lines().rev().find_map(|line| {
        let (date, message) = line.split_once(" -> ")?;
        let daily = message.starts_with("daily.");
        let good =
            message.contains("is up-to-date") || message.contains("is up to date") || message.contains(" updated");
        if !daily || !good {
            return None;
        }
        let at = parse_ctime(date.trim(), tz).ok()?;
        let version = message
            .split_once("version: ")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok());
        Some((at, version))
    })
}

async fn ask_version<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
) -> std::io::Result<String> {
    // The `z` prefix: a NUL-terminated command and reply (clamd's documented framing).
    stream.write_all(b"zVERSION\0").await?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.contains(&0) || reply.len() > 4096 {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Reads `server`'s signature age from `source`. Never fails: problems are in `error`.
pub async fn check_clamav(
    server: &str,
    source: &ClamavSource,
    max_age: Duration,
    tz: &TimeZone,
    timeout: Duration,
) -> ClamavStatus {
    let mut status = ClamavStatus { server: server.to_owned(), updated: None, version: None, max_age, error: None };
    let reply = match source {
        ClamavSource::Tcp(addr) => {
            let fut = async { ask_version(tokio::net::TcpStream::connect(addr.as_str()).await?).await };
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| format!("clamd at {addr}: no answer within {timeout:?}"))
                .and_then(|r| r.map_err(|e| format!("clamd at {addr}: {e}")))
        }
        ClamavSource::Unix(path) => {
            let fut = async { ask_version(tokio::net::UnixStream::connect(path).await?).await };
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| format!("clamd at {}: no answer within {timeout:?}", path.display()))
                .and_then(|r| r.map_err(|e| format!("clamd at {}: {e}", path.display())))
        }
        ClamavSource::FreshclamLog(path) => {
            match tokio::fs::read_to_string(path).await {
                Ok(text) => match parse_freshclam_log(&text, tz) {
                    Some((at, version)) => {
                        status.updated = Some(at);
                        status.version = version;
                    }
                    None => {
                        status.error = Some(format!(
                            "{}: no line saying the daily database is up to date or updated",
                            path.display()
                        ))
                    }
                },
                Err(e) => status.error = Some(format!("cannot read {}: {e}", path.display())),
            }
            return status;
        }
    };
    match reply.and_then(|r| parse_clamd_version(&r, tz)) {
        Ok((version, at)) => {
            status.version = Some(version);
            status.updated = Some(at);
        }
        Err(e) => status.error = Some(e),
    }
    status
}
