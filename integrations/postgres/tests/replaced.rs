//! A published table renamed, moved, dropped and created again, or retyped while the
//! source runs, and the publication dropped: each reaches the host as a typed error or a
//! closed subscription, never as changes skipped without a trace.

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_postgres::PgError;

const SYNC: Duration = Duration::from_secs(60);

async fn items_table(client: &tokio_postgres::Client, schema: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.items (id int PRIMARY KEY, v text);
             ALTER TABLE {schema}.items REPLICA IDENTITY FULL;"
        ))
        .await
        .unwrap();
}

/// Why the source stopped, waited for with a bound.
async fn failure_in_time(source: &livecore_postgres::PgSource) -> PgError {
    tokio::time::timeout(SYNC, source.failed())
        .await
        .expect("the source fails in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_or_moved_table_stops_the_stream() {
    for (schema, moves_away) in [
        ("rnm", "ALTER TABLE rnm.items RENAME TO items_tmp"),
        ("mvd", "ALTER TABLE mvd.items SET SCHEMA mvd_other"),
    ] {
        let client = fresh(schema).await;
        client
            .batch_execute("DROP SCHEMA IF EXISTS mvd_other CASCADE; CREATE SCHEMA mvd_other;")
            .await
            .unwrap();
        items_table(&client, schema).await;
        let manager = manager();
        let source = start(&manager, config(schema, &["items"])).await;
        client
            .batch_execute(&format!("INSERT INTO {schema}.items VALUES (1, 'a')"))
            .await
            .unwrap();
        source.sync(SYNC).await.unwrap();
        client.batch_execute(moves_away).await.unwrap();
        // The table's next change comes with a relation message under the new name.
        let table = if schema == "rnm" {
            "rnm.items_tmp"
        } else {
            "mvd_other.items"
        };
        client
            .batch_execute(&format!("INSERT INTO {table} VALUES (2, 'b')"))
            .await
            .unwrap();
        match failure_in_time(&source).await {
            PgError::TableReplaced { table, detail } => {
                assert_eq!(table, format!("{schema}.items"));
                assert!(detail.contains("renamed or moved"), "{detail}");
            }
            other => panic!("{schema}: {other:?}"),
        }
        let _ = source.stop_and_drop().await;
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_and_created_again_fails_the_next_load() {
    let client = fresh("recr").await;
    items_table(&client, "recr").await;
    let manager = manager();
    let source = start(&manager, config("recr", &["items"])).await;
    client
        .batch_execute("INSERT INTO recr.items VALUES (1, 'a')")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    client.batch_execute("DROP TABLE recr.items").await.unwrap();
    items_table(&client, "recr").await;
    client
        .batch_execute("INSERT INTO recr.items VALUES (2, 'b')")
        .await
        .unwrap();
    let subscriber = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM recr.items",
        SubscriptionOptions::with_initial_load(),
    );
    match source.load(subscriber.live_query_id).await {
        Err(PgError::TableReplaced { table, .. }) => assert_eq!(table, "recr.items"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(source.failure(), Some(PgError::TableReplaced { .. })),
        "{:?}",
        source.failure()
    );
    let _ = source.stop_and_drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_retyped_to_another_kind_closes_the_subscriptions_reading_it() {
    let client = fresh("rtyp").await;
    client
        .batch_execute(
            "CREATE TABLE rtyp.items (id int PRIMARY KEY, price int, v text);
             ALTER TABLE rtyp.items REPLICA IDENTITY FULL;
             INSERT INTO rtyp.items VALUES (1, 5, 'a'), (2, 50, 'b');",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("rtyp", &["items"])).await;
    let on_price = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM rtyp.items WHERE price < 10",
    )
    .await;
    let on_v = Subscriber::loaded(&manager, &source, "u", "SELECT id, v FROM rtyp.items").await;
    // integer to numeric: livecore holds numeric as text, which orders after every number.
    client
        .batch_execute("ALTER TABLE rtyp.items ALTER COLUMN price TYPE numeric")
        .await
        .unwrap();
    client
        .batch_execute("DELETE FROM rtyp.items WHERE id = 1")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let price = on_price.finish();
    assert_eq!(
        price.closed,
        Some(CloseReason::SchemaChanged {
            column: "price".into()
        })
    );
    let v = on_v.finish();
    assert_eq!(v.closed, None);
    assert_eq!(v.rows.keys().copied().collect::<Vec<_>>(), vec![2]);
    assert!(source.failure().is_none(), "{:?}", source.failure());
    source.stop_and_drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_publication_is_reported_as_the_publication() {
    let client = fresh("dpub").await;
    items_table(&client, "dpub").await;
    let manager = manager();
    let config = config("dpub", &["items"]);
    let (publication, slot) = (config.publication.clone(), config.slot.clone());
    let source = start(&manager, config).await;
    client
        .batch_execute("INSERT INTO dpub.items VALUES (1, 'a')")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    client
        .batch_execute(&format!("DROP PUBLICATION {publication}"))
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO dpub.items VALUES (2, 'b')")
        .await
        .unwrap();
    match failure_in_time(&source).await {
        PgError::Publication {
            publication: named, ..
        } => assert_eq!(named, publication),
        other => panic!("{other:?}"),
    }
    let _ = source.stop().await;
    client
        .batch_execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
        .await
        .ok();
}
