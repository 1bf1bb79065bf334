//! The wall clock, read in one place so that pure modules can take time as an argument.
//!
//! Wall-clock (not monotonic) time is deliberate: firedrill compares its own timestamps with
//! the broker's, Flink's (`processed_at`, checkpoint ack times) and Prometheus'.
//!
//! In unit tests the wall clock follows tokio's clock from the first reading on, so code that
//! stamps events (a drill's phases, a fault's injection) runs under `tokio::time::pause()`
//! with timestamps that agree with the paused clock.

/// Unix milliseconds now. Called once per order on librdkafka's delivery thread, so it reads
/// `SystemTime` directly rather than building a calendar time.
#[cfg(not(test))]
pub fn now_ms() -> i64 {
    wall_ms()
}

/// Unix milliseconds now: the wall clock at the first reading plus tokio's time since (see
/// the module docs).
#[cfg(test)]
pub fn now_ms() -> i64 {
    use std::sync::OnceLock;
    static ANCHOR: OnceLock<(std::time::Instant, i64)> = OnceLock::new();
    let (instant, wall) = *ANCHOR.get_or_init(|| (std::time::Instant::now(), wall_ms()));
    let now = tokio::time::Instant::now().into_std();
    match now.checked_duration_since(instant) {
        Some(d) => wall + d.as_millis() as i64,
        None => wall - instant.duration_since(now).as_millis() as i64,
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
