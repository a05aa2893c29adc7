//! `doctor`, `demo`, `links`, `gen-trace` and `bench`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{write_links, Outcome};
use crate::config::Config;
use crate::export::Format;
use crate::store::Store;

/// Every check, one line each; fails when one does. `config_file` is the `--config` given.
pub async fn doctor(
    config: &Config,
    config_file: Option<&Path>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let checks = crate::doctor::check(config, config_file).await;
    let mut failed = false;
    for check in &checks {
        let verdict = if check.ok { "ok  " } else { "FAIL" };
        writeln!(out, "{verdict} {:<10} {}", check.name, check.detail)?;
        failed |= !check.ok;
    }
    Ok(Outcome::success_if(!failed))
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[arg(long, value_name = "DIR", default_value = "mjlink-demo")]
    pub dir: PathBuf,
}

/// The whole product against the simulation, telling its story through `say`; fails when an
/// item did not finish.
pub async fn demo(args: &DemoArgs, say: crate::demo::Say) -> anyhow::Result<Outcome> {
    let items = crate::demo::run(&args.dir, &crate::demo::default_prompts(), say).await?;
    Ok(Outcome::success_if(
        items.iter().all(|item| item.status.is_final()),
    ))
}

#[derive(Debug, Clone, clap::Args)]
pub struct LinksArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Every link, from an existing database.
pub fn links(config: &Config, args: &LinksArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if !config.database_path.exists() {
        anyhow::bail!(
            "no database at {} (run `mjlink replay` first, or pass --db)",
            config.database_path.display()
        );
    }
    let store = Store::open(&config.database_path)?;
    write_links(&store, args.format, out)?;
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Args)]
pub struct GenTraceArgs {
    /// About this many lines.
    #[arg(long, default_value_t = 10_000)]
    pub events: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the trace goes.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Where the ground truth goes: one JSON line per result with its true parent.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
}

/// Writes a synthetic trace (and its ground truth).
pub fn gen_trace(args: &GenTraceArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let create = |path: &Path| {
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
    };
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, create(&args.out)?);
    let mut truth_writer = match &args.truth {
        Some(path) => Some(std::io::BufWriter::new(create(path)?)),
        None => None,
    };
    let mut truth_error = None;
    let options = mjlink_sim::tracegen::TraceOptions {
        seed: args.seed,
        events: args.events,
        ..Default::default()
    };
    let stats = mjlink_sim::tracegen::generate(&options, &mut writer, &mut |link| {
        if let Some(out) = truth_writer.as_mut() {
            let row = serde_json::json!({
                "child_id": link.child_id.to_string(),
                "parent_id": link.parent_id.to_string(),
                "action": link.action,
                "index": link.index,
                "has_reference": link.has_reference,
            });
            if let Err(error) = writeln!(out, "{row}") {
                truth_error.get_or_insert(error);
            }
        }
    })?;
    writer.flush()?;
    if let Some(error) = truth_error {
        return Err(error.into());
    }
    if let Some(mut truth) = truth_writer {
        truth.flush()?;
    }
    writeln!(
        out,
        "wrote {} lines ({} results, {} grids, {} silently failed jobs) to {}",
        stats.lines,
        stats.results,
        stats.grids,
        stats.failed_jobs,
        args.out.display()
    )?;
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Trace sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub sizes: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Benchmark the archive instead of replay.
    #[arg(long)]
    pub archive: bool,
    /// Images served (with --archive).
    #[arg(long, default_value_t = 300)]
    pub images: usize,
    /// Downloads in flight, on both sides (with --archive).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Rounds; the figures are medians (with --archive).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Scratch directory for traces and databases (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The replay benchmark for each size, or the archive benchmark; what it is doing on
/// stderr, the figures on `out`.
pub async fn bench(args: &BenchArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = parent.join(format!("mjlink-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    if args.archive {
        let options = crate::bench::archive::ArchiveBenchOptions {
            images: args.images,
            concurrency: args.concurrency.max(1),
            repeats: args.rounds.max(1),
            seed: args.seed,
            ..Default::default()
        };
        eprintln!(
            "bench: archiving {} images, {} rounds...",
            args.images, options.repeats
        );
        let row = crate::bench::archive::run(&scratch, &options).await;
        let _ = std::fs::remove_dir_all(&scratch);
        let row = row?;
        return json_or_table(args.json, out, &row, |out| {
            crate::bench::archive::write_table(out, &row)
        });
    }
    let mut rows = Vec::new();
    for &size in &args.sizes {
        eprintln!("bench: {size} events...");
        rows.push(crate::bench::replay::run_one(&scratch, size, args.seed)?);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    json_or_table(args.json, out, &rows, |out| {
        crate::bench::replay::write_table(out, &rows)
    })
}

/// Benchmark figures: pretty JSON for scripts, else the table.
fn json_or_table<W: Write>(
    json: bool,
    out: &mut W,
    value: &impl serde::Serialize,
    table: impl FnOnce(&mut W) -> std::io::Result<()>,
) -> anyhow::Result<Outcome> {
    if json {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)?;
    } else {
        table(out)?;
    }
    Ok(Outcome::Success)
}
