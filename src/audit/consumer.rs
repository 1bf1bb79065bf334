//! Reads the output topic (`processed_orders`) with `isolation.level=read_committed` and
//! hands every record, readable or not, to the audit actor.
//!
//! The consumer assigns itself every partition at the high watermark it finds at start, so
//! it sees exactly what the pipeline writes from then on; the generator waits for that
//! ([`Consumer::ready`]) before producing its first order, so no output of this run can be
//! written before the audit is positioned. No consumer group is joined and nothing is
//! committed: each run audits from its own start.
//!
//! The audit's channel for records is bounded: the consumer awaits room, so a backlog in the
//! output topic waits in the broker, not in memory. What a record holds in that channel is
//! bounded too: an order id longer than any firedrill writes is dropped (the record stays,
//! counted as unexpected: it cannot be this run's order).

use std::time::Duration;

use rdkafka::{
    consumer::{Consumer as _, StreamConsumer},
    error::KafkaError,
    Message, Offset, TopicPartitionList,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Event;
use crate::{clock::now_ms, kafka, order::ProcessedOrder};

const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// Longer than any order id firedrill writes (a run id of under 20 characters, `-`, at most
/// 20 digits).
const MAX_ORDER_ID: usize = 64;

/// Reads `processed_topic`; see the module docs.
pub struct Consumer {
    consumer: StreamConsumer<kafka::Quiet>,
    topic: String,
    timeout: Duration,
    events: mpsc::Sender<Event>,
    ready: watch::Sender<bool>,
}

impl Consumer {
    /// Creates the consumer (no connection yet); `events` is the audit's channel for records
    /// ([`Inbox::records`](super::Inbox)).
    pub fn build(
        config: &kafka::Config,
        run_id: &str,
        events: mpsc::Sender<Event>,
    ) -> Result<Consumer, KafkaError> {
        let consumer = config
            .client_config()
            .set("group.id", format!("firedrill-audit-{run_id}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set(
                "fetch.wait.max.ms",
                config.fetch_wait.as_millis().max(1).to_string(),
            )
            .create_with_context(kafka::Quiet)?;
        Ok(Consumer {
            consumer,
            topic: config.processed_topic.as_str().to_string(),
            timeout: config.request_timeout,
            events,
            ready: watch::Sender::new(false),
        })
    }

    /// Becomes true once the consumer is positioned at the end of the topic.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Positions itself, then forwards records until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = INITIAL_BACKOFF;
        loop {
            // Metadata and watermark requests block; keep them off the async workers.
            match tokio::task::block_in_place(|| self.assign_at_end()) {
                Ok(partitions) => {
                    info!(topic = %self.topic, partitions, "audit consumer positioned");
                    break;
                }
                Err(error) => {
                    if backoff == INITIAL_BACKOFF {
                        warn!(%error, topic = %self.topic, "audit consumer cannot position yet; retrying");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.ready.send_replace(true);
        loop {
            let event = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                message = self.consumer.recv() => match message {
                    Ok(message) => record_event(message.payload(), now_ms()),
                    // librdkafka reconnects by itself; errors here are informational.
                    Err(error) => {
                        kafka::report_error(&error, "audit consumer");
                        continue;
                    }
                },
            };
            // Backpressure: the next record is fetched once the audit has room for this one.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                sent = self.events.send(event) => if sent.is_err() { return },
            }
        }
    }

    fn assign_at_end(&self) -> Result<usize, KafkaError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), self.timeout)?;
        let mut tpl = TopicPartitionList::new();
        for topic in metadata.topics().iter().filter(|t| t.name() == self.topic) {
            if let Some(error) = topic.error() {
                return Err(KafkaError::MetadataFetch(error.into()));
            }
            for partition in topic.partitions() {
                let (_, high) =
                    self.consumer
                        .fetch_watermarks(&self.topic, partition.id(), self.timeout)?;
                tpl.add_partition_offset(&self.topic, partition.id(), Offset::Offset(high))?;
            }
        }
        if tpl.count() == 0 {
            return Err(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        self.consumer.assign(&tpl)?;
        Ok(tpl.count())
    }
}

/// The audit's event for one record value read at `received_ms`.
fn record_event(payload: Option<&[u8]>, received_ms: i64) -> Event {
    let record = ProcessedOrder::parse(payload).map(|mut record| {
        if record.order_id.len() > MAX_ORDER_ID {
            record.order_id = String::new();
        }
        record
    });
    Event::Record {
        record,
        received_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::OrderId;

    fn record(order_id: &str) -> String {
        format!(
            r#"{{"order_id":"{order_id}","quantity":1,"price":1.5,"order_value":1.5,"order_category":"basic","event_time":"2025-11-25 04:30:10.123","processed_at":"2025-11-25 04:30:10.456"}}"#
        )
    }

    fn order_id(event: Event) -> String {
        match event {
            Event::Record {
                record: Ok(record), ..
            } => record.order_id,
            other => panic!("not a readable record: {other:?}"),
        }
    }

    #[test]
    fn an_oversized_order_id_is_dropped_and_the_record_kept() {
        let longest = format!("r{:x}-{}", u64::MAX >> 4, u64::MAX);
        assert!(longest.len() <= MAX_ORDER_ID);
        assert!(OrderId::parse(&longest).is_some());
        let kept = order_id(record_event(Some(record(&longest).as_bytes()), 1));
        assert_eq!(kept, longest);

        let huge = "x".repeat(1 << 20);
        let dropped = order_id(record_event(Some(record(&huge).as_bytes()), 1));
        assert_eq!(dropped, "");
        assert_eq!(OrderId::parse(&dropped), None);
    }
}
