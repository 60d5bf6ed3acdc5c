//! Reading an event's fields by their ECS name, with URL decoding for the fields attackers encode.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::net::IpAddr;

use collector::{Category, Event, LineEvent};
use jiff::Timestamp;

use crate::rules::{Literals, Patterns};

/// An event field a rule can test or group by, named as in ECS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    EventId,
    Dataset,
    Category,
    Action,
    SourceIp,
    SourcePort,
    DestinationIp,
    DestinationPort,
    Transport,
    UserName,
    HttpMethod,
    HttpVersion,
    HttpStatus,
    Referrer,
    UrlPath,
    UrlQuery,
    UserAgent,
    ObserverHostname,
    IngressInterface,
    RuleName,
    LogLevel,
    Message,
    SchoolUai,
    Original,
}

/// Every name a rule file may use, for the "did you mean" hint.
pub(crate) const FIELD_NAMES: &[(&str, Field)] = &[
    ("event.id", Field::EventId),
    ("event.dataset", Field::Dataset),
    ("event.category", Field::Category),
    ("event.action", Field::Action),
    ("source.ip", Field::SourceIp),
    ("source.port", Field::SourcePort),
    ("destination.ip", Field::DestinationIp),
    ("destination.port", Field::DestinationPort),
    ("network.transport", Field::Transport),
    ("user.name", Field::UserName),
    ("http.request.method", Field::HttpMethod),
    ("http.version", Field::HttpVersion),
    ("http.response.status_code", Field::HttpStatus),
    ("http.request.referrer", Field::Referrer),
    ("url.path", Field::UrlPath),
    ("url.query", Field::UrlQuery),
    ("user_agent.original", Field::UserAgent),
    ("observer.hostname", Field::ObserverHostname),
    ("observer.ingress.interface.name", Field::IngressInterface),
    ("rule.name", Field::RuleName),
    ("log.level", Field::LogLevel),
    ("message", Field::Message),
    ("organization.id", Field::SchoolUai),
    ("event.original", Field::Original),
];

impl Field {
    pub(crate) fn parse(name: &str) -> Option<Field> {
        FIELD_NAMES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub(crate) fn name(self) -> &'static str {
        FIELD_NAMES.iter().find(|(_, f)| *f == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// For a field the event holds as a number or an address (formatted to be read as
    /// text), its place among those fields.
    fn number(self) -> Option<usize> {
        match self {
            Field::SourceIp => Some(0),
            Field::SourcePort => Some(1),
            Field::DestinationIp => Some(2),
            Field::DestinationPort => Some(3),
            Field::HttpStatus => Some(4),
            _ => None,
        }
    }

    /// Whether rules see the field URL-decoded: attackers percent-encode (often twice) what
    /// they send in the path and query to slip past naive filters.
    fn is_url(self) -> bool {
        matches!(self, Field::UrlPath | Field::UrlQuery)
    }
}

/// How many fields [`Field::number`] knows.
const NUMBERS: usize = 5;

/// A field's text as rules see it: borrowed from the event, or a number or an address
/// formatted on the stack, so that reading a field never allocates.
pub(crate) enum Text<'a> {
    Borrowed(&'a str),
    Formatted(Formatted),
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Formatted(f) => f.as_str(),
        }
    }
}

/// Room for the longest value formatted: an IPv6 address with an embedded IPv4 one is at
/// most 45 characters, a port or a status code 5.
const FORMATTED_CAPACITY: usize = 48;

/// A number or an address written with its `Display` (the text `to_string` would give).
pub(crate) struct Formatted {
    buf: [u8; FORMATTED_CAPACITY],
    len: usize,
}

impl Formatted {
    fn of(value: impl std::fmt::Display) -> Formatted {
        use std::fmt::Write;
        let mut f = Formatted { buf: [0; FORMATTED_CAPACITY], len: 0 };
        // Cannot fail: every value formatted here fits (see FORMATTED_CAPACITY).
        let fits = write!(f, "{value}").is_ok();
        debug_assert!(fits, "a formatted field value overflowed its buffer");
        f
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in (see `write_str`).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for Formatted {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The fields of one event that rules can read, borrowed: from an owned [`Event`] (the live
/// pipeline), or from a [`LineEvent`] (`vigie analyze`, which never builds the owned
/// event: its dozen heap strings per line cost more than the rules that read them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub(crate) id: &'a str,
    pub(crate) timestamp: Timestamp,
    pub(crate) category: Category,
    pub(crate) source_ip: Option<IpAddr>,
    pub(crate) user_name: Option<&'a str>,
    dataset: &'a str,
    action: Option<&'a str>,
    source_port: Option<u16>,
    destination_ip: Option<IpAddr>,
    destination_port: Option<u16>,
    transport: Option<&'a str>,
    http_method: Option<&'a str>,
    http_version: Option<&'a str>,
    http_status: Option<u16>,
    http_referrer: Option<&'a str>,
    url_path: Option<&'a str>,
    url_query: Option<&'a str>,
    user_agent: Option<&'a str>,
    observer_hostname: Option<&'a str>,
    observer_ingress_interface: Option<&'a str>,
    rule_name: Option<&'a str>,
    log_level: Option<&'a str>,
    message: Option<&'a str>,
    school_uai: Option<&'a str>,
    original: &'a str,
}

/// The [`Fields`] of `$e`, an [`Event`] or a [`LineEvent`] (the same field names, text as
/// `String` or `Cow`), with `$id` as its event id.
macro_rules! fields_of {
    ($e:expr, $id:expr) => {{
        let e = $e;
        Fields {
            id: $id,
            timestamp: e.timestamp,
            category: e.category,
            source_ip: e.source_ip,
            user_name: e.user_name.as_deref(),
            dataset: &e.dataset,
            action: e.action.as_deref(),
            source_port: e.source_port,
            destination_ip: e.destination_ip,
            destination_port: e.destination_port,
            transport: e.transport.as_deref(),
            http_method: e.http_method.as_deref(),
            http_version: e.http_version.as_deref(),
            http_status: e.http_status,
            http_referrer: e.http_referrer.as_deref(),
            url_path: e.url_path.as_deref(),
            url_query: e.url_query.as_deref(),
            user_agent: e.user_agent.as_deref(),
            observer_hostname: e.observer_hostname.as_deref(),
            observer_ingress_interface: e.observer_ingress_interface.as_deref(),
            rule_name: e.rule_name.as_deref(),
            log_level: e.log_level.as_deref(),
            message: e.message.as_deref(),
            school_uai: e.school_uai.as_deref(),
            original: &e.original,
        }
    }};
}

impl<'a> Fields<'a> {
    pub(crate) fn of_event(e: &'a Event) -> Fields<'a> {
        fields_of!(e, e.id.as_str())
    }

    /// The fields of a parsed line, whose event id (left empty by the parser) is `id`.
    pub(crate) fn of_line(e: &'a LineEvent<'_>, id: &'a str) -> Fields<'a> {
        fields_of!(e, id)
    }
}

/// One event seen through the analyzer: field values, with the URL fields decoded at most
/// once per event however many rules look at them (and only copied when they hold an
/// escape to decode).
pub(crate) struct EventView<'e> {
    pub(crate) event: Fields<'e>,
    path: OnceCell<Option<Cow<'e, str>>>,
    query: OnceCell<Option<Cow<'e, str>>>,
    /// Per field, the outcome of its combined scan (see `rules::Scan`), run at most once.
    scans: [OnceCell<Patterns>; FIELD_NAMES.len()],
    /// The numbers and addresses, formatted at most once per event (see [`Field::number`]).
    numbers: [OnceCell<Option<Formatted>>; NUMBERS],
}

impl<'e> EventView<'e> {
    pub(crate) fn new(event: Fields<'e>) -> Self {
        EventView {
            event,
            path: OnceCell::new(),
            query: OnceCell::new(),
            scans: std::array::from_fn(|_| OnceCell::new()),
            numbers: std::array::from_fn(|_| OnceCell::new()),
        }
    }

    /// [`raw_value`], with numbers and addresses formatted once however many rules read them.
    pub(crate) fn raw(&self, field: Field) -> Option<Text<'_>> {
        match field.number() {
            Some(i) => self.numbers[i]
                .get_or_init(|| match raw_value(&self.event, field)? {
                    Text::Formatted(f) => Some(f),
                    Text::Borrowed(_) => None,
                })
                .as_ref()
                .map(|f| Text::Borrowed(f.as_str())),
            None => raw_value(&self.event, field),
        }
    }

    /// Which patterns of `literals`, the combined scan of `field` in the rule set the view is
    /// evaluated against, can match `value`, the field's value: computed on the first call.
    pub(crate) fn scanned(&self, field: Field, literals: &Literals, value: &str) -> &Patterns {
        self.scans[field as usize].get_or_init(|| literals.candidates(value))
    }

    /// An address field's address (`None` for any other field).
    pub(crate) fn ip(&self, field: Field) -> Option<IpAddr> {
        match field {
            Field::SourceIp => self.event.source_ip,
            Field::DestinationIp => self.event.destination_ip,
            _ => None,
        }
    }

    /// The value rules match against: URL fields decoded, numbers and addresses as text.
    pub(crate) fn value(&self, field: Field) -> Option<Text<'_>> {
        if field.is_url() {
            let (cell, raw, plus) = match field {
                Field::UrlPath => (&self.path, self.event.url_path, false),
                _ => (&self.query, self.event.url_query, true),
            };
            return cell.get_or_init(|| raw.map(|r| decode_url(r, plus))).as_deref().map(Text::Borrowed);
        }
        self.raw(field)
    }
}

/// The value exactly as the event carries it (used for offender keys: they name what was
/// logged, not a decoded form).
pub(crate) fn raw_value<'a>(event: &Fields<'a>, field: Field) -> Option<Text<'a>> {
    fn s(v: Option<&str>) -> Option<Text<'_>> {
        v.map(Text::Borrowed)
    }
    fn n(v: Option<impl std::fmt::Display>) -> Option<Text<'static>> {
        v.map(|v| Text::Formatted(Formatted::of(v)))
    }
    match field {
        Field::EventId => Some(Text::Borrowed(event.id)),
        Field::Dataset => Some(Text::Borrowed(event.dataset)),
        Field::Category => Some(Text::Borrowed(category_name(event.category))),
        Field::Action => s(event.action),
        Field::SourceIp => n(event.source_ip),
        Field::SourcePort => n(event.source_port),
        Field::DestinationIp => n(event.destination_ip),
        Field::DestinationPort => n(event.destination_port),
        Field::Transport => s(event.transport),
        Field::UserName => s(event.user_name),
        Field::HttpMethod => s(event.http_method),
        Field::HttpVersion => s(event.http_version),
        Field::HttpStatus => n(event.http_status),
        Field::Referrer => s(event.http_referrer),
        Field::UrlPath => s(event.url_path),
        Field::UrlQuery => s(event.url_query),
        Field::UserAgent => s(event.user_agent),
        Field::ObserverHostname => s(event.observer_hostname),
        Field::IngressInterface => s(event.observer_ingress_interface),
        Field::RuleName => s(event.rule_name),
        Field::LogLevel => s(event.log_level),
        Field::Message => s(event.message),
        Field::SchoolUai => s(event.school_uai),
        Field::Original => Some(Text::Borrowed(event.original)),
    }
}

/// Every category, in the order of [`category_index`].
pub(crate) const CATEGORIES: [Category; 3] = [Category::Web, Category::Network, Category::Diagnostic];

/// The category's value as rules read it (`event.category`).
pub(crate) fn category_name(category: Category) -> &'static str {
    match category {
        Category::Web => "web",
        Category::Network => "network",
        Category::Diagnostic => "diagnostic",
    }
}

/// The category's place in [`CATEGORIES`].
pub(crate) fn category_index(category: Category) -> usize {
    match category {
        Category::Web => 0,
        Category::Network => 1,
        Category::Diagnostic => 2,
    }
}

/// Percent-decodes `raw` twice (double encoding such as `%252e%252e` is a classic evasion),
/// and in a query string also turns `+` into a space, as PHP does. Invalid UTF-8 is replaced
/// rather than rejected: a hostile byte must not hide the rest of the request.
/// Most values hold neither `%` nor (in a query) `+`: they are borrowed as they are.
pub(crate) fn decode_url(raw: &str, plus_is_space: bool) -> Cow<'_, str> {
    let escaped = |b: &u8| *b == b'%' || (plus_is_space && *b == b'+');
    if !raw.as_bytes().iter().any(escaped) {
        return Cow::Borrowed(raw);
    }
    let once = decode_once(raw, plus_is_space);
    Cow::Owned(if once.contains('%') { decode_once(&once, false) } else { once })
}

fn decode_once(raw: &str, plus_is_space: bool) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    if plus_is_space && decoded.contains('+') { decoded.replace('+', " ") } else { decoded.into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for (i, (name, field)) in FIELD_NAMES.iter().enumerate() {
            // The view's per-field scans are indexed by the field's discriminant.
            assert_eq!(*field as usize, i);
            assert_eq!(Field::parse(name), Some(*field));
            assert_eq!(field.name(), *name);
        }
        assert_eq!(Field::parse("source_ip"), None);
    }

    #[test]
    fn url_fields_are_decoded_twice() {
        assert_eq!(decode_url("/a/%252e%252e/etc/passwd", false), "/a/../etc/passwd");
        assert_eq!(decode_url("q=union+select%20%2A", true), "q=union select *");
        assert_eq!(decode_url("/a+b", false), "/a+b");
        assert_eq!(decode_url("%ff%fe", false), "\u{fffd}\u{fffd}");
        assert_eq!(decode_url("a+b", true), "a b");
        assert!(matches!(decode_url("/plain/path", false), Cow::Borrowed("/plain/path")));
        assert!(matches!(decode_url("a+b", false), Cow::Borrowed("a+b")));
    }

    #[test]
    fn numbers_and_addresses_read_as_to_string_writes_them() {
        let longest: std::net::IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".parse().unwrap();
        let event = Event {
            source_ip: Some("2001:db8::1".parse().unwrap()),
            destination_ip: Some(longest),
            source_port: Some(65535),
            http_status: Some(200),
            ..Event::default()
        };
        for (field, expected) in [
            (Field::SourceIp, "2001:db8::1".to_owned()),
            (Field::DestinationIp, longest.to_string()),
            (Field::SourcePort, "65535".to_owned()),
            (Field::HttpStatus, "200".to_owned()),
        ] {
            assert_eq!(
                raw_value(&Fields::of_event(&event), field).as_deref(),
                Some(expected.as_str()),
                "{}",
                field.name()
            );
        }
        assert!(raw_value(&Fields::of_event(&event), Field::DestinationPort).is_none());
        let view = EventView::new(Fields::of_event(&event));
        for _ in 0..2 {
            assert_eq!(view.raw(Field::SourceIp).as_deref(), Some("2001:db8::1"));
            assert_eq!(view.value(Field::HttpStatus).as_deref(), Some("200"));
            assert!(view.raw(Field::DestinationPort).is_none());
        }
    }

    #[test]
    fn the_view_decodes_and_formats() {
        let event = Event {
            url_path: Some("/x/%2e%2e/".into()),
            http_status: Some(404),
            category: Category::Network,
            ..Event::default()
        };
        let view = EventView::new(Fields::of_event(&event));
        assert_eq!(view.value(Field::UrlPath).as_deref(), Some("/x/../"));
        assert_eq!(view.value(Field::HttpStatus).as_deref(), Some("404"));
        assert_eq!(view.value(Field::Category).as_deref(), Some("network"));
        assert!(view.value(Field::UserName).is_none());
        assert_eq!(raw_value(&Fields::of_event(&event), Field::UrlPath).as_deref(), Some("/x/%2e%2e/"));
    }
}
