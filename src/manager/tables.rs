//! Tables, from the manager's side: registering a table, and re-registering it
//! (ALTER TABLE), which recompiles its subscriptions or ends those that no longer fit.

use crate::connection::subscription::{SubscriptionCore, SubscriptionHandle};
use crate::error::LiveError;
use crate::error::LiveResult;
use crate::manager::ConnectionsManager;
use crate::query::params::Params;
use crate::query::parser::{may_name_a_boolean, BooleanColumns};
use crate::query::CompiledQuery;
use crate::route::index::Installed;
use crate::route::index::TableRoute;
use crate::sync::lock;
use crate::sync::write;
use crate::sync::DataArc;
use crate::sync::{Arc, LeanArc};
use crate::types::ending::CloseReason;
use crate::types::ending::SubscriptionEnding;
use crate::types::ids::TableId;
use crate::types::ids::TableKey;
use crate::types::schema::TableSchema;
use std::collections::HashMap;

/// A subscription's query compiled for a new schema, and its new constants when its SQL
/// was read again (`None`: it keeps its own).
type Recompiled = (DataArc<CompiledQuery>, Option<Params>);

impl ConnectionsManager {
    /// Registers a table's schema, or replaces it (ALTER TABLE): the filters and
    /// projections of its subscriptions are recompiled against the new columns; a
    /// subscription that uses a column the table no longer has is closed with
    /// [`CloseReason::SchemaChanged`](crate::CloseReason::SchemaChanged) (also while it
    /// loads: a resync would fail the same way), and one still in its initial load whose
    /// query compiles gets `ResyncRequired`. As on a revocation, a closed subscription's
    /// changes still queued are not handed out (they were counted as delivered when
    /// queued): the notice is the last its consumer sees of it, and a client resyncs from
    /// its own last SeqId. Returns the table's key, stable across versions. A column whose
    /// type changed under its name (its values converted) looks the same here: tell it
    /// with [`columns_rewritten`](Self::columns_rewritten) after this call.
    pub fn register_table(&self, schema: TableSchema) -> LiveResult<TableKey> {
        schema.validate()?;
        let schema = DataArc::new(schema);
        loop {
            let existing = self
                .index
                .with_directory(|directory| directory.route_by_id(&schema.table_id).cloned());
            match existing {
                None => {
                    let installed = self.index.install_new_route(&schema.table_id, |key| {
                        Arc::new(TableRoute::new(key, schema.clone()))
                    });
                    match installed {
                        Installed::Added(route) => return Ok(route.key),
                        // Another thread registered it first: compare schemas again.
                        Installed::AlreadyPresent => continue,
                    }
                }
                Some(route) if route.schema == schema => return Ok(route.key),
                Some(_) => {
                    let _lifecycle = write(&self.lifecycle);
                    let Some(current) = self.index.with_directory(|directory| {
                        directory.route_by_id(&schema.table_id).cloned()
                    }) else {
                        // Dropped meanwhile (drop_table holds this lock): register afresh.
                        continue;
                    };
                    if current.schema == schema {
                        return Ok(current.key);
                    }
                    return Ok(self.replace_schema(&current, schema));
                }
            }
        }
    }

    /// The current schema of a table.
    pub fn table_schema(&self, table_id: &TableId) -> LiveResult<DataArc<TableSchema>> {
        self.index
            .with_directory(|directory| {
                directory
                    .route_by_id(table_id)
                    .map(|route| route.schema.clone())
            })
            .ok_or_else(|| LiveError::UnknownTable(table_id.clone()))
    }

    /// Rebuilds a table's routes for a new schema (the caller holds `lifecycle`
    /// exclusively): recompiles each distinct query once, moves each subscription to a
    /// successor core, and ends those that no longer compile or are still loading.
    pub(crate) fn replace_schema(
        &self,
        old_route: &Arc<TableRoute>,
        schema: DataArc<TableSchema>,
    ) -> TableKey {
        let new_route = Arc::new(TableRoute::new(old_route.key, schema.clone()));
        #[cfg(feature = "tracing")]
        tracing::info!(table = %schema.table_id, subscriptions = old_route.subscription_count(), "livecore: table schema changed");
        let mut handles = Vec::with_capacity(old_route.subscription_count());
        old_route.for_each_subscription(&self.index.hasher, |handle| handles.push(handle.clone()));
        let mut recompiled: HashMap<usize, LiveResult<Recompiled>> = HashMap::new();
        // SQLite reads a bare TRUE or FALSE as the column of that name when the table has
        // one: when that changes, SQL that may hold the words is read again.
        let words = BooleanColumns::of(&schema);
        let words_changed = words != BooleanColumns::of(&old_route.schema);
        for handle in handles {
            let core = &handle.core;
            if core.flow.is_closed() {
                continue;
            }
            let reread = core
                .sql
                .as_ref()
                .filter(|sql| words_changed && may_name_a_boolean(sql.as_str()));
            let query = match reread {
                Some(sql) => self.reread_sql(sql.as_str(), words, &new_route),
                None => recompiled
                    .entry(DataArc::as_ptr(&core.query) as usize)
                    .or_insert_with(|| {
                        // The template recompiles once; each subscription keeps its
                        // constants.
                        self.shared_compiled_query(core.query.spec.clone(), &new_route)
                            .map(|query| (query, None))
                    })
                    .clone(),
            };
            let connection = &handle.connection;
            let mut subscriptions = lock(&connection.subscriptions);
            match query {
                Ok((query, params)) if !core.flow.is_gated() => {
                    let successor = LeanArc::new(SubscriptionCore::successor(core, query, params));
                    new_route.insert(
                        SubscriptionHandle::first(successor.clone(), connection.clone()),
                        &self.index.hasher,
                    );
                    if let Some(state) = subscriptions.get_mut(&core.id) {
                        state.core = successor;
                    }
                }
                Ok(_) => {
                    let ending = SubscriptionEnding::ResyncRequired;
                    if self.end_once(core, connection, ending.clone()) {
                        subscriptions.remove_ended(&core.id, ending, self.endings_remembered());
                    }
                }
                Err(error) => {
                    let column = match error {
                        LiveError::UnknownColumn { column, .. } => column,
                        other => other.to_string(),
                    };
                    let ending = SubscriptionEnding::Closed(CloseReason::SchemaChanged { column });
                    if self.end_once(core, connection, ending.clone()) {
                        subscriptions.remove_ended(&core.id, ending, self.endings_remembered());
                    }
                }
            }
        }
        self.index.replace_route(new_route);
        old_route.key
    }

    /// A subscription's SQL read again for a schema whose columns named TRUE or FALSE
    /// changed: its query, and its constants (the words may have become, or stopped
    /// being, constants).
    fn reread_sql(
        &self,
        sql: &str,
        words: BooleanColumns,
        route: &TableRoute,
    ) -> LiveResult<Recompiled> {
        let spec = self.read_sql_with(sql, words)?;
        let params = spec.params();
        let query = self.shared_compiled_query(spec, route)?;
        Ok((query, Some(params)))
    }
}
