//! One message as the pipeline writes and reads it: its row in `messages`, its merged doc in
//! `docs` (see `docs.rs`) and its attachments. Reads and writes go through the writer's cache
//! of recent messages (`recent.rs`) when it is on.

use rusqlite::{params, OptionalExtension};

use mjlink_core::merge::Doc;
use mjlink_core::snowflake::Snowflake;
use mjlink_core::wire::Attachment;

use super::docs::EncodedDoc;
use super::recent::{Loaded, RecentMessage, Row, RowFacts};
use super::{opt_sql, text_key, Result, Store};

/// What the store knows about one message.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub doc: Doc,
    pub seen: bool,
    pub kind: String,
    pub deleted_at: Option<i64>,
}

/// One row of the messages table, as the pipeline writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageRow {
    pub id: Snowflake,
    pub channel_id: Option<Snowflake>,
    pub guild_id: Option<Snowflake>,
    pub author_id: Option<Snowflake>,
    pub seen: bool,
    pub kind: String,
    pub prompt: Option<String>,
    pub prompt_norm: Option<String>,
    pub params: Option<String>,
    pub user_id: Option<Snowflake>,
    pub mode: Option<String>,
    pub stealth: bool,
    pub tile: Option<u8>,
    pub action: Option<String>,
    pub job_uuid: Option<String>,
    pub detail: Option<String>,
    pub stage: Option<String>,
    pub error_title: Option<String>,
    pub posted_at: Option<i64>,
    pub edited_at: Option<i64>,
    pub nonce: Option<String>,
    /// The message it replies to (never a forward); for a rating, the job it rates.
    pub reply_to: Option<Snowflake>,
    /// Its used buttons (`wire::used_buttons`); `None` when its buttons are unknown.
    pub used_buttons: Option<String>,
    /// A start/progress message's first outcome (`running`, from the core); `None` for any
    /// other kind. An outcome already settled is kept.
    pub outcome: Option<&'static str>,
}

/// A message's row: the insert, and the insert that updates a row already there.
macro_rules! insert_message {
    () => {
        "INSERT INTO messages (id, channel_id, guild_id, author_id, seen, kind, prompt, prompt_norm, params,
             user_id, mode, stealth, tile, job_uuid, detail, stage, error_title, posted_at, edited_at, outcome, action,
             prompt_key, job_key, day, nonce, reply_to, used_buttons)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
             ?24, ?20, ?21, ?22, ?25, ?23, ?26, ?27)"
    };
}
const INSERT_MESSAGE: &str = insert_message!();
const UPSERT_MESSAGE: &str = concat!(
    insert_message!(),
    "
         ON CONFLICT(id) DO UPDATE SET channel_id = excluded.channel_id, guild_id = excluded.guild_id,
             author_id = excluded.author_id, seen = excluded.seen, kind = excluded.kind,
             prompt = excluded.prompt, prompt_norm = excluded.prompt_norm, params = excluded.params,
             user_id = excluded.user_id, mode = excluded.mode, stealth = excluded.stealth, tile = excluded.tile,
             job_uuid = excluded.job_uuid, detail = excluded.detail, stage = excluded.stage,
             error_title = excluded.error_title, posted_at = excluded.posted_at, edited_at = excluded.edited_at,
             outcome = CASE WHEN excluded.outcome IS NOT NULL THEN COALESCE(messages.outcome, excluded.outcome) END,
             final_id = CASE WHEN excluded.outcome IS NOT NULL THEN messages.final_id END,
             action = excluded.action, prompt_key = excluded.prompt_key, job_key = excluded.job_key,
             day = excluded.day, nonce = excluded.nonce, reply_to = excluded.reply_to,
             used_buttons = excluded.used_buttons"
);
/// The upsert's update, for a row whose indexed columns do not change (the same values).
const UPDATE_MESSAGE: &str = "UPDATE messages SET guild_id = ?3, author_id = ?4, seen = ?5, params = ?9,
         mode = ?11, stealth = ?12, tile = ?13, detail = ?15, stage = ?16, error_title = ?17, edited_at = ?19,
         outcome = CASE WHEN ?24 IS NOT NULL THEN COALESCE(outcome, ?24) END,
         final_id = CASE WHEN ?24 IS NOT NULL THEN final_id END, action = ?20, used_buttons = ?27
     WHERE id = ?1 AND channel_id IS ?2 AND kind IS ?6 AND prompt IS ?7 AND prompt_norm IS ?8
         AND user_id IS ?10 AND job_uuid IS ?14 AND posted_at IS ?18 AND prompt_key IS ?21 AND job_key IS ?22
         AND nonce IS ?23 AND day IS ?25 AND reply_to IS ?26";

impl Store {
    /// Whether the message itself (not only its updates or deletion) is stored.
    pub fn has_seen(&self, id: Snowflake) -> Result<bool> {
        if let Some(seen) = self.ask_recent(id, |message| message.is_some_and(|m| m.facts.seen))? {
            return Ok(seen);
        }
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT seen FROM messages WHERE id = ?1")?;
        Ok(stmt
            .query_row([id.to_sql()], |row| row.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false))
    }

    /// The message and its doc (none for a row without one). What it reads is remembered by
    /// the writer's cache, when on.
    pub fn load_message(&self, id: Snowflake) -> Result<Option<StoredMessage>> {
        if let Some(known) = self.ask_recent(id, |message| message.map(RecentMessage::stored))? {
            return Ok(known);
        }
        let message = match self.load_recent(id)? {
            Loaded::Absent => None,
            Loaded::NoDoc(_) => return Ok(None),
            Loaded::Stored(facts, doc) => Some(RecentMessage {
                facts,
                doc,
                unwritten: None,
            }),
        };
        let found = message.as_ref().map(RecentMessage::stored);
        self.remember(id, message)?;
        Ok(found)
    }

    /// Stores a message's row and its doc (merged; the row's columns come from it). A message
    /// the writer's cache knows has no row is inserted without the upsert's conflict handling
    /// (no statement journal); in a batch, its doc is written before the commit.
    pub fn save_message(&self, row: &MessageRow, doc: &Doc) -> Result<()> {
        let before = self.recent_row(row.id);
        let values = params![
            row.id.to_sql(),
            opt_sql(row.channel_id),
            opt_sql(row.guild_id),
            opt_sql(row.author_id),
            row.seen,
            row.kind,
            row.prompt,
            row.prompt_norm,
            row.params,
            opt_sql(row.user_id),
            row.mode,
            row.stealth,
            row.tile,
            row.job_uuid,
            row.detail,
            row.stage,
            row.error_title,
            row.posted_at,
            row.edited_at,
            row.action,
            row.prompt_norm.as_deref().map(text_key),
            row.job_uuid.as_deref().map(text_key),
            row.nonce,
            row.outcome,
            row.posted_at.map(mjlink_core::text::day_of),
            opt_sql(row.reply_to),
            row.used_buttons,
        ];
        // A row whose indexed columns keep their values is updated alone (indexes, partial
        // indexes and triggers untouched); the update checks those values itself.
        let updated = self.changes_only_the_row(row)
            && self.with_statement(UPDATE_MESSAGE, |stmt| Ok(stmt.execute(values)?))? == 1;
        if !updated {
            self.insert_or_upsert(before == Row::Absent, INSERT_MESSAGE, UPSERT_MESSAGE, values)?;
        }
        self.save_doc(row, doc, before)
    }

    /// Replaces the attachments of a message with `attachments` (their latest state);
    /// `had_any` is false for a message stored for the first time (nothing to remove).
    pub fn replace_attachments(
        &self,
        message_id: Snowflake,
        attachments: &[Attachment],
        had_any: bool,
        archivable: bool,
    ) -> Result<()> {
        if had_any {
            // Attachments the message no longer has go; the others keep their archive state.
            // Up to two are kept by a list of values (a longer list, or a subquery, makes
            // SQLite build a temporary table at every execution).
            let message = message_id.to_sql();
            let ids: Vec<i64> = attachments
                .iter()
                .map(|attachment| attachment.id.to_sql())
                .collect();
            let _ = match ids.as_slice() {
                [] => self.with_statement("DELETE FROM attachments WHERE message_id = ?1", |stmt| {
                    Ok(stmt.execute([message])?)
                })?,
                [only] => self.with_statement(
                    "DELETE FROM attachments WHERE message_id = ?1 AND id NOT IN (?2)",
                    |stmt| Ok(stmt.execute([message, *only])?),
                )?,
                [first, second] => self.with_statement(
                    "DELETE FROM attachments WHERE message_id = ?1 AND id NOT IN (?2, ?3)",
                    |stmt| Ok(stmt.execute([message, *first, *second])?),
                )?,
                more => self
                    .conn()
                    .prepare_cached(
                        "DELETE FROM attachments WHERE message_id = ?1 AND id NOT IN (SELECT value FROM json_each(?2))",
                    )?
                    .execute(params![message, serde_json::to_string(more).unwrap_or_else(|_| "[]".to_string())])?,
            };
        }
        self.with_statement(
            "INSERT INTO attachments (id, message_id, position, filename, url, size, width, height, content_type, archivable)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(id) DO UPDATE SET message_id = excluded.message_id, position = excluded.position,
                 filename = excluded.filename, url = excluded.url, size = excluded.size, width = excluded.width,
                 height = excluded.height, content_type = excluded.content_type, archivable = excluded.archivable
             -- An attachment already stored as it is is not rewritten.
             WHERE attachments.message_id IS NOT excluded.message_id OR attachments.position IS NOT excluded.position
                 OR attachments.filename IS NOT excluded.filename OR attachments.url IS NOT excluded.url
                 OR attachments.size IS NOT excluded.size OR attachments.width IS NOT excluded.width
                 OR attachments.height IS NOT excluded.height OR attachments.content_type IS NOT excluded.content_type
                 OR attachments.archivable IS NOT excluded.archivable",
            |insert| {
                for (position, attachment) in attachments.iter().enumerate() {
                    insert.execute(params![
                        attachment.id.to_sql(),
                        message_id.to_sql(),
                        position as i64,
                        attachment.filename,
                        attachment.url,
                        attachment.size.map(|size| size as i64),
                        attachment.width,
                        attachment.height,
                        attachment.content_type,
                        archivable,
                    ])?;
                }
                Ok(())
            },
        )
    }

    /// Marks a message deleted at `at_ms`, creating a placeholder row if it was never seen.
    pub fn mark_deleted(&self, id: Snowflake, channel_id: Option<Snowflake>, at_ms: i64) -> Result<()> {
        let before = self.recent_row(id);
        self.with_statement(
            "INSERT INTO messages (id, channel_id, seen, kind, deleted_at)
             VALUES (?1, ?2, 0, 'pending', ?3)
             ON CONFLICT(id) DO UPDATE SET deleted_at = COALESCE(messages.deleted_at, excluded.deleted_at)",
            |stmt| Ok(stmt.execute(params![id.to_sql(), opt_sql(channel_id), at_ms])?),
        )?;
        // Usually the message is stored: no placeholder doc to make.
        match before {
            Row::Present => {
                self.update_recent(id, |facts| facts.deleted_at = facts.deleted_at.or(Some(at_ms)));
                return Ok(());
            }
            Row::Unknown
                if self
                    .conn()
                    .prepare_cached("SELECT 1 FROM docs WHERE id = ?1")?
                    .exists([id.to_sql()])? =>
            {
                return Ok(());
            }
            Row::Unknown | Row::Absent => {}
        }
        let placeholder = Doc::new(mjlink_core::wire::Message {
            id,
            channel_id,
            ..Default::default()
        });
        let mut doc = self
            .conn()
            .prepare_cached("INSERT INTO docs (id, doc) VALUES (?1, ?2) ON CONFLICT(id) DO NOTHING")?;
        doc.execute(params![id.to_sql(), EncodedDoc::of(&placeholder).as_bytes()])?;
        if before == Row::Absent {
            let facts = RowFacts::placeholder(channel_id, at_ms);
            let message = RecentMessage {
                facts,
                doc: placeholder,
                unwritten: None,
            };
            self.remember(id, Some(message))?;
        }
        Ok(())
    }
}
