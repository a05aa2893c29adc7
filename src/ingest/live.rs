//! The live path: the gateway's dispatch frames, exactly as the relay received them
//! ([`crate::ingest::relay`]), made into events by the core (`event::from_dispatch_line`, as
//! replay does: the same bytes give the same event and digest) and sent to the writer in the
//! order they arrived. serenity's typed model is not in the way: what it drops (fields it does
//! not model, Components-V2 nodes, a whole dispatch it cannot deserialize) is kept.
//!
//! Only watched messages pass ([`Watch`]): a configured channel, or a thread whose parent is
//! one. Which channel is a thread of which is learned from the same frames (GUILD_CREATE,
//! CHANNEL_* and THREAD_* dispatches) and, for an id nothing told about, from
//! `GET /channels/{id}` once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::DiscordConfig;
use crate::ingest::writer::WriterHandle;
use crate::rest::{Rest, RestError};
use mjlink_core::channel::{self, Channel, Known, Threads, CHANNEL_EVENTS};
use mjlink_core::event::{self, Event, Line};
use mjlink_core::parse::BotIds;
use mjlink_core::snowflake::Snowflake;
use mjlink_core::wire::Message;

/// How long a channel whose lookup failed (a transport error, a 5xx) is not looked up again.
const RETRY_LOOKUP_AFTER: Duration = Duration::from_secs(300);

/// Which channels the bot watches: those configured (`discord.guilds`, `discord.channels`,
/// `discord.direct_messages`), and the threads of watched channels.
pub struct Watch {
    discord: DiscordConfig,
    rest: Arc<Rest>,
    threads: Mutex<Threads>,
    /// Channels whose lookup failed for a reason that may pass, and when to try again.
    retry_at: Mutex<HashMap<Snowflake, Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Watch {
    pub fn new(discord: DiscordConfig, rest: Arc<Rest>) -> Watch {
        Watch {
            discord,
            rest,
            threads: Mutex::new(Threads::default()),
            retry_at: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers what the gateway said about channels and threads.
    pub fn learn(&self, channels: &[Channel]) {
        let mut threads = lock(&self.threads);
        for channel in channels {
            threads.learn(channel);
        }
    }

    /// Whether a message in `channel` of `guild` is watched: the channel itself, or the
    /// thread of a watched channel.
    pub async fn watches(&self, guild: Option<Snowflake>, channel: Snowflake) -> bool {
        if self.discord.watches(guild, channel) {
            return true;
        }
        // With no channel list, every channel of a watched guild is watched already (threads
        // too); a guild that is not watched has no watched thread.
        if self.discord.channels.is_empty() || !self.discord.watches_guild(guild) {
            return false;
        }
        self.parent_of(channel)
            .await
            .is_some_and(|parent| self.discord.channels.contains(&parent))
    }

    /// Whether a channel that has stored messages is still watched (for the catch-up, which
    /// knows channels by their cursors, without their guild).
    pub async fn watches_channel(&self, channel: Snowflake) -> bool {
        if self.discord.channels.is_empty() || self.discord.channels.contains(&channel) {
            return true;
        }
        self.parent_of(channel)
            .await
            .is_some_and(|parent| self.discord.channels.contains(&parent))
    }

    /// A thread's parent; `None` for a channel that is not a thread or cannot be looked up.
    /// An id nothing told about is looked up once (`GET /channels/{id}`).
    async fn parent_of(&self, channel: Snowflake) -> Option<Snowflake> {
        match lock(&self.threads).get(channel) {
            Some(Known::Thread { parent }) => return Some(parent),
            Some(Known::NotAThread) => return None,
            None => {}
        }
        if lock(&self.retry_at)
            .get(&channel)
            .is_some_and(|at| Instant::now() < *at)
        {
            return None;
        }
        match self.rest.channel(channel).await {
            Ok(Some(found)) => {
                // Kept under the id asked for, whatever the answer says: one lookup per id.
                let found = Channel { id: channel, ..found };
                lock(&self.threads).learn(&found);
                found.thread_parent()
            }
            Ok(None) => {
                lock(&self.threads).learn_not_a_thread(channel);
                None
            }
            Err(RestError::Forbidden { .. }) => {
                tracing::debug!(channel_id = %channel, "the bot may not see this channel; its messages are not watched");
                lock(&self.threads).learn_not_a_thread(channel);
                None
            }
            Err(error) => {
                tracing::warn!(channel_id = %channel, %error, "cannot tell whether this channel is a thread of a watched channel; its messages are skipped for now");
                lock(&self.retry_at).insert(channel, Instant::now() + RETRY_LOOKUP_AFTER);
                None
            }
        }
    }
}

/// The consumer of the relay's frames.
pub struct Live {
    writer: WriterHandle,
    watch: Arc<Watch>,
    bots: BotIds,
    warned_empty: bool,
    warned_writer: bool,
}

impl Live {
    pub fn new(writer: WriterHandle, watch: Arc<Watch>, bots: BotIds) -> Live {
        Live {
            writer,
            watch,
            bots,
            warned_empty: false,
            warned_writer: false,
        }
    }

    /// Takes frames in the order the relay received them until the relay is gone or `stop`
    /// turns true; then what was received before is still taken.
    pub async fn run(mut self, mut frames: mpsc::UnboundedReceiver<String>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                biased;
                frame = frames.recv() => match frame {
                    Some(frame) => self.take(frame.as_bytes()).await,
                    None => return,
                },
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                    while let Ok(frame) = frames.try_recv() {
                        self.take(frame.as_bytes()).await;
                    }
                    return;
                }
            }
        }
    }

    /// One dispatch frame: a message event of a watched channel goes to the writer; what
    /// the frame says about channels and threads is remembered; the rest is not used.
    pub async fn take(&mut self, frame: &[u8]) {
        match event::from_dispatch_line(frame) {
            Line::Event(event) => {
                let event = *event;
                let (guild, channel) = match &event {
                    Event::Create { message, .. } | Event::Update { message, .. } => {
                        (message.guild_id, message.channel_id)
                    }
                    Event::Delete { channel_id, .. } => {
                        (channel::place_of_dispatch(frame).guild_id, *channel_id)
                    }
                };
                let Some(channel) = channel else {
                    tracing::warn!(event = ?event_name(&event), "a message event names no channel; skipped");
                    return;
                };
                if !self.watch.watches(guild, channel).await {
                    return;
                }
                if let Event::Create { message, .. } = &event {
                    self.check_content(message);
                }
                if let Err(error) = self.writer.send(event).await {
                    if !std::mem::replace(&mut self.warned_writer, true) {
                        tracing::error!(%error, "live events can no longer be stored");
                    }
                }
            }
            Line::Skipped(event_type) => {
                if CHANNEL_EVENTS.contains(&event_type.as_str()) {
                    self.watch.learn(&channel::channels_of_dispatch(frame));
                }
            }
            Line::Blank => {}
            Line::Malformed(reason) => {
                tracing::warn!(%reason, "a gateway dispatch could not be read; skipped");
            }
        }
    }

    /// Midjourney's messages arrive with empty content, embeds, attachments and components
    /// when the bot lacks the MESSAGE_CONTENT intent: say so once.
    fn check_content(&mut self, message: &Message) {
        let from_midjourney = message
            .author
            .as_ref()
            .is_some_and(|author| self.bots.0.contains(&author.id));
        let empty = message.content.as_deref().is_none_or(str::is_empty)
            && message.attachments.as_ref().is_none_or(Vec::is_empty)
            && message.embeds.as_ref().is_none_or(Vec::is_empty)
            && message.components.as_ref().is_none_or(|c| c.0.is_empty());
        if from_midjourney && empty && !std::mem::replace(&mut self.warned_empty, true) {
            tracing::warn!(
                "Midjourney's messages arrive empty: the bot does not have the Message Content intent. \
                 Enable it in the Discord Developer Portal (your application -> Bot -> Privileged Gateway Intents -> \
                 Message Content Intent) and restart mjlink."
            );
        }
    }
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Create { .. } => "create",
        Event::Update { .. } => "update",
        Event::Delete { .. } => "delete",
    }
}
