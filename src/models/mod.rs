//! The data structures shared by live queries and topic consumers.

pub mod change;
pub mod connection;
pub mod ids;
pub mod notification;
pub mod schema;
pub mod subscription;
pub(crate) mod subscription_map;
pub mod value;

pub use crate::flow_control::{BufferedNotification, SubscriptionFlowControl};
pub use crate::receiver::{EventReceiver, NotificationReceiver};
pub use change::{ChangeNotification, ChangeType};
pub use connection::{
    AuthenticatedUser, ConnectionEvent, ConnectionRegistration, ConnectionState, EventSender,
    NotificationSender, SharedConnectionState, SubscriptionEnding, EVENT_CHANNEL_CAPACITY,
    NOTIFICATION_CHANNEL_CAPACITY,
};
pub use ids::{
    ConnectionId, LiveQueryId, NodeId, SeqId, SubscriptionId, TableId, TableKey, UserId, UserKey,
};
pub use notification::{
    ChangeSet, CloseReason, DeliveredChange, Delivery, Notification, ProjectedRow, SnapshotBatch,
    MAX_COMMIT_CHANGES,
};
pub use schema::{ColumnDef, TableSchema, TableScope, MAX_COLUMNS};
pub use subscription::{
    RegisteredSubscription, RegistryStats, SubscriptionHandle, SubscriptionOptions,
    SubscriptionPhase, SubscriptionResult, SubscriptionState, SubscriptionStats,
};
pub use subscription_map::ENDED_SUBSCRIPTIONS_REMEMBERED;
pub use value::{Row, Value};
