//! Consumer groups: a committed offset per partition, and leases.
//!
//! Within a group each partition is leased to at most one consumer session at a time. A
//! lease starts at the group's committed offset and hands messages out from there; the
//! holder commits offsets as it finishes them. Every consume and commit by the holder
//! renews its leases for the group's lease duration (the manager clock's monotonic reading,
//! so a wall-clock step expires nothing); a lease not renewed in
//! time expires, and that expiry is the visibility timeout: the next holder (possibly the
//! same session) starts again from the committed offset, so everything handed out but not
//! committed is handed out again (at-least-once). A lease also ends when its session leaves
//! the group, its connection unregisters or times out, or the partition is seeked.
//!
//! Partitions are shared out among the group's live members (sessions that consumed within
//! one lease duration): with `P` partitions and `M` members each holds `P / M`, and
//! `P % M` of them one more. A member below its share that finds no free partition nudges
//! the members above it, which release a partition (preferring one with nothing in flight)
//! on their next pass.

use std::collections::HashMap;

use crate::error::{LiveError, LiveResult};
use crate::sync::{lock, mutant, Arc, AtomicBool, AtomicU64, DataArc, Mutex, Ordering};
use crate::topics::deliveries::{Deliveries, Limit};
use crate::topics::log::{PartitionBounds, TopicLogError};
use crate::topics::session::Membership;
use crate::topics::wait::{SessionWake, WaitList};
use crate::topics::{offset_out_of_range, store_error, Topic};
use crate::types::ids::ConnectionId;
use std::time::Duration;

/// Where a group with no committed offset on a partition starts, and what happens when
/// retention removes messages the group has not committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ResetPolicy {
    /// Start at the oldest retained message; when retention overtakes the committed
    /// offset, continue from the oldest retained message (the skipped range is reported in
    /// the batch and counted; if that consume fails after meeting it, the group's next
    /// batch reports it).
    #[default]
    Earliest,
    /// Start at the end: only messages published after the group was created; when
    /// retention overtakes the committed offset, continue from the end (skipped range
    /// reported and counted).
    Latest,
    /// Do not choose: a partition without a committed offset is
    /// [`LiveError::NoCommittedOffset`] until `seek_group` positions it, and a committed
    /// offset overtaken by retention is [`LiveError::OffsetOutOfRange`].
    None,
}

/// How a consumer group behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GroupConfig {
    /// Where the group starts; see [`ResetPolicy`].
    pub reset: ResetPolicy,
    /// How long a lease lasts without being renewed (the visibility timeout), on the
    /// manager clock's monotonic reading. Bounded by [`TopicLimits::min_lease`](crate::TopicLimits::min_lease)
    /// and [`TopicLimits::max_lease`](crate::TopicLimits::max_lease); a consume's timeout
    /// may not exceed it.
    pub lease_duration: Duration,
    /// Where a message the group has handed out too often goes, if anywhere (default
    /// `None`: a message is handed out again however often it was). See
    /// [`DeadLetterPolicy`] for what happens, and its warning on durability: **a dead
    /// letter is only as durable as the dead-letter topic's log**, so a group of a durable
    /// topic wants a durable dead-letter topic too.
    ///
    /// Checked when the group is created: `max_deliver` 0 is [`LiveError::OutOfBounds`],
    /// an unknown topic [`LiveError::UnknownTopic`], the group's own topic
    /// [`LiveError::InvalidConfig`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub dead_letter: Option<DeadLetterPolicy>,
}

impl Default for GroupConfig {
    /// Earliest, with a 30-second lease, and no dead-letter topic.
    fn default() -> Self {
        Self {
            reset: ResetPolicy::Earliest,
            lease_duration: Duration::from_secs(30),
            dead_letter: None,
        }
    }
}

impl GroupConfig {
    /// A config with this reset policy and the default lease.
    pub fn with_reset(reset: ResetPolicy) -> Self {
        Self {
            reset,
            ..Self::default()
        }
    }

    /// Sets the lease duration.
    pub fn lease(mut self, lease_duration: Duration) -> Self {
        self.lease_duration = lease_duration;
        self
    }

    /// Sends a message handed out `max_deliver` times to `topic` instead of handing it out
    /// again: see [`DeadLetterPolicy`] (and its warning on durability).
    pub fn dead_letter(mut self, topic: impl Into<String>, max_deliver: u32) -> Self {
        self.dead_letter = Some(DeadLetterPolicy::new(topic, max_deliver));
        self
    }
}

/// Where a consumer group sends a message it has handed out too often: the group's
/// dead-letter topic and its max-deliver, set in [`GroupConfig::dead_letter`] (or changed
/// on a live group with
/// [`ConnectionsManager::set_dead_letter`](crate::ConnectionsManager::set_dead_letter)).
///
/// A message the group has handed out `max_deliver` times is not handed out again. Every
/// hand-out counts — the first, one after a nack, one after a lease expired (a consumer
/// that crashes on a message never nacks it). It is appended to the dead-letter topic,
/// when a nack finds it at max-deliver or when a consume would hand it out once more, and
/// the partition moves on past it: if it is at the group's committed offset the group
/// commits past it; if messages before it were handed out and not committed, nothing is
/// committed for them — the dead letter is only marked, skipped when they are handed out
/// again, and committed past together with them (at-least-once holds for a consumer
/// working on a batch concurrently).
///
/// The dead letter is a direct message keyed as the original (per-key order holds in the
/// dead-letter topic too), with the original's SeqId, whose payload is the JSON object
/// `{"topic":…,"partition":…,"offset":…,"deliveries":…,"message":{…}}`, the last being
/// the original as [`TopicMessage::to_json`](crate::TopicMessage::to_json) writes it. It
/// is appended before the group moves past the original, so a failure between the two
/// leaves the message in both places (at least once), never in neither.
///
/// # Durability
///
/// **Warning.** Delivery counts live in memory, per group, from a message's first
/// hand-out until it is committed: a restart starts them again. And a dead letter is only
/// as durable as the dead-letter topic's [`TopicLog`](crate::TopicLog): with a durable
/// source topic (say a `FjallLog`, feature `fjall`) and an in-memory dead-letter topic
/// (`create_topic`), a process restart loses the dead letters while the source's
/// committed offset, stored durably, has moved past them — those messages are then in
/// neither place. Keep the dead-letter topic in a durable log too (the same `FjallStore`
/// holds any number of topics). livecore does not refuse the mix: it cannot tell a durable
/// store from another, and a dead-letter topic watched live (alerting) may be fine to lose.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeadLetterPolicy {
    /// The dead-letter topic: it must exist when the policy is set, and may not be the
    /// group's own topic.
    pub topic: String,
    /// Hand-outs allowed per message (at least 1): the message is dead-lettered instead of
    /// being handed out once more.
    pub max_deliver: u32,
}

impl DeadLetterPolicy {
    /// Dead letters go to `topic` after `max_deliver` hand-outs.
    pub fn new(topic: impl Into<String>, max_deliver: u32) -> Self {
        Self {
            topic: topic.into(),
            max_deliver,
        }
    }
}

/// One partition of a group, as `group_offsets` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GroupPartition {
    /// The partition.
    pub partition: u32,
    /// The committed offset (the next message the group has not finished), or `None` when
    /// the group has no position on the partition (reset policy `None`).
    pub committed: Option<u64>,
    /// The partition's retained offsets now.
    pub bounds: PartitionBounds,
    /// Messages between the committed offset and the end (uncommitted or not yet
    /// consumed).
    pub lag: u64,
    /// The session holding the lease, if any lease is live.
    pub holder: Option<ConnectionId>,
    /// One past the last offset handed out under the current lease.
    pub delivered: Option<u64>,
    /// When the current lease expires (ms): the manager clock's wall reading it expires
    /// at, if the wall clock keeps step with the monotonic one the lease runs on.
    pub lease_expires_at_ms: Option<u64>,
}

/// A group's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GroupStats {
    /// Messages handed out again because a lease ended before they were committed,
    /// counted as they are handed out again (each time; a dead letter, skipped, is not
    /// handed out and not counted).
    pub redelivered: u64,
    /// Messages retention removed before the group committed them, skipped under the
    /// `Earliest` or `Latest` policy.
    pub skipped_by_retention: u64,
    /// Leases that expired without being renewed.
    pub leases_expired: u64,
    /// Nacks accepted (each hands its message, or when it dead-letters the message what
    /// followed it, out again).
    pub nacks: u64,
    /// Messages handed out again because a nack rewound them, counted as they are handed
    /// out again. A message a nack and then a lease's end both rewound counts here once,
    /// not in `redelivered` too.
    pub nack_redelivered: u64,
    /// Explicit lease extensions (`extend_leases` calls that renewed at least one lease).
    pub lease_extensions: u64,
    /// Messages sent to the dead-letter topic after too many deliveries.
    pub dead_lettered: u64,
    /// Live members now.
    pub members: usize,
}

/// What a nack did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NackOutcome {
    /// The message (and what followed it) will be handed out again.
    Redeliver,
    /// Past max-deliver: the caller dead-letters the message, after `deliveries`.
    DeadLetter { deliveries: u32 },
}

/// A lease on one partition.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lease {
    pub(crate) holder: ConnectionId,
    /// The manager clock's monotonic reading it expires at.
    pub(crate) expires_at_ms: u64,
    /// The next offset to hand out.
    pub(crate) next: Option<u64>,
    /// Distinguishes successive leases, so a read made under one is not applied to another.
    pub(crate) epoch: u64,
    /// After a nack with a delay: the monotonic reading before which this lease hands
    /// nothing out (the partition is held, head of line, until then).
    pub(crate) held_until_ms: Option<u64>,
}

impl Lease {
    /// True if this is `me`'s lease `epoch`, still positioned at `next`: what was read
    /// under it from `next` may be applied to it.
    fn is_at(&self, me: ConnectionId, epoch: u64, next: u64) -> bool {
        self.holder == me && self.epoch == epoch && self.next == Some(next)
    }

    /// True while a nack's delay holds this lease at monotonic reading `now_ms`.
    pub(crate) fn is_held(&self, now_ms: u64) -> bool {
        self.held_until_ms.is_some_and(|until| until > now_ms)
    }
}

struct Cursor {
    committed: Option<u64>,
    /// When the latest commit went on past dead letters at the offset it was given, that
    /// offset: the same commit again is no commit behind.
    committed_as: Option<u64>,
    lease: Option<Lease>,
    /// The highest offset ever handed out plus one (since the last seek): a message below
    /// it is handed out again, and counted so when it is.
    handed_out: u64,
    /// The offsets nacks rewound that are not handed out again yet, as sorted ranges
    /// (from, to) that do not touch: their next hand-out counts in `nack_redelivered`,
    /// any other hand-out again in `redelivered`.
    nack_rewound: Vec<(u64, u64)>,
    /// How many times each message not committed was handed out, for max-deliver.
    deliveries: Deliveries,
}

impl Cursor {
    /// Ranges kept in `nack_rewound` at most: each nack adds one, and hand-outs take them
    /// away, so only a member that nacks again and again while leases keep moving reaches
    /// it; past it the lowest range is forgotten (its messages then count in
    /// `redelivered` when handed out again).
    const MAX_NACK_RANGES: usize = 64;

    /// A nack rewound `from..to` (handed out, to be handed out again).
    fn note_nack_rewind(&mut self, from: u64, to: u64) {
        let ranges = &mut self.nack_rewound;
        ranges.push((from, to));
        ranges.sort_unstable();
        // Merged in place: a range that touches the one kept before it joins it.
        ranges.dedup_by(|next, kept| {
            let touches = next.0 <= kept.1;
            if touches {
                kept.1 = kept.1.max(next.1);
            }
            touches
        });
        if ranges.len() > Self::MAX_NACK_RANGES {
            ranges.remove(0);
        }
    }

    /// Of the hand-out `from..to`: how many messages below `again_to` a nack rewound.
    /// Everything below `to` is no longer pending afterwards (handed out, or passed over:
    /// a dead letter, messages retention removed).
    fn take_nack_rewound(&mut self, from: u64, again_to: u64, to: u64) -> u64 {
        let by_nack = self
            .nack_rewound
            .iter()
            .map(|&(start, end)| again_to.min(end).saturating_sub(from.max(start)))
            .sum();
        self.nack_rewound.retain_mut(|range| {
            range.0 = range.0.max(to);
            range.0 < range.1
        });
        by_nack
    }
}

/// What applying a read to its lease did ([`Group::advance`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Advance {
    /// The lease changed meanwhile: nothing was handed out.
    Stale,
    /// The lease hands out the read's messages below `to` (`to` may be the read's start:
    /// nothing). With `limit`, the message at `to` has reached max-deliver or was
    /// dead-lettered already: the caller passes it ([`Group::pass_dead_letter`]).
    Handed { to: u64, limit: Option<Limit> },
}

struct Member {
    /// Monotonic reading.
    last_seen_ms: u64,
    wake: Arc<SessionWake>,
}

struct GroupState {
    cursors: Vec<Cursor>,
    members: HashMap<ConnectionId, Member>,
    /// When quiet members were last forgotten (monotonic reading).
    pruned_at_ms: u64,
    next_epoch: u64,
}

/// What a session holds after a pass of [`Group::assign`].
pub(crate) struct Assignment {
    /// The session's leases: (partition, lease).
    pub(crate) leases: Vec<(u32, Lease)>,
    /// Partitions that lost their holder in this pass, with the former holder.
    pub(crate) freed: Vec<(u32, ConnectionId)>,
}

/// What a session about to park should do.
pub(crate) enum ParkDecision {
    /// Something changed: run another pass first.
    Retry,
    /// Park; wake `nudge` first (they hold more than their share), and wake by
    /// `lease_expiry` (monotonic reading), when the first lease another member holds
    /// expires unless renewed: the partition may be this session's then.
    Park {
        nudge: Vec<Arc<SessionWake>>,
        lease_expiry: Option<u64>,
    },
}

/// A commit: who, where, what, when.
#[derive(Clone, Copy)]
pub(crate) struct CommitRequest {
    pub(crate) me: ConnectionId,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) now_ms: u64,
}

/// A result of applying a read that met the retained range's edge.
pub(crate) enum OutOfRangeOutcome {
    /// The lease's position moved (policy); the range skipped, if any.
    Moved(Option<(u64, u64)>),
    /// The lease changed meanwhile: nothing to do.
    Stale,
}

/// Per-member partition counts and the share rule. Counted once per pass and kept up to
/// date as the pass takes and gives partitions up: recounted per partition, a pass cost
/// O(partitions^2) under the group's lock (a few seconds at 16k partitions).
struct Shares {
    floor: usize,
    ceil: usize,
    /// Members allowed `ceil` partitions.
    extra: usize,
    held: HashMap<ConnectionId, usize>,
    /// Members holding more than `floor`.
    above: usize,
}

impl Shares {
    fn of(state: &GroupState) -> Self {
        let partitions = state.cursors.len();
        let members = state.members.len().max(1);
        let mut held: HashMap<ConnectionId, usize> = HashMap::new();
        for cursor in &state.cursors {
            if let Some(lease) = &cursor.lease {
                *held.entry(lease.holder).or_default() += 1;
            }
        }
        let floor = partitions / members;
        let above = held.values().filter(|count| **count > floor).count();
        Self {
            floor,
            ceil: partitions.div_ceil(members),
            extra: partitions % members,
            held,
            above,
        }
    }

    fn held_by(&self, member: ConnectionId) -> usize {
        self.held.get(&member).copied().unwrap_or(0)
    }

    /// Counts one partition more (`taken`) or fewer for `member`.
    fn count(&mut self, member: ConnectionId, taken: bool) {
        let floor = self.floor;
        let held = self.held.entry(member).or_default();
        let was_above = *held > floor;
        if taken {
            *held += 1;
        } else {
            *held -= 1;
        }
        match (was_above, *held > floor) {
            (false, true) => self.above += 1,
            (true, false) => self.above -= 1,
            _ => {}
        }
    }

    /// May `member` take one more partition?
    fn may_acquire(&self, member: ConnectionId) -> bool {
        let held = self.held_by(member);
        held < self.floor || (held < self.ceil && self.above < self.extra)
    }

    /// Must `member` give one partition up?
    fn must_release(&self, member: ConnectionId) -> bool {
        let held = self.held_by(member);
        held > self.ceil || (held > self.floor && self.above > self.extra)
    }
}

/// Messages retention removed before the group committed them: offsets `from..to` of
/// `partition` were skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSkip {
    /// The partition.
    pub partition: u32,
    /// The first skipped offset.
    pub from: u64,
    /// One past the last skipped offset.
    pub to: u64,
}

/// The next [`Group::instance`]; 0 is never handed out (a batch outside any group).
static NEXT_GROUP_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A consumer group of one topic.
pub(crate) struct Group {
    pub(crate) name: DataArc<str>,
    /// Unique in the process: a group deleted and created again under its name, or one of
    /// another manager, is another instance, so a batch it handed out is told apart.
    pub(crate) instance: u64,
    pub(crate) config: GroupConfig,
    state: Mutex<GroupState>,
    /// Sessions waiting for a partition to become free.
    pub(crate) waiters: WaitList,
    deleted: AtomicBool,
    redelivered: AtomicU64,
    skipped_by_retention: AtomicU64,
    /// Skips counted and committed past by a consume that then failed (or was dropped)
    /// before handing them out: the group's next batch reports them.
    unreported_skips: Mutex<Vec<RetentionSkip>>,
    /// Set while `unreported_skips` holds any (changed under its lock).
    has_unreported: AtomicBool,
    leases_expired: AtomicU64,
    nacks: AtomicU64,
    nack_redelivered: AtomicU64,
    lease_extensions: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    /// Where messages handed out too often go, if anywhere (from the config, or
    /// `set_dead_letter`).
    pub(crate) dead_letter: Mutex<Option<DeadLetterPolicy>>,
}

impl Group {
    /// A group at the `committed` offsets. The config's dead-letter policy (checked by the
    /// caller) becomes the group's live setting; `config.dead_letter` is left `None`, so
    /// the setting has one home ([`Group::dead_letter`]), which `set_dead_letter` changes.
    pub(crate) fn new(
        name: DataArc<str>,
        mut config: GroupConfig,
        committed: Vec<Option<u64>>,
    ) -> Self {
        let dead_letter = config.dead_letter.take();
        Self {
            name,
            instance: NEXT_GROUP_INSTANCE.fetch_add(1, Ordering::Relaxed),
            config,
            state: Mutex::new(GroupState {
                cursors: committed
                    .into_iter()
                    .map(|committed| Cursor {
                        deliveries: Deliveries::default(),
                        committed,
                        committed_as: None,
                        lease: None,
                        handed_out: committed.unwrap_or(0),
                        nack_rewound: Vec::new(),
                    })
                    .collect(),
                members: HashMap::new(),
                pruned_at_ms: 0,
                next_epoch: 1,
            }),
            waiters: WaitList::new(),
            deleted: AtomicBool::new(false),
            redelivered: AtomicU64::new(0),
            skipped_by_retention: AtomicU64::new(0),
            unreported_skips: Mutex::new(Vec::new()),
            has_unreported: AtomicBool::new(false),
            leases_expired: AtomicU64::new(0),
            nacks: AtomicU64::new(0),
            nack_redelivered: AtomicU64::new(0),
            lease_extensions: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            dead_letter: Mutex::new(dead_letter),
        }
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    /// [`LiveError::UnknownGroup`] once the group is deleted. Every path that persists an
    /// offset checks it under the state's lock, which the deletion takes to set the mark:
    /// no offset reaches the store after the deletion went on to forget the group's, where
    /// a group created again under the name would resume from it.
    fn check_not_deleted(&self, topic: &str) -> LiveResult<()> {
        if self.is_deleted() {
            return Err(LiveError::UnknownGroup {
                topic: topic.to_string(),
                group: self.name.to_string(),
            });
        }
        Ok(())
    }

    fn lease_ms(&self) -> u64 {
        self.config.lease_duration.as_millis() as u64
    }

    /// Renews `me`'s leases for a lease duration from `now_ms`, calling `renewed` with each
    /// (partition, renewed lease).
    fn renew_leases(
        &self,
        state: &mut GroupState,
        me: ConnectionId,
        now_ms: u64,
        mut renewed: impl FnMut(u32, Lease),
    ) {
        let expires_at_ms = now_ms.saturating_add(self.lease_ms());
        for (partition, cursor) in state.cursors.iter_mut().enumerate() {
            if let Some(lease) = cursor.lease.as_mut().filter(|lease| lease.holder == me) {
                lease.expires_at_ms = expires_at_ms;
                renewed(partition as u32, *lease);
            }
        }
    }

    /// Ends expired leases and forgets members not seen for a lease duration.
    fn expire(&self, state: &mut GroupState, now_ms: u64, freed: &mut Vec<(u32, ConnectionId)>) {
        for (partition, cursor) in state.cursors.iter_mut().enumerate() {
            if let Some(lease) = cursor.lease {
                if lease.expires_at_ms <= now_ms {
                    cursor.lease = None;
                    freed.push((partition as u32, lease.holder));
                    self.leases_expired.fetch_add(1, Ordering::Relaxed);
                    #[cfg(feature = "tracing")]
                    tracing::info!(partition, holder = %lease.holder, "livecore: topic lease expired");
                }
            }
        }
        // Forgetting quiet members walks them all: done at most every quarter lease, so a
        // pass costs O(partitions), not O(members).
        let lease_ms = self.lease_ms();
        if now_ms.abs_diff(state.pruned_at_ms) >= lease_ms / 4 {
            state.pruned_at_ms = now_ms;
            state
                .members
                .retain(|_, member| member.last_seen_ms.saturating_add(lease_ms) > now_ms);
        }
    }

    /// One pass for `me` at monotonic reading `now_ms`: expire, rebalance, acquire, renew. Returns the
    /// session's leases and the partitions that lost a holder; `None`, changing nothing,
    /// once `membership` has left the group (checked under the state's lock, which the
    /// leave's [`Group::release_member`] takes after marking it: no lease is taken after
    /// the leave released them).
    pub(crate) fn assign(
        &self,
        me: ConnectionId,
        wake: &Arc<SessionWake>,
        membership: &Membership,
        now_ms: u64,
    ) -> Option<Assignment> {
        let mut state = lock(&self.state);
        if membership.has_left() {
            return None;
        }
        let mut freed = Vec::new();
        self.expire(&mut state, now_ms, &mut freed);
        state
            .members
            .entry(me)
            .and_modify(|member| member.last_seen_ms = now_ms)
            .or_insert_with(|| Member {
                last_seen_ms: now_ms,
                wake: wake.clone(),
            });
        let partitions = state.cursors.len();
        // Give up partitions above the share, those with nothing in flight first, from the
        // last partition back.
        let mut shares = Shares::of(&state);
        if shares.must_release(me) {
            let mine = |cursor: &Cursor| cursor.lease.is_some_and(|lease| lease.holder == me);
            let idle = |cursor: &Cursor| cursor.lease.and_then(|l| l.next) == cursor.committed;
            let (idle_mine, busy_mine): (Vec<usize>, Vec<usize>) = (0..partitions)
                .rev()
                .filter(|&partition| mine(&state.cursors[partition]))
                .partition(|&partition| idle(&state.cursors[partition]));
            for victim in idle_mine.into_iter().chain(busy_mine) {
                if !shares.must_release(me) {
                    break;
                }
                state.cursors[victim].lease = None;
                shares.count(me, false);
                freed.push((victim as u32, me));
            }
        }
        // Take free partitions up to the share, starting at a place that depends on the
        // member, so members spread over the partitions.
        let first = (me.0 as usize) % partitions.max(1);
        for step in 0..partitions {
            let partition = (first + step) % partitions;
            if state.cursors[partition].lease.is_some() {
                continue;
            }
            if !shares.may_acquire(me) {
                break;
            }
            shares.count(me, true);
            let epoch = state.next_epoch;
            state.next_epoch += 1;
            // The new lease starts at the committed offset: what was handed out past it is
            // handed out again, and counted when it is (`advance`).
            let cursor = &mut state.cursors[partition];
            cursor.lease = Some(Lease {
                holder: me,
                expires_at_ms: 0,
                next: cursor.committed,
                epoch,
                held_until_ms: None,
            });
        }
        let mut leases = Vec::new();
        self.renew_leases(&mut state, me, now_ms, |partition, lease| {
            leases.push((partition, lease));
        });
        Some(Assignment { leases, freed })
    }

    /// Before parking at monotonic reading `now_ms`: registers `me` to hear of partitions
    /// becoming free, and decides whether to park (whom to nudge, and until which lease
    /// expiry) or to run another pass.
    pub(crate) fn prepare_park(
        &self,
        me: ConnectionId,
        wake: &Arc<SessionWake>,
        now_ms: u64,
    ) -> ParkDecision {
        let state = lock(&self.state);
        // Registered whatever its share: a member leaving changes every share.
        self.waiters.register(me, wake);
        let shares = Shares::of(&state);
        // A lease that expires frees its partition and, with its holder gone, changes the
        // shares: a parked session looks again then, whatever its share now.
        let lease_expiry = state
            .cursors
            .iter()
            .filter_map(|cursor| cursor.lease)
            .filter(|lease| lease.holder != me)
            .map(|lease| lease.expires_at_ms)
            .min();
        if !shares.may_acquire(me) {
            return ParkDecision::Park {
                nudge: Vec::new(),
                lease_expiry,
            };
        }
        let free = state.cursors.iter().any(|cursor| {
            cursor
                .lease
                .is_none_or(|lease| lease.expires_at_ms <= now_ms)
        });
        if free {
            return ParkDecision::Retry;
        }
        // Nothing is free, so some member holds more than its share (the shares add up to
        // the partitions): those above the floor are nudged to run a pass and release.
        let nudge = shares
            .held
            .iter()
            .filter(|(member, count)| **member != me && **count > shares.floor)
            .filter_map(|(member, _)| state.members.get(member))
            .map(|member| member.wake.clone())
            .collect();
        ParkDecision::Park {
            nudge,
            lease_expiry,
        }
    }

    /// Applies a read made under `(partition, epoch)` from `from`: the lease hands out up
    /// to `to`, counting a delivery of each message, but stops before the first message
    /// handed out `max_deliver` times already (or dead-lettered already), which the caller
    /// passes. [`Advance::Stale`] when the lease changed meanwhile (the read is discarded).
    pub(crate) fn advance(
        &self,
        me: ConnectionId,
        (partition, epoch): (u32, u64),
        from: u64,
        to: u64,
        max_deliver: Option<u32>,
    ) -> Advance {
        let mut state = lock(&self.state);
        let cursor = &mut state.cursors[partition as usize];
        match cursor.lease.as_mut() {
            Some(lease) if lease.is_at(me, epoch, from) => {
                let limit = cursor.deliveries.first_at_limit(from, to, max_deliver);
                let to = match limit {
                    Some(Limit::Reached { offset, .. } | Limit::Dead { offset }) => offset,
                    None => to,
                };
                lease.next = Some(to);
                self.count_handed_again(cursor, partition, from, to);
                cursor.handed_out = cursor.handed_out.max(to);
                cursor.deliveries.record(from, to);
                Advance::Handed { to, limit }
            }
            _ => Advance::Stale,
        }
    }

    /// Counts the messages of the hand-out `from..to` that were handed out before (below
    /// the cursor's high mark): after a nack rewound them in `nack_redelivered`, else (a
    /// lease ended before they were committed) in `redelivered`. Counted here rather than
    /// when a lease ends or a nack rewinds, which counted what might be handed out again,
    /// and twice a message a nack and then a lease's end both rewound.
    fn count_handed_again(&self, cursor: &mut Cursor, partition: u32, from: u64, to: u64) {
        let again_to = to.min(cursor.handed_out);
        let by_nack = cursor.take_nack_rewound(from, again_to, to);
        if again_to > from {
            let again = again_to - from;
            self.nack_redelivered.fetch_add(by_nack, Ordering::Relaxed);
            self.redelivered
                .fetch_add(again - by_nack, Ordering::Relaxed);
            #[cfg(feature = "tracing")]
            tracing::info!(
                partition,
                messages = again,
                after_nack = by_nack,
                "livecore: topic messages redelivered"
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = partition;
    }

    /// Moves the lease `(partition, epoch)` of `me`, positioned at `offset`, past the
    /// message there, which was sent to the dead-letter topic (`counted`: count it in
    /// [`GroupStats::dead_lettered`]; not when it had been sent before). A message at the
    /// committed offset is committed past, through `persist` first; one after it is
    /// marked, so it is skipped if its range is handed out again before the commit. False
    /// when the lease changed meanwhile.
    pub(crate) fn pass_dead_letter(
        &self,
        me: ConnectionId,
        (partition, epoch): (u32, u64),
        offset: u64,
        counted: bool,
        persist: impl FnOnce(u64) -> Result<(), TopicLogError>,
    ) -> Result<bool, TopicLogError> {
        let mut state = lock(&self.state);
        // A deleted group persists nothing (see `check_not_deleted`): as a lease that
        // changed, the consume starts over and finds the group gone.
        if self.is_deleted() {
            return Ok(false);
        }
        let cursor = &mut state.cursors[partition as usize];
        let Some(lease) = cursor
            .lease
            .as_mut()
            .filter(|lease| lease.is_at(me, epoch, offset))
        else {
            return Ok(false);
        };
        if cursor.committed == Some(offset) {
            persist(offset + 1)?;
            cursor.committed = Some(offset + 1);
            cursor.committed_as = None;
            cursor.deliveries.forget_below(offset + 1);
        } else {
            cursor.deliveries.mark_dead(offset);
        }
        lease.next = Some(offset + 1);
        cursor.handed_out = cursor.handed_out.max(offset + 1);
        if counted {
            self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Ok(true)
    }

    /// Keeps skips a consume met but could not report, for the group's next batch.
    pub(crate) fn keep_unreported(&self, skips: Vec<RetentionSkip>) {
        let mut kept = lock(&self.unreported_skips);
        kept.extend(skips);
        self.has_unreported.store(true, Ordering::Release);
    }

    /// The skips kept by [`keep_unreported`](Self::keep_unreported), handed to a consume
    /// (which keeps them again if it cannot report them either). Without a lock when
    /// there are none, as nearly always.
    pub(crate) fn take_unreported(&self) -> Vec<RetentionSkip> {
        if !self.has_unreported.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut kept = lock(&self.unreported_skips);
        self.has_unreported.store(false, Ordering::Release);
        std::mem::take(&mut *kept)
    }

    /// A read under `(partition, epoch)` at `offset` met the retained range `bounds`:
    /// applies the reset policy. A committed offset the skip moves forward is persisted
    /// through `persist` first, as a commit is: otherwise a restart would find the old one
    /// and skip (and count) the same range again.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn out_of_range(
        &self,
        topic: &str,
        me: ConnectionId,
        partition: u32,
        epoch: u64,
        offset: u64,
        bounds: PartitionBounds,
        persist: impl FnOnce(u64) -> Result<(), TopicLogError>,
    ) -> LiveResult<OutOfRangeOutcome> {
        let mut state = lock(&self.state);
        self.check_not_deleted(topic)?;
        let cursor = &mut state.cursors[partition as usize];
        let Some(lease) = cursor
            .lease
            .as_mut()
            .filter(|lease| lease.is_at(me, epoch, offset))
        else {
            return Ok(OutOfRangeOutcome::Stale);
        };
        if (bounds.start..=bounds.end).contains(&offset) {
            return Err(store_error(
                topic,
                format!(
                    "the store refused offset {offset} of partition {partition} as out of range, yet holds {}..{}",
                    bounds.start, bounds.end
                ),
            ));
        }
        let target = match self.config.reset {
            _ if offset > bounds.end => None,
            ResetPolicy::Earliest => Some(bounds.start),
            ResetPolicy::Latest => Some(bounds.end),
            ResetPolicy::None => None,
        };
        let Some(target) = target else {
            return Err(offset_out_of_range(topic, partition, offset, bounds));
        };
        // The committed offset only moves forward, and never past what is handed out.
        if cursor.committed.is_none_or(|committed| committed < target) {
            persist(target).map_err(|error| store_error(topic, error))?;
            cursor.committed = Some(target);
            cursor.committed_as = None;
            cursor.deliveries.forget_below(target);
        }
        lease.next = Some(target);
        cursor.handed_out = cursor.handed_out.max(target);
        let skipped = target.saturating_sub(offset);
        if skipped > 0 {
            self.skipped_by_retention
                .fetch_add(skipped, Ordering::Relaxed);
            Ok(OutOfRangeOutcome::Moved(Some((offset, target))))
        } else {
            Ok(OutOfRangeOutcome::Moved(None))
        }
    }

    /// Commits `offset` (the next offset not finished) on `partition` for the lease holder
    /// `me`, or past the dead letters the lease passed there, persisting what it commits
    /// through `persist` first; renews the session's leases. Leases
    /// found expired end on the way; they are added to `freed` whatever the outcome.
    pub(crate) fn commit(
        &self,
        topic: &str,
        request: CommitRequest,
        freed: &mut Vec<(u32, ConnectionId)>,
        persist: impl FnOnce(u64) -> Result<(), TopicLogError>,
    ) -> LiveResult<()> {
        let mut persist = Some(persist);
        self.commit_all(
            topic,
            (request.me, request.now_ms),
            &[(request.partition, request.offset)],
            freed,
            |_, offset| persist.take().map_or(Ok(()), |persist| persist(offset)),
        )
    }

    /// [`commit`](Self::commit) of several partitions' offsets (`(partition, offset)`, each
    /// partition once) at `now_ms` for `me`. Every one is checked before any is committed,
    /// under one hold of the group's lock, so a batch one of whose leases was lost commits
    /// nothing; they are then persisted in order, and a store failure leaves those before
    /// it committed (each a valid commit of its own).
    pub(crate) fn commit_all(
        &self,
        topic: &str,
        (me, now_ms): (ConnectionId, u64),
        offsets: &[(u32, u64)],
        freed: &mut Vec<(u32, ConnectionId)>,
        mut persist: impl FnMut(u32, u64) -> Result<(), TopicLogError>,
    ) -> LiveResult<()> {
        let mut state = lock(&self.state);
        self.check_not_deleted(topic)?;
        self.expire(&mut state, now_ms, freed);
        let mut targets = Vec::with_capacity(offsets.len());
        for &(partition, offset) in offsets {
            let target = self.commit_target(
                topic,
                &state.cursors[partition as usize],
                me,
                partition,
                offset,
            )?;
            targets.push((partition, offset, target));
        }
        let mut result = Ok(());
        for (partition, asked, target) in targets {
            let cursor = &mut state.cursors[partition as usize];
            if cursor.committed != Some(target) {
                if let Err(error) = persist(partition, target) {
                    result = Err(store_error(topic, error));
                    break;
                }
                cursor.committed = Some(target);
                cursor.committed_as = (target != asked).then_some(asked);
                cursor.deliveries.forget_below(target);
            }
        }
        // The holder was heard from, whatever the store did.
        if let Some(member) = state.members.get_mut(&me) {
            member.last_seen_ms = now_ms;
        }
        self.renew_leases(&mut state, me, now_ms, |_, _| {});
        result
    }

    /// The lease of `cursor` (on `partition`) if `me` holds it, else
    /// [`LiveError::NotLeaseHolder`] naming who does.
    fn held_lease(
        &self,
        topic: &str,
        cursor: &Cursor,
        me: ConnectionId,
        partition: u32,
    ) -> LiveResult<Lease> {
        match cursor.lease {
            Some(lease) if lease.holder == me => Ok(lease),
            other => Err(LiveError::NotLeaseHolder {
                topic: topic.to_string(),
                group: self.name.to_string(),
                partition,
                holder: other.map(|lease| lease.holder),
            }),
        }
    }

    /// Where a commit of `offset` by `me` on `partition` (whose cursor is `cursor`) moves
    /// the committed offset to, or why it may not.
    fn commit_target(
        &self,
        topic: &str,
        cursor: &Cursor,
        me: ConnectionId,
        partition: u32,
        offset: u64,
    ) -> LiveResult<u64> {
        let lease = self.held_lease(topic, cursor, me, partition)?;
        // A lease without a position (reset policy None, nothing sought) handed nothing
        // out: there is no offset it may commit.
        let Some(delivered) = lease.next else {
            return Err(LiveError::NoCommittedOffset {
                topic: topic.to_string(),
                group: self.name.to_string(),
                partition,
            });
        };
        if let Some(committed) = cursor.committed {
            if offset < committed && cursor.committed_as.is_none_or(|asked| offset < asked) {
                return Err(LiveError::CommitBehind {
                    partition,
                    offset,
                    committed,
                });
            }
        }
        if offset > delivered {
            return Err(LiveError::CommitAhead {
                partition,
                offset,
                delivered,
            });
        }
        // Dead letters the lease passed right at the commit point are committed past with
        // it: they were marked (not committed) because uncommitted messages were before
        // them, and no later commit would otherwise move past them when they end a batch.
        let mut target = offset.max(cursor.committed.unwrap_or(0));
        while target < delivered && cursor.deliveries.is_dead(target) {
            target += 1;
        }
        Ok(target)
    }

    /// Renews every live lease of `me` for a lease duration from `now_ms`, without handing
    /// anything out or committing (a consumer still working on a long batch). Leases found
    /// expired end on the way (added to `freed`): an extension never revives one. Returns
    /// how many leases were renewed.
    pub(crate) fn extend(
        &self,
        me: ConnectionId,
        now_ms: u64,
        freed: &mut Vec<(u32, ConnectionId)>,
    ) -> usize {
        let mut state = lock(&self.state);
        // The mutant skips expiring first, so an expired lease not yet swept is renewed.
        if !mutant!("extend_revives_expired") {
            self.expire(&mut state, now_ms, freed);
        }
        let mut renewed = 0;
        self.renew_leases(&mut state, me, now_ms, |_, _| renewed += 1);
        if renewed > 0 {
            if let Some(member) = state.members.get_mut(&me) {
                member.last_seen_ms = now_ms;
            }
            self.lease_extensions.fetch_add(1, Ordering::Relaxed);
        }
        renewed
    }

    /// The holder `me` gives up on the message at `offset` of `partition`: the lease hands
    /// out again from `offset` (that message and every later one it handed out), after
    /// `delay_ms` if not zero; until then the partition hands nothing out to anyone (head
    /// of line: order per key within the partition is kept). The committed offset does not
    /// move. `offset` must be a message this lease handed out and the group did not commit:
    /// `committed <= offset < delivered` ([`LiveError::CommitBehind`],
    /// [`LiveError::CommitAhead`] otherwise); only the live holder may nack
    /// ([`LiveError::NotLeaseHolder`]). Renews the session's leases.
    pub(crate) fn nack(
        &self,
        topic: &str,
        request: CommitRequest,
        delay_ms: u64,
        max_deliver: Option<u32>,
        freed: &mut Vec<(u32, ConnectionId)>,
    ) -> LiveResult<NackOutcome> {
        let CommitRequest {
            me,
            partition,
            offset,
            now_ms,
        } = request;
        let mut state = lock(&self.state);
        // The mutant skips expiring first: a late nack would renew an expired lease.
        if !mutant!("nack_skips_expiry") {
            self.expire(&mut state, now_ms, freed);
        }
        let cursor = &state.cursors[partition as usize];
        let lease = self.held_lease(topic, cursor, me, partition)?;
        // A lease without a position (reset policy None, nothing sought) handed nothing
        // out: there is nothing it may nack.
        let Some(delivered) = lease.next else {
            return Err(LiveError::NoCommittedOffset {
                topic: topic.to_string(),
                group: self.name.to_string(),
                partition,
            });
        };
        if let Some(committed) = cursor.committed {
            if offset < committed {
                return Err(LiveError::CommitBehind {
                    partition,
                    offset,
                    committed,
                });
            }
        }
        if offset >= delivered {
            return Err(LiveError::CommitAhead {
                partition,
                offset,
                delivered,
            });
        }
        // Every hand-out of the message counted (after nacks and after lease expiries). A
        // message dead-lettered already (skipped, never handed out) is not sent again: the
        // nack only rewinds, and the hand-out skips it once more.
        let deliveries = cursor.deliveries.count(offset).max(1);
        let dead = cursor.deliveries.is_dead(offset);
        if !dead && max_deliver.is_some_and(|max| deliveries >= max) {
            return Ok(NackOutcome::DeadLetter { deliveries });
        }
        // A new epoch: a read made before the nack is not applied after it.
        let epoch = state.next_epoch;
        state.next_epoch += 1;
        // The messages after it come again untried: their hand-out is taken back.
        state.cursors[partition as usize]
            .deliveries
            .take_back(offset + 1, delivered);
        state.cursors[partition as usize].lease = Some(Lease {
            next: Some(offset),
            epoch,
            held_until_ms: (delay_ms > 0).then(|| now_ms.saturating_add(delay_ms)),
            ..lease
        });
        state.cursors[partition as usize].note_nack_rewind(offset, delivered);
        self.nacks.fetch_add(1, Ordering::Relaxed);
        if let Some(member) = state.members.get_mut(&me) {
            member.last_seen_ms = now_ms;
        }
        self.renew_leases(&mut state, me, now_ms, |_, _| {});
        Ok(NackOutcome::Redeliver)
    }

    /// A nack of the message at `request.offset` found it at max-deliver, and the caller
    /// has sent it to the dead-letter topic: the group moves past it without committing
    /// anything it has not finished. At the committed offset, the group commits past it
    /// (through `persist` first); behind messages handed out and not committed, it is only
    /// marked, so it is skipped (and committed past) when they are handed out again — a
    /// commit of `offset + 1` would also commit them, and a consumer working on a batch
    /// concurrently would lose them on a crash. The lease hands out again what it had
    /// handed out after the message, as any nack's rewind (never below the committed
    /// offset: the holder may have committed past the message meanwhile), keeping a
    /// delay another nack set. Only the live holder moves the group
    /// ([`LiveError::NotLeaseHolder`]: the dead letter was sent, and the message is sent
    /// again when handed out past max-deliver once more: at least once). Counts the dead
    /// letter; renews the session's leases. Leases found expired end on the way (`freed`).
    pub(crate) fn pass_nacked_dead_letter(
        &self,
        topic: &str,
        request: CommitRequest,
        freed: &mut Vec<(u32, ConnectionId)>,
        persist: impl FnOnce(u64) -> Result<(), TopicLogError>,
    ) -> LiveResult<()> {
        let CommitRequest {
            me,
            partition,
            offset,
            now_ms,
        } = request;
        let mut state = lock(&self.state);
        self.check_not_deleted(topic)?;
        self.expire(&mut state, now_ms, freed);
        let cursor = &mut state.cursors[partition as usize];
        match cursor.lease {
            Some(lease) if lease.holder == me => {}
            other => {
                return Err(LiveError::NotLeaseHolder {
                    topic: topic.to_string(),
                    group: self.name.to_string(),
                    partition,
                    holder: other.map(|lease| lease.holder),
                })
            }
        }
        match cursor.committed {
            Some(committed) if committed == offset => {
                persist(offset + 1).map_err(|error| store_error(topic, error))?;
                cursor.committed = Some(offset + 1);
                cursor.committed_as = None;
                cursor.deliveries.forget_below(offset + 1);
            }
            // Behind uncommitted messages: marked, never committed past here.
            Some(committed) if committed < offset => cursor.deliveries.mark_dead(offset),
            // The holder committed past it meanwhile (or the partition has no position,
            // which a lease that handed it out cannot have): nothing to move past.
            _ => {}
        }
        // As any nack: the lease hands out again what it had handed out after the message
        // (the consumer, told to start over from there, has not processed it), under a
        // new epoch so a read made before is not applied after.
        let rewind_from = (offset + 1).max(cursor.committed.unwrap_or(0));
        let handed_after = cursor
            .lease
            .and_then(|lease| lease.next)
            .filter(|&next| next > rewind_from);
        if let Some(next) = handed_after {
            let epoch = state.next_epoch;
            state.next_epoch += 1;
            let cursor = &mut state.cursors[partition as usize];
            cursor.deliveries.take_back(rewind_from, next);
            if let Some(lease) = cursor.lease.as_mut() {
                lease.next = Some(rewind_from);
                lease.epoch = epoch;
            }
            cursor.note_nack_rewind(rewind_from, next);
        }
        self.nacks.fetch_add(1, Ordering::Relaxed);
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if let Some(member) = state.members.get_mut(&me) {
            member.last_seen_ms = now_ms;
        }
        self.renew_leases(&mut state, me, now_ms, |_, _| {});
        Ok(())
    }

    /// The earliest monotonic reading at which a nack's delay on one of `me`'s leases
    /// ends, if any holds one after `now_ms`.
    pub(crate) fn hold_ends_of(&self, me: ConnectionId, now_ms: u64) -> Option<u64> {
        lock(&self.state)
            .cursors
            .iter()
            .filter_map(|cursor| cursor.lease)
            .filter(|lease| lease.holder == me && lease.is_held(now_ms))
            .filter_map(|lease| lease.held_until_ms)
            .min()
    }

    /// Positions `partition` at `offset` (an administrative reset, which may move the
    /// committed offset either way) and ends its lease. Returns the former holder.
    pub(crate) fn seek(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        persist: impl FnOnce() -> Result<(), TopicLogError>,
    ) -> LiveResult<Option<ConnectionId>> {
        let mut state = lock(&self.state);
        self.check_not_deleted(topic)?;
        persist().map_err(|error| store_error(topic, error))?;
        let cursor = &mut state.cursors[partition as usize];
        cursor.committed = Some(offset);
        cursor.committed_as = None;
        cursor.handed_out = offset;
        cursor.nack_rewound.clear();
        cursor.deliveries.clear();
        Ok(cursor.lease.take().map(|lease| lease.holder))
    }

    /// Ends every lease of `me` and forgets it as a member. Returns the partitions freed.
    pub(crate) fn release_member(&self, me: ConnectionId) -> Vec<u32> {
        let mut state = lock(&self.state);
        state.members.remove(&me);
        let mut freed = Vec::new();
        for (partition, cursor) in state.cursors.iter_mut().enumerate() {
            if cursor.lease.is_some_and(|lease| lease.holder == me) {
                cursor.lease = None;
                freed.push(partition as u32);
            }
        }
        freed
    }

    /// Expires leases and members at monotonic reading `now_ms` (the periodic sweep). Returns the partitions
    /// freed, with their former holders.
    pub(crate) fn sweep(&self, now_ms: u64) -> Vec<(u32, ConnectionId)> {
        let mut state = lock(&self.state);
        let mut freed = Vec::new();
        self.expire(&mut state, now_ms, &mut freed);
        freed
    }

    /// The positions of `me`'s leases: (partition, committed, next, lease expiry as a
    /// monotonic reading).
    pub(crate) fn positions_of(
        &self,
        me: ConnectionId,
    ) -> Vec<(u32, Option<u64>, Option<u64>, u64)> {
        let state = lock(&self.state);
        state
            .cursors
            .iter()
            .enumerate()
            .filter_map(|(partition, cursor)| {
                let lease = cursor.lease.filter(|lease| lease.holder == me)?;
                Some((
                    partition as u32,
                    cursor.committed,
                    lease.next,
                    lease.expires_at_ms,
                ))
            })
            .collect()
    }

    /// Every partition's committed offset and lease.
    pub(crate) fn snapshot(&self) -> Vec<(Option<u64>, Option<Lease>)> {
        lock(&self.state)
            .cursors
            .iter()
            .map(|cursor| (cursor.committed, cursor.lease))
            .collect()
    }

    pub(crate) fn stats(&self) -> GroupStats {
        GroupStats {
            redelivered: self.redelivered.load(Ordering::Relaxed),
            skipped_by_retention: self.skipped_by_retention.load(Ordering::Relaxed),
            leases_expired: self.leases_expired.load(Ordering::Relaxed),
            nacks: self.nacks.load(Ordering::Relaxed),
            nack_redelivered: self.nack_redelivered.load(Ordering::Relaxed),
            lease_extensions: self.lease_extensions.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            members: lock(&self.state).members.len(),
        }
    }

    /// Marks the group deleted; every session of it is woken to notice.
    pub(crate) fn delete(&self) {
        let members: Vec<_> = {
            // Under the state's lock: a commit checks the mark under it, so none persists
            // an offset for the group once its deletion has gone on to the store.
            let state = lock(&self.state);
            self.deleted.store(true, Ordering::SeqCst);
            state
                .members
                .values()
                .map(|member| member.wake.clone())
                .collect()
        };
        for wake in members {
            wake.wake();
        }
        self.waiters.wake_all();
    }
}

impl Topic {
    /// The group `name` of this topic.
    pub(crate) fn group(&self, name: &str) -> LiveResult<crate::sync::Arc<Group>> {
        lock(&self.groups)
            .get(name)
            .cloned()
            .ok_or_else(|| LiveError::UnknownGroup {
                topic: self.name.to_string(),
                group: name.to_string(),
            })
    }

    /// Frees the partitions a pass freed: sessions waiting for a partition are woken. The
    /// former holders stay in the partitions' wait lists, which are the topic's, not the
    /// group's: a consume of the same session in another group may be parked on them. A
    /// registration left behind costs one spurious wake; the next append or the session's
    /// end takes it off.
    pub(crate) fn partitions_freed(&self, group: &Group, freed: &[(u32, ConnectionId)]) {
        if freed.is_empty() {
            return;
        }
        group.waiters.wake_all();
    }

    /// The session `me` ended: it no longer waits on any partition of this topic.
    pub(crate) fn forget_waiting(&self, me: ConnectionId) {
        for signal in self.signals.iter() {
            signal.waiters.remove(me);
        }
    }

    /// `me` leaves `group`: its leases end, it stops counting as a member and waiting, and
    /// sessions waiting for the freed partitions are woken.
    pub(crate) fn leave(&self, group: &Group, me: ConnectionId) {
        let freed: Vec<_> = group
            .release_member(me)
            .into_iter()
            .map(|partition| (partition, me))
            .collect();
        group.waiters.remove(me);
        self.partitions_freed(group, &freed);
    }
}
