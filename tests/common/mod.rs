//! Shared set-up for the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use livecore::*;

/// The chat table used across tests: shared scope, columns id, room, body.
pub fn messages() -> TableId {
    TableId::new("chat", "messages")
}

/// A user-scoped table: columns id, owner_note, amount.
pub fn notes() -> TableId {
    TableId::new("app", "notes")
}

pub fn manager_with(config: ManagerConfig) -> (Arc<ConnectionsManager>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let manager = ConnectionsManager::with_clock(config, clock.clone()).expect("valid config");
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "room", "body"],
        ))
        .unwrap();
    manager
        .register_table(TableSchema::new(
            notes(),
            TableScope::User,
            ["id", "title", "amount"],
        ))
        .unwrap();
    (Arc::new(manager), clock)
}

pub fn manager() -> (Arc<ConnectionsManager>, Arc<ManualClock>) {
    manager_with(ManagerConfig::default())
}

/// The default manager but for its connections' channels, which hold `capacity` items.
pub fn with_capacity(capacity: usize) -> (Arc<ConnectionsManager>, Arc<ManualClock>) {
    manager_with(ManagerConfig {
        notification_channel_capacity: capacity,
        ..ManagerConfig::default()
    })
}

/// Registers and authenticates a connection as `user`.
pub fn connect(manager: &ConnectionsManager, user: &str) -> ConnectionRegistration {
    let registration = manager.register_connection().unwrap();
    manager
        .authenticate(registration.connection_id, UserId::from(user), None)
        .unwrap();
    registration
}

pub fn message(id: i64, room: i64, body: &str) -> Row {
    Row::new(vec![Value::Int(id), Value::Int(room), Value::text(body)])
}

pub fn note(id: i64, title: &str, amount: i64) -> Row {
    Row::new(vec![Value::Int(id), Value::text(title), Value::Int(amount)])
}

/// An insert into the chat table of a message numbered `id` in `room`.
pub fn insert_in_room(id: u64, room: i64) -> ChangeNotification {
    ChangeNotification::insert(messages(), message(id as i64, room, ""))
}

/// The commit's SeqId of a change notification.
pub fn seq_of(notification: &Notification) -> Option<u64> {
    match notification {
        Notification::Changes(set) => Some(set.seq().0),
        _ => None,
    }
}

/// The SeqIds of the change notifications, in order.
pub fn seqs(notifications: &[Notification]) -> Vec<u64> {
    notifications.iter().filter_map(seq_of).collect()
}

/// Subscribes `connection` to `spec` with default options.
pub fn subscribe(
    manager: &ConnectionsManager,
    connection: ConnectionId,
    spec: QuerySpec,
) -> SubscriptionResult {
    manager
        .subscribe(connection, spec, SubscriptionOptions::default())
        .unwrap()
}

pub fn in_room(room: i64) -> QuerySpec {
    QuerySpec::table(messages()).filter(Expr::col("room").eq(Expr::lit(room)))
}

/// Everything waiting in a receiver now.
pub fn drain(receiver: &mut NotificationReceiver) -> Vec<Notification> {
    let mut received = Vec::new();
    while let Ok(notification) = receiver.try_recv() {
        received.push(notification);
    }
    received
}

/// The (change type, id column) pairs of every change notification, flattened.
pub fn changes_of(notifications: &[Notification]) -> Vec<(ChangeType, i64)> {
    notifications
        .iter()
        .filter_map(|notification| match notification {
            Notification::Changes(set) => Some(set),
            _ => None,
        })
        .flat_map(|set| {
            set.changes()
                .map(|change| {
                    let id = match change.row.get("id") {
                        Some(Value::Int(id)) => *id,
                        other => panic!("row without an integer id: {other:?}"),
                    };
                    (change.change_type, id)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A minimal executor: polls the future, parking the thread until woken.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

pub mod observability_scenario;
