//! Publishing and delivery: filters, rows entering and leaving, projections, whole commits,
//! tenant isolation, slow consumers and gaps, closed receivers, races with unsubscribe and
//! unregister, statistics, JSON, the ready queue and async receives.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use livecore::*;

/// A delivery names which of its commit's changes it matched, however the publish shares
/// that between deliveries (the first changes' matches in the item itself, later ones
/// through a view, several through a run that equal match sets share): each subscriber
/// gets exactly its own, in commit order, with each change's type as it sees it.
#[test]
fn every_delivery_of_a_commit_carries_exactly_its_own_matches() {
    let (manager, _) = manager();
    let rooms = [1, 1, 2, 2, 3, 7, 9];
    let mut subscribers: Vec<(i64, ConnectionRegistration)> = rooms
        .iter()
        .map(|&room| {
            let connection = connect(&manager, "alice");
            subscribe(&manager, connection.connection_id, in_room(room));
            (room, connection)
        })
        .collect();
    let mut everything = connect(&manager, "alice");
    subscribe(
        &manager,
        everything.connection_id,
        QuerySpec::table(messages()),
    );
    let t = messages;
    let mut commit = vec![
        ChangeNotification::insert(t(), message(1, 2, "a")),
        ChangeNotification::insert(t(), message(2, 3, "b")),
        ChangeNotification::insert(t(), message(3, 1, "c")),
        ChangeNotification::update(t(), message(4, 1, "d"), message(4, 2, "d")),
        ChangeNotification::delete(t(), message(5, 3, "e")),
        ChangeNotification::update(t(), message(6, 1, "f"), message(6, 1, "g")),
    ];
    commit.extend((100..140).map(|id| ChangeNotification::insert(t(), message(id, 9, "n"))));
    commit.push(ChangeNotification::delete(t(), message(7, 7, "h")));
    manager.publish_commit(SeqId(1), commit).unwrap();
    // A one-change commit of each type, for the matches the item carries itself.
    manager
        .publish(
            SeqId(2),
            ChangeNotification::insert(t(), message(8, 7, "i")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(3),
            ChangeNotification::update(t(), message(8, 7, "i"), message(8, 7, "j")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(4),
            ChangeNotification::delete(t(), message(8, 7, "j")),
        )
        .unwrap();

    use ChangeType::{Delete, Insert, Update};
    for (room, connection) in &mut subscribers {
        let received = drain(&mut connection.notifications);
        let expected: Vec<(ChangeType, i64)> = match room {
            1 => vec![(Insert, 3), (Delete, 4), (Update, 6)],
            2 => vec![(Insert, 1), (Insert, 4)],
            3 => vec![(Insert, 2), (Delete, 5)],
            7 => vec![(Delete, 7), (Insert, 8), (Update, 8), (Delete, 8)],
            9 => (100..140).map(|id| (Insert, id)).collect(),
            _ => unreachable!(),
        };
        assert_eq!(changes_of(&received), expected, "room {room}");
        let deliveries = if *room == 7 { 4 } else { 1 };
        assert_eq!(
            received.len(),
            deliveries,
            "room {room}: one delivery per commit"
        );
    }
    let received = drain(&mut everything.notifications);
    assert_eq!(received.len(), 4);
    let mut expected = vec![
        (Insert, 1),
        (Insert, 2),
        (Insert, 3),
        (Update, 4),
        (Delete, 5),
        (Update, 6),
    ];
    expected.extend((100..140).map(|id| (Insert, id)));
    expected.extend([(Delete, 7), (Insert, 8), (Update, 8), (Delete, 8)]);
    assert_eq!(changes_of(&received), expected);
}

#[test]
fn filtered_subscription_sees_rows_enter_stay_and_leave() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(7));
    let t = messages;
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(t(), message(1, 7, "in")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(2),
            ChangeNotification::insert(t(), message(2, 8, "out")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(3),
            ChangeNotification::update(t(), message(1, 7, "in"), message(1, 7, "edit")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(4),
            ChangeNotification::update(t(), message(1, 7, "edit"), message(1, 8, "moved")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(5),
            ChangeNotification::update(t(), message(2, 8, "out"), message(2, 7.0 as i64, "came")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(6),
            ChangeNotification::update(t(), message(3, 8, "x"), message(3, 9, "y")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(7),
            ChangeNotification::delete(t(), message(2, 7, "came")),
        )
        .unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(
        changes_of(&received),
        vec![
            (ChangeType::Insert, 1),
            (ChangeType::Update, 1),
            (ChangeType::Delete, 1),
            (ChangeType::Insert, 2),
            (ChangeType::Delete, 2),
        ]
    );
    // A row leaving is delivered as it was; an update carries the old row too.
    let Notification::Changes(left) = &received[2] else {
        panic!("expected changes")
    };
    let change = left.changes().next().unwrap();
    assert_eq!(change.row.get("body"), Some(&Value::text("edit")));
    let Notification::Changes(updated) = &received[1] else {
        panic!("expected changes")
    };
    let change = updated.changes().next().unwrap();
    assert_eq!(
        change.old_row.unwrap().get("body"),
        Some(&Value::text("in"))
    );
    assert_eq!(updated.seq(), SeqId(3));
}

#[test]
fn float_and_integer_constants_meet_in_the_index() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let spec = QuerySpec::table(messages()).filter(Expr::col("room").eq(Expr::lit(7.0)));
    subscribe(&manager, connection.connection_id, spec);
    let in_list = QuerySpec::table(messages()).filter(Expr::col("room").in_list([3, 7]));
    subscribe(&manager, connection.connection_id, in_list);
    let summary = manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 7, "")),
        )
        .unwrap();
    assert_eq!(summary.matched, 2);
    assert_eq!(
        summary.evaluated, 2,
        "only the two pinned candidates are evaluated"
    );
    // A row moving between two values of one IN list is one update, not two deliveries.
    let summary = manager
        .publish(
            SeqId(2),
            ChangeNotification::update(messages(), message(1, 3, ""), message(1, 7, "")),
        )
        .unwrap();
    assert_eq!(summary.matched, 2);
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 4);
}

#[test]
fn projection_limits_columns_and_is_reported() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let spec = QuerySpec::table(messages()).project(Projection::columns(["body", "id"]));
    let result = subscribe(&manager, connection.connection_id, spec);
    assert_eq!(result.columns, vec!["body".to_string(), "id".to_string()]);
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(5, 1, "hello")),
        )
        .unwrap();
    let Notification::Changes(set) = connection.notifications.try_recv().unwrap() else {
        panic!("expected changes")
    };
    let change = set.changes().next().unwrap();
    assert_eq!(change.row.len(), 2);
    assert_eq!(
        change.row.to_row(),
        Row::new(vec![Value::text("hello"), Value::Int(5)])
    );
    assert_eq!(change.row.get("room"), None);
}

/// A change set holds what it needs to be read: it outlives its subscription, its
/// connection and the manager, and still renders its projected rows and JSON (each
/// subscription with its own projection, the one queried twice keeping both).
#[test]
fn a_change_set_outlives_its_subscription_connection_and_manager() {
    let (manager, _) = manager();
    let mut narrow = connect(&manager, "alice");
    let mut wide = connect(&manager, "alice");
    let narrow_sub = subscribe(
        &manager,
        narrow.connection_id,
        QuerySpec::table(messages()).project(Projection::columns(["body"])),
    );
    subscribe(&manager, wide.connection_id, in_room(4));
    for seq in 1..=2 {
        manager.publish(SeqId(seq), insert_in_room(seq, 4)).unwrap();
    }
    let narrow_sets = drain(&mut narrow.notifications);
    let wide_sets = drain(&mut wide.notifications);
    manager.unsubscribe(narrow_sub.live_query_id).unwrap();
    manager.unregister_connection(narrow.connection_id).unwrap();
    manager.unregister_connection(wide.connection_id).unwrap();
    drop((narrow, wide));
    drop(manager);
    assert_eq!(narrow_sets.len(), 2);
    for (index, notification) in narrow_sets.iter().enumerate() {
        let Notification::Changes(set) = notification else {
            panic!("expected changes, got {notification:?}")
        };
        assert_eq!(set.live_query_id(), narrow_sub.live_query_id);
        assert_eq!(set.column_names().len(), 1);
        let change = set.changes().next().unwrap();
        assert_eq!(change.row.to_row(), Row::new(vec![Value::text("")]));
        assert_eq!(set.seq(), SeqId(index as u64 + 1));
        assert!(notification.to_json().contains("\"body\":\"\""));
    }
    assert_eq!(
        changes_of(&wide_sets),
        vec![(ChangeType::Insert, 1), (ChangeType::Insert, 2)]
    );
    let Notification::Changes(set) = &wide_sets[1] else {
        panic!("expected changes")
    };
    assert_eq!(set.column_names().len(), 3, "every column of the table");
    let copy = set.clone();
    drop(wide_sets);
    assert_eq!(
        copy.changes().next().unwrap().row.get("room"),
        Some(&Value::Int(4))
    );
}

#[test]
fn a_commit_reaches_each_subscriber_whole_and_in_order() {
    let (manager, _) = manager();
    let mut all = connect(&manager, "alice");
    let mut room_one = connect(&manager, "bob");
    let mut alice_notes = connect(&manager, "alice");
    subscribe(&manager, all.connection_id, QuerySpec::table(messages()));
    subscribe(&manager, room_one.connection_id, in_room(1));
    subscribe(
        &manager,
        alice_notes.connection_id,
        QuerySpec::table(notes()),
    );
    let commit = vec![
        ChangeNotification::insert(messages(), message(1, 1, "a")),
        ChangeNotification::insert(notes(), note(10, "n", 1)).owned_by("alice"),
        ChangeNotification::insert(messages(), message(2, 2, "b")),
        ChangeNotification::update(messages(), message(3, 2, "c"), message(3, 1, "c")),
        ChangeNotification::insert(notes(), note(11, "m", 1)).owned_by("bob"),
        ChangeNotification::delete(messages(), message(4, 1, "d")),
    ];
    let summary = manager.publish_commit(SeqId(9), commit).unwrap();
    assert_eq!(summary.matched, 3);
    assert_eq!(summary.enqueued, 3);

    let received = drain(&mut all.notifications);
    assert_eq!(received.len(), 1, "one delivery per commit");
    assert_eq!(
        changes_of(&received),
        vec![
            (ChangeType::Insert, 1),
            (ChangeType::Insert, 2),
            (ChangeType::Update, 3),
            (ChangeType::Delete, 4)
        ]
    );
    let Notification::Changes(set) = &received[0] else {
        panic!()
    };
    let positions: Vec<usize> = set.changes().map(|change| change.position()).collect();
    assert_eq!(positions, vec![0, 2, 3, 5]);

    let received = drain(&mut room_one.notifications);
    assert_eq!(received.len(), 1);
    assert_eq!(
        changes_of(&received),
        vec![
            (ChangeType::Insert, 1),
            (ChangeType::Insert, 3),
            (ChangeType::Delete, 4)
        ]
    );
    let received = drain(&mut alice_notes.notifications);
    assert_eq!(changes_of(&received), vec![(ChangeType::Insert, 10)]);
}

#[test]
fn tenant_isolation_over_100k_random_changes() {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 200_000,
        ..ManagerConfig::default()
    });
    let users: Vec<String> = (0..20).map(|i| format!("user{i}")).collect();
    let mut receivers: Vec<ConnectionRegistration> = Vec::new();
    for user in &users {
        let registration = connect(&manager, user);
        // Half unfiltered, half pinned by a column, so both index paths are exercised.
        let spec = if receivers.len().is_multiple_of(2) {
            QuerySpec::table(notes())
        } else {
            QuerySpec::table(notes()).filter(Expr::col("amount").in_list([0, 1, 2]))
        };
        subscribe(&manager, registration.connection_id, spec);
        receivers.push(registration);
    }
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut expected: HashMap<usize, u64> = HashMap::new();
    for seq in 1..=100_000u64 {
        let owner = (next() % 25) as usize; // users 20..24 have no subscription
        let amount = (next() % 4) as i64;
        let owner_name = format!("user{owner}");
        let change = ChangeNotification::insert(notes(), note(seq as i64, &owner_name, amount))
            .owned_by(owner_name.as_str());
        manager.publish(SeqId(seq), change).unwrap();
        if owner < 20 && (owner.is_multiple_of(2) || amount <= 2) {
            *expected.entry(owner).or_default() += 1;
        }
    }
    for (index, registration) in receivers.iter_mut().enumerate() {
        let mut count = 0u64;
        for notification in drain(&mut registration.notifications) {
            let Notification::Changes(set) = notification else {
                panic!("unexpected {notification:?}")
            };
            for change in set.changes() {
                assert_eq!(
                    change.row.get("title"),
                    Some(&Value::text(&users[index])),
                    "a row of another user leaked"
                );
                count += 1;
            }
        }
        assert_eq!(
            count,
            expected.get(&index).copied().unwrap_or(0),
            "user{index} missed rows"
        );
    }
}

#[test]
fn slow_consumer_gets_an_exact_gap_and_others_are_unaffected() {
    let (manager, _) = with_capacity(4);
    let mut slow = connect(&manager, "slow");
    let mut other = connect(&manager, "other");
    let slow_sub = subscribe(&manager, slow.connection_id, in_room(1));
    subscribe(&manager, other.connection_id, in_room(1));
    for seq in 1..=10 {
        publish_in_room_1(&manager, seq);
        // The other subscriber keeps up.
        assert_eq!(changes_of(&drain(&mut other.notifications)).len(), 1);
    }
    // No further change is published: the receiver itself produces the gap notice.
    let received = drain(&mut slow.notifications);
    assert_eq!(changes_of(&received).len(), 4);
    match &received[4] {
        Notification::Gap {
            live_query_id,
            last_seq,
            missed,
        } => {
            assert_eq!(*live_query_id, slow_sub.live_query_id);
            assert_eq!(*last_seq, Some(SeqId(4)));
            assert_eq!(*missed, 6);
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(received.len(), 5);

    // A gap in the middle of the stream is reported in place.
    for seq in 11..=16 {
        publish_in_room_1(&manager, seq);
        assert_eq!(changes_of(&drain(&mut other.notifications)).len(), 1);
    }
    let first_two: Vec<_> = (0..2)
        .map(|_| slow.notifications.try_recv().unwrap())
        .collect();
    assert_eq!(
        changes_of(&first_two),
        vec![(ChangeType::Insert, 11), (ChangeType::Insert, 12)]
    );
    manager
        .publish(
            SeqId(17),
            ChangeNotification::insert(messages(), message(17, 1, "")),
        )
        .unwrap();
    assert_eq!(changes_of(&drain(&mut other.notifications)).len(), 1);
    let rest = drain(&mut slow.notifications);
    let kinds: Vec<&str> = rest.iter().map(Notification::kind).collect();
    assert_eq!(kinds, vec!["changes", "changes", "gap", "changes"]);
    assert!(matches!(
        rest[2],
        Notification::Gap {
            last_seq: Some(SeqId(14)),
            missed: 2,
            ..
        }
    ));

    let stats = manager.stats();
    assert_eq!(stats.dropped, 8);
    assert_eq!(stats.gaps, 2);
    let sub_stats = manager.subscription(slow_sub.live_query_id).unwrap().stats;
    assert_eq!(sub_stats.dropped, 8);
    assert_eq!(sub_stats.delivered, 9);
}

/// `gaps` counts the gap notices handed out: one the receiver prepared and then dropped
/// (its subscription unsubscribed before its turn) is not counted.
#[test]
fn gap_notices_are_counted_when_handed_out() {
    let (manager, _) = with_capacity(2);
    let mut slow = connect(&manager, "slow");
    let first = subscribe(&manager, slow.connection_id, in_room(1));
    let second = subscribe(&manager, slow.connection_id, in_room(1));
    for seq in 1..=3 {
        publish_in_room_1(&manager, seq);
    }
    // Commit 1 for each, then (the channel empty) a gap notice for each, prepared together.
    let handed_out: Vec<_> = (0..3)
        .map(|_| slow.notifications.try_recv().unwrap())
        .collect();
    assert_eq!(
        handed_out
            .iter()
            .map(Notification::kind)
            .collect::<Vec<_>>(),
        ["changes", "changes", "gap"]
    );
    assert_eq!(handed_out[2].live_query_id(), first.live_query_id);
    manager.unsubscribe(second.live_query_id).unwrap();
    assert_eq!(
        slow.notifications.try_recv().err(),
        Some(ReceiveError::Empty)
    );
    assert_eq!(
        manager.stats().gaps,
        1,
        "the second gap was never handed out"
    );
}

#[test]
fn disconnect_policy_raises_an_event_and_ends_the_stream() {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 2,
        slow_consumer_policy: SlowConsumerPolicy::Disconnect,
        ..ManagerConfig::default()
    });
    let mut slow = connect(&manager, "slow");
    subscribe(&manager, slow.connection_id, in_room(1));
    // Loading, in a room nothing is published to.
    let loading = manager
        .subscribe(
            slow.connection_id,
            in_room(2),
            SubscriptionOptions::with_initial_load(),
        )
        .unwrap();
    assert!(!manager.connection(slow.connection_id).unwrap().is_cut_off());
    for seq in 1..=3 {
        publish_in_room_1(&manager, seq);
    }
    assert_eq!(slow.events.try_recv(), Ok(ConnectionEvent::SlowConsumer));
    assert!(manager.connection(slow.connection_id).unwrap().is_cut_off());
    assert_eq!(
        slow.notifications.try_recv().err(),
        Some(ReceiveError::Closed)
    );
    assert_eq!(manager.stats().dropped, 1);
    // Until the host unregisters the connection, what is published to it is dropped and
    // counted so: the ended stream is not emptied for deliveries nobody will read.
    for seq in 4..=6 {
        publish_in_room_1(&manager, seq);
        assert_eq!(
            slow.notifications.try_recv().err(),
            Some(ReceiveError::Closed)
        );
    }
    let stats = manager.stats();
    assert_eq!((stats.delivered, stats.dropped), (2, 4));
    // A load's sends meet the full channel too: not WouldBlock, which a loader would retry
    // for ever, but InvalidState.
    let pushed = manager.push_snapshot_rows(loading.live_query_id, &[message(9, 2, "")]);
    assert!(
        matches!(pushed, Err(LiveError::InvalidState { .. })),
        "{pushed:?}"
    );
    // Nothing it subscribes to now could reach its consumer.
    for options in [
        SubscriptionOptions::default(),
        SubscriptionOptions::with_initial_load(),
    ] {
        assert_eq!(
            manager
                .subscribe(slow.connection_id, in_room(1), options)
                .err(),
            Some(LiveError::ConnectionCutOff(slow.connection_id))
        );
    }
    assert_eq!(manager.stats().subscriptions, 2);
    manager.unregister_connection(slow.connection_id).unwrap();
    assert_eq!(
        slow.notifications.try_recv().err(),
        Some(ReceiveError::Closed)
    );
}

/// The stack the filter ceilings are documented to fit in, in an optimized build (384 KiB
/// suffices today for the depth); unoptimized frames are several times larger.
const SMALL_STACK: usize = if cfg!(debug_assertions) {
    8 << 20
} else {
    512 << 10
};

/// Runs `test` on a thread of [`SMALL_STACK`] with a manager whose filters are held to
/// `limits`; a stack overflow aborts the test binary, any other failure fails the test.
fn on_a_small_stack(
    limits: FilterLimits,
    test: impl FnOnce(std::sync::Arc<ConnectionsManager>) + Send + 'static,
) {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let (manager, _) = manager_with(ManagerConfig {
                filter_limits: limits,
                ..ManagerConfig::default()
            });
            test(manager)
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
}

/// The deepest filters a configuration may allow parse, route and evaluate on a thread
/// with a 512 KiB stack in an optimized build (each level recurses once on the caller's
/// stack), whatever the shape: a run of NOTs, nested ORs, nested ANDs of ORs.
#[test]
fn filters_at_the_depth_ceiling_run_on_a_small_stack() {
    let levels = MAX_FILTER_DEPTH - 2;
    let nots = format!("{}room = 1", "NOT ".repeat(levels));
    let ors = format!(
        "{}room = 1{}",
        (0..levels)
            .map(|k| format!("id = -{k} OR ("))
            .collect::<String>(),
        ")".repeat(levels)
    );
    let mixed = format!(
        "{}room = 1{}",
        (0..levels)
            .map(|k| if k % 2 == 0 {
                format!("id > -{k} AND (")
            } else {
                format!("id = -{k} OR (")
            })
            .collect::<String>(),
        ")".repeat(levels)
    );
    let limits = FilterLimits {
        max_depth: MAX_FILTER_DEPTH,
        max_nodes: 8 * MAX_FILTER_DEPTH,
        ..FilterLimits::default()
    };
    on_a_small_stack(limits, move |manager| {
        let mut connection = connect(&manager, "deep");
        for filter in [&nots, &ors, &mixed] {
            manager
                .subscribe_sql(
                    connection.connection_id,
                    &format!("SELECT * FROM chat.messages WHERE {filter}"),
                    SubscriptionOptions::default(),
                )
                .unwrap();
        }
        let too_deep = format!("SELECT * FROM chat.messages WHERE NOT {nots}");
        assert!(matches!(
            manager.subscribe_sql(
                connection.connection_id,
                &too_deep,
                SubscriptionOptions::default()
            ),
            Err(LiveError::FilterTooDeep { .. })
        ));
        for (seq, room) in [(1, 2), (2, 1)] {
            manager
                .publish(
                    SeqId(seq),
                    ChangeNotification::insert(messages(), message(seq as i64, room, "")),
                )
                .unwrap();
        }
        // Each of the three filters matches the row in room 1, none the one in room 2.
        assert_eq!(seqs(&drain(&mut connection.notifications)), [2, 2, 2]);
    });
}

/// The SQL parser reads a chain of operators into a tree as deep as the chain: the longest
/// chains the node ceiling lets through parse on a thread with a 512 KiB stack, and longer
/// ones are refused with a typed error, also where a caller hands the parser limits past
/// the ceiling.
#[test]
fn operator_chains_at_the_node_ceiling_run_on_a_small_stack() {
    let chain = |terms: usize, term: &dyn Fn(usize) -> String| {
        (0..terms).map(term).collect::<Vec<_>>().join(" OR ")
    };
    let comparisons = chain(600, &|k| format!("id = -{k}"));
    // As many operators as the ceiling allows (twice the nodes, and one): read whole,
    // then refused for its nodes.
    let bare = chain(2 * MAX_FILTER_NODES + 2, &|_| "room".to_string());
    let postfix = format!("room{}", " ISNULL".repeat(2 * MAX_FILTER_NODES + 1));
    let sum = format!("id = 1{}", " + 1".repeat(2 * MAX_FILTER_NODES));
    let longer = chain(7_000, &|_| "id=1".to_string());
    let limits = FilterLimits {
        max_nodes: MAX_FILTER_NODES,
        ..FilterLimits::default()
    };
    on_a_small_stack(limits, move |manager| {
        let connection = connect(&manager, "chains");
        let subscribe = |filter: &str| {
            manager.subscribe_sql(
                connection.connection_id,
                &format!("SELECT * FROM chat.messages WHERE {filter}"),
                SubscriptionOptions::default(),
            )
        };
        subscribe(&comparisons).unwrap();
        for filter in [&bare, &longer] {
            let refused = subscribe(filter);
            assert!(
                matches!(refused, Err(LiveError::FilterTooLarge { .. })),
                "{refused:?}"
            );
        }
        let refused = subscribe(&postfix);
        assert!(
            matches!(
                refused,
                Err(LiveError::FilterTooLarge { .. } | LiveError::FilterTooDeep { .. })
            ),
            "{refused:?}"
        );
        assert!(subscribe(&sum).is_err());
        let unbounded = FilterLimits {
            max_nodes: usize::MAX,
            ..FilterLimits::default()
        };
        assert!(matches!(
            parse_subscription_sql(&format!("SELECT * FROM t WHERE {longer}"), &unbounded),
            Err(LiveError::FilterTooLarge { .. })
        ));
    });
}

#[test]
fn a_dropped_receiver_is_counted_not_silent() {
    let (manager, _) = manager();
    let connection = connect(&manager, "alice");
    let sub = subscribe(&manager, connection.connection_id, in_room(1));
    drop(connection.notifications);
    let summary = manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "")),
        )
        .unwrap();
    assert_eq!(summary.dropped, 1);
    assert_eq!(summary.dropped_closed, 1);
    assert_eq!(manager.stats().dropped_closed, 1);
    assert_eq!(
        manager
            .subscription(sub.live_query_id)
            .unwrap()
            .stats
            .dropped,
        1
    );
}

#[test]
fn statistics_count_what_happened() {
    let (manager, clock) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = subscribe(&manager, connection.connection_id, in_room(1));
    clock.set(2_000_000);
    manager
        .publish_commit(
            SeqId(1),
            vec![
                ChangeNotification::insert(messages(), message(1, 1, "")),
                ChangeNotification::insert(messages(), message(2, 2, "")),
            ],
        )
        .unwrap();
    let stats = manager.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.subscriptions, 1);
    assert_eq!(stats.published, 1);
    assert_eq!(stats.published_changes, 2);
    assert_eq!(stats.delivered, 1);
    let registered = manager.subscription(sub.live_query_id).unwrap();
    assert_eq!(registered.stats.delivered, 1);
    assert_eq!(registered.stats.last_update_ms, 2_000_000);
    assert_eq!(registered.state, SubscriptionPhase::Live);
    assert!(
        registered.query.contains("\"room\" = 1"),
        "{}",
        registered.query
    );
    drain(&mut connection.notifications);
    assert_eq!(
        manager
            .subscription(sub.live_query_id)
            .unwrap()
            .stats
            .last_received_seq,
        Some(SeqId(1))
    );
    assert_eq!(
        manager
            .subscriptions_of(connection.connection_id)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn json_of_a_change_set() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let sub = subscribe(
        &manager,
        connection.connection_id,
        QuerySpec::table(messages()),
    );
    manager
        .publish(
            SeqId(3),
            ChangeNotification::update(messages(), message(1, 1, "a"), message(1, 2, "b\"q")),
        )
        .unwrap();
    let json = connection.notifications.try_recv().unwrap().to_json();
    let expected = format!(
        r#"{{"type":"changes","live_query_id":"{}","seq":3,"changes":[{{"op":"update","row":{{"id":1,"room":2,"body":"b\"q"}},"old":{{"id":1,"room":1,"body":"a"}}}}]}}"#,
        sub.live_query_id
    );
    assert_eq!(json, expected);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["changes"][0]["row"]["body"], "b\"q");
}

#[test]
fn nothing_arrives_after_unsubscribe_returns_even_while_publishing() {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 1_000_000,
        ..ManagerConfig::default()
    });
    for round in 0..20 {
        let mut connection = connect(&manager, "alice");
        let sub = subscribe(&manager, connection.connection_id, in_room(1));
        let stop = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(round * 1_000_000));
        let publisher = {
            let (manager, stop, seq) = (manager.clone(), stop.clone(), seq.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let seq = seq.fetch_add(1, Ordering::Relaxed) + 1;
                    publish_in_room_1(&manager, seq);
                }
            })
        };
        // Let some deliveries through, then unsubscribe while the publisher runs.
        while connection.notifications.queued() < 50 {
            std::thread::yield_now();
        }
        manager.unsubscribe(sub.live_query_id).unwrap();
        let after: Vec<_> = drain(&mut connection.notifications);
        stop.store(true, Ordering::Relaxed);
        publisher.join().unwrap();
        // Publishes still running when the first drain ended are checked too.
        let after_join: Vec<_> = drain(&mut connection.notifications);
        assert!(
            after.is_empty() && after_join.is_empty(),
            "round {round}: {} notifications after unsubscribe returned, {} more by the end",
            after.len(),
            after_join.len()
        );
        manager
            .unregister_connection(connection.connection_id)
            .unwrap();
    }
}

#[test]
fn nothing_arrives_after_unregister_returns_even_while_publishing() {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 1_000_000,
        ..ManagerConfig::default()
    });
    for round in 0..20 {
        let mut connection = connect(&manager, "alice");
        subscribe(&manager, connection.connection_id, in_room(1));
        subscribe(
            &manager,
            connection.connection_id,
            QuerySpec::table(messages()),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = {
            let (manager, stop) = (manager.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seq = round * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    publish_in_room_1(&manager, seq);
                }
            })
        };
        while connection.notifications.queued() < 50 {
            std::thread::yield_now();
        }
        manager
            .unregister_connection(connection.connection_id)
            .unwrap();
        assert_eq!(manager.stats().subscriptions, 0);
        let after = connection.notifications.try_recv();
        stop.store(true, Ordering::Relaxed);
        publisher.join().unwrap();
        assert_eq!(after.err(), Some(ReceiveError::Closed), "round {round}");
        // Publishes still running at the first check delivered nothing either.
        let after_join = connection.notifications.try_recv();
        assert_eq!(
            after_join.err(),
            Some(ReceiveError::Closed),
            "round {round}"
        );
    }
}

#[test]
fn ready_queue_names_connections_with_something_to_read() {
    let (manager, _) = manager_with(ManagerConfig {
        ready_queue: true,
        ..ManagerConfig::default()
    });
    let ready = manager.ready_connections().expect("enabled");
    let mut first = connect(&manager, "a");
    let second = connect(&manager, "b");
    subscribe(&manager, first.connection_id, in_room(1));
    subscribe(&manager, second.connection_id, in_room(2));
    first.notifications.arm_ready();
    second.notifications.arm_ready();
    assert_eq!(ready.try_recv(), Err(ReceiveError::Empty));
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(2),
            ChangeNotification::insert(messages(), message(2, 1, "")),
        )
        .unwrap();
    assert_eq!(
        ready.recv_timeout(Duration::from_secs(1)),
        Ok(first.connection_id)
    );
    assert_eq!(
        ready.try_recv(),
        Err(ReceiveError::Empty),
        "queued once per arming"
    );
    assert_eq!(drain(&mut first.notifications).len(), 2);
    // Arming with something already waiting queues the connection at once.
    manager
        .publish(
            SeqId(3),
            ChangeNotification::insert(messages(), message(3, 1, "")),
        )
        .unwrap();
    first.notifications.arm_ready();
    assert_eq!(ready.try_recv(), Ok(first.connection_id));
    // Events count too.
    manager.shutdown(Duration::ZERO);
    assert_eq!(ready.try_recv(), Ok(second.connection_id));
}

#[test]
fn a_connection_never_armed_is_still_queued_when_ready() {
    let (manager, _) = manager_with(ManagerConfig {
        ready_queue: true,
        ..ManagerConfig::default()
    });
    let ready = manager.ready_connections().expect("enabled");
    let connection = connect(&manager, "a");
    subscribe(&manager, connection.connection_id, in_room(1));
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "")),
        )
        .unwrap();
    assert_eq!(ready.try_recv(), Ok(connection.connection_id));
}

#[test]
fn async_receivers_work_without_a_runtime() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(1));
    let (received_tx, received_rx) = std::sync::mpsc::channel::<()>();
    let publisher = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            manager
                .publish(
                    SeqId(1),
                    ChangeNotification::insert(messages(), message(1, 1, "")),
                )
                .unwrap();
            received_rx.recv().unwrap();
            manager.shutdown(Duration::ZERO);
        })
    };
    let notification = block_on(connection.notifications.recv_async()).unwrap();
    received_tx.send(()).unwrap();
    assert_eq!(changes_of(&[notification]), vec![(ChangeType::Insert, 1)]);
    assert_eq!(
        block_on(connection.events.recv_async()),
        Ok(ConnectionEvent::Shutdown)
    );
    assert_eq!(
        block_on(connection.notifications.recv_async()).err(),
        Some(ReceiveError::Closed)
    );
    publisher.join().unwrap();
}

/// Publishes, as commit `seq`, the insert of message `seq` into room 1.
fn publish_in_room_1(manager: &ConnectionsManager, seq: u64) {
    manager
        .publish(
            SeqId(seq),
            ChangeNotification::insert(messages(), message(seq as i64, 1, "")),
        )
        .unwrap();
}

/// A subscription under several keys (an IN list) enters the index one key at a time while
/// commits are published: one may or may not reach it, but once one has, every later one
/// does. Before, a commit found through a key already in was delivered and a later one
/// through a key not yet in was missed, with no gap notice.
#[test]
fn a_subscription_under_several_keys_has_no_hole_after_its_first_change() {
    const ROOMS: u64 = 300;
    let in_every_room = format!(
        "SELECT id FROM chat.messages WHERE room IN ({})",
        (0..ROOMS)
            .map(|room| room.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for _ in 0..20 {
        let (manager, _) = with_capacity(100_000);
        // `room` is a pinned column before the subscribe (nothing is published to -1).
        let pinning = connect(&manager, "other");
        subscribe(&manager, pinning.connection_id, in_room(-1));
        let published = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // One publisher, in SeqId order, as the engine publishes a table's commits; each
        // commit in another room, every one of them matching.
        let publisher = {
            let (manager, published, stop) = (manager.clone(), published.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seq = 0;
                while !stop.load(Ordering::Acquire) {
                    seq += 1;
                    let room = (seq * 7919 % ROOMS) as i64;
                    manager
                        .publish(SeqId(seq), insert_in_room(seq, room))
                        .unwrap();
                    published.store(seq, Ordering::Release);
                }
            })
        };
        while published.load(Ordering::Acquire) < 50 {
            std::thread::yield_now();
        }
        let mut reader = connect(&manager, "reader");
        manager
            .subscribe_sql(
                reader.connection_id,
                &in_every_room,
                SubscriptionOptions::default(),
            )
            .unwrap();
        let returned_at = published.load(Ordering::Acquire);
        while published.load(Ordering::Acquire) < returned_at + 200 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Release);
        publisher.join().unwrap();
        let received = drain(&mut reader.notifications);
        let seqs = seqs(&received);
        assert_eq!(seqs.len(), received.len(), "only changes: {received:?}");
        assert!(
            seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "a hole after the first change: {seqs:?}"
        );
        // The publish after the last one seen to complete may have begun before the
        // subscribe returned; the one after it began after.
        assert!(
            seqs.first().is_some_and(|first| *first <= returned_at + 2),
            "commits published after the subscribe returned were missed: {seqs:?}"
        );
    }
}
