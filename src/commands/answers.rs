//! The answers of the slash commands, built from the database. No Discord types here: each
//! function takes the store and the command's arguments and returns a [`Reply`].

use std::fmt::Write as _;
use std::path::Path;

use super::{cut, Button, Embed, File, FileData, Reply};
use crate::export::{LinkRecord, LinkWriter};
use crate::queue::{runner, view, Status, Upscales};
use crate::store::{FamilyMessage, SearchFilter, Store, StoreError};
use mjlink_core::kinds;
use mjlink_core::snowflake::Snowflake;

/// What every answer may need besides its arguments.
pub struct Ctx<'a> {
    pub store: &'a Store,
    /// The server the command was used in (`None` in a direct message).
    pub guild_id: Option<Snowflake>,
    pub now_ms: i64,
}

/// Results per page of `/search`.
pub const PAGE: usize = 5;

/// A message link `https://discord.com/channels/{guild|@me}/{channel}/{message}` (also
/// ptb./canary. and discordapp.com) or a bare id: (guild, message).
pub fn parse_message_ref(input: &str) -> Result<(Option<Snowflake>, Snowflake), String> {
    let input = input.trim().trim_start_matches('<').trim_end_matches('>');
    if let Some(id) = Snowflake::parse(input) {
        return Ok((None, id));
    }
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| input.strip_prefix(scheme))
        .and_then(|rest| {
            [
                "discord.com/",
                "ptb.discord.com/",
                "canary.discord.com/",
                "discordapp.com/",
            ]
            .iter()
            .find_map(|host| rest.strip_prefix(host))
        })
        .and_then(|rest| rest.strip_prefix("channels/"));
    let parts: Vec<&str> = rest.map(|rest| rest.split('/').collect()).unwrap_or_default();
    match parts.as_slice() {
        [guild, channel, message] if Snowflake::parse(channel).is_some() => {
            let message = Snowflake::parse(message.split(['?', '#']).next().unwrap_or(""))
                .ok_or_else(|| "That link does not end with a message id.".to_string())?;
            let guild = if *guild == "@me" {
                None
            } else {
                Some(Snowflake::parse(guild).ok_or_else(|| "That link has no server id.".to_string())?)
            };
            Ok((guild, message))
        }
        _ => Err("Give a message link (Copy Message Link) or a message id.".to_string()),
    }
}

fn jump(guild: Option<Snowflake>, channel: Option<Snowflake>, message: Snowflake) -> String {
    let guild = guild.map_or_else(|| "@me".to_string(), |g| g.to_string());
    let channel = channel.map_or_else(|| "0".to_string(), |c| c.to_string());
    format!("https://discord.com/channels/{guild}/{channel}/{message}")
}

/// How a message is linked to its parent, as the family shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeLink {
    pub parent: Option<Snowflake>,
    pub action: String,
    pub tile: Option<u8>,
    /// `reference`, `interaction`, `heuristic`... (`None` when not linked).
    pub signal: Option<String>,
    /// `linked`, `ambiguous` or `unresolved`.
    pub status: String,
    /// The parents an ambiguous result fits equally.
    pub candidates: Vec<Snowflake>,
    /// Who set a `manual` link, and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual: Option<crate::store::ManualNote>,
}

impl NodeLink {
    fn of(link: &crate::store::LinkRow, store: &Store) -> Result<NodeLink, StoreError> {
        let manual = if link.decision.is_manual() {
            store.manual_note(link.child_id)?
        } else {
            None
        };
        Ok(NodeLink {
            parent: link.decision.parent,
            action: link.action.as_str().to_string(),
            tile: link.tile,
            signal: link.decision.signal.map(|signal| signal.as_str().to_string()),
            status: link.decision.status.as_str().to_string(),
            candidates: link.decision.candidates.clone(),
            manual,
        })
    }
}

/// One message of a family: what it is, how it is linked, its files and its Discord link.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FamilyNode {
    /// 0 for the root, 1 for its results, 2 for theirs...
    pub depth: usize,
    #[serde(flatten)]
    pub message: FamilyMessage,
    /// `None` for a root grid.
    pub link: Option<NodeLink>,
    /// Every file of the message by attachment id (archived or not).
    pub attachments: Vec<crate::store::MessageFile>,
    pub jump_url: String,
}

/// The whole family of a message: the grid it started from and every result under it,
/// depth first (each result right under its parent).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Family {
    /// The message asked about (any member of the family).
    pub asked: Snowflake,
    /// How the asked message is linked (`None` for a root grid).
    pub asked_link: Option<NodeLink>,
    /// The root first, then every result depth first.
    pub nodes: Vec<FamilyNode>,
    /// Whether the tree was cut at `limit` nodes.
    pub truncated: bool,
}

/// The family of message `asked`, up to `limit` nodes: `Err(reason)` is the one sentence
/// saying why there is none. The answer of `/lineage`, of the web gallery's family page and
/// of `/api/family`.
pub fn family(store: &Store, asked: Snowflake, limit: usize) -> Result<Result<Family, String>, StoreError> {
    let Some(place) = store.message_place(asked)? else {
        return Ok(Err(format!(
            "I have no record of message {asked}: it is not a Midjourney message I have seen (try `mjlink backfill` for older history)."
        )));
    };
    if place.kind == "not_midjourney" || place.kind == "pending" {
        return Ok(Err(format!("Message {asked} is not from Midjourney.")));
    }
    // A start (progress) message belongs to the family of the final that completed it.
    let mut root = match place.kind.as_str() {
        "progress" => store
            .progress_row(asked)?
            .and_then(|start| start.final_id)
            .unwrap_or(asked),
        _ => asked,
    };
    // Up to the root: the grid the family started from.
    let mut asked_link = None;
    for depth in 0..8 {
        let Some(link) = store.parent_of(root)? else {
            break;
        };
        if depth == 0 {
            asked_link = Some(NodeLink::of(&link, store)?);
        }
        match link.decision.parent {
            Some(parent) if link.decision.status == mjlink_core::link::Status::Linked => {
                if store.message_place(parent)?.is_none() {
                    break;
                }
                root = parent;
            }
            _ => break,
        }
    }
    // Down from the root, breadth first: every result and the results of results.
    let mut nodes: Vec<(usize, FamilyMessage)> = Vec::new();
    let mut frontier = vec![(0usize, root)];
    let mut root_message = None;
    let mut truncated = false;
    while let Some((depth, id)) = frontier.pop() {
        if nodes.len() >= limit {
            truncated = true;
            break;
        }
        let Some(family) = store.family_record(id)? else {
            continue;
        };
        if depth == 0 {
            root_message = Some(family.grid.clone());
        }
        let mut results = family.results;
        results.sort_by_key(|result| (result.tile, result.message_id));
        for result in results.into_iter().rev() {
            frontier.push((depth + 1, result.message_id));
            nodes.push((depth + 1, result));
        }
    }
    let Some(root_message) = root_message else {
        return Ok(Err(format!("I have no record of message {asked}.")));
    };
    // Children were pushed in reverse: put each under its parent in order.
    let ordered = order_tree(&root_message, nodes, store)?;
    let mut out = Vec::with_capacity(ordered.len() + 1);
    for (depth, message) in std::iter::once((0, root_message)).chain(ordered) {
        let link = store
            .parent_of(message.message_id)?
            .map(|link| NodeLink::of(&link, store))
            .transpose()?;
        out.push(FamilyNode {
            depth,
            link,
            attachments: store.message_files(message.message_id)?,
            jump_url: jump(message.guild_id, message.channel_id, message.message_id),
            message,
        });
    }
    Ok(Ok(Family {
        asked,
        asked_link,
        nodes: out,
        truncated,
    }))
}

/// The short name of a node: `grid`, `U2`, `video clip 1`, or its kind.
pub fn node_name(message: &FamilyMessage) -> String {
    match (message.kind.as_str(), message.tile) {
        ("upscale", Some(tile)) => format!("U{tile}"),
        ("video_clip", Some(cell)) => format!("video clip {cell}"),
        (kind, _) if kinds::shape_of_name(kind) == kinds::Shape::RootGrid => "grid".to_string(),
        (kind, _) => kind.to_string(),
    }
}

/// `/lineage message:<link or id>`: the whole family of the message, with archived images.
pub fn lineage(ctx: &Ctx<'_>, input: &str) -> Result<Reply, StoreError> {
    let (link_guild, asked) = match parse_message_ref(input) {
        Ok(parsed) => parsed,
        Err(reason) => return Ok(Reply::refusal(reason)),
    };
    if link_guild.is_some() && ctx.guild_id.is_some() && link_guild != ctx.guild_id {
        return Ok(Reply::refusal(
            "That link is to another server: I only look up messages from this one.",
        ));
    }
    if let Some(place) = ctx.store.message_place(asked)? {
        if place.guild_id.is_some() && ctx.guild_id.is_some() && place.guild_id != ctx.guild_id {
            return Ok(Reply::refusal(
                "That message is in another server: I only look up messages from this one.",
            ));
        }
    }
    let family = match family(ctx.store, asked, 60)? {
        Ok(family) => family,
        Err(reason) => return Ok(Reply::refusal(reason)),
    };
    let mut description = String::new();
    let line = |node: &FamilyNode| -> String {
        let message = &node.message;
        let name = node_name(message);
        let indent = "\u{2003}".repeat(node.depth);
        let user = message.user_id.map(|u| format!(" · <@{u}>")).unwrap_or_default();
        let when = message
            .posted_at
            .as_deref()
            .map(|t| format!(" · {}", &t[..t.len().min(16)]))
            .unwrap_or_default();
        let how = message
            .signal
            .as_deref()
            .filter(|_| node.depth > 0)
            .map(|s| format!(" · by {s}"))
            .unwrap_or_default();
        let here = if message.message_id == asked { "  ◀" } else { "" };
        format!(
            "{indent}**{name}** [{}]({}){user}{when}{how}{here}\n",
            message.message_id, node.jump_url
        )
    };
    for node in &family.nodes {
        description.push_str(&line(node));
    }
    let mut fields = Vec::new();
    if let Some(link) = &family.asked_link {
        match link.status.as_str() {
            "ambiguous" => fields.push((
                "Ambiguous".to_string(),
                format!(
                    "Message {asked} fits several parents equally; mjlink does not guess: {}",
                    link.candidates
                        .iter()
                        .map(Snowflake::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                false,
            )),
            "unresolved" => fields.push((
                "Unresolved".to_string(),
                format!("No parent of message {asked} is known (it may be older than the history kept)."),
                false,
            )),
            _ => {}
        }
    }
    let root_message = &family.nodes[0].message;
    if let Some(uuid) = &root_message.job_uuid {
        fields.push(("Job".to_string(), format!("`{uuid}`"), true));
    }
    let prompt = root_message
        .prompt
        .clone()
        .unwrap_or_else(|| "(no prompt)".to_string());
    let mut files = Vec::new();
    for node in &family.nodes {
        let message = &node.message;
        for file in &message.files {
            if let (Some(path), Some(bytes)) = (&file.path, file.bytes) {
                let name = Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "image.png".to_string());
                files.push(File {
                    name: format!("{}_{name}", message.message_id),
                    data: FileData::Archived(path.clone()),
                    bytes: bytes.max(0) as u64,
                });
            }
        }
    }
    let count = family.nodes.len() - 1;
    Ok(Reply {
        content: format!(
            "Lineage of message {asked}: the grid and {count} result{}.",
            if count == 1 { "" } else { "s" }
        ),
        embeds: vec![Embed {
            title: cut(&prompt, 250),
            description,
            url: Some(family.nodes[0].jump_url.clone()),
            fields,
        }],
        files,
        ..Reply::default()
    })
}

/// Puts each result right under its parent (depth-first), from the breadth-first list.
fn order_tree(
    root: &FamilyMessage,
    nodes: Vec<(usize, FamilyMessage)>,
    store: &Store,
) -> Result<Vec<(usize, FamilyMessage)>, StoreError> {
    let mut by_parent: std::collections::BTreeMap<Snowflake, Vec<(usize, FamilyMessage)>> =
        Default::default();
    for (depth, message) in nodes {
        let parent = store
            .parent_of(message.message_id)?
            .and_then(|link| link.decision.parent)
            .unwrap_or(root.message_id);
        by_parent.entry(parent).or_default().push((depth, message));
    }
    for children in by_parent.values_mut() {
        children.sort_by_key(|(_, m)| (m.kind != "upscale", m.tile, m.message_id));
    }
    let mut ordered = Vec::new();
    let mut stack: Vec<(usize, FamilyMessage)> = by_parent.remove(&root.message_id).unwrap_or_default();
    stack.reverse();
    while let Some((depth, message)) = stack.pop() {
        let id = message.message_id;
        ordered.push((depth, message));
        if let Some(mut children) = by_parent.remove(&id) {
            children.reverse();
            stack.extend(children);
        }
    }
    Ok(ordered)
}

/// The custom id of a search page button, when the search fits in one (100 characters).
fn page_button(words: &str, filter: &SearchFilter, page: usize) -> Option<String> {
    let part = |id: Option<Snowflake>| id.map_or_else(|| "-".to_string(), |id| id.to_string());
    let since = filter
        .since_ms
        .map_or_else(|| "-".to_string(), |ms| ms.to_string());
    let id = format!(
        "search:{page}:{}:{}:{since}:{words}",
        part(filter.user_id),
        part(filter.channel_id)
    );
    (id.len() <= 100).then_some(id)
}

/// A search page button's custom id back to (words, filter, page).
pub fn parse_page_button(custom_id: &str) -> Option<(String, SearchFilter, usize)> {
    let mut parts = custom_id.strip_prefix("search:")?.splitn(5, ':');
    let page = parts.next()?.parse().ok()?;
    let id = |text: &str| {
        if text == "-" {
            Ok(None)
        } else {
            Snowflake::parse(text).map(Some).ok_or(())
        }
    };
    let user_id = id(parts.next()?).ok()?;
    let channel_id = id(parts.next()?).ok()?;
    let since = parts.next()?;
    let since_ms = if since == "-" {
        None
    } else {
        Some(since.parse().ok()?)
    };
    let words = parts.next()?.to_string();
    Some((
        words,
        SearchFilter {
            user_id,
            channel_id,
            since_ms,
        },
        page,
    ))
}

/// One page of prompts matching every word, newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SearchPage {
    pub hits: Vec<crate::store::SearchHit>,
    /// Matches in all, counted up to [`MATCHES_COUNTED`]; `more`: there are more than that.
    pub total: i64,
    pub more: bool,
    /// From 0.
    pub page: usize,
    /// The pages of the matches counted.
    pub pages: usize,
}

/// A search counts its matches up to this many (and says "more than" beyond): counting every
/// match of a common word cost more than the page itself (`mjlink bench --web`).
pub const MATCHES_COUNTED: i64 = 200;

impl SearchPage {
    /// "1 prompt matches", "12 prompts match", "more than 200 prompts match".
    pub fn matches(&self) -> String {
        match (self.more, self.total) {
            (true, total) => format!("more than {total} prompts match"),
            (false, 1) => "1 prompt matches".to_string(),
            (false, total) => format!("{total} prompts match"),
        }
    }
}

/// The prompts matching `words` (page `page` of `per_page`): the search of `/search`, of the
/// web gallery and of `/api/search`. `None` when `words` has no word to search for.
pub fn search_page(
    store: &Store,
    words: &str,
    filter: &SearchFilter,
    page: usize,
    per_page: usize,
) -> Result<Option<SearchPage>, StoreError> {
    search_page_counting(store, words, filter, page, per_page, MATCHES_COUNTED)
}

/// [`search_page`], counting matches up to `counted`.
pub fn search_page_counting(
    store: &Store,
    words: &str,
    filter: &SearchFilter,
    page: usize,
    per_page: usize,
    counted: i64,
) -> Result<Option<SearchPage>, StoreError> {
    if crate::store::fts_query(words).is_none() {
        return Ok(None);
    }
    let per_page = per_page.max(1);
    let (hits, found) = store.search_prompts(
        words,
        filter,
        page.saturating_mul(per_page),
        per_page,
        counted.saturating_add(1),
    )?;
    let total = found.min(counted);
    Ok(Some(SearchPage {
        hits,
        total,
        more: found > counted,
        page,
        pages: (total.max(0) as usize).div_ceil(per_page),
    }))
}

/// `/search text:<words> [user] [channel] [since]`: newest first, a page at a time.
pub fn search(ctx: &Ctx<'_>, words: &str, filter: &SearchFilter, page: usize) -> Result<Reply, StoreError> {
    let Some(found) = search_page(ctx.store, words, filter, page, PAGE)? else {
        return Ok(Reply::refusal("Give at least one word to search for."));
    };
    let SearchPage { hits, total, .. } = &found;
    let total = *total;
    if total == 0 {
        return Ok(Reply::text(format!("No prompt matches `{}`.", cut(words, 100))));
    }
    let pages = (total as usize).div_ceil(PAGE);
    let mut description = String::new();
    for (n, hit) in hits.iter().enumerate() {
        let user = hit.user_id.map(|u| format!(" · <@{u}>")).unwrap_or_default();
        let channel = hit.channel_id.map(|c| format!(" in <#{c}>")).unwrap_or_default();
        let when = hit
            .posted_ms
            .and_then(mjlink_core::text::format_time)
            .map(|t| format!(" · {}", &t[..10]))
            .unwrap_or_default();
        let _ = writeln!(
            description,
            "**{}.** {} ({}){user}{channel}{when} · [jump]({})",
            page * PAGE + n + 1,
            cut(&hit.prompt, 150),
            hit.kind,
            jump(hit.guild_id, hit.channel_id, hit.message_id)
        );
    }
    // ◀ Newer and Older ▶, each carrying the page it shows (disabled at the ends); none when
    // the search does not fit in a button's custom id.
    let buttons = match (
        page_button(words, filter, page.saturating_sub(1)),
        page_button(words, filter, (page + 1).min(pages - 1)),
    ) {
        (Some(newer), Some(older)) if pages > 1 => vec![
            Button {
                custom_id: newer,
                label: "◀ Newer".to_string(),
                disabled: page == 0,
            },
            Button {
                custom_id: older,
                label: "Older ▶".to_string(),
                disabled: page + 1 >= pages,
            },
        ],
        _ => Vec::new(),
    };
    let paging_note = if pages > 1 && buttons.is_empty() {
        " (too long a search to page with buttons: add words or filters)"
    } else {
        ""
    };
    Ok(Reply {
        content: format!(
            "{} `{}` · page {} of {pages}{paging_note}",
            found.matches(),
            cut(words, 100),
            page + 1
        ),
        embeds: vec![Embed {
            title: "Search".to_string(),
            description,
            ..Embed::default()
        }],
        buttons,
        ..Reply::default()
    })
}

/// What the database holds, in figures: the answer of `/stats`, of the web gallery's stats
/// page and of `/api/stats`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub grids: i64,
    /// Results by action name, in name order.
    pub results_by_action: Vec<(String, i64)>,
    /// Links by signal (`reference`, `interaction`, `heuristic`...), ambiguous and
    /// unresolved ones left out.
    pub links_by_signal: Vec<(String, i64)>,
    pub ambiguous: i64,
    pub unresolved: i64,
    pub archive: crate::store::ArchiveCounts,
    /// Queue items by status.
    pub queue: Vec<(String, i64)>,
    pub queue_paused: bool,
    /// Midjourney messages mjlink could not read, in one line (a jump means its format
    /// changed).
    pub unknown_formats: String,
    /// The notifications' outbox by state.
    pub notifications: crate::store::OutboxCounts,
    /// The latest notifications given up (the dead-letter list), newest first.
    pub dead_letters: Vec<crate::store::DeadLetter>,
    /// Jobs (grids and results) per day, `YYYY-MM-DD` (UTC), over the last
    /// [`JOB_DAYS`] days of the history, oldest first; days without a job left out.
    pub jobs_per_day: Vec<(String, i64)>,
}

/// How many days of the history [`Stats::jobs_per_day`] covers.
pub const JOB_DAYS: i64 = 30;

/// The notifications in one line: `pending 1, delivered 12, dead 2 (latest: ops
/// queue_failed, 9 attempts: the receiver answered 500 Internal Server Error)`.
pub fn notifications_line(counts: &crate::store::OutboxCounts, dead: &[crate::store::DeadLetter]) -> String {
    let mut line = format!(
        "pending {}, delivered {}, dead {}",
        counts.pending, counts.delivered, counts.dead
    );
    if let Some(latest) = dead.first() {
        line.push_str(&format!(
            " (latest: {} {}, {} attempts: {})",
            latest.target,
            latest.event,
            latest.attempts,
            latest.last_error.as_deref().unwrap_or("no reason recorded")
        ));
    }
    line
}

/// The figures of `/stats`.
pub fn stats_figures(store: &Store) -> Result<Stats, StoreError> {
    let kinds = store.count_by_kind()?;
    let grids: i64 = kinds
        .iter()
        .filter(|(k, _)| kinds::is_root_name(k))
        .map(|(_, n)| n)
        .sum();
    let results_by_action = kinds
        .iter()
        .filter(|(k, _)| mjlink_core::parse::Action::from_name(k).is_some())
        .cloned()
        .collect();
    let links_by_signal = store
        .count_links_by_signal()?
        .into_iter()
        .filter(|(s, _)| s != "none")
        .collect();
    let statuses = store.count_links_by_status()?;
    let status = |name: &str| statuses.iter().find(|(s, _)| s == name).map_or(0, |(_, n)| *n);
    Ok(Stats {
        grids,
        results_by_action,
        links_by_signal,
        ambiguous: status("ambiguous"),
        unresolved: status("unresolved"),
        archive: store.archive_counts()?,
        queue: store.queue_counts()?,
        queue_paused: store.queue_paused()?,
        unknown_formats: crate::ingest::drift::describe(store, 3)?,
        notifications: store.notify_counts()?,
        dead_letters: store.notify_dead_letters(5)?,
        jobs_per_day: store
            .jobs_per_day(JOB_DAYS)?
            .into_iter()
            .map(|(day, jobs)| (mjlink_core::text::date_of_day(day), jobs))
            .collect(),
    })
}

/// Named counts as one phrase, `upscale 3, variation 1` (`none` when empty), for `/stats`
/// and `mjlink stats`.
pub fn name_counts(items: &[(String, i64)]) -> String {
    if items.is_empty() {
        return "none".to_string();
    }
    items
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `/stats`: what the database holds.
pub fn stats(ctx: &Ctx<'_>) -> Result<Reply, StoreError> {
    let stats = stats_figures(ctx.store)?;
    let or_none = name_counts;
    let paused = if stats.queue_paused { " (paused)" } else { "" };
    let archive = &stats.archive;
    Ok(Reply {
        embeds: vec![Embed {
            title: "mjlink stats".to_string(),
            fields: vec![
                ("Grids".to_string(), stats.grids.to_string(), true),
                (
                    "Results by action".to_string(),
                    or_none(&stats.results_by_action),
                    false,
                ),
                (
                    "Links by signal".to_string(),
                    or_none(&stats.links_by_signal),
                    false,
                ),
                ("Ambiguous".to_string(), stats.ambiguous.to_string(), true),
                ("Unresolved".to_string(), stats.unresolved.to_string(), true),
                (
                    "Archive".to_string(),
                    format!(
                        "archived {} ({:.1} MiB), pending {}, failed {}",
                        archive.archived,
                        archive.bytes as f64 / (1024.0 * 1024.0),
                        archive.pending,
                        archive.failed
                    ),
                    false,
                ),
                (format!("Queue{paused}"), or_none(&stats.queue), false),
                (
                    "Unknown formats".to_string(),
                    stats.unknown_formats.clone(),
                    false,
                ),
                (
                    "Notifications".to_string(),
                    cut(
                        &notifications_line(&stats.notifications, &stats.dead_letters),
                        1000,
                    ),
                    false,
                ),
            ],
            ..Embed::default()
        }],
        ..Reply::default()
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Csv,
}

/// `/export [channel] [format]`: the lineage (every link) of a channel, or of all, as a file.
pub fn export(ctx: &Ctx<'_>, channel: Option<Snowflake>, format: ExportFormat) -> Result<Reply, StoreError> {
    let mut records = Vec::new();
    ctx.store.for_each_link(|export| {
        if channel.is_none() || export.channel_id == channel {
            records.push(LinkRecord::from(export));
        }
        Ok(())
    })?;
    if records.is_empty() {
        return Ok(Reply::refusal(match channel {
            Some(channel) => format!("No links in <#{channel}> yet."),
            None => "No links yet.".to_string(),
        }));
    }
    let (bytes, extension) = match format {
        ExportFormat::Json => (serde_json::to_vec_pretty(&records).unwrap_or_default(), "json"),
        ExportFormat::Csv => {
            let mut writer = LinkWriter::new(Vec::new(), crate::export::Format::Csv);
            for record in &records {
                if writer.write(record).is_err() {
                    break;
                }
            }
            (writer.finish().unwrap_or_default(), "csv")
        }
    };
    let scope = channel.map_or_else(|| "all".to_string(), |c| c.to_string());
    Ok(Reply {
        content: format!("{} links ({scope}).", records.len()),
        files: vec![File {
            name: format!("lineage-{scope}.{extension}"),
            bytes: bytes.len() as u64,
            data: FileData::Bytes(bytes),
        }],
        ..Reply::default()
    })
}

/// `/queue add`.
pub fn queue_add(
    store: &mut Store,
    now_ms: i64,
    prompt: &str,
    upscale: Option<&str>,
) -> Result<Reply, StoreError> {
    let upscales = match Upscales::parse(upscale.unwrap_or("all")) {
        Ok(upscales) => upscales,
        Err(reason) => return Ok(Reply::refusal(reason)),
    };
    if prompt.trim().is_empty() {
        return Ok(Reply::refusal("Give a prompt to queue."));
    }
    let added = runner::add(store, &[prompt.trim().to_string()], &upscales, 0, now_ms)?;
    let item = &added[0];
    Ok(Reply::text(format!(
        "Queued `{}` with upscales {upscales}: {}",
        &item.id[..8],
        cut(&item.prompt, 1500)
    )))
}

/// `/queue list`.
pub fn queue_list(ctx: &Ctx<'_>) -> Result<Reply, StoreError> {
    let items = ctx.store.queue_items(&[])?;
    let active: Vec<_> = items
        .iter()
        .filter(|item| !item.status.is_final())
        .cloned()
        .collect();
    let recent: Vec<_> = items
        .iter()
        .filter(|item| item.status.is_final())
        .rev()
        .take(10)
        .cloned()
        .collect();
    let mut shown = active;
    shown.extend(recent);
    let table = view::list_table(&shown);
    let paused = if ctx.store.queue_paused()? {
        "The queue is paused.\n"
    } else {
        ""
    };
    Ok(Reply::text(format!("{paused}```\n{}\n```", cut(&table, 1900))))
}

/// An empty id would be a prefix of every id: refused.
fn empty_id() -> Reply {
    Reply::refusal(
        "The id is empty: give an id or a unique prefix of one (`/queue list` shows them).".to_string(),
    )
}

/// `/queue show id`.
pub fn queue_show(ctx: &Ctx<'_>, id: &str) -> Result<Reply, StoreError> {
    if id.trim().is_empty() {
        return Ok(empty_id());
    }
    let Some(item) = ctx.store.queue_item(id.trim())? else {
        return Ok(Reply::refusal(format!(
            "No queue item has the id `{}`.",
            cut(id, 40)
        )));
    };
    let history = ctx.store.queue_history(&item.id)?;
    Ok(Reply::text(format!(
        "```\n{}\n```",
        cut(&view::show_text(&item, &history), 1900)
    )))
}

/// `/queue cancel id`.
pub fn queue_cancel(store: &mut Store, now_ms: i64, id: &str) -> Result<Reply, StoreError> {
    if id.trim().is_empty() {
        return Ok(empty_id());
    }
    Ok(match runner::cancel(store, id.trim(), now_ms)? {
        runner::Cancelled::Now(item) => Reply::text(format!("Cancelled `{}`.", &item.id[..8])),
        runner::Cancelled::AlreadyFinished(item) => Reply::refusal(format!(
            "`{}` had already finished: {}.",
            &item.id[..8],
            item.status
        )),
        runner::Cancelled::NotFound => Reply::refusal(format!("No queue item has the id `{}`.", cut(id, 40))),
    })
}

/// `/queue pause` and `/queue resume`.
pub fn queue_pause(ctx: &Ctx<'_>, paused: bool) -> Result<Reply, StoreError> {
    ctx.store.set_queue_paused(paused)?;
    let waiting = ctx.store.queue_items(&[Status::Queued])?.len();
    Ok(Reply::text(if paused {
        format!("The queue is paused: nothing new is sent ({waiting} waiting); jobs already sent are still collected.")
    } else {
        format!("The queue is running again ({waiting} waiting).")
    }))
}
