//! The `serde` feature: the data types a host stores or sends round-trip through JSON.
#![cfg(feature = "serde")]

mod common;

use std::fmt::Debug;
use std::time::Duration;

use common::*;
use livecore::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[track_caller]
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> String {
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap_or_else(|error| panic!("{json}: {error}"));
    assert_eq!(&back, value, "{json}");
    json
}

#[test]
fn ids_values_rows_and_changes_round_trip() {
    round_trip(&ConnectionId(7));
    round_trip(&LiveQueryId::new(ConnectionId(1), SubscriptionId(2)));
    round_trip(&SeqId(u64::MAX));
    round_trip(&NodeId(3));
    assert_eq!(round_trip(&UserId::from("alice")), r#""alice""#);
    round_trip(&TableId::new("chat", "messages"));
    let row = Row::new(vec![
        Value::Null,
        Value::Bool(true),
        Value::Int(-5),
        Value::Float(1.5),
        Value::text("hé \"quoted\""),
        Value::bytes(&[0, 255]),
    ]);
    round_trip(&row);
    round_trip(&ChangeNotification::update(
        messages(),
        message(1, 1, "a"),
        message(1, 2, "b"),
    ));
    round_trip(&TableSchema::new(
        messages(),
        TableScope::User,
        ["id", "room"],
    ));
    round_trip(&SubscriptionEnding::Closed(CloseReason::Revoked {
        reason: "token expired".into(),
    }));
}

#[test]
fn options_records_stats_and_topic_configuration_round_trip() {
    round_trip(&SubscriptionOptions::resume_from(SeqId(10)));
    round_trip(&ManagerConfig::default());
    round_trip(&TopicConfig::partitions(4));
    round_trip(&GroupConfig::default().lease(Duration::from_secs(5)));
    round_trip(&GroupConfig::default().dead_letter("dlq", 3));
    // A config stored before it had a dead-letter field still reads, without one.
    let older: GroupConfig =
        serde_json::from_str(r#"{"reset":"Latest","lease_duration":{"secs":5,"nanos":0}}"#)
            .unwrap();
    assert_eq!(
        older,
        GroupConfig::with_reset(ResetPolicy::Latest).lease(Duration::from_secs(5))
    );

    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = subscribe(&manager, connection.connection_id, in_room(1));
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "")),
        )
        .unwrap();
    drain(&mut connection.notifications);
    let stats = manager.stats();
    assert_eq!(stats.delivered, 1);
    round_trip(&stats);
    round_trip(&manager.subscription(sub.live_query_id).unwrap().stats);
    let records = manager.live_query_records();
    assert_eq!(records.len(), 1);
    // A record's query is stored as its SQL text.
    let json = serde_json::to_string(&records[0]).unwrap();
    assert!(json.contains("chat.messages"), "{json}");
    let back: LiveQueryRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back.query.to_sql(), records[0].query.to_sql());
    assert_eq!(back.live_query_id, records[0].live_query_id);

    manager
        .create_topic("t", TopicConfig::partitions(1))
        .unwrap();
    round_trip(&manager.topic_info("t").unwrap());
}
