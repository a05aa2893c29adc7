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
        let mut stmt = store.conn.prepare(sql).unwrap();
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
