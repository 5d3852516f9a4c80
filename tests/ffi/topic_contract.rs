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
pub(crate) const BAD_UTF8: &[u8] = b"\xff\xfeab\0";

pub(crate) fn bad_utf8() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

/// A sized struct, zeroed, with `struct_size` set to `size`.
pub(crate) fn sized<T>(size: usize) -> T {
    let mut value: T = sized_struct();
    // SAFETY: every sized struct of the ABI begins with its u32 struct_size.
    unsafe { (&mut value as *mut T).cast::<u32>().write(size as u32) };
    value
}

/// A manager with a table, topic "t" (2 partitions) fed by a route from the table
/// (`SELECT id, body FROM chat.messages WHERE room = 7`, keyed by id), consumer group "g",
/// an authenticated consumer that consumed one message (the batch is kept), another
/// authenticated connection, an anonymous one, and stale handles.
pub(crate) struct Topics {
    pub(crate) manager: lc_manager,
    pub(crate) messages: u32,
    pub(crate) worker: u64,
    pub(crate) other: u64,
    pub(crate) anonymous: u64,
    pub(crate) route: u64,
    pub(crate) batch: lc_topic_batch,
    /// The partition of the batch's message.
    pub(crate) partition: u32,
    pub(crate) stale_manager: lc_manager,
    pub(crate) stale_batch: lc_topic_batch,
    pub(crate) t: CString,
    pub(crate) g: CString,
}

impl Topics {
    pub(crate) fn new() -> Self {
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

    pub(crate) fn appended(&self) -> u64 {
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
    let mut bad: lc_topic_info = sized(4);
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
        // So is a key whose length takes the message past it, before the key's bytes are
        // read (one byte behind a length of 2^30: reading them would fault), text or bytes.
        for tag in [lc_value_type::LC_VALUE_TEXT, lc_value_type::LC_VALUE_BYTES] {
            let lying_key = lc_value {
                tag: tag as u32,
                len: 1 << 30,
                ..text(b"k")
            };
            assert_status!(
                publish(f.t.as_ptr(), &lying_key, any, payload.as_ptr(), 7),
                LC_ERR_OUT_OF_BOUNDS
            );
        }
        // A key that is not text or bytes counts 8 bytes, as the core counts it.
        let int_key = int(1);
        let room = (1 << 20) - 8;
        assert_status!(
            publish(f.t.as_ptr(), &int_key, any, huge.as_ptr(), room + 1),
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
        assert_status!(
            publish(f.t.as_ptr(), &int_key, any, huge.as_ptr(), room),
            LC_OK
        );
    }
    assert_eq!(f.appended(), 4);
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
        crate::topic_contract_consume::case_lc_topic_group_config_init,
    ),
    (
        "lc_topic_group_create",
        crate::topic_contract_consume::case_lc_topic_group_create,
    ),
    (
        "lc_topic_group_delete",
        crate::topic_contract_consume::case_lc_topic_group_delete,
    ),
    (
        "lc_topic_group_get_partition",
        crate::topic_contract_consume::case_lc_topic_group_get_partition,
    ),
    (
        "lc_topic_group_get_stats",
        crate::topic_contract_consume::case_lc_topic_group_get_stats,
    ),
    (
        "lc_topic_consume",
        crate::topic_contract_consume::case_lc_topic_consume,
    ),
    (
        "lc_topic_batch_get_info",
        crate::topic_contract_consume::case_lc_topic_batch_get_info,
    ),
    (
        "lc_topic_batch_message",
        crate::topic_contract_consume::case_lc_topic_batch_message,
    ),
    (
        "lc_topic_batch_message_json",
        crate::topic_contract_consume::case_lc_topic_batch_message_json,
    ),
    (
        "lc_topic_batch_row_json",
        crate::topic_contract_consume::case_lc_topic_batch_row_json,
    ),
    (
        "lc_topic_batch_position",
        crate::topic_contract_consume::case_lc_topic_batch_position,
    ),
    (
        "lc_topic_batch_retention_skip",
        crate::topic_contract_consume::case_lc_topic_batch_retention_skip,
    ),
    (
        "lc_topic_batch_free",
        crate::topic_contract_consume::case_lc_topic_batch_free,
    ),
    (
        "lc_topic_commit",
        crate::topic_contract_consume::case_lc_topic_commit,
    ),
    (
        "lc_topic_batch_commit",
        crate::topic_contract_consume::case_lc_topic_batch_commit,
    ),
    (
        "lc_topic_seek",
        crate::topic_contract_consume::case_lc_topic_seek,
    ),
    (
        "lc_topic_group_leave",
        crate::topic_contract_consume::case_lc_topic_group_leave,
    ),
    (
        "lc_topic_nack",
        crate::topic_contract_consume::case_lc_topic_nack,
    ),
    (
        "lc_topic_extend_leases",
        crate::topic_contract_consume::case_lc_topic_extend_leases,
    ),
    (
        "lc_topic_group_set_dead_letter",
        crate::topic_contract_consume::case_lc_topic_group_set_dead_letter,
    ),
    (
        "lc_topic_group_clear_dead_letter",
        crate::topic_contract_consume::case_lc_topic_group_clear_dead_letter,
    ),
];
