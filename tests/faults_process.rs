//! The process backend and the fault actor against real processes: a start script in a
//! tempdir launches `sleep 600` and writes its pid file, like `compose/local/stack start`.
//! Every wait polls a condition with a deadline; every process started is killed at the end
//! (`ProcessStack` kills them when dropped).

#[path = "support/faults.rs"]
mod faults_support;
mod support;

use std::time::Duration;

use faults_support::{gone, ledger_ids, state, ProcessStack, Running};
use firedrill::faults::{Action, Error, FaultState, InjectRequest};
use support::{eventually, Scrape};

const DEADLINE: Duration = Duration::from_secs(30);

/// Checks the fault's effect on `pid` right after inject.
fn assert_in_effect(action: Action, pid: i32) {
    match action {
        Action::Stop | Action::Kill => assert!(gone(pid), "{action}: pid {pid} is gone"),
        Action::Pause => assert_eq!(state(pid), Some('T'), "pause: pid {pid} is stopped"),
        Action::Disconnect => unreachable!(),
    }
}

/// Checks that the target runs again after a revert of `action` (pid was the old process).
fn assert_reverted(stack: &ProcessStack, name: &str, action: Action, old_pid: i32) {
    let pid = stack
        .running_pid(name)
        .unwrap_or_else(|| panic!("{name} runs again after reverting {action}"));
    match action {
        Action::Stop | Action::Kill => assert_ne!(pid, old_pid, "{action}: a new process"),
        Action::Pause => {
            assert_eq!(pid, old_pid, "pause: the same process");
            assert_eq!(state(pid), Some('S'), "pause: pid {pid} sleeps again");
        }
        Action::Disconnect => unreachable!(),
    }
}

async fn inject_and_revert(action: Action) {
    let stack = ProcessStack::new();
    let pid = stack.start("kafka");
    let running = Running::spawn(&stack.config(&[("kafka", Action::Stop, None)]));

    let fault = running
        .handle
        .inject(InjectRequest::new("kafka").action(action))
        .await
        .unwrap();
    assert_eq!((fault.action, fault.state), (action, FaultState::Active));
    assert_eq!((fault.target.as_str(), fault.backend), ("kafka", "process"));
    assert_eq!(fault.revert_by_ms - fault.injected_at_ms, 30_000);
    assert_in_effect(action, pid);
    assert_eq!(ledger_ids(&stack.ledger()), [fault.id.as_str()]);
    assert_eq!(running.handle.list().await, std::slice::from_ref(&fault));
    let scrape = Scrape(running.metrics());
    let labels = |m: &'static str| scrape.metric(m).label("target", "kafka");
    assert_eq!(
        labels("firedrill_fault_active")
            .label("action", action.as_str())
            .value(),
        Some(1.0)
    );
    assert_eq!(
        labels("firedrill_faults_injected_total")
            .label("action", action.as_str())
            .value(),
        Some(1.0)
    );

    let reverted = running.handle.revert(&fault.id).await.unwrap();
    assert_eq!(reverted.state, FaultState::Reverted);
    assert!(reverted.reverted_at_ms.is_some());
    assert_reverted(&stack, "kafka", action, pid);
    assert!(ledger_ids(&stack.ledger()).is_empty());
    assert!(running.handle.list().await.is_empty());
    let scrape = Scrape(running.metrics());
    let labels = |m: &'static str| scrape.metric(m).label("target", "kafka");
    assert_eq!(
        labels("firedrill_fault_active")
            .label("action", action.as_str())
            .value(),
        Some(0.0)
    );
    assert_eq!(
        labels("firedrill_fault_reverts_total")
            .label("action", action.as_str())
            .value(),
        Some(1.0)
    );
    assert_eq!(
        labels("firedrill_fault_revert_failures_total").value(),
        Some(0.0)
    );

    // Reverting twice is a 404: the fault is gone.
    let err = running.handle.revert(&fault.id).await.unwrap_err();
    assert_eq!(err.kind(), "not_found", "{err}");
    running.stop().await;
}

#[tokio::test]
async fn stop_is_injected_and_reverted() {
    inject_and_revert(Action::Stop).await;
}

#[tokio::test]
async fn kill_is_injected_and_reverted() {
    inject_and_revert(Action::Kill).await;
}

#[tokio::test]
async fn pause_is_injected_and_reverted() {
    inject_and_revert(Action::Pause).await;
}

/// firedrill dies (SIGKILL: no revert) with a fault in effect; the next start reverts it
/// from the ledger alone.
async fn crash_recovery(action: Action) {
    let stack = ProcessStack::new();
    let pid = stack.start("kafka");
    let config = stack.config(&[("kafka", Action::Stop, None)]);
    let running = Running::spawn(&config);
    let fault = running
        .handle
        .inject(InjectRequest::new("kafka").action(action))
        .await
        .unwrap();
    running.crash().await;
    assert_in_effect(action, pid);
    assert_eq!(
        ledger_ids(&stack.ledger()),
        [fault.id.as_str()],
        "the ledger keeps it"
    );

    let restarted = Running::spawn(&config);
    eventually("the ledger empties after recovery", DEADLINE, || async {
        ledger_ids(&stack.ledger()).is_empty().then_some(())
    })
    .await;
    assert_reverted(&stack, "kafka", action, pid);
    assert!(restarted.handle.list().await.is_empty());
    let scrape = Scrape(restarted.metrics());
    assert_eq!(
        scrape
            .metric("firedrill_fault_reverts_total")
            .label("target", "kafka")
            .label("action", action.as_str())
            .value(),
        Some(1.0)
    );
    restarted.stop().await;
}

#[tokio::test]
async fn a_stop_left_by_a_crash_is_reverted_at_start() {
    crash_recovery(Action::Stop).await;
}

#[tokio::test]
async fn a_kill_left_by_a_crash_is_reverted_at_start() {
    crash_recovery(Action::Kill).await;
}

#[tokio::test]
async fn a_pause_left_by_a_crash_is_reverted_at_start() {
    crash_recovery(Action::Pause).await;
}

#[tokio::test]
async fn bad_requests_are_refused_without_touching_anything() {
    let stack = ProcessStack::new();
    let pid = stack.start("kafka");
    let running = Running::spawn(&stack.config(&[("kafka", Action::Pause, None)]));

    let fault = running
        .handle
        .inject(InjectRequest::new("kafka"))
        .await
        .unwrap();
    assert_eq!(fault.action, Action::Pause, "the default action");
    let err = running
        .handle
        .inject(InjectRequest::new("kafka").action(Action::Kill))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { target, fault_id } if target == "kafka" && *fault_id == fault.id),
        "{err}"
    );
    assert_eq!(err.kind(), "conflict");
    assert_eq!(state(pid), Some('T'), "the conflicting kill did nothing");

    let err = running
        .handle
        .inject(InjectRequest::new("zookeeper"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unknown_target");
    let err = running
        .handle
        .inject(InjectRequest::new("kafka").duration(Duration::from_secs(3600)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "duration_too_long");
    assert_eq!(err.to_string(), "duration 1h exceeds max_duration 10m");
    let err = running
        .handle
        .inject(InjectRequest::new("kafka").action(Action::Disconnect))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unsupported_action", "{err}");
    assert_eq!(ledger_ids(&stack.ledger()), [fault.id.as_str()]);

    running.stop().await;
    assert_eq!(state(pid), Some('S'));
    assert!(ledger_ids(&stack.ledger()).is_empty());
}

#[tokio::test]
async fn a_target_that_is_not_running_is_a_backend_error_and_leaves_no_entry() {
    let stack = ProcessStack::new();
    let pid = stack.start("kafka");
    let running = Running::spawn(&stack.config(&[("kafka", Action::Kill, None)]));
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    eventually("the process is gone", DEADLINE, || async {
        gone(pid).then_some(())
    })
    .await;
    let err = running
        .handle
        .inject(InjectRequest::new("kafka"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "backend", "{err}");
    assert!(err.to_string().contains(&format!("pid {pid}")), "{err}");
    assert!(ledger_ids(&stack.ledger()).is_empty());
    assert!(stack.running_pid("kafka").is_none(), "nothing was started");
    running.stop().await;
}

#[tokio::test]
async fn a_fault_reverts_itself_when_its_duration_ends() {
    let stack = ProcessStack::new();
    let pid = stack.start("kafka");
    let running = Running::spawn(&stack.config(&[("kafka", Action::Kill, None)]));
    let fault = running
        .handle
        .inject(InjectRequest::new("kafka").duration(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(fault.revert_by_ms - fault.injected_at_ms, 1_000);
    assert!(gone(pid));
    eventually("the 1 s fault reverts by itself", DEADLINE, || async {
        (ledger_ids(&stack.ledger()).is_empty() && stack.running_pid("kafka").is_some())
            .then_some(())
    })
    .await;
    assert!(running.handle.list().await.is_empty());
    running.stop().await;
}

#[tokio::test]
async fn reset_reverts_every_fault() {
    let stack = ProcessStack::new();
    let a = stack.start("a");
    let b = stack.start("b");
    let running =
        Running::spawn(&stack.config(&[("a", Action::Pause, None), ("b", Action::Stop, None)]));
    running
        .handle
        .inject(InjectRequest::new("a"))
        .await
        .unwrap();
    running
        .handle
        .inject(InjectRequest::new("b"))
        .await
        .unwrap();
    assert_eq!(ledger_ids(&stack.ledger()).len(), 2);
    assert!(state(a) == Some('T') && gone(b));

    let mut reverted = running.handle.reset().await.unwrap();
    reverted.sort_by(|x, y| x.target.cmp(&y.target));
    let targets: Vec<&str> = reverted.iter().map(|f| f.target.as_str()).collect();
    assert_eq!(targets, ["a", "b"]);
    assert!(reverted.iter().all(|f| f.state == FaultState::Reverted));
    assert_eq!(state(a), Some('S'));
    assert_reverted(&stack, "b", Action::Stop, b);
    assert!(ledger_ids(&stack.ledger()).is_empty());
    assert!(running.handle.reset().await.unwrap().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn cancel_reverts_everything_before_run_returns() {
    let stack = ProcessStack::new();
    let a = stack.start("a");
    let b = stack.start("b");
    let running =
        Running::spawn(&stack.config(&[("a", Action::Pause, None), ("b", Action::Kill, None)]));
    running
        .handle
        .inject(InjectRequest::new("a"))
        .await
        .unwrap();
    running
        .handle
        .inject(InjectRequest::new("b"))
        .await
        .unwrap();
    let handle = running.handle.clone();
    running.stop().await;
    // No waiting: run has returned, so both are reverted already.
    assert_eq!(state(a), Some('S'));
    assert_reverted(&stack, "b", Action::Kill, b);
    assert!(ledger_ids(&stack.ledger()).is_empty());
    let err = handle.inject(InjectRequest::new("a")).await.unwrap_err();
    assert_eq!(err.kind(), "stopped");
}

#[tokio::test]
async fn a_group_alias_takes_a_free_running_member() {
    let stack = ProcessStack::new();
    let tm1 = stack.start("tm-1");
    stack.start("tm-2");
    let config = stack.config(&[
        ("tm-1", Action::Pause, Some("tm")),
        ("tm-2", Action::Pause, Some("tm")),
    ]);
    let running = Running::spawn(&config);
    let first = running
        .handle
        .inject(InjectRequest::new("tm"))
        .await
        .unwrap();
    let second = running
        .handle
        .inject(InjectRequest::new("tm"))
        .await
        .unwrap();
    assert_eq!(
        (first.target.as_str(), second.target.as_str()),
        ("tm-1", "tm-2")
    );
    let err = running
        .handle
        .inject(InjectRequest::new("tm"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "no_eligible_member", "{err}");
    running.handle.reset().await.unwrap();

    // A member that is not running is skipped.
    std::process::Command::new("kill")
        .args(["-KILL", &tm1.to_string()])
        .status()
        .unwrap();
    eventually("tm-1 is gone", DEADLINE, || async {
        gone(tm1).then_some(())
    })
    .await;
    let fault = running
        .handle
        .inject(InjectRequest::new("tm"))
        .await
        .unwrap();
    assert_eq!(fault.target, "tm-2");
    let err = running
        .handle
        .inject(InjectRequest::new("tm"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "no_eligible_member", "{err}");
    assert!(err.to_string().contains("tm-1"), "{err}");

    let views = running.handle.targets();
    let group = views
        .iter()
        .find(|v| v.name == "tm")
        .expect("the group is listed");
    assert_eq!(group.members, ["tm-1", "tm-2"]);
    running.stop().await;
}

#[tokio::test]
async fn a_failed_revert_stays_in_the_ledger_and_is_retried_until_it_succeeds() {
    let stack = ProcessStack::new();
    let pid = stack.start("kafka");
    let running = Running::spawn(&stack.config(&[("kafka", Action::Kill, None)]));
    let fault = running
        .handle
        .inject(InjectRequest::new("kafka"))
        .await
        .unwrap();
    assert!(gone(pid));

    stack.break_start();
    let err = running.handle.revert(&fault.id).await.unwrap_err();
    assert_eq!(err.kind(), "backend");
    assert!(
        err.to_string().contains("start refused"),
        "the script's stderr: {err}"
    );
    assert_eq!(ledger_ids(&stack.ledger()), [fault.id.as_str()]);
    let listed = running.handle.list().await;
    assert_eq!(listed[0].state, FaultState::RevertFailing);
    assert!(listed[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("start refused"));
    let failures = || {
        Scrape(running.metrics())
            .metric("firedrill_fault_revert_failures_total")
            .label("target", "kafka")
            .value()
            .unwrap()
    };
    assert!(failures() >= 1.0);
    eventually("a retry fails too", DEADLINE, || async {
        (failures() >= 2.0).then_some(())
    })
    .await;

    stack.heal();
    eventually("a retry succeeds", DEADLINE, || async {
        ledger_ids(&stack.ledger()).is_empty().then_some(())
    })
    .await;
    assert!(stack.running_pid("kafka").is_some());
    assert!(running.handle.list().await.is_empty());
    running.stop().await;
}
