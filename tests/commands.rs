//! The slash commands end to end: the demo's database (3 families, 15 archived images, a
//! queue), the real bot against a fake Discord, INTERACTION_CREATE for each command, and the
//! callback payloads serenity sends back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mjlink::config::{Config, Secret};
use mjlink::store::Store;
use mjlink_core::snowflake::Snowflake;
use mjlink_sim::discord::{FakeDiscord, HttpResponse};
use serde_json::{json, Value};

const TOKEN: &str = "commands-bot-token";
const GUILD: u64 = 900;
const ADMIN: u64 = 5001;
const MEMBER: u64 = 5002;
const ROLE: u64 = 7001;

/// A reply as serenity sent it: its JSON payload and the names of its files.
#[derive(Debug, Clone)]
struct Sent {
    path: String,
    payload: Value,
    files: Vec<String>,
}

fn decode(path: &str, body: &[u8]) -> Sent {
    let text = String::from_utf8_lossy(body).to_string();
    if text.starts_with('{') {
        return Sent {
            path: path.to_string(),
            payload: serde_json::from_str(&text).unwrap(),
            files: Vec::new(),
        };
    }
    // multipart/form-data: the `payload_json` part, and every part with a file name.
    let mut payload = Value::Null;
    let mut files = Vec::new();
    for part in text.split("\r\n--") {
        let Some((head, body)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        if head.contains("name=\"payload_json\"") {
            payload = serde_json::from_str(body.trim_end_matches("\r\n").trim_end_matches("--").trim())
                .unwrap_or(Value::Null);
        }
        if let Some(start) = head.find("filename=\"") {
            let rest = &head[start + 10..];
            files.push(rest[..rest.find('"').unwrap_or(0)].to_string());
        }
    }
    Sent {
        path: path.to_string(),
        payload,
        files,
    }
}

struct World {
    fake: FakeDiscord,
    sent: Arc<Mutex<Vec<Sent>>>,
    registered: Arc<Mutex<Vec<Value>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), mjlink::ingest::gateway::BotError>>>,
    db: std::path::PathBuf,
    grid: Value,
    counter: u64,
    _dir: tempfile::TempDir,
}

async fn world(per_minute: u32, defer_after_ms: u64, extra_prompts: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let quiet: mjlink::demo::Say = Arc::new(|_: &str| {});
    let mut prompts = mjlink::demo::default_prompts();
    prompts.extend((0..extra_prompts).map(|n| format!("another glass lighthouse, number {n}")));
    mjlink::demo::run(dir.path(), &prompts, quiet).await.unwrap();
    let db = dir.path().join("demo.db");

    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let registered = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&registered);
    fake.mount("PUT", &format!("/api/v10/applications/2000/guilds/{GUILD}/commands"), move |_, request| {
        let commands: Vec<Value> = serde_json::from_slice(&request.body).unwrap_or_default();
        let answer: Vec<Value> = commands
            .iter()
            .enumerate()
            .map(|(n, c)| json!({"id": (3000 + n).to_string(), "type": 1, "application_id": "2000", "name": c["name"], "description": c["description"], "version": "1"}))
            .collect();
        log.lock().unwrap().extend(commands);
        HttpResponse::json(200, &Value::from(answer))
    });
    let mut config = Config {
        database_path: db.clone(),
        ..Config::default()
    };
    config.discord.token = Some(Secret::new(TOKEN));
    config.discord.api_base = fake.api_base();
    config.discord.guilds = [Snowflake(GUILD)].into();
    config.archive.enabled = false;
    config.archive.dir = dir.path().join("archive");
    config.commands.queue_users = [Snowflake(ADMIN)].into();
    config.commands.per_user_per_minute = per_minute;
    config.commands.defer_after_ms = defer_after_ms;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        mjlink::ingest::gateway::run(&config, async {
            let _ = stopped.await;
        })
        .await
    });
    let grid = {
        let store = Store::open(&db).unwrap();
        let item = store.queue_items(&[]).unwrap().into_iter().next().unwrap();
        let id = item.grid_message_id.unwrap();
        json!({"id": id.to_string(), "item": item.id})
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while registered.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the commands were never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    World {
        fake,
        sent: Arc::new(Mutex::new(Vec::new())),
        registered,
        stop: Some(stop),
        task: Some(task),
        db,
        grid,
        counter: 0,
        _dir: dir,
    }
}

impl World {
    /// Sends a slash command as `user` and returns what the bot answered (the callback, and
    /// the edit of the original when it deferred).
    async fn command(&mut self, user: u64, roles: &[u64], name: &str, options: Value) -> Vec<Sent> {
        self.interact(
            user,
            roles,
            json!({"type": 2, "data": {"id": "3000", "name": name, "type": 1, "options": options}}),
            10_485_760,
        )
        .await
    }

    /// Sends an interaction (`extra`: its type, data, and anything else) and returns what the
    /// bot answered.
    async fn interact(&mut self, user: u64, roles: &[u64], extra: Value, attachment_limit: u64) -> Vec<Sent> {
        let name = extra["data"]["name"].as_str().unwrap_or("component").to_string();
        self.counter += 1;
        let id = 8000 + self.counter;
        let token = format!("interaction-token-{}", self.counter);
        for (method, path) in [
            ("POST", format!("/api/v10/interactions/{id}/{token}/callback")),
            (
                "PATCH",
                format!("/api/v10/webhooks/2000/{token}/messages/@original"),
            ),
        ] {
            let sent = Arc::clone(&self.sent);
            let recorded_path = path.clone();
            self.fake.mount(method, &path, move |_, request| {
                sent.lock().unwrap().push(decode(&recorded_path, &request.body));
                if method == "POST" {
                    HttpResponse::empty(204)
                } else {
                    HttpResponse::json(200, &json!({
                        "id": "9999", "channel_id": "1", "author": {"id": "1000", "username": "mjlink"},
                        "content": "", "timestamp": "2026-01-01T00:00:00Z", "tts": false, "mention_everyone": false,
                        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0
                    }))
                }
            });
        }
        let roles: Vec<String> = roles.iter().map(u64::to_string).collect();
        let mut interaction = json!({
            "id": id.to_string(), "application_id": "2000", "token": token, "version": 1,
            "locale": "en-US", "entitlements": [], "attachment_size_limit": attachment_limit,
            "channel_id": "1000000000000000001", "guild_id": GUILD.to_string(),
            "member": {"user": {"id": user.to_string(), "username": format!("user{user}")}, "roles": roles,
                       "joined_at": "2025-01-01T00:00:00Z", "deaf": false, "mute": false, "flags": 0},
        });
        for (key, value) in extra.as_object().unwrap() {
            interaction[key] = value.clone();
        }
        let before = self.sent.lock().unwrap().len();
        self.fake.dispatch("INTERACTION_CREATE", interaction);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sent = self.sent.lock().unwrap().clone();
            let mine: Vec<Sent> = sent[before..]
                .iter()
                .filter(|s| s.path.contains(&token))
                .cloned()
                .collect();
            let deferred = mine.first().is_some_and(|s| s.payload["type"] == 5);
            if !mine.is_empty() && (!deferred || mine.len() >= 2) {
                return mine;
            }
            assert!(Instant::now() < deadline, "no answer to /{name}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// The message of an answer (the callback's `data`, or the edit after a deferral) and its
/// files.
fn answer(sent: &[Sent]) -> (Value, Vec<String>) {
    let last = sent.last().unwrap();
    if last.path.contains("/callback") {
        (last.payload["data"].clone(), last.files.clone())
    } else {
        (last.payload.clone(), last.files.clone())
    }
}

fn ephemeral(message: &Value) -> bool {
    message["flags"].as_u64().is_some_and(|flags| flags & 64 != 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_through_discord() {
    let mut world = world(100, 1500, 0).await;
    // Registered per guild: five commands, /queue only for Manage Server by default.
    let registered = world.registered.lock().unwrap().clone();
    let names: Vec<&str> = registered.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lineage", "search", "stats", "export", "queue"]);
    assert_eq!(registered[4]["default_member_permissions"], "32");

    // /lineage of the grid by its link: the family, with the archived images attached.
    let grid = world.grid["id"].as_str().unwrap().to_string();
    let link = format!("https://discord.com/channels/{GUILD}/1000000000000000001/{grid}");
    let sent = world
        .command(
            MEMBER,
            &[],
            "lineage",
            json!([{"name": "message", "type": 3, "value": link}]),
        )
        .await;
    let (message, files) = answer(&sent);
    assert!(!ephemeral(&message));
    let description = message["embeds"][0]["description"].as_str().unwrap();
    for tile in 1..=4 {
        assert!(description.contains(&format!("**U{tile}**")), "{description}");
    }
    assert_eq!(description.matches("by reference").count(), 4, "{description}");
    assert_eq!(
        files.len(),
        5,
        "the grid and four upscales from the archive: {files:?}"
    );
    assert!(message["content"]
        .as_str()
        .unwrap()
        .contains("the grid and 4 results"));

    // Bad input: another server, an unknown id, not a link at all.
    for (value, expected) in [
        (
            format!("https://discord.com/channels/123/456/{grid}"),
            "another server",
        ),
        ("1234567890123456789".to_string(), "I have no record"),
        ("hello".to_string(), "message link"),
    ] {
        let sent = world
            .command(
                MEMBER,
                &[],
                "lineage",
                json!([{"name": "message", "type": 3, "value": value}]),
            )
            .await;
        let (message, _) = answer(&sent);
        assert!(ephemeral(&message), "{message}");
        assert!(
            message["content"].as_str().unwrap().contains(expected),
            "{message}"
        );
    }

    // /search: newest first; an empty search is refused.
    let sent = world
        .command(
            MEMBER,
            &[],
            "search",
            json!([{"name": "text", "type": 3, "value": "lighthouse glass"}]),
        )
        .await;
    // The two grids with these words (results echo their grid's prompt: not listed again).
    let (message, _) = answer(&sent);
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .starts_with("2 prompts match"),
        "{message}"
    );
    let description = message["embeds"][0]["description"].as_str().unwrap();
    assert_eq!(
        description
            .matches("[jump](https://discord.com/channels/900/")
            .count(),
        2,
        "{description}"
    );
    assert!(
        description.find("--stylize 250").unwrap() < description.find("--v 7 (imagine)").unwrap(),
        "newest first: {description}"
    );
    let sent = world
        .command(
            MEMBER,
            &[],
            "search",
            json!([{"name": "text", "type": 3, "value": "!!"}]),
        )
        .await;
    let (message, _) = answer(&sent);
    assert!(ephemeral(&message) && message["content"].as_str().unwrap().contains("at least one word"));

    // /stats
    let sent = world.command(MEMBER, &[], "stats", json!([])).await;
    let (message, _) = answer(&sent);
    let fields = message["embeds"][0]["fields"].to_string();
    assert!(
        fields.contains("\"Grids\"") && fields.contains("\"value\":\"3\""),
        "{fields}"
    );
    assert!(fields.contains("upscale 12"), "{fields}");
    assert!(fields.contains("archived 15"), "{fields}");
    assert!(fields.contains("done 3, failed 1"), "{fields}");

    // /export as CSV: a file.
    let sent = world
        .command(
            MEMBER,
            &[],
            "export",
            json!([{"name": "format", "type": 3, "value": "csv"}]),
        )
        .await;
    let (message, files) = answer(&sent);
    assert_eq!(files, ["lineage-all.csv"]);
    assert!(
        message["content"].as_str().unwrap().starts_with("12 links"),
        "{message}"
    );

    // /queue: refused to a member, done for the configured user.
    let add = json!([{"name": "add", "type": 1, "options": [{"name": "prompt", "type": 3, "value": "a new prompt --ar 1:1"}]}]);
    let sent = world.command(MEMBER, &[ROLE], "queue", add.clone()).await;
    let (message, _) = answer(&sent);
    assert!(
        ephemeral(&message)
            && message["content"]
                .as_str()
                .unwrap()
                .contains("may drive the queue"),
        "{message}"
    );
    let sent = world.command(ADMIN, &[], "queue", add).await;
    let (message, _) = answer(&sent);
    assert!(
        message["content"].as_str().unwrap().starts_with("Queued `"),
        "{message}"
    );
    let sent = world
        .command(
            ADMIN,
            &[],
            "queue",
            json!([{"name": "pause", "type": 1, "options": []}]),
        )
        .await;
    assert!(answer(&sent).0["content"].as_str().unwrap().contains("paused"));
    assert!(Store::open(&world.db).unwrap().queue_paused().unwrap());
    let sent = world
        .command(
            ADMIN,
            &[],
            "queue",
            json!([{"name": "list", "type": 1, "options": []}]),
        )
        .await;
    let content = answer(&sent).0["content"].as_str().unwrap().to_string();
    assert!(content.starts_with("The queue is paused."), "{content}");
    assert!(content.contains("a new prompt --ar 1:1"), "{content}");
    let item = world.grid["item"].as_str().unwrap()[..8].to_string();
    let sent = world
        .command(
            ADMIN,
            &[],
            "queue",
            json!([{"name": "show", "type": 1, "options": [{"name": "id", "type": 3, "value": item}]}]),
        )
        .await;
    assert!(answer(&sent).0["content"]
        .as_str()
        .unwrap()
        .contains("status:    done"));
    let sent = world
        .command(
            ADMIN,
            &[],
            "queue",
            json!([{"name": "cancel", "type": 1, "options": [{"name": "id", "type": 3, "value": item}]}]),
        )
        .await;
    let (message, _) = answer(&sent);
    assert!(
        ephemeral(&message)
            && message["content"]
                .as_str()
                .unwrap()
                .contains("had already finished")
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_going_too_fast_is_told_to_wait() {
    let mut world = world(2, 1500, 0).await;
    for _ in 0..2 {
        let sent = world.command(MEMBER, &[], "stats", json!([])).await;
        assert!(!ephemeral(&answer(&sent).0));
    }
    let sent = world.command(MEMBER, &[], "stats", json!([])).await;
    let (message, _) = answer(&sent);
    assert!(ephemeral(&message));
    assert!(
        message["content"].as_str().unwrap().contains("going too fast"),
        "{message}"
    );
    // Another user is not affected.
    let sent = world.command(ADMIN, &[], "stats", json!([])).await;
    assert!(!ephemeral(&answer(&sent).0));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_are_deferred_big_ones_trimmed_and_search_pages_with_buttons() {
    // Every answer counts as slow: deferred, then edited in.
    let mut world = world(100, 0, 6).await;
    let grid = world.grid["id"].as_str().unwrap().to_string();
    let sent = world
        .command(
            MEMBER,
            &[],
            "lineage",
            json!([{"name": "message", "type": 3, "value": grid}]),
        )
        .await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].payload["type"], 5, "deferred first");
    assert!(sent[1].path.ends_with("/messages/@original"));
    assert_eq!(sent[1].files.len(), 5);

    // An attachment limit of 30 KiB: the grid (48 KiB) does not fit, upscales (12 KiB) do,
    // two at most; the rest is said in a note, not an error. (Deferred: the files come with
    // the edit.)
    let options = json!([{"name": "message", "type": 3, "value": grid}]);
    let sent = world
        .interact(
            MEMBER,
            &[],
            json!({"type": 2, "data": {"id": "3000", "name": "lineage", "type": 1, "options": options}}),
            30 * 1024,
        )
        .await;
    let (message, files) = answer(&sent);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .contains("3 file(s) not attached"),
        "{message}"
    );

    // Eight grids match: two pages, and the next one through its button, updating the
    // message in place.
    let sent = world
        .command(
            MEMBER,
            &[],
            "search",
            json!([{"name": "text", "type": 3, "value": "lighthouse glass"}]),
        )
        .await;
    let (first, _) = answer(&sent);
    assert!(
        first["content"].as_str().unwrap().starts_with("8 prompts match"),
        "{first}"
    );
    assert_eq!(
        first["components"][0]["components"][1]["custom_id"],
        "search:1:-:-:-:lighthouse glass"
    );
    let message_json = json!({
        "id": "9999", "channel_id": "1000000000000000001", "author": {"id": "1000", "username": "mjlink"},
        "content": "", "timestamp": "2026-01-01T00:00:00Z", "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0
    });
    let sent = world
        .interact(
            MEMBER,
            &[],
            json!({"type": 3, "message": message_json, "data": {"custom_id": "search:1:-:-:-:lighthouse glass", "component_type": 2}}),
            10_485_760,
        )
        .await;
    let callback = &sent[0].payload;
    assert_eq!(callback["type"], 7, "an update of the message: {callback}");
    let content = callback["data"]["content"].as_str().unwrap();
    assert!(content.contains("page 2 of 2"), "{content}");
    let description = callback["data"]["embeds"][0]["description"].as_str().unwrap();
    assert!(description.starts_with("**6.**"), "{description}");
    assert_eq!(description.matches("[jump]").count(), 3, "{description}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_can_be_registered_globally() {
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let registered = Arc::new(Mutex::new(Vec::<Value>::new()));
    let log = Arc::clone(&registered);
    fake.mount("PUT", "/api/v10/applications/2000/commands", move |_, request| {
        let commands: Vec<Value> = serde_json::from_slice(&request.body).unwrap_or_default();
        let answer: Vec<Value> = commands
            .iter()
            .map(|c| json!({"id": "3000", "type": 1, "application_id": "2000", "name": c["name"], "description": c["description"], "version": "1"}))
            .collect();
        log.lock().unwrap().extend(commands);
        HttpResponse::json(200, &Value::from(answer))
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        database_path: dir.path().join("g.db"),
        ..Config::default()
    };
    config.discord.token = Some(Secret::new(TOKEN));
    config.discord.api_base = fake.api_base();
    config.archive.enabled = false;
    config.commands.global = true;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        mjlink::ingest::gateway::run(&config, async {
            let _ = stopped.await;
        })
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while registered.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "not registered globally");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fake.requests().iter().all(|r| !r.path.contains("/guilds/")));
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
