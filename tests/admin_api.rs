//! The admin API of the real daemon: bearer token, input validation that changes nothing,
//! rate limiting (and the emergency stops that escape it), a slow revert answered in time
//! and finished in the background, the served OpenAPI document against what the daemon
//! answers, and the fault ledger surviving SIGKILL of firedrill mid-fault (for each
//! action). Fault targets are real `sleep` processes started by a script, like
//! `compose/local/stack start`; upstreams point at closed ports, so no stack is needed.

#[path = "support/faults.rs"]
mod faults_support;
mod support;

use std::time::Duration;

use faults_support::{gone, ledger_ids, state, ProcessStack};
use support::{eventually, Daemon};

const TOKEN: &str = "s3cret-token-of-the-tests";

/// A daemon config with `victim` as a process target, dead upstreams, and `extra` appended.
fn config(stack: &ProcessStack, extra: &str) -> String {
    let reports = stack.dir.path().join("reports");
    format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:1"
request_timeout = "500ms"
[flink]
rest_url = "http://127.0.0.1:1"
[drills]
state_dir = "{reports}"
[faults]
ledger = "{ledger}"
max_duration = "5m"
[faults.targets.victim]
backend = "process"
pid_file = "{pid_file}"
start = ["{script}", "{pid_file}"]
default_action = "kill"
{extra}
"#,
        reports = reports.display(),
        ledger = stack.ledger().display(),
        pid_file = stack.pid_file("victim").display(),
        script = stack.script().display(),
    )
}

async fn post(
    daemon: &Daemon,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut request = daemon.http.post(daemon.url(path)).body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_and_tokens_get_4xx_and_change_nothing() {
    let stack = ProcessStack::new();
    let pid = stack.start("victim");
    let daemon = Daemon::start_with_env(
        &config(&stack, "[http]\nmutations_per_minute = 1000"),
        &[("FIREDRILL_HTTP__TOKEN", TOKEN)],
    );
    let cases: &[(&str, Option<&str>, &str, u16, &str)] = &[
        ("/faults/victim", None, "", 401, "Bearer"),
        (
            "/faults/victim",
            Some("wrong-token-wrong-token"),
            "",
            403,
            "wrong token",
        ),
        ("/faults/nope", Some(TOKEN), "", 404, "nope"),
        (
            "/faults/victim",
            Some(TOKEN),
            r#"{"duration": "soon"}"#,
            400,
            "not a duration",
        ),
        (
            "/faults/victim",
            Some(TOKEN),
            r#"{"duration": "0s"}"#,
            400,
            "zero",
        ),
        (
            "/faults/victim",
            Some(TOKEN),
            r#"{"duration": "1h"}"#,
            400,
            "5m",
        ),
        (
            "/faults/victim",
            Some(TOKEN),
            r#"{"action": "explode"}"#,
            400,
            "unknown variant",
        ),
        (
            "/faults/victim",
            Some(TOKEN),
            r#"{"action": "disconnect"}"#,
            400,
            "disconnect",
        ),
        (
            "/faults/victim",
            Some(TOKEN),
            r#"{"actio": "kill"}"#,
            400,
            "unknown field",
        ),
        (
            "/faults/victim",
            Some(TOKEN),
            "{not json",
            400,
            "invalid JSON",
        ),
        ("/drills", None, r#"{"scenario": "kafka"}"#, 401, "Bearer"),
        (
            "/drills",
            Some(TOKEN),
            r#"{"scenario": "meteor"}"#,
            400,
            "unknown variant",
        ),
        (
            "/drills",
            Some(TOKEN),
            r#"{"scenario": "kafka", "fault_duration": "-3s"}"#,
            400,
            "not a duration",
        ),
        // Refused up front, not after the gate and the baseline.
        (
            "/drills",
            Some(TOKEN),
            r#"{"scenario": "taskmanager", "target": "nope"}"#,
            404,
            "unknown fault target",
        ),
        (
            "/drills",
            Some(TOKEN),
            r#"{"scenario": "taskmanager", "target": "victim", "fault_duration": "1h"}"#,
            400,
            "exceeds max_duration 5m",
        ),
    ];
    for (path, token, body, status, says) in cases {
        let (got, error) = post(&daemon, path, *token, body).await;
        assert_eq!(got, *status, "{path} {body:?} with {token:?}: {error}");
        let message = error["error"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            message.contains(&says.to_lowercase()),
            "{path} {body:?}: {message:?} should mention {says:?}"
        );
    }
    // Nothing happened: no fault, the victim untouched, no drill.
    let faults: serde_json::Value = daemon.get("/faults").await.json().await.unwrap();
    assert_eq!(faults, serde_json::json!([]));
    assert_eq!(state(pid), Some('S'));
    assert!(ledger_ids(&stack.ledger()).is_empty());
    let drills: serde_json::Value = daemon.get("/drills").await.json().await.unwrap();
    assert_eq!(drills, serde_json::json!([]));
    // GETs need no token.
    assert_eq!(daemon.get("/faults/targets").await.status(), 200);

    // With the token: 201, and a second fault on the same target is a conflict.
    let (status, view) = post(
        &daemon,
        "/faults/victim",
        Some(TOKEN),
        r#"{"action": "pause", "duration": "1m"}"#,
    )
    .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(state(pid), Some('T'));
    let (status, _) = post(&daemon, "/faults/victim", Some(TOKEN), "").await;
    assert_eq!(status, 409);
    let id = view["id"].as_str().unwrap();
    let response = daemon
        .http
        .delete(daemon.url(&format!("/faults/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(state(pid), Some('S'));
    assert!(ledger_ids(&stack.ledger()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn mutations_are_rate_limited() {
    let stack = ProcessStack::new();
    let daemon = Daemon::start(&config(&stack, "[http]\nmutations_per_minute = 3"));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(post(&daemon, "/faults/nope", None, "").await.0);
    }
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
    // Reads are not limited.
    assert_eq!(daemon.get("/faults").await.status(), 200);
}

async fn send(
    daemon: &Daemon,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = daemon.http.request(method, daemon.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Once the mutation limit is spent, the emergency stops (reset, revert one fault, abort a
/// drill) still work, with the token, while every other mutation gets 429.
#[tokio::test(flavor = "multi_thread")]
async fn emergency_stops_are_never_rate_limited() {
    let stack = ProcessStack::new();
    let pid = stack.start("victim");
    let daemon = Daemon::start_with_env(
        &config(&stack, "[http]\nmutations_per_minute = 2"),
        &[("FIREDRILL_HTTP__TOKEN", TOKEN)],
    );
    // The limit (2, refilled one per 30 s) is spent by an inject and a refused request.
    let (status, view) = post(
        &daemon,
        "/faults/victim",
        Some(TOKEN),
        r#"{"action": "pause", "duration": "5m"}"#,
    )
    .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(state(pid), Some('T'));
    assert_eq!(post(&daemon, "/faults/nope", Some(TOKEN), "").await.0, 404);
    let (status, error) = post(&daemon, "/faults/nope", Some(TOKEN), "").await;
    assert_eq!(status, 429, "the limit is spent: {error}");

    // Emergency stops still need the token.
    assert_eq!(post(&daemon, "/faults/reset", None, "").await.0, 401);
    let (status, _) = send(&daemon, reqwest::Method::DELETE, "/faults/f-1", None).await;
    assert_eq!(status, 401);
    assert_eq!(post(&daemon, "/drills/d-1/abort", None, "").await.0, 401);

    // With it, reset answers 200 and reverts the fault, however often it is asked.
    let (status, reverted) = post(&daemon, "/faults/reset", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{reverted}");
    assert_eq!(reverted[0]["id"], view["id"], "{reverted}");
    assert_eq!(state(pid), Some('S'), "the victim continues");
    assert!(ledger_ids(&stack.ledger()).is_empty());
    for _ in 0..5 {
        let (status, reverted) = post(&daemon, "/faults/reset", Some(TOKEN), "").await;
        assert_eq!((status, reverted), (200, serde_json::json!([])));
    }
    // Revert one and abort: answered on their merits (nothing to stop), never 429.
    for _ in 0..3 {
        let (status, error) =
            send(&daemon, reqwest::Method::DELETE, "/faults/f-1", Some(TOKEN)).await;
        assert_eq!(status, 404, "{error}");
        let (status, error) = post(&daemon, "/drills/d-1/abort", Some(TOKEN), "").await;
        assert_eq!(status, 404, "{error}");
    }
    // ...and they gave nothing back to the others: still limited.
    let (status, _) = post(&daemon, "/faults/victim", Some(TOKEN), "").await;
    assert_eq!(status, 429);
    let (status, _) = post(&daemon, "/drills", Some(TOKEN), r#"{"scenario": "kafka"}"#).await;
    assert_eq!(status, 429);
    assert_eq!(state(pid), Some('S'), "the refused inject did nothing");
}

/// A revert that takes longer than the handler waits (a start command of 8 s) is answered
/// 202 in time, says where to follow it, and finishes anyway.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_revert_answers_202_and_finishes_in_the_background() {
    let stack = ProcessStack::new();
    stack.start("slow");
    let slow = format!(
        r#"
[faults.targets.slow]
backend = "process"
pid_file = "{pid_file}"
start = ["sh", "-c", "sleep 8 && exec \"$0\" \"$1\"", "{script}", "{pid_file}"]
default_action = "stop"
"#,
        pid_file = stack.pid_file("slow").display(),
        script = stack.script().display(),
    );
    let daemon = Daemon::start(&config(&stack, &slow));
    let (status, view) = post(&daemon, "/faults/slow", None, "").await;
    assert_eq!(status, 201, "{view}");
    assert!(stack.running_pid("slow").is_none());
    let id = view["id"].as_str().unwrap();

    // The daemon's client gives up after 5 s: this one waits for the answer, however late.
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let asked = std::time::Instant::now();
    let response = patient
        .delete(daemon.url(&format!("/faults/{id}")))
        .send()
        .await
        .unwrap();
    let waited = asked.elapsed();
    assert_eq!(response.status(), 202);
    assert!(waited < Duration::from_secs(8), "answered after {waited:?}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["fault_id"], id, "{body}");
    assert_eq!(body["follow"], "GET /faults", "{body}");
    // Still in the ledger until the revert is done, then gone, the target running again.
    let faults: serde_json::Value = daemon.get("/faults").await.json().await.unwrap();
    assert_eq!(faults[0]["id"], id, "{faults}");
    eventually(
        "the slow revert finishes in the background",
        Duration::from_secs(30),
        || async {
            (stack.running_pid("slow").is_some() && ledger_ids(&stack.ledger()).is_empty())
                .then_some(())
        },
    )
    .await;
    let faults: serde_json::Value = daemon.get("/faults").await.json().await.unwrap();
    assert_eq!(faults, serde_json::json!([]));
}

/// The served OpenAPI document is what the daemon does: every documented operation is
/// routed and answers one of its documented statuses (asked without side effects: a
/// placeholder `x` in each path parameter, an empty body), and every other method of a
/// documented path gets 405 with exactly the documented methods in `Allow`.
#[tokio::test(flavor = "multi_thread")]
async fn the_served_openapi_document_matches_the_routes() {
    let stack = ProcessStack::new();
    let daemon = Daemon::start(&config(&stack, "[http]\nmutations_per_minute = 1000"));
    let response = daemon.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: serde_json::Value = response.json().await.expect("openapi.json is JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi {version:?}");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/openapi.json"));
    let methods = ["GET", "PUT", "POST", "DELETE", "PATCH"];
    for (template, item) in paths {
        let path = template
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let mut documented: Vec<&str> = Vec::new();
        for method in methods {
            let Some(op) = item.get(method.to_lowercase()) else {
                continue;
            };
            documented.push(method);
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let (status, body) = send(&daemon, method.clone(), &path, None).await;
            let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                statuses.iter().any(|s| **s == status.to_string()),
                "{method} {path}: {status} is not among the documented {statuses:?}: {body}"
            );
        }
        for method in methods.iter().filter(|m| !documented.contains(m)) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let response = daemon
                .http
                .request(method.clone(), daemon.url(&path))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405, "{method} {path}");
            let mut allow: Vec<&str> = response.headers()["allow"]
                .to_str()
                .unwrap()
                .split(", ")
                .collect();
            allow.sort_unstable();
            let mut expected = documented.clone();
            expected.sort_unstable();
            assert_eq!(allow, expected, "{method} {path}: Allow");
        }
    }
    // Nothing was broken on the way.
    let faults: serde_json::Value = daemon.get("/faults").await.json().await.unwrap();
    assert_eq!(faults, serde_json::json!([]));
}

#[test]
fn without_a_token_the_admin_api_stays_on_loopback() {
    let stack = ProcessStack::new();
    let file = stack.dir.path().join("open.toml");
    std::fs::write(&file, config(&stack, "[http]\nlisten = \"0.0.0.0:9400\"")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("http.listen: 0.0.0.0:9400 is not a loopback address"));
}

/// SIGKILL firedrill while a fault is in effect, start it again: the target runs again and
/// the ledger is empty. For each action the process backend has.
#[tokio::test(flavor = "multi_thread")]
async fn a_fault_survives_sigkill_of_firedrill_and_is_reverted_at_the_next_start() {
    for action in ["stop", "kill", "pause"] {
        let stack = ProcessStack::new();
        let pid = stack.start("victim");
        let text = config(&stack, "");
        let mut daemon = Daemon::start(&text);
        let (status, view) = post(
            &daemon,
            "/faults/victim",
            None,
            &format!(r#"{{"action": "{action}", "duration": "5m"}}"#),
        )
        .await;
        assert_eq!(status, 201, "{action}: {view}");
        match action {
            "pause" => assert_eq!(state(pid), Some('T'), "{action}: paused"),
            _ => assert!(gone(pid), "{action}: the victim is gone"),
        }
        assert_eq!(
            ledger_ids(&stack.ledger()),
            [view["id"].as_str().unwrap()],
            "{action}: in the ledger"
        );

        support::signal(daemon.child.id(), "KILL");
        daemon.child.wait().unwrap();
        // Still broken: nobody reverted it.
        match action {
            "pause" => assert_eq!(state(pid), Some('T')),
            _ => assert!(stack.running_pid("victim").is_none()),
        }
        assert_eq!(ledger_ids(&stack.ledger()).len(), 1);

        let restarted = Daemon::start(&text);
        eventually(
            &format!("{action}: reverted at startup"),
            Duration::from_secs(30),
            || async {
                (stack.running_pid("victim").is_some() && ledger_ids(&stack.ledger()).is_empty())
                    .then_some(())
            },
        )
        .await;
        let faults: serde_json::Value = restarted.get("/faults").await.json().await.unwrap();
        assert_eq!(faults, serde_json::json!([]), "{action}");
        if action == "pause" {
            assert_eq!(
                stack.running_pid("victim"),
                Some(pid),
                "pause: the same process continues"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_reverts_active_faults_before_exit() {
    let stack = ProcessStack::new();
    stack.start("victim");
    let mut daemon = Daemon::start(&config(&stack, ""));
    let (status, _) = post(
        &daemon,
        "/faults/victim",
        None,
        r#"{"action": "stop", "duration": "5m"}"#,
    )
    .await;
    assert_eq!(status, 201);
    assert!(stack.running_pid("victim").is_none());
    let exit = daemon.terminate();
    assert!(exit.success(), "{exit}");
    assert!(
        stack.running_pid("victim").is_some(),
        "reverted before exit"
    );
    assert!(ledger_ids(&stack.ledger()).is_empty());
}
