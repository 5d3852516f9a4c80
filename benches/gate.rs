//! Snapshot-gate overhead on live subscriptions: unfiltered fan-out to 10k subscribers
//! whose gates are live, reached three ways (never gated; gated, loaded and completed in
//! livecore; the seed's flow control marked complete), so the ratio of the first two is the
//! gate's cost once live (one atomic load) and the seed's is the same path in its design.
//!
//! `gate_covered` measures the gated path itself: subscriptions still loading, with a
//! snapshot boundary above every published commit, so each change is dropped at the gate
//! (it is in the snapshot) — a check under the gate's lock in livecore, atomics in the seed.
//!
//! Throughput is in subscriptions reached.

use std::sync::Arc;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use livecore::{ChangeNotification, SeqId, SubscriptionOptions, TableScope};

mod common;

use common::baselines::seed::Dispatch;
use common::{
    chunk_for, criterion_config, drain_live, drain_seed, live_row, seed_insert, seed_shared_user,
    timed_in_chunks, LiveBench, SeedBench, READER,
};

const SUBSCRIBERS: usize = 10_000;
const BOUNDARY: u64 = 1 << 40;

/// Livecore subscribers, one per connection; `load` runs each through the initial-load
/// protocol, and `complete` finishes it (live) or leaves it gated at `BOUNDARY`.
fn live_fixture(load: bool, complete: bool) -> LiveBench {
    let mut live = LiveBench::new("items", TableScope::Shared);
    live.connect_many(SUBSCRIBERS, |_| READER.to_string());
    for connection in 0..SUBSCRIBERS {
        let spec = live.spec();
        let options = if load {
            SubscriptionOptions::with_initial_load()
        } else {
            SubscriptionOptions::default()
        };
        let id = live.subscribe_with(connection, spec, options);
        if load {
            live.manager
                .set_snapshot_boundary(id, SeqId(if complete { 0 } else { BOUNDARY }))
                .expect("boundary");
            if complete {
                live.manager
                    .complete_initial_load(id)
                    .expect("load completes");
            }
        }
    }
    live.drain();
    live
}

fn seed_fixture(complete: bool) -> SeedBench {
    let mut seed = SeedBench::new("items");
    seed.connect_many(SUBSCRIBERS, |_| READER.to_string());
    let query = seed.parse("*", None);
    for connection in 0..SUBSCRIBERS {
        let id = seed.subscribe_with(connection, &query, !complete);
        if !complete {
            seed.registry.set_snapshot_end_seq(&id, BOUNDARY as i64);
        }
    }
    seed
}

fn bench_live(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut live: LiveBench,
) {
    let chunk = chunk_for(SUBSCRIBERS as u64);
    let manager = Arc::clone(&live.manager);
    let table = live.table.clone();
    let mut seq = 0;
    group.bench_function(BenchmarkId::new(name, SUBSCRIBERS), |b| {
        b.iter_custom(|iters| {
            timed_in_chunks(
                iters,
                chunk,
                |i| {
                    seq += 1;
                    (
                        SeqId(seq),
                        ChangeNotification::insert(table.clone(), live_row(i as i64)),
                    )
                },
                |(seq, change)| {
                    manager.publish(seq, change).expect("publish");
                },
                || {
                    drain_live(&mut live.receivers);
                },
            )
        })
    });
}

fn bench_seed(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut seed: SeedBench,
) {
    let chunk = chunk_for(SUBSCRIBERS as u64);
    let user = seed_shared_user();
    let mut seq = 0;
    group.bench_function(BenchmarkId::new(name, SUBSCRIBERS), |b| {
        b.iter_custom(|iters| {
            let table = seed.table.clone();
            let registry = &seed.registry;
            let receivers = &mut seed.receivers;
            timed_in_chunks(
                iters,
                chunk,
                |i| {
                    seq += 1;
                    seed_insert(&table, i as i64, seq)
                },
                |change| {
                    registry.notify_table_change(&user, &change, Dispatch::Shared);
                },
                || {
                    drain_seed(receivers);
                },
            )
        })
    });
}

fn gate_live(c: &mut Criterion) {
    let mut group = c.benchmark_group("gate_live");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    bench_live(
        &mut group,
        "livecore_never_gated",
        live_fixture(false, true),
    );
    bench_live(&mut group, "livecore_after_load", live_fixture(true, true));
    bench_seed(&mut group, "seed", seed_fixture(true));
    group.finish();
}

fn gate_covered(c: &mut Criterion) {
    let mut group = c.benchmark_group("gate_covered");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    bench_live(&mut group, "livecore", live_fixture(true, false));
    bench_seed(&mut group, "seed", seed_fixture(false));
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = gate_live, gate_covered
}
fn main() {
    common::bench_main("gate", &[benches]);
}
