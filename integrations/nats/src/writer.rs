//! The engine's side: appending commits and schema changes to the commit stream.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, kv, message::PublishMessage, stream};
use bytes::Bytes;
use livecore::{ChangeNotification, SeqId, TableId, TableSchema, MAX_COMMIT_CHANGES};

use crate::cluster::{
    backoff, connect, ensure_bucket, ensure_stream, jetstream, read_prefix, schema_key,
    schema_prefix, stream_tail,
};
use crate::codec::{self, SchemaMessage, StreamEntry};
use crate::config::{ConnectionConfig, StreamConfig, WriterConfig};
use crate::error::{BridgeError, NatsResult};

/// Attempts per append before the error is returned (a server election takes a few),
/// all within [`WriterConfig::append_deadline`].
const APPEND_ATTEMPTS: u32 = 20;

/// Room left for headers (message id, key-value operation) when checking a schema
/// change's size against the servers' max_payload.
const SCHEMA_HEADROOM: usize = 512;

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its stream sequence.
    pub stream_seq: u64,
    /// True when JetStream already had a message with this id: stored once.
    pub duplicate: bool,
}

/// A commit sent and not yet acknowledged.
struct InFlight {
    seq: SeqId,
    id: String,
    bytes: Bytes,
    /// None when the send itself failed: the commit is re-sent when its turn comes.
    ack: Option<PublishAckFuture>,
}

/// Appends the engine's commits, in SeqId order, to the replicated commit stream. One
/// writer per stream: the engine's commit order is the stream's order.
///
/// Each message carries the id `c-<seq>` (schema changes `s-<table>-<version>`), so an
/// append retried after a lost acknowledgement is stored once (within the stream's
/// duplicate window); an append not acknowledged is retried with the same id.
///
/// [`send_commit`](Self::send_commit) keeps up to [`WriterConfig::max_in_flight`] appends
/// unacknowledged. Each one sent behind another still in flight names that one as the
/// stream's expected last message id, so JetStream refuses it if its predecessor did not
/// land: a failed append is re-sent, with everything sent after it, in order, one at a
/// time, and the stream never holds a commit before the one it follows.
pub struct CommitWriter {
    js: jetstream::Context,
    stream: stream::Stream,
    schemas: kv::Store,
    subject: String,
    prev: Option<SeqId>,
    versions: HashMap<TableId, u64>,
    max_in_flight: usize,
    append_deadline: Duration,
    /// The client's connection (its count of connections made) on which the writer last
    /// asked for a reconnect: one episode of timeouts on a connection (an acknowledgement
    /// waited on, then the retries of the same append) forces one reconnect, not one per
    /// timeout.
    reconnect_requested_on: AtomicU64,
    in_flight: VecDeque<InFlight>,
    /// The last commit acknowledged with every commit before it.
    acknowledged: Option<SeqId>,
    last_appended: Option<Appended>,
    resent: u64,
    errors: Vec<BridgeError>,
}

impl CommitWriter {
    /// Connects, creates the stream and the schema bucket when missing, and picks up
    /// where the stream ends (the last SeqId, the schema versions). The writer's own
    /// settings are the defaults. A stream whose messages all aged out no longer tells its
    /// last SeqId: that is [`BridgeError::UnknownTail`] (see
    /// [`connect_with`](Self::connect_with)).
    pub async fn connect(
        connection: &ConnectionConfig,
        config: &StreamConfig,
    ) -> Result<Self, BridgeError> {
        Self::connect_with(connection, config, &WriterConfig::default()).await
    }

    /// As [`connect`](Self::connect), with the writer's settings.
    ///
    /// When the stream held messages but none left tells the last commit's SeqId (every
    /// message aged out past `max_age`, or those left cannot be decoded), this is
    /// [`BridgeError::UnknownTail`]: connect with [`connect_after`](Self::connect_after)
    /// and the engine's last SeqId. Undecodable messages at the stream's end are skipped
    /// (the last one that decodes tells where the stream ends) and kept for
    /// [`take_errors`](Self::take_errors).
    pub async fn connect_with(
        connection: &ConnectionConfig,
        config: &StreamConfig,
        writer: &WriterConfig,
    ) -> Result<Self, BridgeError> {
        Self::open(connection, config, writer, None).await
    }

    /// As [`connect_with`](Self::connect_with), for a stream whose end no longer tells the
    /// last commit's SeqId ([`BridgeError::UnknownTail`]): `last` is the SeqId of the
    /// engine's last commit appended to the stream, and the next commit names it as its
    /// predecessor, so nodes and resumes see the chain go on (and a resume from before it
    /// is `ResumeUnavailable`, not a silent hole). When the stream still tells its last
    /// SeqId, that one is used and `last` is ignored.
    pub async fn connect_after(
        connection: &ConnectionConfig,
        config: &StreamConfig,
        writer: &WriterConfig,
        last: SeqId,
    ) -> Result<Self, BridgeError> {
        Self::open(connection, config, writer, Some(last)).await
    }

    async fn open(
        connection: &ConnectionConfig,
        config: &StreamConfig,
        writer: &WriterConfig,
        given_last: Option<SeqId>,
    ) -> Result<Self, BridgeError> {
        if writer.max_in_flight == 0 || writer.append_deadline.is_zero() {
            return Err(BridgeError::InvalidConfig(
                "max_in_flight and append_deadline must be above zero".into(),
            ));
        }
        let client = connect(connection).await?;
        let js = jetstream(client, connection);
        let mut stream = ensure_stream(&js, config).await?;
        let schemas = ensure_bucket(&js, config, &config.schema_bucket).await?;
        let info = stream.info().await.nats("reading stream info")?.clone();
        let tail = stream_tail(&stream, &info.state).await?;
        let prev = match (tail.last_commit, given_last) {
            (Some(prev), _) => prev,
            (None, Some(last)) => Some(last),
            (None, None) => {
                return Err(BridgeError::UnknownTail {
                    last_stream_seq: info.state.last_sequence,
                })
            }
        };
        let mut versions = HashMap::new();
        for (key, value) in
            read_prefix(&js, &schemas, "schema.", connection.request_timeout).await?
        {
            let message = match codec::decode_stream_entry(&value) {
                Ok(StreamEntry::Schema(message)) => message,
                Ok(_) => continue,
                Err(error) => {
                    return Err(BridgeError::Decode {
                        stream_seq: 0,
                        error,
                    })
                }
            };
            debug_assert!(key.starts_with(&schema_prefix(&message.schema.table_id)));
            let version = versions.entry(message.schema.table_id).or_insert(0);
            *version = (*version).max(message.version);
        }
        Ok(Self {
            js,
            stream,
            schemas,
            subject: config.subject.clone(),
            prev,
            versions,
            max_in_flight: writer.max_in_flight,
            append_deadline: writer.append_deadline,
            reconnect_requested_on: AtomicU64::new(u64::MAX),
            in_flight: VecDeque::new(),
            acknowledged: prev,
            last_appended: None,
            resent: 0,
            // Oldest first, as a node reports them.
            errors: tail.undecodable.into_iter().rev().collect(),
        })
    }

    /// The errors met since the last call, oldest first: undecodable messages at the
    /// stream's end skipped on connecting.
    pub fn take_errors(&mut self) -> Vec<BridgeError> {
        std::mem::take(&mut self.errors)
    }

    /// The SeqId of the last commit appended (sent, acknowledged or not).
    pub fn last_seq(&self) -> Option<SeqId> {
        self.prev
    }

    /// The SeqId of the last commit JetStream acknowledged, every commit before it
    /// acknowledged too: what the stream is known to hold.
    pub fn acknowledged_seq(&self) -> Option<SeqId> {
        self.acknowledged
    }

    /// Commits sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Commits sent again because an acknowledgement failed or JetStream refused them
    /// behind a predecessor that had not landed.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// A table's current schema version (0: never appended).
    pub fn schema_version(&self, table: &TableId) -> u64 {
        self.versions.get(table).copied().unwrap_or(0)
    }

    /// The message id of commit `seq`.
    pub fn commit_message_id(seq: SeqId) -> String {
        format!("c-{}", seq.0)
    }

    /// Appends a table's new schema (its first, or an ALTER): every node registers it at
    /// this point of the stream. It is also kept by version in the schema bucket, first,
    /// so a node that starts after this point finds it. Waits for the commits in flight
    /// first. Returns the version given.
    pub async fn append_schema(
        &mut self,
        schema: TableSchema,
    ) -> Result<(u64, Appended), BridgeError> {
        schema.validate()?;
        self.flush().await?;
        let version = self.schema_version(&schema.table_id) + 1;
        let message = SchemaMessage {
            after: self.prev,
            version,
            schema,
        };
        let bytes = Bytes::from(codec::encode_schema(&message));
        // Stored in the bucket and the stream with a few headers: refused at once when
        // the servers would not take it.
        if bytes.len() + SCHEMA_HEADROOM > self.js.client().server_info().max_payload {
            return Err(self.too_large(None, bytes.len()));
        }
        let table = message.schema.table_id;
        // Retried like an append (the same key and value: storing twice is harmless): a
        // bucket a node created a moment ago may not take writes on every server yet.
        // Bounded by the append deadline, as an append; a put that timed out makes the
        // writer reconnect first.
        let key = schema_key(&table, version);
        let started = Instant::now();
        let deadline = started + self.append_deadline;
        let mut attempt = 0;
        loop {
            let put = tokio::time::timeout_at(deadline, self.schemas.put(&key, bytes.clone()));
            let error = match put.await {
                Ok(Ok(_)) => break,
                Ok(Err(error)) => {
                    // No acknowledgement (most often a timeout).
                    if error.kind() == kv::PutErrorKind::Ack {
                        self.reconnect().await;
                    }
                    error.to_string()
                }
                Err(_) => "timed out".to_string(),
            };
            attempt += 1;
            if Instant::now() + backoff(attempt) >= deadline {
                return Err(BridgeError::AppendTimeout {
                    id: key,
                    waited: started.elapsed(),
                    detail: Some(error),
                });
            }
            if attempt >= APPEND_ATTEMPTS {
                return Err(BridgeError::Nats {
                    what: "storing a schema version",
                    detail: error,
                });
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        let id = format!(
            "s-{}-{}-{version}",
            crate::cluster::hex(table.namespace()),
            crate::cluster::hex(table.name())
        );
        let appended = self.append_bytes(&id, bytes).await?;
        self.versions.insert(table, version);
        Ok((version, appended))
    }

    /// Encodes commit `seq` as [`append_commit`](Self::append_commit) would, without
    /// appending it.
    pub fn encode_commit(&self, seq: SeqId, changes: &[ChangeNotification]) -> Bytes {
        Bytes::from(codec::encode_commit(seq, self.prev, changes, |table| {
            self.schema_version(table)
        }))
    }

    /// Appends one commit and waits for JetStream to acknowledge it (stored on a majority
    /// of the replicas), and every commit sent before it. `seq` must be above the last
    /// appended; the changes must name tables whose schema was appended.
    pub async fn append_commit(
        &mut self,
        seq: SeqId,
        changes: &[ChangeNotification],
    ) -> Result<Appended, BridgeError> {
        self.send_commit(seq, changes).await?;
        self.flush().await?.ok_or(BridgeError::Stopped)
    }

    /// Sends one commit without waiting for its acknowledgement, waiting only while
    /// [`WriterConfig::max_in_flight`] are unacknowledged; [`flush`](Self::flush) waits
    /// for the rest. Checks as [`append_commit`](Self::append_commit).
    ///
    /// On an error (an append that failed its retries, or was not acknowledged within
    /// [`WriterConfig::append_deadline`]: [`BridgeError::AppendTimeout`]), the commits after
    /// [`acknowledged_seq`](Self::acknowledged_seq) are not known to be stored: the writer
    /// forgets them ([`last_seq`](Self::last_seq) goes back to it), and the host sends
    /// them again; their message ids keep any that did land from being stored twice. A
    /// commit larger than the servers' max_payload is [`BridgeError::TooLarge`] at once:
    /// it was not sent, and the commits in flight and [`last_seq`](Self::last_seq) are
    /// left as they were.
    pub async fn send_commit(
        &mut self,
        seq: SeqId,
        changes: &[ChangeNotification],
    ) -> Result<(), BridgeError> {
        if let Some(last) = self.prev {
            if seq <= last {
                return Err(BridgeError::OutOfOrder { seq, last });
            }
        }
        if changes.len() > MAX_COMMIT_CHANGES {
            return Err(livecore::LiveError::CommitTooLarge {
                changes: changes.len(),
                max: MAX_COMMIT_CHANGES,
            }
            .into());
        }
        for change in changes {
            if self.schema_version(&change.table_id) == 0 {
                return Err(livecore::LiveError::UnknownTable(change.table_id.clone()).into());
            }
        }
        while self.in_flight.len() >= self.max_in_flight {
            self.settle_oldest().await?;
        }
        let bytes = self.encode_commit(seq, changes);
        let id = Self::commit_message_id(seq);
        let mut message = PublishMessage::build()
            .payload(bytes.clone())
            .message_id(&id);
        if let Some(before) = self.in_flight.back() {
            message = message.expected_last_message_id(&before.id);
        }
        // A message over the servers' max_payload is refused by the client before it is
        // sent: typed at once, not retried (it would fail the same way every time). The
        // writer moves past its SeqId, so the next commit names it as its predecessor:
        // nodes report the hole (`ChainBroken`) and a resume across it is
        // `ResumeUnavailable`, where naming the commit before it hid the hole.
        let ack = match self.js.send_publish(self.subject.clone(), message).await {
            Ok(ack) => Some(ack),
            Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                self.prev = Some(seq);
                return Err(self.too_large(Some(seq), bytes.len()));
            }
            Err(_) => None,
        };
        self.in_flight.push_back(InFlight {
            seq,
            id,
            bytes,
            ack,
        });
        self.prev = Some(seq);
        Ok(())
    }

    /// Waits until every commit sent is acknowledged. Returns where the last one landed
    /// (None when nothing was ever appended through this writer).
    pub async fn flush(&mut self) -> Result<Option<Appended>, BridgeError> {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(self.last_appended)
    }

    /// Waits for the oldest commit in flight. If it failed, it and every commit sent after
    /// it (refused, or not, by the expected-last-id check) are re-sent in order, one at a
    /// time with retries: a commit that did land is acknowledged as a duplicate.
    ///
    /// All of it within [`WriterConfig::append_deadline`] (then
    /// [`BridgeError::AppendTimeout`]); an acknowledgement that timed out makes the writer
    /// reconnect (to another server when it can) before it sends again: a hung server is
    /// not waited on for every retry.
    async fn settle_oldest(&mut self) -> Result<(), BridgeError> {
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let started = Instant::now();
        let deadline = started + self.append_deadline;
        let landed = match oldest.ack {
            Some(ack) => match tokio::time::timeout_at(deadline, ack).await {
                Ok(Ok(ack)) => Some(ack),
                Ok(Err(error)) => {
                    if error.kind() == PublishErrorKind::TimedOut {
                        self.reconnect().await;
                    }
                    None
                }
                Err(_) => {
                    self.reconnect().await;
                    None
                }
            },
            None => None,
        };
        if let Some(ack) = landed {
            self.acknowledge(
                oldest.seq,
                Appended {
                    stream_seq: ack.sequence,
                    duplicate: ack.duplicate,
                },
            );
            return Ok(());
        }
        let mut again = vec![(oldest.seq, oldest.id, oldest.bytes)];
        // Their acknowledgements are not awaited: each is re-sent below, in order.
        again.extend(
            self.in_flight
                .drain(..)
                .map(|later| (later.seq, later.id, later.bytes)),
        );
        for (seq, id, bytes) in again {
            self.resent += 1;
            match self.append_until(&id, bytes, started, deadline).await {
                Ok(appended) => self.acknowledge(seq, appended),
                Err(error) => {
                    self.prev = self.acknowledged;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    fn acknowledge(&mut self, seq: SeqId, appended: Appended) {
        self.acknowledged = Some(seq);
        self.last_appended = Some(appended);
    }

    /// Appends prepared bytes under a message id, retrying (same id) until acknowledged.
    /// Public so a host can re-send what it appended before a crash; a second message with
    /// an id JetStream remembers is acknowledged as a duplicate and stored once.
    ///
    /// Within [`WriterConfig::append_deadline`]: past it, [`BridgeError::AppendTimeout`].
    pub async fn append_bytes(&self, id: &str, bytes: Bytes) -> Result<Appended, BridgeError> {
        let started = Instant::now();
        self.append_until(id, bytes, started, started + self.append_deadline)
            .await
    }

    /// As [`append_bytes`](Self::append_bytes), until `deadline` (the wait counted from
    /// `started`). An acknowledgement that timed out makes the writer reconnect first.
    async fn append_until(
        &self,
        id: &str,
        bytes: Bytes,
        started: Instant,
        deadline: Instant,
    ) -> Result<Appended, BridgeError> {
        let mut last_error = None;
        let mut out_of_time = false;
        for attempt in 0..APPEND_ATTEMPTS {
            if attempt > 0 {
                if Instant::now() + backoff(attempt) >= deadline {
                    out_of_time = true;
                    break;
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
            let attempt = async {
                let sent = self
                    .js
                    .send_publish(
                        self.subject.clone(),
                        PublishMessage::build()
                            .payload(bytes.clone())
                            .message_id(id),
                    )
                    .await;
                match sent {
                    Ok(future) => future.await,
                    Err(error) => Err(error),
                }
            };
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(ack)) => {
                    return Ok(Appended {
                        stream_seq: ack.sequence,
                        duplicate: ack.duplicate,
                    })
                }
                Ok(Err(error)) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    return Err(self.too_large(None, bytes.len()));
                }
                Ok(Err(error)) => {
                    if error.kind() == PublishErrorKind::TimedOut {
                        self.reconnect().await;
                    }
                    last_error = Some(error.to_string());
                }
                Err(_) => {
                    self.reconnect().await;
                    last_error.get_or_insert_with(|| "no acknowledgement".into());
                    out_of_time = true;
                    break;
                }
            }
        }
        if out_of_time {
            return Err(BridgeError::AppendTimeout {
                id: id.to_string(),
                waited: started.elapsed(),
                detail: last_error,
            });
        }
        Err(BridgeError::Nats {
            what: "appending to the commit stream",
            detail: last_error.unwrap_or_default(),
        })
    }

    /// Makes the client reconnect (to another server when it can), unless it is already
    /// reconnecting or the writer already asked for it on this connection (the waits of
    /// one commit and its retries can time out in a row: one reconnect for them): a
    /// request left unanswered on a connection that still looks open is most likely a hung
    /// server, which the pings would only find later.
    async fn reconnect(&self) {
        let client = self.js.client();
        if client.connection_state() != async_nats::connection::State::Connected {
            return;
        }
        let connection = client.statistics().connects.load(Ordering::Acquire);
        if self
            .reconnect_requested_on
            .swap(connection, Ordering::AcqRel)
            == connection
        {
            return;
        }
        let _ = client.force_reconnect().await;
    }

    /// The typed error of a message the servers would refuse for its size.
    fn too_large(&self, seq: Option<SeqId>, size: usize) -> BridgeError {
        BridgeError::TooLarge {
            seq,
            size,
            max_payload: self.js.client().server_info().max_payload,
        }
    }

    /// The stream, for inspection.
    pub fn stream(&self) -> &stream::Stream {
        &self.stream
    }
}
