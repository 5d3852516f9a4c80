//! Equality-filtered subscriptions on one table: 1k to 1M subscriptions `id = k` with
//! distinct constants, ten per connection, and a stream of inserts each matching one of
//! them. livecore finds the match by a hash lookup on the row's value; the seed design
//! scans every handle of the (user, table) key and interprets each WHERE clause's AST.
//!
//! Throughput is in publishes. The seed is measured up to 100k subscriptions (about 50 ms
//! per publish there, linear in the count); set `LIVECORE_BENCH_SEED_1M=1` to add its 1M
//! point, which takes minutes to set up and measure.

use std::sync::Arc;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use livecore::{ChangeNotification, SeqId};

mod common;

use common::baselines::seed::Dispatch;
use common::{
    chunk_for, criterion_config, drain_live_touched, drain_seed_touched, live_equality, live_row,
    seed_equality, seed_insert, seed_shared_user, spread, timed_in_chunks,
};

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
const PER_CONNECTION: usize = 10;
const SEED_MAX_DEFAULT: usize = 100_000;

fn equality_routing(c: &mut Criterion) {
    let seed_max = if std::env::var_os("LIVECORE_BENCH_SEED_1M").is_some() {
        usize::MAX
    } else {
        SEED_MAX_DEFAULT
    };
    let mut group = c.benchmark_group("equality_routing");
    group.throughput(Throughput::Elements(1));
    for count in SIZES {
        let connections = count.div_ceil(PER_CONNECTION) as u64;
        let chunk = chunk_for(1);

        let mut fixture = None;
        let mut seq = 0;
        let mut touched = Vec::new();
        group.bench_function(BenchmarkId::new("livecore", count), |b| {
            let live = fixture.get_or_insert_with(|| {
                let mut live = live_equality("items", count, PER_CONNECTION);
                assert_eq!(live.publish_insert(3, None), 1, "one subscription matches");
                live.drain();
                live
            });
            let manager = Arc::clone(&live.manager);
            let table = live.table.clone();
            b.iter_custom(|iters| {
                // Shared by the prepare and drain steps: which receivers the chunk reached.
                let targets = std::cell::RefCell::new(Vec::new());
                timed_in_chunks(
                    iters,
                    chunk,
                    |_| {
                        seq += 1;
                        let k = spread(seq, count as u64);
                        targets.borrow_mut().push((k % connections) as usize);
                        let change = ChangeNotification::insert(table.clone(), live_row(k as i64));
                        (SeqId(seq), change)
                    },
                    |(seq, change)| {
                        let summary = manager.publish(seq, change).expect("publish");
                        debug_assert_eq!(summary.enqueued, 1);
                    },
                    || {
                        touched.append(&mut targets.borrow_mut());
                        drain_live_touched(&mut live.receivers, &mut touched);
                    },
                )
            })
        });
        drop(fixture);

        if count > seed_max {
            continue;
        }
        let mut fixture = None;
        let user = seed_shared_user();
        group.bench_function(BenchmarkId::new("seed", count), |b| {
            let seed = fixture.get_or_insert_with(|| {
                let mut seed = seed_equality("items", count, PER_CONNECTION);
                assert_eq!(seed.publish_insert(&user, 3, Dispatch::Shared), 1);
                seed.drain();
                seed
            });
            let table = seed.table.clone();
            b.iter_custom(|iters| {
                // Shared by the prepare and drain steps: which receivers the chunk reached.
                let targets = std::cell::RefCell::new(Vec::new());
                let registry = &seed.registry;
                let receivers = &mut seed.receivers;
                timed_in_chunks(
                    iters,
                    chunk,
                    |_| {
                        seq += 1;
                        let k = spread(seq, count as u64);
                        targets.borrow_mut().push((k % connections) as usize);
                        seed_insert(&table, k as i64, seq)
                    },
                    |change| {
                        registry.notify_table_change(&user, &change, Dispatch::Shared);
                    },
                    || {
                        touched.append(&mut targets.borrow_mut());
                        drain_seed_touched(receivers, &mut touched);
                    },
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = equality_routing
}
fn main() {
    common::bench_main("equality_routing", &[benches]);
}
