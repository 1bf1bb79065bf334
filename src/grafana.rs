//! Region annotations posted to Grafana's HTTP API while drills run.
//!
//! Owns: the `[grafana]` config, the [`Annotator`] actor that creates a region annotation
//! when a drill injects its fault (`POST /api/annotations`) and sets its end when the drill
//! recovers (`PATCH /api/annotations/:id`), and the pure [`Regions`] bookkeeping that decides
//! what to send next and what a failure costs.
//!
//! A slow or dead Grafana never delays or fails a drill: drills hand events over with
//! [`Handle::start`] / [`Handle::end`], which never wait (a full queue drops the event and
//! counts it); each request has a bounded timeout; a failed one is retried with backoff up
//! to [`Config::max_attempts`] and then dropped, counted in
//! `firedrill_grafana_annotations_total{result}`. Without `[grafana] url` nothing is sent and
//! dashboards still draw the same regions from the Prometheus series (`firedrill_drill_state`,
//! `firedrill_fault_active`), which need no token.

use std::{collections::BTreeMap, time::Duration};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde::Deserialize;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{config_value::Invalid, metrics::register};

/// Events waiting for the actor at most; beyond that they are dropped (and counted).
const QUEUE: usize = 256;

/// `[grafana]`: where annotations go. Without `url` no annotation is posted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Grafana's base URL, e.g. `http://127.0.0.1:3001`.
    pub url: Option<url::Url>,
    /// A service-account token with the annotation writer role (better set from the
    /// environment: `FIREDRILL_GRAFANA__TOKEN`). Required with `url`.
    pub token: Option<String>,
    /// Deadline of one request.
    #[serde(with = "crate::config_value::duration")]
    pub timeout: Duration,
    /// First retry delay after a failed request; doubled per failure, at most a minute.
    #[serde(with = "crate::config_value::duration")]
    pub retry: Duration,
    /// Requests tried per annotation change before it is dropped.
    pub max_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: None,
            token: None,
            timeout: Duration::from_secs(2),
            retry: Duration::from_secs(1),
            max_attempts: 8,
        }
    }
}

impl Config {
    /// A URL needs a token (Grafana refuses anonymous annotation writes).
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.url.is_some() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(Invalid::new(
                "grafana.token",
                "required with grafana.url (a service-account token, e.g. from FIREDRILL_GRAFANA__TOKEN)",
            ));
        }
        if self.max_attempts == 0 {
            return Err(Invalid::new("grafana.max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a drill tells the annotator.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A region starts (the fault was injected).
    Start {
        /// Identifies the region for its end, e.g. the drill id.
        key: String,
        /// Unix ms.
        at_ms: i64,
        /// Tags, e.g. `firedrill`, the scenario, the target, the drill id.
        tags: Vec<String>,
        /// The annotation's text.
        text: String,
    },
    /// The region ends (the drill recovered, or gave up).
    End {
        /// The key of its start.
        key: String,
        /// Unix ms.
        at_ms: i64,
    },
}

/// Hands events to the annotator without ever waiting; cheap to clone.
#[derive(Clone, Default)]
pub struct Handle {
    events: Option<mpsc::Sender<Event>>,
    dropped: Option<IntCounterVec>,
}

impl Handle {
    /// A handle that sends nothing (no Grafana configured, or in tests).
    pub fn disabled() -> Handle {
        Handle::default()
    }

    /// A region starts now-ish at `at_ms`.
    pub fn start(&self, key: &str, at_ms: i64, tags: Vec<String>, text: String) {
        self.send(Event::Start {
            key: key.to_string(),
            at_ms,
            tags,
            text,
        });
    }

    /// The region `key` ends at `at_ms`.
    pub fn end(&self, key: &str, at_ms: i64) {
        self.send(Event::End {
            key: key.to_string(),
            at_ms,
        });
    }

    fn send(&self, event: Event) {
        let Some(events) = &self.events else { return };
        if events.try_send(event).is_err() {
            if let Some(dropped) = &self.dropped {
                dropped.with_label_values(&["dropped"]).inc();
            }
        }
    }
}

/// One region as Grafana should have it.
#[derive(Debug, Clone, PartialEq)]
struct Region {
    at_ms: i64,
    end_ms: Option<i64>,
    tags: Vec<String>,
    text: String,
    /// Grafana's id once created.
    id: Option<i64>,
    /// Whether Grafana has `end_ms`.
    end_sent: bool,
    failures: u32,
    not_before: Instant,
}

impl Region {
    /// Whether Grafana lacks something of it: the region itself, or its end.
    fn wants_request(&self) -> bool {
        self.id.is_none() || (self.end_ms.is_some() && !self.end_sent)
    }
}

/// The request that brings Grafana in line with one region.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `POST /api/annotations`.
    Create {
        /// Region key.
        key: String,
        /// JSON body.
        body: serde_json::Value,
    },
    /// `PATCH /api/annotations/{id}`.
    SetEnd {
        /// Region key.
        key: String,
        /// Grafana's id.
        id: i64,
        /// JSON body.
        body: serde_json::Value,
    },
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Created, with Grafana's id.
    Created(i64),
    /// The end was set.
    Updated,
    /// Failed (timeout, connection refused, non-2xx); retried later.
    Failed,
}

/// The pure bookkeeping: regions not yet fully in Grafana, and what to send next.
#[derive(Debug, Default)]
pub struct Regions {
    regions: BTreeMap<String, Region>,
}

impl Regions {
    /// Applies a drill's event at `now`.
    pub fn apply(&mut self, event: Event, now: Instant) {
        match event {
            Event::Start {
                key,
                at_ms,
                tags,
                text,
            } => {
                self.regions.insert(
                    key,
                    Region {
                        at_ms,
                        end_ms: None,
                        tags,
                        text,
                        id: None,
                        end_sent: false,
                        failures: 0,
                        not_before: now,
                    },
                );
            }
            Event::End { key, at_ms } => {
                if let Some(r) = self.regions.get_mut(&key) {
                    r.end_ms = Some(at_ms);
                }
            }
        }
    }

    /// Regions not yet complete in Grafana.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether every region is complete in Grafana.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// The next request due at `now`, if any. A region not yet created is created with its
    /// end when it already has one (one request instead of two).
    pub fn next(&self, now: Instant) -> Option<Request> {
        self.regions
            .iter()
            .filter(|(_, r)| r.not_before <= now && r.wants_request())
            .find_map(|(key, r)| match r.id {
                None => {
                    let mut body = serde_json::json!({
                        "time": r.at_ms,
                        "tags": r.tags,
                        "text": r.text,
                    });
                    if let Some(end) = r.end_ms {
                        body["timeEnd"] = end.into();
                    }
                    Some(Request::Create {
                        key: key.clone(),
                        body,
                    })
                }
                Some(id) => match r.end_ms {
                    Some(end) if !r.end_sent => Some(Request::SetEnd {
                        key: key.clone(),
                        id,
                        body: serde_json::json!({ "time": r.at_ms, "timeEnd": end }),
                    }),
                    _ => None,
                },
            })
    }

    /// When the next request is due (for the actor's timer), if any region waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.regions
            .values()
            .filter(|r| r.wants_request())
            .map(|r| r.not_before)
            .min()
    }

    /// Records how `request` ended at `now`; returns `true` when the region was dropped
    /// after its last attempt.
    pub fn complete(
        &mut self,
        request: &Request,
        outcome: Outcome,
        now: Instant,
        config: &Config,
    ) -> bool {
        let key = match request {
            Request::Create { key, .. } | Request::SetEnd { key, .. } => key,
        };
        let Some(r) = self.regions.get_mut(key) else {
            return false;
        };
        match outcome {
            Outcome::Created(id) => {
                r.id = Some(id);
                r.failures = 0;
                if let Request::Create { body, .. } = request {
                    r.end_sent = body.get("timeEnd").is_some();
                }
            }
            Outcome::Updated => {
                r.end_sent = true;
                r.failures = 0;
            }
            Outcome::Failed => {
                r.failures += 1;
                if r.failures >= config.max_attempts {
                    self.regions.remove(key);
                    return true;
                }
                let backoff = config
                    .retry
                    .saturating_mul(1 << (r.failures - 1).min(16))
                    .min(Duration::from_secs(60));
                r.not_before = now + backoff;
            }
        }
        // A region whose end Grafana has is done.
        if r.id.is_some() && r.end_sent {
            self.regions.remove(key);
        }
        false
    }
}

#[derive(Clone)]
struct Metrics {
    requests: IntCounterVec,
    pending: IntGauge,
}

impl Metrics {
    fn register(registry: &Registry) -> Self {
        Metrics {
            requests: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "firedrill_grafana_annotations_total",
                        "Grafana annotation requests by result: created, updated, failed (retried), dropped (given up, or the queue was full).",
                    ),
                    &["result"],
                )
                .expect("valid metric"),
            ),
            pending: register(
                registry,
                IntGauge::new(
                    "firedrill_grafana_annotations_pending",
                    "Region annotations not yet complete in Grafana (waiting or retrying).",
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// The actor that talks to Grafana.
pub struct Annotator {
    config: Config,
    base: url::Url,
    token: String,
    http: reqwest::Client,
    events: mpsc::Receiver<Event>,
    regions: Regions,
    metrics: Metrics,
}

impl Annotator {
    /// `None` (and a disabled handle) without `[grafana] url`; the metrics are registered
    /// either way, so a dashboard shows 0 rather than no data.
    pub fn build(
        config: &Config,
        registry: &Registry,
    ) -> Result<(Option<Annotator>, Handle), reqwest::Error> {
        let metrics = Metrics::register(registry);
        for result in ["created", "updated", "failed", "dropped"] {
            metrics.requests.with_label_values(&[result]);
        }
        let Some(base) = config.url.clone() else {
            return Ok((None, Handle::disabled()));
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        let handle = Handle {
            events: Some(tx),
            dropped: Some(metrics.requests.clone()),
        };
        let annotator = Annotator {
            config: config.clone(),
            base,
            token: config.token.clone().unwrap_or_default(),
            http,
            events: rx,
            regions: Regions::default(),
            metrics,
        };
        Ok((Some(annotator), handle))
    }

    /// Sends until cancelled; what is still pending then is given up (logged).
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            let now = Instant::now();
            if let Some(request) = self.regions.next(now) {
                let outcome = tokio::select! {
                    _ = cancel.cancelled() => break,
                    outcome = self.send(&request) => outcome,
                };
                let result = match outcome {
                    Outcome::Created(_) => "created",
                    Outcome::Updated => "updated",
                    Outcome::Failed => "failed",
                };
                self.metrics.requests.with_label_values(&[result]).inc();
                if self
                    .regions
                    .complete(&request, outcome, Instant::now(), &self.config)
                {
                    warn!(
                        ?request,
                        "grafana annotation dropped after its last attempt"
                    );
                    self.metrics.requests.with_label_values(&["dropped"]).inc();
                }
                self.metrics.pending.set(self.regions.len() as i64);
                continue;
            }
            let due = self.regions.next_due();
            tokio::select! {
                _ = cancel.cancelled() => break,
                event = self.events.recv() => match event {
                    Some(event) => {
                        self.regions.apply(event, Instant::now());
                        self.metrics.pending.set(self.regions.len() as i64);
                    }
                    None => break,
                },
                _ = sleep_until(due) => {}
            }
        }
        if !self.regions.is_empty() {
            warn!(
                pending = self.regions.len(),
                "grafana annotations not sent before shutdown"
            );
        }
    }

    async fn send(&self, request: &Request) -> Outcome {
        let (method, path, body) = match request {
            Request::Create { body, .. } => {
                (reqwest::Method::POST, "api/annotations".to_string(), body)
            }
            Request::SetEnd { id, body, .. } => (
                reqwest::Method::PATCH,
                format!("api/annotations/{id}"),
                body,
            ),
        };
        let Ok(url) = self.base.join(&path) else {
            return Outcome::Failed;
        };
        let response = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                warn!(status = %r.status(), "grafana refused an annotation");
                return Outcome::Failed;
            }
            Err(error) => {
                debug!(%error, "grafana annotation request failed");
                return Outcome::Failed;
            }
        };
        match request {
            Request::SetEnd { .. } => Outcome::Updated,
            Request::Create { .. } => match response.json::<serde_json::Value>().await {
                Ok(v) => v["id"].as_i64().map_or(Outcome::Failed, Outcome::Created),
                Err(_) => Outcome::Failed,
            },
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(key: &str) -> Event {
        Event::Start {
            key: key.into(),
            at_ms: 1_000,
            tags: vec!["firedrill".into(), "kafka".into()],
            text: "kafka drill: stop kafka".into(),
        }
    }

    #[test]
    fn a_region_is_created_then_given_its_end() {
        let config = Config::default();
        let now = Instant::now();
        let mut regions = Regions::default();
        regions.apply(start("d-1"), now);
        let create = regions.next(now).unwrap();
        assert_eq!(
            create,
            Request::Create {
                key: "d-1".into(),
                body: serde_json::json!({"time": 1000, "tags": ["firedrill", "kafka"], "text": "kafka drill: stop kafka"}),
            }
        );
        assert!(!regions.complete(&create, Outcome::Created(7), now, &config));
        assert_eq!(regions.next(now), None, "nothing to do until the end");
        assert_eq!(regions.next_due(), None);
        regions.apply(
            Event::End {
                key: "d-1".into(),
                at_ms: 5_000,
            },
            now,
        );
        let end = regions.next(now).unwrap();
        assert_eq!(
            end,
            Request::SetEnd {
                key: "d-1".into(),
                id: 7,
                body: serde_json::json!({"time": 1000, "timeEnd": 5000}),
            }
        );
        regions.complete(&end, Outcome::Updated, now, &config);
        assert!(regions.is_empty());
    }

    #[test]
    fn a_region_that_ended_before_it_was_created_is_sent_whole() {
        let config = Config::default();
        let now = Instant::now();
        let mut regions = Regions::default();
        regions.apply(start("d-1"), now);
        regions.apply(
            Event::End {
                key: "d-1".into(),
                at_ms: 5_000,
            },
            now,
        );
        let create = regions.next(now).unwrap();
        let Request::Create { body, .. } = &create else {
            panic!("{create:?}")
        };
        assert_eq!(body["timeEnd"], 5000);
        regions.complete(&create, Outcome::Created(9), now, &config);
        assert!(regions.is_empty());
    }

    #[test]
    fn failures_back_off_and_give_up_after_the_last_attempt() {
        let config = Config {
            retry: Duration::from_secs(1),
            max_attempts: 3,
            ..Config::default()
        };
        let t0 = Instant::now();
        let mut regions = Regions::default();
        regions.apply(start("d-1"), t0);
        let create = regions.next(t0).unwrap();
        assert!(!regions.complete(&create, Outcome::Failed, t0, &config));
        assert_eq!(regions.next(t0), None, "backing off");
        assert_eq!(regions.next_due(), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert!(!regions.complete(&regions.next(t1).unwrap(), Outcome::Failed, t1, &config));
        assert_eq!(regions.next_due(), Some(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        assert!(regions.complete(&regions.next(t2).unwrap(), Outcome::Failed, t2, &config));
        assert!(regions.is_empty());
    }

    #[test]
    fn a_url_needs_a_token() {
        let config = Config {
            url: Some("http://127.0.0.1:3001".parse().unwrap()),
            ..Config::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("grafana.token: required"));
    }

    /// A real HTTP server standing in for Grafana: the first POST fails with 503, the retry
    /// gets an id, the PATCH sets the end. Nothing waits on the annotator but the test.
    #[tokio::test]
    async fn the_actor_retries_against_a_real_server_and_never_blocks_the_caller() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, mut seen) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            for answer in [
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 35\r\nconnection: close\r\n\r\n{\"id\": 42, \"message\": \"Annotation\"}",
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            ] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 16 * 1024];
                let mut got = 0;
                // Read the head and the body (its length from content-length).
                loop {
                    let n = stream.read(&mut buf[got..]).await.unwrap();
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse::<usize>().unwrap()))
                            .unwrap_or(0);
                        if got >= head_end + 4 + len || n == 0 {
                            seen_tx.send(text).unwrap();
                            break;
                        }
                    }
                }
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let config = Config {
            url: Some(format!("http://{addr}").parse().unwrap()),
            token: Some("test-token".into()),
            retry: Duration::from_millis(10),
            ..Config::default()
        };
        let registry = Registry::new();
        let (annotator, handle) = Annotator::build(&config, &registry).unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(annotator.unwrap().run(cancel.clone()));
        handle.start("d-1", 1_000, vec!["firedrill".into()], "drill".into());
        handle.end("d-1", 2_000);
        let first = seen.recv().await.unwrap();
        assert!(
            first.starts_with("POST /api/annotations HTTP/1.1"),
            "{first}"
        );
        assert!(
            first.contains("authorization: Bearer test-token"),
            "{first}"
        );
        let retry = seen.recv().await.unwrap();
        assert!(retry.starts_with("POST /api/annotations"), "{retry}");
        // The end was known before the create succeeded: one request carried both.
        assert!(retry.contains("\"timeEnd\":2000"), "{retry}");
        assert!(seen.try_recv().is_err());
        // Closing the queue (not cancelling) lets the actor finish with the answer in
        // flight: it stops once nothing is pending and no event can come.
        drop(handle);
        task.await.unwrap();
        drop(cancel);
        let count = |result: &str| {
            registry
                .gather()
                .iter()
                .filter(|f| f.name() == "firedrill_grafana_annotations_total")
                .flat_map(|f| f.get_metric())
                .filter(|m| m.get_label().iter().any(|l| l.value() == result))
                .map(|m| m.get_counter().get_value())
                .sum::<f64>()
        };
        assert_eq!(count("failed"), 1.0);
        assert_eq!(count("created"), 1.0);
    }
}
