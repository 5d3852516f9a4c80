//! A seeded soak of topics and consumer groups against a model, on one thread, over the
//! in-memory log and a `ManualClock` (no real sleeping: leases, nack delays and member
//! pruning all run on the manager clock's monotonic reading, which the soak steps).
//!
//! Two topics ("orders", 4 partitions, no retention in reach; "events", 3 partitions, 20
//! messages kept per partition) with four groups: `orders/a` (dead letters after 3
//! hand-outs), `orders/b` (its dead-letter topic set and cleared on the live group, 2
//! hand-outs), `events/c` (2 hand-outs) and `events/late` (created part-way through with
//! the `Latest` policy). Each dead-letter topic has one partition, so the order of its
//! letters is the order they were sent. Random steps: publish (keyed, unkeyed round-robin,
//! to an explicit partition with and without a key); consume a batch in a group from one of
//! five consumer sessions and then process it as a well-behaved consumer would (every
//! message in order per partition up to a nack, which drops the rest of that partition's
//! slice), committing all of it (`commit_batch`), part of it (`commit_offset`) or none, or
//! nacking (now or with a delay) — or crash on the batch (the session goes silent until
//! its leases expired); commit an old batch again; nack or commit arbitrary offsets; step
//! the clock (sometimes past a lease); extend leases; leave a group; unregister a session
//! and register a new one; `check_connections_now` (the lease sweep); set or clear a dead
//! letter policy. At the end every session leaves, and one new consumer drains each group.
//!
//! The model follows every group's committed offsets, leases (holder, position, expiry,
//! nack hold), per-message delivery counts and dead-letter marks as the docs of
//! `GroupConfig`, `DeadLetterPolicy`, `GroupStats`, `commit_offset`, `nack`,
//! `extend_leases`, `leave_group` and `consume` describe them. What the model cannot know
//! in advance (which free partitions a pass takes, which partition a pass reads first,
//! how a read budget is split) it reads from the batch's `positions` and checks the batch
//! against the rules instead. Checked:
//!
//! - every publish lands where it should (explicit partition; one key, one partition;
//!   round-robin otherwise) at the next offset, and reads back with its seq, key, payload
//!   and timestamp; retention keeps the last N messages of a partition (`topic_info`);
//! - a consume only takes partitions that have no live lease; on each partition it holds
//!   it hands out, from the model's position (the lease's, or the committed offset for a
//!   new lease), a contiguous run of the right messages, after passing any messages the
//!   model says are dead (dead-lettered already: skipped silently) or at max-deliver
//!   (appended to the dead-letter topic with the documented fields), and at most one such
//!   message after the run; never a message at max-deliver; a retention gap is reported
//!   in `retention_skips` from the lease's position to the oldest retained offset
//!   (`Earliest`) or the end (`Latest`); a partition held by a delayed nack hands out
//!   nothing; an empty batch means every held partition is at its end or held by a nack;
//!   the batch's positions equal the model's;
//! - every commit, nack, extension, leave, sweep result (Ok, or the exact error) equals
//!   the model's prediction; committed offsets never go backwards;
//! - a message is dead-lettered by a group at most once, exactly when its delivery count
//!   reaches max-deliver (counting every hand-out, with a nack's take-back of what followed
//!   the nacked message), with topic, partition, offset, delivery count, key, SeqId and the
//!   original message in the letter; it is never handed out by that group afterwards;
//! - per-partition (so per-key) order as the docs promise it under nacks and redelivery:
//!   the consumer never finishes a message before every earlier message of its partition
//!   was finished, dead-lettered or skipped by retention (it may finish one again: at
//!   least once);
//! - at-least-once: a committed offset only passes messages handed out to the group,
//!   dead-lettered by it or skipped by retention; after the drain every message owed to a
//!   group was handed out to it, dead-lettered or skipped, and every partition is committed
//!   to its end;
//! - `group_stats` (redelivered, nack_redelivered, leases_expired, nacks, dead_lettered,
//!   lease_extensions, skipped_by_retention exactly; members between the members seen
//!   within a lease and the members not left), `group_offsets` (committed, bounds, lag,
//!   live lease holder, position and expiry), `topic_info` and the manager's appended count.
//!
//! Each kind of event (redelivery after a nack and after a lease expiry, delayed nacks
//! holding a partition, dead letters from a consume and from a nack, dead letters skipped,
//! retention skips, rebalancing, leaves, unregistering, every commit error...) must occur
//! over the default seeds, so the soak cannot pass vacuously.
//!
//! `LIVECORE_SOAK_SEED` runs one seed (a failure prints its seed) and
//! `LIVECORE_SOAK_STEPS` sets the steps per seed; `LIVECORE_SOAK_SEEDS` sets how many
//! seeds the default run takes.

#[path = "common/rng.rs"]
mod rng;
#[path = "common/soak_env.rs"]
mod soak_env;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use livecore::*;
use rng::Rng;
use soak_env::{soak_seed, soak_seeds, soak_steps};

/// A delivery count meaning "dead-lettered, not yet committed past".
const DEAD: u32 = u32::MAX;
/// Consumer sessions.
const SLOTS: usize = 5;
/// Keys of keyed messages.
const KEYS: i64 = 7;
/// The longest lease of the groups: a crashed consumer stays silent longer than this.
const MAX_LEASE_MS: u64 = 1_500;
/// As `Cursor::MAX_NACK_RANGES` in livecore: nack-rewound ranges kept for the counters.
/// (Private, but its effect is documented on `GroupStats`: past it, messages a nack
/// rewound count in `redelivered` instead of `nack_redelivered`. The soak never comes near
/// it; it is mirrored so the model's counters follow the same rule if it did.)
const MAX_NACK_RANGES: usize = 64;

/// A message as published.
struct Published {
    seq: u64,
    key: Option<i64>,
    payload: String,
    timestamp_ms: u64,
    /// `TopicMessage::to_json` of the message read back, parsed.
    json: serde_json::Value,
}

struct TopicModel {
    name: &'static str,
    retention: u64,
    /// Per partition: the oldest retained offset.
    start: Vec<u64>,
    /// Per partition: every message ever appended, by offset.
    messages: Vec<Vec<Published>>,
    round_robin: u64,
    key_partition: HashMap<i64, u32>,
    appended: u64,
}

impl TopicModel {
    fn partitions(&self) -> u32 {
        self.messages.len() as u32
    }

    fn end(&self, partition: u32) -> u64 {
        self.messages[partition as usize].len() as u64
    }
}

/// A dead-letter topic (one partition).
struct DlqModel {
    name: String,
    /// Letters read so far (the next offset to read).
    read: u64,
}

#[derive(Clone, Copy, Debug)]
struct LeaseModel {
    holder: ConnectionId,
    next: u64,
    expires_at: u64,
    held_until: Option<u64>,
}

#[derive(Default)]
struct CursorModel {
    committed: u64,
    committed_as: Option<u64>,
    lease: Option<LeaseModel>,
    handed_out: u64,
    nack_ranges: Vec<(u64, u64)>,
    /// Delivery counts of messages not committed (`DEAD`: dead-lettered, not committed past).
    /// Exact counts: livecore keeps them as at most 256 runs and, past that, merges runs
    /// keeping the lower count (documented in `topics::deliveries`: a message may then be
    /// delivered more than max-deliver times, never dead-lettered early). A soak partition
    /// holds far fewer uncommitted runs, so the model does not mirror the merge; a failure
    /// where livecore hands out a message the model says is at max-deliver, after hundreds
    /// of uncommitted runs, would be that documented allowance, not a defect.
    counts: BTreeMap<u64, u32>,
    /// The first offset owed to the group (where it started).
    owed_from: u64,
    /// How many times each offset was handed out to the group.
    delivered: BTreeMap<u64, u32>,
    dead_lettered: BTreeSet<u64>,
    skipped: Vec<(u64, u64)>,
    /// Offsets a consumer finished (processed), and how far they, dead letters and
    /// retention skips cover the partition without a hole.
    processed: BTreeSet<u64>,
    finished_to: u64,
}

impl CursorModel {
    fn count(&self, offset: u64) -> u32 {
        self.counts.get(&offset).copied().unwrap_or(0)
    }

    fn is_skipped(&self, offset: u64) -> bool {
        self.skipped
            .iter()
            .any(|&(from, to)| (from..to).contains(&offset))
    }

    /// Whether the group is quits with `offset`: handed out, dead-lettered, or skipped by
    /// retention (what at-least-once asks of every committed or owed offset).
    fn accounted_for(&self, offset: u64) -> bool {
        self.delivered.contains_key(&offset)
            || self.dead_lettered.contains(&offset)
            || self.is_skipped(offset)
    }

    fn advance_finished(&mut self) {
        while self.processed.contains(&self.finished_to)
            || self.dead_lettered.contains(&self.finished_to)
            || self.is_skipped(self.finished_to)
        {
            self.finished_to += 1;
        }
    }

    fn forget_below(&mut self, offset: u64) {
        self.counts = self.counts.split_off(&offset);
    }

    fn take_back(&mut self, from: u64, to: u64) {
        for offset in from..to {
            match self.count(offset) {
                0 | DEAD => {}
                1 => {
                    self.counts.remove(&offset);
                }
                count => {
                    self.counts.insert(offset, count - 1);
                }
            }
        }
    }

    fn note_nack_rewind(&mut self, from: u64, to: u64) {
        let ranges = &mut self.nack_ranges;
        ranges.push((from, to));
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (start, end) in ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        if merged.len() > MAX_NACK_RANGES {
            merged.remove(0);
        }
        *ranges = merged;
    }
}

#[derive(Clone, Copy)]
struct Policy {
    dlq: usize,
    max_deliver: u32,
}

struct GroupModel {
    topic: usize,
    name: &'static str,
    lease_ms: u64,
    reset: ResetPolicy,
    policy: Option<Policy>,
    /// A dead-letter topic the soak may set and clear on the live group.
    toggles: Option<Policy>,
    cursors: Vec<CursorModel>,
    stats: GroupStats,
    /// Sessions that joined (consumed) and did not leave since: an upper bound of members.
    joined: BTreeSet<ConnectionId>,
    /// When each of those last consumed: those within a lease are members for sure.
    last_consume: BTreeMap<ConnectionId, u64>,
    /// Created yet (the late group is created part-way through).
    created: bool,
}

struct Slot {
    id: ConnectionId,
    /// Silent (a crashed consumer) until this monotonic reading.
    frozen_until: u64,
    /// The last batch consumed per group, to commit again later.
    last_batch: Vec<Option<ConsumeBatch>>,
}

struct Soak {
    seed: u64,
    step: usize,
    rng: Rng,
    manager: Arc<ConnectionsManager>,
    clock: Arc<ManualClock>,
    topics: Vec<TopicModel>,
    dlqs: Vec<DlqModel>,
    groups: Vec<GroupModel>,
    slots: Vec<Slot>,
    seq: u64,
    coverage: BTreeMap<&'static str, u64>,
}

macro_rules! fail {
    ($soak:expr, $($arg:tt)*) => {
        panic!(
            "seed {} step {}: {} (rerun with LIVECORE_SOAK_SEED={} LIVECORE_SOAK_STEPS=<steps>)",
            $soak.seed, $soak.step, format!($($arg)*), $soak.seed
        )
    };
}

macro_rules! check {
    ($soak:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            fail!($soak, $($arg)*);
        }
    };
}

impl Soak {
    fn new(seed: u64) -> Self {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let config = ManagerConfig {
            // No heartbeat timeout or ping during a soak: consumers come and go by the
            // soak's own steps.
            ping_interval: Duration::from_secs(86_400),
            heartbeat_timeout: Duration::from_secs(2 * 86_400),
            ..ManagerConfig::default()
        };
        let manager = Arc::new(ConnectionsManager::with_clock(config, clock.clone()).unwrap());
        let topics = vec![("orders", 4u32, 1_000_000u64), ("events", 3, 20)];
        let mut topic_models = Vec::new();
        for (name, partitions, retention) in topics {
            manager
                .create_topic(
                    name,
                    TopicConfig::partitions(partitions).retention(retention, 1 << 30),
                )
                .unwrap();
            topic_models.push(TopicModel {
                name,
                retention,
                start: vec![0; partitions as usize],
                messages: (0..partitions).map(|_| Vec::new()).collect(),
                round_robin: 0,
                key_partition: HashMap::new(),
                appended: 0,
            });
        }
        let dlq_names = ["dlq.orders.a", "dlq.orders.b", "dlq.events.c"];
        let mut dlqs = Vec::new();
        for name in dlq_names {
            manager
                .create_topic(name, TopicConfig::partitions(1))
                .unwrap();
            dlqs.push(DlqModel {
                name: name.to_string(),
                read: 0,
            });
        }
        let dead_letters = |dlq, max_deliver| Some(Policy { dlq, max_deliver });
        // (topic, name, lease, reset, dead letters, dead letters set and cleared live); the
        // last group is created part-way through.
        let specs = [
            (
                0,
                "a",
                1_000,
                ResetPolicy::Earliest,
                dead_letters(0, 3),
                None,
            ),
            (
                0,
                "b",
                1_500,
                ResetPolicy::Earliest,
                None,
                dead_letters(1, 2),
            ),
            (1, "c", 800, ResetPolicy::Earliest, dead_letters(2, 2), None),
            (1, "late", 1_000, ResetPolicy::Latest, None, None),
        ];
        let mut groups = Vec::new();
        for (topic, name, lease_ms, reset, policy, toggles) in specs {
            let partitions = topic_models[topic].partitions();
            groups.push(GroupModel {
                topic,
                name,
                lease_ms,
                reset,
                policy,
                toggles,
                cursors: (0..partitions).map(|_| CursorModel::default()).collect(),
                stats: GroupStats::default(),
                joined: BTreeSet::new(),
                last_consume: BTreeMap::new(),
                created: false,
            });
        }
        let mut soak = Soak {
            seed,
            step: 0,
            rng: Rng(seed | 1),
            manager,
            clock,
            topics: topic_models,
            dlqs,
            groups,
            slots: Vec::new(),
            seq: 0,
            coverage: BTreeMap::new(),
        };
        for g in 0..3 {
            soak.create_group(g);
        }
        for _ in 0..SLOTS {
            let id = soak.register();
            soak.slots.push(Slot {
                id,
                frozen_until: 0,
                last_batch: vec![None, None, None, None],
            });
        }
        soak
    }

    fn note(&mut self, what: &'static str) {
        *self.coverage.entry(what).or_default() += 1;
    }

    fn now(&self) -> u64 {
        self.clock.monotonic_ms()
    }

    fn register(&self) -> ConnectionId {
        let registration = self.manager.register_connection().unwrap();
        self.manager
            .authenticate(registration.connection_id, UserId::from("consumer"), None)
            .unwrap();
        registration.connection_id
    }

    fn create_group(&mut self, g: usize) {
        let group = &self.groups[g];
        let mut config =
            GroupConfig::with_reset(group.reset).lease(Duration::from_millis(group.lease_ms));
        if let Some(policy) = group.policy {
            config = config.dead_letter(self.dlqs[policy.dlq].name.clone(), policy.max_deliver);
        }
        let topic = &self.topics[group.topic];
        self.manager
            .create_consumer_group(topic.name, group.name, config)
            .unwrap();
        let starts: Vec<u64> = (0..topic.partitions())
            .map(|p| match group.reset {
                ResetPolicy::Latest => topic.end(p),
                _ => topic.start[p as usize],
            })
            .collect();
        let group = &mut self.groups[g];
        for (cursor, start) in group.cursors.iter_mut().zip(starts) {
            cursor.committed = start;
            cursor.handed_out = start;
            cursor.owed_from = start;
            cursor.finished_to = start;
        }
        group.created = true;
    }

    // ---- the model's group rules -------------------------------------------------------

    /// Ends the group's expired leases. Every group call (consume, commit, nack,
    /// extension, the `check_connections` sweep) does this first ("leases found expired end
    /// on the way"); `leave_group` and unregistering just release the session's leases,
    /// so an expired lease released that way is not counted in `leases_expired`.
    fn expire(&mut self, g: usize, now: u64) -> usize {
        let group = &mut self.groups[g];
        let mut expired = 0;
        for cursor in &mut group.cursors {
            if cursor.lease.is_some_and(|lease| lease.expires_at <= now) {
                cursor.lease = None;
                expired += 1;
            }
        }
        group.stats.leases_expired += expired as u64;
        expired
    }

    fn renew(&mut self, g: usize, me: ConnectionId, now: u64) -> usize {
        let group = &mut self.groups[g];
        let lease_ms = group.lease_ms;
        let mut renewed = 0;
        for cursor in &mut group.cursors {
            if let Some(lease) = cursor.lease.as_mut().filter(|lease| lease.holder == me) {
                lease.expires_at = now + lease_ms;
                renewed += 1;
            }
        }
        renewed
    }

    /// Moves the committed offset of `(g, p)` to `target`, checking at-least-once: every
    /// message it passes was handed out to the group, dead-lettered by it or skipped by
    /// retention.
    fn commit_to(&mut self, g: usize, p: u32, target: u64) {
        let cursor = &self.groups[g].cursors[p as usize];
        check!(
            self,
            target >= cursor.committed,
            "model: commit of {}/{p} backwards",
            self.groups[g].name
        );
        for offset in cursor.committed..target {
            let covered = cursor.accounted_for(offset);
            check!(
                self,
                covered,
                "group {} partition {p}: committed past offset {offset}, never handed out, \
                 dead-lettered or skipped by retention",
                self.groups[g].name
            );
        }
        let cursor = &mut self.groups[g].cursors[p as usize];
        cursor.committed = target;
        cursor.forget_below(target);
    }

    /// The hand-out `from..to` of `(g, p)` (`GroupStats` redelivery counters, delivery
    /// counts).
    fn hand_out(&mut self, g: usize, p: u32, from: u64, to: u64) {
        let cursor = &mut self.groups[g].cursors[p as usize];
        let again_to = to.min(cursor.handed_out);
        let by_nack: u64 = cursor
            .nack_ranges
            .iter()
            .map(|&(start, end)| again_to.min(end).saturating_sub(from.max(start)))
            .sum();
        cursor.nack_ranges.retain_mut(|range| {
            range.0 = range.0.max(to);
            range.0 < range.1
        });
        let (mut nack_again, mut again) = (0, 0);
        if again_to > from {
            nack_again = by_nack;
            again = again_to - from - by_nack;
        }
        cursor.handed_out = cursor.handed_out.max(to);
        for offset in from..to {
            let count = cursor.count(offset);
            if count != DEAD {
                cursor.counts.insert(offset, count + 1);
            }
            *cursor.delivered.entry(offset).or_default() += 1;
        }
        let stats = &mut self.groups[g].stats;
        stats.nack_redelivered += nack_again;
        stats.redelivered += again;
        if nack_again > 0 {
            self.note("redelivered after a nack");
        }
        if again > 0 {
            self.note("redelivered after a lease ended");
        }
    }

    /// The lease of `(g, p)` passes the message at `offset`, dead-lettered now or before.
    fn pass_dead_letter(&mut self, g: usize, p: u32, offset: u64) {
        let committed = self.groups[g].cursors[p as usize].committed;
        if committed == offset {
            self.commit_to(g, p, offset + 1);
            self.groups[g].cursors[p as usize].committed_as = None;
        } else {
            check!(
                self,
                committed < offset,
                "model: dead letter below the committed offset"
            );
            self.groups[g].cursors[p as usize]
                .counts
                .insert(offset, DEAD);
            self.note("dead letter marked behind uncommitted messages");
        }
        let cursor = &mut self.groups[g].cursors[p as usize];
        if let Some(lease) = cursor.lease.as_mut() {
            lease.next = offset + 1;
        }
        cursor.handed_out = cursor.handed_out.max(offset + 1);
    }

    /// Reads the letters appended to dead-letter topic `dlq` since the last read:
    /// (source partition, offset, deliveries, the letter), checking each against the
    /// source message.
    fn new_letters(&mut self, dlq: usize, source_topic: usize) -> Vec<(u32, u64, u32)> {
        let name = self.dlqs[dlq].name.clone();
        let mut out = Vec::new();
        loop {
            let read = self
                .manager
                .read_topic(&name, 0, self.dlqs[dlq].read, 100)
                .unwrap();
            if read.is_empty() {
                break;
            }
            for letter in read {
                check!(
                    self,
                    letter.offset == self.dlqs[dlq].read && letter.partition == 0,
                    "dead-letter topic {name}: letter at {}/{} where {} was next",
                    letter.partition,
                    letter.offset,
                    self.dlqs[dlq].read
                );
                self.dlqs[dlq].read += 1;
                let body: serde_json::Value = match &letter.payload {
                    TopicPayload::Bytes(bytes) => serde_json::from_slice(bytes).unwrap(),
                    other => fail!(self, "a dead letter that is not bytes: {other:?}"),
                };
                let topic = &self.topics[source_topic];
                check!(
                    self,
                    body["topic"] == topic.name,
                    "dead letter of another topic: {body}"
                );
                let partition = body["partition"].as_u64().unwrap() as u32;
                let offset = body["offset"].as_u64().unwrap();
                let deliveries = body["deliveries"].as_u64().unwrap() as u32;
                check!(
                    self,
                    partition < topic.partitions() && offset < topic.end(partition),
                    "dead letter of a message never published: {body}"
                );
                let original = &topic.messages[partition as usize][offset as usize];
                check!(
                    self,
                    body["message"] == original.json,
                    "dead letter's message {} is not the original {}",
                    body["message"],
                    original.json
                );
                check!(
                    self,
                    letter.seq == SeqId(original.seq) && letter.key == original.key.map(Value::Int),
                    "dead letter keyed {:?} seq {:?}, the original {:?} seq {}",
                    letter.key,
                    letter.seq,
                    original.key,
                    original.seq
                );
                out.push((partition, offset, deliveries));
            }
        }
        out
    }

    fn letters_of(&mut self, g: usize) -> Vec<(u32, u64, u32)> {
        // The dead-letter topic of the group (whether or not its policy is set now).
        let dlq = self.groups[g]
            .policy
            .or(self.groups[g].toggles)
            .map(|policy| policy.dlq);
        match dlq {
            Some(dlq) => self.new_letters(dlq, self.groups[g].topic),
            None => Vec::new(),
        }
    }

    /// A dead letter the model expects from `(g, p)` at `offset` after `deliveries`.
    fn expect_letter(
        &mut self,
        g: usize,
        p: u32,
        offset: u64,
        deliveries: u32,
        letters: &mut Vec<(u32, u64, u32)>,
    ) {
        let at = letters.iter().position(|&(partition, _, _)| partition == p);
        let Some(at) = at else {
            fail!(
                self,
                "group {} partition {p}: offset {offset} at max-deliver ({deliveries}) was \
                 passed without a dead letter",
                self.groups[g].name
            );
        };
        let letter = letters.remove(at);
        check!(
            self,
            letter == (p, offset, deliveries),
            "group {}: dead letter (partition, offset, deliveries) {letter:?}, expected {:?}",
            self.groups[g].name,
            (p, offset, deliveries)
        );
        let fresh = self.groups[g].cursors[p as usize]
            .dead_lettered
            .insert(offset);
        check!(
            self,
            fresh,
            "group {} dead-lettered {p}/{offset} twice",
            self.groups[g].name
        );
        self.groups[g].stats.dead_lettered += 1;
    }

    /// The commit of `offsets` ((partition, offset) sorted) by `me` as `commit_all` does
    /// it: all checked, then all applied.
    fn model_commit(
        &mut self,
        g: usize,
        me: ConnectionId,
        offsets: &[(u32, u64)],
        now: u64,
    ) -> LiveResult<()> {
        self.expire(g, now);
        let group = &self.groups[g];
        let topic = self.topics[group.topic].name;
        let mut targets = Vec::new();
        for &(p, offset) in offsets {
            let cursor = &group.cursors[p as usize];
            let lease = match cursor.lease {
                Some(lease) if lease.holder == me => lease,
                other => {
                    return Err(LiveError::NotLeaseHolder {
                        topic: topic.into(),
                        group: group.name.into(),
                        partition: p,
                        holder: other.map(|lease| lease.holder),
                    })
                }
            };
            let delivered = lease.next;
            if offset < cursor.committed && cursor.committed_as.is_none_or(|asked| offset < asked) {
                return Err(LiveError::CommitBehind {
                    partition: p,
                    offset,
                    committed: cursor.committed,
                });
            }
            if offset > delivered {
                return Err(LiveError::CommitAhead {
                    partition: p,
                    offset,
                    delivered,
                });
            }
            let mut target = offset.max(cursor.committed);
            while target < delivered && cursor.count(target) == DEAD {
                target += 1;
            }
            targets.push((p, offset, target));
        }
        for (p, asked, target) in targets {
            if self.groups[g].cursors[p as usize].committed != target {
                if target > asked {
                    self.note("commit went on past dead letters");
                }
                self.commit_to(g, p, target);
                self.groups[g].cursors[p as usize].committed_as =
                    (target != asked).then_some(asked);
            }
        }
        self.renew(g, me, now);
        Ok(())
    }

    /// A nack as the docs of `nack` and `DeadLetterPolicy` describe it.
    fn model_nack(
        &mut self,
        g: usize,
        me: ConnectionId,
        p: u32,
        offset: u64,
        delay_ms: u64,
        letters: &mut Vec<(u32, u64, u32)>,
    ) -> LiveResult<()> {
        let now = self.now();
        self.expire(g, now);
        let group = &self.groups[g];
        let topic = &self.topics[group.topic];
        let cursor = &group.cursors[p as usize];
        let lease = match cursor.lease {
            Some(lease) if lease.holder == me => lease,
            other => {
                return Err(LiveError::NotLeaseHolder {
                    topic: topic.name.into(),
                    group: group.name.into(),
                    partition: p,
                    holder: other.map(|lease| lease.holder),
                })
            }
        };
        let delivered = lease.next;
        if offset < cursor.committed {
            return Err(LiveError::CommitBehind {
                partition: p,
                offset,
                committed: cursor.committed,
            });
        }
        if offset >= delivered {
            return Err(LiveError::CommitAhead {
                partition: p,
                offset,
                delivered,
            });
        }
        let count = cursor.count(offset);
        let deliveries = count.max(1);
        let at_max = count != DEAD
            && group
                .policy
                .is_some_and(|policy| deliveries >= policy.max_deliver);
        let trimmed = offset < topic.start[p as usize];
        if at_max && !trimmed {
            // Sent to the dead-letter topic; the lease hands out again what followed it.
            self.expect_letter(g, p, offset, deliveries, letters);
            self.note("dead letter from a nack");
            let committed = self.groups[g].cursors[p as usize].committed;
            if committed == offset {
                self.commit_to(g, p, offset + 1);
                self.groups[g].cursors[p as usize].committed_as = None;
            } else {
                self.groups[g].cursors[p as usize]
                    .counts
                    .insert(offset, DEAD);
                self.note("dead letter marked behind uncommitted messages");
            }
            let cursor = &mut self.groups[g].cursors[p as usize];
            let rewind_from = (offset + 1).max(cursor.committed);
            let next = cursor.lease.unwrap().next;
            if next > rewind_from {
                cursor.take_back(rewind_from, next);
                cursor.lease.as_mut().unwrap().next = rewind_from;
                cursor.note_nack_rewind(rewind_from, next);
            }
        } else {
            if at_max {
                // Retention removed it since it was handed out: nothing to send, the nack
                // rewinds as any other (see `nack`).
                self.note("nack at max-deliver of a trimmed message");
            }
            let cursor = &mut self.groups[g].cursors[p as usize];
            cursor.take_back(offset + 1, delivered);
            let lease = cursor.lease.as_mut().unwrap();
            lease.next = offset;
            lease.held_until = (delay_ms > 0).then_some(now + delay_ms);
            cursor.note_nack_rewind(offset, delivered);
        }
        self.groups[g].stats.nacks += 1;
        self.renew(g, me, now);
        Ok(())
    }

    fn leave(&mut self, g: usize, me: ConnectionId) {
        let group = &mut self.groups[g];
        for cursor in &mut group.cursors {
            if cursor.lease.is_some_and(|lease| lease.holder == me) {
                cursor.lease = None;
            }
        }
        group.joined.remove(&me);
        group.last_consume.remove(&me);
    }

    // ---- steps -----------------------------------------------------------------------

    fn run_step(&mut self) {
        if self.step == self.late_step() && !self.groups[3].created {
            self.create_group(3);
            self.note("late group created");
        }
        let roll = self.rng.below(100);
        match roll {
            0..=33 => self.publish(),
            34..=60 => {
                if let Some((slot, g)) = self.pick_consumer() {
                    let max = 1 + self.rng.below(8);
                    self.consume(slot, g, max, false);
                }
            }
            61..=74 => {
                let by = if self.rng.chance(15) {
                    600 + self.rng.below(1_200) as u64
                } else {
                    1 + self.rng.below(250) as u64
                };
                self.clock.advance(by);
            }
            75..=78 => self.commit_stale(),
            79..=81 => self.random_nack(),
            82..=84 => self.random_commit(),
            85..=87 => self.extend(),
            88..=89 => self.leave_step(),
            90 => self.unregister(),
            91..=93 => self.sweep(),
            94 => self.toggle_dead_letter(),
            _ => {}
        }
        if self.step.is_multiple_of(8) {
            self.check_everything();
        }
        self.step += 1;
    }

    fn late_step(&self) -> usize {
        400
    }

    fn created_groups(&self) -> Vec<usize> {
        (0..self.groups.len())
            .filter(|&g| self.groups[g].created)
            .collect()
    }

    /// A consumer that is not silent, and a group.
    fn pick_consumer(&mut self) -> Option<(usize, usize)> {
        let now = self.now();
        let awake: Vec<usize> = (0..SLOTS)
            .filter(|&slot| self.slots[slot].frozen_until <= now)
            .collect();
        if awake.is_empty() {
            return None;
        }
        let slot = self.rng.pick(&awake);
        let groups = self.created_groups();
        let g = self.rng.pick(&groups);
        Some((slot, g))
    }

    fn publish(&mut self) {
        let t = self.rng.below(self.topics.len());
        let partitions = self.topics[t].partitions();
        let kind = self.rng.below(10);
        let key = (kind < 6 || kind == 9).then(|| self.rng.below(KEYS as usize) as i64);
        let explicit = (kind >= 8).then(|| self.rng.below(partitions as usize) as u32);
        self.seq += 1;
        let seq = self.seq;
        let payload = format!("{}#{seq}", self.topics[t].name);
        let mut message = DirectMessage::new(SeqId(seq), payload.as_bytes());
        if let Some(key) = key {
            message = message.key(key);
        }
        if let Some(partition) = explicit {
            message = message.partition(partition);
        }
        let name = self.topics[t].name;
        let position = self.manager.publish_to_topic(name, message).unwrap();
        let topic = &mut self.topics[t];
        // The docs say "round-robin" for messages with neither key nor partition; the soak
        // checks the strict reading (the topic's unkeyed publishes go to partitions 0, 1,
        // 2, ... in turn), and for keys only that one key always lands in one partition
        // (the hash itself is not documented).
        let expected = match (explicit, key) {
            (Some(partition), _) => Some(partition),
            (None, Some(key)) => topic.key_partition.get(&key).copied(),
            (None, None) => {
                let partition = (topic.round_robin % u64::from(partitions)) as u32;
                topic.round_robin += 1;
                Some(partition)
            }
        };
        if let (None, Some(key)) = (explicit, key) {
            topic.key_partition.entry(key).or_insert(position.partition);
        }
        let p = position.partition;
        let end = topic.end(p);
        check!(
            self,
            expected.is_none_or(|expected| expected == p) && position.offset == end,
            "publish {seq} (key {key:?}, partition {explicit:?}) went to {position:?}, \
             expected partition {expected:?} offset {end}"
        );
        let read = self.manager.read_topic(name, p, end, 1).unwrap();
        let timestamp_ms = self.clock.now_ms();
        let back = &read[0];
        check!(
            self,
            back.partition == p
                && back.offset == end
                && back.seq == SeqId(seq)
                && back.key == key.map(Value::Int)
                && back.timestamp_ms == timestamp_ms
                && matches!(&back.payload, TopicPayload::Bytes(bytes) if **bytes == *payload.as_bytes()),
            "publish {seq} read back as {back:?}"
        );
        let json = serde_json::from_str(&back.to_json()).unwrap();
        let topic = &mut self.topics[t];
        topic.messages[p as usize].push(Published {
            seq,
            key,
            payload,
            timestamp_ms,
            json,
        });
        topic.appended += 1;
        let end = topic.end(p);
        if end - topic.start[p as usize] > topic.retention {
            topic.start[p as usize] = end - topic.retention;
            self.note("retention trimmed");
        }
        self.note(match (explicit, key) {
            (Some(_), Some(_)) => "published to a partition with a key",
            (Some(_), None) => "published to a partition",
            (None, Some(_)) => "published with a key",
            (None, None) => "published round-robin",
        });
    }

    /// One consume of `slot` in group `g`, checked against the model, then processed.
    fn consume(&mut self, slot: usize, g: usize, max: usize, drain: bool) -> ConsumeBatch {
        let me = self.slots[slot].id;
        let now = self.now();
        let topic_index = self.groups[g].topic;
        let (topic_name, group_name) = (self.topics[topic_index].name, self.groups[g].name);
        let batch = match self
            .manager
            .consume(me, topic_name, group_name, max, Duration::ZERO)
        {
            Ok(batch) => batch,
            Err(error) => fail!(self, "consume of {me:?} in {group_name}: {error:?}"),
        };
        self.note("consumes");
        // Every pass starts with the group's expiry; the session is a member.
        self.expire(g, now);
        self.groups[g].joined.insert(me);
        self.groups[g].last_consume.insert(me, now);
        let partitions = self.topics[topic_index].partitions();
        let held: BTreeMap<u32, PartitionPosition> = batch
            .positions
            .iter()
            .map(|position| (position.partition, *position))
            .collect();
        check!(
            self,
            held.len() == batch.positions.len(),
            "positions name a partition twice: {:?}",
            batch.positions
        );
        for p in 0..partitions {
            let cursor = &mut self.groups[g].cursors[p as usize];
            match cursor.lease {
                Some(lease) if lease.holder == me && !held.contains_key(&p) => {
                    cursor.lease = None;
                    self.note("partition given up to rebalance");
                }
                Some(lease) if lease.holder != me && held.contains_key(&p) => {
                    fail!(
                        self,
                        "{me:?} took partition {p} of {group_name} from {:?}, whose lease lives \
                         until {} (now {now})",
                        lease.holder,
                        lease.expires_at
                    );
                }
                None if held.contains_key(&p) => {
                    cursor.lease = Some(LeaseModel {
                        holder: me,
                        next: cursor.committed,
                        expires_at: 0,
                        held_until: None,
                    });
                }
                _ => {}
            }
        }
        self.renew(g, me, now);
        check!(
            self,
            batch.messages.len() <= max,
            "{} messages for a max of {max}",
            batch.messages.len()
        );
        let mut letters = self.letters_of(g);
        for (&p, position) in &held {
            self.walk(g, p, position, &batch, &mut letters, now);
        }
        for message in &batch.messages {
            check!(
                self,
                held.contains_key(&message.partition),
                "a message of partition {} the session does not hold",
                message.partition
            );
        }
        for skip in &batch.retention_skips {
            check!(
                self,
                held.contains_key(&skip.partition),
                "a retention skip of partition {} the session does not hold",
                skip.partition
            );
        }
        check!(
            self,
            letters.is_empty(),
            "unexpected dead letters from {group_name}: {letters:?}"
        );
        if batch.is_empty() {
            for (&p, position) in &held {
                let lease = self.groups[g].cursors[p as usize].lease.unwrap();
                let idle = lease.held_until.is_some_and(|until| until > now)
                    || position.next == Some(self.topics[topic_index].end(p));
                check!(
                    self,
                    idle,
                    "an empty batch while partition {p} of {group_name} has messages from {:?} \
                     to {} and no nack holds it",
                    position.next,
                    self.topics[topic_index].end(p)
                );
            }
        }
        if !drain {
            self.process(slot, g, &batch);
        }
        batch
    }

    /// Checks what the consume did on partition `p`, which the session holds after it, and
    /// applies it to the model.
    fn walk(
        &mut self,
        g: usize,
        p: u32,
        position: &PartitionPosition,
        batch: &ConsumeBatch,
        letters: &mut Vec<(u32, u64, u32)>,
        now: u64,
    ) {
        let topic = self.groups[g].topic;
        let group_name = self.groups[g].name;
        let start = self.topics[topic].start[p as usize];
        let end = self.topics[topic].end(p);
        let messages: Vec<&Arc<TopicMessage>> = batch
            .messages
            .iter()
            .filter(|message| message.partition == p)
            .collect();
        let skips: Vec<&RetentionSkip> = batch
            .retention_skips
            .iter()
            .filter(|skip| skip.partition == p)
            .collect();
        let lease = self.groups[g].cursors[p as usize].lease.unwrap();
        let Some(observed_next) = position.next else {
            fail!(self, "no position on partition {p} of {group_name}");
        };
        let mut next = lease.next;
        if lease.held_until.is_some_and(|until| until > now) {
            check!(
                self,
                messages.is_empty() && skips.is_empty() && observed_next == next,
                "partition {p} of {group_name} held by a nack until {:?} (now {now}) handed out \
                 {} messages, moved to {observed_next} from {next}",
                lease.held_until,
                messages.len()
            );
            if next < end {
                self.note("a delayed nack held a partition");
            }
            self.check_position(g, p, position, now);
            return;
        }
        if next < start {
            match skips.as_slice() {
                [skip] => {
                    let target = match self.groups[g].reset {
                        ResetPolicy::Latest => end,
                        _ => start,
                    };
                    check!(
                        self,
                        (skip.from, skip.to) == (next, target),
                        "partition {p} of {group_name}: retention skip {skip:?}, expected \
                         {next}..{target}"
                    );
                    self.note("retention skips");
                    let cursor = &mut self.groups[g].cursors[p as usize];
                    cursor.skipped.push((next, target));
                    self.groups[g].stats.skipped_by_retention += target - next;
                    if self.groups[g].cursors[p as usize].committed < target {
                        self.commit_to(g, p, target);
                        self.groups[g].cursors[p as usize].committed_as = None;
                    }
                    let cursor = &mut self.groups[g].cursors[p as usize];
                    cursor.lease.as_mut().unwrap().next = target;
                    cursor.handed_out = cursor.handed_out.max(target);
                    cursor.advance_finished();
                    next = target;
                }
                [] => {
                    // Not read in this consume (its read budget went to other partitions).
                    check!(
                        self,
                        messages.is_empty() && observed_next == next,
                        "partition {p} of {group_name} below the retained start {start} at \
                         {next}: handed out {} messages, moved to {observed_next}, without a \
                         retention skip",
                        messages.len()
                    );
                    self.check_position(g, p, position, now);
                    return;
                }
                more => fail!(self, "several retention skips of partition {p}: {more:?}"),
            }
        } else {
            check!(
                self,
                skips.is_empty(),
                "retention skips {skips:?} of partition {p} of {group_name} at {next}, retained \
                 from {start}"
            );
        }
        let policy = self.groups[g].policy;
        let mut index = 0;
        let mut ran = false;
        let mut passed_after_run = false;
        loop {
            if !ran && index < messages.len() && messages[index].offset == next {
                let from = next;
                while index < messages.len() && messages[index].offset == next {
                    let count = self.groups[g].cursors[p as usize].count(next);
                    check!(
                        self,
                        count != DEAD,
                        "{group_name} handed out {p}/{next}, which it dead-lettered"
                    );
                    check!(
                        self,
                        policy.is_none_or(|policy| count < policy.max_deliver),
                        "{group_name} handed out {p}/{next} once more after {count} deliveries \
                         (max-deliver {})",
                        policy.unwrap().max_deliver
                    );
                    check!(
                        self,
                        !self.groups[g].cursors[p as usize]
                            .dead_lettered
                            .contains(&next),
                        "{group_name} handed out {p}/{next} after dead-lettering it"
                    );
                    self.check_message(topic, messages[index]);
                    next += 1;
                    index += 1;
                }
                self.hand_out(g, p, from, next);
                ran = true;
                continue;
            }
            if next == observed_next {
                break;
            }
            check!(
                self,
                next < observed_next && !(ran && index < messages.len()) && !passed_after_run,
                "partition {p} of {group_name}: the lease went from {} to {observed_next}, \
                 handing out {:?}; the model is at {next}",
                lease.next,
                messages.iter().map(|m| m.offset).collect::<Vec<_>>()
            );
            // The lease passed the message at `next` without handing it out: it must be
            // dead (skipped) or at max-deliver (dead-lettered now).
            self.hand_out(g, p, next, next);
            let count = self.groups[g].cursors[p as usize].count(next);
            if count == DEAD {
                self.note("dead letter skipped when handed out again");
            } else if let Some(policy) = policy.filter(|policy| count >= policy.max_deliver) {
                let _ = policy;
                self.expect_letter(g, p, next, count, letters);
                self.note("dead letter from a consume");
            } else {
                fail!(
                    self,
                    "partition {p} of {group_name}: the lease passed offset {next} (delivered \
                     {count} times, policy {:?}) without handing it out",
                    policy.map(|policy| policy.max_deliver)
                );
            }
            self.pass_dead_letter(g, p, next);
            next += 1;
            if ran {
                passed_after_run = true;
            }
        }
        check!(
            self,
            index == messages.len(),
            "partition {p} of {group_name}: messages {:?} not where the lease went ({} to \
             {observed_next})",
            messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
            lease.next
        );
        self.groups[g].cursors[p as usize]
            .lease
            .as_mut()
            .unwrap()
            .next = next;
        self.groups[g].cursors[p as usize].advance_finished();
        self.check_position(g, p, position, now);
    }

    fn check_position(&mut self, g: usize, p: u32, position: &PartitionPosition, now: u64) {
        let cursor = &self.groups[g].cursors[p as usize];
        let lease = cursor.lease.unwrap();
        let end = self.topics[self.groups[g].topic].end(p);
        let expected = PartitionPosition {
            partition: p,
            committed: Some(cursor.committed),
            next: Some(lease.next),
            end,
            lease_expires_at_ms: now + self.groups[g].lease_ms,
        };
        check!(
            self,
            *position == expected,
            "{} position {position:?}, the model's {expected:?}",
            self.groups[g].name
        );
    }

    fn check_message(&mut self, topic: usize, message: &TopicMessage) {
        let model = &self.topics[topic];
        let published = &model.messages[message.partition as usize][message.offset as usize];
        let right = message.seq == SeqId(published.seq)
            && message.key == published.key.map(Value::Int)
            && message.timestamp_ms == published.timestamp_ms
            && matches!(&message.payload, TopicPayload::Bytes(bytes) if **bytes == *published.payload.as_bytes());
        check!(
            self,
            right,
            "message {}/{} of {} is {message:?}, published as seq {} key {:?} payload {}",
            message.partition,
            message.offset,
            model.name,
            published.seq,
            published.key,
            published.payload
        );
    }

    /// The consumer works through its batch: per partition, in order, up to a nack; then
    /// commits all, part or none of it. Or it crashes on the batch.
    fn process(&mut self, slot: usize, g: usize, batch: &ConsumeBatch) {
        if batch.is_empty() {
            return;
        }
        let me = self.slots[slot].id;
        if self.rng.chance(10) {
            // Crashed: silent until its leases expired; it remembers nothing.
            self.slots[slot].frozen_until = self.now() + MAX_LEASE_MS + 1;
            self.slots[slot].last_batch = vec![None, None, None, None];
            self.note("consumer crashed on a batch");
            return;
        }
        let by_partition = offsets_by_partition(batch);
        let mut nacked = false;
        let mut finished: Vec<(u32, u64)> = Vec::new();
        for (p, offsets) in by_partition {
            if self.rng.chance(22) {
                let k = self.rng.below(offsets.len());
                self.finish(g, p, &offsets[..k]);
                // What it finished before the failure is committed before the nack, after
                // it, or not at all.
                let commit = k > 0 && self.rng.chance(60);
                let after = self.rng.chance(50);
                if commit && !after {
                    self.commit_one(slot, g, p, offsets[k]);
                }
                let delay = if self.rng.chance(60) {
                    0
                } else {
                    1 + self.rng.below(self.groups[g].lease_ms as usize) as u64
                };
                self.nack(slot, g, p, offsets[k], delay);
                if commit && after {
                    self.commit_one(slot, g, p, offsets[k]);
                }
                nacked = true;
            } else {
                self.finish(g, p, &offsets);
                finished.push((p, *offsets.last().unwrap() + 1));
            }
        }
        let roll = self.rng.below(100);
        if !nacked && roll < 45 {
            let now = self.now();
            let offsets = batch.next_offsets();
            let expected = self.model_commit(g, me, &offsets, now);
            let got = self.manager.commit_batch(me, batch);
            self.compare("commit_batch", got, expected);
            self.note("batches committed");
        } else if roll < 75 {
            for (p, next) in finished {
                if self.rng.chance(60) {
                    self.commit_one(slot, g, p, next);
                }
            }
        }
        self.slots[slot].last_batch[g] = Some(batch.clone());
    }

    /// The consumer finished `offsets` of `(g, p)`, in order: each must come after every
    /// earlier message of the partition was finished, dead-lettered or skipped.
    fn finish(&mut self, g: usize, p: u32, offsets: &[u64]) {
        for &offset in offsets {
            let cursor = &mut self.groups[g].cursors[p as usize];
            let in_order = offset <= cursor.finished_to;
            let finished_to = cursor.finished_to;
            check!(
                self,
                in_order,
                "order: {} finished {p}/{offset} while {p}/{finished_to} was neither finished, \
                 dead-lettered nor skipped",
                self.groups[g].name
            );
            let cursor = &mut self.groups[g].cursors[p as usize];
            cursor.processed.insert(offset);
            cursor.advance_finished();
        }
    }

    fn compare(&mut self, what: &str, got: LiveResult<()>, expected: LiveResult<()>) {
        check!(
            self,
            got == expected,
            "{what}: livecore gave {got:?}, the model expected {expected:?}"
        );
        if let Err(error) = &got {
            self.note(match error {
                LiveError::NotLeaseHolder { .. } => "refused: not the lease holder",
                LiveError::CommitBehind { .. } => "refused: behind",
                LiveError::CommitAhead { .. } => "refused: ahead",
                _ => "refused: other",
            });
        }
    }

    fn commit_one(&mut self, slot: usize, g: usize, p: u32, offset: u64) {
        let me = self.slots[slot].id;
        let now = self.now();
        let (topic, group) = (self.topics[self.groups[g].topic].name, self.groups[g].name);
        let before = self.groups[g].cursors[p as usize].committed;
        let expected = self.model_commit(g, me, &[(p, offset)], now);
        let got = self.manager.commit_offset(me, topic, group, p, offset);
        self.compare("commit_offset", got, expected);
        check!(
            self,
            self.groups[g].cursors[p as usize].committed >= before,
            "committed offset went backwards"
        );
    }

    fn nack(&mut self, slot: usize, g: usize, p: u32, offset: u64, delay_ms: u64) {
        let me = self.slots[slot].id;
        let (topic, group) = (self.topics[self.groups[g].topic].name, self.groups[g].name);
        let mut letters = self.letters_of(g);
        check!(
            self,
            letters.is_empty(),
            "dead letters before a nack: {letters:?}"
        );
        let got = self
            .manager
            .nack(me, topic, group, p, offset, Duration::from_millis(delay_ms));
        letters = self.letters_of(g);
        let expected = self.model_nack(g, me, p, offset, delay_ms, &mut letters);
        self.compare("nack", got.clone(), expected);
        check!(
            self,
            letters.is_empty(),
            "unexpected dead letters from a nack: {letters:?}"
        );
        if got.is_ok() {
            self.note(if delay_ms > 0 {
                "nacks delayed"
            } else {
                "nacks now"
            });
        }
    }

    fn commit_stale(&mut self) {
        let Some((slot, g)) = self.pick_consumer() else {
            return;
        };
        let Some(batch) = self.slots[slot].last_batch[g].clone() else {
            return;
        };
        let me = self.slots[slot].id;
        let now = self.now();
        let offsets = batch.next_offsets();
        let expected = self.model_commit(g, me, &offsets, now);
        let got = self.manager.commit_batch(me, &batch);
        self.compare("commit_batch (again)", got, expected);
        self.note("old batches committed again");
    }

    /// An offset near where partition `p` of `g` stands.
    fn near_offset(&mut self, g: usize, p: u32) -> u64 {
        let cursor = &self.groups[g].cursors[p as usize];
        let low = cursor.committed.saturating_sub(2);
        let high = cursor.lease.map_or(cursor.committed, |lease| lease.next) + 2;
        low + self.rng.below((high - low + 1) as usize) as u64
    }

    fn random_nack(&mut self) {
        let Some((slot, g)) = self.pick_consumer() else {
            return;
        };
        let p = self.rng.below(self.groups[g].cursors.len()) as u32;
        let offset = self.near_offset(g, p);
        let delay = if self.rng.chance(50) {
            0
        } else {
            self.rng.below(self.groups[g].lease_ms as usize + 1) as u64
        };
        self.nack(slot, g, p, offset, delay);
    }

    fn random_commit(&mut self) {
        let Some((slot, g)) = self.pick_consumer() else {
            return;
        };
        let p = self.rng.below(self.groups[g].cursors.len()) as u32;
        let offset = self.near_offset(g, p);
        self.commit_one(slot, g, p, offset);
    }

    fn extend(&mut self) {
        let Some((slot, g)) = self.pick_consumer() else {
            return;
        };
        let me = self.slots[slot].id;
        let now = self.now();
        self.expire(g, now);
        let renewed = self.renew(g, me, now);
        if renewed > 0 {
            self.groups[g].stats.lease_extensions += 1;
            self.note("leases extended");
        }
        let (topic, group) = (self.topics[self.groups[g].topic].name, self.groups[g].name);
        let got = self.manager.extend_leases(me, topic, group);
        check!(
            self,
            got == Ok(renewed),
            "extend_leases gave {got:?}, the model renewed {renewed}"
        );
    }

    fn leave_step(&mut self) {
        let Some((slot, g)) = self.pick_consumer() else {
            return;
        };
        let me = self.slots[slot].id;
        let (topic, group) = (self.topics[self.groups[g].topic].name, self.groups[g].name);
        self.manager.leave_group(me, topic, group).unwrap();
        self.leave(g, me);
        self.slots[slot].last_batch[g] = None;
        self.note("left a group");
    }

    fn unregister(&mut self) {
        let Some((slot, _)) = self.pick_consumer() else {
            return;
        };
        let me = self.slots[slot].id;
        self.manager.unregister_connection(me).unwrap();
        for g in 0..self.groups.len() {
            if self.groups[g].joined.contains(&me) {
                self.leave(g, me);
            }
        }
        self.slots[slot].id = self.register();
        self.slots[slot].last_batch = vec![None, None, None, None];
        self.note("unregistered a consumer");
    }

    fn sweep(&mut self) {
        let now = self.now();
        let mut expired = 0;
        for g in self.created_groups() {
            expired += self.expire(g, now);
        }
        let report = self.manager.check_connections_now();
        check!(
            self,
            report.leases_expired == expired && report.heartbeat_timeouts == 0,
            "check_connections expired {} leases, the model {expired} ({report:?})",
            report.leases_expired
        );
        if expired > 0 {
            self.note("leases expired by the sweep");
        }
    }

    fn toggle_dead_letter(&mut self) {
        let g = 1;
        let Some(toggle) = self.groups[g].toggles else {
            return;
        };
        let topic = self.topics[self.groups[g].topic].name;
        if self.groups[g].policy.is_some() {
            self.manager
                .clear_dead_letter(topic, self.groups[g].name)
                .unwrap();
            self.groups[g].policy = None;
            self.note("dead letter policy cleared");
        } else {
            self.manager
                .set_dead_letter(
                    topic,
                    self.groups[g].name,
                    &self.dlqs[toggle.dlq].name,
                    toggle.max_deliver,
                )
                .unwrap();
            self.groups[g].policy = Some(toggle);
            self.note("dead letter policy set");
        }
    }

    // ---- whole-state checks ----------------------------------------------------------

    fn check_everything(&mut self) {
        let now = self.now();
        let mut total = 0;
        for t in 0..self.topics.len() {
            let topic = &self.topics[t];
            let info = self.manager.topic_info(topic.name).unwrap();
            let bounds: Vec<PartitionBounds> = (0..topic.partitions())
                .map(|p| PartitionBounds {
                    start: topic.start[p as usize],
                    end: topic.end(p),
                })
                .collect();
            let mut groups: Vec<String> = self
                .groups
                .iter()
                .filter(|group| group.created && group.topic == t)
                .map(|group| group.name.to_string())
                .collect();
            groups.sort();
            check!(
                self,
                info.bounds == bounds
                    && info.appended == topic.appended
                    && info.write_failures == 0
                    && info.groups == groups,
                "topic_info of {}: {info:?}, the model's bounds {bounds:?}, appended {}, groups \
                 {groups:?}",
                topic.name,
                topic.appended
            );
            total += topic.appended;
        }
        for dlq in 0..self.dlqs.len() {
            let info = self.manager.topic_info(&self.dlqs[dlq].name).unwrap();
            // Every letter was read and matched as it was sent.
            check!(
                self,
                info.appended == self.dlqs[dlq].read,
                "{} holds {} letters, the soak read {}",
                self.dlqs[dlq].name,
                info.appended,
                self.dlqs[dlq].read
            );
            total += info.appended;
        }
        let appended = self.manager.stats().topic_messages;
        check!(
            self,
            appended == total,
            "the manager counts {appended} topic messages, the model {total}"
        );
        for g in self.created_groups() {
            self.check_group(g, now);
        }
    }

    fn check_group(&mut self, g: usize, now: u64) {
        let group = &self.groups[g];
        let topic = &self.topics[group.topic];
        let stats = self.manager.group_stats(topic.name, group.name).unwrap();
        // `members` is documented as the live members, a member being forgotten once quiet
        // for a lease duration; when livecore forgets them is not documented (it looks at
        // most every quarter lease), so only bounds are checked: at least the sessions that
        // consumed within a lease, at most those that joined and did not leave.
        let sure = group
            .last_consume
            .values()
            .filter(|&&at| at + group.lease_ms > now)
            .count();
        let expected = GroupStats {
            members: stats.members,
            ..group.stats
        };
        check!(
            self,
            stats == expected && (sure..=group.joined.len()).contains(&stats.members),
            "stats of {}: {stats:?}, the model's {:?} with {sure} to {} members",
            group.name,
            group.stats,
            group.joined.len()
        );
        let offsets = self.manager.group_offsets(topic.name, group.name).unwrap();
        for (p, partition) in offsets.iter().enumerate() {
            let cursor = &group.cursors[p];
            let bounds = PartitionBounds {
                start: topic.start[p],
                end: topic.end(p as u32),
            };
            let live = cursor.lease.filter(|lease| lease.expires_at > now);
            let expected = GroupPartition {
                partition: p as u32,
                committed: Some(cursor.committed),
                bounds,
                lag: bounds.end - cursor.committed.max(bounds.start),
                holder: live.map(|lease| lease.holder),
                delivered: live.map(|lease| lease.next),
                lease_expires_at_ms: live.map(|lease| lease.expires_at),
            };
            check!(
                self,
                *partition == expected,
                "group_offsets of {} partition {p}: {partition:?}, the model's {expected:?}",
                group.name
            );
        }
    }

    /// Every session leaves; one new consumer drains each group and commits everything.
    fn drain(&mut self) {
        self.clock.advance(MAX_LEASE_MS + 1);
        if !self.groups[3].created {
            self.create_group(3);
        }
        for g in 0..self.groups.len() {
            let (topic, group) = (self.topics[self.groups[g].topic].name, self.groups[g].name);
            for slot in 0..SLOTS {
                let me = self.slots[slot].id;
                self.manager.leave_group(me, topic, group).unwrap();
                self.leave(g, me);
            }
        }
        let drainer = self.register();
        self.slots.push(Slot {
            id: drainer,
            frozen_until: 0,
            last_batch: vec![None, None, None, None],
        });
        let slot = self.slots.len() - 1;
        for g in 0..self.groups.len() {
            let partitions = self.topics[self.groups[g].topic].partitions();
            let mut rounds = 0;
            loop {
                rounds += 1;
                check!(
                    self,
                    rounds < 10_000,
                    "the drain of {} never ended",
                    self.groups[g].name
                );
                let batch = self.consume(slot, g, 50, true);
                check!(
                    self,
                    batch.positions.len() == partitions as usize,
                    "the only member of {} holds {} of its {partitions} partitions",
                    self.groups[g].name,
                    batch.positions.len()
                );
                if batch.is_empty() {
                    break;
                }
                let by_partition = offsets_by_partition(&batch);
                for (p, offsets) in by_partition {
                    self.finish(g, p, &offsets);
                }
                let now = self.now();
                let expected = self.model_commit(g, drainer, &batch.next_offsets(), now);
                let got = self.manager.commit_batch(drainer, &batch);
                self.compare("commit_batch (drain)", got, expected);
            }
            self.check_group(g, self.now());
            for p in 0..partitions {
                let end = self.topics[self.groups[g].topic].end(p);
                let cursor = &self.groups[g].cursors[p as usize];
                check!(
                    self,
                    cursor.committed == end && cursor.finished_to == end,
                    "after the drain {} partition {p} is committed to {}, finished to {}, of {end}",
                    self.groups[g].name,
                    cursor.committed,
                    cursor.finished_to
                );
                for offset in cursor.owed_from..end {
                    let covered = cursor.accounted_for(offset);
                    check!(
                        self,
                        covered,
                        "{} never got {p}/{offset}, nor dead-lettered or skipped it",
                        self.groups[g].name
                    );
                }
            }
        }
        self.check_everything();
    }
}

fn run(seed: u64, steps: usize, coverage: &mut BTreeMap<&'static str, u64>) {
    let mut soak = Soak::new(seed);
    for _ in 0..steps {
        soak.run_step();
    }
    soak.drain();
    for (what, count) in soak.coverage {
        *coverage.entry(what).or_default() += count;
    }
}

/// What must have happened over the default seeds.
const EVENTS: &[&str] = &[
    "published round-robin",
    "published with a key",
    "published to a partition",
    "published to a partition with a key",
    "consumes",
    "batches committed",
    "old batches committed again",
    "nacks now",
    "nacks delayed",
    "a delayed nack held a partition",
    "redelivered after a nack",
    "redelivered after a lease ended",
    "leases expired by the sweep",
    "leases extended",
    "consumer crashed on a batch",
    "dead letter from a consume",
    "dead letter from a nack",
    "dead letter marked behind uncommitted messages",
    "dead letter skipped when handed out again",
    "commit went on past dead letters",
    "retention trimmed",
    "retention skips",
    "partition given up to rebalance",
    "left a group",
    "unregistered a consumer",
    "late group created",
    "dead letter policy set",
    "dead letter policy cleared",
    "refused: not the lease holder",
    "refused: behind",
    "refused: ahead",
];

#[test]
fn topics_match_the_model_across_nacks_expiries_dead_letters_and_retention() {
    let steps = soak_steps(4_000);
    let mut coverage = BTreeMap::new();
    if let Some(seed) = soak_seed() {
        return run(seed, steps, &mut coverage);
    }
    for seed in 1..=soak_seeds(16) {
        run(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            steps,
            &mut coverage,
        );
    }
    println!("topics soak coverage: {coverage:?}");
    let missing: Vec<&&str> = EVENTS
        .iter()
        .filter(|event| !coverage.contains_key(**event))
        .collect();
    assert!(
        missing.is_empty(),
        "never happened: {missing:?}; {coverage:?}"
    );
}

/// The offsets of a batch's messages, by partition, in the batch's order.
fn offsets_by_partition(batch: &ConsumeBatch) -> BTreeMap<u32, Vec<u64>> {
    let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for message in &batch.messages {
        by_partition
            .entry(message.partition)
            .or_default()
            .push(message.offset);
    }
    by_partition
}
