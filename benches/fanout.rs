//! Unfiltered fan-out of one commit to 1 / 100 / 10k / 100k matching subscribers, each on
//! its own connection, against the seed's design and tokio broadcast.
//!
//! - `fanout_publisher`: the publisher's cost per delivery (channels drained untimed between
//!   chunks). Broadcast's publisher cost is one `send` whatever the fan-out: its per-delivery
//!   work happens on the receivers, so compare it end to end.
//! - `fanout_end_to_end`: publish on this thread, receivers drained on another until every
//!   delivery has been taken; a receiver-side item is a livecore `Notification`, a seed
//!   `Arc<Notification>` or a broadcast `Arc` of the change.
//!
//! Throughput is in deliveries, so criterion's elements/s compare directly.

use std::sync::Arc;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use livecore::{SeqId, TableScope};

mod common;

use common::baselines::broadcast::{drain_broadcast, BroadcastFanout};
use common::baselines::seed::Dispatch;
use common::{
    chunk_for, criterion_config, drain_live, drain_seed, live_row, seed_insert, seed_shared_user,
    timed_in_chunks, Drainer, LiveBench, SeedBench, READER,
};

const SIZES: [usize; 4] = [1, 100, 10_000, 100_000];
/// Commits allowed in flight end to end: well inside every channel's capacity.
const WINDOW: u64 = 64;

fn live_fanout(subscribers: usize) -> LiveBench {
    let mut live = LiveBench::new("items", TableScope::Shared);
    live.connect_many(subscribers, |_| READER.to_string());
    for connection in 0..subscribers {
        let spec = live.spec();
        live.subscribe(connection, spec);
    }
    assert_eq!(live.publish_insert(0, None), subscribers as u64);
    assert_eq!(live.drain(), subscribers as u64);
    live
}

fn seed_fanout(subscribers: usize) -> SeedBench {
    let mut seed = SeedBench::new("items");
    seed.connect_many(subscribers, |_| READER.to_string());
    // Parsed once and shared: only setup time differs, the index holds the same handles.
    let query = seed.parse("*", None);
    for connection in 0..subscribers {
        seed.subscribe(connection, &query);
    }
    let user = seed_shared_user();
    assert_eq!(
        seed.publish_insert(&user, 0, Dispatch::Shared),
        subscribers as u64
    );
    assert_eq!(seed.drain(), subscribers as u64);
    seed
}

fn fanout_publisher(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_publisher");
    for subscribers in SIZES {
        let fanout = subscribers as u64;
        let chunk = chunk_for(fanout);
        group.throughput(Throughput::Elements(fanout));

        // Fixtures are built on first use, so a filtered run builds only what it measures.
        let mut live = None;
        let mut seq = 0;
        group.bench_function(BenchmarkId::new("livecore", subscribers), |b| {
            let live = live.get_or_insert_with(|| live_fanout(subscribers));
            let table = live.table.clone();
            let manager = Arc::clone(&live.manager);
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    chunk,
                    |i| {
                        seq += 1;
                        let change =
                            livecore::ChangeNotification::insert(table.clone(), live_row(i as i64));
                        (SeqId(seq), change)
                    },
                    |(seq, change)| {
                        let summary = manager.publish(seq, change).expect("publish");
                        debug_assert_eq!(summary.enqueued, subscribers);
                    },
                    || {
                        drain_live(&mut live.receivers);
                    },
                )
            })
        });
        drop(live);

        let mut seed = None;
        let user = seed_shared_user();
        for (name, dispatch) in [
            ("seed", Dispatch::Shared),
            ("seed_json", Dispatch::JsonPerSubscriber),
        ] {
            group.bench_function(BenchmarkId::new(name, subscribers), |b| {
                let seed = seed.get_or_insert_with(|| seed_fanout(subscribers));
                b.iter_custom(|iters| {
                    let mut seq = 0;
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
                            let summary = registry.notify_table_change(&user, &change, dispatch);
                            debug_assert_eq!(summary.enqueued, subscribers);
                        },
                        || {
                            drain_seed(receivers);
                        },
                    )
                })
            });
        }
        drop(seed);

        let mut broadcast = None;
        let template = live_row(1);
        group.bench_function(BenchmarkId::new("broadcast", subscribers), |b| {
            let broadcast =
                broadcast.get_or_insert_with(|| BroadcastFanout::new(subscribers, 1024));
            let tx = broadcast.tx.clone();
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    chunk,
                    |_| Arc::new(template.clone()),
                    |row| {
                        let _ = tx.send(row);
                    },
                    || {
                        broadcast.drain();
                    },
                )
            })
        });
    }
    group.finish();
}

fn fanout_end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_end_to_end");
    for subscribers in SIZES {
        let fanout = subscribers as u64;
        group.throughput(Throughput::Elements(fanout));

        let mut seq = 0;
        let mut fixture = None;
        group.bench_function(BenchmarkId::new("livecore", subscribers), |b| {
            let (live, drainer) = fixture.get_or_insert_with(|| {
                let mut live = live_fanout(subscribers);
                let receivers = std::mem::take(&mut live.receivers);
                (
                    live,
                    Drainer::spawn(receivers, |receivers| drain_live(receivers)),
                )
            });
            let table = live.table.clone();
            let manager = Arc::clone(&live.manager);
            b.iter_custom(|iters| {
                drainer.run(iters, fanout, WINDOW, |i| {
                    seq += 1;
                    let change =
                        livecore::ChangeNotification::insert(table.clone(), live_row(i as i64));
                    manager
                        .publish(SeqId(seq), change)
                        .expect("publish")
                        .enqueued as u64
                })
            })
        });

        drop(fixture);

        let mut fixture = None;
        let user = seed_shared_user();
        group.bench_function(BenchmarkId::new("seed", subscribers), |b| {
            let (seed, drainer) = fixture.get_or_insert_with(|| {
                let mut seed = seed_fanout(subscribers);
                let receivers = std::mem::take(&mut seed.receivers);
                (
                    seed,
                    Drainer::spawn(receivers, |receivers| drain_seed(receivers)),
                )
            });
            b.iter_custom(|iters| {
                drainer.run(iters, fanout, WINDOW, |i| {
                    seed.publish_insert(&user, i as i64, Dispatch::Shared)
                })
            })
        });

        drop(fixture);

        let mut fixture = None;
        group.bench_function(BenchmarkId::new("broadcast", subscribers), |b| {
            let (tx, drainer) = fixture.get_or_insert_with(|| {
                let broadcast = BroadcastFanout::<livecore::Row>::new(subscribers, 1024);
                let drainer =
                    Drainer::spawn(broadcast.receivers, |receivers| drain_broadcast(receivers));
                (broadcast.tx, drainer)
            });
            b.iter_custom(|iters| {
                drainer.run(iters, fanout, WINDOW, |i| {
                    tx.send(Arc::new(live_row(i as i64))).unwrap_or(0) as u64
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = fanout_publisher, fanout_end_to_end
}
fn main() {
    common::bench_main("fanout", &[benches]);
}
