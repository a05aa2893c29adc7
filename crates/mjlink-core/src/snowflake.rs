//! Discord snowflakes: the one place where ids are converted.
//!
//! Discord sends ids as decimal strings (sometimes as JSON numbers); SQLite stores
//! signed 64-bit integers. Every conversion between the three goes through here.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds between the Unix epoch and Discord's epoch (2015-01-01T00:00:00Z).
pub const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// A Discord id (message, channel, guild, user, attachment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Snowflake(pub u64);

impl Snowflake {
    /// The value SQLite stores. Snowflakes fit in 63 bits for the next few centuries;
    /// the cast is a bit-preserving reinterpretation either way, so it round-trips.
    pub fn to_sql(self) -> i64 {
        self.0 as i64
    }

    /// Inverse of [`Snowflake::to_sql`].
    pub fn from_sql(value: i64) -> Self {
        Snowflake(value as u64)
    }

    /// Unix milliseconds at which Discord minted this id.
    pub fn timestamp_ms(self) -> i64 {
        ((self.0 >> 22) as i64).saturating_add(DISCORD_EPOCH_MS)
    }

    /// The smallest snowflake minted at `unix_ms` (for `after=` queries and windows).
    pub fn from_timestamp_ms(unix_ms: i64) -> Self {
        let since_epoch = unix_ms.saturating_sub(DISCORD_EPOCH_MS).max(0) as u64;
        Snowflake(since_epoch << 22)
    }

    /// Parses a decimal id; `None` for anything else (empty, signs, overflow, letters).
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<u64>().ok().map(Snowflake)
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SnowflakeVisitor;
        impl Visitor<'_> for SnowflakeVisitor {
            type Value = Snowflake;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Discord id as a decimal string or an unsigned integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Snowflake, E> {
                Ok(Snowflake(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Snowflake, E> {
                u64::try_from(v)
                    .map(Snowflake)
                    .map_err(|_| E::custom("negative id"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Snowflake, E> {
                Snowflake::parse(v).ok_or_else(|| E::custom(format!("not a Discord id: {v:.40}")))
            }
        }
        deserializer.deserialize_any(SnowflakeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_in_both_directions() {
        let id = Snowflake(1_128_641_343_909_007_401);
        assert_eq!(Snowflake::from_sql(id.to_sql()), id);
        assert_eq!(
            Snowflake::from_sql(Snowflake(u64::MAX).to_sql()),
            Snowflake(u64::MAX)
        );
        // The sample payload's timestamp is 2023-07-12T10:57:45.530000+00:00.
        assert_eq!(id.timestamp_ms(), 1_689_159_465_530);
        assert!(Snowflake::from_timestamp_ms(id.timestamp_ms()) <= id);
    }

    #[test]
    fn parses_strings_and_numbers() {
        let from_str: Snowflake = serde_json::from_str("\"936929561302675456\"").unwrap();
        let from_num: Snowflake = serde_json::from_str("936929561302675456").unwrap();
        assert_eq!(from_str, from_num);
        assert!(serde_json::from_str::<Snowflake>("\"-1\"").is_err());
        assert!(serde_json::from_str::<Snowflake>("\"99999999999999999999999\"").is_err());
        assert!(serde_json::from_str::<Snowflake>("-5").is_err());
        assert_eq!(
            serde_json::to_string(&from_str).unwrap(),
            "\"936929561302675456\""
        );
    }
}
