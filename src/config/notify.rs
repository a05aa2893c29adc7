//! `[[notify]]`: the notification targets, an array of tables (one per target), each with
//! its own small table of keys. A target's address and secret may come from the environment
//! instead of the file: `MJLINK_NOTIFY_<NAME>_URL` and `MJLINK_NOTIFY_<NAME>_SECRET`, NAME
//! being the target's `name` in capitals (`-` as `_`). Both are [`Secret`]s: a Discord webhook's
//! URL holds its token.

use mjlink_core::notify::EventKind;
use mjlink_core::secret::Secret;

use super::values::{kind, list, number, text, Raw};
use super::ConfigError;

/// The name of the array in the file.
pub(super) const SECTION: &str = "notify";

/// Which kind of receiver a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// Any HTTP endpoint: the event as a JSON body, signed (HMAC-SHA256).
    Webhook,
    /// A Discord webhook URL: a message with the image attached and a jump link.
    Discord,
}

/// One `[[notify]]` table.
#[derive(Debug, Clone)]
pub struct NotifyTarget {
    /// Unique; names the target in the outbox, the logs and its environment variables.
    pub name: String,
    pub kind: NotifyKind,
    pub url: Option<Secret>,
    /// The HMAC-SHA256 key of a webhook's signature (required for `webhook`).
    pub secret: Option<Secret>,
    /// The events it wants (empty: all).
    pub events: Vec<EventKind>,
    /// Each request's deadline.
    pub timeout_ms: i64,
    /// A notification not delivered this long after its first attempt is given up.
    pub give_up_after_ms: i64,
}

impl NotifyTarget {
    fn new(name: String, kind: NotifyKind) -> NotifyTarget {
        NotifyTarget {
            name,
            kind,
            url: None,
            secret: None,
            events: Vec::new(),
            timeout_ms: 10_000,
            give_up_after_ms: 24 * 3_600_000,
        }
    }

    /// The environment variable of this target's `field` (`url`, `secret`).
    pub fn env_var(&self, field: &str) -> String {
        format!(
            "MJLINK_NOTIFY_{}_{}",
            self.name.replace('-', "_").to_ascii_uppercase(),
            field.to_ascii_uppercase()
        )
    }
}

/// The keys of a target, for errors.
const KEYS: &str = "name, kind, url, secret, events, timeout_secs, give_up_hours";

/// Whether `name` is a target's variable (`MJLINK_NOTIFY_<NAME>_URL` or `_SECRET`).
pub(super) fn is_target_variable(name: &str) -> bool {
    name.strip_prefix("MJLINK_NOTIFY_")
        .is_some_and(|rest| rest.len() > 4 && (rest.ends_with("_URL") || rest.ends_with("_SECRET")))
}

/// The targets of the file's `notify` value; `error_at(key, at_value, message)` names the key
/// (`notify[0].url`) and where it is.
pub(super) fn from_file(
    value: &toml::Value,
    error_at: impl Fn(&str, bool, String) -> ConfigError,
) -> Result<Vec<NotifyTarget>, ConfigError> {
    let Some(tables) = value.as_array() else {
        return Err(error_at(
            SECTION,
            true,
            "expected [[notify]] tables, one per target".to_string(),
        ));
    };
    let mut targets = Vec::with_capacity(tables.len());
    for (index, table) in tables.iter().enumerate() {
        let key = |name: &str| format!("notify[{index}].{name}");
        let Some(table) = table.as_table() else {
            return Err(error_at(
                &format!("notify[{index}]"),
                true,
                "expected a table".to_string(),
            ));
        };
        if let Some(unknown) = table
            .keys()
            .find(|name| !KEYS.split(", ").any(|known| known == name.as_str()))
        {
            return Err(error_at(
                &key(unknown),
                false,
                format!("unknown key; [[notify]] has {KEYS}"),
            ));
        }
        let get = |name: &str| table.get(name).map(Raw::File);
        let name = match get("name") {
            Some(raw) => self::name(raw).map_err(|message| error_at(&key("name"), true, message))?,
            None => {
                return Err(error_at(
                    &format!("notify[{index}]"),
                    true,
                    "a target needs a `name`".to_string(),
                ))
            }
        };
        let target_kind = match get("kind") {
            Some(raw) => target_kind(raw).map_err(|message| error_at(&key("kind"), true, message))?,
            None => {
                return Err(error_at(
                    &format!("notify[{index}]"),
                    true,
                    "a target needs a `kind` (\"webhook\" or \"discord\")".to_string(),
                ))
            }
        };
        let mut target = NotifyTarget::new(name, target_kind);
        if let Some(raw) = get("url") {
            target.url = Some(url(raw).map_err(|message| error_at(&key("url"), true, message))?);
        }
        if let Some(raw) = get("secret") {
            target.secret = Some(secret(raw).map_err(|message| error_at(&key("secret"), true, message))?);
        }
        if let Some(raw) = get("events") {
            target.events = events(raw).map_err(|message| error_at(&key("events"), true, message))?;
        }
        if let Some(raw) = get("timeout_secs") {
            target.timeout_ms =
                seconds(raw, 0.1, 300.0).map_err(|message| error_at(&key("timeout_secs"), true, message))?;
        }
        if let Some(raw) = get("give_up_hours") {
            target.give_up_after_ms =
                hours(raw).map_err(|message| error_at(&key("give_up_hours"), true, message))?;
        }
        targets.push(target);
    }
    Ok(targets)
}

/// A target's address and secret from its variables, which win over the file.
pub(super) fn apply_env(
    targets: &mut [NotifyTarget],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for target in targets {
        let variable = target.env_var("url");
        if let Some(value) = env(&variable) {
            target.url = Some(url(Raw::Env(&value)).map_err(|message| ConfigError::Invalid {
                key: variable,
                message,
            })?);
        }
        let variable = target.env_var("secret");
        if let Some(value) = env(&variable) {
            target.secret = Some(secret(Raw::Env(&value)).map_err(|message| ConfigError::Invalid {
                key: variable,
                message,
            })?);
        }
    }
    Ok(())
}

/// Every target complete, names unique.
pub(super) fn check(targets: &[NotifyTarget]) -> Result<(), ConfigError> {
    for (index, target) in targets.iter().enumerate() {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            key: format!("notify[{index}].{field}"),
            message,
        };
        if targets[..index].iter().any(|other| other.name == target.name) {
            return Err(invalid(
                "name",
                format!("two targets are named {:?}", target.name),
            ));
        }
        if target.url.is_none() {
            return Err(invalid(
                "url",
                format!(
                    "target {:?} has no url (set it in bot.toml or {})",
                    target.name,
                    target.env_var("url")
                ),
            ));
        }
        if target.kind == NotifyKind::Webhook && target.secret.is_none() {
            return Err(invalid(
                "secret",
                format!(
                    "webhook {:?} needs a secret to sign with (set it in bot.toml or {})",
                    target.name,
                    target.env_var("secret")
                ),
            ));
        }
    }
    Ok(())
}

fn name(raw: Raw<'_>) -> Result<String, String> {
    let name = text(raw)?.trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("expected a name of letters, digits, `-` and `_` (at most 64)".to_string());
    }
    Ok(name)
}

fn target_kind(raw: Raw<'_>) -> Result<NotifyKind, String> {
    match text(raw)?.trim() {
        "webhook" => Ok(NotifyKind::Webhook),
        "discord" => Ok(NotifyKind::Discord),
        other => Err(format!("expected \"webhook\" or \"discord\", got {other:?}")),
    }
}

/// An http(s) URL; never echoed (a Discord webhook's holds its token).
fn url(raw: Raw<'_>) -> Result<Secret, String> {
    let text = text(raw)?;
    let url = text.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .filter(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if rest.is_none() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected an http:// or https:// URL (it is not shown here)".to_string());
    }
    Ok(Secret::new(url))
}

/// A signing key: at least 16 characters, no spaces; never echoed.
fn secret(raw: Raw<'_>) -> Result<Secret, String> {
    let text = text(raw)?;
    let secret = text.trim();
    if secret.len() < 16 || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected at least 16 characters without spaces (it is not shown here)".to_string());
    }
    Ok(Secret::new(secret))
}

fn events(raw: Raw<'_>) -> Result<Vec<EventKind>, String> {
    let names: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
    list(raw)?
        .iter()
        .map(|name| {
            EventKind::from_name(name.trim())
                .ok_or_else(|| format!("unknown event {name:?}; the events are {}", names.join(", ")))
        })
        .collect()
}

fn hours(raw: Raw<'_>) -> Result<i64, String> {
    number(raw)?
        .parse::<f64>()
        .ok()
        .filter(|hours| hours.is_finite() && *hours > 0.0 && *hours <= 24.0 * 30.0)
        .map(|hours| (hours * 3_600_000.0) as i64)
        .ok_or_else(|| "expected hours, more than 0 and at most 720".to_string())
}

fn seconds(raw: Raw<'_>, low: f64, high: f64) -> Result<i64, String> {
    let message = format!("expected seconds from {low} to {high}");
    match raw {
        Raw::File(value) if !(value.is_integer() || value.is_float()) => {
            Err(format!("{message}, got {}", kind(value)))
        }
        _ => number(raw)?
            .parse::<f64>()
            .ok()
            .filter(|secs| secs.is_finite() && (low..=high).contains(secs))
            .map(|secs| (secs * 1000.0) as i64)
            .ok_or(message),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const SIGNING: &str = "a-signing-key-of-some-length";
    const HOOK: &str = "https://discord.com/api/webhooks/1/token-part-xyz";

    fn load(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(Path::new(&path)), env)
    }

    #[test]
    fn notify_targets_load_from_tables_and_secrets_never_show() {
        let config = load(
            &format!(
                "[[notify]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"{SIGNING}\"\nevents = [\"queue_failed\", \"format_drift\"]\ntimeout_secs = 2.5\ngive_up_hours = 0.5\n\n[[notify]]\nname = \"art-feed\"\nkind = \"discord\"\nurl = \"{HOOK}\"\n"
            ),
            |_| None,
        )
        .unwrap();
        assert_eq!(config.notify.len(), 2);
        let ops = &config.notify[0];
        assert_eq!(ops.kind, NotifyKind::Webhook);
        assert_eq!(ops.events, [EventKind::QueueFailed, EventKind::FormatDrift]);
        assert_eq!((ops.timeout_ms, ops.give_up_after_ms), (2_500, 1_800_000));
        assert_eq!(config.notify[1].kind, NotifyKind::Discord);
        assert!(config.notify[1].events.is_empty());
        let shown = format!("{config:?}");
        assert!(
            !shown.contains(SIGNING) && !shown.contains("token-part"),
            "{shown}"
        );
    }

    #[test]
    fn notify_url_and_secret_come_from_the_environment() {
        let config = load("[[notify]]\nname = \"art-feed\"\nkind = \"discord\"\n", |name| {
            (name == "MJLINK_NOTIFY_ART_FEED_URL").then(|| HOOK.to_string())
        })
        .unwrap();
        assert_eq!(config.notify[0].url.as_ref().unwrap().expose(), HOOK);
        let error = load(
            "[[notify]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://x\"\n",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("notify[0].secret") && error.contains("MJLINK_NOTIFY_OPS_SECRET"),
            "{error}"
        );
        assert!(is_target_variable("MJLINK_NOTIFY_OPS_SECRET"));
        assert!(!is_target_variable("MJLINK_NOTIFY_OPS"));
    }

    #[test]
    fn notify_errors_name_the_key_and_place_and_hide_the_value() {
        let error = load(
            "[[notify]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"ftp://secretpart\"\n",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("notify[0].url") && error.contains("line 4"),
            "{error}"
        );
        assert!(!error.contains("secretpart"), "{error}");
        let error = load(
            "[[notify]]\nname = \"a\"\nkind = \"discord\"\nurl = \"http://x\"\ncolour = 1\n",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("notify[0].colour") && error.contains("unknown key"),
            "{error}"
        );
        let error = load(
            "[[notify]]\nname = \"a\"\nkind = \"discord\"\nurl = \"http://x\"\nevents = [\"done\"]\n",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("queue_done"), "{error}");
        let twice = "[[notify]]\nname = \"a\"\nkind = \"discord\"\nurl = \"http://x\"\n";
        let error = load(&format!("{twice}{twice}"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("two targets"), "{error}");
        let error = load("[notify]\nname = \"a\"\n", |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("[[notify]]"), "{error}");
    }
}
