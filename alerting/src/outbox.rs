//! The durable email queue: every notification is a row before anyone tries to send it.
//!
//! Rows move `queued → sent` or `queued → failed` (permanent error); a retryable error keeps
//! the row queued with a later `next_attempt_at`, so the schedule survives restarts. Delivery
//! is at-least-once: a crash between the SMTP server's acceptance and the `sent` update sends
//! the email again, with the same Message-ID so the receiving side can drop the duplicate.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, params};

use crate::AlertError;
use crate::schema::{self, from_ms, to_ms};

/// One email to send, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Deterministic `<...@...>` id: the same notification always carries the same one.
    pub message_id: String,
    /// The Message-ID this email follows up (reminders and "résolu" thread under the alert).
    pub in_reply_to: Option<String>,
    /// The alert it is about, if any.
    pub alert_id: Option<i64>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// Plain-text body (UTF-8).
    pub body: String,
    /// The HTML alternative, sent with the plain text as `multipart/alternative`.
    pub html: Option<String>,
    /// The outage notice this email belongs to, if any.
    pub notice_id: Option<i64>,
    /// The school (UAI) a director's notice was personalised for.
    pub school: Option<String>,
    /// Files sent with it (the monthly report's PDF), stored in the outbox with it.
    pub attachments: Vec<Attachment>,
}

/// A file attached to an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file_name: String,
    /// `application/pdf`.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    Queued,
    Sent,
    /// A permanent error (5xx reply, invalid address): never retried.
    Failed,
}

impl OutboxState {
    fn as_sql(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }

    fn from_sql(s: &str) -> Result<Self, AlertError> {
        match s {
            "queued" => Ok(OutboxState::Queued),
            "sent" => Ok(OutboxState::Sent),
            "failed" => Ok(OutboxState::Failed),
            other => Err(AlertError::Corrupt(format!("unknown outbox state {other:?}"))),
        }
    }
}

/// One outbox row with its delivery history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub email: Email,
    pub state: OutboxState,
    pub created_at: Timestamp,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    /// The last delivery error, with whether it was retryable.
    pub last_error: Option<String>,
    /// When it was sent or declared failed.
    pub finished_at: Option<Timestamp>,
}

/// Counts for dashboards and the self-monitoring alert on a stuck queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    pub queued: u64,
    pub sent: u64,
    pub failed_permanently: u64,
    /// Creation time of the oldest email still waiting: how long the on-call has been blind.
    pub oldest_queued: Option<Timestamp>,
}

/// The email queue, in the same SQLite file as the alerts.
#[derive(Debug)]
pub struct Outbox {
    conn: Connection,
}

const COLUMNS: &str = "id, message_id, in_reply_to, alert_id, sender, recipients, subject, body, \
                       state, created_at, attempts, next_attempt_at, last_error, finished_at, html, notice_id, school";

/// First retry delay; doubled on each further failure up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(10);
/// Cap of the backoff: an SMTP server that comes back is used within this long.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(15 * 60);

/// The delay before attempt `attempts + 1`, after `attempts` failures, scaled by `jitter` in
/// `[0.5, 1.0]` so that many queued emails do not hammer a recovering server in step.
pub(crate) fn retry_delay(attempts: u32, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    let raw = FIRST_RETRY_DELAY.saturating_mul(1u32 << exp).min(MAX_RETRY_DELAY);
    raw.mul_f64(jitter.clamp(0.5, 1.0))
}

/// Inserts `email` as queued, due now; an email whose Message-ID is already queued (or was
/// sent) is not queued twice, and the existing row's id is returned.
pub(crate) fn enqueue_on(conn: &Connection, email: &Email, now: Timestamp) -> Result<i64, AlertError> {
    enqueue_at(conn, email, now, now)
}

/// Like [`enqueue_on`], but not sent before `not_before`: how notices to 188 directors are
/// spread out to respect the relay's rate limit, durably (a restart keeps the schedule).
pub(crate) fn enqueue_at(
    conn: &Connection,
    email: &Email,
    now: Timestamp,
    not_before: Timestamp,
) -> Result<i64, AlertError> {
    let recipients = serde_json::to_string(&email.to).map_err(|e| AlertError::Corrupt(e.to_string()))?;
    let inserted = conn.execute(
        "INSERT INTO outbox (message_id, in_reply_to, alert_id, sender, recipients, subject, body,
                             created_at, state, attempts, next_attempt_at, html, notice_id, school)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', 0, ?9, ?10, ?11, ?12)
         ON CONFLICT (message_id) DO NOTHING",
        params![
            email.message_id,
            email.in_reply_to,
            email.alert_id,
            email.from,
            recipients,
            email.subject,
            email.body,
            to_ms(now),
            to_ms(not_before.max(now)),
            email.html,
            email.notice_id,
            email.school,
        ],
    )?;
    if inserted == 1 {
        let id = conn.last_insert_rowid();
        for (position, a) in email.attachments.iter().enumerate() {
            conn.execute(
                "INSERT INTO outbox_attachment (outbox_id, position, file_name, content_type, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, i64::try_from(position).unwrap_or(i64::MAX), a.file_name, a.content_type, a.data],
            )?;
        }
        Ok(id)
    } else {
        Ok(conn.query_row("SELECT id FROM outbox WHERE message_id = ?1", [&email.message_id], |r| r.get(0))?)
    }
}

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        id: r.get(0)?,
        message_id: r.get(1)?,
        in_reply_to: r.get(2)?,
        alert_id: r.get(3)?,
        sender: r.get(4)?,
        recipients: r.get(5)?,
        subject: r.get(6)?,
        body: r.get(7)?,
        state: r.get(8)?,
        created_at: r.get(9)?,
        attempts: r.get(10)?,
        next_attempt_at: r.get(11)?,
        last_error: r.get(12)?,
        finished_at: r.get(13)?,
        html: r.get(14)?,
        notice_id: r.get(15)?,
        school: r.get(16)?,
    })
}

/// A row as SQLite gives it, before the typed conversion that can report corruption.
struct RawEntry {
    id: i64,
    message_id: String,
    in_reply_to: Option<String>,
    alert_id: Option<i64>,
    sender: String,
    recipients: String,
    subject: String,
    body: String,
    state: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    finished_at: Option<i64>,
    html: Option<String>,
    notice_id: Option<i64>,
    school: Option<String>,
}

/// The attachments of outbox row `id`, in order.
fn attachments_of(conn: &Connection, id: i64) -> Result<Vec<Attachment>, AlertError> {
    let mut stmt = conn.prepare_cached(
        "SELECT file_name, content_type, data FROM outbox_attachment WHERE outbox_id = ?1 ORDER BY position",
    )?;
    let rows =
        stmt.query_map([id], |r| Ok(Attachment { file_name: r.get(0)?, content_type: r.get(1)?, data: r.get(2)? }))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl RawEntry {
    fn typed(self, conn: &Connection) -> Result<OutboxEntry, AlertError> {
        let attachments = attachments_of(conn, self.id)?;
        let to: Vec<String> = serde_json::from_str(&self.recipients)
            .map_err(|e| AlertError::Corrupt(format!("outbox row {} recipients: {e}", self.id)))?;
        Ok(OutboxEntry {
            id: self.id,
            email: Email {
                message_id: self.message_id,
                in_reply_to: self.in_reply_to,
                alert_id: self.alert_id,
                from: self.sender,
                to,
                subject: self.subject,
                body: self.body,
                html: self.html,
                notice_id: self.notice_id,
                school: self.school,
                attachments,
            },
            state: OutboxState::from_sql(&self.state)?,
            created_at: from_ms(self.created_at)?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: from_ms(self.next_attempt_at)?,
            last_error: self.last_error,
            finished_at: self.finished_at.map(from_ms).transpose()?,
        })
    }
}

/// Counts of the outbox on any connection to the alerting database.
pub(crate) fn stats_on(conn: &Connection) -> Result<OutboxStats, AlertError> {
    let mut stats = OutboxStats::default();
    let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, n) = row?;
        let n = u64::try_from(n).unwrap_or(0);
        match OutboxState::from_sql(&state)? {
            OutboxState::Queued => stats.queued = n,
            OutboxState::Sent => stats.sent = n,
            OutboxState::Failed => stats.failed_permanently = n,
        }
    }
    let oldest: Option<i64> =
        conn.query_row("SELECT MIN(created_at) FROM outbox WHERE state = 'queued'", [], |r| r.get(0))?;
    stats.oldest_queued = oldest.map(from_ms).transpose()?;
    Ok(stats)
}

impl Outbox {
    /// Opens the outbox in the alerting database at `path` (created if missing).
    pub fn open(path: &Path) -> Result<Outbox, AlertError> {
        Ok(Outbox { conn: schema::open(path)? })
    }

    /// Queues `email` for delivery now. Idempotent on the email's Message-ID.
    pub fn enqueue(&mut self, email: &Email, now: Timestamp) -> Result<i64, AlertError> {
        enqueue_on(&self.conn, email, now)
    }

    /// How many emails are still waiting to be delivered.
    pub fn pending(&self) -> Result<usize, AlertError> {
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM outbox WHERE state = 'queued'", [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    pub fn stats(&self) -> Result<OutboxStats, AlertError> {
        stats_on(&self.conn)
    }

    /// The most recent rows in `state` (newest first), at most `limit`.
    pub fn entries(&self, state: OutboxState, limit: usize) -> Result<Vec<OutboxEntry>, AlertError> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE state = ?1 ORDER BY id DESC LIMIT ?2");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare(&sql)?;
        let raws = stmt.query_map(params![state.as_sql(), limit], entry_from_row)?.collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(|r| r.typed(&self.conn)).collect()
    }

    /// The queued emails due at `now`, oldest first, at most `limit`.
    pub(crate) fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxEntry>, AlertError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE state = 'queued' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at, id LIMIT ?2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare(&sql)?;
        let raws = stmt.query_map(params![to_ms(now), limit], entry_from_row)?.collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(|r| r.typed(&self.conn)).collect()
    }

    pub(crate) fn mark_sent(&mut self, id: i64, now: Timestamp) -> Result<(), AlertError> {
        self.conn.execute(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, finished_at = ?2
             WHERE id = ?1",
            params![id, to_ms(now)],
        )?;
        Ok(())
    }

    pub(crate) fn mark_failed(&mut self, id: i64, reason: &str, now: Timestamp) -> Result<(), AlertError> {
        self.conn.execute(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2,
                               finished_at = ?3
             WHERE id = ?1",
            params![id, reason, to_ms(now)],
        )?;
        Ok(())
    }

    /// Records a retryable failure and schedules the next attempt with backoff and `jitter`.
    /// Returns when the next attempt is due.
    pub(crate) fn schedule_retry(
        &mut self,
        id: i64,
        reason: &str,
        now: Timestamp,
        jitter: f64,
    ) -> Result<Timestamp, AlertError> {
        let attempts: i64 = self.conn.query_row("SELECT attempts FROM outbox WHERE id = ?1", [id], |r| r.get(0))?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX).saturating_add(1);
        let delay = retry_delay(attempts, jitter);
        let next = now
            .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX);
        self.conn.execute(
            "UPDATE outbox SET attempts = ?2, last_error = ?3, next_attempt_at = ?4 WHERE id = ?1",
            params![id, attempts, reason, to_ms(next)],
        )?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(id: &str) -> Email {
        Email {
            message_id: format!("<{id}@vigie.test>"),
            in_reply_to: None,
            alert_id: None,
            from: "vigie@ville.test".into(),
            to: vec!["astreinte@ville.test".into(), "chef@ville.test".into()],
            subject: "[Vigie] CRITIQUE — essai".into(),
            body: "Corps accentué : été".into(),
            html: None,
            notice_id: None,
            school: None,
            attachments: Vec::new(),
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn backoff_doubles_then_caps_and_jitter_only_shortens() {
        assert_eq!(retry_delay(1, 1.0), Duration::from_secs(10));
        assert_eq!(retry_delay(2, 1.0), Duration::from_secs(20));
        assert_eq!(retry_delay(4, 1.0), Duration::from_secs(80));
        assert_eq!(retry_delay(30, 1.0), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(1, 0.5), Duration::from_secs(5));
        // Out-of-range jitter is clamped rather than producing zero or doubled delays.
        assert_eq!(retry_delay(1, 0.0), Duration::from_secs(5));
        assert_eq!(retry_delay(1, 7.0), Duration::from_secs(10));
    }

    #[test]
    fn enqueue_is_idempotent_on_message_id_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        let now = t("2025-04-07T12:30:00Z");
        let mut outbox = Outbox::open(&path).unwrap();
        let a = outbox.enqueue(&email("a"), now).unwrap();
        let again = outbox.enqueue(&email("a"), now).unwrap();
        let b = outbox.enqueue(&email("b"), now).unwrap();
        assert_eq!(a, again);
        assert_ne!(a, b);
        drop(outbox);

        let outbox = Outbox::open(&path).unwrap();
        assert_eq!(outbox.pending().unwrap(), 2);
        let due = outbox.due(now, 10).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].email, email("a"), "stored and read back unchanged");
        assert_eq!(
            outbox.stats().unwrap(),
            OutboxStats { queued: 2, sent: 0, failed_permanently: 0, oldest_queued: Some(now) }
        );
    }

    #[test]
    fn retry_schedule_sent_and_failed_rows() {
        let dir = tempfile::tempdir().unwrap();
        let now = t("2025-04-07T12:30:00Z");
        let mut outbox = Outbox::open(&dir.path().join("alerts.sqlite")).unwrap();
        let a = outbox.enqueue(&email("a"), now).unwrap();
        let b = outbox.enqueue(&email("b"), now).unwrap();
        let c = outbox.enqueue(&email("c"), now).unwrap();

        let next = outbox.schedule_retry(a, "retryable: connection refused", now, 1.0).unwrap();
        assert_eq!(next, t("2025-04-07T12:30:10Z"));
        let next = outbox.schedule_retry(a, "retryable: connection refused", next, 1.0).unwrap();
        assert_eq!(next, t("2025-04-07T12:30:30Z"));
        outbox.mark_sent(b, now).unwrap();
        outbox.mark_failed(c, "permanent: 550 no such user", now).unwrap();

        assert!(outbox.due(now, 10).unwrap().is_empty(), "a is waiting for its retry");
        let due = outbox.due(next, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].id, due[0].attempts), (a, 2));
        assert_eq!(due[0].last_error.as_deref(), Some("retryable: connection refused"));

        let failed = outbox.entries(OutboxState::Failed, 10).unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].last_error.as_deref(), Some("permanent: 550 no such user"));
        assert_eq!(failed[0].finished_at, Some(now));
        let stats = outbox.stats().unwrap();
        assert_eq!((stats.queued, stats.sent, stats.failed_permanently), (1, 1, 1));
    }
}
