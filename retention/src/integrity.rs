//! Tamper evidence: a signed manifest per closed day, chained to the previous one, a signed
//! chain head, signed deletion certificates, and the verification that names a broken day.
//!
//! Layout: `<day>/manifest.json` (SHA-256 of every file of the day, record count, first and
//! last timestamps, the previous link of the chain) and `<day>/manifest.sig` (Ed25519 over the
//! exact bytes of `manifest.json`); `chain.json` at the root (the latest link, signed);
//! `certificates/<day>.json` for every purged day (signed; it carries the purged manifest's
//! hash and its own previous link, so the chain stays checkable across purges).
//! The chain follows closing order, walked back from the head.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::ArchiveError;
use crate::keys::{ArchiveKey, PublicKey, sha256_hex};
use crate::partition::{self, sync_dir};

pub(crate) const MANIFEST_FILE: &str = "manifest.json";
pub(crate) const SIGNATURE_FILE: &str = "manifest.sig";
pub(crate) const CHAIN_FILE: &str = "chain.json";
pub(crate) const CERTIFICATES_DIR: &str = "certificates";
const MANIFEST_VERSION: u32 = 1;

/// One link of the chain: a day and the SHA-256 of its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The day the manifest seals.
    pub day: Date,
    /// SHA-256 (hex) of its `manifest.json`.
    pub manifest_sha256: String,
}

/// What a closed day holds, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format.
    pub manifest_version: u32,
    /// The day sealed.
    pub day: Date,
    /// Live records in the day.
    pub record_count: u64,
    /// Earliest record.
    pub first: Option<Timestamp>,
    /// Latest record.
    pub last: Option<Timestamp>,
    /// SHA-256 (hex) of every file of the day, by path relative to the day's directory.
    pub files: BTreeMap<String, String>,
    /// The previously closed day, `None` for the first.
    pub previous: Option<ChainLink>,
    /// When the day was closed.
    pub closed_at: Timestamp,
}

/// The proof that a day was deleted on purpose by the retention purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionCertificate {
    /// The day deleted.
    pub day: Date,
    /// How many records it held.
    pub record_count: u64,
    /// SHA-256 of its manifest (`None` if the day was never closed).
    pub manifest_sha256: Option<String>,
    /// Its manifest's previous link, so the chain can be followed past the deleted day.
    pub previous: Option<ChainLink>,
    /// When it was deleted.
    pub deleted_at: Timestamp,
    /// Why (`retention: 365 days`).
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Signed<T> {
    content: T,
    signature: String,
}

/// One problem `verify` found, naming the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayProblem {
    /// The broken day.
    pub day: Date,
    /// What is wrong, for a person.
    pub problem: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Sealed days whose manifest, signature and files are intact.
    pub days_verified: u64,
    /// Days still open (not yet past their grace period), not sealed yet.
    pub open_days: Vec<Date>,
    /// Days deleted by the purge, with a valid certificate.
    pub certified_deletions: Vec<Date>,
    /// Everything wrong; empty when the archive is intact.
    pub problems: Vec<DayProblem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Writes `content` and its signature as one JSON file, durably.
fn write_signed<T: Serialize>(path: &Path, content: &T, key: &ArchiveKey) -> Result<(), ArchiveError> {
    let bytes = serde_json::to_vec(content).expect("serializable");
    let signed = Signed { content, signature: key.sign_hex(&bytes) };
    let mut text = serde_json::to_string_pretty(&signed).expect("serializable");
    text.push('\n');
    partition::write_durably(path, text.as_bytes())
}

fn read_signed<T: Serialize + for<'de> Deserialize<'de>>(path: &Path, public: &PublicKey) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let signed: Signed<T> = serde_json::from_str(&text).map_err(|e| format!("{} is malformed: {e}", path.display()))?;
    let bytes = serde_json::to_vec(&signed.content).expect("serializable");
    if !public.verifies(&bytes, &signed.signature) {
        return Err(format!(
            "the signature of {} does not match its content (edited or signed by another key)",
            path.display()
        ));
    }
    Ok(signed.content)
}

/// The latest link of the chain, signed (unsigned reading, for the writer side).
pub(crate) fn read_head_unverified(root: &Path) -> Result<Option<ChainLink>, ArchiveError> {
    let path = root.join(CHAIN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let signed: Signed<ChainLink> = serde_json::from_str(&text)
                .map_err(|e| ArchiveError::Corrupt { path: path.clone(), reason: e.to_string() })?;
            Ok(Some(signed.content))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ArchiveError::Io { path, source: e }),
    }
}

pub(crate) fn write_head(root: &Path, head: &ChainLink, key: &ArchiveKey) -> Result<(), ArchiveError> {
    write_signed(&root.join(CHAIN_FILE), head, key)
}

/// SHA-256 of every file under `dir` (relative paths), except Tantivy's lock files.
pub(crate) fn hash_files(dir: &Path) -> Result<BTreeMap<String, String>, ArchiveError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(ArchiveError::io(&d))? {
            let entry = entry.map_err(ArchiveError::io(&d))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if name.ends_with(".lock") || name == MANIFEST_FILE || name == SIGNATURE_FILE {
                continue;
            }
            let rel = path.strip_prefix(dir).expect("under dir").to_string_lossy().replace('\\', "/");
            let bytes = std::fs::read(&path).map_err(ArchiveError::io(&path))?;
            out.insert(rel, sha256_hex(&bytes));
        }
    }
    Ok(out)
}

/// Writes the manifest and its signature into `dir`; returns the new chain link.
pub(crate) fn seal(dir: &Path, manifest: &Manifest, key: &ArchiveKey) -> Result<ChainLink, ArchiveError> {
    let mut bytes = serde_json::to_vec_pretty(manifest).expect("serializable");
    bytes.push(b'\n');
    // The signature first: a crash between the two leaves no manifest, so the day is closed again.
    partition::write_durably(&dir.join(SIGNATURE_FILE), format!("{}\n", key.sign_hex(&bytes)).as_bytes())?;
    partition::write_durably(&dir.join(MANIFEST_FILE), &bytes)?;
    Ok(ChainLink { day: manifest.day, manifest_sha256: sha256_hex(&bytes) })
}

pub(crate) fn new_manifest(
    day: Date,
    count: u64,
    range: (Option<Timestamp>, Option<Timestamp>),
    files: BTreeMap<String, String>,
    previous: Option<ChainLink>,
    now: Timestamp,
) -> Manifest {
    Manifest {
        manifest_version: MANIFEST_VERSION,
        day,
        record_count: count,
        first: range.0,
        last: range.1,
        files,
        previous,
        closed_at: now,
    }
}

/// The manifest of a sealed day, read without checking it (for the purge's certificate).
pub(crate) fn read_manifest_unverified(dir: &Path) -> Option<(Manifest, String)> {
    let bytes = std::fs::read(dir.join(MANIFEST_FILE)).ok()?;
    let manifest = serde_json::from_slice(&bytes).ok()?;
    Some((manifest, sha256_hex(&bytes)))
}

pub(crate) fn is_sealed(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

pub(crate) fn certificate_path(root: &Path, day: Date) -> PathBuf {
    root.join(CERTIFICATES_DIR).join(format!("{day}.json"))
}

pub(crate) fn write_certificate(root: &Path, cert: &DeletionCertificate, key: &ArchiveKey) -> Result<(), ArchiveError> {
    let dir = root.join(CERTIFICATES_DIR);
    std::fs::create_dir_all(&dir).map_err(ArchiveError::io(&dir))?;
    write_signed(&certificate_path(root, cert.day), cert, key)?;
    sync_dir(&dir)
}

/// Reads every deletion certificate, checking signatures.
pub fn read_certificates(root: &Path, public: &PublicKey) -> Result<Vec<DeletionCertificate>, ArchiveError> {
    let dir = root.join(CERTIFICATES_DIR);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(out) };
    for entry in entries {
        let path = entry.map_err(ArchiveError::io(&dir))?.path();
        let cert: DeletionCertificate =
            read_signed(&path, public).map_err(|reason| ArchiveError::Corrupt { path: path.clone(), reason })?;
        out.push(cert);
    }
    out.sort_by_key(|c| c.day);
    Ok(out)
}

/// Checks the whole archive under `root` against `public`: every sealed day's signature and
/// files, the chain from the head back to the first day, and that every day directory is
/// either sealed and in the chain or still open. Names the day of each problem.
pub fn verify(root: &Path, public: &PublicKey) -> Result<VerifyReport, ArchiveError> {
    let mut report = VerifyReport::default();
    let problem = |day: Date, text: String| report_problem(day, text);
    let mut problems = Vec::new();
    let mut dirs: BTreeSet<Date> = BTreeSet::new();
    for entry in std::fs::read_dir(root).map_err(ArchiveError::io(root))? {
        let entry = entry.map_err(ArchiveError::io(root))?;
        if let Ok(day) = entry.file_name().to_string_lossy().parse::<Date>()
            && entry.path().is_dir()
        {
            dirs.insert(day);
        }
    }
    // 1. Every sealed day on its own: signature, name, files.
    let mut sealed: BTreeMap<Date, (Manifest, String)> = BTreeMap::new();
    for &day in &dirs {
        let dir = partition::day_dir(root, day);
        if !is_sealed(&dir) {
            if dir.join(SIGNATURE_FILE).exists() {
                problems.push(problem(day, "its manifest.json is missing (deleted after sealing)".into()));
            } else {
                report.open_days.push(day);
            }
            continue;
        }
        let bytes = std::fs::read(dir.join(MANIFEST_FILE)).map_err(ArchiveError::io(&dir))?;
        let signature = std::fs::read_to_string(dir.join(SIGNATURE_FILE)).unwrap_or_default();
        if !public.verifies(&bytes, &signature) {
            problems.push(problem(
                day,
                "its manifest does not match its signature (manifest edited, or signed by another key)".into(),
            ));
            continue;
        }
        let manifest: Manifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                problems.push(problem(day, format!("its manifest is malformed: {e}")));
                continue;
            }
        };
        if manifest.day != day {
            problems.push(problem(
                day,
                format!("its directory holds the manifest of {} (days reordered or renamed)", manifest.day),
            ));
            continue;
        }
        let actual = hash_files(&dir)?;
        let mut day_ok = true;
        for (file, hash) in &manifest.files {
            match actual.get(file) {
                None => {
                    problems.push(problem(day, format!("file {file} is missing")));
                    day_ok = false;
                }
                Some(h) if h != hash => {
                    problems
                        .push(problem(day, format!("file {file} was modified (SHA-256 differs from the manifest)")));
                    day_ok = false;
                }
                Some(_) => {}
            }
        }
        for file in actual.keys().filter(|f| !manifest.files.contains_key(*f)) {
            problems.push(problem(day, format!("file {file} was added after sealing")));
            day_ok = false;
        }
        if day_ok {
            report.days_verified += 1;
        }
        sealed.insert(day, (manifest, sha256_hex(&bytes)));
    }
    // 2. The chain, from the head back.
    let certificates: BTreeMap<Date, DeletionCertificate> = match read_certificates(root, public) {
        Ok(c) => c.into_iter().map(|c| (c.day, c)).collect(),
        Err(e) => {
            let day = dirs.iter().next().copied().unwrap_or(Date::constant(1970, 1, 1));
            problems.push(problem(day, format!("a deletion certificate is invalid: {e}")));
            BTreeMap::new()
        }
    };
    let head = match read_signed::<ChainLink>(&root.join(CHAIN_FILE), public) {
        Ok(h) => Some(h),
        Err(_) if !root.join(CHAIN_FILE).exists() => None,
        Err(e) => {
            let day = dirs.iter().next_back().copied().unwrap_or(Date::constant(1970, 1, 1));
            problems.push(problem(day, format!("the chain head is invalid: {e}")));
            None
        }
    };
    if head.is_none()
        && let Some(&day) = sealed.keys().next_back()
    {
        problems.push(problem(day, format!("sealed, but the archive has no valid {CHAIN_FILE}")));
    }
    let mut visited = BTreeSet::new();
    let mut link = head;
    let mut successor: Option<Date> = None;
    while let Some(current) = link.take() {
        if !visited.insert(current.day) {
            problems.push(problem(current.day, "the chain loops back to this day".into()));
            break;
        }
        let named_by = successor.map_or_else(|| "the chain head".to_owned(), |s| format!("the manifest of {s}"));
        if let Some((manifest, hash)) = sealed.get(&current.day) {
            if *hash != current.manifest_sha256 {
                problems.push(problem(
                    current.day,
                    format!("its manifest is not the one {named_by} chains to (manifest replaced)"),
                ));
            }
            link = manifest.previous.clone();
        } else if let Some(cert) = certificates.get(&current.day) {
            if cert.manifest_sha256.as_deref() != Some(current.manifest_sha256.as_str()) {
                problems.push(problem(
                    current.day,
                    format!("its deletion certificate does not match the manifest {named_by} chains to"),
                ));
            }
            report.certified_deletions.push(current.day);
            link = cert.previous.clone();
        } else if dirs.contains(&current.day) {
            // The directory exists but its manifest failed above: already reported.
            break;
        } else {
            problems.push(problem(
                current.day,
                format!("the day is missing: {named_by} chains to it, and no deletion certificate covers it (deleted)"),
            ));
            // Go on from the latest sealed day before the missing one, so that the days before
            // it are still checked (and not all reported as cut off).
            link = sealed
                .range(..current.day)
                .next_back()
                .filter(|(d, _)| !visited.contains(*d))
                .map(|(d, (_, h))| ChainLink { day: *d, manifest_sha256: h.clone() });
        }
        successor = Some(current.day);
    }
    for day in sealed.keys().filter(|d| !visited.contains(*d)) {
        problems
            .push(problem(*day, "sealed, but not in the chain (days reordered, or the chain cut before it)".into()));
    }
    report.certified_deletions.sort();
    problems.sort_by_key(|p| p.day);
    report.problems = problems;
    Ok(report)
}

fn report_problem(day: Date, problem: String) -> DayProblem {
    DayProblem { day, problem }
}
