//! The SQLite store: schema and migrations, and one function per query. Domain types in and
//! out; snowflakes cross into SQL only through [`Snowflake::to_sql`]/[`Snowflake::from_sql`].
//!
//! One `impl Store` per concern, each in its own file with its row types (re-exported here):
//! `message_rows.rs` (a message's row, doc and attachments, as the pipeline writes them),
//! `lineage.rs` (links, outcomes and what the linker reads), `marks.rs` (button marks),
//! `replies.rs` (a reply's target, ratings), `archive.rs`, `queue.rs`, `search.rs`, `stats.rs`,
//! `drift.rs` (unknown formats), `web.rs` (the gallery's reads), `messages.rs` (`mjlink
//! messages`); `docs.rs` (how docs are encoded) and `recent.rs` (the writer's cache of recent
//! messages) serve them. This file holds the store itself (opening, migrations, transactions)
//! and the helpers they share; `migrations.rs` lists the migrations and runs what they leave.

use std::path::{Path, PathBuf};

use rusqlite::types::ToSqlOutput;
use rusqlite::Connection;

use mjlink_core::snowflake::Snowflake;

mod animations;
mod archive;
mod docs;
mod drift;
mod lineage;
mod manual;
mod marks;
mod message_rows;
mod messages;
mod migrations;
mod notify;
mod queue;
mod queue_progress;
mod recent;
mod replies;
mod search;
mod statements;
mod stats;
mod uploads;
mod web;

pub use archive::{
    pending_images_sql, ArchivedCopy, FamilyFile, FamilyMessage, FamilyRecord, ImageRow, PendingImage,
};
pub use docs::PreparedDoc;
pub use drift::DriftDay;
pub use lineage::{ChildFacts, FinalCandidates, LinkRow, MessagePlace, ProgressRow, PromptScope};
pub use message_rows::{MessageRow, StoredMessage};
pub use messages::{MessageDoc, MessageExport, MessageFilter};
pub use notify::{DeadLetter, OutboxCounts, OutboxRow};
pub use queue_progress::{PreviewFile, SubmissionProgress};
pub use replies::ReplyTargetRow;
pub use search::{fts_query, SearchFilter, SearchHit};
pub use stats::{ArchiveCounts, LinkExport};
pub use uploads::Upload;
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

pub use animations::keeps_animated_form;
pub use manual::ManualNote;
use migrations::{after_migration, MIGRATIONS};

pub type Result<T> = std::result::Result<T, StoreError>;

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
    /// The connection, with the writer's hot statements kept beside it.
    db: statements::Db,
    in_batch: bool,
    codec: std::cell::RefCell<docs::DocCodec>,
    /// The writer's cache of recent messages (off unless `keep_recent` turned it on).
    recent: std::cell::RefCell<recent::Recent>,
    /// The current event's doc, encoded off the writer's thread (`offer_prepared`).
    prepared: std::cell::RefCell<Option<PreparedDoc>>,
    /// The SQL text of each filtered query (`select`) and its parameters, made once.
    filters: std::cell::RefCell<Vec<(FilterKey, std::sync::Arc<FilterSql>)>>,
}

fn opt_sql(id: Option<Snowflake>) -> Option<i64> {
    id.map(Snowflake::to_sql)
}

fn opt_snowflake(value: Option<i64>) -> Option<Snowflake> {
    value.map(Snowflake::from_sql)
}

const DAY_MS: i64 = 86_400_000;

/// A `WHERE` fragment over `messages` and the values it binds by name. Both kinds of
/// filter go through a lookup index whose leading key is the day (see the schema): the
/// fragment says `day = :day`, and [`Store::select`] runs the query once for each day the
/// window touches, in order (an `IN` list of days would make SQLite build a temporary table
/// at every execution).
struct Filter<'a> {
    alias: &'static str,
    what: Filtered,
    /// Conditions added with [`Filter::and`], at most two.
    and: [&'static str; 2],
    /// The days `[from_ms, to_ms]` touches (at most 401, beyond the longest window the
    /// config allows).
    days: std::ops::RangeInclusive<i64>,
    values: Vec<(&'static str, ToSqlOutput<'a>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Filtered {
    Window,
    Scope,
    Job,
    /// [`Filtered::Scope`] by the index's columns alone (see [`Filter::keys_only`]).
    ScopeKeys,
    /// [`Filtered::Job`] by the index's columns alone (see [`Filter::keys_only`]).
    JobKeys,
}

/// What makes a filter's SQL text: the query's text and the filter's shape.
type FilterKey = (&'static str, &'static str, Filtered, [&'static str; 2]);

/// Whether two keys are the same texts, compared by address: each is a literal of the code,
/// so this costs a few comparisons where hashing the query's text cost more than running it
/// on a small window. (Two copies of one literal at two addresses only make two entries.)
fn same_key(a: &FilterKey, b: &FilterKey) -> bool {
    std::ptr::eq(a.0, b.0)
        && std::ptr::eq(a.1, b.1)
        && a.2 == b.2
        && std::ptr::eq(a.3[0], b.3[0])
        && std::ptr::eq(a.3[1], b.3[1])
}

/// A filtered query's text, and the names of its parameters in SQLite's order (bound by
/// position, so no name is looked up at each execution).
struct FilterSql {
    text: String,
    params: Vec<String>,
}

impl<'a> Filter<'a> {
    /// Messages posted in `[from_ms, to_ms]`.
    fn window(alias: &'static str, from_ms: i64, to_ms: i64) -> Filter<'a> {
        let first_day = from_ms.div_euclid(DAY_MS);
        let last_day = to_ms.div_euclid(DAY_MS).clamp(first_day, first_day + 400);
        Filter {
            alias,
            what: Filtered::Window,
            and: ["", ""],
            days: first_day..=last_day,
            values: vec![(":from", from_ms.into()), (":to", to_ms.into())],
        }
    }

    /// Messages of `scope` (same channel, user and normalized prompt) posted in the window.
    fn scope(alias: &'static str, scope: PromptScope<'a>, from_ms: i64, to_ms: i64) -> Filter<'a> {
        let mut filter = Filter::window(alias, from_ms, to_ms)
            .bind(":channel", scope.channel_id.to_sql())
            .bind(":user", scope.user_id.to_sql())
            .bind(":prompt_key", text_key(scope.prompt_norm))
            .bind(":prompt", scope.prompt_norm);
        filter.what = Filtered::Scope;
        filter
    }

    /// Messages with the job UUID `uuid` posted in the window.
    fn job(alias: &'static str, uuid: &'a str, from_ms: i64, to_ms: i64) -> Filter<'a> {
        let mut filter = Filter::window(alias, from_ms, to_ms)
            .bind(":job_key", text_key(uuid))
            .bind(":job_uuid", uuid);
        filter.what = Filtered::Job;
        filter
    }

    /// The same filter by the columns of its index alone: the channel, user and prompt key
    /// with the window (`messages_by_prompt`), or the day and job key (`messages_by_job`,
    /// which holds no `posted_at`). A query of `id`s then reads only the index; the caller
    /// checks the rest on each row's facts (the prompt or job UUID the key stands for, and
    /// for a job the window), as `Store::finals_for` and `Store::progress_waiting_for` do.
    fn keys_only(mut self) -> Filter<'a> {
        self.what = match self.what {
            Filtered::Scope => Filtered::ScopeKeys,
            Filtered::Job => Filtered::JobKeys,
            other => other,
        };
        self
    }

    fn and(mut self, condition: &'static str) -> Filter<'a> {
        let free = self.and.iter_mut().find(|and| and.is_empty());
        *free.expect("at most two conditions are added to a filter") = condition;
        self
    }

    fn bind(mut self, name: &'static str, value: impl Into<ToSqlOutput<'a>>) -> Filter<'a> {
        self.values.push((name, value.into()));
        self
    }

    /// `sql` with its `{filter}` replaced by this filter's clause.
    fn sql(&self, sql: &str) -> String {
        let alias = self.alias;
        let window = format!("{alias}day = :day AND {alias}posted_at BETWEEN :from AND :to");
        let scope_keys = format!(" AND {alias}channel_id = :channel AND {alias}user_id = :user AND {alias}prompt_key = :prompt_key");
        let mut clause = match self.what {
            Filtered::Window => window,
            Filtered::Scope => format!("{window}{scope_keys} AND {alias}prompt_norm = :prompt"),
            Filtered::ScopeKeys => format!("{window}{scope_keys}"),
            Filtered::Job => {
                format!("{window} AND {alias}job_key = :job_key AND {alias}job_uuid = :job_uuid")
            }
            Filtered::JobKeys => format!("{alias}day = :day AND {alias}job_key = :job_key"),
        };
        for condition in self.and.iter().filter(|and| !and.is_empty()) {
            clause.push_str(" AND ");
            clause.push_str(condition);
        }
        sql.replace("{filter}", &clause)
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
            db: statements::Db::open(conn),
            in_batch: false,
            codec: std::cell::RefCell::new(codec),
            recent: Default::default(),
            prepared: Default::default(),
            filters: Default::default(),
        };
        store.migrate(path)?;
        Ok(store)
    }

    fn conn(&self) -> &Connection {
        self.db.conn()
    }

    /// Runs `use_it` on the kept statement of `sql`, prepared once (see [`statements`]): for
    /// the statements the writer runs at every event.
    fn with_statement<T>(
        &self,
        sql: &'static str,
        use_it: impl FnOnce(&mut rusqlite::Statement<'_>) -> Result<T>,
    ) -> Result<T> {
        self.db
            .with_statement(statements::StatementKey::literal(sql), sql, use_it)
    }

    fn migrate(&mut self, path: &Path) -> Result<()> {
        let version: i64 = self
            .conn()
            .query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known,
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn().unchecked_transaction()?;
            tx.execute_batch(sql)?;
            after_migration(&tx, index + 1)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// SQLite's `PRAGMA quick_check`: "ok", or the first problem found.
    pub fn quick_check(&self) -> Result<String> {
        Ok(self
            .conn()
            .query_row("PRAGMA quick_check", [], |row| row.get(0))?)
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    /// Starts a batch: everything until [`Store::commit`] lands together or not at all.
    pub fn begin(&mut self) -> Result<()> {
        if self.in_batch && self.conn().is_autocommit() {
            // SQLite rolled the batch back on an error: what the cache remembers may be gone.
            self.recent.borrow_mut().clear();
        }
        if !self.in_batch {
            self.conn().execute_batch("BEGIN IMMEDIATE")?;
            self.in_batch = true;
        }
        Ok(())
    }

    /// Undoes the open transaction, if any.
    pub fn rollback(&mut self) -> Result<()> {
        if self.in_batch {
            self.recent.borrow_mut().clear();
            self.conn().execute_batch("ROLLBACK")?;
            self.in_batch = false;
        }
        Ok(())
    }

    pub fn commit(&mut self) -> Result<()> {
        if self.in_batch {
            // The docs the writer's cache holds back are part of the batch.
            let written = self.write_unwritten_docs();
            if let Err(error) = written.and_then(|()| Ok(self.conn().execute_batch("COMMIT")?)) {
                self.recent.borrow_mut().clear();
                return Err(error);
            }
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
        let mut stmt = self.conn().prepare(sql)?;
        let mut rows = stmt.query(params)?;
        while let Some(row) = rows.next()? {
            visit(read(row)?)?;
        }
        Ok(())
    }

    /// `insert` when the row is new (as the cache says), else `upsert`; were the cache wrong,
    /// the insert fails on the primary key before writing anything, and the upsert runs.
    fn insert_or_upsert(
        &self,
        is_new: bool,
        insert: &'static str,
        upsert: &'static str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<()> {
        if is_new {
            match self.with_statement(insert, |stmt| Ok(stmt.execute(values)?)) {
                Ok(_) => return Ok(()),
                Err(StoreError::Sql(rusqlite::Error::SqliteFailure(error, _)))
                    if error.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    debug_assert!(false, "the cache said there was no row: {error}");
                }
                Err(error) => return Err(error),
            }
        }
        self.with_statement(upsert, |stmt| Ok(stmt.execute(values)?))?;
        Ok(())
    }

    /// Runs `sql`, whose `{filter}` is replaced by the filter's clause, with its values bound:
    /// once for each day of the filter's window, in order.
    fn select<T>(
        &self,
        sql: &'static str,
        filter: Filter<'_>,
        mut map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let key: FilterKey = (sql, filter.alias, filter.what, filter.and);
        let known = self
            .filters
            .borrow()
            .iter()
            .position(|(known, _)| same_key(known, &key));
        let slot = match known {
            Some(slot) => slot,
            None => {
                let text = filter.sql(sql);
                let params = {
                    let stmt = self.conn().prepare(&text)?;
                    (1..=stmt.parameter_count())
                        .map(|index| stmt.parameter_name(index).unwrap_or_default().to_string())
                        .collect()
                };
                let mut filters = self.filters.borrow_mut();
                filters.push((key, std::sync::Arc::new(FilterSql { text, params })));
                filters.len() - 1
            }
        };
        let query = self.filters.borrow()[slot].1.clone();
        let key = statements::StatementKey::Filter(slot);
        self.db.with_statement(key, &query.text, |stmt| {
            let mut out = Vec::new();
            for day in filter.days.clone() {
                for (index, name) in query.params.iter().enumerate() {
                    if name == ":day" {
                        stmt.raw_bind_parameter(index + 1, day)?;
                        continue;
                    }
                    match filter.values.iter().find(|(bound, _)| bound == name) {
                        Some((_, value)) => stmt.raw_bind_parameter(index + 1, value)?,
                        None => return Err(rusqlite::Error::InvalidParameterName(name.clone()).into()),
                    }
                }
                let mut rows = stmt.raw_query();
                while let Some(row) = rows.next()? {
                    out.push(map(row)?);
                }
            }
            Ok(out)
        })
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

/// The steps of SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`, the detail column), its
/// parameters unbound (NULL: the plan does not depend on their values). For the tests that
/// pin a query to its index.
#[cfg(test)]
pub(crate) fn query_plan(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let mut rows = stmt.raw_query();
    let mut plan = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        plan.push(row.get::<_, String>(3).unwrap());
    }
    plan
}

#[cfg(test)]
mod tests;
