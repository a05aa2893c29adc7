//! Thumbnails of archived images (`/api/thumb/{attachment}?size=N`): made with the `image`
//! crate on first request (PNG, JPEG and WebP decoded; a JPEG written), cached on disk in
//! `<archive>/.thumbnails/<attachment id>-<size>.jpg` (written to a temporary file, then
//! renamed into place, so a reader never sees half a file), and made again when the original
//! is newer than its thumbnail. The cache file's name is made of two numbers the server
//! parsed (the attachment id, one of [`SIZES`]), never of request text.
//!
//! Videos get none: decoding an mp4 needs a video decoder this crate does not carry, and the
//! browser draws a video's first frame itself (`<video preload="metadata">`). A file that is
//! not an image the decoders read (corrupt, cut short, another format) is a [`Refused`], shown
//! as a placeholder, never a panic.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mjlink_core::snowflake::Snowflake;

/// The sizes thumbnails are made at (the longest side, in pixels): the gallery's tiles and
/// the family page's nodes (twice for sharp screens).
pub const SIZES: [u32; 2] = [320, 640];
/// The gallery's size.
pub const GALLERY: u32 = 320;
/// The family page's size.
pub const FAMILY: u32 = 640;
/// The cache folder, under the archive root (beside `.staging`).
pub const CACHE_FOLDER: &str = ".thumbnails";
/// JPEG quality of a thumbnail.
const QUALITY: u8 = 82;
/// Largest image decoded (pixels on a side, bytes allocated): Midjourney's largest upscales
/// are 4096 px; anything far beyond is refused before it is decoded.
const MAX_SIDE: u32 = 16_384;
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Why an archived file has no thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// A thumbnail's bytes (a JPEG), and whether it came from the cache.
#[derive(Debug)]
pub struct Thumbnail {
    pub jpeg: Vec<u8>,
    pub cached: bool,
}

/// Where the thumbnail of `attachment` at `size` is cached, under `root`.
pub fn cache_path(root: &Path, attachment: Snowflake, size: u32) -> PathBuf {
    root.join(CACHE_FOLDER).join(format!("{attachment}-{size}.jpg"))
}

/// The cached thumbnail of `attachment` at `size` under `root` (the archive's local folder),
/// when it is there and not older than the original's last change (`original_changed`; an
/// object in a bucket, which mjlink never rewrites with other bytes, has none).
pub fn cached(
    root: &Path,
    attachment: Snowflake,
    size: u32,
    original_changed: Option<SystemTime>,
) -> Option<Thumbnail> {
    let cached = cache_path(root, attachment, size);
    let made = std::fs::metadata(&cached).and_then(|m| m.modified()).ok()?;
    if original_changed.is_some_and(|changed| made < changed) {
        return None;
    }
    let jpeg = std::fs::read(cached).ok().filter(|jpeg| !jpeg.is_empty())?;
    Some(Thumbnail { jpeg, cached: true })
}

/// The thumbnail of an archived image's `bytes` at `size`, made and cached under `root`. A
/// cache that cannot be written (a read-only archive, a folder that is a symbolic link) is
/// skipped: the thumbnail is made and served all the same.
pub fn make_and_cache(
    root: &Path,
    bytes: &[u8],
    attachment: Snowflake,
    size: u32,
) -> Result<Thumbnail, Refused> {
    let jpeg = make(bytes, size)?;
    if let Err(error) = store(root, &cache_path(root, attachment, size), &jpeg) {
        tracing::warn!(attachment = %attachment, %error, "web: a thumbnail could not be cached");
    }
    Ok(Thumbnail { jpeg, cached: false })
}

/// Writes `jpeg` to `path` through a temporary file in the same folder and a rename. The
/// cache folder is made when missing, and never written through a symbolic link.
fn store(root: &Path, path: &Path, jpeg: &[u8]) -> std::io::Result<()> {
    let folder = root.join(CACHE_FOLDER);
    match std::fs::symlink_metadata(&folder) {
        Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
            return Err(std::io::Error::other(format!(
                "{} is not a folder of its own",
                folder.display()
            )))
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&folder)?,
        Err(error) => return Err(error),
    }
    let mut temp = tempfile::Builder::new().prefix(".thumb-").tempfile_in(&folder)?;
    temp.write_all(jpeg)?;
    crate::archive::share(temp.as_file())?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// Decodes `bytes` (PNG, JPEG or WebP, told by their signature) and writes a JPEG whose
/// longest side is at most `size` (an image already smaller keeps its size).
pub fn make(bytes: &[u8], size: u32) -> Result<Vec<u8>, Refused> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| Refused(format!("the file could not be read: {error}")))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP) => {}
        Some(other) => {
            return Err(Refused(format!(
                "{} files get no thumbnail",
                other.extensions_str().first().unwrap_or(&"these")
            )))
        }
        None => return Err(Refused("the file is not an image mjlink can read".to_string())),
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|error| Refused(format!("the image could not be decoded: {error}")))?;
    let small = if decoded.width() > size || decoded.height() > size {
        decoded.thumbnail(size, size)
    } else {
        decoded
    };
    let rgb = small.to_rgb8();
    let mut jpeg = Vec::with_capacity(32 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
        .encode_image(&rgb)
        .map_err(|error| Refused(format!("the thumbnail could not be written: {error}")))?;
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_image_is_made_small_and_a_small_one_keeps_its_size() {
        let png = mjlink_sim::png::png(1000, 500, 3);
        let jpeg = make(&png, 320).unwrap();
        let thumb = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
        let small = make(&mjlink_sim::png::png(96, 96, 3), 320).unwrap();
        let thumb = image::load_from_memory(&small).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (96, 96));
    }

    #[test]
    fn what_is_not_a_readable_image_is_refused_in_a_sentence() {
        let mut cut = mjlink_sim::png::png(200, 200, 3);
        cut.truncate(cut.len() / 2);
        for bytes in [b"garbage".to_vec(), cut, b"\0\0\0\x18ftypmp42".to_vec()] {
            let refused = make(&bytes, 320).unwrap_err();
            assert!(!refused.0.is_empty() && !refused.0.contains('\n'), "{refused:?}");
        }
    }
}
