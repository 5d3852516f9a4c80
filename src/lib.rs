//! livecore: the notification core behind a database's live queries and topic consumers.
//!
//! A database engine hands livecore every committed row change; livecore finds, without
//! taking a lock, the subscriptions that must hear about it (per table, per user, filtered
//! by a WHERE clause) and pushes one shared delivery into each connection's bounded
//! channel. The server that owns the sockets drains those channels through the
//! [`NotificationReceiver`] and [`EventReceiver`] of each connection.
//!
//! ```
//! use livecore::*;
//!
//! let manager = ConnectionsManager::new(ManagerConfig::default())?;
//! let messages = TableId::new("chat", "messages");
//! manager.register_table(TableSchema::new(messages.clone(), TableScope::Shared, ["id", "room", "body"]))?;
//!
//! let mut connection = manager.register_connection()?;
//! manager.authenticate(connection.connection_id, UserId::from("alice"), None)?;
//! let spec = QuerySpec::table(messages.clone()).filter(Expr::col("room").eq(Expr::lit(7)));
//! let subscription = manager.subscribe(connection.connection_id, spec, SubscriptionOptions::default())?;
//!
//! let row = Row::new(vec![Value::Int(1), Value::Int(7), Value::text("hi")]);
//! let summary = manager.publish(SeqId(1), ChangeNotification::insert(messages, row))?;
//! assert_eq!(summary.enqueued, 1);
//!
//! let notification = connection.notifications.try_recv().unwrap();
//! assert_eq!(notification.live_query_id(), subscription.live_query_id);
//! assert!(notification.to_json().contains(r#""op":"insert""#));
//! # Ok::<(), LiveError>(())
//! ```

#![warn(missing_docs)]
#![warn(unnameable_types)]

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

// The layers, bottom to top; a module imports only from its own layer or those below it
// (tests/layers.rs reads this list and checks every `use crate::` line of src/ against it):
//
//   sync                          std or loom, in one place
//   types                         ids, values, rows, schemas, changes, endings, JSON
//   error clock config stats validate   errors, time, limits, counters, input checks
//   query                         SQL, filters, LIKE, projections, templates, route keys
//   connection                    connection and subscription state, gate, deliveries, receivers
//   route                         the routing index and its copy-on-write table
//   publish                       resolve -> route -> filter -> gate -> send
//   topics                        topic logs, routes, groups, consumers
//   manager                       ConnectionsManager, one file per concern
//   ffi                           the C ABI
//
// layers: sync | types | error clock config stats validate | query | connection | route | publish | topics | manager | ffi

mod clock;
mod config;
mod connection;
mod error;
#[cfg(not(livecore_loom))]
pub mod ffi;
mod manager;
mod publish;
mod query;
mod route;
mod stats;
#[doc(hidden)]
pub mod sync;
mod topics;
mod types;
mod validate;

pub use clock::{Clock, ClockWake, ManualClock, SystemClock};
pub use config::{
    FilterLimits, ManagerConfig, SlowConsumerPolicy, TopicLimits, EVENT_CHANNEL_CAPACITY,
    MAX_CHANNEL_CAPACITY, MAX_COMMIT_CHANGES, MAX_FILTER_DEPTH, MAX_FILTER_NODES,
    MAX_SUBSCRIPTION_SQL_LEN, MAX_TOPIC_MESSAGE_BYTES, MAX_TOPIC_NAME_LEN, MAX_TOPIC_PARTITIONS,
    NOTIFICATION_CHANNEL_CAPACITY,
};
pub use connection::delivery::{
    ChangeSet, DeliveredChange, Delivery, Notification, ProjectedRow, SnapshotBatch,
};
#[cfg(livecore_loom)]
#[doc(hidden)]
pub use connection::gate::ModelGate;
pub use connection::gate::MAX_BOUNDARY as MAX_SNAPSHOT_BOUNDARY;
pub use connection::gate::{BufferedNotification, SubscriptionFlowControl};
pub use connection::receiver::{
    EventReceiver, NotificationReceiver, ReadyConnections, ReceiveError,
};
pub use connection::state::{
    AuthenticatedUser, ConnectionEvent, ConnectionRegistration, ConnectionState, EventSender,
    NotificationSender, SharedConnectionState,
};
#[cfg(all(feature = "stream", not(livecore_loom)))]
pub use connection::stream::{EventStream, NotificationStream};
pub use connection::subscription::{
    RegisteredSubscription, SubscriptionHandle, SubscriptionOptions, SubscriptionPhase,
    SubscriptionResult, SubscriptionState, SubscriptionStats,
};
pub use connection::subscription_map::ENDED_SUBSCRIPTIONS_REMEMBERED;
pub use error::{LiveError, LiveResult};
#[cfg(not(livecore_loom))]
pub use manager::connections::CheckerHandle;
pub use manager::connections::{CheckReport, ShutdownReport};
pub use manager::failover::{FailoverHandler, FailoverReport};
pub use manager::records::LiveQueryRecord;
pub use manager::subscribe::{InitialLoadReport, SnapshotProgress};
pub use manager::ConnectionsManager;
pub use publish::PublishSummary;
pub use query::expr::ExprSize;
pub use query::parser::{parse_subscription_sql, ParsedQuery};
pub use query::projection::CompiledProjection;
pub use query::query_text::QueryText;
pub use query::{
    ColumnName, ColumnNames, CompareOp, Expr, Filter, Projection, QueryCacheStats, QuerySpec,
};
#[cfg(livecore_loom)]
#[doc(hidden)]
pub use route::cow_table::ModelTable;
pub use stats::RegistryStats;
#[doc(hidden)]
pub use sync::locks_taken_by_this_thread;
// The durable topic log, present only with the `fjall` feature.
#[cfg(all(feature = "fjall", not(livecore_loom)))]
pub use topics::fjall_log::{FjallLog, FjallStore, FjallSync};
pub use topics::log::{
    MemoryLog, PartitionBounds, Retention, RowChange, TopicLog, TopicLogError, TopicMessage,
    TopicPayload, TopicRecord,
};
pub use topics::{
    ChangeTypes, ConsumeBatch, DeadLetterPolicy, DirectMessage, GroupConfig, GroupPartition,
    GroupStats, MessagePosition, PartitionPosition, Partitioning, ResetPolicy, RetentionSkip,
    RouteFilter, TopicConfig, TopicInfo, TopicRouteId, TopicRouteInfo, TopicRouteSpec,
};
pub use types::change::{ChangeNotification, ChangeType};
pub use types::ending::{CloseReason, SubscriptionEnding};
pub use types::ids::{
    ConnectionId, LiveQueryId, NodeId, SeqId, SubscriptionId, TableId, TableKey, UserId, UserKey,
};
pub use types::schema::{ColumnDef, TableSchema, TableScope, MAX_COLUMNS};
pub use types::value::{Row, Value};

/// The JSON mapping of values livecore uses for notifications and topic messages, for hosts
/// that render rows of their own the same way.
pub mod json {
    pub use crate::types::json::{write_object, write_string, write_value};
}
