//! The gallery's files beside the originals (`/api/image/{id}` in the module above): the
//! thumbnail of an image (`/api/thumb/{attachment}?size=N`, see [`super::thumbs`]) and a
//! family's `metadata.json` (`/api/family/{id}/metadata.json`). Both are found by id through
//! the database; the only path made here joins a stored path's folder with the fixed name
//! `metadata.json`, and goes through [`super::resolve_inside`] like every other.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use mjlink_core::snowflake::Snowflake;

use super::{html, resolve_inside, thumbs, Failure, Web, FAMILY_NODES};
use crate::archive::backend::{Backend, ReadError};
use crate::commands::answers;

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ThumbParams {
    size: Option<String>,
}

/// Whether an `If-None-Match` header names `etag` (a list, weak tags and `*` understood).
pub fn etag_matches(asked: &HeaderValue, etag: &str) -> bool {
    let Ok(asked) = asked.to_str() else {
        return false;
    };
    asked
        .split(',')
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A small SVG that says why there is no thumbnail (served with 404): the gallery shows it
/// where the picture would be. `reason` is escaped.
fn placeholder_svg(reason: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" height=\"320\" viewBox=\"0 0 320 320\">\
         <rect width=\"320\" height=\"320\" fill=\"#2a2a2e\"/>\
         <text x=\"160\" y=\"150\" fill=\"#ccc\" font-family=\"sans-serif\" font-size=\"20\" text-anchor=\"middle\">no preview</text>\
         <text x=\"160\" y=\"180\" fill=\"#999\" font-family=\"sans-serif\" font-size=\"11\" text-anchor=\"middle\">{}</text></svg>",
        html::esc(&mjlink_core::text::cut(reason, 50))
    )
}

fn placeholder(reason: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        placeholder_svg(reason),
    )
        .into_response()
}

/// The thumbnail of an archived image, by attachment id: `size` is one of
/// [`thumbs::SIZES`] (the gallery's when absent). A video, or a file that is not an image
/// the decoders read, gets a placeholder that says so, with 404.
pub(super) async fn thumb(
    State(web): State<Web>,
    UrlPath(id): UrlPath<String>,
    Query(params): Query<ThumbParams>,
    headers: HeaderMap,
) -> Response {
    let Some(attachment) = Snowflake::parse(id.trim()) else {
        return Failure::NotFound("Not an attachment id.".to_string()).json();
    };
    let size = match params.size.as_deref().map(str::trim) {
        None | Some("") => thumbs::GALLERY,
        Some(text) => match text.parse::<u32>() {
            Ok(size) if thumbs::SIZES.contains(&size) => size,
            _ => {
                return Failure::BadRequest(format!(
                    "`size` must be one of {}.",
                    thumbs::SIZES.map(|s| s.to_string()).join(", ")
                ))
                .json()
            }
        },
    };
    let found = web.read(move |store| Ok(store.archived_file(attachment)?)).await;
    let file = match found {
        Ok(Some(file)) => file,
        Ok(None) => return Failure::NotFound(format!("No archived file has the id {attachment}.")).json(),
        Err(failure) => return failure.json(),
    };
    if file.media.as_deref() == Some("mp4") {
        return placeholder("videos get no thumbnail");
    }
    let etag = file.sha256.as_deref().map(|sha| format!("\"{sha}-t{size}\""));
    if let (Some(etag), Some(asked)) = (&etag, headers.get(header::IF_NONE_MATCH)) {
        if etag_matches(asked, etag) {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag.clone())]).into_response();
        }
    }
    let made = thumbnail(&web.archive, &file.path, attachment, size).await;
    match made {
        Ok(thumbnail) => {
            let mut response = (
                [
                    (header::CONTENT_TYPE, "image/jpeg"),
                    (header::CACHE_CONTROL, "private, max-age=86400"),
                ],
                thumbnail.jpeg,
            )
                .into_response();
            if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(&etag).ok()) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        Err(None) => {
            tracing::warn!(attachment = %attachment, "web: an archived file is missing or outside the archive");
            Failure::NotFound(format!(
                "The file of attachment {attachment} is not in the archive."
            ))
            .json()
        }
        Err(Some(refused)) => {
            tracing::info!(attachment = %attachment, reason = %refused.0, "web: no thumbnail");
            placeholder(&refused.0)
        }
    }
}

/// The thumbnail of the archived file at `stored` at `size`: from the cache in the archive's
/// local folder, else made from the file read through the backend. `Err(None)`: the file is
/// not in the archive.
async fn thumbnail(
    archive: &Backend,
    stored: &str,
    attachment: Snowflake,
    size: u32,
) -> Result<thumbs::Thumbnail, Option<thumbs::Refused>> {
    let local = archive.local().to_path_buf();
    // The folder's original, when it is inside the folder: its time says whether the cached
    // thumbnail is older (off the async threads, like every file access here).
    let folder_root = match archive {
        Backend::Fs { root } => Some(root.clone()),
        Backend::S3 { .. } => None,
    };
    let (cache, stored_path) = (local.clone(), stored.to_string());
    let cached = tokio::task::spawn_blocking(move || -> Result<_, Option<thumbs::Refused>> {
        let original_changed = match folder_root {
            Some(root) => {
                let original = resolve_inside(&root, &stored_path).ok_or(None)?;
                std::fs::metadata(original).and_then(|m| m.modified()).ok()
            }
            None => None,
        };
        Ok(thumbs::cached(&cache, attachment, size, original_changed))
    })
    .await
    .unwrap_or(Ok(None))?;
    if let Some(thumbnail) = cached {
        return Ok(thumbnail);
    }
    let bytes = match archive.read(stored).await {
        Ok(bytes) => bytes,
        Err(ReadError::Missing | ReadError::Outside) => return Err(None),
        Err(error) => {
            return Err(Some(thumbs::Refused(format!(
                "the archived file could not be read: {error}"
            ))))
        }
    };
    tokio::task::spawn_blocking(move || {
        thumbs::make_and_cache(&local, &bytes, attachment, size).map_err(Some)
    })
    .await
    .unwrap_or_else(|error| Err(Some(thumbs::Refused(format!("the thumbnail failed: {error}")))))
}

/// A family's `metadata.json` (what the archiver wrote in the family's folder), for any
/// message of the family: the folder is the one of the family's first archived file.
pub(super) async fn family_metadata(State(web): State<Web>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(id) = Snowflake::parse(id.trim()) else {
        return Failure::NotFound(format!("`{id}` is not a message id.")).json();
    };
    let found = web
        .read(move |store| {
            let family = answers::family(store, id, FAMILY_NODES)?.map_err(Failure::NotFound)?;
            for node in &family.nodes {
                for file in node.attachments.iter().filter(|file| file.state == "archived") {
                    if let Some(archived) = store.archived_file(file.attachment_id)? {
                        return Ok(Some(archived.path));
                    }
                }
            }
            Ok(None)
        })
        .await;
    let stored = match found {
        Ok(Some(stored)) => stored,
        Ok(None) => return Failure::NotFound(format!("The family of {id} has no archived file yet.")).json(),
        Err(failure) => return failure.json(),
    };
    let relative = match stored.rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/metadata.json"),
        None => "metadata.json".to_string(),
    };
    let read = web.archive.read(&relative).await.ok();
    match read {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        None => Failure::NotFound(format!("The family of {id} has no metadata.json in the archive.")).json(),
    }
}
