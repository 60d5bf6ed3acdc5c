//! Vigie watching itself: per-stage counters and gauges, and which stages are running.
//!
//! Label values are bounded: stage names are fixed in code and source ids come from the
//! configuration, so no label grows with the traffic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabel {
    source: String,
    reason: String,
}

/// Distinct failure reasons kept per source; further ones are counted as `other`, so that
/// hostile input cannot grow the label set.
const MAX_REASONS: usize = 32;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

/// Counters every pipeline stage updates. Cheap to clone (shared atomics).
#[derive(Clone, Debug, Default)]
pub struct PipelineMetrics {
    records_read: Family<SourceLabel, Counter>,
    parse_failures: Family<FailureLabel, Counter>,
    reasons: Arc<Mutex<std::collections::HashSet<(String, String)>>>,
    events_in: Family<StageLabel, Counter>,
    events_out: Family<StageLabel, Counter>,
    queue_depth: Family<StageLabel, Gauge>,
    source_lag: Family<SourceLabel, Gauge>,
}

impl PipelineMetrics {
    pub fn register(registry: &mut Registry) -> PipelineMetrics {
        let m = PipelineMetrics::default();
        registry.register("vigie_source_records", "Records read by each source", m.records_read.clone());
        registry.register(
            "vigie_parse_failures",
            "Lines that could not be parsed, by source and reason (kept in the data directory's dead-letter files)",
            m.parse_failures.clone(),
        );
        registry.register("vigie_stage_events_in", "Events received by each pipeline stage", m.events_in.clone());
        registry.register(
            "vigie_stage_events_out",
            "Events emitted or durably written by each stage",
            m.events_out.clone(),
        );
        registry.register("vigie_stage_queue_depth", "Batches waiting in front of each stage", m.queue_depth.clone());
        registry.register(
            "vigie_source_lag_seconds",
            "Age of the newest event read by each source, against the wall clock",
            m.source_lag.clone(),
        );
        m
    }

    pub fn source_records(&self, source: &str, n: usize) {
        self.records_read.get_or_create(&SourceLabel { source: source.to_owned() }).inc_by(n as u64);
    }

    /// Counts a rejected line; `reason` is what the parser expected (bounded, see [`MAX_REASONS`]).
    pub fn parse_failure(&self, source: &str, reason: &str) {
        let reason = {
            let mut seen = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
            let key = (source.to_owned(), reason.to_owned());
            let per_source = seen.iter().filter(|(s, _)| s == source).count();
            if seen.contains(&key) || per_source < MAX_REASONS {
                seen.insert(key);
                reason
            } else {
                "other"
            }
        };
        self.parse_failures.get_or_create(&FailureLabel { source: source.to_owned(), reason: reason.to_owned() }).inc();
    }

    pub fn stage_in(&self, stage: &'static str, n: usize) {
        self.events_in.get_or_create(&StageLabel { stage }).inc_by(n as u64);
    }

    pub fn stage_out(&self, stage: &'static str, n: usize) {
        self.events_out.get_or_create(&StageLabel { stage }).inc_by(n as u64);
    }

    /// Records how many batches wait in front of `stage` (a channel's queue length).
    pub fn queue_depth(&self, stage: &'static str, batches: usize) {
        self.queue_depth.get_or_create(&StageLabel { stage }).set(batches as i64);
    }

    pub fn source_lag(&self, source: &str, seconds: i64) {
        self.source_lag.get_or_create(&SourceLabel { source: source.to_owned() }).set(seconds);
    }

    /// Events that entered `stage` so far (for status pages and tests).
    pub fn stage_in_total(&self, stage: &'static str) -> u64 {
        self.events_in.get_or_create(&StageLabel { stage }).get()
    }

    /// Events that left `stage` so far (for status pages and tests).
    pub fn stage_out_total(&self, stage: &'static str) -> u64 {
        self.events_out.get_or_create(&StageLabel { stage }).get()
    }
}

/// Which long-running tasks are up; `/readyz` answers 200 only when all of them are.
#[derive(Clone, Debug, Default)]
pub struct Health {
    tasks: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Health {
    /// Declares a task that must be running for the process to be ready; starts "down".
    pub fn expect(&self, task: &str) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).entry(task.to_owned()).or_insert(false);
    }

    pub fn set(&self, task: &str, running: bool) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).insert(task.to_owned(), running);
    }

    /// Every declared task and whether it runs.
    pub fn snapshot(&self) -> BTreeMap<String, bool> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn ready(&self) -> bool {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        !tasks.is_empty() && tasks.values().all(|up| *up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_are_bounded_per_source() {
        let m = PipelineMetrics::default();
        for i in 0..100 {
            m.parse_failure("fw", &format!("reason {i}"));
        }
        m.parse_failure("fw", "reason 3");
        assert_eq!(
            m.parse_failures.get_or_create(&FailureLabel { source: "fw".into(), reason: "reason 3".into() }).get(),
            2
        );
        let other = FailureLabel { source: "fw".into(), reason: "other".into() };
        assert_eq!(m.parse_failures.get_or_create(&other).get(), 100 - MAX_REASONS as u64);
    }

    #[test]
    fn ready_only_when_every_task_runs() {
        let h = Health::default();
        assert!(!h.ready(), "nothing declared is not ready");
        h.expect("source");
        h.expect("archive");
        h.set("source", true);
        assert!(!h.ready());
        h.set("archive", true);
        assert!(h.ready());
    }

    #[test]
    fn metrics_encode_with_their_labels() {
        let mut registry = Registry::default();
        let m = PipelineMetrics::register(&mut registry);
        m.stage_out("archive", 3);
        m.parse_failure("apache", "an HTTP status code");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("vigie_stage_events_out_total{stage=\"archive\"} 3"), "{text}");
        assert!(
            text.contains("vigie_parse_failures_total{source=\"apache\",reason=\"an HTTP status code\"} 1"),
            "{text}"
        );
    }
}
