//! The row of `messages` stored for a message: a mapping of its merged doc and its parse,
//! made by the pipeline on the writer and by the prepare stage on a sender's thread.

use mjlink_core::lineage::{self, Outcome};
use mjlink_core::merge::Doc;
use mjlink_core::parse::{Kind, Parsed, Stage};

use crate::store::MessageRow;

fn stage_name(stage: Stage) -> String {
    match stage {
        Stage::Waiting => "waiting".to_string(),
        Stage::Percent(value) => format!("{value}%"),
        Stage::Paused => "paused".to_string(),
        Stage::Stopped => "stopped".to_string(),
    }
}

/// The row stored for a message; `parsed` is `None` while the message is unseen.
pub(crate) fn row_for(doc: &Doc, parsed: Option<&Parsed>, seen: bool) -> MessageRow {
    let message = &doc.message;
    let mut row = MessageRow {
        id: message.id,
        channel_id: message.channel_id,
        guild_id: message.guild_id,
        author_id: message.author.as_ref().map(|author| author.id),
        seen,
        kind: "pending".to_string(),
        posted_at: message.timestamp.as_ref().map(|_| message.posted_ms()),
        edited_at: message.edited_ms(),
        nonce: message.nonce.clone(),
        ..Default::default()
    };
    if seen {
        row.posted_at = Some(message.posted_ms());
    }
    if let Some(parsed) = parsed {
        row.kind = parsed.kind.as_str().to_string();
        if let Some(prompt) = &parsed.prompt {
            row.prompt = Some(prompt.raw.clone());
            row.prompt_norm = Some(prompt.normalized());
            row.params = serde_json::to_string(&prompt.params).ok();
        }
        row.user_id = parsed.user_id;
        row.mode = parsed.mode.map(|mode| mode.as_str().to_string());
        row.stealth = parsed.stealth;
        row.tile = parsed.tile;
        row.action = match &parsed.kind {
            Kind::Result(action)
            | Kind::Progress {
                action: Some(action), ..
            } => Some(action.as_str().to_string()),
            _ => None,
        };
        row.job_uuid = parsed.job_uuid.clone();
        row.reply_to = match parsed.kind {
            Kind::Rating { target } => target,
            _ => parsed.reply_to,
        };
        row.used_buttons = parsed.used_buttons.clone();
        row.detail = parsed.detail.clone();
        row.outcome = lineage::initial_outcome(&parsed.kind).map(Outcome::as_str);
        match &parsed.kind {
            Kind::Progress { stage, .. } => row.stage = Some(stage_name(*stage)),
            Kind::Error(title) => row.error_title = Some(title.clone()),
            _ => {}
        }
    }
    row
}
