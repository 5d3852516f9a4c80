//! The C-visible types: handles, tags, values, changes, and the structs that carry options
//! and reports. Every struct that may grow, input or output, begins with its own size
//! (`struct_size`); the few without it (`lc_value`, `lc_change`, `lc_live_query_id`,
//! `lc_change_info`, `lc_topic_retention_skip`) are frozen and never grow.

use std::ffi::c_char;

/// The ABI version of this library. It changes whenever a change to the header could break
/// a program built against an older one; the shared library's soname carries it
/// (`liblivecore.so.<LIVECORE_ABI_VERSION>`). Compare it with `lc_abi_version()` at start-up.
pub const LIVECORE_ABI_VERSION: u32 = 2;

/// A timeout that never expires, for the receive and wait functions.
pub const LC_WAIT_FOREVER: u32 = u32::MAX;

/// For `lc_manager_check_connections`: use the manager clock's current reading.
pub const LC_NOW: u64 = u64::MAX;

/// The longest name, in bytes, of a namespace, table, column, user or role (and the
/// config's `default_namespace`). Such a name is 1 to this many bytes of UTF-8; an empty
/// or longer one is `LC_ERR_INVALID_NAME`. Topic and consumer group names have their own
/// limit, the config's `topic_max_name_len`.
pub const LC_MAX_NAME_LEN: usize = 1024;

/// The most columns a table may have (`lc_table_register`: `LC_ERR_INVALID_SCHEMA` beyond
/// it), so also the longest row: a longer `row_len`, `old_row_len` or snapshot
/// `column_count` is `LC_ERR_ROW_ARITY` before any value is read.
pub const LC_MAX_COLUMNS: usize = 65535;

/// The most changes one commit may carry (`lc_commit_publish`, `lc_subscription_replay_commit`): more
/// is `LC_ERR_COMMIT_TOO_LARGE`, before any change is read.
pub const LC_MAX_COMMIT_CHANGES: usize = 1 << 30;

/// The most rows one `lc_subscription_push_snapshot_rows` call may pass: more is
/// `LC_ERR_OUT_OF_BOUNDS`, before any row is read. Push a larger snapshot in several calls.
pub const LC_MAX_SNAPSHOT_PUSH_ROWS: usize = 1 << 20;

/// The longest text or bytes value (`lc_value.len`) livecore accepts as input: longer is
/// `LC_ERR_OUT_OF_BOUNDS`, before any byte is read.
pub const LC_MAX_VALUE_BYTES: usize = 1 << 30;

/// The most live-query records one `lc_failover_run` call may pass: more is
/// `LC_ERR_OUT_OF_BOUNDS`, before any record is read.
pub const LC_MAX_FAILOVER_RECORDS: usize = 1 << 24;

/// The most active node ids one `lc_failover_run` call may pass: more is
/// `LC_ERR_OUT_OF_BOUNDS`, before any id is read.
pub const LC_MAX_ACTIVE_NODES: usize = 1 << 16;

/// The longest subscription SQL text, in bytes: longer is `LC_ERR_OUT_OF_BOUNDS`, refused
/// by its length before it is parsed. The config's filter limits (depth, nodes, IN-list
/// length, LIKE pattern length) apply to what is parsed.
pub const LC_MAX_SUBSCRIPTION_SQL_LEN: usize = 64 * 1024;

/// The largest capacity of a connection's notification or event channel (2^24 items).
pub const LC_MAX_CHANNEL_CAPACITY: usize = 1 << 24;

/// The largest `topic_max_partitions` a config may set (2^16).
pub const LC_MAX_TOPIC_PARTITIONS: u32 = 1 << 16;

/// The largest `topic_max_name_len` a config may set, in bytes.
pub const LC_MAX_TOPIC_NAME_LEN: usize = 4096;

/// The largest `filter_max_depth` a config may set.
pub const LC_MAX_FILTER_DEPTH: usize = 256;

/// The largest `filter_max_nodes` a config may set.
pub const LC_MAX_FILTER_NODES: usize = 2048;

/// The largest `topic_max_message_bytes` a config may set, in bytes (1 GiB).
pub const LC_MAX_TOPIC_MESSAGE_BYTES: usize = 1 << 30;

// The C limits that mirror the core's own must stay equal to them.
const _: () = assert!(LC_MAX_COLUMNS == crate::MAX_COLUMNS);
const _: () = assert!(LC_MAX_COMMIT_CHANGES == crate::MAX_COMMIT_CHANGES);
const _: () = assert!(LC_MAX_SUBSCRIPTION_SQL_LEN == crate::MAX_SUBSCRIPTION_SQL_LEN);
const _: () = assert!(LC_MAX_CHANNEL_CAPACITY == crate::MAX_CHANNEL_CAPACITY);
const _: () = assert!(LC_MAX_TOPIC_PARTITIONS == crate::MAX_TOPIC_PARTITIONS);
const _: () = assert!(LC_MAX_TOPIC_NAME_LEN == crate::MAX_TOPIC_NAME_LEN);
const _: () = assert!(LC_MAX_FILTER_DEPTH == crate::MAX_FILTER_DEPTH);
const _: () = assert!(LC_MAX_FILTER_NODES == crate::MAX_FILTER_NODES);
const _: () = assert!(LC_MAX_TOPIC_MESSAGE_BYTES == crate::MAX_TOPIC_MESSAGE_BYTES);

/// A manager: the notification core of one database node. Opaque: copy it, compare it, pass
/// it back; never look inside. A zeroed handle is never valid. Created by `lc_manager_new`,
/// freed by `lc_manager_free`; after that every call with it returns
/// `LC_ERR_INVALID_HANDLE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_manager {
    /// Opaque.
    pub id: u64,
}

/// One notification taken from a connection's channel. Opaque. Created by
/// `lc_connection_recv`, freed by `lc_notification_free`; pointers borrowed from it (JSON,
/// column names, text and bytes values) stay valid until it is freed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_notification {
    /// Opaque.
    pub id: u64,
}

/// The outcome of a subscribe: the live query id and the projected columns. Opaque.
/// Created by `lc_subscription_create_sql`, freed by `lc_subscription_result_free` (which does NOT
/// unsubscribe; use `lc_subscription_cancel` for that).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_subscription_result {
    /// Opaque.
    pub id: u64,
}

/// The identity of one live query: the connection that opened it and its subscription
/// number (unique within the manager, never reused).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_live_query_id {
    /// The connection.
    pub connection_id: u64,
    /// The subscription.
    pub subscription_id: u64,
}

/// The type tag of an `lc_value` (passed as `uint32_t`; any other number is refused with
/// `LC_ERR_INVALID_TAG`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_value_type {
    /// SQL NULL.
    LC_VALUE_NULL = 0,
    /// A boolean in `int_value`: 0 or 1 (anything else is `LC_ERR_INVALID_ARGUMENT`).
    LC_VALUE_BOOL = 1,
    /// A 64-bit signed integer in `int_value`.
    LC_VALUE_INT = 2,
    /// A 64-bit float in `float_value` (NaN and infinities allowed).
    LC_VALUE_FLOAT = 3,
    /// UTF-8 text: `len` bytes at `data`, not NUL-terminated (and it may contain NUL).
    LC_VALUE_TEXT = 4,
    /// Raw bytes: `len` bytes at `data`.
    LC_VALUE_BYTES = 5,
}

/// One column value, typed by `tag` (an `lc_value_type`).
///
/// As input, `data` is only read during the call: livecore copies what it keeps. `data`
/// may be NULL when `len` is 0. As output (`lc_notification_value`), `data` points into the
/// notification and stays valid until the notification is freed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_value {
    /// An `lc_value_type`.
    pub tag: u32,
    /// Zero: an input value with anything else is refused (`LC_ERR_INVALID_ARGUMENT`);
    /// output values have 0.
    pub reserved: u32,
    /// The value of `LC_VALUE_BOOL` (0 or 1) and `LC_VALUE_INT`.
    pub int_value: i64,
    /// The value of `LC_VALUE_FLOAT`.
    pub float_value: f64,
    /// The bytes of `LC_VALUE_TEXT` and `LC_VALUE_BYTES`.
    pub data: *const u8,
    /// Number of bytes at `data` (at most `LC_MAX_VALUE_BYTES` as input).
    pub len: usize,
}

/// What a change did to a row (passed as `uint32_t`, checked).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_change_type {
    /// A row was inserted (for a subscriber: it entered the result set).
    LC_CHANGE_INSERT = 0,
    /// A row was updated (for a subscriber: it stays in the result set).
    LC_CHANGE_UPDATE = 1,
    /// A row was deleted (for a subscriber: it left the result set).
    LC_CHANGE_DELETE = 2,
}

/// One committed row change, as the engine publishes it. Every pointer is only read during
/// the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_change {
    /// The table's key, from `lc_table_register`.
    pub table: u32,
    /// An `lc_change_type`.
    pub change_type: u32,
    /// The row after an insert or update, or the deleted row for a delete: `row_len`
    /// values in the schema's column order.
    pub row: *const lc_value,
    /// Number of values at `row` (must equal the table's column count, so at most
    /// `LC_MAX_COLUMNS`; otherwise `LC_ERR_ROW_ARITY`, before any value is read).
    pub row_len: usize,
    /// The row before an update (required for updates; must be NULL with length 0 for
    /// inserts and deletes).
    pub old_row: *const lc_value,
    /// Number of values at `old_row` (for an update, the table's column count too).
    pub old_row_len: usize,
    /// The user owning the row, NUL-terminated UTF-8: required on user-scoped tables,
    /// where it is a user name (1 to `LC_MAX_NAME_LEN` bytes, else
    /// `LC_ERR_INVALID_NAME`); not read (may be NULL) on shared ones.
    pub owner: *const c_char,
}

/// Whose rows a table holds (passed as `uint32_t`, checked).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_table_scope {
    /// Rows are shared by all users.
    LC_SCOPE_SHARED = 0,
    /// Every row belongs to one user; each change must name its owner and a subscription
    /// sees only its own user's rows.
    LC_SCOPE_USER = 1,
}

/// What to do when a subscriber's channel is full (passed as `uint32_t`, checked).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_slow_consumer_policy {
    /// Drop the delivery, count it, and tell the subscriber with a gap notification.
    LC_SLOW_CONSUMER_GAP_NOTICE = 0,
    /// Drop the delivery and raise `LC_EVENT_SLOW_CONSUMER` so the host closes the
    /// connection; receives then return `LC_CLOSED`, and until the host unregisters the
    /// connection what is published to it is dropped and counted (`lc_stats.dropped`).
    LC_SLOW_CONSUMER_DISCONNECT = 1,
}

/// `lc_config.flags`: keep a manager-wide queue of connections that have something to
/// read (`lc_manager_wait_ready`), so one thread can serve many connections.
pub const LC_CONFIG_READY_QUEUE: u32 = 1;
/// `lc_config.flags`: read time from a manual clock that starts at
/// `manual_clock_start_ms` and moves only with `lc_manager_set_clock` (for tests).
pub const LC_CONFIG_MANUAL_CLOCK: u32 = 2;

/// How a manager is configured. Fill it with `lc_config_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_config {
    /// `sizeof(lc_config)`, set by the caller before `lc_config_init`.
    pub struct_size: u32,
    /// `LC_CONFIG_*` bits; unknown bits are refused.
    pub flags: u32,
    /// An `lc_slow_consumer_policy`.
    pub slow_consumer_policy: u32,
    /// Zero (anything else is `LC_ERR_INVALID_ARGUMENT`).
    pub reserved: u32,
    /// Most connections registered at once.
    pub max_connections: u64,
    /// Most subscriptions one connection may hold (removed ones whose deliveries still wait
    /// in a full notification channel count until the connection is read past them).
    pub max_subscriptions_per_connection: u64,
    /// Capacity of each connection's notification channel: 1 to
    /// `LC_MAX_CHANNEL_CAPACITY` (otherwise `LC_ERR_INVALID_CONFIG`).
    pub notification_channel_capacity: u64,
    /// Capacity of each connection's event channel: 1 to `LC_MAX_CHANNEL_CAPACITY`
    /// (otherwise `LC_ERR_INVALID_CONFIG`).
    pub event_channel_capacity: u64,
    /// Most changes buffered behind one subscription's gate during its initial load.
    pub gate_buffer_capacity: u64,
    /// Largest snapshot batch a subscription may ask for (below 2^31).
    pub max_snapshot_batch_size: u64,
    /// A connection that has not started authenticating this long after registering gets
    /// `LC_EVENT_AUTH_TIMEOUT`.
    pub auth_timeout_ms: u64,
    /// How often an idle authenticated connection gets `LC_EVENT_SEND_PING`.
    pub ping_interval_ms: u64,
    /// A connection with no heartbeat for this long gets `LC_EVENT_HEARTBEAT_TIMEOUT`.
    pub heartbeat_timeout_ms: u64,
    /// Deepest nesting of a filter (1 to `LC_MAX_FILTER_DEPTH`, otherwise
    /// `LC_ERR_INVALID_CONFIG`).
    pub filter_max_depth: u64,
    /// Most nodes in a filter (1 to `LC_MAX_FILTER_NODES`, otherwise
    /// `LC_ERR_INVALID_CONFIG`).
    pub filter_max_nodes: u64,
    /// Longest IN list.
    pub filter_max_in_list: u64,
    /// Longest LIKE (or GLOB) pattern, in bytes.
    pub filter_max_like_pattern: u64,
    /// With `LC_CONFIG_MANUAL_CLOCK`: the clock's first reading, in ms.
    pub manual_clock_start_ms: u64,
    /// When not 0, a background thread runs `lc_manager_check_connections` this often (ms).
    pub checker_interval_ms: u64,
    /// The node this manager runs on, recorded in its live-query records.
    pub node_id: u64,
    /// Most entries in each query cache (parsed SQL texts, shared compiled queries).
    pub query_cache_capacity: u64,
    /// The namespace of a table that subscription SQL names without one, NUL-terminated
    /// UTF-8 of 1 to `LC_MAX_NAME_LEN` bytes (`LC_ERR_INVALID_NAME` otherwise); NULL means
    /// "default". Only read during `lc_manager_new`.
    pub default_namespace: *const c_char,
    /// Most topics at once. This and the `topic_` fields after it came with the topic
    /// functions: a program built against an older header passes a smaller `struct_size`
    /// and gets their defaults.
    pub topic_max_topics: u64,
    /// Most partitions of one topic (1 to `LC_MAX_TOPIC_PARTITIONS`; otherwise
    /// `LC_ERR_INVALID_CONFIG`).
    pub topic_max_partitions: u64,
    /// Most topic routes at once (all topics).
    pub topic_max_routes: u64,
    /// Most consumer groups of one topic.
    pub topic_max_groups_per_topic: u64,
    /// Most consumer groups one consumer connection may join.
    pub topic_max_groups_per_session: u64,
    /// Most messages one `lc_topic_consume` may return.
    pub topic_max_consume_messages: u64,
    /// Longest a consume may wait, in ms. A consume's timeout is also bounded by its
    /// group's lease and by half of `heartbeat_timeout_ms`.
    pub topic_max_poll_timeout_ms: u64,
    /// Shortest lease (visibility timeout) a consumer group may have, in ms.
    pub topic_min_lease_ms: u64,
    /// Longest lease a consumer group may have, in ms.
    pub topic_max_lease_ms: u64,
    /// Largest `retention_max_messages` of a topic.
    pub topic_max_retention_messages: u64,
    /// Largest `retention_max_bytes` of a topic.
    pub topic_max_retention_bytes: u64,
    /// Largest payload of `lc_topic_publish` with its key (a text or bytes key counts its
    /// length, another key 8), in bytes (1 to `LC_MAX_TOPIC_MESSAGE_BYTES`, otherwise
    /// `LC_ERR_INVALID_CONFIG`).
    pub topic_max_message_bytes: u64,
    /// Longest topic or consumer group name, in bytes (default 249; 1 to
    /// `LC_MAX_TOPIC_NAME_LEN`, otherwise `LC_ERR_INVALID_CONFIG`): a longer name is
    /// `LC_ERR_INVALID_NAME`.
    pub topic_max_name_len: u64,
}

/// `lc_subscription_options.flags`: start gated for an initial load (set the snapshot
/// boundary, push or send the snapshot, then complete the load).
pub const LC_SUBSCRIBE_INITIAL_LOAD: u32 = 1;
/// `lc_subscription_options.flags`: resume after `resume_from` (replay what the client missed,
/// then complete the load, or declare resume unavailable).
pub const LC_SUBSCRIBE_RESUME: u32 = 2;

/// How a subscription starts. Fill it with `lc_subscription_options_init`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_subscription_options {
    /// `sizeof(lc_subscription_options)`, set by the caller before `lc_subscription_options_init`.
    pub struct_size: u32,
    /// `LC_SUBSCRIBE_*` bits; unknown bits are refused.
    pub flags: u32,
    /// Rows per snapshot batch when the snapshot goes through `lc_subscription_push_snapshot_rows`:
    /// between 1 and the manager's `max_snapshot_batch_size` (`LC_ERR_OUT_OF_BOUNDS`).
    pub batch_size: u64,
    /// With `LC_SUBSCRIBE_RESUME`: the client's last SeqId.
    pub resume_from: u64,
}

/// `lc_subscription_info.flags`: the subscription starts gated and waits for its load to
/// complete.
pub const LC_SUBSCRIPTION_GATED: u32 = 1;
/// `lc_subscription_info.flags`: the subscription resumes after `resume_from`.
pub const LC_SUBSCRIPTION_RESUMING: u32 = 2;

/// What `lc_subscription_result_get_info` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_subscription_info {
    /// Set by the caller to `sizeof(lc_subscription_info)`; on return, the bytes written.
    pub struct_size: u32,
    /// `LC_SUBSCRIPTION_*` bits.
    pub flags: u32,
    /// The new live query.
    pub live_query: lc_live_query_id,
    /// The SeqId it resumes after, with `LC_SUBSCRIPTION_RESUMING`.
    pub resume_from: u64,
    /// Number of projected columns (read them with `lc_subscription_result_column`).
    pub column_count: u64,
}

/// Where a subscription is in its life.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_subscription_phase {
    /// Gated: its initial load (or resume replay) runs.
    LC_PHASE_LOADING = 0,
    /// Receiving changes as they are published.
    LC_PHASE_LIVE = 1,
    /// Ended by livecore (resync required, resume unavailable, schema change).
    LC_PHASE_CLOSED = 2,
}

/// What `lc_subscription_get_status` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_subscription_status {
    /// Set by the caller to `sizeof(lc_subscription_status)`; on return, the bytes written.
    pub struct_size: u32,
    /// An `lc_subscription_phase`.
    pub phase: u32,
    /// When it was created (ms, manager clock).
    pub created_at_ms: u64,
    /// Deliveries enqueued into the connection's channel.
    pub delivered: u64,
    /// Deliveries dropped (channel full or closed).
    pub dropped: u64,
    /// The clock reading of the publish that last delivered to it (ms).
    pub last_update_ms: u64,
    /// Changes buffered behind its gate now.
    pub buffered: u64,
    /// 1 when `last_received_seq` is set.
    pub has_last_received_seq: u32,
    /// Zero.
    pub reserved: u32,
    /// The last SeqId the connection's receiver took for the consumer: handed out, or
    /// prepared right behind a gap notice or a load-complete marker it hands out first
    /// (then handed out next, unless the subscription is removed or the connection
    /// unregistered before that receive).
    pub last_received_seq: u64,
}

/// `lc_connection_info.flags`: authentication has started (or completed).
pub const LC_CONNECTION_AUTH_STARTED: u32 = 1;
/// `lc_connection_info.flags`: the connection is authenticated.
pub const LC_CONNECTION_AUTHENTICATED: u32 = 2;
/// `lc_connection_info.flags`: livecore closed the connection (shutdown); unregister it.
pub const LC_CONNECTION_CLOSED: u32 = 4;
/// `lc_connection_info.flags`: the slow-consumer policy `LC_SLOW_CONSUMER_DISCONNECT` cut
/// the connection off: its receiver hands out nothing more and it takes no new
/// subscription (`LC_ERR_INVALID_STATE`); unregister it.
pub const LC_CONNECTION_CUT_OFF: u32 = 8;

/// What `lc_connection_get_info` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_connection_info {
    /// Set by the caller to `sizeof(lc_connection_info)`; on return, the bytes written.
    pub struct_size: u32,
    /// `LC_CONNECTION_*` bits.
    pub flags: u32,
    /// When it registered (ms, manager clock).
    pub registered_at_ms: u64,
    /// Its last heartbeat (ms, manager clock).
    pub last_heartbeat_ms: u64,
    /// Its live subscriptions.
    pub subscription_count: u64,
}

/// Connection-level events (`lc_connection_recv_event`). An event is only its code: name
/// it with `lc_event_name`, render it as JSON with `lc_event_json`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_event {
    /// Time to send the client a ping.
    LC_EVENT_SEND_PING = 1,
    /// The client did not start authenticating in time: close it.
    LC_EVENT_AUTH_TIMEOUT = 2,
    /// The client stopped answering heartbeats: close it.
    LC_EVENT_HEARTBEAT_TIMEOUT = 4,
    /// The manager is shutting down: close the connection.
    LC_EVENT_SHUTDOWN = 8,
    /// The client reads too slowly and the policy is to disconnect: close it.
    LC_EVENT_SLOW_CONSUMER = 16,
}

/// The kinds of notification.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_notification_kind {
    /// The changes of one commit that matched one subscription, never split.
    LC_NOTIFICATION_CHANGES = 0,
    /// A batch of the subscription's initial snapshot, filtered and projected.
    LC_NOTIFICATION_SNAPSHOT = 1,
    /// The initial load (or resume replay) completed; live changes follow.
    LC_NOTIFICATION_LOAD_COMPLETE = 2,
    /// Deliveries were lost to a full channel; resume from `seq` (when `has_seq`).
    LC_NOTIFICATION_GAP = 3,
    /// The gate buffer overflowed during the load, or the host lost commits of the table
    /// (`lc_table_resync`): resubscribe with a new snapshot. The subscription ended.
    LC_NOTIFICATION_RESYNC_REQUIRED = 4,
    /// The engine cannot replay from the requested SeqId: resubscribe with a snapshot.
    LC_NOTIFICATION_RESUME_UNAVAILABLE = 5,
    /// livecore ended the subscription; `close_reason` says why.
    LC_NOTIFICATION_CLOSED = 6,
}

/// Why livecore ended a subscription.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_close_reason {
    /// Not a closed notification.
    LC_CLOSE_NONE = 0,
    /// A column the query reads is gone (the table was re-registered without it) or its
    /// values were rewritten (`lc_table_columns_rewritten`).
    LC_CLOSE_SCHEMA_CHANGED = 1,
    /// The table was dropped.
    LC_CLOSE_TABLE_DROPPED = 2,
    /// The host revoked it.
    LC_CLOSE_REVOKED = 3,
}

/// What `lc_notification_get_info` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_notification_info {
    /// Set by the caller to `sizeof(lc_notification_info)`; on return, the bytes written.
    pub struct_size: u32,
    /// An `lc_notification_kind`.
    pub kind: u32,
    /// The subscription it belongs to.
    pub live_query: lc_live_query_id,
    /// 1 when `seq` is set.
    pub has_seq: u32,
    /// An `lc_close_reason` (`LC_CLOSE_NONE` unless the kind is closed).
    pub close_reason: u32,
    /// Changes: the commit's SeqId. Load complete: the snapshot boundary (for a resumed
    /// subscription, the SeqId it resumed from, unless a later boundary was set). Gap: the
    /// last SeqId the subscriber holds — the last change received, or before the first one
    /// the snapshot boundary (or highest replayed commit), else the SeqId it resumed after;
    /// `has_seq` is 0 when none is known.
    pub seq: u64,
    /// Changes: the number of changes. Snapshot: the rows in the batch. Otherwise 0.
    pub row_count: u64,
    /// Changes and snapshot: the projected columns. Otherwise 0.
    pub column_count: u64,
    /// Snapshot: the batch number (from 0). Load complete: the batches delivered.
    pub batch: u64,
    /// Load complete: the snapshot rows delivered through livecore.
    pub snapshot_rows: u64,
    /// Gap: the deliveries lost.
    pub missed: u64,
}

/// One change of a changes notification (`lc_notification_change`).
///
/// Versioning: a frozen output struct. Unlike the reports that begin with `struct_size`,
/// it never grows: its size and layout stay as they are for this ABI version, and more
/// about a change would come through a new struct and function. Pass a whole
/// `lc_change_info`; livecore writes all of it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_change_info {
    /// An `lc_change_type`, as the subscriber sees it (an update whose row entered the
    /// filter arrives as an insert, one whose row left it as a delete).
    pub change_type: u32,
    /// 1 when the change has an old row (`LC_ROW_OLD`): updates only.
    pub has_old_row: u32,
    /// The change's position in its commit.
    pub position: u64,
}

/// Which row of a change `lc_notification_value` reads (passed as `uint32_t`, checked).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_row_version {
    /// The row after an insert or update, the deleted row of a delete, or a snapshot row.
    LC_ROW_CURRENT = 0,
    /// The row before an update.
    LC_ROW_OLD = 1,
}

/// What one publish did (`lc_change_publish`, `lc_commit_publish`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_publish_summary {
    /// Set by the caller to `sizeof(lc_publish_summary)`; on return, the bytes written.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Subscriptions that matched at least one change.
    pub matched: u64,
    /// Deliveries enqueued into channels.
    pub enqueued: u64,
    /// Deliveries dropped: channel full or receiver gone.
    pub dropped: u64,
    /// Deliveries held behind a gate while a snapshot loads.
    pub buffered: u64,
    /// Deliveries dropped at a gate because the snapshot holds them.
    pub covered_by_snapshot: u64,
    /// Filter evaluations made.
    pub evaluated: u64,
    /// Messages topic routes appended to topics. This field and the next came with the
    /// topic functions (an older, smaller `struct_size` leaves them unwritten).
    pub topic_messages: u64,
    /// Topic messages that could not be written (a route that no longer compiles, a failed
    /// store); the live deliveries above are unaffected.
    pub topic_write_failures: u64,
}

/// What `lc_subscription_push_snapshot_rows` delivered.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_snapshot_progress {
    /// Set by the caller to `sizeof(lc_snapshot_progress)`; on return, the bytes written.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Rows taken from the input (delivered or filtered out). With `LC_WOULD_BLOCK`, call
    /// again with the rows after these.
    pub consumed: u64,
    /// Batches sent (0 with `LC_WOULD_BLOCK`).
    pub batches: u64,
    /// Rows delivered (0 with `LC_WOULD_BLOCK`).
    pub rows: u64,
}

/// What `lc_subscription_complete_initial_load` did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_initial_load_report {
    /// Set by the caller to `sizeof(lc_initial_load_report)`; on return, the bytes written.
    pub struct_size: u32,
    /// 1 when `boundary` is set.
    pub has_boundary: u32,
    /// The snapshot boundary; for a resumed subscription, the SeqId it resumed from (or a
    /// later boundary set since).
    pub boundary: u64,
    /// Buffered changes flushed to the subscriber.
    pub flushed: u64,
    /// Changes dropped because the snapshot held them.
    pub covered_by_snapshot: u64,
    /// Snapshot batches delivered through livecore.
    pub batches: u64,
    /// Snapshot rows delivered through livecore.
    pub rows: u64,
}

/// What one `lc_manager_check_connections` pass raised.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_check_report {
    /// Set by the caller to `sizeof(lc_check_report)`; on return, the bytes written.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Connections checked.
    pub checked: u64,
    /// `LC_EVENT_SEND_PING` events raised.
    pub pings: u64,
    /// `LC_EVENT_AUTH_TIMEOUT` events raised.
    pub auth_timeouts: u64,
    /// `LC_EVENT_HEARTBEAT_TIMEOUT` events raised.
    pub heartbeat_timeouts: u64,
}

/// What `lc_manager_shutdown` did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_shutdown_report {
    /// Set by the caller to `sizeof(lc_shutdown_report)`; on return, the bytes written.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Connections that were sent `LC_EVENT_SHUTDOWN`.
    pub notified: u64,
    /// Connections the host unregistered before the timeout.
    pub closed_by_host: u64,
    /// Connections livecore closed when the timeout passed (still to unregister).
    pub forced: u64,
}

/// Manager-wide statistics (`lc_manager_get_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_stats {
    /// Set by the caller to `sizeof(lc_stats)`; on return, the bytes written.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Registered connections.
    pub connections: u64,
    /// Registered subscriptions.
    pub subscriptions: u64,
    /// Commits published.
    pub published: u64,
    /// Changes published.
    pub published_changes: u64,
    /// Deliveries enqueued into channels.
    pub delivered: u64,
    /// Deliveries dropped because a channel was full.
    pub dropped: u64,
    /// Deliveries dropped because a receiver was gone.
    pub dropped_closed: u64,
    /// Changes buffered behind gates.
    pub buffered: u64,
    /// Changes dropped at a gate because the snapshot covered them.
    pub covered_by_snapshot: u64,
    /// Gap notices handed to consumers.
    pub gaps: u64,
    /// Subscriptions closed with a resync required: their gate buffer overflowed, their
    /// table's schema changed while they loaded, or the host lost commits of their table
    /// (`lc_table_resync`).
    pub resyncs: u64,
    /// Snapshot batches delivered.
    pub snapshot_batches: u64,
    /// Filter evaluations made while publishing.
    pub filter_evaluations: u64,
    /// Messages appended to topics (routes and direct publishes). This field and the next
    /// two came with the topic functions (an older, smaller `struct_size` leaves them
    /// unwritten).
    pub topic_messages: u64,
    /// Topic messages that could not be written.
    pub topic_write_failures: u64,
    /// Times a topic consume waited for a message.
    pub consume_parks: u64,
    /// Of `delivered`, those no consumer received: their subscription ended, or the
    /// connection closed, while they were queued or held behind a load-complete marker, or
    /// the receiver was freed (see `RegistryStats::discarded`). Came after the topic
    /// fields: an older, smaller `struct_size` leaves it unwritten.
    pub discarded: u64,
}

/// A list of live-query records (`lc_record_list`). Opaque. Freed by
/// `lc_records_free`; the strings of the records read from it stay valid until then.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_records {
    /// Opaque.
    pub id: u64,
}

/// What one failover pass found and did (`lc_failover_run`). Opaque. Freed by
/// `lc_failover_report_free`; strings read from it stay valid until then.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_failover_report {
    /// Opaque.
    pub id: u64,
}

/// One live query as a host records it: for a `system.live_queries`-style view, and
/// replicated across nodes for failover. Strings are UTF-8 of their `_len` bytes. As output
/// they are also NUL-terminated (the rule for every string livecore returns) and point
/// into the handle they were read from; as input (`lc_failover_run`) only the `_len` bytes
/// are read, during the call, and need no NUL.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_live_query_record {
    /// `sizeof(lc_live_query_record)`; on output, the bytes written.
    pub struct_size: u32,
    /// An `lc_subscription_phase`.
    pub status: u32,
    /// The live query.
    pub live_query: lc_live_query_id,
    /// The node whose livecore holds it.
    pub node_id: u64,
    /// Its table's namespace.
    pub table_namespace: *const c_char,
    /// Bytes at `table_namespace`.
    pub table_namespace_len: usize,
    /// Its table's name.
    pub table_name: *const c_char,
    /// Bytes at `table_name`.
    pub table_name_len: usize,
    /// The connection's user; NULL when it has none.
    pub user_id: *const c_char,
    /// Bytes at `user_id`.
    pub user_id_len: usize,
    /// The query, as SQL.
    pub query: *const c_char,
    /// Bytes at `query`.
    pub query_len: usize,
    /// The `LC_SUBSCRIBE_*` bits it was opened with.
    pub options_flags: u32,
    /// Zero: as input (`lc_failover_run`) anything else is `LC_ERR_INVALID_ARGUMENT`.
    pub reserved: u32,
    /// Its snapshot batch size.
    pub batch_size: u64,
    /// With `LC_SUBSCRIBE_RESUME`: the SeqId it resumed after.
    pub resume_from: u64,
    /// When it was created (ms, its node's clock).
    pub created_at_ms: u64,
    /// The publish that last delivered to it (ms, its node's clock).
    pub last_update_ms: u64,
    /// Its connection's last sign of life (ms, its node's clock).
    pub last_heartbeat_ms: u64,
    /// Deliveries enqueued to it.
    pub changes_delivered: u64,
}

/// The lists of a failover report that hold records (passed as `uint32_t`, checked).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_failover_list {
    /// Live queries of nodes that are not active: delete their records.
    LC_FAILOVER_ORPHANED = 0,
    /// Live queries on active nodes whose connection was silent longer than the bound
    /// (those of this node were removed, or failed to be: see the removed and failed lists).
    LC_FAILOVER_STALE = 1,
}

/// The sizes of a failover report's lists (`lc_failover_report_get_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_failover_info {
    /// Set by the caller to `sizeof(lc_failover_info)`; on return, the bytes written.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Records of nodes that are not active.
    pub orphaned: u64,
    /// Stale records on active nodes.
    pub stale: u64,
    /// Local stale live queries removed from this node.
    pub removed: u64,
    /// Local removals that failed.
    pub failed: u64,
}

/// A batch of topic messages handed out by `lc_topic_consume`. Opaque. Freed by
/// `lc_topic_batch_free`; pointers borrowed from it (JSON, key text and bytes, payloads)
/// stay valid until then. Freeing a batch does not commit it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_topic_batch {
    /// Opaque.
    pub id: u64,
}

/// For `lc_topic_publish`: no partition given; the key's hash chooses it, or round-robin
/// without a key.
pub const LC_TOPIC_ANY_PARTITION: u32 = u32::MAX;

/// `lc_topic_route_options.change_types`: route inserts (as the route's filter sees them:
/// an update whose row entered the filter is an insert).
pub const LC_TOPIC_CHANGE_INSERT: u32 = 1;
/// `lc_topic_route_options.change_types`: route updates (the row stays in the filter).
pub const LC_TOPIC_CHANGE_UPDATE: u32 = 2;
/// `lc_topic_route_options.change_types`: route deletes (an update whose row left the
/// filter is a delete).
pub const LC_TOPIC_CHANGE_DELETE: u32 = 4;
/// `lc_topic_route_options.change_types`: every change type.
pub const LC_TOPIC_CHANGE_ALL: u32 = 7;

/// The shape of a topic (`lc_topic_create`). Fill it with `lc_topic_config_init`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_config {
    /// `sizeof(lc_topic_config)`, set by the caller before `lc_topic_config_init`.
    pub struct_size: u32,
    /// Number of partitions (1 to the config's `topic_max_partitions`; default 1).
    pub partitions: u32,
    /// Most messages each partition keeps; the oldest are removed beyond it.
    pub retention_max_messages: u64,
    /// Most bytes each partition keeps (48 bytes per message plus its key and values).
    pub retention_max_bytes: u64,
}

/// What `lc_topic_get_info` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_info {
    /// Set by the caller to `sizeof(lc_topic_info)`; on return, the bytes written.
    pub struct_size: u32,
    /// Number of partitions.
    pub partitions: u32,
    /// Most messages each partition keeps.
    pub retention_max_messages: u64,
    /// Most bytes each partition keeps.
    pub retention_max_bytes: u64,
    /// Routes feeding the topic.
    pub routes: u64,
    /// Its consumer groups.
    pub groups: u64,
    /// Messages appended since it was created.
    pub appended: u64,
    /// Messages that could not be appended (`lc_topic_get_last_write_error` says why).
    pub write_failures: u64,
    /// Messages retained now, all partitions together.
    pub retained: u64,
}

/// How a route feeds a topic (`lc_topic_route_add`, `lc_topic_route_add_sql`). Fill it
/// with `lc_topic_route_options_init`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_route_options {
    /// `sizeof(lc_topic_route_options)`, set by the caller before
    /// `lc_topic_route_options_init`.
    pub struct_size: u32,
    /// `LC_TOPIC_CHANGE_*` bits (at least one; default all).
    pub change_types: u32,
    /// The column whose value keys the message and chooses its partition (NUL-terminated
    /// UTF-8; one key, one partition, publish order kept); NULL spreads messages
    /// round-robin. Only read during the call.
    pub key_column: *const c_char,
}

/// Where a new consumer group starts, and what happens when retention removes messages
/// it has not committed (passed as `uint32_t`, checked).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_topic_reset_policy {
    /// Start at the oldest retained message; skip ahead to it when retention overtakes
    /// the group (the skipped range is reported in the batch and counted).
    LC_TOPIC_RESET_EARLIEST = 0,
    /// Start at the end (only messages published after the group was created); skip to
    /// the end when retention overtakes the group.
    LC_TOPIC_RESET_LATEST = 1,
    /// Do not choose: a partition without a committed offset is
    /// `LC_ERR_NO_COMMITTED_OFFSET` until `lc_topic_seek` positions it, and a committed
    /// offset overtaken by retention is `LC_ERR_OFFSET_OUT_OF_RANGE`.
    LC_TOPIC_RESET_NONE = 2,
}

/// How a consumer group behaves (`lc_topic_group_create`). Fill it with
/// `lc_topic_group_config_init`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_group_config {
    /// `sizeof(lc_topic_group_config)`, set by the caller before
    /// `lc_topic_group_config_init`.
    pub struct_size: u32,
    /// An `lc_topic_reset_policy` (default earliest).
    pub reset: u32,
    /// How long a partition's lease lasts without a consume or commit renewing it (the
    /// visibility timeout, on the manager clock), in ms (default 30000). Whatever was
    /// handed out and not committed when a lease expires is handed out again.
    pub lease_ms: u64,
    /// The group's dead-letter topic (NUL-terminated, read only during
    /// `lc_topic_group_create`; it must exist and may not be the group's own topic), or
    /// NULL for none (the default): a message the group has handed out `max_deliver`
    /// times goes there instead of being handed out again (see
    /// `lc_topic_group_set_dead_letter` for what happens). Warning: a dead letter is only
    /// as durable as this topic's store; with a durable source topic (a fjall store) and
    /// an in-memory dead-letter topic (`lc_topic_create`), a restart loses dead letters
    /// whose source offset was committed past durably. Added after `lease_ms`: a caller
    /// passing the `struct_size` of a header without it gets no dead-letter topic.
    pub dead_letter_topic: *const c_char,
    /// Hand-outs allowed per message before it goes to `dead_letter_topic`: at least 1
    /// with a dead-letter topic (`LC_ERR_OUT_OF_BOUNDS` otherwise), 0 without one
    /// (`LC_ERR_INVALID_ARGUMENT` otherwise). Default 0.
    pub max_deliver: u32,
    /// Must be 0.
    pub reserved: u32,
}

/// `lc_topic_group_partition.flags` and `lc_topic_position.flags`: `committed` is set.
pub const LC_TOPIC_HAS_COMMITTED: u32 = 1;
/// `lc_topic_group_partition.flags`: a consumer holds the partition's lease (`holder`,
/// `lease_expires_at_ms`).
pub const LC_TOPIC_LEASED: u32 = 2;
/// `lc_topic_group_partition.flags` and `lc_topic_position.flags`: `next` (or
/// `delivered`) is set.
pub const LC_TOPIC_HAS_NEXT: u32 = 4;

/// One partition of a consumer group (`lc_topic_group_get_partition`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_group_partition {
    /// Set by the caller to `sizeof(lc_topic_group_partition)`; on return, the bytes
    /// written.
    pub struct_size: u32,
    /// `LC_TOPIC_HAS_COMMITTED`, `LC_TOPIC_LEASED`, `LC_TOPIC_HAS_NEXT` bits.
    pub flags: u32,
    /// The group's committed offset: the next message it has not finished.
    pub committed: u64,
    /// The oldest retained offset of the partition.
    pub start: u64,
    /// The offset the partition's next message will get.
    pub end: u64,
    /// Messages from the committed offset to the end (not committed, or not consumed).
    pub lag: u64,
    /// With `LC_TOPIC_LEASED`: the consumer connection holding the lease.
    pub holder: u64,
    /// With `LC_TOPIC_HAS_NEXT`: one past the last offset handed out under the lease.
    pub delivered: u64,
    /// With `LC_TOPIC_LEASED`: when the lease expires unless renewed (ms, manager clock).
    pub lease_expires_at_ms: u64,
}

/// A consumer group's counters (`lc_topic_group_get_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_group_stats {
    /// Set by the caller to `sizeof(lc_topic_group_stats)`; on return, the bytes written.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Messages handed out again because a lease ended before they were committed,
    /// counted as they are handed out again (each message in this counter or in
    /// `nack_redelivered`, not both).
    pub redelivered: u64,
    /// Messages retention removed before the group committed them (skipped).
    pub skipped_by_retention: u64,
    /// Leases that expired without being renewed.
    pub leases_expired: u64,
    /// Live members now (consumers that consumed within one lease).
    pub members: u64,
    // Added after the first version (a caller built against the older header passes the
    // smaller struct_size and gets only the fields above).
    /// Nacks accepted (`lc_topic_nack`; each hands its message, or when it dead-letters the
    /// message what followed it, out again).
    pub nacks: u64,
    /// Messages handed out again because a nack rewound them, counted as they are handed
    /// out again.
    pub nack_redelivered: u64,
    /// Explicit lease extensions (`lc_topic_extend_leases` calls that extended at least
    /// one lease).
    pub lease_extensions: u64,
    /// Messages sent to the group's dead-letter topic after too many deliveries.
    pub dead_lettered: u64,
}

/// What a batch holds (`lc_topic_batch_get_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_batch_info {
    /// Set by the caller to `sizeof(lc_topic_batch_info)`; on return, the bytes written.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Messages handed out: 0 when the consume's timeout passed first.
    pub message_count: u64,
    /// Partitions the consumer leases, with its position on each
    /// (`lc_topic_batch_position`).
    pub position_count: u64,
    /// Ranges retention removed before the group committed them, skipped while producing
    /// this batch (`lc_topic_batch_retention_skip`).
    pub retention_skip_count: u64,
}

/// What a topic message carries.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_topic_message_kind {
    /// A row change fed by a route: read it with `lc_topic_batch_row_json` (or the whole
    /// message with `lc_topic_batch_message_json`).
    LC_TOPIC_MESSAGE_CHANGE = 0,
    /// Bytes published with `lc_topic_publish`: `payload`, `payload_len`.
    LC_TOPIC_MESSAGE_BYTES = 1,
}

/// One message of a batch (`lc_topic_batch_message`). Pointers in it borrow from the
/// batch and stay valid until `lc_topic_batch_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_message {
    /// Set by the caller to `sizeof(lc_topic_message)`; on return, the bytes written.
    pub struct_size: u32,
    /// An `lc_topic_message_kind`.
    pub kind: u32,
    /// Its partition.
    pub partition: u32,
    /// 1 when `key` is set (a route with a key column, or a publish with a key).
    pub has_key: u32,
    /// Row changes: an `lc_change_type` as the route's filter saw it (an update whose row
    /// entered the filter is an insert, one whose row left it a delete).
    pub change_type: u32,
    /// Row changes: the `lc_change_type` the engine published.
    pub source_change_type: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// The SeqId of the commit that produced it (or the one given to `lc_topic_publish`).
    pub seq: u64,
    /// The manager clock's reading when it was published (ms).
    pub timestamp_ms: u64,
    /// Its key (text and bytes borrow from the batch).
    pub key: lc_value,
    /// Bytes messages: the payload (NULL for row changes).
    pub payload: *const u8,
    /// Bytes at `payload`.
    pub payload_len: usize,
}

/// The consumer's position on one partition it leases, after a batch
/// (`lc_topic_batch_position`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_position {
    /// Set by the caller to `sizeof(lc_topic_position)`; on return, the bytes written.
    pub struct_size: u32,
    /// The partition.
    pub partition: u32,
    /// `LC_TOPIC_HAS_COMMITTED`, `LC_TOPIC_HAS_NEXT` bits.
    pub flags: u32,
    /// Zero.
    pub reserved: u32,
    /// The group's committed offset.
    pub committed: u64,
    /// The next offset the lease hands out.
    pub next: u64,
    /// The offset the partition's next message will get.
    pub end: u64,
    /// When the lease expires unless renewed (ms, manager clock).
    pub lease_expires_at_ms: u64,
}

/// Messages retention removed before the group committed them: offsets `from` up to (not
/// including) `to` of `partition` were skipped (`lc_topic_batch_retention_skip`).
///
/// Versioning: a frozen output struct. Unlike the reports that begin with `struct_size`,
/// it never grows: its size and layout stay as they are for this ABI version, and more
/// about a skip would come through a new struct and function. Pass a whole
/// `lc_topic_retention_skip`; livecore writes all of it (`reserved` as zero).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_retention_skip {
    /// The partition.
    pub partition: u32,
    /// Zero.
    pub reserved: u32,
    /// The first skipped offset.
    pub from: u64,
    /// One past the last skipped offset.
    pub to: u64,
}

/// Return code of an `lc_topic_store` callback: success.
pub const LC_TOPIC_STORE_OK: i32 = 0;
/// Return code of the `read` callback of an `lc_topic_store`: the offset asked for is
/// outside the partition's retained range (below its oldest retained message, or past
/// its end). livecore then asks `bounds` for the range. Any other callback returning it
/// fails.
pub const LC_TOPIC_STORE_OUT_OF_RANGE: i32 = 1;
/// Return code of the `committed_offset` callback of an `lc_topic_store`: the store has
/// no committed offset for that group and partition. Any other callback returning it
/// fails.
pub const LC_TOPIC_STORE_NOT_FOUND: i32 = 2;

/// One record handed to the `append` callback of an `lc_topic_store`: `len` bytes at
/// `data`, an opaque, versioned blob livecore encoded (it carries the message's SeqId,
/// timestamp, key and row change or payload; never empty). `data` is only valid during
/// the callback: the store copies what it keeps.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_blob {
    /// The blob's bytes.
    pub data: *const u8,
    /// How many.
    pub len: usize,
}

/// A durable store for one topic, implemented by the host (`lc_topic_create_with_store`):
/// per partition, blobs at consecutive offsets, and per consumer group and partition a
/// committed offset. livecore copies this struct during the call; `user_data` is passed
/// back to every callback.
///
/// Every callback returns `LC_TOPIC_STORE_OK` (0) on success; `read` may return
/// `LC_TOPIC_STORE_OUT_OF_RANGE` and `committed_offset` `LC_TOPIC_STORE_NOT_FOUND`; any
/// other number is a store failure, which livecore reports as `LC_ERR_TOPIC_STORE` (or,
/// on the publish path, counts as a failed topic write, `lc_topic_get_last_write_error`
/// saying which callback returned what). Out-values are only read after a return of 0.
///
/// Thread safety of the callbacks: they are called from many threads at once (`append`
/// from `lc_change_publish` and `lc_topic_publish`, the others from consumes, commits and
/// reads), so they must be thread-safe; `append` is on the publish path and should be
/// quick. Appends to one partition must take effect atomically and in the order offsets
/// are given. A callback must not call livecore, except `read`, which calls
/// `lc_topic_read_sink_push` (and any callback may call `lc_last_error`,
/// `lc_status_name`, `lc_version` and `lc_abi_version`): livecore may hold locks around a
/// callback, so every other `lc_` call made on a callback's thread while it runs is refused
/// with `LC_ERR_INVALID_STATE` rather than left to deadlock.
///
/// `read` with gaps: a store may push from the first retained offset after the one asked
/// for. If it pushes nothing below the partition's end, livecore asks `bounds`: an offset
/// below the retained start is skipped as retention would have (the group's reset policy
/// applies, and the range is counted as skipped); an offset the bounds say is held fails
/// the consume with `LC_ERR_TOPIC_STORE`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_store {
    /// `sizeof(lc_topic_store)`, set by the caller.
    pub struct_size: u32,
    /// Zero.
    pub reserved: u32,
    /// Passed to every callback; owned by livecore once `lc_topic_create_with_store`
    /// returns `LC_OK` (see `free_user_data`).
    pub user_data: *mut std::ffi::c_void,
    /// Required. Appends the `count` (at least 1) blobs at `blobs` to `partition`, at
    /// consecutive offsets, and writes the offset of the first to `*out_first_offset`.
    /// The blobs are only valid during the call: copy them. livecore is the store's only
    /// writer: an offset before the end of the appends that returned before this call, or
    /// past what livecore has handed the store to write, fails the append as a store error
    /// (counted, see `lc_topic_get_last_write_error`), and the partition's end stays.
    pub append: Option<
        unsafe extern "C" fn(
            user_data: *mut std::ffi::c_void,
            partition: u32,
            blobs: *const lc_topic_blob,
            count: usize,
            out_first_offset: *mut u64,
        ) -> i32,
    >,
    /// Required. Hands over up to `max_messages` blobs of `partition`, in offset order,
    /// from `offset` on (or from the first retained offset after it, if the store keeps
    /// gaps), each by one call of `lc_topic_read_sink_push(sink, its offset, bytes,
    /// len)`, on this thread, before returning. Reading at the partition's end pushes
    /// nothing and returns 0; an offset below the oldest retained message or past the
    /// end returns `LC_TOPIC_STORE_OUT_OF_RANGE`. `sink` is only valid during the call.
    pub read: Option<
        unsafe extern "C" fn(
            user_data: *mut std::ffi::c_void,
            partition: u32,
            offset: u64,
            max_messages: usize,
            sink: *mut crate::ffi::store::lc_topic_read_sink,
        ) -> i32,
    >,
    /// Required. Writes the offsets `partition` holds: its oldest retained message to
    /// `*out_start`, the offset its next message will get to `*out_end` (equal when it
    /// is empty; `start` may not exceed `end`).
    pub bounds: Option<
        unsafe extern "C" fn(
            user_data: *mut std::ffi::c_void,
            partition: u32,
            out_start: *mut u64,
            out_end: *mut u64,
        ) -> i32,
    >,
    /// Required. Records `offset` as consumer group `group`'s committed offset on
    /// `partition` (replacing the previous one). `group` is a NUL-terminated name valid
    /// only during the call.
    pub commit_offset: Option<
        unsafe extern "C" fn(
            user_data: *mut std::ffi::c_void,
            group: *const std::ffi::c_char,
            partition: u32,
            offset: u64,
        ) -> i32,
    >,
    /// Required. Writes `group`'s committed offset on `partition` to `*out_offset`, or
    /// returns `LC_TOPIC_STORE_NOT_FOUND` when none was recorded. Called when a consumer
    /// group is created: this is how a group resumes after a restart.
    pub committed_offset: Option<
        unsafe extern "C" fn(
            user_data: *mut std::ffi::c_void,
            group: *const std::ffi::c_char,
            partition: u32,
            out_offset: *mut u64,
        ) -> i32,
    >,
    /// Required. Forgets every committed offset of `group` (the group was deleted).
    pub delete_group: Option<
        unsafe extern "C" fn(
            user_data: *mut std::ffi::c_void,
            group: *const std::ffi::c_char,
        ) -> i32,
    >,
    /// Optional (NULL: nothing to free). Called exactly once, with `user_data`, when
    /// livecore drops the store: once the topic is deleted and nothing refers to it any
    /// more (a call using it returned; a consumer that consumed from it left its groups
    /// or was unregistered), or its manager is freed; on whichever thread that is. Never called when
    /// `lc_topic_create_with_store` fails: the caller then still owns `user_data`. No other
    /// callback runs during or after it.
    pub free_user_data: Option<unsafe extern "C" fn(user_data: *mut std::ffi::c_void)>,
}

/// The names of the topics of a manager, as `lc_topic_list` found them. Opaque. Freed by
/// `lc_topic_names_free`; names borrowed from it stay valid until then.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_topic_names {
    /// Opaque.
    pub id: u64,
}

/// The routes feeding a topic, as `lc_topic_route_list` found them. Opaque. Freed by
/// `lc_topic_routes_free`; strings borrowed from it stay valid until then.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_topic_routes {
    /// Opaque.
    pub id: u64,
}

/// `lc_topic_route_info.table` when the route's table has no key in this manager handle
/// (it was registered through the Rust API).
pub const LC_TOPIC_NO_TABLE_KEY: u32 = u32::MAX;
/// `lc_topic_route_info.flags`: the route no longer compiles against its table's schema
/// (`broken` says why); its table's changes count as failed topic writes.
pub const LC_TOPIC_ROUTE_BROKEN: u32 = 1;
/// `lc_topic_route_info.flags`: messages carry every column of the table (no
/// projection); `column_count` is 0.
pub const LC_TOPIC_ROUTE_ALL_COLUMNS: u32 = 2;

/// One route of a route list (`lc_topic_routes_get`). Strings are UTF-8 followed by a
/// NUL, each with its length (without the NUL) beside it, owned by the list, valid until `lc_topic_routes_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lc_topic_route_info {
    /// Set by the caller to `sizeof(lc_topic_route_info)`; on return, the bytes written.
    pub struct_size: u32,
    /// The `LC_TOPIC_CHANGE_*` bits the route feeds.
    pub change_types: u32,
    /// The route's id (for `lc_topic_route_remove`).
    pub id: u64,
    /// The table's key from `lc_table_register`, or `LC_TOPIC_NO_TABLE_KEY`.
    pub table: u32,
    /// `LC_TOPIC_ROUTE_BROKEN`, `LC_TOPIC_ROUTE_ALL_COLUMNS` bits.
    pub flags: u32,
    /// Messages the route produced (appended or not).
    pub routed: u64,
    /// Changes it could not turn into a message because it no longer compiles.
    pub broken_changes: u64,
    /// The table's namespace.
    pub table_namespace: *const c_char,
    /// Bytes at `table_namespace`, without the NUL.
    pub table_namespace_len: usize,
    /// The table's name.
    pub table_name: *const c_char,
    /// Bytes at `table_name`, without the NUL.
    pub table_name_len: usize,
    /// The filter as SQL WHERE text (without `WHERE`), or NULL for every row.
    pub filter: *const c_char,
    /// Bytes at `filter`, without the NUL (0 when NULL).
    pub filter_len: usize,
    /// The key column, or NULL for round-robin partitioning.
    pub key_column: *const c_char,
    /// Bytes at `key_column`, without the NUL (0 when NULL).
    pub key_column_len: usize,
    /// Why the route no longer compiles, or NULL.
    pub broken: *const c_char,
    /// Bytes at `broken`, without the NUL (0 when NULL).
    pub broken_len: usize,
    /// The projected columns messages carry (`lc_topic_routes_column`); 0 with
    /// `LC_TOPIC_ROUTE_ALL_COLUMNS`.
    pub column_count: u64,
}
