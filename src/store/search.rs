//! Full-text search over prompts (`/search`): the lazy FTS5 indexing, the query, and how
//! words become an FTS5 query.

use std::sync::OnceLock;

use rusqlite::params;

use mjlink_core::kinds;
use mjlink_core::snowflake::Snowflake;

use super::{opt_snowflake, opt_sql, Result, Store};

/// `(kind = 'imagine' OR kind = 'blend' OR ...)`: the kinds with a prompt of their own (root
/// grids, root videos and remixes, the core's `has_own_prompt_name`), as comparisons. This is
/// the text of the partial index `messages_fts_pending`'s condition (migration 0010: an `IN`
/// list made SQLite build a temporary table at every insert and update of a message);
/// `store::tests` checks that the index spells it so.
pub(super) fn pending_kinds_condition() -> &'static str {
    static CONDITION: OnceLock<String> = OnceLock::new();
    CONDITION.get_or_init(|| {
        let kinds: Vec<String> = kinds::result_names()
            .filter(|name| kinds::has_own_prompt_name(name))
            .map(|name| format!("kind = '{name}'"))
            .collect();
        format!("({})", kinds.join(" OR "))
    })
}

/// The prompts not indexed yet: those of the kinds with a prompt of their own. The query
/// says the partial index's condition, which SQLite uses only while the two are the same.
fn pending_prompts_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT id, prompt FROM messages
             WHERE fts_state = 0 AND prompt IS NOT NULL
                 AND {}
             LIMIT 5000",
            pending_kinds_condition()
        )
    })
}

/// One hit of a prompt search.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SearchHit {
    pub message_id: Snowflake,
    pub channel_id: Option<Snowflake>,
    pub guild_id: Option<Snowflake>,
    pub user_id: Option<Snowflake>,
    pub kind: String,
    pub prompt: String,
    pub posted_ms: Option<i64>,
}

/// What `/search` filters on besides the words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub user_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub since_ms: Option<i64>,
}

/// Words as an FTS5 query: each token a quoted term (so no user input is FTS syntax), all
/// required. `None` when there is no word.
pub fn fts_query(words: &str) -> Option<String> {
    // Split where the tokenizer splits (anything but letters and digits), so each term is
    // one token.
    let phrases: Vec<String> = words
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(16)
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

const HITS_WHERE: &str = "prompts_fts MATCH ?1 AND (?2 IS NULL OR m.user_id = ?2)
     AND (?3 IS NULL OR m.channel_id = ?3) AND (?4 IS NULL OR m.posted_at >= ?4)
     AND m.deleted_at IS NULL AND m.seen = 1";

/// A page of hits, newest first. The order is the index's own (`prompts_fts.rowid`, which is
/// `m.id`): FTS5 hands its matches over newest first and the page stops at its limit, instead
/// of every match being sorted.
fn hits_sql() -> String {
    format!(
        "SELECT m.id, m.channel_id, m.guild_id, m.user_id, m.kind, m.prompt, m.posted_at
         FROM prompts_fts JOIN messages m ON m.id = prompts_fts.rowid WHERE {HITS_WHERE}
         ORDER BY prompts_fts.rowid DESC LIMIT ?5 OFFSET ?6"
    )
}

/// Full-text search.
impl Store {
    /// Indexes the prompts stored since the last search (in batches, each its own
    /// transaction); returns how many. Nothing pending (the usual case) takes no write
    /// transaction; a batch takes its write lock when it begins (`IMMEDIATE`), so searches on
    /// other connections wait for it (the busy timeout) instead of failing when a read
    /// transaction cannot become a write one.
    pub fn index_prompts(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let any_pending = self.conn().prepare_cached(pending_prompts_sql())?.exists([])?;
            if !any_pending {
                return Ok(total);
            }
            let tx =
                rusqlite::Transaction::new_unchecked(self.conn(), rusqlite::TransactionBehavior::Immediate)?;
            let pending: Vec<(i64, String)> = tx
                .prepare_cached(pending_prompts_sql())?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            if pending.is_empty() {
                return Ok(total);
            }
            {
                let mut index =
                    tx.prepare_cached("INSERT INTO prompts_fts(rowid, prompt) VALUES (?1, ?2)")?;
                let mut done = tx.prepare_cached("UPDATE messages SET fts_state = 1 WHERE id = ?1")?;
                for (id, prompt) in &pending {
                    index.execute(params![id, prompt])?;
                    done.execute([id])?;
                }
            }
            tx.commit()?;
            total += pending.len();
        }
    }

    /// Prompts matching every word, newest first: one page, and how many match, counted up to
    /// `count_up_to` (a common word matches tens of thousands: counting them all cost more
    /// than the page). Indexes what is pending first.
    pub fn search_prompts(
        &self,
        words: &str,
        filter: &SearchFilter,
        offset: usize,
        limit: usize,
        count_up_to: i64,
    ) -> Result<(Vec<SearchHit>, i64)> {
        let Some(query) = fts_query(words) else {
            return Ok((Vec::new(), 0));
        };
        self.index_prompts()?;
        let args = params![
            query,
            opt_sql(filter.user_id),
            opt_sql(filter.channel_id),
            filter.since_ms,
            count_up_to.max(0),
        ];
        let total: i64 = self
            .conn()
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM prompts_fts JOIN messages m ON m.id = prompts_fts.rowid
                 WHERE {HITS_WHERE} LIMIT ?5)"
            ))?
            .query_row(args, |row| row.get(0))?;
        let mut stmt = self.conn().prepare_cached(&hits_sql())?;
        let rows = stmt.query_map(
            params![
                query,
                opt_sql(filter.user_id),
                opt_sql(filter.channel_id),
                filter.since_ms,
                limit as i64,
                offset as i64
            ],
            |row| {
                Ok(SearchHit {
                    message_id: Snowflake::from_sql(row.get(0)?),
                    channel_id: opt_snowflake(row.get(1)?),
                    guild_id: opt_snowflake(row.get(2)?),
                    user_id: opt_snowflake(row.get(3)?),
                    kind: row.get(4)?,
                    prompt: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    posted_ms: row.get(6)?,
                })
            },
        )?;
        Ok((rows.collect::<rusqlite::Result<Vec<_>>>()?, total))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;

    #[test]
    fn pending_prompts_use_the_partial_index() {
        let store = Store::open_in_memory().unwrap();
        let plan = super::super::query_plan(store.conn(), super::pending_prompts_sql());
        assert!(
            plan.iter().any(|step| step.contains("messages_fts_pending")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_page_of_hits_is_read_in_the_index_order_without_sorting_every_match() {
        let store = Store::open_in_memory().unwrap();
        let plan = super::super::query_plan(store.conn(), &super::hits_sql());
        assert!(plan[0].starts_with("SCAN prompts_fts VIRTUAL TABLE"), "{plan:?}");
        assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{plan:?}");
    }

    #[test]
    fn words_become_quoted_terms() {
        assert_eq!(
            super::fts_query("a cat, \"red\"").as_deref(),
            Some("\"a\" \"cat\" \"red\"")
        );
        assert_eq!(super::fts_query(" ,; "), None);
    }
}
