//! The commands of the `mjlink` binary, one function each. A command takes the loaded
//! [`Config`](crate::config::Config), its arguments as a plain struct (deriving
//! `clap::Args` so that the binary parses them, with their help text next to them), where
//! to write what it prints (`out`), and, when it shows progress, a [`Progress`] that makes
//! the bars (the binary draws them on a terminal, tests hide them). It returns how it ended
//! ([`Outcome`]); errors are the binary's one-line `mjlink: <reason>`.
//!
//! - [`ingest`]: `replay`, `run`, `record`, `backfill`;
//! - [`import`]: `import dce` (DiscordChatExporter exports and their media);
//! - [`archive`]: `archive`, `images`, `verify`;
//! - [`queue`]: `queue add|list|show|cancel|run`;
//! - [`misc`]: `doctor`, `demo`, `links`, `messages`, `gen-trace`, `bench`;
//! - [`answers`]: `lineage`, `search`, `stats`;
//! - [`web`] (`serve`).

use std::io::Write;

use indicatif::ProgressBar;

use crate::export::{Format, LinkRecord, LinkWriter};
use crate::store::{Store, StoreError};

pub mod answers;
pub mod archive;
pub mod import;
pub mod ingest;
pub mod misc;
pub mod queue;
pub mod web;

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
    /// Done, but some input was malformed and skipped (counted and reported).
    MalformedInput,
}

impl Outcome {
    /// The exit status: 0 success, 1 failure, [`Outcome::MALFORMED_INPUT_EXIT`] malformed
    /// input skipped.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::MalformedInput => Outcome::MALFORMED_INPUT_EXIT,
        }
    }

    /// The exit status of a replay that skipped malformed lines or elements (documented in
    /// `mjlink replay --help` and the README; 2 is clap's usage error).
    pub const MALFORMED_INPUT_EXIT: u8 = 3;
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

/// Completes on Ctrl-C or SIGTERM. The signals are taken over when this is called, not when
/// the future is first polled: a command calls it at its start, so a stop asked for while it
/// is still connecting is a clean stop too, not the default action (killed by the signal).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let terminate = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            match (terminate, interrupt) {
                (Some(mut terminate), Some(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Every link in `format`.
fn write_links(store: &Store, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    let mut writer = LinkWriter::new(out, format);
    stream_rows(
        |visit| store.for_each_link(visit),
        |export| writer.write(&LinkRecord::from(export)),
    )?;
    writer.finish()?;
    Ok(())
}

/// Passes each row that `for_each` reads to `write`, streaming. A write error (a reader
/// that went away: see [`is_closed_pipe`]) stops the reading at once and is the error.
fn stream_rows<T>(
    for_each: impl FnOnce(&mut dyn FnMut(T) -> Result<(), StoreError>) -> Result<(), StoreError>,
    mut write: impl FnMut(T) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut write_error = None;
    let read = for_each(&mut |row| {
        write(row).map_err(|error| {
            write_error = Some(error);
            StoreError::Stopped
        })
    });
    match (write_error, read) {
        (Some(error), _) => Err(error.into()),
        (None, read) => Ok(read?),
    }
}

/// Whether a command failed only because the reader of its output went away (a closed pipe:
/// `mjlink images | head`): the reader has what it wanted, so the binary ends quietly with
/// success. The one place a closed pipe is handled.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Each value as one JSON line.
fn write_jsonl<T: serde::Serialize>(out: &mut impl Write, values: &[T]) -> anyhow::Result<()> {
    for value in values {
        serde_json::to_writer(&mut *out, value)?;
        writeln!(out)?;
    }
    Ok(())
}
