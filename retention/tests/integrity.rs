//! Sealing, tampering, retention and requisitions, through the crate's public API, with an
//! injected clock.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use retention::{
    Archive, ArchiveKey, ConnectionRecord, ExportFormat, LegalHold, Requisition, RequisitionQuery, Requisitions, Scope,
    read_audit, read_certificates, verify,
};

fn rec(id: &str, at: &str, ip: &str, port: u16, user: &str) -> ConnectionRecord {
    ConnectionRecord {
        event_id: id.into(),
        timestamp: at.parse().unwrap(),
        utc_offset_seconds: Some(7200),
        dataset: "apache.access".into(),
        source_ip: Some(ip.parse().unwrap()),
        source_port: Some(port),
        destination_ip: Some("203.0.113.5".parse().unwrap()),
        destination_port: Some(443),
        protocol: Some("HTTP/1.1".into()),
        operation: "connexion".into(),
        user_name: Some(user.into()),
        user_category: Some("eleve".into()),
        user_agent: Some("Mozilla/5.0".into()),
        status: Some(302),
        duration_ns: None,
        school_uai: Some("0690001A".into()),
        observer: Some("web1".into()),
        content_id: None,
        session_duration_s: None,
        recipients: Vec::new(),
    }
}

fn key() -> ArchiveKey {
    ArchiveKey::from_seed([42; 32])
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const GRACE: SignedDuration = SignedDuration::from_hours(2);

/// Three days (5, 6, 7 April 2025), each with two commits (so two segments before sealing),
/// sealed on 9 April.
fn sealed_archive(dir: &Path) -> Archive {
    let mut archive = Archive::open(dir).unwrap();
    archive.set_key(key());
    for day in 5..=7 {
        for half in 0..2 {
            let at = format!("2025-04-0{day}T1{half}:00:00Z");
            archive
                .append(&[
                    rec(&format!("w:{day}{half}1"), &at, "192.0.2.10", 40000 + day, "alice"),
                    rec(&format!("w:{day}{half}2"), &at, "198.51.100.7", 50000, "bob"),
                ])
                .unwrap();
            archive.commit().unwrap();
        }
    }
    let links = archive.close_days(ts("2025-04-09T00:00:00Z"), GRACE).unwrap();
    assert_eq!(links.iter().map(|l| l.day.to_string()).collect::<Vec<_>>(), ["2025-04-05", "2025-04-06", "2025-04-07"]);
    archive
}

fn broken_days(dir: &Path) -> Vec<String> {
    let report = verify(dir, &key().public()).unwrap();
    let mut days: Vec<String> = report.problems.iter().map(|p| p.day.to_string()).collect();
    days.dedup();
    days
}

#[test]
fn a_day_is_sealed_only_after_its_grace_period_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut archive = Archive::open(dir.path()).unwrap();
    archive.set_key(key());
    archive.append(&[rec("w:1", "2025-04-07T23:00:00Z", "192.0.2.1", 1, "a")]).unwrap();
    archive.commit().unwrap();
    assert!(archive.close_days(ts("2025-04-08T01:59:59Z"), GRACE).unwrap().is_empty(), "inside the grace period");
    let links = archive.close_days(ts("2025-04-08T02:00:00Z"), GRACE).unwrap();
    assert_eq!(links.len(), 1);
    let report = verify(dir.path(), &key().public()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.days_verified, 1);
    // Another key does not verify it.
    let other = verify(dir.path(), &ArchiveKey::from_seed([1; 32]).public()).unwrap();
    assert!(!other.is_intact());
    assert!(other.problems.iter().all(|p| p.day.to_string() == "2025-04-07"), "{other:?}");
}

#[test]
fn a_sealed_day_is_merged_and_late_records_are_kept_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut archive = sealed_archive(dir.path());
    let segments = std::fs::read_dir(dir.path().join("2025-04-06/index"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "store"))
        .count();
    assert_eq!(segments, 1, "two commits merged into one segment");
    // A replay of a sealed record is dropped; a new one goes to the late file; nothing changes
    // in the sealed day, which still verifies.
    let replay = rec("w:611", "2025-04-06T11:00:00Z", "192.0.2.10", 40006, "alice");
    let late = rec("w:late", "2025-04-06T23:30:00Z", "192.0.2.99", 1234, "carol");
    let report = archive.append_report(&[replay, late.clone()]).unwrap();
    assert_eq!((report.appended, report.replaced), (2, 1));
    archive.commit().unwrap();
    assert!(verify(dir.path(), &key().public()).unwrap().is_intact());
    let q = retention::ArchiveQuery {
        from: ts("2025-04-06T00:00:00Z"),
        to: ts("2025-04-07T00:00:00Z"),
        limit: 100,
        ..Default::default()
    };
    let found = archive.search(&q).unwrap();
    assert_eq!(found.len(), 5);
    assert_eq!(found.last().unwrap(), &late);
    assert_eq!(archive.count(&q).unwrap(), 5);
}

#[test]
fn a_search_skips_the_sealed_days_whose_summary_lacks_the_address_account_or_school() {
    let dir = tempfile::tempdir().unwrap();
    let mut archive = sealed_archive(dir.path());
    // Every sealed day has a summary, covered by its manifest.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("2025-04-06/manifest.json")).unwrap()).unwrap();
    assert!(manifest["files"]["summary.bin"].is_string(), "{manifest}");
    // A record of a sealed day for an address the day's summary does not hold: kept beside it.
    let late = rec("w:late", "2025-04-06T23:30:00Z", "192.0.2.99", 1234, "carol");
    archive.append(std::slice::from_ref(&late)).unwrap();
    archive.commit().unwrap();
    // Break the index of the 6th: a search that opens it fails.
    std::fs::remove_file(dir.path().join("2025-04-06/index/meta.json")).unwrap();
    let week = |f: &dyn Fn(&mut retention::ArchiveQuery)| {
        let mut q = retention::ArchiveQuery {
            from: ts("2025-04-05T00:00:00Z"),
            to: ts("2025-04-08T00:00:00Z"),
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        archive.search_and_count(&q)
    };
    // Absent from every summary: no index is opened, nothing is found.
    let (found, total) = week(&|q| q.source_ip = Some("203.0.113.77".parse().unwrap())).unwrap();
    assert_eq!((found.len(), total), (0, 0));
    assert_eq!(week(&|q| q.user_name = Some("mallory".into())).unwrap().1, 0);
    assert_eq!(week(&|q| q.school_uai = Some("0750001Z".into())).unwrap().1, 0);
    // The late record is still found: the summary skips only the day's index.
    let (found, total) = week(&|q| q.source_ip = Some("192.0.2.99".parse().unwrap())).unwrap();
    assert_eq!((found, total), (vec![late], 1));
    // Present in the 6th: its (broken) index is opened, and the error shows it.
    assert!(week(&|q| q.source_ip = Some("192.0.2.10".parse().unwrap())).is_err());
    assert!(week(&|q| q.user_name = Some("bob".into())).is_err());
    // A search by range has no summary to consult.
    assert!(week(&|q| q.source_network = Some("203.0.113.0/24".parse().unwrap())).is_err());
}

#[test]
fn a_flipped_byte_in_a_segment_names_the_day() {
    let dir = tempfile::tempdir().unwrap();
    drop(sealed_archive(dir.path()));
    let store = std::fs::read_dir(dir.path().join("2025-04-06/index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "idx"))
        .unwrap();
    let mut bytes = std::fs::read(&store).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&store, bytes).unwrap();
    assert_eq!(broken_days(dir.path()), ["2025-04-06"]);
}

#[test]
fn a_deleted_day_is_named_by_its_successor_or_the_head() {
    let dir = tempfile::tempdir().unwrap();
    drop(sealed_archive(dir.path()));
    std::fs::remove_dir_all(dir.path().join("2025-04-06")).unwrap();
    let report = verify(dir.path(), &key().public()).unwrap();
    assert_eq!(broken_days(dir.path()), ["2025-04-06"], "{report:?}");
    assert!(report.problems[0].problem.contains("missing"), "{report:?}");

    let dir = tempfile::tempdir().unwrap();
    drop(sealed_archive(dir.path()));
    std::fs::remove_dir_all(dir.path().join("2025-04-07")).unwrap();
    assert_eq!(broken_days(dir.path()), ["2025-04-07"]);
}

#[test]
fn an_edited_manifest_names_the_day() {
    let dir = tempfile::tempdir().unwrap();
    drop(sealed_archive(dir.path()));
    let path = dir.path().join("2025-04-05/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"record_count\": 4", "\"record_count\": 3");
    std::fs::write(&path, text).unwrap();
    assert_eq!(broken_days(dir.path()), ["2025-04-05"]);
}

#[test]
fn reordered_days_are_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(sealed_archive(dir.path()));
    let (a, b, tmp) = (dir.path().join("2025-04-05"), dir.path().join("2025-04-06"), dir.path().join("swap"));
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    assert_eq!(broken_days(dir.path()), ["2025-04-05", "2025-04-06"]);
}

#[test]
fn retention_keeps_day_364_deletes_day_366_keeps_held_days_and_certifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut archive = Archive::open(dir.path()).unwrap();
    archive.set_key(key());
    let now = ts("2026-04-07T12:00:00Z");
    let day = |age: i64| (now - SignedDuration::from_hours(24 * age)).to_string();
    // Days aged 366 (two of them: one under hold), 365 and 364.
    archive.append(&[rec("old", &day(366), "192.0.2.1", 1, "a")]).unwrap();
    archive.append(&[rec("held", &day(367), "192.0.2.2", 2, "b")]).unwrap();
    archive.append(&[rec("edge", &day(365), "192.0.2.3", 3, "c")]).unwrap();
    archive.append(&[rec("young", &day(364), "192.0.2.4", 4, "d")]).unwrap();
    archive.commit().unwrap();
    archive.close_days(now, GRACE).unwrap();
    let held_day: jiff::civil::Date = "2025-04-05".parse().unwrap();
    let hold = LegalHold { reference: "PV 2025/123".into(), from: held_day, to: held_day };

    let dry = archive.purge(now, 365, std::slice::from_ref(&hold), true).unwrap();
    assert_eq!(dry.deleted.iter().map(|c| c.day.to_string()).collect::<Vec<_>>(), ["2025-04-06"]);
    assert_eq!(archive.days().count(), 4, "a dry run deletes nothing");

    let report = archive.purge(now, 365, std::slice::from_ref(&hold), false).unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert_eq!(report.held, [(held_day, "PV 2025/123".to_owned())]);
    let cert = &report.deleted[0];
    assert_eq!((cert.day.to_string().as_str(), cert.record_count), ("2025-04-06", 1));
    assert!(cert.manifest_sha256.is_some());
    let days: Vec<String> = archive.days().map(|d| d.to_string()).collect();
    assert_eq!(days, ["2025-04-05", "2025-04-07", "2025-04-08"], "366 gone, held and 365/364 kept");
    let on_disk = read_certificates(dir.path(), &key().public()).unwrap();
    assert_eq!(on_disk, report.deleted);
    // The chain still verifies across the certified deletion.
    let verified = verify(dir.path(), &key().public()).unwrap();
    assert!(verified.is_intact(), "{verified:?}");
    assert_eq!(verified.certified_deletions.len(), 1);
    // Hold released: the held day goes too.
    let report = archive.purge(now, 365, &[], false).unwrap();
    assert_eq!(report.deleted.iter().map(|c| c.day.to_string()).collect::<Vec<_>>(), ["2025-04-05"]);
    assert!(verify(dir.path(), &key().public()).unwrap().is_intact());
}

fn requisition() -> Requisition {
    Requisition {
        authority: "Parquet de Lyon".into(),
        procedure_number: "PV 2025/00042".into(),
        legal_basis: "art. 60-1 CPP".into(),
        date: "2025-04-10".parse().unwrap(),
    }
}

#[test]
fn requisitions_are_scoped_paginated_exported_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = dir.path().join("archive");
    drop(sealed_archive(&archive_dir));
    let audit = dir.path().join("audit/requisitions.jsonl");
    let desk =
        Requisitions::new(&archive_dir, &audit, key(), "chrony (test)").with_clock(|| ts("2025-04-10T09:00:00Z"));
    let window = |scope| RequisitionQuery { scope, from: ts("2025-04-01T00:00:00Z"), to: ts("2025-04-30T00:00:00Z") };

    // Refusals: no reference, no operator, no window.
    let no_ref = Requisition { procedure_number: " ".into(), ..requisition() };
    let ip = Scope::Ip { ip: "192.0.2.10".parse().unwrap(), port: None };
    let err = desk.search(&no_ref, "Mme Legrand", &window(ip.clone()), 0, 10).unwrap_err().to_string();
    assert!(err.contains("procedure number"), "{err}");
    assert!(desk.search(&requisition(), "", &window(ip.clone()), 0, 10).is_err());
    let backwards =
        RequisitionQuery { from: ts("2025-04-30T00:00:00Z"), to: ts("2025-04-01T00:00:00Z"), scope: ip.clone() };
    assert!(desk.search(&requisition(), "Mme Legrand", &backwards, 0, 10).is_err());

    // By IP: 6 records, in pages of 4.
    let page0 = desk.search(&requisition(), "Mme Legrand", &window(ip.clone()), 0, 4).unwrap();
    let page1 = desk.search(&requisition(), "Mme Legrand", &window(ip.clone()), 1, 4).unwrap();
    assert_eq!((page0.total, page0.records.len(), page1.records.len()), (6, 4, 2));
    assert!(page0.records.iter().chain(&page1.records).all(|r| r.user_name.as_deref() == Some("alice")));
    assert!(page0.records.last().unwrap().timestamp <= page1.records[0].timestamp, "earliest first across pages");
    // By IP and port, by network, by user, by school.
    let port = Scope::Ip { ip: "192.0.2.10".parse().unwrap(), port: Some(40006) };
    assert_eq!(desk.search(&requisition(), "Mme Legrand", &window(port), 0, 100).unwrap().total, 2);
    let net = Scope::Network("198.51.100.0/24".parse().unwrap());
    assert_eq!(desk.search(&requisition(), "Mme Legrand", &window(net), 0, 100).unwrap().total, 6);
    let user = Scope::User("bob".into());
    assert_eq!(desk.search(&requisition(), "Mme Legrand", &window(user), 0, 100).unwrap().total, 6);
    let school = Scope::School("0690001A".into());
    assert_eq!(desk.search(&requisition(), "Mme Legrand", &window(school), 0, 100).unwrap().total, 12);

    // Exports: the header states everything, the signature checks, the hash is audited.
    let csv = desk.export(&requisition(), "Mme Legrand", &window(ip.clone()), ExportFormat::Csv).unwrap();
    let text = String::from_utf8(csv.bytes.clone()).unwrap();
    for needed in [
        "# requisition:",
        "PV 2025/00042",
        "# clock_source: chrony (test)",
        "# record_count: 6",
        "# records_sha256:",
        "# signature:",
        "timestamp_utc,utc_offset_seconds,source_ip,source_port",
    ] {
        assert!(text.contains(needed), "`{needed}` missing from:\n{text}");
    }
    assert_eq!(text.lines().filter(|l| !l.starts_with('#') && l.contains("192.0.2.10")).count(), 6);
    let json = desk.export(&requisition(), "Mme Legrand", &window(ip), ExportFormat::Json).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.bytes).unwrap();
    assert_eq!(value["header"]["record_count"], 6);
    assert_eq!(value["records"].as_array().unwrap().len(), 6);
    let mut header = value["header"].clone();
    let signature = header["signature"].as_str().unwrap().to_owned();
    header["signature"] = "".into();
    // Field order is the struct's, as serialized by the exporter.
    let bytes = serde_json::to_vec(&header).unwrap();
    assert!(key().public().verifies(&bytes, &signature), "the export header's signature verifies");
    let records_bytes = serde_json::to_vec(&value["records"]).unwrap();
    assert_eq!(value["header"]["records_sha256"], retention_sha256(&records_bytes));

    // The audit log: every search and export, chained; reading it is audited too.
    let entries = desk.audit("M. Martin (DPO)").unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["search", "search", "search", "search", "search", "search", "export", "export", "audit-read"]);
    assert_eq!(entries[6].export_sha256.as_deref(), Some(csv.sha256.as_str()));
    assert_eq!(entries[6].result_count, Some(6));
    // A search is audited with the number of records it matched, not the size of the page shown.
    assert_eq!((entries[0].result_count, entries[1].result_count), (Some(6), Some(6)));
    assert_eq!(entries[5].result_count, Some(12));
    assert_eq!(entries[0].requisition.as_ref().unwrap(), &requisition());
    assert_eq!(entries.last().unwrap().operator, "M. Martin (DPO)");

    // Editing an entry is detected, and nothing more is appended to a damaged log.
    let text = std::fs::read_to_string(&audit).unwrap().replacen("\"result_count\":6", "\"result_count\":0", 1);
    std::fs::write(&audit, text).unwrap();
    let err = desk.audit("M. Martin (DPO)").unwrap_err().to_string();
    assert!(err.contains("entry 1") && err.contains("edited"), "{err}");
}

fn retention_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_long_lived_desk_keeps_days_open_but_never_searches_a_purged_day_and_checks_its_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = dir.path().join("archive");
    let mut archive = sealed_archive(&archive_dir);
    let audit = dir.path().join("audit/requisitions.jsonl");
    let open_desk =
        || Requisitions::new(&archive_dir, &audit, key(), "chrony (test)").with_clock(|| ts("2025-04-10T09:00:00Z"));
    let desk = open_desk();
    let alice = RequisitionQuery {
        scope: Scope::User("alice".into()),
        from: ts("2025-04-01T00:00:00Z"),
        to: ts("2025-04-30T00:00:00Z"),
    };
    let first = desk.search(&requisition(), "Mme Legrand", &alice, 0, 100).unwrap();
    assert_eq!((first.total, first.records.len()), (6, 6));

    // The 5th expires and the writer purges it while the desk keeps its days open.
    let report = archive.purge(ts("2026-04-06T12:00:00Z"), 365, &[], false).unwrap();
    assert_eq!(report.deleted.iter().map(|c| c.day.to_string()).collect::<Vec<_>>(), ["2025-04-05"]);
    let after = desk.search(&requisition(), "Mme Legrand", &alice, 0, 100).unwrap();
    assert_eq!(after.total, 4);
    assert_eq!(after.records, first.records[2..], "the purged day's records are gone, the others unchanged");

    // Another process appends to the audit log between two searches of the desk: the chain
    // goes on, and the whole log verifies.
    open_desk().search(&requisition(), "M. Durand", &alice, 0, 100).unwrap();
    assert_eq!(desk.search(&requisition(), "Mme Legrand", &alice, 0, 100).unwrap().audit_entry, 4);
    let entries = read_audit(&audit, &key()).unwrap();
    let operators: Vec<&str> = entries.iter().map(|e| e.operator.as_str()).collect();
    assert_eq!(operators, ["Mme Legrand", "Mme Legrand", "M. Durand", "Mme Legrand"]);

    // An edit that keeps the log's length is caught by the desk that had checked it before.
    let text = std::fs::read_to_string(&audit).unwrap().replacen("Mme Legrand", "Mme Legrant", 1);
    std::fs::write(&audit, text).unwrap();
    let err = desk.search(&requisition(), "Mme Legrand", &alice, 0, 100).unwrap_err().to_string();
    assert!(err.contains("entry 1") && err.contains("edited"), "{err}");
    assert_eq!(std::fs::read_to_string(&audit).unwrap().lines().count(), 4, "nothing appended to a damaged log");
}
