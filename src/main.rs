//! The `mjlink` command: parses arguments, sets up logging, and calls one function of
//! [`mjlink::app`] per command, with the async runtime and the progress bars it needs.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use mjlink::app::{answers, archive, import, ingest, misc, queue, web, Bar, Outcome};
use mjlink::config::Config;
use mjlink_core::text::for_terminal;

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
    /// JSON array of messages as GET /channels/{id}/messages returns (read element by
    /// element), with or without a UTF-8 byte order mark. '-' reads stdin. Replaying the
    /// same file again changes nothing.
    ///
    /// A line or array element that does not decode is skipped, counted and shown with its
    /// place (file, line or element); everything else still counts. A file that cannot be
    /// read is reported and the others are read whole. Exit status: 0 when everything was
    /// read, 3 when some lines or elements were malformed (skipped), 1 when a file could not
    /// be read or on another error.
    Replay(ingest::ReplayArgs),
    /// Run the bot on the Discord gateway: watch the configured channels, link every result
    /// as it arrives, and catch up on what was missed while offline.
    ///
    /// Needs discord.token (or MJLINK_DISCORD_TOKEN) and the Message Content intent. Stops
    /// cleanly on Ctrl-C or SIGTERM: everything received is stored first.
    Run,
    /// Run like `run`, and also append every gateway dispatch received to FILE, one JSON
    /// object per line, as `mjlink replay` reads it: real sessions become fixtures.
    Record(ingest::RecordArgs),
    /// Import history exported by another tool through the same pipeline.
    Import {
        #[command(subcommand)]
        source: ImportCommand,
    },
    /// Check the configuration, the database and that the API base answers; print what is
    /// wrong and how to fix it. Exits non-zero when a check fails.
    Doctor,
    /// Import a channel's existing history through the same pipeline.
    ///
    /// Pages forward through GET /channels/{id}/messages from --since (or the channel's
    /// beginning with --all), oldest first, honouring Discord's rate limits. Safe to repeat:
    /// what is already stored is skipped.
    Backfill(ingest::BackfillArgs),
    /// Download every pending grid and result image into the archive (archive.dir).
    ///
    /// Each file is streamed to a temporary file, hashed, checked to be an image, fsynced and
    /// renamed into place before it is marked archived. A local or temporary failure (disk,
    /// permissions, 429, 5xx, a stall) keeps the image queued with its reason and a next-try
    /// time, however often it happens; only a permanent answer about the file (gone after its
    /// link was refreshed, not an image, over the size cap) marks it failed (--retry-failed
    /// queues those again). With a bot token configured, expired links are refreshed through
    /// Discord and tried again. One pass at a time per archive folder.
    Archive(archive::ArchiveArgs),
    /// List every grid and result image with its archive state.
    Images(archive::ImagesArgs),
    /// Rehash every archived file and report missing or corrupt ones (non-zero exit if any).
    Verify(archive::VerifyArgs),
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
    /// archives the images, and prints each item's lineage in DIR/demo.db and DIR/archive.
    /// DIR must be new or empty: the demo never touches a folder that holds anything (--db
    /// does not apply).
    Demo(misc::DemoArgs),
    /// Export the links (one row per result: its parent, action, tile, signal and status).
    Links(misc::LinksArgs),
    /// List every stored message and what mjlink made of it: its kind and action, tile,
    /// prompt and parameters, user, job UUID, its link (parent, signal, status) and, for a
    /// start/progress message, its outcome and final.
    ///
    /// Rows stream in message id order (the database is never loaded whole). `--kind unknown
    /// --raw` prints the Midjourney messages mjlink could not read, kept to become fixtures.
    Messages(misc::MessagesArgs),
    /// Write a synthetic Midjourney trace (gateway dispatch lines) and its ground truth.
    ///
    /// Interleaved users and channels, identical-prompt bursts, every result kind, noise,
    /// duplicates and out-of-order events; deterministic for a given seed.
    GenTrace(misc::GenTraceArgs),
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
    Bench(misc::BenchArgs),
    /// Serve the web gallery: families as thumbnails, each family's tree with its images and
    /// links, prompt search, the stats, and a JSON API under /api/.
    ///
    /// Listens on web.bind (127.0.0.1:8080 by default; --bind overrides). Pages work without
    /// JavaScript; files are served by attachment id from archive.dir only.
    Serve(web::ServeArgs),
    /// The whole family of a message (its grid and every result under it, with how each
    /// is linked), as `/lineage` and the web family page show it.
    Lineage(answers::LineageArgs),
    /// Prompts matching every word, newest first, as `/search` finds them.
    Search(answers::SearchArgs),
    /// What the database holds, as `/stats` and the web stats page count it.
    Stats(answers::StatsArgs),
    /// Settle what the linker refused to guess: `link set CHILD PARENT`, `link clear CHILD`.
    Link(answers::LinkArgs),
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// DiscordChatExporter JSON exports (2.37 to 2.47), and the media they downloaded.
    ///
    /// Each message goes through the same pipeline as the bot's own traffic (replies are exact
    /// links; `@Name` mentions are put back as `<@id>` from the export's mentions; buttons,
    /// interaction_metadata and deleted messages are not in an export and are not invented).
    /// Each attachment the export downloaded (`--media`) is adopted into archive.dir when its
    /// bytes are an image or video (an HTTP error body saved under an image's name is counted,
    /// never adopted), hashed and stored once. Paths are read relative to the export's folder,
    /// never outside it; with --media-dir, files are looked for there by name only. Importing
    /// the same export again changes nothing. Exit status as `replay`: 0, 3 when some messages
    /// were malformed (skipped, each shown with its place), 1 when a file could not be read or
    /// is not an export.
    Dce(import::DceArgs),
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Add one prompt, or every line of a file (blank lines and # comments skipped). The
    /// prompt is sent exactly as written, parameters included.
    Add(queue::AddArgs),
    /// List the items (all, or those with --status), in queue order.
    List(queue::ListArgs),
    /// One item: the request as asked, its grid and upscales, the last error, every
    /// transition with its time. ID may be a unique prefix.
    Show(queue::ShowArgs),
    /// Cancel an unfinished item (a job already at Midjourney still finishes there, but is
    /// no longer collected).
    Cancel(queue::CancelArgs),
    /// Drive the queue until every item is finished (or Ctrl-C): the live bot runs too, to
    /// see Midjourney's answers. Progress on a terminal.
    Run,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        // The reader of the output went away (`mjlink images | head`): it has what it wanted.
        Err(error) if mjlink::app::is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // One sentence, each cause once, shown (never obeyed) by the terminal.
            let line = mjlink::causes::of_anyhow(&error);
            let _ = writeln!(std::io::stderr(), "mjlink: {}", for_terminal(&line));
            ExitCode::FAILURE
        }
    }
}

/// Logging as `log.filter` says (`RUST_LOG` wins when it is a valid filter); a `log.filter`
/// that is not a filter is refused, never silently replaced.
fn init_tracing(configured: &str, quiet: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(configured).map_err(|error| {
        anyhow::anyhow!(
            "config key `log.filter` (MJLINK_LOG_FILTER) {configured:?} is not a log filter ({error}); e.g. \"warn,mjlink=info\""
        )
    })?;
    let filter = match tracing_subscriber::EnvFilter::try_from_env("RUST_LOG") {
        Ok(from_env) => from_env,
        Err(_) if quiet => tracing_subscriber::EnvFilter::new("error"),
        Err(_) => filter,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(mjlink::logging::line)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(())
}

/// The one async runtime, for a command that needs it.
fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(future)
}

/// The bars a command asks for: drawn on a terminal, hidden otherwise (and for replayed
/// files of 4 MiB or less).
fn progress(bar: Bar) -> ProgressBar {
    let small = matches!(bar, Bar::Replay { bytes, .. } if bytes <= 4 * 1024 * 1024);
    if !std::io::stderr().is_terminal() || small {
        return ProgressBar::hidden();
    }
    let (shown, template, ticking) = match bar {
        Bar::Archive => (
            ProgressBar::new(0),
            "archiving [{bar:30}] {pos}/{len} [{elapsed}]",
            false,
        ),
        Bar::Backfill => (ProgressBar::new_spinner(), "{spinner} {msg} [{elapsed}]", true),
        Bar::Queue => (ProgressBar::new_spinner(), "{spinner} {msg}", true),
        Bar::Replay { name, bytes } => (
            ProgressBar::new(bytes).with_message(name),
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
            false,
        ),
    };
    shown.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    if ticking {
        shown.enable_steady_tick(std::time::Duration::from_millis(200));
    }
    shown
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    mjlink::config::check_environment(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()))?;
    let mut config = Config::load(cli.config.as_deref(), |key| std::env::var(key).ok())?;
    if let (Command::Demo(_), Some(db)) = (&cli.command, &cli.db) {
        anyhow::bail!(misc::demo_db_refused(db));
    }
    if let Some(db) = cli.db {
        config.database_path = db;
    }
    // The demo tells its own story; its log stays quiet unless asked for.
    let demo_quiet =
        matches!(cli.command, Command::Demo(_)) && std::env::var_os("MJLINK_LOG_FILTER").is_none();
    mjlink::logging::hide_secrets(&config);
    init_tracing(&config.log_filter, demo_quiet)?;

    let config = &config;
    // Not locked: the demo's story is printed from its tasks.
    let out = &mut std::io::stdout();
    let now_ms = mjlink::clock::now_ms();
    match cli.command {
        Command::Replay(args) => block_on(ingest::replay(config, &args, &progress, out)),
        Command::Run => block_on(ingest::run(config)),
        Command::Record(args) => block_on(ingest::record(config, &args)),
        Command::Import {
            source: ImportCommand::Dce(args),
        } => block_on(import::dce(config, &args, &progress, out)),
        Command::Doctor => block_on(misc::doctor(config, cli.config.as_deref(), out)),
        Command::Backfill(args) => block_on(ingest::backfill(config, &args, &progress, out)),
        Command::Archive(args) => block_on(archive::archive(config, &args, &progress, out)),
        Command::Images(args) => archive::images(config, &args, out),
        Command::Verify(args) => block_on(archive::verify(config, &args, &progress, out)),
        Command::Queue { action } => match action {
            QueueCommand::Add(args) => queue::add(config, &args, now_ms, out),
            QueueCommand::List(args) => queue::list(config, &args, out),
            QueueCommand::Show(args) => queue::show(config, &args, out),
            QueueCommand::Cancel(args) => queue::cancel(config, &args, now_ms, out),
            QueueCommand::Run => block_on(queue::run(config, &progress, out)),
        },
        Command::Demo(args) => {
            let say: mjlink::demo::Say = std::sync::Arc::new(|line: &str| println!("{line}"));
            block_on(misc::demo(&args, say))
        }
        Command::Links(args) => misc::links(config, &args, out),
        Command::Messages(args) => misc::messages(config, &args, out),
        Command::GenTrace(args) => misc::gen_trace(&args, out),
        Command::Bench(args) => block_on(misc::bench(&args, out)),
        Command::Serve(args) => block_on(web::serve(config, &args, out)),
        Command::Lineage(args) => answers::lineage(config, &args, out),
        Command::Search(args) => answers::search(config, &args, out),
        Command::Stats(args) => answers::stats(config, &args, out),
        Command::Link(args) => answers::link(config, &args, std::env::var("USER").ok(), now_ms, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
