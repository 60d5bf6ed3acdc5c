//! The summary of a sealed day: a binary fuse filter (`xorf`) of the client addresses, accounts
//! and schools it holds, so that a requisition search skips, without opening their index, the
//! days that cannot hold what it looks for.
//!
//! `<day>/summary.bin` is written when the day is sealed, before its manifest, so the manifest
//! covers it like every other file of the day (`verify` names a day whose summary was edited).
//! A filter has no false negatives and about 0.4 % false positives: a day it wrongly keeps is
//! only searched for nothing. A day without a summary (sealed by an older version, or still
//! open), or with one this code cannot read, is searched: the summary only ever skips work.
//!
//! Layout (little endian): the magic `VIGSUM\0\1`, then for each kind (address, account,
//! school) the offset and length (`u64`, `u64`) of its section; a section is the number of
//! distinct keys (`u32`; `u32::MAX` when the field is not indexed, so the section excludes
//! nothing), then, when there are some, the filter's 20-byte descriptor and its fingerprints.
//! A key is XXH3-64 of the term's value bytes (as Tantivy indexes them) seeded with the kind: a
//! specified hash, the same on every version and machine.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use tantivy::schema::Field;
use tantivy::{Searcher, Term};
use xorf::{BinaryFuse8, BinaryFuse8Ref, DmaSerializable, Filter, FilterRef};

use crate::error::ArchiveError;
use crate::partition;

pub(crate) const SUMMARY_FILE: &str = "summary.bin";
const MAGIC: &[u8; 8] = b"VIGSUM\x00\x01";
const KINDS: usize = 3;
const HEADER_LEN: usize = MAGIC.len() + KINDS * 16;
/// The key count of a section that excludes nothing (its field is not indexed in that day).
const UNKNOWN: u32 = u32::MAX;
/// Sections larger than this are not a summary this code wrote (tens of millions of keys).
const MAX_SECTION_BYTES: u64 = 256 << 20;

/// What a summary covers; the discriminant is the kind byte hashed with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    SourceIp = 0,
    UserName = 1,
    SchoolUai = 2,
}

/// The hashed key of an indexed term.
pub(crate) fn key(kind: Kind, term: &Term) -> u64 {
    key_of_bytes(kind, term.serialized_value_bytes())
}

fn key_of_bytes(kind: Kind, value: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot_with_seed(kind as u64, value)
}

/// Writes the summary of a day from its (compacted) index: every term of the address, account
/// and school fields. Terms of deleted documents may remain: a filter that holds more keys only
/// searches more. Durable (temporary file, fsync, rename).
pub(crate) fn write(dir: &Path, searcher: &Searcher, fields: [(Kind, Field); KINDS]) -> Result<(), ArchiveError> {
    let mut sections: Vec<Vec<u8>> = Vec::with_capacity(KINDS);
    for (kind, field) in fields {
        if !searcher.schema().get_field_entry(field).is_indexed() {
            // Nothing to read the keys from: a section that excludes nothing.
            sections.push(UNKNOWN.to_le_bytes().to_vec());
            continue;
        }
        let mut keys = Vec::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(field).map_err(ArchiveError::tantivy(dir))?;
            let mut terms =
                inverted.terms().stream().map_err(|e| ArchiveError::Io { path: dir.to_owned(), source: e })?;
            while terms.advance() {
                keys.push(key_of_bytes(kind, terms.key()));
            }
        }
        sections.push(section_of(dir, keys));
    }
    let mut bytes = MAGIC.to_vec();
    let mut offset = HEADER_LEN as u64;
    for section in &sections {
        bytes.extend_from_slice(&offset.to_le_bytes());
        bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
        offset += section.len() as u64;
    }
    for section in &sections {
        bytes.extend_from_slice(section);
    }
    partition::write_durably(&dir.join(SUMMARY_FILE), &bytes)
}

/// The section of a set of keys. A filter that cannot be built (far too many keys, or the rare
/// construction failure) gives a section that excludes nothing: sealing never fails for it.
fn section_of(dir: &Path, mut keys: Vec<u64>) -> Vec<u8> {
    keys.sort_unstable();
    keys.dedup();
    let Ok(count) = u32::try_from(keys.len()) else { return UNKNOWN.to_le_bytes().to_vec() };
    let mut section = count.to_le_bytes().to_vec();
    if count == 0 {
        return section;
    }
    match BinaryFuse8::try_from(&keys[..]) {
        Ok(filter) if count != UNKNOWN => {
            let mut descriptor = [0u8; BinaryFuse8::DESCRIPTOR_LEN];
            filter.dma_copy_descriptor_to(&mut descriptor);
            section.extend_from_slice(&descriptor);
            section.extend_from_slice(filter.dma_fingerprints());
            section
        }
        Ok(_) => UNKNOWN.to_le_bytes().to_vec(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = e, "day summary filter not built; searches will open the day");
            UNKNOWN.to_le_bytes().to_vec()
        }
    }
}

/// The summary of one sealed day, read once and asked as often as needed (a long-lived
/// reader keeps it with the open day).
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// The section of each kind; `None` when the file holds no usable one (then the kind
    /// excludes nothing).
    sections: [Option<Vec<u8>>; KINDS],
}

impl Summary {
    /// The summary of the day in `dir`, every kind; one that excludes nothing when the day has
    /// none or an unreadable one.
    pub(crate) fn read(dir: &Path) -> Summary {
        Summary::read_kinds(dir, &[Kind::SourceIp, Kind::UserName, Kind::SchoolUai])
    }

    /// [`Summary::read`] of only the sections of `kinds` (the others exclude nothing).
    pub(crate) fn read_kinds(dir: &Path, kinds: &[Kind]) -> Summary {
        let mut summary = Summary { sections: [None, None, None] };
        let Ok(mut file) = File::open(dir.join(SUMMARY_FILE)) else { return summary };
        let mut header = [0u8; HEADER_LEN];
        if file.read_exact(&mut header).is_err() || &header[..MAGIC.len()] != MAGIC {
            return summary;
        }
        for &kind in kinds {
            summary.sections[kind as usize] = read_section(&mut file, &header, kind);
        }
        summary
    }

    /// Whether the day may hold `key` of `kind`: `false` only when the summary proves it does
    /// not.
    pub(crate) fn may_contain(&self, kind: Kind, key: u64) -> bool {
        match &self.sections[kind as usize] {
            Some(section) => section_contains(section, key).unwrap_or(true),
            None => true,
        }
    }
}

/// Whether the day in `dir` may hold `key` of `kind`: `false` only when its summary proves it
/// does not; `true` when it may, or when there is no usable summary.
#[cfg(test)]
fn may_contain(dir: &Path, kind: Kind, key: u64) -> bool {
    Summary::read(dir).may_contain(kind, key)
}

/// The section of `kind` in the summary `file` whose header is `header`, or `None` when it
/// cannot be read.
fn read_section(file: &mut File, header: &[u8; HEADER_LEN], kind: Kind) -> Option<Vec<u8>> {
    let at = MAGIC.len() + kind as usize * 16;
    let offset = u64::from_le_bytes(header[at..at + 8].try_into().ok()?);
    let len = u64::from_le_bytes(header[at + 8..at + 16].try_into().ok()?);
    if len > MAX_SECTION_BYTES {
        return None;
    }
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut section = vec![0u8; usize::try_from(len).ok()?];
    file.read_exact(&mut section).ok()?;
    Some(section)
}

/// `None` when the section is malformed (then the day is searched).
fn section_contains(section: &[u8], key: u64) -> Option<bool> {
    let count = u32::from_le_bytes(section.get(..4)?.try_into().ok()?);
    match count {
        0 => return Some(false),
        UNKNOWN => return Some(true),
        _ => {}
    }
    let descriptor = section.get(4..4 + BinaryFuse8::DESCRIPTOR_LEN)?;
    let fingerprints = section.get(4 + BinaryFuse8::DESCRIPTOR_LEN..)?;
    // The filter indexes its fingerprints with the descriptor's numbers: check that they fit
    // (as `xorf` builds them), so that a damaged file cannot make a lookup read out of bounds.
    let word = |i: usize| u32::from_le_bytes(descriptor[i..i + 4].try_into().expect("4 bytes"));
    let (segment_length, mask, segment_count_length) = (word(8), word(12), word(16));
    let fits = segment_length.is_power_of_two()
        && mask == segment_length - 1
        && segment_count_length % segment_length == 0
        && fingerprints.len() as u64 == u64::from(segment_count_length) + 2 * u64::from(segment_length);
    if !fits {
        return None;
    }
    Some(BinaryFuse8Ref::from_dma(descriptor, fingerprints).contains(&key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::{STRING, Schema};
    use tantivy::{Index, TantivyDocument};

    fn index_with(users: &[&str]) -> (Index, Field) {
        let mut b = Schema::builder();
        let user = b.add_text_field("user_name", STRING);
        let index = Index::create_in_ram(b.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for u in users {
            let mut doc = TantivyDocument::new();
            doc.add_text(user, u);
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
        (index, user)
    }

    #[test]
    fn a_summary_keeps_every_present_key_and_drops_almost_every_absent_one() {
        let users: Vec<String> = (0..5000).map(|i| format!("eleve{i}")).collect();
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        let (index, field) = index_with(&refs);
        let dir = tempfile::tempdir().unwrap();
        let searcher = index.reader().unwrap().searcher();
        write(dir.path(), &searcher, [(Kind::SourceIp, field), (Kind::UserName, field), (Kind::SchoolUai, field)])
            .unwrap();
        let probe = |kind, u: &str| may_contain(dir.path(), kind, key(kind, &Term::from_field_text(field, u)));
        assert!(users.iter().all(|u| probe(Kind::UserName, u)), "a filter never forgets a key");
        let false_positives = (0..10_000).filter(|i| probe(Kind::UserName, &format!("parent{i}"))).count();
        assert!(false_positives < 100, "{false_positives} false positives in 10000");
        // The kind is part of the key: an account is not a school.
        let crossed =
            (0..5000).filter(|i| probe(Kind::UserName, &format!("x{i}")) != probe(Kind::SchoolUai, &format!("x{i}")));
        assert!(crossed.count() < 100);
    }

    #[test]
    fn an_empty_kind_excludes_everything_and_a_missing_or_damaged_summary_excludes_nothing() {
        let (index, field) = index_with(&[]);
        let dir = tempfile::tempdir().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let k = key(Kind::UserName, &Term::from_field_text(field, "alice"));
        assert!(may_contain(dir.path(), Kind::UserName, k), "no summary: search the day");
        write(dir.path(), &searcher, [(Kind::SourceIp, field), (Kind::UserName, field), (Kind::SchoolUai, field)])
            .unwrap();
        assert!(!may_contain(dir.path(), Kind::UserName, k), "no account in the day");

        let (index, field) = index_with(&["alice", "bob"]);
        let searcher = index.reader().unwrap().searcher();
        write(dir.path(), &searcher, [(Kind::SourceIp, field), (Kind::UserName, field), (Kind::SchoolUai, field)])
            .unwrap();
        assert!(may_contain(dir.path(), Kind::UserName, k));
        let path = dir.path().join(SUMMARY_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let other = key(Kind::SourceIp, &Term::from_field_text(field, "mallory"));
        assert!(!may_contain(dir.path(), Kind::SourceIp, other));
        // A descriptor that would index past the fingerprints (the address section comes
        // first): the day is searched.
        let at = HEADER_LEN + 4 + 8;
        bytes[at..at + 4].copy_from_slice(&(1u32 << 30).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(may_contain(dir.path(), Kind::SourceIp, other));
        std::fs::write(&path, b"not a summary").unwrap();
        let other = key(Kind::UserName, &Term::from_field_text(field, "mallory"));
        assert!(may_contain(dir.path(), Kind::UserName, other));
    }
}
