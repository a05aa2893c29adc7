//! Every stored message as `mjlink messages` lists it: its parsed facts, its link and, for a
//! start/progress message, its outcome. Streamed row by row in message id order (a table
//! scan; no sort, nothing held), so memory does not grow with the history kept.

use rusqlite::types::Value;

use mjlink_core::drift::Reason;
use mjlink_core::merge::Doc;
use mjlink_core::snowflake::Snowflake;

use super::{opt_snowflake, Result, Store};

/// One message, as listed.
#[derive(Debug, Clone, Default)]
pub struct MessageExport {
    pub id: Snowflake,
    pub channel_id: Option<Snowflake>,
    /// The stored kind (`imagine`, `upscale`, `progress`, `other`, ...); `undecodable` for a
    /// drift sample the decoder rejected.
    pub kind: String,
    pub action: Option<String>,
    pub tile: Option<u8>,
    pub prompt: Option<String>,
    /// The `--parameters` as stored: a JSON object of name -> value.
    pub params: Option<String>,
    pub user_id: Option<Snowflake>,
    pub job_uuid: Option<String>,
    /// The link (results only).
    pub parent_id: Option<Snowflake>,
    pub signal: Option<String>,
    pub status: Option<String>,
    /// Start/progress messages: `running`, `completed`, `failed`, `unknown`, and the final.
    pub outcome: Option<String>,
    pub final_id: Option<Snowflake>,
    pub posted_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

/// Which messages: of one stored kind, of one channel (both optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageFilter<'a> {
    pub kind: Option<&'a str>,
    pub channel_id: Option<Snowflake>,
}

impl MessageFilter<'_> {
    /// `?1`/`?2` bound to the kind and the channel (NULL: any).
    fn values(&self) -> [Value; 2] {
        [
            self.kind
                .map_or(Value::Null, |kind| Value::from(kind.to_string())),
            self.channel_id
                .map_or(Value::Null, |channel| Value::from(channel.to_sql())),
        ]
    }
}

/// A stored message's document, for `--raw`.
#[derive(Debug, Clone)]
pub struct MessageDoc {
    pub doc: Doc,
    /// Seen itself (a create, history, a reply's copy), or known only from updates.
    pub seen: bool,
    pub deleted: bool,
}

/// The columns every listing reads, after `m` (messages) and `l` (links) are joined.
const COLUMNS: &str = "m.channel_id, m.action, m.tile, m.prompt, m.params, m.user_id, m.job_uuid,
     l.parent_id, l.signal, l.status, m.outcome, m.final_id, m.posted_at, m.deleted_at";

fn export_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MessageExport> {
    Ok(MessageExport {
        id: Snowflake::from_sql(row.get(0)?),
        kind: row.get(1)?,
        channel_id: opt_snowflake(row.get(2)?),
        action: row.get(3)?,
        tile: row.get(4)?,
        prompt: row.get(5)?,
        params: row.get(6)?,
        user_id: opt_snowflake(row.get(7)?),
        job_uuid: row.get(8)?,
        parent_id: opt_snowflake(row.get(9)?),
        signal: row.get(10)?,
        status: row.get(11)?,
        outcome: row.get(12)?,
        final_id: opt_snowflake(row.get(13)?),
        posted_at: row.get(14)?,
        deleted_at: row.get(15)?,
    })
}

impl Store {
    /// Every stored message that passes `filter`, in id order.
    pub fn for_each_message(
        &self,
        filter: MessageFilter<'_>,
        visit: impl FnMut(MessageExport) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT m.id, m.kind, {COLUMNS}
             FROM messages m LEFT JOIN links l ON l.child_id = m.id
             WHERE (?1 IS NULL OR m.kind = ?1) AND (?2 IS NULL OR m.channel_id = ?2)
             ORDER BY m.id"
        );
        self.visit_rows(&sql, filter.values(), |row| Ok(export_from_row(row)?), visit)
    }

    /// The format-drift samples kept, oldest first, as messages: what is stored of each
    /// (kind `undecodable` for a payload the decoder rejected). `filter.kind` is not read.
    pub fn for_each_drift_message(
        &self,
        filter: MessageFilter<'_>,
        visit: impl FnMut(MessageExport) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT s.message_id,
                    CASE WHEN s.reason = ?1 OR m.kind IS NULL THEN s.reason ELSE m.kind END, {COLUMNS}
             FROM drift_samples s LEFT JOIN messages m ON m.id = s.message_id
             LEFT JOIN links l ON l.child_id = s.message_id
             WHERE ?2 IS NULL OR m.channel_id = ?2
             ORDER BY s.id"
        );
        let [_, channel] = filter.values();
        let undecodable = Value::from(Reason::Undecodable.as_str().to_string());
        self.visit_rows(
            &sql,
            [undecodable, channel],
            |row| Ok(export_from_row(row)?),
            visit,
        )
    }

    /// The stored document of every message that passes `filter`, in id order.
    pub fn for_each_message_doc(
        &self,
        filter: MessageFilter<'_>,
        visit: impl FnMut(MessageDoc) -> Result<()>,
    ) -> Result<()> {
        let sql =
            "SELECT m.id, d.doc, m.seen, m.deleted_at IS NOT NULL FROM messages m JOIN docs d ON d.id = m.id
             WHERE (?1 IS NULL OR m.kind = ?1) AND (?2 IS NULL OR m.channel_id = ?2)
             ORDER BY m.id";
        let read = |row: &rusqlite::Row<'_>| {
            let id = Snowflake::from_sql(row.get(0)?);
            Ok(MessageDoc {
                doc: self.codec.borrow_mut().decode(id, row.get_ref(1)?)?,
                seen: row.get(2)?,
                deleted: row.get(3)?,
            })
        };
        self.visit_rows(sql, filter.values(), read, visit)
    }
}
