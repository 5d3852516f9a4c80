//! The lc_topic_ functions called with NULL and invalid arguments: each refusal has its
//! status, and a refused call has no effect. `contract.rs` runs these cases with its own
//! and checks that together they cover every function of the header.

use std::ffi::{c_char, CString};
use std::mem::size_of;
use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

/// Invalid UTF-8, NUL-terminated.
const BAD_UTF8: &[u8] = b"\xff\xfeab\0";

fn bad_utf8() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

/// A sized struct, zeroed, with `struct_size` set to `size`.
fn sized<T>(size: usize) -> T {
    let mut value: T = sized_struct();
    // SAFETY: every sized struct of the ABI begins with its u32 struct_size.
    unsafe { (&mut value as *mut T).cast::<u32>().write(size as u32) };
    value
}

/// A manager with a table, topic "t" (2 partitions) fed by a route from the table
/// (`SELECT id, body FROM chat.messages WHERE room = 7`, keyed by id), consumer group "g",
/// an authenticated consumer that consumed one message (the batch is kept), another
/// authenticated connection, an anonymous one, and stale handles.
struct Topics {
    manager: lc_manager,
    messages: u32,
    worker: u64,
    other: u64,
    anonymous: u64,
    route: u64,
    batch: lc_topic_batch,
    /// The partition of the batch's message.
    partition: u32,
    stale_manager: lc_manager,
    stale_batch: lc_topic_batch,
    t: CString,
    g: CString,
}

impl Topics {
    fn new() -> Self {
        let (manager, messages, _) = manager();
        create_topic(manager, "t", &topic_config(2));
        let id = c("id");
        let route = route_sql(
            manager,
            "t",
            "SELECT id, body FROM chat.messages WHERE room = 7",
            &route_options(LC_TOPIC_CHANGE_ALL, Some(&id)),
        );
        create_group(
            manager,
            "t",
            "g",
            &group_config(lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST, 30_000),
        );
        let worker = connect(manager, "worker");
        let other = connect(manager, "other");
        let mut anonymous = 0;
        assert_status!(
            // SAFETY: `anonymous` is a live local.
            unsafe { lc_connection_register(manager, &mut anonymous) },
            LC_OK
        );
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
        let batch = consume(manager, worker, "t", "g", 10, 0);
        assert_eq!(batch_info(batch).message_count, 1);
        let partition = batch_message(batch, 0).partition;
        let stale_batch = consume(manager, worker, "t", "g", 10, 0);
        assert_eq!(lc_topic_batch_free(stale_batch), LC_OK);
        let stale_manager = manager_with(&config());
        assert_eq!(lc_manager_free(stale_manager), LC_OK);
        Self {
            manager,
            messages,
            worker,
            other,
            anonymous,
            route,
            batch,
            partition,
            stale_manager,
            stale_batch,
            t: c("t"),
            g: c("g"),
        }
    }

    fn appended(&self) -> u64 {
        topic_info(self.manager, "t").appended
    }
}

impl Drop for Topics {
    fn drop(&mut self) {
        assert_eq!(lc_topic_batch_free(self.batch), LC_OK);
        assert_eq!(lc_manager_free(self.manager), LC_OK);
    }
}

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

fn case_lc_topic_config_init() {
    let mut small: lc_topic_config = sized(4);
    let mut good: lc_topic_config = sized(size_of::<lc_topic_config>());
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_topic_config_init(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_topic_config_init(&mut small), LC_ERR_STRUCT_SIZE);
        assert_eq!(small.partitions, 0, "a refused call writes nothing");
        assert_status!(lc_topic_config_init(&mut good), LC_OK);
    }
    assert_eq!(good.partitions, 1);
    assert_eq!(good.retention_max_messages, 100_000);
}

fn case_lc_topic_create() {
    let f = Topics::new();
    let good = topic_config(1);
    let with = |edit: &dyn Fn(&mut lc_topic_config)| {
        let mut config = good;
        edit(&mut config);
        config
    };
    let (u, spaced) = (c("u"), c("a b"));
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_create(f.manager, null(), &good),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_create(f.manager, bad_utf8(), &good),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_topic_create(f.manager, u.as_ptr(), null()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_create(f.manager, u.as_ptr(), &with(&|c| c.struct_size = 0)),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_create(f.manager, u.as_ptr(), &with(&|c| c.partitions = 0)),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            lc_topic_create(f.manager, u.as_ptr(), &with(&|c| c.partitions = 100_000)),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            lc_topic_create(
                f.manager,
                u.as_ptr(),
                &with(&|c| c.retention_max_messages = 0)
            ),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            lc_topic_create(f.manager, spaced.as_ptr(), &good),
            LC_ERR_INVALID_NAME
        );
        // Issue 12: every bad name is LC_ERR_INVALID_NAME, a too long one included (the
        // default topic_max_name_len is 249 bytes).
        let (empty, long, longest) = (c(""), c(&"t".repeat(599)), c(&"t".repeat(249)));
        assert_status!(
            lc_topic_create(f.manager, empty.as_ptr(), &good),
            LC_ERR_INVALID_NAME
        );
        assert_status!(
            lc_topic_create(f.manager, long.as_ptr(), &good),
            LC_ERR_INVALID_NAME
        );
        assert_status!(
            lc_topic_create(f.manager, c(&"t".repeat(250)).as_ptr(), &good),
            LC_ERR_INVALID_NAME
        );
        assert_status!(lc_topic_create(f.manager, longest.as_ptr(), &good), LC_OK);
        assert_status!(lc_topic_delete(f.manager, longest.as_ptr()), LC_OK);
        assert_status!(
            lc_topic_create(f.manager, f.t.as_ptr(), &good),
            LC_ERR_TOPIC_EXISTS
        );
        assert_status!(
            lc_topic_create(f.stale_manager, u.as_ptr(), &good),
            LC_ERR_INVALID_HANDLE
        );
        let mut info: lc_topic_info = sized_struct();
        assert_status!(
            lc_topic_get_info(f.manager, u.as_ptr(), &mut info),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(lc_topic_create(f.manager, u.as_ptr(), &good), LC_OK);
    }
}

fn case_lc_topic_delete() {
    let f = Topics::new();
    let u = c("u");
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_topic_delete(f.manager, null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_topic_delete(f.manager, bad_utf8()), LC_ERR_INVALID_UTF8);
        assert_status!(lc_topic_delete(f.manager, u.as_ptr()), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_delete(f.stale_manager, f.t.as_ptr()),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(topic_info(f.manager, "t").partitions, 2);
}

fn case_lc_topic_get_info() {
    let f = Topics::new();
    let mut info: lc_topic_info = sized_struct();
    let mut bad: lc_topic_info = sized(size_of::<lc_topic_info>() + 8);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_get_info(f.manager, f.t.as_ptr(), null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_get_info(f.manager, f.t.as_ptr(), &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_get_info(f.manager, null(), &mut info),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_get_info(f.manager, bad_utf8(), &mut info),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_topic_get_info(f.manager, f.g.as_ptr(), &mut info),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_get_info(f.stale_manager, f.t.as_ptr(), &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(info.partitions, 0, "a refused call writes nothing");
    }
    let info = topic_info(f.manager, "t");
    assert_eq!(
        (
            info.partitions,
            info.routes,
            info.groups,
            info.appended,
            info.retained
        ),
        (2, 1, 1, 1, 1)
    );
}

fn case_lc_topic_get_partition_bounds() {
    let f = Topics::new();
    let (mut start, mut end) = (77, 77);
    // SAFETY: see above.
    unsafe {
        let bounds = |name: *const c_char, partition, start: *mut u64, end: *mut u64| {
            lc_topic_get_partition_bounds(f.manager, name, partition, start, end)
        };
        assert_status!(
            bounds(f.t.as_ptr(), 0, null_mut(), &mut end),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            bounds(f.t.as_ptr(), 0, &mut start, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            bounds(null(), 0, &mut start, &mut end),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            bounds(bad_utf8(), 0, &mut start, &mut end),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            bounds(f.t.as_ptr(), 2, &mut start, &mut end),
            LC_ERR_UNKNOWN_PARTITION
        );
        assert_status!(
            bounds(f.g.as_ptr(), 0, &mut start, &mut end),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_get_partition_bounds(f.stale_manager, f.t.as_ptr(), 0, &mut start, &mut end),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!((start, end), (77, 77), "a refused call writes nothing");
        assert_status!(
            bounds(f.t.as_ptr(), f.partition, &mut start, &mut end),
            LC_OK
        );
    }
    assert_eq!((start, end), (0, 1));
}

fn case_lc_topic_get_last_write_error() {
    let f = Topics::new();
    let mut buffer = [b'x' as c_char; 8];
    let mut len = 77;
    // SAFETY: see above.
    unsafe {
        let last = |name: *const c_char, buffer: *mut c_char, capacity, len: *mut usize| {
            lc_topic_get_last_write_error(f.manager, name, buffer, capacity, len)
        };
        assert_status!(
            last(f.t.as_ptr(), buffer.as_mut_ptr(), 8, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            last(f.t.as_ptr(), null_mut(), 8, &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            last(f.t.as_ptr(), buffer.as_mut_ptr(), usize::MAX, &mut len),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            last(null(), buffer.as_mut_ptr(), 8, &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            last(bad_utf8(), buffer.as_mut_ptr(), 8, &mut len),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            last(f.g.as_ptr(), buffer.as_mut_ptr(), 8, &mut len),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_get_last_write_error(f.stale_manager, f.t.as_ptr(), null_mut(), 0, &mut len),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(
            (len, buffer[0]),
            (77, b'x' as c_char),
            "a refused call writes nothing"
        );
        // No failed write: an empty message; NULL with capacity 0 asks for the length.
        assert_status!(last(f.t.as_ptr(), null_mut(), 0, &mut len), LC_OK);
        assert_eq!(len, 0);
        assert_status!(last(f.t.as_ptr(), buffer.as_mut_ptr(), 8, &mut len), LC_OK);
        assert_eq!((len, buffer[0]), (0, 0));
    }
}

fn case_lc_topic_publish() {
    let f = Topics::new();
    let payload = b"payload";
    let key = text(b"k");
    let bad_key = lc_value { tag: 9, ..int(1) };
    let bad_text_key = text(b"\xc3\x28");
    let bad_reserved_key = lc_value {
        reserved: 1,
        ..int(1)
    };
    let huge = vec![0u8; (1 << 20) + 1];
    let (mut partition, mut offset) = (77u32, 77u64);
    let (partition_out, offset_out) = (&mut partition as *mut u32, &mut offset as *mut u64);
    // SAFETY: see above.
    unsafe {
        let publish = |name: *const c_char,
                       key: *const lc_value,
                       partition_arg: u32,
                       payload: *const u8,
                       len: usize| {
            lc_topic_publish(
                f.manager,
                name,
                9,
                key,
                partition_arg,
                payload,
                len,
                partition_out,
                offset_out,
            )
        };
        let any = LC_TOPIC_ANY_PARTITION;
        assert_status!(
            publish(null(), &key, any, payload.as_ptr(), 7),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            publish(bad_utf8(), &key, any, payload.as_ptr(), 7),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            publish(f.t.as_ptr(), &key, any, null(), 7),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            publish(f.t.as_ptr(), &bad_reserved_key, any, payload.as_ptr(), 7),
            LC_ERR_INVALID_ARGUMENT
        );
        // A length past topic_max_message_bytes is refused before the payload is read
        // (the pointer has 7 bytes: valgrind would report a read of more).
        assert_status!(
            publish(f.t.as_ptr(), &key, any, payload.as_ptr(), usize::MAX),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            publish(f.t.as_ptr(), &key, any, payload.as_ptr(), (1 << 20) + 1),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            lc_topic_publish(
                f.stale_manager,
                f.t.as_ptr(),
                9,
                null(),
                any,
                null(),
                usize::MAX,
                null_mut(),
                null_mut()
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            publish(f.t.as_ptr(), &bad_key, any, payload.as_ptr(), 7),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            publish(f.t.as_ptr(), &bad_text_key, any, payload.as_ptr(), 7),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            publish(f.t.as_ptr(), &key, 2, payload.as_ptr(), 7),
            LC_ERR_UNKNOWN_PARTITION
        );
        assert_status!(
            publish(f.t.as_ptr(), &key, any, huge.as_ptr(), huge.len()),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            publish(f.g.as_ptr(), &key, any, payload.as_ptr(), 7),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_publish(
                f.stale_manager,
                f.t.as_ptr(),
                9,
                null(),
                any,
                null(),
                0,
                null_mut(),
                null_mut()
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(
            (partition, offset),
            (77, 77),
            "a refused call writes nothing"
        );
        assert_eq!(f.appended(), 1, "a refused publish appends nothing");
        // An empty payload without a key, to a chosen partition; the outs may be NULL.
        assert_status!(
            lc_topic_publish(
                f.manager,
                f.t.as_ptr(),
                9,
                null(),
                1,
                null(),
                0,
                null_mut(),
                null_mut()
            ),
            LC_OK
        );
        assert_status!(publish(f.t.as_ptr(), &key, any, payload.as_ptr(), 7), LC_OK);
    }
    assert_eq!(f.appended(), 3);
    assert!(partition < 2);
}

fn case_lc_topic_route_options_init() {
    let mut small: lc_topic_route_options = sized(4);
    let mut good: lc_topic_route_options = sized(size_of::<lc_topic_route_options>());
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_route_options_init(null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(lc_topic_route_options_init(&mut small), LC_ERR_STRUCT_SIZE);
        assert_status!(lc_topic_route_options_init(&mut good), LC_OK);
    }
    assert_eq!(good.change_types, LC_TOPIC_CHANGE_ALL);
    assert!(good.key_column.is_null());
}

fn case_lc_topic_route_add() {
    let f = Topics::new();
    let good = route_options(LC_TOPIC_CHANGE_INSERT, None);
    let with = |edit: &dyn Fn(&mut lc_topic_route_options)| {
        let mut options = good;
        edit(&mut options);
        options
    };
    let (room, broken, unknown_column, nope) = (
        c("room = 7"),
        c("room = = 7"),
        c("colour = 'red'"),
        c("nope"),
    );
    let mut id = 77;
    // SAFETY: see above.
    unsafe {
        let add = |topic: *const c_char,
                   table: u32,
                   filter: *const c_char,
                   options: *const lc_topic_route_options,
                   id: *mut u64| {
            lc_topic_route_add(f.manager, topic, table, filter, options, id)
        };
        let (t, m) = (f.t.as_ptr(), f.messages);
        assert_status!(
            add(null(), m, room.as_ptr(), &good, &mut id),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            add(bad_utf8(), m, room.as_ptr(), &good, &mut id),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(add(t, m, bad_utf8(), &good, &mut id), LC_ERR_INVALID_UTF8);
        assert_status!(
            add(t, m, room.as_ptr(), null(), &mut id),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            add(t, m, room.as_ptr(), &with(&|o| o.struct_size = 2), &mut id),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            add(t, m, room.as_ptr(), &with(&|o| o.change_types = 0), &mut id),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            add(t, m, room.as_ptr(), &with(&|o| o.change_types = 8), &mut id),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            add(
                t,
                m,
                room.as_ptr(),
                &with(&|o| o.key_column = bad_utf8()),
                &mut id
            ),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            add(
                t,
                m,
                room.as_ptr(),
                &with(&|o| o.key_column = nope.as_ptr()),
                &mut id
            ),
            LC_ERR_UNKNOWN_COLUMN
        );
        assert_status!(add(t, m, broken.as_ptr(), &good, &mut id), LC_ERR_SQL);
        assert_status!(
            add(t, m, unknown_column.as_ptr(), &good, &mut id),
            LC_ERR_UNKNOWN_COLUMN
        );
        assert_status!(
            add(t, 999, room.as_ptr(), &good, &mut id),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            add(nope.as_ptr(), m, room.as_ptr(), &good, &mut id),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_route_add(f.stale_manager, t, m, null(), &good, &mut id),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(id, 77, "a refused call writes nothing");
        assert_eq!(topic_info(f.manager, "t").routes, 1, "nor adds a route");
        // No filter and no id wanted.
        assert_status!(add(t, m, null(), &good, null_mut()), LC_OK);
        assert_status!(add(t, m, room.as_ptr(), &good, &mut id), LC_OK);
    }
    assert!(id > f.route);
    assert_eq!(topic_info(f.manager, "t").routes, 3);
}

fn case_lc_topic_route_add_sql() {
    let f = Topics::new();
    let good = route_options(LC_TOPIC_CHANGE_ALL, None);
    let (sql, broken, unknown_table, nope) = (
        c("SELECT id FROM chat.messages"),
        c("SELEC id FROM chat.messages"),
        c("SELECT id FROM chat.nothing"),
        c("nope"),
    );
    let mut id = 77u64;
    let id_out = &mut id as *mut u64;
    // SAFETY: see above.
    unsafe {
        let add =
            |topic: *const c_char, sql: *const c_char, options: *const lc_topic_route_options| {
                lc_topic_route_add_sql(f.manager, topic, sql, options, id_out)
            };
        let t = f.t.as_ptr();
        assert_status!(add(null(), sql.as_ptr(), &good), LC_ERR_NULL_ARGUMENT);
        assert_status!(add(t, null(), &good), LC_ERR_NULL_ARGUMENT);
        assert_status!(add(t, bad_utf8(), &good), LC_ERR_INVALID_UTF8);
        assert_status!(add(t, sql.as_ptr(), null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(add(t, broken.as_ptr(), &good), LC_ERR_SQL);
        assert_status!(add(t, unknown_table.as_ptr(), &good), LC_ERR_UNKNOWN_TABLE);
        assert_status!(
            add(nope.as_ptr(), sql.as_ptr(), &good),
            LC_ERR_UNKNOWN_TOPIC
        );
        let body_key = route_options(LC_TOPIC_CHANGE_ALL, Some(c"nope"));
        assert_status!(add(t, sql.as_ptr(), &body_key), LC_ERR_UNKNOWN_COLUMN);
        assert_status!(
            lc_topic_route_add_sql(f.stale_manager, t, sql.as_ptr(), &good, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(id, 77, "a refused call writes nothing");
        assert_status!(add(t, sql.as_ptr(), &good), LC_OK);
    }
    assert_eq!(topic_info(f.manager, "t").routes, 2);
}

fn case_lc_topic_route_remove() {
    let f = Topics::new();
    assert_status!(
        lc_topic_route_remove(f.stale_manager, f.route),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_topic_route_remove(f.manager, f.route + 100),
        LC_ERR_UNKNOWN_TOPIC_ROUTE
    );
    assert_eq!(topic_info(f.manager, "t").routes, 1);
    assert_status!(lc_topic_route_remove(f.manager, f.route), LC_OK);
    assert_status!(
        lc_topic_route_remove(f.manager, f.route),
        LC_ERR_UNKNOWN_TOPIC_ROUTE
    );
    assert_eq!(topic_info(f.manager, "t").routes, 0);
}

fn case_lc_topic_group_config_init() {
    let mut small: lc_topic_group_config = sized(4);
    let mut good: lc_topic_group_config = sized(size_of::<lc_topic_group_config>());
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_topic_group_config_init(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_topic_group_config_init(&mut small), LC_ERR_STRUCT_SIZE);
        assert_status!(lc_topic_group_config_init(&mut good), LC_OK);
    }
    assert_eq!(
        (good.reset, good.lease_ms),
        (
            lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST as u32,
            30_000
        )
    );
}

fn case_lc_topic_group_create() {
    let f = Topics::new();
    let good = group_config(lc_topic_reset_policy::LC_TOPIC_RESET_LATEST, 5_000);
    let with = |edit: &dyn Fn(&mut lc_topic_group_config)| {
        let mut config = good;
        edit(&mut config);
        config
    };
    let (h, spaced, nope) = (c("h"), c("a/b"), c("nope"));
    // SAFETY: see above.
    unsafe {
        let create =
            |topic: *const c_char, group: *const c_char, config: *const lc_topic_group_config| {
                lc_topic_group_create(f.manager, topic, group, config)
            };
        let t = f.t.as_ptr();
        assert_status!(create(null(), h.as_ptr(), &good), LC_ERR_NULL_ARGUMENT);
        assert_status!(create(t, null(), &good), LC_ERR_NULL_ARGUMENT);
        assert_status!(create(bad_utf8(), h.as_ptr(), &good), LC_ERR_INVALID_UTF8);
        assert_status!(create(t, bad_utf8(), &good), LC_ERR_INVALID_UTF8);
        assert_status!(create(t, h.as_ptr(), null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.struct_size = 1)),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.reset = 3)),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.lease_ms = 0)),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.lease_ms = u64::MAX)),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(create(t, spaced.as_ptr(), &good), LC_ERR_INVALID_NAME);
        assert_status!(create(t, c("").as_ptr(), &good), LC_ERR_INVALID_NAME);
        assert_status!(
            create(t, c(&"g".repeat(599)).as_ptr(), &good),
            LC_ERR_INVALID_NAME
        );
        assert_status!(create(t, f.g.as_ptr(), &good), LC_ERR_GROUP_EXISTS);
        assert_status!(
            create(nope.as_ptr(), h.as_ptr(), &good),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_group_create(f.stale_manager, t, h.as_ptr(), &good),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(
            topic_info(f.manager, "t").groups,
            1,
            "a refused call adds no group"
        );
        assert_status!(create(t, h.as_ptr(), &good), LC_OK);
    }
    assert_eq!(topic_info(f.manager, "t").groups, 2);
}

fn case_lc_topic_group_delete() {
    let f = Topics::new();
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let delete = |topic: *const c_char, group: *const c_char| {
            lc_topic_group_delete(f.manager, topic, group)
        };
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(delete(null(), g), LC_ERR_NULL_ARGUMENT);
        assert_status!(delete(t, null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(delete(bad_utf8(), g), LC_ERR_INVALID_UTF8);
        assert_status!(delete(t, bad_utf8()), LC_ERR_INVALID_UTF8);
        assert_status!(delete(t, nope.as_ptr()), LC_ERR_UNKNOWN_GROUP);
        assert_status!(delete(nope.as_ptr(), g), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_group_delete(f.stale_manager, t, g),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(topic_info(f.manager, "t").groups, 1);
        assert_status!(delete(t, g), LC_OK);
        assert_status!(delete(t, g), LC_ERR_UNKNOWN_GROUP);
    }
}

fn case_lc_topic_group_get_partition() {
    let f = Topics::new();
    let mut out: lc_topic_group_partition = sized_struct();
    let mut bad: lc_topic_group_partition = sized(8);
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let get = |topic: *const c_char,
                   group: *const c_char,
                   partition: u32,
                   out: *mut lc_topic_group_partition| {
            lc_topic_group_get_partition(f.manager, topic, group, partition, out)
        };
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(get(t, g, 0, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(t, g, 0, &mut bad), LC_ERR_STRUCT_SIZE);
        assert_status!(get(null(), g, 0, &mut out), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(t, null(), 0, &mut out), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(t, bad_utf8(), 0, &mut out), LC_ERR_INVALID_UTF8);
        assert_status!(get(t, g, 2, &mut out), LC_ERR_UNKNOWN_PARTITION);
        assert_status!(get(t, nope.as_ptr(), 0, &mut out), LC_ERR_UNKNOWN_GROUP);
        assert_status!(get(nope.as_ptr(), g, 0, &mut out), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_group_get_partition(f.stale_manager, t, g, 0, &mut out),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(out.flags, 0, "a refused call writes nothing");
    }
    let partition = group_partition(f.manager, "t", "g", f.partition);
    assert_eq!(
        partition.flags,
        LC_TOPIC_HAS_COMMITTED | LC_TOPIC_LEASED | LC_TOPIC_HAS_NEXT
    );
    assert_eq!(
        (
            partition.committed,
            partition.end,
            partition.lag,
            partition.holder,
            partition.delivered
        ),
        (0, 1, 1, f.worker, 1)
    );
}

fn case_lc_topic_group_get_stats() {
    let f = Topics::new();
    let mut out: lc_topic_group_stats = sized_struct();
    let mut bad: lc_topic_group_stats = sized(size_of::<lc_topic_group_stats>() + 1);
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let get = |topic: *const c_char, group: *const c_char, out: *mut lc_topic_group_stats| {
            lc_topic_group_get_stats(f.manager, topic, group, out)
        };
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(get(t, g, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(t, g, &mut bad), LC_ERR_STRUCT_SIZE);
        assert_status!(get(null(), g, &mut out), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(bad_utf8(), g, &mut out), LC_ERR_INVALID_UTF8);
        assert_status!(get(t, nope.as_ptr(), &mut out), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_group_get_stats(f.stale_manager, t, g, &mut out),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(group_stats(f.manager, "t", "g").members, 1);
}

fn case_lc_topic_consume() {
    let f = Topics::new();
    let mut batch = lc_topic_batch::default();
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let consume = |connection: u64,
                       topic: *const c_char,
                       group: *const c_char,
                       max: usize,
                       timeout: u32,
                       out: *mut lc_topic_batch| {
            lc_topic_consume(f.manager, connection, topic, group, max, timeout, out)
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(consume(w, t, g, 10, 0, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            consume(w, null(), g, 10, 0, &mut batch),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            consume(w, t, null(), 10, 0, &mut batch),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            consume(w, bad_utf8(), g, 10, 0, &mut batch),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            consume(w, t, bad_utf8(), 10, 0, &mut batch),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(consume(w, t, g, 0, 0, &mut batch), LC_ERR_OUT_OF_BOUNDS);
        assert_status!(
            consume(w, t, g, usize::MAX, 0, &mut batch),
            LC_ERR_OUT_OF_BOUNDS
        );
        // Longer than the group's 30 s lease, or forever.
        assert_status!(
            consume(w, t, g, 10, 30_001, &mut batch),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            consume(w, t, g, 10, LC_WAIT_FOREVER, &mut batch),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            consume(u64::MAX, t, g, 10, 0, &mut batch),
            LC_ERR_UNKNOWN_CONNECTION
        );
        assert_status!(
            consume(f.anonymous, t, g, 10, 0, &mut batch),
            LC_ERR_NOT_AUTHENTICATED
        );
        assert_status!(
            consume(w, nope.as_ptr(), g, 10, 0, &mut batch),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            consume(w, t, nope.as_ptr(), 10, 0, &mut batch),
            LC_ERR_UNKNOWN_GROUP
        );
        assert_status!(
            lc_topic_consume(f.stale_manager, w, t, g, 10, 0, &mut batch),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(
            batch,
            lc_topic_batch::default(),
            "a refused call writes nothing"
        );
    }
    // Nothing was handed out by the refused calls: the message is still the worker's,
    // delivered once.
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).delivered,
        1
    );
}

fn case_lc_topic_batch_get_info() {
    let f = Topics::new();
    let mut info: lc_topic_batch_info = sized_struct();
    let mut bad: lc_topic_batch_info = sized(4);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_get_info(f.batch, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_get_info(f.batch, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_batch_get_info(f.stale_batch, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_topic_batch_get_info(lc_topic_batch::default(), &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_topic_batch_get_info(lc_topic_batch { id: f.manager.id }, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(info.message_count, 0, "a refused call writes nothing");
    }
    let info = batch_info(f.batch);
    assert_eq!(
        (
            info.message_count,
            info.position_count,
            info.retention_skip_count
        ),
        (1, 2, 0)
    );
}

fn case_lc_topic_batch_message() {
    let f = Topics::new();
    let mut message: lc_topic_message = sized_struct();
    let mut bad: lc_topic_message = sized(size_of::<lc_topic_message>() + 8);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_message(f.batch, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_message(f.batch, 0, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_batch_message(f.batch, 1, &mut message),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_message(f.stale_batch, 0, &mut message),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(message.seq, 0, "a refused call writes nothing");
    }
    let message = batch_message(f.batch, 0);
    assert_eq!(
        (
            message.kind,
            message.offset,
            message.seq,
            message.timestamp_ms,
            message.has_key
        ),
        (
            lc_topic_message_kind::LC_TOPIC_MESSAGE_CHANGE as u32,
            0,
            1,
            1_000_000,
            1
        )
    );
    assert_eq!(
        (message.key.tag, message.key.int_value),
        (lc_value_type::LC_VALUE_INT as u32, 1)
    );
    assert!(message.payload.is_null());
}

fn case_lc_topic_batch_message_json() {
    let f = Topics::new();
    let mut json: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_message_json(f.batch, 0, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_message_json(f.batch, 0, &mut json, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_message_json(f.batch, 1, &mut json, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_message_json(f.stale_batch, 0, &mut json, &mut len),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert!(json.is_null() && len == 0, "a refused call writes nothing");
    assert!(message_json(f.batch, 0).ends_with(
        r#""key":1,"change":{"op":"insert","source_op":"insert","table":"chat.messages","row":{"id":1,"body":"hi"}}}"#
    ));
}

fn case_lc_topic_batch_row_json() {
    let f = Topics::new();
    let mut json: *const c_char = null();
    let mut len = 0;
    let current = lc_row_version::LC_ROW_CURRENT as u32;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_row_json(f.batch, 0, current, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_row_json(f.batch, 0, current, &mut json, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_row_json(f.batch, 0, 2, &mut json, &mut len),
            LC_ERR_INVALID_TAG
        );
        // An insert has no old row.
        assert_status!(
            lc_topic_batch_row_json(
                f.batch,
                0,
                lc_row_version::LC_ROW_OLD as u32,
                &mut json,
                &mut len
            ),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_row_json(f.batch, 1, current, &mut json, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_row_json(f.stale_batch, 0, current, &mut json, &mut len),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert!(json.is_null() && len == 0, "a refused call writes nothing");
    assert_eq!(
        row_json(f.batch, 0, lc_row_version::LC_ROW_CURRENT),
        r#"{"id":1,"body":"hi"}"#
    );
}

fn case_lc_topic_batch_position() {
    let f = Topics::new();
    let mut position: lc_topic_position = sized_struct();
    let mut bad: lc_topic_position = sized(0);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_position(f.batch, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_position(f.batch, 0, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_batch_position(f.batch, 2, &mut position),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_position(f.stale_batch, 0, &mut position),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(position.flags, 0, "a refused call writes nothing");
    }
    let position = batch_position(f.batch, f.partition as usize);
    assert_eq!(position.partition, f.partition);
    assert_eq!(position.flags, LC_TOPIC_HAS_COMMITTED | LC_TOPIC_HAS_NEXT);
    assert_eq!(
        (
            position.committed,
            position.next,
            position.end,
            position.lease_expires_at_ms
        ),
        (0, 1, 1, 1_030_000)
    );
}

fn case_lc_topic_batch_retention_skip() {
    let f = Topics::new();
    let mut skip = lc_topic_retention_skip {
        partition: 77,
        reserved: 0,
        from: 0,
        to: 0,
    };
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_retention_skip(f.batch, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_retention_skip(f.batch, 0, &mut skip),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_retention_skip(f.stale_batch, 0, &mut skip),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(skip.partition, 77, "a refused call writes nothing");
}

fn case_lc_topic_batch_free() {
    let f = Topics::new();
    assert_status!(
        lc_topic_batch_free(lc_topic_batch::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_topic_batch_free(f.stale_batch), LC_ERR_INVALID_HANDLE);
    assert_status!(
        lc_topic_batch_free(lc_topic_batch { id: f.manager.id }),
        LC_ERR_INVALID_HANDLE
    );
    assert!(
        last_error().contains("lc_manager handle was passed"),
        "{}",
        last_error()
    );
    // The batch survived the refused frees.
    assert_eq!(batch_info(f.batch).message_count, 1);
}

fn case_lc_topic_commit() {
    let f = Topics::new();
    let nope = c("nope");
    let p = f.partition;
    // SAFETY: see above.
    unsafe {
        let commit = |connection: u64,
                      topic: *const c_char,
                      group: *const c_char,
                      partition: u32,
                      offset: u64| {
            lc_topic_commit(f.manager, connection, topic, group, partition, offset)
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(commit(w, null(), g, p, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(commit(w, t, null(), p, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(commit(w, bad_utf8(), g, p, 1), LC_ERR_INVALID_UTF8);
        assert_status!(commit(w, t, bad_utf8(), p, 1), LC_ERR_INVALID_UTF8);
        assert_status!(commit(w, t, g, 2, 1), LC_ERR_UNKNOWN_PARTITION);
        assert_status!(commit(f.other, t, g, p, 1), LC_ERR_NOT_LEASE_HOLDER);
        assert_status!(commit(w, t, g, p, 2), LC_ERR_COMMIT_AHEAD);
        assert_status!(commit(u64::MAX, t, g, p, 1), LC_ERR_UNKNOWN_CONNECTION);
        assert_status!(commit(w, nope.as_ptr(), g, p, 1), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(commit(w, t, nope.as_ptr(), p, 1), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_commit(f.stale_manager, w, t, g, p, 1),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(group_partition(f.manager, "t", "g", p).committed, 0);
        assert_status!(commit(w, t, g, p, 1), LC_OK);
        assert_status!(commit(w, t, g, p, 1), LC_OK);
        assert_status!(commit(w, t, g, p, 0), LC_ERR_COMMIT_BEHIND);
    }
    assert_eq!(group_partition(f.manager, "t", "g", p).committed, 1);
}

fn case_lc_topic_batch_commit() {
    let f = Topics::new();
    assert_status!(
        lc_topic_batch_commit(f.manager, f.worker, f.stale_batch),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_topic_batch_commit(f.manager, f.worker, lc_topic_batch::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_topic_batch_commit(f.stale_manager, f.worker, f.batch),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_topic_batch_commit(f.manager, u64::MAX, f.batch),
        LC_ERR_UNKNOWN_CONNECTION
    );
    assert_status!(
        lc_topic_batch_commit(f.manager, f.other, f.batch),
        LC_ERR_NOT_LEASE_HOLDER
    );
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).committed,
        0
    );
    assert_status!(lc_topic_batch_commit(f.manager, f.worker, f.batch), LC_OK);
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).committed,
        1
    );
}

fn case_lc_topic_seek() {
    let f = Topics::new();
    let nope = c("nope");
    let p = f.partition;
    // SAFETY: see above.
    unsafe {
        let seek = |topic: *const c_char, group: *const c_char, partition: u32, offset: u64| {
            lc_topic_seek(f.manager, topic, group, partition, offset)
        };
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(seek(null(), g, p, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(seek(t, null(), p, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(seek(bad_utf8(), g, p, 1), LC_ERR_INVALID_UTF8);
        assert_status!(seek(t, bad_utf8(), p, 1), LC_ERR_INVALID_UTF8);
        assert_status!(seek(t, g, p, 2), LC_ERR_OFFSET_OUT_OF_RANGE);
        assert_status!(seek(t, g, 2, 0), LC_ERR_UNKNOWN_PARTITION);
        assert_status!(seek(t, nope.as_ptr(), p, 0), LC_ERR_UNKNOWN_GROUP);
        assert_status!(seek(nope.as_ptr(), g, p, 0), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_seek(f.stale_manager, t, g, p, 0),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(group_partition(f.manager, "t", "g", p).committed, 0);
        // Seeking to the end skips the message; the lease ends.
        assert_status!(seek(t, g, p, 1), LC_OK);
    }
    let partition = group_partition(f.manager, "t", "g", p);
    assert_eq!(
        (partition.committed, partition.flags & LC_TOPIC_LEASED),
        (1, 0)
    );
}

fn case_lc_topic_group_leave() {
    let f = Topics::new();
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let leave = |connection: u64, topic: *const c_char, group: *const c_char| {
            lc_topic_group_leave(f.manager, connection, topic, group)
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(leave(w, null(), g), LC_ERR_NULL_ARGUMENT);
        assert_status!(leave(w, t, null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(leave(w, bad_utf8(), g), LC_ERR_INVALID_UTF8);
        assert_status!(leave(w, t, bad_utf8()), LC_ERR_INVALID_UTF8);
        assert_status!(leave(u64::MAX, t, g), LC_ERR_UNKNOWN_CONNECTION);
        assert_status!(leave(w, t, nope.as_ptr()), LC_ERR_UNKNOWN_GROUP);
        assert_status!(leave(w, nope.as_ptr(), g), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_group_leave(f.stale_manager, w, t, g),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(group_stats(f.manager, "t", "g").members, 1);
        assert_status!(leave(w, t, g), LC_OK);
    }
    assert_eq!(group_stats(f.manager, "t", "g").members, 0);
    // The lease ended with the membership.
    let partition = group_partition(f.manager, "t", "g", f.partition);
    assert_eq!(partition.flags & LC_TOPIC_LEASED, 0);
}

fn case_lc_topic_nack() {
    let f = Topics::new();
    let nope = c("nope");
    let p = f.partition;
    // SAFETY: see above.
    unsafe {
        let nack = |connection: u64,
                    topic: *const c_char,
                    group: *const c_char,
                    partition: u32,
                    offset: u64,
                    delay_ms: u32| {
            lc_topic_nack(
                f.manager, connection, topic, group, partition, offset, delay_ms,
            )
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(nack(w, null(), g, p, 0, 0), LC_ERR_NULL_ARGUMENT);
        assert_status!(nack(w, t, null(), p, 0, 0), LC_ERR_NULL_ARGUMENT);
        assert_status!(nack(w, bad_utf8(), g, p, 0, 0), LC_ERR_INVALID_UTF8);
        assert_status!(nack(w, t, bad_utf8(), p, 0, 0), LC_ERR_INVALID_UTF8);
        assert_status!(nack(w, t, g, 2, 0, 0), LC_ERR_UNKNOWN_PARTITION);
        assert_status!(nack(f.other, t, g, p, 0, 0), LC_ERR_NOT_LEASE_HOLDER);
        assert_status!(nack(w, t, g, p, 1, 0), LC_ERR_COMMIT_AHEAD);
        assert_status!(nack(w, t, g, p, 0, 30_001), LC_ERR_OUT_OF_BOUNDS);
        assert_status!(nack(u64::MAX, t, g, p, 0, 0), LC_ERR_UNKNOWN_CONNECTION);
        assert_status!(nack(w, nope.as_ptr(), g, p, 0, 0), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(nack(w, t, nope.as_ptr(), p, 0, 0), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_nack(f.stale_manager, w, t, g, p, 0, 0),
            LC_ERR_INVALID_HANDLE
        );
    }
    // None of the refusals rewound the lease: the message is not handed out again.
    let nothing = consume(f.manager, f.worker, "t", "g", 10, 0);
    assert_eq!(batch_info(nothing).message_count, 0);
    assert_eq!(lc_topic_batch_free(nothing), LC_OK);
    // SAFETY: see above.
    unsafe {
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(lc_topic_nack(f.manager, f.worker, t, g, p, 0, 0), LC_OK);
    }
    // The nacked message is handed out again.
    let again = consume(f.manager, f.worker, "t", "g", 10, 0);
    assert_eq!(batch_info(again).message_count, 1);
    assert_eq!(batch_message(again, 0).offset, 0);
    assert_eq!(lc_topic_batch_free(again), LC_OK);
}

fn case_lc_topic_extend_leases() {
    let f = Topics::new();
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let mut extended = u32::MAX;
        let out: *mut u32 = &mut extended;
        let extend = |connection: u64, topic: *const c_char, group: *const c_char, out| {
            lc_topic_extend_leases(f.manager, connection, topic, group, out)
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(extend(w, null(), g, out), LC_ERR_NULL_ARGUMENT);
        assert_status!(extend(w, t, null(), out), LC_ERR_NULL_ARGUMENT);
        assert_status!(extend(w, t, g, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(extend(w, bad_utf8(), g, out), LC_ERR_INVALID_UTF8);
        assert_status!(extend(w, t, bad_utf8(), out), LC_ERR_INVALID_UTF8);
        assert_status!(extend(u64::MAX, t, g, out), LC_ERR_UNKNOWN_CONNECTION);
        assert_status!(extend(w, nope.as_ptr(), g, out), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(extend(w, t, nope.as_ptr(), out), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_extend_leases(f.stale_manager, w, t, g, out),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(extended, u32::MAX, "a refused call writes nothing");
        // The worker leases both partitions of "t" (it is the only member).
        assert_status!(extend(w, t, g, out), LC_OK);
        assert_eq!(extended, 2);
        assert_status!(extend(f.other, t, g, out), LC_OK);
        assert_eq!(extended, 0);
    }
}

fn case_lc_topic_group_set_dead_letter() {
    let f = Topics::new();
    create_topic(f.manager, "dlq", &topic_config(1));
    let (nope, dlq) = (c("nope"), c("dlq"));
    // SAFETY: see above.
    unsafe {
        let set = |topic: *const c_char, group: *const c_char, dead: *const c_char, max: u32| {
            lc_topic_group_set_dead_letter(f.manager, topic, group, dead, max)
        };
        let (t, g, d) = (f.t.as_ptr(), f.g.as_ptr(), dlq.as_ptr());
        assert_status!(set(null(), g, d, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(set(t, null(), d, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(set(t, g, null(), 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(set(bad_utf8(), g, d, 1), LC_ERR_INVALID_UTF8);
        assert_status!(set(t, bad_utf8(), d, 1), LC_ERR_INVALID_UTF8);
        assert_status!(set(t, g, bad_utf8(), 1), LC_ERR_INVALID_UTF8);
        assert_status!(set(t, g, d, 0), LC_ERR_OUT_OF_BOUNDS);
        assert_status!(set(t, g, nope.as_ptr(), 1), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(set(t, g, t, 1), LC_ERR_INVALID_CONFIG);
        assert_status!(set(nope.as_ptr(), g, d, 1), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(set(t, nope.as_ptr(), d, 1), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_group_set_dead_letter(f.stale_manager, t, g, d, 1),
            LC_ERR_INVALID_HANDLE
        );
        // None of the refusals set a dead-letter topic: a nack hands the message out again.
        let p = f.partition;
        assert_status!(lc_topic_nack(f.manager, f.worker, t, g, p, 0, 0), LC_OK);
        assert_eq!(topic_info(f.manager, "dlq").appended, 0);
        let again = consume(f.manager, f.worker, "t", "g", 10, 0);
        assert_eq!(batch_info(again).message_count, 1);
        assert_eq!(lc_topic_batch_free(again), LC_OK);
        // Set: the next nack (its second delivery) dead-letters it.
        assert_status!(set(t, g, d, 2), LC_OK);
        assert_status!(lc_topic_nack(f.manager, f.worker, t, g, p, 0, 0), LC_OK);
    }
    assert_eq!(topic_info(f.manager, "dlq").appended, 1);
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).committed,
        1
    );
}

fn case_lc_topic_group_clear_dead_letter() {
    let f = Topics::new();
    create_topic(f.manager, "dlq", &topic_config(1));
    let (nope, dlq) = (c("nope"), c("dlq"));
    // SAFETY: see above.
    unsafe {
        let clear = |topic: *const c_char, group: *const c_char| {
            lc_topic_group_clear_dead_letter(f.manager, topic, group)
        };
        let (t, g, p) = (f.t.as_ptr(), f.g.as_ptr(), f.partition);
        assert_status!(
            lc_topic_group_set_dead_letter(f.manager, t, g, dlq.as_ptr(), 1),
            LC_OK
        );
        assert_status!(clear(null(), g), LC_ERR_NULL_ARGUMENT);
        assert_status!(clear(t, null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(clear(bad_utf8(), g), LC_ERR_INVALID_UTF8);
        assert_status!(clear(t, bad_utf8()), LC_ERR_INVALID_UTF8);
        assert_status!(clear(nope.as_ptr(), g), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(clear(t, nope.as_ptr()), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_group_clear_dead_letter(f.stale_manager, t, g),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(clear(t, g), LC_OK);
        // Cleared: with max-deliver 1 this nack would have dead-lettered the message.
        assert_status!(lc_topic_nack(f.manager, f.worker, t, g, p, 0, 0), LC_OK);
    }
    assert_eq!(topic_info(f.manager, "dlq").appended, 0);
}

/// The topic functions' cases, run by `contract.rs` with the others.
pub const TOPIC_CASES: &[(&str, fn())] = &[
    ("lc_topic_config_init", case_lc_topic_config_init),
    ("lc_topic_create", case_lc_topic_create),
    ("lc_topic_delete", case_lc_topic_delete),
    ("lc_topic_get_info", case_lc_topic_get_info),
    (
        "lc_topic_get_partition_bounds",
        case_lc_topic_get_partition_bounds,
    ),
    (
        "lc_topic_get_last_write_error",
        case_lc_topic_get_last_write_error,
    ),
    ("lc_topic_publish", case_lc_topic_publish),
    (
        "lc_topic_route_options_init",
        case_lc_topic_route_options_init,
    ),
    ("lc_topic_route_add", case_lc_topic_route_add),
    ("lc_topic_route_add_sql", case_lc_topic_route_add_sql),
    ("lc_topic_route_remove", case_lc_topic_route_remove),
    (
        "lc_topic_group_config_init",
        case_lc_topic_group_config_init,
    ),
    ("lc_topic_group_create", case_lc_topic_group_create),
    ("lc_topic_group_delete", case_lc_topic_group_delete),
    (
        "lc_topic_group_get_partition",
        case_lc_topic_group_get_partition,
    ),
    ("lc_topic_group_get_stats", case_lc_topic_group_get_stats),
    ("lc_topic_consume", case_lc_topic_consume),
    ("lc_topic_batch_get_info", case_lc_topic_batch_get_info),
    ("lc_topic_batch_message", case_lc_topic_batch_message),
    (
        "lc_topic_batch_message_json",
        case_lc_topic_batch_message_json,
    ),
    ("lc_topic_batch_row_json", case_lc_topic_batch_row_json),
    ("lc_topic_batch_position", case_lc_topic_batch_position),
    (
        "lc_topic_batch_retention_skip",
        case_lc_topic_batch_retention_skip,
    ),
    ("lc_topic_batch_free", case_lc_topic_batch_free),
    ("lc_topic_commit", case_lc_topic_commit),
    ("lc_topic_batch_commit", case_lc_topic_batch_commit),
    ("lc_topic_seek", case_lc_topic_seek),
    ("lc_topic_group_leave", case_lc_topic_group_leave),
    ("lc_topic_nack", case_lc_topic_nack),
    ("lc_topic_extend_leases", case_lc_topic_extend_leases),
    (
        "lc_topic_group_set_dead_letter",
        case_lc_topic_group_set_dead_letter,
    ),
    (
        "lc_topic_group_clear_dead_letter",
        case_lc_topic_group_clear_dead_letter,
    ),
];
