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
//! With `ErrorLog syslog` the date is left to the syslog envelope (or journal) around the line:
//! `Feb 15 16:23:00 srv httpd[22034]: [authz_core:error] [pid 22034] [client 192.0.2.1:58585] ...`.

use nom::Parser as _;
use nom::bytes::complete::take_while_m_n;
use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, opt, rest};
use nom::error::context;

use crate::parse::common::{self, Hms, ParseError, Res, fail, ip, split_host_port};
use crate::parse::{ParseContext, syslog};
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

/// One ` [...]` group after the date (no leading space for the first group of a wrapped
/// line, which follows the envelope); an error when the bracket is part of the message. Brackets nest, for
/// `[client [2001:db8::1]:51548]`.
fn group(input: &str, first: bool) -> Res<'_, &str> {
    let opened = if first { input.strip_prefix('[') } else { input.strip_prefix(" [") };
    let Some(body) = opened else {
        return fail(input, "a [...] group");
    };
    let mut depth = 0usize;
    for (at, c) in body.char_indices() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => return Ok((body.get(at + 1..).unwrap_or(""), body.get(..at).unwrap_or(""))),
            ']' => depth -= 1,
            _ => {}
        }
    }
    fail(input, "the ] closing a group")
}

/// The groups after the date (`[module:level] [pid ..] [client ..]`) and the message.
///
/// Only these leading groups, which the server writes, are read: the message that follows
/// may quote attacker-controlled text such as a URL holding `[client 192.0.2.66]` (the
/// fail2ban DoS case), which must never choose the client address.
fn groups_and_message<'a>(mut input: &'a str, wrapped: bool, ev: &mut Event) -> Res<'a, ()> {
    let mut saw_level = false;
    let (mut client, mut remote) = (None, None);
    let mut first = wrapped;
    while let Ok((rest, inner)) = group(input, first) {
        if let Some(text) = inner.strip_prefix("client ") {
            client = client.or(Some(client_address(text.trim())));
        } else if let Some(text) = inner.strip_prefix("remote ") {
            // The TCP peer: a proxy when mod_remoteip names the client too, the client
            // itself when it is the only address given (fail2ban gh-3622).
            remote = remote.or(Some(client_address(text.trim())));
        } else if inner.starts_with("pid ") {
            // Process and thread ids: not kept.
        } else if !saw_level && is_level(inner) {
            // 2.4 writes `module:level`, 2.2 only `level`.
            let level = inner.rsplit_once(':').map_or(inner, |(_, l)| l);
            ev.log_level = Some(level.to_owned());
            saw_level = true;
        } else {
            break;
        }
        input = rest;
        first = false;
    }
    if !saw_level {
        return fail(input, "a [level] or [module:level] group");
    }
    if let Some((addr, port)) = client.or(remote) {
        ev.source_ip = addr;
        ev.source_port = port;
    }
    let (input, _) = opt(char(' ')).parse(input)?;
    let (input, message) = rest(input)?;
    ev.message = Some(message.to_owned());
    Ok((input, ()))
}

pub(crate) fn parse(line: &str, ctx: &ParseContext) -> Result<Event, ParseError> {
    let text = line.trim_end_matches(['\r', '\n']);
    let mut ev = Event {
        dataset: DATASET.to_owned(),
        category: Category::Diagnostic,
        original: line.to_owned(),
        ..Event::default()
    };
    if !text.starts_with('[')
        && let Some((body, env)) = syslog::program_envelope(text, ctx)
        && body.starts_with('[')
    {
        return parse_wrapped(text, body, &env, ctx, ev);
    }
    fn header<'a>(input: &'a str, ctx: &ParseContext, ev: &mut Event) -> Res<'a, ()> {
        let start = input;
        let (input, ((month, day), time, nanos, year)) =
            context("an Apache error log date such as [Wed Oct 11 14:32:52 2000]", date).parse(input)?;
        let dt = common::civil(start, (year, month, day), time, nanos)?;
        let (timestamp, offset) = common::in_zone(start, dt, &ctx.time_zone)?;
        ev.timestamp = timestamp;
        ev.utc_offset_seconds = Some(offset);
        groups_and_message(input, false, ev)
    }
    all_consuming(|i| header(i, ctx, &mut ev)).parse(text).map_err(|e| ParseError::from_nom(DATASET, text, e))?;
    Ok(ev)
}

/// An error line without its date, in a syslog or journal envelope (`ErrorLog syslog`):
/// `Feb 15 16:23:00 srv httpd[22034]: [authz_core:error] [pid 22034] [client 192.0.2.1:58585] ...`.
/// The time is the envelope's, or the context's `now` when the envelope has none.
fn parse_wrapped(
    text: &str,
    body: &str,
    env: &syslog::Envelope<'_>,
    ctx: &ParseContext,
    mut ev: Event,
) -> Result<Event, ParseError> {
    all_consuming(|i| groups_and_message(i, true, &mut ev))
        .parse(body)
        .map_err(|e| ParseError::from_nom(DATASET, text, e))?;
    let (timestamp, offset) =
        env.time.unwrap_or_else(|| (ctx.now, ctx.now.to_zoned_datetime(ctx.time_zone.clone()).offset().seconds()));
    ev.timestamp = timestamp;
    ev.utc_offset_seconds = Some(offset);
    ev.observer_hostname = env.hostname.map(str::to_owned);
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

    // The next tests use lines of fail2ban's `apache-auth` test log (shared/data/peer/fail2ban).

    #[test]
    fn bracketed_ipv6_client_with_port() {
        // apache-auth:62.
        let line = "[Sat Jul 20 22:11:44.147674 2013] [authz_owner:error] [pid 17540:tid 140122922129152] [client [2001:db8::80da:af6b:8b2c]:51548] AH01637: Authorization of user test-ipv6 to access /basic/authz_owner/cant_get_me.html failed, reason: file owner dan does not match";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.source_ip, Some("2001:db8::80da:af6b:8b2c".parse().unwrap()));
        assert_eq!(ev.source_port, Some(51548));
        assert!(ev.message.unwrap().starts_with("AH01637: Authorization of user test-ipv6"));
        let ev = parse("[Mon Apr 07 09:05:01 2025] [error] [client [::1]] x", &ctx()).unwrap();
        assert_eq!((ev.source_ip, ev.source_port), (Some("::1".parse().unwrap()), None));
    }

    #[test]
    fn remote_group_is_the_client_when_no_client_group_is_given() {
        // apache-auth:141 (fail2ban gh-3622).
        let line = "[Mon Nov 06 13:39:56.637868 2023] [auth_basic:error] [pid 3175001:tid 140494544914112] [remote 192.0.2.111:35924] AH01618: user whatever not found: /admin";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!((ev.source_ip, ev.source_port), (Some("192.0.2.111".parse().unwrap()), Some(35924)));
        assert_eq!(ev.message.as_deref(), Some("AH01618: user whatever not found: /admin"));
        // Behind mod_remoteip both are written: `remote` is the proxy, `client` the user.
        let ev = parse(
            "[Mon Apr 07 09:05:01 2025] [core:error] [pid 1] [remote 10.0.0.2:80] [client 192.0.2.9:4000] AH1: x",
            &ctx(),
        )
        .unwrap();
        assert_eq!((ev.source_ip, ev.source_port), (Some("192.0.2.9".parse().unwrap()), Some(4000)));
    }

    #[test]
    fn text_in_the_message_never_names_the_client() {
        // apache-auth:3, the DoS vector: the URL carries its own `[client ..]`.
        let line = "[Sat Jun 01 02:17:42 2013] [error] [client 192.168.33.1] File does not exist: /srv/http/site/[client 192.168.0.1] user root not found";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.source_ip, Some("192.168.33.1".parse().unwrap()));
        // Nor a `[remote ..]` or a second `[client ..]` after the message starts.
        let ev = parse(
            "[Mon Apr 07 09:05:01 2025] [error] File does not exist: /[remote 192.0.2.66:1] [client 192.0.2.66]",
            &ctx(),
        )
        .unwrap();
        assert_eq!(ev.source_ip, None);
        let ev = parse("[Mon Apr 07 09:05:01 2025] [error] [client 192.0.2.1] [client 192.0.2.66] x", &ctx()).unwrap();
        assert_eq!(ev.source_ip, Some("192.0.2.1".parse().unwrap()));
        // An unclosed bracket ends the groups instead of swallowing the line.
        let ev = parse("[Mon Apr 07 09:05:01 2025] [error] [client 192.0.2.1] [x [y] z", &ctx()).unwrap();
        assert_eq!(ev.message.as_deref(), Some("[x [y] z"));
    }

    #[test]
    fn error_lines_in_a_syslog_envelope() {
        // apache-auth:151, 153, 155 and 158 (`ErrorLog syslog`): the date is the envelope's.
        let cases = [
            (
                "Feb 15 16:23:00 srv httpd[22034]: [authz_core:error] [pid 22034] [client 192.0.2.1:58585] AH01630: client denied by server configuration: /home/www/",
                "192.0.2.1",
                Some(58585),
                "2025-02-15T15:23:00Z",
            ),
            (
                "Feb 15 16:23:40 srv httpd/backend1[22034]: [authz_core:error] [pid 22036] [client 192.0.2.2:59392] AH01630: client denied by server configuration: /home/backend1/",
                "192.0.2.2",
                Some(59392),
                "2025-02-15T15:23:40Z",
            ),
            (
                "Feb 15 16:54:53 tools apache2[18154]: [:error] [pid 18154:tid 140680873617152] [client 192.0.2.3:48154] AH01630: client denied by server configuration: /var/www",
                "192.0.2.3",
                Some(48154),
                "2025-02-15T15:54:53Z",
            ),
            (
                "Feb 16 22:32:48 srv httpd[22034]: [error] [client 127.0.0.1] user wrongusername not found: /basic/file",
                "127.0.0.1",
                None,
                "2025-02-16T21:32:48Z",
            ),
        ];
        for (line, ip, port, time) in cases {
            let ev = parse(line, &ctx()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!((ev.source_ip, ev.source_port), (Some(ip.parse().unwrap()), port), "{line}");
            assert_eq!(ev.timestamp.to_string(), time, "{line}");
            assert_eq!(ev.utc_offset_seconds, Some(3600), "{line}");
            assert_eq!(ev.log_level.as_deref(), Some("error"), "{line}");
            assert_eq!(ev.dataset, "apache.error");
            assert_eq!(ev.original, line);
        }
        let ev = parse(cases[0].0, &ctx()).unwrap();
        assert_eq!(ev.observer_hostname.as_deref(), Some("srv"));
        assert_eq!(ev.message.as_deref(), Some("AH01630: client denied by server configuration: /home/www/"));
        // A journal message without time takes the context's `now`.
        let ev = parse("srv httpd[1]: [error] [client 192.0.2.4] x", &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2025-04-07T12:30:00Z");
        assert_eq!(ev.utc_offset_seconds, Some(7200));
        // A wrapped line without a level is an error at the right column of the whole line.
        let err = parse("Feb 15 16:23:00 srv httpd[22034]: [client 192.0.2.1] x", &ctx()).unwrap_err();
        assert!(err.expected().contains("level"), "{err}");
        // Column 53: after the groups, where the unwrapped parser also reports it.
        assert_eq!(err.column(), 53);
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
