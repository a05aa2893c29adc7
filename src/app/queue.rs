//! `queue add|list|show|cancel|run`: the prompt queue. `now_ms` is passed in (the binary
//! reads the clock).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::{shutdown_signal, write_jsonl, Bar, ListFormat, Outcome, Progress};
use crate::config::Config;
use crate::ingest::gateway::{self, RunOptions};
use crate::queue::runner::{self, Cancelled, TickReport};
use crate::queue::{view, Status, Upscales};
use crate::store::{OpenMode, Store};
use mjlink_core::text::for_terminal;

#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// The prompt, e.g. "a glass whale --ar 16:9 --v 7".
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub prompt: Option<String>,
    /// One prompt per line.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Upscales to ask for once the grid is in: all, none, or tiles like 1,3.
    #[arg(long, default_value = "all")]
    pub upscale: String,
    /// Higher goes first.
    #[arg(long, default_value_t = 0)]
    pub priority: i64,
}

/// Queues the prompt, or every prompt of the file.
pub fn add(config: &Config, args: &AddArgs, now_ms: i64, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let mut store = Store::open(&config.database_path)?;
    let upscales = Upscales::parse(&args.upscale)
        .map_err(|reason| anyhow::anyhow!("--upscale {}: {reason}", args.upscale))?;
    let prompts = match (&args.prompt, &args.file) {
        (Some(prompt), _) => vec![prompt.clone()],
        (None, Some(file)) => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            crate::queue::prompts_from_text(&text)
        }
        (None, None) => Vec::new(),
    };
    if prompts.iter().any(|prompt| prompt.trim().is_empty()) || prompts.is_empty() {
        anyhow::bail!("no prompt to add");
    }
    let added = runner::add(&mut store, &prompts, &upscales, args.priority, now_ms)?;
    for item in &added {
        writeln!(out, "{}  {}", item.id, for_terminal(&item.prompt))?;
    }
    writeln!(out, "added {} item(s), upscales: {upscales}", added.len())?;
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// queued, submitted, rendering, grid_done, upscaling, done, partial, failed or cancelled
    /// (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
}

/// The items (all, or those with the statuses asked for), in queue order.
pub fn list(config: &Config, args: &ListArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let store = Store::open_as(&config.database_path, OpenMode::ReadOnly)?;
    let mut statuses = Vec::new();
    for name in &args.status {
        statuses.push(Status::from_name(name.trim()).ok_or_else(|| {
            anyhow::anyhow!(
                "--status {name}: not a status (queued, submitted, rendering, grid_done, upscaling, done, partial, failed, cancelled)"
            )
        })?);
    }
    let items = store.queue_items(&statuses)?;
    match args.format {
        ListFormat::Table => write_for_terminal(out, &view::list_table(&items))?,
        ListFormat::Jsonl => write_jsonl(out, &items)?,
    }
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    pub id: String,
    /// As JSON.
    #[arg(long)]
    pub json: bool,
}

fn not_found(id: &str) -> anyhow::Error {
    anyhow::anyhow!("no queue item has the id {id:?} (or the prefix is not unique)")
}

/// The id as given, without surrounding spaces; an empty one is refused (it would be a
/// prefix of every id).
fn given_id(id: &str) -> anyhow::Result<&str> {
    let id = id.trim();
    anyhow::ensure!(
        !id.is_empty(),
        "the queue item id is empty: give an id or a unique prefix of one (`mjlink queue list` shows them)"
    );
    Ok(id)
}

/// One item with its history.
pub fn show(config: &Config, args: &ShowArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let store = Store::open_as(&config.database_path, OpenMode::ReadOnly)?;
    let id = given_id(&args.id)?;
    let item = store.queue_item(id)?.ok_or_else(|| not_found(id))?;
    let history = store.queue_history(&item.id)?;
    if args.json {
        let value = serde_json::json!({"item": item, "history": history});
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        write_for_terminal(out, &view::show_text(&item, &history))?;
    }
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Args)]
pub struct CancelArgs {
    pub id: String,
}

/// Cancels an unfinished item; fails when it had already finished.
pub fn cancel(
    config: &Config,
    args: &CancelArgs,
    now_ms: i64,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let id = given_id(&args.id)?;
    let mut store = Store::open_as(&config.database_path, OpenMode::Existing)?;
    match runner::cancel(&mut store, id, now_ms)? {
        Cancelled::NotFound => Err(not_found(id)),
        Cancelled::Now(item) => {
            writeln!(out, "{} cancelled", item.id)?;
            Ok(Outcome::Success)
        }
        Cancelled::AlreadyFinished(item) => {
            writeln!(out, "{} had already finished: {}", item.id, item.status)?;
            Ok(Outcome::Failure)
        }
    }
}

/// Runs the bot with the queue driven until every item is finished (or Ctrl-C), each
/// transition and the counts on the queue bar; then prints the list.
pub async fn run(config: &Config, progress: Progress<'_>, out: &mut impl Write) -> anyhow::Result<Outcome> {
    // The database opens before the bot starts (its queue, with no database, is empty).
    drop(Store::open_as(&config.database_path, OpenMode::Existing)?);
    let bar = progress(Bar::Queue);
    let display = bar.clone();
    let finished = Mutex::new(BTreeMap::<String, usize>::new());
    let options = RunOptions {
        drive_queue: true,
        stop_when_queue_done: true,
        on_queue_tick: Some(Arc::new(move |report: &TickReport| {
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
        })),
        ..Default::default()
    };
    let result = gateway::run_with(config, &options, shutdown_signal()).await;
    bar.finish_and_clear();
    result?;
    let store = Store::open(&config.database_path)?;
    write_for_terminal(out, &view::list_table(&store.queue_items(&[])?))?;
    Ok(Outcome::Success)
}

/// A text of lines for people, each line shown through [`for_terminal`] (prompts and
/// Midjourney's error texts are untrusted).
fn write_for_terminal(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    for line in text.lines() {
        writeln!(out, "{}", for_terminal(line))?;
    }
    Ok(())
}
