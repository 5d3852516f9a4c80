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

use crate::error::LiveError;
use crate::query::expr::Expr;
use crate::query::projection::Projection;
use crate::query::{CompiledQuery, Params, QuerySpec};
use crate::route::index::TableRoute;
use crate::sync::{Arc, ArcSwap, AtomicU64, DataArc, Guard, Ordering};
use crate::topics::log::TopicRecord;
use crate::topics::Topic;
use crate::types::change::ChangeType;
use crate::types::ids::{TableId, TableKey};
use crate::types::schema::TableSchema;
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

/// A route as [`ConnectionsManager::topic_routes`](crate::ConnectionsManager::topic_routes) reports it.
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
    pub broken: Option<LiveError>,
}

/// A route compiled against one schema version of its table.
pub(crate) struct RouteVersion {
    pub(crate) schema: DataArc<TableSchema>,
    pub(crate) compiled: Result<Compiled, LiveError>,
}

/// A route's version for one change: the current one as loaded (no `Arc` clone), or one
/// just compiled for a changed schema.
pub(crate) enum VersionRef {
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

pub(crate) struct Compiled {
    pub(crate) query: DataArc<CompiledQuery>,
    /// The route's constants for its query template's parameters.
    pub(crate) params: Params,
    pub(crate) key_position: Option<usize>,
    pub(crate) columns: DataArc<[DataArc<str>]>,
}

/// A route in the route table.
pub(crate) struct CompiledRoute {
    pub(crate) id: TopicRouteId,
    pub(crate) spec: TopicRouteSpec,
    pub(crate) table_key: TableKey,
    pub(crate) topic: Arc<Topic>,
    pub(crate) query: QuerySpec,
    pub(crate) version: ArcSwap<RouteVersion>,
    pub(crate) round_robin: AtomicU64,
    pub(crate) routed: AtomicU64,
    pub(crate) broken_changes: AtomicU64,
}

/// Routes by table key; replaced whole when a route is added or removed.
#[derive(Clone, Default)]
pub(crate) struct RouteTable {
    pub(crate) by_table: Vec<Vec<Arc<CompiledRoute>>>,
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

    pub(crate) fn with(&self, route: Arc<CompiledRoute>) -> Self {
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
    /// The version compiled for `table`'s current schema, compiling it with `compile` if
    /// the schema changed since. The current version is compared through a guard; an `Arc`
    /// is taken only when the schema changed.
    pub(crate) fn version_for(
        &self,
        table: &TableRoute,
        compile: impl FnOnce(&TableRoute) -> RouteVersion,
    ) -> VersionRef {
        let current = self.version.load();
        if DataArc::ptr_eq(&current.schema, &table.schema) {
            return VersionRef::Loaded(current);
        }
        drop(current);
        let version = Arc::new(compile(table));
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
pub(crate) struct Pending {
    pub(crate) topic: Arc<Topic>,
    pub(crate) partition: u32,
    pub(crate) records: Vec<TopicRecord>,
}
