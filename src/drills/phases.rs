//! Pure recovery-phase detection: turns one observation per second (audit totals, Flink job
//! state, lag) into the drill's phase timestamps and timeline samples.
//!
//! Rules (documented in the report schema too):
//! - degradation detected: first observation after the injection where processed throughput
//!   is below half the baseline for two observations in a row, or the job is not RUNNING;
//! - job running again: first observation RUNNING after the job was seen not RUNNING, stamped
//!   with the time Flink says the job entered RUNNING (the observation's time if unknown);
//! - first output: the first observation after the output had stalled (below 10% of the
//!   baseline rate) whose output is no longer stalled: output resuming after the outage,
//!   not records still in flight from before it (after a JobManager kill the TaskManagers
//!   keep writing for a while);
//! - downtime: the time output was stalled (below 10% of the baseline rate) between the
//!   injection and recovery, summed over observations;
//! - recovered: after the revert, throughput >= 90% of baseline and in-flight orders back to
//!   the baseline level (twice the baseline in-flight, at least two seconds of orders), for
//!   three observations in a row; the phase is stamped at the first of the three.
//!
//! Throughput and in-flight orders in these rules are measured over the last `rate_window`
//! observations (one by default: the second since the previous one): throughput as the rate
//! over them, in-flight orders as the lowest of them. An engine that writes in steps, as
//! Spark's micro-batches every 2-3 s, needs a window spanning a few steps: else every pause
//! between two batches reads as a stall, and every batch interval's worth of orders waiting
//! for the next batch as a backlog (its in-flight orders are a sawtooth, whose floor is the
//! backlog). The timeline's samples keep the per-second rate and each second's in-flight.
//!
//! - the baseline: the observations before the injection (rate from the first to the last,
//!   in-flight orders averaged); fixed at the injection.
//!
//! When output stopped, resumed and caught up in Flink's own time is read from the output
//! timeline (`audit::output`), not from these samples; the samples give the live view, the
//! recovery the runner waits for, and the throughput figures.
//!
//! No I/O, no clocks.

use super::report::{self, Sample};

/// Consecutive observations below half the baseline that count as degradation.
const DEGRADED_STREAK: u32 = 2;
/// Consecutive healthy observations that count as recovery.
const RECOVERED_STREAK: u32 = 3;

/// What the runner observed at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When, unix ms.
    pub at_ms: i64,
    /// Orders processed so far (first sightings; cumulative).
    pub processed: u64,
    /// Acked orders not yet seen (in flight + missing + lost).
    pub unseen: u64,
    /// Revenue at risk, cents.
    pub at_risk_cents: u64,
    /// Lag of the pipeline's group, messages, when known.
    pub lag_messages: Option<i64>,
    /// Whether the watched Flink job is RUNNING.
    pub job_running: bool,
    /// When, by Flink's REST API, the job last entered RUNNING (if it is running).
    pub job_running_since_ms: Option<i64>,
    /// Whether Flink answered (when not, `job_running` is false for want of an answer).
    pub flink_reachable: bool,
}

/// Phase timestamps found so far (unix ms).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phases {
    /// Degradation detected.
    pub degraded_at: Option<i64>,
    /// Job RUNNING again after being seen down.
    pub job_running_at: Option<i64>,
    /// First new output after the degradation.
    pub first_output_at: Option<i64>,
    /// Recovered (see the module docs).
    pub recovered_at: Option<i64>,
}

/// Baseline levels the detection compares with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    /// Processed orders per second.
    pub orders_per_s: f64,
    /// Acked-but-unseen orders, average.
    pub unseen: f64,
}

/// Consumes observations; see the module docs.
#[derive(Debug)]
pub struct Tracker {
    baseline: Levels,
    /// The first observation of the baseline, and the in-flight orders summed over it.
    baseline_first: Option<Observation>,
    baseline_unseen: (f64, u32),
    prev: Option<Observation>,
    samples: Vec<Sample>,
    phases: Phases,
    injected: bool,
    /// When the fault was reverted, unix ms.
    reverted_at: Option<i64>,
    job_was_down: bool,
    low_streak: u32,
    good_streak: u32,
    good_since: Option<i64>,
    peak_at_risk_cents: u64,
    stalled_ms: i64,
    /// The output stalled at least once since the injection.
    stalled_seen: bool,
    /// Observations the throughput of the rules is measured over.
    rate_window: usize,
    /// The last `rate_window` observations before the newest: (at_ms, processed).
    recent: std::collections::VecDeque<(i64, u64)>,
    /// The in-flight orders of the last `rate_window` observations, the newest included.
    recent_unseen: std::collections::VecDeque<u64>,
}

/// Below this fraction of the baseline rate the output counts as stalled.
const STALLED: f64 = 0.1;

impl Tracker {
    /// A tracker comparing with `baseline`.
    pub fn new(baseline: Levels) -> Tracker {
        Tracker {
            baseline,
            baseline_first: None,
            baseline_unseen: (0.0, 0),
            prev: None,
            samples: Vec::new(),
            phases: Phases::default(),
            injected: false,
            reverted_at: None,
            job_was_down: false,
            low_streak: 0,
            good_streak: 0,
            good_since: None,
            peak_at_risk_cents: 0,
            stalled_ms: 0,
            stalled_seen: false,
            rate_window: 1,
            recent: std::collections::VecDeque::new(),
            recent_unseen: std::collections::VecDeque::new(),
        }
    }

    /// Measures the rules' throughput over the last `observations` (at least one).
    pub fn with_rate_window(mut self, observations: usize) -> Tracker {
        self.rate_window = observations.max(1);
        self
    }

    /// Time output was stalled since the injection (until recovery), seconds.
    pub fn stalled_s(&self) -> f64 {
        self.stalled_ms as f64 / 1000.0
    }

    /// A tracker that measures its baseline from the observations before
    /// [`Tracker::injected`].
    pub fn measuring() -> Tracker {
        Tracker::new(Levels {
            orders_per_s: 0.0,
            unseen: 0.0,
        })
    }

    /// From now on observations are after the injection; fixes and returns the baseline
    /// measured so far (see the module docs).
    pub fn injected(&mut self) -> Levels {
        if let (Some(first), Some(last)) = (&self.baseline_first, &self.prev) {
            let seconds = ((last.at_ms - first.at_ms).max(1) as f64) / 1000.0;
            let (sum, n) = self.baseline_unseen;
            self.baseline = Levels {
                orders_per_s: last.processed.saturating_sub(first.processed) as f64 / seconds,
                unseen: if n > 0 { sum / f64::from(n) } else { 0.0 },
            };
        }
        self.injected = true;
        self.baseline
    }

    /// The baseline levels compared with.
    pub fn baseline(&self) -> Levels {
        self.baseline
    }

    /// Records a sample that could not be taken at `at_ms`, and why: it stands in the
    /// timeline, and no figure uses it (the next observation's rate covers its interval).
    pub fn missed(&mut self, at_ms: i64, why: String) {
        let last = self.samples.last();
        self.samples.push(Sample {
            at_ms,
            processed_per_s: 0.0,
            lag_messages: None,
            revenue_at_risk_dollars: last.map_or(0.0, |s| s.revenue_at_risk_dollars),
            in_flight: last.map_or(0, |s| s.in_flight),
            job_running: None,
            missed: Some(why),
        });
    }

    /// The fault was reverted at `at_ms`: observations from then on count towards recovery
    /// (an observation taken while the revert was still running does not).
    pub fn reverted(&mut self, at_ms: i64) {
        self.reverted_at = Some(at_ms);
    }

    /// Phases found so far.
    pub fn phases(&self) -> &Phases {
        &self.phases
    }

    /// Timeline samples so far.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Highest revenue at risk observed, cents.
    pub fn peak_at_risk_cents(&self) -> u64 {
        self.peak_at_risk_cents
    }

    /// Mean processed orders/s over the samples within `[from_ms, to_ms]`.
    pub fn mean_rate(&self, from_ms: i64, to_ms: i64) -> Option<f64> {
        let rates: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.missed.is_none() && s.at_ms >= from_ms && s.at_ms <= to_ms)
            .map(|s| s.processed_per_s)
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    }

    /// [`report::degradation`] of the samples in `(from_ms, to_ms]` against the baseline.
    pub fn impact(&self, from_ms: i64, to_ms: i64) -> Option<(f64, f64)> {
        report::degradation(&self.samples, self.baseline.orders_per_s, from_ms, to_ms)
    }

    /// Feeds one observation.
    pub fn observe(&mut self, obs: Observation) {
        self.peak_at_risk_cents = self.peak_at_risk_cents.max(obs.at_risk_cents);
        if !self.injected {
            self.baseline_first.get_or_insert_with(|| obs.clone());
            self.baseline_unseen.0 += obs.unseen as f64;
            self.baseline_unseen.1 += 1;
        }
        self.recent_unseen.push_back(obs.unseen);
        if self.recent_unseen.len() > self.rate_window {
            self.recent_unseen.pop_front();
        }
        let Some(prev) = self.prev.replace(obs.clone()) else {
            return;
        };
        let dt = (obs.at_ms - prev.at_ms).max(1) as f64 / 1000.0;
        let new_output = obs.processed.saturating_sub(prev.processed);
        let per_second = new_output as f64 / dt;
        self.recent.push_back((prev.at_ms, prev.processed));
        if self.recent.len() > self.rate_window {
            self.recent.pop_front();
        }
        let (since_ms, since) = self.recent.front().copied().expect("just pushed");
        let rate = obs.processed.saturating_sub(since) as f64
            / ((obs.at_ms - since_ms).max(1) as f64 / 1000.0);
        self.samples.push(Sample {
            at_ms: obs.at_ms,
            processed_per_s: per_second,
            lag_messages: obs.lag_messages,
            revenue_at_risk_dollars: obs.at_risk_cents as f64 / 100.0,
            in_flight: obs.unseen,
            job_running: obs.flink_reachable.then_some(obs.job_running),
            missed: None,
        });
        if !self.injected {
            return;
        }
        let stalled = rate < self.baseline.orders_per_s * STALLED;
        if self.phases.recovered_at.is_none() && stalled {
            self.stalled_ms += obs.at_ms - prev.at_ms;
        }
        if stalled {
            self.stalled_seen = true;
        } else if self.stalled_seen && self.phases.first_output_at.is_none() && new_output > 0 {
            self.phases.first_output_at = Some(obs.at_ms);
        }
        let p = &mut self.phases;
        if !obs.job_running {
            self.job_was_down = true;
        } else if self.job_was_down && p.job_running_at.is_none() {
            // Flink's own timestamp: observations come once a second, and later still when
            // the JobManager is slow to answer while it recovers.
            p.job_running_at = Some(obs.job_running_since_ms.unwrap_or(obs.at_ms));
        }
        if p.degraded_at.is_none() {
            self.low_streak = if rate < self.baseline.orders_per_s * 0.5 {
                self.low_streak + 1
            } else {
                0
            };
            if !obs.job_running || self.low_streak >= DEGRADED_STREAK {
                p.degraded_at = Some(obs.at_ms);
            }
        }
        let after_revert = self.reverted_at.is_some_and(|r| obs.at_ms >= r);
        if after_revert && p.recovered_at.is_none() {
            let floor = self
                .recent_unseen
                .iter()
                .min()
                .copied()
                .unwrap_or(obs.unseen);
            let unseen_ok = (floor as f64)
                <= (self.baseline.unseen * 2.0).max(self.baseline.orders_per_s * 2.0);
            let healthy = obs.job_running && rate >= self.baseline.orders_per_s * 0.9 && unseen_ok;
            if healthy {
                self.good_streak += 1;
                self.good_since.get_or_insert(obs.at_ms);
            } else {
                self.good_streak = 0;
                self.good_since = None;
            }
            if self.good_streak >= RECOVERED_STREAK {
                p.recovered_at = self.good_since;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(t: i64, processed: u64, unseen: u64, running: bool) -> Observation {
        Observation {
            at_ms: t * 1000,
            processed,
            unseen,
            at_risk_cents: unseen * 100,
            lag_messages: None,
            job_running: running,
            job_running_since_ms: None,
            flink_reachable: true,
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(Levels {
            orders_per_s: 10.0,
            unseen: 2.0,
        })
    }

    #[test]
    fn a_taskmanager_kill_timeline() {
        let mut t = tracker();
        // Baseline: 10/s.
        for s in 0..5 {
            t.observe(obs(s, s as u64 * 10, 2, true));
        }
        t.injected();
        // Output stops while the job restarts; the job goes RESTARTING at 7.
        t.observe(obs(5, 42, 10, true));
        assert_eq!(t.phases().degraded_at, None, "one low observation is noise");
        t.observe(obs(6, 42, 20, true));
        assert_eq!(t.phases().degraded_at, Some(6_000), "two low observations");
        t.observe(obs(7, 42, 30, false));
        t.reverted(7_500);
        t.observe(obs(8, 42, 40, false));
        t.observe(obs(9, 52, 40, true));
        assert_eq!(t.phases().job_running_at, Some(9_000));
        assert_eq!(t.phases().first_output_at, Some(9_000));
        // Catch-up: high throughput, backlog draining, then steady again.
        t.observe(obs(10, 92, 30, true)); // backlog still above two seconds of orders
        t.observe(obs(11, 107, 3, true));
        t.observe(obs(12, 117, 2, true));
        assert_eq!(
            t.phases().recovered_at,
            None,
            "needs three healthy in a row"
        );
        t.observe(obs(13, 127, 2, true));
        assert_eq!(t.phases().recovered_at, Some(11_000));
        // Stalled at 6, 7, 8 s (0 orders/s); 2 orders/s at 5 s is above 10% of baseline.
        assert_eq!(t.stalled_s(), 3.0);
        assert_eq!(t.peak_at_risk_cents(), 4_000);
        assert_eq!(t.mean_rate(1_000, 4_000), Some(10.0));
        // Injection (4 s) -> recovered (11 s): shortfalls 8 + 10 + 10 + 10 of the 70 orders
        // the baseline would have processed; the catch-up at 10 and 11 s offsets nothing.
        // (The mean rate over the window, 9.6/s, would read as a 4 % degradation.)
        let (lost, worst) = t.impact(4_000, 11_000).unwrap();
        assert!((lost - 38.0 / 70.0 * 100.0).abs() < 1e-9, "{lost}");
        assert_eq!(worst, 100.0);
        assert_eq!(t.impact(20_000, 30_000), None);
    }

    #[test]
    fn first_output_is_output_resuming_after_the_stall_not_records_in_flight() {
        // A JobManager kill: the TaskManagers keep writing for a while, then output stops
        // until the job is back.
        let mut t = tracker();
        for s in 0..3 {
            t.observe(obs(s, s as u64 * 10, 2, true));
        }
        t.injected();
        t.observe(obs(3, 30, 5, false)); // degraded: the job is not RUNNING
        t.observe(obs(4, 38, 8, false)); // orphaned TaskManagers still write 8/s
        assert_eq!(t.phases().first_output_at, None, "not after an outage yet");
        t.observe(obs(5, 38, 18, false));
        t.observe(obs(6, 38, 28, false));
        t.observe(obs(7, 38, 37, false));
        assert_eq!(t.phases().first_output_at, None);
        t.observe(obs(8, 60, 20, true));
        assert_eq!(t.phases().first_output_at, Some(8_000));
        assert_eq!(t.phases().degraded_at, Some(3_000));
    }

    #[test]
    fn no_degradation_means_no_downtime_phases() {
        let mut t = tracker();
        t.observe(obs(0, 0, 2, true));
        t.injected();
        for s in 1..6 {
            t.observe(obs(s, s as u64 * 10, 2, true));
        }
        t.reverted(6_000);
        for s in 6..10 {
            t.observe(obs(s, s as u64 * 10, 2, true));
        }
        let p = t.phases();
        assert_eq!(
            (p.degraded_at, p.first_output_at, p.job_running_at),
            (None, None, None)
        );
        assert_eq!(p.recovered_at, Some(6_000));
        assert_eq!(t.stalled_s(), 0.0);
    }

    #[test]
    fn output_in_steps_is_not_a_stall_over_a_window_that_spans_them() {
        // 10 orders/s written as 30 every third second (micro-batches), before and after
        // a revert at 4 s: per second that is 0, 0, 30, which never recovers.
        let steps = |window| {
            let mut t = Tracker::measuring().with_rate_window(window);
            let at = |s: u64| obs(s as i64, s / 3 * 30, 10, true);
            for s in 0..=9 {
                t.observe(at(s));
            }
            assert_eq!(t.injected().orders_per_s, 10.0);
            t.reverted(12_000);
            for s in 10..30 {
                t.observe(at(s));
            }
            t
        };
        assert_eq!(steps(1).phases().recovered_at, None);
        assert!(
            steps(1).phases().degraded_at.is_some(),
            "0, 0 reads as degraded"
        );
        let t = steps(3);
        assert_eq!(t.phases().degraded_at, None);
        assert_eq!(t.phases().recovered_at, Some(12_000));
        assert_eq!(t.stalled_s(), 0.0);
        // The timeline keeps what each second saw.
        assert_eq!(t.samples()[2].processed_per_s, 30.0);
        assert_eq!(t.samples()[3].processed_per_s, 0.0);
    }

    #[test]
    fn in_flight_orders_in_steps_are_judged_by_their_floor_over_the_window() {
        // After a revert at 10 s, 10 orders/s come out as 30 every third second; between two
        // batches the orders wait: in flight 20, 30, then 0 when the batch is out. The
        // baseline's mean in-flight is 2 and its rate 10/s, so more than 20 in flight is a
        // backlog; the floor over three seconds, 0, is none.
        // (Processed so far, in flight) at each second after the revert, to 29 s.
        let recovered = |after: fn(u64) -> (u64, u64)| {
            let mut t = Tracker::measuring().with_rate_window(3);
            for s in 0..=9 {
                t.observe(obs(s, s as u64 * 10, 2, true));
            }
            t.injected();
            t.reverted(10_000);
            for s in 10..30 {
                let (processed, unseen) = after(s);
                t.observe(obs(s as i64, processed, unseen, true));
            }
            t.phases().recovered_at
        };
        // Second by second, every third observation's 30 in flight would break each streak
        // of three, and it would never recover.
        assert_eq!(
            recovered(|s| (90 + (s - 9) / 3 * 30, [20, 30, 0][(s % 3) as usize])),
            Some(12_000)
        );
        // A backlog that never drains is no sawtooth: its floor stays high.
        assert_eq!(
            recovered(|s| (90 + (s - 9) * 10, 60 + [0, 10, 5][(s % 3) as usize])),
            None
        );
    }

    #[test]
    fn a_growing_backlog_is_not_recovered_even_at_full_throughput() {
        let mut t = tracker();
        t.observe(obs(0, 0, 2, true));
        t.injected();
        t.reverted(1_000);
        for s in 1..10 {
            t.observe(obs(s, s as u64 * 10, 500, true));
        }
        assert_eq!(t.phases().recovered_at, None);
    }

    #[test]
    fn job_running_again_is_stamped_with_flinks_own_time() {
        let mut t = tracker();
        t.observe(obs(0, 0, 2, true));
        t.injected();
        t.observe(obs(1, 10, 2, false));
        // Seen at 9 s, but Flink says the job has been RUNNING since 6.5 s.
        t.observe(Observation {
            job_running_since_ms: Some(6_500),
            ..obs(9, 20, 2, true)
        });
        assert_eq!(t.phases().job_running_at, Some(6_500));
    }

    #[test]
    fn observations_taken_before_the_revert_finished_do_not_count_as_recovered() {
        let mut t = tracker();
        t.observe(obs(0, 0, 2, true));
        t.injected();
        // The revert (a restart) ran from 3 s to 9.5 s; the runner gets the snapshot of 9 s
        // only once it returned.
        t.reverted(9_500);
        for s in 9..13 {
            t.observe(obs(s, s as u64 * 10, 2, true));
        }
        assert_eq!(t.phases().recovered_at, Some(10_000));
    }
}
