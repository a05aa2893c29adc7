//! Multipart uploads to the S3 archive in progress (`uploads`, `upload_parts`): what the
//! backend (src/archive/backend.rs) needs to resume an upload cut short without sending
//! again the parts the store already confirmed. The store records; the backend decides.

use rusqlite::{params, OptionalExtension};

use super::{Result, Store};

/// An upload in progress: its id at the store and the parts confirmed, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub sha256: String,
    pub upload_id: String,
    pub part_bytes: u64,
    /// (part index from 0, the store's id of the part), ascending.
    pub parts: Vec<(u32, String)>,
}

impl Store {
    /// The upload in progress to `key`, if any.
    pub fn upload(&self, key: &str) -> Result<Option<Upload>> {
        let Some((sha256, upload_id, part_bytes)) = self
            .conn()
            .query_row(
                "SELECT sha256, upload_id, part_bytes FROM uploads WHERE key = ?1",
                [key],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()?
        else {
            return Ok(None);
        };
        let mut statement = self
            .conn()
            .prepare_cached("SELECT part, content_id FROM upload_parts WHERE key = ?1 ORDER BY part")?;
        let parts = statement
            .query_map([key], |row| Ok((row.get::<_, u32>(0)?, row.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(Upload {
            key: key.to_string(),
            sha256,
            upload_id,
            part_bytes: part_bytes.max(0) as u64,
            parts,
        }))
    }

    /// Records a new upload to `key` (replacing any other, and its parts).
    pub fn upload_started(
        &self,
        key: &str,
        sha256: &str,
        upload_id: &str,
        part_bytes: u64,
        now_ms: i64,
    ) -> Result<()> {
        self.conn().execute("DELETE FROM uploads WHERE key = ?1", [key])?;
        self.conn().execute(
            "INSERT INTO uploads (key, sha256, upload_id, part_bytes, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, sha256, upload_id, part_bytes as i64, now_ms],
        )?;
        Ok(())
    }

    /// Records a part the store confirmed.
    pub fn upload_part_done(&self, key: &str, part: u32, content_id: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO upload_parts (key, part, content_id) VALUES (?1, ?2, ?3)",
            params![key, part, content_id],
        )?;
        Ok(())
    }

    /// Forgets the upload to `key` (completed, or abandoned to start again).
    pub fn upload_finished(&self, key: &str) -> Result<()> {
        self.conn().execute("DELETE FROM uploads WHERE key = ?1", [key])?;
        Ok(())
    }

    /// How many uploads are in progress (shown by `doctor`).
    pub fn uploads_in_progress(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM uploads", [], |row| row.get(0))?)
    }
}
