//! Topics, from the manager's side: creating and deleting topics, routes from tables,
//! direct publishes, consumer groups and the long-poll consume. The topic machinery itself
//! (logs, routes, groups, sessions, wake-ups) lives in `crate::topics`; this file connects
//! it to the manager's clock, limits, connections and routing index.

use crate::config::MAX_SUBSCRIPTION_SQL_LEN;
use crate::connection::state::SharedConnectionState;
use crate::error::LiveError;
use crate::error::LiveResult;
use crate::manager::ConnectionsManager;
use crate::publish::PublishSummary;
use crate::query::expr::Expr;
use crate::query::membership::match_change;
use crate::query::parser::{
    check_sql_len_within, may_name_a_boolean, parse_subscription_sql, parse_with_boolean_columns,
    BooleanColumns,
};
use crate::query::CompiledQuery;
use crate::query::QuerySpec;
use crate::route::index::TableRoute;
use crate::sync::lock;
use crate::sync::read;
use crate::sync::Arc;
use crate::sync::ArcSwap;
use crate::sync::AtomicBool;
use crate::sync::AtomicU64;
use crate::sync::DataArc;
use crate::sync::Mutex;
use crate::sync::Ordering;
use crate::topics::check_max_messages;
use crate::topics::consume::Call;
use crate::topics::consume::ConsumeBatch;
use crate::topics::consume::PartitionPosition;
use crate::topics::consume::Pass;
use crate::topics::deliveries::Limit;
use crate::topics::group::Advance;
use crate::topics::group::CommitRequest;
use crate::topics::group::DeadLetterPolicy;
use crate::topics::group::Group;
use crate::topics::group::GroupConfig;
use crate::topics::group::GroupPartition;
use crate::topics::group::GroupStats;
use crate::topics::group::NackOutcome;
use crate::topics::group::OutOfRangeOutcome;
use crate::topics::group::ParkDecision;
use crate::topics::group::ResetPolicy;
use crate::topics::group::RetentionSkip;
use crate::topics::log::MemoryLog;
use crate::topics::log::RowChange;
use crate::topics::log::TopicLog;
use crate::topics::log::TopicLogError;
use crate::topics::log::TopicMessage;
use crate::topics::log::TopicPayload;
use crate::topics::log::TopicRecord;
use crate::topics::offset_out_of_range;
use crate::topics::route::key_partition;
use crate::topics::route::Compiled;
use crate::topics::route::CompiledRoute;
use crate::topics::route::Partitioning;
use crate::topics::route::Pending;
use crate::topics::route::RouteFilter;
use crate::topics::route::RouteVersion;
use crate::topics::route::TopicRouteId;
use crate::topics::route::TopicRouteInfo;
use crate::topics::route::TopicRouteSpec;
use crate::topics::session::ConsumerSession;
use crate::topics::store_error;
use crate::topics::validate_name;
use crate::topics::wait::PartitionSignal;
use crate::topics::DirectMessage;
use crate::topics::MessagePosition;
use crate::topics::Topic;
use crate::topics::TopicConfig;
use crate::topics::TopicInfo;
use crate::types::change::ChangeType;
use crate::types::change::Commit;
use crate::types::ids::ConnectionId;
use crate::types::ids::TableId;
use crate::types::schema::TableScope;
use crate::types::value::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use std::time::Instant;

impl ConnectionsManager {
    /// Creates a topic stored in a [`MemoryLog`] with the config's retention.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> LiveResult<()> {
        self.check_topic_config(&config)?;
        let log = MemoryLog::new(config.partitions, config.retention)?;
        self.install_topic(name, config, Box::new(log))
    }

    /// Creates a topic stored in the host's `log` (a durable store, say), which must have
    /// `config.partitions` partitions. Messages it already holds can be consumed, and
    /// offsets it has committed for a group are where that group resumes when created.
    pub fn create_topic_with_log(
        &self,
        name: &str,
        config: TopicConfig,
        log: Box<dyn TopicLog>,
    ) -> LiveResult<()> {
        self.check_topic_config(&config)?;
        if log.partitions() != config.partitions {
            return Err(LiveError::InvalidConfig(format!(
                "the topic log has {} partitions but the topic {}",
                log.partitions(),
                config.partitions
            )));
        }
        self.install_topic(name, config, log)
    }

    pub(crate) fn check_topic_config(&self, config: &TopicConfig) -> LiveResult<()> {
        let limits = &self.config.topics;
        let bounds = [
            (
                "partitions",
                u64::from(config.partitions),
                u64::from(limits.max_partitions),
            ),
            (
                "retention (messages)",
                config.retention.max_messages,
                limits.max_retention_messages,
            ),
            (
                "retention (bytes)",
                config.retention.max_bytes,
                limits.max_retention_bytes,
            ),
        ];
        for (what, value, max) in bounds {
            if value == 0 || value > max {
                return Err(LiveError::OutOfBounds {
                    what,
                    value,
                    min: 1,
                    max,
                });
            }
        }
        Ok(())
    }

    fn install_topic(
        &self,
        name: &str,
        config: TopicConfig,
        log: Box<dyn TopicLog>,
    ) -> LiveResult<()> {
        validate_name("topic", name, self.config.topics.max_name_len)?;
        if self.is_shutting_down() {
            return Err(LiveError::ShuttingDown);
        }
        let mut signals = Vec::with_capacity(config.partitions as usize);
        for partition in 0..config.partitions {
            let bounds = log
                .bounds(partition)
                .map_err(|error| store_error(name, error))?;
            signals.push(PartitionSignal::new(bounds.end));
        }
        let mut topics = lock(&self.topics.topics);
        if topics.contains_key(name) {
            return Err(LiveError::TopicExists(name.to_string()));
        }
        let max = self.config.topics.max_topics;
        if topics.len() >= max {
            return Err(LiveError::OutOfBounds {
                what: "topics",
                value: topics.len() as u64 + 1,
                min: 0,
                max: max as u64,
            });
        }
        let name: DataArc<str> = DataArc::from(name);
        topics.insert(
            name.clone(),
            Arc::new(Topic {
                name,
                config,
                log,
                signals: signals.into_boxed_slice(),
                groups: Mutex::new(HashMap::new()),
                deleted: AtomicBool::new(false),
                round_robin: AtomicU64::new(0),
                appended: AtomicU64::new(0),
                write_failures: AtomicU64::new(0),
                last_error: Mutex::new(None),
                undeleted_groups: Mutex::new(HashSet::new()),
                totals: self.topics.totals.clone(),
            }),
        );
        Ok(())
    }

    /// Deletes a topic with its routes and groups. Consumes parked on it return
    /// [`LiveError::UnknownTopic`]. Consumer sessions forget its groups at once, so the
    /// topic (and a host store's `free_user_data`) is dropped as soon as the consumes
    /// running on it have returned, not when their sessions next join a group. Its log is
    /// told ([`TopicLog::delete_topic`]): a `FjallLog` (feature `fjall`) erases the
    /// topic's messages and offsets from its store, so a topic created again under the
    /// name starts empty. If that fails the topic is deleted all the same, and the store's
    /// error is returned ([`LiveError::TopicStore`]). A topic that is the dead-letter topic
    /// of a group is not deleted ([`LiveError::InvalidConfig`], naming the group): clear or
    /// change that group's setting first.
    pub fn delete_topic(&self, name: &str) -> LiveResult<()> {
        let topic = {
            let mut topics = lock(&self.topics.topics);
            // A group sending dead letters here would fail every consume once a message
            // reached its limit. Checked under the map's lock, with which setting a
            // dead-letter topic checks it still exists after setting it.
            for source in topics.values() {
                for (group, state) in lock(&source.groups).iter() {
                    let policy = lock(&state.dead_letter);
                    if policy.as_ref().is_some_and(|policy| policy.topic == name) {
                        return Err(LiveError::InvalidConfig(format!(
                            "topic {name:?} is the dead-letter topic of group {group:?} of topic {:?}: clear or change that first",
                            source.name
                        )));
                    }
                }
            }
            topics
                .remove(name)
                .ok_or_else(|| LiveError::UnknownTopic(name.to_string()))?
        };
        topic.delete();
        // After `delete` marked it: a session joining concurrently sees the mark under its
        // membership lock (and refuses), or its membership is pruned here.
        let sessions: Vec<_> = lock(&self.topics.sessions).values().cloned().collect();
        for session in sessions {
            session.forget_topic(&topic);
        }
        self.retain_routes(|route| !Arc::ptr_eq(&route.topic, &topic));
        topic
            .log
            .delete_topic()
            .map_err(|error| topic.store_error(error))
    }

    /// The topic `name`.
    pub(crate) fn topic(&self, name: &str) -> LiveResult<Arc<Topic>> {
        lock(&self.topics.topics)
            .get(name)
            .cloned()
            .ok_or_else(|| LiveError::UnknownTopic(name.to_string()))
    }

    /// The names of all topics, sorted.
    pub fn topic_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .topics
            .all()
            .iter()
            .map(|topic| topic.name.to_string())
            .collect();
        names.sort();
        names
    }

    /// The message of the topic's latest failed write, if any: what
    /// [`TopicInfo::last_write_error`] holds, read without asking the store anything, so it
    /// stays readable while the store fails.
    pub fn topic_last_write_error(&self, name: &str) -> LiveResult<Option<String>> {
        let topic = self.topic(name)?;
        let message = lock(&topic.last_error).clone();
        Ok(message)
    }

    /// A topic's shape, partitions, groups and counters. The partitions' bounds come from
    /// the topic's store: a store that fails to give them fails this call
    /// ([`LiveError::TopicStore`]); [`topic_last_write_error`](Self::topic_last_write_error)
    /// and [`RegistryStats::topic_write_failures`](crate::RegistryStats) stay readable.
    pub fn topic_info(&self, name: &str) -> LiveResult<TopicInfo> {
        let topic = self.topic(name)?;
        let bounds = (0..topic.partition_count())
            .map(|partition| topic.log.bounds(partition))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| topic.store_error(error))?;
        let mut groups: Vec<String> = lock(&topic.groups)
            .keys()
            .map(|name| name.to_string())
            .collect();
        groups.sort();
        let routes = self
            .topics
            .routes
            .load()
            .routes()
            .filter(|route| Arc::ptr_eq(&route.topic, &topic))
            .count();
        let last_write_error = lock(&topic.last_error).clone();
        Ok(TopicInfo {
            name: topic.name.to_string(),
            config: topic.config,
            bounds,
            groups,
            routes,
            appended: topic.appended.load(Ordering::Relaxed),
            write_failures: topic.write_failures.load(Ordering::Relaxed),
            last_write_error,
        })
    }

    /// Publishes a message directly to a topic: to its `partition` if given, else by the
    /// hash of its key, else round-robin. Returns where it went; a store failure is
    /// returned (and counted).
    pub fn publish_to_topic(
        &self,
        topic: &str,
        message: DirectMessage,
    ) -> LiveResult<MessagePosition> {
        let max = self.config.topics.max_message_bytes;
        // The key is stored with every message too: it counts against the same limit.
        let key_bytes = message.key.as_ref().map_or(0, Value::size_bytes);
        let size = message.payload.len().saturating_add(key_bytes);
        if size > max {
            return Err(LiveError::OutOfBounds {
                what: "message payload and key (bytes)",
                value: size as u64,
                min: 0,
                max: max as u64,
            });
        }
        let topic = self.topic(topic)?;
        let partitions = topic.partition_count();
        let partition = match (message.partition, &message.key) {
            (Some(partition), _) => {
                topic.check_partition(partition)?;
                partition
            }
            (None, Some(key)) => key_partition(key, partitions),
            (None, None) => {
                (topic.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(partitions)) as u32
            }
        };
        let record = TopicRecord {
            seq: message.seq,
            timestamp_ms: self.clock.now_ms(),
            key: message.key,
            payload: TopicPayload::Bytes(message.payload),
        };
        let offset = topic.append(partition, vec![record])?;
        Ok(MessagePosition { partition, offset })
    }

    /// Reads up to `max_messages` messages of a partition from `offset`, outside any group
    /// (no lease, no commit). An offset outside the retained range `start..=end` is
    /// [`LiveError::OffsetOutOfRange`]; reading at `end` returns nothing.
    pub fn read_topic(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_messages: usize,
    ) -> LiveResult<Vec<DataArc<TopicMessage>>> {
        check_max_messages(max_messages, self.config.topics.max_consume_messages)?;
        let topic = self.topic(topic)?;
        topic.check_partition(partition)?;
        let mut out = Vec::new();
        let end = topic.signals[partition as usize].end();
        match topic.read_log(partition, offset, end, max_messages, &mut out) {
            Ok(()) => Ok(out),
            Err(TopicLogError::OutOfRange(bounds)) => {
                Err(offset_out_of_range(&topic.name, partition, offset, bounds))
            }
            Err(error) => Err(topic.store_error(error)),
        }
    }

    /// Expires the leases of every group at monotonic reading `now_ms` and wakes sessions
    /// waiting for the partitions; returns how many leases expired. Called by
    /// `check_connections`.
    pub(crate) fn sweep_topic_leases(&self, now_ms: u64) -> usize {
        let mut expired = 0;
        for topic in self.topics.all() {
            let groups: Vec<_> = lock(&topic.groups).values().cloned().collect();
            for group in groups {
                let freed = group.sweep(now_ms);
                expired += freed.len();
                topic.partitions_freed(&group, &freed);
            }
        }
        expired
    }
}

impl ConnectionsManager {
    /// Adds a route feeding `spec.topic` from `spec.table_id`. The filter and projection
    /// are compiled now against the table's schema (an unknown column or bad SQL is refused
    /// with the same typed errors as a subscription; a filter longer than
    /// [`MAX_SUBSCRIPTION_SQL_LEN`](crate::MAX_SUBSCRIPTION_SQL_LEN) less the
    /// `SELECT * FROM "<namespace>"."<name>" WHERE ` it is wrapped in is
    /// [`LiveError::OutOfBounds`]), as is the key column. Changes published after this returns are routed.
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
            .ok_or_else(|| LiveError::UnknownTable(spec.table_id.clone()))?;
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
    /// builder methods). The filter is kept parsed, not as text: a bare TRUE or FALSE in
    /// it keeps the reading it has now (the column, if the table has one of that name)
    /// when the table later gains or loses such a column, where a route made with
    /// [`TopicRouteSpec::filter_sql`] reads its text again.
    pub fn topic_route_from_sql(&self, topic: &str, sql: &str) -> LiveResult<TopicRouteSpec> {
        let limits = self.config.filter_limits;
        let (mut query, _) = self.queries.parsed(sql, || {
            parse_subscription_sql(sql, &limits)
                .map(|parsed| parsed.into_spec(&self.config.default_namespace))
        })?;
        if may_name_a_boolean(sql) {
            (query, _) = self.read_boolean_columns(sql, query)?;
        }
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
        self.route_query_on(spec, || self.boolean_columns_of(&spec.table_id))
    }

    /// [`route_query`](Self::route_query) with `words`, asked for only if the filter's
    /// text may hold them, saying which of TRUE and FALSE name columns.
    fn route_query_on(
        &self,
        spec: &TopicRouteSpec,
        words: impl FnOnce() -> BooleanColumns,
    ) -> LiveResult<QuerySpec> {
        let filter = match &spec.filter {
            RouteFilter::All => None,
            RouteFilter::Expr(expr) => Some(expr.clone()),
            RouteFilter::Sql(where_sql) => {
                Some(self.parse_where(&spec.table_id, where_sql, words)?)
            }
        };
        Ok(QuerySpec {
            table_id: spec.table_id.clone(),
            filter,
            projection: spec.projection.clone(),
        })
    }

    /// Parses WHERE text as the filter of `SELECT * FROM table WHERE <text>`. Positions in
    /// errors are those of the text as given.
    fn parse_where(
        &self,
        table_id: &TableId,
        where_sql: &str,
        words: impl FnOnce() -> BooleanColumns,
    ) -> LiveResult<Expr> {
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let prefix = format!(
            "SELECT * FROM {}.{} WHERE ",
            quote(table_id.namespace()),
            quote(table_id.name())
        );
        // The filter's own length, checked before it is wrapped, so the error names what
        // the caller passed: the statement's limit less the wrapping.
        check_sql_len_within(
            where_sql,
            "route filter SQL length (bytes)",
            MAX_SUBSCRIPTION_SQL_LEN.saturating_sub(prefix.len()),
        )?;
        let sql = format!("{prefix}{where_sql}");
        // The prefix names the table quoted: only the caller's text can hold the words.
        let columns = if may_name_a_boolean(where_sql) {
            words()
        } else {
            BooleanColumns::default()
        };
        let parsed = parse_with_boolean_columns(&sql, &self.config.filter_limits, columns)
            .map_err(|error| match error {
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
            })?;
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
                        table: table.schema.table_id.clone(),
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

    /// A route compiled for a new version of its table's schema. SQL that may hold the
    /// words TRUE and FALSE is read again, for which of them name columns now.
    fn compile_route_version(&self, route: &CompiledRoute, table: &TableRoute) -> RouteVersion {
        let partitioning = &route.spec.partitioning;
        let compiled = match &route.spec.filter {
            RouteFilter::Sql(where_sql) if may_name_a_boolean(where_sql) => self
                .route_query_on(&route.spec, || BooleanColumns::of(&table.schema))
                .and_then(|query| self.compile_route(&query, partitioning, table)),
            _ => self.compile_route(&route.query, partitioning, table),
        };
        RouteVersion {
            schema: table.schema.clone(),
            compiled,
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
                let version =
                    route.version_for(table, |table| self.compile_route_version(route, table));
                let compiled = match &version.compiled {
                    Ok(compiled) => compiled,
                    Err(reason) => {
                        route.broken_changes.fetch_add(1, Ordering::Relaxed);
                        summary.topic_write_failures += 1;
                        route.topic.record_failure(1, &reason.to_string());
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

impl ConnectionsManager {
    /// Creates consumer group `group` on `topic`. Each partition starts at the offset the
    /// topic's store has committed for the group (a durable store restoring it), or else
    /// where `config.reset` says, resolved now: `Earliest` at the oldest retained message,
    /// `Latest` at the end (so everything published after this returns is seen; the end is
    /// persisted as the group's committed offset, so that after a restart a durable group
    /// resumes there rather than at the end again), `None` nowhere (see
    /// [`ResetPolicy::None`]). With `config.dead_letter`, messages handed out
    /// too often go to that topic ([`DeadLetterPolicy`]).
    ///
    /// Errors: a bad name ([`LiveError::InvalidName`]), a lease duration out of the limits
    /// or `max_deliver` 0 ([`LiveError::OutOfBounds`]), an unknown topic or dead-letter
    /// topic ([`LiveError::UnknownTopic`]), the group's own topic as its dead-letter topic
    /// ([`LiveError::InvalidConfig`]), a taken name ([`LiveError::GroupExists`]).
    pub fn create_consumer_group(
        &self,
        topic: &str,
        group: &str,
        config: GroupConfig,
    ) -> LiveResult<()> {
        let limits = &self.config.topics;
        validate_name("consumer group", group, limits.max_name_len)?;
        let lease_ms = config.lease_duration.as_millis() as u64;
        let (min, max) = (
            limits.min_lease.as_millis() as u64,
            limits.max_lease.as_millis() as u64,
        );
        if !(min..=max).contains(&lease_ms) {
            return Err(LiveError::OutOfBounds {
                what: "lease duration (ms)",
                value: lease_ms,
                min,
                max,
            });
        }
        let topic = self.topic(topic)?;
        if let Some(policy) = &config.dead_letter {
            self.check_dead_letter(&topic.name, group, policy)?;
        }
        let store_error = |error| topic.store_error(error);
        // Held until the group is in the map: no deletion interleaves (see
        // `delete_consumer_group`), and one the store failed is finished first.
        let mut undeleted = lock(&topic.undeleted_groups);
        if undeleted.contains(group) {
            topic.log.delete_group(group).map_err(store_error)?;
            undeleted.remove(group);
        }
        let mut committed = Vec::with_capacity(topic.signals.len());
        // Starts resolved at the end, persisted below as if committed.
        let mut latest_starts = Vec::new();
        for partition in 0..topic.partition_count() {
            let stored = topic
                .log
                .committed_offset(group, partition)
                .map_err(store_error)?;
            let start = match (stored, config.reset) {
                (Some(offset), _) => {
                    // Past the end, the group would silently skip what is appended next.
                    let end = topic.log.bounds(partition).map_err(store_error)?.end;
                    if offset > end {
                        return Err(topic.store_error(TopicLogError::Store(format!(
                            "the store's committed offset {offset} of group {group:?} on partition {partition} is past the partition's end {end}"
                        ))));
                    }
                    Some(offset)
                }
                (None, ResetPolicy::Earliest) => {
                    Some(topic.log.bounds(partition).map_err(store_error)?.start)
                }
                (None, ResetPolicy::Latest) => {
                    let end = topic.log.bounds(partition).map_err(store_error)?.end;
                    latest_starts.push((partition, end));
                    Some(end)
                }
                (None, ResetPolicy::None) => None,
            };
            committed.push(start);
        }
        let mut groups = lock(&topic.groups);
        if groups.contains_key(group) {
            return Err(LiveError::GroupExists {
                topic: topic.name.to_string(),
                group: group.to_string(),
            });
        }
        if groups.len() >= limits.max_groups_per_topic {
            return Err(LiveError::OutOfBounds {
                what: "consumer groups of the topic",
                value: groups.len() as u64 + 1,
                min: 0,
                max: limits.max_groups_per_topic as u64,
            });
        }
        // A start at the end is persisted: with a durable store, a group that was handed
        // messages and crashed before its first commit resumes there after a restart,
        // instead of at the end again, past them. Should the store fail partway (or the
        // group not be made, below), the deletion the group is then marked for clears the
        // store's offsets before the name is used again.
        for &(partition, end) in &latest_starts {
            if let Err(error) = topic.log.commit_offset(group, partition, end) {
                undeleted.insert(group.into());
                return Err(store_error(error));
            }
        }
        let dead_letter_topic = config
            .dead_letter
            .as_ref()
            .map(|policy| policy.topic.clone());
        let name: DataArc<str> = DataArc::from(group);
        let created = crate::sync::Arc::new(Group::new(name.clone(), config, committed));
        groups.insert(name, created.clone());
        drop(groups);
        // Deleted since it was checked? (See `delete_topic`.) Then the group is not made.
        if let Some(dead_letter_topic) = dead_letter_topic {
            if let Err(gone) = self.topic(&dead_letter_topic) {
                let mut groups = lock(&topic.groups);
                if groups
                    .get(group)
                    .is_some_and(|current| crate::sync::Arc::ptr_eq(current, &created))
                {
                    groups.remove(group);
                }
                drop(groups);
                created.delete();
                if !latest_starts.is_empty() {
                    undeleted.insert(group.into());
                }
                return Err(gone);
            }
        }
        Ok(())
    }

    /// Deletes a consumer group: its sessions' pending consumes return
    /// [`LiveError::UnknownGroup`], and the store forgets its offsets.
    ///
    /// When the store fails to forget them ([`LiveError::TopicStore`]), the group is gone
    /// all the same (no consume or commit reaches it); deleting it again retries the
    /// store's deletion, and creating a group of that name first finishes it (refused with
    /// the store's error while the store still fails), so no new group resumes from the
    /// deleted one's offsets.
    pub fn delete_consumer_group(&self, topic: &str, group: &str) -> LiveResult<()> {
        let topic = self.topic(topic)?;
        // Before `groups`, as in `create_consumer_group`: creates and deletes of a topic's
        // groups happen one at a time, the store's part included.
        let mut undeleted = lock(&topic.undeleted_groups);
        let removed = lock(&topic.groups).remove(group);
        match removed {
            Some(removed) => {
                removed.delete();
                for signal in topic.signals.iter() {
                    signal.waiters.wake_all();
                }
            }
            None if !undeleted.contains(group) => {
                return Err(LiveError::UnknownGroup {
                    topic: topic.name.to_string(),
                    group: group.to_string(),
                });
            }
            None => {}
        }
        let result = topic.log.delete_group(group);
        if result.is_ok() {
            undeleted.remove(group);
        } else {
            undeleted.insert(group.into());
        }
        result.map_err(|error| topic.store_error(error))
    }

    /// Commits `offset` on `partition` for `group`: the group has finished every message
    /// below it. Only the session holding the partition's lease may commit
    /// ([`LiveError::NotLeaseHolder`] otherwise, also once its lease expired); the offset
    /// may not be below the committed one ([`LiveError::CommitBehind`]: commits only move
    /// forward; committing the same offset again is accepted) nor beyond what the lease
    /// handed out ([`LiveError::CommitAhead`]). A lease without a position (reset policy
    /// `None` before a seek) handed nothing out and commits nothing
    /// ([`LiveError::NoCommittedOffset`]). Dead letters the lease passed at `offset` (see
    /// [`DeadLetterPolicy`]) are committed past with it, so a batch that ends just before
    /// one leaves nothing behind; the same commit again is still accepted. The offset is
    /// persisted through the topic's store before it takes effect. Committing renews the
    /// session's leases in the group.
    pub fn commit_offset(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
        partition: u32,
        offset: u64,
    ) -> LiveResult<()> {
        // Checked in this order: the connection, the topic, the partition, the group.
        let connection = self.connection(connection_id)?;
        let topic = self.topic(topic)?;
        topic.check_partition(partition)?;
        let group = topic.group(group)?;
        self.commit_to_group(&connection, &topic, &group, partition, offset)
    }

    /// `commit_offset` on a connection, topic, partition and group already checked.
    fn commit_to_group(
        &self,
        connection: &SharedConnectionState,
        topic: &Topic,
        group_state: &Group,
        partition: u32,
        offset: u64,
    ) -> LiveResult<()> {
        let connection_id = connection.id();
        let group = &*group_state.name;
        let now = self.reading();
        connection.record_heartbeat(now);
        let mut freed = Vec::new();
        let request = CommitRequest {
            me: connection_id,
            partition,
            offset,
            now_ms: now.monotonic_ms,
        };
        let result = group_state.commit(&topic.name, request, &mut freed, |offset| {
            topic.log.commit_offset(group, partition, offset)
        });
        topic.partitions_freed(group_state, &freed);
        result
    }

    /// Negative acknowledgement: the consumer `connection_id`, holding the lease of
    /// `partition` in `group`, gives up on the message at `offset` for now. The lease hands
    /// out again from `offset` — that message and every later one it had handed out — at
    /// once when `delay` is zero, else once `delay` has passed on the manager clock's
    /// monotonic reading. Until then the partition hands nothing out: a nacked message
    /// holds its partition for the group (head of line, as a Kafka consumer sees it), so
    /// order per key within a partition is kept. The committed offset does not move.
    ///
    /// `offset` must be one the lease handed out and the group did not commit
    /// (`committed <= offset < delivered`: [`LiveError::CommitBehind`] or
    /// [`LiveError::CommitAhead`] otherwise; a lease without a position, under reset
    /// policy `None` before a seek, handed nothing out: [`LiveError::NoCommittedOffset`]);
    /// only the live lease holder may nack
    /// ([`LiveError::NotLeaseHolder`]); `delay` is at most the group's lease duration
    /// ([`LiveError::OutOfBounds`]), since the delay lives in the lease: if the lease ends
    /// (expiry, leaving, a seek) the next lease starts from the committed offset without
    /// it. A nack renews the session's leases and counts as a heartbeat; the group counts
    /// it in [`GroupStats::nacks`], and the messages it rewound in
    /// [`GroupStats::nack_redelivered`] as they are handed out again.
    ///
    /// With a dead-letter topic set ([`GroupConfig::dead_letter`], or
    /// [`ConnectionsManager::set_dead_letter`]), the nack of a message already delivered
    /// `max_deliver` times sends it there instead, and the partition moves on past it; the
    /// delay does not apply then, and the lease hands out again from the message after it
    /// (every later one it had handed out, as any nack; counted in `nacks` and
    /// `nack_redelivered` too), so a consumer treats either outcome alike: it drops the
    /// rest of its batch and consumes again (an older batch's `commit_batch` is then
    /// [`LiveError::CommitAhead`]). Either way, the messages handed out again after the
    /// nacked one do not count that hand-out against `max_deliver`, since a consumer that
    /// drops its batch on a nack did not try them: `max_deliver` bounds the deliveries of a
    /// message at the head of what a consumer works on, and one that fails behind another
    /// failing message may be tried more often. The group commits past the
    /// message only if it is at the committed offset: behind messages handed out and not
    /// committed it is marked, skipped when they are handed out again, and nothing is
    /// committed for them (a consumer finishing a batch out of order loses nothing). A
    /// message that retention removed since it was handed out has nothing to send: its
    /// nack rewinds as without a dead-letter topic, and the next hand-out reports it in
    /// [`ConsumeBatch::retention_skips`].
    pub fn nack(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
        partition: u32,
        offset: u64,
        delay: Duration,
    ) -> LiveResult<()> {
        let connection = self.connection(connection_id)?;
        let topic = self.topic(topic)?;
        topic.check_partition(partition)?;
        let group_state = topic.group(group)?;
        let lease = group_state.config.lease_duration;
        if delay > lease {
            return Err(LiveError::OutOfBounds {
                what: "nack delay (ms)",
                value: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                min: 0,
                max: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let now = self.reading();
        connection.record_heartbeat(now);
        let mut freed = Vec::new();
        let request = CommitRequest {
            me: connection_id,
            partition,
            offset,
            now_ms: now.monotonic_ms,
        };
        // Whole milliseconds, rounded up: a delay never ends early.
        let delay_ms = u64::try_from(delay.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
        let policy = lock(&group_state.dead_letter).clone();
        let max_deliver = policy.as_ref().map(|policy| policy.max_deliver);
        let outcome = group_state.nack(&topic.name, request, delay_ms, max_deliver, &mut freed);
        topic.partitions_freed(&group_state, &freed);
        // A dead letter sent and passed: the rewind past it takes no delay.
        let mut passed_dead_letter = false;
        let result = match (outcome, policy) {
            (Ok(NackOutcome::DeadLetter { deliveries }), Some(policy)) => {
                match self.dead_letter(
                    connection_id,
                    &topic,
                    &group_state,
                    &policy,
                    (partition, offset, deliveries),
                ) {
                    // Retention removed the message since it was handed out: there is
                    // nothing to send, and the nack rewinds as any other (the next hand-out
                    // reports the retention skip).
                    Err(DeadLetterError::Trimmed) => {
                        let mut freed = Vec::new();
                        let outcome =
                            group_state.nack(&topic.name, request, delay_ms, None, &mut freed);
                        topic.partitions_freed(&group_state, &freed);
                        outcome.map(|_| ())
                    }
                    Err(DeadLetterError::Failed(error)) => Err(error),
                    Ok(()) => {
                        passed_dead_letter = true;
                        Ok(())
                    }
                }
            }
            (outcome, _) => outcome.map(|_| ()),
        };
        if result.is_ok() && (delay_ms == 0 || passed_dead_letter) {
            // A consume of this session parked on the partition sees the rewind now; one
            // held by a delay is woken when the delay ends.
            if let Some(session) = self.topics.session(connection_id) {
                session.wake.wake();
            }
        }
        result
    }

    /// Sends the message at `offset` of `partition`, delivered `deliveries` times, to the
    /// dead-letter topic, then moves the group past it for the holder `me` without
    /// committing anything the group has not finished ([`Group::pass_nacked_dead_letter`]).
    /// The append comes first: a failure between the two leaves the message in both places
    /// (at least once), never in neither.
    fn dead_letter(
        &self,
        me: ConnectionId,
        topic: &Topic,
        group: &Group,
        policy: &DeadLetterPolicy,
        (partition, offset, deliveries): (u32, u64, u32),
    ) -> Result<(), DeadLetterError> {
        let mut read = Vec::with_capacity(1);
        match topic.read_log(partition, offset, offset + 1, 1, &mut read) {
            Err(TopicLogError::OutOfRange(bounds)) if offset < bounds.start => {
                return Err(DeadLetterError::Trimmed)
            }
            result => result.map_err(|error| topic.store_error(error))?,
        }
        let message = read
            .into_iter()
            .find(|message| message.offset == offset)
            .ok_or_else(|| {
                store_error(
                    &topic.name,
                    format!("offset {offset} of partition {partition} was not read back"),
                )
            })?;
        self.send_dead_letter(topic, policy, &message, deliveries)?;
        let now = self.reading();
        let mut freed = Vec::new();
        let request = CommitRequest {
            me,
            partition,
            offset,
            now_ms: now.monotonic_ms,
        };
        let result = group.pass_nacked_dead_letter(&topic.name, request, &mut freed, |next| {
            topic.log.commit_offset(&group.name, partition, next)
        });
        topic.partitions_freed(group, &freed);
        Ok(result?)
    }

    /// The message at `offset` of `partition`.
    fn read_one(topic: &Topic, partition: u32, offset: u64) -> LiveResult<DataArc<TopicMessage>> {
        let mut read = Vec::with_capacity(1);
        topic
            .read_log(partition, offset, offset + 1, 1, &mut read)
            .map_err(|error| topic.store_error(error))?;
        read.into_iter()
            .find(|message| message.offset == offset)
            .ok_or_else(|| {
                store_error(
                    &topic.name,
                    format!("offset {offset} of partition {partition} was not read back"),
                )
            })
    }

    /// Appends `message`, handed out `deliveries` times, to the dead-letter topic.
    fn send_dead_letter(
        &self,
        topic: &Topic,
        policy: &DeadLetterPolicy,
        message: &TopicMessage,
        deliveries: u32,
    ) -> LiveResult<()> {
        let (partition, offset) = (message.partition, message.offset);
        let mut envelope = Vec::with_capacity(128);
        envelope.extend_from_slice(br#"{"topic":"#);
        crate::types::json::write_string(&mut envelope, &topic.name);
        envelope.extend_from_slice(
            format!(
                r#","partition":{partition},"offset":{offset},"deliveries":{deliveries},"message":"#
            )
            .as_bytes(),
        );
        envelope.extend_from_slice(message.to_json().as_bytes());
        envelope.push(b'}');
        let mut letter = DirectMessage::new(message.seq, envelope);
        if let Some(key) = &message.key {
            letter = letter.key(key.clone());
        }
        self.publish_to_topic(&policy.topic, letter)?;
        Ok(())
    }

    /// During a consume pass: the lease `(partition, epoch)` stopped before a message at
    /// max-deliver (sent to the dead-letter topic now, `read` holding it if the pass read
    /// it) or one dead-lettered before (skipped); the lease moves past it.
    fn pass_limit(
        &self,
        call: &Call,
        (partition, epoch): (u32, u64),
        limit: Limit,
        policy: Option<&DeadLetterPolicy>,
        read: &[DataArc<TopicMessage>],
    ) -> LiveResult<()> {
        let (offset, counted) = match (limit, policy) {
            (Limit::Dead { offset }, _) => (offset, false),
            (Limit::Reached { offset, deliveries }, Some(policy)) => {
                let message = match read.iter().find(|message| message.offset == offset) {
                    Some(message) => message.clone(),
                    None => Self::read_one(&call.topic, partition, offset)?,
                };
                self.send_dead_letter(&call.topic, policy, &message, deliveries)?;
                (offset, true)
            }
            // Reached is only reported under a policy.
            (Limit::Reached { .. }, None) => return Ok(()),
        };
        call.group
            .pass_dead_letter(call.me, (partition, epoch), offset, counted, |next| {
                call.topic
                    .log
                    .commit_offset(&call.group.name, partition, next)
            })
            .map_err(|error| call.topic.store_error(error))?;
        Ok(())
    }

    /// Changes the dead-letter setting of the live group `group` (which
    /// [`GroupConfig::dead_letter`] sets when the group is created, the usual place): a
    /// message the group has handed out `max_deliver` times goes to `dead_letter_topic`
    /// instead of being handed out again, as [`DeadLetterPolicy`] describes (read its
    /// warning on durability). Replaces any earlier setting, in memory: a group created
    /// again (after a restart, say) has the setting of its config.
    ///
    /// Errors: `max_deliver` 0 ([`LiveError::OutOfBounds`]); `dead_letter_topic` unknown
    /// ([`LiveError::UnknownTopic`]) or the group's own topic ([`LiveError::InvalidConfig`]).
    pub fn set_dead_letter(
        &self,
        topic: &str,
        group: &str,
        dead_letter_topic: &str,
        max_deliver: u32,
    ) -> LiveResult<()> {
        let topic_state = self.topic(topic)?;
        let group_state = topic_state.group(group)?;
        let policy = DeadLetterPolicy::new(dead_letter_topic, max_deliver);
        self.check_dead_letter(topic, group, &policy)?;
        // Set under the topics map's lock, under which `delete_topic` looks for groups
        // naming the topic it deletes: the topic is there, or the setting is refused.
        let topics = lock(&self.topics.topics);
        if !topics.contains_key(policy.topic.as_str()) {
            return Err(LiveError::UnknownTopic(policy.topic));
        }
        *lock(&group_state.dead_letter) = Some(policy);
        drop(topics);
        Ok(())
    }

    /// Checks a dead-letter policy of group `group` of `topic`.
    ///
    /// A dead-letter topic on another kind of log than its source is not refused, though
    /// with a durable source and an in-memory dead-letter topic a restart loses dead letters
    /// the source's durable offset moved past (the docs of [`DeadLetterPolicy`] warn):
    /// livecore cannot tell which logs are durable (`TopicLog` says nothing of it, and a
    /// host's store may be either), so a check could only compare `MemoryLog` with the rest
    /// and would refuse a host's durable store as readily as accept an ephemeral one; and a
    /// dead-letter topic only watched live (alerting) may be fine to lose.
    fn check_dead_letter(
        &self,
        topic: &str,
        group: &str,
        policy: &DeadLetterPolicy,
    ) -> LiveResult<()> {
        if policy.max_deliver == 0 {
            return Err(LiveError::OutOfBounds {
                what: "max_deliver",
                value: 0,
                min: 1,
                max: u64::from(u32::MAX),
            });
        }
        self.topic(&policy.topic)?;
        if policy.topic == topic {
            return Err(LiveError::InvalidConfig(format!(
                "the dead-letter topic of group {group:?} may not be its own topic {topic:?}"
            )));
        }
        Ok(())
    }

    /// Removes `group`'s dead-letter topic: nacked messages are handed out again however
    /// often they were.
    pub fn clear_dead_letter(&self, topic: &str, group: &str) -> LiveResult<()> {
        let group_state = self.topic(topic)?.group(group)?;
        *lock(&group_state.dead_letter) = None;
        Ok(())
    }

    /// Extends the leases the consumer `connection_id` holds in `group` by a lease duration
    /// from now, without handing anything out or committing: a consumer still working on a
    /// long batch keeps it (as JetStream's in-progress ack or SQS's visibility change).
    /// Returns how many leases were extended; a lease that already expired is not revived
    /// (it ends, and what it handed out and was not committed is handed out again). Counts
    /// as a heartbeat, and in [`GroupStats::lease_extensions`].
    pub fn extend_leases(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
    ) -> LiveResult<usize> {
        let connection = self.connection(connection_id)?;
        let topic = self.topic(topic)?;
        let group_state = topic.group(group)?;
        let now = self.reading();
        connection.record_heartbeat(now);
        let mut freed = Vec::new();
        let extended = group_state.extend(connection_id, now.monotonic_ms, &mut freed);
        topic.partitions_freed(&group_state, &freed);
        Ok(extended)
    }

    /// Positions `group` on `partition` at `offset` (an administrative reset: it may move
    /// the committed offset backwards or forwards). The offset must be within the retained
    /// range `start..=end` ([`LiveError::OffsetOutOfRange`] otherwise). The partition's
    /// current lease ends, so its holder continues from the new position.
    pub fn seek_group(
        &self,
        topic: &str,
        group: &str,
        partition: u32,
        offset: u64,
    ) -> LiveResult<()> {
        let topic = self.topic(topic)?;
        topic.check_partition(partition)?;
        let group_state = topic.group(group)?;
        let store_error = |error| topic.store_error(error);
        let bounds = topic.log.bounds(partition).map_err(store_error)?;
        if offset < bounds.start || offset > bounds.end {
            return Err(offset_out_of_range(&topic.name, partition, offset, bounds));
        }
        let holder = group_state.seek(&topic.name, partition, offset, || {
            topic.log.commit_offset(group, partition, offset)
        })?;
        if let Some(holder) = holder {
            topic.partitions_freed(&group_state, &[(partition, holder)]);
            if let Some(session) = self.topics.session(holder) {
                session.wake.wake();
            }
        } else {
            group_state.waiters.wake_all();
        }
        Ok(())
    }

    /// The session leaves `group`: its leases end now (whatever it did not commit is
    /// handed out again) and it stops counting as a member. A consume of the session in
    /// this group that is parked returns at once with an empty batch and no
    /// positions, rather than wait out its timeout; a later consume joins again.
    pub fn leave_group(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
    ) -> LiveResult<()> {
        self.connection(connection_id)?;
        let topic = self.topic(topic)?;
        let group_state = topic.group(group)?;
        let session = self.topics.session(connection_id);
        // Marked left before the leases are released: a consume's pass that comes after
        // the release sees the mark and takes no lease again.
        if let Some(session) = &session {
            session.forget_group(&group_state);
        }
        topic.leave(&group_state, connection_id);
        if let Some(session) = session {
            // The session's parked consumes (of this group, and spuriously of others) look
            // again: those of this group return.
            session.wake.wake();
        }
        Ok(())
    }

    /// Every partition of `group`: committed offset, retained range, lag and lease.
    pub fn group_offsets(&self, topic: &str, group: &str) -> LiveResult<Vec<GroupPartition>> {
        let topic = self.topic(topic)?;
        let group_state = topic.group(group)?;
        let now = self.reading();
        let snapshot = group_state.snapshot();
        let mut partitions = Vec::with_capacity(snapshot.len());
        for (partition, (committed, lease)) in snapshot.into_iter().enumerate() {
            let bounds = topic
                .log
                .bounds(partition as u32)
                .map_err(|error| topic.store_error(error))?;
            let lease = lease.filter(|lease| lease.expires_at_ms > now.monotonic_ms);
            partitions.push(GroupPartition {
                partition: partition as u32,
                committed,
                bounds,
                lag: bounds
                    .end
                    .saturating_sub(committed.unwrap_or(0).max(bounds.start)),
                holder: lease.map(|lease| lease.holder),
                delivered: lease.and_then(|lease| lease.next),
                lease_expires_at_ms: lease.map(|lease| now.wall_at(lease.expires_at_ms)),
            });
        }
        Ok(partitions)
    }

    /// The group's counters.
    pub fn group_stats(&self, topic: &str, group: &str) -> LiveResult<GroupStats> {
        Ok(self.topic(topic)?.group(group)?.stats())
    }
}

impl ConnectionsManager {
    /// Long-poll consume: up to `max_messages` messages of `topic` for consumer group
    /// `group`, from the partitions this consumer session leases. Returns at once when
    /// messages are waiting; otherwise parks (without spinning) until one arrives, a
    /// partition becomes free for it, or `timeout` passes (on the manager clock's
    /// monotonic reading, and at most as long in real time: see the
    /// documentation of `crate::topics::consume`), and then returns an empty batch with the session's
    /// positions. `timeout` zero never parks.
    ///
    /// `connection_id` is the consumer session: a registered, authenticated connection.
    /// Each consume counts as a heartbeat of it. Several consumes may run on one session at
    /// once (threads, or one per group): each has its own wake-up, and a publish wakes every
    /// one parked on the session. Limits: `max_messages` between 1 and
    /// [`TopicLimits::max_consume_messages`](crate::TopicLimits::max_consume_messages);
    /// `timeout` at most [`TopicLimits::max_poll_timeout`](crate::TopicLimits::max_poll_timeout),
    /// at most the group's lease duration (so a parked consumer's leases cannot expire
    /// while it waits) and at most half the heartbeat timeout (so a parked consumer is not
    /// taken for a dead one). Errors: see the documentation of `crate::topics::consume`.
    pub fn consume(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
        max_messages: usize,
        timeout: Duration,
    ) -> LiveResult<ConsumeBatch> {
        let mut call = self.begin_consume(connection_id, topic, group, max_messages, timeout)?;
        // `begin_consume` bounded the timeout by the limits, but limits configured near
        // `Duration::MAX` must not make the deadline overflow (a panic): checked.
        let deadline =
            Instant::now()
                .checked_add(timeout)
                .ok_or_else(|| LiveError::OutOfBounds {
                    what: "poll timeout (ms)",
                    value: timeout.as_millis().min(u128::from(u64::MAX)) as u64,
                    min: 0,
                    max: self
                        .config
                        .topics
                        .max_poll_timeout
                        .as_millis()
                        .min(u128::from(u64::MAX)) as u64,
                })?;
        let clock_deadline = self
            .clock
            .monotonic_ms()
            .saturating_add(timeout.as_millis().min(u128::from(u64::MAX)) as u64);
        loop {
            match self.consume_pass(&mut call)? {
                Pass::Messages(batch) => return Ok(batch),
                Pass::Left => return Ok(self.left_batch(&mut call)),
                Pass::Retry => continue,
                Pass::Nothing => {}
            }
            let real_left = deadline.saturating_duration_since(Instant::now());
            if real_left.is_zero() || self.clock.monotonic_ms() >= clock_deadline {
                return Ok(self.batch(&mut call, Vec::new()));
            }
            if let Some(lease_expiry) = self.ready_to_park(&mut call) {
                let wake_at = lease_expiry.map_or(clock_deadline, |at| at.min(clock_deadline));
                // Read after registering for clock steps: a step before this read is seen
                // here, one after it wakes the park.
                let now_ms = self.clock.monotonic_ms();
                if now_ms < wake_at {
                    self.topics.totals.parks.fetch_add(1, Ordering::Relaxed);
                    // A clock that steps wakes the park itself; for one that moves by
                    // itself, the distance on its monotonic reading is waited out as real
                    // time.
                    let park_for = if self.topics.clock_waiters.is_some() {
                        real_left
                    } else {
                        real_left.min(Duration::from_millis(wake_at - now_ms))
                    };
                    call.parker.park(park_for);
                }
            }
        }
    }

    /// [`consume`](Self::consume) without blocking a thread and without a timeout of its
    /// own (livecore has no timer): it completes when messages are handed out, or with the
    /// same errors. Wrap it in the host runtime's timeout; dropping the future before it
    /// completes hands nothing out and loses nothing. Several may be pending at once on one
    /// session (a `select!` over two groups): each is woken for itself.
    #[cfg(not(livecore_loom))]
    pub async fn consume_async(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
        max_messages: usize,
    ) -> LiveResult<ConsumeBatch> {
        let mut call =
            self.begin_consume(connection_id, topic, group, max_messages, Duration::ZERO)?;
        loop {
            match self.consume_pass(&mut call)? {
                Pass::Messages(batch) => return Ok(batch),
                Pass::Left => return Ok(self.left_batch(&mut call)),
                Pass::Retry => continue,
                Pass::Nothing => {}
            }
            if let Some(lease_expiry) = self.ready_to_park(&mut call) {
                // As in `consume`: a lease that expired before the registration for clock
                // steps is seen here.
                if lease_expiry.is_none_or(|at| self.clock.monotonic_ms() < at) {
                    self.topics.totals.parks.fetch_add(1, Ordering::Relaxed);
                    call.parker.park_async().await;
                }
            }
        }
    }

    /// Commits, for each partition in `batch`, the offset after its last message: the
    /// whole batch is done. See [`commit_offset`](Self::commit_offset). A batch handed out
    /// by a group since deleted (even one created again under the same name) or by another
    /// manager is [`LiveError::UnknownGroup`]: its offsets say nothing about this group's
    /// messages. A batch whose topic was deleted is [`LiveError::UnknownTopic`] while no
    /// topic has that name, and [`LiveError::UnknownGroup`] once one has it again.
    ///
    /// Every partition is checked before any is committed, so a batch one of whose leases
    /// was lost ([`LiveError::NotLeaseHolder`]), or that is behind or ahead anywhere,
    /// commits nothing. The offsets are then written to the topic's store partition by
    /// partition; a store failure ([`LiveError::TopicStore`]) leaves the partitions before
    /// it committed.
    pub fn commit_batch(
        &self,
        connection_id: ConnectionId,
        batch: &ConsumeBatch,
    ) -> LiveResult<()> {
        let connection = self.connection(connection_id)?;
        let topic = self.topic(&batch.topic)?;
        let group = topic.group(&batch.group)?;
        if group.instance != batch.group_instance {
            return Err(LiveError::UnknownGroup {
                topic: batch.topic.clone(),
                group: batch.group.clone(),
            });
        }
        let offsets = batch.next_offsets();
        if offsets.is_empty() {
            return Ok(());
        }
        for (partition, _) in &offsets {
            topic.check_partition(*partition)?;
        }
        let now = self.reading();
        connection.record_heartbeat(now);
        let mut freed = Vec::new();
        let result = group.commit_all(
            &topic.name,
            (connection_id, now.monotonic_ms),
            &offsets,
            &mut freed,
            |partition, offset| topic.log.commit_offset(&group.name, partition, offset),
        );
        topic.partitions_freed(&group, &freed);
        result
    }

    fn begin_consume(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
        max_messages: usize,
        timeout: Duration,
    ) -> LiveResult<Call> {
        let limits = &self.config.topics;
        check_max_messages(max_messages, limits.max_consume_messages)?;
        if self.is_shutting_down() {
            return Err(LiveError::ShuttingDown);
        }
        let connection = self.connection(connection_id)?;
        let topic = self.topic(topic)?;
        let group = topic.group(group)?;
        let max_timeout = limits
            .max_poll_timeout
            .min(group.config.lease_duration)
            .min(self.config.heartbeat_timeout / 2);
        if timeout > max_timeout {
            return Err(LiveError::OutOfBounds {
                what: "poll timeout (ms)",
                value: timeout.as_millis() as u64,
                min: 0,
                max: max_timeout.as_millis() as u64,
            });
        }
        // Authentication is checked when the session is created: a connection's user never
        // changes once set, and the check reads through arc-swap, which costs a new thread
        // a walk over every thread that used it.
        let session = match self.topics.session(connection_id) {
            Some(session) => session,
            None => {
                if connection.user_key().is_none() {
                    return Err(LiveError::NotAuthenticated(connection_id));
                }
                self.consumer_session(&connection)?
            }
        };
        let membership = session.join(&topic, &group, limits.max_groups_per_session)?;
        // Before anything registers the session in a wait list: a wake that follows a
        // registration reaches this call.
        let parker = session.parker();
        Ok(Call {
            me: connection_id,
            connection,
            session,
            parker,
            topic,
            skips: group.take_unreported(),
            group,
            membership,
            max_messages,
            leases: Vec::new(),
        })
    }

    /// The end of every wait: shutdown, the connection unregistering, the topic or group
    /// being deleted.
    fn check_consumable(&self, call: &Call) -> LiveResult<()> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(LiveError::ShuttingDown);
        }
        if call.session.is_closed() {
            return Err(LiveError::UnknownConnection(call.me));
        }
        if call.topic.is_deleted() {
            return Err(LiveError::UnknownTopic(call.topic.name.to_string()));
        }
        if call.group.is_deleted() {
            return Err(LiveError::UnknownGroup {
                topic: call.topic.name.to_string(),
                group: call.group.name.to_string(),
            });
        }
        Ok(())
    }

    /// One pass: renew and take leases, read what is waiting, hand it out.
    fn consume_pass(&self, call: &mut Call) -> LiveResult<Pass> {
        self.check_consumable(call)?;
        let now = self.reading();
        call.connection.record_heartbeat(now);
        let Some(assignment) = call.group.assign(
            call.me,
            &call.session.wake,
            &call.membership,
            now.monotonic_ms,
        ) else {
            return Ok(Pass::Left);
        };
        call.topic.partitions_freed(&call.group, &assignment.freed);
        call.leases = assignment.leases;
        let count = call.leases.len();
        let first = if count == 0 {
            0
        } else {
            call.session.next_rotation() % count
        };
        let mut messages: Vec<DataArc<TopicMessage>> = Vec::new();
        // (partition, epoch, from, to, range in `messages`)
        let mut reads: Vec<(u32, u64, u64, u64, std::ops::Range<usize>)> = Vec::new();
        for step in 0..count {
            let (partition, lease) = call.leases[(first + step) % count];
            let Some(next) = lease.next else {
                return Err(LiveError::NoCommittedOffset {
                    topic: call.topic.name.to_string(),
                    group: call.group.name.to_string(),
                    partition,
                });
            };
            if messages.len() >= call.max_messages {
                break;
            }
            if lease.is_held(now.monotonic_ms) {
                // A nack's delay holds the partition (head of line).
                continue;
            }
            let end = call.topic.signals[partition as usize].end();
            if end <= next {
                continue;
            }
            let before = messages.len();
            // `read_log` never returns nothing below the end, so a pass with `end > next`
            // reads something or fails (it never spins without parking).
            match call.topic.read_log(
                partition,
                next,
                end,
                call.max_messages - before,
                &mut messages,
            ) {
                Ok(()) => {
                    if let Some(last) = messages.get(before..).and_then(|read| read.last()) {
                        reads.push((
                            partition,
                            lease.epoch,
                            next,
                            last.offset + 1,
                            before..messages.len(),
                        ));
                    }
                }
                Err(TopicLogError::OutOfRange(bounds)) => {
                    let outcome = call.group.out_of_range(
                        &call.topic.name,
                        call.me,
                        partition,
                        lease.epoch,
                        next,
                        bounds,
                        |target| {
                            call.topic
                                .log
                                .commit_offset(&call.group.name, partition, target)
                        },
                    )?;
                    if let OutOfRangeOutcome::Moved(Some((from, to))) = outcome {
                        call.skips.push(RetentionSkip {
                            partition,
                            from,
                            to,
                        });
                    }
                    // Read again from the new position (messages read so far were not
                    // handed out and are read again).
                    return Ok(Pass::Retry);
                }
                Err(error) => return Err(call.topic.store_error(error)),
            }
        }
        if messages.is_empty() {
            return Ok(Pass::Nothing);
        }
        let policy = lock(&call.group.dead_letter).clone();
        let max_deliver = policy.as_ref().map(|policy| policy.max_deliver);
        let mut kept: Vec<DataArc<TopicMessage>> = Vec::with_capacity(messages.len());
        let mut failed = None;
        for (partition, epoch, from, to, range) in reads {
            let lease = (partition, epoch);
            if let Advance::Handed { to, limit } =
                call.group.advance(call.me, lease, from, to, max_deliver)
            {
                let read = &messages[range];
                kept.extend(read.iter().filter(|message| message.offset < to).cloned());
                if let Some(limit) = limit {
                    if let Err(error) = self.pass_limit(call, lease, limit, policy.as_ref(), read) {
                        failed.get_or_insert(error);
                    }
                }
            }
        }
        if kept.is_empty() {
            // A dead letter that failed, with nothing else to hand out: the consume fails
            // (the next one tries again) rather than spin.
            if let Some(error) = failed {
                return Err(error);
            }
            // Every lease changed under the read (a seek, or this session consuming
            // concurrently), or moved past a dead letter: nothing was handed out.
            return Ok(Pass::Retry);
        }
        Ok(Pass::Messages(self.batch(call, kept)))
    }

    /// Registers the session to be woken and checks once more. `Some` when it should
    /// park, with the monotonic reading to wake at for another member's lease expiry (if
    /// one is held); `None` when something arrived meanwhile (run another pass).
    fn ready_to_park(&self, call: &mut Call) -> Option<Option<u64>> {
        let wake = &call.session.wake;
        for (partition, _) in &call.leases {
            call.topic.signals[*partition as usize]
                .waiters
                .register(call.me, wake);
        }
        if let Some(waiters) = &self.topics.clock_waiters {
            // Before the clock is read: a step after this read wakes the park. The
            // registration is the session's, shared by its calls, so a call that stops
            // parking leaves it; the next step or the session's end takes it off.
            waiters.register(call.me, wake);
        }
        let now_ms = self.clock.monotonic_ms();
        let lease_expiry = match call.group.prepare_park(call.me, wake, now_ms) {
            ParkDecision::Retry => return None,
            ParkDecision::Park {
                nudge,
                lease_expiry,
            } => {
                for member in nudge {
                    member.wake();
                }
                lease_expiry
            }
        };
        // A partition held by a nack's delay is looked at again when the delay ends.
        let hold_end = call.group.hold_ends_of(call.me, now_ms);
        let lease_expiry = match (lease_expiry, hold_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The re-check: an append that raced the registration is seen here.
        let arrived = call.leases.iter().any(|(partition, lease)| {
            !lease.is_held(now_ms)
                && lease.next.is_some_and(|next| {
                    call.topic.signals[*partition as usize].end_after_registering() > next
                })
        });
        (!arrived).then_some(lease_expiry)
    }

    /// The batch of a consume whose session left the group: no message and no position
    /// (the group's positions for the session, read now, could be those of a consume that
    /// joined again since).
    fn left_batch(&self, call: &mut Call) -> ConsumeBatch {
        Self::batch_of(call, Vec::new(), Vec::new())
    }

    fn batch(&self, call: &mut Call, messages: Vec<DataArc<TopicMessage>>) -> ConsumeBatch {
        let now = self.reading();
        let positions = call
            .group
            .positions_of(call.me)
            .into_iter()
            .map(
                |(partition, committed, next, lease_expires_at)| PartitionPosition {
                    partition,
                    committed,
                    next,
                    end: call.topic.signals[partition as usize].end(),
                    lease_expires_at_ms: now.wall_at(lease_expires_at),
                },
            )
            .collect();
        Self::batch_of(call, messages, positions)
    }

    /// The batch a call returns; it takes the call's skips (reported here, so not kept
    /// for the group's next batch when the call ends).
    fn batch_of(
        call: &mut Call,
        messages: Vec<DataArc<TopicMessage>>,
        positions: Vec<PartitionPosition>,
    ) -> ConsumeBatch {
        ConsumeBatch {
            topic: call.topic.name.to_string(),
            group: call.group.name.to_string(),
            messages,
            positions,
            retention_skips: std::mem::take(&mut call.skips),
            group_instance: call.group.instance,
        }
    }
}

impl ConnectionsManager {
    /// The consumer session of a registered connection, created on first use.
    pub(crate) fn consumer_session(
        &self,
        connection: &SharedConnectionState,
    ) -> LiveResult<Arc<ConsumerSession>> {
        let id = connection.id();
        let session = {
            let mut sessions = lock(&self.topics.sessions);
            sessions
                .entry(id)
                .or_insert_with(|| Arc::new(ConsumerSession::new(id)))
                .clone()
        };
        // Unregistering marks the connection closed before it ends the session, so a
        // session created after that is seen here and removed again.
        if connection.is_closed() {
            self.end_consumer_session(id);
            return Err(self.not_registered_now(id));
        }
        Ok(session)
    }

    /// Ends the consumer session of a connection being unregistered, if it has one.
    pub(crate) fn end_consumer_session(&self, connection_id: ConnectionId) {
        let session = lock(&self.topics.sessions).remove(&connection_id);
        if let Some(session) = session {
            session.end();
        }
        // Its consumes leave their registration for clock steps (see `ready_to_park`).
        if let Some(waiters) = &self.topics.clock_waiters {
            waiters.remove(connection_id);
        }
    }

    /// Wakes every consumer session (shutdown): parked consumes return
    /// [`LiveError::ShuttingDown`].
    pub(crate) fn wake_consumer_sessions(&self) {
        let sessions: Vec<_> = lock(&self.topics.sessions).values().cloned().collect();
        for session in sessions {
            session.wake.wake();
        }
    }
}

/// Why a nack's dead letter was not sent.
enum DeadLetterError {
    /// Retention removed the message since it was handed out.
    Trimmed,
    /// Anything else, as the nack reports it.
    Failed(LiveError),
}

impl From<LiveError> for DeadLetterError {
    fn from(error: LiveError) -> Self {
        DeadLetterError::Failed(error)
    }
}
