//! What the Kafka roles report on `/metrics`. Labels are bounded: topics and groups come from
//! the configuration, partitions from the topic's (fixed) partition count.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartitionLabels {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TopicLabel {
    pub(crate) topic: String,
}

/// Producer and consumer counters and the per-partition lag. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct BusMetrics {
    pub(crate) produced: Family<TopicLabel, Counter>,
    pub(crate) delivery_failures: Family<TopicLabel, Counter>,
    pub(crate) resent: Family<TopicLabel, Counter>,
    pub(crate) consumed: Family<PartitionLabels, Counter>,
    pub(crate) undecodable: Family<PartitionLabels, Counter>,
    pub(crate) committed: Family<PartitionLabels, Gauge>,
    pub(crate) lag: Family<PartitionLabels, Gauge>,
    pub(crate) replayed: Family<PartitionLabels, Counter>,
}

impl BusMetrics {
    /// Registers every metric in `registry`.
    pub fn register(registry: &mut Registry) -> BusMetrics {
        let m = BusMetrics::default();
        registry.register(
            "vigie_kafka_produced",
            "Messages the brokers acknowledged (acks=all), by topic",
            m.produced.clone(),
        );
        registry.register(
            "vigie_kafka_delivery_failures",
            "Messages the producer could not deliver; their batch is not acknowledged and is replayed",
            m.delivery_failures.clone(),
        );
        registry.register(
            "vigie_kafka_resent",
            "Messages the brokers refused for a passing reason (a broker shutting down) and the producer sent again",
            m.resent.clone(),
        );
        registry.register("vigie_kafka_consumed", "Messages received by a consumer group member", m.consumed.clone());
        registry.register(
            "vigie_kafka_undecodable",
            "Messages skipped because they are not in a wire format this vigie reads (they stay in the topic)",
            m.undecodable.clone(),
        );
        registry.register(
            "vigie_kafka_committed_offset",
            "Offset committed after the role's own durable write, per partition",
            m.committed.clone(),
        );
        registry.register(
            "vigie_kafka_consumer_lag",
            "Messages in the partition not yet durably handled by this group (high watermark - committed offset)",
            m.lag.clone(),
        );
        registry.register(
            "vigie_kafka_replayed",
            "Events an analyzer replayed to rebuild its windows after being assigned a partition",
            m.replayed.clone(),
        );
        m
    }

    /// Messages acknowledged by the brokers on `topic` so far.
    pub fn produced_total(&self, topic: &str) -> u64 {
        self.produced.get_or_create(&TopicLabel { topic: topic.into() }).get()
    }

    /// The last measured lag of one partition.
    pub fn lag(&self, group: &str, topic: &str, partition: i32) -> i64 {
        self.lag.get_or_create(&PartitionLabels { group: group.into(), topic: topic.into(), partition }).get()
    }
}
