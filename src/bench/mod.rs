//! `mjlink bench`: throughput measured next to a baseline in the same run.
//!
//! - [`replay`]: replay (decode, parse, link, SQLite on disk) against merely decoding the same
//!   lines into serenity's gateway event type; and the replay's peak memory.
//! - [`archive`]: the archiver (stream, hash, check, fsync, rename, record) against plain
//!   parallel GETs of the same images at the same concurrency, from a server on 127.0.0.1.
//! - [`web`]: the web gallery's latency (family, gallery, search, images) under concurrent
//!   clients, against a plain static file handler serving the same files.

pub mod archive;
pub mod replay;
pub mod web;

/// Resets the kernel's peak-RSS counter for this process (Linux `clear_refs` 5).
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, in MiB.
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
