//! Every limit a client controls is typed.

use std::time::Duration;

use livecore::*;

use crate::common::*;
use crate::support::*;

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
        ("message payload and key (bytes)", 9, 0, 8)
    );
    // The key is stored with the message: it counts too.
    let keyed = DirectMessage {
        key: Some(Value::text("abc")),
        ..DirectMessage::new(SeqId(1), [0u8; 6])
    };
    assert_eq!(
        bounds(manager.publish_to_topic("t", keyed.clone()).unwrap_err()),
        ("message payload and key (bytes)", 9, 0, 8)
    );
    manager
        .publish_to_topic(
            "t",
            DirectMessage {
                payload: [0u8; 5].into(),
                ..keyed
            },
        )
        .unwrap();
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
