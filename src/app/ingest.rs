//! `replay`, `run`, `record` and `backfill`: the sources of events.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::{archive, shutdown_signal, write_links, Bar, Outcome, Progress};
use crate::config::Config;
use crate::export::Format;
use crate::ingest::gateway::{self, RunOptions};
use crate::ingest::pipeline::{Pipeline, PipelineConfig};
use crate::ingest::replay::Replay;
use crate::ingest::report::Report;
use crate::rest::Rest;
use crate::store::{Store, StoreError};
use mjlink_core::snowflake::Snowflake;
use mjlink_core::text::{format_time, parse_time};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also print every link afterwards, in this format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub links: Option<Format>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Then download the images into the archive (as `mjlink archive`). Recorded
    /// fixtures usually carry links that expired long ago: with a bot token configured
    /// they are refreshed, otherwise they stay queued.
    #[arg(long)]
    pub download: bool,
}

/// Feeds every file through the pipeline, prints the summary (and the links), then archives
/// when asked.
pub async fn replay(
    config: &Config,
    args: &ReplayArgs,
    progress: Progress<'_>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let store = Store::open(&config.database_path)?;
    let mut replay = Replay::start(Pipeline::new(store, PipelineConfig::from_config(config)));
    for file in &args.files {
        tracing::debug!(file = %file.display(), database = %config.database_path.display(), "replaying");
        if replay_file(file, &mut replay, progress).is_err() {
            break; // the writer stopped: finish() returns its error
        }
    }
    let (summary, store) = replay.finish()?;
    // Each file that could not be read: one line on stderr (and in the summary).
    for reason in &summary.unreadable {
        let _ = writeln!(
            std::io::stderr(),
            "mjlink: {}",
            mjlink_core::text::for_terminal(reason)
        );
    }
    let report = Report::gather(&summary, &store)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        report.write_text(out, &config.database_path)?;
    }
    if let Some(format) = args.links {
        writeln!(out)?;
        write_links(&store, format, out)?;
    }
    if args.download {
        drop(store);
        let archived = archive::archive_now(config, progress).await?;
        writeln!(out)?;
        writeln!(out, "{}", archive::archive_line(&archived))?;
    }
    Ok(if !summary.unreadable.is_empty() {
        Outcome::Failure
    } else if summary.malformed > 0 {
        Outcome::MalformedInput
    } else {
        Outcome::Success
    })
}

/// One file into the replay; a file that cannot be opened is reported in the summary. An
/// error means the database failed (`finish` says why).
fn replay_file(file: &Path, replay: &mut Replay, progress: Progress<'_>) -> Result<(), StoreError> {
    let name = file.display().to_string();
    if name == "-" {
        let stdin = std::io::stdin();
        return replay.read("-", stdin.lock(), |_| {});
    }
    let Some((reader, bar)) = open_input(file, replay, progress) else {
        return Ok(());
    };
    let read = replay.read(&name, reader, |bytes| bar.inc(bytes));
    bar.finish_and_clear();
    read
}

/// A file opened to be read into `replay` (a replay or an import), with its progress bar
/// sized to it; `None` when it cannot be opened, which the replay's summary then reports.
pub(super) fn open_input(
    file: &Path,
    replay: &mut Replay,
    progress: Progress<'_>,
) -> Option<(BufReader<std::fs::File>, indicatif::ProgressBar)> {
    let name = file.display().to_string();
    let handle = match std::fs::File::open(file) {
        Ok(handle) => handle,
        Err(error) => {
            replay.unopened(format!("cannot open {name}: {error}"));
            return None;
        }
    };
    let bytes = handle.metadata().map(|meta| meta.len()).unwrap_or(0);
    let bar = progress(Bar::Replay { name, bytes });
    Some((BufReader::with_capacity(256 * 1024, handle), bar))
}

/// The live bot until Ctrl-C or SIGTERM; with `web.enabled`, the web gallery beside it, listening before the bot
/// starts (an address in use stops `run` at once) and stopped after it.
pub async fn run(config: &Config) -> anyhow::Result<Outcome> {
    let web = match config.web.enabled {
        true => Some(super::web::Beside::start(config).await?),
        false => None,
    };
    let ran = gateway::run_with(config, &RunOptions::default(), shutdown_signal()).await;
    if let Some(web) = web {
        web.stop().await;
    }
    ran?;
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
}

/// The live bot, every dispatch appended to `args.out` as received.
pub async fn record(config: &Config, args: &RecordArgs) -> anyhow::Result<Outcome> {
    let options = RunOptions {
        record: Some(args.out.clone()),
        ..Default::default()
    };
    gateway::run_with(config, &options, shutdown_signal()).await?;
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// The channel id.
    #[arg(long, value_name = "ID")]
    pub channel: String,
    /// Start at this date (YYYY-MM-DD, UTC) or RFC 3339 time.
    #[arg(
        long,
        value_name = "DATE",
        conflicts_with = "all",
        required_unless_present = "all"
    )]
    pub since: Option<String>,
    /// Import the whole history.
    #[arg(long)]
    pub all: bool,
    /// Also the channel's threads: the active ones and the archived ones (public; private
    /// too when the bot has the Manage Threads permission, else skipped with a note).
    #[arg(long)]
    pub threads: bool,
}

/// A channel's history after `--since` (or all of it) through the writer, then its images
/// archived while their links are fresh.
pub async fn backfill(
    config: &Config,
    args: &BackfillArgs,
    progress: Progress<'_>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let channel = Snowflake::parse(args.channel.trim())
        .with_context(|| format!("--channel {:?} is not a Discord channel id", args.channel))?;
    let after = match (&args.since, args.all) {
        (_, true) => Snowflake::default(),
        (Some(since), false) => Snowflake::from_timestamp_ms(
            parse_time(since).with_context(|| format!("--since {since:?} is not a date like 2024-05-01"))?,
        ),
        (None, false) => anyhow::bail!("give --since DATE or --all"),
    };
    let rest = Arc::new(Rest::from_config(&config.discord)?);
    let store = Store::open(&config.database_path)?;
    let pipeline = Pipeline::new(store, PipelineConfig::from_config(config));
    let bar = progress(Bar::Backfill);
    let result = crate::ingest::backfill::backfill(rest, pipeline, channel, after, args.threads, |done| {
        let reached = done
            .last
            .and_then(|id| format_time(id.timestamp_ms()))
            .unwrap_or_default();
        bar.set_message(format!(
            "channel {channel}: {} messages, {} pages, up to {reached}",
            done.messages, done.pages
        ));
    })
    .await;
    bar.finish_and_clear();
    let report = result?;
    let (done, stats) = (report.caught_up, report.stats);
    if let Some(threads) = &report.threads {
        writeln!(
            out,
            "threads: {} active, {} archived (their messages are counted below)",
            threads.active.len(),
            threads.archived.len()
        )?;
        for note in &threads.notes {
            writeln!(out, "note: {note}")?;
        }
    }
    writeln!(
        out,
        "channel {channel}: {} messages in {} pages; {} applied, {} already stored, {} not from Midjourney",
        done.messages,
        done.pages,
        stats.applied,
        stats.duplicates + stats.unchanged,
        stats.ignored
    )?;
    if report.parents_fetched > 0 {
        writeln!(out, "{} referenced parents fetched", report.parents_fetched)?;
    }
    // The links of a history page are fresh for about a day: archive them now.
    if config.archive.enabled {
        let archived = archive::archive_now(config, progress).await?;
        writeln!(out, "{}", archive::archive_line(&archived))?;
    }
    Ok(Outcome::Success)
}
