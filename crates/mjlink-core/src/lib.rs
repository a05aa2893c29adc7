//! mjlink's functional core: everything that decides, nothing that does.
//!
//! No I/O and no clock: no tokio, rusqlite, serenity or reqwest, and chrono without its
//! clock feature (`cargo test -p mjlink-core` compiles none of them). Time is passed in.
//! Every function is total: bad input becomes a value, never a panic.
//!
//! # Layout
//! - Ids and bytes: [`snowflake`] (the one place ids are converted), [`digest`] (the stable
//!   64-bit digest), [`secret`] (a token that never prints), [`text`] (times and cutting).
//! - Discord: [`wire`] (Discord's JSON, lean), [`event`] (the one way from bytes to an
//!   [`event::Event`]), [`merge`] (combining snapshots of one message), [`channel`] (where a
//!   dispatch happened; threads and their parents).
//! - Midjourney: [`prompt`] (prompt text and `--parameters`), [`parse`] (one message -> one
//!   [`parse::Kind`]), [`kinds`] (the stored kind names and their shapes).
//! - Lineage: [`link`] (which parent, how sure), [`lineage`] (what applying a message
//!   changes: relinks, outcomes of starts; the pipeline's decisions).
//! - Around it: [`queue`] (the prompt queue's items and its state machine), [`access`]
//!   (who may use which command; the rate limit), [`layout`] (where an archived image or
//!   video goes), [`drift`] (which messages are unknown formats; when their count jumps),
//!   [`notify`] (what a notification says, to whom, and when a failed one is tried again).

pub mod access;
pub mod channel;
pub mod digest;
pub mod drift;
pub mod event;
pub mod kinds;
pub mod layout;
pub mod lineage;
pub mod link;
pub mod marks;
pub mod merge;
pub mod notify;
pub mod parse;
pub mod prompt;
pub mod queue;
pub mod recording;
pub mod retry;
pub mod secret;
pub mod snowflake;
pub mod text;
pub mod wire;

pub use event::Event;
pub use snowflake::Snowflake;
