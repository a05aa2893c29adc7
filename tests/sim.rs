//! The simulated Midjourney on the fake Discord, over real loopback sockets: interactions
//! sent with reqwest as Midjourney's web client sends them, the answers read from a minimal
//! gateway client and from channel history. Nothing reaches the internet.
//!
//! Steps are short (20 ms) rather than paused: tokio's paused clock needs its `test-util`
//! feature, which the crate does not enable. Every wait is for a condition; the checks that
//! nothing more happens wait several steps, so a slow machine can only make them pass
//! vacuously, never fail; the order of jobs is decided when requests arrive.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mjlink::store::Store;
use mjlink_core::parse::{self, Action, BotIds, Kind, Origin, Stage};
use mjlink_core::snowflake::Snowflake;
use mjlink_sim::discord::FakeDiscord;
use mjlink_sim::midjourney::{SimMidjourney, SimOptions, UpscalePress, MIDJOURNEY_BOT_ID};
use mjlink_sim::png::SIGNATURE;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const BOT_TOKEN: &str = "sim-bot-token";
const USER_TOKEN: &str = "sim-user-token.for-tests";
const GUILD: u64 = 900;
const CHANNEL: u64 = 901;
/// The simulation's pause between messages in these tests.
const STEP: Duration = Duration::from_millis(20);
/// How long a test waits for something before failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// One gateway dispatch as received.
#[derive(Debug, Clone)]
struct Dispatch {
    event: String,
    data: Value,
    /// The frame exactly as sent, for replaying through mjlink.
    raw: String,
}

/// A minimal gateway client: IDENTIFY, then every dispatch recorded.
#[derive(Clone, Default)]
struct Gateway {
    dispatches: Arc<Mutex<Vec<Dispatch>>>,
}

impl Gateway {
    async fn connect(fake: &FakeDiscord) -> Gateway {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}", fake.gateway))
            .await
            .expect("connect to the fake gateway");
        let hello = socket.next().await.expect("HELLO").expect("HELLO frame");
        assert!(hello.to_text().unwrap().contains("\"op\":10"));
        let identify =
            json!({"op": 2, "d": {"token": format!("Bot {BOT_TOKEN}"), "intents": 33281, "properties": {}}});
        socket.send(WsMessage::Text(identify.to_string())).await.unwrap();
        let gateway = Gateway::default();
        let dispatches = gateway.dispatches.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = socket.next().await {
                let WsMessage::Text(raw) = frame else { continue };
                let payload: Value = serde_json::from_str(&raw).expect("gateway frames are JSON");
                if payload["op"] == 0 && payload["t"] != "READY" {
                    dispatches.lock().unwrap().push(Dispatch {
                        event: payload["t"].as_str().unwrap_or_default().to_string(),
                        data: payload["d"].clone(),
                        raw,
                    });
                }
            }
        });
        let connected = fake.clone();
        wait_until("READY", || connected.connected()).await;
        gateway
    }

    fn all(&self) -> Vec<Dispatch> {
        self.dispatches.lock().unwrap().clone()
    }

    /// The dispatches about messages whose `nonce` is `nonce`, or that descend from one
    /// (updates and deletes of those ids), in order.
    fn of_nonce(&self, nonce: &str) -> Vec<Dispatch> {
        let mut ids = Vec::new();
        self.all()
            .into_iter()
            .filter(|dispatch| {
                let id = dispatch.data["id"].as_str().unwrap_or_default().to_string();
                if dispatch.data["nonce"] == nonce {
                    ids.push(id.clone());
                }
                ids.contains(&id)
            })
            .collect()
    }

    /// The MESSAGE_CREATEs whose content echoes `prompt`.
    fn creates_with(&self, prompt: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|dispatch| dispatch.event == "MESSAGE_CREATE")
            .map(|dispatch| dispatch.data)
            .filter(|data| {
                data["content"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&format!("**{prompt}**"))
            })
            .collect()
    }
}

struct World {
    fake: FakeDiscord,
    sim: SimMidjourney,
    gateway: Gateway,
    http: reqwest::Client,
}

/// Everything the gateway sent, replayed through mjlink's own pipeline into a new database.
fn replayed(world: &World) -> (tempfile::TempDir, std::path::PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("sim.db");
    let lines: Vec<String> = world
        .gateway
        .all()
        .into_iter()
        .map(|dispatch| dispatch.raw)
        .collect();
    drop(common::replay_lines(&lines, Store::open(&database).unwrap()));
    (directory, database)
}

async fn world(options: SimOptions) -> World {
    let fake = FakeDiscord::start(BOT_TOKEN)
        .await
        .expect("start the fake Discord");
    let sim = SimMidjourney::attach(&fake, options);
    let gateway = Gateway::connect(&fake).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    World {
        fake,
        sim,
        gateway,
        http,
    }
}

fn options() -> SimOptions {
    SimOptions {
        user_token: USER_TOKEN.to_string(),
        step: STEP,
        ..SimOptions::default()
    }
}

impl World {
    /// Sends `body` to `POST /api/v9/interactions` with `token`; the status and body.
    async fn interact(&self, token: &str, body: &str) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}/api/v9/interactions", self.fake.api_base()))
            .header("Authorization", token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the fake answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// `/imagine` as Midjourney's web client sends it.
    async fn imagine(&self, prompt: &str, nonce: &str) -> u16 {
        let body = json!({
            "type": 2, "application_id": "936929561302675456", "guild_id": GUILD.to_string(),
            "channel_id": CHANNEL.to_string(), "session_id": "0f3b4cbd3b3a4bd4a34f6bc8d1a1e4a1", "nonce": nonce,
            "data": {"version": "1237876415471554623", "id": "938956540159881230", "name": "imagine", "type": 1,
                     "options": [{"type": 3, "name": "prompt", "value": prompt}],
                     "application_command": {}, "attachments": []}
        });
        self.interact(USER_TOKEN, &body.to_string()).await.0
    }

    /// A button press as Midjourney's web client sends it.
    async fn press(&self, message_id: &str, custom_id: &str, nonce: &str) -> u16 {
        let body = json!({
            "type": 3, "nonce": nonce, "guild_id": GUILD.to_string(), "channel_id": CHANNEL.to_string(),
            "message_flags": 0, "message_id": message_id, "application_id": "936929561302675456",
            "session_id": "0f3b4cbd3b3a4bd4a34f6bc8d1a1e4a1",
            "data": {"component_type": 2, "custom_id": custom_id}
        });
        self.interact(USER_TOKEN, &body.to_string()).await.0
    }

    async fn get_bytes(&self, url: &str) -> (u16, Option<String>, Vec<u8>) {
        let response = self.http.get(url).send().await.expect("the fake answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        (status, content_type, response.bytes().await.unwrap().to_vec())
    }

    /// The first grid that echoes `prompt`, waiting for it.
    async fn grid_of(&self, prompt: &str) -> Value {
        let gateway = self.gateway.clone();
        wait_until("the grid", || {
            gateway
                .creates_with(prompt)
                .iter()
                .any(|message| message["type"] == 0)
        })
        .await;
        self.gateway
            .creates_with(prompt)
            .into_iter()
            .find(|message| message["type"] == 0)
            .unwrap()
    }
}

/// Polls `condition`; fails the test after [`PATIENCE`].
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets `steps` simulation steps pass.
async fn let_steps_pass(steps: u32) {
    tokio::time::sleep(STEP * steps).await;
}

/// Checks that serenity can read the message (else a live bot would never see it) and
/// returns what mjlink's parser makes of it.
fn parsed(message: &Value) -> parse::Parsed {
    serde_json::from_value::<serenity::model::channel::Message>(message.clone())
        .unwrap_or_else(|error| panic!("serenity cannot read {message}: {error}"));
    let wire: mjlink_core::wire::Message = serde_json::from_value(message.clone()).expect("mjlink reads it");
    parse::parse(&wire, &BotIds::default())
}

fn custom_ids(message: &Value) -> Vec<String> {
    message["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|button| button["custom_id"].as_str().map(str::to_string))
        .collect()
}

fn id_of(message: &Value) -> u64 {
    message["id"].as_str().unwrap().parse().unwrap()
}

fn error_title(parsed: &parse::Parsed) -> &str {
    match &parsed.kind {
        Kind::Error(title) => title,
        other => panic!("not an error: {other:?}"),
    }
}

#[tokio::test]
async fn an_imagine_goes_from_start_through_progress_to_a_grid_and_the_start_is_deleted() {
    let world = world(options()).await;
    let prompt = "a red fox in the snow --ar 3:2";
    assert_eq!(world.imagine(prompt, "1200000000000000001").await, 204);
    let gateway = world.gateway.clone();
    wait_until("the start's deletion", || {
        gateway
            .all()
            .iter()
            .any(|dispatch| dispatch.event == "MESSAGE_DELETE")
    })
    .await;

    let events = world.gateway.all();
    let names: Vec<&str> = events.iter().map(|dispatch| dispatch.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "MESSAGE_CREATE",
            "MESSAGE_UPDATE",
            "MESSAGE_UPDATE",
            "MESSAGE_CREATE",
            "MESSAGE_DELETE"
        ]
    );
    let (start, zero, sixty_two, grid, deleted) = (
        &events[0].data,
        &events[1].data,
        &events[2].data,
        &events[3].data,
        &events[4].data,
    );

    // The start: an interaction response to this request.
    assert_eq!(start["type"], 20);
    assert_eq!(start["nonce"], "1200000000000000001");
    assert_eq!(start["webhook_id"], MIDJOURNEY_BOT_ID.to_string());
    assert_eq!(start["interaction"]["name"], "imagine");
    assert_eq!(start["interaction"]["type"], 2);
    assert_eq!(start["interaction"]["user"]["id"], "4242");
    assert_eq!(start["interaction"]["user"]["username"], "demo_user");
    assert_eq!(start["author"]["id"], MIDJOURNEY_BOT_ID.to_string());
    assert_eq!(start["author"]["bot"], true);
    assert_eq!(start["guild_id"], GUILD.to_string());
    assert_eq!(start["channel_id"], CHANNEL.to_string());
    assert_eq!(
        start["content"],
        format!("**{prompt}** - <@4242> (Waiting to start)")
    );
    let start_parsed = parsed(start);
    assert_eq!(
        start_parsed.kind,
        Kind::Progress {
            stage: Stage::Waiting,
            action: None
        }
    );
    assert_eq!(start_parsed.user_id, Some(Snowflake(4242)));

    // Progress: edits of the same message, whole and in order.
    assert_eq!(zero["id"], start["id"]);
    assert_eq!(zero["content"], format!("**{prompt}** - <@4242> (0%) (fast)"));
    assert_eq!(
        parsed(zero).kind,
        Kind::Progress {
            stage: Stage::Percent(0),
            action: None
        }
    );
    assert_eq!(sixty_two["id"], start["id"]);
    assert_eq!(
        sixty_two["content"],
        format!("**{prompt}** - <@4242> (62%) (fast)")
    );
    let progress = parsed(sixty_two);
    assert_eq!(
        progress.kind,
        Kind::Progress {
            stage: Stage::Percent(62),
            action: None
        }
    );
    let job_uuid = progress.job_uuid.clone().expect("the progress names the job");
    assert_eq!(
        sixty_two["attachments"][0]["filename"],
        format!("{job_uuid}_grid_0.webp")
    );
    assert_eq!(
        custom_ids(sixty_two),
        [format!("MJ::CancelJob::ByJobid::{job_uuid}")]
    );
    let edited: Vec<i64> = [zero, sixty_two]
        .iter()
        .map(|message| {
            mjlink_core::wire::parse_time_ms(message["edited_timestamp"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert!(
        Snowflake(id_of(start)).timestamp_ms() < edited[0] && edited[0] < edited[1],
        "edits are ordered: {edited:?}"
    );

    // The grid: a new message with the image and the buttons.
    assert_eq!(grid["type"], 0);
    assert_ne!(grid["id"], start["id"]);
    assert_eq!(grid["content"], format!("**{prompt}** - <@4242> (fast)"));
    let grid_parsed = parsed(grid);
    assert_eq!(grid_parsed.kind, Kind::Grid(Origin::Imagine));
    assert_eq!(grid_parsed.job_uuid.as_deref(), Some(job_uuid.as_str()));
    assert_eq!(grid_parsed.prompt.as_ref().unwrap().text, "a red fox in the snow");
    assert_eq!(grid_parsed.user_id, Some(Snowflake(4242)));
    assert_eq!(grid_parsed.mode, Some(parse::Mode::Fast));
    let mut expected_buttons: Vec<String> = (1..=4)
        .map(|tile| format!("MJ::JOB::upsample::{tile}::{job_uuid}"))
        .collect();
    expected_buttons.push(format!("MJ::JOB::reroll::0::{job_uuid}::SOLO"));
    expected_buttons.extend((1..=4).map(|tile| format!("MJ::JOB::variation::{tile}::{job_uuid}")));
    assert_eq!(custom_ids(grid), expected_buttons);
    assert_eq!(
        Snowflake(id_of(grid)).timestamp_ms(),
        mjlink_core::wire::parse_time_ms(grid["timestamp"].as_str().unwrap()).unwrap(),
        "the timestamp is the id's time"
    );

    // Its image: a real PNG, served at the attachment's link.
    let attachment = &grid["attachments"][0];
    assert_eq!(
        attachment["filename"],
        format!("demo_user_a_red_fox_in_the_snow_ar_3_2_{job_uuid}.png")
    );
    let url = attachment["url"].as_str().unwrap();
    let attachment_id = attachment["id"].as_str().unwrap();
    let expected_prefix = format!(
        "{}/attachments/{CHANNEL}/{attachment_id}/{}?ex=",
        world.fake.api_base(),
        attachment["filename"].as_str().unwrap()
    );
    assert!(url.starts_with(&expected_prefix), "{url}");
    assert!(url.contains("&is=") && url.ends_with("&hm=00"), "{url}");
    let (status, content_type, bytes) = world.get_bytes(url).await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert_eq!(&bytes[..8], &SIGNATURE);
    assert_eq!(attachment["size"], bytes.len());
    assert_eq!(
        mjlink_core::layout::sniff(&bytes).map(|kind| kind.extension()),
        Some("png")
    );

    // The start is gone; history holds the grid alone.
    assert_eq!(
        deleted,
        &json!({"id": start["id"], "channel_id": CHANNEL.to_string(), "guild_id": GUILD.to_string()})
    );
    let history = world.fake.history(CHANNEL);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["id"], grid["id"]);
    assert_eq!(world.sim.imagine_requests(prompt), 1);
    assert_eq!(world.sim.grids().len(), 1);
    assert_eq!(world.sim.running_jobs(), 0);
}

#[tokio::test]
async fn an_upscale_press_gets_a_reply_with_a_new_uuid_and_mjlink_links_it_to_its_grid() {
    let world = world(options()).await;
    let prompt = "a lighthouse at dusk";
    assert_eq!(world.imagine(prompt, "77").await, 204);
    let grid = world.grid_of(prompt).await;
    let grid_id = grid["id"].as_str().unwrap().to_string();
    let grid_uuid = parsed(&grid).job_uuid.unwrap();

    assert_eq!(
        world
            .press(&grid_id, &format!("MJ::JOB::upsample::2::{grid_uuid}"), "78")
            .await,
        204
    );
    let gateway = world.gateway.clone();
    wait_until("the upscale", || {
        gateway
            .creates_with(prompt)
            .iter()
            .any(|message| message["type"] == 19)
    })
    .await;
    let upscale = world
        .gateway
        .creates_with(prompt)
        .into_iter()
        .find(|message| message["type"] == 19)
        .unwrap();
    assert_eq!(upscale["content"], format!("**{prompt}** - Image #2 <@4242>"));
    assert_eq!(
        upscale["message_reference"],
        json!({"channel_id": CHANNEL.to_string(), "message_id": grid_id, "guild_id": GUILD.to_string()})
    );
    assert_eq!(upscale["referenced_message"]["id"], grid["id"]);
    assert_eq!(upscale["referenced_message"]["content"], grid["content"]);
    let upscale_parsed = parsed(&upscale);
    assert_eq!(upscale_parsed.kind, Kind::Result(Action::Upscale));
    assert_eq!(upscale_parsed.tile, Some(2));
    let upscale_uuid = upscale_parsed.job_uuid.clone().unwrap();
    assert_ne!(upscale_uuid, grid_uuid, "an upscale is a new job");
    let filename = upscale["attachments"][0]["filename"].as_str().unwrap();
    assert_eq!(
        filename,
        format!("demo_user_a_lighthouse_at_dusk_{upscale_uuid}.png")
    );
    let (_, _, grid_png) = world
        .get_bytes(grid["attachments"][0]["url"].as_str().unwrap())
        .await;
    let (status, _, upscale_png) = world
        .get_bytes(upscale["attachments"][0]["url"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(&upscale_png[..8], &SIGNATURE);
    assert_ne!(upscale_png, grid_png);

    // Midjourney marks the used button: an edit of the grid, not a new message.
    let gateway = world.gateway.clone();
    let grid_for_wait = grid_id.clone();
    wait_until("the grid's edit", || {
        gateway.all().iter().any(|dispatch| {
            dispatch.event == "MESSAGE_UPDATE" && dispatch.data["id"] == grid_for_wait.as_str()
        })
    })
    .await;
    let edited_grid = world.fake.message(CHANNEL, grid_id.parse().unwrap()).unwrap();
    let u2 = &edited_grid["components"][0]["components"][1];
    assert_eq!(
        (u2["label"].as_str(), u2["style"].as_u64()),
        (Some("U2"), Some(1))
    );
    assert_eq!(parsed(&edited_grid).kind, Kind::Grid(Origin::Imagine));

    // The same U again: Slow Down!, no image.
    assert_eq!(
        world
            .press(&grid_id, &format!("MJ::JOB::upsample::2::{grid_uuid}"), "79")
            .await,
        204
    );
    let gateway = world.gateway.clone();
    wait_until("Slow Down!", || !gateway.of_nonce("79").is_empty()).await;
    let slow_down = world.gateway.of_nonce("79")[0].data.clone();
    assert_eq!(slow_down["type"], 19);
    assert_eq!(slow_down["message_reference"]["message_id"], grid_id.as_str());
    assert_eq!(slow_down["attachments"], json!([]));
    assert_eq!(error_title(&parsed(&slow_down)), "Slow Down!");

    // Unknown grids and buttons that are not simulated are ignored.
    let before = world.gateway.all().len();
    assert_eq!(
        world
            .press(
                "1234567890123456789",
                &format!("MJ::JOB::upsample::3::{grid_uuid}"),
                "80"
            )
            .await,
        204
    );
    assert_eq!(
        world
            .press(&grid_id, &format!("MJ::JOB::variation::1::{grid_uuid}"), "81")
            .await,
        204
    );
    let_steps_pass(5).await;
    assert_eq!(world.gateway.all().len(), before);
    let grid_number: u64 = grid_id.parse().unwrap();
    assert_eq!(
        world.sim.upscale_presses(),
        [
            UpscalePress {
                grid_id: grid_number,
                tile: 2
            },
            UpscalePress {
                grid_id: grid_number,
                tile: 2
            },
            UpscalePress {
                grid_id: 1_234_567_890_123_456_789,
                tile: 3
            },
        ]
    );

    // Through mjlink's own pipeline: the upscale is linked to its grid exactly, the start
    // is completed by the grid.
    let (_directory, database) = replayed(&world);
    let links = common::links_jsonl(&Store::open(&database).unwrap());
    let link: Value = links
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|link| link["child_id"] == upscale["id"])
        .unwrap_or_else(|| panic!("no link for the upscale in {links}"));
    assert_eq!(link["parent_id"], grid["id"]);
    assert_eq!(link["action"], "upscale");
    assert_eq!(link["index"], 2);
    assert_eq!(link["status"], "linked");
    let connection = rusqlite::Connection::open(&database).unwrap();
    let (outcome, final_id): (String, i64) = connection
        .query_row(
            "SELECT outcome, final_id FROM messages WHERE kind = 'progress'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((outcome.as_str(), final_id as u64), ("completed", grid_number));

    // Catch-up sees the same final state over REST: grid (edited), upscale, Slow Down!.
    let response = world
        .http
        .get(format!(
            "{}/api/v10/channels/{CHANNEL}/messages?after=0&limit=100",
            world.fake.api_base()
        ))
        .header("Authorization", format!("Bot {BOT_TOKEN}"))
        .send()
        .await
        .unwrap();
    let page: Vec<Value> = response.json().await.unwrap();
    let mut ids: Vec<&str> = page
        .iter()
        .map(|message| message["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![
        grid_id.as_str(),
        upscale["id"].as_str().unwrap(),
        slow_down["id"].as_str().unwrap(),
    ];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn banned_and_invalid_prompts_get_an_error_embed_instead_of_a_start() {
    let world = world(options()).await;
    for (prompt, nonce, title) in [
        ("a [banned] thing", "501", "Banned prompt detected"),
        ("a cat --chaos 500 [invalid]", "502", "Invalid parameter"),
    ] {
        assert_eq!(world.imagine(prompt, nonce).await, 204);
        let gateway = world.gateway.clone();
        wait_until(title, || !gateway.of_nonce(nonce).is_empty()).await;
        let_steps_pass(10).await;
        let dispatches = world.gateway.of_nonce(nonce);
        assert_eq!(dispatches.len(), 1, "one message, then nothing: {dispatches:?}");
        let message = &dispatches[0].data;
        assert_eq!(message["type"], 20);
        assert_eq!(message["content"], "");
        assert_eq!(message["interaction"]["name"], "imagine");
        assert_eq!(message["embeds"][0]["title"], title);
        assert_eq!(message["embeds"][0]["color"], 16_711_680);
        assert_eq!(error_title(&parsed(message)), title);
        assert_eq!(world.sim.imagine_requests(prompt), 1);
    }
    assert!(world.sim.grids().is_empty());
    assert_eq!(world.sim.running_jobs(), 0);
}

#[tokio::test]
async fn queue_full_refuses_only_the_first_submission_of_a_prompt() {
    let world = world(options()).await;
    let prompt = "busy day [queue-full]";
    assert_eq!(world.imagine(prompt, "601").await, 204);
    let gateway = world.gateway.clone();
    wait_until("Queue full", || !gateway.of_nonce("601").is_empty()).await;
    let refusal = world.gateway.of_nonce("601")[0].data.clone();
    assert_eq!(error_title(&parsed(&refusal)), "Queue full");
    assert_eq!(refusal["embeds"][0]["color"], 16_711_680);
    assert_eq!(refusal["nonce"], "601");

    assert_eq!(world.imagine(prompt, "602").await, 204);
    let grid = world.grid_of(prompt).await;
    assert_eq!(parsed(&grid).kind, Kind::Grid(Origin::Imagine));
    assert_eq!(grid["content"], format!("**{prompt}** - <@4242> (fast)"));
    assert_eq!(world.sim.imagine_requests(prompt), 2);
}

#[tokio::test]
async fn stall_stops_at_zero_percent_only_the_first_time() {
    let world = world(options()).await;
    let prompt = "a slow render [stall]";
    assert_eq!(world.imagine(prompt, "701").await, 204);
    let gateway = world.gateway.clone();
    wait_until("(0%)", || gateway.of_nonce("701").len() == 2).await;
    let_steps_pass(50).await;
    let stalled = world.gateway.of_nonce("701");
    let events: Vec<&str> = stalled.iter().map(|dispatch| dispatch.event.as_str()).collect();
    assert_eq!(events, ["MESSAGE_CREATE", "MESSAGE_UPDATE"], "nothing after (0%)");
    let kept = world
        .fake
        .message(CHANNEL, id_of(&stalled[0].data))
        .expect("the start stays");
    assert_eq!(kept["content"], format!("**{prompt}** - <@4242> (0%) (fast)"));
    assert_eq!(world.sim.running_jobs(), 0, "a stalled job gives its slot back");

    assert_eq!(world.imagine(prompt, "702").await, 204);
    let grid = world.grid_of(prompt).await;
    assert_eq!(parsed(&grid).kind, Kind::Grid(Origin::Imagine));
    assert_eq!(world.sim.imagine_requests(prompt), 2);
}

#[tokio::test]
async fn moderate_deletes_the_start_and_posts_no_grid() {
    let world = world(options()).await;
    let prompt = "something borderline [moderate]";
    assert_eq!(world.imagine(prompt, "801").await, 204);
    let gateway = world.gateway.clone();
    wait_until("the deletion", || {
        gateway
            .of_nonce("801")
            .iter()
            .any(|dispatch| dispatch.event == "MESSAGE_DELETE")
    })
    .await;
    let_steps_pass(10).await;
    let events: Vec<String> = world
        .gateway
        .all()
        .into_iter()
        .map(|dispatch| dispatch.event)
        .collect();
    assert_eq!(
        events,
        [
            "MESSAGE_CREATE",
            "MESSAGE_UPDATE",
            "MESSAGE_UPDATE",
            "MESSAGE_DELETE"
        ]
    );
    assert!(world.fake.history(CHANNEL).is_empty());
    assert!(world.sim.grids().is_empty());

    // mjlink calls it what it is: a failed job.
    let (_directory, database) = replayed(&world);
    let outcome: String = rusqlite::Connection::open(&database)
        .unwrap()
        .query_row(
            "SELECT outcome FROM messages WHERE kind = 'progress'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(outcome, "failed");
}

#[tokio::test]
async fn jobs_beyond_the_running_limit_wait_and_beyond_the_queue_are_refused() {
    // Longer steps: the four requests must arrive before the first job ends.
    let world = world(SimOptions {
        max_running: 2,
        max_queued: 1,
        step: Duration::from_millis(150),
        ..options()
    })
    .await;
    for n in 1..=4 {
        assert_eq!(world.imagine(&format!("job {n}"), &format!("90{n}")).await, 204);
    }
    assert_eq!((world.sim.running_jobs(), world.sim.queued_jobs()), (2, 1));
    for n in 1..=3 {
        world.grid_of(&format!("job {n}")).await;
    }
    let_steps_pass(10).await;

    // Job 4: refused at once.
    let refused = world.gateway.of_nonce("904");
    assert_eq!(refused.len(), 1);
    assert_eq!(error_title(&parsed(&refused[0].data)), "Queue full");
    // Job 3: told it is queued, started only once a slot was free.
    let third = world.gateway.of_nonce("903");
    assert_eq!(error_title(&parsed(&third[0].data)), "Job queued");
    assert_eq!(third[0].data["type"], 20);
    assert_eq!(third[1].data["content"], "**job 3** - <@4242> (Waiting to start)");
    let events = world.gateway.all();
    let position = |predicate: &dyn Fn(&Dispatch) -> bool| events.iter().position(predicate).unwrap();
    let first_grid = position(&|dispatch| dispatch.event == "MESSAGE_CREATE" && dispatch.data["type"] == 0);
    let third_start =
        position(&|dispatch| dispatch.data["content"] == "**job 3** - <@4242> (Waiting to start)");
    assert!(first_grid < third_start, "job 3 starts after a job finished");
    assert_eq!(world.sim.grids().len(), 3);
    assert_eq!((world.sim.running_jobs(), world.sim.queued_jobs()), (0, 0));
    for dispatch in events
        .iter()
        .filter(|dispatch| dispatch.event != "MESSAGE_DELETE")
    {
        parsed(&dispatch.data);
    }
}

#[tokio::test]
async fn wrong_tokens_get_401_and_malformed_requests_400_and_nothing_happens() {
    let world = world(options()).await;
    let good = json!({
        "type": 2, "application_id": "936929561302675456", "guild_id": "900", "channel_id": "901",
        "session_id": "s", "nonce": "1",
        "data": {"version": "1", "id": "2", "name": "imagine", "type": 1,
                 "options": [{"type": 3, "name": "prompt", "value": "never posted"}]}
    })
    .to_string();
    assert_eq!(world.interact("wrong-token", &good).await.0, 401);
    assert_eq!(world.interact(&format!("Bot {BOT_TOKEN}"), &good).await.0, 401);
    assert_eq!(world.interact("", &good).await.0, 401);

    let (status, body) = world.interact(USER_TOKEN, "{\"type\": 2,").await;
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], 50_109);
    for bad in [
        json!([1, 2, 3]),
        json!({"type": 2, "application_id": "936929561302675456", "channel_id": "901", "session_id": "s",
               "data": {"name": "imagine", "options": []}}),
        json!({"type": 3, "application_id": "936929561302675456", "channel_id": "901", "session_id": "s",
               "data": {"component_type": 2, "custom_id": "MJ::JOB::upsample::1::x"}}),
        json!({"type": 2, "application_id": "936929561302675456", "channel_id": "not-an-id", "session_id": "s",
               "data": {"name": "imagine", "options": [{"type": 3, "name": "prompt", "value": "x"}]}}),
    ] {
        let (status, body) = world.interact(USER_TOKEN, &bad.to_string()).await;
        assert_eq!(status, 400, "{bad}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid Form Body"),
            "{error}"
        );
    }

    // Not HTTP at all: 400, and the server keeps serving.
    let mut raw = tokio::net::TcpStream::connect(world.fake.http).await.unwrap();
    raw.write_all(b"GARBAGE\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let mut raw = tokio::net::TcpStream::connect(world.fake.http).await.unwrap();
    raw.write_all(b"POST /api/v9/interactions HTTP/1.1\r\nContent-Length: lots\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");

    // The v10 path is the same endpoint.
    let response = world
        .http
        .post(format!("{}/api/v10/interactions", world.fake.api_base()))
        .header("Authorization", USER_TOKEN)
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);

    let_steps_pass(10).await;
    assert_eq!(
        world.sim.imagine_requests("never posted"),
        1,
        "only the authorised, well-formed one"
    );
    let statuses: Vec<u16> = world
        .fake
        .requests()
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses, [401, 401, 401, 400, 400, 400, 400, 400, 400, 400, 204]);
}

/// What the bot stored: (links to `grid_id` with signal, archived images).
fn bot_progress(database: &std::path::Path, grid_id: u64) -> (i64, i64) {
    let Ok(connection) = rusqlite::Connection::open(database) else {
        return (0, 0);
    };
    let links = connection
        .query_row(
            "SELECT COUNT(*) FROM links WHERE parent_id = ?1",
            [Snowflake(grid_id).to_sql()],
            |row| row.get(0),
        )
        .unwrap_or(0);
    let archived = connection
        .query_row(
            "SELECT COUNT(*) FROM attachments WHERE state = 'archived'",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0);
    (links, archived)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_bot_links_and_archives_what_the_simulation_posts() {
    let directory = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(BOT_TOKEN).await.unwrap();
    let sim = SimMidjourney::attach(&fake, options());
    let database = directory.path().join("live.db");
    let mut discord = mjlink::config::DiscordConfig {
        api_base: fake.api_base(),
        ..Default::default()
    };
    discord.token = Some(mjlink::config::Secret::new(BOT_TOKEN));
    let mut config = mjlink::config::Config {
        database_path: database.clone(),
        discord,
        ..Default::default()
    };
    config.archive.enabled = true;
    config.archive.dir = directory.path().join("archive");
    config.archive.hosts = vec!["127.0.0.1".to_string()];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bot_config = config.clone();
    let bot = tokio::spawn(async move {
        mjlink::ingest::gateway::run(&bot_config, async {
            let _ = stopped.await;
        })
        .await
    });
    fake.wait_for("READY", PATIENCE, |fake| fake.readies() == 1 && fake.connected())
        .await;

    // The demo's path: a user submits, presses two U buttons; the bot watches.
    let world = World {
        fake: fake.clone(),
        sim: sim.clone(),
        gateway: Gateway::default(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    assert_eq!(world.imagine("a paper boat on a pond", "1001").await, 204);
    let watched = sim.clone();
    wait_until("the grid", || !watched.grids().is_empty()).await;
    let grid = sim.grids()[0].clone();
    for tile in [1, 4] {
        let custom_id = format!("MJ::JOB::upsample::{tile}::{}", grid.job_uuid);
        assert_eq!(
            world
                .press(&grid.message_id.to_string(), &custom_id, "1002")
                .await,
            204
        );
    }
    wait_until("two links and three images archived", || {
        bot_progress(&database, grid.message_id) == (2, 3)
    })
    .await;
    stop.send(()).unwrap();
    bot.await.unwrap().unwrap();

    let family: std::collections::BTreeSet<String> = common::files_under(&config.archive.dir)
        .into_iter()
        .filter(|path| path.to_string_lossy().contains(&grid.job_uuid.to_string()))
        .map(|path| path.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for name in ["grid.png", "u1.png", "u4.png"] {
        assert!(family.contains(name), "{name} in {family:?}");
    }
}

#[tokio::test]
async fn the_fakes_update_merges_into_the_stored_message_and_delete_removes_it() {
    let world = world(options()).await;
    let message = common::fake_discord::mj_message(
        Snowflake::from_timestamp_ms(1_714_521_600_000).0,
        CHANNEL,
        "**x** - <@5> (fast)",
        Some("u_x.png"),
        None,
    );
    world.fake.post(&message);
    world.fake.update(
        &json!({"id": message["id"], "channel_id": CHANNEL.to_string(), "content": "edited",
                              "edited_timestamp": "2024-05-01T00:00:01.000000+00:00"}),
    );
    world
        .fake
        .update(&json!({"id": "1", "channel_id": CHANNEL.to_string(), "content": "never stored"}));
    world.fake.delete(CHANNEL, id_of(&message));
    let gateway = world.gateway.clone();
    wait_until("four dispatches", || gateway.all().len() == 4).await;
    let events = world.gateway.all();
    let update = &events[1].data;
    assert_eq!(events[1].event, "MESSAGE_UPDATE");
    assert_eq!(update["content"], "edited");
    assert_eq!(
        update["attachments"], message["attachments"],
        "the other fields come along"
    );
    assert_eq!(
        events[2].data,
        json!({"id": "1", "channel_id": CHANNEL.to_string(), "content": "never stored"})
    );
    assert_eq!(
        events[3].data,
        json!({"id": message["id"], "channel_id": CHANNEL.to_string(), "guild_id": "900"})
    );
    assert!(
        world.fake.history(CHANNEL).is_empty(),
        "deleted, and the unknown update not stored"
    );

    world
        .fake
        .serve_file("/files/a.bin", vec![1, 2, 3], "application/octet-stream");
    let (status, content_type, bytes) = world
        .get_bytes(&format!("{}/files/a.bin?ex=1", world.fake.api_base()))
        .await;
    assert_eq!(
        (status, content_type.as_deref(), bytes),
        (200, Some("application/octet-stream"), vec![1, 2, 3])
    );
    let (status, _, _) = world
        .get_bytes(&format!("{}/files/missing.bin", world.fake.api_base()))
        .await;
    assert_eq!(
        status, 401,
        "anything else is the bot API, which wants the bot token"
    );
}
