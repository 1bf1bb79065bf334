//! The pipeline's output on Flink's own clock: for every 100 ms of `processed_at`, how many
//! records came out, the worst pipeline latency (`processed_at - event_time`) among them, and
//! the exact times of its first and last record, so gaps are measured to the millisecond
//! between the records on either side, as anyone reading the topic measures them.
//!
//! Drill figures that say when output stopped, resumed and caught up are read from here
//! rather than from the per-second samples: the samples are paced by the audit's tick and see
//! a record only when the audit's consumer fetches it, while these timestamps are Flink's, so
//! anyone reading `processed_orders` finds the same gaps (the drill tests do).
//!
//! Every parsed record counts, whichever run produced it: records of another generator go
//! through the same job, so they show the same outage. A bounded ring (30 min); pure.

/// Width of one bucket, ms.
pub const BUCKET_MS: i64 = 100;
/// Buckets kept: 30 minutes.
const BUCKETS: usize = 18_000;
/// A `processed_at` further than this ahead of the time the record was read is not Flink's
/// clock (a foreign or corrupt record) and is ignored: it would push the ring past every
/// real record.
const FUTURE_SLACK_MS: i64 = 60_000;

/// One bucket: records whose `processed_at` falls in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    /// Which bucket this slot holds (`processed_at / BUCKET_MS`); a slot holding an older
    /// index is empty for any newer one.
    index: i64,
    records: u32,
    max_latency_ms: u32,
    /// `processed_at` of the bucket's first and last record, ms after the bucket's start.
    first: u8,
    last: u8,
}

impl Bucket {
    /// `processed_at` of its first record.
    fn first_ms(&self) -> i64 {
        self.index * BUCKET_MS + i64::from(self.first)
    }

    /// `processed_at` of its last record.
    fn last_ms(&self) -> i64 {
        self.index * BUCKET_MS + i64::from(self.last)
    }
}

/// An output gap: no record with `processed_at` in `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Flink's time of the last record before the gap.
    pub start_ms: i64,
    /// Flink's time of the first record after it.
    pub end_ms: i64,
}

impl Gap {
    /// Length, ms.
    pub fn ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct OutputTimeline {
    slots: Vec<Bucket>,
    newest: Option<i64>,
}

impl Default for OutputTimeline {
    fn default() -> Self {
        OutputTimeline {
            slots: vec![Bucket::default(); BUCKETS],
            newest: None,
        }
    }
}

impl OutputTimeline {
    /// Counts one output record processed by Flink at `processed_at_ms`, `latency_ms` after
    /// its event time, read at `received_ms`. Records older than the ring, or from the future
    /// (see [`FUTURE_SLACK_MS`]), are ignored; says whether it was counted.
    pub fn record(&mut self, processed_at_ms: i64, latency_ms: i64, received_ms: i64) -> bool {
        let index = processed_at_ms.div_euclid(BUCKET_MS);
        if processed_at_ms > received_ms + FUTURE_SLACK_MS
            || self
                .newest
                .is_some_and(|newest| index <= newest - BUCKETS as i64)
        {
            return false;
        }
        self.newest = Some(self.newest.map_or(index, |n| n.max(index)));
        let slot = &mut self.slots[index.rem_euclid(BUCKETS as i64) as usize];
        let offset = processed_at_ms.rem_euclid(BUCKET_MS) as u8;
        if slot.index != index || slot.records == 0 {
            *slot = Bucket {
                index,
                first: offset,
                last: offset,
                ..Bucket::default()
            };
        }
        slot.first = slot.first.min(offset);
        slot.last = slot.last.max(offset);
        slot.records = slot.records.saturating_add(1);
        let latency = latency_ms.clamp(0, i64::from(u32::MAX)) as u32;
        slot.max_latency_ms = slot.max_latency_ms.max(latency);
        true
    }

    /// The bucket `index`, if it holds records.
    fn bucket(&self, index: i64) -> Option<&Bucket> {
        let slot = &self.slots[index.rem_euclid(BUCKETS as i64) as usize];
        (slot.index == index && slot.records > 0).then_some(slot)
    }

    /// Non-empty buckets with `processed_at` in `[from_ms, to_ms)`, oldest first.
    fn buckets(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = &Bucket> + '_ {
        let oldest = self.newest.map_or(0, |n| n - BUCKETS as i64 + 1);
        let from = from_ms.div_euclid(BUCKET_MS).max(oldest);
        let to = (to_ms - 1).div_euclid(BUCKET_MS);
        (from..=to).filter_map(|i| self.bucket(i))
    }

    /// Output gaps of at least `min_gap_ms` that overlap `[from_ms, to_ms)`, measured between
    /// the records on either side (so a gap may start before `from_ms`); a gap still open at
    /// `to_ms` is not one (output has not resumed).
    pub fn gaps(&self, from_ms: i64, to_ms: i64, min_gap_ms: i64) -> Vec<Gap> {
        // The last record before the window is the gap's start if output stalled earlier.
        let mut last = self
            .buckets(from_ms - 10 * 60_000, from_ms)
            .last()
            .map(Bucket::last_ms);
        let mut gaps = Vec::new();
        for b in self.buckets(from_ms, to_ms) {
            if let Some(start_ms) = last {
                let gap = Gap {
                    start_ms,
                    end_ms: b.first_ms(),
                };
                if gap.ms() >= min_gap_ms {
                    gaps.push(gap);
                }
            }
            last = Some(b.last_ms());
        }
        gaps
    }

    /// When output caught up within `[from_ms, to_ms)`: the first record of the first bucket
    /// after the last one whose worst latency exceeded `band_ms`. `from_ms` itself when no record
    /// was over the band; `None` when the last record of the window is over it (not caught
    /// up yet) or the window has no record.
    pub fn caught_up(&self, from_ms: i64, to_ms: i64, band_ms: i64) -> Option<i64> {
        let mut caught_up = None;
        let mut any = false;
        let mut over = false;
        for b in self.buckets(from_ms, to_ms) {
            any = true;
            over = i64::from(b.max_latency_ms) > band_ms;
            if over {
                caught_up = None;
            } else if caught_up.is_none() {
                caught_up = Some(b.first_ms());
            }
        }
        if !any || over {
            return None;
        }
        // Never over the band: caught up all along.
        caught_up.map(|at| {
            if self
                .buckets(from_ms, at)
                .any(|b| i64::from(b.max_latency_ms) > band_ms)
            {
                at
            } else {
                from_ms
            }
        })
    }

    /// When the pipeline recovered within `[from_ms, to_ms)`: output resumed after its last
    /// gap of at least `min_gap_ms` and caught up ([`Self::caught_up`] with `band_ms`),
    /// whichever came later. `None` while either has not happened by `to_ms`.
    pub fn recovered_at(
        &self,
        from_ms: i64,
        to_ms: i64,
        band_ms: i64,
        min_gap_ms: i64,
    ) -> Option<i64> {
        let caught_up = self.caught_up(from_ms, to_ms, band_ms)?;
        let resumed = self
            .gaps(from_ms, to_ms, min_gap_ms)
            .last()
            .map_or(from_ms, |g| g.end_ms);
        Some(caught_up.max(resumed))
    }

    /// The last record before `to_ms` (looking back at most ten minutes): where output
    /// stands at `to_ms`. Exact unless `to_ms` falls inside that record's bucket.
    pub fn last_output_before(&self, to_ms: i64) -> Option<i64> {
        self.buckets(to_ms - 10 * 60_000, to_ms)
            .last()
            .map(|b| b.last_ms().min(to_ms - 1))
    }

    /// Records with `processed_at` in `[from_ms, to_ms)`.
    pub fn records(&self, from_ms: i64, to_ms: i64) -> u64 {
        self.buckets(from_ms, to_ms)
            .map(|b| u64::from(b.records))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten records a second from `from_s` to `to_s` (exclusive), each `latency_ms` late.
    fn steady(t: &mut OutputTimeline, from_s: i64, to_s: i64, latency_ms: i64) {
        for ms in (from_s * 1000..to_s * 1000).step_by(100) {
            assert!(t.record(ms + 7, latency_ms, ms + 500));
        }
    }

    #[test]
    fn a_stall_is_one_gap_between_the_records_around_it() {
        let mut t = OutputTimeline::default();
        steady(&mut t, 0, 10, 300);
        // Nothing from 10 s to 17.5 s, then output resumes.
        steady(&mut t, 17, 30, 300);
        t.record(17_500, 300, 18_000);
        let gaps = t.gaps(5_000, 30_000, 2_000);
        // Between the records on either side, to the millisecond: 9.907 s and 17.007 s.
        assert_eq!(
            gaps,
            [Gap {
                start_ms: 9_907,
                end_ms: 17_007
            }]
        );
        assert_eq!(gaps[0].ms(), 7_100);
        // Short pauses are not gaps.
        assert!(t.gaps(0, 10_000, 200).is_empty());
        // A gap that began before the window is measured from its real start.
        assert_eq!(t.gaps(12_000, 30_000, 2_000)[0].start_ms, 9_907);
        // Output that has not resumed by the window's end is no gap (yet): it stands still
        // since the last record.
        assert!(t.gaps(5_000, 16_000, 2_000).is_empty());
        assert_eq!(t.last_output_before(16_000), Some(9_907));
    }

    #[test]
    fn a_pause_just_over_the_threshold_is_a_gap_and_just_under_is_not() {
        // Seen on the compose stack: 2.006 s between two records, with 2 s as the threshold.
        // Whole buckets would have made it 1.9 s (end of one bucket to the start of the
        // next) and missed it, while a reader of the topic counts it.
        for (next, gap) in [(267_556, true), (267_549, false)] {
            let mut t = OutputTimeline::default();
            t.record(265_450, 10, 265_500);
            t.record(265_550, 10, 265_600);
            t.record(next, 10, next + 50);
            let gaps = t.gaps(265_000, 270_000, 2_000);
            assert_eq!(gaps.len(), usize::from(gap), "{next}: {gaps:?}");
            if gap {
                assert_eq!(gaps[0].ms(), 2_006);
            }
        }
    }

    #[test]
    fn caught_up_is_the_first_output_after_the_last_late_one() {
        let mut t = OutputTimeline::default();
        steady(&mut t, 0, 10, 300);
        // Restart: the backlog comes out late, then everything is on time again.
        steady(&mut t, 20, 25, 12_000);
        steady(&mut t, 25, 40, 400);
        assert_eq!(t.caught_up(10_000, 40_000, 2_000), Some(25_007));
        // Still late at the end of the window: not caught up.
        assert_eq!(t.caught_up(10_000, 24_000, 2_000), None);
        // Never late: caught up from the start of the window.
        assert_eq!(t.caught_up(1_000, 9_000, 2_000), Some(1_000));
        // No record at all in the window.
        assert_eq!(t.caught_up(11_000, 19_000, 2_000), None);
        assert_eq!(t.records(0, 10_000), 100);
        // Recovered: caught up, and output resumed after the stall.
        assert_eq!(t.recovered_at(5_000, 40_000, 2_000, 2_000), Some(25_007));
    }

    #[test]
    fn output_on_time_after_a_stall_recovers_when_it_resumes() {
        // A broker outage with nothing in flight: output stops, then resumes on time.
        let mut t = OutputTimeline::default();
        steady(&mut t, 0, 10, 300);
        steady(&mut t, 18, 30, 300);
        assert_eq!(t.caught_up(5_000, 30_000, 2_000), Some(5_000));
        assert_eq!(t.recovered_at(5_000, 30_000, 2_000, 2_000), Some(18_007));
        // Output that has not resumed: the stall is not a gap yet, nothing was late.
        assert_eq!(t.recovered_at(5_000, 15_000, 2_000, 2_000), Some(5_000));
    }

    #[test]
    fn the_ring_forgets_what_is_older_than_thirty_minutes() {
        let mut t = OutputTimeline::default();
        let later = 1_000 + 31 * 60_000;
        t.record(1_000, 5, 1_000);
        t.record(later, 5, later);
        assert_eq!(
            t.records(0, 2_000),
            0,
            "overwritten by the newer bucket's slot"
        );
        // A record older than the ring is ignored rather than overwriting a newer slot.
        assert!(!t.record(1_050, 5, later));
        assert_eq!(t.records(1_000 + 31 * 60_000, 1_100 + 31 * 60_000), 1);
        assert_eq!(t.records(0, 2_000), 0);
        // A record stamped a year ahead (foreign or corrupt) is ignored, and does not move
        // the ring past the real ones.
        assert!(!t.record(later + 365 * 86_400_000, 5, later));
        assert_eq!(t.records(later, later + 100), 1);
    }
}
