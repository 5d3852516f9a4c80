//! Whole protocols driven through the C ABI: live changes, the initial load, resume, the
//! ready queue, events, shutdown, one consumer at a time, and freeing with waits running.

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

#[test]
fn the_initial_load_protocol_runs_through_the_c_api() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let connection = connect(manager, "alice");
    let mut opts = options(LC_SUBSCRIBE_INITIAL_LOAD);
    opts.batch_size = 2;
    let result = subscribe_result(
        manager,
        connection,
        "SELECT * FROM chat.messages WHERE room = 7",
        &opts,
    );
    let info = result_info(result);
    assert_eq!(info.flags, LC_SUBSCRIPTION_GATED);
    let live = info.live_query;
    assert_eq!(lc_subscription_result_free(result), LC_OK);
    // Published during the load: seq 5 is in the snapshot, seq 6 is not.
    let row5 = [int(5), int(7), nil()];
    let row6 = [int(6), int(7), nil()];
    assert_eq!(
        publish(
            manager,
            5,
            &[change(messages, LC_CHANGE_INSERT, &row5, None)]
        )
        .buffered,
        1
    );
    assert_status!(
        lc_subscription_set_snapshot_boundary(manager, live, 5),
        LC_OK
    );
    assert_eq!(
        publish(
            manager,
            6,
            &[change(messages, LC_CHANGE_INSERT, &row6, None)]
        )
        .buffered,
        1
    );
    // The snapshot: three rows in room 7 and one outside (filtered out), in batches of 2.
    let snapshot = [
        int(1),
        int(7),
        nil(),
        int(2),
        int(8),
        nil(),
        int(3),
        int(7),
        nil(),
        int(5),
        int(7),
        nil(),
    ];
    let mut progress = lc_snapshot_progress {
        struct_size: std::mem::size_of::<lc_snapshot_progress>() as u32,
        reserved: 0,
        consumed: 0,
        batches: 0,
        rows: 0,
    };
    assert_status!(
        // SAFETY: `snapshot` holds 4 rows of 3 values; `progress` is a live local.
        unsafe {
            lc_subscription_push_snapshot_rows(
                manager,
                live,
                snapshot.as_ptr(),
                4,
                3,
                &mut progress,
            )
        },
        LC_OK
    );
    assert_eq!(
        (progress.consumed, progress.batches, progress.rows),
        (4, 2, 3)
    );
    let mut report = lc_initial_load_report {
        struct_size: std::mem::size_of::<lc_initial_load_report>() as u32,
        has_boundary: 0,
        boundary: 0,
        flushed: 0,
        covered_by_snapshot: 0,
        batches: 0,
        rows: 0,
    };
    assert_status!(
        // SAFETY: `report` is a live local.
        unsafe { lc_subscription_complete_initial_load(manager, live, &mut report) },
        LC_OK
    );
    assert_eq!(
        (
            report.has_boundary,
            report.boundary,
            report.flushed,
            report.covered_by_snapshot
        ),
        (1, 5, 1, 1)
    );

    let lines: Vec<String> = (0..4).map(|_| recv_json(manager, connection)).collect();
    let lq = format!("c{}-s{}", live.connection_id, live.subscription_id);
    assert_eq!(
        lines,
        [
            format!(
                r#"{{"type":"snapshot","live_query_id":"{lq}","batch":0,"rows":[{{"id":1,"room":7,"body":null}}]}}"#
            ),
            format!(
                r#"{{"type":"snapshot","live_query_id":"{lq}","batch":1,"rows":[{{"id":3,"room":7,"body":null}},{{"id":5,"room":7,"body":null}}]}}"#
            ),
            format!(
                r#"{{"type":"load_complete","live_query_id":"{lq}","boundary":5,"batches":2,"rows":3}}"#
            ),
            format!(
                r#"{{"type":"changes","live_query_id":"{lq}","seq":6,"changes":[{{"op":"insert","row":{{"id":6,"room":7,"body":null}}}}]}}"#
            ),
        ]
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn resume_replays_what_was_missed_or_says_it_cannot() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let connection = connect(manager, "alice");
    let mut opts = options(LC_SUBSCRIBE_RESUME);
    opts.resume_from = 10;
    let resuming = subscribe(manager, connection, "SELECT id FROM chat.messages", &opts);
    let row = [int(11), int(1), nil()];
    let live_row = [int(13), int(1), nil()];
    publish(
        manager,
        13,
        &[change(messages, LC_CHANGE_INSERT, &live_row, None)],
    );
    let missed = [change(messages, LC_CHANGE_INSERT, &row, None)];
    let mut held = 0;
    assert_status!(
        // SAFETY: `missed` borrows `row`; `held` is a live local.
        unsafe {
            lc_subscription_replay_commit(manager, resuming, 11, missed.as_ptr(), 1, &mut held)
        },
        LC_OK
    );
    assert_eq!(held, 1);
    assert_status!(
        // SAFETY: the report may be NULL.
        unsafe { lc_subscription_complete_initial_load(manager, resuming, null_mut()) },
        LC_OK
    );
    let kinds: Vec<(u32, u64)> = (0..3)
        .map(|_| {
            let notification = recv(manager, connection);
            let info = notification_info(notification);
            assert_eq!(lc_notification_free(notification), LC_OK);
            (info.kind, info.seq)
        })
        .collect();
    use lc_notification_kind::*;
    assert_eq!(
        kinds,
        [
            // Replayed commits go straight to the channel, ahead of the completion
            // marker; live commits buffered meanwhile follow it.
            (LC_NOTIFICATION_CHANGES as u32, 11),
            (LC_NOTIFICATION_LOAD_COMPLETE as u32, 10),
            (LC_NOTIFICATION_CHANGES as u32, 13)
        ]
    );

    let unavailable = subscribe(manager, connection, "SELECT id FROM chat.messages", &opts);
    assert_status!(
        lc_subscription_resume_unavailable(manager, unavailable),
        LC_OK
    );
    let notification = recv(manager, connection);
    let info = notification_info(notification);
    assert_eq!(
        (info.kind, info.live_query),
        (LC_NOTIFICATION_RESUME_UNAVAILABLE as u32, unavailable)
    );
    assert_eq!(lc_notification_free(notification), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn one_thread_serves_many_connections_through_the_ready_queue() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let connections: Vec<u64> = (0..5)
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
    let mut info = lc_connection_info {
        struct_size: std::mem::size_of::<lc_connection_info>() as u32,
        flags: 0,
        registered_at_ms: 0,
        last_heartbeat_ms: 0,
        subscription_count: 0,
    };
    assert_status!(
        // SAFETY: `info` is a live local.
        unsafe { lc_connection_get_info(manager, quiet, &mut info) },
        LC_OK
    );
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
        // The host reacts to the shutdown event by unregistering the first connection.
        assert_eq!(
            recv_event(manager, first, 5_000),
            Ok(lc_event::LC_EVENT_SHUTDOWN as u32)
        );
        assert_eq!(lc_connection_unregister(manager, first), LC_OK);
    });
    let mut report = lc_shutdown_report {
        struct_size: std::mem::size_of::<lc_shutdown_report>() as u32,
        reserved: 0,
        notified: 0,
        closed_by_host: 0,
        forced: 0,
    };
    assert_status!(
        // SAFETY: `report` is a live local.
        unsafe { lc_manager_shutdown(manager, 300, &mut report) },
        LC_OK
    );
    closer.join().unwrap();
    assert_eq!(
        (report.notified, report.closed_by_host, report.forced),
        (2, 1, 1)
    );
    assert_eq!(try_recv_status(manager, second), LC_CLOSED);
    assert_eq!(
        recv_event(manager, second, 0),
        Ok(lc_event::LC_EVENT_SHUTDOWN as u32)
    );
    let mut info = lc_connection_info {
        struct_size: std::mem::size_of::<lc_connection_info>() as u32,
        flags: 0,
        registered_at_ms: 0,
        last_heartbeat_ms: 0,
        subscription_count: 0,
    };
    assert_status!(
        // SAFETY: `info` is a live local.
        unsafe { lc_connection_get_info(manager, second, &mut info) },
        LC_OK
    );
    assert_eq!(info.flags, LC_CONNECTION_CLOSED);
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
        let status = unsafe { lc_connection_recv(manager, connection, 5_000, &mut notification) };
        assert_eq!(status, LC_OK);
        assert_eq!(lc_notification_free(notification), LC_OK);
    });
    // Wait until the other thread holds the receiver.
    let deadline = Instant::now() + Duration::from_secs(5);
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
    waiter.join().unwrap();
    assert_eq!(lc_manager_free(manager), LC_OK);
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
                let started = Instant::now();
                // SAFETY: every out-pointer is a live local of this thread.
                let status = unsafe {
                    match kind {
                        0 => lc_connection_recv(
                            manager,
                            connection,
                            LC_WAIT_FOREVER,
                            &mut lc_notification::default(),
                        ),
                        1 => lc_connection_recv_event(manager, connection, LC_WAIT_FOREVER, &mut 0),
                        _ => lc_manager_wait_ready(
                            manager,
                            LC_WAIT_FOREVER,
                            &mut [0u64; 1] as *mut u64,
                            1,
                            &mut 0,
                        ),
                    }
                };
                (kind, status, started.elapsed())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(150));
    assert_eq!(lc_manager_free(manager), LC_OK);
    for waiter in waiters {
        let (kind, status, waited) = waiter.join().unwrap();
        // Closing the connections may queue them on the ready queue one last time.
        let ready_once = kind == 2 && status == LC_OK;
        assert!(
            status == LC_CLOSED || status == LC_ERR_INVALID_HANDLE || ready_once,
            "{kind}: {status:?}"
        );
        assert!(waited < Duration::from_secs(5));
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
            r#"{{"type":"closed","live_query_id":"{lq}","reason":"schema_changed","detail":"the table no longer has column 'room'"}}"#
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

fn records(manager: lc_manager) -> (lc_records, Vec<lc_live_query_record>) {
    let mut list = lc_records::default();
    let mut count = 0;
    // SAFETY: every out-pointer is a live local; the records borrow from `list`, which the
    // caller frees after using them.
    unsafe {
        assert_status!(lc_record_list(manager, &mut list), LC_OK);
        assert_status!(lc_records_count(list, &mut count), LC_OK);
    }
    let items = (0..count)
        .map(|index| {
            let mut record = lc_live_query_record {
                struct_size: std::mem::size_of::<lc_live_query_record>() as u32,
                ..empty_record()
            };
            // SAFETY: `record` is a live local with its struct_size set.
            assert_status!(unsafe { lc_records_get(list, index, &mut record) }, LC_OK);
            record
        })
        .collect();
    (list, items)
}

fn empty_record() -> lc_live_query_record {
    lc_live_query_record {
        struct_size: 0,
        status: 0,
        live_query: lc_live_query_id::default(),
        node_id: 0,
        table_namespace: null(),
        table_namespace_len: 0,
        table_name: null(),
        table_name_len: 0,
        user_id: null(),
        user_id_len: 0,
        query: null(),
        query_len: 0,
        options_flags: 0,
        reserved: 0,
        batch_size: 0,
        resume_from: 0,
        created_at_ms: 0,
        last_update_ms: 0,
        last_heartbeat_ms: 0,
        changes_delivered: 0,
    }
}

fn text_at(ptr: *const std::ffi::c_char, len: usize) -> String {
    // SAFETY: record strings point at `len` bytes owned by a live handle.
    String::from_utf8(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }.to_vec())
        .unwrap()
}

#[test]
fn revocation_drop_records_and_failover_through_the_c_api() {
    let _serial = serial();
    let mut config = config();
    config.flags = LC_CONFIG_MANUAL_CLOCK;
    config.manual_clock_start_ms = 5_000;
    config.node_id = 4;
    let namespace = c("chat");
    config.default_namespace = namespace.as_ptr();
    let manager = manager_with(&config);
    let messages = register_table(
        manager,
        "chat",
        "messages",
        LC_SCOPE_SHARED_TAG,
        &["id", "room"],
    );
    let alice = connect(manager, "alice");
    let bob = connect(manager, "bob");
    // The default namespace lets SQL name the table alone.
    let alice_live = subscribe(manager, alice, "SELECT id FROM messages", &options(0));
    let bob_live = subscribe(
        manager,
        bob,
        "SELECT id FROM chat.messages WHERE room = 1",
        &options(0),
    );

    let (list, items) = records(manager);
    assert_eq!(items.len(), 2);
    let first = &items[0];
    assert_eq!(
        (first.live_query, first.node_id, first.status),
        (alice_live, 4, lc_subscription_phase::LC_PHASE_LIVE as u32)
    );
    assert_eq!(
        text_at(first.table_namespace, first.table_namespace_len),
        "chat"
    );
    assert_eq!(text_at(first.user_id, first.user_id_len), "alice");
    assert_eq!(
        text_at(first.query, first.query_len),
        "SELECT id FROM messages"
    );
    assert_eq!(first.last_heartbeat_ms, 5_000);

    // Failover an hour later: node 7's records are orphaned, this node's stale ones go.
    assert_status!(lc_manager_set_clock(manager, 5_000 + 3_600_000), LC_OK);
    let mut given = items.clone();
    let mut remote = items[1];
    remote.node_id = 7;
    remote.live_query.subscription_id = 99;
    given.push(remote);
    let mut report = lc_failover_report::default();
    let active = [4u64];
    assert_status!(
        // SAFETY: `given` holds records whose strings `list` still owns; the rest are locals.
        unsafe {
            lc_failover_run(
                manager,
                given.as_ptr(),
                given.len(),
                active.as_ptr(),
                1,
                60_000,
                &mut report,
            )
        },
        LC_OK
    );
    assert_eq!(lc_records_free(list), LC_OK);
    let mut info = lc_failover_info {
        struct_size: std::mem::size_of::<lc_failover_info>() as u32,
        reserved: 0,
        orphaned: 0,
        stale: 0,
        removed: 0,
        failed: 0,
    };
    assert_status!(
        // SAFETY: `info` is a live local.
        unsafe { lc_failover_report_get_info(report, &mut info) },
        LC_OK
    );
    assert_eq!(
        (info.orphaned, info.stale, info.removed, info.failed),
        (1, 2, 2, 0)
    );
    let mut removed = lc_live_query_id::default();
    assert_status!(
        // SAFETY: `removed` is a live local.
        unsafe { lc_failover_report_removed(report, 1, &mut removed) },
        LC_OK
    );
    assert_eq!(removed, bob_live);
    let mut orphan = empty_record();
    orphan.struct_size = std::mem::size_of::<lc_live_query_record>() as u32;
    assert_status!(
        // SAFETY: `orphan` is a live local with its struct_size set.
        unsafe {
            lc_failover_report_record(
                report,
                lc_failover_list::LC_FAILOVER_ORPHANED as u32,
                0,
                &mut orphan,
            )
        },
        LC_OK
    );
    // The report owns copies of the strings the input records pointed at.
    assert_eq!(
        (orphan.node_id, text_at(orphan.user_id, orphan.user_id_len)),
        (7, "bob".to_string())
    );
    assert_eq!(lc_failover_report_free(report), LC_OK);
    assert_eq!(stats(manager).subscriptions, 0);

    // Revocation: alice's subscriptions end with a closed notification carrying the reason.
    let alice_live = subscribe(manager, alice, "SELECT id FROM messages", &options(0));
    subscribe(manager, bob, "SELECT id FROM messages", &options(0));
    let (user, why) = (c("alice"), c("token expired"));
    let mut ended = 0;
    assert_status!(
        // SAFETY: both strings are live; `ended` is a live local.
        unsafe { lc_user_revoke(manager, user.as_ptr(), why.as_ptr(), &mut ended) },
        LC_OK
    );
    assert_eq!(ended, 1);
    let lq = format!(
        "c{}-s{}",
        alice_live.connection_id, alice_live.subscription_id
    );
    assert_eq!(
        recv_json(manager, alice),
        format!(
            r#"{{"type":"closed","live_query_id":"{lq}","reason":"revoked","detail":"revoked: token expired"}}"#
        )
    );
    // Revoking a table ends bob's; dropping it makes its key unknown.
    let table_why = c("withdrawn");
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_table_revoke(manager, messages, table_why.as_ptr(), &mut ended) },
        LC_OK
    );
    assert_eq!(ended, 1);
    let closed = recv(manager, bob);
    assert_eq!(
        notification_info(closed).close_reason,
        lc_close_reason::LC_CLOSE_REVOKED as u32
    );
    assert_eq!(lc_notification_free(closed), LC_OK);
    subscribe(manager, bob, "SELECT id FROM messages", &options(0));
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_table_drop(manager, messages, &mut ended) },
        LC_OK
    );
    assert_eq!(ended, 1);
    let closed = recv(manager, bob);
    assert_eq!(
        notification_info(closed).close_reason,
        lc_close_reason::LC_CLOSE_TABLE_DROPPED as u32
    );
    assert_eq!(lc_notification_free(closed), LC_OK);
    let row = [int(1), int(1)];
    let insert = change(messages, LC_CHANGE_INSERT, &row, None);
    assert_status!(
        // SAFETY: `insert` borrows `row`; the summary may be NULL.
        unsafe { lc_change_publish(manager, 1, &insert, null_mut()) },
        LC_ERR_UNKNOWN_TABLE
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn an_overflowed_gate_ends_the_subscription_with_its_own_status_and_says_how() {
    let _serial = serial();
    let before = live_handle_counts();
    let mut config = config();
    config.gate_buffer_capacity = 2;
    let manager = manager_with(&config);
    let messages = register_table(
        manager,
        "chat",
        "messages",
        LC_SCOPE_SHARED_TAG,
        &["id", "room", "body"],
    );
    let connection = connect(manager, "alice");
    let gated = subscribe(
        manager,
        connection,
        "SELECT * FROM chat.messages",
        &options(LC_SUBSCRIBE_INITIAL_LOAD),
    );
    // Three commits while the load runs: one more than the gate holds.
    for seq in 1..=3 {
        let row = [int(seq as i64), int(7), nil()];
        publish(
            manager,
            seq,
            &[change(messages, LC_CHANGE_INSERT, &row, None)],
        );
    }
    let rows = [int(10), int(7), nil()];
    assert_status!(
        // SAFETY: one row of three values; the progress report may be NULL.
        unsafe {
            lc_subscription_push_snapshot_rows(manager, gated, rows.as_ptr(), 1, 3, null_mut())
        },
        LC_ERR_SUBSCRIPTION_ENDED
    );
    let message = last_error();
    assert!(
        message.starts_with("lc_subscription_push_snapshot_rows: ")
            && message.contains("must resync"),
        "{message}"
    );
    // The other calls on it say the same, with the same status.
    assert_status!(
        // SAFETY: the report may be NULL.
        unsafe { lc_subscription_complete_initial_load(manager, gated, null_mut()) },
        LC_ERR_SUBSCRIPTION_ENDED
    );
    // Its subscriber was told once, with the matching terminal notification.
    let notification = recv(manager, connection);
    assert_eq!(
        notification_info(notification).kind,
        lc_notification_kind::LC_NOTIFICATION_RESYNC_REQUIRED as u32
    );
    assert_eq!(lc_notification_free(notification), LC_OK);
    assert_eq!(try_recv_status(manager, connection), LC_EMPTY);
    // Cancelling an ended subscription succeeds once; then it is unknown.
    assert_status!(lc_subscription_cancel(manager, gated), LC_OK);
    assert_status!(
        lc_subscription_cancel(manager, gated),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(live_handle_counts(), before);
}

/// `lc_manager_free`'s guarantee: threads inside publish, receive, wait and consume calls
/// when the manager is freed all end cleanly with `LC_CLOSED` or `LC_ERR_INVALID_HANDLE`:
/// no hang, no crash, no other status.
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
    let threads: Vec<_> = (0..KINDS)
        .map(|kind| {
            let calls = calls.clone();
            thread::spawn(move || {
                let topic = c("t");
                let group = c("g");
                let mut seq = 0u64;
                loop {
                    calls[kind].fetch_add(1, Ordering::SeqCst);
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
                    if status != LC_OK {
                        return (kind, status);
                    }
                }
            })
        })
        .collect();
    // Free only once every thread has made calls and both publishers are streaming.
    let deadline = Instant::now() + Duration::from_secs(30);
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
    assert_eq!(lc_manager_free(manager), LC_OK);
    for thread in threads {
        let (kind, status) = thread.join().unwrap();
        assert!(
            status == LC_CLOSED || status == LC_ERR_INVALID_HANDLE,
            "thread {kind} ended with {status:?}: {}",
            last_error()
        );
    }
    assert_eq!(lc_manager_free(manager), LC_ERR_INVALID_HANDLE);
}
