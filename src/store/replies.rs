//! What the pipeline reads and writes about replies (issue 11): the message a new one replies
//! to, which it may be the final of (a 2026 grid replies to its own start), and the
//! favourite confirmation's mark on the job it rates.

use rusqlite::{params, OptionalExtension};

use mjlink_core::snowflake::Snowflake;

use super::{opt_snowflake, Result, Store};

/// What is stored of a message that another replies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTargetRow {
    pub kind: String,
    pub job_uuid: Option<String>,
    pub prompt_norm: Option<String>,
    pub user_id: Option<Snowflake>,
}

impl ReplyTargetRow {
    pub fn as_target(&self) -> mjlink_core::lineage::ReplyTarget<'_> {
        mjlink_core::lineage::ReplyTarget {
            kind: &self.kind,
            job_uuid: self.job_uuid.as_deref(),
            prompt_norm: self.prompt_norm.as_deref(),
            user_id: self.user_id,
        }
    }
}

impl Store {
    /// What the pipeline needs of the message a new one replies to (`None`: nothing stored).
    pub fn reply_target(&self, id: Snowflake) -> Result<Option<ReplyTargetRow>> {
        if let Some(known) = self.ask_recent(id, |message| message.and_then(|m| m.facts.reply_target()))? {
            return Ok(known);
        }
        self.with_statement(
            "SELECT kind, job_uuid, prompt_norm, user_id FROM messages WHERE id = ?1 AND seen = 1",
            |stmt| {
                Ok(stmt
                    .query_row([id.to_sql()], |row| {
                        Ok(ReplyTargetRow {
                            kind: row.get(0)?,
                            job_uuid: row.get(1)?,
                            prompt_norm: row.get(2)?,
                            user_id: opt_snowflake(row.get(3)?),
                        })
                    })
                    .optional()?)
            },
        )
    }

    /// The seen messages stored as replying to `target`: the results linked to it by their
    /// reference, and the starts replying to it (`messages_start_replies`).
    pub fn replies_to(&self, target: Snowflake) -> Result<Vec<Snowflake>> {
        self.with_statement(
            "SELECT child_id FROM links WHERE parent_id = ?1 AND signal = 'reference'
             UNION SELECT id FROM messages WHERE reply_to = ?1 AND kind = 'progress' AND seen = 1
             ORDER BY 1",
            |stmt| {
                let rows = stmt.query_map([target.to_sql()], |row| Ok(Snowflake::from_sql(row.get(0)?)))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            },
        )
    }

    /// The message `id` replies to, as stored.
    pub fn reply_target_of(&self, id: Snowflake) -> Result<Option<Snowflake>> {
        if let Some(known) = self.ask_recent(id, |message| message.and_then(|m| m.facts.reply_to))? {
            return Ok(known);
        }
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT reply_to FROM messages WHERE id = ?1")?;
        Ok(stmt
            .query_row([id.to_sql()], |row| row.get::<_, Option<i64>>(0))
            .optional()?
            .flatten()
            .map(Snowflake::from_sql))
    }

    /// Marks `target` as rated by the favourite confirmation `rating` (a no-op when the
    /// target is not stored).
    pub fn set_rated(&self, target: Snowflake, rating: Snowflake) -> Result<()> {
        let mut stmt = self
            .conn()
            .prepare_cached("UPDATE messages SET rated_by = ?2 WHERE id = ?1")?;
        stmt.execute(params![target.to_sql(), rating.to_sql()])?;
        self.update_recent(target, |facts| facts.rated_by = Some(rating));
        Ok(())
    }
}
