//! The snapshot boundary under a multi-threaded race: 4 publisher threads each publish
//! their own tables' commits in order while 10k subscriptions run their initial loads
//! (subscribe, read the snapshot SeqId, set the boundary, complete) on two loader threads.
//! About 5M deliveries in all; channels are sized so that any gap is a failure. Every
//! subscription must get every matching change above its boundary exactly once, in order.
//!
//! Meant for the `race` profile (release speed with debug assertions):
//! `cargo test --profile race --test race_snapshot_boundary -- --ignored`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use livecore::*;

const PUBLISHERS: usize = 4;
const COMMITS_PER_TABLE: u64 = 900;
const SUBSCRIPTIONS: usize = 10_000;
const LOADERS: usize = 2;
const ROOMS: i64 = 4;

fn table(index: usize) -> TableId {
    TableId::new("race", format!("t{index}"))
}

struct Planned {
    table: usize,
    /// `None`: every row; `Some(room)`: rows of that room.
    room: Option<i64>,
}

fn room_of(seq: u64) -> i64 {
    (seq % ROOMS as u64) as i64
}

#[test]
#[ignore = "slow unoptimised: .ci/test.sh runs it in the race profile with --ignored"]
fn every_change_above_the_boundary_arrives_exactly_once_in_order() {
    let manager = Arc::new(
        ConnectionsManager::new(ManagerConfig {
            max_connections: SUBSCRIPTIONS,
            notification_channel_capacity: COMMITS_PER_TABLE as usize + 8,
            gate_buffer_capacity: COMMITS_PER_TABLE as usize + 8,
            ..ManagerConfig::default()
        })
        .unwrap(),
    );
    for index in 0..PUBLISHERS {
        manager
            .register_table(TableSchema::new(
                table(index),
                TableScope::Shared,
                ["id", "room"],
            ))
            .unwrap();
    }
    let plans: Vec<Planned> = (0..SUBSCRIPTIONS)
        .map(|n| Planned {
            table: n % PUBLISHERS,
            room: if n % 2 == 0 {
                None
            } else {
                Some((n / 2) as i64 % ROOMS)
            },
        })
        .collect();
    // What each table has committed: advanced before the commit is published, as an engine
    // commits and then notifies. A snapshot read at any moment holds everything up to it.
    let committed: Arc<Vec<AtomicU64>> =
        Arc::new((0..PUBLISHERS).map(|_| AtomicU64::new(0)).collect());
    let start = Arc::new(Barrier::new(PUBLISHERS + LOADERS));
    // Loads completed so far. Publishers pace themselves on it so that the loads are spread
    // over the first quarter of the commits, racing them, and most of the run is live.
    let loaded = Arc::new(AtomicU64::new(0));

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|index| {
            let (manager, committed, start, loaded) = (
                manager.clone(),
                committed.clone(),
                start.clone(),
                loaded.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                for seq in 1..=COMMITS_PER_TABLE {
                    let due = (seq * 4 * SUBSCRIPTIONS as u64 / COMMITS_PER_TABLE)
                        .min(SUBSCRIPTIONS as u64);
                    while loaded.load(Ordering::SeqCst) < due {
                        std::thread::yield_now();
                    }
                    committed[index].store(seq, Ordering::SeqCst);
                    let row = Row::new(vec![Value::Int(seq as i64), Value::Int(room_of(seq))]);
                    manager
                        .publish(SeqId(seq), ChangeNotification::insert(table(index), row))
                        .unwrap();
                    if seq % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();

    let plans = Arc::new(plans);
    let loaders: Vec<_> = (0..LOADERS)
        .map(|loader| {
            let (manager, committed, start, plans, loaded) = (
                manager.clone(),
                committed.clone(),
                start.clone(),
                plans.clone(),
                loaded.clone(),
            );
            std::thread::spawn(move || {
                let mut opened = Vec::new();
                start.wait();
                for n in (loader..SUBSCRIPTIONS).step_by(LOADERS) {
                    let plan = &plans[n];
                    let registration = manager.register_connection().unwrap();
                    manager
                        .authenticate(registration.connection_id, UserId::from("u"), None)
                        .unwrap();
                    let mut spec = QuerySpec::table(table(plan.table));
                    if let Some(room) = plan.room {
                        spec = spec.filter(Expr::col("room").eq(Expr::lit(room)));
                    }
                    let sub = manager
                        .subscribe(
                            registration.connection_id,
                            spec,
                            SubscriptionOptions::with_initial_load(),
                        )
                        .unwrap();
                    // Indexed first, then the snapshot SeqId is read: the documented order.
                    let boundary = committed[plan.table].load(Ordering::SeqCst);
                    manager
                        .set_snapshot_boundary(sub.live_query_id, SeqId(boundary))
                        .unwrap();
                    if n % 3 == 0 {
                        std::thread::yield_now();
                    }
                    manager.complete_initial_load(sub.live_query_id).unwrap();
                    loaded.fetch_add(1, Ordering::SeqCst);
                    opened.push((n, boundary, registration));
                }
                opened
            })
        })
        .collect();

    for publisher in publishers {
        publisher.join().unwrap();
    }
    let mut deliveries = 0u64;
    let mut checked = 0;
    for loader in loaders {
        for (n, boundary, mut registration) in loader.join().unwrap() {
            let plan = &plans[n];
            let expected: Vec<u64> = (boundary + 1..=COMMITS_PER_TABLE)
                .filter(|seq| plan.room.is_none_or(|room| room_of(*seq) == room))
                .collect();
            let mut received = Vec::with_capacity(expected.len());
            while let Ok(notification) = registration.notifications.try_recv() {
                match notification {
                    Notification::Changes(set) => {
                        assert_eq!(set.len(), 1);
                        received.push(set.seq().0);
                    }
                    Notification::InitialLoadComplete { .. } => {
                        assert!(
                            received.is_empty(),
                            "live changes before the load completed"
                        );
                    }
                    other => panic!("subscription {n}: unexpected {other:?}"),
                }
            }
            assert_eq!(received, expected, "subscription {n} (boundary {boundary})");
            deliveries += received.len() as u64;
            checked += 1;
        }
    }
    assert_eq!(checked, SUBSCRIPTIONS);
    let stats = manager.stats();
    println!("{deliveries} deliveries checked; {stats:?}");
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.delivered, deliveries);
    assert!(
        deliveries > 4_000_000,
        "the race should be large: {deliveries}"
    );
}
