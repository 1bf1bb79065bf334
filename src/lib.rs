//! firedrill turns disaster-recovery drills on a Kafka -> Flink order pipeline into measured,
//! repeatable, auditable experiments.
//!
//! Module map (who owns what):
//!
//! - `config`: the root [`config::Config`], TOML + `FIREDRILL_*` overrides, strict validation;
//!   each component owns its own `Config` section.
//! - `config_value`: what those sections are written in (http URLs, durations) and the error
//!   of an invalid value; it imports nothing of the crate, so no section imports the root.
//! - `app`: builds every component from the config, spawns them, shuts them down in order.
//! - `metrics`: the one Prometheus registry, its encoding, `firedrill_upstream_up`.
//! - `telemetry`: structured logs (human or JSON).
//! - `clock`: the wall clock, read in one place.
//! - `durable`: crash-safe file replacement (fault ledger, drill reports).
//! - `order`: the order model, catalogue, ids, wire formats (shared by generator and audit).
//! - `generator`: paced producer of orders (governor), delivery reports.
//! - `kafka`: client settings, topic names; `lag` (pure arithmetic), `monitor` (I/O).
//! - `engine`: which stream processor runs the pipeline (`[engine] kind`) and its monitor.
//! - `flink`: `rest` (typed REST client), `monitor` (job health, checkpoint age).
//! - `spark`: `api` (master, driver, query progress events), `monitor` (the same status as
//!   Flink's, in Spark's terms).
//! - `audit`: `ledger` (pure exactly-once accounting), `consumer` (reads the output topic),
//!   the actor that owns the ledger.
//! - `business`: revenue at risk / delayed / lost, derived from the audit's totals.
//! - `faults`: fault injection into Kafka, the JobManager, TaskManagers (process or Docker
//!   backends), with a persisted ledger so every fault is reverted.
//! - `drills`: the drill runner (`phases` pure detection, `runner`), the versioned
//!   `report`, the one table of its `figures`, its `render`ers (Markdown, HTML) and
//!   `compare`.
//! - `alerts`: the Alertmanager webhook's transitions, the alerts firing now, and the alert
//!   scoring of drills (expected alerts, time to detect, time to resolve).
//! - `grafana`: region annotations posted to Grafana's HTTP API during drills (optional,
//!   bounded, never delays a drill).
//! - `http`: the admin and metrics API; its `//!` lists every route.
//! - `cli`: the client subcommands (`drill`, `fault`, `report`, `compare`).

pub mod alerts;
pub mod app;
pub mod audit;
pub mod business;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_value;
pub mod drills;
pub mod durable;
pub mod engine;
pub mod faults;
pub mod flink;
pub mod generator;
pub mod grafana;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod order;
pub mod spark;
pub mod telemetry;
