//! The replay behind a resume: finds where the commits after a client's SeqId start in
//! the stream, proves none is missing, and streams them into the client's gated
//! subscription. Apart from the apply loop: it reads the stream through a consumer of its
//! own and never changes what the node applied.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt;
use livecore::{LiveError, LiveQueryId, SeqId, TableId, TableSchema};

use crate::cluster::schema_key;
use crate::codec::{self, StreamEntry};
use crate::error::{BridgeError, NatsResult};

use super::shared::{lock, Inner};

/// How far a replay got: what it gave the client, and where the attempt after a failed
/// request goes on from (so a retry neither repeats a commit nor loosens the chain's
/// proof).
#[derive(Debug, Default)]
pub(super) struct Replayed {
    /// Commits given to the client (those that matched its subscription).
    pub(super) count: u64,
    /// The last commit given to the client.
    replayed_to: Option<SeqId>,
    /// The last commit of the chain followed, given or not.
    chain: Option<SeqId>,
    /// Whether each schema version of the subscription's table met so far fits the
    /// version it was compiled against.
    fits: HashMap<u64, bool>,
}

/// How often a resume retries a client's full channel.
const STALL_POLL: Duration = Duration::from_millis(2);

/// A replay's own consumer and its messages. Deleted when dropped (replaced, or the
/// replay over, whatever its outcome), in the background: the servers would only after
/// its inactivity threshold, and the resume does not wait on it.
struct ReplayReader {
    stream: Stream,
    consumer: Consumer<pull::Config>,
    messages: pull::Stream,
}

impl Drop for ReplayReader {
    fn drop(&mut self) {
        // Without a runtime (one shutting down) the servers' inactivity threshold does it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let stream = self.stream.clone();
            let name = self.consumer.cached_info().name.clone();
            runtime.spawn(async move {
                let _ = stream.delete_consumer(&name).await;
            });
        }
    }
}

impl Inner {
    /// Finds where a resume after `last_seq` starts and replays every commit from there to
    /// the stream's end as of now into the gated subscription, going on from `progress`
    /// (what an earlier attempt of the same resume replayed). False when the stream no
    /// longer covers `last_seq`. Commits after the end read here are published live after
    /// the subscription was gated, so its gate holds them.
    pub(super) async fn replay(
        &self,
        id: LiveQueryId,
        last_seq: SeqId,
        progress: &mut Replayed,
    ) -> Result<bool, BridgeError> {
        // What the client has, counting what earlier attempts gave it.
        let has = progress.chain.unwrap_or(last_seq);
        let mut stream = self.stream.clone();
        let info = stream.info().await.nats("reading stream info")?.clone();
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        if info.state.messages == 0 || first > last {
            // Nothing retained: only a client that has everything the node applied is
            // whole; a node that applied nothing knows where the stream ends only if it
            // never held a message (its messages aged out: the client may have missed
            // any of them).
            return Ok(match self.applied_seq() {
                Some(applied) => applied <= has,
                None => last == 0,
            });
        }
        let first_entry = match self.entry_at(first).await? {
            Some(entry) => entry,
            None => return Ok(false),
        };
        let predecessor = match &first_entry {
            StreamEntry::Commit(commit) => commit.prev,
            StreamEntry::Schema(schema) => schema.after,
        };
        if predecessor.is_some_and(|prev| prev > has) {
            return Ok(false);
        }
        // The first stream sequence whose position is above what the client has, found
        // by halving: positions never decrease along the stream, except at a late second
        // copy of a commit (appended after the duplicate window), which can send the
        // search past the start; the chain then fails at the first commit read, and the
        // replay reads the stream from its first message instead (see below).
        let (mut low, mut high) = (first, last + 1);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.entry_at(middle).await? {
                Some(entry) if entry.position() > has.0 => high = middle,
                Some(_) => low = middle + 1,
                None => return Ok(false),
            }
        }
        if low > last {
            return Ok(true);
        }
        let mut reader = self.replay_consumer(low).await?;
        // Consumers made again in a row without a message between: a consumer that
        // delivers nothing (or skips) while the stream holds the next message is replaced
        // at most `reconnect_after_failures` times before the resume gives up.
        let mut replaced = 0u32;
        let silence = self.consumer_silence();
        let mut expected = low;
        // True until the first commit this pass reads passes the chain check: a failure
        // there, after a search that skipped part of the stream, is read again from the
        // stream's first message before it counts.
        let mut first_from_search = low > first;
        // The subscription's table and the schema it was compiled against (an ALTER
        // applied since ends a gated subscription: its replay then fails, never mixes).
        let table = self.manager.subscription(id)?.table_id;
        let compiled = self.manager.table_schema(&table)?;
        while expected <= last {
            // Idle heartbeats keep a consumer alive that delivers nothing: one on a server
            // whose copy of the stream lags (it catches up late, or never), or one waiting
            // for a message removed from the stream. Bounded, never a wait without end.
            let next = tokio::time::timeout(silence, reader.messages.next()).await;
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
                        return Ok(false);
                    }
                    replaced += 1;
                    if replaced > self.config.reconnect_after_failures {
                        return Err(BridgeError::Nats {
                            what: "reading the stream",
                            detail: format!(
                                "stream sequence {expected} not delivered by {replaced} \
                                 consumers in a row (each waited {silence:?})"
                            ),
                        });
                    }
                    reader = self.replay_consumer(expected).await?;
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
            if commit.seq <= progress.chain.unwrap_or(last_seq) {
                // A second copy (appended after the duplicate window), of a commit the
                // client had or this resume gave it: given once.
                continue;
            }
            // Every commit after the client's SeqId must be here: the first names a
            // predecessor the client has (none only when the client has nothing), each
            // later one the commit before it. Otherwise commits are missing (retention,
            // or a writer that started again without the stream's end): no proof.
            let chained = match progress.chain {
                None => match commit.prev {
                    Some(prev) => prev <= last_seq,
                    None => last_seq.0 == 0,
                },
                Some(chain) => commit.prev == Some(chain),
            };
            if !chained {
                if first_from_search {
                    first_from_search = false;
                    expected = first;
                    reader = self.replay_consumer(first).await?;
                    continue;
                }
                return Ok(false);
            }
            first_from_search = false;
            // A commit written against another version of the subscription's table than
            // the one it was compiled against is replayed only when its rows still fit
            // (the same columns, in the same order, and scope): a same-width ALTER would
            // otherwise decode old rows as the new columns.
            if let Some((_, version)) = commit.schema_versions.iter().find(|(t, _)| *t == table) {
                let fit = match progress.fits.get(version) {
                    Some(fit) => *fit,
                    None => {
                        // A failed read is retried with the resume (the commit is not
                        // yet in `progress`), not taken for a schema that does not fit.
                        let fit = self
                            .schema_version(&table, *version)
                            .await?
                            .is_some_and(|schema| schema == *compiled);
                        progress.fits.insert(*version, fit);
                        fit
                    }
                };
                if !fit {
                    return Ok(false);
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
                                replayed_to: progress.replayed_to,
                                waited: self.config.resume_stall_timeout,
                            });
                        }
                        tokio::time::sleep(STALL_POLL).await
                    }
                    other => break other,
                }
            };
            // The commit is settled (given, or not the subscription's): a retry after a
            // failed request goes on after it.
            match outcome {
                Ok(true) => {
                    progress.chain = Some(commit.seq);
                    progress.count += 1;
                    progress.replayed_to = Some(commit.seq);
                }
                Ok(false) => progress.chain = Some(commit.seq),
                // The commit no longer fits the table (its schema changed since): the
                // client needs a snapshot.
                Err(
                    LiveError::RowArity { .. }
                    | LiveError::MissingOldRow(_)
                    | LiveError::MissingOwner(_)
                    | LiveError::UnknownTable(_),
                ) => return Ok(false),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(true)
    }

    /// A consumer of the replay's own from `start`, and its messages.
    async fn replay_consumer(&self, start: u64) -> Result<ReplayReader, BridgeError> {
        let consumer = self.consumer_from(start).await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.config.batch)
            .heartbeat(self.config.consumer_heartbeat)
            .messages()
            .await
            .nats("reading the stream")?;
        Ok(ReplayReader {
            stream: self.stream.clone(),
            consumer,
            messages,
        })
    }

    /// A table's schema at `version`, as met or from the schema bucket (None when the
    /// bucket does not hold it; an error when it could not be read).
    async fn schema_version(
        &self,
        table: &TableId,
        version: u64,
    ) -> Result<Option<TableSchema>, BridgeError> {
        if let Some(schema) = lock(&self.known_schemas).get(&(table.clone(), version)) {
            return Ok(Some(schema.clone()));
        }
        let read = self.schemas.get(schema_key(table, version)).await;
        let bytes = match read.nats("reading a schema version")? {
            Some(bytes) => bytes,
            None => return Ok(None),
        };
        let Ok(StreamEntry::Schema(message)) = codec::decode_stream_entry(&bytes) else {
            return Ok(None);
        };
        if message.version != version || message.schema.table_id != *table {
            return Ok(None);
        }
        lock(&self.known_schemas).insert((table.clone(), version), message.schema.clone());
        Ok(Some(message.schema))
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
