//! mjlink: links every Midjourney result on Discord to its parent grid and keeps the
//! lineage in SQLite. This crate is the imperative shell and the binary; the decisions live
//! in [`mjlink_core`] (pure, no I/O, no clock), the test doubles in `mjlink-sim`.
//!
//! # Layout
//! - [`ingest`]: every source of events (the live gateway, replay, backfill, the recording
//!   relay) and the one pipeline they feed (read -> decide -> write, through one writer).
//! - [`store`]: SQLite, split by concern; numbered migrations; it decides nothing.
//! - [`rest`]: Discord's REST API (history, single messages, refreshed links).
//! - [`archive`]: downloads every image before its link expires, verified.
//! - [`queue`]: unattended prompt queues (submitter, runner, views).
//! - [`commands`]: slash commands over pure answers.
//! - [`web`]: the web gallery and its JSON API (`mjlink serve`), over the same answers.
//! - [`export`], [`demo`], and the private `doctor` and `bench`: what the commands print
//!   and check (reached through [`app`]).
//! - [`notify`]: notifications to webhooks and Discord, through a durable outbox.
//! - [`logging`]: the log's writer, which masks every secret.
//! - [`config`]: `bot.toml`, environment overrides; each subsystem reads its own section.
//! - [`app`]: one function per command of the binary; [`clock`]: the one place the wall
//!   clock is read; [`causes`]: an error and its causes as one sentence.
//!
//! See ARCHITECTURE.md for the invariants.

pub mod app;
pub mod archive;
mod bench;
pub mod causes;
pub mod clock;
pub mod commands;
pub mod config;
pub mod demo;
mod doctor;
pub mod export;
pub mod ingest;
pub mod logging;
pub mod notify;
pub mod queue;
pub mod rest;
pub mod store;
pub mod web;
