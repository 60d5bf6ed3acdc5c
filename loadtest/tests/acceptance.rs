//! The acceptance tests of issue 9, against real local servers: 1,000 concurrent virtual
//! users through the ENT scenario (cookies and token extraction checked by the server), and
//! server-injected faults counted by kind, exactly.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use loadtest::testsuite::{EntServer, FaultServer};
use loadtest::{AllowList, ClientSettings, HttpVersion, Profile, Run, RunOptions, Scenario};
use tokio_util::sync::CancellationToken;

fn options(profile: Profile) -> RunOptions {
    RunOptions {
        profile,
        duration: None,
        iterations_per_user: Some(1),
        timeout: Duration::from_secs(30),
        max_rate: None,
        allow: AllowList::default(),
        client: ClientSettings::new(HttpVersion::Http1, &[]).unwrap(),
    }
}

fn ent_scenario(base: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ent-blog.yml");
    let mut scenario = Scenario::load(&path).unwrap();
    scenario.set_base_url(base).unwrap();
    scenario
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_users_log_in_post_and_log_out_with_cookies_and_tokens() {
    loadtest::raise_open_files_limit().unwrap();
    let server = EntServer::start().await.unwrap();
    let mut scenario = ent_scenario(&server.base_url());
    // Think times (seconds each) would only make the test longer; concurrency comes from
    // starting all 1,000 users at once, each on its own connection.
    scenario.without_think_time();
    let users = 1000;
    let run = Run::new(scenario, options(Profile::Constant { users })).unwrap();
    let report = run.run(CancellationToken::new()).await;

    let c = &server.counters;
    let n = u64::from(users);
    assert_eq!(report.errors, 0, "errors: {:?}", report.errors_by_kind);
    assert_eq!(report.iterations.completed, n);
    assert_eq!(report.responses, 6 * n);
    for step in &report.steps {
        assert_eq!(step.responses, n, "step {}", step.name);
        assert!(step.latency_ms.p50.is_some());
    }
    // The server saw every step succeed with a valid cookie and token, and nothing rejected.
    assert_eq!(c.login_pages.load(Ordering::Relaxed), n);
    assert_eq!(c.logins.load(Ordering::Relaxed), n);
    assert_eq!(c.blog_pages.load(Ordering::Relaxed), n);
    assert_eq!(c.articles.load(Ordering::Relaxed), n);
    assert_eq!(c.article_reads.load(Ordering::Relaxed), n);
    assert_eq!(c.logouts.load(Ordering::Relaxed), n);
    assert_eq!(c.rejected.load(Ordering::Relaxed), 0);
    // One kept-alive connection per virtual user, for all six requests.
    assert_eq!(c.connections.load(Ordering::Relaxed), n);
    assert_eq!(report.status_classes.get("2xx"), Some(&(4 * n)));
    assert_eq!(report.status_classes.get("3xx"), Some(&(2 * n)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_caught_by_the_server_and_counted() {
    let server = EntServer::start().await.unwrap();
    let text = format!(
        r#"
base_url: {}
steps:
  - url: /login
    extract: {{ csrf: {{ css: 'input[name="_csrf_token"]', attribute: value }} }}
  - method: POST
    url: /login_check
    form: {{ _username: "eleve{{{{vu}}}}", _password: "wrong", _csrf_token: "{{{{csrf}}}}" }}
  - url: /classe/blog
"#,
        server.base_url()
    );
    let scenario = Scenario::parse(&text, "inline").unwrap();
    let report =
        Run::new(scenario, options(Profile::Constant { users: 20 })).unwrap().run(CancellationToken::new()).await;
    assert_eq!(server.counters.rejected.load(Ordering::Relaxed), 20);
    assert_eq!(report.errors_by_kind.get("status_4xx"), Some(&20));
    assert_eq!(report.iterations.failed, 20);
    // The third step never ran.
    assert_eq!(report.steps[2].responses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_counted_by_kind_exactly() {
    let server = FaultServer::start(Duration::from_secs(3600)).await.unwrap();
    let text = format!(
        r#"
base_url: http://{}
steps:
  - name: fault
    url: /fault/{{{{vu}}}}
    extract: {{ token: {{ regex: 'token=(ok\d+)' }} }}
  - name: after
    url: /after/{{{{token}}}}
"#,
        server.addr
    );
    let scenario = Scenario::parse(&text, "inline").unwrap();
    let report =
        Run::new(scenario, options(Profile::Constant { users: 500 })).unwrap().run(CancellationToken::new()).await;

    // Users 1..=500: n % 5 picks the fault, 100 users each.
    let fault = &report.steps[0];
    let kinds: Vec<(&str, u64)> = fault.errors_by_kind.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(kinds, [("extraction", 100), ("reset", 100), ("status_4xx", 100), ("status_5xx", 100)]);
    // Responses: everything but the resets.
    assert_eq!(fault.responses, 400);
    assert_eq!(fault.status_classes.get("5xx"), Some(&100));
    assert_eq!(report.steps[1].responses, 100);
    assert_eq!(server.after.load(Ordering::Relaxed), 100);
    assert_eq!(report.iterations.completed, 100);
    assert_eq!(report.iterations.failed, 400);
    assert_eq!(report.errors, 400);

    // Slow responses: the server holds them for an hour, so each one times out, whatever the
    // machine's speed.
    let scenario = Scenario::single_get(&format!("http://{}/slow", server.addr)).unwrap();
    let mut opts = options(Profile::Constant { users: 50 });
    opts.timeout = Duration::from_millis(500);
    let report = Run::new(scenario, opts).unwrap().run(CancellationToken::new()).await;
    assert_eq!(report.errors_by_kind, std::collections::BTreeMap::from([("timeout".to_owned(), 50)]));
    assert_eq!(report.responses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_connect_error_and_plain_http_is_a_tls_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let scenario = Scenario::single_get(&format!("http://127.0.0.1:{free}/")).unwrap();
    let report =
        Run::new(scenario, options(Profile::Constant { users: 7 })).unwrap().run(CancellationToken::new()).await;
    assert_eq!(report.errors_by_kind.get("connect"), Some(&7));

    let server = EntServer::start().await.unwrap();
    let scenario = Scenario::single_get(&format!("https://{}/login", server.addr)).unwrap();
    let report =
        Run::new(scenario, options(Profile::Constant { users: 5 })).unwrap().run(CancellationToken::new()).await;
    assert_eq!(report.errors_by_kind.get("tls"), Some(&5), "{:?}", report.errors_by_kind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_cleanly_with_a_partial_report() {
    let server = EntServer::start().await.unwrap();
    // With think times, users are mid-scenario when the run is cancelled.
    let scenario = ent_scenario(&server.base_url());
    let mut opts = options(Profile::Constant { users: 50 });
    opts.iterations_per_user = None;
    opts.duration = Some(Duration::from_secs(600));
    let run = Run::new(scenario, opts).unwrap();
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(run.run(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), handle).await.expect("stops promptly").unwrap();
    assert!(report.interrupted);
    assert!(report.elapsed_seconds < 10.0);
    assert_eq!(report.iterations.interrupted, 50);
    assert_eq!(report.steps[0].responses, 50);
    assert_eq!(report.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrival_rate_counts_drops_when_users_are_busy() {
    // Each iteration takes ~300 ms of think time; 2 users cannot absorb 20 iterations/s.
    let server = EntServer::start().await.unwrap();
    let text = format!("base_url: {}\nsteps:\n  - url: /login\n    think: 300ms\n", server.base_url());
    let scenario = Scenario::parse(&text, "inline").unwrap();
    let mut opts = options(Profile::ArrivalRate { rate: 20.0, max_users: 2 });
    opts.iterations_per_user = None;
    opts.duration = Some(Duration::from_secs(2));
    let report = Run::new(scenario, opts).unwrap().run(CancellationToken::new()).await;
    let it = &report.iterations;
    // 40 iterations were due in 2 s (the 41st at exactly 2 s may or may not fire); every
    // one was either started or dropped.
    let started = report.steps[0].responses;
    assert!((40..=41).contains(&(started + it.dropped)), "started {started}, dropped {}", it.dropped);
    assert!(it.dropped >= 20, "{it:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_http2_with_a_private_ca() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let versions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = versions.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    seen.lock().unwrap().push(req.version());
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from("ok"),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    for (version, expected) in
        [(HttpVersion::Http1, hyper::Version::HTTP_11), (HttpVersion::Http2, hyper::Version::HTTP_2)]
    {
        versions.lock().unwrap().clear();
        let scenario = Scenario::single_get(&format!("https://localhost:{port}/")).unwrap();
        let mut opts = options(Profile::Constant { users: 4 });
        opts.iterations_per_user = Some(3);
        opts.client = ClientSettings::new(version, &[ca.as_path()]).unwrap();
        let report = Run::new(scenario, opts).unwrap().run(CancellationToken::new()).await;
        assert_eq!(report.errors, 0, "{version:?}: {:?}", report.errors_by_kind);
        assert_eq!(report.responses, 12);
        assert_eq!(*versions.lock().unwrap(), vec![expected; 12]);
    }
    // Without the private CA the certificate is refused: a TLS error, nothing sent.
    let scenario = Scenario::single_get(&format!("https://localhost:{port}/")).unwrap();
    let report =
        Run::new(scenario, options(Profile::Constant { users: 2 })).unwrap().run(CancellationToken::new()).await;
    assert_eq!(report.errors_by_kind.get("tls"), Some(&2));
}
