//! The prompt queue end to end: the real bot (serenity against the fake Discord), the real
//! Discord submitter (`POST /api/v9/interactions` with a user token), and the simulated
//! Midjourney answering as the real one does. Nothing reaches the internet.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mjlink::config::{Config, Secret};
use mjlink::ingest::gateway::RunOptions;
use mjlink::queue::runner;
use mjlink::queue::{Item, Status, Upscales};
use mjlink::store::Store;
use mjlink_core::snowflake::Snowflake;
use mjlink_sim::discord::FakeDiscord;
use mjlink_sim::midjourney::{SimMidjourney, SimOptions};

const BOT_TOKEN: &str = "queue-bot-token";
const GUILD: u64 = 900;
const CHANNEL: u64 = 1_000_000_000_000_000_001;
const LIMIT: Duration = Duration::from_secs(120);

struct World {
    fake: FakeDiscord,
    midjourney: SimMidjourney,
    config: Config,
    _dir: tempfile::TempDir,
}

async fn world(step_ms: u64) -> World {
    world_with(step_ms, false).await
}

async fn world_with(step_ms: u64, shapes_2026: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeDiscord::start(BOT_TOKEN).await.unwrap();
    let sim = SimOptions {
        step: Duration::from_millis(step_ms),
        shapes_2026,
        ..SimOptions::default()
    };
    let midjourney = SimMidjourney::attach(&fake, sim.clone());
    let mut config = mjlink::demo::demo_config(dir.path(), &fake.api_base(), &sim);
    config.discord.token = Some(Secret::new(BOT_TOKEN));
    config.queue.channel_id = Some(Snowflake(CHANNEL));
    config.queue.guild_id = Some(Snowflake(GUILD));
    config.queue.spacing_ms = 0;
    World {
        fake,
        midjourney,
        config,
        _dir: dir,
    }
}

fn add(config: &Config, prompts: &[String], upscales: &str) -> Vec<String> {
    let mut store = Store::open(&config.database_path).unwrap();
    runner::add(
        &mut store,
        prompts,
        &Upscales::parse(upscales).unwrap(),
        0,
        chrono::Utc::now().timestamp_millis(),
    )
    .unwrap()
    .into_iter()
    .map(|item| item.id)
    .collect()
}

/// Runs the bot with the queue until every item is finished (or `stop` fires).
async fn drive(config: &Config, stop: impl std::future::Future<Output = ()>) {
    let options = RunOptions {
        drive_queue: true,
        stop_when_queue_done: true,
        ..RunOptions::default()
    };
    let limit = async {
        tokio::select! {
            () = tokio::time::sleep(LIMIT) => panic!("the queue did not finish within {LIMIT:?}"),
            () = stop => {}
        }
    };
    mjlink::ingest::gateway::run_with(config, &options, limit)
        .await
        .unwrap();
}

fn items(db: &Path) -> BTreeMap<String, Item> {
    Store::open(db)
        .unwrap()
        .queue_items(&[])
        .unwrap()
        .into_iter()
        .map(|item| (item.id.clone(), item))
        .collect()
}

/// (parent id, tile) of each result link in the database.
fn links(db: &Path) -> BTreeMap<Snowflake, (Snowflake, u8)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT child_id, parent_id, tile FROM links WHERE status = 'linked' AND action = 'upscale'")
        .unwrap();
    stmt.query_map([], |row| {
        Ok((
            Snowflake::from_sql(row.get(0)?),
            (Snowflake::from_sql(row.get(1)?), row.get::<_, u8>(2)?),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_prompts_three_in_flight_every_item_done_with_its_four_upscales() {
    let world = world(5).await;
    // 100 distinct prompts, each queued twice: twins must not take each other's results.
    let prompts: Vec<String> = (0..200)
        .map(|n| format!("batch prompt {} --ar 3:2 --v 7", n % 100))
        .collect();
    let ids = add(&world.config, &prompts, "all");
    drive(&world.config, std::future::pending()).await;

    let db = &world.config.database_path;
    let items = items(db);
    let links = links(db);
    let grids: BTreeMap<u64, String> = world
        .midjourney
        .grids()
        .into_iter()
        .map(|grid| (grid.message_id, grid.prompt))
        .collect();
    let mut seen_grids = std::collections::BTreeSet::new();
    for id in &ids {
        let item = &items[id];
        assert_eq!(item.status, Status::Done, "{item:?}");
        assert_eq!(item.attempts, 1, "{item:?}");
        let grid = item.grid_message_id.unwrap();
        assert!(seen_grids.insert(grid), "two items took grid {grid}");
        assert_eq!(grids[&grid.0], item.prompt, "the grid is of this item's prompt");
        assert_eq!(item.results.len(), 4);
        for (tile, result) in &item.results {
            assert_eq!(
                links[result],
                (grid, *tile),
                "U{tile} of {id} is linked to its grid"
            );
        }
    }
    // Each prompt sent exactly as many times as it was queued; each tile pressed once.
    for n in 0..100 {
        assert_eq!(
            world
                .midjourney
                .imagine_requests(&format!("batch prompt {n} --ar 3:2 --v 7")),
            2
        );
    }
    assert_eq!(world.midjourney.upscale_presses().len(), 800);
    // Never more than three jobs at Midjourney at once: it never had to say `Job queued`.
    let conn = rusqlite::Connection::open(db).unwrap();
    let queued_notices: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE error_title IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(queued_notices, 0);
    assert_eq!(world.midjourney.queued_jobs(), 0);
    let store = Store::open(db).unwrap();
    for id in &ids {
        let path: Vec<Status> = store.queue_history(id).unwrap().iter().map(|t| t.to).collect();
        // Rendering may be skipped when the start and the grid are seen in one tick.
        let canonical = [
            Status::Queued,
            Status::Submitted,
            Status::Rendering,
            Status::Upscaling,
            Status::Done,
        ];
        assert!(
            path.starts_with(&[Status::Queued, Status::Submitted])
                && path.ends_with(&[Status::Upscaling, Status::Done]),
            "{path:?}"
        );
        let mut rest = canonical.iter();
        assert!(path.iter().all(|status| rest.any(|c| c == status)), "{path:?}");
    }
    let _ = &world.fake;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_2026_shapes_each_grid_is_its_jobs_root_and_completes_its_start() {
    // Midjourney in 2026: the grid replies to its own start message and carries the
    // submission's nonce (wire notes, section 9).
    let world = world_with(5, true).await;
    let prompts: Vec<String> = (0..20).map(|n| format!("twenty six {} --v 7", n % 10)).collect();
    let ids = add(&world.config, &prompts, "1,3");
    drive(&world.config, std::future::pending()).await;

    let db = &world.config.database_path;
    let items = items(db);
    let links = links(db);
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut seen_grids = std::collections::BTreeSet::new();
    for id in &ids {
        let item = &items[id];
        assert_eq!(item.status, Status::Done, "{item:?}");
        let grid = item.grid_message_id.unwrap();
        assert!(seen_grids.insert(grid), "two items took grid {grid}");
        let kind: String = conn
            .query_row(
                "SELECT kind FROM messages WHERE id = ?1",
                [grid.to_sql()],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(
            kind, "imagine",
            "the grid replying to its start is a root, not a reroll"
        );
        let start = item.start_message_id.unwrap();
        let (outcome, final_id): (String, Option<i64>) = conn
            .query_row(
                "SELECT outcome, final_id FROM messages WHERE id = ?1",
                [start.to_sql()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((outcome.as_str(), final_id), ("completed", Some(grid.to_sql())));
        assert_eq!(item.results.len(), 2);
        for (tile, result) in &item.results {
            assert_eq!(links[result], (grid, *tile));
        }
    }
    let reroll_links: i64 = conn
        .query_row("SELECT COUNT(*) FROM links WHERE action = 'reroll'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(reroll_links, 0);
    let _ = &world.fake;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_moderation_queue_full_and_a_stall_each_end_as_they_should() {
    let mut world = world(20).await;
    world.config.queue.render_timeout_ms = 1_500;
    world.config.queue.wait_timeout_ms = 1_500;
    let prompts: Vec<String> = [
        "a [banned] thing",
        "a --badparam [invalid] thing",
        "a [moderate]d thing",
        "a [queue-full] thing",
        "a [stall] thing",
        "a fine thing",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let ids = add(&world.config, &prompts, "1,3");
    world.config.queue.retry_wait_ms = 300;
    world.config.queue.queue_full_wait_ms = 300;
    let db = world.config.database_path.clone();
    drive(&world.config, std::future::pending()).await;

    let items = items(&db);
    let reason = |n: usize| items[&ids[n]].last_error.clone().unwrap_or_default();
    assert_eq!(items[&ids[0]].status, Status::Failed);
    assert!(reason(0).contains("Banned prompt detected"), "{}", reason(0));
    assert_eq!(items[&ids[1]].status, Status::Failed);
    assert!(reason(1).contains("Invalid parameter"), "{}", reason(1));
    assert_eq!(items[&ids[2]].status, Status::Failed);
    assert!(reason(2).starts_with("moderated"), "{}", reason(2));
    assert_eq!(items[&ids[3]].status, Status::Done);
    assert_eq!(items[&ids[3]].attempts, 1);
    // The stall timed out, was sent again, and then finished.
    assert_eq!(items[&ids[4]].status, Status::Done);
    assert_eq!(items[&ids[4]].attempts, 2);
    assert_eq!(world.midjourney.imagine_requests("a [stall] thing"), 2);
    assert_eq!(items[&ids[5]].status, Status::Done);
    assert_eq!(items[&ids[5]].results.keys().copied().collect::<Vec<_>>(), [1, 3]);
    let history = Store::open(&db).unwrap().queue_history(&ids[4]).unwrap();
    assert!(
        history
            .iter()
            .any(|t| t.to == Status::Queued && t.note.contains("no progress")),
        "{history:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_in_the_middle_and_a_restart_lose_nothing_and_send_nothing_twice() {
    let world = world(30).await;
    let prompts: Vec<String> = (0..12).map(|n| format!("restart prompt {n}")).collect();
    let ids = add(&world.config, &prompts, "all");
    let db = world.config.database_path.clone();
    // Stop as soon as a few items are in the middle of their jobs.
    let some_in_flight = async {
        loop {
            let items = items(&db);
            let done = items.values().filter(|item| item.status == Status::Done).count();
            let busy = items.values().filter(|item| item.status.at_midjourney()).count();
            if done >= 2 && busy >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    drive(&world.config, some_in_flight).await;
    let between = items(&db);
    assert!(between.values().any(|item| item.status.at_midjourney()));
    assert!(between.values().any(|item| item.status == Status::Queued));
    // Midjourney keeps working while mjlink is down.
    tokio::time::sleep(Duration::from_millis(600)).await;

    drive(&world.config, std::future::pending()).await;
    let after = items(&db);
    for id in &ids {
        assert_eq!(after[id].status, Status::Done, "{:?}", after[id]);
        assert_eq!(after[id].results.len(), 4);
        assert_eq!(after[id].attempts, 1, "sent once: {:?}", after[id]);
    }
    for prompt in &prompts {
        assert_eq!(world.midjourney.imagine_requests(prompt), 1, "{prompt}");
    }
    assert_eq!(world.midjourney.upscale_presses().len(), 48);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_the_whole_product_and_says_it_is_a_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = std::sync::Arc::clone(&lines);
    let say: mjlink::demo::Say =
        std::sync::Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_string()));
    let items = mjlink::demo::run(dir.path(), &mjlink::demo::default_prompts(), say)
        .await
        .unwrap();
    let statuses: Vec<Status> = items.iter().map(|item| item.status).collect();
    assert_eq!(
        statuses,
        [Status::Done, Status::Done, Status::Done, Status::Failed]
    );
    let text = lines.lock().unwrap().join("\n");
    assert!(text.starts_with("mjlink demo: a SIMULATION."), "{text}");
    assert!(text.contains("moderated"), "{text}");
    assert_eq!(text.matches("linked by reference").count(), 12, "{text}");
    // 3 grids and 12 upscales archived and verified.
    let mut store = Store::open(&dir.path().join("demo.db")).unwrap();
    let archive = mjlink::archive::backend::Backend::Fs {
        root: dir.path().join("archive"),
    };
    let report = mjlink::archive::worker::verify(&mut store, &archive, false)
        .await
        .unwrap();
    assert_eq!((report.checked, report.ok), (15, 15), "{:?}", report.problems);
    // A second run in the same folder is refused: the demo deletes nothing.
    let quiet: mjlink::demo::Say = std::sync::Arc::new(|_: &str| {});
    let again = mjlink::demo::run(dir.path(), &mjlink::demo::default_prompts()[..1], quiet)
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("is not empty"), "{again}");
    let report = mjlink::archive::worker::verify(&mut store, &archive, false)
        .await
        .unwrap();
    assert_eq!((report.checked, report.ok), (15, 15), "{:?}", report.problems);
    // A new folder works.
    let quiet: mjlink::demo::Say = std::sync::Arc::new(|_: &str| {});
    let again = mjlink::demo::run(
        &dir.path().join("again"),
        &mjlink::demo::default_prompts()[..1],
        quiet,
    )
    .await
    .unwrap();
    assert_eq!(again.len(), 1);
}
