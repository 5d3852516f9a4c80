//! Consumer groups: leases, redelivery, sharing partitions, commits, reset policies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livecore::*;

use crate::common::*;
use crate::support::*;

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

/// A consume parked in a group returns as soon as its session leaves the group: an empty
/// batch with no position (the session holds nothing there any more), not an error and
/// not after its timeout; and it takes no lease again on its way out.
#[test]
fn leaving_the_group_wakes_a_parked_consume_with_an_empty_batch() {
    let (manager, _clock) = with_topic_on_unstepped_clock();
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    // A waits as long as the limits let it (the lease, 20 s of real time on this clock).
    let waiting = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.consume(a, "events", "g", 10, UNSTEPPED_LEASE))
    };
    wait_for_parks(&manager, 1);
    let left_at = Instant::now();
    manager.leave_group(a, "events", "g").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || waiting.is_finished()),
        "the consume was still waiting {:?} after the leave",
        left_at.elapsed()
    );
    let batch = waiting.join().unwrap().unwrap();
    assert!(batch.messages.is_empty());
    assert!(batch.positions.is_empty(), "{:?}", batch.positions);
    assert_eq!(manager.group_stats("events", "g").unwrap().members, 0);
    // The partition is free for another member, which reads what comes next.
    publish_bytes(&manager, "events", 1, "after");
    assert_eq!(
        offsets(
            &manager
                .consume(b, "events", "g", 10, Duration::ZERO)
                .unwrap()
        ),
        [(0, 0)]
    );
    // A consume of A after the leave joins the group again (and shares it with B).
    assert!(manager
        .consume(a, "events", "g", 10, Duration::ZERO)
        .is_ok());
    assert_eq!(manager.group_stats("events", "g").unwrap().members, 2);
}

#[test]
fn check_connections_expires_leases_and_wakes_the_waiting() {
    // A clock that does not wake parked consumes itself: the sweep must.
    let (manager, clock) = with_topic_on_unstepped_clock();
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
    // B waits as long as the lease (real time): only the sweep, after the clock passes the
    // lease, hands it the message in time.
    let waiting = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.consume(b, "events", "g", 10, UNSTEPPED_LEASE))
    };
    wait_for_parks(&manager, 1);
    clock.advance(UNSTEPPED_LEASE.as_millis() as u64);
    let report = manager.check_connections_now();
    assert_eq!(report.leases_expired, 1);
    let batch = waiting.join().unwrap();
    assert_eq!(offsets(&batch.unwrap()), [(0, 0)]);
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
            // A guard against a hang, not a speed expectation.
            started.elapsed() < Duration::from_secs(120),
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
fn a_batch_of_a_deleted_group_or_another_manager_commits_nothing() {
    let (manager, _) = with_topic();
    for seq in 1..=10 {
        publish_bytes(&manager, "events", seq, "m");
    }
    let me = consumer(&manager, "worker");
    let old = manager
        .consume(me, "events", "g", 8, Duration::ZERO)
        .unwrap();
    assert_eq!(old.len(), 8);
    // The group is deleted and made again; its new incarnation hands out all ten.
    manager.delete_consumer_group("events", "g").unwrap();
    manager
        .create_consumer_group("events", "g", GroupConfig::default())
        .unwrap();
    let new = manager
        .consume(me, "events", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(new.len(), 10);
    let stale = manager.commit_batch(me, &old);
    assert!(
        matches!(&stale, Err(LiveError::UnknownGroup { topic, group }) if topic == "events" && group == "g"),
        "{stale:?}"
    );
    let committed =
        |manager: &ConnectionsManager| manager.group_offsets("events", "g").unwrap()[0].committed;
    assert_eq!(
        committed(&manager),
        Some(0),
        "nothing the new group handed out is committed"
    );
    // A batch of another manager's group of the same names.
    let (other, _) = with_topic();
    publish_bytes(&other, "events", 1, "m");
    let elsewhere = consumer(&other, "worker");
    let foreign = other
        .consume(elsewhere, "events", "g", 1, Duration::ZERO)
        .unwrap();
    assert_eq!(elsewhere, me, "connection ids repeat across managers");
    assert!(matches!(
        manager.commit_batch(me, &foreign),
        Err(LiveError::UnknownGroup { .. })
    ));
    assert_eq!(committed(&manager), Some(0));
    // The group's own batch commits.
    manager.commit_batch(me, &new).unwrap();
    assert_eq!(committed(&manager), Some(10));
}

#[test]
fn a_batch_commit_with_a_lost_lease_commits_nothing() {
    let (manager, _) = manager();
    manager
        .create_topic("two", TopicConfig::partitions(2))
        .unwrap();
    manager
        .create_consumer_group("two", "g", GroupConfig::default())
        .unwrap();
    // Round robin: messages on both partitions.
    for seq in 0..4 {
        manager
            .publish_to_topic("two", DirectMessage::new(SeqId(seq), "m"))
            .unwrap();
    }
    let me = consumer(&manager, "worker");
    let batch = manager.consume(me, "two", "g", 10, Duration::ZERO).unwrap();
    assert_eq!(
        batch.next_offsets(),
        [(0, 2), (1, 2)],
        "both partitions handed out"
    );
    // The second partition's lease ends (a seek); the first is still held.
    manager.seek_group("two", "g", 1, 0).unwrap();
    assert!(matches!(
        manager.commit_batch(me, &batch),
        Err(LiveError::NotLeaseHolder { partition: 1, .. })
    ));
    let committed: Vec<_> = manager
        .group_offsets("two", "g")
        .unwrap()
        .iter()
        .map(|position| (position.partition, position.committed))
        .collect();
    assert_eq!(committed, [(0, Some(0)), (1, Some(0))], "nothing committed");
    // The first partition alone still commits.
    manager.commit_offset(me, "two", "g", 0, 2).unwrap();
}

#[test]
fn a_group_over_the_most_partitions_shares_them_evenly() {
    // At the partition limit, a pass that took and gave partitions up one by one,
    // recounting every holder each time, ran for minutes (and, on a real clock, outlived
    // its leases); counted once per pass, this test takes well under a second. No time is
    // asserted: the step's time in CI shows it.
    let (manager, _) = manager_with(ManagerConfig {
        topics: TopicLimits {
            max_partitions: MAX_TOPIC_PARTITIONS,
            ..TopicLimits::default()
        },
        ..ManagerConfig::default()
    });
    let partitions = MAX_TOPIC_PARTITIONS;
    manager
        .create_topic("wide", TopicConfig::partitions(partitions))
        .unwrap();
    manager
        .create_consumer_group("wide", "g", GroupConfig::default())
        .unwrap();
    publish_bytes(&manager, "wide", 1, "only");
    let members = [
        consumer(&manager, "a"),
        consumer(&manager, "b"),
        consumer(&manager, "c"),
    ];
    let mut holders = vec![0usize; members.len()];
    let mut got = None;
    for _ in 0..3 {
        for (index, member) in members.iter().enumerate() {
            let batch = manager
                .consume(*member, "wide", "g", 10, Duration::ZERO)
                .unwrap();
            if !batch.messages.is_empty() {
                got = Some((*member, batch));
            }
            holders[index] = manager
                .group_offsets("wide", "g")
                .unwrap()
                .iter()
                .filter(|partition| partition.holder == Some(*member))
                .count();
        }
    }
    holders.sort();
    let floor = partitions as usize / members.len();
    assert_eq!(holders, [floor, floor, floor + 1]);
    let (member, batch) = got.expect("the message was handed out");
    assert_eq!(batch.messages.len(), 1);
    manager.commit_batch(member, &batch).unwrap();
}
