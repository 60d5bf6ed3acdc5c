//! Reading one log file from a checkpointed byte offset, following it as it grows.
//!
//! A checkpoint names the file by its device and inode plus a hash of its first bytes (up to
//! 256, as far as they were read). That tells apart what logrotate does:
//! - rename + create: the path names a new file. While running, the old file is still open
//!   and is read to its end first. After a restart, the old file is looked for beside the
//!   path (`access.log.1`, ...) by its identity and finished before the new one is started.
//! - copytruncate, or truncation: same inode, but shorter than the checkpoint or with other
//!   first bytes: the file is read again from the start. (Lines written between logrotate's
//!   copy and its truncation, and not yet read, exist only in the copy: that is the known
//!   limit of copytruncate for every log shipper.)
//! - rename + compress (`compress`, or `delaycompress` one rotation later): after a restart the
//!   inode is gone. The `.gz` beside the path whose decompressed content starts with the hashed
//!   prefix is our file: it is decompressed, its first `position` bytes skipped, and the rest
//!   read before the path. Positions in it are offsets in the decompressed content, the same as
//!   in the file before compression, so a restart in the middle of it resumes exactly. A
//!   checkpoint taken before anything was read (an empty prefix) cannot recognise its file
//!   once compressed: those lines are not read (delaycompress avoids that).
//!
//! Event ids are `source:tag:offset`, where the tag is a hash of the file's first line:
//! offsets start again at 0 in the file that follows a rotation or a truncation, and without
//! the tag its lines would take the ids of the previous file's lines (and replace them in the
//! archive). A restart reads the same file with the same tag, so replayed lines keep their ids.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::{Checkpoint, Source, SourceError};
use crate::pipe::RawRecord;

/// How many leading bytes identify a file's content.
const PREFIX: u64 = 256;
/// The longest first line the file tag covers.
const TAG_LINE: usize = 4096;

/// What a checkpoint says about the file it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Identity {
    pub(super) dev: u64,
    pub(super) ino: u64,
    /// How many leading bytes `hash` covers (grows to [`PREFIX`] as the file is read).
    prefix_len: u64,
    hash: String,
}

impl Identity {
    fn encode(&self) -> String {
        format!("file-v1:{}:{}:{}:{}", self.dev, self.ino, self.prefix_len, self.hash)
    }

    pub(super) fn decode(text: &str) -> Option<Identity> {
        let mut parts = text.strip_prefix("file-v1:")?.split(':');
        let identity = Identity {
            dev: parts.next()?.parse().ok()?,
            ino: parts.next()?.parse().ok()?,
            prefix_len: parts.next()?.parse().ok()?,
            hash: parts.next()?.to_owned(),
        };
        parts.next().is_none().then_some(identity)
    }

    /// The identity of `file` with its first `prefix_len` bytes hashed.
    fn of(file: &File, prefix_len: u64) -> std::io::Result<Identity> {
        let meta = file.metadata()?;
        let prefix_len = prefix_len.min(PREFIX).min(meta.len());
        Ok(Identity { dev: meta.dev(), ino: meta.ino(), prefix_len, hash: prefix_hash(file, prefix_len)? })
    }

    /// Is `file` the file this identity was taken from?
    fn matches(&self, file: &File) -> std::io::Result<bool> {
        let meta = file.metadata()?;
        if meta.dev() != self.dev || meta.ino() != self.ino || meta.len() < self.prefix_len {
            return Ok(false);
        }
        Ok(prefix_hash(file, self.prefix_len)? == self.hash)
    }
}

fn prefix_hash(file: &File, len: u64) -> std::io::Result<String> {
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(hash_bytes(&buf))
}

fn hash_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The tag of the content `head` starts (see the module's documentation): a hash of its first
/// line, or of [`TAG_LINE`] bytes when the first line is longer. `None` while the first line is
/// incomplete, unless `complete` says that nothing more will be written.
fn tag_of(head: &[u8], complete: bool) -> Option<Arc<str>> {
    let line = match memchr::memchr(b'\n', head) {
        Some(end) => &head[..end],
        None if head.len() >= TAG_LINE || (complete && !head.is_empty()) => head,
        None => return None,
    };
    Some(hash_bytes(line).into())
}

/// The tag of the file's content, read with positioned reads (the reader's offset stays).
fn file_tag(file: &File) -> std::io::Result<Option<Arc<str>>> {
    let mut head = vec![0; TAG_LINE];
    let mut filled = 0;
    while filled < TAG_LINE {
        match file.read_at(&mut head[filled..], filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(tag_of(&head[..filled], false))
}

/// The tag of the decompressed content of the gzip file at `path`.
fn gzip_tag(path: &Path) -> std::io::Result<Option<Arc<str>>> {
    let mut head = Vec::with_capacity(TAG_LINE);
    MultiGzDecoder::new(File::open(path)?).take(TAG_LINE as u64).read_to_end(&mut head)?;
    Ok(tag_of(&head, true))
}

/// Does the decompressed content of the gzip file at `path` start with the prefix of `identity`?
fn gzip_starts_with(path: &Path, identity: &Identity) -> std::io::Result<bool> {
    let mut decoder = MultiGzDecoder::new(File::open(path)?);
    let mut buf = Vec::with_capacity(identity.prefix_len as usize);
    (&mut decoder).take(identity.prefix_len).read_to_end(&mut buf)?;
    Ok(buf.len() as u64 == identity.prefix_len && hash_bytes(&buf) == identity.hash)
}

/// A compressed rotated file being read before the path, after a restart.
struct Compressed {
    path: PathBuf,
    reader: BufReader<MultiGzDecoder<File>>,
    /// Decompressed bytes still to skip to reach the checkpoint's position: skipped on the
    /// blocking pool at the first read, since it may mean decompressing hundreds of megabytes.
    skip: u64,
    /// The content's tag, taken at the first read.
    tag: Option<Arc<str>>,
}

impl std::fmt::Debug for Compressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressed").field("path", &self.path).field("skip", &self.skip).finish_non_exhaustive()
    }
}

/// A log file followed from a byte offset.
#[derive(Debug)]
pub struct FileSource {
    id: Arc<str>,
    path: PathBuf,
    /// Stop at the end of the file instead of following it (`vigie parse`, backfills).
    one_shot: bool,
    /// Start at the end of the file when there is no checkpoint yet (skip history).
    start_at_end: bool,
    reader: Option<BufReader<File>>,
    /// A compressed rotated file to finish first; while it is there, `identity` and
    /// `position` are those of its content.
    compressed: Option<Compressed>,
    identity: Identity,
    position: u64,
    /// The tag of the open file's content, once it has a first line.
    tag: Option<Arc<str>>,
    /// Before the first open: only then may `start_at_end` skip what the file holds.
    fresh: bool,
}

impl FileSource {
    pub fn new(id: impl Into<Arc<str>>, path: impl Into<PathBuf>) -> FileSource {
        FileSource {
            id: id.into(),
            path: path.into(),
            one_shot: false,
            start_at_end: false,
            reader: None,
            compressed: None,
            identity: Identity::default(),
            position: 0,
            tag: None,
            fresh: true,
        }
    }

    /// Reads to the end once, then reports the end of input.
    pub fn one_shot(mut self) -> Self {
        self.one_shot = true;
        self
    }

    /// Without a checkpoint, begin at the current end of the file.
    pub fn start_at_end(mut self, yes: bool) -> Self {
        self.start_at_end = yes;
        self
    }

    fn io_err(&self, error: std::io::Error) -> SourceError {
        SourceError::Io { source_id: self.id.to_string(), path: self.path.display().to_string(), error }
    }

    /// Opens the file to read next, given where we stood (`None`: first start).
    fn open(&mut self, previous: Option<(&Identity, u64)>) -> Result<bool, SourceError> {
        if let Some((identity, position)) = previous {
            // The file we were reading, moved aside by a rotation while we were stopped?
            if let Some((file, path)) = self.find_rotated(identity).map_err(|e| self.io_err(e))? {
                // Same inode: our file, renamed. If its first bytes changed it was also
                // truncated and refilled before the rotation: all of it is new to us.
                let unchanged = identity.matches(&file).map_err(|e| self.io_err(e))?;
                let len = file.metadata().map_err(|e| self.io_err(e))?.len();
                let position = if unchanged && position <= len { position } else { 0 };
                tracing::info!(source = %self.id, file = %path.display(), "finishing the rotated file first");
                let identity = Identity::of(&file, position).map_err(|e| self.io_err(e))?;
                return self.start(file, identity, position);
            }
            // Or renamed and compressed: another inode, but the same first bytes.
            if let Some(path) = self.find_compressed(identity) {
                tracing::info!(source = %self.id, file = %path.display(), position,
                    "finishing the compressed rotated file first");
                let file = File::open(&path).map_err(|e| self.io_err(e))?;
                let reader = BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(file));
                self.compressed = Some(Compressed { path, reader, skip: position, tag: None });
                self.identity = identity.clone();
                self.position = position;
                return Ok(true);
            }
        }
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.one_shot => return Ok(false),
            Err(e) => return Err(self.io_err(e)),
        };
        let len = file.metadata().map_err(|e| self.io_err(e))?.len();
        let position = match previous {
            Some((identity, position)) => {
                if identity.matches(&file).map_err(|e| self.io_err(e))? && position <= len {
                    position
                } else {
                    tracing::info!(source = %self.id, path = %self.path.display(),
                        "the file is not the one of the checkpoint (rotated, truncated or rewritten); reading it from the start");
                    0
                }
            }
            None if self.start_at_end && self.fresh => len,
            None => 0,
        };
        let identity = Identity::of(&file, position).map_err(|e| self.io_err(e))?;
        self.start(file, identity, position)
    }

    fn start(&mut self, file: File, identity: Identity, position: u64) -> Result<bool, SourceError> {
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        self.position = reader.seek(SeekFrom::Start(position)).map_err(|e| self.io_err(e))?;
        self.reader = Some(reader);
        self.identity = identity;
        self.tag = None;
        Ok(true)
    }

    /// A file beside ours (`access.log.1`, `access.log-20250407`) with the device and inode
    /// of `identity` — but not the path itself.
    fn find_rotated(&self, identity: &Identity) -> std::io::Result<Option<(File, PathBuf)>> {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else { return Ok(None) };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let name = name.to_string_lossy();
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(None) };
        for entry in entries.flatten() {
            let candidate = entry.file_name();
            let candidate = candidate.to_string_lossy();
            if candidate == name || !candidate.starts_with(&*name) {
                continue;
            }
            let path = entry.path();
            if let Ok(file) = File::open(&path) {
                let meta = file.metadata()?;
                if meta.dev() == identity.dev && meta.ino() == identity.ino {
                    return Ok(Some((file, path)));
                }
            }
        }
        Ok(None)
    }

    /// A `.gz` file beside ours (`access.log.2.gz`, `access.log-20250407.gz`) whose content
    /// starts with the hashed prefix of `identity`. An empty prefix matches every file, so it
    /// names none. Unreadable candidates (a gzip still being written) are passed over.
    fn find_compressed(&self, identity: &Identity) -> Option<PathBuf> {
        if identity.prefix_len == 0 {
            return None;
        }
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else { return None };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let name = name.to_string_lossy();
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|entry| {
                let candidate = entry.file_name();
                let candidate = candidate.to_string_lossy();
                candidate != name && candidate.starts_with(&*name) && candidate.ends_with(".gz")
            })
            .map(|entry| entry.path())
            .collect();
        // A stable order, so that the choice is the same at every restart.
        candidates.sort();
        candidates.into_iter().find(|path| match gzip_starts_with(path, identity) {
            Ok(matches) => matches,
            Err(error) => {
                tracing::debug!(source = %self.id, file = %path.display(), %error, "compressed file not readable");
                false
            }
        })
    }

    /// Reads the compressed rotated file; at its end, moves on to the path from its start.
    async fn read_compressed(&mut self, mut compressed: Compressed, max: usize) -> Vec<RawRecord> {
        let id = self.id.clone();
        let start = self.position;
        let (compressed, read) = tokio::task::spawn_blocking(move || {
            let result: std::io::Result<_> = (|| {
                if compressed.tag.is_none() {
                    compressed.tag = gzip_tag(&compressed.path)?;
                }
                let (mut records, position) = read_decompressed(&mut compressed, &id, start, max)?;
                tag_records(&mut records, compressed.tag.as_ref());
                Ok((records, position))
            })();
            (compressed, result)
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        match read {
            Ok((records, position)) if !records.is_empty() => {
                self.position = position;
                self.compressed = Some(compressed);
                records
            }
            Ok(_) => {
                tracing::info!(source = %self.id, file = %compressed.path.display(), "compressed rotated file finished");
                self.identity = Identity::default();
                self.position = 0;
                Vec::new()
            }
            Err(error) => {
                // A corrupt archive would otherwise stop the source for good; the log says
                // where to look for what was not read.
                tracing::error!(source = %self.id, file = %compressed.path.display(), position = self.position,
                    %error, "cannot decompress the rotated file; the rest of it is skipped");
                self.identity = Identity::default();
                self.position = 0;
                Vec::new()
            }
        }
    }

    /// True when the path now names another file, or ours shrank or was rewritten.
    fn replaced_or_truncated(&self) -> bool {
        let Ok(file) = File::open(&self.path) else { return false };
        let Ok(meta) = file.metadata() else { return false };
        if meta.dev() != self.identity.dev || meta.ino() != self.identity.ino {
            return true;
        }
        meta.len() < self.position || !self.identity.matches(&file).unwrap_or(true)
    }

    /// Extends the identity's hashed prefix as the file is read, up to [`PREFIX`] bytes.
    fn grow_identity(&mut self) -> std::io::Result<()> {
        if self.identity.prefix_len < PREFIX
            && self.position > self.identity.prefix_len
            && let Some(reader) = &self.reader
        {
            self.identity = Identity::of(reader.get_ref(), self.position)?;
        }
        Ok(())
    }
}

impl Source for FileSource {
    fn id(&self) -> &Arc<str> {
        &self.id
    }

    fn resume(&mut self, checkpoint: Option<&Checkpoint>) -> Result<(), SourceError> {
        let previous = checkpoint.and_then(|cp| {
            let identity = Identity::decode(&cp.identity);
            if identity.is_none() {
                tracing::warn!(source = %self.id, "checkpoint from another kind of source; reading the file from the start");
            }
            identity.map(|i| (i, cp.position))
        });
        self.open(previous.as_ref().map(|(i, p)| (i, *p)))?;
        self.fresh = false;
        if self.reader.is_none() {
            // Not there yet: keep the checkpoint so that a file appearing later is matched.
            if let Some((identity, position)) = previous {
                self.identity = identity;
                self.position = position;
            }
        }
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        if let Some(compressed) = self.compressed.take() {
            return Ok(Some(self.read_compressed(compressed, max).await));
        }
        if self.reader.is_none() {
            let previous = (self.identity.clone(), self.position);
            let previous = (previous.0 != Identity::default()).then_some(previous);
            if !self.open(previous.as_ref().map(|(i, p)| (i, *p)))? {
                return Ok(Some(Vec::new()));
            }
            if self.compressed.is_some() {
                return Ok(Some(Vec::new()));
            }
        }
        let mut reader = self.reader.take().expect("opened above");
        // Same inode but shorter than our position, or other first bytes: truncated (and
        // perhaps refilled) under us. Checked on the open file at every read, because a file
        // refilled past our position would otherwise be read from the middle.
        let file = reader.get_ref();
        let rewritten = file.metadata().map(|m| m.len() < self.position).unwrap_or(false)
            || !self.identity.matches(file).unwrap_or(true);
        if rewritten {
            tracing::warn!(source = %self.id, path = %self.path.display(), "file truncated or rewritten; reading it again from the start");
            self.position = reader.seek(SeekFrom::Start(0)).map_err(|e| self.io_err(e))?;
            self.identity = Identity::of(reader.get_ref(), 0).map_err(|e| self.io_err(e))?;
            self.tag = None;
        }
        let id = self.id.clone();
        let start = self.position;
        let mut tag = self.tag.clone();
        // Plain blocking reads on the blocking pool: local files do not benefit from async I/O.
        let joined = tokio::task::spawn_blocking(move || {
            let result = read_lines(&mut reader, &id, start, max).and_then(|(mut records, position)| {
                // Taken once lines were read: a line read means a complete first line.
                if tag.is_none() && !records.is_empty() {
                    tag = file_tag(reader.get_ref())?;
                }
                tag_records(&mut records, tag.as_ref());
                Ok((records, position, tag))
            });
            (reader, result)
        })
        .await;
        let (reader, read) = match joined {
            Ok(done) => done,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // The runtime is shutting down: nothing was handed out, the checkpoint stays.
            Err(_) => {
                return Err(self.io_err(std::io::Error::other("the read was cancelled: Vigie is shutting down")));
            }
        };
        self.reader = Some(reader);
        let (records, position, tag) = read.map_err(|e| self.io_err(e))?;
        self.position = position;
        self.tag = tag;
        self.grow_identity().map_err(|e| self.io_err(e))?;
        if records.is_empty() {
            if self.one_shot {
                return Ok(None);
            }
            if self.replaced_or_truncated() {
                // The old file is finished (we read to its end); continue with what the path
                // names now, from its start.
                self.reader = None;
                self.identity = Identity::default();
                self.position = 0;
            }
        }
        Ok(Some(records))
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint { position: self.position, identity: self.identity.encode() }
    }
}

/// Marks `records` as read from the file tagged `tag`.
fn tag_records(records: &mut [RawRecord], tag: Option<&Arc<str>>) {
    for record in records {
        record.file = tag.cloned();
    }
}

/// Reads up to `max` complete lines. A last line without its newline is left for later (the
/// writer is still writing it), except that it is never lost: the position stays before it.
fn read_lines(
    reader: &mut BufReader<File>,
    source: &Arc<str>,
    position: u64,
    max: usize,
) -> std::io::Result<(Vec<RawRecord>, u64)> {
    let (records, position, partial) = read_lines_from(reader, source, position, max, false)?;
    if partial > 0 {
        // Incomplete line: step back so it is read whole next time.
        reader.seek_relative(-(partial as i64))?;
    }
    Ok((records, position))
}

/// Reads up to `max` lines of the compressed file, after skipping to the checkpoint. The file
/// is complete (logrotate compresses closed files), so a last line without newline is a line.
fn read_decompressed(
    compressed: &mut Compressed,
    source: &Arc<str>,
    position: u64,
    max: usize,
) -> std::io::Result<(Vec<RawRecord>, u64)> {
    if compressed.skip > 0 {
        let skipped = std::io::copy(&mut (&mut compressed.reader).take(compressed.skip), &mut std::io::sink())?;
        if skipped < compressed.skip {
            // Shorter than the checkpoint: already read whole before it was compressed.
            compressed.skip = 0;
            return Ok((Vec::new(), position));
        }
        compressed.skip = 0;
    }
    let (records, position, _) = read_lines_from(&mut compressed.reader, source, position, max, true)?;
    Ok((records, position))
}

/// Reads up to `max` lines; returns them, the position after them, and how many bytes of an
/// incomplete last line were consumed but not returned (none when `last_line_complete`).
fn read_lines_from<R: BufRead>(
    reader: &mut R,
    source: &Arc<str>,
    mut position: u64,
    max: usize,
    last_line_complete: bool,
) -> std::io::Result<(Vec<RawRecord>, u64, usize)> {
    let mut records = Vec::new();
    let mut buf = Vec::with_capacity(512);
    while records.len() < max {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') && !last_line_complete {
            return Ok((records, position, n));
        }
        let line_start = position;
        position += n as u64;
        let end = if buf.ends_with(b"\r\n") {
            buf.len() - 2
        } else if buf.ends_with(b"\n") {
            buf.len() - 1
        } else {
            buf.len()
        };
        let line = String::from_utf8_lossy(&buf[..end]).into_owned();
        if line.is_empty() {
            continue;
        }
        records.push(RawRecord { source: source.clone(), position: line_start, file: None, line });
    }
    Ok((records, position, 0))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    async fn read_all(src: &mut FileSource) -> Vec<String> {
        read_records(src).await.into_iter().map(|(_, _, line)| line).collect()
    }

    #[tokio::test]
    async fn resumes_from_checkpoint_and_keeps_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut f = File::create(&path).unwrap();
        write!(f, "one\ntwo\r\nthree\npart").unwrap();
        let mut src = FileSource::new("a", &path);
        src.resume(None).unwrap();
        assert_eq!(read_all(&mut src).await, ["one", "two", "three"]);
        let cp = src.checkpoint();
        assert_eq!(cp.position, 15, "stops before the incomplete line");

        writeln!(f, "ial").unwrap();
        writeln!(f, "four").unwrap();
        let mut again = FileSource::new("a", &path);
        again.resume(Some(&cp)).unwrap();
        assert_eq!(read_all(&mut again).await, ["partial", "four"]);
    }

    #[tokio::test]
    async fn truncated_file_is_read_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        let mut src = FileSource::new("a", &path);
        src.resume(None).unwrap();
        read_all(&mut src).await;
        let cp = src.checkpoint();
        std::fs::write(&path, "x\n").unwrap(); // same inode, shorter
        let mut again = FileSource::new("a", &path);
        again.resume(Some(&cp)).unwrap();
        assert_eq!(read_all(&mut again).await, ["x"]);
    }

    #[tokio::test]
    async fn rotated_file_is_finished_then_the_new_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "old1\n").unwrap();
        let mut src = FileSource::new("a", &path);
        src.resume(None).unwrap();
        assert_eq!(read_all(&mut src).await, ["old1"]);
        let mut old = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        writeln!(old, "old2").unwrap();
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&path, "new1\n").unwrap();
        // First the rest of the renamed file (still open), then the new one.
        assert_eq!(read_all(&mut src).await, ["old2"]);
        assert_eq!(read_all(&mut src).await, ["new1"]);
    }

    /// Every record read, as (file tag, offset, line).
    async fn read_records(src: &mut FileSource) -> Vec<(Option<Arc<str>>, u64, String)> {
        let mut out = Vec::new();
        while let Some(batch) = src.read(2).await.unwrap() {
            if batch.is_empty() {
                break;
            }
            out.extend(batch.into_iter().map(|r| (r.file, r.position, r.line)));
        }
        out
    }

    #[tokio::test]
    async fn the_next_file_after_a_rotation_or_a_truncation_has_its_own_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "10:00 a1\n10:00 a2\n").unwrap();
        let mut src = FileSource::new("a", &path);
        src.resume(None).unwrap();
        let old = read_records(&mut src).await;
        // logrotate's rename + create; the new file's lines are at the same offsets.
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&path, "11:00 b1\n11:00 b2\n").unwrap();
        assert!(read_records(&mut src).await.is_empty(), "the renamed file is at its end");
        let new = read_records(&mut src).await;
        assert_eq!(new.iter().map(|r| r.1).collect::<Vec<_>>(), old.iter().map(|r| r.1).collect::<Vec<_>>());
        let (old_tag, new_tag) = (old[0].0.clone().expect("tagged"), new[0].0.clone().expect("tagged"));
        assert_ne!(old_tag, new_tag, "same offsets, other file: other ids");
        assert!(
            old.iter().all(|r| r.0.as_ref() == Some(&old_tag)) && new.iter().all(|r| r.0.as_ref() == Some(&new_tag))
        );

        // A restart reads the same file again with the same tag: replayed lines keep their ids.
        let mut again = FileSource::new("a", &path);
        again.resume(None).unwrap();
        assert_eq!(read_records(&mut again).await, new);

        // Truncated and refilled in place (copytruncate): a new tag too.
        std::fs::write(&path, "12:00 c1\n").unwrap();
        let refilled = read_records(&mut again).await;
        assert_eq!(refilled.len(), 1);
        assert_eq!(refilled[0].1, 0);
        assert_ne!(refilled[0].0.as_ref(), Some(&new_tag));
    }

    #[test]
    fn a_tag_needs_a_complete_first_line() {
        assert_eq!(tag_of(b"10:00 partial", false), None, "the writer is still writing it");
        assert_eq!(tag_of(b"10:00 a\n10:01 b", false), tag_of(b"10:00 a\n", false));
        assert!(tag_of(b"10:00 last", true).is_some(), "a finished (compressed) file");
        assert!(tag_of(&[b'x'; TAG_LINE], false).is_some(), "a first line longer than the tag covers");
        assert_eq!(tag_of(b"", true), None);
    }

    #[tokio::test]
    async fn a_restart_after_rotation_finishes_the_rotated_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "a1\n").unwrap();
        let mut src = FileSource::new("a", &path);
        src.resume(None).unwrap();
        assert_eq!(read_all(&mut src).await, ["a1"]);
        let cp = src.checkpoint();
        drop(src);
        // While Vigie is stopped: more lines, then logrotate renames and creates.
        let mut old = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        writeln!(old, "a2").unwrap();
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&path, "b1\n").unwrap();
        let mut again = FileSource::new("a", &path);
        again.resume(Some(&cp)).unwrap();
        let mut lines = read_all(&mut again).await;
        lines.extend(read_all(&mut again).await);
        assert_eq!(lines, ["a2", "b1"]);
    }

    #[tokio::test]
    async fn a_file_truncated_and_refilled_past_the_checkpoint_is_read_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "first\n").unwrap();
        let mut src = FileSource::new("a", &path);
        src.resume(None).unwrap();
        read_all(&mut src).await;
        let cp = src.checkpoint();
        // Same inode, longer than the checkpoint, other content: not the same data.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(0).unwrap();
        std::fs::write(&path, "second line\nthird\n").unwrap();
        let mut again = FileSource::new("a", &path);
        again.resume(Some(&cp)).unwrap();
        assert_eq!(read_all(&mut again).await, ["second line", "third"]);
        // And while running, the same is noticed at the end of the file.
        f.set_len(0).unwrap();
        std::fs::write(&path, "fourth is longer than the rest\n").unwrap();
        let mut lines = read_all(&mut again).await;
        lines.extend(read_all(&mut again).await);
        assert_eq!(lines, ["fourth is longer than the rest"]);
    }

    /// What logrotate does with `compress`: rename, then gzip (which removes the original).
    fn rotate_compress(path: &Path, rotated: &str) {
        let rotated = path.with_file_name(rotated);
        std::fs::rename(path, &rotated).unwrap();
        let content = std::fs::read(&rotated).unwrap();
        let gz =
            File::create(rotated.with_file_name(format!("{}.gz", rotated.file_name().unwrap().display()))).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
        encoder.write_all(&content).unwrap();
        encoder.finish().unwrap();
        std::fs::remove_file(&rotated).unwrap();
        std::fs::write(path, "").unwrap();
    }

    #[tokio::test]
    async fn a_restart_after_rotation_and_compression_finishes_the_compressed_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "a1\n").unwrap();
        // An older archive of another file, which must not be taken for ours.
        let older = File::create(dir.path().join("access.log.3.gz")).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(older, flate2::Compression::default());
        encoder.write_all(b"z1\nz2\n").unwrap();
        encoder.finish().unwrap();
        let mut src = FileSource::new("a", &path);
        src.resume(None).unwrap();
        let before = src.read(2).await.unwrap().unwrap();
        assert_eq!(before.iter().map(|r| r.line.as_str()).collect::<Vec<_>>(), ["a1"]);
        let cp = src.checkpoint();
        drop(src);
        // While Vigie is stopped: more lines (the last one unterminated), then logrotate
        // renames, compresses and creates; the new file gets lines too.
        let mut old = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        write!(old, "a2\na3\na4\na5").unwrap();
        rotate_compress(&path, "access.log.1");
        std::fs::write(&path, "b1\n").unwrap();

        let mut again = FileSource::new("a", &path);
        again.resume(Some(&cp)).unwrap();
        let first = again.read(2).await.unwrap().unwrap();
        assert_eq!(first.iter().map(|r| r.line.as_str()).collect::<Vec<_>>(), ["a2", "a3"]);
        assert_eq!(first.iter().map(|r| r.position).collect::<Vec<_>>(), [3, 6], "offsets of the uncompressed file");
        assert!(
            first.iter().all(|r| r.file.is_some() && r.file == before[0].file),
            "the tag of the file before compression"
        );
        // A second restart in the middle of the compressed file resumes exactly there.
        let cp = again.checkpoint();
        assert_eq!(cp.position, 9);
        let mut third = FileSource::new("a", &path);
        third.resume(Some(&cp)).unwrap();
        let mut lines = read_all(&mut third).await;
        lines.extend(read_all(&mut third).await);
        assert_eq!(lines, ["a4", "a5", "b1"]);
        assert_eq!(third.checkpoint().position, 3, "now on the new file");
    }

    #[tokio::test]
    async fn a_checkpoint_past_the_end_of_the_compressed_file_moves_on_to_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "a1\na2\n").unwrap();
        let mut src = FileSource::new("a", &path);
        src.resume(None).unwrap();
        assert_eq!(read_all(&mut src).await, ["a1", "a2"]);
        let cp = src.checkpoint();
        drop(src);
        rotate_compress(&path, "access.log.1");
        std::fs::write(&path, "b1\n").unwrap();
        let mut again = FileSource::new("a", &path);
        again.resume(Some(&cp)).unwrap();
        let mut lines = read_all(&mut again).await;
        lines.extend(read_all(&mut again).await);
        assert_eq!(lines, ["b1"], "nothing of the compressed file is read twice");
    }

    /// Model-based test: random appends, reads, rotations, truncations and restarts; the
    /// lines read must be every line written, once, in order — except lines that a truncation
    /// destroyed before they were read.
    mod model {
        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Append(u8),
            Drain,
            Rotate,
            RotateCompress,
            Truncate,
            Restart,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (1u8..6).prop_map(Op::Append),
                3 => Just(Op::Drain),
                1 => Just(Op::Rotate),
                1 => Just(Op::RotateCompress),
                1 => Just(Op::Truncate),
                2 => Just(Op::Restart),
            ]
        }

        async fn drain(src: &mut FileSource, out: &mut Vec<String>) {
            // Two empty reads in a row: the second is after any switch to a rotated-in file.
            let mut empty = 0;
            while empty < 2 {
                let batch = src.read(3).await.unwrap().unwrap();
                if batch.is_empty() {
                    empty += 1;
                } else {
                    empty = 0;
                    out.extend(batch.into_iter().map(|r| r.line));
                }
            }
        }

        fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("app.log");
                std::fs::write(&path, "").unwrap();
                let mut src = FileSource::new("m", &path);
                src.resume(None).unwrap();
                let (mut next, mut rotations) = (0u32, 0u32);
                let mut written: Vec<String> = Vec::new();
                let mut in_path: Vec<String> = Vec::new();
                let mut may_be_lost = std::collections::HashSet::new();
                let mut out: Vec<String> = Vec::new();
                let mut rotated_since_drain = false;
                let mut truncated_since_drain = false;
                // Lines of a file compressed since the last drain, unread then, and whether
                // that file had been truncated since the last drain.
                let mut compressed: Option<(Vec<String>, bool)> = None;
                for op in ops {
                    match op {
                        Op::Append(n) => {
                            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                            for _ in 0..n {
                                let line = format!("line-{next:05}");
                                next += 1;
                                writeln!(f, "{line}").unwrap();
                                written.push(line.clone());
                                in_path.push(line);
                            }
                        }
                        Op::Drain => {
                            drain(&mut src, &mut out).await;
                            rotated_since_drain = false;
                            truncated_since_drain = false;
                            compressed = None;
                        }
                        // One rotation between two drains: a single-path follower finishes
                        // the previous file, not the one before it.
                        Op::Rotate if !rotated_since_drain => {
                            rotations += 1;
                            std::fs::rename(&path, dir.path().join(format!("app.log.{rotations}"))).unwrap();
                            std::fs::write(&path, "").unwrap();
                            in_path.clear();
                            rotated_since_drain = true;
                        }
                        Op::RotateCompress if !rotated_since_drain => {
                            rotations += 1;
                            rotate_compress(&path, &format!("app.log.{rotations}"));
                            compressed = Some((std::mem::take(&mut in_path), truncated_since_drain));
                            rotated_since_drain = true;
                        }
                        Op::Rotate | Op::RotateCompress => {}
                        Op::Truncate => {
                            may_be_lost.extend(in_path.drain(..).filter(|l| !out.contains(l)));
                            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
                            truncated_since_drain = true;
                        }
                        Op::Restart => {
                            let cp = src.checkpoint();
                            // The documented limits: once compressed, a file is recognised
                            // only by its first bytes, which the checkpoint must have seen.
                            if let Some((lines, truncated)) = &compressed {
                                let seen = Identity::decode(&cp.identity).is_some_and(|i| i.prefix_len > 0);
                                if !seen || *truncated {
                                    may_be_lost.extend(lines.iter().filter(|l| !out.contains(l)).cloned());
                                }
                            }
                            src = FileSource::new("m", &path);
                            src.resume(Some(&cp)).unwrap();
                        }
                    }
                }
                drain(&mut src, &mut out).await;
                let mut sorted = out.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(&sorted, &out, "lines read twice or out of order");
                let missing: Vec<_> =
                    written.iter().filter(|l| !out.contains(l) && !may_be_lost.contains(*l)).collect();
                prop_assert!(missing.is_empty(), "lines never read: {:?}", missing);
                Ok(())
            })
        }

        /// Truncated and refilled, then rotated, while Vigie was stopped: the rotated file has
        /// our inode but other content, and must be read whole (found by the model).
        #[test]
        fn truncate_refill_rotate_restart() {
            run(vec![Op::Append(1), Op::Drain, Op::Truncate, Op::Append(1), Op::Rotate, Op::Restart]).unwrap();
        }

        /// Compressed while stopped, then restarted twice before reading: both restarts find
        /// the archive by its first bytes.
        #[test]
        fn compress_restart_restart() {
            run(vec![
                Op::Append(2),
                Op::Drain,
                Op::Append(3),
                Op::RotateCompress,
                Op::Append(1),
                Op::Restart,
                Op::Restart,
            ])
            .unwrap();
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
            #[test]
            fn no_line_lost_none_duplicated(ops in proptest::collection::vec(op(), 1..40)) {
                run(ops)?;
            }
        }
    }
}
