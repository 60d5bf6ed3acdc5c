//! The series store: every scraped and probed sample, at full resolution for the recent past and
//! as 5-minute rollups (min, max, average) for the long run, persisted across restarts.
//!
//! # Layout
//!
//! In memory, each series keeps only its *head*: the compressed samples not yet sealed (at most
//! [`StoreConfig::chunk_samples`]), the current 5-minute bucket, and its key. Everything else is
//! in one SQLite file (`series.sqlite`): sealed chunks of raw samples (kept
//! [`StoreConfig::raw_retention`], 48 h by default) and finished rollups (kept
//! [`StoreConfig::rollup_retention`], 13 months by default, for the monthly reports).
//!
//! SQLite rather than home-made append-only files: `bench/metrics.sh` and the criterion bench
//! measure it; one transaction per flush (every few seconds) writes a whole batch of chunks, so
//! the per-sample cost is an in-memory append, and the format version is SQLite's `user_version`
//! like every other Vigie database.
//!
//! # Durability
//!
//! [`SeriesStore::flush`] writes the heads as they are (a partial chunk replaced at the next
//! flush) and the current buckets; what arrived since the last flush is lost on a crash — a few
//! seconds of metrics, which the next scrape replaces. Timestamps are milliseconds since the
//! Unix epoch; a sample not newer than its series' last one is dropped and counted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::chunk::{Encoder, decode};

/// Width of a rollup bucket.
pub const ROLLUP_MS: i64 = 5 * 60 * 1000;

const MIGRATIONS: &[&str] = &["
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        UNIQUE (name, labels)
    );
    CREATE TABLE chunks (
        series_id INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (series_id, start_ms)
    ) WITHOUT ROWID;
    CREATE INDEX chunks_end ON chunks (end_ms);
    CREATE TABLE rollups (
        series_id INTEGER NOT NULL,
        bucket_ms INTEGER NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        sum REAL NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (series_id, bucket_ms)
    ) WITHOUT ROWID;
    CREATE INDEX rollups_bucket ON rollups (bucket_ms);
"];

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error(transparent)]
    State(#[from] collector::StateError),
    #[error("series store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metrics task failed: {0}")]
    Task(String),
    #[error("series store: corrupt labels of series {id}: {source}")]
    Labels { id: i64, source: serde_json::Error },
}

/// How long data is kept and how it is cut.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Raw samples are kept this long (48 h).
    pub raw_retention: Duration,
    /// 5-minute rollups are kept this long (13 months: 396 days).
    pub rollup_retention: Duration,
    /// Samples per sealed chunk.
    pub chunk_samples: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            raw_retention: Duration::from_secs(48 * 3600),
            rollup_retention: Duration::from_secs(396 * 86_400),
            chunk_samples: 120,
        }
    }
}

/// Label names and values, sorted by name. The metric name is separate.
pub type Labels = Vec<(String, String)>;

/// One series' identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SeriesKey {
    pub name: String,
    pub labels: Labels,
}

impl SeriesKey {
    /// A key with its labels sorted (the canonical form).
    pub fn new(name: impl Into<String>, mut labels: Labels) -> Self {
        labels.sort();
        SeriesKey { name: name.into(), labels }
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether every `(name, value)` of `matchers` is one of this series' labels.
    pub fn matches(&self, matchers: &[(String, String)]) -> bool {
        matchers.iter().all(|(k, v)| self.label(k) == Some(v.as_str()))
    }
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub v: f64,
}

/// One 5-minute bucket of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rollup {
    /// Start of the bucket, milliseconds since the Unix epoch (a multiple of [`ROLLUP_MS`]).
    pub t: i64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub count: u32,
}

/// The value of a series at an instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstantValue {
    pub series: SeriesKey,
    pub point: Point,
}

/// Raw samples of one series over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeSeries {
    pub series: SeriesKey,
    pub points: Vec<Point>,
}

/// Rollups of one series over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollupSeries {
    pub series: SeriesKey,
    pub rollups: Vec<Rollup>,
}

/// Counters of what the store did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    pub series: usize,
    pub samples_appended: u64,
    /// Samples not newer than their series' last one (or NaN timestamps), dropped.
    pub samples_out_of_order: u64,
    /// Bytes held in memory by heads, keys and index (an estimate from capacities).
    pub memory_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: i64,
    min: f64,
    max: f64,
    sum: f64,
    count: u32,
}

impl Bucket {
    fn new(start: i64, v: f64) -> Self {
        Bucket { start, min: v, max: v, sum: v, count: 1 }
    }

    fn add(&mut self, v: f64) {
        // NaN (a target reporting "no value") must not poison min/max; it is not counted.
        if v.is_nan() {
            return;
        }
        if self.count == 0 || self.min.is_nan() {
            *self = Bucket::new(self.start, v);
            return;
        }
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v;
        self.count += 1;
    }

    fn rollup(&self) -> Rollup {
        let avg = if self.count == 0 { f64::NAN } else { self.sum / f64::from(self.count) };
        Rollup { t: self.start, min: self.min, max: self.max, avg, count: self.count }
    }
}

#[derive(Debug)]
struct Series {
    key: Arc<SeriesKey>,
    /// Row id in SQLite, once written.
    id: Option<i64>,
    head: Encoder,
    /// Sealed chunks not yet written: (start, end, samples, bytes).
    sealed: Vec<(i64, i64, u32, Vec<u8>)>,
    bucket: Option<Bucket>,
    /// Finished buckets not yet written.
    finished: Vec<Bucket>,
    last_t: Option<i64>,
    dirty: bool,
}

#[derive(Debug)]
struct Inner {
    conn: Option<rusqlite::Connection>,
    index: HashMap<Arc<SeriesKey>, usize>,
    series: Vec<Series>,
    config: StoreConfig,
    stats: StoreStats,
}

/// The store. Cheap to clone: clones share the same data.
///
/// Methods are synchronous and may touch SQLite: call them from `spawn_blocking` in async code.
#[derive(Debug, Clone)]
pub struct SeriesStore {
    inner: Arc<Mutex<Inner>>,
}

impl SeriesStore {
    /// Opens (or creates) the store in `path`, loading the series index and the current buckets.
    pub fn open(path: &Path, config: StoreConfig) -> Result<SeriesStore, SeriesError> {
        let conn = collector::open_sqlite(path, MIGRATIONS)?;
        // Metrics are re-scraped every few seconds: a power cut may lose the last flush, never
        // corrupt the file (WAL), and NORMAL spares an fsync per flush.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let mut inner =
            Inner { conn: None, index: HashMap::new(), series: Vec::new(), config, stats: StoreStats::default() };
        {
            let mut stmt = conn.prepare("SELECT id, name, labels FROM series ORDER BY id")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
            let mut last_bucket = conn.prepare(
                "SELECT bucket_ms, min, max, sum, count FROM rollups WHERE series_id = ?1 ORDER BY bucket_ms DESC LIMIT 1",
            )?;
            let mut last_chunk = conn.prepare("SELECT max(end_ms) FROM chunks WHERE series_id = ?1")?;
            for row in rows {
                let (id, name, labels) = row?;
                let labels: Labels =
                    serde_json::from_str(&labels).map_err(|source| SeriesError::Labels { id, source })?;
                let key = Arc::new(SeriesKey::new(name, labels));
                let bucket = last_bucket
                    .query_row([id], |r| {
                        Ok(Bucket {
                            start: r.get(0)?,
                            min: r.get(1)?,
                            max: r.get(2)?,
                            sum: r.get(3)?,
                            count: r.get::<_, u32>(4)?,
                        })
                    })
                    .optional()?;
                let last_t: Option<i64> = last_chunk.query_row([id], |r| r.get(0))?;
                inner.index.insert(key.clone(), inner.series.len());
                inner.series.push(Series {
                    key,
                    id: Some(id),
                    head: Encoder::new(),
                    sealed: Vec::new(),
                    bucket,
                    finished: Vec::new(),
                    last_t,
                    dirty: false,
                });
            }
        }
        inner.conn = Some(conn);
        tracing::info!(path = %path.display(), series = inner.series.len(), "series store opened");
        Ok(SeriesStore { inner: Arc::new(Mutex::new(inner)) })
    }

    /// A store that keeps nothing on disk: heads and sealed chunks stay in memory until
    /// dropped (tests, benchmarks, `vigie scrape`). Rollups and sealed chunks are kept in memory.
    pub fn in_memory(config: StoreConfig) -> SeriesStore {
        let conn = rusqlite::Connection::open_in_memory()
            .and_then(|c| c.execute_batch(MIGRATIONS[0]).map(|()| c))
            .expect("an in-memory SQLite database with the series schema");
        let inner =
            Inner { conn: Some(conn), index: HashMap::new(), series: Vec::new(), config, stats: StoreStats::default() };
        SeriesStore { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one sample. Returns false when it was dropped (not newer than the series' last).
    pub fn append(&self, name: &str, labels: &[(String, String)], t: i64, v: f64) -> bool {
        let mut inner = self.lock();
        inner.append(name, labels, t, v)
    }

    /// Appends a scrape's or a probe's samples, each at its own timestamp or at `t`, with the
    /// `extra` labels (such as `target`) added unless the sample already has them.
    pub fn append_samples(&self, samples: &[collector::Sample], t: i64, extra: &[(String, String)]) -> usize {
        let mut inner = self.lock();
        let mut appended = 0;
        let mut labels: Vec<(String, String)> = Vec::new();
        for s in samples {
            labels.clear();
            labels.extend(s.labels.iter().cloned());
            for (k, v) in extra {
                if !labels.iter().any(|(name, _)| name == k) {
                    labels.push((k.clone(), v.clone()));
                }
            }
            if inner.append(&s.name, &labels, s.timestamp_ms.unwrap_or(t), s.value) {
                appended += 1;
            }
        }
        appended
    }

    /// Writes every head, sealed chunk and bucket to disk in one transaction.
    pub fn flush(&self) -> Result<(), SeriesError> {
        let mut inner = self.lock();
        inner.flush()
    }

    /// Flushes, then deletes raw chunks and rollups older than their retention at `now_ms`.
    pub fn compact(&self, now_ms: i64) -> Result<(usize, usize), SeriesError> {
        let mut inner = self.lock();
        inner.flush()?;
        let raw_cut = now_ms - inner.config.raw_retention.as_millis() as i64;
        let rollup_cut = now_ms - inner.config.rollup_retention.as_millis() as i64;
        for s in &mut inner.series {
            if s.bucket.is_some_and(|b| b.start < rollup_cut - ROLLUP_MS) {
                s.bucket = None;
            }
        }
        let conn = inner.conn.as_mut().expect("open store has a connection");
        let chunks = conn.execute("DELETE FROM chunks WHERE end_ms < ?1", [raw_cut])?;
        let rollups = conn.execute("DELETE FROM rollups WHERE bucket_ms < ?1", [rollup_cut - ROLLUP_MS])?;
        Ok((chunks, rollups))
    }

    /// What the store holds and did.
    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        let mut stats = inner.stats;
        stats.series = inner.series.len();
        stats.memory_bytes = inner.memory_bytes();
        stats
    }

    /// The keys of the series named `name` whose labels include `matchers`.
    pub fn series(&self, name: &str, matchers: &[(String, String)]) -> Vec<SeriesKey> {
        let inner = self.lock();
        inner.matching(name, matchers).map(|i| (*inner.series[i].key).clone()).collect()
    }

    /// Every metric name in the store, sorted.
    pub fn names(&self) -> Vec<String> {
        let inner = self.lock();
        let mut names: Vec<String> = inner.series.iter().map(|s| s.key.name.clone()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The latest sample at or before `at` of each matching series, if not older than `lookback`
    /// (Prometheus's instant-query semantics, with its default 5-minute lookback).
    pub fn instant(
        &self,
        name: &str,
        matchers: &[(String, String)],
        at: i64,
        lookback: Duration,
    ) -> Result<Vec<InstantValue>, SeriesError> {
        let from = at - lookback.as_millis() as i64;
        Ok(self
            .range(name, matchers, from, at)?
            .into_iter()
            .filter_map(|r| Some(InstantValue { point: *r.points.last()?, series: r.series }))
            .collect())
    }

    /// The raw samples in `[from, to]` (milliseconds) of each matching series that has any.
    /// Raw samples go back [`StoreConfig::raw_retention`]; use [`SeriesStore::rollups`] beyond.
    pub fn range(
        &self,
        name: &str,
        matchers: &[(String, String)],
        from: i64,
        to: i64,
    ) -> Result<Vec<RangeSeries>, SeriesError> {
        let inner = self.lock();
        let conn = inner.conn.as_ref().expect("open store has a connection");
        let mut stmt = conn.prepare_cached(
            "SELECT start_ms, data FROM chunks WHERE series_id = ?1 AND end_ms >= ?2 AND start_ms <= ?3 ORDER BY start_ms",
        )?;
        let mut out = Vec::new();
        for i in inner.matching(name, matchers) {
            let s = &inner.series[i];
            let mut in_memory: Vec<(i64, &[u8])> = s.sealed.iter().map(|(st, _, _, b)| (*st, b.as_slice())).collect();
            if !s.head.is_empty() {
                in_memory.push((s.head.first_t(), s.head.bytes()));
            }
            let mut points = Vec::new();
            if let Some(id) = s.id {
                let rows =
                    stmt.query_map(params![id, from, to], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
                for row in rows {
                    let (start, data) = row?;
                    // The head and unwritten chunks are newer than what is on disk for them.
                    if in_memory.iter().any(|(st, _)| *st == start) {
                        continue;
                    }
                    points.extend(decode(&data).into_iter().filter(|(t, _)| (from..=to).contains(t)).map(to_point));
                }
            }
            for (_, bytes) in in_memory {
                points.extend(decode(bytes).into_iter().filter(|(t, _)| (from..=to).contains(t)).map(to_point));
            }
            points.sort_by_key(|p| p.t);
            points.dedup_by_key(|p| p.t);
            if !points.is_empty() {
                out.push(RangeSeries { series: (*s.key).clone(), points });
            }
        }
        Ok(out)
    }

    /// The 5-minute rollups whose bucket starts in `[from, to]` of each matching series; the
    /// current (unfinished) bucket is included.
    pub fn rollups(
        &self,
        name: &str,
        matchers: &[(String, String)],
        from: i64,
        to: i64,
    ) -> Result<Vec<RollupSeries>, SeriesError> {
        let inner = self.lock();
        let conn = inner.conn.as_ref().expect("open store has a connection");
        let mut stmt = conn.prepare_cached(
            "SELECT bucket_ms, min, max, sum, count FROM rollups WHERE series_id = ?1 AND bucket_ms BETWEEN ?2 AND ?3 ORDER BY bucket_ms",
        )?;
        let mut out = Vec::new();
        for i in inner.matching(name, matchers) {
            let s = &inner.series[i];
            let mut buckets: Vec<Bucket> = Vec::new();
            if let Some(id) = s.id {
                let rows = stmt.query_map(params![id, from, to], |r| {
                    Ok(Bucket { start: r.get(0)?, min: r.get(1)?, max: r.get(2)?, sum: r.get(3)?, count: r.get(4)? })
                })?;
                for row in rows {
                    buckets.push(row?);
                }
            }
            for b in s.finished.iter().chain(s.bucket.iter()) {
                if (from..=to).contains(&b.start) {
                    buckets.retain(|x| x.start != b.start);
                    buckets.push(*b);
                }
            }
            buckets.sort_by_key(|b| b.start);
            if !buckets.is_empty() {
                out.push(RollupSeries {
                    series: (*s.key).clone(),
                    rollups: buckets.iter().map(Bucket::rollup).collect(),
                });
            }
        }
        Ok(out)
    }
}

fn to_point((t, v): (i64, f64)) -> Point {
    Point { t, v }
}

impl Inner {
    fn matching<'a>(&'a self, name: &'a str, matchers: &'a [(String, String)]) -> impl Iterator<Item = usize> + 'a {
        self.series
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.key.name == name && s.key.matches(matchers))
            .map(|(i, _)| i)
    }

    fn append(&mut self, name: &str, labels: &[(String, String)], t: i64, v: f64) -> bool {
        let key = SeriesKey::new(name, labels.to_vec());
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let key = Arc::new(key);
                self.index.insert(key.clone(), self.series.len());
                self.series.push(Series {
                    key,
                    id: None,
                    head: Encoder::new(),
                    sealed: Vec::new(),
                    bucket: None,
                    finished: Vec::new(),
                    last_t: None,
                    dirty: false,
                });
                self.series.len() - 1
            }
        };
        let chunk_samples = self.config.chunk_samples.max(2);
        let s = &mut self.series[i];
        if s.last_t.is_some_and(|last| t <= last) {
            self.stats.samples_out_of_order += 1;
            return false;
        }
        s.last_t = Some(t);
        s.head.push(t, v);
        s.dirty = true;
        if s.head.len() >= chunk_samples {
            let (start, end, n) = (s.head.first_t(), s.head.last_t(), s.head.len());
            s.sealed.push((start, end, n, s.head.take()));
        }
        let bucket_start = t.div_euclid(ROLLUP_MS) * ROLLUP_MS;
        match &mut s.bucket {
            Some(b) if b.start == bucket_start => b.add(v),
            slot => {
                if let Some(done) = slot.take() {
                    s.finished.push(done);
                }
                let mut b = Bucket { start: bucket_start, min: f64::NAN, max: f64::NAN, sum: 0.0, count: 0 };
                b.add(v);
                *slot = Some(b);
            }
        }
        self.stats.samples_appended += 1;
        true
    }

    fn flush(&mut self) -> Result<(), SeriesError> {
        let Inner { conn, series, .. } = self;
        let conn = conn.as_mut().expect("open store has a connection");
        let tx = conn.transaction()?;
        let mut new_ids = Vec::new();
        {
            let mut insert_series = tx.prepare_cached("INSERT INTO series (name, labels) VALUES (?1, ?2)")?;
            let mut put_chunk = tx.prepare_cached(
                "INSERT OR REPLACE INTO chunks (series_id, start_ms, end_ms, samples, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut put_bucket = tx.prepare_cached(
                "INSERT OR REPLACE INTO rollups (series_id, bucket_ms, min, max, sum, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (i, s) in series.iter().enumerate().filter(|(_, s)| s.dirty) {
                let id = match s.id {
                    Some(id) => id,
                    None => {
                        let labels = serde_json::to_string(&s.key.labels).expect("labels serialise");
                        insert_series.execute(params![s.key.name, labels])?;
                        let id = tx.last_insert_rowid();
                        new_ids.push((i, id));
                        id
                    }
                };
                for (start, end, n, bytes) in &s.sealed {
                    put_chunk.execute(params![id, start, end, n, bytes])?;
                }
                if !s.head.is_empty() {
                    put_chunk.execute(params![id, s.head.first_t(), s.head.last_t(), s.head.len(), s.head.bytes()])?;
                }
                for b in s.finished.iter().chain(s.bucket.iter()) {
                    put_bucket.execute(params![id, b.start, b.min, b.max, b.sum, b.count])?;
                }
            }
        }
        tx.commit()?;
        // Only once committed: a failed transaction leaves everything to retry.
        for (i, id) in new_ids {
            series[i].id = Some(id);
        }
        for s in series.iter_mut().filter(|s| s.dirty) {
            s.sealed.clear();
            s.sealed.shrink_to_fit();
            s.finished.clear();
            s.finished.shrink_to_fit();
            s.dirty = false;
        }
        Ok(())
    }

    fn memory_bytes(&self) -> usize {
        let per_key = |k: &SeriesKey| {
            std::mem::size_of::<SeriesKey>()
                + k.name.capacity()
                + k.labels.capacity() * std::mem::size_of::<(String, String)>()
                + k.labels.iter().map(|(a, b)| a.capacity() + b.capacity()).sum::<usize>()
        };
        self.series
            .iter()
            .map(|s| {
                std::mem::size_of::<Series>()
                    + per_key(&s.key)
                    + s.head.heap_bytes()
                    + s.sealed.iter().map(|c| c.3.capacity() + 32).sum::<usize>()
                    + s.finished.capacity() * std::mem::size_of::<Bucket>()
                    // The index entry: an Arc pointer and a position, plus hash-table overhead.
                    + 3 * std::mem::size_of::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
