//! Topics, routes, consumer groups, leases and long-poll consume.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use livecore::*;

/// Registers and authenticates a consumer session.
fn consumer(manager: &ConnectionsManager, user: &str) -> ConnectionId {
    connect(manager, user).connection_id
}

fn bytes_of(message: &TopicMessage) -> String {
    match &message.payload {
        TopicPayload::Bytes(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("not a direct message: {other:?}"),
    }
}

fn change_of(message: &TopicMessage) -> &RowChange {
    match &message.payload {
        TopicPayload::Change(change) => change,
        other => panic!("not a row change: {other:?}"),
    }
}

fn publish_bytes(
    manager: &ConnectionsManager,
    topic: &str,
    seq: u64,
    body: &str,
) -> MessagePosition {
    manager
        .publish_to_topic(topic, DirectMessage::new(SeqId(seq), body))
        .unwrap()
}

fn offsets(batch: &ConsumeBatch) -> Vec<(u32, u64)> {
    batch
        .messages
        .iter()
        .map(|message| (message.partition, message.offset))
        .collect()
}

/// A manager with a one-partition topic "events" and a group "g" (earliest, 1 s lease).
fn with_topic() -> (Arc<ConnectionsManager>, Arc<ManualClock>) {
    let (manager, clock) = manager();
    manager
        .create_topic("events", TopicConfig::partitions(1))
        .unwrap();
    manager
        .create_consumer_group(
            "events",
            "g",
            GroupConfig::default().lease(Duration::from_secs(1)),
        )
        .unwrap();
    (manager, clock)
}

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
    let before = livecore::sync::locks_taken_by_this_thread();
    let summary = manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "x")),
        )
        .unwrap();
    assert_eq!(livecore::sync::locks_taken_by_this_thread(), before);
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
fn long_poll_returns_waiting_messages_at_once_and_parks_otherwise() {
    let (manager, _) = with_topic();
    // A long lease allows long polls, so "at once" is far from "after the timeout" even on
    // a busy machine.
    manager
        .create_consumer_group(
            "events",
            "long",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    let me = consumer(&manager, "worker");
    // Nothing waiting: an empty batch after the timeout, with the position.
    let started = Instant::now();
    let batch = manager
        .consume(me, "events", "long", 10, Duration::from_millis(60))
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert!(batch.is_empty());
    assert_eq!(batch.positions.len(), 1);
    assert_eq!(batch.positions[0].committed, Some(0));
    assert_eq!(batch.positions[0].next, Some(0));
    assert_eq!(batch.positions[0].end, 0);
    // Waiting messages: at once, whatever the timeout.
    publish_bytes(&manager, "events", 1, "one");
    let started = Instant::now();
    let batch = manager
        .consume(me, "events", "long", 10, Duration::from_secs(30))
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(offsets(&batch), [(0, 0)]);
    assert_eq!(batch.positions[0].next, Some(1));
    // Parked: woken by the publish, well before the timeout.
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let batch = manager
                .consume(me, "events", "long", 10, Duration::from_secs(30))
                .unwrap();
            (batch, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    publish_bytes(&manager, "events", 2, "two");
    let (batch, waited) = parked.join().unwrap();
    assert_eq!(
        batch
            .messages
            .iter()
            .map(|m| bytes_of(m))
            .collect::<Vec<_>>(),
        ["two"]
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
}

#[test]
fn consume_async_completes_when_a_message_arrives() {
    let (manager, _) = with_topic();
    let me = consumer(&manager, "worker");
    // Usable on multi-threaded runtimes.
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&manager.consume_async(me, "events", "g", 5));
    let publisher = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            publish_bytes(&manager, "events", 1, "async");
        })
    };
    let batch = block_on(manager.consume_async(me, "events", "g", 5)).unwrap();
    assert_eq!(bytes_of(&batch.messages[0]), "async");
    publisher.join().unwrap();
}

#[test]
fn redelivery_after_lease_expiry_from_the_committed_offset() {
    let (manager, clock) = with_topic();
    for seq in 0..3 {
        publish_bytes(&manager, "events", seq, &format!("m{seq}"));
    }
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    let batch = manager
        .consume(a, "events", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(offsets(&batch), [(0, 0), (0, 1), (0, 2)]);
    manager.commit_offset(a, "events", "g", 0, 1).unwrap();
    // While A's lease lives, B gets nothing.
    assert!(manager
        .consume(b, "events", "g", 10, Duration::ZERO)
        .unwrap()
        .is_empty());
    clock.advance(1_000);
    // The lease expired: B gets what A did not commit.
    let batch = manager
        .consume(b, "events", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(offsets(&batch), [(0, 1), (0, 2)]);
    // A's late commit is refused, naming the holder.
    assert_eq!(
        manager.commit_offset(a, "events", "g", 0, 3),
        Err(LiveError::NotLeaseHolder {
            topic: "events".into(),
            group: "g".into(),
            partition: 0,
            holder: Some(b),
        })
    );
    manager.commit_offset(b, "events", "g", 0, 3).unwrap();
    let stats = manager.group_stats("events", "g").unwrap();
    assert_eq!(stats.redelivered, 2);
    assert_eq!(stats.leases_expired, 1);
    let offsets_now = manager.group_offsets("events", "g").unwrap();
    assert_eq!(offsets_now[0].committed, Some(3));
    assert_eq!(offsets_now[0].lag, 0);
    assert_eq!(offsets_now[0].holder, Some(b));
    // The same session is redelivered to after its own lease expires.
    publish_bytes(&manager, "events", 3, "m3");
    assert_eq!(
        offsets(
            &manager
                .consume(b, "events", "g", 10, Duration::ZERO)
                .unwrap()
        ),
        [(0, 3)]
    );
    clock.advance(1_000);
    assert_eq!(
        offsets(
            &manager
                .consume(b, "events", "g", 10, Duration::ZERO)
                .unwrap()
        ),
        [(0, 3)]
    );
}

#[test]
fn unregistering_or_leaving_ends_leases() {
    let (manager, _) = with_topic();
    for seq in 0..2 {
        publish_bytes(&manager, "events", seq, "m");
    }
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    let c = consumer(&manager, "c");
    assert_eq!(
        manager
            .consume(a, "events", "g", 10, Duration::ZERO)
            .unwrap()
            .len(),
        2
    );
    manager.unregister_connection(a).unwrap();
    assert_eq!(
        offsets(
            &manager
                .consume(b, "events", "g", 10, Duration::ZERO)
                .unwrap()
        ),
        [(0, 0), (0, 1)]
    );
    manager.commit_offset(b, "events", "g", 0, 1).unwrap();
    manager.leave_group(b, "events", "g").unwrap();
    assert_eq!(
        offsets(
            &manager
                .consume(c, "events", "g", 10, Duration::ZERO)
                .unwrap()
        ),
        [(0, 1)]
    );
    assert!(matches!(
        manager.consume(a, "events", "g", 10, Duration::ZERO),
        Err(LiveError::UnknownConnection(_))
    ));
}

#[test]
fn unregistering_wakes_a_parked_consume() {
    let (manager, _) = with_topic();
    manager
        .create_consumer_group(
            "events",
            "long",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    let me = consumer(&manager, "a");
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            manager.consume(me, "events", "long", 10, Duration::from_secs(30))
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    manager.unregister_connection(me).unwrap();
    assert_eq!(
        parked.join().unwrap(),
        Err(LiveError::UnknownConnection(me))
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn deleting_the_topic_or_group_wakes_parked_consumes() {
    let (manager, _) = with_topic();
    let me = consumer(&manager, "a");
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.consume(me, "events", "g", 10, Duration::from_secs(1)))
    };
    std::thread::sleep(Duration::from_millis(50));
    manager.delete_consumer_group("events", "g").unwrap();
    assert!(matches!(
        parked.join().unwrap(),
        Err(LiveError::UnknownGroup { .. })
    ));
    manager
        .create_consumer_group(
            "events",
            "g2",
            GroupConfig::default().lease(Duration::from_secs(1)),
        )
        .unwrap();
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.consume(me, "events", "g2", 10, Duration::from_secs(1)))
    };
    std::thread::sleep(Duration::from_millis(50));
    manager.delete_topic("events").unwrap();
    assert_eq!(
        parked.join().unwrap(),
        Err(LiveError::UnknownTopic("events".into()))
    );
}

#[test]
fn check_connections_expires_leases_and_wakes_the_waiting() {
    let (manager, clock) = with_topic();
    publish_bytes(&manager, "events", 1, "m");
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    assert_eq!(
        manager
            .consume(a, "events", "g", 10, Duration::ZERO)
            .unwrap()
            .len(),
        1
    );
    let waiting = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (
                manager.consume(b, "events", "g", 10, Duration::from_secs(1)),
                started.elapsed(),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    clock.advance(1_000);
    let report = manager.check_connections_now();
    assert_eq!(report.leases_expired, 1);
    let (batch, waited) = waiting.join().unwrap();
    assert_eq!(offsets(&batch.unwrap()), [(0, 0)]);
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
}

#[test]
fn partitions_are_shared_among_members() {
    let (manager, _) = manager();
    manager
        .create_topic("p", TopicConfig::partitions(4))
        .unwrap();
    manager
        .create_consumer_group("p", "g", GroupConfig::default())
        .unwrap();
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    let c = consumer(&manager, "c");
    let held = |batch: &ConsumeBatch| {
        batch
            .positions
            .iter()
            .map(|p| p.partition)
            .collect::<Vec<_>>()
    };
    let first = manager.consume(a, "p", "g", 10, Duration::ZERO).unwrap();
    assert_eq!(held(&first).len(), 4);
    // B joins: nothing is free yet, A gives two up on its next pass.
    assert!(held(&manager.consume(b, "p", "g", 10, Duration::ZERO).unwrap()).is_empty());
    assert_eq!(
        held(&manager.consume(a, "p", "g", 10, Duration::ZERO).unwrap()).len(),
        2
    );
    assert_eq!(
        held(&manager.consume(b, "p", "g", 10, Duration::ZERO).unwrap()).len(),
        2
    );
    // C joins: shares of 2, 1, 1.
    manager.consume(c, "p", "g", 10, Duration::ZERO).unwrap();
    for _ in 0..2 {
        for member in [a, b, c] {
            manager
                .consume(member, "p", "g", 10, Duration::ZERO)
                .unwrap();
        }
    }
    let mut counts: Vec<usize> = [a, b, c]
        .iter()
        .map(|member| {
            held(
                &manager
                    .consume(*member, "p", "g", 10, Duration::ZERO)
                    .unwrap(),
            )
            .len()
        })
        .collect();
    counts.sort();
    assert_eq!(counts, [1, 1, 2]);
    let holders: Vec<Option<ConnectionId>> = manager
        .group_offsets("p", "g")
        .unwrap()
        .iter()
        .map(|partition| partition.holder)
        .collect();
    assert!(holders.iter().all(Option::is_some));
}

#[test]
fn a_waiting_member_nudges_a_parked_holder_to_share() {
    let (manager, _) = manager();
    manager
        .create_topic("p", TopicConfig::partitions(2))
        .unwrap();
    manager
        .create_consumer_group("p", "g", GroupConfig::default())
        .unwrap();
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    manager.consume(a, "p", "g", 10, Duration::ZERO).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let holder = {
        let (manager, stop) = (manager.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                manager
                    .consume(a, "p", "g", 10, Duration::from_secs(5))
                    .unwrap();
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    // B parks; its nudge makes A (parked for 5 s) release one partition at once, which B
    // takes (and keeps polling on, as nothing is published).
    let waiting = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.consume(b, "p", "g", 10, Duration::from_secs(2)))
    };
    let started = Instant::now();
    let holders = |member| {
        manager
            .group_offsets("p", "g")
            .unwrap()
            .iter()
            .filter(|partition| partition.holder == Some(member))
            .count()
    };
    while holders(b) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B never got a partition"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!((holders(a), holders(b)), (1, 1));
    // B's long poll still ends with its timeout and its position.
    let batch = waiting.join().unwrap().unwrap();
    assert!(batch.is_empty());
    assert_eq!(batch.positions.len(), 1);
    stop.store(true, Ordering::SeqCst);
    publish_bytes(&manager, "p", 1, "wake");
    publish_bytes(&manager, "p", 2, "wake");
    holder.join().unwrap();
}

#[test]
fn commits_only_move_forward_and_only_by_the_holder() {
    let (manager, _) = with_topic();
    for seq in 0..4 {
        publish_bytes(&manager, "events", seq, "m");
    }
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    assert_eq!(
        manager
            .consume(a, "events", "g", 2, Duration::ZERO)
            .unwrap()
            .len(),
        2
    );
    manager.commit_offset(a, "events", "g", 0, 2).unwrap();
    manager.commit_offset(a, "events", "g", 0, 2).unwrap();
    assert_eq!(
        manager.commit_offset(a, "events", "g", 0, 1),
        Err(LiveError::CommitBehind {
            partition: 0,
            offset: 1,
            committed: 2
        })
    );
    assert_eq!(
        manager.commit_offset(a, "events", "g", 0, 3),
        Err(LiveError::CommitAhead {
            partition: 0,
            offset: 3,
            delivered: 2
        })
    );
    assert!(matches!(
        manager.commit_offset(b, "events", "g", 0, 2),
        Err(LiveError::NotLeaseHolder { holder: Some(holder), .. }) if holder == a
    ));
    assert!(matches!(
        manager.commit_offset(a, "events", "g", 1, 2),
        Err(LiveError::UnknownPartition { .. })
    ));
    assert!(matches!(
        manager.commit_offset(a, "events", "nope", 0, 2),
        Err(LiveError::UnknownGroup { .. })
    ));
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(2)
    );
}

#[test]
fn offsets_out_of_range_are_typed() {
    let (manager, _) = manager();
    manager
        .create_topic("r", TopicConfig::partitions(1).retention(3, u64::MAX >> 40))
        .unwrap();
    for seq in 0..5 {
        publish_bytes(&manager, "r", seq, "m");
    }
    let out_of_range = |offset| LiveError::OffsetOutOfRange {
        topic: "r".into(),
        partition: 0,
        offset,
        start: 2,
        end: 5,
    };
    assert_eq!(manager.read_topic("r", 0, 1, 10), Err(out_of_range(1)));
    assert_eq!(manager.read_topic("r", 0, 6, 10), Err(out_of_range(6)));
    assert!(manager.read_topic("r", 0, 5, 10).unwrap().is_empty());
    manager
        .create_consumer_group("r", "g", GroupConfig::with_reset(ResetPolicy::None))
        .unwrap();
    assert_eq!(manager.seek_group("r", "g", 0, 1), Err(out_of_range(1)));
    assert_eq!(manager.seek_group("r", "g", 0, 6), Err(out_of_range(6)));
    let me = consumer(&manager, "a");
    // No position yet under the `None` policy.
    assert_eq!(
        manager.consume(me, "r", "g", 10, Duration::ZERO),
        Err(LiveError::NoCommittedOffset {
            topic: "r".into(),
            group: "g".into(),
            partition: 0
        })
    );
    manager.seek_group("r", "g", 0, 3).unwrap();
    assert_eq!(
        offsets(&manager.consume(me, "r", "g", 10, Duration::ZERO).unwrap()),
        [(0, 3), (0, 4)]
    );
    manager.commit_offset(me, "r", "g", 0, 4).unwrap();
    // Retention overtakes the committed offset: `None` refuses to skip.
    for seq in 5..9 {
        publish_bytes(&manager, "r", seq, "m");
    }
    manager.leave_group(me, "r", "g").unwrap();
    assert_eq!(
        manager.consume(me, "r", "g", 10, Duration::ZERO),
        Err(LiveError::OffsetOutOfRange {
            topic: "r".into(),
            partition: 0,
            offset: 4,
            start: 6,
            end: 9,
        })
    );
}

#[test]
fn reset_policies_choose_where_new_groups_start() {
    let (manager, _) = manager();
    manager
        .create_topic("r", TopicConfig::partitions(1).retention(3, u64::MAX >> 40))
        .unwrap();
    for seq in 0..5 {
        publish_bytes(&manager, "r", seq, "m");
    }
    for (name, reset) in [
        ("earliest", ResetPolicy::Earliest),
        ("latest", ResetPolicy::Latest),
        ("none", ResetPolicy::None),
    ] {
        manager
            .create_consumer_group("r", name, GroupConfig::with_reset(reset))
            .unwrap();
    }
    publish_bytes(&manager, "r", 5, "new");
    let me = consumer(&manager, "a");
    assert_eq!(
        offsets(
            &manager
                .consume(me, "r", "earliest", 10, Duration::ZERO)
                .unwrap()
        ),
        [(0, 3), (0, 4), (0, 5)]
    );
    assert_eq!(
        offsets(
            &manager
                .consume(me, "r", "latest", 10, Duration::ZERO)
                .unwrap()
        ),
        [(0, 5)]
    );
    assert!(matches!(
        manager.consume(me, "r", "none", 10, Duration::ZERO),
        Err(LiveError::NoCommittedOffset { .. })
    ));
    assert!(matches!(
        manager.create_consumer_group("r", "earliest", GroupConfig::default()),
        Err(LiveError::GroupExists { .. })
    ));
}

#[test]
fn retention_overtaking_a_group_skips_and_reports_under_earliest_and_latest() {
    for (reset, expected_next) in [(ResetPolicy::Earliest, 4u64), (ResetPolicy::Latest, 7)] {
        let (manager, _) = manager();
        manager
            .create_topic("r", TopicConfig::partitions(1).retention(3, u64::MAX >> 40))
            .unwrap();
        manager
            .create_consumer_group("r", "g", GroupConfig::with_reset(reset))
            .unwrap();
        let me = consumer(&manager, "a");
        publish_bytes(&manager, "r", 0, "m");
        assert_eq!(
            manager
                .consume(me, "r", "g", 1, Duration::ZERO)
                .unwrap()
                .len(),
            1
        );
        for seq in 1..7 {
            publish_bytes(&manager, "r", seq, "m");
        }
        // Offsets 0..4 are gone; 0 was handed out but never committed.
        let batch = manager.consume(me, "r", "g", 10, Duration::ZERO).unwrap();
        assert_eq!(
            batch.retention_skips,
            [RetentionSkip {
                partition: 0,
                from: 1,
                to: expected_next
            }]
        );
        let expected: Vec<(u32, u64)> = (expected_next..7).map(|offset| (0, offset)).collect();
        assert_eq!(offsets(&batch), expected);
        let stats = manager.group_stats("r", "g").unwrap();
        assert_eq!(stats.skipped_by_retention, expected_next - 1);
    }
}

#[test]
fn retention_bounds_messages_and_bytes() {
    let (manager, _) = manager();
    manager
        .create_topic(
            "count",
            TopicConfig::partitions(2).retention(10, u64::MAX >> 40),
        )
        .unwrap();
    for seq in 0..50 {
        manager
            .publish_to_topic("count", DirectMessage::new(SeqId(seq), "x").partition(1))
            .unwrap();
    }
    let info = manager.topic_info("count").unwrap();
    assert_eq!(
        info.bounds,
        [
            PartitionBounds { start: 0, end: 0 },
            PartitionBounds { start: 40, end: 50 }
        ]
    );
    assert_eq!(info.appended, 50);
    let size = TopicRecord {
        seq: SeqId(0),
        timestamp_ms: 0,
        key: None,
        payload: TopicPayload::Bytes(std::sync::Arc::from(&[0u8; 100][..])),
    }
    .size_bytes() as u64;
    manager
        .create_topic(
            "bytes",
            TopicConfig::partitions(1).retention(1_000, 5 * size),
        )
        .unwrap();
    for seq in 0..20 {
        manager
            .publish_to_topic("bytes", DirectMessage::new(SeqId(seq), [0u8; 100]))
            .unwrap();
    }
    assert_eq!(
        manager.topic_info("bytes").unwrap().bounds,
        [PartitionBounds { start: 15, end: 20 }]
    );
    let kept = manager.read_topic("bytes", 0, 15, 100).unwrap();
    assert_eq!(
        kept.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
        [15, 16, 17, 18, 19]
    );
}

#[test]
fn limits_are_typed() {
    let config = ManagerConfig {
        topics: TopicLimits {
            max_topics: 2,
            max_partitions: 4,
            max_routes: 1,
            max_groups_per_topic: 1,
            max_consume_messages: 5,
            max_poll_timeout: Duration::from_secs(2),
            min_lease: Duration::from_secs(1),
            max_lease: Duration::from_secs(10),
            max_retention_messages: 100,
            max_retention_bytes: 1 << 20,
            max_message_bytes: 8,
            max_name_len: 8,
            max_groups_per_session: 1,
        },
        ..ManagerConfig::default()
    };
    let (manager, _) = manager_with(config);
    let bounds = |error: LiveError| match error {
        LiveError::OutOfBounds {
            what,
            value,
            min,
            max,
        } => (what, value, min, max),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        bounds(
            manager
                .create_topic("t", TopicConfig::partitions(5))
                .unwrap_err()
        ),
        ("partitions", 5, 1, 4)
    );
    assert_eq!(
        bounds(
            manager
                .create_topic("t", TopicConfig::partitions(0))
                .unwrap_err()
        ),
        ("partitions", 0, 1, 4)
    );
    assert_eq!(
        bounds(
            manager
                .create_topic("t", TopicConfig::partitions(1).retention(101, 10))
                .unwrap_err()
        ),
        ("retention (messages)", 101, 1, 100)
    );
    assert_eq!(
        bounds(
            manager
                .create_topic("t", TopicConfig::partitions(1).retention(10, 2 << 20))
                .unwrap_err()
        ),
        ("retention (bytes)", 2 << 20, 1, 1 << 20)
    );
    let small = TopicConfig::partitions(1).retention(10, 1 << 10);
    assert_eq!(
        bounds(manager.create_topic("123456789", small).unwrap_err()).0,
        "name length (bytes)"
    );
    assert!(matches!(
        manager.create_topic("a b", small),
        Err(LiveError::InvalidName { .. })
    ));
    assert!(matches!(
        manager.create_topic("", small),
        Err(LiveError::InvalidName { .. })
    ));
    manager.create_topic("t", small).unwrap();
    assert_eq!(
        manager.create_topic("t", small),
        Err(LiveError::TopicExists("t".into()))
    );
    manager.create_topic("u", small).unwrap();
    assert_eq!(
        bounds(manager.create_topic("v", small).unwrap_err()),
        ("topics", 3, 0, 2)
    );
    manager
        .add_topic_route(TopicRouteSpec::new("t", messages()))
        .unwrap();
    assert_eq!(
        bounds(
            manager
                .add_topic_route(TopicRouteSpec::new("u", messages()))
                .unwrap_err()
        ),
        ("topic routes", 2, 0, 1)
    );
    assert_eq!(
        bounds(
            manager
                .create_consumer_group(
                    "t",
                    "g",
                    GroupConfig::default().lease(Duration::from_millis(999))
                )
                .unwrap_err()
        ),
        ("lease duration (ms)", 999, 1_000, 10_000)
    );
    assert_eq!(
        bounds(
            manager
                .create_consumer_group(
                    "t",
                    "g",
                    GroupConfig::default().lease(Duration::from_secs(11))
                )
                .unwrap_err()
        ),
        ("lease duration (ms)", 11_000, 1_000, 10_000)
    );
    manager
        .create_consumer_group(
            "t",
            "g",
            GroupConfig::default().lease(Duration::from_secs(1)),
        )
        .unwrap();
    assert_eq!(
        bounds(
            manager
                .create_consumer_group(
                    "t",
                    "h",
                    GroupConfig::default().lease(Duration::from_secs(1))
                )
                .unwrap_err()
        ),
        ("consumer groups of the topic", 2, 0, 1)
    );
    manager
        .create_consumer_group(
            "u",
            "g",
            GroupConfig::default().lease(Duration::from_secs(5)),
        )
        .unwrap();
    let me = consumer(&manager, "a");
    assert_eq!(
        bounds(
            manager
                .consume(me, "t", "g", 6, Duration::ZERO)
                .unwrap_err()
        ),
        ("max_messages", 6, 1, 5)
    );
    assert_eq!(
        bounds(
            manager
                .consume(me, "t", "g", 0, Duration::ZERO)
                .unwrap_err()
        ),
        ("max_messages", 0, 1, 5)
    );
    // The timeout is bounded by the limit and by the group's lease.
    assert_eq!(
        bounds(
            manager
                .consume(me, "t", "g", 5, Duration::from_millis(1_001))
                .unwrap_err()
        ),
        ("poll timeout (ms)", 1_001, 0, 1_000)
    );
    assert_eq!(
        bounds(
            manager
                .consume(me, "u", "g", 5, Duration::from_millis(2_001))
                .unwrap_err()
        ),
        ("poll timeout (ms)", 2_001, 0, 2_000)
    );
    manager.consume(me, "t", "g", 5, Duration::ZERO).unwrap();
    assert_eq!(
        bounds(
            manager
                .consume(me, "u", "g", 5, Duration::ZERO)
                .unwrap_err()
        ),
        ("consumer groups joined by one session", 2, 0, 1)
    );
    assert_eq!(
        bounds(
            manager
                .publish_to_topic("t", DirectMessage::new(SeqId(1), [0u8; 9]))
                .unwrap_err()
        ),
        ("message payload (bytes)", 9, 0, 8)
    );
    assert_eq!(
        bounds(manager.read_topic("t", 0, 0, 6).unwrap_err()),
        ("max_messages", 6, 1, 5)
    );
    // Unauthenticated connections may not consume.
    let anonymous = manager.register_connection().unwrap().connection_id;
    assert_eq!(
        manager.consume(anonymous, "t", "g", 1, Duration::ZERO),
        Err(LiveError::NotAuthenticated(anonymous))
    );
    // A parked consume stays within half the heartbeat timeout.
    let (short, _) = manager_with(ManagerConfig {
        ping_interval: Duration::from_secs(1),
        heartbeat_timeout: Duration::from_secs(3),
        ..ManagerConfig::default()
    });
    short.create_topic("t", TopicConfig::default()).unwrap();
    short
        .create_consumer_group("t", "g", GroupConfig::default())
        .unwrap();
    let me = consumer(&short, "a");
    assert_eq!(
        bounds(
            short
                .consume(me, "t", "g", 1, Duration::from_millis(1_501))
                .unwrap_err()
        ),
        ("poll timeout (ms)", 1_501, 0, 1_500)
    );
    let invalid = ManagerConfig {
        topics: TopicLimits {
            min_lease: Duration::from_secs(2),
            max_lease: Duration::from_secs(1),
            ..TopicLimits::default()
        },
        ..ManagerConfig::default()
    };
    assert!(matches!(
        invalid.validate(),
        Err(LiveError::InvalidConfig(_))
    ));
}

/// A store whose appends fail while `failing` is set, and which remembers committed
/// offsets like a durable store would.
struct FlakyLog {
    inner: MemoryLog,
    failing: Arc<AtomicBool>,
    commits: Arc<Mutex<Vec<(String, u32, u64)>>>,
}

impl TopicLog for FlakyLog {
    fn partitions(&self) -> u32 {
        self.inner.partitions()
    }
    fn append(&self, partition: u32, records: Vec<TopicRecord>) -> Result<u64, TopicLogError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(TopicLogError::Store("disk full".into()));
        }
        self.inner.append(partition, records)
    }
    fn read(
        &self,
        partition: u32,
        offset: u64,
        max_messages: usize,
        out: &mut Vec<std::sync::Arc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        self.inner.read(partition, offset, max_messages, out)
    }
    fn bounds(&self, partition: u32) -> Result<PartitionBounds, TopicLogError> {
        self.inner.bounds(partition)
    }
    fn commit_offset(&self, group: &str, partition: u32, offset: u64) -> Result<(), TopicLogError> {
        self.commits
            .lock()
            .unwrap()
            .push((group.to_string(), partition, offset));
        self.inner.commit_offset(group, partition, offset)
    }
    fn committed_offset(&self, group: &str, partition: u32) -> Result<Option<u64>, TopicLogError> {
        self.inner.committed_offset(group, partition)
    }
    fn delete_group(&self, group: &str) -> Result<(), TopicLogError> {
        self.inner.delete_group(group)
    }
}

#[test]
fn a_failing_store_is_counted_and_surfaced_never_silent() {
    let (manager, _) = manager();
    let failing = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(Mutex::new(Vec::new()));
    let log = FlakyLog {
        inner: MemoryLog::new(1, Retention::default()),
        failing: failing.clone(),
        commits: commits.clone(),
    };
    manager
        .create_topic_with_log("f", TopicConfig::partitions(1), Box::new(log))
        .unwrap();
    manager
        .add_topic_route(TopicRouteSpec::new("f", messages()))
        .unwrap();
    let mut live = connect(&manager, "watcher");
    manager
        .subscribe(
            live.connection_id,
            QuerySpec::table(messages()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    failing.store(true, Ordering::SeqCst);
    let summary = manager
        .publish_commit(
            SeqId(1),
            vec![
                ChangeNotification::insert(messages(), message(1, 1, "a")),
                ChangeNotification::insert(messages(), message(2, 1, "b")),
            ],
        )
        .unwrap();
    // The live query is served; the topic write failure is counted and explained.
    assert_eq!(summary.enqueued, 1);
    assert_eq!(summary.topic_messages, 0);
    assert_eq!(summary.topic_write_failures, 2);
    assert_eq!(changes_of(&drain(&mut live.notifications)).len(), 2);
    let info = manager.topic_info("f").unwrap();
    assert_eq!(info.write_failures, 2);
    assert_eq!(
        info.last_write_error.as_deref(),
        Some("the store of topic f failed: disk full")
    );
    assert_eq!(manager.stats().topic_write_failures, 2);
    // A direct publish gets the error itself.
    assert_eq!(
        manager.publish_to_topic("f", DirectMessage::new(SeqId(2), "x")),
        Err(LiveError::TopicStore {
            topic: "f".into(),
            reason: "disk full".into()
        })
    );
    failing.store(false, Ordering::SeqCst);
    let summary = manager
        .publish(
            SeqId(3),
            ChangeNotification::insert(messages(), message(3, 1, "c")),
        )
        .unwrap();
    assert_eq!(summary.topic_messages, 1);
    assert_eq!(manager.stats().topic_messages, 1);
    assert_eq!(manager.stats().topic_write_failures, 3);
    // Commits go through the store, which restores a re-created group.
    manager
        .create_consumer_group("f", "g", GroupConfig::default())
        .unwrap();
    let me = consumer(&manager, "a");
    let batch = manager.consume(me, "f", "g", 10, Duration::ZERO).unwrap();
    manager.commit_batch(me, &batch).unwrap();
    assert_eq!(
        commits.lock().unwrap().as_slice(),
        [("g".to_string(), 0, 1)]
    );
}

#[test]
fn a_durable_store_restores_messages_and_group_offsets() {
    let log = MemoryLog::new(2, Retention::default());
    for seq in 0..4u64 {
        log.append(
            (seq % 2) as u32,
            vec![TopicRecord {
                seq: SeqId(seq),
                timestamp_ms: 0,
                key: None,
                payload: TopicPayload::Bytes(std::sync::Arc::from(&b"old"[..])),
            }],
        )
        .unwrap();
    }
    log.commit_offset("g", 0, 1).unwrap();
    let (manager, _) = manager();
    assert!(matches!(
        manager.create_topic_with_log(
            "d",
            TopicConfig::partitions(3),
            Box::new(MemoryLog::new(2, Retention::default()))
        ),
        Err(LiveError::InvalidConfig(_))
    ));
    manager
        .create_topic_with_log("d", TopicConfig::partitions(2), Box::new(log))
        .unwrap();
    manager
        .create_consumer_group("d", "g", GroupConfig::default())
        .unwrap();
    let me = consumer(&manager, "a");
    let mut got = offsets(&manager.consume(me, "d", "g", 10, Duration::ZERO).unwrap());
    got.sort();
    assert_eq!(got, [(0, 1), (1, 0), (1, 1)]);
    // New messages wake consumers as usual.
    let position = publish_bytes(&manager, "d", 9, "new");
    assert_eq!(position.offset, 2);
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
        routes[0].broken.as_deref().unwrap().contains("room"),
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
fn shutdown_wakes_10k_parked_consumers() {
    // Futures polled by a tiny executor: 10k consumes parked at once without 10k threads.
    let (manager, _) = manager();
    manager
        .create_topic("s", TopicConfig::partitions(4))
        .unwrap();
    manager
        .create_consumer_group("s", "g", GroupConfig::default())
        .unwrap();
    const CONSUMERS: usize = 10_000;
    let ids: Vec<ConnectionId> = (0..CONSUMERS)
        .map(|index| consumer(&manager, &format!("c{index}")))
        .collect();
    let woken = Arc::new(Mutex::new(Vec::new()));
    let mut futures: Vec<_> = ids
        .iter()
        .map(|id| Box::pin(manager.consume_async(*id, "s", "g", 10)))
        .collect();
    let wakers: Vec<std::task::Waker> = (0..CONSUMERS)
        .map(|index| std::task::Waker::from(Arc::new(Flag(index, woken.clone()))))
        .collect();
    for (index, future) in futures.iter_mut().enumerate() {
        let mut context = std::task::Context::from_waker(&wakers[index]);
        assert!(
            future.as_mut().poll(&mut context).is_pending(),
            "consumer {index} did not park"
        );
    }
    let started = Instant::now();
    let report = manager.shutdown(Duration::ZERO);
    assert_eq!(report.notified, CONSUMERS);
    let mut done = vec![false; CONSUMERS];
    let mut finished = 0;
    while finished < CONSUMERS {
        // Not a timing claim: a consume never woken would hang the test instead.
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {finished} woke"
        );
        let ready: Vec<usize> = std::mem::take(&mut *woken.lock().unwrap());
        if ready.is_empty() {
            std::thread::yield_now();
        }
        for index in ready {
            if done[index] {
                continue;
            }
            let mut context = std::task::Context::from_waker(&wakers[index]);
            if let std::task::Poll::Ready(result) = futures[index].as_mut().poll(&mut context) {
                assert!(
                    matches!(result, Err(LiveError::ShuttingDown)),
                    "consumer {index}: {result:?}"
                );
                done[index] = true;
                finished += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    eprintln!("shutdown woke {CONSUMERS} parked async consumers in {elapsed:?}");
    assert!(matches!(
        manager.consume(ids[0], "s", "g", 1, Duration::ZERO),
        Err(LiveError::ShuttingDown)
    ));
}

#[test]
fn shutdown_wakes_10k_parked_consumer_threads() {
    let (manager, _) = manager();
    manager
        .create_topic("s", TopicConfig::partitions(4))
        .unwrap();
    manager
        .create_consumer_group(
            "s",
            "g",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    const CONSUMERS: usize = 10_000;
    // Registered first: authenticating writes through arc-swap, whose writers visit every
    // thread that has read through it (O(threads) per write with 10k threads alive).
    let ids: Vec<ConnectionId> = (0..CONSUMERS)
        .map(|index| consumer(&manager, &format!("c{index}")))
        .collect();
    // Each joins the group once from here, so the threads start as known sessions.
    for id in &ids {
        manager.consume(*id, "s", "g", 10, Duration::ZERO).unwrap();
    }
    let started = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = ids
        .iter()
        .map(|id| {
            let (manager, started, id) = (manager.clone(), started.clone(), *id);
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let result = manager.consume(id, "s", "g", 10, Duration::from_secs(30));
                    (result, Instant::now())
                })
                .expect("spawn a consumer thread")
        })
        .collect();
    while started.load(Ordering::SeqCst) < CONSUMERS as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every consumer has joined the group once all are parked.
    let deadline = Instant::now() + Duration::from_secs(20);
    while manager.group_stats("s", "g").unwrap().members < CONSUMERS {
        assert!(Instant::now() < deadline, "consumers did not all join");
        std::thread::sleep(Duration::from_millis(10));
    }
    // And every one has parked (the count is raised just before a consume parks; one
    // woken between the count and its park finds the token and returns at once).
    while manager.stats().consume_parks < CONSUMERS as u64 {
        assert!(Instant::now() < deadline, "consumers did not all park");
        std::thread::sleep(Duration::from_millis(10));
    }
    let shutdown_at = Instant::now();
    manager.shutdown(Duration::ZERO);
    let mut latest = shutdown_at;
    for thread in threads {
        let (result, returned_at) = thread.join().unwrap();
        assert!(
            matches!(
                result,
                Err(LiveError::ShuttingDown) | Err(LiveError::UnknownConnection(_))
            ),
            "{result:?}"
        );
        latest = latest.max(returned_at);
    }
    // A consume left parked would have returned an empty batch after its 30 s timeout,
    // which the match above refuses; the time is reported, not asserted.
    let elapsed = latest - shutdown_at;
    eprintln!("shutdown woke {CONSUMERS} parked consumer threads in {elapsed:?}");
}

struct Flag(usize, Arc<Mutex<Vec<usize>>>);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.1.lock().unwrap().push(self.0);
    }
}

#[test]
fn consuming_is_a_heartbeat_and_a_silent_consumer_times_out() {
    let (manager, clock) = manager();
    manager.create_topic("h", TopicConfig::default()).unwrap();
    manager
        // A lease far longer than the test: only the heartbeat timeout frees the partition.
        .create_consumer_group(
            "h",
            "g",
            GroupConfig::default().lease(Duration::from_secs(600)),
        )
        .unwrap();
    publish_bytes(&manager, "h", 1, "m");
    let mut active = connect(&manager, "active");
    let mut silent = connect(&manager, "silent");
    assert_eq!(
        manager
            .consume(silent.connection_id, "h", "g", 10, Duration::ZERO)
            .unwrap()
            .len(),
        1
    );
    for _ in 0..3 {
        clock.advance(40_000);
        manager
            .consume(active.connection_id, "h", "g", 10, Duration::ZERO)
            .unwrap();
        manager.check_connections_now();
    }
    // 120 s without a sign of life: the silent consumer timed out, the active one did not.
    let events = |registration: &mut ConnectionRegistration| {
        std::iter::from_fn(|| registration.events.try_recv().ok()).collect::<Vec<_>>()
    };
    assert!(events(&mut silent).contains(&ConnectionEvent::HeartbeatTimeout));
    assert!(!events(&mut active).contains(&ConnectionEvent::HeartbeatTimeout));
    // The host closes it; its uncommitted message goes to the active consumer.
    manager.unregister_connection(silent.connection_id).unwrap();
    let batch = manager
        .consume(active.connection_id, "h", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(offsets(&batch), [(0, 0)]);
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

/// A store that keeps gaps: offsets below `lost_below` are gone, and a read pushes from the
/// first retained offset after the one asked for (so, with nothing retained after it,
/// nothing). Its bounds start at `lost_below`, unless `claims_all` makes them claim every
/// offset. Counts its reads, and its drops.
struct GappyLog {
    inner: MemoryLog,
    lost_below: Arc<AtomicU64>,
    claims_all: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl GappyLog {
    fn new() -> Self {
        Self {
            inner: MemoryLog::new(1, Retention::default()),
            lost_below: Arc::default(),
            claims_all: Arc::default(),
            reads: Arc::default(),
            dropped: Arc::default(),
        }
    }
}

impl Drop for GappyLog {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl TopicLog for GappyLog {
    fn partitions(&self) -> u32 {
        1
    }
    fn append(&self, partition: u32, records: Vec<TopicRecord>) -> Result<u64, TopicLogError> {
        self.inner.append(partition, records)
    }
    fn read(
        &self,
        partition: u32,
        offset: u64,
        max_messages: usize,
        out: &mut Vec<std::sync::Arc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let from = offset.max(self.lost_below.load(Ordering::SeqCst));
        let end = self.inner.bounds(partition)?.end;
        if from >= end {
            return Ok(());
        }
        self.inner.read(partition, from, max_messages, out)
    }
    fn bounds(&self, partition: u32) -> Result<PartitionBounds, TopicLogError> {
        let mut bounds = self.inner.bounds(partition)?;
        if !self.claims_all.load(Ordering::SeqCst) {
            bounds.start = bounds.start.max(self.lost_below.load(Ordering::SeqCst));
        }
        Ok(bounds)
    }
    fn commit_offset(&self, group: &str, partition: u32, offset: u64) -> Result<(), TopicLogError> {
        self.inner.commit_offset(group, partition, offset)
    }
    fn committed_offset(&self, group: &str, partition: u32) -> Result<Option<u64>, TopicLogError> {
        self.inner.committed_offset(group, partition)
    }
    fn delete_group(&self, group: &str) -> Result<(), TopicLogError> {
        self.inner.delete_group(group)
    }
}

/// A manager with topic "gappy" over a [`GappyLog`] holding 3 messages it then lost, and a
/// group "g" that starts at 0 (it was created before the loss).
fn gappy_topic() -> (Arc<ConnectionsManager>, GappyHandles) {
    let (manager, _) = manager();
    let log = GappyLog::new();
    let handles = GappyHandles {
        lost_below: log.lost_below.clone(),
        claims_all: log.claims_all.clone(),
        reads: log.reads.clone(),
        dropped: log.dropped.clone(),
    };
    manager
        .create_topic_with_log("gappy", TopicConfig::partitions(1), Box::new(log))
        .unwrap();
    manager
        .create_consumer_group("gappy", "g", GroupConfig::default())
        .unwrap();
    for seq in 0..3 {
        publish_bytes(&manager, "gappy", seq, "lost");
    }
    handles.lost_below.store(3, Ordering::SeqCst);
    (manager, handles)
}

struct GappyHandles {
    lost_below: Arc<AtomicU64>,
    claims_all: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

#[test]
fn a_read_that_finds_a_gap_moves_past_it_and_parks_instead_of_spinning() {
    let (manager, store) = gappy_topic();
    let me = consumer(&manager, "worker");
    let parks = manager.stats().consume_parks;
    // The read at 0 finds nothing (everything up to the end is gone): the group moves past
    // the gap as for retention, then parks until the timeout. Before, each pass found
    // nothing while the end stood past the position, so it never parked (a spin).
    let batch = manager
        .consume(me, "gappy", "g", 10, Duration::from_millis(200))
        .unwrap();
    assert!(batch.is_empty());
    assert_eq!(
        batch.retention_skips,
        [RetentionSkip {
            partition: 0,
            from: 0,
            to: 3
        }]
    );
    assert_eq!(batch.positions[0].next, Some(3));
    assert!(manager.stats().consume_parks > parks);
    // A handful of passes, not a loop of reads: the gap read, and at most one per wake-up.
    let reads = store.reads.load(Ordering::SeqCst);
    assert!(reads <= 3, "{reads} reads");
    assert_eq!(
        manager
            .group_stats("gappy", "g")
            .unwrap()
            .skipped_by_retention,
        3
    );
    // Later messages come through.
    publish_bytes(&manager, "gappy", 3, "later");
    let batch = manager
        .consume(me, "gappy", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(offsets(&batch), [(0, 3)]);
    assert_eq!(bytes_of(&batch.messages[0]), "later");
}

#[test]
fn consume_async_parks_on_a_gap_and_completes_with_later_messages() {
    let (manager, _store) = gappy_topic();
    let me = consumer(&manager, "worker");
    let parks = manager.stats().consume_parks;
    let publisher = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            // Publish once the consume parked (counted, not timed).
            while manager.stats().consume_parks == parks {
                std::thread::yield_now();
            }
            publish_bytes(&manager, "gappy", 3, "later");
        })
    };
    let batch = block_on(manager.consume_async(me, "gappy", "g", 10)).unwrap();
    assert_eq!(offsets(&batch), [(0, 3)]);
    assert_eq!(batch.retention_skips[0].to, 3);
    publisher.join().unwrap();
}

#[test]
fn a_read_that_finds_nothing_the_store_claims_to_hold_is_a_store_error() {
    let (manager, store) = gappy_topic();
    store.claims_all.store(true, Ordering::SeqCst);
    let me = consumer(&manager, "worker");
    let error = manager
        .consume(me, "gappy", "g", 10, Duration::from_millis(200))
        .unwrap_err();
    assert!(
        matches!(&error, LiveError::TopicStore { reason, .. } if reason.contains("returned nothing below the end 3")),
        "{error}"
    );
    // Nothing moved: the group is still at 0.
    assert_eq!(
        manager.group_offsets("gappy", "g").unwrap()[0].committed,
        Some(0)
    );
    // lc_topic_read's Rust side says the same.
    assert!(matches!(
        manager.read_topic("gappy", 0, 0, 10),
        Err(LiveError::TopicStore { .. })
    ));
    store.claims_all.store(false, Ordering::SeqCst);
    assert!(matches!(
        manager.read_topic("gappy", 0, 0, 10),
        Err(LiveError::OffsetOutOfRange { start: 3, .. })
    ));
}

#[test]
fn an_unbounded_consume_timeout_is_typed_not_a_panic() {
    let (manager, _) = with_topic();
    let me = consumer(&manager, "worker");
    assert!(matches!(
        manager.consume(me, "events", "g", 10, Duration::MAX),
        Err(LiveError::OutOfBounds {
            what: "poll timeout (ms)",
            ..
        })
    ));
}

#[test]
fn deleting_a_topic_releases_its_store_without_waiting_for_sessions() {
    let (manager, store) = gappy_topic();
    store.lost_below.store(0, Ordering::SeqCst);
    let me = consumer(&manager, "worker");
    let batch = manager
        .consume(me, "gappy", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(store.dropped.load(Ordering::SeqCst), 0);
    manager.delete_topic("gappy").unwrap();
    // The session joined the topic's group, yet the store is dropped now.
    assert_eq!(store.dropped.load(Ordering::SeqCst), 1);
    assert!(matches!(
        manager.consume(me, "gappy", "g", 10, Duration::ZERO),
        Err(LiveError::UnknownTopic(_))
    ));
}
