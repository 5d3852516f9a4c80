//! A connection's subscriptions by number, and the endings of those livecore ended. Most
//! connections hold few and many hold none (never-used, or topic consumers), so the map is
//! boxed on first insert: an empty one is a single null pointer inside the connection's
//! state.

use std::collections::{BTreeMap, VecDeque};

use crate::connection::subscription::{SubscriptionCore, SubscriptionState};
use crate::sync::LeanArc;
use crate::types::ending::SubscriptionEnding;
use crate::types::ids::SubscriptionId;

/// How many ended subscriptions a connection remembers at least, so a host calling on one
/// after livecore ended it learns how it ended
/// ([`LiveError::SubscriptionEnded`](crate::LiveError::SubscriptionEnded)) rather than
/// `UnknownSubscription`. A connection remembers the larger of this and the config's
/// `max_subscriptions_per_connection`, so ending every subscription it holds at once (a
/// revocation, a dropped table) forgets none of them. The oldest is forgotten first;
/// `unsubscribe` forgets one at once, unregistering the connection all of them. A
/// remembered ending keeps its subscription's core (about 200 bytes, with its SQL text and
/// a share of its compiled query) until it is forgotten, so that unsubscribing it can drop
/// its pending notice.
pub const ENDED_SUBSCRIPTIONS_REMEMBERED: usize = 64;

/// A subscription livecore ended, remembered.
struct Ended {
    id: SubscriptionId,
    ending: SubscriptionEnding,
    core: LeanArc<SubscriptionCore>,
}

#[derive(Default)]
struct Entries {
    subscriptions: BTreeMap<SubscriptionId, SubscriptionState>,
    /// Subscriptions livecore ended and took out of the map, oldest first, with their
    /// cores: unsubscribing one marks it removed, so its terminal notice, if the receiver
    /// has not handed it out yet, is not handed out after the unsubscribe returns.
    ended: VecDeque<Ended>,
}

/// A connection's subscriptions by number, allocated on first insert.
#[derive(Default)]
pub(crate) struct SubscriptionMap(Option<Box<Entries>>);

impl SubscriptionMap {
    /// Subscriptions held, ended ones still awaiting removal included (the per-connection
    /// limit counts these).
    pub(crate) fn len(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |entries| entries.subscriptions.len())
    }

    /// Subscriptions held that have not ended.
    pub(crate) fn active_count(&self) -> usize {
        self.values().filter(|state| !state.core.is_ended()).count()
    }

    pub(crate) fn get(&self, id: &SubscriptionId) -> Option<&SubscriptionState> {
        self.0.as_ref()?.subscriptions.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &SubscriptionId) -> Option<&mut SubscriptionState> {
        self.0.as_mut()?.subscriptions.get_mut(id)
    }

    pub(crate) fn insert(&mut self, id: SubscriptionId, state: SubscriptionState) {
        self.0
            .get_or_insert_with(Box::default)
            .subscriptions
            .insert(id, state);
    }

    /// Removes a subscription. The map stays allocated when it empties: a connection that
    /// subscribed once usually subscribes again, and freeing it here would cost every
    /// subscribe+unsubscribe pair on an otherwise idle connection two allocations and two
    /// frees. Unregistering frees it ([`take_all`](Self::take_all)).
    pub(crate) fn remove(&mut self, id: &SubscriptionId) -> Option<SubscriptionState> {
        self.0.as_mut()?.subscriptions.remove(id)
    }

    /// Removes a subscription livecore ended, remembering how it ended.
    pub(crate) fn remove_ended(
        &mut self,
        id: &SubscriptionId,
        ending: SubscriptionEnding,
        remembered: usize,
    ) -> Option<SubscriptionState> {
        let removed = self.0.as_mut()?.subscriptions.remove(id)?;
        self.remember_ending(&removed.core, ending, remembered);
        Some(removed)
    }

    /// Remembers how livecore ended a subscription already taken out of the map, keeping
    /// the `remembered` most recent endings (see [`ENDED_SUBSCRIPTIONS_REMEMBERED`]).
    pub(crate) fn remember_ending(
        &mut self,
        core: &LeanArc<SubscriptionCore>,
        ending: SubscriptionEnding,
        remembered: usize,
    ) {
        let entries = self.0.get_or_insert_with(Box::default);
        while entries.ended.len() >= remembered.max(1) {
            entries.ended.pop_front();
        }
        entries.ended.push_back(Ended {
            id: core.id,
            ending,
            core: core.clone(),
        });
    }

    /// How livecore ended `id`, if it did and the connection still remembers it.
    pub(crate) fn ending_of(&self, id: &SubscriptionId) -> Option<SubscriptionEnding> {
        let entries = self.0.as_ref()?;
        entries
            .ended
            .iter()
            .find(|ended| ended.id == *id)
            .map(|ended| ended.ending.clone())
    }

    /// Forgets how `id` ended, returning its core if it was remembered.
    pub(crate) fn forget_ending(
        &mut self,
        id: &SubscriptionId,
    ) -> Option<LeanArc<SubscriptionCore>> {
        let entries = self.0.as_mut()?;
        let at = entries.ended.iter().position(|ended| ended.id == *id)?;
        let forgotten = entries.ended.remove(at).map(|ended| ended.core);
        self.free_if_empty();
        forgotten
    }

    /// Forgets every ending remembered, marking each of those subscriptions removed, and
    /// lets their cores go: for a connection being unregistered.
    pub(crate) fn forget_endings(&mut self) {
        if let Some(entries) = self.0.as_mut() {
            for ended in entries.ended.drain(..) {
                ended.core.remove();
            }
        }
        self.free_if_empty();
    }

    /// The subscriptions, in number order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &SubscriptionState> + '_ {
        self.0
            .iter()
            .flat_map(|entries| entries.subscriptions.values())
    }

    /// Takes every subscription, leaving the map empty (remembered endings stay).
    pub(crate) fn take_all(&mut self) -> Vec<SubscriptionState> {
        let Some(entries) = self.0.as_mut() else {
            return Vec::new();
        };
        let taken = std::mem::take(&mut entries.subscriptions)
            .into_values()
            .collect();
        self.free_if_empty();
        taken
    }

    fn free_if_empty(&mut self) {
        if self
            .0
            .as_ref()
            .is_some_and(|entries| entries.subscriptions.is_empty() && entries.ended.is_empty())
        {
            self.0 = None;
        }
    }
}
