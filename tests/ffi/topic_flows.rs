//! Topics driven through the C ABI: a route fed by commits, long-poll consume racing a
//! publish, commits, redelivery after a lease expires on the manual clock, offsets outside
//! the retained range, shutdown, unregistering and leaving the group waking a parked
//! consume, the topic
//! limits in lc_config (both struct sizes), direct publishes, failed topic writes, and a
//! dead-letter topic named in the group config (both struct sizes).

use std::ffi::c_char;
use std::mem::{offset_of, size_of};
use std::ptr::{null, null_mut};
use std::thread;
use std::time::{Duration, Instant};

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

use lc_change_type::*;
use lc_row_version::*;

const EARLIEST: lc_topic_reset_policy = lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST;
const NONE: lc_topic_reset_policy = lc_topic_reset_policy::LC_TOPIC_RESET_NONE;

#[test]
fn a_route_feeds_a_topic_consumed_by_a_long_poll_racing_the_publish() {
    let _serial = serial();
    let before = live_handle_counts();
    let (manager, messages, _) = long_poll_manager();
    create_topic(manager, "room7", &topic_config(1));
    let route = route_sql(
        manager,
        "room7",
        "SELECT id, body FROM chat.messages WHERE room = 7",
        &route_options(LC_TOPIC_CHANGE_ALL, Some(c"id")),
    );
    let lease = u64::from(LONG_POLL_MS);
    create_group(manager, "room7", "indexer", &group_config(EARLIEST, lease));
    let consumer = connect(manager, "indexer");

    // Nothing waits: a consume with timeout 0 returns an empty batch at once, with the
    // consumer's position.
    let empty = consume(manager, consumer, "room7", "indexer", 10, 0);
    let info = batch_info(empty);
    assert_eq!((info.message_count, info.position_count), (0, 1));
    let position = batch_position(empty, 0);
    assert_eq!((position.committed, position.next, position.end), (0, 0, 0));
    assert_eq!(lc_topic_batch_free(empty), LC_OK);

    // A consume parked in another thread wakes for the publish (its timeout lies beyond
    // `join_or_fail`'s guard, so only the publish can end it in time).
    let waiter =
        thread::spawn(move || consume(manager, consumer, "room7", "indexer", 10, LONG_POLL_MS));
    // Published once the consume is parked (a fixed sleep let a loaded machine publish
    // first, and the consume then found the message without parking).
    let parked_by = std::time::Instant::now() + Duration::from_secs(20);
    while stats(manager).consume_parks == 0 {
        assert!(
            std::time::Instant::now() < parked_by,
            "the consume never parked"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let (a, b) = (b"a".as_slice(), b"b".as_slice());
    let in7 = [int(1), int(7), text(a)];
    let other = [int(2), int(8), text(a)];
    let summary = publish(
        manager,
        1,
        &[
            change(messages, LC_CHANGE_INSERT, &in7, None),
            change(messages, LC_CHANGE_INSERT, &other, None),
        ],
    );
    assert_eq!(
        (summary.topic_messages, summary.topic_write_failures),
        (1, 0)
    );
    let batch = join_or_fail(waiter, "the consume slept through the publish");
    assert_eq!(
        batch_json(batch),
        [
            r#"{"partition":0,"offset":0,"seq":1,"timestamp_ms":1000000,"key":1,"change":{"op":"insert","source_op":"insert","table":"chat.messages","row":{"id":1,"body":"a"}}}"#
        ]
    );
    assert!(stats(manager).consume_parks >= 1);
    assert_status!(lc_topic_batch_commit(manager, consumer, batch), LC_OK);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(group_partition(manager, "room7", "indexer", 0).committed, 1);

    // Updates staying in, leaving and entering the filter; a delete.
    let in7b = [int(1), int(7), text(b)];
    let in8 = [int(1), int(8), text(b)];
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
    let batch = consume(manager, consumer, "room7", "indexer", 10, 1_000);
    assert_eq!(batch_info(batch).message_count, 4);
    let kinds: Vec<(u64, u32, u32)> = (0..4)
        .map(|index| {
            let message = batch_message(batch, index);
            (message.seq, message.change_type, message.source_change_type)
        })
        .collect();
    let (insert, update, delete) = (
        LC_CHANGE_INSERT as u32,
        LC_CHANGE_UPDATE as u32,
        LC_CHANGE_DELETE as u32,
    );
    assert_eq!(
        kinds,
        [
            (2, update, update),
            (3, delete, update),
            (4, insert, update),
            (5, delete, delete)
        ]
    );
    assert_eq!(row_json(batch, 0, LC_ROW_CURRENT), r#"{"id":1,"body":"b"}"#);
    assert_eq!(row_json(batch, 0, LC_ROW_OLD), r#"{"id":1,"body":"a"}"#);
    assert!(message_json(batch, 1).contains(r#""op":"delete","source_op":"update""#));
    // Commit part of the batch, then the rest.
    assert_eq!(commit(manager, consumer, "room7", "indexer", 0, 3), LC_OK);
    let partition = group_partition(manager, "room7", "indexer", 0);
    assert_eq!(
        (partition.committed, partition.lag, partition.delivered),
        (3, 2, 5)
    );
    assert_status!(lc_topic_batch_commit(manager, consumer, batch), LC_OK);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);

    // The timeout passes: an empty batch.
    let started = Instant::now();
    let batch = consume(manager, consumer, "room7", "indexer", 10, 50);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(batch_info(batch).message_count, 0);
    assert_eq!(batch_position(batch, 0).committed, 5);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);

    // A removed route feeds nothing more.
    assert_status!(lc_topic_route_remove(manager, route), LC_OK);
    let summary = publish(
        manager,
        6,
        &[change(messages, LC_CHANGE_INSERT, &in7, None)],
    );
    assert_eq!(summary.topic_messages, 0);
    let info = topic_info(manager, "room7");
    assert_eq!((info.appended, info.routes, info.groups), (5, 0, 1));
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(live_handle_counts(), before);
}

#[test]
fn uncommitted_messages_are_handed_out_again_after_the_lease_expires() {
    let _serial = serial();
    let (manager, _, _) = manager();
    create_topic(manager, "jobs", &topic_config(1));
    create_group(manager, "jobs", "workers", &group_config(EARLIEST, 1_000));
    for seq in 1..=3 {
        publish_direct(manager, "jobs", seq, None, format!("job {seq}").as_bytes());
    }
    let first = connect(manager, "first");
    let second = connect(manager, "second");
    let batch = consume(manager, first, "jobs", "workers", 2, 0);
    assert_eq!(batch_info(batch).message_count, 2);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    // The partition is leased to the first consumer: the second gets nothing.
    let batch = consume(manager, second, "jobs", "workers", 10, 0);
    assert_eq!(batch_info(batch).message_count, 0);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    let leased = group_partition(manager, "jobs", "workers", 0);
    assert_eq!(
        (leased.holder, leased.delivered, leased.lease_expires_at_ms),
        (first, 2, 1_001_000)
    );

    // The first consumer goes quiet past its lease (manual clock).
    assert_status!(lc_manager_set_clock(manager, 1_001_001), LC_OK);
    let batch = consume(manager, second, "jobs", "workers", 10, 0);
    let offsets: Vec<u64> = (0..batch_info(batch).message_count as usize)
        .map(|index| batch_message(batch, index).offset)
        .collect();
    assert_eq!(
        offsets,
        [0, 1, 2],
        "handed out again from the committed offset"
    );
    let stats = group_stats(manager, "jobs", "workers");
    assert_eq!((stats.redelivered, stats.leases_expired), (2, 1));
    // The first consumer's lease is gone: its commit is refused; the second's holds.
    assert_eq!(
        commit(manager, first, "jobs", "workers", 0, 2),
        LC_ERR_NOT_LEASE_HOLDER
    );
    assert_status!(lc_topic_batch_commit(manager, second, batch), LC_OK);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    let partition = group_partition(manager, "jobs", "workers", 0);
    assert_eq!(
        (partition.committed, partition.lag, partition.holder),
        (3, 0, second)
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn offsets_outside_the_retained_range_are_offset_out_of_range() {
    let _serial = serial();
    let (manager, _, _) = manager();
    let mut config = topic_config(1);
    config.retention_max_messages = 2;
    create_topic(manager, "log", &config);
    create_group(manager, "log", "strict", &group_config(NONE, 30_000));
    create_group(manager, "log", "lenient", &group_config(EARLIEST, 30_000));
    let consumer = connect(manager, "reader");
    // Reset policy none: no position until a seek gives one.
    let (status, _) = try_consume(manager, consumer, "log", "strict", 10, 0);
    assert_eq!(status, LC_ERR_NO_COMMITTED_OFFSET);
    assert_status!(seek(manager, "log", "strict", 0, 0), LC_OK);
    for seq in 1..=5 {
        publish_direct(manager, "log", seq, None, b"x");
    }
    let name = c("log");
    let (mut start, mut end) = (0, 0);
    assert_status!(
        // SAFETY: the string and the outs are live.
        unsafe { lc_topic_get_partition_bounds(manager, name.as_ptr(), 0, &mut start, &mut end) },
        LC_OK
    );
    assert_eq!((start, end), (3, 5), "retention kept the last two");
    assert_eq!(topic_info(manager, "log").retained, 2);
    // Retention overtook the strict group's committed offset.
    let (status, batch) = try_consume(manager, consumer, "log", "strict", 10, 0);
    assert_eq!(status, LC_ERR_OFFSET_OUT_OF_RANGE);
    assert_eq!(batch, lc_topic_batch::default());
    assert!(last_error().contains("out"), "{}", last_error());
    assert_eq!(
        seek(manager, "log", "strict", 0, 2),
        LC_ERR_OFFSET_OUT_OF_RANGE
    );
    assert_eq!(
        seek(manager, "log", "strict", 0, 6),
        LC_ERR_OFFSET_OUT_OF_RANGE
    );
    assert_status!(seek(manager, "log", "strict", 0, 3), LC_OK);
    let batch = consume(manager, consumer, "log", "strict", 10, 0);
    assert_eq!(batch_message(batch, 0).offset, 3);
    assert_eq!(batch_info(batch).message_count, 2);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    // The lenient group skips what retention removed, and says so.
    let batch = consume(manager, consumer, "log", "lenient", 10, 0);
    let info = batch_info(batch);
    assert_eq!((info.message_count, info.retention_skip_count), (2, 1));
    let mut skip = lc_topic_retention_skip {
        partition: 9,
        reserved: 9,
        from: 9,
        to: 9,
    };
    assert_status!(
        // SAFETY: `skip` is a live local.
        unsafe { lc_topic_batch_retention_skip(batch, 0, &mut skip) },
        LC_OK
    );
    assert_eq!((skip.partition, skip.from, skip.to), (0, 0, 3));
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(
        group_stats(manager, "log", "lenient").skipped_by_retention,
        3
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
}

/// Parks a consume in another thread; returns its handle once it is parked.
fn parked_consume(
    manager: lc_manager,
    consumer: u64,
) -> thread::JoinHandle<(lc_status, lc_topic_batch)> {
    let parks = stats(manager).consume_parks;
    // The timeout lies beyond `join_or_fail`'s guard: only what the test does ends the wait.
    let waiter = thread::spawn(move || try_consume(manager, consumer, "t", "g", 10, LONG_POLL_MS));
    let deadline = Instant::now() + HANG_GUARD;
    while stats(manager).consume_parks == parks {
        assert!(Instant::now() < deadline, "the consume never parked");
        thread::sleep(Duration::from_millis(5));
    }
    waiter
}

fn topic_with_consumer() -> (lc_manager, u64) {
    let (manager, _, _) = long_poll_manager();
    create_topic(manager, "t", &topic_config(1));
    let lease = u64::from(LONG_POLL_MS);
    create_group(manager, "t", "g", &group_config(EARLIEST, lease));
    let consumer = connect(manager, "reader");
    (manager, consumer)
}

#[test]
fn shutdown_unregistering_and_freeing_wake_a_parked_consume() {
    let _serial = serial();
    // Shutdown.
    let (manager, consumer) = topic_with_consumer();
    let waiter = parked_consume(manager, consumer);
    assert_status!(
        // SAFETY: the report may be NULL.
        unsafe { lc_manager_shutdown(manager, 0, null_mut()) },
        LC_OK
    );
    let (status, batch) = join_or_fail(waiter, "the consume slept through the shutdown");
    assert_eq!(status, LC_ERR_SHUTTING_DOWN);
    assert_eq!(batch, lc_topic_batch::default(), "nothing was handed out");
    assert_eq!(lc_manager_free(manager), LC_OK);

    // Unregistering the consumer.
    let (manager, consumer) = topic_with_consumer();
    let waiter = parked_consume(manager, consumer);
    assert_status!(lc_connection_unregister(manager, consumer), LC_OK);
    let (status, _) = join_or_fail(waiter, "the consume slept through the unregister");
    assert_eq!(status, LC_CLOSED);
    let (status, _) = try_consume(manager, consumer, "t", "g", 10, 0);
    assert_eq!(status, LC_ERR_UNKNOWN_CONNECTION);
    assert_eq!(lc_manager_free(manager), LC_OK);

    // Freeing the manager.
    let (manager, consumer) = topic_with_consumer();
    let waiter = parked_consume(manager, consumer);
    assert_status!(lc_manager_free(manager), LC_OK);
    let (status, _) = join_or_fail(waiter, "the consume slept through the free");
    assert_eq!(status, LC_CLOSED);

    // Deleting the topic.
    let (manager, consumer) = topic_with_consumer();
    let waiter = parked_consume(manager, consumer);
    let name = c("t");
    // SAFETY: the string is live.
    assert_status!(unsafe { lc_topic_delete(manager, name.as_ptr()) }, LC_OK);
    let (status, _) = join_or_fail(waiter, "the consume slept through the delete");
    assert_eq!(status, LC_ERR_UNKNOWN_TOPIC);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

/// A consume waiting in a group when its connection leaves the group returns at once
/// with `LC_OK` and an empty batch (no message, no position), as `lc_topic_consume`
/// documents, rather than waiting out its timeout; it took no lease again on its way out.
#[test]
fn leaving_the_group_wakes_a_parked_consume_with_an_empty_batch() {
    let _serial = serial();
    let (manager, consumer) = topic_with_consumer();
    let waiter = parked_consume(manager, consumer);
    let (topic, group) = (c("t"), c("g"));
    let left_at = Instant::now();
    assert_status!(
        // SAFETY: the strings are live.
        unsafe { lc_topic_group_leave(manager, consumer, topic.as_ptr(), group.as_ptr()) },
        LC_OK
    );
    let (status, batch) = join_or_fail(waiter, "the consume slept through the leave");
    // The consume asked for LONG_POLL_MS (ten minutes): a generous bound, far below it,
    // tells the leave ended the wait, not the timeout.
    assert!(
        left_at.elapsed() < Duration::from_secs(10),
        "the consume returned only after {:?}",
        left_at.elapsed()
    );
    assert_eq!(status, LC_OK, "{}", last_error());
    let info = batch_info(batch);
    assert_eq!((info.message_count, info.position_count), (0, 0));
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(
        group_stats(manager, "t", "g").members,
        0,
        "the woken consume did not join again"
    );
    // The partition is free: another consumer takes it and reads what comes next.
    publish_direct(manager, "t", 1, None, b"after");
    let other = connect(manager, "other");
    let batch = consume(manager, other, "t", "g", 10, 0);
    assert_eq!(batch_offsets(batch), [0]);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn topic_limits_come_from_lc_config_and_an_older_struct_size_keeps_the_defaults() {
    let _serial = serial();
    let old_size = offset_of!(lc_config, topic_max_topics);
    assert!(old_size < size_of::<lc_config>());

    // lc_config_init with the older size writes only that much.
    let mut older = config();
    older.topic_max_topics = 777;
    older.struct_size = old_size as u32;
    // SAFETY: `older` is a live local, larger than the size it declares.
    assert_status!(unsafe { lc_config_init(&mut older) }, LC_OK);
    assert_eq!(older.struct_size as usize, old_size);
    assert_eq!(
        older.topic_max_topics, 777,
        "beyond struct_size: not written"
    );

    let limited = |struct_size: usize| {
        let mut config = config();
        config.topic_max_topics = 1;
        config.topic_max_partitions = 2;
        config.struct_size = struct_size as u32;
        manager_with(&config)
    };
    // The full size: its limits hold.
    let m = limited(size_of::<lc_config>());
    create_topic(m, "one", &topic_config(2));
    let (two, three) = (c("two"), c("three"));
    // SAFETY: the strings and configs are live.
    unsafe {
        assert_status!(
            lc_topic_create(m, two.as_ptr(), &topic_config(1)),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert!(last_error().contains("topics"), "{}", last_error());
        assert_status!(
            lc_topic_create(m, three.as_ptr(), &topic_config(3)),
            LC_ERR_OUT_OF_BOUNDS
        );
    }
    assert_eq!(lc_manager_free(m), LC_OK);
    // The older size: the topic fields are not read, the defaults hold.
    let m = limited(old_size);
    create_topic(m, "one", &topic_config(3));
    create_topic(m, "two", &topic_config(1));
    assert_eq!(lc_manager_free(m), LC_OK);

    // Topic limits are checked like the others.
    let mut bad = config();
    bad.topic_min_lease_ms = bad.topic_max_lease_ms + 1;
    let mut out = lc_manager::default();
    assert_status!(
        // SAFETY: both are live locals.
        unsafe { lc_manager_new(&bad, &mut out) },
        LC_ERR_INVALID_CONFIG
    );
    let mut bad = config();
    bad.topic_max_partitions = u64::from(u32::MAX) + 1;
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_manager_new(&bad, &mut out) },
        LC_ERR_INVALID_ARGUMENT
    );
    let mut bad = config();
    bad.topic_max_consume_messages = 0;
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_manager_new(&bad, &mut out) },
        LC_ERR_INVALID_CONFIG
    );
    assert_eq!(out, lc_manager::default());

    // The grown report structs: an older size is written up to where it ends.
    let (manager, messages, _) = manager();
    create_topic(manager, "all", &topic_config(1));
    route_sql(
        manager,
        "all",
        "SELECT * FROM chat.messages",
        &route_options(LC_TOPIC_CHANGE_ALL, None),
    );
    let row = [int(1), int(1), nil()];
    let insert = change(messages, LC_CHANGE_INSERT, &row, None);
    let mut older = summary();
    older.topic_messages = 99;
    older.struct_size = offset_of!(lc_publish_summary, topic_messages) as u32;
    assert_status!(
        // SAFETY: `insert` borrows `row`; `older` is a live local.
        unsafe { lc_change_publish(manager, 1, &insert, &mut older) },
        LC_OK
    );
    assert_eq!(older.topic_messages, 99, "beyond struct_size: not written");
    assert_eq!(
        older.struct_size as usize,
        offset_of!(lc_publish_summary, topic_messages)
    );
    let mut full = summary();
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_change_publish(manager, 2, &insert, &mut full) },
        LC_OK
    );
    assert_eq!(full.topic_messages, 1);
    let stats = stats(manager);
    assert_eq!((stats.topic_messages, stats.topic_write_failures), (2, 0));
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn direct_publishes_carry_their_key_and_payload() {
    let _serial = serial();
    let (manager, _, _) = manager();
    create_topic(manager, "events", &topic_config(4));
    create_group(manager, "events", "all", &group_config(EARLIEST, 30_000));
    let key = text(b"user-7");
    let (first, _) = publish_direct(manager, "events", 1, Some(&key), b"\x00\x01bin");
    let (again, offset) = publish_direct(manager, "events", 2, Some(&key), b"second");
    assert_eq!(
        (again, offset),
        (first, 1),
        "one key, one partition, in order"
    );
    let consumer = connect(manager, "reader");
    let batch = consume(manager, consumer, "events", "all", 10, 0);
    assert_eq!(batch_info(batch).message_count, 2);
    let message = batch_message(batch, 0);
    assert_eq!(
        message.kind,
        lc_topic_message_kind::LC_TOPIC_MESSAGE_BYTES as u32
    );
    assert_eq!(
        (
            message.partition,
            message.offset,
            message.seq,
            message.has_key
        ),
        (first, 0, 1, 1)
    );
    // SAFETY: the key and payload point into the live batch.
    let (key_text, payload) = unsafe {
        (
            std::slice::from_raw_parts(message.key.data, message.key.len).to_vec(),
            std::slice::from_raw_parts(message.payload, message.payload_len).to_vec(),
        )
    };
    assert_eq!(
        (key_text.as_slice(), payload.as_slice()),
        (b"user-7".as_slice(), b"\x00\x01bin".as_slice())
    );
    assert_eq!(
        message_json(batch, 1),
        format!(
            r#"{{"partition":{first},"offset":1,"seq":2,"timestamp_ms":1000000,"key":"user-7","payload":"c2Vjb25k"}}"#
        )
    );
    let mut json: *const c_char = null();
    let mut len = 0;
    assert_status!(
        // SAFETY: both are live locals.
        unsafe { lc_topic_batch_row_json(batch, 0, LC_ROW_CURRENT as u32, &mut json, &mut len) },
        LC_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("payload"), "{}", last_error());
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn a_route_broken_by_a_schema_change_counts_failed_writes_with_the_reason() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    create_topic(manager, "bodies", &topic_config(1));
    route_sql(
        manager,
        "bodies",
        "SELECT id, body FROM chat.messages",
        &route_options(LC_TOPIC_CHANGE_ALL, None),
    );
    // ALTER TABLE: the body column is dropped.
    let again = register_table(
        manager,
        "chat",
        "messages",
        LC_SCOPE_SHARED_TAG,
        &["id", "room"],
    );
    assert_eq!(again, messages);
    let row = [int(1), int(7)];
    let summary = publish(
        manager,
        1,
        &[change(messages, LC_CHANGE_INSERT, &row, None)],
    );
    assert_eq!(
        (summary.topic_messages, summary.topic_write_failures),
        (0, 1)
    );
    assert_eq!(topic_info(manager, "bodies").write_failures, 1);
    let name = c("bodies");
    let mut len = 0;
    assert_status!(
        // SAFETY: the string is live; a NULL buffer with capacity 0 asks for the length.
        unsafe { lc_topic_get_last_write_error(manager, name.as_ptr(), null_mut(), 0, &mut len) },
        LC_OK
    );
    assert!(len > 10);
    let mut whole = vec![0 as c_char; len + 1];
    let mut short = [0x55 as c_char; 6];
    let mut got = 0;
    // SAFETY: the buffers are live and as large as declared.
    unsafe {
        assert_status!(
            lc_topic_get_last_write_error(
                manager,
                name.as_ptr(),
                whole.as_mut_ptr(),
                whole.len(),
                &mut got
            ),
            LC_OK
        );
        assert_eq!(got, len);
        let message = std::ffi::CStr::from_ptr(whole.as_ptr())
            .to_str()
            .unwrap()
            .to_string();
        assert!(message.contains("body"), "{message}");
        assert_status!(
            lc_topic_get_last_write_error(
                manager,
                name.as_ptr(),
                short.as_mut_ptr(),
                short.len(),
                &mut got
            ),
            LC_OK
        );
        assert_eq!(got, len);
        let cut = std::ffi::CStr::from_ptr(short.as_ptr()).to_str().unwrap();
        assert_eq!(
            cut,
            &message[..5],
            "cut to capacity - 1 bytes and NUL-terminated"
        );
    }
    assert_eq!(stats(manager).topic_write_failures, 1);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

/// The offsets of a batch's messages.
fn batch_offsets(batch: lc_topic_batch) -> Vec<u64> {
    (0..batch_info(batch).message_count as usize)
        .map(|index| batch_message(batch, index).offset)
        .collect()
}

/// The status of nacking `offset` of partition 0 at once.
fn nack_now(
    manager: lc_manager,
    connection: u64,
    topic: &str,
    group: &str,
    offset: u64,
) -> lc_status {
    let (topic, group) = (c(topic), c(group));
    // SAFETY: the strings are live.
    unsafe {
        lc_topic_nack(
            manager,
            connection,
            topic.as_ptr(),
            group.as_ptr(),
            0,
            offset,
            0,
        )
    }
}

#[test]
fn a_dead_letter_topic_named_in_the_group_config_and_an_older_struct_size() {
    let _serial = serial();
    let (manager, _, _) = manager();
    create_topic(manager, "jobs", &topic_config(1));
    create_topic(manager, "dlq", &topic_config(1));
    create_group(manager, "dlq", "reader", &group_config(EARLIEST, 30_000));
    let dlq = c("dlq");
    let mut config = group_config(EARLIEST, 1_000);
    config.dead_letter_topic = dlq.as_ptr();
    config.max_deliver = 2;
    create_group(manager, "jobs", "workers", &config);
    // A caller built against a header whose struct ends at `lease_ms` passes that size:
    // what follows it is not read (here it would be refused), and the group has no
    // dead-letter topic.
    let mut older = config;
    older.struct_size = offset_of!(lc_topic_group_config, dead_letter_topic) as u32;
    older.dead_letter_topic = c"\xff".as_ptr();
    older.reserved = 9;
    create_group(manager, "jobs", "older", &older);
    for (seq, body) in [b"m0".as_slice(), b"poison", b"m2"].into_iter().enumerate() {
        publish_direct(manager, "jobs", seq as u64, None, body);
    }
    let worker = connect(manager, "worker");

    // "workers": m0 and "poison" in progress; "poison" fails twice (max-deliver 2).
    let batch = consume(manager, worker, "jobs", "workers", 2, 0);
    assert_eq!(batch_offsets(batch), [0, 1]);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_status!(nack_now(manager, worker, "jobs", "workers", 1), LC_OK);
    let batch = consume(manager, worker, "jobs", "workers", 1, 0);
    assert_eq!(batch_offsets(batch), [1]);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_status!(nack_now(manager, worker, "jobs", "workers", 1), LC_OK);
    assert_eq!(topic_info(manager, "dlq").appended, 1);
    // The unfinished m0 is not committed with the dead letter.
    assert_eq!(group_partition(manager, "jobs", "workers", 0).committed, 0);
    // The worker goes quiet past its lease: m0 is handed out again, "poison" skipped.
    assert_status!(lc_manager_set_clock(manager, 1_001_001), LC_OK);
    let batch = consume(manager, worker, "jobs", "workers", 10, 0);
    assert_eq!(batch_offsets(batch), [0]);
    assert_status!(lc_topic_batch_commit(manager, worker, batch), LC_OK);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    let batch = consume(manager, worker, "jobs", "workers", 10, 0);
    assert_eq!(batch_offsets(batch), [2]);
    assert_status!(lc_topic_batch_commit(manager, worker, batch), LC_OK);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(group_partition(manager, "jobs", "workers", 0).committed, 3);
    assert_eq!(group_stats(manager, "jobs", "workers").dead_lettered, 1);

    // The dead letter names where it came from.
    let reader = connect(manager, "reader");
    let letters = consume(manager, reader, "dlq", "reader", 10, 0);
    assert_eq!(batch_info(letters).message_count, 1);
    let letter = batch_message(letters, 0);
    // SAFETY: the payload points into the live batch.
    let payload = unsafe { std::slice::from_raw_parts(letter.payload, letter.payload_len) };
    let body = String::from_utf8(payload.to_vec()).unwrap();
    assert!(
        body.starts_with(r#"{"topic":"jobs","partition":0,"offset":1,"deliveries":2,"#),
        "{body}"
    );
    assert_eq!(lc_topic_batch_free(letters), LC_OK);

    // "older": however often "poison" is nacked, it is handed out again.
    for _ in 0..3 {
        let batch = consume(manager, worker, "jobs", "older", 10, 0);
        assert_eq!(batch_offsets(batch)[0], 0);
        assert_eq!(lc_topic_batch_free(batch), LC_OK);
        assert_status!(nack_now(manager, worker, "jobs", "older", 0), LC_OK);
    }
    assert_eq!(topic_info(manager, "dlq").appended, 1);
    assert_eq!(group_stats(manager, "jobs", "older").dead_lettered, 0);
    assert_eq!(lc_manager_free(manager), LC_OK);
}
