//! The writer's memory of the messages it stored or read recently: what `messages` and `docs`
//! hold for each, so that the next event about a recent message (its edits, its deletion, a
//! reply's copy of it, settling its start) does not read and decode it again.
//!
//! On only for the pipeline's store (`Store::keep_recent`): the pipeline is the only writer of
//! these columns. Rows are written through (SQLite's queries read them); a doc is written
//! back: the newest doc of each message saved in a batch is encoded and written once, before
//! the batch commits (a message edited three times in a batch is encoded once), or when it
//! leaves the cache. So a commit holds the same rows it always did, and a crash loses only
//! the open batch, docs included. A rollback forgets everything. An entry also remembers that
//! a message has no row at all, so the first save of a message is a plain `INSERT`.
//!
//! Its size does not grow with history: two generations of about `capacity / 2` entries
//! each; when the newer one is full the older is dropped, and an entry read from the older
//! one moves to the newer. In debug builds every answer is checked against SQLite.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::OptionalExtension;

use mjlink_core::merge::Doc;
use mjlink_core::snowflake::Snowflake;

use super::docs::{self, EncodedDoc, PreparedDoc};
use super::{
    opt_snowflake, ChildFacts, MessageRow, ProgressRow, ReplyTargetRow, Result, Store, StoredMessage,
};

/// The columns of a message's row that the pipeline reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RowFacts {
    pub seen: bool,
    pub kind: String,
    pub deleted_at: Option<i64>,
    pub posted_at: Option<i64>,
    pub channel_id: Option<Snowflake>,
    pub user_id: Option<Snowflake>,
    pub prompt: Option<String>,
    pub prompt_norm: Option<String>,
    pub job_uuid: Option<String>,
    pub nonce: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub final_id: Option<Snowflake>,
    pub reply_to: Option<Snowflake>,
    pub used_buttons: Option<String>,
    /// Written by `set_rated` only (a save leaves it as it was).
    pub rated_by: Option<Snowflake>,
}

impl RowFacts {
    /// The row `save_message` writes over `before` (none: a new row). A save leaves
    /// `deleted_at` and `rated_by` as they were, and keeps a start's settled outcome (see its
    /// query).
    pub fn saved(row: &MessageRow, before: Option<&RowFacts>) -> RowFacts {
        let outcome = row.outcome.map(|initial| {
            before
                .and_then(|before| before.outcome.clone())
                .unwrap_or_else(|| initial.to_string())
        });
        RowFacts {
            seen: row.seen,
            kind: row.kind.clone(),
            deleted_at: before.and_then(|before| before.deleted_at),
            posted_at: row.posted_at,
            channel_id: row.channel_id,
            user_id: row.user_id,
            prompt: row.prompt.clone(),
            prompt_norm: row.prompt_norm.clone(),
            job_uuid: row.job_uuid.clone(),
            nonce: row.nonce.clone(),
            action: row.action.clone(),
            outcome,
            final_id: row.outcome.and(before.and_then(|before| before.final_id)),
            reply_to: row.reply_to,
            used_buttons: row.used_buttons.clone(),
            rated_by: before.and_then(|before| before.rated_by),
        }
    }

    /// Whether `row` has the same values in every column that an index, a partial index's
    /// condition or a trigger reads (`day`, `prompt_key` and `job_key` follow from them):
    /// then saving it changes only the row itself.
    pub fn same_lookups(&self, row: &MessageRow) -> bool {
        self.kind == row.kind
            && self.posted_at == row.posted_at
            && self.channel_id == row.channel_id
            && self.user_id == row.user_id
            && self.prompt == row.prompt
            && self.prompt_norm == row.prompt_norm
            && self.job_uuid == row.job_uuid
            && self.nonce == row.nonce
            && self.reply_to == row.reply_to
    }

    /// The row `mark_deleted` makes for a message it had no row of.
    pub fn placeholder(channel_id: Option<Snowflake>, deleted_at: i64) -> RowFacts {
        RowFacts {
            seen: false,
            kind: "pending".to_string(),
            deleted_at: Some(deleted_at),
            posted_at: None,
            channel_id,
            user_id: None,
            prompt: None,
            prompt_norm: None,
            job_uuid: None,
            nonce: None,
            action: None,
            outcome: None,
            final_id: None,
            reply_to: None,
            used_buttons: None,
            rated_by: None,
        }
    }

    pub fn child_facts(&self, id: Snowflake) -> ChildFacts {
        ChildFacts {
            posted_ms: self.posted_at.unwrap_or_else(|| id.timestamp_ms()),
            channel_id: self.channel_id,
            user_id: self.user_id,
            prompt_norm: self.prompt_norm.clone(),
        }
    }

    /// Its start/progress row: the same condition as `progress_row`'s query.
    pub fn progress_row(&self, id: Snowflake) -> Option<ProgressRow> {
        (self.kind == "progress" && self.seen).then(|| ProgressRow {
            id,
            channel_id: self.channel_id,
            user_id: self.user_id,
            prompt_norm: self.prompt_norm.clone(),
            job_uuid: self.job_uuid.clone(),
            posted_at: self.posted_at.unwrap_or_else(|| id.timestamp_ms()),
            deleted: self.deleted_at.is_some(),
            action: self.action.clone(),
            reply_to: self.reply_to,
            final_id: self.final_id,
        })
    }

    /// What a reply needs of the message it replies to: the same condition as
    /// `reply_target`'s query.
    pub fn reply_target(&self) -> Option<ReplyTargetRow> {
        self.seen.then(|| ReplyTargetRow {
            kind: self.kind.clone(),
            job_uuid: self.job_uuid.clone(),
            prompt_norm: self.prompt_norm.clone(),
            user_id: self.user_id,
        })
    }
}

/// What the store holds of one message: its row and its doc.
#[derive(Debug, Clone)]
pub(super) struct RecentMessage {
    pub facts: RowFacts,
    pub doc: Doc,
    /// `doc` is newer than SQLite's: to be written before the batch commits.
    pub unwritten: Option<Unwritten>,
}

#[derive(Debug, Clone)]
pub(super) struct Unwritten {
    /// SQLite holds an older doc of the message.
    pub had_doc: bool,
    /// The doc's encoding, when it was prepared off the writer's thread.
    pub encoded: Option<EncodedDoc>,
}

impl RecentMessage {
    pub fn stored(&self) -> StoredMessage {
        StoredMessage {
            doc: self.doc.clone(),
            seen: self.facts.seen,
            kind: self.facts.kind.clone(),
            deleted_at: self.facts.deleted_at,
        }
    }
}

/// What the cache knows of a message.
#[derive(Debug)]
enum Known<'a> {
    /// Nothing: ask SQLite.
    Unknown,
    /// It has no row.
    Absent,
    Stored(&'a mut RecentMessage),
}

/// Whether a message has a row, as far as the cache knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Row {
    Unknown,
    Absent,
    Present,
}

/// `None` in a map: the message has no row.
type Generation = HashMap<Snowflake, Option<RecentMessage>>;

#[derive(Debug, Default)]
pub(super) struct Recent {
    /// 0: off.
    capacity: usize,
    newer: Generation,
    older: Generation,
    /// Messages whose doc is unwritten (some may have been written since).
    unwritten: Vec<Snowflake>,
}

impl Recent {
    pub fn new(capacity: usize) -> Recent {
        Recent {
            capacity,
            ..Recent::default()
        }
    }

    pub fn is_on(&self) -> bool {
        self.capacity > 0
    }

    fn get(&mut self, id: Snowflake) -> Known<'_> {
        if !self.newer.contains_key(&id) {
            match self.older.remove(&id) {
                Some(entry) => {
                    self.newer.insert(id, entry);
                }
                None => return Known::Unknown,
            }
        }
        match self.newer.get_mut(&id) {
            Some(Some(message)) => Known::Stored(message),
            Some(None) => Known::Absent,
            None => Known::Unknown,
        }
    }

    /// Remembers what the store now holds of `id` (`None`: no row). When the older
    /// generation leaves the cache to make room, returns its messages whose doc is unwritten:
    /// they must be written.
    #[must_use]
    fn put(&mut self, id: Snowflake, entry: Option<RecentMessage>) -> Vec<(Snowflake, RecentMessage)> {
        let mut unwritten = Vec::new();
        if !self.is_on() {
            return unwritten;
        }
        if entry.as_ref().is_some_and(|message| message.unwritten.is_some()) {
            self.unwritten.push(id);
        }
        self.older.remove(&id);
        if self.newer.len() >= self.capacity.div_ceil(2) && !self.newer.contains_key(&id) {
            // The maps swap places, so that each keeps its room.
            std::mem::swap(&mut self.newer, &mut self.older);
            for (id, message) in self.newer.drain() {
                match message {
                    Some(message) if message.unwritten.is_some() => unwritten.push((id, message)),
                    _ => {}
                }
            }
        }
        self.newer.insert(id, entry);
        unwritten
    }

    /// The doc remembered of `id`, without making it newer.
    fn peek(&self, id: Snowflake) -> Option<&Doc> {
        let found = self.newer.get(&id).or_else(|| self.older.get(&id));
        found.and_then(Option::as_ref).map(|message| &message.doc)
    }

    /// Forgets `id`; returns what was remembered of it.
    fn forget(&mut self, id: Snowflake) -> Option<RecentMessage> {
        let newer = self.newer.remove(&id).flatten();
        let older = self.older.remove(&id).flatten();
        newer.or(older)
    }

    /// Forgets everything (after a rollback), unwritten docs included.
    pub fn clear(&mut self) {
        self.newer.clear();
        self.older.clear();
        self.unwritten.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

/// What SQLite holds of a message, read in one lookup.
#[allow(clippy::large_enum_variant)] // returned at once, never kept
pub(super) enum Loaded {
    Absent,
    /// A row without a doc (its facts: for the debug builds' check).
    NoDoc(#[cfg_attr(not(debug_assertions), allow(dead_code))] RowFacts),
    Stored(RowFacts, Doc),
}

impl Store {
    /// Turns on the cache of recent messages, `capacity` at most. Only for the store of the
    /// single writer (the pipeline's): a cache beside another writer would go stale.
    pub fn keep_recent(&mut self, capacity: usize) {
        *self.recent.get_mut() = Recent::new(capacity);
    }

    /// The doc of the event being applied, encoded off the writer's thread: saving an equal
    /// doc uses its encoding. Good until [`Store::withdraw_prepared`].
    pub fn offer_prepared(&self, prepared: PreparedDoc) {
        *self.prepared.borrow_mut() = Some(prepared);
    }

    pub fn withdraw_prepared(&self) {
        self.prepared.borrow_mut().take();
    }

    /// The prepared doc, if it is `doc`.
    fn take_prepared(&self, doc: &Doc) -> Option<PreparedDoc> {
        self.prepared
            .borrow_mut()
            .take_if(|prepared| prepared.doc == *doc)
    }

    /// What the cache answers about `id`, through `answer` (`None`: it does not know).
    /// Debug builds check the cache against SQLite first.
    pub(super) fn ask_recent<T>(
        &self,
        id: Snowflake,
        answer: impl FnOnce(Option<&RecentMessage>) -> T,
    ) -> Result<Option<T>> {
        let mut recent = self.recent.borrow_mut();
        let cached = match recent.get(id) {
            Known::Unknown => return Ok(None),
            Known::Absent => None,
            Known::Stored(message) => Some(&*message),
        };
        #[cfg(debug_assertions)]
        self.check_recent(id, cached)?;
        Ok(Some(answer(cached)))
    }

    #[cfg(debug_assertions)]
    fn check_recent(&self, id: Snowflake, cached: Option<&RecentMessage>) -> Result<()> {
        let unwritten = cached.and_then(|message| message.unwritten.as_ref());
        let agree = match (self.load_recent(id)?, cached) {
            (Loaded::Absent, None) => true,
            (Loaded::NoDoc(facts), Some(cached)) => {
                facts == cached.facts && unwritten.is_some_and(|unwritten| !unwritten.had_doc)
            }
            (Loaded::Stored(facts, doc), Some(cached)) => {
                facts == cached.facts
                    && match unwritten {
                        None => doc == cached.doc,
                        Some(unwritten) => unwritten.had_doc,
                    }
            }
            _ => false,
        };
        assert!(agree, "the cache is wrong about message {id}: {cached:?}");
        Ok(())
    }

    /// Whether `id` has a row, as far as the cache knows.
    pub(super) fn recent_row(&self, id: Snowflake) -> Row {
        match self.recent.borrow_mut().get(id) {
            Known::Unknown => Row::Unknown,
            Known::Absent => Row::Absent,
            Known::Stored(_) => Row::Present,
        }
    }

    /// Whether saving `row` would change only the row itself (see [`RowFacts::same_lookups`]),
    /// as far as the cache knows.
    pub(super) fn changes_only_the_row(&self, row: &MessageRow) -> bool {
        match self.recent.borrow_mut().get(row.id) {
            Known::Stored(message) => message.facts.same_lookups(row),
            Known::Absent | Known::Unknown => false,
        }
    }

    /// Remembers what the store now holds of `id` (`None`: no row).
    pub(super) fn remember(&self, id: Snowflake, message: Option<RecentMessage>) -> Result<()> {
        let unwritten = self.recent.borrow_mut().put(id, message);
        for (id, message) in unwritten {
            self.write_doc(id, message)?;
        }
        Ok(())
    }

    /// Changes the cached row of `id`, if cached.
    pub(super) fn update_recent(&self, id: Snowflake, change: impl FnOnce(&mut RowFacts)) {
        if let Known::Stored(message) = self.recent.borrow_mut().get(id) {
            change(&mut message.facts);
        }
    }

    /// Stores the doc of the row `save_message` just wrote; `before`: what the cache knew of
    /// the message before. In a batch with the cache on, the doc waits for the commit.
    pub(super) fn save_doc(&self, row: &MessageRow, doc: &Doc, before: Row) -> Result<()> {
        let prepared = self.take_prepared(doc);
        // What the row had that a save leaves as it was, and whether SQLite has a doc.
        let kept = match self.recent.borrow_mut().get(row.id) {
            Known::Stored(message) => Some((
                RowFacts::saved(row, Some(&message.facts)),
                message
                    .unwritten
                    .as_ref()
                    .is_none_or(|unwritten| unwritten.had_doc),
            )),
            Known::Absent => Some((RowFacts::saved(row, None), false)),
            Known::Unknown => None,
        };
        match kept {
            Some((facts, had_doc)) if self.in_batch => {
                let (doc, encoded) = match prepared {
                    Some(PreparedDoc { doc, encoded }) => (doc, Some(encoded)),
                    None => (doc.clone(), None),
                };
                let message = RecentMessage {
                    facts,
                    doc,
                    unwritten: Some(Unwritten { had_doc, encoded }),
                };
                self.remember(row.id, Some(message))
            }
            // Unknown to the cache (or the cache is off), or outside a batch: written now.
            _ => {
                self.forget_recent(row.id)?;
                let encoded = prepared.map_or_else(|| EncodedDoc::of(doc), |prepared| prepared.encoded);
                self.insert_doc(row.id, &encoded, before != Row::Absent)
            }
        }
    }

    /// Forgets `id`, writing its doc first if it waits for the commit.
    pub(super) fn forget_recent(&self, id: Snowflake) -> Result<()> {
        let forgotten = self.recent.borrow_mut().forget(id);
        match forgotten {
            Some(message) => self.write_doc(id, message),
            None => Ok(()),
        }
    }

    /// Writes the docs that wait for the commit.
    pub(super) fn write_unwritten_docs(&self) -> Result<()> {
        let ids = std::mem::take(&mut self.recent.borrow_mut().unwritten);
        // (id, encoding if prepared, had_doc) of each doc still unwritten.
        let mut waiting = Vec::with_capacity(ids.len());
        {
            let mut recent = self.recent.borrow_mut();
            for id in ids {
                if let Known::Stored(message) = recent.get(id) {
                    if let Some(unwritten) = message.unwritten.take() {
                        waiting.push((id, unwritten.encoded, unwritten.had_doc));
                    }
                }
            }
        }
        // The docs changed by the batch (edits of messages stored before) are encoded here,
        // on two threads: the writer's is the pipeline's bottleneck (see `docs::encode_all`).
        {
            let recent = self.recent.borrow();
            let (slots, docs): (Vec<usize>, Vec<&Doc>) = waiting
                .iter()
                .enumerate()
                .filter(|(_, (_, encoded, _))| encoded.is_none())
                .filter_map(|(slot, (id, _, _))| recent.peek(*id).map(|doc| (slot, doc)))
                .unzip();
            for (slot, encoded) in slots.into_iter().zip(docs::encode_all(&docs)) {
                waiting[slot].1 = Some(encoded);
            }
        }
        for (id, encoded, had_doc) in waiting {
            if let Some(encoded) = encoded {
                self.insert_doc(id, &encoded, had_doc)?;
            }
        }
        Ok(())
    }

    /// Writes the doc of a message leaving the cache, if unwritten.
    fn write_doc(&self, id: Snowflake, message: RecentMessage) -> Result<()> {
        let Some(unwritten) = message.unwritten else {
            return Ok(());
        };
        let encoded = unwritten.encoded.unwrap_or_else(|| EncodedDoc::of(&message.doc));
        self.insert_doc(id, &encoded, unwritten.had_doc)
    }

    /// Writes the doc `encoded` of `id`: a plain insert when SQLite has none (`had_doc`).
    pub(super) fn insert_doc(&self, id: Snowflake, encoded: &EncodedDoc, had_doc: bool) -> Result<()> {
        self.insert_or_upsert(
            !had_doc,
            "INSERT INTO docs (id, doc) VALUES (?1, ?2)",
            "INSERT INTO docs (id, doc) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
            rusqlite::params![id.to_sql(), encoded.as_bytes()],
        )
    }

    /// `answer` on the row of `id` (`None`: it has none): from the cache when it knows the
    /// message, else read from SQLite (and not cached: a lookup's rows are many, and most
    /// are not asked about again).
    pub(super) fn with_row_facts<T>(
        &self,
        id: Snowflake,
        answer: impl Fn(Option<&RowFacts>) -> T,
    ) -> Result<T> {
        if let Some(known) = self.ask_recent(id, |message| answer(message.map(|message| &message.facts)))? {
            return Ok(known);
        }
        let facts = self.with_statement(
            "SELECT seen, kind, deleted_at, posted_at, channel_id, user_id, prompt_norm, job_uuid, action, prompt,
                 nonce, outcome, final_id, reply_to, used_buttons, rated_by
             FROM messages WHERE id = ?1",
            |stmt| Ok(stmt.query_row([id.to_sql()], |row| facts_at(row, 0)).optional()?),
        )?;
        Ok(answer(facts.as_ref()))
    }

    /// Reads what the store holds of a message, row and doc, in one lookup.
    pub(super) fn load_recent(&self, id: Snowflake) -> Result<Loaded> {
        self.with_statement(
            "SELECT d.doc, m.seen, m.kind, m.deleted_at, m.posted_at, m.channel_id, m.user_id, m.prompt_norm,
                 m.job_uuid, m.action, m.prompt, m.nonce, m.outcome, m.final_id, m.reply_to, m.used_buttons,
                 m.rated_by
             FROM messages m LEFT JOIN docs d ON d.id = m.id WHERE m.id = ?1",
            |stmt| {
                let mut rows = stmt.query([id.to_sql()])?;
                let Some(row) = rows.next()? else {
                    return Ok(Loaded::Absent);
                };
                let facts = facts_at(row, 1)?;
                Ok(match row.get_ref(0)? {
                    ValueRef::Null => Loaded::NoDoc(facts),
                    stored => Loaded::Stored(facts, self.codec.borrow_mut().decode(id, stored)?),
                })
            },
        )
    }
}

/// A message's row facts from `row`, its columns from `first` on in the order of
/// [`Store::load_recent`]'s query.
fn facts_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<RowFacts> {
    let at = |column: usize| first + column;
    Ok(RowFacts {
        seen: row.get(at(0))?,
        kind: row.get(at(1))?,
        deleted_at: row.get(at(2))?,
        posted_at: row.get(at(3))?,
        channel_id: opt_snowflake(row.get(at(4))?),
        user_id: opt_snowflake(row.get(at(5))?),
        prompt_norm: row.get(at(6))?,
        job_uuid: row.get(at(7))?,
        action: row.get(at(8))?,
        prompt: row.get(at(9))?,
        nonce: row.get(at(10))?,
        outcome: row.get(at(11))?,
        final_id: opt_snowflake(row.get(at(12))?),
        reply_to: opt_snowflake(row.get(at(13))?),
        used_buttons: row.get(at(14))?,
        rated_by: opt_snowflake(row.get(at(15))?),
    })
}

#[cfg(test)]
mod tests;
