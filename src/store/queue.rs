//! The prompt queue's rows (see src/queue): items and their transitions, its settings, and
//! what the runner reads of the lineage to follow a job: the messages carrying a nonce, a
//! start message's final, grids by id, job UUID or prompt, and a grid's upscales.

use std::sync::OnceLock;

use rusqlite::{params, OptionalExtension};

use mjlink_core::kinds;
use mjlink_core::link::Status;
use mjlink_core::parse::Action;
use mjlink_core::snowflake::Snowflake;

use super::{opt_snowflake, opt_sql, text_key, Result, Store};

/// The kinds a queued prompt's grid can be, as an SQL list: grids rendered from the prompt
/// alone (a root grid, or a reroll of it). Built once: the query text is the same each call.
fn prompt_grids() -> &'static str {
    static LIST: OnceLock<String> = OnceLock::new();
    LIST.get_or_init(|| kinds::sql_list_names(kinds::is_prompt_grid_name))
}

/// The prompt queue's rows (see src/queue).
impl Store {
    const QUEUE_COLUMNS: &'static str = "id, prompt, upscales, priority, status, attempts, nonce, job_uuid,
        start_message_id, grid_message_id, results, pressed, last_error, created_at, updated_at, submitted_at,
        progress_at, not_before, waiting";

    fn queue_item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<crate::queue::Item> {
        use crate::queue::{Item, Status, Upscales};
        let upscales: String = row.get(2)?;
        let status: String = row.get(4)?;
        let tiles = |text: String| -> std::collections::BTreeMap<u8, i64> {
            serde_json::from_str::<std::collections::BTreeMap<u8, i64>>(&text).unwrap_or_default()
        };
        Ok(Item {
            id: row.get(0)?,
            prompt: row.get(1)?,
            upscales: Upscales::parse(&upscales).unwrap_or_else(|_| Upscales::none()),
            priority: row.get(3)?,
            status: Status::from_name(&status).unwrap_or(Status::Failed),
            attempts: row.get(5)?,
            nonce: row.get(6)?,
            job_uuid: row.get(7)?,
            start_message_id: opt_snowflake(row.get(8)?),
            grid_message_id: opt_snowflake(row.get(9)?),
            results: tiles(row.get(10)?)
                .into_iter()
                .map(|(tile, id)| (tile, Snowflake::from_sql(id)))
                .collect(),
            pressed: tiles(row.get(11)?),
            last_error: row.get(12)?,
            created_ms: row.get(13)?,
            updated_ms: row.get(14)?,
            submitted_ms: row.get(15)?,
            progress_ms: row.get(16)?,
            not_before_ms: row.get(17)?,
            waiting_at_midjourney: row.get(18)?,
        })
    }

    /// Stores `item` (new or changed) and, when given, the transition that led to it, in one
    /// transaction. With `read_at` (the `updated_ms` of the copy the change was made from),
    /// nothing is stored if the row changed meanwhile (a `queue cancel` from another
    /// process): returns whether it was stored.
    pub fn queue_save(
        &mut self,
        item: &crate::queue::Item,
        read_at: Option<i64>,
        transition: Option<&crate::queue::Transition>,
    ) -> Result<bool> {
        let own_transaction = !self.in_batch;
        self.begin()?;
        if let Some(read_at) = read_at {
            let current = self
                .conn()
                .prepare_cached("SELECT updated_at, status FROM queue_items WHERE id = ?1")?
                .query_row([&item.id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .optional()?;
            let unchanged = current.is_some_and(|(updated, status)| {
                updated == read_at
                    && crate::queue::Status::from_name(&status).is_some_and(|status| !status.is_final())
            });
            if !unchanged {
                if own_transaction {
                    self.commit()?;
                }
                return Ok(false);
            }
        }
        let results: std::collections::BTreeMap<u8, i64> = item
            .results
            .iter()
            .map(|(tile, id)| (*tile, id.to_sql()))
            .collect();
        self.conn().prepare_cached(
            "INSERT INTO queue_items (id, prompt, upscales, priority, status, attempts, nonce, job_uuid,
                 start_message_id, grid_message_id, results, pressed, last_error, created_at, updated_at,
                 submitted_at, progress_at, not_before, waiting)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
             ON CONFLICT(id) DO UPDATE SET priority = excluded.priority, status = excluded.status,
                 attempts = excluded.attempts, nonce = excluded.nonce, job_uuid = excluded.job_uuid,
                 start_message_id = excluded.start_message_id, grid_message_id = excluded.grid_message_id,
                 results = excluded.results, pressed = excluded.pressed, last_error = excluded.last_error,
                 updated_at = excluded.updated_at, submitted_at = excluded.submitted_at,
                 progress_at = excluded.progress_at, not_before = excluded.not_before, waiting = excluded.waiting",
        )?
        .execute(params![
            item.id,
            item.prompt,
            item.upscales.to_string(),
            item.priority,
            item.status.as_str(),
            item.attempts,
            item.nonce,
            item.job_uuid,
            opt_sql(item.start_message_id),
            opt_sql(item.grid_message_id),
            serde_json::to_string(&results).unwrap_or_else(|_| "{}".into()),
            serde_json::to_string(&item.pressed).unwrap_or_else(|_| "{}".into()),
            item.last_error,
            item.created_ms,
            item.updated_ms,
            item.submitted_ms,
            item.progress_ms,
            item.not_before_ms,
            item.waiting_at_midjourney,
        ])?;
        if let Some(transition) = transition {
            self.conn()
                .prepare_cached(
                    "INSERT INTO queue_transitions (item_id, at, from_status, to_status, note) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                item.id,
                transition.at_ms,
                transition.from.map(|status| status.as_str()),
                transition.to.as_str(),
                transition.note,
            ])?;
        }
        if own_transaction {
            self.commit()?;
        }
        Ok(true)
    }

    /// One item by its id, or by a prefix of it that only it has.
    pub fn queue_item(&self, id_or_prefix: &str) -> Result<Option<crate::queue::Item>> {
        // Compared as text, character for character: `%` and `_` are not wildcards, and an
        // empty prefix (which every id starts with) names nothing.
        if id_or_prefix.is_empty() {
            return Ok(None);
        }
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {} FROM queue_items WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 2",
            Self::QUEUE_COLUMNS
        ))?;
        let items = stmt
            .query_map([id_or_prefix], Self::queue_item_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(match items.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        })
    }

    /// Items, in queue order (priority, then age); only those in `statuses` when given.
    pub fn queue_items(&self, statuses: &[crate::queue::Status]) -> Result<Vec<crate::queue::Item>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {} FROM queue_items ORDER BY priority DESC, created_at, rowid",
            Self::QUEUE_COLUMNS
        ))?;
        let items = stmt
            .query_map([], Self::queue_item_from_row)?
            .filter(|item| {
                item.as_ref().map_or(true, |item| {
                    statuses.is_empty() || statuses.contains(&item.status)
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(items)
    }

    /// Items not finished yet.
    pub fn queue_active(&self) -> Result<Vec<crate::queue::Item>> {
        // The list is the text of the partial index `queue_items_active` (a test checks), so
        // the query uses it.
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {} FROM queue_items WHERE status NOT IN {}
             ORDER BY priority DESC, created_at, rowid",
            Self::QUEUE_COLUMNS,
            crate::queue::Status::final_sql_list()
        ))?;
        let items = stmt
            .query_map([], Self::queue_item_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(items)
    }

    pub fn queue_history(&self, id: &str) -> Result<Vec<crate::queue::Transition>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT at, from_status, to_status, note FROM queue_transitions WHERE item_id = ?1 ORDER BY at, rowid",
        )?;
        let rows = stmt.query_map([id], |row| Self::queue_transition_from_row(row, 0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// A transition from the columns `at, from_status, to_status, note` starting at `first`.
    pub(super) fn queue_transition_from_row(
        row: &rusqlite::Row<'_>,
        first: usize,
    ) -> rusqlite::Result<crate::queue::Transition> {
        let from: Option<String> = row.get(first + 1)?;
        let to: String = row.get(first + 2)?;
        Ok(crate::queue::Transition {
            at_ms: row.get(first)?,
            from: from.as_deref().and_then(crate::queue::Status::from_name),
            to: crate::queue::Status::from_name(&to).unwrap_or(crate::queue::Status::Failed),
            note: row.get(first + 3)?,
        })
    }

    /// Submissions made since `from_ms` (for the daily cap).
    pub fn queue_submissions_since(&self, from_ms: i64) -> Result<u32> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT COUNT(*) FROM queue_transitions WHERE to_status = 'submitted' AND at >= ?1",
        )?;
        Ok(stmt.query_row([from_ms], |row| row.get::<_, i64>(0))? as u32)
    }

    /// Midjourney's messages that carry `nonce` (its start message, error embeds).
    pub fn messages_with_nonce(&self, nonce: &str) -> Result<Vec<mjlink_core::queue::machine::NonceMessage>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, kind, error_title, job_uuid, deleted_at IS NOT NULL, outcome,
                    MAX(COALESCE(posted_at, 0), COALESCE(edited_at, 0), COALESCE(deleted_at, 0))
             FROM messages WHERE nonce = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([nonce], |row| {
            Ok(mjlink_core::queue::machine::NonceMessage {
                id: Snowflake::from_sql(row.get(0)?),
                kind: row.get(1)?,
                error_title: row.get(2)?,
                job_uuid: row.get(3)?,
                deleted: row.get(4)?,
                outcome: row.get(5)?,
                changed_ms: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The start/progress message's final grid, as the pipeline settled it.
    pub fn final_of(&self, progress: Snowflake) -> Result<Option<Snowflake>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT final_id FROM messages WHERE id = ?1 AND outcome = 'completed'")?;
        Ok(stmt
            .query_row([progress.to_sql()], |row| row.get::<_, Option<i64>>(0))
            .optional()?
            .flatten()
            .map(Snowflake::from_sql))
    }

    /// A grid (a seen message that is not a progress message) by id, with its job UUID and
    /// posting time.
    pub fn grid_facts(&self, id: Snowflake) -> Result<Option<mjlink_core::queue::machine::GridSeen>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT id, job_uuid, posted_at FROM messages
             WHERE id = ?1 AND seen = 1 AND kind IN {} AND deleted_at IS NULL",
            prompt_grids()
        ))?;
        Ok(stmt
            .query_row([id.to_sql()], |row| {
                Ok(mjlink_core::queue::machine::GridSeen {
                    id: Snowflake::from_sql(row.get(0)?),
                    job_uuid: row.get(1)?,
                    posted_ms: row.get::<_, Option<i64>>(2)?.unwrap_or(0),
                })
            })
            .optional()?)
    }

    /// Grids whose job UUID is `uuid`, posted on the days around `near_ms`.
    pub fn grids_with_job(&self, uuid: &str, near_ms: i64) -> Result<Vec<Snowflake>> {
        let day = near_ms.div_euclid(86_400_000);
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT id FROM messages WHERE day BETWEEN ?1 AND ?2 AND job_key = ?3 AND job_uuid = ?4
                 AND seen = 1 AND kind IN {} ORDER BY id",
            prompt_grids()
        ))?;
        let rows = stmt.query_map(params![day - 1, day + 1, text_key(uuid), uuid], |row| {
            Ok(Snowflake::from_sql(row.get(0)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The grids of `user` in `channel` with this normalized prompt posted in `[from_ms, to_ms]`,
    /// with what tells whether another job owns them: a nonce, being some start's settled
    /// final (that start's prompt is the same: the index by prompt finds it), being taken by a
    /// queue item other than `item_id`, their job UUID.
    pub fn queue_grid_candidates(
        &self,
        channel: Snowflake,
        user: Snowflake,
        prompt_norm: &str,
        from_ms: i64,
        to_ms: i64,
        item_id: &str,
    ) -> Result<Vec<mjlink_core::queue::bind::Candidate>> {
        let (first_day, last_day) = (from_ms.div_euclid(86_400_000), to_ms.div_euclid(86_400_000));
        let mut stmt = self.conn().prepare_cached(
            "SELECT m.id, m.posted_at, m.nonce IS NOT NULL,
                    EXISTS (SELECT 1 FROM messages s WHERE s.day BETWEEN ?1 - 1 AND ?2
                            AND s.channel_id = m.channel_id AND s.user_id = m.user_id
                            AND s.prompt_key = m.prompt_key AND s.final_id = m.id),
                    EXISTS (SELECT 1 FROM queue_items q WHERE q.grid_message_id = m.id AND q.id != ?9),
                    m.job_uuid
             FROM messages m WHERE m.day BETWEEN ?1 AND ?2 AND m.channel_id = ?3 AND m.user_id = ?4
                 AND m.prompt_key = ?5 AND m.prompt_norm = ?6 AND m.posted_at BETWEEN ?7 AND ?8
                 AND m.seen = 1 AND m.kind = 'imagine' ORDER BY m.id",
        )?;
        let rows = stmt.query_map(
            params![
                first_day,
                last_day,
                channel.to_sql(),
                user.to_sql(),
                text_key(prompt_norm),
                prompt_norm,
                from_ms,
                to_ms,
                item_id
            ],
            |row| {
                Ok(mjlink_core::queue::bind::Candidate {
                    id: Snowflake::from_sql(row.get(0)?),
                    posted_ms: row.get(1)?,
                    has_nonce: row.get(2)?,
                    is_final_of_a_start: row.get(3)?,
                    taken: row.get(4)?,
                    job_uuid: row.get(5)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Upscales linked to `grid` (exactly or by the careful fallback): tile -> (id, posted).
    /// Every tile upscale linked to `grid`: (tile, message id, posted ms). Which one counts
    /// for a tile is the queue machine's rule (`machine::upscales_by_tile`).
    pub fn upscales_of(&self, grid: Snowflake) -> Result<Vec<(u8, Snowflake, i64)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT l.tile, l.child_id, m.posted_at FROM links l JOIN messages m ON m.id = l.child_id
             WHERE l.parent_id = ?1 AND l.action = ?2 AND l.status = ?3 AND l.tile IS NOT NULL",
        )?;
        let rows = stmt.query_map(
            params![grid.to_sql(), Action::Upscale.as_str(), Status::Linked.as_str()],
            |row| {
                Ok((
                    row.get::<_, u8>(0)?,
                    Snowflake::from_sql(row.get(1)?),
                    row.get::<_, Option<i64>>(2)?.unwrap_or(0),
                ))
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn queue_paused(&self) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT value FROM queue_settings WHERE key = 'paused'")?
            .query_row([], |row| row.get::<_, String>(0))
            .optional()?
            .is_some_and(|value| value == "true"))
    }

    pub fn set_queue_paused(&self, paused: bool) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO queue_settings (key, value) VALUES ('paused', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute([if paused { "true" } else { "false" }])?;
        Ok(())
    }
}
