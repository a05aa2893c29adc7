//! An animation whose reference is missing is linked by the fallback to the image it
//! animates, although its echo rewrote that image's prompt (wire notes section 9: `--ar` and
//! `--no` dropped, `--raw --motion high --video 1 --aspect 1:1` added), through the real
//! pipeline and a real SQLite file. The messages are the repository's 2026 scenario
//! (`fixtures/scenarios/formats_2026.jsonl`): the `Image #2` that Animate was pressed on, and
//! its video grid, here without its reference.

mod common;

use mjlink::store::Store;
use serde_json::{json, Value};

const IMAGE: &str = "1514932566753280008";
const VIDEO_GRID: &str = "1514933112012800018";

/// The scenario's first create of `id`.
fn created(id: &str) -> Value {
    let text = std::fs::read_to_string(common::root().join("fixtures/scenarios/formats_2026.jsonl")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|frame| frame["t"] == "MESSAGE_CREATE" && frame["d"]["id"] == id)
        .map(|frame| frame["d"].clone())
        .unwrap()
}

/// The image under another id `seconds` later (another upscale of the same grid: same
/// prompt, user and channel), with a job UUID of its own.
fn image_at(seconds: u64) -> Value {
    let image = created(IMAGE);
    let id: u64 = IMAGE.parse::<u64>().unwrap() + ((seconds * 1000) << 22);
    let text = image.to_string().replace(
        "5eed0a2a-0a2a-4a2a-8726-00009b177cfe",
        &format!("5eed0a2a-0a2a-4a2a-8726-{id:012x}"),
    );
    let mut moved: Value = serde_json::from_str(&text).unwrap();
    moved["id"] = json!(id.to_string());
    moved.as_object_mut().unwrap().remove("timestamp");
    moved
}

/// The video grid stripped of every signal of its parent.
fn stripped_video_grid() -> Value {
    let mut grid = created(VIDEO_GRID);
    let object = grid.as_object_mut().unwrap();
    object.remove("message_reference");
    object.remove("referenced_message");
    object.remove("interaction_metadata");
    grid["type"] = json!(0);
    grid
}

fn frame(d: Value) -> String {
    json!({"op": 0, "t": "MESSAGE_CREATE", "s": 0, "d": d}).to_string()
}

/// `(status, parent, action, signal, candidates)` of the video grid's link.
fn link(db: &std::path::Path) -> (String, Option<String>, String, Option<String>, String) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT status, CAST(parent_id AS TEXT), action, signal, candidates FROM links WHERE child_id = ?1",
        [VIDEO_GRID.parse::<i64>().unwrap()],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
    )
    .unwrap()
}

fn replay(db: &std::path::Path, lines: &[String]) {
    let (summary, store) = common::replay_lines(lines, Store::open(db).unwrap());
    assert_eq!(summary.malformed, 0);
    drop(store);
}

#[test]
fn a_stripped_animation_is_linked_to_the_one_image_whose_text_it_echoes_in_any_order() {
    let image = created(IMAGE);
    assert!(image["content"]
        .as_str()
        .unwrap()
        .starts_with("**glass sphere on moss --v 7.0** - Image #2"));
    let grid = stripped_video_grid();
    assert!(grid["content"]
        .as_str()
        .unwrap()
        .starts_with("**glass sphere on moss --raw --motion high --video 1 --aspect 1:1** - <@"));
    for lines in [
        vec![frame(image.clone()), frame(grid.clone())],
        // History read newest first: the animation before its image.
        vec![frame(grid.clone()), frame(image.clone())],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        replay(&db, &lines);
        let (status, parent, action, signal, _) = link(&db);
        assert_eq!(
            (
                status.as_str(),
                parent.as_deref(),
                action.as_str(),
                signal.as_deref()
            ),
            ("linked", Some(IMAGE), "animate", Some("heuristic"))
        );
    }
}

#[test]
fn two_images_the_animation_could_come_from_leave_it_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let other = image_at(30);
    let other_id = other["id"].as_str().unwrap().to_string();
    replay(
        &db,
        &[frame(created(IMAGE)), frame(other), frame(stripped_video_grid())],
    );
    let (status, parent, _, _, candidates) = link(&db);
    assert_eq!((status.as_str(), parent), ("ambiguous", None));
    assert_eq!(candidates, format!("[\"{IMAGE}\",\"{other_id}\"]"));
}

#[test]
fn images_stored_before_the_animated_forms_were_kept_are_found() {
    // A database made before migration 0019: the image stored then gets its animated form
    // when the store upgrades it, so an animation after the upgrade finds it (and is not
    // linked to a newer image as if it were the only one).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    replay(&db, &[frame(created(IMAGE))]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP TABLE animated_forms; PRAGMA user_version = 18;")
        .unwrap();
    drop(conn);
    let other = image_at(30);
    let other_id = other["id"].as_str().unwrap().to_string();
    replay(&db, &[frame(other), frame(stripped_video_grid())]);
    let (status, _, _, _, candidates) = link(&db);
    assert_eq!(status, "ambiguous");
    assert_eq!(candidates, format!("[\"{IMAGE}\",\"{other_id}\"]"));
}
