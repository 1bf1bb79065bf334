//! `firedrill compare` from the outside: the real binary on report files, one per side or
//! several runs per side split at `vs`, and its usage errors. Needs nothing running.

use std::{path::Path, process::Command};

use firedrill::drills::report::{sample_for_docs, Report};

/// Writes `report` as `dir/name` and returns the path as an argument.
fn write(dir: &Path, name: &str, report: &Report) -> String {
    let path = dir.join(name);
    std::fs::write(&path, report.to_json()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .arg("compare")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A run labelled `label` that recovered in `recovery_s`, with no order lost.
fn run_of(label: &str, id: &str, recovery_s: f64) -> Report {
    let mut r = sample_for_docs();
    r.label = Some(label.into());
    r.id = id.into();
    r.recovery_time_s = Some(recovery_s);
    r.orders.lost = 0;
    r
}

#[test]
fn three_runs_a_side_give_medians_and_a_recommendation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a: Vec<String> = [40.0, 36.0, 44.0]
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            write(
                d,
                &format!("a{i}.json"),
                &run_of("flink", &format!("f{i}"), t),
            )
        })
        .collect();
    let b: Vec<String> = [20.0, 25.0, 22.0]
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            write(
                d,
                &format!("b{i}.json"),
                &run_of("other", &format!("o{i}"), t),
            )
        })
        .collect();
    let mut args: Vec<&str> = a.iter().map(String::as_str).collect();
    args.push("vs");
    args.extend(b.iter().map(String::as_str));

    let (code, md, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "# flink vs other",
        "| Recovery time | 40.0 s (36.0 s-44.0 s, 3 of 3) | 22.0 s (20.0 s-25.0 s, 3 of 3) | other | 45.0 % |",
        "**other** (confidence: high; decided by: Recovery time).",
        "- other recovers 45.0 % faster: median 22.0 s against flink's 40.0 s",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }

    args.extend(["--format", "json"]);
    let (code, json, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["a_ids"], serde_json::json!(["f0", "f1", "f2"]));
    assert_eq!(json["recommendation"]["pick"], "b");
    assert_eq!(json["recommendation"]["confidence"], "high");
}

#[test]
fn two_files_still_compare_one_drill_each() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &run_of("flink", "f", 40.0));
    let b = write(dir.path(), "b.json", &run_of("other", "o", 20.0));
    let (code, md, err) = run(&[&a, &b]);
    assert_eq!(code, 0, "{err}");
    assert!(
        md.contains("| Recovery time | 40.0 s | 20.0 s | other | 50.0 % |"),
        "{md}"
    );
    assert!(
        md.contains("(confidence: low; decided by: Recovery time)"),
        "{md}"
    );
}

#[test]
fn bad_sides_are_usage_errors_and_bad_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &run_of("flink", "f", 40.0));
    for (args, says) in [
        (
            vec![a.as_str(), a.as_str(), a.as_str()],
            "3 reports and no `vs`",
        ),
        (
            vec![a.as_str(), "vs"],
            "`vs` needs at least one report on each side",
        ),
        (
            vec!["vs", a.as_str()],
            "`vs` needs at least one report on each side",
        ),
        (
            vec![a.as_str(), "vs", a.as_str(), "vs", a.as_str()],
            "`vs` may appear only once",
        ),
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"id\": ").unwrap();
    let (code, _, err) = run(&[&a, broken.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.json"), "{err}");
}
