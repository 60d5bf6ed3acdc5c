//! The statistics stage (CCTP 4.3.3): usage figures of the ENT, fed by the event stream and
//! kept in SQLite both raw (day × school × user category × kind) and computed (ISO week,
//! month, school year), so they outlive the archive's 365-day purge and span school years.
//!
//! What is counted, from the web access log of the ENT (Beneylu School URLs):
//! - `connexion`: a completed login (`/ent/login_check` answered with a redirect);
//! - `article`: a blog article published (`POST /ent/blog/gestion/nouvel-article/terminer`);
//! - `requete`: every request.
//!
//! Unique users are counted from salted hashes of the account names (never the names); from
//! firewalls, denied packets per destination port and the denied addresses with their
//! country and ASN. Only counts are kept: never a URL, never the content consulted.
//!
//! Counting is idempotent across a crash: a source re-reads from its last checkpoint, so
//! events counted after it come again. Event ids end with their position in their stream
//! (`source:file:offset`, `source:sequence`; positions only grow within a stream), and the
//! highest position counted per stream is written in the same transaction as the counts: an
//! event at or below it was counted already and is skipped.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use collector::{Category, Event};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

/// Version 2 added the `seen` table (highest position counted per stream).
const STATS_FORMAT: i64 = 2;

/// A stream's position is forgotten after this long without a new event in it (a rotated
/// file, a removed source): no checkpoint is ever that old, so none of its events can come again.
const SEEN_KEPT_DAYS: i64 = 35;

/// A counted kind of activity.
pub(crate) const KIND_LOGIN: &str = "connexion";
/// A published blog article.
pub(crate) const KIND_ARTICLE: &str = "article";
/// Any request to the ENT.
pub(crate) const KIND_REQUEST: &str = "requete";
/// Distinct accounts (in rolled-up and raw unique-user figures).
pub(crate) const KIND_UNIQUE_USERS: &str = "utilisateurs_uniques";

/// A period the raw figures are rolled up into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
    SchoolYear,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::SchoolYear];

    /// Its name in URLs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "jour",
            Period::Week => "semaine",
            Period::Month => "mois",
            Period::SchoolYear => "annee-scolaire",
        }
    }

    /// Parses [`Period::as_str`].
    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The first and last day of the period that contains `day`.
    pub fn bounds(self, day: Date) -> (Date, Date) {
        let d = |y: i16, m: i8, dd: i8| Date::new(y, m, dd).unwrap_or(day);
        match self {
            Period::Day => (day, day),
            Period::Week => {
                let back = i64::from(day.weekday().to_monday_zero_offset());
                let start = day.checked_sub(jiff::Span::new().days(back)).unwrap_or(day);
                (start, start.checked_add(jiff::Span::new().days(6)).unwrap_or(start))
            }
            Period::Month => (day.first_of_month(), day.last_of_month()),
            // The French school year: from 1 September to 31 August.
            Period::SchoolYear => {
                let y = if day.month() >= 9 { day.year() } else { day.year() - 1 };
                (d(y, 9, 1), d(y + 1, 8, 31))
            }
        }
    }
}

/// One figure of a period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatRow {
    /// School UAI, or `""` for traffic no school network could be named for.
    pub school: String,
    pub school_name: String,
    /// `eleve`, `parent`, `enseignant`, `personnel`, or `""` when unknown.
    pub category: String,
    pub kind: String,
    pub count: u64,
}

/// Errors of the statistics store.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("statistics database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the statistics database has format version {found}, newer than this Vigie ({supported}); upgrade Vigie")]
    NewerFormat { found: i64, supported: i64 },
}

type Key = (Date, String, String, &'static str);

/// The statistics stage: [`Statistics::observe`] each event, [`Statistics::flush`] after each
/// batch (or every few seconds): counts accumulate in memory and are written in one transaction.
#[derive(Debug)]
pub struct Statistics {
    conn: Connection,
    tz: TimeZone,
    salt: String,
    counts: HashMap<Key, u64>,
    names: HashMap<String, String>,
    users: BTreeSet<(Date, String, String, String)>,
    denies_by_port: HashMap<(Date, u16), u64>,
    offenders: HashMap<(Date, String, String, u32), u64>,
    /// The highest position counted per stream, as committed.
    seen: HashMap<String, u64>,
    /// The highest position observed per stream since the last flush.
    seen_pending: HashMap<String, u64>,
    /// Events skipped because they were counted before (replayed after a restart).
    replayed: u64,
}

/// The stream and the position of an event id (`source:file:offset` → `source:file`, offset);
/// `None` for an id without a numeric position, which is then always counted.
fn stream_position(id: &str) -> Option<(&str, u64)> {
    let (stream, position) = id.rsplit_once(':')?;
    Some((stream, position.parse().ok()?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Statistics {
    /// Opens (creating if needed) the statistics database; days are cut in `tz`.
    pub fn open(path: &Path, tz: TimeZone) -> Result<Statistics, StatsError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > STATS_FORMAT {
            return Err(StatsError::NewerFormat { found: version, supported: STATS_FORMAT });
        }
        if version < 1 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS schools (uai TEXT PRIMARY KEY, name TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS raw (day TEXT, school TEXT, category TEXT, kind TEXT, count INTEGER NOT NULL,
                    PRIMARY KEY (day, school, category, kind));
                 CREATE TABLE IF NOT EXISTS raw_users (day TEXT, school TEXT, category TEXT, user_hash TEXT,
                    PRIMARY KEY (day, school, category, user_hash));
                 CREATE TABLE IF NOT EXISTS rollup (period TEXT, start TEXT, school TEXT, category TEXT, kind TEXT,
                    count INTEGER NOT NULL, PRIMARY KEY (period, start, school, category, kind));
                 CREATE TABLE IF NOT EXISTS fw_denies (day TEXT, port INTEGER, count INTEGER NOT NULL, PRIMARY KEY (day, port));
                 CREATE TABLE IF NOT EXISTS fw_offenders (day TEXT, ip TEXT, country TEXT, asn INTEGER, count INTEGER NOT NULL,
                    PRIMARY KEY (day, ip));
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
        }
        if version < 2 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS seen (stream TEXT PRIMARY KEY, position INTEGER NOT NULL, updated INTEGER NOT NULL);
                 PRAGMA user_version = 2;
                 COMMIT;",
            )?;
        }
        let salt: Option<String> = conn.query_row("SELECT value FROM meta WHERE key = 'salt'", [], |r| r.get(0)).ok();
        let salt = match salt {
            Some(s) => s,
            None => {
                let s = hex(&rand::random::<[u8; 16]>());
                conn.execute("INSERT INTO meta (key, value) VALUES ('salt', ?1)", [&s])?;
                s
            }
        };
        let seen = conn
            .prepare("SELECT stream, position FROM seen")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .map(|row| row.map(|(stream, position)| (stream, u64::try_from(position).unwrap_or(0))))
            .collect::<Result<HashMap<_, _>, _>>()?;
        Ok(Statistics {
            conn,
            tz,
            salt,
            counts: HashMap::new(),
            names: HashMap::new(),
            users: BTreeSet::new(),
            denies_by_port: HashMap::new(),
            offenders: HashMap::new(),
            seen,
            seen_pending: HashMap::new(),
            replayed: 0,
        })
    }

    /// Events skipped so far because they had been counted before (a source re-reading from
    /// its checkpoint after a crash).
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// Counts one event (in memory until [`Statistics::flush`]), unless it was counted before.
    pub fn observe(&mut self, event: &Event) {
        if let Some((stream, position)) = stream_position(event.id.as_str()) {
            if self.seen.get(stream).is_some_and(|&done| position <= done) {
                self.replayed += 1;
                return;
            }
            match self.seen_pending.get_mut(stream) {
                Some(highest) => *highest = (*highest).max(position),
                None => {
                    self.seen_pending.insert(stream.to_owned(), position);
                }
            }
        }
        let day = event.timestamp.to_zoned_datetime(self.tz.clone()).date();
        match event.category {
            Category::Web => {
                let school = event.school_uai.clone().unwrap_or_default();
                if let (Some(uai), Some(name)) = (&event.school_uai, &event.school_name)
                    && !self.names.contains_key(uai)
                {
                    self.names.insert(uai.clone(), name.clone());
                }
                let category = event.user_role.clone().unwrap_or_default();
                let path = event.url_path.as_deref().unwrap_or("");
                let status = event.http_status.unwrap_or(0);
                let method = event.http_method.as_deref().unwrap_or("");
                let mut count = |kind: &'static str| {
                    *self.counts.entry((day, school.clone(), category.clone(), kind)).or_default() += 1;
                };
                count(KIND_REQUEST);
                if path.starts_with("/ent/login_check") && (300..400).contains(&status) {
                    count(KIND_LOGIN);
                }
                if method == "POST"
                    && path == "/ent/blog/gestion/nouvel-article/terminer"
                    && (200..400).contains(&status)
                {
                    count(KIND_ARTICLE);
                }
                if let Some(user) = event.user_name.as_deref().filter(|u| !u.is_empty() && *u != "-") {
                    let hash = hex(&Sha256::digest(format!("{}:{user}", self.salt).as_bytes())[..16]);
                    self.users.insert((day, school, category, hash));
                }
            }
            Category::Network => {
                let denied = event.action.as_deref().is_some_and(|a| matches!(a, "block" | "drop" | "deny" | "reject"));
                if denied {
                    if let Some(port) = event.destination_port {
                        *self.denies_by_port.entry((day, port)).or_default() += 1;
                    }
                    if let Some(ip) = event.source_ip {
                        let key = (
                            day,
                            ip.to_string(),
                            event.source_country.clone().unwrap_or_default(),
                            event.source_as_number.unwrap_or(0),
                        );
                        *self.offenders.entry(key).or_default() += 1;
                    }
                }
            }
            _ => {}
        }
    }

    /// Writes what was observed since the last flush, and recomputes the week, month and
    /// school-year figures of the days it touched, in one transaction. On an error nothing of
    /// it is written and it is all forgotten: the events must come again (their batch fails,
    /// and the source re-reads it), and the caller must not count later events before they do,
    /// or the positions written with those would make the re-read ones look counted.
    pub fn flush(&mut self) -> Result<(), StatsError> {
        let written = self.write();
        if written.is_err() {
            self.counts.clear();
            self.names.clear();
            self.users.clear();
            self.denies_by_port.clear();
            self.offenders.clear();
            self.seen_pending.clear();
        }
        written
    }

    fn write(&mut self) -> Result<(), StatsError> {
        if self.counts.is_empty()
            && self.users.is_empty()
            && self.denies_by_port.is_empty()
            && self.offenders.is_empty()
            && self.seen_pending.is_empty()
        {
            return Ok(());
        }
        let mut days = BTreeSet::new();
        let tx = self.conn.transaction()?;
        for (uai, name) in &self.names {
            tx.execute("INSERT OR REPLACE INTO schools (uai, name) VALUES (?1, ?2)", params![uai, name])?;
        }
        for ((day, school, category, kind), n) in self.counts.drain() {
            days.insert(day);
            tx.execute(
                "INSERT INTO raw (day, school, category, kind, count) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO UPDATE SET count = count + excluded.count",
                params![day.to_string(), school, category, kind, i64::try_from(n).unwrap_or(i64::MAX)],
            )?;
        }
        for (day, school, category, hash) in std::mem::take(&mut self.users) {
            days.insert(day);
            tx.execute(
                "INSERT OR IGNORE INTO raw_users (day, school, category, user_hash) VALUES (?1, ?2, ?3, ?4)",
                params![day.to_string(), school, category, hash],
            )?;
        }
        for ((day, port), n) in self.denies_by_port.drain() {
            tx.execute(
                "INSERT INTO fw_denies (day, port, count) VALUES (?1, ?2, ?3) ON CONFLICT DO UPDATE SET count = count + excluded.count",
                params![day.to_string(), port, i64::try_from(n).unwrap_or(i64::MAX)],
            )?;
        }
        for ((day, ip, country, asn), n) in self.offenders.drain() {
            tx.execute(
                "INSERT INTO fw_offenders (day, ip, country, asn, count) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO UPDATE SET count = count + excluded.count",
                params![day.to_string(), ip, country, asn, i64::try_from(n).unwrap_or(i64::MAX)],
            )?;
        }
        let mut periods = BTreeSet::new();
        for day in days {
            for period in Period::ALL {
                periods.insert((period.as_str(), period.bounds(day)));
            }
        }
        for (period, (start, end)) in periods {
            let (s, e) = (start.to_string(), end.to_string());
            tx.execute("DELETE FROM rollup WHERE period = ?1 AND start = ?2", params![period, s])?;
            tx.execute(
                "INSERT INTO rollup (period, start, school, category, kind, count)
                 SELECT ?1, ?2, school, category, kind, SUM(count) FROM raw WHERE day BETWEEN ?2 AND ?3
                 GROUP BY school, category, kind",
                params![period, s, e],
            )?;
            tx.execute(
                "INSERT INTO rollup (period, start, school, category, kind, count)
                 SELECT ?1, ?2, school, category, ?4, COUNT(DISTINCT user_hash) FROM raw_users WHERE day BETWEEN ?2 AND ?3
                 GROUP BY school, category",
                params![period, s, e, KIND_UNIQUE_USERS],
            )?;
        }
        let now = jiff::Timestamp::now().as_second();
        for (stream, &position) in &self.seen_pending {
            tx.execute(
                "INSERT INTO seen (stream, position, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO UPDATE SET position = max(position, excluded.position), updated = excluded.updated",
                params![stream, i64::try_from(position).unwrap_or(i64::MAX), now],
            )?;
        }
        let stale = now - SEEN_KEPT_DAYS * 86_400;
        let forgotten = {
            let mut delete = tx.prepare("DELETE FROM seen WHERE updated < ?1 RETURNING stream")?;
            delete.query_map([stale], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?
        };
        tx.commit()?;
        self.names.clear();
        for (stream, position) in self.seen_pending.drain() {
            let done = self.seen.entry(stream).or_default();
            *done = (*done).max(position);
        }
        for stream in forgotten {
            self.seen.remove(&stream);
        }
        Ok(())
    }
}

/// A read connection to the statistics, for the pages.
#[derive(Debug)]
pub struct StatsReader {
    conn: Connection,
}

impl StatsReader {
    /// Opens the statistics database the stage writes (creating it if the stage has not yet).
    pub fn open(path: &Path) -> Result<StatsReader, StatsError> {
        // Opening through the writer creates and migrates the file the same way.
        drop(Statistics::open(path, TimeZone::UTC)?);
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(StatsReader { conn })
    }

    /// The figures of the `period` that contains `day`.
    pub fn rows(&self, period: Period, day: Date) -> Result<Vec<StatRow>, StatsError> {
        let (start, _) = period.bounds(day);
        let mut stmt = self.conn.prepare(
            "SELECT r.school, COALESCE(s.name, ''), r.category, r.kind, r.count FROM rollup r
             LEFT JOIN schools s ON s.uai = r.school WHERE r.period = ?1 AND r.start = ?2",
        )?;
        let rows = stmt.query_map(params![period.as_str(), start.to_string()], |r| {
            Ok(StatRow {
                school: r.get(0)?,
                school_name: r.get(1)?,
                category: r.get(2)?,
                kind: r.get(3)?,
                count: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Daily totals of `kind` for `category` (all schools), from `from` to `to` inclusive.
    pub fn daily(&self, kind: &str, category: &str, from: Date, to: Date) -> Result<Vec<(Date, u64)>, StatsError> {
        let mut stmt = self.conn.prepare(
            "SELECT day, SUM(count) FROM raw WHERE kind = ?1 AND category = ?2 AND day BETWEEN ?3 AND ?4
             GROUP BY day ORDER BY day",
        )?;
        let rows = stmt.query_map(params![kind, category, from.to_string(), to.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (day, n) = row?;
            if let Ok(day) = day.parse() {
                out.push((day, u64::try_from(n).unwrap_or(0)));
            }
        }
        Ok(out)
    }

    /// Firewall denies per destination port from `from` to `to`, most denied first.
    pub fn denies_by_port(&self, from: Date, to: Date, limit: usize) -> Result<Vec<(u16, u64)>, StatsError> {
        let mut stmt = self.conn.prepare(
            "SELECT port, SUM(count) AS n FROM fw_denies WHERE day BETWEEN ?1 AND ?2 GROUP BY port ORDER BY n DESC LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![from.to_string(), to.to_string(), i64::try_from(limit).unwrap_or(100)], |r| {
                Ok((r.get::<_, u16>(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
            })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The addresses the firewalls denied most, with country and ASN: (ip, country, asn, count).
    pub fn top_offenders(
        &self,
        from: Date,
        to: Date,
        limit: usize,
    ) -> Result<Vec<(String, String, u32, u64)>, StatsError> {
        let mut stmt = self.conn.prepare(
            "SELECT ip, MAX(country), MAX(asn), SUM(count) AS n FROM fw_offenders WHERE day BETWEEN ?1 AND ?2
             GROUP BY ip ORDER BY n DESC LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![from.to_string(), to.to_string(), i64::try_from(limit).unwrap_or(100)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0)))
            })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request of the stream `web`, at the next position (each event its own id, as a source
    /// numbers them).
    fn web(ts: &str, path: &str, method: &str, status: u16, school: &str, role: &str, user: &str) -> Event {
        static POSITION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut e = Event {
            id: collector::EventId::in_file("web", "f1", POSITION.fetch_add(100, std::sync::atomic::Ordering::Relaxed)),
            timestamp: ts.parse().unwrap(),
            dataset: "apache.access".into(),
            category: Category::Web,
            ..Event::default()
        };
        e.url_path = Some(path.into());
        e.http_method = Some(method.into());
        e.http_status = Some(status);
        e.school_uai = Some(school.into());
        e.school_name = Some(format!("École {school}"));
        e.user_role = Some(role.into());
        e.user_name = Some(user.into());
        e
    }

    fn count(rows: &[StatRow], school: &str, category: &str, kind: &str) -> u64 {
        rows.iter().filter(|r| r.school == school && r.category == category && r.kind == kind).map(|r| r.count).sum()
    }

    #[test]
    fn raw_days_roll_up_into_weeks_months_and_school_years() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.sqlite");
        let paris = TimeZone::get("Europe/Paris").unwrap();
        let mut stats = Statistics::open(&path, paris).unwrap();
        // Monday 1 and Tuesday 2 September 2025 (a new school year), then Sunday 31 August.
        for (ts, user) in [
            ("2025-09-01T06:00:00Z", "lea"),
            ("2025-09-01T07:00:00Z", "lea"),
            ("2025-09-02T07:00:00Z", "hugo"),
            ("2025-08-31T07:00:00Z", "lea"),
        ] {
            stats.observe(&web(ts, "/ent/login_check", "GET", 302, "0750001A", "eleve", user));
        }
        stats.observe(&web(
            "2025-09-02T08:00:00Z",
            "/ent/blog/gestion/nouvel-article/terminer",
            "POST",
            302,
            "0750001A",
            "enseignant",
            "mme.x",
        ));
        stats.observe(&web("2025-09-02T08:00:00Z", "/ent/blog/", "GET", 200, "0750002B", "parent", "p1"));
        // 23:30 UTC on 1 September is already 2 September in Paris.
        stats.observe(&web("2025-09-01T23:30:00Z", "/ent/login_check", "GET", 302, "0750001A", "eleve", "zoe"));
        stats.flush().unwrap();
        let reader = StatsReader::open(&path).unwrap();
        let day = |s: &str| s.parse::<Date>().unwrap();
        let d1 = reader.rows(Period::Day, day("2025-09-01")).unwrap();
        assert_eq!(count(&d1, "0750001A", "eleve", KIND_LOGIN), 2);
        assert_eq!(count(&d1, "0750001A", "eleve", KIND_UNIQUE_USERS), 1);
        let d2 = reader.rows(Period::Day, day("2025-09-02")).unwrap();
        assert_eq!(count(&d2, "0750001A", "eleve", KIND_LOGIN), 2);
        assert_eq!(count(&d2, "0750001A", "enseignant", KIND_ARTICLE), 1);
        assert_eq!(count(&d2, "0750002B", "parent", KIND_ARTICLE), 0);
        assert_eq!(count(&d2, "0750002B", "parent", KIND_REQUEST), 1);
        let week = reader.rows(Period::Week, day("2025-09-03")).unwrap();
        assert_eq!(count(&week, "0750001A", "eleve", KIND_LOGIN), 4);
        assert_eq!(count(&week, "0750001A", "eleve", KIND_UNIQUE_USERS), 3, "lea, hugo, zoe");
        // 31 August belongs to the previous school year and the previous month.
        let year = reader.rows(Period::SchoolYear, day("2026-06-30")).unwrap();
        assert_eq!(count(&year, "0750001A", "eleve", KIND_LOGIN), 4);
        let last_year = reader.rows(Period::SchoolYear, day("2025-08-31")).unwrap();
        assert_eq!(count(&last_year, "0750001A", "eleve", KIND_LOGIN), 1);
        assert_eq!(d1.iter().find(|r| r.school == "0750001A").unwrap().school_name, "École 0750001A");
        let daily = reader.daily(KIND_LOGIN, "eleve", day("2025-08-30"), day("2025-09-05")).unwrap();
        assert_eq!(daily, vec![(day("2025-08-31"), 1), (day("2025-09-01"), 2), (day("2025-09-02"), 2)]);

        // A second flush adds to the same day instead of replacing it.
        stats.observe(&web("2025-09-02T09:00:00Z", "/ent/login_check", "GET", 302, "0750001A", "eleve", "lea"));
        stats.flush().unwrap();
        let week = reader.rows(Period::Week, day("2025-09-01")).unwrap();
        assert_eq!(count(&week, "0750001A", "eleve", KIND_LOGIN), 5);
        assert_eq!(count(&week, "0750001A", "eleve", KIND_UNIQUE_USERS), 3);
        // The database stores no account name.
        let bytes = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("stats.sqlite-wal")).unwrap_or_default();
        for needle in [b"hugo".as_slice(), b"lea", b"mme.x"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
            assert!(!wal.windows(needle.len()).any(|w| w == needle));
        }
    }

    #[test]
    fn events_read_again_after_a_restart_are_not_counted_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.sqlite");
        let login = |id: collector::EventId| {
            let mut e = web("2025-09-01T06:00:00Z", "/ent/login_check", "GET", 302, "0750001A", "eleve", "lea");
            e.id = id;
            e
        };
        let first: Vec<Event> =
            [0, 120, 250].into_iter().map(|at| login(collector::EventId::in_file("web", "a1", at))).collect();
        let mut stats = Statistics::open(&path, TimeZone::UTC).unwrap();
        for e in &first {
            stats.observe(e);
        }
        stats.flush().unwrap();
        drop(stats);
        // After a crash the source re-reads from its checkpoint (offset 120): two events come
        // again, then a new one; another stream (a rotated file, another source) counts apart,
        // and an id without a position is always counted.
        let mut stats = Statistics::open(&path, TimeZone::UTC).unwrap();
        let mut again = vec![first[1].clone(), first[2].clone(), login(collector::EventId::in_file("web", "a1", 380))];
        again.push(login(collector::EventId::in_file("web", "a2", 0)));
        again.push(login(collector::EventId::at("fw", 250)));
        again.push(login(collector::EventId("sans-position".into())));
        for e in &again {
            stats.observe(e);
        }
        stats.flush().unwrap();
        assert_eq!(stats.replayed(), 2);
        let reader = StatsReader::open(&path).unwrap();
        let rows = reader.rows(Period::Day, "2025-09-01".parse().unwrap()).unwrap();
        assert_eq!(count(&rows, "0750001A", "eleve", KIND_LOGIN), 3 + 4);
        // The same batch twice in one process (a failed batch sent again) is counted once.
        for e in &again {
            stats.observe(e);
        }
        stats.flush().unwrap();
        let rows = reader.rows(Period::Day, "2025-09-01".parse().unwrap()).unwrap();
        assert_eq!(count(&rows, "0750001A", "eleve", KIND_LOGIN), 3 + 4 + 1, "only the id without a position");
        assert_eq!(stats.replayed(), 2 + 5);
    }

    #[test]
    fn the_mark_of_a_stream_idle_past_its_keeping_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.sqlite");
        let login = |id: collector::EventId| {
            let mut e = web("2025-09-01T06:00:00Z", "/ent/login_check", "GET", 302, "0750001A", "eleve", "lea");
            e.id = id;
            e
        };
        let old = login(collector::EventId::in_file("web", "a1", 10));
        let mut stats = Statistics::open(&path, TimeZone::UTC).unwrap();
        stats.observe(&old);
        stats.flush().unwrap();
        // The stream `web:a1` saw nothing for longer than the marks are kept.
        let idle = jiff::Timestamp::now().as_second() - (SEEN_KEPT_DAYS + 1) * 86_400;
        Connection::open(&path).unwrap().execute("UPDATE seen SET updated = ?1", [idle]).unwrap();
        stats.observe(&login(collector::EventId::in_file("web", "b1", 0)));
        stats.flush().unwrap();
        let streams: Vec<String> = Connection::open(&path)
            .unwrap()
            .prepare("SELECT stream FROM seen")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(streams, ["web:b1"]);
        // Forgotten in memory too: the same position counts again.
        stats.observe(&old);
        assert_eq!(stats.replayed(), 0);
    }

    #[test]
    fn a_version_1_database_is_upgraded_and_keeps_its_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE schools (uai TEXT PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE raw (day TEXT, school TEXT, category TEXT, kind TEXT, count INTEGER NOT NULL,
                PRIMARY KEY (day, school, category, kind));
             CREATE TABLE raw_users (day TEXT, school TEXT, category TEXT, user_hash TEXT,
                PRIMARY KEY (day, school, category, user_hash));
             CREATE TABLE rollup (period TEXT, start TEXT, school TEXT, category TEXT, kind TEXT,
                count INTEGER NOT NULL, PRIMARY KEY (period, start, school, category, kind));
             CREATE TABLE fw_denies (day TEXT, port INTEGER, count INTEGER NOT NULL, PRIMARY KEY (day, port));
             CREATE TABLE fw_offenders (day TEXT, ip TEXT, country TEXT, asn INTEGER, count INTEGER NOT NULL,
                PRIMARY KEY (day, ip));
             INSERT INTO meta VALUES ('salt', '00');
             INSERT INTO raw VALUES ('2025-09-01', '0750001A', 'eleve', 'connexion', 5);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);
        let mut stats = Statistics::open(&path, TimeZone::UTC).unwrap();
        stats.observe(&web("2025-09-01T06:00:00Z", "/ent/login_check", "GET", 302, "0750001A", "eleve", "lea"));
        stats.flush().unwrap();
        let reader = StatsReader::open(&path).unwrap();
        let rows = reader.rows(Period::Day, "2025-09-01".parse().unwrap()).unwrap();
        assert_eq!(count(&rows, "0750001A", "eleve", KIND_LOGIN), 6);
        let version: i64 = reader_version(&path);
        assert_eq!(version, STATS_FORMAT);
    }

    fn reader_version(path: &Path) -> i64 {
        Connection::open(path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    #[test]
    fn firewall_denies_by_port_and_offenders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.sqlite");
        let mut stats = Statistics::open(&path, TimeZone::UTC).unwrap();
        for (n, (port, ip)) in
            [(22, "203.0.113.5"), (22, "203.0.113.5"), (3389, "198.51.100.7")].into_iter().enumerate()
        {
            let mut e = Event {
                id: collector::EventId::at("fw", n as u64),
                timestamp: "2025-09-01T06:00:00Z".parse().unwrap(),
                dataset: "iptables.log".into(),
                category: Category::Network,
                ..Event::default()
            };
            e.action = Some("block".into());
            e.destination_port = Some(port);
            e.source_ip = Some(ip.parse().unwrap());
            e.source_country = Some("NL".into());
            e.source_as_number = Some(64500);
            stats.observe(&e);
        }
        stats.flush().unwrap();
        let reader = StatsReader::open(&path).unwrap();
        let d: Date = "2025-09-01".parse().unwrap();
        assert_eq!(reader.denies_by_port(d, d, 10).unwrap(), vec![(22, 2), (3389, 1)]);
        assert_eq!(reader.top_offenders(d, d, 1).unwrap(), vec![("203.0.113.5".into(), "NL".into(), 64500, 2)]);
    }
}
