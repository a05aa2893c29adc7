//! The live bot end to end: serenity's real client against the fake Discord on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fake_discord::{mj_message, FakeDiscord, Fault};
use mjlink::config::{Config, Secret};
use mjlink::store::Store;
use serde_json::Value;
use tokio::sync::oneshot;

const TOKEN: &str = "test-token.abc";
const WAIT: Duration = Duration::from_secs(30);

fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
}

fn config(fake: &FakeDiscord, db: &Path) -> Config {
    let mut discord = mjlink::config::DiscordConfig {
        api_base: fake.api_base(),
        ..Default::default()
    };
    discord.token = Some(Secret::new(TOKEN));
    Config {
        database_path: db.to_path_buf(),
        discord,
        ..Config::default()
    }
}

/// Runs the bot in this process until the returned sender fires (or is dropped).
fn start_bot(
    config: Config,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), mjlink::bot::BotError>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        mjlink::bot::run(&config, async {
            let _ = stopped.await;
        })
        .await
    });
    (stop, task)
}

fn links(db: &Path) -> String {
    common::links_jsonl(&Store::open(db).unwrap())
}

fn count_seen(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM messages WHERE seen = 1", [], |row| {
        row.get(0)
    })
    .unwrap_or(0)
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fixture_lines(relative: &str) -> Vec<Value> {
    std::fs::read_to_string(common::root().join(relative))
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixture_through_the_gateway_gives_the_same_links_as_replay() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = "fixtures/scenarios/every_format.jsonl";
    let replayed = dir.path().join("replayed.db");
    drop(common::replay_files(&[common::root().join(fixture)], &replayed));
    let expected = links(&replayed);
    assert!(expected.lines().count() > 20);

    let fake = FakeDiscord::start(TOKEN).await;
    let live = dir.path().join("live.db");
    let (stop, task) = start_bot(config(&fake, &live));
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    for line in fixture_lines(fixture) {
        // serenity turns a dispatch it cannot decode into a silent Unknown event: check first.
        let kind = line["t"].as_str().unwrap().to_string();
        if kind == "MESSAGE_CREATE" {
            serde_json::from_value::<serenity::model::channel::Message>(line["d"].clone()).unwrap();
            fake.post(&line["d"]);
        } else {
            fake.dispatch(&kind, line["d"].clone());
        }
    }
    wait_until("the live links to match replay", || links(&live) == expected).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(links(&live), expected);
    assert!(fake
        .requests()
        .iter()
        .all(|request| request.path.starts_with("/api/v10/")));
}

fn grid_and_upscale(channel: u64, n: u64, base_ms: i64) -> (Value, Value) {
    let grid_id = mjlink::snowflake::Snowflake::from_timestamp_ms(base_ms + n as i64 * 60_000).0 + 1;
    let up_id = grid_id + 4096;
    let prompt = format!("prompt number {n}");
    let grid = mj_message(
        grid_id,
        channel,
        &format!("**{prompt}** - <@42> (fast)"),
        Some("u_x_5eed0000-0000-4000-8000-000000000001.png"),
        None,
    );
    let upscale = mj_message(
        up_id,
        channel,
        &format!("**{prompt}** - Image #2 <@42>"),
        Some("u_y.png"),
        Some(&grid),
    );
    (grid, upscale)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_caught_up_with_nothing_lost_or_doubled() {
    trace();
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await;
    let db = dir.path().join("live.db");
    let (stop, task) = start_bot(config(&fake, &db));
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    let channel = 555;
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    for n in 0..5 {
        let (grid, upscale) = grid_and_upscale(channel, n, base);
        fake.post(&grid);
        fake.post(&upscale);
    }
    wait_until("the first 10 messages", || count_seen(&db) == 10).await;

    // The connection drops; messages keep being posted while the bot is away.
    fake.drop_connection();
    for n in 5..15 {
        let (grid, upscale) = grid_and_upscale(channel, n, base);
        fake.store(&grid);
        fake.store(&upscale);
    }
    fake.wait_for("a new session", WAIT, |fake| {
        fake.readies() == 2 && fake.connected()
    })
    .await;
    for n in 15..18 {
        let (grid, upscale) = grid_and_upscale(channel, n, base);
        fake.post(&grid);
        fake.post(&upscale);
    }
    wait_until("all 36 messages", || count_seen(&db) == 36).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    let rows: Vec<Value> = links(&db)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 18, "one link per upscale");
    assert!(rows
        .iter()
        .all(|row| row["signal"] == "reference" && row["status"] == "linked"));
    let history_requests = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/messages?after="))
        .count();
    assert!(history_requests >= 1, "the gap was fetched from history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_honoured() {
    let fake = FakeDiscord::start(TOKEN).await;
    let channel = 777u64;
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    for n in 0..3 {
        let (grid, upscale) = grid_and_upscale(channel, n, base);
        fake.store(&grid);
        fake.store(&upscale);
    }
    fake.inject(Fault::RateLimit(0.4));
    fake.inject(Fault::ServerError);
    fake.inject(Fault::BucketEmpty(0.3));
    let policy = mjlink::rest::RetryPolicy {
        backoff: Duration::from_millis(50),
        ..Default::default()
    };
    let rest = mjlink::rest::Rest::new(&fake.api_base(), Secret::new(TOKEN), policy).unwrap();
    let started = Instant::now();
    let page = rest
        .history_after(
            mjlink::snowflake::Snowflake(channel),
            mjlink::snowflake::Snowflake(0),
            100,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 6);
    assert!(
        page.windows(2)
            .all(|pair| pair[0].message.id < pair[1].message.id),
        "snowflake order"
    );
    // A second request must wait for the emptied bucket to reset.
    rest.history_after(
        mjlink::snowflake::Snowflake(channel),
        mjlink::snowflake::Snowflake(0),
        100,
    )
    .await
    .unwrap();
    let requests = fake.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 500, 200, 200]);
    assert!(
        requests[1].at - requests[0].at >= Duration::from_millis(400),
        "retry_after honoured"
    );
    assert!(
        requests[3].at - requests[2].at >= Duration::from_millis(300),
        "X-RateLimit-Reset-After honoured"
    );
    assert!(started.elapsed() >= Duration::from_millis(750));
    assert!(requests.iter().all(|r| r.authorized));

    let bad = mjlink::rest::Rest::new(&fake.api_base(), Secret::new("wrong"), policy).unwrap();
    let error = bad
        .history_after(
            mjlink::snowflake::Snowflake(channel),
            mjlink::snowflake::Snowflake(0),
            10,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    assert!(!error.to_string().contains("wrong"), "the token is never shown");
}

fn mjlink_bin(fake: &FakeDiscord, db: &Path, token: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mjlink"));
    command
        .current_dir(common::root())
        .env_remove("RUST_LOG")
        .env("MJLINK_DISCORD_TOKEN", token)
        .env("MJLINK_DISCORD_API_BASE", fake.api_base())
        .arg("--db")
        .arg(db)
        .arg("run");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_token_exits_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await;
    let db: PathBuf = dir.path().join("x.db");
    let output = tokio::task::spawn_blocking({
        let mut command = mjlink_bin(&fake, &db, "not-the-token");
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("mjlink: Discord rejected the token"), "{stderr}");
    assert!(!stderr.contains("not-the-token"), "the token leaked: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_intents_exit_with_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await;
    fake.disallow_intents();
    let db: PathBuf = dir.path().join("x.db");
    let output = tokio::task::spawn_blocking({
        let mut command = mjlink_bin(&fake, &db, TOKEN);
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or_default()
            .contains("Message Content intent"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN));
}
