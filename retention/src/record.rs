//! The connection-identification record: what the law asks us to keep of one event, and nothing more.
//!
//! Décret 2021-1362 asks a host to keep, for one year, the connection identifier (client IP
//! and source port), the protocol, the nature of the operation, its date, time and duration,
//! the account and the terminal. L34-1 CPCE forbids keeping the content consulted, so a record
//! has no field for the URL path, the query string, the referrer, a body or the raw line:
//! the path is only *read* here to name a coarse operation type, never copied.

use std::net::IpAddr;

use collector::{Category, Event};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One record of the legal archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// The event's deterministic id; re-archiving the same id replaces the record.
    pub event_id: String,
    /// When the connection happened (UTC).
    pub timestamp: Timestamp,
    /// The offset the source wrote the time with, so the original local time is unambiguous.
    pub utc_offset_seconds: Option<i32>,
    /// The parser the event came from (`apache.access`, `iptables.log`...).
    pub dataset: String,
    pub source_ip: Option<IpAddr>,
    pub source_port: Option<u16>,
    pub destination_ip: Option<IpAddr>,
    pub destination_port: Option<u16>,
    /// `HTTP/1.1`, `tcp`...
    pub protocol: Option<String>,
    /// A route-free operation type (see [`ConnectionRecord::from_event`]).
    pub operation: String,
    pub user_name: Option<String>,
    /// The terminal, as its user agent names it.
    pub user_agent: Option<String>,
    pub status: Option<u16>,
    pub duration_ns: Option<u64>,
    /// UAI of the school the client belongs to.
    pub school_uai: Option<String>,
    /// The web server or firewall that logged the connection.
    pub observer: Option<String>,
}

impl ConnectionRecord {
    /// The record to archive for `event`, or `None` when the event identifies no connection
    /// (no client address, e.g. an error-log line without client) or has no id yet (it could
    /// not be archived idempotently, and an empty id would collide with every other one).
    ///
    /// The operation is one of `connexion`, `déconnexion`, `consultation`, `création`,
    /// `modification`, `suppression`, `requête` (other HTTP methods), `erreur` (an error-log
    /// line with a client) and `pare-feu:<action>` for firewall events.
    pub fn from_event(event: &Event) -> Option<ConnectionRecord> {
        let source_ip = event.source_ip?;
        if event.id.as_str().is_empty() {
            return None;
        }
        let (operation, protocol) = match event.category {
            Category::Web => (web_operation(event), http_protocol(event).or_else(|| event.transport.clone())),
            Category::Network => (
                format!("pare-feu:{}", present(&event.action).unwrap_or("inconnu").to_lowercase()),
                event.transport.as_ref().map(|t| t.to_lowercase()),
            ),
            Category::Diagnostic => ("erreur".to_owned(), event.transport.clone()),
        };
        Some(ConnectionRecord {
            event_id: event.id.as_str().to_owned(),
            timestamp: event.timestamp,
            utc_offset_seconds: event.utc_offset_seconds,
            dataset: event.dataset.clone(),
            source_ip: Some(source_ip),
            source_port: event.source_port,
            destination_ip: event.destination_ip,
            destination_port: event.destination_port,
            protocol,
            operation,
            user_name: present(&event.user_name).map(str::to_owned),
            user_agent: present(&event.user_agent).map(str::to_owned),
            status: event.http_status,
            duration_ns: event.duration_ns,
            school_uai: present(&event.school_uai).map(str::to_owned),
            observer: present(&event.observer_hostname).map(str::to_owned),
        })
    }
}

/// A log's placeholder for "absent" (`-`, empty) is not a value worth keeping.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty() && *v != "-")
}

/// `HTTP/1.1` from ECS `http.version` (`1.1`); some parsers already keep the prefix.
fn http_protocol(event: &Event) -> Option<String> {
    let version = present(&event.http_version)?;
    if version.to_ascii_uppercase().starts_with("HTTP") {
        Some(version.to_ascii_uppercase())
    } else {
        Some(format!("HTTP/{version}"))
    }
}

/// Path segments that name a login or logout endpoint in the ENT and its identity provider
/// (ENT NG `/auth/login`, CAS `/cas/login`, SAML/OIDC `/signin`...). Matching whole segments
/// keeps `/blog/loginfo` from counting as a login.
const LOGIN_SEGMENTS: &[&str] = &["login", "connexion", "signin", "authenticate", "sso"];
const LOGOUT_SEGMENTS: &[&str] = &["logout", "deconnexion", "déconnexion", "signout", "slo"];

fn web_operation(event: &Event) -> String {
    let method = present(&event.http_method).map(str::to_ascii_uppercase);
    let segments = path_segments(event.url_path.as_deref().unwrap_or(""));
    let names = |list: &[&str]| segments.iter().any(|s| list.contains(&s.as_str()));
    if names(LOGOUT_SEGMENTS) {
        return "déconnexion".to_owned();
    }
    // Displaying the login form (GET) is a consultation; submitting it is the connection.
    if names(LOGIN_SEGMENTS) && method.as_deref() == Some("POST") {
        return "connexion".to_owned();
    }
    match method.as_deref() {
        Some("GET" | "HEAD" | "OPTIONS") | None => "consultation",
        Some("POST") => "création",
        Some("PUT" | "PATCH") => "modification",
        Some("DELETE") => "suppression",
        Some(_) => "requête",
    }
    .to_owned()
}

/// The lowercased segments of a path, without the query string or the extension of the last
/// segment (`/auth/login.php` names the same operation as `/auth/login`).
fn path_segments(path: &str) -> Vec<String> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = s.to_lowercase();
            match s.rsplit_once('.') {
                Some((stem, _ext)) if !stem.is_empty() => stem.to_owned(),
                _ => s,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector::EventId;

    fn web(method: &str, path: &str) -> Event {
        Event {
            id: EventId::at("apache-main", 42),
            timestamp: "2025-04-07T12:30:00Z".parse().unwrap(),
            utc_offset_seconds: Some(7200),
            dataset: "apache.access".into(),
            category: Category::Web,
            source_ip: Some("192.0.2.10".parse().unwrap()),
            source_port: Some(51234),
            http_method: Some(method.into()),
            http_version: Some("1.1".into()),
            http_status: Some(200),
            url_path: Some(path.into()),
            url_query: Some("eleve=Dupont".into()),
            http_referrer: Some("https://ent.example/fiche/Dupont".into()),
            user_name: Some("jdupont".into()),
            user_agent: Some("Mozilla/5.0".into()),
            observer_hostname: Some("web1".into()),
            original: "the raw line".into(),
            ..Event::default()
        }
    }

    fn check(method: &str, path: &str, expected: &str) {
        let record = ConnectionRecord::from_event(&web(method, path)).unwrap();
        assert_eq!(record.operation, expected, "{method} {path}");
    }

    #[test]
    fn operations_are_named_without_the_route() {
        check("POST", "/auth/login", "connexion");
        check("GET", "/auth/login", "consultation");
        check("POST", "/cas/login.php", "connexion");
        check("GET", "/auth/logout", "déconnexion");
        check("GET", "/blog/loginfo", "consultation");
        check("GET", "/eleves/dupont/bulletin", "consultation");
        check("POST", "/blog/article", "création");
        check("PUT", "/blog/article/12", "modification");
        check("patch", "/blog/article/12", "modification");
        check("DELETE", "/blog/article/12", "suppression");
        check("PROPFIND", "/dav", "requête");
    }

    #[test]
    fn a_web_event_keeps_identification_fields_only() {
        let record = ConnectionRecord::from_event(&web("GET", "/eleves/durand-bulletin")).unwrap();
        assert_eq!(
            record,
            ConnectionRecord {
                event_id: "apache-main:42".into(),
                timestamp: "2025-04-07T12:30:00Z".parse().unwrap(),
                utc_offset_seconds: Some(7200),
                dataset: "apache.access".into(),
                source_ip: Some("192.0.2.10".parse().unwrap()),
                source_port: Some(51234),
                destination_ip: None,
                destination_port: None,
                protocol: Some("HTTP/1.1".into()),
                operation: "consultation".into(),
                user_name: Some("jdupont".into()),
                user_agent: Some("Mozilla/5.0".into()),
                status: Some(200),
                duration_ns: None,
                school_uai: None,
                observer: Some("web1".into()),
            }
        );
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("durand") && !json.contains("bulletin"), "the path leaked: {json}");
        assert!(!json.contains("Dupont"), "the query or referrer leaked: {json}");
    }

    #[test]
    fn firewall_events_name_the_decision() {
        let event = Event {
            id: EventId::at("fw", 7),
            dataset: "iptables.log".into(),
            category: Category::Network,
            action: Some("BLOCK".into()),
            transport: Some("TCP".into()),
            source_ip: Some("81.2.69.143".parse().unwrap()),
            source_port: Some(17805),
            destination_ip: Some("172.16.54.114".parse().unwrap()),
            destination_port: Some(445),
            ..Event::default()
        };
        let record = ConnectionRecord::from_event(&event).unwrap();
        assert_eq!(record.operation, "pare-feu:block");
        assert_eq!(record.protocol.as_deref(), Some("tcp"));
        assert_eq!(record.destination_port, Some(445));
    }

    #[test]
    fn events_without_client_or_id_are_not_records() {
        let error_line = Event {
            id: EventId::at("apache-error", 1),
            category: Category::Diagnostic,
            message: Some("server reached MaxRequestWorkers".into()),
            ..Event::default()
        };
        assert_eq!(ConnectionRecord::from_event(&error_line), None);
        let with_client = Event { source_ip: Some("192.0.2.1".parse().unwrap()), ..error_line };
        assert_eq!(ConnectionRecord::from_event(&with_client).unwrap().operation, "erreur");
        let no_id = Event { id: EventId::default(), ..web("GET", "/") };
        assert_eq!(ConnectionRecord::from_event(&no_id), None);
    }

    #[test]
    fn dash_placeholders_are_absent_values() {
        let event = Event { user_name: Some("-".into()), user_agent: Some("-".into()), ..web("GET", "/") };
        let record = ConnectionRecord::from_event(&event).unwrap();
        assert_eq!((record.user_name, record.user_agent), (None, None));
    }
}
