//! Route keys: the constants a filter pins a column to, and the hasher the routing index
//! files them under, so publishing finds a pinned subscription by hashing the row's value.

use crate::types::ids::UserId;
use crate::types::ids::UserKey;
use crate::types::value::Value;

/// Where the routing keys of a pinned column come from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RouteValues {
    /// Constants of the query itself (an IN list): their keys, sorted, without repeats.
    Keys(Box<[u64]>),
    /// One parameter of each subscription.
    Param(u16),
}

/// A column pinned to constants through a top-level AND.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RoutePin {
    pub(crate) column: u16,
    pub(crate) values: RouteValues,
}

/// Hashes values and (owner, column, value) triples into routing keys. Seeded randomly per
/// manager, so clients cannot aim many keys at one bucket.
pub(crate) struct RouteHasher {
    state: ahash::RandomState,
}

impl RouteHasher {
    pub(crate) fn new() -> Self {
        // Loom models must replay exactly: which keys share an index bucket decides how
        // many entries a writer copies, and each copy takes steps loom schedules. So loom
        // builds seed the hasher with constants; every other build seeds it randomly.
        #[cfg(livecore_loom)]
        let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
        #[cfg(not(livecore_loom))]
        let state = ahash::RandomState::new();
        Self { state }
    }

    /// The key of a value; SQL-equal values share it. NULL has none.
    #[inline]
    pub(crate) fn value_key(&self, value: &Value) -> Option<u64> {
        value.route_key(&self.state)
    }

    /// The routing key of subscriptions of `owner` pinned to `value_key` on `column`, or of
    /// `owner`'s unpinned subscriptions when `column` is `None`.
    #[inline]
    pub(crate) fn bucket_key(
        &self,
        owner: Option<UserKey>,
        column: Option<u16>,
        value_key: u64,
    ) -> u64 {
        self.state
            .hash_one((owner.map(|key| key.0), column, value_key))
    }

    pub(crate) fn user_key(&self, user: &UserId) -> u64 {
        self.state.hash_one(user.as_str())
    }
}
