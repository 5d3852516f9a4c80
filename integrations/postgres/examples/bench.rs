//! Benchmark (not a test): commits per second through decoding and publishing, and latency
//! from COMMIT to delivery with many subscriptions.
//!
//! ```text
//! LIVECORE_PG_URL='host=127.0.0.1 port=54329 user=livecore password=... dbname=postgres' \
//!   cargo run --release -p livecore-postgres --example bench -- --commits 5000 --subscriptions 10000
//! ```
//!
//! 1. Catch-up throughput: the commits are written while the source is stopped (the slot
//!    keeps them), then a source starts and the time until it has published them all
//!    (`sync`) gives commits per second through decoding and publishing. Measured twice:
//!    with no subscription (decoding and publishing alone), then with the `--subscriptions`
//!    subscriptions in place, each commit routed to one of them and delivered to it.
//! 2. Latency: one writer commits one-row transactions, each routed to one of the
//!    subscriptions (`grp = k`); the time from just before the INSERT (an autocommit
//!    transaction) is sent to its delivery on the subscriber's thread.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livecore::*;
use livecore_postgres::{PgSource, SourceConfig, TableConfig};

/// The ids of the rows written for the catch-up with subscriptions (below the latency
/// phase's, which start at 1,000,000).
const CAUGHT_UP_IDS: usize = 500_000;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("LIVECORE_PG_URL").map_err(|_| "set LIVECORE_PG_URL")?;
    let commits = arg("--commits", 2000);
    let subscriptions = arg("--subscriptions", 10_000).max(1);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    // A commit is sent to the slot once its WAL is flushed: with synchronous_commit off
    // (as in ci.sh's throwaway cluster) that waits for the WAL writer's 200 ms cycle.
    client.batch_execute("SET synchronous_commit = on").await?;
    client
        .batch_execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'bench_slot';
             DROP PUBLICATION IF EXISTS bench_pub;
             DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
             CREATE TABLE bench.items (id bigint PRIMARY KEY, grp int, body text);
             ALTER TABLE bench.items REPLICA IDENTITY FULL;",
        )
        .await?;
    let config = SourceConfig::new(
        url.clone(),
        "bench_slot",
        "bench_pub",
        vec![TableConfig::shared("bench", "items")],
    );
    let manager = Arc::new(ConnectionsManager::new(ManagerConfig {
        max_subscriptions_per_connection: subscriptions.div_ceil(10),
        ..ManagerConfig::default()
    })?);

    // Commits written while no source runs, one transaction per insert; then the time a
    // new source takes to publish them all.
    let catch_up = |first_id: usize, body: &'static str| {
        let client = &client;
        let manager = manager.clone();
        let config = config.clone();
        async move {
            let source = PgSource::start(manager.clone(), config.clone()).await?;
            source.stop().await?;
            let batch: Vec<String> = (0..commits)
                .map(|i| {
                    format!(
                        "BEGIN; INSERT INTO bench.items VALUES ({}, {}, '{body}'); COMMIT",
                        first_id + i,
                        i % subscriptions
                    )
                })
                .collect();
            for chunk in batch.chunks(500) {
                client.batch_execute(&chunk.join(";")).await?;
            }
            let started = Instant::now();
            let source = PgSource::start(manager, config).await?;
            source.sync(Duration::from_secs(600)).await?;
            let elapsed = started.elapsed();
            let published = source.stats().published_commits;
            Ok::<_, Box<dyn std::error::Error>>((source, published, elapsed))
        }
    };

    // 1a. Catch-up with no subscription.
    let (source, published, elapsed) = catch_up(0, "catch-up").await?;
    source.stop().await?;
    println!(
        "RESULT catch_up subscriptions=0 commits={published} seconds={:.3} commits_per_second={:.0}",
        elapsed.as_secs_f64(),
        published as f64 / elapsed.as_secs_f64()
    );

    // `subscriptions` subscriptions on 10 connections, each drained by its own thread.
    let delivered: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; commits]));
    let caught_up = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let per_connection = subscriptions.div_ceil(10);
    for c in 0..10 {
        let mut connection = manager.register_connection()?;
        manager.authenticate(connection.connection_id, UserId::from("bench"), None)?;
        for k in c * per_connection..((c + 1) * per_connection).min(subscriptions) {
            manager.subscribe_sql(
                connection.connection_id,
                &format!("SELECT id FROM bench.items WHERE grp = {k} AND body = 'live'"),
                SubscriptionOptions::default(),
            )?;
        }
        let delivered = delivered.clone();
        let caught_up = caught_up.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || loop {
            match connection
                .notifications
                .recv_timeout(Duration::from_millis(50))
            {
                Ok(Notification::Changes(changes)) => {
                    let now = Instant::now();
                    for change in changes.changes() {
                        if let Some(Value::Int(id)) = change.row.get("id") {
                            let id = *id as usize;
                            if (CAUGHT_UP_IDS..1_000_000).contains(&id) {
                                caught_up.fetch_add(1, Ordering::AcqRel);
                            }
                            let slot = id.wrapping_sub(1_000_000);
                            if let Some(entry) = delivered.lock().unwrap().get_mut(slot) {
                                *entry = Some(now);
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(_) if stop.load(Ordering::Acquire) => return,
                Err(_) => {}
            }
        }));
    }

    // 1b. Catch-up with the subscriptions in place: every commit matches one of them.
    let (source, published, elapsed) = catch_up(CAUGHT_UP_IDS, "live").await?;
    println!(
        "RESULT catch_up subscriptions={subscriptions} commits={published} seconds={:.3} commits_per_second={:.0}",
        elapsed.as_secs_f64(),
        published as f64 / elapsed.as_secs_f64()
    );

    // 2. Latency with the subscriptions.
    let mut sent = Vec::with_capacity(commits);
    for i in 0..commits {
        sent.push(Instant::now());
        client
            .batch_execute(&format!(
                "INSERT INTO bench.items VALUES ({}, {}, 'live')",
                1_000_000 + i,
                i % subscriptions
            ))
            .await?;
    }
    source.sync(Duration::from_secs(600)).await?;
    stop.store(true, Ordering::Release);
    for thread in threads {
        thread.join().unwrap();
    }
    let delivered = std::mem::take(&mut *delivered.lock().unwrap());
    let mut latencies: Vec<Duration> = sent
        .iter()
        .zip(delivered.iter())
        .filter_map(|(sent, got)| got.map(|got| got - *sent))
        .collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "RESULT latency subscriptions={subscriptions} commits={} delivered={} p50_us={} p99_us={} max_us={}",
        commits,
        latencies.len(),
        pick(0.5).as_micros(),
        pick(0.99).as_micros(),
        pick(1.0).as_micros()
    );
    println!(
        "RESULT catch_up_deliveries={} (of {commits})",
        caught_up.load(Ordering::Acquire)
    );
    source.stop_and_drop().await?;
    Ok(())
}
