//! Downloading one image or video: streamed to a temporary file while hashing (SHA-256),
//! refused when it is too large, not an image or video by its first bytes (PNG, WebP still or
//! animated, JPEG, GIF, mp4; the server's content type and the file name are never trusted), or
//! from a host outside the allowlist (redirects included),
//! retried with exponential backoff and jitter on server errors, timeouts, resets and
//! truncated bodies, with a 429's `Retry-After` honoured; fsynced before it is handed over.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use mjlink_core::layout::{sniff, MediaKind, SIGNATURE_BYTES};
use mjlink_core::retry::Failure;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 403/404: a signed link that expired (or a deleted attachment). Needs a fresh URL.
    #[error("the link answered {status}: expired or gone")]
    Expired { status: u16 },
    #[error("{host} is not an allowed image host")]
    HostNotAllowed { host: String },
    #[error("larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("not an image or video (content type {content_type}, no PNG/WebP/JPEG/GIF/MP4 signature)")]
    NotAnImage { content_type: String },
    #[error("answered {status} after {attempts} attempts")]
    Status { status: u16, attempts: u32 },
    /// 429 with a `Retry-After` longer than the policy waits in one pass (or 429 to the last
    /// attempt): the image is deferred, the others go on.
    #[error("rate limited (429){}", match .retry_after { Some(wait) => format!("; asked to wait {} s", wait.as_secs()), None => String::new() })]
    RateLimited { retry_after: Option<Duration> },
    #[error("failed after {attempts} attempts: {reason}")]
    Transport { attempts: u32, reason: String },
    #[error("cannot write {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("not a valid URL: {0}")]
    BadUrl(String),
}

impl FetchError {
    /// What the failure is for [`mjlink_core::retry::after_failure`]. A 403/404 is an expired
    /// link here; the worker makes it [`Failure::Gone`] when the link was just refreshed.
    pub fn failure(&self) -> Failure {
        match self {
            FetchError::Expired { .. } => Failure::LinkExpired,
            FetchError::HostNotAllowed { .. } | FetchError::BadUrl(_) => Failure::BadLink,
            FetchError::TooLarge { .. } => Failure::TooLarge,
            FetchError::NotAnImage { .. } => Failure::NotAnImage,
            FetchError::RateLimited { retry_after } => Failure::RateLimited {
                retry_after_ms: retry_after.map(|wait| wait.as_millis().min(i64::MAX as u128) as i64),
            },
            FetchError::Status { status, .. } if *status == 408 || *status >= 500 => Failure::Temporary,
            FetchError::Status { .. } => Failure::Refused,
            FetchError::Transport { .. } => Failure::Temporary,
            FetchError::Io { .. } => Failure::Local,
        }
    }
}

/// The prefix of every temporary file mjlink makes in the archive (all of them in
/// `<archive>/.staging`): a pass removes those a killed run left.
pub const TEMP_PREFIX: &str = ".mjlink-tmp-";

/// A downloaded file, fsynced, not yet in its place.
#[derive(Debug)]
pub struct Downloaded {
    pub temp_path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub kind: MediaKind,
}

#[derive(Debug, Clone)]
pub struct FetchPolicy {
    pub allowed_hosts: Vec<String>,
    pub max_bytes: u64,
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// A body that delivers nothing for this long is a stalled connection.
    pub read_timeout: Duration,
    /// The answer's headers must come within this long of the request.
    pub first_byte_timeout: Duration,
    /// After `rate_grace`, a body arriving slower than this (bytes per second, on average) is
    /// given up on (a trickle).
    pub min_bytes_per_sec: u64,
    pub rate_grace: Duration,
    /// The longest `Retry-After` waited for within a pass; a longer one defers the image.
    pub max_retry_wait: Duration,
}

impl FetchPolicy {
    pub fn from_config(archive: &crate::config::ArchiveConfig) -> FetchPolicy {
        FetchPolicy {
            allowed_hosts: archive.hosts.clone(),
            max_bytes: archive.max_bytes,
            ..FetchPolicy::default()
        }
    }
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allowed_hosts: vec![
                "cdn.discordapp.com".to_string(),
                "media.discordapp.net".to_string(),
            ],
            max_bytes: 64 * 1024 * 1024,
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            first_byte_timeout: Duration::from_secs(30),
            min_bytes_per_sec: 8 * 1024,
            rate_grace: Duration::from_secs(20),
            max_retry_wait: Duration::from_secs(30),
        }
    }
}

/// Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
}

fn host_allowed(allowed: &[String], url: &reqwest::Url) -> bool {
    url.host_str()
        .is_some_and(|host| allowed.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)))
        && matches!(url.scheme(), "https" | "http")
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Final(FetchError),
    Retry(String, Option<Duration>),
}

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Result<Fetcher, FetchError> {
        let allowed = policy.allowed_hosts.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if host_allowed(&allowed, attempt.url()) {
                attempt.follow()
            } else {
                let host = attempt.url().host_str().unwrap_or_default().to_string();
                attempt.error(format!("redirect to {host}, which is not an allowed image host"))
            }
        });
        let client = reqwest::Client::builder()
            .redirect(redirect)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(policy.read_timeout)
            .no_proxy()
            .build()
            .map_err(|error| FetchError::Transport {
                attempts: 0,
                reason: error.to_string(),
            })?;
        Ok(Fetcher { client, policy })
    }

    /// Downloads `url` into a temporary file in `dir` (same file system as its destination).
    pub async fn fetch(&self, url: &str, dir: &Path) -> Result<Downloaded, FetchError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|_| FetchError::BadUrl(url.chars().take(200).collect()))?;
        if !host_allowed(&self.policy.allowed_hosts, &parsed) {
            return Err(FetchError::HostNotAllowed {
                host: parsed.host_str().unwrap_or_default().to_string(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|error| FetchError::Io {
            path: dir.to_path_buf(),
            reason: error.to_string(),
        })?;
        let mut backoff = self.policy.backoff;
        for attempt in 1..=self.policy.attempts {
            match self.attempt(parsed.clone(), dir).await {
                Ok(downloaded) => return Ok(downloaded),
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Retry(reason, wait)) => {
                    let last_status = reason.strip_prefix("status ").and_then(|s| s.parse::<u16>().ok());
                    if attempt == self.policy.attempts {
                        return Err(match last_status {
                            Some(429) => FetchError::RateLimited { retry_after: wait },
                            Some(status) => FetchError::Status {
                                status,
                                attempts: attempt,
                            },
                            None => FetchError::Transport {
                                attempts: attempt,
                                reason,
                            },
                        });
                    }
                    let wait = wait.unwrap_or_else(|| jitter(backoff));
                    tracing::debug!(
                        attempt,
                        reason,
                        wait_ms = wait.as_millis() as u64,
                        "download retry"
                    );
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                }
            }
        }
        Err(FetchError::Transport {
            attempts: self.policy.attempts,
            reason: "no attempt made".to_string(),
        })
    }

    async fn attempt(&self, url: reqwest::Url, dir: &Path) -> Result<Downloaded, Attempt> {
        let started = std::time::Instant::now();
        let sent = tokio::time::timeout(self.policy.first_byte_timeout, self.client.get(url).send()).await;
        let Ok(sent) = sent else {
            return Err(Attempt::Retry(
                format!(
                    "no answer within {} s",
                    self.policy.first_byte_timeout.as_secs_f64()
                ),
                None,
            ));
        };
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_redirect() => {
                return Err(Attempt::Final(FetchError::HostNotAllowed {
                    host: error
                        .url()
                        .and_then(|url| url.host_str())
                        .unwrap_or("a redirect target")
                        .to_string(),
                }))
            }
            Err(error) => {
                return Err(Attempt::Retry(
                    format!("transport: {}", crate::causes::of_request(&error)),
                    None,
                ))
            }
        };
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            403 | 404 | 410 => return Err(Attempt::Final(FetchError::Expired { status })),
            429 => {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<f64>().ok())
                    .filter(|secs| secs.is_finite() && *secs >= 0.0)
                    .map(|secs| Duration::from_secs_f64(secs.min(86_400.0)));
                if wait.is_some_and(|wait| wait > self.policy.max_retry_wait) {
                    return Err(Attempt::Final(FetchError::RateLimited { retry_after: wait }));
                }
                return Err(Attempt::Retry(
                    "status 429".to_string(),
                    wait.or(Some(self.policy.backoff)),
                ));
            }
            500..=599 | 408 => return Err(Attempt::Retry(format!("status {status}"), None)),
            other => {
                return Err(Attempt::Final(FetchError::Status {
                    status: other,
                    attempts: 1,
                }))
            }
        }
        let limit = self.policy.max_bytes;
        let expected = response.content_length();
        if expected.is_some_and(|length| length > limit) {
            return Err(Attempt::Final(FetchError::TooLarge { limit }));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none")
            .to_string();

        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(|error| {
                Attempt::Final(FetchError::Io {
                    path: dir.to_path_buf(),
                    reason: error.to_string(),
                })
            })?;
        let io_error = |error: std::io::Error| {
            Attempt::Final(FetchError::Io {
                path: dir.to_path_buf(),
                reason: error.to_string(),
            })
        };
        let mut hasher = Sha256::new();
        let mut head: Vec<u8> = Vec::with_capacity(SIGNATURE_BYTES);
        let mut kind = None;
        let mut bytes = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| {
                Attempt::Retry(format!("body: {}", crate::causes::of_request(&error)), None)
            })?;
            bytes += chunk.len() as u64;
            let elapsed = started.elapsed();
            if elapsed > self.policy.rate_grace
                && (bytes as f64) < self.policy.min_bytes_per_sec as f64 * elapsed.as_secs_f64()
            {
                return Err(Attempt::Retry(
                    format!(
                        "too slow: {bytes} bytes in {:.1} s (under {} bytes/s)",
                        elapsed.as_secs_f64(),
                        self.policy.min_bytes_per_sec
                    ),
                    None,
                ));
            }
            if bytes > limit {
                return Err(Attempt::Final(FetchError::TooLarge { limit }));
            }
            if kind.is_none() {
                let need = SIGNATURE_BYTES.saturating_sub(head.len());
                head.extend_from_slice(&chunk[..need.min(chunk.len())]);
                if head.len() >= SIGNATURE_BYTES {
                    kind = Some(sniff(&head).ok_or_else(|| {
                        Attempt::Final(FetchError::NotAnImage {
                            content_type: content_type.clone(),
                        })
                    })?);
                }
            }
            hasher.update(&chunk);
            temp.write_all(&chunk).map_err(io_error)?;
        }
        if expected.is_some_and(|length| length != bytes) {
            return Err(Attempt::Retry(
                format!("truncated body ({bytes} of {} bytes)", expected.unwrap_or(0)),
                None,
            ));
        }
        let kind = match kind {
            Some(kind) => kind,
            None => sniff(&head).ok_or(Attempt::Final(FetchError::NotAnImage { content_type }))?,
        };
        let sha256 = hex(&hasher.finalize());
        // The hash is of exactly the bytes written (one pass: hashing while streaming). Made
        // durable off the async threads, so other downloads keep streaming meanwhile; then the
        // size on disk is checked. (Reading the file back would hash the page cache again, not
        // the disk: `mjlink verify` rehashes from disk whenever asked.)
        let dir = dir.to_path_buf();
        let temp_path = tokio::task::spawn_blocking(move || -> Result<PathBuf, Attempt> {
            let io_error = |error: std::io::Error| {
                Attempt::Final(FetchError::Io {
                    path: dir.clone(),
                    reason: error.to_string(),
                })
            };
            super::share(temp.as_file()).map_err(io_error)?;
            temp.as_file().sync_all().map_err(io_error)?;
            let on_disk = temp.as_file().metadata().map_err(io_error)?.len();
            if on_disk != bytes {
                return Err(Attempt::Retry(
                    format!("the file on disk has {on_disk} bytes, {bytes} were received"),
                    None,
                ));
            }
            let (_, temp_path) = temp.keep().map_err(|error| io_error(error.error))?;
            Ok(temp_path)
        })
        .await
        .map_err(|error| Attempt::Retry(format!("the write was interrupted: {error}"), None))??;
        Ok(Downloaded {
            temp_path,
            sha256,
            bytes,
            kind,
        })
    }
}

/// Moves a downloaded file to `destination` (creating its folder). The rename is durable once
/// the folder is synced: [`put_in_place`] does both; the worker syncs each folder once for a
/// group of files.
pub fn move_into_place(downloaded: &Downloaded, destination: &Path) -> std::io::Result<()> {
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(&downloaded.temp_path, destination)
}

/// Moves a downloaded file to `destination` (creating its folder) and makes the rename durable
/// by syncing the folder.
pub fn put_in_place(downloaded: &Downloaded, destination: &Path) -> std::io::Result<()> {
    move_into_place(downloaded, destination)?;
    if let Some(parent) = destination.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// SHA-256 of a file on disk, as lowercase hex.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex(&hasher.finalize()), bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Full jitter: a random wait between half and all of `base`.
fn jitter(base: Duration) -> Duration {
    let nanos = crate::clock::jitter_bits();
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    base.mul_f64(fraction)
}
