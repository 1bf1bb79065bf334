//! `/alerts`: Alertmanager's webhook, and the alerts firing now.

use hyper::{Response, StatusCode};

use super::{error, json, Body, State};

/// `POST /alerts/webhook`: records the notification's transitions; 200 with how many were
/// new, 400 naming what is wrong with a bad payload. Answers at once (Alertmanager retries
/// a slow or failed receiver).
pub fn webhook(state: &State, body: &[u8]) -> Response<Body> {
    match state.alerts.receive(body) {
        Ok(recorded) => json(StatusCode::OK, &recorded),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `GET /alerts`: alerts firing now, oldest first.
pub fn list(state: &State) -> Response<Body> {
    json(StatusCode::OK, &state.alerts.firing())
}
