//! Manual links from the web (issue 13): the family page's form (`POST /family/{id}/link`,
//! `POST /family/{id}/unlink`) and the API (`POST /api/links/{child}` with
//! `{"parent": "...", "by": "..."}`, `POST /api/links/{child}/clear`). They take the path of
//! `mjlink link set|clear`: [`Pipeline::set_manual_link`] / [`Pipeline::clear_manual_link`] on
//! a store of their own, so the core decides (a manual link beats heuristic, ambiguous and
//! unresolved, never an exact signal) and the SQL is the store's. The token was checked by
//! the guard before a handler here runs (a header, or the form's `token` field).

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;

use mjlink_core::snowflake::Snowflake;

use super::{html, Failure, Web};
use crate::ingest::pipeline::Pipeline;
use crate::store::Store;

/// What a change of link came to: done, or refused with the core's reason.
enum Change {
    Done,
    Refused(String),
}

/// The form's and the API's fields (the token is the guard's).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct LinkFields {
    parent: Option<String>,
    by: Option<String>,
}

fn who(by: Option<&str>) -> String {
    by.map(|name| mjlink_core::text::cut(name.trim(), 64))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "web".to_string())
}

/// Sets (`parent` given) or clears the manual link of `child`, on a blocking thread with a
/// store and pipeline of its own.
async fn change(
    web: &Web,
    child: Snowflake,
    parent: Option<Snowflake>,
    by: String,
) -> Result<Change, Failure> {
    let database = web.database.clone();
    let config = web.pipeline.clone();
    let now_ms = crate::clock::now_ms();
    let joined = tokio::task::spawn_blocking(move || -> Result<Change, Failure> {
        let store = Store::open(&database)?;
        let mut pipeline = Pipeline::new(store, config);
        let decided = match parent {
            Some(parent) => pipeline.set_manual_link(child, parent, &by, now_ms)?,
            None => pipeline.clear_manual_link(child)?,
        };
        Ok(match decided {
            Ok(()) => Change::Done,
            Err(reason) => Change::Refused(reason),
        })
    })
    .await;
    joined.unwrap_or_else(|error| {
        Err(Failure::BadRequest(format!(
            "the link could not be changed: {error}"
        )))
    })
}

fn id_of(name: &str, text: &str) -> Result<Snowflake, Failure> {
    Snowflake::parse(text.trim())
        .ok_or_else(|| Failure::BadRequest(format!("`{name}` must be a message id (digits).")))
}

fn refused_page(child: Snowflake, reason: &str) -> Response {
    let body = format!(
        "<h1>Not linked</h1><p class=\"notice\">{}</p><p><a href=\"/family/{child}#m{child}\">Back to the family</a></p>",
        html::esc(reason)
    );
    (StatusCode::CONFLICT, Html(html::page("Not linked", "", &body))).into_response()
}

/// `POST /family/{id}/link` (form: `parent`, `token`, `by`): back to the family when done.
pub(super) async fn set_from_form(
    State(web): State<Web>,
    UrlPath(child): UrlPath<String>,
    Form(fields): Form<LinkFields>,
) -> Response {
    let ids = id_of("child", &child).and_then(|child| {
        id_of("parent", fields.parent.as_deref().unwrap_or("")).map(|parent| (child, parent))
    });
    let (child, parent) = match ids {
        Ok(ids) => ids,
        Err(failure) => return failure.page(),
    };
    match change(&web, child, Some(parent), who(fields.by.as_deref())).await {
        Ok(Change::Done) => Redirect::to(&format!("/family/{child}#m{child}")).into_response(),
        Ok(Change::Refused(reason)) => {
            refused_page(child, &format!("cannot link {child} to {parent}: {reason}"))
        }
        Err(failure) => failure.page(),
    }
}

/// `POST /family/{id}/unlink` (form: `token`): back to the family when done.
pub(super) async fn clear_from_form(State(web): State<Web>, UrlPath(child): UrlPath<String>) -> Response {
    let child = match id_of("child", &child) {
        Ok(child) => child,
        Err(failure) => return failure.page(),
    };
    match change(&web, child, None, String::new()).await {
        Ok(Change::Done) => Redirect::to(&format!("/family/{child}#m{child}")).into_response(),
        Ok(Change::Refused(reason)) => {
            refused_page(child, &format!("cannot clear the link of {child}: {reason}"))
        }
        Err(failure) => failure.page(),
    }
}

/// The link of `child` as it is now, for the API's answers.
async fn link_now(web: &Web, child: Snowflake) -> serde_json::Value {
    let read = web.read(move |store| Ok(store.get_link(child)?)).await;
    match read {
        Ok(Some(link)) => serde_json::json!({
            "child": child,
            "status": link.decision.status.as_str(),
            "parent": link.decision.parent,
            "signal": link.decision.signal.map(|signal| signal.as_str()),
        }),
        _ => serde_json::json!({ "child": child, "status": "unresolved" }),
    }
}

/// The answer of a refused or failed change (`None`: done).
fn api_refusal(change: Result<Change, Failure>) -> Option<Response> {
    match change {
        Ok(Change::Done) => None,
        Ok(Change::Refused(reason)) => {
            Some((StatusCode::CONFLICT, Json(serde_json::json!({ "error": reason }))).into_response())
        }
        Err(failure) => Some(failure.json()),
    }
}

/// `POST /api/links/{child}` with `{"parent": "<id>", "by": "<name>"}`.
pub(super) async fn set_from_api(
    State(web): State<Web>,
    UrlPath(child): UrlPath<String>,
    Json(fields): Json<LinkFields>,
) -> Response {
    let ids = id_of("child", &child).and_then(|child| {
        id_of("parent", fields.parent.as_deref().unwrap_or("")).map(|parent| (child, parent))
    });
    let (child, parent) = match ids {
        Ok(ids) => ids,
        Err(failure) => return failure.json(),
    };
    match api_refusal(change(&web, child, Some(parent), who(fields.by.as_deref())).await) {
        None => Json(link_now(&web, child).await).into_response(),
        Some(response) => response,
    }
}

/// `POST /api/links/{child}/clear`.
pub(super) async fn clear_from_api(State(web): State<Web>, UrlPath(child): UrlPath<String>) -> Response {
    let child = match id_of("child", &child) {
        Ok(child) => child,
        Err(failure) => return failure.json(),
    };
    match api_refusal(change(&web, child, None, String::new()).await) {
        None => Json(link_now(&web, child).await).into_response(),
        Some(response) => response,
    }
}
