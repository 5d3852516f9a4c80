//! Publishing, from the manager's side: the host's entry points. The path itself (resolve,
//! route, filter, gate, send) is `crate::publish`; this file lends it the manager's index,
//! counters and policy, and feeds topic routes after the live deliveries.

use crate::error::LiveResult;
use crate::manager::ConnectionsManager;
use crate::publish::{PublishSummary, Publisher};
use crate::route::index::TableRoute;
use crate::types::change::{ChangeNotification, Commit};
use crate::types::ids::{SeqId, TableKey};

impl ConnectionsManager {
    /// Publishes one change as its own commit. See [`publish_commit`](Self::publish_commit).
    pub fn publish(&self, seq: SeqId, change: ChangeNotification) -> LiveResult<PublishSummary> {
        self.publish_commit(seq, vec![change])
    }

    /// Publishes the changes of one commit, numbered `seq`.
    ///
    /// The engine publishes each table's commits in ascending SeqId order, one at a time;
    /// livecore does not reorder them. Every change is validated first (known table, row
    /// lengths, an owner on user-scoped tables, an old row on updates): an invalid commit
    /// is refused whole and nothing is delivered. Each matching subscription then receives
    /// one delivery holding all the commit's changes it matched, in commit order.
    ///
    /// Changes that match a topic route are appended to its topic (one message per change,
    /// each carrying `seq`). A failed topic write does not fail the publish — the live
    /// deliveries are made either way — but it is never silent: it is counted in the
    /// summary's `topic_write_failures`, in the topic's counters with its error, and in
    /// [`RegistryStats`](crate::RegistryStats).
    pub fn publish_commit(
        &self,
        seq: SeqId,
        changes: Vec<ChangeNotification>,
    ) -> LiveResult<PublishSummary> {
        self.publish_routed(seq, changes, None)
    }

    /// [`publish_commit`](Self::publish_commit) with each change's table key already known
    /// (the C ABI's), so routing skips the lookup by table name. `keys[i]` is the key of
    /// `changes[i]`'s table; a key that does not name that table is `UnknownTable`. Absent
    /// from loom builds, as the C ABI is.
    #[cfg(not(livecore_loom))]
    pub(crate) fn publish_commit_keyed(
        &self,
        seq: SeqId,
        changes: Vec<ChangeNotification>,
        keys: &[TableKey],
    ) -> LiveResult<PublishSummary> {
        self.publish_routed(seq, changes, Some(keys))
    }

    fn publish_routed(
        &self,
        seq: SeqId,
        changes: Vec<ChangeNotification>,
        keys: Option<&[TableKey]>,
    ) -> LiveResult<PublishSummary> {
        let publisher = Publisher {
            index: &self.index,
            stats: &self.stats,
            slow_consumer_policy: self.config.slow_consumer_policy,
            ready_queue: self.config.ready_queue,
            reap: &self.reap,
        };
        let now_ms = self.clock.now_ms();
        let summary = if !self.topics.is_routed() {
            publisher.publish_commit(seq, changes, keys, now_ms, None)
        } else {
            let mut feed = |commit: &Commit,
                            tables: &mut dyn Iterator<Item = &TableRoute>,
                            summary: &mut PublishSummary| {
                self.feed_topics(commit, tables, now_ms, summary)
            };
            publisher.publish_commit(seq, changes, keys, now_ms, Some(&mut feed))
        };
        // Once per commit that dropped deliveries (full channels), never per delivery:
        // with the Disconnect policy those subscribers' connections are being closed.
        #[cfg(feature = "tracing")]
        if let Ok(summary) = &summary {
            if summary.dropped > 0 || summary.topic_write_failures > 0 {
                tracing::warn!(
                    seq = seq.0,
                    dropped = summary.dropped,
                    topic_write_failures = summary.topic_write_failures,
                    policy = ?self.config.slow_consumer_policy,
                    "livecore: slow consumers: deliveries dropped"
                );
            }
        }
        summary
    }
}
