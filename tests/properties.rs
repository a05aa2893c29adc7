//! Property tests: replay is idempotent, exact links do not depend on the order events
//! arrive in, and no input makes the parser or the decoder panic.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;

use mjlink::ingest::replay::{decode_line, Line};
use mjlink::store::Store;
use mjlink_core::parse::{parse, BotIds};

fn fixture_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for name in ["every_format", "heuristics"] {
        let path = common::root().join(format!("fixtures/scenarios/{name}.jsonl"));
        lines.extend(std::fs::read_to_string(path).unwrap().lines().map(str::to_string));
    }
    lines
}

/// child -> (parent, signal) for every exact link.
fn exact_links(store: &Store) -> BTreeMap<String, (Option<String>, String)> {
    let mut out = BTreeMap::new();
    store
        .for_each_link(|export| {
            if let Some(signal) = export.link.decision.signal.filter(|signal| signal.is_exact()) {
                out.insert(
                    export.link.child_id.to_string(),
                    (
                        export.link.decision.parent.map(|p| p.to_string()),
                        signal.as_str().to_string(),
                    ),
                );
            }
            Ok(())
        })
        .unwrap();
    out
}

fn replay_in_memory(lines: &[String]) -> Store {
    common::replay_lines(lines, Store::open_in_memory().unwrap()).1
}

/// Deterministic Fisher-Yates from a seed (proptest picks the seed, and shrinks it).
fn shuffle(lines: &mut [String], mut seed: u64) {
    for index in (1..lines.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let other = (seed >> 33) as usize % (index + 1);
        lines.swap(index, other);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn shuffled_lines_give_the_same_exact_links(seed in any::<u64>()) {
        let lines = fixture_lines();
        let in_order = exact_links(&replay_in_memory(&lines));
        prop_assert!(in_order.len() > 30);
        let mut shuffled = lines.clone();
        shuffle(&mut shuffled, seed);
        let store = replay_in_memory(&shuffled);
        prop_assert_eq!(exact_links(&store), in_order);
    }

    #[test]
    fn replaying_twice_changes_nothing(seed in any::<u64>()) {
        let mut lines = fixture_lines();
        shuffle(&mut lines, seed);
        let (_, store) = common::replay_lines(&lines, Store::open_in_memory().unwrap());
        let once = store.dump().unwrap();
        let (second, store) = common::replay_lines(&lines, store);
        prop_assert_eq!(second.applied, 0);
        prop_assert_eq!(store.dump().unwrap(), once);
    }

    #[test]
    fn parser_never_panics_on_any_content(content in any::<String>(), embeds in proptest::option::of(any::<String>())) {
        let mut message: mjlink_core::wire::Message = serde_json::from_str(
            r#"{"id":"1","author":{"id":"936929561302675456"},"attachments":[{"id":"2","filename":"a_5eed0000-0000-4000-8000-000000000000.png"}]}"#,
        ).unwrap();
        message.content = Some(content);
        if let Some(description) = embeds {
            message.embeds = Some(vec![mjlink_core::wire::Embed { title: Some(description.clone()), description: Some(description), color: Some(15_548_997), ..Default::default() }]);
        }
        let _ = parse(&message, &BotIds::default());
    }

    #[test]
    fn parser_never_panics_on_midjourney_shaped_content(
        prefix in "[ -~]{0,12}",
        prompt in "\\PC{0,40}",
        marker in prop_oneof![Just(""), Just("Image #"), Just("Upscaled ("), Just("Variations (Strong) by"), Just("Pan Left by"), Just("by")],
        tail in "[ -~()%#<@>0-9\\[\\]]{0,40}",
    ) {
        let content = format!("{prefix}**{prompt}** - {marker}{tail}");
        let message = mjlink_core::wire::Message {
            id: mjlink_core::snowflake::Snowflake(1),
            author: Some(mjlink_core::wire::User { id: mjlink_core::snowflake::Snowflake(936_929_561_302_675_456), username: None, bot: Some(true) }),
            content: Some(content),
            ..Default::default()
        };
        let _ = parse(&message, &BotIds::default());
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_line(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_dispatch_shaped_json(t in "(MESSAGE_CREATE|MESSAGE_UPDATE|MESSAGE_DELETE|MESSAGE_DELETE_BULK|X)", d in "\\PC{0,80}") {
        let line = format!(r#"{{"op":0,"t":"{t}","s":1,"d":{d}}}"#);
        if let Line::Event(_) = decode_line(line.as_bytes()) {
            // Decoded: fine. Anything else must be a classified, not a panic.
        }
    }
}
