//! The root [`Config`]: loading, environment overrides, and strict validation.
//!
//! Owns how a config file becomes a validated `Config`: TOML is parsed into a table,
//! `FIREDRILL_<SECTION>__<KEY>` environment variables are applied on top, and the result is
//! deserialized strictly (unknown keys, wrong types and impossible values all fail with the
//! key's path, e.g. `flink.rest_url: not a URL`). Each component owns its own `Config`
//! struct; this module only assembles them and checks what spans components.
//!
//! It does not own defaults of individual components (they live beside their component),
//! the value types the sections are written in and the error of an invalid value
//! (`config_value`, so that no component imports this module back), nor anything that
//! connects to the outside world (`Config::build` of each component does).

use std::path::Path;

use serde::Deserialize;

use crate::{
    alerts, audit, config_value::Invalid, drills, engine, faults, flink, generator, grafana, http,
    kafka, spark, telemetry,
};

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "FIREDRILL_";
/// Separator between path segments in an override variable's name.
pub const ENV_SEPARATOR: &str = "__";
/// `FIREDRILL_` variables of the client subcommands, not config overrides.
pub const ENV_RESERVED: &[&str] = &["FIREDRILL_URL", "FIREDRILL_TOKEN"];

/// Everything firedrill needs to run, one section per component.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Admin and metrics HTTP server.
    pub http: http::Config,
    /// Log format and filter.
    pub log: telemetry::Config,
    /// Kafka cluster, topics and the lag monitor.
    pub kafka: kafka::Config,
    /// Which stream processor runs the pipeline.
    pub engine: engine::Config,
    /// Flink REST API and the job monitor (engine `flink`).
    pub flink: flink::Config,
    /// Spark master, driver and query progress (engine `spark`).
    pub spark: spark::Config,
    /// The paced order generator.
    pub generator: generator::Config,
    /// The exactly-once audit of the output topic.
    pub audit: audit::Config,
    /// Fault injection targets, backends and limits.
    pub faults: faults::Config,
    /// The drill runner.
    pub drills: drills::Config,
    /// Alerts each drill scenario is expected to fire (scored in reports).
    pub alerts: alerts::Config,
    /// Grafana's HTTP API, for region annotations of drills (optional).
    pub grafana: grafana::Config,
}

/// A config that could not be loaded, with the path of the offending key when known.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}: invalid TOML: {message}")]
    Syntax { path: String, message: String },
    /// An environment override could not be applied.
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// A key is unknown, has the wrong type or an impossible value.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl Config {
    /// Reads `path`, applies the process environment's overrides and validates.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text, &path.display().to_string(), std::env::vars())
    }

    /// Parses `text` (named `origin` in errors), applies `env` overrides and validates.
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Error> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Syntax {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        apply_env(&mut table, env)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                // An unknown top-level key has the empty path, which prints as ".".
                let key = match e.path().to_string() {
                    root if root == "." => "config".to_string(),
                    key => key,
                };
                Invalid::new(key, clean_message(&e.into_inner().to_string()))
            })?;
        config.faults = config.faults.with_docker_network();
        config.validate()?;
        Ok(config)
    }

    /// Checks that span several sections (each section validated its own values already).
    fn validate(&self) -> Result<(), Error> {
        self.http.validate()?;
        self.faults.validate()?;
        self.alerts.validate()?;
        self.grafana.validate()?;
        if self.audit.lost_after < self.audit.sla {
            return Err(Invalid::new(
                "audit.lost_after",
                format!(
                    "must be at least audit.sla ({})",
                    humantime::format_duration(self.audit.sla)
                ),
            )
            .into());
        }
        if self.generator.rate.get() > self.generator.max_rate.get() {
            return Err(Invalid::new(
                "generator.rate",
                format!("above generator.max_rate ({})", self.generator.max_rate),
            )
            .into());
        }
        Ok(())
    }
}

/// Applies `FIREDRILL_A__B=value` as `a.b = value`. The value is read as a TOML value when it
/// parses as one (numbers, booleans, arrays), else as a string.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), Error> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_RESERVED.contains(&k.as_str()))
        .collect();
    // Deterministic order, so that a conflict always reports the same variable.
    vars.sort();
    for (var, raw) in vars {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split(ENV_SEPARATOR)
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(Error::Env {
                var,
                message: format!("expected {ENV_PREFIX}SECTION{ENV_SEPARATOR}KEY"),
            });
        }
        let value = parse_env_value(&raw);
        let (last, parents) = path
            .split_last()
            .expect("split yields at least one segment");
        let mut node = &mut *table;
        for (depth, segment) in parents.iter().enumerate() {
            let entry = node
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(Error::Env {
                        var,
                        message: format!("{} is not a section", path[..=depth].join(".")),
                    })
                }
            };
        }
        node.insert(last.clone(), value);
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    // `x = <raw>` parses only when raw is a TOML value; otherwise it's a bare string.
    format!("x = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// serde's messages are fine, but the TOML value deserializer appends nothing useful; keep
/// the first line only so that the key's path stays at the front of the message.
fn clean_message(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, Error> {
        Config::from_toml(
            text,
            "test.toml",
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_reference_config_parses() {
        let text = include_str!("../config/firedrill.toml");
        let config = load(text, &[]).expect("config/firedrill.toml is valid");
        assert_eq!(config.generator.rate.get(), 10);
        assert_eq!(config.kafka.orders_topic.as_str(), "orders");
        // It documents the defaults: every value in it is the one firedrill uses without it.
        let defaults = load("", &[]).unwrap();
        assert_eq!(format!("{config:#?}"), format!("{defaults:#?}"));
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = load("", &[]).unwrap();
        assert_eq!(config.http.listen.port(), 9400);
        assert_eq!(config.flink.rest_url.to_string(), "http://127.0.0.1:8081/");
    }

    #[test]
    fn a_bad_url_names_its_key() {
        let err = load("[flink]\nrest_url = \"not a url\"\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("flink.rest_url: not a URL"), "{msg}");
    }

    #[test]
    fn an_unknown_key_names_its_path() {
        let err = load("[kafka]\nbootstrap = \"x\"\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("kafka.bootstrap: unknown field `bootstrap`"),
            "{msg}"
        );
    }

    #[test]
    fn a_wrong_type_names_its_key() {
        let err = load("[generator]\nrate = \"fast\"\n", &[]).unwrap_err();
        assert!(err.to_string().starts_with("generator.rate: "), "{err}");
    }

    #[test]
    fn an_impossible_value_names_its_key() {
        let err = load("[generator]\nrate = 0\n", &[]).unwrap_err();
        assert!(err.to_string().starts_with("generator.rate: "), "{err}");
        let err = load("[flink]\npoll_interval = \"0s\"\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "flink.poll_interval: must be greater than zero"
        );
        let err = load("[audit]\nsla = \"1m\"\nlost_after = \"10s\"\n", &[]).unwrap_err();
        assert!(err.to_string().starts_with("audit.lost_after: "), "{err}");
    }

    #[test]
    fn environment_overrides_win_and_keep_types() {
        let config = load(
            "[generator]\nrate = 10\n",
            &[
                ("FIREDRILL_GENERATOR__RATE", "50"),
                ("FIREDRILL_FLINK__REST_URL", "http://flink:8081"),
                ("FIREDRILL_KAFKA__CONSUMER_GROUPS", "[\"a\", \"b\"]"),
                ("OTHER_VAR", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(config.generator.rate.get(), 50);
        assert_eq!(config.flink.rest_url.to_string(), "http://flink:8081/");
        assert_eq!(config.kafka.consumer_groups, vec!["a", "b"]);
    }

    #[test]
    fn a_bad_override_names_its_key() {
        let err = load("", &[("FIREDRILL_FLINK__REST_URL", "nope")]).unwrap_err();
        assert!(err.to_string().starts_with("flink.rest_url: not a URL"));
        let err = load("", &[("FIREDRILL_NOPE__X", "1")]).unwrap_err();
        assert!(
            err.to_string().starts_with("nope: unknown field `nope`"),
            "{err}"
        );
        let err = load(
            "[generator]\nrate = 5\n",
            &[("FIREDRILL_GENERATOR__RATE__X", "1")],
        )
        .unwrap_err();
        assert!(err.to_string().contains("generator.rate is not a section"));
    }

    #[test]
    fn invalid_toml_says_where() {
        let err = load("[http\n", &[]).unwrap_err();
        assert!(
            err.to_string().starts_with("test.toml: invalid TOML"),
            "{err}"
        );
    }
}
