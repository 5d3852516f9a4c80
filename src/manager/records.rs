//! Live-query records: the manager's live queries as plain values, for a host's
//! `system.live_queries`-style view and for failover across nodes.
//!
//! The walk reads the routing index the way publishing does (arc-swap loads, no lock), so
//! taking records never stalls publishers or writers, with any number of subscriptions.

use crate::connection::subscription::{SubscriptionOptions, SubscriptionPhase};
use crate::manager::ConnectionsManager;
use crate::types::ids::{ConnectionId, LiveQueryId, NodeId, SubscriptionId, TableId, UserId};

use crate::query::query_text::QueryText;

/// One live query, as a host records it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LiveQueryRecord {
    /// The live query.
    pub live_query_id: LiveQueryId,
    /// Its connection.
    pub connection_id: ConnectionId,
    /// Its subscription number.
    pub subscription_id: SubscriptionId,
    /// Its table.
    pub table_id: TableId,
    /// The connection's user.
    pub user_id: Option<UserId>,
    /// The query; renders as SQL (kept unrendered so taking records stays cheap).
    pub query: QueryText,
    /// How it was opened.
    pub options: SubscriptionOptions,
    /// The node whose livecore holds it.
    pub node_id: NodeId,
    /// Where it is in its life.
    pub status: SubscriptionPhase,
    /// When it was created (ms, manager clock).
    pub created_at_ms: u64,
    /// The publish that last delivered to it (ms, manager clock).
    pub last_update_ms: u64,
    /// The connection's last sign of life (ms, manager clock): for staleness checks.
    pub last_heartbeat_ms: u64,
    /// Deliveries enqueued to it.
    pub changes_delivered: u64,
}

impl ConnectionsManager {
    /// Calls `visit` with a record of every live query, without taking any lock: the walk
    /// reads the routing index through arc-swap, like publishing. Subscriptions added or
    /// removed during the walk may or may not appear.
    pub fn for_each_live_query(&self, mut visit: impl FnMut(LiveQueryRecord)) {
        let node_id = self.config.node_id;
        let hasher = &self.index.hasher;
        self.index.with_directory(|directory| {
            for route in directory.routes() {
                route.for_each_subscription(hasher, |handle| {
                    let core = &handle.core;
                    // Ended (a gate overflow awaiting its reaping): no longer a live query.
                    if core.is_ended() {
                        return;
                    }
                    visit(LiveQueryRecord {
                        live_query_id: core.live_query_id(handle.connection.id),
                        connection_id: handle.connection.id,
                        subscription_id: core.id,
                        table_id: core.query.schema.table_id.clone(),
                        user_id: handle.connection.user_id(),
                        query: core.query_text(),
                        options: core.options.unpack(),
                        node_id,
                        status: core.phase(),
                        created_at_ms: core.created_at_ms,
                        last_update_ms: core.last_update_ms(),
                        last_heartbeat_ms: handle.connection.last_heartbeat_ms(),
                        changes_delivered: core.delivered(),
                    });
                });
            }
        });
    }

    /// Every live query as a record, sorted by id. See
    /// [`for_each_live_query`](Self::for_each_live_query).
    pub fn live_query_records(&self) -> Vec<LiveQueryRecord> {
        let expected = self.index.with_directory(|directory| {
            directory
                .routes()
                .map(|route| route.subscription_count())
                .sum::<usize>()
        });
        // A little headroom for subscriptions added during the walk.
        let mut records = Vec::with_capacity(expected + expected / 16);
        self.for_each_live_query(|record| records.push(record));
        records.sort_by_key(|record| record.live_query_id);
        records
    }
}
