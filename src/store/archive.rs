//! The archive's rows (images and videos): attachments waiting to be archived, archived copies (for
//! duplicate bytes), each attachment's archive state and URL, the family records written
//! next to the files, and the list `mjlink images` prints.

use std::sync::OnceLock;

use rusqlite::{params, OptionalExtension};

use mjlink_core::kinds::{self, Shape};
use mjlink_core::retry::Verdict;
use mjlink_core::snowflake::Snowflake;

use super::{opt_snowflake, opt_sql, Result, Store};

/// An attachment waiting to be archived, with what its place in the archive depends on.
#[derive(Debug, Clone)]
pub struct PendingImage {
    pub attachment_id: Snowflake,
    pub message_id: Snowflake,
    pub channel_id: Option<Snowflake>,
    pub url: String,
    pub attempts: i64,
    pub kind: String,
    pub tile: Option<u8>,
    pub job_uuid: Option<String>,
    pub posted_ms: i64,
    /// The message it was made from (its link), when known.
    pub parent_id: Option<Snowflake>,
    pub parent_uuid: Option<String>,
    pub parent_posted_ms: Option<i64>,
    /// Where it was archived before (a file `verify --repair` found missing or corrupt).
    pub previous_path: Option<String>,
}

impl PendingImage {
    /// What the archive layout needs to place it.
    pub fn facts(&self) -> mjlink_core::layout::ImageFacts<'_> {
        mjlink_core::layout::ImageFacts {
            message_id: self.message_id,
            kind: &self.kind,
            tile: self.tile,
            job_uuid: self.job_uuid.as_deref(),
            posted_ms: self.posted_ms,
            parent_id: self.parent_id,
            parent_uuid: self.parent_uuid.as_deref(),
            parent_posted_ms: self.parent_posted_ms,
        }
    }
}

/// An archived file that new bytes may duplicate, with its message's tile and parent.
#[derive(Debug, Clone)]
pub struct ArchivedCopy {
    pub attachment_id: Snowflake,
    pub path: String,
    pub tile: Option<u8>,
    pub parent_id: Option<Snowflake>,
}

/// One archived file of a family.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FamilyFile {
    pub path: Option<String>,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    /// What the file is, by its signature: `png`, `webp`, `webp_animated` (a video grid),
    /// `jpeg`, `gif`, `mp4` (a clip).
    pub media: Option<String>,
    pub discord_filename: String,
}

/// A message of a family, as metadata.json describes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FamilyMessage {
    pub message_id: Snowflake,
    pub kind: String,
    pub prompt: Option<String>,
    pub params: Option<serde_json::Value>,
    pub user_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub guild_id: Option<Snowflake>,
    pub job_uuid: Option<String>,
    pub mode: Option<String>,
    pub tile: Option<u8>,
    pub posted_at: Option<String>,
    /// How it is linked to the grid (results only).
    pub signal: Option<String>,
    pub files: Vec<FamilyFile>,
}

/// A grid and its results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FamilyRecord {
    pub grid: FamilyMessage,
    pub results: Vec<FamilyMessage>,
}

/// One attachment as `mjlink images` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageRow {
    pub message_id: Snowflake,
    pub attachment_id: Snowflake,
    pub kind: String,
    pub state: String,
    pub path: Option<String>,
    pub sha256: Option<String>,
    pub bytes: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub same_bytes_as: Option<Snowflake>,
    /// What the archived file is (`png`, `webp_animated`, `mp4`...); `None` until archived.
    pub media: Option<String>,
    /// A pending image waiting after a failure: not tried again before this time.
    pub next_try_at: Option<String>,
}

/// Kinds whose images are archived, as an SQL list: grids and every result (not progress
/// previews). Built once, so each query's text is the same every call (and stays cached).
pub(super) fn archived_kinds() -> &'static str {
    static LIST: OnceLock<String> = OnceLock::new();
    LIST.get_or_init(|| kinds::sql_list(Shape::is_archived))
}

/// The columns of a [`PendingImage`], read by [`pending_row`].
const PENDING_SELECT: &str =
    "SELECT a.id, a.message_id, a.url, a.attempts, m.kind, m.tile, m.job_uuid, m.posted_at,
                    l.parent_id, p.job_uuid, p.posted_at, a.path, m.channel_id
             FROM attachments a JOIN messages m ON m.id = a.message_id
             LEFT JOIN links l ON l.child_id = m.id LEFT JOIN messages p ON p.id = l.parent_id";

fn pending_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PendingImage> {
    let message_id = Snowflake::from_sql(row.get(1)?);
    Ok(PendingImage {
        attachment_id: Snowflake::from_sql(row.get(0)?),
        message_id,
        url: row.get(2)?,
        attempts: row.get(3)?,
        kind: row.get(4)?,
        tile: row.get(5)?,
        job_uuid: row.get(6)?,
        posted_ms: row
            .get::<_, Option<i64>>(7)?
            .unwrap_or_else(|| message_id.timestamp_ms()),
        parent_id: opt_snowflake(row.get(8)?),
        parent_uuid: row.get(9)?,
        parent_posted_ms: row.get(10)?,
        previous_path: row.get(11)?,
        channel_id: opt_snowflake(row.get(12)?),
    })
}

/// The query of [`Store::pending_images`]: the partial index `attachments_due` (pending and
/// archivable) in id order, so a pass reads what is due, not every progress preview ever
/// stored.
pub fn pending_images_sql() -> String {
    format!(
        "{PENDING_SELECT}
         WHERE a.state = 'pending' AND a.archivable = 1 AND (?1 IS NULL OR a.id > ?1)
           AND (a.next_try_at IS NULL OR a.next_try_at <= ?2) AND m.seen = 1 AND m.kind IN {}
         ORDER BY a.id LIMIT ?3",
        archived_kinds()
    )
}

impl Store {
    /// Attachments waiting to be archived and due at `now_ms` (never tried, or their next try
    /// has come), in the order of their stored ids, after `after` (the last of the previous
    /// page; `None`: from the start). Every id is taken, 0 and those at or above 2^63 too
    /// (stored as negative integers): the cursor compares what SQLite stores.
    pub fn pending_images(
        &self,
        after: Option<Snowflake>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<PendingImage>> {
        let mut stmt = self.conn().prepare_cached(&pending_images_sql())?;
        let rows = stmt.query_map(
            params![after.map(Snowflake::to_sql), now_ms, limit as i64],
            pending_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One attachment waiting to be archived, due or not (a file adopted from disk needs no
    /// download, so no wait applies); `None` when it is not pending or not of an archived kind.
    pub fn pending_image(&self, attachment: Snowflake) -> Result<Option<PendingImage>> {
        let archived = archived_kinds();
        let sql = format!(
            "{PENDING_SELECT}
             WHERE a.id = ?1 AND a.state = 'pending' AND m.seen = 1 AND m.kind IN {archived}"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        Ok(stmt.query_row([attachment.to_sql()], pending_row).optional()?)
    }

    /// An attachment's archive state (`pending`, `archived`, `failed`); `None` when no such
    /// attachment is stored.
    pub fn attachment_state(&self, attachment: Snowflake) -> Result<Option<String>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT state FROM attachments WHERE id = ?1")?;
        Ok(stmt
            .query_row([attachment.to_sql()], |row| row.get(0))
            .optional()?)
    }

    /// An archived attachment with these bytes.
    pub fn archived_with_hash(&self, sha256: &str) -> Result<Option<ArchivedCopy>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT a.id, a.path, m.tile, l.parent_id FROM attachments a JOIN messages m ON m.id = a.message_id
             LEFT JOIN links l ON l.child_id = m.id
             WHERE a.sha256 = ?1 AND a.state = 'archived' ORDER BY a.id LIMIT 1",
        )?;
        Ok(stmt
            .query_row([sha256], |row| {
                Ok(ArchivedCopy {
                    attachment_id: Snowflake::from_sql(row.get(0)?),
                    path: row.get(1)?,
                    tile: row.get(2)?,
                    parent_id: opt_snowflake(row.get(3)?),
                })
            })
            .optional()?)
    }

    /// Marks an attachment archived at `path`; `media` is what its bytes are
    /// ([`mjlink_core::layout::MediaKind::as_str`]).
    pub fn mark_archived(
        &self,
        attachment: Snowflake,
        path: &str,
        sha256: &str,
        bytes: u64,
        media: &str,
        same_bytes_as: Option<Snowflake>,
    ) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(
            "UPDATE attachments SET state = 'archived', path = ?2, sha256 = ?3, bytes = ?4, same_bytes_as = ?5,
                 media = ?6, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
        )?;
        stmt.execute(params![
            attachment.to_sql(),
            path,
            sha256,
            bytes as i64,
            opt_sql(same_bytes_as),
            media
        ])?;
        Ok(())
    }

    /// Records a failed attempt and its verdict ([`mjlink_core::retry::after_failure`]):
    /// `failed`, or still pending with the time of its next try.
    pub fn mark_attempt_failed(&self, attachment: Snowflake, error: &str, verdict: Verdict) -> Result<()> {
        let (failed, next_try_at) = match verdict {
            Verdict::Failed => (true, None),
            Verdict::RetryAt(at) => (false, Some(at)),
        };
        let mut stmt = self.conn().prepare_cached(
            "UPDATE attachments SET attempts = attempts + 1, last_error = ?2, next_try_at = ?4,
                 state = CASE WHEN ?3 THEN 'failed' ELSE state END WHERE id = ?1",
        )?;
        stmt.execute(params![attachment.to_sql(), error, failed, next_try_at])?;
        Ok(())
    }

    /// Puts every `failed` attachment back in the queue, due now (`archive --retry-failed`);
    /// returns how many.
    pub fn retry_failed(&self) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE attachments SET state = 'pending', next_try_at = NULL WHERE state = 'failed'",
            [],
        )?)
    }

    /// How many attachments are archived (files the archive folder should hold).
    pub fn archived_count(&self) -> Result<i64> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM attachments WHERE state = 'archived'",
            [],
            |row| row.get(0),
        )?)
    }

    /// Up to `limit` archived files' paths, relative to the archive root.
    pub fn archived_paths(&self, limit: usize) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT path FROM attachments WHERE state = 'archived' AND path IS NOT NULL ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The archive this database records: its id (also in the folder's marker) and root.
    pub fn archive_root(&self) -> Result<Option<(String, String)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT archive_id, root FROM archive_root WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    /// Records the archive's id and root.
    pub fn set_archive_root(&self, archive_id: &str, root: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO archive_root (id, archive_id, root) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET archive_id = excluded.archive_id, root = excluded.root",
            params![archive_id, root],
        )?;
        Ok(())
    }

    /// A fresh (signed) URL for an attachment whose link expired.
    pub fn update_attachment_url(&self, attachment: Snowflake, url: &str) -> Result<()> {
        let mut stmt = self
            .conn()
            .prepare_cached("UPDATE attachments SET url = ?2 WHERE id = ?1")?;
        stmt.execute(params![attachment.to_sql(), url])?;
        Ok(())
    }

    /// Puts an archived attachment back in the queue (its file is missing or corrupt).
    pub fn requeue(&self, attachment: Snowflake, reason: &str) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(
            "UPDATE attachments SET state = 'pending', attempts = 0, last_error = ?2, next_try_at = NULL WHERE id = ?1",
        )?;
        stmt.execute(params![attachment.to_sql(), reason])?;
        Ok(())
    }

    /// A family for its metadata.json: the grid and the results linked to it, with their
    /// archived files.
    pub fn family_record(&self, grid_id: Snowflake) -> Result<Option<FamilyRecord>> {
        let mut message = self.conn().prepare_cached(
            "SELECT id, kind, prompt, params, user_id, channel_id, guild_id, job_uuid, mode, tile, posted_at
             FROM messages WHERE id = ?1 AND seen = 1",
        )?;
        let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<FamilyMessage> {
            let params: Option<String> = row.get(3)?;
            Ok(FamilyMessage {
                message_id: Snowflake::from_sql(row.get(0)?),
                kind: row.get(1)?,
                prompt: row.get(2)?,
                params: params.and_then(|text| serde_json::from_str(&text).ok()),
                user_id: opt_snowflake(row.get(4)?),
                channel_id: opt_snowflake(row.get(5)?),
                guild_id: opt_snowflake(row.get(6)?),
                job_uuid: row.get(7)?,
                mode: row.get(8)?,
                tile: row.get(9)?,
                posted_at: row
                    .get::<_, Option<i64>>(10)?
                    .and_then(mjlink_core::text::format_time),
                signal: None,
                files: Vec::new(),
            })
        };
        let Some(mut grid) = message.query_row([grid_id.to_sql()], read).optional()? else {
            return Ok(None);
        };
        let mut children_ids = self.conn().prepare_cached(
            "SELECT child_id, signal FROM links WHERE parent_id = ?1 AND status = 'linked' ORDER BY child_id",
        )?;
        let children: Vec<(Snowflake, Option<String>)> = children_ids
            .query_map([grid_id.to_sql()], |row| {
                Ok((Snowflake::from_sql(row.get(0)?), row.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut files = self.conn().prepare_cached(
            "SELECT path, bytes, sha256, filename, media FROM attachments WHERE message_id = ?1 AND state = 'archived' ORDER BY position",
        )?;
        let mut files_of = |id: Snowflake| -> rusqlite::Result<Vec<FamilyFile>> {
            files
                .query_map([id.to_sql()], |row| {
                    Ok(FamilyFile {
                        path: row.get(0)?,
                        bytes: row.get(1)?,
                        sha256: row.get(2)?,
                        discord_filename: row.get(3)?,
                        media: row.get(4)?,
                    })
                })?
                .collect()
        };
        grid.files = files_of(grid.message_id)?;
        let mut results = Vec::new();
        for (child, signal) in children {
            if let Some(mut record) = message.query_row([child.to_sql()], read).optional()? {
                record.signal = signal;
                record.files = files_of(child)?;
                results.push(record);
            }
        }
        Ok(Some(FamilyRecord { grid, results }))
    }

    /// Every attachment of an archived kind, in message order.
    pub fn images(&self) -> Result<Vec<ImageRow>> {
        let archived = archived_kinds();
        let sql = format!(
            "SELECT a.message_id, a.id, m.kind, a.state, a.path, a.sha256, a.bytes, a.attempts, a.last_error,
                    a.same_bytes_as, a.media, a.next_try_at
             FROM attachments a JOIN messages m ON m.id = a.message_id
             WHERE m.seen = 1 AND m.kind IN {archived} ORDER BY a.message_id, a.position"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map([], |row| {
            Ok(ImageRow {
                message_id: Snowflake::from_sql(row.get(0)?),
                attachment_id: Snowflake::from_sql(row.get(1)?),
                kind: row.get(2)?,
                state: row.get(3)?,
                path: row.get(4)?,
                sha256: row.get(5)?,
                bytes: row.get(6)?,
                attempts: row.get(7)?,
                last_error: row.get(8)?,
                same_bytes_as: opt_snowflake(row.get(9)?),
                media: row.get(10)?,
                next_try_at: row
                    .get::<_, Option<i64>>(11)?
                    .and_then(mjlink_core::text::format_time),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn archived_kinds_are_the_list_the_store_had_and_the_2026_kinds() {
        // The list of before issue 11, plus `video` (a native video job), `upscale_v7`,
        // `remix_region`, `video_clip` and `video_extend` (wire notes, section 9).
        assert_eq!(
            super::archived_kinds(),
            "('imagine', 'blend', 'video', 'upscale', 'upscale_2x', 'upscale_4x', 'upscale_subtle', \
             'upscale_creative', 'upscale_v7', 'variation', 'variation_strong', 'variation_subtle', 'variation_region', \
             'remix', 'remix_strong', 'remix_subtle', 'remix_region', 'reroll', 'zoom', 'pan_left', 'pan_right', 'pan_up', \
             'pan_down', 'animate', 'video_clip', 'video_extend')"
        );
        assert!(std::ptr::eq(super::archived_kinds(), super::archived_kinds()));
    }
}
