//! The same traffic gives the same database whatever order it arrives in (issue 12, E5 and
//! principle 9): a live run sees messages as they are posted, a backfill reads history newest
//! first, a replay of a recorded run may interleave channels differently. Generated traces (the
//! 2023 shapes with 30% of the references stripped, and half the families in the 2026 shapes)
//! are replayed in their order, reversed, and shuffled within blocks; every link (its
//! candidate list included) and every message's decided columns must be identical.
//!
//! One thing is order itself: where in the stream a grid's U was marked used, before or after
//! an upscale (issue 11 item 9, `mjlink_core::marks`). In a world whose marks come before
//! their results, a reordered stream loses that: marks then narrow nothing, and the links
//! they narrowed in order are left ambiguous with their parent among the candidates, never
//! linked elsewhere ([`reordering_only_loses_what_marks_narrowed`]).

use mjlink::ingest::pipeline::{Pipeline, PipelineConfig};
use mjlink::store::Store;
use mjlink_sim::tracegen::{self, TraceOptions};

/// Replays `lines` into a fresh database and returns what was decided, one line per row (when
/// a deletion was received is the replay clock's, not a decision: only whether there was one).
fn decided(lines: &[&[u8]]) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let trace: Vec<u8> = lines
        .iter()
        .flat_map(|line| line.iter().copied().chain([b'\n']))
        .collect();
    let pipeline = Pipeline::new(Store::open(&db).unwrap(), PipelineConfig::default());
    let (summary, store) =
        mjlink::ingest::replay::replay_all(pipeline, [("trace".to_string(), trace.as_slice())]).unwrap();
    assert_eq!(summary.malformed, 0);
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let links = rows(
        "SELECT child_id || ' ' || coalesce(parent_id, '-') || ' ' || action || ' ' || coalesce(tile, '-')
             || ' ' || coalesce(signal, '-') || ' ' || status || ' ' || candidates
         FROM links ORDER BY child_id",
    );
    let messages = rows(
        "SELECT id || ' ' || seen || ' ' || kind || ' ' || coalesce(action, '-') || ' ' || coalesce(tile, '-')
             || ' ' || coalesce(outcome, '-') || ' ' || coalesce(final_id, '-') || ' ' || coalesce(reply_to, '-')
             || ' ' || coalesce(rated_by, '-') || ' ' || coalesce(used_buttons, '-') || ' ' || (deleted_at IS NOT NULL)
         FROM messages ORDER BY id",
    );
    (links, messages)
}

/// The rows of `a` and `b` that differ, for the failure message.
fn differences(what: &str, a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("{what}: {x}\n   vs {y}"))
        .collect();
    if a.len() != b.len() {
        out.push(format!("{what}: {} rows vs {}", a.len(), b.len()));
    }
    out
}

fn check_orders(options: TraceOptions) {
    let mut trace = Vec::new();
    tracegen::generate(&options, &mut trace, &mut |_| {}).unwrap();
    let lines: Vec<&[u8]> = trace
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    let (links, messages) = decided(&lines);
    assert!(
        links.iter().any(|row| row.contains(" ambiguous [")),
        "the trace exercises the fallback's candidate lists"
    );

    let mut reversed = lines.clone();
    reversed.reverse();
    let mut shuffled = lines.clone();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for block in shuffled.chunks_mut(40) {
        for i in (1..block.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            block.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }
    let mut failed = Vec::new();
    for (name, order) in [("reversed", &reversed), ("shuffled in blocks of 40", &shuffled)] {
        let (other_links, other_messages) = decided(order);
        let mut diff = differences("link", &links, &other_links);
        diff.extend(differences("message", &messages, &other_messages));
        if !diff.is_empty() {
            failed.push(format!(
                "seed {} {name}: {} rows differ, e.g.\n{}",
                options.seed,
                diff.len(),
                diff.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn the_2023_shapes_give_the_same_database_in_any_order() {
    check_orders(TraceOptions {
        seed: 3,
        events: 12_000,
        strip_reference_per_mille: 300,
        ..TraceOptions::default()
    });
}

#[test]
fn the_2026_shapes_give_the_same_database_in_any_order() {
    check_orders(TraceOptions {
        seed: 11,
        events: 12_000,
        shapes_2026_per_mille: 500,
        strip_reference_per_mille: 300,
        ..TraceOptions::default()
    });
}

/// Whether the link rows `a` (in order) and `b` (reordered) differ only by what the marks
/// narrowed in order: the same upscale and tile, linked by the fallback to a parent that the
/// other lists among its ambiguous candidates.
fn mark_narrowing_only(a: &str, b: &str) -> bool {
    let fields = |row: &str| -> Vec<String> { row.splitn(7, ' ').map(str::to_string).collect() };
    let (a, b) = (fields(a), fields(b));
    let candidates = |row: &[String]| -> Vec<String> { serde_json::from_str(&row[6]).unwrap() };
    let narrowed = |linked: &[String], other: &[String]| {
        linked[4] == "heuristic"
            && linked[5] == "linked"
            && other[5] == "ambiguous"
            && candidates(other).contains(&linked[1])
    };
    a[0] == b[0]
        && a[2] == "upscale"
        && a[2] == b[2]
        && a[3] == b[3]
        && (narrowed(&a, &b) || narrowed(&b, &a))
}

/// Where every U press marks its grid before the result, the in-order replay links upscales
/// the reordered ones leave ambiguous (the order of a mark and a result is the fact they
/// use); every other link is identical, and no reordering links a result elsewhere.
#[test]
fn reordering_only_loses_what_marks_narrowed() {
    let options = TraceOptions {
        seed: 3,
        events: 12_000,
        strip_reference_per_mille: 300,
        shapes_2026_per_mille: 300,
        marks_before_results: true,
        ..TraceOptions::default()
    };
    let mut trace = Vec::new();
    tracegen::generate(&options, &mut trace, &mut |_| {}).unwrap();
    let lines: Vec<&[u8]> = trace
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    let (links, _) = decided(&lines);
    let mut reversed = lines.clone();
    reversed.reverse();
    let (other, _) = decided(&reversed);
    assert_eq!(links.len(), other.len());
    let narrowed = links.iter().zip(&other).filter(|(a, b)| a != b).count();
    let unexplained: Vec<String> = links
        .iter()
        .zip(&other)
        .filter(|(a, b)| a != b && !mark_narrowing_only(a, b))
        .map(|(a, b)| format!("{a}\n   vs {b}"))
        .collect();
    assert!(narrowed > 50, "the marks narrowed {narrowed} links in order");
    assert!(
        unexplained.is_empty(),
        "{} links differ otherwise, e.g.\n{}",
        unexplained.len(),
        unexplained.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
    );
}
