//! Pins what the default rules find in 10,000 real Apache combined lines
//! (shared/data/real/apache_combined_semicomplete_2015.log: semicomplete.com, 17–20 May 2015).
//!
//! Every detection was looked at by hand (rule, address, line, evidence):
//! - all 34 are `web.sensitive-file`, on WordPress entry points (`/wp-login.php`,
//!   `/wp-login.php?action=register`, `/wp-admin/`, `/blog/wp-admin/`, `/wordpress/wp-admin/`,
//!   `/wp/wp-admin/`). The site is not a WordPress site: every one of these 35 requests got a
//!   404, they come from 34 addresses at minute :05 of the hour,
//!   with no user agent or a stale Chrome 24 / Firefox 21 one, and several of the same
//!   addresses ask for `/administrator/` and `/admin.php` (Joomla) seconds later. That is a
//!   distributed CMS scan: true positives. One address (212.90.148.107) asked twice within
//!   the rule's 1 h suppression, hence 34 detections for 35 requests.
//! - no false positive was found, so no rule was changed for this file. Three lines carry
//!   `wordpress` only in their referrer (links from wordpress.com blogs, status 200) and are
//!   rightly not flagged: the rule looks at `url.path` only.
//! - nothing else fires: the file has no scanning tool's user agent, no injection, and no address
//!   reaches the 404-scan or flood thresholds. The address with the most 404s
//!   (208.91.156.11, 60) asks for one removed file (`logstash-1.3.2-monolithic.jar`) about
//!   once an hour: a stale download script, not a scan, and rightly not flagged.
//!
//! Not flagged, and acceptable: the `/administrator/` and `/admin.php` probes themselves
//! (their senders are already reported for the WordPress probes minutes before).
//! Not flagged, and open: three `GET /` with the user agents `Indy Library` (from a
//! referrer-spam domain) and `DTS Agent` (an e-mail harvester), which fail2ban's
//! apache-badbots list catches and `web.scanner-user-agent` does not list.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use analyzer::{BlockList, BlockPolicy, Engine, ReplaySummary, RuleSet, Severity};
use collector::parse::{Format, ParseContext, Parser};

fn log_path() -> PathBuf {
    let base = std::env::var_os("VIGIE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
    base.join("real/apache_combined_semicomplete_2015.log")
}

#[test]
fn real_traffic_gives_only_the_cms_probes() {
    let rules = Arc::new(RuleSet::load_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules"))).unwrap());
    let mut engine = Engine::new(rules);
    let parser = Parser::new(&Format::ApacheCombined).unwrap();
    let ctx = ParseContext { now: "2025-04-07T12:30:00Z".parse().unwrap(), time_zone: jiff::tz::TimeZone::UTC };
    let text = std::fs::read_to_string(log_path()).unwrap_or_else(|e| panic!("{}: {e}", log_path().display()));
    let lines: Vec<&str> = text.lines().collect();

    let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
    let mut addresses = BTreeSet::new();
    let mut blocks = BlockList::new(BlockPolicy::default(), Vec::new());
    let summary = analyzer::analyze_reader("real", text.as_bytes(), &parser, &ctx, &mut engine, |d, n| {
        *per_rule.entry(d.rule.clone()).or_default() += 1;
        addresses.insert(d.source_ip.unwrap());
        blocks.add(d);
        // What the hand check found, asserted for each detection: a WordPress path, a 404,
        // and the blamed address is the line's client.
        let line = lines[n as usize - 1];
        let request = line.split('"').nth(1).unwrap();
        assert!(request.contains("/wp-login.php") || request.contains("/wp-admin/"), "line {n}: {line}");
        assert!(line.contains("\" 404 "), "line {n}: {line}");
        assert_eq!(line.split(' ').next(), d.source_ip.map(|ip| ip.to_string()).as_deref(), "line {n}");
        assert_eq!(d.severity, Severity::Warning);
    })
    .unwrap();

    assert_eq!(summary, ReplaySummary { lines: 10_000, parsed: 10_000, unparsed: 0, detections: 34 });
    assert_eq!(per_rule, BTreeMap::from([("web.sensitive-file".to_owned(), 34)]));
    assert_eq!(addresses.len(), 34);
    // Warnings block for an hour from the probe: at the last probe (20 May, 09:05:45 UTC)
    // only that address is still blocked; at the first one, all would have been in turn.
    let last: jiff::Timestamp = "2015-05-20T09:05:45Z".parse().unwrap();
    let active: Vec<IpAddr> = blocks.active(last).map(|(ip, _)| ip).collect();
    assert_eq!(active, ["184.154.137.213".parse::<IpAddr>().unwrap()]);
}
