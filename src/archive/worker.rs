//! Working through the download queue that lives in the database: every pending image of a
//! grid or result is downloaded (a few at a time), verified, put in its place, and only then
//! marked archived. A crash at any moment leaves at worst a temporary file and a pending row,
//! which the next run redoes.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;

use super::download::{hash_file, put_in_place, Downloaded, FetchError, Fetcher};
use super::layout::{family_of, place, Role};
use crate::rest::Rest;
use crate::snowflake::Snowflake;
use crate::store::{PendingImage, Store, StoreError};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ArchiveSummary {
    pub archived: u64,
    /// Archived without a second copy: the same bytes were already in the archive.
    pub deduplicated: u64,
    pub failed: u64,
    /// Still pending (retryable failures, expired links).
    pub retry_later: u64,
    /// Upscales of different tiles of one grid with identical bytes (the N-copies bug).
    pub same_bytes_tiles: u64,
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub root: PathBuf,
    pub concurrency: usize,
    /// Attempts (over all runs) before an image is marked failed.
    pub max_attempts: i64,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            root: PathBuf::from("archive"),
            concurrency: 4,
            max_attempts: 5,
        }
    }
}

/// Whether a signed Discord link says it has expired (`ex` = expiry as hex Unix seconds).
pub fn link_expired(url: &str, now_ms: i64) -> bool {
    let Some(query) = url.split_once('?').map(|(_, query)| query) else {
        return false;
    };
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ex="))
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .is_some_and(|expiry_s| expiry_s.saturating_mul(1000) <= now_ms)
}

/// Gets fresh links for `images` (refresh-urls, else the message fetched again) and stores
/// them; returns the images that now have a fresh link.
async fn refresh(
    store: &Store,
    rest: &Rest,
    images: Vec<PendingImage>,
) -> Result<Vec<PendingImage>, StoreError> {
    let urls: Vec<String> = images.iter().map(|image| image.url.clone()).collect();
    let refreshed = match rest.refresh_urls(&urls).await {
        Ok(refreshed) => refreshed,
        Err(error) => {
            tracing::warn!(%error, "refresh-urls failed; fetching the messages again");
            Default::default()
        }
    };
    let mut fresh = Vec::new();
    for mut image in images {
        let mut url = refreshed.get(&image.url).cloned();
        if url.is_none() {
            if let Some(channel) = image.channel_id {
                if let Ok(Some(fetched)) = rest.message(channel, image.message_id).await {
                    url = fetched
                        .message
                        .attachments
                        .unwrap_or_default()
                        .into_iter()
                        .find(|attachment| attachment.id == image.attachment_id)
                        .map(|attachment| attachment.url);
                }
            }
        }
        match url {
            Some(url) if url != image.url => {
                store.update_attachment_url(image.attachment_id, &url)?;
                image.url = url;
                fresh.push(image);
            }
            _ => {
                store.mark_attempt_failed(
                    image.attachment_id,
                    "the link expired and no fresh one was given",
                    false,
                )?;
            }
        }
    }
    Ok(fresh)
}

/// One pass over the queue. `on_progress(done, seen)` is called after each image. With
/// `rest` (a bot token), expired links are refreshed and tried again in the same pass.
pub async fn archive_pending(
    store: &mut Store,
    fetcher: &Fetcher,
    rest: Option<&Rest>,
    options: &WorkerOptions,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<ArchiveSummary, StoreError> {
    let mut summary = ArchiveSummary::default();
    let mut after = Snowflake::default();
    let staging = options.root.join(".staging");
    // Temporary files left by a run that was killed are never trusted: start clean.
    if let Ok(entries) = std::fs::read_dir(&staging) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let mut done = 0u64;
    let mut seen = 0u64;
    loop {
        let mut batch = store.pending_images(after, 256, options.max_attempts)?;
        let Some(last) = batch.last() else { break };
        after = last.attachment_id;
        seen += batch.len() as u64;
        // Links whose signature says they expired get fresh ones before any request.
        if let Some(rest) = rest {
            let now = chrono::Utc::now().timestamp_millis();
            let (expired, live): (Vec<_>, Vec<_>) =
                batch.into_iter().partition(|image| link_expired(&image.url, now));
            batch = live;
            if !expired.is_empty() {
                batch.extend(refresh(store, rest, expired).await?);
            }
        }
        let mut answered_expired = Vec::new();
        let mut downloads = futures_util::stream::iter(batch.into_iter().map(|image| {
            let staging = staging.clone();
            async move {
                let result = fetcher.fetch(&image.url, &staging).await;
                (image, result)
            }
        }))
        // Results are recorded in queue order (downloads still overlap), so which copy of
        // identical bytes is kept does not depend on timing.
        .buffered(options.concurrency.max(1));
        while let Some((image, result)) = downloads.next().await {
            if rest.is_some() && matches!(result, Err(FetchError::Expired { .. })) {
                answered_expired.push(image);
                continue;
            }
            record(store, options, &image, result, &mut summary)?;
            done += 1;
            on_progress(done, seen);
        }
        drop(downloads);
        // Links that answered 403/404: refresh once, then try again.
        if let (Some(rest), false) = (rest, answered_expired.is_empty()) {
            for image in refresh(store, rest, answered_expired).await? {
                let result = fetcher.fetch(&image.url, &staging).await;
                record(store, options, &image, result, &mut summary)?;
                done += 1;
                on_progress(done, seen);
            }
        }
    }
    Ok(summary)
}

/// Writes `metadata.json` (the grid and every linked result with its files, sizes and hashes)
/// and `prompt.txt` in a family folder, each through a temporary file and a rename.
fn write_family_files(store: &Store, dir: &Path, grid_id: Snowflake) -> std::io::Result<()> {
    let record = match store.family_record(grid_id) {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(()),
        Err(error) => return Err(std::io::Error::other(error.to_string())),
    };
    let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut temp, bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(dir.join(name)).map_err(|error| error.error)?;
        Ok(())
    };
    let json = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
    write("metadata.json", &json)?;
    if let Some(prompt) = &record.grid.prompt {
        write("prompt.txt", format!("{prompt}\n").as_bytes())?;
    }
    Ok(())
}

/// Stores the outcome of one download (and, for a new file, its family's metadata).
fn record(
    store: &mut Store,
    options: &WorkerOptions,
    image: &PendingImage,
    result: Result<Downloaded, FetchError>,
    summary: &mut ArchiveSummary,
) -> Result<(), StoreError> {
    let downloaded = match result {
        Ok(downloaded) => downloaded,
        Err(error) => {
            let give_up = !error.is_retryable() && !matches!(error, FetchError::Expired { .. })
                || image.attempts + 1 >= options.max_attempts;
            tracing::warn!(attachment_id = %image.attachment_id, %error, give_up, "download failed");
            store.mark_attempt_failed(image.attachment_id, &error.to_string(), give_up)?;
            if give_up {
                summary.failed += 1;
            } else {
                summary.retry_later += 1;
            }
            return Ok(());
        }
    };
    let (family, family_posted, role) = family_of(image);
    // The same bytes already archived: keep one copy.
    if let Some(copy) = store.archived_with_hash(&downloaded.sha256)? {
        let (other, path, other_tile, other_parent) =
            (copy.attachment_id, copy.path, copy.tile, copy.parent_id);
        let _ = std::fs::remove_file(&downloaded.temp_path);
        let same_tile_bug = matches!(role, Role::Upscale(tile) if other_tile.is_some_and(|t| t != tile))
            && other_parent.is_some()
            && other_parent == image.parent_id;
        if same_tile_bug {
            summary.same_bytes_tiles += 1;
            tracing::warn!(
                attachment_id = %image.attachment_id,
                same_as = %other,
                parent_id = ?image.parent_id.map(|id| id.0),
                "two tiles of one grid were upscaled to identical bytes"
            );
        }
        store.mark_archived(
            image.attachment_id,
            &path,
            &downloaded.sha256,
            downloaded.bytes,
            same_tile_bug.then_some(other),
        )?;
        summary.deduplicated += 1;
        return Ok(());
    }
    let mut relative = match &image.previous_path {
        // A repair puts the file back where it was.
        Some(previous) => PathBuf::from(previous),
        None => place(&family, family_posted, &role, downloaded.kind),
    };
    let already_there = image.previous_path.is_none()
        && hash_file(&options.root.join(&relative)).is_ok_and(|(sha256, _)| sha256 == downloaded.sha256);
    if image.previous_path.is_none() && !already_there && options.root.join(&relative).exists() {
        // Another image already has this name (a tile upscaled twice): never overwrite it.
        let stem = relative
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        relative.set_file_name(format!(
            "{stem}_{}.{}",
            image.attachment_id,
            downloaded.kind.extension()
        ));
    }
    let destination = options.root.join(&relative);
    let verified = if already_there {
        // This very file, put in place by a run that stopped before recording it.
        let _ = std::fs::remove_file(&downloaded.temp_path);
        Ok(true)
    } else {
        put_in_place(&downloaded, &destination)
            .and_then(|()| hash_file(&destination))
            .map(|(sha256, bytes)| sha256 == downloaded.sha256 && bytes == downloaded.bytes)
    };
    let family_dir = relative.parent().map(Path::to_path_buf);
    let grid_id = match role {
        Role::Grid => Some(image.message_id),
        _ => image.parent_id.or(Some(image.message_id)),
    };
    match verified {
        Ok(true) => {
            // The row and the family's metadata change together: a stop in between leaves
            // the row pending, and the next run finds the file already in place.
            store.begin()?;
            store.mark_archived(
                image.attachment_id,
                &relative.to_string_lossy(),
                &downloaded.sha256,
                downloaded.bytes,
                None,
            )?;
            if let (Some(dir), Some(grid_id)) = (&family_dir, grid_id) {
                if let Err(error) = write_family_files(store, &options.root.join(dir), grid_id) {
                    tracing::warn!(folder = %dir.display(), %error, "cannot write metadata.json/prompt.txt");
                }
            }
            store.commit()?;
            summary.archived += 1;
        }
        Ok(false) => {
            store.mark_attempt_failed(
                image.attachment_id,
                "the file on disk does not match its download",
                false,
            )?;
            summary.retry_later += 1;
        }
        Err(error) => {
            let _ = std::fs::remove_file(&downloaded.temp_path);
            store.mark_attempt_failed(
                image.attachment_id,
                &format!("cannot write {}: {error}", destination.display()),
                false,
            )?;
            summary.retry_later += 1;
        }
    }
    Ok(())
}

/// What `verify` found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub ok: u64,
    /// (attachment id, path, problem)
    pub problems: Vec<(Snowflake, String, String)>,
}

/// Rehashes every archived file; with `repair`, puts the missing and corrupt ones back in the
/// queue (the caller then runs [`archive_pending`]).
pub fn verify(store: &Store, root: &Path, repair: bool) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    for image in store.images()? {
        if image.state != "archived" {
            continue;
        }
        let (Some(path), Some(expected)) = (image.path.as_deref(), image.sha256.as_deref()) else {
            continue;
        };
        report.checked += 1;
        let problem = match hash_file(&root.join(path)) {
            Ok((actual, _)) if actual == expected => None,
            Ok(_) => Some("corrupt (hash differs)".to_string()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some("missing".to_string()),
            Err(error) => Some(format!("unreadable: {error}")),
        };
        match problem {
            None => report.ok += 1,
            Some(problem) => {
                if repair {
                    store.requeue(image.attachment_id, &problem)?;
                }
                report
                    .problems
                    .push((image.attachment_id, path.to_string(), problem));
            }
        }
    }
    Ok(report)
}
