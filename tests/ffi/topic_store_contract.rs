//! The host-store, read and listing functions called with NULL and invalid arguments: each
//! refusal has its status, and a refused call has no effect. `contract.rs` runs these
//! cases with the others and checks that together they cover every header function.

use std::ffi::{c_char, CString};
use std::ptr::{null, null_mut};
use std::sync::Arc;

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;
use crate::topic_store::{callbacks, release, try_create, TestStore};

/// Invalid UTF-8, NUL-terminated.
const BAD_UTF8: &[u8] = b"\xff\xfeab\0";

fn bad_utf8() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

/// A manager whose topic "t" (1 partition, in a [`TestStore`]) holds one message and is fed
/// by a keyed, projected route; a freed manager; live and stale lists.
struct Fixture {
    manager: lc_manager,
    store: Arc<TestStore>,
    stale_manager: lc_manager,
    names: lc_topic_names,
    stale_names: lc_topic_names,
    routes: lc_topic_routes,
    stale_routes: lc_topic_routes,
    t: CString,
}

impl Fixture {
    fn new() -> Self {
        let (manager, _, _) = manager();
        let store = TestStore::new(1);
        assert_status!(try_create(manager, "t", 1, &callbacks(&store)), LC_OK);
        route_sql(
            manager,
            "t",
            "SELECT id, body FROM chat.messages WHERE room = 7",
            &route_options(LC_TOPIC_CHANGE_ALL, Some(c"id")),
        );
        publish_direct(manager, "t", 1, None, b"payload");
        let stale_manager = manager_with(&config());
        assert_eq!(lc_manager_free(stale_manager), LC_OK);
        let t = c("t");
        let mut lists = [lc_topic_names::default(); 2];
        let mut route_lists = [lc_topic_routes::default(); 2];
        // SAFETY: the string is live; the out-pointers are live locals.
        unsafe {
            for list in &mut lists {
                assert_status!(lc_topic_list(manager, list), LC_OK);
            }
            for list in &mut route_lists {
                assert_status!(lc_topic_route_list(manager, t.as_ptr(), list), LC_OK);
            }
        }
        assert_eq!(lc_topic_names_free(lists[1]), LC_OK);
        assert_eq!(lc_topic_routes_free(route_lists[1]), LC_OK);
        Self {
            manager,
            store,
            stale_manager,
            names: lists[0],
            stale_names: lists[1],
            routes: route_lists[0],
            stale_routes: route_lists[1],
            t,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        assert_eq!(lc_topic_names_free(self.names), LC_OK);
        assert_eq!(lc_topic_routes_free(self.routes), LC_OK);
        assert_eq!(lc_manager_free(self.manager), LC_OK);
        assert_eq!(self.store.freed(), 1);
    }
}

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

fn case_lc_topic_create_with_store() {
    let f = Fixture::new();
    let good = topic_config(1);
    let u = c("u");
    let refused = |name: *const c_char,
                   config: *const lc_topic_config,
                   edit: &dyn Fn(&mut lc_topic_store),
                   manager: lc_manager,
                   expected: lc_status| {
        let mut store = callbacks(&f.store);
        edit(&mut store);
        // SAFETY: see above.
        let status = unsafe { lc_topic_create_with_store(manager, name, config, &store) };
        assert_status!(status, expected);
        release(&store);
    };
    let keep = |_: &mut lc_topic_store| {};
    refused(null(), &good, &keep, f.manager, LC_ERR_NULL_ARGUMENT);
    refused(bad_utf8(), &good, &keep, f.manager, LC_ERR_INVALID_UTF8);
    refused(u.as_ptr(), null(), &keep, f.manager, LC_ERR_NULL_ARGUMENT);
    refused(
        u.as_ptr(),
        &good,
        &|s| s.struct_size = 0,
        f.manager,
        LC_ERR_STRUCT_SIZE,
    );
    refused(
        u.as_ptr(),
        &good,
        &|s| s.struct_size += 8,
        f.manager,
        LC_ERR_STRUCT_SIZE,
    );
    refused(
        u.as_ptr(),
        &good,
        &|s| s.reserved = 1,
        f.manager,
        LC_ERR_INVALID_ARGUMENT,
    );
    for missing in 0..6 {
        refused(
            u.as_ptr(),
            &good,
            &|s| match missing {
                0 => s.append = None,
                1 => s.read = None,
                2 => s.bounds = None,
                3 => s.commit_offset = None,
                4 => s.committed_offset = None,
                _ => s.delete_group = None,
            },
            f.manager,
            LC_ERR_NULL_ARGUMENT,
        );
    }
    let spaced = c("a b");
    refused(
        spaced.as_ptr(),
        &good,
        &keep,
        f.manager,
        LC_ERR_INVALID_NAME,
    );
    let long = c(&"t".repeat(599));
    refused(long.as_ptr(), &good, &keep, f.manager, LC_ERR_INVALID_NAME);
    refused(f.t.as_ptr(), &good, &keep, f.manager, LC_ERR_TOPIC_EXISTS);
    let mut no_partitions = good;
    no_partitions.partitions = 0;
    refused(
        u.as_ptr(),
        &no_partitions,
        &keep,
        f.manager,
        LC_ERR_OUT_OF_BOUNDS,
    );
    refused(
        u.as_ptr(),
        &good,
        &keep,
        f.stale_manager,
        LC_ERR_INVALID_HANDLE,
    );
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_create_with_store(f.manager, u.as_ptr(), &good, null()),
            LC_ERR_NULL_ARGUMENT
        );
    }
    // Nothing was created, nothing freed.
    assert_eq!(f.store.freed(), 0);
    assert_status!(try_create(f.manager, "u", 1, &callbacks(&f.store)), LC_OK);
    // SAFETY: see above.
    assert_status!(unsafe { lc_topic_delete(f.manager, u.as_ptr()) }, LC_OK);
    assert_eq!(f.store.freed(), 1);
    f.store.freed.store(0, std::sync::atomic::Ordering::SeqCst);
}

fn case_lc_topic_read_sink_push() {
    let f = Fixture::new();
    let blob = [1u8, 2, 3];
    // Outside any read: NULL and unknown sinks are refused without being touched.
    let mut bogus = 0u64;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_read_sink_push(null_mut(), 0, blob.as_ptr(), 3),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_read_sink_push(
                (&mut bogus as *mut u64).cast::<lc_topic_read_sink>(),
                0,
                blob.as_ptr(),
                3
            ),
            LC_ERR_INVALID_ARGUMENT
        );
    }
    // Inside a read callback: see `probe_pushes` (the partition holds 2 messages).
    publish_direct(f.manager, "t", 2, None, b"second");
    f.store.state.lock().unwrap().probe = true;
    let mut batch = lc_topic_batch::default();
    // SAFETY: see above.
    let status = unsafe { lc_topic_read(f.manager, f.t.as_ptr(), 0, 0, 2, &mut batch) };
    assert_status!(status, LC_ERR_TOPIC_STORE);
    assert!(
        last_error().contains("pushed a refused message"),
        "{}",
        last_error()
    );
    let mut state = f.store.state.lock().unwrap();
    state.probe = false;
    assert_eq!(
        state.probe_results,
        [
            LC_ERR_NULL_ARGUMENT,
            LC_ERR_NULL_ARGUMENT,
            LC_ERR_TOPIC_STORE,
            LC_ERR_INVALID_ARGUMENT,
            LC_OK,
            LC_ERR_INVALID_ARGUMENT,
            LC_ERR_TOPIC_STORE,
            LC_OK,
            LC_ERR_INVALID_ARGUMENT,
        ]
    );
    // The sink of a read that returned is stale.
    let stale = state.last_sink as *mut lc_topic_read_sink;
    drop(state);
    assert_status!(
        // SAFETY: see above.
        unsafe { lc_topic_read_sink_push(stale, 0, blob.as_ptr(), 3) },
        LC_ERR_INVALID_ARGUMENT
    );
}

fn case_lc_topic_read() {
    let f = Fixture::new();
    let nope = c("nope");
    let mut batch = lc_topic_batch::default();
    // SAFETY: see above.
    unsafe {
        let t = f.t.as_ptr();
        let m = f.manager;
        assert_status!(
            lc_topic_read(m, null(), 0, 0, 1, &mut batch),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_read(m, bad_utf8(), 0, 0, 1, &mut batch),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_topic_read(m, t, 0, 0, 1, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_read(m, nope.as_ptr(), 0, 0, 1, &mut batch),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_read(m, t, 1, 0, 1, &mut batch),
            LC_ERR_UNKNOWN_PARTITION
        );
        assert_status!(
            lc_topic_read(m, t, 0, 2, 1, &mut batch),
            LC_ERR_OFFSET_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_read(m, t, 0, 0, 0, &mut batch),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            lc_topic_read(m, t, 0, 0, usize::MAX, &mut batch),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            lc_topic_read(f.stale_manager, t, 0, 0, 1, &mut batch),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(
            batch,
            lc_topic_batch::default(),
            "refused reads wrote nothing"
        );
        assert_status!(lc_topic_read(m, t, 0, 0, 1, &mut batch), LC_OK);
    }
    assert_eq!(batch_info(batch).message_count, 1);
    assert_eq!(batch_message(batch, 0).payload_len, 7);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
}

fn case_lc_topic_list() {
    let f = Fixture::new();
    let mut list = lc_topic_names::default();
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_topic_list(f.manager, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_topic_list(f.stale_manager, &mut list),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_topic_list(f.manager, &mut list), LC_OK);
    }
    assert_eq!(lc_topic_names_free(list), LC_OK);
}

fn case_lc_topic_names_count() {
    let f = Fixture::new();
    let mut count = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_names_count(f.names, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_names_count(f.stale_names, &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_topic_names_count(lc_topic_names::default(), &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_topic_names_count(lc_topic_names { id: f.routes.id }, &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_topic_names_count(f.names, &mut count), LC_OK);
    }
    assert_eq!(count, 1);
}

fn case_lc_topic_names_get() {
    let f = Fixture::new();
    let (mut name, mut len) = (null(), 0);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_names_get(f.names, 0, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_names_get(f.names, 0, &mut name, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_names_get(f.names, 1, &mut name, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_names_get(f.stale_names, 0, &mut name, &mut len),
            LC_ERR_INVALID_HANDLE
        );
        assert!(name.is_null());
        assert_status!(lc_topic_names_get(f.names, 0, &mut name, &mut len), LC_OK);
        assert_eq!(std::ffi::CStr::from_ptr(name), c"t");
    }
    assert_eq!(len, 1);
}

fn case_lc_topic_names_free() {
    let f = Fixture::new();
    assert_status!(
        lc_topic_names_free(lc_topic_names::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_topic_names_free(f.stale_names), LC_ERR_INVALID_HANDLE);
    assert_status!(
        lc_topic_names_free(lc_topic_names { id: f.routes.id }),
        LC_ERR_INVALID_HANDLE
    );
}

fn case_lc_topic_route_list() {
    let f = Fixture::new();
    let nope = c("nope");
    let mut list = lc_topic_routes::default();
    // SAFETY: see above.
    unsafe {
        let m = f.manager;
        assert_status!(
            lc_topic_route_list(m, null(), &mut list),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_route_list(m, bad_utf8(), &mut list),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_topic_route_list(m, f.t.as_ptr(), null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_route_list(m, nope.as_ptr(), &mut list),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_route_list(f.stale_manager, f.t.as_ptr(), &mut list),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(list, lc_topic_routes::default());
        assert_status!(lc_topic_route_list(m, f.t.as_ptr(), &mut list), LC_OK);
    }
    assert_eq!(lc_topic_routes_free(list), LC_OK);
}

fn case_lc_topic_routes_count() {
    let f = Fixture::new();
    let mut count = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_routes_count(f.routes, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_routes_count(f.stale_routes, &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_topic_routes_count(lc_topic_routes { id: f.names.id }, &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_topic_routes_count(f.routes, &mut count), LC_OK);
    }
    assert_eq!(count, 1);
}

fn case_lc_topic_routes_get() {
    let f = Fixture::new();
    let mut info: lc_topic_route_info = sized_struct();
    let mut bad: lc_topic_route_info = sized_struct();
    bad.struct_size = 4;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_routes_get(f.routes, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_routes_get(f.routes, 0, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_routes_get(f.routes, 1, &mut info),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_routes_get(f.stale_routes, 0, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(info.id, 0);
        assert_status!(lc_topic_routes_get(f.routes, 0, &mut info), LC_OK);
    }
    assert_ne!(info.id, 0);
    assert_eq!(info.column_count, 2);
}

fn case_lc_topic_routes_column() {
    let f = Fixture::new();
    let mut name = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_routes_column(f.routes, 0, 0, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_routes_column(f.routes, 0, 0, &mut name, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_routes_column(f.routes, 1, 0, &mut name, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_routes_column(f.routes, 0, 2, &mut name, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_routes_column(f.stale_routes, 0, 0, &mut name, &mut len),
            LC_ERR_INVALID_HANDLE
        );
        assert!(name.is_null());
        assert_status!(
            lc_topic_routes_column(f.routes, 0, 0, &mut name, &mut len),
            LC_OK
        );
        assert_eq!(std::ffi::CStr::from_ptr(name), c"id");
        assert_eq!(len, 2);
    }
}

fn case_lc_topic_routes_free() {
    let f = Fixture::new();
    assert_status!(
        lc_topic_routes_free(lc_topic_routes::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_topic_routes_free(f.stale_routes), LC_ERR_INVALID_HANDLE);
    assert_status!(
        lc_topic_routes_free(lc_topic_routes { id: f.names.id }),
        LC_ERR_INVALID_HANDLE
    );
}

/// The cases of the store, read and listing functions, run by `contract.rs`.
pub const STORE_CASES: &[(&str, fn())] = &[
    (
        "lc_topic_create_with_store",
        case_lc_topic_create_with_store,
    ),
    ("lc_topic_read_sink_push", case_lc_topic_read_sink_push),
    ("lc_topic_read", case_lc_topic_read),
    ("lc_topic_list", case_lc_topic_list),
    ("lc_topic_names_count", case_lc_topic_names_count),
    ("lc_topic_names_get", case_lc_topic_names_get),
    ("lc_topic_names_free", case_lc_topic_names_free),
    ("lc_topic_route_list", case_lc_topic_route_list),
    ("lc_topic_routes_count", case_lc_topic_routes_count),
    ("lc_topic_routes_get", case_lc_topic_routes_get),
    ("lc_topic_routes_column", case_lc_topic_routes_column),
    ("lc_topic_routes_free", case_lc_topic_routes_free),
];
