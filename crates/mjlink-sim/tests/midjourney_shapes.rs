//! The simulated Midjourney's messages pinned against the strings of
//! `shared/docs/midjourney-on-discord.md`: the 2023 shape (sections 2-4, the default) and the
//! 2026 shape of section 9 (`SimOptions::shapes_2026`). Over real loopback sockets: an
//! interaction posted to the fake Discord, every dispatch read from its gateway.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use mjlink_sim::discord::FakeDiscord;
use mjlink_sim::midjourney::{SimMidjourney, SimOptions, SUBTEXT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const BOT_TOKEN: &str = "shapes-bot-token";
const USER_TOKEN: &str = "shapes-user-token";
const GUILD: u64 = 900;
const CHANNEL: u64 = 901;
const USER: u64 = 4242;
const PATIENCE: Duration = Duration::from_secs(30);

/// Every dispatch the fake sent: (event, data).
type Dispatches = Arc<Mutex<Vec<(String, Value)>>>;

struct World {
    fake: FakeDiscord,
    _sim: SimMidjourney,
    dispatches: Dispatches,
}

async fn world(shapes_2026: bool) -> World {
    let fake = FakeDiscord::start(BOT_TOKEN).await.unwrap();
    let sim = SimMidjourney::attach(
        &fake,
        SimOptions {
            user_token: USER_TOKEN.to_string(),
            user_id: USER,
            step: Duration::from_millis(20),
            shapes_2026,
            ..SimOptions::default()
        },
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}", fake.gateway))
        .await
        .unwrap();
    socket.next().await.unwrap().unwrap(); // HELLO
    let identify =
        json!({"op": 2, "d": {"token": format!("Bot {BOT_TOKEN}"), "intents": 33281, "properties": {}}});
    socket.send(WsMessage::Text(identify.to_string())).await.unwrap();
    let dispatches = Dispatches::default();
    let sink = dispatches.clone();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = socket.next().await {
            let WsMessage::Text(raw) = frame else { continue };
            let payload: Value = serde_json::from_str(&raw).unwrap();
            if payload["op"] == 0 && payload["t"] != "READY" {
                let event = payload["t"].as_str().unwrap_or_default().to_string();
                sink.lock().unwrap().push((event, payload["d"].clone()));
            }
        }
    });
    let world = World {
        fake,
        _sim: sim,
        dispatches,
    };
    world.wait("READY", |w| w.fake.connected()).await;
    world
}

impl World {
    async fn wait(&self, what: &str, condition: impl Fn(&World) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !condition(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn all(&self) -> Vec<(String, Value)> {
        self.dispatches.lock().unwrap().clone()
    }

    /// The position and data of the first dispatch of `event` that `select` accepts.
    fn find(&self, event: &str, select: impl Fn(&Value) -> bool) -> Option<(usize, Value)> {
        self.all()
            .into_iter()
            .enumerate()
            .find(|(_, (e, d))| e == event && select(d))
            .map(|(i, (_, d))| (i, d))
    }

    /// Posts an interaction body to `POST /api/v9/interactions` with the user token; the status.
    async fn interact(&self, body: Value) -> u16 {
        let body = body.to_string();
        let mut stream = tokio::net::TcpStream::connect(self.fake.http).await.unwrap();
        let request = format!(
            "POST /api/v9/interactions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {USER_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.split(' ').nth(1).unwrap().parse().unwrap()
    }

    async fn imagine(&self, prompt: &str, nonce: &str) {
        let status = self
            .interact(json!({
                "type": 2, "application_id": "936929561302675456", "guild_id": GUILD.to_string(),
                "channel_id": CHANNEL.to_string(), "session_id": "s", "nonce": nonce,
                "data": {"version": "1", "id": "2", "name": "imagine", "type": 1,
                         "options": [{"type": 3, "name": "prompt", "value": prompt}]}
            }))
            .await;
        assert_eq!(status, 204);
    }

    async fn press(&self, message_id: &str, custom_id: &str, nonce: &str) {
        let status = self
            .interact(json!({
                "type": 3, "nonce": nonce, "guild_id": GUILD.to_string(), "channel_id": CHANNEL.to_string(),
                "message_flags": 0, "message_id": message_id, "application_id": "936929561302675456",
                "session_id": "s", "data": {"component_type": 2, "custom_id": custom_id}
            }))
            .await;
        assert_eq!(status, 204);
    }

    /// Runs one `/imagine` to its end: (start, its updates, grid, position of the grid's
    /// create, position of the start's delete).
    async fn one_job(&self, prompt: &str, nonce: &str) -> (Value, Vec<Value>, Value, usize, usize) {
        self.imagine(prompt, nonce).await;
        let echo = format!("**{prompt}** - <@{USER}> (fast)");
        self.wait("the grid", |w| {
            w.find("MESSAGE_CREATE", |d| {
                d["content"].as_str().unwrap_or("").starts_with(&echo)
            })
            .is_some()
        })
        .await;
        let (_, start) = self
            .find("MESSAGE_CREATE", |d| d["nonce"] == nonce && d["type"] == 20)
            .unwrap();
        let start_id = start["id"].clone();
        self.wait("the start's deletion", |w| {
            w.find("MESSAGE_DELETE", |d| d["id"] == start_id).is_some()
        })
        .await;
        let (grid_at, grid) = self
            .find("MESSAGE_CREATE", |d| {
                d["content"].as_str().unwrap_or("").starts_with(&echo)
            })
            .unwrap();
        let (delete_at, _) = self.find("MESSAGE_DELETE", |d| d["id"] == start_id).unwrap();
        let updates = self
            .all()
            .into_iter()
            .filter(|(e, d)| e == "MESSAGE_UPDATE" && d["id"] == start_id)
            .map(|(_, d)| d)
            .collect();
        (start, updates, grid, grid_at, delete_at)
    }
}

fn custom_ids(message: &Value) -> Vec<String> {
    message["components"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
                .filter_map(|button| button["custom_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The job UUID at the end of an image's file name.
fn uuid_of(message: &Value) -> String {
    let name = message["attachments"][0]["filename"].as_str().unwrap();
    let stem = name.strip_suffix(".png").unwrap();
    stem[stem.len() - 36..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2026_grid_replies_to_its_own_start_with_the_nonce_and_the_second_line() {
    let world = world(true).await;
    let prompt = "a red fox in the snow --ar 3:2 --v 7";
    let (start, updates, grid, grid_at, delete_at) = world.one_job(prompt, "2026001").await;
    let start_id = start["id"].as_str().unwrap();

    // Section 2: the start, as in 2023.
    assert_eq!(start["type"], 20);
    assert_eq!(start["nonce"], "2026001");
    assert_eq!(start["interaction"]["name"], "imagine");
    assert_eq!(
        start["content"],
        format!("**{prompt}** - <@{USER}> (Waiting to start)")
    );

    // Section 9: every progress edit names the job UUID the grid will have.
    let uuid = uuid_of(&grid);
    let cancel = format!("MJ::CancelJob::ByJobid::{uuid}");
    assert_eq!(updates.len(), 2);
    assert_eq!(
        updates[0]["content"],
        format!("**{prompt}** - <@{USER}> (0%) (fast)")
    );
    assert_eq!(
        updates[1]["content"],
        format!("**{prompt}** - <@{USER}> (62%) (fast)")
    );
    for update in &updates {
        assert_eq!(custom_ids(update), vec![cancel.clone()]);
    }
    assert_eq!(
        updates[1]["attachments"][0]["filename"],
        format!("{uuid}_grid_0.webp")
    );

    // Section 9: the grid is a reply to its own start, as the start was then.
    assert_eq!(grid["type"], 19);
    assert_eq!(grid["message_reference"]["message_id"], start_id);
    assert_eq!(grid["message_reference"]["channel_id"], CHANNEL.to_string());
    assert_eq!(grid["message_reference"]["guild_id"], GUILD.to_string());
    assert_eq!(grid["referenced_message"]["id"], start_id);
    assert_eq!(grid["referenced_message"]["content"], updates[1]["content"]);
    assert_eq!(grid["nonce"], "2026001");
    assert_eq!(
        grid["content"],
        format!(
            "**{prompt}** - <@{USER}> (fast)\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)"
        )
    );
    assert!(SUBTEXT.starts_with("\n-# "));
    for n in 1..=4 {
        assert!(custom_ids(&grid).contains(&format!("MJ::JOB::upsample::{n}::{uuid}")));
    }
    // Section 2: the start is deleted after the grid.
    assert!(delete_at > grid_at);

    // An upscale replies to the grid and carries the press's nonce (section 9).
    let grid_id = grid["id"].as_str().unwrap();
    world
        .press(grid_id, &format!("MJ::JOB::upsample::2::{uuid}"), "2026002")
        .await;
    let echo = format!("**{prompt}** - Image #2 <@{USER}>");
    world
        .wait("the upscale", |w| {
            w.find("MESSAGE_CREATE", |d| d["content"] == echo).is_some()
        })
        .await;
    let (_, upscale) = world.find("MESSAGE_CREATE", |d| d["content"] == echo).unwrap();
    assert_eq!(upscale["type"], 19);
    assert_eq!(upscale["message_reference"]["message_id"], grid_id);
    assert_eq!(upscale["referenced_message"]["id"], grid_id);
    assert_eq!(upscale["nonce"], "2026002");
    assert_ne!(uuid_of(&upscale), uuid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_grid_has_the_2023_shape() {
    let world = world(false).await;
    let prompt = "a red fox in the snow --ar 3:2 --v 7";
    let (start, updates, grid, grid_at, delete_at) = world.one_job(prompt, "2023001").await;

    assert_eq!(start["type"], 20);
    assert_eq!(
        start["content"],
        format!("**{prompt}** - <@{USER}> (Waiting to start)")
    );
    // The (0%) edit carries no button; the later one the preview and the Cancel button.
    assert_eq!(updates.len(), 2);
    assert!(custom_ids(&updates[0]).is_empty());
    let uuid = uuid_of(&grid);
    assert_eq!(
        custom_ids(&updates[1]),
        vec![format!("MJ::CancelJob::ByJobid::{uuid}")]
    );
    // Section 2: a new message of type 0, no reference, no nonce, one line.
    assert_eq!(grid["type"], 0);
    assert!(grid.get("message_reference").is_none());
    assert!(grid.get("referenced_message").is_none());
    assert!(grid.get("nonce").is_none());
    assert_eq!(grid["content"], format!("**{prompt}** - <@{USER}> (fast)"));
    assert!(delete_at > grid_at);
}
