//! Structured logs: the `[log]` config section and the tracing subscriber built from it.
//!
//! Owns log format (human or JSON) and filtering. Does not own metrics (see `metrics`).

use serde::Deserialize;

/// `[log]`: how firedrill writes its logs (to stderr).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `human` (default) or `json` (one object per line, for log shippers).
    pub format: Format,
    /// A tracing filter directive, e.g. `info` or `firedrill=debug,rdkafka=warn`.
    /// `RUST_LOG`, when set, takes precedence.
    pub filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            format: Format::Human,
            filter: "info".to_string(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Readable lines for a terminal.
    Human,
    /// JSON objects, one per line.
    Json,
}

/// Installs the global tracing subscriber. Call once, from `main`.
pub fn init(config: &Config) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directive) => tracing_subscriber::EnvFilter::try_new(directive),
        Err(_) => tracing_subscriber::EnvFilter::try_new(&config.filter),
    }
    .map_err(|e| format!("log.filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.format {
        Format::Human => builder.try_init(),
        Format::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| e.to_string())
}
