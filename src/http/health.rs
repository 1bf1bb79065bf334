//! `/metrics`, `/healthz`, `/readyz`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};

use super::{json, Body, State};
use crate::metrics::{self, Upstream};

/// `GET /metrics`: the registry in the text exposition format.
pub fn metrics(state: &State) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, metrics::CONTENT_TYPE)
        .body(Full::new(Bytes::from(state.exposition.encode())))
        .expect("valid response")
}

/// `GET /healthz`: the process is up and serving.
pub fn healthz() -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once Kafka and the engine (Flink or Spark) have both answered at least
/// once.
pub fn readyz(state: &State) -> Response<Body> {
    let waiting: Vec<&str> = [Upstream::Kafka, state.engine.upstream()]
        .into_iter()
        .filter(|u| !state.upstreams.has_answered(*u))
        .map(Upstream::as_str)
        .collect();
    if waiting.is_empty() {
        json(StatusCode::OK, &serde_json::json!({ "status": "ready" }))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "not ready", "waiting_for": waiting }),
        )
    }
}
