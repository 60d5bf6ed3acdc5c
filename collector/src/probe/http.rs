//! The HTTP(S) check and the bandwidth download, with ureq on tokio's blocking pool (as the HTTP
//! scrapers do), and the certificate read by a separate TLS handshake (see `tls.rs`).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{HttpCheck, Measured, tls};
use crate::scrape::Sample;

/// Bodies longer than this are not read further for a content match.
const MAX_CHECK_BODY: u64 = 8 * 1024 * 1024;
/// A bandwidth download stops after this many bytes (the measure is then taken on them).
const MAX_DOWNLOAD: u64 = 256 * 1024 * 1024;

fn agent(timeout: Duration, ca_file: Option<&Path>) -> Result<ureq::Agent, String> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // A 503 is an answer to judge, not a transport error.
        .http_status_as_error(false)
        .max_redirects(5);
    if let Some(path) = ca_file {
        let certs = tls::load_ca_file(path)?;
        let certs: Vec<ureq::tls::Certificate<'static>> =
            certs.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()).collect();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs))).build(),
        );
    }
    Ok(config.build().into())
}

pub(super) async fn check(check: &HttpCheck, timeout: Duration) -> Measured {
    let cert_task = if check.url.starts_with("https://") {
        let (url, ca) = (check.url.clone(), check.ca_file.clone());
        Some(tokio::spawn(async move { tls::fetch_certificate(&url, ca.as_deref(), timeout).await }))
    } else {
        None
    };
    let request = {
        let (url, ca) = (check.url.clone(), check.ca_file.clone());
        tokio::task::spawn_blocking(move || -> Result<(u16, Duration, String), String> {
            let agent = agent(timeout, ca.as_deref())?;
            let started = Instant::now();
            let mut response = agent.get(&url).call().map_err(|e| format!("request failed: {e}"))?;
            let latency = started.elapsed();
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_CHECK_BODY)
                .lossy_utf8(true)
                .read_to_string()
                .map_err(|e| format!("status {status}, but the body could not be read: {e}"))?;
            Ok((status, latency, body))
        })
    };
    let outcome = request.await.unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
    let mut m = Measured::default();
    if let Some(task) = cert_task {
        match task.await {
            Ok(Ok(cert)) => {
                m.samples
                    .push(Sample::new("probe_tls_cert_expiry_timestamp_seconds", cert.not_after.as_second() as f64));
                m.samples.push(Sample::new("probe_tls_cert_trusted", f64::from(u8::from(cert.trusted()))));
                m.certificate = Some(cert);
            }
            Ok(Err(e)) => tracing::debug!(url = %check.url, error = %e, "no certificate read"),
            Err(e) => tracing::debug!(url = %check.url, error = %e, "certificate task failed"),
        }
    }
    let (status, latency, body) = match outcome {
        Ok(x) => x,
        Err(e) => {
            m.error = Some(match &m.certificate {
                Some(cert) if !cert.trusted() => {
                    format!("{e} (certificate: {})", cert.problem.as_deref().unwrap_or(""))
                }
                _ => e,
            });
            return m;
        }
    };
    m.samples.push(Sample::new("probe_http_status_code", f64::from(status)));
    m.samples.push(Sample::new("probe_http_duration_seconds", latency.as_secs_f64()));
    m.samples.push(Sample::new("probe_http_content_length", body.len() as f64));
    let status_ok = if check.expect_status.is_empty() {
        (200..400).contains(&status)
    } else {
        check.expect_status.contains(&status)
    };
    if !status_ok {
        let expected = if check.expect_status.is_empty() {
            "2xx or 3xx".to_owned()
        } else {
            check.expect_status.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
        };
        m.error = Some(format!("status {status}, expected {expected}"));
    }
    if let Some(needle) = &check.contains {
        let found = body.contains(needle.as_str());
        m.samples.push(Sample::new("probe_http_content_matched", f64::from(u8::from(found))));
        if !found && m.error.is_none() {
            m.error = Some(format!("status {status} but the page does not contain {needle:?}"));
        }
    }
    m
}

pub(super) async fn bandwidth(url: &str, floor_bps: f64, ca_file: Option<&Path>, timeout: Duration) -> Measured {
    let (url_owned, ca) = (url.to_owned(), ca_file.map(Path::to_owned));
    let outcome = tokio::task::spawn_blocking(move || -> Result<(u64, Duration), String> {
        let agent = agent(timeout, ca.as_deref())?;
        let mut response = agent.get(&url_owned).call().map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(format!("download answered status {status}"));
        }
        // Timed from the first byte of the body: the floor is about throughput, not latency.
        let mut reader = response.body_mut().as_reader();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let started = Instant::now();
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    total += n as u64;
                    if total >= MAX_DOWNLOAD {
                        break;
                    }
                }
                Err(e) => return Err(format!("download interrupted after {total} bytes: {e}")),
            }
        }
        Ok((total, started.elapsed()))
    })
    .await
    .unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
    let (bytes, elapsed) = match outcome {
        Ok(x) => x,
        Err(e) => return Measured::failed(e),
    };
    let mut m = Measured::default();
    // Below ~1 ms the clock's resolution dominates; such a tiny file cannot measure 15 Mb/s.
    if bytes == 0 || elapsed < Duration::from_millis(1) {
        m.error = Some(format!(
            "the download ({bytes} bytes in {elapsed:?}) is too small to measure a throughput; use a file of a few MB"
        ));
        return m;
    }
    let bps = bytes as f64 * 8.0 / elapsed.as_secs_f64();
    m.samples.push(Sample::new("probe_bandwidth_bits_per_second", bps));
    m.samples.push(Sample::new("probe_bandwidth_floor_bits_per_second", floor_bps));
    m.samples.push(Sample::new("probe_bandwidth_bytes", bytes as f64));
    if bps < floor_bps {
        m.error = Some(format!(
            "throughput {:.1} Mb/s is below the {:.1} Mb/s floor",
            bps / 1_000_000.0,
            floor_bps / 1_000_000.0
        ));
    }
    m
}
