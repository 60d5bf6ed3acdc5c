//! The boundary between pipeline stages: batches that carry an acknowledgement token.
//!
//! A source hands out [`Batch`]es; every stage passes the batch's [`AckToken`] along with what
//! it derives from the batch, and every durable consumer (the archive, the alert store)
//! calls [`AckToken::ack`] on its clone once its write is durable. When the last clone is
//! gone the source's [`AckWaiter`] resolves, and only then does the source advance its
//! checkpoint (a file offset today, a Kafka offset tomorrow). A crash therefore replays what
//! was not fully written, and deterministic event ids make that replay idempotent.
//!
//! "Written" has to be said: a clone dropped without `ack()` — a batch left in a closed
//! channel, a stage that returned early or panicked — fails the batch. No code path can
//! lose a batch and still let it count as delivered.
//!
//! Nothing here knows about channels: a Kafka consumer can build the same batches, with
//! tokens whose waiter commits an offset, and feed the stages unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::oneshot;

/// How a batch ended up once every holder of its token let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// Every durable consumer wrote its part.
    Delivered,
    /// At least one consumer failed (or panicked): the source must not advance past this batch.
    Failed,
}

#[derive(Debug)]
struct AckInner {
    failed: AtomicBool,
    tx: std::sync::Mutex<Option<oneshot::Sender<AckStatus>>>,
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let status = if self.failed.load(Ordering::Acquire) { AckStatus::Failed } else { AckStatus::Delivered };
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // The waiter may be gone during shutdown; then nobody needs the answer.
            let _ = tx.send(status);
        }
    }
}

/// A shared acknowledgement handle. Clone it for every consumer that must write the batch;
/// call [`AckToken::ack`] when the write is durable. Dropping it otherwise fails the batch.
#[derive(Debug)]
pub struct AckToken {
    inner: Arc<AckInner>,
    acked: bool,
}

impl Clone for AckToken {
    /// Another holder that must acknowledge on its own.
    fn clone(&self) -> Self {
        AckToken { inner: Arc::clone(&self.inner), acked: false }
    }
}

impl AckToken {
    /// A new token and the waiter that resolves once every clone is dropped.
    pub fn new() -> (AckToken, AckWaiter) {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::new(AckInner { failed: AtomicBool::new(false), tx: std::sync::Mutex::new(Some(tx)) });
        let token = AckToken { inner, acked: false };
        (token, AckWaiter { rx, status: None })
    }

    /// A token nobody waits for (tests, one-shot tools).
    pub fn detached() -> AckToken {
        AckToken::new().0
    }

    /// This holder's part of the batch is durably written.
    pub fn ack(mut self) {
        self.acked = true;
    }

    /// Marks the batch as not durably written. The source keeps its checkpoint before it.
    pub fn fail(&self) {
        self.inner.failed.store(true, Ordering::Release);
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        // Not acknowledged (dropped in a channel, an early return, a panic): not written.
        if !self.acked || std::thread::panicking() {
            self.fail();
        }
    }
}

/// Resolves when every clone of the matching [`AckToken`] is gone (acknowledged or not).
#[derive(Debug)]
pub struct AckWaiter {
    rx: oneshot::Receiver<AckStatus>,
    status: Option<AckStatus>,
}

impl AckWaiter {
    pub async fn wait(self) -> AckStatus {
        if let Some(status) = self.status {
            return status;
        }
        // A dropped sender without a status cannot happen (AckInner always sends), but if the
        // runtime tears down mid-way the safe answer is "not written".
        self.rx.await.unwrap_or(AckStatus::Failed)
    }

    /// The status if every holder already let go, without waiting.
    pub fn try_status(&mut self) -> Option<AckStatus> {
        if self.status.is_none() {
            self.status = match self.rx.try_recv() {
                Ok(status) => Some(status),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(AckStatus::Failed),
            };
        }
        self.status
    }
}

/// Items travelling together between two stages, with the token of the source batch(es)
/// they came from.
#[derive(Debug)]
pub struct Batch<T> {
    pub items: Vec<T>,
    pub ack: AckToken,
}

impl<T> Batch<T> {
    pub fn new(items: Vec<T>, ack: AckToken) -> Self {
        Batch { items, ack }
    }

    /// The same token with other items (a stage's output derived from this batch).
    pub fn map_items<U>(self, f: impl FnOnce(Vec<T>) -> Vec<U>) -> Batch<U> {
        Batch { items: f(self.items), ack: self.ack }
    }
}

/// One record read by a source, before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Which configured source read it (also the prefix of the event ids it yields).
    pub source: Arc<str>,
    /// Position of the record in its source: byte offset of the line, or sequence number.
    pub position: u64,
    /// For a file source, a tag of the file the offset is in (see [`crate::source::FileSource`]):
    /// offsets start again at 0 in each new file after a rotation or a truncation, so the
    /// event id (`source:tag:offset`) needs it to stay unique.
    pub file: Option<Arc<str>>,
    /// The line, without its terminator.
    pub line: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivered_once_every_clone_is_acknowledged() {
        let (token, waiter) = AckToken::new();
        let archive = token.clone();
        let alerts = token.clone();
        token.ack();
        archive.ack();
        let mut waiter = Box::pin(waiter.wait());
        assert!(futures_poll_once(&mut waiter).await.is_none(), "one holder is left");
        alerts.ack();
        assert_eq!(waiter.await, AckStatus::Delivered);
    }

    #[tokio::test]
    async fn a_batch_dropped_unacknowledged_fails() {
        let (token, waiter) = AckToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(Batch::new(vec![1], token)).await.unwrap();
        drop(rx); // the consumer went away with the batch still queued
        assert_eq!(waiter.wait().await, AckStatus::Failed);
    }

    #[tokio::test]
    async fn one_failure_fails_the_batch() {
        let (token, waiter) = AckToken::new();
        let other = token.clone();
        other.fail();
        drop(other);
        token.ack();
        assert_eq!(waiter.wait().await, AckStatus::Failed);
    }

    #[tokio::test]
    async fn a_panicking_holder_fails_the_batch() {
        let (token, waiter) = AckToken::new();
        let handle = std::thread::spawn(move || {
            let _held = token;
            panic!("stage crashed");
        });
        assert!(handle.join().is_err());
        assert_eq!(waiter.wait().await, AckStatus::Failed);
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = f => Some(out),
            () = std::future::ready(()) => None,
        }
    }
}
