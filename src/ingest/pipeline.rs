//! The one entry point every source feeds (replay, and later the gateway and backfill):
//! an [`Event`] goes through parse -> link -> store. The clock is passed in.

use crate::store::{ChildFacts, LinkRow, MessageRow, PromptScope, Store, StoreError};
pub use mjlink_core::event::Event;
use mjlink_core::link::{self, Child, Decision};
use mjlink_core::merge::Doc;
use mjlink_core::parse::{self, BotIds, Kind, Parsed, Stage};
use mjlink_core::snowflake::Snowflake;
use mjlink_core::wire::Message;

/// Default fallback window: a parent must be posted at most this long before its child.
pub const DEFAULT_WINDOW_MS: i64 = crate::config::DEFAULT_WINDOW_MS;

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Stored or changed something.
    Applied,
    /// Exactly this event was processed before (RESUME redelivery, a repeated line).
    Duplicate,
    /// A new event that told nothing new (an edit already known from a reply's copy).
    Unchanged,
    /// Nothing to keep (not from Midjourney).
    Ignored,
}

const EVENT_CREATE: u8 = 0;
const EVENT_UPDATE: u8 = 1;
const EVENT_DELETE: u8 = 2;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub bots: BotIds,
    pub window_ms: i64,
    /// Events per transaction; a crash loses at most the open batch, which a re-run redoes.
    pub batch_size: usize,
}

impl PipelineConfig {
    /// From `[midjourney]` and `[linking]`.
    pub fn from_config(config: &crate::config::Config) -> PipelineConfig {
        PipelineConfig {
            bots: config.bot_ids.clone(),
            window_ms: config.window_ms,
            ..PipelineConfig::default()
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            bots: BotIds::default(),
            window_ms: DEFAULT_WINDOW_MS,
            batch_size: 1000,
        }
    }
}

/// Owns the store; the single writer.
pub struct Pipeline {
    store: Store,
    config: PipelineConfig,
    in_batch: usize,
    /// Channel cursors moved in the open batch, written when it commits.
    cursors: std::collections::HashMap<Snowflake, Snowflake>,
}

/// How a snapshot of a message reached us; only updates leave a message unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Create,
    Update,
    Reference,
}

impl Pipeline {
    pub fn new(store: Store, config: PipelineConfig) -> Pipeline {
        Pipeline {
            store,
            config,
            in_batch: 0,
            cursors: std::collections::HashMap::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Commits the open batch (with the channel cursors it moved).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if !self.cursors.is_empty() {
            self.store.begin()?;
            for (channel_id, message_id) in self.cursors.drain() {
                self.store.advance_cursor(channel_id, message_id)?;
            }
        }
        self.in_batch = 0;
        self.store.commit()
    }

    pub fn into_store(mut self) -> Result<Store, StoreError> {
        self.flush()?;
        Ok(self.store)
    }

    /// Applies one event. `now_ms` is when it was received (replay passes the newest message
    /// time it has read, so the result does not depend on the wall clock).
    pub fn apply(&mut self, event: &Event, now_ms: i64) -> Result<Applied, StoreError> {
        self.store.begin()?;
        let result = match event {
            Event::Create { message, digest } => {
                if let Some(channel_id) = message.channel_id {
                    let cursor = self.cursors.entry(channel_id).or_default();
                    *cursor = (*cursor).max(message.id);
                }
                if self.store.mark_processed(message.id, EVENT_CREATE, *digest)? {
                    self.upsert(message, Source::Create)
                } else {
                    Ok(Applied::Duplicate)
                }
            }
            Event::Update { message, digest } => {
                if self.store.mark_processed(message.id, EVENT_UPDATE, *digest)? {
                    self.upsert(message, Source::Update)
                } else {
                    Ok(Applied::Duplicate)
                }
            }
            Event::Delete { ids, channel_id } => {
                let mut applied = Applied::Duplicate;
                for id in ids {
                    if self.store.mark_processed(*id, EVENT_DELETE, 0)? {
                        self.delete(*id, *channel_id, now_ms)?;
                        applied = Applied::Applied;
                    }
                }
                Ok(applied)
            }
        }?;
        self.in_batch += 1;
        if self.in_batch >= self.config.batch_size {
            self.flush()?;
        }
        Ok(result)
    }

    fn upsert(&mut self, incoming: &Message, source: Source) -> Result<Applied, StoreError> {
        let existing = self.store.load_message(incoming.id)?;
        let (doc, was_seen, changed, old_kind) = match existing {
            Some(stored) => {
                let mut doc = stored.doc;
                let changed = doc.merge(incoming);
                (doc, stored.seen, changed, Some(stored.kind))
            }
            None => (Doc::new(incoming.clone()), false, true, None),
        };
        let seen = was_seen || source != Source::Update;
        if !changed && seen == was_seen {
            return Ok(Applied::Unchanged);
        }

        if !seen {
            // Only updates so far: keep them (not lost), but no job exists until the message
            // itself is seen.
            self.store.save_message(&row_for(&doc, None, false))?;
            return Ok(Applied::Applied);
        }

        let parsed = parse::parse(&doc.message, &self.config.bots);
        if parsed.kind == Kind::NotMidjourney {
            if old_kind.is_none() {
                return Ok(Applied::Ignored);
            }
            // An early update of someone else's message: keep only the id.
            let stripped = Doc::new(Message {
                id: doc.message.id,
                channel_id: doc.message.channel_id,
                ..Default::default()
            });
            self.store
                .save_message(&row_for(&stripped, Some(&parsed), true))?;
            self.store.delete_link(incoming.id)?;
            return Ok(Applied::Applied);
        }

        // A reply carries a copy of its parent: keep it (the parent may never be seen itself).
        if source == Source::Create {
            if let Some(parent) = incoming.referenced_message.as_deref() {
                self.upsert(parent, Source::Reference)?;
            }
        }

        let is_new = old_kind.is_none();
        self.store.save_message(&row_for(&doc, Some(&parsed), true))?;
        self.store
            .replace_attachments(doc.message.id, &parsed.attachments, !is_new)?;

        match parsed.kind {
            Kind::Result(action) => {
                let posted_ms = doc.message.posted_ms();
                let exact = link::exact_parent(&doc.message);
                self.relink(doc.message.id, action, parsed.tile, posted_ms, exact)?;
            }
            _ if !is_new => self.store.delete_link(doc.message.id)?,
            _ => {}
        }

        if parsed.kind.is_grid() || parsed.kind.is_single_image() {
            self.on_new_parent(&doc.message, &parsed)?;
        }
        if let Kind::Progress { .. } = parsed.kind {
            if let Some(progress) = self.store.progress_row(doc.message.id)? {
                if progress.deleted {
                    self.settle_progress(doc.message.id)?;
                }
            }
        }
        Ok(Applied::Applied)
    }

    /// The parent of `child` when the child is linked to it by an exact signal but the
    /// parent itself was never seen (not in a create, a history page or a reply's copy).
    pub fn unknown_parent(&self, child: Snowflake) -> Result<Option<Snowflake>, StoreError> {
        let Some(link) = self.store.get_link(child)? else {
            return Ok(None);
        };
        match link.decision.parent {
            Some(parent) if link.decision.is_exact() && !self.store.has_seen(parent)? => Ok(Some(parent)),
            _ => Ok(None),
        }
    }

    /// Decides (or re-decides) the link of a result and stores it if it supersedes the old one.
    fn relink(
        &mut self,
        child_id: Snowflake,
        action: parse::Action,
        tile: Option<u8>,
        posted_ms: i64,
        exact: Option<Decision>,
    ) -> Result<(), StoreError> {
        let old = self.store.get_link(child_id)?;
        let decision = match exact {
            Some(decision) => decision,
            None => match &old {
                Some(old) if old.decision.is_exact() => return Ok(()),
                _ => self.fallback(child_id, action, tile, posted_ms)?,
            },
        };
        let new = LinkRow {
            child_id,
            action,
            tile,
            decision,
        };
        let store_it = match &old {
            None => true,
            Some(old) => {
                old.action != new.action
                    || old.tile != new.tile
                    || link::supersedes(&new.decision, &old.decision)
            }
        };
        if store_it {
            self.store.put_link(&new)?;
            tracing::debug!(
                child_id = %child_id,
                parent_id = ?new.decision.parent.map(|parent| parent.0),
                action = new.action.as_str(),
                tile = ?tile,
                signal = ?new.decision.signal,
                status = new.decision.status.as_str(),
                candidates = new.decision.candidates.len(),
                "link decided"
            );
            if new.decision.is_exact() {
                if let (Some(parent), Some(tile)) = (new.decision.parent, tile) {
                    // A result that the fallback had given this tile is now wrong.
                    for sibling in self.store.heuristic_children_of(parent, tile)? {
                        if sibling != child_id {
                            self.refallback(sibling)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn fallback(
        &self,
        child_id: Snowflake,
        action: parse::Action,
        tile: Option<u8>,
        posted_ms: i64,
    ) -> Result<Decision, StoreError> {
        let facts = self.store.child_facts(child_id)?;
        let candidates = match facts.as_ref().and_then(ChildFacts::scope) {
            Some(scope) => self.store.candidates(
                scope,
                posted_ms - self.config.window_ms,
                posted_ms,
                tile,
                child_id,
            )?,
            None => Vec::new(),
        };
        Ok(link::heuristic(
            Child {
                id: child_id,
                posted_ms,
                action,
            },
            &candidates,
            self.config.window_ms,
        ))
    }

    /// Re-runs the fallback for a stored result without an exact link.
    fn refallback(&mut self, child_id: Snowflake) -> Result<(), StoreError> {
        let Some(old) = self.store.get_link(child_id)? else {
            return Ok(());
        };
        if old.decision.is_exact() {
            return Ok(());
        }
        let posted_ms = self
            .store
            .child_facts(child_id)?
            .map_or_else(|| child_id.timestamp_ms(), |facts| facts.posted_ms);
        let decision = self.fallback(child_id, old.action, old.tile, posted_ms)?;
        if decision != old.decision {
            self.store.put_link(&LinkRow { decision, ..old })?;
        }
        Ok(())
    }

    /// A new grid or upscale can change the fallback of later results with the same prompt,
    /// and can be the final of a start/progress message.
    fn on_new_parent(&mut self, message: &Message, parsed: &Parsed) -> Result<(), StoreError> {
        let posted = message.posted_ms();
        let prompt_norm = parsed.normalized_prompt();
        let scope = PromptScope::of(message.channel_id, parsed.user_id, prompt_norm.as_deref());
        if let Some(scope) = scope {
            let children = self
                .store
                .fallback_children(scope, posted, posted + self.config.window_ms)?;
            for child_id in children {
                if child_id != message.id {
                    self.refallback(child_id)?;
                }
            }
        }
        let waiting = self.store.progress_waiting_for(
            parsed.job_uuid.as_deref(),
            scope,
            posted - self.config.window_ms,
            posted,
        )?;
        for progress in waiting {
            if progress.deleted || progress.job_uuid.is_some() {
                self.settle_progress(progress.id)?;
            }
        }
        Ok(())
    }

    fn delete(
        &mut self,
        id: Snowflake,
        channel_id: Option<Snowflake>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.store.mark_deleted(id, channel_id, now_ms)?;
        if self.store.progress_row(id)?.is_some() {
            self.settle_progress(id)?;
        }
        Ok(())
    }

    /// Decides the outcome of a start/progress message from the finals that exist. With a job
    /// UUID the final is certain. Without one (a start that never showed progress), a final
    /// found by prompt counts only when no other such start could own it. A deleted message
    /// with no possible final failed (silent moderation); with finals that cannot be told
    /// apart it stays `unknown`: never a guess.
    fn settle_progress(&mut self, id: Snowflake) -> Result<(), StoreError> {
        let Some(progress) = self.store.progress_row(id)? else {
            return Ok(());
        };
        let window = self.config.window_ms;
        let finals = self.store.finals_for(&progress, progress.posted_at + window)?;
        let certain = match finals.as_slice() {
            [only] if progress.job_uuid.is_none() => {
                let final_posted = self
                    .store
                    .child_facts(*only)?
                    .map_or_else(|| only.timestamp_ms(), |facts| facts.posted_ms);
                let rivals = self.store.progress_waiting_for(
                    None,
                    progress.scope(),
                    final_posted - window,
                    final_posted,
                )?;
                rivals
                    .iter()
                    .all(|rival| rival.id == id || rival.action != progress.action)
            }
            _ => true,
        };
        match (finals.as_slice(), progress.deleted) {
            ([only], _) if certain => self.store.set_outcome(id, "completed", Some(*only)),
            ([], true) => {
                tracing::debug!(message_id = %id, prompt = ?progress.prompt_norm, "job failed: its progress message was deleted with no final (silent moderation)");
                self.store.set_outcome(id, "failed", None)
            }
            (_, true) => self.store.set_outcome(id, "unknown", None),
            (_, false) => self.store.set_outcome(id, "running", None),
        }
    }
}

fn stage_name(stage: Stage) -> String {
    match stage {
        Stage::Waiting => "waiting".to_string(),
        Stage::Percent(value) => format!("{value}%"),
        Stage::Paused => "paused".to_string(),
        Stage::Stopped => "stopped".to_string(),
    }
}

/// The row stored for a message; `parsed` is `None` while the message is unseen.
fn row_for(doc: &Doc, parsed: Option<&Parsed>, seen: bool) -> MessageRow {
    let message = &doc.message;
    let mut row = MessageRow {
        id: message.id,
        channel_id: message.channel_id,
        guild_id: message.guild_id,
        author_id: message.author.as_ref().map(|author| author.id),
        seen,
        kind: "pending".to_string(),
        posted_at: message.timestamp.as_ref().map(|_| message.posted_ms()),
        edited_at: message.edited_ms(),
        nonce: message.nonce.clone(),
        doc: serde_json::to_string(doc).unwrap_or_default(),
        ..Default::default()
    };
    if seen {
        row.posted_at = Some(message.posted_ms());
    }
    if let Some(parsed) = parsed {
        row.kind = parsed.kind.as_str().to_string();
        if let Some(prompt) = &parsed.prompt {
            row.prompt = Some(prompt.raw.clone());
            row.prompt_norm = Some(prompt.normalized());
            row.params = serde_json::to_string(&prompt.params).ok();
        }
        row.user_id = parsed.user_id;
        row.mode = parsed.mode.map(|mode| mode.as_str().to_string());
        row.stealth = parsed.stealth;
        row.tile = parsed.tile;
        row.action = match &parsed.kind {
            Kind::Result(action)
            | Kind::Progress {
                action: Some(action), ..
            } => Some(action.as_str().to_string()),
            _ => None,
        };
        row.job_uuid = parsed.job_uuid.clone();
        row.detail = parsed.detail.clone();
        match &parsed.kind {
            Kind::Progress { stage, .. } => row.stage = Some(stage_name(*stage)),
            Kind::Error(title) => row.error_title = Some(title.clone()),
            _ => {}
        }
    }
    row
}
