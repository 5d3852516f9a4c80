//! A user-scoped table with 100k users, one connection and one unfiltered subscription
//! each; every insert is owned by one user and must reach only that user's subscription.
//! livecore interns the owner and looks up its bucket; the seed design looks up the
//! `(user, table)` key in its DashMap (cloning both ids into the key).
//!
//! Throughput is in publishes (one delivery each).

use std::sync::Arc;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use livecore::{ChangeNotification, SeqId, TableScope};

mod common;

use common::baselines::seed::{self, Dispatch};
use common::{
    chunk_for, criterion_config, drain_live_touched, drain_seed_touched, live_row, seed_insert,
    spread, timed_in_chunks, LiveBench, SeedBench,
};

const USERS: usize = 100_000;

fn user_name(index: usize) -> String {
    format!("user_{index}")
}

fn user_scoped(c: &mut Criterion) {
    let mut group = c.benchmark_group("user_scoped");
    group.throughput(Throughput::Elements(1));
    let chunk = chunk_for(1);

    let mut fixture = None;
    let mut seq = 0;
    let mut touched = Vec::new();
    group.bench_function(BenchmarkId::new("livecore", USERS), |b| {
        let (live, owners) = fixture.get_or_insert_with(|| {
            let mut live = LiveBench::new("inbox", TableScope::User);
            live.connect_many(USERS, user_name);
            for connection in 0..USERS {
                let spec = live.spec();
                live.subscribe(connection, spec);
            }
            assert_eq!(live.publish_insert(1, Some(&user_name(7))), 1);
            live.drain();
            let owners: Vec<livecore::UserId> = (0..USERS)
                .map(|u| livecore::UserId::from(user_name(u).as_str()))
                .collect();
            (live, owners)
        });
        let manager = Arc::clone(&live.manager);
        let table = live.table.clone();
        b.iter_custom(|iters| {
            // Shared by the prepare and drain steps: which receivers the chunk reached.
            let targets = std::cell::RefCell::new(Vec::new());
            timed_in_chunks(
                iters,
                chunk,
                |i| {
                    seq += 1;
                    let user = spread(seq, USERS as u64) as usize;
                    targets.borrow_mut().push(user);
                    let change = ChangeNotification::insert(table.clone(), live_row(i as i64))
                        .owned_by(owners[user].clone());
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

    let mut fixture = None;
    group.bench_function(BenchmarkId::new("seed", USERS), |b| {
        let seed = fixture.get_or_insert_with(|| {
            let mut seed = SeedBench::new("inbox");
            seed.connect_many(USERS, user_name);
            for connection in 0..USERS {
                let query = seed.parse("*", None);
                seed.subscribe(connection, &query);
            }
            let user = seed::UserId(user_name(7));
            assert_eq!(seed.publish_insert(&user, 1, Dispatch::Shared), 1);
            seed.drain();
            seed
        });
        let table = seed.table.clone();
        b.iter_custom(|iters| {
            // Shared by the prepare and drain steps: which receivers the chunk reached.
            let targets = std::cell::RefCell::new(Vec::new());
            let registry = &seed.registry;
            let users = &seed.users;
            let receivers = &mut seed.receivers;
            timed_in_chunks(
                iters,
                chunk,
                |i| {
                    seq += 1;
                    let user = spread(seq, USERS as u64) as usize;
                    targets.borrow_mut().push(user);
                    (user, seed_insert(&table, i as i64, seq))
                },
                |(user, change)| {
                    registry.notify_table_change(&users[user], &change, Dispatch::Shared);
                },
                || {
                    touched.append(&mut targets.borrow_mut());
                    drain_seed_touched(receivers, &mut touched);
                },
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = user_scoped
}
fn main() {
    common::bench_main("user_scoped", &[benches]);
}
