//! Subscribe + unsubscribe churn on a table holding 100k equality-filtered subscriptions,
//! while publishing continues.
//!
//! A pair is one subscribe with a query whose filter is already built (livecore: a
//! `QuerySpec` built ahead, compiled inside `subscribe`; seed: a WHERE clause parsed ahead,
//! as its manager reused) and the matching unsubscribe, on a connection of its own.
//!
//! - `churn_pairs`: pairs per second, on an idle table and with another thread publishing
//!   to it all the while (changes that match no subscription, so no channel needs draining).
//! - `churn_publish_latency`: one publish (matching one subscription), on an idle table and
//!   with another thread churning pairs all the while: publishing must not wait for writers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use livecore::{
    ChangeNotification, ConnectionId, ConnectionsManager, Expr, QuerySpec, SeqId, TableId,
};

mod common;

use common::baselines::seed::{self, Dispatch, ParsedQuery, SeedRegistry};
use common::{
    chunk_for, criterion_config, drain_live_touched, drain_seed_touched, live_equality, live_row,
    seed_equality, seed_insert, seed_shared_user, spread, timed_in_chunks, LiveBench, SeedBench,
    READER,
};

const SUBSCRIPTIONS: usize = 100_000;
const PER_CONNECTION: usize = 10;
/// Churned subscriptions pin constants no row of the bench carries.
const CHURN_BASE: i64 = 10_000_000;

/// A thread that runs `work(round)` until stopped: the concurrent publisher or churner.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    fn spawn(mut work: impl FnMut(u64) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut round = 0;
                while !stop.load(Ordering::Acquire) {
                    work(round);
                    round += 1;
                }
            })
        };
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn churn_spec(table: &TableId, j: u64) -> QuerySpec {
    QuerySpec::table(table.clone()).filter(Expr::col("id").eq(Expr::lit(CHURN_BASE + j as i64)))
}

fn live_pair(manager: &ConnectionsManager, connection: ConnectionId, spec: QuerySpec) {
    let result = manager
        .subscribe(connection, spec, Default::default())
        .expect("subscribe");
    manager
        .unsubscribe(result.live_query_id)
        .expect("unsubscribe");
}

fn seed_pair(
    registry: &SeedRegistry,
    connection: &seed::ConnectionId,
    table: &seed::TableId,
    query: &ParsedQuery,
) {
    let live_id = registry.subscribe(connection, table, query, false);
    registry.unsubscribe(&live_id);
}

fn live_fixture() -> (LiveBench, ConnectionId) {
    let mut live = live_equality("items", SUBSCRIPTIONS, PER_CONNECTION);
    let churner = live.connect(READER);
    let connection = live.connections[churner];
    (live, connection)
}

fn seed_fixture() -> (SeedBench, usize) {
    let mut seed = seed_equality("items", SUBSCRIPTIONS, PER_CONNECTION);
    let churner = seed.connect(READER);
    (seed, churner)
}

/// Publishes, forever, changes that match no subscription (ids below zero).
fn live_background_publisher(manager: Arc<ConnectionsManager>, table: TableId) -> Background {
    let mut seq = u64::MAX / 2;
    Background::spawn(move |round| {
        seq += 1;
        let change =
            ChangeNotification::insert(table.clone(), live_row(-1 - (round % 1000) as i64));
        manager.publish(SeqId(seq), change).expect("publish");
    })
}

fn churn_pairs(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn_pairs");
    group.throughput(Throughput::Elements(1));
    let chunk = 1024;

    let mut fixture = None;
    for publishing in [false, true] {
        let name = if publishing {
            "livecore_publishing"
        } else {
            "livecore_idle"
        };
        let mut j = 0;
        group.bench_function(BenchmarkId::new(name, SUBSCRIPTIONS), |b| {
            let (live, connection) = fixture.get_or_insert_with(live_fixture);
            let connection = *connection;
            let manager = Arc::clone(&live.manager);
            let _publisher = publishing
                .then(|| live_background_publisher(Arc::clone(&manager), live.table.clone()));
            let table = live.table.clone();
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    chunk,
                    |_| {
                        j += 1;
                        churn_spec(&table, j)
                    },
                    |spec| live_pair(&manager, connection, spec),
                    || {},
                )
            })
        });
    }
    drop(fixture);

    let mut fixture = None;
    for publishing in [false, true] {
        let name = if publishing {
            "seed_publishing"
        } else {
            "seed_idle"
        };
        let mut j = 0;
        group.bench_function(BenchmarkId::new(name, SUBSCRIPTIONS), |b| {
            let (seed, churner) = fixture.get_or_insert_with(seed_fixture);
            let seed: &SeedBench = seed;
            let connection = seed.connections[*churner].clone();
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                if publishing {
                    scope.spawn(|| {
                        let user = seed_shared_user();
                        let mut round = 0u64;
                        while !stop.load(Ordering::Acquire) {
                            round += 1;
                            let change =
                                seed_insert(&seed.table, -1 - (round % 1000) as i64, round);
                            seed.registry
                                .notify_table_change(&user, &change, Dispatch::Shared);
                        }
                    });
                }
                b.iter_custom(|iters| {
                    timed_in_chunks(
                        iters,
                        chunk,
                        |_| {
                            j += 1;
                            seed.parse("*", Some(&format!("id = {}", CHURN_BASE + j)))
                        },
                        |query| seed_pair(&seed.registry, &connection, &seed.table, &query),
                        || {},
                    )
                });
                stop.store(true, Ordering::Release);
            });
        });
    }
    group.finish();
}

fn churn_publish_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn_publish_latency");
    group.throughput(Throughput::Elements(1));
    let chunk = chunk_for(1);
    let connections = SUBSCRIPTIONS.div_ceil(PER_CONNECTION) as u64;

    let mut fixture = None;
    let mut seq = 0;
    let mut touched = Vec::new();
    for churning in [false, true] {
        let name = if churning {
            "livecore_churning"
        } else {
            "livecore_idle"
        };
        group.bench_function(BenchmarkId::new(name, SUBSCRIPTIONS), |b| {
            let (live, connection) = fixture.get_or_insert_with(live_fixture);
            let manager = Arc::clone(&live.manager);
            let table = live.table.clone();
            let _churner = churning.then(|| {
                let (manager, table, connection) =
                    (Arc::clone(&manager), table.clone(), *connection);
                Background::spawn(move |round| {
                    live_pair(&manager, connection, churn_spec(&table, round))
                })
            });
            b.iter_custom(|iters| {
                let targets = std::cell::RefCell::new(Vec::new());
                timed_in_chunks(
                    iters,
                    chunk,
                    |_| {
                        seq += 1;
                        let k = spread(seq, SUBSCRIPTIONS as u64);
                        targets.borrow_mut().push((k % connections) as usize);
                        (
                            SeqId(seq),
                            ChangeNotification::insert(table.clone(), live_row(k as i64)),
                        )
                    },
                    |(seq, change)| {
                        manager.publish(seq, change).expect("publish");
                    },
                    || {
                        touched.append(&mut targets.borrow_mut());
                        drain_live_touched(&mut live.receivers, &mut touched);
                    },
                )
            })
        });
    }
    drop(fixture);

    let mut fixture = None;
    for churning in [false, true] {
        let name = if churning {
            "seed_churning"
        } else {
            "seed_idle"
        };
        group.bench_function(BenchmarkId::new(name, SUBSCRIPTIONS), |b| {
            let (seed, churner) = fixture.get_or_insert_with(seed_fixture);
            let connection = seed.connections[*churner].clone();
            let SeedBench {
                registry,
                table,
                receivers,
                ..
            } = seed;
            let (registry, table): (&SeedRegistry, &seed::TableId) = (registry, table);
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                if churning {
                    scope.spawn(|| {
                        let mut round = 0u64;
                        while !stop.load(Ordering::Acquire) {
                            round += 1;
                            let query = seed::parse_query(&format!(
                                "SELECT * FROM bench.items WHERE id = {}",
                                CHURN_BASE + round as i64
                            ))
                            .expect("parses");
                            seed_pair(registry, &connection, table, &query);
                        }
                    });
                }
                let user = seed_shared_user();
                b.iter_custom(|iters| {
                    let targets = std::cell::RefCell::new(Vec::new());
                    timed_in_chunks(
                        iters,
                        chunk,
                        |_| {
                            seq += 1;
                            let k = spread(seq, SUBSCRIPTIONS as u64);
                            targets.borrow_mut().push((k % connections) as usize);
                            seed_insert(table, k as i64, seq)
                        },
                        |change| {
                            registry.notify_table_change(&user, &change, Dispatch::Shared);
                        },
                        || {
                            touched.append(&mut targets.borrow_mut());
                            drain_seed_touched(receivers, &mut touched);
                        },
                    )
                });
                stop.store(true, Ordering::Release);
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = churn_pairs, churn_publish_latency
}
fn main() {
    common::bench_main("churn", &[benches]);
}
