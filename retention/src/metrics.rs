//! The archive's self-telemetry: what was archived, committed, failed and replaced.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters of the archive sink. Cloning shares the counters.
#[derive(Debug, Clone, Default)]
pub struct ArchiveMetrics {
    pub(crate) records: Counter,
    pub(crate) commits: Counter,
    pub(crate) commit_failures: Counter,
    pub(crate) duplicates_replaced: Counter,
    pub(crate) skipped_events: Counter,
}

impl ArchiveMetrics {
    /// Registers the counters under `vigie_archive_*` in `registry`.
    pub fn register(registry: &mut Registry) -> ArchiveMetrics {
        let metrics = ArchiveMetrics::default();
        registry.register(
            "vigie_archive_records",
            "Connection records appended to the legal archive",
            metrics.records.clone(),
        );
        registry.register("vigie_archive_commits", "Successful archive commits", metrics.commits.clone());
        registry.register(
            "vigie_archive_commit_failures",
            "Failed archive commits (their batches are not acknowledged)",
            metrics.commit_failures.clone(),
        );
        registry.register(
            "vigie_archive_duplicates_replaced",
            "Records whose event id was already archived and which replaced it (replays)",
            metrics.duplicates_replaced.clone(),
        );
        registry.register(
            "vigie_archive_skipped_events",
            "Events that identify no connection (no client address or no id) and are not archived",
            metrics.skipped_events.clone(),
        );
        metrics
    }

    pub fn records(&self) -> u64 {
        self.records.get()
    }

    pub fn commits(&self) -> u64 {
        self.commits.get()
    }

    pub fn commit_failures(&self) -> u64 {
        self.commit_failures.get()
    }

    pub fn duplicates_replaced(&self) -> u64 {
        self.duplicates_replaced.get()
    }

    pub fn skipped_events(&self) -> u64 {
        self.skipped_events.get()
    }
}
