//! The Markdown renderer: GitHub-flavoured tables, a heading level per nested part; the
//! chart is left out.

use std::fmt::Write as _;

use super::{
    document::{Block, Cell, Doc},
    format::md_escape,
};

/// The document as Markdown.
pub(super) fn render(doc: &Doc) -> String {
    let mut out = String::new();
    md_doc(&mut out, doc, 1);
    out
}

fn md_doc(out: &mut String, doc: &Doc, level: usize) {
    let h = "#".repeat(level);
    let _ = writeln!(out, "{h} {}\n", md_escape(&doc.title));
    let _ = writeln!(out, "{}\n", md_escape(&doc.subtitle));
    for s in &doc.sections {
        if matches!(s.block, Block::Chart) {
            continue;
        }
        let _ = writeln!(out, "{h}# {}\n", s.title);
        match &s.block {
            Block::Table {
                head,
                rows,
                numeric,
            } => {
                let _ = writeln!(out, "| {} |", head.join(" | "));
                let align: Vec<&str> = (0..head.len())
                    .map(|i| if *numeric && i > 0 { "---:" } else { "---" })
                    .collect();
                let _ = writeln!(out, "| {} |", align.join(" | "));
                for row in rows {
                    let cells: Vec<String> = row
                        .iter()
                        .map(|c| match c {
                            Cell::Verdict(v, rest) if rest.is_empty() => {
                                format!("**{}**", v.as_str())
                            }
                            Cell::Verdict(v, rest) => {
                                format!("**{}**: {}", v.as_str(), md_escape(rest))
                            }
                            Cell::Text(t) => md_escape(t),
                        })
                        .collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(out, "- {}", md_escape(i));
                }
            }
            Block::Para(p) => {
                let _ = writeln!(out, "{}", md_escape(p));
            }
            Block::Chart => {}
        }
        out.push('\n');
    }
    for part in &doc.parts {
        md_doc(out, part, level + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{format::money, markdown};
    use crate::drills::report::sample_for_docs;

    #[test]
    fn markdown_has_every_seed_field() {
        let md = markdown(&sample_for_docs());
        for needle in [
            "# Drill report: taskmanager · flink checkpoint 10s",
            "| Drill type | taskmanager: kill flink-taskmanager for 15.0 s, revert took 0.00 s |",
            "| Started (UTC) | 2026-01-01T10:00:00Z |",
            "| Total duration | 90.0 s (1m 30s) |",
            "| Downtime | 22.0 s |",
            "| Recovery time | 38.0 s |",
            "| Revert to recovered | 23.0 s |",
            "| Potentially lost orders | 0 lost, 12 failed at the door |",
            "| Performance degradation | 6",
            "| Worst per-second drop | 100.0 % |",
            "| Revert started | +45.0 s |",
            "| Data integrity | **PASS**: 9 duplicate output records",
            "50.0 orders/s · latency p50 0.35 s, p99 1.20 s · lag 20 messages",
            "| Fault injected | +30.0 s | 2026-01-01T10:00:30Z |",
            "| Duplicated | 9 |",
            "| Delayed (processed late, not lost) | $50,150.00 |",
            "| Checkpoint restored | #17 |",
            "| Job resubmission time | n/a |",
            "| FlinkTaskManagerLost | firing | critical | +40.0 s |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        let failed = money(sample_for_docs().revenue.failed_at_door_dollars);
        let revenue_loss = format!(
            "| Revenue loss | {failed} ($0.00 lost in the pipeline, {failed} failed at the door) |"
        );
        assert!(
            md.contains(&revenue_loss),
            "missing {revenue_loss:?} in\n{md}"
        );
        assert!(!md.contains("Timeline chart"));
    }
}
