//! `/drills`: start, list, live view, report (json, md, html), abort; and the status each
//! drill error answers with (`status`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};

use super::{error, json, Body, State};
use crate::drills::{render, DrillRequest, Error};

/// The status a drill command's error answers with: another drill runs or this one has no
/// report yet (409), no such drill (404), a malformed request (400), a refused fault as
/// faults answer it, the report store failed (500), the drill runner is stopping (503).
fn status(e: &Error) -> StatusCode {
    match e {
        Error::Busy(_) | Error::NoReport { .. } => StatusCode::CONFLICT,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Fault(e) => super::faults::status(e),
        Error::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn drill_error(e: Error) -> Response<Body> {
    error(status(&e), e.to_string())
}

/// `POST /drills`: starts a drill in the background; 202 with its live view.
pub async fn start(state: &State, request: DrillRequest) -> Response<Body> {
    match state.drills.start(request).await {
        Ok(view) => json(StatusCode::ACCEPTED, &view),
        Err(e) => drill_error(e),
    }
}

/// `GET /drills`.
pub async fn list(state: &State) -> Response<Body> {
    match state.drills.list().await {
        Ok(views) => json(StatusCode::OK, &views),
        Err(e) => drill_error(e),
    }
}

/// `GET /drills/{id}`: live phase and progress.
pub async fn get(state: &State, id: &str) -> Response<Body> {
    match state.drills.get(id).await {
        Ok(view) => json(StatusCode::OK, &view),
        Err(e) => drill_error(e),
    }
}

/// `POST /drills/{id}/abort`.
pub async fn abort(state: &State, id: &str) -> Response<Body> {
    match state.drills.abort(id).await {
        Ok(view) => json(StatusCode::ACCEPTED, &view),
        Err(e) => drill_error(e),
    }
}

/// `GET /drills/{id}/report?format=json|md|html`.
pub async fn report(state: &State, id: &str, query: Option<&str>) -> Response<Body> {
    let format = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("format="))
        .unwrap_or("json");
    let content_type = match format {
        "json" => "application/json",
        "md" => "text/markdown; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("format {other:?} is not one of json, md, html"),
            )
        }
    };
    let report = match state.drills.report(id).await {
        Ok(report) => report,
        Err(e) => return drill_error(e),
    };
    let body = match format {
        "md" => render::markdown(&report),
        "html" => render::html(&report),
        _ => report.to_json(),
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{drills::DrillState, faults::Error as Fault};

    #[test]
    fn each_drill_error_answers_its_status() {
        let cases = [
            (Error::Busy("d-1".into()), 409),
            (
                Error::NoReport {
                    id: "d-1".into(),
                    state: DrillState::Baseline,
                },
                409,
            ),
            (Error::NotFound("d-9".into()), 404),
            (Error::Invalid("leave target and action out".into()), 400),
            (Error::Storage("d-1: truncated".into()), 500),
            (Error::Stopped, 503),
            // A refused fault answers as the faults API would.
            (
                Error::Fault(Fault::UnknownTarget("taskmanager-9".into())),
                404,
            ),
            (Error::Fault(Fault::Stopped), 503),
        ];
        for (e, code) in cases {
            assert_eq!(status(&e).as_u16(), code, "{e}");
        }
    }
}
