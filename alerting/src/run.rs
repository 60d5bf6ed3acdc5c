//! The alerting stage of the pipeline: detections in, alerts and queued emails out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector::Batch;
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{AlertError, AlertStore, AlertingMetrics};
use analyzer::Detection;

/// How often quiet alerts are resolved and reminders queued.
const TICK: Duration = Duration::from_secs(5);

/// Ingests detection batches and ticks the alert lifecycle until `cancel` fires or the input
/// closes.
///
/// Each batch is written in one transaction on the blocking pool; its [`collector::AckToken`]
/// is dropped only after the commit, or failed if the write failed, so the source replays it.
/// On shutdown, batches still in the channel are failed rather than silently acknowledged.
pub async fn run_alerts(
    store: AlertStore,
    mut input: mpsc::Receiver<Batch<Detection>>,
    metrics: AlertingMetrics,
    cancel: CancellationToken,
) -> Result<(), AlertError> {
    let store = Arc::new(Mutex::new(store));
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Shutdown first: a batch taken after cancellation might not be written.
            biased;
            () = cancel.cancelled() => break,
            batch = input.recv() => {
                let Some(batch) = batch else { break };
                ingest_batch(&store, batch, &metrics).await;
            }
            _ = ticker.tick() => {
                let store = Arc::clone(&store);
                let now = Timestamp::now();
                match tokio::task::spawn_blocking(move || lock(&store).tick(now)).await? {
                    Ok(report) => {
                        metrics.resolved(report.resolved);
                        metrics.reminders(report.reminders_queued);
                    }
                    Err(e) => tracing::error!(error = %e, "alert tick failed"),
                }
            }
        }
    }
    // Batches still queued are dropped with `input`, unacknowledged: they count as failed.
    Ok(())
}

fn lock(store: &Mutex<AlertStore>) -> std::sync::MutexGuard<'_, AlertStore> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

async fn ingest_batch(store: &Arc<Mutex<AlertStore>>, batch: Batch<Detection>, metrics: &AlertingMetrics) {
    let Batch { items, ack } = batch;
    let store = Arc::clone(store);
    let n = items.len();
    let result = tokio::task::spawn_blocking(move || lock(&store).ingest(&items, Timestamp::now())).await;
    match result {
        Ok(Ok(fired)) => {
            metrics.fired(fired);
            tracing::debug!(detections = n, fired, "detections ingested");
            ack.ack();
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, detections = n, "cannot record detections, the source will replay them");
            ack.fail();
        }
        Err(e) => {
            tracing::error!(error = %e, detections = n, "alert ingest task failed, the source will replay it");
            ack.fail();
        }
    }
}

#[cfg(test)]
mod tests {
    use collector::{AckStatus, AckToken};

    use super::*;
    use crate::store::tests::{detection, policy};
    use crate::{AlertFilter, Outbox};

    #[tokio::test]
    async fn a_batch_is_acknowledged_after_its_alerts_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("alerts.sqlite");
        let store = AlertStore::open(&db, policy()).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_alerts(store, rx, AlertingMetrics::default(), cancel.clone()));

        let (ack, waiter) = AckToken::new();
        // run_alerts ticks on the real clock: a detection from the past would be resolved
        // (and a "résolu" email queued) as soon as the first tick runs.
        let mut fresh = detection(1, "203.0.113.9", "2025-04-07T12:29:00Z");
        fresh.timestamp = Timestamp::now();
        tx.send(Batch::new(vec![fresh], ack)).await.unwrap();
        assert_eq!(waiter.wait().await, AckStatus::Delivered);
        // Acknowledged means committed: a fresh connection sees the alert and its email.
        let store = AlertStore::open(&db, policy()).unwrap();
        assert_eq!(store.alerts(AlertFilter::default()).unwrap().len(), 1);
        assert_eq!(Outbox::open(&db).unwrap().pending().unwrap(), 1);

        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn batches_left_at_shutdown_are_failed_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("alerts.sqlite");
        let store = AlertStore::open(&db, policy()).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let (ack, waiter) = AckToken::new();
        tx.send(Batch::new(vec![detection(1, "203.0.113.9", "2025-04-07T12:29:00Z")], ack)).await.unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        run_alerts(store, rx, AlertingMetrics::default(), cancel).await.unwrap();
        assert_eq!(waiter.wait().await, AckStatus::Failed, "the source must replay it");
        let store = AlertStore::open(&db, policy()).unwrap();
        assert!(store.alerts(AlertFilter::default()).unwrap().is_empty());
    }
}
