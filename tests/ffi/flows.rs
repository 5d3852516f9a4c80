//! Whole protocols driven through the C ABI: live changes, the ready queue, events,
//! shutdown, one consumer at a time, freeing with waits running, gaps and schema changes.
//! (The load, resume and cluster protocols are in `load_flows.rs`.)

use std::ptr::{null, null_mut};
use std::thread;
use std::time::{Duration, Instant};

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

use lc_change_type::*;
use lc_row_version::*;

fn text_of(value: lc_value) -> String {
    assert_eq!(value.tag, lc_value_type::LC_VALUE_TEXT as u32);
    // SAFETY: a text value from a notification points at `len` bytes the live notification
    // owns.
    String::from_utf8(unsafe { std::slice::from_raw_parts(value.data, value.len) }.to_vec())
        .unwrap()
}

#[test]
fn a_filtered_subscription_sees_rows_enter_stay_leave_and_go() {
    let _serial = serial();
    let before = live_handle_counts();
    let (manager, messages, _) = manager();
    let connection = connect(manager, "alice");
    let live = subscribe(
        manager,
        connection,
        "SELECT id, body FROM chat.messages WHERE room = 7",
        &options(0),
    );
    let (a, b) = (b"a".as_slice(), b"b".as_slice());
    let in7 = [int(1), int(7), text(a)];
    let in7b = [int(1), int(7), text(b)];
    let in8 = [int(1), int(8), text(b)];
    let other = [int(2), int(8), text(a)];
    // seq 1: insert into room 7 (+ an unrelated row in the same commit)
    let summary = publish(
        manager,
        1,
        &[
            change(messages, LC_CHANGE_INSERT, &in7, None),
            change(messages, LC_CHANGE_INSERT, &other, None),
        ],
    );
    assert_eq!(
        (summary.matched, summary.enqueued, summary.dropped),
        (1, 1, 0)
    );
    // seq 2: update staying in room 7; seq 3: update leaving it; seq 4: back in; seq 5: delete
    publish(
        manager,
        2,
        &[change(messages, LC_CHANGE_UPDATE, &in7b, Some(&in7))],
    );
    publish(
        manager,
        3,
        &[change(messages, LC_CHANGE_UPDATE, &in8, Some(&in7b))],
    );
    publish(
        manager,
        4,
        &[change(messages, LC_CHANGE_UPDATE, &in7, Some(&in8))],
    );
    publish(
        manager,
        5,
        &[change(messages, LC_CHANGE_DELETE, &in7, None)],
    );
    // seq 6: a delete outside the filter reaches nobody
    assert_eq!(
        publish(
            manager,
            6,
            &[change(messages, LC_CHANGE_DELETE, &other, None)]
        )
        .matched,
        0
    );

    let expected = [
        (1, LC_CHANGE_INSERT, "a", None),
        (2, LC_CHANGE_UPDATE, "b", Some("a")),
        (3, LC_CHANGE_DELETE, "b", None),
        (4, LC_CHANGE_INSERT, "a", None),
        (5, LC_CHANGE_DELETE, "a", None),
    ];
    for (seq, change_type, body, old_body) in expected {
        let notification = recv(manager, connection);
        let info = notification_info(notification);
        assert_eq!(
            info.kind,
            lc_notification_kind::LC_NOTIFICATION_CHANGES as u32
        );
        assert_eq!(info.live_query, live);
        assert_eq!(
            (info.has_seq, info.seq, info.row_count, info.column_count),
            (1, seq, 1, 2)
        );
        let change = change_info(notification, 0);
        assert_eq!(change.change_type, change_type as u32, "seq {seq}");
        assert_eq!(change.has_old_row, u32::from(old_body.is_some()));
        assert_eq!(value(notification, 0, LC_ROW_CURRENT, 0).int_value, 1);
        assert_eq!(text_of(value(notification, 0, LC_ROW_CURRENT, 1)), body);
        if let Some(old_body) = old_body {
            assert_eq!(text_of(value(notification, 0, LC_ROW_OLD, 1)), old_body);
        }
        assert_eq!(lc_notification_free(notification), LC_OK);
    }
    assert_eq!(try_recv_status(manager, connection), LC_EMPTY);
    // Unsubscribed: nothing more arrives.
    assert_eq!(lc_subscription_cancel(manager, live), LC_OK);
    publish(
        manager,
        7,
        &[change(messages, LC_CHANGE_INSERT, &in7, None)],
    );
    assert_eq!(try_recv_status(manager, connection), LC_EMPTY);
    let stats = stats(manager);
    assert_eq!(
        (stats.published, stats.delivered, stats.subscriptions),
        (7, 5, 0)
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(live_handle_counts(), before);
}

/// `rooms` connections, the n-th subscribed to the messages of room n.
fn one_connection_per_room(manager: lc_manager, rooms: usize) -> Vec<u64> {
    let connections: Vec<u64> = (0..rooms)
        .map(|n| connect(manager, &format!("user{n}")))
        .collect();
    for (room, &connection) in connections.iter().enumerate() {
        subscribe(
            manager,
            connection,
            &format!("SELECT id FROM chat.messages WHERE room = {room}"),
            &options(0),
        );
    }
    connections
}

#[test]
fn one_thread_serves_many_connections_through_the_ready_queue() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let connections = one_connection_per_room(manager, 5);
    let mut ids = [0u64; 8];
    let mut count = 0;
    // Nothing yet.
    assert_status!(
        // SAFETY: `ids` and `count` are live locals.
        unsafe { lc_manager_wait_ready(manager, 0, ids.as_mut_ptr(), 8, &mut count) },
        LC_EMPTY
    );
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_manager_wait_ready(manager, 20, ids.as_mut_ptr(), 8, &mut count) },
        LC_TIMEOUT
    );
    // Rooms 1 and 3 get a row each, room 3 a second one.
    for (seq, room) in [(1, 1), (2, 3), (3, 3)] {
        let row = [int(seq), int(room), nil()];
        publish(
            manager,
            seq as u64,
            &[change(messages, LC_CHANGE_INSERT, &row, None)],
        );
    }
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_manager_wait_ready(manager, 1000, ids.as_mut_ptr(), 8, &mut count) },
        LC_OK
    );
    let mut ready: Vec<u64> = ids[..count].to_vec();
    ready.sort_unstable();
    assert_eq!(
        ready,
        [connections[1], connections[3]],
        "each connection is queued once per arming"
    );
    let mut received = 0;
    for &connection in &ready {
        while try_recv_status(manager, connection) == LC_OK {
            received += 1;
        }
        assert_eq!(recv_event(manager, connection, 0), Err(LC_EMPTY));
        assert_status!(lc_connection_arm_ready(manager, connection), LC_OK);
    }
    assert_eq!(received, 3);
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_manager_wait_ready(manager, 0, ids.as_mut_ptr(), 8, &mut count) },
        LC_EMPTY
    );
    // An event queues a connection too.
    assert_status!(lc_manager_set_clock(manager, 1_000_000 + 31_000), LC_OK);
    assert_status!(
        // SAFETY: the report may be NULL.
        unsafe { lc_manager_check_connections(manager, LC_NOW, null_mut()) },
        LC_OK
    );
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_manager_wait_ready(manager, 1000, ids.as_mut_ptr(), 8, &mut count) },
        LC_OK
    );
    assert_eq!(count, 5, "every connection is due a ping");
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn waiters_sharing_the_ready_queue_never_find_a_handed_out_receiver_busy() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    const ROOMS: usize = 6;
    const COMMITS: usize = 600;
    one_connection_per_room(manager, ROOMS);
    let received = std::sync::atomic::AtomicUsize::new(0);
    let busy = std::sync::atomic::AtomicUsize::new(0);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        // Each waiter serves the ids the queue hands it as the header describes: drain the
        // connection, then arm it. An id is queued once per arming, so no other thread can
        // be receiving on a connection a waiter was handed; the arming thread may still
        // be letting go of it.
        for _ in 0..3 {
            scope.spawn(|| {
                let mut ids = [0u64; 8];
                while received.load(std::sync::atomic::Ordering::Relaxed) < COMMITS {
                    assert!(started.elapsed() < HANG_GUARD, "deliveries left unread");
                    let mut count = 0;
                    // SAFETY: `ids` and `count` are live locals.
                    let status = unsafe {
                        lc_manager_wait_ready(manager, 20, ids.as_mut_ptr(), 8, &mut count)
                    };
                    if status != LC_OK {
                        continue;
                    }
                    for &connection in &ids[..count] {
                        loop {
                            match try_recv_status(manager, connection) {
                                LC_OK => {
                                    received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                LC_ERR_RECEIVER_BUSY => {
                                    busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    break;
                                }
                                _ => break,
                            }
                        }
                        assert_status!(lc_connection_arm_ready(manager, connection), LC_OK);
                    }
                }
            });
        }
        for seq in 1..=COMMITS {
            let row = [int(seq as i64), int((seq % ROOMS) as i64), nil()];
            publish(
                manager,
                seq as u64,
                &[change(messages, LC_CHANGE_INSERT, &row, None)],
            );
        }
    });
    assert_eq!(received.into_inner(), COMMITS);
    assert_eq!(busy.into_inner(), 0);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn timers_raise_events_on_the_manual_clock() {
    let _serial = serial();
    let (manager, _, _) = manager();
    let quiet = connect(manager, "alice");
    let mut anonymous = 0;
    assert_status!(
        // SAFETY: `anonymous` is a live local.
        unsafe { lc_connection_register(manager, &mut anonymous) },
        LC_OK
    );
    let mut report = lc_check_report {
        struct_size: std::mem::size_of::<lc_check_report>() as u32,
        reserved: 0,
        checked: 0,
        pings: 0,
        auth_timeouts: 0,
        heartbeat_timeouts: 0,
    };
    // 31 s later: the anonymous connection timed out authenticating, alice is due a ping.
    assert_status!(
        // SAFETY: `report` is a live local.
        unsafe { lc_manager_check_connections(manager, 1_031_000, &mut report) },
        LC_OK
    );
    assert_eq!(
        (
            report.checked,
            report.pings,
            report.auth_timeouts,
            report.heartbeat_timeouts
        ),
        (2, 1, 1, 0)
    );
    assert_eq!(
        recv_event(manager, anonymous, 0),
        Ok(lc_event::LC_EVENT_AUTH_TIMEOUT as u32)
    );
    assert_eq!(
        recv_event(manager, quiet, 0),
        Ok(lc_event::LC_EVENT_SEND_PING as u32)
    );
    assert_eq!(recv_event(manager, quiet, 0), Err(LC_EMPTY));
    // 91 s without a heartbeat: alice's client is gone.
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_manager_check_connections(manager, 1_091_000, &mut report) },
        LC_OK
    );
    assert_eq!(report.heartbeat_timeouts, 1);
    assert_eq!(
        recv_event(manager, quiet, 0),
        Ok(lc_event::LC_EVENT_HEARTBEAT_TIMEOUT as u32)
    );
    // A heartbeat at the clock's reading resets it.
    assert_status!(lc_manager_set_clock(manager, 1_100_000), LC_OK);
    assert_status!(lc_connection_heartbeat(manager, quiet), LC_OK);
    let info = connection_info(manager, quiet);
    assert_eq!(
        (info.registered_at_ms, info.last_heartbeat_ms),
        (1_000_000, 1_100_000)
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn shutdown_closes_connections_the_host_did_not_unregister() {
    let _serial = serial();
    let (manager, _, _) = manager();
    let first = connect(manager, "alice");
    let second = connect(manager, "bob");
    let closer = thread::spawn(move || {
        // The host reacts to the shutdown event by unregistering the first connection. On
        // a slow machine the shutdown's wait may pass first and close it: the event (or the
        // end of the stream) still comes, and the unregister still succeeds.
        let event = recv_event(manager, first, LC_WAIT_FOREVER);
        assert!(
            event == Ok(lc_event::LC_EVENT_SHUTDOWN as u32) || event == Err(LC_CLOSED),
            "{event:?}"
        );
        assert_eq!(lc_connection_unregister(manager, first), LC_OK);
        Instant::now()
    });
    let mut report = lc_shutdown_report {
        struct_size: std::mem::size_of::<lc_shutdown_report>() as u32,
        reserved: 0,
        notified: 0,
        closed_by_host: 0,
        forced: 0,
    };
    let wait = Duration::from_millis(300);
    let started = Instant::now();
    assert_status!(
        // SAFETY: `report` is a live local.
        unsafe { lc_manager_shutdown(manager, wait.as_millis() as u32, &mut report) },
        LC_OK
    );
    let unregistered_at = join_or_fail(closer, "the host's closer");
    // The shutdown's wait ends no earlier than `started + wait`: an unregister done before
    // that was the host's. One done later (a slow machine) may have come after the
    // shutdown closed the connection itself: either count is then right, and the test
    // never fails because the machine is slow.
    let closed_by_host = if unregistered_at < started + wait {
        1
    } else {
        report.closed_by_host.min(1)
    };
    assert_eq!(
        (report.notified, report.closed_by_host, report.forced),
        (2, closed_by_host, 2 - closed_by_host)
    );
    assert_eq!(try_recv_status(manager, second), LC_CLOSED);
    assert_eq!(
        recv_event(manager, second, 0),
        Ok(lc_event::LC_EVENT_SHUTDOWN as u32)
    );
    let info = connection_info(manager, second);
    assert_eq!(info.flags, LC_CONNECTION_CLOSED);
    // Calls naming it say why it is gone.
    assert_status!(
        lc_connection_heartbeat(manager, second),
        LC_ERR_SHUTTING_DOWN
    );
    assert_status!(lc_connection_unregister(manager, second), LC_OK);
    let mut id = 0;
    assert_status!(
        // SAFETY: `id` is a live local.
        unsafe { lc_connection_register(manager, &mut id) },
        LC_ERR_SHUTTING_DOWN
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn a_connection_cut_off_as_a_slow_consumer_says_so_and_takes_no_subscription() {
    let _serial = serial();
    let mut config = config();
    config.slow_consumer_policy = lc_slow_consumer_policy::LC_SLOW_CONSUMER_DISCONNECT as u32;
    config.notification_channel_capacity = 1;
    let manager = manager_with(&config);
    let table = register_table(manager, "cut", "rows", LC_SCOPE_SHARED_TAG, &["id"]);
    let slow = connect(manager, "slow");
    subscribe(manager, slow, "SELECT id FROM cut.rows", &options(0));
    let info = |connection: u64| connection_info(manager, connection);
    assert_eq!(info(slow).flags & LC_CONNECTION_CUT_OFF, 0);
    for seq in 1..=2 {
        let row = [int(seq)];
        publish(
            manager,
            seq as u64,
            &[change(table, LC_CHANGE_INSERT, &row, None)],
        );
    }
    assert_ne!(info(slow).flags & LC_CONNECTION_CUT_OFF, 0);
    let sql = c("SELECT id FROM cut.rows");
    for flags in [0, LC_SUBSCRIBE_INITIAL_LOAD] {
        let mut result = lc_subscription_result::default();
        assert_status!(
            // SAFETY: `sql` is a live NUL-terminated string; the others are live locals.
            unsafe {
                lc_subscription_create_sql(
                    manager,
                    slow,
                    sql.as_ptr(),
                    &options(flags),
                    &mut result,
                )
            },
            LC_ERR_INVALID_STATE
        );
    }
    assert_eq!(info(slow).subscription_count, 1);
    assert_status!(lc_connection_unregister(manager, slow), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn one_consumer_at_a_time_per_connection() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let connection = connect(manager, "alice");
    subscribe(
        manager,
        connection,
        "SELECT id FROM chat.messages",
        &options(0),
    );
    let waiter = thread::spawn(move || {
        let mut notification = lc_notification::default();
        // SAFETY: `notification` is a live local of this thread.
        // No time limit: the publish below ends the wait (a hang fails in `join_or_fail`).
        let (status, ()) = retry_while_busy(|| {
            // SAFETY: as above.
            let status = unsafe {
                lc_connection_recv(manager, connection, LC_WAIT_FOREVER, &mut notification)
            };
            (status, ())
        });
        assert_eq!(status, LC_OK);
        assert_eq!(lc_notification_free(notification), LC_OK);
    });
    // Wait until the other thread holds the receiver.
    let deadline = Instant::now() + HANG_GUARD;
    let mut notification = lc_notification::default();
    loop {
        // SAFETY: `notification` is a live local.
        let status = unsafe { lc_connection_recv(manager, connection, 0, &mut notification) };
        if status == LC_ERR_RECEIVER_BUSY {
            break;
        }
        assert_eq!(status, LC_EMPTY);
        assert!(
            Instant::now() < deadline,
            "the waiting thread never took the receiver"
        );
        thread::sleep(Duration::from_millis(1));
    }
    assert!(last_error().contains("one consumer at a time"));
    // The event receiver is independent of the notification receiver.
    assert_eq!(recv_event(manager, connection, 0), Err(LC_EMPTY));
    let row = [int(1), int(1), nil()];
    publish(
        manager,
        1,
        &[change(messages, LC_CHANGE_INSERT, &row, None)],
    );
    join_or_fail(waiter, "the waiting receive");
    assert_eq!(lc_manager_free(manager), LC_OK);
}

/// Freeing the manager unregisters its connections, which queues each on the ready queue:
/// a ready-queue wait the free wakes that way is told the manager is gone (`LC_CLOSED`),
/// not handed the ids of connections being torn down.
#[test]
fn a_ready_queue_wait_woken_by_the_free_is_closed() {
    let _serial = serial();
    let (manager, _, _) = manager();
    for user in ["alice", "bob", "carol"] {
        connect(manager, user);
    }
    let waiter = thread::spawn(move || {
        let mut ids = [0u64; 4];
        let mut count = usize::MAX;
        // SAFETY: the out-pointers are live locals of this thread.
        let status = unsafe {
            lc_manager_wait_ready(manager, LC_WAIT_FOREVER, ids.as_mut_ptr(), 4, &mut count)
        };
        (status, count)
    });
    // Nothing is queued, so the wait blocks until the free; should the free come first,
    // the wait finds the manager gone instead. Either way it must not hand out ids.
    thread::sleep(Duration::from_millis(20));
    assert_eq!(lc_manager_free(manager), LC_OK);
    let (status, count) = join_or_fail(waiter, "a ready-queue wait the free should end");
    assert!(
        status == LC_CLOSED || status == LC_ERR_INVALID_HANDLE,
        "{status:?}"
    );
    if status == LC_CLOSED {
        assert_eq!(count, 0);
    }
}

#[test]
fn freeing_the_manager_ends_waits_and_leaves_notifications_readable() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let connection = connect(manager, "alice");
    subscribe(
        manager,
        connection,
        "SELECT body FROM chat.messages",
        &options(0),
    );
    let body = b"kept";
    let row = [int(1), int(1), text(body)];
    publish(
        manager,
        1,
        &[change(messages, LC_CHANGE_INSERT, &row, None)],
    );
    let kept = recv(manager, connection);
    let waiters: Vec<_> = [0u8, 1, 2]
        .into_iter()
        .map(|kind| {
            thread::spawn(move || {
                // A probe below may hold a receiver for an instant: try again then.
                let (status, ()) = retry_while_busy(|| {
                    // SAFETY: every out-pointer is a live local of this thread.
                    let status = unsafe {
                        match kind {
                            0 => lc_connection_recv(
                                manager,
                                connection,
                                LC_WAIT_FOREVER,
                                &mut lc_notification::default(),
                            ),
                            1 => lc_connection_recv_event(
                                manager,
                                connection,
                                LC_WAIT_FOREVER,
                                &mut 0,
                            ),
                            _ => lc_manager_wait_ready(
                                manager,
                                LC_WAIT_FOREVER,
                                &mut [0u64; 1] as *mut u64,
                                1,
                                &mut 0,
                            ),
                        }
                    };
                    (status, ())
                });
                (kind, status)
            })
        })
        .collect();
    // Free once both receives are waiting (each holds its receiver, so a probe is told it
    // is busy); the ready-queue wait may or may not have begun, and either must end.
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        // SAFETY: the out-pointers are live locals; nothing is queued, so a probe that is
        // not refused as busy takes nothing.
        let (notifications, events) = unsafe {
            (
                lc_connection_recv(manager, connection, 0, &mut lc_notification::default()),
                lc_connection_recv_event(manager, connection, 0, &mut 0),
            )
        };
        if notifications == LC_ERR_RECEIVER_BUSY && events == LC_ERR_RECEIVER_BUSY {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the receives never began waiting"
        );
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(lc_manager_free(manager), LC_OK);
    // The waits have no time limit: that each ends at all is what the free must do.
    for waiter in waiters {
        let (kind, status) = join_or_fail(waiter, "a wait the free should end");
        // The publish above queued the connection on the ready queue: a ready-queue wait
        // that began before the free may have taken it.
        let queued_before = kind == 2 && status == LC_OK;
        assert!(
            status == LC_CLOSED || status == LC_ERR_INVALID_HANDLE || queued_before,
            "{kind}: {status:?}"
        );
    }
    assert_eq!(lc_manager_free(manager), LC_ERR_INVALID_HANDLE);
    // The notification outlives its manager.
    assert_eq!(text_of(value(kept, 0, LC_ROW_CURRENT, 0)), "kept");
    assert_eq!(lc_notification_free(kept), LC_OK);
    assert_eq!(lc_notification_free(kept), LC_ERR_INVALID_HANDLE);
}

#[test]
fn a_full_channel_becomes_a_gap_notice_and_a_schema_change_a_close() {
    let _serial = serial();
    let mut config = config();
    config.notification_channel_capacity = 2;
    let manager = manager_with(&config);
    let table = register_table(
        manager,
        "chat",
        "messages",
        LC_SCOPE_SHARED_TAG,
        &["id", "room"],
    );
    let connection = connect(manager, "alice");
    let live = subscribe(
        manager,
        connection,
        "SELECT id, room FROM chat.messages",
        &options(0),
    );
    for seq in 1..=5 {
        let row = [int(seq), int(1)];
        publish(
            manager,
            seq as u64,
            &[change(table, LC_CHANGE_INSERT, &row, None)],
        );
    }
    let lq = format!("c{}-s{}", live.connection_id, live.subscription_id);
    assert!(recv_json(manager, connection).contains(r#""seq":1"#));
    assert!(recv_json(manager, connection).contains(r#""seq":2"#));
    assert_eq!(
        recv_json(manager, connection),
        format!(r#"{{"type":"gap","live_query_id":"{lq}","last_seq":2,"missed":3}}"#)
    );
    assert_eq!(stats(manager).dropped, 3);
    // ALTER TABLE drops the room column the query selects.
    register_table(manager, "chat", "messages", LC_SCOPE_SHARED_TAG, &["id"]);
    let closed = recv(manager, connection);
    let info = notification_info(closed);
    assert_eq!(
        (info.kind, info.close_reason),
        (
            lc_notification_kind::LC_NOTIFICATION_CLOSED as u32,
            lc_close_reason::LC_CLOSE_SCHEMA_CHANGED as u32
        )
    );
    assert_eq!(
        json(closed),
        format!(
            r#"{{"type":"closed","live_query_id":"{lq}","reason":"schema_changed","detail":"column 'room' was dropped or its values rewritten"}}"#
        )
    );
    assert_eq!(lc_notification_free(closed), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn user_scoped_tables_deliver_only_the_owners_rows() {
    let _serial = serial();
    let (manager, _, notes) = manager();
    let alice = connect(manager, "alice");
    let bob = connect(manager, "bob");
    subscribe(manager, alice, "SELECT * FROM app.notes", &options(0));
    subscribe(manager, bob, "SELECT * FROM app.notes", &options(0));
    let title = b"mine";
    let row = [int(1), text(title)];
    let owner = c("alice");
    let insert = lc_change {
        owner: owner.as_ptr(),
        ..change(notes, LC_CHANGE_INSERT, &row, None)
    };
    assert_eq!(publish(manager, 1, &[insert]).enqueued, 1);
    assert!(recv_json(manager, alice).contains(r#""title":"mine""#));
    assert_eq!(try_recv_status(manager, bob), LC_EMPTY);
    assert_status!(
        // SAFETY: nothing here is dereferenced; the summary may be NULL.
        unsafe { lc_change_publish(manager, 2, &insert, null_mut()) },
        LC_OK
    );
    let _ = null::<u8>();
    assert_eq!(lc_manager_free(manager), LC_OK);
}
#[test]
fn freeing_the_manager_ends_every_thread_inside_a_call_with_closed_or_invalid_handle() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let _serial = serial();
    let (manager, messages, _) = manager();
    create_topic(manager, "t", &topic_config(2));
    create_group(
        manager,
        "t",
        "g",
        &group_config(lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST, 30_000),
    );
    let (alice, bob, reader) = (
        connect(manager, "alice"),
        connect(manager, "bob"),
        connect(manager, "reader"),
    );
    for connection in [alice, bob] {
        subscribe(
            manager,
            connection,
            "SELECT * FROM chat.messages",
            &options(0),
        );
    }
    // A bound, never an expectation: a call still waiting after it fails the test.
    const BOUND_MS: u32 = 30_000;
    const KINDS: usize = 7;
    let calls: Arc<Vec<AtomicU64>> = Arc::new((0..KINDS).map(|_| AtomicU64::new(0)).collect());
    // `freeing` is set just before the free, `freed` once it has returned. A wait that
    // began before the free may time out when reaching the free took longer than the bound
    // (valgrind on a loaded machine): it is made again, and must then end at once. A
    // timeout is the failure this test looks for when the wait's deadline (its start plus
    // the bound, or later) lay after the free returned: the free came while it waited and
    // did not wake it. A woken wait never reports a timeout, however slow the machine, so
    // no timing can fail a correct build. A wait that began after the free must never time
    // out.
    let freeing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let freed: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
    let threads: Vec<_> = (0..KINDS)
        .map(|kind| {
            let calls = calls.clone();
            let freeing = freeing.clone();
            let freed = freed.clone();
            thread::spawn(move || {
                let topic = c("t");
                let group = c("g");
                let mut seq = 0u64;
                loop {
                    calls[kind].fetch_add(1, Ordering::SeqCst);
                    let began = Instant::now();
                    let began_before_the_free = !freeing.load(Ordering::SeqCst);
                    if kind <= 1 {
                        // The publishers never block: under valgrind, which runs one thread
                        // at a time, a publisher that never yields can starve the others.
                        thread::yield_now();
                    }
                    // SAFETY: every pointer is a live local of this thread (rows, strings,
                    // out-parameters).
                    let status = unsafe {
                        match kind {
                            0 => {
                                seq += 1;
                                let row = [int(seq as i64), int(1), nil()];
                                let changes = [change(messages, LC_CHANGE_INSERT, &row, None)];
                                lc_commit_publish(manager, seq, changes.as_ptr(), 1, null_mut())
                            }
                            1 => {
                                seq += 1;
                                let key = int(seq as i64);
                                lc_topic_publish(
                                    manager,
                                    topic.as_ptr(),
                                    seq,
                                    &key,
                                    LC_TOPIC_ANY_PARTITION,
                                    b"m".as_ptr(),
                                    1,
                                    null_mut(),
                                    null_mut(),
                                )
                            }
                            2 | 3 => {
                                let mut n = lc_notification::default();
                                let connection = if kind == 2 { alice } else { bob };
                                let status =
                                    lc_connection_recv(manager, connection, BOUND_MS, &mut n);
                                if status == LC_OK {
                                    assert_eq!(lc_notification_free(n), LC_OK);
                                }
                                status
                            }
                            4 => lc_connection_recv_event(manager, alice, BOUND_MS, &mut 0),
                            5 => {
                                let mut ready = [0u64; 8];
                                let mut count = 0;
                                // No re-arming: that is the receiving threads' call
                                // (LC_ERR_RECEIVER_BUSY while they receive), so after the
                                // first wake-ups this waits until the free.
                                lc_manager_wait_ready(
                                    manager,
                                    BOUND_MS,
                                    ready.as_mut_ptr(),
                                    ready.len(),
                                    &mut count,
                                )
                            }
                            _ => {
                                let mut batch = lc_topic_batch::default();
                                let status = lc_topic_consume(
                                    manager,
                                    reader,
                                    topic.as_ptr(),
                                    group.as_ptr(),
                                    16,
                                    BOUND_MS,
                                    &mut batch,
                                );
                                if status == LC_OK {
                                    let _ = lc_topic_batch_commit(manager, reader, batch);
                                    assert_eq!(lc_topic_batch_free(batch), LC_OK);
                                }
                                status
                            }
                        }
                    };
                    let bound = Duration::from_millis(u64::from(BOUND_MS));
                    let slept_through_the_free =
                        freed.get().is_some_and(|freed| began + bound > *freed);
                    if status == LC_TIMEOUT && began_before_the_free && !slept_through_the_free {
                        continue;
                    }
                    if status != LC_OK {
                        return (kind, status);
                    }
                }
            })
        })
        .collect();
    // Free only once every thread has made calls and both publishers are streaming.
    let deadline = Instant::now() + HANG_GUARD;
    while !(calls.iter().all(|count| count.load(Ordering::SeqCst) > 0)
        && calls[0].load(Ordering::SeqCst) > 50
        && calls[1].load(Ordering::SeqCst) > 50)
    {
        assert!(
            Instant::now() < deadline,
            "the threads did not start: {calls:?}"
        );
        thread::yield_now();
    }
    freeing.store(true, Ordering::SeqCst);
    assert_eq!(lc_manager_free(manager), LC_OK);
    freed.set(Instant::now()).unwrap();
    for thread in threads {
        let (kind, status) = join_or_fail(thread, "a call the free should end");
        assert!(
            status == LC_CLOSED || status == LC_ERR_INVALID_HANDLE,
            "thread {kind} ended with {status:?}: {}",
            last_error()
        );
    }
    assert_eq!(lc_manager_free(manager), LC_ERR_INVALID_HANDLE);
}
