//! The one error type of the library. Every refusal is a variant with the facts needed to
//! act on it; nothing is reported as a bare `None` or `false`.

use std::fmt;

use crate::types::ending::SubscriptionEnding;
use crate::types::ids::{ConnectionId, SubscriptionId, TableId};

/// Everything livecore can refuse or fail at.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LiveError {
    /// The manager already holds its configured maximum of connections.
    ConnectionLimitReached {
        /// The configured maximum.
        max: usize,
    },
    /// The connection already holds its configured maximum of subscriptions.
    SubscriptionLimitReached {
        /// The connection that asked.
        connection_id: ConnectionId,
        /// The configured maximum.
        max: usize,
    },
    /// The manager is shutting down and accepts no new connections or subscriptions; also
    /// what a call naming a connection gets once the shutdown closed it (or any id not
    /// registered, after a shutdown began).
    ShuttingDown,
    /// No connection with this id is registered (never was, or already unregistered).
    UnknownConnection(ConnectionId),
    /// The connection has not authenticated, so it may not subscribe or consume.
    NotAuthenticated(ConnectionId),
    /// The connection is already authenticated as another user.
    AlreadyAuthenticated(ConnectionId),
    /// The connection was cut off as a slow consumer
    /// ([`SlowConsumerPolicy::Disconnect`](crate::SlowConsumerPolicy::Disconnect)): its
    /// receiver hands out nothing more, so it takes no new subscription. Unregister it.
    ConnectionCutOff(ConnectionId),
    /// No table with this id is registered.
    UnknownTable(TableId),
    /// A table schema was refused.
    InvalidSchema {
        /// The table.
        table: TableId,
        /// What is wrong with it.
        reason: String,
    },
    /// A filter or projection names a column the table does not have.
    UnknownColumn {
        /// The table.
        table: TableId,
        /// The column as written.
        column: String,
    },
    /// A filter nests deeper than the configured limit.
    FilterTooDeep {
        /// The depth reached when measuring stopped (one past the limit at most).
        depth: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A filter has more nodes than the configured limit.
    FilterTooLarge {
        /// The nodes counted when measuring stopped (one past the limit at most).
        nodes: usize,
        /// The configured maximum.
        max: usize,
    },
    /// An IN list is longer than the configured limit.
    InListTooLong {
        /// The list's length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A LIKE or GLOB pattern is longer (in bytes) than the configured limit.
    LikePatternTooLong {
        /// The pattern's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A filter is malformed in a way the SQL grammar allows but livecore cannot evaluate.
    InvalidFilter(String),
    /// The subscription SQL could not be parsed or uses an unsupported construct.
    Sql {
        /// What is wrong, naming the construct.
        message: String,
        /// 1-based line of the offending construct, 0 when unknown.
        line: u64,
        /// 1-based column of the offending construct, 0 when unknown.
        column: u64,
    },
    /// No subscription with this id exists (never did, or the host removed it).
    UnknownSubscription(SubscriptionId),
    /// livecore ended the subscription (its subscriber gets the matching terminal notice,
    /// unless the host unsubscribes it or unregisters the connection first):
    /// what to do next follows from `ending` — for
    /// [`ResyncRequired`](SubscriptionEnding::ResyncRequired), subscribe again with a fresh
    /// initial load. A connection remembers the endings of its last
    /// [`ENDED_SUBSCRIPTIONS_REMEMBERED`](crate::ENDED_SUBSCRIPTIONS_REMEMBERED)
    /// subscriptions, or of its last `max_subscriptions_per_connection` if more;
    /// `unsubscribe` on one succeeds and forgets it.
    SubscriptionEnded {
        /// The subscription.
        subscription_id: SubscriptionId,
        /// How it ended.
        ending: SubscriptionEnding,
    },
    /// The operation does not fit the subscription's current state.
    InvalidState {
        /// The subscription.
        subscription_id: SubscriptionId,
        /// What the state is and why the operation does not fit it.
        reason: &'static str,
    },
    /// The connection's channel is full: nothing beyond `consumed` items was taken; retry
    /// with the rest once the receiver has drained. (A connection cut off as a slow
    /// consumer keeps its channel full until the host unregisters it: a load's send to it
    /// is [`LiveError::InvalidState`] instead, so a retry loop ends.)
    WouldBlock {
        /// How many of the given items were taken before the channel filled.
        consumed: usize,
    },
    /// A change to a user-scoped table did not name the user that owns the row.
    MissingOwner(TableId),
    /// A row's length does not match the table's column count.
    RowArity {
        /// The table.
        table: TableId,
        /// The schema's column count.
        expected: usize,
        /// The row's length.
        got: usize,
    },
    /// An update or delete came without the old row it needs.
    MissingOldRow(TableId),
    /// A commit carries more changes than livecore can address.
    CommitTooLarge {
        /// The commit's change count.
        changes: usize,
        /// The most one commit may carry.
        max: usize,
    },
    /// A configuration value is out of range.
    InvalidConfig(String),
    /// A value a client or host controls is outside its allowed bounds (a limit).
    OutOfBounds {
        /// What was bounded, with its unit (for example `"max_messages"`, `"lease (ms)"`).
        what: &'static str,
        /// The value given (or the count it would have reached).
        value: u64,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// A topic or consumer group name is not acceptable.
    InvalidName {
        /// What was being named (`"topic"`, `"consumer group"`).
        what: &'static str,
        /// The name as given (cut to 64 bytes).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No topic with this name exists (never did, or it was deleted).
    UnknownTopic(String),
    /// A topic with this name already exists.
    TopicExists(String),
    /// The topic has no partition with this number.
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// The topic's number of partitions (valid partitions are `0..partitions`).
        partitions: u32,
    },
    /// No topic route with this id exists (never did, or it was removed).
    UnknownTopicRoute(u64),
    /// The topic has no consumer group with this name.
    UnknownGroup {
        /// The topic.
        topic: String,
        /// The group asked for.
        group: String,
    },
    /// The topic already has a consumer group with this name.
    GroupExists {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
    },
    /// An offset is outside the partition's retained range `start..=end` (`end` is the
    /// offset the next message will get).
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// The oldest retained offset.
        start: u64,
        /// The offset the next appended message will get.
        end: u64,
    },
    /// The group has no committed offset for the partition and its reset policy is
    /// `None`: position it with `seek_group` first.
    NoCommittedOffset {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
        /// The partition.
        partition: u32,
    },
    /// The consumer does not hold the partition's lease in the group (it never did, or the
    /// lease expired or was handed to another consumer).
    NotLeaseHolder {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
        /// The partition.
        partition: u32,
        /// The consumer session that holds the lease now, if any.
        holder: Option<ConnectionId>,
    },
    /// A commit would move the group's committed offset backwards; commits only move
    /// forward.
    CommitBehind {
        /// The partition.
        partition: u32,
        /// The offset given.
        offset: u64,
        /// The offset already committed.
        committed: u64,
    },
    /// A commit names an offset beyond what this lease has handed out.
    CommitAhead {
        /// The partition.
        partition: u32,
        /// The offset given.
        offset: u64,
        /// One past the last offset handed out under the lease.
        delivered: u64,
    },
    /// The topic's storage (a host-provided `TopicLog`) failed.
    TopicStore {
        /// The topic.
        topic: String,
        /// The store's error.
        reason: String,
    },
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::ConnectionLimitReached { max } => {
                write!(f, "connection limit reached ({max} connections)")
            }
            LiveError::SubscriptionLimitReached { connection_id, max } => write!(
                f,
                "connection {connection_id} reached its subscription limit ({max})"
            ),
            LiveError::ShuttingDown => f.write_str("the manager is shutting down"),
            LiveError::UnknownConnection(id) => write!(f, "unknown connection {id}"),
            LiveError::NotAuthenticated(id) => {
                write!(f, "connection {id} must authenticate first (to subscribe or consume)")
            }
            LiveError::AlreadyAuthenticated(id) => {
                write!(
                    f,
                    "connection {id} is already authenticated as another user"
                )
            }
            LiveError::ConnectionCutOff(id) => write!(
                f,
                "connection {id} was cut off as a slow consumer: it takes no new subscription; \
                 unregister it"
            ),
            LiveError::UnknownTable(table) => write!(f, "unknown table {table}"),
            LiveError::InvalidSchema { table, reason } => {
                write!(f, "invalid schema for {table}: {reason}")
            }
            LiveError::UnknownColumn { table, column } => {
                write!(f, "table {table} has no column '{column}'")
            }
            LiveError::FilterTooDeep { depth, max } => {
                write!(f, "filter nests {depth} levels deep; the limit is {max}")
            }
            LiveError::FilterTooLarge { nodes, max } => {
                write!(f, "filter has {nodes} nodes; the limit is {max}")
            }
            LiveError::InListTooLong { len, max } => {
                write!(f, "IN list has {len} items; the limit is {max}")
            }
            LiveError::LikePatternTooLong { len, max } => {
                write!(f, "LIKE or GLOB pattern is {len} bytes; the limit is {max}")
            }
            LiveError::InvalidFilter(reason) => write!(f, "invalid filter: {reason}"),
            LiveError::Sql {
                message,
                line,
                column,
            } => {
                if *line > 0 {
                    write!(f, "{message} (at line {line}, column {column})")
                } else {
                    f.write_str(message)
                }
            }
            LiveError::UnknownSubscription(id) => write!(f, "unknown subscription {id}"),
            LiveError::SubscriptionEnded {
                subscription_id,
                ending,
            } => match ending {
                SubscriptionEnding::ResyncRequired => write!(
                    f,
                    "subscription {subscription_id} has ended and must resync: subscribe again \
                     with a fresh initial load"
                ),
                SubscriptionEnding::ResumeUnavailable => write!(
                    f,
                    "subscription {subscription_id} has ended: resume is unavailable from its \
                     SeqId; subscribe again with a fresh initial load"
                ),
                SubscriptionEnding::Closed(reason) => write!(
                    f,
                    "subscription {subscription_id} was closed ({})",
                    reason.code()
                ),
            },
            LiveError::InvalidState {
                subscription_id,
                reason,
            } => write!(f, "subscription {subscription_id}: {reason}"),
            LiveError::WouldBlock { consumed } => write!(
                f,
                "the connection's channel is full; {consumed} items were taken, retry the rest"
            ),
            LiveError::MissingOwner(table) => {
                write!(f, "a change to user table {table} must name its owner")
            }
            LiveError::RowArity {
                table,
                expected,
                got,
            } => write!(
                f,
                "table {table} has {expected} columns but the row has {got}"
            ),
            LiveError::MissingOldRow(table) => {
                write!(f, "an update or delete on {table} needs the old row")
            }
            LiveError::CommitTooLarge { changes, max } => {
                write!(f, "a commit carries {changes} changes; the most is {max}")
            }
            LiveError::InvalidConfig(reason) => write!(f, "invalid configuration: {reason}"),
            LiveError::OutOfBounds {
                what,
                value,
                min,
                max,
            } => write!(f, "{what} is {value}; it must be between {min} and {max}"),
            LiveError::InvalidName { what, name, reason } => {
                write!(f, "invalid {what} name '{name}': {reason}")
            }
            LiveError::UnknownTopic(topic) => write!(f, "unknown topic {topic}"),
            LiveError::TopicExists(topic) => write!(f, "topic {topic} already exists"),
            LiveError::UnknownPartition {
                topic,
                partition,
                partitions,
            } => write!(
                f,
                "topic {topic} has no partition {partition} (it has {partitions})"
            ),
            LiveError::UnknownTopicRoute(id) => write!(f, "unknown topic route {id}"),
            LiveError::UnknownGroup { topic, group } => {
                write!(f, "topic {topic} has no consumer group {group}")
            }
            LiveError::GroupExists { topic, group } => {
                write!(f, "topic {topic} already has a consumer group {group}")
            }
            LiveError::OffsetOutOfRange {
                topic,
                partition,
                offset,
                start,
                end,
            } => write!(
                f,
                "offset {offset} is out of range for {topic}/{partition}: retained offsets are {start}..{end}"
            ),
            LiveError::NoCommittedOffset {
                topic,
                group,
                partition,
            } => write!(
                f,
                "group {group} has no committed offset on {topic}/{partition} and its reset policy is none"
            ),
            LiveError::NotLeaseHolder {
                topic,
                group,
                partition,
                holder,
            } => match holder {
                Some(holder) => write!(
                    f,
                    "{topic}/{partition} in group {group} is leased to consumer {holder}"
                ),
                None => write!(
                    f,
                    "{topic}/{partition} in group {group} is not leased to this consumer (the lease expired or was released)"
                ),
            },
            LiveError::CommitBehind {
                partition,
                offset,
                committed,
            } => write!(
                f,
                "commit of offset {offset} on partition {partition} is behind the committed offset {committed}; commits only move forward"
            ),
            LiveError::CommitAhead {
                partition,
                offset,
                delivered,
            } => write!(
                f,
                "commit of offset {offset} on partition {partition} is beyond what was handed out (up to {delivered})"
            ),
            LiveError::TopicStore { topic, reason } => {
                write!(f, "the store of topic {topic} failed: {reason}")
            }
        }
    }
}

impl std::error::Error for LiveError {}

/// Results of livecore's fallible operations.
pub type LiveResult<T> = Result<T, LiveError>;
