//! `mjlink bench --web`: the web gallery's latency under concurrent clients, next to a plain
//! static file handler serving the same files, in the same run.
//!
//! - **Data**: a generated trace of `events` events ([`mjlink_sim::tracegen`]) replayed into
//!   a database on disk (its search index caught up), and its archive: every image attachment
//!   archived as a real PNG
//!   (`distinct_files` different files, each attachment's path a hard link to one of them, so
//!   a million-event archive costs the disk the bytes of a few dozen files).
//! - **Load**: `clients` concurrent clients (tokio tasks with one reqwest connection pool, on
//!   127.0.0.1, in this process), each request's latency from sending to the last byte read;
//!   `requests` requests per endpoint: family pages of random results, gallery pages at random
//!   points (`before=`), searches for words of the prompts, images by attachment id, cached
//!   thumbnails.
//! - **Baseline**: a plain static file handler (axum on the same runtime: the URL path is the
//!   file under the archive root, read and sent; no database) serving the very files of the
//!   image requests; the image side and the baseline alternate over the rounds.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::ingest::pipeline::{Pipeline, PipelineConfig};
use crate::ingest::replay::Replay;
use crate::store::Store;
use crate::web::{self, WebOptions};
use mjlink_core::snowflake::Snowflake;
use mjlink_sim::tracegen::{self, TraceOptions};

#[derive(Debug, Clone)]
pub struct WebBenchOptions {
    pub events: usize,
    pub clients: usize,
    /// Requests per endpoint (per side for the image endpoint).
    pub requests: usize,
    /// Different image files in the archive (the other attachments are hard links to them).
    pub distinct_files: usize,
    /// The side of each PNG, in pixels.
    pub image_side: u32,
    pub seed: u64,
}

impl Default for WebBenchOptions {
    fn default() -> Self {
        WebBenchOptions {
            events: 1_000_000,
            clients: 16,
            requests: 4000,
            distinct_files: 64,
            image_side: 512,
            seed: 1,
        }
    }
}

/// One endpoint's latencies.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointFigures {
    pub endpoint: &'static str,
    pub requests: usize,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The target, as said in issue 13 (`None`: no target, for information).
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebBenchRow {
    pub events: usize,
    pub messages: i64,
    pub archived_files: usize,
    pub image_bytes: u64,
    pub clients: usize,
    pub endpoints: Vec<EndpointFigures>,
    /// mjlink's image endpoint over the plain handler: p50, p99.
    pub image_ratio_p50: f64,
    pub image_ratio_p99: f64,
    pub setup_seconds: f64,
}

/// Replays `events` generated events into `db`.
fn build_database(dir: &Path, db: &Path, options: &WebBenchOptions) -> anyhow::Result<()> {
    let trace = dir.join("trace.jsonl");
    {
        let file = std::fs::File::create(&trace)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let trace_options = TraceOptions {
            seed: options.seed,
            events: options.events,
            ..TraceOptions::default()
        };
        tracegen::generate(&trace_options, &mut out, &mut |_| {})?;
        std::io::Write::flush(&mut out)?;
    }
    let store = Store::open(db)?;
    let mut replay = Replay::start(Pipeline::new(store, PipelineConfig::default()));
    let reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(&trace)?);
    let read = replay.read("bench", reader, |_| {});
    let finished = replay.finish();
    std::fs::remove_file(&trace)?;
    read.map_err(|error| anyhow::anyhow!("the replay stopped: {error}"))?;
    let (_, store) = finished?;
    // The search index caught up, as the first search after a replay does.
    store.index_prompts()?;
    Ok(())
}

/// The archive made for the benchmark.
struct Archive {
    /// Attachments spread over the archive, with their paths under the root.
    sample: Vec<(Snowflake, String)>,
    files: usize,
    /// The size of one file.
    file_bytes: u64,
}

/// Every image attachment archived under `root`: `distinct` real PNGs, the rest hard links.
fn build_archive(store: &mut Store, root: &Path, options: &WebBenchOptions) -> anyhow::Result<Archive> {
    let images = store.images()?;
    let distinct = options.distinct_files.max(1);
    let mut originals: Vec<(PathBuf, String, u64)> = Vec::new();
    let pool = root.join("pool");
    std::fs::create_dir_all(&pool)?;
    for n in 0..distinct.min(images.len().max(1)) {
        let bytes = mjlink_sim::png::png(options.image_side, options.image_side, options.seed + n as u64);
        let path = pool.join(format!("{n}.png"));
        std::fs::write(&path, &bytes)?;
        let sha = crate::archive::download::hash_file(&path)?.0;
        originals.push((path, sha, bytes.len() as u64));
    }
    let mut sample = Vec::new();
    let mut archived = 0;
    store.begin()?;
    for (n, image) in images.iter().enumerate() {
        let (original, sha, bytes) = &originals[n % originals.len()];
        let time =
            chrono::DateTime::from_timestamp_millis(image.message_id.timestamp_ms()).unwrap_or_default();
        let relative = format!("{}/{}.png", time.format("%Y/%m/%d"), image.attachment_id);
        let path = root.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::hard_link(original, &path).is_err() {
            std::fs::copy(original, &path)?;
        }
        store.mark_archived(image.attachment_id, &relative, sha, *bytes, "png", None)?;
        archived += 1;
        if n % (images.len() / 512).max(1) == 0 {
            sample.push((image.attachment_id, relative));
        }
    }
    store.commit()?;
    Ok(Archive {
        sample,
        files: archived,
        file_bytes: originals.first().map_or(0, |(_, _, bytes)| *bytes),
    })
}

/// The plain static file handler: the URL path names the file under `root`.
async fn serve_plain(root: PathBuf) -> anyhow::Result<SocketAddr> {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;

    async fn file(
        State(root): State<Arc<PathBuf>>,
        UrlPath(path): UrlPath<String>,
    ) -> axum::response::Response {
        if path.split('/').any(|part| part == ".." || part.is_empty()) {
            return StatusCode::NOT_FOUND.into_response();
        }
        match tokio::fs::read(root.join(&path)).await {
            Ok(bytes) => ([(header::CONTENT_TYPE, "image/png")], bytes).into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::get(file))
        .with_state(Arc::new(root));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

async fn serve_mjlink(db: &Path, root: &Path) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let options = WebOptions {
        database: db.to_path_buf(),
        archive: crate::archive::backend::Backend::Fs {
            root: root.to_path_buf(),
        },
        bind: address,
        token: None,
        pipeline: PipelineConfig::default(),
    };
    tokio::spawn(async move { web::serve(listener, &options, std::future::pending()).await });
    Ok(address)
}

/// `urls` requested by `clients` concurrent clients, each taking the next URL; the
/// latencies in milliseconds and the requests per second. A failed or non-2xx answer fails
/// the run.
async fn load(urls: Arc<Vec<String>>, clients: usize) -> anyhow::Result<(Vec<f64>, f64)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .no_proxy()
        .build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, urls, next) = (client.clone(), Arc::clone(&urls), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(url) = urls.get(n) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let sent = Instant::now();
                let response = client.get(url).send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(status.is_success(), "{url}: {status}");
                std::hint::black_box(body.len());
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((latencies, urls.len() as f64 / seconds))
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn figures(
    endpoint: &'static str,
    mut latencies: Vec<f64>,
    per_s: f64,
    target_ms: Option<f64>,
) -> EndpointFigures {
    let p50_ms = percentile(&mut latencies, 50.0);
    let p99_ms = percentile(&mut latencies, 99.0);
    EndpointFigures {
        endpoint,
        requests: latencies.len(),
        per_s,
        p50_ms,
        p99_ms,
        target: target_ms.map(|ms| format!("p99 < {ms} ms")),
        met: target_ms.map(|ms| p99_ms < ms),
    }
}

/// Picks `count` items of `from`, spread over it (deterministic).
fn spread<T: Clone>(from: &[T], count: usize) -> Vec<T> {
    if from.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|n| from[n.wrapping_mul(7919) % from.len()].clone())
        .collect()
}

/// What the requests ask for, read from the database.
struct Targets {
    results: Vec<Snowflake>,
    gallery_points: Vec<Snowflake>,
    words: Vec<String>,
    messages: i64,
}

fn targets(db: &Path) -> anyhow::Result<Targets> {
    let conn = rusqlite::Connection::open(db)?;
    let ids = |sql: &str| -> anyhow::Result<Vec<Snowflake>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |row| row.get::<_, i64>(0))?;
        Ok(rows
            .map(|row| row.map(Snowflake::from_sql))
            .collect::<rusqlite::Result<_>>()?)
    };
    let results = ids("SELECT child_id FROM links WHERE status = 'linked' ORDER BY child_id LIMIT 20000")?;
    let gallery_points = ids("SELECT id FROM messages WHERE kind = 'imagine' ORDER BY id LIMIT 20000")?;
    let mut words: Vec<String> = Vec::new();
    let mut stmt =
        conn.prepare("SELECT prompt FROM messages WHERE kind = 'imagine' AND prompt IS NOT NULL LIMIT 2000")?;
    for prompt in stmt.query_map([], |row| row.get::<_, String>(0))? {
        for word in prompt?.split_whitespace() {
            let word: String = word.chars().filter(|c| c.is_alphanumeric()).collect();
            if word.len() >= 4 && !word.chars().all(|c| c.is_ascii_digit()) && !words.contains(&word) {
                words.push(word);
            }
        }
        if words.len() >= 200 {
            break;
        }
    }
    let messages = conn.query_row("SELECT count(*) FROM messages", [], |row| row.get(0))?;
    Ok(Targets {
        results,
        gallery_points,
        words,
        messages,
    })
}

/// Runs the benchmark in `dir` (the database and archive are written there; the caller
/// removes it). `progress` is told what is being done.
pub async fn run(
    dir: &Path,
    options: &WebBenchOptions,
    progress: impl Fn(&str),
) -> anyhow::Result<WebBenchRow> {
    let setup = Instant::now();
    let db = dir.join("web.db");
    let root = dir.join("archive");
    progress(&format!("generating and replaying {} events", options.events));
    {
        let (dir, db, options) = (dir.to_path_buf(), db.clone(), options.clone());
        tokio::task::spawn_blocking(move || build_database(&dir, &db, &options)).await??;
    }
    progress("archiving every image (hard links to a few real PNGs)");
    let Archive {
        sample,
        files: archived_files,
        file_bytes: image_bytes,
    } = {
        let (db, root, options) = (db.clone(), root.clone(), options.clone());
        tokio::task::spawn_blocking(move || {
            let mut store = Store::open(&db)?;
            build_archive(&mut store, &root, &options)
        })
        .await??
    };
    anyhow::ensure!(!sample.is_empty(), "the trace has no image to serve");
    let targets = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || targets(&db)).await??
    };
    let setup_seconds = setup.elapsed().as_secs_f64();
    let mjlink = serve_mjlink(&db, &root).await?;
    let plain = serve_plain(root.clone()).await?;
    let base = format!("http://{mjlink}");
    let requests = options.requests.max(1);

    let family: Vec<String> = spread(&targets.results, requests)
        .into_iter()
        .map(|id| format!("{base}/family/{id}"))
        .collect();
    let gallery: Vec<String> = spread(&targets.gallery_points, requests)
        .into_iter()
        .enumerate()
        .map(|(n, id)| {
            if n % 4 == 0 {
                format!("{base}/")
            } else {
                format!("{base}/?before={id}")
            }
        })
        .collect();
    let search: Vec<String> = spread(&targets.words, requests)
        .into_iter()
        .map(|word| format!("{base}/search?q={}", crate::web::html::query_value(&word)))
        .collect();
    let picked = spread(&sample, requests);
    let images: Vec<String> = picked
        .iter()
        .map(|(id, _)| format!("{base}/api/image/{id}"))
        .collect();
    let plain_images: Vec<String> = picked
        .iter()
        .map(|(_, relative)| format!("http://{plain}/{relative}"))
        .collect();
    let thumbs: Vec<String> = picked
        .iter()
        .map(|(id, _)| format!("{base}/api/thumb/{id}"))
        .collect();
    anyhow::ensure!(
        !family.is_empty() && !search.is_empty(),
        "the trace is too small: no linked result or no prompt"
    );

    let clients = options.clients.max(1);
    // Warm-up: the connection pools, SQLite's page cache, the thumbnails made once.
    progress("warming up");
    let mut warm: Vec<String> = family.iter().take(200).cloned().collect();
    warm.extend(gallery.iter().take(50).cloned());
    warm.extend(search.iter().take(50).cloned());
    let mut distinct_thumbs = thumbs.clone();
    distinct_thumbs.sort();
    distinct_thumbs.dedup();
    warm.extend(distinct_thumbs);
    warm.extend(images.iter().take(100).cloned());
    warm.extend(plain_images.iter().take(100).cloned());
    load(Arc::new(warm), clients).await?;

    let mut endpoints = Vec::new();
    for (name, urls, target) in [
        ("family page", family, Some(20.0)),
        ("gallery page", gallery, Some(20.0)),
        ("search", search, Some(50.0)),
        ("thumbnail (cached)", thumbs, None),
    ] {
        progress(name);
        let (latencies, per_s) = load(Arc::new(urls), clients).await?;
        endpoints.push(figures(name, latencies, per_s, target));
    }
    // The image endpoint and the plain handler, alternating, half the requests per round.
    let (images, plain_images) = (Arc::new(images), Arc::new(plain_images));
    let (mut ours, mut theirs) = ((Vec::new(), 0.0), (Vec::new(), 0.0));
    for round in 0..4 {
        progress(&format!("image endpoint and plain handler, round {}", round + 1));
        let sides = if round % 2 == 0 {
            [(&images, &mut ours), (&plain_images, &mut theirs)]
        } else {
            [(&plain_images, &mut theirs), (&images, &mut ours)]
        };
        for (urls, into) in sides {
            let (latencies, per_s) = load(Arc::clone(urls), clients).await?;
            into.0.extend(latencies);
            into.1 += per_s / 4.0;
        }
    }
    let mut ours = figures("image by id (mjlink)", ours.0, ours.1, None);
    let theirs = figures("image (plain static handler)", theirs.0, theirs.1, None);
    let image_ratio_p50 = ours.p50_ms / theirs.p50_ms.max(f64::MIN_POSITIVE);
    let image_ratio_p99 = ours.p99_ms / theirs.p99_ms.max(f64::MIN_POSITIVE);
    ours.target = Some("p50, p99 within 1.2x of the plain handler".to_string());
    ours.met = Some(image_ratio_p50 <= 1.2 && image_ratio_p99 <= 1.2);
    endpoints.push(ours);
    endpoints.push(theirs);
    Ok(WebBenchRow {
        events: options.events,
        messages: targets.messages,
        archived_files,
        image_bytes,
        clients,
        endpoints,
        image_ratio_p50,
        image_ratio_p99,
        setup_seconds,
    })
}

pub fn write_table(out: &mut impl std::io::Write, row: &WebBenchRow) -> std::io::Result<()> {
    writeln!(
        out,
        "{} events ({} messages), {} archived files ({} KiB each), {} concurrent clients",
        row.events,
        row.messages,
        row.archived_files,
        row.image_bytes / 1024,
        row.clients
    )?;
    writeln!(out, "| endpoint | requests | req/s | p50 ms | p99 ms | target |")?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for endpoint in &row.endpoints {
        let target = match (&endpoint.target, endpoint.met) {
            (Some(target), Some(true)) => format!("{target}: met"),
            (Some(target), Some(false)) => format!("{target}: MISSED"),
            _ => String::new(),
        };
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            endpoint.endpoint, endpoint.requests, endpoint.per_s, endpoint.p50_ms, endpoint.p99_ms, target
        )?;
    }
    writeln!(
        out,
        "image by id / plain static handler: p50 {:.2}x, p99 {:.2}x",
        row.image_ratio_p50, row.image_ratio_p99
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut values, 50.0), 50.0);
        assert_eq!(percentile(&mut values, 99.0), 99.0);
        assert_eq!(percentile(&mut [3.0], 99.0), 3.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
    }
}
