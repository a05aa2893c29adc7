//! How a configuration value is read, whichever table it belongs to: typed TOML from the
//! file, text from the environment (lists comma-separated). Shared by the table of keys and
//! the `[[notify]]` targets.

/// A value as given: typed from the file, text from the environment.
#[derive(Clone, Copy)]
pub(super) enum Raw<'a> {
    File(&'a toml::Value),
    Env(&'a str),
}

/// What a TOML value is, for an error: "a string", "an integer"...
pub(super) fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

pub(super) fn text(raw: Raw<'_>) -> Result<String, String> {
    match raw {
        Raw::Env(text) => Ok(text.to_string()),
        Raw::File(toml::Value::String(text)) => Ok(text.clone()),
        Raw::File(other) => Err(format!("expected a string, got {}", kind(other))),
    }
}

/// A list: an array of strings in the file, comma-separated in the environment.
pub(super) fn list(raw: Raw<'_>) -> Result<Vec<String>, String> {
    match raw {
        Raw::Env(text) => Ok(text
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::to_string)
            .collect()),
        Raw::File(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| "expected a list of strings".to_string()),
        Raw::File(other) => Err(format!("expected a list of strings, got {}", kind(other))),
    }
}

/// The text of a number (an integer or a float in the file).
pub(super) fn number(raw: Raw<'_>) -> Result<String, String> {
    match raw {
        Raw::Env(text) => Ok(text.trim().to_string()),
        Raw::File(toml::Value::Integer(n)) => Ok(n.to_string()),
        Raw::File(toml::Value::Float(n)) => Ok(n.to_string()),
        Raw::File(other) => Err(format!("expected a number, got {}", kind(other))),
    }
}
