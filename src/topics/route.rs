//! Topic routes: committed changes of a table, of chosen change types, through an optional
//! SQL filter (the live-query filter, compiled by the same path), projected, into a topic.
//!
//! A route's filter works as for live queries: for an update it runs on the old and the new
//! row, and the change the route sees is an update (both match), an insert (the row
//! entered), a delete (it left) or nothing. The route's [`ChangeTypes`] are matched against
//! that change. The message carries the engine's row and old row, projected, and both
//! change types (see [`RowChange`]).
//!
//! Partitioning is by the hash of a key column's value (SQL-equal values share a partition:
//! `7`, `7.0` and `TRUE`-as-1 meet; the hash is FNV-1a over a fixed encoding, so it is the
//! same across restarts and builds) — every change of one key lands in one partition, in
//! publish order — or round-robin per route. For an update the key is read from the new
//! row. One message per matching change; every message of a commit keeps the commit's
//! SeqId.
//!
//! Routes are kept in a table indexed by the table's key and read through arc-swap: a
//! publish to a table with no route costs one atomic load. A route compiled for an older
//! schema of its table is recompiled on the next publish; one that no longer compiles (a
//! column it uses was dropped) counts every change of its table as a failed topic write
//! until it is removed. Dropping a table removes its routes.

use crate::error::{LiveError, LiveResult};
use crate::manager::ConnectionsManager;
use crate::publish::PublishSummary;
use crate::query::expr::Expr;
use crate::query::membership::match_change;
use crate::query::parser::parse_subscription_sql;
use crate::query::projection::Projection;
use crate::query::{CompiledQuery, Params, QuerySpec};
use crate::route::index::TableRoute;
use crate::sync::{lock, read, Arc, ArcSwap, AtomicU64, DataArc, Guard, Ordering};
use crate::topics::log::{RowChange, TopicPayload, TopicRecord};
use crate::topics::Topic;
use crate::types::change::{ChangeType, Commit};
use crate::types::ids::{TableId, TableKey};
use crate::types::schema::{TableSchema, TableScope};
use crate::types::value::{exact_int, Value};

/// Identifies a topic route, for removing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicRouteId(pub u64);

impl std::fmt::Display for TopicRouteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// A set of change types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChangeTypes(u8);

impl ChangeTypes {
    /// Inserts, updates and deletes.
    pub const ALL: ChangeTypes = ChangeTypes(0b111);

    /// Exactly the given types.
    pub fn of(types: &[ChangeType]) -> Self {
        ChangeTypes(types.iter().fold(0, |bits, t| bits | Self::bit(*t)))
    }

    fn bit(change_type: ChangeType) -> u8 {
        1 << change_type as u8
    }

    /// True when `change_type` is in the set.
    pub fn contains(self, change_type: ChangeType) -> bool {
        self.0 & Self::bit(change_type) != 0
    }

    /// True when the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Default for ChangeTypes {
    fn default() -> Self {
        Self::ALL
    }
}

/// How a route chooses a message's partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Partitioning {
    /// Partitions in turn, per route.
    #[default]
    RoundRobin,
    /// By the hash of this column's value, which becomes the message's key.
    KeyColumn(String),
}

/// A route's filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum RouteFilter {
    /// Every row.
    #[default]
    All,
    /// A filter tree.
    Expr(Expr),
    /// SQL WHERE text (without the `WHERE`), in the subscription SQL dialect.
    Sql(String),
}

/// What a route feeds into a topic.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicRouteSpec {
    /// The topic fed.
    pub topic: String,
    /// The table whose committed changes feed it.
    pub table_id: TableId,
    /// Which rows.
    pub filter: RouteFilter,
    /// Which columns the payload carries.
    pub projection: Projection,
    /// Which change types (as the filter sees them).
    pub change_types: ChangeTypes,
    /// How messages are spread over the partitions.
    pub partitioning: Partitioning,
}

impl TopicRouteSpec {
    /// Every change of `table_id`, all columns, round-robin, into `topic`.
    pub fn new(topic: &str, table_id: TableId) -> Self {
        Self {
            topic: topic.to_string(),
            table_id,
            filter: RouteFilter::All,
            projection: Projection::All,
            change_types: ChangeTypes::ALL,
            partitioning: Partitioning::RoundRobin,
        }
    }

    /// The table, filter and projection of `query`, into `topic`.
    pub fn from_query(topic: &str, query: QuerySpec) -> Self {
        Self {
            filter: query.filter.map_or(RouteFilter::All, RouteFilter::Expr),
            projection: query.projection,
            ..Self::new(topic, query.table_id)
        }
    }

    /// Filters with a filter tree.
    pub fn filter(mut self, filter: Expr) -> Self {
        self.filter = RouteFilter::Expr(filter);
        self
    }

    /// Filters with SQL WHERE text, such as `room = 7 AND body LIKE 'a%'`.
    pub fn filter_sql(mut self, where_sql: &str) -> Self {
        self.filter = RouteFilter::Sql(where_sql.to_string());
        self
    }

    /// Carries only these columns.
    pub fn project(mut self, projection: Projection) -> Self {
        self.projection = projection;
        self
    }

    /// Routes only these change types.
    pub fn change_types(mut self, change_types: ChangeTypes) -> Self {
        self.change_types = change_types;
        self
    }

    /// Partitions by the hash of `column`.
    pub fn key_column(mut self, column: &str) -> Self {
        self.partitioning = Partitioning::KeyColumn(column.to_string());
        self
    }
}

/// A route as [`ConnectionsManager::topic_routes`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicRouteInfo {
    /// The route's id.
    pub id: TopicRouteId,
    /// The spec it was added with.
    pub spec: TopicRouteSpec,
    /// Messages it produced (appended or not).
    pub routed: u64,
    /// Changes it could not turn into a message because its filter no longer compiles
    /// against its table's schema.
    pub broken_changes: u64,
    /// Why it no longer compiles, if it does not.
    pub broken: Option<String>,
}

/// A route compiled against one schema version of its table.
struct RouteVersion {
    schema: DataArc<TableSchema>,
    compiled: Result<Compiled, String>,
}

/// A route's version for one change: the current one as loaded (no `Arc` clone), or one
/// just compiled for a changed schema.
enum VersionRef {
    Loaded(Guard<Arc<RouteVersion>>),
    Compiled(Arc<RouteVersion>),
}

impl std::ops::Deref for VersionRef {
    type Target = RouteVersion;

    fn deref(&self) -> &RouteVersion {
        match self {
            VersionRef::Loaded(version) => version,
            VersionRef::Compiled(version) => version,
        }
    }
}

struct Compiled {
    query: DataArc<CompiledQuery>,
    /// The route's constants for its query template's parameters.
    params: Params,
    key_position: Option<usize>,
    columns: DataArc<[DataArc<str>]>,
}

/// A route in the route table.
pub(crate) struct CompiledRoute {
    pub(crate) id: TopicRouteId,
    pub(crate) spec: TopicRouteSpec,
    pub(crate) table_key: TableKey,
    pub(crate) topic: Arc<Topic>,
    query: QuerySpec,
    version: ArcSwap<RouteVersion>,
    round_robin: AtomicU64,
    routed: AtomicU64,
    broken_changes: AtomicU64,
}

/// Routes by table key; replaced whole when a route is added or removed.
#[derive(Clone, Default)]
pub(crate) struct RouteTable {
    by_table: Vec<Vec<Arc<CompiledRoute>>>,
}

impl RouteTable {
    pub(crate) fn is_empty(&self) -> bool {
        self.by_table.iter().all(Vec::is_empty)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_table.iter().map(Vec::len).sum()
    }

    pub(crate) fn routes(&self) -> impl Iterator<Item = &Arc<CompiledRoute>> {
        self.by_table.iter().flatten()
    }

    fn with(&self, route: Arc<CompiledRoute>) -> Self {
        let mut next = self.clone();
        let index = route.table_key.0 as usize;
        if next.by_table.len() <= index {
            next.by_table.resize_with(index + 1, Vec::new);
        }
        next.by_table[index].push(route);
        next
    }

    pub(crate) fn without(&self, keep: impl Fn(&CompiledRoute) -> bool) -> Self {
        let mut next = self.clone();
        for routes in &mut next.by_table {
            routes.retain(|route| keep(route));
        }
        next
    }
}

/// The partition of a key among `partitions`: stable across restarts and builds.
pub(crate) fn key_partition(key: &Value, partitions: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    match key {
        Value::Null => feed(&[0xff]),
        Value::Bool(b) => {
            feed(&[0]);
            feed(&i64::from(*b).to_le_bytes());
        }
        Value::Int(i) => {
            feed(&[0]);
            feed(&i.to_le_bytes());
        }
        Value::Float(f) => match exact_int(*f) {
            Some(i) => {
                feed(&[0]);
                feed(&i.to_le_bytes());
            }
            None if f.is_nan() => feed(&[1, 0xff]),
            None => {
                feed(&[1]);
                feed(&f.to_bits().to_le_bytes());
            }
        },
        Value::Text(text) => {
            feed(&[2]);
            feed(text.as_bytes());
        }
        Value::Bytes(bytes) => {
            feed(&[3]);
            feed(bytes);
        }
    }
    // Finish with a 64-bit mixer so the low bits spread well.
    let mut mixed = hash;
    mixed ^= mixed >> 33;
    mixed = mixed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    mixed ^= mixed >> 33;
    (mixed % u64::from(partitions.max(1))) as u32
}

impl CompiledRoute {
    /// The version compiled for `table`'s current schema, compiling it if the schema
    /// changed since. The current version is compared through a guard; an `Arc` is taken
    /// only when the schema changed.
    fn version_for(&self, table: &TableRoute, manager: &ConnectionsManager) -> VersionRef {
        let current = self.version.load();
        if DataArc::ptr_eq(&current.schema, &table.schema) {
            return VersionRef::Loaded(current);
        }
        drop(current);
        let version =
            Arc::new(manager.compile_route_version(&self.query, &self.spec.partitioning, table));
        self.version.store(version.clone());
        VersionRef::Compiled(version)
    }

    pub(crate) fn info(&self) -> TopicRouteInfo {
        TopicRouteInfo {
            id: self.id,
            spec: self.spec.clone(),
            routed: self.routed.load(Ordering::Relaxed),
            broken_changes: self.broken_changes.load(Ordering::Relaxed),
            broken: self.version.load().compiled.as_ref().err().cloned(),
        }
    }
}

/// Messages for one partition of one topic, gathered during a publish.
struct Pending {
    topic: Arc<Topic>,
    partition: u32,
    records: Vec<TopicRecord>,
}

impl ConnectionsManager {
    /// Adds a route feeding `spec.topic` from `spec.table_id`. The filter and projection
    /// are compiled now against the table's schema (an unknown column, an oversized filter
    /// or bad SQL is refused with the same typed errors as a subscription), as is the key
    /// column. Changes published after this returns are routed.
    pub fn add_topic_route(&self, spec: TopicRouteSpec) -> LiveResult<TopicRouteId> {
        if spec.change_types.is_empty() {
            return Err(LiveError::InvalidFilter(
                "a topic route needs at least one change type".into(),
            ));
        }
        let topic = self.topic(&spec.topic)?;
        // Shared, so a table cannot be dropped (which removes its routes) meanwhile.
        let _lifecycle = read(&self.lifecycle);
        let table = self
            .index
            .with_directory(|directory| directory.route_by_id(&spec.table_id).cloned())
            .ok_or_else(|| LiveError::UnknownTable(spec.table_id.to_string()))?;
        let query = self.route_query(&spec)?;
        let version = RouteVersion {
            schema: table.schema.clone(),
            compiled: Ok(self.compile_route(&query, &spec.partitioning, &table)?),
        };
        let mut writer = lock(&self.topics.routes_writer);
        let current = self.topics.routes.load_full();
        let max = self.config.topics.max_routes;
        if current.len() >= max {
            return Err(LiveError::OutOfBounds {
                what: "topic routes",
                value: current.len() as u64 + 1,
                min: 0,
                max: max as u64,
            });
        }
        if topic.is_deleted() {
            return Err(LiveError::UnknownTopic(spec.topic.clone()));
        }
        *writer += 1;
        let id = TopicRouteId(*writer);
        let route = Arc::new(CompiledRoute {
            id,
            table_key: table.key,
            topic,
            query,
            spec,
            version: ArcSwap::from_pointee(version),
            round_robin: AtomicU64::new(0),
            routed: AtomicU64::new(0),
            broken_changes: AtomicU64::new(0),
        });
        self.topics.routes.store(Arc::new(current.with(route)));
        self.topics.refresh_routed();
        Ok(id)
    }

    /// Removes a route; changes published after this returns no longer reach its topic.
    pub fn remove_topic_route(&self, id: TopicRouteId) -> LiveResult<()> {
        if !self.retain_routes(|route| route.id != id) {
            return Err(LiveError::UnknownTopicRoute(id.0));
        }
        Ok(())
    }

    /// Keeps only the routes `keep` accepts, under the route writer; returns whether any
    /// was removed (the route table is replaced only then).
    pub(crate) fn retain_routes(&self, keep: impl Fn(&CompiledRoute) -> bool) -> bool {
        let _writer = lock(&self.topics.routes_writer);
        let current = self.topics.routes.load_full();
        let next = current.without(keep);
        if next.len() == current.len() {
            return false;
        }
        self.topics.routes.store(Arc::new(next));
        self.topics.refresh_routed();
        true
    }

    /// The routes feeding `topic`, with their counters.
    pub fn topic_routes(&self, topic: &str) -> LiveResult<Vec<TopicRouteInfo>> {
        let topic = self.topic(topic)?;
        let routes = self.topics.routes.load_full();
        Ok(routes
            .routes()
            .filter(|route| Arc::ptr_eq(&route.topic, &topic))
            .map(|route| route.info())
            .collect())
    }

    /// A route spec from subscription SQL (`SELECT cols | * FROM [namespace.]table [WHERE
    /// ...]`), parsed with this manager's limits and default namespace: table, filter and
    /// projection come from the SQL; every change type, round-robin (adjust with the
    /// builder methods).
    pub fn topic_route_from_sql(&self, topic: &str, sql: &str) -> LiveResult<TopicRouteSpec> {
        let limits = self.config.filter_limits;
        let (query, _) = self.queries.parsed(sql, || {
            parse_subscription_sql(sql, &limits)
                .map(|parsed| parsed.into_spec(&self.config.default_namespace))
        })?;
        Ok(TopicRouteSpec::from_query(topic, query))
    }

    /// Removes the routes of a table being dropped.
    pub(crate) fn drop_topic_routes_of(&self, table_id: &TableId) {
        let Some(key) = self
            .index
            .with_directory(|directory| directory.route_by_id(table_id).map(|route| route.key))
        else {
            return;
        };
        self.retain_routes(|route| route.table_key != key);
    }

    /// The route's query: its table, filter (SQL WHERE text parsed now) and projection.
    fn route_query(&self, spec: &TopicRouteSpec) -> LiveResult<QuerySpec> {
        let filter = match &spec.filter {
            RouteFilter::All => None,
            RouteFilter::Expr(expr) => Some(expr.clone()),
            RouteFilter::Sql(where_sql) => Some(self.parse_where(&spec.table_id, where_sql)?),
        };
        Ok(QuerySpec {
            table_id: spec.table_id.clone(),
            filter,
            projection: spec.projection.clone(),
        })
    }

    /// Parses WHERE text as the filter of `SELECT * FROM table WHERE <text>`. Positions in
    /// errors are those of the text as given.
    fn parse_where(&self, table_id: &TableId, where_sql: &str) -> LiveResult<Expr> {
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let prefix = format!(
            "SELECT * FROM {}.{} WHERE ",
            quote(table_id.namespace()),
            quote(table_id.name())
        );
        let sql = format!("{prefix}{where_sql}");
        let parsed =
            parse_subscription_sql(&sql, &self.config.filter_limits).map_err(
                |error| match error {
                    LiveError::Sql {
                        message,
                        line: 1,
                        column,
                    } => LiveError::Sql {
                        message,
                        line: 1,
                        column: column.saturating_sub(prefix.chars().count() as u64),
                    },
                    other => other,
                },
            )?;
        match parsed.filter {
            Some(filter) if parsed.table_id(&self.config.default_namespace) == *table_id => {
                Ok(filter)
            }
            _ => Err(LiveError::Sql {
                message: "the WHERE text must be one condition".into(),
                line: 0,
                column: 0,
            }),
        }
    }

    /// Compiles a route's query and key column against `table`'s schema.
    fn compile_route(
        &self,
        query: &QuerySpec,
        partitioning: &Partitioning,
        table: &TableRoute,
    ) -> LiveResult<Compiled> {
        let params = query.params();
        let compiled = CompiledQuery::compile(
            query.clone(),
            table.key,
            table.schema.clone(),
            &self.config.filter_limits,
            &self.index.hasher,
            DataArc::new,
        )?;
        let key_position = match partitioning {
            Partitioning::RoundRobin => None,
            Partitioning::KeyColumn(column) => {
                Some(table.schema.column_position(column).ok_or_else(|| {
                    LiveError::UnknownColumn {
                        table: table.schema.table_id.to_string(),
                        column: column.clone(),
                    }
                })?)
            }
        };
        let columns = compiled.projection.column_names().iter().cloned().collect();
        Ok(Compiled {
            query: DataArc::new(compiled),
            params,
            key_position,
            columns,
        })
    }

    fn compile_route_version(
        &self,
        query: &QuerySpec,
        partitioning: &Partitioning,
        table: &TableRoute,
    ) -> RouteVersion {
        RouteVersion {
            schema: table.schema.clone(),
            compiled: self
                .compile_route(query, partitioning, table)
                .map_err(|error| error.to_string()),
        }
    }

    /// The publish hook: turns the commit's changes that match a topic route into
    /// messages and appends them, one append per (topic, partition). The caller has
    /// checked that some route exists. A failed append is counted in `summary`, in the
    /// topic's and the manager's counters, and kept as the topic's last error.
    pub(crate) fn feed_topics<'a>(
        &self,
        commit: &Commit,
        tables: impl Iterator<Item = &'a TableRoute>,
        now_ms: u64,
        summary: &mut PublishSummary,
    ) {
        let route_table = self.topics.routes.load();
        let mut pending: Vec<Pending> = Vec::new();
        for (change, table) in commit.changes.iter().zip(tables) {
            let Some(routes) = route_table.by_table.get(table.key.0 as usize) else {
                continue;
            };
            for route in routes {
                if route.topic.is_deleted() {
                    continue;
                }
                let version = route.version_for(table, self);
                let compiled = match &version.compiled {
                    Ok(compiled) => compiled,
                    Err(reason) => {
                        route.broken_changes.fetch_add(1, Ordering::Relaxed);
                        summary.topic_write_failures += 1;
                        route.topic.record_failure(1, reason);
                        continue;
                    }
                };
                let Some(change_type) = match_change(
                    compiled.query.filter.as_ref(),
                    &compiled.params,
                    change,
                    &mut summary.evaluated,
                ) else {
                    continue;
                };
                if !route.spec.change_types.contains(change_type) {
                    continue;
                }
                let projection = &compiled.query.projection;
                let key = compiled
                    .key_position
                    .map(|position| change.row.value(position).clone());
                let partitions = route.topic.partition_count();
                let partition = match &key {
                    Some(key) => key_partition(key, partitions),
                    None => {
                        (route.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(partitions))
                            as u32
                    }
                };
                let old_row = match change.change_type {
                    ChangeType::Update => change.old_row.as_ref().map(|row| projection.apply(row)),
                    _ => None,
                };
                let owner = match table.schema.scope {
                    TableScope::User => change.owner.clone(),
                    TableScope::Shared => None,
                };
                let record = TopicRecord {
                    seq: commit.seq,
                    timestamp_ms: now_ms,
                    key,
                    payload: TopicPayload::Change(RowChange {
                        table_id: change.table_id.clone(),
                        change_type,
                        source_type: change.change_type,
                        owner,
                        columns: compiled.columns.clone(),
                        // As for live queries, a row leaving the filter is carried as it was.
                        row: match (change_type, change.old_row.as_ref()) {
                            (ChangeType::Delete, Some(old)) => projection.apply(old),
                            _ => projection.apply(&change.row),
                        },
                        old_row,
                    }),
                };
                route.routed.fetch_add(1, Ordering::Relaxed);
                match pending.iter_mut().find(|pending| {
                    Arc::ptr_eq(&pending.topic, &route.topic) && pending.partition == partition
                }) {
                    Some(pending) => pending.records.push(record),
                    None => pending.push(Pending {
                        topic: route.topic.clone(),
                        partition,
                        records: vec![record],
                    }),
                }
            }
        }
        for Pending {
            topic,
            partition,
            records,
        } in pending
        {
            let count = records.len();
            match topic.append(partition, records) {
                Ok(_) => summary.topic_messages += count,
                Err(_) => summary.topic_write_failures += count,
            }
        }
    }
}
