//! Scale-out transport: Vigie's roles (collectors, analyzers, archivers, alerters) joined by
//! Kafka. Kafka is the distributed engine; this crate adds no home-made one.
//!
//! - [`wire`](encode_event): the versioned message format (a version byte, an encoding byte,
//!   then postcard or JSON);
//! - [`Publisher`] / [`run_publisher`]: idempotent `acks=all` producer; a batch is
//!   acknowledged upstream only when the brokers acknowledged all its messages;
//! - [`run_consumer`]: a consumer-group member that commits offsets only past batches its
//!   stage durably wrote, and replays a newly assigned partition's recent past for analyzers;
//! - [`BusMetrics`]: produced, consumed, committed offsets and lag per partition.

mod config;
mod consume;
mod metrics;
mod produce;
mod wire;

pub use config::{KafkaConfig, KafkaProblem, KafkaSettings};
pub use consume::{ConsumerSpec, Replay, ReplaySpec, run_consumer};
pub use metrics::BusMetrics;
pub use produce::{Codec, Deliveries, Outgoing, Publisher, run_publisher};
pub use wire::{
    Encoding, WIRE_VERSION, WireError, WireEventV1, decode_detection, decode_event, encode_detection, encode_event,
    event_key,
};

/// What can go wrong between Vigie and Kafka.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("wire format: {0}")]
    Wire(#[from] WireError),
    #[error("the kafka producer stopped before reporting a delivery")]
    ProducerGone,
    #[error("the stage fed by this consumer stopped")]
    StageGone,
    #[error(
        "topic {topic}, partition {partition}: the batch ending before offset {offset} was not durably written; \
         the offset stays before it and it is re-delivered at restart"
    )]
    NotWritten { topic: String, partition: i32, offset: i64 },
    #[error("replaying a partition to rebuild the analyzer's windows: {0}")]
    Replay(String),
}

/// The codec of events on the events topic: keyed by source address, timed by the event.
pub const EVENT_CODEC: Codec<collector::Event> =
    Codec { encode: encode_event, key: event_key, timestamp: |e| e.timestamp };

/// The codec of detections: keyed by the offender the rule groups by.
pub const DETECTION_CODEC: Codec<analyzer::Detection> =
    Codec { encode: encode_detection, key: |d| d.key.clone(), timestamp: |d| d.timestamp };
