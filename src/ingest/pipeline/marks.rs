//! The pipeline's side of button marks (`mjlink_core::marks`): where in the stream each mark
//! of a message with buttons is first seen, what each exact link of a button's result shows
//! about the channel's marks of that family, and the re-decision of what the marks narrowed
//! when a channel stops trusting them.

use mjlink_core::kinds::{self, Shape};
use mjlink_core::lineage::Link;
use mjlink_core::link::Child;
use mjlink_core::marks::{Evidence, Family, MarkLog, Trust};
use mjlink_core::parse::Parsed;
use mjlink_core::snowflake::Snowflake;
use mjlink_core::wire::Message;

use super::Pipeline;
use crate::store::StoreError;

impl Pipeline {
    /// A create moved the stream in `channel_id` to `id`.
    pub(super) fn note_position(&mut self, channel_id: Snowflake, id: Snowflake) -> Result<(), StoreError> {
        let newest = self.newest_in(channel_id)?;
        self.high_water.insert(channel_id, newest.max(id));
        Ok(())
    }

    /// Where an update is in the stream: the newest message seen in its channel (an update
    /// carries no time of its own: the real grids whose U is marked have `edited_timestamp:
    /// null`). `None` when its channel is unknown.
    pub(super) fn position_of_update(&mut self, message: &Message) -> Result<Option<Snowflake>, StoreError> {
        let channel_id = match message.channel_id {
            Some(channel_id) => Some(channel_id),
            None => self
                .store
                .child_facts(message.id)?
                .and_then(|facts| facts.channel_id),
        };
        match channel_id {
            Some(channel_id) => Ok(Some(self.newest_in(channel_id)?.max(message.id))),
            None => Ok(None),
        }
    }

    /// What the channel's exact results of `family` showed about its marks (cached: the
    /// pipeline is the only writer of it).
    pub(super) fn trust_of(&mut self, channel_id: Snowflake, family: Family) -> Result<Trust, StoreError> {
        if let Some(trust) = self.trust.get(&(channel_id, family)) {
            return Ok(*trust);
        }
        let trust = self.store.mark_trust(channel_id, family)?;
        self.trust.insert((channel_id, family), trust);
        Ok(trust)
    }

    fn newest_in(&mut self, channel_id: Snowflake) -> Result<Snowflake, StoreError> {
        if let Some(newest) = self.high_water.get(&channel_id) {
            return Ok(*newest);
        }
        let stored = self
            .store
            .channel_cursors()?
            .get(&channel_id)
            .copied()
            .unwrap_or_default();
        self.high_water.insert(channel_id, stored);
        Ok(stored)
    }

    /// Follows the marks of a message with buttons (a grid, a video grid, an image, a clip)
    /// from its first seen snapshot on: the marks of that first snapshot were made at an
    /// unknown time, each later one where it was first seen.
    pub(super) fn follow_marks(
        &mut self,
        id: Snowflake,
        parsed: &Parsed,
        first_seen: bool,
        position: Option<Snowflake>,
    ) -> Result<(), StoreError> {
        if kinds::shape(&parsed.kind) == Shape::NotAResult {
            return Ok(());
        }
        let Some(used) = parsed.used_buttons.as_deref() else {
            return Ok(());
        };
        let (mut log, position) = if first_seen {
            (MarkLog::default(), None)
        } else {
            match self.store.mark_log(id)? {
                Some((_, log)) => (log, position),
                // Stored before its marks were followed (a database from before they were).
                None => return Ok(()),
            }
        };
        if log.advance(used, position) {
            self.store.put_mark_log(id, &log)?;
        }
        Ok(())
    }

    /// A result of a button (see [`Family`]) newly linked exactly to the message that carries
    /// it shows whether that message's mark came before it. When that ends the channel's
    /// trust in the marks of that family, what they narrowed is decided again without them.
    pub(super) fn mark_evidence(
        &mut self,
        child: Child,
        tile: Option<u8>,
        old: Option<&Link>,
        new: &Link,
    ) -> Result<(), StoreError> {
        let Some(parent) = new.decision.parent else {
            return Ok(());
        };
        if !Family::follows(new.action)
            || !new.decision.is_exact()
            || old.is_some_and(|old| old.decision.is_exact() && old.decision.parent == Some(parent))
        {
            return Ok(());
        }
        // No log where the parent's marks were not followed from its first snapshot on.
        let Some((shape, log)) = self.store.mark_log(parent)? else {
            return Ok(());
        };
        let Some(family) = Family::of(new.action, shape) else {
            return Ok(());
        };
        let Some(channel_id) = self
            .store
            .child_facts(child.id)?
            .and_then(|facts| facts.channel_id)
        else {
            return Ok(());
        };
        let trust = self.trust_of(channel_id, family)?;
        if trust.not_before > 0 {
            // Ended for good: nothing more to learn.
            return Ok(());
        }
        let Some(evidence) = log.evidence(family, new.action, tile, child.id) else {
            return Ok(());
        };
        if evidence == Evidence::Before && trust.trusted() {
            // Only a contradiction changes a trusting channel.
            return Ok(());
        }
        let after = trust.with(evidence);
        self.store.put_mark_trust(channel_id, family, after)?;
        self.trust.insert((channel_id, family), after);
        if trust.trusted() && !after.trusted() {
            tracing::warn!(
                channel_id = %channel_id,
                child_id = %child.id,
                buttons = ?family,
                "a pressed button's mark was not seen before its result: this channel's marks of these buttons no longer narrow the fallback"
            );
            for child_id in self.store.fallback_results_in_channel(channel_id, family)? {
                let tiles = self.refallback(child_id)?;
                self.redecide_tiles(child_id, tiles)?;
            }
        }
        Ok(())
    }
}
