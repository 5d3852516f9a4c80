//! Retention and offsets outside the retained range.

use std::time::Duration;

use livecore::*;

use crate::common::*;
use crate::support::*;

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
    let no_position = LiveError::NoCommittedOffset {
        topic: "r".into(),
        group: "g".into(),
        partition: 0,
    };
    assert_eq!(
        manager.consume(me, "r", "g", 10, Duration::ZERO),
        Err(no_position.clone())
    );
    // The consume took the partition's lease, which handed nothing out: there is no
    // offset to commit, not even 0 (which would position the group where no seek did).
    assert_eq!(
        manager.commit_offset(me, "r", "g", 0, 0),
        Err(no_position.clone())
    );
    assert_eq!(manager.group_offsets("r", "g").unwrap()[0].committed, None);
    assert_eq!(
        manager.consume(me, "r", "g", 10, Duration::ZERO),
        Err(no_position)
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
