//! The consumer side: a consumer-group member that hands batches to a durable stage and
//! commits a partition's offset only past batches that stage acknowledged.
//!
//! Each batch holds messages of one partition, in offset order, with an [`AckToken`] whose
//! waiter the loop keeps per partition. The offset committed is the one after the last
//! batch of an unbroken run of acknowledged batches — never past a batch still in flight or
//! failed. A crash, a restart or a rebalance therefore re-delivers what was not durably
//! written, and the stages' idempotence by event id (archive) or detection id (alert store)
//! turns that re-delivery into no duplicate.
//!
//! An analyzer also asks, through [`Replay`], for the recent past of every partition it is
//! newly assigned, so that its windows are rebuilt before it reads further (see
//! docs/deployment.md for the limits of that rebuild).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector::{AckStatus, AckToken, AckWaiter, Batch};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::BusError;
use crate::config::KafkaSettings;
use crate::metrics::{BusMetrics, PartitionLabels};
use crate::wire::WireError;

/// How long a partial batch waits for more messages before it is handed on.
const BATCH_LINGER: Duration = Duration::from_millis(100);
/// Timeout of the blocking calls to the brokers (committed offsets, watermarks, replay).
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Events of a partition's recent past, replayed to rebuild an analyzer's windows. They were
/// already handled (their offsets are committed): observe them, but emit nothing for them.
#[derive(Debug)]
pub struct Replay<T> {
    pub partition: i32,
    pub items: Vec<T>,
}

/// Where replays go and how far back they reach.
#[derive(Debug)]
pub struct ReplaySpec<T> {
    pub output: mpsc::Sender<Replay<T>>,
    /// Event time replayed before the last committed message.
    pub window: Duration,
}

/// What one consumer-group member reads.
#[derive(Debug)]
pub struct ConsumerSpec<T> {
    /// The role, which names the group (`<group_prefix>.<role>`).
    pub role: &'static str,
    pub topic: String,
    pub decode: fn(&[u8]) -> Result<T, WireError>,
}

#[derive(Debug)]
enum Note {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Records rebalances for the loop: the callbacks run inside `recv`, the loop acts on them
/// before it handles the next message.
#[derive(Debug, Default)]
struct GroupContext {
    notes: Mutex<Vec<Note>>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |tpl: &TopicPartitionList| tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>();
        let note = match rebalance {
            Rebalance::Assign(tpl) => Note::Assigned(partitions(tpl)),
            Rebalance::Revoke(tpl) => Note::Revoked(partitions(tpl)),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "kafka rebalance error");
                return;
            }
        };
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).push(note);
    }
}

/// A partition's messages not yet handed on.
#[derive(Debug)]
struct Open<T> {
    items: Vec<T>,
    /// The offset after the last message taken in.
    next: i64,
}

/// The state of the loop for its assigned partitions.
struct Member<T> {
    consumer: Arc<StreamConsumer<GroupContext>>,
    group: String,
    topic: String,
    batch_max: usize,
    open: BTreeMap<i32, Open<T>>,
    /// Batches handed on and not yet retired, per partition, with the offset after each.
    pending: BTreeMap<i32, VecDeque<(i64, AckWaiter)>>,
    /// Per partition, the offset after the last message taken in (handed on or open). After
    /// a rebalance gives a partition back, what is below it is in flight or written already:
    /// it is not handed on twice (an analyzer would count it twice in its windows).
    taken: BTreeMap<i32, i64>,
    to_rebuild: BTreeSet<i32>,
    metrics: BusMetrics,
}

impl<T> Member<T> {
    fn labels(&self, partition: i32) -> PartitionLabels {
        PartitionLabels { group: self.group.clone(), topic: self.topic.clone(), partition }
    }

    /// Hands a partition's open batch on (also an empty one whose messages were all skipped,
    /// so that the offset still moves past them).
    async fn flush(&mut self, partition: i32, output: &mpsc::Sender<Batch<T>>) -> Result<(), BusError> {
        let Some(open) = self.open.remove(&partition) else { return Ok(()) };
        let (token, waiter) = AckToken::new();
        self.pending.entry(partition).or_default().push_back((open.next, waiter));
        output.send(Batch::new(open.items, token)).await.map_err(|_| BusError::StageGone)
    }

    async fn flush_all(&mut self, output: &mpsc::Sender<Batch<T>>) -> Result<(), BusError> {
        let partitions: Vec<i32> = self.open.keys().copied().collect();
        for p in partitions {
            self.flush(p, output).await?;
        }
        Ok(())
    }

    /// Commits, per partition, past every acknowledged batch at the front; `wait` waits for
    /// each pending batch instead of taking only those already answered.
    async fn retire(&mut self, wait: bool) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::new();
        let partitions: Vec<i32> = self.pending.keys().copied().collect();
        for p in partitions {
            let mut queue = self.pending.remove(&p).unwrap_or_default();
            let mut commit_to = None;
            let mut failed = None;
            loop {
                let known = match queue.front_mut() {
                    None => break,
                    Some(_) if wait => None,
                    Some((_, waiter)) => match waiter.try_status() {
                        Some(status) => Some(status),
                        None => break,
                    },
                };
                let (next, waiter) = queue.pop_front().expect("front exists");
                let status = match known {
                    Some(status) => status,
                    None => waiter.wait().await,
                };
                match status {
                    AckStatus::Delivered => commit_to = Some(next),
                    AckStatus::Failed => {
                        failed = Some(next);
                        break;
                    }
                }
            }
            let mode = if wait || failed.is_some() { CommitMode::Sync } else { CommitMode::Async };
            self.commit(&mut tpl, p, commit_to, mode);
            if let Some(offset) = failed {
                return Err(BusError::NotWritten { topic: self.topic.clone(), partition: p, offset });
            }
            if !queue.is_empty() {
                self.pending.insert(p, queue);
            }
        }
        Ok(())
    }

    fn commit(&self, tpl: &mut TopicPartitionList, partition: i32, to: Option<i64>, mode: CommitMode) {
        let Some(offset) = to else { return };
        *tpl = TopicPartitionList::new();
        if tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset)).is_err() {
            return;
        }
        // A failed commit loses nothing: the next one covers it, and until then a restart
        // re-delivers a little more (idempotent downstream).
        match self.consumer.commit(tpl, mode) {
            Ok(()) => {
                self.metrics.committed.get_or_create(&self.labels(partition)).set(offset);
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition, offset, error = %e, "offset commit failed; will retry")
            }
        }
    }

    /// Applies the rebalances the callbacks recorded.
    fn take_notes(&mut self, replaying: bool) {
        let notes = std::mem::take(&mut *self.consumer.context().notes.lock().unwrap_or_else(|e| e.into_inner()));
        for note in notes {
            match note {
                Note::Assigned(partitions) => {
                    tracing::info!(group = %self.group, topic = %self.topic, ?partitions, "partitions assigned");
                    if replaying {
                        self.to_rebuild.extend(partitions);
                    }
                }
                Note::Revoked(partitions) => {
                    // What was taken in from these partitions is still written (idempotent) and
                    // its commits are attempted; a new owner starts from the last commit and
                    // re-delivers the rest, which the stores recognise by id.
                    tracing::info!(group = %self.group, topic = %self.topic, ?partitions, "partitions revoked");
                }
            }
        }
    }
}

/// How long a broker may hold a fetch that finds no new message (`fetch.wait.max.ms`).
///
/// librdkafka's default, 500 ms, makes tansu 0.6 sleep twice inside the long poll (half the
/// remaining wait, then the rest); one of those sleeps sometimes never ends, and the fetch
/// connection then hangs with no answer until `socket.timeout.ms` (60 s) expires: the
/// consumer, caught up once, stops reading although the partitions grow. At 100 ms tansu
/// sleeps once, and an idle consumer costs a real Kafka cluster ten empty fetches a second
/// per broker, which is nothing. An operator may still set it in `[kafka.librdkafka]`.
const FETCH_WAIT_MAX_MS: &str = "100";

/// The librdkafka configuration of a group member: manual commits only.
fn consumer_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS);
    for (k, v) in &settings.librdkafka {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    config
}

/// Reads `spec.topic` as a member of the role's group until `cancel` fires, handing batches
/// to `output` and committing offsets as they are acknowledged. On cancel it hands on what
/// it holds, closes `output`, waits for every batch to be answered and commits; so a clean
/// stop re-delivers nothing.
pub async fn run_consumer<T: Send + 'static>(
    settings: &KafkaSettings,
    spec: ConsumerSpec<T>,
    output: mpsc::Sender<Batch<T>>,
    replay: Option<ReplaySpec<T>>,
    metrics: BusMetrics,
    cancel: CancellationToken,
) -> Result<(), BusError> {
    let group = settings.group(spec.role);
    let consumer: StreamConsumer<GroupContext> =
        consumer_config(settings, &group).create_with_context(GroupContext::default())?;
    consumer.subscribe(&[spec.topic.as_str()])?;
    tracing::info!(group = %group, topic = %spec.topic, "consumer started");
    let mut member = Member {
        consumer: Arc::new(consumer),
        group,
        topic: spec.topic.clone(),
        batch_max: settings.batch_max,
        open: BTreeMap::new(),
        pending: BTreeMap::new(),
        taken: BTreeMap::new(),
        to_rebuild: BTreeSet::new(),
        metrics: metrics.clone(),
    };
    let mut linger = tokio::time::interval(BATCH_LINGER);
    linger.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lag_tick = tokio::time::interval(settings.lag_interval.max(Duration::from_millis(100)));
    lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // A handle of its own: a received message borrows it while the loop updates `member`.
    let receiver = Arc::clone(&member.consumer);
    let result: Result<(), BusError> = async {
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                _ = linger.tick() => {
                    member.take_notes(replay.is_some());
                    member.flush_all(&output).await?;
                    member.retire(false).await?;
                }
                _ = lag_tick.tick() => measure_lag(&member).await,
                received = receiver.recv() => {
                    let message = match received {
                        Ok(m) => m.detach(),
                        Err(e) => {
                            // Broker away, leader moving: librdkafka reconnects by itself.
                            tracing::warn!(topic = %member.topic, error = %e, "kafka consumer error");
                            continue;
                        }
                    };
                    member.take_notes(replay.is_some());
                    let partition = message.partition();
                    if let Some(replay) = &replay
                        && member.to_rebuild.remove(&partition)
                    {
                        rebuild(settings, &mut member, partition, replay, spec.decode).await?;
                    }
                    if member.taken.get(&partition).is_some_and(|&taken| message.offset() < taken) {
                        continue; // taken in before a rebalance gave the partition back
                    }
                    member.taken.insert(partition, message.offset() + 1);
                    let labels = member.labels(partition);
                    metrics.consumed.get_or_create(&labels).inc();
                    let open = member.open.entry(partition).or_insert_with(|| Open { items: Vec::new(), next: 0 });
                    open.next = message.offset() + 1;
                    match message.payload().map(spec.decode) {
                        Some(Ok(item)) => open.items.push(item),
                        Some(Err(e)) => {
                            metrics.undecodable.get_or_create(&labels).inc();
                            tracing::error!(topic = %member.topic, partition, offset = message.offset(), error = %e,
                                "message skipped: not in a wire format this vigie reads (it stays in the topic)");
                        }
                        None => {
                            metrics.undecodable.get_or_create(&labels).inc();
                            tracing::error!(topic = %member.topic, partition, offset = message.offset(), "empty message skipped");
                        }
                    }
                    if member.open.get(&partition).is_some_and(|o| o.items.len() >= member.batch_max) {
                        member.flush(partition, &output).await?;
                        member.retire(false).await?;
                    }
                }
            }
        }
    }
    .await;
    // Hand on what is held, let the stage finish, commit what it wrote.
    let flushed = if result.is_ok() { member.flush_all(&output).await } else { Ok(()) };
    drop(output);
    let retired = member.retire(true).await;
    tracing::info!(group = %member.group, topic = %member.topic, "consumer stopped");
    result.and(flushed).and(retired)
}

/// Lag per assigned partition: the high watermark minus the committed offset.
async fn measure_lag<T>(member: &Member<T>) {
    let consumer = Arc::clone(&member.consumer);
    let topic = member.topic.clone();
    let measured = tokio::task::spawn_blocking(move || -> Result<Vec<(i32, i64)>, rdkafka::error::KafkaError> {
        let committed = consumer.committed(BROKER_TIMEOUT)?;
        let mut out = Vec::new();
        for element in committed.elements_for_topic(&topic) {
            let (_, high) = consumer.fetch_watermarks(&topic, element.partition(), BROKER_TIMEOUT)?;
            let done = match element.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            out.push((element.partition(), (high - done).max(0)));
        }
        Ok(out)
    })
    .await;
    match measured {
        Ok(Ok(lags)) => {
            for (partition, lag) in lags {
                member.metrics.lag.get_or_create(&member.labels(partition)).set(lag);
            }
        }
        Ok(Err(e)) => tracing::debug!(topic = %member.topic, error = %e, "lag not measured"),
        Err(e) => tracing::warn!(error = %e, "lag measurement panicked"),
    }
}

/// Replays a newly assigned partition's recent past — `replay.window` of message time
/// before its last committed message — and hands it to the analyzer before anything newer.
async fn rebuild<T: Send + 'static>(
    settings: &KafkaSettings,
    member: &mut Member<T>,
    partition: i32,
    replay: &ReplaySpec<T>,
    decode: fn(&[u8]) -> Result<T, WireError>,
) -> Result<(), BusError> {
    let consumer = Arc::clone(&member.consumer);
    let (topic, window) = (member.topic.clone(), replay.window);
    let mut config = ClientConfig::new();
    config.set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS);
    for (k, v) in &settings.librdkafka {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &settings.brokers)
        // A separate, never-committing reader: the group's offsets are not touched.
        .set("group.id", format!("{}.replay", member.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let started = std::time::Instant::now();
    let taken = member.taken.get(&partition).copied();
    let past =
        tokio::task::spawn_blocking(move || read_past(&consumer, &config, &topic, partition, taken, window, decode))
            .await
            .map_err(|e| BusError::Replay(e.to_string()))??;
    let Some(items) = past else {
        tracing::info!(topic = %member.topic, partition, "partition assigned again; its windows are still here");
        return Ok(());
    };
    // Another member moved the partition on: what this one took in before is history.
    member.taken.remove(&partition);
    let count = items.len() as u64;
    member.metrics.replayed.get_or_create(&member.labels(partition)).inc_by(count);
    tracing::info!(topic = %member.topic, partition, events = count, took_ms = started.elapsed().as_millis() as u64,
        "analyzer windows rebuilt from the partition's recent past");
    replay.output.send(Replay { partition, items }).await.map_err(|_| BusError::StageGone)
}

/// `None` when this member already holds the partition's state (it took in everything up
/// to the committed offset itself); otherwise the events to replay.
fn read_past<T>(
    group_member: &StreamConsumer<GroupContext>,
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    taken: Option<i64>,
    window: Duration,
    decode: fn(&[u8]) -> Result<T, WireError>,
) -> Result<Option<Vec<T>>, BusError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = group_member.committed_offsets(tpl, BROKER_TIMEOUT)?;
    let end = match committed.find_partition(topic, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) if o > 0 => o,
        _ => return Ok(Some(Vec::new())), // nothing handled yet: nothing to rebuild
    };
    if taken.is_some_and(|t| t >= end) {
        return Ok(None);
    }
    let reader: BaseConsumer = config.create()?;
    // The time of the last handled message, then the first offset `window` before it.
    let last = read_range(&reader, topic, partition, end - 1, end, |m| Ok(m.timestamp().to_millis()))?;
    let Some(Some(last_ms)) = last.into_iter().next() else { return Ok(Some(Vec::new())) };
    let mut times = TopicPartitionList::new();
    let from_ms = last_ms - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    times.add_partition_offset(topic, partition, Offset::Offset(from_ms))?;
    let found = reader.offsets_for_times(times, BROKER_TIMEOUT)?;
    let start = match found.find_partition(topic, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) if o < end => o,
        _ => end - 1,
    };
    let decoded = read_range(&reader, topic, partition, start, end, |m| Ok(m.payload().map(decode)))?;
    Ok(Some(decoded.into_iter().filter_map(|d| d.and_then(Result::ok)).collect()))
}

/// Reads offsets `from..to` of one partition with a plain (group-less) reader.
fn read_range<R>(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> Result<R, BusError>,
) -> Result<Vec<R>, BusError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
    reader.assign(&tpl)?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + BROKER_TIMEOUT * 3;
    while std::time::Instant::now() < deadline {
        match reader.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                if message.offset() >= to {
                    break;
                }
                out.push(each(&message)?);
                if message.offset() + 1 >= to {
                    break;
                }
            }
        }
    }
    Ok(out)
}
