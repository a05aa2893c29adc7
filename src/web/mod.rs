//! The web gallery (`mjlink serve`): server-rendered pages (gallery, family, search, stats)
//! and a JSON API under `/api/`, on axum. The answers are the slash commands' own
//! ([`crate::commands::answers`]: `family`, `search_page`, `stats_figures`); this module only
//! reads the database and renders.
//!
//! Security: files are found by attachment id through the database (`attachments.path`,
//! under the archive root; nothing from a request becomes a path, and a stored path that
//! resolves outside the root is refused); every value is escaped ([`html::esc`]); every
//! answer carries a Content-Security-Policy; a write (any method but GET and HEAD) needs
//! `web.token` as a bearer token, compared in constant time; listening beyond loopback
//! without a token is refused at start ([`WebOptions::from_config`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use mjlink_core::secret::Secret;
use mjlink_core::snowflake::Snowflake;

use crate::archive::backend::{Backend, ReadError};
use crate::archive::content_type;
pub use crate::archive::resolve_inside;
use crate::commands::answers;
use crate::config::Config;
use crate::ingest::pipeline::PipelineConfig;
use crate::store::{GalleryFilter, SearchFilter, Store, StoreError};

pub mod html;
mod links;
mod media;
pub mod queue;
pub mod thumbs;

/// The stylesheet, compiled in.
const STYLE: &str = include_str!("assets/style.css");

/// Tiles per gallery page.
pub const GALLERY_PAGE: usize = 48;
/// Hits per search page.
pub const SEARCH_PAGE: usize = 20;
/// Nodes of a family page at most.
pub const FAMILY_NODES: usize = 1000;
/// Idle connections kept (opening one reads the schema and loads the zstd dictionary: more
/// than a request's reads), enough for every request in flight under load.
const POOL: usize = 32;

/// Scripts (files only, never inline), styles, images, videos and connections (the queue's
/// live updates): this server only; no frames, no plugins, forms submit here only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     connect-src 'self'; img-src 'self'; media-src 'self'; style-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// What the server needs: the database, the archive, the address, the write token.
#[derive(Debug, Clone)]
pub struct WebOptions {
    pub database: PathBuf,
    /// Where archived files are read from: the folder, or the bucket (thumbnails are cached
    /// in the local folder either way).
    pub archive: Backend,
    pub bind: SocketAddr,
    pub token: Option<Secret>,
    /// How a manual link set from the family page is applied (the pipeline's options).
    pub pipeline: PipelineConfig,
}

impl WebOptions {
    /// From the `[web]` section (`bind` replaced by `bind` when given). Refuses, in one
    /// sentence, an address that is not one, and a non-loopback address without a token.
    pub fn from_config(config: &Config, bind: Option<&str>) -> Result<WebOptions, String> {
        let text = bind.unwrap_or(&config.web.bind);
        let bind: SocketAddr = text
            .trim()
            .parse()
            .map_err(|_| format!("web.bind `{text}` is not an address and port like 127.0.0.1:8080"))?;
        check_bind(bind, config.web.token.as_ref())?;
        Ok(WebOptions {
            database: config.database_path.clone(),
            archive: Backend::from_config(&config.archive).map_err(|error| error.to_string())?,
            bind,
            token: config.web.token.clone(),
            pipeline: PipelineConfig::from_config(config),
        })
    }
}

/// A loopback address is always fine; any other one only with a token.
pub fn check_bind(bind: SocketAddr, token: Option<&Secret>) -> Result<(), String> {
    if bind.ip().is_loopback() || token.is_some() {
        Ok(())
    } else {
        Err(format!(
            "refusing to serve on {bind}: other machines can reach it and web.token is not set \
             (set web.token or MJLINK_WEB_TOKEN, or bind 127.0.0.1)"
        ))
    }
}

/// Whether `given` is the token, in time that does not depend on where they differ.
pub fn token_matches(token: &Secret, given: &str) -> bool {
    let expected = Sha256::digest(token.expose().as_bytes());
    let given = Sha256::digest(given.as_bytes());
    expected
        .iter()
        .zip(given.iter())
        .fold(0u8, |differ, (a, b)| differ | (a ^ b))
        == 0
}

struct Shared {
    database: PathBuf,
    archive: Backend,
    token: Option<Secret>,
    pipeline: PipelineConfig,
    /// Idle connections, each used by one request at a time.
    stores: Mutex<Vec<Store>>,
    /// The queue page's live updates.
    live: queue::Live,
}

type Web = Arc<Shared>;

/// Why a request has no answer.
enum Failure {
    NotFound(String),
    BadRequest(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

impl Failure {
    fn status_and_reason(self) -> (StatusCode, String) {
        match self {
            Failure::NotFound(reason) => (StatusCode::NOT_FOUND, reason),
            Failure::BadRequest(reason) => (StatusCode::BAD_REQUEST, reason),
            Failure::Store(error) => {
                tracing::warn!(%error, "web: the database could not be read");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("The database could not be read: {error}"),
                )
            }
        }
    }

    fn page(self) -> Response {
        let (status, reason) = self.status_and_reason();
        let title = status.canonical_reason().unwrap_or("Error");
        (status, Html(html::notice(title, &reason))).into_response()
    }

    fn json(self) -> Response {
        let (status, reason) = self.status_and_reason();
        (status, Json(serde_json::json!({ "error": reason }))).into_response()
    }
}

impl Shared {
    /// Runs `read` on a pooled connection, on a blocking thread.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Store) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let web = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || {
            let idle = web.stores.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let store = match idle {
                Some(store) => store,
                None => Store::open(&web.database)?,
            };
            let answer = read(&store);
            if answer.is_ok() {
                let mut stores = web.stores.lock().unwrap_or_else(|e| e.into_inner());
                if stores.len() < POOL {
                    stores.push(store);
                }
            }
            answer
        })
        .await;
        joined.unwrap_or_else(|error| {
            Err(Failure::BadRequest(format!(
                "the request could not be answered: {error}"
            )))
        })
    }
}

/// The router: pages, the API, the stylesheet; with the security headers and the write
/// guard around every route.
pub fn router(options: &WebOptions) -> Router {
    app(options).0
}

/// The router and its shared state.
fn app(options: &WebOptions) -> (Router, Web) {
    let web: Web = Arc::new(Shared {
        database: options.database.clone(),
        archive: options.archive.clone(),
        token: options.token.clone(),
        pipeline: options.pipeline.clone(),
        stores: Mutex::new(Vec::new()),
        live: queue::Live::default(),
    });
    let router = Router::new()
        .route("/", get(gallery_page))
        .route("/search", get(search_page))
        .route("/stats", get(stats_page))
        .route("/family", get(family_lookup))
        .route("/family/{id}", get(family_page))
        .route("/family/{id}/link", post(links::set_from_form))
        .route("/family/{id}/unlink", post(links::clear_from_form))
        .route("/assets/style.css", get(style))
        .route("/api/gallery", get(gallery_json))
        .route("/api/family/{id}", get(family_json))
        .route("/api/family/{id}/metadata.json", get(media::family_metadata))
        .route("/api/message/{id}", get(message_json))
        .route("/api/search", get(search_json))
        .route("/api/stats", get(stats_json))
        .route("/api/image/{attachment}", get(image))
        .route("/api/thumb/{attachment}", get(media::thumb))
        .route("/api/links/{child}", post(links::set_from_api))
        .route("/api/links/{child}/clear", post(links::clear_from_api))
        .merge(queue::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&web), guard))
        .with_state(Arc::clone(&web));
    (router, web)
}

/// The web UI served in a task beside other work (`demo --serve`, `run` with `web.enabled`),
/// until [`Serving::stop`].
pub struct Serving {
    pub address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Serving {
    /// Serves `options` on `listener` in a task of its own.
    pub fn spawn(listener: tokio::net::TcpListener, options: WebOptions) -> std::io::Result<Serving> {
        let address = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, &options, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Serving { address, stop, task })
    }

    /// Stops serving (open pages' live streams end first) and waits for the server to end.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap_or_else(|error| Err(std::io::Error::other(error)))
    }
}

/// Serves on `listener` until `shutdown` completes (then the queue's live streams end, so
/// that open pages do not hold the stop up).
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: &WebOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (router, web) = app(options);
    let shutdown = async move {
        shutdown.await;
        web.live.close();
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The largest form body read for its token.
const FORM_LIMIT: usize = 64 * 1024;

/// The token a write carries: `Authorization: Bearer <token>`, or, for a page's form (which
/// cannot set a header), its `token` field. The body read is given back to the request.
async fn token_of(request: Request) -> (Request, Option<String>) {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_string);
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if bearer.is_some() || !is_form {
        return (request, bearer);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.unwrap_or_default();
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(name, _)| name == "token"))
        .map(|(_, token)| token);
    (Request::from_parts(parts, axum::body::Body::from(bytes)), token)
}

/// Writes need the token; every answer gets the security headers.
async fn guard(State(web): State<Web>, request: Request, next: Next) -> Response {
    let write = !matches!(*request.method(), Method::GET | Method::HEAD);
    let mut response = if write {
        let (request, given) = token_of(request).await;
        match (&web.token, given.as_deref()) {
            (None, _) => refuse(StatusCode::FORBIDDEN, "writes are disabled: web.token is not set"),
            (Some(token), Some(given)) if token_matches(token, given) => next.run(request).await,
            (Some(_), _) => refuse(
                StatusCode::UNAUTHORIZED,
                "a write needs the token: send Authorization: Bearer <web.token> (or the form's token field)",
            ),
        }
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn refuse(status: StatusCode, reason: &str) -> Response {
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

async fn not_found() -> Response {
    Failure::NotFound("There is no such page.".to_string()).page()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// The query of the gallery, the search and their API twins: every value as text, checked
/// here (so a bad value is a clear 400, never the framework's).
#[derive(Debug, Default, serde::Deserialize)]
struct Params {
    user: Option<String>,
    channel: Option<String>,
    action: Option<String>,
    before: Option<String>,
    since: Option<String>,
    until: Option<String>,
    fav: Option<String>,
    q: Option<String>,
    page: Option<String>,
    m: Option<String>,
}

fn optional_id(name: &str, value: &Option<String>) -> Result<Option<Snowflake>, Failure> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => Snowflake::parse(text)
            .map(Some)
            .ok_or_else(|| Failure::BadRequest(format!("`{name}` must be a Discord id (digits)."))),
    }
}

fn message_id(text: &str) -> Result<Snowflake, Failure> {
    Snowflake::parse(text.trim()).ok_or_else(|| Failure::NotFound(format!("`{text}` is not a message id.")))
}

/// The kinds the gallery can be narrowed to: every action (the core's list).
fn action_names() -> Vec<&'static str> {
    mjlink_core::parse::Action::ALL
        .iter()
        .map(|a| a.as_str())
        .collect()
}

fn gallery_filter(params: &Params) -> Result<GalleryFilter, Failure> {
    let kind = match params.action.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => match mjlink_core::parse::Action::from_name(name) {
            Some(action) => Some(action.as_str().to_string()),
            None => return Err(Failure::BadRequest(format!("`{name}` is not an action."))),
        },
    };
    let time = |name: &str, value: &Option<String>, parse: fn(&str) -> Option<i64>| match value
        .as_deref()
        .map(str::trim)
    {
        None | Some("") => Ok(None),
        Some(text) => parse(text)
            .map(|ms| Some(Snowflake::from_timestamp_ms(ms)))
            .ok_or_else(|| Failure::BadRequest(format!("`{name}` must be a date like 2024-05-01."))),
    };
    let favourites = favourites_only(&params.fav)?;
    Ok(GalleryFilter {
        kind,
        user_id: optional_id("user", &params.user)?,
        channel_id: optional_id("channel", &params.channel)?,
        before: optional_id("before", &params.before)?,
        since: time("since", &params.since, mjlink_core::text::parse_time)?,
        until: time("until", &params.until, mjlink_core::text::parse_until)?,
        favourites,
    })
}

async fn gallery_items(
    web: &Web,
    params: &Params,
) -> Result<(Vec<crate::store::GalleryItem>, Option<Snowflake>), Failure> {
    let filter = gallery_filter(params)?;
    let items = web
        .read(move |store| Ok(store.gallery(&filter, GALLERY_PAGE)?))
        .await?;
    let next = (items.len() == GALLERY_PAGE)
        .then(|| items.last().map(|i| i.message_id))
        .flatten();
    Ok((items, next))
}

async fn gallery_page(State(web): State<Web>, Query(params): Query<Params>) -> Response {
    match gallery_items(&web, &params).await {
        Ok((items, next)) => {
            let query = html::GalleryQuery {
                user: params.user.unwrap_or_default(),
                channel: params.channel.unwrap_or_default(),
                action: params.action.unwrap_or_default(),
                since: params.since.unwrap_or_default(),
                until: params.until.unwrap_or_default(),
                favourites: favourites_only(&params.fav).unwrap_or(false),
            };
            Html(html::gallery(&items, &query, next, &action_names())).into_response()
        }
        Err(failure) => failure.page(),
    }
}

/// `fav=1` (or a checked box's `on`): favourites only.
fn favourites_only(fav: &Option<String>) -> Result<bool, Failure> {
    match fav.as_deref().map(str::trim) {
        None | Some("" | "0") => Ok(false),
        Some("1" | "on" | "true") => Ok(true),
        Some(_) => Err(Failure::BadRequest("`fav` must be 1 or 0.".to_string())),
    }
}

async fn gallery_json(State(web): State<Web>, Query(params): Query<Params>) -> Response {
    match gallery_items(&web, &params).await {
        Ok((items, next)) => Json(serde_json::json!({ "items": items, "next_before": next })).into_response(),
        Err(failure) => failure.json(),
    }
}

async fn read_family(web: &Web, id: Snowflake) -> Result<answers::Family, Failure> {
    web.read(move |store| answers::family(store, id, FAMILY_NODES)?.map_err(Failure::NotFound))
        .await
}

async fn family_page(State(web): State<Web>, UrlPath(id): UrlPath<String>) -> Response {
    let id = match message_id(&id) {
        Ok(id) => id,
        Err(failure) => return failure.page(),
    };
    match read_family(&web, id).await {
        Ok(family) => Html(html::family(&family)).into_response(),
        Err(failure) => failure.page(),
    }
}

/// `/family?m=<id or Discord message link>`: to that message in its family.
async fn family_lookup(Query(params): Query<Params>) -> Response {
    let input = params.m.unwrap_or_default();
    match answers::parse_message_ref(&input) {
        Ok((_, id)) => Redirect::to(&format!("/family/{id}#m{id}")).into_response(),
        Err(reason) => Failure::BadRequest(reason).page(),
    }
}

async fn family_json(State(web): State<Web>, UrlPath(id): UrlPath<String>) -> Response {
    let result = match message_id(&id) {
        Ok(id) => read_family(&web, id).await,
        Err(failure) => Err(failure),
    };
    match result {
        Ok(family) => Json(family).into_response(),
        Err(failure) => failure.json(),
    }
}

/// One message: its node of the family, and the family's root.
async fn message_json(State(web): State<Web>, UrlPath(id): UrlPath<String>) -> Response {
    let result = match message_id(&id) {
        Ok(id) => read_family(&web, id).await.map(|family| (id, family)),
        Err(failure) => Err(failure),
    };
    match result {
        Ok((id, family)) => {
            let root = family.nodes[0].message.message_id;
            let node = family
                .nodes
                .into_iter()
                .find(|node| node.message.message_id == id);
            Json(serde_json::json!({
                "message_id": id,
                "family": root,
                "family_url": format!("/family/{root}#m{id}"),
                "node": node,
            }))
            .into_response()
        }
        Err(failure) => failure.json(),
    }
}

async fn search(web: &Web, params: &Params) -> Result<(String, Option<answers::SearchPage>), Failure> {
    let words = params.q.clone().unwrap_or_default();
    let page = match params.page.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| Failure::BadRequest("`page` must be a number from 0.".to_string()))?
            .min(100_000),
    };
    let filter = SearchFilter {
        user_id: optional_id("user", &params.user)?,
        channel_id: optional_id("channel", &params.channel)?,
        since_ms: None,
    };
    let asked = words.clone();
    let found = web
        .read(move |store| Ok(answers::search_page(store, &asked, &filter, page, SEARCH_PAGE)?))
        .await?;
    Ok((words, found))
}

async fn search_page(State(web): State<Web>, Query(params): Query<Params>) -> Response {
    match search(&web, &params).await {
        Ok((words, found)) => Html(html::search(&words, found.as_ref())).into_response(),
        Err(failure) => failure.page(),
    }
}

async fn search_json(State(web): State<Web>, Query(params): Query<Params>) -> Response {
    match search(&web, &params).await {
        Ok((_, Some(found))) => Json(found).into_response(),
        Ok((_, None)) => {
            Failure::BadRequest("Give at least one word to search for (q=...).".to_string()).json()
        }
        Err(failure) => failure.json(),
    }
}

async fn stats_page(State(web): State<Web>) -> Response {
    match web.read(|store| Ok(answers::stats_figures(store)?)).await {
        Ok(stats) => Html(html::stats(&stats)).into_response(),
        Err(failure) => failure.page(),
    }
}

async fn stats_json(State(web): State<Web>) -> Response {
    match web.read(|store| Ok(answers::stats_figures(store)?)).await {
        Ok(stats) => Json(stats).into_response(),
        Err(failure) => failure.json(),
    }
}

/// What the image endpoint found.
enum Found {
    NoRow,
    Outside,
    NotModified(String),
    File {
        bytes: Vec<u8>,
        media: Option<String>,
        etag: Option<String>,
    },
    Unreadable(ReadError),
}

/// An archived file by its attachment id: the database says where it is. The lookup, the
/// path's check and the read are one trip to a blocking thread.
async fn image(State(web): State<Web>, UrlPath(id): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(attachment) = Snowflake::parse(id.trim()) else {
        return Failure::NotFound("Not an attachment id.".to_string()).json();
    };
    let asked = headers.get(header::IF_NONE_MATCH).cloned();
    let found = match web.read(move |store| Ok(store.archived_file(attachment)?)).await {
        Ok(None) => Ok(Found::NoRow),
        Ok(Some(file)) => {
            let etag = file.sha256.as_deref().map(|sha| format!("\"{sha}\""));
            match (&etag, &asked) {
                (Some(etag), Some(asked)) if media::etag_matches(asked, etag) => {
                    Ok(Found::NotModified(etag.clone()))
                }
                _ => Ok(match web.archive.read(&file.path).await {
                    Ok(bytes) => Found::File {
                        bytes,
                        media: file.media,
                        etag,
                    },
                    Err(ReadError::Missing | ReadError::Outside) => Found::Outside,
                    Err(error) => Found::Unreadable(error),
                }),
            }
        }
        Err(failure) => Err(failure),
    };
    match found {
        Ok(Found::File { bytes, media, etag }) => {
            let mut response = (
                [
                    (header::CONTENT_TYPE, content_type(media.as_deref())),
                    (header::CACHE_CONTROL, "private, max-age=86400"),
                ],
                bytes,
            )
                .into_response();
            if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(&etag).ok()) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        Ok(Found::NotModified(etag)) => (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response(),
        Ok(Found::NoRow) => Failure::NotFound(format!("No archived file has the id {attachment}.")).json(),
        Ok(Found::Outside) => {
            tracing::warn!(attachment = %attachment, "web: an archived file is missing or outside the archive");
            Failure::NotFound(format!(
                "The file of attachment {attachment} is not in the archive."
            ))
            .json()
        }
        Ok(Found::Unreadable(error)) => {
            tracing::warn!(attachment = %attachment, %error, "web: an archived file could not be read");
            Failure::NotFound(format!("The file of attachment {attachment} could not be read.")).json()
        }
        Err(failure) => failure.json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_loopback_bind_needs_a_token() {
        let open: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let error = check_bind(open, None).unwrap_err();
        assert!(error.starts_with("refusing to serve on 0.0.0.0:8080"), "{error}");
        assert!(!error.contains('\n'));
        assert!(check_bind(open, Some(&Secret::new("t0ken"))).is_ok());
        assert!(check_bind(local, None).is_ok());
        assert!(check_bind("[::1]:1".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn the_token_must_match_exactly() {
        let token = Secret::new("s3cret");
        assert!(token_matches(&token, "s3cret"));
        assert!(!token_matches(&token, "s3cre"));
        assert!(!token_matches(&token, "s3cret "));
        assert!(!token_matches(&token, ""));
    }

    #[test]
    fn stored_paths_outside_the_archive_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        std::fs::create_dir_all(root.join("2026/01")).unwrap();
        std::fs::write(root.join("2026/01/grid.png"), b"png").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"no").unwrap();
        assert!(resolve_inside(&root, "2026/01/grid.png").is_some());
        assert_eq!(resolve_inside(&root, "../secret.txt"), None);
        assert_eq!(
            resolve_inside(&root, dir.path().join("secret.txt").to_str().unwrap()),
            None
        );
        assert_eq!(resolve_inside(&root, "2026"), None, "a folder is not a file");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.png")).unwrap();
            assert_eq!(resolve_inside(&root, "link.png"), None);
        }
    }
}
