//! The archive must outlive a year of upgrades: archives written by earlier versions of this
//! code (committed under `tests/compat/v<N>`) must still open and read back exactly.

#[path = "compat/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};

use retention::{Archive, ArchiveKey, ArchiveQuery, ConnectionRecord};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A scratch copy, so that neither opening nor the test's own writes touch the committed files.
fn open_copy(version: &str) -> (tempfile::TempDir, Archive) {
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat").join(version);
    assert!(
        committed.join("2025-04-07/partition.json").is_file(),
        "{} is missing: it is generated once by examples/generate_compat_archive.rs and committed",
        committed.display()
    );
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(&committed, scratch.path());
    let archive = Archive::open(scratch.path()).unwrap();
    (scratch, archive)
}

fn everything() -> ArchiveQuery {
    ArchiveQuery {
        from: "2025-01-01T00:00:00Z".parse().unwrap(),
        to: "2026-01-01T00:00:00Z".parse().unwrap(),
        limit: 100,
        ..ArchiveQuery::default()
    }
}

#[test]
fn a_version_1_archive_opens_and_reads_back_exactly() {
    let (_scratch, archive) = open_copy("v1");
    let days: Vec<String> = archive.days().map(|d| d.to_string()).collect();
    assert_eq!(days, ["2025-04-06", "2025-04-07"]);
    assert_eq!(archive.search(&everything()).unwrap(), fixture::expected());

    let stats = archive.stats().unwrap();
    assert_eq!((stats.total_documents, stats.duplicate_event_ids), (4, 0));
    assert_eq!(stats.days.iter().map(|d| d.documents).collect::<Vec<_>>(), [1, 3]);

    let by_ip = ArchiveQuery {
        source_ip: Some("2001:db8:85a3::8a2e:370:7334".parse().unwrap()),
        source_port: Some(443),
        ..everything()
    };
    let found = archive.search(&by_ip).unwrap();
    assert_eq!(found.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(), ["nginx-main:77"]);
    let by_user = ArchiveQuery { user_name: Some("élève.dupont".into()), ..everything() };
    assert_eq!(archive.search(&by_user).unwrap()[0].operation, "connexion");
    // The replayed id reads back with its second values only.
    let replaced = ArchiveQuery { user_name: Some("parent42".into()), ..everything() };
    assert!(archive.search(&replaced).unwrap().is_empty());
    let replacing = ArchiveQuery { user_name: Some("parent43".into()), ..everything() };
    assert_eq!(archive.search(&replacing).unwrap()[0].status, Some(303));
}

#[test]
fn a_version_1_archive_accepts_new_records() {
    let (scratch, mut archive) = open_copy("v1");
    let late = ConnectionRecord {
        event_id: "apache-main:4096".into(),
        timestamp: "2025-04-06T10:00:00Z".parse().unwrap(),
        ..fixture::expected()[0].clone()
    };
    archive.append(std::slice::from_ref(&late)).unwrap();
    archive.commit().unwrap();
    drop(archive);
    let archive = Archive::open(scratch.path()).unwrap();
    let mut expected = fixture::expected();
    expected.insert(0, late);
    assert_eq!(archive.search(&everything()).unwrap(), expected);
    assert_eq!(archive.stats().unwrap().duplicate_event_ids, 0);
}

#[test]
fn a_version_1_archive_verifies_as_unsealed_and_can_be_sealed() {
    let (scratch, mut archive) = open_copy("v1");
    let key = ArchiveKey::from_seed([9; 32]);
    let report = retention::verify(scratch.path(), &key.public()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.open_days.len(), 2);
    archive.set_key(key.clone());
    archive.close_days("2025-05-01T00:00:00Z".parse().unwrap(), jiff::SignedDuration::from_hours(2)).unwrap();
    let report = retention::verify(scratch.path(), &key.public()).unwrap();
    assert!(report.is_intact() && report.days_verified == 2, "{report:?}");
    assert_eq!(archive.search(&everything()).unwrap(), fixture::expected());
}

/// What every archive made from the v2 fixture records must show, whatever its format version:
/// two days that verify with the fixture's key, the records read back exactly, and network,
/// school and account searches.
fn check_v2_records(version: &str) -> (tempfile::TempDir, Archive) {
    let (scratch, archive) = open_copy(version);
    let days: Vec<String> = archive.days().map(|d| d.to_string()).collect();
    assert_eq!(days, ["2025-04-06", "2025-04-07"]);
    let public = ArchiveKey::from_seed(fixture::V2_KEY_SEED).public();
    let report = retention::verify(scratch.path(), &public).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.days_verified, 2);
    assert_eq!(archive.search(&everything()).unwrap(), fixture::expected_v2());
    let network = ArchiveQuery { source_network: Some("192.0.2.0/24".parse().unwrap()), ..everything() };
    let users: Vec<_> = archive.search(&network).unwrap().into_iter().filter_map(|r| r.user_name).collect();
    assert_eq!(users, ["élève.dupont", "élève.dupont", "enseignant.martin"]);
    let school = ArchiveQuery { school_uai: Some("0691234X".into()), ..everything() };
    assert_eq!(archive.count(&school).unwrap(), 2);
    (scratch, archive)
}

#[test]
fn a_version_2_archive_opens_verifies_and_reads_back_exactly() {
    check_v2_records("v2");
}

#[test]
fn a_version_3_archive_opens_verifies_reads_back_exactly_and_skips_days_by_their_summary() {
    let (scratch, archive) = check_v2_records("v3");
    let days: Vec<String> = archive.days().map(|d| d.to_string()).collect();
    let by_port = ArchiveQuery {
        source_ip: Some("2001:db8:85a3::8a2e:370:7334".parse().unwrap()),
        source_port: Some(443),
        ..everything()
    };
    assert_eq!(archive.search(&by_port).unwrap().len(), 1);
    for day in &days {
        let manifest = std::fs::read_to_string(scratch.path().join(day).join("manifest.json")).unwrap();
        assert!(manifest.contains("\"summary.bin\""), "version 3 seals a summary with each day: {manifest}");
    }
    // With both indexes gone, a search for an address neither day holds still answers (their
    // summaries exclude it), and one for an address they hold fails (it needs the index).
    for day in &days {
        std::fs::remove_file(scratch.path().join(day).join("index/meta.json")).unwrap();
    }
    let archive = Archive::open_read_only(scratch.path()).unwrap();
    let absent = ArchiveQuery { source_ip: Some("198.51.100.200".parse().unwrap()), ..everything() };
    assert_eq!(archive.search_and_count(&absent).unwrap(), (Vec::new(), 0));
    let present = ArchiveQuery { source_ip: Some("192.0.2.10".parse().unwrap()), ..everything() };
    assert!(archive.search(&present).is_err());
}
