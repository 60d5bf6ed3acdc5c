//! Incidents (CCTP 4.3.1): an alert group, or an operator, opens one with its CCTP class; its
//! resolution deadline is counted in French working days ([`crate::calendar`]), or in clock
//! hours for a server disaster ("sinistre", 6 h, CCTP 4.2.6). Missed deadlines are escalated
//! by email once.

use std::path::Path;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use analyzer::{CctpClass, format_date_fr};

use crate::AlertError;
use crate::calendar::add_working_days;
use crate::french::duration_fr;
use crate::outbox::{Email, enqueue_on};
use crate::schema::{self, enum_from_sql, enum_to_sql, from_ms, journal, to_ms};

/// The class of an incident: the six CCTP classes, and the server disaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentClass {
    /// Bloquante: 1 working day.
    Bloquant,
    /// Non bloquante majeure: 5 working days.
    MajeurNonBloquant,
    /// Non bloquante mineure: 30 working days.
    Mineur,
    /// Sécurité majeure, code propre: 5 working days.
    SecuriteMajeureCodePropre,
    /// Sécurité majeure, code externe: 20 working days after the vendor's fix.
    SecuriteMajeureCodeExterne,
    /// Sécurité mineure: 15 working days.
    SecuriteMineure,
    /// Server disaster: service restored within 6 clock hours (CCTP 4.2.6).
    Sinistre,
}

/// How an incident's deadline is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineRule {
    /// N working days from the opening.
    WorkingDays(u32),
    /// N working days from the vendor's fix.
    WorkingDaysAfterVendorFix(u32),
    /// N clock hours from the opening, nights and holidays included.
    ClockHours(u32),
}

impl IncidentClass {
    /// Every class, in the CCTP's order.
    pub const ALL: [IncidentClass; 7] = [
        IncidentClass::Bloquant,
        IncidentClass::MajeurNonBloquant,
        IncidentClass::Mineur,
        IncidentClass::SecuriteMajeureCodePropre,
        IncidentClass::SecuriteMajeureCodeExterne,
        IncidentClass::SecuriteMineure,
        IncidentClass::Sinistre,
    ];

    /// The French label of reports and emails.
    pub fn label(self) -> &'static str {
        match self {
            IncidentClass::Sinistre => "sinistre serveur",
            other => other.cctp().map_or("", CctpClass::label),
        }
    }

    /// The analyzer's class for the six CCTP classes.
    pub fn cctp(self) -> Option<CctpClass> {
        Some(match self {
            IncidentClass::Bloquant => CctpClass::Bloquant,
            IncidentClass::MajeurNonBloquant => CctpClass::MajeurNonBloquant,
            IncidentClass::Mineur => CctpClass::Mineur,
            IncidentClass::SecuriteMajeureCodePropre => CctpClass::SecuriteMajeureCodePropre,
            IncidentClass::SecuriteMajeureCodeExterne => CctpClass::SecuriteMajeureCodeExterne,
            IncidentClass::SecuriteMineure => CctpClass::SecuriteMineure,
            IncidentClass::Sinistre => return None,
        })
    }

    /// The deadline rule (DESIGN.md, "incident classes"; CCTP 4.2.6 for the disaster).
    pub fn deadline_rule(self) -> DeadlineRule {
        match self {
            IncidentClass::Bloquant => DeadlineRule::WorkingDays(1),
            IncidentClass::MajeurNonBloquant | IncidentClass::SecuriteMajeureCodePropre => DeadlineRule::WorkingDays(5),
            IncidentClass::Mineur => DeadlineRule::WorkingDays(30),
            IncidentClass::SecuriteMajeureCodeExterne => DeadlineRule::WorkingDaysAfterVendorFix(20),
            IncidentClass::SecuriteMineure => DeadlineRule::WorkingDays(15),
            IncidentClass::Sinistre => DeadlineRule::ClockHours(6),
        }
    }

    /// The deadline of an incident of this class opened at `opened` (and whose vendor fix,
    /// for external code, came out at `vendor_fix`); `None` while the vendor fix is awaited.
    pub fn deadline(self, opened: Timestamp, vendor_fix: Option<Timestamp>, tz: &TimeZone) -> Option<Timestamp> {
        match self.deadline_rule() {
            DeadlineRule::WorkingDays(n) => Some(add_working_days(opened, n, tz)),
            DeadlineRule::WorkingDaysAfterVendorFix(n) => vendor_fix.map(|fix| add_working_days(fix, n, tz)),
            DeadlineRule::ClockHours(h) => {
                opened.checked_add(SignedDuration::from_hours(i64::from(h))).ok().or(Some(Timestamp::MAX))
            }
        }
    }

    /// Parses the snake_case name used on the command line and in the database.
    pub fn parse(s: &str) -> Result<IncidentClass, AlertError> {
        enum_from_sql(s).map_err(|_| {
            AlertError::InvalidPolicy(format!(
                "unknown incident class {s:?}; use one of: {}",
                IncidentClass::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The snake_case name.
    pub fn name(self) -> String {
        enum_to_sql(&self).unwrap_or_default()
    }
}

impl From<CctpClass> for IncidentClass {
    fn from(c: CctpClass) -> Self {
        match c {
            CctpClass::Bloquant => IncidentClass::Bloquant,
            CctpClass::MajeurNonBloquant => IncidentClass::MajeurNonBloquant,
            CctpClass::Mineur => IncidentClass::Mineur,
            CctpClass::SecuriteMajeureCodePropre => IncidentClass::SecuriteMajeureCodePropre,
            CctpClass::SecuriteMajeureCodeExterne => IncidentClass::SecuriteMajeureCodeExterne,
            CctpClass::SecuriteMineure => IncidentClass::SecuriteMineure,
        }
    }
}

/// One incident as the dashboard and the CLI show it, judged at `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub alert_id: Option<i64>,
    pub class: IncidentClass,
    pub title: String,
    pub opened_at: Timestamp,
    pub opened_by: String,
    pub vendor_fix_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub closed_by: Option<String>,
    pub resolution: Option<String>,
    /// When the missed deadline was escalated.
    pub escalated_at: Option<Timestamp>,
    /// `None` for an external-code flaw whose vendor fix is not out yet.
    pub deadline: Option<Timestamp>,
    /// Deadline minus `now` (or minus the closing time once closed); negative when overdue.
    pub time_left: Option<SignedDuration>,
    /// Closed within the deadline (`None` while open, or without a deadline).
    pub met: Option<bool>,
}

impl Incident {
    /// `reste 2 j 3 h`, `dépassé de 4 h 10 min`, `respecté`, `en attente du correctif de l'éditeur`.
    pub fn time_left_fr(&self) -> String {
        match (self.closed_at, self.met, self.time_left) {
            (Some(_), Some(true), _) => "délai respecté".to_owned(),
            (Some(_), Some(false), Some(left)) => format!("délai dépassé de {}", duration_fr(left.abs())),
            (_, _, None) => "en attente du correctif de l'éditeur".to_owned(),
            (_, _, Some(left)) if left.is_negative() => format!("délai dépassé de {}", duration_fr(left.abs())),
            (_, _, Some(left)) => format!("reste {}", duration_fr(left)),
        }
    }
}

/// Who is told when a deadline is missed.
#[derive(Debug, Clone)]
pub struct IncidentPolicy {
    pub time_zone: TimeZone,
    pub from: String,
    /// Escalation addresses (on-call lead, the city's IT service).
    pub escalate_to: Vec<String>,
}

/// The incident register, in the alerting database.
#[derive(Debug)]
pub struct Incidents {
    conn: Connection,
    policy: IncidentPolicy,
}

const COLUMNS: &str = "id, alert_id, class, title, opened_at, opened_by, vendor_fix_at, closed_at, closed_by, \
                       resolution, escalated_at";

impl Incidents {
    /// Opens the register in the alerting database at `path`.
    pub fn open(path: &Path, policy: IncidentPolicy) -> Result<Incidents, AlertError> {
        Ok(Incidents { conn: schema::open(path)?, policy })
    }

    /// Opens an incident; `alert_id` links it to the alert group it comes from.
    pub fn open_incident(
        &mut self,
        class: IncidentClass,
        title: &str,
        alert_id: Option<i64>,
        by: &str,
        now: Timestamp,
    ) -> Result<i64, AlertError> {
        let tx = self.conn.transaction()?;
        if let Some(alert) = alert_id {
            let exists: Option<i64> =
                tx.query_row("SELECT id FROM alert WHERE id = ?1", [alert], |r| r.get(0)).optional()?;
            if exists.is_none() {
                return Err(AlertError::NotFound(format!("alert {alert}")));
            }
        }
        tx.execute(
            "INSERT INTO incident (alert_id, class, title, opened_at, opened_by) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![alert_id, enum_to_sql(&class)?, title, to_ms(now), by],
        )?;
        let id = tx.last_insert_rowid();
        journal(&tx, now, by, "incident.open", &format!("incident:{id}"), &format!("{} — {title}", class.label()))?;
        tx.commit()?;
        Ok(id)
    }

    /// Records the vendor's fix of an external-code flaw: its deadline starts then.
    pub fn set_vendor_fix(&mut self, id: i64, at: Timestamp, by: &str, now: Timestamp) -> Result<(), AlertError> {
        let n = self.conn.execute(
            "UPDATE incident SET vendor_fix_at = ?2 WHERE id = ?1 AND closed_at IS NULL",
            params![id, to_ms(at)],
        )?;
        if n == 0 {
            return Err(AlertError::NotFound(format!("open incident {id}")));
        }
        journal(&self.conn, now, by, "incident.vendor_fix", &format!("incident:{id}"), &at.to_string())
    }

    /// Closes an incident. Returns whether it was open.
    pub fn close(&mut self, id: i64, resolution: &str, by: &str, now: Timestamp) -> Result<bool, AlertError> {
        let n = self.conn.execute(
            "UPDATE incident SET closed_at = ?2, closed_by = ?3, resolution = ?4 WHERE id = ?1 AND closed_at IS NULL",
            params![id, to_ms(now), by, resolution],
        )?;
        if n == 1 {
            journal(&self.conn, now, by, "incident.close", &format!("incident:{id}"), resolution)?;
        }
        Ok(n == 1)
    }

    /// Incidents (open ones first, then the most recent), judged at `now`.
    pub fn list(&self, open_only: bool, now: Timestamp) -> Result<Vec<Incident>, AlertError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM incident WHERE (?1 = 0 OR closed_at IS NULL)
             ORDER BY closed_at IS NOT NULL, opened_at DESC, id DESC"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query([i64::from(open_only)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(self.typed(r, now)?);
        }
        Ok(out)
    }

    /// Incidents opened within `[from, to)`, oldest first (for the monthly report).
    pub fn opened_between(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Result<Vec<Incident>, AlertError> {
        let sql = format!("SELECT {COLUMNS} FROM incident WHERE opened_at >= ?1 AND opened_at < ?2 ORDER BY opened_at");
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params![to_ms(from), to_ms(to)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(self.typed(r, now)?);
        }
        Ok(out)
    }

    /// One incident.
    pub fn get(&self, id: i64, now: Timestamp) -> Result<Incident, AlertError> {
        let sql = format!("SELECT {COLUMNS} FROM incident WHERE id = ?1");
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query([id])?;
        match rows.next()? {
            Some(r) => self.typed(r, now),
            None => Err(AlertError::NotFound(format!("incident {id}"))),
        }
    }

    /// Escalates, once each, the open incidents whose deadline passed: an email to the
    /// escalation addresses. Returns their ids.
    pub fn escalate_overdue(&mut self, now: Timestamp) -> Result<Vec<i64>, AlertError> {
        let overdue: Vec<Incident> = self
            .list(true, now)?
            .into_iter()
            .filter(|i| i.escalated_at.is_none() && i.deadline.is_some_and(|d| d <= now))
            .collect();
        if overdue.is_empty() || self.policy.escalate_to.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.conn.transaction()?;
        let tz = &self.policy.time_zone;
        let mut ids = Vec::new();
        for i in overdue {
            let deadline = i.deadline.unwrap_or(now);
            let body = format!(
                "Le délai de résolution de l'incident n° {id} est dépassé.\n\n\
                 Incident : {title}\n\
                 Classe (CCTP) : {class}\n\
                 Ouvert : {opened} par {by}\n\
                 Échéance : {deadline}\n\
                 État : {left}\n\n\
                 Merci de traiter cet incident en priorité et d'informer le service informatique de la ville.\n\n\
                 -- \nVigie, supervision de l'ENT\n",
                id = i.id,
                title = i.title,
                class = i.class.label(),
                opened = format_date_fr(i.opened_at, tz),
                by = i.opened_by,
                deadline = format_date_fr(deadline, tz),
                left = i.time_left_fr(),
            );
            let email = Email {
                message_id: format!(
                    "<vigie.incident-{}.{}.escalation@{}>",
                    i.id,
                    i.opened_at.as_millisecond(),
                    crate::compose::sender_domain(&self.policy.from)
                ),
                in_reply_to: None,
                alert_id: i.alert_id,
                from: self.policy.from.clone(),
                to: self.policy.escalate_to.clone(),
                subject: format!("[Vigie] DÉLAI DÉPASSÉ — incident n° {} ({})", i.id, i.class.label()),
                body,
                html: None,
                notice_id: None,
                school: None,
                attachments: Vec::new(),
            };
            enqueue_on(&tx, &email, now)?;
            tx.execute("UPDATE incident SET escalated_at = ?2 WHERE id = ?1", params![i.id, to_ms(now)])?;
            journal(
                &tx,
                now,
                "vigie",
                "incident.escalate",
                &format!("incident:{}", i.id),
                &self.policy.escalate_to.join(", "),
            )?;
            ids.push(i.id);
        }
        tx.commit()?;
        Ok(ids)
    }

    fn typed(&self, r: &rusqlite::Row<'_>, now: Timestamp) -> Result<Incident, AlertError> {
        let class: IncidentClass = enum_from_sql(&r.get::<_, String>(2)?)?;
        let opened_at = from_ms(r.get(4)?)?;
        let vendor_fix_at = r.get::<_, Option<i64>>(6)?.map(from_ms).transpose()?;
        let closed_at = r.get::<_, Option<i64>>(7)?.map(from_ms).transpose()?;
        let deadline = class.deadline(opened_at, vendor_fix_at, &self.policy.time_zone);
        let reference = closed_at.unwrap_or(now);
        let time_left = deadline.map(|d| d.duration_since(reference));
        let met = closed_at.and_then(|c| deadline.map(|d| c <= d));
        Ok(Incident {
            id: r.get(0)?,
            alert_id: r.get(1)?,
            class,
            title: r.get(3)?,
            opened_at,
            opened_by: r.get(5)?,
            vendor_fix_at,
            closed_at,
            closed_by: r.get(8)?,
            resolution: r.get(9)?,
            escalated_at: r.get::<_, Option<i64>>(10)?.map(from_ms).transpose()?,
            deadline,
            time_left,
            met,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Outbox, OutboxState};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").unwrap()
    }

    fn policy() -> IncidentPolicy {
        IncidentPolicy {
            time_zone: paris(),
            from: "vigie@ent.ville.test".into(),
            escalate_to: vec!["chef-projet@ent.ville.test".into(), "sctn@ville.test".into()],
        }
    }

    fn deadline(class: IncidentClass, opened: &str) -> Timestamp {
        class.deadline(t(opened), None, &paris()).unwrap()
    }

    #[test]
    fn every_class_has_its_deadline_across_holidays() {
        use IncidentClass::*;
        // Opened Thursday 17 April 2025 (before Easter) at 10:00.
        let opened = "2025-04-17T10:00:00+02:00";
        assert_eq!(deadline(Bloquant, opened), t("2025-04-18T10:00:00+02:00"));
        // 5 working days: 18, 22, 23, 24, 25 (Easter Monday 21 skipped).
        assert_eq!(deadline(MajeurNonBloquant, opened), t("2025-04-25T10:00:00+02:00"));
        assert_eq!(deadline(SecuriteMajeureCodePropre, opened), t("2025-04-25T10:00:00+02:00"));
        // 15 working days: April 18, 22-25 (5), 28-30 (8), May 2 (9, 1 May off), 5-7 (12), 9 (13,
        // 8 May off), 12, 13 (15).
        assert_eq!(deadline(SecuriteMineure, opened), t("2025-05-13T10:00:00+02:00"));
        // 30 working days: continuing from 13 May (15): 14-16 (18), 19-23 (23), 26-28 (26),
        // 30 (27, Ascension 29 off), 2-4 June (30).
        assert_eq!(deadline(Mineur, opened), t("2025-06-04T10:00:00+02:00"));
        // External code: no deadline until the vendor's fix; then 20 working days from it.
        assert_eq!(SecuriteMajeureCodeExterne.deadline(t(opened), None, &paris()), None);
        // Fix on Monday 7 July 2025: 20 working days = 8-11 (4), 15-18 (8, 14 July off),
        // 21-25 (13), 28-31 (17), 1 Aug (18), 4, 5 (20).
        assert_eq!(
            SecuriteMajeureCodeExterne.deadline(t(opened), Some(t("2025-07-07T09:00:00+02:00")), &paris()),
            Some(t("2025-08-05T09:00:00+02:00"))
        );
        // Sinistre: 6 clock hours, even on Christmas night.
        assert_eq!(deadline(Sinistre, "2025-12-24T22:30:00+01:00"), t("2025-12-25T04:30:00+01:00"));
    }

    #[test]
    fn deadlines_around_the_autumn_and_winter_holidays() {
        use IncidentClass::*;
        // Thursday 30 Oct 2025 + 5: 31 Oct, 3, 4, 5, 6 Nov (1 Nov is a Saturday).
        assert_eq!(deadline(MajeurNonBloquant, "2025-10-30T15:00:00+01:00"), t("2025-11-06T15:00:00+01:00"));
        // Friday 7 Nov + 5: 10, 12, 13, 14, 17 (11 Nov off).
        assert_eq!(deadline(MajeurNonBloquant, "2025-11-07T15:00:00+01:00"), t("2025-11-17T15:00:00+01:00"));
        // Tuesday 23 Dec + 5: 24, 26, 29, 30, 31 (25 off); + 1 on 31 Dec → 2 Jan (1 Jan off).
        assert_eq!(deadline(SecuriteMajeureCodePropre, "2025-12-23T09:00:00+01:00"), t("2025-12-31T09:00:00+01:00"));
        assert_eq!(deadline(Bloquant, "2025-12-31T09:00:00+01:00"), t("2026-01-02T09:00:00+01:00"));
        // 14 July and 15 August: Friday 11 July + 1 → Tuesday 15; Thursday 14 Aug + 1 → Monday 18.
        assert_eq!(deadline(Bloquant, "2025-07-11T12:00:00+02:00"), t("2025-07-15T12:00:00+02:00"));
        assert_eq!(deadline(Bloquant, "2025-08-14T12:00:00+02:00"), t("2025-08-18T12:00:00+02:00"));
        // Opened on a Sunday: counting starts Monday 00:00, so 1 day ends Tuesday 00:00.
        assert_eq!(deadline(Bloquant, "2025-09-14T20:00:00+02:00"), t("2025-09-16T00:00:00+02:00"));
    }

    #[test]
    fn register_shows_time_left_met_and_escalates_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("alerting.sqlite");
        let mut reg = Incidents::open(&db, policy()).unwrap();
        let opened = t("2025-05-07T11:00:00+02:00");
        let a = reg.open_incident(IncidentClass::Bloquant, "ENT indisponible", None, "m.martin", opened).unwrap();
        let b = reg.open_incident(IncidentClass::Sinistre, "Serveur web détruit", None, "m.martin", opened).unwrap();
        assert!(matches!(
            reg.open_incident(IncidentClass::Mineur, "x", Some(999), "m.martin", opened),
            Err(AlertError::NotFound(_))
        ));

        // Thursday 8 May is a holiday: "bloquant" is due Friday 9 May 11:00.
        let now = t("2025-05-08T11:00:00+02:00");
        let list = reg.list(true, now).unwrap();
        let ia = list.iter().find(|i| i.id == a).unwrap();
        assert_eq!(ia.deadline, Some(t("2025-05-09T11:00:00+02:00")));
        assert_eq!(ia.time_left, Some(SignedDuration::from_hours(24)));
        assert_eq!(ia.time_left_fr(), "reste 1 j 0 h");
        let ib = list.iter().find(|i| i.id == b).unwrap();
        assert_eq!(ib.time_left_fr(), "délai dépassé de 18 h 00 min");

        // The disaster is overdue: escalated once, by email.
        assert_eq!(reg.escalate_overdue(now).unwrap(), vec![b]);
        assert!(reg.escalate_overdue(now).unwrap().is_empty(), "only once");
        let outbox = Outbox::open(&db).unwrap();
        let queued = outbox.entries(OutboxState::Queued, 10).unwrap();
        assert_eq!(queued.len(), 1);
        let email = &queued[0].email;
        assert_eq!(email.subject, "[Vigie] DÉLAI DÉPASSÉ — incident n° 2 (sinistre serveur)");
        assert!(email.body.contains("Échéance : mercredi 7 mai 2025, 17 h 00"), "{}", email.body);
        assert_eq!(email.to.len(), 2);

        // Closed in time: met.
        assert!(reg.close(a, "Redémarrage du service PHP", "m.martin", t("2025-05-09T10:00:00+02:00")).unwrap());
        assert!(!reg.close(a, "again", "m.martin", t("2025-05-09T10:00:00+02:00")).unwrap());
        let ia = reg.get(a, t("2025-06-01T00:00:00Z")).unwrap();
        assert_eq!(ia.met, Some(true));
        assert_eq!(ia.time_left_fr(), "délai respecté");
        assert_eq!(ia.closed_by.as_deref(), Some("m.martin"));
        assert_eq!(reg.list(true, now).unwrap().len(), 1, "only the disaster is open");
    }

    #[test]
    fn class_names_parse() {
        for c in IncidentClass::ALL {
            assert_eq!(IncidentClass::parse(&c.name()).unwrap(), c);
        }
        let err = IncidentClass::parse("grave").unwrap_err().to_string();
        assert!(err.contains("sinistre") && err.contains("bloquant"), "{err}");
        assert_eq!(IncidentClass::from(CctpClass::SecuriteMineure), IncidentClass::SecuriteMineure);
        assert_eq!(IncidentClass::SecuriteMineure.label(), "faille de sécurité mineure");
    }
}
