//! The engine's side: appending commits and schema changes to the commit stream.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, kv, message::PublishMessage, stream};
use bytes::Bytes;
use livecore::{ChangeNotification, SeqId, TableId, TableSchema, MAX_COMMIT_CHANGES};

use crate::cluster::{
    backoff, connect, ensure_bucket, ensure_stream, jetstream, read_prefix, schema_key,
    schema_prefix, server_answers, stream_tail, PROBE_TIMEOUT,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

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
    /// The stream's name.
    stream_name: String,
    /// When the stream the writer opened was created (its info's `created`): a stream
    /// deleted and created again under the same name has another.
    created: async_nats::datetime::DateTime,
    /// The stream's last sequence as the writer knows it (its info on connecting, then
    /// the highest acknowledged): the first commit sent with nothing in flight expects it,
    /// so JetStream refuses it in a stream created again (which starts from 0).
    known_last_stream_seq: AtomicU64,
    /// Set once the stream was found created again: every append refuses with it.
    recreated: Mutex<Option<BridgeError>>,
    /// How long the probe before a forced reconnect waits.
    probe_timeout: Duration,
    forced_reconnects: AtomicU64,
    forced_reconnects_skipped: AtomicU64,
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
    ///
    /// A stream that holds no commit is taken for a new one: the first commit names no
    /// predecessor. A writer connecting for the first time cannot tell a new stream from
    /// one deleted and created again under the same name (empty, its sequences from 1);
    /// an engine that already appended commits (to a stream of that name, before) connects
    /// with [`connect_after`](Self::connect_after) and its last SeqId, so its SeqIds go on
    /// from there. (A running writer finds a stream created again itself:
    /// [`BridgeError::StreamRecreated`].)
    ///
    /// All of it (connecting, creating or opening the stream and the schema bucket, reading
    /// the stream's end and the schema versions) within
    /// [`WriterConfig::connect_deadline`]: past it, [`BridgeError::Connect`]. While
    /// JetStream cannot answer (no answer within the request timeout, or "temporarily
    /// unavailable" while its servers elect a leader after an outage), creating or opening
    /// the stream, and then the bucket, is tried again: new attempts start for up to 30 s
    /// after each one's first, within the deadline. An error the servers answer with ends
    /// it after five attempts.
    pub async fn connect_with(
        connection: &ConnectionConfig,
        config: &StreamConfig,
        writer: &WriterConfig,
    ) -> Result<Self, BridgeError> {
        Self::open(connection, config, writer, None).await
    }

    /// As [`connect_with`](Self::connect_with), naming `last`, the SeqId of the engine's
    /// last commit appended, for a stream that does not tell its last commit: one whose
    /// end no longer tells it ([`BridgeError::UnknownTail`]), and one that holds no commit
    /// (a stream deleted and created again, [`BridgeError::StreamRecreated`], or a new
    /// stream the engine moves to). The next commit names `last` as its predecessor, so
    /// nodes and resumes see the chain go on (a resume from before it is
    /// `ResumeUnavailable`, not a silent hole) and SeqIds never go back. When the stream
    /// tells its last commit's SeqId, that one is used and `last` is ignored.
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
        if writer.max_in_flight == 0
            || writer.append_deadline.is_zero()
            || writer.connect_deadline.is_zero()
        {
            return Err(BridgeError::InvalidConfig(
                "max_in_flight, append_deadline and connect_deadline must be above zero".into(),
            ));
        }
        // The step in progress, for the error at the deadline.
        let step = Mutex::new("connecting");
        let opening = Self::open_steps(connection, config, writer, given_last, &step);
        match tokio::time::timeout(writer.connect_deadline, opening).await {
            Ok(outcome) => outcome,
            Err(_) => Err(BridgeError::Connect(format!(
                "the writer was not ready within connect_deadline ({:?}): still {}",
                writer.connect_deadline,
                step.lock().map_or("connecting", |step| *step)
            ))),
        }
    }

    async fn open_steps(
        connection: &ConnectionConfig,
        config: &StreamConfig,
        writer: &WriterConfig,
        given_last: Option<SeqId>,
        step: &Mutex<&'static str>,
    ) -> Result<Self, BridgeError> {
        let at = |now: &'static str| {
            if let Ok(mut step) = step.lock() {
                *step = now;
            }
        };
        let client = connect(connection).await?;
        let js = jetstream(client, connection);
        at("creating or opening the commit stream");
        let mut stream = ensure_stream(&js, config).await?;
        at("creating or opening the schema bucket");
        let schemas = ensure_bucket(&js, config, &config.schema_bucket).await?;
        at("reading the stream's info");
        let info = stream.info().await.nats("reading stream info")?.clone();
        at("reading the stream's last messages");
        let tail = stream_tail(&stream, &info.state).await?;
        let prev = match (tail.last_commit, given_last) {
            (Some(Some(prev)), _) => Some(prev),
            // The engine's word for a stream that does not tell its last commit.
            (Some(None) | None, Some(last)) => Some(last),
            (Some(None), None) => None,
            (None, None) => {
                return Err(BridgeError::UnknownTail {
                    last_stream_seq: info.state.last_sequence,
                })
            }
        };
        at("reading the schema versions");
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
            stream_name: config.stream.clone(),
            created: info.created,
            known_last_stream_seq: AtomicU64::new(info.state.last_sequence),
            recreated: Mutex::new(None),
            probe_timeout: PROBE_TIMEOUT.min(connection.request_timeout),
            forced_reconnects: AtomicU64::new(0),
            forced_reconnects_skipped: AtomicU64::new(0),
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

    /// Commits sent again because an acknowledgement failed, or JetStream refused them
    /// behind a predecessor that had not landed or because the stream's last sequence was
    /// not the one the writer knew (another publisher's message, an append that landed
    /// without its acknowledgement).
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Reconnects the writer made its client do after an acknowledgement timed out, the
    /// server having failed the probe too (see
    /// [`forced_reconnects_skipped`](Self::forced_reconnects_skipped)).
    pub fn forced_reconnects(&self) -> u64 {
        self.forced_reconnects.load(Ordering::Relaxed)
    }

    /// Reconnects the writer did not force after an acknowledgement timed out because the
    /// server answered a round trip at once (within a second): it is alive and JetStream
    /// is what is slow (a stream without a leader, a stalled disk), which another
    /// connection would not cure.
    pub fn forced_reconnects_skipped(&self) -> u64 {
        self.forced_reconnects_skipped.load(Ordering::Relaxed)
    }

    /// The error the writer refuses every append with once it found its stream created
    /// again ([`BridgeError::StreamRecreated`]).
    fn refusal(&self) -> Result<(), BridgeError> {
        match &*lock(&self.recreated) {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Whether the stream is still the one the writer opened. Its info telling another
    /// creation time is [`BridgeError::StreamRecreated`], kept so every later append
    /// refuses too. Any other outcome (the same stream, a stream not found, no answer by
    /// `deadline`) is Ok: the append that follows lands, or fails, on its own.
    async fn check_stream(&self, deadline: Instant) -> Result<(), BridgeError> {
        self.refusal()?;
        let mut stream = self.stream.clone();
        let Ok(Ok(info)) = tokio::time::timeout_at(deadline, stream.info()).await else {
            return Ok(());
        };
        if info.created == self.created {
            return Ok(());
        }
        let error = BridgeError::StreamRecreated {
            stream: self.stream_name.clone(),
            last_seq: self.acknowledged,
            last_stream_seq: info.state.last_sequence,
        };
        *lock(&self.recreated) = Some(error.clone());
        Err(error)
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
        self.refusal()?;
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
        // The put and the stream append that follows are bounded together by one append
        // deadline, as an append; a put that timed out makes the writer reconnect first.
        let key = schema_key(&table, version);
        let started = Instant::now();
        let deadline = started + self.append_deadline;
        // Not into the bucket for a stream created again: the version would be there and
        // never in the stream.
        self.check_stream(deadline).await?;
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
        let appended = self
            .append_until(&id, bytes, started, deadline, true)
            .await?;
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
    ///
    /// A commit sent with nothing in flight expects the stream's last sequence to be the
    /// one the writer knows, so that a stream deleted and created again under the same
    /// name (empty, its sequences from 1) refuses it; the writer then reads the stream's
    /// info, and a stream created at another time than the one it opened is
    /// [`BridgeError::StreamRecreated`], for this commit and every later one (none of them
    /// is stored: see the error for what the host does). A refusal in the same stream (a
    /// message another publisher appended) is sent again without the expectation.
    pub async fn send_commit(
        &mut self,
        seq: SeqId,
        changes: &[ChangeNotification],
    ) -> Result<(), BridgeError> {
        self.refusal()?;
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
        match self.in_flight.back() {
            Some(before) => message = message.expected_last_message_id(&before.id),
            None => {
                let known = self.known_last_stream_seq.load(Ordering::Acquire);
                // A stream that never held a message has nothing to tell apart.
                if known > 0 {
                    message = message.expected_last_sequence(known);
                }
            }
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
        // The first one sent again is preceded by a look at the stream's identity (a
        // refusal for the last sequence, a stream not found, a lost connection: it may
        // have been deleted and created again meanwhile).
        for (index, (seq, id, bytes)) in again.into_iter().enumerate() {
            self.resent += 1;
            match self
                .append_until(&id, bytes, started, deadline, index == 0)
                .await
            {
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
        self.known_last_stream_seq
            .fetch_max(appended.stream_seq, Ordering::AcqRel);
    }

    /// Appends prepared bytes under a message id, retrying (same id) until acknowledged.
    /// Public so a host can re-send what it appended before a crash; a second message with
    /// an id JetStream remembers is acknowledged as a duplicate and stored once.
    ///
    /// Within [`WriterConfig::append_deadline`]: past it, [`BridgeError::AppendTimeout`].
    /// The stream's identity is read first (and before every retry): into a stream
    /// created again since the writer opened it, nothing is appended
    /// ([`BridgeError::StreamRecreated`]).
    pub async fn append_bytes(&self, id: &str, bytes: Bytes) -> Result<Appended, BridgeError> {
        let started = Instant::now();
        self.append_until(id, bytes, started, started + self.append_deadline, true)
            .await
    }

    /// As [`append_bytes`](Self::append_bytes), until `deadline` (the wait counted from
    /// `started`). An acknowledgement that timed out makes the writer reconnect first.
    /// The stream's identity is checked before every retry, and before the first attempt
    /// when `check_first`.
    async fn append_until(
        &self,
        id: &str,
        bytes: Bytes,
        started: Instant,
        deadline: Instant,
        check_first: bool,
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
            if attempt > 0 || check_first {
                self.check_stream(deadline).await?;
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
                    self.known_last_stream_seq
                        .fetch_max(ack.sequence, Ordering::AcqRel);
                    return Ok(Appended {
                        stream_seq: ack.sequence,
                        duplicate: ack.duplicate,
                    });
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
    /// reconnecting, the writer already asked for it on this connection (the waits of one
    /// commit and its retries can time out in a row: one reconnect for them), or the
    /// server answers a round trip at once (the probe: a live server whose JetStream is
    /// slow, which another connection would not cure; counted in
    /// [`forced_reconnects_skipped`](Self::forced_reconnects_skipped)). A request left
    /// unanswered on a connection that still looks open, by a server that does not answer
    /// the probe either, is most likely a hung server, which the pings would only find
    /// later.
    async fn reconnect(&self) {
        let client = self.js.client();
        if client.connection_state() != async_nats::connection::State::Connected {
            return;
        }
        let connection = client.statistics().connects.load(Ordering::Acquire);
        if self.reconnect_requested_on.load(Ordering::Acquire) == connection {
            return;
        }
        if server_answers(&client, self.probe_timeout).await {
            self.forced_reconnects_skipped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self
            .reconnect_requested_on
            .swap(connection, Ordering::AcqRel)
            == connection
        {
            return;
        }
        if client.force_reconnect().await.is_ok() {
            self.forced_reconnects.fetch_add(1, Ordering::Relaxed);
        }
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
