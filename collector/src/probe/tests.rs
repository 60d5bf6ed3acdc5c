use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A test web server whose answer the test changes while it runs: `status` is read at each
/// request; `/big` serves `big` bytes.
struct Server {
    base: String,
    status: Arc<AtomicU16>,
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn response(status: u16, path: &str, big: usize) -> Vec<u8> {
    let body: Vec<u8> =
        if path == "/big" { vec![b'x'; big] } else { b"<title>Beneylu School - Connexion</title>".to_vec() };
    let mut out =
        format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).into_bytes();
    out.extend(body);
    out
}

async fn serve_http(big: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let status = Arc::new(AtomicU16::new(200));
    let shared = status.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let status = shared.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let Some(head) = read_head(&mut stream).await else { return };
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let _ = stream.write_all(&response(status, &path, big)).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Server { base, status }
}

fn http_probe(url: &str) -> Probe {
    Probe {
        name: "ent".into(),
        kind: ProbeKind::Http(HttpCheck {
            url: url.into(),
            expect_status: vec![],
            contains: Some("Beneylu School".into()),
            ca_file: None,
        }),
        timeout: Duration::from_secs(10),
    }
}

fn sample(r: &ProbeResult, name: &str) -> Option<f64> {
    r.samples.iter().find(|s| s.name == name).map(|s| {
        assert_eq!(s.labels[0], ("probe".to_owned(), r.name.clone()), "{name} carries the probe label");
        s.value
    })
}

#[tokio::test]
async fn http_probe_follows_the_server_failing_and_recovering() {
    let server = serve_http(0).await;
    let probe = http_probe(&format!("{}/", server.base));
    let up = run_probe(&probe).await;
    assert!(up.ok, "{:?}", up.error);
    assert_eq!(sample(&up, "probe_success"), Some(1.0));
    assert_eq!(sample(&up, "probe_http_status_code"), Some(200.0));
    assert_eq!(sample(&up, "probe_http_content_matched"), Some(1.0));
    assert!(sample(&up, "probe_duration_seconds").unwrap() > 0.0);
    assert!(up.certificate.is_none());

    server.status.store(503, Ordering::SeqCst);
    let down = run_probe(&probe).await;
    assert!(!down.ok);
    assert_eq!(down.error.as_deref(), Some("status 503, expected 2xx or 3xx"));
    assert_eq!(sample(&down, "probe_success"), Some(0.0));
    assert_eq!(sample(&down, "probe_http_status_code"), Some(503.0));

    server.status.store(200, Ordering::SeqCst);
    assert!(run_probe(&probe).await.ok);
}

#[tokio::test]
async fn http_probe_checks_the_content_and_the_expected_status() {
    let server = serve_http(0).await;
    let mut probe = http_probe(&format!("{}/", server.base));
    let ProbeKind::Http(check) = &mut probe.kind else { unreachable!() };
    check.contains = Some("Tableau de bord".into());
    let r = run_probe(&probe).await;
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("status 200 but the page does not contain \"Tableau de bord\""));
    assert_eq!(sample(&r, "probe_http_content_matched"), Some(0.0));

    let ProbeKind::Http(check) = &mut probe.kind else { unreachable!() };
    check.contains = None;
    check.expect_status = vec![401];
    let r = run_probe(&probe).await;
    assert_eq!(r.error.as_deref(), Some("status 200, expected 401"));
    server.status.store(401, Ordering::SeqCst);
    assert!(run_probe(&probe).await.ok);
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut probe = http_probe(&format!("http://{}/", listener.local_addr().unwrap()));
    probe.timeout = Duration::from_millis(300);
    let r = run_probe(&probe).await;
    assert!(!r.ok);
    let e = r.error.unwrap();
    assert!(e.contains("no answer within") || e.to_lowercase().contains("timeout"), "{e}");
    drop(listener);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = run_probe(&http_probe(&format!("http://127.0.0.1:{port}/"))).await;
    assert!(!r.ok);
    assert!(r.error.as_deref().unwrap().starts_with("request failed: "), "{:?}", r.error);
}

#[tokio::test]
async fn tcp_probe() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let probe =
        Probe { name: "db".into(), kind: ProbeKind::Tcp { address: address.clone() }, timeout: Duration::from_secs(5) };
    let r = run_probe(&probe).await;
    assert!(r.ok, "{:?}", r.error);
    drop(listener);
    let r = run_probe(&probe).await;
    assert!(!r.ok);
    assert!(r.error.unwrap().starts_with(&format!("cannot connect to {address}: ")));
}

#[tokio::test]
async fn bandwidth_probe_compares_with_the_floor() {
    let server = serve_http(8 * 1024 * 1024).await;
    let url = format!("{}/big", server.base);
    let probe = |floor_bps: f64| Probe {
        name: "debit".into(),
        kind: ProbeKind::Bandwidth { url: url.clone(), floor_bps, ca_file: None },
        timeout: Duration::from_secs(30),
    };
    let r = run_probe(&probe(CCTP_BANDWIDTH_FLOOR_BPS)).await;
    // 8 MiB over loopback: far above 15 Mb/s on any machine that can run the tests.
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(sample(&r, "probe_bandwidth_bytes"), Some(8.0 * 1024.0 * 1024.0));
    assert_eq!(sample(&r, "probe_bandwidth_floor_bits_per_second"), Some(15e6));
    let measured = sample(&r, "probe_bandwidth_bits_per_second").unwrap();
    assert!(measured > 15e6, "{measured}");
    // An unreachable floor fails, with the measure in the message.
    let r = run_probe(&probe(1e18)).await;
    assert!(!r.ok);
    let e = r.error.unwrap();
    assert!(e.starts_with("throughput ") && e.ends_with(" Mb/s floor"), "{e}");
    // A download that is not a 2xx is a failure, not a measure.
    server.status.store(503, Ordering::SeqCst);
    let r = run_probe(&probe(1.0)).await;
    assert_eq!(r.error.as_deref(), Some("download answered status 503"));
    assert_eq!(sample(&r, "probe_bandwidth_bits_per_second"), None);
}

/// An HTTPS server with a self-signed certificate for 127.0.0.1 expiring on `not_after`.
async fn serve_https(not_after: (i32, u8, u8)) -> (String, tempfile::TempDir) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    params.distinguished_name.push(rcgen::DnType::CommonName, "ent.ville-exemple.fr");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
    let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key_der)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                if read_head(&mut tls).await.is_some() {
                    let _ = tls.write_all(&response(200, "/", 0)).await;
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    (base, dir)
}

#[tokio::test]
async fn https_probe_reads_the_certificate_expiry() {
    let (base, dir) = serve_https((2031, 3, 4)).await;
    let mut probe = http_probe(&format!("{base}/"));
    let ProbeKind::Http(check) = &mut probe.kind else { unreachable!() };
    check.ca_file = Some(dir.path().join("ca.pem"));
    let r = run_probe(&probe).await;
    assert!(r.ok, "{:?}", r.error);
    let expiry: jiff::Timestamp = "2031-03-04T00:00:00Z".parse().unwrap();
    assert_eq!(sample(&r, "probe_tls_cert_expiry_timestamp_seconds"), Some(expiry.as_second() as f64));
    assert_eq!(sample(&r, "probe_tls_cert_trusted"), Some(1.0));
    let cert = r.certificate.unwrap();
    assert_eq!(cert.subject, "CN=ent.ville-exemple.fr");
    assert_eq!(cert.days_left("2031-02-02T12:00:00Z".parse().unwrap()), 29);
    assert_eq!(cert.days_left("2031-03-05T00:00:00Z".parse().unwrap()), -1);

    // Without the CA, the self-signed certificate is not trusted: the probe fails, and the
    // expiry is still measured.
    let r = run_probe(&http_probe(&format!("{base}/"))).await;
    assert!(!r.ok);
    assert_eq!(sample(&r, "probe_tls_cert_trusted"), Some(0.0));
    assert_eq!(sample(&r, "probe_tls_cert_expiry_timestamp_seconds"), Some(expiry.as_second() as f64));
    let e = r.error.unwrap();
    assert!(e.contains("certificate"), "{e}");
    assert!(!r.certificate.unwrap().trusted());
}

#[tokio::test]
async fn an_expired_certificate_is_reported_with_its_date() {
    let (base, dir) = serve_https((2024, 6, 1)).await;
    let cert =
        fetch_certificate(&format!("{base}/"), Some(&dir.path().join("ca.pem")), Duration::from_secs(5)).await.unwrap();
    assert_eq!(cert.not_after, "2024-06-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap());
    let problem = cert.problem.expect("an expired certificate is not trusted");
    assert!(problem.to_lowercase().contains("expired"), "{problem}");
}

#[test]
fn validation_names_the_mistake() {
    let bad =
        |kind: ProbeKind| Probe { name: "x".into(), kind, timeout: Duration::from_secs(1) }.validate().unwrap_err();
    let http = |url: &str| {
        ProbeKind::Http(HttpCheck { url: url.into(), expect_status: vec![], contains: None, ca_file: None })
    };
    assert_eq!(bad(http("ftp://ent/")), "`ftp://ent/` is not an http:// or https:// URL");
    assert_eq!(bad(ProbeKind::Tcp { address: "db".into() }), "`db` is not HOST:PORT");
    let e = bad(ProbeKind::Http(HttpCheck {
        url: "https://ent/".into(),
        expect_status: vec![],
        contains: None,
        ca_file: Some("/nonexistent/ca.pem".into()),
    }));
    assert!(e.starts_with("cannot read the CA file /nonexistent/ca.pem: "), "{e}");
    let e = bad(ProbeKind::Bandwidth { url: "http://x/f".into(), floor_bps: 0.0, ca_file: None });
    assert_eq!(e, "the bandwidth floor must be positive");
}

#[tokio::test]
async fn the_demo_ent_answers_503_during_the_scenario_outage() {
    use crate::source::demo::Scenario;
    let stop = tokio_util::sync::CancellationToken::new();
    let up_scenario = Scenario {
        cycle: Duration::from_secs(3600),
        attack: Duration::ZERO..Duration::ZERO,
        outage: Duration::from_secs(1800)..Duration::from_secs(1900),
    };
    let down_scenario = Scenario { outage: Duration::ZERO..Duration::from_secs(1800), ..up_scenario.clone() };
    for (scenario, ok) in [(up_scenario, true), (down_scenario, false)] {
        let ent = DemoEnt::bind(scenario).await.unwrap();
        let base = ent.base_url().unwrap();
        tokio::spawn(ent.serve(stop.clone()));
        let mut probe = http_probe(&format!("{base}/"));
        let ProbeKind::Http(check) = &mut probe.kind else { unreachable!() };
        check.contains = Some(demo::DEMO_ENT_TITLE.into());
        let r = run_probe(&probe).await;
        assert_eq!(r.ok, ok, "{:?}", r.error);
        assert_eq!(sample(&r, "probe_http_status_code"), Some(if ok { 200.0 } else { 503.0 }));
    }
    stop.cancel();
}
