//! `lineage`, `search` and `stats`: the answers of the slash commands and of the web pages
//! ([`crate::commands::answers`]), on the command line, as text or one JSON document; and
//! `link set|clear`, a person settling what the linker refused to guess.

use std::io::Write;

use super::Outcome;
use crate::commands::answers;
use crate::config::Config;
use crate::store::{OpenMode, SearchFilter, Store};
use mjlink_core::snowflake::Snowflake;
use mjlink_core::text::for_terminal;

/// Nodes of a family shown at most (as `/lineage` does, more generously).
const FAMILY_LIMIT: usize = 500;

#[derive(Debug, Clone, clap::Args)]
pub struct LineageArgs {
    /// A message id, or a Discord message link (Copy Message Link).
    pub message: String,
    /// Print one JSON document (ids as strings) instead of the tree.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// The words every prompt found contains.
    #[arg(required = true)]
    pub words: Vec<String>,
    /// Only prompts of this user (id).
    #[arg(long, value_name = "ID", value_parser = id)]
    pub user: Option<Snowflake>,
    /// Only prompts in this channel (id).
    #[arg(long, value_name = "ID", value_parser = id)]
    pub channel: Option<Snowflake>,
    /// Only prompts since this date (2024-05-01) or time (RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Page (from 0) of --per-page results, newest first.
    #[arg(long, default_value_t = 0)]
    pub page: usize,
    #[arg(long, default_value_t = 20)]
    pub per_page: usize,
    /// Print one JSON document (ids as strings) instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// Print one JSON document instead of lines.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn id(text: &str) -> Result<Snowflake, String> {
    Snowflake::parse(text.trim()).ok_or_else(|| format!("`{text}` is not an id (a number)"))
}

/// The database, read only; a missing one is refused (never created empty).
fn read_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open_as(&config.database_path, OpenMode::ReadOnly)?)
}

/// `mjlink lineage <id|link>`: the whole family of a message.
pub fn lineage(config: &Config, args: &LineageArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let (_, asked) = answers::parse_message_ref(&args.message).map_err(anyhow::Error::msg)?;
    let store = read_store(config)?;
    let family = answers::family(&store, asked, FAMILY_LIMIT)?.map_err(anyhow::Error::msg)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &family)?;
        writeln!(out)?;
        return Ok(Outcome::Success);
    }
    let root = &family.nodes[0].message;
    writeln!(
        out,
        "family of {asked}: {}",
        for_terminal(root.prompt.as_deref().unwrap_or("(no prompt)"))
    )?;
    for node in &family.nodes {
        let message = &node.message;
        let mut line = format!(
            "{}{} {}",
            "  ".repeat(node.depth),
            answers::node_name(message),
            message.message_id
        );
        if let Some(link) = node.link.as_ref().filter(|_| node.depth > 0) {
            line.push_str(&format!(" [{}", link.signal.as_deref().unwrap_or(&link.status)));
            if let Some(note) = &link.manual {
                let when = mjlink_core::text::format_time(note.set_at_ms).unwrap_or_default();
                line.push_str(&format!(" by {} at {when}", note.set_by));
            }
            line.push(']');
        }
        if let Some(user) = message.user_id {
            line.push_str(&format!(" user {user}"));
        }
        if let Some(when) = &message.posted_at {
            line.push_str(&format!(" {when}"));
        }
        if message.message_id == asked {
            line.push_str("  <- asked");
        }
        writeln!(out, "{}", for_terminal(&line))?;
    }
    if let Some(link) = &family.asked_link {
        match link.status.as_str() {
            "ambiguous" => writeln!(
                out,
                "ambiguous: {asked} fits several parents equally; mjlink does not guess: {} (settle it with `mjlink link set {asked} PARENT`)",
                link.candidates.iter().map(Snowflake::to_string).collect::<Vec<_>>().join(", ")
            )?,
            "unresolved" => writeln!(out, "unresolved: no parent of {asked} is known")?,
            _ => {}
        }
    }
    if family.truncated {
        writeln!(out, "(cut at {FAMILY_LIMIT} messages)")?;
    }
    Ok(Outcome::Success)
}

/// `mjlink search WORDS`: prompts matching every word, newest first.
pub fn search(config: &Config, args: &SearchArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let since_ms = match &args.since {
        Some(day) => Some(
            mjlink_core::text::parse_time(day)
                .ok_or_else(|| anyhow::anyhow!("--since {day:?} is not a date like 2024-05-01"))?,
        ),
        None => None,
    };
    let filter = SearchFilter {
        user_id: args.user,
        channel_id: args.channel,
        since_ms,
    };
    let words = args.words.join(" ");
    let store = read_store(config)?;
    let Some(page) = answers::search_page(&store, &words, &filter, args.page, args.per_page.clamp(1, 1000))?
    else {
        anyhow::bail!("give at least one word to search for");
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &page)?;
        writeln!(out)?;
        return Ok(Outcome::Success);
    }
    writeln!(
        out,
        "{} {:?} (page {} of {})",
        page.matches(),
        for_terminal(&words),
        page.page + 1,
        page.pages.max(1)
    )?;
    for hit in &page.hits {
        let when = hit
            .posted_ms
            .and_then(mjlink_core::text::format_time)
            .unwrap_or_else(|| "-".to_string());
        let user = hit.user_id.map_or_else(|| "-".to_string(), |u| u.to_string());
        writeln!(
            out,
            "{} {:<10} {} user {user}  {}",
            hit.message_id,
            hit.kind,
            when,
            for_terminal(&hit.prompt)
        )?;
    }
    Ok(Outcome::Success)
}

/// `mjlink stats`: what the database holds.
pub fn stats(config: &Config, args: &StatsArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let store = read_store(config)?;
    let stats = answers::stats_figures(&store)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &stats)?;
        writeln!(out)?;
        return Ok(Outcome::Success);
    }
    let list = answers::name_counts;
    let archive = &stats.archive;
    writeln!(out, "grids               {}", stats.grids)?;
    writeln!(out, "results by action   {}", list(&stats.results_by_action))?;
    writeln!(out, "links by signal     {}", list(&stats.links_by_signal))?;
    writeln!(out, "ambiguous           {}", stats.ambiguous)?;
    writeln!(out, "unresolved          {}", stats.unresolved)?;
    writeln!(
        out,
        "archive             archived {} ({} bytes), pending {}, failed {}",
        archive.archived, archive.bytes, archive.pending, archive.failed
    )?;
    writeln!(
        out,
        "queue               {}{}",
        list(&stats.queue),
        if stats.queue_paused { " (paused)" } else { "" }
    )?;
    writeln!(
        out,
        "unknown formats     {}",
        for_terminal(&stats.unknown_formats)
    )?;
    writeln!(
        out,
        "notifications       {}",
        for_terminal(&answers::notifications_line(
            &stats.notifications,
            &stats.dead_letters
        ))
    )?;
    for dead in &stats.dead_letters {
        writeln!(
            out,
            "  dead letter       {} {} {} ({} attempts): {}",
            for_terminal(&dead.target),
            dead.event,
            dead.key,
            dead.attempts,
            for_terminal(dead.last_error.as_deref().unwrap_or("no reason recorded"))
        )?;
    }
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum LinkCommand {
    /// Link CHILD to PARENT by hand (signal `manual`): settles an ambiguous, unresolved or
    /// heuristic link; a link by an exact signal from Discord is never overridden, and a
    /// later exact signal replaces the manual link.
    Set {
        #[arg(value_parser = id)]
        child: Snowflake,
        #[arg(value_parser = id)]
        parent: Snowflake,
        /// Who sets it (default: $USER, else "cli").
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Remove CHILD's manual link (only a manual one): the fallback decides again.
    Clear {
        #[arg(value_parser = id)]
        child: Snowflake,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct LinkArgs {
    #[command(subcommand)]
    pub action: LinkCommand,
}

/// `mjlink link set|clear`: through the pipeline, the only writer of links. `os_user` is
/// `$USER` as the binary read it; `now_ms` the clock's time.
pub fn link(
    config: &Config,
    args: &LinkArgs,
    os_user: Option<String>,
    now_ms: i64,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let store = Store::open_as(&config.database_path, OpenMode::Existing)?;
    let mut pipeline = crate::ingest::pipeline::Pipeline::new(
        store,
        crate::ingest::pipeline::PipelineConfig::from_config(config),
    );
    match &args.action {
        LinkCommand::Set { child, parent, by } => {
            let by = by
                .clone()
                .or(os_user)
                .map(|name| name.trim().to_string())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "cli".to_string());
            pipeline
                .set_manual_link(*child, *parent, &by, now_ms)?
                .map_err(|reason| anyhow::anyhow!("cannot link {child} to {parent}: {reason}"))?;
            writeln!(
                out,
                "{child} linked to {parent} (manual, by {})",
                for_terminal(&by)
            )?;
        }
        LinkCommand::Clear { child } => {
            pipeline
                .clear_manual_link(*child)?
                .map_err(|reason| anyhow::anyhow!("cannot clear the link of {child}: {reason}"))?;
            let now = pipeline.store().get_link(*child)?;
            let status = now.map_or_else(
                || "unresolved".to_string(),
                |link| match (link.decision.parent, link.decision.signal) {
                    (Some(parent), Some(signal)) => format!("linked to {parent} ({})", signal.as_str()),
                    _ => link.decision.status.as_str().to_string(),
                },
            );
            writeln!(out, "manual link of {child} cleared; now {status}")?;
        }
    }
    pipeline.into_store()?;
    Ok(Outcome::Success)
}
