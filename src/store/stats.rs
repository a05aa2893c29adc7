//! Figures and whole-database reads: counts by kind, signal, status and outcome, the
//! archive's and the queue's counts, every link for export, and the canonical dump that
//! compares two databases.

use mjlink_core::snowflake::Snowflake;

use super::lineage::{link_from_row, LinkRow};
use super::{opt_snowflake, Result, Store};

/// A link joined with its child's facts, for export.
#[derive(Debug, Clone)]
pub struct LinkExport {
    pub link: LinkRow,
    pub prompt: Option<String>,
    pub channel_id: Option<Snowflake>,
    pub posted_at: Option<i64>,
}

/// The archive in figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveCounts {
    pub archived: i64,
    pub pending: i64,
    pub failed: i64,
    pub bytes: i64,
}

impl Store {
    /// Message counts by kind (seen messages only).
    pub fn count_by_kind(&self) -> Result<Vec<(String, i64)>> {
        self.grouped("SELECT kind, COUNT(*) FROM messages WHERE seen = 1 GROUP BY kind ORDER BY kind")
    }

    /// Midjourney's jobs (grids and results, as the core names them) by the day they were
    /// posted (`text::day_of`), over the `days` days up to the newest one that has any: the
    /// history's own last day, not the clock's.
    pub fn jobs_per_day(&self, days: i64) -> Result<Vec<(i64, i64)>> {
        let jobs = mjlink_core::kinds::sql_list(mjlink_core::kinds::Shape::is_result);
        let sql = format!(
            "SELECT day, COUNT(*) FROM messages WHERE seen = 1 AND kind IN {jobs} AND day IS NOT NULL
                 AND day > (SELECT MAX(day) FROM messages WHERE seen = 1 AND kind IN {jobs}) - ?1
             GROUP BY day ORDER BY day"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map([days], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Link counts by signal (`none` for ambiguous and unresolved).
    pub fn count_links_by_signal(&self) -> Result<Vec<(String, i64)>> {
        self.grouped("SELECT COALESCE(signal, 'none'), COUNT(*) FROM links GROUP BY 1 ORDER BY 1")
    }

    /// Link counts by status (linked, ambiguous, unresolved).
    pub fn count_links_by_status(&self) -> Result<Vec<(String, i64)>> {
        self.grouped("SELECT status, COUNT(*) FROM links GROUP BY 1 ORDER BY 1")
    }

    /// Progress outcomes: running, completed, failed, unknown.
    pub fn count_outcomes(&self) -> Result<Vec<(String, i64)>> {
        self.grouped("SELECT outcome, COUNT(*) FROM messages WHERE kind = 'progress' AND seen = 1 GROUP BY 1 ORDER BY 1")
    }

    fn grouped(&self, sql: &str) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.conn().prepare_cached(sql)?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every link with its child's prompt, channel and time, in child id order.
    pub fn for_each_link(&self, mut visit: impl FnMut(LinkExport) -> Result<()>) -> Result<()> {
        let mut stmt = self.conn().prepare(
            "SELECT l.child_id, l.parent_id, l.action, l.tile, l.signal, l.status, l.candidates,
                    m.prompt, m.channel_id, m.posted_at
             FROM links l JOIN messages m ON m.id = l.child_id ORDER BY l.child_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let link = link_from_row(row)?;
            visit(LinkExport {
                link,
                prompt: row.get(7)?,
                channel_id: opt_snowflake(row.get(8)?),
                posted_at: row.get(9)?,
            })?;
        }
        Ok(())
    }

    /// A canonical text dump of every table, for comparing two databases.
    pub fn dump(&self) -> Result<String> {
        let mut out = String::new();
        for (table, order) in [
            ("messages", "id"),
            ("docs", "id"),
            ("attachments", "id"),
            ("links", "child_id"),
            ("processed", "message_id, event, digest"),
            ("channels", "id"),
        ] {
            let mut stmt = self
                .conn()
                .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
            let columns = stmt.column_count();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                out.push_str(table);
                for index in 0..columns {
                    let value: rusqlite::types::Value = row.get(index)?;
                    out.push('\t');
                    out.push_str(&format!("{value:?}"));
                }
                out.push('\n');
            }
        }
        Ok(out)
    }

    pub fn archive_counts(&self) -> Result<ArchiveCounts> {
        let mut counts = ArchiveCounts::default();
        // Only the kinds the archive keeps (the core's table): a progress preview's
        // attachment stays `pending` forever and is never archived.
        let sql = format!(
            "SELECT a.state, COUNT(*), COALESCE(SUM(a.bytes), 0) FROM attachments a JOIN messages m ON m.id = a.message_id
             WHERE m.seen = 1 AND m.kind IN {} GROUP BY a.state",
            super::archive::archived_kinds()
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (state, n, bytes) = row?;
            match state.as_str() {
                "archived" => {
                    counts.archived = n;
                    counts.bytes = bytes;
                }
                "pending" => counts.pending = n,
                "failed" => counts.failed = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Queue items by status.
    pub fn queue_counts(&self) -> Result<Vec<(String, i64)>> {
        self.grouped("SELECT status, COUNT(*) FROM queue_items GROUP BY 1 ORDER BY 1")
    }
}
