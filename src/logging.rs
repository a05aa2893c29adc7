//! The log's one way out. Every event the subscriber formats is written through [`line`],
//! which replaces each secret registered with [`hide`] by `***` before a byte reaches
//! stderr. This holds whatever produced the text: our own events, serenity's, tungstenite's
//! or hyper's at trace level (which print raw gateway frames, IDENTIFY with its token, and
//! request headers), a Debug dump of a request. The mechanism is the writer, not each call
//! site: a crate that starts logging something new cannot leak a token.

use std::io::Write;
use std::sync::RwLock;

use mjlink_core::secret::Secret;

/// What replaces a secret in the log.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Secrets shorter than this are not looked for (they would mask ordinary words); no real
/// token is that short.
const SHORTEST: usize = 8;

/// From now on, `secret` never appears in the log.
pub fn hide(secret: &Secret) {
    let value = secret.expose();
    if value.len() < SHORTEST {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !secrets.iter().any(|known| known == value) {
        secrets.push(value.to_string());
        // Longest first: a secret containing another is masked whole.
        secrets.sort_by_key(|known| std::cmp::Reverse(known.len()));
    }
}

/// Every secret of the configuration (the bot token, the queue's user token, the web token,
/// each notification target's URL, with its path alone too, and signing key).
pub fn hide_secrets(config: &crate::config::Config) {
    for secret in [&config.discord.token, &config.queue.user_token, &config.web.token]
        .into_iter()
        .flatten()
    {
        hide(secret);
    }
    for target in &config.notify {
        for secret in [&target.url, &target.secret].into_iter().flatten() {
            hide(secret);
        }
        // A client that logs a request line prints the path without the host: a Discord
        // webhook's path holds its token.
        if let Some(path) = target.url.as_ref().and_then(|url| {
            let rest = url.expose().split_once("://")?.1;
            Some(&rest[rest.find('/')?..])
        }) {
            if path.len() > 1 {
                hide(&Secret::new(path));
            }
        }
    }
}

/// `text` with every hidden secret masked.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut text = text.to_string();
    for secret in secrets.iter() {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

/// One log event's text, kept until the subscriber is done with it, then masked and written
/// to stderr in one piece.
#[derive(Default)]
pub struct Line {
    buffer: Vec<u8>,
}

/// The subscriber's writer (`fmt().with_writer(mjlink::logging::line)`).
pub fn line() -> Line {
    Line::default()
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = redact(&String::from_utf8_lossy(&self.buffer));
        self.buffer.clear();
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(text.as_bytes())?;
        stderr.flush()
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_secrets_are_masked_wherever_they_appear() {
        hide(&Secret::new("abcdefgh.ijkl"));
        hide(&Secret::new("short"));
        assert_eq!(
            redact(r#"{"op":2,"d":{"token":"Bot abcdefgh.ijkl"}} and abcdefgh.ijkl"#),
            r#"{"op":2,"d":{"token":"Bot ***"}} and ***"#
        );
        assert_eq!(redact("a short word"), "a short word");
    }
}
