//! `mjlink bench`: replay throughput with the database on, next to the rate of merely
//! deserializing the same lines into serenity's gateway event type, in the same run; and the
//! peak memory of the replay. Traces come from [`crate::tracegen`].

use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::pipeline::{Pipeline, PipelineConfig};
use crate::replay::{self, Clock, ReplaySummary};
use crate::store::Store;
use crate::tracegen::{self, TraceOptions};

/// Figures for one trace size.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub events: usize,
    pub trace_bytes: u64,
    /// Lines per second deserialized into `serenity::model::event::GatewayEvent` (baseline).
    pub serenity_decode_per_s: f64,
    /// Lines per second through `mjlink replay` (decode, parse, link, SQLite on disk).
    pub replay_per_s: f64,
    pub ratio: f64,
    /// Peak resident memory during the replay phase, in MiB (Linux; `None` elsewhere).
    pub replay_peak_rss_mib: Option<f64>,
    pub db_bytes: u64,
    pub links: i64,
}

/// Resets the kernel's peak-RSS counter for this process (Linux `clear_refs` 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs one size in `dir` (the trace and database are written there and removed after).
pub fn run_one(dir: &Path, events: usize, seed: u64) -> anyhow::Result<BenchRow> {
    let trace_path = dir.join(format!("trace-{events}.jsonl"));
    {
        let file = std::fs::File::create(&trace_path)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let options = TraceOptions {
            seed,
            events,
            ..TraceOptions::default()
        };
        tracegen::generate(&options, &mut out, &mut |_| {})?;
        std::io::Write::flush(&mut out)?;
    }
    let trace_bytes = std::fs::metadata(&trace_path)?.len();

    // Baseline: serenity's own event type, same lines, same reader.
    let start = Instant::now();
    let mut lines = 0usize;
    let mut decoded = 0usize;
    let reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(&trace_path)?);
    for line in reader.split(b'\n') {
        let line = line?;
        lines += 1;
        if serde_json::from_slice::<serenity::model::event::GatewayEvent>(&line).is_ok() {
            decoded += 1;
        }
    }
    let serenity_secs = start.elapsed().as_secs_f64();
    std::hint::black_box(decoded);

    // mjlink replay into a fresh on-disk database.
    let db_path = dir.join(format!("bench-{events}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    reset_peak_rss();
    let start = Instant::now();
    let store = Store::open(&db_path)?;
    let mut pipeline = Pipeline::new(store, PipelineConfig::default());
    let mut summary = ReplaySummary::default();
    let mut clock = Clock::default();
    let reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(&trace_path)?);
    replay::replay_reader("bench", reader, &mut pipeline, &mut summary, &mut clock, |_| {})?;
    let store = pipeline.into_store()?;
    let replay_secs = start.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    let (_, by_status) = store.count_links()?;
    let links = by_status.iter().map(|(_, count)| count).sum();
    drop(store);
    let db_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db_path.display())).ok())
        .map(|meta| meta.len())
        .sum();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let _ = std::fs::remove_file(&trace_path);

    let serenity_decode_per_s = lines as f64 / serenity_secs;
    let replay_per_s = summary.lines as f64 / replay_secs;
    Ok(BenchRow {
        events: lines,
        trace_bytes,
        serenity_decode_per_s,
        replay_per_s,
        ratio: replay_per_s / serenity_decode_per_s,
        replay_peak_rss_mib: peak,
        db_bytes,
        links,
    })
}

/// Prints the table of rows.
pub fn write_table(out: &mut impl std::io::Write, rows: &[BenchRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>9} {:>9} {:>16} {:>14} {:>6} {:>13} {:>9}",
        "events", "trace MB", "serenity dec/s", "replay ev/s", "ratio", "peak RSS MiB", "db MB"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:>9} {:>9.1} {:>16.0} {:>14.0} {:>6.2} {:>13} {:>9.1}",
            row.events,
            row.trace_bytes as f64 / 1e6,
            row.serenity_decode_per_s,
            row.replay_per_s,
            row.ratio,
            row.replay_peak_rss_mib
                .map_or("n/a".to_string(), |mib| format!("{mib:.1}")),
            row.db_bytes as f64 / 1e6,
        )?;
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if rows.len() > 1 {
            writeln!(
                out,
                "replay rate at {} events is {:.1}% of the rate at {} events",
                last.events,
                100.0 * last.replay_per_s / first.replay_per_s,
                first.events
            )?;
        }
    }
    Ok(())
}
