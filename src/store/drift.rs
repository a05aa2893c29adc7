//! Format drift's rows (see [`mjlink_core::drift`]): Midjourney messages of no known kind
//! (stored as `other`) and payloads the decoder rejected (`undecodable`), counted by UTC day,
//! and the samples kept of them to become fixtures. What counts as unknown is the core's
//! word ([`drift::unknown_name`]); this file only counts and keeps.

use std::sync::OnceLock;

use rusqlite::params;

use mjlink_core::drift::{self, Reason};
use mjlink_core::snowflake::Snowflake;

use super::{Result, Store};

/// One UTC day's unknown and undecodable Midjourney messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DriftDay {
    /// Days since 1970-01-01 ([`mjlink_core::text::day_of`]).
    pub day: i64,
    pub unknown: u64,
    pub undecodable: u64,
}

impl DriftDay {
    pub fn total(&self) -> u64 {
        self.unknown + self.undecodable
    }

    /// `2026-06-14`.
    pub fn date(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.day.saturating_mul(mjlink_core::text::DAY_MS))
            .map_or_else(
                || format!("day {}", self.day),
                |time| time.format("%Y-%m-%d").to_string(),
            )
    }
}

/// `kind = 'other'`, the condition of the partial index `messages_unknown_by_day` (migration
/// 0006): the query must spell it the same for SQLite to use the index.
fn unknown_condition() -> &'static str {
    static CONDITION: OnceLock<String> = OnceLock::new();
    CONDITION.get_or_init(|| format!("kind = '{}'", drift::unknown_name()))
}

impl Store {
    /// Unknown plus undecodable Midjourney messages posted on UTC day `day`.
    pub fn drift_count(&self, day: i64) -> Result<u64> {
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM messages WHERE day = ?1 AND {}) + (SELECT COUNT(*) FROM undecodable WHERE day = ?1)",
            unknown_condition()
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        Ok(stmt.query_row([day], |row| row.get::<_, i64>(0))?.max(0) as u64)
    }

    /// Records a payload the decoder rejected (by its digest); `false` when those bytes were
    /// recorded before.
    pub fn note_undecodable(&self, digest: u64, message_id: Snowflake, day: i64) -> Result<bool> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT OR IGNORE INTO undecodable (digest, message_id, day) VALUES (?1, ?2, ?3)",
        )?;
        Ok(stmt.execute(params![digest as i64, message_id.to_sql(), day])? == 1)
    }

    /// Keeps `raw` as a sample: refreshes the sample with the same key, or adds one while fewer
    /// than `keep` are kept. `false` when it was not kept (the store is full).
    pub fn keep_drift_sample(
        &self,
        message_id: Snowflake,
        reason: Reason,
        digest: u64,
        day: i64,
        raw: &str,
        keep: usize,
    ) -> Result<bool> {
        let key = params![message_id.to_sql(), reason.as_str(), digest as i64, day, raw];
        let mut refresh = self.conn().prepare_cached(
            "UPDATE drift_samples SET day = ?4, raw = ?5 WHERE message_id = ?1 AND reason = ?2 AND digest = ?3",
        )?;
        if refresh.execute(key)? == 1 {
            return Ok(true);
        }
        let mut add = self.conn().prepare_cached(
            "INSERT INTO drift_samples (message_id, reason, digest, day, raw)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE (SELECT COUNT(*) FROM drift_samples) < ?6",
        )?;
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        Ok(add.execute(params![
            message_id.to_sql(),
            reason.as_str(),
            digest as i64,
            day,
            raw,
            keep
        ])? == 1)
    }

    /// The newest `limit` days that have unknown or undecodable messages, newest first.
    pub fn drift_days(&self, limit: usize) -> Result<Vec<DriftDay>> {
        let sql = format!(
            "SELECT day, SUM(unknown), SUM(undecodable) FROM (
                 SELECT day, COUNT(*) AS unknown, 0 AS undecodable FROM messages
                 WHERE {} AND day IS NOT NULL GROUP BY day
                 UNION ALL
                 SELECT day, 0, COUNT(*) FROM undecodable GROUP BY day
             ) GROUP BY day ORDER BY day DESC LIMIT ?1",
            unknown_condition()
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
            Ok(DriftDay {
                day: row.get(0)?,
                unknown: row.get::<_, i64>(1)?.max(0) as u64,
                undecodable: row.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Unknown and undecodable Midjourney messages over every day, and the samples kept.
    pub fn drift_totals(&self) -> Result<(DriftDay, u64)> {
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM messages WHERE {}), (SELECT COUNT(*) FROM undecodable),
                    (SELECT COUNT(*) FROM drift_samples)",
            unknown_condition()
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        Ok(stmt.query_row([], |row| {
            let count = |index| row.get::<_, i64>(index).map(|n| n.max(0) as u64);
            Ok((
                DriftDay {
                    day: 0,
                    unknown: count(0)?,
                    undecodable: count(1)?,
                },
                count(2)?,
            ))
        })?)
    }

    /// Every sample kept (of `channel`'s messages only, when given: a payload that did not
    /// decode has no channel then), oldest first: its message id and its dispatch line.
    pub fn for_each_drift_sample(
        &self,
        channel: Option<Snowflake>,
        visit: impl FnMut((Snowflake, String)) -> Result<()>,
    ) -> Result<()> {
        self.visit_rows(
            "SELECT s.message_id, s.raw FROM drift_samples s LEFT JOIN messages m ON m.id = s.message_id
             WHERE ?1 IS NULL OR m.channel_id = ?1 ORDER BY s.id",
            [channel.map(Snowflake::to_sql)],
            |row| Ok((Snowflake::from_sql(row.get(0)?), row.get(1)?)),
            visit,
        )
    }

    /// Every sample kept, oldest first (for tests).
    #[cfg(test)]
    pub(crate) fn drift_samples(&self) -> Vec<(u64, String)> {
        let mut kept = Vec::new();
        self.for_each_drift_sample(None, |(id, raw)| {
            kept.push((id.0, raw));
            Ok(())
        })
        .unwrap();
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_spells_the_index_condition() {
        let migration = include_str!("migrations/0007_drift_and_media.sql");
        assert!(
            migration.contains(&format!("ON messages(day) WHERE {};", unknown_condition())),
            "messages_unknown_by_day must be the index the drift queries use"
        );
        let store = Store::open_in_memory().unwrap();
        let plan = super::super::query_plan(
            store.conn(),
            &format!(
                "SELECT COUNT(*) FROM messages WHERE day = 1 AND {}",
                unknown_condition()
            ),
        );
        assert!(
            plan.iter().any(|step| step.contains("messages_unknown_by_day")),
            "{plan:?}"
        );
    }

    #[test]
    fn samples_stop_at_the_limit_but_a_kept_one_is_refreshed() {
        let store = Store::open_in_memory().unwrap();
        let keep = |id: u64, raw: &str| {
            store
                .keep_drift_sample(Snowflake(id), Reason::Unknown, 0, 1, raw, 2)
                .unwrap()
        };
        assert!(keep(1, "a"));
        assert!(keep(2, "b"));
        assert!(!keep(3, "c"), "two kept: the third is not");
        assert!(keep(1, "a2"), "a kept sample is refreshed");
        assert_eq!(
            store.drift_samples(),
            [(1, "a2".to_string()), (2, "b".to_string())]
        );
        assert!(!store
            .keep_drift_sample(Snowflake(4), Reason::Unknown, 0, 1, "d", 0)
            .unwrap());
    }

    #[test]
    fn undecodable_payloads_count_once_by_day() {
        let store = Store::open_in_memory().unwrap();
        assert!(store.note_undecodable(7, Snowflake(1), 20_000).unwrap());
        assert!(!store.note_undecodable(7, Snowflake(1), 20_000).unwrap());
        assert!(store.note_undecodable(8, Snowflake(1), 20_000).unwrap());
        assert!(store.note_undecodable(9, Snowflake(2), 20_001).unwrap());
        assert_eq!(store.drift_count(20_000).unwrap(), 2);
        assert_eq!(store.drift_count(19_999).unwrap(), 0);
        let days = store.drift_days(10).unwrap();
        assert_eq!(
            days,
            [
                DriftDay {
                    day: 20_001,
                    unknown: 0,
                    undecodable: 1
                },
                DriftDay {
                    day: 20_000,
                    unknown: 0,
                    undecodable: 2
                }
            ]
        );
        assert_eq!(days[1].date(), "2024-10-04");
    }
}
