//! Configuration: plain structs with defaults.

use std::path::PathBuf;
use std::time::Duration;

use livecore::NodeId;

/// How to reach the NATS cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Server URLs (`nats://host:port`, or `tls://host:port` to require TLS); the client
    /// picks one and fails over to the others.
    pub servers: Vec<String>,
    /// Pick among `servers` at random, on connecting and on each reconnect (the default,
    /// which spreads clients over the cluster). Off: try them in the order given, so a node
    /// prefers the first (say, the server on its own machine) and fails over down the list.
    pub shuffle_servers: bool,
    /// Add the servers the cluster advertises to the ones configured (the default). Off:
    /// only `servers` are ever tried; with one URL, the connection is pinned to that server
    /// and a lost connection waits for it to come back.
    pub discover_servers: bool,
    /// Credentials.
    pub auth: Auth,
    /// Require TLS even when the URLs say `nats://`.
    pub require_tls: bool,
    /// A PEM file of the certificate authorities that sign the servers' certificates, for
    /// servers on a private CA; without it the system's roots are trusted.
    pub tls_ca_file: Option<PathBuf>,
    /// A name the servers show for this connection.
    pub client_name: Option<String>,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long a JetStream request (publish ack, stream info, consumer create) may take.
    pub request_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            servers: vec!["nats://127.0.0.1:4222".into()],
            shuffle_servers: true,
            discover_servers: true,
            auth: Auth::None,
            require_tls: false,
            tls_ca_file: None,
            client_name: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// NATS credentials.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// None.
    #[default]
    None,
    /// A user and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
}

impl std::fmt::Debug for Auth {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            Auth::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// The commit stream and the key-value buckets beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// The JetStream stream holding commits and schema changes.
    pub stream: String,
    /// The subject commits are appended to (the stream's only subject).
    pub subject: String,
    /// Replicas of the stream and buckets (3 survives one server down).
    pub replicas: usize,
    /// Retention: the stream keeps at most this many messages (0: no limit).
    pub max_messages: i64,
    /// Retention: and at most this many bytes (0: no limit).
    pub max_bytes: i64,
    /// Retention: and messages no older than this (zero: no limit).
    pub max_age: Duration,
    /// How long JetStream remembers message ids to drop a retried append.
    pub duplicate_window: Duration,
    /// The key-value bucket of schemas by version (for nodes that start mid-stream).
    pub schema_bucket: String,
    /// The key-value bucket of live-query records and node heartbeats.
    pub records_bucket: String,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            stream: "LIVECORE_COMMITS".into(),
            subject: "livecore.commits".into(),
            replicas: 3,
            max_messages: 1_000_000,
            max_bytes: 256 << 20,
            max_age: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            schema_bucket: "livecore_schemas".into(),
            records_bucket: "livecore_records".into(),
        }
    }
}

/// The writer's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterConfig {
    /// Commits [`CommitWriter::send_commit`](crate::CommitWriter::send_commit) keeps sent
    /// and unacknowledged at most (1: each waits for the one before). More hide the
    /// round trip to the stream's leader and its replicas; order and deduplication hold
    /// either way.
    pub max_in_flight: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self { max_in_flight: 64 }
    }
}

/// Where a node starts reading the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// After the stream's last message when the node starts: a restarted node's clients
    /// resume through the stream, so nothing before that needs applying.
    #[default]
    Latest,
    /// From the first message the stream still holds.
    First,
}

/// One front node's bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node; records and heartbeats are keyed by it. Must match the manager's
    /// `ManagerConfig::node_id`.
    pub node_id: NodeId,
    /// The cluster.
    pub connection: ConnectionConfig,
    /// The stream and buckets.
    pub stream: StreamConfig,
    /// Where to start reading.
    pub start: StartFrom,
    /// Messages fetched per pull request.
    pub batch: usize,
    /// Idle heartbeat of the pull consumer: a silent consumer (its server died) is
    /// recreated from the last applied sequence after about twice this.
    pub consumer_heartbeat: Duration,
    /// How often the node writes its heartbeat and syncs its records to key-value.
    pub heartbeat_interval: Duration,
    /// A node whose heartbeat is older than this is offline.
    pub node_stale_after: Duration,
    /// The largest difference between node wall clocks the staleness checks allow for:
    /// heartbeats are wall-clock readings of other nodes.
    pub max_clock_skew: Duration,
    /// A live query whose connection was silent longer than this is stale.
    pub live_query_stale_after: Duration,
    /// Errors kept for [`NodeBridge::take_errors`](crate::NodeBridge::take_errors); older ones
    /// are dropped (and still counted).
    pub max_kept_errors: usize,
    /// The longest a resume waits for room in the subscriber's channel for each replayed
    /// commit (the wait starts again after every commit the client made room for; the
    /// completion never waits). A client that reads nothing for this long ends the
    /// resume with [`BridgeError::ResumeStalled`](crate::BridgeError::ResumeStalled); its
    /// subscription ends with `ResumeUnavailable`.
    pub resume_stall_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            node_id: NodeId(1),
            connection: ConnectionConfig::default(),
            stream: StreamConfig::default(),
            start: StartFrom::default(),
            batch: 256,
            consumer_heartbeat: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(2),
            node_stale_after: Duration::from_secs(10),
            max_clock_skew: Duration::from_secs(2),
            live_query_stale_after: Duration::from_secs(120),
            max_kept_errors: 1024,
            resume_stall_timeout: Duration::from_secs(5),
        }
    }
}
