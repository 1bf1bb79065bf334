//! The drill scenarios: what each one breaks by default, and the steps of a comprehensive
//! drill. Shared by the drills, the alerts each scenario is expected to fire, and the CLI.
//!
//! Does not own how a scenario runs (`runner`) or which targets exist (`faults`).

use serde::{Deserialize, Serialize};

use crate::faults::Action;

/// A drill scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Kill a TaskManager: one that runs the job's tasks (by Flink's resource id, when that is
    /// a configured target), else any member of the `taskmanager` group, unless `target`
    /// names one.
    Taskmanager,
    /// Kill the JobManager; the job is resubmitted from the latest checkpoint.
    Jobmanager,
    /// Stop the Kafka broker.
    Kafka,
    /// All three in sequence, with the steady-state gate between them.
    Comprehensive,
}

impl Scenario {
    /// The name used in reports, metrics and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Taskmanager => "taskmanager",
            Scenario::Jobmanager => "jobmanager",
            Scenario::Kafka => "kafka",
            Scenario::Comprehensive => "comprehensive",
        }
    }

    /// Every scenario, in the order the CLI's menu and its errors list them.
    pub const ALL: [Scenario; 4] = [
        Scenario::Taskmanager,
        Scenario::Jobmanager,
        Scenario::Kafka,
        Scenario::Comprehensive,
    ];

    /// What the CLI's menu calls it.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Taskmanager => "TaskManager failure",
            Scenario::Jobmanager => "JobManager failure",
            Scenario::Kafka => "Kafka outage",
            Scenario::Comprehensive => "Comprehensive (all three)",
        }
    }

    /// Parses a scenario name.
    pub fn parse(s: &str) -> Option<Scenario> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// The fault target and action of a single-fault scenario.
    pub fn fault(self) -> (&'static str, Action) {
        match self {
            Scenario::Taskmanager => ("taskmanager", Action::Kill),
            Scenario::Jobmanager => ("jobmanager", Action::Kill),
            Scenario::Kafka | Scenario::Comprehensive => ("kafka", Action::Stop),
        }
    }
}

/// The scenarios of a comprehensive drill, in order.
pub const COMPREHENSIVE: [Scenario; 3] =
    [Scenario::Taskmanager, Scenario::Jobmanager, Scenario::Kafka];
