//! A front node's bridge: applies the commit stream to the node's manager, serves resumes
//! from the stream, and keeps the node's records and heartbeat in key-value.

use std::collections::HashSet;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use livecore::{
    ConnectionId, ConnectionsManager, FailoverHandler, FailoverReport, LiveError, LiveQueryId,
    LiveQueryRecord, NodeId, QuerySpec, SeqId, SubscriptionOptions, SubscriptionPhase,
    SubscriptionResult, TableId, TableSchema,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{
    backoff, connect, consumer_failure, ensure_bucket, ensure_stream, info_failure, jetstream,
    read_prefix, read_prefix_entries, schema_key, stream_tail, Failure,
};
use crate::codec::{self, CommitMessage, Heartbeat, SchemaMessage, StreamEntry};
use crate::config::{NodeConfig, StartFrom};
use crate::error::{BridgeError, NatsResult};

/// A node's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// The last stream sequence applied (or skipped with an error).
    pub applied_stream_seq: u64,
    /// The last commit applied.
    pub applied_seq: Option<SeqId>,
    /// The stream's last sequence as last seen.
    pub stream_last_seq: u64,
    /// Stream messages not yet applied: `stream_last_seq - applied_stream_seq`; None when
    /// unknown: the stream is missing ([`BridgeError::StreamNotFound`]), it was deleted
    /// and created again under the same name ([`BridgeError::StreamReset`]: until the node
    /// is started again), or the node has not seen the stream's end for
    /// [`NodeConfig::stream_end_stale_after`](crate::NodeConfig::stream_end_stale_after)
    /// (its server hung or unreachable), so `stream_last_seq` may be long past.
    pub lag: Option<u64>,
    /// Commits applied.
    pub commits_applied: u64,
    /// Schema changes applied.
    pub schemas_applied: u64,
    /// Commits at or below the last applied SeqId, not applied again.
    pub duplicates: u64,
    /// Messages that could not be decoded.
    pub decode_errors: u64,
    /// Messages livecore refused, or that named a schema the node could not get.
    pub apply_errors: u64,
    /// Breaks in the commit chain or stream sequences: commits the node never saw.
    pub gaps: u64,
    /// Times the stream consumer was recreated (server loss, reconnect, silence).
    pub consumer_restarts: u64,
    /// Times the node's NATS connection was re-established after it was lost (to the
    /// same server or another).
    pub reconnects: u64,
    /// Errors of the record sync and heartbeat loop.
    pub sync_errors: u64,
    /// Episodes of the stream found missing ([`BridgeError::StreamNotFound`], one per
    /// episode).
    pub stream_not_found: u64,
    /// Times the stream was found deleted and created again under the same name
    /// ([`BridgeError::StreamReset`], one per new stream).
    pub stream_resets: u64,
    /// Reconnects the node asked for after
    /// [`NodeConfig::reconnect_after_failures`](crate::NodeConfig::reconnect_after_failures)
    /// requests on the stream in a row went unanswered (also counted in `reconnects` once
    /// the client connected again).
    pub forced_reconnects: u64,
}

#[derive(Default)]
struct Counters {
    applied_stream_seq: AtomicU64,
    stream_last_seq: AtomicU64,
    commits_applied: AtomicU64,
    schemas_applied: AtomicU64,
    duplicates: AtomicU64,
    decode_errors: AtomicU64,
    apply_errors: AtomicU64,
    gaps: AtomicU64,
    consumer_restarts: AtomicU64,
    sync_errors: AtomicU64,
    stream_not_found: AtomicU64,
    stream_resets: AtomicU64,
    forced_reconnects: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A table's schema version on this node; `provisional` when loaded from key-value at
/// start rather than met in the stream (a commit naming an older version then wins).
#[derive(Clone, Copy, Debug)]
struct TableVersion {
    version: u64,
    provisional: bool,
}

/// What the apply loop owns.
struct ApplyState {
    applied_seq: Option<SeqId>,
    versions: HashMap<TableId, TableVersion>,
    /// Stream messages were reported [`BridgeError::Lost`] since the last commit: the next
    /// commit's broken chain is that same hole, not another one.
    lost_reported: bool,
}

struct Inner {
    config: NodeConfig,
    manager: Arc<ConnectionsManager>,
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    schemas: kv::Store,
    records: kv::Store,
    counters: Counters,
    /// The last applied commit's SeqId, readable without the apply state.
    applied_seq: AtomicU64,
    has_applied_seq: AtomicBool,
    applied_tx: watch::Sender<u64>,
    /// True while applying is paused ([`NodeBridge::pause_apply`]).
    paused: watch::Sender<bool>,
    errors: Mutex<VecDeque<BridgeError>>,
    started_ms: u64,
    /// When the bridge started: what `end_seen_ms` counts from.
    epoch: Instant,
    /// Milliseconds after `epoch` when the stream's end was last seen (its info, or a
    /// delivery's pending count).
    end_seen_ms: AtomicU64,
    /// The stream was found missing (JetStream 10059) and not seen since.
    stream_missing: AtomicBool,
    /// Requests on the stream that went unanswered in a row.
    silent_failures: AtomicU32,
    /// When the stream the node reads was created (its info's `created`): a stream deleted
    /// and created again under the same name has another.
    stream_created: Mutex<async_nats::datetime::DateTime>,
    /// The stream was found deleted and created again under the same name
    /// ([`BridgeError::StreamReset`]): the node's position is in the old stream, so its lag
    /// is unknown for as long as it runs.
    stream_reset: AtomicBool,
    /// The keys of this node's records the last failover pass read in key-value: the
    /// heartbeat loop then writes again those missing, without reading them itself.
    present_keys: Mutex<Option<HashSet<String>>>,
    /// Records written to key-value: live query -> (status, last heartbeat written).
    written: Mutex<HashMap<LiveQueryId, (SubscriptionPhase, u64)>>,
    /// Schemas by table and version, as met (registered, or read for a resume): versions
    /// never change, so a resume compares a commit's version with the subscription's
    /// schema without asking the bucket again.
    known_schemas: Mutex<HashMap<(TableId, u64), TableSchema>>,
}

/// One front node's bridge. Dropping it stops its tasks.
pub struct NodeBridge {
    inner: Arc<Inner>,
    apply_task: JoinHandle<()>,
    watch_task: JoinHandle<()>,
    sync_task: Mutex<Option<JoinHandle<()>>>,
}

/// What a resume did.
#[derive(Clone, Debug, PartialEq)]
pub enum ResumeOutcome {
    /// The client got every commit after its SeqId; the subscription is live.
    Resumed {
        /// The subscription.
        subscription: SubscriptionResult,
        /// Commits replayed from the stream that matched.
        replayed: u64,
    },
    /// The stream no longer holds every commit after the client's SeqId: the client got
    /// `ResumeUnavailable` and must resubscribe with a snapshot.
    Unavailable {
        /// The ended subscription.
        live_query_id: LiveQueryId,
    },
}

/// What a replay gave the client: commits that matched.
#[derive(Clone, Copy, Debug, Default)]
struct Replayed {
    count: u64,
}

/// How often a resume retries a client's full channel.
const STALL_POLL: Duration = Duration::from_millis(2);

/// What a failover pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FailoverOutcome {
    /// The nodes counted active (heartbeat within the bound), this one included.
    pub active_nodes: Vec<NodeId>,
    /// livecore's report.
    pub report: FailoverReport,
    /// Records of offline nodes deleted from key-value.
    pub deleted_records: usize,
    /// Records of offline nodes left in key-value because they were written again since
    /// this pass read them (their node came back): a record is deleted only at the
    /// revision read. A record found changed is read again, and counted here only if it
    /// still holds a value.
    pub kept_records: usize,
    /// Records of offline nodes already gone when this pass deleted them (another
    /// survivor's pass deleted them since this one read them): neither deleted by this
    /// pass nor kept.
    pub already_deleted_records: usize,
}

pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn record_key(record: &LiveQueryRecord) -> String {
    live_query_key(record.node_id, record.live_query_id)
}

fn live_query_key(node: NodeId, id: LiveQueryId) -> String {
    format!(
        "lq.{}.{}.{}",
        node.0, id.connection_id.0, id.subscription_id.0
    )
}

fn heartbeat_key(node: NodeId) -> String {
    format!("node.{}", node.0)
}

impl NodeBridge {
    /// Connects the node's manager to the cluster: opens (or creates) the stream and
    /// buckets, registers the tables' current schemas, and starts applying the stream
    /// (from its end, or its start, per [`NodeConfig::start`]) and the heartbeat loop.
    pub async fn start(
        manager: Arc<ConnectionsManager>,
        config: NodeConfig,
    ) -> Result<Self, BridgeError> {
        if manager.config().node_id != config.node_id {
            return Err(BridgeError::InvalidConfig(format!(
                "node_id {} differs from the manager's {}",
                config.node_id,
                manager.config().node_id
            )));
        }
        if config.batch == 0
            || config.heartbeat_interval.is_zero()
            || config.stream_end_stale_after.is_zero()
            || config.reconnect_after_failures == 0
        {
            return Err(BridgeError::InvalidConfig(
                "batch, heartbeat_interval, stream_end_stale_after and \
                 reconnect_after_failures must be above zero"
                    .into(),
            ));
        }
        let client = connect(&config.connection).await?;
        let js = jetstream(client.clone(), &config.connection);
        let mut stream = ensure_stream(&js, &config.stream).await?;
        let schemas = ensure_bucket(&js, &config.stream, &config.stream.schema_bucket).await?;
        let records = ensure_bucket(&js, &config.stream, &config.stream.records_bucket).await?;
        let info = stream.info().await.nats("reading stream info")?.clone();
        let mut state = ApplyState {
            applied_seq: None,
            versions: HashMap::new(),
            lost_reported: false,
        };
        let applied_stream_seq;
        let mut undecodable = Vec::new();
        let mut known_schemas = HashMap::new();
        if config.start == StartFrom::Latest {
            // After the stream's last message. Undecodable messages at its end are skipped
            // and reported (as a running node does); the last one that decodes tells the
            // last commit, for the chain check.
            applied_stream_seq = info.state.last_sequence;
            let tail = stream_tail(&stream, &info.state).await?;
            state.applied_seq = tail.last_commit.flatten();
            undecodable = tail.undecodable;
        } else if info.state.messages > 0 {
            // From the first message the stream holds: what retention removed before this
            // node existed was never this node's to apply (not Lost).
            applied_stream_seq = info.state.first_sequence.saturating_sub(1);
        } else {
            // Nothing retained: from the next message appended.
            applied_stream_seq = info.state.last_sequence;
        }
        if config.start == StartFrom::Latest || info.state.messages == 0 {
            // The tables as they are now (from the schema bucket: the stream's schema
            // messages may have aged out); a commit still on an older version replaces them.
            let mut latest: HashMap<TableId, SchemaMessage> = HashMap::new();
            for (_, value) in
                read_prefix(&js, &schemas, "schema.", config.connection.request_timeout).await?
            {
                if let Ok(StreamEntry::Schema(message)) = codec::decode_stream_entry(&value) {
                    let newer = latest
                        .get(&message.schema.table_id)
                        .is_none_or(|known| known.version < message.version);
                    if newer {
                        latest.insert(message.schema.table_id.clone(), message);
                    }
                }
            }
            for (table, message) in latest {
                known_schemas.insert((table.clone(), message.version), message.schema.clone());
                manager.register_table(message.schema)?;
                state.versions.insert(
                    table,
                    TableVersion {
                        version: message.version,
                        provisional: true,
                    },
                );
            }
        }
        let (applied_tx, _) = watch::channel(applied_stream_seq);
        let inner = Arc::new(Inner {
            manager,
            client,
            js,
            stream,
            schemas,
            records,
            counters: Counters::default(),
            applied_seq: AtomicU64::new(state.applied_seq.map_or(0, |seq| seq.0)),
            has_applied_seq: AtomicBool::new(state.applied_seq.is_some()),
            applied_tx,
            paused: watch::channel(false).0,
            errors: Mutex::new(VecDeque::new()),
            started_ms: wall_ms(),
            epoch: Instant::now(),
            end_seen_ms: AtomicU64::new(0),
            stream_missing: AtomicBool::new(false),
            silent_failures: AtomicU32::new(0),
            stream_created: Mutex::new(info.created),
            stream_reset: AtomicBool::new(false),
            present_keys: Mutex::new(None),
            written: Mutex::new(HashMap::new()),
            known_schemas: Mutex::new(known_schemas),
            config,
        });
        for error in undecodable.into_iter().rev() {
            inner.report(error);
        }
        inner
            .counters
            .applied_stream_seq
            .store(applied_stream_seq, Ordering::Release);
        inner
            .counters
            .stream_last_seq
            .store(info.state.last_sequence, Ordering::Relaxed);
        let apply_task = tokio::spawn(apply_loop(inner.clone(), state));
        let watch_task = tokio::spawn(watch_loop(inner.clone()));
        let sync_task = tokio::spawn(sync_loop(inner.clone()));
        Ok(Self {
            inner,
            apply_task,
            watch_task,
            sync_task: Mutex::new(Some(sync_task)),
        })
    }

    /// The node's manager.
    pub fn manager(&self) -> &Arc<ConnectionsManager> {
        &self.inner.manager
    }

    /// The node's counters, lag included.
    pub fn stats(&self) -> NodeStats {
        let counters = &self.inner.counters;
        let applied = counters.applied_stream_seq.load(Ordering::Acquire);
        let last = counters
            .stream_last_seq
            .load(Ordering::Relaxed)
            .max(applied);
        NodeStats {
            applied_stream_seq: applied,
            applied_seq: self.inner.applied_seq(),
            stream_last_seq: last,
            lag: self.inner.lag_known().then(|| last - applied),
            commits_applied: counters.commits_applied.load(Ordering::Relaxed),
            schemas_applied: counters.schemas_applied.load(Ordering::Relaxed),
            duplicates: counters.duplicates.load(Ordering::Relaxed),
            decode_errors: counters.decode_errors.load(Ordering::Relaxed),
            apply_errors: counters.apply_errors.load(Ordering::Relaxed),
            gaps: counters.gaps.load(Ordering::Relaxed),
            consumer_restarts: counters.consumer_restarts.load(Ordering::Relaxed),
            // The client counts every connection it made, the first included.
            reconnects: self
                .inner
                .client
                .statistics()
                .connects
                .load(Ordering::Relaxed)
                .saturating_sub(1),
            sync_errors: counters.sync_errors.load(Ordering::Relaxed),
            stream_not_found: counters.stream_not_found.load(Ordering::Relaxed),
            stream_resets: counters.stream_resets.load(Ordering::Relaxed),
            forced_reconnects: counters.forced_reconnects.load(Ordering::Relaxed),
        }
    }

    /// The name of the NATS server the node is connected to now (its `server_name`), or
    /// None while it is disconnected.
    pub fn connected_server(&self) -> Option<String> {
        let client = &self.inner.client;
        (client.connection_state() == async_nats::connection::State::Connected)
            .then(|| client.server_info().server_name)
    }

    /// Stops applying the stream after the message in hand, keeping the node connected
    /// (clients, resumes and the heartbeat go on; the lag grows as the writer appends):
    /// for maintenance and tests. [`resume_apply`](Self::resume_apply) goes on from the
    /// next stream sequence; what retention removed meanwhile is reported as
    /// [`BridgeError::Lost`].
    pub fn pause_apply(&self) {
        self.inner.paused.send_replace(true);
    }

    /// Applies the stream again after [`pause_apply`](Self::pause_apply).
    pub fn resume_apply(&self) {
        self.inner.paused.send_replace(false);
    }

    /// Stream messages not yet applied; None when unknown (see [`NodeStats::lag`]).
    pub fn lag(&self) -> Option<u64> {
        self.stats().lag
    }

    /// The errors reported since the last call (at most
    /// [`NodeConfig::max_kept_errors`]; all are counted in [`stats`](Self::stats)).
    pub fn take_errors(&self) -> Vec<BridgeError> {
        lock(&self.inner.errors).drain(..).collect()
    }

    /// Waits until the node applied stream sequence `stream_seq`, at most `timeout`.
    /// Returns whether it did.
    pub async fn wait_applied(&self, stream_seq: u64, timeout: Duration) -> bool {
        let mut rx = self.inner.applied_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= stream_seq))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Subscribes a client that comes back with the last SeqId it received (from this
    /// node before a restart, or from another node): the commits it missed are replayed
    /// from the stream through livecore's resume protocol, then it goes live. When the
    /// stream no longer holds them all, the client gets `ResumeUnavailable`. A client that
    /// makes no room in its channel for [`NodeConfig::resume_stall_timeout`] ends the
    /// resume with [`BridgeError::ResumeStalled`] (and gets `ResumeUnavailable`).
    pub async fn resume(
        &self,
        connection_id: ConnectionId,
        spec: QuerySpec,
        last_seq: SeqId,
    ) -> Result<ResumeOutcome, BridgeError> {
        let subscription = self.inner.manager.subscribe(
            connection_id,
            spec,
            SubscriptionOptions::resume_from(last_seq),
        )?;
        self.replay_into(subscription, last_seq).await
    }

    /// As [`resume`](Self::resume), with the query as SQL.
    pub async fn resume_sql(
        &self,
        connection_id: ConnectionId,
        sql: &str,
        last_seq: SeqId,
    ) -> Result<ResumeOutcome, BridgeError> {
        let subscription = self.inner.manager.subscribe_sql(
            connection_id,
            sql,
            SubscriptionOptions::resume_from(last_seq),
        )?;
        self.replay_into(subscription, last_seq).await
    }

    async fn replay_into(
        &self,
        subscription: SubscriptionResult,
        last_seq: SeqId,
    ) -> Result<ResumeOutcome, BridgeError> {
        let id = subscription.live_query_id;
        match self.inner.replay(id, last_seq).await {
            // Completion never waits for room: a marker that finds the channel full goes
            // to the receiver out of band.
            Ok(Some(replayed)) => match self.inner.manager.complete_initial_load(id) {
                Ok(_) => Ok(ResumeOutcome::Resumed {
                    subscription,
                    replayed: replayed.count,
                }),
                Err(error) => {
                    let _ = self.inner.manager.resume_unavailable(id);
                    Err(error.into())
                }
            },
            Ok(None) => {
                self.inner.manager.resume_unavailable(id)?;
                Ok(ResumeOutcome::Unavailable { live_query_id: id })
            }
            Err(error) => {
                // The client must not wait on a gated subscription that will never open.
                let _ = self.inner.manager.resume_unavailable(id);
                Err(error)
            }
        }
    }

    /// Every live query of the cluster as key-value holds it (this node's fresh from its
    /// manager): a `system.live_queries` view, readable from any node. Other nodes' records
    /// are as of their last sync, and reach this reader through the bucket's replication:
    /// a record written a moment ago may be served by a replica that has not applied it
    /// yet, so the view can lag by that moment.
    pub async fn cluster_live_queries(&self) -> Result<Vec<LiveQueryRecord>, BridgeError> {
        let local = self.inner.config.node_id;
        let mut records: Vec<LiveQueryRecord> = self
            .inner
            .remote_records()
            .await?
            .into_iter()
            .filter(|record| record.node_id != local)
            .collect();
        records.extend(self.inner.manager.live_query_records());
        records.sort_by_key(|record| (record.node_id, record.live_query_id));
        Ok(records)
    }

    /// The heartbeats in key-value, by node.
    pub async fn heartbeats(&self) -> Result<Vec<Heartbeat>, BridgeError> {
        self.inner.heartbeats().await
    }

    /// Runs one failover pass now (the heartbeat loop runs one every interval): nodes whose
    /// heartbeat is older than `node_stale_after + max_clock_skew` are offline and their
    /// records are deleted from key-value, each at the revision read (a record its node
    /// wrote again since is left: [`FailoverOutcome::kept_records`]; one another survivor
    /// deleted first is [`FailoverOutcome::already_deleted_records`]); this node's stale
    /// live queries are removed. The keys of this node's own records it reads are what the
    /// heartbeat loop writes again when missing.
    pub async fn failover_pass(&self) -> Result<FailoverOutcome, BridgeError> {
        self.inner.failover_pass().await
    }

    /// Writes this node's heartbeat and records now (the heartbeat loop does so every
    /// interval). The node's records are read back first: one missing from key-value (a
    /// survivor deleted it while this node was taken for offline) is written again. If
    /// that read fails, the records are still written (new and changed ones), and the
    /// read's error is returned after. (The heartbeat loop does not read them itself: it
    /// uses what its failover pass read.)
    pub async fn sync_records(&self) -> Result<(), BridgeError> {
        let (present, read_error) = match self.inner.own_keys().await {
            Ok(present) => (Some(present), None),
            Err(error) => (None, Some(error)),
        };
        self.inner.sync_records(present, true).await?;
        read_error.map_or(Ok(()), Err)
    }

    /// Deletes records as a failover pass does, from revisions read before: each
    /// `(key, revision)` at that revision, a key written again since kept, one without a
    /// revision left alone. Fills only the outcome's record counts. For tests of the
    /// delete at the revision read, apart from the read; not a stable interface.
    #[doc(hidden)]
    pub async fn delete_records_at(
        &self,
        records: &[(String, Option<u64>)],
    ) -> Result<FailoverOutcome, BridgeError> {
        self.inner.delete_records_at(records).await
    }

    /// Stops heartbeating and syncing records (as a node that hangs would), keeping the
    /// stream applied: for tests and maintenance.
    pub fn stop_heartbeat(&self) {
        if let Some(task) = lock(&self.sync_task).take() {
            task.abort();
        }
    }

    /// Stops the node's tasks at once, as a crash would: nothing is cleaned up in
    /// key-value (survivors do that).
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for NodeBridge {
    fn drop(&mut self) {
        self.apply_task.abort();
        self.watch_task.abort();
        if let Some(task) = lock(&self.sync_task).take() {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn applied_seq(&self) -> Option<SeqId> {
        self.has_applied_seq
            .load(Ordering::Acquire)
            .then(|| SeqId(self.applied_seq.load(Ordering::Acquire)))
    }

    fn report(&self, error: BridgeError) {
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

    /// The stream's end as just seen (its info, or a delivery and its pending count).
    fn saw_stream_end(&self, last: u64) {
        self.counters
            .stream_last_seq
            .fetch_max(last, Ordering::Relaxed);
        self.end_seen_ms
            .fetch_max(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Whether the lag can be told: the stream exists, is the one the node started on,
    /// and its end was seen lately.
    fn lag_known(&self) -> bool {
        let since = (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.end_seen_ms.load(Ordering::Relaxed));
        !self.stream_missing.load(Ordering::Acquire)
            && !self.stream_reset.load(Ordering::Acquire)
            && since <= self.config.stream_end_stale_after.as_millis() as u64
    }

    /// The stream's info as the watch loop read it: a stream created at another time than
    /// the one the node reads (deleted and created again under the same name) is reported
    /// once per new stream ([`BridgeError::StreamReset`]), and the lag is unknown from then
    /// on. (The creation time is the stream's, the same whichever server leads it. A last
    /// sequence below what the node applied is no sign: an info read before the node
    /// applied more, or answered by a server that just lost the lead, shows that too.)
    fn check_stream_identity(&self, created: async_nats::datetime::DateTime, last_sequence: u64) {
        let recreated = {
            let mut known = lock(&self.stream_created);
            let changed = *known != created;
            *known = created;
            changed
        };
        if recreated {
            let applied = self.counters.applied_stream_seq.load(Ordering::Acquire);
            self.stream_reset.store(true, Ordering::Release);
            self.report(BridgeError::StreamReset {
                stream: self.config.stream.stream.clone(),
                last_stream_seq: last_sequence,
                applied_stream_seq: applied,
            });
        }
    }

    /// The stream's info was read (and its identity checked): the stream exists and the
    /// connection works.
    fn stream_answered(&self) {
        self.stream_missing.store(false, Ordering::Release);
        self.silent_failures.store(0, Ordering::Relaxed);
    }

    /// A request on the stream failed. A missing stream is reported once per episode; a
    /// request the server left unanswered counts towards a forced reconnect.
    async fn stream_failed(&self, failure: Failure) {
        match failure {
            Failure::StreamNotFound => {
                self.silent_failures.store(0, Ordering::Relaxed);
                if !self.stream_missing.swap(true, Ordering::AcqRel) {
                    self.report(BridgeError::StreamNotFound {
                        stream: self.config.stream.stream.clone(),
                    });
                }
            }
            Failure::Answered => self.silent_failures.store(0, Ordering::Relaxed),
            Failure::Silent => {
                if count_silent(&self.silent_failures, self.config.reconnect_after_failures) {
                    // Only from a connection the client still takes for working (a hung
                    // server's): one already reconnecting is left to it.
                    if self.client.connection_state() == async_nats::connection::State::Connected
                        && self.client.force_reconnect().await.is_ok()
                    {
                        bump(&self.counters.forced_reconnects);
                    }
                }
            }
        }
    }

    /// Applies one stream message. The apply loop calls it in stream order, once per
    /// stream sequence.
    async fn apply(&self, state: &mut ApplyState, stream_seq: u64, payload: &[u8]) {
        match codec::decode_stream_entry(payload) {
            Err(error) => self.report(BridgeError::Decode { stream_seq, error }),
            Ok(StreamEntry::Schema(message)) => self.apply_schema(state, stream_seq, message),
            Ok(StreamEntry::Commit(commit)) => self.apply_commit(state, stream_seq, commit).await,
        }
    }

    fn apply_schema(&self, state: &mut ApplyState, stream_seq: u64, message: SchemaMessage) {
        let table = message.schema.table_id.clone();
        if let Some(known) = state.versions.get(&table) {
            if known.version >= message.version && !known.provisional {
                bump(&self.counters.duplicates);
                return;
            }
        }
        lock(&self.known_schemas).insert((table.clone(), message.version), message.schema.clone());
        match self.manager.register_table(message.schema) {
            Ok(_) => {
                bump(&self.counters.schemas_applied);
                state.versions.insert(
                    table,
                    TableVersion {
                        version: message.version,
                        provisional: false,
                    },
                );
            }
            Err(error) => self.report(BridgeError::Apply {
                stream_seq,
                seq: message.after,
                error,
            }),
        }
    }

    /// Brings a table to `version` from the schema bucket (a node that started after the
    /// schema change, or a provisional newer version at start).
    async fn fetch_schema(
        &self,
        state: &mut ApplyState,
        table: &TableId,
        version: u64,
    ) -> Result<(), ()> {
        let Ok(Some(bytes)) = self.schemas.get(schema_key(table, version)).await else {
            return Err(());
        };
        let Ok(StreamEntry::Schema(message)) = codec::decode_stream_entry(&bytes) else {
            return Err(());
        };
        if message.version != version || message.schema.table_id != *table {
            return Err(());
        }
        lock(&self.known_schemas).insert((table.clone(), version), message.schema.clone());
        self.manager
            .register_table(message.schema)
            .map_err(|_| ())?;
        state.versions.insert(
            table.clone(),
            TableVersion {
                version,
                provisional: false,
            },
        );
        Ok(())
    }

    async fn apply_commit(&self, state: &mut ApplyState, stream_seq: u64, commit: CommitMessage) {
        if let Some(applied) = state.applied_seq {
            if commit.seq <= applied {
                // A second copy (appended after the duplicate window): applied once.
                bump(&self.counters.duplicates);
                return;
            }
            // A hole already reported as Lost (the stream's sequences showed it) is not
            // reported again: one hole, one error, one gap.
            if commit.prev != Some(applied) && !state.lost_reported {
                self.report(BridgeError::ChainBroken {
                    stream_seq,
                    seq: commit.seq,
                    prev: commit.prev,
                    applied: Some(applied),
                });
            }
        }
        state.lost_reported = false;
        for (table, version) in &commit.schema_versions {
            let known = state.versions.get(table).copied();
            let fine = match known {
                Some(known) if known.version == *version => true,
                Some(known) if known.version > *version && !known.provisional => false,
                _ => self.fetch_schema(state, table, *version).await.is_ok(),
            };
            if !fine {
                self.report(BridgeError::SchemaVersion {
                    stream_seq,
                    table: table.clone(),
                    commit_version: *version,
                    node_version: known.map(|known| known.version),
                });
                self.set_applied_seq(state, commit.seq);
                return;
            }
        }
        match self.manager.publish_commit(commit.seq, commit.changes) {
            Ok(_) => bump(&self.counters.commits_applied),
            Err(error) => self.report(BridgeError::Apply {
                stream_seq,
                seq: Some(commit.seq),
                error,
            }),
        }
        self.set_applied_seq(state, commit.seq);
    }

    fn set_applied_seq(&self, state: &mut ApplyState, seq: SeqId) {
        state.applied_seq = Some(seq);
        self.applied_seq.store(seq.0, Ordering::Release);
        self.has_applied_seq.store(true, Ordering::Release);
    }

    /// The stream's first retained sequence, as its leader says (None if it cannot say).
    async fn first_retained(&self) -> Option<u64> {
        let mut stream = self.stream.clone();
        let info = stream.info().await.ok()?;
        Some(info.state.first_sequence)
    }

    fn set_applied_stream_seq(&self, stream_seq: u64) {
        self.counters
            .applied_stream_seq
            .store(stream_seq, Ordering::Release);
        self.applied_tx.send_replace(stream_seq);
    }

    /// An ephemeral, unacknowledged consumer starting at `start`, kept in memory on one
    /// server: if that server dies, the bridge makes another from where it stopped.
    async fn consumer_from(
        &self,
        start: u64,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, BridgeError> {
        self.try_consumer_from(start)
            .await
            .nats("creating a stream consumer")
    }

    /// As [`consumer_from`](Self::consumer_from), with the client's error.
    async fn try_consumer_from(
        &self,
        start: u64,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, stream::ConsumerError> {
        self.stream
            .create_consumer(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
    }

    /// Finds where a resume after `last_seq` starts and replays every commit from there to
    /// the stream's end as of now into the gated subscription. `None` when the stream no
    /// longer covers `last_seq`. Commits after the end read here are published live after
    /// the subscription was gated, so its gate holds them.
    async fn replay(
        &self,
        id: LiveQueryId,
        last_seq: SeqId,
    ) -> Result<Option<Replayed>, BridgeError> {
        let mut stream = self.stream.clone();
        let info = stream.info().await.nats("reading stream info")?.clone();
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        if info.state.messages == 0 || first > last {
            // Nothing retained: only a client that has everything the node applied is
            // whole; a node that applied nothing knows where the stream ends only if it
            // never held a message (its messages aged out: the client may have missed
            // any of them).
            let whole = match self.applied_seq() {
                Some(applied) => applied <= last_seq,
                None => last == 0,
            };
            return Ok(whole.then_some(Replayed::default()));
        }
        let first_entry = match self.entry_at(first).await? {
            Some(entry) => entry,
            None => return Ok(None),
        };
        let predecessor = match &first_entry {
            StreamEntry::Commit(commit) => commit.prev,
            StreamEntry::Schema(schema) => schema.after,
        };
        if predecessor.is_some_and(|prev| prev > last_seq) {
            return Ok(None);
        }
        // The first stream sequence whose position is above last_seq (positions never
        // decrease along the stream).
        let (mut low, mut high) = (first, last + 1);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.entry_at(middle).await? {
                Some(entry) if entry.position() > last_seq.0 => high = middle,
                Some(_) => low = middle + 1,
                None => return Ok(None),
            }
        }
        if low > last {
            return Ok(Some(Replayed::default()));
        }
        let consumer = self.consumer_from(low).await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.config.batch)
            .heartbeat(self.config.consumer_heartbeat)
            .messages()
            .await
            .nats("reading the stream")?;
        let mut expected = low;
        let mut replayed = 0;
        let mut replayed_to = None;
        // The subscription's table and the schema it was compiled against (an ALTER
        // applied since ends a gated subscription: its replay then fails, never mixes).
        let table = self.manager.subscription(id)?.table_id;
        let compiled = self.manager.table_schema(&table)?;
        let mut fits: HashMap<u64, bool> = HashMap::new();
        // The last commit of the chain the replay followed.
        let mut chain: Option<SeqId> = None;
        while expected <= last {
            let message = match messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    return Err(BridgeError::Nats {
                        what: "reading the stream",
                        detail: error.to_string(),
                    })
                }
                None => return Err(BridgeError::Stopped),
            };
            let stream_seq = message
                .info()
                .nats("reading message metadata")?
                .stream_sequence;
            if stream_seq != expected {
                // Trimmed while we read: the client cannot be made whole from here.
                return Ok(None);
            }
            expected += 1;
            let StreamEntry::Commit(commit) = codec::decode_stream_entry(&message.payload)
                .map_err(|error| BridgeError::Decode { stream_seq, error })?
            else {
                continue;
            };
            if commit.seq <= last_seq || chain.is_some_and(|chain| commit.seq <= chain) {
                // A second copy (appended after the duplicate window): given once.
                continue;
            }
            // Every commit after the client's SeqId must be here: the first names a
            // predecessor the client has (none only when the client has nothing), each
            // later one the commit before it. Otherwise commits are missing (retention,
            // or a writer that started again without the stream's end): no proof.
            let chained = match chain {
                None => match commit.prev {
                    Some(prev) => prev <= last_seq,
                    None => last_seq.0 == 0,
                },
                Some(chain) => commit.prev == Some(chain),
            };
            if !chained {
                return Ok(None);
            }
            chain = Some(commit.seq);
            // A commit written against another version of the subscription's table than
            // the one it was compiled against is replayed only when its rows still fit
            // (the same columns, in the same order, and scope): a same-width ALTER would
            // otherwise decode old rows as the new columns.
            if let Some((_, version)) = commit.schema_versions.iter().find(|(t, _)| *t == table) {
                let fit = match fits.get(version) {
                    Some(fit) => *fit,
                    None => {
                        let fit = self
                            .schema_version(&table, *version)
                            .await
                            .is_some_and(|schema| schema == *compiled);
                        fits.insert(*version, fit);
                        fit
                    }
                };
                if !fit {
                    return Ok(None);
                }
            }
            // Replayed commits stream into the client's channel: a full channel is
            // WouldBlock, retried with the same commit once the client has read, for at
            // most the stall timeout (a client that reads nothing must not hold the
            // resume, and its task, forever).
            let deadline = tokio::time::Instant::now() + self.config.resume_stall_timeout;
            let outcome = loop {
                match self
                    .manager
                    .replay_commit(id, commit.seq, commit.changes.clone())
                {
                    Err(LiveError::WouldBlock { .. }) => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(BridgeError::ResumeStalled {
                                live_query_id: id,
                                replayed_to,
                                waited: self.config.resume_stall_timeout,
                            });
                        }
                        tokio::time::sleep(STALL_POLL).await
                    }
                    other => break other,
                }
            };
            match outcome {
                Ok(true) => {
                    replayed += 1;
                    replayed_to = Some(commit.seq);
                }
                Ok(false) => {}
                // The commit no longer fits the table (its schema changed since): the
                // client needs a snapshot.
                Err(
                    LiveError::RowArity { .. }
                    | LiveError::MissingOldRow(_)
                    | LiveError::MissingOwner(_)
                    | LiveError::UnknownTable(_),
                ) => return Ok(None),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Some(Replayed { count: replayed }))
    }

    /// A table's schema at `version`, as met or from the schema bucket (None when the
    /// bucket does not hold it).
    async fn schema_version(&self, table: &TableId, version: u64) -> Option<TableSchema> {
        if let Some(schema) = lock(&self.known_schemas).get(&(table.clone(), version)) {
            return Some(schema.clone());
        }
        let bytes = self.schemas.get(schema_key(table, version)).await.ok()??;
        let Ok(StreamEntry::Schema(message)) = codec::decode_stream_entry(&bytes) else {
            return None;
        };
        if message.version != version || message.schema.table_id != *table {
            return None;
        }
        lock(&self.known_schemas).insert((table.clone(), version), message.schema.clone());
        Some(message.schema)
    }

    async fn entry_at(&self, stream_seq: u64) -> Result<Option<StreamEntry>, BridgeError> {
        match self.stream.get_raw_message(stream_seq).await {
            Ok(message) => codec::decode_stream_entry(&message.payload)
                .map(Some)
                .map_err(|error| BridgeError::Decode { stream_seq, error }),
            Err(error)
                if matches!(
                    error.kind(),
                    async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(BridgeError::Nats {
                what: "reading a stream message",
                detail: error.to_string(),
            }),
        }
    }

    async fn heartbeats(&self) -> Result<Vec<Heartbeat>, BridgeError> {
        let mut out = Vec::new();
        for (key, value) in read_prefix(
            &self.js,
            &self.records,
            "node.",
            self.config.connection.request_timeout,
        )
        .await?
        {
            match codec::decode_heartbeat(&value) {
                Ok(heartbeat) => out.push(heartbeat),
                Err(error) => {
                    self.report(BridgeError::Nats {
                        what: "decoding a heartbeat",
                        detail: format!("{key}: {error}"),
                    });
                }
            }
        }
        out.sort_by_key(|heartbeat| heartbeat.node_id);
        Ok(out)
    }

    async fn remote_records(&self) -> Result<Vec<LiveQueryRecord>, BridgeError> {
        Ok(self
            .remote_record_revisions()
            .await?
            .into_iter()
            .map(|(_, record, _)| record)
            .collect())
    }

    /// The records in key-value, each with its key and the revision read.
    async fn remote_record_revisions(
        &self,
    ) -> Result<Vec<(String, LiveQueryRecord, u64)>, BridgeError> {
        let mut out = Vec::new();
        for entry in read_prefix_entries(
            &self.js,
            &self.records,
            "lq.",
            self.config.connection.request_timeout,
        )
        .await?
        {
            match codec::decode_record(&entry.value) {
                Ok(record) => out.push((entry.key, record, entry.revision)),
                Err(error) => self.report(BridgeError::Nats {
                    what: "decoding a live-query record",
                    detail: format!("{}: {error}", entry.key),
                }),
            }
        }
        Ok(out)
    }

    /// This node's record keys in key-value, read now.
    async fn own_keys(&self) -> Result<HashSet<String>, BridgeError> {
        Ok(read_prefix(
            &self.js,
            &self.records,
            &format!("lq.{}.", self.config.node_id.0),
            self.config.connection.request_timeout,
        )
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect())
    }

    /// Writes the heartbeat (if `heartbeat`); writes records that are new, changed status,
    /// or whose written heartbeat is older than half the staleness bound, or (given
    /// `present`, the keys of this node's records in key-value) that are missing from
    /// key-value; deletes ended ones.
    async fn sync_records(
        &self,
        present: Option<HashSet<String>>,
        heartbeat: bool,
    ) -> Result<(), BridgeError> {
        let node = self.config.node_id;
        if heartbeat {
            let heartbeat = Heartbeat {
                node_id: node,
                wall_ms: wall_ms(),
                applied_stream_seq: self.counters.applied_stream_seq.load(Ordering::Acquire),
                applied_seq: self.applied_seq(),
                started_ms: self.started_ms,
            };
            self.records
                .put(
                    heartbeat_key(node),
                    Bytes::from(codec::encode_heartbeat(&heartbeat)),
                )
                .await
                .nats("writing the heartbeat")?;
        }
        // This node's records as key-value holds them: one marked written but missing (a
        // survivor deleted it while this node was taken for offline, or it was lost) is
        // written again now rather than at its refresh.
        if let Some(present) = present {
            lock(&self.written).retain(|id, _| present.contains(&live_query_key(node, *id)));
        }
        let refresh_ms = (self.config.live_query_stale_after.as_millis() as u64 / 2).max(1);
        let records = self.manager.live_query_records();
        let mut to_put = Vec::new();
        let mut to_delete = Vec::new();
        {
            let mut written = lock(&self.written);
            let mut seen = HashMap::with_capacity(records.len());
            for record in &records {
                let entry = written.get(&record.live_query_id).copied();
                let due = match entry {
                    None => true,
                    Some((status, heartbeat_ms)) => {
                        status != record.status
                            || record.last_heartbeat_ms.saturating_sub(heartbeat_ms) >= refresh_ms
                    }
                };
                if due {
                    to_put.push(record.clone());
                    seen.insert(
                        record.live_query_id,
                        (record.status, record.last_heartbeat_ms),
                    );
                } else if let Some(entry) = entry {
                    seen.insert(record.live_query_id, entry);
                }
            }
            for (id, entry) in written.iter() {
                if !seen.contains_key(id) {
                    to_delete.push((*id, *entry));
                }
            }
            *written = seen;
        }
        // Each record is marked written before its write is sent (a concurrent sync then
        // skips it); a write that fails is unmarked, with those after it, so the next sync
        // sends them again rather than leaving the record missing until its refresh.
        for (at, record) in to_put.iter().enumerate() {
            let put = self
                .records
                .put(
                    record_key(record),
                    Bytes::from(codec::encode_record(record)),
                )
                .await
                .nats("writing a live-query record");
            if let Err(error) = put {
                let mut written = lock(&self.written);
                for unsent in &to_put[at..] {
                    written.remove(&unsent.live_query_id);
                }
                return Err(error);
            }
        }
        for (at, (id, _)) in to_delete.iter().enumerate() {
            let deleted = self
                .records
                .delete(live_query_key(node, *id))
                .await
                .nats("deleting a live-query record");
            if let Err(error) = deleted {
                // Remembered again, so the next sync deletes them.
                lock(&self.written).extend(to_delete[at..].iter().copied());
                return Err(error);
            }
        }
        Ok(())
    }

    async fn failover_pass(&self) -> Result<FailoverOutcome, BridgeError> {
        let local = self.config.node_id;
        let bound = (self.config.node_stale_after + self.config.max_clock_skew).as_millis() as u64;
        let now = wall_ms();
        let active_nodes: Vec<NodeId> = self
            .heartbeats()
            .await?
            .into_iter()
            .filter(|heartbeat| {
                heartbeat.node_id == local || now.saturating_sub(heartbeat.wall_ms) <= bound
            })
            .map(|heartbeat| heartbeat.node_id)
            .collect();
        let mut revisions = HashMap::new();
        let mut records: Vec<LiveQueryRecord> = Vec::new();
        // This node's own keys, as read: the next sync writes again those missing.
        let own_prefix = format!("lq.{}.", local.0);
        let mut own_keys = HashSet::new();
        for (key, record, revision) in self.remote_record_revisions().await? {
            if key.starts_with(&own_prefix) {
                own_keys.insert(key);
            } else if record.node_id != local {
                revisions.insert(record_key(&record), revision);
                records.push(record);
            }
        }
        *lock(&self.present_keys) = Some(own_keys);
        records.extend(self.manager.live_query_records());
        // Connection heartbeats of other nodes are their wall clocks: allow for skew.
        let handler = FailoverHandler::new(
            local,
            self.config.live_query_stale_after + self.config.max_clock_skew,
        );
        let report = handler.run_on(&self.manager, &records, &active_nodes);
        let orphaned: Vec<(String, Option<u64>)> = report
            .orphaned
            .iter()
            .map(|record| {
                let key = record_key(record);
                let revision = revisions.get(&key).copied();
                (key, revision)
            })
            .collect();
        let deleted = self.delete_records_at(&orphaned).await?;
        let mut active_nodes = active_nodes;
        if !active_nodes.contains(&local) {
            active_nodes.push(local);
            active_nodes.sort();
        }
        Ok(FailoverOutcome {
            active_nodes,
            report,
            ..deleted
        })
    }

    /// Whether `key` holds a value now, as the bucket's stream leader tells (a replica
    /// could still show a value another survivor just deleted).
    async fn record_present(&self, key: &str) -> Result<bool, BridgeError> {
        let subject = format!("{}{key}", self.records.prefix);
        match self
            .records
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(message) => Ok(message
                .headers
                .get("KV-Operation")
                .is_none_or(|operation| operation.as_str() == "PUT")),
            Err(error)
                if matches!(
                    error.kind(),
                    stream::LastRawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(error).nats("reading an orphaned record again"),
        }
    }

    /// Deletes records, each at the revision read: one its node wrote again since (it came
    /// back, and may have reused the key) stays. A delete refused for the revision reads
    /// the key again: a value there is kept, none means another survivor deleted it first.
    /// A record without a revision read is left alone (never deleted unconditionally).
    /// Fills the outcome's record counts only.
    async fn delete_records_at(
        &self,
        records: &[(String, Option<u64>)],
    ) -> Result<FailoverOutcome, BridgeError> {
        let mut outcome = FailoverOutcome::default();
        for (key, revision) in records {
            let Some(revision) = *revision else {
                continue;
            };
            match self
                .records
                .delete_expect_revision(key, Some(revision))
                .await
            {
                Ok(()) => outcome.deleted_records += 1,
                Err(error) if error.kind() == kv::DeleteErrorKind::WrongLastRevision => {
                    if self.record_present(key).await? {
                        outcome.kept_records += 1;
                    } else {
                        outcome.already_deleted_records += 1;
                    }
                }
                Err(error) => return Err(error).nats("deleting an orphaned record"),
            }
        }
        Ok(outcome)
    }
}

/// Counts one more request left unanswered; true for the caller whose failure reached
/// `limit`, and the count starts again. One atomic step, so of concurrent callers only that
/// one forces a reconnect (a check, then a reset, let two of them through).
fn count_silent(failures: &AtomicU32, limit: u32) -> bool {
    let before = failures
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |failures| {
            Some(if failures + 1 >= limit {
                0
            } else {
                failures + 1
            })
        })
        .unwrap_or_default();
    before + 1 >= limit
}

/// Consumes the stream from the last applied sequence, for as long as the node runs:
/// whatever ends a consumer (a server's death, a lost connection, silence past twice the
/// idle heartbeat), a new one starts where the node stopped.
async fn apply_loop(inner: Arc<Inner>, mut state: ApplyState) {
    let mut failures = 0u32;
    loop {
        let start = inner.counters.applied_stream_seq.load(Ordering::Acquire) + 1;
        let consumer = match inner.try_consumer_from(start).await {
            Ok(consumer) => {
                // The connection works; only the watch loop, which checks that the stream
                // is still the one the node started on, counts it as seen again.
                inner.silent_failures.store(0, Ordering::Relaxed);
                consumer
            }
            Err(error) => {
                // A stream not found is reported once per episode; a request left
                // unanswered counts towards a forced reconnect.
                inner.stream_failed(consumer_failure(&error)).await;
                failures += 1;
                bump(&inner.counters.consumer_restarts);
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(inner.config.batch)
            .heartbeat(inner.config.consumer_heartbeat)
            .expires(inner.config.consumer_heartbeat * 10)
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(_) => {
                inner.stream_failed(Failure::Silent).await;
                failures += 1;
                bump(&inner.counters.consumer_restarts);
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let Ok(message) = message else {
                // Most often the consumer went silent past its idle heartbeat (its server
                // died or hangs): one more unanswered request.
                inner.stream_failed(Failure::Silent).await;
                break;
            };
            inner.silent_failures.store(0, Ordering::Relaxed);
            if *inner.paused.borrow() {
                let mut paused = inner.paused.subscribe();
                let _ = paused.wait_for(|paused| !paused).await;
            }
            let Ok(info) = message.info() else {
                break;
            };
            let (stream_seq, pending) = (info.stream_sequence, info.pending);
            let applied = inner.counters.applied_stream_seq.load(Ordering::Acquire);
            if stream_seq <= applied {
                continue;
            }
            if stream_seq > applied + 1 {
                // The consumer skipped messages. Lost only if the stream no longer holds
                // them; otherwise (a replica still catching up after a server's death)
                // read them again through a new consumer.
                match inner.first_retained().await {
                    Some(first) if first > applied + 1 => {
                        let to = (first - 1).min(stream_seq - 1);
                        inner.report(BridgeError::Lost {
                            from: applied + 1,
                            to,
                        });
                        state.lost_reported = true;
                        inner.set_applied_stream_seq(to);
                        if to < stream_seq - 1 {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            failures = 0;
            inner.apply(&mut state, stream_seq, &message.payload).await;
            inner.saw_stream_end(stream_seq + pending);
            inner.set_applied_stream_seq(stream_seq);
        }
        bump(&inner.counters.consumer_restarts);
        let name = consumer.cached_info().name.clone();
        let _ = inner.stream.delete_consumer(&name).await;
        tokio::time::sleep(backoff(failures)).await;
        failures += 1;
    }
}

/// Every heartbeat interval: the heartbeat and records, a failover pass, then the node's
/// records the pass found missing from key-value written again. Errors are counted and the
/// loop goes on.
async fn sync_loop(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(inner.config.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // The heartbeat first, on time whatever the pass's reads wait on.
        if let Err(error) = inner.sync_records(None, true).await {
            inner.report(error);
        }
        match inner.failover_pass().await {
            Ok(_) => {
                // The node's keys as the pass read them (after the writes above): no read
                // of its own, and a failed read never kept the records above from being
                // written. Those missing are written again now, not a tick later.
                let present = lock(&inner.present_keys).take();
                if let Some(present) = present {
                    if let Err(error) = inner.sync_records(Some(present), false).await {
                        inner.report(error);
                    }
                }
            }
            Err(error) => inner.report(error),
        }
    }
}

/// How often the watch loop reads the stream's info: every heartbeat interval, and at
/// least three times per [`NodeConfig::stream_end_stale_after`](crate::NodeConfig), so a
/// healthy node sees the stream's end well within it whatever the heartbeat interval.
fn watch_period(config: &NodeConfig) -> Duration {
    config
        .heartbeat_interval
        .min(config.stream_end_stale_after / 3)
        .max(Duration::from_millis(1))
}

/// On its own (record writes that wait on a hung server do not delay it), every
/// [`watch_period`]: the stream's info, for the lag and for the stream's health. A stream
/// not found is reported once per episode, a stream created again under the same name once
/// per new stream; requests left unanswered make the node reconnect after
/// [`NodeConfig::reconnect_after_failures`](crate::NodeConfig) of them in a row.
async fn watch_loop(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(watch_period(&inner.config));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut stream = inner.stream.clone();
        match stream.info().await {
            Ok(info) => {
                let last = info.state.last_sequence;
                // Another stream under the same name is found before the stream counts
                // as seen again: the lag never reads the old position against it.
                inner.check_stream_identity(info.created, last);
                inner.stream_answered();
                inner.saw_stream_end(last);
            }
            Err(error) => inner.stream_failed(info_failure(&error)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_failures_at_the_limit_force_one_reconnect_per_limit() {
        let failures = Arc::new(AtomicU32::new(0));
        let triggered = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (failures, triggered) = (failures.clone(), triggered.clone());
                std::thread::spawn(move || {
                    for _ in 0..3000 {
                        if count_silent(&failures, 3) {
                            triggered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // 24 000 failures, 3 per reconnect: exactly 8 000, none twice.
        assert_eq!(triggered.load(Ordering::Relaxed), 8000);
        assert_eq!(failures.load(Ordering::Relaxed), 0);
    }
}
