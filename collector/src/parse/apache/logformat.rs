//! Compiles an Apache `LogFormat` string into a [`Template`].
//!
//! Specification: mod_log_config, "Custom Log Formats"
//! <https://httpd.apache.org/docs/2.4/mod/mod_log_config.html#formats>
//! (source: `apache/httpd:docs/manual/mod/mod_log_config.xml`).

use nom::Parser as _;
use nom::branch::alt;
use nom::bytes::complete::{is_a, is_not, tag, take_until};
use nom::character::complete::{anychar, char};
use nom::combinator::{opt, recognize};
use nom::sequence::delimited;

use crate::parse::FormatError;
use crate::parse::common::{PErr, Res};
use crate::parse::template::{Field, Item, Template};

/// `common`, as defined by Apache's default configuration.
pub(crate) const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
/// `combined`, as defined by Apache's default configuration.
pub(crate) const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i""#;
/// Debian's `vhost_combined` (its `apache2.conf`): server name and port first, `%O` bytes.
pub(crate) const VHOST_COMBINED: &str = r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#;
/// `vhost_combined` without the port (`%v %h ...`), as some distributions and hosts write it
/// (fail2ban's `apache-badbots` test log, gh-1594).
pub(crate) const VHOST_COMBINED_NO_PORT: &str = r#"%v %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#;
/// Apache's "Common Log Format with Virtual Host" (mod_log_config documentation).
pub(crate) const VHOST_COMMON: &str = r#"%v %h %l %u %t "%r" %>s %b"#;

/// One directive as written: `%>s` is (`>`, None, 's'), `%{Referer}i` is ("", Some("Referer"), 'i').
struct Directive<'a> {
    modifiers: &'a str,
    arg: Option<&'a str>,
    letter: &'a str,
}

fn directive(input: &str) -> Res<'_, Directive<'_>> {
    let (rest, (_, modifiers, arg, letter)) = (
        char('%'),
        // `<`/`>` pick the original or final request; `!200,304` style status conditions.
        opt(is_a("<>!0123456789,")),
        opt(delimited(char('{'), take_until("}"), char('}'))),
        alt((recognize((tag("^t"), anychar)), recognize(anychar))),
    )
        .parse(input)?;
    Ok((rest, Directive { modifiers: modifiers.unwrap_or(""), arg, letter }))
}

fn literal(input: &str) -> Res<'_, &str> {
    is_not("%\\")(input)
}

/// Compiles `format` (the string inside `LogFormat "..."`, with `\"` still escaped or not).
pub(crate) fn compile(format: &str) -> Result<Template, FormatError> {
    let mut items = Vec::new();
    let mut input = format;
    while !input.is_empty() {
        let position = format.len() - input.len() + 1;
        if let Some(rest) = input.strip_prefix("%%") {
            items.push(Item::Literal("%".to_owned()));
            input = rest;
        } else if let Some(esc) = input.strip_prefix('\\') {
            // Escapes of the configuration file: `\"`, `\\`, `\n`, `\t`.
            let mut chars = esc.chars();
            let lit = match chars.next() {
                Some('n') => "\n".to_owned(),
                Some('t') => "\t".to_owned(),
                Some(c) => c.to_string(),
                None => "\\".to_owned(),
            };
            items.push(Item::Literal(lit));
            input = chars.as_str();
        } else if input.starts_with('%') {
            let (rest, d) = directive(input).map_err(|e: nom::Err<PErr<'_>>| {
                let reason = match e {
                    nom::Err::Error(e) | nom::Err::Failure(e) if e.input.is_empty() => {
                        "the format ends inside a directive".to_owned()
                    }
                    _ => "a directive is % then an optional {argument} then a letter".to_owned(),
                };
                FormatError::Directive { directive: input.chars().take(12).collect(), position, reason }
            })?;
            let written = &input[..input.len() - rest.len()];
            let field = field_for(&d).map_err(|reason| FormatError::Directive {
                directive: written.to_owned(),
                position,
                reason,
            })?;
            items.push(Item::Field(field, written.to_owned()));
            input = rest;
        } else {
            let (rest, lit) = literal(input).map_err(|_| FormatError::Directive {
                directive: input.chars().take(12).collect(),
                position,
                reason: "unexpected character".to_owned(),
            })?;
            items.push(Item::Literal(lit.to_owned()));
            input = rest;
        }
    }
    Ok(Template::new(items, "apache.access"))
}

fn field_for(d: &Directive<'_>) -> Result<Field, String> {
    let _ = d.modifiers; // conditions only decide whether Apache writes the value or `-`
    let arg = d.arg;
    let no_arg = |f: Field| match arg {
        None => Ok(f),
        Some(a) => Err(format!("%{} takes no {{{a}}} argument here", d.letter)),
    };
    let need_arg = |what: &str| match arg {
        Some(a) if !a.is_empty() => Ok(Field::Ignore),
        _ => Err(format!("%{} needs {{{what}}}", d.letter)),
    };
    match d.letter {
        // `%{c}a` is the peer of the connection rather than the client behind a proxy.
        "a" | "h" => Ok(Field::ClientHost),
        "A" => Ok(Field::ServerIp),
        "b" | "B" => no_arg(Field::BytesBody),
        "O" => no_arg(Field::BytesSent),
        "I" => no_arg(Field::BytesReceived),
        "S" => no_arg(Field::Ignore),
        "D" => no_arg(Field::DurationMicros),
        "T" => match arg {
            None | Some("s") => Ok(Field::DurationSeconds),
            Some("ms") => Ok(Field::DurationMillis),
            Some("us") => Ok(Field::DurationMicros),
            Some(u) => Err(format!("unknown time unit {u:?} (use ms, us or s)")),
        },
        "i" => {
            need_arg("Header-Name")?;
            let name = arg.unwrap_or_default();
            if name.eq_ignore_ascii_case("referer") {
                Ok(Field::Referrer)
            } else if name.eq_ignore_ascii_case("user-agent") {
                Ok(Field::UserAgent)
            } else {
                Ok(Field::Ignore)
            }
        }
        // `%{SSL_PROTOCOL}x` and friends come from mod_ssl.
        "o" | "e" | "n" | "C" | "x" | "^ti" | "^to" => need_arg("NAME"),
        "l" => Ok(Field::IgnoreToken),
        "f" | "k" | "L" | "R" | "X" | "P" => Ok(Field::Ignore),
        "H" => no_arg(Field::Protocol),
        "m" => no_arg(Field::Method),
        "p" => match arg {
            None | Some("canonical") | Some("local") => Ok(Field::ServerPort),
            Some("remote") => Ok(Field::ClientPort),
            Some(f) => Err(format!("unknown port format {f:?} (use canonical, local or remote)")),
        },
        "q" => no_arg(Field::Query),
        "r" => no_arg(Field::Request),
        "s" => no_arg(Field::Status),
        "t" => time_field(arg),
        "u" => no_arg(Field::User),
        "U" => no_arg(Field::Path),
        "v" | "V" => no_arg(Field::ServerName),
        other => Err(format!("unknown directive letter {other:?}")),
    }
}

fn time_field(arg: Option<&str>) -> Result<Field, String> {
    let Some(arg) = arg else { return Ok(Field::TimeClfBracketed) };
    let fmt = arg.strip_prefix("begin:").or_else(|| arg.strip_prefix("end:")).unwrap_or(arg);
    Ok(match fmt {
        "sec" => Field::TimeEpochSeconds,
        "msec" => Field::TimeEpochMillis,
        "usec" => Field::TimeEpochMicros,
        // Sub-second parts of a time written by another directive: nothing to add alone.
        "msec_frac" | "usec_frac" => Field::Ignore,
        "" => Field::TimeClfBracketed,
        strftime => {
            // Check the format once now, so a typo is reported at start-up with its position
            // rather than on every line.
            let probe = jiff::Timestamp::UNIX_EPOCH.to_zoned_datetime(jiff::tz::TimeZone::UTC);
            jiff::fmt::strtime::format(strftime, &probe)
                .map_err(|e| format!("unsupported strftime format {strftime:?}: {e}"))?;
            Field::TimeStrftime(strftime.to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::ParseContext;

    fn ctx() -> ParseContext {
        crate::parse::test_context("Europe/Paris")
    }

    #[test]
    fn compiles_combined_into_fields_and_literals() {
        let t = compile(COMBINED).unwrap();
        let shape: Vec<String> = t
            .items()
            .iter()
            .map(|i| match i {
                Item::Literal(l) => format!("L{l:?}"),
                Item::Field(_, d) => d.clone(),
            })
            .collect();
        assert_eq!(
            shape.join(" "),
            r#"%h L" " %l L" " %u L" " %t L" \"" %r L"\" " %>s L" " %b L" \"" %{Referer}i L"\" \"" %{User-agent}i L"\"""#
        );
    }

    #[test]
    fn config_escapes_and_percent() {
        let t = compile(r#"\"%r\" 100%% %s"#).unwrap();
        let ev = t.parse(r#""GET / HTTP/1.1" 100% 200"#, &ctx()).unwrap();
        assert_eq!(ev.http_status, Some(200));
    }

    #[test]
    fn bad_directives_are_named_with_position() {
        let err = compile("%h %Z").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad directive \"%Z\" at position 4 of the log format: unknown directive letter \"Z\""
        );
        let err = compile("%h %{ms}y").unwrap_err();
        assert!(err.to_string().contains("position 4"), "{err}");
        let err = compile("%h %{Referer").unwrap_err();
        assert!(err.to_string().contains("position 4"), "{err}");
        let err = compile("%T %{fortnights}T").unwrap_err();
        assert!(err.to_string().contains("unknown time unit \"fortnights\""), "{err}");
        let err = compile("%i").unwrap_err();
        assert!(err.to_string().contains("needs {Header-Name}"), "{err}");
        let err = compile("%h %").unwrap_err();
        assert!(err.to_string().contains("ends inside a directive"), "{err}");
        let err = compile("%{%J}t").unwrap_err();
        assert!(err.to_string().contains("unsupported strftime"), "{err}");
    }

    #[test]
    fn strftime_time_in_local_zone_and_durations() {
        let t = compile(r#"%{%Y-%m-%d %H:%M:%S}t %a:%{remote}p %D %{ms}T %T "%r" %s"#).unwrap();
        let ev = t.parse(r#"2025-04-07 14:30:00 192.0.2.1:51234 1500 2 0 "GET /x HTTP/1.1" 200"#, &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2025-04-07T12:30:00Z");
        assert_eq!(ev.utc_offset_seconds, Some(7200));
        assert_eq!(ev.source_port, Some(51234));
        // The last duration directive written wins: %T = 0 s.
        assert_eq!(ev.duration_ns, Some(0));
        let t = compile("%h %D").unwrap();
        assert_eq!(t.parse("::1 1500", &ctx()).unwrap().duration_ns, Some(1_500_000));
        let t = compile("%h %{ms}T").unwrap();
        assert_eq!(t.parse("::1 12", &ctx()).unwrap().duration_ns, Some(12_000_000));
        let t = compile("%h %T").unwrap();
        assert_eq!(t.parse("::1 3", &ctx()).unwrap().duration_ns, Some(3_000_000_000));
    }

    #[test]
    fn quoted_fields_end_at_the_first_unescaped_quote() {
        let t = compile(COMBINED).unwrap();
        // A trailing extra field is not swallowed into the user agent...
        let err =
            t.parse(r#"::1 - - [26/Dec/2016:16:16:29 +0200] "GET / HTTP/1.1" 200 1 "-" "UA" "-""#, &ctx()).unwrap_err();
        assert_eq!(err.expected(), "the end of the line");
        // ...but escaped quotes stay inside, unescaped.
        let ev = t
            .parse(r#"::1 - - [26/Dec/2016:16:16:29 +0200] "GET /\"x\" HTTP/1.1" 200 1 "-" "say \"hi\"""#, &ctx())
            .unwrap();
        assert_eq!(ev.url_path.as_deref(), Some(r#"/"x""#));
        assert_eq!(ev.user_agent.as_deref(), Some(r#"say "hi""#));
        // A line cut inside its last quoted field keeps what was logged.
        let ev = t.parse(r#"::1 - - [26/Dec/2016:16:16:29 +0200] "GET / HTTP/1.1" 200 1 "-" "Mozilla/5.0 (compatible; Googlebot/2.1"#, &ctx()).unwrap();
        assert_eq!(ev.user_agent.as_deref(), Some("Mozilla/5.0 (compatible; Googlebot/2.1"));
    }

    #[test]
    fn epoch_times() {
        let t = compile("%{sec}t %{msec_frac}t %h").unwrap();
        let ev = t.parse("1744029000 123 ::1", &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2025-04-07T12:30:00Z");
        let t = compile("%{end:msec}t %h").unwrap();
        assert_eq!(t.parse("1744029000123 ::1", &ctx()).unwrap().timestamp.to_string(), "2025-04-07T12:30:00.123Z");
    }
}
