//! The SQLite store: schema and migrations, and one function per query. Domain types in and
//! out; snowflakes cross into SQL only through [`Snowflake::to_sql`]/[`Snowflake::from_sql`].
//!
//! One `impl Store` per concern, each in its own file: `lineage.rs` (what the pipeline
//! writes and the linker reads), `archive.rs`, `queue.rs`, `search.rs`, `stats.rs`,
//! `drift.rs` (unknown formats by day, their samples), `web.rs` (the gallery's reads) and `messages.rs` (the listing of
//! `mjlink messages`), each with its row types (re-exported here). This file holds the store itself (opening,
//! migrations, transactions) and the helpers they share. The migrations are the numbered
//! files in `migrations/`: history, never edited once shipped (`tests.rs` pins them).

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::Connection;

use mjlink_core::snowflake::Snowflake;

mod archive;
mod docs;
mod drift;
mod lineage;
mod manual;
mod messages;
mod queue;
mod replies;
mod search;
mod stats;
mod web;

pub use archive::{ArchivedCopy, FamilyFile, FamilyMessage, FamilyRecord, ImageRow, PendingImage};
pub use drift::DriftDay;
pub use lineage::{
    ChildFacts, FinalCandidates, LinkRow, MessagePlace, MessageRow, ProgressRow, PromptScope, StoredMessage,
};
pub use messages::{MessageDoc, MessageExport, MessageFilter};
pub use replies::ReplyTargetRow;
pub use search::{fts_query, SearchFilter, SearchHit};
pub use stats::{ArchiveCounts, LinkExport};
pub use web::{ArchivedFile, GalleryFilter, GalleryItem, MessageFile};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("no database at {path} (run `mjlink replay` or `mjlink backfill` first, or pass --db)")]
    Missing { path: PathBuf },
    #[error("the database {path} is read-only and older than this mjlink (schema version {found}, this build knows {known}): run any command once where it can be written, to upgrade it")]
    ReadOnlyOld { path: PathBuf, found: i64, known: i64 },
    #[error("the database {path} was written by a newer mjlink (schema version {found}, this build knows {known})")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the database writer stopped")]
    WriterGone,
    /// A reader of rows (`for_each_*`) asked to stop early (its output went away).
    #[error("the listing was stopped by its reader")]
    Stopped,
    #[error("a stored message could not be read back ({id}): {source}")]
    CorruptDoc {
        id: Snowflake,
        source: serde_json::Error,
    },
}

pub use manual::ManualNote;

pub type Result<T> = std::result::Result<T, StoreError>;

/// Numbered migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_lineage.sql"),
    include_str!("migrations/0002_channels.sql"),
    include_str!("migrations/0003_archive.sql"),
    include_str!("migrations/0004_queue.sql"),
    include_str!("migrations/0005_search.sql"),
    include_str!("migrations/0006_formats_2026.sql"),
    include_str!("migrations/0007_drift_and_media.sql"),
    include_str!("migrations/0008_start_replies.sql"),
    include_str!("migrations/0009_archive_trust.sql"),
    include_str!("migrations/0011_manual_links.sql"),
];

/// How a command opens the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Made when missing: the commands that fill it (`replay`, `run`, `backfill`, `queue
    /// add`).
    Create,
    /// Must exist, read and written (`archive`, `verify --repair`, `queue cancel`): a path
    /// that names nothing is a mistake, never a new empty database.
    Existing,
    /// Must exist, only read (`links`, `messages`, `images`, `verify`, `queue list|show`):
    /// opened as usual when it can be written, else with SQLite's read-only flag (a
    /// read-only file or folder is fine).
    ReadOnly,
}

pub struct Store {
    conn: Connection,
    in_batch: bool,
    codec: std::cell::RefCell<docs::DocCodec>,
}

fn opt_sql(id: Option<Snowflake>) -> Option<i64> {
    id.map(Snowflake::to_sql)
}

fn opt_snowflake(value: Option<i64>) -> Option<Snowflake> {
    value.map(Snowflake::from_sql)
}

const DAY_MS: i64 = 86_400_000;

/// A `WHERE` fragment over `messages` and the values it binds by name. Both kinds of
/// filter go through a lookup index whose leading key is the day (see the schema).
struct Filter {
    clause: String,
    values: Vec<(String, Value)>,
}

impl Filter {
    /// `alias.day IN (:d0, :d1, ...)` for the days `[from_ms, to_ms]` touches (at most 400,
    /// beyond the longest window the config allows), and the time range itself.
    fn window(alias: &str, from_ms: i64, to_ms: i64) -> Filter {
        let first_day = from_ms.div_euclid(DAY_MS);
        let last_day = to_ms.div_euclid(DAY_MS).clamp(first_day, first_day + 400);
        let mut values: Vec<(String, Value)> = (first_day..=last_day)
            .enumerate()
            .map(|(index, day)| (format!(":d{index}"), Value::from(day)))
            .collect();
        let names: Vec<&str> = values.iter().map(|(name, _)| name.as_str()).collect();
        let clause = format!(
            "{alias}day IN ({}) AND {alias}posted_at BETWEEN :from AND :to",
            names.join(", ")
        );
        values.push((":from".to_string(), from_ms.into()));
        values.push((":to".to_string(), to_ms.into()));
        Filter { clause, values }
    }

    /// Messages of `scope` (same channel, user and normalized prompt) posted in the window.
    fn scope(alias: &str, scope: PromptScope<'_>, from_ms: i64, to_ms: i64) -> Filter {
        Filter::window(alias, from_ms, to_ms)
            .and(&format!(
                "{alias}channel_id = :channel AND {alias}user_id = :user AND {alias}prompt_key = :prompt_key AND {alias}prompt_norm = :prompt"
            ))
            .bind(":channel", scope.channel_id.to_sql())
            .bind(":user", scope.user_id.to_sql())
            .bind(":prompt_key", text_key(scope.prompt_norm))
            .bind(":prompt", scope.prompt_norm.to_string())
    }

    /// Messages with the job UUID `uuid` posted in the window.
    fn job(alias: &str, uuid: &str, from_ms: i64, to_ms: i64) -> Filter {
        Filter::window(alias, from_ms, to_ms)
            .and(&format!(
                "{alias}job_key = :job_key AND {alias}job_uuid = :job_uuid"
            ))
            .bind(":job_key", text_key(uuid))
            .bind(":job_uuid", uuid.to_string())
    }

    fn and(mut self, condition: &str) -> Filter {
        self.clause.push_str(" AND ");
        self.clause.push_str(condition);
        self
    }

    fn bind(mut self, name: &str, value: impl Into<Value>) -> Filter {
        self.values.push((name.to_string(), value.into()));
        self
    }
}

/// The index key of a text column (see the schema): a stable 64-bit digest.
fn text_key(text: &str) -> i64 {
    mjlink_core::digest::digest(text.as_bytes()) as i64
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Store::setup(conn, path, true)
    }

    /// Opens the database at `path` as `mode` says (see [`OpenMode`]).
    pub fn open_as(path: &Path, mode: OpenMode) -> Result<Store> {
        if mode != OpenMode::Create && !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        if mode != OpenMode::ReadOnly {
            return Store::open(path);
        }
        // Opened as usual (migrated) when it can be written; else read as it is.
        match Store::open(path) {
            Err(StoreError::Open { .. }) | Err(StoreError::Sql(_)) => {}
            opened => return opened,
        }
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        let readable = |conn: &Connection| {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
                row.get::<_, i64>(0)
            })
        };
        if readable(&conn).is_err() {
            // A WAL database needs its shared-memory index beside it, which a read-only
            // folder cannot hold (and then nothing can be writing it): read the file as is.
            conn = Connection::open_with_flags(immutable_uri(path), flags).map_err(open_err)?;
            readable(&conn).map_err(open_err)?;
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version < known {
            return Err(StoreError::ReadOnlyOld {
                path: path.to_path_buf(),
                found: version,
                known,
            });
        }
        Store::setup(conn, path, false)
    }

    /// An in-memory database, for tests and benchmarks of the pure parts.
    pub fn open_in_memory() -> Result<Store> {
        Store::setup(Connection::open_in_memory()?, Path::new(":memory:"), true)
    }

    /// `writable`: set the journal up and migrate; else only read (`migrate` still refuses
    /// a newer schema).
    fn setup(conn: Connection, path: &Path, writable: bool) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every query below is prepared once and reused; the default cache (16) is too small.
        conn.set_prepared_statement_cache_capacity(64);
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        if writable {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(open_err)?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Fewer, larger checkpoints: a page rewritten many times is copied back once.
            conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -64_000)?;
        let codec = docs::DocCodec::new()
            .map_err(|error| open_err(rusqlite::Error::ToSqlConversionFailure(Box::new(error))))?;
        let mut store = Store {
            conn,
            in_batch: false,
            codec: std::cell::RefCell::new(codec),
        };
        store.migrate(path)?;
        Ok(store)
    }

    fn migrate(&mut self, path: &Path) -> Result<()> {
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known,
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// SQLite's `PRAGMA quick_check`: "ok", or the first problem found.
    pub fn quick_check(&self) -> Result<String> {
        Ok(self.conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?)
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    /// Starts a batch: everything until [`Store::commit`] lands together or not at all.
    pub fn begin(&mut self) -> Result<()> {
        if !self.in_batch {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_batch = true;
        }
        Ok(())
    }

    /// Undoes the open transaction, if any.
    pub fn rollback(&mut self) -> Result<()> {
        if self.in_batch {
            self.conn.execute_batch("ROLLBACK")?;
            self.in_batch = false;
        }
        Ok(())
    }

    pub fn commit(&mut self) -> Result<()> {
        if self.in_batch {
            self.conn.execute_batch("COMMIT")?;
            self.in_batch = false;
        }
        Ok(())
    }

    /// Runs `sql` with `params` and hands each row, as `read` makes it, to `visit`: one row
    /// at a time, so a listing of the whole history holds one row in memory.
    fn visit_rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        mut read: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
        mut visit: impl FnMut(T) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        while let Some(row) = rows.next()? {
            visit(read(row)?)?;
        }
        Ok(())
    }

    /// Runs `sql`, whose `{filter}` is replaced by the filter's clause, with its values bound.
    fn select<T>(
        &self,
        sql: &str,
        filter: Filter,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let sql = sql.replace("{filter}", &filter.clause);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let params: Vec<(&str, &dyn rusqlite::ToSql)> = filter
            .values
            .iter()
            .map(|(name, value)| (name.as_str(), value as &dyn rusqlite::ToSql))
            .collect();
        let rows = stmt.query_map(params.as_slice(), map)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

/// `path` as a SQLite URI that opens it immutable (no lock, no WAL index).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

#[cfg(test)]
mod tests;
