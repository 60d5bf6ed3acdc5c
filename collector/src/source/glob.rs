//! Following every log file that matches a pattern (`/var/log/apache2/*access.log`), each with
//! its own position, discovering new files as they appear.
//!
//! Each matched path is followed by a [`FileSource`], which keeps handling rotation,
//! compression and truncation for that path. What this module adds is bookkeeping:
//!
//! - **One checkpoint for many files.** The checkpoint's identity is `glob-v1:` followed by a
//!   JSON map `path → {no, gen, identity, position}` (the file source's own checkpoint, plus
//!   the numbers below); its position counts the records read, only so that logs show progress.
//! - **Event ids.** Ids are `source:position`, so a record's position must be unique within
//!   the source and the same when it is replayed after a restart. It is
//!   `no << 52 | gen << 40 | offset`:
//!   - `offset`, 40 bits: the byte offset of the line in its file (files up to 1 TiB);
//!   - `gen`, 12 bits: how many times the path changed file (rotation, truncation), counted
//!     per path, so that offsets restarting at 0 in the new file do not repeat ids; it wraps
//!     after 4096 rotations (eleven years of daily rotations, well past the retention);
//!   - `no`, 12 bits: the number of the path, given in path order when it is first seen and
//!     kept in the map; freed numbers are reused only after the other 4095 (a new dated file
//!     every day takes eleven years to wrap). At most 4096 files are followed at once.
//!
//!   Both numbers are decided from what the map holds at the last checkpoint and from the
//!   files' own sequence, so a replay gives the same ids. One exception: two new paths
//!   discovered at different scans in the reverse of their name order, then replayed after a
//!   crash that lost both, are numbered in name order the second time.
//! - **Disappearing files** are read to their end (through the open descriptor), then dropped
//!   from the map once their path has been missing for a minute.
//!
//! The pattern should match live files only: a pattern matching `access.log.1` too would read
//! each rotated file again as a new file. The other side of it: a file renamed out of the
//! pattern before it was ever seen (or, after a crash, before a checkpoint naming it was
//! committed) is not read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::file::{FileSource, Identity};
use super::{Checkpoint, Source, SourceError};
use crate::pipe::RawRecord;

const OFFSET_BITS: u32 = 40;
const GEN_BITS: u32 = 12;
const NO_BITS: u32 = 12;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
/// How many files can be followed at once (and numbers handed out before one is reused).
const MAX_FILES: u64 = 1 << NO_BITS;
const IDENTITY_PREFIX: &str = "glob-v1:";
/// How long a path must have been missing before its file, read to its end, is dropped. A
/// rotation without `create` leaves the path missing until the server reopens its logs, and
/// until then the server may still write to the renamed file we hold open.
const GONE_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum GlobError {
    #[error(
        "source {source_id}: invalid file pattern {pattern:?}: {error}; use shell wildcards such as \
         /var/log/apache2/*access.log"
    )]
    Pattern { source_id: String, pattern: String, error: glob::PatternError },
}

/// The device and inode named by a file source's checkpoint identity, if it names a file.
fn file_of(identity: &str) -> Option<(u64, u64)> {
    Identity::decode(identity).filter(|i| *i != Identity::default()).map(|i| (i.dev, i.ino))
}

/// The position of a record: see the module documentation.
fn record_position(no: u64, generation: u64, offset: u64) -> u64 {
    (no << (GEN_BITS + OFFSET_BITS)) | ((generation & GEN_MASK) << OFFSET_BITS) | (offset & OFFSET_MASK)
}

/// What the checkpoint keeps about one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileState {
    no: u64,
    #[serde(rename = "gen")]
    generation: u64,
    /// Device and inode of the file the generation's records came from, and the offset after
    /// its last record: records from elsewhere, or from before, start a new generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<(u64, u64)>,
    #[serde(default)]
    end: u64,
    /// The file source's own checkpoint.
    identity: String,
    position: u64,
}

/// The whole checkpoint identity, after its prefix.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The next path number to hand out (modulo [`MAX_FILES`]).
    next: u64,
    files: BTreeMap<String, FileState>,
}

/// One followed path.
#[derive(Debug)]
struct Tracked {
    path: PathBuf,
    no: u64,
    generation: u64,
    /// The file (device, inode) the current generation's records came from, and the offset
    /// after its last record; `None` until the path yields its first record.
    file: Option<(u64, u64)>,
    end: u64,
    /// Since when the pattern no longer matches it: dropped once read to its end, after
    /// [`GONE_GRACE`].
    gone: Option<Instant>,
    source: FileSource,
}

/// Every file matching a pattern, followed.
#[derive(Debug)]
pub struct GlobSource {
    id: Arc<str>,
    pattern: String,
    start_at_end: bool,
    scan_every: Duration,
    next_scan: Option<Instant>,
    /// In order of path, which is also the order new numbers are handed out in.
    files: Vec<Tracked>,
    next_no: u64,
    /// Where the next read starts, so that a busy file does not starve the others.
    cursor: usize,
    records_read: u64,
}

impl GlobSource {
    /// Follows the files matching `pattern` (shell wildcards: `*`, `?`, `[abc]`, `**`).
    pub fn new(id: impl Into<Arc<str>>, pattern: impl Into<String>) -> Result<GlobSource, GlobError> {
        let id = id.into();
        let pattern = pattern.into();
        if let Err(error) = glob::Pattern::new(&pattern) {
            return Err(GlobError::Pattern { source_id: id.to_string(), pattern, error });
        }
        Ok(GlobSource {
            id,
            pattern,
            start_at_end: false,
            scan_every: Duration::from_secs(5),
            next_scan: None,
            files: Vec::new(),
            next_no: 0,
            cursor: 0,
            records_read: 0,
        })
    }

    /// Without a checkpoint, begin the files present at the first start at their end. Files
    /// that appear later are always read from their start: all of their content is new.
    pub fn start_at_end(mut self, yes: bool) -> Self {
        self.start_at_end = yes;
        self
    }

    /// How often to look for new files (5 seconds by default), checked at each read.
    pub fn scan_every(mut self, every: Duration) -> Self {
        self.scan_every = every;
        self
    }

    /// The files followed now, in path order.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|t| t.path.as_path()).collect()
    }

    fn matching(&self) -> Vec<PathBuf> {
        matching(&self.id, &self.pattern)
    }

    /// Starts following the matched paths not followed yet, and marks those gone.
    fn discover(&mut self, matched: Vec<PathBuf>, first_start: bool, now: Instant) -> Result<(), SourceError> {
        for tracked in &mut self.files {
            tracked.gone = if matched.contains(&tracked.path) { None } else { tracked.gone.or(Some(now)) };
        }
        for path in matched {
            if self.files.iter().any(|t| t.path == path) {
                continue;
            }
            let Some(no) = self.allocate() else {
                tracing::error!(source = %self.id, path = %path.display(), max = MAX_FILES,
                    "too many files matched; this one is not followed, narrow the pattern");
                continue;
            };
            tracing::info!(source = %self.id, path = %path.display(), no, "following a new file");
            let mut source =
                FileSource::new(self.id.clone(), path.clone()).start_at_end(first_start && self.start_at_end);
            source.resume(None)?;
            let tracked = Tracked { path, no, generation: 0, file: None, end: 0, gone: None, source };
            let at = self.files.partition_point(|t| t.path < tracked.path);
            self.files.insert(at, tracked);
        }
        Ok(())
    }

    /// The next free path number.
    fn allocate(&mut self) -> Option<u64> {
        for _ in 0..MAX_FILES {
            let no = self.next_no % MAX_FILES;
            self.next_no += 1;
            if !self.files.iter().any(|t| t.no == no) {
                return Some(no);
            }
        }
        None
    }

    async fn scan(&mut self, now: Instant) -> Result<(), SourceError> {
        let (id, pattern) = (self.id.clone(), self.pattern.clone());
        // Listing directories is blocking file-system work.
        let matched = tokio::task::spawn_blocking(move || matching(&id, &pattern))
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        self.discover(matched, false, now)
    }
}

/// The regular files matching `pattern`, sorted.
fn matching(id: &str, pattern: &str) -> Vec<PathBuf> {
    let Ok(paths) = glob::glob(pattern) else { return Vec::new() };
    let mut files: Vec<PathBuf> = paths
        .filter_map(|entry| match entry {
            Ok(path) => Some(path),
            Err(error) => {
                tracing::warn!(source = %id, path = %error.path().display(), error = %error.error(), "cannot list");
                None
            }
        })
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

impl Source for GlobSource {
    fn id(&self) -> &Arc<str> {
        &self.id
    }

    fn resume(&mut self, checkpoint: Option<&Checkpoint>) -> Result<(), SourceError> {
        let state = checkpoint.and_then(|cp| {
            let state = cp.identity.strip_prefix(IDENTITY_PREFIX).and_then(|json| serde_json::from_str::<State>(json).ok());
            if state.is_none() {
                tracing::warn!(source = %self.id, "checkpoint from another kind of source; reading the files from the start");
            }
            state
        });
        self.records_read = checkpoint.map_or(0, |cp| cp.position);
        if let Some(state) = state {
            self.next_no = state.next;
            for (path, file) in state.files {
                let path = PathBuf::from(path);
                let mut source = FileSource::new(self.id.clone(), path.clone());
                source.resume(Some(&Checkpoint { position: file.position, identity: file.identity.clone() }))?;
                self.files.push(Tracked {
                    path,
                    no: file.no,
                    generation: file.generation,
                    file: file.file,
                    end: file.end,
                    gone: None,
                    source,
                });
            }
            self.files.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let matched = self.matching();
        let now = Instant::now();
        self.discover(matched, checkpoint.is_none(), now)?;
        self.next_scan = Some(now + self.scan_every);
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        let now = Instant::now();
        if self.next_scan.is_none_or(|at| now >= at) {
            self.scan(now).await?;
            self.next_scan = Some(now + self.scan_every);
        }
        let count = self.files.len();
        let mut finished = Vec::new();
        let mut batch = Vec::new();
        for step in 0..count {
            let index = (self.cursor + step) % count;
            let tracked = &mut self.files[index];
            let records = tracked.source.read(max).await?.unwrap_or_default();
            let Some(first) = records.first() else {
                if tracked.gone.is_some_and(|since| now >= since + GONE_GRACE) && !tracked.path.exists() {
                    finished.push(index);
                }
                continue;
            };
            // A batch comes from one file: the one the file source stands on after it.
            let checkpoint = tracked.source.checkpoint();
            let file = file_of(&checkpoint.identity);
            if tracked.file.is_some() && (file != tracked.file || first.position < tracked.end) {
                // Another file under the path (or the same one rewritten): offsets start
                // again, so the generation changes to keep ids unique.
                tracked.generation += 1;
                tracing::debug!(source = %self.id, path = %tracked.path.display(), generation = tracked.generation,
                    "new file under the path");
            }
            tracked.file = file;
            tracked.end = checkpoint.position;
            let (no, generation) = (tracked.no, tracked.generation);
            let (id, path) = (&self.id, &tracked.path);
            batch = records
                .into_iter()
                .map(|mut record| {
                    if record.position > OFFSET_MASK {
                        tracing::error!(source = %id, path = %path.display(), offset = record.position,
                            "file larger than 1 TiB; event ids past this point may repeat");
                    }
                    record.position = record_position(no, generation, record.position);
                    record
                })
                .collect();
            self.cursor = index + 1;
            break;
        }
        for index in finished.into_iter().rev() {
            let tracked = self.files.remove(index);
            tracing::info!(source = %self.id, path = %tracked.path.display(), "file gone and read to its end; no longer followed");
        }
        self.records_read += batch.len() as u64;
        Ok(Some(batch))
    }

    fn checkpoint(&self) -> Checkpoint {
        let files = self
            .files
            .iter()
            .map(|t| {
                let checkpoint = t.source.checkpoint();
                let state = FileState {
                    no: t.no,
                    generation: t.generation,
                    file: t.file,
                    end: t.end,
                    identity: checkpoint.identity,
                    position: checkpoint.position,
                };
                (t.path.to_string_lossy().into_owned(), state)
            })
            .collect();
        let state = State { next: self.next_no, files };
        let json = serde_json::to_string(&state).expect("a map of strings and numbers serializes");
        Checkpoint { position: self.records_read, identity: format!("{IDENTITY_PREFIX}{json}") }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::fs::File;
    use std::io::Write;

    use super::*;

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
    }

    /// Reads until two reads in a row return nothing (the second is after any switch of a
    /// file source to a rotated-in file); returns (position, line) pairs.
    async fn drain(src: &mut GlobSource, max: usize) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut empty = 0;
        while empty < 2 {
            let batch = src.read(max).await.unwrap().unwrap();
            if batch.is_empty() {
                empty += 1;
            } else {
                empty = 0;
                out.extend(batch.into_iter().map(|r| (r.position, r.line)));
            }
        }
        out
    }

    fn lines(read: &[(u64, String)]) -> Vec<&str> {
        read.iter().map(|(_, l)| l.as_str()).collect()
    }

    fn source(dir: &Path) -> GlobSource {
        GlobSource::new("web", format!("{}/*access.log", dir.display())).unwrap().scan_every(Duration::ZERO)
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_file_is_picked_up_at_the_next_scan() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a-access.log"), "a1\n");
        append(&dir.path().join("error.log"), "not matched\n");
        let mut src = GlobSource::new("web", format!("{}/*access.log", dir.path().display()))
            .unwrap()
            .scan_every(Duration::from_secs(5));
        src.resume(None).unwrap();
        assert_eq!(lines(&drain(&mut src, 10).await), ["a1"]);
        append(&dir.path().join("b-access.log"), "b1\nb2\n");
        assert!(drain(&mut src, 10).await.is_empty(), "no scan before the interval");
        tokio::time::advance(Duration::from_secs(5)).await;
        let read = drain(&mut src, 10).await;
        assert_eq!(lines(&read), ["b1", "b2"]);
        assert_eq!(read[0].0, record_position(1, 0, 0), "second path, first generation, offset 0");
        assert_eq!(read[1].0, record_position(1, 0, 3));
        assert_eq!(src.paths().len(), 2);
    }

    #[tokio::test]
    async fn files_are_read_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a-access.log"), "a1\na2\na3\n");
        append(&dir.path().join("b-access.log"), "b1\nb2\n");
        let mut src = source(dir.path());
        src.resume(None).unwrap();
        let read = drain(&mut src, 1).await;
        assert_eq!(lines(&read), ["a1", "b1", "a2", "b2", "a3"]);
        let positions: HashSet<u64> = read.iter().map(|(p, _)| *p).collect();
        assert_eq!(positions.len(), 5, "ids are unique across files: {read:?}");
        assert_eq!(src.checkpoint().position, 5, "the checkpoint position counts records");
    }

    #[tokio::test]
    async fn a_restart_resumes_each_file_where_it_stood() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a-access.log"), dir.path().join("b-access.log"));
        append(&a, "a1\n");
        append(&b, "b1\n");
        let mut src = source(dir.path()).start_at_end(false);
        src.resume(None).unwrap();
        assert_eq!(lines(&drain(&mut src, 10).await), ["a1", "b1"]);
        let cp = src.checkpoint();
        drop(src);
        append(&a, "a2\n");
        append(&b, "b2\nb3\n");
        let mut again = source(dir.path()).start_at_end(true);
        again.resume(Some(&cp)).unwrap();
        let read = drain(&mut again, 10).await;
        assert_eq!(lines(&read), ["a2", "b2", "b3"], "start_at_end only applies without a checkpoint");
        assert_eq!(read[0].0, record_position(0, 0, 3));
        assert_eq!(read[1].0, record_position(1, 0, 3));
    }

    #[tokio::test]
    async fn without_a_checkpoint_start_at_end_skips_history_but_not_new_files() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a-access.log"), "old\n");
        let mut src = source(dir.path()).start_at_end(true);
        src.resume(None).unwrap();
        append(&dir.path().join("a-access.log"), "a1\n");
        append(&dir.path().join("b-access.log"), "b1\n");
        assert_eq!(lines(&drain(&mut src, 10).await), ["a1", "b1"]);
    }

    #[tokio::test]
    async fn a_compressed_rotated_file_is_finished_after_a_restart_with_new_ids_for_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a-access.log");
        append(&a, "a1\n");
        let mut src = source(dir.path());
        src.resume(None).unwrap();
        assert_eq!(lines(&drain(&mut src, 10).await), ["a1"]);
        let cp = src.checkpoint();
        drop(src);
        // While stopped: more lines, then logrotate with `compress`.
        append(&a, "a2\n");
        let rotated = dir.path().join("a-access.log.1");
        std::fs::rename(&a, &rotated).unwrap();
        let gz = File::create(dir.path().join("a-access.log.1.gz")).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
        encoder.write_all(&std::fs::read(&rotated).unwrap()).unwrap();
        encoder.finish().unwrap();
        std::fs::remove_file(&rotated).unwrap();
        append(&a, "n1\n");

        let mut again = source(dir.path());
        again.resume(Some(&cp)).unwrap();
        let read = drain(&mut again, 10).await;
        assert_eq!(lines(&read), ["a2", "n1"]);
        assert_eq!(read[0].0, record_position(0, 0, 3), "the rest of the old file, same generation");
        assert_eq!(read[1].0, record_position(0, 1, 0), "the new file: next generation, so no id repeats");
    }

    #[tokio::test]
    async fn ids_are_unique_and_identical_on_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a-access.log"), dir.path().join("b-access.log"));
        append(&a, "a1\na2\n");
        append(&b, "b1\n");
        let mut src = source(dir.path());
        src.resume(None).unwrap();
        let mut first = drain(&mut src, 1).await;
        let cp = src.checkpoint();
        // After the checkpoint: a rotation of a (rename + create), a new file c, more lines.
        std::fs::rename(&a, dir.path().join("a-access.log.1")).unwrap();
        append(&a, "a3\n");
        append(&dir.path().join("c-access.log"), "c1\n");
        append(&b, "b2\n");
        let after = drain(&mut src, 1).await;
        first.extend(after.iter().cloned());
        let unique: HashSet<u64> = first.iter().map(|(p, _)| *p).collect();
        assert_eq!(unique.len(), first.len(), "ids repeat: {first:?}");

        // A crash before anything after `cp` was acknowledged: the replay gives the same ids.
        let mut replay = source(dir.path());
        replay.resume(Some(&cp)).unwrap();
        let mut replayed = drain(&mut replay, 1).await;
        let mut expected = after;
        replayed.sort();
        expected.sort();
        assert_eq!(replayed, expected);
        assert_eq!(expected.iter().find(|(_, l)| l == "a3").unwrap().0, record_position(0, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_gone_is_read_to_its_end_then_dropped_from_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a-access.log"), dir.path().join("b-access.log"));
        append(&a, "a1\n");
        append(&b, "b1\n");
        let mut src = source(dir.path());
        src.resume(None).unwrap();
        assert_eq!(lines(&drain(&mut src, 10).await), ["a1", "b1"]);
        append(&a, "a2\n");
        std::fs::remove_file(&a).unwrap();
        assert_eq!(lines(&drain(&mut src, 10).await), ["a2"], "the open file is finished");
        assert_eq!(src.paths().len(), 2, "kept a while: the server may still write to it");
        tokio::time::advance(GONE_GRACE).await;
        assert!(drain(&mut src, 10).await.is_empty());
        assert_eq!(src.paths(), [b.as_path()]);
        let cp = src.checkpoint();
        assert!(!cp.identity.contains("a-access.log"), "{}", cp.identity);
        // A new file under a freed name gets a new number: its ids cannot repeat a's.
        append(&a, "again\n");
        let read = drain(&mut src, 10).await;
        assert_eq!(read, [(record_position(2, 0, 0), "again".to_owned())]);
    }

    #[tokio::test]
    async fn runs_under_run_source_and_resumes_from_the_stored_checkpoint() {
        use tokio_util::sync::CancellationToken;

        use crate::source::{CheckpointStore, SourceOptions, run_source};
        use crate::telemetry::PipelineMetrics;

        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        append(&logs.join("a-access.log"), "a1\na2\n");
        append(&logs.join("b-access.log"), "b1\n");
        let store = CheckpointStore::open(&dir.path().join("state.sqlite")).unwrap();
        let options = SourceOptions { batch_size: 10, max_in_flight: 4, idle_wait: Duration::from_millis(1) };
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_source(
            source(&logs),
            store.clone(),
            tx,
            options.clone(),
            PipelineMetrics::default(),
            cancel.clone(),
        ));
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let batch = rx.recv().await.unwrap();
            seen.extend(batch.items.iter().map(|r| r.line.clone()));
            batch.ack.ack();
        }
        cancel.cancel();
        task.await.unwrap().unwrap();
        seen.sort();
        assert_eq!(seen, ["a1", "a2", "b1"]);

        append(&logs.join("b-access.log"), "b2\n");
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_source(
            source(&logs),
            store.clone(),
            tx,
            options,
            PipelineMetrics::default(),
            cancel.clone(),
        ));
        let batch = rx.recv().await.unwrap();
        let read: Vec<_> = batch.items.iter().map(|r| (r.position, r.line.as_str())).collect();
        assert_eq!(read, [(record_position(1, 0, 3), "b2")], "only what was not acknowledged before");
        batch.ack.ack();
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    /// Model-based test: appends to three files (one appearing later), rotations, clean
    /// restarts and crashes (a restart from the last committed checkpoint, replaying what
    /// followed). Every line must be read once, in order per file, under one id that no other
    /// line has and that a replay gives again.
    mod model {
        use std::collections::HashMap;

        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Append(usize, u8),
            Drain { commit: bool },
            Rotate(usize),
            Restart { crash: bool },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0usize..3, 1u8..4).prop_map(|(f, n)| Op::Append(f, n)),
                3 => any::<bool>().prop_map(|commit| Op::Drain { commit }),
                1 => (0usize..3).prop_map(Op::Rotate),
                2 => any::<bool>().prop_map(|crash| Op::Restart { crash }),
            ]
        }

        fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let path = |f: usize| dir.path().join(format!("f{f}-access.log"));
                append(&path(0), "");
                append(&path(1), "");
                let mut src = source(dir.path());
                src.resume(None).unwrap();
                let mut committed = src.checkpoint();
                let mut committed_len = 0;
                let mut next = [0u32; 3];
                let mut written: Vec<String> = Vec::new();
                let mut out: Vec<(u64, String)> = Vec::new();
                let mut ids: HashMap<String, u64> = HashMap::new();
                // Rotations not yet followed by the source, and not by the committed checkpoint:
                // a path follower finishes the previous file of its path, not the one before.
                let mut rotated = [false; 3];
                let mut rotated_uncommitted = [false; 3];
                let mut rotations = 0;
                for op in ops {
                    match op {
                        Op::Append(f, n) => {
                            for _ in 0..n {
                                let line = format!("f{f}-{:04}", next[f]);
                                next[f] += 1;
                                append(&path(f), &format!("{line}\n"));
                                written.push(line);
                            }
                        }
                        Op::Drain { commit } => {
                            for (position, line) in drain(&mut src, 3).await {
                                let first = *ids.entry(line.clone()).or_insert(position);
                                prop_assert_eq!(first, position, "{} read again under another id", line);
                                out.push((position, line));
                            }
                            rotated = [false; 3];
                            if commit {
                                committed = src.checkpoint();
                                committed_len = out.len();
                                rotated_uncommitted = [false; 3];
                            }
                        }
                        // Only files the committed checkpoint knows: a file renamed out of the
                        // pattern before that is the documented limit.
                        Op::Rotate(f)
                            if committed.identity.contains(&format!("f{f}-access.log\""))
                                && !rotated[f]
                                && !rotated_uncommitted[f] =>
                        {
                            rotations += 1;
                            std::fs::rename(path(f), dir.path().join(format!("f{f}-access.log.{rotations}"))).unwrap();
                            append(&path(f), "");
                            rotated[f] = true;
                            rotated_uncommitted[f] = true;
                        }
                        Op::Rotate(_) => {}
                        Op::Restart { crash } => {
                            let checkpoint = if crash {
                                // Nothing read after the commit was acknowledged: replayed, and
                                // the rotations since then are again to be followed.
                                out.truncate(committed_len);
                                for f in 0..3 {
                                    rotated[f] |= rotated_uncommitted[f];
                                }
                                committed.clone()
                            } else {
                                src.checkpoint()
                            };
                            if !crash {
                                // A clean stop commits where the source stands, before the
                                // rotations it has not followed yet.
                                committed = checkpoint.clone();
                                committed_len = out.len();
                                rotated_uncommitted = rotated;
                            }
                            src = source(dir.path());
                            src.resume(Some(&checkpoint)).unwrap();
                        }
                    }
                }
                for (position, line) in drain(&mut src, 3).await {
                    let first = *ids.entry(line.clone()).or_insert(position);
                    prop_assert_eq!(first, position, "{} read again under another id", line);
                    out.push((position, line));
                }
                let read: Vec<&String> = out.iter().map(|(_, l)| l).collect();
                for f in 0..3 {
                    let prefix = format!("f{f}-");
                    let of_file: Vec<&String> = read.iter().copied().filter(|l| l.starts_with(&prefix)).collect();
                    let expected: Vec<&String> = written.iter().filter(|l| l.starts_with(&prefix)).collect();
                    prop_assert_eq!(of_file, expected, "file {} not read exactly once in order", f);
                }
                let unique: HashSet<u64> = ids.values().copied().collect();
                prop_assert_eq!(unique.len(), ids.len(), "two lines share an id");
                Ok(())
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
            #[test]
            fn every_line_once_under_one_unique_id(ops in proptest::collection::vec(op(), 1..40)) {
                run(ops)?;
            }
        }
    }

    #[test]
    fn a_bad_pattern_is_reported_with_the_source_and_the_pattern() {
        let err = GlobSource::new("web", "/var/log/[access.log").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("source web") && message.contains("/var/log/[access.log"), "{message}");
    }

    #[test]
    fn an_unreadable_checkpoint_reads_the_files_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a-access.log"), "a1\n");
        let mut src = source(dir.path()).start_at_end(true);
        src.resume(Some(&Checkpoint { position: 7, identity: "file-v1:1:2:3:abc".into() })).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(lines(&rt.block_on(drain(&mut src, 10))), ["a1"]);
    }
}
