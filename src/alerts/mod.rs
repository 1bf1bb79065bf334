//! Alerts: what Alertmanager tells firedrill, and what drills expect of it.
//!
//! - `webhook`: the Alertmanager webhook payload (version 4), validated into transitions;
//! - `score`: a drill's alert verdict (expected alerts fired, time to detect, time to
//!   resolve, all-clear), pure;
//! - this file: the `[alerts]` config, and the [`Alerts`] store that `POST /alerts/webhook`
//!   feeds and drills read: the alerts firing now (exported as `firedrill_alerts_firing`)
//!   and a bounded history of transitions with Alertmanager's own times.
//!
//! Does not own: HTTP (`http::alerts`) nor when a drill waits for its all-clear (the runner).

pub mod score;
pub mod webhook;

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use webhook::{Status, Transition};

use crate::{config_value::Invalid, drills::scenario::Scenario, metrics::register};

/// Transitions kept for drills to score (a drill reads those since its start).
const HISTORY: usize = 4096;

/// Distinct `alertname` label values exported; further names are exported as `other`.
pub const MAX_NAMES: usize = 100;

/// `[alerts]`: what each drill scenario is expected to page with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Per scenario (`taskmanager`, `jobmanager`, `kafka`), the alert names it must fire;
    /// the defaults match `prometheus/rules/alerts.yml`. An empty list expects none.
    pub expected: BTreeMap<String, Vec<String>>,
    /// After the drain, how long a drill waits for expected alerts that have not fired yet
    /// and for the all-clear of every alert that fired; what is still pending then is
    /// reported as missing or unresolved.
    #[serde(with = "crate::config_value::duration")]
    pub resolve_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        Config {
            expected: BTreeMap::from([
                // Not FlinkJobNotRunning: with a free slot on the other TaskManager, Flink's
                // region failover takes the job through RESTARTING in about a second, under
                // one scrape plus the alert's `for:` (seen: fired in 2 of 3 drills).
                ("taskmanager".to_string(), list(&["FlinkTaskManagerLost"])),
                ("jobmanager".to_string(), list(&["FlinkJobNotRunning"])),
                ("kafka".to_string(), list(&["KafkaUnavailable"])),
                // Spark: the driver gone is no application; an executor is relaunched by its
                // worker within seconds, and a worker's loss leaves the other's executor
                // running, so neither stops the application for two evaluations.
                ("driver".to_string(), list(&["SparkAppNotRunning"])),
                ("executor".to_string(), Vec::new()),
                ("worker".to_string(), Vec::new()),
            ]),
            resolve_timeout: Duration::from_secs(90),
        }
    }
}

impl Config {
    /// Scenario names must be real ones (a typo would silently expect nothing).
    pub fn validate(&self) -> Result<(), Invalid> {
        for (scenario, names) in &self.expected {
            match Scenario::parse(scenario) {
                Some(Scenario::Comprehensive) | None => {
                    return Err(Invalid::new(
                        format!("alerts.expected.{scenario}"),
                        "not a scenario with a fault of its own: taskmanager, jobmanager, kafka, executor, \
                         worker or driver",
                    ))
                }
                Some(_) => {}
            }
            if names.iter().any(|n| n.is_empty()) {
                return Err(Invalid::new(
                    format!("alerts.expected.{scenario}"),
                    "an alert name is empty",
                ));
            }
        }
        Ok(())
    }

    /// The alerts `scenario` is expected to fire.
    pub fn expected_for(&self, scenario: Scenario) -> Vec<String> {
        self.expected
            .get(scenario.as_str())
            .cloned()
            .unwrap_or_default()
    }
}

/// An alert firing now, as `GET /alerts` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Firing {
    /// Alert name.
    pub name: String,
    /// `severity` label.
    pub severity: Option<String>,
    /// Alertmanager's fingerprint.
    pub fingerprint: String,
    /// When it started firing, unix ms.
    pub starts_at_ms: i64,
}

/// What a notification changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// Transitions not seen before (Alertmanager repeats firing alerts).
    pub new: usize,
    /// Transitions already known.
    pub repeated: usize,
}

#[derive(Clone)]
struct Metrics {
    firing: IntGaugeVec,
    notifications: IntCounterVec,
    requests: IntCounterVec,
}

impl Metrics {
    fn register(registry: &Registry) -> Self {
        Metrics {
            firing: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "firedrill_alerts_firing",
                        "Alert instances firing, as Alertmanager's webhook said last.",
                    ),
                    &["alertname", "severity"],
                )
                .expect("valid metric"),
            ),
            notifications: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "firedrill_alert_notifications_total",
                        "Alert transitions received (firing, resolved), repeats not counted.",
                    ),
                    &["status"],
                )
                .expect("valid metric"),
            ),
            requests: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "firedrill_alert_webhook_requests_total",
                        "Webhook requests by result (accepted, rejected).",
                    ),
                    &["result"],
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// The state the webhook feeds: a short critical section per notification, never held
/// across an `.await`, so a plain mutex is right (the HTTP handlers and drills only copy
/// out of it).
#[derive(Default)]
struct Store {
    firing: HashMap<String, Firing>,
    history: VecDeque<Transition>,
    names: HashSet<String>,
}

impl Store {
    /// The exported label value of `name`: itself while fewer than [`MAX_NAMES`] are known.
    fn label(&mut self, name: &str) -> String {
        if self.names.contains(name) {
            return name.to_string();
        }
        if self.names.len() < MAX_NAMES {
            self.names.insert(name.to_string());
            return name.to_string();
        }
        "other".to_string()
    }
}

/// Bounded `severity` label values.
fn severity_label(severity: Option<&str>) -> &'static str {
    match severity {
        Some("critical") => "critical",
        Some("warning") => "warning",
        Some("info") => "info",
        None => "none",
        Some(_) => "other",
    }
}

/// The alert store; cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    store: Arc<Mutex<Store>>,
    metrics: Metrics,
    /// Bumped on every new transition, so drills waiting for an all-clear wake up.
    changed: Arc<watch::Sender<u64>>,
}

impl Alerts {
    /// An empty store with its metrics registered.
    pub fn new(registry: &Registry) -> Self {
        Alerts {
            store: Arc::default(),
            metrics: Metrics::register(registry),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    /// Records a webhook body; a bad one changes nothing and says why.
    pub fn receive(&self, body: &[u8]) -> Result<Recorded, String> {
        match webhook::parse(body) {
            Ok(notification) => {
                self.metrics.requests.with_label_values(&["accepted"]).inc();
                Ok(self.record(notification.transitions))
            }
            Err(e) => {
                self.metrics.requests.with_label_values(&["rejected"]).inc();
                Err(e)
            }
        }
    }

    /// A request that never reached [`Alerts::receive`] (too large, unauthorized).
    pub fn rejected(&self) {
        self.metrics.requests.with_label_values(&["rejected"]).inc();
    }

    fn record(&self, transitions: Vec<Transition>) -> Recorded {
        let mut recorded = Recorded {
            new: 0,
            repeated: 0,
        };
        {
            let mut store = self.store.lock().expect("alert store lock");
            for t in transitions {
                let new = match t.status {
                    Status::Firing => match store.firing.get(&t.fingerprint) {
                        Some(f) if f.starts_at_ms == t.starts_at_ms => false,
                        previous => {
                            let previous = previous.cloned();
                            if let Some(previous) = previous {
                                // A new start without a resolve in between: the old
                                // instance ended unseen; count only the new one.
                                self.firing_gauge(&mut store, &previous, -1);
                            }
                            let firing = Firing {
                                name: t.name.clone(),
                                severity: t.severity.clone(),
                                fingerprint: t.fingerprint.clone(),
                                starts_at_ms: t.starts_at_ms,
                            };
                            self.firing_gauge(&mut store, &firing, 1);
                            store.firing.insert(t.fingerprint.clone(), firing);
                            true
                        }
                    },
                    Status::Resolved => {
                        let known = store.history.iter().any(|h| {
                            h.status == Status::Resolved
                                && h.fingerprint == t.fingerprint
                                && h.starts_at_ms == t.starts_at_ms
                        });
                        if let Some(f) = store
                            .firing
                            .get(&t.fingerprint)
                            .filter(|f| f.starts_at_ms <= t.starts_at_ms)
                            .cloned()
                        {
                            store.firing.remove(&t.fingerprint);
                            self.firing_gauge(&mut store, &f, -1);
                        }
                        !known
                    }
                };
                if new {
                    self.metrics
                        .notifications
                        .with_label_values(&[t.status.as_str()])
                        .inc();
                    if store.history.len() == HISTORY {
                        store.history.pop_front();
                    }
                    store.history.push_back(t);
                    recorded.new += 1;
                } else {
                    recorded.repeated += 1;
                }
            }
        }
        if recorded.new > 0 {
            self.changed.send_modify(|n| *n += 1);
        }
        recorded
    }

    fn firing_gauge(&self, store: &mut Store, f: &Firing, delta: i64) {
        let name = store.label(&f.name);
        let labels = [name.as_str(), severity_label(f.severity.as_deref())];
        let gauge = self.metrics.firing.with_label_values(&labels);
        gauge.add(delta);
        if gauge.get() <= 0 {
            let _ = self.metrics.firing.remove_label_values(&labels);
        }
    }

    /// Alerts firing now, oldest first.
    pub fn firing(&self) -> Vec<Firing> {
        let store = self.store.lock().expect("alert store lock");
        let mut firing: Vec<Firing> = store.firing.values().cloned().collect();
        firing.sort_by(|a, b| (a.starts_at_ms, &a.name).cmp(&(b.starts_at_ms, &b.name)));
        firing
    }

    /// Transitions of alerts that started firing at or after `since_ms`, in arrival order.
    pub fn since(&self, since_ms: i64) -> Vec<Transition> {
        let store = self.store.lock().expect("alert store lock");
        store
            .history
            .iter()
            .filter(|t| t.starts_at_ms >= since_ms)
            .cloned()
            .collect()
    }

    /// Changes whenever a new transition is recorded.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(alerts: &[(&str, &str, &str, &str, Option<&str>)]) -> String {
        let alerts: Vec<String> = alerts
            .iter()
            .map(|(name, fp, status, starts, ends)| {
                let ends = ends.map_or(String::new(), |e| format!(r#", "endsAt": "{e}""#));
                format!(
                    r#"{{"status": "{status}", "labels": {{"alertname": "{name}", "severity": "critical"}},
                        "fingerprint": "{fp}", "startsAt": "{starts}"{ends}}}"#
                )
            })
            .collect();
        format!(r#"{{"version": "4", "alerts": [{}]}}"#, alerts.join(","))
    }

    fn gauge(registry: &Registry, name: &str) -> Option<i64> {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "firedrill_alerts_firing")
            .flat_map(|f| f.get_metric())
            .find(|m| m.get_label().iter().any(|l| l.value() == name))
            .map(|m| m.get_gauge().get_value() as i64)
    }

    #[test]
    fn firing_and_resolved_transitions_are_recorded_once() {
        let registry = Registry::new();
        let alerts = Alerts::new(&registry);
        let mut changes = alerts.subscribe();
        let firing = body(&[("A", "f1", "firing", "2026-12-02T15:40:01Z", None)]);
        assert_eq!(alerts.receive(firing.as_bytes()).unwrap().new, 1);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        // Alertmanager repeats the group every group_interval.
        assert_eq!(
            alerts.receive(firing.as_bytes()).unwrap(),
            Recorded {
                new: 0,
                repeated: 1
            }
        );
        assert!(!changes.has_changed().unwrap());
        assert_eq!(gauge(&registry, "A"), Some(1));
        assert_eq!(alerts.firing().len(), 1);

        let resolved = body(&[(
            "A",
            "f1",
            "resolved",
            "2026-12-02T15:40:01Z",
            Some("2026-12-02T15:40:30Z"),
        )]);
        assert_eq!(alerts.receive(resolved.as_bytes()).unwrap().new, 1);
        assert_eq!(alerts.receive(resolved.as_bytes()).unwrap().new, 0);
        assert_eq!(
            gauge(&registry, "A"),
            None,
            "a resolved alert is not exported"
        );
        assert!(alerts.firing().is_empty());
        let history = alerts.since(0);
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].status, Status::Resolved);
        assert!(alerts.since(history[0].starts_at_ms + 1).is_empty());
    }

    #[test]
    fn a_bad_body_changes_nothing_and_is_counted() {
        let registry = Registry::new();
        let alerts = Alerts::new(&registry);
        assert!(alerts.receive(b"{\"version\": \"4\"}").is_err());
        alerts.rejected();
        assert!(alerts.since(0).is_empty());
        let rejected = registry
            .gather()
            .iter()
            .filter(|f| f.name() == "firedrill_alert_webhook_requests_total")
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value())
            .sum::<f64>();
        assert_eq!(rejected, 2.0);
    }

    #[test]
    fn alert_names_beyond_the_bound_are_exported_as_other() {
        let registry = Registry::new();
        let alerts = Alerts::new(&registry);
        for i in 0..MAX_NAMES + 5 {
            let b = body(&[(
                &format!("A{i}"),
                &format!("f{i}"),
                "firing",
                "2026-12-02T15:40:01Z",
                None,
            )]);
            alerts.receive(b.as_bytes()).unwrap();
        }
        assert_eq!(gauge(&registry, "other"), Some(5));
        assert_eq!(gauge(&registry, "A0"), Some(1));
        assert_eq!(alerts.firing().len(), MAX_NAMES + 5);
    }

    #[test]
    fn expected_alerts_name_real_scenarios() {
        assert!(Config::default().validate().is_ok());
        let mut c = Config::default();
        c.expected.insert("taskmanger".into(), vec!["A".into()]);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("alerts.expected.taskmanger: not a scenario"));
        assert_eq!(
            Config::default().expected_for(Scenario::Kafka),
            ["KafkaUnavailable"]
        );
    }
}
