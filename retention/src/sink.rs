//! The archive sink: the pipeline stage that turns event batches into durable records and
//! acknowledges a batch only once the commit that holds it has succeeded.

use std::time::Duration;

use collector::{AckToken, Batch, Event};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::archive::{AppendReport, Archive};
use crate::error::ArchiveError;
use crate::metrics::ArchiveMetrics;
use crate::record::Recorder;
use crate::routes::RouteTable;

/// The archive's housekeeping inside the sink: sealing days past their grace period and the
/// daily retention purge, both on the sink's own archive (it is the only writer).
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// Days kept.
    pub keep_days: u32,
    /// How long after its end a day is sealed (late records for it then go to its late file).
    pub grace: jiff::SignedDuration,
    /// How often to look for days to seal or purge.
    pub every: Duration,
}

impl Maintenance {
    fn run(&self, archive: &mut Archive, now: jiff::Timestamp) -> Result<(), ArchiveError> {
        archive.close_days(now, self.grace)?;
        let holds = archive.legal_holds()?;
        let report = archive.purge(now, self.keep_days, &holds, false)?;
        if !report.deleted.is_empty() {
            tracing::info!(days = report.deleted.len(), "archive retention purge done");
        }
        Ok(())
    }
}

/// Commit early once this many batches wait for durability, so a burst neither holds many
/// tokens (the source cannot advance) nor grows the writers' uncommitted segments unbounded.
const MAX_PENDING_BATCHES: usize = 64;

/// Receives batches from `input` and archives them until `cancel` fires or every sender is
/// gone, then returns the archive.
///
/// Crash-safety contract: each batch's [`AckToken`] is kept until a commit that includes the
/// batch has succeeded; only then is it dropped (the source may advance its checkpoint). A
/// commit happens every `commit_interval` (at least 1 ms) and whenever
/// `MAX_PENDING_BATCHES` batches are pending. If an append or a commit fails, every pending
/// token is failed and the error is returned: the source replays, and deterministic event ids
/// make the replay idempotent. On cancel, batches already in the channel are drained and
/// committed before returning. Blocking archive work runs on `spawn_blocking`.
pub async fn run_sink(
    archive: Archive,
    input: mpsc::Receiver<Batch<Event>>,
    commit_interval: Duration,
    metrics: ArchiveMetrics,
    cancel: CancellationToken,
) -> Result<Archive, ArchiveError> {
    run_archive(archive, Recorder::new(RouteTable::default()), None, input, commit_interval, metrics, cancel).await
}

/// [`run_sink`] with the records named by `recorder` (its route table) and, with
/// `maintenance`, the days sealed and purged as time passes (checked at start, then every
/// `maintenance.every`, with the wall clock).
pub async fn run_archive(
    archive: Archive,
    recorder: Recorder,
    maintenance: Option<Maintenance>,
    mut input: mpsc::Receiver<Batch<Event>>,
    commit_interval: Duration,
    metrics: ArchiveMetrics,
    cancel: CancellationToken,
) -> Result<Archive, ArchiveError> {
    let mut sink = Sink::new(archive, metrics);
    sink.recorder = recorder;
    let period = commit_interval.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let housekeeping_every =
        maintenance.as_ref().map_or(Duration::from_secs(3600), |m| m.every.max(Duration::from_secs(1)));
    let mut housekeeping = tokio::time::interval(housekeeping_every);
    housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = housekeeping.tick(), if maintenance.is_some() => {
                let m = maintenance.clone().expect("checked by the guard");
                // Commit first: sealing a day releases its writer.
                sink.commit().await?;
                sink.blocking(move |archive| m.run(archive, jiff::Timestamp::now())).await?;
            }
            () = cancel.cancelled() => break,
            batch = input.recv() => {
                let Some(batch) = batch else { break };
                sink.handle(batch).await?;
                if sink.pending.len() >= MAX_PENDING_BATCHES {
                    sink.commit().await?;
                }
            }
            _ = ticker.tick() => {
                if sink.needs_commit() {
                    sink.commit().await?;
                }
            }
        }
    }
    // Closing stops new sends; what is already queued is still delivered and archived.
    input.close();
    while let Some(batch) = input.recv().await {
        sink.handle(batch).await?;
    }
    sink.commit().await?;
    tracing::info!("archive sink stopped");
    sink.into_archive()
}

/// The sink's state between events: the archive (absent only while a blocking call holds
/// it) and the tokens of batches appended but not yet committed.
#[derive(Debug)]
pub(crate) struct Sink {
    archive: Option<Archive>,
    pub(crate) pending: Vec<AckToken>,
    metrics: ArchiveMetrics,
    recorder: Recorder,
}

impl Sink {
    pub(crate) fn new(archive: Archive, metrics: ArchiveMetrics) -> Sink {
        Sink { archive: Some(archive), pending: Vec::new(), metrics, recorder: Recorder::new(RouteTable::default()) }
    }

    fn needs_commit(&self) -> bool {
        !self.pending.is_empty() || self.archive.as_ref().is_some_and(Archive::has_open_writers)
    }

    /// Converts and appends one batch, and keeps its token until the next commit.
    pub(crate) async fn handle(&mut self, batch: Batch<Event>) -> Result<(), ArchiveError> {
        let Batch { items, ack } = batch;
        // Converting is cheap and keeps the recorder's session state here, in order.
        let records: Vec<_> = items.iter().filter_map(|e| self.recorder.record(e)).collect();
        let skipped = (items.len() - records.len()) as u64;
        let result =
            self.blocking(move |archive| archive.append_report(&records).map(|report| (report, skipped))).await;
        match result {
            Ok((AppendReport { appended, replaced }, skipped)) => {
                self.metrics.records.inc_by(appended);
                self.metrics.duplicates_replaced.inc_by(replaced);
                self.metrics.skipped_events.inc_by(skipped);
                self.pending.push(ack);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "archive append failed; failing pending batches");
                ack.fail();
                self.fail_pending();
                Err(e)
            }
        }
    }

    /// Commits, then releases the tokens of every batch the commit made durable.
    pub(crate) async fn commit(&mut self) -> Result<(), ArchiveError> {
        match self.blocking(Archive::commit).await {
            Ok(()) => {
                self.metrics.commits.inc();
                let released = self.pending.len();
                for token in self.pending.drain(..) {
                    token.ack();
                }
                tracing::debug!(batches = released, "archive committed");
                Ok(())
            }
            Err(e) => {
                self.metrics.commit_failures.inc();
                tracing::error!(error = %e, batches = self.pending.len(), "archive commit failed; failing pending batches");
                self.fail_pending();
                Err(e)
            }
        }
    }

    fn fail_pending(&mut self) {
        for token in self.pending.drain(..) {
            token.fail();
        }
    }

    /// Runs `f` on the archive in a blocking thread, so the runtime's workers never wait on
    /// Tantivy or fsync.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Archive) -> Result<T, ArchiveError> + Send + 'static,
    ) -> Result<T, ArchiveError> {
        let Some(mut archive) = self.archive.take() else {
            return Err(ArchiveError::TaskFailed("the archive was lost by an earlier failure".into()));
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = f(&mut archive);
            (archive, result)
        })
        .await;
        match joined {
            Ok((archive, result)) => {
                self.archive = Some(archive);
                result
            }
            Err(join) => {
                self.fail_pending();
                Err(ArchiveError::TaskFailed(join.to_string()))
            }
        }
    }

    fn into_archive(mut self) -> Result<Archive, ArchiveError> {
        self.archive.take().ok_or_else(|| ArchiveError::TaskFailed("the archive was lost by an earlier failure".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector::{AckStatus, AckWaiter, Category, EventId};
    use tantivy::schema::document::Document;

    /// An ENT request whose content-bearing fields all carry the word `SECRET`.
    fn event(position: u64, at: &str) -> Event {
        Event {
            id: EventId::at("apache-main", position),
            timestamp: at.parse().unwrap(),
            utc_offset_seconds: Some(7200),
            dataset: "apache.access".into(),
            category: Category::Web,
            source_ip: Some("192.0.2.44".parse().unwrap()),
            source_port: Some(61000),
            http_method: Some("GET".into()),
            http_version: Some("1.1".into()),
            http_status: Some(200),
            url_path: Some("/eleves/SECRET-dupont/bulletin".into()),
            url_query: Some("q=SECRET-recherche".into()),
            http_referrer: Some("https://ent.example/SECRET-referrer".into()),
            message: Some("SECRET message".into()),
            original: "192.0.2.44 - - \"GET /eleves/SECRET-dupont/bulletin?q=SECRET-recherche\"".into(),
            user_name: Some("mmartin".into()),
            user_agent: Some("Mozilla/5.0".into()),
            ..Event::default()
        }
    }

    fn batch(events: Vec<Event>) -> (Batch<Event>, AckWaiter) {
        let (token, waiter) = AckToken::new();
        (Batch::new(events, token), waiter)
    }

    fn metrics() -> ArchiveMetrics {
        ArchiveMetrics::register(&mut prometheus_client::registry::Registry::default())
    }

    #[tokio::test]
    async fn a_token_is_released_only_by_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::new(Archive::open(dir.path()).unwrap(), metrics());
        let (b1, mut w1) = batch(vec![event(1, "2025-04-07T08:00:00Z")]);
        sink.handle(b1).await.unwrap();
        assert_eq!(w1.try_status(), None, "appended but not durable: the source must not advance");
        let (b2, mut w2) = batch(vec![event(2, "2025-04-07T08:00:01Z")]);
        sink.handle(b2).await.unwrap();
        assert_eq!((w1.try_status(), w2.try_status()), (None, None));
        sink.commit().await.unwrap();
        assert_eq!(w1.wait().await, AckStatus::Delivered);
        assert_eq!(w2.wait().await, AckStatus::Delivered);
        assert_eq!(sink.metrics.commits(), 1);
        assert_eq!(sink.into_archive().unwrap().stats().unwrap().total_documents, 2);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_pending_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::new(Archive::open(dir.path()).unwrap(), metrics());
        let (b1, w1) = batch(vec![event(1, "2025-04-07T08:00:00Z")]);
        let (b2, w2) = batch(vec![event(2, "2025-04-08T08:00:00Z")]);
        sink.handle(b1).await.unwrap();
        sink.handle(b2).await.unwrap();
        sink.archive.as_mut().unwrap().fail_next_commit();
        assert!(matches!(sink.commit().await, Err(ArchiveError::InjectedFailure)));
        assert_eq!(w1.wait().await, AckStatus::Failed);
        assert_eq!(w2.wait().await, AckStatus::Failed);
        assert_eq!((sink.metrics.commits(), sink.metrics.commit_failures()), (0, 1));
    }

    #[tokio::test]
    async fn run_sink_drains_and_commits_on_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let m = metrics();
        let (b1, w1) = batch(vec![event(1, "2025-04-07T23:59:59Z"), event(2, "2025-04-08T00:00:01Z")]);
        let no_client = Event { source_ip: None, category: Category::Diagnostic, ..event(3, "2025-04-08T00:00:02Z") };
        let (b2, w2) = batch(vec![no_client]);
        // A replay of the first batch: same ids, no duplicates.
        let (b3, w3) = batch(vec![event(1, "2025-04-07T23:59:59Z")]);
        for b in [b1, b2, b3] {
            tx.send(b).await.unwrap();
        }
        cancel.cancel();
        let archive = run_sink(Archive::open(dir.path()).unwrap(), rx, Duration::from_secs(3600), m.clone(), cancel)
            .await
            .unwrap();
        for w in [w1, w2, w3] {
            assert_eq!(w.wait().await, AckStatus::Delivered);
        }
        let stats = archive.stats().unwrap();
        assert_eq!((stats.days.len(), stats.total_documents, stats.duplicate_event_ids), (2, 2, 0));
        assert_eq!((m.records(), m.duplicates_replaced(), m.skipped_events(), m.commits()), (3, 1, 1, 1));
    }

    #[tokio::test]
    async fn run_sink_fails_the_tokens_and_returns_the_error_when_a_commit_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = Archive::open(dir.path()).unwrap();
        archive.fail_next_commit();
        let (tx, rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let (b1, w1) = batch(vec![event(1, "2025-04-07T08:00:00Z")]);
        tx.send(b1).await.unwrap();
        cancel.cancel();
        let m = metrics();
        let result = run_sink(archive, rx, Duration::from_secs(3600), m.clone(), cancel).await;
        assert!(matches!(result, Err(ArchiveError::InjectedFailure)));
        assert_eq!(w1.wait().await, AckStatus::Failed);
        assert_eq!(m.commit_failures(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn run_sink_commits_every_interval_without_being_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let m = metrics();
        let task = tokio::spawn(run_sink(
            Archive::open(dir.path()).unwrap(),
            rx,
            Duration::from_secs(5),
            m.clone(),
            cancel.clone(),
        ));
        let (b1, w1) = batch(vec![event(1, "2025-04-07T08:00:00Z")]);
        tx.send(b1).await.unwrap();
        // Paused time advances to the next tick once the sink is idle.
        assert_eq!(w1.wait().await, AckStatus::Delivered);
        assert!(m.commits() >= 1);
        cancel.cancel();
        let archive = task.await.unwrap().unwrap();
        assert_eq!(archive.stats().unwrap().total_documents, 1);
    }

    #[tokio::test]
    async fn run_sink_commits_early_when_many_batches_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel(MAX_PENDING_BATCHES + 1);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_sink(
            Archive::open(dir.path()).unwrap(),
            rx,
            Duration::from_secs(24 * 3600),
            metrics(),
            cancel.clone(),
        ));
        let mut waiters = Vec::new();
        for i in 0..MAX_PENDING_BATCHES as u64 {
            let (b, w) = batch(vec![event(i, "2025-04-07T08:00:00Z")]);
            tx.send(b).await.unwrap();
            waiters.push(w);
        }
        // Neither the day-long interval nor a cancel can have committed: only the pending cap.
        let first = waiters.remove(0);
        let status = tokio::time::timeout(Duration::from_secs(600), first.wait()).await;
        assert_eq!(status, Ok(AckStatus::Delivered));
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn no_path_query_referrer_or_raw_line_is_ever_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let (b1, _w1) = batch(vec![event(1, "2025-04-07T08:00:00Z"), event(2, "2025-04-08T08:00:00Z")]);
        tx.send(b1).await.unwrap();
        cancel.cancel();
        let archive =
            run_sink(Archive::open(dir.path()).unwrap(), rx, Duration::from_secs(60), metrics(), cancel).await.unwrap();
        let mut stored = Vec::new();
        for day in archive.days() {
            let index = tantivy::Index::open_in_dir(dir.path().join(day.to_string()).join("index")).unwrap();
            let schema = index.schema();
            let names: Vec<&str> = schema.fields().map(|(_, entry)| entry.name()).collect();
            assert_eq!(
                names,
                [
                    "event_id",
                    "timestamp_ns",
                    "utc_offset_seconds",
                    "dataset",
                    "source_ip",
                    "source_port",
                    "destination_ip",
                    "destination_port",
                    "protocol",
                    "operation",
                    "user_name",
                    "user_agent",
                    "status",
                    "duration_ns",
                    "school_uai",
                    "observer",
                    "user_category",
                    "content_id",
                    "session_duration_s",
                    "recipients",
                ],
                "a new field must be checked against the law (REFERENCE.md §1.3) before it is stored"
            );
            let searcher = index.reader().unwrap().searcher();
            for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                for doc in segment.doc_ids_alive() {
                    let doc: tantivy::TantivyDocument =
                        searcher.doc(tantivy::DocAddress::new(ord as u32, doc)).unwrap();
                    stored.push(doc.to_json(&schema));
                }
            }
        }
        assert_eq!(stored.len(), 2);
        for json in &stored {
            assert!(json.contains("mmartin") && json.contains("consultation"), "{json}");
            for banned in ["SECRET", "eleves", "bulletin", "recherche", "referrer", "GET /"] {
                assert!(!json.contains(banned), "`{banned}` was stored: {json}");
            }
        }
    }
}
