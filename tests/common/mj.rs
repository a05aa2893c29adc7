//! Midjourney messages for the archive tests: one attachment each, at a URL the test serves.

use serde_json::{json, Value};

/// Midjourney's bot user id.
pub const MJ: &str = "936929561302675456";

/// Bytes that start like a PNG (the archive checks the signature, not the rest), distinct per
/// seed, `size` bytes after the signature.
pub fn png(seed: u8, size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend((0..size).map(|i| ((i as u64 * 2_654_435_761) >> 13) as u8 ^ seed));
    bytes
}

/// A Midjourney message (section 2 of the wire notes: the grid's content, `Image #N` for an
/// upscale) posted at the time its id says, in channel 10 of guild 20, with one attachment
/// (id `id + 1`) at `url`, replying to `reply_to` (type 19 and a `message_reference`).
pub fn message(id: u64, content: &str, url: &str, filename: &str, reply_to: Option<u64>) -> Value {
    let ms = ((id >> 22) as i64) + 1_420_070_400_000;
    let timestamp = chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();
    let mut message = json!({
        "id": id.to_string(), "channel_id": "10", "guild_id": "20",
        "author": {"id": MJ, "username": "Midjourney Bot", "bot": true},
        "content": content, "timestamp": timestamp, "type": if reply_to.is_some() { 19 } else { 0 },
        "attachments": [{"id": (id + 1).to_string(), "filename": filename, "url": url, "size": 1, "content_type": "image/png"}],
    });
    if let Some(parent) = reply_to {
        message["message_reference"] = json!({"channel_id": "10", "message_id": parent.to_string()});
    }
    message
}

/// `message` as a gateway dispatch (`MESSAGE_CREATE`).
pub fn dispatch(message: &Value) -> Value {
    json!({"op": 0, "t": "MESSAGE_CREATE", "s": 1, "d": message})
}
