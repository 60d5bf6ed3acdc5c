//! Acceptance against fail2ban's own test logs (shared/data/peer/fail2ban), through the
//! collector's real parsers.
//!
//! Each web log there (apache-*, nginx-*, php-url-fopen) annotates its lines with
//! `# failJSON: {"match": true|false, "host": IP}`: whether fail2ban's filter of the same name
//! flags the line and which address it blames. Every file is read with [`Format::Auto`]
//! (access lines, Apache and Nginx error lines are all recognised by it) and compared at two
//! levels:
//!
//! - **filter level**, like `fail2ban-regex`: each parsed line goes through
//!   [`RuleSet::matching`], the per-line verdict of every rule before windows. A `match: true`
//!   line must match a rule keyed on the same `source.ip`; a `match: false` line must match
//!   none. This is the whole agreement, and it is asserted line by line.
//! - **engine level**, what `vigie analyze` prints: the file goes through
//!   [`analyzer::analyze_reader`] with the default rules. Threshold rules need several
//!   failures within minutes while these files are single lines spread over a decade, so most
//!   flagged lines rightly produce no detection; what is asserted is that every detection
//!   falls on a `match: true` line and blames fail2ban's address (no false positive).
//!
//! Left out, each with its reason:
//! - `apache-pass`: a port-knocking jail; a 200 on a secret URL is the *wanted* behaviour.
//! - sections fail2ban runs in its `aggressive` or `fallback` modes (TLS handshake noise,
//!   mod_evasive), which the default rules leave to the flood and availability rules.
//! - annotated lines the collector's parsers do not read or read without fail2ban's address,
//!   listed in [`GAPS`]: none left (all 93 judged lines are checked).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use analyzer::{Engine, RuleSet};
use collector::parse::{Format, ParseContext, Parser};

const FILES: &[&str] = &[
    "apache-auth",
    "apache-badbots",
    "apache-nohome",
    "apache-noscript",
    "apache-overflows",
    "nginx-http-auth",
    "nginx-limit-req",
    "php-url-fopen",
];

/// Annotated lines the collector's parsers do not turn into an event carrying fail2ban's
/// address, by file and line, with the reason. They are gaps of the collector (not of the
/// rules), reported to it; the test checks each gap is still there, so that a fix shows up as
/// a stale entry to remove.
const GAPS: &[(&str, u64, Gap, &str)] = &[];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, reason = "GAPS is empty while the parsers read every line; kept for the next gap")]
enum Gap {
    /// The parser refuses the line.
    Unparsed,
    /// The line parses but `source.ip` is not fail2ban's address.
    NoAddress,
}

/// Lines fail2ban's *filter* ignores but Vigie flags on purpose under another rule:
/// (text in the line, rule). mod_evasive denials are not authentication failures (so
/// apache-auth skips them in its normal mode), but they are flood control firing, which
/// `web.rate-limited` counts.
const DELIBERATE: &[(&str, &str)] = &[("[evasive20:error]", "web.rate-limited")];

fn data_dir() -> PathBuf {
    let base = std::env::var_os("VIGIE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
    base.join("peer/fail2ban")
}

fn default_rules() -> Arc<RuleSet> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules"));
    Arc::new(RuleSet::load_dir(dir).unwrap_or_else(|e| panic!("{e}")))
}

fn ctx() -> ParseContext {
    // The files' lines carry their own dates; `now` only fills what a line leaves out.
    ParseContext { now: "2025-04-07T12:30:00Z".parse().unwrap(), time_zone: jiff::tz::TimeZone::UTC }
}

#[derive(serde::Deserialize)]
struct FailJson {
    #[serde(rename = "match")]
    flagged: bool,
    host: Option<String>,
}

/// The annotated lines of `text` to check, by 1-based line number: the line after each
/// `# failJSON:` comment, outside the sections left out.
fn annotations(file: &str, text: &str) -> BTreeMap<u64, FailJson> {
    let mut out = BTreeMap::new();
    let (mut skip_section, mut pending) = (false, None);
    for (i, line) in text.lines().enumerate() {
        if let Some(opts) = line.strip_prefix("# filterOptions:") {
            skip_section = opts.contains("aggressive") || opts.contains("fallback");
            continue;
        }
        if let Some(json) = line.strip_prefix("# failJSON:") {
            let parsed: FailJson =
                serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{file}:{}: {e}", i + 1));
            pending = Some(parsed);
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(expect) = pending.take()
            && !skip_section
        {
            out.insert(i as u64 + 1, expect);
        }
    }
    out
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Score {
    /// Annotated lines checked (parsed by the collector).
    checked: usize,
    /// Of which fail2ban flags.
    flagged: usize,
    /// Flagged lines Vigie's rules match with the same address.
    agreed_flagged: usize,
    /// Unflagged lines no rule matches.
    agreed_clean: usize,
    /// Annotated lines left to the collector's gaps (listed in `GAPS`).
    gaps: usize,
    /// Detections of the engine replay (all on flagged lines, with the right address).
    detections: usize,
}

fn score(file: &str, rules: &Arc<RuleSet>, mismatches: &mut Vec<String>) -> Score {
    let path = data_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected = annotations(file, &text);
    let parser = Parser::new(&Format::Auto).unwrap();
    let mut s = Score::default();

    analyzer::parse_lines(file, text.as_bytes(), &parser, &ctx(), |n, line, parsed| {
        let Some(expect) = expected.get(&n) else { return };
        let at = format!("{file}:{n}");
        let host = expect.host.as_deref().and_then(|h| h.parse().ok());
        if let Some((.., gap, why)) = GAPS.iter().find(|(f, l, ..)| *f == file && *l == n) {
            s.gaps += 1;
            let still = match (&parsed, gap) {
                (Err(_), Gap::Unparsed) => true,
                (Ok(e), Gap::NoAddress) => e.source_ip != host,
                _ => false,
            };
            if !still {
                mismatches
                    .push(format!("{at}: listed as a collector gap ({why}) but no longer is: remove it from GAPS"));
            }
            return;
        }
        let event = match parsed {
            Ok(event) => event,
            Err(e) => {
                mismatches.push(format!("{at}: the collector cannot parse the line: {e}"));
                return;
            }
        };
        s.checked += 1;
        let mut matches = rules.matching(&event);
        if expect.flagged {
            s.flagged += 1;
            let key = format!("source.ip={}", expect.host.as_deref().unwrap_or("?"));
            if matches.iter().any(|m| m.key == key) {
                s.agreed_flagged += 1;
            } else {
                mismatches.push(format!("{at}: fail2ban blames {key}, the rules say {matches:?}"));
            }
        } else {
            matches.retain(|m| !DELIBERATE.iter().any(|(text, rule)| line.contains(text) && m.rule == *rule));
            if matches.is_empty() {
                s.agreed_clean += 1;
            } else {
                mismatches.push(format!("{at}: fail2ban ignores the line, the rules say {matches:?}"));
            }
        }
    })
    .unwrap();

    let mut engine = Engine::new(Arc::clone(rules));
    analyzer::analyze_reader(file, text.as_bytes(), &parser, &ctx(), &mut engine, |d, n| {
        s.detections += 1;
        let at = format!("{file}:{n}");
        match expected.get(&n) {
            Some(FailJson { flagged: true, host }) => {
                let blamed = d.source_ip.map(|ip| ip.to_string());
                if blamed != *host {
                    mismatches.push(format!("{at}: {} blames {blamed:?}, fail2ban {host:?}", d.rule));
                }
            }
            Some(FailJson { flagged: false, .. }) => mismatches.push(format!("{at}: {} fires on a clean line", d.rule)),
            // Lines of the left-out sections, or without annotation, are not judged.
            None => {}
        }
    })
    .unwrap();
    s
}

#[test]
fn the_default_rules_agree_with_fail2ban_through_the_real_parsers() {
    let rules = default_rules();
    let mut mismatches = Vec::new();
    let mut scores = BTreeMap::new();
    for file in FILES {
        let s = score(file, &rules, &mut mismatches);
        println!(
            "{file:18} checked {:3}  flagged {:3}/{:3}  clean {:3}/{:3}  gaps {:2}  engine detections {}",
            s.checked,
            s.agreed_flagged,
            s.flagged,
            s.agreed_clean,
            s.checked - s.flagged,
            s.gaps,
            s.detections
        );
        scores.insert(*file, s);
    }
    assert!(mismatches.is_empty(), "{} disagreements:\n{}", mismatches.len(), mismatches.join("\n"));
    // Pinned per-file scores (checked, flagged, gaps, engine detections): a parser or
    // rule change that loses lines shows up here even if what is left still agrees.
    let pinned: BTreeMap<&str, (usize, usize, usize, usize)> =
        scores.iter().map(|(f, s)| (*f, (s.checked, s.flagged, s.gaps, s.detections))).collect();
    let expected: BTreeMap<&str, (usize, usize, usize, usize)> =
        PINNED.iter().copied().map(|(f, a, b, c, d)| (f, (a, b, c, d))).collect();
    assert_eq!(pinned, expected);
}

/// (file, lines checked, of which flagged, collector gaps, engine detections). The engine
/// fires on the overflows (`web.malformed-request`, a signature; one line repeats an address
/// within its suppression), the bad bot and the remote file inclusion; the other flagged
/// lines feed threshold rules whose count a test file never reaches.
const PINNED: &[(&str, usize, usize, usize, usize)] = &[
    ("apache-auth", 44, 40, 0, 0),
    ("apache-badbots", 4, 4, 0, 2),
    ("apache-nohome", 2, 2, 0, 0),
    ("apache-noscript", 13, 13, 0, 0),
    ("apache-overflows", 11, 11, 0, 10),
    ("nginx-http-auth", 9, 9, 0, 0),
    ("nginx-limit-req", 9, 9, 0, 0),
    ("php-url-fopen", 1, 1, 0, 1),
];

#[test]
fn the_real_parsers_blame_the_right_client() {
    let parser = Parser::new(&Format::Auto).unwrap();
    // A forged user name carrying its own `, client: ...`: the real client is the last one.
    let e = parser
        .parse(r#"2014/04/03 22:20:40 [error] 30708#0: *3 user "test": password mismatch, client: 127.0.0.1, server: test, request: "GET / HTTP/1.1", host: "localhost:8443"": was not found in "/etc/nginx/.htpasswd", client: 192.0.2.2, server: , request: "GET / HTTP/1.1""#, &ctx())
        .unwrap();
    assert_eq!(e.source_ip, "192.0.2.2".parse().ok());
}

/// apache-badbots:11 is written by `LogFormat "%v %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""`
/// (Debian's `vhost_combined` has `%v:%p`); `auto` recognises it, and so does a source
/// configured with that format, and the rules blame fail2ban's address.
#[test]
fn the_vhost_line_of_apache_badbots_reads_with_its_log_format() {
    let text = std::fs::read_to_string(data_dir().join("apache-badbots")).unwrap();
    let line = text.lines().nth(10).unwrap();
    assert!(line.starts_with("www.sitename.com 192.0.2.222 "), "{line}");
    let format = Format::ApacheCustom(r#"%v %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#.into());
    let event = Parser::new(&format).unwrap().parse(line, &ctx()).unwrap();
    let matches = default_rules().matching(&event);
    assert!(matches.iter().any(|m| m.key == "source.ip=192.0.2.222"), "{matches:?}");
}
