//! The PromQL that users see: every query of the Grafana dashboards in `grafana/dashboards`
//! (panel targets and annotations) and every rule of `prometheus/rules/*.yml`, with Grafana's
//! template variables substituted the way a live query would have them.
//!
//! tests/dashboards.rs checks the dashboards themselves (structure, schema, PromQL syntax,
//! rate windows); a test against a live Prometheus takes [`expressions`] and runs each one
//! during a drill (an expression that returns nothing is a broken panel or rule).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

/// The datasource every panel, target and annotation must use: the dashboard's `datasource`
/// template variable (file provisioning cannot fill `${DS_...}` import inputs).
pub const DATASOURCE_UID: &str = "${datasource}";

/// The uid the provisioned Prometheus datasource has, the `datasource` variable's default.
pub const PROVISIONED_UID: &str = "firedrill-prometheus";

/// A dashboard file, parsed.
pub struct Dashboard {
    /// Path relative to the repository (or to the folder it was loaded from).
    pub file: String,
    pub json: Value,
}

/// Every `*.json` of `dir`, sorted by name, parsed; a file that does not parse is an `Err`
/// naming it.
pub fn load(dir: &Path, shown_as: &str) -> Vec<Result<Dashboard, String>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let file = format!("{shown_as}/{}", path.file_name().unwrap().to_string_lossy());
            let text = fs::read_to_string(&path).map_err(|error| format!("{file}: {error}"))?;
            let json = serde_json::from_str(&text)
                .map_err(|error| format!("{file}: not valid JSON: {error}"))?;
            Ok(Dashboard { file, json })
        })
        .collect()
}

/// Every panel of a dashboard in layout order: top-level panels, rows, and the panels that
/// collapsed rows hold.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        for nested in panel["panels"].as_array().into_iter().flatten() {
            out.push(nested);
        }
    }
    out
}

/// The annotation queries of a dashboard.
pub fn annotations(dashboard: &Value) -> Vec<&Value> {
    dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// The values Grafana gives its built-in interval variables for one query.
#[derive(Clone, Copy, Debug)]
pub struct Intervals {
    /// `$__interval`: the query step (at least the datasource's scrape interval).
    pub interval: Duration,
    /// `$__rate_interval`: at least four scrape intervals.
    pub rate_interval: Duration,
    /// `$__range`: the dashboard's time range.
    pub range: Duration,
}

impl Intervals {
    /// What a live query of `dashboard` uses: a step of one scrape interval, a 30 s rate window
    /// (or four scrape intervals if longer), the dashboard's default time range.
    pub fn live(dashboard: &Value, scrape_interval: Duration) -> Intervals {
        Intervals {
            interval: scrape_interval,
            rate_interval: (4 * scrape_interval).max(Duration::from_secs(30)),
            range: time_range(dashboard),
        }
    }
}

/// The length of a dashboard's default time range (`time.from` of the form `now-30m`, to
/// `now`); 1 h when it is not of that form.
pub fn time_range(dashboard: &Value) -> Duration {
    dashboard["time"]["from"]
        .as_str()
        .and_then(|from| from.strip_prefix("now-"))
        .and_then(parse_duration)
        .unwrap_or(Duration::from_secs(3600))
}

/// Replaces Grafana's template variables in `expr`: the built-in intervals (`$__interval`,
/// `$__interval_ms`, `$__rate_interval`, `$__range`, `$__range_s`, `$__range_ms`), in the
/// `$name`, `${name}`, `${name:format}` and `[[name]]` forms, and the dashboard's own
/// variables by their current value (a regex matching anything for "All"). Unknown variables
/// stay, so the expression fails to parse.
pub fn substitute(expr: &str, dashboard: &Value, intervals: Intervals) -> String {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = variable["name"].as_str() else {
            continue;
        };
        let current = &variable["current"]["value"];
        let value = match current {
            Value::String(value) => value.clone(),
            Value::Array(values) => values
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("|"),
            _ => String::new(),
        };
        let value = if value == "$__all" {
            variable["allValue"].as_str().unwrap_or(".*").to_string()
        } else {
            value
        };
        values.insert(name.to_string(), value);
    }
    let builtins = [
        ("__rate_interval", prom_duration(intervals.rate_interval)),
        ("__interval_ms", intervals.interval.as_millis().to_string()),
        ("__interval", prom_duration(intervals.interval)),
        ("__range_ms", intervals.range.as_millis().to_string()),
        ("__range_s", intervals.range.as_secs().to_string()),
        ("__range", prom_duration(intervals.range)),
    ];
    values.extend(builtins.map(|(k, v)| (k.to_string(), v)));

    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find(['$', '[']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some((name, len)) = variable_at(rest) {
            if let Some(value) = values.get(name) {
                out.push_str(value);
                rest = &rest[len..];
                continue;
            }
        }
        let next = rest.chars().next().unwrap();
        out.push(next);
        rest = &rest[next.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// The variable reference at the start of `s` and its length in bytes, if any.
fn variable_at(s: &str) -> Option<(&str, usize)> {
    let ident_len = |t: &str| {
        t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len())
    };
    if let Some(inner) = s.strip_prefix("${") {
        let end = inner.find('}')?;
        let name = inner[..end].split(':').next().unwrap();
        return Some((name, end + 3));
    }
    if let Some(inner) = s.strip_prefix("[[") {
        let end = inner.find("]]")?;
        let name = inner[..end].split(':').next().unwrap();
        return Some((name, end + 4));
    }
    let inner = s.strip_prefix('$')?;
    let len = ident_len(inner);
    (len > 0).then_some((&inner[..len], len + 1))
}

/// A Prometheus duration (`30s`, `1m30s`, `500ms`, `2h`), as in prometheus.yml and PromQL.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "w" => Duration::from_secs(7 * 86_400),
            "y" => Duration::from_secs(365 * 86_400),
            _ => return None,
        };
        total += unit * u32::try_from(n).ok()?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// `d` as a PromQL duration literal (whole seconds, or milliseconds).
pub fn prom_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The longest scrape interval prometheus/prometheus.yml configures (the global one, or a
/// job's own when longer); Prometheus' default 1m when it sets none.
pub fn scrape_interval(repo: &Path) -> Duration {
    let path = repo.join("prometheus/prometheus.yml");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let config: serde_yaml::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|error| panic!("{}: not valid YAML: {error}", path.display()));
    let interval = |v: &serde_yaml::Value| {
        v["scrape_interval"].as_str().map(|s| {
            parse_duration(s)
                .unwrap_or_else(|| panic!("{}: bad scrape_interval {s:?}", path.display()))
        })
    };
    let global = interval(&config["global"]).unwrap_or(Duration::from_secs(60));
    config["scrape_configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(interval)
        .fold(global, Duration::max)
}

/// A recording or alerting rule of prometheus/rules/*.yml.
pub struct Rule {
    /// `prometheus/rules/<file>: record <name>` or `...: alert <name>`.
    pub place: String,
    /// The recorded series' name, for recording rules.
    pub record: Option<String>,
    pub expr: String,
}

/// Every rule of prometheus/rules/*.yml, in file order (files sorted by name).
pub fn rules(repo: &Path) -> Vec<Rule> {
    let dir = repo.join("prometheus/rules");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let file = format!(
            "prometheus/rules/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let text = fs::read_to_string(&path).unwrap_or_else(|error| panic!("{file}: {error}"));
        let doc: serde_yaml::Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|error| panic!("{file}: not valid YAML: {error}"));
        for group in doc["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                let record = rule["record"].as_str().map(str::to_string);
                let name = match (&record, rule["alert"].as_str()) {
                    (Some(record), _) => format!("record {record}"),
                    (None, Some(alert)) => format!("alert {alert}"),
                    (None, None) => "rule without record or alert".to_string(),
                };
                out.push(Rule {
                    place: format!("{file}: {name}"),
                    record,
                    expr: rule["expr"].as_str().unwrap_or_default().trim().to_string(),
                });
            }
        }
    }
    out
}

/// (where, expr) for every panel target and annotation query of every dashboard in
/// grafana/dashboards, with template variables substituted as a live query has them
/// (`$__rate_interval` -> `30s`, `$__range` -> the dashboard's time range), and every rule of
/// prometheus/rules/*.yml. "where" names the file and the panel (or annotation, or rule).
/// Panics when a dashboard does not parse (tests/dashboards.rs says why).
pub fn expressions(repo: &Path) -> Vec<(String, String)> {
    let scrape = scrape_interval(repo);
    let mut out = Vec::new();
    for dashboard in load(&repo.join("grafana/dashboards"), "grafana/dashboards") {
        let Dashboard { file, json } = dashboard.unwrap_or_else(|error| panic!("{error}"));
        let intervals = Intervals::live(&json, scrape);
        for panel in panels(&json) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((
                        format!(
                            "{file}: panel {:?} target {}",
                            panel["title"].as_str().unwrap_or_default(),
                            target["refId"].as_str().unwrap_or("?")
                        ),
                        substitute(expr, &json, intervals),
                    ));
                }
            }
        }
        for annotation in annotations(&json) {
            if let Some(expr) = annotation["expr"].as_str() {
                out.push((
                    format!(
                        "{file}: annotation {:?}",
                        annotation["name"].as_str().unwrap_or_default()
                    ),
                    substitute(expr, &json, intervals),
                ));
            }
        }
    }
    out.extend(rules(repo).into_iter().map(|rule| (rule.place, rule.expr)));
    out
}
