//! Data-driven tests over real lines: the 10,000 real Apache lines and the Elastic
//! integration fixtures (each input line beside the document Elastic's pipeline makes of
//! it). The shared data is read in place from `VIGIE_SHARED_DATA`.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::{Format, ParseContext, Parser};
use crate::Event;

fn shared_data() -> PathBuf {
    std::env::var_os("VIGIE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")))
}

fn read_lines(rel: &str) -> Vec<String> {
    let path = shared_data().join(rel);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (set VIGIE_SHARED_DATA)", path.display()));
    text.lines().map(str::to_owned).collect()
}

fn expected(rel: &str) -> Vec<Value> {
    let path = shared_data().join(format!("{rel}-expected.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["expected"].as_array().unwrap().clone()
}

/// A dotted path into an Elastic document (`source.ip`), as a string.
fn field(doc: &Value, path: &str) -> Option<String> {
    let mut v = doc;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Elastic keeps `-` where Vigie says "no value".
fn elastic(doc: &Value, path: &str) -> Option<String> {
    field(doc, path).filter(|s| s != "-")
}

fn decoded(s: &Option<String>) -> Option<String> {
    s.as_deref().map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
}

fn utc(ts: &str) -> jiff::Timestamp {
    ts.parse().unwrap_or_else(|e| panic!("{ts}: {e}"))
}

/// Compares the fields that matter for an access event; `what` names the line in failures.
fn check_access(ev: &Event, doc: &Value, what: &str) {
    let source = elastic(doc, "source.ip");
    assert_eq!(
        ev.source_ip.map(|i| i.to_string()),
        source.map(|s| s.parse::<std::net::IpAddr>().unwrap().to_string()),
        "source.ip {what}"
    );
    assert_eq!(ev.source_port.map(|p| p.to_string()), elastic(doc, "source.port"), "source.port {what}");
    assert_eq!(ev.user_name, elastic(doc, "user.name"), "user.name {what}");
    assert_eq!(
        ev.http_method.as_deref().map(str::to_ascii_uppercase),
        elastic(doc, "http.request.method").map(|m| m.to_ascii_uppercase()),
        "method {what}"
    );
    assert_eq!(decoded(&ev.url_path), elastic(doc, "url.path"), "url.path {what}");
    assert_eq!(decoded(&ev.url_query), elastic(doc, "url.query"), "url.query {what}");
    assert_eq!(ev.http_version, elastic(doc, "http.version"), "http.version {what}");
    assert_eq!(ev.http_status.map(|s| s.to_string()), elastic(doc, "http.response.status_code"), "status {what}");
    assert_eq!(ev.destination_bytes.map(|b| b.to_string()), elastic(doc, "http.response.body.bytes"), "bytes {what}");
    assert_eq!(ev.user_agent, elastic(doc, "user_agent.original"), "user agent {what}");
    assert_eq!(ev.http_referrer, elastic(doc, "http.request.referrer"), "referrer {what}");
    assert_eq!(ev.timestamp, utc(&field(doc, "@timestamp").unwrap()), "@timestamp {what}");
    assert_eq!(ev.original, field(doc, "event.original").unwrap(), "event.original {what}");
}

/// Parses `line` with the first of `formats` that accepts it all.
fn parse_any(line: &str, formats: &[Parser], ctx: &ParseContext) -> Event {
    let mut errors = Vec::new();
    for p in formats {
        match p.parse(line, ctx) {
            Ok(ev) => return ev,
            Err(e) => errors.push(e.to_string()),
        }
    }
    panic!("no format accepts {line:?}: {errors:#?}");
}

fn apache(format: &str) -> Parser {
    Parser::new(&Format::ApacheCustom(format.to_owned())).unwrap()
}

fn ctx_utc(now: &str) -> ParseContext {
    ParseContext { now: utc(now), time_zone: jiff::tz::TimeZone::UTC }
}

#[test]
fn every_real_apache_line_parses_as_combined() {
    let lines = read_lines("real/apache_combined_semicomplete_2015.log");
    assert_eq!(lines.len(), 10_000);
    let parser = Parser::new(&Format::ApacheCombined).unwrap();
    let ctx = ctx_utc("2025-04-07T12:30:00Z");
    let mut with_ip = 0;
    for (n, line) in lines.iter().enumerate() {
        let ev = parser.parse(line, &ctx).unwrap_or_else(|e| panic!("line {}: {e}\n{line}", n + 1));
        assert!(ev.http_status.is_some(), "line {}", n + 1);
        assert!(ev.utc_offset_seconds.is_some(), "line {}", n + 1);
        with_ip += usize::from(ev.source_ip.is_some());
    }
    // Every client in this file is logged by address (no HostnameLookups).
    assert_eq!(with_ip, 10_000);
    // Spot-check the first line field by field.
    let ev = parser.parse(&lines[0], &ctx).unwrap();
    assert_eq!(ev.source_ip, Some("83.149.9.216".parse().unwrap()));
    assert_eq!(ev.timestamp.to_string(), "2015-05-17T10:05:03Z");
    assert_eq!(ev.http_method.as_deref(), Some("GET"));
    assert_eq!(ev.url_path.as_deref(), Some("/presentations/logstash-monitorama-2013/images/kibana-search.png"));
    assert_eq!(ev.http_status, Some(200));
    assert_eq!(ev.destination_bytes, Some(203023));
}

/// The real lines go through the dedicated `combined` pass, all but the three with a
/// backslash, and it builds what the general search builds; Nginx's `combined` reads them
/// the same way (their identd field is `-`).
#[test]
fn real_apache_lines_take_the_clf_pass() {
    let ctx = ctx_utc("2025-04-07T12:30:00Z");
    let lines = read_lines("real/apache_combined_semicomplete_2015.log");
    for template in [super::apache::compile(super::apache::COMBINED), super::nginx::compile(super::nginx::COMBINED)] {
        let template = template.unwrap();
        let mut taken = 0;
        for line in &lines {
            if let Some(ev) = template.parse_clf(line, &ctx) {
                assert_eq!(Ok(ev), template.parse_general(line, &ctx), "{line}");
                taken += 1;
            } else {
                assert!(line.contains('\\'), "left to the general search: {line}");
            }
        }
        assert_eq!(taken, 10_000 - 3);
    }
}

const APACHE_DIR: &str = "peer/elastic-integrations/apache/data_stream/access/_dev/test/pipeline";
const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;

#[test]
fn elastic_apache_basic() {
    let rel = format!("{APACHE_DIR}/test-access-basic.log");
    let lines = read_lines(&rel);
    let docs = expected(&rel);
    let parsers = [
        Parser::new(&Format::ApacheCommon).unwrap(),
        Parser::new(&Format::ApacheCombined).unwrap(),
        apache(&format!(r#"{COMBINED} "%{{X-Forwarded-For}}i""#)),
        apache(&format!(r#"{COMBINED} X-Forwarded-For="%{{X-Forwarded-For}}i""#)),
        apache(r#"%h %l %u %t "%r" %>s %b %D "%{Referer}i" "%{User-Agent}i" X-Forwarded-For="%{X-Forwarded-For}i""#),
    ];
    let ctx = ctx_utc("2025-04-07T12:30:00Z");
    let events: Vec<Event> = lines.iter().map(|l| parse_any(l, &parsers, &ctx)).collect();
    // Lines 11 and 12 have no expected document (see shared/data/peer/elastic-integrations/SOURCE.md).
    let covered: Vec<usize> = (0..10).chain([12]).collect();
    assert_eq!(covered.len(), docs.len());
    for (doc, &i) in docs.iter().zip(&covered) {
        check_access(&events[i], doc, &format!("basic line {}", i + 1));
    }
    // Line 11 carries %D between the bytes and the referrer.
    assert_eq!(events[10].duration_ns, Some(3_413_000));
}

#[test]
fn elastic_apache_vhost_and_ssl() {
    let ctx = ctx_utc("2025-04-07T12:30:00Z");
    let rel = format!("{APACHE_DIR}/test-access-vhost.log");
    let parsers = [
        // Elastic reads the second line as server:port then client:port.
        apache(r#"%v:%p %h:%{remote}p %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#),
        apache(r#"%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#),
    ];
    let lines = read_lines(&rel);
    let docs = expected(&rel);
    assert_eq!(lines.len(), docs.len());
    for (i, (line, doc)) in lines.iter().zip(&docs).enumerate() {
        let ev = parse_any(line, &parsers, &ctx);
        check_access(&ev, doc, &format!("vhost line {}", i + 1));
        let server = elastic(doc, "url.domain").or_else(|| elastic(doc, "destination.address"));
        assert_eq!(ev.observer_hostname, server, "vhost line {}", i + 1);
        assert_eq!(ev.destination_port.map(|p| p.to_string()), elastic(doc, "destination.port"));
    }

    let rel = format!("{APACHE_DIR}/test-access-ssl-request.log");
    let parser = apache(r#"%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x "%r" %b"#);
    let lines = read_lines(&rel);
    let docs = expected(&rel);
    assert_eq!(lines.len(), docs.len());
    for (i, (line, doc)) in lines.iter().zip(&docs).enumerate() {
        let ev = parser.parse(line, &ctx).unwrap_or_else(|e| panic!("{e}"));
        check_access(&ev, doc, &format!("ssl line {}", i + 1));
    }
}

const NGINX_DIR: &str = "peer/elastic-integrations/nginx/data_stream/access/_dev/test/pipeline";

fn nginx(format: &str) -> Parser {
    Parser::new(&Format::NginxCustom(format.to_owned())).unwrap()
}

#[test]
fn elastic_nginx_access() {
    let ctx = ctx_utc("2025-04-07T12:30:00Z");
    let rel = format!("{NGINX_DIR}/test-access.log");
    let lines = read_lines(&rel);
    let docs = expected(&rel);
    let tail = r#"- $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
    let parsers = [Parser::new(&Format::NginxCombined).unwrap(), nginx(&format!("$host $remote_addr {tail}"))];
    let events: Vec<Event> = lines.iter().map(|l| parse_any(l, &parsers, &ctx)).collect();
    // Elastic joins lines 12-14 into one event (a multiline setting): compare the first 11.
    for (i, doc) in docs.iter().enumerate().take(11) {
        check_access(&events[i], doc, &format!("nginx access line {}", i + 1));
    }
    assert_eq!(events[12].observer_hostname.as_deref(), Some("lessons.example.com"));
    assert_eq!(events[12].http_status, Some(206));
    assert_eq!(events[12].destination_bytes, Some(7_648_063));
}

#[test]
fn elastic_nginx_with_host_every_line_parses() {
    let ctx = ctx_utc("2025-04-07T12:30:00Z");
    let lines = read_lines(&format!("{NGINX_DIR}/test-test-with-host.log"));
    let tail = r#"- $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
    let mut parsers = Vec::new();
    for head in [
        "$host $remote_addr",
        "$host $http_x_forwarded_for $remote_addr",
        r#"$host:$server_port "$http_x_forwarded_for" $remote_addr"#,
    ] {
        parsers.push(nginx(&format!("{head} {tail}")));
        parsers.push(nginx(&format!(r#"{head} {tail} "$http_x_forwarded_for""#)));
    }
    let events: Vec<Event> = lines.iter().map(|l| parse_any(l, &parsers, &ctx)).collect();
    // The client is the address right before ` - -`, after any forwarded-for list.
    let clients: Vec<Option<String>> = events.iter().map(|e| e.source_ip.map(|i| i.to_string())).collect();
    assert_eq!(
        clients,
        [
            Some("127.0.0.1"),
            Some("172.17.0.1"),
            Some("67.43.156.14"),
            Some("67.43.156.14"),
            Some("10.2.1.185"),
            Some("10.2.2.121"),
            Some("127.0.0.1"),
            None,
            None,
            None
        ]
        .map(|c| c.map(str::to_owned))
    );
    // An empty request and a garbage request are still events with their status.
    assert_eq!((events[6].http_method.as_deref(), events[6].http_status), (None, Some(400)));
    assert_eq!((events[7].http_method.as_deref(), events[7].http_status), (None, Some(400)));
    assert_eq!(events[4].url_query.as_deref(), Some("q=100"));
}

const IPTABLES_DIR: &str = "peer/elastic-integrations/iptables/data_stream/log/_dev/test/pipeline";

/// Month, day and time of day in UTC: Elastic's year for yearless syslog dates depends on
/// when its test ran.
fn without_year(ts: jiff::Timestamp) -> String {
    ts.strftime("%m-%dT%H:%M:%S").to_string()
}

fn check_network(ev: &Event, doc: &Value, what: &str, compare_destination_ip: bool) {
    let ip = |s: Option<String>| s.map(|s| s.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(ev.source_ip, ip(elastic(doc, "source.ip")), "source.ip {what}");
    if compare_destination_ip {
        assert_eq!(ev.destination_ip, ip(elastic(doc, "destination.ip")), "destination.ip {what}");
    }
    assert_eq!(ev.source_port.map(|p| p.to_string()), elastic(doc, "source.port"), "source.port {what}");
    assert_eq!(ev.destination_port.map(|p| p.to_string()), elastic(doc, "destination.port"), "destination.port {what}");
    assert_eq!(ev.transport, elastic(doc, "network.transport"), "transport {what}");
    assert_eq!(without_year(ev.timestamp), without_year(utc(&field(doc, "@timestamp").unwrap())), "@timestamp {what}");
}

#[test]
fn elastic_iptables() {
    let parser = Parser::new(&Format::Netfilter).unwrap();
    for (file, now) in
        [("test-iptables-raw.log", "2023-02-01T00:00:00Z"), ("test-ubiquiti.log", "2024-01-06T00:00:00Z")]
    {
        let rel = format!("{IPTABLES_DIR}/{file}");
        let lines = read_lines(&rel);
        let docs = expected(&rel);
        assert_eq!(lines.len(), docs.len());
        let ctx = ctx_utc(now);
        let mut parsed = 0;
        for (i, (line, doc)) in lines.iter().zip(&docs).enumerate() {
            let what = format!("{file} line {}", i + 1);
            match parser.parse(line, &ctx) {
                Ok(ev) => {
                    parsed += 1;
                    check_network(&ev, doc, &what, true);
                    assert_eq!(
                        ev.observer_ingress_interface,
                        elastic(doc, "iptables.input_device").filter(|d| !d.is_empty()),
                        "{what}"
                    );
                    // Elastic misses the host when no `kernel:` tag follows it; Vigie does not.
                    if let Some(name) = elastic(doc, "observer.name") {
                        assert_eq!(ev.observer_hostname, Some(name), "{what}");
                    }
                    match elastic(doc, "event.action") {
                        Some(a) => assert_eq!(
                            ev.action.as_deref(),
                            Some(if a == "accept" { "pass" } else { "block" }),
                            "{what}"
                        ),
                        // Elastic reads Ubiquiti's `-A`/`-D` suffix only after a `kernel:` tag.
                        None => assert!(
                            ev.action.is_none() || ev.rule_name.as_deref().is_some_and(|r| r.ends_with("-A")),
                            "{what}"
                        ),
                    }
                }
                Err(e) => {
                    // Lines a relay truncated before `IN=`/`SRC=` cannot be attributed to
                    // anyone: they go to the dead letters, with the reason.
                    assert!(line.contains("kernel: ") && !line.contains("SRC="), "{what}: {e}");
                    assert!(e.expected().contains("IN="), "{what}: {e}");
                }
            }
        }
        let expect_parsed = if file == "test-ubiquiti.log" { 5 } else { lines.len() };
        assert_eq!(parsed, expect_parsed, "{file}");
    }
}

const PFSENSE_DIR: &str = "peer/elastic-integrations/pfsense/data_stream/log/_dev/test/pipeline";

#[test]
fn elastic_pfsense_and_opnsense() {
    let parser = Parser::new(&Format::Filterlog).unwrap();
    let ctx =
        ParseContext { now: utc("2023-12-31T23:59:00Z"), time_zone: jiff::tz::TimeZone::fixed(jiff::tz::offset(-4)) };
    for file in ["test-pfsense-bsd.log", "test-pfsense-syslog.log", "test-opensense.log"] {
        let rel = format!("{PFSENSE_DIR}/{file}");
        let lines = read_lines(&rel);
        let docs = expected(&rel);
        let mut parsed = 0;
        for (i, (line, doc)) in lines.iter().zip(&docs).enumerate() {
            let what = format!("{file} line {}", i + 1);
            if field(doc, "process.name").as_deref() != Some("filterlog") {
                // dhcpd and unbound lines share the OPNsense fixture; they are not ours.
                let err = parser.parse(line, &ctx).unwrap_err();
                assert!(err.expected().contains("filterlog"), "{what}: {err}");
                continue;
            }
            let ev = parser.parse(line, &ctx).unwrap_or_else(|e| panic!("{what}: {e}"));
            parsed += 1;
            // The syslog fixture's expected output was made after its destinations changed.
            check_network(&ev, doc, &what, file != "test-pfsense-syslog.log");
            assert_eq!(ev.observer_ingress_interface, elastic(doc, "observer.ingress.interface.name"), "{what}");
            assert_eq!(ev.rule_name, elastic(doc, "rule.id"), "{what}");
            assert_eq!(
                ev.action,
                elastic(doc, "event.action").map(|a| if a == "pass" { a } else { "block".to_owned() }),
                "{what}"
            );
        }
        assert!(parsed >= 3, "{file}: only {parsed} filterlog lines");
    }
}

mod never_panics {
    //! No parser may panic, whatever bytes a source hands it: a panic would take the whole
    //! collector down on one hostile line.

    use proptest::prelude::*;

    use super::super::{Format, ParseContext, Parser};

    pub(super) fn parsers() -> Vec<Parser> {
        let mut formats = vec![
            Format::Auto,
            Format::ApacheCommon,
            Format::ApacheCombined,
            Format::ApacheVhostCombined,
            Format::ApacheCustom(r#"%{%Y-%m-%d %H:%M:%S}t %a:%{remote}p %v %D "%r" %>s %O %{sec}t %q %U"#.to_owned()),
            Format::ApacheError,
            Format::NginxCombined,
            Format::NginxCustom("$time_iso8601 $remote_addr:$remote_port $request_uri $request_time $msec".to_owned()),
            Format::NginxError,
            Format::Netfilter,
            Format::Filterlog,
            Format::Stormshield,
        ];
        formats.dedup();
        formats.iter().map(|f| Parser::new(f).unwrap()).collect()
    }

    /// Mutations of real lines reach deeper than random text.
    /// Seed line `seed` with `insert` put in at byte `cut` (moved back to a character boundary,
    /// at most the line's end).
    pub(super) fn mutated(seed: usize, cut: usize, insert: &str) -> String {
        let base = SEEDS[seed];
        let mut at = cut.min(base.len());
        while !base.is_char_boundary(at) {
            at -= 1;
        }
        format!("{}{}{}", &base[..at], insert, &base[at..])
    }

    pub(super) const SEEDS: &[&str] = &[
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a?b HTTP/1.0" 200 2326 "-" "Mozilla/5.0""#,
        "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:8080] AH00128: x",
        "Jan  8 03:37:09 h kernel: DROP: IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 PROTO=TCP SPT=1 DPT=2 [SRC=1",
        "<134>Jul  3 19:10:30 filterlog[72237]: 146,,,1535324496,igb1.12,match,block,in,6,0x0,,63,tcp,6,60,::1,::2,1,2",
        r#"id=firewall time="2025-04-07 14:30:00" tz=+0200 src=192.0.2.1 duration=1e308 sent=-1 logtype="connection""#,
        "2016/10/25 14:49:34 [error] 54053#0: *1 x, client: ::1, request: \"GET",
        // Wrapped server lines, nested brackets and the vhost access layout (fail2ban's tests).
        "Feb 15 16:23:40 srv httpd/backend1[22034]: [authz_core:error] [pid 22036] [client [2001:db8::1]:5] [remote 192.0.2.1:9] x",
        "host nginx[23141]: host nginx: 2025/09/07 21:20:40 [error] 23141#23141: *24470 PAM, client: 192.0.2.120, server: w",
        r#"www.sitename.com 192.0.2.222 - - [18/Aug/2024:21:08:39 +0100] "GET /filename.jpg HTTP/1.1" 403 332 "-" "Tr""#,
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text(line in "\\PC{0,300}", now in 0i64..4_000_000_000) {
            let ctx = ParseContext { now: jiff::Timestamp::from_second(now).unwrap(), time_zone: jiff::tz::TimeZone::get("Europe/Paris").unwrap() };
            for p in parsers() {
                let _ = p.parse(&line, &ctx);
            }
        }

        #[test]
        fn mutated_real_lines(seed in 0..SEEDS.len(), cut in 0usize..200, insert in "[ \"\\[\\]:=,\\\\x0-9a-zA-Z-]{0,8}") {
            let line = mutated(seed, cut, &insert);
            let ctx = ParseContext { now: "2025-04-07T12:30:00Z".parse().unwrap(), time_zone: jiff::tz::TimeZone::UTC };
            for p in parsers() {
                if let Err(e) = p.parse(&line, &ctx) {
                    // Errors always point inside the line (or just past its end).
                    prop_assert!(e.column() >= 1 && e.column() <= line.len() + 1, "{e}");
                }
            }
        }
    }
}

mod json_without_an_owned_event {
    //! `Parser::parse_to_ecs_json`, the path of `vigie parse`, writes what the owned event
    //! writes: the same bytes for every line, the same error for every bad one.

    use proptest::prelude::*;

    use super::never_panics::{SEEDS, mutated, parsers};
    use super::{ParseContext, Parser, read_lines, shared_data};
    use crate::EventId;

    fn check(parser: &Parser, line: &str, ctx: &ParseContext) {
        let mut fast = b"kept".to_vec();
        let mut id = crate::JsonId::new("web");
        id.set_line(7);
        let written = parser.parse_to_ecs_json(line, ctx, &id, &mut fast);
        match parser.parse(line, ctx) {
            Ok(mut event) => {
                event.id = EventId::at("web", 7);
                let mut owned = b"kept".to_vec();
                event.write_ecs_json(&mut owned);
                assert_eq!(written, Ok(()), "{line:?}");
                assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(owned).unwrap(), "{line:?}");
            }
            Err(e) => {
                assert_eq!(written, Err(e), "{line:?}");
                assert_eq!(fast, b"kept", "nothing written for a bad line: {line:?}");
            }
        }
    }

    /// Every line of the shared data (real Apache lines, every Elastic fixture), with every parser.
    #[test]
    fn every_shared_line_with_every_parser() {
        let mut files = vec!["real/apache_combined_semicomplete_2015.log".to_owned()];
        let peer = shared_data().join("peer/elastic-integrations");
        for integration in ["apache", "nginx", "iptables", "pfsense"] {
            let mut dirs = vec![peer.join(integration)];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if path.extension().is_some_and(|x| x == "log") {
                        files.push(path.strip_prefix(shared_data()).unwrap().display().to_string());
                    }
                }
            }
        }
        assert!(files.len() > 10, "{files:?}");
        let ctx = ParseContext {
            now: "2025-04-07T12:30:00Z".parse().unwrap(),
            time_zone: jiff::tz::TimeZone::get("Europe/Paris").unwrap(),
        };
        let parsers = parsers();
        let mut lines = 0;
        for file in &files {
            for line in read_lines(file) {
                for parser in &parsers {
                    check(parser, &line, &ctx);
                }
                lines += 1;
            }
        }
        assert!(lines > 10_000, "{lines} lines");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn mutated_real_lines(seed in 0..SEEDS.len(), cut in 0usize..200, insert in "[ \"\\[\\]:=,\\\\x0-9a-zA-Z-]{0,8}") {
            let line = mutated(seed, cut, &insert);
            let ctx = ParseContext { now: "2025-04-07T12:30:00Z".parse().unwrap(), time_zone: jiff::tz::TimeZone::UTC };
            for p in parsers() {
                check(&p, &line, &ctx);
            }
        }
    }
}
