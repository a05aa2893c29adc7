//! Every fixture message is a valid serenity `Message` (serenity turns an undecodable
//! dispatch into a silent `Event::Unknown`), and the live path (serenity's model serialized
//! back and made into an event by the core, as the gateway handler does) parses to exactly
//! what replay parses.

mod common;

use mjlink::ingest::gateway::event_from_serenity;
use mjlink_core::event::{Event, Line};
use mjlink_core::parse::{parse, BotIds};
use mjlink_core::wire::Message;

#[test]
fn fixture_messages_decode_in_serenity_and_parse_the_same() {
    let bots = BotIds::default();
    let mut checked = 0;
    for dir in ["fixtures/real", "fixtures/scenarios"] {
        for entry in std::fs::read_dir(common::root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for (number, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if value["t"] != "MESSAGE_CREATE" {
                    continue;
                }
                let d = &value["d"];
                let ours: Result<Message, _> = serde_json::from_value(d.clone());
                let Ok(ours) = ours else { continue }; // deliberately malformed lines
                if d["webhook_id"] == "" {
                    // A line as discordgo exports it (empty-string ids): not what the gateway
                    // sends, and serenity rejects it; mjlink reads it (formats_2026).
                    continue;
                }
                let theirs: serenity::model::channel::Message = serde_json::from_value(d.clone())
                    .unwrap_or_else(|e| {
                        panic!("{}:{}: serenity cannot decode: {e}", path.display(), number + 1)
                    });
                // Exactly what the gateway handler does with serenity's message.
                let live = match event_from_serenity("MESSAGE_CREATE", &theirs) {
                    Line::Event(event) => match *event {
                        Event::Create { message, .. } => message,
                        other => panic!("not a create: {other:?}"),
                    },
                    other => panic!(
                        "{}:{}: the live path rejects it: {other:?}",
                        path.display(),
                        number + 1
                    ),
                };
                assert_eq!(
                    parse(&live, &bots),
                    parse(&ours, &bots),
                    "{}:{}: live path parses differently",
                    path.display(),
                    number + 1
                );
                assert_eq!(
                    mjlink_core::link::exact_parent(&live),
                    mjlink_core::link::exact_parent(&ours),
                    "{}:{}",
                    path.display(),
                    number + 1
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} messages checked");
}
