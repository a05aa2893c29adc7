//! The `mjlink` command: parses arguments and calls the library.

use std::io::{BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use mjlink::config::Config;
use mjlink::export::{Format, LinkRecord, LinkWriter};
use mjlink::pipeline::Pipeline;
use mjlink::replay::{self, Clock, ReplaySummary};
use mjlink::store::Store;

/// mjlink links every Midjourney result on Discord (upscales, variations, zooms, pans,
/// rerolls) to the grid it came from, and keeps the lineage in SQLite.
#[derive(Debug, Parser)]
#[command(name = "mjlink", version, about, long_about)]
struct Cli {
    /// Config file (default: ./bot.toml when it exists). Every key can be overridden by an
    /// MJLINK_* environment variable, e.g. MJLINK_DATABASE_PATH.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// SQLite database (default: database.path from the config, else ./mjlink.db).
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Feed recorded Discord traffic through the pipeline and print a summary.
    ///
    /// Each FILE holds gateway dispatches, one JSON object per line
    /// ({"op":0,"t":"MESSAGE_CREATE","s":1,"d":{...}}), as recorded from the gateway, or a
    /// JSON array of messages as GET /channels/{id}/messages returns. '-' reads stdin.
    /// Replaying the same file again changes nothing; bad lines are counted and skipped.
    Replay {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also print every link afterwards, in this format.
        #[arg(long, value_enum, value_name = "FORMAT")]
        links: Option<Format>,
        /// Print the summary as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Export the links (one row per result: its parent, action, tile, signal and status).
    Links {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "mjlink: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref(), |key| std::env::var(key).ok())?;
    if let Some(db) = cli.db {
        config.database_path = db;
    }
    init_tracing(&config.log_filter);

    match cli.command {
        Command::Replay { files, links, json } => {
            let store = Store::open(&config.database_path)?;
            let mut pipeline = Pipeline::new(store, config.pipeline());
            let mut summary = ReplaySummary::default();
            let mut clock = Clock::default();
            for file in &files {
                replay_file(file, &mut pipeline, &mut summary, &mut clock)?;
            }
            let store = pipeline.into_store()?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            if json {
                let report = mjlink::report::Report::gather(&summary, &store)?;
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                mjlink::report::Report::gather(&summary, &store)?
                    .write_text(&mut out, &config.database_path)?;
            }
            if let Some(format) = links {
                writeln!(out)?;
                write_links(&store, format, &mut out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Links { format } => {
            if !config.database_path.exists() {
                anyhow::bail!(
                    "no database at {} (run `mjlink replay` first, or pass --db)",
                    config.database_path.display()
                );
            }
            let store = Store::open(&config.database_path)?;
            let stdout = std::io::stdout();
            write_links(&store, format, &mut stdout.lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_links(store: &Store, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let mut writer = LinkWriter::new(out, format);
    let mut write_error = None;
    store.for_each_link(|export| {
        if write_error.is_none() {
            if let Err(error) = writer.write(&LinkRecord::from(export)) {
                write_error = Some(error);
            }
        }
        Ok(())
    })?;
    if let Some(error) = write_error {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(error.into());
    }
    writer.finish()?;
    Ok(())
}

fn replay_file(
    file: &PathBuf,
    pipeline: &mut Pipeline,
    summary: &mut ReplaySummary,
    clock: &mut Clock,
) -> anyhow::Result<()> {
    let name = file.display().to_string();
    if name == "-" {
        let stdin = std::io::stdin();
        replay::replay_reader("-", stdin.lock(), pipeline, summary, clock, |_| {})?;
        return Ok(());
    }
    let handle = std::fs::File::open(file).with_context(|| format!("cannot open {name}"))?;
    let length = handle.metadata().map(|meta| meta.len()).unwrap_or(0);
    let bar = if std::io::stderr().is_terminal() && length > 4 * 1024 * 1024 {
        let bar = indicatif::ProgressBar::new(length);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(name.clone());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let reader = BufReader::with_capacity(256 * 1024, handle);
    replay::replay_reader(&name, reader, pipeline, summary, clock, |bytes| bar.inc(bytes))?;
    bar.finish_and_clear();
    Ok(())
}
