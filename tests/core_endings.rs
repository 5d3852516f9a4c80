//! Notices in place and exactly once: gaps across schema changes, one terminal notice per
//! subscription, typed outcomes for calls on an ended subscription, resume past the gate's
//! buffer, and what a plain subscription sees.

mod common;

use common::*;
use livecore::*;
use std::sync::Arc;

/// What a receiver hands out now, as short labels: `c<seq>` for changes, `gap<last>/<n>`.
fn labels(receiver: &mut NotificationReceiver) -> Vec<String> {
    drain(receiver)
        .iter()
        .map(|notification| match notification {
            Notification::Gap {
                last_seq, missed, ..
            } => format!("gap{}/{missed}", last_seq.map_or(-1, |seq| seq.0 as i64)),
            other => match seq_of(other) {
                Some(seq) => format!("c{seq}"),
                None => other.kind().to_string(),
            },
        })
        .collect()
}

/// A subscription to room 1 resuming after SeqId 0 (gated until the engine completes or
/// declines the resume).
fn resuming_from_zero(manager: &ConnectionsManager, connection: ConnectionId) -> LiveQueryId {
    manager
        .subscribe(
            connection,
            in_room(1),
            SubscriptionOptions::resume_from(SeqId(0)),
        )
        .unwrap()
        .live_query_id
}

#[test]
fn a_gap_across_a_schema_change_is_reported_in_place() {
    // Regression: the gap came after seq 4, and later gap counts were too small.
    let (manager, _) = with_capacity(2);
    let table = TableId::new("app", "t");
    manager
        .register_table(TableSchema::new(
            table.clone(),
            TableScope::Shared,
            ["id", "a", "b"],
        ))
        .unwrap();
    let mut connection = connect(&manager, "alice");
    subscribe(
        &manager,
        connection.connection_id,
        QuerySpec::table(table.clone()).project(Projection::columns(["id", "a"])),
    );
    let row3 = |id: i64| Row::new(vec![Value::Int(id), Value::Int(0), Value::Int(0)]);
    for seq in 1..=3 {
        manager
            .publish(
                SeqId(seq),
                ChangeNotification::insert(table.clone(), row3(seq as i64)),
            )
            .unwrap();
    }
    manager
        .register_table(TableSchema::new(
            table.clone(),
            TableScope::Shared,
            ["id", "a"],
        ))
        .unwrap();
    let first = connection.notifications.try_recv().unwrap();
    assert_eq!(seq_of(&first), Some(1));
    let row2 = |id: i64| Row::new(vec![Value::Int(id), Value::Int(0)]);
    manager
        .publish(SeqId(4), ChangeNotification::insert(table.clone(), row2(4)))
        .unwrap();
    assert_eq!(
        labels(&mut connection.notifications),
        ["c2", "gap2/1", "c4"],
        "the gap comes before the first delivery after it, as without the ALTER"
    );
    assert_eq!(manager.stats().gaps, 1);
}

fn overflowed_resume(
    manager: &ConnectionsManager,
    connection: &mut ConnectionRegistration,
) -> LiveQueryId {
    let sub = manager
        .subscribe(
            connection.connection_id,
            in_room(1),
            SubscriptionOptions::resume_from(SeqId(0)),
        )
        .unwrap();
    for seq in 1..=3 {
        manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    }
    sub.live_query_id
}

fn gate_of_two() -> ManagerConfig {
    ManagerConfig {
        gate_buffer_capacity: 2,
        ..ManagerConfig::default()
    }
}

#[test]
fn a_gate_overflow_gives_one_terminal_notice_and_shows_ended_at_once() {
    // Regression: a replay after the overflow posted a second ResyncRequired and counted a
    // second resync; stats and records still showed the subscription.
    let (manager, _) = manager_with(gate_of_two());
    let mut connection = connect(&manager, "alice");
    let id = overflowed_resume(&manager, &mut connection);
    assert_eq!(
        manager.stats().subscriptions,
        0,
        "ended the moment it overflowed"
    );
    assert!(manager.live_query_records().is_empty());
    assert!(
        manager
            .subscriptions_of(connection.connection_id)
            .unwrap()
            .is_empty(),
        "nor listed"
    );
    let ended = LiveError::SubscriptionEnded {
        subscription_id: id.subscription_id,
        ending: SubscriptionEnding::ResyncRequired,
    };
    assert_eq!(
        manager.replay_commit(id, SeqId(1), vec![insert_in_room(1, 1)]),
        Err(ended.clone())
    );
    assert_eq!(manager.complete_initial_load(id).err(), Some(ended.clone()));
    assert_eq!(manager.stats().resyncs, 1);
    assert_eq!(labels(&mut connection.notifications), ["resync_required"]);
    // After the next writer call reaps it, the connection still says how it ended.
    manager.check_connections_now();
    assert_eq!(manager.subscription(id).err(), Some(ended));
    assert_eq!(manager.stats().resyncs, 1);
    // Unsubscribing an ended subscription succeeds once, then it is unknown.
    manager.unsubscribe(id).unwrap();
    assert_eq!(
        manager.unsubscribe(id),
        Err(LiveError::UnknownSubscription(id.subscription_id))
    );
}

#[test]
fn revocation_does_not_count_or_notify_an_already_ended_subscription() {
    // Regression: revoke_user counted the overflowed subscription and posted
    // `Closed { revoked }` after its `ResyncRequired`.
    let (manager, _) = manager_with(gate_of_two());
    let mut connection = connect(&manager, "alice");
    let ended = overflowed_resume(&manager, &mut connection);
    let live = subscribe(&manager, connection.connection_id, in_room(2));
    assert_eq!(manager.revoke_user(&UserId::from("alice"), "expired"), 1);
    let received = drain(&mut connection.notifications);
    let terminal: Vec<(LiveQueryId, &str)> = received
        .iter()
        .map(|notification| (notification.live_query_id(), notification.kind()))
        .collect();
    assert_eq!(
        terminal,
        [(ended, "resync_required"), (live.live_query_id, "closed")]
    );
    assert_eq!(manager.stats().resyncs, 1);
}

#[test]
fn snapshot_calls_after_a_schema_change_say_resync_required() {
    // Regression: they failed with UnknownSubscription.
    let (manager, _) = manager();
    let connection = connect(&manager, "alice");
    let sub = manager
        .subscribe(
            connection.connection_id,
            in_room(1),
            SubscriptionOptions::with_initial_load(),
        )
        .unwrap();
    let id = sub.live_query_id;
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "room", "body", "edited"],
        ))
        .unwrap();
    let ended = Err(LiveError::SubscriptionEnded {
        subscription_id: id.subscription_id,
        ending: SubscriptionEnding::ResyncRequired,
    });
    assert_eq!(
        manager.set_snapshot_boundary(id, SeqId(1)).map(|_| ()),
        ended
    );
    assert_eq!(manager.push_snapshot_rows(id, &[]).map(|_| ()), ended);
    assert_eq!(manager.complete_initial_load(id).map(|_| ()), ended);
}

#[test]
fn resume_streams_past_the_gate_buffer_with_back_pressure() {
    // Regression: replayed commits counted against `gate_buffer_capacity`, so a client
    // further behind than it could never resume.
    let (manager, _) = manager_with(ManagerConfig {
        gate_buffer_capacity: 2,
        notification_channel_capacity: 8,
        ..ManagerConfig::default()
    });
    let mut connection = connect(&manager, "alice");
    let id = resuming_from_zero(&manager, connection.connection_id);
    let mut received = Vec::new();
    let mut would_block = 0;
    let mut seq = 1;
    while seq <= 100 {
        match manager.replay_commit(id, SeqId(seq), vec![insert_in_room(seq, 1)]) {
            Ok(sent) => {
                assert!(sent);
                seq += 1;
            }
            Err(LiveError::WouldBlock { consumed: 0 }) => {
                would_block += 1;
                received.extend(drain(&mut connection.notifications));
            }
            Err(other) => panic!("replay of {seq} refused: {other}"),
        }
    }
    assert!(would_block > 0, "the channel of 8 pushed back");
    manager.publish(SeqId(101), insert_in_room(101, 1)).unwrap();
    manager.complete_initial_load(id).unwrap();
    received.extend(drain(&mut connection.notifications));
    let seqs: Vec<u64> = received.iter().filter_map(seq_of).collect();
    assert_eq!(
        seqs,
        (1..=101).collect::<Vec<_>>(),
        "each once, in order, no gap"
    );
    assert!(!received.iter().any(|n| n.kind() == "gap"));
}

/// A subscription whose first changes are all dropped (the completion marker fills the
/// channel of one), then drained: the gap it reports.
fn first_gap(options: SubscriptionOptions, boundary: Option<u64>) -> Notification {
    let (manager, _) = with_capacity(1);
    let mut connection = connect(&manager, "alice");
    let id = manager
        .subscribe(connection.connection_id, in_room(1), options)
        .unwrap()
        .live_query_id;
    if let Some(boundary) = boundary {
        manager.set_snapshot_boundary(id, SeqId(boundary)).unwrap();
    }
    manager.complete_initial_load(id).unwrap();
    for seq in 60..=61 {
        manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    }
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].kind(), "load_complete");
    received[1].clone()
}

/// Checks that `gap` is the notice of the two changes `first_gap` drops, naming `seq` as
/// the last SeqId the subscriber holds.
fn assert_first_gap_names(gap: Notification, seq: u64) {
    assert!(
        matches!(
            gap,
            Notification::Gap {
                last_seq: Some(SeqId(last)),
                missed: 2,
                ..
            } if last == seq
        ),
        "{gap:?}"
    );
}

#[test]
fn a_gap_before_any_change_names_the_resume_point_or_the_boundary() {
    // Regression: `last_seq` was None before the first change although the resume point
    // or the snapshot boundary was known.
    assert_first_gap_names(
        first_gap(SubscriptionOptions::resume_from(SeqId(40)), None),
        40,
    );
    assert_first_gap_names(
        first_gap(SubscriptionOptions::with_initial_load(), Some(50)),
        50,
    );
}

/// A snapshot boundary of 0 is a boundary (regression: a live gate word of 0 read back as
/// "none", so the gap carried no SeqId and the client could not resume).
#[test]
fn a_gap_before_any_change_names_a_boundary_of_zero() {
    assert_first_gap_names(
        first_gap(SubscriptionOptions::with_initial_load(), Some(0)),
        0,
    );
}

/// A manager whose channels hold one item, with one subscription to room 1 whose second
/// commit was dropped: the first was received, the third is queued with its number (the
/// receiver will hand out a gap notice before it).
fn change_queued_after_a_drop() -> (Arc<ConnectionsManager>, ConnectionRegistration, LiveQueryId) {
    let (manager, _) = with_capacity(1);
    let mut connection = connect(&manager, "alice");
    let id = subscribe(&manager, connection.connection_id, in_room(1)).live_query_id;
    manager.publish(SeqId(1), insert_in_room(1, 1)).unwrap();
    manager.publish(SeqId(2), insert_in_room(2, 1)).unwrap(); // dropped: full
    let first = connection.notifications.try_recv().unwrap();
    assert_eq!(seq_of(&first), Some(1));
    manager.publish(SeqId(3), insert_in_room(3, 1)).unwrap();
    (manager, connection, id)
}

/// As [`change_queued_after_a_drop`], with the gap notice handed out: the changes after
/// the gap (seq 3) are prepared in the receiver, not yet handed out.
fn gap_handed_out_changes_prepared(
) -> (Arc<ConnectionsManager>, ConnectionRegistration, LiveQueryId) {
    let (manager, mut connection, id) = change_queued_after_a_drop();
    let gap = connection.notifications.try_recv().unwrap();
    assert!(
        matches!(gap, Notification::Gap { missed: 1, .. }),
        "{gap:?}"
    );
    (manager, connection, id)
}

/// Nothing of a subscription is handed out once `unsubscribe` returns, not even what the
/// receiver had already prepared (regression: the changes after a gap notice were).
#[test]
fn what_the_receiver_prepared_is_not_handed_out_after_unsubscribe() {
    let (manager, mut connection, id) = gap_handed_out_changes_prepared();
    manager.unsubscribe(id).unwrap();
    let after = drain(&mut connection.notifications);
    assert!(after.is_empty(), "{after:?}");
}

/// Nor after `unregister_connection` returns: the receiver reports the end instead.
#[test]
fn what_the_receiver_prepared_is_not_handed_out_after_unregister() {
    let (manager, connection, _) = gap_handed_out_changes_prepared();
    unregister_and_expect_the_end(&manager, connection);
}

/// Unregisters `connection` and checks that its receiver hands out nothing but the end.
fn unregister_and_expect_the_end(
    manager: &ConnectionsManager,
    mut connection: ConnectionRegistration,
) {
    manager
        .unregister_connection(connection.connection_id)
        .unwrap();
    assert_eq!(
        connection.notifications.try_recv().unwrap_err(),
        ReceiveError::Closed
    );
}

/// Nor is a terminal notice not yet handed out, once `unregister_connection` returns.
#[test]
fn an_unregistered_connection_hands_out_no_pending_notice() {
    let (manager, _) = manager();
    let connection = connect(&manager, "alice");
    let id = resuming_from_zero(&manager, connection.connection_id);
    manager.resume_unavailable(id).unwrap();
    unregister_and_expect_the_end(&manager, connection);
}

/// More endings than the connection remembers: their notices are not handed out after
/// `unregister_connection` returns either.
#[test]
fn an_unregistered_connection_hands_out_no_notice_beyond_those_remembered() {
    let (manager, _) = manager_with(ManagerConfig {
        max_subscriptions_per_connection: 10,
        ..ManagerConfig::default()
    });
    let connection = connect(&manager, "alice");
    // More endings than the connection remembers (64), ten at a time.
    let rounds = ENDED_SUBSCRIPTIONS_REMEMBERED / 10 + 1;
    for round in 0..rounds as i64 {
        for room in 0..10 {
            subscribe(
                &manager,
                connection.connection_id,
                in_room(round * 10 + room),
            );
        }
        assert_eq!(manager.revoke_user(&UserId::from("alice"), "expired"), 10);
    }
    unregister_and_expect_the_end(&manager, connection);
}

/// Ending every subscription a connection holds at once (here the most it may hold, more
/// than `ENDED_SUBSCRIPTIONS_REMEMBERED`) forgets none of their endings: each says how it
/// ended, and unsubscribing one succeeds and drops its notice.
#[test]
fn a_revocation_of_every_subscription_a_connection_holds_forgets_none() {
    let (manager, _) = manager();
    let limit = ManagerConfig::default().max_subscriptions_per_connection;
    assert!(limit > ENDED_SUBSCRIPTIONS_REMEMBERED);
    let mut connection = connect(&manager, "alice");
    let subs: Vec<LiveQueryId> = (0..limit as i64)
        .map(|room| subscribe(&manager, connection.connection_id, in_room(room)).live_query_id)
        .collect();
    assert_eq!(
        manager.revoke_user(&UserId::from("alice"), "expired"),
        limit
    );
    for sub in &subs {
        assert!(
            matches!(
                manager.subscription(*sub),
                Err(LiveError::SubscriptionEnded {
                    ending: SubscriptionEnding::Closed(_),
                    ..
                })
            ),
            "{sub}"
        );
    }
    manager.unsubscribe(subs[0]).unwrap();
    let notices = drain(&mut connection.notifications);
    assert_eq!(notices.len(), limit - 1);
    assert!(notices
        .iter()
        .all(|notice| notice.live_query_id() != subs[0]));
}

/// A terminal notice not yet handed out is dropped when the host unsubscribes the ended
/// subscription: after `unsubscribe` returns, nothing of it reaches the consumer.
#[test]
fn an_unsubscribed_ended_subscription_hands_out_no_notice() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let resuming = || resuming_from_zero(&manager, connection.connection_id);
    let id = resuming();
    manager.resume_unavailable(id).unwrap();
    manager.unsubscribe(id).unwrap();
    let after = drain(&mut connection.notifications);
    assert!(after.is_empty(), "{after:?}");
    // The same when the receiver already collected the notice: two endings are
    // collected together, and the second waits behind the first.
    let (first, second) = (resuming(), resuming());
    manager.resume_unavailable(first).unwrap();
    manager.resume_unavailable(second).unwrap();
    let handed = connection.notifications.try_recv().unwrap();
    assert_eq!(handed.kind(), "resume_unavailable");
    let id = if handed.live_query_id() == first {
        second
    } else {
        first
    };
    manager.unsubscribe(id).unwrap();
    let after = drain(&mut connection.notifications);
    assert!(after.is_empty(), "{after:?}");
}

#[test]
fn a_plain_subscription_receives_every_commit_published_after_subscribe_returns() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    manager.publish(SeqId(1), insert_in_room(1, 1)).unwrap();
    subscribe(&manager, connection.connection_id, in_room(1));
    for seq in 2..=5 {
        manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    }
    let seqs: Vec<u64> = drain(&mut connection.notifications)
        .iter()
        .filter_map(seq_of)
        .collect();
    assert_eq!(seqs, [2, 3, 4, 5], "nothing from before, everything after");
}

#[test]
fn snapshot_rows_on_a_user_scoped_table_are_the_engines_to_scope() {
    // Documented contract: rows carry no owner, so livecore cannot check tenancy; it
    // filters and projects what the engine passes and delivers it as is. The engine passes
    // only the subscribing user's rows.
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let id = manager
        .subscribe(
            connection.connection_id,
            QuerySpec::table(notes()).filter(Expr::col("amount").gt(Expr::lit(5))),
            SubscriptionOptions::with_initial_load(),
        )
        .unwrap()
        .live_query_id;
    manager.set_snapshot_boundary(id, SeqId(1)).unwrap();
    let rows = [note(1, "alice's", 10), note(2, "alice's small", 1)];
    let progress = manager.push_snapshot_rows(id, &rows).unwrap();
    assert_eq!(
        (progress.consumed, progress.rows),
        (2, 1),
        "filtered, not owner-checked"
    );
    manager.complete_initial_load(id).unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(
        received.iter().map(Notification::kind).collect::<Vec<_>>(),
        ["snapshot", "load_complete"]
    );
}

/// Subscribes `alice` to room 1 on a fresh manager and publishes `commits` changes there,
/// none of them received yet.
fn queued(commits: u64) -> (Arc<ConnectionsManager>, ConnectionRegistration, LiveQueryId) {
    let (manager, _) = manager();
    let connection = connect(&manager, "alice");
    let id = subscribe(&manager, connection.connection_id, in_room(1)).live_query_id;
    for seq in 1..=commits {
        manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    }
    assert_eq!(manager.stats().delivered, commits);
    (manager, connection, id)
}

/// Deliveries an unsubscribe leaves queued are counted as discarded, not only as
/// delivered: what consumers received adds up.
#[test]
fn what_unsubscribe_leaves_queued_is_counted_discarded() {
    let (manager, mut connection, id) = queued(3);
    let first = connection.notifications.try_recv().unwrap();
    assert_eq!(seq_of(&first), Some(1));
    manager.unsubscribe(id).unwrap();
    assert!(drain(&mut connection.notifications).is_empty());
    let stats = manager.stats();
    assert_eq!((stats.delivered, stats.discarded), (3, 2));
}

/// And what an unregister leaves queued.
#[test]
fn what_unregister_leaves_queued_is_counted_discarded() {
    let (manager, connection, _) = queued(2);
    unregister_and_expect_the_end(&manager, connection);
    assert_eq!(manager.stats().discarded, 2);
}

/// And what a dropped receiver held; later publishes to it count as dropped, not
/// discarded.
#[test]
fn what_a_dropped_receiver_held_is_counted_discarded() {
    let (manager, connection, _) = queued(2);
    drop(connection.notifications);
    assert_eq!(manager.stats().discarded, 2);
    manager.publish(SeqId(3), insert_in_room(3, 1)).unwrap();
    let stats = manager.stats();
    assert_eq!((stats.discarded, stats.dropped_closed), (2, 1));
}

/// Changes the receiver had prepared behind a gap notice, then skipped after unsubscribe,
/// are counted too.
#[test]
fn prepared_changes_skipped_after_unsubscribe_are_counted_discarded() {
    let (manager, mut connection, id) = gap_handed_out_changes_prepared();
    let before = manager.stats();
    assert_eq!((before.delivered, before.discarded), (2, 0));
    manager.unsubscribe(id).unwrap();
    assert!(drain(&mut connection.notifications).is_empty());
    assert_eq!(manager.stats().discarded, 1);
}

/// A connection with a full channel (two changes of room 1) and a subscription to room 7
/// whose load completed with three changes its gate held: its marker and those changes
/// wait out of band, counted as delivered.
fn held_behind_a_late_marker() -> (Arc<ConnectionsManager>, ConnectionRegistration, LiveQueryId) {
    let (manager, _) = with_capacity(2);
    let connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(1));
    let loading = manager
        .subscribe(
            connection.connection_id,
            in_room(7),
            SubscriptionOptions::with_initial_load(),
        )
        .unwrap()
        .live_query_id;
    manager.publish(SeqId(1), insert_in_room(1, 1)).unwrap();
    manager.publish(SeqId(2), insert_in_room(2, 1)).unwrap();
    for seq in 3..=5 {
        manager.publish(SeqId(seq), insert_in_room(seq, 7)).unwrap();
    }
    manager.complete_initial_load(loading).unwrap();
    assert_eq!(manager.stats().delivered, 5);
    (manager, connection, loading)
}

/// The changes held behind a late marker are counted discarded when their subscription
/// ends before the marker is handed out (regression: found by an outside soak).
#[test]
fn changes_held_behind_a_late_marker_are_counted_discarded_at_unsubscribe() {
    let (manager, mut connection, loading) = held_behind_a_late_marker();
    manager.unsubscribe(loading).unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(seqs(&received), [1, 2]);
    assert_eq!(manager.stats().discarded, 3);
}

/// And when the connection closes, or the receiver goes, with them still waiting.
#[test]
fn changes_held_behind_a_late_marker_are_counted_discarded_at_close() {
    let (manager, connection, _) = held_behind_a_late_marker();
    unregister_and_expect_the_end(&manager, connection);
    assert_eq!(manager.stats().discarded, 5);

    let (manager, connection, _) = held_behind_a_late_marker();
    drop(connection.notifications);
    assert_eq!(manager.stats().discarded, 5);
}

/// Received in full, nothing is discarded.
#[test]
fn changes_held_behind_a_late_marker_received_are_not_discarded() {
    let (manager, mut connection, _) = held_behind_a_late_marker();
    let received = drain(&mut connection.notifications);
    assert_eq!(seqs(&received), [1, 2, 3, 4, 5]);
    assert_eq!(manager.stats().discarded, 0);
}

/// A change that follows a drop (queued with its number) and is skipped after unsubscribe
/// is counted as discarded like any other.
#[test]
fn a_change_after_a_drop_skipped_after_unsubscribe_is_counted_discarded() {
    let (manager, mut connection, id) = change_queued_after_a_drop();
    manager.unsubscribe(id).unwrap();
    assert!(drain(&mut connection.notifications).is_empty());
    let stats = manager.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.discarded), (2, 1, 1));
}

/// A connection cut off as a slow consumer keeps its queue until it is unregistered;
/// its queued changes are counted as discarded then.
#[test]
fn a_cut_off_connections_queue_is_counted_discarded_at_unregister() {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 2,
        slow_consumer_policy: SlowConsumerPolicy::Disconnect,
        ..ManagerConfig::default()
    });
    let mut connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(1));
    for seq in 1..=3 {
        manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    }
    assert_eq!(
        connection.notifications.try_recv().unwrap_err(),
        ReceiveError::Closed
    );
    assert_eq!(manager.stats().discarded, 0, "kept until unregistered");
    manager
        .unregister_connection(connection.connection_id)
        .unwrap();
    assert_eq!(
        connection.notifications.try_recv().unwrap_err(),
        ReceiveError::Closed
    );
    let stats = manager.stats();
    assert_eq!((stats.delivered, stats.discarded), (2, 2));
}

/// A receive with a timeout too long for a deadline waits without one (building the
/// deadline used to panic on its overflow).
#[test]
fn a_receive_with_the_longest_timeout_waits_without_a_deadline() {
    let (manager, mut connection, _) = queued(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Most likely after the receive below has started to wait.
            std::thread::sleep(std::time::Duration::from_millis(50));
            manager.publish(SeqId(1), insert_in_room(1, 1)).unwrap();
        });
        let first = connection
            .notifications
            .recv_timeout(std::time::Duration::MAX)
            .unwrap();
        assert_eq!(seq_of(&first), Some(1));
    });
}
