//! Subscribing with SQL text, and the sharing of compiled queries between subscriptions.
//!
//! `subscribe_sql` parses `SELECT col, ... | * FROM [namespace.]table [WHERE expr]` (see
//! [`crate::query::parser`]); a table named without a namespace is looked up in
//! [`ManagerConfig::default_namespace`](crate::ManagerConfig::default_namespace). Identical
//! texts are parsed once, and identical queries on one table (same text, same schema version)
//! share one compiled filter and projection, through the manager's bounded query caches.

use crate::connection::subscription::{SubscriptionOptions, SubscriptionResult};
use crate::error::{LiveError, LiveResult};
use crate::manager::ConnectionsManager;
use crate::query::parser::{
    check_sql_len, may_name_a_boolean, parse_subscription_sql, parse_with_boolean_columns,
    BooleanColumns,
};
use crate::query::{CompiledQuery, QueryCacheStats, QuerySpec};
use crate::route::index::TableRoute;
use crate::sync::{lock, DataArc};
use crate::types::ids::{ConnectionId, LiveQueryId, TableId};

impl ConnectionsManager {
    /// Opens a subscription from SQL text, as clients send it:
    /// `SELECT col, ... | * FROM [namespace.]table [WHERE expr]`.
    ///
    /// The text is parsed (or found in the parse cache), the filter and projection are
    /// compiled against the table's schema (or an identical query's compiled form is
    /// shared), and the subscription is indexed before this returns, exactly as
    /// [`subscribe`](Self::subscribe) does. Unsupported SQL is refused with
    /// [`LiveError::Sql`] naming the construct and its position; oversized filters with
    /// the typed limit errors, and text longer than
    /// [`MAX_SUBSCRIPTION_SQL_LEN`](crate::MAX_SUBSCRIPTION_SQL_LEN) with
    /// [`LiveError::OutOfBounds`] before it is looked up or read. A connection must be
    /// authenticated before its SQL is parsed.
    ///
    /// A table named without a namespace is looked up in
    /// [`ManagerConfig::default_namespace`](crate::ManagerConfig::default_namespace), which
    /// is `"default"` unless the host sets it: name the namespace (`FROM chat.messages`) or
    /// set it. As in SQLite, the names match ignoring ASCII case when no table has exactly
    /// the spelling used (`FROM Chat.Messages` is `chat.messages`), unless two tables match
    /// that way (`UnknownTable`); the subscription then names the table as registered.
    pub fn subscribe_sql(
        &self,
        connection_id: ConnectionId,
        sql: &str,
        options: SubscriptionOptions,
    ) -> LiveResult<SubscriptionResult> {
        if self.is_shutting_down() {
            return Err(LiveError::ShuttingDown);
        }
        let connection = self.connection(connection_id)?;
        if connection.user_key().is_none() {
            return Err(LiveError::NotAuthenticated(connection_id));
        }
        // Before the parse cache hashes the text.
        check_sql_len(sql)?;
        let limits = self.config().filter_limits;
        let (mut spec, text) = self.queries.parsed(sql, || {
            parse_subscription_sql(sql, &limits)
                .map(|parsed| parsed.into_spec(&self.config().default_namespace))
        })?;
        let mut read_with = BooleanColumns::default();
        if may_name_a_boolean(sql) {
            (spec, read_with) = self.read_boolean_columns(sql, spec)?;
        }
        self.subscribe_query(connection_id, spec, (Some(text), read_with), options)
    }

    /// `spec` parsed again, uncached, if its table has a column named TRUE or FALSE: the
    /// cached parse read those words as booleans (the parse cache does not know tables).
    /// Returns it with the words it was read with.
    pub(crate) fn read_boolean_columns(
        &self,
        sql: &str,
        spec: QuerySpec,
    ) -> LiveResult<(QuerySpec, BooleanColumns)> {
        let words = self.boolean_columns_of(&spec.table_id);
        if words.is_none() {
            return Ok((spec, words));
        }
        Ok((self.read_sql_with(sql, words)?, words))
    }

    /// `sql` parsed uncached, with `words` saying which of TRUE and FALSE name columns.
    pub(crate) fn read_sql_with(&self, sql: &str, words: BooleanColumns) -> LiveResult<QuerySpec> {
        let config = self.config();
        parse_with_boolean_columns(sql, &config.filter_limits, words)
            .map(|parsed| parsed.into_spec(&config.default_namespace))
    }

    /// Which of the words TRUE and FALSE name a column of the table SQL names `table_id`.
    pub(crate) fn boolean_columns_of(&self, table_id: &TableId) -> BooleanColumns {
        self.index
            .with_directory(|directory| {
                directory
                    .route_named(table_id)
                    .map(|route| BooleanColumns::of(&route.schema))
            })
            .unwrap_or_default()
    }

    /// Sizes and hit counts of the parse and compiled-query caches.
    pub fn query_cache_stats(&self) -> QueryCacheStats {
        self.queries.stats()
    }

    /// The address of the compiled query a subscription uses: equal for subscriptions that
    /// share one. For tests of sharing; not a stable identifier.
    #[doc(hidden)]
    pub fn compiled_query_id(&self, live_query_id: LiveQueryId) -> LiveResult<usize> {
        let connection = self.connection(live_query_id.connection_id)?;
        let subscriptions = lock(&connection.subscriptions);
        subscriptions
            .get(&live_query_id.subscription_id)
            .map(|state| DataArc::as_ptr(&state.core.query) as *const u8 as usize)
            .ok_or(LiveError::UnknownSubscription(
                live_query_id.subscription_id,
            ))
    }

    /// The compiled template of `spec` on `route`'s schema, shared with every subscription
    /// of the same template (queries that differ at most in the constants they compare
    /// against) on the same table and schema version; compiled only when none exists yet.
    pub(crate) fn shared_compiled_query(
        &self,
        mut spec: QuerySpec,
        route: &TableRoute,
    ) -> LiveResult<DataArc<CompiledQuery>> {
        // The table as registered, whatever case the query named it in: the cache does not
        // compare table names (its key holds the table), so a compiled query shared by
        // several subscriptions must carry the one spelling they all render.
        spec.table_id.clone_from(&route.schema.table_id);
        self.queries
            .compiled(route.key, &route.schema, spec, |spec| {
                CompiledQuery::compile(
                    spec,
                    route.key,
                    route.schema.clone(),
                    &self.config().filter_limits,
                    &self.index.hasher,
                    |projection| route.intern_projection(projection),
                )
                .map(DataArc::new)
            })
    }
}
