//! A front node's bridge: applies the commit stream to the node's manager, serves resumes
//! from the stream, and keeps the node's records and heartbeat in key-value.
//!
//! This file holds the bridge's public face: [`NodeBridge`] (start, counters, pause,
//! resume, records, stop) and the types it returns. The work behind it is split by
//! responsibility, each part a file over the state the node's tasks share (`shared`):
//! applying the stream (`apply`), watching the stream's health (`health`), replaying the
//! stream for resumes (`resume`), and the records, heartbeat and failover pass (`records`).

mod apply;
mod health;
mod records;
mod resume;
mod shared;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livecore::{
    ConnectionId, ConnectionsManager, FailoverReport, LiveQueryId, LiveQueryRecord, NodeId,
    QuerySpec, SeqId, SubscriptionOptions, SubscriptionResult, TableId,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{
    backoff, connect, ensure_bucket, ensure_stream, jetstream, read_prefix, stream_tail,
};
use crate::codec::{self, Heartbeat, SchemaMessage, StreamEntry};
use crate::config::{NodeConfig, StartFrom};
use crate::error::{BridgeError, NatsResult};

use apply::{apply_loop, ApplyState, TableVersion};
use health::watch_loop;
use records::sync_loop;
use resume::Replayed;
use shared::{bump, lock, wall_ms, Counters, Inner};

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
    /// Subscriptions ended with `ResyncRequired` because commits of their table were lost
    /// (a gap, or a commit that could not be decoded or applied): their clients load
    /// afresh rather than hold rows that may be stale.
    pub resynced_subscriptions: u64,
    /// Times the stream consumer was recreated (server loss, reconnect, silence).
    pub consumer_restarts: u64,
    /// Times the node's NATS connection was re-established after it was lost (to the
    /// same server or another).
    pub reconnects: u64,
    /// Errors of the record sync and heartbeat loop, and other failed requests the node
    /// reports as [`BridgeError::Nats`] (asking the stream's leader for the messages a
    /// consumer skipped, for one).
    pub sync_errors: u64,
    /// Episodes of the stream found missing ([`BridgeError::StreamNotFound`], one per
    /// episode).
    pub stream_not_found: u64,
    /// Times the stream was found deleted and created again under the same name
    /// ([`BridgeError::StreamReset`], one per new stream).
    pub stream_resets: u64,
    /// Reconnects the node asked for after
    /// [`NodeConfig::reconnect_after_failures`](crate::NodeConfig::reconnect_after_failures)
    /// requests on the stream in a row went unanswered and the server did not answer a
    /// round trip either (also counted in `reconnects` once the client connected again).
    pub forced_reconnects: u64,
    /// Forced reconnects not made: after `reconnect_after_failures` requests in a row went
    /// unanswered, the server answered a round trip at once (within a second, or the
    /// connection's request timeout if shorter), so it is alive and the stream is slow for
    /// another reason (a stream without a leader, a stalled disk), which another
    /// connection would not cure.
    pub forced_reconnects_skipped: u64,
    /// Resumes that went on after a request on the stream failed (a JetStream leader
    /// election, a server lost, a timeout), within
    /// [`NodeConfig::resume_retry_patience`](crate::NodeConfig::resume_retry_patience):
    /// one per retry.
    pub resume_retries: u64,
}

/// A resume under way: dropped before [`settled`](Self::settled), its subscription ends
/// with `ResumeUnavailable` (the client subscribes again with a snapshot) instead of
/// staying gated with nothing to open it.
struct Abandoned<'a> {
    manager: &'a ConnectionsManager,
    live_query_id: Option<LiveQueryId>,
}

impl Abandoned<'_> {
    /// The resume reached an outcome, which ends or opens the subscription itself.
    fn settled(mut self) {
        self.live_query_id = None;
    }
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.live_query_id {
            // Already ended (the host unsubscribed, a schema change) is fine.
            let _ = self.manager.resume_unavailable(id);
        }
    }
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

impl NodeBridge {
    /// Connects the node's manager to the cluster: opens (or creates) the stream and
    /// buckets, registers the tables' current schemas, and starts applying the stream
    /// (from its end, or its start, per [`NodeConfig::start`]) and the heartbeat loop.
    /// While JetStream cannot answer (no answer within the request timeout, or "temporarily
    /// unavailable" while its servers elect a leader after an outage), creating or opening
    /// the stream and each bucket is tried again: new attempts start for up to 30 s after
    /// each one's first (so the call can last one attempt longer, for each of the three).
    /// An error the servers answer with ends it after five attempts.
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
            resynced_subscriptions: counters.resynced_subscriptions.load(Ordering::Relaxed),
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
            resume_retries: counters.resume_retries.load(Ordering::Relaxed),
            forced_reconnects: counters.forced_reconnects.load(Ordering::Relaxed),
            forced_reconnects_skipped: counters.forced_reconnects_skipped.load(Ordering::Relaxed),
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
    /// resume with [`BridgeError::ResumeStalled`] (and gets `ResumeUnavailable`). A
    /// request on the stream that fails (a leader election, a server lost) is tried again
    /// from where the replay got, for [`NodeConfig::resume_retry_patience`]; past it the
    /// resume ends with that [`BridgeError::Nats`] (and the client gets
    /// `ResumeUnavailable`).
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
        // A host that drops the resume's future (a timeout around it, its client gone)
        // would leave the subscription gated for ever: its client is told instead.
        let abandoned = Abandoned {
            manager: &self.inner.manager,
            live_query_id: Some(id),
        };
        let mut replayed = Replayed::default();
        let patience = tokio::time::Instant::now() + self.inner.config.resume_retry_patience;
        let mut retries = 0;
        let outcome = loop {
            match self.inner.replay(id, last_seq, &mut replayed).await {
                // The stream keeps what the client missed through a leader election or a
                // server's loss: the replay goes on from where it got.
                Err(BridgeError::Nats { .. })
                    if tokio::time::Instant::now() + backoff(retries) < patience =>
                {
                    bump(&self.inner.counters.resume_retries);
                    tokio::time::sleep(backoff(retries)).await;
                    retries += 1;
                }
                outcome => break outcome,
            }
        };
        // Each outcome below ends or opens the subscription itself.
        abandoned.settled();
        match outcome {
            // Completion never waits for room: a marker that finds the channel full goes
            // to the receiver out of band.
            Ok(true) => match self.inner.manager.complete_initial_load(id) {
                Ok(_) => Ok(ResumeOutcome::Resumed {
                    subscription,
                    replayed: replayed.count,
                }),
                Err(error) => {
                    let _ = self.inner.manager.resume_unavailable(id);
                    Err(error.into())
                }
            },
            Ok(false) => {
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
