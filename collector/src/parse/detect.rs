//! `Format::Auto`: recognise which format a line is in, cheapest checks first, then parse it.
//!
//! Firewall formats carry unmistakable markers (`id=firewall`, `filterlog`, `SRC=`), error
//! logs start with their date (or with a syslog/journal `host tag[pid]:` before it), so only
//! access lines need trying templates. Access lines in
//! the shared combined layout are labelled `apache.access` (Nginx writes the same bytes);
//! a source that knows its server should name its format instead.

use super::common::ParseError;
use super::template::Template;
use super::{FormatError, ParseContext, apache, filterlog, netfilter, nginx, stormshield, syslog};
use crate::event::LineEvent;

#[derive(Debug, Clone)]
pub(crate) struct Auto {
    /// Tried in order; the first is also the one whose error is reported.
    access: [Template; 5],
}

impl Auto {
    pub(crate) fn new() -> Result<Self, FormatError> {
        Ok(Auto {
            access: [
                apache::compile(apache::COMBINED)?,
                apache::compile(apache::VHOST_COMBINED)?,
                apache::compile(apache::COMMON)?,
                apache::compile(apache::VHOST_COMBINED_NO_PORT)?,
                apache::compile(apache::VHOST_COMMON)?,
            ],
        })
    }

    pub(crate) fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Result<LineEvent<'a>, ParseError> {
        if line.contains("id=firewall ") {
            return stormshield::parse(line, ctx).map(LineEvent::from);
        }
        if line.contains("filterlog") && line.contains(',') {
            return filterlog::parse(line, ctx);
        }
        if line.contains("SRC=") && line.contains("IN=") {
            return netfilter::parse(line, ctx);
        }
        let b = line.as_bytes();
        if b.first() == Some(&b'[')
            && b.get(4) == Some(&b' ')
            && b.get(1..4).is_some_and(|w| w.iter().all(u8::is_ascii_alphabetic))
        {
            return apache::parse_error_log(line, ctx).map(LineEvent::from);
        }
        if nginx::starts_with_error_date(line) {
            return nginx::parse_error_log(line, ctx).map(LineEvent::from);
        }
        // Server error lines in a syslog or journal envelope. Access lines fail this within
        // their first two words (no `tag:`), so it stays cheap for them.
        if let Some((body, _)) = syslog::program_envelope(line, ctx) {
            if body.starts_with('[') && body.as_bytes().get(1).is_some_and(|c| c.is_ascii_alphabetic() || *c == b':') {
                return apache::parse_error_log(line, ctx).map(LineEvent::from);
            }
            if nginx::starts_with_error_date(body) {
                return nginx::parse_error_log(line, ctx).map(LineEvent::from);
            }
        }
        let mut first_err = None;
        for template in &self.access {
            match template.parse(line, ctx) {
                Ok(ev) => return Ok(ev),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| ParseError::at("auto", line, 0, "a known log format")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        crate::parse::test_context("UTC")
    }

    #[test]
    fn recognises_each_format() {
        let auto = Auto::new().unwrap();
        let cases = [
            (
                r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "-" "Mozilla/5.0""#,
                "apache.access",
            ),
            (
                r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
                "apache.access",
            ),
            (
                r#"ent.example.fr:443 192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 10 "-" "curl/8""#,
                "apache.access",
            ),
            // apache-badbots:11 in fail2ban's tests: `%v %h ...`, a vhost without port.
            (
                r#"www.sitename.com 192.0.2.222 - - [18/Aug/2024:21:08:39 +0100] "GET /filename.jpg HTTP/1.1" 403 332 "-" "TrackBack/1.02""#,
                "apache.access",
            ),
            (r#"ent.example.fr 192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 10"#, "apache.access"),
            ("[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] denied", "apache.error"),
            (
                "Feb 15 16:54:53 tools apache2[18154]: [:error] [pid 18154:tid 140680873617152] [client 192.0.2.3:48154] AH01630: client denied by server configuration: /var/www",
                "apache.error",
            ),
            (
                r#"host nginx[983479]: 2023/12/09 21:35:20 [notice] 983479#983479: *22174 limiting requests, excess: 1.495 by zone "one", client: 192.0.2.2, server: example.com"#,
                "nginx.error",
            ),
            ("2016/10/25 14:49:34 [error] 54053#0: *1 open() failed", "nginx.error"),
            (
                "Jan  8 03:37:09 h kernel: DROP: IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 PROTO=TCP SPT=1 DPT=2",
                "iptables.log",
            ),
            (
                "<134>Jul  3 19:10:30 filterlog[72237]: 146,,,1535324496,igb1.12,match,block,in,4,0x0,,63,12617,0,DF,6,tcp,60,10.170.12.50,1.1.1.1,49724,853,0",
                "pfsense.log",
            ),
            (
                r#"id=firewall time="2025-04-07 14:30:00" fw="fw" tz=+0200 src=192.0.2.1 logtype="filter""#,
                "stormshield.log",
            ),
        ];
        for (line, dataset) in cases {
            let ev = auto.parse(line, &ctx()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(ev.dataset, dataset, "{line}");
        }
        let ev = auto.parse(cases[3].0, &ctx()).unwrap();
        assert_eq!(ev.source_ip, Some("192.0.2.222".parse().unwrap()));
        assert_eq!(ev.observer_hostname.as_deref(), Some("www.sitename.com"));
        assert_eq!((ev.http_status, ev.destination_bytes), (Some(403), Some(332)));
        let err = auto.parse("hello world", &ctx()).unwrap_err();
        assert_eq!(err.dataset(), "apache.access");
        // A syslog line of another program is not a server error line.
        let err = auto.parse("Feb 15 16:23:00 srv sshd[1]: Failed password for root", &ctx()).unwrap_err();
        assert_eq!(err.dataset(), "apache.access");
    }
}
