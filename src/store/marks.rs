//! Button marks as the pipeline follows them: where each mark of a grid was first seen and
//! what each channel's exact links showed about its marks (`mjlink_core::marks`); and the
//! starts that were rivals of another's final found by prompt (migrations 0017 and 0018).

use rusqlite::{params, OptionalExtension};

use mjlink_core::kinds;
use mjlink_core::marks::{Family, MarkLog, Trust};
use mjlink_core::snowflake::Snowflake;

use super::{Result, Store};

impl Store {
    /// The marks followed on a grid; `None` when they were not followed from its first
    /// snapshot on (stored before migration 0017), or it is not stored as a grid (only grids'
    /// marks are followed).
    pub fn mark_log(&self, id: Snowflake) -> Result<Option<MarkLog>> {
        self.with_statement(
            "SELECT m.kind, CASE WHEN bm.log IS NOT NULL THEN bm.log
                         WHEN ?1 > (SELECT since FROM marks_followed) THEN '' END
             FROM messages m LEFT JOIN button_marks bm ON bm.message_id = m.id WHERE m.id = ?1",
            |stmt| {
                let row = stmt
                    .query_row([id.to_sql()], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
                    })
                    .optional()?;
                Ok(row
                    .filter(|(kind, _)| kinds::shape_of_name(kind).is_grid())
                    .and_then(|(_, log)| log)
                    .map(|text| MarkLog::parse(&text)))
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
        let sql = match family {
            Family::Upscale => "SELECT before, not_before FROM mark_trust WHERE channel_id = ?1",
            Family::Variation => "SELECT before, not_before FROM variation_mark_trust WHERE channel_id = ?1",
        };
        self.with_statement(sql, |stmt| {
            Ok(stmt
                .query_row([channel_id.to_sql()], |row| {
                    Ok(Trust {
                        before: row.get(0)?,
                        not_before: row.get(1)?,
                    })
                })
                .optional()?
                .unwrap_or_default())
        })
    }

    /// Stores what the channel's exact links showed about the marks of `family`.
    pub fn put_mark_trust(&self, channel_id: Snowflake, family: Family, new: Trust) -> Result<()> {
        let sql = match family {
            Family::Upscale => {
                "INSERT INTO mark_trust (channel_id, before, not_before) VALUES (?1, ?2, ?3)
                 ON CONFLICT(channel_id) DO UPDATE SET before = excluded.before, not_before = excluded.not_before"
            }
            Family::Variation => {
                "INSERT INTO variation_mark_trust (channel_id, before, not_before) VALUES (?1, ?2, ?3)
                 ON CONFLICT(channel_id) DO UPDATE SET before = excluded.before, not_before = excluded.not_before"
            }
        };
        self.with_statement(sql, |stmt| {
            stmt.execute(params![channel_id.to_sql(), new.before, new.not_before])?;
            Ok(())
        })
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
