//! fail2ban's own test logs through `vigie analyze --matches`: every line fail2ban's filter
//! flags is matched, blaming the same address, and no line it leaves alone is.
//!
//! Files with fail2ban `filterOptions` sections (apache-auth, nginx-*) are checked section by
//! section in `analyzer/tests/fail2ban_replay.rs`; apache-pass is a port-knocking jail.

use std::collections::BTreeMap;

use crate::support::{shared_data, vigie};

/// Line number → (flagged?, address) from the `# failJSON` annotations.
fn expectations(text: &str) -> BTreeMap<u64, (bool, Option<String>)> {
    let mut out = BTreeMap::new();
    let mut pending = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(json) = line.strip_prefix("# failJSON:") {
            let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
            pending = Some((v["match"].as_bool().unwrap(), v["host"].as_str().map(str::to_owned)));
        } else if !line.trim().is_empty()
            && !line.starts_with('#')
            && let Some(expect) = pending.take()
        {
            out.insert(i as u64 + 1, expect);
        }
    }
    out
}

#[test]
fn every_flagged_line_is_matched_with_the_same_address_and_no_other() {
    let mut report = Vec::new();
    for file in ["apache-badbots", "apache-nohome", "apache-noscript", "apache-overflows", "php-url-fopen"] {
        let path = shared_data().join("peer/fail2ban").join(file);
        let expected = expectations(&std::fs::read_to_string(&path).unwrap());
        let out = vigie().args(["analyze", "--matches", "--format", "auto"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let matched: BTreeMap<u64, serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["line"].as_u64().unwrap(), v))
            .collect();
        let mut agreed = 0;
        for (line, (flagged, host)) in &expected {
            match (flagged, matched.get(line)) {
                (true, Some(m)) => {
                    assert_eq!(m["source"]["ip"].as_str(), host.as_deref(), "{file}:{line}");
                    agreed += 1;
                }
                (true, None) => panic!("{file}:{line}: fail2ban flags it, vigie does not"),
                (false, None) => agreed += 1,
                (false, Some(m)) => panic!("{file}:{line}: fail2ban ignores it, vigie matched {m}"),
            }
        }
        report.push(format!("{file}: {agreed}/{}", expected.len()));
        assert!(matched.keys().all(|l| expected.contains_key(l)), "{file}: a matched line has no annotation");
    }
    println!("{}", report.join(", "));
}
