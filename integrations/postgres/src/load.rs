//! Initial loads with an exactly-once boundary, and resume from the source's history.
//!
//! # The boundary
//!
//! A load reads its rows in the snapshot that PostgreSQL exports when a logical slot is
//! created, and sets the subscription's boundary to that slot's consistent point:
//!
//! 1. The host subscribes with `SubscriptionOptions::with_initial_load()`; when that
//!    returns, the subscription is indexed and gated, so every commit livecore is handed
//!    from then on reaches its gate.
//! 2. The load then opens a replication session and creates a temporary logical slot,
//!    exporting its snapshot. PostgreSQL documents that this snapshot shows exactly the
//!    state after which every change is in the slot's stream: the transactions whose
//!    commit record lies before the consistent point `C` are visible in it, and those at
//!    or after `C` are not (their changes would be the slot's stream). Visibility here is
//!    decided by the snapshot builder from the WAL, in commit-record order, not by the
//!    in-memory list of running transactions, which is why a plain snapshot taken "now"
//!    with `pg_current_wal_lsn()` is not exact and this one is.
//! 3. The source numbers each transaction by its commit LSN (the position of its commit
//!    record, the same for every slot decoding the same WAL); a transaction published in
//!    parts around a schema change numbers its parts just below it, from `LSN - 15` at
//!    most (`MAX_PARTS` = 16). A commit record is at least 32 bytes long and a commit
//!    before `C` ends at or before `C`, so its LSN is at most `C - 32`. The boundary is
//!    `C - 16`: the gate drops every part of every commit before `C` (the snapshot has
//!    them) and keeps every part of every commit at or after `C` (at least `C - 15`).
//! 4. Nothing above the boundary can have been published before step 1 returned: the slot
//!    reserves WAL from the insert position at creation, after step 1, so `C` is beyond
//!    every commit record written before step 1 returned, and the main stream can only
//!    publish a commit after its record is written. So every commit `>= C` reaches the
//!    gate, and every commit `< C` is in the snapshot: each change exactly once.
//! 5. The rows are read in a `REPEATABLE READ` transaction that imports the snapshot
//!    (`SET TRANSACTION SNAPSHOT`), handed to livecore with `push_snapshot_rows`, and the
//!    load completes with `complete_initial_load`, which flushes what the gate kept.
//!
//! The temporary slot only exists for the load's first statement: once the snapshot is
//! imported, the replication session ends and PostgreSQL drops the slot. Creating a slot
//! waits for the transactions running at that moment to finish, so a long-running write
//! transaction delays loads (never the stream). Several subscriptions loaded together
//! ([`PgSource::load_many`]) share one slot, one snapshot, and one read per table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livecore::{LiveError, LiveQueryId, Row, SeqId, SubscriptionPhase, TableId, TableScope};
use pgwire_replication::{Lsn, ReplicationClient};
use tokio_postgres::SimpleQueryMessage;

use crate::config::{load_slot_name, quote_ident};
use crate::error::{PgError, PgResult};
use crate::schema::{self, TableInfo, TypeCache};
use crate::source::{lock, owner_text, PgSource, Shared, HOST_QUERY_TIMEOUT, MAX_PARTS};
use crate::types;

/// What one initial load did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReport {
    /// The boundary set on every subscription of the load (the temporary slot's
    /// consistent point minus 16, see the module documentation).
    pub boundary: SeqId,
    /// Rows read from PostgreSQL (all tables).
    pub rows_read: u64,
    /// Rows handed to livecore per subscription (before its filter).
    pub subscriptions: usize,
}

/// What a resume did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeOutcome {
    /// The commits after the client's SeqId were replayed, then the subscription went live.
    Replayed {
        /// Commits replayed that touched the subscription's table (each part of a
        /// transaction split around a schema change counts as one).
        commits: usize,
    },
    /// The history no longer reaches back to the client's SeqId (or the stream has
    /// failed): it got
    /// `ResumeUnavailable` and must subscribe again with an initial load.
    Unavailable,
}

impl PgSource {
    /// Runs the initial load of one gated subscription (opened with
    /// `SubscriptionOptions::with_initial_load()` on a table of this source). See the
    /// module documentation for why the boundary is exact. On error the subscription is
    /// ended (unsubscribed), since its boundary may already be set. A table whose columns
    /// changed in PostgreSQL without the stream being told yet (an `ALTER TABLE` and no
    /// row change since) gets the catalog's version registered, and the load fails with
    /// [`PgError::SchemaChanged`]: the client subscribes again.
    pub async fn load(&self, live_query_id: LiveQueryId) -> PgResult<LoadReport> {
        self.load_many(&[live_query_id]).await
    }

    /// Loads several gated subscriptions from one snapshot (one temporary slot, each
    /// table read once).
    ///
    /// A load that fails, or whose future is dropped before it completes (the host gave
    /// up on it: a timeout, a client gone), ends its subscriptions (unsubscribed), which
    /// would otherwise stay gated; one livecore ended meanwhile (a schema change, a gate
    /// overflow) keeps that ending and its notice. One dropped while PostgreSQL creates
    /// its temporary slot also has the waiting backend cancelled (see
    /// [`SourceConfig::load_slot_patience`]). A call naming a subscription it cannot load
    /// (unknown, ended, live already, on a table of another source) fails with
    /// [`PgError::Config`] (or livecore's error) before it starts, and ends none of them.
    ///
    /// [`SourceConfig::load_slot_patience`]: crate::SourceConfig::load_slot_patience
    pub async fn load_many(&self, live_query_ids: &[LiveQueryId]) -> PgResult<LoadReport> {
        // A call that names a subscription it cannot load (unknown, on a table of another
        // source) ends none of them: it may be another load's, or live.
        let by_table = self.group_by_table(live_query_ids)?;
        let mut unfinished = Unfinished::new(self, live_query_ids, Undo::Unsubscribe);
        let result = self
            .try_load(live_query_ids, by_table, &mut unfinished)
            .await;
        if result.is_ok() {
            unfinished.finished();
        }
        result
    }

    /// The subscriptions of a load grouped by table, with the user each may see on
    /// user-scoped tables.
    fn group_by_table(&self, live_query_ids: &[LiveQueryId]) -> PgResult<ByTable> {
        let mut by_table = ByTable::new();
        for id in live_query_ids {
            let subscription = self.shared.manager.subscription(*id)?;
            if subscription.state != SubscriptionPhase::Loading {
                return Err(PgError::Config(format!(
                    "{id} is not waiting for a load (open it with \
                     SubscriptionOptions::with_initial_load(), and load it once)"
                )));
            }
            if !lock(&self.shared.tables).contains_key(&subscription.table_id) {
                return Err(PgError::Config(format!(
                    "table {} is not published by this source",
                    subscription.table_id
                )));
            }
            by_table
                .entry(subscription.table_id)
                .or_default()
                .push((*id, subscription.user));
        }
        Ok(by_table)
    }

    async fn try_load(
        &self,
        live_query_ids: &[LiveQueryId],
        by_table: ByTable,
        unfinished: &mut Unfinished,
    ) -> PgResult<LoadReport> {
        if let Some(error) = self.shared.failure() {
            return Err(error);
        }
        let manager = &self.shared.manager;

        // The temporary slot and its exported snapshot (steps 2 and 3).
        let number = self
            .shared
            .load_counter
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let slot = load_slot_name(&self.shared.config.slot, std::process::id(), number);
        let mut replication = ReplicationClient::connect_gated(self.shared.connection.replication(
            &slot,
            &self.shared.config.publication,
            self.shared.config.status_interval,
        ))
        .await
        .map_err(|error| PgError::Replication(error.to_string()))?;
        // PostgreSQL answers once every transaction holding a transaction id now has ended:
        // bounded, so that one left open (idle in transaction, prepared and never
        // committed) fails the load instead of holding it forever.
        let patience = self.shared.config.load_slot_patience;
        // The session's server process, so a cancel finds it even before its slot exists
        // (unknown if PostgreSQL does not answer SQL here: the slot's name finds it then).
        let pid = replication
            .simple_query("SELECT pg_backend_pid()")
            .await
            .ok()
            .and_then(|rows| {
                let text = rows.first()?.first()?.as_ref()?;
                std::str::from_utf8(text).ok()?.parse::<i32>().ok()
            });
        unfinished.creating_slot = Some(SlotCreation {
            slot: slot.clone(),
            pid,
        });
        let created = tokio::time::timeout(
            patience,
            replication.simple_query(&format!(
                "CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')"
            )),
        )
        .await;
        let Ok(created) = created else {
            cancel_slot_creation(
                &self.shared,
                &SlotCreation {
                    slot: slot.clone(),
                    pid,
                },
            )
            .await;
            // Cleared once cancelled: a drop during the cancel still has it cancelled.
            unfinished.creating_slot = None;
            return Err(PgError::Replication(format!(
                "creating the load slot waited more than {patience:?} for the transactions \
                 running when it began to end (a session idle in a write transaction, or a \
                 prepared transaction, holds it: see pg_stat_activity and pg_prepared_xacts)"
            )));
        };
        unfinished.creating_slot = None;
        let rows = created
            .map_err(|error| PgError::Replication(format!("creating the load slot: {error}")))?;
        let row = rows.first().filter(|row| row.len() >= 3).ok_or_else(|| {
            PgError::Replication("CREATE_REPLICATION_SLOT answered no row".into())
        })?;
        let text = |index: usize| -> PgResult<String> {
            row[index]
                .as_ref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .ok_or_else(|| PgError::Replication(format!("column {index} of the slot is NULL")))
        };
        let consistent_point = Lsn::parse(&text(1)?)
            .map_err(|error| PgError::Replication(format!("consistent point: {error}")))?;
        let snapshot = text(2)?;
        let boundary = SeqId(consistent_point.0.saturating_sub(MAX_PARTS));

        let client = self.shared.connection.connect_sql().await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                snapshot.replace('\'', "''")
            ))
            .await?;
        // The snapshot is imported: the replication session (and with it the temporary
        // slot) can go.
        drop(replication);

        for subscriptions in by_table.values() {
            for (id, _) in subscriptions {
                manager.set_snapshot_boundary(*id, boundary)?;
            }
        }
        let mut rows_read = 0;
        for (table_id, subscriptions) in &by_table {
            let info = lock(&self.shared.tables)
                .get(table_id)
                .cloned()
                .ok_or_else(|| PgError::UnknownTable(table_id.to_string()))?;
            // The table as the snapshot's catalog has it. It differs from the version the
            // stream registered when an ALTER TABLE committed before the snapshot and no
            // row of the table has changed since (pgoutput describes a table again only
            // before its next row change): the rows cannot be read in the columns the
            // subscriptions were compiled against.
            let mut types = TypeCache::default();
            let (oid, current) = schema::load_table(
                &client,
                &mut types,
                &info.config,
                self.shared.config.unsupported_as_text,
            )
            .await?;
            // Another relation under the table's name (dropped and created again): its
            // rows could be read, but the publication sends none of its changes.
            if self.shared.oids.get(table_id) != Some(&oid) {
                let _ = client.batch_execute("ROLLBACK").await;
                let replaced = PgError::TableReplaced {
                    table: info.qualified(),
                    detail: format!(
                        "the catalog names relation {oid}, not the one the source started \
                         with (dropped and created again?)"
                    ),
                };
                self.shared.fail(replaced.clone());
                return Err(replaced);
            }
            if current.columns != info.columns {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(self
                    .catch_up_schema(info, current, consistent_point.0)
                    .await);
            }
            rows_read += self.read_table(&client, &info, subscriptions).await?;
        }
        client.batch_execute("COMMIT").await?;

        for subscriptions in by_table.values() {
            for (id, _) in subscriptions {
                // Never waits for room: a marker that finds the channel full goes out
                // of band.
                manager.complete_initial_load(*id)?;
            }
        }
        Ok(LoadReport {
            boundary,
            rows_read,
            subscriptions: live_query_ids.len(),
        })
    }

    /// Registers the catalog's version of a table whose `ALTER TABLE` the stream has
    /// passed without being told (no row change since), as the stream would have at its
    /// next row change: subscriptions using a dropped column are closed with
    /// `SchemaChanged`, the others recompiled, and those still loading (this load's) get
    /// `ResyncRequired`, so their clients subscribe again and load under the new columns.
    /// When the stream is the one ahead (it described the table at or after the snapshot's
    /// consistent point), nothing is registered: the load just fails, and the next one's
    /// snapshot is newer. Returns the error the load ends with.
    async fn catch_up_schema(
        &self,
        stale: TableInfo,
        current: TableInfo,
        snapshot_at: u64,
    ) -> PgError {
        let changed = PgError::SchemaChanged {
            table: stale.qualified(),
            detail: format!(
                "the stream has columns ({}), the load's snapshot ({}); subscribe again",
                column_list(&stale),
                column_list(&current)
            ),
        };
        // Once the stream has passed every commit before now (the ALTER included), no
        // change of the table under the old columns is still to come: any row change
        // after the ALTER arrives with a relation message, which the stream registers.
        if let Err(error) = self.sync(self.shared.config.snapshot_push_patience).await {
            return error;
        }
        match self
            .shared
            .register_if_current(&stale, current, snapshot_at)
        {
            Ok(_) => changed,
            Err(error) => error,
        }
    }

    /// Reads a table in the load's snapshot with a cursor and hands each batch to every
    /// subscription on it (on user-scoped tables, only the subscriber's own rows).
    async fn read_table(
        &self,
        client: &tokio_postgres::Client,
        info: &TableInfo,
        subscriptions: &[(LiveQueryId, Option<String>)],
    ) -> PgResult<u64> {
        let columns: Vec<String> = info
            .columns
            .iter()
            .map(|column| quote_ident(&column.name))
            .collect();
        client
            .batch_execute(&format!(
                "DECLARE livecore_load NO SCROLL CURSOR FOR SELECT {} FROM ONLY {}",
                columns.join(", "),
                info.config.quoted()
            ))
            .await?;
        let fetch = format!(
            "FETCH FORWARD {} FROM livecore_load",
            self.shared.config.snapshot_fetch_rows
        );
        let mut read = 0u64;
        loop {
            let messages = client.simple_query(&fetch).await?;
            let mut batch = Vec::new();
            for message in messages {
                if let SimpleQueryMessage::Row(row) = message {
                    let mut values = Vec::with_capacity(info.columns.len());
                    for (position, column) in info.columns.iter().enumerate() {
                        values.push(match row.get(position) {
                            None => livecore::Value::Null,
                            Some(text) => types::decode(column.kind, text).map_err(|reason| {
                                PgError::BadValue {
                                    table: info.qualified(),
                                    column: column.name.clone(),
                                    reason,
                                }
                            })?,
                        });
                    }
                    batch.push(Row::new(values));
                }
            }
            if batch.is_empty() {
                break;
            }
            read += batch.len() as u64;
            for (id, user) in subscriptions {
                let mine: Vec<Row>;
                let rows = match (info.config.scope(), info.owner_position) {
                    (TableScope::User, Some(position)) => {
                        mine = batch
                            .iter()
                            .filter(|row| {
                                user.is_some()
                                    && owner_text(row.value(position)).as_deref() == user.as_deref()
                            })
                            .cloned()
                            .collect();
                        &mine[..]
                    }
                    _ => &batch[..],
                };
                let mut rest = rows;
                self.retry_full(|| match self.shared.manager.push_snapshot_rows(*id, rest) {
                    Ok(_) => Ok(rest.len()),
                    Err(LiveError::WouldBlock { consumed }) => {
                        rest = &rest[consumed..];
                        Err(LiveError::WouldBlock { consumed })
                    }
                    Err(error) => Err(error),
                })
                .await?;
            }
        }
        client.batch_execute("CLOSE livecore_load").await?;
        Ok(read)
    }

    /// Calls `attempt` until it stops answering `WouldBlock` (the subscriber's channel is
    /// full), waiting at most the configured patience.
    async fn retry_full(
        &self,
        mut attempt: impl FnMut() -> Result<usize, LiveError>,
    ) -> PgResult<()> {
        let deadline = Instant::now() + self.shared.config.snapshot_push_patience;
        loop {
            match attempt() {
                Ok(_) => return Ok(()),
                Err(LiveError::WouldBlock { consumed }) if Instant::now() < deadline => {
                    if consumed == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Resumes a subscription opened with `SubscriptionOptions::resume_from(seq)`: replays
    /// the commits after `seq` from the source's history and completes the load, or, when
    /// the history no longer reaches back that far (or the table's schema changed or it was
    /// truncated since, or the stream has failed, e.g. with
    /// [`PgError::SlotInvalidated`]), tells the subscriber `ResumeUnavailable`.
    ///
    /// A resume that fails once it began replaying, or whose future is dropped before it
    /// completes, ends the subscription with `ResumeUnavailable` (the client subscribes
    /// again with a snapshot), which would otherwise stay gated; one livecore ended
    /// meanwhile keeps that ending and its notice.
    pub async fn resume(&self, live_query_id: LiveQueryId) -> PgResult<ResumeOutcome> {
        let manager = &self.shared.manager;
        let subscription = manager.subscription(live_query_id)?;
        let from = subscription.options.resume_from.ok_or_else(|| {
            PgError::Config("the subscription was not opened with resume_from".into())
        })?;
        let unfinished = Unfinished::new(self, &[live_query_id], Undo::ResumeUnavailable);
        let outcome = self
            .replay_from(live_query_id, &subscription.table_id, from)
            .await;
        if outcome.is_ok() {
            unfinished.finished();
        }
        outcome
    }

    async fn replay_from(
        &self,
        live_query_id: LiveQueryId,
        table_id: &TableId,
        from: SeqId,
    ) -> PgResult<ResumeOutcome> {
        let manager = &self.shared.manager;
        // A failed stream (the slot invalidated or dropped, the connection lost for good)
        // publishes nothing more: replaying the history and going live would be a silent
        // gap, so the client is told to load again.
        let replay = if self.shared.failure().is_some() {
            None
        } else {
            // Read after the subscription is gated: a commit published before it is in
            // the history, one published after reaches the gate (both: the gate keeps one).
            lock(&self.shared.history).since(table_id, from)
        };
        match replay {
            None => {
                manager.resume_unavailable(live_query_id)?;
                Ok(ResumeOutcome::Unavailable)
            }
            Some(commits) => {
                let count = commits.len();
                // Replayed commits stream into the channel: a full one is WouldBlock,
                // retried with the same commit once the receiver has drained.
                for (seq, changes) in commits {
                    self.retry_full(|| {
                        manager
                            .replay_commit(live_query_id, seq, changes.clone())
                            .map(|_| 0)
                    })
                    .await?;
                }
                manager.complete_initial_load(live_query_id)?;
                Ok(ResumeOutcome::Replayed { commits: count })
            }
        }
    }
}

/// Subscriptions grouped by table, each with the user it may see on a user-scoped table.
type ByTable = HashMap<TableId, Vec<(LiveQueryId, Option<String>)>>;

/// The subscriptions of a load or resume under way: ended when it is dropped before
/// [`finished`](Self::finished) (it failed, or the host dropped its future), since a gated
/// subscription nobody completes would wait for ever.
struct Unfinished {
    shared: Arc<Shared>,
    live_query_ids: Vec<LiveQueryId>,
    undo: Undo,
    /// The temporary slot whose creation is being waited for, if it is.
    creating_slot: Option<SlotCreation>,
}

/// How an unfinished load or resume ends a subscription that is still active (one
/// livecore ended meanwhile, a schema change, a gate overflow, keeps that ending and its
/// notice).
#[derive(Clone, Copy)]
enum Undo {
    /// Removed, as the load's documentation says: the host, which gets the error, tells
    /// its client.
    Unsubscribe,
    /// `ResumeUnavailable`: the client subscribes again with a snapshot.
    ResumeUnavailable,
}

impl Unfinished {
    fn new(source: &PgSource, live_query_ids: &[LiveQueryId], undo: Undo) -> Self {
        Self {
            shared: Arc::clone(&source.shared),
            live_query_ids: live_query_ids.to_vec(),
            undo,
            creating_slot: None,
        }
    }

    /// The load or resume completed: its subscriptions stay.
    fn finished(mut self) {
        self.live_query_ids.clear();
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let manager = &self.shared.manager;
        for &id in &self.live_query_ids {
            // Gone (the host unsubscribed it) or ended by livecore: its notice, if any,
            // stays for its client (an unsubscribe would drop one not yet handed out).
            if manager.subscription(id).is_err() {
                continue;
            }
            let told = match self.undo {
                Undo::Unsubscribe => false,
                Undo::ResumeUnavailable => manager.resume_unavailable(id).is_ok(),
            };
            if !told {
                let _ = manager.unsubscribe(id);
            }
        }
        // Dropped while PostgreSQL was creating the slot: its backend would wait on as a
        // timed-out creation's does. Cancelled from a task, since a drop cannot wait (and
        // without a runtime, as at a runtime's shutdown, there is nothing to spawn on).
        if let (Some(slot), Ok(runtime)) = (
            self.creating_slot.take(),
            tokio::runtime::Handle::try_current(),
        ) {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(async move { cancel_slot_creation(&shared, &slot).await });
        }
    }
}

/// A load slot being created: its name, and the server process creating it when known.
struct SlotCreation {
    slot: String,
    pid: Option<i32>,
}

/// Cancels the backend creating a load slot, if one still is: the session's own process
/// (a walsender, so a pid since reused by another kind of process is left alone), or the
/// one the slot names. A backend waiting on a transaction's lock does not notice its
/// client gone: left alone, it and its temporary slot would stay for as long as the
/// transaction (for ever, for a prepared one), each retried load adding one more until
/// `max_wal_senders` refuses the stream's own reconnects. On the source's host connection
/// (see `Shared::host_query`), so bounded, and without a connection of its own.
async fn cancel_slot_creation(shared: &Shared, creation: &SlotCreation) {
    let (pid, slot) = (creation.pid, creation.slot.as_str());
    let _ = shared
        .host_query(HOST_QUERY_TIMEOUT, |client| async move {
            client
                .execute(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                     WHERE backend_type = 'walsender' AND (pid = $1 OR pid IN \
                       (SELECT active_pid FROM pg_replication_slots \
                        WHERE slot_name::text = $2))",
                    &[&pid, &slot],
                )
                .await
        })
        .await;
}

/// `name type, ...` of a table version.
fn column_list(info: &TableInfo) -> String {
    info.columns
        .iter()
        .map(|column| match column.type_modifier {
            // A type modifier alone can tell two versions apart (`numeric(10,2)` and
            // `numeric(10,3)` are both `numeric`).
            -1 => format!("{} {}", column.name, column.type_name),
            modifier => format!("{} {} (typmod {modifier})", column.name, column.type_name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
