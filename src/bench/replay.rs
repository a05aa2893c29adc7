//! `mjlink bench`: replay throughput with the database on, next to the rate of merely
//! deserializing the same lines into serenity's gateway event type, in the same run; and the
//! peak memory of the replay. Traces come from [`mjlink_sim::tracegen`].

use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::ingest::pipeline::{Pipeline, PipelineConfig};
use crate::ingest::replay::Replay;
use crate::store::{Store, StoreError};
use mjlink_sim::tracegen::{self, TraceOptions};

use super::{median, peak_rss_mib, reset_peak_rss};

/// Figures for one trace size.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub events: usize,
    /// Measurements taken (the figures are medians).
    pub repeats: usize,
    pub trace_bytes: u64,
    /// Lines per second deserialized into `serenity::model::event::GatewayEvent` (baseline).
    pub serenity_decode_per_s: f64,
    /// Lines per second through `mjlink replay` (decode, parse, link, SQLite on disk).
    pub replay_per_s: f64,
    /// The median of the runs' ratios (each run times the baseline, then the replay).
    pub ratio: f64,
    /// The lowest and highest of the runs' ratios.
    pub ratio_range: (f64, f64),
    /// Replay rate over the first and the last tenth of the trace (of the last repetition).
    pub first_tenth_per_s: f64,
    pub last_tenth_per_s: f64,
    /// Peak resident memory during the replay phase, in MiB (Linux; `None` elsewhere).
    pub replay_peak_rss_mib: Option<f64>,
    pub db_bytes: u64,
    pub links: i64,
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
        // On disk before anything is timed: else the kernel writes the freshly generated
        // trace back (gigabytes at 1M events) about 30 s later, in the middle of a measured
        // phase, and the database's own writes and fsyncs queue behind it.
        out.into_inner().map_err(|error| error.into_error())?.sync_all()?;
    }
    let trace_bytes = std::fs::metadata(&trace_path)?.len();

    // Runs are repeated (fresh database each time) and the median taken, so that every figure
    // rests on at least ~200k events of work, and on three runs at least: on a shared virtual
    // machine one phase of a few seconds can lose a third of its speed to a neighbour, and a
    // single run then measures the neighbour. Each run times the baseline and then the
    // replay, and its ratio is theirs: the ratio reported is the median of the runs'.
    let repeats = (200_000 / events.max(1)).clamp(3, 10);
    let mut serenity_rates = Vec::new();
    let mut replay_rates = Vec::new();
    let mut ratios = Vec::new();
    let mut tenths = (0.0, 0.0);
    let mut peak = None;
    let mut links = 0;
    let mut db_bytes = 0;
    let mut lines = 0usize;
    let db_path = dir.join(format!("bench-{events}.db"));
    for _ in 0..repeats {
        // Baseline: serenity's own event type, same lines, same reader.
        let start = Instant::now();
        let mut decoded = 0usize;
        lines = 0;
        let reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(&trace_path)?);
        for line in reader.split(b'\n') {
            let line = line?;
            lines += 1;
            if serde_json::from_slice::<serenity::model::event::GatewayEvent>(&line).is_ok() {
                decoded += 1;
            }
        }
        serenity_rates.push(lines as f64 / start.elapsed().as_secs_f64());
        std::hint::black_box(decoded);

        // mjlink replay into a fresh on-disk database.
        remove_db(&db_path);
        reset_peak_rss();
        let start = Instant::now();
        let store = Store::open(&db_path)?;
        let mut replay = Replay::start(Pipeline::new(store, PipelineConfig::default()));
        let reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(&trace_path)?);
        // Rates over the first and the last tenth of the events, by the writer's progress
        // (it works behind the reader, up to its queue's length): a cost that grows with the
        // history kept shows as a slower last tenth. Progress is sampled as lines are read,
        // then while the writer finishes.
        let applied = replay.applied_counter();
        let mut samples: Vec<(u64, f64)> = Vec::new();
        let mut lines_read = 0u64;
        let sample = |samples: &mut Vec<(u64, f64)>| {
            samples.push((
                applied.load(std::sync::atomic::Ordering::Relaxed),
                start.elapsed().as_secs_f64(),
            ));
        };
        let read = replay.read("bench", reader, |_| {
            lines_read += 1;
            if lines_read.is_multiple_of(64) {
                sample(&mut samples);
            }
        });
        while read.is_ok() && !replay.caught_up() {
            sample(&mut samples);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        sample(&mut samples);
        // The replay is done when its data is in the database file: the last commit and
        // closing (the final WAL checkpoint) are timed too. A failed read means the writer
        // failed: `finish` says why.
        let (summary, store) = match read {
            Ok(()) => replay.finish()?,
            Err(_) => return Err(replay.finish().err().unwrap_or(StoreError::WriterGone).into()),
        };
        drop(store);
        let elapsed = start.elapsed().as_secs_f64();
        replay_rates.push(summary.lines as f64 / elapsed);
        if let (Some(replay), Some(serenity)) = (replay_rates.last(), serenity_rates.last()) {
            ratios.push(replay / serenity);
        }
        let events = samples.last().map_or(0, |(done, _)| *done);
        let when = |events_done: u64| {
            samples
                .iter()
                .find(|(done, _)| *done >= events_done)
                .map_or(0.0, |(_, at)| *at)
        };
        let (tenth, nine_tenths) = (events / 10, events - events / 10);
        let (first_end, last_start, last_end) = (when(tenth), when(nine_tenths), when(events));
        if first_end > 0.0 && last_end > last_start {
            tenths = (
                tenth as f64 / first_end,
                (events - nine_tenths) as f64 / (last_end - last_start),
            );
        }
        peak = peak_rss_mib();
        links = Store::open(&db_path)?
            .count_links_by_status()?
            .iter()
            .map(|(_, count)| count)
            .sum();
        db_bytes = ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db_path.display())).ok())
            .map(|meta| meta.len())
            .sum();
    }
    remove_db(&db_path);
    let _ = std::fs::remove_file(&trace_path);

    let serenity_decode_per_s = median(&mut serenity_rates);
    let replay_per_s = median(&mut replay_rates);
    let ratio = median(&mut ratios);
    let ratio_range = (
        ratios.first().copied().unwrap_or(0.0),
        ratios.last().copied().unwrap_or(0.0),
    );
    Ok(BenchRow {
        events: lines,
        repeats,
        trace_bytes,
        serenity_decode_per_s,
        replay_per_s,
        ratio,
        ratio_range,
        first_tenth_per_s: tenths.0,
        last_tenth_per_s: tenths.1,
        replay_peak_rss_mib: peak,
        db_bytes,
        links,
    })
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Prints the table of rows.
pub fn write_table(out: &mut impl std::io::Write, rows: &[BenchRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>9} {:>4} {:>9} {:>15} {:>12} {:>6} {:>11} {:>16} {:>13} {:>9}",
        "events",
        "runs",
        "trace MB",
        "serenity dec/s",
        "replay ev/s",
        "ratio",
        "runs' min-max",
        "1st/last 10% ev/s",
        "peak RSS MiB",
        "db MB"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:>9} {:>4} {:>9.1} {:>15.0} {:>12.0} {:>6.2} {:>11} {:>16} {:>13} {:>9.1}",
            row.events,
            row.repeats,
            row.trace_bytes as f64 / 1e6,
            row.serenity_decode_per_s,
            row.replay_per_s,
            row.ratio,
            format!("{:.2}-{:.2}", row.ratio_range.0, row.ratio_range.1),
            format!("{:.0}/{:.0}", row.first_tenth_per_s, row.last_tenth_per_s),
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
