//! pfSense / OPNsense `filterlog`: one CSV record per packet decision, inside a syslog
//! envelope (RFC 5424, or RFC 3164 in "BSD" mode, which omits the hostname):
//!
//! ```text
//! <134>Jul  3 19:10:30 filterlog[72237]: 146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,10.170.12.50,1.1.1.1,49724,853,0,S,1891286705,,64240,,mss;sackOK
//! ```
//!
//! Specification: Netgate, "Raw Filter Log Format"
//! <https://docs.netgate.com/pfsense/en/latest/monitoring/raw-filter-log-format.html>.
//! Fields 0–8 are common (rule, sub-rule, anchor, tracker, interface, reason, action,
//! direction, IP version); IPv4 then has 9 more before the addresses, IPv6 has 6; TCP and
//! UDP follow with ports.

use smallvec::SmallVec;

use super::ParseContext;
use std::borrow::Cow;

use super::common::{ParseError, ip, port, transport_name};
use super::syslog;
use crate::Category;
use crate::event::LineEvent;

pub(crate) const DATASET: &str = "pfsense.log";

/// The comma-separated fields of a record (one empty field for an empty record). Room for
/// every field of a TCP record without a heap allocation.
fn csv(record: &str) -> SmallVec<[&str; 32]> {
    // A byte loop: fields are a few bytes long, too short for a `memchr` call per field.
    let mut fields = SmallVec::new();
    let mut start = 0;
    for (at, &byte) in record.as_bytes().iter().enumerate() {
        if byte == b',' {
            fields.push(&record[start..at]);
            start = at + 1;
        }
    }
    fields.push(&record[start..]);
    fields
}

pub(crate) fn parse<'a>(line: &'a str, ctx: &ParseContext) -> Result<LineEvent<'a>, ParseError> {
    let text = line.trim_end_matches(['\r', '\n']);
    let (message, env) = syslog::optional_envelope(text, ctx);
    // Without an envelope the program tag may still lead the line (`filterlog[123]: …`).
    let message = match &env {
        None => match message.split_once(": ") {
            Some((tag, rest)) if tag.starts_with("filterlog") => rest,
            _ => message,
        },
        Some(_) => message,
    };
    if let Some(app) = env.as_ref().and_then(|e| e.app)
        && app != "filterlog"
    {
        return Err(ParseError::at(DATASET, text, 0, format!("a filterlog message (this one is from {app:?})")));
    }
    let base = text.len() - message.len();
    let fields = csv(message);
    // Column of field `i`, for error messages.
    let column_of = |i: usize| -> usize { base + fields.iter().take(i).map(|f| f.len() + 1).sum::<usize>() };
    let get = |i: usize, what: &'static str| -> Result<&str, ParseError> {
        fields.get(i).copied().ok_or_else(|| ParseError::at(DATASET, text, text.len(), what))
    };

    let mut ev = LineEvent {
        dataset: Cow::Borrowed(DATASET),
        category: Category::Network,
        original: Cow::Borrowed(line),
        timestamp: ctx.now,
        ..LineEvent::default()
    };
    if let Some(env) = &env {
        if let Some((ts, off)) = env.time {
            ev.timestamp = ts;
            ev.utc_offset_seconds = Some(off);
        }
        ev.observer_hostname = env.hostname.map(Cow::Borrowed);
    }

    let rule = get(0, "a rule number")?;
    let tracker = get(3, "a tracker id")?;
    // The tracker identifies the rule across reloads; the number changes when rules move.
    ev.rule_name = Some(Cow::Borrowed(if tracker.is_empty() { rule } else { tracker }));
    ev.observer_ingress_interface = Some(Cow::Borrowed(get(4, "an interface")?)).filter(|s| !s.is_empty());
    ev.action = match get(6, "an action (pass, block, reject)")? {
        "pass" => Some(Cow::Borrowed("pass")),
        "block" | "reject" => Some(Cow::Borrowed("block")),
        other => {
            return Err(ParseError::at(
                DATASET,
                text,
                column_of(6),
                format!("an action (pass, block, reject), not {other:?}"),
            ));
        }
    };
    let (proto_at, src_at) = match get(8, "an IP version (4 or 6)")? {
        "4" => (16, 18),
        "6" => (12, 15),
        _ => return Err(ParseError::at(DATASET, text, column_of(8), "an IP version (4 or 6)")),
    };
    let proto = transport_name(get(proto_at, "a protocol name")?);
    let addr = |i: usize| -> Result<std::net::IpAddr, ParseError> {
        let f = get(i, "an IP address")?;
        ip(f).ok_or_else(|| ParseError::at(DATASET, text, column_of(i), "an IP address"))
    };
    ev.source_ip = Some(addr(src_at)?);
    ev.destination_ip = Some(addr(src_at + 1)?);
    if proto == "tcp" || proto == "udp" {
        let port_at = |i: usize| -> Result<u16, ParseError> {
            port(get(i, "a port number")?).ok_or_else(|| ParseError::at(DATASET, text, column_of(i), "a port number"))
        };
        ev.source_port = Some(port_at(src_at + 2)?);
        ev.destination_port = Some(port_at(src_at + 3)?);
    }
    ev.transport = Some(proto);
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        crate::parse::test_context("UTC")
    }

    proptest::proptest! {
        /// The fields are those of the nom grammar the splitter replaced,
        /// `all_consuming(separated_list1(char(','), take_till(|c| c == ',')))`, which takes
        /// any text.
        #[test]
        fn fields_agree_with_the_nom_grammar(record in "[a-z0-9,. é]{0,60}") {
            use nom::Parser as _;
            let parsed: crate::parse::common::Res<'_, Vec<&str>> = nom::combinator::all_consuming(
                nom::multi::separated_list1(
                    nom::character::complete::char(','),
                    nom::bytes::complete::take_till(|c| c == ','),
                ),
            )
            .parse(record.as_str());
            let (_, expected) = parsed.unwrap();
            proptest::prop_assert_eq!(csv(&record).to_vec(), expected);
        }
    }

    #[test]
    fn ipv4_tcp_bsd_mode() {
        let ev = parse("<134>Jul  3 19:10:30 filterlog[72237]: 146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,10.170.12.50,1.1.1.1,49724,853,0,S,1891286705,,64240,,mss;sackOK;TS;nop;wscale", &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2024-07-03T19:10:30Z");
        assert_eq!(ev.observer_hostname, None);
        assert_eq!(ev.rule_name.as_deref(), Some("1535324496"));
        assert_eq!(ev.observer_ingress_interface.as_deref(), Some("igb1.12"));
        assert_eq!(ev.action.as_deref(), Some("block"));
        assert_eq!(ev.source_ip, Some("10.170.12.50".parse().unwrap()));
        assert_eq!((ev.source_port, ev.destination_port), (Some(49724), Some(853)));
        assert_eq!(ev.transport.as_deref(), Some("tcp"));
    }

    #[test]
    fn ipv6_udp_and_rfc5424() {
        let ev = parse("<134>Dec 31 22:02:55 firewall.opnsense.net filterlog[15307]: 6,,,1000000105,igb1.27,match,block,in,6,0x00,0xf6279,1,UDP,17,32,fe80::208:9bff:fef3:652b,ff02::1:2,546,547,32", &ctx()).unwrap();
        assert_eq!(ev.observer_hostname.as_deref(), Some("firewall.opnsense.net"));
        assert_eq!(ev.destination_ip, Some("ff02::1:2".parse().unwrap()));
        assert_eq!((ev.source_port, ev.destination_port), (Some(546), Some(547)));
        assert_eq!(ev.transport.as_deref(), Some("udp"));
        let ev = parse("<134>1 2021-07-03T19:10:14.578288-05:00 pfSense.example.com filterlog 72237 - - 115,,,1534283903,igb1.27,match,pass,in,4,0x0,,63,29559,0,DF,17,udp,69,10.170.27.50,10.170.27.1,52797,53,49", &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2021-07-04T00:10:14.578288Z");
        assert_eq!(ev.utc_offset_seconds, Some(-5 * 3600));
        assert_eq!(ev.action.as_deref(), Some("pass"));
    }

    #[test]
    fn icmp_has_no_ports() {
        let ev = parse("filterlog[1]: 5,,,1000000103,em0,match,block,in,4,0x0,,64,0,0,none,1,icmp,84,192.0.2.1,192.0.2.2,request,1234,1", &ctx()).unwrap();
        assert_eq!(ev.transport.as_deref(), Some("icmp"));
        assert_eq!(ev.source_port, None);
    }

    #[test]
    fn rejects_other_programs_and_bad_fields() {
        let err =
            parse("<190>Dec 31 22:06:16 fw dhcpd[40152]: DHCPDISCOVER from 4c:55:41:a0:fa:99 via eth0.60", &ctx())
                .unwrap_err();
        assert!(err.expected().contains("dhcpd"), "{err}");
        let line = "filterlog[1]: 5,,,1,em0,match,block,in,4,0x0,,64,0,0,none,6,tcp,84,192.0.2.1,192.0.2.2,http,80,0";
        let err = parse(line, &ctx()).unwrap_err();
        assert_eq!(err.column(), line.find("http").unwrap() + 1);
        assert_eq!(err.expected(), "a port number");
        let err = parse("filterlog[1]: 5,,,1,em0,match,block,in,4", &ctx()).unwrap_err();
        assert_eq!(err.expected(), "a protocol name");
    }
}
