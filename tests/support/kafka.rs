//! Plain rdkafka clients for tests: an independent producer and readers of the output
//! topics, so that what the tests check does not go through firedrill's own code.

use std::time::Duration;

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message, Offset, TopicPartitionList,
};

use super::BROKER;

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("test producer")
}

/// Produces one record and waits for its ack.
pub async fn send(producer: &FutureProducer, topic: &str, key: &str, value: &str) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("test record acked");
}

/// A consumer of every partition of `topic`, starting at its current end.
pub fn reader_at_end(topic: &str) -> BaseConsumer {
    reader(topic, |_, high| high)
}

/// A consumer that commits nothing and reads committed records only; assign it partitions.
fn consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", "firedrill-tests")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("test consumer")
}

/// A consumer of every partition of `topic`, starting at offsets chosen from (low, high).
pub fn reader(topic: &str, start: impl Fn(i64, i64) -> i64) -> BaseConsumer {
    let consumer = consumer();
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), timeout)
            .expect("watermarks");
        tpl.add_partition_offset(topic, partition.id(), Offset::Offset(start(low, high)))
            .unwrap();
    }
    assert!(tpl.count() > 0, "topic {topic} has no partitions");
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Each partition of `topic` with its high watermark (the next offset to be written), as
/// the broker says now.
pub fn high_watermarks(topic: &str) -> Vec<(i32, i64)> {
    let consumer = reader_at_end(topic);
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .expect("watermarks");
            (p.id(), high)
        })
        .collect()
}

/// Reads what is available within `wait`, as JSON values (records that are not JSON are
/// returned as `Value::Null`).
pub fn poll_json(consumer: &BaseConsumer, wait: Duration) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let until = std::time::Instant::now() + wait;
    while let Some(remaining) = until.checked_duration_since(std::time::Instant::now()) {
        match consumer.poll(remaining.min(Duration::from_millis(100))) {
            Some(Ok(message)) => out.push(
                message
                    .payload()
                    .and_then(|p| serde_json::from_slice(p).ok())
                    .unwrap_or(serde_json::Value::Null),
            ),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None if !out.is_empty() => break,
            None => {}
        }
    }
    out
}

/// Counts the records of `reader` per order id starting with `prefix`, until `enough` says
/// so or `deadline` passes (independently of firedrill's audit).
pub fn count_ids(
    reader: &BaseConsumer,
    prefix: &str,
    deadline: Duration,
    enough: impl Fn(&std::collections::HashMap<String, u64>) -> bool,
) -> std::collections::HashMap<String, u64> {
    let mut counts = std::collections::HashMap::new();
    let until = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < until && !enough(&counts) {
        for record in poll_json(reader, Duration::from_millis(500)) {
            if let Some(id) = record["order_id"]
                .as_str()
                .filter(|id| id.starts_with(prefix))
            {
                *counts.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

/// Records beyond the first per id.
pub fn duplicates(counts: &std::collections::HashMap<String, u64>) -> u64 {
    counts.values().map(|n| n - 1).sum()
}

/// One output record's order id, with the engine's `processed_at` and the order's
/// `event_time`, unix ms.
#[derive(Debug, Clone)]
pub struct OutputTime {
    pub order_id: String,
    pub processed_at_ms: i64,
    pub event_time_ms: i64,
}

/// A reader of every partition of a topic from its end now, that knows where it stands.
pub struct Tail {
    pub topic: String,
    pub consumer: BaseConsumer,
    /// The next offset to read, per partition.
    pub next: std::collections::HashMap<i32, i64>,
}

/// A [`Tail`] of `topic` from the high watermarks now.
pub fn tail(topic: &str) -> Tail {
    let next = high_watermarks(topic).into_iter().collect();
    let starts: &std::collections::HashMap<i32, i64> = &next;
    let consumer = consumer();
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in starts {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    Tail {
        topic: topic.to_string(),
        consumer,
        next,
    }
}

/// Every record of `tail` up to the high watermarks the broker has now, as
/// [`OutputTime`]s (records without both timestamps are skipped), read independently of
/// firedrill: its own consumer, its own parsing of Flink's "yyyy-MM-dd HH:mm:ss.SSS" (UTC).
pub fn output_times(tail: &mut Tail, deadline: Duration) -> Vec<OutputTime> {
    let topic = tail.topic.clone();
    let topic = topic.as_str();
    let reader = &tail.consumer;
    let next = &mut tail.next;
    let ends: std::collections::HashMap<i32, i64> = high_watermarks(topic).into_iter().collect();
    let parse = |v: &serde_json::Value| {
        chrono::NaiveDateTime::parse_from_str(v.as_str()?, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc().timestamp_millis())
    };
    let mut out = Vec::new();
    let until = std::time::Instant::now() + deadline;
    while ends
        .iter()
        .any(|(p, end)| next.get(p).copied().unwrap_or(0) < *end)
    {
        assert!(
            std::time::Instant::now() < until,
            "{topic}: not read up to {ends:?} within {deadline:?} (at {next:?})"
        );
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                next.insert(message.partition(), message.offset() + 1);
                let value: Option<serde_json::Value> = message
                    .payload()
                    .and_then(|p| serde_json::from_slice(p).ok());
                if let Some(v) = value {
                    if let (Some(p), Some(e)) = (parse(&v["processed_at"]), parse(&v["event_time"]))
                    {
                        out.push(OutputTime {
                            order_id: v["order_id"].as_str().unwrap_or_default().to_string(),
                            processed_at_ms: p,
                            event_time_ms: e,
                        });
                    }
                }
            }
            // Transport errors from a broker that was stopped by a drill (queued while it
            // was down); the reader reconnects by itself.
            Some(Err(_)) => {}
            None => {
                // A partition whose reader position is already at its end has nothing new.
                let Ok(positions) = reader.position() else {
                    continue;
                };
                for (p, end) in &ends {
                    let at = positions.find_partition(topic, *p).map(|e| e.offset());
                    if let Some(Offset::Offset(pos)) = at {
                        if pos >= *end {
                            next.insert(*p, pos);
                        }
                    }
                }
            }
        }
    }
    out
}
