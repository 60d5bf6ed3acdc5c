//! The hot path of `vigie parse`: an [`Event`] written as nested ECS JSON straight into a
//! byte buffer.
//!
//! The document is the one `serde_json` writes from [`super::ecs::Doc`], byte for byte (a
//! property test holds the two together): same key order, absent fields and empty objects
//! left out, the same string escapes (RFC 8259 §7: `\"`, `\\`, the short forms of `\b \f \n
//! \r \t`, `\u00XX` for the other control characters, everything else as is). What makes it
//! faster than the generic serializer: keys written as constants, empty objects undone by
//! truncating the buffer instead of tested field by field first, integers through `itoa`,
//! `url.original` written from path and query without joining them first, and strings
//! scanned for characters to escape eight bytes at a time (a log line rarely has any).

use std::io::Write as _;
use std::net::IpAddr;

use super::{Category, Event};

/// Appends `event`'s nested ECS document (no trailing newline) to `out`.
pub(super) fn write(event: &Event, out: &mut Vec<u8>) {
    let e = event;
    let mut w = Writer { out, first: true };
    w.out.push(b'{');
    w.key(b"\"@timestamp\":");
    // jiff's RFC 3339 printer (fraction only when non-zero), as its `Serialize` writes it.
    w.out.push(b'"');
    write!(w.out, "{}", e.timestamp).expect("writing to memory cannot fail");
    w.out.push(b'"');

    let event = w.open(b"\"event\":{");
    w.string(b"\"id\":", Some(e.id.as_str()));
    w.string(b"\"dataset\":", Some(&e.dataset));
    w.string(
        b"\"category\":",
        Some(match e.category {
            Category::Web => "web",
            Category::Network => "network",
            Category::Diagnostic => "diagnostic",
        }),
    );
    w.string(b"\"action\":", e.action.as_deref());
    w.unsigned(b"\"duration\":", e.duration_ns);
    if let Some(offset) = e.utc_offset_seconds {
        w.key(b"\"timezone_offset_seconds\":");
        w.out.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
    }
    w.string(b"\"original\":", Some(&e.original));
    w.close(event);

    let source = w.open(b"\"source\":{");
    w.ip(b"\"ip\":", e.source_ip);
    w.unsigned(b"\"port\":", e.source_port.map(u64::from));
    w.unsigned(b"\"bytes\":", e.source_bytes);
    let geo = w.open(b"\"geo\":{");
    w.string(b"\"country_iso_code\":", e.source_country.as_deref());
    w.string(b"\"city_name\":", e.source_city.as_deref());
    w.close(geo);
    let autonomous_system = w.open(b"\"as\":{");
    w.unsigned(b"\"number\":", e.source_as_number.map(u64::from));
    let organization = w.open(b"\"organization\":{");
    w.string(b"\"name\":", e.source_as_organization.as_deref());
    w.close(organization);
    w.close(autonomous_system);
    w.close(source);

    let destination = w.open(b"\"destination\":{");
    w.ip(b"\"ip\":", e.destination_ip);
    w.unsigned(b"\"port\":", e.destination_port.map(u64::from));
    w.unsigned(b"\"bytes\":", e.destination_bytes);
    w.close(destination);

    let network = w.open(b"\"network\":{");
    w.string(b"\"transport\":", e.transport.as_deref());
    w.close(network);

    let user = w.open(b"\"user\":{");
    w.string(b"\"name\":", e.user_name.as_deref());
    w.string(b"\"roles\":", e.user_role.as_deref());
    w.close(user);

    let http = w.open(b"\"http\":{");
    let request = w.open(b"\"request\":{");
    w.string(b"\"method\":", e.http_method.as_deref());
    w.string(b"\"referrer\":", e.http_referrer.as_deref());
    w.close(request);
    let response = w.open(b"\"response\":{");
    w.unsigned(b"\"status_code\":", e.http_status.map(u64::from));
    w.close(response);
    w.string(b"\"version\":", e.http_version.as_deref());
    w.close(http);

    let url = w.open(b"\"url\":{");
    if let Some(path) = &e.url_path {
        w.key(b"\"original\":");
        w.out.push(b'"');
        escape(w.out, path.as_bytes());
        if let Some(query) = &e.url_query {
            w.out.push(b'?');
            escape(w.out, query.as_bytes());
        }
        w.out.push(b'"');
    }
    w.string(b"\"path\":", e.url_path.as_deref());
    w.string(b"\"query\":", e.url_query.as_deref());
    w.close(url);

    let user_agent = w.open(b"\"user_agent\":{");
    w.string(b"\"original\":", e.user_agent.as_deref());
    w.close(user_agent);

    let observer = w.open(b"\"observer\":{");
    w.string(b"\"hostname\":", e.observer_hostname.as_deref());
    let ingress = w.open(b"\"ingress\":{");
    let interface = w.open(b"\"interface\":{");
    w.string(b"\"name\":", e.observer_ingress_interface.as_deref());
    w.close(interface);
    w.close(ingress);
    w.close(observer);

    let rule = w.open(b"\"rule\":{");
    w.string(b"\"name\":", e.rule_name.as_deref());
    w.close(rule);

    let log = w.open(b"\"log\":{");
    w.string(b"\"level\":", e.log_level.as_deref());
    w.close(log);

    w.string(b"\"message\":", e.message.as_deref());

    let organization = w.open(b"\"organization\":{");
    w.string(b"\"id\":", e.school_uai.as_deref());
    w.string(b"\"name\":", e.school_name.as_deref());
    w.close(organization);

    w.out.push(b'}');
}

/// An object being written: `first` is true until a member is written in it.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

/// Where an opened object began, to undo it if it stays empty.
struct Opened {
    start: usize,
    parent_first: bool,
}

impl Writer<'_> {
    /// Writes the separator, then `key` (already quoted, with its colon).
    #[inline(always)]
    fn key(&mut self, key: &[u8]) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(key);
    }

    /// Opens a nested object (`key` ends with its `{`).
    #[inline(always)]
    fn open(&mut self, key: &[u8]) -> Opened {
        let opened = Opened { start: self.out.len(), parent_first: self.first };
        self.key(key);
        self.first = true;
        opened
    }

    /// Closes the object `opened` began; one with no member is removed, key and all.
    #[inline(always)]
    fn close(&mut self, opened: Opened) {
        if self.first {
            self.out.truncate(opened.start);
            self.first = opened.parent_first;
        } else {
            self.out.push(b'}');
            self.first = false;
        }
    }

    #[inline(always)]
    fn string(&mut self, key: &[u8], value: Option<&str>) {
        if let Some(value) = value {
            self.key(key);
            self.out.push(b'"');
            escape(self.out, value.as_bytes());
            self.out.push(b'"');
        }
    }

    #[inline(always)]
    fn unsigned(&mut self, key: &[u8], value: Option<u64>) {
        if let Some(value) = value {
            self.key(key);
            self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    fn ip(&mut self, key: &[u8], value: Option<IpAddr>) {
        match value {
            None => {}
            Some(IpAddr::V4(ip)) => {
                self.key(key);
                self.out.push(b'"');
                let mut digits = itoa::Buffer::new();
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    self.out.extend_from_slice(digits.format(octet).as_bytes());
                }
                self.out.push(b'"');
            }
            Some(IpAddr::V6(ip)) => {
                self.key(key);
                // RFC 5952's text form (`::` for the longest run of zeros), as `Display` writes it.
                write!(self.out, "\"{ip}\"").expect("writing to memory cannot fail");
            }
        }
    }
}

const LANES: usize = 8;
const ONES: u64 = u64::from_ne_bytes([0x01; LANES]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; LANES]);

/// The lanes of `word` holding a byte below 0x20, a `"` or a `\` (the bytes JSON escapes)
/// have their high bit set in the result; zero when there is none. Each test is the "some
/// byte is zero / below n" bit trick (n ≤ 0x80): a byte of 0x80 or more never sets its lane,
/// and the lowest set lane is always a real one (a borrow only runs upwards, so lanes above
/// a real one may be set falsely — which is why callers only trust the lowest).
fn escape_lanes(word: u64) -> u64 {
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS
}

/// Appends `text` with JSON's escapes (without the quotes).
fn escape(out: &mut Vec<u8>, text: &[u8]) {
    let mut clean = 0; // text[clean..] is still to copy
    let mut i = 0;
    loop {
        // The next byte to escape: eight at a time, then the tail byte by byte.
        let found = loop {
            match text.get(i..i + LANES) {
                Some(word) => {
                    let lanes = escape_lanes(u64::from_le_bytes(word.try_into().expect("eight bytes")));
                    if lanes != 0 {
                        break Some(i + lanes.trailing_zeros() as usize / 8);
                    }
                    i += LANES;
                }
                None => break text[i..].iter().position(|&b| escaped_byte(b)).map(|at| i + at),
            }
        };
        let Some(at) = found else { break };
        out.extend_from_slice(&text[clean..at]);
        write_escape(out, text[at]);
        i = at + 1;
        clean = i;
    }
    out.extend_from_slice(&text[clean..]);
}

fn escaped_byte(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The escape of one byte `escaped_byte` accepts.
fn write_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let letter = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', letter]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        escape(&mut out, text.as_bytes());
        String::from_utf8(out).unwrap()
    }

    fn serde_escaped(text: &str) -> String {
        let quoted = serde_json::to_string(text).unwrap();
        quoted[1..quoted.len() - 1].to_owned()
    }

    #[test]
    fn escapes_what_serde_json_escapes() {
        for text in [
            "",
            "plain",
            "exactly8",
            "\"",
            "\\",
            "a\"b\\c",
            "tab\there, newline\n, cr\r, bell\u{7}, nul\u{0}, unit\u{1f}, del\u{7f}",
            "\u{8}\u{c}",
            "GET /index.php?id=1%27%20OR%20%271%27=%271 HTTP/1.1",
            "été « à » 日本 \u{10348}",
            "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
            "0123456789abcdef\"0123456789abcdef\\0123456789",
        ] {
            assert_eq!(escaped(text), serde_escaped(text), "{text:?}");
        }
    }

    #[test]
    fn every_byte_position_of_a_word_is_checked() {
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
            for at in 0..20 {
                let mut text = "x".repeat(20);
                text.replace_range(at..=at, &special.to_string());
                assert_eq!(escaped(&text), serde_escaped(&text), "{special:?} at {at}");
            }
        }
    }

    #[test]
    fn bytes_that_never_need_an_escape_are_not_flagged() {
        for byte in 0u8..=255 {
            let word = u64::from_ne_bytes([byte; LANES]);
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
            assert_eq!(escape_lanes(word) != 0, expected, "{byte:#x}");
            // Alone among harmless bytes, in every lane.
            for lane in 0..LANES {
                let mut bytes = [b'a'; LANES];
                bytes[lane] = byte;
                let lanes = escape_lanes(u64::from_le_bytes(bytes));
                assert_eq!(lanes != 0, expected, "{byte:#x} in lane {lane}");
                if expected {
                    assert_eq!(lanes.trailing_zeros() as usize / 8, lane, "{byte:#x} in lane {lane}");
                }
            }
        }
    }
}
