//! One delivery attempt of one outbox row to its target, within the target's deadline: a
//! generic webhook gets the JSON body, signed; a Discord webhook gets a message with the
//! archived image attached (multipart) and the jump link. The answer becomes an
//! [`Attempt`]; the error text never holds the URL (a Discord webhook's holds its token).

use crate::archive::backend::Backend;
use std::path::{Component, Path};
use std::time::Duration;

use mjlink_core::notify::Attempt;

use super::sign::signature;
use crate::config::{NotifyKind, NotifyTarget};
use crate::store::OutboxRow;

/// The headers of a generic webhook's request.
pub const SIGNATURE_HEADER: &str = "x-mjlink-signature";
pub const TIMESTAMP_HEADER: &str = "x-mjlink-timestamp";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
pub const EVENT_HEADER: &str = "x-mjlink-event";

/// Largest file attached to a Discord message (Discord's limit for webhooks without boosts).
const DISCORD_MAX_FILE: u64 = 10 * 1024 * 1024;

/// How an attempt ended, and why it failed when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub attempt: Attempt,
    pub error: Option<String>,
}

impl Delivery {
    fn failed(error: String) -> Delivery {
        Delivery {
            attempt: Attempt::Failed,
            error: Some(error),
        }
    }
}

/// Sends `row` to `target` at `now_ms`, within the target's deadline.
pub async fn send(
    client: &reqwest::Client,
    target: &NotifyTarget,
    row: &OutboxRow,
    archive: &Backend,
    now_ms: i64,
) -> Delivery {
    let Some(url) = &target.url else {
        return Delivery::failed("the target has no url".to_string());
    };
    let request = match target.kind {
        NotifyKind::Webhook => {
            let secret = target
                .secret
                .as_ref()
                .map(|secret| secret.expose())
                .unwrap_or_default();
            let timestamp = now_ms.div_euclid(1000);
            client
                .post(url.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    signature(secret.as_bytes(), timestamp, row.body.as_bytes()),
                )
                .header(IDEMPOTENCY_HEADER, &row.key)
                .header(EVENT_HEADER, &row.event)
                .body(row.body.clone())
        }
        NotifyKind::Discord => {
            let (content_type, body) = discord_message(row, archive).await;
            client
                .post(url.expose())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header(IDEMPOTENCY_HEADER, &row.key)
                .body(body)
        }
    };
    let deadline = Duration::from_millis(target.timeout_ms.max(1) as u64);
    let answer = tokio::time::timeout(deadline, async {
        let response = request.send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map(|secs| (secs * 1000.0).min(i64::MAX as f64 / 2.0) as i64);
        // The body is read (within the deadline) so the connection can be reused.
        let _ = response.bytes().await;
        Ok::<_, reqwest::Error>((status, retry_after))
    })
    .await;
    match answer {
        Err(_) => Delivery::failed(format!("no answer within {:.1} s", deadline.as_secs_f64())),
        Ok(Err(error)) => Delivery::failed(crate::causes::of_request(&error)),
        Ok(Ok((status, _))) if status.is_success() => Delivery {
            attempt: Attempt::Delivered,
            error: None,
        },
        Ok(Ok((status, retry_after))) if status == reqwest::StatusCode::TOO_MANY_REQUESTS => Delivery {
            attempt: Attempt::RateLimited {
                retry_after_ms: retry_after,
            },
            error: Some(match retry_after {
                Some(ms) => format!("429 Too Many Requests (Retry-After {:.1} s)", ms as f64 / 1000.0),
                None => "429 Too Many Requests".to_string(),
            }),
        },
        Ok(Ok((status, _))) => Delivery::failed(format!("the receiver answered {status}")),
    }
}

/// A Discord webhook message: the summary and the jump link as its text (no mentions
/// parsed), with the archived file attached when it is there and small enough.
async fn discord_message(row: &OutboxRow, archive: &Backend) -> (String, Vec<u8>) {
    let mut content = mjlink_core::text::cut(&row.summary, 1_700);
    if let Some(jump) = &row.jump_url {
        content.push('\n');
        content.push_str(jump);
    }
    let file = match &row.file {
        Some(relative) => attachment(archive, relative).await,
        None => None,
    };
    let mut payload = serde_json::json!({
        "content": content,
        "allowed_mentions": { "parse": [] },
    });
    let boundary = format!("mjlink-{:016x}", mjlink_core::digest::digest(row.key.as_bytes()));
    let mut body = Vec::new();
    if let Some((name, _)) = &file {
        payload["attachments"] = serde_json::json!([{ "id": 0, "filename": name }]);
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{payload}\r\n"
        )
        .as_bytes(),
    );
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"{name}\"\r\nContent-Type: {}\r\n\r\n",
                content_type(&name)
            )
            .as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The archived file's name and bytes, when it is inside the archive (the folder or the
/// bucket), there, and small enough for Discord.
async fn attachment(archive: &Backend, stored: &str) -> Option<(String, Vec<u8>)> {
    let relative = Path::new(stored);
    if !relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)))
    {
        return None;
    }
    let bytes = archive.read_at_most(stored, DISCORD_MAX_FILE).await.ok()??;
    let name: String = relative
        .file_name()?
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    Some((name, bytes))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "png" => "image/png",
        "webp" => "image/webp",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}
