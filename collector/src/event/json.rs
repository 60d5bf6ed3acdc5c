//! The hot path of `vigie parse`: an event written as nested ECS JSON straight into a
//! byte buffer.
//!
//! The document is the one `serde_json` writes from [`super::ecs::Doc`], byte for byte (a
//! property test holds the two together): same key order, absent fields and empty objects
//! left out, the same string escapes (RFC 8259 §7: `\"`, `\\`, the short forms of `\b \f \n
//! \r \t`, `\u00XX` for the other control characters, everything else as is). What makes it
//! faster than the generic serializer: keys written as constants, empty objects undone by
//! truncating the buffer instead of tested field by field first (except the groups many
//! events leave empty, enrichment, firewall and web fields, skipped on a test of their
//! fields rather than written and truncated), integers through `itoa`,
//! `url.original` written from path and query without joining them first, strings scanned
//! for characters to escape 16 bytes at a time, one bit per byte to escape, and the strings
//! that are slices of the original line (most of them) not scanned at all: the line's own
//! scan said where its bytes to escape are.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wide::u8x16;

use super::{Category, LineEvent};
use crate::parse::civil_from_days;

/// Appends `event`'s nested ECS document (no trailing newline) to `out`: what
/// [`super::Event::write_ecs_json`] writes of the event [`LineEvent::into_event`] makes.
pub(crate) fn write(event: &LineEvent<'_>, out: &mut Vec<u8>) {
    write_with_id(event, None, out);
}

/// An event id `<source>:<line>` as the writer puts it in a document: the source escaped once
/// (`vigie parse` makes one per chunk of a file), the line number appended per line.
/// Formatting the id into a string and then escaping it cost two percent of a parsed line.
#[derive(Debug, Clone)]
pub struct JsonId {
    /// The escaped source and its colon, then the current line number.
    escaped: Vec<u8>,
    /// Where the line number starts.
    prefix: usize,
}

impl JsonId {
    /// The ids of `source`'s lines (line 0 until [`JsonId::set_line`]).
    pub fn new(source: &str) -> Self {
        let mut escaped = Vec::with_capacity(source.len() + 21);
        escape(&mut escaped, source.as_bytes());
        escaped.push(b':');
        let prefix = escaped.len();
        let mut id = JsonId { escaped, prefix };
        id.set_line(0);
        id
    }

    /// Makes this the id of line `line`: `<source>:<line>`, as [`crate::EventId::at`] makes it.
    pub fn set_line(&mut self, line: u64) {
        self.escaped.truncate(self.prefix);
        self.escaped.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
    }
}

/// [`write`], with `event.id` replaced by `id` when there is one.
pub(crate) fn write_with_id(event: &LineEvent<'_>, id: Option<&JsonId>, out: &mut Vec<u8>) {
    let e = event;
    let mut w = Writer { out, first: true, original: Original::default() };
    w.out.push(b'{');
    w.key(b"\"@timestamp\":");
    w.out.push(b'"');
    timestamp(w.out, e.timestamp);
    w.out.push(b'"');

    let event = w.open(b"\"event\":{");
    match id {
        Some(id) => {
            w.key(b"\"id\":\"");
            w.out.extend_from_slice(&id.escaped);
            w.out.push(b'"');
        }
        None => w.string(b"\"id\":", Some(&e.id)),
    }
    w.string(b"\"dataset\":", Some(&e.dataset));
    // Constants with nothing to escape.
    w.key(b"\"category\":");
    w.out.extend_from_slice(match e.category {
        Category::Web => b"\"web\"",
        Category::Network => b"\"network\"",
        Category::Diagnostic => b"\"diagnostic\"",
    });
    w.string(b"\"action\":", e.action.as_deref());
    w.unsigned(b"\"duration\":", e.duration_ns);
    if let Some(offset) = e.utc_offset_seconds {
        w.key(b"\"timezone_offset_seconds\":");
        w.out.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
    }
    w.original(&e.original);
    w.close(event);

    let source = w.open(b"\"source\":{");
    w.ip(b"\"ip\":", e.source_ip);
    w.unsigned(b"\"port\":", e.source_port.map(u64::from));
    w.unsigned(b"\"bytes\":", e.source_bytes);
    // Enrichment fields, absent from most events: tested before their objects are opened.
    if e.source_country.is_some() || e.source_city.is_some() {
        let geo = w.open(b"\"geo\":{");
        w.string(b"\"country_iso_code\":", e.source_country.as_deref());
        w.string(b"\"city_name\":", e.source_city.as_deref());
        w.close(geo);
    }
    if e.source_as_number.is_some() || e.source_as_organization.is_some() {
        let autonomous_system = w.open(b"\"as\":{");
        w.unsigned(b"\"number\":", e.source_as_number.map(u64::from));
        let organization = w.open(b"\"organization\":{");
        w.string(b"\"name\":", e.source_as_organization.as_deref());
        w.close(organization);
        w.close(autonomous_system);
    }
    w.close(source);

    let destination = w.open(b"\"destination\":{");
    w.ip(b"\"ip\":", e.destination_ip);
    w.unsigned(b"\"port\":", e.destination_port.map(u64::from));
    w.unsigned(b"\"bytes\":", e.destination_bytes);
    w.close(destination);

    if let Some(transport) = e.transport.as_deref() {
        let network = w.open(b"\"network\":{");
        w.string(b"\"transport\":", Some(transport));
        w.close(network);
    }

    if e.user_name.is_some() || e.user_role.is_some() {
        let user = w.open(b"\"user\":{");
        w.string(b"\"name\":", e.user_name.as_deref());
        w.string(b"\"roles\":", e.user_role.as_deref());
        w.close(user);
    }

    // The web groups, absent from firewall events: tested before their objects are opened.
    if e.http_method.is_some() || e.http_referrer.is_some() || e.http_status.is_some() || e.http_version.is_some() {
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
    }

    if e.url_path.is_some() || e.url_query.is_some() {
        let url = w.open(b"\"url\":{");
        if let Some(path) = &e.url_path {
            w.key(b"\"original\":");
            w.out.push(b'"');
            let path_start = w.out.len();
            w.text(path.as_bytes());
            let path_escaped = path_start..w.out.len();
            let query_escaped = e.url_query.as_ref().map(|query| {
                w.out.push(b'?');
                let query_start = w.out.len();
                w.text(query.as_bytes());
                query_start..w.out.len()
            });
            w.out.push(b'"');
            // Path and query again: their escaped text was just written, so it is copied
            // rather than scanned a second time.
            w.copied_string(b"\"path\":", path_escaped);
            if let Some(query_escaped) = query_escaped {
                w.copied_string(b"\"query\":", query_escaped);
            }
        } else {
            w.string(b"\"query\":", e.url_query.as_deref());
        }
        w.close(url);
    }

    if let Some(agent) = e.user_agent.as_deref() {
        let user_agent = w.open(b"\"user_agent\":{");
        w.string(b"\"original\":", Some(agent));
        w.close(user_agent);
    }

    if e.observer_hostname.is_some() || e.observer_ingress_interface.is_some() {
        let observer = w.open(b"\"observer\":{");
        w.string(b"\"hostname\":", e.observer_hostname.as_deref());
        if e.observer_ingress_interface.is_some() {
            let ingress = w.open(b"\"ingress\":{");
            let interface = w.open(b"\"interface\":{");
            w.string(b"\"name\":", e.observer_ingress_interface.as_deref());
            w.close(interface);
            w.close(ingress);
        }
        w.close(observer);
    }

    if let Some(rule) = e.rule_name.as_deref() {
        let opened = w.open(b"\"rule\":{");
        w.string(b"\"name\":", Some(rule));
        w.close(opened);
    }

    if let Some(level) = e.log_level.as_deref() {
        let log = w.open(b"\"log\":{");
        w.string(b"\"level\":", Some(level));
        w.close(log);
    }

    w.string(b"\"message\":", e.message.as_deref());

    if e.school_uai.is_some() || e.school_name.is_some() {
        let organization = w.open(b"\"organization\":{");
        w.string(b"\"id\":", e.school_uai.as_deref());
        w.string(b"\"name\":", e.school_name.as_deref());
        w.close(organization);
    }

    w.out.push(b'}');
}

/// Seconds from the epoch to 10000-01-01T00:00:00Z: below it (and from the epoch on) a
/// time has a four-digit year.
const YEAR_10000: i64 = 253_402_300_800;

/// Appends `at` as jiff's RFC 3339 printer writes it (its `Display`, which its `Serialize`
/// uses): `2000-10-10T20:55:36Z`, with the fraction of a second only when it is not zero and
/// without trailing zeros (`.578288`). Every log time since 1970 is written here by hand
/// (jiff's general printer is a tenth of a parsed line's cost); other times go to jiff.
fn timestamp(out: &mut Vec<u8>, at: jiff::Timestamp) {
    let seconds = at.as_second();
    let nanos = at.subsec_nanosecond();
    if !(0..YEAR_10000).contains(&seconds) || nanos < 0 {
        write!(out, "{at}").expect("writing to memory cannot fail");
        return;
    }
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    let two = |n: i64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    let [y0, y1] = two(year / 100);
    let [y2, y3] = two(year % 100);
    let [mo0, mo1] = two(month);
    let [d0, d1] = two(day);
    let [h0, h1] = two(of_day / 3600);
    let [mi0, mi1] = two(of_day / 60 % 60);
    let [s0, s1] = two(of_day % 60);
    out.extend_from_slice(&[y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0, s1]);
    if nanos != 0 {
        let mut fraction = [b'.'; 10];
        let mut rest = nanos;
        for digit in fraction[1..].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let end = fraction.iter().rposition(|&b| b != b'0').map_or(fraction.len(), |i| i + 1);
        out.extend_from_slice(&fraction[..end]);
    }
    out.push(b'Z');
}

/// An object being written: `first` is true until a member is written in it.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    /// The original line once written, for the fields that are slices of it.
    original: Original,
}

/// Where the original line is in memory and where it had bytes to escape: nearly every other
/// string of a parsed event (address, path, user agent, rule name...) is a slice of that
/// line, and such a slice needs an escape exactly where the line had one in its range. A
/// slice with none in its range is copied as it is, without a second scan. Past
/// [`Original::KEPT`] escapes, slices are scanned as any string is.
#[derive(Default)]
struct Original {
    /// The line's address and length (empty until it is written).
    start: usize,
    len: usize,
    /// The offsets in the line of its first `count` bytes to escape (ascending).
    escapes: [u32; Original::KEPT],
    count: usize,
    /// More escapes than kept: every slice is scanned.
    overflow: bool,
}

impl Original {
    /// Escapes noted; an Apache line has six quotes, a firewall line usually none.
    const KEPT: usize = 16;

    fn note(&mut self, at: usize) {
        match u32::try_from(at) {
            Ok(at) if self.count < Self::KEPT => {
                self.escapes[self.count] = at;
                self.count += 1;
            }
            _ => self.overflow = true,
        }
    }

    /// Whether `text` lies within the line and holds none of its bytes to escape. Only
    /// addresses are compared: a string that is not a slice of the line is another live
    /// allocation (or empty), so it cannot fall inside the line's bytes.
    #[inline(always)]
    fn clean_slice(&self, text: &[u8]) -> bool {
        let offset = (text.as_ptr() as usize).wrapping_sub(self.start);
        if self.overflow || offset > self.len || text.len() > self.len - offset {
            return false;
        }
        let end = offset + text.len();
        !self.escapes[..self.count].iter().any(|&at| (offset..end).contains(&(at as usize)))
    }
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
            self.text(value.as_bytes());
            self.out.push(b'"');
        }
    }

    /// `text` escaped; copied as it is when it is a slice of the original line without a
    /// byte to escape.
    #[inline(always)]
    fn text(&mut self, text: &[u8]) {
        if self.original.clean_slice(text) {
            self.out.extend_from_slice(text);
        } else {
            escape(self.out, text);
        }
    }

    /// `event.original`: escaped, noting where, for [`Writer::text`].
    fn original(&mut self, line: &str) {
        self.key(b"\"original\":");
        self.out.push(b'"');
        let mut original = Original { start: line.as_ptr() as usize, len: line.len(), ..Original::default() };
        escape_noting(self.out, line.as_bytes(), |at| original.note(at));
        self.original = original;
        self.out.push(b'"');
    }

    /// A string member whose value is the already escaped text at `escaped` in the output.
    #[inline(always)]
    fn copied_string(&mut self, key: &[u8], escaped: std::ops::Range<usize>) {
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_within(escaped);
        self.out.push(b'"');
    }

    #[inline(always)]
    fn unsigned(&mut self, key: &[u8], value: Option<u64>) {
        if let Some(value) = value {
            self.key(key);
            self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    fn ip(&mut self, key: &[u8], value: Option<IpAddr>) {
        if let Some(ip) = value {
            self.key(key);
            self.out.push(b'"');
            match ip {
                IpAddr::V4(ip) => ipv4(self.out, ip),
                IpAddr::V6(ip) => ipv6(self.out, ip),
            }
            self.out.push(b'"');
        }
    }
}

/// Appends `ip` as its `Display` writes it (dotted decimal), digit by digit into one small
/// array: four `itoa` calls and copies were 4 % of a netfilter line.
fn ipv4(out: &mut Vec<u8>, ip: Ipv4Addr) {
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    out.extend_from_slice(&text[..len]);
}

/// Appends `ip` as its `Display` writes it: RFC 5952's text form, lower-case groups without
/// leading zeros, `::` for the first longest run of two zero groups or more, and
/// `::ffff:a.b.c.d` for an IPv4-mapped address (a property test holds the two together).
/// Written by hand: `Display` through `fmt::Write` cost three times what reading the
/// address did, 4 % of a netfilter line where IPv6 lines are one in twelve.
fn ipv6(out: &mut Vec<u8>, ip: Ipv6Addr) {
    if let Some(v4) = ip.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        ipv4(out, v4);
        return;
    }
    let groups = ip.segments();
    // The first longest run of zero groups: (start, length).
    let (mut zeros, mut run) = ((0, 0), (0, 0));
    for (i, &group) in groups.iter().enumerate() {
        if group != 0 {
            run = (i + 1, 0);
            continue;
        }
        run.1 += 1;
        if run.1 > zeros.1 {
            zeros = run;
        }
    }
    let hex = |out: &mut Vec<u8>, group: u16| {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = [group >> 12, (group >> 8) & 0xf, (group >> 4) & 0xf, group & 0xf].map(|d| HEX[usize::from(d)]);
        let skip = (group.leading_zeros() as usize / 4).min(3);
        out.extend_from_slice(&digits[skip..]);
    };
    let joined = |out: &mut Vec<u8>, groups: &[u16]| {
        for (i, &group) in groups.iter().enumerate() {
            if i > 0 {
                out.push(b':');
            }
            hex(out, group);
        }
    };
    if zeros.1 > 1 {
        joined(out, &groups[..zeros.0]);
        out.extend_from_slice(b"::");
        joined(out, &groups[zeros.0 + zeros.1..]);
    } else {
        joined(out, &groups);
    }
}

/// Bytes examined together by [`escape`]'s scan: one SSE2 register.
const BLOCK: usize = 16;

/// One bit per byte of `block` that JSON escapes (below 0x20, `"` or `\\`), bit `i` for byte
/// `i`: three compares and a `pmovmskb` on one register (SSE2, on every x86-64; `wide` has a
/// portable version elsewhere). The bits then lead straight to each byte to escape. The
/// portable loop this replaced had the compiler test a 32-byte block and then eight-byte
/// words of every block that had such a byte, which every Apache line has (its six quotes).
#[inline(always)]
fn escape_mask(block: &[u8; BLOCK]) -> u32 {
    let bytes = u8x16::new(*block);
    let quote = bytes.simd_eq(u8x16::splat(b'"'));
    let backslash = bytes.simd_eq(u8x16::splat(b'\\'));
    // Below 0x20 exactly when subtracting 0x1f (saturating at zero) leaves zero.
    let control = bytes.saturating_sub(u8x16::splat(0x1f)).simd_eq(u8x16::ZERO);
    (quote | backslash | control).to_bitmask()
}

const LANES: usize = 8;
const ONES: u64 = u64::from_ne_bytes([0x01; LANES]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; LANES]);

/// The lanes of `word` holding a byte below 0x20, a `"` or a `\\` (the bytes JSON escapes)
/// have their high bit set in the result, and no other lane. Each test is the exact form of
/// the "some byte is below n" bit trick: the low seven bits of every byte are added to
/// separately (no carry crosses a lane), and a byte of 0x80 or more never sets its lane.
fn escape_lanes(word: u64) -> u64 {
    const LOW7: u64 = ONES * 0x7f;
    let below = |x: u64, n: u8| !(((x & LOW7) + ONES * u64::from(0x80 - n)) | x) & HIGHS;
    let zero = |x: u64| !(((x & LOW7) + LOW7) | x) & HIGHS;
    below(word, 0x20) | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')))
}

/// The eight bytes of `text` at `start`, as a little-endian word.
#[inline(always)]
fn word_at(text: &[u8], start: usize) -> u64 {
    u64::from_le_bytes(text[start..start + LANES].try_into().expect("eight bytes"))
}

/// Appends `text` with JSON's escapes (without the quotes).
///
/// Whole blocks first, each one [`escape_mask`] whose bits are the bytes to escape. The rest,
/// shorter than a block (all of most strings), is tested in place, never copied first: a
/// string of a block or more tests its last block (overlapping bytes already done, their
/// bits cleared); a shorter one eight-byte words, the last one ending with the text and so
/// overlapping bytes already done (their lanes masked off). Copying the rest into a padded
/// block made each string wait on a store-forwarding stall (a third of this function's
/// time).
fn escape(out: &mut Vec<u8>, text: &[u8]) {
    escape_noting(out, text, |_| {});
}

/// [`escape`], calling `note` with the offset of each byte it escapes, in order.
fn escape_noting(out: &mut Vec<u8>, text: &[u8], mut note: impl FnMut(usize)) {
    let mut clean = 0; // text[clean..] is still to copy
    // Escapes the bytes at `start + i` for each bit `i` of `mask`.
    let mut escape_bits = |out: &mut Vec<u8>, start: usize, mut mask: u32, clean: &mut usize| {
        while mask != 0 {
            let at = start + mask.trailing_zeros() as usize;
            out.extend_from_slice(&text[*clean..at]);
            write_escape(out, text[at]);
            note(at);
            *clean = at + 1;
            mask &= mask - 1;
        }
    };
    let mut i = 0;
    while let Some(block) = text.get(i..i + BLOCK) {
        let mask = escape_mask(block.try_into().expect("a whole block"));
        if mask != 0 {
            escape_bits(out, i, mask, &mut clean);
        }
        i += BLOCK;
    }
    if i < text.len() {
        if text.len() >= BLOCK {
            let start = text.len() - BLOCK;
            // Bits below `i` are bytes the previous block did.
            let mask = escape_mask(text[start..].try_into().expect("a whole block")) & (u32::MAX << (i - start));
            escape_bits(out, start, mask, &mut clean);
        } else if text.len() >= LANES {
            while i < text.len() {
                let start = i.min(text.len() - LANES);
                // Lanes below `i` were done by the previous word.
                let mut lanes = escape_lanes(word_at(text, start)) & (u64::MAX << ((i - start) * 8));
                while lanes != 0 {
                    escape_bits(out, start + lanes.trailing_zeros() as usize / 8, 1, &mut clean);
                    lanes &= lanes - 1;
                }
                i = start + LANES;
            }
        } else {
            for (at, &byte) in text.iter().enumerate() {
                if escaped_byte(byte) {
                    escape_bits(out, at, 1, &mut clean);
                }
            }
        }
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
    use proptest::prelude::*;

    use super::*;
    use std::borrow::Cow;

    fn printed_ip(ip: IpAddr) -> String {
        let mut out = Vec::new();
        match ip {
            IpAddr::V4(ip) => ipv4(&mut out, ip),
            IpAddr::V6(ip) => ipv6(&mut out, ip),
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn addresses_print_as_display_prints_them() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "::1",
            "1::",
            "2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6",
            "fe80::84:88ff:feae:790a",
            "ff02::16",
            "1:0:0:2:0:0:0:3",
            "1:0:0:2:0:0:3:4",
            "1:0:2:3:4:5:6:7",
            "::ffff:192.0.2.1",
            "::192.0.2.1",
            "64:ff9b::c000:221",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(printed_ip(ip), ip.to_string(), "{text}");
        }
    }

    proptest! {
        /// Groups drawn mostly from zero and a few values, so that runs of zeros of every
        /// length and place come up, and any address at all.
        #[test]
        fn ipv6_prints_as_display_prints_it(
            groups in proptest::array::uniform8(prop_oneof![Just(0u16), Just(0xffff), Just(1), any::<u16>()]),
            bits in any::<u128>(),
        ) {
            for ip in [Ipv6Addr::from(groups), Ipv6Addr::from(bits)] {
                prop_assert_eq!(printed_ip(IpAddr::V6(ip)), ip.to_string());
            }
        }

        #[test]
        fn ipv4_prints_as_display_prints_it(bits in any::<u32>(), octets in proptest::array::uniform4(prop_oneof![Just(0u8), 1u8..10, 10u8..100, 100u8..=255])) {
            for ip in [Ipv4Addr::from(bits), Ipv4Addr::from(octets)] {
                prop_assert_eq!(printed_ip(IpAddr::V4(ip)), ip.to_string());
            }
        }
    }

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
    fn every_byte_position_of_a_block_is_checked() {
        // Two whole blocks and a tail.
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
            for at in 0..2 * BLOCK + 7 {
                let mut text = "x".repeat(2 * BLOCK + 7);
                text.replace_range(at..=at, &special.to_string());
                assert_eq!(escaped(&text), serde_escaped(&text), "{special:?} at {at}");
            }
        }
    }

    #[test]
    fn every_length_of_the_rest_after_the_blocks_is_checked() {
        // The rest is tested as one padded block: every length, a byte to escape anywhere.
        for len in 0..=2 * BLOCK + 1 {
            let plain = "x".repeat(len);
            assert_eq!(escaped(&plain), plain);
            for at in 0..len {
                for special in ['"', '\\', '\u{1f}'] {
                    let mut text = plain.clone();
                    text.replace_range(at..=at, &special.to_string());
                    assert_eq!(escaped(&text), serde_escaped(&text), "{special:?} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn bytes_that_never_need_an_escape_are_not_flagged() {
        for byte in 0u8..=255 {
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
            assert_eq!(escaped_byte(byte), expected, "{byte:#x}");
            let all = if expected { u32::from(u16::MAX) } else { 0 };
            assert_eq!(escape_mask(&[byte; BLOCK]), all, "{byte:#x}");
            // Alone among harmless bytes, in every position of a block: exactly its bit.
            for at in 0..BLOCK {
                let mut block = [b'a'; BLOCK];
                block[at] = byte;
                assert_eq!(escape_mask(&block), u32::from(expected) << at, "{byte:#x} at {at}");
            }
        }
    }

    fn printed(at: jiff::Timestamp) -> String {
        let mut out = Vec::new();
        timestamp(&mut out, at);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_print_like_jiff_at_the_edges() {
        for (seconds, nanos) in [
            (0, 0),
            (0, 1),
            (951_782_400, 0), // 2000-02-29
            (951_868_799, 999_999_999),
            (971_211_336, 578_288_000),
            (4_107_542_400, 0), // 2100-03-01, after a skipped leap day
            (jiff::Timestamp::MAX.as_second() - 1, 999_999_999),
            (-1, 0),
            (-1, 500_000_000),
            (-62_167_219_200, 0), // year 0
            (jiff::Timestamp::MIN.as_second(), 0),
            (jiff::Timestamp::MAX.as_second(), 999_999_999),
        ] {
            let at = jiff::Timestamp::new(seconds, nanos).unwrap();
            assert_eq!(printed(at), at.to_string(), "{seconds} s {nanos} ns");
        }
    }

    proptest::proptest! {
        /// Any instant jiff can hold: what its printer writes.
        #[test]
        fn timestamps_print_like_jiff(
            seconds in jiff::Timestamp::MIN.as_second()..=jiff::Timestamp::MAX.as_second(),
            nanos in prop_oneof![Just(0i32), 0i32..1_000_000_000, (0i32..1000).prop_map(|n| n * 1_000_000)],
        ) {
            let at = jiff::Timestamp::new(seconds, nanos).unwrap();
            proptest::prop_assert_eq!(printed(at), at.to_string());
        }

        /// Since the epoch, where every log time is: the hand-written branch.
        #[test]
        fn log_times_print_like_jiff(seconds in 0..=jiff::Timestamp::MAX.as_second(), nanos in 0i32..1_000_000_000) {
            let at = jiff::Timestamp::new(seconds, nanos).unwrap();
            proptest::prop_assert_eq!(printed(at), at.to_string());
        }
    }

    #[test]
    fn exactly_the_lanes_to_escape_are_flagged() {
        for byte in 0u8..=255 {
            let expected = escaped_byte(byte);
            let all = escape_lanes(u64::from_ne_bytes([byte; LANES]));
            assert_eq!(all, if expected { HIGHS } else { 0 }, "{byte:#x}");
            // In every lane, among harmless bytes and among bytes to escape.
            for lane in 0..LANES {
                for (filler, filler_lanes) in [(b'a', 0), (b'"', HIGHS), (0u8, HIGHS), (0xffu8, 0)] {
                    let mut bytes = [filler; LANES];
                    bytes[lane] = byte;
                    let mine = 0x80u64 << (lane * 8);
                    let want = (filler_lanes & !mine) | if expected { mine } else { 0 };
                    assert_eq!(
                        escape_lanes(u64::from_le_bytes(bytes)),
                        want,
                        "{byte:#x} in lane {lane} among {filler:#x}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        /// Any text, escapes anywhere relative to the block boundaries: serde_json's bytes.
        #[test]
        fn escapes_any_text_like_serde_json(text in r#"[ -~\\"\x00-\x1f\x7fé日\x{10348}]{0,100}"#) {
            proptest::prop_assert_eq!(escaped(&text), serde_escaped(&text));
        }

        /// Fields that are slices of the original line, over or beside its bytes to escape
        /// (fewer or more than `Original::KEPT` of them), and fields that are not: the same
        /// document as the owned event's, every string scanned.
        #[test]
        fn slices_of_the_original_are_written_like_any_string(
            original in r#"[a-z "\\\x01\té]{0,60}"#,
            cuts in proptest::collection::vec((0usize..61, 0usize..61), 6),
            separate in "[a-z\"]{0,5}",
        ) {
            let boundaries: Vec<usize> = (0..=original.len()).filter(|&i| original.is_char_boundary(i)).collect();
            let slices: Vec<Cow<'_, str>> = cuts
                .iter()
                .map(|&(a, b)| {
                    let (a, b) = (boundaries[a % boundaries.len()], boundaries[b % boundaries.len()]);
                    Cow::Borrowed(&original[a.min(b)..a.max(b)])
                })
                .collect();
            let event = LineEvent {
                original: Cow::Borrowed(&original),
                user_agent: Some(slices[0].clone()),
                url_path: Some(slices[1].clone()),
                url_query: Some(slices[2].clone()),
                http_referrer: Some(slices[3].clone()),
                rule_name: Some(slices[4].clone()),
                observer_hostname: Some(slices[5].clone()),
                message: Some(Cow::Owned(separate)),
                ..LineEvent::default()
            };
            let mut written = Vec::new();
            write(&event, &mut written);
            let mut owned = Vec::new();
            event.into_event().write_ecs_json(&mut owned);
            proptest::prop_assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(owned).unwrap());
        }
    }

    #[test]
    fn a_json_id_writes_what_the_event_id_writes() {
        let event = LineEvent { original: "x".into(), ..LineEvent::default() };
        for source in ["web", "/var/log/apache2/access.log", "a \"quoted\" name\\", "tab\tand é", ""] {
            let mut id = JsonId::new(source);
            for line in [0, 1, 7, 10_000, u64::MAX] {
                id.set_line(line);
                let mut fast = Vec::new();
                write_with_id(&event, Some(&id), &mut fast);
                let with_id =
                    LineEvent { id: crate::EventId::at(source, line).as_str().to_owned().into(), ..event.clone() };
                let mut owned = Vec::new();
                write(&with_id, &mut owned);
                assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(owned).unwrap(), "{source} {line}");
            }
        }
    }

    #[test]
    fn a_slice_is_clean_only_away_from_the_line_escapes() {
        let line = "a\"bc\\d";
        let mut original = Original { start: line.as_ptr() as usize, len: line.len(), ..Original::default() };
        escape_noting(&mut Vec::new(), line.as_bytes(), |at| original.note(at));
        assert_eq!(original.escapes[..original.count], [1, 4]);
        assert!(original.clean_slice(&line.as_bytes()[2..4]));
        assert!(original.clean_slice(&line.as_bytes()[5..]));
        assert!(!original.clean_slice(&line.as_bytes()[1..2]));
        assert!(!original.clean_slice(&line.as_bytes()[3..5]));
        assert!(!original.clean_slice(String::from("bc").as_bytes()), "not a slice of the line");
        for at in 0..Original::KEPT {
            original.note(at);
        }
        assert!(original.overflow);
        assert!(!original.clean_slice(&line.as_bytes()[2..4]), "past KEPT escapes, every slice is scanned");
    }
}
