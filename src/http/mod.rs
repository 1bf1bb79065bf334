//! The admin and metrics HTTP server (hyper), one file per resource.
//!
//! Routes (the router's table is `ROUTES`; `openapi.json` describes each, and a test keeps
//! the two equal):
//!
//! | method | path               | what                                                     |
//! |--------|--------------------|----------------------------------------------------------|
//! | GET    | `/metrics`         | Prometheus text exposition of the one registry           |
//! | GET    | `/healthz`         | 200 while the process serves requests                    |
//! | GET    | `/readyz`          | 200 once Kafka and Flink have answered, else 503 + why   |
//! | GET    | `/openapi.json`    | OpenAPI 3 description of this API                        |
//! | GET    | `/generator`       | current rate, maximum, run id                            |
//! | PUT    | `/generator/rate`  | `{"orders_per_second": N}`; 0 pauses                     |
//! | GET    | `/faults`          | active faults                                            |
//! | GET    | `/faults/targets`  | configured targets and groups, backends, actions         |
//! | POST   | `/faults/{target}` | inject: `{"action": "kill", "duration": "30s"}` (optional) |
//! | DELETE | `/faults/{id}`     | revert now (emergency: not rate limited)                 |
//! | POST   | `/faults/reset`    | revert every active fault (emergency: not rate limited)  |
//! | POST   | `/drills`          | start: `{"scenario": "taskmanager", "fault_duration": "30s"}` |
//! | GET    | `/drills`          | every drill, newest first                                |
//! | GET    | `/drills/{id}`     | live state and progress                                  |
//! | GET    | `/drills/{id}/report?format=json\|md\|html` | the report                   |
//! | POST   | `/drills/{id}/abort` | abort, reverts the fault at once (emergency: not rate limited) |
//! | POST   | `/alerts/webhook`  | Alertmanager's webhook (payload version 4)               |
//! | GET    | `/alerts`          | alerts firing now, as Alertmanager said last             |
//!
//! An unknown path gets 404 and a known path with the wrong method 405 with `Allow`; every
//! error body is JSON `{"error": "..."}` naming the problem. Mutations (PUT, POST, DELETE)
//! need `Authorization: Bearer <http.token>` when a token is configured (401 without it,
//! 403 with a wrong one); without a token firedrill refuses to listen beyond loopback.
//! Mutations are rate limited (429), except the emergency stops (revert one fault, reset,
//! abort a drill: a burst of requests must never keep an operator from putting things
//! back) and the webhook (Alertmanager's notifications are not an operator's requests, and
//! throttling them would lose transitions).
//!
//! Every handler answers within a bounded time. Reads never wait on an upstream: they read
//! state the background tasks keep. An inject or revert waits for the fault actor at most
//! `faults::ANSWER_WITHIN`; a backend slower than that (restarting a process can take
//! minutes) gets 202 with where to follow it, and the operation goes on in the background.

// Handlers return `Result<T, Response>` where the error is the finished 4xx response; it is
// built at most once per request, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod alerts;
mod drills;
mod faults;
mod generator;
mod health;
mod openapi;

use std::{convert::Infallible, net::SocketAddr, num::NonZeroU32, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    body::Incoming, header, server::conn::http1, service::service_fn, Method, Request, Response,
    StatusCode,
};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::{
    alerts::Alerts,
    config_value::Invalid,
    drills as drill, faults as fault, generator as gen,
    metrics::{Exposition, Upstreams},
};

/// The governor limiter of mutations (one bucket for the whole API).
pub type Limiter = governor::DefaultDirectRateLimiter;

/// Request bodies above this size are refused (413).
const BODY_LIMIT: usize = 64 * 1024;

/// Webhook bodies above this size are refused (413): Alertmanager sends every alert of a
/// group, with labels and annotations, in one notification.
const WEBHOOK_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// `[http]`: where the admin API and `/metrics` listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address; port 0 picks a free port (printed at start). Without `token` it
    /// must be a loopback address.
    pub listen: SocketAddr,
    /// Bearer token required by mutating endpoints (better set from the environment:
    /// `FIREDRILL_HTTP__TOKEN`). Unset: mutations are open, loopback only.
    pub token: Option<String>,
    /// Mutating requests allowed per minute (a burst of that many, refilled evenly). The
    /// emergency stops (revert one fault, reset, abort a drill) and the webhook are not
    /// counted and never refused.
    pub mutations_per_minute: NonZeroU32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9400)),
            token: None,
            mutations_per_minute: NonZeroU32::new(60).expect("non-zero"),
        }
    }
}

impl Config {
    /// The admin API is open without a token, so it must not be reachable from elsewhere.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(token) = &self.token {
            if token.len() < 16 {
                return Err(Invalid::new("http.token", "must be at least 16 characters"));
            }
        } else if !self.listen.ip().is_loopback() {
            return Err(Invalid::new(
                "http.listen",
                format!(
                    "{} is not a loopback address: set http.token to expose the admin API",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    /// The limiter of mutating requests.
    pub fn limiter(&self) -> Limiter {
        governor::RateLimiter::direct(governor::Quota::per_minute(self.mutations_per_minute))
    }
}

/// What handlers read and control.
pub struct State {
    /// What `/metrics` serves: the one registry and the blocks rendered by their owners.
    pub exposition: Exposition,
    /// Upstream answers, for `/readyz`.
    pub upstreams: Upstreams,
    /// The engine whose upstream `/readyz` waits for (with Kafka).
    pub engine: crate::engine::Kind,
    /// The generator's controls.
    pub generator: gen::Handle,
    /// Fault injection.
    pub faults: fault::Handle,
    /// The drill runner.
    pub drills: drill::Handle,
    /// What Alertmanager's webhook said.
    pub alerts: Alerts,
    /// Bearer token of mutations, if configured.
    pub token: Option<String>,
    /// Rate limit of mutations.
    pub limiter: Limiter,
}

/// The response body type of every handler.
pub type Body = Full<Bytes>;

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

impl Server {
    /// Binds `config.listen` (fails before anything runs if the port is taken).
    pub async fn bind(config: &Config, state: State) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Server {
            listener,
            state: Arc::new(state),
        })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until cancelled; open connections finish their current request.
    pub async fn run(self, cancel: CancellationToken) {
        info!(addr = %self.local_addr(), "http listening");
        let connections = TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "accept failed");
                        continue;
                    }
                },
            };
            let state = self.state.clone();
            let cancel = cancel.clone();
            connections.spawn(async move {
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(req, &state).await) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    result = conn.as_mut() => result,
                    _ = cancel.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(error) = result {
                    debug!(%error, %peer, "connection ended with an error");
                }
            });
        }
        connections.close();
        connections.wait().await;
    }
}

/// The resources; see the module docs for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Metrics,
    Healthz,
    Readyz,
    OpenApi,
    Generator,
    GeneratorRate,
    Faults,
    FaultTargets,
    FaultsReset,
    /// `/faults/{x}`: a target (POST) or a fault id (DELETE).
    Fault(String),
    Drills,
    Drill(String),
    DrillReport(String),
    DrillAbort(String),
    AlertsWebhook,
    Alerts,
}

/// One row of the route table: a path pattern (a `{name}` segment matches any one non-empty
/// segment), the methods it allows, and the [`Route`] made of the matched `{..}` segments.
struct Row {
    path: &'static str,
    methods: &'static [Method],
    route: fn(&[&str]) -> Route,
}

/// The router: the first row whose pattern matches the path wins, so a literal segment
/// (`/faults/reset`) comes before the pattern it would also match (`/faults/{..}`).
/// `openapi.json` lists the same paths and methods (a test compares them).
static ROUTES: &[Row] = &[
    Row::new("/metrics", &[Method::GET], |_| Route::Metrics),
    Row::new("/healthz", &[Method::GET], |_| Route::Healthz),
    Row::new("/readyz", &[Method::GET], |_| Route::Readyz),
    Row::new("/openapi.json", &[Method::GET], |_| Route::OpenApi),
    Row::new("/generator", &[Method::GET], |_| Route::Generator),
    Row::new("/generator/rate", &[Method::PUT], |_| Route::GeneratorRate),
    Row::new("/faults", &[Method::GET], |_| Route::Faults),
    Row::new("/faults/targets", &[Method::GET], |_| Route::FaultTargets),
    Row::new("/faults/reset", &[Method::POST], |_| Route::FaultsReset),
    // One pattern, two meanings: OpenAPI allows one template per path.
    Row::new(
        "/faults/{target_or_id}",
        &[Method::POST, Method::DELETE],
        |p| Route::Fault(p[0].to_string()),
    ),
    Row::new("/drills", &[Method::GET, Method::POST], |_| Route::Drills),
    Row::new("/drills/{id}", &[Method::GET], |p| {
        Route::Drill(p[0].to_string())
    }),
    Row::new("/drills/{id}/report", &[Method::GET], |p| {
        Route::DrillReport(p[0].to_string())
    }),
    Row::new("/drills/{id}/abort", &[Method::POST], |p| {
        Route::DrillAbort(p[0].to_string())
    }),
    Row::new("/alerts", &[Method::GET], |_| Route::Alerts),
    Row::new("/alerts/webhook", &[Method::POST], |_| Route::AlertsWebhook),
];

impl Row {
    const fn new(
        path: &'static str,
        methods: &'static [Method],
        route: fn(&[&str]) -> Route,
    ) -> Row {
        Row {
            path,
            methods,
            route,
        }
    }

    /// The `{..}` segments of `segments`, in order, if the path matches this row.
    fn matches<'a>(&self, segments: &[&'a str]) -> Option<Vec<&'a str>> {
        let pattern: Vec<&str> = self.path.split('/').skip(1).collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (want, got) in pattern.iter().zip(segments) {
            if want.starts_with('{') {
                if got.is_empty() {
                    return None;
                }
                params.push(*got);
            } else if want != got {
                return None;
            }
        }
        Some(params)
    }
}

impl Route {
    /// Resolves a path to its route and the methods it allows.
    fn resolve(path: &str) -> Option<(Route, &'static [Method])> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        ROUTES.iter().find_map(|row| {
            let params = row.matches(&segments)?;
            Some(((row.route)(&params), row.methods))
        })
    }

    /// Whether a mutation of this route spends the rate limit. The emergency stops do not:
    /// reverting must work however many requests came before. Nor does the webhook (see the
    /// module docs).
    fn rate_limited(&self, method: &Method) -> bool {
        match self {
            Route::FaultsReset | Route::DrillAbort(_) | Route::AlertsWebhook => false,
            Route::Fault(_) => method != Method::DELETE,
            _ => true,
        }
    }
}

async fn handle(req: Request<Incoming>, state: &State) -> Response<Body> {
    let Some((route, allowed)) = Route::resolve(req.uri().path()) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no route for {}", req.uri().path()),
        );
    };
    if !allowed.contains(req.method()) {
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} does not allow {}; allowed: {allow}",
                req.uri().path(),
                req.method()
            ),
        );
        response.headers_mut().insert(
            header::ALLOW,
            allow.parse().expect("method names are valid"),
        );
        return response;
    }
    if req.method() != Method::GET {
        let limited = route.rate_limited(req.method());
        if let Err(response) = authorize(&req, state, limited) {
            if route == Route::AlertsWebhook {
                state.alerts.rejected();
            }
            return response;
        }
    }
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_string);
    match (route, method) {
        (Route::Metrics, _) => health::metrics(state),
        (Route::Healthz, _) => health::healthz(),
        (Route::Readyz, _) => health::readyz(state),
        (Route::OpenApi, _) => openapi::get(),
        (Route::Generator, _) => generator::get(state),
        (Route::GeneratorRate, _) => match read_json(req).await {
            Ok(body) => generator::put_rate(state, body),
            Err(response) => response,
        },
        (Route::Faults, _) => faults::list(state).await,
        (Route::FaultTargets, _) => faults::targets(state),
        (Route::FaultsReset, _) => faults::reset(state).await,
        (Route::Fault(id), Method::DELETE) => faults::revert(state, &id).await,
        (Route::Fault(target), _) => match read_json_or_default(req).await {
            Ok(body) => faults::inject(state, &target, body).await,
            Err(response) => response,
        },
        (Route::Drills, Method::POST) => match read_json(req).await {
            Ok(body) => drills::start(state, body).await,
            Err(response) => response,
        },
        (Route::Drills, _) => drills::list(state).await,
        (Route::Drill(id), _) => drills::get(state, &id).await,
        (Route::DrillReport(id), _) => drills::report(state, &id, query.as_deref()).await,
        (Route::DrillAbort(id), _) => drills::abort(state, &id).await,
        (Route::AlertsWebhook, _) => match read_body(req, WEBHOOK_BODY_LIMIT).await {
            Ok(body) => alerts::webhook(state, &body),
            Err(response) => {
                state.alerts.rejected();
                response
            }
        },
        (Route::Alerts, _) => alerts::list(state),
    }
}

/// Token and (when `limited`) rate limit of a mutating request.
fn authorize(req: &Request<Incoming>, state: &State, limited: bool) -> Result<(), Response<Body>> {
    if let Some(expected) = &state.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                let mut response = error(
                    StatusCode::UNAUTHORIZED,
                    "this endpoint needs Authorization: Bearer <http.token>",
                );
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
                return Err(response);
            }
            Some(given) if !constant_time_eq(given.as_bytes(), expected.as_bytes()) => {
                return Err(error(StatusCode::FORBIDDEN, "wrong token"));
            }
            Some(_) => {}
        }
    }
    if limited && state.limiter.check().is_err() {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many mutating requests; see http.mutations_per_minute",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().expect("valid"));
        return Err(response);
    }
    Ok(())
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Like [`read_json`], but an empty body means `T::default()`.
async fn read_json_or_default<T: for<'de> Deserialize<'de> + Default>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = read_body(req, BODY_LIMIT).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&bytes)
}

/// Reads a JSON body of type `T`, or the 4xx response that says what is wrong with it.
async fn read_json<T: for<'de> Deserialize<'de>>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    parse_json(&read_body(req, BODY_LIMIT).await?)
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Response<Body>> {
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Body>> {
    Ok(Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {limit} bytes"),
            )
        })?
        .to_bytes())
}

/// A JSON response.
fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("response types serialize");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// A JSON error response: `{"error": message}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_with_their_methods() {
        assert_eq!(Route::resolve("/metrics").unwrap().0, Route::Metrics);
        assert_eq!(
            Route::resolve("/generator/rate/").unwrap().0,
            Route::GeneratorRate
        );
        assert_eq!(Route::resolve("/generator/rate").unwrap().1, &[Method::PUT]);
        assert!(Route::resolve("/").is_none());
        assert!(Route::resolve("/metrics/extra").is_none());
        assert!(Route::resolve("/nope").is_none());
        assert_eq!(
            Route::resolve("/faults/kafka").unwrap().0,
            Route::Fault("kafka".into())
        );
        assert_eq!(
            Route::resolve("/faults/reset").unwrap().0,
            Route::FaultsReset
        );
        assert_eq!(
            Route::resolve("/drills/d-1/report").unwrap().0,
            Route::DrillReport("d-1".into())
        );
        assert_eq!(
            Route::resolve("/openapi.json").unwrap(),
            (Route::OpenApi, &[Method::GET][..])
        );
        // A `{..}` segment is never empty.
        assert!(Route::resolve("/drills//report").is_none());
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn emergency_stops_and_the_webhook_are_not_rate_limited() {
        let limited =
            |path: &str, method: Method| Route::resolve(path).unwrap().0.rate_limited(&method);
        assert!(!limited("/faults/reset", Method::POST));
        assert!(!limited("/faults/f-1", Method::DELETE));
        assert!(!limited("/drills/d-1/abort", Method::POST));
        assert!(!limited("/alerts/webhook", Method::POST));
        assert!(limited("/faults/victim", Method::POST));
        assert!(limited("/drills", Method::POST));
        assert!(limited("/generator/rate", Method::PUT));
    }
}
