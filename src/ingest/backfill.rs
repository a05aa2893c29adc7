//! Catching up over REST: a channel's history after a message id, page by page, fed to the
//! writer in snowflake order; and the parents that replies point to but nobody sent us.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::ingest::pipeline::Pipeline;
use crate::ingest::writer::{MissingParent, Writer, WriterHandle, WriterHooks, WriterStats};
use crate::rest::{Rest, RestError};
use crate::store::StoreError;
use mjlink_core::snowflake::Snowflake;

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
            loop {
                let next = tokio::select! {
                    next = missing.recv() => next,
                    _ = stopped.changed() => missing.try_recv().ok(),
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
#[derive(Debug, Default, Clone, Copy)]
pub struct BackfillReport {
    pub caught_up: CaughtUp,
    pub stats: WriterStats,
    /// Parents referenced without a copy, fetched and stored.
    pub parents_fetched: u64,
}

/// `mjlink backfill`: a channel's history after `after` through its own writer on
/// `pipeline`, and then the parents its messages referenced but nobody sent (as the live
/// bot does).
pub async fn backfill(
    rest: Arc<Rest>,
    pipeline: Pipeline,
    channel: Snowflake,
    after: Snowflake,
    on_page: impl FnMut(&CaughtUp),
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
    let result = channel_after(&rest, &handle, channel, after, on_page).await;
    // Everything fed is applied (and its missing parents reported) before the fetcher is
    // told to finish what it was given.
    let flushed = handle.flush().await;
    let parents_fetched = fetcher.finish().await;
    drop(handle);
    let stats = writer.close().await?;
    let caught_up = result?;
    flushed?;
    Ok(BackfillReport {
        caught_up,
        stats,
        parents_fetched,
    })
}
