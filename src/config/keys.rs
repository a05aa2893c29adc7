//! The table of configuration keys: one row per key, its name in the file (`archive.dir`)
//! and how its value is read and stored. The environment variable is derived from the name
//! (`MJLINK_ARCHIVE_DIR`, see [`env_var`]), so each key is spelled once. The file and the
//! environment go through the same rows: a value from the file is typed TOML, one from the
//! environment is text (lists comma-separated); both are checked the same way.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use mjlink_core::parse::BotIds;
use mjlink_core::secret::Secret;
use mjlink_core::snowflake::Snowflake;

use super::values::{kind, list, number, text, Raw};
use super::{Config, ConfigError};

/// Reads a value into the config, or says in one line what is wrong with it (never echoing
/// a token).
type Set = fn(&mut Config, Raw<'_>) -> Result<(), String>;

/// Every key, in the order they are applied: its name, then how its value is read and stored.
#[rustfmt::skip]
const KEYS: &[(&str, Set)] = &[
    ("database.path",                 |c, v| text(v).map(|path| c.database_path = path.into())),
    ("midjourney.bot_ids",            |c, v| bot_ids(v).map(|ids| c.bot_ids = ids)),
    ("linking.window_hours",          |c, v| window(v).map(|ms| c.window_ms = ms)),
    ("log.filter",                    |c, v| text(v).map(|filter| c.log_filter = filter)),
    ("drift.keep_samples",            |c, v| count(v, 0, 100_000).map(|n| c.drift_keep_samples = n)),
    ("discord.token",                 |c, v| token(v).map(|token| c.discord.token = Some(token))),
    ("discord.api_base",              |c, v| api_base(v).map(|base| c.discord.api_base = base)),
    ("discord.guilds",                |c, v| ids(v).map(|ids| c.discord.guilds = ids)),
    ("discord.channels",              |c, v| ids(v).map(|ids| c.discord.channels = ids)),
    ("discord.direct_messages",       |c, v| boolean(v).map(|on| c.discord.direct_messages = on)),
    ("discord.backfill_on_start",     |c, v| boolean(v).map(|on| c.discord.backfill_on_start = on)),
    ("discord.connect_timeout_secs",  |c, v| within(v, 1, 3600, CONNECT).map(|secs| c.discord.connect_timeout_secs = secs)),
    ("archive.enabled",               |c, v| boolean(v).map(|on| c.archive.enabled = on)),
    ("archive.dir",                   |c, v| text(v).map(|dir| c.archive.dir = dir.into())),
    ("archive.concurrency",           |c, v| within(v, 1, 64, CONCURRENCY).map(|n| c.archive.concurrency = n)),
    ("archive.max_mib",               |c, v| within(v, 1, 4096, MIB).map(|mib: u64| c.archive.max_bytes = mib << 20)),
    ("archive.hosts",                 |c, v| hosts(v).map(|hosts| c.archive.hosts = hosts)),
    ("archive.backend",               |c, v| backend(v).map(|backend| c.archive.backend = backend)),
    ("archive.s3_bucket",             |c, v| bucket(v).map(|bucket| c.archive.s3.bucket = bucket)),
    ("archive.s3_endpoint",           |c, v| api_base(v).map(|url| c.archive.s3.endpoint = Some(url))),
    ("archive.s3_region",             |c, v| word(v).map(|region| c.archive.s3.region = region)),
    ("archive.s3_prefix",             |c, v| prefix(v).map(|prefix| c.archive.s3.prefix = prefix)),
    ("archive.s3_access_key_id",      |c, v| token(v).map(|key| c.archive.s3.access_key_id = Some(key))),
    ("archive.s3_secret_access_key",  |c, v| token(v).map(|key| c.archive.s3.secret_access_key = Some(key))),
    ("archive.s3_virtual_hosted",     |c, v| boolean(v).map(|on| c.archive.s3.virtual_hosted = on)),
    ("archive.s3_part_mib",           |c, v| within(v, 5, 512, PART_MIB).map(|mib: u64| c.archive.s3.part_bytes = mib << 20)),
    ("queue.enabled",                 |c, v| boolean(v).map(|on| c.queue.enabled = on)),
    ("queue.user_token",              |c, v| token(v).map(|token| c.queue.user_token = Some(token))),
    ("queue.user_id",                 |c, v| id(v).map(|id| c.queue.user_id = Some(id))),
    ("queue.guild_id",                |c, v| id(v).map(|id| c.queue.guild_id = Some(id))),
    ("queue.channel_id",              |c, v| id(v).map(|id| c.queue.channel_id = Some(id))),
    ("queue.application_id",          |c, v| id(v).map(|id| c.queue.application_id = id)),
    ("queue.command_id",              |c, v| id(v).map(|id| c.queue.command_id = id)),
    ("queue.command_version",         |c, v| id(v).map(|id| c.queue.command_version = id)),
    ("queue.session_id",              |c, v| session(v).map(|session| c.queue.session_id = session)),
    ("queue.max_in_flight",           |c, v| count(v, 1, 12).map(|n| c.queue.max_in_flight = n)),
    ("queue.max_waiting",             |c, v| count(v, 0, 100).map(|n| c.queue.max_waiting = n)),
    ("queue.daily_cap",               |c, v| count(v, 0, 100_000).map(|n| c.queue.daily_cap = Some(n as u32).filter(|cap| *cap > 0))),
    ("queue.spacing_seconds",         |c, v| seconds(v).map(|ms| c.queue.spacing_ms = ms)),
    ("queue.wait_timeout_minutes",    |c, v| minutes(v).map(|ms| c.queue.wait_timeout_ms = ms)),
    ("queue.render_timeout_minutes",  |c, v| minutes(v).map(|ms| c.queue.render_timeout_ms = ms)),
    ("queue.upscale_timeout_minutes", |c, v| minutes(v).map(|ms| c.queue.upscale_timeout_ms = ms)),
    ("queue.max_attempts",            |c, v| count(v, 1, 20).map(|n| c.queue.max_attempts = n as i64)),
    ("queue.retry_wait_seconds",      |c, v| seconds(v).map(|ms| c.queue.retry_wait_ms = ms)),
    ("queue.queue_full_wait_seconds", |c, v| seconds(v).map(|ms| c.queue.queue_full_wait_ms = ms)),
    ("commands.enabled",              |c, v| boolean(v).map(|on| c.commands.enabled = on)),
    ("commands.global",               |c, v| boolean(v).map(|on| c.commands.global = on)),
    ("commands.read_roles",           |c, v| ids(v).map(|ids| c.commands.read_roles = ids)),
    ("commands.read_users",           |c, v| ids(v).map(|ids| c.commands.read_users = ids)),
    ("commands.queue_roles",          |c, v| ids(v).map(|ids| c.commands.queue_roles = ids)),
    ("commands.queue_users",          |c, v| ids(v).map(|ids| c.commands.queue_users = ids)),
    ("commands.per_user_per_minute",  |c, v| within(v, 1, 600, PER_MINUTE).map(|n| c.commands.per_user_per_minute = n)),
    ("web.enabled",                   |c, v| boolean(v).map(|on| c.web.enabled = on)),
    ("web.bind",                      |c, v| text(v).map(|bind| c.web.bind = bind)),
    ("web.token",                     |c, v| token(v).map(|token| c.web.token = Some(token))),
    ("commands.defer_after_ms",       |c, v| within(v, 0, 2500, DEFER).map(|ms| c.commands.defer_after_ms = ms)),
];

const CONCURRENCY: &str = "expected a number of parallel downloads from 1 to 64";
const CONNECT: &str = "expected seconds from 1 to 3600";
const MIB: &str = "expected a size in MiB from 1 to 4096";
const PART_MIB: &str = "expected a part size in MiB from 5 to 512 (S3 refuses parts under 5 MiB)";
const PER_MINUTE: &str = "expected commands per minute from 1 to 600";
const DEFER: &str = "expected milliseconds from 0 to 2500 (Discord allows 3 s for the first reply)";

/// The environment variable of a key: `archive.dir` -> `MJLINK_ARCHIVE_DIR`.
pub fn env_var(key: &str) -> String {
    format!("MJLINK_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Applies `text` (the file at `path`): every key is checked to be known before any is read.
/// Every error names the key and where it is (line and column).
pub(super) fn apply_file(config: &mut Config, path: &Path, text: &str) -> Result<(), ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|error| ConfigError::Syntax {
        path: path.to_path_buf(),
        at: error.span().map(|span| at(text, span.start)).unwrap_or_default(),
        message: error.message().trim().replace('\n', "; "),
    })?;
    let spans = toml_edit::ImDocument::parse(text).ok();
    // `value`: point at the key's value (a bad value), else at its name (an unknown key).
    let error_at = |key: &str, value: bool, message: String| ConfigError::InFile {
        path: path.to_path_buf(),
        key: key.to_string(),
        at: spans
            .as_ref()
            .and_then(|document| place(document, key, value))
            .map(|offset| at(text, offset))
            .unwrap_or_default(),
        message,
    };
    let invalid = |key: &str, message: String| error_at(key, true, message);
    for (section, value) in &table {
        if section == super::notify::SECTION {
            config.notify =
                super::notify::from_file(value, |key, value, message| error_at(key, value, message))?;
            continue;
        }
        let known: Vec<&str> = KEYS
            .iter()
            .filter_map(|(name, _)| name.strip_prefix(section.as_str())?.strip_prefix('.'))
            .collect();
        if known.is_empty() {
            let mut sections: Vec<&str> = KEYS
                .iter()
                .filter_map(|(name, _)| Some(name.split_once('.')?.0))
                .collect();
            sections.dedup();
            sections.push("[[notify]]");
            return Err(invalid(
                section,
                format!("unknown section; the sections are {}", sections.join(", ")),
            ));
        }
        let Some(values) = value.as_table() else {
            return Err(invalid(section, format!("expected a [{section}] table")));
        };
        if let Some(unknown) = values.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(error_at(
                &format!("{section}.{unknown}"),
                false,
                format!("unknown key; [{section}] has {}", known.join(", ")),
            ));
        }
    }
    for (name, set) in KEYS {
        let value = name
            .split_once('.')
            .and_then(|(section, key)| table.get(section)?.get(key));
        if let Some(value) = value {
            set(config, Raw::File(value)).map_err(|message| invalid(name, message))?;
        }
    }
    Ok(())
}

/// Where `key` (`section` or `section.key`) is in the file: its value when `value` (and it
/// has a place of its own), else its name.
fn place(document: &toml_edit::ImDocument<&str>, key: &str, value: bool) -> Option<usize> {
    let (section, name) = match key.split_once('.') {
        Some((section, name)) => (section, Some(name)),
        None => (key, None),
    };
    // `notify[2]`: the third table of an array of tables.
    let (section, index) = match section.split_once('[') {
        Some((section, rest)) => (section, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (section, None),
    };
    let (section_key, section_item) = document.as_table().get_key_value(section)?;
    let table: &dyn toml_edit::TableLike = match (index, section_item) {
        (Some(index), toml_edit::Item::ArrayOfTables(tables)) => tables.get(index)?,
        _ => section_item.as_table_like()?,
    };
    let Some(name) = name else {
        let own = match (index, section_item) {
            (Some(index), toml_edit::Item::ArrayOfTables(tables)) => tables.get(index).and_then(|t| t.span()),
            _ => section_item.span(),
        };
        return own.or_else(|| section_key.span()).map(|span| span.start);
    };
    let (key, item) = table.get_key_value(name)?;
    item.span()
        .filter(|_| value && !matches!(item, toml_edit::Item::Table(_)))
        .or_else(|| key.span())
        .map(|span| span.start)
}

/// ` (line L, column C)` of byte `offset` in `text`.
fn at(text: &str, offset: usize) -> String {
    let (line, column) = mjlink_core::text::line_column(text, offset);
    format!(" (line {line}, column {column})")
}

/// Refuses an `MJLINK_*` variable among `names` that is no key's (a misspelled one would
/// otherwise be ignored), suggesting the nearest known name.
pub fn check_environment(names: impl IntoIterator<Item = String>) -> Result<(), ConfigError> {
    let known: Vec<String> = KEYS.iter().map(|(name, _)| env_var(name)).collect();
    for name in names {
        if !name.starts_with("MJLINK_") || known.contains(&name) || super::notify::is_target_variable(&name) {
            continue;
        }
        let hint = match mjlink_core::text::nearest(&name, known.iter().map(String::as_str)) {
            Some(nearest) => format!(" (did you mean {nearest}?)"),
            None => " (bot.toml.example lists every key; its variable is MJLINK_ and the key in capitals, `.` as `_`)"
                .to_string(),
        };
        return Err(ConfigError::UnknownVariable { name, hint });
    }
    Ok(())
}

/// Applies the environment variables `env` returns.
pub(super) fn apply_env(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (name, set) in KEYS {
        let variable = env_var(name);
        if let Some(value) = env(&variable) {
            set(config, Raw::Env(&value)).map_err(|message| ConfigError::Invalid {
                key: variable,
                message,
            })?;
        }
    }
    Ok(())
}

fn boolean(raw: Raw<'_>) -> Result<bool, String> {
    match raw {
        Raw::File(toml::Value::Boolean(value)) => Ok(*value),
        Raw::File(other) => Err(format!("expected true or false, got {}", kind(other))),
        Raw::Env(text) => match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            other => Err(format!("expected true or false, got {other:?}")),
        },
    }
}

/// A whole number from `low` to `high`, else `message`.
fn within<T: FromStr + PartialOrd>(raw: Raw<'_>, low: T, high: T, message: &str) -> Result<T, String> {
    number(raw)?
        .parse::<T>()
        .ok()
        .filter(|n| (low..=high).contains(n))
        .ok_or_else(|| message.to_string())
}

fn count(raw: Raw<'_>, low: usize, high: usize) -> Result<usize, String> {
    within(
        raw,
        low,
        high,
        &format!("expected a whole number from {low} to {high}"),
    )
}

/// A duration given as a number that `fits`, in milliseconds.
fn millis(raw: Raw<'_>, fits: fn(f64) -> bool, unit_ms: f64, message: &str) -> Result<i64, String> {
    number(raw)?
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && fits(*n))
        .map(|n| (n * unit_ms) as i64)
        .ok_or_else(|| message.to_string())
}

fn minutes(raw: Raw<'_>) -> Result<i64, String> {
    let fits = |m: f64| m > 0.0 && m <= 24.0 * 60.0;
    millis(
        raw,
        fits,
        60_000.0,
        "expected minutes, more than 0 and at most a day",
    )
}

fn seconds(raw: Raw<'_>) -> Result<i64, String> {
    let fits = |s: f64| (0.0..=3600.0).contains(&s);
    millis(raw, fits, 1000.0, "expected seconds from 0 to 3600")
}

fn window(raw: Raw<'_>) -> Result<i64, String> {
    let text = number(raw)?;
    let hours = text
        .parse::<f64>()
        .map_err(|_| format!("expected a number of hours, got {text:?}"))?;
    if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0) {
        return Err(format!("expected hours between 0 and 8760, got {hours}"));
    }
    Ok((hours * 3_600_000.0) as i64)
}

fn id(raw: Raw<'_>) -> Result<Snowflake, String> {
    Snowflake::parse(text(raw)?.trim()).ok_or_else(|| "expected a Discord id (digits only)".to_string())
}

fn ids(raw: Raw<'_>) -> Result<BTreeSet<Snowflake>, String> {
    list(raw)?
        .iter()
        .map(|id| {
            let id = id.trim();
            Snowflake::parse(id).ok_or_else(|| format!("{id:?} is not a Discord id (digits only)"))
        })
        .collect()
}

fn bot_ids(raw: Raw<'_>) -> Result<BotIds, String> {
    let ids = ids(raw)?;
    if ids.is_empty() {
        return Err("at least one Midjourney bot id is needed".to_string());
    }
    Ok(BotIds(ids))
}

fn hosts(raw: Raw<'_>) -> Result<Vec<String>, String> {
    let hosts: Vec<String> = list(raw)?
        .iter()
        .map(|host| host.trim().to_ascii_lowercase())
        .filter(|host| !host.is_empty())
        .collect();
    if hosts.is_empty() || hosts.iter().any(|host| host.contains(['/', ':', ' '])) {
        return Err("expected host names like cdn.discordapp.com".to_string());
    }
    Ok(hosts)
}

fn backend(raw: Raw<'_>) -> Result<super::Backend, String> {
    match text(raw)?.trim().to_ascii_lowercase().as_str() {
        "fs" => Ok(super::Backend::Fs),
        "s3" => Ok(super::Backend::S3),
        other => Err(format!("expected \"fs\" or \"s3\", got {other:?}")),
    }
}

/// An S3 bucket name: 3 to 63 lowercase letters, digits, `.` and `-` (the rules every
/// S3-compatible store shares).
fn bucket(raw: Raw<'_>) -> Result<String, String> {
    let bucket = text(raw)?.trim().to_string();
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    if !(3..=63).contains(&bucket.len()) || !bucket.chars().all(allowed) {
        return Err(format!(
            "expected a bucket name of 3 to 63 lowercase letters, digits, '.' and '-', got {bucket:?}"
        ));
    }
    Ok(bucket)
}

/// One word without spaces (a region such as `us-east-1`, `auto`, `garage`).
fn word(raw: Raw<'_>) -> Result<String, String> {
    let word = text(raw)?.trim().to_string();
    if word.is_empty() || word.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("expected one word such as us-east-1, got {word:?}"));
    }
    Ok(word)
}

/// Where the archive's keys start in the bucket: folder names separated by `/` (`mjlink/`),
/// or nothing. Stored with one trailing `/` when not empty.
fn prefix(raw: Raw<'_>) -> Result<String, String> {
    let text = text(raw)?;
    let trimmed = text.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let parts_ok = trimmed.split('/').all(|part| {
        !part.is_empty() && part != "." && part != ".." && !part.chars().any(|c| c.is_control() || c == '\\')
    });
    if !parts_ok {
        return Err(format!(
            "expected folder names separated by '/', without '.', '..' or empty parts, got {text:?}"
        ));
    }
    Ok(format!("{trimmed}/"))
}

fn session(raw: Raw<'_>) -> Result<String, String> {
    let session = text(raw)?.trim().to_string();
    if session.is_empty() || !session.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("expected letters and digits".to_string());
    }
    Ok(session)
}

/// A token as pasted: surrounding white space and a leading "Bot " are tolerated; anything
/// else that cannot be a token is refused without echoing it.
fn token(raw: Raw<'_>) -> Result<Secret, String> {
    let text = text(raw)?;
    let token = text.trim();
    let token = token.strip_prefix("Bot ").unwrap_or(token).trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token is empty or contains spaces (it is not shown here)".to_string());
    }
    Ok(Secret::new(token))
}

/// `https://discord.com`, `http://127.0.0.1:8080`: scheme and authority, no path.
fn api_base(raw: Raw<'_>) -> Result<String, String> {
    let text = text(raw)?;
    let base = text.trim().trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| format!("expected an http:// or https:// URL, got {base:?}"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "expected scheme and host only, like https://discord.com, got {base:?}"
        ));
    }
    Ok(base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_follow_the_key_names() {
        assert_eq!(env_var("archive.dir"), "MJLINK_ARCHIVE_DIR");
        assert_eq!(
            env_var("queue.queue_full_wait_seconds"),
            "MJLINK_QUEUE_QUEUE_FULL_WAIT_SECONDS"
        );
        let mut names: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len(), "a key is listed twice");
    }

    /// bot.toml.example documents every key of the table, in its section, with its
    /// environment variable; and nothing else (it loads).
    #[test]
    fn the_example_file_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bot.toml.example");
        let example = std::fs::read_to_string(&path).unwrap();
        let mut section = "";
        let mut documented = BTreeSet::new();
        for line in example.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
                section = name;
            } else if let Some((key, _)) = line.trim_start_matches("# ").split_once(" = ") {
                documented.insert(format!("{section}.{}", key.trim()));
            }
        }
        for (name, _) in KEYS {
            assert!(documented.contains(*name), "bot.toml.example lacks {name}");
            assert!(
                example.contains(&env_var(name)),
                "bot.toml.example does not mention {}",
                env_var(name)
            );
        }
        Config::load(Some(&path), |_| None).unwrap();
    }

    #[test]
    fn file_values_are_typed_and_errors_name_the_key_and_file() {
        let file = |text: &str| {
            let mut config = Config::default();
            apply_file(&mut config, Path::new("bot.toml"), text).map(|()| config)
        };
        let error = file("[archive]\nenabled = \"yes\"\n").unwrap_err().to_string();
        assert!(
            error.contains("archive.enabled") && error.contains("bot.toml"),
            "{error}"
        );
        let error = file("[archive]\ncolour = 1\n").unwrap_err().to_string();
        assert!(
            error.contains("archive.colour") && error.contains("unknown key"),
            "{error}"
        );
        let error = file("archive = 1\n").unwrap_err().to_string();
        assert!(error.contains("[archive] table"), "{error}");
        let error = file("[queue]\nuser_token = 12\n").unwrap_err().to_string();
        assert!(error.contains("queue.user_token"), "{error}");
        let config =
            file("[archive]\nmax_mib = 2\nconcurrency = 8\n[queue]\ndaily_cap = 0\nspacing_seconds = 0\n")
                .unwrap();
        assert_eq!(config.archive.max_bytes, 2 << 20);
        assert_eq!(config.archive.concurrency, 8);
        assert_eq!(config.queue.daily_cap, None);
        assert_eq!(config.queue.spacing_ms, 0);
        assert!(file("[queue]\nwait_timeout_minutes = 0\n").is_err());
        assert!(file("[archive]\nconcurrency = 1.5\n").is_err());
    }
}
