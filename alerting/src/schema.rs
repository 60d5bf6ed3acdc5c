//! The SQLite schema shared by the alert store and the outbox, and how values are stored.
//!
//! Alerts and their emails live in ONE file so that firing an alert and queueing its email
//! happen in one transaction: a crash can never leave an alert without its email or the
//! reverse. Instants are stored as INTEGER milliseconds since the Unix epoch (UTC), which keeps
//! `WHERE next_attempt_at <= ?` comparisons exact; enums are stored as their serde names.

use std::path::Path;

use jiff::Timestamp;
use rusqlite::Connection;

use crate::AlertError;

/// `MIGRATIONS[i]` brings the schema to version `i + 1`. Never edit a released entry: append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE alert (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    severity TEXT NOT NULL,
    cctp_class TEXT NOT NULL,
    mitre TEXT,
    state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    resolved_at INTEGER,
    count INTEGER NOT NULL,
    last_evidence TEXT NOT NULL,
    source_ip TEXT,
    user_name TEXT,
    -- when the last firing or reminder email was queued; NULL while silenced since firing
    last_notified_at INTEGER,
    -- reminders queued so far; numbers the reminders' Message-IDs
    repeats INTEGER NOT NULL DEFAULT 0
);
-- at most one firing alert per group: the dedup invariant, enforced by SQLite itself
CREATE UNIQUE INDEX alert_firing_group ON alert (rule, key) WHERE state = 'firing';
CREATE INDEX alert_state_last_seen ON alert (state, last_seen);

-- detection ids already ingested, so that a replay after a crash changes nothing
CREATE TABLE seen_detection (
    id TEXT PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alert (id),
    ingested_at INTEGER NOT NULL
);
CREATE INDEX seen_detection_ingested_at ON seen_detection (ingested_at);

CREATE TABLE silence (
    id INTEGER PRIMARY KEY,
    rule TEXT,
    key TEXT,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    in_reply_to TEXT,
    alert_id INTEGER REFERENCES alert (id),
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL, -- JSON array of addresses
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    finished_at INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
"#,
    r#"
-- a silence may start later (a planned maintenance window); 0 = at once
ALTER TABLE silence ADD COLUMN starts_at INTEGER NOT NULL DEFAULT 0;
-- who acknowledged a firing alert (through the signed link), which stops its reminders
ALTER TABLE alert ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE alert ADD COLUMN acknowledged_by TEXT;
-- the HTML alternative of an email (NULL: plain text only)
ALTER TABLE outbox ADD COLUMN html TEXT;
-- the outage notice an email belongs to, and the school it was personalised for
ALTER TABLE outbox ADD COLUMN notice_id INTEGER;
ALTER TABLE outbox ADD COLUMN school TEXT;

-- incidents with their CCTP class; the deadline is computed from the class and opening time
CREATE TABLE incident (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER REFERENCES alert (id),
    class TEXT NOT NULL,
    title TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    opened_by TEXT NOT NULL,
    -- for a flaw in external code: when the vendor published its fix (the count starts then)
    vendor_fix_at INTEGER,
    closed_at INTEGER,
    closed_by TEXT,
    resolution TEXT,
    escalated_at INTEGER
);
CREATE INDEX incident_open ON incident (closed_at);

-- outage notices to the school directors (CCTP 4.2.1) and planned maintenance notices
CREATE TABLE notice (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('outage', 'maintenance')),
    service TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    expected_end INTEGER NOT NULL,
    ended_at INTEGER,
    message TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('awaiting_approval', 'approved', 'cancelled')),
    -- bumped by every edit; the directors have received `sent_revision` (0: nothing yet)
    revision INTEGER NOT NULL DEFAULT 1,
    sent_revision INTEGER NOT NULL DEFAULT 0,
    requested_at INTEGER NOT NULL,
    escalated_at INTEGER,
    approved_by TEXT,
    approved_at INTEGER,
    created_by TEXT NOT NULL,
    silence_id INTEGER REFERENCES silence (id),
    closed_notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notice_state ON notice (state, ended_at);

-- who did what and when: acknowledgements, approvals, edits, silences, incidents
CREATE TABLE journal (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX journal_subject ON journal (subject, at);
"#,
    r#"
-- files sent with an email (the monthly report's PDF), kept with it until it is delivered
CREATE TABLE outbox_attachment (
    outbox_id INTEGER NOT NULL REFERENCES outbox (id),
    position INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (outbox_id, position)
);
"#,
    r#"
-- alerts may be pending (held for their rule's `for` before they fire): SQLite cannot widen a
-- CHECK constraint in place, so the table is rebuilt (foreign keys are off: the tables that
-- reference `alert` by name keep referencing it)
CREATE TABLE alert_v4 (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    severity TEXT NOT NULL,
    cctp_class TEXT NOT NULL,
    mitre TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    resolved_at INTEGER,
    count INTEGER NOT NULL,
    last_evidence TEXT NOT NULL,
    source_ip TEXT,
    user_name TEXT,
    last_notified_at INTEGER,
    repeats INTEGER NOT NULL DEFAULT 0,
    acknowledged_at INTEGER,
    acknowledged_by TEXT
);
INSERT INTO alert_v4 (id, rule, key, title, description, severity, cctp_class, mitre, state, first_seen,
                      last_seen, resolved_at, count, last_evidence, source_ip, user_name, last_notified_at,
                      repeats, acknowledged_at, acknowledged_by)
SELECT id, rule, key, title, description, severity, cctp_class, mitre, state, first_seen, last_seen,
       resolved_at, count, last_evidence, source_ip, user_name, last_notified_at, repeats, acknowledged_at,
       acknowledged_by
FROM alert;
DROP TABLE alert;
ALTER TABLE alert_v4 RENAME TO alert;
-- at most one open (pending or firing) alert per group
CREATE UNIQUE INDEX alert_firing_group ON alert (rule, key) WHERE state = 'firing';
CREATE UNIQUE INDEX alert_pending_group ON alert (rule, key) WHERE state = 'pending';
CREATE INDEX alert_state_last_seen ON alert (state, last_seen);
"#,
];

/// Records one action in the journal (who did what to which subject, when).
pub(crate) fn journal(
    conn: &Connection,
    at: Timestamp,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), AlertError> {
    conn.execute(
        "INSERT INTO journal (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![to_ms(at), actor, action, subject, detail],
    )?;
    Ok(())
}

/// Opens the alerting database, creating or migrating it.
pub(crate) fn open(path: &Path) -> Result<Connection, AlertError> {
    Ok(collector::open_sqlite(path, MIGRATIONS)?)
}

pub(crate) fn to_ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn from_ms(ms: i64) -> Result<Timestamp, AlertError> {
    Timestamp::from_millisecond(ms).map_err(|e| AlertError::Corrupt(format!("instant {ms}: {e}")))
}

/// An enum's serde name (`"critical"`), the form it is stored in.
pub(crate) fn enum_to_sql<T: serde::Serialize>(value: &T) -> Result<String, AlertError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(AlertError::Corrupt(format!("enum stored as a non-string: {other}"))),
        Err(e) => Err(AlertError::Corrupt(e.to_string())),
    }
}

pub(crate) fn enum_from_sql<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, AlertError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| AlertError::Corrupt(format!("unknown stored value {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written by the version before pending alerts (schema 3) opens, keeps its
    /// alerts with their acknowledgements and references, and takes pending alerts.
    #[test]
    fn the_alert_table_rebuild_keeps_every_alert() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerting.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                "INSERT INTO alert (id, rule, key, title, description, severity, cctp_class, state, first_seen,
                                    last_seen, count, last_evidence, repeats, acknowledged_at, acknowledged_by)
                 VALUES (7, 'web.sqli', 'source.ip=203.0.113.9', 'T', 'D', 'critical', 'securite_mineure',
                         'firing', 1000, 2000, 3, 'E', 2, 1500, 'j.durand');
                 INSERT INTO seen_detection (id, alert_id, ingested_at) VALUES ('web.sqli:1', 7, 1000);",
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let kept: (String, i64, i64, String) = conn
            .query_row("SELECT state, count, repeats, acknowledged_by FROM alert WHERE id = 7", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        assert_eq!(kept, ("firing".into(), 3, 2, "j.durand".into()));
        let joined: i64 = conn
            .query_row("SELECT a.id FROM seen_detection s JOIN alert a ON a.id = s.alert_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(joined, 7);
        let insert = |state: &str| {
            conn.execute(
                "INSERT INTO alert (rule, key, title, description, severity, cctp_class, state, first_seen,
                                    last_seen, count, last_evidence)
                 VALUES ('web.sqli', 'source.ip=203.0.113.9', 'T', 'D', 'critical', 'securite_mineure', ?1,
                         1, 1, 1, 'E')",
                [state],
            )
        };
        assert!(insert("pending").is_ok(), "pending is a state now");
        assert!(insert("pending").is_err(), "one pending alert per group");
        assert!(insert("firing").is_err(), "one firing alert per group");
        assert!(insert("sleeping").is_err(), "the CHECK still refuses unknown states");
    }
}
