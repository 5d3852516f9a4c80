//! The routing index: for a change to (table, owner), the subscriptions that may match.
//!
//! Every structure here is read through arc-swap, so publishing takes no lock and allocates
//! nothing. Per table:
//!
//! - `scan`: shared-table subscriptions without a pinned column, walked one by one;
//! - `eq`: a hash multimap from a routing key to subscriptions. A subscription whose filter
//!   pins a column to constants (`room = 7`, `room IN (7, 8)`) is stored under one key per
//!   constant, derived from (owner, column, value); a user-scoped subscription without a pin
//!   is stored under a key of its owner alone. A publish looks up the keys of the changed
//!   row's values (for updates, old and new), so its cost follows the number of matching
//!   subscriptions, not the number registered. Many subscriptions on one key are moved into
//!   a nested table, so adding the 100,001st watcher of `room = 7` stays O(1).
//!
//! Writers (subscribe, unsubscribe) take the table's writer lock and copy one small bucket;
//! the table directory is replaced by compare-and-swap, so concurrent table registrations
//! never lose one another.

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::connection::subscription::{SubscriptionCore, SubscriptionHandle};
use crate::query::route_key::RouteHasher;
use crate::query::route_key::RouteValues;
use crate::query::{CompiledProjection, CompiledQuery};
use crate::route::cow_table::{CowTable, SlotsHint};
use crate::sync::mutant;
use crate::sync::{lock, Arc, ArcSwap, AtomicU32, AtomicUsize, DataArc, Guard, Mutex, Ordering};
use crate::types::ids::{SubscriptionId, TableId, TableKey, UserId, UserKey};
use crate::types::schema::TableSchema;
use crate::types::value::Value;

/// Subscriptions on one key above which they move into a nested table.
const NESTED_AT: usize = 64;
/// Subscriptions in a nested table below which they move back into the bucket.
const UNNEST_BELOW: usize = 16;

/// Where a subscription is stored in its table's routes.
pub(crate) enum Placement {
    /// The scan list (a shared-table subscription without a usable pin).
    Scan,
    /// Under its owner's key (a user-scoped subscription without a usable pin).
    Owner(u64),
    /// Under one key per constant of its pinned column.
    Pinned(u16, SmallVec<[u64; 4]>),
}

impl Placement {
    /// How many keys of the equality table it is stored under.
    pub(crate) fn key_count(&self) -> usize {
        self.keys().len()
    }

    /// The keys of the equality table it is stored under (none for the scan list).
    fn keys(&self) -> &[u64] {
        match self {
            Placement::Scan => &[],
            Placement::Owner(key) => std::slice::from_ref(key),
            Placement::Pinned(_, keys) => keys,
        }
    }
}

/// Where `handle` is stored. A pin whose constant is NULL (a filter never TRUE) is not a
/// usable pin: the subscription is then stored as if unpinned.
pub(crate) fn placement(core: &SubscriptionCore, hasher: &RouteHasher) -> Placement {
    placement_of(&core.query, &core.params, core.owner, hasher)
}

/// Where a subscription of `query` with `params`, owned by `owner`, is stored.
pub(crate) fn placement_of(
    query: &CompiledQuery,
    params: &[Value],
    owner: Option<UserKey>,
    hasher: &RouteHasher,
) -> Placement {
    if let Some(pin) = &query.pin {
        let keys = query.pin_keys(params, hasher, |value_key| {
            hasher.bucket_key(owner, Some(pin.column), value_key)
        });
        if !keys.is_empty() {
            return Placement::Pinned(pin.column, keys);
        }
    }
    match owner {
        Some(owner) => Placement::Owner(hasher.bucket_key(Some(owner), None, 0)),
        None => Placement::Scan,
    }
}

/// The keys of a subscription stored under several (a pin to several constants of the
/// query itself); `None` for every other subscription, which is stored under one key only.
/// Cheap for the latter: the placement is computed only for the former.
pub(crate) fn several_keys(
    handle: &SubscriptionHandle,
    hasher: &RouteHasher,
) -> Option<SmallVec<[u64; 4]>> {
    let several = matches!(
        handle.core.query.pin.as_ref().map(|pin| &pin.values),
        Some(RouteValues::Keys(keys)) if keys.len() > 1
    );
    if !several {
        return None;
    }
    match placement(&handle.core, hasher) {
        Placement::Pinned(_, keys) if keys.len() > 1 => Some(keys),
        _ => None,
    }
}

/// A value in the `eq` multimap: one subscription, or a nested table of many on one key.
#[derive(Clone)]
pub(crate) enum EqEntry {
    One(SubscriptionHandle),
    Many(Arc<CowTable<SubscriptionHandle>>),
}

/// One table's routes, for one version of its schema. A schema change builds a new route
/// and retires this one.
pub(crate) struct TableRoute {
    pub(crate) key: TableKey,
    pub(crate) schema: DataArc<TableSchema>,
    /// Serializes subscribe and unsubscribe on this table.
    pub(crate) writer: Mutex<()>,
    scan: CowTable<SubscriptionHandle>,
    eq: CowTable<EqEntry>,
    /// Columns that some subscription pins (what publishers look up)...
    pinned_columns: ArcSwap<Vec<u16>>,
    /// ...and how many pin each column (writers only).
    pin_counts: Box<[AtomicU32]>,
    subscriptions: AtomicUsize,
    projections: Mutex<Vec<DataArc<CompiledProjection>>>,
}

impl TableRoute {
    pub(crate) fn new(key: TableKey, schema: DataArc<TableSchema>) -> Self {
        let pin_counts = (0..schema.columns.len())
            .map(|_| AtomicU32::new(0))
            .collect();
        Self {
            key,
            schema,
            writer: Mutex::new(()),
            scan: CowTable::scanned(),
            eq: CowTable::new(),
            pinned_columns: ArcSwap::from_pointee(Vec::new()),
            pin_counts,
            subscriptions: AtomicUsize::new(0),
            projections: Mutex::new(Vec::new()),
        }
    }

    /// Number of subscriptions routed through this table.
    pub(crate) fn subscription_count(&self) -> usize {
        self.subscriptions.load(Ordering::Acquire)
    }

    /// The shared copy of an equal projection, so JSON is rendered once per commit for all
    /// subscriptions that project alike.
    pub(crate) fn intern_projection(
        &self,
        projection: CompiledProjection,
    ) -> DataArc<CompiledProjection> {
        let mut projections = lock(&self.projections);
        if let Some(existing) = projections
            .iter()
            .find(|existing| ***existing == projection)
        {
            return existing.clone();
        }
        let projection = DataArc::new(projection);
        projections.push(projection.clone());
        projection
    }

    /// Writer (caller holds `writer`): routes a subscription.
    pub(crate) fn insert(&self, handle: SubscriptionHandle, hasher: &RouteHasher) {
        let placement = placement(&handle.core, hasher);
        self.insert_placed(handle, placement);
    }

    /// [`insert`](Self::insert) at the placement already computed for `handle`.
    pub(crate) fn insert_placed(&self, handle: SubscriptionHandle, placement: Placement) {
        match placement {
            Placement::Scan => self.scan.insert(handle.core.id.0, handle),
            Placement::Owner(key) => self.eq_insert(key, handle),
            Placement::Pinned(column, keys) => {
                // The last key takes the handle itself: a clone and a drop each touch three
                // reference counts (the core's senders, the channel's, the connection's).
                if let Some((last, others)) = keys.split_last() {
                    for key in others {
                        self.eq_insert(*key, handle.clone());
                    }
                    self.eq_insert(*last, handle);
                }
                self.adjust_pinned_column(column, true);
            }
        }
        self.subscriptions.fetch_add(1, Ordering::AcqRel);
    }

    /// Hints the slots an insert at `placement` edits. With
    /// [`SlotsHint::prefetch_buckets`] later, the slot's and then the bucket's miss (a new key
    /// lands on a random, usually cold, slot) overlap with the work a subscribe does before
    /// it inserts, instead of stalling the insert under the lock.
    pub(crate) fn prefetch_slots(&self, placement: &Placement) -> Option<SlotsHint<EqEntry>> {
        self.eq.prefetch_slots(placement.keys())
    }

    /// Hints the header line of each bucket an insert at `placement` edits, in the slots
    /// [`prefetch_slots`](Self::prefetch_slots) hinted.
    pub(crate) fn prefetch_buckets(
        &self,
        slots: Option<SlotsHint<EqEntry>>,
        placement: &Placement,
    ) {
        if let Some(slots) = slots {
            slots.prefetch_buckets(placement.keys());
        }
    }

    /// Writer (caller holds `writer`): removes a subscription's routes; true if it was here.
    pub(crate) fn remove(&self, core: &SubscriptionCore, hasher: &RouteHasher) -> bool {
        let id = core.id;
        let found = match placement(core, hasher) {
            Placement::Scan => self.scan.remove(id.0, |other| other.core.id == id),
            Placement::Owner(key) => self.eq_remove(key, id),
            Placement::Pinned(column, keys) => {
                let mut found = false;
                for key in keys {
                    found |= self.eq_remove(key, id);
                }
                if found {
                    self.adjust_pinned_column(column, false);
                }
                found
            }
        };
        if found {
            self.subscriptions.fetch_sub(1, Ordering::AcqRel);
        }
        found
    }

    /// Every subscription routed here, once each (for schema changes, revocation and
    /// records). Lock-free; a subscription pinned to several constants is stored under each
    /// of their keys and reported under the first only.
    pub(crate) fn for_each_subscription(
        &self,
        hasher: &RouteHasher,
        mut visit: impl FnMut(&SubscriptionHandle),
    ) {
        self.scan.for_each(&mut visit);
        let mut visit_once = |key: u64, handle: &SubscriptionHandle| {
            let first_key = several_keys(handle, hasher).map(|keys| keys[0]);
            if first_key.is_none_or(|first| first == key) {
                visit(handle);
            }
        };
        self.eq.for_each_entry(|key, entry| match entry {
            EqEntry::One(handle) => visit_once(key, handle),
            EqEntry::Many(nested) => nested.for_each(|handle| visit_once(key, handle)),
        });
    }

    fn eq_insert(&self, key: u64, handle: SubscriptionHandle) {
        self.eq.modify(key, |entries| {
            let nested = entries.iter().find_map(|(entry_key, entry)| match entry {
                EqEntry::Many(nested) if entry_key == key => Some(nested.clone()),
                _ => None,
            });
            if let Some(nested) = nested {
                nested.insert(handle.core.id.0, handle);
                return;
            }
            let on_key = entries
                .iter()
                .filter(|(entry_key, _)| *entry_key == key)
                .count();
            if on_key + 1 < NESTED_AT {
                entries.push(key, EqEntry::One(handle));
                return;
            }
            let nested = CowTable::scanned();
            entries.retain(|entry_key, entry| {
                if entry_key != key {
                    return true;
                }
                if let EqEntry::One(existing) = entry {
                    nested.insert(existing.core.id.0, existing.clone());
                }
                false
            });
            nested.insert(handle.core.id.0, handle);
            entries.push(key, EqEntry::Many(Arc::new(nested)));
        });
    }

    fn eq_remove(&self, key: u64, id: SubscriptionId) -> bool {
        let mut found = false;
        self.eq.modify(key, |entries| {
            if let Some(index) = entries.position(|entry_key, entry| {
                entry_key == key && matches!(entry, EqEntry::One(handle) if handle.core.id == id)
            }) {
                entries.remove(index);
                found = true;
                return;
            }
            let Some(index) = entries
                .position(|entry_key, entry| entry_key == key && matches!(entry, EqEntry::Many(_)))
            else {
                return;
            };
            let EqEntry::Many(nested) = entries.value(index).clone() else {
                return;
            };
            found = nested.remove(id.0, |handle| handle.core.id == id);
            if nested.len() >= UNNEST_BELOW {
                return;
            }
            // Few enough again: move them back into the bucket, replacing it whole.
            entries.remove(index);
            nested.for_each(|handle| entries.push(key, EqEntry::One(handle.clone())));
        });
        found
    }

    /// Counts a subscription pinning `column` in or out; the list publishers read changes
    /// only when a column gains its first or loses its last pinning subscription.
    fn adjust_pinned_column(&self, column: u16, add: bool) {
        let count = &self.pin_counts[usize::from(column)];
        let before = count.load(Ordering::Acquire);
        let after = if add {
            before + 1
        } else {
            before.saturating_sub(1)
        };
        count.store(after, Ordering::Release);
        if (before == 0) != (after == 0) {
            let mut columns: Vec<u16> = self.pinned_columns.load().as_ref().clone();
            if add {
                columns.push(column);
            } else {
                columns.retain(|pinned| *pinned != column);
            }
            self.pinned_columns.store(Arc::new(columns));
        }
    }

    // ---- readers (publish) ----

    /// Calls `visit` with every subscription in the scan list.
    #[inline]
    pub(crate) fn for_each_scanned(&self, mut visit: impl FnMut(&SubscriptionHandle)) {
        if self.scan.is_empty() {
            return;
        }
        visit_warmed(&self.scan, &mut visit);
    }

    /// Calls `visit` with every subscription stored under `key`.
    #[inline]
    pub(crate) fn for_each_at(&self, key: u64, mut visit: impl FnMut(&SubscriptionHandle)) {
        self.eq.for_each_at(key, |entry| match entry {
            EqEntry::One(handle) => {
                // The subscription's and the channel's lines both hang off this entry: ask
                // for them together, so at a million subscriptions their misses overlap
                // instead of the channel's waiting behind the filter's read of the core.
                handle.prefetch();
                visit(handle)
            }
            EqEntry::Many(nested) => visit_warmed(nested, &mut visit),
        });
    }

    /// Calls `visit` with each pinned column.
    #[inline]
    pub(crate) fn for_each_pinned_column(&self, mut visit: impl FnMut(u16)) {
        let columns = self.pinned_columns.load();
        for column in columns.iter() {
            visit(*column);
        }
    }

    /// True when some subscription is keyed by owner alone or pinned: `eq` lookups needed.
    #[inline]
    pub(crate) fn has_eq_routes(&self) -> bool {
        !self.eq.is_empty()
    }
}

/// Calls `visit` with every subscription of a table read whole (a scan list, or the many
/// subscriptions of one key), asking for each chunk's lines first: the hints are
/// independent, so the cache misses of a chunk overlap instead of queueing behind each
/// delivery.
fn visit_warmed(table: &CowTable<SubscriptionHandle>, visit: &mut impl FnMut(&SubscriptionHandle)) {
    table.for_each_bucket(|bucket| {
        for chunk in bucket.entries().chunks(8) {
            chunk.iter().for_each(|entry| entry.value().prefetch());
            chunk.iter().for_each(|entry| visit(entry.value()));
        }
    });
}

/// Tables by key and by id. Replaced whole (by compare-and-swap) when a table is added or
/// its schema changes.
#[derive(Clone, Default)]
pub(crate) struct Directory {
    /// Routes by table key; a dropped table's key keeps an empty slot (keys are never
    /// reused: a stale key must not reach another table), eight bytes and nothing else.
    routes: Vec<Option<Arc<TableRoute>>>,
    /// Read on every publish: hashed with ahash rather than SipHash.
    by_id: HashMap<TableId, TableKey, ahash::RandomState>,
    /// The same tables by the addresses of the strings of the id each was registered with,
    /// which `by_id` keeps alive (so no other id has them meanwhile): a caller passing a
    /// clone of that id, the usual case, finds its table by two words instead of hashing
    /// and comparing both names (about 100 instructions a publish or subscribe).
    by_address: HashMap<(usize, usize), TableKey, ahash::RandomState>,
}

impl Directory {
    #[inline]
    pub(crate) fn route(&self, key: TableKey) -> Option<&Arc<TableRoute>> {
        self.routes.get(key.0 as usize).and_then(Option::as_ref)
    }

    #[inline]
    pub(crate) fn route_by_id(&self, table_id: &TableId) -> Option<&Arc<TableRoute>> {
        self.by_address
            .get(&table_id.addresses())
            .or_else(|| self.by_id.get(table_id))
            .and_then(|key| self.route(*key))
    }

    /// The route of the table a query names: the table of exactly that id, or else the one
    /// table whose namespace and name match it ignoring ASCII case, as SQL reads table
    /// names (SQLite's rule). `None` when no table, or more than one, matches that way.
    /// Subscribing and routing only: publishing names tables exactly.
    pub(crate) fn route_named(&self, table_id: &TableId) -> Option<&Arc<TableRoute>> {
        if let Some(route) = self.route_by_id(table_id) {
            return Some(route);
        }
        let mut matching = self.by_id.iter().filter(|(known, _)| {
            known.namespace().eq_ignore_ascii_case(table_id.namespace())
                && known.name().eq_ignore_ascii_case(table_id.name())
        });
        match (matching.next(), matching.next()) {
            (Some((_, key)), None) => self.route(*key),
            _ => None,
        }
    }

    /// Every registered table's current route.
    pub(crate) fn routes(&self) -> impl Iterator<Item = &Arc<TableRoute>> {
        self.routes.iter().flatten()
    }
}

/// The outcome of [`RoutingIndex::install_new_route`].
pub(crate) enum Installed {
    Added(Arc<TableRoute>),
    AlreadyPresent,
}

impl Installed {
    fn unwrap_either(result: Result<Installed, Installed>) -> Installed {
        match result {
            Ok(installed) | Err(installed) => installed,
        }
    }
}

/// The routing index of one manager.
pub(crate) struct RoutingIndex {
    pub(crate) hasher: RouteHasher,
    directory: ArcSwap<Directory>,
    users: CowTable<(UserId, UserKey)>,
    users_writer: Mutex<()>,
    next_user: AtomicU32,
}

impl RoutingIndex {
    pub(crate) fn new() -> Self {
        Self {
            hasher: RouteHasher::new(),
            directory: ArcSwap::from_pointee(Directory::default()),
            users: CowTable::new(),
            users_writer: Mutex::new(()),
            next_user: AtomicU32::new(0),
        }
    }

    /// Runs `visit` with the current directory without taking a reference count.
    #[inline]
    pub(crate) fn with_directory<R>(&self, visit: impl FnOnce(&Directory) -> R) -> R {
        let directory = self.directory.load();
        visit(&directory)
    }

    /// The current directory, held without a reference count: a caller that works with
    /// one of its routes for a while borrows the route from it instead of counting a
    /// reference to the route (two locked instructions on a line every subscribe shares).
    #[inline]
    pub(crate) fn directory(&self) -> Guard<Arc<Directory>> {
        self.directory.load()
    }

    /// Adds a route for a table not yet in the directory, built by `build` for the key it
    /// gets. If another writer added the table first, returns that route instead.
    pub(crate) fn install_new_route(
        &self,
        table_id: &TableId,
        build: impl Fn(TableKey) -> Arc<TableRoute>,
    ) -> Installed {
        Installed::unwrap_either(self.update_directory(|directory| {
            if directory.route_by_id(table_id).is_some() {
                return Err(Installed::AlreadyPresent);
            }
            let key = TableKey(directory.routes.len() as u32);
            let route = build(key);
            let mut next = directory.clone();
            next.routes.push(Some(route.clone()));
            next.by_id.insert(table_id.clone(), key);
            next.by_address.insert(table_id.addresses(), key);
            Ok((next, Installed::Added(route)))
        }))
    }

    /// Replaces a table's route (schema change) with `route`, which has the same key.
    pub(crate) fn replace_route(&self, route: Arc<TableRoute>) {
        self.update_directory(|directory| {
            let mut next = directory.clone();
            next.routes[route.key.0 as usize] = Some(route.clone());
            Ok::<_, ()>((next, ()))
        })
        .unwrap_or(());
    }

    /// Unregisters a table: neither its id nor its key resolves any more, and its routes
    /// (and what they reference) are released. A table registered and dropped over and
    /// over leaves an empty slot each time, not a route: the copy of the directory each
    /// registration makes stays a copy of words.
    pub(crate) fn remove_table(&self, table_id: &TableId) {
        let _ = self.update_directory(|directory| {
            let Some((registered, key)) = directory.by_id.get_key_value(table_id) else {
                return Err(());
            };
            let key = *key;
            let mut next = directory.clone();
            next.by_address.remove(&registered.addresses());
            next.by_id.remove(table_id);
            next.routes[key.0 as usize] = None;
            Ok((next, ()))
        });
    }

    /// Read-copy-update of the directory with a compare-and-swap retry loop, so writers
    /// that race (registering different tables) never lose each other's change.
    fn update_directory<T, E>(
        &self,
        mut change: impl FnMut(&Directory) -> Result<(Directory, T), E>,
    ) -> Result<T, E> {
        let mut current = self.directory.load_full();
        loop {
            let (next, outcome) = change(&current)?;
            let next = Arc::new(next);
            // Mutant: check, then store blindly. A writer that swaps its directory in
            // between is overwritten, and its table lost.
            let previous = if mutant!("directory_blind_store") {
                let previous = self.directory.load();
                if Arc::ptr_eq(&previous, &current) {
                    self.directory.store(next);
                }
                previous
            } else {
                self.directory.compare_and_swap(&current, next)
            };
            if Arc::ptr_eq(&previous, &current) {
                return Ok(outcome);
            }
            current = Guard::into_inner(previous);
        }
    }

    /// The key of a known user (lock-free), or `None` if the user never authenticated.
    #[inline]
    pub(crate) fn user_key(&self, user: &UserId) -> Option<UserKey> {
        let mut found = None;
        self.users
            .for_each_at(self.hasher.user_key(user), |(known, key)| {
                if known == user {
                    found = Some(*key);
                }
            });
        found
    }

    /// The key of a user, interning it on first sight.
    pub(crate) fn intern_user(&self, user: &UserId) -> UserKey {
        if let Some(key) = self.user_key(user) {
            return key;
        }
        let _writer = lock(&self.users_writer);
        if let Some(key) = self.user_key(user) {
            return key;
        }
        let key = UserKey(self.next_user.fetch_add(1, Ordering::AcqRel));
        self.users
            .insert(self.hasher.user_key(user), (user.clone(), key));
        key
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;
    use crate::types::schema::TableScope;

    fn install(index: &RoutingIndex, name: &str) -> Arc<TableRoute> {
        let table_id = TableId::new("ns", name);
        let schema = DataArc::new(TableSchema::new(
            table_id.clone(),
            TableScope::Shared,
            ["id"],
        ));
        match index.install_new_route(&table_id, |key| {
            Arc::new(TableRoute::new(key, schema.clone()))
        }) {
            Installed::Added(route) => route,
            Installed::AlreadyPresent => panic!("{name} was new"),
        }
    }

    #[test]
    fn a_dropped_table_resolves_by_neither_id_nor_key_and_its_route_is_released() {
        let index = RoutingIndex::new();
        let kept = install(&index, "kept");
        let mut keys = Vec::new();
        for _ in 0..100 {
            let route = install(&index, "churned");
            keys.push(route.key);
            index.remove_table(&route.schema.table_id);
            // The directory let go of the dropped table's route: this is the last reference.
            assert_eq!(Arc::strong_count(&route), 1);
        }
        let mut sorted = keys.clone();
        sorted.sort_unstable_by_key(|key| key.0);
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "keys are never reused");
        index.with_directory(|directory| {
            assert!(keys.iter().all(|&key| directory.route(key).is_none()));
            assert!(directory
                .route_by_id(&TableId::new("ns", "churned"))
                .is_none());
            let live: Vec<TableKey> = directory.routes().map(|route| route.key).collect();
            assert_eq!(live, [kept.key]);
            assert!(directory.route(kept.key).is_some());
        });
    }
}
