//! The schema, pinned: a fresh database migrates to exactly the schema the store had before
//! its migrations moved into `migrations/*.sql`, and each migration is the same bytes.

use sha2::{Digest, Sha256};

use mjlink_core::snowflake::Snowflake;

use super::{Store, MIGRATIONS};

/// `sqlite_master` of a fresh database, by name: generated from the store before the split.
const SCHEMA: &str = r##"-- table attachments on attachments
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
, state TEXT NOT NULL DEFAULT 'pending', path TEXT, sha256 TEXT, bytes INTEGER, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, same_bytes_as INTEGER);
-- index attachments_by_message on attachments
CREATE INDEX attachments_by_message ON attachments(message_id);
-- index attachments_by_sha256 on attachments
CREATE INDEX attachments_by_sha256 ON attachments(sha256) WHERE sha256 IS NOT NULL;
-- index attachments_by_state on attachments
CREATE INDEX attachments_by_state ON attachments(state) WHERE state = 'pending';
-- table channels on channels
CREATE TABLE channels (
    id              INTEGER PRIMARY KEY,
    last_message_id INTEGER NOT NULL
);
-- table docs on docs
CREATE TABLE docs (
    id  INTEGER PRIMARY KEY REFERENCES messages(id),
    doc TEXT NOT NULL
);
-- table links on links
CREATE TABLE links (
    child_id   INTEGER PRIMARY KEY REFERENCES messages(id),
    parent_id  INTEGER,
    action     TEXT NOT NULL,
    tile       INTEGER,
    signal     TEXT,
    status     TEXT NOT NULL,
    candidates TEXT NOT NULL DEFAULT '[]'
);
-- index links_by_parent on links
CREATE INDEX links_by_parent ON links(parent_id, tile);
-- table messages on messages
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
, nonce TEXT, fts_state INTEGER NOT NULL DEFAULT 0);
-- index messages_by_job on messages
CREATE INDEX messages_by_job ON messages(day, job_key) WHERE job_key IS NOT NULL;
-- index messages_by_nonce on messages
CREATE INDEX messages_by_nonce ON messages(nonce) WHERE nonce IS NOT NULL;
-- index messages_by_prompt on messages
CREATE INDEX messages_by_prompt ON messages(day, channel_id, user_id, prompt_key, posted_at)
    WHERE prompt_key IS NOT NULL;
-- index messages_fts_pending on messages
CREATE INDEX messages_fts_pending ON messages(id)
    WHERE fts_state = 0 AND prompt IS NOT NULL AND kind IN ('imagine', 'blend', 'remix', 'remix_strong', 'remix_subtle');
-- table processed on processed
CREATE TABLE processed (
    message_id INTEGER NOT NULL,
    event      INTEGER NOT NULL,
    digest     INTEGER NOT NULL,
    PRIMARY KEY (message_id, event, digest)
) WITHOUT ROWID;
-- table prompts_fts on prompts_fts
CREATE VIRTUAL TABLE prompts_fts USING fts5(
    prompt, content = 'messages', content_rowid = 'id', detail = none,
    tokenize = 'unicode61 remove_diacritics 2'
);
-- trigger prompts_fts_changed on messages
CREATE TRIGGER prompts_fts_changed AFTER UPDATE OF prompt, kind ON messages
    WHEN OLD.fts_state = 1 AND (OLD.prompt IS NOT NEW.prompt OR OLD.kind IS NOT NEW.kind)
BEGIN
    INSERT INTO prompts_fts(prompts_fts, rowid, prompt) VALUES ('delete', OLD.id, OLD.prompt);
    UPDATE messages SET fts_state = 0 WHERE id = OLD.id;
END;
-- table prompts_fts_config on prompts_fts_config
CREATE TABLE 'prompts_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID;
-- table prompts_fts_data on prompts_fts_data
CREATE TABLE 'prompts_fts_data'(id INTEGER PRIMARY KEY, block BLOB);
-- table prompts_fts_docsize on prompts_fts_docsize
CREATE TABLE 'prompts_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
-- table prompts_fts_idx on prompts_fts_idx
CREATE TABLE 'prompts_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
-- table queue_items on queue_items
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
-- index queue_items_active on queue_items
CREATE INDEX queue_items_active ON queue_items(status)
    WHERE status NOT IN ('done', 'partial', 'failed', 'cancelled');
-- index queue_items_by_grid on queue_items
CREATE INDEX queue_items_by_grid ON queue_items(grid_message_id) WHERE grid_message_id IS NOT NULL;
-- table queue_settings on queue_settings
CREATE TABLE queue_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- table queue_transitions on queue_transitions
CREATE TABLE queue_transitions (
    item_id TEXT NOT NULL REFERENCES queue_items(id),
    at      INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note    TEXT NOT NULL
);
-- index queue_transitions_by_item on queue_transitions
CREATE INDEX queue_transitions_by_item ON queue_transitions(item_id, at);
-- index queue_transitions_by_time on queue_transitions
CREATE INDEX queue_transitions_by_time ON queue_transitions(to_status, at);
-- index sqlite_autoindex_queue_items_1 on queue_items
NULL;
-- index sqlite_autoindex_queue_settings_1 on queue_settings
NULL;
"##;

/// Every schema object of the database, one after the other, as [`SCHEMA`] writes them.
fn schema_of(conn: &rusqlite::Connection) -> String {
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
        .unwrap();
    let rows = stmt
        .query_map([], |row| {
            Ok(format!(
                "-- {} {} on {}\n{};\n",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?.unwrap_or_else(|| "NULL".into())
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows.concat()
}

#[test]
fn migrated_schema_is_unchanged() {
    // The first five migrations give the schema from before the split...
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for sql in &MIGRATIONS[..5] {
        conn.execute_batch(sql).unwrap();
    }
    assert_eq!(schema_of(&conn), SCHEMA);
    // ...and a fresh store runs every migration.
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let schema = schema_of(store.conn());
    for column in ["reply_to INTEGER", "used_buttons TEXT", "rated_by INTEGER"] {
        assert!(schema.contains(column), "{column}");
    }
    // 0006: format drift's counts and samples, and what each archived file is.
    for object in [
        "CREATE INDEX messages_unknown_by_day ON messages(day) WHERE kind = 'other'",
        "CREATE TABLE undecodable (",
        "CREATE INDEX undecodable_by_day ON undecodable(day)",
        "CREATE TABLE drift_samples (",
        "same_bytes_as INTEGER, media TEXT",
    ] {
        assert!(schema.contains(object), "{object}");
    }
    // The full-text pending index holds the kinds the core says have a prompt of their own,
    // as comparisons (0010), the text `search.rs` asks with.
    assert!(
        schema.contains(&format!(
            "WHERE fts_state = 0 AND prompt IS NOT NULL\n        AND {};",
            super::search::pending_kinds_condition()
        )),
        "{schema}"
    );
    assert!(!schema.contains("kind IN"), "{schema}");
}

#[test]
fn migrations_are_the_same_bytes() {
    // Length and SHA-256 of each migration's text as first shipped: history, never edited.
    const SHIPPED: [(usize, &str); 20] = [
        (
            3108,
            "970f8a878ddd5afc0a3a1654315eceb51edf8ba7a6487d35b9737d56d29982f8",
        ),
        (
            196,
            "7e861264b12e2c5387024013ea46235bb93bc8c008c00960451a12fd02dc3adc",
        ),
        (
            789,
            "13544fb0984a10062f32351ce37aa14276af82438281a67bfe530df18b1bf035",
        ),
        (
            1718,
            "54e2666241af1c7a647f4abc2eaa111411a25bfa0122114e581099f03c18e68b",
        ),
        (
            1418,
            "0f70e8a41ff979db08d82808e123698c730f0920414ee7e3c6ced91d7e30f551",
        ),
        (
            1181,
            "fff59943e41481edccac2c84b392dd5799a6a6ce4a7415ddaa1fa49e0309f4ab",
        ),
        (
            1549,
            "f73e9e7a9483cff89055e12fcac491700205c97fdccc14189f0d6ef8c3ee13a3",
        ),
        // 0008 (starts by the message they reply to).
        (
            433,
            "04c36594e05c9a1cf7c006e0685bc9cbcd2ca006d7f85a48735b963f6751e650",
        ),
        // 0009 (archive trust: next try times, the archive's root).
        (
            624,
            "0968c403cf3df744664e55171afaff0ce7f30773b1aa13a4129c9e1c00d23eda",
        ),
        // 0010 (the FTS pending index's condition as comparisons).
        (
            847,
            "dbfdfcf2834f67d4c2fac386ec67f62c27d11f094c10f4425581e2c35fcd6e6f",
        ),
        // 0011 (who set a manual link and when).
        (
            334,
            "e3ed355a6ca38f336e1bfbbbb372a97163328348c549617ab21cf427efbd8b78",
        ),
        // 0012 (the starts waiting for a final, by scope).
        (
            817,
            "ac78c25a4f010ad0519633788ff22609ee00d9981fc0e330f9f4127d5a2d770e",
        ),
        // 0013 (the notifications' outbox).
        (
            1103,
            "19f50ed88e82d91e15b99cd84c2672df3d0cf994504754b69de8b30302541745",
        ),
        // 0014 (multipart uploads to the S3 archive in progress).
        (
            799,
            "487e24d95fed4aedc8c47c8cdc4630a9fc498a8f0829772818de2e70624554c4",
        ),
        // 0015 (the attachments due, by a partial index of their own).
        (
            704,
            "9265e2fc94472f047f725b37af2d555f34825084e716e5b86f146630dc3e34c4",
        ),
        // 0016 (the waiting starts' index holds its condition's columns: covering).
        (
            692,
            "f2de02c73fdfcbe0775e98d87d0b418d1d6b0d01bdaee2837fc102f2779e20cb",
        ),
        // 0017 (where each button mark was first seen; what each channel's marks showed; the
        // starts that were rivals).
        (
            1277,
            "25435b03b59b639b09786d180988a5cdcb35b304cbaa0012cf29c9067b91f8d1",
        ),
        // 0018 (the V marks trusted apart from the U marks).
        (
            403,
            "350d86ce4508bb8f6302209aae900e620b1df70821977855d17a31a32385009b",
        ),
        // 0019 (single images and animations under their animated form).
        (
            747,
            "37d0d6cba140e9b47991a7d05f35df1c644d427f3099424c6453960fe8a5f738",
        ),
        // 0020 (the trust of every family of buttons in one table; the marks of video grids,
        // images and clips followed).
        (
            1577,
            "7f528bcbc8a8a80fe010004d61cad09e3c6f222a0eec78e3499a03813be8a014",
        ),
    ];
    assert_eq!(MIGRATIONS.len(), SHIPPED.len());
    for (index, (sql, (len, sha256))) in MIGRATIONS.iter().zip(SHIPPED).enumerate() {
        assert_eq!(sql.len(), len, "migration {}", index + 1);
        assert_eq!(
            format!("{:x}", Sha256::digest(sql.as_bytes())),
            sha256,
            "migration {}",
            index + 1
        );
    }
}

#[test]
fn key_lookups_read_only_their_index() {
    // The lookups every start and new grid makes (`finals_for`, `progress_waiting_for`) find
    // ids by an index's own columns: SQLite then reads no table row (a covering index), and
    // the rest is checked on the row's facts, most of them in the writer's cache. The starts'
    // lookup uses their own index (0012) only when the query states its condition; through
    // `messages_by_prompt` it would read every message of the prompt in the window (and it
    // holds its condition's columns, 0016: else SQLite reads each row for them).
    let store = Store::open_in_memory().unwrap();
    let scope = super::PromptScope {
        channel_id: mjlink_core::snowflake::Snowflake(1),
        user_id: mjlink_core::snowflake::Snowflake(2),
        prompt_norm: "a cat",
    };
    let lookups = [
        (
            super::Filter::scope("", scope, 0, 1)
                .keys_only()
                .sql(super::lineage::IDS_SQL),
            "messages_by_prompt",
        ),
        (
            super::Filter::job("", "c09a2935-432a-464c-bb31-6250a418a3c1", 0, 1)
                .keys_only()
                .sql(super::lineage::IDS_SQL),
            "messages_by_job",
        ),
        (
            super::lineage::waiting_by_scope(scope, 0, 1)
                .keys_only()
                .sql(super::lineage::WAITING_IDS_SQL),
            "messages_waiting_by_scope",
        ),
    ];
    for (sql, index) in lookups {
        let plan = super::query_plan(store.conn(), &sql);
        assert!(
            plan.iter()
                .any(|step| step.contains(&format!("USING COVERING INDEX {index} "))),
            "{sql}: {plan:?}"
        );
    }
}

#[test]
fn key_lookups_find_what_the_full_queries_find() {
    // `finals_for` and `progress_waiting_for` find rows by their keys and check the rest on
    // each row's facts; the full queries state every condition in SQL. Rows that differ from
    // a lookup in one condition each: another prompt under the same key (a digest collision,
    // made here by hand), another job UUID under the same key, not seen, another kind, with
    // and without a job, just outside the window and on its edges, across a day boundary.
    use mjlink_core::snowflake::Snowflake;
    const DAY: i64 = 86_400_000;
    let store = Store::open_in_memory().unwrap();
    let uuid = "c09a2935-432a-464c-bb31-6250a418a3c1";
    let other_uuid = "0b8ae7ba-8bba-4a9f-bde4-a4d5e5f5b5a1";
    let prompt_key = super::text_key("a cat");
    let job_key = super::text_key(uuid);
    let start = 20 * DAY - 1_000;
    let to = start + 2_000;
    let mut id = 100u64;
    let mut insert = |seen: bool,
                      kind: &str,
                      prompt: &str,
                      key: i64,
                      job: Option<(&str, i64)>,
                      posted: i64| {
        id += 1;
        store
            .conn()
            .execute(
                "INSERT INTO messages (id, channel_id, user_id, seen, kind, prompt_norm, prompt_key, job_uuid, job_key,
                     day, posted_at, action)
                 VALUES (?1, 1, 2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)",
                rusqlite::params![
                    id as i64,
                    seen,
                    kind,
                    prompt,
                    key,
                    job.map(|job| job.0),
                    job.map(|job| job.1),
                    posted.div_euclid(DAY),
                    posted
                ],
            )
            .unwrap();
    };
    for posted in [start - 1, start, start + 500, start + 1_000, to, to + 1] {
        for kind in ["progress", "imagine", "upscale"] {
            for seen in [true, false] {
                insert(seen, kind, "a cat", prompt_key, None, posted);
                insert(seen, kind, "a dog", prompt_key, None, posted);
                insert(seen, kind, "a cat", prompt_key, Some((uuid, job_key)), posted);
                insert(
                    seen,
                    kind,
                    "a cat",
                    prompt_key,
                    Some((other_uuid, job_key)),
                    posted,
                );
            }
        }
    }
    let scope = super::PromptScope {
        channel_id: Snowflake(1),
        user_id: Snowflake(2),
        prompt_norm: "a cat",
    };
    let full = |sql: &'static str, filter: super::Filter<'_>| -> Vec<u64> {
        let mut ids = store
            .select(sql, filter, |row| row.get::<_, i64>(0))
            .unwrap()
            .into_iter()
            .map(|id| id as u64)
            .collect::<Vec<_>>();
        ids.sort_unstable();
        ids
    };
    let sorted = |mut ids: Vec<u64>| {
        ids.sort_unstable();
        ids
    };

    let waiting = |job: Option<&str>, scope| {
        sorted(
            store
                .progress_waiting_for(job, scope, start, to)
                .unwrap()
                .iter()
                .map(|row| row.id.0)
                .collect(),
        )
    };
    let by_job = full(
        super::lineage::PROGRESS_SQL,
        super::Filter::job("", uuid, start, to),
    );
    let by_scope = full(
        super::lineage::PROGRESS_SQL,
        super::lineage::waiting_by_scope(scope, start, to),
    );
    assert_eq!(
        by_job.len(),
        4,
        "seen starts of the job at start, +500, +1000 and to"
    );
    assert_eq!(by_scope.len(), 4);
    assert_eq!(waiting(Some(uuid), None), by_job);
    assert_eq!(waiting(None, Some(scope)), by_scope);

    let progress = |job_uuid: Option<&str>| super::ProgressRow {
        id: Snowflake(1),
        channel_id: Some(Snowflake(1)),
        user_id: Some(Snowflake(2)),
        prompt_norm: Some("a cat".to_string()),
        job_uuid: job_uuid.map(str::to_string),
        posted_at: start,
        deleted: false,
        action: None,
        reply_to: None,
        final_id: None,
    };
    let finals = |job_uuid| {
        let found = store.finals_for(&progress(job_uuid), to).unwrap();
        sorted(found.rows.iter().map(|(id, _)| id.0).collect())
    };
    let seen_sql = "SELECT id FROM messages WHERE {filter} AND seen = 1";
    let finals_by_job = full(seen_sql, super::Filter::job("", uuid, start, to));
    let finals_by_scope = full(seen_sql, super::Filter::scope("", scope, start, to));
    assert_eq!(finals_by_job.len(), 12, "three kinds at four times");
    assert_eq!(
        finals_by_scope.len(),
        36,
        "three kinds at four times, without a job and with either"
    );
    assert_eq!(finals(Some(uuid)), finals_by_job);
    assert_eq!(finals(None), finals_by_scope);
}

#[test]
fn the_trust_of_u_and_v_marks_is_kept_when_the_families_move_into_one_table() {
    use mjlink_core::marks::{Family, Trust};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    drop(Store::open(&path).unwrap());
    // The database as migration 0019 left it: the U and V trust in their own tables.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE button_mark_trust; DROP TABLE solo_marks_followed;
         CREATE TABLE mark_trust (channel_id INTEGER PRIMARY KEY, before INTEGER NOT NULL DEFAULT 0,
             not_before INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE variation_mark_trust (channel_id INTEGER PRIMARY KEY, before INTEGER NOT NULL DEFAULT 0,
             not_before INTEGER NOT NULL DEFAULT 0);
         INSERT INTO mark_trust VALUES (7, 3, 0), (8, 5, 1);
         INSERT INTO variation_mark_trust VALUES (7, 1, 1);
         PRAGMA user_version = 19;",
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    let trust = |channel, family| store.mark_trust(Snowflake(channel), family).unwrap();
    let counts = |before, not_before| Trust { before, not_before };
    assert_eq!(trust(7, Family::Upscale), counts(3, 0));
    assert_eq!(trust(8, Family::Upscale), counts(5, 1));
    assert_eq!(trust(7, Family::Variation), counts(1, 1));
    assert_eq!(trust(7, Family::Solo), counts(0, 0));
    store
        .put_mark_trust(Snowflake(7), Family::Solo, counts(2, 0))
        .unwrap();
    assert_eq!(trust(7, Family::Solo), counts(2, 0));
    assert_eq!(trust(7, Family::Upscale), counts(3, 0));
}
