//! Who set a manual link and when (`manual_links`). The store decides nothing: the pipeline
//! writes these rows with the link it settles ([`crate::ingest::pipeline::Pipeline::set_manual_link`]).

use mjlink_core::snowflake::Snowflake;

use super::{Result, Store};

/// Who set a manual link, and when (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManualNote {
    pub parent_id: Snowflake,
    pub set_by: String,
    pub set_at_ms: i64,
}

impl Store {
    pub fn put_manual_note(&self, child: Snowflake, note: &ManualNote) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO manual_links (child_id, parent_id, set_by, set_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(child_id) DO UPDATE SET parent_id = excluded.parent_id,
                     set_by = excluded.set_by, set_at_ms = excluded.set_at_ms",
            )?
            .execute(rusqlite::params![
                child.to_sql(),
                note.parent_id.to_sql(),
                note.set_by,
                note.set_at_ms
            ])?;
        Ok(())
    }

    pub fn delete_manual_note(&self, child: Snowflake) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM manual_links WHERE child_id = ?1")?
            .execute([child.to_sql()])?;
        Ok(())
    }

    pub fn manual_note(&self, child: Snowflake) -> Result<Option<ManualNote>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .prepare_cached("SELECT parent_id, set_by, set_at_ms FROM manual_links WHERE child_id = ?1")?
            .query_row([child.to_sql()], |row| {
                Ok(ManualNote {
                    parent_id: Snowflake::from_sql(row.get(0)?),
                    set_by: row.get(1)?,
                    set_at_ms: row.get(2)?,
                })
            })
            .optional()?)
    }
}
