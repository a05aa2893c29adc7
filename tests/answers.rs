//! The slash commands' answers, called directly on fixture databases (no Discord).

mod common;

use mjlink::commands::answers::{self, Ctx, ExportFormat};
use mjlink::commands::{FileData, Reply};
use mjlink::store::{SearchFilter, Store};
use mjlink_core::snowflake::Snowflake;

fn fixture_db(files: &[&str]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = files.iter().map(|f| common::root().join(f)).collect();
    let (_, store) = common::replay_files(&paths, &dir.path().join("a.db"));
    (dir, store)
}

fn ctx<'a>(store: &'a Store, guild: Option<u64>) -> Ctx<'a> {
    Ctx {
        store,
        guild_id: guild.map(Snowflake),
        now_ms: 1_767_225_600_000,
    }
}

#[test]
fn lineage_of_a_real_upscale_names_its_grid_and_how_it_was_linked() {
    let (_dir, store) = fixture_db(&["fixtures/real/wxapi_upscale_image4.jsonl"]);
    let reply = answers::lineage(&ctx(&store, None), "1128641343909007401").unwrap();
    assert!(!reply.ephemeral, "{reply:?}");
    let embed = &reply.embeds[0];
    assert!(
        embed.title.contains("The spaceship and the airplane collided."),
        "{}",
        embed.title
    );
    let description = &embed.description;
    assert!(
        description.starts_with("**grid** [1128599623762714675]"),
        "{description}"
    );
    assert!(
        description.contains("**U4** [1128641343909007401]"),
        "{description}"
    );
    assert!(
        description.contains("by reference  ◀"),
        "the asked message is marked: {description}"
    );
    // Nothing archived in this database: no files, and no error.
    assert!(reply.files.is_empty());
}

#[test]
fn an_ambiguous_result_says_so_and_lists_the_candidates() {
    let (_dir, store) = fixture_db(&["fixtures/scenarios/heuristics.jsonl"]);
    let reply = answers::lineage(&ctx(&store, None), "1235020614205440026").unwrap();
    let fields = &reply.embeds[0].fields;
    let (name, value, _) = fields
        .iter()
        .find(|(name, _, _)| name == "Ambiguous")
        .expect("an Ambiguous field");
    assert_eq!(name, "Ambiguous");
    assert!(value.contains("does not guess"), "{value}");
    assert_eq!(value.matches(", ").count(), 9, "ten candidates: {value}");
}

#[test]
fn lineage_refuses_other_servers_and_unknown_messages_in_one_sentence() {
    let (_dir, store) = fixture_db(&["fixtures/real/wxapi_upscale_image4.jsonl"]);
    let link = "https://discord.com/channels/111/222/1128641343909007401";
    let reply = answers::lineage(&ctx(&store, Some(999)), link).unwrap();
    assert!(
        reply.ephemeral && reply.content.contains("another server"),
        "{reply:?}"
    );
    let reply = answers::lineage(&ctx(&store, None), "42").unwrap();
    assert!(
        reply.ephemeral && reply.content.starts_with("I have no record of message 42"),
        "{reply:?}"
    );
    for bad in [
        "",
        "https://example.com/channels/1/2/3",
        "https://discord.com/channels/1/2/x",
    ] {
        let reply = answers::lineage(&ctx(&store, None), bad).unwrap();
        assert!(reply.ephemeral, "{bad}: {reply:?}");
        assert_eq!(
            reply.content.matches(". ").count(),
            0,
            "one sentence: {}",
            reply.content
        );
    }
}

#[test]
fn a_search_counts_its_matches_up_to_a_limit_and_says_more_than_beyond_it() {
    let (_dir, store) = fixture_db(&["fixtures/real/wxapi_channel_50.json"]);
    let all = answers::search_page(&store, "向日葵", &SearchFilter::default(), 0, 5)
        .unwrap()
        .unwrap();
    assert!(all.total >= 10 && !all.more, "{all:?}");
    assert_eq!(all.matches(), format!("{} prompts match", all.total));
    // Counted up to 4: "more than 4", the pages of those 4, the page itself unchanged.
    let counted = answers::search_page_counting(&store, "向日葵", &SearchFilter::default(), 0, 2, 4)
        .unwrap()
        .unwrap();
    assert_eq!((counted.total, counted.more, counted.pages), (4, true, 2));
    assert_eq!(counted.matches(), "more than 4 prompts match");
    assert_eq!(counted.hits.len(), 2);
    assert_eq!(counted.hits[..], all.hits[..2]);
    // Exactly as many as counted: no "more".
    let exact = answers::search_page_counting(&store, "向日葵", &SearchFilter::default(), 0, 5, all.total)
        .unwrap()
        .unwrap();
    assert_eq!((exact.total, exact.more), (all.total, false));
}

#[test]
fn search_finds_real_prompts_newest_first_and_filters() {
    let (_dir, store) = fixture_db(&["fixtures/real/wxapi_channel_50.json"]);
    let reply = answers::search(&ctx(&store, None), "向日葵", &SearchFilter::default(), 0).unwrap();
    assert!(reply.content.contains("prompts match"), "{}", reply.content);
    let (hits, total) = store
        .search_prompts("向日葵", &SearchFilter::default(), 0, 100, 1000)
        .unwrap();
    assert!(total >= 10, "{total}");
    assert!(
        hits.windows(2)
            .all(|pair| pair[0].message_id > pair[1].message_id),
        "newest first"
    );
    // A filter on a user nobody is: nothing.
    let nobody = SearchFilter {
        user_id: Some(Snowflake(1)),
        ..SearchFilter::default()
    };
    let reply = answers::search(&ctx(&store, None), "向日葵", &nobody, 0).unwrap();
    assert!(
        reply.content.starts_with("No prompt matches"),
        "{}",
        reply.content
    );
    // FTS syntax in the input is just words.
    let reply = answers::search(
        &ctx(&store, None),
        "NEAR( \"unbalanced OR *",
        &SearchFilter::default(),
        0,
    )
    .unwrap();
    assert!(!reply.ephemeral, "{reply:?}");
    let reply = answers::search(&ctx(&store, None), "  ", &SearchFilter::default(), 0).unwrap();
    assert!(reply.ephemeral);
}

#[test]
fn stats_and_export_on_the_generated_channel() {
    let (_dir, store) = fixture_db(&["fixtures/generated/channel_mix_1500.jsonl"]);
    let reply = answers::stats(&ctx(&store, None)).unwrap();
    let fields = &reply.embeds[0].fields;
    let value = |name: &str| {
        fields
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| v.clone())
            .unwrap()
    };
    assert!(value("Grids").parse::<i64>().unwrap() > 50);
    assert!(
        value("Links by signal").contains("reference"),
        "{}",
        value("Links by signal")
    );
    assert!(value("Archive").starts_with("archived 0"), "{}", value("Archive"));
    assert_eq!(value("Unknown formats"), "0");
    let reply: Reply = answers::export(&ctx(&store, None), None, ExportFormat::Json).unwrap();
    let FileData::Bytes(bytes) = &reply.files[0].data else {
        panic!()
    };
    let rows: Vec<serde_json::Value> = serde_json::from_slice(bytes).unwrap();
    assert_eq!(
        rows.len() as u64,
        reply.content.split(' ').next().unwrap().parse::<u64>().unwrap()
    );
    let csv = answers::export(&ctx(&store, None), None, ExportFormat::Csv).unwrap();
    let FileData::Bytes(bytes) = &csv.files[0].data else {
        panic!()
    };
    assert_eq!(
        String::from_utf8_lossy(bytes).lines().count(),
        rows.len() + 1,
        "a header and a row per link"
    );
    let none = answers::export(&ctx(&store, None), Some(Snowflake(5)), ExportFormat::Csv).unwrap();
    assert!(none.ephemeral && none.content.contains("No links in"));
}

/// Format drift in /stats: the scenario's one Midjourney message of no known kind (an
/// `Image #2` result without its image), by its day.
#[test]
fn stats_count_unknown_formats_by_day() {
    let (_dir, store) = fixture_db(&["fixtures/scenarios/every_format.jsonl"]);
    let reply = answers::stats(&ctx(&store, None)).unwrap();
    let (_, value, _) = reply.embeds[0]
        .fields
        .iter()
        .find(|(name, _, _)| name == "Unknown formats")
        .unwrap();
    assert_eq!(value, "1 by day: 2024-05-01 1");
}

/// `/queue show` and `/queue cancel` match ids literally: a wildcard names no item, even when
/// only one exists, and an empty id is refused.
#[test]
fn queue_ids_in_slash_commands_match_literally() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("q.db")).unwrap();
    let items = mjlink::queue::runner::add(
        &mut store,
        &["the only item".to_string()],
        &mjlink::queue::Upscales::parse("1").unwrap(),
        0,
        1_767_225_600_000,
    )
    .unwrap();
    let id = items[0].id.clone();
    for pattern in ["%", "_", "%%", &format!("{}_", &id[..3])] {
        let shown = answers::queue_show(&ctx(&store, None), pattern).unwrap();
        assert!(
            shown.content.starts_with("No queue item has the id"),
            "{pattern:?}: {shown:?}"
        );
        let cancelled = answers::queue_cancel(&mut store, 1_767_225_700_000, pattern).unwrap();
        assert!(
            cancelled.content.starts_with("No queue item has the id"),
            "{pattern:?}: {cancelled:?}"
        );
    }
    for empty in ["", " "] {
        let shown = answers::queue_show(&ctx(&store, None), empty).unwrap();
        assert!(shown.ephemeral && shown.content.contains("empty"), "{shown:?}");
        let cancelled = answers::queue_cancel(&mut store, 1_767_225_700_000, empty).unwrap();
        assert!(
            cancelled.ephemeral && cancelled.content.contains("empty"),
            "{cancelled:?}"
        );
    }
    assert_eq!(
        store.queue_item(&id).unwrap().unwrap().status,
        mjlink::queue::Status::Queued
    );
    let shown = answers::queue_show(&ctx(&store, None), &id[..5]).unwrap();
    assert!(shown.content.contains("the only item"), "{shown:?}");
}
