//! Notifications end to end: the durable outbox delivered to a receiver on 127.0.0.1 (a small
//! axum server) that fails, stalls, answers 429 with Retry-After, or takes what it gets; the
//! signature, the idempotency key across retries, the dead-letter list, a Discord target's
//! message with its image, delivery by `mjlink run` after a restart, and the secret never in
//! the log or the database.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_discord::FakeDiscord;
use mjlink::config::{Config, NotifyKind, NotifyTarget, Secret};
use mjlink::notify::{deliver_due, NotifyOptions};
use mjlink::store::Store;
use mjlink_core::notify::{DeliveryPolicy, EventKind, Notice, Route};
use mjlink_core::snowflake::Snowflake;

const SECRET: &str = "whsec-0123456789abcdef-signing";
const T0: i64 = 1_800_000_000_000;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The receiver: by path, `/ok` answers 200, `/fail` 500, `/flaky` 500 to its first two
/// requests then 200, `/stall` never answers, `/busy` 429 with `Retry-After: 7` once then
/// 200, `/switch` 500 until `healthy` is set.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    healthy: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = self.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let receiver = receiver.clone();
            async move { receiver.answer(request).await }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    async fn answer(&self, request: axum::extract::Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        let path = request.uri().path().to_string();
        let headers = request
            .headers()
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        let seen = {
            let mut got = self.got.lock().unwrap();
            got.push(Got {
                path: path.clone(),
                headers,
                body,
            });
            got.iter().filter(|got| got.path == path).count()
        };
        let status = axum::http::StatusCode::from_u16;
        if path.starts_with("/ok") {
            return status(200).unwrap().into_response();
        }
        if path.starts_with("/flaky") {
            return status(if seen <= 2 { 500 } else { 200 }).unwrap().into_response();
        }
        if path.starts_with("/stall") {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if path.starts_with("/busy") && seen == 1 {
            return (status(429).unwrap(), [("Retry-After", "7")], "slow down").into_response();
        }
        if path.starts_with("/busy") {
            return status(204).unwrap().into_response();
        }
        if path.starts_with("/switch") && self.healthy.load(Ordering::SeqCst) > 0 {
            return status(200).unwrap().into_response();
        }
        status(500).unwrap().into_response()
    }

    fn got(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|got| got.path.starts_with(path))
            .cloned()
            .collect()
    }
}

fn webhook(name: &str, url: &str) -> NotifyTarget {
    NotifyTarget {
        name: name.to_string(),
        kind: NotifyKind::Webhook,
        url: Some(Secret::new(url)),
        secret: Some(Secret::new(SECRET)),
        events: Vec::new(),
        timeout_ms: 2_000,
        give_up_after_ms: 3_600_000,
    }
}

fn options(targets: Vec<NotifyTarget>, archive_root: &Path) -> NotifyOptions {
    NotifyOptions {
        targets,
        archive: mjlink::archive::backend::Backend::Fs {
            root: archive_root.to_path_buf(),
        },
        policy: DeliveryPolicy {
            first_wait_ms: 1_000,
            max_wait_ms: 60_000,
            give_up_after_ms: 0,
        },
        poll: Duration::from_millis(50),
        concurrency: 4,
    }
}

fn routes(names: &[&str]) -> Vec<Route> {
    names
        .iter()
        .map(|name| Route {
            target: name.to_string(),
            events: Vec::new(),
        })
        .collect()
}

fn drift_notice() -> Notice {
    mjlink_core::notify::format_drift("2027-01-15", 12, 2, Snowflake(77))
}

/// An outbox row: (key, state, attempts, next_try_at, last_error).
type Row = (String, String, i64, Option<i64>, Option<String>);

/// The outbox's rows.
fn rows(db: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT key, state, attempts, next_try_at, last_error FROM notify_outbox ORDER BY id")
        .unwrap();
    stmt.query_map([], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Every text of the database file, to look for a secret in.
fn database_text(db: &Path) -> String {
    let mut text = String::new();
    for path in [db.to_path_buf(), PathBuf::from(format!("{}-wal", db.display()))] {
        if let Ok(bytes) = std::fs::read(&path) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// A clock the test moves.
fn clock(start: i64) -> Arc<AtomicI64> {
    Arc::new(AtomicI64::new(start))
}

async fn pass(
    store: &mut Store,
    options: &NotifyOptions,
    now: &Arc<AtomicI64>,
) -> mjlink::notify::PassReport {
    let now = Arc::clone(now);
    deliver_due(
        store,
        &client(),
        options,
        move || now.load(Ordering::SeqCst),
        || 0,
    )
    .await
    .unwrap()
}

fn hex_signature(timestamp: &str, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    let mac = mjlink::notify::sign::hmac_sha256(SECRET.as_bytes(), &message);
    format!(
        "v1={}",
        mac.iter().map(|byte| format!("{byte:02x}")).collect::<String>()
    )
}

#[tokio::test]
async fn a_webhook_is_signed_and_keeps_its_idempotency_key_across_retries() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    store
        .notify_enqueue(&routes(&["ops"]), &drift_notice(), T0)
        .unwrap();
    let options = options(vec![webhook("ops", &format!("{base}/flaky"))], dir.path());
    let now = clock(T0);

    assert_eq!(pass(&mut store, &options, &now).await.retry_later, 1);
    // Not due yet: nothing is sent.
    now.store(T0 + 400, Ordering::SeqCst);
    assert_eq!(pass(&mut store, &options, &now).await, Default::default());
    now.store(T0 + 60_000, Ordering::SeqCst);
    assert_eq!(pass(&mut store, &options, &now).await.retry_later, 1);
    now.store(T0 + 120_000, Ordering::SeqCst);
    assert_eq!(pass(&mut store, &options, &now).await.delivered, 1);
    now.store(T0 + 999_000, Ordering::SeqCst);
    assert_eq!(
        pass(&mut store, &options, &now).await,
        Default::default(),
        "delivered once"
    );

    let got = receiver.got("/flaky");
    assert_eq!(got.len(), 3);
    let key = got[0].header("idempotency-key").unwrap().to_string();
    assert!(key.starts_with("mjlink-format_drift-2027-01-15-"), "{key}");
    for request in &got {
        assert_eq!(
            request.header("idempotency-key"),
            Some(key.as_str()),
            "the same key on every retry"
        );
        assert_eq!(request.header("x-mjlink-event"), Some("format_drift"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let timestamp = request.header("x-mjlink-timestamp").unwrap();
        assert_eq!(
            request.header("x-mjlink-signature"),
            Some(hex_signature(timestamp, &request.body).as_str()),
            "HMAC-SHA256 over timestamp.body"
        );
        assert_eq!(request.body, got[0].body, "the same body on every retry");
    }
    // Each attempt's timestamp is its own (from the clock passed in).
    assert_eq!(
        got[0].header("x-mjlink-timestamp"),
        Some(&*(T0 / 1000).to_string())
    );
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event"], "format_drift");
    assert_eq!(body["unknown"], 12);
    let stored = rows(&db);
    assert_eq!(stored[0].1, "delivered");
    assert_eq!(stored[0].2, 3);
    assert_eq!(stored[0].0, key);
}

#[tokio::test]
async fn a_stalled_receiver_meets_the_deadline_and_the_row_stays_pending() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    store
        .notify_enqueue(&routes(&["slow", "fine"]), &drift_notice(), T0)
        .unwrap();
    let mut slow = webhook("slow", &format!("{base}/stall"));
    slow.timeout_ms = 300;
    let options = options(vec![slow, webhook("fine", &format!("{base}/ok"))], dir.path());
    let now = clock(T0);
    let started = Instant::now();
    let report = pass(&mut store, &options, &now).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (report.delivered, report.retry_later),
        (1, 1),
        "the stall holds up only itself"
    );
    let stored = rows(&db);
    assert_eq!(stored[0].1, "pending");
    assert_eq!(stored[0].4.as_deref(), Some("no answer within 0.3 s"));
    let next = stored[0].3.unwrap();
    assert!((T0 + 500..=T0 + 1_000).contains(&next), "{next}");
    assert_eq!(stored[1].1, "delivered");
}

#[tokio::test]
async fn a_429_waits_exactly_its_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    store
        .notify_enqueue(&routes(&["busy"]), &drift_notice(), T0)
        .unwrap();
    let options = options(vec![webhook("busy", &format!("{base}/busy"))], dir.path());
    let now = clock(T0);
    assert_eq!(pass(&mut store, &options, &now).await.retry_later, 1);
    let stored = rows(&db);
    assert_eq!(stored[0].3, Some(T0 + 7_000), "Retry-After: 7 honoured");
    assert!(
        stored[0].4.as_deref().unwrap().contains("429"),
        "{:?}",
        stored[0].4
    );
    now.store(T0 + 6_999, Ordering::SeqCst);
    assert_eq!(pass(&mut store, &options, &now).await, Default::default());
    assert_eq!(receiver.got("/busy").len(), 1);
    now.store(T0 + 7_000, Ordering::SeqCst);
    assert_eq!(pass(&mut store, &options, &now).await.delivered, 1);
    let got = receiver.got("/busy");
    assert_eq!(got[0].header("idempotency-key"), got[1].header("idempotency-key"));
}

#[tokio::test]
async fn a_notification_is_dead_after_the_configured_time_and_stats_and_doctor_list_it() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    store
        .notify_enqueue(&routes(&["ops"]), &drift_notice(), T0)
        .unwrap();
    let mut ops = webhook("ops", &format!("{base}/fail"));
    ops.give_up_after_ms = 60_000;
    let options = options(vec![ops], dir.path());
    let now = clock(T0);
    let mut dead = 0;
    for step in 0..20 {
        now.store(T0 + step * 10_000, Ordering::SeqCst);
        dead += pass(&mut store, &options, &now).await.dead;
    }
    assert_eq!(dead, 1);
    let stored = rows(&db);
    assert_eq!(stored[0].1, "dead");
    let tries = receiver.got("/fail").len() as i64;
    assert_eq!(stored[0].2, tries);
    assert!(tries >= 3, "retried until the give-up time: {tries}");
    let letters = store.notify_dead_letters(10).unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].last_error.as_deref().unwrap().contains("500"),
        "{letters:?}"
    );
    drop(store);

    let run = |args: &[&str]| {
        let output = common::mjlink_command()
            // doctor asks the API: never the internet.
            .env("MJLINK_DISCORD_API_BASE", "http://127.0.0.1:9")
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let stats = run(&["stats"]);
    assert!(
        stats.contains("notifications       pending 0, delivered 0, dead 1"),
        "{stats}"
    );
    assert!(
        stats.contains("dead letter       ops format_drift mjlink-format_drift-2027-01-15-"),
        "{stats}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&["stats", "--json"])).unwrap();
    assert_eq!(json["notifications"]["dead"], 1);
    assert_eq!(json["dead_letters"][0]["target"], "ops");
    let doctor = run(&["doctor"]);
    let line = doctor
        .lines()
        .find(|line| line.contains("notify"))
        .unwrap_or_default();
    assert!(line.contains("dead 1") && line.contains("500"), "{doctor}");
}

#[tokio::test]
async fn a_discord_target_gets_a_message_with_the_image_attached_and_the_jump_link() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let db = dir.path().join("n.db");
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(archive.join("2027/01/fam")).unwrap();
    let png = common::fake_cdn::png(3000);
    std::fs::write(archive.join("2027/01/fam/grid_5.png"), &png).unwrap();
    let mut store = Store::open(&db).unwrap();
    let notice = mjlink_core::notify::archived(&mjlink_core::notify::Archived {
        grid: true,
        message_id: Snowflake(5),
        attachment_id: Snowflake(6),
        guild_id: Some(Snowflake(20)),
        channel_id: Some(Snowflake(10)),
        kind: "imagine",
        tile: None,
        parent_id: None,
        prompt: Some("a lighthouse @everyone"),
        path: "2027/01/fam/grid_5.png",
        sha256: "00",
        bytes: png.len() as u64,
    });
    store.notify_enqueue(&routes(&["art"]), &notice, T0).unwrap();
    let target = NotifyTarget {
        kind: NotifyKind::Discord,
        secret: None,
        ..webhook("art", &format!("{base}/ok/api/webhooks/123/tok-en-secret-part"))
    };
    let options = options(vec![target], &archive);
    assert_eq!(pass(&mut store, &options, &clock(T0)).await.delivered, 1);
    let got = receiver.got("/ok/api/webhooks/123/");
    assert_eq!(got.len(), 1);
    let content_type = got[0].header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap();
    let body = &got[0].body;
    let text = String::from_utf8_lossy(body);
    assert!(text.contains(&format!("--{boundary}\r\n")) && text.ends_with(&format!("--{boundary}--\r\n")));
    // The message: the summary, the jump link, no mention parsed, the attachment declared.
    let payload_start = text.find("\r\n\r\n{").unwrap() + 4;
    let payload_end = payload_start + text[payload_start..].find("\r\n--").unwrap();
    let payload: serde_json::Value = serde_json::from_str(&text[payload_start..payload_end]).unwrap();
    let content = payload["content"].as_str().unwrap();
    assert!(
        content.contains("Grid archived (imagine): a lighthouse"),
        "{content}"
    );
    assert!(
        content.ends_with("https://discord.com/channels/20/10/5"),
        "{content}"
    );
    assert_eq!(payload["allowed_mentions"]["parse"], serde_json::json!([]));
    assert_eq!(payload["attachments"][0]["filename"], "grid_5.png");
    // The file part: the exact bytes.
    assert!(text.contains("name=\"files[0]\"; filename=\"grid_5.png\"\r\nContent-Type: image/png\r\n\r\n"));
    let start = body
        .windows(png.len())
        .position(|window| window == png.as_slice());
    assert!(start.is_some(), "the image's bytes are attached whole");
}

#[tokio::test]
async fn the_worker_stops_at_once_on_shutdown_and_the_row_stays_pending() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let db = dir.path().join("n.db");
    let store = Store::open(&db).unwrap();
    store
        .notify_enqueue(&routes(&["slow"]), &drift_notice(), T0)
        .unwrap();
    let mut slow = webhook("slow", &format!("{base}/stall"));
    slow.timeout_ms = 60_000;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(mjlink::notify::keep_delivering(
        store,
        options(vec![slow], dir.path()),
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.got("/stall").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.got("/stall").len(), 1, "the request is in flight");
    let asked = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), worker)
        .await
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(1));
    let stored = rows(&db);
    assert_eq!(
        (stored[0].1.as_str(), stored[0].2),
        ("pending", 0),
        "sent again by the next start"
    );
}

#[test]
fn an_enqueue_is_part_of_its_transaction_and_an_event_is_stored_once_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let mut store = Store::open(&db).unwrap();
    store.begin().unwrap();
    assert_eq!(
        store
            .notify_enqueue(&routes(&["a", "b"]), &drift_notice(), T0)
            .unwrap(),
        2
    );
    store.rollback().unwrap();
    assert!(rows(&db).is_empty(), "a rolled-back change tells nothing");
    store.begin().unwrap();
    store
        .notify_enqueue(&routes(&["a", "b"]), &drift_notice(), T0)
        .unwrap();
    store.commit().unwrap();
    assert_eq!(
        store
            .notify_enqueue(&routes(&["a", "b"]), &drift_notice(), T0 + 5)
            .unwrap(),
        0
    );
    assert_eq!(rows(&db).len(), 2);
    // A target that does not want the event gets nothing.
    let picky = vec![Route {
        target: "c".into(),
        events: vec![EventKind::QueueFailed],
    }];
    assert_eq!(store.notify_enqueue(&picky, &drift_notice(), T0).unwrap(), 0);
}

const TOKEN: &str = "test-token.abc";
const URL_TOKEN: &str = "url-path-token-9f8e7d6c5b4a";

/// `mjlink run` against the fake Discord with one webhook target from bot.toml, its secret
/// from the environment, logging everything.
/// The log goes to `log` (a pipe nobody reads while it runs could fill and block it).
fn mjlink_run(fake: &FakeDiscord, dir: &Path, base: &str, log: &Path) -> tokio::process::Child {
    let config = dir.join("bot.toml");
    std::fs::write(
        &config,
        format!(
            "[[notify]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{base}/switch/{URL_TOKEN}\"\ntimeout_secs = 2\n"
        ),
    )
    .unwrap();
    let mut command = common::mjlink_command();
    command
        .env("MJLINK_DISCORD_TOKEN", TOKEN)
        .env("MJLINK_DISCORD_API_BASE", fake.api_base())
        .env("MJLINK_ARCHIVE_ENABLED", "false")
        .env("MJLINK_NOTIFY_OPS_SECRET", SECRET)
        .env(
            "MJLINK_LOG_FILTER",
            "trace,serenity=info,tungstenite=info,tokio_tungstenite=info",
        )
        .arg("--config")
        .arg(&config)
        .arg("--db")
        .arg(dir.join("n.db"))
        .arg("run")
        .stderr(std::fs::File::create(log).unwrap());
    tokio::process::Command::from(command).spawn().unwrap()
}

async fn sigterm(mut child: tokio::process::Child, log: &Path) -> String {
    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&std::fs::read(log).unwrap()).to_string();
    assert!(status.success(), "SIGTERM is a clean stop: {stderr}");
    stderr
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_after_a_restart_with_the_same_key_and_never_logs_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let fake = FakeDiscord::start(TOKEN).await.unwrap();
    let db = dir.path().join("n.db");
    Store::open(&db)
        .unwrap()
        .notify_enqueue(&routes(&["ops"]), &drift_notice(), T0)
        .unwrap();

    // The first process: the receiver fails; the notification stays pending.
    let log = dir.path().join("first.log");
    let first = mjlink_run(&fake, dir.path(), &base, &log);
    wait_for("a first attempt", || !receiver.got("/switch").is_empty()).await;
    wait_for("its verdict", || rows(&db)[0].2 == 1).await;
    let mut logs = sigterm(first, &log).await;
    assert_eq!(rows(&db)[0].1, "pending");
    assert!(logs.contains("a notification was not delivered"), "{logs}");

    // The second: the receiver is back; the same notification, the same key, delivered.
    receiver.healthy.store(1, Ordering::SeqCst);
    let log = dir.path().join("second.log");
    let second = mjlink_run(&fake, dir.path(), &base, &log);
    wait_for("the delivery", || rows(&db)[0].1 == "delivered").await;
    logs.push_str(&sigterm(second, &log).await);
    let got = receiver.got("/switch");
    assert!(got.len() >= 2);
    let key = got[0].header("idempotency-key");
    assert!(got.iter().all(|request| request.header("idempotency-key") == key));
    for request in &got {
        let timestamp = request.header("x-mjlink-timestamp").unwrap();
        assert_eq!(
            request.header("x-mjlink-signature"),
            Some(hex_signature(timestamp, &request.body).as_str())
        );
    }

    assert!(logs.contains("notification"), "the log was captured: {logs}");
    for secret in [SECRET, URL_TOKEN, TOKEN] {
        assert!(!logs.contains(secret), "{secret} leaked into the log: {logs}");
        assert!(
            !database_text(&db).contains(secret),
            "{secret} was written to the database"
        );
    }
}

const MJ: &str = "936929561302675456";

fn mj_message(
    id: u64,
    content: &str,
    url: &str,
    filename: &str,
    reply_to: Option<&serde_json::Value>,
) -> serde_json::Value {
    let ms = ((id >> 22) as i64) + 1_420_070_400_000;
    let timestamp = chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();
    let mut message = serde_json::json!({
        "id": id.to_string(), "channel_id": "10", "guild_id": "20",
        "author": {"id": MJ, "username": "Midjourney Bot", "bot": true},
        "content": content, "timestamp": timestamp, "type": if reply_to.is_some() { 19 } else { 0 },
        "attachments": [{"id": (id + 1).to_string(), "filename": filename, "url": url, "size": 1, "content_type": "image/png"}],
    });
    if let Some(parent) = reply_to {
        message["message_reference"] = serde_json::json!({"channel_id": "10", "message_id": parent["id"]});
    }
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_a_grid_and_a_result_enqueues_their_notifications_with_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let cdn = common::fake_cdn::Cdn::default();
    let base = format!("http://{}", cdn.clone().start().await);
    cdn.serve("/g.png", common::fake_cdn::png(5_000));
    cdn.serve("/u1.png", common::fake_cdn::png(3_000));
    let start = (1_714_521_600_000i64 - 1_420_070_400_000) as u64;
    let id = |n: u64| ((start + n * 1000) << 22) + n;
    let grid = mj_message(
        id(1),
        "**a cat** - <@5> (fast)",
        &format!("{base}/g.png"),
        "u_a_cat_5eed0000-0000-4000-8000-000000000001.png",
        None,
    );
    let upscale = mj_message(
        id(2),
        "**a cat** - Image #1 <@5>",
        &format!("{base}/u1.png"),
        "u1.png",
        Some(&grid),
    );
    let lines: Vec<String> = [&grid, &upscale]
        .iter()
        .map(|message| serde_json::json!({"op": 0, "t": "MESSAGE_CREATE", "s": 1, "d": message}).to_string())
        .collect();
    let db = dir.path().join("n.db");
    common::replay_lines(&lines, Store::open(&db).unwrap());

    let mut config = Config {
        database_path: db.clone(),
        ..Config::default()
    };
    config.archive.dir = dir.path().join("archive");
    config.archive.hosts = vec!["127.0.0.1".to_string()];
    config.notify = vec![webhook("ops", "http://127.0.0.1:9/none")];
    let summary = mjlink::archive::worker::archive_configured(&config, |_, _| {})
        .await
        .unwrap();
    assert_eq!(summary.archived, 2);

    let store = Store::open(&db).unwrap();
    let mut due = store.notify_due(i64::MAX, 10).unwrap();
    due.sort_by(|a, b| a.event.cmp(&b.event));
    let events: Vec<&str> = due.iter().map(|row| row.event.as_str()).collect();
    assert_eq!(events, ["grid_archived", "result_archived"]);
    let grid_body: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
    assert_eq!(grid_body["attachment_id"], (id(1) + 1).to_string());
    assert_eq!(grid_body["prompt"], "a cat");
    assert_eq!(
        due[0].jump_url.as_deref(),
        Some(&*format!("https://discord.com/channels/20/10/{}", id(1)))
    );
    let result_body: serde_json::Value = serde_json::from_str(&due[1].body).unwrap();
    assert_eq!(result_body["tile"], 1);
    assert_eq!(result_body["parent_id"], id(1).to_string());
    // The file named is the one archived, with its hash.
    for (row, body) in [(&due[0], &grid_body), (&due[1], &result_body)] {
        let file = config.archive.dir.join(row.file.as_deref().unwrap());
        let bytes = std::fs::read(&file).unwrap();
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(body["sha256"], sha);
    }
    // A second pass archives nothing new and tells nothing twice.
    mjlink::archive::worker::archive_configured(&config, |_, _| {})
        .await
        .unwrap();
    assert_eq!(store.notify_due(i64::MAX, 10).unwrap().len(), 2);
}

/// The log's writer masks each target's URL, its path alone (a client logging a request line
/// prints no host) and its signing key, whatever line carries them.
#[test]
fn the_log_masks_every_targets_url_path_and_signing_key() {
    let url = format!("https://discord.com/api/webhooks/123/{URL_TOKEN}");
    let config = Config {
        notify: vec![webhook("ops", &url)],
        ..Config::default()
    };
    mjlink::logging::hide_secrets(&config);
    let line =
        format!("POST {url} failed; request line: POST /api/webhooks/123/{URL_TOKEN} HTTP/1.1; key {SECRET}");
    let masked = mjlink::logging::redact(&line);
    assert!(
        !masked.contains(URL_TOKEN) && !masked.contains(SECRET),
        "{masked}"
    );
    assert!(masked.contains(mjlink::logging::MASK));
}
