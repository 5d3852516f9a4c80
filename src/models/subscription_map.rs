//! A connection's subscriptions by number. Most connections hold few and many hold none
//! (never-used, or topic consumers), so the map is boxed on first insert: an empty one is
//! a single null pointer inside the connection's state.

use std::collections::BTreeMap;

use crate::models::ids::SubscriptionId;
use crate::models::subscription::SubscriptionState;

/// A connection's subscriptions by number, allocated on first insert.
#[derive(Default)]
#[allow(clippy::box_collection)] // the box keeps an empty map to one pointer
pub(crate) struct SubscriptionMap(Option<Box<BTreeMap<SubscriptionId, SubscriptionState>>>);

impl SubscriptionMap {
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |map| map.len())
    }

    pub(crate) fn get(&self, id: &SubscriptionId) -> Option<&SubscriptionState> {
        self.0.as_ref()?.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &SubscriptionId) -> Option<&mut SubscriptionState> {
        self.0.as_mut()?.get_mut(id)
    }

    pub(crate) fn insert(&mut self, id: SubscriptionId, state: SubscriptionState) {
        self.0.get_or_insert_with(Box::default).insert(id, state);
    }

    /// Removes a subscription; the map is freed once empty.
    pub(crate) fn remove(&mut self, id: &SubscriptionId) -> Option<SubscriptionState> {
        let map = self.0.as_mut()?;
        let removed = map.remove(id);
        if map.is_empty() {
            self.0 = None;
        }
        removed
    }

    /// The subscriptions, in number order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &SubscriptionState> + '_ {
        self.0.iter().flat_map(|map| map.values())
    }

    /// Takes every subscription, leaving the map empty.
    pub(crate) fn take_all(&mut self) -> Vec<SubscriptionState> {
        self.0
            .take()
            .map(|map| map.into_values().collect())
            .unwrap_or_default()
    }
}
