//! Loom models of topics: a parked long poll is always woken, also when another call of
//! its session is parked too; a nack or a lease extension
//! racing a lease's expiry never revives the expired lease; racing appends to one
//! partition pass livecore's check of their offsets. Run with
//! `RUSTFLAGS="--cfg livecore_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p livecore-loom-tests`
//! (in its own target directory). Without the cfg this file compiles to nothing.
//!
//! A loom build has no clock: a consume that parks waits until it is woken, however long
//! its timeout. A lost wake-up therefore leaves every thread blocked, which loom reports as
//! a deadlock.
#![cfg(livecore_loom)]

use std::time::Duration;

use livecore::*;
use loom::sync::Arc;
use loom::thread;

const POLL: Duration = Duration::from_secs(30);

fn table() -> TableId {
    TableId::new("loom", "t")
}

/// A manager with a one-partition topic `t`, a group `g` and an authenticated consumer, on
/// a manual clock: a model must run the same operations in every execution, and a
/// heartbeat on the system clock writes or not depending on which thread read the later
/// time.
fn setup() -> (Arc<ConnectionsManager>, ConnectionId) {
    let clock = std::sync::Arc::new(ManualClock::new(1_000_000));
    let manager = ConnectionsManager::with_clock(ManagerConfig::default(), clock).unwrap();
    manager.create_topic("t", TopicConfig::default()).unwrap();
    manager
        .create_consumer_group("t", "g", GroupConfig::default())
        .unwrap();
    let consumer = manager.register_connection().unwrap().connection_id;
    manager
        .authenticate(consumer, UserId::from("u"), None)
        .unwrap();
    (Arc::new(manager), consumer)
}

/// Invariant: a consume racing a direct publish returns the message — it either sees it on
/// its pass or parks registered so that the publish wakes it (no lost wake-up).
#[test]
fn consume_racing_publish() {
    loom::model(|| {
        let (manager, consumer) = setup();
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager
                    .publish_to_topic("t", DirectMessage::new(SeqId(1), "m"))
                    .unwrap()
            })
        };
        let batch = manager.consume(consumer, "t", "g", 10, POLL).unwrap();
        assert_eq!(batch.len(), 1, "the message, once");
        assert_eq!(batch.messages[0].seq, SeqId(1));
        assert_eq!(publisher.join().unwrap().offset, 0);
    });
}

/// Invariant: two consumes of one session, on two groups, racing a publish both return the
/// message — the publish wakes every call parked on the session, not one of them.
#[test]
fn two_consumes_of_one_session_racing_publish() {
    loom::model(|| {
        let (manager, consumer) = setup();
        manager
            .create_consumer_group("t", "h", GroupConfig::default())
            .unwrap();
        let other = {
            let manager = manager.clone();
            thread::spawn(move || manager.consume(consumer, "t", "h", 10, POLL).unwrap())
        };
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager
                    .publish_to_topic("t", DirectMessage::new(SeqId(1), "m"))
                    .unwrap()
            })
        };
        let batch = manager.consume(consumer, "t", "g", 10, POLL).unwrap();
        assert_eq!(batch.len(), 1, "group g: the message, once");
        assert_eq!(other.join().unwrap().len(), 1, "group h: the message, once");
        publisher.join().unwrap();
    });
}

/// Invariant: appends racing on one partition are all accepted, whichever the store puts
/// first. livecore checks the offset a store gives against what it has started writing;
/// an append started second may take effect first, and the check must allow it.
#[test]
fn appends_racing_on_one_partition() {
    loom::model(|| {
        let (manager, _) = setup();
        let other = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager
                    .publish_to_topic("t", DirectMessage::new(SeqId(1), "a"))
                    .unwrap()
                    .offset
            })
        };
        let mine = manager
            .publish_to_topic("t", DirectMessage::new(SeqId(2), "b"))
            .unwrap()
            .offset;
        let theirs = other.join().unwrap();
        let mut offsets = [mine, theirs];
        offsets.sort_unstable();
        assert_eq!(offsets, [0, 1]);
        assert_eq!(manager.topic_info("t").unwrap().write_failures, 0);
    });
}

/// Invariant: the same through a table route: a commit racing the consume is appended and
/// wakes it.
#[test]
fn consume_racing_routed_commit() {
    loom::model(|| {
        let (manager, consumer) = setup();
        manager
            .register_table(TableSchema::new(table(), TableScope::Shared, ["id"]))
            .unwrap();
        manager
            .add_topic_route(
                TopicRouteSpec::new("t", table()).filter(Expr::col("id").gt(Expr::lit(0))),
            )
            .unwrap();
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                let row = Row::new(vec![Value::Int(7)]);
                let summary = manager
                    .publish(SeqId(3), ChangeNotification::insert(table(), row))
                    .unwrap();
                assert_eq!(summary.topic_messages, 1);
            })
        };
        let batch = manager.consume(consumer, "t", "g", 10, POLL).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.messages[0].seq, SeqId(3));
        publisher.join().unwrap();
    });
}

/// Invariant: shutdown racing a consume ends it — the consume returns ShuttingDown (or, if
/// shutdown already unregistered its connection, UnknownConnection) and never stays
/// parked.
#[test]
fn shutdown_racing_a_parking_consume() {
    loom::model(|| {
        let (manager, consumer) = setup();
        let stopper = {
            let manager = manager.clone();
            thread::spawn(move || manager.shutdown(Duration::ZERO))
        };
        let result = manager.consume(consumer, "t", "g", 10, POLL);
        assert!(
            matches!(
                result,
                Err(LiveError::ShuttingDown) | Err(LiveError::UnknownConnection(_))
            ),
            "{result:?}"
        );
        stopper.join().unwrap();
    });
}

/// A manager on a manual clock with a one-partition topic `t` holding one message, a group
/// `g` (30 s lease) whose lease consumer `a` holds after consuming the message, and a
/// second consumer `b`.
fn leased() -> (
    Arc<ConnectionsManager>,
    std::sync::Arc<ManualClock>,
    ConnectionId,
    ConnectionId,
) {
    let clock = std::sync::Arc::new(ManualClock::new(1_000_000));
    let manager = ConnectionsManager::with_clock(ManagerConfig::default(), clock.clone()).unwrap();
    manager.create_topic("t", TopicConfig::default()).unwrap();
    manager
        .create_consumer_group("t", "g", GroupConfig::default().lease(LEASE))
        .unwrap();
    let mut consumers = Vec::new();
    for user in ["a", "b"] {
        let consumer = manager.register_connection().unwrap().connection_id;
        manager
            .authenticate(consumer, UserId::from(user), None)
            .unwrap();
        consumers.push(consumer);
    }
    manager
        .publish_to_topic("t", DirectMessage::new(SeqId(1), "m"))
        .unwrap();
    let batch = manager
        .consume(consumers[0], "t", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(batch.len(), 1);
    (Arc::new(manager), clock, consumers[0], consumers[1])
}

const LEASE: Duration = Duration::from_secs(30);

/// Invariant: a nack (with a delay) racing the expiry of the nacker's lease never revives
/// it: once the lease duration has passed, another consumer gets the message at once —
/// whether the nack came first (its renewal expires too) or was refused as too late.
#[test]
fn nack_racing_lease_expiry() {
    loom::model(|| {
        let (manager, clock, a, b) = leased();
        let nacker = {
            let manager = manager.clone();
            thread::spawn(move || manager.nack(a, "t", "g", 0, 0, Duration::from_secs(10)))
        };
        clock.advance(LEASE.as_millis() as u64);
        let batch = manager.consume(b, "t", "g", 10, Duration::ZERO).unwrap();
        assert_eq!(batch.len(), 1, "the expired lease was not revived");
        assert_eq!(batch.messages[0].offset, 0);
        match nacker.join().unwrap() {
            Ok(()) => {}
            Err(LiveError::NotLeaseHolder { .. }) => {}
            other => panic!("{other:?}"),
        }
    });
}

/// Invariant: an explicit lease extension racing the lease's expiry never revives it: it
/// extends a live lease (which the clock step then expires) or extends nothing.
#[test]
fn extension_racing_lease_expiry() {
    loom::model(|| {
        let (manager, clock, a, b) = leased();
        let extender = {
            let manager = manager.clone();
            thread::spawn(move || manager.extend_leases(a, "t", "g").unwrap())
        };
        clock.advance(LEASE.as_millis() as u64);
        let batch = manager.consume(b, "t", "g", 10, Duration::ZERO).unwrap();
        assert_eq!(batch.len(), 1, "the expired lease was not revived");
        let extended = extender.join().unwrap();
        assert!(extended <= 1);
        assert_eq!(manager.group_stats("t", "g").unwrap().leases_expired, 1);
    });
}
