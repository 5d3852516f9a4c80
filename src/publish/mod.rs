//! Publishing: route -> filter -> gate -> channel.
//!
//! One publish reads the clock once, loads the table directory once (arc-swap, no lock),
//! finds candidates through the routing index, evaluates each candidate's compiled filter
//! on the row in place, passes the gate (one atomic load once live) and makes one
//! `try_send` per (commit, subscription) into the connection's flume channel. Deliveries
//! share the commit through an `Arc`; no row is copied. Shared counters are bumped once per
//! publish.

mod reap_queue;

use crate::types::seen_keys::SeenKeys;
pub(crate) use reap_queue::ReapQueue;

use std::cell::RefCell;
use std::thread::LocalKey;

use smallvec::SmallVec;

use crate::config::SlowConsumerPolicy;
use crate::config::MAX_COMMIT_CHANGES;
use crate::connection::core_ref::CoreRef;
use crate::connection::delivery::{
    encode_match, Delivery, DeliveryKind, OtherDelivery, RunEnd, RunsBuilder,
};
use crate::connection::gate::{BufferedNotification, GateDecision};
use crate::connection::subscription::{Attempt, SubscriptionCore, SubscriptionHandle};
use crate::error::{LiveError, LiveResult};
use crate::query::membership::match_change;
use crate::query::CompiledProjection;
use crate::route::index::RoutingIndex;
use crate::route::index::{several_keys, TableRoute};
use crate::stats::StatsCounters;
use crate::sync::{channel::TrySendError, Arc, DataArc, LeanArc};
use crate::types::change::{ChangeNotification, Commit};
use crate::types::ending::SubscriptionEnding;
use crate::types::ids::{SeqId, TableKey, UserKey};
use crate::types::schema::TableScope;
use crate::types::shared_commit::{CommitRefs, MatchedSource, SharedCommit, ViewRefs};
use crate::validate::validate_change;

/// What one publish did, so the engine can see back-pressure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishSummary {
    /// Subscriptions that matched at least one change of the commit.
    pub matched: usize,
    /// Deliveries enqueued into channels (one per matched live subscription).
    pub enqueued: usize,
    /// Deliveries dropped: channel full or receiver gone.
    pub dropped: usize,
    /// Of `dropped`, those whose receiver was gone.
    pub dropped_closed: usize,
    /// Deliveries held behind a gate while a snapshot loads.
    pub buffered: usize,
    /// Deliveries dropped at a gate because the subscriber's snapshot already holds them.
    pub covered_by_snapshot: usize,
    /// Filter evaluations made (an update's old and new row count as two); topic route
    /// filters included.
    pub evaluated: usize,
    /// Messages appended to topics by topic routes.
    pub topic_messages: usize,
    /// Topic messages that could not be written: the topic's store failed, or a route no
    /// longer compiles against its table. The live deliveries above are unaffected; each
    /// failure is also counted in the topic's [`TopicInfo`](crate::TopicInfo) (with the
    /// error) and in [`RegistryStats`](crate::RegistryStats).
    pub topic_write_failures: usize,
}

/// Whose rows a change touches, as the index keys them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Shared,
    User(UserKey),
    /// A user no subscription was ever opened for: nothing to route.
    Unknown,
}

impl Owner {
    fn key(self) -> Option<UserKey> {
        match self {
            Owner::User(key) => Some(key),
            _ => None,
        }
    }
}

thread_local! {
    /// Index keys a multi-change commit looks up, reused across publishes on this thread.
    static LOOKUP_KEYS: RefCell<GroupKeys> = RefCell::new(GroupKeys::default());
    /// Subscriptions that matched several changes of a commit, reused likewise.
    static MULTI: RefCell<MultiMatches> = RefCell::new(MultiMatches::default());
}

/// Takes this thread's scratch value out of `key` (its buffers keep their capacity across
/// publishes). During thread-local teardown, or if it were ever re-entered, a fresh one
/// serves instead of panicking.
fn take_scratch<T: Default>(key: &'static LocalKey<RefCell<T>>) -> T {
    key.try_with(|cell| {
        cell.try_borrow_mut()
            .map(|mut value| std::mem::take(&mut *value))
    })
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default()
}

/// Puts a scratch value back for the next publish on this thread (dropped if it cannot).
fn put_scratch<T>(key: &'static LocalKey<RefCell<T>>, value: T) {
    let _ = key.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = value;
        }
    });
}

/// The index keys of a multi-change commit's group, each with the changes whose rows
/// give it: a subscription pinned to a key can match only those, so it is evaluated
/// against them alone (against every change of the group, a commit of n changes each
/// matching its own subscription cost n^2 evaluations).
#[derive(Default)]
struct GroupKeys {
    /// (key, change position) for every pinned value of every change's rows.
    pairs: Vec<(u64, usize)>,
    /// The distinct keys, sorted.
    keys: Vec<u64>,
    /// Where each key's positions start in `positions` (one more entry, the end).
    starts: Vec<usize>,
    /// The positions of each key in turn, ascending within a key.
    positions: Vec<usize>,
    /// The union of a subscription's keys' positions (one stored under several keys).
    merged: Vec<usize>,
}

impl GroupKeys {
    /// Sorts the pairs into distinct keys and their positions.
    fn settle(&mut self) {
        self.pairs.sort_unstable();
        self.pairs.dedup();
        self.keys.clear();
        self.starts.clear();
        self.positions.clear();
        for &(key, position) in &self.pairs {
            if self.keys.last() != Some(&key) {
                self.keys.push(key);
                self.starts.push(self.positions.len());
            }
            self.positions.push(position);
        }
        self.starts.push(self.positions.len());
    }

    /// The positions of the `index`-th key.
    fn positions_of(&self, index: usize) -> &[usize] {
        &self.positions[self.starts[index]..self.starts[index + 1]]
    }

    /// The positions of every key in `keys` that the group looked up, in order, once each.
    fn merge_positions_of(&mut self, keys: &[u64]) -> &[usize] {
        self.merged.clear();
        for key in keys {
            if let Ok(index) = self.keys.binary_search(key) {
                let (from, to) = (self.starts[index], self.starts[index + 1]);
                self.merged.extend_from_slice(&self.positions[from..to]);
            }
        }
        self.merged.sort_unstable();
        self.merged.dedup();
        &self.merged
    }

    fn clear(&mut self) {
        self.pairs.clear();
        self.keys.clear();
        self.starts.clear();
        self.positions.clear();
        self.merged.clear();
    }
}

/// Deliveries of several matches each, held back until the group's candidates are all
/// evaluated so their runs share one buffer.
#[derive(Default)]
struct MultiMatches {
    runs: RunsBuilder,
    /// A subscription and where its run starts.
    pending: Vec<(SubscriptionHandle, u32)>,
}

impl MultiMatches {
    /// Beyond this many held matches the buffer is shared out early, so it stays bounded
    /// (and its offsets fit in 32 bits) however large the commit and the fan-out.
    const FLUSH_AT: usize = 1 << 20;
}

/// What publishing needs, borrowed from the manager for one publish: the routing index,
/// the counters, the slow-consumer policy, and the queue of subscriptions ended on the
/// publish path for the next writer call to unroute.
pub(crate) struct Publisher<'a> {
    pub(crate) index: &'a RoutingIndex,
    pub(crate) stats: &'a StatsCounters,
    pub(crate) slow_consumer_policy: SlowConsumerPolicy,
    /// True when the manager has a ready queue: only then does a delivery look at its
    /// connection's arming flag.
    pub(crate) ready_queue: bool,
    pub(crate) reap: &'a ReapQueue,
}

impl Publisher<'_> {
    /// Publishes the changes of one commit, numbered `seq` (see
    /// `ConnectionsManager::publish_commit`). `feed_topics`, when given, receives the
    /// commit and the table of each change once the live deliveries are made.
    pub(crate) fn publish_commit(
        &self,
        seq: SeqId,
        changes: Vec<ChangeNotification>,
        keys: Option<&[TableKey]>,
        now_ms: u64,
        feed_topics: Option<TopicFeed<'_>>,
    ) -> LiveResult<PublishSummary> {
        if changes.is_empty() {
            return Ok(PublishSummary::default());
        }
        if changes.len() > MAX_COMMIT_CHANGES {
            return Err(LiveError::CommitTooLarge {
                changes: changes.len(),
                max: MAX_COMMIT_CHANGES,
            });
        }
        let change_count = changes.len() as u64;
        let summary = self.index.with_directory(|directory| {
            let mut resolved: SmallVec<[(&Arc<TableRoute>, Owner); 4]> =
                SmallVec::with_capacity(changes.len());
            for (position, change) in changes.iter().enumerate() {
                // A caller that knows each change's table key (the C ABI) skips the hash
                // of the table's name; the key must still name the change's table.
                let route = match keys.and_then(|keys| keys.get(position)) {
                    Some(&key) => directory
                        .route(key)
                        .filter(|route| route.schema.table_id == change.table_id),
                    None => directory.route_by_id(&change.table_id),
                }
                .ok_or_else(|| LiveError::UnknownTable(change.table_id.clone()))?;
                validate_change(&route.schema, change)?;
                let owner = match route.schema.scope {
                    TableScope::Shared => Owner::Shared,
                    TableScope::User => {
                        let owner = change
                            .owner
                            .as_ref()
                            .ok_or_else(|| LiveError::MissingOwner(change.table_id.clone()))?;
                        self.index
                            .user_key(owner)
                            .map_or(Owner::Unknown, Owner::User)
                    }
                };
                resolved.push((route, owner));
            }
            let commit = SharedCommit::new(Commit::new(seq, changes));
            let mut dispatch = Dispatch {
                publisher: self,
                commit: &commit,
                refs: commit.refs(),
                views: Views::default(),
                kept: KeptHere::default(),
                seq,
                now_ms,
                summary: PublishSummary::default(),
            };
            if resolved.len() == 1 {
                let (route, owner) = resolved[0];
                dispatch.route_single(route, owner);
            } else {
                let mut order: SmallVec<[usize; 8]> = (0..resolved.len()).collect();
                order.sort_by_key(|&position| {
                    let (route, owner) = resolved[position];
                    (route.key, owner, position)
                });
                for group in order.chunk_by(|&a, &b| {
                    Arc::ptr_eq(resolved[a].0, resolved[b].0) && resolved[a].1 == resolved[b].1
                }) {
                    let (route, owner) = resolved[group[0]];
                    dispatch.route_group(route, owner, group);
                }
            }
            let mut summary = dispatch.finish();
            if let Some(feed_topics) = feed_topics {
                let mut tables = resolved.iter().map(|(route, _)| &***route);
                feed_topics(&commit, &mut tables, &mut summary);
            }
            Ok::<_, LiveError>(summary)
        })?;
        let stats = self.stats;
        StatsCounters::add(&stats.published, 1);
        StatsCounters::add(&stats.published_changes, change_count);
        StatsCounters::add(&stats.delivered, summary.enqueued as u64);
        stats.add_drops(summary.dropped, summary.dropped_closed);
        StatsCounters::add(&stats.buffered, summary.buffered as u64);
        StatsCounters::add(
            &stats.covered_by_snapshot,
            summary.covered_by_snapshot as u64,
        );
        StatsCounters::add(&stats.filter_evaluations, summary.evaluated as u64);
        Ok(summary)
    }
}

/// The topic hook of one publish: the commit, the table of each of its changes in order,
/// and the summary to count topic messages in.
pub(crate) type TopicFeed<'a> =
    &'a mut dyn FnMut(&Commit, &mut dyn Iterator<Item = &TableRoute>, &mut PublishSummary);

/// One publish in progress.
pub(crate) struct Dispatch<'a> {
    pub(crate) publisher: &'a Publisher<'a>,
    pub(crate) commit: &'a SharedCommit,
    /// The deliveries' references to the commit, counted a block at a time.
    refs: CommitRefs<'a>,
    /// The views of matches too large for a delivery's bits, one per (source, match).
    views: Views,
    /// The projections kept on the commit so far (see `SharedCommit::keep_alive`).
    kept: KeptHere,
    /// The commit's SeqId, kept here so a delivery does not read it from the commit.
    seq: SeqId,
    pub(crate) now_ms: u64,
    pub(crate) summary: PublishSummary,
}

impl Dispatch<'_> {
    /// Ends the dispatch (giving back the commit references it did not hand out).
    fn finish(self) -> PublishSummary {
        self.summary
    }

    /// A commit of one change: candidates come from the scan list and the index keys of the
    /// row's values; an update whose pinned value moved looks up both values and skips, on
    /// the second lookup, subscriptions the first already found.
    fn route_single(&mut self, route: &TableRoute, owner: Owner) {
        if owner == Owner::Unknown {
            return;
        }
        let change = &self.commit.changes[0];
        route.for_each_scanned(|handle| self.consider_single(handle, owner, change));
        if !route.has_eq_routes() {
            return;
        }
        let hasher = &self.publisher.index.hasher;
        if let Owner::User(user) = owner {
            let key = hasher.bucket_key(Some(user), None, 0);
            route.for_each_at(key, |handle| self.consider_single(handle, owner, change));
        }
        route.for_each_pinned_column(|column| {
            let position = usize::from(column);
            let new_key = hasher
                .value_key(change.row.value(position))
                .map(|value_key| hasher.bucket_key(owner.key(), Some(column), value_key));
            let old_key = change.old_row.as_ref().and_then(|old_row| {
                hasher
                    .value_key(old_row.value(position))
                    .map(|value_key| hasher.bucket_key(owner.key(), Some(column), value_key))
            });
            if let Some(old_key) = old_key {
                route.for_each_at(old_key, |handle| {
                    self.consider_single(handle, owner, change)
                });
            }
            if let Some(new_key) = new_key.filter(|key| Some(*key) != old_key) {
                route.for_each_at(new_key, |handle| {
                    let seen_under_old = old_key.is_some_and(|old_key| {
                        several_keys(handle, hasher).is_some_and(|keys| keys.contains(&old_key))
                    });
                    if !seen_under_old {
                        self.consider_single(handle, owner, change);
                    }
                });
            }
        });
    }

    /// Inlined into each walk that calls it (the fan-out's scan above all): per candidate,
    /// a call, its register saves and its argument moves fewer.
    #[inline(always)]
    fn consider_single(
        &mut self,
        handle: &SubscriptionHandle,
        owner: Owner,
        change: &ChangeNotification,
    ) {
        let core = &handle.core;
        if core.owner != owner.key() {
            // A routing-key collision with another user's key: never deliver across tenants.
            return;
        }
        let Some(change_type) = match_change(
            core.query.filter.as_ref(),
            &core.params,
            change,
            &mut self.summary.evaluated,
        ) else {
            return;
        };
        self.summary.matched += 1;
        self.deliver(handle, encode_match(0, change_type), None);
    }

    /// A commit with several changes for one (table, owner): each candidate is found once
    /// and sees all the group's changes, so it gets one delivery with everything it matched.
    fn route_group(&mut self, route: &TableRoute, owner: Owner, positions: &[usize]) {
        if owner == Owner::Unknown {
            return;
        }
        let mut multi = take_scratch(&MULTI);
        route.for_each_scanned(|handle| self.consider_group(handle, owner, positions, &mut multi));
        if route.has_eq_routes() {
            self.route_group_indexed(route, owner, positions, &mut multi);
        }
        self.deliver_multi(&mut multi);
        put_scratch(&MULTI, multi);
    }

    fn route_group_indexed(
        &mut self,
        route: &TableRoute,
        owner: Owner,
        positions: &[usize],
        multi: &mut MultiMatches,
    ) {
        // The keys first, deduplicated, so each subscription is found once without
        // cloning or sorting the handles themselves; with each key, the changes giving it.
        let mut group = take_scratch(&LOOKUP_KEYS);
        let hasher = &self.publisher.index.hasher;
        let user_key = owner
            .key()
            .map(|user| hasher.bucket_key(Some(user), None, 0));
        route.for_each_pinned_column(|column| {
            for &position in positions {
                let change = &self.commit.changes[position];
                let rows = std::iter::once(&change.row).chain(change.old_row.as_ref());
                for row in rows {
                    if let Some(value_key) = hasher.value_key(row.value(usize::from(column))) {
                        let key = hasher.bucket_key(owner.key(), Some(column), value_key);
                        group.pairs.push((key, position));
                    }
                }
            }
        });
        group.settle();
        // A subscription stored under several keys (an IN list) is visited once, under
        // the first of its keys looked up (the user's key included).
        let first_looked_up = |its_keys: &[u64], keys: &[u64]| {
            its_keys
                .iter()
                .find(|candidate| {
                    Some(**candidate) == user_key || keys.binary_search(candidate).is_ok()
                })
                .copied()
        };
        // A user's unpinned subscriptions sit under the user's key and see every change
        // (anything else there by a key collision sees them too: a superset is safe).
        if let Some(user_key) = user_key {
            route.for_each_at(user_key, |handle| {
                let visit = several_keys(handle, hasher).is_none_or(|its_keys| {
                    first_looked_up(&its_keys, &group.keys) == Some(user_key)
                });
                if visit {
                    self.consider_group(handle, owner, positions, multi);
                }
            });
        }
        for index in 0..group.keys.len() {
            let key = group.keys[index];
            // Walked above with every change (a key collision at most).
            if Some(key) == user_key {
                continue;
            }
            route.for_each_at(key, |handle| match several_keys(handle, hasher) {
                None => {
                    self.consider_group(handle, owner, group.positions_of(index), multi);
                }
                Some(its_keys) => {
                    // With the changes of all its keys.
                    if first_looked_up(&its_keys, &group.keys).is_none_or(|first| first == key) {
                        let positions = group.merge_positions_of(&its_keys);
                        self.consider_group(handle, owner, positions, multi);
                    }
                }
            });
        }
        group.clear();
        put_scratch(&LOOKUP_KEYS, group);
    }

    fn consider_group(
        &mut self,
        handle: &SubscriptionHandle,
        owner: Owner,
        positions: &[usize],
        multi: &mut MultiMatches,
    ) {
        let core = &handle.core;
        if core.owner != owner.key() {
            return;
        }
        let filter = core.query.filter.as_ref();
        let start = multi.runs.open();
        for &position in positions {
            let change = &self.commit.changes[position];
            if let Some(change_type) =
                match_change(filter, &core.params, change, &mut self.summary.evaluated)
            {
                multi.runs.push(encode_match(position, change_type));
            }
        }
        match multi.runs.close(start) {
            RunEnd::Empty => {}
            RunEnd::One(packed) => {
                self.summary.matched += 1;
                self.deliver(handle, packed, None);
            }
            RunEnd::Run(start) => {
                self.summary.matched += 1;
                multi.pending.push((handle.clone(), start));
                if multi.runs.len() >= MultiMatches::FLUSH_AT {
                    self.deliver_multi(multi);
                }
            }
        }
    }

    /// Shares out the held runs: one buffer for all of them, then one delivery each.
    fn deliver_multi(&mut self, multi: &mut MultiMatches) {
        if multi.pending.is_empty() {
            multi.runs.take();
            return;
        }
        let runs = SharedCommit::with_runs(self.commit.clone(), multi.runs.take());
        let mut refs = runs.refs();
        for (handle, start) in multi.pending.drain(..) {
            self.deliver(&handle, start, Some(&mut refs));
        }
    }

    /// Passes the gate and sends (or buffers) one delivery of `matched`: the one match, with
    /// the commit as its source, or where its run starts in the run buffer `runs` hands out.
    /// Inlined for the same reason as `consider_single` (the send itself, in flume, and the
    /// gated path stay calls).
    #[inline(always)]
    pub(crate) fn deliver(
        &mut self,
        handle: &SubscriptionHandle,
        matched: u32,
        runs: Option<&mut CommitRefs<'_>>,
    ) {
        // A live gate passes a SeqId above its boundary with one load; everything else
        // (loading, covered, ended) takes the gate's full decision.
        if handle.core.flow.passes_live(self.seq) {
            self.send_now(handle, matched, runs);
        } else {
            self.deliver_gated(handle, matched, runs);
        }
    }

    /// One delivery's reference to its source (the commit, or the run buffer `runs` hands
    /// out) with its match: in the pointer's bits when small, else through the publish's
    /// view of that match.
    #[inline(always)]
    fn matched_source(&mut self, matched: u32, runs: Option<&mut CommitRefs<'_>>) -> MatchedSource {
        if MatchedSource::fits(matched) {
            let source = match runs {
                Some(runs) => runs.take(),
                None => self.refs.take(),
            };
            MatchedSource::small(source, matched)
        } else {
            let base = match &runs {
                Some(runs) => runs.source(),
                None => self.commit,
            };
            self.views.take(base, matched)
        }
    }

    /// Keeps the subscription's projection on the commit before a delivery names it, once
    /// per publish (the deliveries' change sets name it uncounted).
    #[inline(always)]
    fn keep_projection(&mut self, core: &SubscriptionCore) {
        let projection = &core.query.projection;
        if DataArc::as_ptr(projection) as usize != self.kept.last {
            self.keep_projection_first_time(projection);
        }
    }

    #[cold]
    #[inline(never)]
    fn keep_projection_first_time(&mut self, projection: &DataArc<CompiledProjection>) {
        if self.kept.insert(DataArc::as_ptr(projection) as usize) {
            self.commit.keep_alive(projection);
        }
    }

    /// Sends one delivery the gate let through: its source, its projection kept on the
    /// commit, the channel push.
    #[inline(always)]
    fn send_now(
        &mut self,
        handle: &SubscriptionHandle,
        matched: u32,
        runs: Option<&mut CommitRefs<'_>>,
    ) {
        let source = self.matched_source(matched, runs);
        self.keep_projection(&handle.core);
        send_change(
            handle,
            source,
            self.now_ms,
            self.publisher.delivery_policy(),
            &mut self.summary,
        );
    }

    /// [`deliver`](Self::deliver) past a gate that is not simply live.
    #[cold]
    #[inline(never)]
    fn deliver_gated(
        &mut self,
        handle: &SubscriptionHandle,
        matched: u32,
        runs: Option<&mut CommitRefs<'_>>,
    ) {
        let core = &handle.core;
        let seq = self.seq;
        let source = match &runs {
            Some(runs) => runs.source(),
            None => self.commit,
        };
        let decision = core.flow.admit(seq, || BufferedNotification {
            seq,
            commit: source.clone(),
            matched,
        });
        match decision {
            GateDecision::SendNow => self.send_now(handle, matched, runs),
            GateDecision::Buffered => self.summary.buffered += 1,
            GateDecision::CoveredBySnapshot => self.summary.covered_by_snapshot += 1,
            // The buffer overflowed: the subscriber is told to resync (once), and the
            // subscription is queued for unrouting by the next writer call (publish
            // unroutes nothing). Until then it stays in its connection's map, as ended.
            GateDecision::Overflowed => {
                let ending = SubscriptionEnding::ResyncRequired;
                let stats = self.publisher.stats;
                if handle.connection.end_subscription(core, ending, stats) {
                    self.publisher
                        .reap
                        .push(core.live_query_id(handle.connection.id));
                }
            }
            // Published while the subscribe was still entering it under its keys.
            GateDecision::Closed | GateDecision::NotYetOpen => {}
        }
    }
}

/// How deliveries are made, from the manager's configuration.
#[derive(Clone, Copy)]
pub(crate) struct DeliveryPolicy {
    pub(crate) slow_consumer: SlowConsumerPolicy,
    /// The manager has a ready queue (see [`Publisher::ready_queue`]).
    pub(crate) ready_queue: bool,
}

impl Publisher<'_> {
    fn delivery_policy(&self) -> DeliveryPolicy {
        DeliveryPolicy {
            slow_consumer: self.slow_consumer_policy,
            ready_queue: self.ready_queue,
        }
    }
}

/// Sends one change delivery into the subscription's connection channel, numbering it, and
/// accounts for the outcome in `summary` (the caller adds that to the manager's counters
/// once). Used by publish and by the gate's flush. The channel is reached through the
/// handle's own sender, so a delivery reads its connection's state only when the manager
/// has a ready queue, or on the slow paths.
#[inline(always)]
pub(crate) fn send_change(
    handle: &SubscriptionHandle,
    source: MatchedSource,
    now_ms: u64,
    policy: DeliveryPolicy,
    summary: &mut PublishSummary,
) {
    let core = &handle.core;
    let attempt = core.next_attempt();
    let tx = &handle.notification_tx;
    // After a drop the delivery goes out of line (an allocation): while the channel stays
    // full or closed, the attempt is dropped without building it. A stale answer costs
    // an allocation, or is an ordinary drop reported as a gap.
    let outcome = if attempt.after_drop && tx.is_disconnected() {
        Err(TrySendError::Disconnected(()))
    } else if attempt.after_drop && tx.is_full() {
        Err(TrySendError::Full(()))
    } else {
        // A match rather than `map_err`: with the delivery's alignment, the compiler read
        // `map_err`'s result sixteen bytes wide right after the channel wrote eight (a
        // store-forwarding stall on every delivery); matched here, it tests one word.
        match tx.try_send(change_delivery(core, source, attempt)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(delivery)) => {
                drop(delivery);
                Err(TrySendError::Full(()))
            }
            Err(TrySendError::Disconnected(delivery)) => {
                drop(delivery);
                Err(TrySendError::Disconnected(()))
            }
        }
    };
    match outcome {
        Ok(()) => {
            core.record_delivered(now_ms);
            if policy.ready_queue {
                handle.connection.notify_ready();
            }
            summary.enqueued += 1;
        }
        Err(TrySendError::Full(_)) => {
            let connection = &handle.connection;
            let disconnect = matches!(policy.slow_consumer, SlowConsumerPolicy::Disconnect);
            // Cut off before the drop is recorded: a delivery that follows the drop (and
            // would make the receiver build a gap notice) finds the stream already ended.
            if disconnect {
                connection.cut_off_slow_consumer();
            }
            core.record_dropped(attempt.number);
            summary.dropped += 1;
            if !disconnect {
                connection.flag_gap(core);
            }
        }
        Err(TrySendError::Disconnected(_)) => {
            core.record_dropped(attempt.number);
            summary.dropped += 1;
            summary.dropped_closed += 1;
        }
    }
}

/// The delivery of `attempt`: numbered by its place in the channel, or, for the first
/// after a dropped one, out of line with its number.
#[inline(always)]
pub(crate) fn change_delivery(
    core: &LeanArc<SubscriptionCore>,
    source: MatchedSource,
    attempt: Attempt,
) -> Delivery {
    if attempt.after_drop {
        resumed(core, source, attempt.number)
    } else {
        // No reference count: the handle's release keeps the core alive for its queued
        // deliveries (connection::core_ref). No number: the receiver counts it.
        Delivery(DeliveryKind::Changes {
            core: CoreRef::of(core),
            source,
        })
    }
}

/// The first change delivery after a dropped one: out of line, with its number, so the
/// receiver reports the gap before it.
#[cold]
#[inline(never)]
fn resumed(core: &LeanArc<SubscriptionCore>, source: MatchedSource, number: u64) -> Delivery {
    let (source, matched) = source.into_parts();
    Delivery::other(OtherDelivery::Resumed {
        core: LeanArc::clone(core),
        source,
        matched,
        number,
    })
}

/// The projections one publish kept on its commit, by address.
#[derive(Default)]
struct KeptHere {
    /// The latest (a fan-out's subscribers usually share one).
    last: usize,
    seen: SeenKeys<usize>,
}

impl KeptHere {
    /// Records `projection` as the latest; true the first time it is seen.
    fn insert(&mut self, projection: usize) -> bool {
        self.last = projection;
        self.seen.place(projection).1
    }
}

/// The views one publish made, each with its block of references (see [`ViewRefs`]).
#[derive(Default)]
struct Views {
    /// (source address, match) of each view in `made`.
    keys: SeenKeys<(usize, u32)>,
    made: Vec<ViewRefs>,
}

impl Views {
    /// A reference to the view of `matched` over `base`, made on first use.
    fn take(&mut self, base: &SharedCommit, matched: u32) -> MatchedSource {
        let (at, new) = self.keys.place((base.address(), matched));
        if new {
            self.made.push(ViewRefs::new(base.clone(), matched));
        }
        self.made[at].take()
    }
}
