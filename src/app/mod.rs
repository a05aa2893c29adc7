//! The commands of the `mjlink` binary, one function each. A command takes the loaded
//! [`Config`](crate::config::Config), its arguments as a plain struct (deriving
//! `clap::Args` so that the binary parses them, with their help text next to them), where
//! to write what it prints (`out`), and, when it shows progress, a [`Progress`] that makes
//! the bars (the binary draws them on a terminal, tests hide them). It returns how it ended
//! ([`Outcome`]); errors are the binary's one-line `mjlink: <reason>`.
//!
//! - [`ingest`]: `replay`, `run`, `record`, `backfill`;
//! - [`archive`]: `archive`, `images`, `verify`;
//! - [`queue`]: `queue add|list|show|cancel|run`;
//! - [`misc`]: `doctor`, `demo`, `links`, `gen-trace`, `bench`.

use std::io::Write;

use indicatif::ProgressBar;

use crate::export::{Format, LinkRecord, LinkWriter};
use crate::store::Store;

pub mod archive;
pub mod ingest;
pub mod misc;
pub mod queue;

/// A progress display a command asks for; the binary decides whether and how it is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bar {
    /// Images archived of those seen so far (`set_length`, `set_position`).
    Archive,
    /// A channel's history being read (`set_message`).
    Backfill,
    /// The bytes of one replayed file (`inc`).
    Replay { name: String, bytes: u64 },
    /// The queue's counts (`set_message`) and every transition (`println`).
    Queue,
}

/// Makes the bars a command shows: `&|_| ProgressBar::hidden()` shows none.
pub type Progress<'a> = &'a (dyn Fn(Bar) -> ProgressBar + Sync);

/// How a command ended; the reasons of a failure are already printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn success_if(ok: bool) -> Outcome {
        if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// The format of a list for people (`table`) or scripts (`jsonl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Jsonl,
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Every link in `format`; a reader that went away (a closed pipe) ends it quietly.
fn write_links(store: &Store, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let mut writer = LinkWriter::new(out, format);
    let mut write_error = None;
    store.for_each_link(|export| {
        if write_error.is_none() {
            if let Err(error) = writer.write(&LinkRecord::from(export)) {
                write_error = Some(error);
            }
        }
        Ok(())
    })?;
    if let Some(error) = write_error {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(error.into());
    }
    writer.finish()?;
    Ok(())
}

/// Each value as one JSON line.
fn write_jsonl<T: serde::Serialize>(out: &mut impl Write, values: &[T]) -> anyhow::Result<()> {
    for value in values {
        serde_json::to_writer(&mut *out, value)?;
        writeln!(out)?;
    }
    Ok(())
}
