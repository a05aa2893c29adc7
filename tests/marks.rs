//! Button marks narrowing the fallback (issue 11 item 9), through the real pipeline and a
//! real SQLite file, on messages made from the real upscale sample
//! (`fixtures/real/wxapi_upscale_image4.jsonl`: an `Image #4` result whose
//! `referenced_message`, its grid as of the result, already shows U4 at `style: 1`).
//!
//! The grids here are that sample's grid under other ids (same user, channel and prompt, as in
//! a burst of identical prompts), first with every U at `style: 2` (as the real grids that no
//! one pressed), then edited by a MESSAGE_UPDATE that turns one U to `style: 1` (wire notes
//! section 2), or one V (issue 11 reports both). The results are the sample's result under
//! other ids, with or without its reference, and variations made from its grid with the
//! marker of the real codercurious variations grid. The images are the sample's result with
//! its own buttons (section 4's `::SOLO` buttons), one of them turned `style: 1` (issue 11:
//! "Midjourney marks a pressed button as used on the message that carries it"; no sample
//! shows it for these buttons, so they narrow only where the channel showed it).

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
    grid_with(id, marked, &[])
}

/// The sample's grid under `id` with `u` U buttons and `v` V buttons at `style: 1` (issue 11:
/// "a grid whose U2/V1 turns `style: 1`"), the others at 2.
fn grid_with(id: u64, u: &[u8], v: &[u8]) -> Value {
    let mut grid = sample()["referenced_message"].clone();
    grid["id"] = json!(id.to_string());
    grid.as_object_mut().unwrap().remove("timestamp");
    for row in grid["components"].as_array_mut().unwrap() {
        for button in row["components"].as_array_mut().unwrap() {
            let custom_id = button["custom_id"].as_str().unwrap_or_default().to_string();
            let (marked, rest) = match custom_id.strip_prefix("MJ::JOB::upsample::") {
                Some(rest) => (u, rest),
                None => match custom_id.strip_prefix("MJ::JOB::variation::") {
                    Some(rest) => (v, rest),
                    None => continue,
                },
            };
            let n: u8 = rest[..1].parse().unwrap();
            button["style"] = json!(if marked.contains(&n) { 1 } else { 2 });
        }
    }
    grid
}

/// A `Variations (Strong) by` grid (the marker of the real codercurious sample's variations
/// grid) made from the sample's grid under `id` with a job UUID of its own, replying to
/// `parent` whose V1 was pressed (`None`: stripped of its reference).
fn variation(id: u64, parent: Option<u64>) -> Value {
    grid_result(
        id,
        "Variations (Strong) by",
        parent.map(|parent| (parent, grid_with(parent, &[], &[1]))),
    )
}

/// A grid result with `marker` made from the sample's grid under `id` with a job UUID of its
/// own, replying to `parent` (its id and the message as the result saw it; `None`: stripped
/// of its reference).
fn grid_result(id: u64, marker: &str, parent: Option<(u64, Value)>) -> Value {
    let grid = grid_with(id, &[], &[]);
    let text = grid.to_string().replace(GRID_UUID, &own_uuid(id));
    let mut result: Value = serde_json::from_str(&text).unwrap();
    result["id"] = json!(id.to_string());
    let content = result["content"].as_str().unwrap().replace(
        "** - <@1012268717368946718> (relaxed)",
        &format!("** - {marker} <@1012268717368946718> (relaxed)"),
    );
    assert!(content.contains(marker));
    result["content"] = json!(content);
    result.as_object_mut().unwrap().remove("timestamp");
    if let Some((parent, referenced)) = parent {
        result["type"] = json!(19);
        result["message_reference"] =
            json!({"message_id": parent.to_string(), "channel_id": result["channel_id"]});
        result["referenced_message"] = referenced;
    }
    result
}

/// A job UUID of its own for the message `id`.
fn own_uuid(id: u64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", id % (1 << 48))
}

/// The sample's `Image #4` under `id` with a job UUID of its own, stripped of its reference,
/// with its buttons (section 4's `::SOLO` buttons of an upscaled image, as the sample has
/// them) whose `custom_id` starts with one of `marked` at `style: 1`.
fn image(id: u64, marked: &[&str]) -> Value {
    let mut image = upscale(id, None);
    let text = image.to_string().replace(IMAGE_UUID, &own_uuid(id));
    image = serde_json::from_str(&text).unwrap();
    for row in image["components"].as_array_mut().unwrap() {
        for button in row["components"].as_array_mut().unwrap() {
            let Some(custom_id) = button["custom_id"].as_str() else {
                continue;
            };
            if marked.iter().any(|prefix| custom_id.starts_with(prefix)) {
                button["style"] = json!(1);
            }
        }
    }
    image
}

/// The job UUID of the sample's `Image #4`.
const IMAGE_UUID: &str = "c0817eea-4c46-4284-a64a-e36158d72cfe";

/// A `Zoom Out by` grid (wire notes section 3) of the image `parent` whose Zoom Out 2x was
/// pressed (`None`: stripped of its reference).
fn zoom(id: u64, parent: Option<u64>) -> Value {
    grid_result(
        id,
        "Zoom Out by",
        parent.map(|parent| (parent, image(parent, &[ZOOM_2X]))),
    )
}

const ZOOM_2X: &str = "MJ::Outpaint::50::";

/// The job UUID of the sample's grid.
const GRID_UUID: &str = "c09a2935-432a-464c-bb31-6250a418a3c1";

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

/// The link row of a result the fallback linked to `parent`.
fn by_fallback(parent: u64) -> (String, Option<String>, Option<String>) {
    (
        "linked".to_string(),
        Some(parent.to_string()),
        Some("heuristic".to_string()),
    )
}

/// A button pressed on a message: the message as first seen (every button at `style: 2`), as
/// the press marked it, and the press's result replying to it (`None`: stripped of its
/// reference).
struct Press {
    unmarked: fn(u64) -> Value,
    marked: fn(u64) -> Value,
    result: fn(u64, Option<u64>) -> Value,
}

/// U4 of a grid: `Image #4`.
const U4: Press = Press {
    unmarked: |id| grid(id, &[]),
    marked: |id| grid(id, &[4]),
    result: upscale,
};

/// V1 of a grid: `Variations (Strong) by`.
const V1: Press = Press {
    unmarked: |id| grid(id, &[]),
    marked: |id| grid_with(id, &[], &[1]),
    result: variation,
};

/// Zoom Out 2x of an image: `Zoom Out by`.
const ZOOM: Press = Press {
    unmarked: |id| image(id, &[]),
    marked: |id| image(id, &[ZOOM_2X]),
    result: zoom,
};

/// Three messages pressed from `at(start)` on, ten seconds apart, each mark seen before its
/// result: the channel now trusts the marks of that button's family.
fn trusted(press: &Press, start: u64) -> Vec<String> {
    let mut lines = Vec::new();
    for k in 0..3 {
        let (m, r) = (at(start + 10 * k), at(start + 10 * k + 5));
        lines.push(frame("MESSAGE_CREATE", (press.unmarked)(m)));
        lines.push(frame("MESSAGE_UPDATE", (press.marked)(m)));
        lines.push(frame("MESSAGE_CREATE", (press.result)(r, Some(m))));
    }
    lines
}

/// Two messages with the same prompt at `at(start)`; the button pressed on the first (its mark
/// seen), then a result without its reference. Far enough after a history (a day and more for
/// a V or an image's button, which may be pressed again), its messages are no candidates.
/// Returns the lines, the two messages and the result.
fn one_of_two_marked(press: &Press, start: u64) -> (Vec<String>, u64, u64, u64) {
    let (a, b, child) = (at(start), at(start + 1), at(start + 10));
    let lines = vec![
        frame("MESSAGE_CREATE", (press.unmarked)(a)),
        frame("MESSAGE_CREATE", (press.unmarked)(b)),
        frame("MESSAGE_UPDATE", (press.marked)(a)),
        frame("MESSAGE_CREATE", (press.result)(child, None)),
    ];
    (lines, a, b, child)
}

#[test]
fn a_channel_whose_marks_came_first_links_the_upscale_to_the_grid_whose_u_was_marked() {
    let mut run = Run::new();
    run.feed(&trusted(&U4, 0));
    let (lines, a, _, child) = one_of_two_marked(&U4, 100);
    run.feed(&lines);
    assert_eq!(run.link(child), by_fallback(a));
}

#[test]
fn without_that_evidence_the_marks_narrow_nothing() {
    let mut run = Run::new();
    let (lines, a, b, child) = one_of_two_marked(&U4, 100);
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
    run.feed(&trusted(&U4, 0));
    let (lines, a, _, child) = one_of_two_marked(&U4, 100);
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
    run.feed(&trusted(&U4, 0));
    let (mut lines, a, b, child) = one_of_two_marked(&U4, 100);
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
    run.feed(&trusted(&U4, 0));
    let (lines, _, b, child) = one_of_two_marked(&U4, 100);
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

#[test]
fn a_channel_whose_v_marks_came_first_links_the_variation_to_the_grid_whose_v_was_marked() {
    let mut run = Run::new();
    run.feed(&trusted(&V1, 300));
    for k in 0..3 {
        let (status, parent, signal) = run.link(at(305 + 10 * k));
        assert_eq!(
            (status.as_str(), signal.as_deref()),
            ("linked", Some("reference"))
        );
        assert_eq!(parent, Some(at(300 + 10 * k).to_string()));
    }
    let (lines, a, _, child) = one_of_two_marked(&V1, 100_000);
    run.feed(&lines);
    assert_eq!(run.link(child), by_fallback(a));
}

#[test]
fn v_marks_are_trusted_apart_from_u_marks() {
    // The U marks' evidence says nothing of the V marks: still ambiguous.
    let mut run = Run::new();
    run.feed(&trusted(&U4, 0));
    let (lines, _, _, child) = one_of_two_marked(&V1, 100_000);
    run.feed(&lines);
    assert_eq!(run.link(child).0, "ambiguous");

    // A channel whose variation came before its grid's V mark (or with no V mark at all, as
    // in the wire notes, which document only the U marks) never trusts its V marks, and
    // keeps trusting its U marks.
    let mut run = Run::new();
    run.feed(&trusted(&U4, 0));
    run.feed(&trusted(&V1, 300));
    let (g, r) = (at(350), at(355));
    run.feed(&[
        frame("MESSAGE_CREATE", grid(g, &[])),
        frame("MESSAGE_CREATE", variation(r, Some(g))),
    ]);
    let (lines, _, _, child) = one_of_two_marked(&V1, 100_000);
    run.feed(&lines);
    assert_eq!(run.link(child).0, "ambiguous");
    let (a, b, child) = (at(100_100), at(100_101), at(100_110));
    run.feed(&[
        frame("MESSAGE_CREATE", grid(a, &[])),
        frame("MESSAGE_CREATE", grid(b, &[])),
        frame("MESSAGE_UPDATE", grid(a, &[4])),
        frame("MESSAGE_CREATE", upscale(child, None)),
    ]);
    assert_eq!(run.link(child).1, Some(a.to_string()));
}

#[test]
fn a_channel_whose_image_marks_came_first_links_the_zoom_to_the_image_whose_zoom_was_marked() {
    let mut run = Run::new();
    run.feed(&trusted(&ZOOM, 500));
    for k in 0..3 {
        let (status, parent, signal) = run.link(at(505 + 10 * k));
        assert_eq!(
            (status.as_str(), signal.as_deref()),
            ("linked", Some("reference"))
        );
        assert_eq!(parent, Some(at(500 + 10 * k).to_string()));
    }
    let (lines, a, _, child) = one_of_two_marked(&ZOOM, 200_000);
    run.feed(&lines);
    assert_eq!(run.link(child), by_fallback(a));
}

#[test]
fn image_marks_narrow_nothing_without_their_own_evidence_and_stop_at_a_contradiction() {
    // The grids' U marks say nothing of the images' buttons: ambiguous.
    let mut run = Run::new();
    run.feed(&trusted(&U4, 0));
    let (lines, _, _, child) = one_of_two_marked(&ZOOM, 200_000);
    run.feed(&lines);
    assert_eq!(run.link(child).0, "ambiguous");

    // Trusted, then one zoom whose image's mark came after it (or never, as the samples'
    // images, whose buttons are all `style: 2`): the trust ends, and the zoom the marks had
    // linked is decided again without them.
    let mut run = Run::new();
    run.feed(&trusted(&ZOOM, 500));
    let (lines, a, _, child) = one_of_two_marked(&ZOOM, 200_000);
    run.feed(&lines);
    assert_eq!(run.link(child), by_fallback(a));
    let (i, r) = (at(300_000), at(300_005));
    run.feed(&[
        frame("MESSAGE_CREATE", image(i, &[])),
        frame("MESSAGE_CREATE", zoom(r, Some(i))),
    ]);
    assert_eq!(run.link(r).2.as_deref(), Some("reference"));
    let (status, parent, _) = run.link(child);
    assert_eq!((status.as_str(), parent), ("ambiguous", None));
}
