//! Availability probes: is the ENT answering, fast enough, with the right page, behind a valid
//! certificate, and does the contractual bandwidth hold?
//!
//! A probe is one check of one target, as an outside user would see it: an HTTP(S) request
//! ([`ProbeKind::Http`]: status, latency, content match, TLS certificate expiry), a TCP connection
//! ([`ProbeKind::Tcp`]), or a timed download ([`ProbeKind::Bandwidth`]) compared with the CCTP's
//! 15 Mb/s floor. Like a scrape, a failed probe is a value (`ok == false` with the reason), never an
//! `Err`: "the ENT does not answer" is the measurement. Every probe emits samples named like the
//! Prometheus blackbox exporter's (`probe_success`, `probe_duration_seconds`, …) with a `probe` label.

mod demo;
mod http;
mod tls;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use demo::{DEMO_ENT_TITLE, DemoEnt};
pub use tls::{CertificateInfo, fetch_certificate};

use crate::scrape::Sample;

/// The guaranteed bandwidth of the CCTP, in bits per second (15 Mb/s).
pub const CCTP_BANDWIDTH_FLOOR_BPS: f64 = 15_000_000.0;

/// One configured check.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// A short name, unique among probes; the `probe` label of its samples.
    pub name: String,
    pub kind: ProbeKind,
    /// The whole check (connection, TLS, request, body) must end within this time.
    pub timeout: Duration,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    Http(HttpCheck),
    /// A TCP connection to `HOST:PORT` (MariaDB, Redis, RabbitMQ, SSH…) is accepted.
    Tcp {
        address: String,
    },
    /// Downloads `url` and compares the achieved throughput with `floor_bps` (bits per second).
    Bandwidth {
        url: String,
        floor_bps: f64,
        ca_file: Option<PathBuf>,
    },
}

/// An HTTP(S) check.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub url: String,
    /// Accepted status codes; empty means any 2xx or 3xx.
    pub expect_status: Vec<u16>,
    /// Text the body must contain (the ENT's login page title, say): a 200 with an error page is down.
    pub contains: Option<String>,
    /// A PEM file of CA certificates to trust instead of the public (Mozilla) roots, for an
    /// internal PKI. The certificate's expiry is measured either way.
    pub ca_file: Option<PathBuf>,
}

/// The outcome of one probe.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub name: String,
    /// When the probe started.
    pub at: jiff::Timestamp,
    pub ok: bool,
    pub duration: Duration,
    /// Why it failed, in words for the operator (`status 503, expected 2xx or 3xx`).
    pub error: Option<String>,
    /// `probe_success`, `probe_duration_seconds` and the kind's own measures, labelled `probe`.
    pub samples: Vec<Sample>,
    /// For HTTPS: the server's certificate, when the TLS handshake got that far.
    pub certificate: Option<CertificateInfo>,
}

/// What a probe kind measured, before the common samples are added.
#[derive(Debug, Default)]
struct Measured {
    error: Option<String>,
    samples: Vec<Sample>,
    certificate: Option<CertificateInfo>,
}

impl Measured {
    fn failed(error: impl Into<String>) -> Self {
        Measured { error: Some(error.into()), ..Measured::default() }
    }
}

/// Runs one probe. Never fails and never panics: problems give `ok == false` and `error`.
pub async fn run_probe(probe: &Probe) -> ProbeResult {
    let at = jiff::Timestamp::now();
    let started = Instant::now();
    let measured = match tokio::time::timeout(probe.timeout, measure(probe)).await {
        Ok(m) => m,
        Err(_) => Measured::failed(format!("no answer within {:?}", probe.timeout)),
    };
    let duration = started.elapsed();
    let ok = measured.error.is_none();
    let mut samples = Vec::with_capacity(measured.samples.len() + 2);
    samples.push(Sample::new("probe_success", f64::from(u8::from(ok))));
    samples.push(Sample::new("probe_duration_seconds", duration.as_secs_f64()));
    samples.extend(measured.samples);
    for s in &mut samples {
        s.labels.insert(0, ("probe".to_owned(), probe.name.clone()));
    }
    if let Some(error) = &measured.error {
        tracing::debug!(probe = %probe.name, %error, "probe failed");
    }
    ProbeResult {
        name: probe.name.clone(),
        at,
        ok,
        duration,
        error: measured.error,
        samples,
        certificate: measured.certificate,
    }
}

async fn measure(probe: &Probe) -> Measured {
    match &probe.kind {
        ProbeKind::Http(check) => http::check(check, probe.timeout).await,
        ProbeKind::Tcp { address } => match tokio::net::TcpStream::connect(address.as_str()).await {
            Ok(_) => Measured::default(),
            Err(e) => Measured::failed(format!("cannot connect to {address}: {e}")),
        },
        ProbeKind::Bandwidth { url, floor_bps, ca_file } => {
            http::bandwidth(url, *floor_bps, ca_file.as_deref(), probe.timeout).await
        }
    }
}

impl Probe {
    /// Checks what can be checked before running: the URL or address syntax, the CA file.
    pub fn validate(&self) -> Result<(), String> {
        let url_ok = |url: &str| {
            let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
            if !matches!(scheme, "http" | "https") {
                return Err(format!("`{url}` is not an http:// or https:// URL"));
            }
            crate::scrape::UrlParts::parse(url).map(|_| ())
        };
        let ca_ok = |ca: &Option<PathBuf>| match ca {
            Some(path) => tls::load_ca_file(path).map(drop),
            None => Ok(()),
        };
        match &self.kind {
            ProbeKind::Http(check) => {
                url_ok(&check.url)?;
                if let Some(bad) = check.expect_status.iter().find(|s| !(100..=599).contains(*s)) {
                    return Err(format!("{bad} is not an HTTP status code"));
                }
                ca_ok(&check.ca_file)
            }
            ProbeKind::Tcp { address } => match address.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
                _ => Err(format!("`{address}` is not HOST:PORT")),
            },
            ProbeKind::Bandwidth { url, floor_bps, ca_file } => {
                url_ok(url)?;
                if floor_bps.is_nan() || *floor_bps <= 0.0 {
                    return Err("the bandwidth floor must be positive".into());
                }
                ca_ok(ca_file)
            }
        }
    }
}

#[cfg(test)]
mod tests;
