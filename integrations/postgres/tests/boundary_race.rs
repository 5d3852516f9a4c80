//! The exactly-once snapshot boundary on a real engine: writers keep committing inserts,
//! updates (entering and leaving filters) and deletes on several tables while subscriptions
//! with initial loads open; every subscriber's view must end equal to the filter applied to
//! PostgreSQL's final state, with no duplicate and no gap on the way.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use livecore::*;

const TABLES: [&str; 3] = ["t0", "t1", "t2"];
const FILTERS: [&str; 4] = [
    "grp = 1",
    "val > 50",
    "grp IN (2, 3) AND val <= 70",
    "id > 0",
];

async fn writer(seed: u64, transactions: usize, next_id: Arc<std::sync::atomic::AtomicI64>) {
    let client = sql().await;
    let mut rng = Rng(seed);
    for _ in 0..transactions {
        let mut statements = vec!["BEGIN".to_string()];
        for _ in 0..1 + rng.below(3) {
            let table = TABLES[rng.below(3) as usize];
            let id = 1 + rng.below(next_id.load(Ordering::Relaxed) as u64);
            statements.push(match rng.below(6) {
                0 | 1 => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    format!(
                        "INSERT INTO race.{table} VALUES ({id}, {}, {}, 'r{id}') ON CONFLICT DO NOTHING",
                        rng.below(4),
                        rng.below(100)
                    )
                }
                2 => format!("UPDATE race.{table} SET grp = {} WHERE id = {id}", rng.below(4)),
                3 => format!("UPDATE race.{table} SET val = {} WHERE id = {id}", rng.below(100)),
                4 => format!(
                    "UPDATE race.{table} SET grp = {}, val = {}, body = body || 'x' WHERE id = {id}",
                    rng.below(4),
                    rng.below(100)
                ),
                _ => format!("DELETE FROM race.{table} WHERE id = {id}"),
            });
        }
        statements.push("COMMIT".into());
        client.batch_execute(&statements.join(";")).await.unwrap();
        // Spread the writes over the loads (not a timing assertion: only the mix varies).
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_racing_writers_deliver_every_change_exactly_once() {
    let client = fresh("race").await;
    for table in TABLES {
        client
            .batch_execute(&format!(
                "CREATE TABLE race.{table} (id bigint PRIMARY KEY, grp int, val int, body text);
                 ALTER TABLE race.{table} REPLICA IDENTITY FULL;
                 INSERT INTO race.{table} SELECT g, g % 4, (g * 37) % 100, 'seed' FROM generate_series(1, 300) g;"
            ))
            .await
            .unwrap();
    }
    let manager = manager();
    let source = Arc::new(start(&manager, config("race", &TABLES)).await);
    let next_id = Arc::new(std::sync::atomic::AtomicI64::new(301));

    let writers: Vec<_> = (0..3)
        .map(|w| tokio::spawn(writer(0x9E37_79B9 + w, 250, next_id.clone())))
        .collect();
    // Subscriptions open and load one after another while the writers run.
    let writing = Arc::new(AtomicBool::new(true));
    let loader = {
        let manager = manager.clone();
        let source = source.clone();
        let writing = writing.clone();
        tokio::spawn(async move {
            let mut subscribers = Vec::new();
            let mut n = 0;
            while n < 24 && (writing.load(Ordering::Acquire) || n < 8) {
                let table = TABLES[n % 3];
                let filter = FILTERS[(n / 3) % 4];
                let subscriber = Subscriber::open(
                    &manager,
                    "u",
                    &format!("SELECT * FROM race.{table} WHERE {filter}"),
                    SubscriptionOptions::with_initial_load(),
                );
                let started = std::time::Instant::now();
                let report = source.load(subscriber.live_query_id).await.expect("load");
                eprintln!(
                    "load {n}: boundary {:?} in {:?}",
                    report.boundary,
                    started.elapsed()
                );
                subscribers.push((table, filter, subscriber));
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            subscribers
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    writing.store(false, Ordering::Release);
    let subscribers = loader.await.unwrap();
    source.sync(Duration::from_secs(120)).await.unwrap();
    assert!(subscribers.len() >= 8);

    let mut checked = 0;
    let mut live_changes = 0;
    for (table, filter, subscriber) in subscribers {
        let view = subscriber.finish();
        assert!(
            view.errors.is_empty(),
            "{table} WHERE {filter}: {:?}",
            view.errors
        );
        assert!(view.loaded, "{table} WHERE {filter}: load completed");
        assert!(
            view.other.is_empty(),
            "{table} WHERE {filter}: {:?}",
            view.other
        );
        let expected = pg_rows(&client, &source, &TableId::new("race", table), filter).await;
        assert_eq!(
            view.rows, expected,
            "{table} WHERE {filter}: view equals PostgreSQL"
        );
        live_changes += view.deliveries.len();
        checked += 1;
    }
    eprintln!("{checked} subscriptions checked, {live_changes} live deliveries after their loads");
    assert!(live_changes > 0, "changes crossed the boundaries");
    assert_eq!(source.failure(), None);
    Arc::try_unwrap(source)
        .ok()
        .unwrap()
        .stop_and_drop()
        .await
        .unwrap();
}
