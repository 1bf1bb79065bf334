//! The exactly-once ledger: exact, incremental accounting of every order the generator
//! produced against what Flink wrote to `processed_orders`.
//!
//! Owns: the state of each order of one generator run (sent, acked, failed at the door, seen,
//! missing, lost), the verdict on each sighting read from the output topic ([`Outcome`]: first,
//! duplicate, unexpected, invalid, late), SLA aging, and the running [`Totals`].
//!
//! Does not own: the order model ([`Category`] is `crate::order`'s, re-exported here for
//! callers), Kafka I/O, record decoding, clocks, metrics or reports. The audit consumer
//! feeds it events with `now_ms` (unix milliseconds); `business` and the metrics layer read
//! [`Totals`]. Everything here is pure and deterministic: no I/O, no clock, no randomness.
//!
//! # Order lifecycle
//!
//! Orders are identified by their sequence number inside the run (`"{run_id}-{seq}"`).
//! `sent(seq)` always comes first; after it, `acked`/`failed` (the producer's delivery report)
//! and `seen` (Flink's output) may come in any order: Flink can be faster than the delivery
//! report, and a produce timeout can still have reached the broker. An acked order that stays
//! unseen ages: *in flight* until `ack + sla_ms`, then *missing*, then *lost* after
//! `ack + lost_after_ms` (or at [`Ledger::finalize`]). A late sighting undoes missing/lost: the
//! order then counts as processed and late, never as lost (an order `finalize` lost while still
//! within its SLA that shows up anyway is processed on time; its SLA breach stays counted).
//! Deadlines are strict: an order seen exactly at `ack + sla_ms` is on time, and `tick` at that
//! instant does not flag it.
//!
//! Events that contradict the ledger (a second delivery report, an ack after a failure, a
//! report for an unknown seq, a `sent` for a seq not above every seq sent so far) change
//! nothing but [`Totals::rejected`].
//!
//! # Time
//!
//! The ledger keeps the highest `now_ms` it was given and uses `max(now_ms, that)` for every
//! event, so a wall clock stepping backwards can delay a verdict but never reorder the aging
//! queues or make a duration negative.
//!
//! # Memory
//!
//! * The main store is a `VecDeque<Entry>` indexed by `seq - base`; an entry is 16 bytes
//!   (`ack_ms: u64`, `value: u32` cents, `flags: u8`, padding). Values of `u32::MAX - 1`
//!   cents (~$42.9M) and above are kept exactly in a side table keyed by seq.
//! * Compaction pops the front of the store while it is *settled*: seen and with its delivery
//!   report, so a later sighting of a seq below `base` is a duplicate. Failed-and-unseen and lost
//!   entries do not block compaction: they are parked so a later sighting still finds them.
//!   Failed ones keep only their value, 4 bytes each, in runs of consecutive seqs
//!   ([`FailedRuns`]): a broker outage fails every order placed meanwhile, for as long as it
//!   lasts. Lost ones (acked, so a real failure downstream) go to a side `HashMap` (25 to 60
//!   bytes each, depending on its load); a Flink outage longer than `lost_after_ms` thus costs
//!   about twice the store's bytes per lost order until they show up.
//!   What does block compaction is the oldest order still waiting for its delivery report, an
//!   unseen order in flight or missing, or a seen order whose report has not come yet: bounded
//!   by the producer's delivery timeout and `lost_after_ms`. One straggler pins every entry
//!   behind it meanwhile (at 10k orders/s and 6 s late: 60k entries, under 1 MiB).
//! * Seqs skipped by `sent` (gaps) are never-sent: a sighting is unexpected. A gap costs one
//!   placeholder entry per skipped seq while it is in the store, then one range once compacted.
//! * Aging uses two FIFOs of seqs (8 bytes each) in ack order: acked-unseen orders wait in the
//!   in-flight queue until their SLA passes, then in the missing queue until they are lost.
//!   Entries made stale by a sighting are dropped lazily when they reach the front, so `tick`
//!   costs what changes, never a scan. An acked, unseen order therefore costs 24 bytes.
//! * Buffers shrink when less than a quarter full, so memory follows the backlog down.

use std::collections::{HashMap, VecDeque};

use super::failed::{FailedRuns, GONE};

/// Aging thresholds, both measured from the producer's ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerConfig {
    /// An acked order still unseen after this many milliseconds is missing, and late if it
    /// shows up afterwards.
    pub sla_ms: u64,
    /// An acked order still unseen after this many milliseconds is lost. A value below
    /// `sla_ms` is raised to `sla_ms`.
    pub lost_after_ms: u64,
}

pub use crate::order::Category;

/// What Flink wrote for an order, as read from the output topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The order value Flink wrote, in cents.
    pub value_cents: u64,
    /// The category Flink assigned; `None` when what it wrote is not a category.
    pub category: Option<Category>,
}

/// The verdict on one sighting of an order in the output topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// First sighting, with the value and category that were produced.
    Processed {
        /// Seen more than `sla_ms` after its ack.
        late: bool,
        /// Ack to first sighting; `None` when seen before its ack or without one (failed).
        ack_to_seen_ms: Option<u64>,
    },
    /// Seen before (an at-least-once replay), including orders already compacted away.
    Duplicate,
    /// A seq this run never sent; every such sighting counts.
    Unexpected,
    /// First sighting, but Flink's value or category differ from what was produced: an
    /// integrity failure. The order still counts as processed (not missing), and as late in
    /// [`Totals`] when it is.
    Invalid {
        /// Flink's value equals the produced value.
        value_ok: bool,
        /// Flink's category equals the category of the produced value.
        category_ok: bool,
    },
}

/// Running counts (orders) and sums (cents), all maintained incrementally.
///
/// Cumulative fields only grow; *current* fields describe the present state and go up and
/// down. Counts are of distinct orders unless said otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cumulative: orders sent.
    pub sent: u64,
    /// Cumulative: orders acked by the broker.
    pub acked: u64,
    /// Cumulative: orders failed at the door (including ones seen afterwards).
    pub failed: u64,
    /// Cumulative: orders seen at least once, including invalid ones.
    pub processed: u64,
    /// Cumulative: sightings of an order already seen.
    pub duplicates: u64,
    /// Cumulative: sightings of seqs never sent, and foreign records (each sighting counts).
    pub unexpected: u64,
    /// Cumulative: first sightings whose value or category differ from what was produced.
    pub invalid: u64,
    /// Cumulative: first sightings more than `sla_ms` after the ack.
    pub late: u64,
    /// Current: acked, unseen, within the SLA.
    pub in_flight: u64,
    /// Current: acked, unseen, past the SLA, not yet lost.
    pub missing: u64,
    /// Current: acked, unseen, past `lost_after_ms` or finalized. Goes down when a lost order
    /// shows up (it then counts as late).
    pub lost: u64,
    /// Current: value of acked orders not yet seen (in flight + missing + lost).
    pub at_risk_cents: u64,
    /// Cumulative: value of late first sightings.
    pub delayed_cents: u64,
    /// Current: value of orders failed at the door and not seen since.
    pub failed_cents: u64,
    /// Current: value of lost orders.
    pub lost_cents: u64,
    /// Cumulative: acked orders that broke their SLA, each counted once, at the first of:
    /// flagged missing by `tick`, declared lost by `finalize` while still in flight, or first
    /// seen late without having been flagged. Every late order is in here; so is every order
    /// that was ever missing or lost, even if it shows up later.
    pub sla_breaches: u64,
    /// Cumulative: producer events ignored because they contradict the ledger (see the
    /// module docs). Non-zero means a bug upstream.
    pub rejected: u64,
}

/// Exact accounting of one generator run. See the module docs for semantics and memory.
#[derive(Debug)]
pub struct Ledger {
    sla_ms: u64,
    lost_after_ms: u64,
    /// Highest `now_ms` seen; every event is stamped with it.
    clock: u64,
    /// Seq of `store[0]`; every seq below it is settled, parked in `side` or `failed`, or a
    /// hole.
    base: u64,
    store: VecDeque<Entry>,
    /// Lost entries below `base`.
    side: HashMap<u64, Entry>,
    /// Failed-unseen entries below `base`: their values.
    failed: FailedRuns,
    /// Compacted never-sent seqs: sorted, disjoint `[start, end)` ranges below `base`.
    holes: Vec<(u64, u64)>,
    /// Exact values of entries whose `value` is [`BIG_VALUE`].
    big: HashMap<u64, u64>,
    /// Acked-unseen seqs within their SLA, in ack order (may hold stale seqs).
    in_flight_q: VecDeque<u64>,
    /// Missing seqs, in ack order (may hold stale seqs).
    missing_q: VecDeque<u64>,
    totals: Totals,
}

/// Marks an entry whose value lives in `Ledger::big` (as does [`GONE`], reserved by
/// [`FailedRuns`]).
const BIG_VALUE: u32 = u32::MAX;

/// Buffers below this capacity are never shrunk: not worth the copies.
const SHRINK_MIN_CAPACITY: usize = 1024;

// Entry flags. A store slot with no flags is a hole (a seq skipped by `sent`).
const SENT: u8 = 1;
const ACKED: u8 = 1 << 1;
const FAILED: u8 = 1 << 2;
const SEEN: u8 = 1 << 3;
/// Acked, unseen, past the SLA. Exclusive with `LOST`; cleared when seen.
const MISSING: u8 = 1 << 4;
/// Acked, unseen, past `lost_after_ms` or finalized. Cleared when seen.
const LOST: u8 = 1 << 5;

/// One order. 16 bytes: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Ledger clock at the ack; meaningless without `ACKED`.
    ack_ms: u64,
    /// Produced value in cents, or [`BIG_VALUE`].
    value: u32,
    flags: u8,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

impl Entry {
    const HOLE: Entry = Entry {
        ack_ms: 0,
        value: 0,
        flags: 0,
    };

    /// A failed, unseen order parked in [`FailedRuns`]: all it keeps is its value.
    fn failed(value: u32) -> Entry {
        Entry {
            ack_ms: 0,
            value,
            flags: SENT | FAILED,
        }
    }

    fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn acked_unseen(self) -> bool {
        self.has(ACKED) && !self.has(SEEN)
    }

    fn in_flight(self) -> bool {
        self.acked_unseen() && !self.has(MISSING | LOST)
    }

    /// Seen and with its delivery report: nothing can change it any more but duplicates.
    fn settled(self) -> bool {
        self.has(SEEN) && self.has(ACKED | FAILED)
    }

    /// Waiting only for a sighting that may never come: kept aside, off the store.
    fn parkable(self) -> bool {
        self.has(LOST) || (self.has(FAILED) && !self.has(SEEN))
    }
}

/// Where a seq stands, as far as the ledger knows.
enum Lookup {
    /// Sent and tracked (in the store or parked).
    Found(Entry),
    /// Below `base` and not parked: settled and compacted away.
    Settled,
    /// Never sent: skipped by `sent` or not sent yet.
    NeverSent,
}

impl Ledger {
    /// An empty ledger for one run, expecting seqs from 0.
    pub fn new(config: LedgerConfig) -> Ledger {
        Ledger {
            sla_ms: config.sla_ms,
            lost_after_ms: config.lost_after_ms.max(config.sla_ms),
            clock: 0,
            base: 0,
            store: VecDeque::new(),
            side: HashMap::new(),
            failed: FailedRuns::default(),
            holes: Vec::new(),
            big: HashMap::new(),
            in_flight_q: VecDeque::new(),
            missing_q: VecDeque::new(),
            totals: Totals::default(),
        }
    }

    /// The generator handed order `seq` worth `value_cents` to the producer.
    ///
    /// Seqs must increase; gaps are allowed (skipped seqs are never-sent, and a gap costs a
    /// placeholder per skipped seq while it is in the store, so a wild jump is a generator
    /// bug). A `seq` not above every seq sent so far is rejected.
    pub fn sent(&mut self, seq: u64, value_cents: u64) {
        let next = self.next_seq();
        if seq < next {
            self.totals.rejected += 1;
            return;
        }
        if seq > next {
            if self.store.is_empty() {
                self.push_holes(next, seq);
                self.base = seq;
            } else {
                let gap = usize::try_from(seq - next).expect("seq gap exceeds the address space");
                self.store.extend(std::iter::repeat_n(Entry::HOLE, gap));
            }
        }
        let value = match u32::try_from(value_cents) {
            Ok(v) if v < GONE => v,
            _ => {
                self.big.insert(seq, value_cents);
                BIG_VALUE
            }
        };
        self.store.push_back(Entry {
            ack_ms: 0,
            value,
            flags: SENT,
        });
        self.totals.sent += 1;
    }

    /// The broker acked order `seq` at `now_ms`. Rejected for an unknown seq or one that
    /// already has a delivery report.
    pub fn acked(&mut self, seq: u64, now_ms: u64) {
        let now = self.advance(now_ms);
        let Some(mut e) = self.reportable(seq) else {
            return;
        };
        e.flags |= ACKED;
        e.ack_ms = now;
        self.totals.acked += 1;
        if !e.has(SEEN) {
            let value = self.value(seq, e);
            self.totals.in_flight += 1;
            self.totals.at_risk_cents += value;
            self.in_flight_q.push_back(seq);
        }
        self.put(seq, e);
        self.compact();
    }

    /// Order `seq` failed at the door: the producer reports it never reached the broker.
    /// Rejected for an unknown seq or one that already has a delivery report.
    pub fn failed(&mut self, seq: u64) {
        let Some(mut e) = self.reportable(seq) else {
            return;
        };
        e.flags |= FAILED;
        self.totals.failed += 1;
        if !e.has(SEEN) {
            self.totals.failed_cents += self.value(seq, e);
        }
        self.put(seq, e);
        self.compact();
    }

    /// Flink's output for order `seq` was read at `now_ms`: classify the sighting.
    pub fn seen(&mut self, seq: u64, seen: Seen, now_ms: u64) -> Outcome {
        let now = self.advance(now_ms);
        let mut e = match self.lookup(seq) {
            Lookup::NeverSent => {
                self.totals.unexpected += 1;
                return Outcome::Unexpected;
            }
            Lookup::Settled => {
                self.totals.duplicates += 1;
                return Outcome::Duplicate;
            }
            Lookup::Found(e) if e.has(SEEN) => {
                self.totals.duplicates += 1;
                return Outcome::Duplicate;
            }
            Lookup::Found(e) => e,
        };
        let value = self.value(seq, e);
        let t = &mut self.totals;
        let mut late = false;
        let mut ack_to_seen_ms = None;
        if e.has(ACKED) {
            t.at_risk_cents -= value;
            if e.has(LOST) {
                t.lost -= 1;
                t.lost_cents -= value;
            } else if e.has(MISSING) {
                t.missing -= 1;
            } else {
                t.in_flight -= 1;
            }
            late = now > e.ack_ms.saturating_add(self.sla_ms);
            // Missing is only set once the clock is past the SLA deadline (lost is not:
            // `finalize` can lose an order still in flight).
            debug_assert!(late || !e.has(MISSING));
            if late {
                t.late += 1;
                t.delayed_cents += value;
                if !e.has(MISSING | LOST) {
                    t.sla_breaches += 1;
                }
            }
            ack_to_seen_ms = Some(now - e.ack_ms);
        } else if e.has(FAILED) {
            t.failed_cents -= value;
        }
        t.processed += 1;
        e.flags = (e.flags | SEEN) & !(MISSING | LOST);
        self.put(seq, e);
        self.drop_stale();
        self.compact();

        let value_ok = seen.value_cents == value;
        let category_ok = seen.category == Some(Category::of(value));
        if value_ok && category_ok {
            Outcome::Processed {
                late,
                ack_to_seen_ms,
            }
        } else {
            self.totals.invalid += 1;
            Outcome::Invalid {
                value_ok,
                category_ok,
            }
        }
    }

    /// A record that is not an order of this run (another run's id, or not a firedrill id at
    /// all): counted as unexpected.
    pub fn foreign(&mut self) -> Outcome {
        self.totals.unexpected += 1;
        Outcome::Unexpected
    }

    /// Ages acked, unseen orders: in flight -> missing once `now > ack + sla_ms`, missing ->
    /// lost once `now > ack + lost_after_ms`. Costs what changes (plus stale queue entries).
    pub fn tick(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        while let Some(&seq) = self.in_flight_q.front() {
            let e = self.tracked_entry(seq).filter(|e| e.in_flight());
            if let Some(mut e) = e {
                if now <= e.ack_ms.saturating_add(self.sla_ms) {
                    break;
                }
                e.flags |= MISSING;
                self.totals.in_flight -= 1;
                self.totals.missing += 1;
                self.totals.sla_breaches += 1;
                self.put(seq, e);
                self.missing_q.push_back(seq);
            }
            self.in_flight_q.pop_front();
        }
        while let Some(&seq) = self.missing_q.front() {
            let e = self.tracked_entry(seq).filter(|e| e.has(MISSING));
            if let Some(mut e) = e {
                if now <= e.ack_ms.saturating_add(self.lost_after_ms) {
                    break;
                }
                self.mark_lost(seq, &mut e);
                self.totals.missing -= 1;
            }
            self.missing_q.pop_front();
        }
        shrink_if_sparse(&mut self.in_flight_q);
        shrink_if_sparse(&mut self.missing_q);
        self.compact();
    }

    /// The drain deadline is reached: every acked order still unseen (in flight or missing)
    /// becomes lost. Later sightings are still classified (late, lost goes down).
    pub fn finalize(&mut self) {
        while let Some(seq) = self.in_flight_q.pop_front() {
            if let Some(mut e) = self.tracked_entry(seq).filter(|e| e.in_flight()) {
                self.mark_lost(seq, &mut e);
                self.totals.in_flight -= 1;
                self.totals.sla_breaches += 1;
            }
        }
        while let Some(seq) = self.missing_q.pop_front() {
            if let Some(mut e) = self.tracked_entry(seq).filter(|e| e.has(MISSING)) {
                self.mark_lost(seq, &mut e);
                self.totals.missing -= 1;
            }
        }
        shrink_if_sparse(&mut self.in_flight_q);
        shrink_if_sparse(&mut self.missing_q);
        self.compact();
    }

    /// The running totals. O(1).
    pub fn totals(&self) -> Totals {
        self.totals.clone()
    }

    /// Entries held in memory: the store (including gap placeholders) plus parked entries.
    pub fn tracked(&self) -> usize {
        self.store.len() + self.side.len() + self.failed.len()
    }

    /// Approximate heap bytes held, from capacities (hash maps estimated from their usable
    /// capacity and entry size).
    pub fn approx_bytes(&self) -> usize {
        fn map_bytes<K, V>(m: &HashMap<K, V>) -> usize {
            // One control byte per bucket on top of the (key, value) slot.
            m.capacity() * (std::mem::size_of::<(K, V)>() + 1)
        }
        self.store.capacity() * std::mem::size_of::<Entry>()
            + (self.in_flight_q.capacity() + self.missing_q.capacity()) * std::mem::size_of::<u64>()
            + self.holes.capacity() * std::mem::size_of::<(u64, u64)>()
            + map_bytes(&self.side)
            + self.failed.bytes()
            + map_bytes(&self.big)
    }

    fn next_seq(&self) -> u64 {
        self.base + self.store.len() as u64
    }

    fn advance(&mut self, now_ms: u64) -> u64 {
        self.clock = self.clock.max(now_ms);
        self.clock
    }

    fn lookup(&self, seq: u64) -> Lookup {
        if seq >= self.base {
            match self.store.get(to_index(seq - self.base)) {
                Some(e) if e.has(SENT) => Lookup::Found(*e),
                _ => Lookup::NeverSent,
            }
        } else if let Some(e) = self.side.get(&seq) {
            Lookup::Found(*e)
        } else if let Some(value) = self.failed.get(seq) {
            Lookup::Found(Entry::failed(value))
        } else if self.in_holes(seq) {
            Lookup::NeverSent
        } else {
            Lookup::Settled
        }
    }

    /// The entry of a sent seq awaiting its delivery report; counts a rejection otherwise.
    fn reportable(&mut self, seq: u64) -> Option<Entry> {
        match self.lookup(seq) {
            Lookup::Found(e) if !e.has(ACKED | FAILED) => Some(e),
            _ => {
                self.totals.rejected += 1;
                None
            }
        }
    }

    /// The entry of a sent seq still tracked (store or side), if any.
    fn tracked_entry(&self, seq: u64) -> Option<Entry> {
        match self.lookup(seq) {
            Lookup::Found(e) => Some(e),
            Lookup::Settled | Lookup::NeverSent => None,
        }
    }

    /// Writes back the entry of a tracked seq. A parked entry that became settled leaves.
    fn put(&mut self, seq: u64, e: Entry) {
        if seq >= self.base {
            self.store[to_index(seq - self.base)] = e;
        } else if e.settled() {
            if self.side.remove(&seq).is_some() {
                shrink_map_if_sparse(&mut self.side);
            } else {
                self.failed.remove(seq);
            }
            self.release_value(seq, e);
        } else {
            // Below `base`, only a sighting changes an entry, and it settles failed ones.
            debug_assert!(!e.has(FAILED), "failed {seq} changed unseen");
            self.side.insert(seq, e);
        }
    }

    fn value(&self, seq: u64, e: Entry) -> u64 {
        if e.value == BIG_VALUE {
            self.big[&seq]
        } else {
            u64::from(e.value)
        }
    }

    fn release_value(&mut self, seq: u64, e: Entry) {
        if e.value == BIG_VALUE {
            self.big.remove(&seq);
            shrink_map_if_sparse(&mut self.big);
        }
    }

    /// Marks a missing or in-flight entry lost; the caller decrements where it came from.
    fn mark_lost(&mut self, seq: u64, e: &mut Entry) {
        let value = self.value(seq, *e);
        e.flags = (e.flags & !MISSING) | LOST;
        self.totals.lost += 1;
        self.totals.lost_cents += value;
        self.put(seq, *e);
    }

    /// Pops queue fronts that a sighting made stale, so a healthy stream keeps them short.
    fn drop_stale(&mut self) {
        while let Some(&seq) = self.in_flight_q.front() {
            if self.tracked_entry(seq).is_some_and(Entry::in_flight) {
                break;
            }
            self.in_flight_q.pop_front();
        }
        while let Some(&seq) = self.missing_q.front() {
            if self.tracked_entry(seq).is_some_and(|e| e.has(MISSING)) {
                break;
            }
            self.missing_q.pop_front();
        }
        shrink_if_sparse(&mut self.in_flight_q);
        shrink_if_sparse(&mut self.missing_q);
    }

    /// Advances `base` past settled entries (dropped), parkable ones (moved to `failed` or
    /// `side`) and holes (merged into `holes`).
    fn compact(&mut self) {
        while let Some(&e) = self.store.front() {
            let seq = self.base;
            if e.settled() {
                self.release_value(seq, e);
            } else if !e.has(SENT) {
                self.push_holes(seq, seq + 1);
            } else if e.parkable() && e.has(FAILED) {
                self.failed.push(seq, e.value);
            } else if e.parkable() {
                self.side.insert(seq, e);
            } else {
                break;
            }
            self.store.pop_front();
            self.base += 1;
        }
        shrink_if_sparse(&mut self.store);
    }

    fn push_holes(&mut self, start: u64, end: u64) {
        match self.holes.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.holes.push((start, end)),
        }
    }

    fn in_holes(&self, seq: u64) -> bool {
        let i = self.holes.partition_point(|&(start, _)| start <= seq);
        i > 0 && seq < self.holes[i - 1].1
    }
}

fn to_index(offset: u64) -> usize {
    // Offsets index a VecDeque that holds them all, so they fit in usize; beyond it they only
    // need to compare as out of range.
    usize::try_from(offset).unwrap_or(usize::MAX)
}

fn shrink_if_sparse<T>(d: &mut VecDeque<T>) {
    if d.capacity() > SHRINK_MIN_CAPACITY && d.len() < d.capacity() / 4 {
        d.shrink_to(d.len() * 2);
    }
}

fn shrink_map_if_sparse<V>(m: &mut HashMap<u64, V>) {
    if m.capacity() > SHRINK_MIN_CAPACITY && m.len() < m.capacity() / 4 {
        m.shrink_to(m.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet, VecDeque};

    const SLA: u64 = 1_000;
    const LOST_AFTER: u64 = 5_000;

    fn ledger() -> Ledger {
        Ledger::new(LedgerConfig {
            sla_ms: SLA,
            lost_after_ms: LOST_AFTER,
        })
    }

    fn ok(value_cents: u64) -> Seen {
        Seen {
            value_cents,
            category: Some(Category::of(value_cents)),
        }
    }

    fn on_time(ms: u64) -> Outcome {
        Outcome::Processed {
            late: false,
            ack_to_seen_ms: Some(ms),
        }
    }

    impl Ledger {
        fn entry_of(&self, seq: u64) -> Entry {
            self.tracked_entry(seq).expect("tracked")
        }

        fn is_parked(&self, seq: u64) -> bool {
            self.side.contains_key(&seq) || self.failed.get(seq).is_some()
        }

        /// Recomputes every current total and structural property by scanning.
        fn check_invariants(&self) {
            let in_flight_q: HashSet<u64> = self.in_flight_q.iter().copied().collect();
            let missing_q: HashSet<u64> = self.missing_q.iter().copied().collect();
            let mut expect = Totals::default();
            let mut acked_unseen = 0;
            let mut hole_slots = 0u64;
            let mut big_keys = 0;
            let entries = self
                .store
                .iter()
                .enumerate()
                .map(|(i, e)| (self.base + i as u64, *e, false))
                .chain(self.side.iter().map(|(s, e)| (*s, *e, true)))
                .chain(self.failed.iter().map(|(s, v)| (s, Entry::failed(v), true)));
            for (seq, e, parked) in entries {
                if !e.has(SENT) {
                    assert!(!parked && e == Entry::HOLE, "hole {seq} {e:?}");
                    hole_slots += 1;
                    continue;
                }
                if e.value == BIG_VALUE {
                    assert!(self.big.contains_key(&seq), "big value of {seq}");
                    big_keys += 1;
                }
                assert!(!(e.has(ACKED) && e.has(FAILED)), "{seq} {e:?}");
                assert!(!(e.has(MISSING) && e.has(LOST)), "{seq} {e:?}");
                if e.has(MISSING | LOST) {
                    assert!(e.acked_unseen(), "{seq} {e:?}");
                }
                if e.has(MISSING) {
                    assert!(self.clock > e.ack_ms + self.sla_ms, "{seq} flagged early");
                }
                if parked {
                    assert!(seq < self.base && e.parkable(), "parked {seq} {e:?}");
                }
                let value = self.value(seq, e);
                if e.acked_unseen() {
                    acked_unseen += 1;
                    expect.at_risk_cents += value;
                }
                if e.in_flight() {
                    expect.in_flight += 1;
                    assert!(in_flight_q.contains(&seq), "{seq} not queued");
                }
                if e.has(MISSING) {
                    expect.missing += 1;
                    assert!(missing_q.contains(&seq), "{seq} not queued");
                }
                if e.has(LOST) {
                    expect.lost += 1;
                    expect.lost_cents += value;
                }
                if e.has(FAILED) && !e.has(SEEN) {
                    expect.failed_cents += value;
                }
            }
            let t = &self.totals;
            assert_eq!(
                (t.in_flight, t.missing, t.lost),
                (expect.in_flight, expect.missing, expect.lost)
            );
            assert_eq!(t.in_flight + t.missing + t.lost, acked_unseen);
            assert_eq!(
                (t.at_risk_cents, t.lost_cents, t.failed_cents),
                (expect.at_risk_cents, expect.lost_cents, expect.failed_cents)
            );
            assert_eq!(self.big.len(), big_keys, "stray big values");

            // The live entries of each queue are in ack order.
            for (q, live) in [
                (&self.in_flight_q, Entry::in_flight as fn(Entry) -> bool),
                (&self.missing_q, |e: Entry| e.has(MISSING)),
            ] {
                let acks: Vec<u64> = q
                    .iter()
                    .filter_map(|s| self.tracked_entry(*s).filter(|e| live(*e)))
                    .map(|e| e.ack_ms)
                    .collect();
                assert!(acks.windows(2).all(|w| w[0] <= w[1]), "queue out of order");
            }

            if let Some(front) = self.store.front() {
                assert!(
                    front.has(SENT) && !front.settled() && !front.parkable(),
                    "front not compacted: {front:?}"
                );
            }
            let mut prev_end = 0;
            let mut holes = hole_slots;
            for &(start, end) in &self.holes {
                assert!(start >= prev_end && start < end && end <= self.base);
                prev_end = end;
                holes += end - start;
            }
            assert_eq!(t.sent, self.next_seq() - holes, "sent vs holes");
            assert!(t.processed >= t.invalid.max(t.late));
            assert!(t.sla_breaches >= t.late);
        }
    }

    #[test]
    fn foreign_records_are_unexpected() {
        let mut l = ledger();
        assert_eq!(l.foreign(), Outcome::Unexpected);
        assert_eq!(l.totals().unexpected, 1);
        l.check_invariants();
    }

    #[test]
    fn happy_path() {
        let mut l = ledger();
        l.sent(0, 2_500);
        l.sent(1, 50_000);
        l.acked(0, 100);
        l.acked(1, 110);
        let t = l.totals();
        assert_eq!(
            (t.sent, t.acked, t.in_flight, t.at_risk_cents),
            (2, 2, 2, 52_500)
        );
        assert_eq!(l.seen(0, ok(2_500), 150), on_time(50));
        assert_eq!(l.seen(1, ok(50_000), 1_110), on_time(1_000)); // the deadline itself is on time
        l.tick(1_200);
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.processed, t.in_flight, t.missing, t.at_risk_cents),
            (2, 0, 0, 0)
        );
        assert_eq!(
            (t.late, t.sla_breaches, t.duplicates, t.invalid),
            (0, 0, 0, 0)
        );
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn duplicates_before_and_after_compaction() {
        let mut l = ledger();
        for seq in 0..3 {
            l.sent(seq, 100);
            l.acked(seq, 10);
        }
        assert_eq!(l.seen(1, ok(100), 20), on_time(10));
        // Seq 0 is unseen, so seq 1 stays in the store: a duplicate from the entry itself.
        assert_eq!(l.tracked(), 3);
        assert_eq!(l.seen(1, ok(100), 21), Outcome::Duplicate);
        assert_eq!(l.seen(0, ok(100), 22), on_time(12));
        assert_eq!(l.tracked(), 1, "0 and 1 compacted away");
        // Below base now: still a duplicate, even with different contents.
        assert_eq!(l.seen(0, ok(100), 23), Outcome::Duplicate);
        assert_eq!(l.seen(1, ok(7), 24), Outcome::Duplicate);
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.processed, t.duplicates, t.invalid, t.in_flight),
            (2, 3, 0, 1)
        );
    }

    #[test]
    fn seen_before_ack() {
        let mut l = ledger();
        l.sent(0, 100);
        let early = Outcome::Processed {
            late: false,
            ack_to_seen_ms: None,
        };
        assert_eq!(l.seen(0, ok(100), 5), early);
        assert_eq!(l.tracked(), 1, "kept until the delivery report comes");
        assert_eq!(l.totals().at_risk_cents, 0);
        l.acked(0, 10_000);
        l.tick(20_000);
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.acked, t.processed, t.in_flight, t.missing, t.late),
            (1, 1, 0, 0, 0)
        );
        assert_eq!((t.at_risk_cents, t.sla_breaches), (0, 0));
        assert_eq!(l.tracked(), 0);
        assert_eq!(l.seen(0, ok(100), 20_001), Outcome::Duplicate);
    }

    #[test]
    fn failed_then_seen_even_after_compaction() {
        let mut l = ledger();
        for seq in 0..3 {
            l.sent(seq, 1_000 + seq);
        }
        l.failed(0);
        l.failed(1);
        l.acked(1, 5); // a failed order cannot be acked
        assert_eq!(l.totals().rejected, 1);
        l.acked(2, 5);
        l.seen(2, ok(1_002), 6);
        // Both failed orders are parked, the store is empty.
        assert_eq!((l.store.len(), l.failed.len()), (0, 2));
        let t = l.totals();
        assert_eq!((t.failed, t.failed_cents), (2, 2_001));
        let landed = Outcome::Processed {
            late: false,
            ack_to_seen_ms: None,
        };
        assert_eq!(l.seen(1, ok(1_001), 50_000), landed);
        assert_eq!(l.seen(1, ok(1_001), 50_001), Outcome::Duplicate);
        l.tick(60_000);
        l.check_invariants();
        let t = l.totals();
        assert_eq!((t.failed, t.failed_cents, t.processed), (2, 1_000, 2));
        assert_eq!((t.late, t.lost, t.sla_breaches), (0, 0, 0));
        assert_eq!(l.tracked(), 1, "only the failed, unseen order 0 remains");
    }

    #[test]
    fn unexpected_seqs() {
        let mut l = ledger();
        l.sent(0, 100);
        l.sent(3, 100); // 1 and 2 skipped: placeholders while 0 is unsettled
        l.sent(2, 100); // seqs must increase
        l.sent(3, 100); // no resend
        l.acked(2, 1); // never sent
        l.acked(9, 1); // never sent
        assert_eq!(l.totals().rejected, 4);
        assert_eq!(l.seen(2, ok(100), 1), Outcome::Unexpected);
        assert_eq!(l.seen(4, ok(100), 1), Outcome::Unexpected);
        assert_eq!(l.seen(u64::MAX, ok(100), 1), Outcome::Unexpected);
        for seq in [0, 3] {
            l.acked(seq, 2);
            l.seen(seq, ok(100), 3);
        }
        assert_eq!(l.tracked(), 0);
        assert_eq!(l.holes, vec![(1, 3)]);
        assert_eq!(l.seen(1, ok(100), 4), Outcome::Unexpected);
        assert_eq!(l.seen(0, ok(100), 4), Outcome::Duplicate);
        // A gap with an empty store goes straight to the hole ranges.
        l.sent(10, 100);
        assert_eq!(l.holes, vec![(1, 3), (4, 10)]);
        assert_eq!(l.seen(9, ok(100), 5), Outcome::Unexpected);
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.sent, t.unexpected, t.duplicates, t.processed),
            (3, 5, 1, 2)
        );
    }

    #[test]
    fn invalid_value_and_category() {
        let mut l = ledger();
        for seq in 0..4 {
            l.sent(seq, 20_000); // standard
            l.acked(seq, 0);
        }
        let wrong_value = Seen {
            value_cents: 20_001,
            category: Some(Category::Standard),
        };
        let wrong_category = Seen {
            value_cents: 20_000,
            category: Some(Category::Premium),
        };
        let both = Seen {
            value_cents: 5,
            category: Some(Category::Basic), // right for 5 cents, wrong for the real value
        };
        let unreadable = Seen {
            value_cents: 20_000,
            category: None,
        };
        let invalid = |value_ok, category_ok| Outcome::Invalid {
            value_ok,
            category_ok,
        };
        assert_eq!(l.seen(0, wrong_value, 1), invalid(false, true));
        assert_eq!(l.seen(1, wrong_category, 1), invalid(true, false));
        assert_eq!(l.seen(2, both, 1), invalid(false, false));
        assert_eq!(l.seen(2, ok(20_000), 2), Outcome::Duplicate);
        assert_eq!(l.seen(3, unreadable, SLA + 2), invalid(true, false));
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.processed, t.invalid, t.in_flight, t.at_risk_cents),
            (4, 4, 0, 0)
        );
        assert_eq!((t.late, t.delayed_cents), (1, 20_000), "invalid and late");
    }

    #[test]
    fn late_without_tick_is_a_breach_once() {
        let mut l = ledger();
        l.sent(0, 700);
        l.acked(0, 1_000);
        let late = Outcome::Processed {
            late: true,
            ack_to_seen_ms: Some(SLA + 1),
        };
        assert_eq!(l.seen(0, ok(700), 1_000 + SLA + 1), late);
        l.check_invariants();
        let t = l.totals();
        assert_eq!((t.late, t.delayed_cents, t.sla_breaches), (1, 700, 1));
        assert_eq!((t.missing, t.lost, t.processed), (0, 0, 1));
    }

    #[test]
    fn missing_then_lost_via_tick() {
        let mut l = ledger();
        l.sent(0, 300);
        l.sent(1, 400);
        l.acked(0, 0);
        l.acked(1, 500);
        l.tick(SLA); // deadline of 0 reached, not passed
        assert_eq!(l.totals().missing, 0);
        l.tick(SLA + 1);
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.in_flight, t.missing, t.lost, t.sla_breaches),
            (1, 1, 0, 1)
        );
        l.tick(LOST_AFTER); // reached, not passed
        assert_eq!((l.totals().missing, l.totals().lost), (2, 0));
        l.tick(LOST_AFTER + 1);
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.in_flight, t.missing, t.lost, t.lost_cents),
            (0, 1, 1, 300)
        );
        assert_eq!((t.at_risk_cents, t.sla_breaches), (700, 2));
        l.tick(LOST_AFTER + 501);
        let t = l.totals();
        assert_eq!(
            (t.missing, t.lost, t.lost_cents, t.at_risk_cents),
            (0, 2, 700, 700)
        );
        // Lost entries are parked, so they do not hold the store.
        assert_eq!((l.store.len(), l.side.len()), (0, 2));
        l.check_invariants();
    }

    #[test]
    fn one_tick_can_take_an_order_straight_to_lost() {
        let mut l = ledger();
        l.sent(0, 300);
        l.acked(0, 0);
        l.tick(LOST_AFTER + 1);
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.in_flight, t.missing, t.lost, t.sla_breaches),
            (0, 0, 1, 1)
        );
    }

    #[test]
    fn lost_then_seen_counts_as_late() {
        let mut l = ledger();
        l.sent(0, 300);
        l.sent(1, 400);
        l.acked(0, 0);
        l.acked(1, 0);
        l.tick(LOST_AFTER + 1);
        assert_eq!(l.totals().lost, 2);
        let late = Outcome::Processed {
            late: true,
            ack_to_seen_ms: Some(LOST_AFTER + 10),
        };
        assert_eq!(l.seen(1, ok(400), LOST_AFTER + 10), late);
        l.check_invariants();
        let t = l.totals();
        assert_eq!((t.lost, t.lost_cents, t.at_risk_cents), (1, 300, 300));
        assert_eq!((t.late, t.delayed_cents, t.processed), (1, 400, 1));
        assert_eq!(t.sla_breaches, 2, "breached once, when it went missing");
        assert_eq!(l.seen(1, ok(400), LOST_AFTER + 11), Outcome::Duplicate);
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn finalize_loses_everything_unseen() {
        let mut l = ledger();
        for seq in 0..4 {
            l.sent(seq, 100 * (seq + 1));
        }
        l.acked(0, 0); // will be missing
        l.acked(1, SLA); // still in flight
        l.acked(2, SLA); // seen
        l.failed(3);
        l.seen(2, ok(300), SLA + 1);
        l.tick(SLA + 1);
        assert_eq!((l.totals().in_flight, l.totals().missing), (1, 1));
        l.finalize();
        l.check_invariants();
        let t = l.totals();
        assert_eq!(
            (t.in_flight, t.missing, t.lost, t.lost_cents),
            (0, 0, 2, 300)
        );
        assert_eq!(
            (t.at_risk_cents, t.failed_cents, t.sla_breaches),
            (300, 400, 2)
        );
        assert_eq!(l.store.len(), 0, "everything parked or settled");
        assert!(l.in_flight_q.is_empty() && l.missing_q.is_empty());
        // Showing up after the drain deadline is still classified.
        assert!(matches!(
            l.seen(1, ok(200), SLA + 2),
            Outcome::Processed { late: false, .. }
        ));
        l.finalize();
        l.check_invariants();
        assert_eq!((l.totals().lost, l.totals().sla_breaches), (1, 2));
    }

    #[test]
    fn contradictory_reports_change_nothing() {
        let mut l = ledger();
        l.sent(0, 100);
        l.acked(0, 1);
        let before = l.totals();
        l.acked(0, 2);
        l.failed(0);
        l.sent(0, 100);
        l.failed(7);
        let t = l.totals();
        assert_eq!(t.rejected, 4);
        assert_eq!(Totals { rejected: 0, ..t }, before);
        assert_eq!(l.entry_of(0).ack_ms, 1);
        l.check_invariants();
    }

    #[test]
    fn values_beyond_u32_are_exact() {
        let mut l = ledger();
        let big = u64::from(u32::MAX) + 7;
        l.sent(0, big);
        l.sent(1, u64::from(u32::MAX));
        l.sent(2, u64::from(u32::MAX) - 1);
        for seq in 0..3 {
            l.acked(seq, 0);
        }
        // u32::MAX - 1 is reserved too (the failed runs' empty slot).
        assert_eq!(l.big.len(), 3);
        l.check_invariants();
        assert_eq!(l.totals().at_risk_cents, big + 2 * u64::from(u32::MAX) - 1);
        l.tick(LOST_AFTER + 1);
        let late = Outcome::Processed {
            late: true,
            ack_to_seen_ms: Some(LOST_AFTER + 2),
        };
        assert_eq!(l.seen(0, ok(big), LOST_AFTER + 2), late);
        assert_eq!(l.seen(1, ok(u64::from(u32::MAX)), 1), late);
        l.check_invariants();
        assert_eq!(
            l.big.len(),
            1,
            "released with their entries; order 2 is still lost"
        );
        assert_eq!(l.totals().lost_cents, u64::from(u32::MAX) - 1);
    }

    #[test]
    fn an_outage_parks_four_bytes_per_failed_order() {
        let mut l = ledger();
        // Before: one order through. Then a broker outage fails 300,000 orders at the door
        // (two of them worth more than u32 cents), then orders flow again.
        l.sent(0, 100);
        l.acked(0, 1);
        l.seen(0, ok(100), 2);
        let before = l.approx_bytes();
        let big = u64::from(u32::MAX) + 5;
        for seq in 1..=300_000 {
            l.sent(seq, if seq % 100_000 == 0 { big } else { seq });
            l.failed(seq);
        }
        for seq in 300_001..300_100 {
            l.sent(seq, 100);
            l.acked(seq, 10);
            l.seen(seq, ok(100), 11);
        }
        l.check_invariants();
        let t = l.totals();
        let failed_cents = (1..=300_000u64).filter(|s| s % 100_000 != 0).sum::<u64>();
        assert_eq!(l.store.len(), 0);
        assert_eq!((t.failed, l.tracked()), (300_000, 300_000));
        assert_eq!(t.failed_cents, failed_cents + 3 * big);
        let parked = l.approx_bytes() - before;
        assert!(parked <= 300_000 * 4 * 2 + 1_024, "{parked} bytes parked");

        // A produce that timed out but reached the broker shows up: processed, checked
        // against its produced value, and it leaves.
        assert!(matches!(
            l.seen(200_000, ok(big), 12),
            Outcome::Processed { .. }
        ));
        assert!(matches!(
            l.seen(7, ok(8), 12),
            Outcome::Invalid {
                value_ok: false,
                ..
            }
        ));
        assert_eq!(l.seen(7, ok(7), 13), Outcome::Duplicate);
        l.check_invariants();
        assert_eq!(l.totals().failed_cents, failed_cents - 7 + 2 * big);
        assert_eq!(l.tracked(), 299_998);
    }

    #[test]
    fn clock_never_goes_backwards() {
        let mut l = ledger();
        l.sent(0, 100);
        l.sent(1, 100);
        l.acked(0, 10_000);
        l.acked(1, 4_000); // stamped 10_000: the queue stays in ack order
        assert_eq!(l.seen(0, ok(100), 9_000), on_time(0));
        l.tick(10_000 + SLA + 1);
        assert_eq!(l.totals().missing, 1);
        l.check_invariants();
    }

    #[test]
    fn lost_orders_do_not_hold_memory_of_later_ones() {
        let mut l = ledger();
        l.sent(0, 100);
        l.acked(0, 0);
        l.tick(LOST_AFTER + 1);
        for seq in 1..10_000 {
            l.sent(seq, 100);
            l.acked(seq, LOST_AFTER + seq);
            l.seen(seq, ok(100), LOST_AFTER + seq);
        }
        assert_eq!(l.tracked(), 1);
        assert_eq!(l.totals().lost, 1);
    }

    #[test]
    fn compaction_keeps_memory_flat_over_a_million_orders() {
        let mut l = ledger();
        let mut peak_tracked = 0;
        let mut peak_bytes = 0;
        for seq in 0..1_000_000u64 {
            let now = seq / 10;
            l.sent(seq, seq % 200_000);
            // Acks trail the sends by 4 orders and sightings by 6, except every 97th order,
            // seen before its ack; every 50th is seen twice.
            let mut see = |behind: u64, when: fn(u64) -> bool| {
                if let Some(s) = seq.checked_sub(behind).filter(|s| when(*s)) {
                    l.seen(s, ok(s % 200_000), now);
                }
            };
            see(2, |s| s % 97 == 0);
            see(6, |s| s % 97 != 0);
            see(8, |s| s % 50 == 0);
            if let Some(s) = seq.checked_sub(4) {
                l.acked(s, now);
            }
            if seq % 1_000 == 0 {
                l.tick(now);
            }
            peak_tracked = peak_tracked.max(l.tracked());
            peak_bytes = peak_bytes.max(l.approx_bytes());
        }
        l.check_invariants();
        assert!(peak_tracked <= 16, "peak tracked {peak_tracked}");
        assert!(peak_bytes <= 4_096, "peak bytes {peak_bytes}");
        let t = l.totals();
        assert_eq!(t.sent, 1_000_000);
        assert!(t.processed >= 999_990 && t.duplicates > 0);
        assert_eq!((t.late, t.missing, t.unexpected, t.invalid), (0, 0, 0, 0));
    }

    #[test]
    fn backlog_memory_is_returned() {
        let mut l = ledger();
        for seq in 0..100_000 {
            l.sent(seq, 100);
            l.acked(seq, seq);
        }
        let full = l.approx_bytes();
        assert!(full >= 100_000 * 24);
        for seq in 0..100_000 {
            l.seen(seq, ok(100), 100_000);
        }
        assert_eq!(l.tracked(), 0);
        let left = l.approx_bytes();
        assert!(
            left <= SHRINK_MIN_CAPACITY * 24,
            "{left} of {full} bytes left"
        );
    }

    /// A naive model: every order in a HashMap, gauges recomputed by scanning.
    #[derive(Default)]
    struct Model {
        orders: HashMap<u64, ModelOrder>,
        next: u64,
        clock: u64,
        totals: Totals,
    }

    #[derive(Clone, Copy)]
    struct ModelOrder {
        value: u64,
        ack: Option<u64>,
        failed: bool,
        seen: bool,
        missing: bool,
        lost: bool,
    }

    impl Model {
        fn sent(&mut self, seq: u64, value: u64) -> bool {
            if seq < self.next {
                self.totals.rejected += 1;
                return false;
            }
            self.next = seq + 1;
            let o = ModelOrder {
                value,
                ack: None,
                failed: false,
                seen: false,
                missing: false,
                lost: false,
            };
            self.orders.insert(seq, o);
            self.totals.sent += 1;
            true
        }

        fn report(&mut self, seq: u64, ack: Option<u64>) -> bool {
            if let Some(now) = ack {
                self.clock = self.clock.max(now);
            }
            let Some(o) = self
                .orders
                .get_mut(&seq)
                .filter(|o| o.ack.is_none() && !o.failed)
            else {
                self.totals.rejected += 1;
                return false;
            };
            match ack {
                Some(_) => {
                    o.ack = Some(self.clock);
                    self.totals.acked += 1;
                }
                None => {
                    o.failed = true;
                    self.totals.failed += 1;
                }
            }
            true
        }

        fn seen(&mut self, seq: u64, seen: Seen, now: u64) -> Outcome {
            self.clock = self.clock.max(now);
            let t = &mut self.totals;
            let Some(o) = self.orders.get_mut(&seq) else {
                t.unexpected += 1;
                return Outcome::Unexpected;
            };
            if o.seen {
                t.duplicates += 1;
                return Outcome::Duplicate;
            }
            o.seen = true;
            t.processed += 1;
            let late = o.ack.is_some_and(|a| self.clock > a + SLA);
            if late {
                t.late += 1;
                t.delayed_cents += o.value;
                if !o.missing && !o.lost {
                    t.sla_breaches += 1;
                }
            }
            (o.missing, o.lost) = (false, false);
            let ack_to_seen_ms = o.ack.map(|a| self.clock - a);
            let value_ok = seen.value_cents == o.value;
            let category_ok = seen.category == Some(Category::of(o.value));
            if value_ok && category_ok {
                Outcome::Processed {
                    late,
                    ack_to_seen_ms,
                }
            } else {
                t.invalid += 1;
                Outcome::Invalid {
                    value_ok,
                    category_ok,
                }
            }
        }

        fn tick(&mut self, now: u64) {
            self.clock = self.clock.max(now);
            for o in self.orders.values_mut() {
                let Some(ack) = o.ack.filter(|_| !o.seen) else {
                    continue;
                };
                if !o.missing && !o.lost && self.clock > ack + SLA {
                    o.missing = true;
                    self.totals.sla_breaches += 1;
                }
                if o.missing && self.clock > ack + LOST_AFTER {
                    (o.missing, o.lost) = (false, true);
                }
            }
        }

        fn finalize(&mut self) {
            for o in self.orders.values_mut() {
                if o.ack.is_some() && !o.seen && !o.lost {
                    if !o.missing {
                        self.totals.sla_breaches += 1;
                    }
                    (o.missing, o.lost) = (false, true);
                }
            }
        }

        fn totals(&self) -> Totals {
            let mut t = Totals {
                in_flight: 0,
                missing: 0,
                lost: 0,
                at_risk_cents: 0,
                failed_cents: 0,
                lost_cents: 0,
                ..self.totals
            };
            for o in self.orders.values().filter(|o| !o.seen) {
                if o.ack.is_some() {
                    t.at_risk_cents += o.value;
                    match (o.missing, o.lost) {
                        (false, false) => t.in_flight += 1,
                        (true, _) => t.missing += 1,
                        (_, true) => {
                            t.lost += 1;
                            t.lost_cents += o.value;
                        }
                    }
                }
                if o.failed {
                    t.failed_cents += o.value;
                }
            }
            t
        }
    }

    /// xorshift64*: deterministic, good enough to shuffle events.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// What a random run exercised, beyond the totals.
    #[derive(Default)]
    struct Coverage {
        max_parked: usize,
        max_holes: usize,
        compacted_duplicates: u64,
        parked_sightings: u64,
        seen_before_ack: u64,
    }

    fn random_run(seed: u64, steps: u32, check_every: u32) -> Coverage {
        let mut rng = Rng(seed);
        let mut l = ledger();
        let mut m = Model::default();
        let mut cov = Coverage::default();
        let mut now = 0u64;
        // Orders waiting for their delivery report, and orders Flink will still emit, oldest
        // first; both are served out of order within a small window.
        let mut unreported: VecDeque<u64> = VecDeque::new();
        let mut unseen: VecDeque<u64> = VecDeque::new();
        let near_front = |rng: &mut Rng, q: &mut VecDeque<u64>| {
            let window = q.len().min(8) as u64;
            (window > 0).then(|| q.remove(rng.below(window) as usize).unwrap())
        };
        for step in 0..steps {
            // Near the head, anywhere so far, or beyond what was sent: mostly duplicates,
            // unexpected seqs and contradictory reports.
            let stray = |rng: &mut Rng, next: u64| match rng.below(10) {
                0..=6 => next.saturating_sub(1 + rng.below(40)),
                7 | 8 => rng.below(next + 1),
                _ => next + rng.below(3),
            };
            match rng.below(100) {
                0..=19 => {
                    let seq = match rng.below(20) {
                        0 => m.next + 1 + rng.below(3),           // gap
                        1 => m.next.saturating_sub(rng.below(3)), // repeat or older
                        _ => m.next,
                    };
                    let value = match rng.below(20) {
                        0 => [10_000, 10_001, 100_000, 100_001][rng.below(4) as usize],
                        1 => u64::from(u32::MAX) - 1 + rng.below(3),
                        2 => u64::from(u32::MAX) + rng.below(1 << 40),
                        _ => rng.below(300_000),
                    };
                    // Rejections are compared through `Totals::rejected`.
                    l.sent(seq, value);
                    if m.sent(seq, value) {
                        unreported.push_back(seq);
                        // One order in ten is never emitted by Flink.
                        if rng.below(10) != 0 {
                            unseen.push_back(seq);
                        }
                    }
                }
                20..=39 => {
                    let Some(seq) = near_front(&mut rng, &mut unreported) else {
                        continue;
                    };
                    // A stray report may have come first: then both reject this one.
                    if rng.below(10) == 0 {
                        l.failed(seq);
                        m.report(seq, None);
                    } else {
                        l.acked(seq, now);
                        m.report(seq, Some(now));
                    }
                }
                40..=43 => {
                    let seq = stray(&mut rng, m.next);
                    if rng.below(2) == 0 {
                        l.failed(seq);
                        m.report(seq, None);
                    } else {
                        l.acked(seq, now);
                        m.report(seq, Some(now));
                    }
                }
                44..=79 => {
                    let seq = if rng.below(10) < 7 {
                        let Some(seq) = near_front(&mut rng, &mut unseen) else {
                            continue;
                        };
                        seq
                    } else {
                        stray(&mut rng, m.next)
                    };
                    let real = m.orders.get(&seq).map_or(rng.below(300_000), |o| o.value);
                    let seen = match rng.below(20) {
                        0 => Seen {
                            value_cents: real + 1,
                            category: Some(Category::of(real)),
                        },
                        1 => Seen {
                            value_cents: real,
                            category: Some(Category::of(rng.below(300_000))),
                        },
                        2 => Seen {
                            value_cents: real,
                            category: None,
                        },
                        _ => ok(real),
                    };
                    let before = (seq < l.base, l.is_parked(seq));
                    let first = m.orders.get(&seq).is_some_and(|o| !o.seen);
                    if first && m.orders[&seq].ack.is_none() {
                        cov.seen_before_ack += 1;
                    }
                    let outcome = l.seen(seq, seen, now);
                    assert_eq!(outcome, m.seen(seq, seen, now), "seen {seq}");
                    match before {
                        (true, true) => cov.parked_sightings += 1,
                        (true, false) if outcome == Outcome::Duplicate => {
                            cov.compacted_duplicates += 1;
                        }
                        _ => {}
                    }
                }
                80..=89 => {
                    // Coarse steps land exactly on deadlines.
                    now += match rng.below(2) {
                        0 => rng.below(3) * SLA / 4,
                        _ => rng.below(SLA / 2),
                    };
                    if rng.below(20) == 0 {
                        now = now.saturating_sub(rng.below(SLA)); // a clock step back
                    }
                }
                90..=98 => {
                    l.tick(now);
                    m.tick(now);
                }
                _ => {
                    if rng.below(20) == 0 {
                        l.finalize();
                        m.finalize();
                    }
                }
            }
            cov.max_parked = cov.max_parked.max(l.side.len() + l.failed.len());
            cov.max_holes = cov.max_holes.max(l.holes.len());
            if step % check_every == 0 || step + 1 == steps {
                assert_eq!(l.totals(), m.totals(), "seed {seed} step {step}");
                l.check_invariants();
            }
        }
        let t = l.totals();
        // Every path was taken.
        assert!(t.duplicates > 0 && t.unexpected > 0 && t.invalid > 0 && t.late > 0);
        assert!(t.lost > 0 && t.failed > 0 && t.sla_breaches > t.late);
        assert!(l.store.len() < 200, "compaction kept up: {}", l.store.len());
        cov
    }

    #[test]
    fn randomized_against_naive_model() {
        let mut total = Coverage::default();
        for seed in 1..=8u64 {
            let cov = random_run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 4_000, 1);
            total.max_parked = total.max_parked.max(cov.max_parked);
            total.max_holes = total.max_holes.max(cov.max_holes);
            total.compacted_duplicates += cov.compacted_duplicates;
            total.parked_sightings += cov.parked_sightings;
            total.seen_before_ack += cov.seen_before_ack;
        }
        assert!(total.max_parked > 10 && total.max_holes > 1);
        assert!(total.compacted_duplicates > 100 && total.parked_sightings > 10);
        assert!(total.seen_before_ack > 10);
    }
}
