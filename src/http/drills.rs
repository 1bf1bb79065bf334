//! `/drills`: start, list, live view, report (json, md, html), abort.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};

use super::{error, json, Body, State};
use crate::drills::{render, DrillRequest, Error};

fn drill_error(e: Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, e.to_string())
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
