//! Loom models of the core protocols. Run with
//! `RUSTFLAGS="--cfg livecore_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p livecore-loom-tests`
//! (in its own target directory). Without the cfg this file compiles to nothing.
#![cfg(livecore_loom)]

use livecore::*;
use loom::thread;

fn table() -> TableId {
    TableId::new("loom", "t")
}

fn row(id: i64) -> Row {
    Row::new(vec![Value::Int(id)])
}

/// A manager with one table and one authenticated connection.
fn setup() -> (loom::sync::Arc<ConnectionsManager>, ConnectionRegistration) {
    let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
    manager
        .register_table(TableSchema::new(table(), TableScope::Shared, ["id"]))
        .unwrap();
    let registration = manager.register_connection().unwrap();
    manager
        .authenticate(registration.connection_id, UserId::from("u"), None)
        .unwrap();
    (loom::sync::Arc::new(manager), registration)
}

fn received_ids(receiver: &mut NotificationReceiver) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut other = 0;
    while let Ok(notification) = receiver.try_recv() {
        match notification {
            Notification::Changes(set) => {
                for change in set.changes() {
                    match change.row.value(0) {
                        Value::Int(id) => ids.push(*id),
                        value => panic!("unexpected value {value:?}"),
                    }
                }
            }
            _ => other += 1,
        }
    }
    (ids, other)
}

/// Invariant: publishes racing the completion of an initial load deliver every change above
/// the boundary exactly once, in order, after the load-complete marker; nothing is
/// stranded in the gate buffer.
#[test]
fn publish_racing_complete_initial_load() {
    loom::model(|| {
        let (manager, mut registration) = setup();
        let sub = manager
            .subscribe(
                registration.connection_id,
                QuerySpec::table(table()),
                SubscriptionOptions::with_initial_load(),
            )
            .unwrap();
        manager
            .set_snapshot_boundary(sub.live_query_id, SeqId(0))
            .unwrap();
        // Commit 1 arrives during the load and is held; 2 and 3 race the completion.
        manager
            .publish(SeqId(1), ChangeNotification::insert(table(), row(1)))
            .unwrap();
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                for seq in 2..=3 {
                    manager
                        .publish(
                            SeqId(seq),
                            ChangeNotification::insert(table(), row(seq as i64)),
                        )
                        .unwrap();
                }
            })
        };
        manager.complete_initial_load(sub.live_query_id).unwrap();
        publisher.join().unwrap();
        let (ids, markers) = received_ids(&mut registration.notifications);
        assert_eq!(ids, vec![1, 2, 3], "every change once, in order");
        assert_eq!(markers, 1, "one load-complete marker");
    });
}

/// Invariant: once `unsubscribe` returns, the receiver hands out nothing of that
/// subscription, whatever the publisher did meanwhile.
#[test]
fn publish_racing_unsubscribe() {
    loom::model(|| {
        let (manager, mut registration) = setup();
        let sub = manager
            .subscribe(
                registration.connection_id,
                QuerySpec::table(table()),
                SubscriptionOptions::default(),
            )
            .unwrap();
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager
                    .publish(SeqId(1), ChangeNotification::insert(table(), row(1)))
                    .unwrap();
            })
        };
        manager.unsubscribe(sub.live_query_id).unwrap();
        let (ids, _) = received_ids(&mut registration.notifications);
        assert!(
            ids.is_empty(),
            "received {ids:?} after unsubscribe returned"
        );
        publisher.join().unwrap();
        let (ids, _) = received_ids(&mut registration.notifications);
        assert!(
            ids.is_empty(),
            "received {ids:?} after unsubscribe returned"
        );
    });
}

/// Invariant: two writers swapping the table directory concurrently never lose each
/// other's table.
#[test]
fn two_writers_swapping_the_index() {
    loom::model(|| {
        let manager =
            loom::sync::Arc::new(ConnectionsManager::new(ManagerConfig::default()).unwrap());
        let other = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager
                    .register_table(TableSchema::new(
                        TableId::new("loom", "a"),
                        TableScope::Shared,
                        ["id"],
                    ))
                    .unwrap()
            })
        };
        let b = manager
            .register_table(TableSchema::new(
                TableId::new("loom", "b"),
                TableScope::Shared,
                ["id"],
            ))
            .unwrap();
        let a = other.join().unwrap();
        assert_ne!(a, b, "distinct keys");
        assert!(
            manager.table_schema(&TableId::new("loom", "a")).is_ok(),
            "table a lost"
        );
        assert!(
            manager.table_schema(&TableId::new("loom", "b")).is_ok(),
            "table b lost"
        );
    });
}
