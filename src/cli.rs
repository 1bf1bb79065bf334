//! The client subcommands: `drill`, `fault`, `report` talk to a running daemon's admin API;
//! `compare` reads two report files. Each returns the process exit code for `main`. Also the
//! two ways to start a drill: its arguments (a bare number of seconds is a duration, as in
//! the seed's `disaster-drill.py taskmanager 60`) or, without a scenario, the menu asked on
//! the terminal ([`menu`], a pure function of its input and output; [`ask_drill`] the shell).
//!
//! Does not own the daemon (`serve`, in `main` and `app`).

use std::{
    io::{self, BufRead, IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use serde_json::Value;

use crate::drills::{self, compare, report::Report, scenario::Scenario};

/// Exit code when the drill ran and its integrity verdict is FAIL.
pub const EXIT_INTEGRITY_FAIL: u8 = 1;
/// Exit code when the request failed or the drill did not finish (refused, aborted, failed),
/// or none was started because the menu was quit.
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

/// The scenario argument of `firedrill drill`, checked before the daemon is asked: an unknown
/// name lists the scenarios, and a duration in its place (`firedrill drill 60`) says that the
/// scenario comes first.
pub fn parse_scenario(s: &str) -> Result<String, String> {
    if Scenario::parse(s).is_some() {
        return Ok(s.to_owned());
    }
    let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.as_str()).collect();
    if parse_duration(s).is_ok() {
        return Err(format!(
            "{s} is a duration, not a scenario: the scenario comes first, e.g. `firedrill drill \
             taskmanager {s}` (scenarios: {})",
            names.join(", ")
        ));
    }
    Err(format!(
        "unknown scenario (scenarios: {})",
        names.join(", ")
    ))
}

/// A duration argument (fault duration, baseline) as the daemon is sent it: a bare number is
/// seconds (`60` becomes `60s`, as the seed's `disaster-drill.py taskmanager 60` meant it);
/// anything else must be a humantime duration (`90s`, `2m`) and is sent as written. Zero is
/// refused here rather than by the daemon.
pub fn parse_duration(s: &str) -> Result<String, String> {
    let s = s.trim();
    let text = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        format!("{s}s")
    } else {
        s.to_string()
    };
    match humantime::parse_duration(&text) {
        Ok(d) if d.is_zero() => Err("a duration must be greater than zero".to_string()),
        Ok(_) => Ok(text),
        Err(e) => Err(format!(
            "not a duration ({e}); use seconds (60) or e.g. 90s, 2m"
        )),
    }
}

/// A drill chosen in the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// What to break.
    pub scenario: Scenario,
    /// As [`parse_duration`] returns it; `None` leaves it to the daemon's
    /// `[drills] fault_duration`.
    pub fault_duration: Option<String>,
}

/// The menu of `firedrill drill` without a scenario: lists the drills (Flink's, then Spark's:
/// the daemon refuses the other engine's), reads a choice (a number or a scenario name), then the fault duration (Enter: the daemon's default). An
/// invalid answer is explained and asked again. `None` when the user quits (`q` or end of
/// input): no drill is to be started.
pub fn menu(input: &mut impl BufRead, output: &mut impl Write) -> io::Result<Option<Choice>> {
    writeln!(output, "Which drill?")?;
    for (number, scenario) in (1..).zip(Scenario::ALL) {
        writeln!(output, "  {number}) {}", scenario.title())?;
    }
    let scenario = loop {
        let Some(answer) = ask(
            input,
            output,
            &format!("Drill [1-{}, q to quit]: ", Scenario::ALL.len()),
        )?
        else {
            return Ok(None);
        };
        let picked = match answer.parse::<usize>() {
            Ok(n) if (1..=Scenario::ALL.len()).contains(&n) => Some(Scenario::ALL[n - 1]),
            _ => Scenario::parse(&answer.to_ascii_lowercase()),
        };
        match picked {
            Some(scenario) => break scenario,
            None => writeln!(
                output,
                "  {answer:?} is not a drill: type a number from 1 to {} (or q to quit)",
                Scenario::ALL.len()
            )?,
        }
    };
    // The CLI does not know the daemon's configured value, only the value it ships with:
    // Enter sends no duration, so the daemon applies its own.
    let shipped = humantime::format_duration(drills::Config::default().fault_duration);
    let prompt = format!(
        "Fault duration, seconds or e.g. 2m [Enter: the daemon's default, {shipped} unless configured]: "
    );
    let fault_duration = loop {
        let Some(answer) = ask(input, output, &prompt)? else {
            return Ok(None);
        };
        if answer.is_empty() {
            break None;
        }
        match parse_duration(&answer) {
            Ok(duration) => break Some(duration),
            Err(e) => writeln!(
                output,
                "  {answer:?}: {e}. Enter for the default, q to quit"
            )?,
        }
    };
    writeln!(
        output,
        "Starting a {} drill, fault duration {}.",
        scenario.as_str(),
        fault_duration.as_deref().unwrap_or("the daemon's default")
    )?;
    Ok(Some(Choice {
        scenario,
        fault_duration,
    }))
}

/// Shows `prompt`, reads one line, trimmed. `None` at end of input or on `q`/`quit`.
fn ask(
    input: &mut impl BufRead,
    output: &mut impl Write,
    prompt: &str,
) -> io::Result<Option<String>> {
    write!(output, "{prompt}")?;
    output.flush()?;
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        writeln!(output)?; // end of input left the cursor after the prompt
        return Ok(None);
    }
    let answer = line.trim();
    if answer.eq_ignore_ascii_case("q") || answer.eq_ignore_ascii_case("quit") {
        return Ok(None);
    }
    Ok(Some(answer.to_string()))
}

/// What `firedrill drill` without a scenario came to.
#[derive(Debug)]
pub enum Asked {
    /// The user chose this drill.
    Drill(Choice),
    /// The user quit the menu: no drill.
    Quit,
    /// stdin is not a terminal: there is nobody to ask (a script forgot the scenario).
    NoTerminal,
}

/// The shell around [`menu`]: asks on the terminal when stdin is one. The menu is written to
/// stderr, as the drill's progress is, so that stdout stays the report.
pub fn ask_drill() -> io::Result<Asked> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Ok(Asked::NoTerminal);
    }
    Ok(match menu(&mut stdin.lock(), &mut io::stderr())? {
        Some(choice) => Asked::Drill(choice),
        None => Asked::Quit,
    })
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

/// `firedrill compare A.json B.json --format md|json`, or several runs per side:
/// `firedrill compare A1.json A2.json vs B1.json B2.json`.
pub fn compare(a: &[PathBuf], b: &[PathBuf], format: &str) -> ExitCode {
    let read = |path: &PathBuf| -> Result<Report, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Report::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let read_all = |paths: &[PathBuf]| paths.iter().map(read).collect::<Result<Vec<_>, _>>();
    let (a, b) = match (read_all(a), read_all(b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let comparison = compare::compare_runs(&a, &b);
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&comparison).expect("json")
        ),
        _ => println!("{}", comparison.markdown()),
    }
    ExitCode::SUCCESS
}

/// Splits `compare`'s files into its two sides: at the word `vs`, or two files one each.
pub fn sides(files: &[PathBuf]) -> Result<(&[PathBuf], &[PathBuf]), String> {
    let split: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].as_os_str() == "vs")
        .collect();
    match split[..] {
        [] if files.len() == 2 => Ok((&files[..1], &files[1..])),
        [] => Err(format!(
            "{} reports and no `vs`: give two reports, or A's reports, `vs`, B's reports",
            files.len()
        )),
        [i] if i > 0 && i + 1 < files.len() => Ok((&files[..i], &files[i + 1..])),
        [_] => Err("`vs` needs at least one report on each side".to_owned()),
        _ => Err("`vs` may appear only once".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_menu(input: &str) -> (Option<Choice>, String) {
        let mut output = Vec::new();
        let choice = menu(&mut input.as_bytes(), &mut output).expect("in-memory I/O");
        (choice, String::from_utf8(output).expect("utf-8"))
    }

    fn chose(scenario: Scenario, fault_duration: Option<&str>) -> Option<Choice> {
        Some(Choice {
            scenario,
            fault_duration: fault_duration.map(str::to_string),
        })
    }

    #[test]
    fn a_scenario_is_checked_and_a_duration_in_its_place_is_named() {
        for name in [
            "taskmanager",
            "jobmanager",
            "kafka",
            "comprehensive",
            "executor",
            "worker",
            "driver",
        ] {
            assert_eq!(parse_scenario(name).as_deref(), Ok(name));
        }
        assert_eq!(
            parse_scenario("60"),
            Err(
                "60 is a duration, not a scenario: the scenario comes first, e.g. `firedrill \
                 drill taskmanager 60` (scenarios: taskmanager, jobmanager, kafka, comprehensive, \
                 executor, worker, driver)"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_scenario("taskmanger"),
            Err(
                "unknown scenario (scenarios: taskmanager, jobmanager, kafka, comprehensive, \
                 executor, worker, driver)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn bare_numbers_are_seconds_and_humantime_is_kept() {
        assert_eq!(parse_duration("60").as_deref(), Ok("60s"));
        assert_eq!(parse_duration(" 60 ").as_deref(), Ok("60s"));
        assert_eq!(parse_duration("60s").as_deref(), Ok("60s"));
        assert_eq!(parse_duration("2m").as_deref(), Ok("2m"));
        assert_eq!(parse_duration("1m 30s").as_deref(), Ok("1m 30s"));
        for bad in ["", "abc", "60x", "-5", "1.5", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        for zero in ["0", "0s"] {
            assert_eq!(
                parse_duration(zero),
                Err("a duration must be greater than zero".to_string())
            );
        }
    }

    #[test]
    fn menu_lists_the_drills_and_enter_takes_the_daemons_default() {
        let (choice, output) = run_menu("1\n\n");
        assert_eq!(choice, chose(Scenario::Taskmanager, None));
        for line in [
            "1) TaskManager failure",
            "2) JobManager failure",
            "3) Kafka outage",
            "4) Comprehensive (all three of the engine's)",
            "7) Spark driver failure",
            "[Enter: the daemon's default, 30s unless configured]",
            "Starting a taskmanager drill, fault duration the daemon's default.",
        ] {
            assert!(output.contains(line), "no {line:?} in:\n{output}");
        }
    }

    #[test]
    fn menu_takes_numbers_names_and_durations() {
        assert_eq!(
            run_menu("2\n60\n").0,
            chose(Scenario::Jobmanager, Some("60s"))
        );
        assert_eq!(run_menu(" 3 \n2m\n").0, chose(Scenario::Kafka, Some("2m")));
        assert_eq!(
            run_menu("Comprehensive\n90s").0,
            chose(Scenario::Comprehensive, Some("90s"))
        );
    }

    #[test]
    fn menu_asks_again_after_invalid_input() {
        let (choice, output) = run_menu("9\n\nkafak\n4\nsoon\n0\n45\n");
        assert_eq!(choice, chose(Scenario::Comprehensive, Some("45s")));
        assert_eq!(output.matches("Drill [1-7, q to quit]: ").count(), 4);
        assert!(output.contains("\"9\" is not a drill: type a number from 1 to 7 (or q to quit)"));
        assert!(output.contains("\"\" is not a drill"));
        assert!(output.contains("\"kafak\" is not a drill"));
        assert_eq!(output.matches("Fault duration").count(), 3);
        assert!(output.contains("\"soon\": not a duration"));
        assert!(output.contains("\"0\": a duration must be greater than zero"));
    }

    #[test]
    fn q_or_end_of_input_quits_without_a_drill() {
        for input in ["", "q\n", "Q\n", "9\nquit\n", "1\n", "1\nq\n", "9\n"] {
            let (choice, output) = run_menu(input);
            assert_eq!(choice, None, "{input:?} chose a drill");
            assert!(!output.contains("Starting"), "{input:?}: {output}");
        }
    }
}
