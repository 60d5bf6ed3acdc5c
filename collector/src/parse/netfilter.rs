//! Netfilter `LOG` / nftables `log` lines (iptables, ip6tables, nftables; also Ubiquiti
//! EdgeOS/USG, which log the same way), with or without a syslog envelope, a kernel
//! uptime stamp and a log prefix:
//!
//! ```text
//! Jan  8 03:37:09 host kernel: iptables DROP_INPUT: IN=eth0 OUT= MAC=… SRC=81.2.69.143 DST=172.16.54.114 LEN=52 … PROTO=TCP SPT=17805 DPT=445 WINDOW=8192 RES=0x00 SYN URGP=0
//! ```
//!
//! Specification: the kernel's formatter, `net/netfilter/nf_log_syslog.c`
//! (`dump_ipv4_packet`, `dump_ipv6_packet`, `nf_log_dump_tcp_header`)
//! <https://github.com/torvalds/linux/blob/master/net/netfilter/nf_log_syslog.c>.
//! An ICMP error quotes the offending packet in brackets (`[SRC=… DST=…]`); that inner
//! packet is skipped so it cannot overwrite the outer addresses.

use super::ParseContext;
use std::borrow::Cow;

use super::common::{ParseError, ip, port, transport_name};
use super::syslog;
use crate::Category;
use crate::event::LineEvent;

pub(crate) const DATASET: &str = "iptables.log";

/// One element of the packet description: `KEY=value`, a bare flag (`DF`, `SYN`), or the
/// bracketed quote of the packet an ICMP error is about.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Pair(&'a str, &'a str),
    Flag(&'a str),
    Quoted,
}

/// Calls `each` on the tokens of the packet description `body` in order: tokens separated by
/// spaces or tabs, spaces allowed at the end. On the first byte where that shape breaks (a
/// token that does not start with a key character or `[`, or a token not followed by a
/// space), returns that byte's offset in `body`, after the tokens before it were handed out.
///
/// A hand-written scanner (no token vector, byte tests) for the grammar the tests hold it to:
/// `all_consuming(terminated(separated_list0(space1, token), space0))` in nom, where `token`
/// is `[…]` (the closing bracket optional), `KEY=value` (the value runs to the next space)
/// or a bare `KEY`, a key being ASCII letters, digits, `_` and `:`.
fn tokens<'a>(body: &'a str, mut each: impl FnMut(Token<'a>)) -> Result<(), usize> {
    let bytes = body.as_bytes();
    let blank = |b: u8| b == b' ' || b == b'\t';
    let key_byte = |b: u8| KEY_BYTES[usize::from(b)];
    let skip_blanks = |mut at: usize| {
        while at < bytes.len() && blank(bytes[at]) {
            at += 1;
        }
        at
    };
    let mut at = 0;
    if bytes.first().copied().is_some_and(blank) {
        // Leading blanks end the (empty) list at once; only blanks may follow.
        let end = skip_blanks(0);
        return if end == bytes.len() { Ok(()) } else { Err(end) };
    }
    while at < bytes.len() {
        let start = at;
        if bytes[at] == b'[' {
            at = memchr::memchr(b']', &bytes[at..]).map_or(bytes.len(), |close| at + close + 1);
            each(Token::Quoted);
        } else {
            while at < bytes.len() && key_byte(bytes[at]) {
                at += 1;
            }
            if at == start {
                return Err(start);
            }
            let key = &body[start..at];
            if bytes.get(at) == Some(&b'=') {
                let value_start = at + 1;
                at = space_from(bytes, value_start);
                each(Token::Pair(key, &body[value_start..at]));
            } else {
                each(Token::Flag(key));
            }
        }
        let next = skip_blanks(at);
        if next == at && at < bytes.len() {
            return Err(at);
        }
        at = next;
    }
    Ok(())
}

/// The offset of the first space in `bytes` from `from` on, or the length. Eight bytes at a
/// time in a word, then byte by byte: values are a few bytes (`TTL=63`), shorter than what a
/// vector search (`memchr`) needs to pay for its set-up, and a byte loop spent 5 % of a
/// netfilter line on them.
fn space_from(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ (ONES * u64::from(b' '));
        // The "has a zero byte" test: its lowest flagged lane is exactly the first zero (a
        // borrow can only flag lanes above a true zero).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return at + zeros.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b == b' ').map_or(bytes.len(), |space| at + space)
}

/// The bytes of a key: ASCII letters and digits, `_` and `:` (one table load per byte, on
/// the scanner's hottest loop).
const KEY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        b += 1;
    }
    table
};

/// Where the packet description starts: the first `IN=` that begins a word (the log prefix
/// is free text and comes right before it, sometimes with no space: `[wan-lan-D]IN=eth0`).
/// Found from the `=` signs, usually the first of the line: a substring searcher built per
/// line (`match_indices`) was 4 % of a netfilter line.
fn packet_start(message: &str) -> Option<usize> {
    let bytes = message.as_bytes();
    let mut from = 0;
    while let Some(eq) = memchr::memchr(b'=', &bytes[from..]).map(|i| from + i) {
        if eq >= 2 && &bytes[eq - 2..eq] == b"IN" && (eq == 2 || matches!(bytes[eq - 3], b' ' | b']' | b':')) {
            return Some(eq - 2);
        }
        from = eq + 1;
    }
    None
}

/// The rule's decision from the log prefix: words such as DROP or ACCEPT, or Ubiquiti's
/// `-D` / `-R` / `-A` suffix (`[WAN_IN-default-D]`). Normalised to `block` / `pass`, the
/// vocabulary every firewall parser uses, so rules need not know the vendor.
fn action_of(prefix: &str) -> Option<&'static str> {
    // Case-insensitive, in place, in one pass: a word's first letter tells its verdict
    // (DROP DENY DENIED REJECT BLOCK; ACCEPT ALLOW PASS PERMIT), so a word is compared only
    // where its letter is. Searching the prefix once per word was 4 % of a netfilter line.
    let bytes = prefix.as_bytes();
    let mut pass = false;
    for (at, &b) in bytes.iter().enumerate() {
        let rest = &bytes[at..];
        let starts = |word: &[u8]| rest.get(..word.len()).is_some_and(|head| head.eq_ignore_ascii_case(word));
        match b {
            b'D' | b'd' if starts(b"DROP") || starts(b"DENY") || starts(b"DENIED") => return Some("block"),
            b'R' | b'r' if starts(b"REJECT") => return Some("block"),
            b'B' | b'b' if starts(b"BLOCK") => return Some("block"),
            // A blocking word anywhere wins over a passing one.
            b'A' | b'a' if !pass => pass = starts(b"ACCEPT") || starts(b"ALLOW"),
            b'P' | b'p' if !pass => pass = starts(b"PASS") || starts(b"PERMIT"),
            _ => {}
        }
    }
    if pass {
        return Some("pass");
    }
    match prefix.rsplit_once('-').map(|(_, s)| s.as_bytes()) {
        Some([b'D' | b'd' | b'R' | b'r']) => Some("block"),
        Some([b'A' | b'a']) => Some("pass"),
        _ => None,
    }
}

/// `[  307.757925]` as the kernel prints its uptime before a message.
fn strip_uptime(text: &str) -> &str {
    let t = text.trim_start();
    if let Some(inner) = t.strip_prefix('[')
        && let Some((stamp, rest)) = inner.split_once(']')
        && !stamp.trim().is_empty()
        && stamp.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return rest.trim_start();
    }
    t
}

pub(crate) fn parse<'a>(line: &'a str, ctx: &ParseContext) -> Result<LineEvent<'a>, ParseError> {
    let text = line.trim_end_matches(['\r', '\n']);
    let (message, env) = syslog::optional_envelope(text, ctx);
    let Some(start) = packet_start(message) else {
        let at = text.len() - message.len();
        return Err(ParseError::at(DATASET, text, at, "a netfilter packet description starting with IN="));
    };
    let mut prefix = strip_uptime(&message[..start]).trim();
    // `kernel:` left in the message when the envelope had no hostname/tag split.
    prefix = prefix.strip_prefix("kernel:").map_or(prefix, str::trim);
    let prefix = prefix.strip_prefix('[').and_then(|p| p.strip_suffix(']')).unwrap_or(prefix);
    let prefix = prefix.trim_end_matches(':').trim();
    let mut prefix = (!prefix.is_empty()).then_some(prefix);
    if prefix.is_none() {
        // `Jan  8 03:37:09 DENY: IN=…`: the envelope took the prefix for a syslog tag.
        prefix = env.as_ref().and_then(|e| e.app).filter(|a| *a != "kernel");
    }

    let mut ev = LineEvent {
        dataset: Cow::Borrowed(DATASET),
        category: Category::Network,
        original: Cow::Borrowed(line),
        timestamp: ctx.now,
        rule_name: prefix.map(Cow::Borrowed),
        action: prefix.and_then(action_of).map(Cow::Borrowed),
        ..LineEvent::default()
    };
    if let Some(env) = &env {
        if let Some((ts, off)) = env.time {
            ev.timestamp = ts;
            ev.utc_offset_seconds = Some(off);
        }
        ev.observer_hostname = env.hostname.map(Cow::Borrowed);
    }

    let body = &message[start..];
    // A description that is not all tokens is reported before a bad value in it: the first
    // bad value is kept, and the remaining tokens only checked.
    let mut bad_value = None;
    let shape = tokens(body, |tok| {
        let Token::Pair(key, value) = tok else { return };
        if bad_value.is_some() {
            return;
        }
        let bad = |what: &'static str| {
            let at = value.as_ptr() as usize - text.as_ptr() as usize;
            Some(ParseError::at(DATASET, text, at, what))
        };
        // Byte patterns: a few compares, where string patterns call `memcmp` per key. Only
        // an error is stored: writing a `Result` back for each of a line's ~15 pairs was a
        // quarter of this closure's own time.
        match *key.as_bytes() {
            [b'I', b'N'] => ev.observer_ingress_interface = (!value.is_empty()).then_some(Cow::Borrowed(value)),
            [b'S', b'R', b'C'] => match ip(value) {
                Some(a) => ev.source_ip = Some(a),
                None => bad_value = bad("an IP address after SRC="),
            },
            [b'D', b'S', b'T'] => match ip(value) {
                Some(a) => ev.destination_ip = Some(a),
                None => bad_value = bad("an IP address after DST="),
            },
            [b'S', b'P', b'T'] => match port(value) {
                Some(p) => ev.source_port = Some(p),
                None => bad_value = bad("a port number after SPT="),
            },
            [b'D', b'P', b'T'] => match port(value) {
                Some(p) => ev.destination_port = Some(p),
                None => bad_value = bad("a port number after DPT="),
            },
            [b'P', b'R', b'O', b'T', b'O'] => ev.transport = Some(transport_name(value)),
            _ => {}
        }
    });
    if let Err(at) = shape {
        let at = text.len() - body.len() + at;
        // What nom's `all_consuming` said of input left over.
        return Err(ParseError::at(DATASET, text, at, nom::error::ErrorKind::Eof.description()));
    }
    if let Some(err) = bad_value {
        return Err(err);
    }
    if ev.source_ip.is_none() {
        return packet_without_source(text, body);
    }
    Ok(ev)
}

/// A description without `SRC=` is truncated (syslog relays cut long lines): better a
/// dead letter than an event that cannot be attributed.
fn packet_without_source(text: &str, body: &str) -> Result<LineEvent<'static>, ParseError> {
    Err(ParseError::at(DATASET, text, text.len() - body.len(), "a SRC= address in the packet description"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        crate::parse::test_context("UTC")
    }

    /// The nom grammar `tokens` was written from, as the reference it is tested against.
    mod reference {
        use nom::Parser as _;
        use nom::bytes::complete::{take_till, take_while1};
        use nom::character::complete::{char, space0, space1};
        use nom::combinator::{all_consuming, opt, recognize};
        use nom::multi::separated_list0;
        use nom::sequence::terminated;

        use super::super::Token;
        use crate::parse::common::{PErr, Res};

        fn token(input: &str) -> Res<'_, Token<'_>> {
            if input.starts_with('[') {
                let (rest, _) = recognize((char('['), take_till(|c| c == ']'), opt(char(']')))).parse(input)?;
                return Ok((rest, Token::Quoted));
            }
            let (rest, key) = take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')(input)
                .map_err(|_: nom::Err<PErr<'_>>| nom::Err::Error(PErr::new(input, "KEY=value or a flag")))?;
            if let Some(after) = rest.strip_prefix('=') {
                let (rest, value) = take_till(|c| c == ' ')(after)?;
                return Ok((rest, Token::Pair(key, value)));
            }
            Ok((rest, Token::Flag(key)))
        }

        /// The tokens, or the offset where nom stopped and what it said.
        pub(super) fn tokens(body: &str) -> Result<Vec<Token<'_>>, (usize, String)> {
            match all_consuming(terminated(separated_list0(space1, token), space0)).parse(body) {
                Ok((_, tokens)) => Ok(tokens),
                Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                    Err((body.len() - e.input.len(), e.expected.into_owned()))
                }
                Err(nom::Err::Incomplete(_)) => unreachable!("complete parsers"),
            }
        }
    }

    fn scanned(body: &str) -> (Vec<Token<'_>>, Result<(), usize>) {
        let mut seen = Vec::new();
        let shape = tokens(body, |t| seen.push(t));
        (seen, shape)
    }

    #[test]
    fn tokens_agree_with_the_nom_grammar_on_edge_cases() {
        for body in [
            "",
            " ",
            "IN=eth0 OUT= SRC=1.2.3.4 ",
            "IN=eth0  \t DF\tSYN",
            " IN=eth0",
            "IN=eth0 -x",
            "IN=eth0 SYN-x",
            "IN=a\tb c",
            "IN=\t -",
            "IN=eth0 [SRC=1 DST=2 ] URGP=0",
            "IN=eth0 [SRC=1 DST=2",
            "IN=eth0 [x]y",
            "IN=eth0 =x",
            "IN=é",
            "IN=eth0 é",
            "A:B=1 _=2",
        ] {
            let (seen, shape) = scanned(body);
            match reference::tokens(body) {
                Ok(expected) => assert_eq!((seen, shape), (expected, Ok(())), "{body:?}"),
                Err((at, what)) => {
                    assert_eq!(shape, Err(at), "{body:?}");
                    assert_eq!(what, nom::error::ErrorKind::Eof.description(), "{body:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// Any text made of the description's pieces: the tokens nom finds, or the place it
        /// stops, with every token before that place handed out.
        #[test]
        fn tokens_agree_with_the_nom_grammar(body in r"((IN|SRC|A_1|x:y|DF|\[|\]|=|[ \t]|[a-z0-9.]|-|é)){0,40}") {
            let (seen, shape) = scanned(&body);
            match reference::tokens(&body) {
                Ok(expected) => {
                    proptest::prop_assert_eq!(shape, Ok(()));
                    proptest::prop_assert_eq!(seen, expected);
                }
                Err((at, what)) => {
                    proptest::prop_assert_eq!(shape, Err(at));
                    proptest::prop_assert_eq!(what, nom::error::ErrorKind::Eof.description());
                    let before = reference::tokens(&body[..at]);
                    proptest::prop_assert_eq!(Ok(seen), before);
                }
            }
        }
    }

    #[test]
    fn iptables_tcp_with_prefix_and_syslog() {
        let line = "Jan  8 03:37:09 example-host kernel: iptables DROP_INPUT: IN=eth0 OUT= MAC=90:10:35:5a:1e:3a:90:10:9e:ec:2c:71:08:00 SRC=81.2.69.143 DST=172.16.54.114 LEN=52 TOS=0x00 PREC=0x00 TTL=115 ID=15743 DF PROTO=TCP SPT=17805 DPT=445 WINDOW=8192 RES=0x00 SYN URGP=0 ";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.timestamp.to_string(), "2025-01-08T03:37:09Z");
        assert_eq!(ev.observer_hostname.as_deref(), Some("example-host"));
        assert_eq!(ev.rule_name.as_deref(), Some("iptables DROP_INPUT"));
        assert_eq!(ev.action.as_deref(), Some("block"));
        assert_eq!(ev.observer_ingress_interface.as_deref(), Some("eth0"));
        assert_eq!(ev.source_ip, Some("81.2.69.143".parse().unwrap()));
        assert_eq!((ev.source_port, ev.destination_port), (Some(17805), Some(445)));
        assert_eq!(ev.transport.as_deref(), Some("tcp"));
        assert_eq!(ev.original, line);
    }

    #[test]
    fn icmp_error_quote_does_not_override_outer_packet() {
        let line = "Jan  8 03:37:09 DENY: IN=eth0 OUT= MAC=90:10:28:5f:62:24:90:10:18:5a:89:2a:08:00 SRC=192.168.2.71 DST=192.168.2.83 LEN=88 TOS=0x00 PREC=0x00 TTL=118 ID=21684 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.168.2.83 DST=192.168.173.191 LEN=60 TOS=0x00 PREC=0x00 TTL=54 ID=0 DF PROTO=UDP SPT=21458 DPT=62936 LEN=40 ]";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.source_ip, Some("192.168.2.71".parse().unwrap()));
        assert_eq!(ev.destination_ip, Some("192.168.2.83".parse().unwrap()));
        assert_eq!((ev.source_port, ev.destination_port), (None, None));
        assert_eq!(ev.transport.as_deref(), Some("icmp"));
        assert_eq!(ev.rule_name.as_deref(), Some("DENY"));
        assert_eq!(ev.action.as_deref(), Some("block"));
    }

    #[test]
    fn ipv6_with_kernel_uptime_and_no_prefix() {
        let line = "Jan 22 09:05:05 ubuntu-bionic kernel: [16571.459614] IN= OUT=lo SRC=2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6 DST=2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=868225 PROTO=ICMPv6 TYPE=128 CODE=0 ID=3427 SEQ=1 ";
        let ev = parse(line, &ctx()).unwrap();
        assert_eq!(ev.rule_name, None);
        assert_eq!(ev.action, None);
        assert_eq!(ev.observer_ingress_interface, None);
        assert_eq!(ev.transport.as_deref(), Some("ipv6-icmp"));
        assert_eq!(ev.source_ip, Some("2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6".parse().unwrap()));
    }

    #[test]
    fn bare_kernel_line_and_ubiquiti_prefix() {
        let ev = parse("[wan-lan-default-D]IN=eth0 OUT= SRC=67.43.156.15 DST=10.4.0.5 LEN=52 PROTO=TCP SPT=38842 DPT=443 ACK URGP=0", &ctx()).unwrap();
        assert_eq!(ev.timestamp, ctx().now);
        assert_eq!(ev.utc_offset_seconds, None);
        assert_eq!(ev.rule_name.as_deref(), Some("wan-lan-default-D"));
        assert_eq!(ev.action.as_deref(), Some("block"));
        let ev = parse("nft ACCEPT ssh: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 PROTO=UDP SPT=1 DPT=2", &ctx()).unwrap();
        assert_eq!(ev.action.as_deref(), Some("pass"));
        assert_eq!(action_of("LAN_LOCAL-default-A"), Some("pass"));
        assert_eq!(action_of("WAN_IN-20-R"), Some("block"));
        assert_eq!(action_of("audit"), None);
    }

    /// `action_of` as first written, on an upper-cased copy: the oracle of the in-place one.
    fn action_of_upper_cased(prefix: &str) -> Option<&'static str> {
        let upper = prefix.to_ascii_uppercase();
        const BLOCK: [&str; 5] = ["DROP", "DENY", "REJECT", "BLOCK", "DENIED"];
        const PASS: [&str; 4] = ["ACCEPT", "ALLOW", "PASS", "PERMIT"];
        if BLOCK.iter().any(|w| upper.contains(w)) {
            return Some("block");
        }
        if PASS.iter().any(|w| upper.contains(w)) {
            return Some("pass");
        }
        match upper.rsplit_once('-').map(|(_, s)| s) {
            Some("D" | "R") => Some("block"),
            Some("A") => Some("pass"),
            _ => None,
        }
    }

    proptest::proptest! {
        /// Any text with spaces anywhere, from any offset: the first space, as a byte loop
        /// finds it.
        #[test]
        fn space_from_finds_the_first_space(text in "[ a=\u{80}-\u{ff}]{0,40}", from in 0usize..41) {
            let bytes = text.as_bytes();
            let from = from.min(bytes.len());
            let want = bytes[from..].iter().position(|&b| b == b' ').map_or(bytes.len(), |i| from + i);
            proptest::prop_assert_eq!(space_from(bytes, from), want);
        }
    }

    #[test]
    fn the_packet_starts_at_the_first_in_that_begins_a_word() {
        assert_eq!(packet_start("IN=eth0 OUT="), Some(0));
        assert_eq!(packet_start("[wan-lan-D]IN=eth0 OUT="), Some(11));
        assert_eq!(packet_start("kernel:IN=eth0"), Some(7));
        // `LOGIN=` and `=IN=` in the prefix are not the start; the later word is.
        assert_eq!(packet_start("LOGIN=x a=IN=b DROP IN=eth0"), Some(20));
        assert_eq!(packet_start("IN"), None);
        assert_eq!(packet_start("=IN"), None);
        assert_eq!(packet_start("no packet here"), None);
    }

    #[test]
    fn action_words_are_found_in_any_case() {
        for (prefix, want) in [
            ("iptables drop_input", Some("block")),
            ("Denied-A", Some("block")),
            ("nft Accept", Some("pass")),
            ("lan-local-a", Some("pass")),
            ("wan_in-20-r", Some("block")),
            ("wan_in-20-x", None),
            ("D", None),
            ("-", None),
            ("", None),
            ("pérmit", None),
        ] {
            assert_eq!(action_of(prefix), want, "{prefix:?}");
            assert_eq!(action_of(prefix), action_of_upper_cased(prefix), "{prefix:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn action_of_agrees_with_the_upper_cased_search(
            prefix in r"([a-zA-Z_ -]|drop|DrOp|deny|reject|block|denied|accept|allow|pass|permit|-[dDrRaA]|é){0,8}",
        ) {
            proptest::prop_assert_eq!(action_of(&prefix), action_of_upper_cased(&prefix));
        }
    }

    #[test]
    fn rejects_other_lines_and_bad_values_with_column() {
        let err = parse("Jan  8 03:37:09 host sshd[1]: Accepted password", &ctx()).unwrap_err();
        assert!(err.expected().contains("IN="), "{err}");
        let line = "IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 PROTO=TCP SPT=99999 DPT=2";
        let err = parse(line, &ctx()).unwrap_err();
        assert_eq!(err.column(), line.find("99999").unwrap() + 1);
        assert_eq!(err.expected(), "a port number after SPT=");
        let err = parse("IN=eth0 OUT= TTL=1 PROTO=TCP", &ctx()).unwrap_err();
        assert!(err.expected().contains("SRC="), "{err}");
    }
}
