//! Topics and long-poll consumers.
//!
//! A **topic** has `N` partitions, each an append-only log of messages numbered by offsets,
//! trimmed by a retention bound (message count and bytes per partition). Messages come from
//! **routes** — committed changes of a table, of chosen change types, through an optional
//! SQL filter (the live-query filter), projected — or are published to the topic directly.
//! Every message keeps the SeqId of the commit that produced it. Storage is a [`TopicLog`];
//! [`MemoryLog`] is the default, and a host can plug in its own durable store.
//!
//! **Consumer groups** keep a committed offset per partition; within a group each
//! partition is leased to one consumer session at a time, and a lease that is not renewed
//! expires (the visibility timeout): what was handed out and not committed is handed out
//! again from the committed offset (at-least-once). See [`group`] for the rules.
//!
//! **Consumers** are registered connections (`register_connection`, then
//! `authenticate`): connection limits, heartbeats, `check_connections` timeouts and
//! shutdown apply to them. `consume` is a real long poll: it returns at once when messages
//! are waiting, and otherwise parks (no busy loop) until a message arrives or the timeout
//! passes.
//!
//! ```
//! use std::time::Duration;
//! use livecore::*;
//!
//! let manager = ConnectionsManager::new(ManagerConfig::default())?;
//! let messages = TableId::new("chat", "messages");
//! manager.register_table(TableSchema::new(messages.clone(), TableScope::Shared, ["id", "room", "body"]))?;
//!
//! // A topic of 4 partitions fed with the new messages of room 7, keyed by id.
//! manager.create_topic("room7", TopicConfig::partitions(4))?;
//! manager.add_topic_route(
//!     TopicRouteSpec::new("room7", messages.clone())
//!         .filter_sql("room = 7")
//!         .project(Projection::columns(["id", "body"]))
//!         .change_types(ChangeTypes::of(&[ChangeType::Insert]))
//!         .key_column("id"),
//! )?;
//! manager.create_consumer_group("room7", "indexer", GroupConfig::default())?;
//!
//! // The engine publishes as usual; the matching change becomes a message.
//! let row = Row::new(vec![Value::Int(1), Value::Int(7), Value::text("hi")]);
//! let summary = manager.publish(SeqId(42), ChangeNotification::insert(messages, row))?;
//! assert_eq!(summary.topic_messages, 1);
//!
//! // A consumer is a registered, authenticated connection; consume is a long poll.
//! let consumer = manager.register_connection()?;
//! manager.authenticate(consumer.connection_id, UserId::from("indexer"), None)?;
//! let batch = manager.consume(consumer.connection_id, "room7", "indexer", 100, Duration::from_secs(5))?;
//! assert_eq!(batch.messages[0].seq, SeqId(42));
//! assert!(batch.messages[0].to_json().contains(r#""row":{"id":1,"body":"hi"}"#));
//! // Done with the batch: commit, or it is handed out again when the lease expires.
//! manager.commit_batch(consumer.connection_id, &batch)?;
//! # Ok::<(), LiveError>(())
//! ```
//!
//! Lock order: topic locks come after the manager's own (`lifecycle`, the connection map,
//! a connection's subscriptions), which may be held when they are taken (unregistering
//! ends a consumer session under `lifecycle`; shutdown wakes sessions under the connection
//! map), and no topic lock is held while one of those is taken. Among topic locks: the
//! route writer, then a group's state, then the leaf locks (the topic map, a topic's group
//! map, the session map, wait lists, a session's group list, the log's partitions and
//! offsets), none of which is held while another lock is taken.

pub mod consume;
pub(crate) mod deliveries;
#[cfg(all(feature = "fjall", not(livecore_loom)))]
pub mod fjall_log;
pub mod group;
pub mod log;
// Used by the C ABI's host-supplied stores, which loom builds leave out.
#[cfg_attr(livecore_loom, allow(dead_code))]
pub mod record_codec;
pub mod route;
pub(crate) mod session;
pub(crate) mod wait;

use std::collections::{HashMap, HashSet};

use crate::error::{LiveError, LiveResult};
use crate::sync::{lock, Arc, ArcSwap, AtomicBool, AtomicU64, DataArc, Mutex, Ordering};
use crate::types::ids::{ConnectionId, SeqId};
use crate::types::value::Value;

use self::group::Group;
use self::log::TopicRecord;
use self::log::{PartitionBounds, Retention, TopicLog, TopicLogError, TopicMessage};
use self::route::RouteTable;
use self::session::ConsumerSession;
use self::wait::{PartitionSignal, WaitList};

pub use self::consume::{ConsumeBatch, PartitionPosition};
pub use self::group::{
    DeadLetterPolicy, GroupConfig, GroupPartition, GroupStats, ResetPolicy, RetentionSkip,
};
pub use self::route::TopicRouteSpec;
pub use self::route::{ChangeTypes, Partitioning, RouteFilter, TopicRouteId, TopicRouteInfo};

/// The shape of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TopicConfig {
    /// Number of partitions (at least 1).
    pub partitions: u32,
    /// What each partition keeps (applied by [`MemoryLog`](crate::MemoryLog) and by the
    /// fjall log given it; a host's own store applies its own, but the bounds are still
    /// checked).
    pub retention: Retention,
}

impl Default for TopicConfig {
    /// One partition, default retention.
    fn default() -> Self {
        Self {
            partitions: 1,
            retention: Retention::default(),
        }
    }
}

impl TopicConfig {
    /// `partitions` partitions with the default retention.
    pub fn partitions(partitions: u32) -> Self {
        Self {
            partitions,
            ..Self::default()
        }
    }

    /// Sets the retention.
    pub fn retention(mut self, max_messages: u64, max_bytes: u64) -> Self {
        self.retention = Retention {
            max_messages,
            max_bytes,
        };
        self
    }
}

/// A message published directly to a topic (not from a table route).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DirectMessage {
    /// The SeqId it carries (the commit it belongs to, or any number the host chooses).
    pub seq: SeqId,
    /// Its key: messages with SQL-equal keys land in one partition.
    pub key: Option<Value>,
    /// Its partition, overriding the key; `None` with no key spreads messages round-robin.
    pub partition: Option<u32>,
    /// Its content.
    pub payload: DataArc<[u8]>,
}

impl DirectMessage {
    /// A message with `payload`, no key, round-robin.
    pub fn new(seq: SeqId, payload: impl AsRef<[u8]>) -> Self {
        Self {
            seq,
            key: None,
            partition: None,
            payload: DataArc::from(payload.as_ref()),
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Value>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// Where an appended message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MessagePosition {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
}

/// A topic as [`ConnectionsManager::topic_info`](crate::ConnectionsManager::topic_info) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TopicInfo {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub config: TopicConfig,
    /// Each partition's retained offsets.
    pub bounds: Vec<PartitionBounds>,
    /// Its consumer groups' names, sorted.
    pub groups: Vec<String>,
    /// Routes feeding it.
    pub routes: usize,
    /// Messages appended.
    pub appended: u64,
    /// Messages that could not be appended (store errors, broken routes).
    pub write_failures: u64,
    /// The latest of those errors.
    pub last_write_error: Option<String>,
}

/// One topic.
pub(crate) struct Topic {
    pub(crate) name: DataArc<str>,
    pub(crate) config: TopicConfig,
    pub(crate) log: Box<dyn TopicLog>,
    pub(crate) signals: Box<[PartitionSignal]>,
    pub(crate) groups: Mutex<HashMap<DataArc<str>, Arc<Group>>>,
    /// Groups deleted whose offsets the store failed to forget. Creating and deleting
    /// groups take this lock first (before `groups`), so a create of such a name finishes
    /// the deletion before it reads the store, and never interleaves with a deletion.
    pub(crate) undeleted_groups: Mutex<HashSet<Box<str>>>,
    pub(crate) deleted: AtomicBool,
    pub(crate) round_robin: AtomicU64,
    pub(crate) appended: AtomicU64,
    pub(crate) write_failures: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// The manager-wide counters the topic also adds to.
    pub(crate) totals: Arc<TopicTotals>,
}

/// Manager-wide topic counters.
#[derive(Default)]
pub(crate) struct TopicTotals {
    pub(crate) appended: AtomicU64,
    pub(crate) write_failures: AtomicU64,
    pub(crate) parks: AtomicU64,
}

impl Topic {
    pub(crate) fn partition_count(&self) -> u32 {
        self.signals.len() as u32
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    pub(crate) fn check_partition(&self, partition: u32) -> LiveResult<()> {
        if partition < self.partition_count() {
            Ok(())
        } else {
            Err(LiveError::UnknownPartition {
                topic: self.name.to_string(),
                partition,
                partitions: self.partition_count(),
            })
        }
    }

    pub(crate) fn store_error(&self, error: TopicLogError) -> LiveError {
        store_error(&self.name, error)
    }

    /// Appends `records` to `partition` and wakes its waiting consumers; returns the first
    /// offset. A failure is counted and kept as the topic's last error.
    pub(crate) fn append(&self, partition: u32, records: Vec<TopicRecord>) -> LiveResult<u64> {
        let count = records.len() as u64;
        let signal = &self.signals[partition as usize];
        let appended = match signal.start_append(count) {
            None => Err(TopicLogError::Store(format!(
                "partition {partition} of the store ends too close to the largest offset for \
                 an append of {count} messages"
            ))),
            Some(start) => self.log.append(partition, records).and_then(|first| {
                signal
                    .check_append(start, first, count)
                    .map(|()| first)
                    .map_err(|(lowest, highest)| {
                        TopicLogError::Store(format!(
                            "the store gave first offset {first} to an append of {count} \
                             messages to partition {partition}; livecore, its only writer, \
                             expects one from {lowest} to {highest}"
                        ))
                    })
            }),
        };
        match appended {
            Ok(first) => {
                signal.appended(first + count);
                self.appended.fetch_add(count, Ordering::Relaxed);
                self.totals.appended.fetch_add(count, Ordering::Relaxed);
                Ok(first)
            }
            Err(error) => {
                let error = self.store_error(error);
                self.record_failure(count, &error.to_string());
                Err(error)
            }
        }
    }

    /// Reads up to `max_messages` messages of `partition` from `offset` into `out` with the
    /// log's [`read_until`](TopicLog::read_until), `end` being the partition's end as
    /// livecore's appends raised it before the read. Nothing the log returns is trusted:
    /// messages of another partition or out of offset order are a store error (and `out`
    /// is left as it was); messages at or past `end` are dropped, so a lease never moves
    /// past what livecore appended. A read below `end` that returns nothing is the error
    /// [`empty_read`](Self::empty_read) decides.
    pub(crate) fn read_log(
        &self,
        partition: u32,
        offset: u64,
        end: u64,
        max_messages: usize,
        out: &mut Vec<DataArc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        let before = out.len();
        if let Err(error) = self
            .log
            .read_until(partition, offset, end, max_messages, out)
        {
            out.truncate(before);
            return Err(error);
        }
        let mut min = offset;
        let mut keep = out.len().min(before + max_messages);
        for (index, message) in out[before..keep].iter().enumerate() {
            if message.partition != partition || message.offset < min {
                let error = TopicLogError::Store(format!(
                    "a read of partition {partition} from offset {offset} returned offset {} of partition {} after offset {min} (out of order)",
                    message.offset, message.partition
                ));
                out.truncate(before);
                return Err(error);
            }
            if message.offset >= end {
                keep = before + index;
                break;
            }
            // No overflow: the offset is below `end`.
            min = message.offset + 1;
        }
        out.truncate(keep);
        // Nothing below the end: a gap to move past (handled as retention), or a store
        // error; never an empty read while `offset < end`, which would never park (a spin).
        if out.len() == before && offset < end && max_messages > 0 {
            return Err(self.empty_read(partition, offset, end));
        }
        Ok(())
    }

    /// A read of `partition` at `offset`, below livecore's end `end`, returned nothing. A
    /// store may keep gaps (and push from the first retained offset after the one asked
    /// for), so the partition's bounds decide: `offset` below the retained start is a gap
    /// to move past, returned as [`TopicLogError::OutOfRange`] (the reset policy applies
    /// and the skipped range is counted, as for retention); otherwise the store claims to
    /// hold messages it did not return, a store error.
    fn empty_read(&self, partition: u32, offset: u64, end: u64) -> TopicLogError {
        match self.log.bounds(partition) {
            Ok(bounds) if offset < bounds.start => TopicLogError::OutOfRange(bounds),
            Ok(bounds) => TopicLogError::Store(format!(
                "a read of partition {partition} at offset {offset} returned nothing below the end {end} livecore appended up to, yet the store's bounds are {}..{}",
                bounds.start, bounds.end
            )),
            Err(error) => error,
        }
    }

    /// Counts `count` messages that could not be written, and why.
    pub(crate) fn record_failure(&self, count: u64, reason: &str) {
        self.write_failures.fetch_add(count, Ordering::Relaxed);
        self.totals
            .write_failures
            .fetch_add(count, Ordering::Relaxed);
        *lock(&self.last_error) = Some(reason.to_string());
    }

    /// Marks the topic deleted and wakes everyone waiting on it.
    pub(crate) fn delete(&self) {
        self.deleted.store(true, Ordering::SeqCst);
        let groups: Vec<_> = lock(&self.groups).values().cloned().collect();
        for group in groups {
            group.delete();
        }
        for signal in self.signals.iter() {
            signal.waiters.wake_all();
        }
    }
}

/// The topic side of a manager.
pub(crate) struct Topics {
    pub(crate) topics: Mutex<HashMap<DataArc<str>, Arc<Topic>>>,
    /// Routes by table, read by publishers.
    pub(crate) routes: ArcSwap<RouteTable>,
    /// Serializes route changes; holds the last route id given.
    pub(crate) routes_writer: Mutex<u64>,
    /// True while any route exists: the publish hook's one atomic load.
    pub(crate) routed: AtomicBool,
    /// Consumer sessions by connection.
    pub(crate) sessions: Mutex<HashMap<ConnectionId, Arc<ConsumerSession>>>,
    pub(crate) totals: Arc<TopicTotals>,
    /// Parked consumes to wake when the manager clock steps (a clock like `ManualClock`):
    /// `None` with a clock that moves by itself.
    pub(crate) clock_waiters: Option<DataArc<WaitList>>,
}

impl Topics {
    pub(crate) fn new(clock_waiters: Option<DataArc<WaitList>>) -> Self {
        Self {
            clock_waiters,
            topics: Mutex::new(HashMap::new()),
            routes: ArcSwap::from_pointee(RouteTable::default()),
            routes_writer: Mutex::new(0),
            routed: AtomicBool::new(false),
            sessions: Mutex::new(HashMap::new()),
            totals: Arc::new(TopicTotals::default()),
        }
    }

    /// True when some topic route exists (one atomic load, for the publish path).
    #[inline]
    pub(crate) fn is_routed(&self) -> bool {
        self.routed.load(Ordering::Acquire)
    }

    /// Recomputes `routed`; the caller holds the route writer.
    pub(crate) fn refresh_routed(&self) {
        let routed = !self.routes.load().is_empty();
        self.routed.store(routed, Ordering::Release);
    }

    /// The session of a connection, if it has consumed.
    pub(crate) fn session(&self, id: ConnectionId) -> Option<Arc<ConsumerSession>> {
        lock(&self.sessions).get(&id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Topic>> {
        lock(&self.topics).values().cloned().collect()
    }
}

/// The error of topic `topic`'s store failing (or misbehaving) for `reason`.
pub(crate) fn store_error(topic: &str, reason: impl std::fmt::Display) -> LiveError {
    LiveError::TopicStore {
        topic: topic.to_string(),
        reason: reason.to_string(),
    }
}

/// `offset` of `partition` is outside the retained range `bounds`.
pub(crate) fn offset_out_of_range(
    topic: &str,
    partition: u32,
    offset: u64,
    bounds: PartitionBounds,
) -> LiveError {
    LiveError::OffsetOutOfRange {
        topic: topic.to_string(),
        partition,
        offset,
        start: bounds.start,
        end: bounds.end,
    }
}

/// Checks a read's `max_messages`: 1 to `max`.
pub(crate) fn check_max_messages(max_messages: usize, max: usize) -> LiveResult<()> {
    if max_messages == 0 || max_messages > max {
        return Err(LiveError::OutOfBounds {
            what: "max_messages",
            value: max_messages as u64,
            min: 1,
            max: max as u64,
        });
    }
    Ok(())
}

/// Checks a topic or group name: 1 to `max_len` bytes of ASCII letters, digits, `.`, `_`
/// and `-`.
pub(crate) fn validate_name(what: &'static str, name: &str, max_len: usize) -> LiveResult<()> {
    let refuse = |reason| {
        let mut shown = name.to_string();
        if shown.len() > 64 {
            let mut cut = 64;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
        }
        Err(LiveError::InvalidName {
            what,
            name: shown,
            reason,
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > max_len {
        return Err(LiveError::OutOfBounds {
            what: "name length (bytes)",
            value: name.len() as u64,
            min: 1,
            max: max_len as u64,
        });
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
    {
        return refuse("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}
