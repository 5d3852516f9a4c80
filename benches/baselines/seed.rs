//! The seed's live-query design, rebuilt as the baseline livecore is measured against.
//!
//! It keeps what made the seed cost what it cost, so a ratio against it means something:
//!
//! - a `DashMap` keyed by `(UserId, TableId)` (string ids, cloned into the key on every
//!   lookup) holding an `Arc<DashMap<LiveQueryId, SubscriptionHandle>>`;
//! - a per-connection `Arc<RwLock<ConnectionState>>` with a `DashMap<String,
//!   SubscriptionState>` of its subscriptions, and a `live_id -> connection` reverse index;
//! - bounded `tokio::sync::mpsc` channels (1000 notifications, 16 events) fed by `try_send`;
//! - WHERE clauses parsed once per subscription with sqlparser (PostgreSQL dialect, as
//!   `SELECT * FROM t WHERE ...`), then interpreted on the AST for every change against a row
//!   held as a `BTreeMap<String, ScalarValue>`: column values are looked up by name and
//!   cloned, literal numbers are parsed from their text on every evaluation;
//! - every handle of the `(user, table)` key is scanned and its filter evaluated;
//! - the flow-control gate (snapshot boundary, initial-load buffer) checked per delivery;
//! - and, in the JSON variant, a JSON row map plus a `Notification` built per subscriber at
//!   publish time, as the seed's dispatcher did.
//!
//! It is not a strawman: it takes the seed's fastest paths (a shared full-row JSON map cloned
//! per subscriber rather than rebuilt, one `Arc` per notification, no logging).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use dashmap::DashMap;
use serde::Serialize;
use sqlparser::ast::{BinaryOperator, Expr, SelectItem, SetExpr, Statement, UnaryOperator, Value};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tokio::sync::mpsc;

/// The seed's notification channel capacity.
pub const NOTIFICATION_CHANNEL_CAPACITY: usize = 1000;
/// The seed's event channel capacity.
pub const EVENT_CHANNEL_CAPACITY: usize = 16;

/// A user, as the seed named it (a string newtype).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub String);

/// A table, as the seed named it (namespace and table name strings).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableId {
    /// Namespace.
    pub namespace: String,
    /// Table name.
    pub name: String,
}

impl TableId {
    /// A table id from its two parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// A connection id (a string in the seed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub String);

/// A live query id: user, connection and subscription id, all strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiveQueryId {
    /// The owner.
    pub user_id: UserId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The subscription, unique within the connection.
    pub subscription_id: String,
}

impl fmt::Display for LiveQueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.user_id.0, self.connection_id.0, self.subscription_id
        )
    }
}

/// The seed's column value (datafusion's `ScalarValue`, reduced to the types the benches use).
#[derive(Clone, Debug, PartialEq)]
pub enum ScalarValue {
    /// NULL.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A 64-bit integer.
    Int64(i64),
    /// A 64-bit float.
    Float64(f64),
    /// Text.
    Utf8(String),
}

/// The seed's row: a map from column name to value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Column values by name.
    pub values: BTreeMap<String, ScalarValue>,
}

impl Row {
    /// A row from `(column, value)` pairs.
    pub fn new(values: BTreeMap<String, ScalarValue>) -> Self {
        Self { values }
    }

    /// A column's value by name.
    pub fn get(&self, column: &str) -> Option<&ScalarValue> {
        self.values.get(column)
    }
}

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    /// Row inserted.
    Insert,
    /// Row updated.
    Update,
    /// Row deleted.
    Delete,
}

/// A change as the seed's engine handed it over.
#[derive(Clone, Debug)]
pub struct ChangeNotification {
    /// What happened.
    pub change_type: ChangeType,
    /// The table.
    pub table_id: TableId,
    /// The row after (insert, update) or as deleted.
    pub row_data: Row,
    /// The row before an update.
    pub old_data: Option<Row>,
    /// The commit's sequence number.
    pub seq: Option<i64>,
}

/// A JSON row as the seed sent it.
pub type JsonRow = HashMap<String, serde_json::Value>;

/// The notification the seed put in a connection's channel.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notification {
    /// A change for one subscription, with its rows as JSON maps.
    Change {
        /// The subscription (the live id as a string).
        subscription_id: String,
        /// insert, update or delete.
        change_type: &'static str,
        /// The new rows (or the deleted rows).
        rows: Vec<JsonRow>,
        /// The previous rows of an update.
        #[serde(skip_serializing_if = "Option::is_none")]
        old_values: Option<Vec<JsonRow>>,
    },
}

/// What the seed's channels carried.
pub type NotificationSender = mpsc::Sender<Arc<Notification>>;
/// The receiving end of a seed connection's notifications.
pub type NotificationReceiver = mpsc::Receiver<Arc<Notification>>;

/// The seed's connection events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// Send a ping.
    SendPing,
    /// Authentication timed out.
    AuthTimeout,
    /// Heartbeat timed out.
    HeartbeatTimeout,
    /// Server shutting down.
    Shutdown,
}

/// A change held back while a subscription's initial load runs.
pub struct BufferedNotification {
    /// Ordering key.
    pub seq: Option<i64>,
    /// The notification.
    pub notification: Arc<Notification>,
}

/// The seed's snapshot gate: atomics for the state, a mutex around the buffer.
pub struct SubscriptionFlowControl {
    snapshot_end_seq: AtomicI64,
    has_snapshot: AtomicBool,
    initial_complete: AtomicBool,
    buffer: Mutex<Vec<BufferedNotification>>,
}

impl Default for SubscriptionFlowControl {
    fn default() -> Self {
        Self {
            snapshot_end_seq: AtomicI64::new(0),
            has_snapshot: AtomicBool::new(false),
            initial_complete: AtomicBool::new(false),
            buffer: Mutex::new(Vec::new()),
        }
    }
}

impl SubscriptionFlowControl {
    /// Sets the snapshot boundary and drops buffered changes at or below it.
    pub fn set_snapshot_end_seq(&self, seq: Option<i64>) {
        match seq {
            Some(seq) => {
                self.snapshot_end_seq.store(seq, Ordering::Release);
                self.has_snapshot.store(true, Ordering::Release);
                lock(&self.buffer).retain(|item| item.seq.is_none_or(|item_seq| item_seq > seq));
            }
            None => self.has_snapshot.store(false, Ordering::Release),
        }
    }

    fn snapshot_end_seq(&self) -> Option<i64> {
        self.has_snapshot
            .load(Ordering::Acquire)
            .then(|| self.snapshot_end_seq.load(Ordering::Acquire))
    }

    fn is_initial_complete(&self) -> bool {
        self.initial_complete.load(Ordering::Acquire)
    }

    /// Marks the initial load complete (the seed then flushed the buffer).
    pub fn mark_initial_complete(&self) {
        self.initial_complete.store(true, Ordering::Release);
    }

    fn buffer_notification(&self, notification: Arc<Notification>, seq: Option<i64>) {
        lock(&self.buffer).push(BufferedNotification { seq, notification });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the seed's routing index held per subscription.
#[derive(Clone)]
pub struct SubscriptionHandle {
    /// The parsed WHERE clause, shared with the subscription state.
    pub filter_expr: Option<Arc<Expr>>,
    /// Projected columns (`None` = all).
    pub projections: Option<Arc<Vec<String>>>,
    /// The connection's notification channel.
    pub notification_tx: Arc<NotificationSender>,
    /// The subscription's gate.
    pub flow_control: Arc<SubscriptionFlowControl>,
}

/// The full state of a seed subscription, kept by its connection.
#[derive(Clone)]
pub struct SubscriptionState {
    /// The live id.
    pub live_id: LiveQueryId,
    /// The table.
    pub table_id: TableId,
    /// The original SQL.
    pub sql: Arc<str>,
    /// The parsed WHERE clause.
    pub filter_expr: Option<Arc<Expr>>,
    /// Projected columns.
    pub projections: Option<Arc<Vec<String>>>,
    /// Snapshot batch size.
    pub batch_size: usize,
    /// Snapshot boundary.
    pub snapshot_end_seq: Option<i64>,
    /// Snapshot batches sent.
    pub current_batch_num: u32,
    /// The gate.
    pub flow_control: Arc<SubscriptionFlowControl>,
}

/// One seed connection.
pub struct ConnectionState {
    /// Its id.
    pub connection_id: ConnectionId,
    /// Who authenticated on it.
    pub user_id: Option<UserId>,
    /// Authenticated yet?
    pub is_authenticated: bool,
    /// Authentication started?
    pub auth_started: bool,
    /// When it connected.
    pub connected_at: Instant,
    /// Last sign of life.
    pub last_heartbeat: Instant,
    /// Its subscriptions by subscription id.
    pub subscriptions: DashMap<String, SubscriptionState>,
    /// Its notification channel.
    pub notification_tx: Arc<NotificationSender>,
    /// Its event channel.
    pub event_tx: mpsc::Sender<ConnectionEvent>,
}

/// A connection as handlers held it.
pub type SharedConnectionState = Arc<RwLock<ConnectionState>>;

type Handles = DashMap<LiveQueryId, SubscriptionHandle>;

/// What registering a seed connection hands back.
pub struct ConnectionRegistration {
    /// Its id.
    pub connection_id: ConnectionId,
    /// Its shared state.
    pub state: SharedConnectionState,
    /// Notifications.
    pub notification_rx: NotificationReceiver,
    /// Events.
    pub event_rx: mpsc::Receiver<ConnectionEvent>,
}

/// How the seed turned a matching change into a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// One notification per change, shared by every subscriber (`Arc` clone per delivery),
    /// the seed's cheapest path: what its non-JSON fan-out cost.
    Shared,
    /// As the seed's dispatcher did: per subscriber, a JSON row map (cloned from the cached
    /// full-row map, or projected and converted), the live id as a string, a `Notification`.
    JsonPerSubscriber,
}

/// A compiled seed subscription: the SQL text, its parsed WHERE clause and projections.
#[derive(Clone)]
pub struct ParsedQuery {
    /// The SQL as given.
    pub sql: Arc<str>,
    /// The WHERE clause as a sqlparser AST.
    pub filter_expr: Option<Arc<Expr>>,
    /// Projected columns (`None` = `*`).
    pub projections: Option<Arc<Vec<String>>>,
}

/// Parses a subscription query once, as the seed did when a subscription was registered.
pub fn parse_query(sql: &str) -> Result<ParsedQuery, String> {
    let statements =
        Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|error| error.to_string())?;
    let Some(Statement::Query(query)) = statements.first() else {
        return Err("not a SELECT".into());
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err("not a plain SELECT".into());
    };
    let mut columns = Vec::new();
    let mut wildcard = false;
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => columns.push(ident.value.clone()),
            SelectItem::Wildcard(_) => wildcard = true,
            other => return Err(format!("unsupported projection {other}")),
        }
    }
    Ok(ParsedQuery {
        sql: Arc::from(sql),
        filter_expr: select.selection.clone().map(Arc::new),
        projections: (!wildcard).then(|| Arc::new(columns)),
    })
}

/// Evaluates a parsed WHERE clause on a row, walking the AST (the seed's `filter_eval`).
pub fn filter_matches(expr: &Expr, row: &Row) -> Result<bool, String> {
    match expr {
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Ok(filter_matches(left, row)? && filter_matches(right, row)?),
            BinaryOperator::Or => Ok(filter_matches(left, row)? || filter_matches(right, row)?),
            BinaryOperator::Eq => Ok(scalars_equal(
                &operand_value(left, row)?,
                &operand_value(right, row)?,
            )),
            BinaryOperator::NotEq => Ok(!scalars_equal(
                &operand_value(left, row)?,
                &operand_value(right, row)?,
            )),
            BinaryOperator::Lt
            | BinaryOperator::Gt
            | BinaryOperator::LtEq
            | BinaryOperator::GtEq => {
                let left = as_number(&operand_value(left, row)?)?;
                let right = as_number(&operand_value(right, row)?)?;
                Ok(match op {
                    BinaryOperator::Lt => left < right,
                    BinaryOperator::Gt => left > right,
                    BinaryOperator::LtEq => left <= right,
                    _ => left >= right,
                })
            }
            other => Err(format!("unsupported operator {other:?}")),
        },
        Expr::Nested(inner) => filter_matches(inner, row),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Ok(!filter_matches(expr, row)?),
        other => Err(format!("unsupported expression {other:?}")),
    }
}

/// A column's value (looked up by name and cloned) or a literal's (converted from the AST,
/// numbers parsed from text), as the seed's interpreter produced them per evaluation.
fn operand_value(expr: &Expr, row: &Row) -> Result<ScalarValue, String> {
    match expr {
        Expr::Identifier(ident) => row
            .get(&ident.value)
            .cloned()
            .ok_or_else(|| format!("column not found: {}", ident.value)),
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) | Value::DoubleQuotedString(text) => {
                Ok(ScalarValue::Utf8(text.clone()))
            }
            Value::Number(text, _) => {
                if let Ok(int) = text.parse::<i64>() {
                    Ok(ScalarValue::Int64(int))
                } else {
                    text.parse::<f64>()
                        .map(ScalarValue::Float64)
                        .map_err(|_| format!("invalid number {text}"))
                }
            }
            Value::Boolean(b) => Ok(ScalarValue::Boolean(*b)),
            Value::Null => Ok(ScalarValue::Null),
            other => Err(format!("unsupported literal {other:?}")),
        },
        other => Err(format!("unsupported operand {other:?}")),
    }
}

fn scalars_equal(left: &ScalarValue, right: &ScalarValue) -> bool {
    if left == right {
        return true;
    }
    match (as_number(left), as_number(right)) {
        (Ok(l), Ok(r)) => (l - r).abs() < f64::EPSILON,
        _ => false,
    }
}

fn as_number(value: &ScalarValue) -> Result<f64, String> {
    match value {
        ScalarValue::Int64(int) => Ok(*int as f64),
        ScalarValue::Float64(float) => Ok(*float),
        other => Err(format!("not a number: {other:?}")),
    }
}

fn scalar_to_json(value: &ScalarValue) -> serde_json::Value {
    match value {
        ScalarValue::Null => serde_json::Value::Null,
        ScalarValue::Boolean(b) => serde_json::Value::Bool(*b),
        ScalarValue::Int64(int) => serde_json::Value::from(*int),
        ScalarValue::Float64(float) => serde_json::Value::from(*float),
        ScalarValue::Utf8(text) => serde_json::Value::String(text.clone()),
    }
}

/// A row as the seed's JSON map.
pub fn row_to_json_map(row: &Row) -> JsonRow {
    row.values
        .iter()
        .map(|(name, value)| (name.clone(), scalar_to_json(value)))
        .collect()
}

/// The row restricted to the projected columns (borrowed when there is no projection).
fn apply_projections<'a>(row: &'a Row, projections: &Option<Arc<Vec<String>>>) -> Cow<'a, Row> {
    match projections {
        None => Cow::Borrowed(row),
        Some(columns) => Cow::Owned(Row::new(
            columns
                .iter()
                .filter_map(|column| row.get(column).map(|value| (column.clone(), value.clone())))
                .collect(),
        )),
    }
}

fn change_type_name(change_type: ChangeType) -> &'static str {
    match change_type {
        ChangeType::Insert => "insert",
        ChangeType::Update => "update",
        ChangeType::Delete => "delete",
    }
}

/// What one seed publish did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifySummary {
    /// Handles whose filter matched.
    pub matched: usize,
    /// Notifications enqueued.
    pub enqueued: usize,
    /// Notifications dropped (channel full or closed).
    pub dropped: usize,
}

/// The seed's connections manager: connections, the `(user, table)` routing index and the
/// reverse index.
pub struct SeedRegistry {
    connections: DashMap<ConnectionId, SharedConnectionState>,
    user_table_subscriptions: DashMap<(UserId, TableId), Arc<Handles>>,
    empty_subscriptions: Arc<Handles>,
    live_id_to_connection: DashMap<LiveQueryId, ConnectionId>,
    total_connections: AtomicUsize,
    total_subscriptions: AtomicUsize,
    next_connection: AtomicU64,
    next_subscription: AtomicU64,
}

impl Default for SeedRegistry {
    fn default() -> Self {
        Self {
            connections: DashMap::with_capacity(1024),
            user_table_subscriptions: DashMap::new(),
            empty_subscriptions: Arc::new(DashMap::new()),
            live_id_to_connection: DashMap::new(),
            total_connections: AtomicUsize::new(0),
            total_subscriptions: AtomicUsize::new(0),
            next_connection: AtomicU64::new(1),
            next_subscription: AtomicU64::new(1),
        }
    }
}

impl SeedRegistry {
    /// Registers a connection with its two bounded channels.
    pub fn register_connection(&self) -> ConnectionRegistration {
        let number = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let connection_id = ConnectionId(format!("conn_{number}"));
        let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let (notification_tx, notification_rx) = mpsc::channel(NOTIFICATION_CHANNEL_CAPACITY);
        let now = Instant::now();
        let state = Arc::new(RwLock::new(ConnectionState {
            connection_id: connection_id.clone(),
            user_id: None,
            is_authenticated: false,
            auth_started: false,
            connected_at: now,
            last_heartbeat: now,
            subscriptions: DashMap::new(),
            notification_tx: Arc::new(notification_tx),
            event_tx,
        }));
        self.connections
            .insert(connection_id.clone(), Arc::clone(&state));
        self.total_connections.fetch_add(1, Ordering::AcqRel);
        ConnectionRegistration {
            connection_id,
            state,
            notification_rx,
            event_rx,
        }
    }

    /// Marks a connection authenticated as `user`.
    pub fn authenticate(&self, connection_id: &ConnectionId, user: &str) {
        let state = self
            .connections
            .get(connection_id)
            .map(|entry| Arc::clone(entry.value()))
            .expect("registered connection");
        let mut state = state.write().unwrap_or_else(|p| p.into_inner());
        state.auth_started = true;
        state.is_authenticated = true;
        state.user_id = Some(UserId(user.to_string()));
    }

    /// Registers a subscription with an already parsed query, as the seed's live-query
    /// manager did: the state goes into the connection's map, the handle into the
    /// `(user, table)` index, the live id into the reverse index.
    pub fn subscribe(
        &self,
        connection_id: &ConnectionId,
        table_id: &TableId,
        query: &ParsedQuery,
        initial_load: bool,
    ) -> LiveQueryId {
        let shared = self
            .connections
            .get(connection_id)
            .map(|entry| Arc::clone(entry.value()))
            .expect("registered connection");
        let state = shared.read().unwrap_or_else(|p| p.into_inner());
        let user_id = state.user_id.clone().expect("authenticated connection");
        let number = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let subscription_id = format!("sub_{number}");
        let live_id = LiveQueryId {
            user_id: user_id.clone(),
            connection_id: connection_id.clone(),
            subscription_id: subscription_id.clone(),
        };
        let flow_control = Arc::new(SubscriptionFlowControl::default());
        if !initial_load {
            flow_control.mark_initial_complete();
        }
        state.subscriptions.insert(
            subscription_id,
            SubscriptionState {
                live_id: live_id.clone(),
                table_id: table_id.clone(),
                sql: Arc::clone(&query.sql),
                filter_expr: query.filter_expr.clone(),
                projections: query.projections.clone(),
                batch_size: 1000,
                snapshot_end_seq: None,
                current_batch_num: 0,
                flow_control: Arc::clone(&flow_control),
            },
        );
        let handle = SubscriptionHandle {
            filter_expr: query.filter_expr.clone(),
            projections: query.projections.clone(),
            notification_tx: Arc::clone(&state.notification_tx),
            flow_control,
        };
        drop(state);
        self.index_subscription(
            &user_id,
            connection_id,
            live_id.clone(),
            table_id.clone(),
            handle,
        );
        live_id
    }

    fn index_subscription(
        &self,
        user_id: &UserId,
        connection_id: &ConnectionId,
        live_id: LiveQueryId,
        table_id: TableId,
        handle: SubscriptionHandle,
    ) {
        self.user_table_subscriptions
            .entry((user_id.clone(), table_id))
            .and_modify(|handles| {
                handles.insert(live_id.clone(), handle.clone());
            })
            .or_insert_with(|| {
                let handles = DashMap::new();
                handles.insert(live_id.clone(), handle.clone());
                Arc::new(handles)
            });
        self.live_id_to_connection
            .insert(live_id, connection_id.clone());
        self.total_subscriptions.fetch_add(1, Ordering::AcqRel);
    }

    /// Ends a subscription: out of its connection's map, the index and the reverse index.
    pub fn unsubscribe(&self, live_id: &LiveQueryId) {
        let Some(connection_id) = self
            .live_id_to_connection
            .get(live_id)
            .map(|entry| entry.value().clone())
        else {
            return;
        };
        let Some(shared) = self
            .connections
            .get(&connection_id)
            .map(|entry| Arc::clone(entry.value()))
        else {
            return;
        };
        let removed = shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .subscriptions
            .remove(&live_id.subscription_id);
        if let Some((_, state)) = removed {
            self.live_id_to_connection.remove(live_id);
            let key = (live_id.user_id.clone(), state.table_id.clone());
            if let Some(handles) = self.user_table_subscriptions.get(&key) {
                handles.remove(live_id);
                if handles.is_empty() {
                    drop(handles);
                    self.user_table_subscriptions.remove(&key);
                }
            }
            self.total_subscriptions.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Sets a gated subscription's snapshot boundary.
    pub fn set_snapshot_end_seq(&self, live_id: &LiveQueryId, seq: i64) {
        if let Some(connection_id) = self.live_id_to_connection.get(live_id) {
            if let Some(shared) = self.connections.get(connection_id.value()) {
                let state = shared.read().unwrap_or_else(|p| p.into_inner());
                let subscription = state.subscriptions.get_mut(&live_id.subscription_id);
                if let Some(mut subscription) = subscription {
                    subscription.snapshot_end_seq = Some(seq);
                    subscription.flow_control.set_snapshot_end_seq(Some(seq));
                }
            }
        }
    }

    /// The handles of a `(user, table)` key: the key is built from clones of both ids.
    pub fn get_subscriptions_for_table(
        &self,
        user_id: &UserId,
        table_id: &TableId,
    ) -> Arc<Handles> {
        self.user_table_subscriptions
            .get(&(user_id.clone(), table_id.clone()))
            .map(|handles| Arc::clone(handles.value()))
            .unwrap_or_else(|| Arc::clone(&self.empty_subscriptions))
    }

    /// Publishes one change for `user`'s rows of its table: scans every handle of the key,
    /// evaluates its filter, passes its gate and `try_send`s.
    pub fn notify_table_change(
        &self,
        user_id: &UserId,
        change: &ChangeNotification,
        dispatch: Dispatch,
    ) -> NotifySummary {
        let handles = self.get_subscriptions_for_table(user_id, &change.table_id);
        let mut summary = NotifySummary::default();
        let row = &change.row_data;
        let change_type = change_type_name(change.change_type);
        // The shared variant builds its notification once per change.
        let shared = (dispatch == Dispatch::Shared).then(|| {
            Arc::new(Notification::Change {
                subscription_id: String::new(),
                change_type,
                rows: vec![row_to_json_map(row)],
                old_values: change
                    .old_data
                    .as_ref()
                    .map(|old| vec![row_to_json_map(old)]),
            })
        });
        let mut full_row_json: Option<JsonRow> = None;
        let mut full_old_json: Option<JsonRow> = None;
        for entry in handles.iter() {
            let live_id = entry.key();
            let handle = entry.value();
            let matched = match &handle.filter_expr {
                Some(filter) => filter_matches(filter, row).unwrap_or(false),
                None => true,
            };
            if !matched {
                continue;
            }
            summary.matched += 1;
            let notification = match &shared {
                Some(shared) => Arc::clone(shared),
                None => {
                    let (row_json, old_json) = match &handle.projections {
                        None => (
                            full_row_json
                                .get_or_insert_with(|| row_to_json_map(row))
                                .clone(),
                            change.old_data.as_ref().map(|old| {
                                full_old_json
                                    .get_or_insert_with(|| row_to_json_map(old))
                                    .clone()
                            }),
                        ),
                        projections => (
                            row_to_json_map(&apply_projections(row, projections)),
                            change
                                .old_data
                                .as_ref()
                                .map(|old| row_to_json_map(&apply_projections(old, projections))),
                        ),
                    };
                    Arc::new(Notification::Change {
                        subscription_id: live_id.to_string(),
                        change_type,
                        rows: vec![row_json],
                        old_values: old_json.map(|old| vec![old]),
                    })
                }
            };
            let flow_control = &handle.flow_control;
            if !flow_control.is_initial_complete() {
                if let (Some(boundary), Some(seq)) = (flow_control.snapshot_end_seq(), change.seq) {
                    if seq <= boundary {
                        continue;
                    }
                }
                flow_control.buffer_notification(notification, change.seq);
                continue;
            }
            match handle.notification_tx.try_send(notification) {
                Ok(()) => summary.enqueued += 1,
                Err(_) => summary.dropped += 1,
            }
        }
        summary
    }

    /// Number of subscriptions indexed.
    pub fn subscription_count(&self) -> usize {
        self.total_subscriptions.load(Ordering::Acquire)
    }
}

/// The JSON text the seed's connection task wrote to the socket for one notification.
pub fn notification_to_json(notification: &Notification) -> String {
    serde_json::to_string(notification).expect("notifications serialize")
}
