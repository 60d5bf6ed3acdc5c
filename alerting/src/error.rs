//! The errors of the alerting crate.

use std::path::PathBuf;

/// Everything that can go wrong while recording alerts or delivering their emails.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    State(#[from] collector::StateError),
    #[error("alert database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A configured address (on-call list, sender) is not a valid email address.
    #[error(
        "invalid email address {address:?} in the alerting {field}: {reason}; write it as \
         name@domain.example"
    )]
    InvalidAddress { field: &'static str, address: String, reason: String },
    /// The policy cannot work as written.
    #[error("invalid alerting policy: {0}")]
    InvalidPolicy(String),
    /// A silence that would match every alert; refused so that a typo cannot mute everything.
    #[error("a silence must name a rule or a key (or both); an empty matcher would silence every alert")]
    EmptySilence,
    /// The SMTP password variable named in the configuration is not set.
    #[error(
        "the SMTP password environment variable {var} is not set; export it before starting vigie \
         (the password is never read from the configuration file)"
    )]
    MissingPassword { var: String },
    /// The `.eml` outbox directory cannot be created.
    #[error("cannot create the email directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    /// The SMTP transport could not be configured (TLS setup, bad host name).
    #[error("cannot configure the SMTP transport to {host}: {reason}")]
    Transport { host: String, reason: String },
    /// A stored value could not be read back (a corrupt or hand-edited database).
    #[error("corrupt alert database: {0}")]
    Corrupt(String),
    /// The named alert, incident, notice or silence does not exist (or is no longer open).
    #[error("no such {0}")]
    NotFound(String),
    /// A signed link (approval, acknowledgement) is forged, altered, or expired.
    #[error("invalid link: {0}")]
    BadToken(String),
    /// The signing key file cannot be read or created.
    #[error("cannot use the signing key {path}: {reason}; it must be 32 bytes readable by vigie only")]
    Key { path: PathBuf, reason: String },
    /// A template failed to render (a bug in a built-in template).
    #[error("cannot render the email template {name}: {reason}")]
    Template { name: String, reason: String },
    /// A blocking task panicked or was cancelled.
    #[error("alerting worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
