//! Errors of the enrichment setup: each names the file at fault and what to do about it.

use std::path::PathBuf;

/// Why an enrichment table could not be loaded. Lookups never fail; only loading does.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error(
        "GeoIP database {}: cannot read the file: {source}; check the path in the configuration \
         or download the database (for example with MaxMind's geoipupdate)",
        .path.display()
    )]
    GeoIpRead { path: PathBuf, source: std::io::Error },

    #[error(
        "GeoIP database {}: not a valid MaxMind DB file ({source}); the file is corrupt or \
         truncated, download it again",
        .path.display()
    )]
    GeoIpInvalid { path: PathBuf, source: maxminddb::MaxMindDbError },

    #[error(
        "GeoIP database {}: it is a \"{found}\" database but {expected} is expected here; \
         check which file is configured for which role",
        .path.display()
    )]
    GeoIpWrongKind { path: PathBuf, found: String, expected: &'static str },

    #[error("GeoIP: no database is configured; set `location` (City or Country database) and/or `asn`")]
    GeoIpNothingConfigured,

    #[error("schools file {}: cannot read it: {source}", .path)]
    SchoolsRead { path: String, source: std::io::Error },

    /// A bad line of the schools CSV. `line` is 1-based, the header being line 1.
    #[error("schools file {path}, line {line}{}: {problem}", field_suffix(.field))]
    SchoolsLine { path: String, line: u64, field: Option<&'static str>, problem: String },
}

fn field_suffix(field: &Option<&'static str>) -> String {
    field.map(|f| format!(", field `{f}`")).unwrap_or_default()
}
