//! The lineage as the pipeline writes and reads it: links, the processed-event set, channel
//! cursors, the fallback linker's candidate lookups, and start/progress messages with their
//! outcomes. A message's own row, doc and attachments: `message_rows.rs`.

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{params, OptionalExtension};

use mjlink_core::kinds;
use mjlink_core::link::{Candidate, Decision, Signal, Status, TileTakers};
use mjlink_core::parse::Action;
use mjlink_core::snowflake::Snowflake;

use super::marks::{button_marks_join, followed_log, followed_marks_columns};
use super::recent::RowFacts;
use super::{opt_snowflake, opt_sql, Filter, Result, Store};

/// The messages that could be a start's final, with their kinds: those with its job UUID
/// when it is known (`by_job`), else those in its scope. Which of them count is the core's
/// decision (`lineage::is_final_kind`).
#[derive(Debug, Clone, Default)]
pub struct FinalCandidates {
    pub rows: Vec<(Snowflake, String)>,
    pub by_job: bool,
}

/// A stored link: the core's type.
pub use mjlink_core::lineage::Link as LinkRow;

/// "Same channel, same requesting user, same normalized prompt": the group the fallback
/// linker and the progress outcomes search in.
#[derive(Debug, Clone, Copy)]
pub struct PromptScope<'a> {
    pub channel_id: Snowflake,
    pub user_id: Snowflake,
    pub prompt_norm: &'a str,
}

/// What the fallback needs about a stored message.
#[derive(Debug, Clone)]
pub struct ChildFacts {
    pub posted_ms: i64,
    pub channel_id: Option<Snowflake>,
    pub user_id: Option<Snowflake>,
    pub prompt_norm: Option<String>,
}

impl<'a> PromptScope<'a> {
    /// The scope of a message, when all three parts are known.
    pub fn of(
        channel_id: Option<Snowflake>,
        user_id: Option<Snowflake>,
        prompt_norm: Option<&'a str>,
    ) -> Option<PromptScope<'a>> {
        Some(PromptScope {
            channel_id: channel_id?,
            user_id: user_id?,
            prompt_norm: prompt_norm?,
        })
    }
}

impl ChildFacts {
    pub fn scope(&self) -> Option<PromptScope<'_>> {
        PromptScope::of(self.channel_id, self.user_id, self.prompt_norm.as_deref())
    }
}

/// A start/progress message waiting to learn its outcome.
#[derive(Debug, Clone)]
pub struct ProgressRow {
    pub id: Snowflake,
    /// The action under way (`None` for /imagine, whose final is a grid).
    pub action: Option<String>,
    pub channel_id: Option<Snowflake>,
    pub user_id: Option<Snowflake>,
    pub prompt_norm: Option<String>,
    pub job_uuid: Option<String>,
    pub posted_at: i64,
    pub deleted: bool,
    /// The message it replies to.
    pub reply_to: Option<Snowflake>,
    /// Its final, when settled `completed`.
    pub final_id: Option<Snowflake>,
}

impl ProgressRow {
    pub fn scope(&self) -> Option<PromptScope<'_>> {
        PromptScope::of(self.channel_id, self.user_id, self.prompt_norm.as_deref())
    }
}

/// Where a message is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePlace {
    pub channel_id: Option<Snowflake>,
    pub guild_id: Option<Snowflake>,
    pub kind: String,
}

/// Start/progress messages matching a [`Filter`], every condition stated in SQL: what
/// [`Store::progress_waiting_for`] finds by keys and facts (the store's tests hold it to this).
#[cfg(test)]
pub(super) const PROGRESS_SQL: &str =
    "SELECT id, channel_id, user_id, prompt_norm, job_uuid, posted_at, deleted_at, action, reply_to, final_id
     FROM messages WHERE {filter} AND kind = 'progress' AND seen = 1";

/// Starts without a job UUID in `scope`, posted in `[from_ms, to_ms]`: `job_key IS NULL`
/// (the same as `job_uuid IS NULL`) because migration 0012's index states it so.
pub(super) fn waiting_by_scope(scope: PromptScope<'_>, from_ms: i64, to_ms: i64) -> Filter<'_> {
    Filter::scope("", scope, from_ms, to_ms).and("job_key IS NULL")
}

/// The ids a key-only filter finds (see [`Filter::keys_only`]).
pub(super) const IDS_SQL: &str = "SELECT id FROM messages WHERE {filter}";

/// The ids of the starts without a job UUID a key-only [`waiting_by_scope`] finds: the
/// condition of the starts' index (0012, 0016) stated, so that SQLite uses it, and reads
/// only it.
pub(super) const WAITING_IDS_SQL: &str = "SELECT id FROM messages WHERE {filter} AND kind = 'progress'";

fn id_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Snowflake> {
    Ok(Snowflake::from_sql(row.get(0)?))
}

/// Whether a row was posted in `[from_ms, to_ms]` (`posted_at BETWEEN :from AND :to`).
fn posted_within(facts: &RowFacts, from_ms: i64, to_ms: i64) -> bool {
    facts
        .posted_at
        .is_some_and(|posted| from_ms <= posted && posted <= to_ms)
}

fn candidates_json(candidates: &[Snowflake]) -> String {
    serde_json::to_string(candidates).unwrap_or_else(|_| "[]".to_string())
}

impl Store {
    /// Moves the channel's cursor forward to `message_id` (never back).
    pub fn advance_cursor(&self, channel_id: Snowflake, message_id: Snowflake) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT INTO channels (id, last_message_id) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET last_message_id = MAX(last_message_id, excluded.last_message_id)",
        )?;
        stmt.execute(params![channel_id.to_sql(), message_id.to_sql()])?;
        Ok(())
    }

    /// Every channel's cursor.
    pub fn channel_cursors(&self) -> Result<std::collections::BTreeMap<Snowflake, Snowflake>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, last_message_id FROM channels")?;
        let rows = stmt.query_map([], |row| {
            Ok((Snowflake::from_sql(row.get(0)?), Snowflake::from_sql(row.get(1)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records an event in the processed set; `false` when it was there already.
    pub fn mark_processed(&self, id: Snowflake, event: u8, digest: u64) -> Result<bool> {
        self.with_statement(
            "INSERT OR IGNORE INTO processed (message_id, event, digest) VALUES (?1, ?2, ?3)",
            |stmt| Ok(stmt.execute(params![id.to_sql(), event, digest as i64])? == 1),
        )
    }

    pub fn get_link(&self, child_id: Snowflake) -> Result<Option<LinkRow>> {
        self.with_statement(
            "SELECT child_id, parent_id, action, tile, signal, status, candidates FROM links WHERE child_id = ?1",
            |stmt| Ok(stmt.query_row([child_id.to_sql()], link_from_row).optional()?),
        )
    }

    pub fn put_link(&self, link: &LinkRow) -> Result<()> {
        self.with_statement(
            "INSERT INTO links (child_id, parent_id, action, tile, signal, status, candidates)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(child_id) DO UPDATE SET parent_id = excluded.parent_id, action = excluded.action,
                 tile = excluded.tile, signal = excluded.signal, status = excluded.status,
                 candidates = excluded.candidates",
            |stmt| {
                stmt.execute(params![
                    link.child_id.to_sql(),
                    opt_sql(link.decision.parent),
                    link.action.as_str(),
                    link.tile,
                    link.decision.signal.map(Signal::as_str),
                    link.decision.status.as_str(),
                    candidates_json(&link.decision.candidates),
                ])?;
                Ok(())
            },
        )
    }

    pub fn delete_link(&self, child_id: Snowflake) -> Result<()> {
        self.with_statement("DELETE FROM links WHERE child_id = ?1", |stmt| {
            stmt.execute([child_id.to_sql()])?;
            Ok(())
        })
    }

    /// Possible parents: seen messages in the channel by the user with the normalized prompt,
    /// posted in `[from_ms, to_ms]`, with the results already linked to each for `tile`
    /// (the facts [`TileTakers`] holds; the core decides what they mean) and the marks
    /// followed on each (whether the channel trusts them is the pipeline's to apply).
    pub fn candidates(
        &self,
        scope: PromptScope<'_>,
        from_ms: i64,
        to_ms: i64,
        tile: Option<u8>,
        child_id: Snowflake,
    ) -> Result<Vec<Candidate>> {
        let filter = Filter::scope("m.", scope, from_ms, to_ms)
            .and("m.seen = 1 AND m.id != :child")
            .bind(":child", child_id.to_sql())
            .bind(
                ":tile",
                ToSqlOutput::Owned(tile.map_or(Value::Null, |tile| i64::from(tile).into())),
            );
        self.select(
            concat!(
                "SELECT m.id, m.posted_at, m.kind,
                 :tile IS NOT NULL AND EXISTS (SELECT 1 FROM links l WHERE l.parent_id = m.id AND l.tile = :tile
                     AND l.status = 'linked' AND l.signal != 'heuristic' AND l.child_id != :child),
                 (SELECT MIN(l.child_id) FROM links l WHERE :tile IS NOT NULL AND l.parent_id = m.id
                     AND l.tile = :tile AND l.status = 'linked' AND l.signal = 'heuristic' AND l.child_id != :child),
                 m.used_buttons, m.edited_at, ",
                followed_marks_columns!(),
                " FROM messages m ",
                button_marks_join!(),
                " WHERE {filter}"
            ),
            filter,
            |row| {
                let kind: String = row.get(2)?;
                let shape = kinds::shape_of_name(&kind);
                Ok(Candidate {
                    id: Snowflake::from_sql(row.get(0)?),
                    posted_ms: row.get(1)?,
                    shape,
                    tile_takers: TileTakers {
                        exact: row.get(3)?,
                        first_by_fallback: opt_snowflake(row.get(4)?),
                    },
                    used_buttons: row.get(5)?,
                    marks_as_of_ms: row.get(6)?,
                    marks: followed_log(shape, row, 7)?,
                })
            },
        )
    }

    /// Results linked by the fallback (or left ambiguous or unresolved) in `scope`, posted in
    /// `[from_ms, to_ms]`: those a new parent may change.
    pub fn fallback_children(
        &self,
        scope: PromptScope<'_>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Snowflake>> {
        let filter = Filter::scope("m.", scope, from_ms, to_ms);
        self.select(
            "SELECT m.id FROM messages m JOIN links l ON l.child_id = m.id
             WHERE {filter} AND (l.signal IS NULL OR l.signal = 'heuristic')",
            filter,
            |row| Ok(Snowflake::from_sql(row.get(0)?)),
        )
    }

    /// Like [`Store::fallback_children`], only those for `tile`: the results whose candidates
    /// a change of who holds that tile of a parent in `scope` can change.
    pub fn fallback_children_for_tile(
        &self,
        scope: PromptScope<'_>,
        from_ms: i64,
        to_ms: i64,
        tile: u8,
    ) -> Result<Vec<Snowflake>> {
        let filter = Filter::scope("m.", scope, from_ms, to_ms).bind(":tile", i64::from(tile));
        self.select(
            "SELECT m.id FROM messages m JOIN links l ON l.child_id = m.id
             WHERE {filter} AND l.tile = :tile AND (l.signal IS NULL OR l.signal = 'heuristic')",
            filter,
            |row| Ok(Snowflake::from_sql(row.get(0)?)),
        )
    }

    /// The facts the fallback needs about a stored message.
    pub fn child_facts(&self, id: Snowflake) -> Result<Option<ChildFacts>> {
        if let Some(known) = self.ask_recent(id, |message| message.map(|m| m.facts.child_facts(id)))? {
            return Ok(known);
        }
        self.with_statement(
            "SELECT posted_at, channel_id, user_id, prompt_norm FROM messages WHERE id = ?1",
            |stmt| {
                Ok(stmt
                    .query_row([id.to_sql()], |row| {
                        Ok(ChildFacts {
                            posted_ms: row.get::<_, Option<i64>>(0)?.unwrap_or_else(|| id.timestamp_ms()),
                            channel_id: opt_snowflake(row.get(1)?),
                            user_id: opt_snowflake(row.get(2)?),
                            prompt_norm: row.get(3)?,
                        })
                    })
                    .optional()?)
            },
        )
    }

    pub fn progress_row(&self, id: Snowflake) -> Result<Option<ProgressRow>> {
        if let Some(known) = self.ask_recent(id, |message| message.and_then(|m| m.facts.progress_row(id)))? {
            return Ok(known);
        }
        self.with_statement(
            "SELECT id, channel_id, user_id, prompt_norm, job_uuid, posted_at, deleted_at, action, reply_to, final_id FROM messages
             WHERE id = ?1 AND kind = 'progress' AND seen = 1",
            |stmt| Ok(stmt.query_row([id.to_sql()], progress_from_row).optional()?),
        )
    }

    /// Start/progress messages that a new grid could be the final of, posted within
    /// `[from_ms, to_ms]`: with the same job UUID, or (without one) in the same scope.
    /// The rows [`PROGRESS_SQL`] finds with [`Filter::job`] and [`waiting_by_scope`] (the
    /// store's test `key_lookups_find_what_the_full_queries_find` holds them to it), found by
    /// their index alone and checked on each row's facts, most of them in the cache.
    pub fn progress_waiting_for(
        &self,
        job_uuid: Option<&str>,
        scope: Option<PromptScope<'_>>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ProgressRow>> {
        let mut out = Vec::new();
        if let Some(uuid) = job_uuid {
            let filter = Filter::job("", uuid, from_ms, to_ms).keys_only();
            out = self.pick_by_facts(IDS_SQL, filter, |id, facts| {
                facts
                    .filter(|facts| {
                        facts.job_uuid.as_deref() == Some(uuid) && posted_within(facts, from_ms, to_ms)
                    })
                    .and_then(|facts| facts.progress_row(id))
            })?;
        }
        if let Some(scope) = scope {
            let filter = waiting_by_scope(scope, from_ms, to_ms).keys_only();
            out.extend(self.pick_by_facts(WAITING_IDS_SQL, filter, |id, facts| {
                facts
                    .filter(|facts| facts.prompt_norm.as_deref() == Some(scope.prompt_norm))
                    .and_then(|facts| facts.progress_row(id))
            })?);
        }
        Ok(out)
    }

    /// Messages seen that could be the final of a progress message, posted within
    /// `[progress.posted_at, to_ms]`: by its job UUID, else in its scope. Found by their
    /// index alone and checked on each row's facts, most of them in the cache (a start is
    /// settled at each of its edits, and a scope's window holds every repeat of a burst).
    pub fn finals_for(&self, progress: &ProgressRow, to_ms: i64) -> Result<FinalCandidates> {
        let from_ms = progress.posted_at;
        let (filter, by_job) = match (&progress.job_uuid, progress.scope()) {
            (Some(uuid), _) => (Filter::job("", uuid, from_ms, to_ms), true),
            (None, Some(scope)) => (Filter::scope("", scope, from_ms, to_ms), false),
            (None, None) => return Ok(FinalCandidates::default()),
        };
        let rows = self.pick_by_facts(IDS_SQL, filter.keys_only(), |id, facts| {
            let facts = facts.filter(|facts| facts.seen)?;
            let keeps = match (&progress.job_uuid, &progress.prompt_norm) {
                (Some(uuid), _) => {
                    facts.job_uuid.as_ref() == Some(uuid) && posted_within(facts, from_ms, to_ms)
                }
                (None, prompt) => facts.prompt_norm == *prompt,
            };
            keeps.then(|| (id, facts.kind.clone()))
        })?;
        Ok(FinalCandidates { rows, by_job })
    }

    /// The ids a key-only filter finds (`sql` selects `id`), each kept as `pick` makes it of
    /// the row's facts (`None`: dropped; the facts are `None` for a row that is gone).
    fn pick_by_facts<T>(
        &self,
        sql: &'static str,
        filter: Filter<'_>,
        pick: impl Fn(Snowflake, Option<&RowFacts>) -> Option<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for id in self.select(sql, filter, id_from_row)? {
            out.extend(self.with_row_facts(id, |facts| pick(id, facts))?);
        }
        Ok(out)
    }

    pub fn set_outcome(&self, id: Snowflake, outcome: &str, final_id: Option<Snowflake>) -> Result<()> {
        // Settling again to the same outcome writes nothing (as far as the cache knows).
        let same = |facts: &RowFacts| facts.outcome.as_deref() == Some(outcome) && facts.final_id == final_id;
        if let Some(true) = self.ask_recent(id, |message| message.is_some_and(|m| same(&m.facts)))? {
            return Ok(());
        }
        self.with_statement(
            "UPDATE messages SET outcome = ?2, final_id = ?3 WHERE id = ?1",
            |stmt| Ok(stmt.execute(params![id.to_sql(), outcome, opt_sql(final_id)])?),
        )?;
        self.update_recent(id, |facts| {
            facts.outcome = Some(outcome.to_string());
            facts.final_id = final_id;
        });
        Ok(())
    }

    /// Where a message is and what it is, when it was seen.
    pub fn message_place(&self, id: Snowflake) -> Result<Option<MessagePlace>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT channel_id, guild_id, kind FROM messages WHERE id = ?1 AND seen = 1")?
            .query_row([id.to_sql()], |row| {
                Ok(MessagePlace {
                    channel_id: opt_snowflake(row.get(0)?),
                    guild_id: opt_snowflake(row.get(1)?),
                    kind: row.get(2)?,
                })
            })
            .optional()?)
    }

    /// The parent a result is linked to (any status), with the link's status and candidates.
    pub fn parent_of(&self, child: Snowflake) -> Result<Option<LinkRow>> {
        self.get_link(child)
    }
}

/// A value the database holds that this build does not know (a corrupt or foreign file).
fn unknown_value(column: usize, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("unknown value {value:?}").into(),
    )
}

pub(super) fn link_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LinkRow> {
    let action: String = row.get(2)?;
    let signal: Option<String> = row.get(4)?;
    let status: String = row.get(5)?;
    let candidates: String = row.get(6)?;
    Ok(LinkRow {
        child_id: Snowflake::from_sql(row.get(0)?),
        action: Action::from_name(&action).ok_or_else(|| unknown_value(2, &action))?,
        tile: row.get(3)?,
        decision: Decision {
            parent: opt_snowflake(row.get(1)?),
            signal: match signal.as_deref() {
                None => None,
                Some(name) => Some(Signal::from_name(name).ok_or_else(|| unknown_value(4, name))?),
            },
            status: Status::from_name(&status).ok_or_else(|| unknown_value(5, &status))?,
            candidates: serde_json::from_str(&candidates).map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, error.into())
            })?,
        },
    })
}

fn progress_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProgressRow> {
    let id = Snowflake::from_sql(row.get(0)?);
    Ok(ProgressRow {
        id,
        channel_id: opt_snowflake(row.get(1)?),
        user_id: opt_snowflake(row.get(2)?),
        prompt_norm: row.get(3)?,
        job_uuid: row.get(4)?,
        posted_at: row.get::<_, Option<i64>>(5)?.unwrap_or_else(|| id.timestamp_ms()),
        deleted: row.get::<_, Option<i64>>(6)?.is_some(),
        action: row.get(7)?,
        reply_to: opt_snowflake(row.get(8)?),
        final_id: opt_snowflake(row.get(9)?),
    })
}
