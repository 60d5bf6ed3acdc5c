//! Reading an event's fields by their ECS name, with URL decoding for the fields attackers encode.

use std::borrow::Cow;
use std::cell::OnceCell;

use collector::{Category, Event};

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

    /// Whether rules see the field URL-decoded: attackers percent-encode (often twice) what
    /// they send in the path and query to slip past naive filters.
    fn is_url(self) -> bool {
        matches!(self, Field::UrlPath | Field::UrlQuery)
    }
}

/// One event seen through the analyzer: field values, with the URL fields decoded at most
/// once per event however many rules look at them.
pub(crate) struct EventView<'e> {
    pub(crate) event: &'e Event,
    path: OnceCell<Option<String>>,
    query: OnceCell<Option<String>>,
}

impl<'e> EventView<'e> {
    pub(crate) fn new(event: &'e Event) -> Self {
        EventView { event, path: OnceCell::new(), query: OnceCell::new() }
    }

    /// The value rules match against: URL fields decoded, numbers and addresses as text.
    pub(crate) fn value(&self, field: Field) -> Option<Cow<'_, str>> {
        if field.is_url() {
            let (cell, raw, plus) = match field {
                Field::UrlPath => (&self.path, &self.event.url_path, false),
                _ => (&self.query, &self.event.url_query, true),
            };
            return cell.get_or_init(|| raw.as_deref().map(|r| decode_url(r, plus))).as_deref().map(Cow::Borrowed);
        }
        raw_value(self.event, field)
    }
}

/// The value exactly as the event carries it (used for offender keys: they name what was
/// logged, not a decoded form).
pub(crate) fn raw_value(event: &Event, field: Field) -> Option<Cow<'_, str>> {
    fn s(v: &Option<String>) -> Option<Cow<'_, str>> {
        v.as_deref().map(Cow::Borrowed)
    }
    fn n(v: Option<impl ToString>) -> Option<Cow<'static, str>> {
        v.map(|v| Cow::Owned(v.to_string()))
    }
    match field {
        Field::EventId => Some(Cow::Borrowed(event.id.as_str())),
        Field::Dataset => Some(Cow::Borrowed(&event.dataset)),
        Field::Category => Some(Cow::Borrowed(match event.category {
            Category::Web => "web",
            Category::Network => "network",
            Category::Diagnostic => "diagnostic",
        })),
        Field::Action => s(&event.action),
        Field::SourceIp => n(event.source_ip),
        Field::SourcePort => n(event.source_port),
        Field::DestinationIp => n(event.destination_ip),
        Field::DestinationPort => n(event.destination_port),
        Field::Transport => s(&event.transport),
        Field::UserName => s(&event.user_name),
        Field::HttpMethod => s(&event.http_method),
        Field::HttpVersion => s(&event.http_version),
        Field::HttpStatus => n(event.http_status),
        Field::Referrer => s(&event.http_referrer),
        Field::UrlPath => s(&event.url_path),
        Field::UrlQuery => s(&event.url_query),
        Field::UserAgent => s(&event.user_agent),
        Field::ObserverHostname => s(&event.observer_hostname),
        Field::IngressInterface => s(&event.observer_ingress_interface),
        Field::RuleName => s(&event.rule_name),
        Field::LogLevel => s(&event.log_level),
        Field::Message => s(&event.message),
        Field::SchoolUai => s(&event.school_uai),
        Field::Original => Some(Cow::Borrowed(&event.original)),
    }
}

/// Percent-decodes `raw` twice (double encoding such as `%252e%252e` is a classic evasion),
/// and in a query string also turns `+` into a space, as PHP does. Invalid UTF-8 is replaced
/// rather than rejected: a hostile byte must not hide the rest of the request.
pub(crate) fn decode_url(raw: &str, plus_is_space: bool) -> String {
    let once = decode_once(raw, plus_is_space);
    if once.contains('%') { decode_once(&once, false) } else { once }
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
        for (name, field) in FIELD_NAMES {
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
    }

    #[test]
    fn the_view_decodes_and_formats() {
        let event = Event {
            url_path: Some("/x/%2e%2e/".into()),
            http_status: Some(404),
            category: Category::Network,
            ..Event::default()
        };
        let view = EventView::new(&event);
        assert_eq!(view.value(Field::UrlPath).as_deref(), Some("/x/../"));
        assert_eq!(view.value(Field::HttpStatus).as_deref(), Some("404"));
        assert_eq!(view.value(Field::Category).as_deref(), Some("network"));
        assert_eq!(view.value(Field::UserName), None);
        assert_eq!(raw_value(&event, Field::UrlPath).as_deref(), Some("/x/%2e%2e/"));
    }
}
