//! The change stream: one replication session reading the slot, each PostgreSQL
//! transaction published to livecore as one commit numbered by its commit LSN (a
//! transaction that changes a table's rows on both sides of its `ALTER TABLE` or
//! `TRUNCATE`: one commit per part, numbered just below and up to the commit LSN).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livecore::{ChangeNotification, ConnectionsManager, Row, SeqId, TableId, UserId, Value};
use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{quote_ident, Connection, SourceConfig, TableConfig};
use crate::error::{classify_replication, PgError, PgResult};
use crate::pgoutput::{self, Datum, Message, Tuple};
use crate::schema::{self, TableInfo, TypeCache};
use crate::types;

/// The most parts one transaction is published in (see `Shared::apply_commit`): part `k`
/// of `n` is numbered `commit LSN - (n - k)`. A commit record is at least 32 bytes long
/// (a 24-byte record header and the commit's timestamp), so the parts of a transaction
/// stay above the previous commit's LSN, and a load's boundary `C - MAX_PARTS` keeps the
/// parts of every commit at or after its consistent point `C` and drops every commit
/// before it (their LSNs are at most `C - 32`).
pub(crate) const MAX_PARTS: u64 = 16;

/// The prefix of the logical messages [`PgSource::sync`] writes into the WAL.
const SYNC_PREFIX: &str = "livecore-postgres.sync";

/// Counters and positions of a running source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Transactions published to livecore.
    pub published_commits: u64,
    /// Transactions received from PostgreSQL (published, skipped as already published, or
    /// without changes to published tables).
    pub received_commits: u64,
    /// The SeqId (commit LSN) of the last transaction published.
    pub last_published: Option<SeqId>,
    /// The position acknowledged to PostgreSQL: everything before it was handed to livecore.
    pub acknowledged: u64,
    /// The server's WAL end as last reported on the stream (keepalives and commits): how
    /// far the walsender has decoded, not the end of PostgreSQL's WAL.
    pub server_wal_end: u64,
    /// `server_wal_end` minus the acknowledged position: WAL the stream has passed and
    /// the source has not confirmed (for example writes to tables outside the
    /// publication, until the next commit or [`PgSource::sync`]). 0 when caught up. It
    /// does NOT include WAL the stream has not reported yet (while disconnected, or while
    /// behind): for that backlog use [`PgSource::slot_lag_bytes`].
    pub lag_bytes: u64,
    /// Transactions whose Begin arrived on the stream but whose Commit has not yet been
    /// handed to livecore: 0 or 1 (the transaction being decoded; after a fatal error,
    /// the one the stream stopped in). It does NOT count commits PostgreSQL has and the
    /// stream has not delivered yet; for that backlog use [`PgSource::slot_lag_bytes`].
    pub lag_commits: u64,
    /// Replication sessions opened after a lost connection.
    pub reconnects: u64,
    /// Commits kept for resuming clients.
    pub history_len: usize,
    /// Changes those commits hold (at most [`SourceConfig::history_changes`]).
    pub history_changes: usize,
}

/// One item of a transaction, in stream order.
enum Item {
    Change(ChangeNotification),
    Schema(TableInfo),
    Truncate(TableId),
}

/// Recent commits, for clients resuming with their last SeqId.
pub(crate) struct History {
    commits: VecDeque<(SeqId, Vec<ChangeNotification>)>,
    /// Every commit above this SeqId is in `commits` (or had no change).
    floor: SeqId,
    /// Per table: the last SeqId at which its schema changed or it was truncated; a resume
    /// from before it cannot be replayed with the table's current columns.
    table_floor: HashMap<TableId, SeqId>,
    capacity: usize,
    /// The most changes `commits` holds together (a commit larger than that alone is not
    /// kept: a resume from before it is unavailable).
    max_changes: usize,
    /// The changes `commits` holds.
    changes: usize,
}

impl History {
    fn push(&mut self, seq: SeqId, changes: &[ChangeNotification]) {
        self.commits.push_back((seq, changes.to_vec()));
        self.changes += changes.len();
        while self.commits.len() > self.capacity || self.changes > self.max_changes {
            match self.commits.pop_front() {
                Some((evicted, gone)) => {
                    self.floor = self.floor.max(evicted);
                    self.changes -= gone.len();
                }
                None => break,
            }
        }
    }

    /// The commits of `table` after `from`, or `None` when some of them are gone.
    pub(crate) fn since(
        &self,
        table: &TableId,
        from: SeqId,
    ) -> Option<Vec<(SeqId, Vec<ChangeNotification>)>> {
        let floor = self
            .floor
            .max(self.table_floor.get(table).copied().unwrap_or(SeqId(0)));
        if from < floor {
            return None;
        }
        Some(
            self.commits
                .iter()
                .filter(|(seq, _)| *seq > from)
                .filter_map(|(seq, changes)| {
                    let mine: Vec<_> = changes
                        .iter()
                        .filter(|change| &change.table_id == table)
                        .cloned()
                        .collect();
                    (!mine.is_empty()).then_some((*seq, mine))
                })
                .collect(),
        )
    }
}

/// State shared by the stream task, loads and the host's handle.
pub(crate) struct Shared {
    pub(crate) manager: Arc<ConnectionsManager>,
    pub(crate) config: SourceConfig,
    pub(crate) connection: Connection,
    /// The current version of each published table, as registered with livecore.
    pub(crate) tables: Mutex<HashMap<TableId, TableInfo>>,
    /// Each published table's OID when the source started: a relation message or a
    /// catalog read naming another relation means the table was replaced or renamed.
    pub(crate) oids: HashMap<TableId, u32>,
    /// Per table: the commit LSN of the transaction whose relation message last described
    /// it on the stream (locked inside `tables`).
    described: Mutex<HashMap<TableId, u64>>,
    pub(crate) history: Mutex<History>,
    last_published: AtomicU64,
    published_commits: AtomicU64,
    received_commits: AtomicU64,
    /// A transaction's Begin arrived and its Commit has not been handed to livecore yet.
    /// A flag, not a count of Begins minus Commits: a transaction resent after a
    /// connection lost in its middle is begun twice and committed once.
    in_flight: AtomicBool,
    acknowledged: AtomicU64,
    server_wal_end: AtomicU64,
    reconnects: AtomicU64,
    /// The position up to which every commit is handed to livecore, raised by sync messages.
    synced: watch::Sender<u64>,
    failure: watch::Sender<Option<PgError>>,
    pub(crate) load_counter: AtomicU64,
    /// The source's SQL connection outside loads: the host's calls (`sync`,
    /// `slot_lag_bytes`), the stream's catalog reads (types of a relation, the idle check)
    /// and the cancel of an abandoned load's backend. Made on first use, and again once
    /// the server closed it or it did not answer, rather than one per call (a host polling
    /// the lag every second would otherwise start a server process each time).
    host_sql: Mutex<Option<Arc<tokio_postgres::Client>>>,
    created_slot: bool,
    created_publication: bool,
}

impl Shared {
    /// The connection for the host's calls: the one held while it is open, else a new one.
    async fn host_client(&self) -> PgResult<Arc<tokio_postgres::Client>> {
        if let Some(client) = lock(&self.host_sql)
            .as_ref()
            .filter(|client| !client.is_closed())
        {
            return Ok(client.clone());
        }
        let client = Arc::new(self.connection.connect_sql().await?);
        *lock(&self.host_sql) = Some(client.clone());
        Ok(client)
    }

    /// Runs `query` on the host's connection, once more on a new connection when the held
    /// one turns out closed (the server restarted, or an administrator ended the session);
    /// all within `timeout` (see [`host_bounded`](Self::host_bounded)).
    pub(crate) async fn host_query<T, Run, Ran>(&self, timeout: Duration, query: Run) -> PgResult<T>
    where
        Run: Fn(Arc<tokio_postgres::Client>) -> Ran,
        Ran: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        self.host_bounded(timeout, async {
            let client = self.host_client().await?;
            match query(client.clone()).await {
                Err(error) if session_ended(&error, &client) => {
                    *lock(&self.host_sql) = None;
                    Ok(query(self.host_client().await?).await?)
                }
                ran => Ok(ran?),
            }
        })
        .await
    }

    /// `work` on the host's connection within `timeout`, else [`PgError::Sql`] saying so.
    /// A server that did not answer for [`HOST_SILENCE`] or more has its connection let
    /// go (one that vanished without a reset, behind a failed-over address or a NAT that
    /// forgot the flow, leaves a socket that looks open until the kernel gives up, minutes
    /// later); a shorter bound is the caller's deadline, which says nothing about the
    /// connection.
    async fn host_bounded<T>(
        &self,
        timeout: Duration,
        work: impl std::future::Future<Output = PgResult<T>>,
    ) -> PgResult<T> {
        match tokio::time::timeout(timeout, work).await {
            Ok(done) => done,
            Err(_) => {
                if timeout >= HOST_SILENCE {
                    *lock(&self.host_sql) = None;
                }
                Err(PgError::Sql(format!(
                    "PostgreSQL did not answer within {timeout:?}"
                )))
            }
        }
    }

    pub(crate) fn fail(&self, error: PgError) {
        self.failure.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(error);
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn failure(&self) -> Option<PgError> {
        self.failure.borrow().clone()
    }

    fn acknowledge(&self, client: &ReplicationClient, position: u64) {
        if self.acknowledged.fetch_max(position, Ordering::AcqRel) < position {
            client.update_applied_lsn(Lsn(position));
        }
    }

    /// Publishes one commit's items in order: changes are handed to livecore together,
    /// except around a schema change or truncation of a table they touch, where the
    /// transaction is published in parts: the changes before it go first, then the schema
    /// is registered (or the table's subscriptions revoked), then the rest. Part `k` of `n`
    /// gets SeqId `commit LSN - (n - k)`: the last part (the only one, usually) carries
    /// the commit LSN, every part its own SeqId, all above the previous transaction's
    /// (commit records are more than [`MAX_PARTS`] bytes apart), so a client's last SeqId
    /// names exactly which parts it has seen.
    fn apply_commit(&self, commit: SeqId, items: Vec<Item>) -> PgResult<bool> {
        enum Step {
            Publish(Vec<ChangeNotification>),
            Register(TableInfo),
            Truncate(TableId),
        }
        let mut steps = Vec::new();
        let mut pending: Vec<ChangeNotification> = Vec::new();
        for item in items {
            match item {
                Item::Change(change) => pending.push(change),
                Item::Schema(info) => {
                    if pending
                        .iter()
                        .any(|change| change.table_id == info.table_id)
                    {
                        steps.push(Step::Publish(std::mem::take(&mut pending)));
                    }
                    steps.push(Step::Register(info));
                }
                Item::Truncate(table) => {
                    if pending.iter().any(|change| change.table_id == table) {
                        steps.push(Step::Publish(std::mem::take(&mut pending)));
                    }
                    steps.push(Step::Truncate(table));
                }
            }
        }
        if !pending.is_empty() {
            steps.push(Step::Publish(pending));
        }
        let parts = steps
            .iter()
            .filter(|step| matches!(step, Step::Publish(_)))
            .count() as u64;
        if parts > MAX_PARTS {
            return Err(PgError::Decode(format!(
                "the transaction committed at {} changes rows of a table on both sides of \
                 {} of its schema changes or truncations; the source numbers at most {} \
                 parts of one transaction",
                commit.0,
                parts - 1,
                MAX_PARTS
            )));
        }
        // The SeqId the next part gets; a schema change or truncation before it is the
        // table's history floor: a client that has not seen that part cannot resume
        // across the change.
        let mut next = commit.0 - parts.saturating_sub(1);
        let mut published = false;
        for step in steps {
            match step {
                Step::Publish(changes) => {
                    published |= self.publish(SeqId(next), changes)?;
                    next += 1;
                }
                Step::Register(info) => self.register(SeqId(next), commit.0, info)?,
                Step::Truncate(table) => {
                    lock(&self.history)
                        .table_floor
                        .insert(table.clone(), SeqId(next));
                    // livecore has no "every row left": the subscribers are told to start
                    // over, never left with rows that no longer exist.
                    self.manager.revoke_table(
                        &table,
                        "the table was truncated in PostgreSQL; subscribe again",
                    )?;
                }
            }
        }
        Ok(published)
    }

    fn publish(&self, seq: SeqId, changes: Vec<ChangeNotification>) -> PgResult<bool> {
        if changes.is_empty() {
            return Ok(false);
        }
        // Into the history before livecore: a resume that subscribed before this publish
        // sees it at its gate, one that subscribed after finds it here (duplicates are
        // dropped by the gate).
        lock(&self.history).push(seq, &changes);
        self.manager.publish_commit(seq, changes)?;
        Ok(true)
    }

    /// Registers a table's new version, described by a relation message of the
    /// transaction committed at `described_at`, with livecore; resumes from below `floor`
    /// can no longer be replayed for it.
    fn register(&self, floor: SeqId, described_at: u64, info: TableInfo) -> PgResult<()> {
        let mut tables = lock(&self.tables);
        lock(&self.described).insert(info.table_id.clone(), described_at);
        if tables.get(&info.table_id) == Some(&info) {
            return Ok(());
        }
        self.register_with_livecore(tables.get(&info.table_id), &info)?;
        lock(&self.history)
            .table_floor
            .insert(info.table_id.clone(), floor);
        tables.insert(info.table_id.clone(), info);
        Ok(())
    }

    /// Registers `new` with livecore, which recompiles the table's subscriptions. A column
    /// whose type changes under the same name (`ALTER COLUMN ... TYPE`: another type, say
    /// integer to numeric, which livecore holds as text, or the same type with another
    /// modifier, `numeric(10,2)` to `numeric(10,3)`, or another type of the same kind,
    /// `timestamp` to `timestamptz`), or whose name now belongs to another column, then
    /// has its readers closed with `SchemaChanged` (`ConnectionsManager::columns_rewritten`,
    /// `SELECT *` included): PostgreSQL rewrites every value of the column without a row
    /// change on the stream (`12.50` becomes `12.500`, `2024-01-01 10:00:00` becomes
    /// `2024-01-01 10:00:00+00`), so the rows they hold, and their filters' verdicts on
    /// them, would change with no change to tell them.
    fn register_with_livecore(&self, old: Option<&TableInfo>, new: &TableInfo) -> PgResult<()> {
        let rewritten: Vec<&str> = match old {
            Some(old) => new
                .columns
                .iter()
                .filter(|column| {
                    old.columns.iter().any(|was| {
                        was.name == column.name
                            && (was.kind != column.kind
                                || was.type_oid != column.type_oid
                                || was.type_modifier != column.type_modifier)
                    })
                })
                .map(|column| column.name.as_str())
                .chain(moved_columns(old, new))
                .collect(),
            None => Vec::new(),
        };
        self.manager.register_table(new.schema())?;
        self.manager.columns_rewritten(&new.table_id, &rewritten)?;
        Ok(())
    }

    /// Registers `current`, the table's version in the catalog of a snapshot whose
    /// consistent point is `snapshot_at`, when the stream (which has passed `snapshot_at`)
    /// last described the table before that point and still has `stale`: the change of
    /// columns happened between the two, and no row of the table has changed since (its
    /// relation message would have come first), so every later change of it will arrive
    /// after a relation message. Returns whether it registered; resumes from before the
    /// commits published so far can no longer be replayed for the table.
    pub(crate) fn register_if_current(
        &self,
        stale: &TableInfo,
        current: TableInfo,
        snapshot_at: u64,
    ) -> PgResult<bool> {
        let mut tables = lock(&self.tables);
        let described_at = lock(&self.described)
            .get(&stale.table_id)
            .copied()
            .unwrap_or(0);
        if tables.get(&stale.table_id) != Some(stale) || described_at >= snapshot_at {
            return Ok(false);
        }
        self.register_with_livecore(Some(stale), &current)?;
        let floor = SeqId(self.last_published.load(Ordering::Acquire) + 1);
        lock(&self.history)
            .table_floor
            .insert(current.table_id.clone(), floor);
        tables.insert(current.table_id.clone(), current);
        Ok(true)
    }

    pub(crate) fn stats(&self) -> SourceStats {
        let acknowledged = self.acknowledged.load(Ordering::Acquire);
        let server_wal_end = self.server_wal_end.load(Ordering::Acquire);
        let last = self.last_published.load(Ordering::Acquire);
        let received = self.received_commits.load(Ordering::Acquire);
        let history = lock(&self.history);
        SourceStats {
            published_commits: self.published_commits.load(Ordering::Acquire),
            received_commits: received,
            last_published: (last > 0).then_some(SeqId(last)),
            acknowledged,
            server_wal_end,
            lag_bytes: server_wal_end.saturating_sub(acknowledged),
            lag_commits: u64::from(self.in_flight.load(Ordering::Acquire)),
            reconnects: self.reconnects.load(Ordering::Acquire),
            history_len: history.commits.len(),
            history_changes: history.changes,
        }
    }
}

/// The columns of `new` whose name now belongs to another column than in `old`. Columns
/// come in column-number order (the catalog's and pgoutput's), a column keeps its number
/// for life and an added one gets a higher number than every column before it, so the
/// names both versions share keep their relative order unless one of them now names
/// another column: renamed over another (`a` and `b` swapped), or dropped and added again
/// (`DROP COLUMN grp, ADD COLUMN grp`, with a later column in between). Every value under
/// such a name changed without a row change on the stream. The names that kept their
/// order are a longest common subsequence of the two orders; a name outside some longest
/// one may have moved, and only such names are returned: for `grp` moved to the end of
/// `[id, grp, a, b]`, `grp` alone; of two names trading places, which one changed cannot
/// be told, and both are. (A column dropped and added again as the last one keeps its
/// place among the shared names and is not seen: pgoutput does not send column numbers.)
fn moved_columns<'a>(old: &TableInfo, new: &'a TableInfo) -> Vec<&'a str> {
    // Names are unique within a table: the shared names in `new`'s order, each as its
    // position in `old`'s order. A longest common subsequence of the two orders is then a
    // longest increasing run of positions.
    let old_position = |name: &str| old.columns.iter().position(|column| column.name == name);
    let shared: Vec<(&'a str, usize)> = new
        .columns
        .iter()
        .filter_map(|column| {
            old_position(&column.name).map(|position| (column.name.as_str(), position))
        })
        .collect();
    let positions: Vec<usize> = shared.iter().map(|(_, position)| *position).collect();
    let longest = longest_increasing(positions.iter().copied());
    // A name in every longest run shortens it when left out; one that does not is outside
    // some longest run.
    shared
        .iter()
        .enumerate()
        .filter(|(index, _)| {
            let without = positions
                .iter()
                .enumerate()
                .filter(|(other, _)| other != index)
                .map(|(_, position)| *position);
            longest_increasing(without) == longest
        })
        .map(|(_, (name, _))| *name)
        .collect()
}

/// The length of a longest strictly increasing subsequence (patience sorting: the smallest
/// last value of a run of each length, O(n log n)).
fn longest_increasing(values: impl Iterator<Item = usize>) -> usize {
    let mut smallest_last: Vec<usize> = Vec::new();
    for value in values {
        match smallest_last.binary_search(&value) {
            Ok(_) => {}
            Err(at) if at == smallest_last.len() => smallest_last.push(value),
            Err(at) => smallest_last[at] = value,
        }
    }
    smallest_last.len()
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere never leaves these maps half-written: keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running source: reads the slot and publishes to livecore until stopped.
pub struct PgSource {
    pub(crate) shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl PgSource {
    /// Connects, checks and registers the configured tables (each must exist and be
    /// `REPLICA IDENTITY FULL`), creates the publication and the slot when missing, and
    /// starts streaming. Must be called inside a tokio runtime, which runs the stream.
    pub async fn start(
        manager: Arc<ConnectionsManager>,
        config: SourceConfig,
    ) -> PgResult<PgSource> {
        config.validate()?;
        let connection = Connection::parse(&config.connection)?;
        let client = connection.connect_sql().await?;
        let mut types = TypeCache::default();
        let mut tables = HashMap::new();
        let mut oids = HashMap::new();
        for table in &config.tables {
            let (oid, info) =
                schema::load_table(&client, &mut types, table, config.unsupported_as_text).await?;
            manager.register_table(info.schema())?;
            oids.insert(info.table_id.clone(), oid);
            tables.insert(info.table_id.clone(), info);
        }
        let created_publication = ensure_publication(&client, &config).await?;
        let created_slot = ensure_slot(&client, &config.slot).await?;
        let confirmed = slot_confirmed(&client, &config.slot).await?;
        // A slot created now streams nothing from before its creation: a client resuming
        // from an earlier position may have missed commits (those of a previous,
        // invalidated or dropped slot), so the history starts at the new slot.
        let floor = match config.resume_after {
            Some(after) if !created_slot => after,
            after => SeqId(confirmed).max(after.unwrap_or(SeqId(0))),
        };
        let (synced, _) = watch::channel(0);
        let (failure, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            manager,
            connection,
            tables: Mutex::new(tables),
            oids,
            described: Mutex::new(HashMap::new()),
            history: Mutex::new(History {
                commits: VecDeque::new(),
                floor,
                table_floor: HashMap::new(),
                capacity: config.history_commits,
                max_changes: config.history_changes,
                changes: 0,
            }),
            last_published: AtomicU64::new(config.resume_after.map_or(0, |seq| seq.0)),
            published_commits: AtomicU64::new(0),
            received_commits: AtomicU64::new(0),
            in_flight: AtomicBool::new(false),
            acknowledged: AtomicU64::new(confirmed),
            server_wal_end: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            synced,
            failure,
            load_counter: AtomicU64::new(0),
            host_sql: Mutex::new(None),
            created_slot,
            created_publication,
            config,
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_stream(shared.clone(), stop_rx));
        Ok(PgSource {
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The SeqId (commit LSN) of the last transaction published. A source started later
    /// with [`SourceConfig::resume_after`] set to it publishes nothing twice.
    pub fn last_published(&self) -> Option<SeqId> {
        self.shared.stats().last_published
    }

    /// The current version of a published table: its columns and their types.
    pub fn table(&self, table_id: &TableId) -> Option<TableInfo> {
        lock(&self.shared.tables).get(table_id).cloned()
    }

    /// Counters, positions and lag.
    pub fn stats(&self) -> SourceStats {
        self.shared.stats()
    }

    /// The error that stopped the stream, if one did. The source does not retry after it.
    pub fn failure(&self) -> Option<PgError> {
        self.shared.failure()
    }

    /// Waits until the stream fails, and returns why.
    pub async fn failed(&self) -> PgError {
        let mut watch = self.shared.failure.subscribe();
        loop {
            if let Some(error) = watch.borrow_and_update().clone() {
                return error;
            }
            if watch.changed().await.is_err() {
                return PgError::Stopped;
            }
        }
    }

    /// Waits until every transaction committed before this call is handed to livecore
    /// (read-your-writes for a host that just wrote), at most `timeout` (and a second for
    /// the closing catalog check when the wait took it all). Returns the position reached.
    /// Works by writing a non-transactional logical message into the WAL and waiting for
    /// the stream to pass it. Time running out is [`PgError::Replication`] ("not synced
    /// within"), a server that stopped answering included (its connection is made again
    /// at the next call); the closing check's own bound is [`PgError::Sql`].
    pub async fn sync(&self, timeout: Duration) -> PgResult<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let not_synced = || PgError::Replication(format!("not synced within {timeout:?}"));
        let row = self
            .shared
            .host_query(left(), |client| async move {
                client
                    .query_one(
                        "SELECT (pg_logical_emit_message(false, $1, ''::text))::text",
                        &[&SYNC_PREFIX],
                    )
                    .await
            })
            .await
            // A failure once the deadline passed is the deadline.
            .map_err(|error| {
                if left().is_zero() {
                    not_synced()
                } else {
                    error
                }
            })?;
        let text: String = row.get(0);
        let target = Lsn::parse(&text)
            .map_err(|error| PgError::Sql(format!("bad LSN '{text}': {error}")))?
            .0;
        let mut synced = self.shared.synced.subscribe();
        let mut failed = self.shared.failure.subscribe();
        let wait = async {
            loop {
                if *synced.borrow_and_update() >= target {
                    return Ok(target);
                }
                if let Some(error) = failed.borrow_and_update().clone() {
                    return Err(error);
                }
                tokio::select! {
                    changed = synced.changed() => if changed.is_err() { return Err(PgError::Stopped) },
                    changed = failed.changed() => if changed.is_err() { return Err(PgError::Stopped) },
                }
            }
        };
        let reached = tokio::time::timeout(left(), wait)
            .await
            .map_err(|_| not_synced())??;
        // A DROP TABLE, or a table leaving the publication, sends nothing on the stream:
        // the stream has passed every commit before this call, so check that each table
        // is still there and published (given a second at least, should the wait have
        // taken the rest).
        let check = async {
            let client = self.shared.host_client().await?;
            check_tables(&self.shared, &client).await
        };
        let bound = left().max(Duration::from_secs(1));
        if let Err(error) = self.shared.host_bounded(bound, check).await {
            if !matches!(error, PgError::Sql(_)) {
                self.shared.fail(error.clone());
            }
            return Err(error);
        }
        Ok(reached)
    }

    /// Replication lag as PostgreSQL sees it: bytes between the server's current WAL
    /// position and the slot's confirmed position, so it includes commits PostgreSQL holds
    /// that the stream has not sent yet. The confirmed position reaches PostgreSQL with
    /// the next status update (`status_interval`) after the source acknowledged it. A
    /// server that does not answer within 30 s is [`PgError::Sql`].
    pub async fn slot_lag_bytes(&self) -> PgResult<u64> {
        let slot = &self.shared.config.slot;
        let row = self
            .shared
            .host_query(HOST_QUERY_TIMEOUT, |client| async move {
                client
                    .query_opt(
                        "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::text \
                         FROM pg_replication_slots WHERE slot_name = $1",
                        &[slot],
                    )
                    .await
            })
            .await?
            .ok_or_else(|| PgError::SlotMissing(slot.clone()))?;
        let text: String = row.get(0);
        text.parse::<f64>()
            .map(|bytes| bytes.max(0.0) as u64)
            .map_err(|_| PgError::Sql(format!("bad lag '{text}'")))
    }

    /// Stops streaming and confirms to PostgreSQL everything handed to livecore, keeping
    /// the slot (and publication): a source started later resumes after the last commit
    /// published. Returns the last SeqId published.
    pub async fn stop(mut self) -> PgResult<Option<SeqId>> {
        self.halt().await;
        let client = self.shared.connection.connect_sql().await?;
        wait_slot_released(&client, &self.shared.config.slot).await?;
        let acknowledged = self.shared.acknowledged.load(Ordering::Acquire);
        if acknowledged > 0 {
            let target = Lsn(acknowledged).to_pg_string();
            client
                .execute(
                    "SELECT pg_replication_slot_advance(slot_name, $2::text::pg_lsn) \
                     FROM pg_replication_slots \
                     WHERE slot_name = $1 AND confirmed_flush_lsn < $2::text::pg_lsn",
                    &[&self.shared.config.slot, &target],
                )
                .await?;
        }
        Ok(self.last_published())
    }

    /// Stops for good: stops streaming and drops the slot and the publication if this
    /// source created them. Returns the last SeqId published.
    pub async fn stop_and_drop(mut self) -> PgResult<Option<SeqId>> {
        self.halt().await;
        let client = self.shared.connection.connect_sql().await?;
        if self.shared.created_slot {
            wait_slot_released(&client, &self.shared.config.slot).await?;
            client
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE slot_name = $1",
                    &[&self.shared.config.slot],
                )
                .await?;
        }
        if self.shared.created_publication {
            client
                .batch_execute(&format!(
                    "DROP PUBLICATION IF EXISTS {}",
                    quote_ident(&self.shared.config.publication)
                ))
                .await?;
        }
        Ok(self.last_published())
    }

    async fn halt(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PgSource {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The longest a host call's query (`slot_lag_bytes`, a load's cancel) waits for
/// PostgreSQL's answer.
pub(crate) const HOST_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A host call's connection that did not answer for this long is let go (see
/// `Shared::host_bounded`).
const HOST_SILENCE: Duration = Duration::from_secs(5);

/// Whether `error` of a query on `client` means the session is over (closed, or ended by
/// the server: an administrator's `pg_terminate_backend`, a shutdown), so the query may be
/// tried again on a new connection.
fn session_ended(error: &tokio_postgres::Error, client: &tokio_postgres::Client) -> bool {
    use tokio_postgres::error::SqlState;
    error.is_closed()
        || client.is_closed()
        || error.code().is_some_and(|code| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(code)
        })
}

/// How often the stream checks, while idle (at a keepalive with no transaction open), that
/// every published table is still there and published (see [`check_tables`]).
const CATALOG_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Checks in the catalog that every configured table is still the relation the source
/// started with, under its name, and still in the publication. PostgreSQL's stream says
/// nothing when a published table is dropped (created again or not: a new table is not in
/// a `FOR TABLE` publication, so none of its changes would ever arrive), nor when it leaves
/// the publication (`ALTER PUBLICATION ... DROP TABLE`): without this check the
/// subscribers would keep rows that no longer exist and miss every later change, told
/// nothing. `TableReplaced` (dropped, renamed, moved, or created again) or `Publication`
/// (no longer published); `Sql` when the catalog could not be read.
pub(crate) async fn check_tables(shared: &Shared, client: &tokio_postgres::Client) -> PgResult<()> {
    let publication = &shared.config.publication;
    // Every table in one query (a sync, and each idle check, would otherwise make two
    // round trips per table): each starting OID's current name, if it still exists, and
    // whether the publication still holds it.
    let oids: Vec<u32> = shared.oids.values().copied().collect();
    let rows = client
        .query(
            "SELECT o.oid, n.nspname::text, c.relname::text, \
                    EXISTS (SELECT 1 FROM pg_publication_tables p \
                            WHERE p.pubname = $2 AND p.schemaname = n.nspname \
                              AND p.tablename = c.relname) \
             FROM unnest($1::oid[]) AS o(oid) \
             LEFT JOIN pg_class c ON c.oid = o.oid \
             LEFT JOIN pg_namespace n ON n.oid = c.relnamespace",
            &[&oids, publication],
        )
        .await?;
    let found: HashMap<u32, (Option<String>, Option<String>, bool)> = rows
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
        .collect();
    for table in &shared.config.tables {
        let qualified = format!("{}.{}", table.schema, table.name);
        let Some(&oid) = shared
            .oids
            .get(&TableId::new(table.schema.as_str(), table.name.as_str()))
        else {
            continue;
        };
        let (published, detail) = match found.get(&oid) {
            Some((Some(schema), Some(name), published)) => (
                *published,
                (*schema != table.schema || *name != table.name)
                    .then(|| format!("relation {oid} is now {schema}.{name} (renamed or moved)")),
            ),
            _ => (
                false,
                Some(format!(
                    "relation {oid} was dropped; the publication sends nothing of a table \
                     created again under its name"
                )),
            ),
        };
        if let Some(detail) = detail {
            return Err(PgError::TableReplaced {
                table: qualified,
                detail,
            });
        }
        if !published {
            let exists = client
                .query_opt(
                    "SELECT 1 FROM pg_publication WHERE pubname = $1",
                    &[publication],
                )
                .await?
                .is_some();
            return Err(PgError::Publication {
                publication: publication.clone(),
                reason: if exists {
                    format!("it no longer publishes {qualified}; its changes would be missed")
                } else {
                    "it no longer exists".into()
                },
            });
        }
    }
    Ok(())
}

/// Creates the publication, or checks an existing one: it must publish every action
/// (insert, update, delete, truncate), without a row filter or column list on a configured
/// table, and not publish partitions under their root's name when a configured table is a
/// partition; any of these would hide changes without a trace. Missing tables are added.
async fn ensure_publication(
    client: &tokio_postgres::Client,
    config: &SourceConfig,
) -> PgResult<bool> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    // pubviaroot exists from PostgreSQL 13 on.
    let via_root = if version >= 130_000 {
        "pubviaroot"
    } else {
        "false"
    };
    let existing = client
        .query_opt(
            &format!(
                "SELECT pubinsert, pubupdate, pubdelete, pubtruncate, {via_root} \
                 FROM pg_publication WHERE pubname = $1"
            ),
            &[&config.publication],
        )
        .await?;
    // ONLY: a table's inheritance children are not published (loads read ONLY the table).
    let tables: Vec<String> = config
        .tables
        .iter()
        .map(|table| format!("ONLY {}", table.quoted()))
        .collect();
    let Some(row) = existing else {
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {} \
                 WITH (publish = 'insert, update, delete, truncate')",
                quote_ident(&config.publication),
                tables.join(", ")
            ))
            .await?;
        return Ok(true);
    };
    let refuse = |reason: String| PgError::Publication {
        publication: config.publication.clone(),
        reason,
    };
    let missing: Vec<&str> = ["insert", "update", "delete", "truncate"]
        .into_iter()
        .enumerate()
        .filter(|(index, _)| !row.get::<_, bool>(*index))
        .map(|(_, action)| action)
        .collect();
    if !missing.is_empty() {
        return Err(refuse(format!(
            "it does not publish {}; the source needs every action \
             (ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate'))",
            missing.join(", "),
            quote_ident(&config.publication)
        )));
    }
    let publishes_via_root: bool = row.get(4);
    // Tables to add once every check passed: a refusal leaves the publication as it was.
    let mut to_add = Vec::new();
    for table in &config.tables {
        let member = client
            .query_opt(
                "SELECT 1 FROM pg_publication_tables \
                 WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                &[&config.publication, &table.schema, &table.name],
            )
            .await?
            .is_some();
        if !member {
            to_add.push(table);
        }
        if publishes_via_root {
            let partition = client
                .query_opt(
                    "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND c.relispartition",
                    &[&table.schema, &table.name],
                )
                .await?
                .is_some();
            if partition {
                return Err(refuse(format!(
                    "it has publish_via_partition_root = true, so the changes of the \
                     partition {}.{} would arrive under its root's name",
                    table.schema, table.name
                )));
            }
        }
        // Row filters and column lists exist from PostgreSQL 15 on.
        if version >= 150_000 {
            let filtered = client
                .query_opt(
                    "SELECT pr.prqual IS NOT NULL, pr.prattrs IS NOT NULL \
                     FROM pg_publication_rel pr \
                     JOIN pg_publication p ON p.oid = pr.prpubid \
                     JOIN pg_class c ON c.oid = pr.prrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE p.pubname = $1 AND n.nspname = $2 AND c.relname = $3",
                    &[&config.publication, &table.schema, &table.name],
                )
                .await?;
            if let Some(row) = filtered {
                let (row_filter, column_list): (bool, bool) = (row.get(0), row.get(1));
                if row_filter || column_list {
                    return Err(refuse(format!(
                        "it publishes {}.{} with a {}; the source needs every row and column",
                        table.schema,
                        table.name,
                        if row_filter {
                            "row filter (WHERE)"
                        } else {
                            "column list"
                        }
                    )));
                }
            }
        }
    }
    for table in to_add {
        client
            .batch_execute(&format!(
                "ALTER PUBLICATION {} ADD TABLE ONLY {}",
                quote_ident(&config.publication),
                table.quoted()
            ))
            .await?;
    }
    Ok(false)
}

async fn ensure_slot(client: &tokio_postgres::Client, slot: &str) -> PgResult<bool> {
    let existing = client
        .query_opt(
            "SELECT plugin::text, slot_type FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    match existing {
        Some(row) => {
            let plugin: Option<String> = row.get(0);
            if plugin.as_deref() != Some("pgoutput") {
                return Err(PgError::Config(format!(
                    "slot {slot} exists but is not a pgoutput logical slot"
                )));
            }
            Ok(false)
        }
        None => {
            client
                .execute(
                    "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await?;
            Ok(true)
        }
    }
}

/// The slot's confirmed position; an invalidated slot (its WAL removed past
/// `max_slot_wal_keep_size`) is refused here rather than at the first session.
async fn slot_confirmed(client: &tokio_postgres::Client, slot: &str) -> PgResult<u64> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&slot],
        )
        .await?
        .ok_or_else(|| PgError::SlotMissing(slot.to_string()))?;
    let wal_status: Option<String> = row.get(1);
    if wal_status.as_deref() == Some("lost") {
        return Err(PgError::SlotInvalidated(format!(
            "slot {slot} has wal_status 'lost': the WAL it needs was removed"
        )));
    }
    let text: Option<String> = row.get(0);
    match text {
        Some(text) => Lsn::parse(&text)
            .map(|lsn| lsn.0)
            .map_err(|error| PgError::Sql(format!("bad LSN '{text}': {error}"))),
        None => Ok(0),
    }
}

/// Waits (bounded) until no session holds the slot.
async fn wait_slot_released(client: &tokio_postgres::Client, slot: &str) -> PgResult<()> {
    for _ in 0..200 {
        let active = client
            .query_opt(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await?;
        match active {
            Some(row) if row.get::<_, bool>(0) => {
                tokio::time::sleep(Duration::from_millis(25)).await
            }
            _ => return Ok(()),
        }
    }
    Err(PgError::Replication(format!(
        "slot {slot} is still held by a session"
    )))
}

/// Why a replication session ended.
enum SessionEnd {
    /// Asked to stop.
    Stopped,
    /// Lost: reconnect.
    Transient(String),
    /// Cannot go on.
    Fatal(PgError),
}

/// The waits between reconnection attempts: 50 ms, doubling up to a maximum, and back to
/// 50 ms after a session that got through.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);

    fn new(max: Duration) -> Self {
        Self {
            next: Self::FIRST.min(max),
            max,
        }
    }

    /// The wait before the next attempt, after a session that `got_through` (it started
    /// streaming) or did not.
    fn wait(&mut self, got_through: bool) -> Duration {
        if got_through {
            self.next = Self::FIRST.min(self.max);
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

async fn run_stream(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut attempts = 0u32;
    let mut backoff = Backoff::new(shared.config.max_reconnect_backoff);
    loop {
        match session(&shared, &mut stop, &mut attempts).await {
            SessionEnd::Stopped => return,
            SessionEnd::Fatal(error) => {
                shared.fail(error);
                return;
            }
            SessionEnd::Transient(reason) => {
                // A session that got through reset `attempts`: the count and the waits
                // start over.
                let wait = backoff.wait(attempts == 0);
                attempts += 1;
                if attempts > shared.config.max_reconnect_attempts {
                    shared.fail(PgError::ConnectionLost {
                        attempts: attempts - 1,
                        last: reason,
                    });
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
                shared.reconnects.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// An open transaction on the stream.
struct Txn {
    seq: SeqId,
    items: Vec<Item>,
}

/// The stream's view of the relations it was told about in this session.
struct Relations {
    by_oid: HashMap<u32, Option<TableInfo>>,
    types: TypeCache,
}

async fn session(
    shared: &Arc<Shared>,
    stop: &mut watch::Receiver<bool>,
    attempts: &mut u32,
) -> SessionEnd {
    if *stop.borrow() {
        return SessionEnd::Stopped;
    }
    let config = shared.connection.replication(
        &shared.config.slot,
        &shared.config.publication,
        shared.config.status_interval,
    );
    let ended = |error: pgwire_replication::PgWireError| match classify_replication(&error) {
        Some(fatal) => SessionEnd::Fatal(fatal),
        None => SessionEnd::Transient(error.to_string()),
    };
    // Start from the slot's confirmed position; what this source already published above
    // it is skipped by SeqId.
    let acknowledged = shared.acknowledged.load(Ordering::Acquire);
    let mut client = match ReplicationClient::connect(config.with_ack_lsn(Lsn(acknowledged))).await
    {
        Ok(client) => client,
        Err(error) => return ended(error),
    };
    tokio::select! {
        started = client.wait_started() => if let Err(error) = started { return ended(error) },
        _ = stop.changed() => { let _ = client.shutdown().await; return SessionEnd::Stopped },
    }
    *attempts = 0;
    let mut relations = Relations {
        by_oid: HashMap::new(),
        types: TypeCache::default(),
    };
    let mut txn: Option<Txn> = None;
    let mut last_check = std::time::Instant::now();
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.changed() => {
                let _ = client.shutdown().await;
                return SessionEnd::Stopped;
            }
            event = client.recv() => event,
        };
        let event = match event {
            Ok(Some(event)) => event,
            Ok(None) => return SessionEnd::Transient("the server ended the stream".into()),
            Err(error) => return ended(error),
        };
        // A load found the source unable to go on (a published table replaced): the
        // stream stops at its next event, as after its own fatal errors.
        if let Some(error) = shared.failure() {
            let _ = client.shutdown().await;
            return SessionEnd::Fatal(error);
        }
        let step = match event {
            ReplicationEvent::Begin { final_lsn, .. } => {
                shared.in_flight.store(true, Ordering::Release);
                txn = Some(Txn {
                    seq: SeqId(final_lsn.0),
                    items: Vec::new(),
                });
                Ok(())
            }
            ReplicationEvent::XLogData { data, .. } => {
                on_message(shared, &mut relations, txn.as_mut(), data).await
            }
            ReplicationEvent::Commit { lsn, end_lsn, .. } => match txn.take() {
                None => Err(PgError::Decode("commit without begin".into())),
                Some(open) => on_commit(shared, &client, open, lsn.0, end_lsn.0),
            },
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                shared.server_wal_end.fetch_max(wal_end.0, Ordering::AcqRel);
                if txn.is_none() && last_check.elapsed() >= CATALOG_CHECK_INTERVAL {
                    last_check = std::time::Instant::now();
                    idle_catalog_check(shared).await
                } else {
                    Ok(())
                }
            }
            ReplicationEvent::Message { lsn, prefix, .. } => {
                if prefix == SYNC_PREFIX && txn.is_none() {
                    // Every commit before this message was sent, and handled, before it.
                    shared.acknowledge(&client, lsn.0);
                    shared.synced.send_if_modified(|synced| {
                        let raise = lsn.0 > *synced;
                        *synced = (*synced).max(lsn.0);
                        raise
                    });
                }
                Ok(())
            }
            ReplicationEvent::StoppedAt { .. } => return SessionEnd::Stopped,
        };
        if let Err(error) = step {
            let _ = client.shutdown().await;
            return match error {
                // A lost SQL connection (for a type lookup) is a lost connection too.
                PgError::Sql(ref message) if message.contains("closed") => {
                    SessionEnd::Transient(message.clone())
                }
                error => SessionEnd::Fatal(error),
            };
        }
    }
}

/// [`check_tables`] while the stream is idle. A catalog that cannot be read is left for
/// the next check (the stream itself reports a lost server); a table dropped, replaced or
/// no longer published stops the stream.
async fn idle_catalog_check(shared: &Shared) -> PgResult<()> {
    // On the host's connection (see `Shared::host_query`). Bounded: the stream's status
    // updates wait while it runs, and a catalog connection that hangs must not hold them
    // until the server's `wal_sender_timeout`.
    let check = async {
        match shared.host_client().await {
            Ok(client) => check_tables(shared, &client).await,
            // Left for the next check, as any catalog that cannot be read.
            Err(_) => Ok(()),
        }
    };
    let checked = shared.host_bounded(CATALOG_CHECK_INTERVAL, check).await;
    match checked {
        Err(PgError::Sql(_)) => Ok(()),
        other => other,
    }
}

fn on_commit(
    shared: &Shared,
    client: &ReplicationClient,
    txn: Txn,
    commit_lsn: u64,
    end_lsn: u64,
) -> PgResult<()> {
    if commit_lsn != txn.seq.0 {
        return Err(PgError::Decode(format!(
            "commit at {commit_lsn} closes the transaction begun for {}",
            txn.seq.0
        )));
    }
    let seq = txn.seq;
    // At or below the last published SeqId: sent again after a reconnect or restart.
    if seq.0 > shared.last_published.load(Ordering::Acquire) {
        if shared.apply_commit(seq, txn.items)? {
            shared.published_commits.fetch_add(1, Ordering::AcqRel);
        }
        shared.last_published.fetch_max(seq.0, Ordering::AcqRel);
    }
    shared.received_commits.fetch_add(1, Ordering::AcqRel);
    shared.in_flight.store(false, Ordering::Release);
    shared.server_wal_end.fetch_max(end_lsn, Ordering::AcqRel);
    // Past the commit record: a restarted slot skips this transaction.
    shared.acknowledge(client, end_lsn);
    Ok(())
}

async fn on_message(
    shared: &Shared,
    relations: &mut Relations,
    txn: Option<&mut Txn>,
    data: bytes::Bytes,
) -> PgResult<()> {
    let message = pgoutput::decode(data)?;
    match message {
        Message::Relation(relation) => {
            let config = shared
                .config
                .tables
                .iter()
                .find(|table| table.schema == relation.namespace && table.name == relation.name)
                .cloned();
            check_same_relation(shared, config.as_ref(), &relation)?;
            let info = match config {
                None => None,
                Some(config) => {
                    let needs_catalog = relation
                        .columns
                        .iter()
                        .any(|column| types::builtin(column.type_oid).is_none());
                    let catalog = match needs_catalog {
                        true => Some(shared.host_client().await?),
                        false => None,
                    };
                    let info = schema::from_relation(
                        catalog.as_deref(),
                        &mut relations.types,
                        &config,
                        &relation,
                        shared.config.unsupported_as_text,
                    )
                    .await?;
                    match txn {
                        Some(txn) => txn.items.push(Item::Schema(info.clone())),
                        // (pgoutput sends none outside a transaction; if it did, its
                        // position would be unknown: the latest possible.)
                        None => shared.register(SeqId(0), u64::MAX, info.clone())?,
                    }
                    Some(info)
                }
            };
            relations.by_oid.insert(relation.oid, info);
            Ok(())
        }
        Message::Type { .. } | Message::Origin => Ok(()),
        Message::Insert { relation, new } => {
            let Some(info) = relation_of(relations, relation)? else {
                return Ok(());
            };
            let row = decode_row(info, &new, None)?;
            let change = with_owner(
                info,
                ChangeNotification::insert(info.table_id.clone(), row.clone()),
                &row,
            );
            let txn = needs_txn(txn)?;
            txn.items.extend(change.map(Item::Change));
            Ok(())
        }
        Message::Update {
            relation,
            old,
            old_is_key,
            new,
        } => {
            let Some(info) = relation_of(relations, relation)? else {
                return Ok(());
            };
            let old = match old {
                Some(old) if !old_is_key => old,
                _ => {
                    return Err(PgError::ReplicaIdentityNotFull {
                        table: info.qualified(),
                        identity: "not FULL (an update came without its old row)".into(),
                    })
                }
            };
            let old_row = decode_row(info, &old, None)?;
            let new_row = decode_row(info, &new, Some(&old_row))?;
            let txn = needs_txn(txn)?;
            match info.owner_position {
                Some(position)
                    if owner_text(old_row.value(position))
                        != owner_text(new_row.value(position)) =>
                {
                    // The row changed hands: it leaves its old owner and enters the new one's.
                    let left = ChangeNotification::delete(info.table_id.clone(), old_row.clone());
                    let entered =
                        ChangeNotification::insert(info.table_id.clone(), new_row.clone());
                    txn.items
                        .extend(with_owner(info, left, &old_row).map(Item::Change));
                    txn.items
                        .extend(with_owner(info, entered, &new_row).map(Item::Change));
                }
                _ => {
                    let change =
                        ChangeNotification::update(info.table_id.clone(), old_row.clone(), new_row);
                    txn.items
                        .extend(with_owner(info, change, &old_row).map(Item::Change));
                }
            }
            Ok(())
        }
        Message::Delete {
            relation,
            old,
            old_is_key,
        } => {
            let Some(info) = relation_of(relations, relation)? else {
                return Ok(());
            };
            if old_is_key {
                return Err(PgError::ReplicaIdentityNotFull {
                    table: info.qualified(),
                    identity: "not FULL (a delete came with its key only)".into(),
                });
            }
            let row = decode_row(info, &old, None)?;
            let change = ChangeNotification::delete(info.table_id.clone(), row.clone());
            let txn = needs_txn(txn)?;
            txn.items
                .extend(with_owner(info, change, &row).map(Item::Change));
            Ok(())
        }
        Message::Truncate {
            relations: truncated,
        } => {
            let txn = needs_txn(txn)?;
            for oid in truncated {
                if let Some(Some(info)) = relations.by_oid.get(&oid) {
                    txn.items.push(Item::Truncate(info.table_id.clone()));
                }
            }
            Ok(())
        }
    }
}

fn needs_txn(txn: Option<&mut Txn>) -> PgResult<&mut Txn> {
    txn.ok_or_else(|| PgError::Decode("a change outside a transaction".into()))
}

/// Refuses a relation message that shows a published table renamed or moved (its OID
/// under another name) or replaced (its name under another OID): matched by name alone,
/// its changes would be skipped, or taken for the table's, without a trace.
fn check_same_relation(
    shared: &Shared,
    config: Option<&TableConfig>,
    relation: &pgoutput::Relation,
) -> PgResult<()> {
    let named = format!("{}.{}", relation.namespace, relation.name);
    if let Some((table_id, _)) = shared.oids.iter().find(|(_, oid)| **oid == relation.oid) {
        let qualified = format!("{}.{}", table_id.namespace(), table_id.name());
        if qualified != named {
            return Err(PgError::TableReplaced {
                table: qualified,
                detail: format!("the stream describes it as {named} (renamed or moved)"),
            });
        }
    } else if let Some(config) = config {
        // Every configured table has an OID from start.
        let started = shared
            .oids
            .get(&TableId::new(config.schema.as_str(), config.name.as_str()))
            .copied()
            .unwrap_or_default();
        return Err(PgError::TableReplaced {
            table: named,
            detail: format!(
                "the stream describes relation {} under its name, not {started} (dropped \
                 and created again, or another table renamed to it)",
                relation.oid,
            ),
        });
    }
    Ok(())
}

/// The table a change belongs to: `None` for a table this source does not publish.
fn relation_of(relations: &Relations, oid: u32) -> PgResult<Option<&TableInfo>> {
    match relations.by_oid.get(&oid) {
        Some(info) => Ok(info.as_ref()),
        None => Err(PgError::Decode(format!(
            "a change of relation {oid} before its relation message"
        ))),
    }
}

/// The owner of a row of a user-scoped table, as text; `None` when NULL.
pub(crate) fn owner_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Text(text) => Some(text.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// Names the owner on user-scoped tables; a row with a NULL owner belongs to no user and
/// no subscriber can see it, so it is not published (`None`).
fn with_owner(
    info: &TableInfo,
    change: ChangeNotification,
    row: &Row,
) -> Option<ChangeNotification> {
    match info.owner_position {
        None => Some(change),
        Some(position) => {
            owner_text(row.value(position)).map(|owner| change.owned_by(UserId::new(owner)))
        }
    }
}

/// Decodes a pgoutput tuple with the table's columns; an unchanged TOAST value is taken
/// from `old` (the full old row that REPLICA IDENTITY FULL sends), never invented.
pub(crate) fn decode_row(info: &TableInfo, tuple: &Tuple, old: Option<&Row>) -> PgResult<Row> {
    if tuple.len() != info.columns.len() {
        return Err(PgError::Decode(format!(
            "{} columns in a row of {}, which has {}",
            tuple.len(),
            info.qualified(),
            info.columns.len()
        )));
    }
    let bad = |column: &str, reason: String| PgError::BadValue {
        table: info.qualified(),
        column: column.to_string(),
        reason,
    };
    let mut values = Vec::with_capacity(tuple.len());
    for (position, (datum, column)) in tuple.iter().zip(&info.columns).enumerate() {
        values.push(match datum {
            Datum::Null => Value::Null,
            Datum::UnchangedToast => match old {
                Some(old) => old.value(position).clone(),
                None => {
                    return Err(bad(
                        &column.name,
                        "an unchanged TOAST value without the old row to take it from".into(),
                    ))
                }
            },
            Datum::Text(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| bad(&column.name, "text is not UTF-8".into()))?;
                types::decode(column.kind, text).map_err(|reason| bad(&column.name, reason))?
            }
        });
    }
    Ok(Row::new(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconnect_wait_doubles_and_starts_over_after_a_good_session() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(300));
        // The first session never got through, nor the next attempts.
        let waits: Vec<_> = (0..5).map(|_| backoff.wait(false)).collect();
        assert_eq!(waits, [ms(50), ms(100), ms(200), ms(300), ms(300)]);
        // A session streamed, then was lost: 50 ms again, then doubling.
        assert_eq!(backoff.wait(true), ms(50));
        assert_eq!(backoff.wait(false), ms(100));
        assert_eq!(Backoff::new(ms(10)).wait(false), ms(10));
    }

    fn table_of(names: &[&str]) -> TableInfo {
        let columns = names
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    Some(crate::types::Kind::Int),
                    "integer".to_string(),
                    23,
                    -1,
                )
            })
            .collect();
        TableInfo::build(&TableConfig::shared("s", "t"), columns, false).unwrap()
    }

    fn moved(old: &[&str], new: &[&str]) -> Vec<String> {
        let (old, new) = (table_of(old), table_of(new));
        moved_columns(&old, &new)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn only_the_names_that_moved_are_flagged() {
        assert!(moved(&["id", "a", "b"], &["id", "a", "b", "c"]).is_empty());
        assert!(moved(&["id", "a", "b"], &["id", "b"]).is_empty());
        // Dropped and added again at the end: it alone changed place.
        assert_eq!(
            moved(&["id", "grp", "a", "b", "c"], &["id", "a", "b", "c", "grp"]),
            ["grp"]
        );
        assert_eq!(
            moved(
                &["g", "a", "b", "c", "d", "e"],
                &["a", "b", "c", "d", "e", "g"]
            ),
            ["g"]
        );
        // Two names trading places: which one changed cannot be told.
        assert_eq!(
            moved(&["id", "a", "b", "v"], &["id", "b", "a", "v"]),
            ["b", "a"]
        );
    }
}
