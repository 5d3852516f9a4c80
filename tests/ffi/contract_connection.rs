//! Contract cases (connections, their receivers and events): each function called with NULL and invalid
//! arguments; see `contract.rs`, which lists every case and checks the list against the header.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::contract::*;
use crate::support::*;

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

pub(crate) fn case_lc_connection_register() {
    let f = Fixture::new();
    let mut id = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_connection_register(f.manager, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_connection_register(f.stale_manager, &mut id),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(
        stats(f.manager).connections,
        1,
        "refused registrations registered nothing"
    );
}

pub(crate) fn case_lc_connection_mark_auth_started() {
    let f = Fixture::new();
    assert_status!(
        lc_connection_mark_auth_started(f.manager, 999),
        LC_ERR_UNKNOWN_CONNECTION
    );
    assert_status!(
        lc_connection_mark_auth_started(f.stale_manager, f.connection),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_connection_mark_auth_started(f.manager, f.connection),
        LC_OK
    );
}

pub(crate) fn case_lc_connection_authenticate() {
    let f = Fixture::new();
    let (alice, bob) = (c("alice"), c("bob"));
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_connection_authenticate(f.manager, f.connection, null(), null()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_connection_authenticate(f.manager, f.connection, bad_utf8(), null()),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_connection_authenticate(f.manager, f.connection, alice.as_ptr(), bad_utf8()),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_connection_authenticate(f.manager, 999, alice.as_ptr(), null()),
            LC_ERR_UNKNOWN_CONNECTION
        );
        // User and role names: 1 to LC_MAX_NAME_LEN bytes.
        let (empty, long) = (c(""), c(&"u".repeat(LC_MAX_NAME_LEN + 1)));
        let other = f.anonymous();
        for bad in [&empty, &long] {
            assert_status!(
                lc_connection_authenticate(f.manager, other, bad.as_ptr(), null()),
                LC_ERR_INVALID_NAME
            );
            assert_status!(
                lc_connection_authenticate(f.manager, other, alice.as_ptr(), bad.as_ptr()),
                LC_ERR_INVALID_NAME
            );
        }
        assert_status!(
            lc_connection_authenticate(f.manager, other, bob.as_ptr(), null()),
            LC_OK
        );
        assert_status!(
            lc_connection_authenticate(f.manager, f.connection, bob.as_ptr(), null()),
            LC_ERR_ALREADY_AUTHENTICATED
        );
        assert_status!(
            lc_connection_authenticate(f.stale_manager, f.connection, alice.as_ptr(), null()),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_connection_authenticate(f.manager, f.connection, alice.as_ptr(), alice.as_ptr()),
            LC_OK
        );
    }
}

pub(crate) fn case_lc_connection_heartbeat() {
    let f = Fixture::new();
    assert_status!(
        lc_connection_heartbeat(f.manager, 999),
        LC_ERR_UNKNOWN_CONNECTION
    );
    assert_status!(
        lc_connection_heartbeat(f.stale_manager, f.connection),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_connection_heartbeat(f.manager, f.connection), LC_OK);
}

pub(crate) fn case_lc_connection_unregister() {
    let f = Fixture::new();
    let other = f.anonymous();
    assert_status!(
        lc_connection_unregister(f.manager, 999),
        LC_ERR_UNKNOWN_CONNECTION
    );
    assert_status!(
        lc_connection_unregister(f.stale_manager, other),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_connection_unregister(f.manager, other), LC_OK);
    assert_status!(
        lc_connection_unregister(f.manager, other),
        LC_ERR_UNKNOWN_CONNECTION
    );
}

pub(crate) fn case_lc_connection_get_info() {
    let f = Fixture::new();
    let mut info: lc_connection_info = full();
    let mut bad: lc_connection_info = sized(3);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_connection_get_info(f.manager, f.connection, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_connection_get_info(f.manager, f.connection, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_connection_get_info(f.manager, 999, &mut info),
            LC_ERR_UNKNOWN_CONNECTION
        );
        assert_status!(
            lc_connection_get_info(f.stale_manager, f.connection, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_connection_get_info(f.manager, f.connection, &mut info),
            LC_OK
        );
    }
    assert_eq!(
        info.flags,
        LC_CONNECTION_AUTH_STARTED | LC_CONNECTION_AUTHENTICATED
    );
    assert_eq!(info.subscription_count, 1);
}

/// Publishes commit `seq`: one insert of message `seq` in room 7.
fn publish_message(f: &Fixture, seq: u64) {
    let row = [int(seq as i64), int(7), nil()];
    publish(
        f.manager,
        seq,
        &[change(
            f.messages,
            lc_change_type::LC_CHANGE_INSERT,
            &row,
            None,
        )],
    );
}

pub(crate) fn case_lc_connection_recv() {
    let f = Fixture::new();
    publish_message(&f, 3);
    let mut out = lc_notification::default();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_connection_recv(f.manager, f.connection, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_connection_recv(f.manager, 999, 0, &mut out),
            LC_ERR_UNKNOWN_CONNECTION
        );
        assert_status!(
            lc_connection_recv(f.stale_manager, f.connection, 0, &mut out),
            LC_ERR_INVALID_HANDLE
        );
    }
    // The refused calls consumed nothing.
    let json = recv_json(f.manager, f.connection);
    assert!(json.contains(r#""seq":3"#), "{json}");
    assert_eq!(try_recv_status(f.manager, f.connection), LC_EMPTY);
}

pub(crate) fn case_lc_connection_recv_batch() {
    let f = Fixture::new();
    for seq in 3..6 {
        publish_message(&f, seq);
    }
    let mut out = [lc_notification::default(); 8];
    let mut count = 99;
    // SAFETY: `out` holds 8 writable handles and `count` is a live local; the refused
    // calls pass NULL where the case says so.
    unsafe {
        assert_status!(
            lc_connection_recv_batch(f.manager, f.connection, 0, out.as_mut_ptr(), 8, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_connection_recv_batch(f.manager, f.connection, 0, null_mut(), 8, &mut count),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_connection_recv_batch(f.manager, f.connection, 0, out.as_mut_ptr(), 0, &mut count),
            LC_ERR_INVALID_ARGUMENT
        );
        // Any status but LC_OK leaves the count 0, whichever lookup refused the call (a
        // manager freed during a call is LC_CLOSED from the connection's lookup).
        for manager in [f.manager, f.stale_manager] {
            count = 99;
            let status = lc_connection_recv_batch(manager, 999, 0, out.as_mut_ptr(), 8, &mut count);
            assert_ne!(status, LC_OK);
            assert_eq!(count, 0, "{status:?}");
        }
        assert_status!(
            lc_connection_recv_batch(f.manager, 999, 0, out.as_mut_ptr(), 8, &mut count),
            LC_ERR_UNKNOWN_CONNECTION
        );
        assert_status!(
            lc_connection_recv_batch(
                f.stale_manager,
                f.connection,
                0,
                out.as_mut_ptr(),
                8,
                &mut count
            ),
            LC_ERR_INVALID_HANDLE
        );
    }
    // The refused calls consumed nothing; a batch takes no more than its capacity, in the
    // order the notifications were queued.
    let batch = |timeout_ms, capacity| batch_seqs(f.manager, f.connection, timeout_ms, capacity);
    assert_eq!(batch(0, 2), (LC_OK, vec![3, 4]));
    assert_eq!(
        batch(0, 8),
        (LC_OK, vec![5]),
        "what was queued, without waiting for more"
    );
    assert_eq!(batch(0, 8), (LC_EMPTY, vec![]), "none left: count 0");
    assert_eq!(batch(10, 8), (LC_TIMEOUT, vec![]));

    // With no limit, the call waits for the first notification only, holding the receiver
    // (`lc_connection_recv` meanwhile is told it is busy), then returns what it has: a call
    // that waited for more would never return (a hang fails in `join_or_fail`).
    let (manager, connection) = (f.manager, f.connection);
    let waiter = std::thread::spawn(move || {
        // The probe below may hold the receiver for an instant: try again then.
        retry_while_busy(|| batch_seqs(manager, connection, LC_WAIT_FOREVER, 8))
    });
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while try_recv_status(f.manager, f.connection) != LC_ERR_RECEIVER_BUSY {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never took the receiver"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    publish_message(&f, 6);
    assert_eq!(join_or_fail(waiter, "the batch receive"), (LC_OK, vec![6]));
}

/// One `lc_connection_recv_batch` into an array of 8: its status and the SeqIds of what it
/// handed out (each freed), with a count of 0 checked on any status but `LC_OK`.
fn batch_seqs(
    manager: lc_manager,
    connection: u64,
    timeout_ms: u32,
    capacity: usize,
) -> (lc_status, Vec<u64>) {
    assert!(capacity <= 8);
    let mut out = [lc_notification::default(); 8];
    let mut count = 99;
    // SAFETY: `out` holds 8 writable handles (`capacity` is at most 8); `count` is a live
    // local.
    let status = unsafe {
        lc_connection_recv_batch(
            manager,
            connection,
            timeout_ms,
            out.as_mut_ptr(),
            capacity,
            &mut count,
        )
    };
    if status != LC_OK {
        if [LC_EMPTY, LC_TIMEOUT, LC_CLOSED].contains(&status) {
            assert_eq!(count, 0, "{status:?}");
        }
        return (status, Vec::new());
    }
    let seqs = out[..count]
        .iter()
        .map(|&notification| {
            let seq = notification_info(notification).seq;
            assert_eq!(lc_notification_free(notification), LC_OK);
            seq
        })
        .collect();
    (status, seqs)
}

pub(crate) fn case_lc_connection_recv_event() {
    let f = Fixture::new();
    let mut event = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_connection_recv_event(f.manager, f.connection, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_connection_recv_event(f.manager, 999, 0, &mut event),
            LC_ERR_UNKNOWN_CONNECTION
        );
        assert_status!(
            lc_connection_recv_event(f.stale_manager, f.connection, 0, &mut event),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_connection_recv_event(f.manager, f.connection, 0, &mut event),
            LC_EMPTY
        );
    }
}

pub(crate) fn case_lc_event_name() {
    let mut name: *const c_char = null();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_event_name(lc_event::LC_EVENT_SEND_PING as u32, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        for unknown in [0, 3, 32, u32::MAX] {
            assert_status!(lc_event_name(unknown, &mut name), LC_ERR_INVALID_ARGUMENT);
            assert!(name.is_null(), "a refused call writes nothing");
        }
        assert!(
            last_error().contains("not an lc_event code"),
            "{}",
            last_error()
        );
        assert_status!(
            lc_event_name(lc_event::LC_EVENT_HEARTBEAT_TIMEOUT as u32, &mut name),
            LC_OK
        );
        assert_eq!(
            CStr::from_ptr(name).to_str().unwrap(),
            "LC_EVENT_HEARTBEAT_TIMEOUT"
        );
    }
}

pub(crate) fn case_lc_event_json() {
    let mut json: *const c_char = null();
    let mut len = usize::MAX;
    let code = lc_event::LC_EVENT_SLOW_CONSUMER as u32;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_event_json(code, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_event_json(code, &mut json, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        for unknown in [0, 5, 17, u32::MAX] {
            assert_status!(
                lc_event_json(unknown, &mut json, &mut len),
                LC_ERR_INVALID_ARGUMENT
            );
        }
        assert!(
            json.is_null() && len == usize::MAX,
            "a refused call writes nothing"
        );
        assert_status!(lc_event_json(code, &mut json, &mut len), LC_OK);
        assert_eq!(*json.add(len), 0, "NUL-terminated");
        let text = std::slice::from_raw_parts(json.cast::<u8>(), len);
        assert_eq!(text, br#"{"type":"event","event":"slow_consumer"}"#);
        // Static: the same bytes, at the same address, on every call.
        let (mut again, mut again_len) = (null(), 0);
        assert_status!(lc_event_json(code, &mut again, &mut again_len), LC_OK);
        assert_eq!((again, again_len), (json, len));
    }
}

pub(crate) fn case_lc_connection_arm_ready() {
    let f = Fixture::new();
    let plain = manager_with(&config());
    let connection = {
        let mut id = 0;
        // SAFETY: see above.
        assert_status!(unsafe { lc_connection_register(plain, &mut id) }, LC_OK);
        id
    };
    assert_status!(
        lc_connection_arm_ready(plain, connection),
        LC_ERR_NOT_ENABLED
    );
    assert_status!(
        lc_connection_arm_ready(f.manager, 999),
        LC_ERR_UNKNOWN_CONNECTION
    );
    assert_status!(
        lc_connection_arm_ready(f.stale_manager, f.connection),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_connection_arm_ready(f.manager, f.connection), LC_OK);
    assert_eq!(lc_manager_free(plain), LC_OK);
}
