//! The subscription protocols driven through the C ABI: the initial load, resume (replays
//! that stream with back-pressure, or resume unavailable), subscriptions livecore ended,
//! and the cluster side: revocation, dropped tables, live-query records and failover.

use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

use lc_change_type::*;

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
    // Each local stale subscription's subscriber is told how it ended.
    for (connection, live) in [(alice, alice_live), (bob, bob_live)] {
        let lq = format!("c{}-s{}", live.connection_id, live.subscription_id);
        assert_eq!(
            recv_json(manager, connection),
            format!(
                r#"{{"type":"closed","live_query_id":"{lq}","reason":"revoked","detail":"revoked: stale: no heartbeat for 3600000 ms (the failover bound is 60000 ms)"}}"#
            )
        );
    }

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

#[test]
fn a_replay_into_a_full_channel_would_block_and_takes_the_same_commit_again() {
    let _serial = serial();
    let before = live_handle_counts();
    let mut config = config();
    config.notification_channel_capacity = 1;
    config.gate_buffer_capacity = 1;
    let manager = manager_with(&config);
    let messages = register_table(
        manager,
        "chat",
        "messages",
        LC_SCOPE_SHARED_TAG,
        &["id", "room", "body"],
    );
    let connection = connect(manager, "alice");
    let mut opts = options(LC_SUBSCRIBE_RESUME);
    opts.resume_from = 10;
    let resuming = subscribe(manager, connection, "SELECT id FROM chat.messages", &opts);
    let replay = |seq: u64| {
        let row = [int(seq as i64), int(1), nil()];
        let missed = [change(messages, LC_CHANGE_INSERT, &row, None)];
        let mut held = 0;
        // SAFETY: `missed` borrows `row`; `held` is a live local.
        let status = unsafe {
            lc_subscription_replay_commit(manager, resuming, seq, missed.as_ptr(), 1, &mut held)
        };
        (status, held)
    };
    // More replayed commits than the gate buffer holds: they stream, one channel slot at
    // a time, each taken again after a WouldBlock.
    let mut seqs = Vec::new();
    for seq in 11..=13 {
        assert_eq!(replay(seq), (LC_OK, 1));
        assert_eq!(
            replay(seq + 1).0,
            LC_WOULD_BLOCK,
            "the channel of one is full"
        );
        let notification = recv(manager, connection);
        seqs.push(notification_info(notification).seq);
        assert_eq!(lc_notification_free(notification), LC_OK);
    }
    assert_eq!(seqs, [11, 12, 13], "each once, in order");
    assert_eq!(
        replay(12),
        (LC_OK, 0),
        "at or below the highest replayed: ignored"
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(live_handle_counts(), before);
}
