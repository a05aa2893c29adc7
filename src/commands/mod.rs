//! Slash commands. Each command parses its arguments, calls a function of [`answers`] that
//! builds a [`Reply`] from the database, and [`discord`] sends it. [`Reply::fit`] keeps every
//! reply within Discord's limits, truncating or dropping with a note instead of failing.
//!
//! - [`answers`]: `/lineage`, `/search`, `/stats`, `/queue`, `/export` as functions of the
//!   store (no Discord types), tested on fixture databases;
//! - [`access`]: who may read and who may drive the queue, and the per-user rate limit (pure,
//!   time passed in);
//! - [`discord`]: registration and the interaction handler (serenity).

pub use mjlink_core::access;
pub mod answers;
pub mod discord;

/// Discord's limits for one message.
pub const MAX_CONTENT: usize = 2000;
pub const MAX_EMBEDS: usize = 10;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
/// All text of all embeds of one message.
pub const MAX_EMBED_TOTAL: usize = 6000;
pub const MAX_FILES: usize = 10;
/// What a bot may attach when the interaction does not say (`attachment_size_limit`).
pub const DEFAULT_ATTACHMENT_LIMIT: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Embed {
    pub title: String,
    pub description: String,
    pub url: Option<String>,
    /// (name, value, inline)
    pub fields: Vec<(String, String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileData {
    /// A file of the archive (its recorded path), read when sent.
    Archived(String),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub data: FileData,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub custom_id: String,
    pub label: String,
    pub disabled: bool,
}

/// A reply, independent of Discord's types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub content: String,
    pub embeds: Vec<Embed>,
    pub files: Vec<File>,
    pub buttons: Vec<Button>,
    /// Seen only by the user who asked (refusals and errors).
    pub ephemeral: bool,
}

pub use mjlink_core::text::cut;

impl Reply {
    /// One clear sentence, only for the user who asked.
    pub fn refusal(text: impl Into<String>) -> Reply {
        Reply {
            content: text.into(),
            ephemeral: true,
            ..Reply::default()
        }
    }

    pub fn text(text: impl Into<String>) -> Reply {
        Reply {
            content: text.into(),
            ..Reply::default()
        }
    }

    /// Within Discord's limits: long texts cut, extra embeds, fields and files dropped, each
    /// with a note in the content; files over `attachment_limit` in total are left out.
    pub fn fit(mut self, attachment_limit: u64) -> Reply {
        let mut notes = Vec::new();
        if self.embeds.len() > MAX_EMBEDS {
            notes.push(format!("{} more not shown", self.embeds.len() - MAX_EMBEDS));
            self.embeds.truncate(MAX_EMBEDS);
        }
        let mut total = 0usize;
        let mut kept = Vec::new();
        for mut embed in std::mem::take(&mut self.embeds) {
            embed.title = cut(&embed.title, MAX_TITLE);
            embed.description = cut(&embed.description, MAX_DESCRIPTION);
            if embed.fields.len() > MAX_FIELDS {
                let hidden = embed.fields.len() - (MAX_FIELDS - 1);
                embed.fields.truncate(MAX_FIELDS - 1);
                embed
                    .fields
                    .push(("…".to_string(), format!("{hidden} more not shown"), false));
            }
            for (name, value, _) in &mut embed.fields {
                *name = cut(name, MAX_FIELD_NAME);
                *value = cut(value, MAX_FIELD_VALUE);
            }
            let size = embed.title.chars().count()
                + embed.description.chars().count()
                + embed
                    .fields
                    .iter()
                    .map(|(n, v, _)| n.chars().count() + v.chars().count())
                    .sum::<usize>();
            if total + size > MAX_EMBED_TOTAL {
                notes.push("some details were left out (Discord's size limit)".to_string());
                break;
            }
            total += size;
            kept.push(embed);
        }
        self.embeds = kept;
        let mut bytes = 0u64;
        let mut files = Vec::new();
        let mut left_out = 0usize;
        for file in std::mem::take(&mut self.files) {
            if files.len() < MAX_FILES && bytes + file.bytes <= attachment_limit {
                bytes += file.bytes;
                files.push(file);
            } else {
                left_out += 1;
            }
        }
        if left_out > 0 {
            notes.push(format!(
                "{left_out} file(s) not attached (Discord allows {MAX_FILES} files and {} MiB per message)",
                attachment_limit / (1024 * 1024)
            ));
        }
        self.files = files;
        if !notes.is_empty() {
            let note = format!("\n({})", notes.join("; "));
            let room = MAX_CONTENT.saturating_sub(note.chars().count());
            self.content = format!("{}{note}", cut(&self.content, room));
        }
        self.content = cut(&self.content, MAX_CONTENT);
        self.buttons.truncate(5);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_replies_are_cut_with_a_note_not_failed() {
        let embed = Embed {
            title: "t".repeat(400),
            description: "d".repeat(5000),
            url: None,
            fields: (0..40)
                .map(|n| (format!("f{n}"), "v".repeat(2000), false))
                .collect(),
        };
        let files = (0..14)
            .map(|n| File {
                name: format!("{n}.png"),
                data: FileData::Bytes(Vec::new()),
                bytes: 3 * 1024 * 1024,
            })
            .collect();
        let reply = Reply {
            content: "x".repeat(3000),
            embeds: vec![embed; 12],
            files,
            ..Reply::default()
        }
        .fit(DEFAULT_ATTACHMENT_LIMIT);
        assert!(reply.content.chars().count() <= MAX_CONTENT);
        assert!(
            reply.content.contains("not attached"),
            "{}",
            &reply.content[1900..]
        );
        assert!(reply.embeds.len() <= MAX_EMBEDS);
        let total: usize = reply
            .embeds
            .iter()
            .map(|e| {
                e.title.chars().count()
                    + e.description.chars().count()
                    + e.fields
                        .iter()
                        .map(|(n, v, _)| n.chars().count() + v.chars().count())
                        .sum::<usize>()
            })
            .sum();
        assert!(total <= MAX_EMBED_TOTAL);
        for embed in &reply.embeds {
            assert!(embed.fields.len() <= MAX_FIELDS);
            assert!(embed.title.chars().count() <= MAX_TITLE);
        }
        assert_eq!(reply.files.len(), 3, "3 x 3 MiB fit in 10 MiB");
    }
}
