//! Every source of events and the one pipeline they feed.
//!
//! - Sources: [`gateway`] (the live bot: serenity behind the [`relay`], whose raw frames
//!   [`live`] makes into events), [`replay`] (recordings and history dumps), [`backfill`]
//!   (channel and thread history over REST), [`dce`] (DiscordChatExporter JSON exports).
//! - [`writer`]: the single writer; every source sends its events to it, after the
//!   [`prepare`] stage (on the sender's thread) did what needs no database.
//! - [`pipeline`]: read -> decide -> write for one event (the decisions are the core's).
//! - [`drift`]: format drift as the pipeline meets it (unknown Midjourney messages counted
//!   by day, kept as samples, a warning when a day's count jumps).
//! - [`report`]: what a replay did, for people.
//! - `row`: the row of `messages` stored for a message (made by the pipeline and by the
//!   prepare stage).

pub mod backfill;
pub mod dce;
pub mod drift;
pub mod gateway;
pub mod live;
pub mod pipeline;
pub mod prepare;
pub mod relay;
pub mod replay;
pub mod report;
mod row;
pub mod writer;
