//! Loom models of a subscription's life racing the publish path: subscribe, unsubscribe,
//! schema changes (ALTER TABLE recompiling it), and the unregistering of its connection.
//! Without `--cfg livecore_loom` this file compiles to nothing.
#![cfg(livecore_loom)]

mod common;

use common::*;
use livecore::*;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

/// Invariant: a subscription indexed before a change is published receives it. The
/// subscriber raises a flag once `subscribe` returned; a publish that starts after seeing
/// the flag must enqueue to it, and what the subscriber receives is a suffix of the
/// commits, in order (once reachable, a subscription stays reachable).
#[test]
fn publish_racing_subscribe() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let indexed = Arc::new(AtomicBool::new(false));
        let subscriber = {
            let (manager, indexed) = (manager.clone(), indexed.clone());
            let connection_id = registration.connection_id;
            thread::spawn(move || {
                subscribe(&manager, connection_id, SubscriptionOptions::default());
                indexed.store(true, Ordering::SeqCst);
            })
        };
        for seq in 1..=2 {
            let was_indexed = indexed.load(Ordering::SeqCst);
            let summary = manager.publish(SeqId(seq), insert(seq as i64)).unwrap();
            if was_indexed {
                assert_eq!(
                    summary.enqueued, 1,
                    "commit {seq} missed an indexed subscription"
                );
            }
        }
        subscriber.join().unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        let ids = change_ids(&seen);
        assert!(
            [vec![], vec![2], vec![1, 2]].contains(&ids),
            "received {ids:?}: not a suffix of the commits in order"
        );
    });
}

/// Invariant: once `unsubscribe` returns, the receiver hands out nothing of that
/// subscription, whatever the publisher did meanwhile (sent before, during or after).
#[test]
fn publish_racing_unsubscribe() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager.publish(SeqId(1), insert(1)).unwrap();
            })
        };
        manager.unsubscribe(sub).unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert!(
            seen.is_empty(),
            "received {seen:?} after unsubscribe returned"
        );
        publisher.join().unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert!(
            seen.is_empty(),
            "received {seen:?} after unsubscribe returned"
        );
    });
}

/// Invariant: once `unregister_connection` returns, the connection's receiver hands out
/// nothing more of its subscriptions and reports `Closed`, also while a publish that
/// routed to it before the unregistering is still sending.
#[test]
fn publish_racing_unregister() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                let summary = manager.publish(SeqId(1), insert(1)).unwrap();
                assert!(summary.matched <= 1);
            })
        };
        manager
            .unregister_connection(registration.connection_id)
            .unwrap();
        let (seen, end) = drain(&mut registration.notifications);
        assert!(
            seen.is_empty(),
            "received {seen:?} after unregister returned"
        );
        assert_eq!(end, ReceiveError::Closed);
        publisher.join().unwrap();
        let (seen, end) = drain(&mut registration.notifications);
        assert!(
            seen.is_empty(),
            "received {seen:?} after unregister returned"
        );
        assert_eq!(end, ReceiveError::Closed);
    });
}

/// Invariant: a subscribe racing the unregistering of its connection either fails or is
/// undone by it: once both returned, nothing of the connection is routed (a publish
/// matches nothing) and its receiver reports `Closed`.
#[test]
fn subscribe_racing_unregister() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let connection_id = registration.connection_id;
        let subscriber = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager
                    .subscribe(
                        connection_id,
                        QuerySpec::table(table()),
                        SubscriptionOptions::default(),
                    )
                    .is_ok()
            })
        };
        manager.unregister_connection(connection_id).unwrap();
        let subscribed = subscriber.join().unwrap();
        let summary = manager.publish(SeqId(1), insert(1)).unwrap();
        assert_eq!(
            summary.matched, 0,
            "a subscription of an unregistered connection is still routed \
             (subscribe returned ok: {subscribed})"
        );
        let (seen, end) = drain(&mut registration.notifications);
        assert!(
            seen.is_empty(),
            "received {seen:?} after unregister returned"
        );
        assert_eq!(end, ReceiveError::Closed);
    });
}

/// Invariant: a schema change racing publishes loses, repeats and reorders nothing: the
/// subscription moves to its recompiled version while commits route through either the
/// previous route or the new one, and the receiver gets every commit once, in order, with
/// no gap reported (numbering continues across versions).
#[test]
fn publish_racing_schema_change() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                for seq in 1..=2 {
                    manager.publish(SeqId(seq), insert(seq as i64)).unwrap();
                }
            })
        };
        // ALTER TABLE: the column is renamed; the subscription (all columns) recompiles.
        manager
            .register_table(TableSchema::new(table(), TableScope::Shared, ["ident"]))
            .unwrap();
        publisher.join().unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert_eq!(
            seen,
            vec![
                Seen::Changes {
                    seq: 1,
                    ids: vec![1]
                },
                Seen::Changes {
                    seq: 2,
                    ids: vec![2]
                },
            ]
        );
    });
}

/// Invariant: a schema change does not let a subscription outlive its unsubscribe. A
/// publish still routing through the table's previous route (loaded before the change)
/// reaches the subscription's previous core; once `unsubscribe` returned, the receiver must
/// hand out nothing of the subscription, whichever core a delivery went through.
#[test]
fn publish_racing_schema_change_and_unsubscribe() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager.publish(SeqId(1), insert(1)).unwrap();
            })
        };
        // ALTER TABLE: the column is renamed; the subscription (all columns) recompiles.
        manager
            .register_table(TableSchema::new(table(), TableScope::Shared, ["ident"]))
            .unwrap();
        manager.unsubscribe(sub).unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert!(
            seen.is_empty(),
            "received {seen:?} after unsubscribe returned"
        );
        publisher.join().unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert!(
            seen.is_empty(),
            "received {seen:?} after unsubscribe returned"
        );
    });
}

/// Invariant: a subscription being revoked is, to a call on it, either still there or
/// ended with the revocation, never unknown: `unsubscribe` on it succeeds either way, and
/// after it returns the revocation's notice is not handed out.
#[test]
fn lookup_and_unsubscribe_racing_revoke_user() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        let revoker = {
            let manager = manager.clone();
            thread::spawn(move || manager.revoke_user(&UserId::from("u"), "expired"))
        };
        match manager.subscription(sub) {
            Ok(_) => {}
            Err(LiveError::SubscriptionEnded { ending, .. }) => {
                assert!(
                    matches!(ending, SubscriptionEnding::Closed(_)),
                    "{ending:?}"
                );
            }
            Err(error) => panic!("a subscription being revoked looked {error:?}"),
        }
        manager.unsubscribe(sub).unwrap();
        let ended = revoker.join().unwrap();
        assert!(ended <= 1);
        let (seen, _) = drain(&mut registration.notifications);
        assert!(seen.is_empty(), "handed out after unsubscribe: {seen:?}");
    });
}

/// Invariant: once a revocation returns, nothing published after it is handed out for a
/// subscription it covered, even one the host is unsubscribing at that moment (which the
/// revocation may find already gone from the connection's map, and leave to the
/// unsubscribe to unroute).
#[test]
fn publish_after_revoke_table_racing_unsubscribe() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        let unsubscriber = {
            let manager = manager.clone();
            thread::spawn(move || manager.unsubscribe(sub).unwrap())
        };
        manager.revoke_table(&table(), "revoked").unwrap();
        manager.publish(SeqId(1), insert(1)).unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert!(
            change_ids(&seen).is_empty(),
            "a commit published after the revocation returned: {seen:?}"
        );
        unsubscriber.join().unwrap();
    });
}

/// Invariant: as with unsubscribe, a revocation racing the connection's unregistering
/// leaves nothing published after the revocation returned to be handed out.
#[test]
fn publish_after_revoke_table_racing_unregister() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let connection_id = registration.connection_id;
        subscribe(&manager, connection_id, SubscriptionOptions::default());
        let unregisterer = {
            let manager = manager.clone();
            thread::spawn(move || manager.unregister_connection(connection_id).unwrap())
        };
        manager.revoke_table(&table(), "revoked").unwrap();
        manager.publish(SeqId(1), insert(1)).unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert!(
            change_ids(&seen).is_empty(),
            "a commit published after the revocation returned: {seen:?}"
        );
        unregisterer.join().unwrap();
    });
}
