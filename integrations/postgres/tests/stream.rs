//! The change stream end to end against a real PostgreSQL (started by ci.sh).

mod common;

use std::time::Duration;

use common::*;
use livecore::*;

const SYNC: Duration = Duration::from_secs(60);

/// The commit LSNs PostgreSQL decodes, read from the Begin messages of a second pgoutput
/// slot (independent of the source under test).
async fn commit_lsns(client: &tokio_postgres::Client, slot: &str, publication: &str) -> Vec<u64> {
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, \
             'proto_version', '1', 'publication_names', $2)",
            &[&slot, &publication],
        )
        .await
        .unwrap();
    rows.iter()
        .filter_map(|row| {
            let data: Vec<u8> = row.get(0);
            (data.first() == Some(&b'B'))
                .then(|| u64::from_be_bytes(data[1..9].try_into().unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_arrives_as_one_commit_numbered_by_its_commit_lsn() {
    let client = fresh("e2e").await;
    client
        .batch_execute(
            "CREATE TABLE e2e.items (id int PRIMARY KEY, grp int, body text);
             ALTER TABLE e2e.items REPLICA IDENTITY FULL;
             CREATE TABLE e2e.other (id int PRIMARY KEY, note text);
             ALTER TABLE e2e.other REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("e2e", &["items", "other"])).await;
    client
        .execute(
            "SELECT pg_create_logical_replication_slot('e2e_check', 'pgoutput')",
            &[],
        )
        .await
        .unwrap();
    let items = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM e2e.items",
        SubscriptionOptions::default(),
    );
    let grp1 = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM e2e.items WHERE grp = 1",
        SubscriptionOptions::default(),
    );

    // One transaction of several statements on two tables.
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO e2e.items VALUES (1, 1, 'a'), (2, 2, 'b');
             INSERT INTO e2e.other VALUES (1, 'x');
             UPDATE e2e.items SET grp = 1 WHERE id = 2;
             COMMIT;",
        )
        .await
        .unwrap();
    // Then an update leaving the filter, and a delete.
    client
        .batch_execute("UPDATE e2e.items SET grp = 3 WHERE id = 1")
        .await
        .unwrap();
    client
        .batch_execute("DELETE FROM e2e.items WHERE id = 2")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();

    let lsns = commit_lsns(&client, "e2e_check", "e2e_pub").await;
    assert_eq!(lsns.len(), 3, "three transactions decoded");
    let all = items.finish();
    assert!(all.errors.is_empty(), "{:?}", all.errors);
    let seqs: Vec<u64> = all.deliveries.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs, lsns,
        "one delivery per transaction, numbered by its commit LSN"
    );
    assert_eq!(
        all.deliveries[0].1, 3,
        "the first transaction's three item changes together"
    );
    assert_eq!(all.rows.keys().copied().collect::<Vec<_>>(), vec![1]);

    let filtered = grp1.finish();
    assert!(filtered.errors.is_empty(), "{:?}", filtered.errors);
    // id 1 inserted in group 1 and id 2 entering it: one delivery; then 1 leaves, 2 is deleted.
    assert_eq!(
        filtered.deliveries,
        vec![(lsns[0], 2), (lsns[1], 1), (lsns[2], 1)]
    );
    assert!(filtered.rows.is_empty());
    assert_eq!(
        pg_rows(&client, &source, &TableId::new("e2e", "items"), "grp = 1").await,
        filtered.rows
    );

    let stats = source.stats();
    assert_eq!(stats.published_commits, 3);
    assert_eq!(stats.last_published, Some(SeqId(lsns[2])));
    assert_eq!(source.failure(), None);
    client
        .execute("SELECT pg_drop_replication_slot('e2e_check')", &[])
        .await
        .unwrap();
    source.stop_and_drop().await.unwrap();
    let left = client
        .query(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'e2e%'",
            &[],
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "the slots it created are dropped");
}
