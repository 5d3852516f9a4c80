//! Manager-wide counters. Publishers add to them once per publish (not once per delivery);
//! receivers add the gaps they report and the deliveries they discard.

use crate::sync::{AtomicU64, Ordering};

/// The live counters behind [`RegistryStats`].
#[derive(Default)]
pub(crate) struct StatsCounters {
    pub(crate) published: AtomicU64,
    pub(crate) published_changes: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) discarded: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
    pub(crate) buffered: AtomicU64,
    pub(crate) covered_by_snapshot: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) snapshot_batches: AtomicU64,
    pub(crate) filter_evaluations: AtomicU64,
}

impl StatsCounters {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        if amount > 0 {
            counter.fetch_add(amount, Ordering::Relaxed);
        }
    }

    /// Adds the drops of one publish (or one gate flush): once per publish, not per
    /// dropped delivery, so an overloaded publisher does not bounce this line per drop.
    /// Counts `dropped` deliveries, `closed` of them because their receiver was gone.
    pub(crate) fn add_drops(&self, dropped: usize, closed: usize) {
        Self::add(&self.dropped, (dropped - closed) as u64);
        Self::add(&self.dropped_closed, closed as u64);
    }

    /// A snapshot of the counters; the caller fills in the gauges.
    pub(crate) fn snapshot(&self, connections: usize, subscriptions: usize) -> RegistryStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RegistryStats {
            connections,
            subscriptions,
            published: read(&self.published),
            published_changes: read(&self.published_changes),
            delivered: read(&self.delivered),
            discarded: read(&self.discarded),
            dropped: read(&self.dropped),
            dropped_closed: read(&self.dropped_closed),
            buffered: read(&self.buffered),
            covered_by_snapshot: read(&self.covered_by_snapshot),
            gaps: read(&self.gaps),
            resyncs: read(&self.resyncs),
            snapshot_batches: read(&self.snapshot_batches),
            filter_evaluations: read(&self.filter_evaluations),
            topic_messages: 0,
            topic_write_failures: 0,
            consume_parks: 0,
        }
    }
}

/// Manager-wide statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RegistryStats {
    /// Registered connections.
    pub connections: usize,
    /// Registered subscriptions.
    pub subscriptions: usize,
    /// Commits published.
    pub published: u64,
    /// Changes published (all commits' changes).
    pub published_changes: u64,
    /// Deliveries enqueued into channels.
    pub delivered: u64,
    /// Of `delivered`, those no consumer received: still queued (or held behind a
    /// load-complete marker) when their subscription ended or was removed (unsubscribe,
    /// revoke, an ALTER that closed it, a resync), when the connection closed
    /// (unregistered, shut down), or when the receiver was dropped.
    ///
    /// Counted by the receiver, when it next looks (a receive, or its drop): a host that
    /// unregisters a connection and never receives from it again sees them counted when
    /// the receiver is dropped. A connection cut off as a slow consumer keeps its channel
    /// full until it is unregistered or its receiver dropped (what the receiver had taken
    /// out of the channel is counted at the cut-off, the channel's content then). Once
    /// every receiver has looked, `delivered - discarded` is what consumers received as
    /// change notifications, but for one case: a publish (or a completed load's held
    /// changes) racing the receiver's drop can enqueue a delivery after the receiver's
    /// last look, which stays counted in `delivered` alone (flume cannot close a channel
    /// from the receiving side and still read it).
    pub discarded: u64,
    /// Deliveries dropped because a channel was full.
    pub dropped: u64,
    /// Deliveries dropped because a receiver was gone.
    pub dropped_closed: u64,
    /// Changes buffered behind gates (in total).
    pub buffered: u64,
    /// Changes dropped at a gate because the snapshot covered them.
    pub covered_by_snapshot: u64,
    /// Gap notices handed to consumers.
    pub gaps: u64,
    /// Subscriptions closed with `ResyncRequired`: their gate buffer overflowed, their
    /// table's schema changed while they loaded (one whose query no longer compiles is
    /// closed with `SchemaChanged` instead, and not counted here), or the host lost
    /// commits of their table (`resync_table`).
    pub resyncs: u64,
    /// Snapshot batches delivered.
    pub snapshot_batches: u64,
    /// Filter evaluations made while publishing.
    pub filter_evaluations: u64,
    /// Messages appended to topics (from routes and direct publishes).
    pub topic_messages: u64,
    /// Topic messages that could not be written (store errors, broken routes).
    pub topic_write_failures: u64,
    /// Times a topic consume parked, waiting for a message.
    pub consume_parks: u64,
}
