//! The engine: SQLite through rusqlite. One writer thread owns the write connection and
//! turns each write request into one transaction, which also appends the commit to a
//! bounded log (`_livecore_log`) and advances the commit counter; after COMMIT it publishes
//! the commit to livecore with that SeqId, so commits reach livecore in commit order.
//! Readers (snapshots for initial loads, the log for resume) use their own connections: in
//! WAL mode each read transaction sees one consistent state, SeqId included.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use livecore::{ChangeNotification, ChangeType, ConnectionsManager, Row, SeqId, TableId, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, OptionalExtension, ToSql, TransactionBehavior};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::auth::Identity;
use crate::config::{ColumnType, TableConfig, WriteAccess};

/// One row operation of a write request.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum WriteOp {
    /// Inserts a row; `id` may be given or left to SQLite.
    Insert {
        /// The table.
        table: String,
        /// Column values by name.
        values: Map<String, Json>,
    },
    /// Changes columns of the row `id`.
    Update {
        /// The table.
        table: String,
        /// The row: a number, or the decimal text livecore renders an id beyond ±2^53 as.
        #[serde(deserialize_with = "integer_or_its_text")]
        id: i64,
        /// Column values by name.
        values: Map<String, Json>,
    },
    /// Deletes the row `id`.
    Delete {
        /// The table.
        table: String,
        /// The row, as for an update.
        #[serde(deserialize_with = "integer_or_its_text")]
        id: i64,
    },
}

/// An integer as JSON the way livecore's notifications render it (`livecore::json`): a
/// number within ±2^53, else the text of its digits.
pub(crate) fn integer_json(value: i64) -> Json {
    let mut out = Vec::new();
    livecore::json::write_value(&mut out, &Value::Int(value));
    serde_json::from_slice(&out).expect("livecore writes valid JSON")
}

/// An integer from JSON: a number, or the decimal text of one as livecore renders large
/// integers, so a client can write back what it received.
fn json_integer(value: &Json) -> Option<i64> {
    match value {
        Json::Number(number) => number.as_i64(),
        Json::String(text) => text.parse::<i64>().ok().filter(|n| n.to_string() == *text),
        _ => None,
    }
}

fn integer_or_its_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let value = Json::deserialize(deserializer)?;
    json_integer(&value).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected an integer or the decimal text of one, got {value}"
        ))
    })
}

/// Why a write was refused. Nothing of a refused write is committed.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteError {
    /// The table is not one the server exposes.
    UnknownTable(String),
    /// The user may not write this table.
    Forbidden(String),
    /// A column the table does not have, or one the client may not set.
    BadColumn(String),
    /// A value of the wrong type for its column.
    BadValue(String),
    /// No row with this id (or none the user owns).
    NotFound(i64),
    /// Too many operations in one request, or none.
    TooManyOps(usize),
    /// SQLite refused the statement (a constraint, a duplicate id).
    Database(String),
    /// The connection already has `max_pending_writes_per_connection` writes queued or
    /// committing, or the server `max_queued_writes`: nothing was queued; retry later.
    Busy(String),
    /// The commit's changes (new rows, and the old rows of updates and deletes) would
    /// exceed `max_commit_bytes`: nothing was committed.
    CommitTooLarge(usize),
    /// The server is shutting down.
    Closed,
}

impl WriteError {
    /// The error code sent to the client.
    pub fn code(&self) -> &'static str {
        match self {
            WriteError::UnknownTable(_) => "unknown_table",
            WriteError::Forbidden(_) => "forbidden",
            WriteError::BadColumn(_) => "bad_column",
            WriteError::BadValue(_) => "bad_value",
            WriteError::NotFound(_) => "not_found",
            WriteError::TooManyOps(_) => "too_many_ops",
            WriteError::Database(_) => "database",
            WriteError::Busy(_) => "busy",
            WriteError::CommitTooLarge(_) => "commit_too_large",
            WriteError::Closed => "shutting_down",
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::UnknownTable(table) => write!(f, "unknown table {table:?}"),
            WriteError::Forbidden(table) => write!(f, "not allowed to write {table:?}"),
            WriteError::BadColumn(detail) | WriteError::BadValue(detail) => f.write_str(detail),
            WriteError::NotFound(id) => write!(f, "no row with id {id}"),
            WriteError::TooManyOps(max) => write!(f, "a write holds 1 to {max} operations"),
            WriteError::Database(detail) => write!(f, "database: {detail}"),
            WriteError::Busy(detail) => f.write_str(detail),
            WriteError::CommitTooLarge(max) => write!(
                f,
                "the commit's changes (new rows, old rows of updates and deletes) exceed {max} bytes"
            ),
            WriteError::Closed => f.write_str("the server is shutting down"),
        }
    }
}

impl std::error::Error for WriteError {}

impl From<rusqlite::Error> for WriteError {
    fn from(error: rusqlite::Error) -> Self {
        WriteError::Database(error.to_string())
    }
}

/// What a committed write did.
#[derive(Clone, Debug)]
pub struct WriteOutcome {
    /// The commit's SeqId.
    pub seq: SeqId,
    /// The id of each operation's row, in order.
    pub ids: Vec<i64>,
    /// When COMMIT returned (before publishing to livecore).
    pub committed_at: Instant,
}

struct WriteRequest {
    source: Option<u64>,
    identity: Identity,
    ops: Vec<WriteOp>,
    reply: tokio::sync::oneshot::Sender<Result<WriteOutcome, WriteError>>,
}

/// A write the writer has queued: its outcome arrives once it is committed or refused.
pub(crate) struct QueuedWrite(tokio::sync::oneshot::Receiver<Result<WriteOutcome, WriteError>>);

impl QueuedWrite {
    /// Waits for the writer's answer.
    pub(crate) async fn outcome(self) -> Result<WriteOutcome, WriteError> {
        self.0.await.map_err(|_| WriteError::Closed)?
    }
}

/// Whose rows a snapshot reads from a per-user table (a shared table's are everyone's).
#[derive(Clone, Copy)]
pub(crate) enum RowsOf<'a> {
    /// One user's.
    User(&'a str),
    /// Every user's.
    Everyone,
}

/// Why a resume cannot be served from the log.
#[derive(Debug, PartialEq, Eq)]
pub struct ResumeUnavailable;

/// An initial load's table held more than the server reads for one load
/// ([`Limits::max_snapshot_bytes`](crate::config::Limits::max_snapshot_bytes)).
#[derive(Debug)]
pub(crate) struct SnapshotTooLarge {
    /// The most bytes of rows one load reads.
    pub(crate) max_bytes: usize,
}

impl std::fmt::Display for SnapshotTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the table holds more than the {} bytes of rows an initial load reads",
            self.max_bytes
        )
    }
}

/// The writer's limits, from [`crate::Limits`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteLimits {
    pub(crate) max_ops: usize,
    pub(crate) per_source: usize,
    pub(crate) total: usize,
    pub(crate) max_commit_bytes: usize,
}

impl From<&crate::Limits> for WriteLimits {
    fn from(limits: &crate::Limits) -> Self {
        Self {
            max_ops: limits.max_ops_per_write,
            per_source: limits.max_pending_writes_per_connection.max(1),
            total: limits.max_queued_writes.max(1),
            max_commit_bytes: limits.max_commit_bytes,
        }
    }
}

/// The writer's queue: one FIFO per source (a connection; `None` is in-process code), taken
/// in turn, so a client's writes commit in the order it sent them and a client with many
/// writes queued delays another's by at most one of its writes per turn.
struct WriteQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    open: bool,
    /// After this instant (set by `close`) queued writes are refused, not committed.
    refuse_after: Option<Instant>,
    /// Sources with queued writes, in turn order.
    turns: VecDeque<Option<u64>>,
    queues: HashMap<Option<u64>, SourceQueue>,
    /// Writes queued or committing, over every source.
    queued: usize,
}

#[derive(Default)]
struct SourceQueue {
    requests: VecDeque<WriteRequest>,
    /// Queued plus the one committing.
    outstanding: usize,
}

impl WriteQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, request: WriteRequest, limits: &WriteLimits) -> Result<(), WriteError> {
        let mut state = self.lock();
        if !state.open {
            return Err(WriteError::Closed);
        }
        let source = request.source;
        if source.is_some() {
            let outstanding = state.queues.get(&source).map_or(0, |q| q.outstanding);
            if outstanding >= limits.per_source {
                return Err(WriteError::Busy(format!(
                    "this connection already has {} writes queued or committing",
                    limits.per_source
                )));
            }
            if state.queued >= limits.total {
                return Err(WriteError::Busy(format!(
                    "the server already has {} writes queued or committing",
                    limits.total
                )));
            }
        }
        state.queued += 1;
        let queue = state.queues.entry(source).or_default();
        queue.outstanding += 1;
        queue.requests.push_back(request);
        if queue.requests.len() == 1 && !state.turns.contains(&source) {
            state.turns.push_back(source);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next write, in turn; `None` once closed and empty. The flag says it comes after
    /// the close deadline (to be refused, not committed).
    fn next(&self) -> Option<(WriteRequest, bool)> {
        let mut state = self.lock();
        loop {
            if let Some(source) = state.turns.pop_front() {
                let queue = state.queues.get_mut(&source).expect("a queue per turn");
                let request = queue.requests.pop_front().expect("a turn has a write");
                if !queue.requests.is_empty() {
                    state.turns.push_back(source);
                }
                let late = state
                    .refuse_after
                    .is_some_and(|deadline| Instant::now() >= deadline);
                return Some((request, late));
            }
            if !state.open {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn done(&self, source: Option<u64>) {
        let mut state = self.lock();
        state.queued -= 1;
        if let Some(queue) = state.queues.get_mut(&source) {
            queue.outstanding -= 1;
            if queue.outstanding == 0 {
                state.queues.remove(&source);
            }
        }
    }

    fn close(&self, refuse_after: Instant) {
        let mut state = self.lock();
        state.open = false;
        state.refuse_after = Some(refuse_after);
        self.ready.notify_all();
    }
}

/// The database: the writer thread's queue and a pool of read connections.
pub struct Database {
    path: PathBuf,
    tables: Arc<HashMap<String, TableConfig>>,
    queue: Arc<WriteQueue>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    limits: WriteLimits,
}

impl Database {
    /// Opens (or creates) the database, creates the configured tables and the commit log,
    /// and starts the writer thread, which publishes every commit to `manager`.
    pub fn open(
        path: &Path,
        tables: &[TableConfig],
        history_limit: u64,
        limits: WriteLimits,
        manager: Arc<ConnectionsManager>,
        namespace: &str,
    ) -> Result<Self, rusqlite::Error> {
        let tables: Arc<HashMap<String, TableConfig>> = Arc::new(
            tables
                .iter()
                .map(|table| (table.name.clone(), table.clone()))
                .collect(),
        );
        let connection = open_connection(path)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS _livecore_log (seq INTEGER PRIMARY KEY, changes TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS _livecore_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO _livecore_meta VALUES ('last_seq', 0), ('floor', 0);",
        )?;
        for table in tables.values() {
            let columns: Vec<String> = table
                .columns
                .iter()
                .map(|(name, kind)| format!("{} {}", quote(name), kind.sql()))
                .collect();
            connection.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} (id INTEGER PRIMARY KEY, {})",
                quote(&table.name),
                columns.join(", ")
            ))?;
        }
        let queue = Arc::new(WriteQueue {
            state: Mutex::new(QueueState {
                open: true,
                ..QueueState::default()
            }),
            ready: Condvar::new(),
        });
        let writer = Writer {
            connection,
            tables: tables.clone(),
            manager,
            namespace: namespace.to_string(),
            history_limit: history_limit.max(1),
            max_commit_bytes: limits.max_commit_bytes,
        };
        let writer_queue = queue.clone();
        let handle = thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(&writer_queue))
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error) as Box<_>))?;
        Ok(Self {
            path: path.to_path_buf(),
            tables,
            queue,
            writer: Mutex::new(Some(handle)),
            readers: Mutex::new(Vec::new()),
            limits,
        })
    }

    /// Commits `ops` as one transaction for `identity` and publishes it; returns once
    /// livecore has been handed the commit. In-process writes are not held to the
    /// per-connection and queue limits.
    pub async fn write(
        &self,
        identity: &Identity,
        ops: Vec<WriteOp>,
    ) -> Result<WriteOutcome, WriteError> {
        self.queue_write(None, identity, ops)?.outcome().await
    }

    /// Queues a write for the writer without waiting for it: writes queued one after the
    /// other by one `source` commit in that order (the writer takes sources in turn).
    /// Refused with [`WriteError::Busy`] past the per-source or the total limit.
    pub(crate) fn queue_write(
        &self,
        source: Option<u64>,
        identity: &Identity,
        ops: Vec<WriteOp>,
    ) -> Result<QueuedWrite, WriteError> {
        let max_ops = self.limits.max_ops;
        if ops.is_empty() || ops.len() > max_ops {
            return Err(WriteError::TooManyOps(max_ops));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WriteRequest {
            source,
            identity: identity.clone(),
            ops,
            reply,
        };
        self.queue.push(request, &self.limits)?;
        Ok(QueuedWrite(answer))
    }

    /// Stops the writer: it commits the writes already queued until `refuse_after`, then
    /// answers the rest `shutting_down` without committing them, and stops.
    pub fn close(&self, refuse_after: Instant) {
        self.queue.close(refuse_after);
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }

    fn with_reader<T>(
        &self,
        read: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => open_connection(&self.path)?,
        };
        let result = read(&mut connection);
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < 8 {
            readers.push(connection);
        }
        result
    }

    /// A consistent snapshot of a table (on a per-user table, the rows `rows_of` names) and the
    /// SeqId of the last commit it holds: one read transaction reads both.
    pub fn snapshot(
        &self,
        table: &str,
        rows_of: RowsOf<'_>,
    ) -> rusqlite::Result<(SeqId, Vec<Row>)> {
        self.snapshot_within(table, rows_of, usize::MAX)
            .map(|read| read.unwrap_or_else(|too_large| unreachable!("{too_large}")))
    }

    /// [`snapshot`](Self::snapshot), given up (nothing kept) once the rows read hold more
    /// than `max_bytes` (as [`Value::size_bytes`] counts them): the rows wait in memory for the
    /// client, whatever the subscription's filter keeps of them.
    pub(crate) fn snapshot_within(
        &self,
        table: &str,
        rows_of: RowsOf<'_>,
        max_bytes: usize,
    ) -> rusqlite::Result<Result<(SeqId, Vec<Row>), SnapshotTooLarge>> {
        let config = self
            .tables
            .get(table)
            .ok_or(rusqlite::Error::InvalidParameterName(table.to_string()))?;
        let columns = select_list(config);
        self.with_reader(|connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let seq: i64 = transaction.query_row(
                "SELECT value FROM _livecore_meta WHERE key = 'last_seq'",
                [],
                |row| row.get(0),
            )?;
            let (sql, owner) = match (config.owner_column(), rows_of) {
                (Some(owner_column), RowsOf::User(owner)) => (
                    format!(
                        "SELECT {columns} FROM {} WHERE {} = ?1 ORDER BY id",
                        quote(&config.name),
                        quote(owner_column)
                    ),
                    Some(owner),
                ),
                (None, _) | (Some(_), RowsOf::Everyone) => (
                    format!("SELECT {columns} FROM {} ORDER BY id", quote(&config.name)),
                    None,
                ),
            };
            let mut statement = transaction.prepare(&sql)?;
            let mut cursor = match owner {
                Some(owner) => statement.query([owner])?,
                None => statement.query([])?,
            };
            let mut rows = Vec::new();
            let mut bytes = 0usize;
            while let Some(row) = cursor.next()? {
                let row = read_row(row, config.columns.len() + 1)?;
                bytes = bytes.saturating_add(row.values().iter().map(Value::size_bytes).sum());
                if bytes > max_bytes {
                    return Ok(Err(SnapshotTooLarge { max_bytes }));
                }
                rows.push(row);
            }
            drop(cursor);
            drop(statement);
            transaction.commit()?;
            Ok(Ok((SeqId(seq as u64), rows)))
        })
    }

    /// The commits after `after` and up to `until` (every commit when `None`), in order,
    /// from the log: at most `max_commits` of them, and no more once `max_bytes` of log
    /// text have been read (at least one commit when there is one), read in one short read
    /// transaction; whether the log held more up to `until`; and the last SeqId the log
    /// held then. Unavailable when the log no longer holds all the commits after `after`
    /// (or `after` is beyond the last commit).
    pub(crate) fn log_after(
        &self,
        (after, until): (SeqId, Option<SeqId>),
        namespace: &str,
        max_commits: usize,
        max_bytes: usize,
    ) -> rusqlite::Result<Result<LogChunk, ResumeUnavailable>> {
        self.with_reader(|connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let meta = |key: &str| -> rusqlite::Result<u64> {
                transaction
                    .query_row(
                        "SELECT value FROM _livecore_meta WHERE key = ?1",
                        [key],
                        |row| row.get::<_, i64>(0),
                    )
                    .map(|value| value as u64)
            };
            let (last, floor) = (meta("last_seq")?, meta("floor")?);
            if after.0 < floor || after.0 > last {
                return Ok(Err(ResumeUnavailable));
            }
            let until = until.map_or(last, |until| until.0.min(last));
            let mut statement = transaction.prepare(
                "SELECT seq, changes FROM _livecore_log WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
            )?;
            let mut cursor = statement.query([after.0 as i64, until as i64])?;
            let mut chunk = LogChunk {
                commits: Vec::new(),
                more: false,
                last: SeqId(last),
            };
            let mut bytes = 0;
            while let Some(row) = cursor.next()? {
                if chunk.commits.len() >= max_commits.max(1)
                    || (!chunk.commits.is_empty() && bytes >= max_bytes)
                {
                    chunk.more = true;
                    break;
                }
                let seq: i64 = row.get(0)?;
                let text = row.get_ref(1)?.as_str()?;
                bytes += text.len();
                let changes = decode_changes(text, namespace).map_err(|error| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        error.into(),
                    )
                })?;
                chunk.commits.push((SeqId(seq as u64), changes));
            }
            Ok(Ok(chunk))
        })
    }
}

/// Commits read from the log by [`Database::log_after`].
pub(crate) struct LogChunk {
    /// The commits, in SeqId order.
    pub(crate) commits: Vec<(SeqId, Vec<ChangeNotification>)>,
    /// The log held commits after the last one here (up to the bound asked for).
    pub(crate) more: bool,
    /// The last SeqId the log held when read.
    pub(crate) last: SeqId,
}

impl Drop for Database {
    fn drop(&mut self) {
        self.close(Instant::now());
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    // WAL: readers see a consistent snapshot while the writer commits. NORMAL: durable
    // across a crash of the process (not of the machine), the usual WAL trade-off.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(connection)
}

/// Quotes an identifier (names come from the server's configuration, but quote anyway).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn select_list(table: &TableConfig) -> String {
    table
        .column_names()
        .iter()
        .map(|name| quote(name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_row(row: &rusqlite::Row<'_>, width: usize) -> rusqlite::Result<Row> {
    let mut values = Vec::with_capacity(width);
    for index in 0..width {
        values.push(match row.get_ref(index)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(value) => Value::Int(value),
            ValueRef::Real(value) => Value::Float(value),
            ValueRef::Text(text) => Value::text(&String::from_utf8_lossy(text)),
            ValueRef::Blob(bytes) => Value::bytes(bytes),
        });
    }
    Ok(Row::new(values))
}

/// A client's JSON value checked against its column's type, ready to bind.
enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            SqlValue::Int(value) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*value)),
            SqlValue::Real(value) => ToSqlOutput::Owned(rusqlite::types::Value::Real(*value)),
            SqlValue::Text(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
        })
    }
}

fn sql_value(column: &str, kind: ColumnType, value: &Json) -> Result<SqlValue, WriteError> {
    let bad = || {
        WriteError::BadValue(format!(
            "column {column:?} takes {} values, got {value}",
            kind.sql()
        ))
    };
    Ok(match (kind, value) {
        (_, Json::Null) => SqlValue::Null,
        (ColumnType::Integer, Json::Bool(flag)) => SqlValue::Int(i64::from(*flag)),
        (ColumnType::Integer, Json::Number(_) | Json::String(_)) => {
            SqlValue::Int(json_integer(value).ok_or_else(bad)?)
        }
        (ColumnType::Real, Json::Number(number)) => {
            SqlValue::Real(number.as_f64().ok_or_else(bad)?)
        }
        (ColumnType::Text, Json::String(text)) => SqlValue::Text(text.clone()),
        _ => return Err(bad()),
    })
}

struct Writer {
    connection: Connection,
    tables: Arc<HashMap<String, TableConfig>>,
    manager: Arc<ConnectionsManager>,
    namespace: String,
    history_limit: u64,
    max_commit_bytes: usize,
}

impl Writer {
    fn run(mut self, queue: &WriteQueue) {
        while let Some((request, late)) = queue.next() {
            if late {
                let _ = request.reply.send(Err(WriteError::Closed));
                queue.done(request.source);
                continue;
            }
            let result = self.commit(&request.identity, &request.ops);
            let answer = match result {
                Ok((outcome, changes)) => {
                    // Published after COMMIT, by the only writer: livecore sees commits in
                    // SeqId order. A refused publish is a bug in this server; say so.
                    if let Err(error) = self.manager.publish_commit(outcome.seq, changes) {
                        if !self.manager.is_shutting_down() {
                            eprintln!(
                                "livecore-server: publish of {} failed: {error}",
                                outcome.seq
                            );
                        }
                    }
                    Ok(outcome)
                }
                Err(error) => Err(error),
            };
            let _ = request.reply.send(answer);
            queue.done(request.source);
        }
    }

    fn commit(
        &mut self,
        identity: &Identity,
        ops: &[WriteOp],
    ) -> Result<(WriteOutcome, Vec<ChangeNotification>), WriteError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changes = Vec::with_capacity(ops.len());
        let mut ids = Vec::with_capacity(ops.len());
        // The log entry, one JSON object per change; its size is the commit's size.
        let mut logged = String::from("[");
        for op in ops {
            let (table_name, values) = match op {
                WriteOp::Insert { table, values } | WriteOp::Update { table, values, .. } => {
                    (table, Some(values))
                }
                WriteOp::Delete { table, .. } => (table, None),
            };
            let table = self
                .tables
                .get(table_name)
                .ok_or_else(|| WriteError::UnknownTable(table_name.clone()))?;
            let allowed = match &table.write {
                WriteAccess::Authenticated => true,
                WriteAccess::Role(role) => identity.role.as_deref() == Some(role.as_str()),
                WriteAccess::ReadOnly => false,
            };
            if !allowed {
                return Err(WriteError::Forbidden(table.name.clone()));
            }
            let mut assignments = Vec::new();
            if let Some(values) = values {
                for (column, value) in values {
                    if Some(column.as_str()) == table.owner_column() {
                        return Err(WriteError::BadColumn(format!(
                            "column {column:?} is set by the server"
                        )));
                    }
                    if column == "id" {
                        if matches!(op, WriteOp::Update { .. }) {
                            return Err(WriteError::BadColumn("id cannot be changed".into()));
                        }
                        let id = json_integer(value).ok_or_else(|| {
                            WriteError::BadValue(format!("id must be an integer, got {value}"))
                        })?;
                        assignments.push(("id".to_string(), SqlValue::Int(id)));
                        continue;
                    }
                    let kind = table
                        .columns
                        .iter()
                        .find(|(name, _)| name == column)
                        .map(|(_, kind)| *kind)
                        .ok_or_else(|| {
                            WriteError::BadColumn(format!(
                                "table {:?} has no column {column:?}",
                                table.name
                            ))
                        })?;
                    assignments.push((column.clone(), sql_value(column, kind, value)?));
                }
            }
            let owner = table
                .owner_column()
                .map(|column| (column, identity.user.as_str()));
            let columns = select_list(table);
            let width = table.columns.len() + 1;
            let table_id = TableId::new(self.namespace.as_str(), table.name.as_str());
            let change = match op {
                WriteOp::Insert { .. } => {
                    if let Some((column, user)) = owner {
                        assignments.push((column.to_string(), SqlValue::Text(user.to_string())));
                    }
                    let names: Vec<String> =
                        assignments.iter().map(|(name, _)| quote(name)).collect();
                    let marks: Vec<String> =
                        (1..=assignments.len()).map(|i| format!("?{i}")).collect();
                    let sql = if assignments.is_empty() {
                        format!(
                            "INSERT INTO {} DEFAULT VALUES RETURNING {columns}",
                            quote(&table.name)
                        )
                    } else {
                        format!(
                            "INSERT INTO {} ({}) VALUES ({}) RETURNING {columns}",
                            quote(&table.name),
                            names.join(", "),
                            marks.join(", ")
                        )
                    };
                    let row = transaction.query_row(
                        &sql,
                        params_from_iter(assignments.iter().map(|(_, value)| value)),
                        |row| read_row(row, width),
                    )?;
                    ChangeNotification::insert(table_id, row)
                }
                WriteOp::Update { id, .. } => {
                    let old = select_own(&transaction, table, &columns, *id, owner)?;
                    if assignments.is_empty() {
                        return Err(WriteError::BadColumn(
                            "an update sets at least one column".into(),
                        ));
                    }
                    let sets: Vec<String> = assignments
                        .iter()
                        .enumerate()
                        .map(|(i, (name, _))| format!("{} = ?{}", quote(name), i + 1))
                        .collect();
                    let sql = format!(
                        "UPDATE {} SET {} WHERE id = ?{} RETURNING {columns}",
                        quote(&table.name),
                        sets.join(", "),
                        assignments.len() + 1
                    );
                    let mut params: Vec<&dyn ToSql> = assignments
                        .iter()
                        .map(|(_, value)| value as &dyn ToSql)
                        .collect();
                    params.push(id);
                    let row = transaction
                        .query_row(&sql, params.as_slice(), |row| read_row(row, width))?;
                    ChangeNotification::update(table_id, old, row)
                }
                WriteOp::Delete { id, .. } => {
                    let old = select_own(&transaction, table, &columns, *id, owner)?;
                    transaction.execute(
                        &format!("DELETE FROM {} WHERE id = ?1", quote(&table.name)),
                        [id],
                    )?;
                    ChangeNotification::delete(table_id, old)
                }
            };
            let change = match owner {
                Some((_, user)) => change.owned_by(user),
                None => change,
            };
            ids.push(match change.row.value(0) {
                Value::Int(id) => *id,
                _ => 0,
            });
            if logged.len() > 1 {
                logged.push(',');
            }
            logged.push_str(&encode_change(&table.name, &change).to_string());
            // Checked as the commit grows: an update of many large rows is refused before
            // it is all read (it would reach every subscriber as one notification).
            if logged.len() > self.max_commit_bytes {
                return Err(WriteError::CommitTooLarge(self.max_commit_bytes));
            }
            changes.push(change);
        }
        logged.push(']');
        let last: i64 = transaction.query_row(
            "SELECT value FROM _livecore_meta WHERE key = 'last_seq'",
            [],
            |row| row.get(0),
        )?;
        let seq = last as u64 + 1;
        transaction.execute(
            "INSERT INTO _livecore_log (seq, changes) VALUES (?1, ?2)",
            rusqlite::params![seq as i64, logged],
        )?;
        transaction.execute(
            "UPDATE _livecore_meta SET value = ?1 WHERE key = 'last_seq'",
            [seq as i64],
        )?;
        if seq > self.history_limit {
            // Keep the newest `history_limit` commits; resume from below the floor is
            // answered with resume_unavailable.
            let floor = (seq - self.history_limit) as i64;
            transaction.execute("DELETE FROM _livecore_log WHERE seq <= ?1", [floor])?;
            transaction.execute(
                "UPDATE _livecore_meta SET value = ?1 WHERE key = 'floor'",
                [floor],
            )?;
        }
        transaction.commit()?;
        Ok((
            WriteOutcome {
                seq: SeqId(seq),
                ids,
                committed_at: Instant::now(),
            },
            changes,
        ))
    }
}

fn select_own(
    transaction: &rusqlite::Transaction<'_>,
    table: &TableConfig,
    columns: &str,
    id: i64,
    owner: Option<(&str, &str)>,
) -> Result<Row, WriteError> {
    let width = table.columns.len() + 1;
    let found = match owner {
        Some((column, user)) => transaction
            .query_row(
                &format!(
                    "SELECT {columns} FROM {} WHERE id = ?1 AND {} = ?2",
                    quote(&table.name),
                    quote(column)
                ),
                rusqlite::params![id, user],
                |row| read_row(row, width),
            )
            .optional()?,
        None => transaction
            .query_row(
                &format!("SELECT {columns} FROM {} WHERE id = ?1", quote(&table.name)),
                [id],
                |row| read_row(row, width),
            )
            .optional()?,
    };
    found.ok_or(WriteError::NotFound(id))
}

// The log's JSON: one object per change, {"t": table, "op": "i"|"u"|"d", "row": [...],
// "old": [...], "owner": user}; values as JSON, bytes as {"hex": "..."}.

fn encode_value(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(flag) => Json::Bool(*flag),
        Value::Int(value) => Json::from(*value),
        // SQLite stores no NaN or infinity, so every float it returns is finite.
        Value::Float(value) => {
            serde_json::Number::from_f64(*value).map_or(Json::Null, Json::Number)
        }
        Value::Text(text) => Json::String(text.to_string()),
        Value::Bytes(bytes) => {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            serde_json::json!({ "hex": hex })
        }
    }
}

fn decode_value(json: &Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Bool(*flag),
        Json::Number(number) => match number.as_i64() {
            Some(value) if !number.is_f64() => Value::Int(value),
            _ => Value::Float(number.as_f64().ok_or("number out of range")?),
        },
        Json::String(text) => Value::text(text),
        Json::Object(object) => {
            let hex = object
                .get("hex")
                .and_then(Json::as_str)
                .ok_or("bad value")?;
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "bad hex")?;
            Value::bytes(&bytes)
        }
        Json::Array(_) => return Err("bad value".into()),
    })
}

fn encode_row(row: &Row) -> Json {
    Json::Array(row.values().iter().map(encode_value).collect())
}

fn decode_row(json: Option<&Json>) -> Result<Row, String> {
    let values = json.and_then(Json::as_array).ok_or("missing row")?;
    Ok(Row::new(
        values.iter().map(decode_value).collect::<Result<_, _>>()?,
    ))
}

fn encode_change(table: &str, change: &ChangeNotification) -> Json {
    let mut object = Map::new();
    object.insert("t".into(), Json::String(table.to_string()));
    let op = match change.change_type {
        ChangeType::Insert => "i",
        ChangeType::Update => "u",
        ChangeType::Delete => "d",
    };
    object.insert("op".into(), Json::String(op.into()));
    object.insert("row".into(), encode_row(&change.row));
    if let Some(old) = &change.old_row {
        object.insert("old".into(), encode_row(old));
    }
    if let Some(owner) = &change.owner {
        object.insert("owner".into(), Json::String(owner.as_str().to_string()));
    }
    Json::Object(object)
}

fn decode_changes(text: &str, namespace: &str) -> Result<Vec<ChangeNotification>, String> {
    let parsed: Json = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let changes = parsed.as_array().ok_or("log entry is not an array")?;
    changes
        .iter()
        .map(|change| {
            let table = change
                .get("t")
                .and_then(Json::as_str)
                .ok_or("missing table")?;
            let table_id = TableId::new(namespace, table);
            let row = decode_row(change.get("row"))?;
            let decoded = match change.get("op").and_then(Json::as_str) {
                Some("i") => ChangeNotification::insert(table_id, row),
                Some("u") => {
                    ChangeNotification::update(table_id, decode_row(change.get("old"))?, row)
                }
                Some("d") => ChangeNotification::delete(table_id, row),
                _ => return Err("bad op".to_string()),
            };
            Ok(match change.get("owner").and_then(Json::as_str) {
                Some(owner) => decoded.owned_by(owner),
                None => decoded,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_round_trip_every_value_kind() {
        let row = Row::new(vec![
            Value::Int(7),
            Value::Null,
            Value::Float(1.0),
            Value::Float(-2.5),
            Value::text("hé \"q\""),
            Value::bytes(&[0, 255, 16]),
            Value::Int(i64::MIN),
        ]);
        let old = Row::new(vec![Value::Int(7); 7]);
        let update = ChangeNotification::update(TableId::new("ns", "t"), old.clone(), row.clone())
            .owned_by("alice");
        let text = Json::Array(vec![encode_change("t", &update)]).to_string();
        let decoded = decode_changes(&text, "ns").unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].change_type, ChangeType::Update);
        assert_eq!(decoded[0].row.values(), row.values());
        assert_eq!(decoded[0].old_row.as_ref().unwrap().values(), old.values());
        assert_eq!(decoded[0].owner.as_ref().unwrap().as_str(), "alice");
        assert!(matches!(decoded[0].row.value(2), Value::Float(f) if *f == 1.0));
    }

    #[test]
    fn values_are_checked_against_column_types() {
        assert!(sql_value("n", ColumnType::Integer, &Json::from(1.5)).is_err());
        assert!(sql_value("n", ColumnType::Text, &Json::from(1)).is_err());
        assert!(matches!(
            sql_value("n", ColumnType::Real, &Json::from(2)),
            Ok(SqlValue::Real(_))
        ));
        assert!(matches!(
            sql_value("n", ColumnType::Integer, &Json::Null),
            Ok(SqlValue::Null)
        ));
    }
}
