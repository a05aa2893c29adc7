//! The notifications' outbox (see src/notify): rows enqueued by whoever makes the change a
//! notification tells of (in its transaction), read and updated by the delivery worker.
//! Which events go where, and when a failed one is tried again, is the core's
//! (`mjlink_core::notify`): the store writes what it is told.

use rusqlite::{params, OptionalExtension};

use mjlink_core::notify::{idempotency_key, targets_for, Next, Notice, Route};
use mjlink_core::snowflake::Snowflake;

use super::{opt_snowflake, Result, Store};

/// A notification due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub key: String,
    pub target: String,
    pub event: String,
    pub body: String,
    pub summary: String,
    pub file: Option<String>,
    pub jump_url: Option<String>,
    pub attempts: i64,
    pub first_try_ms: Option<i64>,
}

/// A notification given up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub key: String,
    pub target: String,
    pub event: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When it was given up (Unix milliseconds).
    pub dead_at_ms: Option<i64>,
}

/// A message's guild, channel and prompt.
pub type MessageFacts = (Option<Snowflake>, Option<Snowflake>, Option<String>);

/// The outbox by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
}

impl Store {
    /// Enqueues `notice` for every target of `routes` that wants it, at `now_ms`, in the open
    /// transaction if there is one. An event already enqueued for a target (same idempotency
    /// key) is left as it is. Returns how many rows were added.
    pub fn notify_enqueue(&self, routes: &[Route], notice: &Notice, now_ms: i64) -> Result<usize> {
        let mut added = 0;
        for target in targets_for(routes, notice.kind) {
            let key = idempotency_key(target, notice.kind, &notice.subject);
            added += self
                .conn()
                .prepare_cached(
                    "INSERT INTO notify_outbox (key, target, event, body, summary, file, jump_url, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(key) DO NOTHING",
                )?
                .execute(params![
                    key,
                    target,
                    notice.kind.as_str(),
                    notice.body.to_string(),
                    notice.summary,
                    notice.file,
                    notice.jump_url,
                    now_ms
                ])?;
        }
        Ok(added)
    }

    /// Pending notifications due at `now_ms` (never tried, or their next try has come), oldest
    /// first, at most `limit`.
    pub fn notify_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, key, target, event, body, summary, file, jump_url, attempts, first_try_at
             FROM notify_outbox WHERE state = 'pending' AND (next_try_at IS NULL OR next_try_at <= ?1)
             ORDER BY coalesce(next_try_at, 0), id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now_ms, limit as i64], |row| {
            Ok(OutboxRow {
                id: row.get(0)?,
                key: row.get(1)?,
                target: row.get(2)?,
                event: row.get(3)?,
                body: row.get(4)?,
                summary: row.get(5)?,
                file: row.get(6)?,
                jump_url: row.get(7)?,
                attempts: row.get(8)?,
                first_try_ms: row.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The earliest next try of a pending notification, if any.
    pub fn notify_next_due(&self) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT min(coalesce(next_try_at, 0)) FROM notify_outbox WHERE state = 'pending'",
            )?
            .query_row([], |row| row.get::<_, Option<i64>>(0))
            .optional()?
            .flatten())
    }

    /// Records an attempt made at `now_ms` (the first at `first_try_ms`) and its verdict:
    /// delivered, pending until its next try, or dead (with `error`).
    pub fn notify_record(
        &self,
        id: i64,
        first_try_ms: i64,
        now_ms: i64,
        next: Next,
        error: Option<&str>,
    ) -> Result<()> {
        let (state, next_try_at, done_at) = match next {
            Next::Delivered => ("delivered", None, Some(now_ms)),
            Next::RetryAt(at) => ("pending", Some(at), None),
            Next::Dead => ("dead", None, Some(now_ms)),
        };
        self.conn()
            .prepare_cached(
                "UPDATE notify_outbox SET state = ?2, attempts = attempts + 1,
                     first_try_at = coalesce(first_try_at, ?3), next_try_at = ?4, done_at = ?5,
                     last_error = coalesce(?6, last_error) WHERE id = ?1",
            )?
            .execute(params![id, state, first_try_ms, next_try_at, done_at, error])?;
        Ok(())
    }

    /// How many notifications are pending, delivered, dead.
    pub fn notify_counts(&self) -> Result<OutboxCounts> {
        let mut counts = OutboxCounts::default();
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT state, count(*) FROM notify_outbox GROUP BY state")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            match state.as_str() {
                "pending" => counts.pending = n,
                "delivered" => counts.delivered = n,
                _ => counts.dead += n,
            }
        }
        Ok(counts)
    }

    /// The dead-letter list, newest first, at most `limit`.
    pub fn notify_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT key, target, event, attempts, last_error, done_at FROM notify_outbox
             WHERE state = 'dead' ORDER BY done_at DESC, id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |row| {
            Ok(DeadLetter {
                key: row.get(0)?,
                target: row.get(1)?,
                event: row.get(2)?,
                attempts: row.get(3)?,
                last_error: row.get(4)?,
                dead_at_ms: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A message's guild, channel and prompt, for a notification about it.
    pub fn notify_message_facts(&self, id: Snowflake) -> Result<Option<MessageFacts>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT guild_id, channel_id, prompt FROM messages WHERE id = ?1")?
            .query_row([id.to_sql()], |row| {
                Ok((
                    opt_snowflake(row.get(0)?),
                    opt_snowflake(row.get(1)?),
                    row.get(2)?,
                ))
            })
            .optional()?)
    }
}
