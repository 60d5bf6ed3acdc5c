//! Stormshield Network Security (SNS) audit logs: WELF-style `key=value` pairs, values
//! optionally in double quotes, local time plus a `tz=` offset, for every log family
//! (`logtype=` connection, filter, alarm, web, plugin, vpn, auth, system, ...), with or
//! without a syslog envelope:
//!
//! ```text
//! id=firewall time="2025-04-07 14:30:00" fw="SN310A17C0000001" tz=+0200 startime="2025-04-07 14:29:58" pri=5 ... src=192.0.2.1 srcport=51234 dst=198.51.100.7 dstport=443 ipproto=tcp sent=1200 rcvd=5400 duration=2.03 action=pass logtype="connection"
//! ```
//!
//! Specification: Stormshield, "Description of audit logs"
//! <https://documentation.stormshield.eu/SNS/v4/en/Content/Description_of_Audit_logs/Understand_log_files.htm>,
//! common fields <https://documentation.stormshield.eu/SNS/v4/en/Content/Description_of_Audit_logs/Fields_common_to_all_logs.htm>
//! and connection fields <https://documentation.stormshield.eu/SNS/v4/en/Content/Description_of_Audit_logs/Specific_fields-connection.htm>.

use std::borrow::Cow;

use nom::Parser as _;
use nom::branch::alt;
use nom::bytes::complete::{take_till, take_while1};
use nom::character::complete::{char, space0, space1};
use nom::combinator::all_consuming;
use nom::error::context;
use nom::multi::separated_list1;
use nom::sequence::{delimited, separated_pair, terminated};

use super::ParseContext;
use super::common::{self, ParseError, Res, fail, ip, unescape};
use super::syslog;
use crate::{Category, Event};

pub(crate) const DATASET: &str = "stormshield.log";

/// A quoted value, with `\"` escapes.
fn quoted(input: &str) -> Res<'_, &str> {
    let Some(body) = input.strip_prefix('"') else { return fail(input, "a quoted value") };
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Ok((&body[i + 1..], &body[..i])),
            _ => i += 1,
        }
    }
    fail(input, "a closing quote")
}

fn pair(input: &str) -> Res<'_, (&str, &str)> {
    separated_pair(
        context("a key", take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')),
        context("= after a key", char('=')),
        alt((quoted, take_till(|c| c == ' '))),
    )
    .parse(input)
}

fn pairs(input: &str) -> Res<'_, Vec<(&str, &str)>> {
    delimited(space0, terminated(separated_list1(space1, pair), space0), nom::combinator::success(())).parse(input)
}

/// `2025-04-07 14:30:00` with a `+0200` offset, or the context's zone without one.
fn local_time<'a>(
    at: &'a str,
    time: &'a str,
    tz: Option<&'a str>,
    ctx: &ParseContext,
) -> Result<(jiff::Timestamp, i32), nom::Err<common::PErr<'a>>> {
    let (rest, (ymd, hms)) = common::ymd_hms('-')(time)?;
    if !rest.is_empty() {
        return Err(nom::Err::Error(common::PErr::new(rest, "the end of the time")));
    }
    let dt = common::civil(at, ymd, hms, 0)?;
    match tz {
        Some(tz) => {
            let (r, off) = common::numeric_offset(tz)?;
            if !r.is_empty() {
                return Err(nom::Err::Error(common::PErr::new(r, "an offset such as +0200")));
            }
            Ok((common::at_offset(at, dt, off)?, off))
        }
        None => common::in_zone(at, dt, &ctx.time_zone),
    }
}

pub(crate) fn parse(line: &str, ctx: &ParseContext) -> Result<Event, ParseError> {
    let text = line.trim_end_matches(['\r', '\n']);
    let (message, _env) = syslog::optional_envelope(text, ctx);
    let (_, kv) = all_consuming(pairs).parse(message).map_err(|e| ParseError::from_nom(DATASET, text, e))?;
    let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let col = |v: &str| v.as_ptr() as usize - text.as_ptr() as usize;
    let bad = |v: &str, what: &'static str| ParseError::at(DATASET, text, col(v), what);

    match get("id") {
        Some("firewall") => {}
        Some(other) => return Err(bad(other, "id=firewall")),
        None => {
            return Err(ParseError::at(DATASET, text, text.len() - message.len(), "id=firewall (a Stormshield log)"));
        }
    }
    let Some(time) = get("time") else {
        return Err(ParseError::at(DATASET, text, text.len(), "a time= field"));
    };
    let (timestamp, offset) =
        local_time(time, time, get("tz"), ctx).map_err(|e| ParseError::from_nom(DATASET, text, e))?;

    let logtype = get("logtype").unwrap_or("");
    let category = match logtype {
        "connection" | "filter" | "alarm" | "plugin" | "pvm" | "vpn" | "web" | "ssl" | "count" | "xvpn"
        | "sandboxing" => Category::Network,
        _ => Category::Diagnostic,
    };
    let owned = |v: Option<&str>| v.and_then(common::dash_none).map(|s| unescape(s).into_owned());
    let number = |k: &str| -> Result<Option<u64>, ParseError> {
        match get(k).and_then(common::dash_none) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad(v, "a whole number")),
        }
    };
    let port = |k: &str| -> Result<Option<u16>, ParseError> {
        match get(k).and_then(common::dash_none) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad(v, "a port number")),
        }
    };
    let addr = |k: &str| -> Result<Option<std::net::IpAddr>, ParseError> {
        match get(k).and_then(common::dash_none) {
            None => Ok(None),
            Some(v) => ip(v).map(Some).ok_or_else(|| bad(v, "an IP address")),
        }
    };
    let duration_ns = match get("duration").and_then(common::dash_none) {
        None => None,
        Some(v) => {
            let secs: f64 = v.parse().map_err(|_| bad(v, "a duration in seconds"))?;
            if !secs.is_finite() || secs < 0.0 {
                return Err(bad(v, "a duration in seconds"));
            }
            Some((secs * 1e9).round() as u64)
        }
    };
    let action = get("action").map(|a| match a {
        "pass" => Cow::Borrowed("pass"),
        "block" | "reject" | "drop" => Cow::Borrowed("block"),
        other => Cow::Owned(other.to_ascii_lowercase()),
    });

    Ok(Event {
        timestamp,
        utc_offset_seconds: Some(offset),
        dataset: DATASET.to_owned(),
        category,
        action: action.map(Cow::into_owned),
        duration_ns,
        source_ip: addr("src")?,
        source_port: port("srcport")?,
        destination_ip: addr("dst")?,
        destination_port: port("dstport")?,
        transport: owned(get("ipproto")).map(|p| p.to_ascii_lowercase()),
        source_bytes: number("sent")?,
        destination_bytes: number("rcvd")?,
        user_name: owned(get("user")),
        http_method: owned(get("op")).filter(|_| logtype == "web"),
        url_path: owned(get("arg")).filter(|_| logtype == "web"),
        observer_hostname: owned(get("fw")),
        observer_ingress_interface: owned(get("srcifname").or(get("srcif"))),
        rule_name: owned(get("rulename").or(get("ruleid"))),
        log_level: owned(get("pri")),
        message: owned(get("msg")),
        original: line.to_owned(),
        ..Event::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        crate::parse::test_context("Europe/Paris")
    }

    const CONNECTION: &str = r#"id=firewall time="2025-04-07 14:30:00" fw="SN310A17C0000001" tz=+0200 startime="2025-04-07 14:29:58" pri=5 confid=01 slotlevel=2 ruleid=3 srcif="Ethernet0" srcifname="out" ipproto=tcp dstif="Ethernet1" dstifname="in" proto=https src=192.0.2.1 srcport=51234 srcportname=ephemeral_fw_tcp dst=198.51.100.7 dstport=443 dstportname=https dstname=ent.example.fr modsrc=203.0.113.9 modsrcport=51234 origdst=198.51.100.7 origdstport=443 user="jdupont" sent=1200 rcvd=5400 duration=2.03 action=pass logtype="connection""#;

    #[test]
    fn connection_log_with_local_time_and_offset() {
        let ev = parse(CONNECTION, &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2025-04-07T12:30:00Z");
        assert_eq!(ev.utc_offset_seconds, Some(7200));
        assert_eq!(ev.observer_hostname.as_deref(), Some("SN310A17C0000001"));
        assert_eq!(ev.source_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!((ev.source_port, ev.destination_port), (Some(51234), Some(443)));
        assert_eq!((ev.source_bytes, ev.destination_bytes), (Some(1200), Some(5400)));
        assert_eq!(ev.duration_ns, Some(2_030_000_000));
        assert_eq!(ev.action.as_deref(), Some("pass"));
        assert_eq!(ev.user_name.as_deref(), Some("jdupont"));
        assert_eq!(ev.transport.as_deref(), Some("tcp"));
        assert_eq!(ev.observer_ingress_interface.as_deref(), Some("out"));
        assert_eq!(ev.rule_name.as_deref(), Some("3"));
        assert_eq!(ev.category, Category::Network);
    }

    #[test]
    fn alarm_in_syslog_envelope_with_quoted_message() {
        let line = r#"<13>Apr  7 14:31:00 fw1 asqd: id=firewall time="2025-04-07 14:31:00" fw="fw1" tz=+0200 startime="2025-04-07 14:31:00" pri=1 srcif="Ethernet0" ipproto=tcp src=203.0.113.5 srcport=4444 dst=198.51.100.7 dstport=80 action=block msg="Possible SQL injection \"union select\"" class=protocol classification=0 logtype="alarm""#;
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.action.as_deref(), Some("block"));
        assert_eq!(ev.message.as_deref(), Some(r#"Possible SQL injection "union select""#));
        assert_eq!(ev.log_level.as_deref(), Some("1"));
        assert_eq!(ev.observer_ingress_interface.as_deref(), Some("Ethernet0"));
    }

    #[test]
    fn web_and_system_families() {
        let web = r#"id=firewall time="2025-04-07 14:32:00" fw="fw1" tz=+0200 startime="2025-04-07 14:32:00" pri=5 src=10.1.2.3 dst=198.51.100.7 dstport=80 op="GET" arg="/index.php" result=0 action=pass cat_site="education" logtype="web""#;
        let ev = parse(web, &ctx()).unwrap();
        assert_eq!((ev.http_method.as_deref(), ev.url_path.as_deref()), (Some("GET"), Some("/index.php")));
        let sys = r#"id=firewall time="2025-01-07 09:00:00" fw="fw1" startime="2025-01-07 09:00:00" pri=5 user="admin" src=10.0.0.9 msg="Configuration saved" logtype="system""#;
        let ev = parse(sys, &ctx()).unwrap();
        // No tz=: local time in the context's zone (Paris, winter).
        assert_eq!(ev.timestamp.to_string(), "2025-01-07T08:00:00Z");
        assert_eq!(ev.utc_offset_seconds, Some(3600));
        assert_eq!(ev.category, Category::Diagnostic);
        assert_eq!(ev.http_method, None);
    }

    #[test]
    fn errors_point_at_the_value() {
        let line = CONNECTION.replace("srcport=51234 ", "srcport=5x ");
        let err = parse(&line, &ctx()).unwrap_err();
        assert_eq!(err.column(), line.find("5x").unwrap() + 1);
        assert_eq!(err.expected(), "a port number");
        let line = r#"id=firewall fw="x" time="2025-04-07 25:00:00" tz=+0200"#;
        let err = parse(line, &ctx()).unwrap_err();
        assert_eq!(err.expected(), "a valid date and time");
        assert_eq!(err.column(), line.find("2025").unwrap() + 1);
        let line = r#"id=firewall fw="x" time="2025-04-07 12:00:00" tz=+02h0"#;
        let err = parse(line, &ctx()).unwrap_err();
        assert_eq!(err.column(), line.find("+02h0").unwrap() + 1);
        let err = parse("Jan  1 00:00:00 host sshd[2]: Accepted password for root", &ctx()).unwrap_err();
        assert_eq!(err.expected(), "= after a key");
        let err = parse(r#"id=firewall msg="unterminated"#, &ctx()).unwrap_err();
        assert!(err.to_string().contains("column"), "{err}");
    }
}
