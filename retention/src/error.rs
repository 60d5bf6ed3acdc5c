//! The errors of the archive: what went wrong, on which day directory, and what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while opening, writing, searching or purging the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot use archive directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "archive day {path} has format version {found}, newer than the {supported} this vigie \
         understands; run a newer vigie or point the archive at another directory"
    )]
    TooNew { path: PathBuf, found: u32, supported: u32 },
    #[error(
        "archive day {path} is damaged: {reason}; restore this directory from a backup \
         (never delete it: it holds legally retained records)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("tantivy error in archive day {path}: {source}")]
    Tantivy { path: PathBuf, source: tantivy::TantivyError },
    #[error("invalid archive query: {0}")]
    InvalidQuery(String),
    #[error("archive commit failed (injected by a test)")]
    InjectedFailure,
    #[error("the archive task stopped unexpectedly: {0}")]
    TaskFailed(String),
    #[error("route table {path}: {reason}")]
    BadRouteTable { path: PathBuf, reason: String },
    #[error("signing key {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("requisition refused: {0}")]
    Requisition(String),
    #[error("audit log {path} is damaged at entry {entry}: {reason}; keep it as evidence and restore it from a backup")]
    AuditTampered { path: PathBuf, entry: u64, reason: String },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ArchiveError {
        let path = path.into();
        move |source| ArchiveError::Io { path, source }
    }

    pub(crate) fn tantivy(path: impl Into<PathBuf>) -> impl FnOnce(tantivy::TantivyError) -> ArchiveError {
        let path = path.into();
        move |source| ArchiveError::Tantivy { path, source }
    }
}
