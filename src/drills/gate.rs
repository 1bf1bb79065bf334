//! The steady-state gate: a drill starts only from the state a drill should start from, so
//! that two drills in a row measure the same thing. It waits (up to a timeout) until, for a
//! whole window:
//! - the Flink job runs, and has run long enough for its restart backoff to have reset
//!   (Flink's `reset-backoff-threshold`), so the fault meets the job's initial restart delay,
//!   not the lengthened one left by the previous drill;
//! - no acked order is missing (past the SLA) and none was newly lost;
//! - the pipeline keeps up: output at no less than half the generator's rate, the pipeline
//!   group's lag known and (where its age is known) within `max_lag`, and end-to-end latency
//!   p99 within `max_latency` (a pipeline still catching up from the previous drill is not in
//!   its steady state).
//!
//! Pure: fed one [`Look`] per audit snapshot; the runner does the waiting.

use std::{collections::VecDeque, time::Duration};

use serde::{Deserialize, Serialize};

use crate::flink::rest::RestartStrategy;

/// The gate's settings (from `[drills]`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long every condition must hold.
    pub window: Duration,
    /// How long to wait for that before refusing.
    pub timeout: Duration,
    /// Highest lag age of the pipeline's group.
    pub max_lag: Duration,
    /// Highest end-to-end latency p99.
    pub max_latency: Duration,
}

/// The Flink job as one look saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// RUNNING, since (Flink's timestamp) when known.
    Running { since_ms: Option<i64> },
    /// Another state.
    Other(String),
    /// Flink answered, but runs no such job.
    Missing,
    /// Flink did not answer.
    Unreachable,
}

/// The pipeline at one moment.
#[derive(Debug, Clone)]
pub struct Look {
    /// When, unix ms.
    pub at_ms: i64,
    /// Orders processed so far (cumulative).
    pub processed: u64,
    /// Orders missing now.
    pub missing: u64,
    /// Orders lost so far (cumulative).
    pub lost: u64,
    /// The job.
    pub job: Job,
    /// The pipeline group's lag, messages (`None`: unknown).
    pub lag_messages: Option<i64>,
    /// Its age, seconds (`None`: unknown).
    pub lag_s: Option<f64>,
    /// End-to-end latency of recent orders, median and p99, seconds.
    pub latency_p50_s: Option<f64>,
    /// See `latency_p50_s`.
    pub latency_p99_s: Option<f64>,
    /// The restart strategy in force, once read.
    pub restart: Option<RestartStrategy>,
}

/// What the gate saw when it opened: recorded in the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Readings {
    /// How long the gate waited for the steady state, seconds.
    pub waited_s: f64,
    /// Output over the window, orders/s.
    pub throughput_orders_per_s: f64,
    /// The pipeline group's lag, messages.
    pub lag_messages: Option<i64>,
    /// Its age, seconds.
    pub lag_s: Option<f64>,
    /// End-to-end latency of recent orders, median, seconds.
    pub latency_p50_s: Option<f64>,
    /// The same, 99th percentile, seconds.
    pub latency_p99_s: Option<f64>,
    /// How long the job had been RUNNING, seconds (`None`: Flink gave no time).
    pub job_running_for_s: Option<f64>,
    /// The restart strategy in force (`None`: Flink's configuration could not be read).
    pub restart_strategy: Option<RestartStrategy>,
    /// Whether the job had run past the strategy's backoff reset threshold. `None` when the
    /// strategy has none, or its threshold is longer than the gate waits (Flink's default,
    /// 1 h): then the gate does not wait for it, and says so here.
    pub backoff_reset: Option<bool>,
}

/// What the gate says after a look.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Steady for the whole window: start.
    Open(Readings),
    /// Not (yet) steady, and why.
    Wait(String),
    /// Not steady within the timeout, and why (the last reason).
    Refuse(String),
}

/// See the module docs.
#[derive(Debug)]
pub struct Gate {
    settings: Settings,
    rate: u32,
    began_ms: i64,
    /// Looks since the steady state began (the newest last).
    steady: VecDeque<Look>,
}

impl Gate {
    /// A gate for a generator at `rate` orders/s, waiting from `began_ms` on.
    pub fn new(settings: Settings, rate: u32, began_ms: i64) -> Gate {
        Gate {
            settings,
            rate,
            began_ms,
            steady: VecDeque::new(),
        }
    }

    /// Feeds one look.
    pub fn observe(&mut self, look: Look) -> Verdict {
        let waited_ms = look.at_ms - self.began_ms;
        let verdict = match self.unsteady(&look) {
            Some(why) => {
                self.steady.clear();
                Verdict::Wait(why)
            }
            None => {
                self.steady.push_back(look);
                self.window_verdict()
            }
        };
        match verdict {
            Verdict::Wait(why) if waited_ms >= self.settings.timeout.as_millis() as i64 => {
                Verdict::Refuse(format!(
                    "not steady after {}: {why}",
                    humantime::format_duration(Duration::from_secs((waited_ms / 1000) as u64))
                ))
            }
            verdict => verdict,
        }
    }

    /// Why `look` alone is not steady, if it is not.
    fn unsteady(&self, look: &Look) -> Option<String> {
        let since_ms = match &look.job {
            Job::Running { since_ms } => *since_ms,
            Job::Other(state) => return Some(format!("the Flink job is {state}")),
            Job::Missing => return Some("there is no Flink job".into()),
            Job::Unreachable => return Some("Flink is not reachable".into()),
        };
        if let (Some(since), Some(threshold)) = (since_ms, self.reset_threshold(look)) {
            let running_s = (look.at_ms - since).max(0) as f64 / 1000.0;
            if running_s < threshold {
                return Some(format!(
                    "the Flink job has run {running_s:.0} s since its last restart; its \
                     restart backoff resets after {threshold:.0} s"
                ));
            }
        }
        if look.missing > 0 {
            return Some(format!(
                "{} orders are missing (past the SLA)",
                look.missing
            ));
        }
        if let Some(first) = self.steady.front() {
            if look.lost > first.lost {
                return Some(format!("{} orders newly lost", look.lost - first.lost));
            }
        }
        if look.lag_messages.is_none() {
            return Some("the lag of the pipeline's consumer group is unknown".into());
        }
        if let Some(lag) = look
            .lag_s
            .filter(|l| *l > self.settings.max_lag.as_secs_f64())
        {
            return Some(format!(
                "the pipeline's consumer group lags {lag:.1} s ({} orders), above {}",
                look.lag_messages.unwrap_or_default(),
                humantime::format_duration(self.settings.max_lag)
            ));
        }
        if let Some(p99) = look
            .latency_p99_s
            .filter(|l| *l > self.settings.max_latency.as_secs_f64())
        {
            return Some(format!(
                "end-to-end latency p99 is {p99:.1} s, above {} (still catching up)",
                humantime::format_duration(self.settings.max_latency)
            ));
        }
        None
    }

    /// The backoff reset threshold the gate waits for, seconds: `None` when the strategy
    /// has none or it is longer than the gate's timeout.
    fn reset_threshold(&self, look: &Look) -> Option<f64> {
        look.restart
            .as_ref()?
            .reset_backoff_threshold_s
            .filter(|t| *t <= self.settings.timeout.as_secs_f64())
    }

    fn window_verdict(&mut self) -> Verdict {
        let (first, last) = match (self.steady.front(), self.steady.back()) {
            (Some(first), Some(last)) => (first, last),
            _ => return Verdict::Wait("no look yet".into()),
        };
        let span_ms = last.at_ms - first.at_ms;
        if span_ms < self.settings.window.as_millis() as i64 {
            return Verdict::Wait(format!(
                "steady for {:.0} s of {}",
                span_ms as f64 / 1000.0,
                humantime::format_duration(self.settings.window)
            ));
        }
        let throughput =
            last.processed.saturating_sub(first.processed) as f64 / (span_ms as f64 / 1000.0);
        if throughput < f64::from(self.rate) * 0.5 {
            let why = format!(
                "processed {throughput:.1} orders/s, below half the generator's {}/s",
                self.rate
            );
            // Start the window again from the newest look.
            while self.steady.len() > 1 {
                self.steady.pop_front();
            }
            return Verdict::Wait(why);
        }
        let since_ms = match last.job {
            Job::Running { since_ms } => since_ms,
            _ => None,
        };
        Verdict::Open(Readings {
            waited_s: (last.at_ms - self.began_ms).max(0) as f64 / 1000.0,
            throughput_orders_per_s: throughput,
            lag_messages: last.lag_messages,
            lag_s: last.lag_s,
            latency_p50_s: last.latency_p50_s,
            latency_p99_s: last.latency_p99_s,
            job_running_for_s: since_ms.map(|s| (last.at_ms - s).max(0) as f64 / 1000.0),
            restart_strategy: last.restart.clone(),
            backoff_reset: match (since_ms, self.reset_threshold(last)) {
                (Some(since), Some(t)) => Some((last.at_ms - since) as f64 / 1000.0 >= t),
                _ => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            window: Duration::from_secs(5),
            timeout: Duration::from_secs(120),
            max_lag: Duration::from_secs(30),
            max_latency: Duration::from_secs(5),
        }
    }

    fn strategy(reset_s: f64) -> RestartStrategy {
        RestartStrategy {
            kind: "exponential-delay".into(),
            reset_backoff_threshold_s: Some(reset_s),
            initial_backoff_s: Some(1.0),
            max_backoff_s: Some(10.0),
        }
    }

    /// A steady pipeline at 10 orders/s, `t` seconds in, its job RUNNING since 0.
    fn look(t: i64) -> Look {
        Look {
            at_ms: t * 1000,
            processed: t as u64 * 10,
            missing: 0,
            lost: 0,
            job: Job::Running { since_ms: Some(0) },
            lag_messages: Some(5),
            lag_s: Some(2.0),
            latency_p50_s: Some(0.4),
            latency_p99_s: Some(0.9),
            restart: Some(strategy(60.0)),
        }
    }

    fn run(gate: &mut Gate, looks: impl IntoIterator<Item = Look>) -> Verdict {
        let mut last = Verdict::Wait("nothing".into());
        for l in looks {
            last = gate.observe(l);
            if !matches!(last, Verdict::Wait(_)) {
                break;
            }
        }
        last
    }

    #[test]
    fn a_steady_pipeline_opens_after_the_window_with_its_readings() {
        let mut gate = Gate::new(settings(), 10, 100_000);
        let verdict = run(&mut gate, (100..120).map(look));
        let Verdict::Open(r) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(r.waited_s, 5.0);
        assert_eq!(r.throughput_orders_per_s, 10.0);
        assert_eq!(r.job_running_for_s, Some(105.0));
        assert_eq!(r.backoff_reset, Some(true));
        assert_eq!(r.latency_p99_s, Some(0.9));
    }

    #[test]
    fn it_waits_for_the_catch_up_of_the_previous_drill_instead_of_refusing() {
        // Lag and latency high, then back in their bands at 130 s.
        let catching_up = |t: i64| {
            let mut l = look(t);
            if t < 130 {
                l.lag_s = Some(47.3);
                l.latency_p99_s = Some(42.8);
            }
            l
        };
        let mut gate = Gate::new(settings(), 10, 100_000);
        assert!(matches!(
            gate.observe(catching_up(100)),
            Verdict::Wait(why) if why.contains("lags 47.3 s")
        ));
        let Verdict::Open(r) = run(&mut gate, (101..200).map(catching_up)) else {
            panic!("never opened")
        };
        assert_eq!(r.waited_s, 35.0, "opened 5 s after the catch-up");
    }

    #[test]
    fn it_waits_for_flinks_restart_backoff_to_reset() {
        // The previous drill restarted the job at 100 s; the backoff resets after 60 s.
        let restarted = |t: i64| Look {
            job: Job::Running {
                since_ms: Some(100_000),
            },
            ..look(t)
        };
        let mut gate = Gate::new(settings(), 10, 110_000);
        assert!(matches!(
            gate.observe(restarted(110)),
            Verdict::Wait(why) if why.contains("restart backoff resets after 60 s")
        ));
        let Verdict::Open(r) = run(&mut gate, (111..200).map(restarted)) else {
            panic!("never opened")
        };
        assert_eq!(r.job_running_for_s, Some(65.0));
        // A threshold beyond the gate's timeout (Flink's default, 1 h) is not waited for.
        let default = |t: i64| Look {
            restart: Some(strategy(3600.0)),
            ..restarted(t)
        };
        let mut gate = Gate::new(settings(), 10, 110_000);
        let Verdict::Open(r) = run(&mut gate, (110..200).map(default)) else {
            panic!("never opened")
        };
        assert_eq!((r.waited_s, r.backoff_reset), (5.0, None));
    }

    #[test]
    fn it_refuses_with_the_last_reason_at_the_timeout() {
        let down = |t: i64| Look {
            job: Job::Other("RESTARTING".into()),
            ..look(t)
        };
        let mut gate = Gate::new(settings(), 10, 0_000);
        let verdict = run(&mut gate, (0..=120).map(down));
        assert_eq!(
            verdict,
            Verdict::Refuse("not steady after 2m: the Flink job is RESTARTING".into())
        );
    }

    #[test]
    fn missing_orders_slow_output_and_unknown_lag_keep_it_shut() {
        let mut gate = Gate::new(settings(), 10, 100_000);
        let missing = Look {
            missing: 3,
            ..look(100)
        };
        assert!(
            matches!(gate.observe(missing), Verdict::Wait(w) if w.contains("3 orders are missing"))
        );
        let unknown = Look {
            lag_messages: None,
            ..look(101)
        };
        assert!(matches!(gate.observe(unknown), Verdict::Wait(w) if w.contains("unknown")));
        // Output at 2 orders/s for a generator at 10/s.
        let slow = |t: i64| Look {
            processed: t as u64 * 2,
            ..look(t)
        };
        let verdict = run(&mut gate, (102..=107).map(slow));
        assert!(matches!(verdict, Verdict::Wait(w) if w.contains("below half")));
        // Lost orders during the window restart it.
        let mut gate = Gate::new(settings(), 10, 100_000);
        gate.observe(look(100));
        let lost = Look {
            lost: 2,
            ..look(101)
        };
        assert!(matches!(gate.observe(lost), Verdict::Wait(w) if w.contains("newly lost")));
    }
}
