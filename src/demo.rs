//! `mjlink demo`: the whole product with one command and no token, against a simulation. A
//! fake Discord (REST and gateway on 127.0.0.1) with a simulated Midjourney starts in this
//! process; the real bot connects to it, queues a few prompts with every upscale, submits
//! them as a user would, follows each job, links every result, archives every image, and
//! prints each item's lineage. With `--serve` ([`run_serving`]) the web UI runs beside it on the
//! demo's database, so the queue can be watched moving and the families looked at; it keeps
//! serving after the demo until the caller stops it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, Secret};
use crate::ingest::gateway::{BotError, RunOptions};
use crate::queue::runner::{self, TickReport};
use crate::queue::{view, Item, Upscales};
use crate::store::{Store, StoreError};
use mjlink_core::snowflake::Snowflake;
use mjlink_sim::discord::FakeDiscord;
use mjlink_sim::midjourney::{SimMidjourney, SimOptions};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo folder {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error(
        "the demo folder {path} is not empty; the demo only writes into a new or empty folder \
         (remove it, or choose another with --dir)"
    )]
    NotEmpty { path: PathBuf },
    #[error("cannot start the simulated Discord on 127.0.0.1: {0}")]
    Simulation(std::io::Error),
    #[error(transparent)]
    Bot(#[from] BotError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] crate::archive::worker::ArchiveError),
}

/// The prompts the demo queues: three that work, and one that Midjourney silently moderates
/// (so a failure and its reason show too).
pub fn default_prompts() -> Vec<String> {
    [
        "a lighthouse made of glass at dawn --ar 3:2 --v 7",
        "a fox reading a newspaper, watercolor --chaos 10",
        "a lighthouse made of glass at dawn --ar 3:2 --v 7 --stylize 250",
        "a storm inside a teacup [moderate]",
    ]
    .iter()
    .map(|prompt| prompt.to_string())
    .collect()
}

const BOT_TOKEN: &str = "demo-bot-token";
const GUILD: u64 = 900;
const CHANNEL: u64 = 1_000_000_000_000_000_001;
/// The demo stops here even if something never finishes.
const TIME_LIMIT: Duration = Duration::from_secs(180);

/// Makes `dir` the demo's folder: new, or empty. A folder that holds anything (an earlier
/// demo's, or a bot's with its real archive) is refused: the demo deletes nothing.
fn fresh_folder(dir: &Path) -> Result<(), DemoError> {
    let folder = |source| DemoError::Folder {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(folder)?;
    let mut entries = std::fs::read_dir(dir).map_err(folder)?;
    if entries.next().is_some() {
        return Err(DemoError::NotEmpty {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The configuration of the demo: everything points at the simulation.
pub fn demo_config(dir: &Path, api_base: &str, sim: &SimOptions) -> Config {
    let mut config = Config {
        database_path: dir.join("demo.db"),
        ..Config::default()
    };
    config.discord.token = Some(Secret::new(BOT_TOKEN));
    config.discord.api_base = api_base.to_string();
    config.archive.enabled = true;
    config.archive.dir = dir.join("archive");
    config.archive.hosts = vec!["127.0.0.1".to_string()];
    config.queue.enabled = true;
    config.queue.user_token = Some(Secret::new(sim.user_token.clone()));
    config.queue.user_id = Some(Snowflake(sim.user_id));
    config.queue.guild_id = Some(Snowflake(GUILD));
    config.queue.channel_id = Some(Snowflake(CHANNEL));
    config.queue.spacing_ms = 200;
    config.queue.wait_timeout_ms = 60_000;
    config.queue.render_timeout_ms = 60_000;
    config.queue.upscale_timeout_ms = 60_000;
    config
}

/// Where the demo tells what happens, one line at a time, as it happens.
pub type Say = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The web UI the demo started: it serves until [`Serving::stop`].
pub use crate::web::Serving;

/// Runs the demo in `dir` (new or empty: its `demo.db` and `archive/` go there), telling what happens
/// through `say`. Returns the items as they ended.
pub async fn run(dir: &Path, prompts: &[String], say: Say) -> Result<Vec<Item>, DemoError> {
    Ok(run_inner(dir, prompts, say, None).await?.0)
}

/// [`run`], with the web UI served on `listener` from the moment the demo's database exists
/// (no token: nothing can be changed from the page). The simulated Midjourney renders more
/// slowly, so that the queue is seen moving. Returns the items and the server, still serving.
pub async fn run_serving(
    dir: &Path,
    prompts: &[String],
    say: Say,
    listener: tokio::net::TcpListener,
) -> Result<(Vec<Item>, Serving), DemoError> {
    let (items, serving) = run_inner(dir, prompts, say, Some(listener)).await?;
    let serving =
        serving.ok_or_else(|| DemoError::Simulation(std::io::Error::other("the web UI did not start")))?;
    Ok((items, serving))
}

async fn run_inner(
    dir: &Path,
    prompts: &[String],
    say: Say,
    listener: Option<tokio::net::TcpListener>,
) -> Result<(Vec<Item>, Option<Serving>), DemoError> {
    fresh_folder(dir)?;
    let fake = FakeDiscord::start(BOT_TOKEN)
        .await
        .map_err(DemoError::Simulation)?;
    // Today's Midjourney: the grid replies to its own start (wire notes, section 9).
    let sim_options = SimOptions {
        step: Duration::from_millis(if listener.is_some() { 1200 } else { 150 }),
        shapes_2026: true,
        ..SimOptions::default()
    };
    let _midjourney = SimMidjourney::attach(&fake, sim_options.clone());
    let config = demo_config(dir, &fake.api_base(), &sim_options);
    say(&format!(
        "mjlink demo: a SIMULATION. A fake Discord and a simulated Midjourney run on {} in this \
         process; no real Discord, no Midjourney, no token.",
        fake.api_base()
    ));

    let mut store = Store::open(&config.database_path)?;
    let now = crate::clock::now_ms();
    let added = runner::add(&mut store, prompts, &Upscales::all(), 0, now)?;
    drop(store);
    let serving = match listener {
        Some(listener) => Some(serve(&config, listener, &say)?),
        None => None,
    };
    say(&format!("queued {} prompts, each with U1-U4:", added.len()));
    for item in &added {
        say(&format!("  {}  {}", &item.id[..8], item.prompt));
    }
    say("running the bot until every item is finished...");

    let progress = std::sync::Arc::clone(&say);
    let options = RunOptions {
        drive_queue: true,
        stop_when_queue_done: true,
        on_queue_tick: Some(std::sync::Arc::new(move |report: &TickReport| {
            for (id, from, to, note) in &report.transitions {
                progress(&format!("  {}  {from} -> {to}  {note}", &id[..id.len().min(8)]));
            }
        })),
        ..RunOptions::default()
    };
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let limit = {
        let timed_out = std::sync::Arc::clone(&timed_out);
        async move {
            tokio::time::sleep(TIME_LIMIT).await;
            timed_out.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    crate::ingest::gateway::run_with(&config, &options, limit).await?;
    if timed_out.load(std::sync::atomic::Ordering::Relaxed) {
        say(&format!(
            "stopped after {} s with items unfinished",
            TIME_LIMIT.as_secs()
        ));
    }

    // Whatever the archiver had not finished when the bot stopped.
    crate::archive::worker::archive_configured(&config, |_, _| {}).await?;
    let store = Store::open(&config.database_path)?;

    say("");
    say("lineage of each item (from the database; images from the archive):");
    let items = store.queue_items(&[])?;
    for item in &items {
        let family = match item.grid_message_id {
            Some(grid) => store.family_record(grid)?,
            None => None,
        };
        for line in view::lineage_text(item, family.as_ref()).lines() {
            say(line);
        }
    }
    say("");
    let db = config.database_path.display();
    say(&format!(
        "database: {db}   archive: {}   (try: mjlink --db {db} queue list; mjlink --db {db} links)",
        config.archive.dir.display()
    ));
    say("This was a simulation. To run mjlink on your own server, see README.md.");
    Ok((items, serving))
}

/// Starts the web UI on the demo's database and archive, and says where.
fn serve(config: &Config, listener: tokio::net::TcpListener, say: &Say) -> Result<Serving, DemoError> {
    let address = listener.local_addr().map_err(DemoError::Simulation)?;
    let options = crate::web::WebOptions {
        database: config.database_path.clone(),
        archive: crate::archive::backend::Backend::from_config(&config.archive)
            .map_err(|error| DemoError::Simulation(std::io::Error::other(error.to_string())))?,
        bind: address,
        token: None,
        pipeline: crate::ingest::pipeline::PipelineConfig::from_config(config),
    };
    let serving = Serving::spawn(listener, options).map_err(DemoError::Simulation)?;
    say(&format!(
        "the web UI: http://{address}/queue (the queue, live), http://{address}/ (the families)"
    ));
    Ok(serving)
}
