//! Button marks as the pipeline follows them: where each mark of a message with buttons was
//! first seen and what each channel's exact links showed about the marks of each family of
//! buttons (`mjlink_core::marks`); and the starts that were rivals of another's final found
//! by prompt (migrations 0017, 0018 and 0020).

use rusqlite::{params, OptionalExtension};

use mjlink_core::kinds::{self, Shape};
use mjlink_core::marks::{Family, MarkLog, Trust};
use mjlink_core::snowflake::Snowflake;

use super::{Result, Store};

impl Store {
    /// The shape of a message whose marks are followed, with its marks; `None` when they were
    /// not followed from its first snapshot on (stored before its shape's marks were
    /// followed: migrations 0017 and 0020), or it carries no buttons whose marks count.
    pub fn mark_log(&self, id: Snowflake) -> Result<Option<(Shape, MarkLog)>> {
        self.with_statement(
            concat!(
                "SELECT m.kind, ",
                followed_marks_columns!(),
                " FROM messages m ",
                button_marks_join!(),
                " WHERE m.id = ?1"
            ),
            |stmt| {
                let row = stmt
                    .query_row([id.to_sql()], |row| {
                        let kind: String = row.get(0)?;
                        let shape = kinds::shape_of_name(&kind);
                        Ok(followed_log(shape, row, 1)?.map(|log| (shape, log)))
                    })
                    .optional()?;
                Ok(row.flatten())
            },
        )
    }

    pub fn put_mark_log(&self, id: Snowflake, log: &MarkLog) -> Result<()> {
        self.with_statement(
            "INSERT INTO button_marks (message_id, log) VALUES (?1, ?2)
             ON CONFLICT(message_id) DO UPDATE SET log = excluded.log",
            |stmt| {
                stmt.execute(params![id.to_sql(), log.to_text()])?;
                Ok(())
            },
        )
    }

    /// What the channel's exact links showed about the marks of `family` so far.
    pub fn mark_trust(&self, channel_id: Snowflake, family: Family) -> Result<Trust> {
        self.with_statement(
            "SELECT before, not_before FROM button_mark_trust WHERE channel_id = ?1 AND family = ?2",
            |stmt| {
                Ok(stmt
                    .query_row(params![channel_id.to_sql(), family.as_str()], |row| {
                        Ok(Trust {
                            before: row.get(0)?,
                            not_before: row.get(1)?,
                        })
                    })
                    .optional()?
                    .unwrap_or_default())
            },
        )
    }

    /// Stores what the channel's exact links showed about the marks of `family`.
    pub fn put_mark_trust(&self, channel_id: Snowflake, family: Family, new: Trust) -> Result<()> {
        self.with_statement(
            "INSERT INTO button_mark_trust (channel_id, family, before, not_before) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(channel_id, family) DO UPDATE SET before = excluded.before, not_before = excluded.not_before",
            |stmt| {
                stmt.execute(params![
                    channel_id.to_sql(),
                    family.as_str(),
                    new.before,
                    new.not_before
                ])?;
                Ok(())
            },
        )
    }

    /// The results of `family`'s buttons in the channel whose link the fallback decided
    /// (linked, ambiguous or unresolved): those the family's marks may have narrowed.
    pub fn fallback_results_in_channel(
        &self,
        channel_id: Snowflake,
        family: Family,
    ) -> Result<Vec<Snowflake>> {
        let mut found = Vec::new();
        for action in family.actions() {
            self.with_statement(
                "SELECT l.child_id FROM links l JOIN messages m ON m.id = l.child_id
                 WHERE m.channel_id = ?1 AND l.action = ?2 AND (l.signal IS NULL OR l.signal = 'heuristic')",
                |stmt| {
                    let rows = stmt.query_map(params![channel_id.to_sql(), action.as_str()], |row| {
                        Ok(Snowflake::from_sql(row.get(0)?))
                    })?;
                    for row in rows {
                        found.push(row?);
                    }
                    Ok(())
                },
            )?;
        }
        found.sort_unstable();
        Ok(found)
    }

    /// Notes that `start` kept another start's final found by prompt from being certain.
    pub fn note_rival(&self, start: Snowflake) -> Result<()> {
        self.with_statement(
            "INSERT OR IGNORE INTO rival_starts (start_id) VALUES (?1)",
            |stmt| {
                stmt.execute([start.to_sql()])?;
                Ok(())
            },
        )
    }

    /// Whether `start` ever kept another start's final from being certain.
    pub fn was_rival(&self, start: Snowflake) -> Result<bool> {
        self.with_statement("SELECT 1 FROM rival_starts WHERE start_id = ?1", |stmt| {
            Ok(stmt.exists([start.to_sql()])?)
        })
    }
}

/// The columns [`followed_log`] reads, of a message `m` joined by [`button_marks_join!`]: its
/// stored log (none until a mark is seen), and whether it was stored after the marks of grids
/// and of the other shapes with buttons were followed.
macro_rules! followed_marks_columns {
    () => {
        "bm.log, m.id > (SELECT since FROM marks_followed), m.id > (SELECT since FROM solo_marks_followed)"
    };
}
pub(super) use followed_marks_columns;

/// The join that gives a message `m` its stored marks (`bm`).
macro_rules! button_marks_join {
    () => {
        "LEFT JOIN button_marks bm ON bm.message_id = m.id"
    };
}
pub(super) use button_marks_join;

/// The marks of a message of `shape` from the [`followed_marks_columns!`] at `at` in `row`;
/// `None` when they were not followed from its first snapshot on, or its shape carries no
/// buttons whose marks count.
pub(super) fn followed_log(
    shape: Shape,
    row: &rusqlite::Row<'_>,
    at: usize,
) -> rusqlite::Result<Option<MarkLog>> {
    let log: Option<String> = row.get(at)?;
    let followed = match shape {
        Shape::NotAResult => false,
        shape if shape.is_grid() => row.get(at + 1)?,
        _ => row.get(at + 2)?,
    };
    Ok(followed.then(|| log.map_or_else(MarkLog::default, |text| MarkLog::parse(&text))))
}
