//! `vigie analyze`: offline replay through the rules, and the rule-test runner.

use crate::support::{shared_data, vigie};

#[test]
fn replay_prints_one_object_per_detection_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(
        &log,
        "192.0.2.1 - - [07/Apr/2025:14:30:00 +0200] \"GET /ent/blog/ HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"\n\
         203.0.113.9 - - [07/Apr/2025:14:30:01 +0200] \"GET /ent/blog/article/x?id=1%27%20UNION%20SELECT%20password%20FROM%20user-- HTTP/1.1\" 500 12 \"-\" \"sqlmap/1.8\"\n",
    )
    .unwrap();
    let out = vigie().args(["analyze", "--format", "apache_combined"]).arg(&log).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let detections: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sqli = detections.iter().find(|d| d["rule"] == "web.sqli").expect("the injection is detected");
    assert_eq!(sqli["line"], 2);
    assert_eq!(sqli["source"]["ip"], "203.0.113.9");
    assert_eq!(sqli["@timestamp"], "2025-04-07T12:30:01Z");
    assert!(detections.iter().all(|d| d["line"] == 2), "the benign line raises nothing: {detections:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 lines, 2 parsed"));
}

#[test]
fn real_traffic_gives_the_pinned_detections() {
    let file = shared_data().join("real/apache_combined_semicomplete_2015.log");
    let out = vigie().args(["analyze", "--format", "apache_combined"]).arg(&file).output().unwrap();
    assert!(out.status.success());
    // 34 WordPress login probes on a site without WordPress, checked by hand (analyzer/tests/real_traffic.rs).
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 34);
}

#[test]
fn the_default_rule_tests_pass_and_a_broken_rule_fails() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let out = vigie().args(["analyze", "--test", rules]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 failures"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yml"), "version: 1\nrules:\n  - id: x\n    kind: nonsense\n").unwrap();
    let out = vigie().arg("analyze").arg("--test").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yml:"), "{}", String::from_utf8_lossy(&out.stderr));
}
