//! Offline analysis of a log file (`vigie analyze`): read lines, parse them with the
//! collector's parsers, run the rule engine and hand back each detection with its line.
//!
//! The engine's clock is the events' own `@timestamp`, so replaying a file gives the
//! detections a live run over the same lines would have given. Event ids are
//! `"<source>:<line>"`, so the same file replayed twice yields the same detection ids.

use std::io::BufRead;
use std::sync::Arc;

use collector::parse::{ParseContext, ParseError, Parser};
use collector::{Event, EventId};

use crate::detection::Detection;
use crate::engine::{Engine, detection};
use crate::field::{EventView, Fields};
use crate::rules::Hits;

/// What one replay read and found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Lines read (an empty line counts: it is reported as unparsed, not skipped).
    pub lines: u64,
    pub parsed: u64,
    /// Lines no parser understood; never dropped silently, but counted here.
    pub unparsed: u64,
    pub detections: u64,
}

impl std::ops::AddAssign for ReplaySummary {
    fn add_assign(&mut self, other: ReplaySummary) {
        self.lines += other.lines;
        self.parsed += other.parsed;
        self.unparsed += other.unparsed;
        self.detections += other.detections;
    }
}

/// Reads `reader` line by line and parses each line with `parser`, calling `on_line` with the
/// 1-based line number, the line and the parse result; returns the number of lines read.
///
/// Lines are read as bytes and decoded lossily: real logs carry stray Latin-1 bytes in user
/// agents and paths, and one such byte must not end the run. A trailing `\n` or `\r\n` is
/// removed. A parsed event's id is `"<source>:<line>"`.
pub fn parse_lines(
    source: &str,
    mut reader: impl BufRead,
    parser: &Parser,
    ctx: &ParseContext,
    mut on_line: impl FnMut(u64, &str, Result<Event, ParseError>),
) -> Result<u64, std::io::Error> {
    let mut buf = Vec::with_capacity(1024);
    let mut n = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(n);
        }
        n += 1;
        let end = buf.len() - usize::from(buf.ends_with(b"\n")) - usize::from(buf.ends_with(b"\r\n"));
        let line = String::from_utf8_lossy(&buf[..end]);
        let parsed = parser.parse(&line, ctx).map(|mut event| {
            event.id = EventId::at(source, n);
            event
        });
        on_line(n, &line, parsed);
    }
}

/// Lines reserved for the results of one parse chunk (a chunk is 256 KiB of text, about a
/// thousand log lines): a vector grown by doubling copies every result several times.
const LINES_PER_CHUNK: usize = 4096;

/// One chunk of lines, parsed and run through the rules' per-event conditions on a
/// parsing thread: what the engine needs of each line, in line order.
struct Evaluated {
    lines: Vec<Line>,
    /// The hits of every line of the chunk (each line knows its range).
    hits: Hits,
    /// The current line's event id, in a buffer reused from line to line.
    id: EventId,
}

/// Chunks already consumed, emptied, for the next chunks: fresh vectors per chunk had the
/// allocator hand their pages back to the kernel and the kernel zero new ones (8 % of
/// `vigie analyze` in a profile).
static SPARE: std::sync::Mutex<Vec<Evaluated>> = std::sync::Mutex::new(Vec::new());
/// More than the chunks in flight at once (two per worker, up to 16 workers).
const SPARE_MAX: usize = 40;

impl Default for Evaluated {
    /// A spare chunk, or a new one.
    fn default() -> Self {
        let spare = SPARE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        spare.unwrap_or_else(|| Evaluated {
            lines: Vec::with_capacity(LINES_PER_CHUNK),
            hits: Hits::default(),
            id: EventId::default(),
        })
    }
}

impl Evaluated {
    /// Gives the emptied chunk back for a next one.
    fn recycle(mut self) {
        self.lines.clear();
        self.hits.clear();
        let mut spare = SPARE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if spare.len() < SPARE_MAX {
            spare.push(self);
        }
    }
}

/// What the engine needs of a parsed line once its conditions are evaluated; the text of
/// the line and its event are gone by then.
enum Line {
    Parsed {
        n: u64,
        timestamp: jiff::Timestamp,
        source_ip: Option<std::net::IpAddr>,
        /// The user name, in the chunk's [`Hits::text`] (only kept for a line with hits:
        /// nothing else can fire).
        user_name: Option<std::ops::Range<usize>>,
        /// The line's hits in the chunk's [`Hits::hits`].
        hits: std::ops::Range<usize>,
    },
    Unparsed {
        n: u64,
        /// Boxed: rare, and larger than a parsed line.
        error: Box<ParseError>,
    },
}

/// Replays `reader` (named `source` in event ids, typically the file's path) through
/// `engine`, calling `on_detection` with each detection and the 1-based line number of the
/// event that triggered it. Unparsable lines are counted and logged at debug level; only an
/// I/O error stops the run.
///
/// The same `engine` may be fed several files in turn: windows then span files, as they
/// would for a live source reading them one after the other.
///
/// What the engine does for each event splits in two: evaluating the rules' conditions on
/// the event (with the offender key and, for a signature, what matched), which reads the
/// event alone, and counting those hits in the windows, which must see the events in input
/// order. The first half runs on the parsing threads, on the line's borrowed fields (no
/// owned event is built); the calling thread does only the second, as
/// [`Engine::observe`] would for the same events in the same order.
pub fn analyze_reader(
    source: &str,
    reader: impl BufRead + Send,
    parser: &Parser,
    ctx: &ParseContext,
    engine: &mut Engine,
    mut on_detection: impl FnMut(&Detection, u64),
) -> Result<ReplaySummary, std::io::Error> {
    let mut summary = ReplaySummary::default();
    let rules = Arc::clone(engine.rules());
    summary.lines = collector::parse::lines_in_order(
        reader,
        |acc: &mut Evaluated, n, line| match parser.parse_borrowed(line, ctx) {
            Ok(event) => {
                acc.id.set_at(source, n);
                let fields = Fields::of_line(&event, acc.id.as_str());
                let start = acc.hits.hits.len();
                rules.evaluate(&EventView::new(fields), &mut acc.hits);
                let hits = start..acc.hits.hits.len();
                let user_name = fields.user_name.filter(|_| !hits.is_empty()).map(|user| {
                    let at = acc.hits.text.len();
                    acc.hits.text.push_str(user);
                    at..acc.hits.text.len()
                });
                acc.lines.push(Line::Parsed {
                    n,
                    timestamp: fields.timestamp,
                    source_ip: fields.source_ip,
                    user_name,
                    hits,
                });
            }
            Err(error) => acc.lines.push(Line::Unparsed { n, error: Box::new(error) }),
        },
        |acc| {
            for line in &acc.lines {
                match line {
                    Line::Parsed { n, timestamp, source_ip, user_name, hits } => {
                        let n = *n;
                        summary.parsed += 1;
                        let text = &acc.hits.text;
                        engine.apply(*timestamp, &acc.hits.hits[hits.clone()], text, |rule, key, evidence| {
                            let event_id = EventId::at(source, n);
                            tracing::debug!(rule = %rule.id, key = %key, event = %event_id, "rule fired");
                            let d = Detection {
                                id: format!("{}:{}", rule.id, event_id),
                                event_id,
                                user_name: user_name.clone().map(|r| text[r].to_owned()),
                                ..detection(rule, *timestamp, *source_ip, key, evidence)
                            };
                            summary.detections += 1;
                            on_detection(&d, n);
                        });
                    }
                    Line::Unparsed { n, error } => {
                        summary.unparsed += 1;
                        tracing::debug!(source, line = n, error = %error, "line not parsed");
                    }
                }
            }
            acc.recycle();
            std::ops::ControlFlow::Continue(())
        },
    )?;
    Ok(summary)
}

/// The JSON object `vigie analyze` prints for a detection: `rule`, `title`, `severity`,
/// `@timestamp`, `source.ip` and/or `user.name` (whichever the event carried; nested as in
/// ECS, like `vigie parse` writes events), `key`, `evidence` and `line`.
pub fn detection_json(d: &Detection, line: u64) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("@timestamp".into(), d.timestamp.to_string().into());
    obj.insert("rule".into(), d.rule.clone().into());
    obj.insert("title".into(), d.title.clone().into());
    obj.insert("severity".into(), serde_json::to_value(d.severity).unwrap_or_default());
    if let Some(ip) = d.source_ip {
        obj.insert("source".into(), serde_json::json!({ "ip": ip.to_string() }));
    }
    if let Some(user) = &d.user_name {
        obj.insert("user".into(), serde_json::json!({ "name": user }));
    }
    obj.insert("key".into(), d.key.clone().into());
    obj.insert("evidence".into(), d.evidence.clone().into());
    obj.insert("line".into(), line.into());
    serde_json::Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use collector::parse::Format;

    use super::*;
    use crate::rules::RuleSet;

    const RULES: &str = r#"
version: 1
rules:
  - id: t.env
    kind: signature
    title: Sonde .env
    description: Une sonde.
    severity: warning
    cctp_class: securite_mineure
    when:
      - field: url.path
        contains: [/.env]
    offender: [source.ip]
    suppress: 0s
  - id: t.fail
    kind: threshold
    title: Échecs
    description: Des échecs.
    severity: critical
    cctp_class: securite_mineure
    when:
      - field: http.response.status_code
        equals: [401]
    offender: [user.name]
    suppress: 10m
    threshold: { count: 2, window: 1m }
    evidence: "{count} échecs en {window}"
"#;

    fn ctx() -> ParseContext {
        ParseContext { now: "2025-04-07T12:30:00Z".parse().unwrap(), time_zone: jiff::tz::TimeZone::UTC }
    }

    fn replay(text: &[u8]) -> (ReplaySummary, Vec<serde_json::Value>) {
        let parser = Parser::new(&Format::ApacheCombined).unwrap();
        let mut engine = Engine::new(Arc::new(RuleSet::from_yaml("t.yml", RULES).unwrap()));
        let mut out = Vec::new();
        let summary = analyze_reader("access.log", text, &parser, &ctx(), &mut engine, |d, n| {
            assert!(d.id.ends_with(&format!("access.log:{n}")), "{} at line {n}", d.id);
            out.push(detection_json(d, n));
        })
        .unwrap();
        (summary, out)
    }

    const LOG: &[u8] = b"192.0.2.1 - - [07/Apr/2025:14:30:00 +0200] \"GET /.env HTTP/1.1\" 404 12 \"-\" \"curl/8\"\r\n\
this is not a log line\n\
\n\
192.0.2.2 - alice [07/Apr/2025:14:30:01 +0200] \"GET /login HTTP/1.1\" 401 12 \"-\" \"Mozilla/5.0 \xe9\"\n\
192.0.2.3 - alice [07/Apr/2025:14:30:02 +0200] \"GET /login HTTP/1.1\" 401 12 \"-\" \"Mozilla/5.0\"";

    #[test]
    fn every_line_is_counted_and_detections_carry_their_line() {
        let (summary, out) = replay(LOG);
        assert_eq!(summary, ReplaySummary { lines: 5, parsed: 3, unparsed: 2, detections: 2 });
        assert_eq!(
            out[0],
            serde_json::json!({
                "@timestamp": "2025-04-07T12:30:00Z",
                "rule": "t.env",
                "title": "Sonde .env",
                "severity": "warning",
                "source": { "ip": "192.0.2.1" },
                "key": "source.ip=192.0.2.1",
                "evidence": "url.path : « /.env »",
                "line": 1,
            })
        );
        // The threshold fires on the second failure (line 5, no trailing newline); the
        // line with a stray Latin-1 byte (line 4) was read, not fatal.
        assert_eq!(out[1]["line"], 5);
        assert_eq!(out[1]["user"], serde_json::json!({ "name": "alice" }));
        assert_eq!(out[1]["source"], serde_json::json!({ "ip": "192.0.2.3" }));
        assert_eq!(out[1]["evidence"], "2 échecs en 1 min");
        assert_eq!(out[1]["severity"], "critical");
    }

    #[test]
    fn a_replay_is_deterministic() {
        assert_eq!(replay(LOG), replay(LOG));
    }

    #[test]
    fn parse_lines_numbers_lines_and_names_events() {
        let parser = Parser::new(&Format::ApacheCombined).unwrap();
        let mut seen = Vec::new();
        let n = parse_lines("f", LOG, &parser, &ctx(), |n, line, parsed| {
            seen.push((n, line.len(), parsed.map(|e| e.id.0).ok()));
        })
        .unwrap();
        assert_eq!(n, 5);
        assert_eq!(seen[0].2.as_deref(), Some("f:1"));
        assert_eq!(seen[1], (2, "this is not a log line".len(), None));
        assert_eq!(seen[2], (3, 0, None));
        assert_eq!(seen[3].2.as_deref(), Some("f:4"));
    }

    #[test]
    fn summaries_add_up() {
        let mut total = ReplaySummary { lines: 1, parsed: 1, unparsed: 0, detections: 1 };
        total += ReplaySummary { lines: 2, parsed: 1, unparsed: 1, detections: 0 };
        assert_eq!(total, ReplaySummary { lines: 3, parsed: 2, unparsed: 1, detections: 1 });
    }
}
