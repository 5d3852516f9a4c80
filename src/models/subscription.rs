//! Subscription models: the routing handle the index holds, the shared core a delivery
//! carries, the full state a connection keeps, and the results and statistics users read.

use crate::flow_control::SubscriptionFlowControl;
use crate::models::connection::SharedConnectionState;
use crate::models::ids::{ConnectionId, LiveQueryId, SeqId, SubscriptionId, TableId, UserKey};
use crate::query::CompiledQuery;
use crate::sync::{Arc, AtomicBool, AtomicU64, DataArc, Ordering};

/// The part of a subscription every delivery shares: identity, compiled query, gate and
/// counters. It holds no reference to the connection or its channel, so a queued delivery
/// never keeps a channel alive.
pub(crate) struct SubscriptionCore {
    pub(crate) id: SubscriptionId,
    pub(crate) connection_id: ConnectionId,
    pub(crate) query: DataArc<CompiledQuery>,
    pub(crate) owner: Option<UserKey>,
    pub(crate) flow: SubscriptionFlowControl,
    pub(crate) options: SubscriptionOptions,
    pub(crate) created_at_ms: u64,
    /// Deliveries attempted (sent or dropped); the number of the latest attempt.
    attempted: AtomicU64,
    dropped: AtomicU64,
    /// The highest attempt number that was dropped.
    dropped_upto: AtomicU64,
    last_update_ms: AtomicU64,
    /// Receiver side: the last delivery number and SeqId handed to the consumer.
    rx_number: AtomicU64,
    rx_seq: AtomicU64,
    /// True while the connection's attention list holds this subscription for a gap.
    in_attention: AtomicBool,
    /// Set when the host unsubscribed it: nothing more of it, not even a notice, reaches
    /// the consumer.
    removed: AtomicBool,
}

/// "No SeqId delivered yet", stored in `rx_seq`.
const NO_SEQ: u64 = u64::MAX;

impl SubscriptionCore {
    pub(crate) fn new(
        id: SubscriptionId,
        connection_id: ConnectionId,
        query: DataArc<CompiledQuery>,
        owner: Option<UserKey>,
        flow: SubscriptionFlowControl,
        options: SubscriptionOptions,
        now_ms: u64,
    ) -> Self {
        Self {
            id,
            connection_id,
            query,
            owner,
            flow,
            options,
            created_at_ms: now_ms,
            attempted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_upto: AtomicU64::new(0),
            last_update_ms: AtomicU64::new(now_ms),
            rx_number: AtomicU64::new(0),
            rx_seq: AtomicU64::new(NO_SEQ),
            in_attention: AtomicBool::new(false),
            removed: AtomicBool::new(false),
        }
    }

    /// The same subscription recompiled for a new schema version: it keeps its id and
    /// counters, and numbering continues, so the receiver sees no gap. The old core stays
    /// live for deliveries already queued, which it renders with the old projection.
    pub(crate) fn successor(&self, query: DataArc<CompiledQuery>) -> Self {
        let attempted = self.attempted.load(Ordering::SeqCst);
        let successor = Self::new(
            self.id,
            self.connection_id,
            query,
            self.owner,
            self.flow.live_successor(),
            self.options.clone(),
            self.last_update_ms.load(Ordering::Relaxed),
        );
        let mut successor = successor;
        successor.created_at_ms = self.created_at_ms;
        successor.attempted.store(attempted, Ordering::SeqCst);
        successor
            .dropped
            .store(self.dropped.load(Ordering::Relaxed), Ordering::Relaxed);
        successor.rx_number.store(attempted, Ordering::SeqCst);
        successor
            .rx_seq
            .store(self.rx_seq.load(Ordering::Acquire), Ordering::Release);
        successor
    }

    /// Ends the subscription at the host's request: the gate closes and the receiver drops
    /// whatever is still queued for it, notices included.
    pub(crate) fn remove(&self) {
        self.removed.store(true, Ordering::Release);
        self.flow.close();
    }

    /// True once the host removed it.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn live_query_id(&self) -> LiveQueryId {
        LiveQueryId::new(self.connection_id, self.id)
    }

    /// Takes the number of the next delivery attempt. Attempts for one subscription are
    /// serialized (one table's commits are published in order, and the gate's lock orders
    /// the flush), so numbers reach the channel in order.
    #[inline]
    pub(crate) fn next_attempt(&self) -> u64 {
        self.attempted.fetch_add(1, Ordering::Relaxed) + 1
    }

    #[inline]
    pub(crate) fn record_delivered(&self, now_ms: u64) {
        self.last_update_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Records a dropped attempt.
    pub(crate) fn record_dropped(&self, number: u64) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.dropped_upto.fetch_max(number, Ordering::SeqCst);
    }

    /// True the first time after the attention slot was released.
    pub(crate) fn take_attention_slot(&self) -> bool {
        !self.in_attention.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn release_attention_slot(&self) {
        self.in_attention.store(false, Ordering::SeqCst);
    }

    pub(crate) fn dropped_upto(&self) -> u64 {
        self.dropped_upto.load(Ordering::SeqCst)
    }

    /// Receiver side: the last delivery number handed out.
    pub(crate) fn received_number(&self) -> u64 {
        self.rx_number.load(Ordering::Acquire)
    }

    /// Receiver side: the last SeqId handed out, if any.
    pub(crate) fn received_seq(&self) -> Option<SeqId> {
        match self.rx_seq.load(Ordering::Acquire) {
            NO_SEQ => None,
            seq => Some(SeqId(seq)),
        }
    }

    /// Receiver side: records what was handed out (or skipped over as a gap).
    pub(crate) fn mark_received(&self, number: u64, seq: Option<SeqId>) {
        self.rx_number.store(number, Ordering::Release);
        if let Some(seq) = seq {
            self.rx_seq.store(seq.0, Ordering::Release);
        }
    }

    /// Deliveries enqueued (attempted minus dropped).
    pub(crate) fn delivered(&self) -> u64 {
        let attempted = self.attempted.load(Ordering::Relaxed);
        attempted.saturating_sub(self.dropped.load(Ordering::Relaxed))
    }

    /// The clock reading of the publish that last delivered to it.
    pub(crate) fn last_update_ms(&self) -> u64 {
        self.last_update_ms.load(Ordering::Relaxed)
    }

    /// Where the subscription is in its life.
    pub(crate) fn phase(&self) -> SubscriptionPhase {
        if self.flow.is_closed() {
            SubscriptionPhase::Closed
        } else if self.flow.is_live() {
            SubscriptionPhase::Live
        } else {
            SubscriptionPhase::Loading
        }
    }

    pub(crate) fn stats(&self) -> SubscriptionStats {
        SubscriptionStats {
            delivered: self.delivered(),
            dropped: self.dropped.load(Ordering::Relaxed),
            last_update_ms: self.last_update_ms(),
            last_received_seq: self.received_seq(),
            buffered: self.flow.buffered_len(),
        }
    }
}

/// What the routing index holds for one subscription: its shared core and its connection.
/// Lightweight (two pointers); cloned only when an index bucket is rewritten.
#[derive(Clone)]
pub struct SubscriptionHandle {
    pub(crate) core: Arc<SubscriptionCore>,
    pub(crate) connection: SharedConnectionState,
}

impl SubscriptionHandle {
    /// The live query this handle routes to.
    pub fn live_query_id(&self) -> LiveQueryId {
        self.core.live_query_id()
    }
}

/// How a subscription starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Start gated: the host sets the snapshot boundary, sends the snapshot (itself or
    /// through livecore), then completes the initial load.
    pub initial_load: bool,
    /// Rows per snapshot batch when the snapshot goes through livecore.
    pub batch_size: usize,
    /// Resume after this SeqId (the client's last): the host replays what the client
    /// missed, then completes the load, or declares resume unavailable.
    pub resume_from: Option<SeqId>,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            initial_load: false,
            batch_size: 1000,
            resume_from: None,
        }
    }
}

impl SubscriptionOptions {
    /// Options for a subscription that loads an initial snapshot.
    pub fn with_initial_load() -> Self {
        Self {
            initial_load: true,
            ..Self::default()
        }
    }

    /// Options for a subscription resuming after `seq`.
    pub fn resume_from(seq: SeqId) -> Self {
        Self {
            resume_from: Some(seq),
            ..Self::default()
        }
    }

    /// True when the subscription starts gated.
    pub fn starts_gated(&self) -> bool {
        self.initial_load || self.resume_from.is_some()
    }
}

/// The full state of one subscription, kept by its connection.
pub struct SubscriptionState {
    pub(crate) core: Arc<SubscriptionCore>,
    /// Snapshot batches and rows delivered through livecore so far.
    pub(crate) snapshot_batches: u32,
    pub(crate) snapshot_rows: u64,
}

impl SubscriptionState {
    pub(crate) fn registered(&self, connection: &SharedConnectionState) -> RegisteredSubscription {
        let core = &self.core;
        RegisteredSubscription {
            live_query_id: core.live_query_id(),
            table_id: core.query.schema.table_id.clone(),
            query: core.query.text.to_string(),
            user: connection.user().map(|user| user.user_id.to_string()),
            options: core.options.clone(),
            created_at_ms: core.created_at_ms,
            state: core.phase(),
            stats: core.stats(),
        }
    }
}

/// Where a subscription is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionPhase {
    /// Gated: its initial load (or resume replay) runs.
    Loading,
    /// Receiving changes as they are published.
    Live,
    /// Ended (resync required, resume unavailable, schema change); awaiting unsubscribe.
    Closed,
}

/// Per-subscription counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// Deliveries enqueued into the connection's channel.
    pub delivered: u64,
    /// Deliveries dropped (channel full or closed).
    pub dropped: u64,
    /// The clock reading of the publish that last delivered to it (ms).
    pub last_update_ms: u64,
    /// The last SeqId its receiver handed to the consumer.
    pub last_received_seq: Option<SeqId>,
    /// Changes buffered behind its gate now.
    pub buffered: usize,
}

/// The outcome of subscribing.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionResult {
    /// The new live query's id.
    pub live_query_id: LiveQueryId,
    /// The projected schema: the column names each delivered row carries, in order.
    pub columns: Vec<String>,
    /// True when the subscription starts gated and waits for its load to complete.
    pub gated: bool,
    /// The SeqId it resumes after, when resuming.
    pub resume_from: Option<SeqId>,
}

/// A subscription as the manager lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisteredSubscription {
    /// Its id.
    pub live_query_id: LiveQueryId,
    /// Its table.
    pub table_id: TableId,
    /// Its query, as SQL.
    pub query: String,
    /// The connection's user, if authenticated.
    pub user: Option<String>,
    /// How it was opened.
    pub options: SubscriptionOptions,
    /// When it was created (ms, manager clock).
    pub created_at_ms: u64,
    /// Where it is in its life.
    pub state: SubscriptionPhase,
    /// Its counters.
    pub stats: SubscriptionStats,
}

/// Manager-wide statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// Subscriptions closed because their gate buffer overflowed.
    pub resyncs: u64,
    /// Snapshot batches delivered.
    pub snapshot_batches: u64,
    /// Filter evaluations made while publishing.
    pub filter_evaluations: u64,
}
