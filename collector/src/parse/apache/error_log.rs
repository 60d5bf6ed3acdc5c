//! The Apache error log, in the default 2.2 and 2.4 layouts:
//!
//! ```text
//! [Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration: /x
//! [Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:8080] AH00128: File does not exist: /x
//! ```
//!
//! Specification: `ErrorLogFormat` in the core documentation
//! <https://httpd.apache.org/docs/2.4/mod/core.html#errorlogformat> (the default format is
//! described there) and the 2.2 "Error Log" page <https://httpd.apache.org/docs/2.2/logs.html#errorlog>.
//! The time is the server's local time with no zone, so it is read in the context's zone.

use nom::Parser as _;
use nom::bytes::complete::{take_till, take_while_m_n};
use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, opt, rest};
use nom::error::context;

use crate::parse::ParseContext;
use crate::parse::common::{self, Hms, ParseError, Res, fail, ip, split_host_port};
use crate::{Category, Event};

const DATASET: &str = "apache.error";

/// The bracketed date `[Wed Oct 11 14:32:52.123456 2000]`.
/// (month, day), time of day, nanoseconds, year.
type ErrorDate = ((i8, i8), Hms, i32, i16);

fn date(input: &str) -> Res<'_, ErrorDate> {
    let (rest, (_, _, _, mon, _, _, day, _, time, frac, _, year, _)) = (
        char('['),
        context("a weekday (Mon..Sun)", take_while_m_n(3, 3, |c: char| c.is_ascii_alphabetic())),
        char(' '),
        common::month,
        char(' '),
        opt(char(' ')),
        context("a day of month", take_while_m_n(1, 2, |c: char| c.is_ascii_digit())),
        char(' '),
        common::hms,
        opt((char('.'), digit1)),
        char(' '),
        common::digits_n(4, "a year (yyyy)"),
        char(']'),
    )
        .parse(input)?;
    let nanos = frac.map_or(0, |(_, f): (char, &str)| {
        f.bytes().take(9).enumerate().map(|(i, b)| i32::from(b - b'0') * 10i32.pow(8 - i as u32)).sum()
    });
    let day: i8 = day.parse().unwrap_or(0);
    Ok((rest, ((mon, day), time, nanos, year as i16)))
}

/// One ` [...]` group after the date; `None` when the bracket is part of the message.
fn group(input: &str) -> Res<'_, &str> {
    let (rest, (_, _, inner, _)) = (char(' '), char('['), take_till(|c| c == ']'), char(']')).parse(input)?;
    Ok((rest, inner))
}

pub(crate) fn parse(line: &str, ctx: &ParseContext) -> Result<Event, ParseError> {
    let text = line.trim_end_matches(['\r', '\n']);
    let mut ev = Event {
        dataset: DATASET.to_owned(),
        category: Category::Diagnostic,
        original: line.to_owned(),
        ..Event::default()
    };
    fn header<'a>(input: &'a str, ctx: &ParseContext, ev: &mut Event) -> Res<'a, ()> {
        let start = input;
        let (mut input, ((month, day), time, nanos, year)) =
            context("an Apache error log date such as [Wed Oct 11 14:32:52 2000]", date).parse(input)?;
        let dt = common::civil(start, (year, month, day), time, nanos)?;
        let (timestamp, offset) = common::in_zone(start, dt, &ctx.time_zone)?;
        ev.timestamp = timestamp;
        ev.utc_offset_seconds = Some(offset);
        let mut saw_level = false;
        while let Ok((rest, inner)) = group(input) {
            if let Some(client) = inner.strip_prefix("client ") {
                let (addr, port) = client_address(client.trim());
                ev.source_ip = addr;
                ev.source_port = port;
            } else if inner.starts_with("pid ") || inner.starts_with("remote ") {
                // Process and thread ids, and the TCP peer behind a proxy: not kept.
            } else if !saw_level && is_level(inner) {
                // 2.4 writes `module:level`, 2.2 only `level`.
                let level = inner.rsplit_once(':').map_or(inner, |(_, l)| l);
                ev.log_level = Some(level.to_owned());
                saw_level = true;
            } else {
                break;
            }
            input = rest;
        }
        if !saw_level {
            return fail(input, "a [level] or [module:level] group");
        }
        let (input, _) = opt(char(' ')).parse(input)?;
        let (input, message) = rest(input)?;
        ev.message = Some(message.to_owned());
        Ok((input, ()))
    }
    all_consuming(|i| header(i, ctx, &mut ev)).parse(text).map_err(|e| ParseError::from_nom(DATASET, text, e))?;
    Ok(ev)
}

/// Apache writes `ip:port` with IPv6 unbracketed (`[client 2001:db8::1:4433]`): the port is
/// the part after the last colon when what precedes it is still an address.
fn client_address(text: &str) -> (Option<std::net::IpAddr>, Option<u16>) {
    let (host, port) = split_host_port(text);
    if let (Some(addr), true) = (ip(host), port.is_some()) {
        return (Some(addr), port);
    }
    if let Some((host, port)) = text.rsplit_once(':')
        && let (Some(addr), Ok(port)) = (ip(host), port.parse::<u16>())
    {
        return (Some(addr), Some(port));
    }
    (ip(text), None)
}

fn is_level(inner: &str) -> bool {
    const LEVELS: [&str; 16] = [
        "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug", "trace1", "trace2", "trace3", "trace4",
        "trace5", "trace6", "trace7", "trace8",
    ];
    let level = inner.rsplit_once(':').map_or(inner, |(_, l)| l);
    LEVELS.contains(&level) && inner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        crate::parse::test_context("Europe/Paris")
    }

    #[test]
    fn apache_24_with_module_pid_tid_client_port_and_ah_code() {
        let line = "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:8080] AH00128: File does not exist: /usr/local/apache2/htdocs/favicon.ico";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2011-09-09T08:42:29.902022Z");
        assert_eq!(ev.utc_offset_seconds, Some(7200));
        assert_eq!(ev.log_level.as_deref(), Some("error"));
        assert_eq!(ev.source_ip, Some("72.15.99.187".parse().unwrap()));
        assert_eq!(ev.source_port, Some(8080));
        assert_eq!(ev.message.as_deref(), Some("AH00128: File does not exist: /usr/local/apache2/htdocs/favicon.ico"));
        assert_eq!(ev.dataset, "apache.error");
        assert_eq!(ev.category, Category::Diagnostic);
    }

    #[test]
    fn apache_22_style_and_ipv6_client() {
        let ev = parse("[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration: /export/home/live/ap/htdocs/test", &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2000-10-11T12:32:52Z");
        assert_eq!(ev.log_level.as_deref(), Some("error"));
        assert_eq!(ev.source_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ev.source_port, None);
        let ev = parse("[Mon Apr 07 09:05:01.000001 2025] [php:warn] [pid 12] [client 2001:db8::1:4433] PHP Warning:  Undefined variable $x in /srv/ent/index.php on line 3", &ctx()).unwrap();
        assert_eq!(ev.source_ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(ev.source_port, Some(4433));
        assert_eq!(ev.log_level.as_deref(), Some("warn"));
        let ev = parse("[Mon Apr 07 09:05:01 2025] [error] [client ::1] x", &ctx()).unwrap();
        assert_eq!((ev.source_ip, ev.source_port), (Some("::1".parse().unwrap()), None));
        let ev = parse(
            "[Mon Apr  7 09:05:01 2025] [notice] Apache/2.4.62 (Debian) configured -- resuming normal operations",
            &ctx(),
        )
        .unwrap();
        assert_eq!(ev.message.as_deref(), Some("Apache/2.4.62 (Debian) configured -- resuming normal operations"));
        assert_eq!(ev.source_ip, None);
    }

    #[test]
    fn rejects_access_lines_with_a_reason() {
        let err = parse(r#"127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#, &ctx()).unwrap_err();
        assert_eq!(err.column(), 1);
        assert!(err.to_string().contains("[Wed Oct 11 14:32:52 2000]"), "{err}");
        let err = parse("[Wed Oct 11 14:32:52 2000] no level here", &ctx()).unwrap_err();
        assert!(err.expected().contains("level"), "{err}");
    }
}
