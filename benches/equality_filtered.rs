//! Publish cost with many equality-filtered subscriptions on one table.
//!
//! `n` subscriptions `SELECT id FROM bench.rooms WHERE room = <i>` (distinct constants) are
//! registered on one shared table; each measured publish inserts a row into one room, so it
//! matches exactly one subscription, whose delivery is received and dropped in the loop.
//! Pinned-column routing finds that subscription by a hash lookup, so the work per publish
//! is the same from 1k to 1M registered subscriptions (the routing tests count it). Two
//! access patterns: `spread` (a pseudo-random room each time; beyond ~10k subscriptions the
//! touched data no longer fits in the CPU caches) and `hot` (64 rooms in turn).
//!
//! Run: `cargo bench --bench equality_filtered` (about two minutes, most of it registering
//! the million subscriptions).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livecore::*;

fn setup(registered: i64) -> (ConnectionsManager, ConnectionRegistration, TableId) {
    let rooms = TableId::new("bench", "rooms");
    let manager = ConnectionsManager::new(ManagerConfig {
        max_subscriptions_per_connection: registered as usize + 1,
        default_namespace: "bench".into(),
        ..ManagerConfig::default()
    })
    .unwrap();
    manager
        .register_table(TableSchema::new(
            rooms.clone(),
            TableScope::Shared,
            ["id", "room", "body"],
        ))
        .unwrap();
    let connection = manager.register_connection().unwrap();
    manager
        .authenticate(connection.connection_id, UserId::from("bench"), None)
        .unwrap();
    for room in 0..registered {
        manager
            .subscribe_sql(
                connection.connection_id,
                &format!("SELECT id FROM rooms WHERE room = {room}"),
                SubscriptionOptions::default(),
            )
            .unwrap();
    }
    (manager, connection, rooms)
}

fn publish_equality_filtered(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_equality_filtered");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    // `cargo bench` passes --bench; `cargo test --all-targets` runs each benchmark once in
    // a debug build, where registering a million subscriptions would take minutes.
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let sizes: &[i64] = if benchmarking {
        &[1_000, 10_000, 100_000, 1_000_000]
    } else {
        &[1_000]
    };
    for &registered in sizes {
        let (manager, mut connection, rooms) = setup(registered);
        let mut seq = 0u64;
        let mut publish = |room: i64| {
            seq += 1;
            let row = Row::new(vec![
                Value::Int(seq as i64),
                Value::Int(room),
                Value::text("hello"),
            ]);
            let summary = manager
                .publish(SeqId(seq), ChangeNotification::insert(rooms.clone(), row))
                .unwrap();
            debug_assert_eq!(summary.matched, 1);
            black_box(connection.notifications.try_recv().ok());
            summary
        };
        // "spread": each publish goes to a pseudo-random room among all of them, so the
        // subscriptions it touches are rarely in the CPU caches once there are many.
        let mut step = 0u64;
        group.bench_with_input(
            BenchmarkId::new("spread", registered),
            &registered,
            |bencher, &registered| {
                bencher.iter(|| {
                    step += 1;
                    publish((step.wrapping_mul(2_654_435_761) % registered as u64) as i64)
                })
            },
        );
        // "hot": publishes cycle over 64 rooms, isolating the routing work from cache misses.
        group.bench_with_input(
            BenchmarkId::new("hot", registered),
            &registered,
            |bencher, &registered| {
                bencher.iter(|| {
                    step += 1;
                    publish(((step % 64) * (registered as u64 / 64)) as i64)
                })
            },
        );
        let stats = manager.stats();
        assert_eq!(
            stats.filter_evaluations, stats.published,
            "each publish evaluates exactly one filter"
        );
    }
    group.finish();
}

criterion_group!(benches, publish_equality_filtered);
criterion_main!(benches);
