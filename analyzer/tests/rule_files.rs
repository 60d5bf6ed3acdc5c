//! Runs the tests shipped with the default rule files (`rules/*.test.yml`).

use std::path::Path;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");

#[test]
fn the_default_rules_load() {
    let set = analyzer::RuleSet::load_dir(Path::new(RULES)).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.len() >= 20, "only {} rules", set.len());
}

#[test]
fn the_default_rules_pass_their_tests() {
    let report = analyzer::run_rule_tests(Path::new(RULES)).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.files >= 6, "{report}");
    assert!(report.is_success(), "{report}");
}
