//! The gateway relay: a WebSocket server on 127.0.0.1 between serenity and Discord's gateway.
//! serenity stays the client (login, heartbeats, resume, slash commands); the relay forwards
//! every frame both ways and hands each dispatch frame from Discord, exactly as it arrived, to
//! the live path ([`crate::ingest::live`]), which makes the events of the raw JSON (serenity's
//! typed model drops fields and whole dispatches it cannot read). With `mjlink record` it
//! also appends each dispatch frame to the recording.
//!
//! Two things are changed on the way, never in what is handed over or recorded: IDENTIFY
//! asks for uncompressed payloads (so every frame is readable text; a compressed frame that
//! arrives anyway is inflated), and READY's `resume_gateway_url` points back at the relay (so
//! resumed sessions pass through it too). Only frames from Discord are handed over or
//! recorded: IDENTIFY, which carries the token, goes the other way.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message as Frame;

/// A running relay; dropping it stops accepting connections.
pub struct Relay {
    /// The address serenity connects to instead of the gateway.
    pub url: String,
    /// Why the last connection through the relay failed, if one did.
    pub last_error: Arc<Mutex<Option<String>>>,
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
    /// The recording, when asked for.
    file: Option<Mutex<std::fs::File>>,
    /// Where every dispatch frame goes, in the order received.
    frames: mpsc::UnboundedSender<String>,
    url: String,
    /// Attempts to reach the gateway that failed in a row (0 after a success): the wait
    /// before the next grows with it (`retry::reconnect_wait_secs`).
    failures: AtomicU32,
    /// A compressed frame was seen (warned once).
    warned_compressed: AtomicBool,
}

/// Starts the relay in front of `upstream` (a `ws://` or `wss://` gateway address without a
/// query). Every dispatch frame is sent to `frames`, and appended to `recording` when given.
pub async fn start(
    upstream: &str,
    recording: Option<&Path>,
    frames: mpsc::UnboundedSender<String>,
) -> std::io::Result<Relay> {
    let file = match recording {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new().create(true).append(true).open(path)?,
        )),
        None => None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let shared = Arc::new(Shared {
        upstream: Mutex::new(upstream.trim_end_matches('/').to_string()),
        file,
        frames,
        url: url.clone(),
        warned_compressed: AtomicBool::new(false),
        failures: AtomicU32::new(0),
    });
    let last_error = Arc::new(Mutex::new(None));
    let failures = Arc::clone(&last_error);
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = Arc::clone(&shared);
            let failures = Arc::clone(&failures);
            tokio::spawn(async move {
                if let Err(error) = relay(stream, shared).await {
                    tracing::warn!("the gateway connection ended: {error}");
                    *lock(&failures) = Some(error.to_string());
                }
            });
        }
    });
    Ok(Relay {
        url,
        last_error,
        accept,
    })
}

/// How long connecting to the gateway may take.
const CONNECT: std::time::Duration = std::time::Duration::from_secs(20);

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
    // After failed attempts in a row, wait longer before the next (serenity's client waits
    // here for its HELLO).
    let failed = shared.failures.load(Ordering::Relaxed);
    let wait = mjlink_core::retry::reconnect_wait_secs(failed);
    if wait > 0 {
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    let connected =
        match tokio::time::timeout(CONNECT, tokio_tungstenite::connect_async(upstream_url.as_str())).await {
            Err(_) => Err(format!(
                "no answer from the gateway at {upstream_url} within {} s",
                CONNECT.as_secs()
            )),
            Ok(Err(error)) => Err(format!(
                "cannot connect to the gateway at {upstream_url}: {error}"
            )),
            Ok(Ok(connected)) => Ok(connected),
        };
    let (server, _) = match connected {
        Ok(connected) => {
            shared.failures.store(0, Ordering::Relaxed);
            connected
        }
        Err(reason) => {
            let failures = shared.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            return Err(format!(
                "{reason} (attempt {failures}; the next waits {} s more)",
                mjlink_core::retry::reconnect_wait_secs(failures)
            )
            .into());
        }
    };
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
                Frame::Text(text) => Frame::Text(received(text, &shared)),
                Frame::Binary(bytes) => match inflate(&bytes) {
                    Some(text) => {
                        if !shared.warned_compressed.swap(true, Ordering::Relaxed) {
                            tracing::warn!("the gateway sent compressed frames although the relay asked for none; inflating them");
                        }
                        Frame::Text(received(text, &shared))
                    }
                    None => {
                        tracing::warn!(
                            bytes = bytes.len(),
                            "a binary gateway frame that is not zlib text; passed on unread"
                        );
                        Frame::Binary(bytes)
                    }
                },
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

/// A text frame from Discord: a dispatch is recorded (when asked) and handed to the live
/// path exactly as received; the frame serenity gets back may be rewritten (READY).
fn received(text: String, shared: &Shared) -> String {
    if is_dispatch(&text) {
        if let Some(file) = &shared.file {
            let mut line = text.clone();
            line.push('\n');
            if let Err(error) = lock(file).write_all(line.as_bytes()) {
                tracing::error!(%error, "cannot append to the recording");
            }
        }
        // The live path may have stopped (shutdown): nothing is waiting for the frame.
        let _ = shared.frames.send(text.clone());
    }
    redirect_resume(&text, shared).unwrap_or(text)
}

/// A zlib-compressed payload (IDENTIFY's `compress`), inflated to text; `None` otherwise.
fn inflate(bytes: &[u8]) -> Option<String> {
    let mut text = String::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take(64 * 1024 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_is_made_uncompressed_and_nothing_else_is_touched() {
        let identify = r#"{"op":2,"d":{"token":"Bot x","compress":true,"intents":1}}"#;
        let rewritten: serde_json::Value =
            serde_json::from_str(&uncompressed_identify(identify).unwrap()).unwrap();
        assert_eq!(rewritten["d"]["compress"], false);
        assert_eq!(rewritten["d"]["intents"], 1);
        assert!(uncompressed_identify(r#"{"op":1,"d":5}"#).is_none());
        assert!(uncompressed_identify("not json").is_none());
    }

    #[test]
    fn compressed_frames_are_inflated() {
        let text = r#"{"op":0,"t":"MESSAGE_CREATE","s":3,"d":{"id":"1"}}"#;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        assert_eq!(inflate(&encoder.finish().unwrap()).as_deref(), Some(text));
        assert_eq!(inflate(b"plain bytes"), None);
    }
}
