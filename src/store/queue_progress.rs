//! What the queue page reads beside the items (src/web/queue.rs): the progress Midjourney shows
//! for a submission (the stage of the start message carrying its nonce, and its preview), and
//! the change counter the page's live updates poll.

use std::collections::HashMap;

use rusqlite::OptionalExtension;

use mjlink_core::parse::{Kind, Stage};
use mjlink_core::snowflake::Snowflake;

use super::{Result, Store};

/// The start/progress message of a submission as last edited: its stage as stored (`62%`,
/// `waiting`, `paused`, `stopped`) and its preview attachment, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionProgress {
    pub message_id: Snowflake,
    pub stage: Option<String>,
    pub preview: Option<PreviewFile>,
}

/// A progress message's preview (a link to Discord's CDN: previews are not archived).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewFile {
    pub attachment_id: Snowflake,
    pub filename: String,
    pub url: String,
}

impl Store {
    /// The newest progress message carrying `nonce` that is still there (Midjourney deletes it
    /// once the grid is posted), with its first attachment.
    pub fn submission_progress(&self, nonce: &str) -> Result<Option<SubmissionProgress>> {
        let progress = Kind::Progress {
            stage: Stage::Waiting,
            action: None,
        };
        let mut stmt = self.conn().prepare_cached(
            "SELECT m.id, m.stage, a.id, a.filename, a.url FROM messages m
             LEFT JOIN attachments a ON a.message_id = m.id AND a.position = 0
             WHERE m.nonce = ?1 AND m.kind = ?2 AND m.deleted_at IS NULL
             ORDER BY m.id DESC LIMIT 1",
        )?;
        Ok(stmt
            .query_row([nonce, progress.as_str()], |row| {
                let attachment: Option<i64> = row.get(2)?;
                let preview = match (
                    attachment,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ) {
                    (Some(id), Some(filename), Some(url)) => Some(PreviewFile {
                        attachment_id: Snowflake::from_sql(id),
                        filename,
                        url,
                    }),
                    _ => None,
                };
                Ok(SubmissionProgress {
                    message_id: Snowflake::from_sql(row.get(0)?),
                    stage: row.get(1)?,
                    preview,
                })
            })
            .optional()?)
    }

    /// Every item's transitions, each item's in the order of [`Store::queue_history`], in one
    /// read (the queue page shows them all).
    pub fn queue_histories(&self) -> Result<HashMap<String, Vec<crate::queue::Transition>>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT item_id, at, from_status, to_status, note FROM queue_transitions
             ORDER BY item_id, at, rowid",
        )?;
        let mut histories: HashMap<String, Vec<crate::queue::Transition>> = HashMap::new();
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, Self::queue_transition_from_row(row, 1)?))
        })?;
        for row in rows {
            let (item, transition) = row?;
            histories.entry(item).or_default().push(transition);
        }
        Ok(histories)
    }

    /// SQLite's `data_version` of this connection: it changes when another connection has
    /// committed since it was last read (the cheap "did anything change" the live page polls).
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{runner, Upscales};

    #[test]
    fn every_history_in_one_read_is_each_items_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("q.db")).unwrap();
        let prompts = ["a".to_string(), "b".to_string(), "c".to_string()];
        let items = runner::add(&mut store, &prompts, &Upscales::all(), 0, 1_000).unwrap();
        runner::cancel(&mut store, &items[1].id, 2_000).unwrap();
        let all = store.queue_histories().unwrap();
        assert_eq!(all.len(), 3);
        for item in &items {
            assert_eq!(
                all[&item.id],
                store.queue_history(&item.id).unwrap(),
                "{}",
                item.id
            );
        }
        assert_eq!(all[&items[1].id].len(), 2);
    }
}
