//! JSON per projection group: one commit delivered to 1000 subscribers split into 1, 10 or
//! 50 groups that project different columns, and every subscriber's notification turned
//! into the JSON text its socket would carry.
//!
//! livecore renders each change once per (commit, projection) on the receiving side and
//! caches it on the commit; the seed design built a JSON row map per subscriber at publish
//! time and serialized each notification with serde_json on the way out. Both are timed
//! from publish to the last JSON string, on one thread. Throughput is in deliveries.

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use livecore::{ChangeNotification, Notification, Projection, SeqId, TableScope};

mod common;

use common::baselines::seed::{notification_to_json, Dispatch};
use common::{
    criterion_config, live_row, seed_insert, seed_shared_user, LiveBench, SeedBench, COLUMNS,
    READER,
};

const SUBSCRIBERS: usize = 1000;
const GROUPS: [usize; 3] = [1, 10, 50];

/// The columns of projection group `g` of `groups`: everything when there is one group,
/// else the columns picked by the bits of `g + 1` (distinct for up to 63 groups).
fn group_columns(g: usize, groups: usize) -> Option<Vec<&'static str>> {
    (groups > 1).then(|| {
        COLUMNS
            .iter()
            .enumerate()
            .filter(|(bit, _)| (g + 1) & (1 << bit) != 0)
            .map(|(_, column)| *column)
            .collect()
    })
}

fn json_per_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_projection_groups");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    for groups in GROUPS {
        let mut live = LiveBench::new("items", TableScope::Shared);
        live.connect_many(SUBSCRIBERS, |_| READER.to_string());
        for subscriber in 0..SUBSCRIBERS {
            let projection = match group_columns(subscriber % groups, groups) {
                Some(columns) => Projection::columns(columns),
                None => Projection::All,
            };
            let spec = live.spec().project(projection);
            live.subscribe(subscriber, spec);
        }
        let manager = Arc::clone(&live.manager);
        let table = live.table.clone();
        let mut seq = 0;
        group.bench_function(BenchmarkId::new("livecore", groups), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    seq += 1;
                    let change = ChangeNotification::insert(table.clone(), live_row(i as i64));
                    manager.publish(SeqId(seq), change).expect("publish");
                    for rx in live.receivers.iter_mut() {
                        while let Ok(notification) = rx.try_recv() {
                            if let Notification::Changes(_) = notification {
                                std::hint::black_box(notification.to_json());
                            }
                        }
                    }
                }
                start.elapsed()
            })
        });
        drop(live);

        let mut seed = SeedBench::new("items");
        seed.connect_many(SUBSCRIBERS, |_| READER.to_string());
        for subscriber in 0..SUBSCRIBERS {
            let columns = group_columns(subscriber % groups, groups)
                .map_or_else(|| "*".to_string(), |columns| columns.join(", "));
            let query = seed.parse(&columns, None);
            seed.subscribe(subscriber, &query);
        }
        let user = seed_shared_user();
        let mut seq = 0;
        group.bench_function(BenchmarkId::new("seed_json", groups), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    seq += 1;
                    let change = seed_insert(&seed.table, i as i64, seq);
                    seed.registry
                        .notify_table_change(&user, &change, Dispatch::JsonPerSubscriber);
                    for rx in seed.receivers.iter_mut() {
                        while let Ok(notification) = rx.try_recv() {
                            std::hint::black_box(notification_to_json(&notification));
                        }
                    }
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = json_per_group
}
fn main() {
    common::bench_main("json", &[benches]);
}
