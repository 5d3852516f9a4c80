//! A panic inside an extern function comes back as LC_ERR_PANIC with a message, and the
//! library stays usable.

use std::ptr::null_mut;

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

/// A manager with one connection (alice) subscribed to every message: (manager, the
/// messages table, the connection).
fn subscribed_to_every_message() -> (lc_manager, u32, u64) {
    let (manager, messages, _) = manager();
    let connection = connect(manager, "alice");
    subscribe(
        manager,
        connection,
        "SELECT id FROM chat.messages",
        &options(0),
    );
    (manager, messages, connection)
}

/// Publishes commit `seq`: one insert of message `seq` in room 1.
fn publish_message(manager: lc_manager, messages: u32, seq: u64) {
    publish_message_in(manager, messages, seq, 1);
}

/// Publishes commit `seq`: one insert of message `seq` in `room`.
fn publish_message_in(
    manager: lc_manager,
    messages: u32,
    seq: u64,
    room: i64,
) -> lc_publish_summary {
    let row = [int(seq as i64), int(room), nil()];
    publish(
        manager,
        seq,
        &[change(
            messages,
            lc_change_type::LC_CHANGE_INSERT,
            &row,
            None,
        )],
    )
}

#[test]
fn a_panic_inside_a_call_comes_back_as_a_status() {
    let _serial = serial();
    let (manager, messages, connection) = subscribed_to_every_message();
    let row = [int(1), int(1), nil()];
    let insert = change(messages, lc_change_type::LC_CHANGE_INSERT, &row, None);

    inject_panic_on_next_call();
    assert_status!(
        // SAFETY: `insert` borrows `row`; the summary may be NULL.
        unsafe { lc_change_publish(manager, 1, &insert, null_mut()) },
        LC_ERR_PANIC
    );
    let message = last_error();
    assert!(
        message.starts_with("lc_change_publish: panic caught at the C boundary"),
        "{message}"
    );
    assert!(message.contains("panic injected by a test"), "{message}");
    // The call had no effect, and the library goes on working.
    assert_eq!(stats(manager).published, 0);
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_change_publish(manager, 1, &insert, null_mut()) },
        LC_OK
    );

    // A panic while a receiver is taken leaves it usable.
    inject_panic_on_next_call();
    let mut notification = lc_notification::default();
    assert_status!(
        // SAFETY: `notification` is a live local.
        unsafe { lc_connection_recv(manager, connection, 0, &mut notification) },
        LC_ERR_PANIC
    );
    assert!(recv_json(manager, connection).contains(r#""seq":1"#));

    inject_panic_on_next_call();
    assert_status!(lc_manager_free(manager), LC_ERR_PANIC);
    assert_status!(lc_manager_free(manager), LC_OK);
}

/// The manager still does everything after a panic: register, authenticate, subscribe,
/// publish, receive, unsubscribe (no lock stayed poisoned, no guard stayed taken).
fn assert_usable(manager: lc_manager, messages: u32, seq: u64) {
    let other = connect(manager, "bob");
    let live = subscribe(
        manager,
        other,
        "SELECT id FROM chat.messages WHERE room = 3",
        &options(0),
    );
    let summary = publish_message_in(manager, messages, seq, 3);
    assert!(summary.enqueued >= 1, "{summary:?}");
    assert!(recv_json(manager, other).contains(&format!(r#""seq":{seq}"#)));
    assert_status!(lc_subscription_cancel(manager, live), LC_OK);
    assert_status!(lc_connection_unregister(manager, other), LC_OK);
}

#[test]
fn a_panic_with_the_notification_receiver_taken_releases_it() {
    let _serial = serial();
    let (manager, messages, connection) = subscribed_to_every_message();
    for (seq, timeout_ms) in [(1, 0), (2, 50)] {
        publish_message(manager, messages, seq);
        inject_panic_at(PanicPoint::ReceiverTaken);
        let mut notification = lc_notification::default();
        assert_status!(
            // SAFETY: `notification` is a live local.
            unsafe { lc_connection_recv(manager, connection, timeout_ms, &mut notification) },
            LC_ERR_PANIC
        );
        assert_eq!(
            notification,
            lc_notification::default(),
            "nothing handed out"
        );
        let message = last_error();
        assert!(
            message.starts_with("lc_connection_recv: panic caught at the C boundary"),
            "{message}"
        );
        assert!(message.contains("ReceiverTaken"), "{message}");
        // The guard was released on unwind: another thread is not told the receiver is
        // busy, and the panicked call consumed nothing.
        let other_thread = std::thread::spawn(move || recv_json(manager, connection));
        assert!(other_thread
            .join()
            .unwrap()
            .contains(&format!(r#""seq":{seq}"#)));
        // And this thread receives on it as before.
        assert_eq!(try_recv_status(manager, connection), LC_EMPTY);
    }
    // The consumer can arm the ready queue (which takes the same receiver).
    assert_status!(lc_connection_arm_ready(manager, connection), LC_OK);
    assert_usable(manager, messages, 100);
    assert_status!(lc_manager_free(manager), LC_OK);
}

/// A batch receive that panics with the receiver taken issues no handle, consumes nothing
/// and releases the receiver; one that panics part-way frees the handles it issued.
#[test]
fn a_panicking_batch_receive_issues_nothing_and_releases_the_receiver() {
    let _serial = serial();
    let (manager, messages, connection) = subscribed_to_every_message();
    publish_message(manager, messages, 1);
    let handles_before = live_handle_counts();
    inject_panic_at(PanicPoint::ReceiverTaken);
    let mut out = [lc_notification::default(); 4];
    let mut count = 7;
    assert_status!(
        // SAFETY: `out` holds 4 writable handles; `count` is a live local.
        unsafe {
            lc_connection_recv_batch(manager, connection, 0, out.as_mut_ptr(), 4, &mut count)
        },
        LC_ERR_PANIC
    );
    assert_eq!(out, [lc_notification::default(); 4], "nothing handed out");
    assert_eq!(live_handle_counts(), handles_before, "no handle issued");
    let message = last_error();
    assert!(
        message.starts_with("lc_connection_recv_batch: panic caught at the C boundary"),
        "{message}"
    );
    assert!(recv_json(manager, connection).contains(r#""seq":1"#));

    // A panic after two handles were issued: both are freed on the way out (their
    // notifications, taken from the channel, are lost with the panic), the array is left
    // as it was, and the rest stay queued.
    for seq in 2..6 {
        publish_message(manager, messages, seq);
    }
    inject_panic_at(PanicPoint::BatchHandlesIssued);
    assert_status!(
        // SAFETY: as above.
        unsafe {
            lc_connection_recv_batch(manager, connection, 0, out.as_mut_ptr(), 4, &mut count)
        },
        LC_ERR_PANIC
    );
    assert_eq!(
        live_handle_counts(),
        handles_before,
        "the issued handles were freed"
    );
    assert_eq!(out, [lc_notification::default(); 4], "nothing handed out");
    assert!(recv_json(manager, connection).contains(r#""seq":4"#));
    assert_status!(lc_manager_free(manager), LC_OK);
}

#[test]
fn a_panic_with_the_event_receiver_taken_releases_it() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let connection = connect(manager, "alice");
    // 31 s later alice is due a ping.
    assert_status!(
        // SAFETY: the report may be NULL.
        unsafe { lc_manager_check_connections(manager, 1_031_000, null_mut()) },
        LC_OK
    );
    inject_panic_at(PanicPoint::ReceiverTaken);
    let mut event = 0;
    assert_status!(
        // SAFETY: `event` is a live local.
        unsafe { lc_connection_recv_event(manager, connection, 0, &mut event) },
        LC_ERR_PANIC
    );
    assert_eq!(event, 0, "nothing handed out");
    assert!(last_error().contains("ReceiverTaken"), "{}", last_error());
    let other_thread = std::thread::spawn(move || recv_event(manager, connection, 0));
    assert_eq!(
        other_thread.join().unwrap(),
        Ok(lc_event::LC_EVENT_SEND_PING as u32),
        "the receiver is free and the event still queued"
    );
    assert_eq!(recv_event(manager, connection, 0), Err(LC_EMPTY));
    assert_usable(manager, messages, 1);
    assert_status!(lc_manager_free(manager), LC_OK);
}

#[test]
fn a_panic_after_the_changes_were_converted_publishes_nothing_and_poisons_nothing() {
    let _serial = serial();
    let (manager, messages, connection) = subscribed_to_every_message();
    let body = b"converted, then dropped by the unwind";
    let row = [int(1), int(1), text(body)];
    let insert = change(messages, lc_change_type::LC_CHANGE_INSERT, &row, None);

    inject_panic_at(PanicPoint::ChangesConverted);
    let mut summary = summary();
    assert_status!(
        // SAFETY: `insert` borrows `row`; `summary` is a live local.
        unsafe { lc_change_publish(manager, 1, &insert, &mut summary) },
        LC_ERR_PANIC
    );
    let message = last_error();
    assert!(
        message.starts_with("lc_change_publish: panic caught at the C boundary"),
        "{message}"
    );
    assert!(message.contains("ChangesConverted"), "{message}");
    assert_eq!(summary.matched, 0, "no summary written");
    assert_eq!(stats(manager).published, 0);
    assert_eq!(try_recv_status(manager, connection), LC_EMPTY);

    inject_panic_at(PanicPoint::ChangesConverted);
    let commit = [insert, insert];
    assert_status!(
        // SAFETY: `commit` borrows `row`; the summary may be NULL.
        unsafe { lc_commit_publish(manager, 1, commit.as_ptr(), 2, null_mut()) },
        LC_ERR_PANIC
    );
    assert!(
        last_error().starts_with("lc_commit_publish: panic caught"),
        "{}",
        last_error()
    );
    assert_eq!(stats(manager).published, 0);

    // The same publish goes through now, and is delivered once.
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_change_publish(manager, 1, &insert, &mut summary) },
        LC_OK
    );
    assert_eq!(summary.enqueued, 1);
    assert!(recv_json(manager, connection).contains(r#""seq":1"#));
    assert_eq!(try_recv_status(manager, connection), LC_EMPTY);
    assert_usable(manager, messages, 2);
    assert_status!(lc_manager_free(manager), LC_OK);
}

#[test]
fn a_panic_point_a_call_does_not_reach_stays_armed_for_this_thread_only() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let row = [int(1), int(1), nil()];
    let insert = change(messages, lc_change_type::LC_CHANGE_INSERT, &row, None);
    inject_panic_at(PanicPoint::ChangesConverted);
    // Another thread's publish is not affected.
    let other = std::thread::spawn(move || {
        let row = [int(1), int(1), nil()];
        let insert = change(messages, lc_change_type::LC_CHANGE_INSERT, &row, None);
        // SAFETY: `insert` borrows `row`, a live local.
        unsafe { lc_change_publish(manager, 1, &insert, null_mut()) }
    });
    assert_eq!(other.join().unwrap(), LC_OK);
    // Calls of this thread that do not reach the point are not affected either...
    assert_eq!(stats(manager).published, 1);
    // ...and the next one that does panics there, once.
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_change_publish(manager, 2, &insert, null_mut()) },
        LC_ERR_PANIC
    );
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_change_publish(manager, 2, &insert, null_mut()) },
        LC_OK
    );
    assert_status!(lc_manager_free(manager), LC_OK);
}
