//! Manager configuration: capacities, limits, timeouts and policies.

use std::time::Duration;

use crate::error::LiveError;
use crate::error::LiveResult;
use crate::types::ids::NodeId;

/// What to do when a subscriber's channel is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SlowConsumerPolicy {
    /// Drop the delivery, count it, and tell the subscriber with a gap notice carrying the
    /// last SeqId it got and how many deliveries it missed.
    #[default]
    GapNotice,
    /// Drop the delivery, count it, and raise [`ConnectionEvent::SlowConsumer`] so the host
    /// closes the connection; its receiver then reports the end of the stream. Until the
    /// host unregisters the connection, its channel stays full: what is published to it
    /// is dropped and counted the same way, and a load's sends to it are
    /// [`LiveError::InvalidState`](crate::LiveError::InvalidState).
    ///
    /// [`ConnectionEvent::SlowConsumer`]: crate::ConnectionEvent::SlowConsumer
    Disconnect,
}

/// Configuration of a [`ConnectionsManager`](crate::ConnectionsManager).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ManagerConfig {
    /// The node this manager runs on, recorded in its live-query records.
    pub node_id: NodeId,
    /// Most connections registered at once.
    pub max_connections: usize,
    /// Most subscriptions one connection may hold. Removed subscriptions whose deliveries
    /// still wait in a full notification channel count too, until the connection's receiver
    /// reads past them: a connection that is never read cannot pile them up.
    pub max_subscriptions_per_connection: usize,
    /// Capacity of each connection's notification channel (1 to
    /// [`MAX_CHANNEL_CAPACITY`]). Besides deliveries, it holds one internal marker for each
    /// subscription removed, or carried over a schema change, while deliveries of it may
    /// still be queued, until the receiver reads past it: a capacity at or below
    /// `max_subscriptions_per_connection` can make a schema change or a mass unsubscribe
    /// cost the next commits' deliveries (reported as gaps).
    pub notification_channel_capacity: usize,
    /// Capacity of each connection's event channel (1 to [`MAX_CHANNEL_CAPACITY`]).
    pub event_channel_capacity: usize,
    /// Most live changes buffered behind one subscription's gate while its initial load
    /// (or resume replay) runs; one more closes the subscription with `ResyncRequired`,
    /// and calls on it return [`LiveError::SubscriptionEnded`](crate::LiveError). Replayed
    /// commits do not count against it (they stream into the channel with back-pressure):
    /// raise it when loads take long under a heavy write rate.
    pub gate_buffer_capacity: usize,
    /// Largest snapshot batch a subscription may ask for (below 2^31).
    pub max_snapshot_batch_size: usize,
    /// A connection that has not started authenticating this long after registering gets
    /// `AuthTimeout`.
    pub auth_timeout: Duration,
    /// How often an idle authenticated connection gets `SendPing`.
    pub ping_interval: Duration,
    /// A connection with no heartbeat for this long gets `HeartbeatTimeout`.
    pub heartbeat_timeout: Duration,
    /// What to do when a subscriber's channel is full.
    pub slow_consumer_policy: SlowConsumerPolicy,
    /// Limits on filters. Subscription SQL text is also bounded by its length,
    /// [`MAX_SUBSCRIPTION_SQL_LEN`](crate::MAX_SUBSCRIPTION_SQL_LEN) bytes (64 KiB, a
    /// constant), checked before the text is read; the IN-list and operator-count limits
    /// here are then checked on its tokens, before it is parsed.
    pub filter_limits: FilterLimits,
    /// Keep a manager-wide queue of connections that have something to read, for hosts
    /// that serve many connections from one thread.
    pub ready_queue: bool,
    /// The namespace of a table that subscription SQL names without one
    /// (`SELECT * FROM messages` reads `<default_namespace>.messages`). It is `"default"`
    /// unless set: a table registered as `chat.messages` is found by `FROM messages` only
    /// with `default_namespace: "chat".into()`; `FROM chat.messages` always finds it.
    pub default_namespace: String,
    /// Most entries in each of the query caches (parsed SQL texts, and compiled queries
    /// shared by identical subscriptions); the least recently used are evicted beyond it.
    pub query_cache_capacity: usize,
    /// Limits on topics, routes, consumer groups and long polls.
    pub topics: TopicLimits,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            node_id: NodeId(1),
            max_connections: 100_000,
            max_subscriptions_per_connection: 100,
            notification_channel_capacity: NOTIFICATION_CHANNEL_CAPACITY,
            event_channel_capacity: EVENT_CHANNEL_CAPACITY,
            gate_buffer_capacity: 10_000,
            max_snapshot_batch_size: 10_000,
            auth_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(90),
            slow_consumer_policy: SlowConsumerPolicy::GapNotice,
            filter_limits: FilterLimits::default(),
            ready_queue: false,
            default_namespace: "default".to_string(),
            query_cache_capacity: 4096,
            topics: TopicLimits::default(),
        }
    }
}

impl ManagerConfig {
    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), LiveError> {
        let positive = [
            ("max_connections", self.max_connections),
            (
                "max_subscriptions_per_connection",
                self.max_subscriptions_per_connection,
            ),
            (
                "notification_channel_capacity",
                self.notification_channel_capacity,
            ),
            ("event_channel_capacity", self.event_channel_capacity),
            ("gate_buffer_capacity", self.gate_buffer_capacity),
            ("max_snapshot_batch_size", self.max_snapshot_batch_size),
            ("query_cache_capacity", self.query_cache_capacity),
            ("filter_limits.max_depth", self.filter_limits.max_depth),
            ("filter_limits.max_nodes", self.filter_limits.max_nodes),
            ("filter_limits.max_in_list", self.filter_limits.max_in_list),
            (
                "filter_limits.max_like_pattern",
                self.filter_limits.max_like_pattern,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(LiveError::InvalidConfig(format!(
                "{name} must be at least 1"
            )));
        }
        let channels = [
            (
                "notification_channel_capacity",
                self.notification_channel_capacity,
            ),
            ("event_channel_capacity", self.event_channel_capacity),
        ];
        if let Some((name, _)) = channels
            .iter()
            .find(|(_, capacity)| *capacity > MAX_CHANNEL_CAPACITY)
        {
            return Err(LiveError::InvalidConfig(format!(
                "{name} must be at most {MAX_CHANNEL_CAPACITY}"
            )));
        }
        if self.filter_limits.max_depth > MAX_FILTER_DEPTH {
            return Err(LiveError::InvalidConfig(format!(
                "filter_limits.max_depth must be at most {MAX_FILTER_DEPTH}"
            )));
        }
        if self.filter_limits.max_nodes > MAX_FILTER_NODES {
            return Err(LiveError::InvalidConfig(format!(
                "filter_limits.max_nodes must be at most {MAX_FILTER_NODES}"
            )));
        }
        // Each subscription keeps its batch size in 31 bits (see PackedOptions).
        if self.max_snapshot_batch_size >= 1 << 31 {
            return Err(LiveError::InvalidConfig(
                "max_snapshot_batch_size must be below 2^31".into(),
            ));
        }
        if self.heartbeat_timeout <= self.ping_interval {
            return Err(LiveError::InvalidConfig(
                "heartbeat_timeout must be longer than ping_interval".into(),
            ));
        }
        self.topics.validate()
    }
}

/// Default capacity of a connection's notification channel (a [`ManagerConfig`] can
/// override it).
///
/// [`ManagerConfig`]: crate::ManagerConfig
pub const NOTIFICATION_CHANNEL_CAPACITY: usize = 1024;

/// The largest capacity a connection's notification or event channel may have: 2^24
/// items. Far beyond what a connection should hold unread (a full channel is where slow
/// consumers are detected), and small enough that the channel's own bookkeeping never
/// overflows.
pub const MAX_CHANNEL_CAPACITY: usize = 1 << 24;

/// The most partitions a topic may have: [`TopicLimits::max_partitions`] is at most this.
/// A topic's partitions are made when it is created (each with its state and a wake-up
/// signal), so the bound keeps a create from asking for more memory than a host has.
pub const MAX_TOPIC_PARTITIONS: u32 = 1 << 16;

/// The longest topic or consumer group name, in bytes: [`TopicLimits::max_name_len`] is
/// at most this. (A durable log's keys hold both names, and its store bounds key length.)
pub const MAX_TOPIC_NAME_LEN: usize = 4096;

/// Default capacity of a connection's event channel. Events are never lost to a full
/// channel: an event that does not fit is kept as a pending flag and delivered when the
/// receiver drains.
pub const EVENT_CHANNEL_CAPACITY: usize = 16;

/// The deepest filter a configuration may allow: [`FilterLimits::max_depth`] is at most
/// this. Compiling and evaluating a filter recurse once per level on the caller's stack
/// (up to about 1.5 KiB a level in an optimized build, several times that unoptimized),
/// and a host's threads may have small stacks: filters of 256 levels run on a 512 KiB
/// stack (optimized), where an unbounded setting let a client's SQL overflow any stack.
pub const MAX_FILTER_DEPTH: usize = 256;

/// The most filter nodes a configuration may allow: [`FilterLimits::max_nodes`] is at most
/// this. The SQL parser reads a chain of operators (`a OR b OR c ...`) into a tree as deep
/// as the chain is long, and reading and dropping that tree recurse once per level on the
/// caller's stack (about 100 bytes a level in an optimized build). The operators are
/// counted before the text is parsed, up to twice the node limit (an operator may be
/// spelled in two words, `IS NOT`): the longest chain that lets through at this ceiling,
/// 4097 operators, runs on a 512 KiB stack, where an unbounded setting let a client's SQL
/// within the text limit overflow a host thread's stack.
pub const MAX_FILTER_NODES: usize = 2048;

/// The largest payload a configuration may let a direct topic publish carry:
/// [`TopicLimits::max_message_bytes`] is at most this (1 GiB, as a C value's bytes). A
/// payload is copied into one allocation, whose failure would abort the process.
pub const MAX_TOPIC_MESSAGE_BYTES: usize = 1 << 30;

/// The most changes one commit may carry (positions are packed into 30 bits).
pub const MAX_COMMIT_CHANGES: usize = 1 << 30;

/// The longest subscription SQL text accepted, in bytes; longer text is refused with
/// [`LiveError::OutOfBounds`] before it is tokenized.
///
/// 64 KiB holds any query the default [`FilterLimits`] accept with room to spare (1000 IN
/// items of 40-byte quoted UUIDs are about 42 KB), while a refused text costs at most a
/// 64 KiB scan. It is a constant rather than a setting: raising the filter limits far beyond
/// their defaults is what would need more.
pub const MAX_SUBSCRIPTION_SQL_LEN: usize = 64 * 1024;

/// Limits that hold against hostile filters. Each refusal is its own typed error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FilterLimits {
    /// Deepest nesting of the expression tree (a lone comparison has depth 2); 1 to
    /// [`MAX_FILTER_DEPTH`].
    pub max_depth: usize,
    /// Most nodes in the expression tree; 1 to [`MAX_FILTER_NODES`].
    pub max_nodes: usize,
    /// Longest IN list.
    pub max_in_list: usize,
    /// Longest LIKE (or GLOB) pattern, in bytes.
    pub max_like_pattern: usize,
}

impl FilterLimits {
    /// These limits with the depth and node count held to [`MAX_FILTER_DEPTH`] and
    /// [`MAX_FILTER_NODES`], which the parser and the compiler apply whatever limits a
    /// caller hands them directly.
    pub(crate) fn bounded(&self) -> FilterLimits {
        FilterLimits {
            max_depth: self.max_depth.min(MAX_FILTER_DEPTH),
            max_nodes: self.max_nodes.min(MAX_FILTER_NODES),
            ..*self
        }
    }
}

impl Default for FilterLimits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_nodes: 1024,
            // Below the node limit, which counts each item: a list at its longest still
            // fits with its column, the IN and a few more conditions.
            max_in_list: 1000,
            max_like_pattern: 1024,
        }
    }
}

/// Limits on everything topic clients and hosts control. Each refusal is
/// [`LiveError::OutOfBounds`] naming the bound.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TopicLimits {
    /// Most topics at once.
    pub max_topics: usize,
    /// Most partitions of one topic (1 to [`MAX_TOPIC_PARTITIONS`]).
    pub max_partitions: u32,
    /// Most topic routes at once (all topics).
    pub max_routes: usize,
    /// Most consumer groups of one topic.
    pub max_groups_per_topic: usize,
    /// Most consumer groups one consumer session may join.
    pub max_groups_per_session: usize,
    /// Most messages one consume may return.
    pub max_consume_messages: usize,
    /// Longest a consume may park. A consume's timeout is also bounded by its group's lease
    /// duration and by half the connection heartbeat timeout, so a parked consumer is never
    /// taken for a dead one.
    pub max_poll_timeout: Duration,
    /// Shortest lease (visibility timeout) a group may have.
    pub min_lease: Duration,
    /// Longest lease a group may have.
    pub max_lease: Duration,
    /// Largest `Retention::max_messages` of a topic.
    pub max_retention_messages: u64,
    /// Largest `Retention::max_bytes` of a topic.
    pub max_retention_bytes: u64,
    /// Largest payload of a direct publish with its key (text and bytes keys count their
    /// length, other keys 8), in bytes (1 to [`MAX_TOPIC_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    /// Longest topic or group name, in bytes (1 to [`MAX_TOPIC_NAME_LEN`]).
    pub max_name_len: usize,
}

impl Default for TopicLimits {
    fn default() -> Self {
        Self {
            max_topics: 1024,
            max_partitions: 256,
            max_routes: 1024,
            max_groups_per_topic: 1024,
            max_groups_per_session: 64,
            max_consume_messages: 10_000,
            max_poll_timeout: Duration::from_secs(30),
            min_lease: Duration::from_millis(100),
            max_lease: Duration::from_secs(3600),
            max_retention_messages: 100_000_000,
            max_retention_bytes: 16 << 30,
            max_message_bytes: 1 << 20,
            max_name_len: 249,
        }
    }
}

impl TopicLimits {
    /// Checks that the limits are usable.
    pub(crate) fn validate(&self) -> LiveResult<()> {
        let positive = [
            ("topics.max_topics", self.max_topics as u64),
            ("topics.max_partitions", u64::from(self.max_partitions)),
            ("topics.max_routes", self.max_routes as u64),
            (
                "topics.max_groups_per_topic",
                self.max_groups_per_topic as u64,
            ),
            (
                "topics.max_groups_per_session",
                self.max_groups_per_session as u64,
            ),
            (
                "topics.max_consume_messages",
                self.max_consume_messages as u64,
            ),
            ("topics.max_retention_messages", self.max_retention_messages),
            ("topics.max_retention_bytes", self.max_retention_bytes),
            ("topics.max_message_bytes", self.max_message_bytes as u64),
            ("topics.max_name_len", self.max_name_len as u64),
            ("topics.min_lease (ms)", self.min_lease.as_millis() as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(LiveError::InvalidConfig(format!(
                "{name} must be at least 1"
            )));
        }
        if self.max_partitions > MAX_TOPIC_PARTITIONS {
            return Err(LiveError::InvalidConfig(format!(
                "topics.max_partitions must be at most {MAX_TOPIC_PARTITIONS}"
            )));
        }
        if self.max_message_bytes > MAX_TOPIC_MESSAGE_BYTES {
            return Err(LiveError::InvalidConfig(format!(
                "topics.max_message_bytes must be at most {MAX_TOPIC_MESSAGE_BYTES}"
            )));
        }
        if self.max_name_len > MAX_TOPIC_NAME_LEN {
            return Err(LiveError::InvalidConfig(format!(
                "topics.max_name_len must be at most {MAX_TOPIC_NAME_LEN}"
            )));
        }
        if self.min_lease > self.max_lease {
            return Err(LiveError::InvalidConfig(
                "topics.min_lease must not exceed topics.max_lease".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_limits_have_ceilings() {
        let with = |limits: TopicLimits| ManagerConfig {
            topics: limits,
            ..ManagerConfig::default()
        };
        let at_most = with(TopicLimits {
            max_partitions: MAX_TOPIC_PARTITIONS,
            max_name_len: MAX_TOPIC_NAME_LEN,
            max_message_bytes: MAX_TOPIC_MESSAGE_BYTES,
            ..TopicLimits::default()
        });
        assert!(at_most.validate().is_ok());
        for past in [
            TopicLimits {
                max_partitions: MAX_TOPIC_PARTITIONS + 1,
                ..TopicLimits::default()
            },
            TopicLimits {
                max_name_len: MAX_TOPIC_NAME_LEN + 1,
                ..TopicLimits::default()
            },
            TopicLimits {
                max_message_bytes: MAX_TOPIC_MESSAGE_BYTES + 1,
                ..TopicLimits::default()
            },
            TopicLimits {
                max_message_bytes: usize::MAX,
                ..TopicLimits::default()
            },
        ] {
            assert!(matches!(
                with(past).validate(),
                Err(LiveError::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn default_is_valid_and_zeroes_are_refused() {
        assert!(ManagerConfig::default().validate().is_ok());
        let config = ManagerConfig {
            notification_channel_capacity: 0,
            ..ManagerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(LiveError::InvalidConfig(_))
        ));
        let config = ManagerConfig {
            heartbeat_timeout: Duration::from_secs(1),
            ..ManagerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(LiveError::InvalidConfig(_))
        ));
    }

    /// A channel capacity beyond the maximum is refused, typed, before any channel is made.
    #[test]
    fn channel_capacities_are_bounded() {
        for huge in [MAX_CHANNEL_CAPACITY + 1, usize::MAX] {
            for config in [
                ManagerConfig {
                    notification_channel_capacity: huge,
                    ..ManagerConfig::default()
                },
                ManagerConfig {
                    event_channel_capacity: huge,
                    ..ManagerConfig::default()
                },
            ] {
                match config.validate() {
                    Err(LiveError::InvalidConfig(message)) => {
                        assert!(message.contains("must be at most"), "{message}")
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        let largest = ManagerConfig {
            notification_channel_capacity: MAX_CHANNEL_CAPACITY,
            event_channel_capacity: MAX_CHANNEL_CAPACITY,
            ..ManagerConfig::default()
        };
        assert!(largest.validate().is_ok());
    }

    /// Filters recurse on the caller's stack once per level, and the parser's tree of an
    /// operator chain is as deep as the chain: the depth and node limits are bounded.
    #[test]
    fn filter_depth_and_nodes_are_bounded() {
        for (field, ceiling) in [
            ("max_depth", MAX_FILTER_DEPTH),
            ("max_nodes", MAX_FILTER_NODES),
        ] {
            let limits = |value| match field {
                "max_depth" => FilterLimits {
                    max_depth: value,
                    ..FilterLimits::default()
                },
                _ => FilterLimits {
                    max_nodes: value,
                    ..FilterLimits::default()
                },
            };
            let refusal = format!("{field} must be at most");
            let config = |value| ManagerConfig {
                filter_limits: limits(value),
                ..ManagerConfig::default()
            };
            assert!(config(ceiling).validate().is_ok());
            for past in [ceiling + 1, usize::MAX] {
                match config(past).validate() {
                    Err(LiveError::InvalidConfig(message)) => {
                        assert!(message.contains(&refusal), "{message}")
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    /// A subscription keeps its batch size in 31 bits: a larger maximum is refused.
    #[test]
    fn snapshot_batch_maximum_is_below_two_to_the_31() {
        let config = |max_snapshot_batch_size| ManagerConfig {
            max_snapshot_batch_size,
            ..ManagerConfig::default()
        };
        assert!(config((1 << 31) - 1).validate().is_ok());
        match config(1 << 31).validate() {
            Err(LiveError::InvalidConfig(message)) => assert!(message.contains("2^31")),
            other => panic!("{other:?}"),
        }
    }
}
