//! Topic routes and direct publishing: what a route carries, partitioning, ordering, JSON.

use std::time::Duration;

use livecore::*;

use crate::common::*;
use crate::support::*;

/// (seq, key, change type, source type, row, old row) of a routed message.
type Seen = (
    u64,
    i64,
    ChangeType,
    ChangeType,
    Vec<Value>,
    Option<Vec<Value>>,
);

#[test]
fn route_feeds_filtered_projected_changes_with_old_rows_and_the_commit_seq() {
    let (manager, _) = manager();
    manager
        .create_topic("room7", TopicConfig::partitions(2))
        .unwrap();
    manager
        .add_topic_route(
            TopicRouteSpec::new("room7", messages())
                .filter_sql("room = 7")
                .project(Projection::columns(["id", "body"]))
                .change_types(ChangeTypes::of(&[ChangeType::Insert, ChangeType::Update]))
                .key_column("id"),
        )
        .unwrap();
    manager
        .create_consumer_group("room7", "g", GroupConfig::default())
        .unwrap();
    let summary = manager
        .publish_commit(
            SeqId(5),
            vec![
                ChangeNotification::insert(messages(), message(1, 7, "hello")),
                ChangeNotification::insert(messages(), message(2, 8, "elsewhere")),
            ],
        )
        .unwrap();
    assert_eq!(summary.topic_messages, 1);
    assert_eq!(summary.topic_write_failures, 0);
    // An update entering room 7 is an insert for the route, and keeps the old row.
    manager
        .publish(
            SeqId(6),
            ChangeNotification::update(
                messages(),
                message(2, 8, "elsewhere"),
                message(2, 7, "moved"),
            ),
        )
        .unwrap();
    // An update staying in room 7.
    manager
        .publish(
            SeqId(7),
            ChangeNotification::update(messages(), message(1, 7, "hello"), message(1, 7, "edited")),
        )
        .unwrap();
    // Deletes are not routed; an update leaving room 7 is a delete for the route.
    manager
        .publish(
            SeqId(8),
            ChangeNotification::delete(messages(), message(1, 7, "edited")),
        )
        .unwrap();
    let summary = manager
        .publish(
            SeqId(9),
            ChangeNotification::update(messages(), message(2, 7, "moved"), message(2, 9, "gone")),
        )
        .unwrap();
    assert_eq!(summary.topic_messages, 0);

    let me = consumer(&manager, "worker");
    let batch = manager
        .consume(me, "room7", "g", 100, Duration::ZERO)
        .unwrap();
    assert_eq!(batch.len(), 3);
    let mut seen: Vec<Seen> = batch
        .messages
        .iter()
        .map(|message| {
            let change = change_of(message);
            let Some(Value::Int(id)) = message.key.clone() else {
                panic!("keyed by id");
            };
            assert_eq!(change.table_id, messages());
            assert_eq!(
                &*change
                    .columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>(),
                ["id", "body"]
            );
            (
                message.seq.0,
                id,
                change.change_type,
                change.source_type,
                change.row.values().to_vec(),
                change.old_row.as_ref().map(|row| row.values().to_vec()),
            )
        })
        .collect();
    seen.sort_by_key(|entry| entry.0);
    assert_eq!(
        seen,
        vec![
            (
                5,
                1,
                ChangeType::Insert,
                ChangeType::Insert,
                vec![Value::Int(1), Value::text("hello")],
                None
            ),
            (
                6,
                2,
                ChangeType::Insert,
                ChangeType::Update,
                vec![Value::Int(2), Value::text("moved")],
                Some(vec![Value::Int(2), Value::text("elsewhere")])
            ),
            (
                7,
                1,
                ChangeType::Update,
                ChangeType::Update,
                vec![Value::Int(1), Value::text("edited")],
                Some(vec![Value::Int(1), Value::text("hello")])
            ),
        ]
    );
    // Both messages of key 1 are in one partition, in publish order.
    let key1: Vec<&DataArc<TopicMessage>> = batch
        .messages
        .iter()
        .filter(|message| message.key == Some(Value::Int(1)))
        .collect();
    assert_eq!(key1[0].partition, key1[1].partition);
    assert!(key1[0].offset < key1[1].offset);
}

type DataArc<T> = std::sync::Arc<T>;

#[test]
fn messages_render_as_json() {
    let (manager, _) = manager();
    manager.create_topic("t", TopicConfig::default()).unwrap();
    manager
        .add_topic_route(TopicRouteSpec::new("t", messages()).key_column("room"))
        .unwrap();
    manager
        .publish(
            SeqId(3),
            ChangeNotification::update(messages(), message(1, 7, "a"), message(1, 7, "b")),
        )
        .unwrap();
    publish_bytes(&manager, "t", 4, "raw");
    let messages = manager.read_topic("t", 0, 0, 10).unwrap();
    let first = messages[0].to_json();
    assert!(
        first.starts_with(r#"{"partition":0,"offset":0,"seq":3,"timestamp_ms":"#),
        "{first}"
    );
    assert!(
        first.ends_with(r#","key":7,"change":{"op":"update","source_op":"update","table":"chat.messages","row":{"id":1,"room":7,"body":"b"},"old":{"id":1,"room":7,"body":"a"}}}"#),
        "{first}"
    );
    let second = messages[1].to_json();
    assert!(
        second.ends_with(r#","key":null,"payload":"cmF3"}"#),
        "{second}"
    );
    serde_json::from_str::<serde_json::Value>(&first).unwrap();
    serde_json::from_str::<serde_json::Value>(&second).unwrap();
}

#[test]
fn order_within_a_partition_follows_publish_order() {
    let (manager, _) = manager();
    manager
        .create_topic("chat", TopicConfig::partitions(4))
        .unwrap();
    manager
        .add_topic_route(TopicRouteSpec::new("chat", messages()).key_column("room"))
        .unwrap();
    manager
        .create_consumer_group("chat", "g", GroupConfig::default())
        .unwrap();
    for seq in 1..=400u64 {
        let room = (seq % 13) as i64;
        manager
            .publish(
                SeqId(seq),
                ChangeNotification::insert(messages(), message(seq as i64, room, "m")),
            )
            .unwrap();
    }
    let me = consumer(&manager, "worker");
    let mut received = Vec::new();
    loop {
        let batch = manager
            .consume(me, "chat", "g", 37, Duration::ZERO)
            .unwrap();
        if batch.is_empty() {
            break;
        }
        manager.commit_batch(me, &batch).unwrap();
        received.extend(batch.messages);
    }
    assert_eq!(received.len(), 400);
    let mut room_partition = std::collections::HashMap::new();
    let mut last_offset = [None::<u64>; 4];
    let mut last_seq_of_room = std::collections::HashMap::new();
    for message in &received {
        let room = message.key.clone().unwrap();
        let Value::Int(room) = room else { panic!() };
        // One room, one partition.
        assert_eq!(
            *room_partition.entry(room).or_insert(message.partition),
            message.partition
        );
        // Offsets of a partition arrive in order, without gaps.
        let slot = &mut last_offset[message.partition as usize];
        assert_eq!(message.offset, slot.map_or(0, |offset| offset + 1));
        *slot = Some(message.offset);
        // And so do each room's commits.
        let previous = last_seq_of_room.insert(room, message.seq);
        assert!(previous < Some(message.seq));
    }
    // Every partition was used.
    assert!(last_offset.iter().all(Option::is_some));
}

#[test]
fn route_sql_is_typed_and_positioned() {
    let (manager, _) = manager();
    manager.create_topic("t", TopicConfig::default()).unwrap();
    let error = manager
        .add_topic_route(TopicRouteSpec::new("t", messages()).filter_sql("room = = 7"))
        .unwrap_err();
    match error {
        LiveError::Sql { line, column, .. } => assert_eq!((line, column), (1, 8)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        manager.add_topic_route(TopicRouteSpec::new("t", messages()).filter_sql("nope = 1")),
        Err(LiveError::UnknownColumn { .. })
    ));
    assert!(matches!(
        manager.add_topic_route(
            TopicRouteSpec::new("t", messages()).filter_sql("room = 1 ORDER BY id")
        ),
        Err(LiveError::Sql { .. })
    ));
    // An over-long filter is refused by its own length, not the wrapped statement's.
    let long = format!("room = 1{}", " ".repeat(MAX_SUBSCRIPTION_SQL_LEN));
    match manager.add_topic_route(TopicRouteSpec::new("t", messages()).filter_sql(&long)) {
        Err(LiveError::OutOfBounds { what, value, .. }) => {
            assert_eq!(
                (what, value),
                ("route filter SQL length (bytes)", long.len() as u64)
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        manager.add_topic_route(TopicRouteSpec::new("t", messages()).key_column("nope")),
        Err(LiveError::UnknownColumn { .. })
    ));
    assert!(matches!(
        manager.add_topic_route(TopicRouteSpec::new("t", TableId::new("chat", "nope"))),
        Err(LiveError::UnknownTable(_))
    ));
    assert!(matches!(
        manager.add_topic_route(TopicRouteSpec::new("nope", messages())),
        Err(LiveError::UnknownTopic(_))
    ));
    assert!(matches!(
        manager.add_topic_route(
            TopicRouteSpec::new("t", messages()).change_types(ChangeTypes::of(&[]))
        ),
        Err(LiveError::InvalidFilter(_))
    ));
    // A whole query: table, filter and projection from SQL.
    let spec = manager
        .topic_route_from_sql("t", "SELECT body FROM chat.messages WHERE room IN (1, 2)")
        .unwrap();
    assert_eq!(spec.projection, Projection::columns(["body"]));
    let id = manager.add_topic_route(spec).unwrap();
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 2, "x")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(2),
            ChangeNotification::insert(messages(), message(2, 3, "y")),
        )
        .unwrap();
    let read = manager.read_topic("t", 0, 0, 10).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(change_of(&read[0]).row.values(), [Value::text("x")]);
    let routes = manager.topic_routes("t").unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].routed, 1);
    manager.remove_topic_route(id).unwrap();
    assert_eq!(
        manager.remove_topic_route(id),
        Err(LiveError::UnknownTopicRoute(id.0))
    );
    manager
        .publish(
            SeqId(3),
            ChangeNotification::insert(messages(), message(3, 2, "z")),
        )
        .unwrap();
    assert_eq!(manager.topic_info("t").unwrap().bounds[0].end, 1);
}

#[test]
fn publishing_without_routes_takes_no_lock() {
    let (manager, _) = manager();
    manager.create_topic("t", TopicConfig::default()).unwrap();
    // A route on another table exists, so the route table is consulted.
    manager
        .add_topic_route(TopicRouteSpec::new("t", notes()))
        .unwrap();
    let before = livecore::locks_taken_by_this_thread();
    let summary = manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "x")),
        )
        .unwrap();
    assert_eq!(livecore::locks_taken_by_this_thread(), before);
    assert_eq!(summary.topic_messages, 0);
}

#[test]
fn a_route_without_key_column_takes_partitions_in_turn() {
    let (manager, _) = manager();
    manager
        .create_topic("spread", TopicConfig::partitions(3))
        .unwrap();
    manager
        .add_topic_route(TopicRouteSpec::new("spread", messages()))
        .unwrap();
    // Single-change commits, then one commit of three changes: each change takes a turn.
    for seq in 1..=6u64 {
        manager
            .publish(
                SeqId(seq),
                ChangeNotification::insert(messages(), message(seq as i64, 1, "m")),
            )
            .unwrap();
    }
    let summary = manager
        .publish_commit(
            SeqId(7),
            (7..=9)
                .map(|id| ChangeNotification::insert(messages(), message(id, 1, "m")))
                .collect(),
        )
        .unwrap();
    assert_eq!(summary.topic_messages, 3);
    let mut ids_by_partition = Vec::new();
    for partition in 0..3 {
        let read = manager.read_topic("spread", partition, 0, 10).unwrap();
        let ids: Vec<Value> = read
            .iter()
            .map(|message| change_of(message).row.value(0).clone())
            .collect();
        // Each partition keeps publish order.
        let offsets: Vec<u64> = read.iter().map(|message| message.offset).collect();
        assert_eq!(offsets, [0, 1, 2], "partition {partition}");
        ids_by_partition.push(ids);
    }
    // Nine changes over three partitions in turn: three each, every third id together.
    let mut all: Vec<i64> = Vec::new();
    for ids in &ids_by_partition {
        let ids: Vec<i64> = ids
            .iter()
            .map(|value| match value {
                Value::Int(id) => *id,
                other => panic!("id {other:?}"),
            })
            .collect();
        assert!(
            ids.windows(2).all(|pair| pair[1] == pair[0] + 3),
            "turns: {ids:?}"
        );
        all.extend(ids);
    }
    all.sort();
    assert_eq!(all, (1..=9).collect::<Vec<i64>>());
}

#[test]
fn direct_publish_partitions_by_partition_key_or_turn() {
    let (manager, _) = manager();
    manager
        .create_topic("d", TopicConfig::partitions(3))
        .unwrap();
    let a = manager
        .publish_to_topic("d", DirectMessage::new(SeqId(1), "a").key("k"))
        .unwrap();
    let b = manager
        .publish_to_topic("d", DirectMessage::new(SeqId(2), "b").key("k"))
        .unwrap();
    assert_eq!(a.partition, b.partition);
    assert_eq!(b.offset, a.offset + 1);
    let explicit = manager
        .publish_to_topic("d", DirectMessage::new(SeqId(3), "c").partition(2))
        .unwrap();
    assert_eq!(explicit.partition, 2);
    let turns: Vec<u32> = (0..3)
        .map(|seq| publish_bytes(&manager, "d", seq, "rr").partition)
        .collect();
    let mut sorted = turns.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2]);
    assert!(matches!(
        manager.publish_to_topic("d", DirectMessage::new(SeqId(4), "x").partition(3)),
        Err(LiveError::UnknownPartition {
            partition: 3,
            partitions: 3,
            ..
        })
    ));
    // Keys that are SQL-equal share a partition.
    let int = manager
        .publish_to_topic("d", DirectMessage::new(SeqId(5), "x").key(7))
        .unwrap();
    let float = manager
        .publish_to_topic("d", DirectMessage::new(SeqId(6), "x").key(7.0))
        .unwrap();
    assert_eq!(int.partition, float.partition);
    let read = manager.read_topic("d", a.partition, a.offset, 2).unwrap();
    assert_eq!(
        read.iter().map(|m| bytes_of(m)).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(read[1].seq, SeqId(2));
}

#[test]
fn schema_changes_recompile_routes_and_a_broken_route_counts_failures() {
    let (manager, _) = manager();
    manager.create_topic("s", TopicConfig::default()).unwrap();
    manager
        .add_topic_route(
            TopicRouteSpec::new("s", messages())
                .filter_sql("room = 1")
                .project(Projection::columns(["body"])),
        )
        .unwrap();
    // Columns move: the route follows them by name.
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["body", "id", "room"],
        ))
        .unwrap();
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(
                messages(),
                vec![Value::text("moved"), Value::Int(1), Value::Int(1)],
            ),
        )
        .unwrap();
    let read = manager.read_topic("s", 0, 0, 10).unwrap();
    assert_eq!(change_of(&read[0]).row.values(), [Value::text("moved")]);
    // The filtered column goes away: every change of the table is a counted failure.
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["body", "id"],
        ))
        .unwrap();
    let summary = manager
        .publish(
            SeqId(2),
            ChangeNotification::insert(messages(), vec![Value::text("x"), Value::Int(2)]),
        )
        .unwrap();
    assert_eq!(summary.topic_write_failures, 1);
    let routes = manager.topic_routes("s").unwrap();
    assert_eq!(routes[0].broken_changes, 1);
    assert!(
        routes[0]
            .broken
            .as_ref()
            .unwrap()
            .to_string()
            .contains("room"),
        "{:?}",
        routes[0].broken
    );
    assert_eq!(manager.topic_info("s").unwrap().write_failures, 1);
    // Dropping the table removes its routes.
    manager.drop_table(&messages()).unwrap();
    assert!(manager.topic_routes("s").unwrap().is_empty());
}

#[test]
fn user_scoped_changes_carry_their_owner() {
    let (manager, _) = manager();
    manager.create_topic("n", TopicConfig::default()).unwrap();
    manager
        .add_topic_route(TopicRouteSpec::new("n", notes()))
        .unwrap();
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(notes(), note(1, "t", 5)).owned_by("alice"),
        )
        .unwrap();
    let read = manager.read_topic("n", 0, 0, 1).unwrap();
    assert_eq!(change_of(&read[0]).owner, Some(UserId::from("alice")));
    assert!(read[0].to_json().contains(r#""owner":"alice""#));
}

#[test]
fn a_row_leaving_a_routes_filter_is_carried_as_it_was() {
    let (manager, _) = manager();
    manager
        .create_topic("room7", TopicConfig::partitions(1))
        .unwrap();
    manager
        .add_topic_route(
            TopicRouteSpec::new("room7", messages())
                .filter_sql("room = 7")
                .project(Projection::columns(["id", "body"])),
        )
        .unwrap();
    manager
        .create_consumer_group("room7", "g", GroupConfig::default())
        .unwrap();
    manager
        .publish(
            SeqId(1),
            ChangeNotification::update(
                messages(),
                message(2, 7, "was here"),
                message(2, 9, "gone"),
            ),
        )
        .unwrap();
    let me = consumer(&manager, "worker");
    let batch = manager
        .consume(me, "room7", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(batch.len(), 1);
    let change = change_of(&batch.messages[0]);
    assert_eq!(
        (change.change_type, change.source_type),
        (ChangeType::Delete, ChangeType::Update)
    );
    assert_eq!(
        change.row.values(),
        [Value::Int(2), Value::text("was here")]
    );
    assert_eq!(
        change.old_row.as_ref().map(|row| row.values().to_vec()),
        Some(vec![Value::Int(2), Value::text("was here")])
    );
}

/// A route reads a bare TRUE or FALSE as the table's column of that name, as a
/// subscription and SQLite do: from whole SQL and from WHERE text alike.
#[test]
fn routes_read_true_and_false_as_columns_where_the_table_has_them() {
    let (manager, _clock) = manager();
    manager
        .create_topic("t", TopicConfig::partitions(1))
        .unwrap();
    let flags = TableId::new("ns", "flags");
    manager
        .register_table(TableSchema::new(
            flags.clone(),
            TableScope::Shared,
            ["id", "true", "false"],
        ))
        .unwrap();
    manager
        .add_topic_route(
            manager
                .topic_route_from_sql("t", "SELECT id FROM ns.flags WHERE true")
                .unwrap(),
        )
        .unwrap();
    manager
        .add_topic_route(TopicRouteSpec::new("t", flags.clone()).filter_sql("NOT false"))
        .unwrap();
    // Routed by the first route when column `true` is set, by the second when `false` is
    // not: ids 2 and 3 by one each, id 1 by neither.
    for (seq, row) in [[1, 0, 1], [2, 1, 1], [3, 0, 0]].into_iter().enumerate() {
        let values = row.iter().map(|&value| Value::Int(value)).collect();
        manager
            .publish(
                SeqId(seq as u64 + 1),
                ChangeNotification::insert(flags.clone(), Row::new(values)),
            )
            .unwrap();
    }
    let read = manager.read_topic("t", 0, 0, 10).unwrap();
    let mut ids: Vec<Value> = read
        .iter()
        .map(|message| change_of(message).row.values()[0].clone())
        .collect();
    ids.sort_by_key(|value| format!("{value:?}"));
    assert_eq!(ids, [Value::Int(2), Value::Int(3)]);
}
