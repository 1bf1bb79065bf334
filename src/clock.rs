//! The wall clock, read in one place so that pure modules can take time as an argument.
//!
//! Wall-clock (not monotonic) time is deliberate: firedrill compares its own timestamps with
//! the broker's, Flink's (`processed_at`, checkpoint ack times) and Prometheus'.

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
