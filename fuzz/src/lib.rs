//! What every fuzz target checks: a parser never panics on any input, a line it accepts
//! turns into ECS JSON (the same bytes with or without an owned event), and a parse error
//! points inside the line.

use collector::parse::{Format, ParseContext, Parser};

fn context() -> ParseContext {
    ParseContext { now: jiff::Timestamp::from_second(1_744_000_000).unwrap(), time_zone: jiff::tz::TimeZone::UTC }
}

/// Parses `data` (as one line, lossily decoded) with the parser `format`.
pub fn check(format: &str, data: &[u8]) {
    let parser = Parser::new(&Format::from_config(format, None).expect("a known format")).expect("compiles");
    check_with(&parser, data);
}

/// The first line of `data` is an Apache `LogFormat`, the rest a log line in it: fuzzes the
/// format compiler and the parser it builds.
pub fn check_logformat(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Some((format, line)) = text.split_once('\n') else { return };
    if let Ok(parser) = Parser::new(&Format::ApacheCustom(format.to_owned())) {
        check_with(&parser, line.as_bytes());
    }
}

fn check_with(parser: &Parser, data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    let ctx = context();
    // What `vigie parse` writes, without an owned event: the owned event's JSON, or its error.
    let mut fast = Vec::new();
    let mut id = collector::JsonId::new("fuzz");
    id.set_line(1);
    let written = parser.parse_to_ecs_json(&line, &ctx, &id, &mut fast);
    match parser.parse(&line, &ctx) {
        Ok(mut event) => {
            let json = event.to_ecs_json();
            assert!(json.is_object());
            event.id = collector::EventId::at("fuzz", 1);
            let mut owned = Vec::new();
            event.write_ecs_json(&mut owned);
            assert_eq!(written, Ok(()));
            assert_eq!(fast, owned);
        }
        Err(e) => {
            assert!(e.column() <= line.len() + 1, "error column {} outside a {}-byte line", e.column(), line.len());
            assert!(fast.is_empty());
            assert_eq!(written, Err(e));
        }
    }
}
