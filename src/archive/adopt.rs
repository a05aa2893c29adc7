//! Adopting files already on disk into the archive: the media a DiscordChatExporter export
//! downloaded while Discord's links still worked (`mjlink import dce`). Each file goes the way
//! a download goes: copied into a temporary file in `.staging` while hashing, checked by its
//! first bytes to be the image or video it claims ([`mjlink_core::layout::sniff`]: PNG, WebP,
//! JPEG, GIF, mp4; the name never decides), under the size cap, fsynced; then recorded by the
//! worker's own [`record_group`](super::worker) (its place in the layout, one copy of identical
//! bytes, the family's `metadata.json`, marked archived in one transaction with them).
//!
//! A file that is not an image or video (DCE saves the body of an HTTP error under the
//! image's name when a download failed) is counted and never adopted: its attachment stays
//! pending, and `mjlink archive` may still fetch it. The source file is only read.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::download::{Downloaded, FetchError, TEMP_PREFIX};
use super::root::{self, Use};
use super::worker::{record_group, ArchiveError, ArchiveSummary, WorkerOptions, GROUP_MAX};
use crate::store::Store;
use mjlink_core::layout::{sniff, SIGNATURE_BYTES};
use mjlink_core::snowflake::Snowflake;

/// How many examples of files not adopted the report shows (all are counted).
const EXAMPLES: usize = 5;

/// What adopting did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdoptSummary {
    /// Files looked at.
    pub files: u64,
    /// Stored in the archive as a new file.
    pub adopted: u64,
    /// The same bytes were already archived: recorded as that file.
    pub deduplicated: u64,
    /// Their attachment was already archived (an import repeated).
    pub already_archived: u64,
    /// Not an image or video by their bytes (an HTTP error body saved under an image name).
    pub not_media: u64,
    pub too_large: u64,
    /// Their message is not one whose images are archived (a progress preview, not
    /// Midjourney's) or was not stored.
    pub not_archived: u64,
    /// Could not be read or written (a local cause): still pending.
    pub failed: u64,
    pub examples: Vec<String>,
}

impl AdoptSummary {
    fn example(&mut self, text: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(mjlink_core::text::cut(&text, 300));
        }
    }
}

/// Adopts `files` (attachment id -> a file found for it) into the archive (`options.backend`).
/// `on_progress(done, total)` after each group.
pub async fn adopt(
    store: &mut Store,
    options: &WorkerOptions,
    max_bytes: u64,
    files: &BTreeMap<Snowflake, PathBuf>,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<AdoptSummary, ArchiveError> {
    let mut summary = AdoptSummary {
        files: files.len() as u64,
        ..Default::default()
    };
    if files.is_empty() {
        return Ok(summary);
    }
    root::check(store, &options.backend, Use::Write).await?;
    let _lock = root::lock(options.backend.local())?;
    let staging = root::staging(options.backend.local())?;
    let total = files.len() as u64;
    let mut done = 0u64;
    let entries: Vec<(&Snowflake, &PathBuf)> = files.iter().collect();
    for chunk in entries.chunks(GROUP_MAX) {
        let mut group = Vec::with_capacity(chunk.len());
        for (attachment_id, path) in chunk {
            let Some(image) = store.pending_image(**attachment_id)? else {
                if store.attachment_state(**attachment_id)?.as_deref() == Some("archived") {
                    summary.already_archived += 1;
                } else {
                    summary.not_archived += 1;
                }
                continue;
            };
            match copy_local(path, &staging, max_bytes) {
                Ok(copied) => group.push((image, Ok(copied))),
                Err(FetchError::NotAnImage { .. }) => {
                    summary.not_media += 1;
                    summary.example(format!(
                        "{}: not an image or video (an HTTP error body the exporter saved under the image's name?)",
                        path.display()
                    ));
                }
                Err(FetchError::TooLarge { limit }) => {
                    summary.too_large += 1;
                    summary.example(format!("{}: larger than the {limit}-byte limit", path.display()));
                }
                Err(error) => {
                    summary.failed += 1;
                    summary.example(format!("{}: {error}", path.display()));
                }
            }
        }
        let mut recorded = ArchiveSummary::default();
        record_group(store, options, &staging, group, false, &mut recorded).await?;
        summary.adopted += recorded.archived;
        summary.deduplicated += recorded.deduplicated;
        summary.failed += recorded.failed + recorded.retry_later;
        done += chunk.len() as u64;
        on_progress(done, total);
    }
    Ok(summary)
}

/// Copies `source` into a temporary file in `dir` while hashing it, with a download's checks:
/// an image or video by its first bytes, at most `max_bytes`, fsynced and its size on disk
/// checked.
pub fn copy_local(source: &Path, dir: &Path, max_bytes: u64) -> Result<Downloaded, FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error: std::io::Error| FetchError::Io {
            path: path.clone(),
            reason: error.to_string(),
        }
    };
    let mut file = std::fs::File::open(source).map_err(io(source))?;
    if file.metadata().map_err(io(source))?.len() > max_bytes {
        return Err(FetchError::TooLarge { limit: max_bytes });
    }
    let mut head = Vec::with_capacity(SIGNATURE_BYTES);
    (&mut file)
        .take(SIGNATURE_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io(source))?;
    let kind = sniff(&head).ok_or(FetchError::NotAnImage {
        content_type: "none (a file on disk)".to_string(),
    })?;
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let mut hasher = Sha256::new();
    hasher.update(&head);
    temp.write_all(&head).map_err(io(dir))?;
    let mut bytes = head.len() as u64;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(io(source)(error)),
        };
        bytes += read as u64;
        if bytes > max_bytes {
            return Err(FetchError::TooLarge { limit: max_bytes });
        }
        hasher.update(&buffer[..read]);
        temp.write_all(&buffer[..read]).map_err(io(dir))?;
    }
    temp.as_file().sync_all().map_err(io(dir))?;
    let on_disk = temp.as_file().metadata().map_err(io(dir))?.len();
    if on_disk != bytes {
        return Err(FetchError::Io {
            path: dir.to_path_buf(),
            reason: format!("the copy has {on_disk} bytes, {bytes} were read"),
        });
    }
    let (_, temp_path) = temp.keep().map_err(|error| io(dir)(error.error))?;
    Ok(Downloaded {
        temp_path,
        sha256: hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
        bytes,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_and_videos_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let png = mjlink_sim::png::png(16, 16, 3);
        let image = dir.path().join("a.png");
        std::fs::write(&image, &png).unwrap();
        let copied = copy_local(&image, dir.path(), 1 << 20).unwrap();
        assert_eq!(std::fs::read(&copied.temp_path).unwrap(), png);
        assert_eq!(
            copied.sha256,
            Sha256::digest(&png)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let error_body = dir.path().join("b.png");
        std::fs::write(&error_body, b"This content is no longer available.").unwrap();
        assert!(matches!(
            copy_local(&error_body, dir.path(), 1 << 20),
            Err(FetchError::NotAnImage { .. })
        ));
        assert!(matches!(
            copy_local(&image, dir.path(), 10),
            Err(FetchError::TooLarge { .. })
        ));
        let empty = dir.path().join("c.png");
        std::fs::write(&empty, b"").unwrap();
        assert!(copy_local(&empty, dir.path(), 1 << 20).is_err());
    }
}
