//! Pure consumer-lag arithmetic.
//!
//! Lag in messages is `high watermark - committed offset`. Lag in seconds is the age of the
//! oldest record the group has not committed yet (the record at the committed offset):
//! - exact for firedrill's own orders: the generator records every ack's (partition, offset,
//!   ack time) in an [`AckIndex`], so the age is read, not guessed;
//! - interpolated otherwise (records firedrill did not produce, or acks already pruned):
//!   [`WatermarkHistory`] remembers when the high watermark passed each offset, the way
//!   kafka-lag-exporter estimates it.
//!
//! No I/O, no clocks: the monitor passes `now_ms` in.

use std::collections::{HashMap, VecDeque};

/// Partition -> ordered (offset, ack time ms) of firedrill's acked orders.
#[derive(Debug, Default)]
pub struct AckIndex {
    partitions: HashMap<i32, VecDeque<(i64, i64)>>,
    capacity: usize,
}

impl AckIndex {
    /// An index holding at most `capacity` acks per partition (older ones are dropped and
    /// their lag falls back to interpolation), so a group that never commits cannot grow it
    /// without bound.
    pub fn with_capacity(capacity: usize) -> AckIndex {
        AckIndex {
            partitions: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records that the record at `offset` of `partition` was acked at `ack_ms`.
    pub fn record(&mut self, partition: i32, offset: i64, ack_ms: i64) {
        let acks = self.partitions.entry(partition).or_default();
        match acks.back() {
            Some(&(last, _)) if offset <= last => {
                // Out of order (several producers' batches interleaving): keep it sorted.
                let at = acks.partition_point(|&(o, _)| o < offset);
                if acks.get(at).map(|&(o, _)| o) != Some(offset) {
                    acks.insert(at, (offset, ack_ms));
                }
            }
            _ => acks.push_back((offset, ack_ms)),
        }
        if acks.len() > self.capacity {
            acks.pop_front();
        }
    }

    /// The ack time of the record at `offset`, if firedrill produced it and still knows it.
    pub fn ack_time(&self, partition: i32, offset: i64) -> Option<i64> {
        let acks = self.partitions.get(&partition)?;
        let at = acks.partition_point(|&(o, _)| o < offset);
        match acks.get(at) {
            Some(&(o, t)) if o == offset => Some(t),
            _ => None,
        }
    }

    /// Forgets acks below `offset`: every watched group has committed past them.
    pub fn prune_below(&mut self, partition: i32, offset: i64) {
        if let Some(acks) = self.partitions.get_mut(&partition) {
            let keep_from = acks.partition_point(|&(o, _)| o < offset);
            acks.drain(..keep_from);
        }
    }

    /// Acks held, over all partitions.
    pub fn len(&self) -> usize {
        self.partitions.values().map(VecDeque::len).sum()
    }

    /// Whether no ack is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Partition -> (high watermark, first time it was seen) samples, oldest first.
#[derive(Debug, Default)]
pub struct WatermarkHistory {
    partitions: HashMap<i32, VecDeque<(i64, i64)>>,
    capacity: usize,
}

impl WatermarkHistory {
    /// A history of at most `capacity` samples per partition.
    pub fn with_capacity(capacity: usize) -> WatermarkHistory {
        WatermarkHistory {
            partitions: HashMap::new(),
            capacity: capacity.max(2),
        }
    }

    /// Records the high watermark of `partition` observed at `at_ms`. Only changes are kept:
    /// a sample says "by `at_ms` the watermark had reached `high`".
    pub fn record(&mut self, partition: i32, high: i64, at_ms: i64) {
        let samples = self.partitions.entry(partition).or_default();
        if samples.back().is_some_and(|&(h, _)| h >= high) {
            return;
        }
        samples.push_back((high, at_ms));
        if samples.len() > self.capacity {
            samples.pop_front();
        }
    }

    /// When the record at `offset` was (about) produced: linear interpolation between the
    /// two samples around it. Older than the history: the oldest sample's time (a lower
    /// bound on the age). `None` when the watermark has not passed `offset` yet.
    pub fn estimate_time(&self, partition: i32, offset: i64) -> Option<i64> {
        let samples = self.partitions.get(&partition)?;
        let after = samples.partition_point(|&(h, _)| h <= offset);
        let &(h1, t1) = samples.get(after)?;
        if after == 0 {
            return Some(t1);
        }
        let (h0, t0) = samples[after - 1];
        // The record at `offset` arrived while the watermark went from h0 to h1.
        let fraction = (offset - h0 + 1) as f64 / (h1 - h0) as f64;
        Some(t0 + ((t1 - t0) as f64 * fraction).round() as i64)
    }
}

/// What the monitor observed for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    /// Partition id.
    pub partition: i32,
    /// Low watermark (first available offset).
    pub low: i64,
    /// High watermark (next offset to be written).
    pub high: i64,
    /// The group's committed offset (next offset it will read), if it has one.
    pub committed: Option<i64>,
}

impl Offsets {
    /// The offset the group reads next, within the partition's range: the oldest record it
    /// has not committed, whose age is the lag in seconds. A group with no committed offset
    /// starts from the low watermark (the job reads from `earliest` when it has none).
    pub fn next_read(&self) -> i64 {
        self.committed
            .unwrap_or(self.low)
            .clamp(self.low, self.high.max(self.low))
    }
}

/// Lag of one group on one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionLag {
    /// Partition id.
    pub partition: i32,
    /// Records not yet committed.
    pub messages: i64,
    /// Age of the oldest uncommitted record; `None` if nothing tells when it was produced.
    pub seconds: Option<f64>,
    /// Whether `seconds` came from firedrill's own ack (true) or interpolation (false).
    pub exact: bool,
}

/// Computes a group's lag on one partition from [`Offsets::next_read`]. `ack_ms` is the ack
/// time of the record at that offset if firedrill produced it and still knows it
/// ([`AckIndex::ack_time`]): the caller looks it up, so that the index (shared with the
/// producer's delivery thread) is locked for the look-ups only, not for this arithmetic.
pub fn partition_lag(
    offsets: Offsets,
    now_ms: i64,
    ack_ms: Option<i64>,
    history: &WatermarkHistory,
) -> PartitionLag {
    let from = offsets.next_read();
    let messages = (offsets.high - from).max(0);
    let (seconds, exact) = if messages == 0 {
        (Some(0.0), true)
    } else if let Some(t) = ack_ms {
        (Some(age_seconds(now_ms, t)), true)
    } else {
        let estimate = history.estimate_time(offsets.partition, from);
        (estimate.map(|t| age_seconds(now_ms, t)), false)
    };
    PartitionLag {
        partition: offsets.partition,
        messages,
        seconds,
        exact,
    }
}

fn age_seconds(now_ms: i64, then_ms: i64) -> f64 {
    (now_ms - then_ms).max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(committed: Option<i64>, low: i64, high: i64) -> Offsets {
        Offsets {
            partition: 0,
            low,
            high,
            committed,
        }
    }

    #[test]
    fn caught_up_is_zero_in_messages_and_seconds() {
        let lag = partition_lag(
            offsets(Some(10), 0, 10),
            5_000,
            None,
            &WatermarkHistory::default(),
        );
        assert_eq!(lag.messages, 0);
        assert_eq!(lag.seconds, Some(0.0));
    }

    #[test]
    fn exact_lag_is_the_age_of_the_oldest_uncommitted_ack() {
        let mut acks = AckIndex::with_capacity(100);
        for offset in 0..10 {
            acks.record(0, offset, 1_000 + offset * 100);
        }
        let at = offsets(Some(4), 0, 10);
        assert_eq!(at.next_read(), 4);
        let lag = partition_lag(
            at,
            3_000,
            acks.ack_time(0, at.next_read()),
            &WatermarkHistory::default(),
        );
        assert_eq!(lag.messages, 6);
        // Offset 4 was acked at 1_400: 1.6 s ago.
        assert_eq!(lag.seconds, Some(1.6));
        assert!(lag.exact);
    }

    #[test]
    fn unknown_records_fall_back_to_interpolation() {
        let mut history = WatermarkHistory::with_capacity(10);
        history.record(0, 0, 0);
        history.record(0, 100, 10_000);
        history.record(0, 100, 11_000); // unchanged: ignored
        history.record(0, 200, 20_000);
        let lag = partition_lag(offsets(Some(149), 0, 200), 30_000, None, &history);
        assert_eq!(lag.messages, 51);
        assert!(!lag.exact);
        // Offset 149 arrived half-way between 10 s and 20 s.
        assert_eq!(lag.seconds, Some(15.0));
    }

    #[test]
    fn records_older_than_the_history_get_a_lower_bound() {
        let mut history = WatermarkHistory::with_capacity(10);
        history.record(0, 500, 10_000);
        assert_eq!(history.estimate_time(0, 3), Some(10_000));
        assert_eq!(history.estimate_time(0, 500), None);
    }

    #[test]
    fn no_committed_offset_means_lag_from_the_low_watermark() {
        let at = offsets(None, 5, 15);
        assert_eq!(at.next_read(), 5);
        let lag = partition_lag(at, 0, None, &WatermarkHistory::default());
        assert_eq!(lag.messages, 10);
        assert_eq!(lag.seconds, None);
    }

    #[test]
    fn ack_index_prunes_caps_and_sorts() {
        let mut acks = AckIndex::with_capacity(3);
        acks.record(1, 5, 50);
        acks.record(1, 3, 30);
        acks.record(1, 3, 31); // duplicate offset: first wins
        acks.record(1, 7, 70);
        assert_eq!(acks.ack_time(1, 3), Some(30));
        acks.record(1, 9, 90); // over capacity: oldest (3) dropped
        assert_eq!(acks.ack_time(1, 3), None);
        assert_eq!(acks.len(), 3);
        acks.prune_below(1, 7);
        assert_eq!(acks.len(), 2);
        assert_eq!(acks.ack_time(1, 7), Some(70));
        assert_eq!(acks.ack_time(2, 7), None);
    }
}
