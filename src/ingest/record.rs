//! Byte-exact recording for `mjlink record`: a WebSocket relay on 127.0.0.1 between serenity
//! and Discord's gateway. Every dispatch frame from Discord is appended to the recording
//! exactly as it arrived, then forwarded. Two things are changed on the way, never in the
//! recording: IDENTIFY asks for uncompressed payloads (so every frame is readable text), and
//! READY's `resume_gateway_url` points back at the relay (so resumed sessions are recorded
//! too). Dispatches carry no token, so none reaches the file.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message as Frame;

/// A running relay; dropping it stops accepting connections.
pub struct Relay {
    /// The address serenity connects to instead of the gateway.
    pub url: String,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Shared {
    /// Where the next connection goes: the gateway, then the session's resume address.
    upstream: Mutex<String>,
    file: Mutex<std::fs::File>,
    url: String,
}

/// Starts the relay in front of `upstream` (a `ws://` or `wss://` gateway address without a
/// query), appending dispatches to `path`.
pub async fn start(upstream: &str, path: &Path) -> std::io::Result<Relay> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let shared = Arc::new(Shared {
        upstream: Mutex::new(upstream.trim_end_matches('/').to_string()),
        file: Mutex::new(file),
        url: url.clone(),
    });
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                if let Err(error) = relay(stream, shared).await {
                    tracing::warn!(%error, "recording relay connection ended with an error");
                }
            });
        }
    });
    Ok(Relay { url, accept })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn relay(
    stream: TcpStream,
    shared: Arc<Shared>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut query = String::new();
    let client = tokio_tungstenite::accept_hdr_async(stream, QueryOf(&mut query)).await?;
    let upstream_url = {
        let base = lock(&shared.upstream).clone();
        if query.is_empty() {
            base
        } else {
            format!("{base}/?{query}")
        }
    };
    let (server, _) = tokio_tungstenite::connect_async(upstream_url.as_str()).await?;
    let (mut to_client, mut from_client) = client.split();
    let (mut to_server, mut from_server) = server.split();

    let upward = async {
        while let Some(frame) = from_client.next().await {
            let frame = match frame? {
                Frame::Text(text) => Frame::Text(uncompressed_identify(&text).unwrap_or(text)),
                other => other,
            };
            let closing = matches!(frame, Frame::Close(_));
            to_server.send(frame).await?;
            if closing {
                break;
            }
        }
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    let downward = async {
        while let Some(frame) = from_server.next().await {
            let frame = match frame? {
                Frame::Text(text) => {
                    if is_dispatch(&text) {
                        let mut line = text.clone();
                        line.push('\n');
                        if let Err(error) = lock(&shared.file).write_all(line.as_bytes()) {
                            tracing::error!(%error, "cannot append to the recording");
                        }
                    }
                    match redirect_resume(&text, &shared) {
                        Some(rewritten) => Frame::Text(rewritten),
                        None => Frame::Text(text),
                    }
                }
                other => other,
            };
            let closing = matches!(frame, Frame::Close(_));
            to_client.send(frame).await?;
            if closing {
                break;
            }
        }
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    tokio::select! {
        result = upward => result?,
        result = downward => result?,
    }
    Ok(())
}

/// Keeps the query of the handshake request (serenity's `?v=10`) for the upstream address.
struct QueryOf<'a>(&'a mut String);

impl Callback for QueryOf<'_> {
    // The error type is tungstenite's (an HTTP response), not ours.
    #[allow(clippy::result_large_err)]
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        *self.0 = request.uri().query().unwrap_or_default().to_string();
        Ok(response)
    }
}

fn is_dispatch(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Op {
        op: Option<u8>,
    }
    serde_json::from_str::<Op>(text).is_ok_and(|payload| payload.op == Some(0))
}

/// IDENTIFY (op 2) with `compress` turned off; `None` for any other frame.
fn uncompressed_identify(text: &str) -> Option<String> {
    let mut payload: serde_json::Value = serde_json::from_str(text).ok()?;
    if payload.get("op")?.as_u64()? != 2 {
        return None;
    }
    payload
        .get_mut("d")?
        .as_object_mut()?
        .insert("compress".into(), false.into());
    Some(payload.to_string())
}

/// READY with its `resume_gateway_url` remembered as the next upstream and replaced by the
/// relay's own address; `None` for any other frame.
fn redirect_resume(text: &str, shared: &Shared) -> Option<String> {
    if !text.contains("\"READY\"") {
        return None;
    }
    let mut payload: serde_json::Value = serde_json::from_str(text).ok()?;
    if payload.get("t")?.as_str()? != "READY" {
        return None;
    }
    let data = payload.get_mut("d")?.as_object_mut()?;
    let resume = data
        .get("resume_gateway_url")?
        .as_str()?
        .trim_end_matches('/')
        .to_string();
    *lock(&shared.upstream) = resume;
    data.insert("resume_gateway_url".into(), shared.url.clone().into());
    Some(payload.to_string())
}
