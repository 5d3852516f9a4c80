//! Failover: cleaning up after nodes that went away.
//!
//! In a cluster each node runs its own livecore, and the host keeps a replicated record of
//! every live query ([`LiveQueryRecord`]). Given those records, the set of active nodes
//! and a staleness bound, the [`FailoverHandler`] reports which live queries belong to
//! offline nodes (the host deletes their records), which are stale on active nodes (no sign
//! of life from their connection within the bound), and removes the stale ones that are
//! local to this node. It is pure and deterministic given its inputs and the clock reading
//! it is handed; removal goes through a callback, so its failures are reported too.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::LiveError;
use crate::manager::records::LiveQueryRecord;
use crate::manager::ConnectionsManager;
use crate::types::ending::{CloseReason, SubscriptionEnding};
use crate::types::ids::{LiveQueryId, NodeId};

/// Decides what to clean up after node failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverHandler {
    local_node: NodeId,
    stale_after_ms: u64,
}

/// What a failover pass found and did. `orphaned` and `stale` are sorted by (node, live
/// query id); `removed` and `failed` (this node's only) by live query id.
///
/// A [`LiveQueryId`] is unique on its node only: every node numbers its own connections, so
/// the host keys its replicated records by (node id, live query id).
///
/// `E` is the error type of the removal callback: [`LiveError`] for
/// [`run_on`](FailoverHandler::run_on), the host's own for [`run`](FailoverHandler::run).
#[derive(Clone, Debug, PartialEq)]
pub struct FailoverReport<E = LiveError> {
    /// Live queries of nodes that are not active: delete their records.
    pub orphaned: Vec<LiveQueryRecord>,
    /// Live queries on active nodes whose connection showed no sign of life within the
    /// bound. Those of other nodes are left to those nodes; local ones are removed.
    pub stale: Vec<LiveQueryRecord>,
    /// Local stale live queries removed from this node.
    pub removed: Vec<LiveQueryId>,
    /// Local removals that failed, with why.
    pub failed: Vec<(LiveQueryId, E)>,
}

impl<E> Default for FailoverReport<E> {
    fn default() -> Self {
        Self {
            orphaned: Vec::new(),
            stale: Vec::new(),
            removed: Vec::new(),
            failed: Vec::new(),
        }
    }
}

impl FailoverHandler {
    /// A handler for `local_node` that calls a live query stale when its connection has
    /// been silent longer than `stale_after`.
    pub fn new(local_node: NodeId, stale_after: Duration) -> Self {
        Self {
            local_node,
            stale_after_ms: stale_after.as_millis() as u64,
        }
    }

    /// Classifies `records` at `now_ms` and removes local stale ones with `remove`. This
    /// node always counts as active. Records are keyed by (node, live query id); of two
    /// with the same key, the one with the latest heartbeat counts. A record is stale when `now_ms - last_heartbeat_ms`
    /// exceeds the bound (record clocks are each node's own, so keep node clocks roughly
    /// in step or choose the bound generously).
    pub fn run<E>(
        &self,
        records: &[LiveQueryRecord],
        active_nodes: &[NodeId],
        now_ms: u64,
        mut remove: impl FnMut(&LiveQueryRecord) -> Result<(), E>,
    ) -> FailoverReport<E> {
        let active: BTreeSet<NodeId> = active_nodes
            .iter()
            .copied()
            .chain(std::iter::once(self.local_node))
            .collect();
        let mut sorted: Vec<&LiveQueryRecord> = records.iter().collect();
        // A replicated view may hold two versions of one live query: the newest sign of
        // life wins, so each (node, id) is judged once whatever the input order.
        sorted.sort_by_key(|record| {
            (
                record.node_id,
                record.live_query_id,
                std::cmp::Reverse(record.last_heartbeat_ms),
            )
        });
        sorted.dedup_by_key(|record| (record.node_id, record.live_query_id));
        let mut report = FailoverReport::default();
        for record in sorted {
            if !active.contains(&record.node_id) {
                report.orphaned.push(record.clone());
                continue;
            }
            if now_ms.saturating_sub(record.last_heartbeat_ms) <= self.stale_after_ms {
                continue;
            }
            report.stale.push(record.clone());
            if record.node_id == self.local_node {
                match remove(record) {
                    Ok(()) => report.removed.push(record.live_query_id),
                    Err(reason) => report.failed.push((record.live_query_id, reason)),
                }
            }
        }
        // `removed` and `failed` are already in id order: `sorted` was walked in (node, id)
        // order, and only this node's records reach them.
        report
    }

    /// [`run`](Self::run) against this node's manager, at its clock's reading: local stale
    /// live queries end with `Closed { reason: Revoked }`, the reason saying how long their
    /// heartbeat has been silent, so a subscriber still reading is told rather than left
    /// waiting (one already gone counts as removed).
    pub fn run_on(
        &self,
        manager: &ConnectionsManager,
        records: &[LiveQueryRecord],
        active_nodes: &[NodeId],
    ) -> FailoverReport {
        let now_ms = manager.now_ms();
        self.run(records, active_nodes, now_ms, |record| {
            let silent_ms = now_ms.saturating_sub(record.last_heartbeat_ms);
            let ending = SubscriptionEnding::Closed(CloseReason::Revoked {
                reason: format!(
                    "stale: no heartbeat for {silent_ms} ms (the failover bound is {} ms)",
                    self.stale_after_ms
                ),
            });
            match manager.end_live_query(record.live_query_id, ending) {
                Ok(_)
                | Err(LiveError::UnknownSubscription(_))
                | Err(LiveError::UnknownConnection(_))
                | Err(LiveError::ShuttingDown) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }
}
