//! Combining snapshots of one message (its create, its updates, a later history fetch, the
//! copy embedded as another message's `referenced_message`) into one stored message.
//!
//! Each field keeps the value from the newest snapshot that carried it, newest meaning the
//! highest rank: the snapshot's edit time (else its post time), then the serialized value
//! itself as a tie-break. That makes merging commutative, associative and idempotent, so
//! the result does not depend on the order events arrive in (serenity handles each event in
//! its own task) and an update that arrives before its create is not lost.

use serde::{Deserialize, Serialize};

use crate::wire::Message;

/// Per-field ranks, in the order of [`for_each_field!`]. Stored compactly: one number when
/// every field has the same rank, which is the common case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ranks {
    Uniform(i64),
    PerField(Vec<i64>),
}

const N_FIELDS: usize = 16;

/// A stored message: the merged fields and, for each field, the rank it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doc {
    #[serde(rename = "m")]
    pub message: Message,
    #[serde(rename = "r")]
    pub ranks: Ranks,
}

/// The rank of a whole snapshot.
pub fn snapshot_rank(message: &Message) -> i64 {
    message.edited_ms().unwrap_or_else(|| message.posted_ms())
}

macro_rules! for_each_field {
    ($mac:ident) => {
        $mac!(
            channel_id,
            guild_id,
            author,
            kind,
            content,
            timestamp,
            edited_timestamp,
            attachments,
            embeds,
            components,
            mentions,
            message_reference,
            interaction,
            interaction_metadata,
            nonce,
            webhook_id
        )
    };
}

impl Doc {
    pub fn new(message: Message) -> Doc {
        let rank = snapshot_rank(&message);
        let mut doc = Doc {
            message: Message {
                referenced_message: None,
                ..message
            },
            ranks: Ranks::Uniform(rank),
        };
        // An empty message keeps rank 0, like any absent field.
        doc.ranks = doc.canonical_ranks(vec![rank; N_FIELDS]);
        doc
    }

    fn rank_of(&self, field: usize) -> i64 {
        match &self.ranks {
            Ranks::Uniform(rank) => *rank,
            Ranks::PerField(ranks) => ranks.get(field).copied().unwrap_or(i64::MIN),
        }
    }

    /// Folds `incoming` in; returns whether anything changed.
    pub fn merge(&mut self, incoming: &Message) -> bool {
        let incoming_rank = snapshot_rank(incoming);
        let mut ranks: Vec<i64> = (0..N_FIELDS).map(|field| self.rank_of(field)).collect();
        let mut changed = false;
        let mut field = 0usize;
        macro_rules! merge_fields {
            ($($name:ident),*) => {$(
                if let Some(new_value) = &incoming.$name {
                    let take = match &self.message.$name {
                        None => true,
                        Some(old_value) => {
                            incoming_rank > ranks[field]
                                || (incoming_rank == ranks[field]
                                    && old_value != new_value
                                    && serde_json::to_string(new_value).unwrap_or_default()
                                        > serde_json::to_string(old_value).unwrap_or_default())
                        }
                    };
                    if take {
                        if self.message.$name.as_ref() != Some(new_value) {
                            changed = true;
                        }
                        self.message.$name = Some(new_value.clone());
                        ranks[field] = incoming_rank;
                    }
                }
                field += 1;
            )*};
        }
        for_each_field!(merge_fields);
        debug_assert_eq!(field, N_FIELDS);
        let old_ranks = std::mem::replace(&mut self.ranks, Ranks::Uniform(0));
        self.ranks = self.canonical_ranks(ranks);
        changed || old_ranks != self.ranks
    }

    /// The rank of an absent field means nothing (any value beats none), so it is not kept:
    /// `Uniform` when every present field has the same rank, else 0 for absent fields. Two
    /// docs holding the same fields with the same ranks are then equal whatever their history.
    fn canonical_ranks(&self, mut ranks: Vec<i64>) -> Ranks {
        let mut present = [false; N_FIELDS];
        let mut field = 0usize;
        macro_rules! mark_present {
            ($($name:ident),*) => {$(
                present[field] = self.message.$name.is_some();
                field += 1;
            )*};
        }
        for_each_field!(mark_present);
        debug_assert_eq!(field, N_FIELDS);
        let mut present_ranks = ranks
            .iter()
            .zip(present)
            .filter(|(_, here)| *here)
            .map(|(rank, _)| *rank);
        let first = present_ranks.next().unwrap_or(0);
        if present_ranks.all(|rank| rank == first) {
            return Ranks::Uniform(first);
        }
        for (rank, here) in ranks.iter_mut().zip(present) {
            if !here {
                *rank = 0;
            }
        }
        Ranks::PerField(ranks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: &str) -> Message {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn newest_field_wins_in_any_order() {
        let create = message(
            r#"{"id":"1","content":"a (Waiting to start)","timestamp":"2024-01-01T00:00:00+00:00","author":{"id":"9"}}"#,
        );
        let update_1 =
            message(r#"{"id":"1","content":"a (10%)","edited_timestamp":"2024-01-01T00:00:10+00:00"}"#);
        let update_2 =
            message(r#"{"id":"1","content":"a (60%)","edited_timestamp":"2024-01-01T00:00:20+00:00"}"#);
        let orders = [
            [&create, &update_1, &update_2],
            [&update_2, &create, &update_1],
            [&update_1, &update_2, &create],
            [&update_2, &update_1, &create],
        ];
        let mut results = Vec::new();
        for order in orders {
            let mut doc = Doc::new(order[0].clone());
            for snapshot in &order[1..] {
                doc.merge(snapshot);
            }
            results.push(doc);
        }
        for doc in &results {
            assert_eq!(doc, &results[0]);
        }
        assert_eq!(results[0].message.content.as_deref(), Some("a (60%)"));
        assert_eq!(results[0].message.author.as_ref().unwrap().id.0, 9);
        // Merging the same snapshot again changes nothing.
        let mut again = results[0].clone();
        assert!(!again.merge(&update_2));
        assert!(!again.merge(&create));
    }
}
