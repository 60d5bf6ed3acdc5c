//! The producer side: batches in, one Kafka message per item out, and the batch's
//! acknowledgement only once the brokers acknowledged every one of its messages.
//!
//! The producer is idempotent with `acks=all`, so a broker restart or a leader change is
//! retried inside librdkafka without duplicates or reordering within a partition. A batch's
//! [`AckToken`] is released by the brokers' acknowledgements and by nothing else: the
//! collector's file checkpoint therefore advances only past events Kafka holds. A slow
//! consumer never reaches back here — Kafka stores what the consumers have not read yet —
//! so a slow archiver cannot make a collector drop or hold events.

use std::time::Duration;

use collector::{AckToken, Batch};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::BusError;
use crate::config::KafkaSettings;
use crate::metrics::{BusMetrics, TopicLabel};
use crate::wire::{Encoding, WireError};

/// The librdkafka configuration of every Vigie producer.
pub(crate) fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in &settings.librdkafka {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &settings.brokers)
        // Exactly-once per partition from the producer's side: retries never duplicate.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &settings.compression)
        .set("linger.ms", settings.linger.as_millis().to_string())
        // Keep retrying through a broker restart; a batch fails only after this long.
        .set("message.timeout.ms", "300000");
    config
}

/// A Kafka producer shared by the publishing stages of one process.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    encoding: Encoding,
    metrics: BusMetrics,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("encoding", &self.encoding).finish_non_exhaustive()
    }
}

/// One message to produce.
#[derive(Debug)]
pub struct Outgoing {
    /// The partition key (an offender's address: its messages stay in order in one partition).
    pub key: String,
    pub payload: Vec<u8>,
    /// The message timestamp (the event's time), which lets an analyzer find where to replay from.
    pub timestamp: jiff::Timestamp,
}

/// Delivery reports still to come for a set of messages.
pub struct Deliveries {
    topic: String,
    pending: Vec<DeliveryFuture>,
    producer: FutureProducer,
    metrics: BusMetrics,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} deliveries on {}", self.pending.len(), self.topic)
    }
}

/// How many times a message the brokers refused is sent again before its batch fails.
const RESEND_ATTEMPTS: u32 = 10;

/// Whether a message refused with `error` may be sent again. librdkafka already retries
/// what Kafka calls retriable; what reaches us is final for librdkafka, but a broker that
/// is shutting down answers in-flight produces with UNKNOWN_SERVER_ERROR (tansu does), and
/// a restarted broker then takes them. Refusals that another try cannot change are final.
fn resendable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match error {
        KafkaError::MessageProduction(code) => !matches!(
            code,
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::MessageBatchTooLarge
                | C::InvalidRecord
                | C::InvalidRequiredAcks
                | C::InvalidTopic
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::Fatal
                | C::Fenced
        ),
        _ => false,
    }
}

impl Deliveries {
    /// Resolves once the brokers acknowledged every message, or with the first final failure.
    ///
    /// A message refused for a reason another try can change (see [`resendable`]) is sent
    /// again, up to [`RESEND_ATTEMPTS`] times with a growing pause. The batch's token waits
    /// meanwhile, so the source's checkpoint does not pass it. A re-sent message may land
    /// after newer messages of its key, or twice when the refusal came after the write: the
    /// consumers are idempotent by event id, so the archive still holds it once.
    pub async fn wait(self) -> Result<(), BusError> {
        let Deliveries { topic, mut pending, producer, metrics } = self;
        let label = TopicLabel { topic: topic.clone() };
        let mut delivered = 0;
        let mut attempt = 0;
        let result = loop {
            let mut again = Vec::new();
            let mut failure = None;
            for future in pending {
                match future.await {
                    Ok(Ok(_)) => delivered += 1,
                    Ok(Err((e, message))) if attempt < RESEND_ATTEMPTS && resendable(&e) => again.push((e, message)),
                    Ok(Err((e, _))) => {
                        metrics.delivery_failures.get_or_create(&label).inc();
                        failure.get_or_insert(BusError::Kafka(e));
                    }
                    Err(_cancelled) => {
                        metrics.delivery_failures.get_or_create(&label).inc();
                        failure.get_or_insert(BusError::ProducerGone);
                    }
                }
            }
            if let Some(e) = failure {
                break Err(e);
            }
            let Some((first_error, _)) = again.first() else { break Ok(()) };
            attempt += 1;
            let pause = Duration::from_millis(250 << attempt.min(6)).min(Duration::from_secs(10));
            tracing::warn!(topic = %topic, messages = again.len(), attempt, error = %first_error, ?pause,
                "the brokers refused messages; sending them again");
            metrics.resent.get_or_create(&label).inc_by(again.len() as u64);
            tokio::time::sleep(pause).await;
            pending = Vec::with_capacity(again.len());
            for (_, message) in &again {
                let timestamp = message.timestamp().to_millis();
                pending.push(send_one(&producer, &topic, message.key(), message.payload(), timestamp).await?);
            }
        };
        metrics.produced.get_or_create(&label).inc_by(delivered);
        result
    }
}

/// Queues one message; waits only while librdkafka's local queue is full.
async fn send_one(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    timestamp: Option<i64>,
) -> Result<DeliveryFuture, BusError> {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    if let Some(timestamp) = timestamp {
        record = record.timestamp(timestamp);
    }
    loop {
        match producer.send_result(record) {
            Ok(future) => return Ok(future),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // The local queue is full (brokers slow or away): wait, never drop.
                record = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(BusError::Kafka(e)),
        }
    }
}

impl Publisher {
    /// Connects lazily (librdkafka connects in the background); fails only on a bad setting.
    pub fn new(settings: &KafkaSettings, metrics: BusMetrics) -> Result<Publisher, BusError> {
        let producer: FutureProducer = producer_config(settings).create()?;
        Ok(Publisher { producer, encoding: settings.encoding, metrics })
    }

    /// The payload encoding this publisher writes.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Queues `messages` on `topic`; waits only while librdkafka's local queue is full.
    pub async fn send_all(&self, topic: &str, messages: Vec<Outgoing>) -> Result<Deliveries, BusError> {
        let mut pending = Vec::with_capacity(messages.len());
        for message in &messages {
            let timestamp = Some(message.timestamp.as_millisecond());
            pending.push(
                send_one(&self.producer, topic, Some(message.key.as_bytes()), Some(&message.payload), timestamp)
                    .await?,
            );
        }
        Ok(Deliveries {
            topic: topic.to_owned(),
            pending,
            producer: self.producer.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// Waits up to `timeout` for every queued message to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        Ok(self.producer.flush(Timeout::After(timeout))?)
    }
}

/// How a publishing stage turns an item into a message.
#[derive(Debug, Clone, Copy)]
pub struct Codec<T> {
    pub encode: fn(&T, Encoding, &mut Vec<u8>) -> Result<(), WireError>,
    pub key: fn(&T) -> String,
    pub timestamp: fn(&T) -> jiff::Timestamp,
}

/// Produces every batch from `input` to `topic` until the input closes. Each batch's token is
/// acknowledged when all its messages are acknowledged by the brokers, and failed otherwise
/// (the source keeps its checkpoint before it and replays it).
pub async fn run_publisher<T: Send + 'static>(
    publisher: Publisher,
    topic: String,
    codec: Codec<T>,
    mut input: mpsc::Receiver<Batch<T>>,
) -> Result<(), BusError> {
    let mut waiting: JoinSet<()> = JoinSet::new();
    let result = async {
        while let Some(Batch { items, ack }) = input.recv().await {
            let mut messages = Vec::with_capacity(items.len());
            for item in &items {
                let mut payload = Vec::with_capacity(256);
                if let Err(e) = (codec.encode)(item, publisher.encoding, &mut payload) {
                    ack.fail();
                    return Err(BusError::Wire(e));
                }
                messages.push(Outgoing { key: (codec.key)(item), payload, timestamp: (codec.timestamp)(item) });
            }
            let deliveries = match publisher.send_all(&topic, messages).await {
                Ok(d) => d,
                Err(e) => {
                    ack.fail();
                    return Err(e);
                }
            };
            waiting.spawn(acknowledge_when_delivered(deliveries, ack));
            while waiting.try_join_next().is_some() {}
        }
        Ok(())
    }
    .await;
    // Every batch handed to Kafka gets its answer before this stage ends.
    while waiting.join_next().await.is_some() {}
    result
}

async fn acknowledge_when_delivered(deliveries: Deliveries, ack: AckToken) {
    match deliveries.wait().await {
        Ok(()) => ack.ack(),
        Err(e) => {
            tracing::error!(error = %e, "kafka did not acknowledge a batch; it stays before the checkpoint and is replayed");
            ack.fail();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_refusals_are_sent_again_and_final_ones_are_not() {
        let refused = |code| KafkaError::MessageProduction(code);
        // What a broker shutting down answers, and what a leader move or a full broker answer.
        for code in [RDKafkaErrorCode::Unknown, RDKafkaErrorCode::NotEnoughReplicas, RDKafkaErrorCode::MessageTimedOut]
        {
            assert!(resendable(&refused(code)), "{code:?}");
        }
        for code in
            [RDKafkaErrorCode::MessageSizeTooLarge, RDKafkaErrorCode::TopicAuthorizationFailed, RDKafkaErrorCode::Fatal]
        {
            assert!(!resendable(&refused(code)), "{code:?}");
        }
        assert!(!resendable(&KafkaError::Canceled));
    }
}
