//! `kill -9` in the middle of a run, then a restart on the same data directory.

use std::path::Path;
use std::time::Duration;

use crate::support::{Running, sample, vigie};

/// `vigie archive stats --data DIR` as JSON.
pub(crate) fn archive_stats(data: &Path) -> serde_json::Value {
    let out = vigie().args(["archive", "stats", "--data"]).arg(data).output().unwrap();
    assert!(out.status.success(), "archive stats failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn kill_9_then_restart_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Running::demo(&data, &["--rate", "400"]);
    first.wait_for("events archived", Duration::from_secs(90), |v| {
        v.get("/metrics").is_some_and(|(_, m)| sample(&m, "vigie_archive_records_total", "").unwrap_or(0.0) > 3000.0)
    });
    first.child.kill().unwrap(); // SIGKILL: no flush, no commit, no goodbye
    first.child.wait().unwrap();
    drop(first);

    let stats_after_crash = archive_stats(&data);
    assert_eq!(stats_after_crash["duplicate_ids"], 0, "{stats_after_crash}");
    let before = stats_after_crash["documents"].as_u64().unwrap();

    // Same data directory: the lock was released by the kernel, the run resumes from its checkpoints.
    let mut second = Running::demo(&data, &["--rate", "400", "--for", "10s"]);
    let status = second.wait_exit(Duration::from_secs(90));
    assert!(status.success(), "restart failed ({status}); log:\n{}", second.log());
    let log = second.log();
    assert!(!log.contains("panicked"), "{log}");

    let stats = archive_stats(&data);
    assert_eq!(stats["duplicate_ids"], 0, "an event was archived twice: {stats}");
    assert!(stats["documents"].as_u64().unwrap() > before, "the second run archived more: {stats}");
}
