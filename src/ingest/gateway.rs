//! The live bot. serenity is the gateway client (login, heartbeats, resume, slash commands)
//! and talks to Discord through the relay ([`crate::ingest::relay`]); the message events come
//! from the relay's raw frames ([`crate::ingest::live`]), not from serenity's typed model.
//! serenity's handler starts the catch-up over REST after every start and every reconnect
//! that was not a RESUME, and answers slash commands.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serenity::all::{Context, EventHandler, GatewayIntents, GuildId, HttpBuilder, Ready, ResumedEvent};
use serenity::async_trait;
use serenity::gateway::{ConnectionStage, ShardStageUpdateEvent};
use tokio::sync::{mpsc, Notify};

use crate::archive::download::{FetchPolicy, Fetcher};
use crate::archive::worker::{keep_archiving, WorkerOptions};
use crate::config::{Config, DiscordConfig, DISCORD_API_BASE};
use crate::ingest::backfill;
use crate::ingest::live::{Live, Watch};
use crate::ingest::pipeline::{Pipeline, PipelineConfig};
use crate::ingest::writer::{MissingParent, Writer, WriterHandle, WriterHooks};
use crate::queue::runner::{Runner, RunnerOptions, TickReport};
use crate::queue::submit::{DiscordSubmitter, DiscordTarget};
use crate::rest::{Rest, RestError};
use crate::store::{Store, StoreError};
use mjlink_core::snowflake::Snowflake;

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("Discord rejected the token (gateway close 4004): check discord.token / MJLINK_DISCORD_TOKEN")]
    InvalidToken,
    #[error("Discord refused the intents (gateway close 4014): enable the privileged Message Content intent for this bot in the Developer Portal (Bot -> Privileged Gateway Intents)")]
    DisallowedIntents,
    #[error("Discord refused the intents (gateway close 4013)")]
    InvalidIntents,
    #[error("the gateway connection failed: {0}")]
    Gateway(String),
    #[error(
        "could not connect to Discord within {secs} s of starting (discord.connect_timeout_secs): {reason}"
    )]
    NeverConnected { secs: u64, reason: String },
    #[error("cannot start the gateway relay on 127.0.0.1: {0}")]
    Relay(String),
    #[error("cannot open the recording {path}: {reason}")]
    Record {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot start the archiver: {0}")]
    Archive(String),
    #[error("the prompt queue stopped: {0}")]
    Queue(#[from] crate::queue::runner::QueueError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rest(#[from] RestError),
}

/// How long a shutdown waits for the live path to apply what the relay received.
const LIVE_DRAIN: Duration = Duration::from_secs(15);

/// How far before a channel's cursor a catch-up starts.
pub const CATCH_UP_OVERLAP_MS: i64 = 15 * 60 * 1000;

/// The intents mjlink asks for: guild messages with their content, and guilds (GUILD_CREATE
/// and the THREAD_* dispatches tell which thread belongs to which channel).
pub fn intents(discord: &DiscordConfig) -> GatewayIntents {
    let mut intents =
        GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES | GatewayIntents::MESSAGE_CONTENT;
    if discord.direct_messages {
        intents |= GatewayIntents::DIRECT_MESSAGES;
    }
    intents
}

/// Where a catch-up starts for each channel: the cursors as they were when the connection was
/// last lost (or at start), so that messages of the new session cannot hide the gap.
#[derive(Default)]
struct Gap {
    cursors: Option<BTreeMap<Snowflake, Snowflake>>,
}

/// serenity's event handler: READY (slash commands, catch-up), RESUMED, the connection's
/// stages (the cursors when it is lost), and interactions. Message events are not taken
/// here: they come from the relay's raw frames ([`Live`]), so none counts twice.
struct Handler {
    /// The slash commands (when enabled).
    commands: Option<Arc<crate::commands::discord::CommandState>>,
    /// Notified once the catch-up after READY is done.
    caught_up: Arc<Notify>,
    /// Notified at every READY (the first ends the connection deadline).
    connected: Arc<Notify>,
    writer: WriterHandle,
    discord: DiscordConfig,
    watch: Arc<Watch>,
    rest: Arc<Rest>,
    gap: Arc<Mutex<Gap>>,
    catching_up: Arc<tokio::sync::Mutex<()>>,
}

impl Handler {
    async fn catch_up(&self) {
        if !self.discord.backfill_on_start {
            return;
        }
        // One catch-up at a time; a second READY waits for the first to finish.
        let _running = self.catching_up.lock().await;
        let from = {
            let mut gap = self.gap.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            gap.cursors.take()
        };
        let from = match from {
            Some(cursors) => cursors,
            None => match self.writer.cursors().await {
                Ok(cursors) => cursors,
                Err(error) => {
                    tracing::error!(%error, "cannot read the channel cursors; no catch-up");
                    return;
                }
            },
        };
        let mut channels = from.clone();
        for channel in &self.discord.channels {
            channels.entry(*channel).or_default();
        }
        for (channel, after) in channels {
            if after == Snowflake::default() {
                // Nothing stored yet: a new channel's history is imported with `mjlink backfill`.
                continue;
            }
            // A configured channel, or a thread of one (a thread has its own cursor).
            if !self.watch.watches_channel(channel).await {
                continue;
            }
            // Start a little before the cursor: an event that was in flight when the last run
            // stopped may be older than the newest one stored. Overlap is skipped as duplicates.
            let after = Snowflake::from_timestamp_ms(after.timestamp_ms() - CATCH_UP_OVERLAP_MS).min(after);
            match backfill::channel_after(&self.rest, &self.writer, channel, after, |_| {}).await {
                Ok(done) if done.messages > 0 => {
                    tracing::info!(channel_id = %channel, messages = done.messages, pages = done.pages, "caught up");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(channel_id = %channel, %error, "catch-up failed"),
            }
        }
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        tracing::info!(
            bot = %ready.user.name,
            guilds = ready.guilds.len(),
            "connected to the Discord gateway"
        );
        self.connected.notify_one();
        if let Some(commands) = &self.commands {
            ctx.http.set_application_id(ready.application.id);
            let guilds: Vec<GuildId> = if self.discord.guilds.is_empty() {
                ready.guilds.iter().map(|guild| guild.id).collect()
            } else {
                self.discord
                    .guilds
                    .iter()
                    .map(|guild| GuildId::new(guild.0.max(1)))
                    .collect()
            };
            crate::commands::discord::register(&ctx, commands, &guilds).await;
        }
        self.catch_up().await;
        self.caught_up.notify_one();
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        tracing::info!("gateway session resumed (no catch-up needed)");
        // A resumed session replays what was missed; the snapshot is not needed.
        self.gap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .cursors = None;
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        if matches!(
            event.new,
            ConnectionStage::Disconnected | ConnectionStage::Connecting
        ) && matches!(event.old, ConnectionStage::Connected)
        {
            tracing::warn!("gateway connection lost; reconnecting");
            match self.writer.cursors().await {
                Ok(cursors) => {
                    self.gap
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .cursors = Some(cursors);
                }
                Err(error) => tracing::error!(%error, "cannot read the channel cursors"),
            }
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: serenity::all::Interaction) {
        if let Some(commands) = &self.commands {
            crate::commands::discord::handle(&ctx, interaction, commands).await;
        }
    }
}

/// Sees the report of every queue tick.
pub type QueueDisplay = Arc<dyn Fn(&TickReport) + Send + Sync>;

/// Options of a run beyond the config.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Also append every dispatch, exactly as received, to this file (`mjlink record`).
    pub record: Option<std::path::PathBuf>,
    /// Drive the prompt queue even when `queue.enabled` is off (`mjlink queue run`).
    pub drive_queue: bool,
    /// Stop once no queue item is left unfinished.
    pub stop_when_queue_done: bool,
    /// Sees the report of every queue tick (a progress display).
    pub on_queue_tick: Option<QueueDisplay>,
}

/// Runs the bot until `shutdown` completes or the gateway fails for good. Everything received
/// before the shutdown is stored and the database is closed cleanly before this returns.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> Result<(), BotError> {
    run_with(config, &RunOptions::default(), shutdown).await
}

pub async fn run_with(
    config: &Config,
    options: &RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BotError> {
    let token = config.discord.require_token()?.clone();
    tokio::pin!(shutdown);
    let store = Store::open(&config.database_path)?;
    let (missing_tx, missing_rx) = mpsc::unbounded_channel::<MissingParent>();
    let committed = Arc::new(Notify::new());
    let queue_wake = Arc::new(Notify::new());
    let writer = Writer::spawn(
        Pipeline::new(store, PipelineConfig::from_config(config)),
        WriterHooks {
            missing: Some(missing_tx),
            committed: vec![Arc::clone(&committed), Arc::clone(&queue_wake)],
        },
    );
    let rest = Arc::new(Rest::from_config(&config.discord)?);

    // Images are archived beside the gateway, woken by each commit that stored something.
    let archiver = if config.archive.enabled {
        let fetcher = Fetcher::new(FetchPolicy::from_config(&config.archive))
            .map_err(|error| BotError::Archive(error.to_string()))?;
        let store = Store::open(&config.database_path)?;
        Some(tokio::spawn(keep_archiving(
            store,
            fetcher,
            Some(Arc::clone(&rest)),
            WorkerOptions::from_config(config).map_err(|error| BotError::Archive(error.to_string()))?,
            committed,
        )))
    } else {
        None
    };

    // Notifications are delivered beside the gateway, from the outbox, on their own connection.
    let (stop_notify, notify_stopped) = tokio::sync::watch::channel(false);
    let notifier = if config.notify.is_empty() {
        None
    } else {
        let store = Store::open(&config.database_path)?;
        let mut stopped = notify_stopped.clone();
        Some(tokio::spawn(crate::notify::keep_delivering(
            store,
            crate::notify::NotifyOptions::from_config(config)?,
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        )))
    };

    // Parents referenced without a copy are fetched one by one, beside the gateway.
    let fetcher = backfill::ParentFetcher::spawn(Arc::clone(&rest), writer.handle(), missing_rx);

    // The prompt queue, after the first catch-up (what happened while offline is in the
    // database before any timeout can send a job again).
    let caught_up = Arc::new(Notify::new());
    let queue_done = Arc::new(Notify::new());
    let (stop_queue, queue_stopped) = tokio::sync::watch::channel(false);
    let mut queue = if config.queue.enabled || options.drive_queue {
        let submitter = DiscordSubmitter::new(DiscordTarget::from_config(
            &config.queue,
            &config.discord.api_base,
        )?)
        .map_err(|error| BotError::Queue(error.into()))?;
        let runner = Runner::new(
            Store::open(&config.database_path)?,
            submitter,
            RunnerOptions::from_config(config),
        );
        let ready = Arc::clone(&caught_up);
        let done = Arc::clone(&queue_done);
        let on_tick = options.on_queue_tick.clone();
        let mut stopped = queue_stopped.clone();
        Some(tokio::spawn(runner.run(
            async move { ready.notified().await },
            Arc::clone(&queue_wake),
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
            crate::clock::now_ms,
            move |report| {
                if let Some(on_tick) = &on_tick {
                    on_tick(report);
                }
                if report.active == 0 {
                    done.notify_one();
                }
            },
        )))
    } else {
        None
    };

    // A bot that has never connected since it started is most likely misconfigured: it
    // gives up at this deadline with the reason. The gateway's address comes from the
    // configured API base, never from a fallback (serenity's is gateway.discord.gg).
    let secs = config.discord.connect_timeout_secs;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let upstream = tokio::select! {
        upstream = first_gateway_url(&rest, &config.discord.api_base, deadline, secs) => upstream?,
        // A stop asked for while still looking for the gateway: nothing was received yet.
        () = &mut shutdown => {
            tracing::info!("stopped before connecting");
            let _ = stop_queue.send(true);
            if let Some(task) = queue.take() {
                task.abort();
            }
            fetcher.abort();
            if let Some(archiver) = archiver {
                archiver.abort();
            }
            stop_notifier(&stop_notify, notifier).await;
            writer.close().await?;
            return Ok(());
        }
    };
    let connected = Arc::new(Notify::new());
    let watch = Arc::new(Watch::new(config.discord.clone(), Arc::clone(&rest)));
    let handler = Handler {
        commands: match config.commands.enabled {
            true => Some(Arc::new(crate::commands::discord::CommandState::from_config(
                config,
            )?)),
            false => None,
        },
        caught_up: Arc::clone(&caught_up),
        connected: Arc::clone(&connected),
        writer: writer.handle(),
        discord: config.discord.clone(),
        watch: Arc::clone(&watch),
        rest: Arc::clone(&rest),
        gap: Arc::new(Mutex::new(Gap::default())),
        catching_up: Arc::new(tokio::sync::Mutex::new(())),
    };
    // serenity's rate limiter ignores the proxy setting, so it is off when traffic goes
    // elsewhere than discord.com (a proxy that limits for us, or a test double).
    let http = if config.discord.api_base == DISCORD_API_BASE {
        HttpBuilder::new(token.expose()).build()
    } else {
        HttpBuilder::new(token.expose())
            .proxy(config.discord.api_base.clone())
            .ratelimiter_disabled(true)
            .build()
    };
    let builder =
        serenity::all::ClientBuilder::new_with_http(http, intents(&config.discord)).event_handler(handler);
    let mut client = tokio::time::timeout_at(deadline, builder.into_future())
        .await
        .map_err(|_| BotError::NeverConnected {
            secs,
            reason: format!("no answer from {}", config.discord.api_base),
        })?
        .map_err(|error| BotError::Gateway(error.to_string()))?;
    // serenity talks to the relay, which hands every dispatch frame to the live path (and
    // appends it to the recording when asked) before passing it on.
    let (frames_tx, frames_rx) = mpsc::unbounded_channel::<String>();
    let relay = crate::ingest::relay::start(&upstream, options.record.as_deref(), frames_tx)
        .await
        .map_err(|error| match &options.record {
            Some(path) => BotError::Record {
                path: path.clone(),
                reason: error.to_string(),
            },
            None => BotError::Relay(error.to_string()),
        })?;
    *client.ws_url.lock().await = relay.url.clone();
    let (stop_live, live_stopped) = tokio::sync::watch::channel(false);
    let mut live = tokio::spawn(
        Live::new(writer.handle(), Arc::clone(&watch), config.bot_ids.clone()).run(frames_rx, live_stopped),
    );
    let shard_manager = Arc::clone(&client.shard_manager);

    let queue_finished = async {
        match queue.as_mut() {
            Some(task) => match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(BotError::Queue(error)),
                Err(error) => Err(BotError::Gateway(format!("the queue task stopped: {error}"))),
            },
            None => std::future::pending().await,
        }
    };
    let queue_emptied = async {
        if options.stop_when_queue_done {
            queue_done.notified().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let relay_failure = Arc::clone(&relay.last_error);
    let never_connected = async {
        tokio::select! {
            () = connected.notified() => std::future::pending::<()>().await,
            () = tokio::time::sleep_until(deadline) => {}
        }
    };
    let outcome = tokio::select! {
        result = client.start() => result.map_err(map_gateway_error),
        () = never_connected => {
            shard_manager.shutdown_all().await;
            let reason = relay_failure
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone()
                .unwrap_or_else(|| format!("the gateway at {upstream} started no session"));
            Err(BotError::NeverConnected { secs, reason })
        }
        result = queue_finished => {
            shard_manager.shutdown_all().await;
            result
        }
        () = queue_emptied => {
            tracing::info!("every queue item is finished");
            shard_manager.shutdown_all().await;
            Ok(())
        }
        () = &mut shutdown => {
            tracing::info!("shutting down: storing what was received");
            shard_manager.shutdown_all().await;
            Ok(())
        }
    };
    let _ = stop_queue.send(true);
    if let Some(task) = queue.take() {
        if !task.is_finished() {
            let _ = task.await;
        }
    }
    drop(client);
    // Every frame the relay received before serenity stopped is taken; anything later is
    // fetched again by the next start's catch-up (it overlaps).
    let _ = stop_live.send(true);
    drop(relay);
    if tokio::time::timeout(LIVE_DRAIN, &mut live).await.is_err() {
        live.abort();
        tracing::warn!("the live path did not finish in time; the next start's catch-up fetches what it had");
    }
    fetcher.abort();
    if let Some(archiver) = archiver {
        archiver.abort();
    }
    stop_notifier(&stop_notify, notifier).await;
    let stats = writer.close().await?;
    tracing::info!(
        applied = stats.applied,
        duplicates = stats.duplicates,
        unchanged = stats.unchanged,
        ignored = stats.ignored,
        "database closed"
    );
    outcome
}

/// Stops the notification worker: requests in flight are cut short (their rows stay pending
/// and are sent again by the next start).
async fn stop_notifier(stop: &tokio::sync::watch::Sender<bool>, task: Option<tokio::task::JoinHandle<()>>) {
    let _ = stop.send(true);
    if let Some(mut task) = task {
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// The gateway's address from the configured API base (`GET /gateway`), tried with backoff
/// until `deadline`: one line per failed attempt, then [`BotError::NeverConnected`].
async fn first_gateway_url(
    rest: &Rest,
    base: &str,
    deadline: tokio::time::Instant,
    secs: u64,
) -> Result<String, BotError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let reason = match tokio::time::timeout_at(deadline, rest.gateway_url()).await {
            Ok(Ok(url)) => return Ok(url),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer from {base} for the gateway address"),
        };
        if tokio::time::Instant::now() + backoff >= deadline {
            return Err(BotError::NeverConnected { secs, reason });
        }
        tracing::warn!("{reason}; trying again in {} s", backoff.as_secs());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn map_gateway_error(error: serenity::Error) -> BotError {
    use serenity::gateway::GatewayError;
    match error {
        serenity::Error::Gateway(GatewayError::InvalidAuthentication) => BotError::InvalidToken,
        serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => BotError::DisallowedIntents,
        serenity::Error::Gateway(GatewayError::InvalidGatewayIntents) => BotError::InvalidIntents,
        other => BotError::Gateway(other.to_string()),
    }
}
