//! Server configuration: the address, the database, the tables clients may read and write,
//! the token verifier, the Origin allow-list and every limit a client runs into.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use livecore::{ManagerConfig, SlowConsumerPolicy};

use crate::auth::{StaticTokens, TokenVerifier};

/// The SQLite type of a column, which is also what the write endpoint accepts for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// A 64-bit integer (JSON integers and booleans).
    Integer,
    /// A float (any JSON number).
    Real,
    /// A text string.
    Text,
}

impl ColumnType {
    /// The SQL type name.
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
            ColumnType::Text => "TEXT",
        }
    }
}

/// Who owns a table's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Every authenticated user reads every row.
    Shared,
    /// Each row belongs to the user named in `owner_column` (a text column the server sets
    /// from the verified token on insert; clients never choose it). A user reads, updates
    /// and deletes only their own rows.
    PerUser {
        /// The owner column's name.
        owner_column: String,
    },
}

/// Who may write a table through the write endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteAccess {
    /// Any authenticated user.
    Authenticated,
    /// Users whose verified token carries this role.
    Role(String),
    /// Nobody: the table is read-only for clients.
    ReadOnly,
}

/// One table clients may subscribe to. Every table has an `id INTEGER PRIMARY KEY`
/// column first, which the server adds; `columns` are the others.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// The table's name (an identifier: letters, digits and `_`, not starting with a digit).
    pub name: String,
    /// The columns after `id`.
    pub columns: Vec<(String, ColumnType)>,
    /// Who owns the rows.
    pub ownership: Ownership,
    /// Who may write.
    pub write: WriteAccess,
}

impl TableConfig {
    /// A shared table writable by any authenticated user.
    pub fn shared(name: &str, columns: &[(&str, ColumnType)]) -> Self {
        Self {
            name: name.to_string(),
            columns: columns
                .iter()
                .map(|(column, kind)| (column.to_string(), *kind))
                .collect(),
            ownership: Ownership::Shared,
            write: WriteAccess::Authenticated,
        }
    }

    /// Every column name, `id` first, as livecore and SQLite see them.
    pub fn column_names(&self) -> Vec<String> {
        std::iter::once("id".to_string())
            .chain(self.columns.iter().map(|(name, _)| name.clone()))
            .collect()
    }

    /// The owner column, for per-user tables.
    pub fn owner_column(&self) -> Option<&str> {
        match &self.ownership {
            Ownership::Shared => None,
            Ownership::PerUser { owner_column } => Some(owner_column),
        }
    }
}

/// Limits on what one client can make the server do. Each refusal is documented in the
/// README with its close code or error code.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest WebSocket message a client may send, in bytes (close 1009 beyond it).
    pub max_message_bytes: usize,
    /// Largest WebSocket frame a client may send, in bytes (close 1009 beyond it).
    pub max_frame_bytes: usize,
    /// Most simultaneous connections from one IP address (close 4030 beyond it). An IPv6
    /// client counts by its /64 network (a host is often given a whole /64, so counting
    /// whole addresses would let it pick as many as it likes); an IPv4 address a
    /// dual-stack socket reports as `::ffff:a.b.c.d`, or behind the NAT64 prefix
    /// `64:ff9b::/96`, counts as that IPv4 address.
    pub max_connections_per_address: usize,
    /// Sustained messages per second a client may send (close 4029 beyond it).
    pub messages_per_second: u32,
    /// Messages a client may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// Longest subscription SQL text, in bytes (error `sql_too_long`).
    pub max_sql_bytes: usize,
    /// Most row operations in one write request, one transaction (error `too_many_ops`).
    pub max_ops_per_write: usize,
    /// Largest commit, in bytes of its changes as the commit log stores them (new rows, and
    /// the old rows of updates and deletes, as JSON). A write over it is refused with error
    /// `commit_too_large` and nothing is committed. It bounds every `changes`
    /// notification (about this size, plus the column names) and every log entry: without
    /// it, a small write updating many large rows would reach every subscriber as one
    /// huge message.
    pub max_commit_bytes: usize,
    /// Most writes one connection may have queued or committing; past it a write is
    /// answered with error `busy` (nothing queued) in its turn.
    pub max_pending_writes_per_connection: usize,
    /// Most writes queued at the writer over every connection; past it a write is answered
    /// with error `busy`. The writer takes connections in turn, so one connection's queued
    /// writes delay another's by at most one write each.
    pub max_queued_writes: usize,
    /// Most initial loads and resumes of one connection under way at once, from their start
    /// until the client has been sent their end (`load_complete`, `resume_unavailable`):
    /// their rows wait in the connection's channel until it reads them, so a client that
    /// stops reading holds at most this many loads' rows. Further ones wait their turn.
    pub max_loads_per_connection: usize,
    /// Most initial loads and resumes reading SQLite at once over every connection (an
    /// initial load holds a table's rows, at most `max_snapshot_bytes`, in memory while it
    /// reads; a resume one batch of the log, 64 commits or about 1 MiB of log text, which
    /// it keeps until the batch has streamed into the client's channel).
    pub max_concurrent_loads: usize,
    /// How long an accepted socket may take to become a WebSocket (HTTP request read,
    /// upgrade answered) before it is closed: idle sockets, requests sent byte by byte and
    /// keep-alive connections that never upgrade. The page's own requests take far less;
    /// a browser opens a new connection for later ones.
    pub handshake_timeout: Duration,
    /// Most sockets from one IP address waiting for their upgrade (counted as
    /// [`max_connections_per_address`](Self::max_connections_per_address) counts); a new
    /// one past it closes the address's oldest waiting socket.
    pub max_pending_handshakes_per_address: usize,
    /// Most sockets waiting for their upgrade over every address; a new one past it closes
    /// the oldest waiting socket.
    pub max_pending_handshakes: usize,
    /// Bytes a socket is read at most per second (bursts up to one second's worth); past
    /// it the server simply reads later (TCP backpressure), it does not close. The message
    /// rate limit counts whole messages, so without this a client could stream frames that
    /// never complete a message (empty continuation frames) at full speed, costing a core.
    /// 0 turns it off.
    pub max_read_bytes_per_second: usize,
    /// Most bytes of rows an initial load reads from SQLite (every row of the table, before
    /// livecore's filter; the rows wait for the client in memory), counted as
    /// `Value::size_bytes` counts them (text and blobs by their length, any other value 8).
    /// A larger table is answered `load_failed`. 0 turns it off.
    pub max_snapshot_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_frame_bytes: 64 * 1024,
            max_connections_per_address: 64,
            messages_per_second: 50,
            message_burst: 200,
            max_sql_bytes: 4096,
            max_ops_per_write: 500,
            max_commit_bytes: 1024 * 1024,
            max_pending_writes_per_connection: 64,
            max_queued_writes: 1024,
            max_loads_per_connection: 2,
            max_concurrent_loads: 8,
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes_per_address: 32,
            max_pending_handshakes: 1024,
            max_read_bytes_per_second: 1024 * 1024,
            max_snapshot_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Everything the server needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen. Port 0 picks a free port ([`crate::RunningServer::addr`] tells it).
    pub bind: SocketAddr,
    /// The SQLite database file (created when missing; WAL mode).
    pub database_path: PathBuf,
    /// The tables clients may subscribe to and write.
    pub tables: Vec<TableConfig>,
    /// Turns a client's token into a user. Never trusts a name the client asserts.
    pub verifier: Arc<dyn TokenVerifier>,
    /// Browser origins allowed to open a WebSocket (exact match, like
    /// `https://app.example.com`). A request without an `Origin` header (not a browser) is
    /// allowed; one with an origin not listed is refused with HTTP 403.
    pub allowed_origins: Vec<String>,
    /// Also allow the server's own origin (`http://127.0.0.1:PORT`, `http://localhost:PORT`),
    /// so the page it serves can connect.
    pub allow_own_origin: bool,
    /// Client limits.
    pub limits: Limits,
    /// livecore's configuration: channel capacities, subscriptions per connection, auth
    /// and heartbeat timeouts, the slow-consumer policy.
    pub manager: ManagerConfig,
    /// How often `check_connections` runs (auth timeouts, pings, heartbeat timeouts).
    pub check_interval: Duration,
    /// Commits kept in SQLite for resume; a client further behind gets `resume_unavailable`.
    pub history_limit: u64,
    /// A socket write that cannot finish this long (the client stopped reading and the
    /// kernel buffers are full) drops the connection.
    pub send_timeout: Duration,
    /// On shutdown, how long clients have to be closed before livecore drops them, and how
    /// long the writer keeps committing queued writes (later ones are answered
    /// `shutting_down`). [`crate::RunningServer::shutdown`] returns within it plus half a
    /// second, whatever clients do.
    pub shutdown_timeout: Duration,
}

impl ServerConfig {
    /// The demo configuration: the `messages` and `notes` tables, three demo tokens, the
    /// given address and database file.
    pub fn demo(bind: SocketAddr, database_path: impl Into<PathBuf>) -> Self {
        let manager = ManagerConfig {
            slow_consumer_policy: SlowConsumerPolicy::GapNotice,
            auth_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            heartbeat_timeout: Duration::from_secs(60),
            ..ManagerConfig::default()
        };
        Self {
            bind,
            database_path: database_path.into(),
            tables: demo_tables(),
            verifier: Arc::new(StaticTokens::demo()),
            allowed_origins: Vec::new(),
            allow_own_origin: true,
            limits: Limits::default(),
            manager,
            check_interval: Duration::from_millis(500),
            history_limit: 10_000,
            send_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// The demo's tables: `messages` (shared: every user reads every room) and `notes`
/// (per user: each user sees only their own).
pub fn demo_tables() -> Vec<TableConfig> {
    vec![
        TableConfig::shared(
            "messages",
            &[
                ("room", ColumnType::Integer),
                ("author", ColumnType::Text),
                ("body", ColumnType::Text),
                ("score", ColumnType::Real),
            ],
        ),
        TableConfig {
            name: "notes".into(),
            columns: vec![
                ("owner".into(), ColumnType::Text),
                ("title".into(), ColumnType::Text),
                ("done".into(), ColumnType::Integer),
            ],
            ownership: Ownership::PerUser {
                owner_column: "owner".into(),
            },
            write: WriteAccess::Authenticated,
        },
    ]
}
