//! The normalised event every parser produces and every later stage consumes.
//!
//! Field names follow the Elastic Common Schema (ECS) so that events line up with the peer
//! fixtures in `shared/data/peer` and with any tool an operator already knows. The struct is
//! flat; `serde` writes the dotted ECS names (`source.ip`, `http.response.status_code`, ...).

use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A stable, deterministic identifier of an event: the source id and the position of the
/// record in that source (`"apache-main:4096"`), or a content hash where a source has no
/// position. Re-delivering the same record yields the same id, which makes every durable
/// write idempotent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl EventId {
    /// The id of the record at `position` (byte offset or sequence number) of `source`.
    pub fn at(source: &str, position: u64) -> Self {
        let mut id = EventId(String::new());
        id.set_at(source, position);
        id
    }

    /// Makes this id [`EventId::at`]`(source, position)`, in the room it already has (for a
    /// caller that writes one id per line and keeps none).
    pub fn set_at(&mut self, source: &str, position: u64) {
        // Built by hand: `format!` costs more than the rest of an id (one per parsed line).
        let mut digits = itoa::Buffer::new();
        let position = digits.format(position);
        let id = &mut self.0;
        id.clear();
        id.reserve(source.len() + 1 + position.len());
        for part in [source, ":", position] {
            id.push_str(part);
        }
    }

    /// The id of the line at byte `offset` of the file tagged `file` (see
    /// [`crate::pipe::RawRecord::file`]) read by `source`: `"apache-main:3fa2c1d09b7e:4096"`.
    pub fn in_file(source: &str, file: &str, offset: u64) -> Self {
        let mut digits = itoa::Buffer::new();
        let offset = digits.format(offset);
        let mut id = String::with_capacity(source.len() + file.len() + offset.len() + 2);
        for part in [source, ":", file, ":", offset] {
            id.push_str(part);
        }
        EventId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of thing an event describes (ECS `event.category`, reduced to what Vigie uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// An HTTP request served by the ENT (Apache / Nginx access log).
    #[default]
    Web,
    /// A packet or connection decision by a firewall.
    Network,
    /// A web server's error log or another diagnostic message.
    Diagnostic,
}

/// One normalised event.
///
/// Every field but the identity, the time and the original line is optional: parsers fill
/// what their format carries and leave the rest `None`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Event {
    /// Deterministic id (see [`EventId`]); empty only before a source assigns it.
    #[serde(rename = "event.id")]
    pub id: EventId,
    /// The instant the event happened, in UTC.
    #[serde(rename = "@timestamp")]
    pub timestamp: Timestamp,
    /// The UTC offset the source wrote the time with, in seconds (Apache `%t` carries one,
    /// Stormshield writes `tz=`). Kept because the law asks for an unambiguous time zone.
    #[serde(rename = "event.timezone_offset_seconds", skip_serializing_if = "Option::is_none", default)]
    pub utc_offset_seconds: Option<i32>,
    /// The parser that produced the event: `apache.access`, `nginx.access`, `iptables.log`...
    #[serde(rename = "event.dataset")]
    pub dataset: String,
    #[serde(rename = "event.category")]
    pub category: Category,
    /// The firewall's decision (`block`, `pass`), or the operation for application events.
    #[serde(rename = "event.action", skip_serializing_if = "Option::is_none", default)]
    pub action: Option<String>,
    /// Duration of the request or connection, in nanoseconds (ECS convention).
    #[serde(rename = "event.duration", skip_serializing_if = "Option::is_none", default)]
    pub duration_ns: Option<u64>,

    #[serde(rename = "source.ip", skip_serializing_if = "Option::is_none", default)]
    pub source_ip: Option<IpAddr>,
    #[serde(rename = "source.port", skip_serializing_if = "Option::is_none", default)]
    pub source_port: Option<u16>,
    #[serde(rename = "destination.ip", skip_serializing_if = "Option::is_none", default)]
    pub destination_ip: Option<IpAddr>,
    #[serde(rename = "destination.port", skip_serializing_if = "Option::is_none", default)]
    pub destination_port: Option<u16>,
    /// `tcp`, `udp`, `icmp`, ...
    #[serde(rename = "network.transport", skip_serializing_if = "Option::is_none", default)]
    pub transport: Option<String>,
    /// Bytes sent by the source (request size, or firewall `sent`).
    #[serde(rename = "source.bytes", skip_serializing_if = "Option::is_none", default)]
    pub source_bytes: Option<u64>,
    /// Bytes sent to the source (response body size, or firewall `rcvd`).
    #[serde(rename = "destination.bytes", skip_serializing_if = "Option::is_none", default)]
    pub destination_bytes: Option<u64>,

    /// The authenticated account, if the log carries one.
    #[serde(rename = "user.name", skip_serializing_if = "Option::is_none", default)]
    pub user_name: Option<String>,

    #[serde(rename = "http.request.method", skip_serializing_if = "Option::is_none", default)]
    pub http_method: Option<String>,
    #[serde(rename = "http.version", skip_serializing_if = "Option::is_none", default)]
    pub http_version: Option<String>,
    #[serde(rename = "http.response.status_code", skip_serializing_if = "Option::is_none", default)]
    pub http_status: Option<u16>,
    #[serde(rename = "http.request.referrer", skip_serializing_if = "Option::is_none", default)]
    pub http_referrer: Option<String>,
    /// The request path, exactly as logged (still percent-encoded).
    #[serde(rename = "url.path", skip_serializing_if = "Option::is_none", default)]
    pub url_path: Option<String>,
    /// The query string without the leading `?`.
    #[serde(rename = "url.query", skip_serializing_if = "Option::is_none", default)]
    pub url_query: Option<String>,
    #[serde(rename = "user_agent.original", skip_serializing_if = "Option::is_none", default)]
    pub user_agent: Option<String>,

    /// The machine that wrote the log (web server vhost or firewall name).
    #[serde(rename = "observer.hostname", skip_serializing_if = "Option::is_none", default)]
    pub observer_hostname: Option<String>,
    /// Firewall ingress interface.
    #[serde(rename = "observer.ingress.interface.name", skip_serializing_if = "Option::is_none", default)]
    pub observer_ingress_interface: Option<String>,
    /// Firewall rule name or number, or log prefix.
    #[serde(rename = "rule.name", skip_serializing_if = "Option::is_none", default)]
    pub rule_name: Option<String>,
    /// Severity or level written by the source (error logs, syslog).
    #[serde(rename = "log.level", skip_serializing_if = "Option::is_none", default)]
    pub log_level: Option<String>,
    /// Free-text message (error logs).
    #[serde(rename = "message", skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,

    /// Country of the source address, ISO 3166-1 alpha-2 (GeoIP enrichment).
    #[serde(rename = "source.geo.country_iso_code", skip_serializing_if = "Option::is_none", default)]
    pub source_country: Option<String>,
    /// City of the source address (GeoIP enrichment).
    #[serde(rename = "source.geo.city_name", skip_serializing_if = "Option::is_none", default)]
    pub source_city: Option<String>,
    /// Autonomous system of the source address (ASN enrichment).
    #[serde(rename = "source.as.number", skip_serializing_if = "Option::is_none", default)]
    pub source_as_number: Option<u32>,
    #[serde(rename = "source.as.organization.name", skip_serializing_if = "Option::is_none", default)]
    pub source_as_organization: Option<String>,
    /// The kind of ENT user, when the log says it: `eleve`, `parent`, `enseignant`, `personnel`.
    #[serde(rename = "user.roles", skip_serializing_if = "Option::is_none", default)]
    pub user_role: Option<String>,

    /// The UAI code of the school the client belongs to (enrichment).
    #[serde(rename = "organization.id", skip_serializing_if = "Option::is_none", default)]
    pub school_uai: Option<String>,
    /// The school's name (enrichment).
    #[serde(rename = "organization.name", skip_serializing_if = "Option::is_none", default)]
    pub school_name: Option<String>,

    /// The raw line as read, for evidence and re-parsing.
    #[serde(rename = "event.original")]
    pub original: String,
}

impl Event {
    /// The event as nested ECS JSON (`{"source": {"ip": …}}`), the shape of Elastic's
    /// documents and expected-output files; `url.original` is rebuilt from path and query.
    pub fn to_ecs_json(&self) -> serde_json::Value {
        serde_json::to_value(ecs::Doc::of(self)).expect("an Event always serialises")
    }

    /// Appends [`Event::to_ecs_json`]'s document to `out`, byte for byte what `serde_json`
    /// writes of it, without building it in memory first (the hot path of `vigie parse`; see
    /// the `json` module).
    pub fn write_ecs_json(&self, out: &mut Vec<u8>) {
        json::write(&LineEvent::borrowing(self), out);
    }
}

mod json;
mod line;

pub use json::JsonId;
pub(crate) use json::write_with_id as write_ecs_json_with_id;
pub use line::LineEvent;

/// The nested ECS shape of an [`Event`], borrowed from it field by field.
mod ecs {
    use std::borrow::Cow;
    use std::net::IpAddr;

    use serde::Serialize;

    use super::{Category, Event};

    /// True when nothing in a part is set: the part is left out, as absent fields are.
    trait Empty {
        fn empty(&self) -> bool;
    }

    impl<T> Empty for Option<T> {
        fn empty(&self) -> bool {
            self.is_none()
        }
    }

    macro_rules! empty_when_all_empty {
        ($($ty:ty { $($field:ident),+ })*) => {$(
            impl Empty for $ty {
                fn empty(&self) -> bool {
                    $(self.$field.empty())&&+
                }
            }
        )*};
    }

    #[derive(Serialize)]
    struct Geo<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        country_iso_code: Option<&'a str>,
        #[serde(skip_serializing_if = "Empty::empty")]
        city_name: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct AsOrganization<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        name: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct AutonomousSystem<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        number: Option<u32>,
        #[serde(skip_serializing_if = "Empty::empty")]
        organization: AsOrganization<'a>,
    }

    #[derive(Serialize)]
    struct Endpoint<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        ip: Option<IpAddr>,
        #[serde(skip_serializing_if = "Empty::empty")]
        port: Option<u16>,
        #[serde(skip_serializing_if = "Empty::empty")]
        bytes: Option<u64>,
        #[serde(skip_serializing_if = "Empty::empty")]
        geo: Geo<'a>,
        #[serde(rename = "as", skip_serializing_if = "Empty::empty")]
        autonomous_system: AutonomousSystem<'a>,
    }

    #[derive(Serialize)]
    struct Network<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        transport: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct User<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        name: Option<&'a str>,
        #[serde(skip_serializing_if = "Empty::empty")]
        roles: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct Request<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        method: Option<&'a str>,
        #[serde(skip_serializing_if = "Empty::empty")]
        referrer: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct Response {
        #[serde(skip_serializing_if = "Empty::empty")]
        status_code: Option<u16>,
    }

    #[derive(Serialize)]
    struct Http<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        request: Request<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        response: Response,
        #[serde(skip_serializing_if = "Empty::empty")]
        version: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct Url<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        original: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Empty::empty")]
        path: Option<&'a str>,
        #[serde(skip_serializing_if = "Empty::empty")]
        query: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct Named<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        name: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct Original<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        original: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct Ingress<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        interface: Named<'a>,
    }

    #[derive(Serialize)]
    struct Observer<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        hostname: Option<&'a str>,
        #[serde(skip_serializing_if = "Empty::empty")]
        ingress: Ingress<'a>,
    }

    #[derive(Serialize)]
    struct Log<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        level: Option<&'a str>,
    }

    #[derive(Serialize)]
    struct Organization<'a> {
        #[serde(skip_serializing_if = "Empty::empty")]
        id: Option<&'a str>,
        #[serde(skip_serializing_if = "Empty::empty")]
        name: Option<&'a str>,
    }

    empty_when_all_empty! {
        Geo<'_> { country_iso_code, city_name }
        AsOrganization<'_> { name }
        AutonomousSystem<'_> { number, organization }
        Endpoint<'_> { ip, port, bytes, geo, autonomous_system }
        Network<'_> { transport }
        User<'_> { name, roles }
        Request<'_> { method, referrer }
        Response { status_code }
        Http<'_> { request, response, version }
        Url<'_> { original, path, query }
        Named<'_> { name }
        Original<'_> { original }
        Ingress<'_> { interface }
        Observer<'_> { hostname, ingress }
        Log<'_> { level }
        Organization<'_> { id, name }
    }

    #[derive(Serialize)]
    struct EventPart<'a> {
        id: &'a str,
        dataset: &'a str,
        category: Category,
        #[serde(skip_serializing_if = "Empty::empty")]
        action: Option<&'a str>,
        #[serde(skip_serializing_if = "Empty::empty")]
        duration: Option<u64>,
        #[serde(skip_serializing_if = "Empty::empty")]
        timezone_offset_seconds: Option<i32>,
        original: &'a str,
    }

    #[derive(Serialize)]
    pub(super) struct Doc<'a> {
        #[serde(rename = "@timestamp")]
        timestamp: jiff::Timestamp,
        event: EventPart<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        source: Endpoint<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        destination: Endpoint<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        network: Network<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        user: User<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        http: Http<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        url: Url<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        user_agent: Original<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        observer: Observer<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        rule: Named<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        log: Log<'a>,
        #[serde(skip_serializing_if = "Empty::empty")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "Empty::empty")]
        organization: Organization<'a>,
    }

    impl<'a> Doc<'a> {
        pub(super) fn of(e: &'a Event) -> Doc<'a> {
            let s = |v: &'a Option<String>| v.as_deref();
            let original = e.url_path.as_deref().map(|path| match &e.url_query {
                Some(q) => Cow::Owned(format!("{path}?{q}")),
                None => Cow::Borrowed(path),
            });
            Doc {
                timestamp: e.timestamp,
                event: EventPart {
                    id: e.id.as_str(),
                    dataset: &e.dataset,
                    category: e.category,
                    action: s(&e.action),
                    duration: e.duration_ns,
                    timezone_offset_seconds: e.utc_offset_seconds,
                    original: &e.original,
                },
                source: Endpoint {
                    ip: e.source_ip,
                    port: e.source_port,
                    bytes: e.source_bytes,
                    geo: Geo { country_iso_code: s(&e.source_country), city_name: s(&e.source_city) },
                    autonomous_system: AutonomousSystem {
                        number: e.source_as_number,
                        organization: AsOrganization { name: s(&e.source_as_organization) },
                    },
                },
                destination: Endpoint {
                    ip: e.destination_ip,
                    port: e.destination_port,
                    bytes: e.destination_bytes,
                    geo: Geo { country_iso_code: None, city_name: None },
                    autonomous_system: AutonomousSystem { number: None, organization: AsOrganization { name: None } },
                },
                network: Network { transport: s(&e.transport) },
                user: User { name: s(&e.user_name), roles: s(&e.user_role) },
                http: Http {
                    request: Request { method: s(&e.http_method), referrer: s(&e.http_referrer) },
                    response: Response { status_code: e.http_status },
                    version: s(&e.http_version),
                },
                url: Url { original, path: s(&e.url_path), query: s(&e.url_query) },
                user_agent: Original { original: s(&e.user_agent) },
                observer: Observer {
                    hostname: s(&e.observer_hostname),
                    ingress: Ingress { interface: Named { name: s(&e.observer_ingress_interface) } },
                },
                rule: Named { name: s(&e.rule_name) },
                log: Log { level: s(&e.log_level) },
                message: s(&e.message),
                organization: Organization { id: s(&e.school_uai), name: s(&e.school_name) },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_join_source_file_and_position() {
        assert_eq!(EventId::at("web", 4096).as_str(), "web:4096");
        assert_eq!(EventId::at("", 0).as_str(), ":0");
        let mut id = EventId::at("a-much-longer-source-name", 123_456);
        id.set_at("web", 7);
        assert_eq!(id, EventId::at("web", 7));
        assert_eq!(
            EventId::in_file("apache-main", "3fa2c1d09b7e", u64::MAX).as_str(),
            "apache-main:3fa2c1d09b7e:18446744073709551615"
        );
    }

    #[test]
    fn ecs_json_is_nested() {
        let event = Event {
            id: EventId::at("web", 7),
            timestamp: "2025-04-07T12:30:00Z".parse().unwrap(),
            dataset: "apache.access".into(),
            source_ip: Some("192.0.2.1".parse().unwrap()),
            source_port: Some(51000),
            http_status: Some(404),
            url_path: Some("/ent/blog/".into()),
            url_query: Some("p=2".into()),
            original: "line".into(),
            ..Event::default()
        };
        let json = event.to_ecs_json();
        assert_eq!(json["source"]["ip"], "192.0.2.1");
        assert_eq!(json["source"]["port"], 51000);
        assert_eq!(json["http"]["response"]["status_code"], 404);
        assert_eq!(json["url"]["original"], "/ent/blog/?p=2");
        assert_eq!(json["url"]["path"], "/ent/blog/");
        assert_eq!(json["@timestamp"], "2025-04-07T12:30:00Z");
        assert_eq!(json["event"]["dataset"], "apache.access");
        assert!(json.get("destination").is_none(), "absent fields are left out");
    }

    /// An event with every field set (values of an access line, some made up), for the tests
    /// that must see every field.
    pub(crate) fn full_event() -> Event {
        Event {
            id: EventId::at("web", 7),
            timestamp: "2025-04-07T12:30:00Z".parse().unwrap(),
            utc_offset_seconds: Some(7200),
            dataset: "apache.access".into(),
            category: Category::Web,
            action: Some("consultation".into()),
            duration_ns: Some(1500),
            source_ip: Some("192.0.2.1".parse().unwrap()),
            source_port: Some(51000),
            destination_ip: Some("192.0.2.10".parse().unwrap()),
            destination_port: Some(443),
            transport: Some("tcp".into()),
            source_bytes: Some(10),
            destination_bytes: Some(20),
            user_name: Some("lea".into()),
            http_method: Some("GET".into()),
            http_version: Some("1.1".into()),
            http_status: Some(200),
            http_referrer: Some("-".into()),
            url_path: Some("/a".into()),
            url_query: Some("b=1".into()),
            user_agent: Some("curl".into()),
            observer_hostname: Some("ent".into()),
            observer_ingress_interface: Some("eth0".into()),
            rule_name: Some("DROP".into()),
            log_level: Some("error".into()),
            message: Some("m".into()),
            source_country: Some("FR".into()),
            source_city: Some("Lyon".into()),
            source_as_number: Some(3215),
            source_as_organization: Some("Orange".into()),
            user_role: Some("eleve".into()),
            school_uai: Some("0692011T".into()),
            school_name: Some("École".into()),
            original: "line".into(),
        }
    }

    /// The nested document holds exactly the flat serialisation's fields, nested by their
    /// dots (plus `url.original`): checked on an event with every field set.
    #[test]
    fn ecs_json_agrees_with_the_flat_field_names() {
        let full = full_event();
        let serde_json::Value::Object(flat) = serde_json::to_value(&full).unwrap() else { panic!() };
        let nested = full.to_ecs_json();
        let mut count = 0;
        for (key, value) in &flat {
            let pointer = if key.starts_with('@') { format!("/{key}") } else { format!("/{}", key.replace('.', "/")) };
            assert_eq!(nested.pointer(&pointer), Some(value), "{key}");
            count += 1;
        }
        fn leaves(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::Object(m) => m.values().map(leaves).sum(),
                _ => 1,
            }
        }
        assert_eq!(leaves(&nested), count + 1, "only url.original is added");
        let mut written = Vec::new();
        full.write_ecs_json(&mut written);
        assert_eq!(written, serde_json::to_vec(&ecs::Doc::of(&full)).unwrap());
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&written).unwrap(), nested);
    }

    mod hand_written_json {
        use proptest::prelude::*;

        use super::*;

        fn text() -> impl Strategy<Value = String> {
            // Mostly log-like text, with quotes, backslashes, control and non-ASCII characters.
            proptest::string::string_regex(r#"[ -~\\"\x00-\x1f\x7fé日\x{10348}]{0,40}"#).unwrap()
        }

        fn maybe(s: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
            proptest::option::of(s)
        }

        fn ip() -> impl Strategy<Value = Option<IpAddr>> {
            proptest::option::of(prop_oneof![
                any::<[u8; 4]>().prop_map(IpAddr::from),
                any::<[u16; 8]>().prop_map(IpAddr::from),
                // Runs of zeros, which the text form shortens.
                (any::<u16>(), 0usize..8).prop_map(|(v, at)| {
                    let mut parts = [0u16; 8];
                    parts[at] = v;
                    IpAddr::from(parts)
                }),
            ])
        }

        prop_compose! {
            fn event()(
                seconds in 0i64..4_000_000_000,
                nanos in prop_oneof![Just(0i32), 0i32..1_000_000_000],
                offset in proptest::option::of(-50_000i32..50_000),
                category in prop_oneof![Just(Category::Web), Just(Category::Network), Just(Category::Diagnostic)],
                strings in proptest::collection::vec(maybe(text()), 20),
                source_ip in ip(),
                destination_ip in ip(),
                numbers in proptest::collection::vec(proptest::option::of(any::<u64>()), 3),
                ports in proptest::collection::vec(proptest::option::of(any::<u16>()), 3),
                as_number in proptest::option::of(any::<u32>()),
                id in text(),
                original in text(),
            ) -> Event {
                let mut s = strings.into_iter();
                let mut next = move || s.next().flatten();
                Event {
                    id: EventId(id),
                    timestamp: jiff::Timestamp::new(seconds, nanos).unwrap(),
                    utc_offset_seconds: offset,
                    dataset: next().unwrap_or_default(),
                    category,
                    action: next(),
                    duration_ns: numbers[0],
                    source_ip,
                    source_port: ports[0],
                    destination_ip,
                    destination_port: ports[1],
                    transport: next(),
                    source_bytes: numbers[1],
                    destination_bytes: numbers[2],
                    user_name: next(),
                    http_method: next(),
                    http_version: next(),
                    http_status: ports[2],
                    http_referrer: next(),
                    url_path: next(),
                    url_query: next(),
                    user_agent: next(),
                    observer_hostname: next(),
                    observer_ingress_interface: next(),
                    rule_name: next(),
                    log_level: next(),
                    message: next(),
                    source_country: next(),
                    source_city: next(),
                    source_as_number: as_number,
                    source_as_organization: next(),
                    user_role: next(),
                    school_uai: next(),
                    school_name: next(),
                    original,
                }
            }
        }

        proptest! {
            /// The hand-written writer gives exactly `serde_json`'s bytes of the serde model.
            #[test]
            fn writes_serde_json_bytes(event in event()) {
                let mut written = Vec::new();
                event.write_ecs_json(&mut written);
                prop_assert_eq!(
                    String::from_utf8(written).unwrap(),
                    serde_json::to_string(&ecs::Doc::of(&event)).unwrap()
                );
            }
        }
    }
}
