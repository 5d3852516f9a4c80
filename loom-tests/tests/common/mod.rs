//! Set-up and observation helpers shared by the loom models. Everything here goes through
//! livecore's public API; each model file uses a subset.
#![allow(dead_code)]

use livecore::*;
pub use loom::sync::Arc;

/// The one table of the models: shared, a single integer column `id`.
pub fn table() -> TableId {
    TableId::new("loom", "t")
}

pub fn row(id: i64) -> Row {
    Row::new(vec![Value::Int(id)])
}

/// An insert of row `id` into the models' table.
pub fn insert(id: i64) -> ChangeNotification {
    ChangeNotification::insert(table(), row(id))
}

/// A manager with the models' table registered.
pub fn manager(config: ManagerConfig) -> Arc<ConnectionsManager> {
    with_table(ConnectionsManager::new(config).unwrap())
}

/// A manager reading time from `clock`, with the models' table registered.
pub fn manager_with_clock(
    config: ManagerConfig,
    clock: std::sync::Arc<ManualClock>,
) -> Arc<ConnectionsManager> {
    with_table(ConnectionsManager::with_clock(config, clock).unwrap())
}

fn with_table(manager: ConnectionsManager) -> Arc<ConnectionsManager> {
    manager
        .register_table(TableSchema::new(table(), TableScope::Shared, ["id"]))
        .unwrap();
    Arc::new(manager)
}

/// Registers and authenticates a connection.
pub fn connect(manager: &ConnectionsManager) -> ConnectionRegistration {
    let registration = manager.register_connection().unwrap();
    manager
        .authenticate(registration.connection_id, UserId::from("u"), None)
        .unwrap();
    registration
}

/// Subscribes to the whole table.
pub fn subscribe(
    manager: &ConnectionsManager,
    connection_id: ConnectionId,
    options: SubscriptionOptions,
) -> LiveQueryId {
    manager
        .subscribe(connection_id, QuerySpec::table(table()), options)
        .unwrap()
        .live_query_id
}

/// A notification, reduced to what the models assert on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A delivery: its commit's SeqId and the ids of the rows it carries, in commit order.
    Changes {
        seq: u64,
        ids: Vec<i64>,
    },
    /// A snapshot batch: its number and the ids of its rows.
    Snapshot {
        batch: u32,
        ids: Vec<i64>,
    },
    LoadComplete,
    Gap {
        missed: u64,
        last_seq: Option<u64>,
    },
    Other(&'static str),
}

fn id_of(value: &Value) -> i64 {
    match value {
        Value::Int(id) => *id,
        other => panic!("unexpected value {other:?}"),
    }
}

/// A manager made with `config`, one connection and one plain subscription of it.
pub fn one_subscriber(config: ManagerConfig) -> (Arc<ConnectionsManager>, ConnectionRegistration) {
    let manager = manager(config);
    let registration = connect(&manager);
    subscribe(
        &manager,
        registration.connection_id,
        SubscriptionOptions::default(),
    );
    (manager, registration)
}

pub fn seen(notification: Notification) -> Seen {
    match notification {
        Notification::Changes(set) => Seen::Changes {
            seq: set.seq().0,
            ids: set
                .changes()
                .map(|change| id_of(change.row.value(0)))
                .collect(),
        },
        Notification::Snapshot(batch) => Seen::Snapshot {
            batch: batch.batch_number(),
            ids: batch.rows().iter().map(|row| id_of(row.value(0))).collect(),
        },
        Notification::InitialLoadComplete { .. } => Seen::LoadComplete,
        Notification::Gap {
            missed, last_seq, ..
        } => Seen::Gap {
            missed,
            last_seq: last_seq.map(|seq| seq.0),
        },
        other => Seen::Other(other.kind()),
    }
}

/// Takes everything the receiver hands out without blocking, and how it ended.
pub fn drain(receiver: &mut NotificationReceiver) -> (Vec<Seen>, ReceiveError) {
    let mut all = Vec::new();
    loop {
        match receiver.try_recv() {
            Ok(notification) => all.push(seen(notification)),
            Err(end) => return (all, end),
        }
    }
}

/// The row ids of the changes among `seen`, in the order received.
pub fn change_ids(seen: &[Seen]) -> Vec<i64> {
    seen.iter()
        .filter_map(|seen| match seen {
            Seen::Changes { ids, .. } => Some(ids.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}
