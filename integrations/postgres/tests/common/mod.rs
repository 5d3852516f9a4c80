//! Shared helpers: the test cluster, fresh schemas, and subscribers that keep a view of
//! their result set and record every protocol violation they see.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use livecore::*;
use livecore_postgres::{PgSource, SourceConfig, TableConfig};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The cluster ci.sh starts.
pub fn url() -> String {
    std::env::var("LIVECORE_PG_URL").expect(
        "LIVECORE_PG_URL is not set: run integrations/postgres/ci.sh, which starts a \
         throwaway PostgreSQL and sets it",
    )
}

pub async fn sql() -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "{} options='-c TimeZone=UTC -c extra_float_digits=1'",
            url()
        ),
        NoTls,
    )
    .await
    .expect("connect to the test cluster");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops and recreates `schema`, and any slot or publication named after it.
pub async fn fresh(schema: &str) -> Client {
    let client = sql().await;
    client
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
               WHERE slot_name LIKE '{schema}%' AND NOT active;
             DROP PUBLICATION IF EXISTS {schema}_pub;
             DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .await
        .expect("fresh schema");
    client
}

pub fn manager() -> Arc<ConnectionsManager> {
    Arc::new(ConnectionsManager::new(ManagerConfig::default()).expect("manager"))
}

pub fn config(schema: &str, tables: &[&str]) -> SourceConfig {
    SourceConfig::new(
        url(),
        format!("{schema}_slot"),
        format!("{schema}_pub"),
        tables
            .iter()
            .map(|table| TableConfig::shared(schema, *table))
            .collect(),
    )
}

pub async fn start(manager: &Arc<ConnectionsManager>, config: SourceConfig) -> PgSource {
    PgSource::start(manager.clone(), config)
        .await
        .expect("source starts")
}

/// A value as comparable text.
pub fn show(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => format!("b:{b}"),
        Value::Int(i) => format!("i:{i}"),
        Value::Float(f) => format!("f:{:x}", f.to_bits()),
        Value::Text(t) => format!("t:{t}"),
        Value::Bytes(b) => format!("x:{b:?}"),
    }
}

pub fn show_row(row: &Row) -> Vec<String> {
    row.values().iter().map(show).collect()
}

/// What a subscriber saw.
#[derive(Default, Debug)]
pub struct View {
    /// The result set, by the integer in column 0.
    pub rows: BTreeMap<i64, Vec<String>>,
    /// Protocol violations: duplicates, gaps, out-of-order commits.
    pub errors: Vec<String>,
    pub loaded: bool,
    pub last_seq: Option<u64>,
    pub boundary: Option<u64>,
    /// (seq, number of changes) per delivery.
    pub deliveries: Vec<(u64, usize)>,
    pub closed: Option<CloseReason>,
    pub other: Vec<String>,
    /// Every change received: (seq, kind, row shown).
    pub log: Vec<(u64, String, Vec<String>)>,
}

impl View {
    fn apply(&mut self, notification: Notification) {
        match notification {
            Notification::Snapshot(batch) => {
                if self.loaded {
                    self.errors
                        .push("snapshot rows after the load completed".into());
                }
                for row in batch.rows() {
                    let id = key(row);
                    if self.rows.insert(id, show_row(row)).is_some() {
                        self.errors.push(format!("row {id} twice in the snapshot"));
                    }
                }
            }
            Notification::InitialLoadComplete { boundary, .. } => {
                self.loaded = true;
                self.boundary = boundary.map(|b| b.0);
            }
            Notification::Changes(changes) => {
                let seq = changes.seq().0;
                if self.last_seq.is_some_and(|last| seq <= last) {
                    self.errors
                        .push(format!("commit {seq} after {:?}", self.last_seq));
                }
                if self.boundary.is_some_and(|b| seq <= b) {
                    self.errors
                        .push(format!("commit {seq} at or below the boundary"));
                }
                self.last_seq = Some(seq);
                self.deliveries.push((seq, changes.len()));
                for change in changes.changes() {
                    let row = change.row.to_row();
                    let id = key(&row);
                    let shown = show_row(&row);
                    self.log
                        .push((seq, format!("{:?}", change.change_type), shown.clone()));
                    match change.change_type {
                        ChangeType::Insert => {
                            if self.rows.insert(id, shown).is_some() {
                                self.errors
                                    .push(format!("insert of present row {id} at {seq}"));
                            }
                        }
                        ChangeType::Update => {
                            let old = change.old_row.map(|old| show_row(&old.to_row()));
                            match self.rows.insert(id, shown) {
                                None => self
                                    .errors
                                    .push(format!("update of absent row {id} at {seq}")),
                                Some(had) if Some(&had) != old.as_ref() => {
                                    self.errors.push(format!(
                                    "update of row {id} at {seq}: old {old:?} but view had {had:?}"
                                ))
                                }
                                Some(_) => {}
                            }
                        }
                        ChangeType::Delete => match self.rows.remove(&id) {
                            None => self
                                .errors
                                .push(format!("delete of absent row {id} at {seq}")),
                            Some(had) if had != shown => self.errors.push(format!(
                                "delete of row {id} at {seq}: {shown:?} but view had {had:?}"
                            )),
                            Some(_) => {}
                        },
                    }
                }
            }
            Notification::Closed { reason, .. } => self.closed = Some(reason),
            other => self.other.push(other.to_json()),
        }
    }
}

fn key(row: &Row) -> i64 {
    match row.value(0) {
        Value::Int(id) => *id,
        other => panic!("column 0 is not an integer: {other:?}"),
    }
}

/// A connection with one subscription, drained on its own thread into a [`View`].
pub struct Subscriber {
    pub live_query_id: LiveQueryId,
    pub connection_id: ConnectionId,
    pub view: Arc<Mutex<View>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Subscriber {
    /// Opens a subscription with an initial load, and loads it through `source`.
    pub async fn loaded(
        manager: &Arc<ConnectionsManager>,
        source: &PgSource,
        user: &str,
        sql: &str,
    ) -> Subscriber {
        let subscriber =
            Subscriber::open(manager, user, sql, SubscriptionOptions::with_initial_load());
        source.load(subscriber.live_query_id).await.unwrap();
        subscriber
    }

    pub fn open(
        manager: &Arc<ConnectionsManager>,
        user: &str,
        sql: &str,
        options: SubscriptionOptions,
    ) -> Subscriber {
        let mut connection = manager.register_connection().expect("connection");
        manager
            .authenticate(connection.connection_id, UserId::from(user), None)
            .expect("authenticate");
        let result = manager
            .subscribe_sql(connection.connection_id, sql, options)
            .expect("subscribe");
        let view = Arc::new(Mutex::new(View::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let view = view.clone();
            let stop = stop.clone();
            std::thread::spawn(move || loop {
                match connection
                    .notifications
                    .recv_timeout(Duration::from_millis(20))
                {
                    Ok(notification) => view.lock().unwrap().apply(notification),
                    Err(ReceiveError::Timeout) | Err(ReceiveError::Empty) => {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            })
        };
        Subscriber {
            live_query_id: result.live_query_id,
            connection_id: connection.connection_id,
            view,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until the drained view holds row `id` (a subscription livecore ends discards
    /// what was still queued for it, so a test that expects a row before an ending waits
    /// for it first). Panics after a minute: the row never came.
    pub async fn wait_for_row(&self, id: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self.view.lock().unwrap().rows.contains_key(&id) {
            assert!(
                std::time::Instant::now() < deadline,
                "row {id} never arrived: {:?}",
                self.view.lock().unwrap().rows.keys().collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops draining once the channel is empty (call after the source synced) and
    /// returns the view.
    pub fn finish(mut self) -> View {
        self.stop.store(true, Ordering::Release);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.view.lock().unwrap())
    }
}

/// `SELECT columns FROM table WHERE filter` in PostgreSQL, decoded like the source does,
/// by the integer in column 0.
pub async fn pg_rows(
    client: &Client,
    source: &PgSource,
    table: &TableId,
    filter: &str,
) -> BTreeMap<i64, Vec<String>> {
    let info = source.table(table).expect("published table");
    let columns: Vec<String> = info
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let messages = client
        .simple_query(&format!(
            "SELECT {} FROM {}.{} WHERE {filter}",
            columns.join(", "),
            table.namespace(),
            table.name()
        ))
        .await
        .expect("select");
    let mut rows = BTreeMap::new();
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            let values: Vec<Value> = info
                .columns
                .iter()
                .enumerate()
                .map(|(i, column)| match row.get(i) {
                    None => Value::Null,
                    Some(text) => livecore_postgres::types::decode(column.kind, text).unwrap(),
                })
                .collect();
            let row = Row::new(values);
            rows.insert(key(&row), show_row(&row));
        }
    }
    rows
}

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
