//! Filter evaluation: 1000 subscriptions on one table whose filters no hash route can pin
//! (range, inequality, OR), so every publish evaluates all of them, and none matches.
//! livecore runs its compiled predicates (column positions resolved at subscribe time);
//! the seed design interprets each sqlparser AST against a row map (values looked up by
//! name and cloned, literal numbers parsed per evaluation).
//!
//! The compiled predicate is internal to livecore, so it is measured through `publish`;
//! the figure per evaluation therefore also carries the scan's per-candidate overhead.
//! Throughput is in filter evaluations.

use std::sync::Arc;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use livecore::{ChangeNotification, Expr, SeqId, TableScope};

mod common;

use common::baselines::seed::Dispatch;
use common::{
    criterion_config, live_row, seed_insert, seed_shared_user, LiveBench, SeedBench, READER,
};

const FILTERS: usize = 1000;
const PER_CONNECTION: usize = 10;

/// One filter shape, as a livecore expression and as seed SQL, for subscription `k`; no
/// bench row (score < 1000, room < 100, name `user_<id>`) satisfies any of them.
struct Shape {
    name: &'static str,
    live: fn(i64) -> Expr,
    sql: fn(i64) -> String,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "compare",
        live: |k| Expr::col("score").gt(Expr::lit(1000 + k)),
        sql: |k| format!("score > {}", 1000 + k),
    },
    Shape {
        name: "and3",
        live: |k| {
            Expr::And(vec![
                Expr::col("score").gt_eq(Expr::lit(2000 + k)),
                Expr::col("score").lt(Expr::lit(3000 + k)),
                Expr::col("room").not_eq(Expr::lit(3)),
            ])
        },
        sql: |k| {
            format!(
                "score >= {} AND score < {} AND room <> 3",
                2000 + k,
                3000 + k
            )
        },
    },
    Shape {
        name: "or_text",
        live: |k| {
            Expr::col("name")
                .eq(Expr::lit(format!("nobody_{k}")))
                .or(Expr::col("room").gt(Expr::lit(1000 + k)))
        },
        sql: |k| format!("name = 'nobody_{k}' OR room > {}", 1000 + k),
    },
];

fn filter_eval(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter_eval");
    group.throughput(Throughput::Elements(FILTERS as u64));
    let connections = FILTERS / PER_CONNECTION;
    for shape in &SHAPES {
        let mut live = LiveBench::new("items", TableScope::Shared);
        live.connect_many(connections, |_| READER.to_string());
        for k in 0..FILTERS {
            let spec = live.spec().filter((shape.live)(k as i64));
            live.subscribe(k % connections, spec);
        }
        let (seq, change) = (live.next_seq(), live.insert(5));
        let summary = live.manager.publish(seq, change).expect("publish");
        assert_eq!(
            (summary.evaluated, summary.matched),
            (FILTERS, 0),
            "all scanned, none match"
        );
        let manager = Arc::clone(&live.manager);
        let table = live.table.clone();
        let template = live_row(5);
        let mut seq = 1_000;
        group.bench_function(BenchmarkId::new("livecore", shape.name), |b| {
            b.iter_batched(
                || {
                    seq += 1;
                    (
                        SeqId(seq),
                        ChangeNotification::insert(table.clone(), template.clone()),
                    )
                },
                |(seq, change)| manager.publish(seq, change).expect("publish"),
                criterion::BatchSize::SmallInput,
            )
        });
        drop(live);

        let mut seed = SeedBench::new("items");
        seed.connect_many(connections, |_| READER.to_string());
        for k in 0..FILTERS {
            let query = seed.parse("*", Some(&(shape.sql)(k as i64)));
            seed.subscribe(k % connections, &query);
        }
        let user = seed_shared_user();
        let check = seed_insert(&seed.table, 5, 1);
        let summary = seed
            .registry
            .notify_table_change(&user, &check, Dispatch::Shared);
        assert_eq!(summary.matched, 0);
        let mut seq = 1_000;
        group.bench_function(BenchmarkId::new("seed", shape.name), |b| {
            b.iter_batched(
                || {
                    seq += 1;
                    seed_insert(&seed.table, 5, seq)
                },
                |change| {
                    seed.registry
                        .notify_table_change(&user, &change, Dispatch::Shared)
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = filter_eval
}
fn main() {
    common::bench_main("filter_eval", &[benches]);
}
