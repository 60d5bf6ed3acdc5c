//! The alerting stage of the pipeline: detections in, alerts and queued emails out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector::Batch;
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{AlertError, AlertStore, AlertingMetrics, Incidents, Notices};
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
                        metrics.fired(report.promoted);
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

/// An outbox whose oldest email waited this long raises its own alert.
const STUCK_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// One availability change of a service, as the probes report it.
pub type ServiceOutage = (String, analyzer::OutageChange);

/// Runs the outage notices and the incident register until `cancel` fires or `outages`
/// closes: each change goes to [`Notices::on_outage`]; every tick escalates unapproved
/// notices and missed incident deadlines, and raises the `vigie.outbox-stuck` alert (through
/// `store`) when an email has waited more than 10 minutes.
pub async fn run_notices(
    notices: Notices,
    incidents: Incidents,
    store: AlertStore,
    mut outages: mpsc::Receiver<ServiceOutage>,
    cancel: CancellationToken,
) -> Result<(), AlertError> {
    let db = Arc::new(Mutex::new((notices, incidents, store)));
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut input_open = true;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            change = outages.recv(), if input_open => {
                let Some((service, change)) = change else {
                    input_open = false;
                    continue;
                };
                let db = Arc::clone(&db);
                let now = Timestamp::now();
                let result = tokio::task::spawn_blocking(move || {
                    let mut guard = db.lock().unwrap_or_else(|e| e.into_inner());
                    guard.0.on_outage(&service, &change, now)
                }).await?;
                if let Err(e) = result {
                    tracing::error!(error = %e, "cannot record the outage change");
                }
            }
            _ = ticker.tick() => {
                let db = Arc::clone(&db);
                let now = Timestamp::now();
                let result = tokio::task::spawn_blocking(move || {
                    let mut guard = db.lock().unwrap_or_else(|e| e.into_inner());
                    let (notices, incidents, store) = &mut *guard;
                    notices_tick(notices, incidents, store, now)
                }).await?;
                if let Err(e) = result {
                    tracing::error!(error = %e, "notice tick failed");
                }
            }
        }
    }
    Ok(())
}

/// One tick of [`run_notices`], with an injected clock.
pub fn notices_tick(
    notices: &mut Notices,
    incidents: &mut Incidents,
    store: &mut AlertStore,
    now: Timestamp,
) -> Result<(), AlertError> {
    outages_from_alerts(notices, store, now)?;
    notices.tick(now)?;
    incidents.escalate_overdue(now)?;
    let stats = store.outbox_stats()?;
    if let Some(oldest) = stats.oldest_queued
        && now.duration_since(oldest) >= STUCK_AFTER
    {
        store.ingest(&[outbox_stuck(oldest, stats.queued, now)], now)?;
    }
    Ok(())
}

/// Alerts of the configured outage rules, as outages of the ENT: a firing alert is an outage
/// open since its first detection, a resolved one an outage closed when it resolved. Notices
/// are keyed by service and start, so repeating this every tick changes nothing.
fn outages_from_alerts(notices: &mut Notices, store: &AlertStore, now: Timestamp) -> Result<(), AlertError> {
    let rules = notices.policy().outage_rules.clone();
    if rules.is_empty() {
        return Ok(());
    }
    let recent = now.checked_sub(jiff::SignedDuration::from_hours(24)).unwrap_or(Timestamp::MIN);
    for alert in store.alerts(crate::AlertFilter { state: None, limit: 200 })? {
        if !rules.contains(&alert.rule) || alert.last_seen < recent {
            continue;
        }
        let start = alert.first_seen;
        notices.on_outage("ENT", &analyzer::OutageChange::Opened { start }, now)?;
        if let Some(end) = alert.resolved_at {
            notices.on_outage("ENT", &analyzer::OutageChange::Closed { start, end }, now)?;
        }
    }
    Ok(())
}

/// The self-monitoring detection of a stuck outbox: one per minute while it lasts, so the
/// alert stays firing, and resolves on its own once the queue moves again.
fn outbox_stuck(oldest: Timestamp, queued: u64, now: Timestamp) -> Detection {
    let minute = u64::try_from(now.as_second() / 60).unwrap_or(0);
    Detection {
        id: format!("vigie.outbox-stuck:{minute}"),
        rule: "vigie.outbox-stuck".into(),
        title: "Les emails de Vigie ne partent plus".into(),
        description:
            "Le serveur de messagerie refuse ou ne répond pas : les alertes et les avis restent en file d'attente."
                .into(),
        severity: analyzer::Severity::Critical,
        cctp_class: analyzer::CctpClass::MajeurNonBloquant,
        mitre: None,
        timestamp: now,
        source_ip: None,
        user_name: None,
        key: "outbox".into(),
        evidence: format!(
            "{queued} email(s) en attente, le plus ancien depuis {}",
            crate::french::duration_fr(now.duration_since(oldest))
        ),
        event_id: collector::EventId::at("vigie-outbox", minute),
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
