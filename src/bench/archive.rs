//! `mjlink bench --archive`: the archiver against plain parallel GETs of the same images, at
//! the same concurrency, in the same run, from an HTTP server on 127.0.0.1.
//!
//! - **Baselines**: what a naive downloader does: GET each image and write it to a file, with
//!   `concurrency` requests in flight (reqwest, one connection pool); no hash, no check, no
//!   database. Three times: files left in the page cache (the time excludes reaching the
//!   disk), one sync of the file system at the end (timed), and each file fsynced.
//! - **Archiver**: [`archive_pending`] over the same images queued in a real SQLite database:
//!   streamed to a temporary file, SHA-256 while streaming, signature check, fsync, rename into
//!   the family folder, rehash on disk, row and `metadata.json` in one transaction.
//!
//! Each image has its own bytes (no two are identical, so nothing is deduplicated away).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::archive::download::{FetchPolicy, Fetcher};
use crate::archive::worker::{archive_pending, WorkerOptions};
use crate::ingest::pipeline::{Event, Pipeline, PipelineConfig};
use crate::store::Store;
use mjlink_core::digest::digest;
use mjlink_core::snowflake::Snowflake;

#[derive(Debug, Clone)]
pub struct ArchiveBenchOptions {
    pub images: usize,
    pub min_bytes: usize,
    pub max_bytes: usize,
    pub concurrency: usize,
    /// Rounds of (baseline, archiver); the figures are medians.
    pub repeats: usize,
    pub seed: u64,
}

impl Default for ArchiveBenchOptions {
    fn default() -> Self {
        ArchiveBenchOptions {
            images: 300,
            min_bytes: 1 << 20,
            max_bytes: 8 << 20,
            concurrency: 4,
            repeats: 3,
            seed: 1,
        }
    }
}

/// One side's figures (medians over the rounds).
#[derive(Debug, Clone, Serialize)]
pub struct SideFigures {
    pub side: &'static str,
    pub mib_per_s: f64,
    pub images_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveBenchRow {
    pub images: usize,
    pub total_bytes: u64,
    pub concurrency: usize,
    pub repeats: usize,
    pub baselines: Vec<SideFigures>,
    pub archive: SideFigures,
    /// The archiver's rate over each baseline's, in the order of `baselines`.
    pub ratios: Vec<f64>,
    /// Images the archiver marked archived in its last round (must equal `images`).
    pub archived: u64,
}

/// How the plain GETs treat their files.
#[derive(Debug, Clone, Copy)]
enum Baseline {
    /// Written and left to the page cache: the time does not include reaching the disk.
    Unsynced,
    /// Written, then one sync of the file system at the end, timed: all on disk.
    SyncAtEnd,
    /// Each file fsynced as it completes, as the archiver does.
    FsyncEach,
}

impl Baseline {
    const ALL: [Baseline; 3] = [Baseline::Unsynced, Baseline::SyncAtEnd, Baseline::FsyncEach];

    fn name(self) -> &'static str {
        match self {
            Baseline::Unsynced => "plain parallel GETs to files (not synced)",
            Baseline::SyncAtEnd => "plain parallel GETs to files, one sync at the end",
            Baseline::FsyncEach => "plain parallel GETs to files, each fsynced",
        }
    }
}

/// Image `index`: a PNG signature, the index, then a slice of a shared pseudo-random pool.
struct Images {
    sizes: Vec<usize>,
    pool: Vec<u8>,
}

const HEAD: usize = 16;

impl Images {
    fn new(options: &ArchiveBenchOptions) -> Images {
        let mut state = options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let span = options.max_bytes.saturating_sub(options.min_bytes) as u64 + 1;
        let sizes = (0..options.images)
            .map(|_| (options.min_bytes + (next() % span) as usize).max(HEAD + 1))
            .collect::<Vec<_>>();
        let largest = sizes.iter().copied().max().unwrap_or(HEAD + 1);
        let pool = (0..largest).map(|_| next() as u8).collect();
        Images { sizes, pool }
    }

    fn head(index: usize) -> [u8; HEAD] {
        let mut head = [0u8; HEAD];
        head[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
        head[8..].copy_from_slice(&(index as u64).to_le_bytes());
        head
    }

    fn total(&self) -> u64 {
        self.sizes.iter().map(|size| *size as u64).sum()
    }
}

/// A minimal HTTP/1.1 server (keep-alive) answering `GET /img/{index}.png`.
async fn serve(images: Arc<Images>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let images = Arc::clone(&images);
            tokio::spawn(async move {
                let mut buffer = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let request = String::from_utf8_lossy(&buffer[..end]).to_string();
                    buffer.drain(..end);
                    let index = request
                        .split_whitespace()
                        .nth(1)
                        .and_then(|path| path.strip_prefix("/img/"))
                        .and_then(|rest| rest.split('.').next())
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n < images.sizes.len());
                    let Some(index) = index else {
                        let _ = stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        continue;
                    };
                    let size = images.sizes[index];
                    let header = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {size}\r\n\r\n"
                    );
                    let sent = async {
                        stream.write_all(header.as_bytes()).await?;
                        stream.write_all(&Images::head(index)).await?;
                        stream.write_all(&images.pool[HEAD..size]).await
                    };
                    if sent.await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Queues one grid message per image in a fresh database at `db`.
fn queue(db: &Path, addr: SocketAddr, images: usize) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    let mut pipeline = Pipeline::new(store, PipelineConfig::default());
    let start_ms = 1_714_521_600_000i64;
    for index in 0..images {
        let id = Snowflake::from_timestamp_ms(start_ms + index as i64 * 60_000).0 + 1;
        let uuid = format!("bec40000-0000-4000-8000-{index:012}");
        let value = serde_json::json!({
            "id": id.to_string(), "channel_id": "1", "guild_id": "2",
            "author": {"id": "936929561302675456", "username": "Midjourney Bot", "bot": true},
            "content": format!("**benchmark image {index}** - <@3> (fast)"),
            "timestamp": chrono::DateTime::from_timestamp_millis(start_ms + index as i64 * 60_000)
                .unwrap_or_default()
                .to_rfc3339(),
            "type": 0,
            "attachments": [{
                "id": (id + 1).to_string(),
                "filename": format!("u_benchmark_{uuid}.png"),
                "url": format!("http://{addr}/img/{index}.png"),
                "size": 1,
            }],
        });
        let text = value.to_string();
        let message = serde_json::from_value(value)?;
        pipeline.apply(
            &Event::Create {
                message,
                digest: digest(text.as_bytes()),
            },
            start_ms,
        )?;
    }
    pipeline.into_store()?;
    Ok(())
}

/// Plain parallel GETs, each body written to its own file. Returns the bytes fetched.
async fn plain_gets(
    addr: SocketAddr,
    images: usize,
    concurrency: usize,
    dir: &Path,
    baseline: Baseline,
) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let client = reqwest::Client::new();
    let mut gets = futures_util::stream::iter((0..images).map(|index| {
        let client = client.clone();
        let path = dir.join(format!("{index}.png"));
        async move {
            let mut response = client
                .get(format!("http://{addr}/img/{index}.png"))
                .send()
                .await?
                .error_for_status()?;
            let mut file = std::fs::File::create(path)?;
            let mut bytes = 0u64;
            while let Some(chunk) = response.chunk().await? {
                bytes += chunk.len() as u64;
                std::io::Write::write_all(&mut file, &chunk)?;
            }
            if matches!(baseline, Baseline::FsyncEach) {
                file.sync_all()?;
            }
            Ok::<u64, anyhow::Error>(bytes)
        }
    }))
    .buffer_unordered(concurrency.max(1));
    let mut total = 0;
    while let Some(bytes) = gets.next().await {
        total += bytes?;
    }
    if matches!(baseline, Baseline::SyncAtEnd) {
        sync_disk(dir);
    }
    Ok(total)
}

/// Writes out everything the page cache holds for the file system of `dir` (Linux
/// `syncfs`; elsewhere, a sync of `dir` only).
fn sync_disk(dir: &Path) {
    let Ok(file) = std::fs::File::open(dir) else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `file` is an open descriptor for the whole call; syncfs only reads it.
        unsafe {
            libc::syncfs(file.as_raw_fd());
        }
    }
    let _ = file.sync_all();
}

/// One timed archive pass over the images, queued in a fresh database; everything it wrote
/// is removed after.
async fn archive_once(
    dir: &Path,
    addr: SocketAddr,
    options: &ArchiveBenchOptions,
    round: usize,
) -> anyhow::Result<(f64, crate::archive::worker::ArchiveSummary)> {
    let db = dir.join(format!("archive-{round}.db"));
    queue(&db, addr, options.images)?;
    let mut store = Store::open(&db)?;
    let worker = WorkerOptions {
        backend: crate::archive::backend::Backend::Fs {
            root: dir.join(format!("archive-{round}")),
        },
        concurrency: options.concurrency,
        ..WorkerOptions::default()
    };
    let fetcher = Fetcher::new(FetchPolicy {
        allowed_hosts: vec!["127.0.0.1".to_string()],
        ..FetchPolicy::default()
    })?;
    let start = Instant::now();
    let summary = archive_pending(&mut store, &fetcher, None, &worker, |_, _| {}).await?;
    let seconds = start.elapsed().as_secs_f64();
    drop(store);
    std::fs::remove_dir_all(worker.backend.local())?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("archive-{round}.db{suffix}")));
    }
    Ok((seconds, summary))
}

/// Runs the benchmark in `dir` (everything written there is removed after each round).
pub async fn run(dir: &Path, options: &ArchiveBenchOptions) -> anyhow::Result<ArchiveBenchRow> {
    let images = Arc::new(Images::new(options));
    let total_bytes = images.total();
    let addr = serve(Arc::clone(&images)).await?;
    let mib = total_bytes as f64 / (1024.0 * 1024.0);
    let mut baseline_rates = vec![Vec::new(); Baseline::ALL.len()];
    let mut archive_rates = Vec::new();
    let mut archived = 0;
    // Four sides per round, in an order that rotates from round to round, so that no side
    // always runs first (or right after another's writeback).
    for round in 0..options.repeats.max(1) {
        for turn in 0..=Baseline::ALL.len() {
            let side = (turn + round) % (Baseline::ALL.len() + 1);
            // Whatever an earlier side left in the page cache is written out first.
            sync_disk(dir);
            match Baseline::ALL.get(side) {
                Some(&baseline) => {
                    let plain_dir = dir.join(format!("plain-{round}"));
                    let start = Instant::now();
                    let fetched =
                        plain_gets(addr, options.images, options.concurrency, &plain_dir, baseline).await?;
                    baseline_rates[side].push(mib / start.elapsed().as_secs_f64());
                    anyhow::ensure!(
                        fetched == total_bytes,
                        "the plain GETs fetched {fetched} of {total_bytes} bytes"
                    );
                    std::fs::remove_dir_all(&plain_dir)?;
                }
                None => {
                    let (seconds, summary) = archive_once(dir, addr, options, round).await?;
                    archive_rates.push(mib / seconds);
                    archived = summary.archived;
                    anyhow::ensure!(
                        summary.archived == options.images as u64,
                        "the archiver archived {} of {} images",
                        summary.archived,
                        options.images
                    );
                }
            }
        }
    }
    sync_disk(dir);
    let per_image = options.images as f64 / mib;
    let figures = |side: &'static str, rates: &mut Vec<f64>| {
        let mib_per_s = super::median(rates);
        SideFigures {
            side,
            mib_per_s,
            images_per_s: mib_per_s * per_image,
        }
    };
    let archive = figures("mjlink archive", &mut archive_rates);
    let baselines: Vec<SideFigures> = Baseline::ALL
        .into_iter()
        .zip(&mut baseline_rates)
        .map(|(baseline, rates)| figures(baseline.name(), rates))
        .collect();
    let ratios = baselines
        .iter()
        .map(|baseline| {
            if baseline.mib_per_s > 0.0 {
                archive.mib_per_s / baseline.mib_per_s
            } else {
                0.0
            }
        })
        .collect();
    Ok(ArchiveBenchRow {
        images: options.images,
        total_bytes,
        concurrency: options.concurrency,
        repeats: options.repeats.max(1),
        baselines,
        archive,
        ratios,
        archived,
    })
}

pub fn write_table(out: &mut impl std::io::Write, row: &ArchiveBenchRow) -> std::io::Result<()> {
    writeln!(
        out,
        "{} images, {:.0} MiB, concurrency {}, median of {} rounds",
        row.images,
        row.total_bytes as f64 / (1024.0 * 1024.0),
        row.concurrency,
        row.repeats
    )?;
    writeln!(out, "| side | MiB/s | images/s | archive / side |")?;
    writeln!(out, "|---|---|---|---|")?;
    for (baseline, ratio) in row.baselines.iter().zip(&row.ratios) {
        writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.2} |",
            baseline.side, baseline.mib_per_s, baseline.images_per_s, ratio
        )?;
    }
    writeln!(
        out,
        "| {} (hash, check, fsync, rename, SQLite) | {:.1} | {:.1} | |",
        row.archive.side, row.archive.mib_per_s, row.archive.images_per_s
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_sides_fetch_every_image() {
        let dir = tempfile::tempdir().unwrap();
        let options = ArchiveBenchOptions {
            images: 12,
            min_bytes: 20_000,
            max_bytes: 90_000,
            concurrency: 3,
            repeats: 1,
            seed: 7,
        };
        let row = run(dir.path(), &options).await.unwrap();
        assert_eq!(row.archived, 12);
        assert!(row.total_bytes >= 12 * 20_000 && row.total_bytes <= 12 * 90_000);
        assert_eq!(row.baselines.len(), 3);
        assert!(row.baselines.iter().all(|side| side.mib_per_s > 0.0));
        assert!(row.archive.mib_per_s > 0.0);
        // Everything written is removed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
