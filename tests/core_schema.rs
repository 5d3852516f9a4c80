//! Versioned schemas: re-registering a table recompiles its subscriptions, or closes those
//! that use a dropped column with a typed notice.

mod common;

use common::*;
use livecore::*;

#[test]
fn alter_table_recompiles_filters_and_projections() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let spec = in_room(1).project(Projection::columns(["body"]));
    let sub = subscribe(&manager, connection.connection_id, spec);
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "old")),
        )
        .unwrap();

    // ALTER TABLE: a new column first, the rest reordered.
    let altered = TableSchema::new(
        messages(),
        TableScope::Shared,
        ["edited", "body", "room", "id"],
    );
    manager.register_table(altered).unwrap();
    let new_row = |id: i64, room: i64, body: &str| {
        Row::new(vec![
            Value::Bool(false),
            Value::text(body),
            Value::Int(room),
            Value::Int(id),
        ])
    };
    manager
        .publish(
            SeqId(2),
            ChangeNotification::insert(messages(), new_row(2, 1, "new")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(3),
            ChangeNotification::insert(messages(), new_row(3, 2, "other room")),
        )
        .unwrap();

    let received = drain(&mut connection.notifications);
    let bodies: Vec<Value> = received
        .iter()
        .map(|notification| {
            let Notification::Changes(set) = notification else {
                panic!("{notification:?}")
            };
            let change = set.changes().next().unwrap();
            assert_eq!(change.row.len(), 1);
            change.row.value(0).clone()
        })
        .collect();
    // The delivery queued before the change keeps rendering with the old schema.
    assert_eq!(bodies, vec![Value::text("old"), Value::text("new")]);
    // Numbering continued: no gap was reported.
    assert!(received
        .iter()
        .all(|notification| notification.kind() == "changes"));
    assert_eq!(
        manager
            .subscription(sub.live_query_id)
            .unwrap()
            .stats
            .delivered,
        2
    );
}

#[test]
fn alter_table_dropping_a_used_column_closes_with_a_typed_notice() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let by_room = subscribe(&manager, connection.connection_id, in_room(1));
    let everything = subscribe(
        &manager,
        connection.connection_id,
        QuerySpec::table(messages()).project(Projection::columns(["id"])),
    );
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "body"],
        ))
        .unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 1);
    match &received[0] {
        Notification::Closed {
            live_query_id,
            reason,
        } => {
            assert_eq!(*live_query_id, by_room.live_query_id);
            assert_eq!(
                *reason,
                CloseReason::SchemaChanged {
                    column: "room".into()
                }
            );
        }
        other => panic!("expected closed, got {other:?}"),
    }
    assert!(received[0]
        .to_json()
        .contains(r#""reason":"schema_changed""#));
    assert!(manager.subscription(by_room.live_query_id).is_err());
    // The other subscription lives on against the new schema.
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), Row::new(vec![Value::Int(9), Value::text("x")])),
        )
        .unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].live_query_id(), everything.live_query_id);
}

#[test]
fn alter_table_during_an_initial_load_requires_a_resync() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = manager
        .subscribe(
            connection.connection_id,
            in_room(1),
            SubscriptionOptions::with_initial_load(),
        )
        .unwrap();
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "room", "body", "extra"],
        ))
        .unwrap();
    let received = drain(&mut connection.notifications);
    assert!(
        matches!(received.as_slice(), [Notification::ResyncRequired { live_query_id }] if *live_query_id == sub.live_query_id)
    );
}

#[test]
fn re_registering_the_same_schema_changes_nothing() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(1));
    let key = manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "room", "body"],
        ))
        .unwrap();
    let again = manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "room", "body"],
        ))
        .unwrap();
    assert_eq!(key, again);
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "")),
        )
        .unwrap();
    assert_eq!(drain(&mut connection.notifications).len(), 1);
    assert!(matches!(
        manager.register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "ID"]
        )),
        Err(LiveError::InvalidSchema { .. })
    ));
}

/// Regression: a delivery queued before a schema change travels with the subscription's
/// previous version; unsubscribing must end that version too, so nothing of the
/// subscription is handed out after `unsubscribe` returns.
#[test]
fn unsubscribe_after_a_schema_change_skips_what_the_previous_version_queued() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = subscribe(&manager, connection.connection_id, in_room(1));
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "queued")),
        )
        .unwrap();
    let altered = TableSchema::new(messages(), TableScope::Shared, ["id", "room", "text"]);
    manager.register_table(altered).unwrap();
    manager.unsubscribe(sub.live_query_id).unwrap();
    let received = drain(&mut connection.notifications);
    assert!(received.is_empty(), "{received:?}");
}

#[test]
fn revoking_after_alter_table_ends_what_the_previous_version_queued() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(1));
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "queued")),
        )
        .unwrap();
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "room", "body", "extra"],
        ))
        .unwrap();
    assert_eq!(manager.revoke_user(&UserId::from("alice"), "expired"), 1);
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 1, "only the close notice: {received:?}");
    assert_eq!(received[0].kind(), "closed");
}

/// SQL names a table ignoring ASCII case, as SQLite does: a query may spell the table's
/// namespace and name in any case; an exact match wins, and a spelling two tables share
/// that way names neither.
#[test]
fn sql_names_tables_ignoring_case_unless_that_is_ambiguous() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = manager
        .subscribe_sql(
            connection.connection_id,
            "SELECT * FROM CHAT.Messages WHERE room = 1",
            SubscriptionOptions::default(),
        )
        .unwrap();
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "hi")),
        )
        .unwrap();
    assert_eq!(seqs(&drain(&mut connection.notifications)), [1]);
    let records = manager.live_query_records();
    let record = records
        .iter()
        .find(|record| record.live_query_id == sub.live_query_id)
        .unwrap();
    assert_eq!(record.table_id, messages(), "named as registered");

    for name in ["Twin", "twin"] {
        manager
            .register_table(TableSchema::new(
                TableId::new("ns", name),
                TableScope::Shared,
                ["id"],
            ))
            .unwrap();
    }
    for exact in ["Twin", "twin"] {
        let sql = format!("SELECT * FROM ns.{exact}");
        assert!(manager
            .subscribe_sql(
                connection.connection_id,
                &sql,
                SubscriptionOptions::default()
            )
            .is_ok());
    }
    assert!(matches!(
        manager.subscribe_sql(
            connection.connection_id,
            "SELECT * FROM ns.TWIN",
            SubscriptionOptions::default()
        ),
        Err(LiveError::UnknownTable(_))
    ));
}

/// A column whose values the database rewrote without a row change (its type changed):
/// the subscriptions reading it, in their filter, their projection or as `SELECT *`, close
/// with a typed notice; the others go on. Unknown names are typed errors that end nothing.
#[test]
fn rewritten_columns_close_the_subscriptions_reading_them() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let by_room = subscribe(&manager, connection.connection_id, in_room(1));
    let everything = subscribe(
        &manager,
        connection.connection_id,
        QuerySpec::table(messages()),
    );
    let room_shown = subscribe(
        &manager,
        connection.connection_id,
        QuerySpec::table(messages()).project(Projection::columns(["id", "ROOM"])),
    );
    let id_only = subscribe(
        &manager,
        connection.connection_id,
        QuerySpec::table(messages()).project(Projection::columns(["id"])),
    );
    // Still in its initial load: ended too.
    let loading = manager
        .subscribe(
            connection.connection_id,
            in_room(1),
            SubscriptionOptions::with_initial_load(),
        )
        .unwrap();
    assert!(matches!(
        manager.columns_rewritten(&messages(), &["room", "nope"]),
        Err(LiveError::UnknownColumn { column, .. }) if column == "nope"
    ));
    assert!(matches!(
        manager.columns_rewritten(&TableId::new("app", "missing"), &["room"]),
        Err(LiveError::UnknownTable(_))
    ));
    assert_eq!(
        manager.columns_rewritten::<&str>(&messages(), &[]).unwrap(),
        0
    );
    assert!(drain(&mut connection.notifications).is_empty());
    // A change queued for every subscription before the call: the ended ones' are not
    // handed out after it (the notice is the last of them), the others' are.
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(6, 1, "before")),
        )
        .unwrap();

    assert_eq!(
        manager
            .columns_rewritten(&messages(), &["body", "Room"])
            .unwrap(),
        4
    );
    let mut closed: Vec<(LiveQueryId, CloseReason)> = Vec::new();
    let mut changes = Vec::new();
    for notification in drain(&mut connection.notifications) {
        match notification {
            Notification::Closed {
                live_query_id,
                reason,
            } => closed.push((live_query_id, reason)),
            Notification::Changes(set) => changes.push(set.live_query_id()),
            other => panic!("expected closed or changes, got {other:?}"),
        }
    }
    assert_eq!(changes, vec![id_only.live_query_id]);
    closed.sort_by_key(|(id, _)| *id);
    // Each notice names a column the subscription reads, one its filter reads first.
    let schema_changed = |column: &str| CloseReason::SchemaChanged {
        column: column.into(),
    };
    let mut expected = vec![
        (by_room.live_query_id, schema_changed("room")),
        (everything.live_query_id, schema_changed("body")),
        (room_shown.live_query_id, schema_changed("room")),
        (loading.live_query_id, schema_changed("room")),
    ];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(closed, expected);
    for gone in [&by_room, &everything, &room_shown, &loading] {
        assert!(manager.subscription(gone.live_query_id).is_err());
    }
    // The subscription that reads neither goes on.
    manager
        .publish(
            SeqId(2),
            ChangeNotification::insert(messages(), message(7, 1, "after")),
        )
        .unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].live_query_id(), id_only.live_query_id);
    assert_eq!(
        manager.columns_rewritten(&messages(), &["room"]).unwrap(),
        0
    );
}
