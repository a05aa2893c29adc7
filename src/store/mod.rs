//! The SQLite store: schema and migrations, and one function per query. Domain types in and
//! out; snowflakes cross into SQL only through [`Snowflake::to_sql`]/[`Snowflake::from_sql`].

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use mjlink_core::link::{Candidate, Decision, Signal, Status};
use mjlink_core::merge::Doc;
use mjlink_core::parse::{Action, Kind};
use mjlink_core::snowflake::Snowflake;
use mjlink_core::wire::Attachment;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the database {path} was written by a newer mjlink (schema version {found}, this build knows {known})")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the database writer stopped")]
    WriterGone,
    #[error("a stored message could not be read back ({id}): {source}")]
    CorruptDoc {
        id: Snowflake,
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Numbered migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    channel_id  INTEGER,
    guild_id    INTEGER,
    author_id   INTEGER,
    -- 1 once the message itself was seen (create, history, or a reply's referenced copy);
    -- 0 while only its updates or its deletion are known.
    seen        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    prompt      TEXT,
    prompt_norm TEXT,
    -- 64-bit digests of prompt_norm and job_uuid: small keys for the indexes every event
    -- probes (the text columns are still compared, so a digest collision costs nothing).
    prompt_key  INTEGER,
    job_key     INTEGER,
    -- posted_at / 86400000: the leading key of the lookup indexes
    day         INTEGER,
    params      TEXT,
    user_id     INTEGER,
    mode        TEXT,
    stealth     INTEGER NOT NULL DEFAULT 0,
    tile        INTEGER,
    -- results: the action; progress: the action under way (NULL for /imagine)
    action      TEXT,
    job_uuid    TEXT,
    detail      TEXT,
    stage       TEXT,
    error_title TEXT,
    posted_at   INTEGER,
    edited_at   INTEGER,
    deleted_at  INTEGER,
    -- start/progress messages: running | completed | failed | unknown
    outcome     TEXT,
    final_id    INTEGER
);

-- The merged state of each message (see merge.rs), apart from the row above so that the
-- tables every event queries stay small.
CREATE TABLE docs (
    id  INTEGER PRIMARY KEY REFERENCES messages(id),
    doc TEXT NOT NULL
);
-- Both lookup indexes lead with the day a message was posted, so that new entries land in
-- a small, recent part of each index instead of anywhere in it: lookups are always bounded
-- by a time window, and the cost of an event does not grow with the history kept.
CREATE INDEX messages_by_prompt ON messages(day, channel_id, user_id, prompt_key, posted_at)
    WHERE prompt_key IS NOT NULL;
CREATE INDEX messages_by_job ON messages(day, job_key) WHERE job_key IS NOT NULL;

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    filename     TEXT NOT NULL,
    url          TEXT NOT NULL,
    size         INTEGER,
    width        INTEGER,
    height       INTEGER,
    content_type TEXT
);
CREATE INDEX attachments_by_message ON attachments(message_id);

-- Exactly one row per result message. parent_id is not a foreign key on purpose: a parent
-- known only through a reply's reference (never seen, or deleted) is still the parent.
CREATE TABLE links (
    child_id   INTEGER PRIMARY KEY REFERENCES messages(id),
    parent_id  INTEGER,
    action     TEXT NOT NULL,
    tile       INTEGER,
    signal     TEXT,
    status     TEXT NOT NULL,
    candidates TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX links_by_parent ON links(parent_id, tile);

-- The processed-event set: (message id, event kind, digest of the payload).
CREATE TABLE processed (
    message_id INTEGER NOT NULL,
    event      INTEGER NOT NULL,
    digest     INTEGER NOT NULL,
    PRIMARY KEY (message_id, event, digest)
) WITHOUT ROWID;
"#,
    r#"
-- Each channel's newest message id seen: where catching up after a disconnection starts.
CREATE TABLE channels (
    id              INTEGER PRIMARY KEY,
    last_message_id INTEGER NOT NULL
);
"#,
    r#"
-- The archive state of each attachment (see src/archive): a file is `archived` only once it
-- is on disk, fsynced, and its SHA-256 verified.
ALTER TABLE attachments ADD COLUMN state TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE attachments ADD COLUMN path TEXT;
ALTER TABLE attachments ADD COLUMN sha256 TEXT;
ALTER TABLE attachments ADD COLUMN bytes INTEGER;
ALTER TABLE attachments ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attachments ADD COLUMN last_error TEXT;
-- Set when the bytes are identical to another tile's upscale of the same grid.
ALTER TABLE attachments ADD COLUMN same_bytes_as INTEGER;
CREATE INDEX attachments_by_state ON attachments(state) WHERE state = 'pending';
CREATE INDEX attachments_by_sha256 ON attachments(sha256) WHERE sha256 IS NOT NULL;
"#,
    r#"
-- The nonce of an interaction response (Midjourney's start message, its error embeds): ties
-- a prompt-queue submission to what Midjourney answered.
ALTER TABLE messages ADD COLUMN nonce TEXT;
CREATE INDEX messages_by_nonce ON messages(nonce) WHERE nonce IS NOT NULL;

-- The prompt queue (see src/queue). `results` and `pressed` are JSON objects keyed by tile.
CREATE TABLE queue_items (
    id               TEXT PRIMARY KEY,
    prompt           TEXT NOT NULL,
    upscales         TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    nonce            TEXT,
    job_uuid         TEXT,
    start_message_id INTEGER,
    grid_message_id  INTEGER,
    results          TEXT NOT NULL DEFAULT '{}',
    pressed          TEXT NOT NULL DEFAULT '{}',
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    submitted_at     INTEGER,
    progress_at      INTEGER,
    not_before       INTEGER,
    waiting          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_items_active ON queue_items(status)
    WHERE status NOT IN ('done', 'partial', 'failed', 'cancelled');
CREATE INDEX queue_items_by_grid ON queue_items(grid_message_id) WHERE grid_message_id IS NOT NULL;

-- Every change of status, with its time and why.
CREATE TABLE queue_transitions (
    item_id TEXT NOT NULL REFERENCES queue_items(id),
    at      INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note    TEXT NOT NULL
);
CREATE INDEX queue_transitions_by_item ON queue_transitions(item_id, at);
CREATE INDEX queue_transitions_by_time ON queue_transitions(to_status, at);
"#,
    r#"
-- Full-text search over prompts (/search): the prompts of grids, and of remixes (whose
-- prompt was edited); other results echo their parent's prompt. External content: the text
-- stays in `messages`. Indexing is off the hot path: a new row is born with
-- `fts_state = 0`, and a search first indexes whatever is pending (`Store::index_prompts`).
-- A prompt that changes after it was indexed is taken out and marked pending again.
-- `detail = none`: every query term is one token (see `fts_query`), so positions are not
-- needed.
CREATE VIRTUAL TABLE prompts_fts USING fts5(
    prompt, content = 'messages', content_rowid = 'id', detail = none,
    tokenize = 'unicode61 remove_diacritics 2'
);
ALTER TABLE messages ADD COLUMN fts_state INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_fts_pending ON messages(id)
    WHERE fts_state = 0 AND prompt IS NOT NULL AND kind IN ('imagine', 'blend', 'remix', 'remix_strong', 'remix_subtle');
CREATE TRIGGER prompts_fts_changed AFTER UPDATE OF prompt, kind ON messages
    WHEN OLD.fts_state = 1 AND (OLD.prompt IS NOT NEW.prompt OR OLD.kind IS NOT NEW.kind)
BEGIN
    INSERT INTO prompts_fts(prompts_fts, rowid, prompt) VALUES ('delete', OLD.id, OLD.prompt);
    UPDATE messages SET fts_state = 0 WHERE id = OLD.id;
END;

-- Settings of the queue that commands change (`paused`).
CREATE TABLE queue_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
];

/// What the store knows about one message.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub doc: Doc,
    pub seen: bool,
    pub kind: String,
    pub deleted_at: Option<i64>,
}

/// One row of the messages table, as the pipeline writes it.
#[derive(Debug, Clone, Default)]
pub struct MessageRow {
    pub id: Snowflake,
    pub channel_id: Option<Snowflake>,
    pub guild_id: Option<Snowflake>,
    pub author_id: Option<Snowflake>,
    pub seen: bool,
    pub kind: String,
    pub prompt: Option<String>,
    pub prompt_norm: Option<String>,
    pub params: Option<String>,
    pub user_id: Option<Snowflake>,
    pub mode: Option<String>,
    pub stealth: bool,
    pub tile: Option<u8>,
    pub action: Option<String>,
    pub job_uuid: Option<String>,
    pub detail: Option<String>,
    pub stage: Option<String>,
    pub error_title: Option<String>,
    pub posted_at: Option<i64>,
    pub edited_at: Option<i64>,
    pub nonce: Option<String>,
    pub doc: String,
}

/// A stored link with what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    pub child_id: Snowflake,
    pub action: Action,
    pub tile: Option<u8>,
    pub decision: Decision,
}

/// A link joined with its child's facts, for export.
#[derive(Debug, Clone)]
pub struct LinkExport {
    pub link: LinkRow,
    pub prompt: Option<String>,
    pub channel_id: Option<Snowflake>,
    pub posted_at: Option<i64>,
}

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
}

/// Kinds whose images are archived: grids and every result (not progress previews).
const ARCHIVED_KINDS: &str = "('imagine', 'blend', 'upscale', 'upscale_2x', 'upscale_4x', 'upscale_subtle', \
     'upscale_creative', 'variation', 'variation_strong', 'variation_subtle', 'variation_region', 'remix', \
     'remix_strong', 'remix_subtle', 'reroll', 'zoom', 'pan_left', 'pan_right', 'pan_up', 'pan_down', 'animate')";

/// "Same channel, same requesting user, same normalized prompt": the group the fallback
/// linker and the progress outcomes search in.
#[derive(Debug, Clone, Copy)]
pub struct PromptScope<'a> {
    pub channel_id: Snowflake,
    pub user_id: Snowflake,
    pub prompt_norm: &'a str,
}

/// What the fallback needs about a stored message.
#[derive(Debug, Clone)]
pub struct ChildFacts {
    pub posted_ms: i64,
    pub channel_id: Option<Snowflake>,
    pub user_id: Option<Snowflake>,
    pub prompt_norm: Option<String>,
}

impl<'a> PromptScope<'a> {
    /// The scope of a message, when all three parts are known.
    pub fn of(
        channel_id: Option<Snowflake>,
        user_id: Option<Snowflake>,
        prompt_norm: Option<&'a str>,
    ) -> Option<PromptScope<'a>> {
        Some(PromptScope {
            channel_id: channel_id?,
            user_id: user_id?,
            prompt_norm: prompt_norm?,
        })
    }
}

impl ChildFacts {
    pub fn scope(&self) -> Option<PromptScope<'_>> {
        PromptScope::of(self.channel_id, self.user_id, self.prompt_norm.as_deref())
    }
}

/// A start/progress message waiting to learn its outcome.
#[derive(Debug, Clone)]
pub struct ProgressRow {
    pub id: Snowflake,
    /// The action under way (`None` for /imagine, whose final is a grid).
    pub action: Option<String>,
    pub channel_id: Option<Snowflake>,
    pub user_id: Option<Snowflake>,
    pub prompt_norm: Option<String>,
    pub job_uuid: Option<String>,
    pub posted_at: i64,
    pub deleted: bool,
}

impl ProgressRow {
    pub fn scope(&self) -> Option<PromptScope<'_>> {
        PromptScope::of(self.channel_id, self.user_id, self.prompt_norm.as_deref())
    }
}

pub struct Store {
    conn: Connection,
    in_batch: bool,
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

fn candidates_json(candidates: &[Snowflake]) -> String {
    serde_json::to_string(candidates).unwrap_or_else(|_| "[]".to_string())
}

/// Kinds that can be a parent: grids, and single upscaled images.
pub fn kind_shape(kind: &str) -> (bool, bool) {
    match kind {
        "imagine" | "blend" => (true, false),
        other => match Action::from_name(other) {
            Some(action) => {
                let kind = Kind::Result(action);
                (kind.is_grid(), kind.is_single_image())
            }
            None => (false, false),
        },
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Store::setup(conn, path)
    }

    /// An in-memory database, for tests and benchmarks of the pure parts.
    pub fn open_in_memory() -> Result<Store> {
        Store::setup(Connection::open_in_memory()?, Path::new(":memory:"))
    }

    fn setup(conn: Connection, path: &Path) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every query below is prepared once and reused; the default cache (16) is too small.
        conn.set_prepared_statement_cache_capacity(64);
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -64_000)?;
        // Fewer, larger checkpoints: a page rewritten many times is copied back once.
        conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
        let mut store = Store {
            conn,
            in_batch: false,
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

    /// Moves the channel's cursor forward to `message_id` (never back).
    pub fn advance_cursor(&self, channel_id: Snowflake, message_id: Snowflake) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO channels (id, last_message_id) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET last_message_id = MAX(last_message_id, excluded.last_message_id)",
        )?;
        stmt.execute(params![channel_id.to_sql(), message_id.to_sql()])?;
        Ok(())
    }

    /// Every channel's cursor.
    pub fn channel_cursors(&self) -> Result<std::collections::BTreeMap<Snowflake, Snowflake>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, last_message_id FROM channels")?;
        let rows = stmt.query_map([], |row| {
            Ok((Snowflake::from_sql(row.get(0)?), Snowflake::from_sql(row.get(1)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the message itself (not only its updates or deletion) is stored.
    pub fn has_seen(&self, id: Snowflake) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seen FROM messages WHERE id = ?1")?;
        Ok(stmt
            .query_row([id.to_sql()], |row| row.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false))
    }

    /// Records an event in the processed set; `false` when it was there already.
    pub fn mark_processed(&self, id: Snowflake, event: u8, digest: u64) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO processed (message_id, event, digest) VALUES (?1, ?2, ?3)",
        )?;
        Ok(stmt.execute(params![id.to_sql(), event, digest as i64])? == 1)
    }

    pub fn load_message(&self, id: Snowflake) -> Result<Option<StoredMessage>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT d.doc, m.seen, m.kind, m.deleted_at FROM messages m JOIN docs d ON d.id = m.id WHERE m.id = ?1")?;
        let row = stmt
            .query_row([id.to_sql()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })
            .optional()?;
        let Some((doc, seen, kind, deleted_at)) = row else {
            return Ok(None);
        };
        let doc: Doc = serde_json::from_str(&doc).map_err(|source| StoreError::CorruptDoc { id, source })?;
        Ok(Some(StoredMessage {
            doc,
            seen,
            kind,
            deleted_at,
        }))
    }

    pub fn save_message(&self, row: &MessageRow) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO messages (id, channel_id, guild_id, author_id, seen, kind, prompt, prompt_norm, params,
                 user_id, mode, stealth, tile, job_uuid, detail, stage, error_title, posted_at, edited_at, outcome, action,
                 prompt_key, job_key, day, nonce)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                 CASE WHEN ?6 = 'progress' THEN 'running' END, ?20, ?21, ?22, ?18 / 86400000, ?23)
             ON CONFLICT(id) DO UPDATE SET channel_id = excluded.channel_id, guild_id = excluded.guild_id,
                 author_id = excluded.author_id, seen = excluded.seen, kind = excluded.kind,
                 prompt = excluded.prompt, prompt_norm = excluded.prompt_norm, params = excluded.params,
                 user_id = excluded.user_id, mode = excluded.mode, stealth = excluded.stealth, tile = excluded.tile,
                 job_uuid = excluded.job_uuid, detail = excluded.detail, stage = excluded.stage,
                 error_title = excluded.error_title, posted_at = excluded.posted_at, edited_at = excluded.edited_at,
                 outcome = CASE WHEN excluded.kind = 'progress' THEN COALESCE(messages.outcome, 'running') END,
                 final_id = CASE WHEN excluded.kind = 'progress' THEN messages.final_id END,
                 action = excluded.action, prompt_key = excluded.prompt_key, job_key = excluded.job_key,
                 day = excluded.day, nonce = excluded.nonce",
        )?;
        stmt.execute(params![
            row.id.to_sql(),
            opt_sql(row.channel_id),
            opt_sql(row.guild_id),
            opt_sql(row.author_id),
            row.seen,
            row.kind,
            row.prompt,
            row.prompt_norm,
            row.params,
            opt_sql(row.user_id),
            row.mode,
            row.stealth,
            row.tile,
            row.job_uuid,
            row.detail,
            row.stage,
            row.error_title,
            row.posted_at,
            row.edited_at,
            row.action,
            row.prompt_norm.as_deref().map(text_key),
            row.job_uuid.as_deref().map(text_key),
            row.nonce,
        ])?;
        let mut doc = self.conn.prepare_cached(
            "INSERT INTO docs (id, doc) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
        )?;
        doc.execute(params![row.id.to_sql(), row.doc])?;
        Ok(())
    }

    /// Replaces the attachments of a message with `attachments` (their latest state);
    /// `had_any` is false for a message stored for the first time (nothing to remove).
    pub fn replace_attachments(
        &self,
        message_id: Snowflake,
        attachments: &[Attachment],
        had_any: bool,
    ) -> Result<()> {
        if had_any {
            // Attachments the message no longer has go; the others keep their archive state.
            let keep = serde_json::to_string(&attachments.iter().map(|a| a.id.to_sql()).collect::<Vec<_>>())
                .unwrap_or_else(|_| "[]".to_string());
            let mut delete = self.conn.prepare_cached(
                "DELETE FROM attachments WHERE message_id = ?1 AND id NOT IN (SELECT value FROM json_each(?2))",
            )?;
            delete.execute(params![message_id.to_sql(), keep])?;
        }
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO attachments (id, message_id, position, filename, url, size, width, height, content_type)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(id) DO UPDATE SET message_id = excluded.message_id, position = excluded.position,
                 filename = excluded.filename, url = excluded.url, size = excluded.size, width = excluded.width,
                 height = excluded.height, content_type = excluded.content_type",
        )?;
        for (position, attachment) in attachments.iter().enumerate() {
            insert.execute(params![
                attachment.id.to_sql(),
                message_id.to_sql(),
                position as i64,
                attachment.filename,
                attachment.url,
                attachment.size.map(|size| size as i64),
                attachment.width,
                attachment.height,
                attachment.content_type,
            ])?;
        }
        Ok(())
    }

    /// Marks a message deleted at `at_ms`, creating a placeholder row if it was never seen.
    pub fn mark_deleted(&self, id: Snowflake, channel_id: Option<Snowflake>, at_ms: i64) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO messages (id, channel_id, seen, kind, deleted_at)
             VALUES (?1, ?2, 0, 'pending', ?3)
             ON CONFLICT(id) DO UPDATE SET deleted_at = COALESCE(messages.deleted_at, excluded.deleted_at)",
        )?;
        stmt.execute(params![id.to_sql(), opt_sql(channel_id), at_ms])?;
        let placeholder = serde_json::to_string(&Doc::new(mjlink_core::wire::Message {
            id,
            channel_id,
            ..Default::default()
        }))
        .unwrap_or_default();
        let mut doc = self
            .conn
            .prepare_cached("INSERT INTO docs (id, doc) VALUES (?1, ?2) ON CONFLICT(id) DO NOTHING")?;
        doc.execute(params![id.to_sql(), placeholder])?;
        Ok(())
    }

    pub fn get_link(&self, child_id: Snowflake) -> Result<Option<LinkRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT child_id, parent_id, action, tile, signal, status, candidates FROM links WHERE child_id = ?1",
        )?;
        Ok(stmt.query_row([child_id.to_sql()], link_from_row).optional()?)
    }

    pub fn put_link(&self, link: &LinkRow) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO links (child_id, parent_id, action, tile, signal, status, candidates)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(child_id) DO UPDATE SET parent_id = excluded.parent_id, action = excluded.action,
                 tile = excluded.tile, signal = excluded.signal, status = excluded.status,
                 candidates = excluded.candidates",
        )?;
        stmt.execute(params![
            link.child_id.to_sql(),
            opt_sql(link.decision.parent),
            link.action.as_str(),
            link.tile,
            link.decision.signal.map(Signal::as_str),
            link.decision.status.as_str(),
            candidates_json(&link.decision.candidates),
        ])?;
        Ok(())
    }

    pub fn delete_link(&self, child_id: Snowflake) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM links WHERE child_id = ?1")?;
        stmt.execute([child_id.to_sql()])?;
        Ok(())
    }

    /// Possible parents: seen messages in the channel by the user with the normalized prompt,
    /// posted in `[from_ms, to_ms]`; `tile_taken` says whether another result is already
    /// linked to that candidate for `tile`.
    pub fn candidates(
        &self,
        scope: PromptScope<'_>,
        from_ms: i64,
        to_ms: i64,
        tile: Option<u8>,
        child_id: Snowflake,
    ) -> Result<Vec<Candidate>> {
        let filter = Filter::scope("m.", scope, from_ms, to_ms)
            .and("m.seen = 1 AND m.id != :child")
            .bind(":child", child_id.to_sql())
            .bind(":tile", tile.map_or(Value::Null, |tile| i64::from(tile).into()));
        self.select(
            "SELECT m.id, m.posted_at, m.kind,
                 :tile IS NOT NULL AND EXISTS (SELECT 1 FROM links l WHERE l.parent_id = m.id AND l.tile = :tile
                     AND l.status = 'linked' AND l.child_id != :child)
             FROM messages m WHERE {filter}",
            filter,
            |row| {
                let kind: String = row.get(2)?;
                let (is_grid, is_single_image) = kind_shape(&kind);
                Ok(Candidate {
                    id: Snowflake::from_sql(row.get(0)?),
                    posted_ms: row.get(1)?,
                    is_grid,
                    is_single_image,
                    tile_taken: row.get(3)?,
                })
            },
        )
    }

    /// Results linked by the fallback (or left ambiguous or unresolved) in `scope`, posted in
    /// `[from_ms, to_ms]`: those a new parent may change.
    pub fn fallback_children(
        &self,
        scope: PromptScope<'_>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Snowflake>> {
        let filter = Filter::scope("m.", scope, from_ms, to_ms);
        self.select(
            "SELECT m.id FROM messages m JOIN links l ON l.child_id = m.id
             WHERE {filter} AND (l.signal IS NULL OR l.signal = 'heuristic')",
            filter,
            |row| Ok(Snowflake::from_sql(row.get(0)?)),
        )
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

    /// Children linked by the fallback to `parent` for `tile`.
    pub fn heuristic_children_of(&self, parent: Snowflake, tile: u8) -> Result<Vec<Snowflake>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT child_id FROM links WHERE parent_id = ?1 AND tile = ?2 AND signal = 'heuristic'",
        )?;
        let rows = stmt.query_map(params![parent.to_sql(), tile], |row| {
            Ok(Snowflake::from_sql(row.get(0)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The facts the fallback needs about a stored message.
    pub fn child_facts(&self, id: Snowflake) -> Result<Option<ChildFacts>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT posted_at, channel_id, user_id, prompt_norm FROM messages WHERE id = ?1",
        )?;
        Ok(stmt
            .query_row([id.to_sql()], |row| {
                Ok(ChildFacts {
                    posted_ms: row.get::<_, Option<i64>>(0)?.unwrap_or_else(|| id.timestamp_ms()),
                    channel_id: opt_snowflake(row.get(1)?),
                    user_id: opt_snowflake(row.get(2)?),
                    prompt_norm: row.get(3)?,
                })
            })
            .optional()?)
    }

    pub fn progress_row(&self, id: Snowflake) -> Result<Option<ProgressRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, channel_id, user_id, prompt_norm, job_uuid, posted_at, deleted_at, action FROM messages
             WHERE id = ?1 AND kind = 'progress' AND seen = 1",
        )?;
        Ok(stmt.query_row([id.to_sql()], progress_from_row).optional()?)
    }

    /// Start/progress messages that a new grid could be the final of, posted within
    /// `[from_ms, to_ms]`: with the same job UUID, or (without one) in the same scope.
    pub fn progress_waiting_for(
        &self,
        job_uuid: Option<&str>,
        scope: Option<PromptScope<'_>>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ProgressRow>> {
        const SQL: &str =
            "SELECT id, channel_id, user_id, prompt_norm, job_uuid, posted_at, deleted_at, action
             FROM messages WHERE {filter} AND kind = 'progress' AND seen = 1";
        let mut out = Vec::new();
        if let Some(uuid) = job_uuid {
            out = self.select(SQL, Filter::job("", uuid, from_ms, to_ms), progress_from_row)?;
        }
        if let Some(scope) = scope {
            let filter = Filter::scope("", scope, from_ms, to_ms).and("job_uuid IS NULL");
            out.extend(self.select(SQL, filter, progress_from_row)?);
        }
        Ok(out)
    }

    /// Messages that could be the final of a progress message, posted within
    /// `[progress.posted_at, to_ms]`: by job UUID, or in its scope (a grid for /imagine, the
    /// same action for a button's progress). Returns their ids.
    pub fn finals_for(&self, progress: &ProgressRow, to_ms: i64) -> Result<Vec<Snowflake>> {
        let from_ms = progress.posted_at;
        if let Some(uuid) = &progress.job_uuid {
            let filter = Filter::job("", uuid, from_ms, to_ms)
                .and("seen = 1 AND kind NOT IN ('progress', 'pending', 'error', 'other', 'not_midjourney')");
            return self.select("SELECT id FROM messages WHERE {filter}", filter, |row| {
                Ok(Snowflake::from_sql(row.get(0)?))
            });
        }
        let Some(scope) = progress.scope() else {
            return Ok(Vec::new());
        };
        let filter = Filter::scope("", scope, from_ms, to_ms).and("seen = 1");
        let rows = self.select("SELECT id, kind FROM messages WHERE {filter}", filter, |row| {
            Ok((Snowflake::from_sql(row.get(0)?), row.get::<_, String>(1)?))
        })?;
        Ok(rows
            .into_iter()
            .filter(|(_, kind)| match progress.action.as_deref() {
                Some(action) => kind == action,
                None => kind == "imagine" || kind == "blend",
            })
            .map(|(id, _)| id)
            .collect())
    }

    pub fn set_outcome(&self, id: Snowflake, outcome: &str, final_id: Option<Snowflake>) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE messages SET outcome = ?2, final_id = ?3 WHERE id = ?1")?;
        stmt.execute(params![id.to_sql(), outcome, opt_sql(final_id)])?;
        Ok(())
    }

    /// Attachments waiting to be archived with an id above `after`, in id order.
    pub fn pending_images(
        &self,
        after: Snowflake,
        limit: usize,
        max_attempts: i64,
    ) -> Result<Vec<PendingImage>> {
        let sql = format!(
            "SELECT a.id, a.message_id, a.url, a.attempts, m.kind, m.tile, m.job_uuid, m.posted_at,
                    l.parent_id, p.job_uuid, p.posted_at, a.path, m.channel_id
             FROM attachments a JOIN messages m ON m.id = a.message_id
             LEFT JOIN links l ON l.child_id = m.id LEFT JOIN messages p ON p.id = l.parent_id
             WHERE a.state = 'pending' AND a.id > ?1 AND a.attempts < ?2 AND m.seen = 1 AND m.kind IN {ARCHIVED_KINDS}
             ORDER BY a.id LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after.to_sql(), max_attempts, limit as i64], |row| {
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
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// An archived attachment with these bytes.
    pub fn archived_with_hash(&self, sha256: &str) -> Result<Option<ArchivedCopy>> {
        let mut stmt = self.conn.prepare_cached(
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

    pub fn mark_archived(
        &self,
        attachment: Snowflake,
        path: &str,
        sha256: &str,
        bytes: u64,
        same_bytes_as: Option<Snowflake>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE attachments SET state = 'archived', path = ?2, sha256 = ?3, bytes = ?4, same_bytes_as = ?5,
                 attempts = attempts + 1, last_error = NULL WHERE id = ?1",
        )?;
        stmt.execute(params![
            attachment.to_sql(),
            path,
            sha256,
            bytes as i64,
            opt_sql(same_bytes_as)
        ])?;
        Ok(())
    }

    /// Records a failed attempt; the attachment stays pending unless `give_up`.
    pub fn mark_attempt_failed(&self, attachment: Snowflake, error: &str, give_up: bool) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE attachments SET attempts = attempts + 1, last_error = ?2,
                 state = CASE WHEN ?3 THEN 'failed' ELSE state END WHERE id = ?1",
        )?;
        stmt.execute(params![attachment.to_sql(), error, give_up])?;
        Ok(())
    }

    /// A fresh (signed) URL for an attachment whose link expired.
    pub fn update_attachment_url(&self, attachment: Snowflake, url: &str) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE attachments SET url = ?2 WHERE id = ?1")?;
        stmt.execute(params![attachment.to_sql(), url])?;
        Ok(())
    }

    /// Puts an archived attachment back in the queue (its file is missing or corrupt).
    pub fn requeue(&self, attachment: Snowflake, reason: &str) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE attachments SET state = 'pending', attempts = 0, last_error = ?2 WHERE id = ?1",
        )?;
        stmt.execute(params![attachment.to_sql(), reason])?;
        Ok(())
    }

    /// A family for its metadata.json: the grid and the results linked to it, with their
    /// archived files.
    pub fn family_record(&self, grid_id: Snowflake) -> Result<Option<FamilyRecord>> {
        let mut message = self.conn.prepare_cached(
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
        let mut children_ids = self.conn.prepare_cached(
            "SELECT child_id, signal FROM links WHERE parent_id = ?1 AND status = 'linked' ORDER BY child_id",
        )?;
        let children: Vec<(Snowflake, Option<String>)> = children_ids
            .query_map([grid_id.to_sql()], |row| {
                Ok((Snowflake::from_sql(row.get(0)?), row.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut files = self.conn.prepare_cached(
            "SELECT path, bytes, sha256, filename FROM attachments WHERE message_id = ?1 AND state = 'archived' ORDER BY position",
        )?;
        let mut files_of = |id: Snowflake| -> rusqlite::Result<Vec<FamilyFile>> {
            files
                .query_map([id.to_sql()], |row| {
                    Ok(FamilyFile {
                        path: row.get(0)?,
                        bytes: row.get(1)?,
                        sha256: row.get(2)?,
                        discord_filename: row.get(3)?,
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
        let sql = format!(
            "SELECT a.message_id, a.id, m.kind, a.state, a.path, a.sha256, a.bytes, a.attempts, a.last_error,
                    a.same_bytes_as
             FROM attachments a JOIN messages m ON m.id = a.message_id
             WHERE m.seen = 1 AND m.kind IN {ARCHIVED_KINDS} ORDER BY a.message_id, a.position"
        );
        let mut stmt = self.conn.prepare(&sql)?;
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
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Message counts by kind (seen messages only).
    pub fn count_by_kind(&self) -> Result<Vec<(String, i64)>> {
        self.grouped("SELECT kind, COUNT(*) FROM messages WHERE seen = 1 GROUP BY kind ORDER BY kind")
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
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every link with its child's prompt, channel and time, in child id order.
    pub fn for_each_link(&self, mut visit: impl FnMut(LinkExport) -> Result<()>) -> Result<()> {
        let mut stmt = self.conn.prepare(
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
                .conn
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
}

/// A value the database holds that this build does not know (a corrupt or foreign file).
fn unknown_value(column: usize, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("unknown value {value:?}").into(),
    )
}

fn link_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LinkRow> {
    let action: String = row.get(2)?;
    let signal: Option<String> = row.get(4)?;
    let status: String = row.get(5)?;
    let candidates: String = row.get(6)?;
    Ok(LinkRow {
        child_id: Snowflake::from_sql(row.get(0)?),
        action: Action::from_name(&action).ok_or_else(|| unknown_value(2, &action))?,
        tile: row.get(3)?,
        decision: Decision {
            parent: opt_snowflake(row.get(1)?),
            signal: match signal.as_deref() {
                None => None,
                Some(name) => Some(Signal::from_name(name).ok_or_else(|| unknown_value(4, name))?),
            },
            status: Status::from_name(&status).ok_or_else(|| unknown_value(5, &status))?,
            candidates: serde_json::from_str(&candidates).map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, error.into())
            })?,
        },
    })
}

fn progress_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProgressRow> {
    let id = Snowflake::from_sql(row.get(0)?);
    Ok(ProgressRow {
        id,
        channel_id: opt_snowflake(row.get(1)?),
        user_id: opt_snowflake(row.get(2)?),
        prompt_norm: row.get(3)?,
        job_uuid: row.get(4)?,
        posted_at: row.get::<_, Option<i64>>(5)?.unwrap_or_else(|| id.timestamp_ms()),
        deleted: row.get::<_, Option<i64>>(6)?.is_some(),
        action: row.get(7)?,
    })
}

/// The prompt queue's rows (see src/queue).
impl Store {
    const QUEUE_COLUMNS: &'static str = "id, prompt, upscales, priority, status, attempts, nonce, job_uuid,
        start_message_id, grid_message_id, results, pressed, last_error, created_at, updated_at, submitted_at,
        progress_at, not_before, waiting";

    fn queue_item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<crate::queue::Item> {
        use crate::queue::{Item, Status, Upscales};
        let upscales: String = row.get(2)?;
        let status: String = row.get(4)?;
        let tiles = |text: String| -> std::collections::BTreeMap<u8, i64> {
            serde_json::from_str::<std::collections::BTreeMap<u8, i64>>(&text).unwrap_or_default()
        };
        Ok(Item {
            id: row.get(0)?,
            prompt: row.get(1)?,
            upscales: Upscales::parse(&upscales).unwrap_or_else(|_| Upscales::none()),
            priority: row.get(3)?,
            status: Status::from_name(&status).unwrap_or(Status::Failed),
            attempts: row.get(5)?,
            nonce: row.get(6)?,
            job_uuid: row.get(7)?,
            start_message_id: opt_snowflake(row.get(8)?),
            grid_message_id: opt_snowflake(row.get(9)?),
            results: tiles(row.get(10)?)
                .into_iter()
                .map(|(tile, id)| (tile, Snowflake::from_sql(id)))
                .collect(),
            pressed: tiles(row.get(11)?),
            last_error: row.get(12)?,
            created_ms: row.get(13)?,
            updated_ms: row.get(14)?,
            submitted_ms: row.get(15)?,
            progress_ms: row.get(16)?,
            not_before_ms: row.get(17)?,
            waiting_at_midjourney: row.get(18)?,
        })
    }

    /// Stores `item` (new or changed) and, when given, the transition that led to it, in one
    /// transaction. With `read_at` (the `updated_ms` of the copy the change was made from),
    /// nothing is stored if the row changed meanwhile (a `queue cancel` from another
    /// process): returns whether it was stored.
    pub fn queue_save(
        &mut self,
        item: &crate::queue::Item,
        read_at: Option<i64>,
        transition: Option<&crate::queue::Transition>,
    ) -> Result<bool> {
        let own_transaction = !self.in_batch;
        self.begin()?;
        if let Some(read_at) = read_at {
            let current = self
                .conn
                .prepare_cached("SELECT updated_at, status FROM queue_items WHERE id = ?1")?
                .query_row([&item.id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .optional()?;
            let unchanged = current.is_some_and(|(updated, status)| {
                updated == read_at
                    && crate::queue::Status::from_name(&status).is_some_and(|status| !status.is_final())
            });
            if !unchanged {
                if own_transaction {
                    self.commit()?;
                }
                return Ok(false);
            }
        }
        let results: std::collections::BTreeMap<u8, i64> = item
            .results
            .iter()
            .map(|(tile, id)| (*tile, id.to_sql()))
            .collect();
        self.conn.prepare_cached(
            "INSERT INTO queue_items (id, prompt, upscales, priority, status, attempts, nonce, job_uuid,
                 start_message_id, grid_message_id, results, pressed, last_error, created_at, updated_at,
                 submitted_at, progress_at, not_before, waiting)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
             ON CONFLICT(id) DO UPDATE SET priority = excluded.priority, status = excluded.status,
                 attempts = excluded.attempts, nonce = excluded.nonce, job_uuid = excluded.job_uuid,
                 start_message_id = excluded.start_message_id, grid_message_id = excluded.grid_message_id,
                 results = excluded.results, pressed = excluded.pressed, last_error = excluded.last_error,
                 updated_at = excluded.updated_at, submitted_at = excluded.submitted_at,
                 progress_at = excluded.progress_at, not_before = excluded.not_before, waiting = excluded.waiting",
        )?
        .execute(params![
            item.id,
            item.prompt,
            item.upscales.to_string(),
            item.priority,
            item.status.as_str(),
            item.attempts,
            item.nonce,
            item.job_uuid,
            opt_sql(item.start_message_id),
            opt_sql(item.grid_message_id),
            serde_json::to_string(&results).unwrap_or_else(|_| "{}".into()),
            serde_json::to_string(&item.pressed).unwrap_or_else(|_| "{}".into()),
            item.last_error,
            item.created_ms,
            item.updated_ms,
            item.submitted_ms,
            item.progress_ms,
            item.not_before_ms,
            item.waiting_at_midjourney,
        ])?;
        if let Some(transition) = transition {
            self.conn
                .prepare_cached(
                    "INSERT INTO queue_transitions (item_id, at, from_status, to_status, note) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                item.id,
                transition.at_ms,
                transition.from.map(|status| status.as_str()),
                transition.to.as_str(),
                transition.note,
            ])?;
        }
        if own_transaction {
            self.commit()?;
        }
        Ok(true)
    }

    /// One item by its id, or by a prefix of it that only it has.
    pub fn queue_item(&self, id_or_prefix: &str) -> Result<Option<crate::queue::Item>> {
        let pattern = format!("{}%", id_or_prefix.replace(['%', '_'], ""));
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM queue_items WHERE id LIKE ?1 ORDER BY id LIMIT 2",
            Self::QUEUE_COLUMNS
        ))?;
        let items = stmt
            .query_map([pattern], Self::queue_item_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(match items.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        })
    }

    /// Items, in queue order (priority, then age); only those in `statuses` when given.
    pub fn queue_items(&self, statuses: &[crate::queue::Status]) -> Result<Vec<crate::queue::Item>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM queue_items ORDER BY priority DESC, created_at, rowid",
            Self::QUEUE_COLUMNS
        ))?;
        let items = stmt
            .query_map([], Self::queue_item_from_row)?
            .filter(|item| {
                item.as_ref().map_or(true, |item| {
                    statuses.is_empty() || statuses.contains(&item.status)
                })
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(items)
    }

    /// Items not finished yet.
    pub fn queue_active(&self) -> Result<Vec<crate::queue::Item>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM queue_items WHERE status NOT IN ('done', 'partial', 'failed', 'cancelled')
             ORDER BY priority DESC, created_at, rowid",
            Self::QUEUE_COLUMNS
        ))?;
        let items = stmt
            .query_map([], Self::queue_item_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(items)
    }

    pub fn queue_history(&self, id: &str) -> Result<Vec<crate::queue::Transition>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, from_status, to_status, note FROM queue_transitions WHERE item_id = ?1 ORDER BY at, rowid",
        )?;
        let rows = stmt.query_map([id], |row| {
            let from: Option<String> = row.get(1)?;
            let to: String = row.get(2)?;
            Ok(crate::queue::Transition {
                at_ms: row.get(0)?,
                from: from.as_deref().and_then(crate::queue::Status::from_name),
                to: crate::queue::Status::from_name(&to).unwrap_or(crate::queue::Status::Failed),
                note: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Submissions made since `from_ms` (for the daily cap).
    pub fn queue_submissions_since(&self, from_ms: i64) -> Result<u32> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(*) FROM queue_transitions WHERE to_status = 'submitted' AND at >= ?1",
        )?;
        Ok(stmt.query_row([from_ms], |row| row.get::<_, i64>(0))? as u32)
    }

    /// Whether another item already took `grid` as its own.
    pub fn queue_grid_taken(&self, grid: Snowflake, by_other_than: &str) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM queue_items WHERE grid_message_id = ?1 AND id != ?2 LIMIT 1")?;
        Ok(stmt
            .query_row(params![grid.to_sql(), by_other_than], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Midjourney's messages that carry `nonce` (its start message, error embeds).
    pub fn messages_with_nonce(&self, nonce: &str) -> Result<Vec<mjlink_core::queue::machine::NonceMessage>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, kind, error_title, job_uuid, deleted_at IS NOT NULL, outcome,
                    MAX(COALESCE(posted_at, 0), COALESCE(edited_at, 0), COALESCE(deleted_at, 0))
             FROM messages WHERE nonce = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([nonce], |row| {
            Ok(mjlink_core::queue::machine::NonceMessage {
                id: Snowflake::from_sql(row.get(0)?),
                kind: row.get(1)?,
                error_title: row.get(2)?,
                job_uuid: row.get(3)?,
                deleted: row.get(4)?,
                outcome: row.get(5)?,
                changed_ms: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The start/progress message's final grid, as the pipeline settled it.
    pub fn final_of(&self, progress: Snowflake) -> Result<Option<Snowflake>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT final_id FROM messages WHERE id = ?1 AND outcome = 'completed'")?;
        Ok(stmt
            .query_row([progress.to_sql()], |row| row.get::<_, Option<i64>>(0))
            .optional()?
            .flatten()
            .map(Snowflake::from_sql))
    }

    /// A grid (a seen message that is not a progress message) by id, with its job UUID and
    /// posting time.
    pub fn grid_facts(&self, id: Snowflake) -> Result<Option<mjlink_core::queue::machine::GridSeen>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, job_uuid, posted_at FROM messages
             WHERE id = ?1 AND seen = 1 AND kind IN ('imagine', 'blend', 'reroll') AND deleted_at IS NULL",
        )?;
        Ok(stmt
            .query_row([id.to_sql()], |row| {
                Ok(mjlink_core::queue::machine::GridSeen {
                    id: Snowflake::from_sql(row.get(0)?),
                    job_uuid: row.get(1)?,
                    posted_ms: row.get::<_, Option<i64>>(2)?.unwrap_or(0),
                })
            })
            .optional()?)
    }

    /// Grids whose job UUID is `uuid`, posted on the days around `near_ms`.
    pub fn grids_with_job(&self, uuid: &str, near_ms: i64) -> Result<Vec<Snowflake>> {
        let day = near_ms.div_euclid(86_400_000);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM messages WHERE day BETWEEN ?1 AND ?2 AND job_key = ?3 AND job_uuid = ?4
                 AND seen = 1 AND kind IN ('imagine', 'blend', 'reroll') ORDER BY id",
        )?;
        let rows = stmt.query_map(params![day - 1, day + 1, text_key(uuid), uuid], |row| {
            Ok(Snowflake::from_sql(row.get(0)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Grids of `user` in `channel` with this normalized prompt, posted in `[from_ms, to_ms]`.
    pub fn grids_with_prompt(
        &self,
        channel: Snowflake,
        user: Snowflake,
        prompt_norm: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Snowflake>> {
        let (first_day, last_day) = (from_ms.div_euclid(86_400_000), to_ms.div_euclid(86_400_000));
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM messages WHERE day BETWEEN ?1 AND ?2 AND channel_id = ?3 AND user_id = ?4
                 AND prompt_key = ?5 AND prompt_norm = ?6 AND posted_at BETWEEN ?7 AND ?8
                 AND seen = 1 AND kind = 'imagine' ORDER BY id",
        )?;
        let rows = stmt.query_map(
            params![
                first_day,
                last_day,
                channel.to_sql(),
                user.to_sql(),
                text_key(prompt_norm),
                prompt_norm,
                from_ms,
                to_ms
            ],
            |row| Ok(Snowflake::from_sql(row.get(0)?)),
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Upscales linked to `grid` (exactly or by the careful fallback): tile -> (id, posted).
    pub fn upscales_of(&self, grid: Snowflake) -> Result<std::collections::BTreeMap<u8, (Snowflake, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.tile, l.child_id, m.posted_at FROM links l JOIN messages m ON m.id = l.child_id
             WHERE l.parent_id = ?1 AND l.action = 'upscale' AND l.status = 'linked' AND l.tile IS NOT NULL
             ORDER BY l.child_id",
        )?;
        let rows = stmt.query_map([grid.to_sql()], |row| {
            Ok((
                row.get::<_, u8>(0)?,
                Snowflake::from_sql(row.get(1)?),
                row.get::<_, Option<i64>>(2)?.unwrap_or(0),
            ))
        })?;
        let mut upscales = std::collections::BTreeMap::new();
        for row in rows {
            let (tile, id, posted) = row?;
            // The first upscale of a tile is the one the press asked for.
            upscales.entry(tile).or_insert((id, posted));
        }
        Ok(upscales)
    }
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

/// Where a message is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePlace {
    pub channel_id: Option<Snowflake>,
    pub guild_id: Option<Snowflake>,
    pub kind: String,
}

/// The archive in figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveCounts {
    pub archived: i64,
    pub pending: i64,
    pub failed: i64,
    pub bytes: i64,
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

/// Reads for the slash commands.
impl Store {
    /// Indexes the prompts stored since the last search (in batches, each its own
    /// transaction); returns how many.
    pub fn index_prompts(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let tx = self.conn.unchecked_transaction()?;
            let pending: Vec<(i64, String)> = tx
                .prepare_cached(
                    "SELECT id, prompt FROM messages
                     WHERE fts_state = 0 AND prompt IS NOT NULL
                         AND kind IN ('imagine', 'blend', 'remix', 'remix_strong', 'remix_subtle')
                     LIMIT 5000",
                )?
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

    /// Prompts matching every word, newest first: one page and the total. Indexes what is
    /// pending first.
    pub fn search_prompts(
        &self,
        words: &str,
        filter: &SearchFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<SearchHit>, i64)> {
        let Some(query) = fts_query(words) else {
            return Ok((Vec::new(), 0));
        };
        self.index_prompts()?;
        const WHERE: &str = "prompts_fts MATCH ?1 AND (?2 IS NULL OR m.user_id = ?2)
             AND (?3 IS NULL OR m.channel_id = ?3) AND (?4 IS NULL OR m.posted_at >= ?4)
             AND m.deleted_at IS NULL AND m.seen = 1";
        let args = params![
            query,
            opt_sql(filter.user_id),
            opt_sql(filter.channel_id),
            filter.since_ms,
        ];
        let total: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM prompts_fts JOIN messages m ON m.id = prompts_fts.rowid WHERE {WHERE}"
            ))?
            .query_row(args, |row| row.get(0))?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT m.id, m.channel_id, m.guild_id, m.user_id, m.kind, m.prompt, m.posted_at
             FROM prompts_fts JOIN messages m ON m.id = prompts_fts.rowid WHERE {WHERE}
             ORDER BY m.id DESC LIMIT ?5 OFFSET ?6"
        ))?;
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

    pub fn archive_counts(&self) -> Result<ArchiveCounts> {
        let mut counts = ArchiveCounts::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT state, COUNT(*), COALESCE(SUM(bytes), 0) FROM attachments GROUP BY state",
        )?;
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

    pub fn queue_paused(&self) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM queue_settings WHERE key = 'paused'")?
            .query_row([], |row| row.get::<_, String>(0))
            .optional()?
            .is_some_and(|value| value == "true"))
    }

    pub fn set_queue_paused(&self, paused: bool) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO queue_settings (key, value) VALUES ('paused', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute([if paused { "true" } else { "false" }])?;
        Ok(())
    }

    /// Where a message is and what it is, when it was seen.
    pub fn message_place(&self, id: Snowflake) -> Result<Option<MessagePlace>> {
        Ok(self
            .conn
            .prepare_cached("SELECT channel_id, guild_id, kind FROM messages WHERE id = ?1 AND seen = 1")?
            .query_row([id.to_sql()], |row| {
                Ok(MessagePlace {
                    channel_id: opt_snowflake(row.get(0)?),
                    guild_id: opt_snowflake(row.get(1)?),
                    kind: row.get(2)?,
                })
            })
            .optional()?)
    }

    /// The parent a result is linked to (any status), with the link's status and candidates.
    pub fn parent_of(&self, child: Snowflake) -> Result<Option<LinkRow>> {
        self.get_link(child)
    }
}

#[cfg(test)]
mod tests;
