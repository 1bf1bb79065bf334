//! The lag monitor: polls the orders topic's watermarks and each watched group's committed
//! offsets in the background, and exports lag in messages and seconds.
//!
//! A scrape never waits on Kafka: this task sets the gauges, `/metrics` reads them. The
//! per-partition series (5 families x groups x partitions: 825 series with 2 groups on 100
//! partitions) live in a registry of the monitor's own and are rendered into the exposition
//! once per poll, so a scrape does not gather and encode them again (see
//! `metrics::Rendered`). When the broker cannot be reached the lag is unknown, so the lag
//! series are removed (absent, never a misleading 0) and `firedrill_upstream_up{upstream=
//! "kafka"}` is 0. The arithmetic is in `kafka::lag`; this module only fetches and exports.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    Offset, TopicPartitionList,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    lag::{partition_lag, AckIndex, Offsets, PartitionLag, WatermarkHistory},
    Config, Quiet,
};
use crate::{
    clock::now_ms,
    metrics::{register, Rendered, Upstream, Upstreams},
};

/// Samples of watermark history kept per partition (at 2 s polls: 30 minutes).
const HISTORY_SAMPLES: usize = 900;

/// The lag of every watched group at one poll, for the drill runner.
#[derive(Debug, Clone, Default)]
pub struct LagSnapshot {
    /// When it was taken, unix ms.
    pub at_ms: i64,
    /// Group -> per-partition lag.
    pub groups: Vec<(String, Vec<PartitionLag>)>,
}

impl LagSnapshot {
    /// Total lag in messages of `group`, if it was measured.
    pub fn messages(&self, group: &str) -> Option<i64> {
        self.group(group)
            .map(|p| p.iter().map(|l| l.messages).sum())
    }

    /// Largest lag in seconds over the partitions of `group`, if known.
    pub fn max_seconds(&self, group: &str) -> Option<f64> {
        self.group(group)?
            .iter()
            .map(|l| l.seconds)
            .try_fold(0.0f64, |max, s| s.map(|s| max.max(s)))
    }

    fn group(&self, group: &str) -> Option<&[PartitionLag]> {
        self.groups
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, p)| p.as_slice())
    }
}

/// Lag monitor error; `kind()` is a bounded label value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client could not be created (bad librdkafka property).
    #[error("kafka client: {0}")]
    Client(#[source] KafkaError),
    /// A poll failed.
    #[error("kafka poll: {0}")]
    Poll(#[source] KafkaError),
    /// The topic has no partitions (does not exist yet).
    #[error("topic {0} has no partitions")]
    NoTopic(String),
}

struct Metrics {
    /// The per-partition families, rendered into `rendered` after each poll.
    series: Registry,
    rendered: Rendered,
    high: IntGaugeVec,
    committed: IntGaugeVec,
    lag_messages: IntGaugeVec,
    lag_seconds: GaugeVec,
    lag_exact: IntGaugeVec,
    acks_tracked: prometheus::IntGauge,
}

impl Metrics {
    fn register(registry: &Registry, rendered: Rendered) -> Self {
        let series = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            register(
                &series,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let group_labels = &["group", "topic", "partition"];
        Metrics {
            high: gauge(
                "firedrill_kafka_high_watermark",
                "High watermark (next offset to be written) of a partition.",
                &["topic", "partition"],
            ),
            committed: gauge(
                "firedrill_kafka_committed_offset",
                "Offset committed by a consumer group on a partition.",
                group_labels,
            ),
            lag_messages: gauge(
                "firedrill_kafka_consumer_lag_messages",
                "Records of a partition not yet committed by a consumer group.",
                group_labels,
            ),
            lag_seconds: register(
                &series,
                GaugeVec::new(
                    Opts::new(
                        "firedrill_kafka_consumer_lag_seconds",
                        "Age of the oldest record a consumer group has not committed.",
                    ),
                    group_labels,
                )
                .expect("valid metric"),
            ),
            lag_exact: gauge(
                "firedrill_kafka_consumer_lag_exact",
                "1 if the lag in seconds comes from firedrill's own ack times, 0 if interpolated.",
                group_labels,
            ),
            acks_tracked: register(
                registry,
                prometheus::IntGauge::new(
                    "firedrill_kafka_acks_tracked",
                    "Acked offsets held for exact time lag (pruned as groups commit).",
                )
                .expect("valid metric"),
            ),
            series,
            rendered,
        }
    }

    /// Removes every series whose value is unknown while Kafka cannot be reached.
    fn clear(&self) {
        self.high.reset();
        self.committed.reset();
        self.lag_messages.reset();
        self.lag_seconds.reset();
        self.lag_exact.reset();
        self.render();
    }

    /// Publishes the per-partition series as they are now.
    fn render(&self) {
        self.rendered.render(&self.series);
    }
}

/// Raw offsets of one poll.
struct Fetched {
    watermarks: Vec<(i32, i64, i64)>,
    committed: Vec<(String, Vec<Option<i64>>)>,
}

struct Clients {
    metadata: BaseConsumer<Quiet>,
    groups: Vec<(String, BaseConsumer<Quiet>)>,
}

/// Polls and exports consumer lag; see the module docs.
pub struct LagMonitor {
    config: Config,
    clients: Arc<Clients>,
    acks: Arc<Mutex<AckIndex>>,
    history: WatermarkHistory,
    metrics: Metrics,
    upstreams: Upstreams,
    snapshot: watch::Sender<LagSnapshot>,
}

impl LagMonitor {
    /// Creates the clients (no connection is made yet). `acks` is shared with the generator,
    /// which records every acked order in it; the per-partition series go to `rendered`.
    pub fn build(
        config: &Config,
        acks: Arc<Mutex<AckIndex>>,
        registry: &Registry,
        rendered: Rendered,
        upstreams: Upstreams,
    ) -> Result<LagMonitor, Error> {
        let consumer = |group: &str| -> Result<BaseConsumer<Quiet>, Error> {
            config
                .client_config()
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .create_with_context(Quiet)
                .map_err(Error::Client)
        };
        let clients = Clients {
            metadata: consumer("firedrill-lag-monitor")?,
            groups: config
                .consumer_groups
                .iter()
                .map(|g| Ok((g.clone(), consumer(g)?)))
                .collect::<Result<_, Error>>()?,
        };
        Ok(LagMonitor {
            config: config.clone(),
            clients: Arc::new(clients),
            acks,
            history: WatermarkHistory::with_capacity(HISTORY_SAMPLES),
            metrics: Metrics::register(registry, rendered),
            upstreams,
            snapshot: watch::Sender::new(LagSnapshot::default()),
        })
    }

    /// The latest lag of every group, updated after each successful poll.
    pub fn subscribe(&self) -> watch::Receiver<LagSnapshot> {
        self.snapshot.subscribe()
    }

    /// Polls every `poll_interval` until cancelled.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => self.poll_once().await,
            }
        }
    }

    async fn poll_once(&mut self) {
        let clients = self.clients.clone();
        let topic = self.config.orders_topic.as_str().to_string();
        let timeout = self.config.request_timeout;
        let fetched = tokio::task::spawn_blocking(move || fetch(&clients, &topic, timeout))
            .await
            .expect("lag fetch does not panic");
        match fetched {
            Ok(fetched) => {
                if self.upstreams.observe(Upstream::Kafka, true) {
                    info!("kafka answers");
                }
                self.export(fetched);
            }
            Err(error) => {
                self.metrics.clear();
                // Unknown for the drills too: an empty snapshot, not the last lag seen.
                self.snapshot.send_replace(LagSnapshot {
                    at_ms: now_ms(),
                    groups: Vec::new(),
                });
                if self.upstreams.observe(Upstream::Kafka, false) {
                    warn!(%error, "kafka lag poll failed; lag unknown until it answers");
                } else {
                    debug!(%error, "kafka lag poll failed");
                }
            }
        }
    }

    fn export(&mut self, fetched: Fetched) {
        let now = now_ms();
        let topic = self.config.orders_topic.as_str();
        for &(partition, _, high) in &fetched.watermarks {
            self.history.record(partition, high, now);
            self.metrics
                .high
                .with_label_values(&[topic, &partition.to_string()])
                .set(high);
        }
        let mut snapshot = LagSnapshot {
            at_ms: now,
            groups: Vec::new(),
        };
        // The ack index is shared with the producer's delivery thread, which locks it once
        // per ack: hold it only for the look-ups, the pruning and the count (binary searches
        // and a drain of plain pairs), never for the arithmetic and the metric updates below.
        let (ack_times, tracked) = {
            let mut acks = self.acks.lock().expect("ack index lock is never poisoned");
            let ack_times: Vec<Vec<Option<i64>>> = group_offsets(&fetched)
                .map(|offsets| {
                    offsets
                        .map(|o| acks.ack_time(o.partition, o.next_read()))
                        .collect()
                })
                .collect();
            // Acks below every group's committed offset will never be asked for again.
            for (partition, committed) in committed_by_all(&fetched) {
                acks.prune_below(partition, committed);
            }
            (ack_times, acks.len())
        };
        self.metrics.acks_tracked.set(tracked as i64);
        for (((group, _), offsets), ack_times) in fetched
            .committed
            .iter()
            .zip(group_offsets(&fetched))
            .zip(ack_times)
        {
            let mut lags = Vec::with_capacity(ack_times.len());
            for (offsets, ack_ms) in offsets.zip(ack_times) {
                let lag = partition_lag(offsets, now, ack_ms, &self.history);
                let labels = [group.as_str(), topic, &offsets.partition.to_string()];
                match offsets.committed {
                    Some(c) => self.metrics.committed.with_label_values(&labels).set(c),
                    None => {
                        let _ = self.metrics.committed.remove_label_values(&labels);
                    }
                }
                self.metrics
                    .lag_messages
                    .with_label_values(&labels)
                    .set(lag.messages);
                match lag.seconds {
                    Some(s) => self.metrics.lag_seconds.with_label_values(&labels).set(s),
                    None => {
                        let _ = self.metrics.lag_seconds.remove_label_values(&labels);
                    }
                }
                self.metrics
                    .lag_exact
                    .with_label_values(&labels)
                    .set(i64::from(lag.exact));
                lags.push(lag);
            }
            snapshot.groups.push((group.clone(), lags));
        }
        self.metrics.render();
        debug!(groups = snapshot.groups.len(), "kafka lag polled");
        self.snapshot.send_replace(snapshot);
    }
}

/// Each group's [`Offsets`] on every partition, in the order of `fetched.committed`.
fn group_offsets(fetched: &Fetched) -> impl Iterator<Item = impl Iterator<Item = Offsets> + '_> {
    fetched.committed.iter().map(|(_, committed)| {
        fetched
            .watermarks
            .iter()
            .zip(committed)
            .map(|(&(partition, low, high), &committed)| Offsets {
                partition,
                low,
                high,
                committed,
            })
    })
}

/// Per partition, the lowest offset every watched group has committed; none when a group
/// has not committed on it (or no group is watched).
fn committed_by_all(fetched: &Fetched) -> Vec<(i32, i64)> {
    if fetched.committed.is_empty() {
        return Vec::new();
    }
    fetched
        .watermarks
        .iter()
        .enumerate()
        .filter_map(|(i, &(partition, _, _))| {
            let min = fetched
                .committed
                .iter()
                .map(|(_, c)| c[i])
                .try_fold(i64::MAX, |min, c| c.map(|c| min.min(c)))?;
            Some((partition, min))
        })
        .collect()
}

/// Blocking: metadata, watermarks, committed offsets.
fn fetch(clients: &Clients, topic: &str, timeout: Duration) -> Result<Fetched, Error> {
    let metadata = clients
        .metadata
        .fetch_metadata(Some(topic), timeout)
        .map_err(Error::Poll)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::NoTopic(topic.to_string()));
    }
    let mut watermarks = Vec::with_capacity(partitions.len());
    for &partition in &partitions {
        let (low, high) = clients
            .metadata
            .fetch_watermarks(topic, partition, timeout)
            .map_err(Error::Poll)?;
        watermarks.push((partition, low, high));
    }
    let mut tpl = TopicPartitionList::new();
    for &partition in &partitions {
        tpl.add_partition(topic, partition);
    }
    let mut committed = Vec::with_capacity(clients.groups.len());
    for (group, consumer) in &clients.groups {
        let offsets = consumer
            .committed_offsets(tpl.clone(), timeout)
            .map_err(Error::Poll)?;
        let per_partition = partitions
            .iter()
            .map(
                |&p| match offsets.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                },
            )
            .collect();
        committed.push((group.clone(), per_partition));
    }
    Ok(Fetched {
        watermarks,
        committed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched() -> Fetched {
        Fetched {
            watermarks: vec![(0, 0, 10), (1, 5, 20)],
            committed: vec![
                ("g".into(), vec![Some(4), None]),
                ("h".into(), vec![Some(7), Some(12)]),
            ],
        }
    }

    #[test]
    fn offsets_per_group_and_partition() {
        let fetched = fetched();
        let next: Vec<Vec<(i32, i64)>> = group_offsets(&fetched)
            .map(|o| o.map(|o| (o.partition, o.next_read())).collect())
            .collect();
        // g has not committed on partition 1: it reads from the low watermark.
        assert_eq!(next, [vec![(0, 4), (1, 5)], vec![(0, 7), (1, 12)]]);
    }

    #[test]
    fn acks_are_pruned_below_what_every_group_committed() {
        // Partition 1: g has no committed offset, so nothing is known to be read by all.
        assert_eq!(committed_by_all(&fetched()), [(0, 4)]);
        let no_group = Fetched {
            watermarks: vec![(0, 0, 10)],
            committed: Vec::new(),
        };
        assert_eq!(committed_by_all(&no_group), []);
    }

    #[test]
    fn snapshot_totals_and_unknown_seconds() {
        let lag = |partition, messages, seconds| PartitionLag {
            partition,
            messages,
            seconds,
            exact: true,
        };
        let snapshot = LagSnapshot {
            at_ms: 0,
            groups: vec![
                ("g".into(), vec![lag(0, 3, Some(1.5)), lag(1, 4, Some(2.5))]),
                ("h".into(), vec![lag(0, 1, None)]),
            ],
        };
        assert_eq!(snapshot.messages("g"), Some(7));
        assert_eq!(snapshot.max_seconds("g"), Some(2.5));
        assert_eq!(snapshot.max_seconds("h"), None);
        assert_eq!(snapshot.messages("nope"), None);
    }
}
