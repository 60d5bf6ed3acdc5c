//! Sources: where raw records come from, and the loop that reads them with checkpoints.
//!
//! A [`Source`] only knows how to read records from a position. [`run_source`] owns the rest:
//! it resumes from the persisted checkpoint, hands out batches with an [`AckToken`], and moves
//! the checkpoint forward — in order — only when every durable consumer has acknowledged.

mod checkpoint;
pub mod demo;
mod file;
mod glob;
mod syslog;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use checkpoint::{Checkpoint, CheckpointStore};
pub use file::FileSource;
pub use glob::{GlobError, GlobSource};
pub use syslog::{SyslogConfig, SyslogSource, SyslogStats, TlsFiles};

use crate::pipe::{AckStatus, AckToken, AckWaiter, Batch, RawRecord};
use crate::telemetry::PipelineMetrics;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_id}: cannot read {path}: {error}")]
    Io { source_id: String, path: String, error: std::io::Error },
    #[error("checkpoint store: {0}")]
    Checkpoint(#[from] crate::StateError),
    #[error("checkpoint store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "source {source_id}: a batch ending at position {position} could not be written by every \
         durable consumer; the checkpoint stays before it and the batch will be replayed at restart"
    )]
    NotDelivered { source_id: String, position: u64 },
}

/// Something records can be read from, by position.
pub trait Source: Send {
    /// The configured id of the source; also the prefix of the ids of its events.
    fn id(&self) -> &Arc<str>;

    /// Moves to `checkpoint`, the state after the last acknowledged record. Called once,
    /// before the first read. A source whose data changed under the checkpoint (a truncated
    /// file) decides what is safe and says so in the log.
    fn resume(&mut self, checkpoint: Option<&Checkpoint>) -> Result<(), SourceError>;

    /// Reads up to `max` records. `Ok(None)` means "nothing more, ever" (end of a one-shot
    /// input); an empty vector means "nothing right now". Must be cancel-safe: it is raced
    /// against shutdown, and a cancelled read must not lose records (return what was read).
    fn read(
        &mut self,
        max: usize,
    ) -> impl std::future::Future<Output = Result<Option<Vec<RawRecord>>, SourceError>> + Send;

    /// The checkpoint that describes "everything up to the last record returned by `read`".
    fn checkpoint(&self) -> Checkpoint;
}

/// How a source loop behaves; see `pipeline` in the configuration.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Records per batch at most.
    pub batch_size: usize,
    /// Batches handed out but not yet acknowledged, at most. This bounds both memory and how
    /// much is replayed after a crash.
    pub max_in_flight: usize,
    /// Pause when a read returns nothing.
    pub idle_wait: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions { batch_size: 512, max_in_flight: 16, idle_wait: Duration::from_millis(200) }
    }
}

/// Reads `source` until it ends or `cancel` fires, sending batches to `output`, and commits
/// checkpoints as batches are acknowledged. Returns after every batch it handed out has been
/// acknowledged (or failed), so a clean shutdown leaves an exact checkpoint.
pub async fn run_source<S: Source>(
    mut source: S,
    store: CheckpointStore,
    output: mpsc::Sender<Batch<RawRecord>>,
    options: SourceOptions,
    metrics: PipelineMetrics,
    cancel: CancellationToken,
) -> Result<(), SourceError> {
    let id = source.id().clone();
    let start = store.load(&id).await?;
    source.resume(start.as_ref())?;
    tracing::info!(source = %id, position = start.as_ref().map_or(0, |c| c.position), "source started");

    let mut pending: VecDeque<(Checkpoint, AckWaiter)> = VecDeque::new();
    let mut result = Ok(());
    loop {
        // Retire acknowledged batches first, so the in-flight bound is enforced exactly.
        if pending.len() >= options.max_in_flight {
            if let Err(e) = retire_front(&id, &store, &mut pending).await {
                result = Err(e);
                break;
            }
            continue;
        }
        let read = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            read = source.read(options.batch_size) => read,
        };
        match read {
            Ok(None) => break,
            Ok(Some(records)) if records.is_empty() => {
                // Idle: commit what has been acknowledged meanwhile, then wait a little.
                if let Err(e) = retire_ready(&id, &store, &mut pending).await {
                    result = Err(e);
                    break;
                }
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(options.idle_wait) => {}
                }
            }
            Ok(Some(records)) => {
                metrics.source_records(&id, records.len());
                let (token, waiter) = AckToken::new();
                pending.push_back((source.checkpoint(), waiter));
                if output.send(Batch::new(records, token)).await.is_err() {
                    // Downstream is gone; the batch, dropped unacknowledged, counts as failed.
                    break;
                }
                if let Err(e) = retire_ready(&id, &store, &mut pending).await {
                    result = Err(e);
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(output);
    // Drain: wait for everything handed out, committing as far as acknowledgements allow —
    // but never past a failed batch: after a failure nothing more is committed.
    while result.is_ok() && !pending.is_empty() {
        if let Err(e) = retire_front(&id, &store, &mut pending).await {
            result = Err(e);
        }
    }
    tracing::info!(source = %id, "source stopped");
    result
}

/// Waits for the oldest batch and commits its checkpoint if it was delivered.
async fn retire_front(
    id: &Arc<str>,
    store: &CheckpointStore,
    pending: &mut VecDeque<(Checkpoint, AckWaiter)>,
) -> Result<(), SourceError> {
    let Some((checkpoint, waiter)) = pending.pop_front() else { return Ok(()) };
    match waiter.wait().await {
        AckStatus::Delivered => {
            // Coalesce: commit the furthest consecutive delivered batch in one write.
            let mut last = checkpoint;
            while let Some(status) = pending.front_mut().and_then(|(_, w)| w.try_status()) {
                let (next, _) = pending.pop_front().expect("front exists");
                if status == AckStatus::Failed {
                    store.save(id, &last).await?;
                    return Err(SourceError::NotDelivered { source_id: id.to_string(), position: next.position });
                }
                last = next;
            }
            store.save(id, &last).await?;
            Ok(())
        }
        AckStatus::Failed => {
            Err(SourceError::NotDelivered { source_id: id.to_string(), position: checkpoint.position })
        }
    }
}

/// Commits every batch at the front that is already acknowledged, without waiting.
async fn retire_ready(
    id: &Arc<str>,
    store: &CheckpointStore,
    pending: &mut VecDeque<(Checkpoint, AckWaiter)>,
) -> Result<(), SourceError> {
    if pending.front_mut().and_then(|(_, w)| w.try_status()).is_some() {
        retire_front(id, store, pending).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten records, then the end of input.
    struct Numbers {
        id: Arc<str>,
        next: u64,
        end: u64,
    }

    impl Source for Numbers {
        fn id(&self) -> &Arc<str> {
            &self.id
        }
        fn resume(&mut self, checkpoint: Option<&Checkpoint>) -> Result<(), SourceError> {
            self.next = checkpoint.map_or(0, |c| c.position);
            Ok(())
        }
        async fn read(&mut self, max: usize) -> Result<Option<Vec<RawRecord>>, SourceError> {
            if self.next >= self.end {
                return Ok(None);
            }
            let upto = (self.next + max as u64).min(self.end);
            let records = (self.next..upto)
                .map(|n| RawRecord { source: self.id.clone(), position: n, file: None, line: n.to_string() })
                .collect();
            self.next = upto;
            Ok(Some(records))
        }
        fn checkpoint(&self) -> Checkpoint {
            Checkpoint { position: self.next, identity: "numbers".into() }
        }
    }

    fn setup() -> (tempfile::TempDir, CheckpointStore, SourceOptions) {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(&dir.path().join("state.sqlite")).unwrap();
        let options = SourceOptions { batch_size: 2, max_in_flight: 3, idle_wait: Duration::from_millis(1) };
        (dir, store, options)
    }

    fn numbers(end: u64) -> Numbers {
        Numbers { id: "n".into(), next: 0, end }
    }

    /// Runs a numbers source of `end` records; returns its output and its task.
    fn spawn(
        end: u64,
        store: &CheckpointStore,
        options: SourceOptions,
        cancel: CancellationToken,
    ) -> (mpsc::Receiver<Batch<RawRecord>>, tokio::task::JoinHandle<Result<(), SourceError>>) {
        let (tx, rx) = mpsc::channel(16);
        let task =
            tokio::spawn(run_source(numbers(end), store.clone(), tx, options, PipelineMetrics::default(), cancel));
        (rx, task)
    }

    #[tokio::test]
    async fn checkpoint_moves_only_past_acknowledged_batches() {
        let (_dir, store, options) = setup();
        let (mut rx, task) = spawn(10, &store, options, CancellationToken::new());
        // Hold every batch: at most max_in_flight are handed out, and nothing is committed.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(rx.recv().await.unwrap());
        }
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "a fourth batch was handed out beyond max_in_flight");
        assert_eq!(store.load("n").await.unwrap(), None);

        // Acknowledge out of order: the second batch alone does not move the checkpoint.
        let second = held.remove(1);
        second.ack.ack();
        tokio::task::yield_now().await;
        assert_eq!(store.load("n").await.unwrap(), None);
        for batch in held.drain(..) {
            batch.ack.ack(); // first and third: now 0..6 is done
        }
        while let Some(batch) = rx.recv().await {
            batch.ack.ack();
        }
        task.await.unwrap().unwrap();
        assert_eq!(store.load("n").await.unwrap().unwrap().position, 10);
    }

    #[tokio::test]
    async fn a_failed_batch_stops_the_checkpoint_before_it() {
        let (_dir, store, options) = setup();
        let (mut rx, task) = spawn(10, &store, options, CancellationToken::new());
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        first.ack.ack();
        second.ack.fail();
        drop(second);
        while let Some(batch) = rx.recv().await {
            batch.ack.ack();
        }
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, SourceError::NotDelivered { position: 4, .. }), "{err}");
        assert_eq!(store.load("n").await.unwrap().unwrap().position, 2, "only the first batch counts");

        // A restart resumes right after the last delivered batch.
        let (mut rx, task) =
            spawn(10, &store, SourceOptions { batch_size: 100, ..SourceOptions::default() }, CancellationToken::new());
        let replay = rx.recv().await.unwrap();
        assert_eq!(replay.items.first().unwrap().position, 2);
        replay.ack.ack();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_waits_for_what_was_handed_out() {
        let (_dir, store, options) = setup();
        let cancel = CancellationToken::new();
        let (mut rx, task) = spawn(1_000_000, &store, options, cancel.clone());
        let held = rx.recv().await.unwrap();
        cancel.cancel();
        tokio::task::yield_now().await;
        assert!(!task.is_finished(), "the source must wait for the batch it handed out");
        let end = held.items.last().unwrap().position + 1;
        held.ack.ack();
        while let Some(batch) = rx.recv().await {
            batch.ack.ack();
        }
        task.await.unwrap().unwrap();
        assert!(store.load("n").await.unwrap().unwrap().position >= end);
    }
}
