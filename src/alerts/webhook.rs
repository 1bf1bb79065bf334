//! The Alertmanager webhook payload (version 4), read into alert transitions.
//!
//! Owns: the wire types of what Alertmanager POSTs to a webhook receiver, and their
//! validation into [`Transition`]s with Alertmanager's own times (`startsAt` of a firing
//! alert, `endsAt` of a resolved one). Every problem is named with its JSON path
//! (`alerts[2].startsAt: not an RFC 3339 time`), so a misconfigured sender sees why it was
//! refused. Pure: no I/O, no clock.
//!
//! Does not own: what happens to the transitions (the [`super::Alerts`] store) nor HTTP.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The only payload version Alertmanager has sent since 0.x and the one this reads.
pub const VERSION: &str = "4";

/// More alerts than this in one notification is refused (Alertmanager truncates a group
/// to `max_alerts` when configured; a payload this large is not a notification).
pub const MAX_ALERTS: usize = 1000;

/// A label or annotation value longer than this is refused.
const MAX_VALUE: usize = 4096;

/// Whether an alert fires or has resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The alert fires.
    Firing,
    /// The alert has resolved.
    Resolved,
}

impl Status {
    /// `"firing"` or `"resolved"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert's transition as Alertmanager reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Alertmanager's fingerprint of the alert's label set: pairs a firing with its resolve.
    pub fingerprint: String,
    /// The `alertname` label.
    pub name: String,
    /// The `severity` label, if any.
    pub severity: Option<String>,
    /// Firing or resolved.
    pub status: Status,
    /// When the alert started firing (`startsAt`), unix ms.
    pub starts_at_ms: i64,
    /// When it happened: `startsAt` for a firing alert, `endsAt` for a resolved one, unix ms.
    pub at_ms: i64,
}

/// The payload as sent; strings are checked in [`parse`], not by serde, so errors can say
/// which alert and field is wrong.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    version: String,
    #[serde(default)]
    truncated_alerts: u64,
    alerts: Vec<WireAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAlert {
    status: Status,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: String,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// A notification, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// One transition per alert, in the payload's order.
    pub transitions: Vec<Transition>,
    /// Alerts Alertmanager left out of this notification (`truncatedAlerts`).
    pub truncated: u64,
}

/// Reads and validates a webhook body.
pub fn parse(body: &[u8]) -> Result<Notification, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let payload: Payload = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("not an Alertmanager webhook payload: {}", e.inner())
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    if payload.version != VERSION {
        return Err(format!(
            "version: {:?} is not supported (Alertmanager's webhook payload version {VERSION} is)",
            payload.version
        ));
    }
    if payload.alerts.len() > MAX_ALERTS {
        return Err(format!(
            "alerts: {} alerts in one notification, at most {MAX_ALERTS}",
            payload.alerts.len()
        ));
    }
    let transitions = payload
        .alerts
        .into_iter()
        .enumerate()
        .map(|(i, alert)| transition(alert).map_err(|e| format!("alerts[{i}].{e}")))
        .collect::<Result<_, _>>()?;
    Ok(Notification {
        transitions,
        truncated: payload.truncated_alerts,
    })
}

fn transition(alert: WireAlert) -> Result<Transition, String> {
    for (key, value) in alert.labels.iter().chain(&alert.annotations) {
        if value.len() > MAX_VALUE {
            return Err(format!("{key}: value longer than {MAX_VALUE} bytes"));
        }
    }
    let name = alert
        .labels
        .get("alertname")
        .filter(|n| !n.is_empty())
        .ok_or("labels: no alertname")?
        .clone();
    let starts_at_ms = time(&alert.starts_at).map_err(|e| format!("startsAt: {e}"))?;
    let at_ms = match alert.status {
        Status::Firing => starts_at_ms,
        Status::Resolved => {
            let ends = alert.ends_at.as_deref().ok_or("endsAt: missing")?;
            let ends_at_ms = time(ends).map_err(|e| format!("endsAt: {e}"))?;
            if ends_at_ms < starts_at_ms {
                return Err(format!("endsAt: {ends} is before startsAt"));
            }
            ends_at_ms
        }
    };
    // Alertmanager always sends a fingerprint; a sender that does not gets one from the
    // label set, which is what Alertmanager's fingerprint is a hash of.
    let fingerprint = match alert.fingerprint.filter(|f| !f.is_empty()) {
        Some(f) => f,
        None => alert
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(","),
    };
    Ok(Transition {
        fingerprint,
        severity: alert.labels.get("severity").cloned(),
        name,
        status: alert.status,
        starts_at_ms,
        at_ms,
    })
}

/// An RFC 3339 time (Alertmanager writes Go's RFC 3339 with nanoseconds) as unix ms.
fn time(s: &str) -> Result<i64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|_| format!("{s:?} is not an RFC 3339 time"))?;
    let ms = t.timestamp_millis();
    // Go's zero time (0001-01-01) is what Alertmanager sends for "no end"; a firing alert's
    // start is never that.
    if ms <= 0 {
        return Err(format!("{s:?} is not a time after 1970"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification as Alertmanager 0.25 sends it (captured from the local stack's).
    const FIRING: &str = r#"{
      "receiver": "firedrill", "status": "firing", "version": "4",
      "groupKey": "{}:{alertname=\"KafkaUnavailable\"}", "truncatedAlerts": 0,
      "groupLabels": {"alertname": "KafkaUnavailable"},
      "commonLabels": {"alertname": "KafkaUnavailable", "severity": "critical"},
      "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "KafkaUnavailable", "severity": "critical", "job": "firedrill"},
        "annotations": {"summary": "Kafka is unreachable"},
        "startsAt": "2026-12-02T15:40:01.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "6e1c2a0f1b2d3c4e"
      }]
    }"#;

    fn with_alert(alert: &str) -> String {
        format!(r#"{{"version": "4", "status": "firing", "alerts": [{alert}]}}"#)
    }

    #[test]
    fn a_firing_notification_reads_with_alertmanagers_times() {
        let n = parse(FIRING.as_bytes()).unwrap();
        assert_eq!(n.truncated, 0);
        assert_eq!(
            n.transitions,
            [Transition {
                fingerprint: "6e1c2a0f1b2d3c4e".into(),
                name: "KafkaUnavailable".into(),
                severity: Some("critical".into()),
                status: Status::Firing,
                starts_at_ms: 1_796_226_001_123,
                at_ms: 1_796_226_001_123,
            }]
        );
    }

    #[test]
    fn a_resolved_alert_happens_at_its_end() {
        let body = with_alert(
            r#"{"status": "resolved", "labels": {"alertname": "A"}, "fingerprint": "f",
                "startsAt": "2026-12-02T15:40:01Z", "endsAt": "2026-12-02T16:40:03.5+01:00"}"#,
        );
        let t = &parse(body.as_bytes()).unwrap().transitions[0];
        assert_eq!(t.status, Status::Resolved);
        assert_eq!(t.severity, None);
        assert_eq!(t.at_ms - t.starts_at_ms, 2_500);
    }

    #[test]
    fn a_sender_without_fingerprints_gets_one_per_label_set() {
        let alert = |env: &str| {
            with_alert(&format!(
                r#"{{"status": "firing", "labels": {{"alertname": "A", "env": "{env}"}},
                    "startsAt": "2026-12-02T15:40:01Z"}}"#
            ))
        };
        let a = parse(alert("x").as_bytes()).unwrap().transitions[0].clone();
        let b = parse(alert("y").as_bytes()).unwrap().transitions[0].clone();
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_eq!(
            a.fingerprint,
            parse(alert("x").as_bytes()).unwrap().transitions[0].fingerprint
        );
    }

    #[test]
    fn bad_payloads_are_refused_with_the_path_of_the_problem() {
        let cases = [
            ("", "not an Alertmanager webhook payload"),
            ("[]", "not an Alertmanager webhook payload"),
            (
                r#"{"alerts": []}"#,
                "not an Alertmanager webhook payload: missing field `version`",
            ),
            (
                r#"{"version": "3", "alerts": []}"#,
                "version: \"3\" is not supported",
            ),
            (r#"{"version": "4", "alerts": {}}"#, "alerts: invalid type"),
            (
                &with_alert(
                    r#"{"status": "pending", "labels": {"alertname": "A"}, "startsAt": "2026-12-02T15:40:01Z"}"#,
                ),
                "alerts[0].status: unknown variant `pending`",
            ),
            (
                &with_alert(
                    r#"{"status": "firing", "labels": {}, "startsAt": "2026-12-02T15:40:01Z"}"#,
                ),
                "alerts[0].labels: no alertname",
            ),
            (
                &with_alert(
                    r#"{"status": "firing", "labels": {"alertname": "A"}, "startsAt": "yesterday"}"#,
                ),
                "alerts[0].startsAt: \"yesterday\" is not an RFC 3339 time",
            ),
            (
                &with_alert(
                    r#"{"status": "firing", "labels": {"alertname": "A"}, "startsAt": "0001-01-01T00:00:00Z"}"#,
                ),
                "alerts[0].startsAt: \"0001-01-01T00:00:00Z\" is not a time after 1970",
            ),
            (
                &with_alert(
                    r#"{"status": "resolved", "labels": {"alertname": "A"}, "startsAt": "2026-12-02T15:40:01Z"}"#,
                ),
                "alerts[0].endsAt: missing",
            ),
            (
                &with_alert(
                    r#"{"status": "resolved", "labels": {"alertname": "A"}, "startsAt": "2026-12-02T15:40:01Z", "endsAt": "2026-12-02T15:40:00Z"}"#,
                ),
                "alerts[0].endsAt: 2026-12-02T15:40:00Z is before startsAt",
            ),
            (
                &with_alert(
                    r#"{"status": "firing", "labels": {"alertname": 7}, "startsAt": "2026-12-02T15:40:01Z"}"#,
                ),
                "alerts[0].labels.alertname: invalid type",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(body.as_bytes()).unwrap_err();
            assert!(
                err.starts_with(expected),
                "{body}\n-> {err}\nwanted {expected}"
            );
        }
        let long = "x".repeat(MAX_VALUE + 1);
        let body = with_alert(&format!(
            r#"{{"status": "firing", "labels": {{"alertname": "A"}}, "annotations": {{"d": "{long}"}}, "startsAt": "2026-12-02T15:40:01Z"}}"#
        ));
        assert_eq!(
            parse(body.as_bytes()).unwrap_err(),
            format!("alerts[0].d: value longer than {MAX_VALUE} bytes")
        );
        let many = vec![r#"{"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2026-12-02T15:40:01Z"}"#; MAX_ALERTS + 1].join(",");
        assert!(parse(with_alert(&many).as_bytes())
            .unwrap_err()
            .starts_with("alerts: 1001 alerts"));
    }
}
