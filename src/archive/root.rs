//! The archive as a whole: whose it is, who works in it, and what in it mjlink may touch.
//!
//! - The database records its archive (an id and the folder's absolute path or the bucket's
//!   `s3://bucket/prefix`, `archive_root`) and the archive holds the same id in its
//!   `.mjlink-archive` marker (a file, or the object `<prefix>.mjlink-archive`). A command pointed at
//!   another folder (a relative `archive.dir` read from another working directory, a typo)
//!   stops with one line instead of calling every file missing and repairing them.
//! - One archive pass at a time: `.mjlink-lock` in the local folder (the bucket's working
//!   folder), held with an advisory lock (`flock`) for the pass; a second pass stops with one line (the bot's own archiver skips its turn).
//! - mjlink never follows a symbolic link out of the archive: `.staging` and every folder
//!   between the root and a file it writes must be real folders.
//! - Temporary files are made only in `.staging`, named with [`TEMP_PREFIX`]; a pass removes
//!   those a killed run left (and the `.tmpXXXXXX` files of older versions in the family
//!   folders it writes).

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use super::backend::{Backend, Bucket, PlaceError, StorageError};
use super::download::TEMP_PREFIX;
use crate::store::{Store, StoreError};

pub use super::MARKER;
/// The lock file of archive passes.
pub const LOCK: &str = ".mjlink-lock";
/// Where downloads and metadata are written before they are renamed into place.
pub const STAGING: &str = ".staging";

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("the archive folder {path} cannot be used: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is not this database's archive: its {MARKER} names archive {found}, the database \
         archive {expected} (last at {recorded}); point archive.dir at the database's archive"
    )]
    OtherArchive {
        path: PathBuf,
        found: String,
        expected: String,
        recorded: String,
    },
    #[error(
        "{path} is not this database's archive, which is at {recorded} ({path} has no {MARKER}); \
         point archive.dir there (relative paths in bot.toml are read from bot.toml's folder)"
    )]
    NotMarked { path: PathBuf, recorded: String },
    #[error(
        "{path} holds none of the files this database archived (the first 64 of {count} were \
         looked for) and no {MARKER}; point archive.dir at the database's archive"
    )]
    Unknown { path: PathBuf, count: i64 },
    #[error("another archive pass is working in {path} (it holds {LOCK}); try again when it ends")]
    Busy { path: PathBuf },
    #[error(
        "{path} is a symbolic link: mjlink never follows links out of the archive (replace it with a folder)"
    )]
    Symlink { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the command does with the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Reads the files (`verify`): the folder is not created, no marker written.
    Read,
    /// Writes files (an archive pass): the folder is created and marked when new.
    Write,
}

fn folder_error(path: &Path) -> impl FnOnce(std::io::Error) -> RootError + '_ {
    move |source| RootError::Folder {
        path: path.to_path_buf(),
        source,
    }
}

fn read_marker(root: &Path) -> Result<Option<String>, RootError> {
    let path = root.join(MARKER);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(RootError::Symlink { path }),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(folder_error(root)(error)),
    }
    let text = std::fs::read_to_string(&path).map_err(folder_error(root))?;
    Ok(Some(text.trim().to_string()).filter(|id| !id.is_empty()))
}

fn write_marker(root: &Path, id: &str) -> Result<(), RootError> {
    std::fs::write(root.join(MARKER), format!("{id}\n")).map_err(folder_error(root))
}

/// The archive's place as `check` sees it: a folder (absolute), or a bucket.
enum Place<'a> {
    Folder(PathBuf),
    Bucket(&'a Bucket),
}

impl Place<'_> {
    /// The name recorded in the database (`archive_root.root`) and shown in errors.
    fn shown(&self) -> String {
        match self {
            Place::Folder(path) => path.to_string_lossy().to_string(),
            Place::Bucket(bucket) => bucket.shown().to_string(),
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(self.shown())
    }

    async fn read_marker(&self) -> Result<Option<String>, RootError> {
        match self {
            Place::Folder(path) => read_marker(path),
            Place::Bucket(bucket) => Ok(bucket
                .read_text(MARKER)
                .await?
                .map(|text| text.trim().to_string())
                .filter(|id| !id.is_empty())),
        }
    }

    async fn write_marker(&self, id: &str) -> Result<(), RootError> {
        match self {
            Place::Folder(path) => write_marker(path, id),
            Place::Bucket(bucket) => match bucket
                .write_small(MARKER, format!("{id}\n").into_bytes(), "text/plain")
                .await
            {
                Ok(()) => Ok(()),
                Err(PlaceError::Storage(error)) => Err(error.into()),
                Err(PlaceError::File(reason)) => Err(RootError::Folder {
                    path: self.path(),
                    source: std::io::Error::other(reason),
                }),
            },
        }
    }

    /// Whether any of `paths` (recorded as archived) is there.
    async fn holds_any(&self, paths: &[String]) -> Result<bool, RootError> {
        for path in paths {
            let there = match self {
                Place::Folder(root) => root.join(path).exists(),
                Place::Bucket(bucket) => bucket.exists(path).await?,
            };
            if there {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Checks that `backend` holds the archive of the database `store` (see the module) and
/// records it; with [`Use::Write`], creates and marks a new archive. The bucket's marker is
/// the object `<prefix>.mjlink-archive`; its local working folder is made for writes.
pub async fn check(
    // `&mut` (not `&`): a `Store` is not `Sync`, and this future must be `Send`.
    store: &mut Store,
    backend: &Backend,
    usage: Use,
) -> Result<(), RootError> {
    let place = match backend {
        Backend::Fs { root } => {
            let absolute = std::path::absolute(root).map_err(folder_error(root))?;
            if usage == Use::Write {
                std::fs::create_dir_all(&absolute).map_err(folder_error(&absolute))?;
            }
            if absolute.exists() && !absolute.is_dir() {
                return Err(RootError::Folder {
                    path: absolute.clone(),
                    source: std::io::Error::other("it is not a folder"),
                });
            }
            Place::Folder(absolute)
        }
        Backend::S3 { bucket, work } => {
            if usage == Use::Write {
                std::fs::create_dir_all(work).map_err(folder_error(work))?;
            }
            Place::Bucket(bucket)
        }
    };
    let shown = place.shown();
    let recorded = store.archive_root()?;
    let marker = place.read_marker().await?;
    match (recorded, marker) {
        (Some((id, _)), Some(found)) if found == id => {
            store.set_archive_root(&id, &shown)?;
        }
        (Some((id, recorded)), Some(found)) => {
            return Err(RootError::OtherArchive {
                path: place.path(),
                found,
                expected: id,
                recorded,
            })
        }
        (Some((id, recorded)), None) => {
            // The recorded archive itself, emptied or removed: its files are really missing.
            if recorded != shown {
                return Err(RootError::NotMarked {
                    path: place.path(),
                    recorded,
                });
            }
            if usage == Use::Write {
                place.write_marker(&id).await?;
            }
        }
        // An archive another database made (or this one, before it recorded its root).
        (None, Some(found)) => store.set_archive_root(&found, &shown)?,
        (None, None) => {
            let count = store.archived_count()?;
            if count > 0 && !place.holds_any(&store.archived_paths(64)?).await? {
                return Err(RootError::Unknown {
                    path: place.path(),
                    count,
                });
            }
            if usage == Use::Write {
                let id = uuid::Uuid::new_v4().to_string();
                place.write_marker(&id).await?;
                store.set_archive_root(&id, &shown)?;
            }
        }
    }
    Ok(())
}

/// The lock of one archive pass: held until dropped.
#[derive(Debug)]
pub struct PassLock {
    _file: File,
}

/// Takes the pass lock of the archive at `root` (which exists), or says another pass holds it.
pub fn lock(root: &Path) -> Result<PassLock, RootError> {
    let path = root.join(LOCK);
    if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.file_type().is_symlink()) {
        return Err(RootError::Symlink { path });
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(folder_error(root))?;
    match file.try_lock() {
        Ok(()) => Ok(PassLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(RootError::Busy {
            path: root.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(folder_error(root)(error)),
    }
}

/// Whether a file name is one of mjlink's temporary files (or an older version's: the
/// downloader's `.download-` and the `.tmpXXXXXX` of metadata written in a family folder).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
        || name.starts_with(".download-")
        || name
            .strip_prefix(".tmp")
            .is_some_and(|rest| rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Removes the temporary files a killed run left in `folder` (not following links; nothing
/// else is touched).
pub fn remove_temp_files(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
        if is_file && is_temp_name(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The staging folder of the archive at `root`, a real folder (created when missing), with
/// the temporary files a killed run left removed.
pub fn staging(root: &Path) -> Result<PathBuf, RootError> {
    let path = root.join(STAGING);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(RootError::Symlink { path }),
        Ok(meta) if !meta.is_dir() => {
            return Err(RootError::Folder {
                path,
                source: std::io::Error::other("it is not a folder"),
            })
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(&path).map_err(folder_error(&path))?;
        }
        Err(error) => return Err(folder_error(&path)(error)),
    }
    remove_temp_files(&path);
    Ok(path)
}

/// Fails when a folder between `root` and `relative` (a path inside the archive) is a
/// symbolic link, or `relative` leaves the archive.
pub fn no_link_between(root: &Path, relative: &Path) -> std::io::Result<()> {
    let mut path = root.to_path_buf();
    for component in relative.parent().unwrap_or(Path::new("")).components() {
        match component {
            Component::Normal(name) => path.push(name),
            Component::CurDir => continue,
            _ => {
                return Err(std::io::Error::other(format!(
                    "{} leaves the archive",
                    relative.display()
                )))
            }
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(std::io::Error::other(format!(
                    "{} is a symbolic link: mjlink never follows links out of the archive",
                    path.display()
                )))
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_mjlinks_own() {
        assert!(is_temp_name(".mjlink-tmp-abc"));
        assert!(is_temp_name(".download-x1Y2z3"));
        assert!(is_temp_name(".tmpAb12Cd"));
        assert!(!is_temp_name(".tmpAb12Cd.png"));
        assert!(!is_temp_name("grid.png"));
        assert!(!is_temp_name("metadata.json"));
        assert!(!is_temp_name(".tmp"));
    }
}
