//! The `mjlink` command: parses arguments and calls the library.

use std::io::{BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use mjlink::config::Config;
use mjlink::export::{Format, LinkRecord, LinkWriter};
use mjlink::ingest::pipeline::Pipeline;
use mjlink::ingest::replay::Replay;
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
        /// Then download the images into the archive (as `mjlink archive`). Recorded
        /// fixtures usually carry links that expired long ago: with a bot token configured
        /// they are refreshed, otherwise they stay queued.
        #[arg(long)]
        download: bool,
    },
    /// Run the bot on the Discord gateway: watch the configured channels, link every result
    /// as it arrives, and catch up on what was missed while offline.
    ///
    /// Needs discord.token (or MJLINK_DISCORD_TOKEN) and the Message Content intent. Stops
    /// cleanly on Ctrl-C or SIGTERM: everything received is stored first.
    Run,
    /// Run like `run`, and also append every gateway dispatch received to FILE, one JSON
    /// object per line, as `mjlink replay` reads it: real sessions become fixtures.
    Record {
        #[arg(long, value_name = "FILE.jsonl")]
        out: PathBuf,
    },
    /// Check the configuration, the database and that the API base answers; print what is
    /// wrong and how to fix it. Exits non-zero when a check fails.
    Doctor,
    /// Import a channel's existing history through the same pipeline.
    ///
    /// Pages forward through GET /channels/{id}/messages from --since (or the channel's
    /// beginning with --all), oldest first, honouring Discord's rate limits. Safe to repeat:
    /// what is already stored is skipped.
    Backfill {
        /// The channel id.
        #[arg(long, value_name = "ID")]
        channel: String,
        /// Start at this date (YYYY-MM-DD, UTC) or RFC 3339 time.
        #[arg(
            long,
            value_name = "DATE",
            conflicts_with = "all",
            required_unless_present = "all"
        )]
        since: Option<String>,
        /// Import the whole history.
        #[arg(long)]
        all: bool,
    },
    /// Download every pending grid and result image into the archive (archive.dir).
    ///
    /// Each file is streamed to a temporary file, hashed, checked to be an image, fsynced and
    /// renamed into place before it is marked archived. Failed downloads stay queued and are
    /// retried by the next run (up to 5 attempts). With a bot token configured, expired links
    /// are refreshed through Discord and tried again.
    Archive,
    /// List every grid and result image with its archive state.
    Images {
        #[arg(long, value_enum, default_value = "table")]
        format: ImagesFormat,
    },
    /// Rehash every archived file and report missing or corrupt ones (non-zero exit if any).
    Verify {
        /// Put missing and corrupt files back in the queue and download them again.
        #[arg(long)]
        repair: bool,
    },
    /// The prompt queue: add prompts, see where each stands, cancel, and drive it.
    ///
    /// Submitting acts as a Discord *user* account (Midjourney ignores bots): it needs
    /// queue.user_token, queue.guild_id and queue.channel_id. Automating a user account
    /// breaks Discord's terms of service and risks a Midjourney ban; do it knowingly.
    Queue {
        #[command(subcommand)]
        action: QueueCommand,
    },
    /// See the whole product work, with no token: a SIMULATION.
    ///
    /// Starts a fake Discord (REST and gateway on 127.0.0.1) with a simulated Midjourney in
    /// this process, runs the real bot against it, queues a few prompts with every upscale,
    /// archives the images, and prints each item's lineage. DIR/demo.db and DIR/archive are
    /// made anew each time.
    Demo {
        #[arg(long, value_name = "DIR", default_value = "mjlink-demo")]
        dir: PathBuf,
    },
    /// Export the links (one row per result: its parent, action, tile, signal and status).
    Links {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Write a synthetic Midjourney trace (gateway dispatch lines) and its ground truth.
    ///
    /// Interleaved users and channels, identical-prompt bursts, every result kind, noise,
    /// duplicates and out-of-order events; deterministic for a given seed.
    GenTrace {
        /// About this many lines.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the trace goes.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Where the ground truth goes: one JSON line per result with its true parent.
        #[arg(long, value_name = "FILE")]
        truth: Option<PathBuf>,
    },
    /// Measure replay throughput against serenity's own deserialization of the same lines;
    /// or, with --archive, the archiver against plain parallel GETs.
    ///
    /// Replay: for each size, generates a trace, times deserializing every line into
    /// serenity's GatewayEvent (the baseline), then times `replay` of the same file into a
    /// fresh SQLite database on disk, and reports both rates, their ratio and the replay's
    /// peak RSS.
    ///
    /// Archive: serves --images images of 1-8 MiB from 127.0.0.1, times plain parallel GETs
    /// that write each to a file (the baseline), then `archive` of the same images queued in
    /// a fresh database, both at --concurrency, and reports both rates and their ratio.
    Bench {
        /// Trace sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Benchmark the archive instead of replay.
        #[arg(long)]
        archive: bool,
        /// Images served (with --archive).
        #[arg(long, default_value_t = 300)]
        images: usize,
        /// Downloads in flight, on both sides (with --archive).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Rounds; the figures are medians (with --archive).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Scratch directory for traces and databases (default: the system temp dir).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Add one prompt, or every line of a file (blank lines and # comments skipped). The
    /// prompt is sent exactly as written, parameters included.
    Add {
        /// The prompt, e.g. "a glass whale --ar 16:9 --v 7".
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        prompt: Option<String>,
        /// One prompt per line.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Upscales to ask for once the grid is in: all, none, or tiles like 1,3.
        #[arg(long, default_value = "all")]
        upscale: String,
        /// Higher goes first.
        #[arg(long, default_value_t = 0)]
        priority: i64,
    },
    /// List the items (all, or those with --status), in queue order.
    List {
        /// queued, submitted, rendering, grid_done, upscaling, done, partial, failed or cancelled
        /// (comma-separated).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: ImagesFormat,
    },
    /// One item: the request as asked, its grid and upscales, the last error, every
    /// transition with its time. ID may be a unique prefix.
    Show {
        id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel an unfinished item (a job already at Midjourney still finishes there, but is
    /// no longer collected).
    Cancel { id: String },
    /// Drive the queue until every item is finished (or Ctrl-C): the live bot runs too, to
    /// see Midjourney's answers. Progress on a terminal.
    Run,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ImagesFormat {
    Table,
    Jsonl,
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
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref(), |key| std::env::var(key).ok())?;
    if let Some(db) = cli.db {
        config.database_path = db;
    }
    // The demo tells its own story; its log stays quiet unless asked for.
    let demo_quiet =
        matches!(cli.command, Command::Demo { .. }) && std::env::var_os("MJLINK_LOG_FILTER").is_none();
    init_tracing(if demo_quiet { "error" } else { &config.log_filter });

    match cli.command {
        Command::Replay {
            files,
            links,
            json,
            download,
        } => {
            let store = Store::open(&config.database_path)?;
            let mut replay = Replay::start(Pipeline::new(store, config.pipeline()));
            for file in &files {
                tracing::debug!(file = %file.display(), database = %config.database_path.display(), "replaying");
                if let Err(error) = replay_file(file, &mut replay) {
                    // A database failure shows in `finish`; anything else (a file that cannot
                    // be opened) is this file's.
                    replay.finish()?;
                    return Err(error);
                }
            }
            let (summary, store) = replay.finish()?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            if json {
                let report = mjlink::ingest::report::Report::gather(&summary, &store)?;
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                mjlink::ingest::report::Report::gather(&summary, &store)?
                    .write_text(&mut out, &config.database_path)?;
            }
            if let Some(format) = links {
                writeln!(out)?;
                write_links(&store, format, &mut out)?;
            }
            if download {
                drop(store);
                let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
                let archived = runtime.block_on(archive_now(&config))?;
                writeln!(out)?;
                writeln!(out, "{}", archive_line(&archived))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(mjlink::ingest::gateway::run(&config, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue { action } => queue_command(&config, action),
        Command::Demo { dir } => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let say: mjlink::demo::Say = std::sync::Arc::new(|line: &str| println!("{line}"));
            let items = runtime.block_on(mjlink::demo::run(&dir, &mjlink::demo::default_prompts(), say))?;
            let unfinished = items.iter().filter(|item| !item.status.is_final()).count();
            Ok(if unfinished == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Record { out } => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let options = mjlink::ingest::gateway::RunOptions {
                record: Some(out),
                ..Default::default()
            };
            runtime.block_on(mjlink::ingest::gateway::run_with(
                &config,
                &options,
                shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let checks = runtime.block_on(mjlink::doctor::check(&config, cli.config.as_deref()));
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let mut failed = false;
            for check in &checks {
                writeln!(
                    out,
                    "{} {:<10} {}",
                    if check.ok { "ok  " } else { "FAIL" },
                    check.name,
                    check.detail
                )?;
                failed |= !check.ok;
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Backfill { channel, since, all } => {
            let channel = mjlink_core::snowflake::Snowflake::parse(channel.trim())
                .with_context(|| format!("--channel {channel:?} is not a Discord channel id"))?;
            let after = match (since, all) {
                (_, true) => mjlink_core::snowflake::Snowflake::default(),
                (Some(since), false) => {
                    mjlink_core::snowflake::Snowflake::from_timestamp_ms(parse_since(&since)?)
                }
                (None, false) => anyhow::bail!("give --since DATE or --all"),
            };
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(backfill_channel(&config, channel, after))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Archive => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let summary = runtime.block_on(archive_now(&config))?;
            println!("{}", archive_line(&summary));
            Ok(ExitCode::SUCCESS)
        }
        Command::Images { format } => {
            let store = Store::open(&config.database_path)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let images = store.images()?;
            match format {
                ImagesFormat::Jsonl => {
                    for image in &images {
                        serde_json::to_writer(&mut out, image)?;
                        writeln!(out)?;
                    }
                }
                ImagesFormat::Table => {
                    writeln!(
                        out,
                        "{:<20} {:<20} {:<16} {:<9} {:>10} {:<12} path",
                        "message", "attachment", "kind", "state", "bytes", "sha256"
                    )?;
                    for image in &images {
                        writeln!(
                            out,
                            "{:<20} {:<20} {:<16} {:<9} {:>10} {:<12} {}",
                            image.message_id.to_string(),
                            image.attachment_id.to_string(),
                            image.kind,
                            image.state,
                            image.bytes.map_or("-".to_string(), |b| b.to_string()),
                            image
                                .sha256
                                .as_deref()
                                .map_or("-".to_string(), |h| h.chars().take(12).collect()),
                            image.path.as_deref().unwrap_or("-")
                        )?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { repair } => {
            let store = Store::open(&config.database_path)?;
            let report = mjlink::archive::worker::verify(&store, &config.archive.dir, repair)?;
            drop(store);
            for (attachment, path, problem) in &report.problems {
                println!("{problem}: {path} (attachment {attachment})");
            }
            println!(
                "checked {}, ok {}, missing or corrupt {}",
                report.checked,
                report.ok,
                report.problems.len()
            );
            if repair && !report.problems.is_empty() {
                let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
                let summary = runtime.block_on(archive_now(&config))?;
                println!(
                    "repaired {} (downloaded again)",
                    summary.archived + summary.deduplicated
                );
                let store = Store::open(&config.database_path)?;
                let again = mjlink::archive::worker::verify(&store, &config.archive.dir, false)?;
                return Ok(if again.problems.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
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
        Command::GenTrace {
            events,
            seed,
            out,
            truth,
        } => {
            let file =
                std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut truth_writer = match &truth {
                Some(path) => Some(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => None,
            };
            let mut truth_error = None;
            let options = mjlink_sim::tracegen::TraceOptions {
                seed,
                events,
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
            if let Some(mut out) = truth_writer {
                out.flush()?;
            }
            println!(
                "wrote {} lines ({} results, {} grids, {} silently failed jobs) to {}",
                stats.lines,
                stats.results,
                stats.grids,
                stats.failed_jobs,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            sizes,
            seed,
            archive,
            images,
            concurrency,
            rounds,
            dir,
            json,
        } => {
            let scratch = match dir {
                Some(dir) => dir,
                None => std::env::temp_dir(),
            };
            let scratch = tempfile_dir(&scratch)?;
            if archive {
                let options = mjlink::bench::archive::ArchiveBenchOptions {
                    images,
                    concurrency: concurrency.max(1),
                    repeats: rounds.max(1),
                    seed,
                    ..Default::default()
                };
                eprintln!("bench: archiving {images} images, {} rounds...", options.repeats);
                let runtime = tokio::runtime::Runtime::new()?;
                let row = runtime.block_on(mjlink::bench::archive::run(&scratch, &options));
                let _ = std::fs::remove_dir_all(&scratch);
                let row = row?;
                print_json_or_table(json, &row, |out| mjlink::bench::archive::write_table(out, &row))?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = Vec::new();
            for size in sizes {
                eprintln!("bench: {size} events...");
                rows.push(mjlink::bench::replay::run_one(&scratch, size, seed)?);
            }
            let _ = std::fs::remove_dir_all(&scratch);
            print_json_or_table(json, &rows, |out| mjlink::bench::replay::write_table(out, &rows))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn queue_command(config: &Config, action: QueueCommand) -> anyhow::Result<ExitCode> {
    use mjlink::queue::{runner, view, Status, Upscales};
    let now = chrono::Utc::now().timestamp_millis();
    let mut store = Store::open(&config.database_path)?;
    match action {
        QueueCommand::Add {
            prompt,
            file,
            upscale,
            priority,
        } => {
            let upscales = Upscales::parse(&upscale)
                .map_err(|reason| anyhow::anyhow!("--upscale {upscale}: {reason}"))?;
            let prompts = match (prompt, file) {
                (Some(prompt), _) => vec![prompt],
                (None, Some(file)) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    mjlink::queue::prompts_from_text(&text)
                }
                (None, None) => Vec::new(),
            };
            if prompts.iter().any(|prompt| prompt.trim().is_empty()) || prompts.is_empty() {
                anyhow::bail!("no prompt to add");
            }
            let added = runner::add(&mut store, &prompts, &upscales, priority, now)?;
            for item in &added {
                println!("{}  {}", item.id, item.prompt);
            }
            println!("added {} item(s), upscales: {upscales}", added.len());
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::List { status, format } => {
            let mut statuses = Vec::new();
            for name in &status {
                statuses.push(
                    Status::from_name(name.trim())
                        .ok_or_else(|| anyhow::anyhow!("--status {name}: not a status (queued, submitted, rendering, grid_done, upscaling, done, partial, failed, cancelled)"))?,
                );
            }
            let items = store.queue_items(&statuses)?;
            match format {
                ImagesFormat::Table => print!("{}", view::list_table(&items)),
                ImagesFormat::Jsonl => {
                    let mut out = std::io::stdout().lock();
                    for item in &items {
                        serde_json::to_writer(&mut out, item)?;
                        writeln!(out)?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Show { id, json } => {
            let Some(item) = store.queue_item(&id)? else {
                anyhow::bail!("no queue item has the id {id:?} (or the prefix is not unique)");
            };
            let history = store.queue_history(&item.id)?;
            if json {
                let value = serde_json::json!({"item": item, "history": history});
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", view::show_text(&item, &history));
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Cancel { id } => match runner::cancel(&mut store, &id, now)? {
            runner::Cancelled::NotFound => {
                anyhow::bail!("no queue item has the id {id:?} (or the prefix is not unique)")
            }
            runner::Cancelled::Now(item) => {
                println!("{} cancelled", item.id);
                Ok(ExitCode::SUCCESS)
            }
            runner::Cancelled::AlreadyFinished(item) => {
                println!("{} had already finished: {}", item.id, item.status);
                Ok(ExitCode::FAILURE)
            }
        },
        QueueCommand::Run => {
            drop(store);
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(drive_queue(config, shutdown_signal()))?;
            let store = Store::open(&config.database_path)?;
            print!("{}", view::list_table(&store.queue_items(&[])?));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the bot with the queue driven until every item is finished, with a progress line on
/// a terminal.
async fn drive_queue(config: &Config, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let display = bar.clone();
    let finished = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let options = mjlink::ingest::gateway::RunOptions {
        drive_queue: true,
        stop_when_queue_done: true,
        on_queue_tick: Some(std::sync::Arc::new(
            move |report: &mjlink::queue::runner::TickReport| {
                let mut finished = finished.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                for (id, from, to, note) in &report.transitions {
                    display.println(format!("{}  {from} -> {to}  {note}", &id[..id.len().min(8)]));
                    if to.is_final() {
                        *finished.entry(to.to_string()).or_default() += 1;
                    }
                }
                let parts: Vec<String> = report
                    .active_by_status
                    .iter()
                    .map(|(status, n)| format!("{n} {status}"))
                    .chain(finished.iter().map(|(status, n)| format!("{n} {status}")))
                    .collect();
                display.set_message(format!("queue: {}", parts.join(", ")));
            },
        )),
        ..Default::default()
    };
    let result = mjlink::ingest::gateway::run_with(config, &options, shutdown).await;
    bar.finish_and_clear();
    Ok(result?)
}

/// Benchmark figures on stdout: pretty JSON for scripts, else the table.
fn print_json_or_table(
    json: bool,
    value: &impl serde::Serialize,
    table: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
    } else {
        table(&mut out)?;
    }
    Ok(())
}

fn archive_line(summary: &mjlink::archive::worker::ArchiveSummary) -> String {
    format!(
        "archived {}, deduplicated {}, failed {}, to retry later {}, identical tiles {}",
        summary.archived, summary.deduplicated, summary.failed, summary.retry_later, summary.same_bytes_tiles
    )
}

async fn archive_now(config: &Config) -> anyhow::Result<mjlink::archive::worker::ArchiveSummary> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("archiving [{bar:30}] {pos}/{len} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let summary = mjlink::archive::worker::archive_configured(config, |done, seen| {
        bar.set_length(seen);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    Ok(summary)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn parse_since(text: &str) -> anyhow::Result<i64> {
    mjlink_core::text::parse_time(text)
        .with_context(|| format!("--since {text:?} is not a date like 2024-05-01"))
}

async fn backfill_channel(
    config: &Config,
    channel: mjlink_core::snowflake::Snowflake,
    after: mjlink_core::snowflake::Snowflake,
) -> anyhow::Result<()> {
    let token = config.discord.require_token()?.clone();
    let rest = mjlink::rest::Rest::new(
        &config.discord.api_base,
        token,
        mjlink::rest::RetryPolicy::default(),
    )?;
    let store = Store::open(&config.database_path)?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let pipeline = Pipeline::new(store, config.pipeline());
    let result =
        mjlink::ingest::backfill::backfill(std::sync::Arc::new(rest), pipeline, channel, after, |done| {
            let reached = done
                .last
                .and_then(|id| mjlink_core::text::format_time(id.timestamp_ms()))
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
    println!(
        "channel {channel}: {} messages in {} pages; {} applied, {} already stored, {} not from Midjourney",
        done.messages,
        done.pages,
        stats.applied,
        stats.duplicates + stats.unchanged,
        stats.ignored
    );
    if report.parents_fetched > 0 {
        println!("{} referenced parents fetched", report.parents_fetched);
    }
    // The links of a history page are fresh for about a day: archive them now.
    if config.archive.enabled {
        println!("{}", archive_line(&archive_now(config).await?));
    }
    Ok(())
}

/// A fresh scratch directory under `parent`.
fn tempfile_dir(parent: &std::path::Path) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("mjlink-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
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

fn replay_file(file: &PathBuf, replay: &mut Replay) -> anyhow::Result<()> {
    let name = file.display().to_string();
    if name == "-" {
        let stdin = std::io::stdin();
        replay.read("-", stdin.lock(), |_| {})?;
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
    replay.read(&name, reader, |bytes| bar.inc(bytes))?;
    bar.finish_and_clear();
    Ok(())
}
