//! Rule files carry their own tests: `rules/X.test.yml` feeds events to the rules of
//! `rules/X.yml` and states which detections must come out (after Prometheus' `promtool test rules`).
//!
//! ```yaml
//! version: 1
//! defaults:                     # merged into every event (a test may add its own)
//!   event.category: web
//! tests:
//!   - name: sqlmap's union probe
//!     events:
//!       - "@timestamp": 2025-04-07T12:30:00Z
//!         source.ip: 203.0.113.9
//!         url.query: id=1%27%20UNION%20SELECT%201
//!       - _repeat: 20             # twenty events...
//!         _every: 10s             # ...ten seconds apart; "{i}" in a value becomes 0..19
//!         "@timestamp": 2025-04-07T12:31:00Z
//!         url.path: /missing-{i}
//!     expect:                     # every detection, grouped; count 0 asserts silence
//!       - { rule: web.sqli, key: source.ip=203.0.113.9, count: 1 }
//! ```
//!
//! Events are ECS maps, as `collector::Event` deserialises them; `event.id`,
//! `event.original`, `event.dataset` and `event.category` get defaults when absent.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use crate::engine::Engine;
use crate::error::{RuleError, RuleProblem, locate_item};
use crate::rules::{RuleSet, is_test_file, parse_duration, rule_files};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    version: u32,
    #[serde(default)]
    defaults: Mapping,
    tests: Vec<RawTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    #[serde(default)]
    defaults: Mapping,
    events: Vec<Mapping>,
    #[serde(default)]
    expect: Vec<Expected>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    key: String,
    count: usize,
}

/// The outcome of [`run_rule_tests`].
#[derive(Debug, Default)]
pub struct TestReport {
    /// Rule files examined.
    pub files: usize,
    /// Test cases run.
    pub tests: usize,
    pub failures: Vec<TestFailure>,
}

/// One mismatch between what a rule test expects and what the rules did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    pub file: String,
    pub line: usize,
    pub test: String,
    pub problem: String,
}

impl TestReport {
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} rule files, {} tests, {} failures", self.files, self.tests, self.failures.len())?;
        for x in &self.failures {
            writeln!(f, "  {}:{}: {}: {}", x.file, x.line, x.test, x.problem)?;
        }
        Ok(())
    }
}

/// Runs the tests of every rule file in `dir`. A rule file without a test file, or a rule
/// that no test expects to fire, is a failure too: an untested rule is how a typo ships.
/// Unreadable or malformed files are an `Err`; wrong detections are listed in the report.
pub fn run_rule_tests(dir: &Path) -> Result<TestReport, RuleError> {
    let files = rule_files(dir)?;
    let mut report = TestReport::default();
    let mut errors = Vec::new();
    for path in files.iter().filter(|p| !is_test_file(p)) {
        report.files += 1;
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| RuleError::Io { path: p.to_owned(), source });
        let name = path.display().to_string();
        let text = match read(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if crate::saturation::file_kind(&text) == crate::saturation::FileKind::Saturation {
            let test_path = path.with_extension("test.yml");
            if let Err(e) = crate::saturation::run_tests(&name, &text, &test_path, &mut report) {
                errors.push(e);
            }
            continue;
        }
        let rules = match RuleSet::from_yaml(&name, &text) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let test_path = path.with_extension("test.yml");
        let test_name = test_path.display().to_string();
        if !test_path.exists() {
            report.failures.push(TestFailure {
                file: name,
                line: 1,
                test: "-".into(),
                problem: format!("no test file; write {test_name}"),
            });
            continue;
        }
        match read(&test_path).and_then(|t| run_file(&test_name, &t, &rules, &mut report)) {
            Ok(()) => {}
            Err(e) => errors.push(e),
        }
    }
    match RuleError::collect(errors) {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

fn run_file(file: &str, text: &str, rules: &Arc<RuleSet>, report: &mut TestReport) -> Result<(), RuleError> {
    let raw: RawTestFile = serde_yaml_ng::from_str(text).map_err(|e| RuleError::syntax(file, &e))?;
    if raw.version != 1 {
        return Err(RuleError::Syntax {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message: format!("test format version {} is not supported (this vigie reads version 1)", raw.version),
        });
    }
    let stem = Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or("test").trim_end_matches(".test.yml");
    let mut expected_rules = std::collections::HashSet::new();
    for (t, test) in raw.tests.iter().enumerate() {
        report.tests += 1;
        let line = locate_item(text, "name", &test.name, "name").0;
        let fail = |problem: String| TestFailure { file: file.to_owned(), line, test: test.name.clone(), problem };
        let invalid = |key: &str, problem: String, hint: &str| {
            let (line, column) = locate_item(text, "name", &test.name, key);
            RuleError::Invalid(Box::new(RuleProblem {
                file: file.to_owned(),
                line,
                column,
                rule: test.name.clone(),
                key: key.to_owned(),
                problem,
                hint: hint.to_owned(),
            }))
        };
        let mut engine = Engine::new(Arc::clone(rules));
        let mut actual: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut n = 0;
        for item in &test.events {
            for event in expand(item, &raw.defaults, &test.defaults, &format!("{stem}:{t}"), &mut n)
                .map_err(|p| invalid("events", p, "see the format at the top of analyzer/src/rule_test.rs"))?
            {
                for d in engine.observe(&event) {
                    *actual.entry((d.rule, d.key)).or_default() += 1;
                }
            }
        }
        for e in &test.expect {
            if !rules.ids().any(|id| id == e.rule) {
                return Err(invalid("rule", format!("no rule `{}` in the rule file", e.rule), "fix the rule id"));
            }
            if e.count > 0 {
                expected_rules.insert(e.rule.clone());
            }
            let got = actual.remove(&(e.rule.clone(), e.key.clone())).unwrap_or(0);
            if got != e.count {
                report
                    .failures
                    .push(fail(format!("{} for {}: expected {} detections, got {got}", e.rule, e.key, e.count)));
            }
        }
        for ((rule, key), got) in actual {
            report.failures.push(fail(format!("{rule} for {key}: {got} unexpected detections")));
        }
    }
    for id in rules.ids().filter(|id| !expected_rules.contains(*id)) {
        report.failures.push(TestFailure {
            file: file.to_owned(),
            line: 1,
            test: "-".into(),
            problem: format!("rule `{id}` is never expected to fire; add a test that triggers it"),
        });
    }
    Ok(())
}

/// One event item of a test (with `_repeat` / `_every`) as the events it stands for.
fn expand(
    item: &Mapping,
    file_defaults: &Mapping,
    test_defaults: &Mapping,
    id_prefix: &str,
    n: &mut usize,
) -> Result<Vec<collector::Event>, String> {
    let mut base = Mapping::new();
    for (k, v) in file_defaults.iter().chain(test_defaults).chain(item) {
        base.insert(k.clone(), v.clone());
    }
    let repeat = match base.remove("_repeat") {
        None => 1,
        Some(v) => v.as_u64().ok_or("`_repeat` must be a positive number")? as usize,
    };
    let every = match base.remove("_every") {
        None => jiff::SignedDuration::ZERO,
        Some(Value::String(s)) => parse_duration(&s)?,
        Some(_) => return Err("`_every` must be a duration such as 10s".into()),
    };
    let start: Timestamp = base
        .get("@timestamp")
        .and_then(Value::as_str)
        .ok_or("every event needs an `@timestamp` (RFC 3339, e.g. 2025-04-07T12:30:00Z)")?
        .parse()
        .map_err(|e| format!("bad @timestamp: {e}"))?;
    let mut out = Vec::with_capacity(repeat);
    for i in 0..repeat {
        let mut map = Mapping::new();
        for (k, v) in &base {
            let v = match v {
                // A templated number ("80{i}" for ports) must stay a number once filled in.
                Value::String(s) if s.contains("{i}") => {
                    let filled = s.replace("{i}", &i.to_string());
                    filled.parse::<u64>().map_or(Value::String(filled), Value::from)
                }
                other => other.clone(),
            };
            map.insert(k.clone(), v);
        }
        let ts = start + every * i32::try_from(i).map_err(|_| "`_repeat` is too large")?;
        map.insert("@timestamp".into(), ts.to_string().into());
        let defaults = [
            ("event.id", Value::from(format!("{id_prefix}:{n}"))),
            ("event.original", Value::from("")),
            ("event.dataset", Value::from("test")),
            ("event.category", Value::from("web")),
        ];
        for (k, v) in defaults {
            if !map.contains_key(k) {
                map.insert(k.into(), v);
            }
        }
        *n += 1;
        out.push(serde_yaml_ng::from_value(Value::Mapping(map)).map_err(|e| format!("not an event: {e}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
version: 1
rules:
  - id: t.fail
    kind: threshold
    title: Échecs
    description: Des échecs.
    severity: warning
    cctp_class: securite_mineure
    when:
      - field: http.response.status_code
        equals: [401]
    offender: [source.ip]
    suppress: 10m
    threshold: { count: 3, window: 1m }
"#;

    const TESTS: &str = r#"
version: 1
defaults:
  source.ip: 192.0.2.1
tests:
  - name: three failures fire once
    events:
      - _repeat: 5
        _every: 10s
        "@timestamp": 2025-04-07T12:30:00Z
        http.response.status_code: 401
        url.path: /login-{i}
    expect:
      - { rule: t.fail, key: source.ip=192.0.2.1, count: 1 }
  - name: two do not
    events:
      - { "@timestamp": 2025-04-07T12:30:00Z, http.response.status_code: 401 }
      - { "@timestamp": 2025-04-07T12:30:01Z, http.response.status_code: 401, source.ip: 192.0.2.2 }
    expect:
      - { rule: t.fail, key: source.ip=192.0.2.1, count: 0 }
"#;

    fn dir_with(rules: &str, tests: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.yml"), rules).unwrap();
        if let Some(t) = tests {
            std::fs::write(dir.path().join("x.test.yml"), t).unwrap();
        }
        dir
    }

    #[test]
    fn passing_tests_pass() {
        let dir = dir_with(RULES, Some(TESTS));
        let report = run_rule_tests(dir.path()).unwrap();
        assert!(report.is_success(), "{report}");
        assert_eq!((report.files, report.tests), (1, 2));
    }

    #[test]
    fn each_mismatch_is_listed_with_its_line() {
        let wrong = TESTS.replace("count: 1", "count: 2").replace("count: 0", "count: 5");
        let dir = dir_with(RULES, Some(&wrong));
        let report = run_rule_tests(dir.path()).unwrap();
        let text = report.to_string();
        assert_eq!(report.failures.len(), 2, "{text}");
        assert!(
            text.contains(
                "x.test.yml:6: three failures fire once: t.fail for source.ip=192.0.2.1: expected 2 detections, got 1"
            ),
            "{text}"
        );
        assert!(text.contains("expected 5 detections, got 0"), "{text}");
    }

    #[test]
    fn unexpected_detections_and_missing_files_fail() {
        let silent = TESTS.replace("      - { rule: t.fail, key: source.ip=192.0.2.1, count: 1 }\n", "");
        let report = run_rule_tests(dir_with(RULES, Some(&silent)).path()).unwrap();
        let text = report.to_string();
        assert!(
            text.contains(
                "x.test.yml:6: three failures fire once: t.fail for source.ip=192.0.2.1: 1 unexpected detections"
            ),
            "{text}"
        );
        assert!(text.contains("rule `t.fail` is never expected to fire; add a test"), "{text}");
        let report = run_rule_tests(dir_with(RULES, None).path()).unwrap();
        assert!(report.failures[0].problem.starts_with("no test file; write"), "{report}");
    }

    #[test]
    fn malformed_tests_are_errors_naming_the_place() {
        let bad = TESTS.replace("rule: t.fail, key: source.ip=192.0.2.1, count: 1", "rule: t.nope, key: k, count: 1");
        let e = run_rule_tests(dir_with(RULES, Some(&bad)).path()).unwrap_err().to_string();
        assert!(e.contains("x.test.yml:14:") && e.contains("no rule `t.nope`"), "{e}");
        let bad = TESTS
            .replace("http.response.status_code: 401\n        url", "http.response.status_code: lots\n        url");
        let e = run_rule_tests(dir_with(RULES, Some(&bad)).path()).unwrap_err().to_string();
        assert!(e.contains("key `events`: not an event"), "{e}");
        let bad =
            TESTS.replace("expect:\n      - { rule: t.fail, key: source.ip=192.0.2.1, count: 1 }", "expected: []");
        let e = run_rule_tests(dir_with(RULES, Some(&bad)).path()).unwrap_err().to_string();
        assert!(e.contains("unknown field `expected`"), "{e}");
    }
}
