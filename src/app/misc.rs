//! `doctor`, `demo`, `links`, `messages`, `gen-trace` and `bench`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{stream_rows, write_links, Outcome};
use crate::config::Config;
use crate::export::messages::{MessageRecord, MessageWriter};
use crate::export::Format;
use crate::store::{MessageFilter, OpenMode, Store};
use mjlink_core::snowflake::Snowflake;

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
    /// A new or empty folder for the demo's database and archive (refused if it holds anything).
    #[arg(long, value_name = "DIR", default_value = "mjlink-demo")]
    pub dir: PathBuf,
    /// Also serve the web UI on the demo's database while it runs (the queue moving live, then
    /// the families and their images), and keep serving after it until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// Where `--serve` listens (loopback only: the demo's server has no token).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:8080",
        requires = "serve"
    )]
    pub bind: String,
}

/// Why `--db` is refused with `demo` (its database is always DIR/demo.db, made anew).
pub fn demo_db_refused(db: &std::path::Path) -> String {
    format!(
        "--db {} does not apply to demo: the demo makes its own database, DIR/demo.db, in a new folder (choose it with --dir)",
        db.display()
    )
}

/// The whole product against the simulation, telling its story through `say`; fails when an
/// item did not finish.
/// With `--serve`, the web UI serves from the start of the demo until Ctrl-C or SIGTERM after it.
pub async fn demo(args: &DemoArgs, say: crate::demo::Say) -> anyhow::Result<Outcome> {
    let prompts = crate::demo::default_prompts();
    let items = if args.serve {
        let bind: std::net::SocketAddr = args.bind.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "--bind `{}` is not an address and port like 127.0.0.1:8080",
                args.bind
            )
        })?;
        crate::web::check_bind(bind, None).map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind} (choose another address with --bind)"))?;
        let (items, serving) = crate::demo::run_serving(&args.dir, &prompts, say.clone(), listener).await?;
        say(&format!(
            "still serving on http://{}/ (Ctrl-C stops)",
            serving.address
        ));
        super::shutdown_signal().await;
        serving.stop().await.context("the web server stopped")?;
        items
    } else {
        crate::demo::run(&args.dir, &prompts, say).await?
    };
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
    let store = existing_store(config)?;
    write_links(&store, args.format, out)?;
    Ok(Outcome::Success)
}

/// The database of `config`, which must exist (a listing never creates one), opened only
/// to read (a read-only file or folder is fine).
fn existing_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open_as(&config.database_path, OpenMode::ReadOnly)?)
}

#[derive(Debug, Clone, clap::Args)]
pub struct MessagesArgs {
    /// How rows are written: `table` (aligned, for people; long prompts cut), `jsonl` (one
    /// JSON object per line, ids as strings, absent values null) or `csv` (a header row, RFC
    /// 4180 quoting; a cell starting with = + - @ gets a leading ' so a spreadsheet does not
    /// run it as a formula).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Only messages stored with this kind: `imagine`, `blend`, an action (`upscale`,
    /// `variation`, `zoom`, `animate`...), `progress` (starts and progress), `error`,
    /// `describe`, `other` (from Midjourney but of no kind mjlink knows), `not_midjourney`,
    /// `pending` (known only from edits). `unknown` lists the format-drift samples instead:
    /// the Midjourney messages mjlink could not read that were kept (drift.keep_samples).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only messages of this channel (its id).
    #[arg(long, value_name = "ID", value_parser = channel_id)]
    pub channel: Option<Snowflake>,
    /// Print each message as a gateway dispatch line (`{"op":0,"t":"MESSAGE_CREATE","d":{..}}`)
    /// instead of a row: what `mjlink replay` reads, to make fixtures of. A message is the
    /// JSON mjlink stored (merged from all it saw; fields it does not read are not kept), a
    /// deleted one followed by its MESSAGE_DELETE; with `--kind unknown`, the samples as kept
    /// (a payload that did not decode is there exactly as received).
    #[arg(long, conflicts_with = "format")]
    pub raw: bool,
}

fn channel_id(text: &str) -> Result<Snowflake, String> {
    Snowflake::parse(text.trim()).ok_or_else(|| format!("`{text}` is not a channel id (a number)"))
}

/// The stored kind of the format-drift samples in `mjlink messages --kind`.
const UNKNOWN: &str = "unknown";

/// Every stored message (or the format-drift samples) as rows, or as dispatch lines with
/// `--raw`, streamed from an existing database. When a kind selects nothing and no message
/// has it, stderr lists the kinds stored (a typo would otherwise print nothing; a kind mjlink
/// makes but this database does not hold yet is no error).
pub fn messages(config: &Config, args: &MessagesArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let store = existing_store(config)?;
    let drift = args.kind.as_deref() == Some(UNKNOWN);
    let filter = MessageFilter {
        kind: args.kind.as_deref().filter(|_| !drift),
        channel_id: args.channel,
    };
    let mut rows = 0u64;
    if args.raw && drift {
        let mut out = std::io::BufWriter::new(out);
        stream_rows(
            |visit| store.for_each_drift_sample(args.channel, visit),
            |(_, raw)| {
                rows += 1;
                writeln!(out, "{raw}")
            },
        )?;
        out.flush()?;
    } else if args.raw {
        let mut out = std::io::BufWriter::new(out);
        stream_rows(
            |visit| store.for_each_message_doc(filter, visit),
            |stored| {
                rows += 1;
                write_dispatch_lines(&mut out, &stored)
            },
        )?;
        out.flush()?;
    } else {
        let mut writer = MessageWriter::new(std::io::BufWriter::new(out), args.format);
        let write = |message| {
            rows += 1;
            writer.write(&MessageRecord::from(message))
        };
        if drift {
            stream_rows(|visit| store.for_each_drift_message(filter, visit), write)?;
        } else {
            stream_rows(|visit| store.for_each_message(filter, visit), write)?;
        }
        writer.finish()?;
    }
    if let (0, Some(kind)) = (rows, args.kind.as_deref().filter(|_| !drift)) {
        // Nothing printed: say which kinds there are (a typo would otherwise print nothing).
        let stored: Vec<String> = store.count_by_kind()?.into_iter().map(|(name, _)| name).collect();
        if !stored.iter().any(|name| name == kind) {
            eprintln!(
                "mjlink: no message has the kind `{kind}`; the kinds stored are {} (and `unknown`: the format-drift samples)",
                stored.join(", ")
            );
        }
    }
    Ok(Outcome::Success)
}

/// A stored message as the dispatch lines that make it again: a create (an update when only
/// its edits were seen), then its deletion.
fn write_dispatch_lines(out: &mut impl Write, stored: &crate::store::MessageDoc) -> std::io::Result<()> {
    use mjlink_core::event::to_dispatch_line;
    let message = &stored.doc.message;
    let event_type = if stored.seen {
        "MESSAGE_CREATE"
    } else {
        "MESSAGE_UPDATE"
    };
    writeln!(out, "{}", to_dispatch_line(event_type, message)?)?;
    if stored.deleted {
        let deletion = serde_json::json!({"id": message.id, "channel_id": message.channel_id});
        writeln!(out, "{}", to_dispatch_line("MESSAGE_DELETE", &deletion)?)?;
    }
    Ok(())
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
    /// Benchmark the web gallery instead of replay: latency under concurrent clients, next
    /// to a plain static file handler serving the same files.
    #[arg(long, conflicts_with = "archive")]
    pub web: bool,
    /// Events in the database the web benchmark serves (with --web).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Requests per endpoint (with --web).
    #[arg(long, default_value_t = 4000)]
    pub requests: usize,
    /// Concurrent clients (with --web).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
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
    if args.web {
        let options = crate::bench::web::WebBenchOptions {
            events: args.events,
            clients: args.clients.max(1),
            requests: args.requests.max(1),
            seed: args.seed,
            ..Default::default()
        };
        let row = crate::bench::web::run(&scratch, &options, |doing| eprintln!("bench: {doing}...")).await;
        let _ = std::fs::remove_dir_all(&scratch);
        let row = row?;
        return json_or_table(args.json, out, &row, |out| {
            crate::bench::web::write_table(out, &row)
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
