//! Every function in include/livecore.h, called with NULL and invalid arguments: each
//! refusal has its status, and a refused call has no effect. The list of cases is checked
//! against the header's functions, so a new function without a case fails this test.

use std::collections::BTreeSet;
use std::ffi::{c_char, CStr};
use std::mem::{size_of, zeroed};
use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;
use crate::topic_contract::TOPIC_CASES;
use crate::topic_store_contract::STORE_CASES;

/// Invalid UTF-8, NUL-terminated.
const BAD_UTF8: &[u8] = b"\xff\xfeab\0";

fn bad_utf8() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

/// A manager with a table, an authenticated connection, a live subscription on
/// `chat.messages WHERE room = 7`, a received changes notification, a live subscription
/// result, and stale handles of each kind.
struct Fixture {
    manager: lc_manager,
    messages: u32,
    notes: u32,
    connection: u64,
    live: lc_live_query_id,
    notification: lc_notification,
    result: lc_subscription_result,
    stale_manager: lc_manager,
    stale_notification: lc_notification,
    stale_result: lc_subscription_result,
}

impl Fixture {
    fn new() -> Self {
        let (manager, messages, notes) = manager();
        let connection = connect(manager, "alice");
        let result = subscribe_result(
            manager,
            connection,
            "SELECT * FROM chat.messages WHERE room = 7",
            &options(0),
        );
        let live = result_info(result).live_query;
        let body = b"hi";
        let row = [int(1), int(7), text(body)];
        publish(
            manager,
            1,
            &[change(
                messages,
                lc_change_type::LC_CHANGE_INSERT,
                &row,
                None,
            )],
        );
        publish(
            manager,
            2,
            &[change(
                messages,
                lc_change_type::LC_CHANGE_INSERT,
                &row,
                None,
            )],
        );
        let notification = recv(manager, connection);
        let stale_notification = recv(manager, connection);
        assert_eq!(lc_notification_free(stale_notification), LC_OK);
        let stale_result = subscribe_result(
            manager,
            connection,
            "SELECT id FROM chat.messages",
            &options(0),
        );
        assert_eq!(
            lc_subscription_cancel(manager, result_info(stale_result).live_query),
            LC_OK
        );
        assert_eq!(lc_subscription_result_free(stale_result), LC_OK);
        let stale_manager = manager_with(&config());
        assert_eq!(lc_manager_free(stale_manager), LC_OK);
        Self {
            manager,
            messages,
            notes,
            connection,
            live,
            notification,
            result,
            stale_manager,
            stale_notification,
            stale_result,
        }
    }

    /// A second, not yet authenticated connection.
    fn anonymous(&self) -> u64 {
        let mut id = 0;
        assert_status!(
            // SAFETY: `id` is a live local.
            unsafe { lc_connection_register(self.manager, &mut id) },
            LC_OK
        );
        id
    }

    /// A subscription still in its initial load.
    fn gated(&self) -> lc_live_query_id {
        subscribe(
            self.manager,
            self.connection,
            "SELECT * FROM chat.messages",
            &options(LC_SUBSCRIBE_INITIAL_LOAD),
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        assert_eq!(lc_notification_free(self.notification), LC_OK);
        assert_eq!(lc_subscription_result_free(self.result), LC_OK);
        assert_eq!(lc_manager_free(self.manager), LC_OK);
    }
}

/// A sized struct, zeroed, with `struct_size` set to `size`.
fn sized<T>(size: usize) -> T {
    // SAFETY: every sized struct of the ABI is integers only, so all-zero is valid; its
    // first field is the u32 struct_size.
    unsafe {
        let mut value: T = zeroed();
        (&mut value as *mut T).cast::<u32>().write(size as u32);
        value
    }
}

fn full<T>() -> T {
    sized(size_of::<T>())
}

/// The status of `lc_change_publish` with one change.
fn publish_one(f: &Fixture, change: &lc_change) -> lc_status {
    // SAFETY: `change` borrows rows the caller keeps alive; the summary may be NULL.
    unsafe { lc_change_publish(f.manager, 10, change, null_mut()) }
}

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

fn case_lc_version() {
    let mut out: *const c_char = null();
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_version(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_version(&mut out), LC_OK);
        assert_eq!(
            CStr::from_ptr(out).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
    }
}

fn case_lc_abi_version() {
    let mut abi = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_abi_version(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_abi_version(&mut abi), LC_OK);
    }
    assert_eq!(abi, LIVECORE_ABI_VERSION);
}

fn case_lc_last_error() {
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_version(null_mut()), LC_ERR_NULL_ARGUMENT);
        let before = last_error();
        assert!(
            before.contains("lc_version") && before.contains("out_version"),
            "{before}"
        );
        assert_status!(lc_last_error(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_eq!(
            last_error(),
            before,
            "lc_last_error never changes the last error"
        );
    }
}

fn case_lc_status_name() {
    let mut name: *const c_char = null();
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_status_name(0, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_status_name(5, &mut name), LC_ERR_INVALID_ARGUMENT);
        assert_status!(lc_status_name(104, &mut name), LC_OK);
        assert_eq!(
            CStr::from_ptr(name).to_str().unwrap(),
            "LC_ERR_INVALID_HANDLE"
        );
    }
}

fn case_lc_config_init() {
    let mut small: lc_config = sized(8);
    let mut large: lc_config = sized(size_of::<lc_config>() + 8);
    let mut good: lc_config = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_config_init(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_config_init(&mut small), LC_ERR_STRUCT_SIZE);
        assert_status!(lc_config_init(&mut large), LC_ERR_STRUCT_SIZE);
        assert_eq!(small.max_connections, 0, "a refused call writes nothing");
        assert_status!(lc_config_init(&mut good), LC_OK);
    }
    assert_eq!(good.struct_size as usize, size_of::<lc_config>());
    assert_eq!(good.notification_channel_capacity, 1024);
}

fn case_lc_manager_new() {
    let mut out = lc_manager::default();
    let with = |change: &dyn Fn(&mut lc_config)| {
        let mut config = config();
        change(&mut config);
        config
    };
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_manager_new(null(), &mut out), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_manager_new(&config(), null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_manager_new(&with(&|c| c.struct_size = 0), &mut out),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_manager_new(&with(&|c| c.flags = 0x80), &mut out),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_manager_new(&with(&|c| c.reserved = 1), &mut out),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_manager_new(&with(&|c| c.slow_consumer_policy = 2), &mut out),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            lc_manager_new(&with(&|c| c.notification_channel_capacity = 0), &mut out),
            LC_ERR_INVALID_CONFIG
        );
        assert_status!(
            lc_manager_new(
                &with(&|c| c.heartbeat_timeout_ms = c.ping_interval_ms),
                &mut out
            ),
            LC_ERR_INVALID_CONFIG
        );
        let (empty, long) = (c(""), c(&"d".repeat(LC_MAX_NAME_LEN + 1)));
        for bad in [&empty, &long] {
            assert_status!(
                lc_manager_new(&with(&|c| c.default_namespace = bad.as_ptr()), &mut out),
                LC_ERR_INVALID_NAME
            );
        }
    }
    assert_eq!(out, lc_manager::default(), "a refused call writes nothing");
}

fn case_lc_manager_free() {
    let f = Fixture::new();
    assert_status!(
        lc_manager_free(lc_manager::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_manager_free(f.stale_manager), LC_ERR_INVALID_HANDLE);
    // A handle of another kind is not a manager.
    assert_status!(
        lc_manager_free(lc_manager {
            id: f.notification.id
        }),
        LC_ERR_INVALID_HANDLE
    );
    assert!(
        last_error().contains("lc_notification handle was passed"),
        "{}",
        last_error()
    );
    assert_status!(
        lc_manager_free(lc_manager { id: u64::MAX }),
        LC_ERR_INVALID_HANDLE
    );
}

fn case_lc_manager_get_clock() {
    let f = Fixture::new();
    let mut now = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_get_clock(f.manager, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_manager_get_clock(f.stale_manager, &mut now),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_manager_get_clock(f.manager, &mut now), LC_OK);
    }
    assert_eq!(now, 1_000_000);
}

fn case_lc_manager_set_clock() {
    let f = Fixture::new();
    assert_status!(
        lc_manager_set_clock(f.stale_manager, 5),
        LC_ERR_INVALID_HANDLE
    );
    let system = manager_with(&config());
    assert_status!(lc_manager_set_clock(system, 5), LC_ERR_NOT_ENABLED);
    assert_eq!(lc_manager_free(system), LC_OK);
    assert_status!(lc_manager_set_clock(f.manager, 5), LC_OK);
}

fn case_lc_manager_wait_ready() {
    let f = Fixture::new();
    let mut ids = [0u64; 4];
    let mut count = 99;
    let plain = manager_with(&config());
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_wait_ready(f.manager, 0, null_mut(), 4, &mut count),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_manager_wait_ready(f.manager, 0, ids.as_mut_ptr(), 4, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_manager_wait_ready(f.manager, 0, ids.as_mut_ptr(), 0, &mut count),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_manager_wait_ready(f.manager, 0, ids.as_mut_ptr(), usize::MAX, &mut count),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_manager_wait_ready(f.stale_manager, 0, ids.as_mut_ptr(), 4, &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_manager_wait_ready(plain, 0, ids.as_mut_ptr(), 4, &mut count),
            LC_ERR_NOT_ENABLED
        );
        assert_eq!(count, 99, "a refused call writes nothing");
    }
    assert_eq!(lc_manager_free(plain), LC_OK);
}

fn case_lc_manager_check_connections() {
    let f = Fixture::new();
    let mut bad: lc_check_report = sized(4);
    let mut report: lc_check_report = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_check_connections(f.stale_manager, LC_NOW, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_manager_check_connections(f.manager, LC_NOW, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_manager_check_connections(f.manager, LC_NOW, null_mut()),
            LC_OK
        );
        assert_status!(
            lc_manager_check_connections(f.manager, LC_NOW, &mut report),
            LC_OK
        );
    }
    assert_eq!(report.checked, 1);
}

fn case_lc_manager_shutdown() {
    let f = Fixture::new();
    let mut bad: lc_shutdown_report = sized(0);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_shutdown(f.stale_manager, 0, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_manager_shutdown(f.manager, 0, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
    }
    // Nothing was shut down by the refused calls.
    assert!(f.anonymous() > f.connection);
}

fn case_lc_manager_get_stats() {
    let f = Fixture::new();
    let mut out: lc_stats = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_get_stats(f.manager, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_manager_get_stats(f.stale_manager, &mut out),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(stats(f.manager).published, 2);
}

fn case_lc_table_register() {
    let f = Fixture::new();
    let (ns, name, col) = (c("ns"), c("t"), c("a"));
    let columns = [col.as_ptr()];
    let with_null = [col.as_ptr(), null()];
    let with_bad = [bad_utf8()];
    let mut key = 77;
    // SAFETY: see above.
    unsafe {
        let register = |ns: *const c_char,
                        name: *const c_char,
                        scope: u32,
                        columns: *const *const c_char,
                        count: usize,
                        key: *mut u32| {
            lc_table_register(f.manager, ns, name, scope, columns, count, key)
        };
        assert_status!(
            register(null(), name.as_ptr(), 0, columns.as_ptr(), 1, &mut key),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            register(ns.as_ptr(), null(), 0, columns.as_ptr(), 1, &mut key),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            register(ns.as_ptr(), name.as_ptr(), 0, null(), 1, &mut key),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                with_null.as_ptr(),
                2,
                &mut key
            ),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            register(bad_utf8(), name.as_ptr(), 0, columns.as_ptr(), 1, &mut key),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                with_bad.as_ptr(),
                1,
                &mut key
            ),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            register(ns.as_ptr(), name.as_ptr(), 9, columns.as_ptr(), 1, &mut key),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            register(ns.as_ptr(), name.as_ptr(), 0, columns.as_ptr(), 0, &mut key),
            LC_ERR_INVALID_SCHEMA
        );
        // Lying column counts: refused before a column pointer is read.
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                columns.as_ptr(),
                usize::MAX,
                &mut key
            ),
            LC_ERR_INVALID_SCHEMA
        );
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                columns.as_ptr(),
                LC_MAX_COLUMNS + 1,
                &mut key
            ),
            LC_ERR_INVALID_SCHEMA
        );
        assert_status!(
            lc_table_register(
                f.stale_manager,
                ns.as_ptr(),
                name.as_ptr(),
                0,
                null(),
                usize::MAX,
                &mut key
            ),
            LC_ERR_INVALID_HANDLE
        );
        // Names: 1 to LC_MAX_NAME_LEN bytes.
        let empty = c("");
        let long = c(&"n".repeat(LC_MAX_NAME_LEN + 1));
        let longest = c(&"n".repeat(LC_MAX_NAME_LEN));
        for bad in [&empty, &long] {
            assert_status!(
                register(
                    bad.as_ptr(),
                    name.as_ptr(),
                    0,
                    columns.as_ptr(),
                    1,
                    &mut key
                ),
                LC_ERR_INVALID_NAME
            );
            assert_status!(
                register(ns.as_ptr(), bad.as_ptr(), 0, columns.as_ptr(), 1, &mut key),
                LC_ERR_INVALID_NAME
            );
            let bad_column = [col.as_ptr(), bad.as_ptr()];
            assert_status!(
                register(
                    ns.as_ptr(),
                    name.as_ptr(),
                    0,
                    bad_column.as_ptr(),
                    2,
                    &mut key
                ),
                LC_ERR_INVALID_NAME
            );
        }
        assert_status!(
            lc_table_register(
                f.stale_manager,
                ns.as_ptr(),
                name.as_ptr(),
                0,
                columns.as_ptr(),
                1,
                &mut key
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(key, 77, "a refused call writes nothing");
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                columns.as_ptr(),
                1,
                null_mut()
            ),
            LC_OK
        );
        let longest_column = [longest.as_ptr()];
        assert_status!(
            register(
                longest.as_ptr(),
                longest.as_ptr(),
                0,
                longest_column.as_ptr(),
                1,
                null_mut()
            ),
            LC_OK
        );
    }
}

fn case_lc_connection_register() {
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

fn case_lc_connection_mark_auth_started() {
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

fn case_lc_connection_authenticate() {
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

fn case_lc_connection_heartbeat() {
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

fn case_lc_connection_unregister() {
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

fn case_lc_connection_get_info() {
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

fn case_lc_connection_recv() {
    let f = Fixture::new();
    let row = [int(2), int(7), nil()];
    publish(
        f.manager,
        3,
        &[change(
            f.messages,
            lc_change_type::LC_CHANGE_INSERT,
            &row,
            None,
        )],
    );
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

fn case_lc_connection_recv_event() {
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

fn case_lc_event_name() {
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

fn case_lc_event_json() {
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

fn case_lc_connection_arm_ready() {
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

fn case_lc_subscription_options_init() {
    let mut bad: lc_subscription_options = sized(4);
    let mut good: lc_subscription_options = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_options_init(null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(lc_subscription_options_init(&mut bad), LC_ERR_STRUCT_SIZE);
        assert_status!(lc_subscription_options_init(&mut good), LC_OK);
    }
    assert_eq!((good.flags, good.batch_size), (0, 1000));
}

fn case_lc_subscription_create_sql() {
    let f = Fixture::new();
    let anonymous = f.anonymous();
    let good = options(0);
    let mut result = lc_subscription_result::default();
    let sql = |text: &str| c(text);
    let all = sql("SELECT * FROM chat.messages");
    let with = |change: &dyn Fn(&mut lc_subscription_options)| {
        let mut options = options(0);
        change(&mut options);
        options
    };
    // SAFETY: see above.
    unsafe {
        let subscribe = |connection: u64,
                         sql: *const c_char,
                         options: *const lc_subscription_options,
                         out: *mut lc_subscription_result| {
            lc_subscription_create_sql(f.manager, connection, sql, options, out)
        };
        assert_status!(
            subscribe(f.connection, null(), &good, &mut result),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            subscribe(f.connection, all.as_ptr(), null(), &mut result),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            subscribe(f.connection, all.as_ptr(), &good, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            subscribe(f.connection, bad_utf8(), &good, &mut result),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            subscribe(
                f.connection,
                all.as_ptr(),
                &with(&|o| o.struct_size = 1),
                &mut result
            ),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            subscribe(
                f.connection,
                all.as_ptr(),
                &with(&|o| o.flags = 64),
                &mut result
            ),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            subscribe(
                f.connection,
                all.as_ptr(),
                &with(&|o| o.batch_size = 0),
                &mut result
            ),
            LC_ERR_INVALID_CONFIG
        );
        assert_status!(
            subscribe(
                f.connection,
                sql("SELEC * FROM chat.messages").as_ptr(),
                &good,
                &mut result
            ),
            LC_ERR_SQL
        );
        assert_status!(
            subscribe(
                f.connection,
                sql("SELECT nope FROM chat.messages").as_ptr(),
                &good,
                &mut result
            ),
            LC_ERR_UNKNOWN_COLUMN
        );
        assert_status!(
            subscribe(
                f.connection,
                sql("SELECT * FROM chat.nope").as_ptr(),
                &good,
                &mut result
            ),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            subscribe(anonymous, all.as_ptr(), &good, &mut result),
            LC_ERR_NOT_AUTHENTICATED
        );
        assert_status!(
            subscribe(999, all.as_ptr(), &good, &mut result),
            LC_ERR_UNKNOWN_CONNECTION
        );
        assert_status!(
            lc_subscription_create_sql(
                f.stale_manager,
                f.connection,
                all.as_ptr(),
                &good,
                &mut result
            ),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(
        result,
        lc_subscription_result::default(),
        "a refused call writes nothing"
    );
    assert_eq!(
        stats(f.manager).subscriptions,
        1,
        "refused subscribes subscribed nothing"
    );
}

fn case_lc_subscription_result_get_info() {
    let f = Fixture::new();
    let mut info: lc_subscription_info = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_result_get_info(f.result, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_result_get_info(f.stale_result, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_result_get_info(lc_subscription_result { id: f.manager.id }, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_subscription_result_get_info(f.result, &mut info), LC_OK);
    }
    assert_eq!(
        (info.live_query, info.column_count, info.flags),
        (f.live, 3, 0)
    );
}

fn case_lc_subscription_result_column() {
    let f = Fixture::new();
    let mut name: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_result_column(f.result, 0, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_result_column(f.result, 0, &mut name, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_result_column(f.result, 3, &mut name, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_subscription_result_column(f.stale_result, 0, &mut name, &mut len),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_result_column(f.result, 2, &mut name, &mut len),
            LC_OK
        );
        assert_eq!(std::slice::from_raw_parts(name.cast::<u8>(), len), b"body");
    }
}

fn case_lc_subscription_result_free() {
    let f = Fixture::new();
    assert_status!(
        lc_subscription_result_free(lc_subscription_result::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_subscription_result_free(f.stale_result),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_subscription_result_free(lc_subscription_result {
            id: f.notification.id
        }),
        LC_ERR_INVALID_HANDLE
    );
}

fn case_lc_subscription_cancel() {
    let f = Fixture::new();
    let unknown = lc_live_query_id {
        connection_id: f.connection,
        subscription_id: 999,
    };
    assert_status!(
        lc_subscription_cancel(f.manager, unknown),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
    assert_status!(
        lc_subscription_cancel(
            f.manager,
            lc_live_query_id {
                connection_id: 999,
                subscription_id: 1
            }
        ),
        LC_ERR_UNKNOWN_CONNECTION
    );
    assert_status!(
        lc_subscription_cancel(f.stale_manager, f.live),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_subscription_cancel(f.manager, f.live), LC_OK);
    assert_status!(
        lc_subscription_cancel(f.manager, f.live),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
}

fn case_lc_subscription_set_snapshot_boundary() {
    let f = Fixture::new();
    let unknown = lc_live_query_id {
        connection_id: f.connection,
        subscription_id: 999,
    };
    assert_status!(
        lc_subscription_set_snapshot_boundary(f.manager, unknown, 1),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
    assert_status!(
        lc_subscription_set_snapshot_boundary(f.manager, f.live, 1),
        LC_ERR_INVALID_STATE
    );
    assert_status!(
        lc_subscription_set_snapshot_boundary(f.stale_manager, f.live, 1),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_subscription_set_snapshot_boundary(f.manager, f.gated(), 1),
        LC_OK
    );
}

fn case_lc_subscription_push_snapshot_rows() {
    let f = Fixture::new();
    let gated = f.gated();
    let body = b"x";
    let good = [int(1), int(7), text(body)];
    let mut bad_tag = good;
    bad_tag[0].tag = 42;
    let mut bad_reserved = good;
    bad_reserved[2].reserved = 7;
    let mut progress: lc_snapshot_progress = full();
    // SAFETY: see above.
    unsafe {
        let push = |live: lc_live_query_id,
                    values: *const lc_value,
                    rows: usize,
                    columns: usize| {
            lc_subscription_push_snapshot_rows(f.manager, live, values, rows, columns, null_mut())
        };
        assert_status!(push(gated, null(), 1, 3), LC_ERR_NULL_ARGUMENT);
        // Counts past the documented limit are refused before anything is read.
        assert_status!(
            push(gated, good.as_ptr(), usize::MAX, 2),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            push(gated, good.as_ptr(), usize::MAX / 64, 1),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            push(gated, good.as_ptr(), LC_MAX_SNAPSHOT_PUSH_ROWS + 1, 3),
            LC_ERR_OUT_OF_BOUNDS
        );
        // Issue 12: rows of no columns, and a row width past any table's, never loop.
        assert_status!(push(gated, null(), usize::MAX, 0), LC_ERR_OUT_OF_BOUNDS);
        assert_status!(push(gated, null(), 3, 0), LC_ERR_INVALID_ARGUMENT);
        assert_status!(push(gated, good.as_ptr(), 3, 0), LC_ERR_INVALID_ARGUMENT);
        assert_status!(push(gated, null(), 1, usize::MAX), LC_ERR_NULL_ARGUMENT);
        assert_status!(push(gated, good.as_ptr(), 1, usize::MAX), LC_ERR_ROW_ARITY);
        assert_status!(
            push(gated, good.as_ptr(), 2, LC_MAX_COLUMNS + 1),
            LC_ERR_ROW_ARITY
        );
        let unknown = lc_live_query_id {
            connection_id: f.connection,
            subscription_id: 999,
        };
        assert_status!(
            push(unknown, good.as_ptr(), 1, 3),
            LC_ERR_UNKNOWN_SUBSCRIPTION
        );
        assert_status!(
            lc_subscription_push_snapshot_rows(
                f.stale_manager,
                gated,
                null(),
                usize::MAX,
                0,
                null_mut()
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(push(gated, bad_tag.as_ptr(), 1, 3), LC_ERR_INVALID_TAG);
        assert_status!(
            push(gated, bad_reserved.as_ptr(), 1, 3),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(push(gated, good.as_ptr(), 1, 2), LC_ERR_ROW_ARITY);
        assert_status!(push(f.live, good.as_ptr(), 1, 3), LC_ERR_INVALID_STATE);
        assert_status!(
            lc_subscription_push_snapshot_rows(
                f.stale_manager,
                gated,
                good.as_ptr(),
                1,
                3,
                null_mut()
            ),
            LC_ERR_INVALID_HANDLE
        );
        let mut bad: lc_snapshot_progress = sized(2);
        assert_status!(
            lc_subscription_push_snapshot_rows(f.manager, gated, good.as_ptr(), 1, 3, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_subscription_push_snapshot_rows(
                f.manager,
                gated,
                good.as_ptr(),
                1,
                3,
                &mut progress
            ),
            LC_OK
        );
    }
    assert_eq!(
        (progress.consumed, progress.batches, progress.rows),
        (1, 1, 1)
    );
}

fn case_lc_subscription_complete_initial_load() {
    let f = Fixture::new();
    let mut bad: lc_initial_load_report = sized(1);
    let mut report: lc_initial_load_report = full();
    let gated = f.gated();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_complete_initial_load(f.manager, f.live, null_mut()),
            LC_ERR_INVALID_STATE
        );
        assert_status!(
            lc_subscription_complete_initial_load(f.manager, gated, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_subscription_complete_initial_load(f.stale_manager, gated, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_complete_initial_load(f.manager, gated, &mut report),
            LC_OK
        );
        assert_status!(
            lc_subscription_complete_initial_load(f.manager, gated, &mut report),
            LC_ERR_INVALID_STATE
        );
    }
    assert_eq!(report.has_boundary, 0);
}

fn case_lc_subscription_replay_commit() {
    let f = Fixture::new();
    let resuming = subscribe(f.manager, f.connection, "SELECT * FROM chat.messages", &{
        let mut o = options(LC_SUBSCRIBE_RESUME);
        o.resume_from = 1;
        o
    });
    let row = [int(1), int(7), nil()];
    let good = [change(
        f.messages,
        lc_change_type::LC_CHANGE_INSERT,
        &row,
        None,
    )];
    let mut bad_type = good;
    bad_type[0].change_type = 3;
    let mut held = 7;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_replay_commit(f.manager, resuming, 2, null(), 1, &mut held),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_replay_commit(f.manager, resuming, 2, bad_type.as_ptr(), 1, &mut held),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            lc_subscription_replay_commit(f.manager, f.live, 2, good.as_ptr(), 1, &mut held),
            LC_ERR_INVALID_STATE
        );
        let unknown = lc_live_query_id {
            connection_id: f.connection,
            subscription_id: 999,
        };
        assert_status!(
            lc_subscription_replay_commit(f.manager, unknown, 2, good.as_ptr(), 1, &mut held),
            LC_ERR_UNKNOWN_SUBSCRIPTION
        );
        assert_status!(
            lc_subscription_replay_commit(
                f.stale_manager,
                resuming,
                2,
                good.as_ptr(),
                1,
                &mut held
            ),
            LC_ERR_INVALID_HANDLE
        );
        // Lying counts: the handle first, then the commit limit, before a change is read.
        assert_status!(
            lc_subscription_replay_commit(
                f.stale_manager,
                resuming,
                2,
                null(),
                usize::MAX,
                &mut held
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_replay_commit(
                f.manager,
                resuming,
                2,
                good.as_ptr(),
                usize::MAX,
                &mut held
            ),
            LC_ERR_COMMIT_TOO_LARGE
        );
        assert_status!(
            lc_subscription_replay_commit(
                f.manager,
                resuming,
                2,
                good.as_ptr(),
                LC_MAX_COMMIT_CHANGES + 1,
                &mut held
            ),
            LC_ERR_COMMIT_TOO_LARGE
        );
        let wide = [lc_change {
            row_len: usize::MAX,
            ..good[0]
        }];
        assert_status!(
            lc_subscription_replay_commit(f.manager, resuming, 2, wide.as_ptr(), 1, &mut held),
            LC_ERR_ROW_ARITY
        );
        assert_eq!(held, 7, "a refused call writes nothing");
        assert_status!(
            lc_subscription_replay_commit(f.manager, resuming, 2, good.as_ptr(), 1, &mut held),
            LC_OK
        );
    }
    assert_eq!(held, 1);
}

fn case_lc_subscription_resume_unavailable() {
    let f = Fixture::new();
    let unknown = lc_live_query_id {
        connection_id: f.connection,
        subscription_id: 999,
    };
    assert_status!(
        lc_subscription_resume_unavailable(f.manager, unknown),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
    assert_status!(
        lc_subscription_resume_unavailable(f.stale_manager, f.live),
        LC_ERR_INVALID_HANDLE
    );
}

fn case_lc_subscription_get_status() {
    let f = Fixture::new();
    let mut status: lc_subscription_status = full();
    let unknown = lc_live_query_id {
        connection_id: f.connection,
        subscription_id: 999,
    };
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_get_status(f.manager, f.live, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_get_status(f.manager, unknown, &mut status),
            LC_ERR_UNKNOWN_SUBSCRIPTION
        );
        assert_status!(
            lc_subscription_get_status(f.stale_manager, f.live, &mut status),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_get_status(f.manager, f.live, &mut status),
            LC_OK
        );
    }
    assert_eq!(status.phase, lc_subscription_phase::LC_PHASE_LIVE as u32);
    assert_eq!(
        (
            status.delivered,
            status.has_last_received_seq,
            status.last_received_seq
        ),
        (2, 1, 2)
    );
}

fn case_lc_change_publish() {
    let f = Fixture::new();
    let body = b"ok";
    let row = [int(5), int(7), text(body)];
    let insert = change(f.messages, lc_change_type::LC_CHANGE_INSERT, &row, None);
    let with = |edit: &dyn Fn(&mut lc_change)| {
        let mut change = insert;
        edit(&mut change);
        change
    };
    let bad_utf8_text = [int(5), int(7), text(b"\xc3\x28")];
    let null_text = [
        int(5),
        int(7),
        lc_value {
            data: null(),
            len: 3,
            ..text(b"")
        },
    ];
    let huge_text = [
        int(5),
        int(7),
        lc_value {
            len: usize::MAX,
            ..text(body)
        },
    ];
    let just_too_long = [
        int(5),
        int(7),
        lc_value {
            len: LC_MAX_VALUE_BYTES + 1,
            ..text(body)
        },
    ];
    let bad_bool = [
        int(5),
        lc_value {
            int_value: 2,
            ..boolean(true)
        },
        nil(),
    ];
    let bad_tag = [int(5), lc_value { tag: 6, ..int(7) }, nil()];
    let bad_reserved = [
        int(5),
        lc_value {
            reserved: 1,
            ..int(7)
        },
        nil(),
    ];
    let short = [int(5), int(7)];
    let notes_row = [int(1), nil()];
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_change_publish(f.manager, 10, null(), null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_change_publish(f.stale_manager, 10, &insert, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        let mut bad: lc_publish_summary = sized(0);
        assert_status!(
            lc_change_publish(f.manager, 10, &insert, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
    }
    assert_status!(
        publish_one(&f, &with(&|c| c.table = 999)),
        LC_ERR_UNKNOWN_TABLE
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.change_type = 3)),
        LC_ERR_INVALID_TAG
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = bad_tag.as_ptr())),
        LC_ERR_INVALID_TAG
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = bad_bool.as_ptr())),
        LC_ERR_INVALID_ARGUMENT
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = bad_reserved.as_ptr())),
        LC_ERR_INVALID_ARGUMENT
    );
    assert!(
        last_error().contains("changes[0].row[1]: `reserved` must be 0"),
        "{}",
        last_error()
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = bad_utf8_text.as_ptr())),
        LC_ERR_INVALID_UTF8
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = null_text.as_ptr())),
        LC_ERR_NULL_ARGUMENT
    );
    // A value length past LC_MAX_VALUE_BYTES is refused before a byte is read or copied.
    assert_status!(
        publish_one(&f, &with(&|c| c.row = huge_text.as_ptr())),
        LC_ERR_OUT_OF_BOUNDS
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = just_too_long.as_ptr())),
        LC_ERR_OUT_OF_BOUNDS
    );
    // Row lengths past any table's width are refused before a value is read.
    assert_status!(
        publish_one(&f, &with(&|c| c.row_len = usize::MAX)),
        LC_ERR_ROW_ARITY
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row_len = LC_MAX_COLUMNS + 1)),
        LC_ERR_ROW_ARITY
    );
    assert_status!(
        publish_one(
            &f,
            &with(&|c| {
                c.change_type = lc_change_type::LC_CHANGE_UPDATE as u32;
                c.old_row = row.as_ptr();
                c.old_row_len = usize::MAX / 2
            })
        ),
        LC_ERR_ROW_ARITY
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = null())),
        LC_ERR_NULL_ARGUMENT
    );
    assert_status!(
        publish_one(
            &f,
            &with(&|c| {
                c.row = short.as_ptr();
                c.row_len = 2
            })
        ),
        LC_ERR_ROW_ARITY
    );
    assert_status!(
        publish_one(
            &f,
            &with(&|c| c.change_type = lc_change_type::LC_CHANGE_UPDATE as u32)
        ),
        LC_ERR_MISSING_OLD_ROW
    );
    assert_status!(
        publish_one(
            &f,
            &with(&|c| {
                c.change_type = lc_change_type::LC_CHANGE_DELETE as u32;
                c.old_row = row.as_ptr();
                c.old_row_len = 3
            })
        ),
        LC_ERR_INVALID_ARGUMENT
    );
    let notes = change(f.notes, lc_change_type::LC_CHANGE_INSERT, &notes_row, None);
    assert_status!(publish_one(&f, &notes), LC_ERR_MISSING_OWNER);
    assert_status!(
        publish_one(
            &f,
            &lc_change {
                owner: bad_utf8(),
                ..notes
            }
        ),
        LC_ERR_INVALID_UTF8
    );
    // Nothing was published, nothing delivered.
    assert_eq!(stats(f.manager).published, 2);
    assert_eq!(try_recv_status(f.manager, f.connection), LC_EMPTY);
    assert_status!(publish_one(&f, &insert), LC_OK);
}

fn case_lc_commit_publish() {
    let f = Fixture::new();
    let row = [int(5), int(7), nil()];
    let good = change(f.messages, lc_change_type::LC_CHANGE_INSERT, &row, None);
    let commit = [good, lc_change { table: 999, ..good }];
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_commit_publish(f.manager, 10, null(), 2, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        // Counts past LC_MAX_COMMIT_CHANGES are refused before a change is read, and a
        // freed manager is reported whatever the count.
        assert_status!(
            lc_commit_publish(f.manager, 10, commit.as_ptr(), usize::MAX, null_mut()),
            LC_ERR_COMMIT_TOO_LARGE
        );
        assert_status!(
            lc_commit_publish(
                f.manager,
                10,
                commit.as_ptr(),
                LC_MAX_COMMIT_CHANGES + 1,
                null_mut()
            ),
            LC_ERR_COMMIT_TOO_LARGE
        );
        assert_status!(
            lc_commit_publish(f.stale_manager, 10, null(), usize::MAX, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        // A count within the limit but larger than memory can hold is still refused.
        assert_status!(
            lc_commit_publish(f.manager, 10, null(), LC_MAX_COMMIT_CHANGES, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_commit_publish(f.stale_manager, 10, commit.as_ptr(), 2, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        // One bad change refuses the whole commit.
        assert_status!(
            lc_commit_publish(f.manager, 10, commit.as_ptr(), 2, null_mut()),
            LC_ERR_UNKNOWN_TABLE
        );
        assert!(
            last_error().contains("changes[1]") || last_error().contains("999"),
            "{}",
            last_error()
        );
    }
    assert_eq!(try_recv_status(f.manager, f.connection), LC_EMPTY);
    // An empty commit is no error.
    assert_status!(
        // SAFETY: see above.
        unsafe { lc_commit_publish(f.manager, 11, null(), 0, null_mut()) },
        LC_OK
    );
}

fn case_lc_notification_get_info() {
    let f = Fixture::new();
    let mut info: lc_notification_info = full();
    let mut bad: lc_notification_info = sized(size_of::<lc_notification_info>() + 4);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_notification_get_info(f.notification, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_get_info(f.notification, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_notification_get_info(f.stale_notification, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_notification_get_info(lc_notification { id: f.result.id }, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_notification_get_info(lc_notification::default(), &mut info),
            LC_ERR_INVALID_HANDLE
        );
    }
}

fn case_lc_notification_json() {
    let f = Fixture::new();
    let mut json: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_notification_json(f.notification, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_json(f.notification, &mut json, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_json(f.stale_notification, &mut json, &mut len),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert!(json.is_null() && len == 0, "a refused call writes nothing");
}

fn case_lc_notification_column() {
    let f = Fixture::new();
    let mut name: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_notification_column(f.notification, 0, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_column(f.notification, 0, &mut name, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_column(f.notification, 3, &mut name, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_notification_column(f.stale_notification, 0, &mut name, &mut len),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_notification_column(f.notification, 1, &mut name, &mut len),
            LC_OK
        );
        assert_eq!(std::slice::from_raw_parts(name.cast::<u8>(), len), b"room");
    }
}

fn case_lc_notification_change() {
    let f = Fixture::new();
    // SAFETY: all-zero is a valid lc_change_info.
    let mut out: lc_change_info = unsafe { zeroed() };
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_notification_change(f.notification, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_change(f.notification, 1, &mut out),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_notification_change(f.stale_notification, 0, &mut out),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_notification_change(f.notification, 0, &mut out), LC_OK);
    }
    assert_eq!((out.change_type, out.has_old_row, out.position), (0, 0, 0));
}

fn case_lc_notification_value() {
    let f = Fixture::new();
    let mut value = nil();
    // SAFETY: see above.
    unsafe {
        let current = lc_row_version::LC_ROW_CURRENT as u32;
        assert_status!(
            lc_notification_value(f.notification, 0, current, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_value(f.notification, 0, 2, 0, &mut value),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            lc_notification_value(f.notification, 0, 1, 0, &mut value),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_notification_value(f.notification, 1, current, 0, &mut value),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_notification_value(f.notification, 0, current, 3, &mut value),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_notification_value(f.stale_notification, 0, current, 0, &mut value),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_notification_value(f.notification, 0, current, 2, &mut value),
            LC_OK
        );
        assert_eq!(value.tag, lc_value_type::LC_VALUE_TEXT as u32);
        assert_eq!(std::slice::from_raw_parts(value.data, value.len), b"hi");
    }
}

fn case_lc_notification_free() {
    let f = Fixture::new();
    assert_status!(
        lc_notification_free(lc_notification::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_notification_free(f.stale_notification),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_notification_free(lc_notification { id: f.manager.id }),
        LC_ERR_INVALID_HANDLE
    );
}

fn case_lc_table_drop() {
    let f = Fixture::new();
    let mut ended = 77;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_table_drop(f.manager, 999, &mut ended),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            lc_table_drop(f.stale_manager, f.messages, &mut ended),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(ended, 77, "a refused call writes nothing");
        assert_status!(lc_table_drop(f.manager, f.notes, null_mut()), LC_OK);
        assert_status!(
            lc_table_drop(f.manager, f.notes, &mut ended),
            LC_ERR_UNKNOWN_TABLE
        );
    }
}

fn case_lc_user_revoke() {
    let f = Fixture::new();
    let (alice, why) = (c("alice"), c("token expired"));
    let mut ended = 77;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_user_revoke(f.manager, null(), why.as_ptr(), &mut ended),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_user_revoke(f.manager, alice.as_ptr(), null(), &mut ended),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_user_revoke(f.manager, bad_utf8(), why.as_ptr(), &mut ended),
            LC_ERR_INVALID_UTF8
        );
        let (empty, long) = (c(""), c(&"u".repeat(LC_MAX_NAME_LEN + 1)));
        for bad in [&empty, &long] {
            assert_status!(
                lc_user_revoke(f.manager, bad.as_ptr(), why.as_ptr(), &mut ended),
                LC_ERR_INVALID_NAME
            );
        }
        assert_status!(
            lc_user_revoke(f.stale_manager, alice.as_ptr(), why.as_ptr(), &mut ended),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(ended, 77, "a refused call writes nothing");
        assert_eq!(
            stats(f.manager).subscriptions,
            1,
            "refused revocations ended nothing"
        );
    }
}

fn case_lc_table_revoke() {
    let f = Fixture::new();
    let why = c("withdrawn");
    let mut ended = 77;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_table_revoke(f.manager, f.messages, null(), &mut ended),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_table_revoke(f.manager, f.messages, bad_utf8(), &mut ended),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_table_revoke(f.manager, 999, why.as_ptr(), &mut ended),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            lc_table_revoke(f.stale_manager, f.messages, why.as_ptr(), &mut ended),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(ended, 77, "a refused call writes nothing");
        assert_status!(
            lc_table_revoke(f.manager, f.notes, why.as_ptr(), &mut ended),
            LC_OK
        );
    }
    assert_eq!(ended, 0);
}

/// A record list of the fixture's manager (one live query).
fn records_of(f: &Fixture) -> lc_records {
    let mut records = lc_records::default();
    assert_status!(
        // SAFETY: `records` is a live local.
        unsafe { lc_record_list(f.manager, &mut records) },
        LC_OK
    );
    records
}

fn stale_records(f: &Fixture) -> lc_records {
    let records = records_of(f);
    assert_eq!(lc_records_free(records), LC_OK);
    records
}

fn case_lc_record_list() {
    let f = Fixture::new();
    let mut records = lc_records::default();
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_record_list(f.manager, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_record_list(f.stale_manager, &mut records),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(
        records,
        lc_records::default(),
        "a refused call writes nothing"
    );
}

fn case_lc_records_count() {
    let f = Fixture::new();
    let records = records_of(&f);
    let mut count = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_records_count(records, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_records_count(stale_records(&f), &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_records_count(
                lc_records {
                    id: f.notification.id
                },
                &mut count
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_records_count(records, &mut count), LC_OK);
    }
    assert_eq!(count, 1);
    assert_eq!(lc_records_free(records), LC_OK);
}

fn case_lc_records_get() {
    let f = Fixture::new();
    let records = records_of(&f);
    let mut record: lc_live_query_record = full();
    let mut bad: lc_live_query_record = sized(4);
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_records_get(records, 0, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_records_get(records, 0, &mut bad), LC_ERR_STRUCT_SIZE);
        assert_status!(
            lc_records_get(records, 1, &mut record),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_records_get(stale_records(&f), 0, &mut record),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_records_get(records, 0, &mut record), LC_OK);
        let query = std::slice::from_raw_parts(record.query.cast::<u8>(), record.query_len);
        assert_eq!(query, b"SELECT * FROM chat.messages WHERE room = 7");
    }
    assert_eq!(record.live_query, f.live);
    assert_eq!(lc_records_free(records), LC_OK);
}

fn case_lc_records_free() {
    let f = Fixture::new();
    assert_status!(
        lc_records_free(lc_records::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_records_free(stale_records(&f)), LC_ERR_INVALID_HANDLE);
    assert_status!(
        lc_records_free(lc_records { id: f.manager.id }),
        LC_ERR_INVALID_HANDLE
    );
}

/// A failover report over the fixture's own records, with node 9 gone.
fn report_of(f: &Fixture) -> lc_failover_report {
    let records = records_of(f);
    let mut record: lc_live_query_record = full();
    // SAFETY: `record` is a live local; it borrows strings from `records`, freed after use.
    let report = unsafe {
        assert_status!(lc_records_get(records, 0, &mut record), LC_OK);
        let mut orphan = record;
        orphan.node_id = 9;
        let given = [record, orphan];
        let mut report = lc_failover_report::default();
        assert_status!(
            lc_failover_run(f.manager, given.as_ptr(), 2, null(), 0, 60_000, &mut report),
            LC_OK
        );
        report
    };
    assert_eq!(lc_records_free(records), LC_OK);
    report
}

fn case_lc_failover_run() {
    let f = Fixture::new();
    let records = records_of(&f);
    let mut record: lc_live_query_record = full();
    let mut report = lc_failover_report::default();
    let nodes = [1u64];
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_records_get(records, 0, &mut record), LC_OK);
        let run = |given: &[lc_live_query_record], report: *mut lc_failover_report| {
            lc_failover_run(
                f.manager,
                given.as_ptr(),
                given.len(),
                nodes.as_ptr(),
                1,
                1000,
                report,
            )
        };
        assert_status!(run(&[record], null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_failover_run(f.manager, null(), 1, null(), 0, 1000, &mut report),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_run(f.manager, &record, 1, null(), 1, 1000, &mut report),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    struct_size: 8,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            run(
                &[
                    record,
                    lc_live_query_record {
                        struct_size: 200,
                        ..record
                    }
                ],
                &mut report
            ),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    status: 3,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    options_flags: 8,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    reserved: 1,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("records[0].reserved must be 0"),
            "{}",
            last_error()
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    query: null(),
                    ..record
                }],
                &mut report
            ),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    query: bad_utf8(),
                    query_len: 2,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_failover_run(f.stale_manager, &record, 1, null(), 0, 1000, &mut report),
            LC_ERR_INVALID_HANDLE
        );
        // Lying counts: the handle first, then the limits, before anything is read.
        assert_status!(
            lc_failover_run(
                f.stale_manager,
                null(),
                usize::MAX,
                null(),
                usize::MAX,
                1000,
                &mut report
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_failover_run(
                f.manager,
                &record,
                LC_MAX_FAILOVER_RECORDS + 1,
                nodes.as_ptr(),
                1,
                1000,
                &mut report
            ),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            lc_failover_run(
                f.manager,
                &record,
                1,
                nodes.as_ptr(),
                LC_MAX_ACTIVE_NODES + 1,
                1000,
                &mut report
            ),
            LC_ERR_OUT_OF_BOUNDS
        );
        // Names in records: 1 to LC_MAX_NAME_LEN bytes, bounded before they are read.
        assert_status!(
            run(
                &[lc_live_query_record {
                    table_name_len: usize::MAX / 2,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_NAME
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    table_namespace_len: 0,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_NAME
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    user_id: record.table_name,
                    user_id_len: LC_MAX_NAME_LEN + 1,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_NAME
        );
    }
    assert_eq!(
        report,
        lc_failover_report::default(),
        "a refused call writes nothing"
    );
    assert_eq!(
        stats(f.manager).subscriptions,
        1,
        "refused runs removed nothing"
    );
    assert_eq!(lc_records_free(records), LC_OK);
}

fn case_lc_failover_report_get_info() {
    let f = Fixture::new();
    let report = report_of(&f);
    let mut info: lc_failover_info = full();
    let mut bad: lc_failover_info = sized(0);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_failover_report_get_info(report, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_get_info(report, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_failover_report_get_info(lc_failover_report { id: f.result.id }, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_failover_report_get_info(report, &mut info), LC_OK);
    }
    assert_eq!(
        (info.orphaned, info.stale, info.removed, info.failed),
        (1, 0, 0, 0)
    );
    assert_eq!(lc_failover_report_free(report), LC_OK);
}

fn case_lc_failover_report_record() {
    let f = Fixture::new();
    let report = report_of(&f);
    let mut record: lc_live_query_record = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_failover_report_record(report, 0, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_record(report, 2, 0, &mut record),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            lc_failover_report_record(report, 1, 0, &mut record),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(lc_failover_report_record(report, 0, 0, &mut record), LC_OK);
    }
    assert_eq!((record.node_id, record.live_query), (9, f.live));
    assert_eq!(lc_failover_report_free(report), LC_OK);
    assert_status!(
        // SAFETY: see above.
        unsafe { lc_failover_report_record(report, 0, 0, &mut record) },
        LC_ERR_INVALID_HANDLE
    );
}

fn case_lc_failover_report_removed() {
    let f = Fixture::new();
    let report = report_of(&f);
    let mut id = lc_live_query_id::default();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_failover_report_removed(report, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_removed(report, 0, &mut id),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_failover_report_removed(lc_failover_report::default(), 0, &mut id),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(lc_failover_report_free(report), LC_OK);
}

fn case_lc_failover_report_failed() {
    let f = Fixture::new();
    let report = report_of(&f);
    let mut id = lc_live_query_id::default();
    let mut reason: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_failover_report_failed(report, 0, null_mut(), &mut reason, &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_failed(report, 0, &mut id, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_failed(report, 0, &mut id, &mut reason, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_failed(report, 0, &mut id, &mut reason, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_failover_report_failed(
                lc_failover_report { id: f.manager.id },
                0,
                &mut id,
                &mut reason,
                &mut len
            ),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(lc_failover_report_free(report), LC_OK);
}

fn case_lc_failover_report_free() {
    let f = Fixture::new();
    let report = report_of(&f);
    assert_status!(
        lc_failover_report_free(lc_failover_report::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_failover_report_free(report), LC_OK);
    assert_status!(lc_failover_report_free(report), LC_ERR_INVALID_HANDLE);
}

/// Every function of the header, with its case.
const CASES: &[(&str, fn())] = &[
    ("lc_version", case_lc_version),
    ("lc_abi_version", case_lc_abi_version),
    ("lc_last_error", case_lc_last_error),
    ("lc_status_name", case_lc_status_name),
    ("lc_config_init", case_lc_config_init),
    ("lc_manager_new", case_lc_manager_new),
    ("lc_manager_free", case_lc_manager_free),
    ("lc_manager_get_clock", case_lc_manager_get_clock),
    ("lc_manager_set_clock", case_lc_manager_set_clock),
    ("lc_manager_wait_ready", case_lc_manager_wait_ready),
    (
        "lc_manager_check_connections",
        case_lc_manager_check_connections,
    ),
    ("lc_manager_shutdown", case_lc_manager_shutdown),
    ("lc_manager_get_stats", case_lc_manager_get_stats),
    ("lc_table_register", case_lc_table_register),
    ("lc_connection_register", case_lc_connection_register),
    (
        "lc_connection_mark_auth_started",
        case_lc_connection_mark_auth_started,
    ),
    (
        "lc_connection_authenticate",
        case_lc_connection_authenticate,
    ),
    ("lc_connection_heartbeat", case_lc_connection_heartbeat),
    ("lc_connection_unregister", case_lc_connection_unregister),
    ("lc_connection_get_info", case_lc_connection_get_info),
    ("lc_connection_recv", case_lc_connection_recv),
    ("lc_connection_recv_event", case_lc_connection_recv_event),
    ("lc_event_name", case_lc_event_name),
    ("lc_event_json", case_lc_event_json),
    ("lc_connection_arm_ready", case_lc_connection_arm_ready),
    (
        "lc_subscription_options_init",
        case_lc_subscription_options_init,
    ),
    (
        "lc_subscription_create_sql",
        case_lc_subscription_create_sql,
    ),
    (
        "lc_subscription_result_get_info",
        case_lc_subscription_result_get_info,
    ),
    (
        "lc_subscription_result_column",
        case_lc_subscription_result_column,
    ),
    (
        "lc_subscription_result_free",
        case_lc_subscription_result_free,
    ),
    ("lc_subscription_cancel", case_lc_subscription_cancel),
    (
        "lc_subscription_set_snapshot_boundary",
        case_lc_subscription_set_snapshot_boundary,
    ),
    (
        "lc_subscription_push_snapshot_rows",
        case_lc_subscription_push_snapshot_rows,
    ),
    (
        "lc_subscription_complete_initial_load",
        case_lc_subscription_complete_initial_load,
    ),
    (
        "lc_subscription_replay_commit",
        case_lc_subscription_replay_commit,
    ),
    (
        "lc_subscription_resume_unavailable",
        case_lc_subscription_resume_unavailable,
    ),
    (
        "lc_subscription_get_status",
        case_lc_subscription_get_status,
    ),
    ("lc_change_publish", case_lc_change_publish),
    ("lc_commit_publish", case_lc_commit_publish),
    ("lc_notification_get_info", case_lc_notification_get_info),
    ("lc_notification_json", case_lc_notification_json),
    ("lc_notification_column", case_lc_notification_column),
    ("lc_notification_change", case_lc_notification_change),
    ("lc_notification_value", case_lc_notification_value),
    ("lc_notification_free", case_lc_notification_free),
    ("lc_table_drop", case_lc_table_drop),
    ("lc_user_revoke", case_lc_user_revoke),
    ("lc_table_revoke", case_lc_table_revoke),
    ("lc_record_list", case_lc_record_list),
    ("lc_records_count", case_lc_records_count),
    ("lc_records_get", case_lc_records_get),
    ("lc_records_free", case_lc_records_free),
    ("lc_failover_run", case_lc_failover_run),
    (
        "lc_failover_report_get_info",
        case_lc_failover_report_get_info,
    ),
    ("lc_failover_report_record", case_lc_failover_report_record),
    (
        "lc_failover_report_removed",
        case_lc_failover_report_removed,
    ),
    ("lc_failover_report_failed", case_lc_failover_report_failed),
    ("lc_failover_report_free", case_lc_failover_report_free),
];

fn header() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/livecore.h")).unwrap()
}

/// The functions the header declares: every `lc_status lc_name(` line.
fn header_functions() -> BTreeSet<String> {
    header()
        .lines()
        .filter_map(|line| line.strip_prefix("lc_status "))
        .filter_map(|rest| rest.split_once('('))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

#[test]
fn every_header_function_has_a_case_and_every_case_passes() {
    let _serial = serial();
    let declared = header_functions();
    assert!(
        declared.len() >= 40,
        "parsed only {} functions from the header",
        declared.len()
    );
    let all_cases = || CASES.iter().chain(TOPIC_CASES).chain(STORE_CASES);
    let covered: BTreeSet<String> = all_cases().map(|(name, _)| name.to_string()).collect();
    let missing: Vec<_> = declared.difference(&covered).collect();
    let extra: Vec<_> = covered.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "header functions without a NULL/invalid-argument case: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "cases for functions the header does not declare: {extra:?}"
    );
    let before = live_handle_counts();
    for (name, case) in all_cases() {
        let outcome = std::panic::catch_unwind(case);
        assert!(outcome.is_ok(), "the case for {name} failed");
    }
    assert_eq!(live_handle_counts(), before, "the cases leaked handles");
}

#[test]
fn header_status_numbers_are_the_ones_the_library_returns() {
    let _serial = serial();
    // Each `LC_...= n,` entry of the lc_status enum resolves to a name through the library.
    let header = header();
    let body = header.split("enum lc_status").nth(1).unwrap();
    let body = &body[..body.find("};").unwrap()];
    let mut count = 0;
    for line in body
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("LC_"))
    {
        let (name, number) = line.trim_end_matches(',').split_once(" = ").unwrap();
        let mut resolved: *const c_char = null();
        // SAFETY: `resolved` is a live local; the name is a static string.
        unsafe {
            assert_eq!(
                lc_status_name(number.parse().unwrap(), &mut resolved),
                LC_OK,
                "{name}"
            );
            assert_eq!(CStr::from_ptr(resolved).to_str().unwrap(), name);
        }
        count += 1;
    }
    assert_eq!(count, 52);
}

/// Asserts that the listed fields fill the whole struct: no implicit padding, whose bytes a
/// caller could not be asked to zero.
macro_rules! assert_unpadded {
    ($ty:ident { $($field:ident),* $(,)? }) => {{
        // SAFETY: the input structs of the ABI hold integers, floats and raw pointers only,
        // so all-zero is a valid value.
        let value: $ty = unsafe { zeroed() };
        let fields = 0 $(+ std::mem::size_of_val(&value.$field))*;
        assert_eq!(fields, size_of::<$ty>(), "{} has implicit padding", stringify!($ty));
    }};
}

#[test]
fn input_structs_have_no_padding_besides_their_checked_reserved_fields() {
    // Explicit `reserved` fields (lc_value, lc_config, lc_live_query_record) are refused
    // when not zero (the lc_change_publish, lc_subscription_push_snapshot_rows, lc_manager_new, lc_failover_run
    // and lc_topic_publish cases); the other inputs have no gap to check.
    assert_unpadded!(lc_value {
        tag,
        reserved,
        int_value,
        float_value,
        data,
        len
    });
    assert_unpadded!(lc_change {
        table,
        change_type,
        row,
        row_len,
        old_row,
        old_row_len,
        owner
    });
    assert_unpadded!(lc_subscription_options {
        struct_size,
        flags,
        batch_size,
        resume_from
    });
    assert_unpadded!(lc_topic_config {
        struct_size,
        partitions,
        retention_max_messages,
        retention_max_bytes
    });
    assert_unpadded!(lc_topic_route_options {
        struct_size,
        change_types,
        key_column
    });
    assert_unpadded!(lc_topic_group_config {
        struct_size,
        reset,
        lease_ms
    });
    assert_unpadded!(lc_live_query_record {
        struct_size,
        status,
        live_query,
        node_id,
        table_namespace,
        table_namespace_len,
        table_name,
        table_name_len,
        user_id,
        user_id_len,
        query,
        query_len,
        options_flags,
        reserved,
        batch_size,
        resume_from,
        created_at_ms,
        last_update_ms,
        last_heartbeat_ms,
        changes_delivered
    });
}

#[test]
fn header_event_numbers_are_the_ones_the_library_names() {
    // Each `LC_EVENT_...= n,` entry of the lc_event enum names itself through
    // lc_event_name, and has JSON naming it in lower case.
    let header = header();
    let body = header.split("enum lc_event").nth(1).unwrap();
    let body = &body[..body.find("};").unwrap()];
    let mut count = 0;
    for line in body
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("LC_"))
    {
        let (name, number) = line.trim_end_matches(',').split_once(" = ").unwrap();
        let code: u32 = number.parse().unwrap();
        let (mut resolved, mut json, mut len): (*const c_char, *const c_char, usize) =
            (null(), null(), 0);
        // SAFETY: the outs are live locals; the results are static strings.
        unsafe {
            assert_eq!(lc_event_name(code, &mut resolved), LC_OK, "{name}");
            assert_eq!(CStr::from_ptr(resolved).to_str().unwrap(), name);
            assert_eq!(lc_event_json(code, &mut json, &mut len), LC_OK, "{name}");
            let json =
                std::str::from_utf8(std::slice::from_raw_parts(json.cast::<u8>(), len)).unwrap();
            let snake = name.strip_prefix("LC_EVENT_").unwrap().to_lowercase();
            assert_eq!(json, format!(r#"{{"type":"event","event":"{snake}"}}"#));
        }
        count += 1;
    }
    assert_eq!(count, 5);
}

#[test]
fn every_header_function_states_its_thread_safety() {
    let header = header();
    let mut checked = 0;
    let mut comment = String::new();
    for line in header.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("/**") {
            comment.clear();
        }
        if trimmed.starts_with('*') || trimmed.starts_with("/**") {
            comment.push_str(trimmed);
            comment.push('\n');
        }
        if let Some(rest) = line.strip_prefix("lc_status ") {
            let name = rest.split('(').next().unwrap();
            assert!(
                comment.contains("Thread safety:"),
                "the header comment of {name} does not state its thread safety"
            );
            checked += 1;
            comment.clear();
        }
    }
    assert_eq!(checked, header_functions().len());
}

#[test]
fn every_extern_function_runs_inside_the_panic_boundary() {
    // Each `extern "C" fn NAME` in src/ffi/ passes its body to `boundary("NAME", ..)`.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ffi");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = source.as_str();
        while let Some(at) = rest.find("extern \"C\" fn ") {
            rest = &rest[at + "extern \"C\" fn ".len()..];
            let name = &rest[..rest.find('(').unwrap()];
            let body_end = rest.find("\n}\n").unwrap();
            let body = &rest[..body_end];
            assert!(
                body.contains(&format!("boundary(\"{name}\"")),
                "{name} does not run its body inside boundary(\"{name}\", ..)"
            );
            names.insert(name.to_string());
        }
    }
    assert_eq!(
        names,
        header_functions(),
        "the extern functions are the header's functions"
    );
}
