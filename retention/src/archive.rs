//! The legal archive: day partitions under one directory, appended, committed, searched, purged.
//!
//! Everything here is blocking (Tantivy, fsync); async callers go through [`crate::run_sink`]
//! or `spawn_blocking`. Nothing outside this crate writes the archive.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::civil::Date;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocSet, TantivyDocument, Term};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ArchiveError;
use crate::integrity::{self, ChainLink, DeletionCertificate};
use crate::keys::ArchiveKey;
use crate::partition::{self, PURGING_PREFIX, Partition, TMP_PREFIX, utc_day};
use crate::record::ConnectionRecord;
use crate::schema::{self, TIMESTAMP_NS};
use crate::summary::{self, Kind, Summary};

/// Records that arrive for a day already sealed go here (`late/<day>.jsonl`), since a sealed
/// day never changes; searches read them too.
const LATE_DIR: &str = "late";
/// The legal holds in force (`holds.json` at the archive root).
const HOLDS_FILE: &str = "holds.json";

/// At most this many days keep a writer (and its memory arena) open at once. Live traffic
/// needs one, two around midnight; a replay of old days commits and closes as it goes.
const MAX_OPEN_WRITERS: usize = 3;

/// A requisition's question: records in `[from, to)` matching every given criterion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArchiveQuery {
    /// Inclusive start.
    pub from: Timestamp,
    /// Exclusive end.
    pub to: Timestamp,
    /// Exact client address.
    pub source_ip: Option<IpAddr>,
    /// Client addresses in a CIDR range (`192.0.2.0/24`).
    pub source_network: Option<IpNet>,
    /// Client source port.
    pub source_port: Option<u16>,
    /// Exact account name.
    pub user_name: Option<String>,
    /// School (UAI).
    pub school_uai: Option<String>,
    /// Records to skip, for pagination (earliest first).
    pub offset: usize,
    /// At most this many records, the earliest first.
    pub limit: usize,
}

impl ArchiveQuery {
    /// Whether `r` matches every criterion (used for late records, outside Tantivy).
    fn matches(&self, r: &ConnectionRecord) -> bool {
        self.from <= r.timestamp
            && r.timestamp < self.to
            && self.source_ip.is_none_or(|ip| r.source_ip.map(schema::to_v6) == Some(schema::to_v6(ip)))
            && self.source_network.is_none_or(|net| r.source_ip.is_some_and(|ip| net_contains(&net, ip)))
            && self.source_port.is_none_or(|p| r.source_port == Some(p))
            && self.user_name.as_ref().is_none_or(|u| r.user_name.as_ref() == Some(u))
            && self.school_uai.as_ref().is_none_or(|u| r.school_uai.as_ref() == Some(u))
    }
}

fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    let (lo, hi) = net_range(net);
    (lo..=hi).contains(&schema::to_v6(ip))
}

/// The first and last address of a network, as Tantivy stores them (IPv6, IPv4 mapped).
fn net_range(net: &IpNet) -> (std::net::Ipv6Addr, std::net::Ipv6Addr) {
    (schema::to_v6(net.network()), schema::to_v6(net.broadcast()))
}

/// An authority's order to keep some days beyond the retention period ("conservation rapide").
/// It keeps whole days: the archive deletes by day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHold {
    /// The requisition reference the hold was ordered under.
    pub reference: String,
    /// First and last UTC day covered, inclusive.
    pub from: Date,
    pub to: Date,
}

impl LegalHold {
    /// Whether the hold covers `day`.
    pub fn covers(&self, day: Date) -> bool {
        self.from <= day && day <= self.to
    }
}

/// What one day holds (committed documents only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayStats {
    pub day: Date,
    pub documents: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
}

/// What the archive holds (committed documents only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveStats {
    pub days: Vec<DayStats>,
    pub total_documents: u64,
    /// Event ids held by more than one live document, counted once per extra copy. An
    /// idempotent archive keeps this at 0 whatever is replayed.
    pub duplicate_event_ids: u64,
}

/// What one append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendReport {
    pub appended: u64,
    /// Records whose event id was already archived (or pending) and which replaced it.
    pub replaced: u64,
}

/// What a purge did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// The certificates of the days deleted (or to delete).
    pub deleted: Vec<DeletionCertificate>,
    /// Expired days kept under a legal hold, with the hold's reference.
    pub held: Vec<(Date, String)>,
}

/// The archive rooted at one directory. See the crate documentation for the layout.
#[derive(Debug)]
pub struct Archive {
    root: PathBuf,
    /// Every day present on disk.
    days: BTreeSet<Date>,
    /// Days sealed by a manifest: never written again.
    sealed: BTreeSet<Date>,
    /// Signs manifests and deletion certificates.
    key: Option<ArchiveKey>,
    /// Days with a writer; closed when they stop receiving records.
    open: BTreeMap<Date, Partition>,
    /// Days that received records since the previous commit.
    touched: BTreeSet<Date>,
    #[cfg(any(test, feature = "testsuite"))]
    fail_next_commit: bool,
}

impl Archive {
    /// Opens the archive at `dir`, creating it if needed. Finishes interrupted purges, drops
    /// interrupted day creations, and refuses any day written by a newer format version.
    pub fn open(dir: &Path) -> Result<Archive, ArchiveError> {
        Archive::open_with(dir, true)
    }

    /// Opens the archive at `dir` to read it while another process may be writing it: touches
    /// nothing (no clean-up of interrupted operations, no directory created). Never append to
    /// an archive opened this way.
    pub fn open_read_only(dir: &Path) -> Result<Archive, ArchiveError> {
        if !dir.is_dir() {
            return Err(ArchiveError::Io {
                path: dir.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no archive here (wrong --data?)"),
            });
        }
        Archive::open_with(dir, false)
    }

    fn open_with(dir: &Path, writable: bool) -> Result<Archive, ArchiveError> {
        if writable {
            std::fs::create_dir_all(dir).map_err(ArchiveError::io(dir))?;
        }
        let mut days = BTreeSet::new();
        let mut sealed = BTreeSet::new();
        for entry in std::fs::read_dir(dir).map_err(ArchiveError::io(dir))? {
            let entry = entry.map_err(ArchiveError::io(dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) || name.starts_with(PURGING_PREFIX) {
                if !writable {
                    continue;
                }
                // A creation that never got its final name held no records; a purge that was
                // interrupted had already been decided. Both are finished here.
                tracing::info!(dir = %path.display(), "removing interrupted archive day operation");
                std::fs::remove_dir_all(&path).map_err(ArchiveError::io(&path))?;
                continue;
            }
            let Ok(day) = name.parse::<Date>() else {
                tracing::debug!(entry = %path.display(), "ignoring non-day entry in archive directory");
                continue;
            };
            // The entry's own type costs no system call; a symbolic link is followed.
            let file_type = entry.file_type().map_err(ArchiveError::io(&path))?;
            if !(file_type.is_dir() || file_type.is_symlink() && path.is_dir()) {
                continue;
            }
            // A writer validates the format version and the schema of every day now, rather
            // than failing on the day it needs. A reader only lists the days: it opens just the
            // days its search needs, and each is validated then (format version, day, schema).
            if writable {
                Partition::open(&path, day)?;
            }
            if integrity::is_sealed(&path) {
                sealed.insert(day);
            }
            days.insert(day);
        }
        tracing::info!(dir = %dir.display(), days = days.len(), "archive opened");
        Ok(Archive {
            root: dir.to_owned(),
            days,
            sealed,
            key: None,
            open: BTreeMap::new(),
            touched: BTreeSet::new(),
            #[cfg(any(test, feature = "testsuite"))]
            fail_next_commit: false,
        })
    }

    /// The archive's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Signs manifests and deletion certificates with `key` from now on.
    pub fn set_key(&mut self, key: ArchiveKey) {
        self.key = Some(key);
    }

    /// The days sealed by a manifest, oldest first.
    pub fn sealed_days(&self) -> impl Iterator<Item = Date> + '_ {
        self.sealed.iter().copied()
    }

    /// The days present, oldest first.
    pub fn days(&self) -> impl Iterator<Item = Date> + '_ {
        self.days.iter().copied()
    }

    /// Adds `records`, each to its UTC day. Durable only after [`Archive::commit`].
    pub fn append(&mut self, records: &[ConnectionRecord]) -> Result<(), ArchiveError> {
        self.append_report(records).map(|_| ())
    }

    /// [`Archive::append`], saying how many records replaced an archived one.
    pub fn append_report(&mut self, records: &[ConnectionRecord]) -> Result<AppendReport, ArchiveError> {
        let mut by_day: BTreeMap<Date, Vec<&ConnectionRecord>> = BTreeMap::new();
        for record in records {
            by_day.entry(utc_day(record.timestamp)).or_default().push(record);
        }
        let mut report = AppendReport::default();
        for (day, records) in by_day {
            if self.sealed.contains(&day) {
                let late = self.append_late(day, &records)?;
                report.replaced += records.len() as u64 - late;
                report.appended += records.len() as u64;
                continue;
            }
            let partition = self.writable(day)?;
            report.replaced += partition.append(&records)?;
            report.appended += records.len() as u64;
            self.touched.insert(day);
        }
        Ok(report)
    }

    /// Keeps records of a sealed day beside it: those whose id the day already holds are
    /// replays and are dropped; the others go to `late/<day>.jsonl`, durably. Returns how many
    /// were new.
    fn append_late(&mut self, day: Date, records: &[&ConnectionRecord]) -> Result<u64, ArchiveError> {
        let partition = Partition::open(&partition::day_dir(&self.root, day), day)?;
        let already: HashSet<String> = self.late_records(day)?.into_iter().map(|r| r.event_id).collect();
        let mut text = String::new();
        let mut new = 0;
        for r in records {
            if partition.contains_id(&r.event_id)? || already.contains(&r.event_id) {
                continue;
            }
            new += 1;
            text.push_str(&serde_json::to_string(r).expect("records serialize"));
            text.push('\n');
        }
        if new > 0 {
            let dir = self.root.join(LATE_DIR);
            std::fs::create_dir_all(&dir).map_err(ArchiveError::io(&dir))?;
            let path = dir.join(format!("{day}.jsonl"));
            let mut file =
                std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(ArchiveError::io(&path))?;
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(ArchiveError::io(&path))?;
            file.sync_all().map_err(ArchiveError::io(&path))?;
            tracing::warn!(day = %day, records = new, "records for a sealed archive day kept in its late file");
        }
        Ok(new)
    }

    /// The late records of a sealed day (see [`Archive::append`]).
    fn late_records(&self, day: Date) -> Result<Vec<ConnectionRecord>, ArchiveError> {
        let path = self.root.join(LATE_DIR).join(format!("{day}.jsonl"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ArchiveError::Io { path, source: e }),
        };
        // A crash mid-write may leave a partial last line: it was never acknowledged.
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    /// The open partition of `day`, creating the day or opening it as needed. Keeps at most
    /// [`MAX_OPEN_WRITERS`] writers: beyond that, everything pending is committed (earlier
    /// durability is always safe) and the other writers are closed.
    fn writable(&mut self, day: Date) -> Result<&mut Partition, ArchiveError> {
        if !self.open.contains_key(&day) {
            if self.open.len() >= MAX_OPEN_WRITERS {
                self.commit_dirty()?;
                for (_, mut p) in std::mem::take(&mut self.open) {
                    p.close_writer()?;
                }
            }
            let partition = if self.days.contains(&day) {
                Partition::open(&partition::day_dir(&self.root, day), day)?
            } else {
                let p = Partition::create(&self.root, day)?;
                self.days.insert(day);
                p
            };
            self.open.insert(day, partition);
        }
        Ok(self.open.get_mut(&day).expect("inserted above"))
    }

    /// Makes every appended record durable (each dirty day is committed and fsynced), then
    /// closes the writers of days that received nothing since the previous commit.
    ///
    /// After an error, drop this `Archive` and open the directory again: what was committed
    /// stays, and the uncommitted records must be replayed by their source.
    pub fn commit(&mut self) -> Result<(), ArchiveError> {
        #[cfg(any(test, feature = "testsuite"))]
        if std::mem::take(&mut self.fail_next_commit) {
            return Err(ArchiveError::InjectedFailure);
        }
        self.commit_dirty()?;
        let idle: Vec<Date> = self.open.keys().filter(|d| !self.touched.contains(d)).copied().collect();
        for day in idle {
            if let Some(mut p) = self.open.remove(&day) {
                p.close_writer()?;
                tracing::debug!(day = %day, "archive day writer closed");
            }
        }
        self.touched.clear();
        Ok(())
    }

    fn commit_dirty(&mut self) -> Result<(), ArchiveError> {
        for partition in self.open.values_mut().filter(|p| p.is_dirty()) {
            partition.commit()?;
            tracing::debug!(day = %partition.day, "archive day committed");
        }
        Ok(())
    }

    /// Whether some day still holds a writer (a commit would close the idle ones).
    pub(crate) fn has_open_writers(&self) -> bool {
        self.open.values().any(Partition::is_writing)
    }

    /// Makes the next [`Archive::commit`] fail without writing anything, to test what callers
    /// do with a failed commit.
    #[cfg(any(test, feature = "testsuite"))]
    pub fn fail_next_commit(&mut self) {
        self.fail_next_commit = true;
    }

    /// The committed records matching `query`, earliest first. Opens only the days the time
    /// range covers, and of those only the ones whose summary may hold what it looks for.
    pub fn search(&self, query: &ArchiveQuery) -> Result<Vec<ConnectionRecord>, ArchiveError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self.run(query, false, None)?.0)
    }

    /// How many records match `query` (its offset and limit ignored).
    pub fn count(&self, query: &ArchiveQuery) -> Result<u64, ArchiveError> {
        let everything = ArchiveQuery { offset: 0, limit: 0, ..query.clone() };
        Ok(self.run(&everything, true, None)?.1)
    }

    /// [`Archive::search`] and [`Archive::count`] in one pass over the days: the records of the
    /// page and the number of records matching in all.
    pub fn search_and_count(&self, query: &ArchiveQuery) -> Result<(Vec<ConnectionRecord>, u64), ArchiveError> {
        self.run(query, true, None)
    }

    /// [`Archive::search_and_count`] for a long-lived reader that keeps the sealed days it opens
    /// in `kept` for its next searches.
    pub(crate) fn search_and_count_kept(
        &self,
        query: &ArchiveQuery,
        kept: &OpenDays,
    ) -> Result<(Vec<ConnectionRecord>, u64), ArchiveError> {
        self.run(query, true, Some(kept))
    }

    /// The search in two passes over the days of the range, each spread over threads: the
    /// first runs the query in every day (the count and the addresses of the earliest matches,
    /// no document read), the second reads only the documents of the page. Without `counting`,
    /// days are searched a batch at a time and the search stops once the page is full. A
    /// long-lived reader passes `kept`, where the sealed days it opens stay open.
    fn run(
        &self,
        query: &ArchiveQuery,
        counting: bool,
        kept: Option<&OpenDays>,
    ) -> Result<(Vec<ConnectionRecord>, u64), ArchiveError> {
        if query.to <= query.from {
            return Ok((Vec::new(), 0));
        }
        let wanted = query.offset.saturating_add(query.limit);
        if wanted == 0 && !counting {
            return Ok((Vec::new(), 0));
        }
        let first_day = utc_day(query.from);
        let last_day = utc_day(query.to - jiff::SignedDuration::from_nanos(1));
        let days: Vec<Date> = self.days.range(first_day..=last_day).copied().collect();
        if let Some(kept) = kept {
            kept.forget_all_but(&self.days);
        }
        let keys = summary_keys(query);
        let late_days = self.late_days()?;
        let batch = if counting { days.len().max(1) } else { search_threads(days.len()) * 2 };
        let mut found: Vec<DayHits<'_>> = Vec::new();
        let mut collected = 0usize;
        for chunk in days.chunks(batch) {
            let hits =
                parallel_map(chunk, |&day| self.day_hits(day, query, wanted, &keys, late_days.contains(&day), kept));
            for day in hits {
                let day = day?;
                collected = collected.saturating_add(day.hits.len() + day.late.len());
                found.push(day);
            }
            if !counting && collected >= wanted {
                break;
            }
        }
        let total = found.iter().map(|d| d.count + d.late.len() as u64).sum();
        // The earliest `wanted` records: the days in order, each giving what it matched.
        let mut remaining = wanted;
        let mut plan = Vec::new();
        for day in &found {
            if remaining == 0 {
                break;
            }
            let take = (day.hits.len() + day.late.len()).min(remaining);
            if take > 0 {
                plan.push((day, take));
            }
            remaining -= take;
        }
        let mut out = Vec::with_capacity(wanted.min(collected));
        // An exact-address query knows every match's address: no column to read it from.
        let known_ip = query.source_ip.map(schema::to_v6);
        for records in parallel_map(&plan, |&(day, take)| day.records(take, known_ip)) {
            out.extend(records?);
        }
        Ok((out.into_iter().skip(query.offset).collect(), total))
    }

    /// The days that have a late file (records that arrived after the day was sealed).
    fn late_days(&self) -> Result<BTreeSet<Date>, ArchiveError> {
        let dir = self.root.join(LATE_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(ArchiveError::Io { path: dir, source: e }),
        };
        let mut days = BTreeSet::new();
        for entry in entries {
            let name = entry.map_err(ArchiveError::io(&dir))?.file_name();
            let day = name.to_str().and_then(|n| n.strip_suffix(".jsonl")).and_then(|d| d.parse::<Date>().ok());
            days.extend(day);
        }
        Ok(days)
    }

    /// The first pass of a search in one day: skipped when the day's summary proves it holds no
    /// match, else the count and the earliest `wanted` matches (addresses only), and the day's
    /// matching late records.
    fn day_hits<'a>(
        &'a self,
        day: Date,
        query: &ArchiveQuery,
        wanted: usize,
        keys: &[(Kind, u64)],
        has_late: bool,
        kept: Option<&OpenDays>,
    ) -> Result<DayHits<'a>, ArchiveError> {
        let sealed = self.sealed.contains(&day);
        let late = if sealed && has_late {
            self.late_records(day)?.into_iter().filter(|r| query.matches(r)).collect()
        } else {
            Vec::new()
        };
        let mut found = DayHits { partition: None, hits: Vec::new(), count: 0, late };
        let dir = partition::day_dir(&self.root, day);
        let partition = match (self.open.get(&day), kept) {
            (Some(p), _) => DayPartition::Writing(p),
            // A sealed day never changes: a long-lived reader keeps it open.
            (None, Some(kept)) if sealed => match kept.get(day, &dir, keys)? {
                Some(p) => DayPartition::Kept(p),
                None => return Ok(found),
            },
            (None, _) => {
                // A sealed day's summary may prove that it holds no match; an open day has none.
                if sealed && !keys.is_empty() {
                    let kinds: Vec<Kind> = keys.iter().map(|&(kind, _)| kind).collect();
                    let summary = Summary::read_kinds(&dir, &kinds);
                    if keys.iter().any(|&(kind, key)| !summary.may_contain(kind, key)) {
                        return Ok(found);
                    }
                }
                DayPartition::Opened(Box::new(Partition::open(&dir, day)?))
            }
        };
        let (hits, count) = day_matches(&partition, query, wanted)?;
        found.hits = hits;
        found.count = count;
        found.partition = Some(partition);
        Ok(found)
    }

    /// Runs `f` on the partition of `day`: the open one, or one opened for reading only.
    fn with_partition<T>(
        &self,
        day: Date,
        f: impl FnOnce(&Partition) -> Result<T, ArchiveError>,
    ) -> Result<T, ArchiveError> {
        match self.open.get(&day) {
            Some(p) => f(p),
            None => f(&Partition::open(&partition::day_dir(&self.root, day), day)?),
        }
    }

    /// Per-day document counts and time ranges, and the number of duplicated event ids.
    pub fn stats(&self) -> Result<ArchiveStats, ArchiveError> {
        let mut stats = ArchiveStats { days: Vec::new(), total_documents: 0, duplicate_event_ids: 0 };
        for day in self.days.iter().copied() {
            let (day_stats, duplicates) = self.with_partition(day, |p| day_stats(p, true))?;
            stats.total_documents += day_stats.documents;
            stats.duplicate_event_ids += duplicates;
            stats.days.push(day_stats);
        }
        Ok(stats)
    }

    /// Removes whole days older than `keep_days` before `today` (a UTC date) that no hold
    /// covers, and returns them; see [`Archive::purge`].
    pub fn purge_expired(
        &mut self,
        today: Date,
        keep_days: u32,
        holds: &[LegalHold],
    ) -> Result<Vec<Date>, ArchiveError> {
        let now = Timestamp::now().max(
            jiff::tz::Offset::UTC.to_timestamp(today.to_datetime(jiff::civil::Time::midnight())).unwrap_or_default(),
        );
        Ok(self.purge_at(today, now, keep_days, holds, false)?.deleted.into_iter().map(|c| c.day).collect())
    }

    /// The retention purge at `now` (an injected clock): removes whole days whose records are
    /// all more than `keep_days` days old (a day `d` goes once `d + keep_days < today`), unless
    /// a legal hold covers them, and writes a deletion certificate for each (day, record count,
    /// manifest hash), signed when the archive has a key. With `dry_run`, deletes nothing and
    /// writes nothing: the report says what would go.
    pub fn purge(
        &mut self,
        now: Timestamp,
        keep_days: u32,
        holds: &[LegalHold],
        dry_run: bool,
    ) -> Result<PurgeReport, ArchiveError> {
        self.purge_at(utc_day(now), now, keep_days, holds, dry_run)
    }

    fn purge_at(
        &mut self,
        today: Date,
        now: Timestamp,
        keep_days: u32,
        holds: &[LegalHold],
        dry_run: bool,
    ) -> Result<PurgeReport, ArchiveError> {
        let cutoff = today
            .checked_sub(jiff::Span::new().days(i64::from(keep_days)))
            .map_err(|e| ArchiveError::InvalidQuery(format!("retention of {keep_days} days before {today}: {e}")))?;
        let expired: Vec<Date> = self.days.range(..cutoff).copied().collect();
        let mut report = PurgeReport::default();
        for day in expired {
            if let Some(hold) = holds.iter().find(|h| h.covers(day)) {
                tracing::info!(day = %day, hold = %hold.reference, "expired archive day kept under legal hold");
                report.held.push((day, hold.reference.clone()));
                continue;
            }
            let dir = partition::day_dir(&self.root, day);
            let record_count = self.with_partition(day, |p| day_stats(p, false))?.0.documents;
            let late = self.late_records(day)?.len() as u64;
            let manifest = integrity::read_manifest_unverified(&dir);
            let certificate = DeletionCertificate {
                day,
                record_count: record_count + late,
                manifest_sha256: manifest.as_ref().map(|(_, h)| h.clone()),
                previous: manifest.and_then(|(m, _)| m.previous),
                deleted_at: now,
                reason: format!("retention: {keep_days} days (L34-1 CPCE, decree 2021-1362)"),
            };
            if dry_run {
                report.deleted.push(certificate);
                continue;
            }
            // The certificate first: a crash after it leaves a day that the next purge deletes
            // (and certifies again); never a deleted day without a certificate.
            match &self.key {
                Some(key) => integrity::write_certificate(&self.root, &certificate, key)?,
                None => {
                    tracing::warn!(day = %day, "no archive signing key: the deletion certificate cannot be written");
                    return Err(ArchiveError::BadKey {
                        path: self.root.clone(),
                        reason: "the purge needs the signing key to certify deletions; set [retention] signing_key"
                            .into(),
                    });
                }
            }
            if let Some(mut p) = self.open.remove(&day) {
                // Its pending records are expired too: nothing to commit before deleting.
                p.close_writer()?;
            }
            self.touched.remove(&day);
            let doomed = self.root.join(format!("{PURGING_PREFIX}{day}"));
            // Renaming first makes the removal all-or-nothing from the archive's point of view:
            // a crash mid-way leaves a `.purging-` directory that the next open finishes.
            std::fs::rename(&dir, &doomed).map_err(ArchiveError::io(&dir))?;
            partition::sync_dir(&self.root)?;
            std::fs::remove_dir_all(&doomed).map_err(ArchiveError::io(&doomed))?;
            let late_file = self.root.join(LATE_DIR).join(format!("{day}.jsonl"));
            if late_file.exists() {
                std::fs::remove_file(&late_file).map_err(ArchiveError::io(&late_file))?;
            }
            self.days.remove(&day);
            self.sealed.remove(&day);
            tracing::warn!(
                day = %day,
                records = certificate.record_count,
                manifest_sha256 = certificate.manifest_sha256.as_deref().unwrap_or("none (day never sealed)"),
                keep_days,
                "expired archive day deleted; deletion certificate written"
            );
            report.deleted.push(certificate);
        }
        Ok(report)
    }

    /// Seals every unsealed day whose end is more than `grace` before `now` (an injected
    /// clock): commits it, merges it into one segment, writes its manifest (SHA-256 of each
    /// file, record count, first and last timestamps, the previous manifest's hash) signed
    /// with the archive key, and moves the chain head to it. Days are sealed oldest first.
    /// Returns the new links.
    pub fn close_days(&mut self, now: Timestamp, grace: jiff::SignedDuration) -> Result<Vec<ChainLink>, ArchiveError> {
        let Some(key) = self.key.clone() else {
            return Err(ArchiveError::BadKey {
                path: self.root.clone(),
                reason: "sealing days needs the signing key; set [retention] signing_key".into(),
            });
        };
        let closable: Vec<Date> = self
            .days
            .iter()
            .filter(|d| !self.sealed.contains(d))
            .filter(|d| {
                let end = d.tomorrow().ok().and_then(|t| {
                    jiff::tz::Offset::UTC.to_timestamp(t.to_datetime(jiff::civil::Time::midnight())).ok()
                });
                end.is_some_and(|end| end + grace <= now)
            })
            .copied()
            .collect();
        let mut links = Vec::new();
        for day in closable {
            let dir = partition::day_dir(&self.root, day);
            let mut partition = match self.open.remove(&day) {
                Some(p) => p,
                None => Partition::open(&dir, day)?,
            };
            self.touched.remove(&day);
            partition.compact()?;
            let (stats, _) = day_stats(&partition, false)?;
            // The summary before the manifest, so that the manifest covers it.
            let f = &partition.fields;
            let summarized =
                [(Kind::SourceIp, f.source_ip), (Kind::UserName, f.user_name), (Kind::SchoolUai, f.school_uai)];
            summary::write(&dir, &partition.searcher(), summarized)?;
            drop(partition);
            let files = integrity::hash_files(&dir)?;
            let previous = integrity::read_head_unverified(&self.root)?;
            let manifest =
                integrity::new_manifest(day, stats.documents, (stats.first, stats.last), files, previous, now);
            let link = integrity::seal(&dir, &manifest, &key)?;
            integrity::write_head(&self.root, &link, &key)?;
            self.sealed.insert(day);
            tracing::info!(day = %day, records = stats.documents, manifest_sha256 = %link.manifest_sha256, "archive day sealed");
            links.push(link);
        }
        Ok(links)
    }

    /// The legal holds in force.
    pub fn legal_holds(&self) -> Result<Vec<LegalHold>, ArchiveError> {
        let path = self.root.join(HOLDS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| ArchiveError::Corrupt { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(ArchiveError::Io { path, source: e }),
        }
    }

    /// Replaces the legal holds in force (see `Requisitions`, which audits every change).
    pub(crate) fn set_legal_holds(&self, holds: &[LegalHold]) -> Result<(), ArchiveError> {
        let mut text = serde_json::to_string_pretty(holds).expect("holds serialize");
        text.push('\n');
        partition::write_durably(&self.root.join(HOLDS_FILE), text.as_bytes())
    }
}

/// The query of `query` in one day. The time range is left out when it covers the whole day:
/// every record of a day partition is of that day.
fn build_query(partition: &Partition, query: &ArchiveQuery) -> Box<dyn Query> {
    let fields = &partition.fields;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let midnight = |d: Date| jiff::tz::Offset::UTC.to_timestamp(d.to_datetime(jiff::civil::Time::midnight())).ok();
    let day_start = midnight(partition.day);
    let day_end = partition.day.tomorrow().ok().and_then(midnight);
    let whole_day = day_start.is_some_and(|s| query.from <= s) && day_end.is_some_and(|e| e <= query.to);
    if !whole_day {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(fields.timestamp_ns, schema::timestamp_ns(query.from))),
                Bound::Excluded(Term::from_field_i64(fields.timestamp_ns, schema::timestamp_ns(query.to))),
            )),
        ));
    }
    let term =
        |t: Term| -> (Occur, Box<dyn Query>) { (Occur::Must, Box::new(TermQuery::new(t, IndexRecordOption::Basic))) };
    if let Some(ip) = query.source_ip {
        clauses.push(term(Term::from_field_ip_addr(fields.source_ip, schema::to_v6(ip))));
    }
    if let Some(net) = &query.source_network {
        let (lo, hi) = net_range(net);
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_ip_addr(fields.source_ip, lo)),
                Bound::Included(Term::from_field_ip_addr(fields.source_ip, hi)),
            )),
        ));
    }
    if let Some(port) = query.source_port {
        clauses.push(term(Term::from_field_u64(fields.source_port, u64::from(port))));
    }
    if let Some(user) = &query.user_name {
        clauses.push(term(Term::from_field_text(fields.user_name, user)));
    }
    if let Some(school) = &query.school_uai {
        clauses.push(term(Term::from_field_text(fields.school_uai, school)));
    }
    if clauses.is_empty() {
        return Box::new(AllQuery);
    }
    Box::new(BooleanQuery::new(clauses))
}

/// The columns of one segment that hold values format version 3 does not store (older days
/// store them, and lack some of these columns).
#[derive(Clone)]
struct FastColumns {
    source_ip: SourceIp,
    source_port: Option<tantivy::columnar::Column<u64>>,
}

/// Where the records of a search get their client address.
#[derive(Clone)]
enum SourceIp {
    /// An exact-address query: every match has the query's address.
    Known(Ipv6Addr),
    /// The segment's column (`None` in a day that stores the address instead).
    Column(Option<tantivy::columnar::Column<Ipv6Addr>>),
}

impl FastColumns {
    /// The columns of `segment`; the address column only when `known_ip` does not give the
    /// address (it comes from the partition's cache: opening it is costly).
    fn open(
        partition: &Partition,
        segment: &tantivy::SegmentReader,
        known_ip: Option<Ipv6Addr>,
    ) -> Result<FastColumns, ArchiveError> {
        Ok(FastColumns {
            source_ip: match known_ip {
                Some(ip) => SourceIp::Known(ip),
                None => SourceIp::Column(partition.ip_column(segment)?),
            },
            source_port: partition::fast_column(segment, schema::SOURCE_PORT, &partition.dir)?,
        })
    }

    fn values(&self, doc: tantivy::DocId, timestamp_ns: Option<i64>) -> schema::FastValues {
        schema::FastValues {
            timestamp_ns,
            source_ip: match &self.source_ip {
                SourceIp::Known(ip) => Some(*ip),
                SourceIp::Column(column) => column.as_ref().and_then(|c| c.first(doc)),
            },
            source_port: self.source_port.as_ref().and_then(|c| c.first(doc)),
        }
    }
}

/// The keys a day's summary must hold for the day to hold a match of `query`.
fn summary_keys(query: &ArchiveQuery) -> Vec<(Kind, u64)> {
    // Any field will do to build the term: only its value bytes are hashed.
    let field = tantivy::schema::Field::from_field_id(0);
    let mut keys = Vec::new();
    if let Some(ip) = query.source_ip {
        keys.push((Kind::SourceIp, summary::key(Kind::SourceIp, &Term::from_field_ip_addr(field, schema::to_v6(ip)))));
    }
    if let Some(user) = &query.user_name {
        keys.push((Kind::UserName, summary::key(Kind::UserName, &Term::from_field_text(field, user))));
    }
    if let Some(school) = &query.school_uai {
        keys.push((Kind::SchoolUai, summary::key(Kind::SchoolUai, &Term::from_field_text(field, school))));
    }
    keys
}

/// The partition a search reads in one day.
enum DayPartition<'a> {
    /// Held by the archive's writer.
    Writing(&'a Partition),
    /// Opened for this search.
    Opened(Box<Partition>),
    /// Kept open by a long-lived reader.
    Kept(Arc<Partition>),
}

impl std::ops::Deref for DayPartition<'_> {
    type Target = Partition;

    fn deref(&self) -> &Partition {
        match self {
            DayPartition::Writing(p) => p,
            DayPartition::Opened(p) => p,
            DayPartition::Kept(p) => p,
        }
    }
}

/// A match in one day: its time (from the column) and its address.
type Hit = (Option<i64>, DocAddress);

/// What the first pass of a search found in one day.
struct DayHits<'a> {
    /// `None` when the day's summary excluded it.
    partition: Option<DayPartition<'a>>,
    /// The earliest matches, earliest first.
    hits: Vec<Hit>,
    /// How many documents match in the day.
    count: u64,
    /// The day's late records that match.
    late: Vec<ConnectionRecord>,
}

impl DayHits<'_> {
    /// The day's `take` earliest matching records, its late records included. `known_ip` is
    /// the address every match has, when the query names one.
    fn records(&self, take: usize, known_ip: Option<Ipv6Addr>) -> Result<Vec<ConnectionRecord>, ArchiveError> {
        let n = self.hits.len().min(take);
        let mut out = match &self.partition {
            Some(partition) => read_records(partition, &self.hits[..n], known_ip)?,
            None => Vec::new(),
        };
        if !self.late.is_empty() {
            out.extend(self.late.iter().cloned());
            out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then_with(|| a.event_id.cmp(&b.event_id)));
            out.truncate(take);
        }
        Ok(out)
    }
}

/// Sealed days kept open between the searches of a long-lived reader (the requisition desk),
/// with their summaries: a sealed day never changes. A day is opened again when its manifest is
/// no longer the same file (purged, then created and sealed again), and forgotten as soon as a
/// search no longer finds it in the archive (purged): a purged day is never searched.
#[derive(Debug, Default)]
pub(crate) struct OpenDays {
    days: Mutex<HashMap<Date, KeptDay>>,
}

#[derive(Debug, Clone)]
struct KeptDay {
    manifest: ManifestIdentity,
    summary: Arc<Summary>,
    /// Opened on the first search the summary does not exclude.
    partition: Option<Arc<Partition>>,
}

/// What tells a manifest file from another: a purged and re-sealed day has a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ManifestIdentity {
    modified: Option<std::time::SystemTime>,
    len: u64,
}

impl ManifestIdentity {
    fn of(dir: &Path) -> Result<ManifestIdentity, ArchiveError> {
        let path = dir.join(integrity::MANIFEST_FILE);
        let meta = std::fs::metadata(&path).map_err(ArchiveError::io(&path))?;
        Ok(ManifestIdentity { modified: meta.modified().ok(), len: meta.len() })
    }
}

impl OpenDays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Date, KeptDay>> {
        // A search that panicked left whole entries or none: the map is still consistent.
        self.days.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the days no longer in the archive.
    fn forget_all_but(&self, present: &BTreeSet<Date>) {
        self.lock().retain(|day, _| present.contains(day));
    }

    /// The sealed day in `dir`, opened once; `None` when its summary proves it holds none of
    /// `keys`.
    fn get(&self, day: Date, dir: &Path, keys: &[(Kind, u64)]) -> Result<Option<Arc<Partition>>, ArchiveError> {
        let identity = ManifestIdentity::of(dir)?;
        let known = self.lock().get(&day).filter(|k| k.manifest == identity).cloned();
        let mut kept = match known {
            Some(kept) => kept,
            None => KeptDay { manifest: identity, summary: Arc::new(Summary::read(dir)), partition: None },
        };
        if keys.iter().any(|&(kind, key)| !kept.summary.may_contain(kind, key)) {
            self.lock().insert(day, kept);
            return Ok(None);
        }
        let partition = match &kept.partition {
            Some(p) => Arc::clone(p),
            None => {
                let p = Arc::new(Partition::open(dir, day)?);
                kept.partition = Some(Arc::clone(&p));
                p
            }
        };
        self.lock().insert(day, kept);
        Ok(Some(partition))
    }
}

/// The fewest threads a search of many days uses, whatever the number of cores. A search of a
/// year whose files are not in memory mostly waits on the disk: each day is a few small random
/// reads (summary, term dictionary, postings, time column, docstore blocks), and one thread
/// waits on one read at a time; eight keep several reads in flight. On 2 cores, a cold search of
/// 40 days at 100M records a year took 0.16 s with 2 threads and 0.09 s with 8 (16 and 32: no
/// better); a warm one, 0.02-0.03 s either way.
const SEARCH_IO_THREADS: usize = 8;

/// How many threads a search of `days` days uses: every core and at least
/// [`SEARCH_IO_THREADS`], at most one a day.
fn search_threads(days: usize) -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get).max(SEARCH_IO_THREADS).min(days).max(1)
}

/// `f` of every item, on [`search_threads`] threads (the calling one included), in the items'
/// order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = search_threads(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, f(item)));
        }
        done
    };
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for helper in helpers {
            all.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        all
    });
    results.sort_unstable_by_key(|&(i, _)| i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The earliest `limit` matches of `query` in one day (time and address, no document read)
/// and how many documents match in all.
fn day_matches(partition: &Partition, query: &ArchiveQuery, limit: usize) -> Result<(Vec<Hit>, u64), ArchiveError> {
    let searcher = partition.searcher();
    let q = build_query(partition, query);
    let err = ArchiveError::tantivy(&partition.dir);
    if limit == 0 {
        return Ok((Vec::new(), searcher.search(q.as_ref(), &tantivy::collector::Count).map_err(err)? as u64));
    }
    searcher.search(q.as_ref(), &Earliest { limit }).map_err(err)
}

/// A collector of the `limit` earliest matches (by the time column, then address) and of the
/// number of matches. Tantivy's `TopDocs` reserves room for `limit` hits in every segment of
/// every day: for a page of thousands over a year of days, that memory (fresh, zeroed pages)
/// cost more than the search itself, when a day holds a few matches of one address.
struct Earliest {
    limit: usize,
}

struct SegmentEarliest {
    segment: tantivy::SegmentOrdinal,
    times: tantivy::columnar::Column<i64>,
    limit: usize,
    hits: Vec<Hit>,
    count: u64,
}

/// Keeps the `limit` earliest of `hits`, in no particular order.
fn keep_earliest(hits: &mut Vec<Hit>, limit: usize) {
    if hits.len() > limit {
        hits.select_nth_unstable(limit);
        hits.truncate(limit);
    }
}

impl tantivy::collector::Collector for Earliest {
    type Fruit = (Vec<Hit>, u64);
    type Child = SegmentEarliest;

    fn for_segment(
        &self,
        segment: tantivy::SegmentOrdinal,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<SegmentEarliest> {
        let times = reader.fast_fields().i64(TIMESTAMP_NS)?;
        Ok(SegmentEarliest { segment, times, limit: self.limit, hits: Vec::new(), count: 0 })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<(Vec<Hit>, u64)>) -> tantivy::Result<(Vec<Hit>, u64)> {
        let count = fruits.iter().map(|(_, count)| count).sum();
        let mut hits: Vec<Hit> = fruits.into_iter().flat_map(|(hits, _)| hits).collect();
        keep_earliest(&mut hits, self.limit);
        hits.sort_unstable();
        Ok((hits, count))
    }
}

impl tantivy::collector::SegmentCollector for SegmentEarliest {
    type Fruit = (Vec<Hit>, u64);

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        self.count += 1;
        self.hits.push((self.times.first(doc), DocAddress::new(self.segment, doc)));
        // Bounded by twice the page: amortised linear, whatever the number of matches.
        if self.hits.len() >= self.limit.saturating_mul(2).max(64) {
            keep_earliest(&mut self.hits, self.limit);
        }
    }

    fn harvest(mut self) -> (Vec<Hit>, u64) {
        keep_earliest(&mut self.hits, self.limit);
        (self.hits, self.count)
    }
}

/// The records at `hits` in one day; `known_ip`, when the query names the address, is every
/// match's address.
fn read_records(
    partition: &Partition,
    hits: &[Hit],
    known_ip: Option<Ipv6Addr>,
) -> Result<Vec<ConnectionRecord>, ArchiveError> {
    let fields = &partition.fields;
    let searcher = partition.searcher();
    let mut out = Vec::with_capacity(hits.len());
    // The columns of the segments hits are in, opened once per segment.
    let mut columns: Vec<Option<FastColumns>> = vec![None; searcher.segment_readers().len()];
    for &(timestamp_ns, address) in hits {
        let doc: TantivyDocument = searcher.doc(address).map_err(ArchiveError::tantivy(&partition.dir))?;
        let slot = &mut columns[address.segment_ord as usize];
        if slot.is_none() {
            *slot = Some(FastColumns::open(partition, searcher.segment_reader(address.segment_ord), known_ip)?);
        }
        let fast = slot.as_ref().expect("opened above").values(address.doc_id, timestamp_ns);
        out.push(fields.record_of(&doc, fast, &partition.dir)?);
    }
    Ok(out)
}

/// The statistics of one day (from the live documents' time column: no document is
/// decompressed) and, with `duplicates`, its count of event ids held by more than one live
/// document (from the event id's postings).
fn day_stats(partition: &Partition, duplicates: bool) -> Result<(DayStats, u64), ArchiveError> {
    let searcher = partition.searcher();
    let dir = &partition.dir;
    let tantivy_err = |e| ArchiveError::tantivy(dir)(e);
    let io_err = |e| ArchiveError::io(dir)(e);
    let mut documents = 0;
    let mut range: Option<(i64, i64)> = None;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut duplicated = 0;
    for segment in searcher.segment_readers() {
        let timestamps = segment.fast_fields().i64(TIMESTAMP_NS).map_err(tantivy_err)?;
        for doc in segment.doc_ids_alive() {
            documents += 1;
            if let Some(t) = timestamps.first(doc) {
                range = Some(range.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
            }
        }
        if !duplicates {
            continue;
        }
        let inverted = segment.inverted_index(partition.fields.event_id).map_err(tantivy_err)?;
        let mut terms = inverted.terms().stream().map_err(io_err)?;
        while terms.advance() {
            let mut postings =
                inverted.read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic).map_err(io_err)?;
            let mut doc = postings.doc();
            while doc != tantivy::TERMINATED {
                if segment.alive_bitset().is_none_or(|alive| alive.is_alive(doc)) && !seen.insert(terms.key().to_vec())
                {
                    duplicated += 1;
                }
                doc = postings.advance();
            }
        }
    }
    let ts = |ns: i64| Timestamp::from_nanosecond(i128::from(ns)).ok();
    Ok((
        DayStats {
            day: partition.day,
            documents,
            first: range.and_then(|(a, _)| ts(a)),
            last: range.and_then(|(_, b)| ts(b)),
        },
        duplicated,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::{FORMAT_VERSION, day_dir};

    pub(crate) fn rec(id: &str, at: &str, ip: &str, port: u16, user: Option<&str>) -> ConnectionRecord {
        ConnectionRecord {
            event_id: id.into(),
            timestamp: at.parse().unwrap(),
            utc_offset_seconds: Some(7200),
            dataset: "apache.access".into(),
            source_ip: Some(ip.parse().unwrap()),
            source_port: Some(port),
            destination_ip: Some("203.0.113.5".parse().unwrap()),
            destination_port: Some(443),
            protocol: Some("HTTP/1.1".into()),
            operation: "consultation".into(),
            user_name: user.map(str::to_owned),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
            status: Some(200),
            duration_ns: Some(1_500_000),
            school_uai: Some("0690001A".into()),
            observer: Some("web1".into()),
            user_category: None,
            content_id: None,
            session_duration_s: None,
            recipients: Vec::new(),
        }
    }

    fn query(from: &str, to: &str) -> ArchiveQuery {
        ArchiveQuery { from: from.parse().unwrap(), to: to.parse().unwrap(), limit: 1000, ..ArchiveQuery::default() }
    }

    fn ids(records: &[ConnectionRecord]) -> Vec<&str> {
        records.iter().map(|r| r.event_id.as_str()).collect()
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    const ALL: (&str, &str) = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z");

    #[test]
    fn re_appending_an_id_replaces_it_and_never_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        let first = [
            rec("web:1", "2025-04-07T08:00:00Z", "192.0.2.1", 40001, Some("alice")),
            rec("web:2", "2025-04-07T08:00:01Z", "192.0.2.2", 40002, Some("bob")),
            rec("web:3", "2025-04-07T08:00:02Z", "192.0.2.3", 40003, None),
        ];
        let report = archive.append_report(&first).unwrap();
        assert_eq!(report, AppendReport { appended: 3, replaced: 0 });
        // The same id twice before a commit (a replay racing the original).
        let report = archive.append_report(&first[..1]).unwrap();
        assert_eq!(report, AppendReport { appended: 1, replaced: 1 });
        archive.commit().unwrap();

        // A replay after a restart: same ids, one of them re-parsed differently.
        drop(archive);
        let mut archive = Archive::open(dir.path()).unwrap();
        let mut replay = first.clone();
        replay[1].status = Some(302);
        let report = archive.append_report(&replay).unwrap();
        assert_eq!(report, AppendReport { appended: 3, replaced: 3 });
        archive.commit().unwrap();

        let stats = archive.stats().unwrap();
        assert_eq!((stats.total_documents, stats.duplicate_event_ids), (3, 0));
        let found = archive.search(&query(ALL.0, ALL.1)).unwrap();
        assert_eq!(found, replay);
    }

    #[test]
    fn records_are_partitioned_by_utc_day_across_midnight() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        let records = [
            rec("a", "2025-04-06T23:59:59.900Z", "192.0.2.1", 1, None),
            // 01:30 in Paris (UTC+2) is still the 6th in UTC.
            rec("b", "2025-04-07T01:30:00+02:00", "192.0.2.1", 2, None),
            rec("c", "2025-04-07T00:00:00Z", "192.0.2.1", 3, None),
            rec("d", "2025-04-07T00:00:00.100Z", "192.0.2.1", 4, None),
        ];
        archive.append(&records).unwrap();
        archive.commit().unwrap();

        assert_eq!(archive.days().collect::<Vec<_>>(), [date("2025-04-06"), date("2025-04-07")]);
        assert!(day_dir(dir.path(), date("2025-04-06")).join("partition.json").is_file());
        let stats = archive.stats().unwrap();
        let summary: Vec<_> = stats.days.iter().map(|d| (d.day, d.documents, d.first, d.last)).collect();
        let ts = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        assert_eq!(
            summary,
            [
                (date("2025-04-06"), 2, ts("2025-04-06T23:30:00Z"), ts("2025-04-06T23:59:59.9Z")),
                (date("2025-04-07"), 2, ts("2025-04-07T00:00:00Z"), ts("2025-04-07T00:00:00.1Z")),
            ]
        );
        let across = archive.search(&query("2025-04-06T23:59:00Z", "2025-04-07T00:00:00.050Z")).unwrap();
        assert_eq!(ids(&across), ["a", "c"]);
        let meta = std::fs::read_to_string(day_dir(dir.path(), date("2025-04-07")).join("partition.json")).unwrap();
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(meta["format_version"], FORMAT_VERSION);
        assert_eq!(meta["day"], "2025-04-07");
        assert_eq!(meta["first"], "2025-04-07T00:00:00Z");
        assert_eq!(meta["last"], "2025-04-07T00:00:00.1Z");
    }

    #[test]
    fn search_filters_by_ip_port_user_and_half_open_time_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive
            .append(&[
                rec("1", "2025-04-07T10:00:00Z", "192.0.2.7", 50000, Some("alice")),
                rec("2", "2025-04-07T10:00:05Z", "192.0.2.7", 50001, Some("bob")),
                rec("3", "2025-04-07T10:00:10Z", "192.0.2.8", 50000, Some("alice")),
                rec("4", "2025-04-07T10:00:15Z", "2001:db8::7", 50000, Some("carol")),
                rec("5", "2025-04-08T09:00:00Z", "192.0.2.7", 50000, Some("alice")),
            ])
            .unwrap();
        archive.commit().unwrap();
        let q = |f: &dyn Fn(&mut ArchiveQuery)| {
            let mut q = query(ALL.0, ALL.1);
            f(&mut q);
            ids(&archive.search(&q).unwrap()).into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(q(&|q| q.source_ip = Some("192.0.2.7".parse().unwrap())), ["1", "2", "5"]);
        assert_eq!(
            q(&|q| {
                q.source_ip = Some("192.0.2.7".parse().unwrap());
                q.source_port = Some(50000);
            }),
            ["1", "5"]
        );
        assert_eq!(q(&|q| q.source_ip = Some("2001:db8::7".parse().unwrap())), ["4"]);
        assert_eq!(q(&|q| q.user_name = Some("alice".into())), ["1", "3", "5"]);
        assert_eq!(q(&|q| q.user_name = Some("Alice".into())), Vec::<String>::new());
        assert_eq!(q(&|q| q.limit = 2), ["1", "2"]);
        // [from, to): the start is included, the end is not.
        assert_eq!(
            q(&|q| {
                q.from = "2025-04-07T10:00:05Z".parse().unwrap();
                q.to = "2025-04-07T10:00:15Z".parse().unwrap();
            }),
            ["2", "3"]
        );
        assert_eq!(q(&|q| q.to = q.from), Vec::<String>::new());
        assert_eq!(q(&|q| q.limit = 0), Vec::<String>::new());
        let found = archive.search(&query("2025-04-07T10:00:15Z", "2025-04-07T10:00:16Z")).unwrap();
        assert_eq!(found, [rec("4", "2025-04-07T10:00:15Z", "2001:db8::7", 50000, Some("carol"))]);
    }

    #[test]
    fn every_kind_of_query_reads_the_records_back_as_appended() {
        // An exact-address query gives the address of its matches; the others read it from
        // the day's column. Both must give back what was appended.
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        let records = [
            rec("1", "2025-04-07T10:00:00Z", "192.0.2.7", 50000, Some("alice")),
            rec("2", "2025-04-07T11:00:00Z", "2001:db8::7", 443, Some("bob")),
            rec("3", "2025-04-08T09:00:00Z", "198.51.100.9", 61000, Some("carol")),
        ];
        archive.append(&records).unwrap();
        archive.commit().unwrap();
        for record in &records {
            let ip = record.source_ip.unwrap();
            let network = IpNet::new(ip, if ip.is_ipv4() { 24 } else { 64 }).unwrap().trunc();
            let queries = [
                ArchiveQuery { source_ip: Some(ip), ..query(ALL.0, ALL.1) },
                ArchiveQuery { source_network: Some(network), ..query(ALL.0, ALL.1) },
                ArchiveQuery { user_name: record.user_name.clone(), ..query(ALL.0, ALL.1) },
            ];
            for q in &queries {
                assert_eq!(archive.search(q).unwrap(), std::slice::from_ref(record), "{q:?}");
            }
        }
    }

    #[test]
    fn a_day_with_more_matches_than_the_page_gives_its_earliest_in_order() {
        // 300 matches in three segments, appended out of time order; pages of 25.
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        let second = |i: u64| (i * 7919) % 300;
        for part in 0..3u64 {
            let batch: Vec<ConnectionRecord> = (part * 100..(part + 1) * 100)
                .map(|i| {
                    let s = second(i);
                    let at = format!("2025-04-07T10:{:02}:{:02}Z", s / 60, s % 60);
                    rec(&format!("{s:03}"), &at, "192.0.2.7", 50000, Some("alice"))
                })
                .collect();
            archive.append(&batch).unwrap();
            archive.commit().unwrap();
        }
        let expected: Vec<String> = (0..300).map(|s| format!("{s:03}")).collect();
        for (offset, limit) in [(0, 25), (25, 25), (290, 25), (0, 300), (0, 1)] {
            let q =
                ArchiveQuery { source_ip: Some("192.0.2.7".parse().unwrap()), offset, limit, ..query(ALL.0, ALL.1) };
            let (found, total) = archive.search_and_count(&q).unwrap();
            assert_eq!(total, 300);
            let end = (offset + limit).min(300);
            assert_eq!(ids(&found), expected[offset..end].iter().map(String::as_str).collect::<Vec<_>>());
        }
    }

    #[test]
    fn search_opens_only_the_days_of_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive
            .append(&[
                rec("1", "2025-04-07T10:00:00Z", "192.0.2.7", 1, None),
                rec("2", "2025-04-09T10:00:00Z", "192.0.2.7", 1, None),
            ])
            .unwrap();
        archive.commit().unwrap();
        archive.commit().unwrap(); // closes both idle writers
        // Break the 9th: a search that needed it would fail.
        std::fs::remove_file(day_dir(dir.path(), date("2025-04-09")).join("index/meta.json")).unwrap();
        let found = archive.search(&query("2025-04-07T00:00:00Z", "2025-04-09T00:00:00Z")).unwrap();
        assert_eq!(ids(&found), ["1"]);
        assert!(archive.search(&query("2025-04-07T00:00:00Z", "2025-04-09T00:00:00.001Z")).is_err());
    }

    #[test]
    fn uncommitted_records_are_not_visible_and_do_not_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive.append(&[rec("1", "2025-04-07T10:00:00Z", "192.0.2.7", 1, None)]).unwrap();
        assert!(archive.search(&query(ALL.0, ALL.1)).unwrap().is_empty());
        drop(archive); // a crash before commit
        let archive = Archive::open(dir.path()).unwrap();
        assert_eq!(archive.stats().unwrap().total_documents, 0);
    }

    #[test]
    fn purge_removes_expired_days_unless_a_hold_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive.set_key(ArchiveKey::from_seed([3; 32]));
        let days = ["2024-04-05", "2024-04-06", "2024-04-07", "2025-04-07"];
        let records: Vec<_> = days.iter().map(|d| rec(d, &format!("{d}T23:59:00Z"), "192.0.2.1", 1, None)).collect();
        archive.append(&records).unwrap();
        archive.commit().unwrap();
        let today = date("2025-04-07");
        let hold =
            LegalHold { reference: "PV 2025/123 OPJ Lyon".into(), from: date("2024-04-06"), to: date("2024-04-06") };

        let removed = archive.purge_expired(today, 365, std::slice::from_ref(&hold)).unwrap();
        assert_eq!(removed, [date("2024-04-05")]);
        assert!(!day_dir(dir.path(), date("2024-04-05")).exists());
        assert!(day_dir(dir.path(), date("2024-04-06")).exists());

        // The hold is lifted: the 6th goes; the 7th is exactly 365 days old and stays.
        let removed = archive.purge_expired(today, 365, &[]).unwrap();
        assert_eq!(removed, [date("2024-04-06")]);
        let kept: Vec<_> = Archive::open(dir.path()).unwrap().days().collect();
        assert_eq!(kept, [date("2024-04-07"), date("2025-04-07")]);
        assert_eq!(ids(&archive.search(&query(ALL.0, ALL.1)).unwrap()), ["2024-04-07", "2025-04-07"]);
        assert!(archive.purge_expired(today, 365, &[]).unwrap().is_empty());
    }

    #[test]
    fn purge_without_a_key_deletes_nothing_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive.append(&[rec("old", "2024-01-01T12:00:00Z", "192.0.2.1", 1, None)]).unwrap();
        archive.commit().unwrap();
        let err = archive.purge_expired(date("2025-04-07"), 365, &[]).unwrap_err().to_string();
        assert!(err.contains("signing_key"), "{err}");
        assert_eq!(archive.days().count(), 1);
    }

    #[test]
    fn purge_closes_a_day_still_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive.set_key(ArchiveKey::from_seed([3; 32]));
        archive.append(&[rec("old", "2024-01-01T12:00:00Z", "192.0.2.1", 1, None)]).unwrap();
        assert!(archive.has_open_writers());
        let removed = archive.purge_expired(date("2025-04-07"), 365, &[]).unwrap();
        assert_eq!(removed, [date("2024-01-01")]);
        assert!(!archive.has_open_writers());
        archive.commit().unwrap();
        assert_eq!(archive.stats().unwrap().total_documents, 0);
        let left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, ["certificates"], "only the deletion certificate is left");
    }

    #[test]
    fn a_day_of_a_newer_format_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive.append(&[rec("1", "2025-04-07T10:00:00Z", "192.0.2.7", 1, None)]).unwrap();
        archive.commit().unwrap();
        drop(archive);
        let meta = day_dir(dir.path(), date("2025-04-07")).join("partition.json");
        let newer = FORMAT_VERSION + 1;
        std::fs::write(&meta, format!(r#"{{"format_version": {newer}, "whatever": "changed"}}"#)).unwrap();
        let err = Archive::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooNew { found, supported: FORMAT_VERSION, .. } if found == newer),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("2025-04-07") && message.contains("newer vigie"), "{message}");
        // A reader, which opens no day up front, refuses it as soon as it reads it.
        let reader = Archive::open_read_only(dir.path()).unwrap();
        assert!(matches!(reader.search(&query(ALL.0, ALL.1)), Err(ArchiveError::TooNew { .. })));
        assert!(matches!(reader.stats(), Err(ArchiveError::TooNew { .. })));
    }

    #[test]
    fn pages_over_many_days_cut_the_full_result_in_order_and_count_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive.set_key(ArchiveKey::from_seed([3; 32]));
        // 20 days, the address on three records of each but every fourth day, at varied hours.
        let mut records = Vec::new();
        for day in 1..=20 {
            for (n, hour) in [(1, 17), (2, 3), (3, 9)] {
                let ip = if day % 4 == 0 { "192.0.2.99" } else { "192.0.2.7" };
                let at = format!("2025-03-{day:02}T{hour:02}:00:00Z");
                records.push(rec(&format!("d{day}r{n}"), &at, ip, n, None));
            }
        }
        archive.append(&records).unwrap();
        archive.commit().unwrap();
        // Sealed (summaries written) up to the 15th; the last days stay open.
        archive.close_days("2025-03-16T03:00:00Z".parse().unwrap(), jiff::SignedDuration::from_hours(2)).unwrap();
        let mut q = query("2025-03-01T06:00:00Z", "2025-03-20T12:00:00Z");
        q.source_ip = Some("192.0.2.7".parse().unwrap());
        let mut expected: Vec<_> = records
            .iter()
            .filter(|r| r.source_ip == q.source_ip && q.from <= r.timestamp && r.timestamp < q.to)
            .cloned()
            .collect();
        expected.sort_by_key(|r| r.timestamp);
        // The 1st's 03:00 is before the window; the 4th, 8th, 12th, 16th and 20th have another
        // address.
        assert_eq!(expected.len(), 44);
        let (all, total) = archive.search_and_count(&q).unwrap();
        assert_eq!((all, total), (expected.clone(), 44));
        for size in [1, 7, 44, 50] {
            let mut paged = Vec::new();
            for page in 0..=44 / size {
                let p = ArchiveQuery { offset: page * size, limit: size, ..q.clone() };
                let (found, total) = archive.search_and_count(&p).unwrap();
                assert_eq!(total, 44);
                assert_eq!(archive.search(&p).unwrap(), found, "search and search_and_count agree");
                paged.extend(found);
            }
            assert_eq!(paged, expected, "pages of {size}");
        }
        assert_eq!(archive.count(&q).unwrap(), 44);
    }

    #[test]
    fn interrupted_creations_and_purges_are_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".tmp-2025-04-07/index")).unwrap();
        std::fs::create_dir_all(dir.path().join(".purging-2024-01-01/index")).unwrap();
        std::fs::create_dir_all(dir.path().join("lost+found")).unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        assert_eq!(archive.days().count(), 0);
        let mut left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["lost+found"]);
    }

    #[test]
    fn writers_are_bounded_and_closed_when_their_day_goes_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        // A replay spanning five days in one batch.
        let records: Vec<_> =
            (1..=5).map(|d| rec(&format!("r{d}"), &format!("2025-04-0{d}T12:00:00Z"), "192.0.2.1", 1, None)).collect();
        archive.append(&records).unwrap();
        assert!(archive.open.len() <= MAX_OPEN_WRITERS);
        archive.commit().unwrap();
        assert_eq!(archive.stats().unwrap().total_documents, 5);
        assert!(archive.has_open_writers(), "days written since the last commit stay open");
        archive.commit().unwrap();
        assert!(!archive.has_open_writers(), "quiet days release their writers");
        // A late record reopens its day.
        archive.append(&[rec("late", "2025-04-01T13:00:00Z", "192.0.2.1", 1, None)]).unwrap();
        archive.commit().unwrap();
        assert_eq!(archive.stats().unwrap().days[0].documents, 2);
    }

    #[test]
    fn an_injected_commit_failure_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive.append(&[rec("1", "2025-04-07T10:00:00Z", "192.0.2.7", 1, None)]).unwrap();
        archive.fail_next_commit();
        assert!(matches!(archive.commit(), Err(ArchiveError::InjectedFailure)));
        assert_eq!(archive.stats().unwrap().total_documents, 0);
        archive.commit().unwrap();
        assert_eq!(archive.stats().unwrap().total_documents, 1);
    }
}
