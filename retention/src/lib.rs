//! What is kept for the law: a Tantivy archive of connection-identification records,
//! partitioned by UTC day, kept one year, searched for requisitions.
//!
//! Layout on disk: one directory per UTC day (`2025-04-07/`) holding `partition.json` (format
//! version, day, first and last timestamps) and `index/` (a Tantivy index). A search opens
//! only the days its time range covers; retention removes whole day directories. The records
//! hold what décret 2021-1362 asks for (client IP and port, protocol, operation type, time,
//! duration, account, terminal) and never the content consulted (no URL path, query string,
//! referrer or body). Nothing outside this crate writes the archive.

mod archive;
mod error;
mod metrics;
mod partition;
mod record;
mod schema;
mod sink;

pub use archive::{AppendReport, Archive, ArchiveQuery, ArchiveStats, DayStats, LegalHold};
pub use error::ArchiveError;
pub use metrics::ArchiveMetrics;
pub use partition::FORMAT_VERSION;
pub use record::ConnectionRecord;
pub use sink::run_sink;
