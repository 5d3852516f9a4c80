//! Live-query records, revocation and failover.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use livecore::*;

#[test]
fn records_describe_each_live_query_once() {
    let (manager, clock) = manager_with(ManagerConfig {
        node_id: NodeId(7),
        ..ManagerConfig::default()
    });
    let alice = connect(&manager, "alice");
    let bob = connect(&manager, "bob");
    let pinned_twice = QuerySpec::table(messages()).filter(Expr::col("room").in_list([1, 2, 3]));
    let a = subscribe(&manager, alice.connection_id, pinned_twice);
    clock.advance(5);
    let b = manager
        .subscribe(
            bob.connection_id,
            QuerySpec::table(notes()),
            SubscriptionOptions::with_initial_load(),
        )
        .unwrap();
    let sql = "SELECT id, body FROM chat.messages WHERE body LIKE 'x%' AND id >= 10";
    let c = manager
        .subscribe_sql(bob.connection_id, sql, SubscriptionOptions::default())
        .unwrap();
    clock.advance(7);
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 2, "")),
        )
        .unwrap();
    clock.advance(3);
    manager.heartbeat(alice.connection_id).unwrap();
    let records = manager.live_query_records();
    assert_eq!(records.len(), 3, "{records:?}");
    let first = &records[0];
    assert_eq!(first.live_query_id, a.live_query_id);
    assert_eq!(first.connection_id, alice.connection_id);
    assert_eq!(first.subscription_id, a.live_query_id.subscription_id);
    // Delivered by the publish at +12, heard from at +15.
    assert_eq!(first.last_update_ms, first.created_at_ms + 12);
    assert_eq!(first.last_heartbeat_ms, first.created_at_ms + 15);
    assert_eq!(first.table_id, messages());
    assert_eq!(first.user_id, Some(UserId::from("alice")));
    assert_eq!(first.node_id, NodeId(7));
    assert_eq!(first.status, SubscriptionPhase::Live);
    assert_eq!(first.changes_delivered, 1);
    assert!(
        first.query.to_sql().contains("IN (1, 2, 3)"),
        "{}",
        first.query
    );
    let second = &records[1];
    assert_eq!(second.live_query_id, b.live_query_id);
    assert_eq!(second.status, SubscriptionPhase::Loading);
    assert_eq!(second.created_at_ms, first.created_at_ms + 5);
    assert!(second.options.initial_load);
    assert_eq!(second.changes_delivered, 0);
    // Bob's connection has been silent since it registered.
    assert_eq!(second.last_heartbeat_ms, first.created_at_ms);
    let third = &records[2];
    assert_eq!(third.live_query_id, c.live_query_id);
    assert_eq!(third.connection_id, bob.connection_id);
    assert_eq!(third.subscription_id, c.live_query_id.subscription_id);
    // A query written in SQL is recorded as written.
    assert_eq!(third.query.to_sql(), sql);
    assert_eq!(third.changes_delivered, 0);
}

#[test]
fn records_match_the_managers_state_under_concurrent_churn() {
    let (manager, _) = manager_with(ManagerConfig {
        max_subscriptions_per_connection: 10_000,
        ..ManagerConfig::default()
    });
    let stable_connection = connect(&manager, "stable");
    let churn_connection = connect(&manager, "churn");
    let mut stable = BTreeSet::new();
    for room in 0..200 {
        let spec = if room % 3 == 0 {
            QuerySpec::table(messages()).filter(Expr::col("room").in_list([room, room + 1000]))
        } else {
            in_room(room)
        };
        stable.insert(subscribe(&manager, stable_connection.connection_id, spec).live_query_id);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let churner = {
        let (manager, stop, rounds, id) = (
            manager.clone(),
            stop.clone(),
            rounds.clone(),
            churn_connection.connection_id,
        );
        std::thread::spawn(move || {
            let mut round = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let spec =
                    QuerySpec::table(messages()).filter(Expr::col("room").in_list([round, -round]));
                let sub = manager
                    .subscribe(id, spec, SubscriptionOptions::default())
                    .unwrap();
                manager.unsubscribe(sub.live_query_id).unwrap();
                round += 1;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while rounds.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    // Walk at least 200 times, and until the churner has done 200 rounds meanwhile, so the
    // walks really overlap subscribes and unsubscribes.
    let first_round = rounds.load(Ordering::Relaxed);
    let mut walks = 0;
    let mut churn_seen = 0;
    while walks < 200 || rounds.load(Ordering::Relaxed) < first_round + 200 {
        walks += 1;
        let records = manager.live_query_records();
        for record in records
            .iter()
            .filter(|record| stable.contains(&record.live_query_id))
        {
            assert_eq!(record.table_id, messages());
            assert_eq!(record.status, SubscriptionPhase::Live);
            assert_eq!(record.connection_id, stable_connection.connection_id);
        }
        churn_seen += records.len() - stable.len();
        let ids: Vec<LiveQueryId> = records.iter().map(|record| record.live_query_id).collect();
        let unique: BTreeSet<LiveQueryId> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "a live query appeared twice");
        assert!(stable.is_subset(&unique), "a stable live query was missing");
        // The walk is not a snapshot: live queries that came and went during it may appear,
        // but only ones that existed, and only the churning connection's.
        for record in records
            .iter()
            .filter(|record| !stable.contains(&record.live_query_id))
        {
            assert_eq!(record.connection_id, churn_connection.connection_id);
            assert_eq!(record.user_id, Some(UserId::from("churn")));
        }
    }
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    println!(
        "{walks} walks overlapped {} churn rounds; {churn_seen} churning live queries seen mid-walk",
        rounds.load(Ordering::Relaxed) - first_round
    );
    let listed: BTreeSet<LiveQueryId> = [
        stable_connection.connection_id,
        churn_connection.connection_id,
    ]
    .iter()
    .flat_map(|id| manager.subscriptions_of(*id).unwrap())
    .map(|registered| registered.live_query_id)
    .collect();
    let recorded: BTreeSet<LiveQueryId> = manager
        .live_query_records()
        .iter()
        .map(|record| record.live_query_id)
        .collect();
    assert_eq!(recorded, listed);
    assert_eq!(recorded, stable);
}

/// Publishes inserts into room 1 of `messages` and a note owned by `owner` until stopped.
fn spawn_publisher(
    manager: Arc<ConnectionsManager>,
    stop: Arc<AtomicBool>,
    owner: &'static str,
) -> std::thread::JoinHandle<()> {
    let seq = AtomicU64::new(0);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let next = seq.fetch_add(1, Ordering::Relaxed) + 1;
            let commit = vec![
                ChangeNotification::insert(messages(), message(next as i64, 1, "")),
                ChangeNotification::insert(notes(), note(next as i64, owner, 1)).owned_by(owner),
            ];
            if manager.publish_commit(SeqId(next), commit).is_err() {
                return; // the table was dropped
            }
        }
    })
}

fn wait_for_traffic(receiver: &NotificationReceiver) {
    while receiver.queued() < 20 {
        std::thread::yield_now();
    }
}

#[test]
fn revoking_a_user_racing_publish_delivers_nothing_after_it_returns() {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 1_000_000,
        ..ManagerConfig::default()
    });
    let mut alice = connect(&manager, "alice");
    let mut bob = connect(&manager, "bob");
    let alice_subs = [
        subscribe(&manager, alice.connection_id, in_room(1)),
        subscribe(&manager, alice.connection_id, QuerySpec::table(notes())),
    ];
    subscribe(&manager, bob.connection_id, in_room(1));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = spawn_publisher(manager.clone(), stop.clone(), "alice");
    wait_for_traffic(&alice.notifications);
    assert_eq!(
        manager.revoke_user(&UserId::from("alice"), "token expired"),
        2
    );
    let after = drain(&mut alice.notifications);
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    assert_eq!(after.len(), 2, "only the two close notices: {after:?}");
    for notification in &after {
        assert!(matches!(
            notification,
            Notification::Closed { reason: CloseReason::Revoked { reason }, .. } if reason == "token expired"
        ));
    }
    let closed: BTreeSet<LiveQueryId> = after.iter().map(Notification::live_query_id).collect();
    assert_eq!(
        closed,
        alice_subs.iter().map(|sub| sub.live_query_id).collect()
    );
    assert!(drain(&mut alice.notifications).is_empty());
    assert!(
        !changes_of(&drain(&mut bob.notifications)).is_empty(),
        "bob is unaffected"
    );
    assert_eq!(
        manager.subscriptions_of(alice.connection_id).unwrap().len(),
        0
    );
}

#[test]
fn revoking_dropping_or_resyncing_a_table_racing_publish_delivers_nothing_after_it_returns() {
    for mode in ["revoke", "drop", "resync"] {
        let drop = mode == "drop";
        let (manager, _) = manager_with(ManagerConfig {
            notification_channel_capacity: 1_000_000,
            ..ManagerConfig::default()
        });
        let mut alice = connect(&manager, "alice");
        let room_sub = subscribe(&manager, alice.connection_id, in_room(1));
        let notes_sub = subscribe(&manager, alice.connection_id, QuerySpec::table(notes()));
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = spawn_publisher(manager.clone(), stop.clone(), "alice");
        wait_for_traffic(&alice.notifications);
        let ended = match mode {
            "drop" => manager.drop_table(&messages()).unwrap(),
            "resync" => manager.resync_table(&messages()).unwrap(),
            _ => manager.revoke_table(&messages(), "no access").unwrap(),
        };
        assert_eq!(ended, 1);
        let after = drain(&mut alice.notifications);
        let endings: Vec<&Notification> = after.iter().filter(|n| n.kind() != "changes").collect();
        assert_eq!(endings.len(), 1, "{mode}: {endings:?}");
        match mode {
            "resync" => assert!(matches!(
                endings[0],
                Notification::ResyncRequired { live_query_id } if *live_query_id == room_sub.live_query_id
            )),
            _ => {
                let expected = if drop {
                    CloseReason::TableDropped
                } else {
                    CloseReason::Revoked {
                        reason: "no access".into(),
                    }
                };
                assert!(
                    matches!(endings[0], Notification::Closed { reason, .. } if *reason == expected)
                );
            }
        }
        // Whatever else arrived belongs to the notes subscription.
        assert!(after
            .iter()
            .filter(|n| n.kind() == "changes")
            .all(|n| n.live_query_id() == notes_sub.live_query_id));
        stop.store(true, Ordering::Relaxed);
        publisher.join().unwrap();
        // Publishes still running at the first drain delivered nothing of the table either.
        let after_join = drain(&mut alice.notifications);
        assert!(
            after_join
                .iter()
                .all(|n| n.kind() == "changes" && n.live_query_id() == notes_sub.live_query_id),
            "after the publisher stopped: {after_join:?}"
        );
        if drop {
            assert!(matches!(
                manager.subscribe(
                    alice.connection_id,
                    in_room(1),
                    SubscriptionOptions::default()
                ),
                Err(LiveError::UnknownTable(_))
            ));
            assert!(matches!(
                manager.publish(
                    SeqId(u64::MAX),
                    ChangeNotification::insert(messages(), message(1, 1, ""))
                ),
                Err(LiveError::UnknownTable(_))
            ));
            // Registering it again starts afresh.
            manager
                .register_table(TableSchema::new(
                    messages(),
                    TableScope::Shared,
                    ["id", "room", "body"],
                ))
                .unwrap();
            assert!(manager
                .subscribe(
                    alice.connection_id,
                    in_room(1),
                    SubscriptionOptions::default()
                )
                .is_ok());
        } else {
            assert!(manager
                .subscribe(
                    alice.connection_id,
                    in_room(1),
                    SubscriptionOptions::default()
                )
                .is_ok());
        }
        assert_eq!(
            manager.revoke_table(&TableId::new("no", "such"), "x").err(),
            Some(LiveError::UnknownTable(TableId::new("no", "such")))
        );
        assert_eq!(
            manager.resync_table(&TableId::new("no", "such")).err(),
            Some(LiveError::UnknownTable(TableId::new("no", "such")))
        );
    }
}

fn record(node: u64, subscription: u64, heartbeat_ms: u64) -> LiveQueryRecord {
    LiveQueryRecord {
        live_query_id: LiveQueryId::new(ConnectionId(node * 100), SubscriptionId(subscription)),
        connection_id: ConnectionId(node * 100),
        subscription_id: SubscriptionId(subscription),
        table_id: messages(),
        user_id: Some(UserId::from("u")),
        query: "SELECT * FROM chat.messages".into(),
        options: SubscriptionOptions::default(),
        node_id: NodeId(node),
        status: SubscriptionPhase::Live,
        created_at_ms: 0,
        last_update_ms: 0,
        last_heartbeat_ms: heartbeat_ms,
        changes_delivered: 0,
    }
}

#[test]
fn failover_sorts_offline_stale_and_local_with_an_injected_clock() {
    let (manager, clock) = manager_with(ManagerConfig {
        node_id: NodeId(1),
        ..ManagerConfig::default()
    });
    let mut fresh = connect(&manager, "fresh");
    let mut quiet = connect(&manager, "quiet");
    let fresh_sub = subscribe(&manager, fresh.connection_id, in_room(1));
    let quiet_sub = subscribe(&manager, quiet.connection_id, in_room(2));
    clock.advance(60_000);
    manager.heartbeat(fresh.connection_id).unwrap();
    let now = manager.now_ms();

    let mut records = manager.live_query_records();
    records.push(record(2, 21, now - 1_000)); // active node, fresh
    records.push(record(2, 22, now - 45_000)); // active node, stale: left to node 2
    records.push(record(3, 31, now)); // offline node
    records.push(record(3, 32, now - 90_000)); // offline node, also old
    let handler = FailoverHandler::new(NodeId(1), Duration::from_secs(30));
    let report = handler.run_on(&manager, &records, &[NodeId(2)]);

    let ids =
        |records: &[LiveQueryRecord]| records.iter().map(|r| r.live_query_id).collect::<Vec<_>>();
    assert_eq!(
        ids(&report.orphaned),
        vec![
            record(3, 31, 0).live_query_id,
            record(3, 32, 0).live_query_id
        ]
    );
    // In (node, id) order: this node's first.
    assert_eq!(
        ids(&report.stale),
        vec![quiet_sub.live_query_id, record(2, 22, 0).live_query_id]
    );
    assert_eq!(report.removed, vec![quiet_sub.live_query_id]);
    assert!(report.failed.is_empty());
    assert!(
        manager.subscription(quiet_sub.live_query_id).is_err(),
        "the local stale one is gone"
    );
    assert!(manager.subscription(fresh_sub.live_query_id).is_ok());
    // Its subscriber is told, not left waiting.
    let told = drain(&mut quiet.notifications);
    assert!(
        matches!(
            told.as_slice(),
            [Notification::Closed { live_query_id, reason: CloseReason::Revoked { reason } }]
                if *live_query_id == quiet_sub.live_query_id && reason.starts_with("stale: no heartbeat for 60000 ms")
        ),
        "{told:?}"
    );
    assert!(drain(&mut fresh.notifications).is_empty());

    // The same inputs give the same report (the manager's part is already removed, which
    // counts as removed again).
    let again = handler.run_on(&manager, &records, &[NodeId(2)]);
    assert_eq!(again, report);

    // A removal that fails is reported, not hidden.
    #[derive(Debug, PartialEq)]
    struct ReplicaUnavailable;
    let failing = handler.run(&records, &[NodeId(2), NodeId(3)], now, |_| {
        Err(ReplicaUnavailable)
    });
    assert!(failing.orphaned.is_empty());
    assert_eq!(
        failing.failed,
        vec![(quiet_sub.live_query_id, ReplicaUnavailable)]
    );
    assert!(failing.removed.is_empty());
}

#[test]
fn failover_keys_records_by_node_and_id_at_the_exact_bound_in_any_order() {
    // Every node numbers its own connections, so the same live query id appears on nodes
    // 1 (local), 2 (active) and 3 (offline).
    let same = |node: u64, heartbeat_ms: u64| LiveQueryRecord {
        live_query_id: LiveQueryId::new(ConnectionId(1), SubscriptionId(1)),
        connection_id: ConnectionId(1),
        subscription_id: SubscriptionId(1),
        node_id: NodeId(node),
        ..record(node, 1, heartbeat_ms)
    };
    let now = 100_000;
    let bound = 30_000;
    let at_bound = LiveQueryRecord {
        live_query_id: LiveQueryId::new(ConnectionId(1), SubscriptionId(2)),
        subscription_id: SubscriptionId(2),
        ..same(1, now - bound)
    };
    let records = vec![
        same(3, now),
        same(2, now - bound - 1),
        at_bound.clone(),
        same(1, now - bound - 1),
    ];
    let handler = FailoverHandler::new(NodeId(1), Duration::from_millis(bound));
    let run = |records: &[LiveQueryRecord]| {
        let mut removed_nodes = Vec::new();
        let report = handler.run(records, &[NodeId(2)], now, |record| {
            removed_nodes.push(record.node_id);
            Ok::<(), LiveError>(())
        });
        (report, removed_nodes)
    };
    let (report, removed_nodes) = run(&records);
    let keys = |records: &[LiveQueryRecord]| {
        records
            .iter()
            .map(|record| (record.node_id, record.live_query_id))
            .collect::<Vec<_>>()
    };
    let id = same(1, 0).live_query_id;
    assert_eq!(keys(&report.orphaned), vec![(NodeId(3), id)]);
    // Silent for exactly the bound is not stale; one millisecond more is.
    assert_eq!(keys(&report.stale), vec![(NodeId(1), id), (NodeId(2), id)]);
    assert_eq!(report.removed, vec![id]);
    assert_eq!(removed_nodes, vec![NodeId(1)], "only this node's record");
    assert!(report.failed.is_empty());
    // The order the host hands the records in changes nothing.
    for shuffled in [
        records.iter().rev().cloned().collect::<Vec<_>>(),
        [&records[2..], &records[..2]].concat(),
    ] {
        assert_eq!(run(&shuffled), (report.clone(), removed_nodes.clone()));
    }
    // Two versions of one record (a replica lagging): the newer heartbeat counts, once.
    let older_copy = same(2, 0);
    let fresher_copy = same(2, now);
    for duplicated in [
        [records.clone(), vec![older_copy.clone()]].concat(),
        [vec![older_copy.clone()], records.clone()].concat(),
    ] {
        assert_eq!(run(&duplicated), (report.clone(), removed_nodes.clone()));
    }
    let (refreshed, removed_again) = run(&[records.clone(), vec![fresher_copy]].concat());
    assert_eq!(
        keys(&refreshed.stale),
        vec![(NodeId(1), id)],
        "node 2's copy is fresh"
    );
    assert_eq!(removed_again, vec![NodeId(1)]);
}

#[test]
fn alter_table_keeps_multi_key_subscriptions_single() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let spec = QuerySpec::table(messages()).filter(Expr::col("room").in_list([1, 2]));
    subscribe(&manager, connection.connection_id, spec);
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "room", "body", "extra"],
        ))
        .unwrap();
    let row = Row::new(vec![
        Value::Int(1),
        Value::Int(2),
        Value::text(""),
        Value::Null,
    ]);
    let summary = manager
        .publish(SeqId(1), ChangeNotification::insert(messages(), row))
        .unwrap();
    assert_eq!(summary.enqueued, 1);
    assert_eq!(drain(&mut connection.notifications).len(), 1);
    assert_eq!(manager.live_query_records().len(), 1);
}
