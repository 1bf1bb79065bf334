//! Kafka: cluster settings shared by every client firedrill creates, topic names, and the lag
//! monitor.
//!
//! - `lag`: pure lag arithmetic (offset lag, exact time lag from firedrill's own acks,
//!   interpolated time lag as the fallback);
//! - `monitor`: the I/O shell that polls watermarks and committed offsets and exports lag.
//!
//! The producer lives in `generator`, the output-topic consumer in `audit::consumer`.

pub mod lag;
pub mod monitor;

use std::{collections::BTreeMap, fmt, time::Duration};

use rdkafka::{
    client::ClientContext,
    config::RDKafkaLogLevel,
    consumer::ConsumerContext,
    error::{KafkaError, RDKafkaErrorCode},
    ClientConfig,
};
use serde::{Deserialize, Deserializer};
use tracing::{debug, warn};

/// `[kafka]`: the cluster, the pipeline's topics and the lag monitor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `bootstrap.servers` for every client.
    pub bootstrap_servers: String,
    /// Topic the generator writes orders into and the Flink job reads.
    pub orders_topic: TopicName,
    /// Topic the Flink job writes processed orders into; the audit reads it.
    pub processed_topic: TopicName,
    /// Topic of the 5-second window aggregates.
    pub stats_topic: TopicName,
    /// Consumer groups whose lag on `orders_topic` is exported.
    pub consumer_groups: Vec<String>,
    /// How often the lag monitor polls watermarks and committed offsets.
    #[serde(with = "crate::config_value::duration")]
    pub poll_interval: Duration,
    /// Deadline of one metadata/watermark/offset request.
    #[serde(with = "crate::config_value::duration")]
    pub request_timeout: Duration,
    /// `fetch.wait.max.ms` of the audit's consumer of `processed_topic`: how long the broker
    /// may hold a fetch that finds nothing new. Apache Kafka answers as soon as records
    /// arrive, so there this only paces idle polling; tansu holds every fetch for its full
    /// wait, so on the local stack it adds up to this much to every measured latency.
    #[serde(with = "crate::config_value::duration")]
    pub fetch_wait: Duration,
    /// Extra librdkafka properties for every client (security settings, for example).
    pub properties: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bootstrap_servers: "127.0.0.1:9092".to_string(),
            orders_topic: TopicName("orders".to_string()),
            processed_topic: TopicName("processed_orders".to_string()),
            stats_topic: TopicName("order_stats".to_string()),
            consumer_groups: vec!["flink-order-processor".to_string()],
            poll_interval: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            fetch_wait: Duration::from_millis(20),
            properties: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Client settings every firedrill client starts from.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", "firedrill")
            // Quiet reconnect logs while a drill keeps the broker down on purpose.
            .set("log.connection.close", "false");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// The client context of every consumer firedrill creates: librdkafka's logs and errors go
/// to tracing at levels fit for a tool that takes brokers down on purpose (a broker being
/// unreachable is expected and shows in `firedrill_upstream_up`, not as log errors).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

impl ConsumerContext for Quiet {}

/// librdkafka's log lines: its warnings and errors at debug, the rest dropped.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
        debug!(fac, message, "librdkafka");
    }
}

/// librdkafka's client errors: connectivity at debug, anything else at warn.
pub fn report_error(error: &KafkaError, reason: &str) {
    let expected = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    );
    if expected {
        debug!(%error, reason, "kafka connectivity");
    } else {
        warn!(%error, reason, "kafka client error");
    }
}

/// A valid Kafka topic name: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicName(String);

impl TopicName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<TopicName, String> {
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if name.is_empty() || name.len() > 249 || !valid_chars || name == "." || name == ".." {
            return Err(format!(
                "not a Kafka topic name (1-249 of [a-zA-Z0-9._-]): {name:?}"
            ));
        }
        Ok(TopicName(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TopicName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TopicName::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_validated() {
        assert!(TopicName::new("processed_orders").is_ok());
        for bad in ["", ".", "..", "has space", "a/b", &"x".repeat(250)] {
            assert!(TopicName::new(bad).is_err(), "{bad}");
        }
    }
}
