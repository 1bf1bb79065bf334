//! Orders that failed at the door and have not been seen since, once the ledger has compacted
//! them out of its store.
//!
//! Owns: their produced values, 4 bytes per order, in runs of consecutive seqs. A broker
//! outage fails every order placed meanwhile (1,000 orders/s for 5 minutes is 300,000 of them),
//! and any of them may still show up in the output (a produce that timed out can have reached
//! the broker), so the ledger must keep each one's value for as long as it runs. In a hash
//! map that cost 25 to 60 bytes an order; here it is 4, plus 4 for each seq padded between two
//! failures that are up to [`MAX_PAD`] apart (a broker that flaps between acks and failures).
//!
//! Does not own: what a sighting means (the ledger's), values of [`GONE`] and above (the
//! ledger keeps those in its own table and stores a marker here).
//!
//! Seqs are pushed in increasing order, as compaction reaches them; a seq leaves when it is
//! seen. A run whose every order has left is dropped, so memory follows the outstanding
//! failures down.

/// A slot holding no parked order: padding, or an order seen since.
pub(super) const GONE: u32 = u32::MAX - 1;

/// Two failures at most this many seqs apart share a run (the seqs between are padded).
const MAX_PAD: u64 = 64;

/// Failed, unseen orders below the ledger's base.
#[derive(Debug, Default)]
pub(super) struct FailedRuns {
    /// Sorted by `start`, disjoint.
    runs: Vec<Run>,
    /// Parked orders over all runs.
    len: usize,
}

#[derive(Debug)]
struct Run {
    start: u64,
    /// The value of `start + i`, or [`GONE`].
    values: Vec<u32>,
    /// Slots not [`GONE`].
    live: usize,
}

impl Run {
    fn end(&self) -> u64 {
        self.start + self.values.len() as u64
    }
}

impl FailedRuns {
    /// Parks order `seq` with its stored `value` (below [`GONE`]). `seq` must be above every
    /// seq pushed so far.
    pub(super) fn push(&mut self, seq: u64, value: u32) {
        debug_assert!(value != GONE);
        match self.runs.last_mut() {
            Some(run) if seq >= run.end() && seq - run.end() <= MAX_PAD => {
                let pad = usize::try_from(seq - run.end()).expect("pad fits");
                run.values.extend(std::iter::repeat_n(GONE, pad));
                run.values.push(value);
                run.live += 1;
            }
            last => {
                debug_assert!(
                    last.as_ref().is_none_or(|run| seq >= run.end()),
                    "seq {seq} out of order"
                );
                if let Some(run) = last {
                    run.values.shrink_to_fit();
                }
                self.runs.push(Run {
                    start: seq,
                    values: vec![value],
                    live: 1,
                });
            }
        }
        self.len += 1;
    }

    /// The stored value of parked order `seq`, if it is parked.
    pub(super) fn get(&self, seq: u64) -> Option<u32> {
        let (run, i) = self.slot(seq)?;
        Some(self.runs[run].values[i]).filter(|&v| v != GONE)
    }

    /// Unparks order `seq` (it was seen). Returns whether it was parked.
    pub(super) fn remove(&mut self, seq: u64) -> bool {
        let Some((r, i)) = self.slot(seq) else {
            return false;
        };
        let run = &mut self.runs[r];
        if run.values[i] == GONE {
            return false;
        }
        run.values[i] = GONE;
        run.live -= 1;
        self.len -= 1;
        if run.live == 0 {
            self.runs.remove(r);
        }
        true
    }

    /// Parked orders.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Approximate heap bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.runs.capacity() * std::mem::size_of::<Run>()
            + self
                .runs
                .iter()
                .map(|r| r.values.capacity() * std::mem::size_of::<u32>())
                .sum::<usize>()
    }

    /// Every parked order with its stored value, in seq order.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.runs.iter().flat_map(|r| {
            (r.start..)
                .zip(r.values.iter().copied())
                .filter(|&(_, v)| v != GONE)
        })
    }

    /// The run index and slot of `seq`, if some run covers it.
    fn slot(&self, seq: u64) -> Option<(usize, usize)> {
        let r = self
            .runs
            .partition_point(|run| run.start <= seq)
            .checked_sub(1)?;
        let run = &self.runs[r];
        (seq < run.end()).then(|| (r, usize::try_from(seq - run.start).expect("slot fits")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_pad_close_failures_and_split_far_ones() {
        let mut f = FailedRuns::default();
        for seq in [3, 4, 5, 10, 10 + 1 + MAX_PAD, 500] {
            f.push(seq, seq as u32 * 10);
        }
        assert_eq!(f.runs.len(), 2, "{:?}", f.runs);
        assert_eq!(f.len(), 6);
        assert_eq!(f.get(4), Some(40));
        assert_eq!(f.get(6), None, "padding is not parked");
        assert_eq!(f.get(2), None);
        assert_eq!(f.get(501), None);
        assert_eq!(f.get(500), Some(5_000));
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            vec![
                (3, 30),
                (4, 40),
                (5, 50),
                (10, 100),
                (75, 750),
                (500, 5_000)
            ]
        );
    }

    #[test]
    fn seen_orders_leave_and_empty_runs_are_dropped() {
        let mut f = FailedRuns::default();
        f.push(1, 1);
        f.push(2, 2);
        f.push(1_000, 3);
        assert!(f.remove(1));
        assert!(!f.remove(1), "already gone");
        assert!(!f.remove(7), "never parked");
        assert_eq!((f.len(), f.runs.len()), (2, 2));
        assert!(f.remove(2));
        assert_eq!((f.len(), f.runs.len()), (1, 1));
        assert_eq!(f.get(1_000), Some(3));
        assert!(f.remove(1_000));
        assert_eq!(
            (f.len(), f.bytes()),
            (0, f.runs.capacity() * size_of::<Run>())
        );
    }

    #[test]
    fn an_outage_costs_four_bytes_an_order() {
        let mut f = FailedRuns::default();
        // 300,000 failures in a row, as a 5-minute outage at 1,000 orders/s makes.
        for seq in 0..300_000 {
            f.push(seq, 1_234);
        }
        f.push(1_000_000, 1); // the next failure, long after: the outage's run is trimmed
        let runs = f.runs.capacity() * size_of::<Run>();
        assert_eq!(f.bytes() - runs, 300_001 * 4);
    }
}
