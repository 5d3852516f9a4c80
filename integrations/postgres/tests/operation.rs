//! Restarts, lost connections, a vanished slot, and clients resuming from their SeqId.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use livecore::*;
use livecore_postgres::{PgError, ResumeOutcome};

const SYNC: Duration = Duration::from_secs(60);

async fn table(client: &tokio_postgres::Client, schema: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.items (id bigint PRIMARY KEY, grp int, body text);
             ALTER TABLE {schema}.items REPLICA IDENTITY FULL;"
        ))
        .await
        .unwrap();
}

/// Inserts, moves between groups and deletes, one transaction at a time.
async fn write(schema: String, transactions: usize, done: Arc<AtomicUsize>) {
    let client = sql().await;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for n in 0..transactions as u64 {
        let id = 1 + rng.below(n + 1);
        let statement = match rng.below(4) {
            0 | 1 => format!(
                "INSERT INTO {schema}.items VALUES ({n} + 1, {}, 'w') ON CONFLICT DO NOTHING",
                rng.below(3)
            ),
            2 => format!(
                "UPDATE {schema}.items SET grp = {}, body = body || '.' WHERE id = {id}",
                rng.below(3)
            ),
            _ => format!("DELETE FROM {schema}.items WHERE id = {id}"),
        };
        client.batch_execute(&statement).await.unwrap();
        done.fetch_add(1, Ordering::Release);
    }
}

async fn until(done: &AtomicUsize, count: usize) {
    for _ in 0..6000 {
        if done.load(Ordering::Acquire) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the writer did not reach {count} transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_source_mid_stream_loses_and_repeats_nothing() {
    let client = fresh("restart").await;
    table(&client, "restart").await;
    let manager = manager();
    let first = start(&manager, config("restart", &["items"])).await;
    let all = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM restart.items",
        SubscriptionOptions::default(),
    );
    let grp1 = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM restart.items WHERE grp = 1",
        SubscriptionOptions::default(),
    );
    let done = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write("restart".into(), 600, done.clone()));

    until(&done, 150).await;
    for _ in 0..6000 {
        if first.stats().published_commits >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = first.stop().await.unwrap();
    assert!(last.is_some(), "the first run published");
    let mut config = config("restart", &["items"]);
    config.resume_after = last;
    let second = start(&manager, config).await;

    until(&done, 400).await;
    // A lost connection: PostgreSQL ends the walsender; the source reconnects to the slot,
    // which sends again what was not yet acknowledged.
    // (The second run's session may still be connecting: retry, bounded.)
    let mut terminated = 0;
    for _ in 0..1000 {
        terminated = client
            .query(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE slot_name = 'restart_slot' AND active",
                &[],
            )
            .await
            .unwrap()
            .len();
        if terminated == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(terminated, 1, "the walsender was running");
    writer.await.unwrap();
    second.sync(SYNC).await.unwrap();
    assert!(second.stats().reconnects >= 1, "{:?}", second.stats());
    assert_eq!(second.failure(), None);
    // Caught up, nothing in flight, also if the walsender was ended inside a transaction
    // (which the slot then sends again: begun twice, handed to livecore once).
    assert_eq!(second.stats().lag_commits, 0, "{:?}", second.stats());

    let items = TableId::new("restart", "items");
    for (subscriber, filter) in [(all, "true"), (grp1, "grp = 1")] {
        let view = subscriber.finish();
        assert!(view.errors.is_empty(), "{filter}: {:?}", view.errors);
        assert!(view.other.is_empty(), "{filter}: {:?}", view.other);
        assert_eq!(
            view.rows,
            pg_rows(&client, &second, &items, filter).await,
            "{filter}"
        );
    }
    second.stop_and_drop().await.unwrap();
}

/// The history keeps a copy of every change it holds: bounded by commits alone, a few
/// bulk transactions would stay in memory for 10,000 commits. `history_changes` bounds
/// the changes too; a bulk commit over it is not kept, and a client resuming from before
/// it is told `ResumeUnavailable`, while one that saw it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_transaction_leaves_the_history_at_its_change_bound() {
    let client = fresh("bulkh").await;
    table(&client, "bulkh").await;
    let manager = manager();
    let mut config = config("bulkh", &["items"]);
    config.history_changes = 100;
    let source = start(&manager, config).await;
    let all = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM bulkh.items",
        SubscriptionOptions::default(),
    );
    for id in 1..=3 {
        client
            .batch_execute(&format!("INSERT INTO bulkh.items VALUES ({id}, 0, 'a')"))
            .await
            .unwrap();
    }
    client
        .batch_execute(
            "INSERT INTO bulkh.items SELECT g, 1, 'bulk' FROM generate_series(10, 1009) g",
        )
        .await
        .unwrap();
    for id in 2000..=2001 {
        client
            .batch_execute(&format!("INSERT INTO bulkh.items VALUES ({id}, 0, 'c')"))
            .await
            .unwrap();
    }
    source.sync(SYNC).await.unwrap();
    let stats = source.stats();
    assert_eq!(
        (stats.history_len, stats.history_changes),
        (2, 2),
        "{stats:?}"
    );
    let seen = all.finish();
    let sizes: Vec<usize> = seen.deliveries.iter().map(|(_, n)| *n).collect();
    assert_eq!(sizes, vec![1, 1, 1, 1000, 1, 1]);
    // From before the bulk commit: gone.
    let before = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM bulkh.items",
        SubscriptionOptions::resume_from(SeqId(seen.deliveries[2].0)),
    );
    assert_eq!(
        source.resume(before.live_query_id).await.unwrap(),
        ResumeOutcome::Unavailable
    );
    // From the bulk commit: the two after it.
    let after = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM bulkh.items",
        SubscriptionOptions::resume_from(SeqId(seen.deliveries[3].0)),
    );
    assert_eq!(
        source.resume(after.live_query_id).await.unwrap(),
        ResumeOutcome::Replayed { commits: 2 }
    );
    source.sync(SYNC).await.unwrap();
    assert_eq!(
        after.finish().rows.keys().copied().collect::<Vec<_>>(),
        vec![2000, 2001]
    );
    drop(before.finish());
    source.stop_and_drop().await.unwrap();
}

/// A load's temporary slot is created once every transaction holding a transaction id has
/// ended: a session left idle in a write transaction held every load, and its gated
/// subscription, forever. Past `load_slot_patience` the load fails with a typed error and
/// ends its subscription; once the writer is gone, loads work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_behind_a_transaction_left_open_fails_instead_of_waiting_forever() {
    let client = fresh("idlew").await;
    table(&client, "idlew").await;
    let manager = manager();
    let mut config = config("idlew", &["items"]);
    config.load_slot_patience = Duration::from_secs(1);
    let source = start(&manager, config).await;
    // A write transaction left open (it holds a transaction id) until the end of the load.
    let writer = sql().await;
    writer
        .batch_execute("BEGIN; INSERT INTO idlew.items VALUES (1, 0, 'open')")
        .await
        .unwrap();
    // The load slots left (each with the walsender creating it): none once a waiting
    // backend is cancelled. (Bounded: a cancel takes effect at once, but the slot goes as
    // its backend ends.)
    let no_load_slot_left = || async {
        let load_slots = "SELECT count(*) FROM pg_replication_slots \
                          WHERE slot_name LIKE 'idlew\\_slot\\_load\\_%'";
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left: i64 = client.query_one(load_slots, &[]).await.unwrap().get(0);
            if left == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{left} load slots left while the transaction is open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // A load the host gives up on (its future dropped while the slot is being created)
    // ends its subscription, which would stay gated otherwise, and has its waiting backend
    // cancelled as a timed-out one does.
    let abandoned = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM idlew.items",
        SubscriptionOptions::with_initial_load(),
    );
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        source.load(abandoned.live_query_id),
    );
    assert!(
        gave_up.await.is_err(),
        "the load waits for the open transaction"
    );
    assert!(manager.subscription(abandoned.live_query_id).is_err());
    no_load_slot_left().await;
    drop(abandoned.finish());
    // Given up on sooner, in whatever step the load had reached (connecting, asking for
    // its session's process, sending the slot's creation): the same.
    for wait in [0, 2, 10, 40] {
        let hasty = Subscriber::open(
            &manager,
            "u",
            "SELECT * FROM idlew.items",
            SubscriptionOptions::with_initial_load(),
        );
        let gave_up = tokio::time::timeout(
            Duration::from_millis(wait),
            source.load(hasty.live_query_id),
        );
        assert!(
            gave_up.await.is_err(),
            "the load waits for the open transaction"
        );
        assert!(manager.subscription(hasty.live_query_id).is_err());
        drop(hasty.finish());
    }
    no_load_slot_left().await;
    let stuck = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM idlew.items",
        SubscriptionOptions::with_initial_load(),
    );
    // (A bound only so that a load that never ends fails the test instead of hanging it.)
    let load = tokio::time::timeout(Duration::from_secs(120), source.load(stuck.live_query_id));
    match load.await.expect("the load ends") {
        Err(PgError::Replication(reason)) => {
            assert!(reason.contains("load slot waited"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(manager.subscription(stuck.live_query_id).is_err());
    // The waiting backend was cancelled: no load slot (nor its walsender) is left behind
    // while the transaction is still open.
    no_load_slot_left().await;
    writer.batch_execute("COMMIT").await.unwrap();
    let loaded = Subscriber::loaded(&manager, &source, "u", "SELECT * FROM idlew.items").await;
    // Loading it again (a host's mistake) is refused before anything starts, and the
    // live subscription goes on (the rows below reach it).
    match source.load(loaded.live_query_id).await {
        Err(PgError::Config(reason)) => assert!(reason.contains("not waiting"), "{reason}"),
        other => panic!("{other:?}"),
    }
    client
        .batch_execute("INSERT INTO idlew.items VALUES (2, 0, 'after')")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let view = loaded.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(view.rows.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    drop(stuck.finish());
    assert!(source.failure().is_none(), "{:?}", source.failure());
    source.stop_and_drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resume_from_the_history_or_are_told_it_is_gone() {
    let client = fresh("resume").await;
    table(&client, "resume").await;
    let manager = manager();
    let mut config = config("resume", &["items"]);
    config.history_commits = 5;
    let source = start(&manager, config).await;
    let first = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM resume.items",
        SubscriptionOptions::default(),
    );
    for id in 1..=3 {
        client
            .batch_execute(&format!("INSERT INTO resume.items VALUES ({id}, 0, 'a')"))
            .await
            .unwrap();
    }
    source.sync(SYNC).await.unwrap();
    let before = first.finish();
    let last_seen = SeqId(before.last_seq.expect("three commits seen"));

    // The client is away for three commits, then resumes from its last SeqId.
    for id in 4..=6 {
        client
            .batch_execute(&format!("INSERT INTO resume.items VALUES ({id}, 0, 'b')"))
            .await
            .unwrap();
    }
    source.sync(SYNC).await.unwrap();
    let resumed = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM resume.items",
        SubscriptionOptions::resume_from(last_seen),
    );
    assert_eq!(
        source.resume(resumed.live_query_id).await.unwrap(),
        ResumeOutcome::Replayed { commits: 3 }
    );
    client
        .batch_execute("INSERT INTO resume.items VALUES (7, 0, 'c')")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let view = resumed.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(
        view.rows.keys().copied().collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    assert_eq!(
        view.deliveries.len(),
        4,
        "each missed commit once, then the live one"
    );

    // Beyond the history (5 commits): ResumeUnavailable.
    for id in 8..=14 {
        client
            .batch_execute(&format!("INSERT INTO resume.items VALUES ({id}, 0, 'd')"))
            .await
            .unwrap();
    }
    source.sync(SYNC).await.unwrap();
    let late = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM resume.items",
        SubscriptionOptions::resume_from(last_seen),
    );
    assert_eq!(
        source.resume(late.live_query_id).await.unwrap(),
        ResumeOutcome::Unavailable
    );
    source.sync(SYNC).await.unwrap();
    let view = late.finish();
    assert!(view.rows.is_empty());
    assert_eq!(view.other.len(), 1);
    assert!(
        view.other[0].contains("resume_unavailable"),
        "{:?}",
        view.other
    );
    source.stop_and_drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_that_disappears_is_a_typed_error_for_the_host() {
    let client = fresh("vanish").await;
    table(&client, "vanish").await;
    let manager = manager();
    let mut config = config("vanish", &["items"]);
    config.max_reconnect_backoff = Duration::from_millis(200);
    let source = start(&manager, config).await;
    client
        .batch_execute("INSERT INTO vanish.items VALUES (1, 0, 'a')")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    // End the session and drop the slot before the source gets it back (bounded retries).
    let mut dropped = false;
    for _ in 0..200 {
        client
            .batch_execute(
                // Waits (up to 5 s) for the walsender to exit; the source's first
                // reconnection waits 50 ms, so the drop below usually wins.
                "SELECT pg_terminate_backend(active_pid, 5000) FROM pg_replication_slots \
                 WHERE slot_name = 'vanish_slot' AND active",
            )
            .await
            .unwrap();
        if client
            .batch_execute("SELECT pg_drop_replication_slot('vanish_slot')")
            .await
            .is_ok()
        {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the slot could be dropped");
    let error = tokio::time::timeout(Duration::from_secs(60), source.failed())
        .await
        .expect("the failure reaches the host");
    assert!(matches!(error, PgError::SlotMissing(_)), "{error}");
    assert_eq!(source.failure(), Some(error));
}

/// The slot's confirmed position, as PostgreSQL reports it.
async fn confirmed_flush(client: &tokio_postgres::Client, slot: &str) -> u64 {
    let row = client
        .query_one(
            "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    row.get::<_, String>(0).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_source_cannot_map_is_a_typed_error_and_no_gap() {
    let client = fresh("unmapped").await;
    client
        .batch_execute(
            "CREATE TABLE unmapped.items (id bigint PRIMARY KEY, grp int, body text);
             ALTER TABLE unmapped.items REPLICA IDENTITY FULL;
             CREATE TABLE unmapped.other (id bigint PRIMARY KEY, grp int, body text);
             ALTER TABLE unmapped.other REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let manager = manager();
    let first = start(&manager, config("unmapped", &["items", "other"])).await;
    let items = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM unmapped.items",
        SubscriptionOptions::default(),
    );
    let other = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM unmapped.other",
        SubscriptionOptions::default(),
    );
    client
        .batch_execute("INSERT INTO unmapped.items VALUES (1, 0, 'a')")
        .await
        .unwrap();
    first.sync(SYNC).await.unwrap();
    let published = first.last_published().expect("the first commit");

    // A column of a type without a mapping (an array) reaches the stream with the next
    // change of the table: the relation message inside that transaction brings it. The
    // commit after it, on another table, must not be delivered past it either.
    client
        .batch_execute("ALTER TABLE unmapped.items ADD COLUMN tags text[]")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO unmapped.items VALUES (2, 0, 'b', '{x,\"y z\"}')")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO unmapped.other VALUES (1, 0, 'after')")
        .await
        .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(60), first.failed())
        .await
        .expect("the failure reaches the host");
    assert_eq!(
        error,
        PgError::UnsupportedType {
            table: "unmapped.items".into(),
            column: "tags".into(),
            type_name: "_text".into()
        }
    );
    assert_eq!(first.failure(), Some(error.clone()));
    // A host waiting for its writes is told too, rather than left waiting.
    assert_eq!(first.sync(SYNC).await, Err(error));
    let stats = first.stats();
    assert_eq!(stats.published_commits, 1, "{stats:?}");
    assert_eq!(stats.last_published, Some(published), "{stats:?}");
    // The transaction it stopped in was begun on the stream and never handed to livecore.
    assert_eq!(stats.lag_commits, 1, "{stats:?}");
    drop(first);
    let confirmed = confirmed_flush(&client, "unmapped_slot").await;

    // Not a gap: the slot still holds the transaction. A source restarted on it (here
    // told to carry unmapped types as text) delivers it, then the commit after it, to the
    // same subscribers.
    let mut config = config("unmapped", &["items", "other"]);
    config.resume_after = Some(published);
    config.unsupported_as_text = true;
    let second = start(&manager, config).await;
    second.sync(SYNC).await.unwrap();
    assert_eq!(second.failure(), None);
    let items = items.finish();
    let other = other.finish();
    for view in [&items, &other] {
        assert!(view.errors.is_empty(), "{:?}", view.errors);
        assert_eq!(view.closed, None);
    }
    assert_eq!(items.deliveries.len(), 2, "{:?}", items.deliveries);
    assert_eq!(items.deliveries[0].0, published.0);
    let failed_at = items.deliveries[1].0;
    assert!(
        failed_at > confirmed,
        "the slot never confirmed the commit the source failed at ({failed_at} <= {confirmed})"
    );
    assert_eq!(
        items.rows[&2],
        ["i:2", "i:0", "t:b", "t:{x,\"y z\"}"],
        "the row, its array as PostgreSQL's text"
    );
    assert_eq!(other.deliveries.len(), 1, "{:?}", other.deliveries);
    assert!(other.deliveries[0].0 > failed_at);
    assert_eq!(other.rows[&1], ["i:1", "i:0", "t:after"]);
    second.stop().await.unwrap();
    client
        .batch_execute(
            "SELECT pg_drop_replication_slot('unmapped_slot');
             DROP PUBLICATION unmapped_pub;",
        )
        .await
        .unwrap();
}
