//! Side-by-side comparison of two drill reports: two engines, two Flink configurations, or
//! the same drill before and after a change.
//!
//! Owns: the winner of each row and by how much, the overall tally, and the comparison's
//! Markdown. The rows are the figures marked `compared` in `drills::figures`, which also
//! says which direction of each is better.
//!
//! Does not own: the reports themselves (`drills::report`) or their formatting rules, which
//! are `drills::render::format`'s and reused here. Pure: no I/O, no clock.

use std::fmt::Write as _;

use serde::Serialize;

use super::figures::{
    Direction::{self, HigherIsBetter, LowerIsBetter},
    Figure, Unit, DOWNTIME, FIGURES, RECOVERY_TIME,
};
use super::render::format::{figure, md_escape, pct};
use super::report::{PhaseName, Report};

/// Two reports compared metric by metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Name of report A: its label, else `"<scenario> <id>"`.
    pub a: String,
    /// Name of report B, made distinct from A's when they would read the same.
    pub b: String,
    /// Drill id of A.
    pub a_id: String,
    /// Drill id of B.
    pub b_id: String,
    /// One row per metric, in a fixed order.
    pub rows: Vec<Row>,
    /// Rows A wins.
    pub a_wins: usize,
    /// Rows B wins.
    pub b_wins: usize,
    /// Rows where both are equal.
    pub ties: usize,
    /// Rows that could not be compared (a value is missing).
    pub not_comparable: usize,
    /// What makes the comparison less than like for like, e.g. different scenarios.
    pub warnings: Vec<String>,
}

/// One metric of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The figure's title, e.g. `"Downtime"`.
    pub metric: &'static str,
    /// The figure's unit: `"s"`, `"orders"`, `"alerts"`, `"$"`, `"%"` or `"orders/s"`.
    pub unit: Unit,
    /// A's value; `None` when A does not have one.
    pub a: Option<f64>,
    /// B's value; `None` when B does not have one.
    pub b: Option<f64>,
    /// Which report is better on this metric.
    pub better: Better,
    /// How much better the winner is, relative to the loser, in percent: for lower-is-better
    /// metrics `(loser - winner) / loser`, for higher-is-better ones `(winner - loser) /
    /// loser`. 0 for a tie; `None` when not comparable or the loser's value is 0.
    pub improvement_pct: Option<f64>,
    /// Why `better` or `improvement_pct` is not a plain number, when it is not.
    pub note: Option<String>,
}

/// The winner of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Better {
    /// Report A.
    #[serde(rename = "a")]
    A,
    /// Report B.
    #[serde(rename = "b")]
    B,
    /// Equal values.
    #[serde(rename = "tie")]
    Tie,
    /// A value is missing.
    #[serde(rename = "n/a")]
    NotApplicable,
}

/// Compares any two reports. Scenarios may differ; the rows are the same either way.
///
/// A report that did not recover loses the recovery-time row to one that did. A report that
/// recovered without ever detecting a degradation counts as 0 s of downtime.
pub fn compare(a: &Report, b: &Report) -> Comparison {
    let (a_name, b_name) = names(a, b);
    let mut rows: Vec<Row> = FIGURES
        .iter()
        .filter(|f| f.compared)
        .map(|f| figure_row(f, a, b))
        .collect();
    for r in &mut rows {
        if let Some(note) = &mut r.note {
            *note = note.replace("{a}", &a_name).replace("{b}", &b_name);
        }
    }
    let tally = |w: Better| rows.iter().filter(|r| r.better == w).count();
    Comparison {
        a_wins: tally(Better::A),
        b_wins: tally(Better::B),
        ties: tally(Better::Tie),
        not_comparable: tally(Better::NotApplicable),
        warnings: warnings(a, b),
        a: a_name,
        b: b_name,
        a_id: a.id.clone(),
        b_id: b.id.clone(),
        rows,
    }
}

fn warnings(a: &Report, b: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if a.scenario != b.scenario {
        out.push(format!(
            "different scenarios ({} vs {}): the figures measure different failures",
            a.scenario, b.scenario
        ));
    }
    if let (Some(fa), Some(fb)) = (&a.fault, &b.fault) {
        if (fa.duration_s - fb.duration_s).abs() > 0.5 {
            out.push(format!(
                "different fault durations ({:.0} s vs {:.0} s)",
                fa.duration_s, fb.duration_s
            ));
        }
    }
    out
}

fn names(a: &Report, b: &Report) -> (String, String) {
    let (na, nb) = (a.display_name(), b.display_name());
    if na == nb {
        (format!("{na} (A)"), format!("{nb} (B)"))
    } else {
        (na, nb)
    }
}

/// One figure of both reports. Two readings are compare's own: a report that recovered
/// without ever detecting a degradation had 0 s of downtime, and not recovering at all is
/// worse than any recovery time.
fn figure_row(f: &Figure, a: &Report, b: &Report) -> Row {
    let read = |r: &Report| {
        if *f == DOWNTIME {
            downtime(r)
        } else {
            (f.value)(r)
        }
    };
    let row = row(f, read(a), read(b));
    if *f == RECOVERY_TIME {
        recovered_first(row, a, b)
    } else {
        row
    }
}

fn downtime(r: &Report) -> Option<f64> {
    (DOWNTIME.value)(r).or_else(|| {
        (r.recovered && r.phase(PhaseName::DegradationDetected).is_none()).then_some(0.0)
    })
}

/// The recovery-time row when either report did not recover: the one that did wins.
fn recovered_first(mut r: Row, a: &Report, b: &Report) -> Row {
    let (better, loser) = match (a.recovered, b.recovered) {
        (true, false) => (Better::A, "{b}"),
        (false, true) => (Better::B, "{a}"),
        (false, false) => {
            r.better = Better::NotApplicable;
            r.improvement_pct = None;
            r.note = Some("neither recovered".to_owned());
            return r;
        }
        (true, true) => return r,
    };
    r.better = better;
    r.improvement_pct = None;
    r.note = Some(format!("{loser} did not recover"));
    r
}

fn row(f: &Figure, a: Option<f64>, b: Option<f64>) -> Row {
    let a = a.filter(|v| v.is_finite());
    let b = b.filter(|v| v.is_finite());
    let (better, improvement_pct, note) = match (a, b) {
        (Some(va), Some(vb)) => judge(va, vb, f.better),
        (None, None) => (
            Better::NotApplicable,
            None,
            Some("no value for either".into()),
        ),
        (None, Some(_)) => (Better::NotApplicable, None, Some("no value for {a}".into())),
        (Some(_), None) => (Better::NotApplicable, None, Some("no value for {b}".into())),
    };
    Row {
        metric: f.title,
        unit: f.unit,
        a,
        b,
        better,
        improvement_pct,
        note,
    }
}

fn judge(a: f64, b: f64, direction: Direction) -> (Better, Option<f64>, Option<String>) {
    // Values come from the same arithmetic on both sides; anything closer than this is noise
    // from float formatting, not a difference.
    let tolerance = 1e-9 * a.abs().max(b.abs()).max(1.0);
    if (a - b).abs() <= tolerance {
        return (Better::Tie, Some(0.0), None);
    }
    let a_wins = match direction {
        LowerIsBetter => a < b,
        HigherIsBetter => a > b,
    };
    let (better, winner, loser, loser_name) = if a_wins {
        (Better::A, a, b, "{b}")
    } else {
        (Better::B, b, a, "{a}")
    };
    if loser == 0.0 {
        return (
            better,
            None,
            Some(format!("{loser_name} is 0: no relative improvement")),
        );
    }
    let pct = match direction {
        LowerIsBetter => (loser - winner) / loser.abs() * 100.0,
        HigherIsBetter => (winner - loser) / loser.abs() * 100.0,
    };
    (better, Some(pct), None)
}

impl Comparison {
    /// The comparison as a Markdown table with a one-line verdict.
    pub fn markdown(&self) -> String {
        let (a, b) = (md_escape(&self.a), md_escape(&self.b));
        let mut out = String::new();
        let _ = writeln!(out, "# {a} vs {b}\n");
        for warning in &self.warnings {
            let _ = writeln!(out, "> Warning: {}\n", md_escape(warning));
        }
        let _ = writeln!(
            out,
            "Drills {} (A) and {} (B).\n",
            md_escape(&self.a_id),
            md_escape(&self.b_id)
        );
        let _ = writeln!(out, "| Metric | {a} | {b} | Better | Improvement |");
        out.push_str("| --- | ---: | ---: | --- | ---: |\n");
        for r in &self.rows {
            let better = match r.better {
                Better::A => a.clone(),
                Better::B => b.clone(),
                Better::Tie => "tie".to_owned(),
                Better::NotApplicable => "n/a".to_owned(),
            };
            let improvement = match (r.improvement_pct, &r.note) {
                (Some(p), _) => pct(p),
                (None, Some(note)) => format!("n/a ({})", md_escape(note)),
                (None, None) => "n/a".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {better} | {improvement} |",
                r.metric,
                figure(r.a, r.unit),
                figure(r.b, r.unit)
            );
        }
        let _ = writeln!(out, "\n{}", md_escape(&self.summary()));
        out
    }

    /// One line: who wins more rows, and the tally.
    pub fn summary(&self) -> String {
        let compared = self.rows.len() - self.not_comparable;
        let tally = format!(
            "{} wins {} of {compared} comparable metrics, {} wins {}, {} tied",
            self.a, self.a_wins, self.b, self.b_wins, self.ties
        );
        if self.a_wins > self.b_wins {
            format!("Overall: {} is better ({tally}).", self.a)
        } else if self.b_wins > self.a_wins {
            format!("Overall: {} is better ({tally}).", self.b)
        } else {
            format!("Overall: no clear winner ({tally}).")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drills::report::sample_for_docs;

    fn pair() -> (Report, Report) {
        let a = sample_for_docs();
        let mut b = sample_for_docs();
        b.id = "d-spark".into();
        b.label = Some("spark structured streaming".into());
        b.downtime_s = Some(44.0); // twice A's 22 s
        b.recovery_time_s = Some(19.0); // half A's 38 s
        b.orders.lost = 2;
        b.orders.duplicates = 0;
        b.revenue.lost_dollars = 85.0;
        b.baseline.orders_per_s = 40.0;
        b.baseline.latency_p99_s = None;
        // Paged later, and the lag alert never resolved.
        let alerting = b.alerting.as_mut().unwrap();
        alerting.alerts[0].detect_s = 20.0;
        alerting.alerts[1].resolved_at_ms = None;
        alerting.alerts[1].resolve_s = None;
        alerting.unresolved = vec!["KafkaConsumerLagHigh".into()];
        (a, b)
    }

    fn get<'c>(c: &'c Comparison, metric: &str) -> &'c Row {
        c.rows.iter().find(|r| r.metric == metric).unwrap()
    }

    #[test]
    fn each_row_has_a_winner_and_a_relative_improvement() {
        let (a, b) = pair();
        let c = compare(&a, &b);
        assert_eq!(c.a, "flink checkpoint 10s");
        assert_eq!(c.b, "spark structured streaming");

        let downtime = get(&c, "Downtime");
        assert_eq!(
            (downtime.better, downtime.improvement_pct),
            (Better::A, Some(50.0))
        );
        let recovery = get(&c, "Recovery time");
        assert_eq!(
            (recovery.better, recovery.improvement_pct),
            (Better::B, Some(50.0))
        );
        // Higher is better: 50 vs 40 orders/s is 25 % better.
        let tput = get(&c, "Baseline throughput");
        assert_eq!((tput.better, tput.improvement_pct), (Better::A, Some(25.0)));
        let delayed = get(&c, "Delayed orders");
        assert_eq!(
            (delayed.better, delayed.improvement_pct),
            (Better::Tie, Some(0.0))
        );
        let p99 = get(&c, "Baseline latency p99");
        assert_eq!(p99.better, Better::NotApplicable);
        assert_eq!(
            p99.note.as_deref(),
            Some("no value for spark structured streaming")
        );
    }

    #[test]
    fn a_zero_loser_has_no_relative_improvement() {
        let (a, b) = pair();
        let c = compare(&a, &b);
        // Lower is better: a winner at 0 is 100 % better than any non-zero loser.
        let dup = get(&c, "Duplicate orders");
        assert_eq!((dup.better, dup.improvement_pct), (Better::B, Some(100.0)));
        // Higher is better: nothing is "x % more" than 0.
        let mut z = b.clone();
        z.baseline.orders_per_s = 0.0;
        let c = compare(&a, &z);
        let tput = get(&c, "Baseline throughput");
        assert_eq!((tput.better, tput.improvement_pct), (Better::A, None));
        assert_eq!(
            tput.note.as_deref(),
            Some("spark structured streaming is 0: no relative improvement")
        );
    }

    #[test]
    fn not_recovering_loses_recovery_time() {
        let (a, mut b) = pair();
        b.recovered = false;
        b.recovery_time_s = None;
        let c = compare(&a, &b);
        let r = get(&c, "Recovery time");
        assert_eq!((r.better, r.improvement_pct), (Better::A, None));
        assert_eq!(
            r.note.as_deref(),
            Some("spark structured streaming did not recover")
        );
        let mut a2 = a.clone();
        a2.recovered = false;
        let c = compare(&a2, &b);
        assert_eq!(get(&c, "Recovery time").better, Better::NotApplicable);
    }

    #[test]
    fn no_degradation_counts_as_zero_downtime() {
        let (mut a, b) = pair();
        a.downtime_s = None;
        a.phases
            .retain(|p| p.name != PhaseName::DegradationDetected);
        let c = compare(&a, &b);
        let d = get(&c, "Downtime");
        assert_eq!(
            (d.a, d.better, d.improvement_pct),
            (Some(0.0), Better::A, Some(100.0))
        );
    }

    #[test]
    fn identical_reports_tie_everywhere_and_get_distinct_names() {
        let a = sample_for_docs();
        let c = compare(&a, &a);
        assert_eq!(c.a, "flink checkpoint 10s (A)");
        assert_eq!(c.b, "flink checkpoint 10s (B)");
        assert_eq!((c.a_wins, c.b_wins, c.not_comparable), (0, 0, 0));
        assert_eq!(c.ties, c.rows.len());
        assert!(c.summary().starts_with("Overall: no clear winner"));
    }

    #[test]
    fn unlabeled_reports_are_named_by_scenario_and_id() {
        let mut a = sample_for_docs();
        a.label = None;
        let mut b = a.clone();
        b.scenario = "kafka".into();
        b.id = "d-2".into();
        let c = compare(&a, &b);
        assert_eq!(c.a, "taskmanager d-20260101-100000-7f3a");
        assert_eq!(c.b, "kafka d-2");
        assert_eq!(
            c.warnings,
            ["different scenarios (taskmanager vs kafka): the figures measure different failures"]
        );
        assert!(c.markdown().contains(
            "> Warning: different scenarios (taskmanager vs kafka): the figures measure different failures"
        ));
        assert!(compare(&a, &a).warnings.is_empty());
    }

    #[test]
    fn markdown_and_json() {
        let (a, b) = pair();
        let c = compare(&a, &b);
        assert_eq!((c.a_wins, c.b_wins, c.ties, c.not_comparable), (6, 2, 4, 2));
        let md = c.markdown();
        for needle in [
            "# flink checkpoint 10s vs spark structured streaming",
            "| Metric | flink checkpoint 10s | spark structured streaming | Better | Improvement |",
            "| Downtime | 22.0 s | 44.0 s | flink checkpoint 10s | 50.0 % |",
            "| Recovery time | 38.0 s | 19.0 s | spark structured streaming | 50.0 % |",
            "| Revenue lost | $0.00 | $85.00 | flink checkpoint 10s | 100.0 % |",
            "| Baseline throughput | 50.0 orders/s | 40.0 orders/s | flink checkpoint 10s | 25.0 % |",
            "| Baseline latency p99 | 1.20 s | n/a | n/a | n/a (no value for spark structured streaming) |",
            "| Revenue failed at the door | $510.00 | $510.00 | tie | 0.0 % |",
            "| Time to first page | 10.0 s | 20.0 s | flink checkpoint 10s | 50.0 % |",
            "| Time to all-clear | 4.00 s | n/a | n/a | n/a (no value for spark structured streaming) |",
            "| Alerts missing or unresolved | 0 | 1 | flink checkpoint 10s | 100.0 % |",
            "Overall: flink checkpoint 10s is better (flink checkpoint 10s wins 6 of 12 comparable \
             metrics, spark structured streaming wins 2, 4 tied).",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["rows"][0]["better"], "a");
        assert_eq!(json["rows"][1]["better"], "b");
        assert_eq!(json["rows"][4]["better"], "tie");
        assert_eq!(json["rows"][8]["better"], "n/a");
        assert_eq!(json["rows"][8]["improvement_pct"], serde_json::Value::Null);
    }
}
