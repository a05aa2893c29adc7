//! mjlink: links every Midjourney result on Discord to its parent grid and keeps the
//! lineage in SQLite.
//!
//! # Layout
//! - Functional core (pure, no I/O, no clock): [`wire`] (Discord's JSON, lean), [`prompt`]
//!   (prompt text and parameters), [`parse`] (message -> Midjourney kind), [`merge`]
//!   (combining snapshots of one message), [`link`] (which parent, how sure).
//! - Imperative shell: [`store`] (SQLite), [`pipeline`] (the one entry point: event ->
//!   parse -> link -> store), [`replay`] (recorded gateway traffic and REST history files).
//! - More shell: [`bot`] (serenity), [`writer`], [`rest`], [`backfill`], [`archive`]
//!   (downloads), [`queue`] (prompt queues; its state machine is pure), [`commands`] (slash
//!   commands over pure answers).
//! - Tools: [`tracegen`] (synthetic traces with ground truth), [`bench`], [`sim`] (a fake
//!   Discord and a simulated Midjourney) and [`demo`].
//!
//! See ARCHITECTURE.md for the invariants.

pub mod archive;
pub mod backfill;
pub mod bench;
pub mod bot;
pub mod commands;
pub mod config;
pub mod demo;
pub mod digest;
pub mod doctor;
pub mod export;
pub mod link;
pub mod merge;
pub mod parse;
pub mod pipeline;
pub mod prompt;
pub mod queue;
pub mod record;
pub mod replay;
pub mod report;
pub mod rest;
pub mod sim;
pub mod snowflake;
pub mod store;
pub mod tracegen;
pub mod wire;
pub mod writer;
