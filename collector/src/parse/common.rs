//! Pieces every parser shares: the nom error type, the public `ParseError`, time and
//! address helpers, and Apache/Nginx string unescaping.

use std::borrow::Cow;
use std::net::IpAddr;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use nom::IResult;
use nom::Parser as _;
use nom::bytes::complete::take_while_m_n;
use nom::character::complete::{char, one_of};
use nom::error::{ContextError, ErrorKind};

/// Why a line could not be parsed: what was expected where.
///
/// The column is a 1-based byte offset into the line, so that an operator can put a caret
/// under the spot in the dead-letter file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dataset} line, column {column}: expected {expected}, found {found}")]
pub struct ParseError {
    dataset: &'static str,
    column: usize,
    expected: String,
    found: String,
}

impl ParseError {
    /// An error at byte `offset` (0-based) of `line`.
    pub(crate) fn at(dataset: &'static str, line: &str, offset: usize, expected: impl Into<String>) -> Self {
        let offset = offset.min(line.len());
        let rest = line.get(offset..).unwrap_or("");
        let found = if rest.is_empty() {
            "end of line".to_owned()
        } else {
            let snippet: String = rest.chars().take(24).collect();
            let ellipsis = if snippet.len() < rest.len() { "…" } else { "" };
            format!("{snippet:?}{ellipsis}")
        };
        ParseError { dataset, column: offset + 1, expected: expected.into(), found }
    }

    /// Converts a nom failure on `line` (whose remaining input is a suffix of `line`).
    pub(crate) fn from_nom(dataset: &'static str, line: &str, err: nom::Err<PErr<'_>>) -> Self {
        match err {
            nom::Err::Error(e) | nom::Err::Failure(e) => {
                // Sub-parsers may run on a field cut out of the line: locate the failure by
                // address when it lies inside the line, else treat it as a suffix.
                let start = line.as_ptr() as usize;
                let at = e.input.as_ptr() as usize;
                let offset = if (start..=start + line.len()).contains(&at) {
                    at - start
                } else {
                    line.len().saturating_sub(e.input.len())
                };
                ParseError::at(dataset, line, offset, e.expected)
            }
            // Every parser here works on complete input; keep a sensible message anyway.
            nom::Err::Incomplete(_) => ParseError::at(dataset, line, line.len(), "more input"),
        }
    }

    /// The parser that rejected the line (`apache.access`, `iptables.log`, ...).
    pub fn dataset(&self) -> &'static str {
        self.dataset
    }

    /// 1-based byte column where parsing stopped.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What the parser expected at that column.
    pub fn expected(&self) -> &str {
        &self.expected
    }
}

/// The nom error used by every parser: where it failed and a human description of what was
/// expected there (set by `nom::error::context`, else derived from the nom error kind).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PErr<'a> {
    pub(crate) input: &'a str,
    pub(crate) expected: Cow<'static, str>,
    has_context: bool,
}

impl<'a> PErr<'a> {
    pub(crate) fn new(input: &'a str, expected: impl Into<Cow<'static, str>>) -> Self {
        PErr { input, expected: expected.into(), has_context: true }
    }
}

impl<'a> nom::error::ParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, kind: ErrorKind) -> Self {
        PErr { input, expected: Cow::Owned(kind.description().to_owned()), has_context: false }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        // The innermost failure says most precisely what was wrong.
        other
    }
}

impl<'a> ContextError<&'a str> for PErr<'a> {
    fn add_context(_input: &'a str, ctx: &'static str, mut other: Self) -> Self {
        // Keep the innermost context: "a port number" beats "a netfilter line".
        if !other.has_context {
            other.expected = Cow::Borrowed(ctx);
            other.has_context = true;
        }
        other
    }
}

pub(crate) type Res<'a, T> = IResult<&'a str, T, PErr<'a>>;

/// Fails at `input` with a description of what was expected.
pub(crate) fn fail<'a, T>(input: &'a str, expected: &'static str) -> Res<'a, T> {
    Err(nom::Err::Error(PErr::new(input, expected)))
}

/// A civil date as (year, month, day) and a time of day as (hour, minute, second).
pub(crate) type Ymd = (i16, i8, i8);
pub(crate) type Hms = (i8, i8, i8);

/// Parses `n` decimal digits exactly.
pub(crate) fn digits_n<'a>(n: usize, what: &'static str) -> impl FnMut(&'a str) -> Res<'a, u32> {
    move |input: &'a str| {
        let (rest, d) = take_while_m_n(n, n, |c: char| c.is_ascii_digit())(input)
            .map_err(|_: nom::Err<PErr<'a>>| nom::Err::Error(PErr::new(input, what)))?;
        // At most 4 ASCII digits here, so this cannot overflow.
        Ok((rest, d.bytes().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))))
    }
}

/// English three-letter month abbreviations, January first.
const MONTHS: [[u8; 3]; 12] =
    [*b"Jan", *b"Feb", *b"Mar", *b"Apr", *b"May", *b"Jun", *b"Jul", *b"Aug", *b"Sep", *b"Oct", *b"Nov", *b"Dec"];

/// Parses an English three-letter month abbreviation (`Jan` … `Dec`) to 1..=12.
pub(crate) fn month(input: &str) -> Res<'_, i8> {
    // Compared as three-byte arrays (no `memcmp` call per month); a month is ASCII, so a
    // match ends on a character boundary.
    let Some(head) = input.as_bytes().first_chunk::<3>() else {
        return fail(input, "a month (Jan..Dec)");
    };
    match MONTHS.iter().position(|m| m == head) {
        Some(i) => Ok((&input[3..], i as i8 + 1)),
        None => fail(input, "a month (Jan..Dec)"),
    }
}

/// `hh:mm:ss` as three numbers.
pub(crate) fn hms(input: &str) -> Res<'_, (i8, i8, i8)> {
    // Read in place when well formed (a few byte tests, on every syslog and Stormshield
    // line); the combinators below run only to say what is wrong.
    if let Some(&[h0, h1, b':', m0, m1, b':', s0, s1]) = input.as_bytes().first_chunk::<8>()
        && [h0, h1, m0, m1, s0, s1].iter().all(u8::is_ascii_digit)
    {
        let two = |a: u8, b: u8| ((a - b'0') * 10 + (b - b'0')) as i8;
        return Ok((&input[8..], (two(h0, h1), two(m0, m1), two(s0, s1))));
    }
    let (rest, (h, _, m, _, s)) =
        (digits_n(2, "an hour (hh)"), char(':'), digits_n(2, "minutes (mm)"), char(':'), digits_n(2, "seconds (ss)"))
            .parse(input)?;
    Ok((rest, (h as i8, m as i8, s as i8)))
}

/// `yyyy<sep>mm<sep>dd hh:mm:ss` (Nginx error logs use `/`, Stormshield `-`).
pub(crate) fn ymd_hms<'a>(sep: char) -> impl FnMut(&'a str) -> Res<'a, (Ymd, Hms)> {
    move |input: &'a str| {
        let (rest, (y, _, m, _, d, _, time)) = (
            digits_n(4, "a year (yyyy)"),
            char(sep),
            digits_n(2, "a month (mm)"),
            char(sep),
            digits_n(2, "a day (dd)"),
            char(' '),
            hms,
        )
            .parse(input)?;
        Ok((rest, ((y as i16, m as i8, d as i8), time)))
    }
}

/// A numeric UTC offset `+hhmm` / `-hhmm` (also accepts `+hh:mm`), in seconds.
pub(crate) fn numeric_offset(input: &str) -> Res<'_, i32> {
    let (rest, (sign, h, _, m)) =
        (one_of("+-"), digits_n(2, "offset hours"), nom::combinator::opt(char(':')), digits_n(2, "offset minutes"))
            .parse(input)
            .map_err(|_: nom::Err<PErr<'_>>| nom::Err::Error(PErr::new(input, "a UTC offset such as +0200")))?;
    let secs = (h * 3600 + m * 60) as i32;
    if h > 25 {
        return fail(input, "a UTC offset such as +0200");
    }
    Ok((rest, if sign == '-' { -secs } else { secs }))
}

/// Builds a civil date-time, reporting an impossible date (31 February) as a parse error.
pub(crate) fn civil<'a>(
    at: &'a str,
    (year, month, day): (i16, i8, i8),
    (h, m, s): (i8, i8, i8),
    nanos: i32,
) -> Result<DateTime, nom::Err<PErr<'a>>> {
    DateTime::new(year, month, day, h, m, s, nanos).map_err(|_| nom::Err::Error(PErr::new(at, "a valid date and time")))
}

/// The instant of a civil time written with an explicit offset.
pub(crate) fn at_offset<'a>(at: &'a str, dt: DateTime, offset_secs: i32) -> Result<Timestamp, nom::Err<PErr<'a>>> {
    let offset = Offset::from_seconds(offset_secs).map_err(|_| nom::Err::Error(PErr::new(at, "a valid UTC offset")))?;
    offset.to_timestamp(dt).map_err(|_| nom::Err::Error(PErr::new(at, "a time within the supported range")))
}

/// The instant of a civil time written in the local time of `tz` (no offset in the line),
/// with the offset that applied then.
pub(crate) fn in_zone<'a>(
    at: &'a str,
    dt: DateTime,
    tz: &jiff::tz::TimeZone,
) -> Result<(Timestamp, i32), nom::Err<PErr<'a>>> {
    let out_of_range = |_| nom::Err::Error(PErr::new(at, "a time within the supported range"));
    // Nearly every civil time has one offset in the zone: then the instant is that offset
    // applied, what `to_zoned_datetime` computes too, without cloning the zone (a reference
    // count every worker thread touches, per line) or building a zoned value.
    if let jiff::tz::AmbiguousOffset::Unambiguous { offset } = tz.to_ambiguous_timestamp(dt).offset() {
        return Ok((offset.to_timestamp(dt).map_err(out_of_range)?, offset.seconds()));
    }
    // In a gap or a fold: jiff's "compatible" choice.
    let zoned = dt.to_zoned_datetime(tz.clone()).map_err(out_of_range)?;
    Ok((zoned.timestamp(), zoned.offset().seconds()))
}

/// The Common Log Format time `10/Oct/2000:13:55:36 -0700` (Apache `%t` without its
/// brackets, Nginx `$time_local`): the instant and the offset it was written with.
pub(crate) fn clf_time(input: &str) -> Res<'_, (Timestamp, i32)> {
    match clf_time_fixed(input) {
        Some(fields) => clf_instant(input, &input[CLF_LEN..], fields),
        None => clf_time_nom(input),
    }
}

/// Length of a CLF time as servers write it: `10/Oct/2000:13:55:36 -0700`.
const CLF_LEN: usize = 26;

/// The fields of a CLF time of exactly the shape servers write (every access line), read by
/// position; `None` for anything else (a `+01:00` offset, a bad byte, an offset hour over 25),
/// which [`clf_time_nom`] then parses — or reports — as before.
fn clf_time_fixed(input: &str) -> Option<(Ymd, Hms, i32)> {
    let b = input.as_bytes().get(..CLF_LEN)?;
    let digit = |i: usize| b[i].is_ascii_digit().then(|| i32::from(b[i] - b'0'));
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let name: &[u8; 3] = b[3..6].try_into().ok()?;
    let month = MONTHS.iter().position(|m| m == name)? as i8 + 1;
    let punctuation = [(2, b'/'), (6, b'/'), (11, b':'), (14, b':'), (17, b':'), (20, b' ')];
    if punctuation.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let day = two(0)?;
    let year = two(7)? * 100 + two(9)?;
    let (h, m, s) = (two(12)?, two(15)?, two(18)?);
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (off_h, off_m) = (two(22)?, two(24)?);
    if off_h > 25 {
        return None;
    }
    let offset = sign * (off_h * 3600 + off_m * 60);
    Some(((year as i16, month, day as i8), (h as i8, m as i8, s as i8), offset))
}

/// The instant of CLF time fields read from `start`, `rest` following them.
fn clf_instant<'a>(start: &'a str, rest: &'a str, (date, time, off): (Ymd, Hms, i32)) -> Res<'a, (Timestamp, i32)> {
    let dt = civil(start, date, time, 0)?;
    Ok((rest, (at_offset(start, dt, off)?, off)))
}

/// [`clf_time`] in nom, for the shapes [`clf_time_fixed`] leaves out and for the message of
/// a line that is no CLF time.
fn clf_time_nom(input: &str) -> Res<'_, (Timestamp, i32)> {
    let start = input;
    let (rest, (day, _, mon, _, year, _, time, _, off)) = (
        digits_n(2, "a day of month (dd)"),
        char('/'),
        month,
        char('/'),
        digits_n(4, "a year (yyyy)"),
        char(':'),
        hms,
        char(' '),
        numeric_offset,
    )
        .parse(input)?;
    clf_instant(start, rest, ((year as i16, mon, day as i8), time, off))
}

/// Resolves a civil time written without a year (RFC 3164, `Mmm dd hh:mm:ss`) in the
/// configured zone: the most recent such instant not more than a day after `now`, so that
/// lines from 31 December read on 1 January land in the right year.
pub(crate) fn yearless<'a>(
    at: &'a str,
    (month, day): (i8, i8),
    time: (i8, i8, i8),
    now: Timestamp,
    tz: &TimeZone,
) -> Result<(Timestamp, i32), nom::Err<PErr<'a>>> {
    let this_year = year_in_zone(now, tz);
    let limit = now + jiff::SignedDuration::from_hours(24);
    let mut last_err = None;
    for year in [this_year, this_year - 1] {
        // 29 February only exists in some years: try the previous year before giving up.
        match civil(at, (year, month, day), time, 0) {
            Ok(dt) => {
                let (timestamp, offset) = in_zone(at, dt, tz)?;
                if timestamp <= limit {
                    return Ok((timestamp, offset));
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| nom::Err::Error(PErr::new(at, "a date not in the future"))))
}

/// The year `now` falls in, in zone `tz`. Away from New Year that is its year in UTC, as no
/// offset (jiff allows up to ±25:59:59) moves it by a day: a civil date computed by
/// arithmetic, where asking the zone costs a search of its transitions or an evaluation of
/// its POSIX rule (one line in four of a firewall log's CPU time went to zone lookups). And
/// remembered per thread for the last `now` asked: even as arithmetic, three civil dates per
/// line were 3 % of a netfilter line.
fn year_in_zone(now: Timestamp, tz: &TimeZone) -> i16 {
    const MARGIN: i64 = 26 * 3600;
    thread_local! {
        /// The last `now` (in seconds) found away from New Year on this thread, and its
        /// year: a whole file is parsed with one `now`.
        static LAST: std::cell::Cell<(i64, i16)> = const { std::cell::Cell::new((i64::MIN, 0)) };
    }
    let seconds = now.as_second();
    let (last, year) = LAST.get();
    if last == seconds {
        return year;
    }
    let utc_year = |s: i64| civil_from_days(s.div_euclid(86_400)).0;
    if seconds >= MARGIN && utc_year(seconds - MARGIN) == utc_year(seconds + MARGIN) {
        // Years since 1970 are well within `i16`.
        let year = utc_year(seconds) as i16;
        LAST.set((seconds, year));
        return year;
    }
    // `now` in the zone, without cloning the zone per line (see `in_zone`).
    tz.to_offset(now).to_datetime(now).year()
}

/// The proleptic Gregorian (year, month, day) of day `days` (≥ 0) after 1970-01-01: Howard
/// Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// An RFC 3339 timestamp (`2003-10-11T22:14:15.003Z`, `2021-03-12T14:10:18+01:00`).
pub(crate) fn rfc3339(input: &str) -> Res<'_, (Timestamp, i32)> {
    let start = input;
    let (rest, (y, _, mo, _, d, _, time)) = (
        digits_n(4, "a year (yyyy)"),
        char('-'),
        digits_n(2, "a month (mm)"),
        char('-'),
        digits_n(2, "a day (dd)"),
        one_of("Tt "),
        hms,
    )
        .parse(input)?;
    let (rest, nanos) = match rest.strip_prefix(['.', ',']) {
        Some(frac) => {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return fail(frac, "fractional seconds");
            }
            let mut nanos: i32 = 0;
            for (i, b) in frac.bytes().take(n.min(9)).enumerate() {
                nanos += i32::from(b - b'0') * 10i32.pow(8 - i as u32);
            }
            (&frac[n..], nanos)
        }
        None => (rest, 0),
    };
    let (rest, off) = if let Some(r) = rest.strip_prefix(['Z', 'z']) { (r, 0) } else { numeric_offset(rest)? };
    let dt = civil(start, (y as i16, mo as i8, d as i8), time, nanos)?;
    Ok((rest, (at_offset(start, dt, off)?, off)))
}

/// Parses an IP address, tolerating IPv6 brackets (`[::1]`) and an IPv6 zone (`fe80::1%eth0`).
pub(crate) fn ip(text: &str) -> Option<IpAddr> {
    let t = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    if let Some(v4) = dotted_quad(t.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    // `memchr` rather than `split_once`: the `char` searcher was 1 % of an access line.
    let t = memchr::memchr(b'%', t.as_bytes()).map_or(t, |at| &t[..at]);
    if let Some(v6) = hex_groups(t.as_bytes()) {
        return Some(IpAddr::V6(v6));
    }
    t.parse().ok()
}

/// An IPv6 address written as hexadecimal groups, with or without `::`, read in one pass;
/// `None` for anything else (an IPv4 tail such as `::ffff:192.0.2.1` among it), which then
/// goes to the standard parser. That parser tries each group as an IPv4 address first and
/// backtracks: 1,800 instructions an address, 4 % of a netfilter line.
fn hex_groups(text: &[u8]) -> Option<std::net::Ipv6Addr> {
    let mut groups = [0u16; 8];
    let mut read = 0; // groups read
    let mut gap = None; // where `::` stands among them
    let mut at = 0;
    if text.starts_with(b"::") {
        gap = Some(0);
        at = 2;
    }
    while at < text.len() {
        if read == 8 {
            return None;
        }
        let start = at;
        let mut group = 0u16;
        while at < text.len() && at - start < 4 {
            let digit = match text[at] {
                b @ b'0'..=b'9' => b - b'0',
                b @ b'a'..=b'f' => b - b'a' + 10,
                b @ b'A'..=b'F' => b - b'A' + 10,
                _ => break,
            };
            group = group << 4 | u16::from(digit);
            at += 1;
        }
        if at == start {
            return None;
        }
        groups[read] = group;
        read += 1;
        if at == text.len() {
            break;
        }
        // A fifth digit, a dot or any other byte: not this form.
        if text[at] != b':' {
            return None;
        }
        at += 1;
        if text.get(at) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(read);
            at += 1;
        } else if at == text.len() {
            return None;
        }
    }
    match gap {
        None if read == 8 => Some(groups.into()),
        // `::` stands for one zero group at least.
        Some(gap) if read <= 7 => {
            let tail = read - gap;
            groups.copy_within(gap..read, 8 - tail);
            groups[gap..8 - tail].fill(0);
            Some(groups.into())
        }
        _ => None,
    }
}

/// An IPv4 address in the one form the standard library's parser accepts (four decimal
/// numbers up to 255 separated by dots, no leading zero), read in one pass; `None` for
/// anything else, which then goes to that parser. Nearly every address in a log is such a
/// quad, and the general parser tries IPv4 then IPv6 with more checks per byte.
fn dotted_quad(text: &[u8]) -> Option<std::net::Ipv4Addr> {
    let digit = |at: usize| text.get(at).map(|b| b.wrapping_sub(b'0')).filter(|d| *d < 10);
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            if text.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        // One to three digits, no leading zero (`01`), no fourth digit.
        let first = digit(at)?;
        let mut value = u16::from(first);
        at += 1;
        if let Some(second) = digit(at) {
            if first == 0 {
                return None;
            }
            value = value * 10 + u16::from(second);
            at += 1;
            if let Some(third) = digit(at) {
                value = value * 10 + u16::from(third);
                at += 1;
                if digit(at).is_some() {
                    return None;
                }
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    (at == text.len()).then(|| std::net::Ipv4Addr::from(octets))
}

/// A port number as the standard parser reads a `u16` (an optional `+`, then decimal
/// digits, leading zeros allowed, at most 65535), in a few byte tests: the generic
/// `from_str` was 3 % of a netfilter line, for its two ports.
pub(crate) fn port(text: &str) -> Option<u16> {
    let digits = text.strip_prefix('+').unwrap_or(text).as_bytes();
    if digits.is_empty() {
        return None;
    }
    let mut value = 0u32;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return None;
        }
    }
    Some(value as u16)
}

/// A client written as an address with an optional port (`ip`, `ip:port`, `[v6]:port`, a
/// bare IPv6 address): the address, when the host part is one, and the port. A bare IPv4
/// address (nearly every access line) is read before any search for a port: what the split
/// finds of it is the whole text and no port.
pub(crate) fn address_and_port(text: &str) -> (Option<IpAddr>, Option<u16>) {
    if let Some(v4) = dotted_quad(text.as_bytes()) {
        return (Some(IpAddr::V4(v4)), None);
    }
    let (host, port) = split_host_port(text);
    (ip(host), port)
}

/// `host:port` or `[v6]:port` split into its parts; a bare IPv6 address has no port.
pub(crate) fn split_host_port(text: &str) -> (&str, Option<u16>) {
    if let Some(inner) = text.strip_prefix('[')
        && let Some((host, rest)) = inner.split_once(']')
    {
        return (host, rest.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    // `memrchr` from the memchr crate: `rsplit_once`'s reverse search was 2 to 3 % of an
    // access line, for an address that nearly always has no colon at all.
    let last_colon = memchr::memrchr(b':', text.as_bytes()).map(|at| (&text[..at], &text[at + 1..]));
    match last_colon {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, port)) if memchr::memchr(b':', host.as_bytes()).is_none() => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (text, None),
        },
        _ => (text, None),
    }
}

/// Undoes the escaping Apache (`\"`, `\\`, `\xhh`, `\n`, `\t`) and Nginx (`\xHH`) apply to
/// logged strings; escaped bytes that form UTF-8 become those characters.
pub(crate) fn unescape(text: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\\', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' || i + 1 == bytes.len() {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'x' | b'X' if i + 3 < bytes.len() && hex_pair(bytes[i + 2], bytes[i + 3]).is_some() => {
                out.push(hex_pair(bytes[i + 2], bytes[i + 3]).unwrap_or(b'?'));
                i += 4;
            }
            b'n' => {
                out.push(b'\n');
                i += 2;
            }
            b't' => {
                out.push(b'\t');
                i += 2;
            }
            b'r' => {
                out.push(b'\r');
                i += 2;
            }
            c @ (b'"' | b'\\') => {
                out.push(c);
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_pair(a: u8, b: u8) -> Option<u8> {
    let h = |c: u8| (c as char).to_digit(16);
    Some((h(a)? * 16 + h(b)?) as u8)
}

/// A protocol name as `network.transport` has it: lower case, `ipv6-icmp` for ICMPv6
/// (`TCP` → `tcp`, `ICMPv6` → `ipv6-icmp`). The usual names come back without an allocation.
pub(crate) fn transport_name(name: &str) -> Cow<'_, str> {
    for known in ["tcp", "udp", "icmp"] {
        if name.eq_ignore_ascii_case(known) {
            return Cow::Borrowed(known);
        }
    }
    if name.eq_ignore_ascii_case("icmpv6") || name.eq_ignore_ascii_case("ipv6-icmp") {
        return Cow::Borrowed("ipv6-icmp");
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// `-` is how Apache, Nginx and most firewalls write "no value".
pub(crate) fn dash_none(text: &str) -> Option<&str> {
    if text == "-" || text.is_empty() { None } else { Some(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_time_keeps_offset() {
        let (rest, (ts, off)) = clf_time("10/Oct/2000:13:55:36 -0700]").unwrap();
        assert_eq!(rest, "]");
        assert_eq!(ts.to_string(), "2000-10-10T20:55:36Z");
        assert_eq!(off, -7 * 3600);
    }

    #[test]
    fn clf_time_rejects_bad_month_with_reason() {
        let err = clf_time("10/Foo/2000:13:55:36 -0700").unwrap_err();
        let nom::Err::Error(e) = err else { panic!("expected a recoverable error") };
        assert_eq!(e.expected, "a month (Jan..Dec)");
        assert_eq!(e.input, "Foo/2000:13:55:36 -0700");
    }

    #[test]
    fn clf_time_fixed_shape_and_the_others_agree_with_nom() {
        for text in [
            "10/Oct/2000:13:55:36 -0700]",
            "10/Oct/2000:13:55:36 +0000",
            "29/Feb/2001:00:00:00 +0100",
            "31/Dec/9999:23:59:59 -2559",
            "10/Oct/2000:13:55:36 +2600",
            "10/Oct/2000:13:55:36 +02:00",
            "10/oct/2000:13:55:36 -0700",
            "1/Oct/2000:13:55:36 -0700",
            "10/Oct/2000:13:55:36 -07",
            "10/Oct/2000:13:55:36",
            "10/Oct/2000:99:55:36 -0700",
            "",
        ] {
            assert_eq!(clf_time(text), clf_time_nom(text), "{text:?}");
        }
        assert!(clf_time_fixed("10/Oct/2000:13:55:36 -0700").is_some());
    }

    proptest::proptest! {
        /// Near-CLF text of any kind: the same instant, rest and error as the nom parser.
        #[test]
        fn clf_time_agrees_with_nom(
            text in r"[0-39]{1,2}/(Jan|Feb|Oct|Dec|oct|Xyz)/[0-9]{3,4}:[0-9]{2}:[0-6][0-9]:[0-6][0-9][ :][-+ ][0-2][0-9]:?[0-9]{2}\]?",
        ) {
            proptest::prop_assert_eq!(clf_time(&text), clf_time_nom(&text));
        }
    }

    #[test]
    fn rfc3339_with_fraction_and_offset() {
        let (_, (ts, off)) = rfc3339("2003-10-11T22:14:15.003Z").unwrap();
        assert_eq!(ts.to_string(), "2003-10-11T22:14:15.003Z");
        assert_eq!(off, 0);
        let (_, (ts, off)) = rfc3339("2021-03-12T14:10:18+01:00").unwrap();
        assert_eq!(ts.to_string(), "2021-03-12T13:10:18Z");
        assert_eq!(off, 3600);
    }

    #[test]
    fn yearless_picks_previous_year_across_new_year() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let now: Timestamp = "2025-01-01T00:30:00Z".parse().unwrap();
        let (ts, off) = yearless("", (12, 31), (23, 59, 0), now, &tz).unwrap();
        assert_eq!(ts.to_string(), "2024-12-31T22:59:00Z");
        assert_eq!(off, 3600);
        let (ts, _) = yearless("", (1, 1), (1, 0, 0), now, &tz).unwrap();
        assert_eq!(ts.to_string(), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn dotted_quads_read_as_the_standard_parser_reads_them() {
        for text in ["0.0.0.0", "255.255.255.255", "192.0.2.1", "10.4.0.5"] {
            assert_eq!(dotted_quad(text.as_bytes()), text.parse().ok(), "{text}");
        }
        for text in ["256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.", "1.2.3.4 ", "1..2.3", "1.2.3.0004", "", "::1"] {
            assert_eq!(dotted_quad(text.as_bytes()), None, "{text}");
        }
    }

    proptest::proptest! {
        /// Whatever the text, the fast path reads an address only where the standard parser
        /// reads the same one, and `ip` answers as that parser does.
        #[test]
        fn dotted_quads_agree_with_the_standard_parser(text in "[0-9.:a-f%]{0,18}|[0-9]{1,4}(\\.[0-9]{1,4}){2,4}") {
            let std_v4: Option<std::net::Ipv4Addr> = text.parse().ok();
            if let Some(v4) = dotted_quad(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(v4), std_v4);
            }
            let std_ip: Option<IpAddr> = text.split('%').next().unwrap_or("").parse().ok();
            proptest::prop_assert_eq!(ip(&text), std_ip);
        }
    }

    proptest::proptest! {
        /// Any client text: the address and port the split and the address parser find.
        #[test]
        fn address_and_port_is_the_split_then_the_address(text in r"\[?[0-9a-f.:]{0,20}\]?(:[0-9]{1,6})?") {
            let (host, port) = split_host_port(&text);
            proptest::prop_assert_eq!(address_and_port(&text), (ip(host), port));
        }
    }

    #[test]
    fn hex_groups_read_as_the_standard_parser_reads_them() {
        for text in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6",
            "FE80::84:88FF:feae:790a",
            "fe80:0000:0000:0000:0084:88ff:feae:790a",
            "1:0:0:2::3",
        ] {
            assert_eq!(hex_groups(text.as_bytes()), Some(text.parse().unwrap()), "{text}");
        }
        for text in [
            "",
            ":",
            ":::",
            "1:::2",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "1::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7",
            "1:2:",
            ":1:2:3:4:5:6:7:8",
            "12345::",
            "::ffff:1.2.3.4",
            "g::",
            "1:2:3:4:5:6:7:8::",
        ] {
            assert_eq!(hex_groups(text.as_bytes()), None, "{text}");
        }
    }

    proptest::proptest! {
        /// Text made of the bytes of IPv6 addresses, and real addresses in their short, full
        /// and upper-case forms: where the fast path reads one, it is the standard parser's.
        #[test]
        fn hex_groups_agree_with_the_standard_parser(
            text in "[0-9a-fA-F:.]{0,42}|([0-9a-f]{1,5}:{1,2}){0,9}[0-9a-f]{0,5}",
            bits in proptest::prelude::any::<u128>(),
            zeros in 0u32..128,
        ) {
            let addr = std::net::Ipv6Addr::from(bits >> zeros << (zeros / 2));
            let full = addr.segments().map(|g| format!("{g:04x}")).join(":");
            for text in [text, addr.to_string(), full.clone(), full.to_uppercase()] {
                let std_v6: Option<std::net::Ipv6Addr> = text.parse().ok();
                if let Some(v6) = hex_groups(text.as_bytes()) {
                    proptest::prop_assert_eq!(Some(v6), std_v6, "{}", text);
                }
                let std_ip: Option<IpAddr> = text.parse().ok();
                proptest::prop_assert_eq!(ip(&text), std_ip, "{}", text);
            }
            proptest::prop_assert_eq!(hex_groups(full.as_bytes()), Some(addr));
        }
    }

    proptest::proptest! {
        /// Digits, signs and other bytes: `port` reads what `u16::from_str` reads.
        #[test]
        fn ports_read_as_the_standard_parser_reads_them(text in "[+-]?[0-9]{0,7}|[0-9+ a]{0,6}") {
            proptest::prop_assert_eq!(port(&text), text.parse::<u16>().ok());
        }
    }

    proptest::proptest! {
        /// Around New Year and away from it, in zones as far from UTC as there are: the year
        /// of `now` in the zone.
        #[test]
        fn year_in_zone_is_the_zones_year(
            seconds in proptest::prop_oneof![
                -2_000_000_000i64..5_000_000_000,
                // Within two days of a New Year between 1970 and 2100.
                proptest::strategy::Strategy::prop_map((0i64..130, -172_800i64..172_800), |(y, d)| {
                    jiff::civil::date(1970 + y as i16, 1, 1).at(0, 0, 0, 0).to_zoned_datetime(TimeZone::UTC).unwrap().timestamp().as_second() + d
                }),
            ],
            zone in proptest::sample::select(vec!["UTC", "Europe/Paris", "Pacific/Kiritimati", "Etc/GMT+12", "America/St_Johns"]),
        ) {
            let tz = TimeZone::get(zone).unwrap();
            let now = Timestamp::from_second(seconds).unwrap();
            proptest::prop_assert_eq!(year_in_zone(now, &tz), now.to_zoned_datetime(tz.clone()).year());
        }
    }

    /// What `in_zone` computed before its unambiguous fast path: the zoned value's instant
    /// and offset.
    fn in_zone_zoned(dt: DateTime, tz: &TimeZone) -> Option<(Timestamp, i32)> {
        let zoned = dt.to_zoned_datetime(tz.clone()).ok()?;
        Some((zoned.timestamp(), zoned.offset().seconds()))
    }

    #[test]
    fn in_zone_resolves_gaps_and_folds_like_a_zoned_value() {
        let paris = TimeZone::get("Europe/Paris").unwrap();
        for (text, want) in [
            // Summer time starts: 02:30 does not exist, jiff's compatible choice moves it on.
            ("2025-03-30T02:30:00", "2025-03-30T01:30:00Z"),
            // Summer time ends: 02:30 happens twice, the earlier is chosen.
            ("2025-10-26T02:30:00", "2025-10-26T00:30:00Z"),
            ("2025-07-14T12:00:00", "2025-07-14T10:00:00Z"),
        ] {
            let dt: DateTime = text.parse().unwrap();
            let (ts, off) = in_zone("", dt, &paris).unwrap();
            assert_eq!(ts.to_string(), want, "{text}");
            assert_eq!(Some((ts, off)), in_zone_zoned(dt, &paris), "{text}");
        }
    }

    proptest::proptest! {
        /// Any civil time in zones with and without transitions: the zoned value's instant and
        /// offset, or an error where it has none.
        #[test]
        fn in_zone_agrees_with_a_zoned_value(
            seconds in -2_000_000_000i64..5_000_000_000,
            zone in proptest::sample::select(vec!["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
        ) {
            let tz = TimeZone::get(zone).unwrap();
            let dt = Timestamp::from_second(seconds).unwrap().to_zoned_datetime(TimeZone::UTC).datetime();
            proptest::prop_assert_eq!(in_zone("", dt, &tz).ok(), in_zone_zoned(dt, &tz));
            // And the year `yearless` takes for now.
            let now = Timestamp::from_second(seconds).unwrap();
            proptest::prop_assert_eq!(
                tz.to_offset(now).to_datetime(now).year(),
                now.to_zoned_datetime(tz.clone()).year()
            );
        }
    }

    #[test]
    fn unescape_apache_and_utf8_bytes() {
        assert_eq!(unescape(r#"a\"b\\c"#), r#"a"b\c"#);
        assert_eq!(unescape(r"caf\xc3\xa9"), "café");
        assert_eq!(unescape(r"\x16\x03\x01"), "\u{16}\u{3}\u{1}");
        assert_eq!(unescape(r"trailing\"), r"trailing\");
        assert_eq!(unescape(r"\xZZ"), r"\xZZ");
    }

    #[test]
    fn transport_names_are_lower_case() {
        for (name, want) in [
            ("TCP", "tcp"),
            ("udp", "udp"),
            ("Icmp", "icmp"),
            ("ICMPv6", "ipv6-icmp"),
            ("IPV6-ICMP", "ipv6-icmp"),
            ("GRE", "gre"),
            ("sctp", "sctp"),
            ("É2", "É2"),
        ] {
            assert_eq!(transport_name(name), want, "{name}");
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("1.2.3.4:80"), ("1.2.3.4", Some(80)));
        assert_eq!(split_host_port("[::1]:443"), ("::1", Some(443)));
        assert_eq!(split_host_port("2a02:cf40::1"), ("2a02:cf40::1", None));
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(ip("fe80::1%eth0"), Some("fe80::1".parse().unwrap()));
    }

    #[test]
    fn parse_error_message_names_column_and_expectation() {
        let e = ParseError::at("apache.access", "abc def", 4, "a status code");
        assert_eq!(e.to_string(), "apache.access line, column 5: expected a status code, found \"def\"");
        let e = ParseError::at("apache.access", "abc", 3, "a status code");
        assert_eq!(e.column(), 4);
        assert!(e.to_string().ends_with("found end of line"));
    }
}
