//! Negative acknowledgement (now or after a delay, head of line) and explicit lease
//! extension.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use livecore::*;

use crate::common::*;
use crate::support::*;

fn bodies(batch: &ConsumeBatch) -> Vec<String> {
    batch.messages.iter().map(|m| bytes_of(m)).collect()
}

#[test]
fn nack_hands_out_again_from_the_nacked_message() {
    let (manager, _clock) = with_topic();
    for seq in 0..3 {
        publish_bytes(&manager, "events", seq, &format!("m{seq}"));
    }
    let a = consumer(&manager, "a");
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["m0", "m1", "m2"]);
    manager.commit_offset(a, "events", "g", 0, 1).unwrap();
    manager
        .nack(a, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    // The nacked message and what followed it, in order; the commit stays.
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["m1", "m2"]);
    let offsets_now = manager.group_offsets("events", "g").unwrap();
    assert_eq!(offsets_now[0].committed, Some(1));
    assert_eq!(offsets_now[0].delivered, Some(3));
    let stats = manager.group_stats("events", "g").unwrap();
    assert_eq!(stats.nacks, 1);
    assert_eq!(stats.nack_redelivered, 2);
    // Not a lease expiry: the expiry counters did not move.
    assert_eq!(stats.leases_expired, 0);
    assert_eq!(stats.redelivered, 0);
}

#[test]
fn a_delayed_nack_holds_the_partition_until_the_delay_passes() {
    let (manager, clock) = with_topic();
    publish_bytes(&manager, "events", 0, "m0");
    publish_bytes(&manager, "events", 1, "m1");
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["m0", "m1"]);
    manager
        .nack(a, "events", "g", 0, 0, Duration::from_millis(400))
        .unwrap();
    // Head of line: nothing of the partition is handed out while the delay runs, not even
    // a message published after the nack, and not to another member.
    publish_bytes(&manager, "events", 2, "m2");
    assert!(next_batch(&manager, a).is_empty());
    assert!(next_batch(&manager, b).is_empty());
    clock.advance(399);
    assert!(next_batch(&manager, a).is_empty());
    clock.advance(1);
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["m0", "m1", "m2"]);
}

#[test]
fn a_parked_consume_wakes_when_the_nack_delay_ends() {
    let (manager, clock) = with_topic();
    publish_bytes(&manager, "events", 0, "m0");
    let a = consumer(&manager, "a");
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["m0"]);
    manager
        .nack(a, "events", "g", 0, 0, Duration::from_millis(300))
        .unwrap();
    let parks = manager.stats().consume_parks;
    let waiter = {
        let manager = Arc::clone(&manager);
        std::thread::spawn(move || {
            manager
                .consume(a, "events", "g", 10, Duration::from_millis(900))
                .unwrap()
        })
    };
    wait_for_parks(&manager, parks + 1);
    clock.advance(300);
    let batch = waiter.join().unwrap();
    assert_eq!(bodies(&batch), ["m0"]);
}

#[test]
fn nack_is_checked_like_a_commit() {
    let (manager, _clock) = with_topic();
    for seq in 0..3 {
        publish_bytes(&manager, "events", seq, &format!("m{seq}"));
    }
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    manager
        .consume(a, "events", "g", 2, Duration::ZERO)
        .unwrap();
    manager.commit_offset(a, "events", "g", 0, 1).unwrap();
    assert_eq!(
        manager.nack(b, "events", "g", 0, 1, Duration::ZERO),
        Err(LiveError::NotLeaseHolder {
            topic: "events".into(),
            group: "g".into(),
            partition: 0,
            holder: Some(a),
        })
    );
    assert_eq!(
        manager.nack(a, "events", "g", 0, 0, Duration::ZERO),
        Err(LiveError::CommitBehind {
            partition: 0,
            offset: 0,
            committed: 1
        })
    );
    // Offset 2 was never handed out.
    assert_eq!(
        manager.nack(a, "events", "g", 0, 2, Duration::ZERO),
        Err(LiveError::CommitAhead {
            partition: 0,
            offset: 2,
            delivered: 2
        })
    );
    assert_eq!(
        manager.nack(a, "events", "g", 0, 1, Duration::from_millis(1_001)),
        Err(LiveError::OutOfBounds {
            what: "nack delay (ms)",
            value: 1_001,
            min: 0,
            max: 1_000
        })
    );
    assert!(matches!(
        manager.nack(a, "events", "g", 1, 1, Duration::ZERO),
        Err(LiveError::UnknownPartition { .. })
    ));
    assert!(matches!(
        manager.nack(a, "events", "nope", 0, 1, Duration::ZERO),
        Err(LiveError::UnknownGroup { .. })
    ));
    assert_eq!(
        manager.nack(ConnectionId(999_999), "events", "g", 0, 1, Duration::ZERO),
        Err(LiveError::UnknownConnection(ConnectionId(999_999)))
    );
    // None of the refused nacks moved anything.
    assert_eq!(manager.group_stats("events", "g").unwrap().nacks, 0);
    assert!(next_batch(&manager, a)
        .messages
        .iter()
        .all(|m| m.offset == 2));
}

/// A consumer that fails messages at random (a fixed-seed generator) and nacks them,
/// sometimes with a delay, over several keyed partitions: for every key, the messages it
/// finishes are that key's messages in publish order, each once.
#[test]
fn order_per_key_holds_under_nacks() {
    let (manager, clock) = manager();
    manager
        .create_topic("orders", TopicConfig::partitions(3))
        .unwrap();
    manager
        .create_consumer_group(
            "orders",
            "g",
            GroupConfig::default().lease(Duration::from_secs(1)),
        )
        .unwrap();
    let keys = 7i64;
    let per_key = 30i64;
    for n in 0..per_key {
        for key in 0..keys {
            manager
                .publish_to_topic(
                    "orders",
                    DirectMessage::new(SeqId((n * keys + key) as u64), format!("{key}:{n}"))
                        .key(key),
                )
                .unwrap();
        }
    }
    let a = consumer(&manager, "a");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut finished: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut total = 0;
    let mut nacks = 0;
    for _ in 0..10_000 {
        if total == keys * per_key {
            break;
        }
        let batch = manager
            .consume(a, "orders", "g", 8, Duration::ZERO)
            .unwrap();
        if batch.is_empty() {
            // Only nack delays hold partitions now: let them pass.
            clock.advance(50);
            continue;
        }
        let mut failed: Vec<u32> = Vec::new();
        for message in &batch.messages {
            if failed.contains(&message.partition) {
                continue;
            }
            if random() % 5 == 0 {
                let delay = Duration::from_millis(random() % 3 * 40);
                manager
                    .nack(a, "orders", "g", message.partition, message.offset, delay)
                    .unwrap();
                nacks += 1;
                failed.push(message.partition);
                continue;
            }
            let body = bytes_of(message);
            let (key, n) = body.split_once(':').unwrap();
            finished
                .entry(key.parse().unwrap())
                .or_default()
                .push(n.parse().unwrap());
            total += 1;
            manager
                .commit_offset(a, "orders", "g", message.partition, message.offset + 1)
                .unwrap();
        }
    }
    assert_eq!(total, keys * per_key, "every message finished");
    assert!(nacks > 10, "the run nacked ({nacks})");
    for key in 0..keys {
        assert_eq!(
            finished[&key],
            (0..per_key).collect::<Vec<_>>(),
            "key {key} finished in order, once each"
        );
    }
    assert_eq!(manager.group_stats("orders", "g").unwrap().nacks, nacks);
}

#[test]
fn extending_keeps_the_leases_without_consuming() {
    let (manager, clock) = with_topic();
    publish_bytes(&manager, "events", 0, "m0");
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    next_batch(&manager, a);
    clock.advance(900);
    assert_eq!(manager.extend_leases(a, "events", "g"), Ok(1));
    // Past the first expiry (1 000 ms): the lease still stands.
    clock.advance(900);
    assert!(next_batch(&manager, b).is_empty());
    manager.commit_offset(a, "events", "g", 0, 1).unwrap();
    let stats = manager.group_stats("events", "g").unwrap();
    assert_eq!(stats.lease_extensions, 1);
    assert_eq!(stats.leases_expired, 0);
    assert_eq!(stats.redelivered, 0);
}

#[test]
fn an_expired_lease_is_not_revived_by_an_extension() {
    let (manager, clock) = with_topic();
    publish_bytes(&manager, "events", 0, "m0");
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    next_batch(&manager, a);
    clock.advance(1_000);
    assert_eq!(manager.extend_leases(a, "events", "g"), Ok(0));
    let batch = next_batch(&manager, b);
    assert_eq!(bodies(&batch), ["m0"]);
    let stats = manager.group_stats("events", "g").unwrap();
    assert_eq!(stats.lease_extensions, 0);
    assert_eq!(stats.leases_expired, 1);
    assert!(matches!(
        manager.extend_leases(a, "events", "nope"),
        Err(LiveError::UnknownGroup { .. })
    ));
    assert_eq!(
        manager.extend_leases(ConnectionId(999_999), "events", "g"),
        Err(LiveError::UnknownConnection(ConnectionId(999_999)))
    );
}

/// The next batch (up to ten messages, no wait) `who` consumes from "events" in group "g".
fn next_batch(manager: &ConnectionsManager, who: ConnectionId) -> ConsumeBatch {
    manager
        .consume(who, "events", "g", 10, Duration::ZERO)
        .unwrap()
}

/// A manager with "events" (group "g", 1 s lease) and a dead-letter topic "dlq" with its
/// own group "d".
fn with_dead_letters(max_deliver: u32) -> (Arc<ConnectionsManager>, Arc<ManualClock>) {
    let (manager, clock) = with_topic();
    manager
        .create_topic("dlq", TopicConfig::partitions(1))
        .unwrap();
    manager
        .create_consumer_group("dlq", "d", GroupConfig::default())
        .unwrap();
    manager
        .set_dead_letter("events", "g", "dlq", max_deliver)
        .unwrap();
    (manager, clock)
}

#[test]
fn past_max_deliver_a_nacked_message_goes_to_the_dead_letter_topic() {
    let (manager, _clock) = with_dead_letters(3);
    manager
        .publish_to_topic("events", DirectMessage::new(SeqId(7), "poison").key(42))
        .unwrap();
    publish_bytes(&manager, "events", 8, "fine");
    let a = consumer(&manager, "a");
    // Delivered three times, nacked after each: the first two nacks hand it out again.
    for delivery in 1..=3 {
        let batch = manager
            .consume(a, "events", "g", 1, Duration::ZERO)
            .unwrap();
        assert_eq!(bodies(&batch), ["poison"], "delivery {delivery}");
        manager
            .nack(a, "events", "g", 0, 0, Duration::ZERO)
            .unwrap();
    }
    // The third nack dead-lettered it: the partition moved on.
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["fine"]);
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(1)
    );
    let stats = manager.group_stats("events", "g").unwrap();
    assert_eq!((stats.nacks, stats.dead_lettered), (3, 1));
    // The dead letter: keyed and sequenced as the original, naming where it came from.
    let reader = consumer(&manager, "reader");
    let letters = manager
        .consume(reader, "dlq", "d", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters.messages[0];
    assert_eq!(letter.seq, SeqId(7));
    assert_eq!(letter.key, Some(Value::Int(42)));
    let body: serde_json::Value = serde_json::from_str(&bytes_of(letter)).unwrap();
    assert_eq!(body["topic"], "events");
    assert_eq!(body["partition"], 0);
    assert_eq!(body["offset"], 0);
    assert_eq!(body["deliveries"], 3);
    assert_eq!(body["message"]["offset"], 0);
    assert_eq!(body["message"]["seq"], 7);
}

#[test]
fn max_deliver_one_dead_letters_on_the_first_nack_and_clearing_stops_it() {
    let (manager, _clock) = with_dead_letters(1);
    publish_bytes(&manager, "events", 0, "m0");
    publish_bytes(&manager, "events", 1, "m1");
    let a = consumer(&manager, "a");
    manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    manager
        .nack(a, "events", "g", 0, 0, Duration::from_millis(500))
        .unwrap();
    // Dead-lettered at once (the delay does not apply): m1 comes next.
    let batch = manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&batch), ["m1"]);
    manager.clear_dead_letter("events", "g").unwrap();
    for _ in 0..3 {
        manager
            .nack(a, "events", "g", 0, 1, Duration::ZERO)
            .unwrap();
        let batch = manager
            .consume(a, "events", "g", 1, Duration::ZERO)
            .unwrap();
        assert_eq!(bodies(&batch), ["m1"]);
    }
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
}

#[test]
fn dead_letter_settings_are_checked() {
    let (manager, _clock) = with_topic();
    assert_eq!(
        manager.set_dead_letter("events", "g", "nope", 3),
        Err(LiveError::UnknownTopic("nope".into()))
    );
    assert!(matches!(
        manager.set_dead_letter("events", "g", "events", 3),
        Err(LiveError::InvalidConfig(_))
    ));
    manager
        .create_topic("dlq", TopicConfig::partitions(1))
        .unwrap();
    assert!(matches!(
        manager.set_dead_letter("events", "g", "dlq", 0),
        Err(LiveError::OutOfBounds {
            what: "max_deliver",
            ..
        })
    ));
    assert!(matches!(
        manager.set_dead_letter("events", "nope", "dlq", 3),
        Err(LiveError::UnknownGroup { .. })
    ));
    assert!(matches!(
        manager.clear_dead_letter("nope", "g"),
        Err(LiveError::UnknownTopic(_))
    ));
}

#[test]
fn lease_expiry_redeliveries_count_toward_max_deliver() {
    // A consumer that crashes on a message never nacks it: each lease expiry hands it out
    // again, and past max-deliver it goes to the dead-letter topic all the same.
    let (manager, clock) = with_dead_letters(3);
    manager
        .publish_to_topic("events", DirectMessage::new(SeqId(7), "poison").key(42))
        .unwrap();
    publish_bytes(&manager, "events", 8, "fine");
    let a = consumer(&manager, "a");
    for delivery in 1..=3 {
        let batch = manager
            .consume(a, "events", "g", 1, Duration::ZERO)
            .unwrap();
        assert_eq!(bodies(&batch), ["poison"], "delivery {delivery}");
        // The consumer dies on it: no nack, no commit; the 1 s lease expires.
        clock.advance(1_001);
    }
    // A fourth hand-out would pass max-deliver: the consume dead-letters it and goes on.
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["fine"]);
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(1),
        "the group committed past the dead letter"
    );
    let stats = manager.group_stats("events", "g").unwrap();
    assert_eq!((stats.nacks, stats.dead_lettered), (0, 1));
    assert_eq!(stats.leases_expired, 3);
    let reader = consumer(&manager, "reader");
    let letters = manager
        .consume(reader, "dlq", "d", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(letters.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&bytes_of(&letters.messages[0])).unwrap();
    assert_eq!(
        (body["offset"].clone(), body["deliveries"].clone()),
        (0.into(), 3.into())
    );
}

#[test]
fn nacks_and_expiries_add_up_toward_max_deliver() {
    let (manager, clock) = with_dead_letters(3);
    publish_bytes(&manager, "events", 1, "poison");
    let a = consumer(&manager, "a");
    // Delivery 1, nacked; delivery 2, the lease expires; delivery 3, nacked: dead letter.
    manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    manager
        .nack(a, "events", "g", 0, 0, Duration::ZERO)
        .unwrap();
    manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    clock.advance(1_001);
    let third = manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&third), ["poison"]);
    manager
        .nack(a, "events", "g", 0, 0, Duration::ZERO)
        .unwrap();
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 1);
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
}

#[test]
fn a_consumer_that_never_commits_sees_its_messages_dead_lettered_in_order() {
    let (manager, clock) = with_dead_letters(2);
    for (seq, body) in ["m0", "poison", "m2"].into_iter().enumerate() {
        publish_bytes(&manager, "events", seq as u64, body);
    }
    let a = consumer(&manager, "a");
    // Handed out twice (a crash each time, nothing committed).
    for _ in 0..2 {
        let batch = manager
            .consume(a, "events", "g", 2, Duration::ZERO)
            .unwrap();
        assert_eq!(bodies(&batch), ["m0", "poison"]);
        clock.advance(1_001);
    }
    // Nothing was committed, so m0 reached max-deliver too: both are dead-lettered, in
    // offset order, each at the head; the batch goes on with m2.
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["m2"]);
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 2);
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 2);
    manager.commit_batch(a, &batch).unwrap();
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(3)
    );
}

#[test]
fn a_dead_letter_behind_uncommitted_messages_is_marked_and_skipped_when_handed_out_again() {
    let (manager, clock) = with_dead_letters(2);
    for (seq, body) in ["m0", "poison", "m2"].into_iter().enumerate() {
        publish_bytes(&manager, "events", seq as u64, body);
    }
    let a = consumer(&manager, "a");
    let first = manager
        .consume(a, "events", "g", 2, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&first), ["m0", "poison"]);
    // "poison" nacked and handed out again: its second delivery. Then the lease expires.
    manager
        .nack(a, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    let second = manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&second), ["poison"]);
    clock.advance(1_001);
    // From the committed offset again: m0 (its second delivery), then "poison" would be a
    // third: the batch stops before it and it is dead-lettered, but m0 is not committed,
    // so the group cannot commit past it yet: it is marked instead.
    let third = next_batch(&manager, a);
    assert_eq!(bodies(&third), ["m0"]);
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 1);
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(0)
    );
    let fourth = next_batch(&manager, a);
    assert_eq!(bodies(&fourth), ["m2"]);
    // m0 is done; then the lease expires once more before m2 is committed: the range is
    // handed out again from "poison", which is skipped (and committed past), not sent twice.
    manager.commit_offset(a, "events", "g", 0, 1).unwrap();
    clock.advance(1_001);
    let fifth = next_batch(&manager, a);
    assert_eq!(bodies(&fifth), ["m2"]);
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 1);
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(2)
    );
    manager.commit_batch(a, &fifth).unwrap();
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(3)
    );
}

/// A dead letter marked behind uncommitted messages and passed at the end of a later
/// batch is committed past by the commit of that batch: the group is left with nothing
/// to hand out and no lag, and the commit stays where a restart resumes (found by an
/// outside soak: the commit stopped at the dead letter, lag stayed 1, and a durable group
/// handed the message out again after a restart). The same commit again is accepted.
#[test]
fn a_dead_letter_ending_a_batch_is_committed_past_with_it() {
    let (manager, clock) = with_dead_letters(2);
    for (seq, body) in ["m0", "m1", "poison"].into_iter().enumerate() {
        publish_bytes(&manager, "events", seq as u64, body);
    }
    let a = consumer(&manager, "a");
    assert_eq!(bodies(&next_batch(&manager, a)), ["m0", "m1", "poison"]);
    manager
        .nack(a, "events", "g", 0, 2, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&next_batch(&manager, a)), ["poison"]);
    // Its second delivery: dead-lettered, and marked, as m0 and m1 are not committed.
    manager
        .nack(a, "events", "g", 0, 2, Duration::ZERO)
        .unwrap();
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 1);
    clock.advance(1_001);
    // Handed out again from the committed offset: the lease passes the dead letter.
    let again = next_batch(&manager, a);
    assert_eq!(bodies(&again), ["m0", "m1"]);
    // m0 and m1 are handed out again; the dead letter is skipped, not redelivered.
    assert_eq!(manager.group_stats("events", "g").unwrap().redelivered, 2);
    manager.commit_batch(a, &again).unwrap();
    let offsets = &manager.group_offsets("events", "g").unwrap()[0];
    assert_eq!((offsets.committed, offsets.lag), (Some(3), 0));
    manager.commit_batch(a, &again).unwrap();
    manager.commit_offset(a, "events", "g", 0, 2).unwrap();
    assert_eq!(
        manager.commit_offset(a, "events", "g", 0, 1),
        Err(LiveError::CommitBehind {
            partition: 0,
            offset: 1,
            committed: 3
        })
    );
    assert!(next_batch(&manager, a).is_empty());
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
}

/// A nack that dead-letters its message rewinds the lease as any nack does, to the message
/// after it: what the lease had handed out after it comes again, so a consumer that drops
/// the rest of its batch on a nack (whichever the outcome) loses nothing.
#[test]
fn a_nack_that_dead_letters_hands_out_again_what_followed_the_message() {
    let (manager, _clock) = with_dead_letters(2);
    for (seq, body) in ["a", "poison", "b", "c", "d"].into_iter().enumerate() {
        publish_bytes(&manager, "events", seq as u64, body);
    }
    let x = consumer(&manager, "x");
    let first = next_batch(&manager, x);
    assert_eq!(bodies(&first), ["a", "poison", "b", "c", "d"]);
    manager.commit_offset(x, "events", "g", 0, 1).unwrap();
    manager
        .nack(x, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    let second = next_batch(&manager, x);
    assert_eq!(bodies(&second), ["poison", "b", "c", "d"]);
    // Its second delivery: this nack sends it to the dead-letter topic.
    manager
        .nack(x, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
    publish_bytes(&manager, "events", 5, "e");
    let third = next_batch(&manager, x);
    assert_eq!(bodies(&third), ["b", "c", "d", "e"]);
    manager.commit_batch(x, &third).unwrap();
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(6)
    );
    let stats = manager.group_stats("events", "g").unwrap();
    assert_eq!((stats.nacks, stats.dead_lettered), (2, 1));
    // Four handed out again after the first nack, three after the second.
    assert_eq!(stats.nack_redelivered, 7);
}

#[test]
fn a_nack_of_a_dead_lettered_offset_only_rewinds() {
    let (manager, clock) = with_dead_letters(2);
    for (seq, body) in ["m0", "poison", "m2"].into_iter().enumerate() {
        publish_bytes(&manager, "events", seq as u64, body);
    }
    let a = consumer(&manager, "a");
    // As above: "poison" dead-lettered and marked behind the uncommitted m0.
    manager
        .consume(a, "events", "g", 2, Duration::ZERO)
        .unwrap();
    manager
        .nack(a, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    clock.advance(1_001);
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["m0"]);
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
    // Its offset is below what the lease handed out, so it may be nacked, though the
    // consumer never got it: the nack rewinds, and "poison" is skipped again, not sent
    // again; m2 comes out.
    manager
        .nack(a, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    let again = next_batch(&manager, a);
    assert_eq!(bodies(&again), ["m2"]);
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 1);
}

#[test]
fn a_nack_at_max_deliver_behind_uncommitted_messages_commits_nothing_for_them() {
    let (manager, clock) = with_dead_letters(2);
    for (seq, body) in ["m0", "poison", "m2"].into_iter().enumerate() {
        publish_bytes(&manager, "events", seq as u64, body);
    }
    let a = consumer(&manager, "a");
    // A consumer working on m0 and "poison" at once: "poison" fails twice while m0 is
    // still in progress (handed out, not committed).
    let first = manager
        .consume(a, "events", "g", 2, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&first), ["m0", "poison"]);
    manager
        .nack(a, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    let again = manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&again), ["poison"]);
    // Its second delivery failed too: max-deliver, so it goes to the dead-letter topic.
    manager
        .nack(a, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 1);
    // m0 was not finished: the group did not commit it along with the dead letter.
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(0),
        "dead-lettering offset 1 committed the unfinished offset 0"
    );
    // The lease is not rewound: the partition moves on to m2.
    let next = next_batch(&manager, a);
    assert_eq!(bodies(&next), ["m2"]);
    // The consumer dies before finishing m0: after the lease expires m0 is handed out again
    // (at least once), and "poison" is skipped, not sent to the dead-letter topic again.
    clock.advance(1_001);
    let redelivered = next_batch(&manager, a);
    assert_eq!(bodies(&redelivered), ["m0"]);
    manager.commit_batch(a, &redelivered).unwrap();
    let rest = next_batch(&manager, a);
    assert_eq!(bodies(&rest), ["m2"]);
    manager.commit_batch(a, &rest).unwrap();
    assert_eq!(
        manager.group_offsets("events", "g").unwrap()[0].committed,
        Some(3)
    );
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 1);
}

#[test]
fn a_nack_at_max_deliver_at_the_committed_offset_commits_past_it() {
    let (manager, _clock) = with_dead_letters(1);
    publish_bytes(&manager, "events", 0, "m0");
    publish_bytes(&manager, "events", 1, "poison");
    publish_bytes(&manager, "events", 2, "m2");
    let a = consumer(&manager, "a");
    let batch = manager
        .consume(a, "events", "g", 3, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&batch), ["m0", "poison", "m2"]);
    manager.commit_offset(a, "events", "g", 0, 1).unwrap();
    manager
        .nack(a, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    // At the committed offset: committed past; m2 comes again, as after any nack.
    let offsets = &manager.group_offsets("events", "g").unwrap()[0];
    assert_eq!(offsets.committed, Some(2));
    assert_eq!(offsets.delivered, Some(2));
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 1);
}

/// A manager with "events" whose group "g" names its dead-letter topic "dlq" in its
/// config (max-deliver `max_deliver`), and the group "d" reading "dlq".
fn with_configured_dead_letters(max_deliver: u32) -> (Arc<ConnectionsManager>, Arc<ManualClock>) {
    let (manager, clock) = manager();
    for topic in ["events", "dlq"] {
        manager
            .create_topic(topic, TopicConfig::partitions(1))
            .unwrap();
    }
    manager
        .create_consumer_group(
            "events",
            "g",
            GroupConfig::default()
                .lease(Duration::from_secs(1))
                .dead_letter("dlq", max_deliver),
        )
        .unwrap();
    manager
        .create_consumer_group("dlq", "d", GroupConfig::default())
        .unwrap();
    (manager, clock)
}

#[test]
fn the_dead_letter_topic_named_in_the_group_config_receives_dead_letters() {
    let (manager, clock) = with_configured_dead_letters(2);
    manager
        .publish_to_topic("events", DirectMessage::new(SeqId(5), "poison").key(9))
        .unwrap();
    publish_bytes(&manager, "events", 6, "fine");
    let a = consumer(&manager, "a");
    // Delivery 1 nacked, delivery 2 crashes (lease expiry): the consume that would hand it
    // out a third time dead-letters it and goes on.
    manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    manager
        .nack(a, "events", "g", 0, 0, Duration::ZERO)
        .unwrap();
    manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    clock.advance(1_001);
    let batch = next_batch(&manager, a);
    assert_eq!(bodies(&batch), ["fine"]);
    assert_eq!(manager.group_stats("events", "g").unwrap().dead_lettered, 1);
    let reader = consumer(&manager, "reader");
    let letters = manager
        .consume(reader, "dlq", "d", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters.messages[0].key, Some(Value::Int(9)));
    let body: serde_json::Value = serde_json::from_str(&bytes_of(&letters.messages[0])).unwrap();
    assert_eq!(
        (body["topic"].clone(), body["deliveries"].clone()),
        ("events".into(), 2.into())
    );
}

#[test]
fn set_dead_letter_replaces_and_clear_removes_the_configured_setting() {
    let (manager, _clock) = with_configured_dead_letters(1);
    manager
        .create_topic("other", TopicConfig::partitions(1))
        .unwrap();
    manager.set_dead_letter("events", "g", "other", 1).unwrap();
    publish_bytes(&manager, "events", 0, "m0");
    publish_bytes(&manager, "events", 1, "m1");
    let a = consumer(&manager, "a");
    manager
        .consume(a, "events", "g", 1, Duration::ZERO)
        .unwrap();
    manager
        .nack(a, "events", "g", 0, 0, Duration::ZERO)
        .unwrap();
    assert_eq!(manager.topic_info("other").unwrap().appended, 1);
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 0);
    manager.clear_dead_letter("events", "g").unwrap();
    for _ in 0..3 {
        let batch = manager
            .consume(a, "events", "g", 1, Duration::ZERO)
            .unwrap();
        assert_eq!(bodies(&batch), ["m1"]);
        manager
            .nack(a, "events", "g", 0, 1, Duration::ZERO)
            .unwrap();
    }
    assert_eq!(manager.topic_info("other").unwrap().appended, 1);
    assert_eq!(manager.topic_info("dlq").unwrap().appended, 0);
}

#[test]
fn a_dead_letter_topic_in_the_group_config_is_checked() {
    let (manager, _clock) = manager();
    manager
        .create_topic("events", TopicConfig::partitions(1))
        .unwrap();
    let create = |config: GroupConfig| manager.create_consumer_group("events", "g", config);
    assert_eq!(
        create(GroupConfig::default().dead_letter("nope", 3)),
        Err(LiveError::UnknownTopic("nope".into()))
    );
    assert!(matches!(
        create(GroupConfig::default().dead_letter("events", 3)),
        Err(LiveError::InvalidConfig(_))
    ));
    manager
        .create_topic("dlq", TopicConfig::partitions(1))
        .unwrap();
    assert!(matches!(
        create(GroupConfig::default().dead_letter("dlq", 0)),
        Err(LiveError::OutOfBounds {
            what: "max_deliver",
            ..
        })
    ));
    // Nothing was created by the refused calls; a valid config creates the group.
    assert!(matches!(
        manager.group_stats("events", "g"),
        Err(LiveError::UnknownGroup { .. })
    ));
    create(GroupConfig::default().dead_letter("dlq", 3)).unwrap();
    assert_eq!(
        GroupConfig::default().dead_letter("dlq", 3).dead_letter,
        Some(DeadLetterPolicy::new("dlq", 3))
    );
}

#[test]
fn a_topic_in_use_as_a_dead_letter_topic_is_not_deleted() {
    let (manager, _clock) = with_configured_dead_letters(1);
    // "dlq" receives the dead letters of events/g (from the group's config).
    let refused = manager.delete_topic("dlq");
    assert!(
        matches!(&refused, Err(LiveError::InvalidConfig(reason)) if reason.contains("\"g\"")),
        "{refused:?}"
    );
    assert!(manager.topic_info("dlq").is_ok(), "still there");
    // Set through set_dead_letter, the same.
    manager
        .create_topic("other", TopicConfig::partitions(1))
        .unwrap();
    manager.set_dead_letter("events", "g", "other", 1).unwrap();
    assert!(matches!(
        manager.delete_topic("other"),
        Err(LiveError::InvalidConfig(_))
    ));
    // No longer named by any group: deleted, and the group hands out again as before.
    manager.delete_topic("dlq").unwrap();
    manager.clear_dead_letter("events", "g").unwrap();
    manager.delete_topic("other").unwrap();
    publish_bytes(&manager, "events", 0, "m0");
    let a = consumer(&manager, "a");
    for _ in 0..3 {
        let batch = manager
            .consume(a, "events", "g", 1, Duration::ZERO)
            .unwrap();
        assert_eq!(bodies(&batch), ["m0"]);
        manager
            .nack(a, "events", "g", 0, 0, Duration::ZERO)
            .unwrap();
    }
}

/// A manager with topic `trimmed` (one partition, retention of 3 messages) holding `m0`
/// and `m1`, its group `g` dead-lettering to `dlq` at the first nack.
fn trimmed_with_dead_letters() -> Arc<ConnectionsManager> {
    let (manager, _clock) = with_topic();
    manager
        .create_topic("trimmed", TopicConfig::partitions(1).retention(3, 1 << 30))
        .unwrap();
    manager
        .create_topic("dlq", TopicConfig::partitions(1))
        .unwrap();
    manager
        .create_consumer_group("trimmed", "g", GroupConfig::default().dead_letter("dlq", 1))
        .unwrap();
    for seq in 0..2 {
        publish_bytes(&manager, "trimmed", seq, &format!("m{seq}"));
    }
    manager
}

/// A nack that would dead-letter a message retention removed since it was handed out has
/// nothing to send: it rewinds as a nack without a dead-letter topic does, and the next
/// hand-out reports the removed messages as skipped by retention.
#[test]
fn a_nack_at_max_deliver_of_a_message_retention_removed_rewinds() {
    let manager = trimmed_with_dead_letters();
    let a = consumer(&manager, "a");
    let batch = manager
        .consume(a, "trimmed", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&batch), ["m0", "m1"]);
    for seq in 2..6 {
        publish_bytes(&manager, "trimmed", seq, &format!("m{seq}"));
    }
    // Offsets 0..3 are gone; offset 0 was handed out once, which max-deliver 1 allows.
    manager
        .nack(a, "trimmed", "g", 0, 0, Duration::ZERO)
        .unwrap();
    let stats = manager.group_stats("trimmed", "g").unwrap();
    assert_eq!((stats.nacks, stats.dead_lettered), (1, 0));
    let batch = manager
        .consume(a, "trimmed", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(
        batch.retention_skips,
        [RetentionSkip {
            partition: 0,
            from: 0,
            to: 3
        }]
    );
    assert_eq!(bodies(&batch), ["m3", "m4", "m5"]);
    let stats = manager.group_stats("trimmed", "g").unwrap();
    assert_eq!(stats.skipped_by_retention, 3);
    let reader = consumer(&manager, "reader");
    manager
        .create_consumer_group("dlq", "d", GroupConfig::default())
        .unwrap();
    assert!(manager
        .consume(reader, "dlq", "d", 10, Duration::ZERO)
        .unwrap()
        .is_empty());
}

/// A nack with a delay whose dead letter retention removed rewinds with that delay, and
/// wakes no consume of the session (a wake would only find the partition held, or nothing
/// new, and park again).
#[test]
fn a_delayed_nack_of_a_message_retention_removed_wakes_nobody_early() {
    let manager = trimmed_with_dead_letters();
    manager
        .create_topic("idle", TopicConfig::partitions(1))
        .unwrap();
    manager
        .create_consumer_group(
            "idle",
            "long",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    let a = consumer(&manager, "a");
    manager
        .consume(a, "trimmed", "g", 10, Duration::ZERO)
        .unwrap();
    // Offsets 0..3 are gone.
    for seq in 2..6 {
        publish_bytes(&manager, "trimmed", seq, &format!("m{seq}"));
    }
    // A consume of the same session, parked on another topic.
    let parks = manager.stats().consume_parks;
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.consume(a, "idle", "long", 10, Duration::from_secs(20)))
    };
    wait_for_parks(&manager, parks + 1);
    manager
        .nack(a, "trimmed", "g", 0, 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        manager.group_stats("trimmed", "g").unwrap().dead_lettered,
        0
    );
    // Bounded, not a timing claim: a consume woken would have parked again by then.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(manager.stats().consume_parks, parks + 1, "woken");
    manager.unregister_connection(a).unwrap();
    assert_eq!(parked.join().unwrap(), Err(LiveError::UnknownConnection(a)));
}

/// (redelivered, nack_redelivered) of the "events" group.
fn handed_again(manager: &ConnectionsManager) -> (u64, u64) {
    let stats = manager.group_stats("events", "g").unwrap();
    (stats.redelivered, stats.nack_redelivered)
}

#[test]
fn redeliveries_are_counted_as_handed_out_again_once_each() {
    // From an outside soak: the counters counted what a lease's end or a nack rewound,
    // whether or not it was handed out again, and a message both rewound counted twice.
    let consume = |manager: &ConnectionsManager, who: ConnectionId, max: usize| {
        manager
            .consume(who, "events", "g", max, Duration::ZERO)
            .unwrap()
    };
    let publish_ten = |manager: &ConnectionsManager| {
        for seq in 0..10 {
            publish_bytes(manager, "events", seq, &format!("m{seq}"));
        }
    };

    // A lease ends with m0..m4 handed out; the next holder takes two of them.
    let (manager, clock) = with_topic();
    publish_ten(&manager);
    let (a, b) = (consumer(&manager, "a"), consumer(&manager, "b"));
    assert_eq!(bodies(&consume(&manager, a, 5)).len(), 5);
    clock.advance(1_001);
    assert_eq!(bodies(&consume(&manager, b, 2)), ["m0", "m1"]);
    assert_eq!(handed_again(&manager), (2, 0));
    // Then the rest: m2..m4 again, m5..m9 for the first time.
    assert_eq!(bodies(&consume(&manager, b, 10)).len(), 8);
    assert_eq!(handed_again(&manager), (5, 0));

    // A nack of m2 (m2..m4 rewound), then a hand-out of one message.
    let (manager, _clock) = with_topic();
    publish_ten(&manager);
    let a = consumer(&manager, "a");
    assert_eq!(bodies(&consume(&manager, a, 5)).len(), 5);
    manager
        .nack(a, "events", "g", 0, 2, Duration::ZERO)
        .unwrap();
    assert_eq!(handed_again(&manager), (0, 0));
    assert_eq!(bodies(&consume(&manager, a, 1)), ["m2"]);
    assert_eq!(handed_again(&manager), (0, 1));

    // A nack of m2, then the lease ends before anything is handed out again: m0..m4 come
    // again, five messages, m2..m4 counted for the nack and m0, m1 for the lease.
    let (manager, clock) = with_topic();
    publish_ten(&manager);
    let (a, b) = (consumer(&manager, "a"), consumer(&manager, "b"));
    assert_eq!(bodies(&consume(&manager, a, 5)).len(), 5);
    manager
        .nack(a, "events", "g", 0, 2, Duration::ZERO)
        .unwrap();
    clock.advance(1_001);
    assert_eq!(bodies(&consume(&manager, b, 10)).len(), 10);
    assert_eq!(handed_again(&manager), (2, 3));
}

#[test]
fn a_nack_after_a_lease_moved_keeps_each_rewound_range_apart() {
    // From the review: a's nack of m5 rewinds m5..m9; a's lease ends; b takes m0..m2 and
    // nacks m1 (m1, m2 rewound). m3 and m4 were rewound by the lease's end alone.
    let (manager, clock) = with_topic();
    for seq in 0..10 {
        publish_bytes(&manager, "events", seq, &format!("m{seq}"));
    }
    let (a, b) = (consumer(&manager, "a"), consumer(&manager, "b"));
    let take = |who: ConnectionId, max: usize| {
        manager
            .consume(who, "events", "g", max, Duration::ZERO)
            .unwrap()
    };
    assert_eq!(bodies(&take(a, 10)).len(), 10);
    manager
        .nack(a, "events", "g", 0, 5, Duration::ZERO)
        .unwrap();
    clock.advance(1_001);
    assert_eq!(bodies(&take(b, 3)), ["m0", "m1", "m2"]);
    manager
        .nack(b, "events", "g", 0, 1, Duration::ZERO)
        .unwrap();
    assert_eq!(bodies(&take(b, 10)).len(), 9);
    // m0..m2 and m3, m4 came again after the lease's end; m1, m2 (again) and m5..m9
    // after a nack.
    assert_eq!(handed_again(&manager), (5, 7));
}
