//! Schemas from the catalog and relation messages, REPLICA IDENTITY FULL, TOAST, types,
//! user-scoped tables and TRUNCATE.

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_postgres::types::{same_as_pg_text, Kind};
use livecore_postgres::{PgError, PgSource, ResumeOutcome, SourceConfig, TableConfig};
use tokio_postgres::SimpleQueryMessage;

const SYNC: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_mid_stream_closes_subscriptions_on_a_dropped_column_only() {
    let client = fresh("alter").await;
    client
        .batch_execute(
            "CREATE TABLE alter.items (id int PRIMARY KEY, grp int, extra int);
             ALTER TABLE alter.items REPLICA IDENTITY FULL;
             INSERT INTO alter.items VALUES (1, 1, 1);",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("alter", &["items"])).await;
    let on_extra = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM alter.items WHERE extra = 1",
    )
    .await;
    let on_grp = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT id, grp FROM alter.items WHERE grp = 1",
    )
    .await;

    client
        .batch_execute("INSERT INTO alter.items VALUES (2, 1, 1)")
        .await
        .unwrap();
    // Taken by the subscriber before the ALTER ends its subscription: what is still queued
    // then is discarded (the crate README says so).
    source.sync(SYNC).await.unwrap();
    on_extra.wait_for_row(2).await;
    client
        .batch_execute("ALTER TABLE alter.items DROP COLUMN extra, ADD COLUMN note text")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO alter.items VALUES (3, 1, 'n')")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();

    let items = TableId::new("alter", "items");
    let columns: Vec<String> = source
        .table(&items)
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(columns, ["id", "grp", "note"]);
    assert_eq!(manager.table_schema(&items).unwrap().columns.len(), 3);
    let extra = on_extra.finish();
    assert!(extra.errors.is_empty(), "{:?}", extra.errors);
    assert_eq!(
        extra.rows.keys().copied().collect::<Vec<_>>(),
        vec![1, 2],
        "changes before the ALTER arrived"
    );
    assert_eq!(
        extra.closed,
        Some(CloseReason::SchemaChanged {
            column: "extra".into()
        }),
        "closed with the reason"
    );
    let grp = on_grp.finish();
    assert!(grp.errors.is_empty(), "{:?}", grp.errors);
    assert_eq!(grp.closed, None);
    assert_eq!(
        grp.rows.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3],
        "the other continues"
    );
    // A new subscription can use the added column.
    let on_note = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM alter.items WHERE note = 'n'",
    )
    .await;
    source.sync(SYNC).await.unwrap();
    assert_eq!(
        on_note.finish().rows.keys().copied().collect::<Vec<_>>(),
        vec![3]
    );
    source.stop_and_drop().await.unwrap();
}

/// Reads `SELECT id, grp, note` of the table as shown values, by id.
async fn id_grp_note(client: &tokio_postgres::Client) -> Vec<(i64, Vec<String>)> {
    let mut rows = Vec::new();
    for message in client
        .simple_query("SELECT id, grp, note FROM altx.items ORDER BY id")
        .await
        .unwrap()
    {
        if let SimpleQueryMessage::Row(row) = message {
            let int = |i: usize| row.get(i).map_or("NULL".to_string(), |v| format!("i:{v}"));
            let note = row.get(2).map_or("NULL".to_string(), |v| format!("t:{v}"));
            rows.push((
                row.get(0).unwrap().parse().unwrap(),
                vec![int(0), int(1), note],
            ));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_inside_a_transaction_splits_it_at_the_schema_change() {
    let client = fresh("altx").await;
    client
        .batch_execute(
            "CREATE TABLE altx.items (id int PRIMARY KEY, grp int, extra int);
             ALTER TABLE altx.items REPLICA IDENTITY FULL;
             INSERT INTO altx.items VALUES (1, 1, 1);
             CREATE TABLE altx.other (id int PRIMARY KEY, body text);
             ALTER TABLE altx.other REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("altx", &["items", "other"])).await;
    let on_extra = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM altx.items WHERE extra = 1",
    )
    .await;
    let on_grp = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT id, grp FROM altx.items WHERE grp = 1",
    )
    .await;
    let on_all = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM altx.items WHERE grp = 1",
    )
    .await;

    // One transaction: changes under the old columns, the ALTER, changes under the new
    // ones. Row 2 is written with extra = 7 before the ALTER: decoded with the new columns
    // (the wrong relation), its values would shift into the wrong places or be refused.
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO altx.items VALUES (2, 1, 1);
             INSERT INTO altx.other VALUES (10, 'before');
             INSERT INTO altx.items VALUES (4, 1, 7);
             UPDATE altx.items SET extra = 5 WHERE id = 1;
             ALTER TABLE altx.items DROP COLUMN extra, ADD COLUMN note text;
             INSERT INTO altx.items VALUES (3, 1, 'n');
             INSERT INTO altx.other VALUES (11, 'after');
             UPDATE altx.items SET note = 'm' WHERE id = 2;
             DELETE FROM altx.items WHERE id = 4;
             COMMIT;",
        )
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();

    let items = TableId::new("altx", "items");
    assert_eq!(
        manager
            .table_schema(&items)
            .unwrap()
            .columns
            .iter()
            .map(|c| c.name.to_string())
            .collect::<Vec<_>>(),
        ["id", "grp", "note"]
    );
    // Every change as it reached `SELECT *`, recompiled to the new columns at the ALTER:
    // rows written before it carry the old columns, with their values in place (row 4's
    // extra = 7); decoded with the new relation they would read [4, 1, NULL]. After it,
    // the new columns; row 2's old row now has note = NULL, as PostgreSQL sends it.
    let all = on_all.finish();
    // The commit's SeqId is its commit LSN, carried by the last part; the first part is
    // numbered just below it, so a client's last SeqId says which parts it has seen.
    let seq = source.last_published().expect("published").0;
    let expected_log: Vec<(u64, String, Vec<String>)> = [
        (seq - 1, "Insert", ["i:2", "i:1", "i:1"]),
        (seq - 1, "Insert", ["i:4", "i:1", "i:7"]),
        (seq - 1, "Update", ["i:1", "i:1", "i:5"]),
        (seq, "Insert", ["i:3", "i:1", "t:n"]),
        (seq, "Update", ["i:2", "i:1", "t:m"]),
        (seq, "Delete", ["i:4", "i:1", "NULL"]),
    ]
    .into_iter()
    .map(|(seq, kind, row)| (seq, kind.to_string(), row.map(String::from).to_vec()))
    .collect();
    assert_eq!(all.log, expected_log);
    assert_eq!(
        all.deliveries,
        vec![(seq - 1, 3), (seq, 3)],
        "two parts, each its own SeqId"
    );
    assert_eq!(all.closed, None);

    // The subscription whose filter uses the dropped column is closed with the reason at
    // the ALTER. (livecore discards what was still queued for a subscription when it
    // ends, so whether the part before the ALTER reached it depends on how fast it read;
    // if it did, it saw the values of the old columns.)
    let extra = on_extra.finish();
    assert!(extra.errors.is_empty(), "{:?}", extra.errors);
    assert_eq!(
        extra.closed,
        Some(CloseReason::SchemaChanged {
            column: "extra".into()
        })
    );
    match extra.deliveries.len() {
        0 => assert_eq!(extra.rows.keys().copied().collect::<Vec<_>>(), vec![1]),
        1 => assert_eq!(
            extra.rows.into_iter().collect::<Vec<_>>(),
            vec![(2, vec!["i:2".into(), "i:1".into(), "i:1".into()])]
        ),
        _ => panic!("after its close: {:?}", extra.deliveries),
    }

    // The other subscription saw the whole transaction, in two parts: the old-schema
    // part, then the new-schema part.
    let grp = on_grp.finish();
    assert!(grp.errors.is_empty(), "{:?}", grp.errors);
    assert_eq!(grp.closed, None);
    assert_eq!(grp.deliveries, vec![(seq - 1, 3), (seq, 3)]);
    let expected: Vec<(i64, Vec<String>)> = id_grp_note(&client)
        .await
        .into_iter()
        .map(|(id, values)| (id, values[..2].to_vec()))
        .collect();
    assert_eq!(grp.rows.into_iter().collect::<Vec<_>>(), expected);

    // Resuming between the parts and after them. A client that saw only the first part
    // of `other`'s changes gets the second replayed (with one SeqId for both parts it
    // would have been skipped); on `items`, whose schema changed between the parts, a
    // client that saw only the first is told to load again; after both, nothing to replay.
    let resume = |sql: &'static str, from: u64| {
        let manager = &manager;
        let source = &source;
        async move {
            let subscriber = Subscriber::open(
                manager,
                "u",
                sql,
                SubscriptionOptions::resume_from(SeqId(from)),
            );
            let outcome = source.resume(subscriber.live_query_id).await.unwrap();
            source.sync(SYNC).await.unwrap();
            (outcome, subscriber.finish())
        }
    };
    let (outcome, view) = resume("SELECT * FROM altx.other", seq - 1).await;
    assert_eq!(outcome, ResumeOutcome::Replayed { commits: 1 });
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(
        view.log,
        vec![(seq, "Insert".into(), vec!["i:11".into(), "t:after".into()])]
    );
    let (outcome, view) = resume("SELECT * FROM altx.other", seq).await;
    assert_eq!(outcome, ResumeOutcome::Replayed { commits: 0 });
    assert!(view.log.is_empty());
    let (outcome, _) = resume("SELECT id, grp FROM altx.items", seq - 1).await;
    assert_eq!(outcome, ResumeOutcome::Unavailable);
    let (outcome, view) = resume("SELECT id, grp FROM altx.items", seq).await;
    assert_eq!(outcome, ResumeOutcome::Replayed { commits: 0 });
    assert!(view.log.is_empty());

    // After the ALTER, under the new columns: row 2's note is 'm', row 3's 'n'. A new
    // subscription loads and then follows them.
    let on_note = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT id, grp, note FROM altx.items WHERE note IS NOT NULL",
    )
    .await;
    client
        .batch_execute("UPDATE altx.items SET note = 'k' WHERE id = 1")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let note = on_note.finish();
    assert!(note.errors.is_empty(), "{:?}", note.errors);
    assert_eq!(
        note.rows.into_iter().collect::<Vec<_>>(),
        id_grp_note(&client).await
    );
    source.stop_and_drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_without_replica_identity_full_are_refused() {
    let client = fresh("ident").await;
    client
        .batch_execute("CREATE TABLE ident.items (id int PRIMARY KEY, body text)")
        .await
        .unwrap();
    let error = PgSource::start(manager(), config("ident", &["items"]))
        .await
        .err()
        .unwrap();
    assert_eq!(
        error,
        PgError::ReplicaIdentityNotFull {
            table: "ident.items".into(),
            identity: "DEFAULT".into()
        }
    );
    assert!(error.to_string().contains("REPLICA IDENTITY FULL"));
    let missing = PgSource::start(manager(), config("ident", &["nope"]))
        .await
        .err()
        .unwrap();
    assert_eq!(missing, PgError::UnknownTable("ident.nope".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_toast_value_is_taken_from_the_old_row() {
    let client = fresh("toast").await;
    client
        .batch_execute(
            "CREATE TABLE toast.items (id int PRIMARY KEY, grp int, big text);
             ALTER TABLE toast.items REPLICA IDENTITY FULL;
             ALTER TABLE toast.items ALTER COLUMN big SET STORAGE EXTERNAL;",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("toast", &["items"])).await;
    let all = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM toast.items",
        SubscriptionOptions::default(),
    );
    // 20 kB, stored out of line; the update does not touch it, so pgoutput sends it as
    // 'unchanged'.
    client
        .batch_execute("INSERT INTO toast.items SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 625) g")
        .await
        .unwrap();
    client
        .batch_execute("UPDATE toast.items SET grp = 1 WHERE id = 1")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let view = all.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(
        view.rows,
        pg_rows(&client, &source, &TableId::new("toast", "items"), "true").await
    );
    assert_eq!(
        view.rows[&1][2].len(),
        2 + 20_000,
        "the whole value, not a placeholder"
    );
    source.stop_and_drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_type_round_trips_against_postgres_text_output() {
    let client = fresh("types").await;
    // citext is an extension (PostgreSQL's contrib; Debian's postgresql-15 ships it, and
    // ci.sh installs that package). Without it the type table cannot be checked: say so.
    if let Err(error) = client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS citext")
        .await
    {
        panic!(
            "the citext extension is not available in the test cluster ({error}); the \
             round trip of every mapped type needs it: install PostgreSQL's contrib \
             extensions (Debian: the postgresql-15 package)"
        );
    }
    client
        .batch_execute(
            "CREATE TYPE types.mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN types.positive AS bigint CHECK (VALUE > 0);
             CREATE TABLE types.every (
               id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision,
               num numeric, b boolean, t text, vc varchar(20), ch char(4), by bytea, u uuid,
               j json, jb jsonb, d date, tm time, tstz timestamptz, ts timestamp,
               iv interval, mood types.mood, pos types.positive, ip inet,
               oi oid, nm name, ch1 \"char\", ci citext, ttz timetz, net cidr, mac macaddr);
             ALTER TABLE types.every REPLICA IDENTITY FULL;
             INSERT INTO types.every VALUES (1, -32768, 9223372036854775807, 1.1, 0.1,
               '123456789012345678901234567890.000000000000000000001', true, 'héllo ☃', 'v', 'ab',
               '\\x00ff', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"a\": [1, 2.50]}',
               '{\"b\": 1, \"a\": null}', '2024-02-29', '23:59:59.999999',
               '2024-05-01 12:00:00.25+02', '1999-12-31 23:59:59', '1 year 2 mons 3 days 04:05:06.5',
               'happy', 42, '192.168.0.1/24',
               4294967295, 'nämé', 'é', 'MiXeD Case', '23:59:59.999999-03:30', '10.1/16',
               '08002b:010203');
             INSERT INTO types.every (id, f4, f8, num, ch1, net)
               VALUES (2, 'NaN', '-Infinity', 'NaN', '', '2001:db8::/32');
             INSERT INTO types.every (id, f8, num, t, oi, nm, ch1, ci, ttz, mac)
               VALUES (3, 1e300, '-0.5', '', 0, '', 'x', '', '00:00:00+14', 'FF-FF-FF-FF-FF-FF');
             INSERT INTO types.every (id, f4, f8, num, b, by)
               VALUES (4, '-0', '4.9e-324', 'Infinity', false, '');",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("types", &["every"])).await;
    let snapshot = Subscriber::loaded(&manager, &source, "u", "SELECT * FROM types.every").await;
    // The same values again, through the stream.
    client
        .batch_execute(
            "INSERT INTO types.every SELECT id + 100, i2, i8, f4, f8, num, b, t, vc, ch, by, u,
               j, jb, d, tm, tstz, ts, iv, mood, pos, ip, oi, nm, ch1, ci, ttz, net, mac
             FROM types.every",
        )
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let view = snapshot.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(view.rows.len(), 8);

    let every = TableId::new("types", "every");
    let info = source.table(&every).unwrap();
    let messages = client
        .simple_query("SELECT * FROM types.every ORDER BY id")
        .await
        .unwrap();
    let mut compared = 0;
    for message in messages {
        let SimpleQueryMessage::Row(pg) = message else {
            continue;
        };
        let id: i64 = pg.get(0).unwrap().parse().unwrap();
        let seen = &view.rows[&id];
        for (position, column) in info.columns.iter().enumerate() {
            let delivered = decode_shown(&seen[position]);
            assert!(
                same_as_pg_text(column.kind, &delivered, pg.get(position)),
                "row {id} column {} ({}): delivered {:?}, PostgreSQL prints {:?}",
                column.name,
                column.type_name,
                seen[position],
                pg.get(position)
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 8 * 29);

    // Floats once more, without the crate's decoder: PostgreSQL's binary form of each
    // value (`float4send`, `float8send`: the IEEE bits) and the `real` widened by
    // PostgreSQL (`f4::float8::text`, read with Rust's own parser).
    let messages = client
        .simple_query(
            "SELECT id, encode(float4send(f4), 'hex'), encode(float8send(f8), 'hex'), \
             f4::float8::text FROM types.every ORDER BY id",
        )
        .await
        .unwrap();
    let (f4, f8) = (
        info.columns.iter().position(|c| c.name == "f4").unwrap(),
        info.columns.iter().position(|c| c.name == "f8").unwrap(),
    );
    let delivered_float = |id: i64, position: usize| match decode_shown(&view.rows[&id][position]) {
        Value::Float(f) => Some(f),
        Value::Null => None,
        other => panic!("row {id}: {other:?} is not a float"),
    };
    let same = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
    let mut floats = 0;
    for message in messages {
        let SimpleQueryMessage::Row(pg) = message else {
            continue;
        };
        let id: i64 = pg.get(0).unwrap().parse().unwrap();
        let real = pg
            .get(1)
            .map(|hex| f32::from_bits(u32::from_str_radix(hex, 16).unwrap()));
        let double = pg
            .get(2)
            .map(|hex| f64::from_bits(u64::from_str_radix(hex, 16).unwrap()));
        let widened = pg.get(3).map(|text| match text {
            "NaN" => f64::NAN,
            text => text.parse::<f64>().unwrap(),
        });
        match (delivered_float(id, f4), real, widened) {
            (None, None, None) => {}
            (Some(got), Some(real), Some(widened)) => {
                assert!(
                    same(got, f64::from(real)),
                    "row {id} f4: {got:e} vs {real:e}"
                );
                assert!(same(got, widened), "row {id} f4: {got:e} vs {widened:e}");
                floats += 1;
            }
            other => panic!("row {id} f4: {other:?}"),
        }
        match (delivered_float(id, f8), double) {
            (None, None) => {}
            (Some(got), Some(double)) => {
                assert!(same(got, double), "row {id} f8: {got:e} vs {double:e}");
                floats += 1;
            }
            other => panic!("row {id} f8: {other:?}"),
        }
    }
    assert_eq!(
        floats,
        2 * 7,
        "f4 in rows 1, 2, 4 and f8 in 1-4, each twice"
    );
    // The cheap edge cases, by value.
    let column = |name: &str| info.columns.iter().position(|c| c.name == name).unwrap();
    for id in [4, 104] {
        let row = &view.rows[&id];
        assert_eq!(row[column("b")], "b:false");
        assert_eq!(row[column("by")], "x:[]", "an empty bytea is not NULL");
        assert_eq!(row[column("num")], "t:Infinity");
        assert_eq!(row[column("f4")], format!("f:{:x}", (-0.0f64).to_bits()));
        assert_eq!(row[column("f8")], format!("f:{:x}", 4.9e-324f64.to_bits()));
    }

    // The types added last, against `column::text` too (for these types the cast to text
    // is their output function; for `boolean` and `inet` it is not: `true::text` is
    // 'true', `'1.2.3.4'::inet::text` '1.2.3.4/32', which is why the loop above reads
    // PostgreSQL's output, the text pgoutput sends).
    let cast = ["oi", "nm", "ch1", "ci", "ttz", "net", "mac"];
    let messages = client
        .simple_query(&format!(
            "SELECT id, {} FROM types.every ORDER BY id",
            cast.map(|name| format!("{name}::text")).join(", ")
        ))
        .await
        .unwrap();
    let mut rows = 0;
    for message in messages {
        let SimpleQueryMessage::Row(pg) = message else {
            continue;
        };
        let id: i64 = pg.get(0).unwrap().parse().unwrap();
        for (i, name) in cast.iter().enumerate() {
            let position = info.columns.iter().position(|c| c.name == *name).unwrap();
            let column = &info.columns[position];
            let seen = &view.rows[&id][position];
            assert!(
                same_as_pg_text(column.kind, &decode_shown(seen), pg.get(i + 1)),
                "row {id} column {name} ({}): delivered {seen:?}, {name}::text is {:?}",
                column.type_name,
                pg.get(i + 1)
            );
        }
        rows += 1;
    }
    assert_eq!(rows, 8);
    // The mapping of each: an oid is an Int (above i32 too), the others text.
    let mapped: Vec<(&str, &str, Kind)> = cast
        .iter()
        .map(|name| {
            let column = info.columns.iter().find(|c| c.name == *name).unwrap();
            (*name, column.type_name.as_str(), column.kind)
        })
        .collect();
    assert_eq!(
        mapped,
        [
            ("oi", "oid", Kind::Int),
            ("nm", "name", Kind::Text),
            ("ch1", "\"char\"", Kind::Text),
            ("ci", "citext", Kind::Text),
            ("ttz", "timetz", Kind::Text),
            ("net", "cidr", Kind::Text),
            ("mac", "macaddr", Kind::Text)
        ]
    );
    let position = |name: &str| info.columns.iter().position(|c| c.name == name).unwrap();
    for id in [1, 101] {
        let row = &view.rows[&id];
        assert_eq!(row[position("oi")], "i:4294967295");
        assert_eq!(
            row[position("ch1")],
            "t:\\303",
            "PostgreSQL prints a high byte as octal"
        );
        assert_eq!(row[position("ci")], "t:MiXeD Case", "citext keeps its case");
        assert_eq!(row[position("net")], "t:10.1.0.0/16");
        assert_eq!(row[position("mac")], "t:08:00:2b:01:02:03");
    }
    for id in [2, 102] {
        assert_eq!(
            view.rows[&id][position("ch1")],
            "t:",
            "an empty \"char\" is not NULL"
        );
    }
    source.stop_and_drop().await.unwrap();

    // A type without a mapping is refused by name, or carried as text when allowed.
    client
        .batch_execute(
            "CREATE TABLE types.arrays (id int PRIMARY KEY, tags text[]);
             ALTER TABLE types.arrays REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let mut arrays = SourceConfig::new(
        url(),
        "types_slot2",
        "types_pub2",
        vec![TableConfig::shared("types", "arrays")],
    );
    let error = PgSource::start(common::manager(), arrays.clone())
        .await
        .err()
        .unwrap();
    assert_eq!(
        error,
        PgError::UnsupportedType {
            table: "types.arrays".into(),
            column: "tags".into(),
            type_name: "_text".into()
        }
    );
    arrays.unsupported_as_text = true;
    let manager = common::manager();
    let source = PgSource::start(manager.clone(), arrays).await.unwrap();
    let all = Subscriber::open(
        &manager,
        "u",
        "SELECT * FROM types.arrays",
        SubscriptionOptions::default(),
    );
    client
        .batch_execute("INSERT INTO types.arrays VALUES (1, '{a,\"b c\"}')")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    assert_eq!(all.finish().rows[&1][1], "t:{a,\"b c\"}");
    source.stop_and_drop().await.unwrap();
}

/// Back from `show` to a value.
fn decode_shown(shown: &str) -> Value {
    let (tag, rest) = shown.split_once(':').unwrap_or((shown, ""));
    match tag {
        "NULL" => Value::Null,
        "b" => Value::Bool(rest == "true"),
        "i" => Value::Int(rest.parse().unwrap()),
        "f" => Value::Float(f64::from_bits(u64::from_str_radix(rest, 16).unwrap())),
        "t" => Value::text(rest),
        "x" => {
            let bytes: Vec<u8> = rest
                .trim_matches(|c| c == '[' || c == ']')
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            Value::bytes(&bytes)
        }
        other => panic!("unknown tag {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_scoped_tables_deliver_each_user_their_own_rows() {
    let client = fresh("scoped").await;
    client
        .batch_execute(
            "CREATE TABLE scoped.notes (id int PRIMARY KEY, owner text, body text);
             ALTER TABLE scoped.notes REPLICA IDENTITY FULL;
             INSERT INTO scoped.notes VALUES (1, 'alice', 'a1'), (2, 'bob', 'b1');",
        )
        .await
        .unwrap();
    let manager = manager();
    let config = SourceConfig::new(
        url(),
        "scoped_slot",
        "scoped_pub",
        vec![TableConfig::user_scoped("scoped", "notes", "owner")],
    );
    let source = start(&manager, config).await;
    let alice = Subscriber::open(
        &manager,
        "alice",
        "SELECT * FROM scoped.notes",
        SubscriptionOptions::with_initial_load(),
    );
    let bob = Subscriber::open(
        &manager,
        "bob",
        "SELECT * FROM scoped.notes",
        SubscriptionOptions::with_initial_load(),
    );
    source
        .load_many(&[alice.live_query_id, bob.live_query_id])
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO scoped.notes VALUES (3, 'alice', 'a2');
             UPDATE scoped.notes SET owner = 'alice' WHERE id = 2;",
        )
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let notes = TableId::new("scoped", "notes");
    for (name, subscriber) in [("alice", alice), ("bob", bob)] {
        let view = subscriber.finish();
        assert!(view.errors.is_empty(), "{name}: {:?}", view.errors);
        assert_eq!(
            view.rows,
            pg_rows(&client, &source, &notes, &format!("owner = '{name}'")).await,
            "{name}"
        );
    }

    // TRUNCATE: subscribers are told to start over, never left with stale rows.
    let watcher = Subscriber::open(
        &manager,
        "alice",
        "SELECT * FROM scoped.notes",
        SubscriptionOptions::default(),
    );
    client.batch_execute("TRUNCATE scoped.notes").await.unwrap();
    source.sync(SYNC).await.unwrap();
    assert!(matches!(
        watcher.finish().closed,
        Some(CloseReason::Revoked { .. })
    ));
    source.stop_and_drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_tables_and_publications_that_hide_changes_are_refused() {
    let client = fresh("pubchk").await;
    client
        .batch_execute(
            "CREATE TABLE pubchk.parted (id int, grp int) PARTITION BY RANGE (id);
             CREATE TABLE pubchk.parted_low PARTITION OF pubchk.parted FOR VALUES FROM (0) TO (100);
             ALTER TABLE pubchk.parted REPLICA IDENTITY FULL;
             ALTER TABLE pubchk.parted_low REPLICA IDENTITY FULL;
             CREATE TABLE pubchk.items (id int PRIMARY KEY, grp int);
             ALTER TABLE pubchk.items REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    // A partitioned table: pgoutput would report its changes under the partitions' names.
    let error = PgSource::start(manager(), config("pubchk", &["parted"]))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&error, PgError::UnsupportedTable { table, .. } if table == "pubchk.parted"),
        "{error:?}"
    );

    // An existing publication that does not publish every action.
    let refused = |publication_sql: &'static str| {
        let client = &client;
        async move {
            client
                .batch_execute(&format!(
                    "DROP PUBLICATION IF EXISTS pubchk_pub; {publication_sql}"
                ))
                .await
                .unwrap();
            match PgSource::start(manager(), config("pubchk", &["items", "parted_low"])).await {
                Err(PgError::Publication {
                    publication,
                    reason,
                }) => {
                    assert_eq!(publication, "pubchk_pub");
                    reason
                }
                Err(other) => panic!("{publication_sql}: {other:?}"),
                Ok(_) => panic!("{publication_sql}: accepted"),
            }
        }
    };
    let reason =
        refused("CREATE PUBLICATION pubchk_pub FOR TABLE pubchk.items WITH (publish = 'insert')")
            .await;
    assert!(reason.contains("update, delete, truncate"), "{reason}");
    let reason =
        refused("CREATE PUBLICATION pubchk_pub FOR TABLE pubchk.items WHERE (id > 10)").await;
    assert!(reason.contains("row filter"), "{reason}");
    let reason = refused("CREATE PUBLICATION pubchk_pub FOR TABLE pubchk.items (id)").await;
    assert!(reason.contains("column list"), "{reason}");
    let reason = refused(
        "CREATE PUBLICATION pubchk_pub FOR TABLE pubchk.parted \
         WITH (publish_via_partition_root = true)",
    )
    .await;
    assert!(reason.contains("publish_via_partition_root"), "{reason}");
    // A refusal leaves the publication as it was: items was not added.
    let members = client
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'pubchk_pub'",
            &[],
        )
        .await
        .unwrap();
    let members: Vec<String> = members.iter().map(|row| row.get(0)).collect();
    assert_eq!(members, ["parted"]);
    // Nothing was created for the refused sources.
    let slots = client
        .query(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'pubchk_slot'",
            &[],
        )
        .await
        .unwrap();
    assert!(slots.is_empty());

    // A partition published as a table of its own: rows written through the parent
    // arrive under the partition's name, and the publication the source creates passes
    // its own checks on the next start.
    client
        .batch_execute("DROP PUBLICATION pubchk_pub")
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("pubchk", &["items", "parted_low"])).await;
    let subscriber = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM pubchk.parted_low WHERE grp = 1",
    )
    .await;
    client
        .batch_execute(
            "INSERT INTO pubchk.parted VALUES (1, 1), (2, 2), (3, 1);
             UPDATE pubchk.parted SET grp = 1 WHERE id = 2;
             DELETE FROM pubchk.parted WHERE id = 1;",
        )
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let view = subscriber.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(view.rows.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    source.stop().await.unwrap();
    let again = start(&manager, config("pubchk", &["items", "parted_low"])).await;
    again.stop_and_drop().await.unwrap();
    client
        .batch_execute(
            "SELECT pg_drop_replication_slot('pubchk_slot'); DROP PUBLICATION pubchk_pub",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_after_an_alter_the_stream_has_not_described_yet_ends_with_the_reason() {
    let client = fresh("late").await;
    client
        .batch_execute(
            "CREATE TABLE late.items (id int PRIMARY KEY, grp int, extra int);
             ALTER TABLE late.items REPLICA IDENTITY FULL;
             INSERT INTO late.items VALUES (1, 1, 1), (2, 1, 2), (3, 2, 3);",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("late", &["items"])).await;
    let on_extra = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM late.items WHERE extra = 1",
    )
    .await;
    let on_grp = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT id, grp FROM late.items WHERE grp = 1",
    )
    .await;

    // The column goes, and no row changes: pgoutput has nothing to describe the table
    // with, so the stream still has the old columns.
    client
        .batch_execute("ALTER TABLE late.items DROP COLUMN extra")
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let items = TableId::new("late", "items");
    let loading = Subscriber::open(
        &manager,
        "u",
        "SELECT id, grp FROM late.items WHERE grp = 1",
        SubscriptionOptions::with_initial_load(),
    );
    let error = source.load(loading.live_query_id).await.unwrap_err();
    assert!(
        matches!(&error, PgError::SchemaChanged { table, .. } if table == "late.items"),
        "{error:?}"
    );
    // livecore now has the catalog's columns, as if the stream had been told.
    assert_eq!(
        manager
            .table_schema(&items)
            .unwrap()
            .columns
            .iter()
            .map(|c| c.name.to_string())
            .collect::<Vec<_>>(),
        ["id", "grp"]
    );
    // The client subscribes again and loads under the new columns.
    let again = Subscriber::loaded(
        &manager,
        &source,
        "u",
        "SELECT * FROM late.items WHERE grp = 1",
    )
    .await;
    client
        .batch_execute(
            "INSERT INTO late.items VALUES (4, 1);
             UPDATE late.items SET grp = 1 WHERE id = 3;
             DELETE FROM late.items WHERE id = 1;",
        )
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    assert!(source.failure().is_none(), "{:?}", source.failure());

    // The failed load ended the subscription with ResyncRequired and then unsubscribed it
    // (`load` unsubscribes on error): the subscriber sees the resync notice only if it
    // took it before the unsubscribe, which drops a notice not yet handed out. Either
    // way it sees nothing else.
    let loading = loading.finish();
    assert!(
        loading
            .other
            .iter()
            .all(|other| other.contains("resync_required")),
        "{:?}",
        loading.other
    );
    assert!(loading.rows.is_empty());
    let extra = on_extra.finish();
    assert_eq!(
        extra.closed,
        Some(CloseReason::SchemaChanged {
            column: "extra".into()
        })
    );
    let expected = pg_rows(&client, &source, &items, "grp = 1").await;
    assert_eq!(expected.keys().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
    let grp = on_grp.finish();
    assert!(grp.errors.is_empty(), "{:?}", grp.errors);
    assert_eq!(grp.closed, None);
    assert_eq!(grp.rows, expected);
    let again = again.finish();
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    assert_eq!(again.rows, expected);
    source.stop_and_drop().await.unwrap();
}

/// What the README says about filters on `numeric` (mapped to `Text`): against a number
/// literal they compare by kind (text above every number), against a string literal by
/// PostgreSQL's canonical text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_filters_compare_as_the_readme_says() {
    let client = fresh("numf").await;
    client
        .batch_execute(
            "CREATE TABLE numf.items (id int PRIMARY KEY, price numeric(10,2));
             ALTER TABLE numf.items REPLICA IDENTITY FULL;
             INSERT INTO numf.items VALUES (1, 5), (2, 12.5), (3, 100), (4, NULL);",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("numf", &["items"])).await;
    let ids = |filter: &'static str| {
        let manager = &manager;
        let source = &source;
        async move {
            let subscriber = Subscriber::open(
                manager,
                "u",
                &format!("SELECT * FROM numf.items WHERE {filter}"),
                SubscriptionOptions::with_initial_load(),
            );
            source.load(subscriber.live_query_id).await.unwrap();
            source.sync(SYNC).await.unwrap();
            let view = subscriber.finish();
            assert!(view.errors.is_empty(), "{:?}", view.errors);
            view.rows.keys().copied().collect::<Vec<i64>>()
        }
    };
    assert_eq!(ids("price > 10").await, vec![1, 2, 3], "every non-NULL row");
    assert_eq!(ids("price < 1000").await, Vec::<i64>::new());
    assert_eq!(ids("price = 5").await, Vec::<i64>::new());
    assert_eq!(ids("price = '12.50'").await, vec![2]);
    assert_eq!(ids("price = '12.5'").await, Vec::<i64>::new());
    assert_eq!(
        ids("price > '9'").await,
        Vec::<i64>::new(),
        "'100.00' < '12.50' < '5.00' < '9'"
    );
    source.stop_and_drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_part_of_a_split_transaction_has_its_own_seq_and_more_than_sixteen_stop_the_stream() {
    let client = fresh("parts").await;
    client
        .batch_execute(
            "CREATE TABLE parts.items (id int PRIMARY KEY);
             ALTER TABLE parts.items REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("parts", &["items"])).await;
    let subscriber = Subscriber::open(
        &manager,
        "u",
        "SELECT id FROM parts.items",
        SubscriptionOptions::default(),
    );
    // Rows written on both sides of each ALTER: `changes` schema changes make
    // `changes + 1` parts.
    let split = |first_id: usize, first_column: usize, changes: usize| {
        let mut sql = format!("BEGIN; INSERT INTO parts.items VALUES ({first_id});");
        for k in 0..changes {
            sql.push_str(&format!(
                "ALTER TABLE parts.items ADD COLUMN c{} int; INSERT INTO parts.items (id) VALUES ({});",
                first_column + k,
                first_id + 1 + k
            ));
        }
        sql + "COMMIT;"
    };
    client.batch_execute(&split(1, 0, 15)).await.unwrap();
    source.sync(SYNC).await.unwrap();
    let commit = source.last_published().expect("published").0;
    let expected: Vec<(u64, usize)> = (0..16).map(|k| (commit - 15 + k, 1)).collect();
    // Handed to livecore; wait (bounded) for the subscriber's thread to drain them.
    for _ in 0..600 {
        if subscriber.view.lock().unwrap().deliveries.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(subscriber.view.lock().unwrap().deliveries, expected);

    // 17 parts: the stream stops with a typed error, nothing of it published.
    client.batch_execute(&split(101, 15, 16)).await.unwrap();
    let error = tokio::time::timeout(SYNC, source.failed()).await.unwrap();
    assert!(
        matches!(&error, PgError::Decode(reason) if reason.contains("at most 16 parts")),
        "{error:?}"
    );
    let view = subscriber.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(view.deliveries, expected);
    assert_eq!(view.rows.len(), 16);
    source.stop_and_drop().await.unwrap();
}
