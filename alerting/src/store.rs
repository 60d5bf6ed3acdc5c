//! The alert lifecycle: detections grouped into alerts that fire, repeat and resolve.
//!
//! A group is `(rule, key)`. The first detection of a group opens a firing alert and queues
//! its email in the same transaction; later detections only count. `tick` resolves alerts
//! that stayed quiet for `resolve_after` and queues reminders every `repeat_every`. Every
//! method takes the current instant, so tests drive the clock.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::AlertError;
use crate::compose::{Notification, compose};
use crate::outbox::enqueue_on;
use crate::schema::{self, enum_from_sql, enum_to_sql, from_ms, journal, to_ms};
use crate::token::SigningKey;
use analyzer::{CctpClass, Detection, Severity};

/// How long a detection id is remembered for idempotent replay. A source replays at most
/// what it had not acknowledged; a month is far beyond any checkpoint or Kafka lag.
const DETECTION_MEMORY: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Who is told, and when.
#[derive(Debug, Clone)]
pub struct AlertPolicy {
    /// An alert with no new detection for this long is resolved.
    pub resolve_after: Duration,
    /// A still-firing alert is notified again this often.
    pub repeat_every: Duration,
    /// The on-call addresses every alert email goes to.
    pub on_call: Vec<String>,
    /// The sender address (`Vigie <vigie@ville.fr>` or `vigie@ville.fr`).
    pub from: String,
    /// The zone dates are written in (Europe/Paris).
    pub time_zone: TimeZone,
    /// Signed acknowledgement links in firing and reminder emails; `None`: no link.
    pub ack: Option<AckLinks>,
    /// Alerts that mute others while they fire ("ENT down" explains "ENT server errors").
    pub inhibit: Vec<Inhibition>,
    /// Who else hears of which alerts, by severity and rule (the security officer gets the
    /// critical security alerts, the DBA the MariaDB ones…). On-call gets every alert anyway.
    pub routes: Vec<Route>,
    /// Rules whose alerts stay pending for a while before they fire: a condition that clears
    /// by itself within `for` (a short burst of 502s during a deploy) tells nobody.
    pub holds: Vec<Hold>,
}

/// Alerts of rules starting with one of `rule_prefixes` stay pending until their detections
/// have gone on for `hold_for` (without a quiet `resolve_after` in between).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub rule_prefixes: Vec<String>,
    pub hold_for: Duration,
}

impl AlertPolicy {
    /// How long alerts of `rule` stay pending; `None`: they fire at once.
    pub fn hold_for(&self, rule: &str) -> Option<Duration> {
        self.holds
            .iter()
            .filter(|h| h.rule_prefixes.iter().any(|p| rule.starts_with(p.as_str())))
            .map(|h| h.hold_for)
            .filter(|d| !d.is_zero())
            .max()
    }
}

/// Extra recipients for the alerts of at least `min_severity` whose rule starts with one of
/// `rule_prefixes` (every rule when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub min_severity: Severity,
    pub rule_prefixes: Vec<String>,
    pub to: Vec<String>,
}

impl Route {
    /// Whether this route takes `alert`.
    pub fn takes(&self, alert: &Alert) -> bool {
        alert.severity >= self.min_severity
            && (self.rule_prefixes.is_empty() || self.rule_prefixes.iter().any(|p| alert.rule.starts_with(p.as_str())))
    }
}

impl AlertPolicy {
    /// Who is told of `alert`: on-call, then every route that takes it, each address once.
    pub fn recipients(&self, alert: &Alert) -> Vec<String> {
        let mut to = self.on_call.clone();
        for route in self.routes.iter().filter(|r| r.takes(alert)) {
            for address in &route.to {
                if !to.contains(address) {
                    to.push(address.clone());
                }
            }
        }
        to
    }
}

/// How acknowledgement links are made: `{base_url}/alerts/ack?token=…`, valid `valid_for`.
#[derive(Debug, Clone)]
pub struct AckLinks {
    pub key: SigningKey,
    pub base_url: String,
    pub valid_for: Duration,
}

/// While an alert of `source_rule` fires, alerts of the `target_rules` are recorded but not
/// emailed (they are notified if they still fire when it resolves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inhibition {
    pub source_rule: String,
    pub target_rules: Vec<String>,
}

/// One line of an alert's history: an email (who was told what, when, and whether it was
/// delivered) or an action (acknowledgement, silence, incident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: Timestamp,
    /// The recipients of an email, or who acted.
    pub who: String,
    /// The email's subject, or the action (`alert.ack`, `silence.create`, …).
    pub what: String,
    /// `queued`, `sent`, `failed` for an email (with the delivery time or error); empty for an action.
    pub outcome: String,
    pub detail: String,
}

impl AlertPolicy {
    /// Checks every setting and reports all problems at once.
    pub fn validate(&self) -> Result<(), AlertError> {
        let mut problems = Vec::new();
        if self.resolve_after.is_zero() {
            problems.push("resolve_after must be longer than zero".to_owned());
        }
        if self.repeat_every.is_zero() {
            problems.push("repeat_every must be longer than zero".to_owned());
        }
        if self.on_call.is_empty() {
            problems.push("on_call lists no address: nobody would be told of an alert".to_owned());
        }
        if let Err(e) = self.from.parse::<lettre::message::Mailbox>() {
            problems.push(format!("from {:?} is not an email address ({e})", self.from));
        }
        for i in &self.inhibit {
            if i.target_rules.contains(&i.source_rule) {
                problems.push(format!("inhibition by {:?} cannot mute itself", i.source_rule));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            if route.to.is_empty() {
                problems.push(format!("route {} sends to nobody: give it `to` addresses", i + 1));
            }
            for address in &route.to {
                if let Err(e) = address.parse::<lettre::message::Mailbox>() {
                    problems.push(format!("route {} address {address:?} is not an email address ({e})", i + 1));
                }
            }
        }
        for address in &self.on_call {
            if let Err(e) = address.parse::<lettre::message::Mailbox>() {
                problems.push(format!("on_call address {address:?} is not an email address ({e})"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(AlertError::InvalidPolicy(problems.join("; "))) }
    }
}

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// Seen, but held for its rule's `for` duration before anybody is told (`[[alerting.hold]]`).
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    fn as_sql(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    fn from_sql(s: &str) -> Result<Self, AlertError> {
        match s {
            "pending" => Ok(AlertState::Pending),
            "firing" => Ok(AlertState::Firing),
            "resolved" => Ok(AlertState::Resolved),
            other => Err(AlertError::Corrupt(format!("unknown alert state {other:?}"))),
        }
    }
}

/// One alert: a group of detections of the same rule about the same thing.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    pub key: String,
    pub title: String,
    pub description: String,
    /// The highest severity seen in the group.
    pub severity: Severity,
    pub cctp_class: CctpClass,
    pub mitre: Option<String>,
    pub state: AlertState,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub count: u64,
    pub last_evidence: String,
    pub source_ip: Option<IpAddr>,
    pub user_name: Option<String>,
    /// Who acknowledged it (its reminders stopped), and when.
    pub acknowledged: Option<(String, Timestamp)>,
}

/// Which alerts [`AlertStore::alerts`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertFilter {
    /// Only alerts in this state; `None` for all.
    pub state: Option<AlertState>,
    /// At most this many, most recently seen first.
    pub limit: usize,
}

impl Default for AlertFilter {
    fn default() -> Self {
        AlertFilter { state: None, limit: 100 }
    }
}

/// What a silence matches: exact rule and/or exact key. At least one must be set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SilenceMatcher {
    pub rule: Option<String>,
    pub key: Option<String>,
}

/// A recorded silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: i64,
    pub matcher: SilenceMatcher,
    pub created_at: Timestamp,
    /// When it starts muting (a planned maintenance window starts later than it is created).
    pub starts_at: Timestamp,
    pub until: Timestamp,
    pub created_by: String,
    pub reason: String,
}

/// What a [`AlertStore::tick`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickReport {
    /// Pending alerts whose hold ended: they fire now.
    pub promoted: usize,
    pub resolved: usize,
    pub reminders_queued: usize,
    /// Firing alerts whose silence ended, notified now for the first time.
    pub notified_after_silence: usize,
}

/// The alert database (alerts, detection ids, silences and the outbox, in one SQLite file).
#[derive(Debug)]
pub struct AlertStore {
    conn: Connection,
    policy: AlertPolicy,
}

const ALERT_COLUMNS: &str = "id, rule, key, title, description, severity, cctp_class, mitre, \
                             state, first_seen, last_seen, resolved_at, count, last_evidence, \
                             source_ip, user_name, acknowledged_by, acknowledged_at";

/// SQL condition true when an active silence matches the alert row `a` at `?now`.
const SILENCED: &str = "EXISTS (SELECT 1 FROM silence s WHERE s.until > :now AND s.starts_at <= :now
                        AND (s.rule IS NULL OR s.rule = a.rule)
                        AND (s.key IS NULL OR s.key = a.key))";

fn alert_from_row(r: &rusqlite::Row<'_>) -> Result<Alert, AlertError> {
    let source_ip: Option<String> = r.get(14)?;
    let source_ip = source_ip
        .map(|s| s.parse::<IpAddr>().map_err(|e| AlertError::Corrupt(format!("source ip {s:?}: {e}"))))
        .transpose()?;
    Ok(Alert {
        id: r.get(0)?,
        rule: r.get(1)?,
        key: r.get(2)?,
        title: r.get(3)?,
        description: r.get(4)?,
        severity: enum_from_sql(&r.get::<_, String>(5)?)?,
        cctp_class: enum_from_sql(&r.get::<_, String>(6)?)?,
        mitre: r.get(7)?,
        state: AlertState::from_sql(&r.get::<_, String>(8)?)?,
        first_seen: from_ms(r.get(9)?)?,
        last_seen: from_ms(r.get(10)?)?,
        resolved_at: r.get::<_, Option<i64>>(11)?.map(from_ms).transpose()?,
        count: u64::try_from(r.get::<_, i64>(12)?).unwrap_or(0),
        last_evidence: r.get(13)?,
        source_ip,
        user_name: r.get(15)?,
        acknowledged: match (r.get::<_, Option<String>>(16)?, r.get::<_, Option<i64>>(17)?) {
            (Some(by), Some(at)) => Some((by, from_ms(at)?)),
            _ => None,
        },
    })
}

fn load_alert(tx: &Connection, id: i64) -> Result<Alert, AlertError> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alert WHERE id = ?1");
    let mut stmt = tx.prepare(&sql)?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => alert_from_row(row),
        None => Err(AlertError::Corrupt(format!("alert {id} vanished"))),
    }
}

/// Ids of alerts selected by `sql`, which names the alert table `a` and may bind `:now` and
/// `:extra` (a duration in milliseconds).
fn alert_ids(tx: &Connection, sql: &str, now: Timestamp, extra: i64) -> Result<Vec<i64>, AlertError> {
    let mut stmt = tx.prepare(sql)?;
    for (name, value) in [(":now", to_ms(now)), (":extra", extra)] {
        if let Some(index) = stmt.parameter_index(name)? {
            stmt.raw_bind_parameter(index, value)?;
        }
    }
    let mut rows = stmt.raw_query();
    let mut ids = Vec::new();
    while let Some(row) = rows.next()? {
        ids.push(row.get(0)?);
    }
    Ok(ids)
}

fn is_silenced(tx: &Connection, rule: &str, key: &str, now: Timestamp) -> Result<bool, AlertError> {
    let sql = format!("SELECT {SILENCED} FROM (SELECT :rule AS rule, :key AS key) a");
    Ok(tx.query_row(&sql, rusqlite::named_params! {":now": to_ms(now), ":rule": rule, ":key": key}, |r| r.get(0))?)
}

/// Whether a firing alert of a rule that inhibits `rule` exists.
fn is_inhibited(tx: &Connection, rule: &str, policy: &AlertPolicy) -> Result<bool, AlertError> {
    for i in policy.inhibit.iter().filter(|i| i.target_rules.iter().any(|t| t == rule)) {
        let firing: Option<i64> = tx
            .query_row("SELECT id FROM alert WHERE rule = ?1 AND state = 'firing' LIMIT 1", [&i.source_rule], |r| {
                r.get(0)
            })
            .optional()?;
        if firing.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Keeps the ids whose alert is not inhibited.
fn not_inhibited(tx: &Connection, ids: Vec<i64>, policy: &AlertPolicy) -> Result<Vec<i64>, AlertError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let rule: String = tx.query_row("SELECT rule FROM alert WHERE id = ?1", [id], |r| r.get(0))?;
        if !is_inhibited(tx, &rule, policy)? {
            out.push(id);
        }
    }
    Ok(out)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AlertStore {
    /// Opens (or creates) the alert database at `path`; `policy` is validated first.
    pub fn open(path: &Path, policy: AlertPolicy) -> Result<AlertStore, AlertError> {
        policy.validate()?;
        Ok(AlertStore { conn: schema::open(path)?, policy })
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// Records `detections` in one transaction and returns how many new alerts fired.
    ///
    /// A detection id seen before is ignored, so a replay after a crash changes nothing. The
    /// first detection of a `(rule, key)` group opens a firing alert and queues its email in
    /// the same transaction (unless a silence matches); later ones only update the count.
    pub fn ingest(&mut self, detections: &[Detection], now: Timestamp) -> Result<usize, AlertError> {
        let tx = self.conn.transaction()?;
        let mut fired = 0;
        for d in detections {
            let seen: Option<i64> =
                tx.query_row("SELECT 1 FROM seen_detection WHERE id = ?1", [&d.id], |r| r.get(0)).optional()?;
            if seen.is_some() {
                tracing::debug!(detection = %d.id, "detection already ingested");
                continue;
            }
            let open: Option<i64> = tx
                .query_row(
                    "SELECT id FROM alert WHERE rule = ?1 AND key = ?2 AND state IN ('firing', 'pending')",
                    params![d.rule, d.key],
                    |r| r.get(0),
                )
                .optional()?;
            let alert_id = match open {
                Some(id) => {
                    update_alert(&tx, id, d)?;
                    id
                }
                None if self.policy.hold_for(&d.rule).is_some() => open_pending(&tx, d)?,
                None => {
                    fired += 1;
                    open_alert(&tx, d, &self.policy, now)?
                }
            };
            tx.execute(
                "INSERT INTO seen_detection (id, alert_id, ingested_at) VALUES (?1, ?2, ?3)",
                params![d.id, alert_id, to_ms(now)],
            )?;
        }
        tx.commit()?;
        Ok(fired)
    }

    /// Resolves quiet alerts (with a "résolu" email), queues reminders for alerts still
    /// firing, notifies alerts whose silence ended, and forgets old detection ids.
    pub fn tick(&mut self, now: Timestamp) -> Result<TickReport, AlertError> {
        let tx = self.conn.transaction()?;
        let mut report = TickReport::default();

        // Pending alerts: gone quiet before their hold ended, they end untold; held long
        // enough, they fire (and are told just below, with the alerts a silence kept quiet).
        let pending: Vec<(i64, String, i64, i64)> = {
            let mut stmt = tx.prepare("SELECT id, rule, first_seen, last_seen FROM alert WHERE state = 'pending'")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?
        };
        for (id, rule, first_seen, last_seen) in pending {
            let now_ms = to_ms(now);
            if last_seen <= now_ms - millis(self.policy.resolve_after) {
                tx.execute("UPDATE alert SET state = 'resolved', resolved_at = ?2 WHERE id = ?1", params![id, now_ms])?;
                tracing::info!(alert = id, rule, "pending alert ended before it fired: nobody told");
            } else if self.policy.hold_for(&rule).is_none_or(|hold| now_ms - first_seen >= millis(hold)) {
                tx.execute("UPDATE alert SET state = 'firing' WHERE id = ?1", [id])?;
                report.promoted += 1;
                tracing::info!(alert = id, rule, "pending alert fires");
            }
        }

        // Quiet alerts end now; the on-call hears of the end only if they heard of the start
        // and no silence covers the alert today.
        let quiet = {
            let sql = format!(
                "SELECT a.id, (a.last_notified_at IS NOT NULL AND NOT {SILENCED}) FROM alert a
                 WHERE a.state = 'firing' AND a.last_seen <= :now - :extra ORDER BY a.id"
            );
            let mut stmt = tx.prepare(&sql)?;
            let params = rusqlite::named_params! {
                ":now": to_ms(now),
                ":extra": millis(self.policy.resolve_after),
            };
            stmt.query_map(params, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?
        };
        for &(id, notify) in &quiet {
            tx.execute("UPDATE alert SET state = 'resolved', resolved_at = ?2 WHERE id = ?1", params![id, to_ms(now)])?;
            if notify {
                let alert = load_alert(&tx, id)?;
                enqueue_on(&tx, &compose(&alert, Notification::Resolved, &self.policy, now), now)?;
            }
            tracing::info!(alert = id, notify, "alert resolved");
        }
        report.resolved = quiet.len();

        let unsilenced = alert_ids(
            &tx,
            &format!(
                "SELECT a.id FROM alert a WHERE a.state = 'firing' AND a.last_notified_at IS NULL
                 AND NOT {SILENCED}"
            ),
            now,
            0,
        )?;
        let unsilenced = not_inhibited(&tx, unsilenced, &self.policy)?;
        for id in &unsilenced {
            let alert = load_alert(&tx, *id)?;
            enqueue_on(&tx, &compose(&alert, Notification::Firing, &self.policy, now), now)?;
            tx.execute("UPDATE alert SET last_notified_at = ?2 WHERE id = ?1", params![id, to_ms(now)])?;
        }
        report.notified_after_silence = unsilenced.len();

        let due = alert_ids(
            &tx,
            &format!(
                "SELECT a.id FROM alert a WHERE a.state = 'firing' AND a.acknowledged_at IS NULL
                 AND a.last_notified_at <= :now - :extra AND NOT {SILENCED}"
            ),
            now,
            millis(self.policy.repeat_every),
        )?;
        let due = not_inhibited(&tx, due, &self.policy)?;
        for id in &due {
            let repeats: i64 = tx.query_row("SELECT repeats + 1 FROM alert WHERE id = ?1", [id], |r| r.get(0))?;
            let alert = load_alert(&tx, *id)?;
            let n = u32::try_from(repeats).unwrap_or(u32::MAX);
            enqueue_on(&tx, &compose(&alert, Notification::Reminder(n), &self.policy, now), now)?;
            tx.execute(
                "UPDATE alert SET last_notified_at = ?2, repeats = ?3 WHERE id = ?1",
                params![id, to_ms(now), repeats],
            )?;
        }
        report.reminders_queued = due.len();

        let horizon = now.checked_sub(DETECTION_MEMORY).unwrap_or(Timestamp::MIN);
        tx.execute("DELETE FROM seen_detection WHERE ingested_at < ?1", [to_ms(horizon)])?;
        tx.commit()?;
        Ok(report)
    }

    /// Alerts matching `filter`, most recently seen first.
    pub fn alerts(&self, filter: AlertFilter) -> Result<Vec<Alert>, AlertError> {
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alert WHERE (?1 IS NULL OR state = ?1)
             ORDER BY last_seen DESC, id DESC LIMIT ?2"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params![filter.state.map(AlertState::as_sql), limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(alert_from_row(row)?);
        }
        Ok(out)
    }

    /// Silences alerts matching `matcher` until `until`: they are still recorded, but no
    /// email is sent for them while the silence lasts. Returns the silence's id.
    pub fn silence(
        &mut self,
        matcher: &SilenceMatcher,
        until: Timestamp,
        by: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<i64, AlertError> {
        if matcher.rule.is_none() && matcher.key.is_none() {
            return Err(AlertError::EmptySilence);
        }
        if until <= now {
            return Err(AlertError::InvalidPolicy(format!(
                "a silence must end in the future (until {until}, now {now})"
            )));
        }
        self.conn.execute(
            "INSERT INTO silence (rule, key, created_at, until, created_by, reason, starts_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?3)",
            params![matcher.rule, matcher.key, to_ms(now), to_ms(until), by, reason],
        )?;
        let id = self.conn.last_insert_rowid();
        let what = format!("rule={:?} key={:?} until {until}: {reason}", matcher.rule, matcher.key);
        journal(&self.conn, now, by, "silence.create", &format!("silence:{id}"), &what)?;
        tracing::info!(silence = id, rule = ?matcher.rule, key = ?matcher.key, by, reason, "silence created");
        Ok(id)
    }

    /// Ends a silence now. Returns whether it was still active.
    pub fn expire_silence(&mut self, id: i64, now: Timestamp) -> Result<bool, AlertError> {
        self.expire_silence_by(id, "vigie", now)
    }

    /// Ends a silence now, journaling who did it. Returns whether it was still active.
    pub fn expire_silence_by(&mut self, id: i64, by: &str, now: Timestamp) -> Result<bool, AlertError> {
        let changed =
            self.conn.execute("UPDATE silence SET until = ?2 WHERE id = ?1 AND until > ?2", params![id, to_ms(now)])?;
        if changed == 1 {
            journal(&self.conn, now, by, "silence.expire", &format!("silence:{id}"), "")?;
        }
        Ok(changed == 1)
    }

    /// Acknowledges firing alert `id` on behalf of `by`: its reminders stop. Returns whether
    /// it was firing and not yet acknowledged.
    pub fn acknowledge(&mut self, id: i64, by: &str, now: Timestamp) -> Result<bool, AlertError> {
        let changed = self.conn.execute(
            "UPDATE alert SET acknowledged_at = ?2, acknowledged_by = ?3
             WHERE id = ?1 AND state = 'firing' AND acknowledged_at IS NULL",
            params![id, to_ms(now), by],
        )?;
        if changed == 1 {
            journal(&self.conn, now, by, "alert.ack", &format!("alert:{id}"), "")?;
            tracing::info!(alert = id, by, "alert acknowledged");
        }
        Ok(changed == 1)
    }

    /// Acknowledges through the signed link of an on-call email. `by` is the logged-in user
    /// when the dashboard knows one; otherwise the link's addressees are recorded. Returns
    /// the alert id and whether this call acknowledged it.
    pub fn acknowledge_with_token(
        &mut self,
        token: &str,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<(i64, bool), AlertError> {
        let links =
            self.policy.ack.as_ref().ok_or_else(|| AlertError::BadToken("acknowledgement links are off".into()))?;
        let claims = links.key.verify(token, "ack", now)?;
        let who = by.map_or_else(|| format!("lien envoyé à {}", claims.who), str::to_owned);
        let done = self.acknowledge(claims.subject, &who, now)?;
        Ok((claims.subject, done))
    }

    /// Who acknowledged alert `id`, and when.
    pub fn acknowledgement(&self, id: i64) -> Result<Option<(String, Timestamp)>, AlertError> {
        let row: Option<(Option<String>, Option<i64>)> = self
            .conn
            .query_row("SELECT acknowledged_by, acknowledged_at FROM alert WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match row {
            Some((Some(by), Some(at))) => Ok(Some((by, from_ms(at)?))),
            Some(_) => Ok(None),
            None => Err(AlertError::NotFound(format!("alert {id}"))),
        }
    }

    /// The history of alert `id` (or of every alert and notice when `None`): each email with
    /// its recipients and delivery outcome, and each action with who did it; oldest first,
    /// the most recent `limit` entries.
    pub fn history(&self, id: Option<i64>, limit: usize) -> Result<Vec<HistoryEntry>, AlertError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare(
            "SELECT created_at, recipients, subject, state, COALESCE(finished_at, 0), COALESCE(last_error, ''),
                    attempts
             FROM outbox WHERE (?1 IS NULL OR alert_id = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![id, limit])?;
        while let Some(r) = rows.next()? {
            let to: Vec<String> = serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default();
            let state: String = r.get(3)?;
            let finished: i64 = r.get(4)?;
            let error: String = r.get(5)?;
            let attempts: i64 = r.get(6)?;
            let detail = match state.as_str() {
                "sent" => format!("remis au serveur de messagerie le {finished} (tentatives : {attempts})"),
                "failed" => format!("refusé : {error}"),
                _ if error.is_empty() => "en attente d'envoi".to_owned(),
                _ => format!("nouvel essai prévu (tentatives : {attempts}, dernière erreur : {error})"),
            };
            let detail = if state == "sent" {
                detail.replace(&finished.to_string(), &from_ms(finished)?.to_string())
            } else {
                detail
            };
            out.push(HistoryEntry {
                at: from_ms(r.get(0)?)?,
                who: to.join(", "),
                what: r.get(2)?,
                outcome: state,
                detail,
            });
        }
        let subject = id.map(|i| format!("alert:{i}"));
        let mut stmt = self.conn.prepare(
            "SELECT at, actor, action, detail FROM journal WHERE (?1 IS NULL OR subject = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![subject, limit])?;
        while let Some(r) = rows.next()? {
            out.push(HistoryEntry {
                at: from_ms(r.get(0)?)?,
                who: r.get(1)?,
                what: r.get(2)?,
                outcome: String::new(),
                detail: r.get(3)?,
            });
        }
        out.sort_by_key(|e| e.at);
        let skip = out.len().saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out.split_off(skip))
    }

    /// The outbox's counts (the same database).
    pub fn outbox_stats(&self) -> Result<crate::OutboxStats, AlertError> {
        crate::outbox::stats_on(&self.conn)
    }

    /// The silences active or scheduled at `now`.
    pub fn silences(&self, now: Timestamp) -> Result<Vec<Silence>, AlertError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, rule, key, created_at, until, created_by, reason, starts_at FROM silence
             WHERE until > ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([to_ms(now)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Silence {
                id: r.get(0)?,
                matcher: SilenceMatcher { rule: r.get(1)?, key: r.get(2)? },
                created_at: from_ms(r.get(3)?)?,
                starts_at: from_ms(r.get(7)?)?,
                until: from_ms(r.get(4)?)?,
                created_by: r.get(5)?,
                reason: r.get(6)?,
            });
        }
        Ok(out)
    }
}

/// Inserts the alert a group's first detection opens, in `state`; returns its id.
fn insert_alert(tx: &Transaction<'_>, d: &Detection, state: AlertState) -> Result<i64, AlertError> {
    tx.execute(
        "INSERT INTO alert (rule, key, title, description, severity, cctp_class, mitre, state,
                            first_seen, last_seen, count, last_evidence, source_ip, user_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?12, ?8, ?8, 1, ?9, ?10, ?11)",
        params![
            d.rule,
            d.key,
            d.title,
            d.description,
            enum_to_sql(&d.severity)?,
            enum_to_sql(&d.cctp_class)?,
            d.mitre,
            to_ms(d.timestamp),
            d.evidence,
            d.source_ip.map(|ip| ip.to_string()),
            d.user_name,
            state.as_sql(),
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Opens a pending alert for the first detection of a held rule: nobody is told yet.
fn open_pending(tx: &Transaction<'_>, d: &Detection) -> Result<i64, AlertError> {
    let id = insert_alert(tx, d, AlertState::Pending)?;
    tracing::info!(alert = id, rule = %d.rule, key = %d.key, "alert pending");
    Ok(id)
}

/// Opens a firing alert for the first detection of a group and, unless silenced, queues its
/// email in the caller's transaction.
fn open_alert(tx: &Transaction<'_>, d: &Detection, policy: &AlertPolicy, now: Timestamp) -> Result<i64, AlertError> {
    let silenced = is_silenced(tx, &d.rule, &d.key, now)? || is_inhibited(tx, &d.rule, policy)?;
    let id = insert_alert(tx, d, AlertState::Firing)?;
    if silenced {
        tracing::info!(alert = id, rule = %d.rule, key = %d.key, "alert fired while silenced");
    } else {
        let alert = load_alert(tx, id)?;
        enqueue_on(tx, &compose(&alert, Notification::Firing, policy, now), now)?;
        tx.execute("UPDATE alert SET last_notified_at = ?2 WHERE id = ?1", params![id, to_ms(now)])?;
        tracing::info!(alert = id, rule = %d.rule, key = %d.key, "alert fired");
    }
    Ok(id)
}

/// Counts one more detection in an open alert. Evidence, IP and account follow the latest
/// detection; the severity keeps the highest seen.
fn update_alert(tx: &Transaction<'_>, id: i64, d: &Detection) -> Result<(), AlertError> {
    let current = load_alert(tx, id)?;
    let newer = d.timestamp >= current.last_seen;
    let severity = if rank(d.severity) > rank(current.severity) { d.severity } else { current.severity };
    tx.execute(
        "UPDATE alert SET count = count + 1, last_seen = ?2, severity = ?3,
                          last_evidence = ?4, source_ip = ?5, user_name = ?6
         WHERE id = ?1",
        params![
            id,
            to_ms(current.last_seen.max(d.timestamp)),
            enum_to_sql(&severity)?,
            if newer { &d.evidence } else { &current.last_evidence },
            if newer { d.source_ip.or(current.source_ip) } else { current.source_ip }.map(|ip| ip.to_string()),
            if newer { d.user_name.as_ref().or(current.user_name.as_ref()) } else { current.user_name.as_ref() },
        ],
    )?;
    Ok(())
}

fn rank(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::outbox::{Outbox, OutboxEntry, OutboxState};

    pub(crate) fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub(crate) fn policy() -> AlertPolicy {
        AlertPolicy {
            resolve_after: Duration::from_secs(15 * 60),
            repeat_every: Duration::from_secs(4 * 3600),
            on_call: vec!["astreinte@ent.ville.test".into()],
            from: "Vigie <vigie@ent.ville.test>".into(),
            time_zone: TimeZone::get("Europe/Paris").unwrap(),
            ack: Some(AckLinks {
                key: SigningKey::from_bytes([5; 32]),
                base_url: "https://vigie.ent.ville.test".into(),
                valid_for: Duration::from_secs(7 * 86_400),
            }),
            inhibit: vec![Inhibition {
                source_rule: "ent.unavailable".into(),
                target_rules: vec!["ent.server-errors".into()],
            }],
            routes: Vec::new(),
            holds: Vec::new(),
        }
    }

    /// A brute-force detection against `ip`, numbered `n`, at `at`.
    pub(crate) fn detection(n: u32, ip: &str, at: &str) -> Detection {
        Detection {
            id: format!("brute_force:apache-main:{n}"),
            rule: "brute_force".into(),
            title: "Force brute sur la connexion ENT".into(),
            description: "Nombreux échecs de connexion depuis une même adresse.".into(),
            severity: Severity::Critical,
            cctp_class: CctpClass::SecuriteMineure,
            mitre: Some("T1110".into()),
            timestamp: t(at),
            source_ip: Some(ip.parse().unwrap()),
            user_name: Some("jdupont".into()),
            key: format!("source.ip={ip}"),
            evidence: format!("{} échecs de connexion en 5 min", 40 + n),
            event_id: collector::EventId::at("apache-main", u64::from(n)),
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: AlertStore,
        outbox: Outbox,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        let store = AlertStore::open(&path, policy()).unwrap();
        let outbox = Outbox::open(&path).unwrap();
        Fixture { _dir: dir, store, outbox }
    }

    fn queued(outbox: &Outbox) -> Vec<OutboxEntry> {
        let mut v = outbox.entries(OutboxState::Queued, 100).unwrap();
        v.reverse();
        v
    }

    fn firing(store: &AlertStore) -> Vec<Alert> {
        store.alerts(AlertFilter { state: Some(AlertState::Firing), limit: 10 }).unwrap()
    }

    #[test]
    fn held_rules_stay_pending_then_fire_or_end_untold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        let mut policy = policy();
        policy.holds = vec![Hold { rule_prefixes: vec!["brute".into()], hold_for: Duration::from_secs(5 * 60) }];
        assert_eq!(policy.hold_for("brute_force"), Some(Duration::from_secs(300)));
        assert_eq!(policy.hold_for("web.sqli"), None);
        let mut store = AlertStore::open(&path, policy).unwrap();
        let outbox = Outbox::open(&path).unwrap();
        let pending = |store: &AlertStore| store.alerts(AlertFilter { state: Some(AlertState::Pending), limit: 10 });

        // Seen at 08:00: pending, nobody told.
        assert_eq!(
            store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T08:00:00Z")], t("2025-04-07T08:00:00Z")).unwrap(),
            0
        );
        assert_eq!(pending(&store).unwrap().len(), 1);
        assert!(queued(&outbox).is_empty());
        assert_eq!(store.tick(t("2025-04-07T08:02:00Z")).unwrap().promoted, 0, "held for 5 min");
        // Still going at 08:04; at 08:05:30 the hold is over: it fires and on-call is told.
        store.ingest(&[detection(2, "203.0.113.9", "2025-04-07T08:04:00Z")], t("2025-04-07T08:04:00Z")).unwrap();
        assert_eq!(pending(&store).unwrap()[0].count, 2, "one alert, counted");
        let report = store.tick(t("2025-04-07T08:05:30Z")).unwrap();
        assert_eq!(report.promoted, 1);
        let fired = firing(&store);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].first_seen, t("2025-04-07T08:00:00Z"), "dated from the first detection");
        let emails = queued(&outbox);
        assert_eq!(emails.len(), 1);
        assert!(emails[0].email.subject.starts_with("[Vigie] CRITIQUE"), "{}", emails[0].email.subject);

        // Another address: one detection, then quiet for resolve_after: it ends untold.
        store.ingest(&[detection(3, "198.51.100.7", "2025-04-07T09:00:00Z")], t("2025-04-07T09:00:00Z")).unwrap();
        store.tick(t("2025-04-07T09:03:00Z")).unwrap();
        assert_eq!(pending(&store).unwrap().len(), 1);
        let report = store.tick(t("2025-04-07T09:16:00Z")).unwrap();
        assert_eq!(report.promoted, 0);
        assert!(pending(&store).unwrap().is_empty());
        // Both ended by then (the first one quiet since 08:04): the fired one with its "résolu".
        let ended = store.alerts(AlertFilter { state: Some(AlertState::Resolved), limit: 10 }).unwrap();
        assert_eq!(ended.len(), 2);
        assert!(ended.iter().any(|a| a.source_ip == Some("198.51.100.7".parse().unwrap())));
        let subjects: Vec<String> = queued(&outbox).into_iter().map(|e| e.email.subject).collect();
        assert_eq!(subjects.len(), 2, "{subjects:?}");
        assert!(subjects[1].starts_with("[Vigie] RÉSOLU") && subjects[1].contains("203.0.113.9"), "{subjects:?}");
        assert!(!subjects.iter().any(|s| s.contains("198.51.100.7")), "nobody was told of it, nor of its end");
    }

    #[test]
    fn first_detection_fires_and_queues_one_email_later_ones_only_count() {
        let mut f = fixture();
        let now = t("2025-04-07T12:30:00Z");
        let fired = f
            .store
            .ingest(
                &[
                    detection(1, "203.0.113.9", "2025-04-07T12:29:00Z"),
                    detection(2, "203.0.113.9", "2025-04-07T12:29:30Z"),
                    detection(3, "198.51.100.7", "2025-04-07T12:29:40Z"),
                ],
                now,
            )
            .unwrap();
        assert_eq!(fired, 2, "two groups");
        let fired = f.store.ingest(&[detection(4, "203.0.113.9", "2025-04-07T12:30:00Z")], now).unwrap();
        assert_eq!(fired, 0, "known group: deduplicated");

        let alerts = firing(&f.store);
        let brute = alerts.iter().find(|a| a.key == "source.ip=203.0.113.9").unwrap();
        assert_eq!(brute.count, 3);
        assert_eq!(brute.first_seen, t("2025-04-07T12:29:00Z"));
        assert_eq!(brute.last_seen, t("2025-04-07T12:30:00Z"));
        assert_eq!(brute.last_evidence, "44 échecs de connexion en 5 min");
        assert_eq!(brute.state, AlertState::Firing);
        assert_eq!(brute.cctp_class, CctpClass::SecuriteMineure);

        let emails = queued(&f.outbox);
        assert_eq!(emails.len(), 2, "one email per new group");
        let email = &emails[0].email;
        assert_eq!(email.subject, "[Vigie] CRITIQUE — Force brute sur la connexion ENT (203.0.113.9)");
        assert_eq!(email.to, vec!["astreinte@ent.ville.test".to_owned()]);
        assert_eq!(email.alert_id, Some(brute.id));
        assert!(email.message_id.ends_with("firing@ent.ville.test>"), "{}", email.message_id);
        for expected in [
            "Force brute sur la connexion ENT",
            "Nombreux échecs de connexion",
            "Adresse IP source : 203.0.113.9",
            "Compte : jdupont",
            "Première détection : lundi 7 avril 2025, 14 h 29",
            "Nombre de détections : 1",
            "faille de sécurité mineure, résolution sous 15 jours ouvrés",
            "MITRE ATT&CK : T1110",
            "41 échecs de connexion en 5 min",
            &format!("Identifiant de l'alerte : {}", brute.id),
        ] {
            assert!(email.body.contains(expected), "missing {expected:?} in\n{}", email.body);
        }
    }

    #[test]
    fn replaying_a_batch_changes_nothing() {
        let mut f = fixture();
        let now = t("2025-04-07T12:30:00Z");
        let batch =
            [detection(1, "203.0.113.9", "2025-04-07T12:29:00Z"), detection(2, "203.0.113.9", "2025-04-07T12:29:30Z")];
        assert_eq!(f.store.ingest(&batch, now).unwrap(), 1);
        // A crash before the source's checkpoint: the same batch comes again, even later.
        assert_eq!(f.store.ingest(&batch, t("2025-04-07T12:40:00Z")).unwrap(), 0);
        let alerts = firing(&f.store);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].count, 2);
        assert_eq!(queued(&f.outbox).len(), 1);
    }

    #[test]
    fn quiet_alert_resolves_with_an_email_and_a_new_detection_opens_a_new_alert() {
        let mut f = fixture();
        f.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T12:29:00Z")], t("2025-04-07T12:29:05Z")).unwrap();
        assert_eq!(
            f.store.tick(t("2025-04-07T12:43:59Z")).unwrap(),
            TickReport::default(),
            "not yet quiet long enough"
        );
        let report = f.store.tick(t("2025-04-07T12:44:00Z")).unwrap();
        assert_eq!(report.resolved, 1);
        assert!(firing(&f.store).is_empty());
        let resolved = f.store.alerts(AlertFilter { state: Some(AlertState::Resolved), limit: 10 }).unwrap();
        assert_eq!(resolved[0].resolved_at, Some(t("2025-04-07T12:44:00Z")));

        let emails = queued(&f.outbox);
        assert_eq!(emails.len(), 2);
        let done = &emails[1].email;
        assert_eq!(done.subject, "[Vigie] RÉSOLU — Force brute sur la connexion ENT (203.0.113.9)");
        assert_eq!(done.in_reply_to.as_ref(), Some(&emails[0].email.message_id), "threads under the alert");
        assert!(done.body.contains("plus aucune détection depuis 15 min"), "{}", done.body);
        assert!(done.body.contains("Résolue : lundi 7 avril 2025, 14 h 44"), "{}", done.body);
        assert_eq!(f.store.tick(t("2025-04-07T13:00:00Z")).unwrap().resolved, 0, "resolved once");

        let fired =
            f.store.ingest(&[detection(2, "203.0.113.9", "2025-04-07T13:10:00Z")], t("2025-04-07T13:10:00Z")).unwrap();
        assert_eq!(fired, 1, "the group fires again as a new alert");
        assert_eq!(f.store.alerts(AlertFilter::default()).unwrap().len(), 2);
    }

    #[test]
    fn still_firing_alert_is_reminded_every_repeat_interval() {
        let mut f = fixture();
        let start = t("2025-04-07T08:00:00Z");
        f.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T08:00:00Z")], start).unwrap();
        // Detections keep coming every 10 minutes for 9 hours: never quiet, so never resolved.
        let mut reminders = 0;
        for step in 1..=54u32 {
            let now = start.checked_add(SignedDuration::from_mins(i64::from(step) * 10)).unwrap();
            f.store.ingest(&[detection(1 + step, "203.0.113.9", &now.to_string())], now).unwrap();
            let report = f.store.tick(now).unwrap();
            assert_eq!(report.resolved, 0);
            reminders += report.reminders_queued;
        }
        assert_eq!(reminders, 2, "at 4 h and 8 h");
        let emails = queued(&f.outbox);
        let subjects: Vec<&str> = emails.iter().map(|e| e.email.subject.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "[Vigie] CRITIQUE — Force brute sur la connexion ENT (203.0.113.9)",
                "[Vigie] RAPPEL CRITIQUE — Force brute sur la connexion ENT (203.0.113.9)",
                "[Vigie] RAPPEL CRITIQUE — Force brute sur la connexion ENT (203.0.113.9)",
            ]
        );
        assert_ne!(emails[1].email.message_id, emails[2].email.message_id, "each reminder its own id");
        assert!(emails[2].email.body.contains("Nombre de détections : 49"), "{}", emails[2].email.body);
        assert_eq!(firing(&f.store)[0].count, 55);
    }

    #[test]
    fn silenced_alerts_are_recorded_but_not_emailed_until_the_silence_ends() {
        let mut f = fixture();
        let now = t("2025-04-07T12:00:00Z");
        let matcher = SilenceMatcher { rule: Some("brute_force".into()), key: None };
        let until = t("2025-04-07T14:00:00Z");
        let id = f.store.silence(&matcher, until, "m.martin", "test de charge prévu", now).unwrap();
        assert_eq!(f.store.silences(now).unwrap()[0].id, id);

        let fired =
            f.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T12:05:00Z")], t("2025-04-07T12:05:00Z")).unwrap();
        assert_eq!(fired, 1, "recorded");
        assert_eq!(firing(&f.store).len(), 1);
        assert!(queued(&f.outbox).is_empty(), "but not emailed");
        for minute in [10, 20, 30] {
            let at = format!("2025-04-07T13:{minute}:00Z");
            f.store.ingest(&[detection(minute, "203.0.113.9", &at)], t(&at)).unwrap();
            f.store.tick(t(&at)).unwrap();
        }
        assert!(queued(&f.outbox).is_empty(), "no reminder while silenced");

        let at = t("2025-04-07T14:00:00Z");
        f.store.ingest(&[detection(99, "203.0.113.9", "2025-04-07T14:00:00Z")], at).unwrap();
        let report = f.store.tick(at).unwrap();
        assert_eq!(report.notified_after_silence, 1, "the silence ended: tell the on-call now");
        let emails = queued(&f.outbox);
        assert_eq!(emails.len(), 1);
        assert!(emails[0].email.subject.starts_with("[Vigie] CRITIQUE"));
        assert!(emails[0].email.body.contains("Nombre de détections : 5"));
    }

    #[test]
    fn an_alert_silenced_from_start_to_end_resolves_without_any_email() {
        let mut f = fixture();
        let now = t("2025-04-07T12:00:00Z");
        let matcher = SilenceMatcher { rule: None, key: Some("source.ip=203.0.113.9".into()) };
        f.store.silence(&matcher, t("2025-04-08T00:00:00Z"), "m.martin", "scanner autorisé", now).unwrap();
        f.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T12:00:00Z")], now).unwrap();
        f.store.ingest(&[detection(2, "198.51.100.7", "2025-04-07T12:00:00Z")], now).unwrap();
        assert_eq!(queued(&f.outbox).len(), 1, "only the other key is emailed");
        let report = f.store.tick(t("2025-04-07T13:00:00Z")).unwrap();
        assert_eq!(report.resolved, 2);
        let subjects: Vec<String> = queued(&f.outbox).into_iter().map(|e| e.email.subject).collect();
        assert_eq!(subjects.len(), 2, "{subjects:?}");
        assert!(subjects[1].contains("RÉSOLU") && subjects[1].contains("198.51.100.7"), "{subjects:?}");
    }

    #[test]
    fn silences_are_validated_and_can_be_expired() {
        let mut f = fixture();
        let now = t("2025-04-07T12:00:00Z");
        let err = f.store.silence(&SilenceMatcher::default(), t("2025-04-08T00:00:00Z"), "x", "y", now).unwrap_err();
        assert!(matches!(err, AlertError::EmptySilence), "{err}");
        let matcher = SilenceMatcher { rule: Some("brute_force".into()), key: None };
        assert!(f.store.silence(&matcher, now, "x", "y", now).is_err(), "must end in the future");
        let id = f.store.silence(&matcher, t("2025-04-08T00:00:00Z"), "x", "y", now).unwrap();
        assert!(f.store.expire_silence(id, t("2025-04-07T12:10:00Z")).unwrap());
        assert!(!f.store.expire_silence(id, t("2025-04-07T12:20:00Z")).unwrap(), "already over");
        assert!(f.store.silences(t("2025-04-07T12:10:00Z")).unwrap().is_empty());
        f.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T12:15:00Z")], t("2025-04-07T12:15:00Z")).unwrap();
        assert_eq!(queued(&f.outbox).len(), 1, "emailed once the silence is expired");
    }

    #[test]
    fn severity_escalates_and_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        let now = t("2025-04-07T12:00:00Z");
        let mut low = detection(1, "203.0.113.9", "2025-04-07T12:00:00Z");
        low.severity = Severity::Warning;
        low.source_ip = None;
        {
            let mut store = AlertStore::open(&path, policy()).unwrap();
            store.ingest(&[low, detection(2, "203.0.113.9", "2025-04-07T12:01:00Z")], now).unwrap();
        }
        let store = AlertStore::open(&path, policy()).unwrap();
        let alerts = store.alerts(AlertFilter::default()).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, Severity::Critical);
        assert_eq!(alerts[0].source_ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(alerts[0].mitre.as_deref(), Some("T1110"));
    }

    #[test]
    fn invalid_policy_reports_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = policy();
        p.on_call = vec!["astreinte@ville.test".into(), "pas une adresse".into()];
        p.from = "vigie".into();
        p.resolve_after = Duration::ZERO;
        let err = AlertStore::open(&dir.path().join("a.sqlite"), p).unwrap_err().to_string();
        for part in ["resolve_after", "\"pas une adresse\"", "from \"vigie\""] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    }

    fn server_errors(n: u32, at: &str) -> Detection {
        let mut d = detection(n, "192.0.2.10", at);
        d.id = format!("ent.server-errors:web:{n}");
        d.rule = "ent.server-errors".into();
        d.title = "Erreurs internes répétées de l'ENT".into();
        d.key = "service=ent".into();
        d.source_ip = None;
        d
    }

    fn ent_down(n: u32, at: &str) -> Detection {
        let mut d = server_errors(n, at);
        d.id = format!("ent.unavailable:web:{n}");
        d.rule = "ent.unavailable".into();
        d.title = "ENT indisponible".into();
        d
    }

    #[test]
    fn ent_down_inhibits_the_per_service_alert_until_it_resolves() {
        let mut f = fixture();
        let at = t("2025-04-07T12:00:00Z");
        f.store.ingest(&[ent_down(1, "2025-04-07T12:00:00Z")], at).unwrap();
        f.store.ingest(&[server_errors(1, "2025-04-07T12:00:10Z")], t("2025-04-07T12:00:10Z")).unwrap();
        let subjects: Vec<String> = queued(&f.outbox).into_iter().map(|e| e.email.subject).collect();
        assert_eq!(subjects.len(), 1, "only 'ENT down' is emailed: {subjects:?}");
        assert!(subjects[0].contains("ENT indisponible"));
        assert_eq!(firing(&f.store).len(), 2, "both recorded");
        // ENT down goes quiet and resolves; the server errors go on: now they are told.
        for minute in 1..=20 {
            let at = format!("2025-04-07T12:{minute:02}:10Z");
            f.store.ingest(&[server_errors(1 + minute, &at)], t(&at)).unwrap();
            f.store.tick(t(&at)).unwrap();
        }
        let subjects: Vec<String> = queued(&f.outbox).into_iter().map(|e| e.email.subject).collect();
        assert_eq!(subjects.len(), 3, "{subjects:?}");
        assert!(subjects[1].starts_with("[Vigie] RÉSOLU — ENT indisponible"), "{subjects:?}");
        assert!(subjects[2].starts_with("[Vigie] CRITIQUE — Erreurs internes"), "{subjects:?}");
    }

    #[test]
    fn the_acknowledgement_link_stops_reminders_and_records_who() {
        let mut f = fixture();
        let start = t("2025-04-07T08:00:00Z");
        f.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T08:00:00Z")], start).unwrap();
        let firing_email = queued(&f.outbox).remove(0).email;
        let line = firing_email.body.lines().find(|l| l.contains("/alerts/ack?token=")).expect("an ack link");
        assert!(line.starts_with("https://vigie.ent.ville.test/alerts/ack?token="), "{line}");
        // The HTML part says the same, with the link as a button.
        let html = firing_email.html.as_deref().expect("an HTML part");
        // minijinja escapes '/' in attributes (&#x2f;), which browsers decode.
        assert!(html.replace("&#x2f;", "/").contains(&format!("href=\"{line}\"")), "{html}");
        assert!(html.contains("Nouvelle alerte CRITIQUE n°") && html.contains("<code>203.0.113.9</code>"), "{html}");
        assert!(html.contains("41 échecs de connexion en 5 min") && html.contains("T1110"), "{html}");
        let token = line.split("token=").nth(1).unwrap();
        // A forged token does nothing.
        assert!(f.store.acknowledge_with_token("00.00", None, start).is_err());
        let (id, done) = f.store.acknowledge_with_token(token, Some("j.durand"), t("2025-04-07T08:10:00Z")).unwrap();
        assert!(done);
        assert_eq!(f.store.acknowledgement(id).unwrap(), Some(("j.durand".to_owned(), t("2025-04-07T08:10:00Z"))));
        assert!(!f.store.acknowledge(id, "x", t("2025-04-07T08:11:00Z")).unwrap(), "once");
        // Still firing for 9 hours: no reminder after the acknowledgement.
        for step in 1..=54u32 {
            let now = start.checked_add(SignedDuration::from_mins(i64::from(step) * 10)).unwrap();
            f.store.ingest(&[detection(1 + step, "203.0.113.9", &now.to_string())], now).unwrap();
            assert_eq!(f.store.tick(now).unwrap().reminders_queued, 0);
        }
        // The history says who was told what and who acknowledged.
        let history = f.store.history(Some(id), 50).unwrap();
        assert_eq!(history.len(), 2, "{history:#?}");
        assert_eq!(history[0].who, "astreinte@ent.ville.test");
        assert!(history[0].what.starts_with("[Vigie] CRITIQUE"));
        assert_eq!(history[0].outcome, "queued");
        assert_eq!((history[1].who.as_str(), history[1].what.as_str()), ("j.durand", "alert.ack"));
        // The link expires after 7 days.
        let mut g = fixture();
        g.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T08:00:00Z")], start).unwrap();
        let body = queued(&g.outbox).remove(0).email.body;
        let token = body.split("token=").nth(1).unwrap().lines().next().unwrap().to_owned();
        let err = g.store.acknowledge_with_token(&token, None, t("2025-04-14T08:00:00Z")).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
    }

    #[test]
    fn a_scheduled_silence_mutes_only_inside_its_window() {
        let mut f = fixture();
        let now = t("2025-04-07T08:00:00Z");
        // A maintenance silence from 10:00 to 11:00 (written directly as Notices does).
        f.store
            .conn
            .execute(
                "INSERT INTO silence (rule, key, created_at, until, created_by, reason, starts_at)
                 VALUES ('brute_force', NULL, ?1, ?2, 'm.martin', 'maintenance', ?3)",
                params![to_ms(now), to_ms(t("2025-04-07T11:00:00Z")), to_ms(t("2025-04-07T10:00:00Z"))],
            )
            .unwrap();
        f.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T09:00:00Z")], t("2025-04-07T09:00:00Z")).unwrap();
        assert_eq!(queued(&f.outbox).len(), 1, "before the window: emailed");
        f.store.ingest(&[detection(2, "198.51.100.7", "2025-04-07T10:30:00Z")], t("2025-04-07T10:30:00Z")).unwrap();
        assert_eq!(queued(&f.outbox).len(), 1, "inside the window: muted");
        let listed = f.store.silences(now).unwrap();
        assert_eq!(listed[0].starts_at, t("2025-04-07T10:00:00Z"), "listed before it starts");
    }

    #[test]
    fn old_detection_ids_are_forgotten_after_a_month() {
        let mut f = fixture();
        let now = t("2025-04-07T12:00:00Z");
        f.store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T12:00:00Z")], now).unwrap();
        f.store.tick(t("2025-05-08T12:00:00Z")).unwrap();
        let n: i64 = f.store.conn.query_row("SELECT COUNT(*) FROM seen_detection", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }
}
