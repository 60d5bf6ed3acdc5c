//! One day of the archive: a directory holding a Tantivy index and a small metadata file.
//!
//! Layout of `<archive>/<YYYY-MM-DD>/`: `partition.json` (format version, day, first and last
//! timestamps ever appended) and `index/` (Tantivy). A day is created in `.tmp-<day>` and
//! renamed into place, so a directory named after a day is always complete.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use tantivy::columnar::{Column, HasAssociatedColumnType};
use tantivy::directory::{Advice, MmapDirectory};
use tantivy::index::SegmentId;
use tantivy::indexer::IndexWriterOptions;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, SegmentReader, TERMINATED, Term};

use crate::error::ArchiveError;
use crate::record::ConnectionRecord;
use crate::schema::{self, Fields};

/// The on-disk format this code writes. Bump it with any schema or layout change, and add
/// a `tests/compat/vN` archive for the new version.
pub const FORMAT_VERSION: u32 = 3;
const META_FILE: &str = "partition.json";
const INDEX_DIR: &str = "index";
pub(crate) const TMP_PREFIX: &str = ".tmp-";
pub(crate) const PURGING_PREFIX: &str = ".purging-";

/// Tantivy's indexing arena per open day. Its minimum is 15 MB; a little more keeps segments
/// from being flushed too small at ENT traffic rates.
const WRITER_MEMORY_BYTES: usize = 32_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartitionMeta {
    pub(crate) format_version: u32,
    pub(crate) day: Date,
    /// The earliest and latest timestamps ever appended. Written *before* each Tantivy commit,
    /// so the range always covers what is committed (it may be wider after a failed commit).
    pub(crate) first: Option<Timestamp>,
    pub(crate) last: Option<Timestamp>,
}

/// Only the version, read first: a newer format may have changed everything else.
#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

/// An open day partition, with a writer while it receives records.
pub(crate) struct Partition {
    pub(crate) day: Date,
    pub(crate) dir: PathBuf,
    index: Index,
    pub(crate) fields: Fields,
    pub(crate) meta: PartitionMeta,
    reader: IndexReader,
    writer: Option<IndexWriter>,
    /// Ids appended since the last commit, to count replacements inside one commit window.
    pending_ids: HashSet<String>,
    pending_range: Option<(Timestamp, Timestamp)>,
    /// The client-address column of each segment, opened once: opening it decodes the column's
    /// value space, which costs more than reading a day's matches. A segment never changes.
    ip_columns: Mutex<HashMap<SegmentId, Option<Column<Ipv6Addr>>>>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("day", &self.day)
            .field("dir", &self.dir)
            .field("writing", &self.writer.is_some())
            .field("pending", &self.pending_ids.len())
            .finish()
    }
}

pub(crate) fn day_dir(root: &Path, day: Date) -> PathBuf {
    root.join(day.to_string())
}

/// The partition day of an instant: its UTC date.
pub(crate) fn utc_day(t: Timestamp) -> Date {
    jiff::tz::Offset::UTC.to_datetime(t).date()
}

/// How many decompressed document-store blocks (64 KiB each) a day keeps in memory. A search
/// reads a day's matches in time order, which is mostly the documents' order: matches that
/// share a block come one after the other, and one block kept decompresses it once. Tantivy's
/// default (100 blocks a segment) kept every block a year-long search decompressed (a dozen a
/// day over 365 days; in the requisition desk, which keeps the days open, more with every
/// search): hundreds of MB of fresh memory to fault in and zero.
const DOCSTORE_CACHE_BLOCKS: usize = 1;

impl Partition {
    /// Creates the directory of `day` under `root` (atomically, through a temporary name).
    pub(crate) fn create(root: &Path, day: Date) -> Result<Partition, ArchiveError> {
        let tmp = root.join(format!("{TMP_PREFIX}{day}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(ArchiveError::io(&tmp))?;
        }
        let index_dir = tmp.join(INDEX_DIR);
        std::fs::create_dir_all(&index_dir).map_err(ArchiveError::io(&index_dir))?;
        let meta = PartitionMeta { format_version: FORMAT_VERSION, day, first: None, last: None };
        write_meta(&tmp, &meta)?;
        let index = Index::builder()
            .schema(schema::schema())
            .settings(schema::index_settings())
            .create_in_dir(&index_dir)
            .map_err(ArchiveError::tantivy(&tmp))?;
        drop(index);
        sync_dir(&index_dir)?;
        sync_dir(&tmp)?;
        let dir = day_dir(root, day);
        std::fs::rename(&tmp, &dir).map_err(ArchiveError::io(&dir))?;
        sync_dir(root)?;
        tracing::info!(day = %day, dir = %dir.display(), "archive day created");
        Partition::open(&dir, day)
    }

    /// Opens an existing day directory, refusing a format newer than this code's.
    pub(crate) fn open(dir: &Path, day: Date) -> Result<Partition, ArchiveError> {
        let meta = check_meta(dir, day)?;
        // A search reads a few blocks here and there in a day (one address's postings, a dozen
        // document-store blocks): without this hint the kernel's read-around on every page fault
        // pulled nearly the whole day from disk on a cold search.
        let directory = MmapDirectory::open_with_madvice(dir.join(INDEX_DIR), Advice::Random)
            .map_err(|e| ArchiveError::tantivy(dir)(e.into()))?;
        let index = Index::open(directory).map_err(ArchiveError::tantivy(dir))?;
        let fields = Fields::resolve(&index.schema(), dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(DOCSTORE_CACHE_BLOCKS)
            .try_into()
            .map_err(ArchiveError::tantivy(dir))?;
        Ok(Partition {
            day,
            dir: dir.to_owned(),
            index,
            fields,
            meta,
            reader,
            writer: None,
            pending_ids: HashSet::new(),
            pending_range: None,
            ip_columns: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn is_writing(&self) -> bool {
        self.writer.is_some()
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.pending_range.is_some()
    }

    /// Adds `records` (all of this day), replacing any document with the same event id.
    /// Returns how many records replaced one already there.
    pub(crate) fn append(&mut self, records: &[&ConnectionRecord]) -> Result<u64, ArchiveError> {
        if self.writer.is_none() {
            self.writer = Some(self.new_writer()?);
        }
        let searcher = self.reader.searcher();
        // A day with no committed document (a new day) cannot hold any id yet: no lookup.
        let committed_docs = searcher.num_docs() > 0;
        let mut replaced = 0;
        for record in records {
            let term = Term::from_field_text(self.fields.event_id, &record.event_id);
            let already_pending = !self.pending_ids.insert(record.event_id.clone());
            let writer = self.writer.as_mut().expect("opened above");
            if already_pending || (committed_docs && committed_contains(&searcher, &term, &self.dir)?) {
                replaced += 1;
                // Delete-then-add in one writer is ordered by opstamp: the delete removes every
                // earlier document with this id (committed or not), never the one added after
                // it. Only ids already there are deleted: a delete costs a lookup in every
                // segment at commit, and the reader (reloaded at each commit, and the only
                // writer holds the lock) sees every committed document.
                writer.delete_term(term);
            }
            writer.add_document(self.fields.document_of(record)).map_err(ArchiveError::tantivy(&self.dir))?;
            let t = record.timestamp;
            self.pending_range = Some(match self.pending_range {
                None => (t, t),
                Some((first, last)) => (first.min(t), last.max(t)),
            });
        }
        Ok(replaced)
    }

    /// Makes every appended record durable. The metadata is widened first, so that after a
    /// crash its range still covers what Tantivy committed.
    pub(crate) fn commit(&mut self) -> Result<(), ArchiveError> {
        let (Some((first, last)), Some(writer)) = (self.pending_range, self.writer.as_mut()) else {
            return Ok(());
        };
        let mut meta = self.meta.clone();
        meta.first = Some(meta.first.map_or(first, |f| f.min(first)));
        meta.last = Some(meta.last.map_or(last, |l| l.max(last)));
        if meta != self.meta {
            write_meta(&self.dir, &meta)?;
            self.meta = meta;
        }
        writer.commit().map_err(ArchiveError::tantivy(&self.dir))?;
        self.reader.reload().map_err(ArchiveError::tantivy(&self.dir))?;
        self.pending_ids.clear();
        self.pending_range = None;
        Ok(())
    }

    /// Releases the writer (its memory arena and its lock). Uncommitted records are lost, so
    /// callers commit first.
    pub(crate) fn close_writer(&mut self) -> Result<(), ArchiveError> {
        if let Some(writer) = self.writer.take() {
            writer.wait_merging_threads().map_err(ArchiveError::tantivy(&self.dir))?;
        }
        self.pending_ids.clear();
        self.pending_range = None;
        Ok(())
    }

    /// Prepares the day for sealing: commits, merges its segments into one, removes the files
    /// no longer used and releases the writer, so its files never change again.
    pub(crate) fn compact(&mut self) -> Result<(), ArchiveError> {
        self.commit()?;
        if self.writer.is_none() && self.is_compact()? {
            // One segment, no deleted document, no stray file: nothing to merge or collect,
            // and no writer (its threads and arena) to set up for nothing.
            sync_dir(&self.dir.join(INDEX_DIR))?;
            return Ok(());
        }
        let mut writer = match self.writer.take() {
            Some(w) => w,
            None => self.new_writer()?,
        };
        let segments = self.index.searchable_segment_ids().map_err(ArchiveError::tantivy(&self.dir))?;
        if segments.len() > 1 {
            writer.merge(&segments).wait().map_err(ArchiveError::tantivy(&self.dir))?;
        }
        writer.garbage_collect_files().wait().map_err(ArchiveError::tantivy(&self.dir))?;
        writer.wait_merging_threads().map_err(ArchiveError::tantivy(&self.dir))?;
        self.reader.reload().map_err(ArchiveError::tantivy(&self.dir))?;
        sync_dir(&self.dir.join(INDEX_DIR))?;
        self.pending_ids.clear();
        self.pending_range = None;
        Ok(())
    }

    /// A writer with one indexing thread and one merge thread: a day is small, and several
    /// days may be open at once.
    fn new_writer(&self) -> Result<IndexWriter, ArchiveError> {
        let options = IndexWriterOptions::builder()
            .memory_budget_per_thread(WRITER_MEMORY_BYTES)
            .num_worker_threads(1)
            .num_merge_threads(1)
            .build();
        self.index.writer_with_options(options).map_err(ArchiveError::tantivy(&self.dir))
    }

    /// Whether the index is already what [`Partition::compact`] makes: at most one segment,
    /// without deleted documents, and no file but those of its segments and Tantivy's own.
    fn is_compact(&self) -> Result<bool, ArchiveError> {
        let meta = self.index.load_metas().map_err(ArchiveError::tantivy(&self.dir))?;
        if meta.segments.len() > 1 || meta.segments.iter().any(|m| m.has_deletes()) {
            return Ok(false);
        }
        let used = meta.list_segment_files();
        let index_dir = self.dir.join(INDEX_DIR);
        for entry in std::fs::read_dir(&index_dir).map_err(ArchiveError::io(&index_dir))? {
            let name = PathBuf::from(entry.map_err(ArchiveError::io(&index_dir))?.file_name());
            let tantivy_own = name == Path::new("meta.json")
                || name == Path::new(".managed.json")
                || name.extension().is_some_and(|e| e == "lock");
            if !tantivy_own && !used.contains(&name) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether a committed, live document has this event id.
    pub(crate) fn contains_id(&self, id: &str) -> Result<bool, ArchiveError> {
        let term = Term::from_field_text(self.fields.event_id, id);
        committed_contains(&self.reader.searcher(), &term, &self.dir)
    }

    pub(crate) fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The client-address column of `segment` (one of this partition's), `None` in a day
    /// that has none (format version 1 stores the address instead).
    pub(crate) fn ip_column(&self, segment: &SegmentReader) -> Result<Option<Column<Ipv6Addr>>, ArchiveError> {
        let id = segment.segment_id();
        // A search that panicked left the map whole: it is still consistent.
        if let Some(column) = self.ip_columns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id) {
            return Ok(column.clone());
        }
        let column = fast_column(segment, schema::SOURCE_IP, &self.dir)?;
        let mut columns = self.ip_columns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Segments merged away are no longer searched: drop their columns.
        if columns.len() > 64 {
            let live: HashSet<SegmentId> =
                self.reader.searcher().segment_readers().iter().map(SegmentReader::segment_id).collect();
            columns.retain(|id, _| live.contains(id));
        }
        columns.insert(id, column.clone());
        Ok(column)
    }
}

/// The column `name` of `segment`, `None` when the field is not a fast field in that day's
/// schema (older formats) or has no value in the segment.
pub(crate) fn fast_column<T>(segment: &SegmentReader, name: &str, dir: &Path) -> Result<Option<Column<T>>, ArchiveError>
where
    T: HasAssociatedColumnType,
    tantivy::columnar::DynamicColumn: Into<Option<Column<T>>>,
{
    let schema = segment.schema();
    // Asking for a field that is not fast is an error, and version 1 has no such column.
    if !schema.get_field(name).is_ok_and(|f| schema.get_field_entry(f).is_fast()) {
        return Ok(None);
    }
    segment.fast_fields().column_opt(name).map_err(ArchiveError::tantivy(dir))
}

/// Whether a committed, not deleted document carries `term`.
fn committed_contains(searcher: &Searcher, term: &Term, dir: &Path) -> Result<bool, ArchiveError> {
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(term.field()).map_err(ArchiveError::tantivy(dir))?;
        let postings = inverted
            .read_postings(term, IndexRecordOption::Basic)
            .map_err(|e| ArchiveError::Io { path: dir.to_owned(), source: e })?;
        let Some(mut postings) = postings else { continue };
        let mut doc = postings.doc();
        while doc != TERMINATED {
            if segment.alive_bitset().is_none_or(|alive| alive.is_alive(doc)) {
                return Ok(true);
            }
            doc = postings.advance();
        }
    }
    Ok(false)
}

/// Reads the metadata of the day directory `dir`, refusing a format newer than this code's and
/// metadata that names another day. Cheap: opens no index.
pub(crate) fn check_meta(dir: &Path, day: Date) -> Result<PartitionMeta, ArchiveError> {
    let meta = read_meta(dir)?;
    if meta.day != day {
        return Err(ArchiveError::Corrupt {
            path: dir.to_owned(),
            reason: format!("its metadata names the day {} instead of {day}", meta.day),
        });
    }
    Ok(meta)
}

fn read_meta(dir: &Path) -> Result<PartitionMeta, ArchiveError> {
    let path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(ArchiveError::io(&path))?;
    let corrupt = |e: serde_json::Error| ArchiveError::Corrupt { path: path.clone(), reason: e.to_string() };
    let version: VersionOnly = serde_json::from_str(&text).map_err(corrupt)?;
    if version.format_version > FORMAT_VERSION {
        return Err(ArchiveError::TooNew {
            path: dir.to_owned(),
            found: version.format_version,
            supported: FORMAT_VERSION,
        });
    }
    serde_json::from_str(&text).map_err(corrupt)
}

/// Writes the metadata durably.
fn write_meta(dir: &Path, meta: &PartitionMeta) -> Result<(), ArchiveError> {
    let mut text = serde_json::to_string_pretty(meta).expect("metadata always serializes");
    text.push('\n');
    write_durably(&dir.join(META_FILE), text.as_bytes())
}

/// Writes a whole file durably: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut file = File::create(&tmp).map_err(ArchiveError::io(&tmp))?;
    file.write_all(bytes).map_err(ArchiveError::io(&tmp))?;
    file.sync_all().map_err(ArchiveError::io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(ArchiveError::io(path))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(ArchiveError::io(dir))
}
