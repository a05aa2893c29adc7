//! The same traffic gives the same database whatever order it arrives in (issue 12, E5 and
//! principle 9): a live run sees messages as they are posted, a backfill reads history newest
//! first, a replay of a recorded run may interleave channels differently. Generated traces (the
//! 2023 shapes with 30% of the references stripped, and half the families in the 2026 shapes)
//! are replayed in their order, reversed, and shuffled within blocks; every link (its
//! candidate list included) and every message's decided columns must be identical.
//!
//! One thing is order itself: where in the stream a grid's U or V was marked used, before or
//! after its result (issue 11 item 9, `mjlink_core::marks`). In a world whose marks come
//! before their results, a reordered stream loses that: marks then narrow nothing, and the
//! links they narrowed in order are left ambiguous with their parent among the candidates (or
//! among more candidates), never linked elsewhere ([`reordering_only_loses_what_marks_narrowed`]).

use mjlink::ingest::pipeline::{Pipeline, PipelineConfig};
use mjlink::store::Store;
use mjlink_sim::tracegen::{self, TraceOptions};
use serde_json::Value;

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

/// The trace's lines reversed, and shuffled within blocks of 40 (a fixed xorshift sequence).
fn reorderings<'a>(lines: &[&'a [u8]]) -> (Vec<&'a [u8]>, Vec<&'a [u8]>) {
    let mut reversed = lines.to_vec();
    reversed.reverse();
    let mut shuffled = lines.to_vec();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for block in shuffled.chunks_mut(40) {
        for i in (1..block.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            block.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }
    (reversed, shuffled)
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

    let (reversed, shuffled) = reorderings(&lines);
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
/// narrowed in one of them: the same result, action and tile, of a button whose marks are
/// followed (`mjlink_core::marks::Family`), either linked by the fallback to a parent that the other
/// lists among its ambiguous candidates, or ambiguous in both with one's candidates among the
/// other's.
fn mark_narrowing_only(a: &str, b: &str) -> bool {
    let fields = |row: &str| -> Vec<String> { row.splitn(7, ' ').map(str::to_string).collect() };
    let (a, b) = (fields(a), fields(b));
    let candidates = |row: &[String]| -> Vec<String> { serde_json::from_str(&row[6]).unwrap() };
    let narrowed = |one: &[String], other: &[String]| {
        if other[5] != "ambiguous" {
            return false;
        }
        let wider = candidates(other);
        match one[5].as_str() {
            "linked" => one[4] == "heuristic" && wider.contains(&one[1]),
            "ambiguous" => candidates(one).iter().all(|candidate| wider.contains(candidate)),
            _ => false,
        }
    };
    let by_a_button = mjlink_core::parse::Action::ALL
        .into_iter()
        .find(|action| action.as_str() == a[2])
        .is_some_and(|action| {
            mjlink_core::marks::Family::ALL
                .into_iter()
                .any(|family| family.actions().any(|known| known == action))
        });
    a[0] == b[0] && by_a_button && a[2] == b[2] && a[3] == b[3] && (narrowed(&a, &b) || narrowed(&b, &a))
}

/// Where every press marks its message before the result, the in-order replay links results
/// the reordered ones leave ambiguous, or narrows their candidates
/// (the order of a mark and a result is the fact they use); every other link and every
/// message row is identical, and no reordering links a result elsewhere.
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
    let (links, messages) = decided(&lines);
    let (reversed, shuffled) = reorderings(&lines);
    for (name, order) in [("reversed", &reversed), ("shuffled in blocks of 40", &shuffled)] {
        let (other, other_messages) = decided(order);
        assert_eq!(links.len(), other.len(), "{name}");
        let narrowed = links.iter().zip(&other).filter(|(a, b)| a != b).count();
        let unexplained: Vec<String> = links
            .iter()
            .zip(&other)
            .filter(|(a, b)| a != b && !mark_narrowing_only(a, b))
            .map(|(a, b)| format!("{a}\n   vs {b}"))
            .collect();
        assert!(
            narrowed > 50,
            "{name}: the marks narrowed {narrowed} links in order"
        );
        assert!(
            unexplained.is_empty(),
            "{name}: {} links differ otherwise, e.g.\n{}",
            unexplained.len(),
            unexplained.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
        );
        let diff = differences("message", &messages, &other_messages);
        assert!(
            diff.is_empty(),
            "{name}: {} messages differ, e.g.\n{}",
            diff.len(),
            diff.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

/// The real start and grid of `fixtures/real/gateway_start_then_grid.jsonl` (wire notes
/// section 2: `(Waiting to start)`, then the final grid, then the start deleted) made into two
/// jobs with the same prompt: the first names its job in a progress edit (the preview
/// `{uuid}_grid_0.webp`), the second never does. Whatever order the events come in, each start
/// is `completed` by its own final: the second's final is found by prompt once the first has
/// named its job and so is no rival (it once stayed `unknown` when the first named its job
/// only after being seen), and a start naming its job after that job's final was stored is
/// settled by it (it once stayed `running`).
#[test]
fn starts_are_settled_by_their_own_finals_in_any_order() {
    let sample: Vec<Value> = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/real/gateway_start_then_grid.jsonl"),
    )
    .unwrap()
    .lines()
    .map(|line| serde_json::from_str::<Value>(line).unwrap()["d"].clone())
    .collect();
    let (start, grid) = (&sample[0], &sample[1]);
    let id = |message: &Value| -> u64 { message["id"].as_str().unwrap().parse().unwrap() };
    let later = |message: &Value, seconds: u64, uuid: &str| -> Value {
        let text = serde_json::to_string(message)
            .unwrap()
            .replace("a7cb1552-f779-4094-9afe-2acf22dae280", uuid);
        let mut moved: Value = serde_json::from_str(&text).unwrap();
        moved["id"] = Value::from((id(message) + ((seconds * 1000) << 22)).to_string());
        moved.as_object_mut().unwrap().remove("timestamp");
        moved
    };
    let first_uuid = "a7cb1552-f779-4094-9afe-2acf22dae280";
    let second_uuid = "b7cb1552-f779-4094-9afe-2acf22dae281";
    let (start_1, grid_1) = (later(start, 0, first_uuid), later(grid, 0, first_uuid));
    let mut named = start_1.clone();
    named["content"] = Value::from("**glass** - <@439110225975443468> (0%) (relaxed)");
    named["attachments"] = serde_json::json!([{
        "id": "1083788700000000000",
        "filename": format!("{first_uuid}_grid_0.webp"),
        "url": format!("https://cdn.discordapp.com/attachments/1/1083788700000000000/{first_uuid}_grid_0.webp"),
        "proxy_url": format!("https://media.discordapp.net/attachments/1/1083788700000000000/{first_uuid}_grid_0.webp"),
        "size": 1000, "width": 256, "height": 256
    }]);
    let (start_2, grid_2) = (later(start, 600, second_uuid), later(grid, 600, second_uuid));
    let frame = |kind: &str, d: &Value| serde_json::json!({"op": 0, "t": kind, "s": 0, "d": d}).to_string();
    let delete = |message: &Value| {
        frame(
            "MESSAGE_DELETE",
            &serde_json::json!({"id": message["id"], "channel_id": message["channel_id"]}),
        )
    };
    let events = vec![
        frame("MESSAGE_CREATE", &start_1),
        frame("MESSAGE_UPDATE", &named),
        frame("MESSAGE_CREATE", &grid_1),
        delete(&start_1),
        frame("MESSAGE_CREATE", &start_2),
        frame("MESSAGE_CREATE", &grid_2),
        delete(&start_2),
    ];
    let expected = [
        format!("{} completed {}", id(&start_1), id(&grid_1)),
        format!("{} completed {}", id(&start_2), id(&grid_2)),
    ];
    // And with the first start never deleted (a trace that ends first, or a job still shown).
    let mut kept = events.clone();
    kept.remove(3);
    for events in [events, kept] {
        let mut order: Vec<usize> = (0..events.len()).collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..40 {
            if round == 1 {
                order.reverse();
            } else if round > 1 {
                for i in (1..order.len()).rev() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    order.swap(i, (state % (i as u64 + 1)) as usize);
                }
            }
            let lines: Vec<&[u8]> = order.iter().map(|&i| events[i].as_bytes()).collect();
            let (_, messages) = decided(&lines);
            let outcomes: Vec<String> = messages
                .iter()
                .filter(|row| row.contains(" progress "))
                .map(|row| {
                    let fields: Vec<&str> = row.split(' ').collect();
                    format!("{} {} {}", fields[0], fields[5], fields[6])
                })
                .collect();
            assert_eq!(
                outcomes,
                expected,
                "events in the order {order:?} of {}",
                events.len()
            );
        }
    }
}
