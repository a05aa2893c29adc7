//! Catching up over REST: a channel's history after a message id, page by page, fed to the
//! writer in snowflake order; a channel's threads (each a channel with its own history); and
//! the parents that replies point to but nobody sent us.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::ingest::pipeline::Pipeline;
use crate::ingest::writer::{MissingParent, Writer, WriterHandle, WriterHooks, WriterStats};
use crate::rest::{Rest, RestError};
use crate::store::StoreError;
use mjlink_core::snowflake::Snowflake;
use mjlink_core::wire::parse_time_ms;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Rest(#[from] RestError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Messages per history page (Discord's maximum).
pub const PAGE: u8 = 100;

/// What one channel's catch-up did.
#[derive(Debug, Default, Clone, Copy)]
pub struct CaughtUp {
    pub pages: u64,
    pub messages: u64,
    /// The newest message id fed (the cursor it leaves).
    pub last: Option<Snowflake>,
}

impl CaughtUp {
    /// Both together (a channel and its threads).
    pub fn plus(&self, other: &CaughtUp) -> CaughtUp {
        CaughtUp {
            pages: self.pages + other.pages,
            messages: self.messages + other.messages,
            last: self.last.max(other.last),
        }
    }
}

/// The threads of a channel, as found for a backfill.
#[derive(Debug, Default, Clone)]
pub struct ThreadsFound {
    pub active: Vec<Snowflake>,
    pub archived: Vec<Snowflake>,
    /// What could not be listed, in words (archived private threads without Manage Threads).
    pub notes: Vec<String>,
}

/// The threads of `parent` that may hold messages after `after`: its active threads
/// (`GET /guilds/{guild}/threads/active`, filtered by `parent_id`), its archived public
/// threads (paged with `before`/`has_more`, most recently archived first, until one was
/// archived before `after`: nothing in it is newer), and its archived private threads the
/// same way when the bot may list them (Manage Threads); else a note says they were skipped.
pub async fn threads_of(
    rest: &Rest,
    parent: Snowflake,
    after: Snowflake,
) -> Result<ThreadsFound, BackfillError> {
    let mut found = ThreadsFound::default();
    let Some(channel) = rest.channel(parent).await? else {
        return Err(RestError::NotFound {
            what: format!("channel {parent}"),
        }
        .into());
    };
    let Some(guild) = channel.guild_id else {
        return Ok(found); // a direct message channel has no threads
    };
    let mut seen = BTreeSet::new();
    for thread in rest.active_threads(guild).await?.threads {
        if thread.thread_parent() == Some(parent) && seen.insert(thread.id) {
            found.active.push(thread.id);
        }
    }
    let since_ms = (after != Snowflake::default()).then(|| after.timestamp_ms());
    for private in [false, true] {
        match archived_threads(rest, parent, private, since_ms).await {
            Ok(threads) => found
                .archived
                .extend(threads.into_iter().filter(|thread| seen.insert(*thread))),
            Err(BackfillError::Rest(RestError::Forbidden { .. })) if private => found.notes.push(format!(
                "archived private threads of channel {parent} skipped: the bot may not list them (it needs the Manage Threads permission)"
            )),
            Err(error) => return Err(error),
        }
    }
    Ok(found)
}

/// Every archived thread of `parent` (public or private) archived at or after `since_ms`.
async fn archived_threads(
    rest: &Rest,
    parent: Snowflake,
    private: bool,
    since_ms: Option<i64>,
) -> Result<Vec<Snowflake>, BackfillError> {
    let mut threads = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = rest.archived_threads(parent, private, before.as_deref()).await?;
        let mut oldest: Option<(i64, String)> = None;
        let mut reached_since = false;
        for thread in &page.threads {
            let archived = thread
                .archive_timestamp()
                .and_then(|at| Some((parse_time_ms(at)?, at)));
            if let Some((at_ms, at)) = archived {
                if oldest.as_ref().is_none_or(|(oldest_ms, _)| at_ms < *oldest_ms) {
                    oldest = Some((at_ms, at.to_string()));
                }
                if since_ms.is_some_and(|since| at_ms < since) {
                    reached_since = true;
                    continue;
                }
            }
            if thread.thread_parent() == Some(parent) {
                threads.push(thread.id);
            }
        }
        // The next page starts before the oldest of this one; a page that names no time, or
        // the same time again, cannot move on.
        let next = oldest.map(|(_, at)| at);
        if !page.has_more || reached_since || next.is_none() || next == before {
            break;
        }
        before = next;
    }
    Ok(threads)
}

/// Feeds every message of `channel` after `after` to the writer, oldest first, paging
/// forward. `on_page` sees the running totals (for progress bars). Stops when a page comes
/// back short.
pub async fn channel_after(
    rest: &Rest,
    writer: &WriterHandle,
    channel: Snowflake,
    after: Snowflake,
    mut on_page: impl FnMut(&CaughtUp),
) -> Result<CaughtUp, BackfillError> {
    let mut done = CaughtUp::default();
    let mut cursor = after;
    loop {
        let page = rest.history_after(channel, cursor, PAGE).await?;
        done.pages += 1;
        let full = page.len() >= usize::from(PAGE);
        let mut advanced = false;
        for event in page {
            let Some(id) = event.message().map(|message| message.id) else {
                continue;
            };
            if id <= cursor {
                continue; // a server that ignores `after` must not loop us forever
            }
            cursor = id;
            advanced = true;
            done.messages += 1;
            done.last = Some(cursor);
            writer.send(event).await?;
        }
        on_page(&done);
        if !full || !advanced {
            break;
        }
    }
    Ok(done)
}

/// Fetches a parent that a reply referenced without a copy, and feeds it.
pub async fn fetch_parent(
    rest: &Rest,
    writer: &WriterHandle,
    missing: MissingParent,
) -> Result<bool, BackfillError> {
    match rest.message(missing.channel_id, missing.message_id).await? {
        Some(event) => {
            writer.send(event).await?;
            Ok(true)
        }
        None => Ok(false), // deleted: the link to it stands, the parent stays unseen
    }
}

/// Fetches, one at a time, the parents the writer reports as referenced but never seen
/// (`WriterHooks::missing`), and feeds them to the writer. Beside the gateway it runs for
/// the bot's life; after a backfill, [`ParentFetcher::finish`] fetches what was reported.
pub struct ParentFetcher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<u64>,
}

impl ParentFetcher {
    pub fn spawn(
        rest: Arc<Rest>,
        writer: WriterHandle,
        mut missing: mpsc::UnboundedReceiver<MissingParent>,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut fetched = 0;
            // Once told to stop, only what was already reported is fetched: the writer (which
            // holds the sender) outlives `finish`, so waiting on `recv` then would never end,
            // and the stop is seen only once.
            let mut stopping = false;
            loop {
                let next = if stopping {
                    missing.try_recv().ok()
                } else {
                    tokio::select! {
                        next = missing.recv() => next,
                        _ = stopped.changed() => {
                            stopping = true;
                            missing.try_recv().ok()
                        }
                    }
                };
                let Some(parent) = next else { break };
                match fetch_parent(&rest, &writer, parent).await {
                    Ok(true) => fetched += 1,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(message_id = %parent.message_id, %error, "could not fetch a referenced parent")
                    }
                }
            }
            fetched
        });
        ParentFetcher { stop, task }
    }

    /// Fetches every parent reported so far, then stops; how many were found.
    pub async fn finish(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }

    /// Stops at once (shutdown of the live bot).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// What a backfill command did.
#[derive(Debug, Default, Clone)]
pub struct BackfillReport {
    /// The channel and its threads together.
    pub caught_up: CaughtUp,
    pub stats: WriterStats,
    /// Parents referenced without a copy, fetched and stored.
    pub parents_fetched: u64,
    /// The threads whose history was fetched too (when asked for).
    pub threads: Option<ThreadsFound>,
}

/// `mjlink backfill`: a channel's history after `after` (and its threads' when `threads`)
/// through its own writer on `pipeline`, and then the parents its messages referenced but
/// nobody sent (as the live bot does). `on_page` sees the running totals.
pub async fn backfill(
    rest: Arc<Rest>,
    pipeline: Pipeline,
    channel: Snowflake,
    after: Snowflake,
    threads: bool,
    mut on_page: impl FnMut(&CaughtUp),
) -> Result<BackfillReport, BackfillError> {
    let (missing_tx, missing_rx) = mpsc::unbounded_channel();
    let writer = Writer::spawn(
        pipeline,
        WriterHooks {
            missing: Some(missing_tx),
            committed: Vec::new(),
        },
    );
    let handle = writer.handle();
    let fetcher = ParentFetcher::spawn(Arc::clone(&rest), writer.handle(), missing_rx);
    let result = async {
        let mut total = channel_after(&rest, &handle, channel, after, &mut on_page).await?;
        let mut found = None;
        if threads {
            let listed = threads_of(&rest, channel, after).await?;
            for thread in listed.active.iter().chain(&listed.archived) {
                let before = total;
                let done =
                    channel_after(&rest, &handle, *thread, after, |done| on_page(&before.plus(done))).await?;
                total = total.plus(&done);
            }
            found = Some(listed);
        }
        Ok::<_, BackfillError>((total, found))
    }
    .await;
    // Everything fed is applied (and its missing parents reported) before the fetcher is
    // told to finish what it was given.
    let flushed = handle.flush().await;
    let parents_fetched = fetcher.finish().await;
    drop(handle);
    let stats = writer.close().await?;
    let (caught_up, threads) = result?;
    flushed?;
    Ok(BackfillReport {
        caught_up,
        stats,
        parents_fetched,
        threads,
    })
}
