//! A generated trace that no one tuned the linker for: interleaved users and channels,
//! identical-prompt bursts, 10% of results stripped of their reference, noise, duplicates and
//! out-of-order events. Against the generator's ground truth: zero wrong links, every
//! reference-carrying result linked to its true parent, ambiguity reported instead of guessed.
//! The same with half the job families in the 2026 shapes (section 9 of the doc) and 30% of the
//! references stripped, against the whole truth (roots, starts, actions, signals).

mod common;

use std::collections::HashMap;

use mjlink::ingest::pipeline::{Pipeline, PipelineConfig};
use mjlink::store::Store;
use mjlink_core::link::{Signal, Status};
use mjlink_sim::tracegen::{self, TraceOptions, TruthLink};

/// Checks the links in `store` against `truth`; returns the counts (exact, heuristic,
/// ambiguous, unresolved, without a row).
fn check_against_truth(store: &Store, truth: &[TruthLink]) -> (usize, usize, usize, usize, usize) {
    let mut links = HashMap::new();
    store
        .for_each_link(|export| {
            links.insert(export.link.child_id.0, export.link);
            Ok(())
        })
        .unwrap();

    let (mut exact, mut heuristic, mut ambiguous, mut unresolved, mut no_row) = (0, 0, 0, 0, 0);
    for expected in truth {
        let Some(link) = links.get(&expected.child_id) else {
            // Only a marker-less result stripped of every signal (a reroll) looks exactly
            // like a fresh /imagine grid and has no link row.
            assert!(
                !expected.has_reference && expected.action == "reroll",
                "{expected:?} has no link row"
            );
            no_row += 1;
            continue;
        };
        match link.decision.status {
            Status::Linked => {
                assert_eq!(
                    link.decision.parent.map(|p| p.0),
                    Some(expected.parent_id),
                    "wrong link for {expected:?}: {link:?}"
                );
                if link.decision.signal == Some(Signal::Heuristic) {
                    heuristic += 1;
                } else {
                    exact += 1;
                }
            }
            Status::Ambiguous => {
                assert!(link.decision.candidates.len() > 1);
                ambiguous += 1;
            }
            Status::Unresolved => unresolved += 1,
        }
        if expected.has_reference {
            assert_eq!(
                link.decision.signal,
                Some(Signal::Reference),
                "{expected:?}: {link:?}"
            );
        }
        if let Some(tile) = expected.index {
            assert_eq!(link.tile, Some(tile), "{expected:?}");
        }
    }
    let with_reference = truth.iter().filter(|t| t.has_reference).count();
    assert_eq!(exact, with_reference);
    (exact, heuristic, ambiguous, unresolved, no_row)
}

#[test]
fn bundled_generated_trace_against_its_truth_file() {
    let truth: Vec<TruthLink> =
        std::fs::read_to_string(common::root().join("fixtures/generated/channel_mix_1500.truth.jsonl"))
            .unwrap()
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                let action = mjlink_core::parse::Action::from_name(row["action"].as_str().unwrap()).unwrap();
                TruthLink {
                    child_id: row["child_id"].as_str().unwrap().parse().unwrap(),
                    parent_id: row["parent_id"].as_str().unwrap().parse().unwrap(),
                    action: action.as_str(),
                    index: row["index"].as_u64().map(|n| n as u8),
                    has_reference: row["has_reference"].as_bool().unwrap(),
                }
            })
            .collect();
    assert!(truth.len() > 100);
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = common::replay_files(
        &[common::root().join("fixtures/generated/channel_mix_1500.jsonl")],
        &dir.path().join("b.db"),
    );
    let (exact, heuristic, ambiguous, _, _) = check_against_truth(&store, &truth);
    assert!(exact > 100 && heuristic > 0 && ambiguous > 0);
}

#[test]
fn generated_trace_has_no_wrong_links() {
    // 10% of references stripped (the default), then 30%: with seed 3 at 30% a grid's upscale
    // came 6 h 13 min after it, just past the window, while another grid with the same
    // prompt was inside it; a lone candidate in the window must not be linked when a rival
    // fits further back (`link::horizon_ms`).
    for (seed, strip_reference_per_mille) in [(3, 100), (11, 100), (3, 300), (5, 300)] {
        let mut trace = Vec::new();
        let mut truth: Vec<TruthLink> = Vec::new();
        let options = TraceOptions {
            seed,
            events: 12_000,
            strip_reference_per_mille,
            ..TraceOptions::default()
        };
        tracegen::generate(&options, &mut trace, &mut |link| truth.push(link)).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let pipeline = Pipeline::new(
            Store::open(&dir.path().join("t.db")).unwrap(),
            PipelineConfig::default(),
        );
        let (summary, store) =
            mjlink::ingest::replay::replay_all(pipeline, [("trace".to_string(), trace.as_slice())]).unwrap();
        assert_eq!(summary.malformed, 0);
        assert!(summary.duplicates > 0, "the trace has redelivered lines");

        let (exact, heuristic, ambiguous, unresolved, no_row) = check_against_truth(&store, &truth);
        assert!(heuristic > 0 && ambiguous > 0, "the trace exercises the fallback");
        // Issue 11 asks for 80% of the results without a reference linked at 30% stripped.
        // Not met, and not reachable here without guessing: see the end of
        // `generated_2026_trace_has_no_wrong_links`.
        let stripped = truth.iter().filter(|link| !link.has_reference).count();
        eprintln!(
            "seed {seed}, {strip_reference_per_mille}‰ stripped: {} results: {exact} exact, {heuristic} heuristic, {ambiguous} ambiguous, {unresolved} unresolved, {no_row} without a row; 0 wrong; without a reference linked: {heuristic}/{stripped} = {:.1}%",
            truth.len(),
            100.0 * heuristic as f64 / stripped.max(1) as f64
        );
    }
}

/// What mjlink stored of one message: `kind`, `outcome`, `final_id`.
struct StoredRow {
    kind: String,
    outcome: Option<String>,
    final_id: Option<u64>,
}

/// One row of `links`: parent, action, tile, signal, status.
struct StoredLink {
    parent: Option<u64>,
    action: String,
    tile: Option<u8>,
    signal: Option<String>,
    status: String,
}

fn stored_rows(db: &std::path::Path) -> (HashMap<u64, StoredRow>, HashMap<u64, StoredLink>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let id = |n: i64| n as u64;
    let mut messages = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT id, kind, outcome, final_id FROM messages WHERE seen = 1")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let final_id: Option<i64> = row.get(3).unwrap();
        messages.insert(
            id(row.get(0).unwrap()),
            StoredRow {
                kind: row.get(1).unwrap(),
                outcome: row.get(2).unwrap(),
                final_id: final_id.map(id),
            },
        );
    }
    let mut links = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT child_id, parent_id, action, tile, signal, status FROM links")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let parent: Option<i64> = row.get(1).unwrap();
        links.insert(
            id(row.get(0).unwrap()),
            StoredLink {
                parent: parent.map(id),
                action: row.get(2).unwrap(),
                tile: row.get(3).unwrap(),
                signal: row.get(4).unwrap(),
                status: row.get(5).unwrap(),
            },
        );
    }
    (messages, links)
}

/// A generated trace with the 2026 shapes of section 9 (half the job families: grids replying
/// to their own start, native video jobs, animations with their video grids, clips and
/// extensions, the V7 upscaler, `Remix (Region)`, modal jobs whose parent is only in
/// `interaction_metadata`, non-jobs) and 30% of the references stripped, against the
/// generator's whole ground truth: 0 wrong links (no result to a wrong parent, no root, start
/// or non-job linked as a result), every root stored as a root of its kind, every start
/// settled `completed` by its own final, every result's action the true one, every exact
/// signal used. The share of results without any signal that are linked is printed (issue
/// 11's target of 80% is not met; see the end of the test).
#[test]
fn generated_2026_trace_has_no_wrong_links() {
    use tracegen::{Carried, TruthRecord};

    let mut failed = Vec::new();
    // Each seed in both worlds: the marks of half the U presses come after their results
    // (the default; marks never narrow), or every press marks its grid first (issue 11 item 9).
    for (seed, marks_before_results) in [(3, false), (11, false), (3, true), (11, true)] {
        let options = TraceOptions {
            seed,
            events: 12_000,
            shapes_2026_per_mille: 500,
            strip_reference_per_mille: 300,
            marks_before_results,
            ..TraceOptions::default()
        };
        let mut trace = Vec::new();
        let mut records: Vec<TruthRecord> = Vec::new();
        tracegen::generate_records(&options, &mut trace, &mut |record| records.push(record)).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let pipeline = Pipeline::new(Store::open(&db).unwrap(), PipelineConfig::default());
        let (summary, store) =
            mjlink::ingest::replay::replay_all(pipeline, [("trace".to_string(), trace.as_slice())]).unwrap();
        drop(store);
        let (messages, links) = stored_rows(&db);

        // What each id truly is.
        let mut result_of = HashMap::new();
        let mut root_of = HashMap::new();
        let mut start_of = HashMap::new();
        let mut not_jobs = std::collections::HashSet::new();
        for record in &records {
            match *record {
                TruthRecord::Result {
                    link,
                    carried,
                    shapes_2026,
                } => {
                    result_of.insert(link.child_id, (link, carried, shapes_2026));
                }
                TruthRecord::Root { id, kind, .. } => {
                    root_of.insert(id, kind);
                }
                TruthRecord::Start { id, parent_id, .. } => {
                    start_of.insert(id, parent_id);
                }
                TruthRecord::NotAJob { id, .. } => {
                    not_jobs.insert(id);
                }
            }
        }

        // 1. Wrong links: any linked row whose parent is not the truth's.
        let mut wrong = Vec::new();
        let mut wrong_by_what: HashMap<String, usize> = HashMap::new();
        for (child, link) in &links {
            if link.status != "linked" {
                continue;
            }
            let right = if let Some((truth, _, _)) = result_of.get(child) {
                link.parent == Some(truth.parent_id)
            } else if let Some(parent) = start_of.get(child) {
                // A start may carry its job's parent; never another one.
                parent.is_some() && link.parent == *parent
            } else {
                // A root, a non-job, a human's or the impostor's message: not a result.
                false
            };
            if !right {
                let what = if let Some(kind) = root_of.get(child) {
                    format!("root {kind}")
                } else if not_jobs.contains(child) {
                    "non-job".to_string()
                } else if start_of.contains_key(child) {
                    "start".to_string()
                } else if result_of.contains_key(child) {
                    format!("result {}", result_of[child].0.action)
                } else {
                    "not Midjourney's job".to_string()
                };
                *wrong_by_what
                    .entry(format!("{what} as {} by {:?}", link.action, link.signal))
                    .or_default() += 1;
                wrong.push(format!(
                    "{child} ({what}) linked to {:?} as {} by {:?}",
                    link.parent, link.action, link.signal
                ));
            }
        }
        wrong.sort();

        // 2. Roots stored as roots of their kind.
        let mut roots_by_kind: HashMap<&str, usize> = HashMap::new();
        let mut misfiled_roots = Vec::new();
        let mut blend_imagine_swapped = 0;
        for (id, kind) in &root_of {
            *roots_by_kind.entry(kind).or_default() += 1;
            let stored = messages.get(id).map_or("(no row)", |m| m.kind.as_str());
            let root_kind = matches!(stored, "imagine" | "blend" | "video");
            if !root_kind || ((*kind == "video") != (stored == "video")) {
                misfiled_roots.push(format!("{id} ({kind}) stored as {stored}"));
            } else if stored != *kind {
                blend_imagine_swapped += 1;
            }
        }
        misfiled_roots.sort();

        // 3. Starts settled by their own final. A start its final identifies (the final replies
        // to it, or one of its edits named the final's job UUID) is `completed` by that final.
        // One that named nothing, whose final does not reply to it, may stay `unknown` (or
        // `running`) when finals cannot be told apart; it is never `failed` nor completed by
        // another message.
        let replied_to: std::collections::HashSet<u64> = records
            .iter()
            .filter_map(|record| match *record {
                TruthRecord::Root {
                    start_id,
                    replies_to_start: true,
                    ..
                } => Some(start_id),
                _ => None,
            })
            .collect();
        let mut starts_with_final = 0;
        let mut unsettled: HashMap<String, usize> = HashMap::new();
        let mut undecided: HashMap<String, usize> = HashMap::new();
        let mut unsettled_examples: HashMap<String, String> = HashMap::new();
        for record in &records {
            let TruthRecord::Start {
                id,
                final_id: Some(final_id),
                names_job,
                shapes_2026,
                ..
            } = *record
            else {
                continue;
            };
            starts_with_final += 1;
            let identified = names_job || replied_to.contains(&id);
            let stored = messages.get(&id);
            let outcome = stored.and_then(|m| m.outcome.as_deref()).unwrap_or("-");
            let settled_by = stored.and_then(|m| m.final_id);
            let settled = outcome == "completed" && settled_by == Some(final_id);
            let undecided_ok = !identified && matches!(outcome, "unknown" | "running");
            if settled {
                continue;
            }
            let key = format!(
                "{} start{}, stored {}/{outcome}{}",
                if shapes_2026 { "2026" } else { "2023" },
                if names_job {
                    " naming its job"
                } else if replied_to.contains(&id) {
                    " its final replies to"
                } else {
                    " naming nothing"
                },
                stored.map_or("(no row)", |m| m.kind.as_str()),
                match settled_by {
                    Some(f) if f != final_id => " by another message",
                    _ => "",
                }
            );
            if undecided_ok {
                *undecided.entry(key).or_default() += 1;
            } else {
                *unsettled.entry(key.clone()).or_default() += 1;
                unsettled_examples
                    .entry(key)
                    .or_insert_with(|| format!("{id} -> {final_id}"));
            }
        }

        // 4. Results: the true action and tile, every exact signal used, the stripped ones.
        let (mut exact, mut heuristic, mut ambiguous, mut unresolved, mut no_row) = (0, 0, 0, 0, 0);
        let (mut stripped, mut stripped_linked) = (0usize, 0usize);
        let mut by_carried: HashMap<String, usize> = HashMap::new();
        let mut wrong_action: HashMap<String, usize> = HashMap::new();
        let mut missing_rows: HashMap<&str, usize> = HashMap::new();
        let mut exact_signal_unused: HashMap<String, usize> = HashMap::new();
        // What the results without any signal that stay unlinked truly are.
        let mut stripped_unlinked: std::collections::BTreeMap<String, usize> = Default::default();
        for (child, (truth, carried, shapes_2026)) in &result_of {
            *by_carried.entry(format!("{carried:?}")).or_default() += 1;
            if *carried == Carried::Nothing {
                stripped += 1;
            }
            let Some(link) = links.get(child) else {
                // Stripped of every signal, a reroll looks like a fresh /imagine grid and a
                // video grid from an animation like a native video job: no link row.
                let looks_like_a_root =
                    *carried == Carried::Nothing && matches!(truth.action, "reroll" | "animate");
                if looks_like_a_root {
                    no_row += 1;
                    *stripped_unlinked
                        .entry(format!("{} no row", truth.action))
                        .or_default() += 1;
                } else {
                    *missing_rows.entry(truth.action).or_default() += 1;
                }
                continue;
            };
            // Without its parent the wire cannot tell `Variations (Strong) by` on a grid (a V
            // button) from the same marker on an upscale, a bare `Upscaled by` on a grid from
            // the V7 upscaler, or a clip from an Extend (wire notes, sections 3 and 9: "only
            // the parent tells them apart"): the action is checked where the parent is known
            // exactly.
            let parent_known = matches!(link.signal.as_deref(), Some("reference" | "interaction"));
            if parent_known
                && (link.action != truth.action || (truth.index.is_some() && link.tile != truth.index))
            {
                *wrong_action
                    .entry(format!(
                        "{} {} stored as {} tile {:?} ({})",
                        if *shapes_2026 { "2026" } else { "2023" },
                        truth.action,
                        link.action,
                        link.tile,
                        link.status
                    ))
                    .or_default() += 1;
            }
            match link.status.as_str() {
                "linked" if link.signal.as_deref() == Some("heuristic") => heuristic += 1,
                "linked" => exact += 1,
                "ambiguous" => ambiguous += 1,
                _ => unresolved += 1,
            }
            if *carried == Carried::Nothing && link.status == "linked" {
                stripped_linked += 1;
            } else if *carried == Carried::Nothing {
                *stripped_unlinked
                    .entry(format!("{} {}", truth.action, link.status))
                    .or_default() += 1;
            }
            let expected_signal = match carried {
                Carried::Reference => Some("reference"),
                Carried::Interaction => Some("interaction"),
                Carried::Nothing => None,
            };
            if let Some(signal) = expected_signal {
                if link.status != "linked" || link.signal.as_deref() != Some(signal) {
                    *exact_signal_unused
                        .entry(format!(
                            "{} by {signal} stored {} by {:?}",
                            truth.action, link.status, link.signal
                        ))
                        .or_default() += 1;
                }
            }
        }
        let stripped_share = if stripped == 0 {
            1.0
        } else {
            stripped_linked as f64 / stripped as f64
        };

        eprintln!(
            "seed {seed}, marks first {marks_before_results}: {} lines, {} malformed; {} results ({by_carried:?}): {exact} exact, {heuristic} heuristic, \
             {ambiguous} ambiguous, {unresolved} unresolved, {no_row} without a row (stripped reroll/animate); \
             {} wrong links {wrong_by_what:?}; roots {roots_by_kind:?}: {} misfiled, {blend_imagine_swapped} blend/imagine swapped; \
             starts with a final: {starts_with_final}, {} wrongly settled {unsettled:?} (e.g. {unsettled_examples:?}), \
             {} undecided as allowed {undecided:?}; \
             results with a wrong action: {wrong_action:?}; missing rows: {missing_rows:?}; exact signals not used: \
             {exact_signal_unused:?}; results without any signal linked: {stripped_linked}/{stripped} = {:.1}%, \
             the others {stripped_unlinked:?}",
            summary.lines,
            summary.malformed,
            result_of.len(),
            wrong.len(),
            misfiled_roots.len(),
            unsettled.values().sum::<usize>(),
            undecided.values().sum::<usize>(),
            stripped_share * 100.0,
        );
        for line in wrong.iter().take(10) {
            eprintln!("  wrong: {line}");
        }
        for line in misfiled_roots.iter().take(5) {
            eprintln!("  misfiled root: {line}");
        }

        let mut check = |ok: bool, what: String| {
            if !ok {
                failed.push(format!("seed {seed}: {what}"));
            }
        };
        check(
            summary.malformed == 0,
            format!("{} malformed lines", summary.malformed),
        );
        check(wrong.is_empty(), format!("{} wrong links", wrong.len()));
        check(
            misfiled_roots.is_empty(),
            format!(
                "{} of {} roots not stored as their root kind",
                misfiled_roots.len(),
                root_of.len()
            ),
        );
        check(
            unsettled.is_empty(),
            format!(
                "{} of {starts_with_final} starts with a final not settled `completed` by it (and not undecided \
                 as allowed)",
                unsettled.values().sum::<usize>()
            ),
        );
        check(
            wrong_action.is_empty() && missing_rows.is_empty(),
            format!(
                "{} results with a wrong action or tile, {} without a link row",
                wrong_action.values().sum::<usize>(),
                missing_rows.values().sum::<usize>()
            ),
        );
        check(
            exact_signal_unused.is_empty(),
            format!(
                "{} results whose exact signal was not the link",
                exact_signal_unused.values().sum::<usize>()
            ),
        );
        // Issue 11 asks for 80% of the results without any signal linked. NOT MET. Where half
        // the U marks come after their results and nothing else is marked: 29% (the marks
        // narrow nothing: a channel trusts a family of marks only once its exact links showed
        // them first, `mjlink_core::marks`). Where every press marks the message that carries
        // the button first (grids' U and V, video grids' U, images' and clips' buttons):
        // 76-77%. What stays unlinked there is mostly out of reach by prompt (stripped rerolls
        // look like roots, remixes changed their prompt: 50 of the 427 in seed 3) or among
        // candidates whose button was each marked before the result (a V or an image's Vary
        // may be pressed again). Linking more would mean guessing; 0 wrong links comes first.
        if marks_before_results {
            check(
                stripped_share >= 0.74,
                format!(
                    "with every mark first, {:.1}% of the results without a signal linked (was 76-77%)",
                    stripped_share * 100.0
                ),
            );
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
