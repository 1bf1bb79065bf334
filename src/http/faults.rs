//! `/faults`: list, inject, revert one, revert all, and the configured targets; and the
//! status each fault error answers with (`status`).
//!
//! Inject and revert wait for the fault actor at most [`ANSWER_WITHIN`]. The request to the
//! actor is made from a spawned task, so a client that gives up, or an answer of 202 after
//! the wait, never cuts an operation short: the actor carries it through (a revert is
//! retried until it succeeds), and the task logs how it ended when nobody waits any more.

use std::{future::Future, time::Duration};

use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{info, warn, Instrument};

use super::{error, json, Body, State};
use crate::faults::{Error, InjectRequest};

/// How long an inject or revert request waits for the fault to be in effect or reverted
/// before it answers 202 and lets the operation finish in the background.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The status a fault operation's error answers with: the request names nothing that
/// exists (404), asks for what the target or the limits do not allow (400), or collides
/// with a fault in effect (409); the backend failed (502); firedrill's own ledger or config
/// did (500); the fault actor is stopping (503).
pub(super) fn status(e: &Error) -> StatusCode {
    match e {
        Error::UnknownTarget(_) | Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::UnsupportedAction { .. } | Error::DurationTooLong { .. } | Error::ZeroDuration => {
            StatusCode::BAD_REQUEST
        }
        Error::Conflict { .. } | Error::NoEligibleMember { .. } => StatusCode::CONFLICT,
        Error::Backend { .. } => StatusCode::BAD_GATEWAY,
        Error::Ledger(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn fault_error(e: Error) -> Response<Body> {
    error(status(&e), e.to_string())
}

/// The body of a 202: the operation goes on, and where to see how it ends.
#[derive(Debug, Serialize)]
struct Continuing<'a> {
    status: &'static str,
    message: String,
    /// Where to follow it.
    follow: &'static str,
    /// The fault concerned, when known (a revert).
    #[serde(skip_serializing_if = "Option::is_none")]
    fault_id: Option<&'a str>,
    /// The target or group concerned (an inject).
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
}

/// `GET /faults`: active faults.
pub async fn list(state: &State) -> Response<Body> {
    json(StatusCode::OK, &state.faults.list().await)
}

/// `GET /faults/targets`: what can be broken, and how.
pub fn targets(state: &State) -> Response<Body> {
    json(StatusCode::OK, &state.faults.targets())
}

/// `POST /faults/{target}`: inject; 201 once the fault is in effect, 202 if that takes
/// longer than [`ANSWER_WITHIN`] (the fault is in `GET /faults` from the moment it is in
/// the ledger, before the backend touches anything).
pub async fn inject(state: &State, target: &str, mut request: InjectRequest) -> Response<Body> {
    request.target = target.to_string();
    let faults = state.faults.clone();
    let continuing = Continuing {
        status: "injecting",
        message: format!(
            "the fault on {target} is still being injected; it continues in the background"
        ),
        follow: "GET /faults",
        fault_id: None,
        target: Some(target),
    };
    let work = async move { faults.inject(request).await };
    match within(ANSWER_WITHIN, "inject", work).await {
        Some(Ok(view)) => json(StatusCode::CREATED, &view),
        Some(Err(e)) => fault_error(e),
        None => json(StatusCode::ACCEPTED, &continuing),
    }
}

/// `DELETE /faults/{id}`: revert now; 200 once reverted, 202 if that takes longer than
/// [`ANSWER_WITHIN`] (the fault stays in `GET /faults` until its revert succeeded).
pub async fn revert(state: &State, id: &str) -> Response<Body> {
    let faults = state.faults.clone();
    let owned = id.to_string();
    let continuing = Continuing {
        status: "reverting",
        message: format!(
            "fault {id} is still being reverted; it continues in the background and leaves GET /faults once reverted"
        ),
        follow: "GET /faults",
        fault_id: Some(id),
        target: None,
    };
    let work = async move { faults.revert(&owned).await };
    match within(ANSWER_WITHIN, "revert", work).await {
        Some(Ok(view)) => json(StatusCode::OK, &view),
        Some(Err(e)) => fault_error(e),
        None => json(StatusCode::ACCEPTED, &continuing),
    }
}

/// `POST /faults/reset`: revert everything; 200 once reverted, 202 if that takes longer
/// than [`ANSWER_WITHIN`] (`GET /faults` is empty once every revert succeeded).
pub async fn reset(state: &State) -> Response<Body> {
    let faults = state.faults.clone();
    let continuing = Continuing {
        status: "reverting",
        message: "faults are still being reverted; it continues in the background until GET /faults is empty".to_string(),
        follow: "GET /faults",
        fault_id: None,
        target: None,
    };
    let work = async move { faults.reset().await };
    match within(ANSWER_WITHIN, "reset", work).await {
        Some(Ok(views)) => json(StatusCode::OK, &views),
        Some(Err(e)) => fault_error(e),
        None => json(StatusCode::ACCEPTED, &continuing),
    }
}

/// Runs `work` in its own task and waits at most `limit` for its result; `None` when it
/// is not done by then. The task is never cancelled: it runs to the end, and logs the
/// outcome that nobody waits for any more.
async fn within<T, F>(limit: Duration, operation: &'static str, work: F) -> Option<Result<T, Error>>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    let (answer, result) = oneshot::channel();
    tokio::spawn(
        async move {
            let outcome = work.await;
            if let Err(unheard) = answer.send(outcome) {
                match unheard {
                    Ok(_) => info!("finished in the background"),
                    Err(error) => warn!(%error, "failed in the background"),
                }
            }
        }
        .instrument(tracing::info_span!("fault_request", operation)),
    );
    match tokio::time::timeout(limit, result).await {
        Ok(Ok(outcome)) => Some(outcome),
        // The task panicked (the handle does not): answer as if the actor were gone.
        Ok(Err(_)) => Some(Err(Error::Stopped)),
        Err(_) => {
            info!(
                operation,
                ?limit,
                "answering 202: it continues in the background"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        config_value::Invalid,
        faults::{backend, ledger, Action},
    };

    #[test]
    fn each_fault_error_answers_its_status() {
        let cases = [
            (Error::UnknownTarget("nope".into()), 404),
            (Error::NotFound("f-1".into()), 404),
            (
                Error::UnsupportedAction {
                    target: "kafka".into(),
                    action: Action::Disconnect,
                    backend: "process",
                    reason: None,
                },
                400,
            ),
            (
                Error::DurationTooLong {
                    requested: Duration::from_secs(3600),
                    max: Duration::from_secs(600),
                },
                400,
            ),
            (Error::ZeroDuration, 400),
            (
                Error::Conflict {
                    target: "kafka".into(),
                    fault_id: "f-1".into(),
                },
                409,
            ),
            (
                Error::NoEligibleMember {
                    group: "taskmanager".into(),
                    reason: "every member has a fault in effect".into(),
                },
                409,
            ),
            (
                Error::Backend {
                    target: "kafka".into(),
                    action: Action::Stop,
                    source: Arc::new(backend::Error::NotRunning("kafka".into())),
                },
                502,
            ),
            (
                Error::Ledger(ledger::Error::Corrupt {
                    path: "faults.json".into(),
                    message: "truncated".into(),
                }),
                500,
            ),
            (
                Error::Config(Invalid::new("faults.ledger", "must not be empty")),
                500,
            ),
            (Error::Stopped, 503),
        ];
        for (e, code) in cases {
            assert_eq!(status(&e).as_u16(), code, "{}: {e}", e.kind());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_operation_is_answered_in_time_and_still_finishes() {
        let (release, released) = oneshot::channel::<()>();
        let (finished, done) = oneshot::channel::<u32>();
        let work = async move {
            released.await.expect("released");
            let _ = finished.send(7);
            Ok::<_, Error>(7)
        };
        let started = tokio::time::Instant::now();
        assert!(within(ANSWER_WITHIN, "test", work).await.is_none());
        assert_eq!(started.elapsed(), ANSWER_WITHIN);
        // Nobody waits any more, yet the operation goes on to its end.
        release.send(()).unwrap();
        assert_eq!(done.await.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_operation_answers_with_its_result() {
        let started = tokio::time::Instant::now();
        let answer = within(ANSWER_WITHIN, "test", async { Ok::<_, Error>(1) }).await;
        assert_eq!(answer.unwrap().unwrap(), 1);
        assert!(started.elapsed() < ANSWER_WITHIN);
        let answer = within(ANSWER_WITHIN, "test", async {
            Err::<u32, _>(Error::NotFound("f-1".into()))
        })
        .await;
        assert!(matches!(answer, Some(Err(Error::NotFound(_)))));
    }
}
