//! Working through the download queue that lives in the database: every pending image or
//! video of a grid or result is downloaded (a few at a time), verified, put in its place, and only then
//! marked archived. A crash at any moment leaves at worst a temporary file and a pending row,
//! which the next run redoes.

use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{FutureExt, StreamExt};

use super::backend::{Backend, Bucket, PlaceError, ReadError, StorageError, UploadLog};
use super::download::{move_into_place, Downloaded, FetchError, Fetcher, TEMP_PREFIX};
use super::root::{self, RootError, Use};
use crate::config::Config;
use crate::rest::Rest;
use crate::store::{PendingImage, Store, StoreError};
use mjlink_core::layout::{family_of, place, Role};
use mjlink_core::retry::{after_failure, Failure, RetryPolicy, Verdict};
use mjlink_core::snowflake::Snowflake;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
    /// Where the files go: the folder, or the bucket (`archive.backend`).
    pub backend: Backend,
    pub concurrency: usize,
    /// How long an image waits after a transient failure ([`mjlink_core::retry`]).
    pub retry: RetryPolicy,
    /// Where an archived grid or result is told (`[[notify]]`).
    pub notify: crate::notify::Routes,
}

impl WorkerOptions {
    /// From `[archive]`, and the routes of `[[notify]]`.
    pub fn from_config(config: &Config) -> Result<WorkerOptions, crate::config::ConfigError> {
        Ok(WorkerOptions {
            backend: Backend::from_config(&config.archive)?,
            concurrency: config.archive.concurrency,
            notify: crate::notify::routes(config),
            ..WorkerOptions::default()
        })
    }

    /// The defaults, archiving into the folder `root`.
    pub fn in_folder(root: impl Into<PathBuf>) -> WorkerOptions {
        WorkerOptions {
            backend: Backend::Fs { root: root.into() },
            ..WorkerOptions::default()
        }
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            backend: Backend::Fs {
                root: PathBuf::from("archive"),
            },
            concurrency: 4,
            retry: RetryPolicy::default(),
            notify: Default::default(),
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
/// them; returns the images that now have a fresh link. The others wait for a later pass,
/// unless Discord said the message or its attachment is gone.
async fn refresh(
    // `&mut` (not `&`): a `Store` is not `Sync`, and this future must be `Send`.
    store: &mut Store,
    rest: &Rest,
    images: Vec<PendingImage>,
    options: &WorkerOptions,
    summary: &mut ArchiveSummary,
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
        let mut gone = false;
        if url.is_none() {
            if let Some(channel) = image.channel_id {
                match rest.message(channel, image.message_id).await {
                    Ok(Some(event)) => {
                        url = event
                            .message()
                            .and_then(|message| message.attachments.as_deref())
                            .unwrap_or_default()
                            .iter()
                            .find(|attachment| attachment.id == image.attachment_id)
                            .map(|attachment| attachment.url.clone());
                        gone = url.is_none();
                    }
                    Ok(None) => gone = true,
                    Err(_) => {}
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
                let (failure, reason) = if gone {
                    (
                        Failure::Gone,
                        "the link expired and the message or its attachment is gone",
                    )
                } else {
                    (
                        Failure::LinkExpired,
                        "the link expired and no fresh one was given",
                    )
                };
                give_up_or_wait(store, options, &image, failure, reason, summary)?;
            }
        }
    }
    Ok(fresh)
}

/// Records a failed attempt with the core's verdict: `failed` (a permanent answer about the
/// image) or pending until its next try.
fn give_up_or_wait(
    store: &Store,
    options: &WorkerOptions,
    image: &PendingImage,
    failure: Failure,
    reason: &str,
    summary: &mut ArchiveSummary,
) -> Result<(), StoreError> {
    let verdict = after_failure(
        failure,
        image.attempts + 1,
        crate::clock::now_ms(),
        &options.retry,
    );
    tracing::warn!(attachment_id = %image.attachment_id, error = reason, ?verdict, "download failed");
    store.mark_attempt_failed(image.attachment_id, reason, verdict)?;
    match verdict {
        Verdict::Failed => summary.failed += 1,
        Verdict::RetryAt(_) => summary.retry_later += 1,
    }
    Ok(())
}

/// One pass over the queue: the images due now. `on_progress(done, seen)` is called after each
/// group recorded. With `rest` (a bot token), expired links are refreshed and tried again in
/// the same pass. The archive must be this database's ([`root::check`]) and no other pass may
/// be working in its local folder ([`root::lock`]). When the bucket cannot be used, the pass
/// stops with [`ArchiveError::Storage`] and the images not yet stored stay pending as they were.
pub async fn archive_pending(
    store: &mut Store,
    fetcher: &Fetcher,
    rest: Option<&Rest>,
    options: &WorkerOptions,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<ArchiveSummary, ArchiveError> {
    root::check(store, &options.backend, Use::Write).await?;
    let _lock = root::lock(options.backend.local())?;
    // Temporary files left by a run that was killed are never trusted: start clean.
    let staging = root::staging(options.backend.local())?;
    let mut summary = ArchiveSummary::default();
    let mut after = None;
    let due = crate::clock::now_ms();
    let mut progress = Counts::default();
    loop {
        let mut batch = store.pending_images(after, 256, due)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.attachment_id);
        progress.seen += batch.len() as u64;
        // Links whose signature says they expired get fresh ones before any request.
        if let Some(rest) = rest {
            let now = crate::clock::now_ms();
            let (expired, live): (Vec<_>, Vec<_>) =
                batch.into_iter().partition(|image| link_expired(&image.url, now));
            batch = live;
            if !expired.is_empty() {
                batch.extend(refresh(store, rest, expired, options, &mut summary).await?);
            }
        }
        let pass = Pass {
            fetcher,
            options,
            staging: &staging,
        };
        let answered_expired = pass
            .download(
                store,
                batch,
                if rest.is_some() {
                    Links::Refreshable
                } else {
                    Links::AsGiven
                },
                &mut summary,
                &mut progress,
                &mut on_progress,
            )
            .await?;
        // Links that answered 403/404: refresh once, then try again (a second 403/404 is an
        // answer about the file: it is gone).
        if let (Some(rest), false) = (rest, answered_expired.is_empty()) {
            let fresh = refresh(store, rest, answered_expired, options, &mut summary).await?;
            pass.download(
                store,
                fresh,
                Links::Refreshed,
                &mut summary,
                &mut progress,
                &mut on_progress,
            )
            .await?;
        }
    }
    Ok(summary)
}

/// What a 403/404 answer means in a round of downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Links {
    /// The link can be refreshed (a token is configured): the image is returned for that.
    Refreshable,
    /// No token: the link stays expired until a later pass ([`Failure::LinkExpired`]).
    AsGiven,
    /// The links were just refreshed: the file is gone ([`Failure::Gone`]).
    Refreshed,
}

#[derive(Debug, Default)]
struct Counts {
    done: u64,
    seen: u64,
}

/// What the downloads of one pass share.
struct Pass<'a> {
    fetcher: &'a Fetcher,
    options: &'a WorkerOptions,
    staging: &'a Path,
}

impl Pass<'_> {
    /// Downloads `batch` (`concurrency` at a time, each a task of its own: streaming, hashing
    /// and fsync run on every core) and records each image as it finishes: one slow image
    /// never holds up the others. With [`Links::Refreshable`], the images whose link answered
    /// 403/404 are returned to be refreshed.
    async fn download(
        &self,
        store: &mut Store,
        batch: Vec<PendingImage>,
        links: Links,
        summary: &mut ArchiveSummary,
        progress: &mut Counts,
        on_progress: &mut impl FnMut(u64, u64),
    ) -> Result<Vec<PendingImage>, ArchiveError> {
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(self.options.concurrency.max(1)));
        let mut downloads: futures_util::stream::FuturesUnordered<_> = batch
            .into_iter()
            .map(|image| {
                let staging = self.staging.to_path_buf();
                let fetcher = self.fetcher.clone();
                let url = image.url.clone();
                let permits = std::sync::Arc::clone(&permits);
                let task = tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    fetcher.fetch(&url, &staging).await
                });
                async move {
                    let result = task.await.unwrap_or_else(|error| {
                        Err(FetchError::Transport {
                            attempts: 1,
                            reason: format!("the download task stopped: {error}"),
                        })
                    });
                    (image, result)
                }
            })
            .collect();
        let mut expired = Vec::new();
        while let Some(first) = downloads.next().await {
            // Whatever else has finished joins this group: one commit, and the file work of
            // the group (renames, folder syncs, metadata) runs in parallel.
            let mut ready = vec![first];
            while ready.len() < GROUP_MAX {
                match downloads.next().now_or_never() {
                    Some(Some(item)) => ready.push(item),
                    _ => break,
                }
            }
            // The same order whatever the timing within a group.
            ready.sort_by_key(|(image, _)| image.attachment_id.to_sql());
            let mut group = Vec::with_capacity(ready.len());
            for (image, result) in ready {
                if links == Links::Refreshable && matches!(result, Err(FetchError::Expired { .. })) {
                    expired.push(image);
                } else {
                    group.push((image, result));
                }
            }
            progress.done += group.len() as u64;
            record_group(
                store,
                self.options,
                self.staging,
                group,
                links == Links::Refreshed,
                summary,
            )
            .await?;
            on_progress(progress.done, progress.seen);
        }
        Ok(expired)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("cannot start the downloader: {0}")]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Rest(#[from] crate::rest::RestError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One pass over the queue as the config says (`mjlink archive`, after `backfill` and
/// `replay --download`, at the end of the demo): with a bot token, expired links are
/// refreshed through Discord; without one they stay queued.
pub async fn archive_configured(
    config: &crate::config::Config,
    on_progress: impl FnMut(u64, u64),
) -> Result<ArchiveSummary, ArchiveError> {
    let mut store = Store::open(&config.database_path)?;
    let fetcher = Fetcher::new(super::download::FetchPolicy::from_config(&config.archive))?;
    let rest = match &config.discord.token {
        Some(_) => Some(Rest::from_config(&config.discord)?),
        None => None,
    };
    let options = WorkerOptions::from_config(config)?;
    archive_pending(&mut store, &fetcher, rest.as_ref(), &options, on_progress).await
}

/// How often the run-time archiver looks again at images that are still pending (failed
/// downloads to retry, links to refresh) when no new image has arrived.
pub const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The archiver beside the live bot: a pass over the queue each time `wake` is notified (the
/// writer committed new messages) and every [`RETRY_EVERY`]. It has its own connection to
/// the database (WAL lets it read while the writer writes; its own writes are short). It runs
/// until its task is dropped: a pass cut short leaves pending rows and at worst a temporary
/// file, which the next pass redoes, as after a crash.
pub async fn keep_archiving(
    mut store: Store,
    fetcher: Fetcher,
    rest: Option<std::sync::Arc<Rest>>,
    options: WorkerOptions,
    wake: std::sync::Arc<tokio::sync::Notify>,
) {
    loop {
        match archive_pending(&mut store, &fetcher, rest.as_deref(), &options, |_, _| {}).await {
            Ok(summary) if summary != ArchiveSummary::default() => tracing::info!(
                archived = summary.archived,
                deduplicated = summary.deduplicated,
                failed = summary.failed,
                retry_later = summary.retry_later,
                same_bytes_tiles = summary.same_bytes_tiles,
                "archive pass"
            ),
            Ok(_) => {}
            // `mjlink archive` is working in the folder: its pass does this one's work.
            Err(ArchiveError::Root(RootError::Busy { .. })) => {
                tracing::info!("another archive pass is running; this one waits for its turn")
            }
            Err(error) => tracing::error!(%error, "the archive pass stopped; trying again later"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

/// Most downloads recorded in one group (one transaction).
pub(super) const GROUP_MAX: usize = 16;

/// A family's `metadata.json` and `prompt.txt`, as bytes, read from the database.
struct FamilyFiles {
    metadata: Vec<u8>,
    prompt: Option<String>,
}

fn family_files(store: &Store, grid_id: Snowflake) -> Result<Option<FamilyFiles>, StoreError> {
    let Some(record) = store.family_record(grid_id)? else {
        return Ok(None);
    };
    let metadata = serde_json::to_vec_pretty(&record).unwrap_or_default();
    Ok(Some(FamilyFiles {
        metadata,
        prompt: record.grid.prompt.clone(),
    }))
}

/// Writes `metadata.json` and `prompt.txt` in a family folder when their content changed, each
/// through a temporary file in `staging` (named with [`TEMP_PREFIX`]), fsync and rename.
fn write_family_files(dir: &Path, files: &FamilyFiles, staging: &Path) -> std::io::Result<()> {
    let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|existing| existing == bytes) {
            return Ok(());
        }
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(staging)?;
        std::io::Write::write_all(&mut temp, bytes)?;
        super::share(temp.as_file())?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|error| error.error)?;
        Ok(())
    };
    write("metadata.json", &files.metadata)?;
    if let Some(prompt) = &files.prompt {
        write("prompt.txt", format!("{prompt}\n").as_bytes())?;
    }
    Ok(())
}

/// Runs `work` on every item on threads of its own (the items are file-system work that
/// waits on the disk), and returns the results in order.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 {
        return items.iter().map(&work).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.iter().map(|item| scope.spawn(|| work(item))).collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// What to do with one finished download.
enum Plan {
    /// The same bytes are already archived (or are being archived in this group).
    Copy {
        of: CopyOf,
        downloaded: Downloaded,
        same_tile_bug: bool,
    },
    /// A new file: rename it into `relative` (unless it is already there).
    Place {
        downloaded: Downloaded,
        relative: PathBuf,
        already_there: bool,
    },
}

impl Plan {
    fn downloaded(&self) -> &Downloaded {
        match self {
            Plan::Copy { downloaded, .. } | Plan::Place { downloaded, .. } => downloaded,
        }
    }
}

enum CopyOf {
    Archived {
        attachment_id: Snowflake,
        path: String,
    },
    /// An earlier download of this group (index into the group).
    InGroup(usize),
}

/// What became of one plan's file in step 2 of [`record_group`].
enum Placed {
    /// In place (or already there): record it.
    Stored,
    /// A failure about this file: it waits for its retry.
    Failed(String),
    /// The store could not be used: the image stays pending as it was.
    Halted(StorageError),
}

/// Records a group of finished downloads: failures first, then the new files are put in
/// place (in the folder: in parallel, rename and folder sync; in the bucket: uploads,
/// `concurrency` at a time), and the rows and the families' metadata change together in one
/// transaction. A stop in between leaves the rows pending, and the next run finds the files
/// already in place. When the bucket cannot be used, what was stored is recorded, the rest
/// stays pending untouched, and [`ArchiveError::Storage`] stops the pass.
pub(super) async fn record_group(
    store: &mut Store,
    options: &WorkerOptions,
    staging: &Path,
    group: Vec<(PendingImage, Result<Downloaded, FetchError>)>,
    refreshed: bool,
    summary: &mut ArchiveSummary,
) -> Result<(), ArchiveError> {
    // 1. Decide each download's fate (database reads, and what is already in the archive).
    let mut plans: Vec<(PendingImage, Plan)> = Vec::with_capacity(group.len());
    let mut in_group: HashMap<String, usize> = HashMap::new();
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    let mut group = group.into_iter();
    while let Some((image, result)) = group.next() {
        let downloaded = match result {
            Ok(downloaded) => downloaded,
            Err(error) => {
                let failure = match error {
                    FetchError::Expired { .. } if refreshed => Failure::Gone,
                    ref other => other.failure(),
                };
                give_up_or_wait(store, options, &image, failure, &error.to_string(), summary)?;
                continue;
            }
        };
        let (family, family_posted, role) = family_of(&image.facts());
        let same_tile = |other_tile: Option<u8>, other_parent: Option<Snowflake>| {
            matches!(role, Role::Upscale(tile) if other_tile.is_some_and(|t| t != tile))
                && other_parent.is_some()
                && other_parent == image.parent_id
        };
        // The same bytes already archived, or about to be: keep one copy.
        if let Some(&index) = in_group.get(&downloaded.sha256) {
            let (other, _) = &plans[index];
            let same_tile_bug = same_tile(other.tile, other.parent_id);
            plans.push((
                image,
                Plan::Copy {
                    of: CopyOf::InGroup(index),
                    downloaded,
                    same_tile_bug,
                },
            ));
            continue;
        }
        if let Some(copy) = store.archived_with_hash(&downloaded.sha256)? {
            let same_tile_bug = same_tile(copy.tile, copy.parent_id);
            plans.push((
                image,
                Plan::Copy {
                    of: CopyOf::Archived {
                        attachment_id: copy.attachment_id,
                        path: copy.path,
                    },
                    downloaded,
                    same_tile_bug,
                },
            ));
            continue;
        }
        let mut relative = match &image.previous_path {
            // A repair puts the file back where it was.
            Some(previous) => PathBuf::from(previous),
            None => place(&family, family_posted, &role, downloaded.kind),
        };
        let mut already_there = false;
        if image.previous_path.is_none() {
            let found = if claimed.contains(&relative) {
                Ok(Some(false))
            } else {
                holds(&options.backend, &relative, &downloaded.sha256).await
            };
            let found = match found {
                Ok(found) => found,
                Err(error) => {
                    // Nothing of the group is stored: every image stays pending as it was.
                    let _ = std::fs::remove_file(&downloaded.temp_path);
                    for (_, plan) in &plans {
                        let _ = std::fs::remove_file(&plan.downloaded().temp_path);
                    }
                    for (_, rest) in group {
                        if let Ok(downloaded) = rest {
                            let _ = std::fs::remove_file(&downloaded.temp_path);
                        }
                    }
                    return Err(error.into());
                }
            };
            already_there = found == Some(true);
            if found == Some(false) {
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
        }
        claimed.insert(relative.clone());
        in_group.insert(downloaded.sha256.clone(), plans.len());
        plans.push((
            image,
            Plan::Place {
                downloaded,
                relative,
                already_there,
            },
        ));
    }
    if plans.is_empty() {
        return Ok(());
    }

    // 2. New files into place.
    let placed = match &options.backend {
        Backend::Fs { root } => place_in_folder(root, &plans),
        Backend::S3 { bucket, .. } => {
            let log = std::sync::Mutex::new(&mut *store);
            let uploads: Vec<_> = plans
                .iter()
                .map(|(_, plan)| upload_one(bucket, &log, plan))
                .collect();
            futures_util::stream::iter(uploads)
                .buffered(options.concurrency.max(1))
                .collect::<Vec<_>>()
                .await
        }
    };
    let halted = placed.iter().find_map(|placed| match placed {
        Placed::Halted(error) => Some(error.clone()),
        _ => None,
    });

    // 3. Rows and metadata together.
    store.begin()?;
    let mut families: BTreeMap<PathBuf, Snowflake> = BTreeMap::new();
    for ((image, plan), outcome) in plans.iter().zip(&placed) {
        match plan {
            Plan::Copy {
                of,
                downloaded,
                same_tile_bug,
            } => {
                let (other, path) = match of {
                    CopyOf::Archived {
                        attachment_id, path, ..
                    } => (*attachment_id, path.clone()),
                    CopyOf::InGroup(original) => match (&plans[*original], &placed[*original]) {
                        ((other, Plan::Place { relative, .. }), Placed::Stored) => {
                            (other.attachment_id, layout_key(relative))
                        }
                        (_, Placed::Halted(_)) => continue,
                        _ => {
                            give_up_or_wait(
                                store,
                                options,
                                image,
                                Failure::Local,
                                "the copy with the same bytes could not be stored",
                                summary,
                            )?;
                            continue;
                        }
                    },
                };
                if *same_tile_bug {
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
                    downloaded.kind.as_str(),
                    same_tile_bug.then_some(other),
                )?;
                tell_archived(store, options, image, &path, downloaded)?;
                summary.deduplicated += 1;
            }
            Plan::Place {
                downloaded, relative, ..
            } => match outcome {
                Placed::Stored => {
                    let path = layout_key(relative);
                    store.mark_archived(
                        image.attachment_id,
                        &path,
                        &downloaded.sha256,
                        downloaded.bytes,
                        downloaded.kind.as_str(),
                        None,
                    )?;
                    tell_archived(store, options, image, &path, downloaded)?;
                    summary.archived += 1;
                    let (_, _, role) = family_of(&image.facts());
                    let grid_id = match role {
                        Role::Grid => image.message_id,
                        _ => image.parent_id.unwrap_or(image.message_id),
                    };
                    if let Some(dir) = relative.parent() {
                        families.insert(dir.to_path_buf(), grid_id);
                    }
                }
                Placed::Failed(error) => {
                    give_up_or_wait(store, options, image, Failure::Local, error, summary)?
                }
                Placed::Halted(_) => {}
            },
        }
    }
    let mut files = Vec::with_capacity(families.len());
    for (dir, grid_id) in families {
        let metadata = family_files(store, grid_id)?;
        files.push((dir, metadata));
    }
    match &options.backend {
        Backend::Fs { root } => {
            let synced = in_parallel(&files, |(dir, metadata)| {
                let dir = root.join(dir);
                // What a killed run left in this family folder.
                root::remove_temp_files(&dir);
                if let Some(family) = metadata {
                    if let Err(error) = write_family_files(&dir, family, staging) {
                        tracing::warn!(folder = %dir.display(), %error, "cannot write metadata.json/prompt.txt");
                    }
                }
                std::fs::File::open(&dir).and_then(|folder| folder.sync_all())
            });
            if let Some(((dir, _), Err(error))) =
                files.iter().zip(&synced).find(|(_, result)| result.is_err())
            {
                // The renames may not survive a crash: nothing of this group is marked archived.
                tracing::warn!(folder = %root.join(dir).display(), %error, "cannot sync the folder; the group is retried");
                store.rollback()?;
                return Ok(());
            }
        }
        Backend::S3 { bucket, .. } => {
            // Each object is durable once the store confirmed it: there is no folder to sync.
            for (dir, metadata) in &files {
                let Some(family) = metadata else { continue };
                let dir = layout_key(dir);
                let mut writes = vec![("metadata.json", family.metadata.clone(), "application/json")];
                if let Some(prompt) = &family.prompt {
                    writes.push((
                        "prompt.txt",
                        format!("{prompt}\n").into_bytes(),
                        "text/plain; charset=utf-8",
                    ));
                }
                for (name, bytes, content_type) in writes {
                    if let Err(error) = bucket
                        .write_small(&format!("{dir}/{name}"), bytes, content_type)
                        .await
                    {
                        let error = match error {
                            PlaceError::File(reason) => reason,
                            PlaceError::Storage(error) => error.to_string(),
                        };
                        tracing::warn!(folder = %dir, %error, "cannot write {name} in the bucket");
                    }
                }
            }
        }
    }
    store.commit()?;
    match halted {
        Some(error) => Err(ArchiveError::Storage(error)),
        None => Ok(()),
    }
}

/// Step 2 of [`record_group`] in the bucket, for one plan: a new file uploaded; the staged
/// file removed whatever happened.
async fn upload_one(bucket: &Bucket, log: &UploadLog<'_>, plan: &Plan) -> Placed {
    let placed = match plan {
        Plan::Place {
            downloaded,
            relative,
            already_there: false,
        } => match bucket.upload(log, downloaded, &layout_key(relative)).await {
            Ok(()) => Placed::Stored,
            Err(PlaceError::File(reason)) => Placed::Failed(reason),
            Err(PlaceError::Storage(error)) => Placed::Halted(error),
        },
        // Already there, or a copy of bytes stored under another name: nothing to send.
        _ => Placed::Stored,
    };
    let _ = std::fs::remove_file(&plan.downloaded().temp_path);
    placed
}

/// What the archive (the folder or the bucket) holds at `relative`: `Some(true)`, these very
/// bytes; `Some(false)`, others; `None`, nothing.
async fn holds(backend: &Backend, relative: &Path, sha256: &str) -> Result<Option<bool>, StorageError> {
    match backend {
        Backend::Fs { root } => {
            let path = root.join(relative);
            Ok(match super::download::hash_file(&path) {
                Ok((found, _)) => Some(found == sha256),
                Err(_) if path.exists() => Some(false),
                Err(_) => None,
            })
        }
        Backend::S3 { bucket, .. } => {
            let key = layout_key(relative);
            if !bucket.exists(&key).await? {
                return Ok(None);
            }
            Ok(Some(bucket.holds(&key, sha256).await?))
        }
    }
}

/// A path of the layout as recorded and as a key: `/`-separated whatever the platform.
fn layout_key(relative: &Path) -> String {
    relative
        .components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Step 2 of [`record_group`] in the folder: new files renamed into place, in parallel. The
/// temporary file was fsynced and its size checked on disk; the rename moves it whole. The
/// folders are synced in step 3, once each, after their metadata is written: then the renames
/// are durable.
fn place_in_folder(root: &Path, plans: &[(PendingImage, Plan)]) -> Vec<Placed> {
    let placed: Vec<Result<bool, String>> = in_parallel(plans, |(_, plan)| match plan {
        Plan::Place {
            downloaded, relative, ..
        } if root::no_link_between(root, relative).is_err() => {
            let _ = std::fs::remove_file(&downloaded.temp_path);
            Err(root::no_link_between(root, relative)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default())
        }
        Plan::Place {
            downloaded,
            already_there: true,
            ..
        } => {
            // This very file, put in place by a run that stopped before recording it.
            let _ = std::fs::remove_file(&downloaded.temp_path);
            Ok(true)
        }
        Plan::Place {
            downloaded, relative, ..
        } => {
            let destination = root.join(relative);
            move_into_place(downloaded, &destination)
                .and_then(|()| std::fs::metadata(&destination))
                .map(|metadata| metadata.len() == downloaded.bytes)
                .map_err(|error| {
                    let _ = std::fs::remove_file(&downloaded.temp_path);
                    format!("cannot write {}: {error}", destination.display())
                })
        }
        Plan::Copy { downloaded, .. } => {
            let _ = std::fs::remove_file(&downloaded.temp_path);
            Ok(true)
        }
    });
    placed
        .into_iter()
        .map(|placed| match placed {
            Ok(true) => Placed::Stored,
            Ok(false) => Placed::Failed("the file on disk does not match its download".to_string()),
            Err(error) => Placed::Failed(error),
        })
        .collect()
}

/// Enqueues the notification of `image` archived at `path`, in the group's transaction.
fn tell_archived(
    store: &Store,
    options: &WorkerOptions,
    image: &PendingImage,
    path: &str,
    downloaded: &Downloaded,
) -> Result<(), StoreError> {
    if options.notify.is_empty() {
        return Ok(());
    }
    let (guild_id, channel_id, prompt) =
        store
            .notify_message_facts(image.message_id)?
            .unwrap_or((None, image.channel_id, None));
    let (_, _, role) = family_of(&image.facts());
    let notice = mjlink_core::notify::archived(&mjlink_core::notify::Archived {
        grid: role == Role::Grid,
        message_id: image.message_id,
        attachment_id: image.attachment_id,
        guild_id,
        channel_id: channel_id.or(image.channel_id),
        kind: &image.kind,
        tile: image.tile,
        parent_id: image.parent_id,
        prompt: prompt.as_deref(),
        path,
        sha256: &downloaded.sha256,
        bytes: downloaded.bytes,
    });
    store.notify_enqueue(&options.notify, &notice, crate::clock::now_ms())?;
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

/// Rehashes every archived file (in the folder or the bucket); with `repair`, puts the
/// missing and corrupt ones back in the queue (the caller then runs [`archive_pending`]). A
/// bucket that cannot be reached stops it with [`ArchiveError::Storage`]: an outage never makes
/// every file "missing".
pub async fn verify(
    store: &mut Store,
    backend: &Backend,
    repair: bool,
) -> Result<VerifyReport, ArchiveError> {
    // An archive that is not this database's would make every file "missing".
    root::check(store, backend, Use::Read).await?;
    let images = store.images()?;
    let mut report = VerifyReport::default();
    for image in images {
        if image.state != "archived" {
            continue;
        }
        let (Some(path), Some(expected)) = (image.path.as_deref(), image.sha256.as_deref()) else {
            continue;
        };
        report.checked += 1;
        let problem = match backend.hash(path).await {
            Ok((actual, _)) if actual == expected => None,
            Ok(_) => Some("corrupt (hash differs)".to_string()),
            Err(ReadError::Missing) => Some("missing".to_string()),
            Err(ReadError::Storage(error)) => return Err(error.into()),
            Err(error) => {
                // One object unreadable, or the whole store gone? Ask the store.
                if let Some(bucket) = backend.bucket() {
                    bucket.reachable().await?;
                }
                Some(error.to_string())
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::download::hash_file;
    use crate::ingest::pipeline::{Event, Pipeline, PipelineConfig};
    use mjlink_core::layout::MediaKind;

    const UUID: &str = "5eed0000-0000-4000-8000-00000000abcd";

    fn create(pipeline: &mut Pipeline, id: u64, content: &str, filename: &str, reply_to: Option<u64>) {
        let ms = mjlink_core::snowflake::Snowflake(id).timestamp_ms();
        let mut value = serde_json::json!({
            "id": id.to_string(), "channel_id": "10", "guild_id": "20",
            "author": {"id": "936929561302675456", "username": "Midjourney Bot", "bot": true},
            "content": content,
            "timestamp": chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339(),
            "type": if reply_to.is_some() { 19 } else { 0 },
            "attachments": [{"id": (id + 1).to_string(), "filename": filename, "url": format!("http://127.0.0.1:9/{id}.png"), "size": 1}],
        });
        if let Some(parent) = reply_to {
            value["message_reference"] =
                serde_json::json!({"channel_id": "10", "message_id": parent.to_string()});
        }
        let digest = mjlink_core::digest::digest(value.to_string().as_bytes());
        let message = serde_json::from_value(value).unwrap();
        pipeline.apply(&Event::Create { message, digest }, ms).unwrap();
    }

    fn downloaded(staging: &Path, bytes: &[u8]) -> Downloaded {
        std::fs::create_dir_all(staging).unwrap();
        let file = tempfile::NamedTempFile::new_in(staging).unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let (_, temp_path) = file.keep().unwrap();
        let (sha256, size) = hash_file(&temp_path).unwrap();
        Downloaded {
            temp_path,
            sha256,
            bytes: size,
            kind: MediaKind::Png,
        }
    }

    /// S3: `/stats` counts as pending only what the archive will keep (the core's table of
    /// kinds): a progress preview's attachment is never archived.
    #[test]
    fn archive_counts_leave_out_progress_previews() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).unwrap();
        let mut pipeline = Pipeline::new(store, PipelineConfig::default());
        let grid = (1_000_000u64 << 22) + 1;
        create(
            &mut pipeline,
            grid,
            "**a cat** - <@5> (fast)",
            &format!("u_a_cat_{UUID}.png"),
            None,
        );
        create(
            &mut pipeline,
            grid + (1000 << 22),
            "**a dog** - <@5> (31%) (fast)",
            "x_grid_0.webp",
            None,
        );
        let store = pipeline.into_store().unwrap();
        let counts = store.archive_counts().unwrap();
        assert_eq!((counts.pending, counts.archived, counts.failed), (1, 0, 0));
    }

    /// The cost of a pass does not grow with history: progress previews, whose images are
    /// never archived and which stay pending forever, are out of the index a pass reads
    /// (`archivable`, written from the core's table of kinds), in a new database and in one
    /// migrated from before the column existed.
    #[test]
    fn an_archive_pass_reads_only_what_is_due_not_every_progress_preview() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut pipeline = Pipeline::new(Store::open(&path).unwrap(), PipelineConfig::default());
        let grid = (1_000_000u64 << 22) + 1;
        create(
            &mut pipeline,
            grid,
            "**a cat** - <@5> (fast)",
            &format!("u_a_cat_{UUID}.png"),
            None,
        );
        for n in 1..=50u64 {
            // Section 4 of the wire notes: a progress message, its preview a `_grid_0.webp`.
            create(
                &mut pipeline,
                grid + ((n * 1000) << 22),
                &format!("**a dog {n}** - <@5> (31%) (fast)"),
                "x_grid_0.webp",
                None,
            );
        }
        drop(pipeline.into_store().unwrap());
        let raw = rusqlite::Connection::open(&path).unwrap();
        let count = |sql: &str| -> i64 { raw.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM attachments WHERE state = 'pending'"),
            51
        );
        assert_eq!(count("SELECT count(*) FROM attachments WHERE archivable = 0"), 50);
        let plan = crate::store::query_plan(&raw, &crate::store::pending_images_sql());
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX attachments_due")),
            "{plan:?}"
        );

        // The same database as migration 14 left it: the store marks the previews when it
        // adds the column.
        raw.execute_batch(
            "DROP INDEX attachments_due; ALTER TABLE attachments DROP COLUMN archivable;
             CREATE INDEX attachments_by_state ON attachments(state) WHERE state = 'pending';
             PRAGMA user_version = 14;",
        )
        .unwrap();
        drop(raw);
        let store = Store::open(&path).unwrap();
        // Migration 15 ran (and the later ones).
        assert!(store.schema_version().unwrap() >= 15);
        let pending = store.pending_images(None, 256, i64::MAX).unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        drop(store);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let archivable_zero: i64 = raw
            .query_row(
                "SELECT count(*) FROM attachments WHERE archivable = 0",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(archivable_zero, 50);
    }

    /// A grid, and U1 and U2 with identical bytes, finished together: one group. The second
    /// copy is not written again, and the two tiles are flagged (the N-copies bug).
    #[tokio::test]
    async fn identical_bytes_in_one_group_are_stored_once_and_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).unwrap();
        let mut pipeline = Pipeline::new(store, PipelineConfig::default());
        let grid = (1_000_000u64 << 22) + 1;
        create(
            &mut pipeline,
            grid,
            "**a cat** - <@5> (fast)",
            &format!("u_a_cat_{UUID}.png"),
            None,
        );
        create(
            &mut pipeline,
            grid + (1000 << 22),
            "**a cat** - Image #1 <@5>",
            "u1.png",
            Some(grid),
        );
        create(
            &mut pipeline,
            grid + (2000 << 22),
            "**a cat** - Image #2 <@5>",
            "u2.png",
            Some(grid),
        );
        let mut store = pipeline.into_store().unwrap();
        let pending = store.pending_images(None, 10, i64::MAX).unwrap();
        assert_eq!(pending.len(), 3);

        let options = WorkerOptions::in_folder(dir.path().join("archive"));
        let root = options.backend.local().to_path_buf();
        let staging = root.join(".staging");
        let mut grid_png = b"\x89PNG\r\n\x1a\n-grid".to_vec();
        grid_png.extend([7u8; 100]);
        let tile_png = b"\x89PNG\r\n\x1a\n-same bytes for two tiles".to_vec();
        let bodies = [grid_png, tile_png.clone(), tile_png];
        let group = pending
            .into_iter()
            .zip(bodies.iter())
            .map(|(image, body)| (image, Ok(downloaded(&staging, body))))
            .collect();
        let mut summary = ArchiveSummary::default();
        record_group(&mut store, &options, &staging, group, false, &mut summary)
            .await
            .unwrap();
        assert_eq!(
            (summary.archived, summary.deduplicated, summary.same_bytes_tiles),
            (2, 1, 1),
            "{summary:?}"
        );

        let rows = store.images().unwrap();
        assert!(rows.iter().all(|row| row.state == "archived"), "{rows:?}");
        let u1 = &rows[1];
        let u2 = &rows[2];
        assert_eq!(u1.path, u2.path, "one copy for identical bytes");
        assert_eq!(u2.same_bytes_as, Some(u1.attachment_id));
        let family = root
            .join(u1.path.as_deref().unwrap())
            .parent()
            .unwrap()
            .to_path_buf();
        let mut names: Vec<String> = std::fs::read_dir(&family)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["grid.png", "metadata.json", "prompt.txt", "u1.png"]);
        let metadata = std::fs::read_to_string(family.join("metadata.json")).unwrap();
        assert!(
            metadata.contains("u1.png") && metadata.contains(UUID),
            "{metadata}"
        );
        // The staging folder is left empty.
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    }
}
