//! The queue runner against a real SQLite file, with a recording `Submitter` and Midjourney's
//! answers fed through the real pipeline. Time is passed in: a 15-minute timeout takes no
//! time at all.

use std::sync::Mutex;

use mjlink::ingest::pipeline::{Event, Pipeline, PipelineConfig};
use mjlink::queue::runner::{self, Runner, RunnerOptions};
use mjlink::queue::submit::{Button, SubmitError, Submitter};
use mjlink::queue::{Status, Upscales};
use mjlink::store::Store;
use mjlink_core::snowflake::Snowflake;
use serde_json::{json, Value};

const T0: i64 = 1_767_225_600_000; // 2026-01-01
const USER: u64 = 4242;
const CHANNEL: u64 = 77;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Imagine { prompt: String, nonce: String },
    Press { grid: Snowflake, custom_id: String },
}

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    refuse_token: bool,
}

impl Submitter for &Recorder {
    async fn imagine(&self, prompt: &str, nonce: &str) -> Result<(), SubmitError> {
        if self.refuse_token {
            return Err(SubmitError::Unauthorized { status: 401 });
        }
        self.calls.lock().unwrap().push(Call::Imagine {
            prompt: prompt.to_string(),
            nonce: nonce.to_string(),
        });
        Ok(())
    }

    async fn press(&self, button: &Button, _nonce: &str) -> Result<(), SubmitError> {
        self.calls.lock().unwrap().push(Call::Press {
            grid: button.grid_message_id,
            custom_id: button.custom_id.clone(),
        });
        Ok(())
    }
}

impl Recorder {
    fn imagines(&self) -> Vec<(String, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter_map(|call| match call {
                Call::Imagine { prompt, nonce } => Some((prompt.clone(), nonce.clone())),
                _ => None,
            })
            .collect()
    }

    fn presses(&self) -> Vec<(Snowflake, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter_map(|call| match call {
                Call::Press { grid, custom_id } => Some((*grid, custom_id.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Midjourney's side: messages through the real pipeline into the same database.
struct Midjourney {
    pipeline: Pipeline,
    counter: u64,
}

impl Midjourney {
    fn new(db: &std::path::Path) -> Midjourney {
        Midjourney {
            pipeline: Pipeline::new(Store::open(db).unwrap(), PipelineConfig::default()),
            counter: 0,
        }
    }

    fn id(&mut self, at_ms: i64) -> u64 {
        self.counter += 1;
        Snowflake::from_timestamp_ms(at_ms).0 + self.counter
    }

    fn message(&mut self, at_ms: i64, content: &str, extra: Value) -> Value {
        let id = self.id(at_ms);
        let mut message = json!({
            "id": id.to_string(), "channel_id": CHANNEL.to_string(), "guild_id": "900",
            "author": {"id": "936929561302675456", "username": "Midjourney Bot", "bot": true},
            "content": content,
            "timestamp": chrono::DateTime::from_timestamp_millis(at_ms).unwrap().to_rfc3339(),
            "type": 0, "attachments": [], "embeds": [],
        });
        for (key, value) in extra.as_object().unwrap() {
            message[key] = value.clone();
        }
        message
    }

    fn create(&mut self, message: &Value, at_ms: i64) {
        let digest = mjlink_core::digest::digest(message.to_string().as_bytes());
        let message = serde_json::from_value(message.clone()).unwrap();
        self.pipeline
            .apply(&Event::Create { message, digest }, at_ms)
            .unwrap();
        self.pipeline.flush().unwrap();
    }

    fn start(&mut self, at_ms: i64, prompt: &str, nonce: &str) -> Value {
        let message = self.message(
            at_ms,
            &format!("**{prompt}** - <@{USER}> (Waiting to start)"),
            json!({"type": 20, "nonce": nonce, "interaction": {"id": "1", "type": 2, "name": "imagine", "user": {"id": USER.to_string(), "username": "demo"}}}),
        );
        self.create(&message, at_ms);
        message
    }

    fn progress(&mut self, start: &Value, at_ms: i64, prompt: &str, uuid: &str) {
        let mut update = start.clone();
        update["content"] = Value::from(format!("**{prompt}** - <@{USER}> (62%) (fast)"));
        update["edited_timestamp"] = Value::from(
            chrono::DateTime::from_timestamp_millis(at_ms)
                .unwrap()
                .to_rfc3339(),
        );
        update["attachments"] = json!([{"id": "5", "filename": format!("{uuid}_grid_0.webp"), "url": "https://cdn.discordapp.com/x.webp", "size": 1}]);
        let digest = mjlink_core::digest::digest(update.to_string().as_bytes());
        let message = serde_json::from_value(update).unwrap();
        self.pipeline
            .apply(&Event::Update { message, digest }, at_ms)
            .unwrap();
        self.pipeline.flush().unwrap();
    }

    fn delete(&mut self, message: &Value, at_ms: i64) {
        let id = Snowflake::parse(message["id"].as_str().unwrap()).unwrap();
        self.pipeline
            .apply(
                &Event::Delete {
                    ids: vec![id],
                    channel_id: Some(Snowflake(CHANNEL)),
                },
                at_ms,
            )
            .unwrap();
        self.pipeline.flush().unwrap();
    }

    fn grid(&mut self, at_ms: i64, prompt: &str, uuid: &str) -> Value {
        let id = self.id(at_ms);
        let message = self.message(
            at_ms,
            &format!("**{prompt}** - <@{USER}> (fast)"),
            json!({"id": id.to_string(), "attachments": [{"id": (id + 1).to_string(), "filename": format!("demo_x_{uuid}.png"), "url": "https://cdn.discordapp.com/g.png", "size": 1}]}),
        );
        self.create(&message, at_ms);
        message
    }

    fn upscale(&mut self, at_ms: i64, grid: &Value, prompt: &str, tile: u8) -> Value {
        let id = self.id(at_ms);
        let message = self.message(
            at_ms,
            &format!("**{prompt}** - Image #{tile} <@{USER}>"),
            json!({"id": id.to_string(), "type": 19,
                   "attachments": [{"id": (id + 1).to_string(), "filename": format!("demo_x_{:08x}-0000-4000-8000-000000000000.png", id % 0xffff_ffff), "url": "https://cdn.discordapp.com/u.png", "size": 1}],
                   "message_reference": {"channel_id": CHANNEL.to_string(), "message_id": grid["id"], "guild_id": "900"},
                   "referenced_message": grid}),
        );
        self.create(&message, at_ms);
        message
    }

    fn error(&mut self, at_ms: i64, nonce: &str, title: &str) {
        let message = self.message(
            at_ms,
            "",
            json!({"type": 20, "nonce": nonce, "embeds": [{"title": title, "description": "…", "color": 16711680}],
                   "interaction": {"id": "1", "type": 2, "name": "imagine", "user": {"id": USER.to_string(), "username": "demo"}}}),
        );
        self.create(&message, at_ms);
    }
}

fn options() -> RunnerOptions {
    RunnerOptions {
        spacing_ms: 0,
        jitter_ms: 0,
        channel_id: Some(Snowflake(CHANNEL)),
        user_id: Some(Snowflake(USER)),
        ..RunnerOptions::default()
    }
}

fn setup(prompts: &[&str], upscales: &str) -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut store = Store::open(&db).unwrap();
    let prompts: Vec<String> = prompts.iter().map(|p| p.to_string()).collect();
    let items = runner::add(&mut store, &prompts, &Upscales::parse(upscales).unwrap(), 0, T0).unwrap();
    (dir, db, items.into_iter().map(|item| item.id).collect())
}

fn item(db: &std::path::Path, id: &str) -> mjlink::queue::Item {
    Store::open(db).unwrap().queue_item(id).unwrap().unwrap()
}

const UUID: &str = "aaaa0000-0000-4000-8000-000000000001";

#[tokio::test]
async fn the_happy_path_presses_four_upscales_and_collects_them() {
    let prompt = "a glass whale --ar 16:9 --v 7";
    let (_dir, db, ids) = setup(&[prompt], "all");
    let recorder = Recorder::default();
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, options());
    let mut mj = Midjourney::new(&db);

    let report = runner.tick(T0 + 1000).await.unwrap();
    assert_eq!(report.submitted, 1);
    let (sent, nonce) = recorder.imagines().remove(0);
    assert_eq!(sent, prompt, "sent exactly as asked");
    assert_eq!(item(&db, &ids[0]).status, Status::Submitted);

    let start = mj.start(T0 + 2000, prompt, &nonce);
    runner.tick(T0 + 2500).await.unwrap();
    assert_eq!(item(&db, &ids[0]).status, Status::Rendering);
    mj.progress(&start, T0 + 30_000, prompt, UUID);
    let grid = mj.grid(T0 + 60_000, prompt, UUID);
    mj.delete(&start, T0 + 60_500);
    runner.tick(T0 + 61_000).await.unwrap();
    let now = item(&db, &ids[0]);
    assert_eq!(now.status, Status::Upscaling);
    let presses = recorder.presses();
    assert_eq!(presses.len(), 4);
    assert_eq!(presses[0].1, format!("MJ::JOB::upsample::1::{UUID}"));
    assert!(presses
        .iter()
        .all(|(g, _)| g.to_string() == grid["id"].as_str().unwrap()));

    for tile in [2, 4, 1, 3] {
        mj.upscale(T0 + 90_000 + i64::from(tile) * 1000, &grid, prompt, tile);
    }
    runner.tick(T0 + 100_000).await.unwrap();
    let done = item(&db, &ids[0]);
    assert_eq!(done.status, Status::Done);
    assert_eq!(done.results.len(), 4);
    assert_eq!(recorder.imagines().len(), 1, "submitted once");
    let history: Vec<Status> = Store::open(&db)
        .unwrap()
        .queue_history(&ids[0])
        .unwrap()
        .into_iter()
        .map(|t| t.to)
        .collect();
    assert_eq!(
        history,
        [
            Status::Queued,
            Status::Submitted,
            Status::Rendering,
            Status::Upscaling,
            Status::Done
        ]
    );
}

#[tokio::test]
async fn a_stale_upscale_of_an_earlier_grid_with_the_same_prompt_is_not_taken() {
    let prompt = "sunflowers --s 750 --v 5.2";
    let (_dir, db, ids) = setup(&[prompt], "1");
    let recorder = Recorder::default();
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, options());
    let mut mj = Midjourney::new(&db);
    // An earlier grid of the same user with the same prompt, before this item existed.
    let old_grid = mj.grid(T0 - 600_000, prompt, "bbbb0000-0000-4000-8000-000000000002");

    runner.tick(T0 + 1000).await.unwrap();
    let (_, nonce) = recorder.imagines().remove(0);
    let start = mj.start(T0 + 2000, prompt, &nonce);
    let grid = mj.grid(T0 + 60_000, prompt, UUID);
    mj.delete(&start, T0 + 60_500);
    runner.tick(T0 + 61_000).await.unwrap();
    assert_eq!(
        item(&db, &ids[0]).grid_message_id.unwrap().to_string(),
        grid["id"].as_str().unwrap()
    );

    // While this item waits for its U1, the OLD grid's U1 arrives: not this item's result.
    let stale = mj.upscale(T0 + 70_000, &old_grid, prompt, 1);
    runner.tick(T0 + 71_000).await.unwrap();
    let waiting = item(&db, &ids[0]);
    assert_eq!(waiting.status, Status::Upscaling);
    assert!(waiting.results.is_empty(), "{:?} took {stale}", waiting.results);

    let real = mj.upscale(T0 + 80_000, &grid, prompt, 1);
    runner.tick(T0 + 81_000).await.unwrap();
    let done = item(&db, &ids[0]);
    assert_eq!(done.status, Status::Done);
    assert_eq!(done.results[&1].to_string(), real["id"].as_str().unwrap());
}

#[tokio::test]
async fn moderation_and_refusals_fail_with_the_reason_and_queue_full_retries() {
    let (_dir, db, ids) = setup(
        &["one [moderate]", "two [banned]", "three [invalid]", "four [full]"],
        "all",
    );
    let recorder = Recorder::default();
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, options());
    let mut mj = Midjourney::new(&db);
    runner.tick(T0 + 1000).await.unwrap();
    // Three in flight at most.
    assert_eq!(recorder.imagines().len(), 3);
    let nonces: Vec<String> = recorder.imagines().into_iter().map(|(_, n)| n).collect();

    let start = mj.start(T0 + 2000, "one [moderate]", &nonces[0]);
    mj.progress(&start, T0 + 5000, "one [moderate]", UUID);
    mj.delete(&start, T0 + 9000);
    mj.error(T0 + 2000, &nonces[1], "Banned prompt detected");
    mj.error(T0 + 2000, &nonces[2], "Invalid parameter");
    runner.tick(T0 + 13_000).await.unwrap();
    let one = item(&db, &ids[0]);
    assert_eq!(one.status, Status::Failed);
    assert!(one.last_error.unwrap().starts_with("moderated"));
    assert!(item(&db, &ids[1])
        .last_error
        .unwrap()
        .contains("Banned prompt detected"));
    assert!(item(&db, &ids[2])
        .last_error
        .unwrap()
        .contains("Invalid parameter"));
    // The fourth went out as soon as the others failed.
    let imagines = recorder.imagines();
    assert_eq!(imagines.len(), 4);
    assert_eq!(imagines[3].0, "four [full]");
    mj.error(T0 + 14_000, &imagines[3].1, "Queue full");
    runner.tick(T0 + 15_000).await.unwrap();
    let four = item(&db, &ids[3]);
    assert_eq!(four.status, Status::Queued);
    assert_eq!(four.attempts, 0);
    // Not before the backoff has passed.
    runner.tick(T0 + 20_000).await.unwrap();
    assert_eq!(recorder.imagines().len(), 4);
    runner.tick(T0 + 15_000 + 61_000).await.unwrap();
    assert_eq!(recorder.imagines().len(), 5);
    assert_eq!(item(&db, &ids[3]).status, Status::Submitted);
}

#[tokio::test]
async fn a_stall_times_out_retries_and_then_succeeds() {
    let prompt = "stalls once";
    let (_dir, db, ids) = setup(&[prompt], "none");
    let recorder = Recorder::default();
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, options());
    let mut mj = Midjourney::new(&db);
    runner.tick(T0).await.unwrap();
    let (_, first) = recorder.imagines().remove(0);
    mj.start(T0 + 1000, prompt, &first);
    // Ten minutes of silence are allowed; eleven are not.
    runner.tick(T0 + 9 * 60_000).await.unwrap();
    assert_eq!(item(&db, &ids[0]).status, Status::Rendering);
    runner.tick(T0 + 12 * 60_000).await.unwrap();
    let retried = item(&db, &ids[0]);
    assert_eq!(retried.status, Status::Queued);
    assert!(retried.last_error.unwrap().contains("no progress"));
    runner.tick(T0 + 12 * 60_000 + 31_000).await.unwrap();
    let imagines = recorder.imagines();
    assert_eq!(imagines.len(), 2);
    assert_ne!(imagines[1].1, first, "a new nonce");
    let second_start = mj.start(T0 + 13 * 60_000, prompt, &imagines[1].1);
    mj.grid(T0 + 14 * 60_000, prompt, UUID);
    mj.delete(&second_start, T0 + 14 * 60_000 + 100);
    runner.tick(T0 + 14 * 60_000 + 500).await.unwrap();
    let done = item(&db, &ids[0]);
    assert_eq!(done.status, Status::Done);
    assert_eq!(done.attempts, 2);
}

#[tokio::test]
async fn a_restart_in_every_state_loses_nothing_and_sends_nothing_twice() {
    // a: its grid arrives while stopped; b: submitted, nothing seen; c: rendering;
    // d: upscaling with one of two results; e: still queued.
    let prompts = ["p a", "p b", "p c", "p d", "p e"];
    let (_dir, db, ids) = setup(&prompts, "1,2");
    let recorder = Recorder::default();
    let mut mj = Midjourney::new(&db);
    let mut limits = options();
    limits.limits.max_in_flight = 4;
    {
        let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, limits.clone());
        runner.tick(T0).await.unwrap();
        let nonces: Vec<String> = recorder.imagines().into_iter().map(|(_, n)| n).collect();
        assert_eq!(nonces.len(), 4);
        mj.start(T0 + 1000, "p c", &nonces[2]);
        let start = mj.start(T0 + 1000, "p d", &nonces[3]);
        let grid = mj.grid(T0 + 30_000, "p d", UUID);
        mj.delete(&start, T0 + 30_100);
        runner.tick(T0 + 31_000).await.unwrap();
        assert_eq!(item(&db, &ids[3]).status, Status::Upscaling);
        mj.upscale(T0 + 40_000, &grid, "p d", 1);
        runner.tick(T0 + 41_000).await.unwrap();
        // The runner stops here (dropped), with items in every state.
    }
    let states: Vec<Status> = ids.iter().map(|id| item(&db, id).status).collect();
    assert_eq!(
        states,
        [
            Status::Submitted,
            Status::Submitted,
            Status::Rendering,
            Status::Upscaling,
            Status::Queued
        ]
    );
    let presses_before = recorder.presses().len();
    // While it was stopped, the first item's grid came in (the catch-up stores it).
    let nonce0 = item(&db, &ids[0]).nonce.unwrap();
    let start0 = mj.start(T0 + 50_000, "p a", &nonce0);
    let grid0 = mj.grid(T0 + 80_000, "p a", "cccc0000-0000-4000-8000-000000000003");
    mj.delete(&start0, T0 + 80_100);

    // Restarted with room for one more job.
    limits.limits.max_in_flight = 5;
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, limits);
    runner.tick(T0 + 90_000).await.unwrap();
    let first = item(&db, &ids[0]);
    assert_eq!(
        first.status,
        Status::Upscaling,
        "found in history, not sent again"
    );
    assert_eq!(
        first.grid_message_id.unwrap().to_string(),
        grid0["id"].as_str().unwrap()
    );
    // Nothing was submitted twice: 4 before, the fifth only now.
    let prompts_sent: Vec<String> = recorder.imagines().into_iter().map(|(p, _)| p).collect();
    assert_eq!(prompts_sent.len(), 5);
    assert_eq!(prompts_sent[4], "p e");
    // The upscaling item kept its presses: only the new grid's two were pressed.
    assert_eq!(recorder.presses().len(), presses_before + 2);
    assert_eq!(item(&db, &ids[3]).results.len(), 1);
}

#[tokio::test]
async fn cancel_stops_an_item_and_a_refused_token_stops_the_queue() {
    let (_dir, db, ids) = setup(&["first", "second"], "none");
    let mut store = Store::open(&db).unwrap();
    let runner::Cancelled::Now(cancelled) = runner::cancel(&mut store, &ids[0][..8], T0 + 10).unwrap() else {
        panic!("not cancelled");
    };
    assert_eq!(cancelled.status, Status::Cancelled);
    let recorder = Recorder::default();
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, options());
    runner.tick(T0 + 1000).await.unwrap();
    let sent: Vec<String> = recorder.imagines().into_iter().map(|(p, _)| p).collect();
    assert_eq!(sent, ["second"]);
    // Cancelling again says it had finished; history shows who cancelled.
    assert!(matches!(
        runner::cancel(&mut store, &ids[0], T0 + 20).unwrap(),
        runner::Cancelled::AlreadyFinished(item) if item.status == Status::Cancelled
    ));
    let history = store.queue_history(&ids[0]).unwrap();
    assert_eq!(history.last().unwrap().note, "cancelled by the user");

    let (_dir2, db2, _) = setup(&["third"], "none");
    let refusing = Recorder {
        refuse_token: true,
        ..Recorder::default()
    };
    let mut runner = Runner::new(Store::open(&db2).unwrap(), &refusing, options());
    let error = runner.tick(T0).await.unwrap_err().to_string();
    assert!(error.contains("refused the user token"), "{error}");
}

/// The run loop itself on tokio's paused clock: 40 virtual minutes of a job Midjourney never
/// starts take no real time. Timeouts count from the submission; each retry waits longer.
#[tokio::test(start_paused = true)]
async fn the_run_loop_retries_a_silent_job_on_virtual_time() {
    let (_dir, db, ids) = setup(&["never answered"], "none");
    let recorder = Recorder::default();
    let runner = Runner::new(Store::open(&db).unwrap(), &recorder, options());
    let started = tokio::time::Instant::now();
    let clock = move || T0 + started.elapsed().as_millis() as i64;
    let minutes = |n: u64| std::time::Duration::from_secs(n * 60);
    runner
        .run(
            async {},
            std::sync::Arc::new(tokio::sync::Notify::new()),
            tokio::time::sleep(minutes(40)),
            clock,
            |_| {},
        )
        .await
        .unwrap();
    // Sent at 0; silent for 15 minutes -> again after 30 s (15.5); silent -> again after
    // 60 s (about 31.5); the third has not timed out by minute 40.
    let imagines = recorder.imagines();
    assert_eq!(imagines.len(), 3);
    let item = item(&db, &ids[0]);
    assert_eq!((item.status, item.attempts), (Status::Submitted, 3));
    let history = Store::open(&db).unwrap().queue_history(&ids[0]).unwrap();
    let sent_at: Vec<i64> = history
        .iter()
        .filter(|t| t.to == Status::Submitted)
        .map(|t| (t.at_ms - T0) / 1000)
        .collect();
    assert_eq!(sent_at.len(), 3);
    assert!(sent_at[0] <= 1, "{sent_at:?}");
    assert!((930..=935).contains(&sent_at[1]), "{sent_at:?}");
    assert!((1890..=1900).contains(&sent_at[2]), "{sent_at:?}");
}

// Principle 1: an item is bound to its job by exact signals only (nonce, the start's final,
// job UUID) whenever one exists; the prompt only for a submission nobody watched, in its own
// window, when exactly one grid fits.

const UUID_X: &str = "aaaa0000-0000-4000-8000-00000000000a";
const UUID_Y: &str = "bbbb0000-0000-4000-8000-00000000000b";
const UUID_OTHER: &str = "eeee0000-0000-4000-8000-00000000000e";

fn grid_id(grid: &Value) -> String {
    grid["id"].as_str().unwrap().to_string()
}

fn grid_of(db: &std::path::Path, id: &str) -> Option<String> {
    item(db, id).grid_message_id.map(|grid| grid.to_string())
}

/// The grids the runner pressed buttons on.
fn pressed_grids(recorder: &Recorder) -> Vec<String> {
    recorder
        .presses()
        .into_iter()
        .map(|(grid, _)| grid.to_string())
        .collect()
}

#[tokio::test]
async fn two_same_prompt_items_in_flight_each_take_their_own_grid() {
    let prompt = "twin lanterns --ar 1:1 --v 7";
    let (_dir, db, ids) = setup(&[prompt, prompt], "1");
    let recorder = Recorder::default();
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, options());
    let mut mj = Midjourney::new(&db);
    runner.tick(T0 + 1000).await.unwrap();
    let nonces: Vec<String> = recorder.imagines().into_iter().map(|(_, n)| n).collect();
    assert_eq!(nonces.len(), 2);
    let start_x = mj.start(T0 + 2000, prompt, &nonces[0]);
    let start_y = mj.start(T0 + 2100, prompt, &nonces[1]);
    mj.progress(&start_x, T0 + 10_000, prompt, UUID_X);
    mj.progress(&start_y, T0 + 10_100, prompt, UUID_Y);
    runner.tick(T0 + 11_000).await.unwrap();
    assert_eq!(item(&db, &ids[0]).status, Status::Rendering);
    assert_eq!(item(&db, &ids[1]).status, Status::Rendering);

    // The second job finishes first: its grid is its own, not the first item's.
    let grid_y = mj.grid(T0 + 40_000, prompt, UUID_Y);
    runner.tick(T0 + 41_000).await.unwrap();
    assert_eq!(
        grid_of(&db, &ids[0]),
        None,
        "the first item took the second job's grid"
    );
    assert_eq!(grid_of(&db, &ids[1]), Some(grid_id(&grid_y)));
    let grid_x = mj.grid(T0 + 50_000, prompt, UUID_X);
    runner.tick(T0 + 51_000).await.unwrap();
    assert_eq!(grid_of(&db, &ids[0]), Some(grid_id(&grid_x)));
    assert_eq!(grid_of(&db, &ids[1]), Some(grid_id(&grid_y)));
    assert_eq!(pressed_grids(&recorder), [grid_id(&grid_y), grid_id(&grid_x)]);
}

/// Another job of the same user and prompt (not a queue item: typed by hand) posts its grid
/// `when` relative to the item's start; the item keeps to its own grid.
async fn another_jobs_grid(when: &str) {
    let prompt = "lone heron at dawn --v 7";
    let (_dir, db, ids) = setup(&[prompt], "1");
    let recorder = Recorder::default();
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, options());
    let mut mj = Midjourney::new(&db);
    let mut other = None;
    if when == "before" {
        // A moment before the submission.
        other = Some(mj.grid(T0 - 2_000, prompt, UUID_OTHER));
    }
    runner.tick(T0).await.unwrap();
    let (_, nonce) = recorder.imagines().remove(0);
    if when == "between" {
        // Sent, its start not seen yet.
        other = Some(mj.grid(T0 + 1_000, prompt, UUID_OTHER));
        runner.tick(T0 + 1_500).await.unwrap();
    }
    let start = mj.start(T0 + 2_000, prompt, &nonce);
    runner.tick(T0 + 2_500).await.unwrap();
    if when == "after" {
        other = Some(mj.grid(T0 + 5_000, prompt, UUID_OTHER));
        runner.tick(T0 + 5_500).await.unwrap();
    }
    mj.progress(&start, T0 + 20_000, prompt, UUID_X);
    runner.tick(T0 + 20_500).await.unwrap();
    let other = other.unwrap();
    assert_eq!(
        grid_of(&db, &ids[0]),
        None,
        "{when}: took the other job's grid {}",
        grid_id(&other)
    );
    assert!(
        recorder.presses().is_empty(),
        "{when}: pressed {:?}",
        recorder.presses()
    );

    let mine = mj.grid(T0 + 40_000, prompt, UUID_X);
    mj.delete(&start, T0 + 40_500);
    runner.tick(T0 + 41_000).await.unwrap();
    assert_eq!(grid_of(&db, &ids[0]), Some(grid_id(&mine)), "{when}");
    assert_eq!(pressed_grids(&recorder), [grid_id(&mine)], "{when}");
}

#[tokio::test]
async fn a_same_prompt_grid_of_another_job_before_the_start_is_not_taken() {
    another_jobs_grid("before").await;
}

#[tokio::test]
async fn a_same_prompt_grid_of_another_job_between_submission_and_start_is_not_taken() {
    another_jobs_grid("between").await;
}

#[tokio::test]
async fn a_same_prompt_grid_of_another_job_after_the_start_is_not_taken() {
    another_jobs_grid("after").await;
}

#[tokio::test]
async fn after_a_restart_same_prompt_items_keep_to_their_own_grids() {
    let prompt = "paper boats, rain --v 7";
    let (_dir, db, ids) = setup(
        &[prompt, prompt, "solo crane", "solo crane twin", "solo crane twin"],
        "1",
    );
    let recorder = Recorder::default();
    let mut mj = Midjourney::new(&db);
    let mut limits = options();
    limits.limits.max_in_flight = 5;
    {
        let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, limits.clone());
        runner.tick(T0).await.unwrap();
        let nonces: Vec<String> = recorder.imagines().into_iter().map(|(_, n)| n).collect();
        assert_eq!(nonces.len(), 5);
        let start_x = mj.start(T0 + 1000, prompt, &nonces[0]);
        let start_y = mj.start(T0 + 1100, prompt, &nonces[1]);
        mj.progress(&start_x, T0 + 10_000, prompt, UUID_X);
        mj.progress(&start_y, T0 + 10_100, prompt, UUID_Y);
        runner.tick(T0 + 11_000).await.unwrap();
        assert_eq!(item(&db, &ids[0]).job_uuid.as_deref(), Some(UUID_X));
        // The runner stops here.
    }
    // While it was stopped: the second job's grid, and grids whose starts nobody saw (the
    // catch-up brings history, which carries no nonce): one for "solo crane", one for the
    // two "solo crane twin" items (it may be either's).
    let grid_y = mj.grid(T0 + 40_000, prompt, UUID_Y);
    let solo = mj.grid(T0 + 42_000, "solo crane", "cccc0000-0000-4000-8000-00000000000c");
    let twin = mj.grid(
        T0 + 43_000,
        "solo crane twin",
        "dddd0000-0000-4000-8000-00000000000d",
    );

    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, limits);
    runner.tick(T0 + 60_000).await.unwrap();
    assert_eq!(
        grid_of(&db, &ids[0]),
        None,
        "the first item took the second job's grid"
    );
    assert_eq!(grid_of(&db, &ids[1]), Some(grid_id(&grid_y)));
    // The prompt, for a submission nobody watched, when exactly one item can own the grid.
    assert_eq!(grid_of(&db, &ids[2]), Some(grid_id(&solo)));
    assert_eq!(grid_of(&db, &ids[3]), None);
    assert_eq!(grid_of(&db, &ids[4]), None);
    let grid_x = mj.grid(T0 + 70_000, prompt, UUID_X);
    runner.tick(T0 + 71_000).await.unwrap();
    assert_eq!(grid_of(&db, &ids[0]), Some(grid_id(&grid_x)));
    let _ = twin;
}

#[tokio::test]
async fn a_finished_item_is_told_through_the_outbox_with_its_end_and_reason() {
    let prompt = "a glass whale --ar 16:9 --v 7";
    let (_dir, db, ids) = setup(&[prompt, "one [moderate]"], "all");
    let recorder = Recorder::default();
    let routes: mjlink::notify::Routes = vec![mjlink_core::notify::Route {
        target: "ops".into(),
        events: vec![],
    }]
    .into();
    let options = RunnerOptions {
        notify: routes,
        guild_id: Some(Snowflake(5)),
        ..options()
    };
    let mut runner = Runner::new(Store::open(&db).unwrap(), &recorder, options);
    let mut mj = Midjourney::new(&db);
    runner.tick(T0 + 1000).await.unwrap();
    let nonces: Vec<String> = recorder.imagines().into_iter().map(|(_, n)| n).collect();
    let start = mj.start(T0 + 2000, "one [moderate]", &nonces[1]);
    mj.progress(
        &start,
        T0 + 5000,
        "one [moderate]",
        "cccc0000-0000-4000-8000-000000000003",
    );
    mj.delete(&start, T0 + 9000);
    let whale = mj.start(T0 + 2000, prompt, &nonces[0]);
    mj.progress(&whale, T0 + 6000, prompt, UUID);
    let grid = mj.grid(T0 + 10_000, prompt, UUID);
    mj.delete(&whale, T0 + 10_500);
    runner.tick(T0 + 13_000).await.unwrap();
    for tile in 1..=4 {
        mj.upscale(T0 + 20_000 + i64::from(tile), &grid, prompt, tile);
    }
    runner.tick(T0 + 30_000).await.unwrap();
    assert_eq!(item(&db, &ids[0]).status, Status::Done);
    assert_eq!(item(&db, &ids[1]).status, Status::Failed);
    runner.tick(T0 + 40_000).await.unwrap();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT event, body, key FROM notify_outbox ORDER BY id")
        .unwrap();
    let told: Vec<(String, Value, String)> = stmt
        .query_map([], |row| {
            let body: String = row.get(1)?;
            Ok((row.get(0)?, serde_json::from_str(&body).unwrap(), row.get(2)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(told.len(), 2, "each end told once: {told:?}");
    let failed = told.iter().find(|(event, ..)| event == "queue_failed").unwrap();
    assert_eq!(failed.1["item_id"], ids[1].as_str());
    assert!(
        failed.1["reason"].as_str().unwrap().starts_with("moderated"),
        "{:?}",
        failed.1
    );
    assert_eq!(failed.1["missing_tiles"], serde_json::json!([1, 2, 3, 4]));
    let done = told.iter().find(|(event, ..)| event == "queue_done").unwrap();
    assert_eq!(done.1["item_id"], ids[0].as_str());
    assert_eq!(done.1["missing_tiles"], serde_json::json!([]));
    assert_eq!(
        done.1["jump_url"],
        format!(
            "https://discord.com/channels/5/{CHANNEL}/{}",
            grid["id"].as_str().unwrap()
        )
    );
}
