//! Catching up over REST: a channel's history after a message id, page by page, fed to the
//! writer in snowflake order; and the parents that replies point to but nobody sent us.

use crate::ingest::pipeline::Event;
use crate::ingest::writer::{MissingParent, WriterHandle};
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
        for fetched in page {
            if fetched.message.id <= cursor {
                continue; // a server that ignores `after` must not loop us forever
            }
            cursor = fetched.message.id;
            advanced = true;
            done.messages += 1;
            done.last = Some(cursor);
            writer
                .send(Event::Create {
                    message: fetched.message,
                    digest: fetched.digest,
                })
                .await?;
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
        Some(fetched) => {
            writer
                .send(Event::Create {
                    message: fetched.message,
                    digest: fetched.digest,
                })
                .await?;
            Ok(true)
        }
        None => Ok(false), // deleted: the link to it stands, the parent stays unseen
    }
}
