//! The Tantivy schema of a day partition, and the conversion between records and documents.
//!
//! Format version 2 added user category, content id, session duration and recipients, and made
//! the client address and port fast fields for CIDR ranges. Format version 3 keeps the same
//! fields but indexes only what a requisition searches on (client address, account, school, and
//! the event id for idempotent replacement); time and port are fast fields only (range and term
//! queries run on the column), and the document store is compressed with zstd (see
//! [`index_settings`]). Any change to field names, types or options is a new format version: the
//! compatibility tests in `tests/compat` keep the archives of versions 1, 2 and 3 readable (a
//! version 1 day simply has no value for the new fields). Fields are resolved by name from each
//! day's own schema, so the queries work on every version.

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

use tantivy::schema::{
    FAST, Field, IndexRecordOption, IpAddrOptions, STORED, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{IndexSettings, TantivyDocument};

use crate::error::ArchiveError;
use crate::record::ConnectionRecord;

pub(crate) const EVENT_ID: &str = "event_id";
pub(crate) const TIMESTAMP_NS: &str = "timestamp_ns";
pub(crate) const SOURCE_IP: &str = "source_ip";
pub(crate) const SOURCE_PORT: &str = "source_port";

/// The values of one document read from the fast fields (columns), for the fields format
/// version 3 keeps only there. A stored value, in older versions, takes precedence.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FastValues {
    pub(crate) timestamp_ns: Option<i64>,
    pub(crate) source_ip: Option<Ipv6Addr>,
    pub(crate) source_port: Option<u64>,
}

/// The fields of one partition, resolved by name from the index's own schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) event_id: Field,
    pub(crate) timestamp_ns: Field,
    utc_offset_seconds: Field,
    dataset: Field,
    pub(crate) source_ip: Field,
    pub(crate) source_port: Field,
    destination_ip: Field,
    destination_port: Field,
    protocol: Field,
    operation: Field,
    pub(crate) user_name: Field,
    user_agent: Field,
    status: Field,
    duration_ns: Field,
    pub(crate) school_uai: Field,
    observer: Field,
    user_category: Option<Field>,
    content_id: Option<Field>,
    session_duration_s: Option<Field>,
    recipients: Option<Field>,
}

/// The schema new partitions are created with (format version 3). Only what a requisition
/// searches on is indexed: the event id (idempotent replacement), the client address (exact IP;
/// also a fast field for CIDR ranges), the account and the school. Time and port are fast fields
/// (Tantivy runs range and term queries on the column); everything else is only stored. Time,
/// address and port are read back from their columns ([`FastValues`]), not stored twice. No
/// field norms: they serve relevance scoring, which a requisition never uses.
pub(crate) fn schema() -> Schema {
    let exact = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        )
        .set_stored();
    let mut b = Schema::builder();
    b.add_text_field(EVENT_ID, exact.clone());
    b.add_i64_field(TIMESTAMP_NS, FAST);
    b.add_i64_field("utc_offset_seconds", STORED);
    b.add_text_field("dataset", STORED);
    b.add_ip_addr_field(SOURCE_IP, IpAddrOptions::default().set_indexed().set_fast());
    b.add_u64_field(SOURCE_PORT, FAST);
    b.add_ip_addr_field("destination_ip", STORED);
    b.add_u64_field("destination_port", STORED);
    b.add_text_field("protocol", STORED);
    b.add_text_field("operation", STORED);
    b.add_text_field("user_name", exact.clone());
    b.add_text_field("user_agent", STORED);
    b.add_u64_field("status", STORED);
    b.add_u64_field("duration_ns", STORED);
    b.add_text_field("school_uai", exact);
    b.add_text_field("observer", STORED);
    b.add_text_field("user_category", STORED);
    b.add_text_field("content_id", STORED);
    b.add_u64_field("session_duration_s", STORED);
    b.add_text_field("recipients", STORED);
    b.build()
}

/// The zstd level of the document store. Level 3 is zstd's default: most of the gain of the
/// higher levels at a fraction of their cost.
const DOCSTORE_ZSTD_LEVEL: i32 = 3;
/// The uncompressed size of one document-store block. Larger blocks compress better (records of
/// one day repeat agents, operations and prefixes); each record read decompresses its block.
const DOCSTORE_BLOCK_BYTES: usize = 64 * 1024;

/// The index settings new partitions are created with (format version 3): a zstd-compressed
/// document store in 64 KiB blocks. Older days keep the settings written in their `meta.json`.
pub(crate) fn index_settings() -> IndexSettings {
    IndexSettings {
        docstore_compression: Compressor::Zstd(ZstdCompressor { compression_level: Some(DOCSTORE_ZSTD_LEVEL) }),
        docstore_blocksize: DOCSTORE_BLOCK_BYTES,
        ..IndexSettings::default()
    }
}

impl Fields {
    pub(crate) fn resolve(schema: &Schema, dir: &Path) -> Result<Fields, ArchiveError> {
        let f = |name: &str| {
            schema.get_field(name).map_err(|_| ArchiveError::Corrupt {
                path: dir.to_owned(),
                reason: format!("its index has no field `{name}`"),
            })
        };
        Ok(Fields {
            event_id: f(EVENT_ID)?,
            timestamp_ns: f(TIMESTAMP_NS)?,
            utc_offset_seconds: f("utc_offset_seconds")?,
            dataset: f("dataset")?,
            source_ip: f(SOURCE_IP)?,
            source_port: f(SOURCE_PORT)?,
            destination_ip: f("destination_ip")?,
            destination_port: f("destination_port")?,
            protocol: f("protocol")?,
            operation: f("operation")?,
            user_name: f("user_name")?,
            user_agent: f("user_agent")?,
            status: f("status")?,
            duration_ns: f("duration_ns")?,
            school_uai: f("school_uai")?,
            observer: f("observer")?,
            user_category: schema.get_field("user_category").ok(),
            content_id: schema.get_field("content_id").ok(),
            session_duration_s: schema.get_field("session_duration_s").ok(),
            recipients: schema.get_field("recipients").ok(),
        })
    }

    pub(crate) fn document_of(&self, r: &ConnectionRecord) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_text(self.event_id, &r.event_id);
        doc.add_i64(self.timestamp_ns, timestamp_ns(r.timestamp));
        if let Some(v) = r.utc_offset_seconds {
            doc.add_i64(self.utc_offset_seconds, i64::from(v));
        }
        doc.add_text(self.dataset, &r.dataset);
        if let Some(ip) = r.source_ip {
            doc.add_ip_addr(self.source_ip, to_v6(ip));
        }
        if let Some(v) = r.source_port {
            doc.add_u64(self.source_port, u64::from(v));
        }
        if let Some(ip) = r.destination_ip {
            doc.add_ip_addr(self.destination_ip, to_v6(ip));
        }
        if let Some(v) = r.destination_port {
            doc.add_u64(self.destination_port, u64::from(v));
        }
        let texts = [
            (self.protocol, &r.protocol),
            (self.user_name, &r.user_name),
            (self.user_agent, &r.user_agent),
            (self.school_uai, &r.school_uai),
            (self.observer, &r.observer),
        ];
        for (field, value) in texts {
            if let Some(v) = value {
                doc.add_text(field, v);
            }
        }
        doc.add_text(self.operation, &r.operation);
        if let Some(v) = r.status {
            doc.add_u64(self.status, u64::from(v));
        }
        if let Some(v) = r.duration_ns {
            doc.add_u64(self.duration_ns, v);
        }
        if let (Some(f), Some(v)) = (self.user_category, &r.user_category) {
            doc.add_text(f, v);
        }
        if let (Some(f), Some(v)) = (self.content_id, &r.content_id) {
            doc.add_text(f, v);
        }
        if let (Some(f), Some(v)) = (self.session_duration_s, r.session_duration_s) {
            doc.add_u64(f, v);
        }
        if let Some(f) = self.recipients {
            for v in &r.recipients {
                doc.add_text(f, v);
            }
        }
        doc
    }

    pub(crate) fn record_of(
        &self,
        doc: &TantivyDocument,
        fast: FastValues,
        dir: &Path,
    ) -> Result<ConnectionRecord, ArchiveError> {
        let corrupt = |reason: &str| ArchiveError::Corrupt { path: dir.to_owned(), reason: reason.to_owned() };
        let text = |f: Field| doc.get_first(f).and_then(|v| v.as_str().map(str::to_owned));
        let int = |f: Field| doc.get_first(f).and_then(|v| v.as_i64());
        let uint = |f: Field| doc.get_first(f).and_then(|v| v.as_u64());
        let ip = |f: Field| doc.get_first(f).and_then(|v| v.as_ip_addr()).map(from_v6);
        let port = |v: Option<u64>| v.map(|v| u16::try_from(v).map_err(|_| corrupt("a stored port exceeds 65535")));
        let nanos =
            int(self.timestamp_ns).or(fast.timestamp_ns).ok_or_else(|| corrupt("a document has no timestamp"))?;
        Ok(ConnectionRecord {
            event_id: text(self.event_id).ok_or_else(|| corrupt("a document has no event id"))?,
            timestamp: jiff::Timestamp::from_nanosecond(i128::from(nanos))
                .map_err(|_| corrupt("a stored timestamp is out of range"))?,
            utc_offset_seconds: int(self.utc_offset_seconds)
                .map(|v| i32::try_from(v).map_err(|_| corrupt("a stored UTC offset is out of range")))
                .transpose()?,
            dataset: text(self.dataset).unwrap_or_default(),
            source_ip: ip(self.source_ip).or(fast.source_ip.map(from_v6)),
            source_port: port(uint(self.source_port).or(fast.source_port)).transpose()?,
            destination_ip: ip(self.destination_ip),
            destination_port: port(uint(self.destination_port)).transpose()?,
            protocol: text(self.protocol),
            operation: text(self.operation).unwrap_or_default(),
            user_name: text(self.user_name),
            user_agent: text(self.user_agent),
            status: uint(self.status)
                .map(|v| u16::try_from(v).map_err(|_| corrupt("a stored status exceeds 65535")))
                .transpose()?,
            duration_ns: uint(self.duration_ns),
            school_uai: text(self.school_uai),
            observer: text(self.observer),
            user_category: self.user_category.and_then(text),
            content_id: self.content_id.and_then(text),
            session_duration_s: self.session_duration_s.and_then(uint),
            recipients: self
                .recipients
                .map(|f| doc.get_all(f).filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        })
    }
}

/// Nanoseconds since the epoch; an `i64` covers 1677–2262, which the archive never leaves.
pub(crate) fn timestamp_ns(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t.as_second() < 0 { i64::MIN } else { i64::MAX })
}

/// Tantivy stores every address as IPv6; IPv4 goes in as its mapped form (`::ffff:a.b.c.d`).
pub(crate) fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The inverse of [`to_v6`]. A genuine IPv6 address in `::ffff:0:0/96` reads back as IPv4,
/// which names the same host.
pub(crate) fn from_v6(ip: Ipv6Addr) -> IpAddr {
    match ip.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(ip),
    }
}
