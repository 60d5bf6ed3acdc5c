//! The wire format of what travels through Kafka: two header bytes, then the payload.
//!
//! ```text
//! byte 0   WIRE_VERSION (1)   a reader refuses a version it does not know, never guesses
//! byte 1   encoding           0 = postcard (compact binary), 1 = JSON
//! 2..      payload            an event (topic `events`) or a detection (topic `detections`)
//! ```
//!
//! Both encodings are always readable, so a producer can be switched to JSON to inspect a
//! topic with any Kafka tool, and back, without draining it first. Producers write the
//! binary encoding by default: no field names, varint integers and 4- or 16-byte addresses
//! make it less than half the JSON size (asserted by a unit test on a full event);
//! `cargo bench -p bus --bench wire` measures size and encode/decode speed of both on the
//! 10,000 real Apache lines of the shared fixtures. Postcard was chosen over bincode for
//! being maintained, small, and stable in format within its 1.x line.
//!
//! The binary form of an event is [`WireEventV1`], a field-for-field copy of
//! [`collector::Event`] without the serde attributes that a non-self-describing format cannot
//! honour (`skip_serializing_if`). Converting destructures the event exhaustively, so a field
//! added to `Event` fails to compile here until the wire format (and its version) follows.

use std::net::IpAddr;

use analyzer::Detection;
use collector::{Category, Event, EventId};
use serde::{Deserialize, Serialize};

/// The version written in byte 0 of every message.
pub const WIRE_VERSION: u8 = 1;

/// How the payload after the two header bytes is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// postcard: compact and fast; the default.
    #[default]
    Binary,
    /// JSON with Vigie's flat ECS field names: readable with any Kafka tool.
    Json,
}

impl Encoding {
    fn tag(self) -> u8 {
        match self {
            Encoding::Binary => 0,
            Encoding::Json => 1,
        }
    }

    fn from_tag(tag: u8) -> Option<Encoding> {
        match tag {
            0 => Some(Encoding::Binary),
            1 => Some(Encoding::Json),
            _ => None,
        }
    }
}

/// A message that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("wire format version {0} is not known to this vigie (it reads version {WIRE_VERSION}); upgrade it")]
    UnknownVersion(u8),
    #[error("unknown payload encoding {0}")]
    UnknownEncoding(u8),
    #[error("binary payload: {0}")]
    Binary(#[from] postcard::Error),
    #[error("JSON payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("timestamp out of range: {0}")]
    Timestamp(#[from] jiff::Error),
}

/// The binary layout of an event, version 1. Field order is the format: never reorder,
/// only append in a new version.
#[derive(Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct WireEventV1 {
    pub id: String,
    pub seconds: i64,
    pub nanos: i32,
    pub utc_offset_seconds: Option<i32>,
    pub dataset: String,
    pub category: u8,
    pub action: Option<String>,
    pub duration_ns: Option<u64>,
    pub source_ip: Option<IpAddr>,
    pub source_port: Option<u16>,
    pub destination_ip: Option<IpAddr>,
    pub destination_port: Option<u16>,
    pub transport: Option<String>,
    pub source_bytes: Option<u64>,
    pub destination_bytes: Option<u64>,
    pub user_name: Option<String>,
    pub http_method: Option<String>,
    pub http_version: Option<String>,
    pub http_status: Option<u16>,
    pub http_referrer: Option<String>,
    pub url_path: Option<String>,
    pub url_query: Option<String>,
    pub user_agent: Option<String>,
    pub observer_hostname: Option<String>,
    pub observer_ingress_interface: Option<String>,
    pub rule_name: Option<String>,
    pub log_level: Option<String>,
    pub message: Option<String>,
    pub source_country: Option<String>,
    pub source_city: Option<String>,
    pub source_as_number: Option<u32>,
    pub source_as_organization: Option<String>,
    pub user_role: Option<String>,
    pub school_uai: Option<String>,
    pub school_name: Option<String>,
    pub original: String,
}

fn category_tag(c: Category) -> u8 {
    match c {
        Category::Web => 0,
        Category::Network => 1,
        Category::Diagnostic => 2,
    }
}

fn category_from(tag: u8) -> Category {
    match tag {
        1 => Category::Network,
        2 => Category::Diagnostic,
        _ => Category::Web,
    }
}

impl WireEventV1 {
    fn from_event(event: &Event) -> WireEventV1 {
        // Exhaustive on purpose: a new field in `Event` must be added to the wire format.
        let Event {
            id,
            timestamp,
            utc_offset_seconds,
            dataset,
            category,
            action,
            duration_ns,
            source_ip,
            source_port,
            destination_ip,
            destination_port,
            transport,
            source_bytes,
            destination_bytes,
            user_name,
            http_method,
            http_version,
            http_status,
            http_referrer,
            url_path,
            url_query,
            user_agent,
            observer_hostname,
            observer_ingress_interface,
            rule_name,
            log_level,
            message,
            source_country,
            source_city,
            source_as_number,
            source_as_organization,
            user_role,
            school_uai,
            school_name,
            original,
        } = event.clone();
        WireEventV1 {
            id: id.0,
            seconds: timestamp.as_second(),
            nanos: timestamp.subsec_nanosecond(),
            utc_offset_seconds,
            dataset,
            category: category_tag(category),
            action,
            duration_ns,
            source_ip,
            source_port,
            destination_ip,
            destination_port,
            transport,
            source_bytes,
            destination_bytes,
            user_name,
            http_method,
            http_version,
            http_status,
            http_referrer,
            url_path,
            url_query,
            user_agent,
            observer_hostname,
            observer_ingress_interface,
            rule_name,
            log_level,
            message,
            source_country,
            source_city,
            source_as_number,
            source_as_organization,
            user_role,
            school_uai,
            school_name,
            original,
        }
    }

    fn into_event(self) -> Result<Event, WireError> {
        let w = self;
        Ok(Event {
            id: EventId(w.id),
            timestamp: jiff::Timestamp::new(w.seconds, w.nanos)?,
            utc_offset_seconds: w.utc_offset_seconds,
            dataset: w.dataset,
            category: category_from(w.category),
            action: w.action,
            duration_ns: w.duration_ns,
            source_ip: w.source_ip,
            source_port: w.source_port,
            destination_ip: w.destination_ip,
            destination_port: w.destination_port,
            transport: w.transport,
            source_bytes: w.source_bytes,
            destination_bytes: w.destination_bytes,
            user_name: w.user_name,
            http_method: w.http_method,
            http_version: w.http_version,
            http_status: w.http_status,
            http_referrer: w.http_referrer,
            url_path: w.url_path,
            url_query: w.url_query,
            user_agent: w.user_agent,
            observer_hostname: w.observer_hostname,
            observer_ingress_interface: w.observer_ingress_interface,
            rule_name: w.rule_name,
            log_level: w.log_level,
            message: w.message,
            source_country: w.source_country,
            source_city: w.source_city,
            source_as_number: w.source_as_number,
            source_as_organization: w.source_as_organization,
            user_role: w.user_role,
            school_uai: w.school_uai,
            school_name: w.school_name,
            original: w.original,
        })
    }
}

fn header(encoding: Encoding, out: &mut Vec<u8>) {
    out.clear();
    out.push(WIRE_VERSION);
    out.push(encoding.tag());
}

fn split(bytes: &[u8]) -> Result<(Encoding, &[u8]), WireError> {
    let (&version, rest) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnknownVersion(version));
    }
    let (&tag, payload) = rest.split_first().ok_or(WireError::Empty)?;
    let encoding = Encoding::from_tag(tag).ok_or(WireError::UnknownEncoding(tag))?;
    Ok((encoding, payload))
}

/// Writes `event` into `out` (cleared first).
pub fn encode_event(event: &Event, encoding: Encoding, out: &mut Vec<u8>) -> Result<(), WireError> {
    header(encoding, out);
    match encoding {
        Encoding::Binary => {
            let bytes = postcard::to_extend(&WireEventV1::from_event(event), std::mem::take(out))?;
            *out = bytes;
        }
        Encoding::Json => serde_json::to_writer(&mut *out, event)?,
    }
    Ok(())
}

/// Reads an event written by [`encode_event`] in either encoding.
pub fn decode_event(bytes: &[u8]) -> Result<Event, WireError> {
    match split(bytes)? {
        (Encoding::Binary, payload) => postcard::from_bytes::<WireEventV1>(payload)?.into_event(),
        (Encoding::Json, payload) => Ok(serde_json::from_slice(payload)?),
    }
}

/// Writes `detection` into `out` (cleared first).
pub fn encode_detection(detection: &Detection, encoding: Encoding, out: &mut Vec<u8>) -> Result<(), WireError> {
    header(encoding, out);
    match encoding {
        Encoding::Binary => {
            let bytes = postcard::to_extend(detection, std::mem::take(out))?;
            *out = bytes;
        }
        Encoding::Json => serde_json::to_writer(&mut *out, detection)?,
    }
    Ok(())
}

/// Reads a detection written by [`encode_detection`] in either encoding.
pub fn decode_detection(bytes: &[u8]) -> Result<Detection, WireError> {
    match split(bytes)? {
        (Encoding::Binary, payload) => Ok(postcard::from_bytes(payload)?),
        (Encoding::Json, payload) => Ok(serde_json::from_slice(payload)?),
    }
}

/// The partition key of an event: its source address, so that one offender's events (and so
/// its windows) land in one partition; events without one are keyed by their id.
pub fn event_key(event: &Event) -> String {
    match event.source_ip {
        Some(ip) => ip.to_string(),
        None => event.id.0.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_event() -> Event {
        Event {
            id: EventId::at("ent-apache", 4096),
            timestamp: "2025-04-07T12:30:00.123456789Z".parse().unwrap(),
            utc_offset_seconds: Some(7200),
            dataset: "apache.access".into(),
            category: Category::Network,
            action: Some("block".into()),
            duration_ns: Some(1_500_000),
            source_ip: Some("2001:db8::7".parse().unwrap()),
            source_port: Some(61000),
            destination_ip: Some("192.0.2.10".parse().unwrap()),
            destination_port: Some(443),
            transport: Some("tcp".into()),
            source_bytes: Some(10),
            destination_bytes: Some(2326),
            user_name: Some("lea.martin.ens".into()),
            http_method: Some("GET".into()),
            http_version: Some("1.1".into()),
            http_status: Some(200),
            http_referrer: Some("https://ent.example/".into()),
            url_path: Some("/ent/classe/".into()),
            url_query: Some("a=1".into()),
            user_agent: Some("Mozilla/5.0".into()),
            observer_hostname: Some("ent1".into()),
            observer_ingress_interface: Some("eth0".into()),
            rule_name: Some("DROP_INPUT".into()),
            log_level: Some("error".into()),
            message: Some("Gecko".into()),
            source_country: Some("FR".into()),
            source_city: Some("Lyon".into()),
            source_as_number: Some(3215),
            source_as_organization: Some("Orange".into()),
            user_role: Some("enseignant".into()),
            school_uai: Some("0690001A".into()),
            school_name: Some("École Jean Macé".into()),
            original: "the line, with \"quotes\" and é".into(),
        }
    }

    #[test]
    fn every_field_survives_both_encodings() {
        let event = full_event();
        let mut buf = Vec::new();
        for encoding in [Encoding::Binary, Encoding::Json] {
            encode_event(&event, encoding, &mut buf).unwrap();
            assert_eq!(buf[..2], [WIRE_VERSION, encoding.tag()]);
            assert_eq!(decode_event(&buf).unwrap(), event, "{encoding:?}");
        }
        let sparse = Event { id: EventId::at("fw", 1), dataset: "iptables.log".into(), ..Event::default() };
        encode_event(&sparse, Encoding::Binary, &mut buf).unwrap();
        assert_eq!(decode_event(&buf).unwrap(), sparse);
    }

    #[test]
    fn binary_is_smaller_than_json() {
        let event = full_event();
        let (mut bin, mut json) = (Vec::new(), Vec::new());
        encode_event(&event, Encoding::Binary, &mut bin).unwrap();
        encode_event(&event, Encoding::Json, &mut json).unwrap();
        assert!(bin.len() * 2 < json.len(), "binary {} bytes, JSON {} bytes", bin.len(), json.len());
    }

    #[test]
    fn unknown_versions_and_encodings_are_refused() {
        let mut buf = Vec::new();
        encode_event(&full_event(), Encoding::Binary, &mut buf).unwrap();
        buf[0] = 2;
        assert!(matches!(decode_event(&buf), Err(WireError::UnknownVersion(2))));
        buf[0] = WIRE_VERSION;
        buf[1] = 9;
        assert!(matches!(decode_event(&buf), Err(WireError::UnknownEncoding(9))));
        assert!(matches!(decode_event(&[]), Err(WireError::Empty)));
        assert!(decode_event(&[WIRE_VERSION, 0, 0xff]).is_err(), "a truncated payload is an error");
    }

    #[test]
    fn detections_round_trip() {
        let detection = Detection {
            id: "web.sqli:ent-apache:4096".into(),
            rule: "web.sqli".into(),
            title: "Injection SQL".into(),
            description: "Une requête contient une injection SQL".into(),
            severity: analyzer::Severity::Critical,
            cctp_class: analyzer::CctpClass::SecuriteMajeureCodePropre,
            mitre: Some("T1190".into()),
            timestamp: "2025-04-07T12:30:00Z".parse().unwrap(),
            source_ip: Some("203.0.113.9".parse().unwrap()),
            user_name: None,
            key: "source.ip=203.0.113.9".into(),
            evidence: "UNION SELECT".into(),
            event_id: EventId::at("ent-apache", 4096),
        };
        let mut buf = Vec::new();
        for encoding in [Encoding::Binary, Encoding::Json] {
            encode_detection(&detection, encoding, &mut buf).unwrap();
            assert_eq!(decode_detection(&buf).unwrap(), detection);
        }
    }

    #[test]
    fn events_are_keyed_by_source_address() {
        let event = full_event();
        assert_eq!(event_key(&event), "2001:db8::7");
        let none = Event { source_ip: None, ..full_event() };
        assert_eq!(event_key(&none), "ent-apache:4096");
    }
}
