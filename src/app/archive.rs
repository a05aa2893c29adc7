//! `archive`, `images` and `verify`: the image archive.

use std::io::Write;

use super::{write_jsonl, Bar, ListFormat, Outcome, Progress};
use crate::archive::backend::Backend;
use crate::archive::worker::{self, ArchiveSummary};
use crate::config::Config;
use crate::store::{OpenMode, Store};
use mjlink_core::text::for_terminal;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ArchiveArgs {
    /// First put the images marked failed (a permanent answer: gone, not an image, too
    /// large) back in the queue, and try them again.
    #[arg(long)]
    pub retry_failed: bool,
}

/// Downloads every pending image (`mjlink archive`).
pub async fn archive(
    config: &Config,
    args: &ArchiveArgs,
    progress: Progress<'_>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    // Nothing to archive without a database: never make an empty one.
    let store = Store::open_as(&config.database_path, OpenMode::Existing)?;
    if args.retry_failed {
        let again = store.retry_failed()?;
        writeln!(out, "{again} failed images queued again")?;
    }
    drop(store);
    let summary = archive_now(config, progress).await?;
    writeln!(out, "{}", archive_line(&summary))?;
    Ok(Outcome::Success)
}

/// One archive pass as the config says, with a bar.
pub(super) async fn archive_now(config: &Config, progress: Progress<'_>) -> anyhow::Result<ArchiveSummary> {
    let bar = progress(Bar::Archive);
    let summary = worker::archive_configured(config, |done, seen| {
        bar.set_length(seen);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    Ok(summary)
}

pub(super) fn archive_line(summary: &ArchiveSummary) -> String {
    format!(
        "archived {}, deduplicated {}, failed {}, to retry later {}, identical tiles {}",
        summary.archived, summary.deduplicated, summary.failed, summary.retry_later, summary.same_bytes_tiles
    )
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
}

/// Every grid and result image with its archive state.
pub fn images(config: &Config, args: &ImagesArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let store = Store::open_as(&config.database_path, OpenMode::ReadOnly)?;
    let images = store.images()?;
    match args.format {
        ListFormat::Jsonl => write_jsonl(out, &images)?,
        ListFormat::Table => {
            writeln!(
                out,
                "{:<20} {:<20} {:<16} {:<9} {:>10} {:<12} path",
                "message", "attachment", "kind", "state", "bytes", "sha256"
            )?;
            for image in &images {
                writeln!(
                    out,
                    "{:<20} {:<20} {:<16} {:<9} {:>10} {:<12} {}",
                    image.message_id.to_string(),
                    image.attachment_id.to_string(),
                    for_terminal(&image.kind),
                    image.state,
                    image.bytes.map_or("-".to_string(), |b| b.to_string()),
                    image
                        .sha256
                        .as_deref()
                        .map_or("-".to_string(), |h| h.chars().take(12).collect()),
                    for_terminal(image.path.as_deref().unwrap_or("-"))
                )?;
            }
        }
    }
    Ok(Outcome::Success)
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Put missing and corrupt files back in the queue and download them again.
    #[arg(long)]
    pub repair: bool,
}

/// Rehashes every archived file; with `repair`, downloads the bad ones again and checks once
/// more. Fails while a file is missing or corrupt.
pub async fn verify(
    config: &Config,
    args: &VerifyArgs,
    progress: Progress<'_>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let mode = if args.repair {
        OpenMode::Existing
    } else {
        OpenMode::ReadOnly
    };
    let mut store = Store::open_as(&config.database_path, mode)?;
    let backend = Backend::from_config(&config.archive)?;
    let report = worker::verify(&mut store, &backend, args.repair).await?;
    drop(store);
    for (attachment, path, problem) in &report.problems {
        writeln!(out, "{problem}: {path} (attachment {attachment})")?;
    }
    writeln!(
        out,
        "checked {}, ok {}, missing or corrupt {}",
        report.checked,
        report.ok,
        report.problems.len()
    )?;
    if !args.repair || report.problems.is_empty() {
        return Ok(Outcome::success_if(report.problems.is_empty()));
    }
    let summary = archive_now(config, progress).await?;
    writeln!(
        out,
        "repaired {} (downloaded again)",
        summary.archived + summary.deduplicated
    )?;
    let mut store = Store::open(&config.database_path)?;
    let again = worker::verify(&mut store, &backend, false).await?;
    Ok(Outcome::success_if(again.problems.is_empty()))
}
