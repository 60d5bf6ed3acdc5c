//! Nginx: access logs in any `log_format` (compiled to the same template engine as Apache's)
//! and the error log.
//!
//! Specifications: `log_format` and its variables in ngx_http_log_module
//! <https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format> and the variable
//! index <https://nginx.org/en/docs/varindex.html>; the error log layout is
//! `ngx_log_error_core` in `src/core/ngx_log.c`
//! (`yyyy/mm/dd hh:mm:ss [level] pid#tid: *connection message, client: …, server: …`).

use nom::Parser as _;
use nom::bytes::complete::{take_till, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, opt, rest};
use nom::error::context;

use super::FormatError;
use super::common::{self, PErr, ParseError, address_and_port, unescape};
use super::template::{Field, Item, Template};
use super::{ParseContext, syslog};
use crate::{Category, Event};

/// The predefined `combined` format.
pub(crate) const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

fn field_for(var: &str) -> Field {
    match var {
        "remote_addr" | "realip_remote_addr" => Field::ClientHost,
        "remote_port" | "realip_remote_port" => Field::ClientPort,
        "server_port" => Field::ServerPort,
        "server_addr" => Field::ServerIp,
        "host" | "server_name" | "http_host" => Field::ServerName,
        "remote_user" => Field::User,
        "time_local" => Field::TimeClf,
        "time_iso8601" => Field::TimeIso8601,
        "msec" => Field::TimeEpochSeconds,
        "request" => Field::Request,
        "request_method" => Field::Method,
        "uri" | "document_uri" => Field::Path,
        "request_uri" => Field::PathWithQuery,
        "args" | "query_string" => Field::Query,
        "server_protocol" => Field::Protocol,
        "status" => Field::Status,
        "body_bytes_sent" => Field::BytesBody,
        "bytes_sent" => Field::BytesSent,
        "request_length" => Field::BytesReceived,
        "request_time" => Field::DurationSecondsFrac,
        "http_referer" => Field::Referrer,
        "http_user_agent" => Field::UserAgent,
        _ => Field::Ignore,
    }
}

/// Joins the quoted pieces of a format copied from nginx.conf
/// (`'$remote_addr - …'  '"$request" …'`) into one string; a bare string is used as is.
fn unquote_config(format: &str) -> Result<String, FormatError> {
    let trimmed = format.trim();
    if !trimmed.starts_with(['\'', '"']) {
        return Ok(format.to_owned());
    }
    let mut out = String::new();
    let mut rest = trimmed;
    while let Some(q) = rest.chars().next() {
        if q.is_whitespace() {
            rest = &rest[q.len_utf8()..];
            continue;
        }
        if q != '\'' && q != '"' {
            let position = format.len() - format.trim_start().len() + trimmed.len() - rest.len() + 1;
            return Err(FormatError::Directive {
                directive: rest.chars().take(12).collect(),
                position,
                reason: "text outside the quoted pieces of the log_format".to_owned(),
            });
        }
        let body = &rest[1..];
        let Some(end) = body.find(q) else {
            return Err(FormatError::Directive {
                directive: rest.chars().take(12).collect(),
                position: trimmed.len() - rest.len() + 1,
                reason: "unterminated quoted piece".to_owned(),
            });
        };
        out.push_str(&body[..end]);
        rest = &body[end + 1..];
    }
    Ok(out)
}

/// Compiles a `log_format` string.
pub(crate) fn compile(format: &str) -> Result<Template, FormatError> {
    let format = unquote_config(format)?;
    let mut items = Vec::new();
    let mut input = format.as_str();
    while !input.is_empty() {
        let position = format.len() - input.len() + 1;
        if let Some(after) = input.strip_prefix('$') {
            let (rest, name) = if let Some(braced) = after.strip_prefix('{') {
                match braced.split_once('}') {
                    Some((name, rest)) => (rest, name),
                    None => {
                        return Err(FormatError::Directive {
                            directive: input.chars().take(12).collect(),
                            position,
                            reason: "missing } after ${".to_owned(),
                        });
                    }
                }
            } else {
                let n = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
                (&after[n..], &after[..n])
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(FormatError::Directive {
                    directive: input.chars().take(12).collect(),
                    position,
                    reason: "a variable is $ followed by letters, digits and _".to_owned(),
                });
            }
            items.push(Item::Field(field_for(name), format!("${name}")));
            input = rest;
        } else {
            let n = input.find('$').unwrap_or(input.len());
            items.push(Item::Literal(input[..n].to_owned()));
            input = &input[n..];
        }
    }
    Ok(Template::new(items, "nginx.access"))
}

const ERROR_DATASET: &str = "nginx.error";

/// Whether `text` starts like an error log line, with `yyyy/mm/dd `.
pub(crate) fn starts_with_error_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.get(4) == Some(&b'/')
        && b.get(7) == Some(&b'/')
        && b.get(10) == Some(&b' ')
        && b.get(..4).is_some_and(|y| y.iter().all(u8::is_ascii_digit))
}

/// Parses an error log line, as written to a file or wrapped by syslog or the systemd
/// journal (`host nginx[983478]: 2023/12/09 21:35:20 [error] ...`): the line keeps its own
/// date, the envelope gives the host when the message names no server.
pub(crate) fn parse_error_log(line: &str, ctx: &ParseContext) -> Result<Event, ParseError> {
    let text = line.trim_end_matches(['\r', '\n']);
    let wrapped = if starts_with_error_date(text) {
        None
    } else {
        syslog::program_envelope(text, ctx).filter(|(body, _)| starts_with_error_date(body))
    };
    let (body, host) = wrapped.map_or((text, None), |(body, env)| (body, env.hostname));
    let mut ev = Event {
        dataset: ERROR_DATASET.to_owned(),
        category: Category::Diagnostic,
        original: line.to_owned(),
        ..Event::default()
    };
    fn header<'a>(input: &'a str, ctx: &ParseContext, ev: &mut Event) -> Result<(), nom::Err<PErr<'a>>> {
        let start = input;
        let (input, (date, time)) =
            context("an nginx error log date such as 2016/10/25 14:49:34", common::ymd_hms('/')).parse(input)?;
        let dt = common::civil(start, date, time, 0)?;
        let (timestamp, offset) = common::in_zone(start, dt, &ctx.time_zone)?;
        let (input, (_, _, level, _, _, _, _, _, _, _, _)) = (
            char(' '),
            char('['),
            context("a level such as [error]", take_while1(|c: char| c.is_ascii_lowercase())),
            char(']'),
            char(' '),
            context("a process id", digit1),
            char('#'),
            context("a thread id", digit1),
            char(':'),
            opt(char(' ')),
            opt((char('*'), digit1, char(' '))),
        )
            .parse(input)?;
        let (_, message) = all_consuming(rest).parse(input)?;
        ev.timestamp = timestamp;
        ev.utc_offset_seconds = Some(offset);
        ev.log_level = Some(level.to_owned());
        ev.message = Some(message.to_owned());
        Ok(())
    }
    header(body, ctx, &mut ev).map_err(|e| ParseError::from_nom(ERROR_DATASET, text, e))?;
    let message = ev.message.clone().unwrap_or_default();
    // Context nginx appends after the message: `, client: 1.2.3.4, server: x, request: "GET / HTTP/1.1"`.
    if let Some(client) = context_value(&message, ", client: ") {
        (ev.source_ip, ev.source_port) = address_and_port(client);
    }
    ev.observer_hostname =
        context_value(&message, ", server: ").filter(|server| !server.is_empty()).or(host).map(str::to_owned);
    if let Some(request) = quoted_context(&message, ", request: \"") {
        let request = unescape(request);
        let mut parts = request.splitn(3, ' ');
        if let (Some(method), Some(target)) = (parts.next(), parts.next()) {
            ev.http_method = Some(method.to_owned());
            let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
            ev.url_path = Some(path.to_owned());
            ev.url_query = query.map(str::to_owned);
            ev.http_version = parts.next().and_then(|p| p.strip_prefix("HTTP/")).map(str::to_owned);
        }
    }
    Ok(ev)
}

fn context_value<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    let start = message.rfind(key)? + key.len();
    let (value, _) = take_till::<_, _, PErr<'_>>(|c| c == ',')(&message[start..]).ok().map(|(r, v)| (v, r))?;
    Some(value.trim())
}

fn quoted_context<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    let start = message.rfind(key)? + key.len();
    let body = &message[start..];
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(&body[..i]),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        crate::parse::test_context("Europe/Paris")
    }

    #[test]
    fn combined_line() {
        let t = compile(COMBINED).unwrap();
        let ev = t
            .parse(r#"67.43.156.13 - - [25/Oct/2016:14:49:34 +0200] "GET /favicon.ico HTTP/1.1" 404 571 "http://localhost:8080/" "Mozilla/5.0""#, &ctx())
            .unwrap();
        assert_eq!(ev.dataset, "nginx.access");
        assert_eq!(ev.timestamp.to_string(), "2016-10-25T12:49:34Z");
        assert_eq!(ev.http_status, Some(404));
        assert_eq!(ev.destination_bytes, Some(571));
        assert_eq!(ev.http_referrer.as_deref(), Some("http://localhost:8080/"));
    }

    #[test]
    fn custom_format_pasted_from_nginx_conf() {
        let conf = r#"'$remote_addr:$remote_port - $remote_user [$time_local] '
                      '"$request" $status $bytes_sent $request_time "${http_user_agent}" $upstream_addr'"#;
        let t = compile(conf).unwrap();
        let ev = t
            .parse(r#"2001:db8::7:443 - alice [07/Apr/2025:14:30:00 +0200] "POST /login?next=%2F HTTP/2.0" 302 512 0.012 "curl/8.5 \x22quoted\x22" 10.0.0.5:9000"#, &ctx())
            .unwrap();
        // `$remote_addr:$remote_port` with an IPv6 address: the matcher finds the last colon
        // that leaves a port.
        assert_eq!(ev.source_ip, Some("2001:db8::7".parse().unwrap()));
        assert_eq!(ev.source_port, Some(443));
        assert_eq!(ev.user_name.as_deref(), Some("alice"));
        assert_eq!(ev.http_method.as_deref(), Some("POST"));
        assert_eq!(ev.url_path.as_deref(), Some("/login"));
        assert_eq!(ev.url_query.as_deref(), Some("next=%2F"));
        assert_eq!(ev.http_version.as_deref(), Some("2.0"));
        assert_eq!(ev.duration_ns, Some(12_000_000));
        assert_eq!(ev.destination_bytes, Some(512));
        assert_eq!(ev.user_agent.as_deref(), Some(r#"curl/8.5 "quoted""#));
    }

    #[test]
    fn iso_time_and_request_uri() {
        let t = compile("$time_iso8601 $remote_addr $request_method $request_uri $status").unwrap();
        let ev = t.parse("2025-04-07T14:30:00+02:00 192.0.2.1 GET /a?b=1 200", &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2025-04-07T12:30:00Z");
        assert_eq!(ev.utc_offset_seconds, Some(7200));
        assert_eq!((ev.url_path.as_deref(), ev.url_query.as_deref()), (Some("/a"), Some("b=1")));
    }

    #[test]
    fn bad_formats() {
        let err = compile("$remote_addr $").unwrap_err();
        assert!(matches!(err, FormatError::Directive { position: 14, .. }), "{err:?}");
        let err = compile("${status").unwrap_err();
        assert!(err.to_string().contains("missing }"), "{err}");
        let err = compile("'$status").unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
    }

    #[test]
    fn error_lines_from_the_systemd_journal() {
        // nginx-http-auth:22 and :25, nginx-limit-req:29 in fail2ban's tests
        // (shared/data/peer/fail2ban): journal messages, the second logged by nginx through
        // syslog so that `host nginx:` repeats.
        let cases = [
            (
                r#"host nginx[983478]: 2023/12/09 21:35:20 [error] 983478#983478: *3 user "fakeusername" was not found in "/var/lib/nginx/htpasswd-for-host.example.com", client: 192.0.2.3, server: host.example.com, request: "GET / HTTP/2.0", host: "host.example.com""#,
                "192.0.2.3",
                "error",
                "2023-12-09T20:35:20Z",
            ),
            (
                r#"host nginx[23141]: host nginx: 2025/09/07 21:20:40 [error] 23141#23141: *24470 PAM: user 'username' - not authenticated: Authentication failure, client: 192.0.2.120, server: webdav.sub.domain, request: "GET / HTTP/2.0", host: "webdav.sub.domain""#,
                "192.0.2.120",
                "error",
                "2025-09-07T19:20:40Z",
            ),
            (
                r#"host nginx[983479]: 2023/12/09 21:35:20 [notice] 983479#983479: *22174 limiting requests, excess: 1.495 by zone "one", client: 192.0.2.2, server: example.com, request: "GET /index.htm HTTP/1.1", host: "example.com", referrer: "https://example.com""#,
                "192.0.2.2",
                "notice",
                "2023-12-09T20:35:20Z",
            ),
        ];
        for (line, ip, level, time) in cases {
            let ev = parse_error_log(line, &ctx()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(ev.source_ip, Some(ip.parse().unwrap()), "{line}");
            assert_eq!(ev.log_level.as_deref(), Some(level), "{line}");
            assert_eq!(ev.timestamp.to_string(), time, "{line}");
            assert_eq!(ev.dataset, "nginx.error");
            assert_eq!(ev.original, line);
        }
        let ev = parse_error_log(cases[1].0, &ctx()).unwrap();
        assert!(ev.message.unwrap().starts_with("PAM: user 'username'"));
        // journalctl -o short-iso; with no `server:` the envelope's host is the observer.
        let ev = parse_error_log(
            "2025-04-07T09:00:00+0200 web1 nginx[1]: 2025/04/07 09:00:00 [notice] 1#1: signal process started",
            &ctx(),
        )
        .unwrap();
        assert_eq!(ev.observer_hostname.as_deref(), Some("web1"));
        assert_eq!(ev.message.as_deref(), Some("signal process started"));
        // A wrapped line that is not an nginx error line is reported against nginx's date.
        let err = parse_error_log("host sshd[1]: Failed password for root", &ctx()).unwrap_err();
        assert_eq!(err.column(), 1);
        // Errors inside a wrapped line point into the whole line.
        let err = parse_error_log("host nginx[1]: 2025/04/07 09:00:00 [notice] x#1: y", &ctx()).unwrap_err();
        assert_eq!((err.column(), err.expected()), (45, "a process id"));
    }

    #[test]
    fn error_log_with_client_and_request() {
        let line = r#"2016/10/25 14:49:34 [error] 54053#0: *1 open() "/usr/local/Cellar/nginx/1.10.2_1/html/favicon.ico" failed (2: No such file or directory), client: 127.0.0.1, server: localhost, request: "GET /favicon.ico?x=1 HTTP/1.1", host: "localhost:8080", referrer: "http://localhost:8080/""#;
        let ev = parse_error_log(line, &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2016-10-25T12:49:34Z");
        assert_eq!(ev.log_level.as_deref(), Some("error"));
        assert_eq!(ev.source_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ev.observer_hostname.as_deref(), Some("localhost"));
        assert_eq!(
            (ev.http_method.as_deref(), ev.url_path.as_deref(), ev.url_query.as_deref()),
            (Some("GET"), Some("/favicon.ico"), Some("x=1"))
        );
        assert!(ev.message.unwrap().starts_with("open() "));
        let ev = parse_error_log("2025/04/07 09:00:00 [notice] 1#1: signal process started", &ctx()).unwrap();
        assert_eq!(ev.message.as_deref(), Some("signal process started"));
        assert_eq!(ev.source_ip, None);
        let err = parse_error_log("2025/04/07 09:00:00 [notice] x#1: y", &ctx()).unwrap_err();
        assert_eq!(err.column(), 30);
        assert_eq!(err.expected(), "a process id");
    }
}
