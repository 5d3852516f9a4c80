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

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod clock;
mod config;
mod connections_manager;
mod cow_table;
mod error;
mod failover;
#[cfg(not(livecore_loom))]
pub mod ffi;
mod flow_control;
mod index;
pub mod json;
pub mod models;
mod notification;
pub mod query;
mod receiver;
mod records;
mod revocation;
mod sql_subscribe;
mod stats;
mod subscription;
#[doc(hidden)]
pub mod sync;
pub mod topics;

pub use clock::{Clock, ClockWake, ManualClock, SystemClock};
pub use config::{ManagerConfig, SlowConsumerPolicy};
#[cfg(not(livecore_loom))]
pub use connections_manager::CheckerHandle;
pub use connections_manager::{CheckReport, ConnectionsManager, ShutdownReport};
pub use error::{LiveError, LiveResult};
pub use failover::{FailoverHandler, FailoverReport};
pub use models::{
    AuthenticatedUser, BufferedNotification, ChangeNotification, ChangeSet, ChangeType,
    CloseReason, ColumnDef, ConnectionEvent, ConnectionId, ConnectionRegistration, ConnectionState,
    DeliveredChange, Delivery, EventSender, LiveQueryId, NodeId, Notification, NotificationSender,
    ProjectedRow, RegisteredSubscription, RegistryStats, Row, SeqId, SharedConnectionState,
    SnapshotBatch, SubscriptionEnding, SubscriptionFlowControl, SubscriptionHandle, SubscriptionId,
    SubscriptionOptions, SubscriptionPhase, SubscriptionResult, SubscriptionState,
    SubscriptionStats, TableId, TableKey, TableSchema, TableScope, UserId, UserKey, Value,
    ENDED_SUBSCRIPTIONS_REMEMBERED, EVENT_CHANNEL_CAPACITY, MAX_COLUMNS, MAX_COMMIT_CHANGES,
    NOTIFICATION_CHANNEL_CAPACITY,
};
pub use notification::PublishSummary;
pub use query::{
    ColumnNames, CompareOp, Expr, FilterLimits, Projection, QueryCacheStats, QuerySpec,
};
pub use receiver::{EventReceiver, NotificationReceiver, ReadyConnections, ReceiveError};
pub use records::{LiveQueryRecord, QueryText};
pub use subscription::{InitialLoadReport, SnapshotProgress};
pub use topics::log::{
    MemoryLog, PartitionBounds, Retention, RowChange, TopicLog, TopicLogError, TopicMessage,
    TopicPayload, TopicRecord,
};
pub use topics::{
    ChangeTypes, ConsumeBatch, DirectMessage, GroupConfig, GroupPartition, GroupStats,
    MessagePosition, PartitionPosition, Partitioning, ResetPolicy, RetentionSkip, RouteFilter,
    TopicConfig, TopicInfo, TopicLimits, TopicRouteId, TopicRouteInfo, TopicRouteSpec,
};
