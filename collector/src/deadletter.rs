//! The dead-letter files: every line that could not be parsed, with the reason, never dropped.
//!
//! One JSON-lines file per source under `<data>/deadletter/`. Each entry names the source and
//! the record's position (and file tag), so an entry written twice by a replay after a crash is recognisable.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pipe::RawRecord;

#[derive(Debug, Serialize)]
struct Entry<'a> {
    #[serde(rename = "@timestamp")]
    at: jiff::Timestamp,
    source: &'a str,
    /// The tag of the file `position` is an offset in (file sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    position: u64,
    reason: &'a str,
    line: &'a str,
}

/// Appends rejected lines to per-source files.
#[derive(Debug)]
pub struct DeadLetter {
    dir: PathBuf,
    open: std::collections::HashMap<String, BufWriter<File>>,
}

impl DeadLetter {
    pub fn new(dir: &Path) -> std::io::Result<DeadLetter> {
        std::fs::create_dir_all(dir)?;
        Ok(DeadLetter { dir: dir.to_owned(), open: Default::default() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Buffers one rejected record; [`DeadLetter::sync`] makes it durable.
    pub fn push(&mut self, record: &RawRecord, reason: &str) -> std::io::Result<()> {
        let writer = match self.open.get_mut(&*record.source) {
            Some(w) => w,
            None => {
                let file_name = format!("{}.jsonl", sanitize(&record.source));
                let file = OpenOptions::new().create(true).append(true).open(self.dir.join(file_name))?;
                self.open.entry(record.source.to_string()).or_insert(BufWriter::new(file))
            }
        };
        let entry = Entry {
            at: jiff::Timestamp::now(),
            source: &record.source,
            file: record.file.as_deref(),
            position: record.position,
            reason,
            line: &record.line,
        };
        serde_json::to_writer(&mut *writer, &entry)?;
        writer.write_all(b"\n")
    }

    /// Flushes and fsyncs every file written since the last call.
    pub fn sync(&mut self) -> std::io::Result<()> {
        for writer in self.open.values_mut() {
            writer.flush()?;
            writer.get_ref().sync_data()?;
        }
        Ok(())
    }
}

/// Source ids come from the configuration; keep file names tame anyway.
fn sanitize(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_json_lines_with_reason_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut dl = DeadLetter::new(dir.path()).unwrap();
        let rec = RawRecord { source: "web/1".into(), position: 77, file: None, line: "garbage \"line".into() };
        dl.push(&rec, "expected '[' at column 9").unwrap();
        dl.sync().unwrap();
        let text = std::fs::read_to_string(dir.path().join("web_1.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["position"], 77);
        assert_eq!(v["reason"], "expected '[' at column 9");
        assert_eq!(v["line"], "garbage \"line");
    }
}
