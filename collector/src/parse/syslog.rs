//! The syslog envelope firewall lines (and server error lines sent to syslog or the journal)
//! arrive in: RFC 3164 (BSD, with or without a hostname), RFC 5424, and the common hybrid of
//! an RFC 3339 time in a BSD-style header.
//!
//! Specifications: RFC 3164 <https://datatracker.ietf.org/doc/html/rfc3164> §4.1
//! (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`, no year, no zone) and RFC 5424
//! <https://datatracker.ietf.org/doc/html/rfc5424> §6 (`<PRI>1 TIMESTAMP HOST APP PROCID
//! MSGID [SD] MSG`). Files written by rsyslog/syslog-ng usually drop the `<PRI>`.

use jiff::Timestamp;
use nom::Parser as _;
use nom::branch::alt;
use nom::bytes::complete::{take_till1, take_while_m_n};
use nom::character::complete::{char, space1};
use nom::combinator::{opt, value};
use nom::error::context;

use super::ParseContext;
use super::common::{self, Res, fail};

/// What the envelope says about a message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Envelope<'a> {
    pub(crate) priority: Option<u8>,
    /// The instant and the UTC offset it was written with.
    pub(crate) time: Option<(Timestamp, i32)>,
    pub(crate) hostname: Option<&'a str>,
    /// RFC 3164 TAG or RFC 5424 APP-NAME (`kernel`, `filterlog`).
    pub(crate) app: Option<&'a str>,
    pub(crate) procid: Option<&'a str>,
}

fn priority(input: &str) -> Res<'_, u8> {
    // `<` one to three digits `>`, read in place (see `bsd_time_in_place`); the combinators
    // below run only to say what is wrong.
    let bytes = input.as_bytes();
    if bytes.first() == Some(&b'<') {
        let digits = bytes[1..].iter().take(3).take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && bytes.get(1 + digits) == Some(&b'>') {
            let p = bytes[1..=digits].iter().fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
            if p <= 191 {
                return Ok((&input[digits + 2..], p as u8));
            }
        }
    }
    let (rest, (_, digits, _)) =
        (char('<'), take_while_m_n(1, 3, |c: char| c.is_ascii_digit()), char('>')).parse(input)?;
    match digits.parse::<u8>() {
        Ok(p) if p <= 191 => Ok((rest, p)),
        _ => fail(input, "a syslog priority <0>..<191>"),
    }
}

/// `Mmm dd hh:mm:ss` (day padded with a space or a zero) resolved with the context.
fn bsd_time<'a>(ctx: &ParseContext) -> impl FnMut(&'a str) -> Res<'a, (Timestamp, i32)> + '_ {
    move |input: &'a str| {
        // Only ever tried as the first of the envelope's two time forms: its error gives way
        // to the RFC 3339 one, so it need not say more than this.
        let Some((rest, date, time)) = bsd_time_in_place(input) else {
            return fail(input, "a time such as Jan  8 03:37:09");
        };
        let resolved = common::yearless(input, date, time, ctx.now, &ctx.time_zone)?;
        Ok((rest, resolved))
    }
}

/// `Mmm dd hh:mm:ss` (and `Mmm  d`, `Mmm d`) as its month, day and time, read in place: a
/// few byte tests instead of the nom combinators it was first written with (kept in the
/// tests as the reference it must agree with). With the priority and `hh:mm:ss` read in place
/// too, a pfSense line takes 8 % fewer instructions.
fn bsd_time_in_place(input: &str) -> Option<(&str, (i8, i8), common::Hms)> {
    let (after_month, month) = common::month(input).ok()?;
    let bytes = after_month.as_bytes();
    let digit = |at: usize| bytes.get(at).filter(|b| b.is_ascii_digit()).map(|b| (b - b'0') as i8);
    if bytes.first() != Some(&b' ') {
        return None;
    }
    let (day, end) = match (bytes.get(1), digit(1), digit(2)) {
        (Some(b' '), _, Some(d)) => (d, 3),
        (_, Some(d1), Some(d2)) => (d1 * 10 + d2, 3),
        (_, Some(d), None) => (d, 2),
        _ => return None,
    };
    if bytes.get(end) != Some(&b' ') {
        return None;
    }
    let (rest, time) = common::hms(&after_month[end + 1..]).ok()?;
    Some((rest, (month, day), time))
}

fn nil_or_token(input: &str) -> Res<'_, Option<&str>> {
    alt((value(None, char('-')), take_till1(|c| c == ' ').map(Some))).parse(input)
}

/// RFC 5424 structured data: `-` or `[id k="v"...]...`, with `\]` escapes inside values.
fn structured_data(input: &str) -> Res<'_, &str> {
    if let Some(rest) = input.strip_prefix('-') {
        return Ok((rest, ""));
    }
    // Walk by characters: an escape skips the whole next character, never into the middle
    // of a UTF-8 sequence or past the end.
    let mut chars = input.char_indices().peekable();
    let mut end = 0;
    while let Some(&(start, '[')) = chars.peek() {
        chars.next();
        let mut in_quotes = false;
        loop {
            match chars.next() {
                None => return fail(&input[start..], "the end of a structured-data element (])"),
                Some((_, '\\')) => {
                    chars.next();
                }
                Some((_, '"')) => in_quotes = !in_quotes,
                Some((at, ']')) if !in_quotes => {
                    end = at + 1;
                    break;
                }
                Some(_) => {}
            }
        }
    }
    if end == 0 {
        return fail(input, "structured data ([...] or -)");
    }
    Ok((&input[end..], &input[..end]))
}

fn rfc5424(input: &str) -> Res<'_, Envelope<'_>> {
    let (rest, (_, _, time, _, hostname, _, app, _, procid, _, _msgid, _, _sd)) = (
        char('1'),
        char(' '),
        alt((value(None, char('-')), common::rfc3339.map(Some))),
        char(' '),
        nil_or_token,
        char(' '),
        nil_or_token,
        char(' '),
        nil_or_token,
        char(' '),
        nil_or_token,
        char(' '),
        structured_data,
    )
        .parse(input)?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    // A UTF-8 byte-order mark may start the message (RFC 5424 §6.4).
    let rest = rest.strip_prefix('\u{feff}').unwrap_or(rest);
    Ok((rest, Envelope { priority: None, time, hostname, app, procid }))
}

/// `text` up to its first space, or all of it: a byte loop, for words of a few bytes (a
/// `char` searcher set up per word was 2.5 % of a netfilter line).
fn first_word(text: &str) -> &str {
    let end = text.bytes().position(|b| b == b' ').unwrap_or(text.len());
    &text[..end]
}

/// `TAG:` or `TAG[pid]:` followed by a space or the end.
fn tag_token(token: &str) -> Option<(&str, Option<&str>)> {
    let name = token.strip_suffix(':')?;
    if let Some((app, pid)) = name.strip_suffix(']').and_then(|n| n.split_once('[')) {
        return Some((app, Some(pid)));
    }
    (!name.is_empty() && !name.contains(['[', ']', '='])).then_some((name, None))
}

/// The time at the start of a BSD header and the blanks after it, read in place when it is
/// `Mmm dd hh:mm:ss` (every RFC 3164 line): what the nom expression in [`bsd`] finds, without
/// its combinators (a sixth of a firewall line's envelope). `None` for anything else, left to
/// that expression to parse or to report.
fn bsd_time_and_blanks<'a>(input: &'a str, ctx: &ParseContext) -> Option<(&'a str, (Timestamp, i32))> {
    let (rest, date, time) = bsd_time_in_place(input)?;
    let blanks = rest.bytes().take_while(|&b| b == b' ' || b == b'\t').count();
    if blanks == 0 {
        return None;
    }
    let resolved = common::yearless(input, date, time, ctx.now, &ctx.time_zone).ok()?;
    Some((&rest[blanks..], resolved))
}

fn bsd<'a>(ctx: &ParseContext) -> impl FnMut(&'a str) -> Res<'a, Envelope<'a>> + '_ {
    move |input: &'a str| {
        let (rest, time) = match bsd_time_and_blanks(input, ctx) {
            Some(found) => found,
            None => {
                let (rest, (time, _)) = (
                    context("a syslog time (Mmm dd hh:mm:ss or RFC 3339)", alt((bsd_time(ctx), common::rfc3339))),
                    space1,
                )
                    .parse(input)?;
                (rest, time)
            }
        };
        let mut env = Envelope { priority: None, time: Some(time), hostname: None, app: None, procid: None };
        let first = first_word(rest);
        if let Some((app, pid)) = tag_token(first) {
            // BSD mode (pfSense, or a local file without hostname): the tag follows the time.
            env.app = Some(app);
            env.procid = pid;
            return Ok((rest[first.len()..].trim_start_matches(' '), env));
        }
        if first.is_empty() || first.starts_with('[') || first.contains('=') {
            return Ok((rest, env));
        }
        env.hostname = Some(first);
        let rest = rest[first.len()..].trim_start_matches(' ');
        let second = first_word(rest);
        if let Some((app, pid)) = tag_token(second) {
            env.app = Some(app);
            env.procid = pid;
            return Ok((rest[second.len()..].trim_start_matches(' '), env));
        }
        Ok((rest, env))
    }
}

/// Parses the envelope at the start of `input` and returns the message that follows.
pub(crate) fn envelope<'a>(input: &'a str, ctx: &ParseContext) -> Res<'a, Envelope<'a>> {
    // Most lines in files have no `<PRI>`: no failing parser (and its error) for them.
    let (rest, pri) = if input.starts_with('<') { opt(priority).parse(input)? } else { (input, None) };
    let (rest, mut env) = if pri.is_some() && rest.starts_with("1 ") { rfc5424(rest)? } else { bsd(ctx)(rest)? };
    env.priority = pri;
    Ok((rest, env))
}

/// The envelope if the line has one, else the whole line as the message.
pub(crate) fn optional_envelope<'a>(input: &'a str, ctx: &ParseContext) -> (&'a str, Option<Envelope<'a>>) {
    match envelope(input, ctx) {
        Ok((rest, env)) => (rest, Some(env)),
        Err(_) => (input, None),
    }
}

/// The header a program's own log line gets when it goes through syslog or the systemd
/// journal: an envelope as above, or the journal's `HOST TAG[pid]: ` without a time
/// (`journalctl -o cat`-style exports, fail2ban's `logtype: journal`). Unlike [`envelope`],
/// the tag is required: it is what tells a wrapped server line from an access line that
/// starts with a host name.
///
/// When the server itself logs through syslog into the journal, the message repeats
/// `HOST TAG: ` (nginx `error_log syslog:`, fail2ban gh-4071); that repetition is removed.
pub(crate) fn program_envelope<'a>(input: &'a str, ctx: &ParseContext) -> Option<(&'a str, Envelope<'a>)> {
    let (rest, env) = match envelope(input, ctx) {
        Ok(found) => found,
        Err(_) => untimed(input)?,
    };
    let app = env.app?;
    let rest = env
        .hostname
        .and_then(|host| rest.strip_prefix(host)?.strip_prefix(' ')?.strip_prefix(app)?.strip_prefix(": "))
        .unwrap_or(rest);
    Some((rest, env))
}

/// `HOST TAG[pid]: MSG` or `TAG[pid]: MSG`, with no time.
fn untimed(input: &str) -> Option<(&str, Envelope<'_>)> {
    let mut env = Envelope { priority: None, time: None, hostname: None, app: None, procid: None };
    let (first, after) = input.split_once(' ')?;
    let (tag, rest) = match tag_token(first) {
        Some(tag) => (tag, after),
        None => {
            let hostname_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            if first.is_empty() || !first.bytes().all(hostname_char) {
                return None;
            }
            env.hostname = Some(first);
            let (second, rest) = after.split_once(' ')?;
            (tag_token(second)?, rest)
        }
    };
    (env.app, env.procid) = (Some(tag.0), tag.1);
    Some((rest.trim_start_matches(' '), env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        crate::parse::test_context("Europe/Paris")
    }

    #[test]
    fn structured_data_ending_in_a_backslash_is_an_error_not_a_panic() {
        // Found by the filterlog fuzz target: an escape at the very end of the line.
        assert!(structured_data("[meta x=\\").is_err());
        assert!(structured_data("[meta x=\\é").is_err());
        assert_eq!(structured_data("[a x=\"\\]\"][b] msg"), Ok((" msg", "[a x=\"\\]\"][b]")));
    }

    /// The nom grammar [`bsd_time_in_place`] was written from: month, a space, a day of one
    /// or two digits (or a space and one), a space, `hh:mm:ss`.
    fn reference_bsd_time(input: &str) -> Option<(&str, (i8, i8), common::Hms)> {
        let (rest, (month, _, day, _, time)) = (
            common::month,
            char(' '),
            alt((
                (char(' '), take_while_m_n(1, 1, |c: char| c.is_ascii_digit())).map(|(_, d)| d),
                take_while_m_n(1, 2, |c: char| c.is_ascii_digit()),
            )),
            char(' '),
            common::hms,
        )
            .parse(input)
            .ok()?;
        Some((rest, (month, day.parse().unwrap_or(0)), time))
    }

    proptest::proptest! {
        #[test]
        fn bsd_time_reads_as_the_nom_grammar(text in "(Jan|Oct|Dec|Foo)[ 0-9]{1,4}[0-9:]{0,10}[ a-z]{0,3}") {
            proptest::prop_assert_eq!(bsd_time_in_place(&text), reference_bsd_time(&text));
        }
    }

    #[test]
    fn rfc3164_with_host_and_tag() {
        let (msg, env) = envelope("<34>Nov 16 14:55:56 mymachine PROGRAM: Freeform message", &ctx()).unwrap();
        assert_eq!(msg, "Freeform message");
        assert_eq!(env.priority, Some(34));
        assert_eq!(env.hostname, Some("mymachine"));
        assert_eq!(env.app, Some("PROGRAM"));
        // November is after "now" (April 2025): the previous year, in Paris winter time.
        assert_eq!(env.time, Some(("2024-11-16T13:55:56Z".parse().unwrap(), 3600)));
    }

    #[test]
    fn rfc3164_bsd_mode_without_hostname() {
        let (msg, env) = envelope("<134>Jul  3 19:10:30 filterlog[72237]: 146,,,1535324496", &ctx()).unwrap();
        assert_eq!(msg, "146,,,1535324496");
        assert_eq!(env.hostname, None);
        assert_eq!((env.app, env.procid), (Some("filterlog"), Some("72237")));
        assert_eq!(env.time.unwrap().0.to_string(), "2024-07-03T17:10:30Z");
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#;
        let (msg, env) = envelope(line, &ctx()).unwrap();
        assert_eq!(msg, "");
        assert_eq!(env.priority, Some(165));
        assert_eq!(env.hostname, Some("mymachine.example.com"));
        assert_eq!(env.app, Some("evntslog"));
        assert_eq!(env.procid, None);
        assert_eq!(env.time.unwrap().0.to_string(), "2003-10-11T22:14:15.003Z");
        let (msg, env) = envelope("<13>1 - - - - - - hello [not sd]", &ctx()).unwrap();
        assert_eq!(msg, "hello [not sd]");
        assert_eq!(env.time, None);
    }

    #[test]
    fn rfc3339_in_bsd_header_and_no_priority() {
        let (msg, env) = envelope("2021-03-12T14:10:18Z Hostname kernel: [x]IN=eth0", &ctx()).unwrap();
        assert_eq!(msg, "[x]IN=eth0");
        assert_eq!(env.hostname, Some("Hostname"));
        assert_eq!(env.app, Some("kernel"));
        assert_eq!(env.priority, None);
    }

    #[test]
    fn program_envelope_with_time_without_time_and_repeated_header() {
        // apache-auth:153 in fail2ban's tests: `ErrorLog syslog` with a tag carrying a path.
        let line = "Feb 15 16:23:40 srv httpd/backend1[22034]: [authz_core:error] [pid 22036] x";
        let (msg, env) = program_envelope(line, &ctx()).unwrap();
        assert_eq!(msg, "[authz_core:error] [pid 22036] x");
        assert_eq!((env.hostname, env.app, env.procid), (Some("srv"), Some("httpd/backend1"), Some("22034")));
        assert_eq!(env.time.unwrap().0.to_string(), "2025-02-15T15:23:40Z");
        // nginx-http-auth:22: a journal message without the journal's own time.
        let line = "host nginx[983478]: 2023/12/09 21:35:20 [error] 983478#983478: *3 user";
        let (msg, env) = program_envelope(line, &ctx()).unwrap();
        assert_eq!(msg, "2023/12/09 21:35:20 [error] 983478#983478: *3 user");
        assert_eq!((env.hostname, env.app, env.procid, env.time), (Some("host"), Some("nginx"), Some("983478"), None));
        // nginx-http-auth:25: nginx logged through syslog into the journal repeats `host nginx: `.
        let line = "host nginx[23141]: host nginx: 2025/09/07 21:20:40 [error] 23141#23141: *24470 PAM";
        let (msg, _) = program_envelope(line, &ctx()).unwrap();
        assert_eq!(msg, "2025/09/07 21:20:40 [error] 23141#23141: *24470 PAM");
        // journalctl -o short-iso.
        let line = "2023-12-09T21:35:20+0100 host nginx[1]: 2023/12/09 21:35:20 [error] 1#1: x";
        let (msg, env) = program_envelope(line, &ctx()).unwrap();
        assert!(msg.starts_with("2023/12/09"), "{msg}");
        assert_eq!(env.time, Some(("2023-12-09T20:35:20Z".parse().unwrap(), 3600)));
        // No tag, no program: access lines and bare text are not wrapped lines.
        for line in [
            r#"www.sitename.com 192.0.2.222 - - [18/Aug/2024:21:08:39 +0100] "GET / HTTP/1.1" 403 332"#,
            r#"192.0.2.1 - - [18/Aug/2024:21:08:39 +0100] "GET /a: b HTTP/1.1" 403 332"#,
            "Feb 15 16:23:00 srv [error] x",
            "nginx[1]:",
            "",
        ] {
            assert_eq!(program_envelope(line, &ctx()), None, "{line}");
        }
    }

    #[test]
    fn not_an_envelope() {
        assert!(envelope("IN=eth0 OUT=", &ctx()).is_err());
        assert!(envelope("<999>Jan  1 00:00:00 x y: z", &ctx()).is_err());
        let (msg, env) = optional_envelope("IN=eth0 OUT=", &ctx());
        assert_eq!((msg, env), ("IN=eth0 OUT=", None));
    }
}
