//! The requisition workflow: searches and exports that require a requisition reference and
//! an operator, limited to one address (optionally a port), network, account or school within
//! a time window, and an append-only, hash-chained, signed audit log of every search, export,
//! legal hold and reading of the log itself.
//!
//! This is the library API both the CLI (`vigie archive search|export|audit`) and the web
//! page call; nothing here knows about either.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ipnet::IpNet;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::archive::{Archive, ArchiveQuery, LegalHold, OpenDays};
use crate::error::ArchiveError;
use crate::keys::{ArchiveKey, sha256_hex};
use crate::record::ConnectionRecord;

/// An export holds at most this many records; a wider request must be split by time.
const MAX_EXPORT_RECORDS: usize = 1_000_000;
/// A page holds at most this many records.
const MAX_PAGE_SIZE: usize = 10_000;
/// The longest time window one search may cover: the retention period and a little more.
const MAX_WINDOW_DAYS: i64 = 400;

/// The reference of the authority's requisition (CPP 60-1, 77-1-1, 99-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requisition {
    /// Who requires (`Parquet de Lyon`, `OPJ …, commissariat de …`).
    pub authority: String,
    /// The procedure (PV) number.
    pub procedure_number: String,
    /// The legal basis (`art. 60-1 CPP`).
    pub legal_basis: String,
    /// The requisition's date.
    pub date: Date,
}

impl Requisition {
    fn check(&self) -> Result<(), ArchiveError> {
        let missing: Vec<&str> = [
            ("authority", &self.authority),
            ("procedure number", &self.procedure_number),
            ("legal basis", &self.legal_basis),
        ]
        .into_iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(n, _)| n)
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ArchiveError::Requisition(format!(
                "the requisition reference lacks its {}; give the authority, the procedure number, the legal basis and the date",
                missing.join(", ")
            )))
        }
    }

    /// `authority / procedure_number / legal_basis / date`, for logs and headers.
    pub fn reference(&self) -> String {
        format!("{} / {} / {} / {}", self.authority, self.procedure_number, self.legal_basis, self.date)
    }
}

/// Whom or what a requisition is about: exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One client address, optionally one source port (behind CG-NAT).
    Ip {
        /// The address.
        ip: IpAddr,
        /// The source port.
        port: Option<u16>,
    },
    /// A CIDR range of client addresses.
    Network(IpNet),
    /// One account.
    User(String),
    /// One school (UAI).
    School(String),
}

/// A requisition's question: a scope within `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequisitionQuery {
    /// What is searched.
    pub scope: Scope,
    /// Inclusive start (UTC).
    pub from: Timestamp,
    /// Exclusive end (UTC).
    pub to: Timestamp,
}

impl RequisitionQuery {
    fn check(&self) -> Result<(), ArchiveError> {
        if self.to <= self.from {
            return Err(ArchiveError::Requisition(format!(
                "the time window ends ({}) before it starts ({}); give --from earlier than --to",
                self.to, self.from
            )));
        }
        if self.to.duration_since(self.from) > jiff::SignedDuration::from_hours(24 * MAX_WINDOW_DAYS) {
            return Err(ArchiveError::Requisition(format!(
                "the time window is longer than {MAX_WINDOW_DAYS} days; nothing older than a year is kept, narrow it"
            )));
        }
        match &self.scope {
            Scope::User(u) | Scope::School(u) if u.trim().is_empty() => {
                Err(ArchiveError::Requisition("the account or school searched is empty".into()))
            }
            Scope::Network(net) if net.prefix_len() < if net.addr().is_ipv4() { 16 } else { 32 } => {
                Err(ArchiveError::Requisition(format!(
                    "the range {net} is too wide for a requisition (at most a /16 in IPv4, a /32 in IPv6)"
                )))
            }
            _ => Ok(()),
        }
    }

    fn archive_query(&self, offset: usize, limit: usize) -> ArchiveQuery {
        let mut q = ArchiveQuery { from: self.from, to: self.to, offset, limit, ..ArchiveQuery::default() };
        match &self.scope {
            Scope::Ip { ip, port } => {
                q.source_ip = Some(*ip);
                q.source_port = *port;
            }
            Scope::Network(net) => q.source_network = Some(*net),
            Scope::User(u) => q.user_name = Some(u.clone()),
            Scope::School(s) => q.school_uai = Some(s.clone()),
        }
        q
    }

    /// A one-line description, for the audit log and export headers.
    pub fn describe(&self) -> String {
        let scope = match &self.scope {
            Scope::Ip { ip, port: Some(p) } => format!("ip={ip} port={p}"),
            Scope::Ip { ip, port: None } => format!("ip={ip}"),
            Scope::Network(net) => format!("network={net}"),
            Scope::User(u) => format!("user={u}"),
            Scope::School(s) => format!("school={s}"),
        };
        format!("{scope} from={} to={}", self.from, self.to)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    /// The records of this page, earliest first.
    pub records: Vec<ConnectionRecord>,
    /// How many records match in all.
    pub total: u64,
    /// This page (0-based).
    pub page: usize,
    /// The page size asked for.
    pub page_size: usize,
    /// The audit entry recording this search.
    pub audit_entry: u64,
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One header block of `# key: value` lines, then RFC 4180 CSV.
    Csv,
    /// `{"header": {...}, "records": [...]}`.
    Json,
}

/// A finished export.
#[derive(Debug, Clone)]
pub struct Export {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 (hex) of the whole file, as written to the audit log.
    pub sha256: String,
    /// Records exported.
    pub record_count: u64,
    /// The audit entry recording this export.
    pub audit_entry: u64,
}

/// The header of an export: what a court needs to trust it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExportHeader {
    title: String,
    requisition: Requisition,
    operator: String,
    query: String,
    generated_at: Timestamp,
    clock_source: String,
    record_count: u64,
    /// SHA-256 of the records section (the CSV body, or the JSON `records` array as written).
    records_sha256: String,
    audit_entry: u64,
    public_key: String,
    /// Ed25519 over the canonical JSON (keys sorted, no spaces) of this header with `signature` empty.
    signature: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3…
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub operator: String,
    /// `search`, `export`, `audit-read`, `hold`, `release`.
    pub action: String,
    /// Under which requisition (absent for reading the log).
    pub requisition: Option<Requisition>,
    /// The query, described.
    pub query: Option<String>,
    /// How many records the search matched in all (every page), or the export holds.
    pub result_count: Option<u64>,
    /// SHA-256 of the export file.
    pub export_sha256: Option<String>,
    /// The previous entry's hash (64 zeros for the first).
    pub previous_hash: String,
    /// SHA-256 of this entry (all fields above, as JSON) — the chain.
    pub hash: String,
    /// Ed25519 of `hash` by the archive key.
    pub signature: String,
}

#[derive(Serialize)]
struct AuditBody<'a> {
    seq: u64,
    at: Timestamp,
    operator: &'a str,
    action: &'a str,
    requisition: &'a Option<Requisition>,
    query: &'a Option<String>,
    result_count: Option<u64>,
    export_sha256: &'a Option<String>,
    previous_hash: &'a str,
}

impl AuditEntry {
    fn body_hash(&self) -> String {
        let body = AuditBody {
            seq: self.seq,
            at: self.at,
            operator: &self.operator,
            action: &self.action,
            requisition: &self.requisition,
            query: &self.query,
            result_count: self.result_count,
            export_sha256: &self.export_sha256,
            previous_hash: &self.previous_hash,
        };
        sha256_hex(&serde_json::to_vec(&body).expect("serializable"))
    }
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The requisition desk: search, export and audit over one archive.
pub struct Requisitions {
    archive_dir: PathBuf,
    audit_path: PathBuf,
    key: ArchiveKey,
    clock_source: String,
    clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
    /// The sealed days opened by earlier searches, kept open for the next ones.
    open_days: OpenDays,
    /// The audit log as this desk last checked and wrote it.
    checked_log: Mutex<Option<CheckedLog>>,
}

impl std::fmt::Debug for Requisitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requisitions")
            .field("archive_dir", &self.archive_dir)
            .field("audit_path", &self.audit_path)
            .field("clock_source", &self.clock_source)
            .finish()
    }
}

impl Requisitions {
    /// The desk over the archive in `archive_dir`, auditing to `audit_path` (keep it outside
    /// the searchers' reach), signing with `key`. `clock_source` is stated in every export
    /// (e.g. `chrony, synchronised to ntp.univ-lyon1.fr`).
    pub fn new(archive_dir: &Path, audit_path: &Path, key: ArchiveKey, clock_source: &str) -> Requisitions {
        Requisitions {
            archive_dir: archive_dir.to_owned(),
            audit_path: audit_path.to_owned(),
            key,
            clock_source: clock_source.to_owned(),
            clock: Box::new(Timestamp::now),
            open_days: OpenDays::default(),
            checked_log: Mutex::new(None),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Requisitions {
        self.clock = Box::new(clock);
        self
    }

    fn check_operator(operator: &str) -> Result<(), ArchiveError> {
        if operator.trim().is_empty() {
            return Err(ArchiveError::Requisition("the operator's name is required (who searches)".into()));
        }
        Ok(())
    }

    /// One page (`page`, 0-based, of `page_size` records) of the records matching `query`,
    /// audited.
    pub fn search(
        &self,
        requisition: &Requisition,
        operator: &str,
        query: &RequisitionQuery,
        page: usize,
        page_size: usize,
    ) -> Result<SearchPage, ArchiveError> {
        requisition.check()?;
        Self::check_operator(operator)?;
        query.check()?;
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(ArchiveError::Requisition(format!("the page size must be between 1 and {MAX_PAGE_SIZE}")));
        }
        let archive = Archive::open_read_only(&self.archive_dir)?;
        let q = query.archive_query(page.saturating_mul(page_size), page_size);
        let (records, total) = archive.search_and_count_kept(&q, &self.open_days)?;
        // The audit records how many records the search matched in all, not only this page.
        let entry = self.append_audit(
            operator,
            "search",
            Some(requisition.clone()),
            Some(format!("{} page={page} page_size={page_size}", query.describe())),
            Some(total),
            None,
        )?;
        Ok(SearchPage { records, total, page, page_size, audit_entry: entry.seq })
    }

    /// Every record matching `query` as a signed CSV or JSON file, audited with its SHA-256.
    pub fn export(
        &self,
        requisition: &Requisition,
        operator: &str,
        query: &RequisitionQuery,
        format: ExportFormat,
    ) -> Result<Export, ArchiveError> {
        requisition.check()?;
        Self::check_operator(operator)?;
        query.check()?;
        let archive = Archive::open_read_only(&self.archive_dir)?;
        let q = query.archive_query(0, MAX_EXPORT_RECORDS + 1);
        let records = archive.search(&q)?;
        if records.len() > MAX_EXPORT_RECORDS {
            return Err(ArchiveError::Requisition(format!(
                "more than {MAX_EXPORT_RECORDS} records match; split the time window"
            )));
        }
        let mut log = self.lock_audit()?;
        let (seq, _) = self.last_entry()?;
        let body = match format {
            ExportFormat::Csv => csv_body(&records)?,
            // Canonical form (keys sorted, as serde_json::Value writes them), so that a reader
            // can rebuild the hashed bytes from the parsed records with any JSON library.
            ExportFormat::Json => {
                serde_json::to_vec(&serde_json::to_value(&records).expect("records serialize")).expect("serializable")
            }
        };
        let mut header = ExportHeader {
            title: "Réquisition judiciaire — extraction du journal des connexions (décret 2021-1362)".into(),
            requisition: requisition.clone(),
            operator: operator.to_owned(),
            query: query.describe(),
            generated_at: (self.clock)(),
            clock_source: self.clock_source.clone(),
            record_count: records.len() as u64,
            records_sha256: sha256_hex(&body),
            audit_entry: seq + 1,
            public_key: self.key.public().to_hex(),
            signature: String::new(),
        };
        // Signed in canonical form (keys sorted, as serde_json::Value writes them), so that any
        // JSON library can rebuild the signed bytes from the header.
        let canonical =
            serde_json::to_vec(&serde_json::to_value(&header).expect("serializable")).expect("serializable");
        header.signature = self.key.sign_hex(&canonical);
        let bytes = match format {
            ExportFormat::Csv => {
                let mut out = Vec::new();
                let json = serde_json::to_value(&header).expect("serializable");
                for (k, v) in json.as_object().expect("an object") {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    writeln!(out, "# {k}: {}", v.replace(['\n', '\r'], " ")).expect("writing to memory");
                }
                out.extend_from_slice(&body);
                out
            }
            ExportFormat::Json => {
                let mut out = b"{\"header\":".to_vec();
                out.extend_from_slice(&serde_json::to_vec(&header).expect("serializable"));
                out.extend_from_slice(b",\"records\":");
                out.extend_from_slice(&body);
                out.extend_from_slice(b"}\n");
                out
            }
        };
        let sha256 = sha256_hex(&bytes);
        let entry = self.append_locked(
            &mut log,
            operator,
            "export",
            Some(requisition.clone()),
            Some(query.describe()),
            Some(records.len() as u64),
            Some(sha256.clone()),
        )?;
        Ok(Export { bytes, sha256, record_count: records.len() as u64, audit_entry: entry.seq })
    }

    /// Keeps the days of `from..=to` beyond the retention period under `requisition`, audited.
    pub fn place_hold(
        &self,
        requisition: &Requisition,
        operator: &str,
        from: Date,
        to: Date,
    ) -> Result<(), ArchiveError> {
        requisition.check()?;
        Self::check_operator(operator)?;
        let archive = Archive::open_read_only(&self.archive_dir)?;
        let mut holds = archive.legal_holds()?;
        holds.push(LegalHold { reference: requisition.reference(), from, to });
        archive.set_legal_holds(&holds)?;
        self.append_audit(
            operator,
            "hold",
            Some(requisition.clone()),
            Some(format!("days {from}..={to}")),
            None,
            None,
        )?;
        Ok(())
    }

    /// Releases every hold placed under `requisition`, audited.
    pub fn release_hold(&self, requisition: &Requisition, operator: &str) -> Result<usize, ArchiveError> {
        requisition.check()?;
        Self::check_operator(operator)?;
        let archive = Archive::open_read_only(&self.archive_dir)?;
        let mut holds = archive.legal_holds()?;
        let before = holds.len();
        holds.retain(|h| h.reference != requisition.reference());
        archive.set_legal_holds(&holds)?;
        let released = before - holds.len();
        self.append_audit(operator, "release", Some(requisition.clone()), None, Some(released as u64), None)?;
        Ok(released)
    }

    /// The whole audit log, checked (hash chain and signatures); reading it is itself audited
    /// (the returned list ends with that entry).
    pub fn audit(&self, operator: &str) -> Result<Vec<AuditEntry>, ArchiveError> {
        Self::check_operator(operator)?;
        self.append_audit(operator, "audit-read", None, None, None, None)?;
        read_audit(&self.audit_path, &self.key)
    }

    fn append_audit(
        &self,
        operator: &str,
        action: &str,
        requisition: Option<Requisition>,
        query: Option<String>,
        result_count: Option<u64>,
        export_sha256: Option<String>,
    ) -> Result<AuditEntry, ArchiveError> {
        let mut log = self.lock_audit()?;
        self.append_locked(&mut log, operator, action, requisition, query, result_count, export_sha256)
    }

    /// The last sequence number and hash of the audit log (0 and the genesis hash when it is
    /// empty), after checking it: nothing is appended to a damaged log. The part this desk
    /// checked or wrote before is checked again by its SHA-256 only, when it is unchanged; the
    /// entries appended since (by another process) are checked one by one, and the whole log
    /// when that part changed. Called with the log locked.
    fn last_entry(&self) -> Result<(u64, String), ArchiveError> {
        let bytes = read_log(&self.audit_path)?;
        let mut checked = self.checked_log.lock().unwrap_or_else(PoisonError::into_inner);
        let unchanged = checked
            .take()
            .filter(|c| bytes.len() >= c.len && Sha256::digest(&bytes[..c.len]) == c.state.clone().finalize());
        let (from, seq, previous, mut state) = match unchanged {
            Some(c) => (c.len, c.seq, c.hash, c.state),
            None => (0, 0, GENESIS.to_owned(), Sha256::new()),
        };
        let entries = check_entries(&self.audit_path, &bytes[from..], seq, &previous, &self.key)?;
        let (seq, hash) = entries.last().map_or((seq, previous), |e| (e.seq, e.hash.clone()));
        state.update(&bytes[from..]);
        *checked = Some(CheckedLog { len: bytes.len(), state, seq, hash: hash.clone() });
        Ok((seq, hash))
    }

    /// The audit log, opened for appending and locked against other writers.
    fn lock_audit(&self) -> Result<File, ArchiveError> {
        if let Some(dir) = self.audit_path.parent() {
            std::fs::create_dir_all(dir).map_err(ArchiveError::io(dir))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.audit_path)
            .map_err(ArchiveError::io(&self.audit_path))?;
        file.lock().map_err(ArchiveError::io(&self.audit_path))?;
        Ok(file)
    }

    #[allow(clippy::too_many_arguments)]
    fn append_locked(
        &self,
        log: &mut File,
        operator: &str,
        action: &str,
        requisition: Option<Requisition>,
        query: Option<String>,
        result_count: Option<u64>,
        export_sha256: Option<String>,
    ) -> Result<AuditEntry, ArchiveError> {
        let (seq, previous_hash) = self.last_entry()?;
        let mut entry = AuditEntry {
            seq: seq + 1,
            at: (self.clock)(),
            operator: operator.to_owned(),
            action: action.to_owned(),
            requisition,
            query,
            result_count,
            export_sha256,
            previous_hash,
            hash: String::new(),
            signature: String::new(),
        };
        entry.hash = entry.body_hash();
        entry.signature = self.key.sign_hex(entry.hash.as_bytes());
        let mut line = serde_json::to_string(&entry).expect("serializable");
        line.push('\n');
        log.write_all(line.as_bytes()).map_err(ArchiveError::io(&self.audit_path))?;
        log.sync_all().map_err(ArchiveError::io(&self.audit_path))?;
        if let Some(checked) = self.checked_log.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            checked.len += line.len();
            checked.state.update(line.as_bytes());
            checked.seq = entry.seq;
            checked.hash.clone_from(&entry.hash);
        }
        tracing::info!(
            seq = entry.seq,
            operator,
            action,
            requisition = entry.requisition.as_ref().map(Requisition::reference).unwrap_or_default(),
            "requisition audit entry written"
        );
        Ok(entry)
    }
}

/// Every entry of the audit log at `path`, checking the chain and each signature.
pub fn read_audit(path: &Path, key: &ArchiveKey) -> Result<Vec<AuditEntry>, ArchiveError> {
    let bytes = read_log(path)?;
    check_entries(path, &bytes, 0, GENESIS, key)
}

/// The bytes of the audit log (none when it does not exist yet).
fn read_log(path: &Path) -> Result<Vec<u8>, ArchiveError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ArchiveError::Io { path: path.to_owned(), source: e }),
    }
}

/// The entries in `bytes` (lines of the log at `path` that follow entry `seq`, whose hash is
/// `previous`), checking that each chains to the one before it, matches its hash and carries
/// the archive key's signature.
fn check_entries(
    path: &Path,
    bytes: &[u8],
    seq: u64,
    previous: &str,
    key: &ArchiveKey,
) -> Result<Vec<AuditEntry>, ArchiveError> {
    let public = key.public();
    let mut out: Vec<AuditEntry> = Vec::new();
    let mut previous = previous.to_owned();
    for (i, line) in BufReader::new(bytes).lines().enumerate() {
        let n = seq + i as u64 + 1;
        let line = line.map_err(ArchiveError::io(path))?;
        let tampered = |reason: String| ArchiveError::AuditTampered { path: path.to_owned(), entry: n, reason };
        let entry: AuditEntry = serde_json::from_str(&line).map_err(|e| tampered(format!("unreadable: {e}")))?;
        if entry.seq != n {
            return Err(tampered(format!(
                "sequence {} where {n} was expected (an entry removed or inserted)",
                entry.seq
            )));
        }
        if entry.previous_hash != previous {
            return Err(tampered("it does not chain to the entry before it".into()));
        }
        if entry.body_hash() != entry.hash {
            return Err(tampered("its content does not match its hash (edited)".into()));
        }
        if !public.verifies(entry.hash.as_bytes(), &entry.signature) {
            return Err(tampered("its signature is not the archive key's".into()));
        }
        previous = entry.hash.clone();
        out.push(entry);
    }
    Ok(out)
}

/// The part of the audit log a desk has already checked (or written itself): its length, the
/// SHA-256 of those bytes (and the hasher state that gave it, to extend it), and the last entry
/// in them.
#[derive(Debug, Clone)]
struct CheckedLog {
    len: usize,
    state: Sha256,
    seq: u64,
    hash: String,
}

const CSV_COLUMNS: &[&str] = &[
    "timestamp_utc",
    "utc_offset_seconds",
    "source_ip",
    "source_port",
    "destination_ip",
    "destination_port",
    "protocol",
    "operation",
    "user_name",
    "user_category",
    "school_uai",
    "user_agent",
    "content_id",
    "session_duration_s",
    "recipients",
    "status",
    "duration_ns",
    "dataset",
    "observer",
    "event_id",
];

fn csv_body(records: &[ConnectionRecord]) -> Result<Vec<u8>, ArchiveError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| ArchiveError::Requisition(format!("writing the CSV export: {e}"));
    w.write_record(CSV_COLUMNS).map_err(io)?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for r in records {
        w.write_record([
            r.timestamp.to_string(),
            opt(r.utc_offset_seconds.map(|v| v.to_string())),
            opt(r.source_ip.map(|v| v.to_string())),
            opt(r.source_port.map(|v| v.to_string())),
            opt(r.destination_ip.map(|v| v.to_string())),
            opt(r.destination_port.map(|v| v.to_string())),
            opt(r.protocol.clone()),
            r.operation.clone(),
            opt(r.user_name.clone()),
            opt(r.user_category.clone()),
            opt(r.school_uai.clone()),
            opt(r.user_agent.clone()),
            opt(r.content_id.clone()),
            opt(r.session_duration_s.map(|v| v.to_string())),
            r.recipients.join(";"),
            opt(r.status.map(|v| v.to_string())),
            opt(r.duration_ns.map(|v| v.to_string())),
            r.dataset.clone(),
            opt(r.observer.clone()),
            r.event_id.clone(),
        ])
        .map_err(io)?;
    }
    w.into_inner().map_err(|e| ArchiveError::Requisition(format!("writing the CSV export: {e}")))
}
