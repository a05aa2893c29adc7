//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod fake_cdn;
pub mod mj;
pub mod s3_proxy;
pub mod weed;
/// The fake Discord lives in the library (`mjlink demo` runs on it); tests name it here.
#[allow(unused_imports)]
pub use mjlink_sim::discord as fake_discord;

use std::io::BufReader;
use std::path::{Path, PathBuf};

use mjlink::export::{Format, LinkRecord, LinkWriter};
use mjlink::ingest::pipeline::{Pipeline, PipelineConfig};
use mjlink::ingest::replay::{self, ReplaySummary};
use mjlink::store::Store;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `mjlink` binary as a user runs it from the repository, with no `MJLINK_*` variable
/// of the test's own environment (and no `RUST_LOG`).
pub fn mjlink_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mjlink"));
    command.current_dir(root()).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("MJLINK_") {
            command.env_remove(key);
        }
    }
    command
}

/// Replays `files` into the database at `db`.
pub fn replay_files(files: &[PathBuf], db: &Path) -> (ReplaySummary, Store) {
    let store = Store::open(db).expect("open store");
    let readers = files.iter().map(|file| {
        let reader = BufReader::new(std::fs::File::open(file).expect("open fixture"));
        let name = file.strip_prefix(root()).unwrap_or(file).display().to_string();
        (name, reader)
    });
    replay::replay_all(Pipeline::new(store, PipelineConfig::default()), readers).expect("replay")
}

/// Replays lines given in memory into `store` (through the writer, as `mjlink replay` does).
pub fn replay_lines(lines: &[String], store: Store) -> (ReplaySummary, Store) {
    let text = lines.join("\n");
    let pipeline = Pipeline::new(store, PipelineConfig::default());
    replay::replay_all(pipeline, [("mem".to_string(), text.as_bytes())]).expect("replay")
}

pub fn links_jsonl(store: &Store) -> String {
    let mut writer = LinkWriter::new(Vec::new(), Format::Jsonl);
    store
        .for_each_link(|export| {
            writer.write(&LinkRecord::from(export)).expect("write");
            Ok(())
        })
        .expect("links");
    String::from_utf8(writer.finish().expect("finish")).expect("utf8")
}

/// The parsed facts of every message, one line each, for expected files.
pub fn messages_table(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare(
            "SELECT id, seen, kind, action, user_id, mode, stealth, tile, job_uuid, stage, error_title, outcome,
                    final_id, deleted_at IS NOT NULL, substr(prompt_norm, 1, 80), params,
                    (SELECT COUNT(*) FROM attachments a WHERE a.message_id = m.id)
             FROM messages m ORDER BY id",
        )
        .expect("prepare");
    let mut out = String::new();
    let mut rows = stmt.query([]).expect("query");
    while let Some(row) = rows.next().expect("row") {
        let mut fields = Vec::new();
        for index in 0..17 {
            let value: rusqlite::types::Value = row.get(index).expect("value");
            fields.push(match value {
                rusqlite::types::Value::Null => "-".to_string(),
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Text(text) => text.replace('\n', "\\n"),
                other => format!("{other:?}"),
            });
        }
        out.push_str(&fields.join(" | "));
        out.push('\n');
    }
    out
}

/// Compares `actual` with the expected file, or rewrites it when UPDATE_EXPECT is set.
pub fn check(expected_path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(expected_path.parent().expect("parent")).expect("mkdir");
        std::fs::write(expected_path, actual).expect("write expected");
        return;
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_else(|_| {
        panic!(
            "missing {}; run with UPDATE_EXPECT=1 to create it, then review it",
            expected_path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(5)
            .map(|(n, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", n + 1))
            .collect();
        panic!(
            "{} differs (expected {} lines, got {}); first differences:\n{}\nRun with UPDATE_EXPECT=1 to accept.",
            expected_path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Every file under `root`, recursively (none when it does not exist).
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(files_under(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// What serenity 0.12.5 cannot read, for the tests that show the live path keeps it.
pub mod serenity_loses {
    use serde_json::{json, Value};

    /// `components` whose top-level action row holds a grid's U1 button and a Components-V2
    /// text display (type 10). serenity 0.12.5 knows component types 1 to 8 only and fails a
    /// whole message whose action row holds another (`src/model/application/component.rs`,
    /// `ActionRowComponent::deserialize`: "Unknown component type"); its gateway then makes
    /// the dispatch an `Event::Unknown`, logged at debug level, that no handler sees.
    pub fn row_with_a_components_v2_node() -> Value {
        json!([{"type": 1, "components": [
            {"type": 2, "style": 2, "custom_id": "MJ::JOB::upsample::1::5eed0000-0000-4000-8000-000000000001", "label": "U1"},
            {"type": 10, "content": "a Components-V2 node"}
        ]}])
    }

    /// `interaction_metadata` of a job submitted through a pop-up form (a modal submit,
    /// type 5): its parent is only in `triggering_interaction_metadata.interacted_message_id`.
    /// serenity 0.12.5 models `interaction_metadata` without `name`.
    pub fn modal_interaction_metadata(parent_id: &Value) -> Value {
        json!({
            "id": "1300000000000000100", "type": 5, "name": "imagine",
            "user": {"id": "42", "username": "someone"},
            "authorizing_integration_owners": {"0": "900"},
            "triggering_interaction_metadata": {
                "id": "1300000000000000099", "type": 3, "user": {"id": "42", "username": "someone"},
                "authorizing_integration_owners": {"0": "900"},
                "interacted_message_id": parent_id
            }
        })
    }
}
