//! `import dce`: DiscordChatExporter JSON exports through the pipeline, then their downloaded
//! media adopted into the archive.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Bar, Outcome, Progress};
use crate::archive::adopt::{self, AdoptSummary};
use crate::archive::worker::WorkerOptions;
use crate::config::Config;
use crate::ingest::dce::{self, DceSummary};
use crate::ingest::pipeline::{Pipeline, PipelineConfig};
use crate::ingest::replay::Replay;
use crate::ingest::report::Report;
use crate::store::Store;
use mjlink_core::text::for_terminal;

#[derive(Debug, Clone, clap::Args)]
pub struct DceArgs {
    /// Exports written by DiscordChatExporter in its JSON format (`-f Json`), 2.37 or later.
    #[arg(required = true, value_name = "EXPORT.json")]
    pub files: Vec<PathBuf>,
    /// The folder the media was downloaded to (DCE's `--media-dir`), when it is not where
    /// the export says: each file is looked for there by its name. Without it, the paths the
    /// export gives are read relative to the export's folder, and never outside it.
    #[arg(long, value_name = "DIR")]
    pub media_dir: Option<PathBuf>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a Report,
    dce: &'a DceSummary,
    media: &'a Option<AdoptSummary>,
}

/// Every export through the writer, the summary printed, then the media found adopted.
pub async fn dce(
    config: &Config,
    args: &DceArgs,
    progress: Progress<'_>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let store = Store::open(&config.database_path)?;
    let mut replay = Replay::start(Pipeline::new(store, PipelineConfig::from_config(config)));
    let mut found = DceSummary::default();
    for file in &args.files {
        if import_file(file, args.media_dir.as_deref(), &mut replay, &mut found, progress).is_err() {
            break; // the writer stopped: finish() returns its error
        }
    }
    let (summary, mut store) = replay.finish()?;
    for reason in &summary.unreadable {
        let _ = writeln!(std::io::stderr(), "mjlink: {}", for_terminal(reason));
    }
    let adopted = if found.media.files.is_empty() || !config.archive.enabled {
        None
    } else {
        let bar = progress(Bar::Archive);
        let result = adopt::adopt(
            &mut store,
            &WorkerOptions::from_config(config)?,
            config.archive.max_bytes,
            &found.media.files,
            |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
        )
        .await;
        bar.finish_and_clear();
        Some(result?)
    };
    let report = Report::gather(&summary, &store)?;
    if args.json {
        let json = JsonReport {
            report: &report,
            dce: &found,
            media: &adopted,
        };
        serde_json::to_writer_pretty(&mut *out, &json)?;
        writeln!(out)?;
    } else {
        report.write_text(out, &config.database_path)?;
        write_dce(out, &found, adopted.as_ref(), config.archive.enabled)?;
    }
    Ok(if !summary.unreadable.is_empty() {
        Outcome::Failure
    } else if summary.malformed > 0 {
        Outcome::MalformedInput
    } else {
        Outcome::Success
    })
}

/// One export into the replay; a file that cannot be opened is reported in the summary. An
/// error means the database failed.
fn import_file(
    file: &Path,
    media_dir: Option<&Path>,
    replay: &mut Replay,
    found: &mut DceSummary,
    progress: Progress<'_>,
) -> Result<(), crate::store::StoreError> {
    let name = file.display().to_string();
    let Some((reader, bar)) = super::ingest::open_input(file, replay, progress) else {
        return Ok(());
    };
    let export_dir = file
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let read = dce::read_export(replay, &name, reader, export_dir, media_dir, found, |bytes| {
        bar.inc(bytes)
    });
    bar.finish_and_clear();
    read
}

/// What the exports said beyond the pipeline's summary, and what became of their media.
fn write_dce(
    out: &mut impl Write,
    found: &DceSummary,
    adopted: Option<&AdoptSummary>,
    archive_enabled: bool,
) -> std::io::Result<()> {
    writeln!(
        out,
        "mentions restored   {} (@Name put back as <@id>; {} not found in the text)",
        found.mentions_restored, found.mentions_unmatched
    )?;
    if !found.unknown_fields.is_empty() {
        let names: Vec<String> = found
            .unknown_fields
            .iter()
            .map(|(name, count)| format!("{} {count}", for_terminal(name)))
            .collect();
        writeln!(out, "unknown fields      {} (skipped)", names.join(", "))?;
    }
    for note in &found.notes {
        writeln!(out, "note: {}", for_terminal(note))?;
    }
    let media = &found.media;
    writeln!(
        out,
        "media not found     missing {}, outside the export's folder {}, unusable path {}, links only {}",
        media.missing, media.outside, media.unusable, media.links_only
    )?;
    for example in &media.examples {
        writeln!(out, "  {}", for_terminal(example))?;
    }
    match adopted {
        Some(adopted) => {
            writeln!(
                out,
                "media files         {}: adopted {}, same bytes as an archived file {}, already archived {}, not an image or video {}, too large {}, not archived kinds {}, failed {}",
                adopted.files,
                adopted.adopted,
                adopted.deduplicated,
                adopted.already_archived,
                adopted.not_media,
                adopted.too_large,
                adopted.not_archived,
                adopted.failed
            )?;
            for example in &adopted.examples {
                writeln!(out, "  {}", for_terminal(example))?;
            }
        }
        None if !media.files.is_empty() && !archive_enabled => writeln!(
            out,
            "media files         {} found, none adopted: archive.enabled is off",
            media.files.len()
        )?,
        None => writeln!(out, "media files         0")?,
    }
    Ok(())
}
