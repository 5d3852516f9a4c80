//! A reference live-query server on livecore: one WebSocket per client (axum), SQLite as
//! the engine (rusqlite), livecore in the middle, and a browser page served by the same
//! server. See the crate's README for the protocol, the limits and the figures.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = livecore_server::ServerConfig::demo("127.0.0.1:8080".parse()?, "live.db");
//! let server = livecore_server::RunningServer::start(config).await?;
//! println!("listening on {}", server.addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod address;
mod auth;
mod config;
mod connection;
mod db;
mod handshake;
mod protocol;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use address::ClientAddress;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use livecore::{
    CheckerHandle, ConnectionsManager, ShutdownReport, TableId, TableSchema, TableScope,
};
use serde_json::json;

pub use auth::{AuthError, Identity, StaticTokens, TokenVerifier};
pub use config::{
    demo_tables, ColumnType, Limits, Ownership, ServerConfig, TableConfig, WriteAccess,
};
pub use db::{WriteError, WriteOp, WriteOutcome};
pub use protocol::close;

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) manager: Arc<ConnectionsManager>,
    pub(crate) db: Arc<db::Database>,
    pub(crate) config: ServerConfig,
    pub(crate) allowed_origins: Vec<String>,
    per_address: Mutex<HashMap<ClientAddress, usize>>,
    /// Sockets not yet upgraded to a WebSocket.
    pub(crate) handshakes: Arc<handshake::Handshakes>,
    /// Initial loads and resumes running at once, over every connection.
    pub(crate) loads: Arc<tokio::sync::Semaphore>,
    /// Numbers connections for the writer's per-connection queues.
    pub(crate) next_writer_source: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Counts a connection from `ip`, or refuses it past the per-address limit (an IPv6
    /// client counts by its /64 network: see `address`).
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let address = ClientAddress::of(ip);
        let mut counts = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(address).or_insert(0);
        if *count >= self.config.limits.max_connections_per_address {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            shared: self.clone(),
            address,
        })
    }

    /// The tables a user may subscribe to, for the `authenticated` reply.
    pub(crate) fn tables_json(&self, identity: &Identity) -> serde_json::Value {
        let mut tables: Vec<_> = self.config.tables.iter().collect();
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        serde_json::Value::Array(
            tables
                .into_iter()
                .map(|table| {
                    let writable = match &table.write {
                        WriteAccess::Authenticated => true,
                        WriteAccess::Role(role) => identity.role.as_deref() == Some(role.as_str()),
                        WriteAccess::ReadOnly => false,
                    };
                    let columns: Vec<_> = std::iter::once(json!({"name": "id", "type": "INTEGER"}))
                        .chain(
                            table
                                .columns
                                .iter()
                                .map(|(name, kind)| json!({"name": name, "type": kind.sql()})),
                        )
                        .collect();
                    json!({
                        "name": table.name,
                        "columns": columns,
                        "owner_column": table.owner_column(),
                        "writable": writable,
                    })
                })
                .collect(),
        )
    }
}

/// One counted connection from an address; uncounted when dropped.
pub(crate) struct AddressSlot {
    shared: Arc<Shared>,
    address: ClientAddress,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self
            .shared
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// livecore refused the configuration or a table.
    Live(livecore::LiveError),
    /// SQLite could not open or set up the database.
    Database(rusqlite::Error),
    /// The address could not be bound.
    Io(std::io::Error),
    /// A table's configuration is unusable.
    Config(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Live(error) => write!(f, "livecore: {error}"),
            StartError::Database(error) => write!(f, "database: {error}"),
            StartError::Io(error) => write!(f, "listen: {error}"),
            StartError::Config(detail) => write!(f, "configuration: {detail}"),
        }
    }
}

impl std::error::Error for StartError {}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("_livecore")
        && name.len() <= 64
}

/// A running server.
pub struct RunningServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    serve: tokio::task::JoinHandle<()>,
    checker: Option<CheckerHandle>,
}

impl RunningServer {
    /// Opens the database, registers the tables with livecore, binds and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Self, StartError> {
        for table in &config.tables {
            let names = table.column_names();
            let unique: std::collections::HashSet<_> =
                names.iter().map(|name| name.to_ascii_lowercase()).collect();
            if !is_identifier(&table.name)
                || !names.iter().all(|name| is_identifier(name))
                || unique.len() != names.len()
            {
                return Err(StartError::Config(format!(
                    "table {:?}: names must be distinct identifiers",
                    table.name
                )));
            }
            if let Some(owner) = table.owner_column() {
                if !table
                    .columns
                    .iter()
                    .any(|(name, kind)| name == owner && *kind == ColumnType::Text)
                {
                    return Err(StartError::Config(format!(
                        "table {:?}: owner column {owner:?} must be a TEXT column",
                        table.name
                    )));
                }
            }
        }
        let manager =
            Arc::new(ConnectionsManager::new(config.manager.clone()).map_err(StartError::Live)?);
        let namespace = config.manager.default_namespace.clone();
        for table in &config.tables {
            let scope = match table.ownership {
                Ownership::Shared => TableScope::Shared,
                Ownership::PerUser { .. } => TableScope::User,
            };
            manager
                .register_table(TableSchema::new(
                    TableId::new(namespace.as_str(), table.name.as_str()),
                    scope,
                    table.column_names(),
                ))
                .map_err(StartError::Live)?;
        }
        let db = {
            let (path, tables, history, limits, manager, namespace) = (
                config.database_path.clone(),
                config.tables.clone(),
                config.history_limit,
                db::WriteLimits::from(&config.limits),
                manager.clone(),
                namespace.clone(),
            );
            tokio::task::spawn_blocking(move || {
                db::Database::open(&path, &tables, history, limits, manager, &namespace)
            })
            .await
            .map_err(|error| StartError::Config(error.to_string()))?
            .map_err(StartError::Database)?
        };
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(StartError::Io)?;
        let addr = listener.local_addr().map_err(StartError::Io)?;
        let mut allowed_origins = config.allowed_origins.clone();
        if config.allow_own_origin {
            allowed_origins.push(format!("http://{addr}"));
            allowed_origins.push(format!("http://localhost:{}", addr.port()));
        }
        let checker = manager.spawn_checker(config.check_interval);
        let handshakes = handshake::Handshakes::new(
            config.limits.handshake_timeout,
            config.limits.max_pending_handshakes_per_address,
            config.limits.max_pending_handshakes,
            config.limits.max_read_bytes_per_second,
        );
        let listener = handshake::GuardedListener::new(listener, handshakes.clone());
        let shared = Arc::new(Shared {
            manager,
            db: Arc::new(db),
            loads: Arc::new(tokio::sync::Semaphore::new(
                config.limits.max_concurrent_loads.max(1),
            )),
            config,
            allowed_origins,
            per_address: Mutex::new(HashMap::new()),
            handshakes,
            next_writer_source: std::sync::atomic::AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/", get(page))
            .route("/app.js", get(script))
            .route("/style.css", get(style))
            .route("/ws", get(upgrade))
            .with_state(shared.clone());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let serve = tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<handshake::Peer>();
            let result = axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = result {
                eprintln!("livecore-server: {error}");
            }
        });
        Ok(Self {
            addr,
            shared,
            stop,
            serve,
            checker: Some(checker),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The livecore manager (statistics, or publishing from elsewhere in the process).
    pub fn manager(&self) -> &Arc<ConnectionsManager> {
        &self.shared.manager
    }

    /// Commits a write as `identity`, exactly as the WebSocket write endpoint does.
    pub async fn write(
        &self,
        identity: &Identity,
        ops: Vec<WriteOp>,
    ) -> Result<WriteOutcome, WriteError> {
        self.shared.db.write(identity, ops).await
    }

    /// A consistent read of a table's rows (all owners) and the SeqId of its last commit.
    pub async fn read_table(
        &self,
        table: &str,
    ) -> Result<(livecore::SeqId, Vec<livecore::Row>), String> {
        let db = self.shared.db.clone();
        let table = table.to_string();
        tokio::task::spawn_blocking(move || {
            db.snapshot(&table, db::RowsOf::Everyone)
                .map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    /// How many accepted sockets are waiting for their WebSocket upgrade (each is closed
    /// after [`Limits::handshake_timeout`] at the latest).
    pub fn pending_handshakes(&self) -> usize {
        self.shared.handshakes.pending()
    }

    /// Graceful shutdown: stops accepting, closes every socket not yet upgraded, closes
    /// every client with close code 1001 and a reason (livecore drops those still open
    /// after the shutdown timeout) while the writer commits the writes already queued (those
    /// it has not started when the timeout ends are answered `shutting_down`, uncommitted).
    ///
    /// Returns within [`ServerConfig::shutdown_timeout`] plus a small margin, whatever
    /// clients do: only a write already committing when the timeout ends is waited for.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let deadline = tokio::time::Instant::now() + self.shared.config.shutdown_timeout;
        let _ = self.stop.send(true);
        self.shared.handshakes.shut();
        let shared = self.shared.clone();
        let closing = tokio::task::spawn_blocking(move || {
            shared.manager.shutdown(shared.config.shutdown_timeout)
        });
        let shared = self.shared.clone();
        let writer = tokio::task::spawn_blocking(move || shared.db.close(deadline.into_std()));
        let report = closing.await.unwrap_or_default();
        let _ = writer.await;
        if let Some(checker) = self.checker.take() {
            let _ = tokio::task::spawn_blocking(move || checker.stop()).await;
        }
        // axum's graceful shutdown waits for every HTTP connection; the pending ones were
        // just closed, so this is quick, but it is bounded anyway.
        let margin = deadline.max(tokio::time::Instant::now()) + SHUTDOWN_MARGIN;
        if tokio::time::timeout_at(margin, &mut self.serve)
            .await
            .is_err()
        {
            self.serve.abort();
        }
        report
    }
}

/// How long `shutdown` waits for the HTTP side past the shutdown timeout.
const SHUTDOWN_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

const PAGE: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/app.js");
const STYLE: &str = include_str!("../static/style.css");

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The page loads only its own script and style and talks only to its own server.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
        ),
    );
    response
}

async fn page() -> Response {
    static_file(PAGE, "text/html; charset=utf-8")
}

async fn script() -> Response {
    static_file(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    static_file(STYLE, "text/css; charset=utf-8")
}

/// Bytes the WebSocket layer gathers before it writes them to the socket (tungstenite's
/// default, named): with one notification rendered at a time, what a connection holds
/// rendered but unsent is at most this plus one notification.
const WRITE_BUFFER_BYTES: usize = 128 * 1024;

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<handshake::Peer>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // A browser always sends Origin: refuse pages from elsewhere before upgrading, so a
    // foreign site cannot ride a user's session (cross-site WebSocket hijacking).
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .map(|origin| {
                shared
                    .allowed_origins
                    .iter()
                    .any(|allowed| allowed == origin)
            })
            .unwrap_or(false);
        if !allowed {
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    // From here the socket is a WebSocket: no longer timed or counted as a handshake.
    if !shared.handshakes.promote(&peer.handshake) {
        return (StatusCode::SERVICE_UNAVAILABLE, "handshake closed\n").into_response();
    }
    let slot = shared.admit(peer.addr.ip());
    let limits = &shared.config.limits;
    ws.max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| connection::serve(shared, socket, slot))
}
