//! The document both renderers walk: a report laid out as titled sections of tables, lists
//! and paragraphs, with the words and the order of its figures, and one nested document per
//! part of a comprehensive drill.
//!
//! Owns the layout (which figures, in which order, with which words; the summary's headline
//! figures are read and named as `drills::figures` has them); not how it is written
//! (`markdown`, `html`) nor the chart (`chart`). Pure.

use std::fmt::Write as _;

use super::format::{count, figure, money, na, offset, pct, rate, secs, signed_count, utc};
use crate::drills::{
    figures::{Figure, DEGRADATION, DOWNTIME, RECOVERY_TIME, REVERT_TO_RECOVERED},
    report::{Report, Verdict},
};

/// A report laid out as titled sections of tables and lists.
pub(super) struct Doc<'a> {
    pub(super) report: &'a Report,
    pub(super) title: String,
    pub(super) subtitle: String,
    pub(super) sections: Vec<Section>,
    pub(super) parts: Vec<Doc<'a>>,
}

pub(super) struct Section {
    pub(super) title: &'static str,
    pub(super) block: Block,
}

pub(super) enum Block {
    /// `numeric`: every column but the first is right-aligned.
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<Cell>>,
        numeric: bool,
    },
    List(Vec<String>),
    Para(String),
    /// The timeline chart; HTML only.
    Chart,
}

pub(super) enum Cell {
    Text(String),
    /// A verdict badge followed by text.
    Verdict(Verdict, String),
}

fn kv(rows: Vec<(&str, String)>) -> Vec<Vec<Cell>> {
    rows.into_iter()
        .map(|(k, v)| vec![Cell::Text(k.to_owned()), Cell::Text(v)])
        .collect()
}

impl<'a> Doc<'a> {
    pub(super) fn of(r: &'a Report) -> Doc<'a> {
        let mut title = format!("Drill report: {}", r.scenario);
        if let Some(label) = r.label.as_deref().filter(|l| !l.trim().is_empty()) {
            let _ = write!(title, " · {label}");
        }
        let subtitle = format!(
            "Drill {} · started {} · {}",
            r.id,
            utc(r.started_at_ms),
            secs(Some(r.total_duration_s))
        );

        let mut sections = vec![
            Section {
                title: "Summary",
                block: Block::Table {
                    head: vec!["Metric", "Value"],
                    rows: summary_rows(r),
                    numeric: false,
                },
            },
            Section {
                title: "Timeline chart",
                block: Block::Chart,
            },
            Section {
                title: "Data integrity",
                block: Block::List(r.integrity.details.clone()),
            },
            Section {
                title: "Phase timeline",
                block: phases_block(r),
            },
            Section {
                title: "Orders",
                block: Block::Table {
                    head: vec!["Orders", "Count"],
                    rows: kv(vec![
                        ("Sent", count(r.orders.sent)),
                        ("Acknowledged by Kafka", count(r.orders.acked)),
                        (
                            "In flight at the start (acked before)",
                            count(r.orders.in_flight_at_start),
                        ),
                        ("Processed (distinct)", count(r.orders.processed)),
                        ("Lost", count(r.orders.lost)),
                        ("Duplicated", count(r.orders.duplicates)),
                        ("Delayed (past the SLA)", count(r.orders.delayed)),
                        ("Failed at the door", count(r.orders.failed_at_door)),
                        ("Unexpected", count(r.orders.unexpected)),
                        ("Invalid", count(r.orders.invalid)),
                    ]),
                    numeric: true,
                },
            },
            Section {
                title: "Revenue",
                block: Block::Table {
                    head: vec!["Revenue", "Dollars"],
                    rows: kv(vec![
                        ("Lost (never processed)", money(r.revenue.lost_dollars)),
                        (
                            "Delayed (processed late, not lost)",
                            money(r.revenue.delayed_dollars),
                        ),
                        (
                            "Failed at the door (client was told)",
                            money(r.revenue.failed_at_door_dollars),
                        ),
                        ("Peak at risk", money(r.revenue.peak_at_risk_dollars)),
                    ]),
                    numeric: true,
                },
            },
            Section {
                title: "Throughput",
                block: Block::Table {
                    head: vec!["Throughput", "Value"],
                    rows: kv(vec![
                        ("Baseline", rate(r.throughput.baseline_orders_per_s)),
                        (
                            "During the fault",
                            rate(r.throughput.during_fault_orders_per_s),
                        ),
                        (
                            "After recovery",
                            rate(r.throughput.after_recovery_orders_per_s),
                        ),
                        (
                            "Degradation (impact window)",
                            pct(r.throughput.degradation_pct),
                        ),
                        (
                            "Worst per-second drop",
                            r.throughput.worst_drop_pct.map_or_else(na, pct),
                        ),
                    ]),
                    numeric: true,
                },
            },
            Section {
                title: "Flink",
                block: Block::Table {
                    head: vec!["Flink", "Value"],
                    rows: kv(vec![
                        ("Restarts", count(r.flink.restarts)),
                        (
                            "Checkpoint restored",
                            r.flink
                                .checkpoint_restored
                                .map_or_else(na, |id| format!("#{id}")),
                        ),
                        ("Job resubmission time", secs(r.flink.resubmit_s)),
                        (
                            "Job id before",
                            r.flink.job_id_before.clone().unwrap_or_else(na),
                        ),
                        (
                            "Job id after",
                            r.flink.job_id_after.clone().unwrap_or_else(na),
                        ),
                    ]),
                    numeric: false,
                },
            },
            Section {
                title: "Output on Flink's clock",
                block: output_block(r),
            },
            Section {
                title: "Steady-state gate",
                block: gate_block(r),
            },
            Section {
                title: "Alerting",
                block: alerting_block(r),
            },
            Section {
                title: "Alert transitions",
                block: alerts_block(r),
            },
        ];
        if !r.parts.is_empty() {
            sections.push(Section {
                title: "Parts",
                block: Block::Para(format!(
                    "This drill ran {} {}; each has its own section below.",
                    r.parts.len(),
                    if r.parts.len() == 1 { "step" } else { "steps" }
                )),
            });
        }
        let n = r.parts.len();
        let parts = r
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut d = Doc::of(p);
                d.title = format!(
                    "Part {} of {n}: {}",
                    i + 1,
                    &d.title["Drill report: ".len()..]
                );
                d
            })
            .collect();
        Doc {
            report: r,
            title,
            subtitle,
            sections,
            parts,
        }
    }
}

/// The output gaps and catch-up the time figures come from.
fn output_block(r: &Report) -> Block {
    let Some(o) = &r.output else {
        return Block::Para("Not recorded (a report before schema 3, or a combined one).".into());
    };
    let mut rows = kv(vec![
        (
            "Window",
            format!(
                "{} to {} (injection to drain)",
                offset(r, o.from_ms),
                offset(r, o.to_ms)
            ),
        ),
        ("Output records in the window", count(o.records)),
        (
            "Gap threshold",
            format!("pauses of {} or more", secs(Some(o.min_gap_s))),
        ),
    ]);
    for (i, g) in o.gaps.iter().enumerate() {
        rows.extend(kv(vec![(
            if i == 0 { "Output gaps" } else { "" },
            format!(
                "{} to {}: {}",
                offset(r, g.start_ms),
                offset(r, g.end_ms),
                secs(Some((g.end_ms - g.start_ms) as f64 / 1000.0))
            ),
        )]));
    }
    if o.gaps.is_empty() {
        rows.extend(kv(vec![("Output gaps", "none".to_owned())]));
    }
    if let Some(since) = o.stalled_since_ms {
        rows.extend(kv(vec![(
            "Stalled at the window's end",
            format!("since {}", offset(r, since)),
        )]));
    }
    rows.extend(kv(vec![(
        "Caught up (no output later than the band)",
        o.caught_up_at_ms.map_or_else(
            || "not within the window".to_owned(),
            |at| {
                format!(
                    "{} (band {})",
                    offset(r, at),
                    secs(Some(o.caught_up_latency_s))
                )
            },
        ),
    )]));
    Block::Table {
        head: vec!["Output", "Value"],
        rows,
        numeric: false,
    }
}

/// What the gate saw when it let the drill start.
fn gate_block(r: &Report) -> Block {
    let Some(g) = &r.gate else {
        return Block::Para("Not recorded (a report before schema 3, or a combined one).".into());
    };
    let strategy = g.restart_strategy.as_ref().map_or_else(na, |s| {
        let reset = s.reset_backoff_threshold_s.map_or_else(String::new, |t| {
            format!(", backoff resets after {}", secs(Some(t)))
        });
        let backoff = match (s.initial_backoff_s, s.max_backoff_s) {
            (Some(i), Some(m)) => format!(", backoff {} to {}", secs(Some(i)), secs(Some(m))),
            _ => String::new(),
        };
        format!("{}{backoff}{reset}", s.kind)
    });
    Block::Table {
        head: vec!["Gate", "Value"],
        rows: kv(vec![
            ("Waited for the steady state", secs(Some(g.waited_s))),
            ("Throughput", rate(g.throughput_orders_per_s)),
            (
                "Lag",
                format!(
                    "{} · {}",
                    g.lag_messages
                        .map_or_else(na, |l| format!("{} messages", signed_count(l))),
                    secs(g.lag_s)
                ),
            ),
            (
                "End-to-end latency",
                format!(
                    "p50 {}, p99 {}",
                    secs(g.latency_p50_s),
                    secs(g.latency_p99_s)
                ),
            ),
            ("Flink job running for", secs(g.job_running_for_s)),
            ("Flink restart strategy", strategy),
            (
                "Restart backoff reset",
                match g.backoff_reset {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "no".to_owned(),
                    None => {
                        "not waited for (no threshold, or longer than the gate waits)".to_owned()
                    }
                },
            ),
        ]),
        numeric: false,
    }
}

fn summary_rows(r: &Report) -> Vec<Vec<Cell>> {
    let drill_type = match &r.fault {
        Some(f) => format!(
            "{}: {} {} for {}{}",
            r.scenario,
            f.action,
            f.target,
            secs(Some(f.duration_s)),
            f.revert_s
                .map_or_else(String::new, |s| format!(", revert took {}", secs(Some(s))))
        ),
        None if !r.parts.is_empty() => format!(
            "{} ({})",
            r.scenario,
            r.parts
                .iter()
                .map(|p| p.scenario.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => r.scenario.clone(),
    };
    let read = |f: &Figure| (f.title, figure((f.value)(r), f.unit));
    let recovery = match ((RECOVERY_TIME.value)(r), r.recovered) {
        (None, false) => "n/a (recovery timed out)".to_owned(),
        (value, _) => figure(value, RECOVERY_TIME.unit),
    };
    let b = &r.baseline;
    let baseline = format!(
        "{} · latency p50 {}, p99 {} · lag {}",
        rate(b.orders_per_s),
        secs(b.latency_p50_s),
        secs(b.latency_p99_s),
        b.lag_messages
            .map_or_else(na, |l| format!("{} messages", signed_count(l)))
    );
    let mut rows = kv(vec![
        ("Drill type", drill_type),
        ("Engine", r.engine_name()),
        ("Label", r.label.clone().unwrap_or_else(na)),
        ("Started (UTC)", utc(r.started_at_ms)),
        ("Total duration", secs(Some(r.total_duration_s))),
        read(&DOWNTIME),
        (RECOVERY_TIME.title, recovery),
        read(&REVERT_TO_RECOVERED),
        (
            "Recovered",
            if r.recovered { "yes" } else { "no" }.to_owned(),
        ),
        (
            "Potentially lost orders",
            format!(
                "{} lost, {} failed at the door",
                count(r.orders.lost),
                count(r.orders.failed_at_door)
            ),
        ),
        (
            "Revenue loss",
            format!(
                "{} ({} lost in the pipeline, {} failed at the door)",
                money(r.revenue.lost_dollars + r.revenue.failed_at_door_dollars),
                money(r.revenue.lost_dollars),
                money(r.revenue.failed_at_door_dollars)
            ),
        ),
        read(&DEGRADATION),
    ]);
    rows.push(vec![
        Cell::Text("Data integrity".to_owned()),
        Cell::Verdict(r.integrity.verdict, r.integrity.details.join("; ")),
    ]);
    if let Some(a) = &r.alerting {
        rows.push(vec![
            Cell::Text("Alerting".to_owned()),
            Cell::Verdict(a.verdict, a.details.join("; ")),
        ]);
    }
    rows.extend(kv(vec![("Baseline", baseline)]));
    rows
}

fn phases_block(r: &Report) -> Block {
    if r.phases.is_empty() {
        return Block::Para("No phases recorded.".to_owned());
    }
    Block::Table {
        head: vec!["Phase", "Offset from start", "Time (UTC)"],
        rows: r
            .phases
            .iter()
            .map(|p| {
                vec![
                    Cell::Text(p.name.title().to_owned()),
                    Cell::Text(offset(r, p.at_ms)),
                    Cell::Text(utc(p.at_ms)),
                ]
            })
            .collect(),
        numeric: true,
    }
}

/// Per alert: expected or not, when it fired and resolved, time to detect and to resolve;
/// then the expected alerts that never fired.
fn alerting_block(r: &Report) -> Block {
    let Some(a) = &r.alerting else {
        return Block::Para("Not scored (a report from before alert scoring).".to_owned());
    };
    if a.alerts.is_empty() && a.missing.is_empty() {
        return Block::Para("No alert was expected and none fired.".to_owned());
    }
    let mut rows: Vec<Vec<Cell>> = a
        .alerts
        .iter()
        .map(|o| {
            vec![
                Cell::Text(o.name.clone()),
                Cell::Text(if o.expected { "yes" } else { "no" }.to_owned()),
                Cell::Text(o.severity.clone().unwrap_or_else(na)),
                Cell::Text(offset(r, o.fired_at_ms)),
                Cell::Text(secs(Some(o.detect_s))),
                Cell::Text(
                    o.resolved_at_ms
                        .map_or_else(|| "never (unresolved)".to_owned(), |at| offset(r, at)),
                ),
                Cell::Text(secs(o.resolve_s)),
            ]
        })
        .collect();
    for name in &a.missing {
        rows.push(vec![
            Cell::Text(name.clone()),
            Cell::Text("yes".to_owned()),
            Cell::Text(na()),
            Cell::Text("never fired".to_owned()),
            Cell::Text(na()),
            Cell::Text(na()),
            Cell::Text(na()),
        ]);
    }
    Block::Table {
        head: vec![
            "Alert",
            "Expected",
            "Severity",
            "Fired (offset)",
            "Time to detect",
            "Resolved (offset)",
            "Time to resolve",
        ],
        rows,
        numeric: false,
    }
}

fn alerts_block(r: &Report) -> Block {
    if r.alerts.is_empty() {
        return Block::Para("No alerts fired.".to_owned());
    }
    Block::Table {
        head: vec!["Alert", "Status", "Severity", "Offset from start"],
        rows: r
            .alerts
            .iter()
            .map(|a| {
                vec![
                    Cell::Text(a.name.clone()),
                    Cell::Text(a.status.clone()),
                    Cell::Text(a.severity.clone().unwrap_or_else(na)),
                    Cell::Text(offset(r, a.at_ms)),
                ]
            })
            .collect(),
        numeric: false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{html, markdown};
    use crate::drills::report::{sample_for_docs, Orders};

    #[test]
    fn missing_values_read_na_and_failures_show() {
        let mut r = sample_for_docs();
        r.recovered = false;
        r.recovery_time_s = None;
        r.downtime_s = None;
        r.baseline.latency_p50_s = None;
        r.alerts.clear();
        r.orders = Orders {
            lost: 3,
            ..r.orders
        };
        r.integrity = crate::drills::report::integrity(&r.orders, true);
        let md = markdown(&r);
        assert!(md.contains("| Downtime | n/a |"));
        assert!(md.contains("| Recovery time | n/a (recovery timed out) |"));
        assert!(md.contains("| Recovered | no |"));
        assert!(md.contains("latency p50 n/a"));
        assert!(md.contains("**FAIL**: 3 orders acknowledged"));
        assert!(md.contains("No alerts fired."));
        let page = html(&r);
        assert!(page.contains("<span class=\"badge fail\">FAIL</span>"));
    }
}
