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

/// A type change that keeps livecore's kind still rewrites every value of the column
/// without a row change on the stream: `numeric(10,2)` to `numeric(10,3)` turns `12.50`
/// into `12.500`, `timestamp` to `timestamptz` appends `+00`. A subscription filtering on
/// such a column would keep rows its filter no longer matches (or miss rows it now
/// matches), and one selecting it (`SELECT *` too) would keep the old values, told
/// nothing: each is closed with `SchemaChanged`, as for a change of kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_retyped_within_its_kind_closes_the_subscriptions_reading_it() {
    let client = fresh("rtkd").await;
    client
        .batch_execute(
            "CREATE TABLE rtkd.items (id int PRIMARY KEY, price numeric(10,2), at timestamp, \
               v text);
             ALTER TABLE rtkd.items REPLICA IDENTITY FULL;
             INSERT INTO rtkd.items VALUES (1, 12.5, '2024-01-01 10:00', 'a'),
               (2, 3, '2024-01-01 11:00', 'b');",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("rtkd", &["items"])).await;
    let on_price = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM rtkd.items WHERE price = '12.50'",
    )
    .await;
    let on_at = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM rtkd.items WHERE at = '2024-01-01 10:00:00'",
    )
    .await;
    let on_v = Subscriber::loaded(&manager, &source, "u", "SELECT id, v FROM rtkd.items").await;
    // Filters on nothing, but holds every column's values.
    let whole = Subscriber::loaded(&manager, &source, "u", "SELECT * FROM rtkd.items").await;
    assert_eq!(on_price.view.lock().unwrap().rows.len(), 1);
    client
        .batch_execute(
            "ALTER TABLE rtkd.items ALTER COLUMN price TYPE numeric(10,3);
             ALTER TABLE rtkd.items ALTER COLUMN at TYPE timestamptz;
             INSERT INTO rtkd.items VALUES (3, 1, '2024-01-01 12:00', 'c');",
        )
        .await
        .unwrap();
    // PostgreSQL no longer has a row whose price reads 12.50.
    let still = client
        .query("SELECT id FROM rtkd.items WHERE price::text = '12.50'", &[])
        .await
        .unwrap();
    assert!(still.is_empty());
    source.sync(SYNC).await.unwrap();
    let price = on_price.finish();
    assert_eq!(
        price.closed,
        Some(CloseReason::SchemaChanged {
            column: "price".into()
        })
    );
    let at = on_at.finish();
    assert_eq!(
        at.closed,
        Some(CloseReason::SchemaChanged {
            column: "at".into()
        })
    );
    assert_eq!(
        whole.finish().closed,
        Some(CloseReason::SchemaChanged {
            column: "price".into()
        })
    );
    on_v.wait_for_row(3).await;
    let v = on_v.finish();
    assert_eq!(v.closed, None);
    assert_eq!(v.rows.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    // The stream's version and the catalog's agree: a new load works under the new type.
    let again = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM rtkd.items WHERE price = '12.500'",
    )
    .await;
    source.sync(SYNC).await.unwrap();
    assert_eq!(
        again.finish().rows.keys().copied().collect::<Vec<_>>(),
        vec![1]
    );
    assert!(source.failure().is_none(), "{:?}", source.failure());
    source.stop_and_drop().await.unwrap();
}

/// A name that now belongs to another column (`a` and `b` renamed over each other, or
/// `grp` dropped and added again with a column after it) has every value changed without
/// a row change on the stream, while the relation message shows the same names and types:
/// the subscriptions reading it are closed with `SchemaChanged`, the others continue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_moved_to_another_column_closes_the_subscriptions_reading_it() {
    let client = fresh("mvcol").await;
    client
        .batch_execute(
            "CREATE TABLE mvcol.items (id int PRIMARY KEY, a int, b int, grp int, v text);
             ALTER TABLE mvcol.items REPLICA IDENTITY FULL;
             INSERT INTO mvcol.items VALUES (1, 1, 2, 7, 'x'), (2, 2, 1, 8, 'y');",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("mvcol", &["items"])).await;
    let on_a = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM mvcol.items WHERE a = 1",
    )
    .await;
    let on_grp = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT id, grp FROM mvcol.items WHERE grp = 7",
    )
    .await;
    let on_id = Subscriber::loaded(&manager, &source, "u", "SELECT id FROM mvcol.items").await;
    client
        .batch_execute(
            "ALTER TABLE mvcol.items RENAME a TO t;
             ALTER TABLE mvcol.items RENAME b TO a;
             ALTER TABLE mvcol.items RENAME t TO b;
             ALTER TABLE mvcol.items DROP COLUMN grp;
             ALTER TABLE mvcol.items ADD COLUMN grp int;
             INSERT INTO mvcol.items (id, a, b, grp, v) VALUES (3, 5, 5, 9, 'z');",
        )
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    // Row 1 no longer has a = 1, nor grp = 7, in PostgreSQL; the subscribers holding it are
    // told.
    assert_eq!(
        on_a.finish().closed,
        Some(CloseReason::SchemaChanged { column: "a".into() })
    );
    assert_eq!(
        on_grp.finish().closed,
        Some(CloseReason::SchemaChanged {
            column: "grp".into()
        })
    );
    on_id.wait_for_row(3).await;
    let id = on_id.finish();
    assert_eq!(id.closed, None);
    assert_eq!(id.rows.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(source.failure().is_none(), "{:?}", source.failure());
    source.stop_and_drop().await.unwrap();
}

/// PostgreSQL's stream says nothing when a published table is dropped, or leaves the
/// publication: its subscribers would keep rows that no longer exist, and a table created
/// again under the name is not in the publication, so none of its changes would ever
/// arrive. The next `sync` (and the stream, while idle) finds it in the catalog: a typed
/// error through `sync` and `failure()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_or_one_leaving_the_publication_is_a_typed_error() {
    for schema in ["dtab", "lpub"] {
        let client = fresh(schema).await;
        items_table(&client, schema).await;
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.other (id int PRIMARY KEY, v text);
                 ALTER TABLE {schema}.other REPLICA IDENTITY FULL;
                 INSERT INTO {schema}.items VALUES (1, 'a');"
            ))
            .await
            .unwrap();
        let manager = manager();
        let config = config(schema, &["items", "other"]);
        let publication = config.publication.clone();
        let source = start(&manager, config).await;
        let subscriber = Subscriber::loaded(
            &manager,
            &source,
            "u",
            &format!("SELECT * FROM {schema}.items"),
        )
        .await;
        source.sync(SYNC).await.unwrap();
        if schema == "dtab" {
            client
                .batch_execute(&format!(
                    "DROP TABLE {schema}.items; INSERT INTO {schema}.other VALUES (1, 'x');"
                ))
                .await
                .unwrap();
            match source.sync(SYNC).await {
                Err(PgError::TableReplaced { table, detail }) => {
                    assert_eq!(table, "dtab.items");
                    assert!(detail.contains("dropped"), "{detail}");
                }
                other => panic!("{other:?}"),
            }
            assert!(
                matches!(source.failure(), Some(PgError::TableReplaced { .. })),
                "{:?}",
                source.failure()
            );
        } else {
            client
                .batch_execute(&format!(
                    "ALTER PUBLICATION {publication} DROP TABLE {schema}.items;
                     INSERT INTO {schema}.items VALUES (2, 'b');"
                ))
                .await
                .unwrap();
            match source.sync(SYNC).await {
                Err(PgError::Publication {
                    publication: named,
                    reason,
                }) => {
                    assert_eq!(named, publication);
                    assert!(reason.contains("lpub.items"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
            assert!(
                matches!(source.failure(), Some(PgError::Publication { .. })),
                "{:?}",
                source.failure()
            );
        }
        drop(subscriber.finish());
        let _ = source.stop_and_drop().await;
    }
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
