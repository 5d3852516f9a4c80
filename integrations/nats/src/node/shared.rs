//! The state a node's tasks share (the apply loop, the health watch, the sync loop and the
//! bridge's own calls): the connection, the stream and buckets, the counters and the
//! errors kept. Apart from the tasks, so that each of them depends on this file and none
//! on another.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv, stream};
use livecore::{ConnectionsManager, LiveQueryId, SeqId, SubscriptionPhase, TableId, TableSchema};
use tokio::sync::watch;

use crate::config::NodeConfig;
use crate::error::BridgeError;

#[derive(Default)]
pub(super) struct Counters {
    pub(super) applied_stream_seq: AtomicU64,
    pub(super) stream_last_seq: AtomicU64,
    pub(super) commits_applied: AtomicU64,
    pub(super) schemas_applied: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) decode_errors: AtomicU64,
    pub(super) apply_errors: AtomicU64,
    pub(super) gaps: AtomicU64,
    pub(super) resynced_subscriptions: AtomicU64,
    pub(super) consumer_restarts: AtomicU64,
    pub(super) sync_errors: AtomicU64,
    pub(super) stream_not_found: AtomicU64,
    pub(super) stream_resets: AtomicU64,
    pub(super) forced_reconnects: AtomicU64,
    pub(super) forced_reconnects_skipped: AtomicU64,
    pub(super) resume_retries: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(super) struct Inner {
    pub(super) config: NodeConfig,
    pub(super) manager: Arc<ConnectionsManager>,
    pub(super) client: async_nats::Client,
    pub(super) js: jetstream::Context,
    pub(super) stream: stream::Stream,
    pub(super) schemas: kv::Store,
    pub(super) records: kv::Store,
    pub(super) counters: Counters,
    /// The last applied commit's SeqId, readable without the apply state.
    pub(super) applied_seq: AtomicU64,
    pub(super) has_applied_seq: AtomicBool,
    pub(super) applied_tx: watch::Sender<u64>,
    /// True while applying is paused
    /// ([`NodeBridge::pause_apply`](super::NodeBridge::pause_apply)).
    pub(super) paused: watch::Sender<bool>,
    pub(super) errors: Mutex<VecDeque<BridgeError>>,
    pub(super) started_ms: u64,
    /// When the bridge started: what `end_seen_ms` counts from.
    pub(super) epoch: Instant,
    /// Milliseconds after `epoch` when the stream's end was last seen (its info, or a
    /// delivery's pending count).
    pub(super) end_seen_ms: AtomicU64,
    /// The stream was found missing (JetStream 10059) and not seen since.
    pub(super) stream_missing: AtomicBool,
    /// Requests on the stream that went unanswered in a row.
    pub(super) silent_failures: AtomicU32,
    /// When the stream the node reads was created (its info's `created`): a stream deleted
    /// and created again under the same name has another.
    pub(super) stream_created: Mutex<async_nats::datetime::DateTime>,
    /// The stream was found deleted and created again under the same name
    /// ([`BridgeError::StreamReset`]): the node's position is in the old stream, so its lag
    /// is unknown for as long as it runs.
    pub(super) stream_reset: AtomicBool,
    /// The keys of this node's records the last failover pass read in key-value: the
    /// heartbeat loop then writes again those missing, without reading them itself.
    pub(super) present_keys: Mutex<Option<HashSet<String>>>,
    /// Records written to key-value: live query -> (status, last heartbeat written).
    pub(super) written: Mutex<HashMap<LiveQueryId, (SubscriptionPhase, u64)>>,
    /// Schemas by table and version, as met (registered, or read for a resume): versions
    /// never change, so a resume compares a commit's version with the subscription's
    /// schema without asking the bucket again.
    pub(super) known_schemas: Mutex<HashMap<(TableId, u64), TableSchema>>,
}

pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    /// How long a consumer (the apply loop's, a replay's) may deliver nothing while the
    /// stream holds more before the node looks at the stream itself: a few idle
    /// heartbeats (which keep a consumer alive that delivers nothing), at least the
    /// request timeout.
    pub(super) fn consumer_silence(&self) -> Duration {
        (self.config.consumer_heartbeat * 4).max(self.config.connection.request_timeout)
    }

    pub(super) fn applied_seq(&self) -> Option<SeqId> {
        self.has_applied_seq
            .load(Ordering::Acquire)
            .then(|| SeqId(self.applied_seq.load(Ordering::Acquire)))
    }

    pub(super) fn report(&self, error: BridgeError) {
        let counter = match &error {
            BridgeError::Decode { .. } => &self.counters.decode_errors,
            BridgeError::ChainBroken { .. } | BridgeError::Lost { .. } => &self.counters.gaps,
            BridgeError::Apply { .. } | BridgeError::SchemaVersion { .. } => {
                &self.counters.apply_errors
            }
            BridgeError::StreamNotFound { .. } => &self.counters.stream_not_found,
            BridgeError::StreamReset { .. } => &self.counters.stream_resets,
            _ => &self.counters.sync_errors,
        };
        bump(counter);
        let mut errors = lock(&self.errors);
        if errors.len() >= self.config.max_kept_errors {
            errors.pop_front();
        }
        errors.push_back(error);
    }
}
