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
        EventId(format!("{source}:{position}"))
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
        let flat = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("an Event always serialises to a JSON object"),
        };
        let mut root = serde_json::Map::new();
        for (key, value) in flat {
            insert_dotted(&mut root, &key, value);
        }
        if let Some(path) = &self.url_path {
            let original = match &self.url_query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            insert_dotted(&mut root, "url.original", serde_json::Value::String(original));
        }
        serde_json::Value::Object(root)
    }
}

fn insert_dotted(root: &mut serde_json::Map<String, serde_json::Value>, key: &str, value: serde_json::Value) {
    match key.split_once('.') {
        // `@timestamp` and other undotted keys stay at the top.
        None => {
            root.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let child =
                root.entry(head.to_owned()).or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(map) = child {
                insert_dotted(map, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
