//! The `[kafka]` section of the configuration: raw as written, then validated into
//! [`KafkaSettings`] with every problem reported at once.

use collector::parse_duration;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::wire::Encoding;

fn default_events_topic() -> String {
    "vigie.events".into()
}
fn default_detections_topic() -> String {
    "vigie.detections".into()
}
fn default_group_prefix() -> String {
    "vigie".into()
}
fn default_compression() -> String {
    "lz4".into()
}
fn default_linger() -> String {
    "20ms".into()
}
fn default_batch_max() -> usize {
    512
}
fn default_replay_window() -> String {
    "1h".into()
}
fn default_lag_interval() -> String {
    "5s".into()
}

/// `[kafka]`: how the roles reach the brokers. Only `brokers` is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` separated by commas.
    pub brokers: String,
    /// Topic of parsed events, keyed by source address (create it with as many partitions as
    /// analyzers or archivers you may run: a partition is read by one member of a group).
    #[serde(default = "default_events_topic")]
    pub events_topic: String,
    /// Topic of the analyzers' detections, read by the alerter.
    #[serde(default = "default_detections_topic")]
    pub detections_topic: String,
    /// Consumer groups are `<group_prefix>.archiver`, `.analyzer` and `.alerter`.
    #[serde(default = "default_group_prefix")]
    pub group_prefix: String,
    /// Producer compression: `lz4` (default), `gzip`, `snappy` or `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// How long the producer waits to fill a batch (`linger.ms`): throughput against latency.
    #[serde(default = "default_linger")]
    pub linger: String,
    /// Payload encoding the producers write: `binary` (default) or `json`. Both are read.
    #[serde(default)]
    pub encoding: Encoding,
    /// Messages per batch handed from a consumer to its stage (archive, analyzer, alerts).
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// How much event time an analyzer replays from a partition it is newly assigned, to
    /// rebuild its windows: at least the longest rule window (plus its suppression).
    #[serde(default = "default_replay_window")]
    pub replay_window: String,
    /// How often consumer lag is measured.
    #[serde(default = "default_lag_interval")]
    pub lag_interval: String,
    /// Further librdkafka properties passed as they are (`security.protocol`,
    /// `ssl.ca.location`, `sasl.mechanisms`…). Secrets belong in the environment, not here.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

/// A problem found in `[kafka]`: the key, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaProblem {
    pub key: &'static str,
    pub message: String,
    pub hint: &'static str,
}

/// The validated `[kafka]` section.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub events_topic: String,
    pub detections_topic: String,
    pub group_prefix: String,
    pub compression: String,
    pub linger: Duration,
    pub encoding: Encoding,
    pub batch_max: usize,
    pub replay_window: Duration,
    pub lag_interval: Duration,
    pub librdkafka: BTreeMap<String, String>,
}

impl KafkaSettings {
    /// Settings for `brokers` with every default (tests, tools).
    pub fn new(brokers: &str) -> KafkaSettings {
        KafkaConfig::with_brokers(brokers).validate().expect("the defaults are valid")
    }

    /// The consumer group of a role (`vigie.archiver`).
    pub fn group(&self, role: &str) -> String {
        format!("{}.{role}", self.group_prefix)
    }
}

/// Properties Vigie sets itself: overriding them would break its delivery guarantees.
const RESERVED: &[&str] =
    &["enable.idempotence", "acks", "enable.auto.commit", "enable.auto.offset.store", "group.id", "bootstrap.servers"];

impl KafkaConfig {
    /// The section with only `brokers` set.
    pub fn with_brokers(brokers: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            events_topic: default_events_topic(),
            detections_topic: default_detections_topic(),
            group_prefix: default_group_prefix(),
            compression: default_compression(),
            linger: default_linger(),
            encoding: Encoding::default(),
            batch_max: default_batch_max(),
            replay_window: default_replay_window(),
            lag_interval: default_lag_interval(),
            librdkafka: BTreeMap::new(),
        }
    }

    /// Checks every key; returns all the problems, not only the first.
    pub fn validate(&self) -> Result<KafkaSettings, Vec<KafkaProblem>> {
        let mut problems = Vec::new();
        let mut duration = |key: &'static str, value: &str| {
            parse_duration(value).unwrap_or_else(|message| {
                problems.push(KafkaProblem { key, message, hint: "write it like \"20ms\", \"5s\", \"30m\" or \"1h\"" });
                Duration::ZERO
            })
        };
        let linger = duration("kafka.linger", &self.linger);
        let replay_window = duration("kafka.replay_window", &self.replay_window);
        let lag_interval = duration("kafka.lag_interval", &self.lag_interval);
        if self
            .brokers
            .split(',')
            .any(|b| b.trim().rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
        {
            problems.push(KafkaProblem {
                key: "kafka.brokers",
                message: format!("`{}` is not a list of host:port", self.brokers),
                hint: "write it like \"kafka1:9092,kafka2:9092\"",
            });
        }
        for (key, topic) in
            [("kafka.events_topic", &self.events_topic), ("kafka.detections_topic", &self.detections_topic)]
        {
            if topic.is_empty() || !topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                problems.push(KafkaProblem {
                    key,
                    message: format!("`{topic}` is not a valid topic name"),
                    hint: "use letters, digits, '.', '_' and '-'",
                });
            }
        }
        if self.group_prefix.is_empty() {
            problems.push(KafkaProblem {
                key: "kafka.group_prefix",
                message: "the group prefix is empty".into(),
                hint: "remove the key to use \"vigie\"",
            });
        }
        if !["lz4", "gzip", "snappy", "none"].contains(&self.compression.as_str()) {
            problems.push(KafkaProblem {
                key: "kafka.compression",
                message: format!("`{}` is not a supported compression", self.compression),
                hint: "use \"lz4\", \"gzip\", \"snappy\" or \"none\"",
            });
        }
        if self.batch_max == 0 {
            problems.push(KafkaProblem {
                key: "kafka.batch_max",
                message: "must be at least 1".into(),
                hint: "remove the key to use 512",
            });
        }
        for key in self.librdkafka.keys() {
            if RESERVED.contains(&key.as_str()) {
                problems.push(KafkaProblem {
                    key: "kafka.librdkafka",
                    message: format!("`{key}` is set by vigie itself"),
                    hint: "remove it: idempotence, acks=all and manual commits are what make delivery exact",
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(KafkaSettings {
            brokers: self.brokers.clone(),
            events_topic: self.events_topic.clone(),
            detections_topic: self.detections_topic.clone(),
            group_prefix: self.group_prefix.clone(),
            compression: self.compression.clone(),
            linger,
            encoding: self.encoding,
            batch_max: self.batch_max,
            replay_window,
            lag_interval,
            librdkafka: self.librdkafka.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = KafkaSettings::new("127.0.0.1:9092");
        assert_eq!(
            (s.linger, s.replay_window, s.batch_max),
            (Duration::from_millis(20), Duration::from_secs(3600), 512)
        );
        assert_eq!(s.group("archiver"), "vigie.archiver");
    }

    #[test]
    fn every_problem_is_reported() {
        let mut raw = KafkaConfig::with_brokers("kafka1");
        raw.linger = "soon".into();
        raw.compression = "brotli".into();
        raw.events_topic = "événements".into();
        raw.librdkafka.insert("enable.auto.commit".into(), "true".into());
        let keys: Vec<_> = raw.validate().unwrap_err().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["kafka.linger", "kafka.brokers", "kafka.events_topic", "kafka.compression", "kafka.librdkafka"]
        );
    }
}
