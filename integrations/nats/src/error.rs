//! The bridge's typed errors.

use std::fmt;

use std::time::Duration;

use livecore::{LiveError, LiveQueryId, SeqId, TableId};

use crate::codec::CodecError;

/// What went wrong in the bridge.
#[derive(Clone, Debug, PartialEq)]
pub enum BridgeError {
    /// The configuration cannot work (named field and why).
    InvalidConfig(String),
    /// Connecting to NATS failed (no server reachable, timed out, protocol error).
    Connect(String),
    /// The servers refused the configured credentials (wrong or missing user/password or
    /// token).
    Unauthorized(String),
    /// TLS could not be set up or the handshake failed (a server certificate the
    /// configured authorities do not sign, an unreadable CA file, a server without TLS).
    Tls(String),
    /// A NATS or JetStream request failed (what was attempted, and the client's message).
    Nats {
        /// The request.
        what: &'static str,
        /// The client's message.
        detail: String,
    },
    /// A stream message could not be decoded; the node skipped it and counted it.
    Decode {
        /// Its stream sequence.
        stream_seq: u64,
        /// Why.
        error: CodecError,
    },
    /// livecore refused a decoded commit or schema change. A refused commit delivered
    /// nothing: the subscriptions on its tables end with `ResyncRequired`.
    Apply {
        /// Its stream sequence.
        stream_seq: u64,
        /// The commit's SeqId (or the schema change's `after`).
        seq: Option<SeqId>,
        /// livecore's error.
        error: LiveError,
    },
    /// A commit was written against a schema version this node does not have and cannot
    /// get: it was not applied, and the subscriptions on its tables end with
    /// `ResyncRequired`.
    SchemaVersion {
        /// Its stream sequence.
        stream_seq: u64,
        /// The table.
        table: TableId,
        /// The version the commit names.
        commit_version: u64,
        /// The version the node has, if any.
        node_version: Option<u64>,
    },
    /// A commit's predecessor is not the commit this node applied last: commits between
    /// them are missing from the stream (trimmed before the node read them). A hole the
    /// node already reported as [`Lost`](Self::Lost) is not reported again here. Either
    /// way the subscriptions on the node's tables end with `ResyncRequired`
    /// (`ConnectionsManager::resync_table`): the missing commits cannot be replayed.
    ChainBroken {
        /// Its stream sequence.
        stream_seq: u64,
        /// The commit's SeqId.
        seq: SeqId,
        /// The predecessor it names.
        prev: Option<SeqId>,
        /// The last commit this node applied.
        applied: Option<SeqId>,
    },
    /// Stream messages the node never saw: trimmed by retention before it read them, or
    /// removed one by one (`delete_message`). Whether commits were among them shows at
    /// the next commit ([`ChainBroken`](Self::ChainBroken)'s rule), where the
    /// subscribers are resynced.
    Lost {
        /// The first missing stream sequence.
        from: u64,
        /// The last missing stream sequence.
        to: u64,
    },
    /// A commit (or schema change) is larger than the servers accept in one message
    /// (their `max_payload`, 1 MiB by default): it was not sent, and sending it again
    /// cannot help. The writer's [`last_seq`](crate::CommitWriter::last_seq) is unchanged.
    TooLarge {
        /// The commit's SeqId (None for a schema change or raw bytes).
        seq: Option<SeqId>,
        /// The encoded message's size in bytes.
        size: usize,
        /// The largest message the servers accept.
        max_payload: usize,
    },
    /// The stream held messages (up to stream sequence `last_stream_seq`) but none is left
    /// that tells the SeqId of the last commit appended (every message aged out or was
    /// trimmed, or those left cannot be decoded). A writer that started again from its own
    /// guess would break the chain (nodes drop SeqIds they already applied as duplicates):
    /// connect with [`CommitWriter::connect_after`](crate::CommitWriter::connect_after),
    /// naming the engine's last SeqId appended.
    UnknownTail {
        /// The stream's last sequence.
        last_stream_seq: u64,
    },
    /// The writer was handed a SeqId not above the last one it appended.
    OutOfOrder {
        /// The SeqId handed.
        seq: SeqId,
        /// The last appended.
        last: SeqId,
    },
    /// A resume found no room in the client's channel for
    /// [`NodeConfig::resume_stall_timeout`](crate::NodeConfig::resume_stall_timeout): the
    /// client stopped reading, or the live deliveries of its other subscriptions took
    /// every slot it freed (the replay retries a full channel every few milliseconds and
    /// has no claim on the room a read makes). The subscription was ended with
    /// `ResumeUnavailable` (the client resubscribes with a snapshot); the node goes on.
    ResumeStalled {
        /// The resumed subscription.
        live_query_id: LiveQueryId,
        /// The last commit the client was given, if the replay gave any.
        replayed_to: Option<SeqId>,
        /// How long the resume waited without progress.
        waited: Duration,
    },
    /// The commit stream does not exist (JetStream error 10059, stream not found): it was
    /// deleted, or never created on this cluster. A node reports it once per episode (not
    /// once per retry: again only after it saw the stream since), keeps retrying, and its
    /// lag is unknown ([`NodeStats::lag`](crate::NodeStats::lag) is None) meanwhile.
    StreamNotFound {
        /// The stream's name.
        stream: String,
    },
    /// The commit stream was deleted and created again under the same name (its info
    /// tells another creation time): its sequences started anew, and the node's position is in the old stream. A node reports
    /// it once per new stream (counted in
    /// [`NodeStats::stream_resets`](crate::NodeStats::stream_resets)); it does not follow
    /// the new stream on its own, and its lag is unknown
    /// ([`NodeStats::lag`](crate::NodeStats::lag) is None) until it is started again
    /// (a new [`NodeBridge`](crate::NodeBridge); its clients resume or resubscribe).
    StreamReset {
        /// The stream's name.
        stream: String,
        /// The new stream's last sequence when the node found it.
        last_stream_seq: u64,
        /// The last stream sequence the node applied (in the old stream).
        applied_stream_seq: u64,
    },
    /// The writer's stream was deleted and created again under the same name since the
    /// writer opened it (its info tells another creation time, or JetStream refused an
    /// append expecting the stream's last sequence as the writer knew it, and the info
    /// then told another stream). The new stream's sequences start anew, and a writer that
    /// went on would write its history into a stream that lacks the old one: the writer
    /// refuses every append from then on (none of them is stored, and the commits after
    /// `last_seq` are forgotten as for any failed append). The host connects a new writer
    /// with [`CommitWriter::connect_after`](crate::CommitWriter::connect_after) naming
    /// `last_seq` (or its engine's last SeqId appended, if it is later), so the new
    /// stream's first commit names it as its predecessor: SeqIds never go back, resumes
    /// from before it are `ResumeUnavailable`, and running nodes report
    /// [`StreamReset`](Self::StreamReset) and are started again.
    StreamRecreated {
        /// The stream's name.
        stream: String,
        /// The last commit the writer knows stored in the old stream (None: none was).
        last_seq: Option<SeqId>,
        /// The new stream's last sequence when the writer found it.
        last_stream_seq: u64,
    },
    /// An append was not acknowledged within
    /// [`WriterConfig::append_deadline`](crate::WriterConfig::append_deadline), retries
    /// and reconnects included (a hung server, a cluster without a stream leader). The
    /// commit may or may not be stored: as for any failed append, the writer forgets the
    /// commits after [`acknowledged_seq`](crate::CommitWriter::acknowledged_seq) and the
    /// host sends them again (their message ids keep them from being stored twice).
    AppendTimeout {
        /// The message id of the append (`c-<seq>` for a commit), or the schema bucket's
        /// key when storing a schema version (before its append) timed out.
        id: String,
        /// How long the writer waited.
        waited: Duration,
        /// The last failure seen, if any.
        detail: Option<String>,
    },
    /// livecore refused a call the bridge made for a client (subscribe, replay, complete).
    Live(LiveError),
    /// The bridge was stopped.
    Stopped,
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::InvalidConfig(reason) => write!(f, "invalid configuration: {reason}"),
            BridgeError::Connect(detail) => write!(f, "cannot connect to NATS: {detail}"),
            BridgeError::Unauthorized(detail) => {
                write!(f, "NATS refused the credentials: {detail}")
            }
            BridgeError::Tls(detail) => write!(f, "TLS with NATS failed: {detail}"),
            BridgeError::Nats { what, detail } => write!(f, "{what} failed: {detail}"),
            BridgeError::Decode { stream_seq, error } => {
                write!(f, "stream message {stream_seq} cannot be decoded: {error}")
            }
            BridgeError::Apply {
                stream_seq, error, ..
            } => write!(f, "stream message {stream_seq} was refused: {error}"),
            BridgeError::SchemaVersion {
                stream_seq,
                table,
                commit_version,
                node_version,
            } => write!(
                f,
                "stream message {stream_seq} uses {table} schema version {commit_version}, \
                 the node has {node_version:?}"
            ),
            BridgeError::ChainBroken {
                stream_seq,
                seq,
                prev,
                applied,
            } => write!(
                f,
                "commit {seq} (stream message {stream_seq}) follows {prev:?}, \
                 the node applied {applied:?} last: commits are missing"
            ),
            BridgeError::Lost { from, to } => {
                write!(
                    f,
                    "stream messages {from}..={to} were gone before the node read them"
                )
            }
            BridgeError::TooLarge {
                seq,
                size,
                max_payload,
            } => write!(
                f,
                "message of {size} bytes (commit {seq:?}) exceeds the servers' max_payload \
                 of {max_payload} bytes"
            ),
            BridgeError::UnknownTail { last_stream_seq } => write!(
                f,
                "the stream held messages up to stream sequence {last_stream_seq} but none \
                 left tells the last commit's SeqId: connect with the engine's last SeqId"
            ),
            BridgeError::OutOfOrder { seq, last } => {
                write!(
                    f,
                    "commit {seq} is not after the last appended commit {last}"
                )
            }
            BridgeError::ResumeStalled {
                live_query_id,
                replayed_to,
                waited,
            } => write!(
                f,
                "resume of {live_query_id} stalled: no room in the client's channel for \
                 {waited:?} (replayed up to {replayed_to:?})"
            ),
            BridgeError::StreamNotFound { stream } => {
                write!(
                    f,
                    "the commit stream {stream} does not exist (JetStream 10059)"
                )
            }
            BridgeError::StreamReset {
                stream,
                last_stream_seq,
                applied_stream_seq,
            } => write!(
                f,
                "the commit stream {stream} was created again (its last sequence is \
                 {last_stream_seq}, the node applied up to {applied_stream_seq} of the old \
                 one): start the node again"
            ),
            BridgeError::StreamRecreated {
                stream,
                last_seq,
                last_stream_seq,
            } => write!(
                f,
                "the commit stream {stream} was created again since the writer opened it \
                 (its last sequence is {last_stream_seq}; the writer's last commit stored in \
                 the old one is {last_seq:?}): connect a new writer after the engine's last \
                 SeqId"
            ),
            BridgeError::AppendTimeout { id, waited, detail } => {
                write!(f, "append {id} not acknowledged within {waited:?}")?;
                match detail {
                    Some(detail) => write!(f, " (last failure: {detail})"),
                    None => Ok(()),
                }
            }
            BridgeError::Live(error) => write!(f, "{error}"),
            BridgeError::Stopped => f.write_str("the bridge was stopped"),
        }
    }
}

impl std::error::Error for BridgeError {}

impl From<LiveError> for BridgeError {
    fn from(error: LiveError) -> Self {
        BridgeError::Live(error)
    }
}

/// Shorthand: maps any displayable client error into [`BridgeError::Nats`].
pub(crate) trait NatsResult<T> {
    fn nats(self, what: &'static str) -> Result<T, BridgeError>;
}

impl<T, E: fmt::Display> NatsResult<T> for Result<T, E> {
    fn nats(self, what: &'static str) -> Result<T, BridgeError> {
        self.map_err(|error| BridgeError::Nats {
            what,
            detail: error.to_string(),
        })
    }
}
