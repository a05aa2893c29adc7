//! The one entry point every source feeds (through the [`crate::ingest::writer`]): for each
//! [`Event`], read -> decide -> write. The pipeline reads from the store the context each
//! step needs (what is stored of the message, its old link, the fallback's candidates, the
//! starts waiting for a final), calls one pure function of [`mjlink_core::lineage`], and
//! writes the effects it returns. It decides nothing itself. The clock is passed in.

use crate::ingest::prepare::{Prepared, Spent};
use crate::ingest::row::row_for;
use crate::store::{ChildFacts, MessageRow, ProgressRow, PromptScope, ReplyTargetRow, Store, StoreError};
pub use mjlink_core::event::Event;
use mjlink_core::kinds::Shape;
pub use mjlink_core::lineage::Applied;
use mjlink_core::lineage::{self, Absorbed, Known, LinkWork, Outcome, Relinked, Rival, Save, Source, Start};
use mjlink_core::link::{Candidate, Child, Decision};
use mjlink_core::marks::{Family, Trust};
use mjlink_core::parse::{self, Action, BotIds, Kind, Parsed};
use mjlink_core::snowflake::Snowflake;
use mjlink_core::wire::Message;

mod marks;

/// Default fallback window: a parent must be posted at most this long before its child.
pub const DEFAULT_WINDOW_MS: i64 = crate::config::DEFAULT_WINDOW_MS;

/// How many recent messages the store keeps in memory for the next events about them (their
/// edits, deletion, replies): a bound, so the cost of an event does not grow with history.
const RECENT_MESSAGES: usize = 4096;

const EVENT_CREATE: u8 = 0;
const EVENT_UPDATE: u8 = 1;
const EVENT_DELETE: u8 = 2;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub bots: BotIds,
    pub window_ms: i64,
    /// Events per transaction; a crash loses at most the open batch, which a re-run redoes.
    pub batch_size: usize,
    /// Format drift: samples kept, and when a day's count of unknown messages jumps.
    pub drift: crate::ingest::drift::DriftOptions,
}

impl PipelineConfig {
    /// From `[midjourney]` and `[linking]`.
    pub fn from_config(config: &crate::config::Config) -> PipelineConfig {
        PipelineConfig {
            bots: config.bot_ids.clone(),
            window_ms: config.window_ms,
            drift: crate::ingest::drift::DriftOptions::from_config(config),
            ..PipelineConfig::default()
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            bots: BotIds::default(),
            window_ms: DEFAULT_WINDOW_MS,
            batch_size: 5000,
            drift: Default::default(),
        }
    }
}

/// Owns the store; the single writer.
pub struct Pipeline {
    store: Store,
    config: PipelineConfig,
    in_batch: usize,
    /// The newest message id seen per channel (the stored cursor, then every create): the
    /// channel cursors, and where in the stream an update is (see [`marks`]).
    high_water: std::collections::HashMap<Snowflake, Snowflake>,
    /// The channels whose cursor moved in the open batch, written when it commits.
    moved: std::collections::HashSet<Snowflake>,
    /// What each channel's exact U and V results showed about its marks (see [`marks`]).
    trust: std::collections::HashMap<(Snowflake, Family), Trust>,
    /// What the sender prepared of the event being applied (`ingest::prepare`).
    prepared: Option<Prepared>,
    /// What the pipeline is done with of what senders prepared (see [`Pipeline::move_spent_into`]).
    spent: Vec<Spent>,
}

impl Pipeline {
    pub fn new(mut store: Store, config: PipelineConfig) -> Pipeline {
        // The pipeline is the only writer of the lineage: its store may cache what it wrote.
        store.keep_recent(RECENT_MESSAGES);
        Pipeline {
            store,
            config,
            in_batch: 0,
            high_water: std::collections::HashMap::new(),
            moved: std::collections::HashSet::new(),
            trust: std::collections::HashMap::new(),
            prepared: None,
            spent: Vec::new(),
        }
    }

    /// What the pipeline is done with of what senders prepared, to be freed on their thread
    /// (the writer hands it back with the applied events): memory is freed fastest by the
    /// thread that allocated it, without taking another thread's allocator lock.
    pub fn move_spent_into(&mut self, out: &mut Vec<Spent>) {
        out.append(&mut self.spent);
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Commits the open batch (with the channel cursors it moved).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if !self.moved.is_empty() {
            self.store.begin()?;
            for channel_id in std::mem::take(&mut self.moved) {
                let message_id = self.high_water.get(&channel_id).copied().unwrap_or_default();
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

    /// [`Pipeline::apply`] with what the sender prepared of the event (`ingest::prepare`).
    pub fn apply_prepared(
        &mut self,
        event: &Event,
        prepared: Option<Prepared>,
        now_ms: i64,
    ) -> Result<Applied, StoreError> {
        if let Some(mut prepared) = prepared {
            if let Some(doc) = prepared.doc.take() {
                self.store.offer_prepared(doc);
            }
            self.prepared = Some(prepared);
        }
        let applied = self.apply(event, now_ms);
        self.prepared = None;
        self.store.withdraw_prepared();
        applied
    }

    /// Applies one event. `now_ms` is when it was received (replay passes the newest message
    /// time it has read, so the result does not depend on the wall clock).
    pub fn apply(&mut self, event: &Event, now_ms: i64) -> Result<Applied, StoreError> {
        self.store.begin()?;
        let result = match event {
            Event::Create { message, digest } => {
                if let Some(channel_id) = message.channel_id {
                    self.note_position(channel_id, message.id)?;
                    self.moved.insert(channel_id);
                }
                if self.store.mark_processed(message.id, EVENT_CREATE, *digest)? {
                    self.upsert(message, Source::Create, None)
                } else {
                    Ok(Applied::Duplicate)
                }
            }
            Event::Update { message, digest } => {
                if self.store.mark_processed(message.id, EVENT_UPDATE, *digest)? {
                    let position = self.position_of_update(message)?;
                    self.upsert(message, Source::Update, position)
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

    /// Read -> decide -> write for one snapshot of a message, seen at `position` in the stream
    /// (an update: the newest message seen in its channel; a reply's copy of its parent: the
    /// reply; a create, or a snapshot from history: `None`, its time is its own).
    fn upsert(
        &mut self,
        incoming: &Message,
        source: Source,
        position: Option<Snowflake>,
    ) -> Result<Applied, StoreError> {
        let known = self.store.load_message(incoming.id)?.map(|stored| Known {
            doc: stored.doc,
            seen: stored.seen,
            kind: stored.kind,
            deleted: stored.deleted_at.is_some(),
        });
        let was_unknown = known
            .as_ref()
            .is_some_and(|known| mjlink_core::drift::is_unknown_name(&known.kind));
        // Nothing stored of a created message: the sender may have decided it already.
        let (absorbed, origin) = match self.prepared.take() {
            Some(prepared) if known.is_none() && source == Source::Create && prepared.id == incoming.id => {
                (prepared.absorbed, Origin::Sender { row: prepared.row })
            }
            _ => (
                lineage::absorb(known, incoming, source, &self.config.bots),
                Origin::Writer,
            ),
        };
        // A reply carries a copy of its parent: keep it (the parent may never be seen itself),
        // also when the reply itself was already known from another message's copy of it.
        if source == Source::Create && matches!(absorbed, Absorbed::Save(_) | Absorbed::Unchanged) {
            if let Some(parent) = incoming.referenced_message.as_deref() {
                self.upsert(parent, Source::Reference, Some(incoming.id))?;
            }
        }
        let save = match absorbed {
            Absorbed::Unchanged => return Ok(Applied::Unchanged),
            Absorbed::Ignore => return Ok(Applied::Ignored),
            Absorbed::KeepUnseen(doc) => {
                self.store.save_message(&row_for(&doc, None, false), &doc)?;
                return Ok(Applied::Applied);
            }
            Absorbed::Strip(doc) => {
                let parsed = parse::parse(&doc.message, &self.config.bots);
                self.store
                    .save_message(&row_for(&doc, Some(&parsed), true), &doc)?;
                self.store.delete_link(incoming.id)?;
                return Ok(Applied::Applied);
            }
            Absorbed::Save(save) => save,
        };
        self.save(*save, was_unknown, origin, position)
    }

    /// The replies stored before `target` was seen: what each is may depend on it (see
    /// [`lineage::reconsider`]).
    fn reconsider_replies_to(&mut self, target: Snowflake) -> Result<(), StoreError> {
        for reply in self.store.replies_to(target)? {
            let Some(stored) = self.store.load_message(reply)? else {
                continue;
            };
            let known = Known {
                doc: stored.doc,
                seen: stored.seen,
                kind: stored.kind,
                deleted: stored.deleted_at.is_some(),
            };
            if let Some(save) = lineage::reconsider(known, &self.config.bots) {
                self.save(save, false, Origin::Writer, None)?;
            }
        }
        Ok(())
    }

    /// Read -> decide -> write for a parsed snapshot to save, decided where `origin` says.
    fn save(
        &mut self,
        save: Save,
        was_unknown: bool,
        origin: Origin,
        position: Option<Snowflake>,
    ) -> Result<Applied, StoreError> {
        // What a reply is can depend on what it replies to (read after the reply's copy of
        // it was stored).
        let mut save = save;
        let (from_sender, mut prepared_row) = match origin {
            Origin::Sender { row } => (true, row),
            Origin::Writer => (false, None),
        };
        if let Some(target_id) = lineage::reply_question(&save) {
            let target = self.store.reply_target(target_id)?;
            lineage::resolve_reply(&mut save, target.as_ref().map(ReplyTargetRow::as_target));
            prepared_row = None;
        }
        let Save {
            doc,
            parsed,
            is_new,
            link,
            may_be_parent,
            settle,
            completes,
            first_seen,
            attachments_changed,
        } = save;
        // The sender's row is the row of the save it prepared (debug builds check it).
        debug_assert!(prepared_row
            .as_ref()
            .is_none_or(|row| *row == row_for(&doc, Some(&parsed), true)));
        let row = prepared_row.unwrap_or_else(|| row_for(&doc, Some(&parsed), true));
        // A start that names its job now (first seen with it, or its preview or Cancel button
        // came after it was seen) is settled by its job's final, which may be stored already
        // (as a new final settles the starts naming its job: `settles_on_new_final`), and
        // stops being a rival of the starts around it whose final was found by prompt.
        let names_its_job_now = matches!(parsed.kind, Kind::Progress { .. })
            && parsed.job_uuid.is_some()
            && (first_seen
                || self
                    .store
                    .progress_row(doc.message.id)?
                    .is_some_and(|stored| stored.job_uuid.is_none()));
        self.store.save_message(&row, &doc)?;
        self.follow_marks(doc.message.id, &parsed, first_seen, position)?;
        if first_seen {
            self.keep_animated_form(&doc.message, &parsed)?;
        }
        crate::ingest::drift::after_save(&self.store, &self.config.drift, &doc, &parsed.kind, was_unknown)?;
        if let Some(start) = completes {
            // The final replies to its own start: that start is completed by it, exactly.
            let outcome = Outcome::Completed(doc.message.id);
            self.store
                .set_outcome(start, outcome.as_str(), outcome.final_id())?;
        }
        if let Kind::Rating { target: Some(target) } = parsed.kind {
            self.store.set_rated(target, doc.message.id)?;
        }
        if attachments_changed {
            // Whether the archive keeps its images is the core's (its table of kinds).
            let archivable = mjlink_core::kinds::shape(&parsed.kind).is_archived();
            self.store
                .replace_attachments(doc.message.id, &parsed.attachments, !is_new, archivable)?;
        }
        match link {
            LinkWork::Relink { child, tile, exact } => self.relink(child, tile, exact, is_new)?,
            LinkWork::Drop => self.store.delete_link(doc.message.id)?,
            LinkWork::None => {}
        }
        if may_be_parent {
            self.on_new_parent(&doc.message, &parsed)?;
        }
        if settle || names_its_job_now {
            self.settle_progress(doc.message.id)?;
        }
        if first_seen {
            self.reconsider_replies_to(doc.message.id)?;
            if matches!(parsed.kind, Kind::Progress { .. }) {
                self.resettle_rivals_of(doc.message.id)?;
            }
        }
        if names_its_job_now && !first_seen && self.store.was_rival(doc.message.id)? {
            self.resettle_rivals_of(doc.message.id)?;
        }
        if from_sender {
            self.spent.push(Spent { doc, parsed, row });
        }
        Ok(Applied::Applied)
    }

    /// A start seen for the first time is a rival of the starts around it whose single
    /// final was found by prompt ([`lineage::settle`]): settle them again, so that the outcome
    /// does not depend on which of them arrived first (a backfill reads newest first).
    fn resettle_rivals_of(&mut self, start: Snowflake) -> Result<(), StoreError> {
        let Some(progress) = self.store.progress_row(start)? else {
            return Ok(());
        };
        let window = self.config.window_ms;
        let around = self.store.progress_waiting_for(
            None,
            progress.scope(),
            progress.posted_at - window,
            progress.posted_at + window,
        )?;
        for other in around {
            if other.id != start && lineage::rivals_matter(&start_of(&other)) {
                self.settle_progress(other.id)?;
            }
        }
        Ok(())
    }

    /// Format drift: a payload the decoder rejected that `found` says is a message (counted
    /// and kept when Midjourney wrote it; see [`crate::ingest::drift`]).
    pub fn undecodable(
        &mut self,
        found: &mjlink_core::drift::Undecodable,
        raw: &str,
    ) -> Result<bool, StoreError> {
        self.store.begin()?;
        crate::ingest::drift::undecodable(&self.store, &self.config.drift, &self.config.bots, found, raw)
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

    /// `mjlink link set CHILD PARENT`: settles a result's parent by hand (signal `manual`,
    /// with who and when), as [`lineage::set_manual`] decides, then re-runs the fallback of
    /// the results whose tile it took or gave back. `Ok(Err(reason))`: refused, nothing
    /// written.
    pub fn set_manual_link(
        &mut self,
        child: Snowflake,
        parent: Snowflake,
        by: &str,
        now_ms: i64,
    ) -> Result<Result<(), String>, StoreError> {
        let old = self.store.get_link(child)?;
        let shape = self
            .store
            .message_place(parent)?
            .map(|place| mjlink_core::kinds::shape_of_name(&place.kind));
        let (link, redecide) = match lineage::set_manual(old.as_ref(), parent, shape) {
            Err(reason) => return Ok(Err(reason)),
            Ok(Relinked::Keep) => (None, Vec::new()),
            Ok(Relinked::Put { link, redecide }) => (Some(link), redecide),
        };
        self.store.begin()?;
        if let Some(link) = &link {
            self.store.put_link(link)?;
        }
        let note = crate::store::ManualNote {
            parent_id: parent,
            set_by: by.to_string(),
            set_at_ms: now_ms,
        };
        self.store.put_manual_note(child, &note)?;
        self.redecide_tiles(child, redecide)?;
        self.flush()?;
        Ok(Ok(()))
    }

    /// `mjlink link clear CHILD`: removes a manual link (only one), and lets the fallback
    /// decide the result again. `Ok(Err(reason))`: refused, nothing written.
    pub fn clear_manual_link(&mut self, child: Snowflake) -> Result<Result<(), String>, StoreError> {
        let old = self.store.get_link(child)?;
        let cleared = match lineage::clear_manual(old.as_ref()) {
            Ok(cleared) => cleared,
            Err(reason) => return Ok(Err(reason)),
        };
        self.store.begin()?;
        self.store.put_link(&cleared)?;
        self.store.delete_manual_note(child)?;
        let mut redecide = lineage::tiles_to_redecide(old.as_ref(), &cleared);
        redecide.extend(self.refallback(child)?);
        redecide.dedup();
        self.redecide_tiles(child, redecide)?;
        self.flush()?;
        Ok(Ok(()))
    }

    /// Read -> decide -> write for a result's link.
    fn relink(
        &mut self,
        child: Child,
        tile: Option<u8>,
        exact: Option<Decision>,
        is_new: bool,
    ) -> Result<(), StoreError> {
        // A message stored for the first time has no link yet.
        let old = if is_new {
            None
        } else {
            self.store.get_link(child.id)?
        };
        let candidates = if lineage::needs_fallback(exact.as_ref(), old.as_ref()) {
            Some(self.candidates(child.id, child.action, tile, child.posted_ms)?)
        } else {
            None
        };
        let (new, redecide) = match lineage::relink(
            child,
            tile,
            exact,
            old.as_ref(),
            candidates.as_deref(),
            self.config.window_ms,
        ) {
            Relinked::Keep => return Ok(()),
            Relinked::Put { link, redecide } => (link, redecide),
        };
        self.store.put_link(&new)?;
        self.mark_evidence(child, tile, old.as_ref(), &new)?;
        if old.as_ref().is_some_and(|old| old.decision.is_manual()) {
            // An exact signal replaced a manual link: who set it no longer matters.
            self.store.delete_manual_note(child.id)?;
        }
        tracing::debug!(
            child_id = %child.id,
            parent_id = ?new.decision.parent.map(|parent| parent.0),
            action = new.action.as_str(),
            tile = ?tile,
            signal = ?new.decision.signal,
            status = new.decision.status.as_str(),
            candidates = new.decision.candidates.len(),
            "link decided"
        );
        self.redecide_tiles(child.id, redecide)
    }

    /// Re-runs the fallback of the results that have a parent among their candidates whose
    /// tile `changed` took or gave back, and in turn for those of theirs that change. A
    /// result's fallback depends only on exact links and on the results before it
    /// ([`mjlink_core::link::TileTakers`]), so the same messages give the same links whatever
    /// order they came in, and this ends; the bound only guards against a bug looping.
    fn redecide_tiles(&mut self, changed: Snowflake, tiles: Vec<(Snowflake, u8)>) -> Result<(), StoreError> {
        const MAX_REDECISIONS: usize = 100_000;
        let mut work = std::collections::VecDeque::from([(changed, tiles)]);
        let mut redecided = 0usize;
        while let Some((changed, tiles)) = work.pop_front() {
            for (parent, tile) in tiles {
                let Some(facts) = self.store.child_facts(parent)? else {
                    continue;
                };
                let Some(scope) = facts.scope() else {
                    continue;
                };
                let horizon = mjlink_core::link::horizon_ms(self.config.window_ms);
                let siblings = self.store.fallback_children_for_tile(
                    scope,
                    facts.posted_ms,
                    facts.posted_ms + horizon,
                    tile,
                )?;
                for sibling in siblings {
                    if sibling == changed {
                        continue;
                    }
                    redecided += 1;
                    if redecided > MAX_REDECISIONS {
                        tracing::warn!(child_id = %changed, "the fallback's re-decisions did not settle; stopped");
                        return Ok(());
                    }
                    let more = self.refallback(sibling)?;
                    if !more.is_empty() {
                        work.push_back((sibling, more));
                    }
                }
            }
        }
        Ok(())
    }

    /// The fallback's candidates for a result: same channel, user and normalized prompt,
    /// posted within the horizon before it (the core keeps the window's and the rivals').
    fn candidates(
        &mut self,
        child_id: Snowflake,
        action: Action,
        tile: Option<u8>,
        posted_ms: i64,
    ) -> Result<Vec<Candidate>, StoreError> {
        let facts = self.store.child_facts(child_id)?;
        let Some(scope) = facts.as_ref().and_then(ChildFacts::scope) else {
            return Ok(Vec::new());
        };
        let from_ms = posted_ms - mjlink_core::link::horizon_ms(self.config.window_ms);
        let mut candidates = if action == Action::Animate {
            // Its echo rewrote the prompt of the image it animates (wire notes section 9).
            let form = mjlink_core::prompt::split(scope.prompt_norm).animated_form();
            self.store.animation_candidates(
                scope.channel_id,
                scope.user_id,
                &form,
                from_ms,
                posted_ms,
                child_id,
            )?
        } else {
            self.store.candidates(scope, from_ms, posted_ms, tile, child_id)?
        };
        // A candidate's marks narrow only where the channel trusts the family of its button
        // that makes this action.
        for candidate in &mut candidates {
            let trusted = match Family::of(action, candidate.shape) {
                Some(family) => self.trust_of(scope.channel_id, family)?.trusted(),
                None => false,
            };
            if !trusted {
                candidate.marks = None;
            }
        }
        Ok(candidates)
    }

    /// Re-runs the fallback for a stored result without an exact link; returns the parents
    /// and tiles whose holder that changed (see [`Pipeline::redecide_tiles`]).
    fn refallback(&mut self, child_id: Snowflake) -> Result<Vec<(Snowflake, u8)>, StoreError> {
        let Some(old) = self.store.get_link(child_id)? else {
            return Ok(Vec::new());
        };
        if old.decision.is_settled() {
            return Ok(Vec::new());
        }
        let posted_ms = self
            .store
            .child_facts(child_id)?
            .map_or_else(|| child_id.timestamp_ms(), |facts| facts.posted_ms);
        let candidates = self.candidates(child_id, old.action, old.tile, posted_ms)?;
        match lineage::refallback(&old, posted_ms, &candidates, self.config.window_ms) {
            Some(new) => {
                self.store.put_link(&new)?;
                Ok(lineage::tiles_to_redecide(Some(&old), &new))
            }
            None => Ok(Vec::new()),
        }
    }

    /// A single image or an animation, first seen, is kept under its animated form: where an
    /// animation without its reference finds the image it animates.
    fn keep_animated_form(&mut self, message: &Message, parsed: &Parsed) -> Result<(), StoreError> {
        let action = match parsed.kind {
            Kind::Result(action) => Some(action),
            _ => None,
        };
        if !crate::store::keeps_animated_form(mjlink_core::kinds::shape(&parsed.kind), action) {
            return Ok(());
        }
        let prompt_norm = parsed.normalized_prompt();
        if let Some(scope) = PromptScope::of(message.channel_id, parsed.user_id, prompt_norm.as_deref()) {
            let form = mjlink_core::prompt::split(scope.prompt_norm).animated_form();
            self.store.put_animated_form(
                message.id,
                scope.channel_id,
                scope.user_id,
                &form,
                message.posted_ms(),
            )?;
        }
        Ok(())
    }

    /// A new grid or single image can change the fallback of later results with the same
    /// prompt (an animation: with the same animated form), and can be the final of a
    /// start/progress message.
    fn on_new_parent(&mut self, message: &Message, parsed: &Parsed) -> Result<(), StoreError> {
        let posted = message.posted_ms();
        let prompt_norm = parsed.normalized_prompt();
        let scope = PromptScope::of(message.channel_id, parsed.user_id, prompt_norm.as_deref());
        if let Some(scope) = scope {
            let until = posted + mjlink_core::link::horizon_ms(self.config.window_ms);
            let mut children = self.store.fallback_children(scope, posted, until)?;
            if mjlink_core::kinds::shape(&parsed.kind) == Shape::SingleImage {
                // The animations of this image, whose echo rewrote its prompt.
                let form = mjlink_core::prompt::split(scope.prompt_norm).animated_form();
                children.extend(self.store.animation_children(
                    scope.channel_id,
                    scope.user_id,
                    &form,
                    posted,
                    until,
                )?);
            }
            for child_id in children {
                if child_id != message.id {
                    let tiles = self.refallback(child_id)?;
                    self.redecide_tiles(child_id, tiles)?;
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
            if lineage::settles_on_new_final(&start_of(&progress)) {
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
        // Does nothing unless the message is a seen start/progress message.
        self.settle_progress(id)
    }

    /// Read -> decide -> write for the outcome of a start/progress message.
    fn settle_progress(&mut self, id: Snowflake) -> Result<(), StoreError> {
        let Some(progress) = self.store.progress_row(id)? else {
            return Ok(());
        };
        if let Some(final_id) = progress.final_id {
            // Completed by a final that replies to it: nothing found by job or prompt can be
            // more certain than that.
            if self.store.reply_target_of(final_id)? == Some(progress.id) {
                return Ok(());
            }
        }
        let window = self.config.window_ms;
        let mut start = start_of(&progress);
        let candidates = self.store.finals_for(&progress, progress.posted_at + window)?;
        start.results_after = candidates.rows.iter().any(|(_, kind)| {
            mjlink_core::kinds::shape_of_name(kind).is_result()
                && !lineage::is_final_kind(&start, kind, candidates.by_job)
        });
        let finals: Vec<Snowflake> = candidates
            .rows
            .iter()
            .filter(|(_, kind)| lineage::is_final_kind(&start, kind, candidates.by_job))
            .map(|(id, _)| *id)
            .collect();
        let rivals = match finals.as_slice() {
            [only] if lineage::needs_rivals(&start, &finals) => {
                let final_posted = self
                    .store
                    .child_facts(*only)?
                    .map_or_else(|| only.timestamp_ms(), |facts| facts.posted_ms);
                self.store.progress_waiting_for(
                    None,
                    progress.scope(),
                    final_posted - window,
                    final_posted,
                )?
            }
            _ => Vec::new(),
        };
        let rivals: Vec<Rival<'_>> = rivals
            .iter()
            .map(|rival| Rival {
                id: rival.id,
                action: rival.action.as_deref(),
            })
            .collect();
        let outcome = lineage::settle(&start, &finals, &rivals);
        if outcome == Outcome::Unknown && finals.len() == 1 {
            // Its rivals kept the final found by prompt from being certain: when one of them
            // names its job, this start is settled again (`names_its_job_now`).
            for rival in rivals.iter().filter(|rival| rival.id != id) {
                self.store.note_rival(rival.id)?;
            }
        }
        if outcome == Outcome::Failed {
            tracing::debug!(message_id = %id, prompt = ?progress.prompt_norm, "job failed: its progress message was deleted with no final (silent moderation)");
        }
        self.store.set_outcome(id, outcome.as_str(), outcome.final_id())
    }
}

/// Where a save was decided.
#[allow(clippy::large_enum_variant)] // passed once per save, never kept
enum Origin {
    /// Here, on the writer.
    Writer,
    /// By the sender's prepare stage (`ingest::prepare`), with the row it made of it: what
    /// the pipeline is done with of it goes back to the sender ([`Spent`]).
    Sender { row: Option<MessageRow> },
}

/// What settling needs of a stored start/progress row.
fn start_of(progress: &ProgressRow) -> Start<'_> {
    Start {
        id: progress.id,
        action: progress.action.as_deref(),
        has_job_uuid: progress.job_uuid.is_some(),
        deleted: progress.deleted,
        child_start: progress.action.is_none() && progress.reply_to.is_some(),
        video: lineage::is_video_start(progress.action.as_deref(), progress.prompt_norm.as_deref()),
        results_after: false,
    }
}
