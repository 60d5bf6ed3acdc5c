//! The connection-identification record: what the law asks us to keep of one event, and nothing more.
//!
//! Décret 2021-1362 asks a host to keep, for one year, the connection identifier (client IP
//! and source port), the protocol, the nature of the operation, its date, time and duration,
//! the account and the terminal. L34-1 CPCE forbids keeping the content consulted, so a record
//! has no field for the URL path, the query string, the referrer, a body or the raw line:
//! the path is only *read* here to name a coarse operation type, never copied.

use std::collections::HashMap;
use std::net::IpAddr;

use collector::{Category, Event};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::routes::RouteTable;

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
    /// The client's address.
    pub source_ip: Option<IpAddr>,
    /// The client's source port (needed behind carrier-grade NAT).
    pub source_port: Option<u16>,
    /// The server's (or, for the firewall, the target's) address.
    pub destination_ip: Option<IpAddr>,
    /// The server's (or target's) port.
    pub destination_port: Option<u16>,
    /// `HTTP/1.1`, `tcp`...
    pub protocol: Option<String>,
    /// The nature of the operation, from the route table (never the route itself), or
    /// `pare-feu:<action>` for firewall records.
    pub operation: String,
    /// The account (login or ENT user id).
    pub user_name: Option<String>,
    /// The user's category (`eleve`, `parent`, `enseignant`...), from the enrichment.
    #[serde(default)]
    pub user_category: Option<String>,
    /// The terminal, as its user agent names it.
    pub user_agent: Option<String>,
    /// The HTTP status (whether the operation succeeded).
    pub status: Option<u16>,
    /// How long the request took.
    pub duration_ns: Option<u64>,
    /// UAI of the school the client belongs to.
    pub school_uai: Option<String>,
    /// The web server or firewall that logged the connection.
    pub observer: Option<String>,
    /// `kind:id` of the content created, changed or deleted (`blog_article:1234`).
    #[serde(default)]
    pub content_id: Option<String>,
    /// On a logout, how long the session lasted since the same account's login, when that
    /// login was seen by this process.
    #[serde(default)]
    pub session_duration_s: Option<u64>,
    /// Recipients of an internal message, when a source reports them (access logs do not).
    #[serde(default)]
    pub recipients: Vec<String>,
}

impl ConnectionRecord {
    /// The record to archive for `event` with the default (Beneylu School 3) route table and
    /// no session tracking; see [`Recorder`].
    pub fn from_event(event: &Event) -> Option<ConnectionRecord> {
        Recorder::new(RouteTable::default()).record(event)
    }
}

/// At most this many open sessions are remembered for session durations; beyond, the oldest
/// login is forgotten (its logout then has no duration, nothing else is lost).
const MAX_TRACKED_SESSIONS: usize = 200_000;

/// Turns events into records: names operations from the route table and measures sessions
/// (login to logout of the same account).
#[derive(Debug, Clone)]
pub struct Recorder {
    routes: RouteTable,
    logins: HashMap<String, Timestamp>,
}

impl Recorder {
    /// A recorder naming operations with `routes`.
    pub fn new(routes: RouteTable) -> Recorder {
        Recorder { routes, logins: HashMap::new() }
    }

    /// The record to archive for `event`, or `None` when the event identifies no connection
    /// (no client address, e.g. an error-log line without client) or has no id yet (it could
    /// not be archived idempotently, and an empty id would collide with every other one).
    ///
    /// Web operations come from the route table; firewall events are `pare-feu:<action>`;
    /// error-log lines with a client are `erreur`.
    pub fn record(&mut self, event: &Event) -> Option<ConnectionRecord> {
        let source_ip = event.source_ip?;
        if event.id.as_str().is_empty() {
            return None;
        }
        let user_name = present(&event.user_name).map(str::to_owned);
        let (operation, content_id, protocol) = match event.category {
            Category::Web => {
                let op = self.routes.operation(present(&event.http_method), event.url_path.as_deref().unwrap_or("/"));
                (op.name, op.content_id, http_protocol(event).or_else(|| event.transport.clone()))
            }
            Category::Network => (
                format!("pare-feu:{}", present(&event.action).unwrap_or("inconnu").to_lowercase()),
                None,
                event.transport.as_ref().map(|t| t.to_lowercase()),
            ),
            Category::Diagnostic => ("erreur".to_owned(), None, event.transport.clone()),
        };
        let session_duration_s = match (operation.as_str(), &user_name) {
            ("connexion", Some(user)) => {
                if self.logins.len() >= MAX_TRACKED_SESSIONS
                    && !self.logins.contains_key(user)
                    && let Some(oldest) = self.logins.iter().min_by_key(|(_, t)| **t).map(|(u, _)| u.clone())
                {
                    self.logins.remove(&oldest);
                }
                self.logins.insert(user.clone(), event.timestamp);
                None
            }
            ("déconnexion", Some(user)) => self
                .logins
                .remove(user)
                .and_then(|start| u64::try_from(event.timestamp.duration_since(start).as_secs()).ok()),
            _ => None,
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
            user_name,
            user_category: present(&event.user_role).map(str::to_owned),
            user_agent: present(&event.user_agent).map(str::to_owned),
            status: event.http_status,
            duration_ns: event.duration_ns,
            school_uai: present(&event.school_uai).map(str::to_owned),
            observer: present(&event.observer_hostname).map(str::to_owned),
            content_id,
            session_duration_s,
            recipients: Vec::new(),
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
        check("POST", "/login_check", "connexion");
        check("GET", "/login_check", "consultation");
        check("POST", "/cas/login.php", "connexion");
        check("GET", "/logout", "déconnexion");
        check("GET", "/blog/loginfo", "consultation");
        check("GET", "/eleves/dupont/bulletin", "consultation");
        check("POST", "/blog/gestion/article/42/supprimer", "suppression");
        check("PROPFIND", "/dav", "requête");
    }

    #[test]
    fn a_logout_carries_the_session_duration_of_the_same_account() {
        let mut recorder = Recorder::new(RouteTable::default());
        let login = Event { timestamp: "2025-04-07T08:00:00Z".parse().unwrap(), ..web("POST", "/login_check") };
        let other = Event { user_name: Some("autre".into()), ..web("GET", "/logout") };
        let logout = Event { timestamp: "2025-04-07T08:25:30Z".parse().unwrap(), ..web("GET", "/logout") };
        assert_eq!(recorder.record(&login).unwrap().session_duration_s, None);
        assert_eq!(recorder.record(&other).unwrap().session_duration_s, None, "another account's logout");
        let out = recorder.record(&logout).unwrap();
        assert_eq!((out.operation.as_str(), out.session_duration_s), ("déconnexion", Some(1530)));
        assert_eq!(recorder.record(&logout).unwrap().session_duration_s, None, "a session ends once");
    }

    #[test]
    fn content_changes_keep_the_content_id_and_the_category() {
        let event =
            Event { user_role: Some("enseignant".into()), ..web("POST", "/blog/gestion/article/881/supprimer") };
        let record = ConnectionRecord::from_event(&event).unwrap();
        assert_eq!(record.content_id.as_deref(), Some("blog_article:881"));
        assert_eq!(record.user_category.as_deref(), Some("enseignant"));
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
                user_category: None,
                user_agent: Some("Mozilla/5.0".into()),
                status: Some(200),
                duration_ns: None,
                school_uai: None,
                observer: Some("web1".into()),
                content_id: None,
                session_duration_s: None,
                recipients: Vec::new(),
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
