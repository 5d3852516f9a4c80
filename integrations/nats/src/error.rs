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
    /// livecore refused a decoded commit or schema change.
    Apply {
        /// Its stream sequence.
        stream_seq: u64,
        /// The commit's SeqId (or the schema change's `after`).
        seq: Option<SeqId>,
        /// livecore's error.
        error: LiveError,
    },
    /// A commit was written against a schema version this node does not have and cannot
    /// get: it was not applied.
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
    /// node already reported as [`Lost`](Self::Lost) is not reported again here.
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
    /// Stream messages the node never saw (trimmed by retention before it read them).
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
    /// client stopped reading. The subscription was ended with `ResumeUnavailable` (the
    /// client resubscribes with a snapshot when it reads again); the node goes on.
    ResumeStalled {
        /// The resumed subscription.
        live_query_id: LiveQueryId,
        /// The last commit the client was given, if the replay gave any.
        replayed_to: Option<SeqId>,
        /// How long the resume waited without progress.
        waited: Duration,
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
