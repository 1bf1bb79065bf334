//! firedrill turns disaster-recovery drills on a Kafka -> Flink order pipeline into measured,
//! repeatable, auditable experiments.
//!
//! Module map (who owns what):
//!
//! - `config`: the root [`config::Config`], TOML + `FIREDRILL_*` overrides, strict validation;
//!   each component owns its own `Config` section.
//! - `app`: builds every component from the config, spawns them, shuts them down in order.
//! - `metrics`: the one Prometheus registry, its encoding, `firedrill_upstream_up`.
//! - `telemetry`: structured logs (human or JSON).
//! - `clock`: the wall clock, read in one place.
//! - `order`: the order model, catalogue, ids, wire formats (shared by generator and audit).
//! - `generator`: paced producer of orders (governor), delivery reports.
//! - `kafka`: client settings, topic names; `lag` (pure arithmetic), `monitor` (I/O).
//! - `flink`: `rest` (typed REST client), `monitor` (job health, checkpoint age).
//! - `audit`: `ledger` (pure exactly-once accounting), `consumer` (reads the output topic),
//!   the actor that owns the ledger.
//! - `business`: revenue at risk / delayed / lost, derived from the audit's totals.
//! - `http`: the admin and metrics API; its `//!` lists every route.

pub mod app;
pub mod audit;
pub mod business;
pub mod clock;
pub mod config;
pub mod flink;
pub mod generator;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod order;
pub mod telemetry;
