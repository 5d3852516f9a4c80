//! Connection lifecycle: registration, authentication, limits, timeouts with an injected
//! clock, events that survive a full channel, and shutdown.

mod common;

use std::time::Duration;

use common::*;
use livecore::*;

#[test]
fn connection_limit_is_a_typed_refusal_and_frees_up_on_unregister() {
    let (manager, _) = manager_with(ManagerConfig {
        max_connections: 2,
        ..ManagerConfig::default()
    });
    let first = manager.register_connection().unwrap();
    let _second = manager.register_connection().unwrap();
    assert_eq!(
        manager.register_connection().err(),
        Some(LiveError::ConnectionLimitReached { max: 2 })
    );
    manager.unregister_connection(first.connection_id).unwrap();
    assert!(manager.register_connection().is_ok());
    assert_eq!(manager.connection_count(), 2);
}

#[test]
fn subscription_limit_per_connection() {
    let (manager, _) = manager_with(ManagerConfig {
        max_subscriptions_per_connection: 2,
        ..ManagerConfig::default()
    });
    let connection = connect(&manager, "alice");
    let id = connection.connection_id;
    let first = manager
        .subscribe(id, in_room(1), SubscriptionOptions::default())
        .unwrap();
    manager
        .subscribe(id, in_room(2), SubscriptionOptions::default())
        .unwrap();
    assert_eq!(
        manager
            .subscribe(id, in_room(3), SubscriptionOptions::default())
            .err(),
        Some(LiveError::SubscriptionLimitReached {
            connection_id: id,
            max: 2
        })
    );
    manager.unsubscribe(first.live_query_id).unwrap();
    assert!(manager
        .subscribe(id, in_room(3), SubscriptionOptions::default())
        .is_ok());
}

#[test]
fn authentication_rules() {
    let (manager, _) = manager();
    let connection = manager.register_connection().unwrap();
    let id = connection.connection_id;
    assert_eq!(
        manager
            .subscribe(id, in_room(1), SubscriptionOptions::default())
            .err(),
        Some(LiveError::NotAuthenticated(id))
    );
    let alice = manager
        .authenticate(id, UserId::from("alice"), Some("admin".into()))
        .unwrap();
    assert_eq!(
        manager
            .authenticate(id, UserId::from("alice"), None)
            .unwrap(),
        alice
    );
    assert_eq!(
        manager.authenticate(id, UserId::from("bob"), None).err(),
        Some(LiveError::AlreadyAuthenticated(id))
    );
    let user = manager.connection(id).unwrap().user().unwrap();
    assert_eq!(user.user_id, UserId::from("alice"));
}

#[test]
fn unknown_ids_and_bad_input_are_typed_errors() {
    let (manager, _) = manager();
    let ghost = ConnectionId(999);
    assert_eq!(
        manager.heartbeat(ghost).err(),
        Some(LiveError::UnknownConnection(ghost))
    );
    assert_eq!(
        manager.mark_auth_started(ghost).err(),
        Some(LiveError::UnknownConnection(ghost))
    );
    assert_eq!(
        manager.unregister_connection(ghost).err(),
        Some(LiveError::UnknownConnection(ghost))
    );
    assert_eq!(
        manager.authenticate(ghost, UserId::from("x"), None).err(),
        Some(LiveError::UnknownConnection(ghost))
    );
    let connection = connect(&manager, "alice");
    let id = connection.connection_id;
    let missing = LiveQueryId::new(id, SubscriptionId(12345));
    assert_eq!(
        manager.unsubscribe(missing).err(),
        Some(LiveError::UnknownSubscription(SubscriptionId(12345)))
    );
    let nowhere = QuerySpec::table(TableId::new("chat", "nowhere"));
    assert!(matches!(
        manager.subscribe(id, nowhere, SubscriptionOptions::default()),
        Err(LiveError::UnknownTable(table)) if table == TableId::new("chat", "nowhere")
    ));
    let bad_column = QuerySpec::table(messages()).filter(Expr::col("nope").eq(Expr::lit(1)));
    assert!(matches!(
        manager.subscribe(id, bad_column, SubscriptionOptions::default()),
        Err(LiveError::UnknownColumn { column, .. }) if column == "nope"
    ));
    let bad_projection = QuerySpec::table(messages()).project(Projection::columns(["id", "ghost"]));
    assert!(matches!(
        manager.subscribe(id, bad_projection, SubscriptionOptions::default()),
        Err(LiveError::UnknownColumn { column, .. }) if column == "ghost"
    ));
    let zero_batch = SubscriptionOptions {
        batch_size: 0,
        ..SubscriptionOptions::with_initial_load()
    };
    assert!(matches!(
        manager.subscribe(id, in_room(1), zero_batch),
        Err(LiveError::OutOfBounds {
            value: 0,
            min: 1,
            ..
        })
    ));
    let huge_batch = SubscriptionOptions {
        batch_size: usize::MAX,
        ..SubscriptionOptions::with_initial_load()
    };
    assert!(matches!(
        manager.subscribe(id, in_room(1), huge_batch),
        Err(LiveError::OutOfBounds { min: 1, .. })
    ));
    let deep = (0..40).fold(Expr::col("room").eq(Expr::lit(1)), |expr, _| expr.not());
    assert!(matches!(
        manager.subscribe(
            id,
            QuerySpec::table(messages()).filter(deep),
            SubscriptionOptions::default()
        ),
        Err(LiveError::FilterTooDeep { .. })
    ));
    assert!(matches!(
        ConnectionsManager::new(ManagerConfig {
            max_connections: 0,
            ..ManagerConfig::default()
        }),
        Err(LiveError::InvalidConfig(_))
    ));
}

#[test]
fn publish_refuses_invalid_commits_whole() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    subscribe(
        &manager,
        connection.connection_id,
        QuerySpec::table(messages()),
    );
    let good = ChangeNotification::insert(messages(), message(1, 1, "ok"));
    let short = ChangeNotification::insert(messages(), Row::new(vec![Value::Int(2)]));
    assert!(matches!(
        manager.publish_commit(SeqId(1), vec![good.clone(), short]),
        Err(LiveError::RowArity {
            expected: 3,
            got: 1,
            ..
        })
    ));
    let mut update = ChangeNotification::update(messages(), message(1, 1, "a"), message(1, 1, "b"));
    update.old_row = None;
    assert_eq!(
        manager.publish(SeqId(2), update).err(),
        Some(LiveError::MissingOldRow(messages()))
    );
    assert_eq!(
        manager
            .publish(
                SeqId(3),
                ChangeNotification::insert(notes(), note(1, "x", 1))
            )
            .err(),
        Some(LiveError::MissingOwner(notes()))
    );
    assert!(matches!(
        manager.publish(
            SeqId(4),
            ChangeNotification::insert(TableId::new("x", "y"), message(1, 1, ""))
        ),
        Err(LiveError::UnknownTable(_))
    ));
    // Nothing of the refused commits was delivered.
    assert!(drain(&mut connection.notifications).is_empty());
    assert_eq!(manager.stats().published, 0);
}

/// A connection that timed out before authenticating and then starts authenticating is
/// watched again: without heartbeats it gets `HeartbeatTimeout`.
#[test]
fn authentication_started_after_an_auth_timeout_rearms_the_heartbeat_timeout() {
    let (manager, clock) = manager_with(ManagerConfig {
        auth_timeout: Duration::from_secs(5),
        ping_interval: Duration::from_secs(10),
        heartbeat_timeout: Duration::from_secs(30),
        ..ManagerConfig::default()
    });
    let mut late = manager.register_connection().unwrap();
    clock.advance(5_000);
    assert_eq!(manager.check_connections_now().auth_timeouts, 1);
    assert_eq!(late.events.try_recv(), Ok(ConnectionEvent::AuthTimeout));
    manager.mark_auth_started(late.connection_id).unwrap();
    clock.advance(30_000);
    let report = manager.check_connections_now();
    assert_eq!(report.auth_timeouts, 0);
    assert_eq!(report.heartbeat_timeouts, 1);
    assert_eq!(
        late.events.try_recv(),
        Ok(ConnectionEvent::HeartbeatTimeout)
    );
}

#[test]
fn timeouts_follow_the_injected_clock() {
    let (manager, clock) = manager_with(ManagerConfig {
        auth_timeout: Duration::from_secs(5),
        ping_interval: Duration::from_secs(10),
        heartbeat_timeout: Duration::from_secs(30),
        ..ManagerConfig::default()
    });
    let mut silent = manager.register_connection().unwrap();
    let mut started = manager.register_connection().unwrap();
    manager.mark_auth_started(started.connection_id).unwrap();
    let mut live = connect(&manager, "alice");

    clock.advance(4_999);
    let report = manager.check_connections_now();
    assert_eq!(report.auth_timeouts, 0);
    assert_eq!(silent.events.try_recv(), Err(ReceiveError::Empty));

    clock.advance(1);
    let report = manager.check_connections_now();
    assert_eq!(report.auth_timeouts, 1);
    assert_eq!(silent.events.try_recv(), Ok(ConnectionEvent::AuthTimeout));
    assert_eq!(started.events.try_recv(), Err(ReceiveError::Empty));
    // Raised once, not on every check, and a heartbeat is no authentication: it does not
    // raise it again.
    clock.advance(1_000);
    manager.check_connections_now();
    assert_eq!(silent.events.try_recv(), Err(ReceiveError::Empty));
    manager.heartbeat(silent.connection_id).unwrap();
    clock.advance(1_000);
    let report = manager.check_connections_now();
    assert_eq!(report.auth_timeouts, 0);
    assert_eq!(silent.events.try_recv(), Err(ReceiveError::Empty));

    // Ping interval since the last heartbeat or ping.
    clock.advance(5_000); // 11s after registration
    let report = manager.check_connections_now();
    assert_eq!(report.pings, 2);
    assert_eq!(live.events.try_recv(), Ok(ConnectionEvent::SendPing));
    assert_eq!(started.events.try_recv(), Ok(ConnectionEvent::SendPing));
    manager.heartbeat(live.connection_id).unwrap();

    clock.advance(20_000); // 31s: `started` never beat, `live` beat at 11s
    let report = manager.check_connections_now();
    assert_eq!(report.heartbeat_timeouts, 1);
    assert_eq!(
        started.events.try_recv(),
        Ok(ConnectionEvent::HeartbeatTimeout)
    );
    assert_eq!(live.events.try_recv(), Ok(ConnectionEvent::SendPing));

    clock.advance(20_000); // 51s: `live` last beat at 11s
    manager.check_connections_now();
    assert_eq!(
        live.events.try_recv(),
        Ok(ConnectionEvent::HeartbeatTimeout)
    );
}

#[test]
fn events_are_never_lost_to_a_full_event_channel() {
    let (manager, clock) = manager_with(ManagerConfig {
        event_channel_capacity: 1,
        auth_timeout: Duration::from_secs(1),
        ..ManagerConfig::default()
    });
    let mut connection = manager.register_connection().unwrap();
    clock.advance(2_000);
    manager.check_connections_now(); // AuthTimeout fills the channel
    manager.shutdown(Duration::ZERO); // Shutdown does not fit
    let mut events = Vec::new();
    while let Ok(event) = connection.events.try_recv() {
        events.push(event);
    }
    events.sort_by_key(|event| event.as_str());
    assert_eq!(
        events,
        vec![ConnectionEvent::AuthTimeout, ConnectionEvent::Shutdown]
    );
    assert_eq!(connection.events.try_recv(), Err(ReceiveError::Closed));
}

#[test]
fn background_checker_raises_events() {
    let (manager, clock) = manager_with(ManagerConfig {
        auth_timeout: Duration::from_millis(100),
        ..ManagerConfig::default()
    });
    let mut connection = manager.register_connection().unwrap();
    let checker = manager.spawn_checker(Duration::from_millis(5));
    clock.advance(200);
    assert_eq!(
        connection.events.recv_timeout(Duration::from_secs(10)),
        Ok(ConnectionEvent::AuthTimeout)
    );
    checker.stop();
}

#[test]
fn shutdown_notifies_everyone_refuses_newcomers_and_forces_the_rest() {
    let (manager, _) = manager();
    let mut polite = connect(&manager, "alice");
    let mut stubborn = connect(&manager, "bob");
    subscribe(&manager, stubborn.connection_id, in_room(1));

    let host = {
        let manager = manager.clone();
        let polite_id = polite.connection_id;
        std::thread::spawn(move || {
            assert_eq!(polite.events.recv(), Ok(ConnectionEvent::Shutdown));
            manager.unregister_connection(polite_id).unwrap();
            assert_eq!(
                polite.notifications.recv().err(),
                Some(ReceiveError::Closed)
            );
        })
    };
    let report = manager.shutdown(Duration::from_millis(300));
    host.join().unwrap();
    assert_eq!(
        report,
        ShutdownReport {
            notified: 2,
            closed_by_host: 1,
            forced: 1
        }
    );
    assert_eq!(stubborn.events.try_recv(), Ok(ConnectionEvent::Shutdown));
    assert_eq!(
        stubborn.notifications.try_recv().err(),
        Some(ReceiveError::Closed)
    );
    assert_eq!(
        manager.register_connection().err(),
        Some(LiveError::ShuttingDown)
    );
    assert_eq!(
        manager
            .subscribe(
                stubborn.connection_id,
                in_room(1),
                SubscriptionOptions::default()
            )
            .err(),
        Some(LiveError::ShuttingDown)
    );
    assert_eq!(
        manager
            .subscribe_sql(
                stubborn.connection_id,
                "SELECT * FROM chat.messages WHERE room = 1",
                SubscriptionOptions::default()
            )
            .err(),
        Some(LiveError::ShuttingDown)
    );
    // The connection the shutdown closed: every call naming it says the manager shut
    // down (it is no longer registered, but it was not the host that unregistered it).
    let forced = stubborn.connection_id;
    let stubborn_query = LiveQueryId {
        connection_id: forced,
        subscription_id: SubscriptionId(1),
    };
    assert_eq!(
        manager.heartbeat(forced).err(),
        Some(LiveError::ShuttingDown)
    );
    assert_eq!(
        manager.mark_auth_started(forced).err(),
        Some(LiveError::ShuttingDown)
    );
    assert_eq!(
        manager
            .authenticate(forced, UserId::from("bob"), None)
            .err(),
        Some(LiveError::ShuttingDown)
    );
    assert_eq!(
        manager.unsubscribe(stubborn_query).err(),
        Some(LiveError::ShuttingDown)
    );
    assert_eq!(
        manager.unregister_connection(forced).err(),
        Some(LiveError::ShuttingDown)
    );
    assert_eq!(manager.connection_count(), 0);
    assert_eq!(manager.stats().subscriptions, 0);
}

/// A shutdown takes the connections the host left out of the map, then closes them one by
/// one: a host unregistering one meanwhile (as its Shutdown event arrives) hears it is gone
/// only once it is closed, so nothing more comes out of its receiver.
#[test]
fn a_connection_a_shutdown_closes_is_closed_when_a_call_naming_it_returns() {
    for _ in 0..10 {
        let (manager, _) = manager();
        // Others closed first, with subscriptions enough to make their closes take a while.
        let _others: Vec<_> = (0..100)
            .map(|_| {
                let other = connect(&manager, "other");
                for _ in 0..20 {
                    subscribe(&manager, other.connection_id, in_room(1));
                }
                other
            })
            .collect();
        let mut target = connect(&manager, "target");
        subscribe(&manager, target.connection_id, in_room(1));
        for seq in 1..=5 {
            manager.publish(SeqId(seq), insert_in_room(seq, 1)).unwrap();
        }
        let shutdown = {
            let manager = manager.clone();
            std::thread::spawn(move || manager.shutdown(Duration::ZERO))
        };
        while !manager.is_shutting_down() {
            std::thread::yield_now();
        }
        let answer = manager.unregister_connection(target.connection_id);
        assert!(
            matches!(answer, Ok(()) | Err(LiveError::ShuttingDown)),
            "{answer:?}"
        );
        assert_eq!(
            target.notifications.try_recv().err(),
            Some(ReceiveError::Closed),
            "a change came out after unregister returned {answer:?}"
        );
        shutdown.join().unwrap();
    }
}

#[test]
fn shutdown_waits_no_longer_than_its_timeout() {
    let (manager, _) = manager();
    let _connection = connect(&manager, "alice");
    let started = std::time::Instant::now();
    let report = manager.shutdown(Duration::from_millis(50));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.forced, 1);
}

#[test]
fn a_shutdown_that_forces_the_rest_ends_one_waiting_longer() {
    let (manager, _) = manager();
    let _connection = connect(&manager, "alice");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiting = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            let report = manager.shutdown(Duration::from_secs(3600));
            done_tx.send(()).unwrap();
            report
        })
    };
    while !manager.is_shutting_down() {
        std::thread::yield_now();
    }
    let forcing = manager.shutdown(Duration::ZERO);
    assert_eq!((forcing.notified, forcing.forced), (1, 1));
    // The waiting shutdown returns once the map is empty, not after its hour (the bound
    // here only keeps a regression from hanging the suite).
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the first shutdown ended");
    let first = waiting.join().unwrap();
    assert_eq!(first.forced, 0);
    assert_eq!(manager.connection_count(), 0);
}

#[test]
fn a_blocked_event_receiver_wakes_when_the_connection_closes() {
    let (manager, _) = manager();
    let connection = manager.register_connection().unwrap();
    let id = connection.connection_id;
    let mut events = connection.events;
    let waiter = std::thread::spawn(move || events.recv());
    std::thread::sleep(Duration::from_millis(50));
    manager.unregister_connection(id).unwrap();
    assert_eq!(waiter.join().unwrap(), Err(ReceiveError::Closed));
}
