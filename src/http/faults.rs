//! `/faults`: list, inject, revert one, revert all, and the configured targets.

use hyper::{Response, StatusCode};

use super::{error, json, Body, State};
use crate::faults::{Error, InjectRequest};

fn fault_error(e: Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, e.to_string())
}

/// `GET /faults`: active faults.
pub async fn list(state: &State) -> Response<Body> {
    json(StatusCode::OK, &state.faults.list().await)
}

/// `GET /faults/targets`: what can be broken, and how.
pub fn targets(state: &State) -> Response<Body> {
    json(StatusCode::OK, &state.faults.targets())
}

/// `POST /faults/{target}`: inject; answers once the fault is in effect.
pub async fn inject(state: &State, target: &str, mut request: InjectRequest) -> Response<Body> {
    request.target = target.to_string();
    match state.faults.inject(request).await {
        Ok(view) => json(StatusCode::CREATED, &view),
        Err(e) => fault_error(e),
    }
}

/// `DELETE /faults/{id}`: revert now.
pub async fn revert(state: &State, id: &str) -> Response<Body> {
    match state.faults.revert(id).await {
        Ok(view) => json(StatusCode::OK, &view),
        Err(e) => fault_error(e),
    }
}

/// `POST /faults/reset`: revert everything.
pub async fn reset(state: &State) -> Response<Body> {
    match state.faults.reset().await {
        Ok(views) => json(StatusCode::OK, &views),
        Err(e) => fault_error(e),
    }
}
