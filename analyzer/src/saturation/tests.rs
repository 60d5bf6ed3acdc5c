use super::*;

const T0: i64 = 1_744_012_800_000; // 2025-04-07T08:00:00Z
const MIN: i64 = 60_000;

fn rules(body: &str) -> Arc<SaturationRules> {
    let text = format!("version: 1\nrules:\n{body}");
    Arc::new(SaturationRules::from_yaml("t.yml", &text).unwrap_or_else(|e| panic!("{e}")))
}

fn rule(id: &str, extra: &str) -> String {
    format!(
        "  - id: {id}\n    kind: saturation\n    title: T\n    description: D\n    severity: warning\n    cctp_class: mineur\n    suppress: 1h\n{extra}"
    )
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Evaluates every minute from T0 to T0 + `minutes`; returns (minute, key, evidence) fired.
fn run(rules: Arc<SaturationRules>, source: &MemorySeries, minutes: i64) -> Vec<(i64, String, String)> {
    let mut engine = SaturationEngine::new(rules);
    (0..=minutes)
        .flat_map(|m| engine.evaluate(source, ts(T0 + m * MIN)).into_iter().map(move |d| (m, d.key, d.evidence)))
        .collect()
}

#[test]
fn threshold_fires_after_holding_for_its_duration_then_stays_quiet() {
    let r = rules(&rule(
        "cpu",
        "    series: host_cpu_usage_ratio\n    above: 0.9\n    for: 5m\n    offender: [target]\n    evidence: \"CPU à {percent} depuis {for}\"\n",
    ));
    let mut s = MemorySeries::default();
    // 0.5 for 10 min, then 0.95 from minute 10 to 40, a dip at 20.
    let points = (0..=40).map(|m| (T0 + m * MIN, if m >= 10 && m != 20 { 0.95 } else { 0.5 })).collect();
    s.push("host_cpu_usage_ratio", l(&[("target", "host")]), points);
    let fired = run(r, &s, 40);
    // Holds from 10; fires at 15; the dip at 20 re-arms `for`, but suppression (1 h) keeps it quiet.
    assert_eq!(fired, [(15, "target=host".to_owned(), "CPU à 95 % depuis 5 min".to_owned())]);
}

#[test]
fn a_dip_restarts_the_for_duration() {
    let r = rules(&rule("cpu", "    series: cpu\n    above: 0.9\n    for: 5m\n"));
    let mut s = MemorySeries::default();
    // High from 0, a dip at minute 3, high again: fires at 4 + 5 = 9.
    s.push("cpu", vec![], (0..=20).map(|m| (T0 + m * MIN, if m == 3 { 0.1 } else { 1.0 })).collect());
    let fired: Vec<i64> = run(r, &s, 20).into_iter().map(|(m, _, _)| m).collect();
    assert_eq!(fired, [9]);
}

#[test]
fn ratio_with_divide_by_skips_a_zero_denominator() {
    let r = rules(&rule(
        "redis",
        "    series: redis_used_memory\n    divide_by: redis_maxmemory\n    above: 0.8\n    evidence: \"{percent}\"\n",
    ));
    let mut s = MemorySeries::default();
    let a = l(&[("target", "redis://a")]);
    let b = l(&[("target", "redis://b")]);
    s.push("redis_used_memory", a.clone(), vec![(T0, 900.0)]);
    s.push("redis_maxmemory", a, vec![(T0, 1000.0)]);
    s.push("redis_used_memory", b.clone(), vec![(T0, 900.0)]);
    s.push("redis_maxmemory", b, vec![(T0, 0.0)]); // no maxmemory configured
    let fired = run(r, &s, 0);
    assert_eq!(fired, [(0, "target=redis://a".to_owned(), "90 %".to_owned())]);
}

#[test]
fn rate_of_a_counter_counts_resets() {
    let r = rules(&rule(
        "errors",
        "    series: errs_total\n    function: rate\n    over: 5m\n    above: 1\n    evidence: \"{value}/s\"\n",
    ));
    let mut s = MemorySeries::default();
    // +30 per minute (0.5/s) for 10 minutes, then +120 per minute (2/s) with a reset at 13.
    let mut v = 0.0;
    let mut points = Vec::new();
    for m in 0..=20 {
        if m == 13 {
            v = 0.0;
        } else {
            v += if m <= 10 { 30.0 } else { 120.0 };
        }
        points.push((T0 + m * MIN, v));
    }
    s.push("errs_total", vec![], points);
    let fired = run(r, &s, 20);
    // Window [m-5, m] of 5 intervals: at 11, 4 × 30 + 120 = 240 / 300 s = 0.8; at 12,
    // 3 × 30 + 2 × 120 = 330 / 300 s = 1.1 > 1. Suppressed afterwards.
    assert_eq!(fired, [(12, String::new(), "1,1/s".to_owned())]);
    // A reset counts the new value as the increase: (10 + 60) / 120 s.
    let r = rate(&[(0, 100.0), (60_000, 10.0), (120_000, 70.0)]).unwrap();
    assert!((r - 70.0 / 120.0).abs() < 1e-12, "{r}");
    assert_eq!(rate(&[(0, 1.0)]), None);
}

#[test]
fn disk_full_prediction_gives_the_eta() {
    let r = rules(&rule(
        "disk",
        "    series: host_filesystem_avail_bytes\n    function: predict\n    over: 1h\n    within: 4d\n    below: 0\n    evidence: \"plein dans {eta}\"\n",
    ));
    let mut s = MemorySeries::default();
    // Losing 1 GB an hour with 50 GB left: full in 50 h, within 4 days.
    let gb = 1e9;
    let slow: Vec<(i64, f64)> = (0..=60).map(|m| (T0 + m * MIN, 50.0 * gb - m as f64 * gb / 60.0)).collect();
    s.push("host_filesystem_avail_bytes", l(&[("mountpoint", "/")]), slow);
    // A disk losing space ten times slower (full in ~20 days) does not fire.
    let slower: Vec<(i64, f64)> = (0..=60).map(|m| (T0 + m * MIN, 50.0 * gb - m as f64 * gb / 600.0)).collect();
    s.push("host_filesystem_avail_bytes", l(&[("mountpoint", "/var")]), slower);
    let mut engine = SaturationEngine::new(r);
    let fired = engine.evaluate(&s, ts(T0 + 60 * MIN));
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].key, "mountpoint=/");
    // 49 GB left at minute 60, at 1 GB an hour: 49 h.
    assert_eq!(fired[0].evidence, "plein dans 2 j 1 h");
}

#[test]
fn until_measures_time_left_before_a_deadline() {
    let r = rules(&rule(
        "cert",
        "    series: probe_tls_cert_expiry_timestamp_seconds\n    function: until\n    below: 1209600\n    evidence: \"expire dans {days} jours\"\n",
    ));
    let mut s = MemorySeries::default();
    let expiry_in = |days: f64| (T0 as f64 / 1000.0) + days * 86_400.0;
    s.push("probe_tls_cert_expiry_timestamp_seconds", l(&[("probe", "ent")]), vec![(T0, expiry_in(10.5))]);
    s.push("probe_tls_cert_expiry_timestamp_seconds", l(&[("probe", "api")]), vec![(T0, expiry_in(60.0))]);
    let fired = run(r, &s, 0);
    assert_eq!(fired, [(0, "probe=ent".to_owned(), "expire dans 10,5 jours".to_owned())]);
}

#[test]
fn stale_series_are_ignored() {
    let r = rules(&rule("cpu", "    series: cpu\n    above: 0.9\n"));
    let mut s = MemorySeries::default();
    s.push("cpu", vec![], vec![(T0, 1.0)]);
    let mut engine = SaturationEngine::new(r);
    assert!(engine.evaluate(&s, ts(T0 + 6 * MIN)).is_empty());
}

#[test]
fn mistakes_are_reported_with_their_place() {
    let text = format!(
        "version: 1\nrules:\n{}{}",
        rule("a", "    series: x\n    function: rate\n    above: 1\n"),
        rule("b", "    series: x\n    above: 1\n    below: 2\n    for: soon\n")
    );
    let e = SaturationRules::from_yaml("s.yml", &text).unwrap_err().to_string();
    assert!(e.contains("rule `a`, key `function`: `rate` does not take these keys"), "{e}");
    assert!(e.contains("rule `b`, key `for`: `soon` is not a duration"), "{e}");
    assert!(e.contains("rule `b`, key `series`: give exactly one of above and below"), "{e}");
}

#[test]
fn event_rule_loading_skips_saturation_files_and_refuses_mixed_ones() {
    let sat = format!("version: 1\nrules:\n{}", rule("cpu", "    series: cpu\n    above: 0.9\n"));
    assert!(crate::RuleSet::from_yaml("s.yml", &sat).unwrap().is_empty());
    let mixed = format!(
        "{sat}  - id: web.x\n    kind: signature\n    title: T\n    description: D\n    severity: info\n    cctp_class: mineur\n    offender: [source.ip]\n    suppress: 0s\n"
    );
    let e = crate::RuleSet::from_yaml("m.yml", &mixed).unwrap_err().to_string();
    assert!(e.contains("mixes `kind: saturation` rules with event rules"), "{e}");
}

#[test]
fn promtool_series_notation() {
    assert_eq!(expand_values("1 _ 3").unwrap(), [Some(1.0), None, Some(3.0)]);
    assert_eq!(expand_values("10-2x3").unwrap(), [Some(10.0), Some(8.0), Some(6.0), Some(4.0)]);
    assert_eq!(expand_values("-1+1x2").unwrap(), [Some(-1.0), Some(0.0), Some(1.0)]);
    assert!(expand_values("1x").unwrap_err().contains("`1x`"));
}

#[test]
fn the_default_saturation_rules_pass_their_tests() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules"));
    let text = std::fs::read_to_string(dir.join("saturation.yml")).unwrap();
    let set = SaturationRules::from_yaml("saturation.yml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.len() >= 12, "{} rules", set.len());
    let mut report = crate::TestReport::default();
    run_tests("saturation.yml", &text, &dir.join("saturation.test.yml"), &mut report).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_success(), "{report}");
    assert!(report.tests >= 12, "{report}");
}
