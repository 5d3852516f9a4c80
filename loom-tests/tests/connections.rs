//! Loom models of the manager's lifecycle protocols: the table directory's
//! compare-and-swap, two subscribes writing one table's index, shutdown racing
//! registration, and connection checks racing heartbeats and the event receiver. Without
//! `--cfg livecore_loom` this file compiles to nothing.
#![cfg(livecore_loom)]

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use loom::thread;

/// Invariant: two writers swapping the table directory concurrently never lose each
/// other's table (the compare-and-swap retry loop), and the tables get distinct keys.
#[test]
fn two_writers_swapping_the_index() {
    loom::model(|| {
        let manager = Arc::new(ConnectionsManager::new(ManagerConfig::default()).unwrap());
        let register = |manager: &ConnectionsManager, name: &str| {
            manager
                .register_table(TableSchema::new(
                    TableId::new("loom", name),
                    TableScope::Shared,
                    ["id"],
                ))
                .unwrap()
        };
        let other = {
            let manager = manager.clone();
            thread::spawn(move || register(&manager, "a"))
        };
        let b = register(&manager, "b");
        let a = other.join().unwrap();
        assert_ne!(a, b, "distinct keys");
        for name in ["a", "b"] {
            assert!(
                manager.table_schema(&TableId::new("loom", name)).is_ok(),
                "table {name} lost"
            );
        }
    });
}

/// Invariant: two subscribes to one table racing each other are both routed: the table's
/// writer lock serializes their copy-on-write bucket updates, so neither edit is made on a
/// copy the other already replaced, and a publish after both returned reaches both.
#[test]
fn two_subscribes_writing_one_table() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut first = connect(&manager);
        let mut second = connect(&manager);
        let other = {
            let (manager, id) = (manager.clone(), second.connection_id);
            thread::spawn(move || subscribe(&manager, id, SubscriptionOptions::default()))
        };
        subscribe(
            &manager,
            first.connection_id,
            SubscriptionOptions::default(),
        );
        other.join().unwrap();
        let summary = manager.publish(SeqId(1), insert(1)).unwrap();
        assert_eq!(summary.enqueued, 2, "a subscription left the index");
        for connection in [&mut first, &mut second] {
            assert_eq!(
                seen(connection.notifications.try_recv().unwrap()),
                Seen::Changes {
                    seq: 1,
                    ids: vec![1]
                }
            );
        }
    });
}

/// Invariant: a registration racing shutdown is either refused with `ShuttingDown`, or
/// is a connection shutdown saw: it gets the `Shutdown` event and, the host not having
/// unregistered it in time, is unregistered by shutdown (its receiver reports `Closed`).
/// No connection outlives a shutdown that has returned.
#[test]
fn shutdown_racing_register() {
    loom::model(|| {
        let manager = Arc::new(ConnectionsManager::new(ManagerConfig::default()).unwrap());
        let registrar = {
            let manager = manager.clone();
            thread::spawn(move || manager.register_connection())
        };
        let report = manager.shutdown(Duration::ZERO);
        let registration = registrar.join().unwrap();
        assert_eq!(
            manager.connection_count(),
            0,
            "a connection outlived shutdown"
        );
        match registration {
            Err(error) => {
                assert_eq!(error, LiveError::ShuttingDown);
                assert_eq!(report.notified, 0);
            }
            Ok(mut registration) => {
                assert_eq!((report.notified, report.forced), (1, 1));
                assert_eq!(
                    registration.events.try_recv(),
                    Ok(ConnectionEvent::Shutdown)
                );
                assert_eq!(
                    registration.notifications.try_recv().err(),
                    Some(ReceiveError::Closed)
                );
            }
        }
    });
}

/// Invariant: `check_connections` racing a heartbeat raises exactly one event for the
/// connection (a heartbeat timeout if it read the heartbeat before it landed, a ping if
/// after), and a consumer blocked on the event receiver gets that event, once. An event is
/// a pending flag plus a wake-up message, so a message consumed before its flag is set
/// would leave the consumer blocked forever (loom reports a deadlock).
#[test]
fn check_connections_racing_heartbeat() {
    const NOW: u64 = 100_000;
    loom::model(|| {
        // Pings every 30 s, heartbeat timeout after 90 s (the defaults); the connection's
        // last heartbeat is at 0 and the clock reads 100 s.
        let clock = std::sync::Arc::new(ManualClock::new(0));
        let manager = manager_with_clock(ManagerConfig::default(), clock.clone());
        let registration = connect(&manager);
        let connection_id = registration.connection_id;
        clock.set(NOW);
        let mut events = registration.events;
        let consumer = thread::spawn(move || {
            let event = events.recv().unwrap();
            (event, events.try_recv())
        });
        let heartbeat = {
            let manager = manager.clone();
            thread::spawn(move || manager.heartbeat(connection_id).unwrap())
        };
        let report = manager.check_connections(NOW);
        heartbeat.join().unwrap();
        let (event, after) = consumer.join().unwrap();
        let raised = match (report.heartbeat_timeouts, report.pings) {
            (1, 0) => ConnectionEvent::HeartbeatTimeout,
            (0, 1) => ConnectionEvent::SendPing,
            other => panic!("expected exactly one event, the check raised {other:?}"),
        };
        assert_eq!(
            event, raised,
            "the consumer got another event than was raised"
        );
        assert_eq!(after, Err(ReceiveError::Empty), "the event arrived twice");
    });
}
