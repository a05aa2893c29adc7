//! Where archived files are kept (`archive.backend`): the folder `archive.dir`, or an
//! S3-compatible bucket under the same layout as keys. Everything that reads or writes an
//! archived file goes through a [`Backend`]: the worker and `verify` ([`super::worker`]), the
//! web gallery, `/lineage`'s attachments and the notifications.
//!
//! The bucket gets what the folder gets, by other means:
//! - **Nothing half-written is ever visible.** A file up to one part goes in one PUT; a
//!   larger one as a multipart upload, visible only when completed.
//! - **Integrity end to end.** While the staged file is read for the upload, its SHA-256 is
//!   computed again and compared with the download's; every PUT and part carries its
//!   `x-amz-checksum-sha256`, which the store checks (a body changed in transit is refused);
//!   the ETag the store answers is compared with the MD5 of what was sent (the MD5 of the
//!   parts' MD5s for a multipart upload), and where a store's ETag is something else the
//!   object is read back and hashed. Only then is the image marked archived.
//! - **Resumable.** A multipart upload's id and the parts the store confirmed are kept in
//!   SQLite (`uploads`, [`crate::store::Upload`]): after a crash or an outage, the same bytes
//!   resume from the next part; other bytes, or an upload the store forgot, start again.
//! - **A store outage is not the image's fault.** When the store cannot be reached or refuses
//!   the credentials, the pass stops with one sentence ([`StorageError`]) and the images stay
//!   pending as they were, with no attempt counted against them.
//!
//! With the bucket, `archive.dir` is still the local working folder: downloads in flight
//! (`.staging`), the pass lock and the thumbnails.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use md5::Md5;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};

use super::download::Downloaded;
use crate::config::{ArchiveConfig, ConfigError};
use crate::store::{Store, StoreError};

/// The metadata entry holding an object's SHA-256 (`x-amz-meta-sha256`).
const SHA256_META: &str = "sha256";

/// Where the archive's files are.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The folder itself.
    Fs { root: PathBuf },
    /// A bucket; `work` is the local working folder (`archive.dir`).
    S3 { bucket: Arc<Bucket>, work: PathBuf },
}

/// An S3-compatible bucket and the archive's place in it.
pub struct Bucket {
    store: AmazonS3,
    /// `s3://bucket/prefix`, as recorded in the database and shown in messages.
    shown: String,
    prefix: String,
    part_bytes: u64,
}

impl std::fmt::Debug for Bucket {
    // The client's own `Debug` would print its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

/// The store could not be used at all: unreachable, or the credentials refused. Never about
/// one image.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error(
        "the archive bucket {at} refused mjlink's credentials ({reason}); check \
         archive.s3_access_key_id and archive.s3_secret_access_key (or their MJLINK_ variables): \
         the images stay pending"
    )]
    Denied { at: String, reason: String },
    #[error(
        "the archive bucket {at} cannot be reached ({reason}); the images stay pending and are tried again"
    )]
    Unavailable { at: String, reason: String },
}

/// A file of the archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("missing")]
    Missing,
    /// Its recorded path leaves the archive (or is a link out of it).
    #[error("outside the archive")]
    Outside,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("unreadable: {0}")]
    Unreadable(String),
}

/// Putting one file in place failed.
#[derive(Debug)]
pub enum PlaceError {
    /// About this file (a disk error, a checksum the store refused): it waits for its retry.
    File(String),
    /// The store as a whole: the pass stops.
    Storage(StorageError),
}

/// The upload log: the worker's connection to the database, shared by the uploads of a group
/// (each holds it only for one short write, never across a wait).
pub type UploadLog<'a> = Mutex<&'a mut Store>;

impl Backend {
    /// From `[archive]`: with `backend = "s3"`, the bucket and its client (no request is made).
    pub fn from_config(archive: &ArchiveConfig) -> Result<Backend, ConfigError> {
        match archive.backend {
            crate::config::Backend::Fs => Ok(Backend::Fs {
                root: archive.dir.clone(),
            }),
            crate::config::Backend::S3 => Ok(Backend::S3 {
                bucket: Arc::new(Bucket::from_config(archive)?),
                work: archive.dir.clone(),
            }),
        }
    }

    /// The local folder: the archive itself, or the bucket's working folder.
    pub fn local(&self) -> &Path {
        match self {
            Backend::Fs { root } => root,
            Backend::S3 { work, .. } => work,
        }
    }

    /// The bucket, when the archive is one.
    pub fn bucket(&self) -> Option<&Bucket> {
        match self {
            Backend::Fs { .. } => None,
            Backend::S3 { bucket, .. } => Some(bucket),
        }
    }

    /// The whole content of the archived file at `relative`.
    pub async fn read(&self, relative: &str) -> Result<Vec<u8>, ReadError> {
        self.read_at_most(relative, u64::MAX)
            .await?
            .ok_or_else(|| ReadError::Unreadable("larger than memory can hold".to_string()))
    }

    /// The content of the archived file at `relative` when it is at most `max` bytes;
    /// `Ok(None)` when it is larger, found from its size without reading it.
    pub async fn read_at_most(&self, relative: &str, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
        match self {
            Backend::Fs { root } => {
                let root = root.clone();
                let relative = relative.to_string();
                tokio::task::spawn_blocking(move || {
                    let path = super::resolve_inside(&root, &relative).ok_or_else(|| {
                        if root.join(&relative).exists() {
                            ReadError::Outside
                        } else {
                            ReadError::Missing
                        }
                    })?;
                    let unreadable = |error: std::io::Error| ReadError::Unreadable(error.to_string());
                    if std::fs::metadata(&path).map_err(unreadable)?.len() > max {
                        return Ok(None);
                    }
                    std::fs::read(path).map(Some).map_err(unreadable)
                })
                .await
                .map_err(|error| ReadError::Unreadable(error.to_string()))?
            }
            Backend::S3 { bucket, .. } => bucket.read_at_most(relative, max).await,
        }
    }

    /// SHA-256 (hex) and size of the archived file at `relative`, read whole (`verify`).
    pub async fn hash(&self, relative: &str) -> Result<(String, u64), ReadError> {
        match self {
            Backend::Fs { root } => match super::download::hash_file(&root.join(relative)) {
                Ok(found) => Ok(found),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(ReadError::Missing),
                Err(error) => Err(ReadError::Unreadable(error.to_string())),
            },
            Backend::S3 { bucket, .. } => bucket.hash(relative).await,
        }
    }
}

impl Bucket {
    fn from_config(archive: &ArchiveConfig) -> Result<Bucket, ConfigError> {
        let s3 = &archive.s3;
        if s3.bucket.is_empty() {
            return Err(ConfigError::missing(
                "archive.s3_bucket",
                "archive.backend = \"s3\" needs the bucket's name",
            ));
        }
        if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
            return Err(ConfigError::missing(
                if s3.access_key_id.is_some() {
                    "archive.s3_secret_access_key"
                } else {
                    "archive.s3_access_key_id"
                },
                "the access key id and the secret access key go together",
            ));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(s3.virtual_hosted)
            // Every PUT and part carries its SHA-256, which the store checks: without it some
            // stores keep a body changed in transit.
            .with_checksum_algorithm(Checksum::SHA256)
            // A stopped store answers within seconds, not after object_store's 3 minutes.
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(200),
                    max_backoff: Duration::from_secs(4),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300)),
            );
        let mut shown_host = String::new();
        if let Some(endpoint) = &s3.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
            shown_host = format!(" at {endpoint}");
        }
        if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
            builder = builder
                .with_access_key_id(id.expose())
                .with_secret_access_key(secret.expose());
        }
        let store = builder.build().map_err(|error| ConfigError::Invalid {
            key: "archive.s3_bucket".to_string(),
            message: format!("cannot set up the S3 client: {}", one_line(&error.to_string())),
        })?;
        Ok(Bucket {
            store,
            shown: format!("s3://{}/{}{shown_host}", s3.bucket, s3.prefix),
            prefix: s3.prefix.clone(),
            part_bytes: s3.part_bytes.max(5 << 20),
        })
    }

    /// `s3://bucket/prefix` (and the endpoint): how the archive is named to the user and in
    /// the database.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The key of `relative` (a path of the layout, `/`-separated).
    pub fn key(&self, relative: &str) -> Key {
        Key::from(format!("{}{}", self.prefix, relative.replace('\\', "/")))
    }

    /// A failure of the store as a whole, or `None` when it is about the object.
    fn storage_error(&self, error: &object_store::Error) -> Option<StorageError> {
        let reason = one_line(&error.to_string());
        match error {
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                Some(StorageError::Denied {
                    at: self.shown.clone(),
                    reason,
                })
            }
            object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. } => None,
            // A 400 (a checksum refused, a part too small) is about this request.
            _ if reason.contains("400 Bad Request")
                || reason.contains("BadDigest")
                || reason.contains("InvalidDigest") =>
            {
                None
            }
            _ => Some(StorageError::Unavailable {
                at: self.shown.clone(),
                reason,
            }),
        }
    }

    fn read_error(&self, error: object_store::Error) -> ReadError {
        match &error {
            object_store::Error::NotFound { .. } => ReadError::Missing,
            _ => match self.storage_error(&error) {
                Some(StorageError::Denied { at, reason }) => {
                    ReadError::Storage(StorageError::Denied { at, reason })
                }
                _ => ReadError::Unreadable(one_line(&error.to_string())),
            },
        }
    }

    /// The object at `relative` when it is at most `max` bytes (`Ok(None)` when larger: its
    /// body is left unread).
    pub async fn read_at_most(&self, relative: &str, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let result = self
            .store
            .get(&self.key(relative))
            .await
            .map_err(|e| self.read_error(e))?;
        if result.meta.size > max {
            return Ok(None);
        }
        let bytes = result.bytes().await.map_err(|e| self.read_error(e))?;
        Ok(Some(bytes.to_vec()))
    }

    /// SHA-256 and size of the object at `relative`, streamed.
    pub async fn hash(&self, relative: &str) -> Result<(String, u64), ReadError> {
        let result = self
            .store
            .get(&self.key(relative))
            .await
            .map_err(|e| self.read_error(e))?;
        let mut stream = result.into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.read_error(e))?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((hex(&hasher.finalize()), size))
    }

    /// Whether the store can be used at all: a cheap request (the marker's HEAD). A missing
    /// marker is fine.
    pub async fn reachable(&self) -> Result<(), StorageError> {
        match self.store.head(&self.key(super::MARKER)).await {
            Ok(_) => Ok(()),
            Err(error) => match self.storage_error(&error) {
                Some(storage) => Err(storage),
                None => Ok(()),
            },
        }
    }

    /// Writes and removes a probe object (`<prefix>.mjlink-doctor`, mjlink's own): whether the
    /// bucket can be written with these credentials, in one sentence when not.
    pub async fn probe(&self) -> Result<(), String> {
        const PROBE: &str = ".mjlink-doctor";
        match self.write_small(PROBE, b"ok".to_vec(), "text/plain").await {
            Ok(()) => {}
            Err(PlaceError::Storage(error)) => return Err(error.to_string()),
            Err(PlaceError::File(reason)) => return Err(format!("{}: {reason}", self.shown)),
        }
        self.store.delete(&self.key(PROBE)).await.map_err(|error| {
            format!(
                "{}: the probe object cannot be removed: {}",
                self.shown,
                one_line(&error.to_string())
            )
        })
    }

    /// The text of a small object, or `None` when there is none.
    pub async fn read_text(&self, relative: &str) -> Result<Option<String>, StorageError> {
        match self.read_at_most(relative, u64::MAX).await {
            Ok(Some(bytes)) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            // (`None` cannot be: no object is larger than u64::MAX bytes.)
            Ok(None) | Err(ReadError::Missing) => Ok(None),
            Err(ReadError::Storage(error)) => Err(error),
            Err(other) => Err(StorageError::Unavailable {
                at: self.shown.clone(),
                reason: other.to_string(),
            }),
        }
    }

    /// Writes a small object whole (the marker, `metadata.json`, `prompt.txt`), replacing it.
    pub async fn write_small(
        &self,
        relative: &str,
        bytes: Vec<u8>,
        content_type: &'static str,
    ) -> Result<(), PlaceError> {
        let sha256 = hex(&Sha256::digest(&bytes));
        self.put_whole(&self.key(relative), bytes, &sha256, content_type)
            .await
    }

    /// One PUT of `bytes` (whose SHA-256 is `sha256`) to `key`, checked (see the module).
    async fn put_whole(
        &self,
        key: &Key,
        bytes: Vec<u8>,
        sha256: &str,
        content_type: &'static str,
    ) -> Result<(), PlaceError> {
        let md5 = hex(&Md5::digest(&bytes));
        let options = put_options(sha256, content_type);
        let payload = PutPayload::from(bytes);
        let result = self
            .again_if_changed_in_transit(key, || self.store.put_opts(key, payload.clone(), options.clone()))
            .await
            .map_err(|error| self.place_error(&error))?;
        self.check_etag(key, result.e_tag.as_deref(), &md5, sha256).await
    }

    fn place_error(&self, error: &object_store::Error) -> PlaceError {
        match self.storage_error(error) {
            Some(storage) => PlaceError::Storage(storage),
            None => PlaceError::File(format!(
                "the archive bucket refused the upload: {}",
                one_line(&error.to_string())
            )),
        }
    }

    /// Whether the object at `relative` exists.
    pub async fn exists(&self, relative: &str) -> Result<bool, StorageError> {
        match self.store.head(&self.key(relative)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => match self.storage_error(&error) {
                Some(storage) => Err(storage),
                None => Ok(false),
            },
        }
    }

    /// Whether the object at `relative` holds exactly the bytes of SHA-256 `sha256`: read back
    /// and hashed (the `sha256` metadata says what was sent, not what was kept). Only asked
    /// when a key is already taken: after a crash between an upload and its record, or two
    /// images given one name.
    pub async fn holds(&self, relative: &str, sha256: &str) -> Result<bool, StorageError> {
        match self.hash(relative).await {
            Ok((found, _)) => Ok(found == sha256),
            Err(ReadError::Storage(error)) => Err(error),
            Err(_) => Ok(false),
        }
    }

    /// Uploads the staged file `downloaded` to `relative` (see the module). The staged file is
    /// left for the caller to remove.
    pub async fn upload(
        &self,
        log: &UploadLog<'_>,
        downloaded: &Downloaded,
        relative: &str,
    ) -> Result<(), PlaceError> {
        let key = self.key(relative);
        if downloaded.bytes <= self.part_bytes {
            let path = downloaded.temp_path.clone();
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|error| PlaceError::File(error.to_string()))?
                .map_err(|error| PlaceError::File(format!("cannot read the downloaded file: {error}")))?;
            let sha256 = hex(&Sha256::digest(&bytes));
            if sha256 != downloaded.sha256 || bytes.len() as u64 != downloaded.bytes {
                return Err(PlaceError::File(
                    "the downloaded file changed before its upload".to_string(),
                ));
            }
            return self
                .put_whole(&key, bytes, &sha256, content_type(downloaded))
                .await;
        }
        // At most two rounds: the second when the store no longer knows a recorded upload.
        for _ in 0..2 {
            match self.upload_parts(log, downloaded, &key).await? {
                Some(()) => return Ok(()),
                None => continue,
            }
        }
        Err(PlaceError::File(
            "the store lost the multipart upload twice".to_string(),
        ))
    }

    /// One round of a multipart upload: resumes the recorded upload of these bytes or starts
    /// one. `None` when the store no longer knows the recorded upload (start again).
    async fn upload_parts(
        &self,
        log: &UploadLog<'_>,
        downloaded: &Downloaded,
        key: &Key,
    ) -> Result<Option<()>, PlaceError> {
        let key_text = key.to_string();
        let logged = |write: &dyn Fn(&Store) -> Result<(), StoreError>| -> Result<(), PlaceError> {
            let store = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            write(&store).map_err(|error| PlaceError::File(format!("cannot record the upload: {error}")))
        };
        let recorded = {
            let store = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            store
                .upload(&key_text)
                .map_err(|error| PlaceError::File(format!("cannot read the upload's record: {error}")))?
        };
        let (upload_id, mut done) = match recorded {
            Some(upload) if upload.sha256 == downloaded.sha256 && upload.part_bytes == self.part_bytes => {
                tracing::info!(key = %key_text, parts_done = upload.parts.len(), "resuming an upload");
                (upload.upload_id, upload.parts)
            }
            other => {
                if let Some(old) = other {
                    // Other bytes or another part size: that upload is never completed.
                    let _ = self.store.abort_multipart(key, &old.upload_id).await;
                }
                let id = self
                    .store
                    .create_multipart(key)
                    .await
                    .map_err(|error| self.place_error(&error))?;
                let part_bytes = self.part_bytes;
                logged(&|store| {
                    store.upload_started(
                        &key_text,
                        &downloaded.sha256,
                        &id,
                        part_bytes,
                        crate::clock::now_ms(),
                    )
                })?;
                (id, Vec::new())
            }
        };
        let parts = downloaded.bytes.div_ceil(self.part_bytes);
        let mut file = std::fs::File::open(&downloaded.temp_path)
            .map_err(|error| PlaceError::File(format!("cannot read the downloaded file: {error}")))?;
        let mut whole = Sha256::new();
        let mut part_md5s = Vec::with_capacity(parts as usize * 16);
        for index in 0..parts {
            let length = (downloaded.bytes - index * self.part_bytes).min(self.part_bytes) as usize;
            let mut chunk = vec![0u8; length];
            file.seek(SeekFrom::Start(index * self.part_bytes))
                .and_then(|_| file.read_exact(&mut chunk))
                .map_err(|error| PlaceError::File(format!("cannot read the downloaded file: {error}")))?;
            whole.update(&chunk);
            part_md5s.extend_from_slice(&Md5::digest(&chunk));
            let index = index as u32;
            if done.iter().any(|(part, _)| *part == index) {
                continue;
            }
            let payload = PutPayload::from(chunk);
            let part = self
                .again_if_changed_in_transit(key, || {
                    self.store
                        .put_part(key, &upload_id, index as usize, payload.clone())
                })
                .await;
            let part = match part {
                Ok(part) => part,
                Err(object_store::Error::NotFound { .. }) => {
                    logged(&|store| store.upload_finished(&key_text))?;
                    return Ok(None);
                }
                Err(error) => return Err(self.place_error(&error)),
            };
            logged(&|store| store.upload_part_done(&key_text, index, &part.content_id))?;
            done.push((index, part.content_id));
        }
        let sha256 = hex(&whole.finalize());
        if sha256 != downloaded.sha256 {
            return Err(PlaceError::File(
                "the downloaded file changed before its upload".to_string(),
            ));
        }
        done.sort_by_key(|(part, _)| *part);
        let ids = done
            .into_iter()
            .map(|(_, content_id)| PartId { content_id })
            .collect();
        let completed = match self.store.complete_multipart(key, &upload_id, ids).await {
            Ok(completed) => completed,
            Err(object_store::Error::NotFound { .. }) => {
                logged(&|store| store.upload_finished(&key_text))?;
                return Ok(None);
            }
            Err(error) => {
                let failed = self.place_error(&error);
                if matches!(failed, PlaceError::File(_)) {
                    // The store refused these parts (a part it lost, one too small): the next
                    // attempt starts a new upload instead of repeating this refusal forever.
                    let _ = self.store.abort_multipart(key, &upload_id).await;
                    logged(&|store| store.upload_finished(&key_text))?;
                }
                return Err(failed);
            }
        };
        let expected = format!("{}-{parts}", hex(&Md5::digest(&part_md5s)));
        self.check_etag(key, completed.e_tag.as_deref(), &expected, &sha256)
            .await?;
        logged(&|store| store.upload_finished(&key_text))?;
        Ok(Some(()))
    }

    /// Runs `send` again (up to [`DIGEST_TRIES`] times in all) while the store refuses the
    /// body's checksum: the bytes changed on the way, and the next copy may arrive whole.
    /// Nothing is stored by a refused request.
    async fn again_if_changed_in_transit<T, F>(
        &self,
        key: &Key,
        send: impl Fn() -> F,
    ) -> Result<T, object_store::Error>
    where
        F: std::future::Future<Output = Result<T, object_store::Error>>,
    {
        let mut tries = 1;
        loop {
            match send().await {
                Err(error) if tries < DIGEST_TRIES && is_digest_refusal(&error) => {
                    tracing::warn!(
                        key = %key,
                        tries,
                        error = %one_line(&error.to_string()),
                        "the store refused the body's checksum (changed in transit); sending it again"
                    );
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// The store's ETag against the MD5 of what was sent; a store whose ETags are something
    /// else (encryption, another scheme) gets the object read back and hashed instead.
    async fn check_etag(
        &self,
        key: &Key,
        etag: Option<&str>,
        md5: &str,
        sha256: &str,
    ) -> Result<(), PlaceError> {
        let etag = etag.map(|etag| etag.trim_matches('"').to_ascii_lowercase());
        if etag.as_deref() == Some(md5) {
            return Ok(());
        }
        tracing::debug!(key = %key, ?etag, "the ETag is not the MD5 of the bytes sent; reading the object back");
        match self
            .hash(
                key.as_ref()
                    .strip_prefix(self.prefix.as_str())
                    .unwrap_or(key.as_ref()),
            )
            .await
        {
            Ok((found, _)) if found == sha256 => Ok(()),
            Ok(_) => {
                // mjlink's own object, just written: never left to pass for the file.
                if let Err(error) = self.store.delete(key).await {
                    tracing::warn!(key = %key, error = %one_line(&error.to_string()), "cannot remove an object that differs from the file sent");
                }
                Err(PlaceError::File(
                    "the object read back from the bucket differs from the file sent (removed)".to_string(),
                ))
            }
            Err(ReadError::Storage(error)) => Err(PlaceError::Storage(error)),
            Err(error) => Err(PlaceError::File(format!(
                "the uploaded object cannot be read back: {error}"
            ))),
        }
    }
}

/// How many times a body whose checksum the store refused is sent.
const DIGEST_TRIES: usize = 3;

/// The store refused a body whose checksum did not match (`BadDigest` for a header,
/// `InvalidDigest` for a trailer; SeaweedFS words both as "Content-Md5").
fn is_digest_refusal(error: &object_store::Error) -> bool {
    let text = error.to_string();
    text.contains("BadDigest") || text.contains("InvalidDigest")
}

fn put_options(sha256: &str, content_type: &'static str) -> PutOptions {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::Metadata(SHA256_META.into()), sha256.to_string().into());
    attributes.insert(Attribute::ContentType, content_type.into());
    PutOptions {
        // Overwrite is idempotent: a retry after a lost answer is safe. mjlink checks that a
        // key is free (or holds these very bytes) before it uploads, as it does with files.
        mode: PutMode::Overwrite,
        attributes,
        ..Default::default()
    }
}

fn content_type(downloaded: &Downloaded) -> &'static str {
    super::content_type(Some(downloaded.kind.as_str()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An error's text on one line (object_store's errors carry the store's XML answer).
fn one_line(text: &str) -> String {
    mjlink_core::text::cut(&text.split_whitespace().collect::<Vec<_>>().join(" "), 400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(None, |name| env.get(name).cloned())
    }

    /// The folder: a file over the limit is answered `None` (its size, not its bytes);
    /// within it, read whole; a path out of the folder is refused.
    #[tokio::test]
    async fn a_read_with_a_limit_reads_nothing_of_a_larger_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        std::fs::create_dir_all(root.join("2024/05/u")).unwrap();
        std::fs::write(root.join("2024/05/u/grid.png"), vec![7u8; 100]).unwrap();
        std::fs::write(dir.path().join("outside.png"), b"x").unwrap();
        let backend = Backend::Fs { root };
        let read = |max| backend.read_at_most("2024/05/u/grid.png", max);
        assert_eq!(read(99).await.unwrap(), None);
        assert_eq!(read(100).await.unwrap(), Some(vec![7u8; 100]));
        assert_eq!(backend.read("2024/05/u/grid.png").await.unwrap().len(), 100);
        assert!(matches!(
            backend.read_at_most("../outside.png", 10).await,
            Err(ReadError::Outside)
        ));
        assert!(matches!(
            backend.read_at_most("2024/05/u/u1.png", 10).await,
            Err(ReadError::Missing)
        ));
    }

    #[test]
    fn the_s3_settings_are_read_checked_and_named_in_errors() {
        let config = load(&[
            ("MJLINK_ARCHIVE_BACKEND", "S3"),
            ("MJLINK_ARCHIVE_S3_BUCKET", "my-bucket"),
            ("MJLINK_ARCHIVE_S3_PREFIX", "/mj/link/"),
            ("MJLINK_ARCHIVE_S3_ENDPOINT", "http://127.0.0.1:9000/"),
            ("MJLINK_ARCHIVE_S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("MJLINK_ARCHIVE_S3_SECRET_ACCESS_KEY", "very-secret-key"),
        ])
        .unwrap();
        assert_eq!(config.archive.s3.prefix, "mj/link/");
        let backend = Backend::from_config(&config.archive).unwrap();
        let bucket = backend.bucket().unwrap();
        assert_eq!(bucket.shown(), "s3://my-bucket/mj/link/ at http://127.0.0.1:9000");
        assert_eq!(
            bucket.key("2024/05/u/grid.png").as_ref(),
            "mj/link/2024/05/u/grid.png"
        );
        // Neither the config's nor the bucket's `Debug` shows a key.
        let shown = format!("{config:?} {backend:?}");
        assert!(
            !shown.contains("very-secret-key") && !shown.contains("AKIAEXAMPLE"),
            "{shown}"
        );

        for (pairs, key) in [
            (vec![("MJLINK_ARCHIVE_BACKEND", "s3")], "archive.s3_bucket"),
            (
                vec![
                    ("MJLINK_ARCHIVE_BACKEND", "s3"),
                    ("MJLINK_ARCHIVE_S3_BUCKET", "b-1"),
                    ("MJLINK_ARCHIVE_S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ],
                "archive.s3_secret_access_key",
            ),
        ] {
            let config = load(&pairs).unwrap();
            let error = Backend::from_config(&config.archive).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
        for (name, value) in [
            ("MJLINK_ARCHIVE_BACKEND", "ftp"),
            ("MJLINK_ARCHIVE_S3_BUCKET", "No_Capitals"),
            ("MJLINK_ARCHIVE_S3_PREFIX", "a/../b"),
            ("MJLINK_ARCHIVE_S3_PART_MIB", "4"),
        ] {
            let error = load(&[(name, value)]).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
    }
}
