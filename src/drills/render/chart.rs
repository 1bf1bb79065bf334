//! The SVG timeline chart of a report: throughput, Kafka lag and revenue at risk, one panel
//! each, under the fault window and the phases, labelled so that no two labels overlap.
//! HTML only.

use std::fmt::Write as _;

use super::format::{esc, offset};
use crate::drills::report::{Phase, PhaseName, Report, Sample};

const W: f64 = 960.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 16.0;
const LEGEND_H: f64 = 26.0;
const LABEL_ROW_H: f64 = 14.0;
const PANEL_H: f64 = 110.0;
const PANEL_GAP: f64 = 18.0;
const AXIS_H: f64 = 42.0;
const CHAR_W: f64 = 6.2; // average glyph width of 11px sans, for label collision only
const FAULT_FILL: &str = "#f85149";
const PHASE_STROKE: &str = "#57606a";

struct Series {
    title: &'static str,
    color: &'static str,
    money: bool,
    value: fn(&Sample) -> Option<f64>,
}

const SERIES: [Series; 3] = [
    Series {
        title: "Throughput (processed orders/s)",
        color: "#0969da",
        money: false,
        value: |s| Some(s.processed_per_s),
    },
    Series {
        title: "Kafka lag (messages)",
        color: "#bc4c00",
        money: false,
        value: |s| s.lag_messages.map(|l| l as f64),
    },
    Series {
        title: "Revenue at risk ($)",
        color: "#8250df",
        money: true,
        value: |s| Some(s.revenue_at_risk_dollars),
    },
];

/// A label above the panels: text, anchor x, colour.
struct TopLabel {
    text: String,
    tooltip: String,
    x: f64,
    /// Centred on `x` (the fault window) rather than starting at it (a phase mark).
    centred: bool,
    color: &'static str,
}

pub(super) fn svg_chart(r: &Report) -> String {
    if r.timeline.is_empty() {
        return "<p>No timeline samples.</p>\n".to_owned();
    }
    let plot_w = W - MARGIN_LEFT - MARGIN_RIGHT;
    let span_s = r
        .timeline
        .iter()
        .map(|s| s.at_ms)
        .chain(r.phases.iter().map(|p| p.at_ms))
        .map(|ms| r.offset_s(ms))
        .fold(r.total_duration_s, f64::max)
        .max(1.0);
    let x = |ms: i64| MARGIN_LEFT + (r.offset_s(ms).clamp(0.0, span_s) / span_s) * plot_w;

    // Fault window: injected .. reverted (or the end if never reverted).
    let fault = r.phase(PhaseName::Injected).map(|from| {
        let to = r
            .phase(PhaseName::Reverted)
            .unwrap_or(r.started_at_ms + (span_s * 1000.0) as i64);
        (x(from), x(to).max(x(from) + 1.0))
    });

    // Labels above the panels: the fault window, then every other phase.
    let mut labels = Vec::new();
    if let Some((x0, x1)) = fault {
        let what = r.fault.as_ref().map_or_else(
            || "fault".to_owned(),
            |f| format!("fault: {} {}", f.action, f.target),
        );
        labels.push(TopLabel {
            tooltip: format!(
                "{what} ({} to {})",
                offset(r, r.phase(PhaseName::Injected).unwrap_or(r.started_at_ms)),
                r.phase(PhaseName::Reverted)
                    .map_or_else(|| "end".to_owned(), |ms| offset(r, ms))
            ),
            text: what,
            x: (x0 + x1) / 2.0,
            centred: true,
            color: "#cf222e",
        });
    }
    let marks: Vec<(f64, &Phase)> = r
        .phases
        .iter()
        .filter(|p| {
            !matches!(
                p.name,
                PhaseName::BaselineStarted
                    | PhaseName::Injected
                    | PhaseName::RevertStarted
                    | PhaseName::Reverted
            )
        })
        .map(|p| (x(p.at_ms), p))
        .collect();
    for (px, p) in &marks {
        labels.push(TopLabel {
            text: p.name.title().to_owned(),
            tooltip: format!("{} at {}", p.name.title(), offset(r, p.at_ms)),
            x: *px,
            centred: false,
            color: PHASE_STROKE,
        });
    }
    let placed = place_labels(&labels);
    let rows = placed.iter().map(|(row, _, _)| row + 1).max().unwrap_or(0);
    let panels_top = LEGEND_H + rows as f64 * LABEL_ROW_H + 8.0;
    let panels_bottom = panels_top + 3.0 * PANEL_H + 2.0 * PANEL_GAP;
    let height = panels_bottom + AXIS_H;

    let mut svg = String::with_capacity(32 * 1024);
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {height}\" \
         font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif\" \
         font-size=\"11\" role=\"img\" aria-label=\"{}\">",
        esc(&format!(
            "Timeline of drill {}: throughput, Kafka lag and revenue at risk",
            r.id
        ))
    );
    legend(&mut svg);

    // Top labels, each with a short tick down to the panels; ticks first and text on a white
    // halo so a tick never runs through a neighbour's label.
    let label_y = |row: usize| LEGEND_H + (row as f64 + 1.0) * LABEL_ROW_H - 3.0;
    for ((row, _, _), l) in placed.iter().zip(&labels) {
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y1:.1}\" y2=\"{panels_top:.1}\" stroke=\"{}\" stroke-opacity=\"0.5\"/>",
            l.color,
            x = l.x,
            y1 = label_y(*row) + 3.0,
        );
    }
    for ((row, x0, anchor_end), l) in placed.iter().zip(&labels) {
        let (anchor, tx) = if *anchor_end {
            ("end", l.x - 2.0)
        } else {
            ("start", x0 + 2.0)
        };
        let _ = writeln!(
            svg,
            "<text x=\"{tx:.1}\" y=\"{:.1}\" fill=\"{}\" text-anchor=\"{anchor}\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\"><title>{}</title>{}</text>",
            label_y(*row),
            l.color,
            esc(&l.tooltip),
            esc(&l.text)
        );
    }

    for (i, series) in SERIES.iter().enumerate() {
        let top = panels_top + i as f64 * (PANEL_H + PANEL_GAP);
        panel(&mut svg, r, series, top, &x, fault, &marks);
    }

    x_axis(&mut svg, span_s, plot_w, panels_bottom);
    svg.push_str("</svg>\n");
    svg
}

/// Greedy row assignment so labels do not overlap: `(row, left x, anchored at its end)`.
fn place_labels(labels: &[TopLabel]) -> Vec<(usize, f64, bool)> {
    const MAX_ROWS: usize = 4;
    let mut row_ends: Vec<f64> = Vec::new();
    labels
        .iter()
        .map(|l| {
            let w = l.text.chars().count() as f64 * CHAR_W + 4.0;
            // Labels near the right edge grow leftwards.
            let end_anchor = l.x + if l.centred { w / 2.0 } else { w } > W - MARGIN_RIGHT;
            let (x0, x1) = if end_anchor {
                (l.x - w, l.x)
            } else if l.centred {
                (l.x - w / 2.0, l.x + w / 2.0)
            } else {
                (l.x, l.x + w)
            };
            let row = row_ends
                .iter()
                .position(|&end| x0 > end + 6.0)
                .unwrap_or_else(|| {
                    if row_ends.len() < MAX_ROWS {
                        row_ends.push(f64::NEG_INFINITY);
                        row_ends.len() - 1
                    } else {
                        MAX_ROWS - 1 // crowded: overlap in the last row rather than grow
                    }
                });
            row_ends[row] = row_ends[row].max(x1);
            (row, x0, end_anchor)
        })
        .collect()
}

fn legend(svg: &mut String) {
    let mut x = MARGIN_LEFT;
    let y = 14.0;
    for s in &SERIES {
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2.5\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#1f2328\">{}</text>",
            x + 18.0,
            s.color,
            x + 23.0,
            y + 4.0,
            esc(s.title)
        );
        x += 23.0 + s.title.len() as f64 * CHAR_W + 18.0;
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{x}\" y=\"{}\" width=\"18\" height=\"12\" fill=\"{FAULT_FILL}\" fill-opacity=\"0.16\" stroke=\"{FAULT_FILL}\" stroke-opacity=\"0.5\"/>\
         <text x=\"{}\" y=\"{}\" fill=\"#1f2328\">fault window (injected to reverted)</text>",
        y - 6.0,
        x + 23.0,
        y + 4.0
    );
    x += 23.0 + 36.0 * CHAR_W + 18.0;
    let _ = writeln!(
        svg,
        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{PHASE_STROKE}\" stroke-dasharray=\"3 3\"/>\
         <text x=\"{}\" y=\"{}\" fill=\"#1f2328\">phase</text>",
        x + 6.0,
        x + 6.0,
        y - 7.0,
        y + 6.0,
        x + 13.0,
        y + 4.0
    );
}

fn panel(
    svg: &mut String,
    r: &Report,
    series: &Series,
    top: f64,
    x: &dyn Fn(i64) -> f64,
    fault: Option<(f64, f64)>,
    marks: &[(f64, &Phase)],
) {
    let left = MARGIN_LEFT;
    let right = W - MARGIN_RIGHT;
    let bottom = top + PANEL_H;
    let values: Vec<Option<f64>> = r
        .timeline
        .iter()
        .map(|s| (series.value)(s).filter(|v| v.is_finite()))
        .collect();
    let max = nice_ceil(values.iter().flatten().fold(0.0, |m, &v| f64::max(m, v)));
    let y = |v: f64| bottom - (v.max(0.0) / max).min(1.0) * PANEL_H;

    let _ = writeln!(
        svg,
        "<rect x=\"{left}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{PANEL_H}\" fill=\"#fff\" stroke=\"#d0d7de\"/>",
        right - left
    );
    if let Some((x0, x1)) = fault {
        let _ = writeln!(
            svg,
            "<rect x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{PANEL_H}\" fill=\"{FAULT_FILL}\" fill-opacity=\"0.12\"/>",
            x1 - x0
        );
    }
    // Grid and y labels at 0, half and max.
    for frac in [0.0, 0.5, 1.0] {
        let v = max * frac;
        let gy = y(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{right}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\" stroke=\"#eaeef2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#59636e\">{}</text>",
            left - 6.0,
            gy + 4.0,
            esc(&compact(v, series.money))
        );
    }
    for (px, p) in marks {
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{top:.1}\" y2=\"{bottom:.1}\" stroke=\"{PHASE_STROKE}\" stroke-dasharray=\"3 3\" stroke-opacity=\"0.8\"><title>{}</title></line>",
            esc(&format!("{} at {}", p.name.title(), offset(r, p.at_ms)))
        );
    }

    // The series, broken where a value is missing; a faint area under each run.
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (s, v) in r.timeline.iter().zip(&values) {
        match v {
            Some(v) => runs
                .last_mut()
                .expect("never empty")
                .push((x(s.at_ms), y(*v))),
            None if runs.last().is_some_and(|run| !run.is_empty()) => runs.push(Vec::new()),
            None => {}
        }
    }
    for run in runs.iter().filter(|run| !run.is_empty()) {
        let pts: String = run
            .iter()
            .map(|(px, py)| format!("{px:.1},{py:.1}"))
            .collect::<Vec<_>>()
            .join(" ");
        let (first, last) = (run[0].0, run[run.len() - 1].0);
        let _ = writeln!(
            svg,
            "<polygon points=\"{first:.1},{bottom:.1} {pts} {last:.1},{bottom:.1}\" fill=\"{}\" fill-opacity=\"0.10\"/>\
             <polyline points=\"{pts}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" stroke-linejoin=\"round\"/>",
            series.color, series.color
        );
        if run.len() == 1 {
            let _ = writeln!(
                svg,
                "<circle cx=\"{first:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{}\"/>",
                run[0].1, series.color
            );
        }
    }
    if values.iter().all(Option::is_none) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#8c959f\">no data</text>",
            (left + right) / 2.0,
            top + PANEL_H / 2.0
        );
    }
    // Panel title last, on a white plate, so lines never run through it.
    let title_w = series.title.len() as f64 * CHAR_W + 10.0;
    let _ = writeln!(
        svg,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{title_w:.1}\" height=\"16\" rx=\"3\" fill=\"#fff\" fill-opacity=\"0.9\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"600\" fill=\"{}\">{}</text>",
        left + 3.0,
        top + 3.0,
        left + 8.0,
        top + 15.0,
        series.color,
        esc(series.title)
    );
}

fn x_axis(svg: &mut String, span_s: f64, plot_w: f64, y: f64) {
    let step = [
        1u64, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
    ]
    .into_iter()
    .find(|&s| span_s / s as f64 <= 10.0)
    .unwrap_or(14_400);
    let mut t = 0;
    while t as f64 <= span_s + 1e-9 {
        let tx = MARGIN_LEFT + t as f64 / span_s * plot_w;
        let label = if step.is_multiple_of(60) {
            format!("{}m", t / 60)
        } else {
            format!("{t}s")
        };
        let _ = writeln!(
            svg,
            "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{y:.1}\" y2=\"{:.1}\" stroke=\"#8c959f\"/>\
             <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#59636e\">{label}</text>",
            y + 4.0,
            y + 16.0
        );
        t += step;
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#424a53\">time since drill start</text>",
        MARGIN_LEFT + plot_w / 2.0,
        y + 34.0
    );
}

/// The smallest 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten that is at least `v`
/// (1 for `v <= 0`), so a panel's peak fills most of its height.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    let f = v / mag;
    let n = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .find(|&n| f <= n + 1e-9)
        .unwrap_or(10.0);
    n * mag
}

/// Axis numbers: `0`, `2.5`, `750`, `1.5k`, `$51k`, `2M`.
fn compact(v: f64, money: bool) -> String {
    let (n, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let mut s = format!("{n:.1}");
    if s.ends_with(".0") {
        s.truncate(s.len() - 2);
    }
    format!("{}{s}{suffix}", if money { "$" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::super::html;
    use super::*;
    use crate::drills::report::sample_for_docs;

    #[test]
    fn axis_numbers() {
        assert_eq!(compact(51_000.0, true), "$51k");
        assert_eq!(compact(2500.0, false), "2.5k");
        assert_eq!(compact(0.0, false), "0");
        assert_eq!(nice_ceil(142.0), 150.0);
        assert_eq!(nice_ceil(1192.0), 1500.0);
        assert_eq!(nice_ceil(50_660.0), 60_000.0);
        assert_eq!(nice_ceil(50.0), 50.0);
        assert_eq!(nice_ceil(0.0), 1.0);
    }

    #[test]
    fn one_panel_per_series_under_the_fault_window_and_the_phases() {
        let svg = svg_chart(&sample_for_docs());
        // Three panels, the fault window in each, the lag line broken by the missing polls.
        assert_eq!(svg.matches("fill-opacity=\"0.12\"").count(), 3);
        assert_eq!(svg.matches("<polyline").count(), 4);
        for t in SERIES.iter().map(|s| s.title) {
            assert!(svg.contains(t));
        }
        assert!(svg.contains("fault: kill flink-taskmanager"));
        assert!(svg.contains(">First output<"));
    }

    #[test]
    fn labels_do_not_overlap() {
        let labels: Vec<TopLabel> = [100.0, 110.0, 120.0, 400.0, 940.0]
            .into_iter()
            .map(|x| TopLabel {
                text: "Degradation detected".into(),
                tooltip: String::new(),
                x,
                centred: false,
                color: PHASE_STROKE,
            })
            .collect();
        let placed = place_labels(&labels);
        assert_eq!(
            placed.iter().map(|p| p.0).collect::<Vec<_>>(),
            [0, 1, 2, 0, 0]
        );
        assert!(placed[4].2, "the right-most label grows leftwards");
    }

    #[test]
    fn empty_timeline_renders_without_a_chart() {
        let mut r = sample_for_docs();
        r.timeline.clear();
        r.phases.clear();
        let page = html(&r);
        assert!(page.contains("No timeline samples."));
        assert!(page.contains("No phases recorded."));
    }
}
