//! The records of the committed compatibility archives (`tests/compat/v<N>`), shared by their
//! generator (`examples/generate_compat_archive.rs`) and by the test that reads them back.
//! Never change what an existing version wrote: add a new version instead.

use retention::ConnectionRecord;

fn record(id: &str, at: &str) -> ConnectionRecord {
    ConnectionRecord {
        event_id: id.into(),
        timestamp: at.parse().unwrap(),
        utc_offset_seconds: None,
        dataset: "apache.access".into(),
        source_ip: None,
        source_port: None,
        destination_ip: None,
        destination_port: None,
        protocol: None,
        operation: "consultation".into(),
        user_name: None,
        user_agent: None,
        status: None,
        duration_ns: None,
        school_uai: None,
        observer: None,
        user_category: None,
        content_id: None,
        session_duration_s: None,
        recipients: Vec::new(),
    }
}

/// The batches written, each followed by a commit. The second one replays an id with other
/// values, so a committed segment holds a deleted document too (a `.del` file).
pub(crate) fn batches() -> Vec<Vec<ConnectionRecord>> {
    let full = ConnectionRecord {
        utc_offset_seconds: Some(7200),
        source_ip: Some("192.0.2.10".parse().unwrap()),
        source_port: Some(51234),
        destination_ip: Some("203.0.113.5".parse().unwrap()),
        destination_port: Some(443),
        protocol: Some("HTTP/1.1".into()),
        operation: "connexion".into(),
        user_name: Some("élève.dupont".into()),
        user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0".into()),
        status: Some(302),
        duration_ns: Some(187_000_000),
        school_uai: Some("0691234X".into()),
        observer: Some("ent-web1".into()),
        ..record("apache-main:1024", "2025-04-06T23:59:59.999999999Z")
    };
    let v6 = ConnectionRecord {
        utc_offset_seconds: Some(-14400),
        source_ip: Some("2001:db8:85a3::8a2e:370:7334".parse().unwrap()),
        source_port: Some(443),
        protocol: Some("HTTP/2.0".into()),
        operation: "déconnexion".into(),
        user_name: Some("parent42".into()),
        status: Some(200),
        ..record("nginx-main:77", "2025-04-07T00:00:00Z")
    };
    let firewall = ConnectionRecord {
        dataset: "iptables.log".into(),
        source_ip: Some("81.2.69.143".parse().unwrap()),
        source_port: Some(17805),
        destination_ip: Some("172.16.54.114".parse().unwrap()),
        destination_port: Some(445),
        protocol: Some("tcp".into()),
        operation: "pare-feu:block".into(),
        observer: Some("fw-mairie".into()),
        ..record("iptables:9", "2025-04-07T03:37:09Z")
    };
    let bare = ConnectionRecord {
        source_ip: Some("10.0.0.1".parse().unwrap()),
        ..record("apache-main:2048", "2025-04-07T12:00:00.5Z")
    };
    let replayed = ConnectionRecord { status: Some(303), user_name: Some("parent43".into()), ..v6.clone() };
    vec![vec![full, v6, firewall], vec![bare, replayed]]
}

/// The batches of format version 2: those of version 1, plus records with the fields version 2
/// added (user category, content id, session duration, recipients).
pub(crate) fn batches_v2() -> Vec<Vec<ConnectionRecord>> {
    let mut batches = batches();
    let logout = ConnectionRecord {
        source_ip: Some("192.0.2.10".parse().unwrap()),
        source_port: Some(51300),
        protocol: Some("HTTP/1.1".into()),
        operation: "déconnexion".into(),
        user_name: Some("élève.dupont".into()),
        user_category: Some("eleve".into()),
        session_duration_s: Some(1530),
        school_uai: Some("0691234X".into()),
        ..record("apache-main:3000", "2025-04-07T13:00:00Z")
    };
    let message = ConnectionRecord {
        source_ip: Some("192.0.2.11".parse().unwrap()),
        source_port: Some(40001),
        operation: "envoi de message".into(),
        user_name: Some("enseignant.martin".into()),
        user_category: Some("enseignant".into()),
        content_id: Some("message".into()),
        recipients: vec!["parent42".into(), "parent43".into()],
        ..record("apache-main:3001", "2025-04-07T13:05:00Z")
    };
    batches.push(vec![logout, message]);
    batches
}

/// The seed of the key that sealed the version 2 archive (a fixture, not a secret).
pub(crate) const V2_KEY_SEED: [u8; 32] = [7; 32];

/// What the archive must hold after [`batches`]: the last write of each id, earliest first.
#[cfg_attr(not(test), expect(dead_code, reason = "the compat test uses it, the generator example does not"))]
pub(crate) fn expected() -> Vec<ConnectionRecord> {
    expected_of(batches())
}

/// What the archive must hold after [`batches_v2`].
pub(crate) fn expected_v2() -> Vec<ConnectionRecord> {
    expected_of(batches_v2())
}

fn expected_of(batches: Vec<Vec<ConnectionRecord>>) -> Vec<ConnectionRecord> {
    let mut last: Vec<ConnectionRecord> = Vec::new();
    for record in batches.into_iter().flatten() {
        last.retain(|r| r.event_id != record.event_id);
        last.push(record);
    }
    last.sort_by_key(|r| r.timestamp);
    last
}
