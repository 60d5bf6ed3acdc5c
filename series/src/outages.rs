//! Outages persisted in SQLite, and the month's availability computed from them for the API
//! (`GET /api/v1/availability?month=YYYY-MM`), the pages and the monthly report.
//!
//! The probes' [`analyzer::OutageTracker`] decides when an outage opens and closes; this store
//! only keeps what it decided, so that a restart, a report or the dashboards all see the same
//! outages. An outage still open when Vigie stopped stays open in the file: it is closed by the
//! first successful probe after the restart (see [`OutageStore::close_dangling`]), because
//! nobody can tell when, during the stop, the service came back — the city's side of the doubt.

use std::path::Path;
use std::sync::{Arc, Mutex};

use analyzer::{MonthReport, Outage, OutageChange, ServiceWindow};
use jiff::Timestamp;
use rusqlite::params;
use serde::Serialize;

use crate::store::SeriesError;

const MIGRATIONS: &[&str] = &["
    CREATE TABLE outages (
        probe TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER,
        PRIMARY KEY (probe, start_ms)
    ) WITHOUT ROWID;
    CREATE INDEX outages_end ON outages (end_ms);
"];

/// An outage of one probe, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeOutage {
    pub probe: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// An [`OutageChange`] of one probe, as the metrics stage publishes it (for alerting's
/// `on_outage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutageChange {
    pub probe: String,
    pub change: OutageChange,
}

/// The outages table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OutageStore {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl OutageStore {
    /// Opens (or creates) the outages database at `path`.
    pub fn open(path: &Path) -> Result<OutageStore, SeriesError> {
        let conn = collector::open_sqlite(path, MIGRATIONS)?;
        Ok(OutageStore { conn: Arc::new(Mutex::new(conn)) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what a tracker decided. Idempotent: the same change twice changes nothing.
    pub fn record(&self, probe: &str, change: &OutageChange) -> Result<(), SeriesError> {
        let conn = self.lock();
        match *change {
            OutageChange::Opened { start } => {
                conn.execute(
                    "INSERT OR IGNORE INTO outages (probe, start_ms, end_ms) VALUES (?1, ?2, NULL)",
                    params![probe, start.as_millisecond()],
                )?;
            }
            OutageChange::Closed { start, end } => {
                conn.execute(
                    "INSERT OR REPLACE INTO outages (probe, start_ms, end_ms) VALUES (?1, ?2, ?3)",
                    params![probe, start.as_millisecond(), end.as_millisecond()],
                )?;
            }
        }
        Ok(())
    }

    /// Closes at `end` every outage of `probe` still open (left open by a stop during an
    /// outage); returns the changes made, to be published like the tracker's own.
    pub fn close_dangling(&self, probe: &str, end: Timestamp) -> Result<Vec<OutageChange>, SeriesError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT start_ms FROM outages WHERE probe = ?1 AND end_ms IS NULL AND start_ms <= ?2")?;
        let starts: Vec<i64> =
            stmt.query_map(params![probe, end.as_millisecond()], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let mut changes = Vec::new();
        for start in starts {
            conn.execute(
                "UPDATE outages SET end_ms = ?3 WHERE probe = ?1 AND start_ms = ?2",
                params![probe, start, end.as_millisecond()],
            )?;
            changes.push(OutageChange::Closed { start: ts(start), end });
        }
        Ok(changes)
    }

    /// Every outage overlapping `[from, to)`, in start order.
    pub fn between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<ProbeOutage>, SeriesError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT probe, start_ms, end_ms FROM outages WHERE start_ms < ?2 AND (end_ms IS NULL OR end_ms > ?1) ORDER BY start_ms, probe",
        )?;
        let rows = stmt.query_map(params![from.as_millisecond(), to.as_millisecond()], |r| {
            Ok(ProbeOutage { probe: r.get(0)?, start: ts(r.get(1)?), end: r.get::<_, Option<i64>>(2)?.map(ts) })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX)
}

/// A month's availability, ready to serialise for `GET /api/v1/availability?month=YYYY-MM` and
/// to render on the pages (French strings included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailabilityMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// "avril 2025".
    pub month_fr: String,
    pub required_ratio: f64,
    pub window_minutes: i64,
    pub downtime_minutes: f64,
    /// `1 - downtime / window` over the month's windows.
    pub availability: f64,
    /// The same, in percent, rounded to 3 decimals (99.876).
    pub availability_percent: f64,
    pub breached_days: usize,
    pub days: Vec<AvailabilityDay>,
    /// The outages overlapping the month's windows, with the probe that saw them.
    pub outages: Vec<AvailabilityOutage>,
    /// When this was computed (days not `complete` may still change).
    pub computed_at: Timestamp,
}

/// One service day (06:00 → 03:00 the next day, Europe/Paris).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailabilityDay {
    /// `YYYY-MM-DD`.
    pub date: jiff::civil::Date,
    /// "lundi 7 avril 2025".
    pub date_fr: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub window_minutes: i64,
    pub downtime_minutes: f64,
    pub availability: f64,
    /// `met` or `breached` (the CCTP verdict at the required ratio).
    pub verdict: &'static str,
    pub downtime_free: bool,
    pub complete: bool,
}

/// One outage in the month's list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailabilityOutage {
    pub probe: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    /// "lundi 7 avril 2025, 14 h 30".
    pub start_fr: String,
    pub end_fr: Option<String>,
    /// Up to `end`, or up to the computation time for an outage still open.
    pub duration_minutes: f64,
}

/// Parses `YYYY-MM` (the API's `month` parameter) with a message saying what is expected.
pub fn parse_month(s: &str) -> Result<(i16, i8), String> {
    let bad = || format!("`{s}` is not a month; write it as YYYY-MM, e.g. 2025-04");
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let year: i16 = y.parse().map_err(|_| bad())?;
    let month: i8 = m.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) {
        return Err(bad());
    }
    Ok((year, month))
}

/// The availability of `year`-`month` from the persisted outages, as known at `now`.
///
/// Every stored outage counts (the metrics stage stores only those of probes that measure
/// availability); overlapping outages of several probes count once.
pub fn availability_month(
    store: &OutageStore,
    window: &ServiceWindow,
    year: i16,
    month: i8,
    now: Timestamp,
    required_ratio: f64,
) -> Result<AvailabilityMonth, AvailabilityError> {
    let first =
        jiff::civil::Date::new(year, month, 1).map_err(|_| AvailabilityError::Month(format!("{year}-{month:02}")))?;
    let last = first.last_of_month();
    let (from, _) = window.window_of(first);
    let (_, to) = window.window_of(last);
    let stored = store.between(from, to)?;
    let outages: Vec<Outage> = stored.iter().map(|o| Outage { start: o.start, end: o.end }).collect();
    let report: MonthReport = analyzer::monthly(window, &outages, year, month, now, required_ratio)
        .map_err(|_| AvailabilityError::Month(format!("{year}-{month:02}")))?;
    let tz = window.time_zone().clone();
    let days = report
        .days
        .iter()
        .map(|d| AvailabilityDay {
            date: d.day,
            date_fr: format!(
                "{} {} {} {}",
                analyzer::weekday_fr(d.day.weekday()),
                if d.day.day() == 1 { "1er".to_owned() } else { d.day.day().to_string() },
                analyzer::month_fr(d.day.month()),
                d.day.year()
            ),
            window_start: d.window_start,
            window_end: d.window_end,
            window_minutes: d.window_minutes,
            downtime_minutes: d.downtime_minutes,
            availability: d.availability,
            verdict: if d.met { "met" } else { "breached" },
            downtime_free: d.downtime_free,
            complete: d.complete,
        })
        .collect();
    let outages = stored
        .into_iter()
        .map(|o| {
            let until = o.end.unwrap_or(now).max(o.start);
            AvailabilityOutage {
                start_fr: analyzer::format_date_fr(o.start, &tz),
                end_fr: o.end.map(|e| analyzer::format_date_fr(e, &tz)),
                duration_minutes: until.duration_since(o.start).as_secs_f64() / 60.0,
                probe: o.probe,
                start: o.start,
                end: o.end,
            }
        })
        .collect();
    Ok(AvailabilityMonth {
        month: format!("{year:04}-{month:02}"),
        month_fr: format!("{} {year}", analyzer::month_fr(month)),
        required_ratio,
        window_minutes: report.window_minutes,
        downtime_minutes: report.downtime_minutes,
        availability: report.availability,
        availability_percent: (report.availability * 100_000.0).round() / 1000.0,
        breached_days: report.breached_days,
        days,
        outages,
        computed_at: now,
    })
}

/// Why a month's availability could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    #[error("no such month {0}; write it as YYYY-MM with a month from 01 to 12")]
    Month(String),
    #[error(transparent)]
    Store(#[from] SeriesError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window() -> ServiceWindow {
        ServiceWindow::cctp(TimeZone::get("Europe/Paris").unwrap())
    }

    #[test]
    fn opened_then_closed_outages_are_persisted_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outages.sqlite");
        let store = OutageStore::open(&path).unwrap();
        let start = at("2025-04-07T12:00:00Z");
        store.record("ent", &OutageChange::Opened { start }).unwrap();
        store.record("ent", &OutageChange::Opened { start }).unwrap();
        assert_eq!(
            store.between(at("2025-04-07T00:00:00Z"), at("2025-04-08T00:00:00Z")).unwrap(),
            [ProbeOutage { probe: "ent".into(), start, end: None }]
        );
        let end = at("2025-04-07T12:30:00Z");
        store.record("ent", &OutageChange::Closed { start, end }).unwrap();
        drop(store);
        let store = OutageStore::open(&path).unwrap();
        let all = store.between(at("2025-04-01T00:00:00Z"), at("2025-05-01T00:00:00Z")).unwrap();
        assert_eq!(all, [ProbeOutage { probe: "ent".into(), start, end: Some(end) }]);
        // Outside the range: nothing.
        assert!(store.between(at("2025-04-07T12:30:00Z"), at("2025-04-08T00:00:00Z")).unwrap().is_empty());
    }

    #[test]
    fn an_outage_left_open_by_a_stop_closes_at_the_first_success_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = OutageStore::open(&dir.path().join("o.sqlite")).unwrap();
        let start = at("2025-04-07T12:00:00Z");
        store.record("ent", &OutageChange::Opened { start }).unwrap();
        store.record("other", &OutageChange::Opened { start }).unwrap();
        let end = at("2025-04-07T13:05:00Z");
        assert_eq!(store.close_dangling("ent", end).unwrap(), [OutageChange::Closed { start, end }]);
        assert!(store.close_dangling("ent", end).unwrap().is_empty());
        let all = store.between(start, end).unwrap();
        assert_eq!(all[0].end, Some(end));
        assert_eq!(all[1], ProbeOutage { probe: "other".into(), start, end: None });
    }

    #[test]
    fn month_report_from_persisted_outages() {
        let dir = tempfile::tempdir().unwrap();
        let store = OutageStore::open(&dir.path().join("o.sqlite")).unwrap();
        // 14:00–14:45 Paris on Monday 7 April 2025 seen by two probes (counted once, 45 min),
        // and 04:00–05:00 on the 9th, in the maintenance night (not counted).
        let (s, e) = (at("2025-04-07T14:00:00+02:00"), at("2025-04-07T14:45:00+02:00"));
        store.record("ent-https", &OutageChange::Closed { start: s, end: e }).unwrap();
        store.record("ent-login", &OutageChange::Closed { start: s, end: at("2025-04-07T14:30:00+02:00") }).unwrap();
        store
            .record(
                "ent-https",
                &OutageChange::Closed { start: at("2025-04-09T04:00:00+02:00"), end: at("2025-04-09T05:00:00+02:00") },
            )
            .unwrap();
        let now = at("2025-05-02T00:00:00Z");
        let m = availability_month(&store, &window(), 2025, 4, now, 1.0).unwrap();
        assert_eq!(m.month, "2025-04");
        assert_eq!(m.month_fr, "avril 2025");
        assert_eq!(m.days.len(), 30);
        assert_eq!(m.window_minutes, 30 * 1260);
        assert_eq!(m.downtime_minutes, 45.0);
        assert_eq!(m.breached_days, 1);
        assert_eq!(m.availability_percent, 99.881);
        let monday = &m.days[6];
        assert_eq!(
            (monday.date_fr.as_str(), monday.verdict, monday.downtime_minutes),
            ("lundi 7 avril 2025", "breached", 45.0)
        );
        assert_eq!(m.days[0].date_fr, "mardi 1er avril 2025");
        assert_eq!(m.days[8].verdict, "met");
        assert_eq!(m.outages.len(), 3);
        assert_eq!(m.outages[0].start_fr, "lundi 7 avril 2025, 14 h 00");
        assert_eq!(m.outages[0].duration_minutes, 45.0);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["days"][6]["date"], "2025-04-07");
        assert_eq!(json["days"][6]["verdict"], "breached");
        assert_eq!(json["outages"][0]["start"], "2025-04-07T12:00:00Z");
    }

    #[test]
    fn an_open_outage_counts_until_now() {
        let dir = tempfile::tempdir().unwrap();
        let store = OutageStore::open(&dir.path().join("o.sqlite")).unwrap();
        store.record("ent", &OutageChange::Opened { start: at("2025-04-07T14:00:00+02:00") }).unwrap();
        let now = at("2025-04-07T14:20:00+02:00");
        let m = availability_month(&store, &window(), 2025, 4, now, 1.0).unwrap();
        assert_eq!(m.downtime_minutes, 20.0);
        assert_eq!(m.outages[0].duration_minutes, 20.0);
        assert_eq!(m.outages[0].end_fr, None);
        assert!(!m.days[6].complete);
    }

    #[test]
    fn months_are_parsed_strictly() {
        assert_eq!(parse_month("2025-04"), Ok((2025, 4)));
        for bad in ["2025-4", "2025-13", "25-04", "2025/04", "avril"] {
            let e = parse_month(bad).unwrap_err();
            assert!(e.contains("YYYY-MM"), "{bad}: {e}");
        }
    }
}
