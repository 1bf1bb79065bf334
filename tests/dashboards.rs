//! The Grafana dashboards (grafana/dashboards) and their provisioning, checked without a
//! Grafana server (none can be installed here) and without the local stack:
//!
//! - every file parses, uids are unique, no `__inputs` (file provisioning cannot fill them);
//! - every panel, rows' nested panels included, has a title (unique in its dashboard), a
//!   description, a unit and at least one target, and it and each of its targets use the `datasource` variable;
//! - every PromQL expression (targets and annotations) parses once Grafana's variables are
//!   substituted, and every rate()/irate()/increase() window is at least 4 scrape intervals
//!   of prometheus/prometheus.yml;
//! - grid positions fit 24 columns and do not overlap;
//! - every dashboard carries the drill annotations and links to the others;
//! - every recording rule a dashboard uses exists in prometheus/rules, and every metric of
//!   docs/metrics.md is on a dashboard (directly or through a recording rule);
//! - the JSON validates against Grafana's published dashboard schema (scripts/dashboard-schema,
//!   with the grafana-foundation-sdk models from PyPI).
//!
//! The checks return their findings instead of panicking, so the tests at the bottom run them
//! on small broken dashboards and show that each kind of defect is caught.

#[path = "support/dashboards.rs"]
mod dashboards;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use dashboards::{
    annotations, load, panels, parse_duration, rules, scrape_interval, substitute, Dashboard,
    Intervals, DATASOURCE_UID, PROVISIONED_UID,
};
use promql_parser::parser::{self, Expr};
use serde_json::{json, Value};

const COLUMNS: i64 = 24;
/// Grafana's schemaVersion of current releases (10.4 writes 39).
const MIN_SCHEMA_VERSION: i64 = 39;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the checks compare dashboards with.
struct Context {
    /// The longest scrape interval of prometheus.yml.
    scrape_interval: Duration,
    /// The provisioned datasource's `timeInterval`: Grafana's smallest `$__interval`, and a
    /// quarter of its smallest `$__rate_interval`.
    time_interval: Duration,
    /// Names of the series prometheus/rules records.
    recorded: BTreeSet<String>,
}

impl Context {
    fn of_repo() -> Context {
        Context {
            scrape_interval: scrape_interval(&repo()),
            time_interval: datasource_time_interval(),
            recorded: rules(&repo())
                .into_iter()
                .filter_map(|r| r.record)
                .collect(),
        }
    }

    /// The smallest intervals Grafana can give a query: rate windows are checked with these.
    fn smallest_intervals(&self, dashboard: &Value) -> Intervals {
        Intervals {
            interval: self.time_interval,
            rate_interval: 4 * self.time_interval,
            range: dashboards::time_range(dashboard),
        }
    }
}

fn datasource_provisioning() -> serde_yaml::Value {
    let path = repo().join("grafana/provisioning/datasources/prometheus.yml");
    serde_yaml::from_str(&fs::read_to_string(&path).expect("datasource provisioning"))
        .expect("datasource provisioning is YAML")
}

fn datasource_time_interval() -> Duration {
    let provisioning = datasource_provisioning();
    let interval = provisioning["datasources"][0]["jsonData"]["timeInterval"]
        .as_str()
        .expect("the provisioned datasource sets jsonData.timeInterval");
    parse_duration(interval).expect("timeInterval is a duration")
}

/// Every problem of the dashboards in `dir` (`shown_as` prefixes file names in messages).
fn check_dir(dir: &Path, shown_as: &str, ctx: &Context) -> Vec<String> {
    let mut problems = Vec::new();
    let mut loaded = Vec::new();
    for result in load(dir, shown_as) {
        match result {
            Ok(dashboard) => loaded.push(dashboard),
            Err(problem) => problems.push(problem),
        }
    }
    if loaded.is_empty() && problems.is_empty() {
        problems.push(format!("{shown_as}: no dashboards"));
    }
    let mut uids: BTreeMap<String, String> = BTreeMap::new();
    for Dashboard { file, json } in &loaded {
        match json["uid"].as_str() {
            Some(uid) if !uid.is_empty() => {
                if let Some(other) = uids.insert(uid.to_string(), file.clone()) {
                    problems.push(format!("{file}: uid {uid:?} is also the uid of {other}"));
                }
            }
            _ => problems.push(format!("{file}: no uid")),
        }
        problems.extend(check_dashboard(file, json, ctx));
    }
    // Links between dashboards point at existing uids, and each links to every other.
    for Dashboard { file, json } in &loaded {
        let linked: BTreeSet<&str> = json["links"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|link| link["url"].as_str())
            .filter_map(|url| url.strip_prefix("/d/"))
            .map(|rest| rest.split(['/', '?']).next().unwrap())
            .collect();
        for uid in &linked {
            if !uids.contains_key(*uid) {
                problems.push(format!("{file}: links to /d/{uid}, which no dashboard has"));
            }
        }
        let own = json["uid"].as_str().unwrap_or_default();
        for uid in uids.keys().filter(|uid| *uid != own) {
            if !linked.contains(uid.as_str()) {
                problems.push(format!("{file}: no link to dashboard {uid}"));
            }
        }
    }
    problems
}

fn is_variable_datasource(ds: &Value) -> bool {
    ds["type"] == "prometheus" && ds["uid"] == DATASOURCE_UID
}

fn check_dashboard(file: &str, dashboard: &Value, ctx: &Context) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |message: String| problems.push(format!("{file}: {message}"));

    if dashboard.get("__inputs").is_some() {
        problem("has __inputs: file provisioning does not fill them (grafana#10786); use the datasource variable".into());
    }
    match dashboard["schemaVersion"].as_i64() {
        Some(v) if v >= MIN_SCHEMA_VERSION => {}
        other => problem(format!(
            "schemaVersion {other:?}: current Grafana writes {MIN_SCHEMA_VERSION} or more"
        )),
    }
    if dashboard["title"].as_str().unwrap_or_default().is_empty() {
        problem("no title".into());
    }

    // The datasource variable, defaulting to the provisioned datasource.
    let variables: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    match variables.iter().find(|v| v["name"] == "datasource") {
        None => problem("no template variable named \"datasource\"".into()),
        Some(v) => {
            if v["type"] != "datasource" || v["query"] != "prometheus" {
                problem(format!(
                    "variable \"datasource\" must be of type datasource with query prometheus, not type {} query {}",
                    v["type"], v["query"]
                ));
            }
            if v["current"]["value"] != PROVISIONED_UID {
                problem(format!(
                    "variable \"datasource\" defaults to {}, not the provisioned {PROVISIONED_UID:?}",
                    v["current"]["value"]
                ));
            }
        }
    }

    // Panels.
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        let name = if title.is_empty() {
            format!("panel id {}", panel["id"])
        } else {
            format!("panel {title:?}")
        };
        if let Some(id) = panel["id"].as_i64() {
            if !ids.insert(id) {
                problem(format!("{name}: id {id} is used by another panel"));
            }
        }
        if panel["type"] == "row" {
            if title.is_empty() {
                problem(format!("{name}: a row without a title"));
            }
            continue;
        }
        if title.is_empty() {
            problem(format!("{name}: no title"));
        } else if !titles.insert(title) {
            // Titles name panels in messages and in support::dashboards::expressions.
            problem(format!("{name}: another panel has this title"));
        }
        if panel["description"].as_str().unwrap_or_default().is_empty() {
            problem(format!("{name}: no description"));
        }
        if panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            problem(format!("{name}: no unit (fieldConfig.defaults.unit)"));
        }
        if !is_variable_datasource(&panel["datasource"]) {
            problem(format!(
                "{name}: datasource {} is not {{\"type\":\"prometheus\",\"uid\":\"{DATASOURCE_UID}\"}}",
                panel["datasource"]
            ));
        }
        let targets: Vec<&Value> = panel["targets"].as_array().into_iter().flatten().collect();
        if targets.is_empty() {
            problem(format!("{name}: no targets"));
        }
        for target in targets {
            let which = format!("{name} target {}", target["refId"].as_str().unwrap_or("?"));
            if !is_variable_datasource(&target["datasource"]) {
                problem(format!(
                    "{which}: datasource {} is not the datasource variable",
                    target["datasource"]
                ));
            }
            match target["expr"].as_str() {
                Some(expr) if !expr.trim().is_empty() => {
                    for message in check_expr(expr, dashboard, ctx) {
                        problem(format!("{which}: {message}"));
                    }
                }
                _ => problem(format!("{which}: no expr")),
            }
        }
    }
    for message in check_layout(dashboard) {
        problem(message);
    }

    // Annotations: the API-posted events, and regions for faults, drill states and alerts.
    let list = annotations(dashboard);
    let tagged = list.iter().any(|a| {
        a["datasource"]["type"] == "grafana"
            && a["target"]["type"] == "tags"
            && a["target"]["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == "firedrill"))
    });
    if !tagged {
        problem("no Grafana annotation query for events tagged \"firedrill\"".into());
    }
    for annotation in &list {
        let name = format!(
            "annotation {:?}",
            annotation["name"].as_str().unwrap_or_default()
        );
        if annotation["datasource"]["type"] == "grafana" {
            continue;
        }
        if !is_variable_datasource(&annotation["datasource"]) {
            problem(format!(
                "{name}: datasource {} is not the datasource variable",
                annotation["datasource"]
            ));
        }
        match annotation["expr"].as_str() {
            Some(expr) if !expr.trim().is_empty() => {
                for message in check_expr(expr, dashboard, ctx) {
                    problem(format!("{name}: {message}"));
                }
            }
            _ => problem(format!("{name}: no expr")),
        }
        for key in ["step", "titleFormat", "textFormat", "tagKeys"] {
            if annotation[key].as_str().unwrap_or_default().is_empty() {
                problem(format!("{name}: no {key}"));
            }
        }
    }
    let exprs: Vec<&str> = list.iter().filter_map(|a| a["expr"].as_str()).collect();
    for (what, series) in [
        ("active faults", &["firedrill_fault_active"][..]),
        ("drill states", &["firedrill_drill_state"]),
        ("firing alerts", &["ALERTS", "firedrill_alerts_firing"]),
    ] {
        if !exprs.iter().any(|e| series.iter().any(|s| e.contains(s))) {
            problem(format!(
                "no annotation for {what} (an expr on {})",
                series.join(" or ")
            ));
        }
    }
    problems
}

/// Problems of one PromQL expression of `dashboard`: it must parse once Grafana's variables
/// are substituted, its rate windows must cover 4 scrapes, and the recording rules it reads
/// must exist.
fn check_expr(expr: &str, dashboard: &Value, ctx: &Context) -> Vec<String> {
    let substituted = substitute(expr, dashboard, ctx.smallest_intervals(dashboard));
    let parsed = match parser::parse(&substituted) {
        Ok(parsed) => parsed,
        Err(error) => return vec![format!("PromQL {substituted:?} does not parse: {error}")],
    };
    let mut problems = Vec::new();
    let min_window = 4 * ctx.scrape_interval;
    let mut windows = Vec::new();
    let mut names = Vec::new();
    walk(&parsed, &mut windows, &mut names);
    for (function, window) in windows {
        if window < min_window {
            problems.push(format!(
                "{function}() over {window:?} in {expr:?}: windows must be at least 4 scrape intervals ({min_window:?}), use $__rate_interval"
            ));
        }
    }
    for name in names.into_iter().filter(|n| n.contains(':')) {
        if !ctx.recorded.contains(&name) {
            problems.push(format!(
                "{name} is not recorded by any rule of prometheus/rules"
            ));
        }
    }
    problems
}

/// Collects the windows of rate()/irate()/increase() and the metric names selected.
fn walk(expr: &Expr, windows: &mut Vec<(&'static str, Duration)>, names: &mut Vec<String>) {
    match expr {
        Expr::Aggregate(e) => {
            walk(&e.expr, windows, names);
            if let Some(param) = &e.param {
                walk(param, windows, names);
            }
        }
        Expr::Unary(e) => walk(&e.expr, windows, names),
        Expr::Binary(e) => {
            walk(&e.lhs, windows, names);
            walk(&e.rhs, windows, names);
        }
        Expr::Paren(e) => walk(&e.expr, windows, names),
        Expr::Subquery(e) => walk(&e.expr, windows, names),
        Expr::VectorSelector(vs) => names.extend(vs.name.clone()),
        Expr::MatrixSelector(ms) => names.extend(ms.vs.name.clone()),
        Expr::Call(call) => {
            if matches!(call.func.name, "rate" | "irate" | "increase") {
                for arg in &call.args.args {
                    match arg.as_ref() {
                        Expr::MatrixSelector(ms) => windows.push((call.func.name, ms.range)),
                        Expr::Subquery(sq) => windows.push((call.func.name, sq.range)),
                        _ => {}
                    }
                }
            }
            for arg in &call.args.args {
                walk(arg, windows, names);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Grid positions fit 24 columns and do not overlap: among the top-level panels, and among
/// the panels of each collapsed row.
fn check_layout(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let top: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let mut groups = vec![top.clone()];
    for row in &top {
        if let Some(nested) = row["panels"].as_array().filter(|p| !p.is_empty()) {
            groups.push(nested.iter().collect());
        }
    }
    for group in groups {
        let mut placed: Vec<(String, [i64; 4])> = Vec::new();
        for panel in group {
            let name = format!("panel {:?}", panel["title"].as_str().unwrap_or_default());
            let pos = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| pos[k].as_i64());
            let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
                problems.push(format!(
                    "{name}: gridPos needs integer x, y, w and h, not {pos}"
                ));
                continue;
            };
            if x < 0 || y < 0 || w < 1 || h < 1 || x + w > COLUMNS {
                problems.push(format!(
                    "{name}: gridPos {pos} does not fit the {COLUMNS}-column grid"
                ));
            }
            for (other, [ox, oy, ow, oh]) in &placed {
                if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                    problems.push(format!("{name}: gridPos {pos} overlaps {other}"));
                }
            }
            placed.push((name, [x, y, w, h]));
        }
    }
    problems
}

/// Runs scripts/dashboard-schema on `files`: Ok with its summary, Err with its findings.
fn schema_check(files: &[PathBuf]) -> Result<String, String> {
    let output = Command::new(repo().join("scripts/dashboard-schema"))
        .args(files)
        .output()
        .expect("run scripts/dashboard-schema");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => Ok(text),
        Some(1) => Err(text),
        _ => panic!("scripts/dashboard-schema could not run:\n{text}"),
    }
}

/// The folder of dashboards the repository tests check: grafana/dashboards, or the folder
/// FIREDRILL_DASHBOARDS names (to try the checks on a copy).
fn dashboards_dir() -> (PathBuf, String) {
    match std::env::var("FIREDRILL_DASHBOARDS") {
        Ok(dir) => (PathBuf::from(&dir), dir),
        Err(_) => (
            repo().join("grafana/dashboards"),
            "grafana/dashboards".to_string(),
        ),
    }
}

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dashboards_dir().0)
        .expect("the dashboards folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn report(problems: &[String]) -> String {
    format!(
        "{} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    )
}

// --- the repository's dashboards ------------------------------------------------------------

#[test]
fn dashboards_pass_every_check() {
    let ctx = Context::of_repo();
    let (dir, shown_as) = dashboards_dir();
    let problems = check_dir(&dir, &shown_as, &ctx);
    assert!(problems.is_empty(), "{}", report(&problems));
    assert_eq!(dashboard_files().len(), 3, "business, pipeline and drills");
}

#[test]
fn dashboards_validate_against_grafanas_schema() {
    if let Err(findings) = schema_check(&dashboard_files()) {
        panic!("scripts/dashboard-schema:\n{findings}");
    }
}

#[test]
fn provisioning_points_at_the_dashboards_and_the_datasource_they_use() {
    let ds = &datasource_provisioning()["datasources"][0];
    assert_eq!(ds["uid"].as_str(), Some(PROVISIONED_UID));
    assert_eq!(ds["type"].as_str(), Some("prometheus"));
    assert_eq!(ds["isDefault"].as_bool(), Some(true));
    assert_eq!(ds["url"].as_str(), Some("http://127.0.0.1:9090"));
    let scrape = scrape_interval(&repo());
    let time_interval = datasource_time_interval();
    assert!(
        time_interval >= scrape,
        "grafana/provisioning/datasources/prometheus.yml: timeInterval {time_interval:?} is shorter than prometheus.yml's scrape interval {scrape:?}: $__rate_interval would cover fewer than 4 scrapes"
    );

    let path = repo().join("grafana/provisioning/dashboards/firedrill.yml");
    let provider: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let provider = &provider["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert_eq!(provider["folder"].as_str(), Some("firedrill"));
    let dir = provider["options"]["path"].as_str().unwrap();
    assert!(
        repo().join(dir).is_dir(),
        "the dashboard provider loads {dir}, which is not a folder of the repository"
    );
}

/// Whether `expr` still holds a Grafana variable (`$name`, `${name}`, `[[name]]`); `$1` is
/// label_replace's, not Grafana's.
fn grafana_variable_left(expr: &str) -> bool {
    expr.contains("${")
        || expr.contains("[[")
        || expr
            .split('$')
            .skip(1)
            .any(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
}

#[test]
fn expressions_cover_every_target_annotation_and_rule_and_parse() {
    let exprs = dashboards::expressions(&repo());
    let mut expected = rules(&repo()).len();
    for result in load(&repo().join("grafana/dashboards"), "grafana/dashboards") {
        let json = result.unwrap().json;
        expected += panels(&json)
            .iter()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten())
            .filter(|t| t["expr"].is_string())
            .count();
        expected += annotations(&json)
            .iter()
            .filter(|a| a["expr"].is_string())
            .count();
    }
    assert_eq!(exprs.len(), expected);
    let problems: Vec<String> = exprs
        .iter()
        .filter(|(_, expr)| grafana_variable_left(expr) || parser::parse(expr).is_err())
        .map(|(place, expr)| format!("{place}: {expr:?}"))
        .collect();
    assert!(problems.is_empty(), "{}", report(&problems));
    let live = exprs
        .iter()
        .find(|(place, _)| place.contains("\"Audit verdicts /s\""))
        .expect("the audit verdicts panel");
    assert!(live.1.contains("[30s]"), "{live:?}");
}

/// The metrics docs/metrics.md lists (the first column of its tables).
fn documented_metrics() -> Vec<String> {
    let text = fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("firedrill_"))
        .map(str::to_string)
        .collect()
}

/// The metric names `exprs` select, following recording rules to what they read.
fn metrics_read(exprs: &[String], rules: &[dashboards::Rule]) -> BTreeSet<String> {
    let mut pending: Vec<String> = exprs.to_vec();
    let mut seen = BTreeSet::new();
    while let Some(expr) = pending.pop() {
        let Ok(parsed) = parser::parse(&expr) else {
            continue; // reported by the checks above
        };
        let (mut windows, mut names) = (Vec::new(), Vec::new());
        walk(&parsed, &mut windows, &mut names);
        for name in names {
            if seen.insert(name.clone()) {
                let recorded = rules.iter().filter(|r| r.record.as_deref() == Some(&name));
                pending.extend(recorded.map(|r| r.expr.clone()));
            }
        }
    }
    seen
}

#[test]
fn every_documented_metric_is_on_a_dashboard() {
    let repo = repo();
    let rules = rules(&repo);
    let exprs: Vec<String> = dashboards::expressions(&repo)
        .into_iter()
        .filter(|(place, _)| place.starts_with("grafana/"))
        .map(|(_, expr)| expr)
        .collect();
    let read = metrics_read(&exprs, &rules);
    let documented = documented_metrics();
    assert!(
        documented.len() > 30,
        "docs/metrics.md lists {documented:?}"
    );
    let missing: Vec<&String> = documented
        .iter()
        .filter(|metric| {
            !read.iter().any(|name| {
                name == *metric
                    || name
                        .strip_prefix(metric.as_str())
                        .is_some_and(|s| ["_bucket", "_count", "_sum"].contains(&s))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "metrics of docs/metrics.md that no dashboard shows (directly or through a recording rule): {missing:?}; add a panel to grafana/dashboards"
    );
}

// --- each kind of defect is caught, on a small dashboard built here ---------------------------

fn ds() -> Value {
    json!({"type": "prometheus", "uid": DATASOURCE_UID})
}

fn small_panel(id: i64, title: &str, x: i64, y: i64, expr: &str) -> Value {
    json!({
        "type": "timeseries",
        "id": id,
        "title": title,
        "description": "what it shows",
        "datasource": ds(),
        "gridPos": {"x": x, "y": y, "w": 12, "h": 8},
        "fieldConfig": {"defaults": {"unit": "ops"}, "overrides": []},
        "options": {},
        "targets": [{"refId": "A", "datasource": ds(), "expr": expr}],
    })
}

fn small_dashboard(uid: &str, others: &[&str]) -> Value {
    let annotation = |name: &str, expr: &str| {
        json!({
            "name": name, "datasource": ds(), "enable": true, "iconColor": "red",
            "expr": expr, "step": "5s", "titleFormat": "t", "textFormat": "x", "tagKeys": "a",
        })
    };
    json!({
        "uid": uid,
        "title": uid,
        "schemaVersion": 39,
        "time": {"from": "now-30m", "to": "now"},
        "links": others.iter().map(|o| json!({"title": o, "type": "link", "url": format!("/d/{o}/x")})).collect::<Vec<_>>(),
        "templating": {"list": [{
            "type": "datasource", "name": "datasource", "query": "prometheus",
            "current": {"text": "Prometheus", "value": PROVISIONED_UID},
        }]},
        "annotations": {"list": [
            {"name": "events", "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": true, "iconColor": "blue",
             "target": {"type": "tags", "tags": ["firedrill"], "matchAny": true, "limit": 100}},
            annotation("faults", "firedrill_fault_active == 1"),
            annotation("drill", "firedrill_drill_state == 1"),
            annotation("alerts", "ALERTS{alertstate=\"firing\"}"),
        ]},
        "panels": [
            {"type": "row", "id": 1, "title": "Row", "collapsed": false, "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}, "panels": []},
            small_panel(2, "Rate", 0, 1, "sum(rate(firedrill_audit_records_total[$__rate_interval]))"),
            small_panel(3, "Recorded", 12, 1, "sum(firedrill:orders_acked:rate30s)"),
        ],
    })
}

fn small_context() -> Context {
    Context {
        scrape_interval: Duration::from_secs(5),
        time_interval: Duration::from_secs(5),
        recorded: ["firedrill:orders_acked:rate30s".to_string()].into(),
    }
}

/// Writes `dashboards` into a temporary folder and runs every check on it.
fn check_small(dashboards: &[Value]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (i, dashboard) in dashboards.iter().enumerate() {
        let text = serde_json::to_string_pretty(dashboard).unwrap();
        fs::write(dir.path().join(format!("d{i}.json")), text).unwrap();
    }
    check_dir(dir.path(), "tmp", &small_context())
}

/// Checks one broken variant of the small dashboard: it must be flagged with `expected`.
fn assert_caught(break_it: impl FnOnce(&mut Value), expected: &str) {
    let mut dashboard = small_dashboard("small", &[]);
    break_it(&mut dashboard);
    let problems = check_small(&[dashboard]);
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem containing {expected:?}, got {}",
        report(&problems)
    );
}

#[test]
fn the_small_dashboard_passes() {
    let problems = check_small(&[
        small_dashboard("one", &["two"]),
        small_dashboard("two", &["one"]),
    ]);
    assert!(problems.is_empty(), "{}", report(&problems));
}

#[test]
fn catches_a_file_that_is_not_json() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("broken.json"), "{\"uid\": \"x\",").unwrap();
    let problems = check_dir(dir.path(), "tmp", &small_context());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tmp/broken.json: not valid JSON")),
        "{}",
        report(&problems)
    );
}

#[test]
fn catches_duplicate_uids() {
    let problems = check_small(&[
        small_dashboard("same", &["same"]),
        small_dashboard("same", &["same"]),
    ]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("uid \"same\" is also the uid of tmp/d0.json")),
        "{}",
        report(&problems)
    );
}

#[test]
fn catches_missing_and_broken_links() {
    let problems = check_small(&[
        small_dashboard("one", &["nowhere"]),
        small_dashboard("two", &["one"]),
    ]);
    let text = report(&problems);
    assert!(
        text.contains("tmp/d0.json: links to /d/nowhere, which no dashboard has"),
        "{text}"
    );
    assert!(
        text.contains("tmp/d0.json: no link to dashboard two"),
        "{text}"
    );
}

#[test]
fn catches_import_inputs() {
    assert_caught(|d| d["__inputs"] = json!([]), "has __inputs");
}

#[test]
fn catches_an_old_schema_version() {
    assert_caught(|d| d["schemaVersion"] = json!(27), "schemaVersion Some(27)");
}

#[test]
fn catches_a_missing_datasource_variable() {
    assert_caught(
        |d| d["templating"]["list"] = json!([]),
        "no template variable named \"datasource\"",
    );
    assert_caught(
        |d| d["templating"]["list"][0]["current"]["value"] = json!("other"),
        "variable \"datasource\" defaults to \"other\"",
    );
}

#[test]
fn catches_a_panel_without_a_unit() {
    assert_caught(
        |d| d["panels"][1]["fieldConfig"]["defaults"] = json!({}),
        "panel \"Rate\": no unit",
    );
}

#[test]
fn catches_a_panel_without_a_title_or_description() {
    assert_caught(
        |d| d["panels"][1]["title"] = json!(""),
        "panel id 2: no title",
    );
    assert_caught(
        |d| d["panels"][1]["description"] = json!(null),
        "panel \"Rate\": no description",
    );
}

#[test]
fn catches_a_panel_without_targets() {
    assert_caught(
        |d| d["panels"][1]["targets"] = json!([]),
        "panel \"Rate\": no targets",
    );
}

#[test]
fn catches_a_hard_coded_datasource() {
    let fixed = json!({"type": "prometheus", "uid": "PBFA97CFB590B2093"});
    assert_caught(
        |d| d["panels"][1]["datasource"] = fixed.clone(),
        "panel \"Rate\": datasource",
    );
    assert_caught(
        |d| d["panels"][1]["targets"][0]["datasource"] = fixed.clone(),
        "panel \"Rate\" target A: datasource",
    );
    assert_caught(
        |d| d["annotations"]["list"][1]["datasource"] = fixed.clone(),
        "annotation \"faults\": datasource",
    );
}

#[test]
fn catches_an_expression_that_does_not_parse() {
    assert_caught(
        |d| d["panels"][1]["targets"][0]["expr"] = json!("sum(rate(x[$__rate_interval])"),
        "panel \"Rate\" target A: PromQL",
    );
    // An unknown variable stays in the expression, which then does not parse.
    assert_caught(
        |d| d["panels"][1]["targets"][0]["expr"] = json!("rate(x[$window])"),
        "does not parse",
    );
}

#[test]
fn catches_an_annotation_expression_that_does_not_parse() {
    assert_caught(
        |d| d["annotations"]["list"][1]["expr"] = json!("firedrill_fault_active =="),
        "annotation \"faults\": PromQL",
    );
}

#[test]
fn catches_missing_annotations() {
    assert_caught(
        |d| {
            d["annotations"]["list"].as_array_mut().unwrap().remove(0);
        },
        "no Grafana annotation query for events tagged \"firedrill\"",
    );
    assert_caught(
        |d| {
            d["annotations"]["list"].as_array_mut().unwrap().remove(3);
        },
        "no annotation for firing alerts",
    );
    assert_caught(
        |d| d["annotations"]["list"][2]["tagKeys"] = json!(null),
        "annotation \"drill\": no tagKeys",
    );
}

#[test]
fn catches_a_rate_window_shorter_than_four_scrapes() {
    // Scrapes every 5 s: 15 s is three scrapes, $__interval can be a single one.
    for expr in [
        "rate(firedrill_audit_records_total[15s])",
        "increase(firedrill_drills_total[$__interval])",
        "max_over_time(irate(firedrill_audit_records_total[10s:1s])[5m:])",
    ] {
        assert_caught(
            |d| d["panels"][1]["targets"][0]["expr"] = json!(expr),
            "windows must be at least 4 scrape intervals (20s)",
        );
    }
}

#[test]
fn catches_a_recording_rule_that_does_not_exist() {
    assert_caught(
        |d| d["panels"][2]["targets"][0]["expr"] = json!("firedrill:orders_ackd:rate30s"),
        "firedrill:orders_ackd:rate30s is not recorded",
    );
}

#[test]
fn catches_overlapping_panels_and_panels_off_the_grid() {
    assert_caught(
        |d| d["panels"][2]["gridPos"]["x"] = json!(6),
        "panel \"Recorded\": gridPos {\"h\":8,\"w\":12,\"x\":6,\"y\":1} overlaps panel \"Rate\"",
    );
    assert_caught(
        |d| d["panels"][2]["gridPos"]["x"] = json!(16),
        "does not fit the 24-column grid",
    );
    assert_caught(
        |d| d["panels"][2]["gridPos"] = json!({"x": 12, "y": 1}),
        "gridPos needs integer x, y, w and h",
    );
}

#[test]
fn checks_the_panels_of_collapsed_rows() {
    assert_caught(
        |d| {
            let mut nested = small_panel(4, "Nested", 0, 10, "up");
            nested["fieldConfig"]["defaults"] = json!({});
            d["panels"].as_array_mut().unwrap().push(json!({
                "type": "row", "id": 5, "title": "Collapsed", "collapsed": true,
                "gridPos": {"x": 0, "y": 9, "w": 24, "h": 1}, "panels": [nested],
            }));
        },
        "panel \"Nested\": no unit",
    );
}

#[test]
fn catches_duplicate_panel_titles() {
    assert_caught(
        |d| d["panels"][2]["title"] = json!("Rate"),
        "panel \"Rate\": another panel has this title",
    );
}

#[test]
fn catches_duplicate_panel_ids() {
    assert_caught(
        |d| d["panels"][2]["id"] = json!(2),
        "id 2 is used by another panel",
    );
}

// --- the schema check can fail ---------------------------------------------------------------

/// A named way to break a dashboard.
type Breakage = (&'static str, fn(&mut Value));

/// Runs the schema check on one variant of the small dashboard.
fn schema_of(dashboard: &Value) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.json");
    fs::write(&path, serde_json::to_string_pretty(dashboard).unwrap()).unwrap();
    schema_check(&[path])
}

#[test]
fn schema_check_passes_the_small_dashboard() {
    if let Err(findings) = schema_of(&small_dashboard("small", &[])) {
        panic!("{findings}");
    }
}

#[test]
fn schema_check_catches_unknown_keys_wrong_types_and_units() {
    let cases: [Breakage; 8] = [
        (".panels[1](\"Rate\").fieldConfig.defaults.unitt: unknown key", |d| {
            d["panels"][1]["fieldConfig"]["defaults"]["unitt"] = json!("ops")
        }),
        (".refreshh: unknown key", |d| d["refreshh"] = json!("5s")),
        (".panels[1](\"Rate\").targets[0].legendFromat: unknown key", |d| {
            d["panels"][1]["targets"][0]["legendFromat"] = json!("{{x}}")
        }),
        (".panels[2](\"Recorded\").gridPos.w: \"12\" is not an integer", |d| {
            d["panels"][2]["gridPos"]["w"] = json!("12")
        }),
        (".templating.list[0](\"datasource\").type: \"datasrc\" is not a valid VariableType", |d| {
            d["templating"]["list"][0]["type"] = json!("datasrc")
        }),
        (".panels[1](\"Rate\").fieldConfig.defaults.unit: unknown unit \"secs\"", |d| {
            d["panels"][1]["fieldConfig"]["defaults"]["unit"] = json!("secs")
        }),
        // Prometheus' own annotation fields are allowed, a misspelled one is not.
        (".annotations.list[1](\"faults\").tagKey: unknown key", |d| {
            d["annotations"]["list"][1]["tagKey"] = json!("target")
        }),
        // Checked against the timeseries plugin's own options model.
        (".panels[1](\"Rate\").options.legend.displayMode: \"lst\" is not a valid LegendDisplayMode", |d| {
            d["panels"][1]["options"] = json!({"legend": {"displayMode": "lst", "placement": "bottom", "showLegend": true, "calcs": []}})
        }),
    ];
    for (expected, break_it) in cases {
        let mut dashboard = small_dashboard("small", &[]);
        break_it(&mut dashboard);
        match schema_of(&dashboard) {
            Ok(summary) => panic!("expected {expected:?}, the schema check passed: {summary}"),
            Err(findings) => assert!(
                findings.contains(expected),
                "expected {expected:?} in:\n{findings}"
            ),
        }
    }
}
