//! The drill report: what one drill measured, as plain versioned data.
//!
//! Owns: the [`Report`] model (schema version [`SCHEMA_VERSION`], documented field by field
//! in `docs/report-schema.md`), its JSON reading with a version check ([`Report::from_json`]),
//! and the small pure derivations every producer of a report must agree on: the integrity
//! verdict ([`integrity`]) and the throughput degradation over the impact window
//! ([`degradation`]).
//!
//! Does not own: measuring anything (the scenario runner fills a report from the audit
//! ledger, the lag monitor and the Flink monitor), rendering (`drills::render`) or comparing
//! two reports (`drills::compare`). Nothing here does I/O or reads a clock.
//!
//! # Compatibility
//!
//! Adding a field keeps [`SCHEMA_VERSION`]; a new field is `Option` or `#[serde(default)]` so
//! that older reports still read. Renaming or removing a field, or changing its unit or
//! meaning, bumps the version. Unknown fields are ignored (a newer writer's additions), but a
//! report whose `schema_version` is newer than ours is rejected rather than half-understood.

use serde::{Deserialize, Serialize};

fn flink() -> String {
    "flink".to_string()
}

/// The report schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 3;

/// One drill's outcome. Times are unix milliseconds (UTC); durations are seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Drill id, `"d-..."`.
    pub id: String,
    /// `taskmanager`, `jobmanager`, `kafka` or `comprehensive`.
    pub scenario: String,
    /// The engine drilled: `flink` or `spark` (reports written before the field are Flink's).
    #[serde(default = "flink")]
    pub engine: String,
    /// How the engine's job read and wrote Kafka, when the engine said: `Kafka connector`
    /// or `local Kafka adapter` (Spark's, from its progress events); absent for Flink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_io: Option<String>,
    /// Free text from the operator (e.g. `"flink checkpoint 10s"`); names the report in
    /// comparisons.
    #[serde(default)]
    pub label: Option<String>,
    /// When the drill started (baseline start), unix ms.
    pub started_at_ms: i64,
    /// When the drill ended (drained, or gave up), unix ms.
    pub ended_at_ms: i64,
    /// `ended_at_ms - started_at_ms`, in seconds.
    pub total_duration_s: f64,
    /// The fault injected; `None` for `comprehensive` (each part has its own).
    #[serde(default)]
    pub fault: Option<FaultSummary>,
    /// The pipeline before the fault.
    pub baseline: Baseline,
    /// The phases reached, in time order.
    pub phases: Vec<Phase>,
    /// Time the output was stalled: the output gaps of [`Report::output`] between the
    /// injection and recovery, summed (schema 2: per-second samples below 10% of the
    /// baseline rate); `None` when nothing was measured.
    #[serde(default)]
    pub downtime_s: Option<f64>,
    /// Time to recover: fault injected (the failure) -> recovered, the figure users call
    /// "recovery time"; `None` if the drill did not recover. (Schema 1: revert -> recovered,
    /// now [`Report::revert_to_recovered_s`].)
    #[serde(default)]
    pub recovery_time_s: Option<f64>,
    /// Fault reverted (the component back) -> recovered; `None` if the drill did not recover.
    #[serde(default)]
    pub revert_to_recovered_s: Option<f64>,
    /// `false` when recovery timed out.
    pub recovered: bool,
    /// Order counts over the drill window, exact, from the audit ledger.
    pub orders: Orders,
    /// What the failures cost.
    pub revenue: Revenue,
    /// Processed orders per second before, during and after the fault.
    pub throughput: Throughput,
    /// What happened to the Flink job.
    pub flink: FlinkImpact,
    /// Whether the output is what was sent.
    pub integrity: Integrity,
    /// Alert transitions seen during the drill, in time order.
    #[serde(default)]
    pub alerts: Vec<AlertEvent>,
    /// Alert scoring: did the expected alerts fire, how fast, and did the all-clear come.
    /// `None` in reports written before alert scoring existed.
    #[serde(default)]
    pub alerting: Option<Alerting>,
    /// About one sample a second over the whole drill.
    #[serde(default)]
    pub timeline: Vec<Sample>,
    /// `comprehensive`: one report per scenario step; empty otherwise.
    #[serde(default)]
    pub parts: Vec<Report>,
    /// What the steady-state gate saw when it let the drill start; `None` for
    /// `comprehensive` (each part has its own) and reports before schema 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<super::gate::Readings>,
    /// The pipeline's output on Flink's clock over the impact window: the evidence for
    /// `downtime_s`, `first_output` and `recovered`; `None` as for `gate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
}

/// The output over a drill's impact window, on Flink's clock (`processed_at` of every
/// record of `processed_orders`, whichever run produced it), to 100 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// The window: from the injection...
    pub from_ms: i64,
    /// ... to the drain's start (the generator runs until then).
    pub to_ms: i64,
    /// Output records in the window.
    pub records: u64,
    /// A pause in the output at least this long is a gap (downtime), seconds.
    pub min_gap_s: f64,
    /// Output has caught up once no record is later than this after its event time, seconds.
    pub caught_up_latency_s: f64,
    /// The gaps, oldest first; each runs from the last record before it to the first after
    /// it, clipped to start no earlier than the injection.
    pub gaps: Vec<OutputGap>,
    /// When output caught up (see `caught_up_latency_s`), unix ms.
    pub caught_up_at_ms: Option<i64>,
    /// Output had stood still since then (unix ms) at the window's end, for at least
    /// `min_gap_s`: a gap that never closed, counted in `downtime_s` up to the window's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_since_ms: Option<i64>,
}

/// One output gap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OutputGap {
    /// No output from (unix ms)...
    pub start_ms: i64,
    /// ... to (unix ms).
    pub end_ms: i64,
}

/// The fault a drill injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSummary {
    /// What was hit, e.g. a container name.
    pub target: String,
    /// What was done to it, e.g. `kill`, `pause`, `network-partition`.
    pub action: String,
    /// How long the fault was held before it was reverted, in seconds.
    pub duration_s: f64,
    /// How long putting the component back took (revert started -> reverted), seconds;
    /// `None` in schema-1 reports.
    #[serde(default)]
    pub revert_s: Option<f64>,
}

/// The pipeline's steady state before the fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Processed orders per second.
    pub orders_per_s: f64,
    /// End-to-end latency (ack -> output), median, seconds; `None` if not measured.
    #[serde(default)]
    pub latency_p50_s: Option<f64>,
    /// End-to-end latency, 99th percentile, seconds; `None` if not measured.
    #[serde(default)]
    pub latency_p99_s: Option<f64>,
    /// Consumer-group lag of the Flink job on the orders topic, messages.
    #[serde(default)]
    pub lag_messages: Option<i64>,
}

/// A phase the drill reached, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Which phase.
    pub name: PhaseName,
    /// When it was reached, unix ms.
    pub at_ms: i64,
}

/// The phases of a drill, in the order they usually happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// Baseline measurement started (the drill's start).
    BaselineStarted,
    /// The fault was injected.
    Injected,
    /// Throughput or lag left the baseline band.
    DegradationDetected,
    /// The revert started (the fault's time was up, or the drill was aborted).
    RevertStarted,
    /// The fault was reverted.
    Reverted,
    /// Flink reported the job `RUNNING` again.
    JobRunning,
    /// The job had to be resubmitted (it did not come back by itself).
    JobResubmitted,
    /// The first output after the outage: new output after the output had stalled (below
    /// 10 % of the baseline rate), not records still in flight from before it.
    FirstOutput,
    /// Throughput and lag are back in the baseline band.
    Recovered,
    /// Everything acked during the drill was accounted for (processed, or declared lost).
    Drained,
}

impl PhaseName {
    /// Every phase, in their usual order.
    pub const ALL: [PhaseName; 10] = [
        PhaseName::BaselineStarted,
        PhaseName::Injected,
        PhaseName::DegradationDetected,
        PhaseName::RevertStarted,
        PhaseName::Reverted,
        PhaseName::JobRunning,
        PhaseName::JobResubmitted,
        PhaseName::FirstOutput,
        PhaseName::Recovered,
        PhaseName::Drained,
    ];

    /// A human name, e.g. `"Degradation detected"`.
    pub fn title(self) -> &'static str {
        match self {
            PhaseName::BaselineStarted => "Baseline started",
            PhaseName::Injected => "Fault injected",
            PhaseName::DegradationDetected => "Degradation detected",
            PhaseName::RevertStarted => "Revert started",
            PhaseName::Reverted => "Fault reverted",
            PhaseName::JobRunning => "Job running",
            PhaseName::JobResubmitted => "Job resubmitted",
            PhaseName::FirstOutput => "First output",
            PhaseName::Recovered => "Recovered",
            PhaseName::Drained => "Drained",
        }
    }
}

/// Order counts over the drill window, exact, from the audit ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orders {
    /// Orders the generator sent.
    pub sent: u64,
    /// Orders the broker acknowledged.
    pub acked: u64,
    /// Orders acked before the drill and not yet seen at its start: they may be processed
    /// during it, so `processed` can exceed `acked` by at most this many.
    #[serde(default)]
    pub in_flight_at_start: u64,
    /// Orders the producer was told failed (never acked).
    pub failed_at_door: u64,
    /// Distinct orders seen in the output at least once.
    pub processed: u64,
    /// Extra sightings of an order already seen.
    pub duplicates: u64,
    /// Acked orders never seen in the output.
    pub lost: u64,
    /// Orders first seen after the SLA.
    pub delayed: u64,
    /// Output records for orders never sent (or foreign records).
    pub unexpected: u64,
    /// Output records whose content differs from what was sent.
    pub invalid: u64,
}

/// What the drill cost, in dollars, from real order values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Revenue {
    /// Value of lost orders.
    pub lost_dollars: f64,
    /// Value of orders failed at the door (the client knows; the sale may be retried).
    pub failed_at_door_dollars: f64,
    /// Value of orders processed late (not lost, merely delayed).
    pub delayed_dollars: f64,
    /// Highest value of acked-but-unprocessed orders at any moment.
    pub peak_at_risk_dollars: f64,
}

/// Processed orders per second around the fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Before the fault.
    pub baseline_orders_per_s: f64,
    /// Between injection and revert.
    pub during_fault_orders_per_s: f64,
    /// After recovery (the catch-up burst excluded where the runner can tell).
    pub after_recovery_orders_per_s: f64,
    /// Throughput lost over the impact window (injection -> recovered, or the drain when
    /// not recovered) against the baseline: the per-second shortfalls below the baseline
    /// summed, over what the baseline would have processed, in percent. A catch-up burst
    /// above the baseline does not offset a shortfall. (Schema 1: mean during-fault rate
    /// against the baseline.)
    pub degradation_pct: f64,
    /// The worst per-second drop below the baseline within the impact window, percent.
    #[serde(default)]
    pub worst_drop_pct: Option<f64>,
}

/// What happened to the Flink job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlinkImpact {
    /// Job restarts during the drill.
    pub restarts: u64,
    /// Id of the checkpoint the job restored from; `None` if it did not restore one.
    #[serde(default)]
    pub checkpoint_restored: Option<u64>,
    /// Job id before the fault; `None` if no job was running.
    #[serde(default)]
    pub job_id_before: Option<String>,
    /// Job id after recovery; differs from `job_id_before` after a resubmission.
    #[serde(default)]
    pub job_id_after: Option<String>,
    /// Seconds from the resubmission request to the job running; `None` if not resubmitted.
    #[serde(default)]
    pub resubmit_s: Option<f64>,
}

/// The integrity verdict and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// PASS or FAIL.
    pub verdict: Verdict,
    /// One plain sentence per finding.
    pub details: Vec<String>,
}

/// PASS or FAIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// No lost or invalid orders, and no unexpected duplicates.
    Pass,
    /// At least one lost or invalid order, or duplicates where exactly-once was expected.
    Fail,
}

impl Verdict {
    /// `"PASS"` or `"FAIL"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One alert transition (from Alertmanager).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Alert name, e.g. `FlinkJobNotRunning`.
    pub name: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// The `severity` label, if any.
    #[serde(default)]
    pub severity: Option<String>,
    /// When the transition was seen, unix ms.
    pub at_ms: i64,
}

/// "Did we get paged, how fast, and did the all-clear come": the alerts of one drill
/// against the alerts its scenario is expected to fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alerting {
    /// PASS when every expected alert fired and every alert that fired resolved.
    pub verdict: Verdict,
    /// The alert names the scenario is expected to fire (`[alerts.expected]`).
    pub expected: Vec<String>,
    /// Every alert that fired during the drill, in the order it fired.
    pub alerts: Vec<AlertOutcome>,
    /// Expected alerts that never fired.
    pub missing: Vec<String>,
    /// Alerts that fired and had not resolved when the drill ended.
    pub unresolved: Vec<String>,
    /// One plain sentence per finding.
    pub details: Vec<String>,
}

/// One alert (all its instances, by name) during a drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertOutcome {
    /// Alert name.
    pub name: String,
    /// The `severity` label of its first firing instance.
    #[serde(default)]
    pub severity: Option<String>,
    /// Whether the scenario expects it.
    pub expected: bool,
    /// When it started firing (Alertmanager's `startsAt` of its first instance), unix ms.
    pub fired_at_ms: i64,
    /// When its last instance resolved (Alertmanager's `endsAt`); `None` if still firing.
    #[serde(default)]
    pub resolved_at_ms: Option<i64>,
    /// Time to detect: injection -> firing, seconds (negative: fired before the fault).
    pub detect_s: f64,
    /// Time to resolve: recovered -> resolved, seconds (negative: resolved before the
    /// pipeline recovered); `None` if unresolved or the drill did not recover.
    #[serde(default)]
    pub resolve_s: Option<f64>,
}

/// One point of the drill's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix ms.
    pub at_ms: i64,
    /// Orders first seen in the output per second, over the last interval.
    pub processed_per_s: f64,
    /// Consumer-group lag, messages; `None` when the lag poll failed.
    #[serde(default)]
    pub lag_messages: Option<i64>,
    /// Value of acked orders not yet processed.
    pub revenue_at_risk_dollars: f64,
    /// Acked orders not yet processed.
    pub in_flight: u64,
    /// Whether the Flink job was RUNNING; `None` when Flink did not answer (or for samples
    /// written before this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_running: Option<bool>,
    /// Why this sample could not be taken in full (e.g. no audit snapshot arrived, Flink
    /// did not answer); its rate then is not a measurement and no figure uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<String>,
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not JSON, or not a report.
    #[error("not a drill report: {0}")]
    Json(#[from] serde_json::Error),
    /// The document has no `schema_version`.
    #[error("not a drill report: no schema_version field")]
    MissingVersion,
    /// Written by a newer (or unknown) schema.
    #[error(
        "drill report schema_version {found} is not supported: this firedrill reads versions \
         1 to {supported}; upgrade firedrill to read it"
    )]
    UnsupportedVersion {
        /// The version in the document.
        found: u64,
        /// [`SCHEMA_VERSION`].
        supported: u32,
    },
}

impl ReportError {
    /// A bounded name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ReportError::Json(_) => "json",
            ReportError::MissingVersion => "missing_version",
            ReportError::UnsupportedVersion { .. } => "unsupported_version",
        }
    }
}

impl Report {
    /// The engine as a reader should see it: `flink`, or `spark (local Kafka adapter)`.
    pub fn engine_name(&self) -> String {
        match &self.kafka_io {
            Some(io) => format!("{} ({io})", self.engine),
            None => self.engine.clone(),
        }
    }

    /// Reads a report, rejecting a `schema_version` this build does not know (before
    /// looking at anything else, so a newer report fails with the version message rather
    /// than a confusing field error).
    pub fn from_json(json: &str) -> Result<Report, ReportError> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        let version = value
            .get("schema_version")
            .ok_or(ReportError::MissingVersion)?;
        match version.as_u64() {
            Some(v) if (1..=u64::from(SCHEMA_VERSION)).contains(&v) => {}
            Some(v) => {
                return Err(ReportError::UnsupportedVersion {
                    found: v,
                    supported: SCHEMA_VERSION,
                })
            }
            None => return Err(ReportError::MissingVersion),
        }
        let v1 = version.as_u64() == Some(1);
        let mut report: Report = serde_json::from_value(value)?;
        if v1 {
            report.upgrade_from_v1();
        }
        Ok(report)
    }

    /// Schema 1 called revert -> recovered `recovery_time_s`; schema 2 keeps that as
    /// `revert_to_recovered_s` and measures time to recover from the injection.
    fn upgrade_from_v1(&mut self) {
        self.schema_version = SCHEMA_VERSION;
        for part in &mut self.parts {
            part.upgrade_from_v1();
        }
        self.revert_to_recovered_s = self.recovery_time_s;
        self.recovery_time_s = if self.parts.is_empty() {
            self.phase(PhaseName::Injected)
                .zip(self.phase(PhaseName::Recovered))
                .map(|(i, r)| (r - i).max(0) as f64 / 1000.0)
        } else {
            self.parts.iter().map(|p| p.recovery_time_s).sum()
        };
    }

    /// Pretty JSON, as stored and served.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// When `name` was first reached, unix ms.
    pub fn phase(&self, name: PhaseName) -> Option<i64> {
        self.phases.iter().find(|p| p.name == name).map(|p| p.at_ms)
    }

    /// Seconds from the drill's start to `at_ms`.
    pub fn offset_s(&self, at_ms: i64) -> f64 {
        (at_ms - self.started_at_ms) as f64 / 1000.0
    }

    /// The label if there is one, else `"<scenario> <id>"`.
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(label) if !label.trim().is_empty() => label.clone(),
            _ => format!("{} {}", self.scenario, self.id),
        }
    }
}

/// The integrity verdict over a drill's order counts.
///
/// FAIL if any order was lost, any output record was invalid, or there were duplicates where
/// exactly-once was expected (`at_least_once == false`). Unexpected records (orders never
/// sent, usually left over from an earlier run sharing the topic) are reported but do not
/// fail the drill. Every non-zero problem count gets a sentence in `details`.
pub fn integrity(orders: &Orders, at_least_once: bool) -> Integrity {
    let mut fail = false;
    let mut details = Vec::new();
    if orders.lost > 0 {
        fail = true;
        details.push(format!(
            "{} {} acknowledged by Kafka never reached the output (lost)",
            orders.lost,
            plural(orders.lost, "order", "orders")
        ));
    }
    if orders.invalid > 0 {
        fail = true;
        details.push(format!(
            "{} output {} did not match what was sent (invalid)",
            orders.invalid,
            plural(orders.invalid, "record", "records")
        ));
    }
    if orders.duplicates > 0 {
        let what = format!(
            "{} duplicate output {}",
            orders.duplicates,
            plural(orders.duplicates, "record", "records")
        );
        if at_least_once {
            details.push(format!(
                "{what}: expected with an at-least-once sink (replay from the last checkpoint)"
            ));
        } else {
            fail = true;
            details.push(format!("{what} where exactly-once delivery was expected"));
        }
    }
    if orders.unexpected > 0 {
        details.push(format!(
            "{} output {} for orders this drill never sent (unexpected; not counted against \
             the verdict)",
            orders.unexpected,
            plural(orders.unexpected, "record", "records")
        ));
    }
    if details.is_empty() {
        details.push(format!(
            "all {} acknowledged orders reached the output exactly once",
            orders.acked
        ));
    }
    Integrity {
        verdict: if fail { Verdict::Fail } else { Verdict::Pass },
        details,
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// The throughput lost over the samples in `(from_ms, to_ms]` against `baseline` orders/s:
/// (degradation %, worst per-second drop %). The degradation sums each interval's shortfall
/// below the baseline (a catch-up above it offsets nothing) over what the baseline would
/// have processed in the window. `None` without a positive baseline or without samples in
/// the window. Both are clamped to `[0, 100]`.
pub fn degradation(
    samples: &[Sample],
    baseline: f64,
    from_ms: i64,
    to_ms: i64,
) -> Option<(f64, f64)> {
    if !(baseline.is_finite() && baseline > 0.0) {
        return None;
    }
    let (mut short, mut span, mut worst) = (0.0, 0.0, 0.0_f64);
    // A missed sample measured nothing: the next sample's rate covers its interval too.
    let measured: Vec<&Sample> = samples.iter().filter(|s| s.missed.is_none()).collect();
    for pair in measured.windows(2) {
        let (prev, s) = (pair[0], pair[1]);
        if s.at_ms <= from_ms || s.at_ms > to_ms || !s.processed_per_s.is_finite() {
            continue;
        }
        let dt = (s.at_ms - prev.at_ms).max(1) as f64 / 1000.0;
        short += (baseline - s.processed_per_s).max(0.0) * dt;
        span += dt;
        worst = worst.max((baseline - s.processed_per_s) / baseline * 100.0);
    }
    (span > 0.0).then(|| {
        (
            (short / (baseline * span) * 100.0).clamp(0.0, 100.0),
            worst.clamp(0.0, 100.0),
        )
    })
}

/// A realistic taskmanager drill (90 s, one sample a second) for docs, examples and the
/// tests of the report, render and compare modules. Deterministic.
///
/// Baseline 50 orders/s; `flink-taskmanager` killed at +30 s and restarted at +45 s; the job
/// restores checkpoint 17 and replays, with its first output at +55 s and lag back to
/// baseline at +68 s.
pub fn sample_for_docs() -> Report {
    const START: i64 = 1_767_261_600_000; // 2026-01-01T10:00:00Z
    const AVG_ORDER: f64 = 42.5;
    let at = |s: i64| START + s * 1000;

    let mut timeline = Vec::with_capacity(91);
    let mut lag: i64 = 20;
    let mut peak_at_risk: f64 = 0.0;
    for s in 0..=90 {
        // Deterministic wobble so the baseline does not look synthetic.
        let wobble = ((s * 7919) % 11) as f64 / 10.0 - 0.5;
        let processed = match s {
            0..=30 => 50.0 + wobble,
            31..=32 => 18.0 - 8.0 * (s - 31) as f64,
            33..=54 => 0.0,
            55..=67 => 140.0 + 3.0 * wobble,
            _ => 50.0 + wobble,
        };
        lag = match s {
            0..=30 => 20 + (wobble * 4.0) as i64,
            31..=54 => lag + 50 - processed as i64,
            55..=67 => (lag + 50 - processed as i64).max(20),
            _ => 20 + (wobble * 4.0) as i64,
        };
        let in_flight = lag.max(0) as u64;
        let at_risk = in_flight as f64 * AVG_ORDER;
        peak_at_risk = peak_at_risk.max(at_risk);
        timeline.push(Sample {
            at_ms: at(s),
            processed_per_s: processed,
            // The lag poll timed out twice while the broker was busy catching up.
            lag_messages: if s == 47 || s == 48 { None } else { Some(lag) },
            revenue_at_risk_dollars: at_risk,
            in_flight,
            job_running: Some(!(30..55).contains(&s)),
            missed: None,
        });
    }

    let orders = Orders {
        sent: 4500,
        acked: 4488,
        in_flight_at_start: 4,
        failed_at_door: 12,
        processed: 4488,
        duplicates: 9,
        lost: 0,
        delayed: 1180,
        unexpected: 0,
        invalid: 0,
    };
    let phases = [
        (PhaseName::BaselineStarted, 0),
        (PhaseName::Injected, 30),
        (PhaseName::DegradationDetected, 33),
        (PhaseName::RevertStarted, 45),
        (PhaseName::Reverted, 45),
        (PhaseName::JobRunning, 52),
        (PhaseName::FirstOutput, 55),
        (PhaseName::Recovered, 68),
        (PhaseName::Drained, 75),
    ]
    .into_iter()
    .map(|(name, s)| Phase { name, at_ms: at(s) })
    .collect();
    let (lost, worst) = degradation(&timeline, 50.0, at(30), at(68)).expect("samples");

    Report {
        schema_version: SCHEMA_VERSION,
        id: "d-20260101-100000-7f3a".into(),
        scenario: "taskmanager".into(),
        engine: "flink".into(),
        kafka_io: None,
        label: Some("flink checkpoint 10s".into()),
        started_at_ms: at(0),
        ended_at_ms: at(90),
        total_duration_s: 90.0,
        fault: Some(FaultSummary {
            target: "flink-taskmanager".into(),
            action: "kill".into(),
            duration_s: 15.0,
            revert_s: Some(0.0),
        }),
        baseline: Baseline {
            orders_per_s: 50.0,
            latency_p50_s: Some(0.35),
            latency_p99_s: Some(1.2),
            lag_messages: Some(20),
        },
        phases,
        downtime_s: Some(22.0),
        recovery_time_s: Some(38.0),
        revert_to_recovered_s: Some(23.0),
        recovered: true,
        revenue: Revenue {
            lost_dollars: 0.0,
            failed_at_door_dollars: 12.0 * AVG_ORDER,
            delayed_dollars: orders.delayed as f64 * AVG_ORDER,
            peak_at_risk_dollars: peak_at_risk,
        },
        integrity: integrity(&orders, true),
        orders,
        throughput: Throughput {
            baseline_orders_per_s: 50.0,
            during_fault_orders_per_s: 3.1,
            after_recovery_orders_per_s: 50.2,
            degradation_pct: lost,
            worst_drop_pct: Some(worst),
        },
        flink: FlinkImpact {
            restarts: 1,
            checkpoint_restored: Some(17),
            job_id_before: Some("a1b2c3d4e5f60718293a4b5c6d7e8f90".into()),
            job_id_after: Some("a1b2c3d4e5f60718293a4b5c6d7e8f90".into()),
            resubmit_s: None,
        },
        alerts: vec![
            AlertEvent {
                name: "FlinkTaskManagerLost".into(),
                status: "firing".into(),
                severity: Some("critical".into()),
                at_ms: at(40),
            },
            AlertEvent {
                name: "KafkaConsumerLagHigh".into(),
                status: "firing".into(),
                severity: Some("warning".into()),
                at_ms: at(44),
            },
            AlertEvent {
                name: "FlinkTaskManagerLost".into(),
                status: "resolved".into(),
                severity: Some("critical".into()),
                at_ms: at(58),
            },
            AlertEvent {
                name: "KafkaConsumerLagHigh".into(),
                status: "resolved".into(),
                severity: Some("warning".into()),
                at_ms: at(72),
            },
        ],
        alerting: Some(Alerting {
            verdict: Verdict::Pass,
            expected: vec!["FlinkTaskManagerLost".into()],
            alerts: vec![
                AlertOutcome {
                    name: "FlinkTaskManagerLost".into(),
                    severity: Some("critical".into()),
                    expected: true,
                    fired_at_ms: at(40),
                    resolved_at_ms: Some(at(58)),
                    detect_s: 10.0,
                    resolve_s: Some(-10.0),
                },
                AlertOutcome {
                    name: "KafkaConsumerLagHigh".into(),
                    severity: Some("warning".into()),
                    expected: false,
                    fired_at_ms: at(44),
                    resolved_at_ms: Some(at(72)),
                    detect_s: 14.0,
                    resolve_s: Some(4.0),
                },
            ],
            missing: Vec::new(),
            unresolved: Vec::new(),
            details: vec![
                "FlinkTaskManagerLost (expected) fired 10.0 s after the fault, resolved 10.0 s before recovery".into(),
                "KafkaConsumerLagHigh (unexpected) fired 14.0 s after the fault, resolved 4.0 s after recovery".into(),
            ],
        }),
        timeline,
        parts: Vec::new(),
        gate: Some(super::gate::Readings {
            waited_s: 10.0,
            throughput_orders_per_s: 50.2,
            lag_messages: Some(20),
            lag_s: Some(4.1),
            latency_p50_s: Some(0.42),
            latency_p99_s: Some(1.3),
            job_running_for_s: Some(3_605.0),
            restart_strategy: Some(crate::flink::rest::RestartStrategy {
                kind: "exponential-delay".into(),
                reset_backoff_threshold_s: Some(60.0),
                initial_backoff_s: Some(1.0),
                max_backoff_s: Some(10.0),
            }),
            backoff_reset: Some(true),
        }),
        // Output stopped 3 s after the kill and resumed at +55 s; the replayed backlog came
        // out late until +68 s.
        output: Some(Output {
            from_ms: at(30),
            to_ms: at(75),
            records: 1_530,
            min_gap_s: 2.0,
            caught_up_latency_s: 3.0,
            gaps: vec![OutputGap {
                start_ms: at(33),
                end_ms: at(55),
            }],
            caught_up_at_ms: Some(at(68)),
            stalled_since_ms: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> Orders {
        Orders {
            sent: 100,
            acked: 100,
            processed: 100,
            ..Orders::default()
        }
    }

    #[test]
    fn clean_run_passes_with_a_positive_detail() {
        let i = integrity(&orders(), false);
        assert_eq!(i.verdict, Verdict::Pass);
        assert_eq!(
            i.details,
            ["all 100 acknowledged orders reached the output exactly once"]
        );
    }

    #[test]
    fn lost_or_invalid_fail_even_with_at_least_once() {
        for at_least_once in [false, true] {
            let lost = integrity(
                &Orders {
                    lost: 1,
                    ..orders()
                },
                at_least_once,
            );
            assert_eq!(lost.verdict, Verdict::Fail);
            assert!(
                lost.details[0].starts_with("1 order acknowledged"),
                "{lost:?}"
            );

            let invalid = integrity(
                &Orders {
                    invalid: 3,
                    ..orders()
                },
                at_least_once,
            );
            assert_eq!(invalid.verdict, Verdict::Fail);
            assert!(
                invalid.details[0].contains("3 output records"),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn duplicates_fail_only_when_exactly_once_was_expected() {
        let dup = Orders {
            duplicates: 9,
            ..orders()
        };
        let exactly_once = integrity(&dup, false);
        assert_eq!(exactly_once.verdict, Verdict::Fail);
        assert!(exactly_once.details[0].contains("exactly-once"));

        let at_least_once = integrity(&dup, true);
        assert_eq!(at_least_once.verdict, Verdict::Pass);
        assert_eq!(at_least_once.details.len(), 1);
        assert!(at_least_once.details[0].contains("expected with an at-least-once sink"));
    }

    #[test]
    fn every_problem_is_listed_and_unexpected_alone_passes() {
        let all = integrity(
            &Orders {
                lost: 2,
                invalid: 1,
                duplicates: 4,
                unexpected: 5,
                ..orders()
            },
            false,
        );
        assert_eq!(all.verdict, Verdict::Fail);
        assert_eq!(all.details.len(), 4, "{all:?}");

        let unexpected = integrity(
            &Orders {
                unexpected: 5,
                ..orders()
            },
            false,
        );
        assert_eq!(unexpected.verdict, Verdict::Pass);
        assert!(unexpected.details[0].contains("never sent"));
    }

    #[test]
    fn degradation_counts_shortfalls_and_a_catch_up_offsets_nothing() {
        let samples: Vec<Sample> = [50.0, 25.0, 0.0, 100.0, 50.0]
            .iter()
            .enumerate()
            .map(|(i, rate)| Sample {
                at_ms: i as i64 * 1000,
                processed_per_s: *rate,
                lag_messages: None,
                revenue_at_risk_dollars: 0.0,
                in_flight: 0,
                job_running: None,
                missed: None,
            })
            .collect();
        // (0, 4]: shortfalls 25 + 50 + 0 + 0 of 200; the 100/s second does not cancel them.
        assert_eq!(degradation(&samples, 50.0, 0, 4_000), Some((37.5, 100.0)));
        assert_eq!(degradation(&samples, 50.0, 0, 1_000), Some((50.0, 50.0)));
        // Faster than the baseline throughout: nothing lost, no drop.
        assert_eq!(degradation(&samples, 50.0, 3_000, 4_000), Some((0.0, 0.0)));
        assert_eq!(degradation(&samples, 0.0, 0, 4_000), None);
        assert_eq!(degradation(&samples, f64::NAN, 0, 4_000), None);
        assert_eq!(degradation(&samples, 50.0, 10_000, 20_000), None);
    }

    #[test]
    fn a_schema_1_report_reads_with_time_to_recover_from_the_injection() {
        let mut v1: serde_json::Value = serde_json::from_str(&sample_for_docs().to_json()).unwrap();
        v1["schema_version"] = 1.into();
        // Schema 1 wrote revert -> recovered here and had no revert_to_recovered_s.
        v1["recovery_time_s"] = 23.0.into();
        v1.as_object_mut().unwrap().remove("revert_to_recovered_s");
        let r = Report::from_json(&v1.to_string()).unwrap();
        assert_eq!(r.schema_version, SCHEMA_VERSION);
        assert_eq!(r.revert_to_recovered_s, Some(23.0));
        assert_eq!(
            r.recovery_time_s,
            Some(38.0),
            "injected +30 s -> recovered +68 s"
        );
    }

    #[test]
    fn phase_finds_the_first_occurrence() {
        let mut r = sample_for_docs();
        assert_eq!(r.phase(PhaseName::Injected), Some(r.started_at_ms + 30_000));
        assert_eq!(r.phase(PhaseName::JobResubmitted), None);
        r.phases.push(Phase {
            name: PhaseName::Injected,
            at_ms: r.started_at_ms + 80_000,
        });
        assert_eq!(r.phase(PhaseName::Injected), Some(r.started_at_ms + 30_000));
    }

    #[test]
    fn sample_is_consistent() {
        let r = sample_for_docs();
        assert_eq!(r.timeline.len(), 91);
        assert!(r.phases.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        let dt = |a, b| (r.phase(b).unwrap() - r.phase(a).unwrap()) as f64 / 1000.0;
        assert_eq!(
            r.downtime_s,
            Some(dt(PhaseName::DegradationDetected, PhaseName::FirstOutput))
        );
        assert_eq!(
            r.recovery_time_s,
            Some(dt(PhaseName::Injected, PhaseName::Recovered))
        );
        assert_eq!(
            r.revert_to_recovered_s,
            Some(dt(PhaseName::Reverted, PhaseName::Recovered))
        );
        assert_eq!(r.integrity.verdict, Verdict::Pass);
        let peak = r
            .timeline
            .iter()
            .map(|s| s.revenue_at_risk_dollars)
            .fold(0.0, f64::max);
        assert_eq!(r.revenue.peak_at_risk_dollars, peak);
        assert!(
            peak > 10_000.0,
            "the outage should build a real backlog: {peak}"
        );
    }

    #[test]
    fn json_round_trips_with_the_documented_spellings() {
        let mut r = sample_for_docs();
        r.parts.push(sample_for_docs());
        let json = r.to_json();
        assert!(json.contains(r#""verdict": "PASS""#));
        assert!(json.contains(r#""name": "degradation_detected""#));
        assert_eq!(Report::from_json(&json).unwrap(), r);
    }

    #[test]
    fn newer_or_missing_versions_are_rejected_clearly() {
        let mut value = serde_json::to_value(sample_for_docs()).unwrap();
        value["schema_version"] = (SCHEMA_VERSION + 1).into();
        let err = Report::from_json(&value.to_string()).unwrap_err();
        assert_eq!(err.kind(), "unsupported_version");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("schema_version {}", SCHEMA_VERSION + 1))
                && msg.contains("upgrade"),
            "{msg}"
        );

        value["schema_version"] = 0.into();
        assert_eq!(
            Report::from_json(&value.to_string()).unwrap_err().kind(),
            "unsupported_version"
        );

        value.as_object_mut().unwrap().remove("schema_version");
        assert_eq!(
            Report::from_json(&value.to_string()).unwrap_err().kind(),
            "missing_version"
        );
        assert_eq!(Report::from_json("nope").unwrap_err().kind(), "json");
    }

    #[test]
    fn unknown_fields_from_a_newer_writer_are_ignored() {
        let mut value = serde_json::to_value(sample_for_docs()).unwrap();
        value["added_later"] = "x".into();
        value["orders"]["also_new"] = 1.into();
        assert_eq!(
            Report::from_json(&value.to_string()).unwrap(),
            sample_for_docs()
        );
    }
}
