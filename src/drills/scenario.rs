//! The drill scenarios: what each one breaks by default, and the steps of a comprehensive
//! drill. Shared by the drills, the alerts each scenario is expected to fire, and the CLI.
//!
//! Does not own how a scenario runs (`runner`) or which targets exist (`faults`).

use serde::{Deserialize, Serialize};

use crate::{engine::Kind, faults::Action};

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
    /// All three of the engine's in sequence, with the steady-state gate between them: Flink's
    /// taskmanager, jobmanager, kafka; Spark's executor, driver, kafka.
    Comprehensive,
    /// Spark: kill an executor (the TaskManager's analogue): any member of the `executor`
    /// group unless `target` names one; its worker launches a new one.
    Executor,
    /// Spark: kill a worker (and the executor it runs): any member of the `worker` group.
    Worker,
    /// Spark: kill the driver (the JobManager's analogue); starting it again resubmits the
    /// job, which resumes from its checkpoints.
    Driver,
}

impl Scenario {
    /// The name used in reports, metrics and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Taskmanager => "taskmanager",
            Scenario::Jobmanager => "jobmanager",
            Scenario::Kafka => "kafka",
            Scenario::Comprehensive => "comprehensive",
            Scenario::Executor => "executor",
            Scenario::Worker => "worker",
            Scenario::Driver => "driver",
        }
    }

    /// Every scenario, in the order the CLI's menu and its errors list them.
    pub const ALL: [Scenario; 7] = [
        Scenario::Taskmanager,
        Scenario::Jobmanager,
        Scenario::Kafka,
        Scenario::Comprehensive,
        Scenario::Executor,
        Scenario::Worker,
        Scenario::Driver,
    ];

    /// What the CLI's menu calls it.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Taskmanager => "TaskManager failure",
            Scenario::Jobmanager => "JobManager failure",
            Scenario::Kafka => "Kafka outage",
            Scenario::Comprehensive => "Comprehensive (all three of the engine's)",
            Scenario::Executor => "Spark executor failure",
            Scenario::Worker => "Spark worker failure",
            Scenario::Driver => "Spark driver failure",
        }
    }

    /// The engine whose components the scenario breaks; `None` for either (Kafka, and the
    /// comprehensive drill, which takes the engine's own steps).
    pub fn engine(self) -> Option<Kind> {
        match self {
            Scenario::Taskmanager | Scenario::Jobmanager => Some(Kind::Flink),
            Scenario::Executor | Scenario::Worker | Scenario::Driver => Some(Kind::Spark),
            Scenario::Kafka | Scenario::Comprehensive => None,
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
            Scenario::Executor => ("executor", Action::Kill),
            Scenario::Worker => ("worker", Action::Kill),
            Scenario::Driver => ("spark-driver", Action::Kill),
            Scenario::Kafka | Scenario::Comprehensive => ("kafka", Action::Stop),
        }
    }
}

/// The scenarios of a comprehensive drill on `engine`, in order.
pub fn comprehensive(engine: Kind) -> [Scenario; 3] {
    match engine {
        Kind::Flink => [Scenario::Taskmanager, Scenario::Jobmanager, Scenario::Kafka],
        Kind::Spark => [Scenario::Executor, Scenario::Driver, Scenario::Kafka],
    }
}
