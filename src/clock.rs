//! The wall clock, read in one place. The core never reads it: every decision takes the
//! time as an argument. The shell reads it here when a live event is received (the writer),
//! when the archiver, the queue runner, the notifications' worker and the rate limit of slash
//! commands need "now", for download and delivery jitter, and in the demo and the queue's CLI. Replay never reads it (its clock is
//! the newest message time read), so replaying the same input gives the same database.

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A few varying bits for jitter (not for anything secret): the clock's nanoseconds.
pub fn jitter_bits() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.subsec_nanos())
        .unwrap_or(0)
}
