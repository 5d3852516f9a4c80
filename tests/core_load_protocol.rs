//! The snapshot/live protocol: gating, the boundary, snapshot batches through livecore,
//! completion, buffer overflow (ResyncRequired), and resume (replay, ResumeUnavailable).

mod common;

use common::*;
use livecore::*;

#[test]
fn initial_load_delivers_each_change_once_across_the_boundary() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = load_in_room_1(&manager, &connection);
    assert!(sub.gated);
    for seq in 1..=5 {
        manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    }
    assert!(
        drain(&mut connection.notifications).is_empty(),
        "gated: nothing yet"
    );
    // The engine's snapshot holds commits up to 3.
    manager
        .set_snapshot_boundary(sub.live_query_id, SeqId(3))
        .unwrap();
    manager.publish(SeqId(6), insert_in_room(6, 1)).unwrap();
    manager.publish(SeqId(7), insert_in_room(7, 2)).unwrap();
    let report = manager.complete_initial_load(sub.live_query_id).unwrap();
    assert_eq!(report.flushed, 3);
    assert_eq!(report.covered_by_snapshot, 3);
    assert_eq!(report.boundary, Some(SeqId(3)));
    manager.publish(SeqId(8), insert_in_room(8, 1)).unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(received[0].kind(), "load_complete");
    assert_eq!(seqs(&received), vec![4, 5, 6, 8]);
    assert_eq!(
        manager.complete_initial_load(sub.live_query_id).err(),
        Some(LiveError::InvalidState {
            subscription_id: sub.live_query_id.subscription_id,
            reason: "the initial load has already completed"
        })
    );
    assert!(manager
        .set_snapshot_boundary(sub.live_query_id, SeqId(9))
        .is_err());
}

/// A boundary set again may stay or move forward. Moved back, the changes the first one
/// dropped would be in neither the snapshot nor the stream, so it is refused, and the load
/// completes at the boundary kept (found by an outside C host: a lower one was accepted).
#[test]
fn the_snapshot_boundary_moves_forward_only() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let id = load_in_room_1(&manager, &connection).live_query_id;
    for seq in 1..=4 {
        manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    }
    manager.set_snapshot_boundary(id, SeqId(2)).unwrap();
    assert_eq!(
        manager.set_snapshot_boundary(id, SeqId(1)),
        Err(LiveError::InvalidState {
            subscription_id: id.subscription_id,
            reason: "the snapshot boundary may stay or move forward, not back: changes \
                     above the new one may already have been dropped as covered",
        })
    );
    manager.set_snapshot_boundary(id, SeqId(2)).unwrap();
    manager.set_snapshot_boundary(id, SeqId(3)).unwrap();
    let report = manager.complete_initial_load(id).unwrap();
    assert_eq!(report.boundary, Some(SeqId(3)));
    assert_eq!(report.covered_by_snapshot, 3);
    assert_eq!(seqs(&drain(&mut connection.notifications)), vec![4]);
}

/// A boundary or resume position the gate cannot hold is refused, not cut to the largest
/// it holds (found by an outside soak: the cut boundary let a change the snapshot covered
/// through, delivered twice).
#[test]
fn a_boundary_past_the_largest_is_out_of_bounds() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let id = load_in_room_1(&manager, &connection).live_query_id;
    for past in [MAX_SNAPSHOT_BOUNDARY + 1, u64::MAX] {
        assert_eq!(
            manager.set_snapshot_boundary(id, SeqId(past)),
            Err(LiveError::OutOfBounds {
                what: "snapshot boundary (SeqId)",
                value: past,
                min: 0,
                max: MAX_SNAPSHOT_BOUNDARY,
            })
        );
        assert!(matches!(
            manager.subscribe(
                connection.connection_id,
                in_room(1),
                SubscriptionOptions::resume_from(SeqId(past)),
            ),
            Err(LiveError::OutOfBounds { value, .. }) if value == past
        ));
    }
    // The largest is exact: a change at it is covered, one above it delivered.
    manager
        .set_snapshot_boundary(id, SeqId(MAX_SNAPSHOT_BOUNDARY))
        .unwrap();
    for seq in [MAX_SNAPSHOT_BOUNDARY, MAX_SNAPSHOT_BOUNDARY + 2] {
        manager.publish(SeqId(seq), insert_in_room(1, 1)).unwrap();
    }
    let report = manager.complete_initial_load(id).unwrap();
    assert_eq!(report.boundary, Some(SeqId(MAX_SNAPSHOT_BOUNDARY)));
    assert_eq!(
        seqs(&drain(&mut connection.notifications)),
        vec![MAX_SNAPSHOT_BOUNDARY + 2]
    );
    let resumed = resume_in_room_1(&manager, &connection, MAX_SNAPSHOT_BOUNDARY);
    assert_eq!(resumed.resume_from, Some(SeqId(MAX_SNAPSHOT_BOUNDARY)));
}

/// Load calls for a connection whose receiver was dropped fail with a state error that
/// says so: the connection is still registered, so it is not an unknown connection (found
/// by an outside soak), and a retry could never succeed.
#[test]
fn load_calls_after_the_receiver_is_dropped_say_so() {
    let (manager, _) = manager();
    let connection = connect(&manager, "alice");
    let loading = load_in_room_1(&manager, &connection).live_query_id;
    let resuming = resume_in_room_1(&manager, &connection, 10).live_query_id;
    drop(connection.notifications);
    let gone = |id: LiveQueryId| LiveError::InvalidState {
        subscription_id: id.subscription_id,
        reason: "its connection's notification receiver was dropped: unregister the connection",
    };
    assert_eq!(
        manager
            .push_snapshot_rows(loading, &[message(1, 1, "a")])
            .err(),
        Some(gone(loading))
    );
    assert_eq!(
        manager.complete_initial_load(loading).err(),
        Some(gone(loading))
    );
    assert_eq!(
        manager
            .replay_commit(resuming, SeqId(11), vec![insert_in_room(11, 1)])
            .err(),
        Some(gone(resuming))
    );
    assert_eq!(
        manager
            .subscriptions_of(connection.connection_id)
            .map(|listed| listed.len()),
        Ok(2),
        "still registered"
    );
}

#[test]
fn snapshot_rows_through_livecore_are_filtered_projected_batched_and_first() {
    let (manager, _) = with_capacity(3);
    let mut connection = connect(&manager, "alice");
    let spec = in_room(1).project(Projection::columns(["id"]));
    let options = SubscriptionOptions {
        batch_size: 2,
        ..SubscriptionOptions::with_initial_load()
    };
    let sub = manager
        .subscribe(connection.connection_id, spec, options)
        .unwrap();
    let id = sub.live_query_id;
    manager.set_snapshot_boundary(id, SeqId(10)).unwrap();
    manager.publish(SeqId(11), insert_in_room(11, 1)).unwrap();
    let rows: Vec<Row> = (0..10).map(|i| message(i, 1 + i % 2, "")).collect();
    // Batches of two input rows; only room 1 (even i) passes the filter: one row each.
    // Three batches fit in the channel, then it is full.
    let error = manager.push_snapshot_rows(id, &rows).unwrap_err();
    assert_eq!(error, LiveError::WouldBlock { consumed: 6 });
    let first = drain(&mut connection.notifications);
    assert_eq!(first.len(), 3);
    let progress = manager.push_snapshot_rows(id, &rows[6..]).unwrap();
    assert_eq!(
        progress,
        SnapshotProgress {
            consumed: 4,
            batches: 2,
            rows: 2
        }
    );
    let second = drain(&mut connection.notifications);
    let all: Vec<&Notification> = first.iter().chain(&second).collect();
    let mut snapshot_ids = Vec::new();
    for (index, notification) in all.iter().enumerate() {
        let Notification::Snapshot(batch) = notification else {
            panic!("expected a batch")
        };
        assert_eq!(batch.batch_number(), index as u32);
        assert_eq!(batch.column_names().len(), 1);
        snapshot_ids.extend(batch.rows().iter().map(|row| row.value(0).clone()));
    }
    assert_eq!(
        snapshot_ids,
        (0..10).step_by(2).map(Value::Int).collect::<Vec<_>>()
    );
    let report = manager.complete_initial_load(id).unwrap();
    assert_eq!((report.batches, report.rows, report.flushed), (5, 5, 1));
    let tail = drain(&mut connection.notifications);
    assert!(matches!(
        tail[0],
        Notification::InitialLoadComplete {
            batches: 5,
            rows: 5,
            ..
        }
    ));
    assert_eq!(seqs(&tail), vec![11]);
    assert!(tail[0].to_json().contains(r#""boundary":10"#));
    // Snapshot rows after the load are refused.
    assert!(matches!(
        manager.push_snapshot_rows(id, &rows),
        Err(LiveError::InvalidState { .. })
    ));
}

#[test]
fn completion_with_no_room_hands_its_marker_out_after_what_was_queued() {
    let (manager, _) = with_capacity(1);
    let mut connection = connect(&manager, "alice");
    let sub = load_in_room_1(&manager, &connection);
    manager
        .push_snapshot_rows(sub.live_query_id, &[message(1, 1, "")])
        .unwrap();
    // The snapshot batch fills the channel; completion does not wait for room.
    let report = manager.complete_initial_load(sub.live_query_id).unwrap();
    assert_eq!((report.batches, report.rows), (1, 1));
    assert_eq!(
        manager.subscription(sub.live_query_id).unwrap().state,
        SubscriptionPhase::Live
    );
    let kinds: Vec<_> = drain(&mut connection.notifications)
        .iter()
        .map(Notification::kind)
        .collect();
    assert_eq!(kinds, ["snapshot", "load_complete"]);
    manager.publish(SeqId(2), insert_in_room(2, 1)).unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(seqs(&received), vec![2]);
    assert_eq!(received.len(), 1, "the marker came once: {received:?}");
}

/// Replayed commits go ahead of the marker, also when it waits out of band: the receiver
/// tells them from the changes after it by their numbers.
#[test]
fn replayed_changes_stay_ahead_of_a_marker_that_found_no_room() {
    let (manager, _) = with_capacity(2);
    let mut connection = connect(&manager, "alice");
    let sub = resume_in_room_1(&manager, &connection, 10);
    for seq in [11, 12] {
        assert!(manager
            .replay_commit(sub.live_query_id, SeqId(seq), vec![insert_in_room(seq, 1)])
            .unwrap());
    }
    manager.complete_initial_load(sub.live_query_id).unwrap();
    // One replayed commit taken: a live one takes its place, behind the other.
    let first = connection.notifications.try_recv().unwrap();
    assert_eq!(seqs(&[first]), vec![11]);
    manager.publish(SeqId(13), insert_in_room(13, 1)).unwrap();
    let kinds = labels(&drain(&mut connection.notifications));
    assert_eq!(kinds, ["12", "load_complete", "13"]);
}

/// A load on a connection whose other subscriptions keep its channel full: every slot
/// the receiver frees is taken again by live traffic. Completion still succeeds at once,
/// and the marker comes right after what was queued when it completed, with the change
/// the gate held behind it (out of band too: nothing is dropped), ahead of the
/// subscription's later changes.
#[test]
fn a_load_completes_on_a_connection_its_live_traffic_keeps_full() {
    let (manager, _) = with_capacity(4);
    let mut connection = connect(&manager, "alice");
    let busy = manager
        .subscribe(
            connection.connection_id,
            in_room(2),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let loading = load_in_room_1(&manager, &connection);
    manager
        .set_snapshot_boundary(loading.live_query_id, SeqId(0))
        .unwrap();
    manager
        .push_snapshot_rows(loading.live_query_id, &[message(1, 1, "")])
        .unwrap();
    for seq in 1..=3 {
        manager.publish(SeqId(seq), insert_in_room(seq, 2)).unwrap();
    }
    // Held by the gate; its flush finds the channel full.
    manager.publish(SeqId(4), insert_in_room(4, 1)).unwrap();
    let report = manager
        .complete_initial_load(loading.live_query_id)
        .unwrap();
    assert_eq!(report.flushed, 1);

    let mut seq = 4;
    let mut received = Vec::new();
    for _ in 0..12 {
        received.push(connection.notifications.try_recv().unwrap());
        // Live traffic takes every slot the receive freed.
        if connection.notifications.queued() < 4 {
            seq += 1;
            manager.publish(SeqId(seq), insert_in_room(seq, 2)).unwrap();
        }
    }
    received.extend(drain(&mut connection.notifications));
    seq += 1;
    manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    received.extend(drain(&mut connection.notifications));

    let of_load: Vec<_> = received
        .iter()
        .filter(|notification| notification.live_query_id() == loading.live_query_id)
        .collect();
    let kinds: Vec<_> = of_load
        .iter()
        .map(|notification| notification.kind())
        .collect();
    assert_eq!(kinds, ["snapshot", "load_complete", "changes", "changes"]);
    assert_eq!(seqs(std::slice::from_ref(of_load[2])), vec![4]);
    assert_eq!(seqs(std::slice::from_ref(of_load[3])), vec![seq]);
    // The marker followed the four items queued when the load completed.
    let marker_at = received
        .iter()
        .position(|notification| notification.kind() == "load_complete")
        .unwrap();
    assert_eq!(marker_at, 4, "{received:?}");
    // The busy subscription lost nothing.
    let busy_seqs: Vec<u64> = received
        .iter()
        .filter(|notification| notification.live_query_id() == busy.live_query_id)
        .flat_map(|notification| seqs(std::slice::from_ref(notification)))
        .collect();
    let expected: Vec<u64> = (1..=3).chain(5..seq).collect();
    assert_eq!(busy_seqs, expected);
    let stats = manager.stats();
    assert_eq!(stats.dropped, 0);
    assert_eq!(
        stats.delivered,
        received.len() as u64 - 2,
        "all but the snapshot and marker"
    );
}

/// Under the Disconnect policy a full channel at completion cuts nothing off: the held
/// changes follow the marker out of band instead of being pushed into the full channel.
#[test]
fn completion_into_a_full_channel_cuts_no_one_off() {
    let (manager, mut connection, sub) = loading_beside_room_2(SlowConsumerPolicy::Disconnect);
    manager
        .push_snapshot_rows(sub.live_query_id, &[message(1, 1, "")])
        .unwrap();
    manager.publish(SeqId(2), insert_in_room(2, 2)).unwrap();
    // Held by the gate; the channel is full.
    manager.publish(SeqId(3), insert_in_room(3, 1)).unwrap();
    let report = manager.complete_initial_load(sub.live_query_id).unwrap();
    assert_eq!(report.flushed, 1);
    let kinds = labels(&drain(&mut connection.notifications));
    assert_eq!(kinds, ["snapshot", "2", "load_complete", "3"]);
    manager.publish(SeqId(4), insert_in_room(4, 1)).unwrap();
    assert_eq!(seqs(&drain(&mut connection.notifications)), vec![4]);
    assert_eq!(manager.stats().dropped, 0);
}

/// The marker fits but the held changes do not: they follow it out of band, under both
/// policies, rather than being dropped or cutting the connection off.
#[test]
fn held_changes_the_marker_left_no_room_for_follow_it() {
    for policy in [
        SlowConsumerPolicy::GapNotice,
        SlowConsumerPolicy::Disconnect,
    ] {
        let (manager, mut connection, sub) = loading_beside_room_2(policy);
        // One slot left, for the marker; 3 and 4 are held by the gate.
        manager.publish(SeqId(2), insert_in_room(2, 2)).unwrap();
        manager.publish(SeqId(3), insert_in_room(3, 1)).unwrap();
        manager.publish(SeqId(4), insert_in_room(4, 1)).unwrap();
        assert_eq!(
            manager
                .complete_initial_load(sub.live_query_id)
                .unwrap()
                .flushed,
            2
        );
        let kinds = labels(&drain(&mut connection.notifications));
        assert_eq!(kinds, ["2", "load_complete", "3", "4"], "{policy:?}");
        manager.publish(SeqId(5), insert_in_room(5, 1)).unwrap();
        assert_eq!(seqs(&drain(&mut connection.notifications)), vec![5]);
        assert_eq!(manager.stats().dropped, 0, "{policy:?}");
    }
}

/// A subscription whose marker waits out of band is counted once against the limit.
#[test]
fn a_waiting_marker_of_a_live_subscription_is_counted_once() {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 1,
        max_subscriptions_per_connection: 3,
        ..ManagerConfig::default()
    });
    let connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(2));
    manager.publish(SeqId(1), insert_in_room(1, 2)).unwrap();
    let sub = load_in_room_1(&manager, &connection);
    manager
        .set_snapshot_boundary(sub.live_query_id, SeqId(1))
        .unwrap();
    manager.complete_initial_load(sub.live_query_id).unwrap();
    subscribe(&manager, connection.connection_id, in_room(3));
}

/// Markers waiting out of band for a connection that never reads count against its
/// subscription limit, as released cores do: they cannot pile up.
#[test]
fn waiting_markers_of_an_unread_connection_count_against_its_limit() {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 1,
        max_subscriptions_per_connection: 4,
        ..ManagerConfig::default()
    });
    let mut connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(2));
    manager.publish(SeqId(1), insert_in_room(1, 2)).unwrap();
    let mut completed = 0;
    let refusal = loop {
        let sub = match manager.subscribe(
            connection.connection_id,
            in_room(1),
            SubscriptionOptions::with_initial_load(),
        ) {
            Ok(sub) => sub,
            Err(error) => break error,
        };
        manager
            .set_snapshot_boundary(sub.live_query_id, SeqId(1))
            .unwrap();
        manager.complete_initial_load(sub.live_query_id).unwrap();
        manager.unsubscribe(sub.live_query_id).unwrap();
        completed += 1;
        assert!(completed < 10, "the waiting markers are not limited");
    };
    assert!(matches!(
        refusal,
        LiveError::SubscriptionLimitReached { max: 4, .. }
    ));
    // Reading takes them (each skipped: unsubscribed), and subscribing works again.
    assert_eq!(drain(&mut connection.notifications).len(), 1);
    load_in_room_1(&manager, &connection);
}

#[test]
fn gate_overflow_requires_a_resync() {
    let (manager, _) = manager_with(ManagerConfig {
        gate_buffer_capacity: 3,
        ..ManagerConfig::default()
    });
    let mut connection = connect(&manager, "alice");
    let sub = load_in_room_1(&manager, &connection);
    for seq in 1..=4 {
        manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
    }
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 1);
    assert!(
        matches!(received[0], Notification::ResyncRequired { live_query_id } if live_query_id == sub.live_query_id)
    );
    assert!(manager.complete_initial_load(sub.live_query_id).is_err());
    assert_eq!(manager.stats().resyncs, 1);
    // The ended subscription is removed on the next writer call; the connection still
    // says how it ended.
    manager.check_connections_now();
    assert_eq!(
        manager.subscription(sub.live_query_id).err(),
        Some(LiveError::SubscriptionEnded {
            subscription_id: sub.live_query_id.subscription_id,
            ending: SubscriptionEnding::ResyncRequired,
        })
    );
    manager.publish(SeqId(5), insert_in_room(5, 1)).unwrap();
    assert!(drain(&mut connection.notifications).is_empty());
}

#[test]
fn resume_replays_missed_commits_in_order_exactly_once() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    // The client last saw commit 10.
    let sub = resume_in_room_1(&manager, &connection, 10);
    assert_eq!(sub.resume_from, Some(SeqId(10)));
    // Live commits arrive while the engine replays.
    manager.publish(SeqId(13), insert_in_room(13, 1)).unwrap();
    manager.publish(SeqId(14), insert_in_room(14, 1)).unwrap();
    let id = sub.live_query_id;
    assert!(
        !manager
            .replay_commit(id, SeqId(9), vec![insert_in_room(9, 1)])
            .unwrap(),
        "at or below the resume point"
    );
    assert!(manager
        .replay_commit(id, SeqId(11), vec![insert_in_room(11, 1)])
        .unwrap());
    let update = ChangeNotification::update(messages(), message(12, 1, ""), message(12, 2, ""));
    let delete = ChangeNotification::delete(messages(), message(5, 1, ""));
    assert!(manager
        .replay_commit(id, SeqId(12), vec![update, delete])
        .unwrap());
    assert!(
        manager
            .replay_commit(id, SeqId(13), vec![insert_in_room(13, 1)])
            .unwrap(),
        "sent by the replay; the live copy buffered before it is dropped"
    );
    manager.complete_initial_load(id).unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(seqs(&received), vec![11, 12, 13, 14]);
    assert_eq!(
        changes_of(&received),
        vec![
            (ChangeType::Insert, 11),
            (ChangeType::Delete, 12),
            (ChangeType::Delete, 5),
            (ChangeType::Insert, 13),
            (ChangeType::Insert, 14),
        ]
    );
}

/// A live copy of a commit its replay delivers is covered, whichever comes first: held by
/// the gate and dropped by the replay, or dropped on arrival after it. Counted the same
/// both ways, in the stats and the completion's report (found by an outside soak: the
/// first order counted it buffered and nothing else).
#[test]
fn a_live_copy_of_a_replayed_commit_is_counted_covered_in_either_order() {
    for live_first in [true, false] {
        let (manager, _) = manager();
        let mut connection = connect(&manager, "alice");
        let sub = resume_in_room_1(&manager, &connection, 0);
        let replay = || {
            assert!(manager
                .replay_commit(sub.live_query_id, SeqId(1), vec![insert_in_room(1, 1)])
                .unwrap());
        };
        if live_first {
            manager.publish(SeqId(1), insert_in_room(1, 1)).unwrap();
            replay();
        } else {
            replay();
            manager.publish(SeqId(1), insert_in_room(1, 1)).unwrap();
        }
        let report = manager.complete_initial_load(sub.live_query_id).unwrap();
        assert_eq!((report.flushed, report.covered_by_snapshot), (0, 1));
        let stats = manager.stats();
        assert_eq!(
            (stats.delivered, stats.covered_by_snapshot),
            (1, 1),
            "live first: {live_first}"
        );
        assert_eq!(
            stats.buffered,
            u64::from(live_first),
            "held only when live came first"
        );
        assert_eq!(
            labels(&drain(&mut connection.notifications)),
            ["1", "load_complete"]
        );
    }
}

#[test]
fn resume_unavailable_is_typed_and_ends_the_subscription() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = resume_in_room_1(&manager, &connection, 3);
    manager.publish(SeqId(4), insert_in_room(4, 1)).unwrap();
    manager.resume_unavailable(sub.live_query_id).unwrap();
    manager.publish(SeqId(5), insert_in_room(5, 1)).unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 1);
    assert!(
        matches!(received[0], Notification::ResumeUnavailable { live_query_id } if live_query_id == sub.live_query_id)
    );
    assert!(received[0]
        .to_json()
        .contains(r#""type":"resume_unavailable""#));
    assert!(manager.subscription(sub.live_query_id).is_err());
    assert_eq!(manager.stats().subscriptions, 0);
}

/// Only a gated subscription can be told its resume is unavailable: a live one is refused
/// and keeps receiving; one already ended says how it ended.
#[test]
fn resume_unavailable_needs_a_gated_subscription() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let live = manager
        .subscribe(
            connection.connection_id,
            in_room(1),
            SubscriptionOptions::default(),
        )
        .unwrap();
    assert!(matches!(
        manager.resume_unavailable(live.live_query_id),
        Err(LiveError::InvalidState { .. })
    ));
    manager.publish(SeqId(1), insert_in_room(1, 1)).unwrap();
    let received = drain(&mut connection.notifications);
    assert!(
        matches!(received.as_slice(), [Notification::Changes(_)]),
        "{received:?}"
    );
    let resuming = resume_in_room_1(&manager, &connection, 1);
    manager.resume_unavailable(resuming.live_query_id).unwrap();
    assert!(matches!(
        manager.resume_unavailable(resuming.live_query_id),
        Err(LiveError::SubscriptionEnded {
            ending: SubscriptionEnding::ResumeUnavailable,
            ..
        })
    ));
}

#[test]
fn replay_on_a_user_table_ignores_other_users_rows() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = manager
        .subscribe(
            connection.connection_id,
            QuerySpec::table(notes()),
            SubscriptionOptions::resume_from(SeqId(0)),
        )
        .unwrap();
    let commit = vec![
        ChangeNotification::insert(notes(), note(1, "mine", 1)).owned_by("alice"),
        ChangeNotification::insert(notes(), note(2, "theirs", 1)).owned_by("bob"),
    ];
    assert!(manager
        .replay_commit(sub.live_query_id, SeqId(1), commit)
        .unwrap());
    manager.complete_initial_load(sub.live_query_id).unwrap();
    assert_eq!(
        changes_of(&drain(&mut connection.notifications)),
        vec![(ChangeType::Insert, 1)]
    );
}

/// A manager of channel capacity 2 under `policy`, alice connected with a live
/// subscription to room 2 beside a loading one to room 1 whose boundary is commit 1.
fn loading_beside_room_2(
    policy: SlowConsumerPolicy,
) -> (
    std::sync::Arc<ConnectionsManager>,
    ConnectionRegistration,
    SubscriptionResult,
) {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 2,
        slow_consumer_policy: policy,
        ..ManagerConfig::default()
    });
    let connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(2));
    let sub = load_in_room_1(&manager, &connection);
    manager
        .set_snapshot_boundary(sub.live_query_id, SeqId(1))
        .unwrap();
    (manager, connection, sub)
}

/// A subscription to room 1 resuming after commit `after`.
fn resume_in_room_1(
    manager: &ConnectionsManager,
    connection: &ConnectionRegistration,
    after: u64,
) -> SubscriptionResult {
    manager
        .subscribe(
            connection.connection_id,
            in_room(1),
            SubscriptionOptions::resume_from(SeqId(after)),
        )
        .unwrap()
}

/// Subscribes `connection` to room 1 with an initial load.
fn load_in_room_1(
    manager: &ConnectionsManager,
    connection: &ConnectionRegistration,
) -> SubscriptionResult {
    manager
        .subscribe(
            connection.connection_id,
            in_room(1),
            SubscriptionOptions::with_initial_load(),
        )
        .unwrap()
}

/// Each notification as the SeqId of its changes, or its kind.
fn labels(notifications: &[Notification]) -> Vec<String> {
    notifications
        .iter()
        .map(|notification| match notification {
            Notification::Changes(changes) => changes.seq().0.to_string(),
            other => other.kind().to_string(),
        })
        .collect()
}
