//! A slot PostgreSQL invalidates (its WAL removed past `max_slot_wal_keep_size`): the
//! host gets `SlotInvalidated`, resuming clients get `ResumeUnavailable`, and a new slot
//! starts a new history.
//!
//! Its own test binary: it lowers `max_slot_wal_keep_size` on the shared test cluster for
//! a moment, and cargo runs test binaries one after another, so no other test's slot is
//! exposed to it.

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_postgres::{PgError, PgSource, ResumeOutcome};

const SYNC: Duration = Duration::from_secs(60);

async fn wal_status(client: &tokio_postgres::Client, slot: &str) -> Option<String> {
    client
        .query_opt(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .and_then(|row| row.get(0))
}

/// Lowers the limit, writes WAL into new segments and checkpoints until PostgreSQL marks
/// the slot lost (bounded), then restores the limit. Returns whether it was lost.
async fn invalidate(client: &tokio_postgres::Client, slot: &str) -> bool {
    // (ALTER SYSTEM cannot share a query string: that would be a transaction block.)
    for statement in [
        "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'",
        "SELECT pg_reload_conf()",
    ] {
        client.batch_execute(statement).await.unwrap();
    }
    let mut lost = false;
    for n in 0..100 {
        // Each round writes a change the slot has not confirmed, moves to a new 16 MB
        // segment and checkpoints: the checkpointer removes the old segments and
        // invalidates a slot that still needs them (ending the walsender holding it).
        for statement in [
            format!("INSERT INTO invalid.items VALUES ({}, 0, 'gone')", 1000 + n),
            "SELECT pg_switch_wal()".to_string(),
            "CHECKPOINT".to_string(),
        ] {
            client.batch_execute(&statement).await.unwrap();
        }
        if wal_status(client, slot).await.as_deref() == Some("lost") {
            lost = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for statement in [
        "ALTER SYSTEM RESET max_slot_wal_keep_size",
        "SELECT pg_reload_conf()",
    ] {
        client.batch_execute(statement).await.unwrap();
    }
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_reaches_the_host_and_resuming_clients_start_over() {
    let client = fresh("invalid").await;
    client
        .batch_execute(
            "CREATE TABLE invalid.items (id bigint PRIMARY KEY, grp int, body text);
             ALTER TABLE invalid.items REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let manager = manager();
    let mut config = config("invalid", &["items"]);
    config.max_reconnect_backoff = Duration::from_millis(200);
    let source = start(&manager, config.clone()).await;
    let watcher = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM invalid.items",
        SubscriptionOptions::default(),
    );
    for id in 1..=3 {
        client
            .batch_execute(&format!("INSERT INTO invalid.items VALUES ({id}, 0, 'a')"))
            .await
            .unwrap();
    }
    source.sync(SYNC).await.unwrap();
    let last_seen = SeqId(
        watcher
            .view
            .lock()
            .unwrap()
            .last_seq
            .expect("three commits seen"),
    );

    // Invalidated while the source runs (its walsender is ended by the checkpointer, or
    // between two of its sessions): the stream stops with the typed error.
    assert!(
        invalidate(&client, "invalid_slot").await,
        "PostgreSQL did not invalidate the slot"
    );
    let error = tokio::time::timeout(Duration::from_secs(60), source.failed())
        .await
        .expect("the failure reaches the host");
    assert!(matches!(error, PgError::SlotInvalidated(_)), "{error}");
    assert_eq!(source.failure(), Some(error));

    // A client coming back with its last SeqId: the changes since are gone for good, so it
    // is told to start over rather than replayed up to the failure and left waiting.
    let returning = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM invalid.items",
        SubscriptionOptions::resume_from(last_seen),
    );
    assert_eq!(
        source.resume(returning.live_query_id).await.unwrap(),
        ResumeOutcome::Unavailable
    );
    let published = source.last_published();
    drop(source);
    let view = returning.finish();
    assert!(view.rows.is_empty(), "{:?}", view.rows);
    assert!(
        view.other.len() == 1 && view.other[0].contains("resume_unavailable"),
        "{:?}",
        view.other
    );
    let watched = watcher.finish();
    assert!(watched.errors.is_empty(), "{:?}", watched.errors);

    // Starting again on the invalidated slot is refused with the same typed error.
    let again = PgSource::start(manager.clone(), config.clone()).await;
    assert!(
        matches!(again, Err(PgError::SlotInvalidated(_))),
        "{:?}",
        again.err()
    );

    // The way back (README): drop the slot, start on a new one. Even told the previous
    // run's last SeqId, the new source cannot replay what no slot kept: resuming clients
    // get ResumeUnavailable; an initial load shows PostgreSQL's state.
    client
        .batch_execute("SELECT pg_drop_replication_slot('invalid_slot')")
        .await
        .unwrap();
    config.resume_after = published;
    let fresh_source = start(&manager, config).await;
    let late = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM invalid.items",
        SubscriptionOptions::resume_from(last_seen),
    );
    assert_eq!(
        fresh_source.resume(late.live_query_id).await.unwrap(),
        ResumeOutcome::Unavailable
    );
    let reloaded = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM invalid.items",
        SubscriptionOptions::with_initial_load(),
    );
    fresh_source.load(reloaded.live_query_id).await.unwrap();
    client
        .batch_execute("INSERT INTO invalid.items VALUES (4, 0, 'after')")
        .await
        .unwrap();
    fresh_source.sync(SYNC).await.unwrap();
    let late = late.finish();
    assert!(late.rows.is_empty() && late.other.len() == 1, "{late:?}");
    let view = reloaded.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    let items = TableId::new("invalid", "items");
    assert_eq!(
        view.rows,
        pg_rows(&client, &fresh_source, &items, "true").await
    );
    assert!(view.rows.contains_key(&4) && view.rows.len() > 4);
    fresh_source.stop_and_drop().await.unwrap();
}
