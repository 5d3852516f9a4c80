//! Publish cost with many equality-filtered subscriptions on one table.
//!
//! `n` subscriptions `SELECT id FROM bench.rooms WHERE room = <i>` (distinct constants) are
//! registered on one shared table; each measured publish inserts a row into one room, so it
//! matches exactly one subscription, whose delivery is received and dropped in the loop.
//! Pinned-column routing finds that subscription by a hash lookup, so the time per publish
//! should stay flat from 1k to 1M registered subscriptions.
//!
//! Run: `cargo bench --bench equality_filtered`.

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
    for registered in [1_000i64, 10_000, 100_000, 1_000_000] {
        let (manager, mut connection, rooms) = setup(registered);
        let mut seq = 0u64;
        group.bench_with_input(
            BenchmarkId::from_parameter(registered),
            &registered,
            |bencher, &registered| {
                bencher.iter(|| {
                    seq += 1;
                    // A different room each time, spread over all subscriptions.
                    let room = (seq.wrapping_mul(2_654_435_761) % registered as u64) as i64;
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
