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
    /// How often the client pings the server when it heard nothing from it (3 s by
    /// default). Two pings in a row left unanswered close the connection and the client
    /// reconnects (to another server when it can): a hung server (stopped, or its machine
    /// frozen) is left within about three intervals, where the client's own default (60 s)
    /// kept a node on it for minutes. Must be above zero.
    pub ping_interval: Duration,
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
            ping_interval: Duration::from_secs(3),
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
    /// The longest the writer waits for one commit (or schema change) to be stored, from
    /// the moment it waits for its acknowledgement, retries, reconnects and looks at the
    /// stream's identity included (30 s by default): past it the call returns
    /// [`BridgeError::AppendTimeout`](crate::BridgeError::AppendTimeout) rather than
    /// blocking on a hung server. For a schema change it bounds its storing in the schema
    /// bucket and its append together (after the commits in flight, each bounded on its
    /// own). An acknowledgement that times out also makes the writer reconnect (to another
    /// server when it can, unless the server answers a round trip at once) before it sends
    /// again. Must be above zero.
    pub append_deadline: Duration,
    /// The longest [`CommitWriter::connect`](crate::CommitWriter::connect) (and
    /// `connect_with`, `connect_after`) takes as a whole: connecting (each attempt also
    /// bounded by [`ConnectionConfig::connect_timeout`]), creating or opening the stream
    /// and the schema bucket, reading the stream's info, its last messages and the schema
    /// versions (each request also bounded by
    /// [`ConnectionConfig::request_timeout`]) (30 s by default): past it,
    /// [`BridgeError::Connect`](crate::BridgeError::Connect) naming the step in progress.
    /// Must be above zero.
    pub connect_deadline: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            append_deadline: Duration::from_secs(30),
            connect_deadline: Duration::from_secs(30),
        }
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
    /// How often the node writes its heartbeat, syncs its records to key-value and runs a
    /// failover pass. The stream's info (for the lag) is read on its own period: this
    /// interval, or a third of
    /// [`stream_end_stale_after`](Self::stream_end_stale_after) if that is shorter, so a
    /// long heartbeat interval does not make a healthy node's lag unknown.
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
    /// subscription ends with `ResumeUnavailable`. So can a client that reads, if its
    /// other subscriptions' live deliveries keep its channel full: size the channel for
    /// the live traffic a resuming client also receives.
    pub resume_stall_timeout: Duration,
    /// How long a resume goes on trying after a request on the stream failed (a JetStream
    /// leader election, which can take several seconds; a server lost; a timeout), each
    /// retry going on from where the replay got (30 s by default; zero: never retried).
    /// The stream keeps what the client missed meanwhile: giving up at once would send
    /// the client `ResumeUnavailable` and a full reload for a brief outage.
    pub resume_retry_patience: Duration,
    /// The lag is unknown ([`NodeStats::lag`](crate::NodeStats::lag) is None) when the node
    /// has not seen the stream's end (its info, read every `heartbeat_interval` or a third
    /// of this, whichever is shorter, or a delivery) for this long (10 s by default): a node cut off from the stream does not
    /// report the lag of an end it saw long ago. Must be above zero.
    pub stream_end_stale_after: Duration,
    /// After this many failures in a row of the node's requests on the stream (creating
    /// its consumer, reading the stream's info, for the lag or to tell messages retention
    /// removed from ones a consumer skipped: timeouts, no answer, a consumer gone silent
    /// past its idle heartbeat), the node makes its client reconnect (to another server
    /// when it can) rather than wait for the pings to find a hung server (3 by default),
    /// if the server does not answer a round trip within a second either (a server that
    /// does is alive and the stream slow for another reason: the reconnect is skipped,
    /// [`NodeStats::forced_reconnects_skipped`](crate::NodeStats::forced_reconnects_skipped)).
    /// Answers the server gave (a stream not found) do not count. Must be above zero.
    pub reconnect_after_failures: u32,
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
            resume_retry_patience: Duration::from_secs(30),
            stream_end_stale_after: Duration::from_secs(10),
            reconnect_after_failures: 3,
        }
    }
}
