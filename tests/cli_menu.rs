//! `firedrill drill`'s two ways to start a drill, from the outside: the menu on a real
//! pseudo-terminal (util-linux `script`), the usage error without a terminal, a bare number
//! of seconds as the fault duration. A small HTTP server on 127.0.0.1:0 stands in for the
//! daemon: it records every request and answers 503, so the CLI stops right after
//! `POST /drills`. Needs `script` (util-linux), not the local stack.

use std::{process::Stdio, time::Duration};

use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::Command,
    sync::mpsc,
};

/// How long a CLI run may take; every run here ends at the first request or before it.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// One request the stand-in daemon received.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    body: Value,
}

/// Records requests, answers each with a 503 and a JSON error.
struct FakeDaemon {
    url: String,
    received: mpsc::UnboundedReceiver<Request>,
}

impl FakeDaemon {
    async fn start() -> FakeDaemon {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sender, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, sender.clone()));
            }
        });
        FakeDaemon { url, received }
    }

    /// Every request so far. Each is recorded before it is answered, and the CLI exits only
    /// after its answer, so once the CLI has exited this is all of them.
    fn requests(&mut self) -> Vec<Request> {
        std::iter::from_fn(|| self.received.try_recv().ok()).collect()
    }
}

async fn answer(stream: TcpStream, sender: mpsc::UnboundedSender<Request>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let mut request_line = line.split_whitespace();
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    sender
        .send(Request { method, path, body })
        .expect("the test is listening");
    let error = r#"{"error":"a test double, not a firedrill daemon"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{error}",
        error.len()
    );
    reader
        .into_inner()
        .write_all(response.as_bytes())
        .await
        .unwrap();
}

/// What a run of the CLI came to.
struct Run {
    code: Option<i32>,
    /// stdout and stderr (on a terminal: both, with the terminal's echo of the input).
    output: String,
}

/// Runs `firedrill ARGS` on a pseudo-terminal (`script -qec`), typing `input`, then end of
/// input.
async fn on_terminal(args: &[&str], input: &str) -> Run {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command = std::iter::once(env!("CARGO_BIN_EXE_firedrill"))
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("util-linux `script` runs the CLI on a pseudo-terminal: install util-linux");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin); // `script` passes the end of input on to the terminal
    finish(
        child,
        &format!("firedrill {args:?} on a terminal, typing {input:?}"),
    )
    .await
}

/// Runs `firedrill ARGS` with stdin a pipe that stays open and silent: a CLI that read it
/// would hang.
async fn without_terminal(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let run = finish(child, &format!("firedrill {args:?} without a terminal")).await;
    drop(stdin);
    run
}

async fn finish(child: tokio::process::Child, what: &str) -> Run {
    let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what}: still running after {RUN_TIMEOUT:?}"))
        .unwrap();
    Run {
        code: out.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The one request a run should have made: `POST /drills` with `body`.
fn assert_posted(daemon: &mut FakeDaemon, body: Value, run: &Run) {
    let requests = daemon.requests();
    assert_eq!(requests.len(), 1, "{requests:?}\n{}", run.output);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/drills")
    );
    assert_eq!(requests[0].body, body, "{}", run.output);
    // The stand-in's 503 is the CLI's error: it got as far as posting and no further.
    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(
        run.output.contains("a test double, not a firedrill daemon"),
        "{}",
        run.output
    );
}

#[tokio::test]
async fn the_menu_asks_again_then_posts_the_chosen_drill_with_the_daemons_default() {
    let mut daemon = FakeDaemon::start().await;
    let run = on_terminal(&["drill", "--url", &daemon.url], "9\n1\n\n").await;
    for line in [
        "Which drill?",
        "1) TaskManager failure",
        "2) JobManager failure",
        "3) Kafka outage",
        "4) Comprehensive (all three of the engine's)",
        "\"9\" is not a drill: type a number from 1 to 7 (or q to quit)",
        "[Enter: the daemon's default, 30s unless configured]",
        "Starting a taskmanager drill, fault duration the daemon's default.",
    ] {
        assert!(run.output.contains(line), "no {line:?} in:\n{}", run.output);
    }
    assert_eq!(
        run.output.matches("Drill [1-7, q to quit]: ").count(),
        2,
        "asked again after 9:\n{}",
        run.output
    );
    // Enter sends no duration: the daemon applies its configured one.
    assert_posted(&mut daemon, json!({"scenario": "taskmanager"}), &run);
}

#[tokio::test]
async fn the_menu_takes_a_bare_number_of_seconds_as_the_fault_duration() {
    let mut daemon = FakeDaemon::start().await;
    let run = on_terminal(&["drill", "--url", &daemon.url], "3\nsoon\n45\n").await;
    assert!(
        run.output.contains("\"soon\": not a duration"),
        "{}",
        run.output
    );
    assert_eq!(
        run.output.matches("Fault duration").count(),
        2,
        "{}",
        run.output
    );
    assert_posted(
        &mut daemon,
        json!({"scenario": "kafka", "fault_duration": "45s"}),
        &run,
    );
}

#[tokio::test]
async fn quitting_the_menu_starts_no_drill() {
    let mut daemon = FakeDaemon::start().await;
    for input in ["q\n", "", "2\nq\n", "4\n"] {
        let run = on_terminal(&["drill", "--url", &daemon.url], input).await;
        assert_eq!(run.code, Some(2), "{input:?}:\n{}", run.output);
        assert!(
            run.output.contains("no drill started"),
            "{input:?}:\n{}",
            run.output
        );
    }
    let requests = daemon.requests();
    assert!(requests.is_empty(), "{requests:?}");
}

#[tokio::test]
async fn without_a_terminal_and_no_scenario_it_is_a_usage_error_not_a_wait() {
    let mut daemon = FakeDaemon::start().await;
    let run = without_terminal(&["drill", "--url", &daemon.url]).await;
    assert_eq!(run.code, Some(64), "{}", run.output);
    for text in [
        "name a scenario (taskmanager, jobmanager, kafka or comprehensive)",
        "Usage: firedrill drill",
    ] {
        assert!(run.output.contains(text), "no {text:?} in:\n{}", run.output);
    }
    assert!(!run.output.contains("Which drill?"), "{}", run.output);
    let requests = daemon.requests();
    assert!(requests.is_empty(), "{requests:?}");
}

#[tokio::test]
async fn a_bare_number_is_seconds_as_in_the_seeds_script() {
    let mut daemon = FakeDaemon::start().await;
    for (duration, sent) in [("60", "60s"), ("60s", "60s"), ("2m", "2m")] {
        let run = without_terminal(&["drill", "taskmanager", duration, "--url", &daemon.url]).await;
        assert_posted(
            &mut daemon,
            json!({"scenario": "taskmanager", "fault_duration": sent}),
            &run,
        );
    }
    let run = without_terminal(&["drill", "taskmanager", "0", "--url", &daemon.url]).await;
    assert_eq!(run.code, Some(2), "clap's usage error:\n{}", run.output);
    assert!(
        run.output.contains(
            "invalid value '0' for '[FAULT_DURATION]': a duration must be greater than zero"
        ),
        "{}",
        run.output
    );
    // The seed's order is scenario, then seconds: a duration in the scenario's place says so.
    let run = without_terminal(&["drill", "60", "--url", &daemon.url]).await;
    assert_eq!(run.code, Some(2), "clap's usage error:\n{}", run.output);
    assert!(
        run.output.contains(
            "60 is a duration, not a scenario: the scenario comes first, e.g. `firedrill drill \
             taskmanager 60`"
        ),
        "{}",
        run.output
    );
    let requests = daemon.requests();
    assert!(requests.is_empty(), "{requests:?}");
}
