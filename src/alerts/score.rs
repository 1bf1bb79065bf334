//! Alert scoring of one drill: did the expected alerts fire, how fast, did they resolve.
//!
//! Pure: takes the transitions the webhook recorded and the drill's times, returns the
//! report's [`Alerting`] section and [`AlertEvent`] list. Times are Alertmanager's own
//! (`startsAt`, `endsAt`), not when the notification arrived, so group waits and retries
//! do not count as detection time.

use std::collections::BTreeMap;

use super::webhook::{Status, Transition};
use crate::drills::report::{AlertEvent, AlertOutcome, Alerting, Verdict};

/// The drill's times that scoring needs, unix ms.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The drill started (baseline start): alerts that started firing before are not its.
    pub started_ms: i64,
    /// The fault was injected: time to detect counts from here.
    pub injected_ms: i64,
    /// The pipeline recovered: time to resolve counts from here.
    pub recovered_ms: Option<i64>,
    /// The drill ended: what has not resolved by then is unresolved.
    pub ended_ms: i64,
}

/// What scoring still waits for: expected alerts that have not fired and alerts that fired
/// and have not resolved. Empty when the drill may end.
pub fn pending(transitions: &[Transition], expected: &[String], started_ms: i64) -> Vec<String> {
    let by_name = outcomes(transitions, started_ms, i64::MAX);
    let mut pending = never_fired(expected, &by_name);
    pending.extend(
        by_name
            .iter()
            .filter(|(_, o)| o.firing > 0)
            .map(|(name, _)| name.clone()),
    );
    pending
}

/// Scores the drill in `window` against `expected`; `transitions` may hold anything the
/// webhook recorded (those outside the window are ignored).
pub fn score(
    transitions: &[Transition],
    expected: &[String],
    window: Window,
) -> (Alerting, Vec<AlertEvent>) {
    let by_name = outcomes(transitions, window.started_ms, window.ended_ms);
    let mut alerts: Vec<AlertOutcome> = by_name
        .iter()
        .map(|(name, o)| {
            let resolved_at_ms = (o.firing == 0).then_some(o.last_resolved_ms).flatten();
            AlertOutcome {
                name: name.clone(),
                severity: o.severity.clone(),
                expected: expected.contains(name),
                fired_at_ms: o.first_fired_ms,
                resolved_at_ms,
                detect_s: seconds(o.first_fired_ms - window.injected_ms),
                resolve_s: resolved_at_ms
                    .zip(window.recovered_ms)
                    .map(|(resolved, recovered)| seconds(resolved - recovered)),
            }
        })
        .collect();
    alerts.sort_by(|a, b| (a.fired_at_ms, &a.name).cmp(&(b.fired_at_ms, &b.name)));
    let missing = never_fired(expected, &by_name);
    let unresolved: Vec<String> = alerts
        .iter()
        .filter(|a| a.resolved_at_ms.is_none())
        .map(|a| a.name.clone())
        .collect();

    let mut details = Vec::new();
    for a in &alerts {
        let kind = if a.expected { "expected" } else { "unexpected" };
        let resolved = match (a.resolved_at_ms, a.resolve_s) {
            (Some(_), Some(s)) if s < 0.0 => format!("resolved {:.1} s before recovery", -s),
            (Some(_), Some(s)) => format!("resolved {s:.1} s after recovery"),
            (Some(_), None) => "resolved (the drill did not recover)".to_string(),
            (None, _) => "never resolved".to_string(),
        };
        let fired = if a.detect_s < 0.0 {
            format!("fired {:.1} s before the fault", -a.detect_s)
        } else {
            format!("fired {:.1} s after the fault", a.detect_s)
        };
        details.push(format!("{} ({kind}) {fired}, {resolved}", a.name));
    }
    for name in &missing {
        details.push(format!("{name} was expected and never fired"));
    }
    if expected.is_empty() && alerts.is_empty() {
        details.push("no alert was expected and none fired".to_string());
    }
    let verdict = if missing.is_empty() && unresolved.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };

    let mut events: Vec<AlertEvent> = transitions
        .iter()
        .filter(|t| t.starts_at_ms >= window.started_ms && t.at_ms <= window.ended_ms)
        .map(|t| AlertEvent {
            name: t.name.clone(),
            status: t.status.as_str().to_string(),
            severity: t.severity.clone(),
            at_ms: t.at_ms,
        })
        .collect();
    events.sort_by_key(|e| e.at_ms);
    events.dedup();
    (
        Alerting {
            verdict,
            expected: expected.to_vec(),
            alerts,
            missing,
            unresolved,
            details,
        },
        events,
    )
}

/// Per alert name: its instances that started firing in `[from, to]` and how they ended.
#[derive(Debug)]
struct Outcome {
    severity: Option<String>,
    first_fired_ms: i64,
    /// Instances firing at `to`.
    firing: usize,
    last_resolved_ms: Option<i64>,
}

fn outcomes(transitions: &[Transition], from: i64, to: i64) -> BTreeMap<String, Outcome> {
    // Each instance (fingerprint + start) ends resolved or still firing.
    let mut instances: BTreeMap<(&str, i64), (&Transition, Option<i64>)> = BTreeMap::new();
    for t in transitions {
        if t.starts_at_ms < from || t.starts_at_ms > to {
            continue;
        }
        let entry = instances
            .entry((t.fingerprint.as_str(), t.starts_at_ms))
            .or_insert((t, None));
        if t.status == Status::Resolved && t.at_ms <= to {
            entry.1 = Some(entry.1.map_or(t.at_ms, |at: i64| at.max(t.at_ms)));
        }
    }
    let mut by_name: BTreeMap<String, Outcome> = BTreeMap::new();
    for (first, resolved) in instances.into_values() {
        let o = by_name.entry(first.name.clone()).or_insert(Outcome {
            severity: first.severity.clone(),
            first_fired_ms: first.starts_at_ms,
            firing: 0,
            last_resolved_ms: None,
        });
        if first.starts_at_ms < o.first_fired_ms {
            o.first_fired_ms = first.starts_at_ms;
            o.severity = first.severity.clone();
        }
        match resolved {
            Some(at) => o.last_resolved_ms = Some(o.last_resolved_ms.map_or(at, |l| l.max(at))),
            None => o.firing += 1,
        }
    }
    by_name
}

/// The expected alerts that have no instance in `by_name`.
fn never_fired(expected: &[String], by_name: &BTreeMap<String, Outcome>) -> Vec<String> {
    expected
        .iter()
        .filter(|name| !by_name.contains_key(name.as_str()))
        .cloned()
        .collect()
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_226_000_000;

    fn t(name: &str, fp: &str, status: Status, starts_s: i64, at_s: i64) -> Transition {
        Transition {
            fingerprint: fp.into(),
            name: name.into(),
            severity: Some("critical".into()),
            status,
            starts_at_ms: T0 + starts_s * 1000,
            at_ms: T0 + at_s * 1000,
        }
    }

    fn window() -> Window {
        Window {
            started_ms: T0,
            injected_ms: T0 + 20_000,
            recovered_ms: Some(T0 + 50_000),
            ended_ms: T0 + 90_000,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn expected_alerts_that_fire_and_resolve_pass_with_their_times() {
        use Status::*;
        let transitions = [
            // Left over from before the drill: not this drill's.
            t("CheckpointStale", "c", Firing, -30, -30),
            t("CheckpointStale", "c", Resolved, -30, 5),
            t("FlinkTaskManagerLost", "a", Firing, 27, 27),
            // Alertmanager repeats a firing alert every group_interval.
            t("FlinkTaskManagerLost", "a", Firing, 27, 27),
            t("FlinkJobNotRunning", "b", Firing, 24, 24),
            t("FlinkJobNotRunning", "b", Resolved, 24, 45),
            t("FlinkTaskManagerLost", "a", Resolved, 27, 58),
        ];
        let expected = names(&["FlinkTaskManagerLost", "FlinkJobNotRunning"]);
        let (a, events) = score(&transitions, &expected, window());
        assert_eq!(a.verdict, Verdict::Pass, "{a:?}");
        assert!(a.missing.is_empty() && a.unresolved.is_empty());
        let got: Vec<_> = a
            .alerts
            .iter()
            .map(|o| (o.name.as_str(), o.detect_s, o.resolve_s))
            .collect();
        assert_eq!(
            got,
            [
                ("FlinkJobNotRunning", 4.0, Some(-5.0)),
                ("FlinkTaskManagerLost", 7.0, Some(8.0)),
            ]
        );
        assert_eq!(
            a.details[1],
            "FlinkTaskManagerLost (expected) fired 7.0 s after the fault, resolved 8.0 s after recovery"
        );
        // Transitions in time order, the repeated firing once, the earlier alert left out.
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.name.as_str(), e.status.as_str(), (e.at_ms - T0) / 1000))
            .collect();
        assert_eq!(
            seen,
            [
                ("FlinkJobNotRunning", "firing", 24),
                ("FlinkTaskManagerLost", "firing", 27),
                ("FlinkJobNotRunning", "resolved", 45),
                ("FlinkTaskManagerLost", "resolved", 58),
            ]
        );
    }

    #[test]
    fn a_missing_page_or_a_missing_all_clear_fails() {
        use Status::*;
        let transitions = [
            t("KafkaUnavailable", "k", Firing, 25, 25),
            t("ConsumerLagHigh", "l", Firing, 30, 30),
            t("ConsumerLagHigh", "l", Resolved, 30, 60),
            // Resolved only after the drill ended: still unresolved at its end.
            t("KafkaUnavailable", "k", Resolved, 25, 95),
        ];
        let expected = names(&["KafkaUnavailable", "FlinkJobNotRunning"]);
        let (a, _) = score(&transitions, &expected, window());
        assert_eq!(a.verdict, Verdict::Fail);
        assert_eq!(a.missing, ["FlinkJobNotRunning"]);
        assert_eq!(a.unresolved, ["KafkaUnavailable"]);
        let lag = a
            .alerts
            .iter()
            .find(|o| o.name == "ConsumerLagHigh")
            .unwrap();
        assert!(!lag.expected);
        assert!(a
            .details
            .contains(&"FlinkJobNotRunning was expected and never fired".to_string()));
        assert!(a.details.contains(
            &"KafkaUnavailable (expected) fired 5.0 s after the fault, never resolved".to_string()
        ));
    }

    #[test]
    fn an_alert_resolves_when_its_last_instance_does() {
        use Status::*;
        let transitions = [
            t("FlinkTaskManagerLost", "tm1", Firing, 22, 22),
            t("FlinkTaskManagerLost", "tm2", Firing, 26, 26),
            t("FlinkTaskManagerLost", "tm1", Resolved, 22, 40),
        ];
        let expected = names(&["FlinkTaskManagerLost"]);
        assert_eq!(
            pending(&transitions, &expected, T0),
            ["FlinkTaskManagerLost"]
        );
        let (a, _) = score(&transitions, &expected, window());
        assert_eq!(a.unresolved, ["FlinkTaskManagerLost"]);
        assert_eq!(a.alerts[0].detect_s, 2.0);

        let mut all = transitions.to_vec();
        all.push(t("FlinkTaskManagerLost", "tm2", Resolved, 26, 61));
        assert!(pending(&all, &expected, T0).is_empty());
        let (a, _) = score(&all, &expected, window());
        assert_eq!(a.verdict, Verdict::Pass);
        assert_eq!(a.alerts[0].resolve_s, Some(11.0));
    }

    #[test]
    fn nothing_expected_and_nothing_fired_passes_and_says_so() {
        let (a, events) = score(&[], &[], window());
        assert_eq!(a.verdict, Verdict::Pass);
        assert!(events.is_empty());
        assert_eq!(a.details, ["no alert was expected and none fired"]);
        assert_eq!(pending(&[], &names(&["A"]), T0), ["A"]);
    }
}
