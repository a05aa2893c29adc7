//! Every source of events and the one pipeline they feed.
//!
//! - Sources: [`gateway`] (the live bot, serenity), [`replay`] (recordings and history
//!   dumps), [`backfill`] (channel history over REST); [`record`] is the relay that records
//!   the gateway's frames exactly as received.
//! - [`writer`]: the single writer; every source sends its events to it, after the
//!   [`prepare`] stage (on the sender's thread) did what needs no database.
//! - [`pipeline`]: read -> decide -> write for one event (the decisions are the core's).
//! - [`report`]: what a replay did, for people.

pub mod backfill;
pub mod gateway;
pub mod pipeline;
pub mod prepare;
pub mod record;
pub mod replay;
pub mod report;
pub mod writer;
