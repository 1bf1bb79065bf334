//! Side-by-side comparison of drill reports: two engines, two Flink configurations, or the
//! same drill before and after a change. Each side is one report or several runs of the same
//! drill; a side's figure is the median of its runs, shown with their range.
//!
//! Owns: the winner of each row and by how much, the overall tally, the recommendation (which
//! side, why, and how far the runs back it), and the comparison's Markdown. The rows are the
//! figures marked `compared` in `drills::figures`, which also says which direction of each is
//! better.
//!
//! Does not own: the reports themselves (`drills::report`) or their formatting rules, which
//! are `drills::render::format`'s and reused here. Pure: no I/O, no clock.

use std::{collections::BTreeSet, fmt::Write as _};

use serde::Serialize;

use super::figures::{
    Direction::{self, HigherIsBetter, LowerIsBetter, LowerIsBetterFromZero},
    Figure, Unit, DOWNTIME, FIGURES, RECOVERY_TIME,
};
use super::render::format::{figure, md_escape, pct};
use super::report::{PhaseName, Report};

/// Below this relative difference two recovery times are "about the same": the
/// recommendation does not rest on them.
const COMPARABLE_PCT: f64 = 10.0;
/// Runs per side from which a clear separation is called high confidence.
const RUNS_FOR_HIGH: usize = 3;

/// Two sides compared metric by metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Name of side A: its reports' common label, else `"<scenario> <id>"` for one report,
    /// `"<scenario> (<n> drills)"` for several; prefixed with its engine (`"spark: ..."`) when
    /// the sides' engines differ and the name does not say it.
    pub a: String,
    /// Name of side B, made distinct from A's when they would read the same.
    pub b: String,
    /// Drill ids of side A.
    pub a_ids: Vec<String>,
    /// Drill ids of side B.
    pub b_ids: Vec<String>,
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
    /// Which side to pick, why, and how far the runs back it.
    pub recommendation: Recommendation,
}

/// One metric of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The figure's title, e.g. `"Downtime"`.
    pub metric: &'static str,
    /// The figure's unit: `"s"`, `"orders"`, `"alerts"`, `"$"`, `"%"` or `"orders/s"`.
    pub unit: Unit,
    /// A's value (the median of its runs); `None` when no run of A has one.
    pub a: Option<f64>,
    /// B's value (the median of its runs); `None` when no run of B has one.
    pub b: Option<f64>,
    /// The range of A's runs behind `a`.
    pub a_spread: Option<Spread>,
    /// The range of B's runs behind `b`.
    pub b_spread: Option<Spread>,
    /// Which side is better on this metric.
    pub better: Better,
    /// How much better the winner is, relative to the loser, in percent: for lower-is-better
    /// metrics `(loser - winner) / loser`, for higher-is-better ones `(winner - loser) /
    /// loser`. 0 for a tie; `None` when not comparable or the loser's value is 0.
    pub improvement_pct: Option<f64>,
    /// Why `better` or `improvement_pct` is not a plain number, when it is not.
    pub note: Option<String>,
}

/// The values of one figure over a side's runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Runs that have a value.
    pub n: usize,
}

/// The winner of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Better {
    /// Side A.
    #[serde(rename = "a")]
    A,
    /// Side B.
    #[serde(rename = "b")]
    B,
    /// Equal values.
    #[serde(rename = "tie")]
    Tie,
    /// A value is missing.
    #[serde(rename = "n/a")]
    NotApplicable,
}

/// Which side to pick. The order of the questions is a recovery team's: was an order lost,
/// did the pipeline come back, how fast, and only then everything else.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The side recommended: `"a"`, `"b"`, or `"tie"` when the drills do not separate them.
    pub pick: Better,
    /// Its name; `None` for a tie.
    pub name: Option<String>,
    /// The question that decided: `"Lost orders"`, `"Recovered"`, `"Recovery time"` or
    /// `"Overall tally"`.
    pub decided_by: &'static str,
    /// The reasoning, one sentence each: the deciding figures, exactly-once per side, and why
    /// the confidence is what it is.
    pub reasons: Vec<String>,
    /// How far the runs back the pick.
    pub confidence: Confidence,
}

/// How far the runs back a recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// One run on a side, or no clear pick.
    Low,
    /// Several runs whose ranges overlap, or two runs a side that separate cleanly.
    Medium,
    /// At least three runs a side, and every run of the pick beats every run of the other.
    High,
}

/// Compares two reports. Scenarios may differ; the rows are the same either way.
///
/// A report that did not recover loses the recovery-time row to one that did. A report that
/// recovered without ever detecting a degradation counts as 0 s of downtime.
pub fn compare(a: &Report, b: &Report) -> Comparison {
    compare_runs(std::slice::from_ref(a), std::slice::from_ref(b))
}

/// Compares two sides of one or more runs each by the medians of their figures.
///
/// A side's recovery time is the median over its runs that recovered; a side with a larger
/// share of runs that did not recover loses that row.
///
/// # Panics
/// When a side is empty (the CLI refuses that before).
pub fn compare_runs(a: &[Report], b: &[Report]) -> Comparison {
    assert!(!a.is_empty() && !b.is_empty(), "each side needs a report");
    let (a_name, b_name) = names(a, b);
    let mut rows: Vec<Row> = FIGURES
        .iter()
        .filter(|f| f.compared)
        .map(|f| figure_row(f, a, b))
        .collect();
    let fill = |text: &str| text.replace("{a}", &a_name).replace("{b}", &b_name);
    for r in &mut rows {
        if let Some(note) = &mut r.note {
            *note = fill(note);
        }
    }
    let mut recommendation = recommend(&rows, a, b);
    recommendation.name = match recommendation.pick {
        Better::A => Some(a_name.clone()),
        Better::B => Some(b_name.clone()),
        _ => None,
    };
    recommendation.reasons = recommendation.reasons.iter().map(|r| fill(r)).collect();
    let tally = |w: Better| rows.iter().filter(|r| r.better == w).count();
    Comparison {
        a_wins: tally(Better::A),
        b_wins: tally(Better::B),
        ties: tally(Better::Tie),
        not_comparable: tally(Better::NotApplicable),
        warnings: warnings(a, b, &a_name, &b_name),
        a: a_name,
        b: b_name,
        a_ids: a.iter().map(|r| r.id.clone()).collect(),
        b_ids: b.iter().map(|r| r.id.clone()).collect(),
        rows,
        recommendation,
    }
}

fn warnings(a: &[Report], b: &[Report], a_name: &str, b_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let scenarios = |side: &[Report]| -> Vec<String> {
        let set: BTreeSet<&str> = side.iter().map(|r| r.scenario.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    };
    let (sa, sb) = (scenarios(a), scenarios(b));
    for (name, s) in [(a_name, &sa), (b_name, &sb)] {
        if s.len() > 1 {
            out.push(format!(
                "{name} mixes scenarios ({}): its medians mix different failures",
                s.join(", ")
            ));
        }
    }
    if sa.len() == 1 && sb.len() == 1 && sa != sb {
        out.push(format!(
            "different scenarios ({} vs {}): the figures measure different failures",
            sa[0], sb[0]
        ));
    }
    let durations = |side: &[Report]| -> Option<(f64, f64)> {
        let d: Vec<f64> = side
            .iter()
            .filter_map(|r| r.fault.as_ref().map(|f| f.duration_s))
            .collect();
        let min = d.iter().copied().reduce(f64::min)?;
        Some((min, d.iter().copied().fold(min, f64::max)))
    };
    if let (Some(da), Some(db)) = (durations(a), durations(b)) {
        if da.1.max(db.1) - da.0.min(db.0) > 0.5 {
            let show = |(min, max): (f64, f64)| {
                if max - min > 0.5 {
                    format!("{min:.0}-{max:.0} s")
                } else {
                    format!("{min:.0} s")
                }
            };
            out.push(format!(
                "different fault durations ({} vs {})",
                show(da),
                show(db)
            ));
        }
    }
    out
}

fn names(a: &[Report], b: &[Report]) -> (String, String) {
    let (mut na, mut nb) = (side_name(a), side_name(b));
    // Flink against Spark: each side says its engine, unless its name already does.
    if let (Some(ea), Some(eb)) = (engine(a), engine(b)) {
        if ea != eb {
            for (name, side) in [(&mut na, a), (&mut nb, b)] {
                if !name.to_lowercase().contains(&side[0].engine) {
                    *name = format!("{}: {name}", side[0].engine_name());
                }
            }
        }
    }
    if na == nb {
        (format!("{na} (A)"), format!("{nb} (B)"))
    } else {
        (na, nb)
    }
}

/// The engine of every report of a side ([`Report::engine_name`]), if they share one.
fn engine(side: &[Report]) -> Option<String> {
    let first = side.first()?.engine_name();
    side.iter()
        .all(|r| r.engine_name() == first)
        .then_some(first)
}

/// The runs' common display name (their label, or `"<scenario> <id>"` for one unlabelled
/// report), else `"<scenario> (<n> drills)"`, else `"<n> drills"`.
fn side_name(side: &[Report]) -> String {
    let first = side[0].display_name();
    if side.iter().all(|r| r.display_name() == first) {
        return first;
    }
    let scenario = &side[0].scenario;
    if side.iter().all(|r| &r.scenario == scenario) {
        format!("{scenario} ({} drills)", side.len())
    } else {
        format!("{} drills", side.len())
    }
}

/// One figure of both sides. Two readings are compare's own: a report that recovered
/// without ever detecting a degradation had 0 s of downtime, and not recovering at all is
/// worse than any recovery time.
fn figure_row(f: &Figure, a: &[Report], b: &[Report]) -> Row {
    let values = |side: &[Report]| -> Vec<f64> {
        side.iter()
            .filter_map(|r| {
                if *f == DOWNTIME {
                    downtime(r)
                } else if *f == RECOVERY_TIME && !r.recovered {
                    None
                } else {
                    (f.value)(r)
                }
            })
            .collect()
    };
    let row = row(f, values(a), values(b));
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

fn not_recovered(side: &[Report]) -> usize {
    side.iter().filter(|r| !r.recovered).count()
}

/// The share of a side's runs that did not recover, in [0, 1].
fn not_recovered_share(side: &[Report]) -> f64 {
    not_recovered(side) as f64 / side.len() as f64
}

/// The recovery-time row when a side has runs that did not recover: the side with the
/// smaller share of them wins; with equal shares the medians of the recovered runs decide.
fn recovered_first(mut r: Row, a: &[Report], b: &[Report]) -> Row {
    let (fa, fb) = (not_recovered_share(a), not_recovered_share(b));
    if fa == fb {
        if fa == 1.0 {
            r.better = Better::NotApplicable;
            r.improvement_pct = None;
            r.note = Some("neither recovered".to_owned());
        }
        return r;
    }
    let (better, loser, side) = if fa < fb {
        (Better::A, "{b}", b)
    } else {
        (Better::B, "{a}", a)
    };
    r.better = better;
    r.improvement_pct = None;
    r.note = Some(if side.len() == 1 {
        format!("{loser} did not recover")
    } else {
        format!(
            "{loser}: {} of {} drills did not recover",
            not_recovered(side),
            side.len()
        )
    });
    r
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn spread(values: &[f64]) -> Option<Spread> {
    let min = values.iter().copied().reduce(f64::min)?;
    Some(Spread {
        min,
        max: values.iter().copied().fold(min, f64::max),
        n: values.len(),
    })
}

fn row(f: &Figure, a: Vec<f64>, b: Vec<f64>) -> Row {
    let finite = |v: Vec<f64>| -> Vec<f64> { v.into_iter().filter(|x| x.is_finite()).collect() };
    let (a, b) = (finite(a), finite(b));
    let (ma, mb) = (median(&a), median(&b));
    let (better, improvement_pct, note) = match (ma, mb) {
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
        a: ma,
        b: mb,
        a_spread: spread(&a),
        b_spread: spread(&b),
        better,
        improvement_pct,
        note,
    }
}

fn judge(a: f64, b: f64, direction: Direction) -> (Better, Option<f64>, Option<String>) {
    if direction == LowerIsBetterFromZero && a.min(b) < 0.0 {
        let below = match (a < 0.0, b < 0.0) {
            (true, true) => "both are",
            (true, false) => "{a} is",
            _ => "{b} is",
        };
        return (
            Better::NotApplicable,
            None,
            Some(format!(
                "{below} below 0: too early is not better, so not ranked"
            )),
        );
    }
    // Values come from the same arithmetic on both sides; anything closer than this is noise
    // from float formatting, not a difference.
    let tolerance = 1e-9 * a.abs().max(b.abs()).max(1.0);
    if (a - b).abs() <= tolerance {
        return (Better::Tie, Some(0.0), None);
    }
    let a_wins = match direction {
        LowerIsBetter | LowerIsBetterFromZero => a < b,
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
        LowerIsBetter | LowerIsBetterFromZero => (loser - winner) / loser.abs() * 100.0,
        HigherIsBetter => (winner - loser) / loser.abs() * 100.0,
    };
    (better, Some(pct), None)
}

/// The pick and its reasons, with `{a}` and `{b}` for the sides' names. Asks in order: did
/// one side lose orders and the other not, did one side fail to recover more often, does
/// one recover at least `COMPARABLE_PCT` faster; else the tally of rows decides.
fn recommend(rows: &[Row], a: &[Report], b: &[Report]) -> Recommendation {
    let lossy = |side: &[Report]| side.iter().filter(|r| r.orders.lost > 0).count();
    let (la, lb) = (lossy(a), lossy(b));
    let (na, nb) = (not_recovered(a), not_recovered(b));
    let of = |k: usize, side: &[Report]| {
        if side.len() == 1 {
            String::new()
        } else {
            format!(" in {k} of {} drills", side.len())
        }
    };
    let recovery = rows
        .iter()
        .find(|r| r.metric == RECOVERY_TIME.title)
        .expect("recovery time is compared");

    let (pick, decided_by, mut reasons, separated) = if (la == 0) != (lb == 0) {
        let (pick, loser, k, side, winner) = if la == 0 {
            (Better::A, "{b}", lb, b, "{a}")
        } else {
            (Better::B, "{a}", la, a, "{b}")
        };
        let lost: Vec<f64> = side.iter().map(|r| r.orders.lost as f64).collect();
        (
            pick,
            "Lost orders",
            vec![format!(
                "{loser} lost orders{} (median {}), {winner} lost none: losing data outweighs \
                 any speed",
                of(k, side),
                figure(median(&lost), Unit::Orders)
            )],
            k == side.len(),
        )
    } else if not_recovered_share(a) != not_recovered_share(b) {
        let (pick, loser, k, side, others) = if not_recovered_share(a) < not_recovered_share(b) {
            (Better::A, "{b}", nb, b, (na, a))
        } else {
            (Better::B, "{a}", na, a, (nb, b))
        };
        (
            pick,
            "Recovered",
            vec![format!(
                "{loser} did not recover{}, the other side{}",
                of(k, side),
                if others.0 == 0 {
                    " always did".to_owned()
                } else {
                    format!(" did not{}", of(others.0, others.1))
                }
            )],
            k == side.len() && others.0 == 0,
        )
    } else if let (Better::A | Better::B, Some(p), Some(ra), Some(rb)) = (
        recovery.better,
        recovery.improvement_pct,
        recovery.a,
        recovery.b,
    ) {
        if p >= COMPARABLE_PCT {
            let (winner, loser) = if recovery.better == Better::A {
                ("{a}", "{b}")
            } else {
                ("{b}", "{a}")
            };
            (
                recovery.better,
                "Recovery time",
                vec![format!(
                    "{winner} recovers {} faster: median {} against {loser}'s {}",
                    pct(p),
                    figure(Some(ra.min(rb)), Unit::Seconds),
                    figure(Some(ra.max(rb)), Unit::Seconds)
                )],
                apart(recovery),
            )
        } else {
            by_tally(rows, Some((recovery, p)))
        }
    } else {
        by_tally(rows, None)
    };

    for (name, side) in [("{a}", a), ("{b}", b)] {
        let exact = side
            .iter()
            .filter(|r| r.orders.lost == 0 && r.orders.duplicates == 0)
            .count();
        let dups: Vec<f64> = side.iter().map(|r| r.orders.duplicates as f64).collect();
        reasons.push(if exact == side.len() {
            format!(
                "{name}: exactly-once held{}: no order lost or duplicated",
                of(exact, side)
            )
        } else {
            format!(
                "{name}: exactly-once held{}; lost {}, duplicated {} (medians)",
                if side.len() == 1 {
                    " not".to_owned()
                } else {
                    format!(" in {exact} of {}", side.len())
                },
                figure(
                    median(
                        &side
                            .iter()
                            .map(|r| r.orders.lost as f64)
                            .collect::<Vec<_>>()
                    ),
                    Unit::Orders
                ),
                figure(median(&dups), Unit::Orders)
            )
        });
    }
    let runs = a.len().min(b.len());
    let confidence = match (pick, runs, separated) {
        (Better::Tie | Better::NotApplicable, ..) => Confidence::Low,
        (_, r, true) if r >= RUNS_FOR_HIGH => Confidence::High,
        (_, r, _) if r >= RUNS_FOR_HIGH => Confidence::Medium,
        (_, 2, true) => Confidence::Medium,
        _ => Confidence::Low,
    };
    reasons.push(match confidence {
        Confidence::High => format!(
            "confidence high: {runs} or more drills a side, and every one of the pick's beats \
             every one of the other's on the deciding figure"
        ),
        Confidence::Medium if separated => {
            "confidence medium: the runs separate cleanly, but two a side can still be luck; \
             run a third"
                .to_owned()
        }
        Confidence::Medium => {
            "confidence medium: the medians differ but the runs' ranges overlap".to_owned()
        }
        Confidence::Low if runs == 1 => format!(
            "confidence low: one drill on a side can be luck; run at least {RUNS_FOR_HIGH} a \
             side and compare them all"
        ),
        Confidence::Low => "confidence low: the drills do not separate the sides".to_owned(),
    });
    Recommendation {
        pick,
        name: None,
        decided_by,
        reasons,
        confidence,
    }
}

/// The tally of rows decides, when neither data loss nor recovery does.
/// `close_recovery`: the recovery-time row and its improvement, when it was too small to
/// decide.
fn by_tally(
    rows: &[Row],
    close_recovery: Option<(&Row, f64)>,
) -> (Better, &'static str, Vec<String>, bool) {
    let wins = |w: Better| rows.iter().filter(|r| r.better == w).count();
    let (wa, wb) = (wins(Better::A), wins(Better::B));
    let mut reasons = Vec::new();
    if let Some((recovery, recovery_pct)) = close_recovery {
        reasons.push(format!(
            "recovery times are within {COMPARABLE_PCT:.0} % of each other ({} vs {}, {} apart): \
             they do not decide",
            figure(recovery.a, Unit::Seconds),
            figure(recovery.b, Unit::Seconds),
            pct(recovery_pct)
        ));
    }
    let pick = match wa.cmp(&wb) {
        std::cmp::Ordering::Greater => Better::A,
        std::cmp::Ordering::Less => Better::B,
        std::cmp::Ordering::Equal => Better::Tie,
    };
    reasons.push(format!(
        "{{a}} is better on {wa} metrics, {{b}} on {wb}{}",
        if pick == Better::Tie {
            ": no side to recommend"
        } else {
            ""
        }
    ));
    (pick, "Overall tally", reasons, false)
}

/// Whether every run of the row's winner beats every run of its loser.
fn apart(row: &Row) -> bool {
    match (row.better, row.a_spread, row.b_spread) {
        (Better::A, Some(a), Some(b)) => a.max < b.min,
        (Better::B, Some(a), Some(b)) => b.max < a.min,
        _ => false,
    }
}

impl Comparison {
    /// The comparison as a Markdown table with a one-line verdict and the recommendation.
    pub fn markdown(&self) -> String {
        let (a, b) = (md_escape(&self.a), md_escape(&self.b));
        let mut out = String::new();
        let _ = writeln!(out, "# {a} vs {b}\n");
        for warning in &self.warnings {
            let _ = writeln!(out, "> Warning: {}\n", md_escape(warning));
        }
        let ids = |ids: &[String]| md_escape(&ids.join(", "));
        let runs = |n: usize| {
            if n == 1 {
                String::new()
            } else {
                format!("{n} drills: ")
            }
        };
        let _ = writeln!(
            out,
            "Drills {}{} (A) and {}{} (B){}.\n",
            runs(self.a_ids.len()),
            ids(&self.a_ids),
            runs(self.b_ids.len()),
            ids(&self.b_ids),
            if self.a_ids.len() > 1 || self.b_ids.len() > 1 {
                "; each figure is the median of a side's drills, with their range"
            } else {
                ""
            }
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
                cell(r.a, r.a_spread, r.unit, self.a_ids.len()),
                cell(r.b, r.b_spread, r.unit, self.b_ids.len())
            );
        }
        let _ = writeln!(out, "\n{}", md_escape(&self.summary()));
        let rec = &self.recommendation;
        let _ = writeln!(out, "\n## Recommendation\n");
        let _ = writeln!(
            out,
            "{} (confidence: {}; decided by: {}).\n",
            match &rec.name {
                Some(name) => format!("**{}**", md_escape(name)),
                None => "No side".to_owned(),
            },
            rec.confidence.as_str(),
            rec.decided_by
        );
        for reason in &rec.reasons {
            let _ = writeln!(out, "- {}", md_escape(reason));
        }
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

impl Confidence {
    fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// A side's value: the median, and with several runs their range and how many had one.
fn cell(value: Option<f64>, spread: Option<Spread>, unit: Unit, runs: usize) -> String {
    match spread {
        Some(s) if runs > 1 && s.min == s.max => {
            let which = if s.n == runs {
                format!("all {runs}")
            } else {
                format!("{} of {runs}", s.n)
            };
            format!("{} ({which} the same)", figure(value, unit))
        }
        Some(s) if runs > 1 => format!(
            "{} ({}-{}, {} of {runs})",
            figure(value, unit),
            figure(Some(s.min), unit),
            figure(Some(s.max), unit),
            s.n
        ),
        _ => figure(value, unit),
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
    fn flink_against_spark_names_each_side_by_its_engine() {
        let (mut a, mut b) = pair();
        b.engine = "spark".into();
        a.label = None;
        let (na, nb) = names(std::slice::from_ref(&a), std::slice::from_ref(&b));
        assert_eq!(na, format!("flink: {}", a.display_name()));
        assert_eq!(nb, "spark structured streaming", "already says spark");
        (b.label, b.id) = (None, "d-2".into());
        b.kafka_io = Some(crate::spark::LOCAL_ADAPTER.into());
        let (_, nb) = names(std::slice::from_ref(&a), std::slice::from_ref(&b));
        assert_eq!(
            nb,
            format!("spark (local Kafka adapter): {}", b.display_name()),
            "the Kafka I/O is part of the engine's name"
        );
        (b.engine, b.kafka_io) = ("flink".into(), None);
        let (na, _) = names(std::slice::from_ref(&a), std::slice::from_ref(&b));
        assert_eq!(na, a.display_name(), "one engine: no prefix");
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

    /// Three runs a side of the pair, recovery times `a` and `b` seconds.
    fn runs(a: [f64; 3], b: [f64; 3]) -> (Vec<Report>, Vec<Report>) {
        let (pa, pb) = pair();
        let side = |base: &Report, times: [f64; 3], tag: &str| -> Vec<Report> {
            times
                .iter()
                .enumerate()
                .map(|(i, &t)| {
                    let mut r = base.clone();
                    r.id = format!("{tag}-{i}");
                    r.recovery_time_s = Some(t);
                    r
                })
                .collect()
        };
        (side(&pa, a, "f"), side(&pb, b, "s"))
    }

    #[test]
    fn several_runs_a_side_compare_medians_with_their_range() {
        let (mut a, b) = runs([30.0, 38.0, 50.0], [19.0, 21.0, 20.0]);
        a[2].orders.duplicates = 7;
        let c = compare_runs(&a, &b);
        assert_eq!(
            (c.a.as_str(), c.b.as_str()),
            ("flink checkpoint 10s", "spark structured streaming")
        );
        assert_eq!(c.a_ids, ["f-0", "f-1", "f-2"]);
        let r = get(&c, "Recovery time");
        assert_eq!((r.a, r.b, r.better), (Some(38.0), Some(20.0), Better::B));
        assert_eq!(
            r.a_spread,
            Some(Spread {
                min: 30.0,
                max: 50.0,
                n: 3
            })
        );
        // Even counts take the mean of the middle two.
        let c2 = compare_runs(&a[..2], &b);
        assert_eq!(get(&c2, "Recovery time").a, Some(34.0));
        let md = c.markdown();
        for needle in [
            "Drills 3 drills: f-0, f-1, f-2 (A) and 3 drills: s-0, s-1, s-2 (B); each figure is \
             the median of a side's drills, with their range.",
            "| Recovery time | 38.0 s (30.0 s-50.0 s, 3 of 3) | 20.0 s (19.0 s-21.0 s, 3 of 3) \
             | spark structured streaming | 47.4 % |",
            "| Duplicate orders | 9 (7-9, 3 of 3) | 0 (all 3 the same) |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
    }

    #[test]
    fn lost_orders_decide_before_speed() {
        // The pair: B recovers twice as fast but lost 2 orders.
        let (a, b) = pair();
        let rec = compare(&a, &b).recommendation;
        assert_eq!(
            (
                rec.pick,
                rec.name.as_deref(),
                rec.decided_by,
                rec.confidence
            ),
            (
                Better::A,
                Some("flink checkpoint 10s"),
                "Lost orders",
                Confidence::Low
            )
        );
        assert_eq!(
            rec.reasons[0],
            "spark structured streaming lost orders (median 2), flink checkpoint 10s lost none: \
             losing data outweighs any speed"
        );
        assert!(rec
            .reasons
            .last()
            .unwrap()
            .starts_with("confidence low: one drill"));
        // Three runs each, every B run lossy: high; one lossy B run of three: medium.
        let (a3, mut b3) = runs([38.0; 3], [19.0; 3]);
        assert_eq!(
            compare_runs(&a3, &b3).recommendation.confidence,
            Confidence::High
        );
        b3[1].orders.lost = 0;
        b3[2].orders.lost = 0;
        let rec = compare_runs(&a3, &b3).recommendation;
        assert_eq!((rec.pick, rec.confidence), (Better::A, Confidence::Medium));
        assert!(
            rec.reasons[0].contains("lost orders in 1 of 3 drills"),
            "{:?}",
            rec.reasons
        );
    }

    #[test]
    fn recovery_time_decides_when_neither_loses_orders() {
        let lossless = |(mut a, mut b): (Vec<Report>, Vec<Report>)| {
            for r in a.iter_mut().chain(b.iter_mut()) {
                r.orders.lost = 0;
            }
            (a, b)
        };
        // Apart: every B run beats every A run.
        let (a, b) = lossless(runs([30.0, 38.0, 50.0], [19.0, 21.0, 20.0]));
        let rec = compare_runs(&a, &b).recommendation;
        assert_eq!(
            (rec.pick, rec.decided_by, rec.confidence),
            (Better::B, "Recovery time", Confidence::High)
        );
        assert_eq!(
            rec.reasons[0],
            "spark structured streaming recovers 47.4 % faster: median 20.0 s against flink \
             checkpoint 10s's 38.0 s"
        );
        assert_eq!(
            rec.reasons[1..3],
            [
                "flink checkpoint 10s: exactly-once held in 0 of 3; lost 0, duplicated 9 \
                 (medians)",
                "spark structured streaming: exactly-once held in 3 of 3 drills: no order lost \
                 or duplicated"
            ]
        );
        // Overlapping ranges: medium.
        let (a, b) = lossless(runs([18.0, 38.0, 50.0], [19.0, 21.0, 20.0]));
        assert_eq!(
            compare_runs(&a, &b).recommendation.confidence,
            Confidence::Medium
        );
        // Within 10 %: the tally decides, and says why recovery did not.
        let (a, b) = lossless(runs([20.0, 21.0, 22.0], [19.5, 20.0, 23.0]));
        let rec = compare_runs(&a, &b).recommendation;
        assert_eq!(rec.decided_by, "Overall tally");
        assert!(
            rec.reasons[0]
                .starts_with("recovery times are within 10 % of each other (21.0 s vs 20.0 s"),
            "{:?}",
            rec.reasons
        );
    }

    #[test]
    fn a_side_that_recovers_less_often_loses() {
        let (a, mut b) = runs([38.0; 3], [19.0; 3]);
        let mut a = a;
        for r in a.iter_mut().chain(b.iter_mut()) {
            r.orders.lost = 0;
        }
        b[0].recovered = false;
        let c = compare_runs(&a, &b);
        let r = get(&c, "Recovery time");
        assert_eq!(r.better, Better::A);
        assert_eq!(
            r.note.as_deref(),
            Some("spark structured streaming: 1 of 3 drills did not recover")
        );
        // B's median is over its two recovered runs.
        assert_eq!(r.b_spread.map(|s| s.n), Some(2));
        let rec = c.recommendation;
        assert_eq!(
            (rec.pick, rec.decided_by, rec.confidence),
            (Better::A, "Recovered", Confidence::Medium)
        );
        assert_eq!(
            rec.reasons[0],
            "spark structured streaming did not recover in 1 of 3 drills, the other side always did"
        );
    }

    #[test]
    fn an_all_clear_before_recovery_is_shown_and_not_ranked() {
        let a = sample_for_docs(); // all-clear 4 s after recovery
        let mut b = sample_for_docs();
        b.id = "d-early".into();
        b.label = Some("spark".into());
        for alert in &mut b.alerting.as_mut().unwrap().alerts {
            alert.resolve_s = Some(-10.8);
        }
        let row = |c: &Comparison| get(c, "Time to all-clear").clone();
        let r = row(&compare(&a, &b));
        assert_eq!((r.a, r.b), (Some(4.0), Some(-10.8)));
        assert_eq!((r.better, r.improvement_pct), (Better::NotApplicable, None));
        assert_eq!(
            r.note.as_deref(),
            Some("spark is below 0: too early is not better, so not ranked")
        );
        assert_eq!(
            row(&compare(&b, &b)).note.as_deref(),
            Some("both are below 0: too early is not better, so not ranked")
        );
        // From zero up, sooner is better as for any time.
        b.alerting.as_mut().unwrap().alerts[1].resolve_s = Some(2.0);
        let r = row(&compare(&a, &b));
        assert_eq!((r.better, r.improvement_pct), (Better::B, Some(50.0)));
    }

    #[test]
    fn mixed_sides_are_named_and_warned_about() {
        let mut a = sample_for_docs();
        a.label = None;
        let mut a2 = a.clone();
        a2.id = "d-2".into();
        let mut k = a.clone();
        k.scenario = "kafka".into();
        let c = compare_runs(&[a.clone(), a2.clone()], &[a2.clone(), k]);
        assert_eq!(c.a, "taskmanager (2 drills)");
        assert_eq!(c.b, "2 drills");
        assert_eq!(
            c.warnings,
            ["2 drills mixes scenarios (kafka, taskmanager): its medians mix different failures"]
        );
        let mut long = a2;
        long.fault.as_mut().unwrap().duration_s += 30.0;
        let c = compare_runs(&[a.clone()], &[a, long]);
        assert!(
            c.warnings[0].starts_with("different fault durations ("),
            "{:?}",
            c.warnings
        );
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
