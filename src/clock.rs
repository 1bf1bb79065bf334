//! The wall clock, read in one place so that pure modules can take time as an argument.
//!
//! Wall-clock (not monotonic) time is deliberate: firedrill compares its own timestamps with
//! the broker's, Flink's (`processed_at`, checkpoint ack times) and Prometheus'.

/// Unix milliseconds now. Called once per order on librdkafka's delivery thread, so it reads
/// `SystemTime` directly rather than building a calendar time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
