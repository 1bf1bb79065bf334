//! The client subcommands: `drill`, `fault`, `report` talk to a running daemon's admin API;
//! `compare` reads two report files. Each returns the process exit code for `main`.
//!
//! Does not own the daemon (`serve`, in `main` and `app`).

use std::{path::Path, process::ExitCode, time::Duration};

use serde_json::Value;

use crate::drills::{compare, report::Report};

/// Exit code when the drill ran and its integrity verdict is FAIL.
pub const EXIT_INTEGRITY_FAIL: u8 = 1;
/// Exit code when the request failed or the drill did not finish (refused, aborted, failed).
pub const EXIT_ERROR: u8 = 2;

/// Where the daemon is and how to authenticate.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the daemon at `base` (e.g. `http://127.0.0.1:9400`).
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("http client"),
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), String> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach firedrill at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let (status, text) = self.send(method, path, body).await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let message = value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            Err(format!("{status}: {message}"))
        }
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_ERROR)
}

/// `firedrill drill SCENARIO [DURATION]`: starts a drill, shows its progress, prints the
/// report; non-zero when integrity FAILs or the drill does not finish.
pub async fn drill(
    client: &Client,
    mut body: serde_json::Map<String, Value>,
    format: &str,
) -> ExitCode {
    body.retain(|_, v| !v.is_null());
    let view = match client
        .json(reqwest::Method::POST, "/drills", Some(Value::Object(body)))
        .await
    {
        Ok(view) => view,
        Err(e) => return fail(e),
    };
    let id = view["id"].as_str().unwrap_or_default().to_string();
    eprintln!("drill {id} started");
    let mut last = String::new();
    let view = loop {
        let view = match client
            .json(reqwest::Method::GET, &format!("/drills/{id}"), None)
            .await
        {
            Ok(view) => view,
            Err(e) => return fail(e),
        };
        let line = format!(
            "{}{}: {}",
            view["state"].as_str().unwrap_or("?"),
            view["part"]
                .as_array()
                .map(|p| format!(" (part {}/{})", p[0], p[1]))
                .unwrap_or_default(),
            view["message"].as_str().unwrap_or("")
        );
        if line != last {
            eprintln!("  {line}");
            last = line;
        }
        if matches!(
            view["state"].as_str(),
            Some("done" | "refused" | "aborted" | "failed")
        ) {
            break view;
        }
        tokio::time::sleep(Duration::from_secs(1)).await; // progress display period
    };
    if view["state"] != "done" {
        return fail(format!(
            "drill {id} {}: {}",
            view["state"].as_str().unwrap_or("?"),
            view["message"].as_str().unwrap_or("")
        ));
    }
    match report(client, &id, format).await {
        code if code == ExitCode::SUCCESS => {
            if view["integrity"] == "FAIL" {
                ExitCode::from(EXIT_INTEGRITY_FAIL)
            } else {
                ExitCode::SUCCESS
            }
        }
        code => code,
    }
}

/// `firedrill report ID --format md|json|html`.
pub async fn report(client: &Client, id: &str, format: &str) -> ExitCode {
    match client
        .send(
            reqwest::Method::GET,
            &format!("/drills/{id}/report?format={format}"),
            None,
        )
        .await
    {
        Ok((200, text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok((status, text)) => fail(format!("{status}: {text}")),
        Err(e) => fail(e),
    }
}

/// `firedrill fault TARGET [--action A] [--duration D]`, or `--reset`.
pub async fn fault(
    client: &Client,
    target: Option<&str>,
    action: Option<&str>,
    duration: Option<&str>,
    reset: bool,
) -> ExitCode {
    let result = if reset {
        client
            .json(reqwest::Method::POST, "/faults/reset", None)
            .await
    } else {
        let Some(target) = target else {
            return fail("name a target (see GET /faults/targets) or pass --reset");
        };
        let mut body = serde_json::Map::new();
        if let Some(action) = action {
            body.insert("action".into(), Value::String(action.into()));
        }
        if let Some(duration) = duration {
            body.insert("duration".into(), Value::String(duration.into()));
        }
        client
            .json(
                reqwest::Method::POST,
                &format!("/faults/{target}"),
                Some(Value::Object(body)),
            )
            .await
    };
    match result {
        Ok(view) => {
            println!("{}", serde_json::to_string_pretty(&view).expect("json"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `firedrill compare A.json B.json --format md|json`.
pub fn compare(a: &Path, b: &Path, format: &str) -> ExitCode {
    let read = |path: &Path| -> Result<Report, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Report::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let (a, b) = match (read(a), read(b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let comparison = compare::compare(&a, &b);
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&comparison).expect("json")
        ),
        _ => println!("{}", comparison.markdown()),
    }
    ExitCode::SUCCESS
}
