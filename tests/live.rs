//! The live bot end to end: serenity's real client against the fake Discord on 127.0.0.1.

mod common;

use common::fake_cdn::{self, Cdn};
use common::serenity_loses;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fake_discord::{mj_message, text_channel, thread_channel, FakeDiscord, Fault};
use mjlink::config::{Config, Secret};
use mjlink::ingest::gateway::RunOptions;
use mjlink::store::Store;
use mjlink_core::snowflake::Snowflake;
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
    let mut config = Config {
        database_path: db.to_path_buf(),
        discord,
        ..Config::default()
    };
    // The fake messages point at cdn.discordapp.com: tests never reach it. The archiver's own
    // test turns it back on with a local CDN.
    config.archive.enabled = false;
    config
}

type BotTask = tokio::task::JoinHandle<Result<(), mjlink::ingest::gateway::BotError>>;

/// Runs the bot in this process until the returned sender fires (or is dropped).
fn start_bot(config: Config) -> (oneshot::Sender<()>, BotTask) {
    start_bot_with(config, RunOptions::default())
}

/// [`start_bot`] with run options (a recording...).
fn start_bot_with(config: Config, options: RunOptions) -> (oneshot::Sender<()>, BotTask) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        mjlink::ingest::gateway::run_with(&config, &options, async {
            let _ = stopped.await;
        })
        .await
    });
    (stop, task)
}

/// [`start_bot_with`], once the bot has had its first READY from `fake`.
async fn ready_bot(
    fake: &FakeDiscord,
    config: Config,
    options: RunOptions,
) -> (oneshot::Sender<()>, BotTask) {
    let started = start_bot_with(config, options);
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    started
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

    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let live = dir.path().join("live.db");
    let (stop, task) = start_bot(config(&fake, &live));
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    for line in fixture_lines(fixture) {
        let kind = line["t"].as_str().unwrap().to_string();
        if kind == "MESSAGE_CREATE" {
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
    let grid_id = mjlink_core::snowflake::Snowflake::from_timestamp_ms(base_ms + n as i64 * 60_000).0 + 1;
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
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
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
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
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
            mjlink_core::snowflake::Snowflake(channel),
            mjlink_core::snowflake::Snowflake(0),
            100,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 6);
    assert!(
        page.windows(2)
            .all(|pair| pair[0].message().map(|m| m.id) < pair[1].message().map(|m| m.id)),
        "snowflake order"
    );
    // A second request must wait for the emptied bucket to reset.
    rest.history_after(
        mjlink_core::snowflake::Snowflake(channel),
        mjlink_core::snowflake::Snowflake(0),
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
            mjlink_core::snowflake::Snowflake(channel),
            mjlink_core::snowflake::Snowflake(0),
            10,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    assert!(!error.to_string().contains("wrong"), "the token is never shown");
}

/// Runs a command to completion off the async threads.
async fn output_of(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The binary against `fake` with the database `db` and no archiving; the caller adds the
/// command and its arguments.
fn mjlink_against(fake: &FakeDiscord, db: &Path, token: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mjlink"));
    command
        .current_dir(common::root())
        .env_remove("RUST_LOG")
        .env("MJLINK_DISCORD_TOKEN", token)
        .env("MJLINK_DISCORD_API_BASE", fake.api_base())
        .env("MJLINK_ARCHIVE_ENABLED", "false")
        .arg("--db")
        .arg(db);
    command
}

fn mjlink_bin(fake: &FakeDiscord, db: &Path, token: &str) -> std::process::Command {
    let mut command = mjlink_against(fake, db, token);
    command.arg("run");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_token_exits_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
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
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
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

fn processed_creates(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM processed WHERE event = 0", [], |row| {
        row.get(0)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_redelivery_creates_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    fake.allow_resume(true);
    let db = dir.path().join("live.db");
    let (stop, task) = start_bot(config(&fake, &db));
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    for n in 0..4 {
        let (grid, upscale) = grid_and_upscale(888, n, base);
        fake.post(&grid);
        fake.post(&upscale);
    }
    wait_until("8 messages", || count_seen(&db) == 8).await;
    let links_before = links(&db);
    let processed_before = processed_creates(&db);

    // The connection drops; serenity resumes; the fake redelivers events the bot already has.
    fake.drop_connection();
    fake.wait_for("RESUMED", WAIT, |fake| fake.resumes() == 1 && fake.connected())
        .await;
    let (grid, upscale) = grid_and_upscale(888, 9, base);
    fake.post(&grid);
    fake.post(&upscale);
    wait_until("10 messages", || count_seen(&db) == 10).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    assert_eq!(fake.readies(), 1, "a resumed session is not a new one");
    assert_eq!(links(&db).lines().count(), 5);
    assert!(links(&db).starts_with(links_before.trim_end()));
    // One processed entry per message create: the redelivered ones were recognized.
    assert_eq!(processed_creates(&db), processed_before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_known_only_by_reference_is_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db = dir.path().join("live.db");
    let (stop, task) = start_bot(config(&fake, &db));
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let (grid, mut upscale) = grid_and_upscale(999, 1, base);
    fake.store(&grid); // in history, never dispatched
    upscale.as_object_mut().unwrap().remove("referenced_message");
    fake.post(&upscale);
    wait_until("the parent to be fetched", || count_seen(&db) == 2).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    let grid_path = format!("/api/v10/channels/999/messages/{}", grid["id"].as_str().unwrap());
    assert!(fake.requests().iter().any(|r| r.path == grid_path));
    let rows: Vec<Value> = links(&db)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows[0]["parent_id"], grid["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db: PathBuf = dir.path().join("burst.db");
    let mut child = tokio::process::Command::from(mjlink_bin(&fake, &db, TOKEN))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    // A first message so the channel has a cursor to catch up from.
    let (first, _) = grid_and_upscale(4242, 0, base);
    fake.post(&first);
    wait_until("the first message", || count_seen(&db) == 1).await;
    for n in 1..150 {
        let (grid, upscale) = grid_and_upscale(4242, n, base);
        fake.post(&grid);
        fake.post(&upscale);
        if n == 75 {
            let pid = child.id().unwrap() as i32;
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
        }
    }
    let status = tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop");
    let stored_at_stop = count_seen(&db);
    assert!(stored_at_stop > 1);

    // Start again: the catch-up brings the rest, each message exactly once.
    let again = tokio::process::Command::from(mjlink_bin(&fake, &db, TOKEN))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("every message of the burst", || count_seen(&db) == 299).await;
    // Everything may have been stored before the first run stopped: wait for the second to
    // be connected, so that the SIGTERM meets a running bot.
    fake.wait_for("the second READY", WAIT, |fake| {
        fake.readies() == 2 && fake.connected()
    })
    .await;
    let pid = again.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let output = tokio::time::timeout(WAIT, again.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "SIGTERM after the catch-up is a clean stop: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(count_seen(&db), 299);
    assert_eq!(links(&db).lines().count(), 149);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db: PathBuf = dir.path().join("doctor.db");
    let run = |token: &str, base: String| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mjlink"));
        command
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("MJLINK_DISCORD_TOKEN", token)
            .env("MJLINK_DISCORD_API_BASE", base)
            .arg("--db")
            .arg(&db)
            .arg("doctor");
        command
    };
    let good = output_of(run(TOKEN, fake.api_base())).await;
    let text = String::from_utf8(good.stdout).unwrap();
    assert!(good.status.success(), "{text}");
    assert!(
        text.contains("ok   login      the token belongs to mjlink-test"),
        "{text}"
    );
    assert!(text.contains("ok   archive    "), "{text}");
    assert!(!text.contains(TOKEN));

    let bad = output_of(run("wrong-token", fake.api_base())).await;
    let text = String::from_utf8(bad.stdout).unwrap();
    assert!(!bad.status.success());
    assert!(
        text.contains("FAIL login      Discord rejects the token"),
        "{text}"
    );
    assert!(!text.contains("wrong-token"));

    let blocked = {
        // The archive folder's place is taken by a file.
        std::fs::write(dir.path().join("not-a-folder"), b"x").unwrap();
        let mut command = run(TOKEN, fake.api_base());
        command.env("MJLINK_ARCHIVE_DIR", dir.path().join("not-a-folder"));
        output_of(command).await
    };
    let text = String::from_utf8(blocked.stdout).unwrap();
    assert!(!blocked.status.success());
    assert!(
        text.contains("FAIL archive") && text.contains("is not a folder"),
        "{text}"
    );

    let unreachable = output_of(run(TOKEN, "http://127.0.0.1:9".to_string())).await;
    let text = String::from_utf8(unreachable.stdout).unwrap();
    assert!(!unreachable.status.success());
    assert!(
        text.contains("FAIL api        cannot reach Discord at http://127.0.0.1:9"),
        "{text}"
    );
}

/// A session recorded by the bot (`mjlink record`) while `fixture`'s dispatches were sent:
/// the fake, the bot's database and the recording. The bot is stopped once the recording
/// holds every dispatch (stopping applies every frame the relay received before).
async fn record_a_session(dir: &Path, fixture: &str) -> (FakeDiscord, PathBuf, PathBuf) {
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db = dir.join("live.db");
    let recording = dir.join("session.jsonl");
    let options = RunOptions {
        record: Some(recording.clone()),
        ..Default::default()
    };
    let (stop, task) = ready_bot(&fake, config(&fake, &db), options).await;
    let lines = fixture_lines(fixture);
    for line in &lines {
        let kind = line["t"].as_str().unwrap().to_string();
        if kind == "MESSAGE_CREATE" {
            fake.post(&line["d"]);
        } else {
            fake.dispatch(&kind, line["d"].clone());
        }
    }
    let lines_in = |path: &Path| std::fs::read_to_string(path).map_or(0, |text| text.lines().count());
    wait_until("the recording", || lines_in(&recording) > lines.len()).await; // and READY
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    (fake, db, recording)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_replays_to_the_same_links() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, live, recording) = record_a_session(dir.path(), "fixtures/scenarios/heuristics.jsonl").await;
    assert_eq!(count_seen(&live), 27);

    let text = std::fs::read_to_string(&recording).unwrap();
    assert!(!text.contains(TOKEN));
    // Byte for byte what the gateway sent: READY first, then every dispatch.
    let recorded: Vec<&str> = text.lines().collect();
    assert!(recorded[0].contains("\"t\":\"READY\""));
    assert_eq!(recorded[1..].to_vec(), fake.sent_payloads());
    let replayed = dir.path().join("replayed.db");
    let (summary, store) = common::replay_files(&[recording], &replayed);
    assert_eq!(summary.malformed, 0);
    assert_eq!(summary.skipped.get("READY"), Some(&1));
    let live_exact: Vec<String> = links(&live)
        .lines()
        .filter(|l| l.contains("\"signal\":\"reference\""))
        .map(str::to_string)
        .collect();
    let replay_exact: Vec<String> = common::links_jsonl(&store)
        .lines()
        .filter(|l| l.contains("\"signal\":\"reference\""))
        .map(str::to_string)
        .collect();
    assert!(live_exact.len() >= 5);
    assert_eq!(live_exact, replay_exact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_message_content_is_reported_once_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db: PathBuf = dir.path().join("x.db");
    let child = tokio::process::Command::from(mjlink_bin(&fake, &db, TOKEN))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    for n in 0..3 {
        let (mut grid, _) = grid_and_upscale(31, n, base);
        // What a bot without the MESSAGE_CONTENT intent receives.
        grid["content"] = "".into();
        grid["attachments"] = serde_json::json!([]);
        fake.post(&grid);
    }
    wait_until("the three messages", || count_seen(&db) == 3).await;
    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.matches("Message Content intent").count(), 1, "{stderr}");
    assert!(stderr.contains("Privileged Gateway Intents"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_imports_a_channel_history_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let base = chrono::Utc::now().timestamp_millis() - 30 * 3_600_000;
    for n in 0..130 {
        let (grid, upscale) = grid_and_upscale(6060, n, base);
        fake.store(&grid);
        fake.store(&upscale);
    }
    fake.inject(Fault::RateLimit(0.2));
    let db: PathBuf = dir.path().join("backfill.db");
    let run = |extra: &[&str]| {
        let mut command = mjlink_against(&fake, &db, TOKEN);
        command
            .env("MJLINK_ARCHIVE_ENABLED", "true")
            // The fake messages point at cdn.discordapp.com: tests never reach it.
            .env("MJLINK_ARCHIVE_HOSTS", "127.0.0.1")
            .env("MJLINK_ARCHIVE_DIR", dir.path().join("archive"))
            .args(["backfill", "--channel", "6060"])
            .args(extra);
        command
    };
    let first = output_of(run(&["--all"])).await;
    let text = String::from_utf8(first.stdout).unwrap();
    assert!(
        first.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(text.contains("260 messages in 3 pages; 260 applied"), "{text}");
    // Then the images are archived at once; here every host is refused, so nothing is fetched.
    assert!(text.contains("archived 0, deduplicated 0, failed 260"), "{text}");
    assert_eq!(count_seen(&db), 260);
    assert_eq!(links(&db).lines().count(), 130);

    let again = output_of(run(&["--since", "2020-01-01"])).await;
    let text = String::from_utf8(again.stdout).unwrap();
    assert!(text.contains("0 applied"), "{text}");
    assert_eq!(count_seen(&db), 260);

    let bad = output_of(run(&["--since", "yesterday"])).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a date like 2024-05-01"));
}

/// A reply whose parent is older than the history imported (and sent without a copy) gets its
/// parent fetched, as the live bot does: every source fetches missing parents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_fetches_a_parent_older_than_the_history_it_imports() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let day_ms = 86_400_000;
    let old_grid_ms = chrono::Utc::now().timestamp_millis() - 10 * day_ms;
    let (grid, _) = grid_and_upscale(7070, 0, old_grid_ms);
    fake.store(&grid);
    let upscale_id = mjlink_core::snowflake::Snowflake::from_timestamp_ms(old_grid_ms + 5 * day_ms).0 + 7;
    let mut upscale = mj_message(
        upscale_id,
        7070,
        "**prompt number 0** - Image #2 <@42>",
        Some("u_y.png"),
        Some(&grid),
    );
    upscale.as_object_mut().unwrap().remove("referenced_message");
    fake.store(&upscale);
    let since = chrono::DateTime::from_timestamp_millis(old_grid_ms + 2 * day_ms)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let db: PathBuf = dir.path().join("backfill.db");
    let mut command = mjlink_against(&fake, &db, TOKEN);
    command.args(["backfill", "--channel", "7070", "--since", &since]);
    let output = output_of(command).await;
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The upscale, and the grid fetched for it.
    assert!(text.contains("1 messages in 1 pages; 2 applied"), "{text}");
    assert!(text.contains("1 referenced parents fetched"), "{text}");
    let grid_path = format!("/api/v10/channels/7070/messages/{}", grid["id"].as_str().unwrap());
    assert!(fake.requests().iter().any(|request| request.path == grid_path));
    assert_eq!(count_seen(&db), 2);
    let rows: Vec<Value> = links(&db)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows[0]["parent_id"], grid["id"]);
    assert_eq!(rows[0]["signal"], "reference");
}

fn count_archived(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM attachments WHERE state = 'archived'",
        [],
        |row| row.get(0),
    )
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_archived_while_the_bot_runs() {
    trace();
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let cdn = Cdn::default();
    let cdn_addr = cdn.clone().start().await;
    let db = dir.path().join("live.db");
    let mut config = config(&fake, &db);
    config.archive.enabled = true;
    config.archive.dir = dir.path().join("archive");
    config.archive.hosts = vec!["127.0.0.1".to_string()];
    config.archive.concurrency = 3;
    let (stop, task) = start_bot(config.clone());
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;

    // A link that has not expired (`ex` in 2100), served by the local CDN with its own bytes.
    let expiry = format!("{:x}", 4_102_444_800i64);
    let post = |message: &mut Value, n: usize| {
        let path = format!("/attachments/{}.png", message["id"].as_str().unwrap());
        let mut body = fake_cdn::png(20_000 + n * 7);
        body.push(n as u8);
        cdn.serve(&path, body);
        message["attachments"][0]["url"] =
            Value::from(format!("http://{cdn_addr}{path}?ex={expiry}&is=0&hm=00"));
        fake.post(message);
    };
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    // A burst: the writer commits while the archiver reads and writes beside it.
    for n in 0..20 {
        let (mut grid, mut upscale) = grid_and_upscale(7070, n, base);
        let uuid = format!("5eed0000-0000-4000-8000-{n:012}");
        grid["attachments"][0]["filename"] = Value::from(format!("u_x_{uuid}.png"));
        post(&mut grid, 2 * n as usize);
        upscale["referenced_message"] = grid.clone();
        post(&mut upscale, 2 * n as usize + 1);
    }
    wait_until("40 images archived", || count_archived(&db) == 40).await;
    // Later messages wake the archiver again (it does not wait for its next periodic pass).
    let (mut grid, mut upscale) = grid_and_upscale(7070, 30, base);
    grid["attachments"][0]["filename"] = Value::from("u_x_5eed0000-0000-4000-8000-000000000030.png");
    post(&mut grid, 60);
    upscale["referenced_message"] = grid.clone();
    post(&mut upscale, 61);
    let woken = Instant::now();
    wait_until("the late pair archived", || count_archived(&db) == 42).await;
    assert!(woken.elapsed() < mjlink::archive::worker::RETRY_EVERY / 2);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    let mut store = Store::open(&db).unwrap();
    let archive = mjlink::archive::backend::Backend::from_config(&config.archive).unwrap();
    let report = mjlink::archive::worker::verify(&mut store, &archive, false)
        .await
        .unwrap();
    assert_eq!((report.checked, report.ok), (42, 42), "{:?}", report.problems);
    // Each family folder holds its grid, its upscale and the metadata.
    let family = common::files_under(&config.archive.dir)
        .into_iter()
        .filter(|path| {
            path.to_string_lossy()
                .contains("5eed0000-0000-4000-8000-000000000007")
        })
        .map(|path| path.file_name().unwrap().to_string_lossy().to_string())
        .collect::<std::collections::BTreeSet<_>>();
    assert!(
        ["grid.png", "u2.png", "metadata.json", "prompt.txt"]
            .iter()
            .all(|name| family.contains(*name)),
        "{family:?}"
    );
    // Each image was fetched once.
    for n in (0..20u64).chain([30]) {
        let (grid, upscale) = grid_and_upscale(7070, n, base);
        for message in [grid, upscale] {
            let path = format!("/attachments/{}.png", message["id"].as_str().unwrap());
            assert_eq!(cdn.hits(&path).len(), 1, "{path}");
        }
    }
}

/// The live bot's events come from the raw frames, through the same core function as
/// replay: a session recorded while it ran, replayed into its own database, is all known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_replayed_into_its_own_database_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Creates, partial updates, deletions, replies with and without their parent's copy.
    let fixture = "fixtures/scenarios/every_format.jsonl";
    let (fake, db, recording) = record_a_session(dir.path(), fixture).await;
    let live_links = links(&db);
    assert!(live_links.lines().count() > 20);

    let (summary, store) = common::replay_files(&[recording], &db);
    assert_eq!(summary.malformed, 0);
    // The same bytes make the same events with the same digests: every one is a duplicate
    // (not merely "unchanged", as a re-serialized copy would be at best).
    let message_events = fixture_lines(fixture)
        .iter()
        .filter(|line| line["t"].as_str().is_some_and(|t| t.starts_with("MESSAGE_")))
        .count() as u64;
    assert_eq!(
        (summary.applied, summary.unchanged, summary.duplicates),
        (0, 0, message_events),
        "{summary:?}"
    );
    assert_eq!(common::links_jsonl(&store), live_links);
    // The relay asked Discord for uncompressed payloads, and for the GUILDS intent (threads).
    let identifies = fake.identifies();
    assert!(!identifies.is_empty());
    for identify in identifies {
        assert_eq!(identify["compress"], false, "{identify}");
        assert_eq!(identify["intents"].as_u64().unwrap_or(0) & 1, 1, "{identify}");
        assert!(identify.get("token").is_none());
    }
}

/// What serenity 0.12.5 cannot read or does not model is stored from the raw frame: a whole
/// MESSAGE_CREATE it fails to deserialize, and `interaction_metadata.name` with
/// `triggering_interaction_metadata`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_serenity_cannot_read_is_stored_from_the_raw_frame() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db = dir.path().join("live.db");
    let (stop, task) = ready_bot(&fake, config(&fake, &db), RunOptions::default()).await;
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;

    // A message serenity fails to deserialize as a whole, and one whose
    // `interaction_metadata` it does not fully model (see `common::serenity_loses`).
    let (mut grid, _) = grid_and_upscale(3131, 0, base);
    grid["components"] = serenity_loses::row_with_a_components_v2_node();
    let error = serde_json::from_value::<serenity::model::channel::Message>(grid.clone()).unwrap_err();
    assert!(error.to_string().contains("Unknown component type"), "{error}");
    let (mut remix, _) = grid_and_upscale(3131, 1, base);
    remix["interaction_metadata"] = serenity_loses::modal_interaction_metadata(&grid["id"]);
    fake.post(&grid);
    fake.post(&remix);
    wait_until("both messages", || count_seen(&db) == 2).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    let store = Store::open(&db).unwrap();
    let id = |message: &Value| Snowflake::parse(message["id"].as_str().unwrap()).unwrap();
    let stored = store.load_message(id(&grid)).unwrap().unwrap();
    assert!(stored.doc.message.components.unwrap().0[0]
        .id
        .contains("upsample::1"));
    let stored = store.load_message(id(&remix)).unwrap().unwrap();
    let metadata = stored.doc.message.interaction_metadata.unwrap();
    assert_eq!(metadata.name.as_deref(), Some("imagine"));
    assert_eq!(
        metadata
            .triggering_interaction_metadata
            .and_then(|trigger| trigger.interacted_message_id),
        Some(id(&grid))
    );
}

fn stored_in(db: &Path, channel: u64) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM messages WHERE seen = 1 AND channel_id = ?1",
        [channel as i64],
        |row| row.get(0),
    )
    .unwrap_or(0)
}

/// A grid stored in `channel`'s history without a dispatch (posted while the bot was away).
fn post_in_history(fake: &FakeDiscord, channel: u64, n: u64, base: i64) {
    let (grid, _) = grid_and_upscale(channel, n, base);
    fake.store(&grid);
}

fn channel_lookups(fake: &FakeDiscord, channel: u64) -> usize {
    let path = format!("/api/v10/channels/{channel}");
    fake.requests()
        .iter()
        .filter(|request| request.path == path)
        .count()
}

/// A thread of a watched channel is watched (learned from GUILD_CREATE, THREAD_CREATE,
/// THREAD_LIST_SYNC, or looked up once with `GET /channels/{id}`); one of another channel is
/// not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn midjourney_in_a_thread_of_a_watched_channel_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db = dir.path().join("live.db");
    let (watched, other, guild) = (5100u64, 5200u64, 900u64);
    let now = chrono::Utc::now().timestamp_millis();
    fake.add_channel(&text_channel(watched, guild, "midjourney"));
    fake.add_channel(&text_channel(other, guild, "elsewhere"));
    let from_guild_create = 5101;
    let created_live = 5102;
    let looked_up = 5103;
    let from_list_sync = 5104;
    let other_created = 5201;
    let other_looked_up = 5202;
    fake.add_channel(&thread_channel(
        from_guild_create,
        guild,
        watched,
        "in guild create",
        None,
    ));
    let mut config = config(&fake, &db);
    config.discord.channels = [Snowflake(watched)].into_iter().collect();
    let (stop, task) = ready_bot(&fake, config, RunOptions::default()).await;
    fake.guild_create(guild);
    // GUILD_CREATE follows Discord's documented shape: serenity decodes it too.
    let guild_create: Value = fake
        .sent_payloads()
        .iter()
        .map(|payload| serde_json::from_str::<Value>(payload).unwrap())
        .find(|payload| payload["t"] == "GUILD_CREATE")
        .unwrap();
    serde_json::from_value::<serenity::model::guild::Guild>(guild_create["d"].clone()).unwrap();
    fake.create_thread(&thread_channel(created_live, guild, watched, "opened live", None));
    fake.create_thread(&thread_channel(
        other_created,
        guild,
        other,
        "opened elsewhere",
        None,
    ));
    fake.add_channel(&thread_channel(from_list_sync, guild, watched, "synced", None));
    fake.thread_list_sync(guild);
    // Threads no dispatch tells about (opened while the bot could not see them).
    fake.add_channel(&thread_channel(
        looked_up,
        guild,
        watched,
        "never dispatched",
        None,
    ));
    fake.add_channel(&thread_channel(
        other_looked_up,
        guild,
        other,
        "never dispatched either",
        None,
    ));

    let base = now - 3_600_000;
    let mut n = 0;
    let mut post_in = |channel: u64| {
        n += 1;
        let (grid, _) = grid_and_upscale(channel, n, base);
        fake.post(&grid);
    };
    // Not watched first: the live path takes frames in order, so once the last watched
    // message is stored, these were decided too.
    post_in(other);
    post_in(other_created);
    post_in(other_looked_up);
    post_in(other_looked_up);
    for channel in [
        watched,
        from_guild_create,
        created_live,
        looked_up,
        looked_up,
        from_list_sync,
    ] {
        post_in(channel);
    }
    wait_until("the six watched messages", || count_seen(&db) == 6).await;
    // A thread has its own cursor: after a reconnect that is not a RESUME, what was posted
    // in it meanwhile is caught up like a channel's history.
    fake.drop_connection();
    post_in_history(&fake, looked_up, 20, base);
    post_in_history(&fake, other_looked_up, 21, base);
    fake.wait_for("a new session", WAIT, |fake| {
        fake.readies() == 2 && fake.connected()
    })
    .await;
    wait_until("the message posted while away", || count_seen(&db) == 7).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    assert_eq!(count_seen(&db), 7);
    for (channel, expected) in [
        (watched, 1),
        (from_guild_create, 1),
        (created_live, 1),
        (looked_up, 3),
        (from_list_sync, 1),
        (other, 0),
        (other_created, 0),
        (other_looked_up, 0),
    ] {
        assert_eq!(stored_in(&db, channel), expected, "channel {channel}");
    }
    // Only ids nothing told about were looked up, each once.
    assert_eq!(channel_lookups(&fake, looked_up), 1);
    assert_eq!(channel_lookups(&fake, other_looked_up), 1);
    for known in [
        watched,
        other,
        from_guild_create,
        created_live,
        from_list_sync,
        other_created,
    ] {
        assert_eq!(channel_lookups(&fake, known), 0, "channel {known}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_with_threads_fetches_active_and_archived_threads() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let (channel, other, guild) = (6100u64, 6200u64, 900u64);
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;
    fake.add_channel(&text_channel(channel, guild, "midjourney"));
    fake.add_channel(&text_channel(other, guild, "elsewhere"));
    let (active, archived, archived_earlier, elsewhere) = (6101u64, 6102u64, 6103u64, 6201u64);
    fake.add_channel(&thread_channel(active, guild, channel, "active", None));
    fake.add_channel(&thread_channel(
        archived,
        guild,
        channel,
        "archived",
        Some(now - 2 * hour),
    ));
    fake.add_channel(&thread_channel(
        archived_earlier,
        guild,
        channel,
        "archived before",
        Some(now - 3 * hour),
    ));
    fake.add_channel(&thread_channel(
        elsewhere,
        guild,
        other,
        "another channel's",
        Some(now - 2 * hour),
    ));
    // One archived thread per page: the second is reached with `before`.
    fake.set_thread_page_size(1);
    let base = now - 30 * hour;
    let mut n = 0;
    for (place, count) in [
        (channel, 2),
        (active, 2),
        (archived, 3),
        (archived_earlier, 1),
        (elsewhere, 4),
    ] {
        for _ in 0..count {
            n += 1;
            let (grid, _) = grid_and_upscale(place, n, base);
            fake.store(&grid);
        }
    }
    let db: PathBuf = dir.path().join("backfill.db");
    let run = |extra: &[&str]| {
        let mut command = mjlink_against(&fake, &db, TOKEN);
        command
            .args(["backfill", "--channel", &channel.to_string(), "--all"])
            .args(extra);
        command
    };
    let without = output_of(run(&[])).await;
    let text = String::from_utf8(without.stdout).unwrap();
    assert!(text.contains("2 messages in 1 pages; 2 applied"), "{text}");
    assert!(!text.contains("threads"), "{text}");

    let with = output_of(run(&["--threads"])).await;
    let text = String::from_utf8(with.stdout).unwrap();
    assert!(
        with.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(text.contains("threads: 1 active, 2 archived"), "{text}");
    assert!(
        text.contains("8 messages in 4 pages; 6 applied, 2 already stored"),
        "{text}"
    );
    assert!(
        text.contains("note: archived private threads of channel 6100 skipped")
            && text.contains("Manage Threads"),
        "{text}"
    );
    for (place, expected) in [
        (channel, 2),
        (active, 2),
        (archived, 3),
        (archived_earlier, 1),
        (elsewhere, 0),
    ] {
        assert_eq!(stored_in(&db, place), expected, "channel {place}");
    }
    let paths: Vec<String> = fake
        .requests()
        .iter()
        .map(|request| request.path.clone())
        .collect();
    assert!(
        paths.contains(&format!("/api/v10/guilds/{guild}/threads/active")),
        "{paths:?}"
    );
    let archived_pages: Vec<&String> = paths
        .iter()
        .filter(|path| path.contains(&format!("/channels/{channel}/threads/archived/public")))
        .collect();
    assert_eq!(archived_pages.len(), 2, "{archived_pages:?}");
    assert!(archived_pages[1].contains("&before=20"), "{archived_pages:?}");
}

/// The token never reaches a log, at any level: `record` and `run` at trace logging, through
/// IDENTIFY (the relay and serenity both see it), REST requests (catch-up, a parent fetch)
/// and a slash-command answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_never_logged_even_at_trace() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    for command in ["record", "run"] {
        let readies = fake.readies();
        let db: PathBuf = dir.path().join(format!("{command}.db"));
        let mut bin = mjlink_against(&fake, &db, TOKEN);
        bin.env("MJLINK_LOG_FILTER", "trace")
            .env("MJLINK_DISCORD_CHANNELS", "4242")
            .arg(command);
        if command == "record" {
            bin.arg("--out").arg(dir.path().join("session.jsonl"));
        }
        // To a file: trace logging fills a pipe long before anyone reads it.
        let log = dir.path().join(format!("{command}.log"));
        let mut child = tokio::process::Command::from(bin)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        fake.wait_for("READY", WAIT, |fake| {
            fake.readies() == readies + 1 && fake.connected()
        })
        .await;
        let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
        let (grid, upscale) = grid_and_upscale(4242, readies as u64 + 1, base);
        fake.post(&grid);
        fake.post(&upscale);
        wait_until("the messages", || count_seen(&db) >= 2).await;
        let pid = child.id().unwrap() as i32;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        assert!(
            stderr.lines().count() > 20,
            "{command}: trace logging was on: {stderr}"
        );
        let leaks: Vec<&str> = stderr.lines().filter(|line| line.contains(TOKEN)).collect();
        assert!(leaks.is_empty(), "{command}: the token leaked: {leaks:#?}");
    }
}

/// `mjlink run` against `api_base` with a 3 s connection deadline: its exit status, stderr,
/// and how long it ran (killed after 20 s: a run that never gives up fails the test).
async fn run_against(api_base: &str) -> (Option<i32>, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mjlink"));
    command
        .current_dir(common::root())
        .env_remove("RUST_LOG")
        .env("MJLINK_DISCORD_TOKEN", TOKEN)
        .env("MJLINK_DISCORD_API_BASE", api_base)
        .env("MJLINK_DISCORD_CONNECT_TIMEOUT_SECS", "3")
        .env("MJLINK_ARCHIVE_ENABLED", "false")
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let started = Instant::now();
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
        Ok(status) => status.unwrap().code(),
        Err(_) => {
            child.kill().await.unwrap();
            None
        }
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    (status, stderr, started.elapsed())
}

/// Never connected: a non-zero exit within the deadline (and a margin), the reason in one
/// last line that names the configured base, no Debug dumps, no other host tried.
fn assert_gave_up(what: &str, base: &str, (status, stderr, took): (Option<i32>, String, Duration)) {
    assert_eq!(
        status,
        Some(1),
        "{what}: did not give up within 20 s ({took:?}): {stderr}"
    );
    assert!(took < Duration::from_secs(13), "{what}: took {took:?}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("mjlink: could not connect to Discord within 3 s"),
        "{what}: {stderr}"
    );
    assert!(
        last.contains(base),
        "{what}: the reason names the configured base: {stderr}"
    );
    let reasons = stderr.lines().filter(|line| line.starts_with("mjlink: ")).count();
    assert_eq!(reasons, 1, "{what}: {stderr}");
    for dump in ["Error {", "kind:", "source:", "gateway.discord.gg", "discord.com"] {
        assert!(!stderr.contains(dump), "{what}: {dump:?} in {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_gives_up_within_the_connect_deadline() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    assert_gave_up("unreachable", &base, run_against(&base).await);
}

/// An API base on 127.0.0.1 that accepts connections and never answers; abort the task to
/// close it.
async fn silent_api() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (base, silent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_accepts_and_never_answers_gives_up_within_the_connect_deadline() {
    let (base, silent) = silent_api().await;
    assert_gave_up("silent", &base, run_against(&base).await);
    silent.abort();
}

/// Once connected, an outage is retried for as long as it lasts, with one line per failed
/// attempt that says which attempt it is, and longer waits between attempts (issue 12, S2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_with_growing_waits_and_a_line_per_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db: PathBuf = dir.path().join("outage.db");
    let log = dir.path().join("run.log");
    let mut command = mjlink_bin(&fake, &db, TOKEN);
    command.stderr(std::fs::File::create(&log).unwrap());
    let child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    fake.wait_for("READY", WAIT, |fake| fake.readies() == 1 && fake.connected())
        .await;
    fake.set_down(true);
    tokio::time::sleep(Duration::from_secs(16)).await;
    fake.set_down(false);
    fake.wait_for("a session after the outage", Duration::from_secs(60), |fake| {
        fake.readies() + fake.resumes() >= 2 && fake.connected()
    })
    .await;
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    let waits: Vec<u64> = stderr
        .lines()
        .filter(|line| line.contains("cannot connect to the gateway"))
        .map(|line| {
            let wait = line
                .split("the next waits ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_else(|| panic!("no wait in {line:?}"));
            wait.parse().unwrap()
        })
        .collect();
    assert!(waits.len() >= 2, "a line per failed attempt: {stderr}");
    assert_eq!(waits[..2], [1, 2], "{stderr}");
    assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]), "{stderr}");
}

/// A stop asked for while the bot is still looking for the gateway (an API that accepts and
/// never answers, a long connect deadline) is a clean stop, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_still_connecting_is_a_clean_stop_at_once() {
    let (base, silent) = silent_api().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mjlink"));
    command
        .current_dir(common::root())
        .env_remove("RUST_LOG")
        .env("MJLINK_DISCORD_TOKEN", TOKEN)
        .env("MJLINK_DISCORD_API_BASE", &base)
        .env("MJLINK_DISCORD_CONNECT_TIMEOUT_SECS", "120")
        .env("MJLINK_ARCHIVE_ENABLED", "false")
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("still running 20 s after SIGTERM")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stopped.elapsed()
    );
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gateway_fetch_never_falls_back_to_another_host() {
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    fake.mount("GET", "/api/v10/gateway", |_, _| {
        mjlink_sim::discord::HttpResponse::json(500, &serde_json::json!({"message": "oops"}))
    });
    let base = fake.api_base();
    assert_gave_up("gateway fetch failing", &base, run_against(&base).await);
    // Only the configured base was asked, and only for the gateway's address.
    let requests = fake.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|request| request.path == "/api/v10/gateway"),
        "{requests:?}"
    );
    assert!(!fake.connected());
}

/// Once connected, an outage longer than the connection deadline is waited out: the bot
/// reconnects when Discord is back and goes on storing messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_bot_rides_out_an_outage_longer_than_the_connect_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db = dir.path().join("outage.db");
    let mut config = config(&fake, &db);
    config.discord.connect_timeout_secs = 1;
    let (stop, task) = ready_bot(&fake, config, RunOptions::default()).await;
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let (grid, _) = grid_and_upscale(4242, 1, base);
    fake.post(&grid);
    wait_until("the first message", || count_seen(&db) == 1).await;

    fake.set_down(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !task.is_finished(),
        "the bot gave up during an outage: {:?}",
        task.await
    );
    fake.set_down(false);
    fake.wait_for("a new session", WAIT, |fake| fake.connected())
        .await;
    let (grid, _) = grid_and_upscale(4242, 2, base);
    fake.post(&grid);
    wait_until("a message after the outage", || count_seen(&db) == 2).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_cannot_be_reached_gives_up_within_the_connect_deadline() {
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = format!("ws://127.0.0.1:{port}");
    let url = gateway.clone();
    fake.mount("GET", "/api/v10/gateway", move |_, _| {
        mjlink_sim::discord::HttpResponse::json(200, &serde_json::json!({ "url": url }))
    });
    assert_gave_up(
        "gateway unreachable",
        &gateway,
        run_against(&fake.api_base()).await,
    );
}

/// `web.enabled`: `mjlink run` serves the web gallery beside the bot (issue 13, point 1),
/// says where in its log, and stops it with the bot on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_web_enabled_serves_the_gallery_beside_the_bot_and_stops_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let log = dir.path().join("run.log");
    let mut command = mjlink_bin(&fake, &dir.path().join("w.db"), TOKEN);
    command
        .env("MJLINK_WEB_ENABLED", "true")
        .env("MJLINK_WEB_BIND", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let address = regex::Regex::new(r"http://127\.0\.0\.1:\d+/").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(found) = address.find(&text) {
            break found.as_str().to_string();
        }
        assert!(Instant::now() < deadline, "no address in the log: {text}");
        assert!(child.try_wait().unwrap().is_none(), "run ended: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("<title>Gallery · mjlink</title>"));

    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {text}");
    assert!(
        reqwest::get(&url).await.is_err(),
        "still serving after the bot stopped"
    );
}

/// The parent fetcher told to stop while a reported parent is still waiting fetches it and
/// ends: it once took that parent on seeing the stop and then waited for more reports
/// forever (the writer, which holds the sender, is closed only after the fetcher ends), so a
/// loaded machine saw `mjlink backfill` hang. On a single-threaded runtime the fetcher first
/// runs when `finish` is awaited, with the report and the stop both ready; which one
/// `select!` takes is random, so the race is run 16 times.
#[tokio::test(flavor = "current_thread")]
async fn the_parent_fetcher_stopped_with_a_report_waiting_fetches_it_and_ends() {
    use mjlink::ingest::backfill::ParentFetcher;
    use mjlink::ingest::pipeline::{Pipeline, PipelineConfig};
    use mjlink::ingest::writer::{MissingParent, Writer, WriterHooks};

    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let (grid, _) = grid_and_upscale(7070, 0, chrono::Utc::now().timestamp_millis() - 3_600_000);
    fake.store(&grid);
    let grid_id: u64 = grid["id"].as_str().unwrap().parse().unwrap();
    let rest = std::sync::Arc::new(
        mjlink::rest::Rest::new(&fake.api_base(), Secret::new(TOKEN), Default::default()).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    for round in 0..16 {
        let store = Store::open(&dir.path().join(format!("fetch{round}.db"))).unwrap();
        let writer = Writer::spawn(
            Pipeline::new(store, PipelineConfig::default()),
            WriterHooks::default(),
        );
        let (missing, reports) = tokio::sync::mpsc::unbounded_channel();
        let fetcher = ParentFetcher::spawn(std::sync::Arc::clone(&rest), writer.handle(), reports);
        missing
            .send(MissingParent {
                channel_id: Snowflake(7070),
                message_id: Snowflake(grid_id),
            })
            .unwrap();
        let fetched = tokio::time::timeout(Duration::from_secs(20), fetcher.finish())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the fetcher did not end"));
        assert_eq!(fetched, 1, "round {round}");
        drop(missing);
        writer.close().await.unwrap();
    }
}
