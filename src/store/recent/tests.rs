//! The cache of recent messages: its bound, and the docs it holds back.

use super::*;

fn message(id: u64) -> RecentMessage {
    RecentMessage {
        facts: RowFacts {
            seen: true,
            kind: "imagine".to_string(),
            deleted_at: None,
            ..RowFacts::placeholder(None, 0)
        },
        doc: Doc::new(mjlink_core::wire::Message {
            id: Snowflake(id),
            ..Default::default()
        }),
        unwritten: None,
    }
}

#[test]
fn the_cache_never_holds_more_than_its_capacity() {
    let mut recent = Recent::new(8);
    for id in 0..1_000 {
        assert!(recent.put(Snowflake(id), Some(message(id))).is_empty());
        assert!(recent.len() <= 8);
    }
    // The newest are there; the oldest are gone.
    assert!(matches!(recent.get(Snowflake(999)), Known::Stored(_)));
    assert!(matches!(recent.get(Snowflake(0)), Known::Unknown));
}

#[test]
fn an_entry_read_from_the_older_generation_stays() {
    let mut recent = Recent::new(4);
    let unwritten = |id| RecentMessage {
        unwritten: Some(Unwritten {
            had_doc: false,
            encoded: None,
        }),
        ..message(id)
    };
    assert!(recent.put(Snowflake(1), None).is_empty());
    assert!(recent.put(Snowflake(2), Some(unwritten(2))).is_empty());
    // 1 and 2 move to the older generation; nothing leaves yet.
    assert!(recent.put(Snowflake(3), Some(message(3))).is_empty());
    assert!(matches!(recent.get(Snowflake(1)), Known::Absent)); // back to the newer
                                                                // The older generation (2) leaves; its doc is unwritten, so it is handed back.
    let leaving = recent.put(Snowflake(4), Some(message(4)));
    assert_eq!(
        leaving.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![Snowflake(2)]
    );
    assert!(matches!(recent.get(Snowflake(1)), Known::Absent));
    assert!(matches!(recent.get(Snowflake(2)), Known::Unknown));
}

fn doc(id: u64, content: &str) -> Doc {
    Doc::new(mjlink_core::wire::Message {
        id: Snowflake(id),
        channel_id: Some(Snowflake(7)),
        content: Some(content.to_string()),
        timestamp: Some("2024-05-01T10:00:00.000000+00:00".to_string()),
        ..Default::default()
    })
}

fn row(id: u64) -> MessageRow {
    MessageRow {
        id: Snowflake(id),
        channel_id: Some(Snowflake(7)),
        seen: true,
        kind: "imagine".to_string(),
        prompt_norm: Some(format!("prompt {id}")),
        posted_at: Some(1_714_557_600_000),
        ..Default::default()
    }
}

/// Every row of `messages` and `docs`, as text.
fn dump(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT m.*, d.doc FROM messages m LEFT JOIN docs d ON d.id = m.id ORDER BY m.id",
        "SELECT id FROM docs ORDER BY id",
    ] {
        let mut stmt = store.conn().prepare(sql).unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |row| {
                Ok((0..columns)
                    .map(|column| format!("{:?}", row.get_ref(column).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap();
        out.extend(rows.map(|row| row.unwrap()));
    }
    out
}

/// The same changes with the cache off and with a cache so small that unwritten docs
/// leave it before the commit: the same database.
#[test]
fn docs_held_back_land_as_if_written_at_once() {
    let run = |capacity: usize| {
        let mut store = Store::open_in_memory().unwrap();
        store.keep_recent(capacity);
        store.begin().unwrap();
        for (id, content) in [(1, "a"), (2, "b"), (1, "a, edited")] {
            assert!(store.load_message(Snowflake(id)).is_ok());
            store.save_message(&row(id), &doc(id, content)).unwrap();
        }
        store.mark_deleted(Snowflake(3), Some(Snowflake(7)), 5).unwrap();
        store.mark_deleted(Snowflake(2), Some(Snowflake(7)), 6).unwrap();
        store.offer_prepared(PreparedDoc::new(doc(4, "d")));
        for (id, content) in [(3, "c"), (4, "d"), (5, "e"), (6, "f"), (1, "a, again")] {
            let stored = store.load_message(Snowflake(id)).unwrap();
            assert_eq!(stored.is_some(), [1, 3].contains(&id), "{id}");
            store.save_message(&row(id), &doc(id, content)).unwrap();
        }
        assert_eq!(
            store.load_message(Snowflake(1)).unwrap().unwrap().doc,
            doc(1, "a, again")
        );
        store.commit().unwrap();
        // A rolled-back batch leaves nothing, in SQLite or in the cache.
        store.begin().unwrap();
        store.save_message(&row(8), &doc(8, "h")).unwrap();
        store.save_message(&row(1), &doc(1, "rolled back")).unwrap();
        store.rollback().unwrap();
        assert_eq!(
            store.load_message(Snowflake(1)).unwrap().unwrap().doc,
            doc(1, "a, again")
        );
        assert!(store.load_message(Snowflake(8)).unwrap().is_none());
        dump(&store)
    };
    let expected = run(0);
    assert_eq!(expected.len(), 6 + 6);
    assert_eq!(run(2), expected);
    assert_eq!(run(4096), expected);
}

#[test]
fn off_remembers_nothing() {
    let mut recent = Recent::default();
    assert!(recent.put(Snowflake(1), Some(message(1))).is_empty());
    assert!(matches!(recent.get(Snowflake(1)), Known::Unknown));
}

/// The columns of issue 11 (`reply_to`, `used_buttons`, `rated_by`), a start completed by the
/// final that replies to it, and a rating: with the cache off, on, and so small that entries
/// leave it mid-batch, every read the pipeline does gives the same answer, and the database
/// ends the same. (Debug builds also check each answer the cache gives against SQLite.)
#[test]
fn replies_ratings_and_outcomes_read_the_same_through_the_cache() {
    let start = |id: u64| MessageRow {
        kind: "progress".to_string(),
        job_uuid: Some("0f0e0d0c-0b0a-0908-0706-050403020100".to_string()),
        user_id: Some(Snowflake(3)),
        outcome: Some("running"),
        ..row(id)
    };
    let grid = |id: u64, buttons: &str| MessageRow {
        user_id: Some(Snowflake(3)),
        job_uuid: Some("0f0e0d0c-0b0a-0908-0706-050403020100".to_string()),
        reply_to: Some(Snowflake(10)),
        used_buttons: Some(buttons.to_string()),
        prompt_norm: Some("prompt 10".to_string()),
        ..row(id)
    };
    let rating = MessageRow {
        kind: "rating".to_string(),
        reply_to: Some(Snowflake(11)),
        prompt_norm: None,
        ..row(12)
    };
    let run = |capacity: usize| {
        let mut store = Store::open_in_memory().unwrap();
        store.keep_recent(capacity);
        let mut answers = Vec::new();
        let mut read = |store: &Store, step: &str| {
            for id in [10, 11, 12, 13].map(Snowflake) {
                answers.push(format!(
                    "{step} {id}: {:?} {:?} {:?} {:?} {:?}",
                    store.progress_row(id).unwrap(),
                    store.reply_target(id).unwrap(),
                    store.reply_target_of(id).unwrap(),
                    store.child_facts(id).unwrap(),
                    store.has_seen(id).unwrap(),
                ));
            }
        };
        store.begin().unwrap();
        for id in [10, 11, 12, 13] {
            assert!(store.load_message(Snowflake(id)).unwrap().is_none());
        }
        store.save_message(&start(10), &doc(10, "start")).unwrap();
        read(&store, "start");
        store
            .save_message(&grid(11, "upsample::1"), &doc(11, "grid"))
            .unwrap();
        store
            .set_outcome(Snowflake(10), "completed", Some(Snowflake(11)))
            .unwrap();
        read(&store, "grid");
        store.save_message(&rating, &doc(12, "rating")).unwrap();
        store.set_rated(Snowflake(11), Snowflake(12)).unwrap();
        store.set_rated(Snowflake(13), Snowflake(12)).unwrap(); // not stored: nothing
        read(&store, "rated");
        // Edits: new used buttons (no indexed column changes), the start edited again (its
        // settled outcome stays), a deletion of the rating.
        store
            .save_message(&grid(11, "upsample::1 upsample::2"), &doc(11, "grid, edited"))
            .unwrap();
        store.save_message(&start(10), &doc(10, "start, edited")).unwrap();
        store.mark_deleted(Snowflake(12), Some(Snowflake(7)), 9).unwrap();
        read(&store, "edited");
        store.commit().unwrap();
        store.begin().unwrap();
        read(&store, "committed");
        // The same outcome again writes nothing; another final does.
        store
            .set_outcome(Snowflake(10), "completed", Some(Snowflake(11)))
            .unwrap();
        store.set_outcome(Snowflake(10), "unknown", None).unwrap();
        store
            .save_message(
                &MessageRow {
                    reply_to: None,
                    ..grid(11, "")
                },
                &doc(11, "grid, again"),
            )
            .unwrap();
        read(&store, "again");
        store.commit().unwrap();
        (answers, dump(&store))
    };
    let expected = run(0);
    let replies_to_the_start = format!("{:?}", Some(Snowflake(10)));
    assert!(expected
        .0
        .iter()
        .any(|answer| answer.contains(&replies_to_the_start)));
    assert!(expected.1.iter().any(|row| row.contains("Integer(12)")));
    assert_eq!(run(4096), expected);
    assert_eq!(run(2), expected);
}
