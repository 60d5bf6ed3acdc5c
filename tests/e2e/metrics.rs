//! Vigie's own `/metrics`: `promtool check metrics` passes on it, a real Prometheus (Debian's
//! `prometheus` package, installed by scripts/test.sh) scrapes it without error, and the probes of
//! the demo ENT land in the series store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Running, free_port, sample};

/// `promtool check metrics` on `text`: its exit status must be 0 and it must print nothing (a
/// lint finding — missing HELP, a counter without `_total`, a bad unit — is printed, exit 3).
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let findings = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics: {}\n{findings}\n{text}",
        out.status
    );
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// A `prometheus` server scraping `targets` (host:port) every second, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let list = targets.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: vigie\n    \
                 metrics_path: /metrics\n    static_configs:\n      - targets: [{list}]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus (Debian package prometheus; scripts/test.sh installs it)");
        Prometheus { child, base: format!("http://127.0.0.1:{port}"), log, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET an API path with query parameters: the `data` member of a successful answer.
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Option<serde_json::Value> {
        let mut request = agent().get(&format!("{}{path}", self.base));
        for (k, v) in params {
            request = request.query(*k, *v);
        }
        let mut response = request.call().ok()?;
        let body: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }

    /// Polls `check` on the API until it returns something, or panics with Prometheus's log.
    fn wait_for<T>(&mut self, what: &str, timeout: Duration, mut check: impl FnMut(&Prometheus) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(found) = check(self) {
                return found;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}) while waiting for {what}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("timed out after {timeout:?} waiting for {what}; log:\n{}", self.log());
    }

    /// The value of the first series `query` returns, once it returns one.
    fn query_value(&mut self, query: &str) -> f64 {
        self.wait_for(&format!("a result for {query}"), Duration::from_secs(30), |p| {
            let data = p.api("/api/v1/query", &[("query", query)])?;
            data["result"].as_array()?.first()?["value"][1].as_str()?.parse().ok()
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `/metrics` as a plain client (no `Accept`, like curl or promtool's users): the status,
/// the content type and the body.
fn metrics_page(base: &str) -> (u16, String, String) {
    let mut response = agent().get(&format!("{base}/metrics")).call().expect("GET /metrics");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (response.status().as_u16(), content_type, response.body_mut().read_to_string().unwrap())
}

/// The probe samples of `probe` in the series store of a stopped Vigie, by metric name.
fn stored_probe(data: &Path, probe: &str, metric: &str) -> Vec<f64> {
    let store = series::SeriesStore::open(&data.join("series.sqlite"), series::StoreConfig::default())
        .expect("open the series store");
    let now = jiff::Timestamp::now().as_millisecond();
    let matchers = [("probe".to_owned(), probe.to_owned())];
    store
        .range(metric, &matchers, now - 3_600_000, now)
        .unwrap()
        .into_iter()
        .flat_map(|r| r.points.into_iter().map(|p| p.v))
        .collect()
}

fn wait_ready(vigie: &mut Running) {
    vigie.wait_for("/readyz", Duration::from_secs(60), |v| v.get("/readyz").is_some_and(|(code, _)| code == 200));
}

#[test]
fn demo_metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut vigie = Running::demo(&data, &["--rate", "300"]);
    wait_ready(&mut vigie);
    // Wait for traffic, so that the labelled families (per source, per stage) have samples too.
    vigie.wait_for("parsed events", Duration::from_secs(60), |v| {
        v.get("/metrics").is_some_and(|(_, m)| {
            sample(&m, "vigie_stage_events_out_total", "stage=\"parse\"").is_some_and(|n| n > 0.0)
        })
    });

    let (status, content_type, text) = metrics_page(&vigie.base);
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert!(!text.contains("# EOF"), "OpenMetrics only when asked for:\n{text}");
    for counter in ["vigie_source_records_total", "vigie_alerts_fired_total", "vigie_archive_records_total"] {
        assert!(text.contains(&format!("# HELP {counter} ")), "{counter} has its HELP:\n{text}");
        assert!(text.contains(&format!("# TYPE {counter} counter\n")), "{counter} has its TYPE:\n{text}");
    }
    promtool_check(&text);

    // Prometheus asks for OpenMetrics and gets it.
    let mut om = agent()
        .get(&format!("{}/metrics", vigie.base))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
        .call()
        .unwrap();
    let om_type = om.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(om_type.starts_with("application/openmetrics-text; version=1.0.0"), "{om_type}");
    assert!(om.body_mut().read_to_string().unwrap().ends_with("# EOF\n"));

    // A real Prometheus scrapes it every second: the target is up with no error, and the series
    // are queryable.
    let target = vigie.base.trim_start_matches("http://").to_owned();
    let mut prometheus = Prometheus::start(std::slice::from_ref(&target));
    let scraped = prometheus.wait_for("a scrape of vigie", Duration::from_secs(60), |p| {
        let data = p.api("/api/v1/targets", &[])?;
        let t = data["activeTargets"].as_array()?.iter().find(|t| t["labels"]["instance"] == target.as_str())?.clone();
        (t["health"] != "unknown").then_some(t)
    });
    assert_eq!(scraped["health"], "up", "{scraped:#}\n{}", prometheus.log());
    assert_eq!(scraped["lastError"], "", "{scraped:#}");
    assert_eq!(prometheus.query_value("up{job=\"vigie\"}"), 1.0);
    assert!(prometheus.query_value("scrape_samples_scraped{job=\"vigie\"}") > 20.0);
    assert!(prometheus.query_value("vigie_stage_events_out_total{job=\"vigie\",stage=\"parse\"}") > 0.0);
    assert!(prometheus.query_value("vigie_source_records_total{source=\"demo-ent-web\"}") > 0.0);
    // Several scrapes later, still without error.
    std::thread::sleep(Duration::from_secs(3));
    let targets = prometheus.api("/api/v1/targets", &[]).unwrap();
    let t = &targets["activeTargets"][0];
    assert_eq!((t["health"].as_str(), t["lastError"].as_str()), (Some("up"), Some("")), "{t:#}");
    drop(prometheus);

    // The demo ENT is probed every 5 s (config/demo.toml): after a clean stop, its probe
    // samples are in the series store.
    vigie.terminate();
    let status = vigie.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}; log:\n{}", vigie.log());
    let success = stored_probe(&data, "ent-demo", "probe_success");
    assert!(!success.is_empty(), "no probe_success{{probe=\"ent-demo\"}}; log:\n{}", vigie.log());
    assert!(success.iter().all(|v| *v == 0.0 || *v == 1.0), "{success:?}");
    assert!(success.contains(&1.0), "the demo ENT answered at least once: {success:?}");
    let codes = stored_probe(&data, "ent-demo", "probe_http_status_code");
    assert!(codes.contains(&200.0), "{codes:?}");
    let durations = stored_probe(&data, "ent-demo", "probe_duration_seconds");
    assert!(!durations.is_empty() && durations.iter().all(|d| *d > 0.0 && *d < 10.0), "{durations:?}");
}

/// A configuration with probes and no event source (metrics only) used to never be ready: with no
/// source, the event stages saw their input closed and stopped at once.
#[test]
fn metrics_only_run_is_ready_and_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let listen = format!("127.0.0.1:{http}");
    let config = dir.path().join("vigie.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndir = \"data\"\n\n[server]\nlisten = \"{listen}\"\n\n[analyzer]\nrules = \"{}\"\n\n\
             [alerting]\non_call = [\"astreinte@ville.fr\"]\n\n\
             [scrape]\ninterval = \"2s\"\ntimeout = \"1s\"\ntargets = [\"host\"]\n\n\
             [probes]\ndemo = true\ninterval = \"1s\"\ntimeout = \"1s\"\n",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules")
        ),
    )
    .unwrap();
    let mut vigie = Running::run(&config, &listen);
    wait_ready(&mut vigie);
    let (status, _, text) = metrics_page(&vigie.base);
    assert_eq!(status, 200);
    promtool_check(&text);
    // Still ready a few seconds later: no stage stopped.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(vigie.get("/readyz"), Some((200, "ready\n".to_owned())));

    vigie.terminate();
    let status = vigie.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}; log:\n{}", vigie.log());
    assert!(vigie.log().contains("stopped cleanly"), "{}", vigie.log());
    let success = stored_probe(&dir.path().join("data"), "ent-demo", "probe_success");
    assert!(success.contains(&1.0), "probe samples of the demo ENT: {success:?}; log:\n{}", vigie.log());
}
