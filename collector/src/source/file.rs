//! Reading one log file from a checkpointed byte offset, following it as it grows.
//!
//! The checkpoint's identity is the file's device and inode, so a restart after logrotate
//! (rename + create) notices that the path now names a new file and starts it from the top;
//! a file shorter than the checkpoint (copytruncate) is read again from the start.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Checkpoint, Source, SourceError};
use crate::pipe::RawRecord;

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
    identity: String,
    position: u64,
}

impl FileSource {
    pub fn new(id: impl Into<Arc<str>>, path: impl Into<PathBuf>) -> FileSource {
        FileSource {
            id: id.into(),
            path: path.into(),
            one_shot: false,
            start_at_end: false,
            reader: None,
            identity: String::new(),
            position: 0,
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

    fn open(&mut self, checkpoint: Option<&Checkpoint>) -> Result<bool, SourceError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.one_shot => return Ok(false),
            Err(e) => return Err(self.io_err(e)),
        };
        let meta = file.metadata().map_err(|e| self.io_err(e))?;
        let identity = identity_of(&meta);
        let mut position = match checkpoint {
            Some(cp) if cp.identity == identity && cp.position <= meta.len() => cp.position,
            Some(cp) if cp.identity == identity => {
                tracing::warn!(source = %self.id, path = %self.path.display(), checkpoint = cp.position,
                    size = meta.len(), "file is shorter than its checkpoint (truncated); reading it again from the start");
                0
            }
            Some(_) => {
                tracing::info!(source = %self.id, path = %self.path.display(), "file was replaced (rotated); reading the new file from the start");
                0
            }
            None if self.start_at_end => meta.len(),
            None => 0,
        };
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        position = reader.seek(SeekFrom::Start(position)).map_err(|e| self.io_err(e))?;
        self.reader = Some(reader);
        self.identity = identity;
        self.position = position;
        Ok(true)
    }

    /// True when the path now names another file, or the file shrank below our position.
    fn replaced_or_truncated(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(meta) => identity_of(&meta) != self.identity || meta.len() < self.position,
            Err(_) => false,
        }
    }
}

fn identity_of(meta: &std::fs::Metadata) -> String {
    format!("dev{}:ino{}", meta.dev(), meta.ino())
}

impl Source for FileSource {
    fn id(&self) -> &Arc<str> {
        &self.id
    }

    fn resume(&mut self, checkpoint: Option<&Checkpoint>) -> Result<(), SourceError> {
        self.open(checkpoint)?;
        if self.reader.is_none() {
            // Not there yet: keep the checkpoint so that a file appearing later is matched.
            if let Some(cp) = checkpoint {
                self.identity = cp.identity.clone();
                self.position = cp.position;
            }
        }
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
        if self.reader.is_none() {
            let previous = Checkpoint { position: self.position, identity: self.identity.clone() };
            if !self.open(Some(&previous))? {
                return Ok(Some(Vec::new()));
            }
        }
        let mut reader = self.reader.take().expect("opened above");
        let id = self.id.clone();
        let start = self.position;
        // Plain blocking reads on the blocking pool: local files do not benefit from async I/O.
        let (reader, read) = tokio::task::spawn_blocking(move || {
            let result = read_lines(&mut reader, &id, start, max);
            (reader, result)
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        self.reader = Some(reader);
        let (records, position) = read.map_err(|e| self.io_err(e))?;
        self.position = position;
        if records.is_empty() {
            if self.one_shot {
                return Ok(None);
            }
            if self.replaced_or_truncated() {
                // The old file is finished (we read to its end); continue with the new one.
                self.reader = None;
                self.identity.clear();
                self.position = 0;
            }
        }
        Ok(Some(records))
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint { position: self.position, identity: self.identity.clone() }
    }
}

/// Reads up to `max` complete lines. A last line without its newline is left for later (the
/// writer is still writing it), except that it is never lost: the position stays before it.
fn read_lines(
    reader: &mut BufReader<File>,
    source: &Arc<str>,
    mut position: u64,
    max: usize,
) -> std::io::Result<(Vec<RawRecord>, u64)> {
    let mut records = Vec::new();
    let mut buf = Vec::with_capacity(512);
    while records.len() < max {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            // Incomplete line: step back so it is read whole next time.
            reader.seek_relative(-(n as i64))?;
            break;
        }
        let line_start = position;
        position += n as u64;
        let end = buf.len() - if buf.ends_with(b"\r\n") { 2 } else { 1 };
        let line = String::from_utf8_lossy(&buf[..end]).into_owned();
        if line.is_empty() {
            continue;
        }
        records.push(RawRecord { source: source.clone(), position: line_start, line });
    }
    Ok((records, position))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    async fn read_all(src: &mut FileSource) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(batch) = src.read(2).await.unwrap() {
            if batch.is_empty() {
                break;
            }
            out.extend(batch.into_iter().map(|r| r.line));
        }
        out
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
}
