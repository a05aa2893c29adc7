//! Button marks narrowing the fallback (issue 11 item 9), through the real pipeline and a
//! real SQLite file, on messages made from the real upscale sample
//! (`fixtures/real/wxapi_upscale_image4.jsonl`: an `Image #4` result whose
//! `referenced_message`, its grid as of the result, already shows U4 at `style: 1`).
//!
//! The grids here are that sample's grid under other ids (same user, channel and prompt, as in
//! a burst of identical prompts), first with every U at `style: 2` (as the real grids that no
//! one pressed), then edited by a MESSAGE_UPDATE that turns one U to `style: 1` (wire notes
//! section 2). The results are the sample's result under other ids, with or without its
//! reference.

mod common;

use mjlink::store::Store;
use serde_json::{json, Value};

const MS: u64 = 1 << 22;

fn sample() -> Value {
    let line =
        std::fs::read_to_string(common::root().join("fixtures/real/wxapi_upscale_image4.jsonl")).unwrap();
    let frame: Value = serde_json::from_str(line.trim()).unwrap();
    frame["d"].clone()
}

/// The sample's grid under `id` (its time `at_ms` later than the sample's), with `marked` U
/// buttons at `style: 1` and the others at 2.
fn grid(id: u64, marked: &[u8]) -> Value {
    let mut grid = sample()["referenced_message"].clone();
    grid["id"] = json!(id.to_string());
    grid.as_object_mut().unwrap().remove("timestamp");
    for row in grid["components"].as_array_mut().unwrap() {
        for button in row["components"].as_array_mut().unwrap() {
            let custom_id = button["custom_id"].as_str().unwrap_or_default().to_string();
            if let Some(rest) = custom_id.strip_prefix("MJ::JOB::upsample::") {
                let tile: u8 = rest[..1].parse().unwrap();
                button["style"] = json!(if marked.contains(&tile) { 1 } else { 2 });
            }
        }
    }
    grid
}

/// The sample's `Image #4` result under `id`, replying to `parent` (`None`: stripped of its
/// reference, as 30% of the results in the truth tests).
fn upscale(id: u64, parent: Option<u64>) -> Value {
    let mut result = sample();
    result["id"] = json!(id.to_string());
    let object = result.as_object_mut().unwrap();
    object.remove("timestamp");
    object.remove("interaction_metadata");
    object.remove("interaction");
    match parent {
        Some(parent) => {
            result["message_reference"]["message_id"] = json!(parent.to_string());
            result["referenced_message"] = grid(parent, &[4]);
        }
        None => {
            object.remove("message_reference");
            object.remove("referenced_message");
        }
    }
    result
}

fn frame(kind: &str, d: Value) -> String {
    json!({"op": 0, "t": kind, "s": 0, "d": d}).to_string()
}

/// Ids a second apart, after the sample's grid.
fn at(second: u64) -> u64 {
    1_128_599_623_762_714_675 + second * 1000 * MS
}

struct Run {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    store: Option<Store>,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("marks.db");
        let store = Some(Store::open(&db).unwrap());
        Run { _dir: dir, db, store }
    }

    fn feed(&mut self, lines: &[String]) {
        let store = self.store.take().unwrap();
        let (summary, store) = common::replay_lines(lines, store);
        assert_eq!(summary.malformed, 0);
        self.store = Some(store);
    }

    /// `(status, parent, signal)` of a result's link.
    fn link(&mut self, child: u64) -> (String, Option<String>, Option<String>) {
        let store = self.store.take().unwrap();
        drop(store);
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        let row = conn
            .query_row(
                "SELECT status, CAST(parent_id AS TEXT), signal FROM links WHERE child_id = ?1",
                [child as i64],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        drop(conn);
        self.store = Some(Store::open(&self.db).unwrap());
        row
    }
}

/// Three grids pressed and upscaled with their marks first: the channel now trusts its marks.
fn trusted_history() -> Vec<String> {
    let mut lines = Vec::new();
    for k in 0..3 {
        let (g, r) = (at(10 * k), at(10 * k + 5));
        lines.push(frame("MESSAGE_CREATE", grid(g, &[])));
        lines.push(frame("MESSAGE_UPDATE", grid(g, &[4])));
        lines.push(frame("MESSAGE_CREATE", upscale(r, Some(g))));
    }
    lines
}

/// Two grids with the same prompt; U4 pressed on the first (its mark seen), then an `Image #4`
/// without its reference.
fn two_grids_one_mark() -> (Vec<String>, u64, u64, u64) {
    let (a, b, child) = (at(100), at(101), at(110));
    let lines = vec![
        frame("MESSAGE_CREATE", grid(a, &[])),
        frame("MESSAGE_CREATE", grid(b, &[])),
        frame("MESSAGE_UPDATE", grid(a, &[4])),
        frame("MESSAGE_CREATE", upscale(child, None)),
    ];
    (lines, a, b, child)
}

#[test]
fn a_channel_whose_marks_came_first_links_the_upscale_to_the_grid_whose_u_was_marked() {
    let mut run = Run::new();
    run.feed(&trusted_history());
    let (lines, a, _, child) = two_grids_one_mark();
    run.feed(&lines);
    assert_eq!(
        run.link(child),
        (
            "linked".to_string(),
            Some(a.to_string()),
            Some("heuristic".to_string())
        )
    );
}

#[test]
fn without_that_evidence_the_marks_narrow_nothing() {
    let mut run = Run::new();
    let (lines, a, b, child) = two_grids_one_mark();
    run.feed(&lines);
    let (status, parent, _) = run.link(child);
    assert_eq!((status.as_str(), parent), ("ambiguous", None));
    let candidates: String = {
        let store = run.store.take().unwrap();
        drop(store);
        let conn = rusqlite::Connection::open(&run.db).unwrap();
        conn.query_row(
            "SELECT candidates FROM links WHERE child_id = ?1",
            [child as i64],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert_eq!(candidates, format!("[\"{a}\",\"{b}\"]"));
}

#[test]
fn one_upscale_whose_mark_came_after_it_ends_the_trust_and_undoes_what_the_marks_linked() {
    let mut run = Run::new();
    run.feed(&trusted_history());
    let (lines, a, _, child) = two_grids_one_mark();
    run.feed(&lines);
    assert_eq!(run.link(child).1, Some(a.to_string()));
    // A grid whose U4 result comes before its mark (as a world where the update follows the
    // result): the channel's marks are no longer trusted, and the link they made is decided
    // again without them.
    let (g, r) = (at(200), at(205));
    run.feed(&[
        frame("MESSAGE_CREATE", grid(g, &[])),
        frame("MESSAGE_CREATE", upscale(r, Some(g))),
        frame("MESSAGE_UPDATE", grid(g, &[4])),
    ]);
    assert_eq!(run.link(r).0, "linked");
    assert_eq!(run.link(child), ("ambiguous".to_string(), None, None));
}

#[test]
fn a_mark_seen_only_after_the_upscale_does_not_make_its_grid_a_candidate() {
    // In a trusting channel: U4 of grid b is pressed after the stripped result was posted (its
    // mark arrives later): b is not the result's parent, a (marked before) is; the later
    // mark changes nothing.
    let mut run = Run::new();
    run.feed(&trusted_history());
    let (mut lines, a, b, child) = two_grids_one_mark();
    lines.push(frame("MESSAGE_CREATE", grid(at(120), &[])));
    lines.push(frame("MESSAGE_UPDATE", grid(b, &[4])));
    run.feed(&lines);
    assert_eq!(run.link(child).1, Some(a.to_string()));
}

#[test]
fn grids_stored_before_marks_were_followed_are_never_excluded() {
    // A database upgraded to migration 0017 knows nothing of the marks its grids got before:
    // a grid stored then (an id up to `marks_followed.since`) is a candidate whatever its
    // marks say later.
    let mut run = Run::new();
    run.feed(&trusted_history());
    let (lines, _, b, child) = two_grids_one_mark();
    // The two grids' creates, then the database upgraded, then the mark and the result.
    run.feed(&lines[..2]);
    drop(run.store.take());
    let conn = rusqlite::Connection::open(&run.db).unwrap();
    conn.execute("UPDATE marks_followed SET since = ?1", [b as i64])
        .unwrap();
    drop(conn);
    run.store = Some(Store::open(&run.db).unwrap());
    run.feed(&lines[2..]);
    assert_eq!(run.link(child).0, "ambiguous");
}
