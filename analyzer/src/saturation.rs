//! Saturation rules: conditions on metric series rather than on events — a threshold held for a
//! duration (`for`), a rate of a counter, a linear prediction ("the disk is full within 4 days").
//!
//! They live in the same rule files as the event rules, with `kind: saturation`, one file for
//! them alone (`rules/saturation.yml`), and their tests beside it (`saturation.test.yml`, run by
//! [`crate::run_rule_tests`]). The analyzer does no I/O: the series are read through the
//! [`SeriesSource`] trait, which the series store implements, and the clock is passed in.
//!
//! ```yaml
//! version: 1
//! rules:
//!   - id: host.disk-full-soon
//!     kind: saturation
//!     title: Disque bientôt plein
//!     description: ...
//!     severity: warning
//!     cctp_class: majeur_non_bloquant
//!     series: host_filesystem_avail_bytes      # the metric
//!     match: { fstype: ext4 }                  # optional label equalities
//!     divide_by: host_filesystem_size_bytes    # optional: the ratio with the series of the same labels
//!     function: predict                        # value (default) | rate | predict | until
//!     over: 6h                                 # rate and predict: the range looked at
//!     within: 4d                               # predict: how far ahead
//!     below: 0                                 # or above: the threshold
//!     for: 10m                                 # the condition must hold this long (default 0s)
//!     offender: [target, mountpoint]           # labels naming the offender (default: all)
//!     suppress: 6h
//!     evidence: "{labels} : plein dans {eta}"   # {value}, {percent}, {eta}, {labels}, {for}
//! ```
//!
//! `value` is the latest sample (5-minute lookback); `rate` the per-second increase of a counter
//! over `over` (resets handled); `predict` the least-squares line through the samples of `over`
//! and when it crosses the threshold; `until` the value minus the current time in seconds (for
//! series holding a deadline, like a certificate's expiry timestamp).

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::detection::{CctpClass, Detection, Severity};
use crate::error::{RuleError, RuleProblem, locate};
use crate::rules::{french_duration, parse_duration};

/// Read access to metric series, as the saturation rules need it.
pub trait SeriesSource {
    /// The samples `(milliseconds since the epoch, value)` in `[from_ms, to_ms]` of every series
    /// named `name` whose labels include `matchers`, with each series' labels.
    fn samples(&self, name: &str, matchers: &[(String, String)], from_ms: i64, to_ms: i64)
    -> Vec<(Labels, Vec<Point>)>;
}

/// A series' labels, sorted by name.
pub type Labels = Vec<(String, String)>;
/// One sample: milliseconds since the epoch, value.
pub type Point = (i64, f64);

/// How far back the latest value of a series is looked for (Prometheus's default lookback).
const LOOKBACK_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSaturation {
    id: String,
    #[allow(dead_code)]
    kind: String,
    title: String,
    description: String,
    severity: Severity,
    cctp_class: CctpClass,
    series: String,
    #[serde(default, rename = "match")]
    matchers: HashMap<String, String>,
    #[serde(default)]
    divide_by: Option<String>,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    over: Option<String>,
    #[serde(default)]
    within: Option<String>,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(default, rename = "for")]
    hold: Option<String>,
    #[serde(default)]
    offender: Option<Vec<String>>,
    suppress: String,
    #[serde(default)]
    evidence: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawSaturationFile {
    version: u32,
    rules: Vec<RawSaturation>,
}

/// What is computed from the series before the comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    Value,
    Rate { over: SignedDuration },
    Predict { over: SignedDuration, within: SignedDuration },
    Until,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Threshold {
    Above(f64),
    Below(f64),
}

impl Threshold {
    fn crossed(self, v: f64) -> bool {
        match self {
            Threshold::Above(t) => v > t,
            Threshold::Below(t) => v < t,
        }
    }
}

/// A compiled saturation rule.
#[derive(Debug)]
pub struct SaturationRule {
    pub id: Arc<str>,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub cctp_class: CctpClass,
    series: String,
    matchers: Vec<(String, String)>,
    divide_by: Option<String>,
    function: Function,
    threshold: Threshold,
    hold: SignedDuration,
    offender: Option<Vec<String>>,
    suppress: SignedDuration,
    evidence: Option<String>,
}

/// The saturation rules of a rule directory.
#[derive(Debug, Default)]
pub struct SaturationRules {
    rules: Vec<SaturationRule>,
}

/// Whether a rule file holds saturation rules (every rule `kind: saturation`), event rules
/// (none), or wrongly both; decided without deserialising the rules themselves.
pub(crate) fn file_kind(text: &str) -> FileKind {
    #[derive(Deserialize)]
    struct KindOnly {
        #[serde(default)]
        kind: Option<String>,
    }
    #[derive(Deserialize)]
    struct Kinds {
        #[serde(default)]
        rules: Vec<KindOnly>,
    }
    let Ok(kinds) = serde_yaml_ng::from_str::<Kinds>(text) else { return FileKind::Events };
    let saturation = kinds.rules.iter().filter(|r| r.kind.as_deref() == Some("saturation")).count();
    match saturation {
        0 => FileKind::Events,
        n if n == kinds.rules.len() => FileKind::Saturation,
        _ => FileKind::Mixed,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Events,
    Saturation,
    Mixed,
}

impl SaturationRules {
    /// Loads the saturation rules of every rule file of `dir` (files of event rules are skipped).
    pub fn load_dir(dir: &std::path::Path) -> Result<SaturationRules, RuleError> {
        let mut files = crate::rules::rule_files(dir)?;
        files.retain(|p| !crate::rules::is_test_file(p));
        let mut errors = Vec::new();
        let mut rules: Vec<SaturationRule> = Vec::new();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(source) => {
                    errors.push(RuleError::Io { path, source });
                    continue;
                }
            };
            if file_kind(&text) != FileKind::Saturation {
                continue;
            }
            match SaturationRules::from_yaml(&path.display().to_string(), &text) {
                Ok(set) => rules.extend(set.rules),
                Err(e) => errors.push(e),
            }
        }
        match RuleError::collect(errors) {
            Some(e) => Err(e),
            None => Ok(SaturationRules { rules }),
        }
    }

    /// Compiles the saturation rules of one file; `file_name` only names it in errors.
    pub fn from_yaml(file_name: &str, text: &str) -> Result<SaturationRules, RuleError> {
        let raw: RawSaturationFile = serde_yaml_ng::from_str(text).map_err(|e| RuleError::syntax(file_name, &e))?;
        if raw.version != 1 {
            return Err(RuleError::Syntax {
                file: file_name.to_owned(),
                line: 1,
                column: 1,
                message: format!("rule format version {} is not supported (this vigie reads version 1)", raw.version),
            });
        }
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        for r in raw.rules {
            let problem = |key: &str, problem: String, hint: &str| {
                let (line, column) = locate(text, &r.id, key);
                RuleError::Invalid(Box::new(RuleProblem {
                    file: file_name.to_owned(),
                    line,
                    column,
                    rule: r.id.clone(),
                    key: key.to_owned(),
                    problem,
                    hint: hint.to_owned(),
                }))
            };
            let duration = |key: &str, value: &Option<String>, errors: &mut Vec<RuleError>| -> Option<SignedDuration> {
                let v = value.as_ref()?;
                parse_duration(v)
                    .map_err(|e| errors.push(problem(key, e, "write a number and a unit: 30s, 5m, 6h, 4d")))
                    .ok()
            };
            let before = errors.len();
            let over = duration("over", &r.over, &mut errors);
            let within = duration("within", &r.within, &mut errors);
            let hold = duration("for", &r.hold, &mut errors).unwrap_or(SignedDuration::ZERO);
            let suppress = duration("suppress", &Some(r.suppress.clone()), &mut errors).unwrap_or(SignedDuration::ZERO);
            let function = match (r.function.as_deref().unwrap_or("value"), over, within) {
                ("value", None, None) => Some(Function::Value),
                ("until", None, None) => Some(Function::Until),
                ("rate", Some(over), None) if over.is_positive() => Some(Function::Rate { over }),
                ("predict", Some(over), Some(within)) if over.is_positive() && within.is_positive() => {
                    Some(Function::Predict { over, within })
                }
                (f @ ("value" | "until" | "rate" | "predict"), _, _) => {
                    errors.push(problem(
                        "function",
                        format!("`{f}` does not take these keys"),
                        "value and until take neither over nor within; rate needs over; predict needs over and within",
                    ));
                    None
                }
                (other, _, _) => {
                    errors.push(problem(
                        "function",
                        format!("`{other}` is not a function"),
                        "write value, rate, predict or until",
                    ));
                    None
                }
            };
            let threshold = match (r.above, r.below) {
                (Some(a), None) => Some(Threshold::Above(a)),
                (None, Some(b)) => Some(Threshold::Below(b)),
                _ => {
                    errors.push(problem("series", "give exactly one of above and below".into(), "e.g. above: 0.9"));
                    None
                }
            };
            if !r.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-') {
                errors.push(problem("id", format!("`{}` is not a valid rule id", r.id), "use a-z, 0-9, `.` and `-`"));
            }
            if errors.len() > before {
                continue;
            }
            let (Some(function), Some(threshold)) = (function, threshold) else { continue };
            let mut matchers: Vec<(String, String)> = r.matchers.into_iter().collect();
            matchers.sort();
            rules.push(SaturationRule {
                id: r.id.as_str().into(),
                title: r.title,
                description: r.description,
                severity: r.severity,
                cctp_class: r.cctp_class,
                series: r.series,
                matchers,
                divide_by: r.divide_by,
                function,
                threshold,
                hold,
                offender: r.offender,
                suppress,
                evidence: r.evidence,
            });
        }
        match RuleError::collect(errors) {
            Some(e) => Err(e),
            None => Ok(SaturationRules { rules }),
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule ids, in load order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_ref())
    }
}

/// One series' computed value for a rule.
#[derive(Debug, Clone)]
struct Observation {
    key: String,
    labels: Vec<(String, String)>,
    value: f64,
    /// For predict: how long until the threshold is crossed.
    eta: Option<SignedDuration>,
}

impl SaturationRule {
    fn observe(&self, source: &dyn SeriesSource, now: Timestamp) -> Vec<Observation> {
        let now_ms = now.as_millisecond();
        let from = match self.function {
            Function::Value | Function::Until => now_ms - LOOKBACK_MS,
            Function::Rate { over } | Function::Predict { over, .. } => now_ms - over.as_millis() as i64,
        };
        let denominators: Option<HashMap<Vec<(String, String)>, f64>> = self.divide_by.as_ref().map(|name| {
            source
                .samples(name, &self.matchers, now_ms - LOOKBACK_MS, now_ms)
                .into_iter()
                .filter_map(|(labels, points)| Some((labels, points.last()?.1)))
                .collect()
        });
        let mut out = Vec::new();
        for (labels, points) in source.samples(&self.series, &self.matchers, from, now_ms) {
            let divisor = match &denominators {
                Some(map) => match map.get(&labels) {
                    Some(d) if *d != 0.0 && d.is_finite() => *d,
                    // No denominator, or a zero one (Redis without maxmemory): nothing to compare.
                    _ => continue,
                },
                None => 1.0,
            };
            let points: Vec<(i64, f64)> =
                points.into_iter().filter(|(_, v)| v.is_finite()).map(|(t, v)| (t, v / divisor)).collect();
            let Some(&(last_t, last)) = points.last() else { continue };
            if now_ms - last_t > LOOKBACK_MS {
                continue;
            }
            let (value, eta) = match self.function {
                Function::Value => (last, None),
                Function::Until => (last - now_ms as f64 / 1000.0, None),
                Function::Rate { .. } => match rate(&points) {
                    Some(r) => (r, None),
                    None => continue,
                },
                Function::Predict { within, .. } => {
                    let Some((slope, intercept)) = regression(&points) else { continue };
                    let target = match self.threshold {
                        Threshold::Above(t) | Threshold::Below(t) => t,
                    };
                    let at_horizon = intercept + slope * (now_ms + within.as_millis() as i64) as f64;
                    let eta = if slope != 0.0 {
                        let crossing_ms = (target - intercept) / slope;
                        let secs = (crossing_ms - now_ms as f64) / 1000.0;
                        // Minutes are precision enough for an ETA, and keep float noise out of the text.
                        (secs.is_finite() && secs >= 0.0)
                            .then(|| SignedDuration::from_secs((secs / 60.0).round() as i64 * 60))
                    } else {
                        None
                    };
                    (at_horizon, eta)
                }
            };
            let key = self.key(&labels);
            out.push(Observation { key, labels, value, eta });
        }
        out
    }

    fn key(&self, labels: &[(String, String)]) -> String {
        let mut parts: Vec<String> = match &self.offender {
            Some(names) => names
                .iter()
                .filter_map(|n| labels.iter().find(|(k, _)| k == n).map(|(k, v)| format!("{k}={v}")))
                .collect(),
            None => labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        };
        parts.sort();
        parts.join(",")
    }

    fn evidence(&self, o: &Observation) -> String {
        let default = "{labels} : {value}";
        let labels = if o.labels.is_empty() {
            self.series.clone()
        } else {
            o.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
        };
        self.evidence
            .as_deref()
            .unwrap_or(default)
            .replace("{value}", &format_number(o.value))
            .replace("{percent}", &format!("{} %", format_number((o.value * 1000.0).round() / 10.0)))
            .replace("{eta}", &o.eta.map_or_else(|| "moins d'une minute".to_owned(), french_duration))
            .replace("{days}", &format_number(((o.value / 86_400.0) * 10.0).floor() / 10.0))
            .replace("{for}", &french_duration(self.hold))
            .replace("{labels}", &labels)
    }
}

/// French number formatting: decimal comma, at most two decimals.
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    format!("{:.2}", v).trim_end_matches('0').trim_end_matches('.').replace('.', ",")
}

/// Per-second increase of a counter over the points, counting a drop as a reset to zero.
fn rate(points: &[(i64, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    if last.0 <= first.0 {
        return None;
    }
    let mut increase = 0.0;
    for w in points.windows(2) {
        let (a, b) = (w[0].1, w[1].1);
        increase += if b >= a { b - a } else { b };
    }
    Some(increase / ((last.0 - first.0) as f64 / 1000.0))
}

/// Least-squares line `v = slope * t + intercept` (t in milliseconds), over at least 2 points.
fn regression(points: &[(i64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    // Centre the times for precision: epoch milliseconds squared lose digits in f64.
    let t0 = points[0].0;
    let n = points.len() as f64;
    let mean_t = points.iter().map(|(t, _)| (t - t0) as f64).sum::<f64>() / n;
    let mean_v = points.iter().map(|(_, v)| v).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, v) in points {
        let dt = (t - t0) as f64 - mean_t;
        num += dt * (v - mean_v);
        den += dt * dt;
    }
    if den == 0.0 {
        return None;
    }
    let slope = num / den;
    let intercept = mean_v - slope * (mean_t + t0 as f64);
    Some((slope, intercept))
}

/// Evaluates saturation rules over time, remembering for each rule and offender since when its
/// condition holds (`for`) and until when it stays quiet after firing (`suppress`).
#[derive(Debug)]
pub struct SaturationEngine {
    rules: Arc<SaturationRules>,
    /// Since when the condition of (rule, offender) holds without interruption.
    pending: HashMap<(Arc<str>, String), Timestamp>,
    /// Until when (rule, offender) is quiet after firing.
    quiet: HashMap<(Arc<str>, String), Timestamp>,
}

impl SaturationEngine {
    pub fn new(rules: Arc<SaturationRules>) -> Self {
        SaturationEngine { rules, pending: HashMap::new(), quiet: HashMap::new() }
    }

    /// Replaces the rules; the states of rules whose id is kept survive.
    pub fn replace_rules(&mut self, rules: Arc<SaturationRules>) {
        let ids: std::collections::HashSet<&str> = rules.ids().collect();
        self.pending.retain(|(id, _), _| ids.contains(id.as_ref()));
        self.quiet.retain(|(id, _), _| ids.contains(id.as_ref()));
        self.rules = rules;
    }

    /// Evaluates every rule at `now`; returns the detections that fire.
    pub fn evaluate(&mut self, source: &dyn SeriesSource, now: Timestamp) -> Vec<Detection> {
        let mut detections = Vec::new();
        let rules = self.rules.clone();
        self.quiet.retain(|_, until| now < *until);
        for rule in &rules.rules {
            let mut holding = std::collections::HashSet::new();
            for o in rule.observe(source, now) {
                let crossed = match rule.function {
                    // A prediction fires when the line crosses the threshold within the horizon.
                    Function::Predict { within, .. } => {
                        rule.threshold.crossed(o.value) && o.eta.is_some_and(|eta| eta <= within)
                    }
                    _ => rule.threshold.crossed(o.value),
                };
                if !crossed {
                    continue;
                }
                let slot = (rule.id.clone(), o.key.clone());
                holding.insert(o.key.clone());
                let since = *self.pending.entry(slot.clone()).or_insert(now);
                if now.duration_since(since) < rule.hold || self.quiet.contains_key(&slot) {
                    continue;
                }
                if rule.suppress.is_positive() {
                    self.quiet.insert(slot, now + rule.suppress);
                }
                let event_id = collector::EventId(format!("saturation:{}:{}", o.key, now.as_millisecond()));
                detections.push(Detection {
                    id: format!("{}:{}", rule.id, event_id),
                    rule: rule.id.to_string(),
                    title: rule.title.clone(),
                    description: rule.description.clone(),
                    severity: rule.severity,
                    cctp_class: rule.cctp_class,
                    mitre: None,
                    timestamp: now,
                    source_ip: None,
                    user_name: None,
                    key: o.key.clone(),
                    evidence: rule.evidence(&o),
                    event_id,
                });
            }
            // A condition that stopped holding (or whose series vanished) starts its `for` anew.
            self.pending.retain(|(id, key), _| id.as_ref() != rule.id.as_ref() || holding.contains(key));
        }
        detections
    }
}

/// Series held in memory, for the rule tests (and any caller without a store).
#[derive(Debug, Default, Clone)]
pub struct MemorySeries {
    series: Vec<(String, Labels, Vec<Point>)>,
}

impl MemorySeries {
    /// Adds a series; `labels` are sorted, `points` must be in time order.
    pub fn push(&mut self, name: &str, mut labels: Vec<(String, String)>, points: Vec<(i64, f64)>) {
        labels.sort();
        self.series.push((name.to_owned(), labels, points));
    }
}

impl SeriesSource for MemorySeries {
    fn samples(
        &self,
        name: &str,
        matchers: &[(String, String)],
        from_ms: i64,
        to_ms: i64,
    ) -> Vec<(Labels, Vec<Point>)> {
        self.series
            .iter()
            .filter(|(n, labels, _)| n == name && matchers.iter().all(|m| labels.contains(m)))
            .map(|(_, labels, points)| {
                (labels.clone(), points.iter().copied().filter(|(t, _)| (from_ms..=to_ms).contains(t)).collect())
            })
            .filter(|(_, points): &(_, Vec<_>)| !points.is_empty())
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    version: u32,
    tests: Vec<RawTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    /// Time between two samples, and between two evaluations.
    interval: String,
    series: Vec<RawSeries>,
    /// Evaluations run every `interval` from the first sample for this long.
    evaluate_for: String,
    #[serde(default)]
    expect: Vec<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    name: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    /// promtool's notation: `1 2 3`, `_` for a missing sample, `a+bxn` / `a-bxn` for n+1 values.
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    rule: String,
    key: String,
    /// When it first fires, from the first sample (e.g. `10m`).
    first_at: String,
}

/// Expands promtool's series notation into optional values.
fn expand_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        if token == "_" {
            out.push(None);
            continue;
        }
        if let Some((start_step, n)) = token.split_once('x') {
            let n: usize = n.parse().map_err(|_| format!("`{token}`: the count after x is not a number"))?;
            // The sign of the step is the last + or - that is not the first character.
            let cut =
                start_step[1..].rfind(['+', '-']).map(|i| i + 1).ok_or_else(|| format!("`{token}` is not a+bxn"))?;
            let (a, b) = start_step.split_at(cut);
            let a: f64 = a.parse().map_err(|_| format!("`{token}`: `{a}` is not a number"))?;
            let b: f64 = b.parse().map_err(|_| format!("`{token}`: `{b}` is not a number"))?;
            out.extend((0..=n).map(|i| Some(a + b * i as f64)));
            continue;
        }
        out.push(Some(token.parse().map_err(|_| format!("`{token}` is not a number, `_` or a+bxn"))?));
    }
    Ok(out)
}

/// Runs `saturation.test.yml` against the rules of `file`: each test feeds its series and
/// evaluates every `interval`; every rule must be expected to fire by some test.
pub(crate) fn run_tests(
    file: &str,
    text: &str,
    test_path: &std::path::Path,
    report: &mut crate::TestReport,
) -> Result<(), RuleError> {
    let rules = Arc::new(SaturationRules::from_yaml(file, text)?);
    let test_name = test_path.display().to_string();
    let Ok(test_text) = std::fs::read_to_string(test_path) else {
        report.failures.push(crate::TestFailure {
            file: file.to_owned(),
            line: 1,
            test: "-".into(),
            problem: format!("no test file; write {test_name}"),
        });
        return Ok(());
    };
    let raw: RawTestFile = serde_yaml_ng::from_str(&test_text).map_err(|e| RuleError::syntax(&test_name, &e))?;
    if raw.version != 1 {
        return Err(RuleError::Syntax {
            file: test_name,
            line: 1,
            column: 1,
            message: format!("test format version {} is not supported (this vigie reads version 1)", raw.version),
        });
    }
    // Any instant works: rules only see differences. A Monday morning, for readable failures.
    let t0: Timestamp = "2025-04-07T08:00:00Z".parse().expect("a valid instant");
    let mut expected_rules = std::collections::HashSet::new();
    for test in &raw.tests {
        report.tests += 1;
        let line = crate::error::locate_item(&test_text, "name", &test.name, "name").0;
        let invalid = |key: &str, problem: String| {
            let (line, column) = crate::error::locate_item(&test_text, "name", &test.name, key);
            RuleError::Invalid(Box::new(RuleProblem {
                file: test_name.clone(),
                line,
                column,
                rule: test.name.clone(),
                key: key.to_owned(),
                problem,
                hint: "see the saturation test format in rules/README.md".into(),
            }))
        };
        let interval = parse_duration(&test.interval).map_err(|e| invalid("interval", e))?;
        let evaluate_for = parse_duration(&test.evaluate_for).map_err(|e| invalid("evaluate_for", e))?;
        if !interval.is_positive() {
            return Err(invalid("interval", "the interval must be positive".into()));
        }
        let mut source = MemorySeries::default();
        for series in &test.series {
            let values = expand_values(&series.values).map_err(|e| invalid("values", e))?;
            let points = values
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| Some(((t0 + interval * i as i32).as_millisecond(), v?)))
                .collect();
            let labels = series.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            source.push(&series.name, labels, points);
        }
        let mut engine = SaturationEngine::new(rules.clone());
        let mut fired: Vec<(String, String, SignedDuration)> = Vec::new();
        let steps = evaluate_for.as_secs() / interval.as_secs().max(1);
        for k in 0..=steps {
            let offset = interval * k as i32;
            for d in engine.evaluate(&source, t0 + offset) {
                fired.push((d.rule, d.key, offset));
            }
        }
        let fail =
            |problem: String| crate::TestFailure { file: test_name.clone(), line, test: test.name.clone(), problem };
        for e in &test.expect {
            expected_rules.insert(e.rule.clone());
            if !rules.ids().any(|id| id == e.rule) {
                return Err(invalid("rule", format!("no rule `{}` in {file}", e.rule)));
            }
            let first_at = parse_duration(&e.first_at).map_err(|err| invalid("first_at", err))?;
            match fired.iter().find(|(r, k, _)| *r == e.rule && *k == e.key) {
                Some((_, _, at)) if *at == first_at => {}
                Some((_, _, at)) => report.failures.push(fail(format!(
                    "{} for {} fired first at {}, expected at {}",
                    e.rule,
                    e.key,
                    french_duration(*at),
                    french_duration(first_at)
                ))),
                None => report.failures.push(fail(format!("{} for {} never fired", e.rule, e.key))),
            }
        }
        for (rule, key, at) in &fired {
            if !test.expect.iter().any(|e| e.rule == *rule && e.key == *key) {
                report.failures.push(fail(format!("unexpected {rule} for {key} at {}", french_duration(*at))));
            }
        }
    }
    for id in rules.ids() {
        if !expected_rules.contains(id) {
            report.failures.push(crate::TestFailure {
                file: test_name.clone(),
                line: 1,
                test: "-".into(),
                problem: format!("no test expects rule `{id}` to fire"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
