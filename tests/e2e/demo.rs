//! `vigie demo --for`: every stage runs on generated traffic and the process stops by itself.

use std::time::Duration;

use crate::support::{Running, sample};

#[test]
fn demo_runs_every_stage_then_stops_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut vigie = Running::demo(&data, &["--for", "30s", "--rate", "300"]);

    vigie.wait_for("/readyz", Duration::from_secs(60), |v| v.get("/readyz").is_some_and(|(code, _)| code == 200));

    // The attack burst starts 12 s in; wait until it went through parse → analyzer → alerts.
    vigie.wait_for("a detection", Duration::from_secs(60), |v| {
        v.get("/metrics")
            .is_some_and(|(_, m)| sample(&m, "vigie_stage_events_out_total", "stage=\"analyzer\"").unwrap_or(0.0) > 0.0)
    });
    let (code, metrics) = vigie.get("/metrics").unwrap();
    assert_eq!(code, 200);
    let parsed = sample(&metrics, "vigie_stage_events_out_total", "stage=\"parse\"").unwrap();
    let analyzed = sample(&metrics, "vigie_stage_events_in_total", "stage=\"analyzer\"").unwrap();
    let archived = sample(&metrics, "vigie_archive_records_total", "").unwrap_or(0.0);
    assert!(parsed > 1000.0, "parsed {parsed}");
    assert!(analyzed > 0.0, "analyzed {analyzed}");
    let read = sample(&metrics, "vigie_source_records_total", "source=\"demo-ent-web\"").unwrap();
    assert!(read >= parsed * 0.5, "the web source read {read}");
    assert_eq!(sample(&metrics, "vigie_parse_failures_total", "").unwrap_or(0.0), 0.0, "demo lines all parse");

    // The attacker of the demo is on the emergency block list; a school network never is.
    let (code, blocked) = vigie.get("/api/v1/blocklist").unwrap();
    assert_eq!(code, 200);
    assert!(blocked.lines().any(|l| l.starts_with("203.0.113.66")), "{blocked}");
    assert!(!blocked.contains("10.20."), "{blocked}");

    // The pages are behind a login (tests/e2e/web.rs logs in); an anonymous visitor lands on
    // the French login page.
    let (code, page) = vigie.get("/").unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("Vigie — connexion"), "{page}");

    let status = vigie.wait_exit(Duration::from_secs(90));
    assert!(status.success(), "exit status {status}; log:\n{}", vigie.log());
    let log = vigie.log();
    assert!(log.contains("stopped cleanly"), "{log}");

    let nft = std::fs::read_to_string(data.join("blocklist.nft")).unwrap();
    assert!(nft.contains("203.0.113.66"), "{nft}");

    // Archived records were committed by the time it stopped, alerts were emailed (.eml files).
    let archived_after = archived.max(0.0);
    let outbox: Vec<_> = std::fs::read_dir(data.join("outbox")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(!outbox.is_empty(), "an alert email was written to the outbox; log:\n{log}");
    let stats = crate::crash::archive_stats(&data);
    assert!(stats["documents"].as_u64().unwrap() as f64 >= archived_after, "{stats}");
    assert_eq!(stats["duplicate_ids"], 0, "{stats}");
}
