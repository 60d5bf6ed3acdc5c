//! What a run measured: per-step latency histograms (HdrHistogram, microseconds), requests,
//! responses by status class, errors by kind, iterations; merged into a [`Report`] at the end
//! (or at Ctrl-C, for a partial one).
//!
//! Recording is sharded: virtual user `n` writes into shard `n % SHARDS` of its step, so
//! thousands of users do not queue on one lock, and memory stays at `steps × SHARDS`
//! histograms instead of one per user.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Why a request (or an iteration) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// TCP connection refused, unreachable, or the name did not resolve.
    Connect,
    /// TLS handshake failed (certificate, protocol).
    Tls,
    /// No complete response within the timeout.
    Timeout,
    /// The peer closed or reset the connection before a complete response.
    Reset,
    /// Any other HTTP protocol error.
    Protocol,
    /// A 4xx response.
    Status4xx,
    /// A 5xx response.
    Status5xx,
    /// A response outside the step's `expect_status` (and below 400).
    UnexpectedStatus,
    /// A value to extract was not in the response.
    Extraction,
    /// The request's URL was not valid once its variables were filled in.
    InvalidUrl,
    /// The URL's origin is not in the allow-list; nothing was sent.
    Refused,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Protocol,
        ErrorKind::Status4xx,
        ErrorKind::Status5xx,
        ErrorKind::UnexpectedStatus,
        ErrorKind::Extraction,
        ErrorKind::InvalidUrl,
        ErrorKind::Refused,
    ];

    /// The key used in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::UnexpectedStatus => "unexpected_status",
            ErrorKind::Extraction => "extraction",
            ErrorKind::InvalidUrl => "invalid_url",
            ErrorKind::Refused => "refused",
        }
    }

    /// The French label of the text report.
    fn label_fr(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connexion impossible",
            ErrorKind::Tls => "échec TLS",
            ErrorKind::Timeout => "délai dépassé",
            ErrorKind::Reset => "connexion coupée par le serveur",
            ErrorKind::Protocol => "erreur de protocole HTTP",
            ErrorKind::Status4xx => "réponses 4xx",
            ErrorKind::Status5xx => "réponses 5xx",
            ErrorKind::UnexpectedStatus => "statut inattendu",
            ErrorKind::Extraction => "valeur à extraire absente",
            ErrorKind::InvalidUrl => "URL invalide",
            ErrorKind::Refused => "cible refusée (hors liste autorisée)",
        }
    }

    /// Whether the connection must be dropped after this error.
    pub(crate) fn breaks_connection(self) -> bool {
        matches!(
            self,
            ErrorKind::Connect | ErrorKind::Tls | ErrorKind::Timeout | ErrorKind::Reset | ErrorKind::Protocol
        )
    }
}

const SHARDS: usize = 16;
/// Latencies are recorded in microseconds, up to one hour (longer ones are clamped).
const MAX_MICROS: u64 = 3_600_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

#[derive(Debug)]
struct StepRecorder {
    name: String,
    histograms: Vec<Mutex<Histogram<u64>>>,
    requests: AtomicU64,
    statuses: [AtomicU64; 5],
    errors: [AtomicU64; ErrorKind::ALL.len()],
    bytes: AtomicU64,
}

/// Counters every virtual user updates while the run goes; read live by the progress display.
#[derive(Debug)]
pub struct Recorder {
    steps: Vec<StepRecorder>,
    /// Requests that got a response (any status).
    pub(crate) responses: AtomicU64,
    /// Failed requests, all kinds.
    pub(crate) errors: AtomicU64,
    pub(crate) iterations_completed: AtomicU64,
    pub(crate) iterations_failed: AtomicU64,
    pub(crate) iterations_interrupted: AtomicU64,
    pub(crate) iterations_dropped: AtomicU64,
    pub(crate) iterations_late: AtomicU64,
    pub(crate) active_users: AtomicU64,
}

/// A snapshot for the live progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveCounts {
    /// Responses received so far.
    pub responses: u64,
    /// Failed requests so far.
    pub errors: u64,
    /// Virtual users running now.
    pub active_users: u64,
    /// Completed iterations.
    pub iterations: u64,
    /// Open model: iterations not started because every user was busy.
    pub dropped: u64,
}

impl Recorder {
    pub(crate) fn new(step_names: &[String]) -> Recorder {
        Recorder {
            steps: step_names
                .iter()
                .map(|name| StepRecorder {
                    name: name.clone(),
                    histograms: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
                    requests: AtomicU64::new(0),
                    statuses: Default::default(),
                    errors: Default::default(),
                    bytes: AtomicU64::new(0),
                })
                .collect(),
            responses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            iterations_completed: AtomicU64::new(0),
            iterations_failed: AtomicU64::new(0),
            iterations_interrupted: AtomicU64::new(0),
            iterations_dropped: AtomicU64::new(0),
            iterations_late: AtomicU64::new(0),
            active_users: AtomicU64::new(0),
        }
    }

    /// A response to step `step` arrived after `latency` (for user `user`).
    pub(crate) fn response(&self, step: usize, user: usize, latency: Duration, status: u16, bytes: u64) {
        let s = &self.steps[step];
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        s.histograms[user % SHARDS].lock().unwrap_or_else(|p| p.into_inner()).saturating_record(micros);
        s.requests.fetch_add(1, Ordering::Relaxed);
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        s.statuses[class].fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.responses.fetch_add(1, Ordering::Relaxed);
    }

    /// Step `step` failed with `kind` (after its response was recorded, if there was one).
    pub(crate) fn error(&self, step: usize, kind: ErrorKind) {
        let i = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.steps[step].errors[i].fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The live counts.
    pub fn live(&self) -> LiveCounts {
        LiveCounts {
            responses: self.responses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            active_users: self.active_users.load(Ordering::Relaxed),
            iterations: self.iterations_completed.load(Ordering::Relaxed),
            dropped: self.iterations_dropped.load(Ordering::Relaxed),
        }
    }

    /// Merges everything into the final report.
    pub(crate) fn report(&self, meta: RunMeta) -> Report {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let seconds = meta.elapsed.as_secs_f64().max(1e-9);
        let mut all = new_histogram();
        let mut errors_by_kind = BTreeMap::new();
        let mut status_classes = BTreeMap::new();
        let mut steps = Vec::new();
        let mut total_bytes = 0;
        for s in &self.steps {
            let mut merged = new_histogram();
            for h in &s.histograms {
                merged.add(&*h.lock().unwrap_or_else(|p| p.into_inner())).expect("same bounds");
            }
            all.add(&merged).expect("same bounds");
            let mut step_errors = BTreeMap::new();
            for (i, kind) in ErrorKind::ALL.iter().enumerate() {
                let n = load(&s.errors[i]);
                if n > 0 {
                    step_errors.insert(kind.key().to_owned(), n);
                    *errors_by_kind.entry(kind.key().to_owned()).or_insert(0) += n;
                }
            }
            let mut step_statuses = BTreeMap::new();
            for (i, c) in s.statuses.iter().enumerate() {
                let n = load(c);
                if n > 0 {
                    step_statuses.insert(format!("{}xx", i + 1), n);
                    *status_classes.entry(format!("{}xx", i + 1)).or_insert(0) += n;
                }
            }
            let responses = load(&s.requests);
            total_bytes += load(&s.bytes);
            steps.push(StepReport {
                name: s.name.clone(),
                responses,
                errors: step_errors.values().sum(),
                errors_by_kind: step_errors,
                status_classes: step_statuses,
                responses_per_second: responses as f64 / seconds,
                latency_ms: Latency::of(&merged),
            });
        }
        let responses = load(&self.responses);
        Report {
            format_version: 1,
            scenario: meta.scenario,
            profile: meta.profile,
            started: meta.started,
            elapsed_seconds: meta.elapsed.as_secs_f64(),
            interrupted: meta.interrupted,
            max_users: meta.max_users,
            responses,
            errors: load(&self.errors),
            responses_per_second: responses as f64 / seconds,
            bytes_received: total_bytes,
            errors_by_kind,
            status_classes,
            latency_ms: Latency::of(&all),
            iterations: Iterations {
                completed: load(&self.iterations_completed),
                failed: load(&self.iterations_failed),
                interrupted: load(&self.iterations_interrupted),
                dropped: load(&self.iterations_dropped),
                late: load(&self.iterations_late),
            },
            steps,
        }
    }
}

/// Facts about the run that the counters do not hold.
#[derive(Debug)]
pub(crate) struct RunMeta {
    pub(crate) scenario: String,
    pub(crate) profile: String,
    pub(crate) started: jiff::Timestamp,
    pub(crate) elapsed: Duration,
    pub(crate) interrupted: bool,
    pub(crate) max_users: u64,
}

/// Latency percentiles in milliseconds (null when nothing was measured).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Fastest.
    pub min: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Slowest.
    pub max: Option<f64>,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency {
                min: None,
                mean: None,
                p50: None,
                p90: None,
                p95: None,
                p99: None,
                p999: None,
                max: None,
            };
        }
        let ms = |us: u64| Some(us as f64 / 1000.0);
        Latency {
            min: ms(h.min()),
            mean: Some(h.mean() / 1000.0),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// How the scenario's iterations ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Iterations {
    /// Every step succeeded.
    pub completed: u64,
    /// A step failed; the rest of that iteration was skipped.
    pub failed: u64,
    /// Cut short by the end of the run or by Ctrl-C (their in-flight request is not counted).
    pub interrupted: u64,
    /// Open model: due but not started, every virtual user being busy.
    pub dropped: u64,
    /// Open model: started more than 25 ms after their scheduled time.
    pub late: u64,
}

/// One step's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// Responses received (any status).
    pub responses: u64,
    /// Failures, all kinds.
    pub errors: u64,
    /// Failures by kind (only kinds that occurred).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Responses by status class (`2xx` …).
    pub status_classes: BTreeMap<String, u64>,
    /// Responses per second over the run.
    pub responses_per_second: f64,
    /// Latency from sending to the last byte of the body, connection set-up included.
    pub latency_ms: Latency,
}

/// The final (or partial) report, printed as text or as JSON (`--json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Version of this JSON layout.
    pub format_version: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The load profile, described.
    pub profile: String,
    /// When the run started.
    pub started: jiff::Timestamp,
    /// How long it ran.
    pub elapsed_seconds: f64,
    /// Stopped by Ctrl-C: this is a partial report.
    pub interrupted: bool,
    /// The most virtual users the profile runs at once.
    pub max_users: u64,
    /// Responses received (any status).
    pub responses: u64,
    /// Failed requests, all kinds.
    pub errors: u64,
    /// Responses per second over the run.
    pub responses_per_second: f64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Failures by kind (only kinds that occurred).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Responses by status class.
    pub status_classes: BTreeMap<String, u64>,
    /// Latency of all steps together.
    pub latency_ms: Latency,
    /// How iterations ended.
    pub iterations: Iterations,
    /// Per step, in scenario order.
    pub steps: Vec<StepReport>,
}

fn fr_number(n: f64, decimals: usize) -> String {
    let s = format!("{n:.decimals$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 && c != '-' {
            grouped.push('\u{202f}');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{grouped},{f}"),
        None => grouped,
    }
}

fn fr_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| fr_number(v, if v < 10.0 { 2 } else { 1 }))
}

impl Report {
    /// The report for the city's staff, in French. `started_fr` is the start date already
    /// written the French way ("lundi 7 avril 2025, 14 h 30").
    pub fn render_text(&self, started_fr: &str) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Test de charge « {} »{}",
            self.scenario,
            if self.interrupted { " — INTERROMPU (rapport partiel)" } else { "" }
        );
        let _ = writeln!(
            out,
            "Début : {started_fr} ; durée : {} s ; profil : {}",
            fr_number(self.elapsed_seconds, 1),
            self.profile
        );
        let _ = writeln!(
            out,
            "Requêtes : {} réponses, {} erreurs ; débit : {} req/s ; reçu : {} Kio",
            fr_number(self.responses as f64, 0),
            fr_number(self.errors as f64, 0),
            fr_number(self.responses_per_second, 1),
            fr_number(self.bytes_received as f64 / 1024.0, 0)
        );
        let it = &self.iterations;
        let _ = writeln!(
            out,
            "Parcours : {} terminés, {} en échec, {} interrompus, {} abandonnés (utilisateurs tous occupés), {} en retard",
            fr_number(it.completed as f64, 0),
            fr_number(it.failed as f64, 0),
            fr_number(it.interrupted as f64, 0),
            fr_number(it.dropped as f64, 0),
            fr_number(it.late as f64, 0)
        );
        if !self.status_classes.is_empty() {
            let classes: Vec<String> =
                self.status_classes.iter().map(|(c, n)| format!("{c} : {}", fr_number(*n as f64, 0))).collect();
            let _ = writeln!(out, "Statuts : {}", classes.join(", "));
        }
        if self.errors_by_kind.is_empty() {
            let _ = writeln!(out, "Erreurs : aucune");
        } else {
            let _ = writeln!(out, "Erreurs par type :");
            for kind in ErrorKind::ALL {
                if let Some(n) = self.errors_by_kind.get(kind.key()) {
                    let _ = writeln!(out, "  {:<40} {:>10}", kind.label_fr(), fr_number(*n as f64, 0));
                }
            }
        }
        let _ = writeln!(out, "\nLatence (ms), de l'envoi au dernier octet reçu :");
        let _ = writeln!(
            out,
            "  {:<28} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "étape", "réponses", "erreurs", "médiane", "p90", "p95", "p99", "p99,9", "max"
        );
        let mut line = |name: &str, responses: u64, errors: u64, l: &Latency| {
            let name: String = if name.chars().count() > 28 {
                name.chars().take(27).chain(['…']).collect()
            } else {
                name.to_owned()
            };
            let _ = writeln!(
                out,
                "  {:<28} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                fr_number(responses as f64, 0),
                fr_number(errors as f64, 0),
                fr_ms(l.p50),
                fr_ms(l.p90),
                fr_ms(l.p95),
                fr_ms(l.p99),
                fr_ms(l.p999),
                fr_ms(l.max)
            );
        };
        for s in &self.steps {
            line(&s.name, s.responses, s.errors, &s.latency_ms);
        }
        if self.steps.len() > 1 {
            line("toutes", self.responses, self.errors, &self.latency_ms);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_step_and_total_figures() {
        let r = Recorder::new(&["login".to_owned(), "blog".to_owned()]);
        for user in 0..100 {
            r.response(0, user, Duration::from_millis(10), 200, 100);
        }
        r.response(1, 3, Duration::from_millis(1000), 500, 5);
        r.error(1, ErrorKind::Status5xx);
        r.error(1, ErrorKind::Timeout);
        r.iterations_completed.fetch_add(99, Ordering::Relaxed);
        r.iterations_failed.fetch_add(2, Ordering::Relaxed);
        let report = r.report(RunMeta {
            scenario: "s".into(),
            profile: "p".into(),
            started: jiff::Timestamp::UNIX_EPOCH,
            elapsed: Duration::from_secs(2),
            interrupted: false,
            max_users: 100,
        });
        assert_eq!(report.responses, 101);
        assert_eq!(report.errors, 2);
        assert_eq!(report.bytes_received, 10_005);
        assert_eq!(report.responses_per_second, 50.5);
        assert_eq!(report.steps[0].responses, 100);
        assert!((report.steps[0].latency_ms.p99.unwrap() - 10.0).abs() < 0.01);
        assert_eq!(report.steps[1].errors_by_kind, BTreeMap::from([("status_5xx".into(), 1), ("timeout".into(), 1)]));
        assert_eq!(report.status_classes, BTreeMap::from([("2xx".into(), 100), ("5xx".into(), 1)]));
        assert!((report.latency_ms.max.unwrap() - 1000.0).abs() < 1.0);
        assert_eq!(report.iterations.failed, 2);
        let text = report.render_text("jeudi 1 janvier 1970, 1 h 00");
        assert!(text.contains("délai dépassé"), "{text}");
        assert!(text.contains("réponses 5xx"), "{text}");
        assert!(text.contains("reçu : 10 Kio"), "{text}");
        assert!(text.contains("débit : 50,5 req/s"), "{text}");
    }

    #[test]
    fn french_numbers() {
        assert_eq!(fr_number(1234567.0, 0), "1\u{202f}234\u{202f}567");
        assert_eq!(fr_number(12.345, 1), "12,3");
        assert_eq!(fr_number(999.0, 0), "999");
        assert_eq!(fr_ms(None), "—");
    }
}
