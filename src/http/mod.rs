//! The admin and metrics HTTP server (hyper), one file per resource.
//!
//! Routes:
//!
//! | method | path               | what                                                     |
//! |--------|--------------------|----------------------------------------------------------|
//! | GET    | `/metrics`         | Prometheus text exposition of the one registry           |
//! | GET    | `/healthz`         | 200 while the process serves requests                    |
//! | GET    | `/readyz`          | 200 once Kafka and Flink have answered, else 503 + why   |
//! | GET    | `/generator`       | current rate, maximum, run id                            |
//! | PUT    | `/generator/rate`  | `{"orders_per_second": N}`; 0 pauses                     |
//!
//! An unknown path gets 404 and a known path with the wrong method 405 with `Allow`; every
//! error body is JSON `{"error": "..."}` naming the problem. Handlers never wait on an
//! upstream: they read state the background tasks keep.

mod generator;
mod health;

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    body::Incoming, header, server::conn::http1, service::service_fn, Method, Request, Response,
    StatusCode,
};
use hyper_util::rt::TokioIo;
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::{generator as gen, metrics::Upstreams};

/// Request bodies above this size are refused (413).
const BODY_LIMIT: usize = 64 * 1024;

/// `[http]`: where the admin API and `/metrics` listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address; port 0 picks a free port (printed at start).
    pub listen: SocketAddr,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9400)),
        }
    }
}

/// What handlers read and control.
pub struct State {
    /// The one registry, encoded by `/metrics`.
    pub registry: Registry,
    /// Upstream answers, for `/readyz`.
    pub upstreams: Upstreams,
    /// The generator's controls.
    pub generator: gen::Handle,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Healthz,
    Readyz,
    Generator,
    GeneratorRate,
}

impl Route {
    /// Resolves a path to its route and the methods it allows.
    fn resolve(path: &str) -> Option<(Route, &'static [Method])> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        Some(match segments.as_slice() {
            ["metrics"] => (Route::Metrics, &[Method::GET]),
            ["healthz"] => (Route::Healthz, &[Method::GET]),
            ["readyz"] => (Route::Readyz, &[Method::GET]),
            ["generator"] => (Route::Generator, &[Method::GET]),
            ["generator", "rate"] => (Route::GeneratorRate, &[Method::PUT]),
            _ => return None,
        })
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
    match route {
        Route::Metrics => health::metrics(state),
        Route::Healthz => health::healthz(),
        Route::Readyz => health::readyz(state),
        Route::Generator => generator::get(state),
        Route::GeneratorRate => match read_json(req).await {
            Ok(body) => generator::put_rate(state, body),
            Err(response) => response,
        },
    }
}

/// Reads a JSON body of type `T`, or the 4xx response that says what is wrong with it.
async fn read_json<T: for<'de> Deserialize<'de>>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = Limited::new(req.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {BODY_LIMIT} bytes"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
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
    }
}
