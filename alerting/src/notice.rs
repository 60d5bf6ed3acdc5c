//! Outage notices to the school directors (CCTP 4.2.1), with an approval step.
//!
//! When an availability outage opens, the city's IT service is emailed at once, and a notice
//! for every director (expected duration and time of recovery, editable) is prepared and HELD:
//! each approver gets a personal signed link, and nothing goes to the directors until one of
//! them approves (link, dashboard or CLI; who and when is journaled). Without an answer
//! within `escalate_after`, the request goes to the second approvers. Approved notices are
//! queued in the outbox, one personalised email per school, spread over time to respect the
//! relay's rate; a later edit (a longer estimate) makes a new revision that is approved the
//! same way and sent as an update; closing the outage sends "service rétabli" to the schools
//! that were told. Planned maintenance uses the same flow ahead of time, and silences the
//! alerts it explains during its window.

use std::path::Path;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use minijinja::{Environment, context};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use analyzer::{OutageChange, ServiceWindow, format_date_fr};

use crate::AlertError;
use crate::compose::sender_domain;
use crate::french::duration_fr;
use crate::outbox::{Email, enqueue_at, enqueue_on};
use crate::schema::{self, from_ms, journal, to_ms};
use crate::templates::{environment, render};
use crate::token::{Claims, SigningKey};

/// One school's director, from the schools CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Director {
    /// The school's UAI.
    pub uai: String,
    /// The school's name, as the director reads it.
    pub school: String,
    pub email: String,
}

/// The directors of every school of the table that has an address.
pub fn directors_from_schools(schools: &collector::Schools) -> Vec<Director> {
    schools
        .iter()
        .filter(|s| !s.director_email.trim().is_empty())
        .map(|s| Director { uai: s.uai.clone(), school: s.name.clone(), email: s.director_email.trim().to_owned() })
        .collect()
}

/// Who is told, who approves, and how fast notices go out.
#[derive(Debug, Clone)]
pub struct NoticePolicy {
    pub from: String,
    /// The city's IT service (SCTN / CIME): told at once of every outage.
    pub it_service: Vec<String>,
    /// Who may approve a notice; each gets a personal link.
    pub approvers: Vec<String>,
    /// Who receives the request when the first approvers have not answered in time.
    pub second_approvers: Vec<String>,
    pub escalate_after: Duration,
    /// How long an approval link stays valid.
    pub link_valid_for: Duration,
    /// The estimated duration of an outage when it opens (editable).
    pub default_estimate: Duration,
    pub directors: Vec<Director>,
    /// Director emails per minute (the relay's limit).
    pub per_minute: u32,
    /// The dashboard's public URL, for the links (`https://vigie.ville.fr`).
    pub base_url: String,
    pub time_zone: TimeZone,
    /// Rules whose alerts a maintenance window silences (`ent.unavailable`, …).
    pub maintenance_silences: Vec<String>,
    /// Rules whose alerts count as outages of the ENT when no availability probe reports
    /// them (an alert firing = an outage open since its first detection; resolved = closed).
    pub outage_rules: Vec<String>,
    /// Demo only: a demo approver approves every notice that waited this long.
    pub demo_approve_after: Option<Duration>,
    /// The watched backup locations, whose state the monthly report gives.
    pub backups: Vec<collector::watch::BackupWatch>,
}

impl NoticePolicy {
    /// Every problem at once.
    pub fn validate(&self) -> Result<(), AlertError> {
        let mut problems = Vec::new();
        let check = |field: &str, list: &[String], problems: &mut Vec<String>| {
            for a in list {
                if let Err(e) = a.parse::<lettre::message::Mailbox>() {
                    problems.push(format!("{field} address {a:?} is not an email address ({e})"));
                }
            }
        };
        check("it_service", &self.it_service, &mut problems);
        check("approvers", &self.approvers, &mut problems);
        check("second_approvers", &self.second_approvers, &mut problems);
        if self.it_service.is_empty() {
            problems.push("it_service lists no address: the city's IT service must be told first".into());
        }
        if self.approvers.is_empty() && !self.directors.is_empty() {
            problems.push("approvers lists no address: no notice could ever reach the directors".into());
        }
        if self.per_minute == 0 {
            problems.push("notices_per_minute must be at least 1".into());
        }
        if self.escalate_after.is_zero() || self.link_valid_for.is_zero() || self.default_estimate.is_zero() {
            problems.push("escalate_after, link_valid_for and default_estimate must be longer than zero".into());
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            problems.push(format!("public_url {:?} must start with http:// or https://", self.base_url));
        }
        if problems.is_empty() { Ok(()) } else { Err(AlertError::InvalidPolicy(problems.join("; "))) }
    }
}

/// An outage notice, or a planned maintenance's preventive notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Outage,
    Maintenance,
}

/// Where a notice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeState {
    /// Its current revision waits for an approver; nothing of it has reached the directors.
    AwaitingApproval,
    /// Its current revision was approved and queued to the directors.
    Approved,
    /// The outage ended before anybody approved: the directors were never told.
    Cancelled,
}

impl NoticeState {
    fn from_sql(s: &str) -> Result<Self, AlertError> {
        Ok(match s {
            "awaiting_approval" => NoticeState::AwaitingApproval,
            "approved" => NoticeState::Approved,
            "cancelled" => NoticeState::Cancelled,
            other => return Err(AlertError::Corrupt(format!("unknown notice state {other:?}"))),
        })
    }
}

/// A notice, as the dashboard lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub id: i64,
    pub kind: NoticeKind,
    pub service: String,
    pub starts_at: Timestamp,
    pub expected_end: Timestamp,
    /// When the outage (or maintenance) ended.
    pub ended_at: Option<Timestamp>,
    /// Free text added to the directors' message (editable).
    pub message: String,
    pub state: NoticeState,
    pub revision: i64,
    /// The revision the directors have received (0: none).
    pub sent_revision: i64,
    pub requested_at: Timestamp,
    pub escalated_at: Option<Timestamp>,
    pub approved_by: Option<String>,
    pub approved_at: Option<Timestamp>,
    pub created_by: String,
}

/// How a notice's director emails stand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoticeDeliveries {
    pub sent: usize,
    pub queued: usize,
    /// Refused permanently (unknown address, …): `(school UAI, address, error)`.
    pub bounced: Vec<(String, String, String)>,
}

/// What scheduling a maintenance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePlan {
    pub notice_id: i64,
    /// Silences created for the window, one per rule.
    pub silences: Vec<i64>,
    /// Warnings for the operator, in French (the window overlaps the 06:00 → 03:00 service
    /// window and so counts as downtime).
    pub warnings: Vec<String>,
}

/// The notices, in the alerting database.
#[derive(Debug)]
pub struct Notices {
    conn: Connection,
    db: std::path::PathBuf,
    ctx: Ctx,
}

const COLUMNS: &str = "id, kind, service, starts_at, expected_end, ended_at, message, state, revision, \
                       sent_revision, requested_at, escalated_at, approved_by, approved_at, created_by";

fn notice_from_row(r: &rusqlite::Row<'_>) -> Result<Notice, AlertError> {
    let kind = match r.get::<_, String>(1)?.as_str() {
        "outage" => NoticeKind::Outage,
        "maintenance" => NoticeKind::Maintenance,
        other => return Err(AlertError::Corrupt(format!("unknown notice kind {other:?}"))),
    };
    Ok(Notice {
        id: r.get(0)?,
        kind,
        service: r.get(2)?,
        starts_at: from_ms(r.get(3)?)?,
        expected_end: from_ms(r.get(4)?)?,
        ended_at: r.get::<_, Option<i64>>(5)?.map(from_ms).transpose()?,
        message: r.get(6)?,
        state: NoticeState::from_sql(&r.get::<_, String>(7)?)?,
        revision: r.get(8)?,
        sent_revision: r.get(9)?,
        requested_at: from_ms(r.get(10)?)?,
        escalated_at: r.get::<_, Option<i64>>(11)?.map(from_ms).transpose()?,
        approved_by: r.get(12)?,
        approved_at: r.get::<_, Option<i64>>(13)?.map(from_ms).transpose()?,
        created_by: r.get(14)?,
    })
}

fn load(conn: &Connection, id: i64) -> Result<Notice, AlertError> {
    let sql = format!("SELECT {COLUMNS} FROM notice WHERE id = ?1");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => notice_from_row(r),
        None => Err(AlertError::NotFound(format!("notice {id}"))),
    }
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(signed(d)).unwrap_or(Timestamp::MAX)
}

/// Which director email a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirectorMessage {
    /// The first approved revision of an outage notice.
    Opened,
    /// A later approved revision.
    Update,
    Maintenance,
    Closed,
}

impl DirectorMessage {
    fn kind(self) -> &'static str {
        match self {
            DirectorMessage::Opened => "opened",
            DirectorMessage::Update => "update",
            DirectorMessage::Maintenance => "maintenance",
            DirectorMessage::Closed => "closed",
        }
    }
}

impl Notices {
    /// Opens the notices in the alerting database at `path`; `policy` is validated first.
    pub fn open(path: &Path, policy: NoticePolicy, key: SigningKey) -> Result<Notices, AlertError> {
        policy.validate()?;
        Ok(Notices { conn: schema::open(path)?, db: path.to_owned(), ctx: Ctx { policy, key, env: environment() } })
    }

    pub fn policy(&self) -> &NoticePolicy {
        &self.ctx.policy
    }

    /// Reacts to an availability change of `service`: an opened outage prepares a notice and
    /// tells the IT service; a closed one sends "rétabli". Replays change nothing (a notice is
    /// identified by its service and start). Returns the notice concerned, if any.
    pub fn on_outage(
        &mut self,
        service: &str,
        change: &OutageChange,
        now: Timestamp,
    ) -> Result<Option<i64>, AlertError> {
        let outage = change.outage();
        match outage.end {
            None => self.outage_opened(service, outage.start, now),
            Some(end) => self.outage_closed(service, outage.start, end, now),
        }
    }

    fn outage_opened(&mut self, service: &str, start: Timestamp, now: Timestamp) -> Result<Option<i64>, AlertError> {
        let tx = self.conn.transaction()?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT id FROM notice WHERE kind = 'outage' AND service = ?1 AND starts_at = ?2",
                params![service, to_ms(start)],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_some() {
            return Ok(known);
        }
        // A planned maintenance of this service covering now explains the outage.
        let maintenance: Option<i64> = tx
            .query_row(
                "SELECT id FROM notice WHERE kind = 'maintenance' AND service = ?1 AND state != 'cancelled'
                 AND starts_at <= ?2 AND expected_end > ?2 AND ended_at IS NULL",
                params![service, to_ms(start)],
                |r| r.get(0),
            )
            .optional()?;
        let expected_end = plus(start, self.ctx.policy.default_estimate);
        let state = if maintenance.is_some() { "cancelled" } else { "awaiting_approval" };
        tx.execute(
            "INSERT INTO notice (kind, service, starts_at, expected_end, message, state, requested_at, created_by)
             VALUES ('outage', ?1, ?2, ?3, '', ?4, ?5, 'vigie')",
            params![service, to_ms(start), to_ms(expected_end), state, to_ms(now)],
        )?;
        let id = tx.last_insert_rowid();
        let notice = load(&tx, id)?;
        self.ctx.queue_it_email(&tx, &notice, false, maintenance, now)?;
        if maintenance.is_none() {
            self.ctx.queue_approval_requests(&tx, &notice, false, now)?;
        }
        journal(&tx, now, "vigie", "notice.prepare", &format!("notice:{id}"), service)?;
        tx.commit()?;
        tracing::info!(notice = id, service, %start, "outage notice prepared, awaiting approval");
        Ok(Some(id))
    }

    fn outage_closed(
        &mut self,
        service: &str,
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
    ) -> Result<Option<i64>, AlertError> {
        let tx = self.conn.transaction()?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM notice WHERE kind = 'outage' AND service = ?1 AND starts_at = ?2",
                params![service, to_ms(start)],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            // Closed before we heard of the opening (a restart in between): nothing was said.
            tracing::warn!(service, %start, "outage closed without a known notice");
            return Ok(None);
        };
        let notice = load(&tx, id)?;
        if notice.ended_at.is_some() {
            return Ok(Some(id));
        }
        tx.execute("UPDATE notice SET ended_at = ?2 WHERE id = ?1", params![id, to_ms(end)])?;
        if notice.sent_revision == 0 {
            // Never approved: the directors never heard of it, so they get no "rétabli" either.
            tx.execute("UPDATE notice SET state = 'cancelled' WHERE id = ?1", [id])?;
        }
        let notice = load(&tx, id)?;
        self.ctx.queue_it_email(&tx, &notice, true, None, now)?;
        if notice.sent_revision > 0 {
            self.ctx.queue_directors(&tx, &notice, DirectorMessage::Closed, now)?;
            tx.execute("UPDATE notice SET closed_notified = 1 WHERE id = ?1", [id])?;
        }
        journal(&tx, now, "vigie", "notice.outage_closed", &format!("notice:{id}"), &end.to_string())?;
        tx.commit()?;
        Ok(Some(id))
    }

    /// Schedules a planned maintenance of `service` from `start` to `end`: a preventive
    /// notice through the approval flow, and silences of the configured rules for the window.
    pub fn schedule_maintenance(
        &mut self,
        service: &str,
        start: Timestamp,
        end: Timestamp,
        message: &str,
        by: &str,
        now: Timestamp,
    ) -> Result<MaintenancePlan, AlertError> {
        if end <= start {
            return Err(AlertError::InvalidPolicy(format!(
                "the maintenance must end after it starts ({start} → {end})"
            )));
        }
        if end <= now {
            return Err(AlertError::InvalidPolicy(format!("the maintenance window is already over ({end})")));
        }
        let warnings = window_overlap_warnings(start, end, &self.ctx.policy.time_zone);
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO notice (kind, service, starts_at, expected_end, message, state, requested_at, created_by)
             VALUES ('maintenance', ?1, ?2, ?3, ?4, 'awaiting_approval', ?5, ?6)",
            params![service, to_ms(start), to_ms(end), message, to_ms(now), by],
        )?;
        let id = tx.last_insert_rowid();
        let mut silences = Vec::new();
        for rule in &self.ctx.policy.maintenance_silences {
            tx.execute(
                "INSERT INTO silence (rule, key, created_at, until, created_by, reason, starts_at)
                 VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6)",
                params![rule, to_ms(now), to_ms(end), by, format!("maintenance programmée n° {id}"), to_ms(start)],
            )?;
            silences.push(tx.last_insert_rowid());
        }
        let notice = load(&tx, id)?;
        self.ctx.queue_approval_requests(&tx, &notice, false, now)?;
        journal(&tx, now, by, "maintenance.schedule", &format!("notice:{id}"), &warnings.join(" "))?;
        tx.commit()?;
        Ok(MaintenancePlan { notice_id: id, silences, warnings })
    }

    /// Changes the expected end and/or the added message. The notice gets a new revision that
    /// must be approved again (if the directors were told, they then receive an update).
    pub fn edit(
        &mut self,
        id: i64,
        expected_end: Option<Timestamp>,
        message: Option<&str>,
        by: &str,
        now: Timestamp,
    ) -> Result<Notice, AlertError> {
        let tx = self.conn.transaction()?;
        let notice = load(&tx, id)?;
        if notice.ended_at.is_some() || notice.state == NoticeState::Cancelled {
            return Err(AlertError::NotFound(format!("open notice {id} (it is over)")));
        }
        let end = expected_end.unwrap_or(notice.expected_end);
        if end <= notice.starts_at {
            return Err(AlertError::InvalidPolicy("the expected end must come after the start".into()));
        }
        let text = message.unwrap_or(&notice.message);
        tx.execute(
            "UPDATE notice SET expected_end = ?2, message = ?3, revision = revision + 1,
                               state = 'awaiting_approval', requested_at = ?4, escalated_at = NULL
             WHERE id = ?1",
            params![id, to_ms(end), text, to_ms(now)],
        )?;
        let notice = load(&tx, id)?;
        self.ctx.queue_approval_requests(&tx, &notice, false, now)?;
        journal(
            &tx,
            now,
            by,
            "notice.edit",
            &format!("notice:{id}"),
            &format!("revision {}: fin prévue {}; message {:?}", notice.revision, end, text),
        )?;
        tx.commit()?;
        Ok(notice)
    }

    /// Approves the current revision of notice `id` on behalf of `by`, and queues it to every
    /// director. Returns how many director emails were queued.
    pub fn approve(&mut self, id: i64, by: &str, now: Timestamp) -> Result<usize, AlertError> {
        let tx = self.conn.transaction()?;
        let n = self.ctx.approve_in(&tx, id, None, by, now)?;
        tx.commit()?;
        Ok(n)
    }

    /// Approves through the signed link of an approval email. Returns the notice id and how
    /// many director emails were queued.
    pub fn approve_with_token(&mut self, token: &str, now: Timestamp) -> Result<(i64, usize), AlertError> {
        let claims = self.ctx.key.verify(token, "approve", now)?;
        let tx = self.conn.transaction()?;
        let n = self.ctx.approve_in(&tx, claims.subject, Some(claims.revision), &claims.who, now)?;
        tx.commit()?;
        Ok((claims.subject, n))
    }

    /// Escalates approval requests left unanswered for `escalate_after` to the second
    /// approvers (once per revision), lets the demo approver approve, and emails the monthly
    /// report on the 1st. Returns the notices escalated.
    pub fn tick(&mut self, now: Timestamp) -> Result<Vec<i64>, AlertError> {
        if let Some(after) = self.ctx.policy.demo_approve_after {
            let cutoff = now.checked_sub(signed(after)).unwrap_or(Timestamp::MIN);
            let ids: Vec<i64> = {
                let mut stmt = self.conn.prepare(
                    "SELECT id FROM notice WHERE state = 'awaiting_approval' AND ended_at IS NULL AND requested_at <= ?1",
                )?;
                stmt.query_map([to_ms(cutoff)], |r| r.get(0))?.collect::<Result<_, _>>()?
            };
            for id in ids {
                self.approve(id, "approbateur de démonstration", now)?;
            }
        }
        self.monthly_report_if_due(now)?;
        if self.ctx.policy.second_approvers.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.conn.transaction()?;
        let cutoff = now.checked_sub(signed(self.ctx.policy.escalate_after)).unwrap_or(Timestamp::MIN);
        let ids: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM notice WHERE state = 'awaiting_approval' AND escalated_at IS NULL
                 AND ended_at IS NULL AND requested_at <= ?1 ORDER BY id",
            )?;
            stmt.query_map([to_ms(cutoff)], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for &id in &ids {
            let notice = load(&tx, id)?;
            self.ctx.queue_approval_requests(&tx, &notice, true, now)?;
            tx.execute("UPDATE notice SET escalated_at = ?2 WHERE id = ?1", params![id, to_ms(now)])?;
            journal(
                &tx,
                now,
                "vigie",
                "notice.escalate",
                &format!("notice:{id}"),
                &self.ctx.policy.second_approvers.join(", "),
            )?;
            tracing::warn!(notice = id, "notice not approved in time, escalated to the second approvers");
        }
        tx.commit()?;
        Ok(ids)
    }

    /// On the 1st of a month (from 07:00, Paris time), emails the previous month's report to
    /// the IT service, once; the HTML (and PDF, when Chromium is installed) are kept in
    /// `reports/` beside the database.
    fn monthly_report_if_due(&mut self, now: Timestamp) -> Result<bool, AlertError> {
        let tz = self.ctx.policy.time_zone.clone();
        let local = now.to_zoned_datetime(tz.clone());
        if local.day() != 1 || local.hour() < 7 {
            return Ok(false);
        }
        let (year, month) = crate::report::previous_month(now, &tz);
        let subject = format!("report:{year}-{month:02}");
        let done: Option<i64> = self
            .conn
            .query_row("SELECT id FROM journal WHERE subject = ?1 LIMIT 1", [&subject], |r| r.get(0))
            .optional()?;
        if done.is_some() {
            return Ok(false);
        }
        let report = crate::report::monthly_report(&self.db, year, month, &tz, &self.ctx.policy.backups, now)?;
        let dir = self.db.parent().unwrap_or(Path::new(".")).join("reports");
        let kept = crate::report::write_files(&report, &dir);
        // The PDF, when Chromium printed it, travels with the email (stored in the outbox).
        let pdf_name = format!("rapport-{year}-{month:02}.pdf");
        let attachments = match std::fs::read(dir.join(&pdf_name)) {
            Ok(data) => vec![crate::Attachment { file_name: pdf_name, content_type: "application/pdf".into(), data }],
            Err(_) => Vec::new(),
        };
        let email = Email {
            message_id: format!("<vigie.report-{year}-{month:02}@{}>", self.ctx.domain()),
            in_reply_to: None,
            alert_id: None,
            from: self.ctx.policy.from.clone(),
            to: self.ctx.policy.it_service.clone(),
            subject: format!("[Vigie] {}", report.title),
            body: report.summary.clone(),
            html: Some(report.html.clone()),
            notice_id: None,
            school: None,
            attachments,
        };
        let tx = self.conn.transaction()?;
        enqueue_on(&tx, &email, now)?;
        journal(&tx, now, "vigie", "report.sent", &subject, &kept)?;
        tx.commit()?;
        Ok(true)
    }

    /// The most recent notices, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<Notice>, AlertError> {
        let sql = format!("SELECT {COLUMNS} FROM notice ORDER BY id DESC LIMIT ?1");
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(notice_from_row(r)?);
        }
        Ok(out)
    }

    /// One notice.
    pub fn get(&self, id: i64) -> Result<Notice, AlertError> {
        load(&self.conn, id)
    }

    /// What one director receives for the notice's current revision (the first configured
    /// school, as a sample): `(subject, text)`. The dashboards show it before approval.
    pub fn preview(&self, notice: &Notice) -> Result<(String, String), AlertError> {
        let (_, subject, text) = self.ctx.sample_director_message(notice)?;
        Ok((subject, text))
    }

    /// The notice's director emails: sent, waiting, and bounced with the reason.
    pub fn deliveries(&self, id: i64) -> Result<NoticeDeliveries, AlertError> {
        let mut stmt = self.conn.prepare(
            "SELECT state, COALESCE(school, ''), recipients, COALESCE(last_error, '') FROM outbox
             WHERE notice_id = ?1 AND school IS NOT NULL ORDER BY id",
        )?;
        let mut rows = stmt.query([id])?;
        let mut out = NoticeDeliveries::default();
        while let Some(r) = rows.next()? {
            let state: String = r.get(0)?;
            match state.as_str() {
                "sent" => out.sent += 1,
                "queued" => out.queued += 1,
                _ => {
                    let to: Vec<String> = serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default();
                    out.bounced.push((r.get(1)?, to.join(", "), r.get(3)?));
                }
            }
        }
        Ok(out)
    }
}

/// What the email-composing helpers need, apart from the database connection (so that they
/// can run while a transaction borrows it).
#[derive(Debug)]
struct Ctx {
    policy: NoticePolicy,
    key: SigningKey,
    env: Environment<'static>,
}

impl Ctx {
    fn approve_in(
        &self,
        tx: &Transaction<'_>,
        id: i64,
        revision: Option<i64>,
        by: &str,
        now: Timestamp,
    ) -> Result<usize, AlertError> {
        let notice = load(tx, id)?;
        if let Some(rev) = revision
            && rev != notice.revision
        {
            return Err(AlertError::BadToken(format!(
                "notice {id} was edited after this link was sent (version {rev}, now {}); use the newer email",
                notice.revision
            )));
        }
        match notice.state {
            NoticeState::Approved => return Ok(0),
            NoticeState::Cancelled => {
                return Err(AlertError::NotFound(format!("open notice {id} (the outage ended before approval)")));
            }
            NoticeState::AwaitingApproval => {}
        }
        tx.execute(
            "UPDATE notice SET state = 'approved', approved_by = ?2, approved_at = ?3, sent_revision = revision
             WHERE id = ?1",
            params![id, by, to_ms(now)],
        )?;
        let message = match (notice.kind, notice.sent_revision) {
            (NoticeKind::Maintenance, _) => DirectorMessage::Maintenance,
            (NoticeKind::Outage, 0) => DirectorMessage::Opened,
            (NoticeKind::Outage, _) => DirectorMessage::Update,
        };
        let notice = load(tx, id)?;
        let n = self.queue_directors(tx, &notice, message, now)?;
        journal(tx, now, by, "notice.approve", &format!("notice:{id}"), &format!("revision {}", notice.revision))?;
        tracing::info!(notice = id, by, emails = n, "notice approved, queued to the directors");
        Ok(n)
    }

    fn domain(&self) -> &str {
        sender_domain(&self.policy.from)
    }

    fn message_id(&self, notice: &Notice, part: &str) -> String {
        format!("<vigie.notice-{}.{}.{part}@{}>", notice.id, notice.starts_at.as_millisecond(), self.domain())
    }

    /// The plain and HTML bodies of a director's email.
    fn director_bodies(
        &self,
        notice: &Notice,
        director: &Director,
        message: DirectorMessage,
        subject: &str,
    ) -> Result<(String, String), AlertError> {
        let tz = &self.policy.time_zone;
        let ended = notice.ended_at.unwrap_or(notice.expected_end);
        let ctx = context! {
            kind => message.kind(),
            subject => subject,
            school => &director.school,
            uai => &director.uai,
            started => format_date_fr(notice.starts_at, tz),
            expected_end => format_date_fr(notice.expected_end, tz),
            duration => duration_fr(notice.expected_end.duration_since(notice.starts_at)),
            ended => format_date_fr(ended, tz),
            lasted => duration_fr(ended.duration_since(notice.starts_at)),
            message => &notice.message,
        };
        Ok((render(&self.env, "director.txt", &ctx)?, render(&self.env, "director.html", &ctx)?))
    }

    fn director_subject(&self, notice: &Notice, message: DirectorMessage, director: &Director) -> String {
        let tz = &self.policy.time_zone;
        match message {
            DirectorMessage::Opened => format!("ENT indisponible — {}", director.school),
            DirectorMessage::Update => format!("ENT indisponible (mise à jour) — {}", director.school),
            DirectorMessage::Maintenance => format!(
                "ENT : maintenance programmée le {} — {}",
                format_date_fr(notice.starts_at, tz),
                director.school
            ),
            DirectorMessage::Closed => format!("ENT : service rétabli — {}", director.school),
        }
    }

    /// Queues one email per director, spread at the configured rate. Returns how many.
    fn queue_directors(
        &self,
        tx: &Transaction<'_>,
        notice: &Notice,
        message: DirectorMessage,
        now: Timestamp,
    ) -> Result<usize, AlertError> {
        let spacing_ms = 60_000 / i64::from(self.policy.per_minute.max(1));
        let part = match message {
            DirectorMessage::Closed => "closed".to_owned(),
            _ => format!("r{}", notice.revision),
        };
        let first = self.message_id(notice, "r1.thread");
        for (i, director) in self.policy.directors.iter().enumerate() {
            let subject = self.director_subject(notice, message, director);
            let (body, html) = self.director_bodies(notice, director, message, &subject)?;
            let offset = spacing_ms.saturating_mul(i64::try_from(i).unwrap_or(i64::MAX));
            let at = now.checked_add(SignedDuration::from_millis(offset)).unwrap_or(Timestamp::MAX);
            let email = Email {
                message_id: self.message_id(notice, &format!("{part}.{}", director.uai)),
                in_reply_to: (message == DirectorMessage::Update || message == DirectorMessage::Closed)
                    .then(|| first.replace("thread", &director.uai)),
                alert_id: None,
                from: self.policy.from.clone(),
                to: vec![director.email.clone()],
                subject,
                body,
                html: Some(html),
                notice_id: Some(notice.id),
                school: Some(director.uai.clone()),
                attachments: Vec::new(),
            };
            enqueue_at(tx, &email, now, at)?;
        }
        Ok(self.policy.directors.len())
    }

    /// What the first configured director receives for the notice's current revision:
    /// (that director, subject, text).
    fn sample_director_message(&self, notice: &Notice) -> Result<(Director, String, String), AlertError> {
        let sample = self.policy.directors.first().cloned().unwrap_or(Director {
            uai: "0000000A".into(),
            school: "(aucune école configurée)".into(),
            email: String::new(),
        });
        // Awaiting approval: the message the approval would send. Approved: the one sent.
        let message = match (notice.kind, notice.state, notice.sent_revision, notice.ended_at) {
            (NoticeKind::Maintenance, ..) => DirectorMessage::Maintenance,
            (NoticeKind::Outage, _, s, Some(_)) if s > 0 => DirectorMessage::Closed,
            (NoticeKind::Outage, NoticeState::AwaitingApproval, 0, _) => DirectorMessage::Opened,
            (NoticeKind::Outage, NoticeState::AwaitingApproval, _, _) => DirectorMessage::Update,
            (NoticeKind::Outage, _, s, _) if s > 1 => DirectorMessage::Update,
            (NoticeKind::Outage, ..) => DirectorMessage::Opened,
        };
        let subject = self.director_subject(notice, message, &sample);
        let (text, _) = self.director_bodies(notice, &sample, message, &subject)?;
        Ok((sample, subject, text))
    }

    fn approval_context(
        &self,
        notice: &Notice,
        escalated: bool,
        approver: &str,
        now: Timestamp,
    ) -> Result<(String, String, String), AlertError> {
        let tz = &self.policy.time_zone;
        let expires = plus(now, self.policy.link_valid_for);
        let token = self.key.sign(&Claims {
            action: "approve".into(),
            subject: notice.id,
            revision: notice.revision,
            who: approver.to_owned(),
            expires,
        });
        let approve_url = format!("{}/notices/approve?token={token}", self.policy.base_url.trim_end_matches('/'));
        let (sample, _, preview) = self.sample_director_message(notice)?;
        let what = if notice.kind == NoticeKind::Maintenance { "maintenance programmée" } else { "interruption" };
        let subject = format!(
            "[Vigie] {}À VALIDER — avis d'{what} aux {} directeurs ({})",
            if escalated { "RELANCE — " } else { "" },
            self.policy.directors.len(),
            notice.service
        );
        let ctx = context! {
            subject => &subject,
            escalated => escalated,
            waited => duration_fr(signed(self.policy.escalate_after)),
            kind => if notice.kind == NoticeKind::Maintenance { "maintenance" } else { "outage" },
            directors => self.policy.directors.len(),
            service => &notice.service,
            started => format_date_fr(notice.starts_at, tz),
            duration => duration_fr(notice.expected_end.duration_since(notice.starts_at)),
            expected_end => format_date_fr(notice.expected_end, tz),
            message => &notice.message,
            sample_school => &sample.school,
            preview => preview.trim_end(),
            approve_url => approve_url,
            link_expires => format_date_fr(expires, tz),
            id => notice.id,
            revision => notice.revision,
        };
        Ok((subject, render(&self.env, "approval.txt", &ctx)?, render(&self.env, "approval.html", &ctx)?))
    }

    /// One personal approval email per approver (or second approver when `escalated`).
    fn queue_approval_requests(
        &self,
        tx: &Transaction<'_>,
        notice: &Notice,
        escalated: bool,
        now: Timestamp,
    ) -> Result<(), AlertError> {
        let approvers = if escalated { &self.policy.second_approvers } else { &self.policy.approvers };
        for (i, approver) in approvers.iter().enumerate() {
            let (subject, body, html) = self.approval_context(notice, escalated, approver, now)?;
            let part = format!("approval-r{}{}.{i}", notice.revision, if escalated { "-escalated" } else { "" });
            let email = Email {
                message_id: self.message_id(notice, &part),
                in_reply_to: None,
                alert_id: None,
                from: self.policy.from.clone(),
                to: vec![approver.clone()],
                subject,
                body,
                html: Some(html),
                notice_id: Some(notice.id),
                school: None,
                attachments: Vec::new(),
            };
            enqueue_on(tx, &email, now)?;
        }
        Ok(())
    }

    fn queue_it_email(
        &self,
        tx: &Transaction<'_>,
        notice: &Notice,
        closed: bool,
        maintenance: Option<i64>,
        now: Timestamp,
    ) -> Result<(), AlertError> {
        let tz = &self.policy.time_zone;
        let ended = notice.ended_at.unwrap_or(now);
        let ctx = context! {
            kind => if closed { "closed" } else { "opened" },
            service => &notice.service,
            started => format_date_fr(notice.starts_at, tz),
            ended => format_date_fr(ended, tz),
            lasted => duration_fr(ended.duration_since(notice.starts_at)),
            duration => duration_fr(notice.expected_end.duration_since(notice.starts_at)),
            expected_end => format_date_fr(notice.expected_end, tz),
            directors => self.policy.directors.len(),
            directors_told => notice.sent_revision > 0,
            approvers => self.policy.approvers.join(", "),
            in_maintenance => maintenance.is_some(),
            maintenance_id => maintenance.unwrap_or(0),
            id => notice.id,
        };
        let body = render(&self.env, "it.txt", &ctx)?;
        let subject = if closed {
            format!(
                "[Vigie] RÉTABLI — {} (interruption de {})",
                notice.service,
                duration_fr(ended.duration_since(notice.starts_at))
            )
        } else {
            format!(
                "[Vigie] INTERRUPTION — {} indisponible depuis {}",
                notice.service,
                format_date_fr(notice.starts_at, tz)
            )
        };
        let email = Email {
            message_id: self.message_id(notice, if closed { "it-closed" } else { "it-opened" }),
            in_reply_to: closed.then(|| self.message_id(notice, "it-opened")),
            alert_id: None,
            from: self.policy.from.clone(),
            to: self.policy.it_service.clone(),
            subject,
            body,
            html: None,
            notice_id: Some(notice.id),
            school: None,
            attachments: Vec::new(),
        };
        enqueue_on(tx, &email, now)?;
        Ok(())
    }
}

/// French warnings when `[start, end)` overlaps the contractual 06:00 → 03:00 window.
pub fn window_overlap_warnings(start: Timestamp, end: Timestamp, tz: &TimeZone) -> Vec<String> {
    let window = ServiceWindow::cctp(tz.clone());
    let mut warnings = Vec::new();
    let first = tz.to_datetime(start).date().yesterday().unwrap_or(tz.to_datetime(start).date());
    let last = tz.to_datetime(end).date();
    let mut day = first;
    while day <= last {
        let (open, close) = window.window_of(day);
        let (from, to) = (start.max(open), end.min(close));
        if from < to {
            warnings.push(format!(
                "la maintenance empiète sur la plage contractuelle 06 h 00 → 03 h 00 du {} au {} ({}) : \
                 ce temps comptera comme indisponibilité",
                format_date_fr(from, tz),
                format_date_fr(to, tz),
                duration_fr(to.duration_since(from))
            ));
        }
        day = match day.tomorrow() {
            Ok(d) => d,
            Err(_) => break,
        };
    }
    warnings
}

#[cfg(test)]
#[path = "notice_tests.rs"]
pub(crate) mod tests;
