//! The replay behind a resume: finds where the commits after a client's SeqId start in
//! the stream, proves none is missing, and streams them into the client's gated
//! subscription. Apart from the apply loop: it reads the stream through a consumer of its
//! own and never changes what the node applied.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer};
use futures_util::StreamExt;
use livecore::{LiveError, LiveQueryId, SeqId, TableId, TableSchema};

use crate::cluster::schema_key;
use crate::codec::{self, StreamEntry};
use crate::error::{BridgeError, NatsResult};

use super::shared::{lock, Inner};

/// What a replay gave the client: commits that matched.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Replayed {
    pub(super) count: u64,
}

/// How often a resume retries a client's full channel.
const STALL_POLL: Duration = Duration::from_millis(2);

impl Inner {
    /// Finds where a resume after `last_seq` starts and replays every commit from there to
    /// the stream's end as of now into the gated subscription. `None` when the stream no
    /// longer covers `last_seq`. Commits after the end read here are published live after
    /// the subscription was gated, so its gate holds them.
    pub(super) async fn replay(
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
        let (mut consumer, mut messages) = self.replay_consumer(low).await?;
        // Consumers made again in a row without a message between: a consumer that
        // delivers nothing (or skips) while the stream holds the next message is replaced
        // at most `reconnect_after_failures` times before the resume gives up.
        let mut replaced = 0u32;
        let silence = self.replay_silence();
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
            // Idle heartbeats keep a consumer alive that delivers nothing: one on a server
            // whose copy of the stream lags (it catches up late, or never), or one waiting
            // for a message removed from the stream. Bounded, never a wait without end.
            let next = tokio::time::timeout(silence, messages.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => Some(message),
                Ok(Some(Err(error))) => {
                    return Err(BridgeError::Nats {
                        what: "reading the stream",
                        detail: error.to_string(),
                    })
                }
                Ok(None) => return Err(BridgeError::Stopped),
                Err(_) => None,
            };
            let stream_seq = match &message {
                Some(message) => {
                    message
                        .info()
                        .nats("reading message metadata")?
                        .stream_sequence
                }
                None => 0,
            };
            let message = match message {
                Some(message) if stream_seq == expected => message,
                // Before the point this consumer was asked for: already read.
                Some(_) if stream_seq < expected => continue,
                // Skipped, or nothing delivered: the client cannot be made whole only if
                // the stream no longer holds the message (trimmed or removed while we
                // read). A consumer that skipped or fell silent while the stream's leader
                // holds it is replaced from there.
                _ => {
                    if self.entry_at(expected).await?.is_none() {
                        return Ok(None);
                    }
                    replaced += 1;
                    if replaced > self.config.reconnect_after_failures {
                        self.drop_consumer(&consumer);
                        return Err(BridgeError::Nats {
                            what: "reading the stream",
                            detail: format!(
                                "stream sequence {expected} not delivered by {replaced} \
                                 consumers in a row (each waited {silence:?})"
                            ),
                        });
                    }
                    self.drop_consumer(&consumer);
                    (consumer, messages) = self.replay_consumer(expected).await?;
                    continue;
                }
            };
            replaced = 0;
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
        self.drop_consumer(&consumer);
        Ok(Some(Replayed { count: replayed }))
    }

    /// Deletes a replay's consumer in the background (the servers would after its
    /// inactivity threshold): the resume does not wait on it.
    fn drop_consumer(&self, consumer: &Consumer<pull::Config>) {
        let stream = self.stream.clone();
        let name = consumer.cached_info().name.clone();
        tokio::spawn(async move {
            let _ = stream.delete_consumer(&name).await;
        });
    }

    /// How long a replay waits for its consumer's next message before it looks at the
    /// stream itself: a few idle heartbeats, at least the request timeout.
    fn replay_silence(&self) -> Duration {
        (self.config.consumer_heartbeat * 4).max(self.config.connection.request_timeout)
    }

    /// A consumer of the replay's own from `start`, and its messages.
    async fn replay_consumer(
        &self,
        start: u64,
    ) -> Result<(Consumer<pull::Config>, pull::Stream), BridgeError> {
        let consumer = self.consumer_from(start).await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.config.batch)
            .heartbeat(self.config.consumer_heartbeat)
            .messages()
            .await
            .nats("reading the stream")?;
        Ok((consumer, messages))
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
}
