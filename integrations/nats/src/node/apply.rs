//! The apply loop: consumes the stream in order and applies each commit and schema change
//! to the node's manager, exactly once, reporting gaps, duplicates and what it cannot
//! apply. Apart from the bridge's API, because only this loop owns the apply state (the
//! last commit applied, the tables' schema versions).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use livecore::{SeqId, TableId};

use crate::cluster::{backoff, consumer_failure, info_failure, schema_key, Failure};
use crate::codec::{self, CommitMessage, SchemaMessage, StreamEntry};
use crate::error::{BridgeError, NatsResult};

use super::shared::{bump, lock, Inner};

/// A table's schema version on this node; `provisional` when loaded from key-value at
/// start rather than met in the stream (a commit naming an older version then wins).
#[derive(Clone, Copy, Debug)]
pub(super) struct TableVersion {
    pub(super) version: u64,
    pub(super) provisional: bool,
}

/// What the apply loop owns.
pub(super) struct ApplyState {
    pub(super) applied_seq: Option<SeqId>,
    pub(super) versions: HashMap<TableId, TableVersion>,
    /// Stream messages were reported [`BridgeError::Lost`] since the last commit: the next
    /// commit's broken chain is that same hole, not another one.
    pub(super) lost_reported: bool,
}

impl Inner {
    /// Reports stream messages `from..=to` lost (no longer in the stream) and moves past
    /// them.
    /// Whether a commit was among them shows at the next commit, whose predecessor is not
    /// the last applied one then (the messages may have been foreign ones, duplicates or
    /// a schema message removed from the stream): the subscribers are resynced there.
    /// Before the node applied any commit there is no chain to tell: resynced at once.
    fn report_lost(&self, state: &mut ApplyState, from: u64, to: u64) {
        self.report(BridgeError::Lost { from, to });
        state.lost_reported = true;
        self.set_applied_stream_seq(to);
        if state.applied_seq.is_none() {
            self.resync(state, None);
        }
    }

    /// Tells the subscribers of `tables` that commits of theirs were lost (of every table
    /// the node knows when `None`: which tables a lost message touched is unknown): their subscriptions end with `ResyncRequired`
    /// (`ConnectionsManager::resync_table`), and their clients load afresh. A gap notice
    /// would not do: a resume needs the commits the stream no longer has.
    fn resync(&self, state: &ApplyState, tables: Option<Vec<TableId>>) {
        let tables = tables.unwrap_or_else(|| state.versions.keys().cloned().collect());
        for table in tables {
            // A table the node never registered has no subscriptions to tell.
            if let Ok(ended) = self.manager.resync_table(&table) {
                self.counters
                    .resynced_subscriptions
                    .fetch_add(ended as u64, Ordering::Relaxed);
            }
        }
    }

    /// Applies one stream message. The apply loop calls it in stream order, once per
    /// stream sequence.
    async fn apply(&self, state: &mut ApplyState, stream_seq: u64, payload: &[u8]) {
        match codec::decode_stream_entry(payload) {
            // Not necessarily a commit (a foreign message on the subject): a commit lost this
            // way shows as the next commit's broken chain, which resyncs.
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
            if commit.prev != Some(applied) {
                // One hole, one error: a hole already reported as `Lost` is not reported
                // again, but either way commits are missing and the subscribers resync.
                if !state.lost_reported {
                    self.report(BridgeError::ChainBroken {
                        stream_seq,
                        seq: commit.seq,
                        prev: commit.prev,
                        applied: Some(applied),
                    });
                }
                self.resync(state, None);
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
                self.resync(state, Some(tables_of(&commit)));
                self.set_applied_seq(state, commit.seq);
                return;
            }
        }
        let tables = tables_of(&commit);
        match self.manager.publish_commit(commit.seq, commit.changes) {
            Ok(_) => bump(&self.counters.commits_applied),
            Err(error) => {
                self.report(BridgeError::Apply {
                    stream_seq,
                    seq: Some(commit.seq),
                    error,
                });
                // A refused commit delivered nothing: its tables' subscribers missed it.
                self.resync(state, Some(tables));
            }
        }
        self.set_applied_seq(state, commit.seq);
    }

    fn set_applied_seq(&self, state: &mut ApplyState, seq: SeqId) {
        state.applied_seq = Some(seq);
        self.applied_seq.store(seq.0, Ordering::Release);
        self.has_applied_seq.store(true, Ordering::Release);
    }

    /// The stream's first retained sequence, as its leader says (None if it cannot say).
    /// A request left unanswered counts towards a forced reconnect, as the watch loop's
    /// reads of the stream's info do; a stream not found is reported once per episode.
    async fn first_retained(&self) -> Option<u64> {
        let mut stream = self.stream.clone();
        match stream.info().await {
            Ok(info) => {
                self.silent_failures.store(0, Ordering::Relaxed);
                Some(info.state.first_sequence)
            }
            Err(error) => {
                self.stream_failed(info_failure(&error)).await;
                None
            }
        }
    }

    /// The consumer delivered nothing for a while. When the stream's end, as last seen, is
    /// past what the node applied, the messages between are asked for: none held (the
    /// last ones were removed, or aged out, before the node read them) is a hole reported
    /// [`Lost`](BridgeError::Lost) at once, which a consumer would never deliver (so the
    /// node's lag would stay above zero, and the hole unreported, until the next
    /// message); one held and not delivered makes the caller replace the consumer.
    async fn check_silent_end(&self, state: &mut ApplyState) -> Silence {
        let applied = self.counters.applied_stream_seq.load(Ordering::Acquire);
        let end = self.counters.stream_last_seq.load(Ordering::Relaxed);
        if end <= applied || !self.lag_known() {
            return Silence::Idle;
        }
        match self.next_held(applied + 1, end + 1).await {
            Some(held) if held > end => {
                self.report_lost(state, applied + 1, end);
                Silence::Idle
            }
            Some(_) => Silence::Stuck,
            None => Silence::Idle,
        }
    }

    /// The first stream sequence from `from` (up to `until`: one the consumer just
    /// delivered, or one past the stream's end) that the stream's leader still holds, found in one request however many
    /// messages were removed (a subject-filtered purge can take thousands); None when it
    /// cannot say: the request failed, which is reported (a missing permission for the
    /// stream's message API would otherwise only show as consumer restarts), and the
    /// caller makes a new consumer, as for a skip.
    async fn next_held(&self, from: u64, until: u64) -> Option<u64> {
        let first = self
            .stream
            .get_first_raw_message_by_subject(&self.config.stream.subject, from)
            .await;
        match first {
            Ok(message) => Some(message.sequence.min(until)),
            // Nothing from `from` on: `until` went too, after the consumer delivered it.
            Err(error)
                if matches!(
                    error.kind(),
                    async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound
                ) =>
            {
                Some(until)
            }
            Err(error) => {
                self.report(BridgeError::Nats {
                    what: "asking the stream's leader for the next message it holds",
                    detail: error.to_string(),
                });
                None
            }
        }
    }

    fn set_applied_stream_seq(&self, stream_seq: u64) {
        self.counters
            .applied_stream_seq
            .store(stream_seq, Ordering::Release);
        self.applied_tx.send_replace(stream_seq);
    }

    /// An ephemeral, unacknowledged consumer starting at `start`, kept in memory on one
    /// server: if that server dies, the bridge makes another from where it stopped.
    pub(super) async fn consumer_from(
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
}

/// Consumes the stream from the last applied sequence, for as long as the node runs:
/// whatever ends a consumer (a server's death, a lost connection, silence past twice the
/// idle heartbeat, a message the stream holds that it does not deliver), a new one starts
/// where the node stopped.
pub(super) async fn apply_loop(inner: Arc<Inner>, mut state: ApplyState) {
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
        // How long the consumer may deliver nothing before the node looks at the stream's
        // end itself (see `check_silent_end`).
        let silence = inner.consumer_silence();
        loop {
            let message = match tokio::time::timeout(silence, messages.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => match inner.check_silent_end(&mut state).await {
                    Silence::Idle => continue,
                    Silence::Stuck => break,
                },
            };
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
                        inner.report_lost(&mut state, applied + 1, to);
                        if to < stream_seq - 1 {
                            break;
                        }
                    }
                    // Retention kept them, yet they may be gone one by one (a message
                    // deleted from the stream): a new consumer would skip them again, for
                    // ever. Those the stream's leader no longer holds are lost; a consumer
                    // that skipped messages the stream holds is replaced.
                    Some(_) => match inner.next_held(applied + 1, stream_seq).await {
                        Some(held) if held > applied + 1 => {
                            let to = held - 1;
                            inner.report_lost(&mut state, applied + 1, to);
                            if to < stream_seq - 1 {
                                break;
                            }
                        }
                        _ => break,
                    },
                    None => break,
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

/// What a consumer's silence turned out to be (see [`Inner::check_silent_end`]).
enum Silence {
    /// Nothing the node has not applied is held (or the stream could not say): go on
    /// waiting.
    Idle,
    /// The stream holds a message the consumer has not delivered: make another.
    Stuck,
}

/// The tables a commit changes, each once.
fn tables_of(commit: &CommitMessage) -> Vec<TableId> {
    let mut tables: Vec<TableId> = Vec::new();
    for change in &commit.changes {
        if !tables.contains(&change.table_id) {
            tables.push(change.table_id.clone());
        }
    }
    tables
}
