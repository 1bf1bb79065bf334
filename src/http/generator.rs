//! `GET /generator` and `PUT /generator/rate`.

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::{error, json, Body, State};

/// Body of `PUT /generator/rate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRequest {
    /// Orders per second; 0 pauses the generator.
    pub orders_per_second: u32,
}

#[derive(Debug, Serialize)]
struct GeneratorView<'a> {
    orders_per_second: u32,
    max_orders_per_second: u32,
    run_id: &'a str,
}

/// `GET /generator`.
pub fn get(state: &State) -> Response<Body> {
    let g = &state.generator;
    json(
        StatusCode::OK,
        &GeneratorView {
            orders_per_second: g.rate(),
            max_orders_per_second: g.max_rate(),
            run_id: g.run_id(),
        },
    )
}

/// `PUT /generator/rate`.
pub fn put_rate(state: &State, body: RateRequest) -> Response<Body> {
    match state.generator.set_rate(body.orders_per_second) {
        Ok(()) => get(state),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
