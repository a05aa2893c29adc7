//! Single images and animations under the key of their animated form (migration 0019): where
//! an animation without its reference finds the image it animates, whose prompt its echo
//! rewrote (`mjlink_core::prompt::Prompt::animated_form`).

use rusqlite::params;

use mjlink_core::kinds::{self, Shape};
use mjlink_core::link::{Candidate, TileTakers};
use mjlink_core::parse::Action;
use mjlink_core::prompt;
use mjlink_core::snowflake::Snowflake;

use super::marks::{button_marks_join, followed_log, followed_marks_columns};
use super::{text_key, Result, Store};

/// Whether a message of this shape (and action, for a result) is kept under its animated form: a single image
/// (what Animate is pressed on) or an animation.
pub fn keeps_animated_form(shape: Shape, action: Option<Action>) -> bool {
    shape == Shape::SingleImage || action == Some(Action::Animate)
}

impl Store {
    /// Keeps a seen single image or animation under its animated form.
    pub fn put_animated_form(
        &self,
        id: Snowflake,
        channel_id: Snowflake,
        user_id: Snowflake,
        form: &str,
        posted_ms: i64,
    ) -> Result<()> {
        self.with_statement(
            "INSERT OR IGNORE INTO animated_forms (channel_id, user_id, form_key, posted_at, message_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            |stmt| {
                stmt.execute(params![
                    channel_id.to_sql(),
                    user_id.to_sql(),
                    text_key(form),
                    posted_ms,
                    id.to_sql()
                ])?;
                Ok(())
            },
        )
    }

    /// An animation's possible parents: seen messages in the channel by the user whose
    /// animated form is `form`, posted in `[from_ms, to_ms]`, with the marks followed on each
    /// (the core keeps those of a shape Animate is pressed on).
    pub fn animation_candidates(
        &self,
        channel_id: Snowflake,
        user_id: Snowflake,
        form: &str,
        from_ms: i64,
        to_ms: i64,
        child_id: Snowflake,
    ) -> Result<Vec<Candidate>> {
        self.with_statement(
            concat!(
                "SELECT m.id, m.posted_at, m.kind, m.prompt_norm, ",
                followed_marks_columns!(),
                " FROM animated_forms a JOIN messages m ON m.id = a.message_id ",
                button_marks_join!(),
                " WHERE a.channel_id = ?1 AND a.user_id = ?2 AND a.form_key = ?3 AND a.posted_at BETWEEN ?4 AND ?5
                 AND m.seen = 1 AND m.id != ?6"
            ),
            |stmt| {
                let rows = stmt.query_map(
                    params![
                        channel_id.to_sql(),
                        user_id.to_sql(),
                        text_key(form),
                        from_ms,
                        to_ms,
                        child_id.to_sql()
                    ],
                    |row| {
                        let kind: String = row.get(2)?;
                        let prompt_norm: Option<String> = row.get(3)?;
                        let shape = kinds::shape_of_name(&kind);
                        let candidate = Candidate {
                            id: Snowflake::from_sql(row.get(0)?),
                            posted_ms: row.get(1)?,
                            shape,
                            tile_takers: TileTakers::default(),
                            used_buttons: None,
                            marks_as_of_ms: None,
                            marks: followed_log(shape, row, 4)?,
                        };
                        Ok((candidate, prompt_norm))
                    },
                )?;
                let mut found = Vec::new();
                for row in rows {
                    let (candidate, prompt_norm) = row?;
                    // The key stands for the form: the form itself decides.
                    if prompt_norm.is_some_and(|norm| prompt::split(&norm).animated_form() == form) {
                        found.push(candidate);
                    }
                }
                Ok(found)
            },
        )
    }

    /// Animations linked by the fallback (or left ambiguous or unresolved) in the channel by
    /// the user with the animated form `form`, posted in `[from_ms, to_ms]`: those a new
    /// single image may change.
    pub fn animation_children(
        &self,
        channel_id: Snowflake,
        user_id: Snowflake,
        form: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Snowflake>> {
        self.with_statement(
            "SELECT a.message_id FROM animated_forms a JOIN links l ON l.child_id = a.message_id
             WHERE a.channel_id = ?1 AND a.user_id = ?2 AND a.form_key = ?3 AND a.posted_at BETWEEN ?4 AND ?5
                 AND l.action = ?6 AND (l.signal IS NULL OR l.signal = 'heuristic')",
            |stmt| {
                let rows = stmt.query_map(
                    params![
                        channel_id.to_sql(),
                        user_id.to_sql(),
                        text_key(form),
                        from_ms,
                        to_ms,
                        Action::Animate.as_str()
                    ],
                    |row| Ok(Snowflake::from_sql(row.get(0)?)),
                )?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            },
        )
    }
}

/// Migration 0019's rows for the messages stored before it: every seen single image and
/// animation with a prompt (the kinds are the core's, never listed in a migration).
pub(super) fn backfill(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let kinds: Vec<String> = kinds::result_names()
        .filter(|name| {
            let action = Action::ALL.into_iter().find(|action| action.as_str() == *name);
            keeps_animated_form(kinds::shape_of_name(name), action)
        })
        .map(|name| format!("'{name}'"))
        .collect();
    let mut select = tx.prepare(&format!(
        "SELECT id, channel_id, user_id, posted_at, prompt_norm FROM messages
         WHERE seen = 1 AND channel_id IS NOT NULL AND user_id IS NOT NULL AND posted_at IS NOT NULL
             AND prompt_norm IS NOT NULL AND kind IN ({})",
        kinds.join(", ")
    ))?;
    let mut insert = tx.prepare(
        "INSERT OR IGNORE INTO animated_forms (channel_id, user_id, form_key, posted_at, message_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let (id, channel_id, user_id, posted_at): (i64, i64, i64, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let prompt_norm: String = row.get(4)?;
        let form = prompt::split(&prompt_norm).animated_form();
        insert.execute(params![channel_id, user_id, text_key(&form), posted_at, id])?;
    }
    Ok(())
}
