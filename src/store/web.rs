//! What the web gallery reads (`mjlink serve`): a page of families or results newest first,
//! the files of a message by attachment id, and one attachment's archived file. Read-only.

use std::sync::OnceLock;

use rusqlite::{params, OptionalExtension};

use mjlink_core::kinds;
use mjlink_core::snowflake::Snowflake;

use super::{opt_snowflake, opt_sql, Result, Store};

/// One tile of the gallery: a message and its first archived file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GalleryItem {
    pub message_id: Snowflake,
    pub kind: String,
    pub prompt: Option<String>,
    pub user_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub guild_id: Option<Snowflake>,
    pub posted_ms: Option<i64>,
    /// The first archived file (an image, or a video for a clip), when there is one.
    pub attachment_id: Option<Snowflake>,
    pub media: Option<String>,
}

/// What the gallery shows: root grids (no `kind`) or the messages of one result kind, of a
/// user and a channel, older than `before` (the last id of the page before), posted from
/// `since` and before `until` (ids: a snowflake is its time, so a date is a range of the
/// primary key), and with `favourites` only those the favourite confirmation marked (a grid
/// also when one of its results is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GalleryFilter {
    pub kind: Option<String>,
    pub user_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub before: Option<Snowflake>,
    pub since: Option<Snowflake>,
    pub until: Option<Snowflake>,
    pub favourites: bool,
}

/// A file of a message, named by its attachment id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageFile {
    pub attachment_id: Snowflake,
    pub discord_filename: String,
    /// `pending`, `archived` or `failed`.
    pub state: String,
    pub media: Option<String>,
    pub bytes: Option<i64>,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

/// An archived file as the database knows it: its path under the archive root, what its bytes
/// are and their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedFile {
    pub path: String,
    pub media: Option<String>,
    pub sha256: Option<String>,
}

/// The page's id bounds (`before`, `since`, `until`) are one range of the primary key, so a
/// page far back starts at its first id.
fn gallery_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT m.id, m.kind, m.prompt, m.user_id, m.channel_id, m.guild_id, m.posted_at,
                    (SELECT a.id FROM attachments a WHERE a.message_id = m.id AND a.state = 'archived'
                     ORDER BY a.position LIMIT 1),
                    (SELECT a.media FROM attachments a WHERE a.message_id = m.id AND a.state = 'archived'
                     ORDER BY a.position LIMIT 1)
             FROM messages m
             WHERE m.seen = 1 AND m.deleted_at IS NULL
               AND (CASE WHEN ?1 IS NULL THEN m.kind IN {} ELSE m.kind = ?1 END)
               AND (?2 IS NULL OR m.user_id = ?2) AND (?3 IS NULL OR m.channel_id = ?3)
               AND m.id < min(coalesce(?4, 9223372036854775807), coalesce(?7, 9223372036854775807))
               AND m.id >= coalesce(?6, -9223372036854775808)
               AND (?8 = 0 OR m.rated_by IS NOT NULL
                    OR EXISTS (SELECT 1 FROM links l JOIN messages c ON c.id = l.child_id
                               WHERE l.parent_id = m.id AND c.rated_by IS NOT NULL))
             ORDER BY m.id DESC LIMIT ?5",
            kinds::sql_list_names(kinds::is_root_name)
        )
    })
}

impl Store {
    /// One page of the gallery, newest first.
    pub fn gallery(&self, filter: &GalleryFilter, limit: usize) -> Result<Vec<GalleryItem>> {
        let mut stmt = self.conn().prepare_cached(gallery_sql())?;
        let rows = stmt.query_map(
            params![
                filter.kind,
                opt_sql(filter.user_id),
                opt_sql(filter.channel_id),
                opt_sql(filter.before),
                limit as i64,
                opt_sql(filter.since),
                opt_sql(filter.until),
                filter.favourites
            ],
            |row| {
                Ok(GalleryItem {
                    message_id: Snowflake::from_sql(row.get(0)?),
                    kind: row.get(1)?,
                    prompt: row.get(2)?,
                    user_id: opt_snowflake(row.get(3)?),
                    channel_id: opt_snowflake(row.get(4)?),
                    guild_id: opt_snowflake(row.get(5)?),
                    posted_ms: row.get(6)?,
                    attachment_id: opt_snowflake(row.get(7)?),
                    media: row.get(8)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every file of a message, in its order.
    pub fn message_files(&self, message: Snowflake) -> Result<Vec<MessageFile>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, filename, state, media, bytes, width, height FROM attachments
             WHERE message_id = ?1 ORDER BY position",
        )?;
        let rows = stmt.query_map([message.to_sql()], |row| {
            Ok(MessageFile {
                attachment_id: Snowflake::from_sql(row.get(0)?),
                discord_filename: row.get(1)?,
                state: row.get(2)?,
                media: row.get(3)?,
                bytes: row.get(4)?,
                width: row.get(5)?,
                height: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The archived file of an attachment (`None`: no such attachment, or not archived).
    pub fn archived_file(&self, attachment: Snowflake) -> Result<Option<ArchivedFile>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT path, media, sha256 FROM attachments
             WHERE id = ?1 AND state = 'archived' AND path IS NOT NULL",
        )?;
        Ok(stmt
            .query_row([attachment.to_sql()], |row| {
                Ok(ArchivedFile {
                    path: row.get(0)?,
                    media: row.get(1)?,
                    sha256: row.get(2)?,
                })
            })
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;

    /// A page far back (`before`, `until`) starts at its id: the rows newer than it are not
    /// read (with `?4 IS NULL OR m.id < ?4` SQLite scanned the table from its newest row).
    #[test]
    fn a_gallery_page_seeks_to_its_first_id() {
        let store = Store::open_in_memory().unwrap();
        let plan = super::super::query_plan(store.conn(), super::gallery_sql());
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH m USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)")),
            "{plan:?}"
        );
    }
}
