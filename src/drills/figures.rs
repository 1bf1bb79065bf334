//! The figures of a drill report: what a drill measured, one number each, with its name,
//! unit, which direction is better and how it is read off a [`Report`].
//!
//! Owns the one table of them ([`FIGURES`]) that the `firedrill_drill_last` metric,
//! `compare` and the reports' summary take their figures from, so that a figure has one
//! name, one unit and one reading wherever it shows, and which figure shows where is stated
//! beside it.
//!
//! Does not own how a value reads for people (`render::format`), how two values are judged
//! (`compare`) or the report model (`report`). Pure: no I/O, no clock.

use serde::Serialize;

use super::report::{Report, Verdict};

/// One figure of a report.
#[derive(Clone, Copy)]
pub struct Figure {
    /// Stable key, in snake_case and ending in its unit: the `figure` label of
    /// `firedrill_drill_last`, e.g. `downtime_seconds`.
    pub name: &'static str,
    /// What people read: the row of `compare` and of the report's summary, e.g. `Downtime`.
    pub title: &'static str,
    /// What the number counts.
    pub unit: Unit,
    /// Which direction is better.
    pub better: Direction,
    /// The figure read off a report; `None` where the report has no value for it.
    pub value: fn(&Report) -> Option<f64>,
    /// Published as `firedrill_drill_last{figure = name}`.
    pub metric: bool,
    /// A row of `firedrill compare`.
    pub compared: bool,
}

impl PartialEq for Figure {
    /// Figures are the same when their names are: a name is a figure's identity.
    fn eq(&self, other: &Figure) -> bool {
        self.name == other.name
    }
}

/// What a figure counts, serialized as its symbol (`compare`'s JSON `unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    /// Seconds (`s`).
    #[serde(rename = "s")]
    Seconds,
    /// Orders, exact (`orders`).
    #[serde(rename = "orders")]
    Orders,
    /// Alerts (`alerts`).
    #[serde(rename = "alerts")]
    Alerts,
    /// US dollars (`$`).
    #[serde(rename = "$")]
    Dollars,
    /// Percent (`%`).
    #[serde(rename = "%")]
    Percent,
    /// Orders per second (`orders/s`).
    #[serde(rename = "orders/s")]
    OrdersPerSecond,
    /// 1 for a PASS verdict, 0 for a FAIL (`1/0`).
    #[serde(rename = "1/0")]
    Pass,
}

/// Which direction of a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Less is better: downtime, lost orders, latency.
    LowerIsBetter,
    /// More is better: throughput, a pass.
    HigherIsBetter,
    /// Less is better down to zero; below zero the figure marks a fault, not a gain: an
    /// all-clear before the pipeline recovered told on-call all was well while it was not.
    /// A negative value is ranked against nothing.
    LowerIsBetterFromZero,
}
use Direction::{HigherIsBetter, LowerIsBetter, LowerIsBetterFromZero};

/// Stalled output between the injection and recovery (`Report::downtime_s`).
pub const DOWNTIME: Figure = Figure {
    name: "downtime_seconds",
    title: "Downtime",
    unit: Unit::Seconds,
    better: LowerIsBetter,
    value: |r| r.downtime_s,
    metric: true,
    compared: true,
};

/// Time to recover: injection -> recovered; `None` when the drill did not recover.
pub const RECOVERY_TIME: Figure = Figure {
    name: "recovery_seconds",
    title: "Recovery time",
    unit: Unit::Seconds,
    better: LowerIsBetter,
    value: |r| r.recovery_time_s,
    metric: true,
    compared: true,
};

/// Fault reverted -> recovered.
pub const REVERT_TO_RECOVERED: Figure = Figure {
    name: "revert_to_recovered_seconds",
    title: "Revert to recovered",
    unit: Unit::Seconds,
    better: LowerIsBetter,
    value: |r| r.revert_to_recovered_s,
    metric: true,
    compared: false,
};

/// Throughput lost over injection -> recovered, in percent of the baseline.
pub const DEGRADATION: Figure = Figure {
    name: "degradation_percent",
    title: "Performance degradation",
    unit: Unit::Percent,
    better: LowerIsBetter,
    value: |r| Some(r.throughput.degradation_pct),
    metric: true,
    compared: true,
};

/// Every figure, in the order `compare` lists them.
pub const FIGURES: [Figure; 18] = [
    DOWNTIME,
    RECOVERY_TIME,
    REVERT_TO_RECOVERED,
    Figure {
        name: "lost_orders",
        title: "Lost orders",
        unit: Unit::Orders,
        better: LowerIsBetter,
        value: |r| Some(r.orders.lost as f64),
        metric: true,
        compared: true,
    },
    Figure {
        name: "duplicate_orders",
        title: "Duplicate orders",
        unit: Unit::Orders,
        better: LowerIsBetter,
        value: |r| Some(r.orders.duplicates as f64),
        metric: true,
        compared: true,
    },
    Figure {
        name: "delayed_orders",
        title: "Delayed orders",
        unit: Unit::Orders,
        better: LowerIsBetter,
        value: |r| Some(r.orders.delayed as f64),
        metric: false,
        compared: true,
    },
    Figure {
        name: "revenue_lost_dollars",
        title: "Revenue lost",
        unit: Unit::Dollars,
        better: LowerIsBetter,
        value: |r| Some(r.revenue.lost_dollars),
        metric: true,
        compared: true,
    },
    Figure {
        name: "revenue_delayed_dollars",
        title: "Revenue delayed",
        unit: Unit::Dollars,
        better: LowerIsBetter,
        value: |r| Some(r.revenue.delayed_dollars),
        metric: true,
        compared: false,
    },
    Figure {
        name: "revenue_failed_at_door_dollars",
        title: "Revenue failed at the door",
        unit: Unit::Dollars,
        better: LowerIsBetter,
        value: |r| Some(r.revenue.failed_at_door_dollars),
        metric: false,
        compared: true,
    },
    Figure {
        name: "first_page_seconds",
        title: "Time to first page",
        unit: Unit::Seconds,
        better: LowerIsBetter,
        value: first_page,
        metric: false,
        compared: true,
    },
    Figure {
        name: "all_clear_seconds",
        title: "Time to all-clear",
        unit: Unit::Seconds,
        better: LowerIsBetterFromZero,
        value: all_clear,
        metric: false,
        compared: true,
    },
    Figure {
        name: "missing_or_unresolved_alerts",
        title: "Alerts missing or unresolved",
        unit: Unit::Alerts,
        better: LowerIsBetter,
        value: alert_misses,
        metric: false,
        compared: true,
    },
    DEGRADATION,
    Figure {
        name: "baseline_latency_p50_seconds",
        title: "Baseline latency p50",
        unit: Unit::Seconds,
        better: LowerIsBetter,
        value: |r| r.baseline.latency_p50_s,
        metric: false,
        compared: true,
    },
    Figure {
        name: "baseline_latency_p99_seconds",
        title: "Baseline latency p99",
        unit: Unit::Seconds,
        better: LowerIsBetter,
        value: |r| r.baseline.latency_p99_s,
        metric: false,
        compared: true,
    },
    Figure {
        name: "baseline_throughput_orders_per_second",
        title: "Baseline throughput",
        unit: Unit::OrdersPerSecond,
        better: HigherIsBetter,
        value: |r| Some(r.baseline.orders_per_s),
        metric: false,
        compared: true,
    },
    Figure {
        name: "integrity_pass",
        title: "Data integrity",
        unit: Unit::Pass,
        better: HigherIsBetter,
        value: |r| Some(pass(r.integrity.verdict)),
        metric: true,
        compared: false,
    },
    Figure {
        name: "alerting_pass",
        title: "Alerting",
        unit: Unit::Pass,
        better: HigherIsBetter,
        value: |r| r.alerting.as_ref().map(|a| pass(a.verdict)),
        metric: true,
        compared: false,
    },
];

fn pass(verdict: Verdict) -> f64 {
    f64::from(u8::from(verdict == Verdict::Pass))
}

/// Injection -> the first expected alert firing; `None` if none fired or not scored.
fn first_page(r: &Report) -> Option<f64> {
    r.alerting
        .as_ref()?
        .alerts
        .iter()
        .filter(|o| o.expected)
        .map(|o| o.detect_s)
        .reduce(f64::min)
}

/// Recovered -> the last alert resolved; `None` if any is unresolved, none fired, or not
/// scored.
fn all_clear(r: &Report) -> Option<f64> {
    let a = r.alerting.as_ref()?;
    if !a.unresolved.is_empty() {
        return None;
    }
    a.alerts
        .iter()
        .map(|o| o.resolve_s)
        .collect::<Option<Vec<f64>>>()?
        .into_iter()
        .reduce(f64::max)
}

/// Expected alerts that never fired plus alerts still firing; `None` if not scored.
fn alert_misses(r: &Report) -> Option<f64> {
    let a = r.alerting.as_ref()?;
    Some((a.missing.len() + a.unresolved.len()) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drills::report::sample_for_docs;

    #[test]
    fn names_are_unique_snake_case_and_end_in_their_unit() {
        for (i, f) in FIGURES.iter().enumerate() {
            assert!(
                FIGURES[..i]
                    .iter()
                    .all(|g| g.name != f.name && g.title != f.title),
                "{} or {:?} twice",
                f.name,
                f.title
            );
            assert!(
                f.name
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                "{}",
                f.name
            );
            let unit = match f.unit {
                Unit::Seconds => "_seconds",
                Unit::Orders => "_orders",
                Unit::Alerts => "_alerts",
                Unit::Dollars => "_dollars",
                Unit::Percent => "_percent",
                Unit::OrdersPerSecond => "_orders_per_second",
                Unit::Pass => "_pass",
            };
            assert!(f.name.ends_with(unit), "{} is not in {unit}", f.name);
        }
    }

    #[test]
    fn the_named_figures_are_the_table_rows_and_only_passes_and_throughput_grow_better() {
        for named in [DOWNTIME, RECOVERY_TIME, REVERT_TO_RECOVERED, DEGRADATION] {
            assert_eq!(FIGURES.iter().filter(|f| **f == named).count(), 1);
        }
        let higher: Vec<&str> = FIGURES
            .iter()
            .filter(|f| f.better == HigherIsBetter)
            .map(|f| f.name)
            .collect();
        assert_eq!(
            higher,
            [
                "baseline_throughput_orders_per_second",
                "integrity_pass",
                "alerting_pass"
            ]
        );
    }

    #[test]
    fn each_figure_reads_its_value_off_a_report() {
        let read = |r: &Report| -> Vec<(&str, Option<f64>)> {
            FIGURES.iter().map(|f| (f.name, (f.value)(r))).collect()
        };
        let r = sample_for_docs();
        assert_eq!(
            read(&r),
            [
                ("downtime_seconds", Some(22.0)),
                ("recovery_seconds", Some(38.0)),
                ("revert_to_recovered_seconds", Some(23.0)),
                ("lost_orders", Some(0.0)),
                ("duplicate_orders", Some(9.0)),
                ("delayed_orders", Some(1180.0)),
                ("revenue_lost_dollars", Some(0.0)),
                ("revenue_delayed_dollars", Some(50_150.0)),
                ("revenue_failed_at_door_dollars", Some(510.0)),
                // The expected alert fired 10 s after the fault; the unexpected one resolved
                // last, 4 s after recovery.
                ("first_page_seconds", Some(10.0)),
                ("all_clear_seconds", Some(4.0)),
                ("missing_or_unresolved_alerts", Some(0.0)),
                ("degradation_percent", Some(r.throughput.degradation_pct)),
                ("baseline_latency_p50_seconds", Some(0.35)),
                ("baseline_latency_p99_seconds", Some(1.2)),
                ("baseline_throughput_orders_per_second", Some(50.0)),
                ("integrity_pass", Some(1.0)),
                ("alerting_pass", Some(1.0)),
            ]
        );
    }

    #[test]
    fn what_a_report_does_not_have_reads_none() {
        let mut r = sample_for_docs();
        r.recovery_time_s = None;
        let alerting = r.alerting.as_mut().unwrap();
        alerting.unresolved = vec!["KafkaConsumerLagHigh".into()];
        alerting.missing = vec!["FlinkJobNotRunning".into()];
        alerting.verdict = Verdict::Fail;
        let value = |r: &Report, name: &str| {
            let f = FIGURES.iter().find(|f| f.name == name).unwrap();
            (f.value)(r)
        };
        assert_eq!(value(&r, "recovery_seconds"), None);
        assert_eq!(value(&r, "all_clear_seconds"), None, "an alert still fires");
        assert_eq!(value(&r, "missing_or_unresolved_alerts"), Some(2.0));
        assert_eq!(value(&r, "alerting_pass"), Some(0.0));
        r.alerting = None;
        for name in [
            "first_page_seconds",
            "all_clear_seconds",
            "missing_or_unresolved_alerts",
            "alerting_pass",
        ] {
            assert_eq!(value(&r, name), None, "{name} without alert scoring");
        }
    }
}
