//! The live path takes the gateway's raw frames (as the relay received them), not serenity's
//! typed model: every fixture frame fed to it gives what replay gives, and what serenity
//! 0.12.5 loses (a whole dispatch it cannot deserialize, fields it does not model) is kept.
//! End to end, through serenity's real client and the relay, in `tests/live.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::serenity_loses;
use mjlink::config::{DiscordConfig, Secret};
use mjlink::ingest::live::{Live, Watch};
use mjlink::ingest::pipeline::{Pipeline, PipelineConfig};
use mjlink::ingest::writer::{Writer, WriterHooks};
use mjlink::rest::{Rest, RetryPolicy};
use mjlink::store::Store;
use mjlink_core::parse::BotIds;
use mjlink_core::snowflake::Snowflake;
use serde_json::{json, Value};

/// Feeds `frames` to the live path exactly as the gateway handler does (every channel
/// watched, direct messages too), into the database at `db`.
async fn live_into(db: &Path, frames: &[Vec<u8>]) -> Store {
    let writer = Writer::spawn(
        Pipeline::new(Store::open(db).unwrap(), PipelineConfig::default()),
        WriterHooks::default(),
    );
    let discord = DiscordConfig {
        direct_messages: true,
        ..DiscordConfig::default()
    };
    // Nothing is looked up when every channel is watched: the address is never reached.
    let rest = Rest::new(
        "http://127.0.0.1:9",
        Secret::new("unused"),
        RetryPolicy::default(),
    )
    .unwrap();
    let watch = Arc::new(Watch::new(discord, Arc::new(rest)));
    let mut live = Live::new(writer.handle(), watch, BotIds::default());
    for frame in frames {
        live.take(frame).await;
    }
    drop(live);
    writer.close().await.unwrap();
    Store::open(db).unwrap()
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["fixtures/real", "fixtures/scenarios"] {
        for entry in std::fs::read_dir(common::root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_frames_through_the_live_path_give_what_replay_gives() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (n, file) in fixture_files().iter().enumerate() {
        // Bytes: some fixture lines are deliberately not UTF-8.
        let frames: Vec<Vec<u8>> = std::fs::read(file)
            .unwrap()
            .split(|byte| *byte == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        checked += frames.len();
        let replayed_db = dir.path().join(format!("replayed-{n}.db"));
        let (_, replayed) = common::replay_files(std::slice::from_ref(file), &replayed_db);
        let live_db = dir.path().join(format!("live-{n}.db"));
        let live = live_into(&live_db, &frames).await;
        assert_eq!(
            common::links_jsonl(&live),
            common::links_jsonl(&replayed),
            "{}",
            file.display()
        );
        assert_eq!(
            common::messages_table(&live_db),
            common::messages_table(&replayed_db),
            "{}",
            file.display()
        );
    }
    assert!(checked > 50, "only {checked} frames checked");
}

/// A Midjourney grid as the gateway sends it, with `extra` fields merged in.
fn grid_frame(id: u64, extra: Value) -> Value {
    let mut message = common::fake_discord::mj_message(
        id,
        77,
        "**a lighthouse at dusk --v 7** - <@42> (fast)",
        Some("someone_a_lighthouse_5eed0000-0000-4000-8000-00000000abcd.png"),
        None,
    );
    if let (Some(fields), Value::Object(extra)) = (message.as_object_mut(), extra) {
        fields.extend(extra);
    }
    json!({"op": 0, "t": "MESSAGE_CREATE", "s": 2, "d": message})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_serenity_drops_the_live_path_keeps() {
    let rejected = grid_frame(
        1_300_000_000_000_000_001,
        json!({"components": serenity_loses::row_with_a_components_v2_node()}),
    );
    let error =
        serde_json::from_value::<serenity::model::channel::Message>(rejected["d"].clone()).unwrap_err();
    assert!(error.to_string().contains("Unknown component type 10"), "{error}");

    let metadata = json!({
        "interaction_metadata": serenity_loses::modal_interaction_metadata(&json!("1300000000000000050"))
    });
    let stripped = grid_frame(1_300_000_000_000_000_002, metadata);
    let theirs = serde_json::from_value::<serenity::model::channel::Message>(stripped["d"].clone()).unwrap();
    let back = serde_json::to_value(&theirs).unwrap();
    assert!(back["interaction_metadata"].get("name").is_none(), "{back}");

    let dir = tempfile::tempdir().unwrap();
    let store = live_into(
        &dir.path().join("live.db"),
        &[
            rejected.to_string().into_bytes(),
            stripped.to_string().into_bytes(),
        ],
    )
    .await;
    let kept = store
        .load_message(Snowflake(1_300_000_000_000_000_001))
        .unwrap()
        .expect("stored");
    assert!(kept.doc.message.components.unwrap().0[0]
        .id
        .contains("upsample::1"));
    let kept = store
        .load_message(Snowflake(1_300_000_000_000_000_002))
        .unwrap()
        .expect("stored");
    let metadata = kept.doc.message.interaction_metadata.expect("kept");
    assert_eq!(metadata.name.as_deref(), Some("imagine"));
    assert_eq!(
        metadata
            .triggering_interaction_metadata
            .and_then(|trigger| trigger.interacted_message_id),
        Some(Snowflake(1_300_000_000_000_000_050))
    );
}
