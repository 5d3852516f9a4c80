//! Replication lag as the source exposes it: `slot_lag_bytes()` while PostgreSQL holds
//! commits the source cannot read yet and after it caught up; `stats()`'s `lag_commits`
//! and `lag_bytes`. Its own test binary, so no other test's writes or sync messages move
//! the positions it compares.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::*;
use livecore::*;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig};
use tokio_postgres::config::Host;

const SYNC: Duration = Duration::from_secs(60);
/// Commits written while the source cannot read the slot, about 1.6 kB of WAL each.
const BACKLOG: usize = 40;

/// A position as a number: `pg_lsn - '0/0'`.
async fn lsn(client: &tokio_postgres::Client, expression: &str) -> u64 {
    let row = client
        .query_one(&format!("SELECT ({expression} - '0/0')::text"), &[])
        .await
        .unwrap();
    row.get::<_, String>(0).parse().unwrap()
}

async fn confirmed_flush(client: &tokio_postgres::Client) -> u64 {
    lsn(
        client,
        "(SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'lag_slot')",
    )
    .await
}

/// Waits until `check` holds, polling for at most 60 s.
async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..3000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 60 s: {what}");
}

/// A replication session of the test's own that holds the slot and confirms nothing
/// beyond `confirmed`: while it runs, the source's sessions are refused (the slot is
/// active) and PostgreSQL keeps every commit for the slot.
async fn hold_slot(confirmed: u64) -> ReplicationClient {
    let config = tokio_postgres::Config::from_str(&url()).unwrap();
    let host = match &config.get_hosts()[0] {
        Host::Tcp(host) => host.clone(),
        #[cfg(unix)]
        Host::Unix(path) => path.display().to_string(),
    };
    let replication = ReplicationConfig::new(
        host,
        config.get_user().unwrap(),
        String::from_utf8(config.get_password().unwrap().to_vec()).unwrap(),
        config.get_dbname().unwrap(),
        "lag_slot",
        "lag_pub",
    )
    .with_port(config.get_ports()[0])
    .with_ack_lsn(Lsn(confirmed));
    let mut client = ReplicationClient::connect(replication).await.unwrap();
    client
        .wait_started()
        .await
        .expect("the test holds the slot");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_figures_follow_what_postgres_holds_and_return_to_zero_after_catching_up() {
    let client = fresh("lag").await;
    // Each commit flushed before it returns, so pg_current_wal_lsn() has passed it.
    client
        .batch_execute(
            "SET synchronous_commit = on;
             CREATE TABLE lag.items (id bigint PRIMARY KEY, body text);
             ALTER TABLE lag.items REPLICA IDENTITY FULL;
             CREATE TABLE lag.untracked (id bigint);
             CREATE PUBLICATION lag_pub FOR TABLE lag.items;",
        )
        .await
        .unwrap();
    client
        .batch_execute("SELECT pg_create_logical_replication_slot('lag_slot', 'pgoutput')")
        .await
        .unwrap();
    let created = confirmed_flush(&client).await;
    let mut blocker = hold_slot(created).await;

    let manager = manager();
    let mut config = config("lag", &["items"]);
    config.max_reconnect_attempts = 100_000;
    config.max_reconnect_backoff = Duration::from_millis(50);
    let source = start(&manager, config).await;
    let all = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM lag.items",
        SubscriptionOptions::default(),
    );

    // PostgreSQL holds commits the source cannot read: the slot's byte lag covers them.
    let before = lsn(&client, "pg_current_wal_lsn()").await;
    for id in 0..BACKLOG {
        client
            .batch_execute(&format!(
                "INSERT INTO lag.items SELECT {id}, string_agg(md5(g::text), '') \
                 FROM generate_series(1, 48) g"
            ))
            .await
            .unwrap();
    }
    let after = lsn(&client, "pg_current_wal_lsn()").await;
    let backlog = after - before;
    assert!(backlog > (BACKLOG * 1536) as u64, "{backlog} bytes of WAL");
    // The source is running and being refused the slot, not idle.
    wait_for("the source retries the held slot", || async {
        source.stats().reconnects >= 2
    })
    .await;
    let slot_lag = source.slot_lag_bytes().await.unwrap();
    assert!(
        slot_lag >= backlog,
        "slot lag {slot_lag} bytes while PostgreSQL holds {backlog} bytes of commits"
    );
    let stats = source.stats();
    assert_eq!(stats.received_commits, 0, "{stats:?}");
    assert_eq!(stats.published_commits, 0, "{stats:?}");
    // lag_commits counts only a transaction begun on the stream, not the ones PostgreSQL
    // holds; lag_bytes only what the stream reported (nothing yet).
    assert_eq!(stats.lag_commits, 0, "{stats:?}");
    assert_eq!((stats.server_wal_end, stats.lag_bytes), (0, 0), "{stats:?}");
    assert_eq!(stats.acknowledged, created, "{stats:?}");

    // The slot is released: the source reads the backlog and catches up.
    blocker.shutdown().await.unwrap();
    let synced = source.sync(SYNC).await.unwrap();
    let stats = source.stats();
    assert_eq!(stats.published_commits, BACKLOG as u64, "{stats:?}");
    assert_eq!(stats.received_commits, BACKLOG as u64, "{stats:?}");
    assert_eq!(stats.lag_commits, 0, "{stats:?}");
    assert!(
        stats.acknowledged >= synced,
        "{stats:?}, synced to {synced}"
    );
    // Nothing before the sync point is unconfirmed: at most the WAL written since.
    let now = lsn(&client, "pg_current_wal_lsn()").await;
    assert!(
        stats.lag_bytes <= now - synced,
        "{stats:?}, synced to {synced}, WAL at {now}"
    );
    // PostgreSQL has the confirmation (status updates every 100 ms): the slot's lag is back
    // to the WAL written since the sync point, far below the backlog.
    wait_for("PostgreSQL records the confirmed position", || async {
        confirmed_flush(&client).await >= synced
    })
    .await;
    let slot_lag = source.slot_lag_bytes().await.unwrap();
    let now = lsn(&client, "pg_current_wal_lsn()").await;
    assert!(
        slot_lag <= now - synced,
        "slot lag {slot_lag}, synced to {synced}, WAL at {now}"
    );
    assert!(slot_lag < backlog, "slot lag {slot_lag} after catching up");

    // WAL the stream has passed without anything to publish (a table outside the
    // publication): the server reports it on the stream, the source has not confirmed it,
    // so lag_bytes rises above 0 with no commit in flight; a sync confirms it again.
    client
        .batch_execute("INSERT INTO lag.untracked VALUES (1)")
        .await
        .unwrap();
    wait_for(
        "the stream reports WAL past the confirmed position",
        || async { source.stats().lag_bytes > 0 },
    )
    .await;
    let stats = source.stats();
    assert_eq!(
        stats.lag_bytes,
        stats.server_wal_end - stats.acknowledged,
        "{stats:?}"
    );
    assert_eq!(stats.published_commits, BACKLOG as u64, "{stats:?}");
    assert_eq!(stats.lag_commits, 0, "{stats:?}");
    let synced = source.sync(SYNC).await.unwrap();
    let stats = source.stats();
    let now = lsn(&client, "pg_current_wal_lsn()").await;
    assert!(
        stats.acknowledged >= synced,
        "{stats:?}, synced to {synced}"
    );
    assert!(
        stats.lag_bytes <= now - synced,
        "{stats:?}, synced to {synced}, WAL at {now}"
    );

    let view = all.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(view.rows.len(), BACKLOG);
    assert_eq!(view.deliveries.len(), BACKLOG, "one delivery per commit");
    source.stop().await.unwrap();
    client
        .batch_execute(
            "SELECT pg_drop_replication_slot('lag_slot');
             DROP PUBLICATION lag_pub;",
        )
        .await
        .unwrap();
}
