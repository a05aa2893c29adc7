//! Data-driven tests: each fixture is replayed into a fresh database and compared with
//! fixtures/expected/<name>.txt (summary, every message's parsed facts, every link).
//! `UPDATE_EXPECT=1 cargo test --test fixtures` rewrites the expected files.

mod common;

use std::path::PathBuf;

use common::{check, links_jsonl, messages_table, replay_files, root};

fn run_fixture(relative: &str) {
    let path = root().join(relative);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fixture.db");
    let (summary, store) = replay_files(std::slice::from_ref(&path), &db);
    let mut report = Vec::new();
    mjlink::ingest::report::Report::gather(&summary, &store)
        .unwrap()
        .write_text(&mut report, std::path::Path::new("<db>"))
        .unwrap();
    let mut actual = String::from_utf8(report).unwrap();
    actual.push_str("\n# messages: id | seen | kind | action | user | mode | stealth | tile | job uuid | stage | error | outcome | final | deleted | prompt (normalized) | params | attachments\n");
    actual.push_str(&messages_table(&db));
    actual.push_str("\n# links\n");
    actual.push_str(&links_jsonl(&store));
    drop(store);

    // Replaying the same file again changes nothing in the database.
    let before = mjlink::store::Store::open(&db).unwrap().dump().unwrap();
    let (again, store) = replay_files(&[path], &db);
    assert_eq!(again.applied, 0, "{relative}: a second replay applied events");
    assert_eq!(
        store.dump().unwrap(),
        before,
        "{relative}: a second replay changed the database"
    );

    let name = PathBuf::from(relative)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .to_string();
    check(
        &root().join("fixtures/expected").join(format!("{name}.txt")),
        &actual,
    );
}

#[test]
fn real_gateway_start_then_grid() {
    run_fixture("fixtures/real/gateway_start_then_grid.jsonl");
}

#[test]
fn real_wxapi_channel_50_rest_array() {
    run_fixture("fixtures/real/wxapi_channel_50.json");
}

#[test]
fn real_wxapi_upscale_image4() {
    run_fixture("fixtures/real/wxapi_upscale_image4.jsonl");
}

#[test]
fn real_wxapi_grid_v52() {
    run_fixture("fixtures/real/wxapi_grid_v52.jsonl");
}

#[test]
fn real_codercurious_upscale_of_variation() {
    run_fixture("fixtures/real/codercurious_upscale_of_variation.jsonl");
}

#[test]
fn real_sahirmpatel_start_then_grid() {
    run_fixture("fixtures/real/sahirmpatel_start_then_grid.jsonl");
}

#[test]
fn real_mjwrapper_10_grids() {
    run_fixture("fixtures/real/mjwrapper_10_grids.jsonl");
}

#[test]
fn real_yokonsan_v7_grid() {
    run_fixture("fixtures/real/yokonsan_v7_grid.jsonl");
}

#[test]
fn scenario_every_format() {
    run_fixture("fixtures/scenarios/every_format.jsonl");
}

#[test]
fn scenario_heuristics() {
    run_fixture("fixtures/scenarios/heuristics.jsonl");
}

#[test]
fn generated_channel_mix_1500() {
    run_fixture("fixtures/generated/channel_mix_1500.jsonl");
}

#[test]
fn scenario_disorder() {
    run_fixture("fixtures/scenarios/disorder.jsonl");
}

/// Section 9 of the wire notes, one job per 2026 format (fixtures/tools/make_scenarios.py,
/// `formats_2026`): the expected file was checked against the notes line by line.
#[test]
fn scenario_formats_2026() {
    run_fixture("fixtures/scenarios/formats_2026.jsonl");
}
