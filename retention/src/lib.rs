//! What is kept for the law: a Tantivy archive of connection-identification records,
//! partitioned by UTC day, kept one year, searched for requisitions.
//!
//! Layout on disk: one directory per UTC day (`2025-04-07/`) holding `partition.json` (format
//! version, day, first and last timestamps), `index/` (a Tantivy index) and, once the day is
//! closed, `summary.bin` (a filter of its addresses, accounts and schools, see `summary`),
//! `manifest.json` and `manifest.sig` (see `integrity`); at the root, `chain.json` (the
//! signed head of the manifest chain), `certificates/` (one signed deletion certificate per
//! purged day), `holds.json` (legal holds) and `late/` (records that arrived after their day
//! was sealed). A search opens only the days its time range covers and whose summary may hold
//! what it looks for, several days at a time (at least eight threads, to keep disk reads in
//! flight), and a long-lived requisition desk keeps the sealed days it opened for its next
//! searches; retention removes whole day directories. The records
//! hold what décret 2021-1362 asks for (client IP and port, protocol, operation type, time,
//! duration, account, terminal) and never the content consulted (no URL path, query string,
//! referrer or body). Nothing outside this crate writes the archive.

mod archive;
mod error;
mod integrity;
mod keys;
mod metrics;
mod partition;
mod record;
mod requisition;
mod routes;
mod schema;
mod sink;
mod summary;

pub use archive::{AppendReport, Archive, ArchiveQuery, ArchiveStats, DayStats, LegalHold, PurgeReport};
pub use error::ArchiveError;
pub use integrity::{ChainLink, DayProblem, DeletionCertificate, Manifest, VerifyReport, read_certificates, verify};
pub use keys::{ArchiveKey, PublicKey, public_key_path};
pub use metrics::ArchiveMetrics;
pub use partition::FORMAT_VERSION;
pub use record::{ConnectionRecord, Recorder};
pub use requisition::{
    AuditEntry, Export, ExportFormat, Requisition, RequisitionQuery, Requisitions, Scope, SearchPage, read_audit,
};
pub use routes::{BENEYLU3_ROUTES, Operation, RouteTable};
pub use sink::{Maintenance, run_archive, run_sink};
