//! Helpers shared by the C ABI tests: a ready-made manager with a table, connection and
//! subscription, and small wrappers that keep the unsafe calls in one place.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use livecore::ffi::*;

pub use livecore::ffi::lc_status::*;

/// Asserts a call's status, showing the last error when it differs.
#[macro_export]
macro_rules! assert_status {
    ($call:expr, $expected:expr) => {{
        let status = $call;
        assert_eq!(
            status,
            $expected,
            "{} returned {:?}: {}",
            stringify!($call),
            status,
            $crate::support::last_error()
        );
    }};
}

/// The calling thread's last error message.
pub fn last_error() -> String {
    let mut message: *const c_char = ptr::null();
    // SAFETY: `message` is a live local; the returned pointer is read before any other call
    // on this thread.
    unsafe {
        assert_eq!(lc_last_error(&mut message), LC_OK);
        CStr::from_ptr(message).to_string_lossy().into_owned()
    }
}

/// A NUL-terminated copy of `text` for passing as a C string.
pub fn c(text: &str) -> CString {
    CString::new(text).unwrap()
}

pub fn config() -> lc_config {
    // SAFETY: an all-zero lc_config is a valid value (integers only); struct_size is set
    // before lc_config_init writes it.
    let mut config: lc_config = unsafe { std::mem::zeroed() };
    config.struct_size = std::mem::size_of::<lc_config>() as u32;
    // SAFETY: `config` is a live local with its struct_size set.
    assert_eq!(unsafe { lc_config_init(&mut config) }, LC_OK);
    config
}

pub fn manager_with(config: &lc_config) -> lc_manager {
    let mut manager = lc_manager::default();
    // SAFETY: both pointers are live locals.
    assert_status!(unsafe { lc_manager_new(config, &mut manager) }, LC_OK);
    manager
}

/// A manager on a manual clock, with the shared table chat.messages (id, room, body) under
/// the returned key and the user table app.notes (id, title).
pub fn manager() -> (lc_manager, u32, u32) {
    manager_from(config())
}

/// The longest wait the long-poll tests' consumes ask for: beyond `HANG_GUARD`, so a consume
/// that ends before the guard was ended by what the test did, never by its timeout.
pub const LONG_POLL_MS: u32 = 600_000;

/// `manager()`, with limits that let a consume wait `LONG_POLL_MS` (a group's lease must
/// then be `LONG_POLL_MS` too).
pub fn long_poll_manager() -> (lc_manager, u32, u32) {
    let mut config = config();
    config.topic_max_poll_timeout_ms = LONG_POLL_MS.into();
    config.topic_max_lease_ms = LONG_POLL_MS.into();
    config.heartbeat_timeout_ms = 4 * u64::from(LONG_POLL_MS);
    manager_from(config)
}

fn manager_from(mut config: lc_config) -> (lc_manager, u32, u32) {
    config.flags = LC_CONFIG_MANUAL_CLOCK | LC_CONFIG_READY_QUEUE;
    config.manual_clock_start_ms = 1_000_000;
    let manager = manager_with(&config);
    let messages = register_table(
        manager,
        "chat",
        "messages",
        LC_SCOPE_SHARED_TAG,
        &["id", "room", "body"],
    );
    let notes = register_table(manager, "app", "notes", LC_SCOPE_USER_TAG, &["id", "title"]);
    (manager, messages, notes)
}

pub const LC_SCOPE_SHARED_TAG: u32 = lc_table_scope::LC_SCOPE_SHARED as u32;
pub const LC_SCOPE_USER_TAG: u32 = lc_table_scope::LC_SCOPE_USER as u32;

pub fn register_table(
    manager: lc_manager,
    namespace: &str,
    name: &str,
    scope: u32,
    columns: &[&str],
) -> u32 {
    let (namespace, name) = (c(namespace), c(name));
    let columns: Vec<CString> = columns.iter().map(|column| c(column)).collect();
    let pointers: Vec<*const c_char> = columns.iter().map(|column| column.as_ptr()).collect();
    let mut key = u32::MAX;
    assert_status!(
        // SAFETY: every pointer is a live NUL-terminated string or a live local.
        unsafe {
            lc_table_register(
                manager,
                namespace.as_ptr(),
                name.as_ptr(),
                scope,
                pointers.as_ptr(),
                pointers.len(),
                &mut key,
            )
        },
        LC_OK
    );
    key
}

pub fn connect(manager: lc_manager, user: &str) -> u64 {
    let mut id = 0;
    // SAFETY: `id` is a live local.
    assert_status!(unsafe { lc_connection_register(manager, &mut id) }, LC_OK);
    let user = c(user);
    assert_status!(
        // SAFETY: `user` is a live NUL-terminated string; the role is NULL (none).
        unsafe { lc_connection_authenticate(manager, id, user.as_ptr(), ptr::null()) },
        LC_OK
    );
    id
}

/// `lc_connection_get_info` of a registered connection (or one closed at shutdown).
pub fn connection_info(manager: lc_manager, connection: u64) -> lc_connection_info {
    let mut info = lc_connection_info {
        struct_size: std::mem::size_of::<lc_connection_info>() as u32,
        flags: 0,
        registered_at_ms: 0,
        last_heartbeat_ms: 0,
        subscription_count: 0,
    };
    assert_status!(
        // SAFETY: `info` is a live local with its struct_size set.
        unsafe { lc_connection_get_info(manager, connection, &mut info) },
        LC_OK
    );
    info
}

pub fn options(flags: u32) -> lc_subscription_options {
    let mut options = lc_subscription_options {
        struct_size: std::mem::size_of::<lc_subscription_options>() as u32,
        flags: 0,
        batch_size: 0,
        resume_from: 0,
    };
    // SAFETY: `options` is a live local with its struct_size set.
    assert_eq!(unsafe { lc_subscription_options_init(&mut options) }, LC_OK);
    options.flags = flags;
    options
}

/// Subscribes and returns the live query id (the result handle is freed).
pub fn subscribe(
    manager: lc_manager,
    connection: u64,
    sql: &str,
    options: &lc_subscription_options,
) -> lc_live_query_id {
    let result = subscribe_result(manager, connection, sql, options);
    let info = result_info(result);
    assert_eq!(lc_subscription_result_free(result), LC_OK);
    info.live_query
}

pub fn subscribe_result(
    manager: lc_manager,
    connection: u64,
    sql: &str,
    options: &lc_subscription_options,
) -> lc_subscription_result {
    let sql = c(sql);
    let mut result = lc_subscription_result::default();
    assert_status!(
        // SAFETY: `sql` is a live NUL-terminated string; the others are live locals.
        unsafe {
            lc_subscription_create_sql(manager, connection, sql.as_ptr(), options, &mut result)
        },
        LC_OK
    );
    result
}

pub fn result_info(result: lc_subscription_result) -> lc_subscription_info {
    // SAFETY: an all-zero lc_subscription_info is valid (integers only).
    let mut info: lc_subscription_info = unsafe { std::mem::zeroed() };
    info.struct_size = std::mem::size_of::<lc_subscription_info>() as u32;
    assert_status!(
        // SAFETY: `info` is a live local with its struct_size set.
        unsafe { lc_subscription_result_get_info(result, &mut info) },
        LC_OK
    );
    info
}

pub fn int(value: i64) -> lc_value {
    lc_value {
        tag: lc_value_type::LC_VALUE_INT as u32,
        reserved: 0,
        int_value: value,
        float_value: 0.0,
        data: ptr::null(),
        len: 0,
    }
}

pub fn float(value: f64) -> lc_value {
    lc_value {
        tag: lc_value_type::LC_VALUE_FLOAT as u32,
        reserved: 0,
        int_value: 0,
        float_value: value,
        data: ptr::null(),
        len: 0,
    }
}

pub fn boolean(value: bool) -> lc_value {
    lc_value {
        tag: lc_value_type::LC_VALUE_BOOL as u32,
        reserved: 0,
        int_value: i64::from(value),
        float_value: 0.0,
        data: ptr::null(),
        len: 0,
    }
}

pub fn nil() -> lc_value {
    lc_value {
        tag: lc_value_type::LC_VALUE_NULL as u32,
        reserved: 0,
        int_value: 0,
        float_value: 0.0,
        data: ptr::null(),
        len: 0,
    }
}

/// A text value borrowing `text` (keep it alive across the call).
pub fn text(text: &[u8]) -> lc_value {
    lc_value {
        tag: lc_value_type::LC_VALUE_TEXT as u32,
        reserved: 0,
        int_value: 0,
        float_value: 0.0,
        data: text.as_ptr(),
        len: text.len(),
    }
}

/// A bytes value borrowing `bytes`.
pub fn bytes(bytes: &[u8]) -> lc_value {
    lc_value {
        tag: lc_value_type::LC_VALUE_BYTES as u32,
        reserved: 0,
        int_value: 0,
        float_value: 0.0,
        data: bytes.as_ptr(),
        len: bytes.len(),
    }
}

pub fn change(
    table: u32,
    change_type: lc_change_type,
    row: &[lc_value],
    old_row: Option<&[lc_value]>,
) -> lc_change {
    lc_change {
        table,
        change_type: change_type as u32,
        row: row.as_ptr(),
        row_len: row.len(),
        old_row: old_row.map_or(ptr::null(), |row| row.as_ptr()),
        old_row_len: old_row.map_or(0, |row| row.len()),
        owner: ptr::null(),
    }
}

pub fn summary() -> lc_publish_summary {
    // SAFETY: an all-zero summary is valid (integers only).
    let mut summary: lc_publish_summary = unsafe { std::mem::zeroed() };
    summary.struct_size = std::mem::size_of::<lc_publish_summary>() as u32;
    summary
}

pub fn publish(manager: lc_manager, seq: u64, changes: &[lc_change]) -> lc_publish_summary {
    let mut out = summary();
    assert_status!(
        // SAFETY: the changes' pointers borrow rows the caller keeps alive; `out` is a live local.
        unsafe { lc_commit_publish(manager, seq, changes.as_ptr(), changes.len(), &mut out) },
        LC_OK
    );
    out
}

/// Receives one notification without waiting; panics when there is none.
pub fn recv(manager: lc_manager, connection: u64) -> lc_notification {
    let mut notification = lc_notification::default();
    assert_status!(
        // SAFETY: `notification` is a live local.
        unsafe { lc_connection_recv(manager, connection, 0, &mut notification) },
        LC_OK
    );
    notification
}

/// The status of a non-blocking receive (and frees what it got).
pub fn try_recv_status(manager: lc_manager, connection: u64) -> lc_status {
    let mut notification = lc_notification::default();
    // SAFETY: `notification` is a live local.
    let status = unsafe { lc_connection_recv(manager, connection, 0, &mut notification) };
    if status == LC_OK {
        assert_eq!(lc_notification_free(notification), LC_OK);
    }
    status
}

pub fn json(notification: lc_notification) -> String {
    let mut json: *const c_char = ptr::null();
    let mut len = 0;
    // SAFETY: both are live locals; the bytes are copied before the notification is freed.
    unsafe {
        assert_status!(
            lc_notification_json(notification, &mut json, &mut len),
            LC_OK
        );
        let bytes = std::slice::from_raw_parts(json.cast::<u8>(), len);
        assert_eq!(*json.add(len), 0, "the JSON is NUL-terminated");
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

/// Receives one notification, returns its JSON and frees it.
pub fn recv_json(manager: lc_manager, connection: u64) -> String {
    let notification = recv(manager, connection);
    let text = json(notification);
    assert_eq!(lc_notification_free(notification), LC_OK);
    text
}

pub fn notification_info(notification: lc_notification) -> lc_notification_info {
    // SAFETY: an all-zero info is valid (integers only).
    let mut info: lc_notification_info = unsafe { std::mem::zeroed() };
    info.struct_size = std::mem::size_of::<lc_notification_info>() as u32;
    assert_status!(
        // SAFETY: `info` is a live local with its struct_size set.
        unsafe { lc_notification_get_info(notification, &mut info) },
        LC_OK
    );
    info
}

pub fn stats(manager: lc_manager) -> lc_stats {
    // SAFETY: an all-zero lc_stats is valid (integers only).
    let mut stats: lc_stats = unsafe { std::mem::zeroed() };
    stats.struct_size = std::mem::size_of::<lc_stats>() as u32;
    // SAFETY: `stats` is a live local with its struct_size set.
    assert_status!(unsafe { lc_manager_get_stats(manager, &mut stats) }, LC_OK);
    stats
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the tests of this binary one at a time, so the handle-leak checks see only their
/// own handles (and valgrind runs stay short).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a test waits for something it expects (a thread to finish, a wait to park)
/// before calling it hung. A guard against a hang, never a speed expectation: valgrind on a
/// loaded two-core machine runs these tests tens of times slower than a native build, and
/// the outcome a test checks never depends on how long a step took.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs a receive again while it is refused as busy: a test's probe (a receive with
/// timeout 0, checking that a waiting thread holds the receiver) holds the receiver for an
/// instant, and a wait that begins in that instant is refused.
pub fn retry_while_busy<T>(mut receive: impl FnMut() -> (lc_status, T)) -> (lc_status, T) {
    loop {
        let received = receive();
        if received.0 != LC_ERR_RECEIVER_BUSY {
            return received;
        }
        std::thread::yield_now();
    }
}

/// Joins `thread`, failing the test (rather than hanging it) if the thread has not ended
/// within `HANG_GUARD`.
pub fn join_or_fail<T>(thread: std::thread::JoinHandle<T>, what: &str) -> T {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while !thread.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still running after {HANG_GUARD:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    thread.join().unwrap()
}

pub fn change_info(notification: lc_notification, index: usize) -> lc_change_info {
    let mut out = lc_change_info {
        change_type: 99,
        has_old_row: 99,
        position: 99,
    };
    assert_status!(
        // SAFETY: `out` is a live local.
        unsafe { lc_notification_change(notification, index, &mut out) },
        LC_OK
    );
    out
}

pub fn value(
    notification: lc_notification,
    row: usize,
    version: lc_row_version,
    column: usize,
) -> lc_value {
    let mut out = nil();
    assert_status!(
        // SAFETY: `out` is a live local.
        unsafe { lc_notification_value(notification, row, version as u32, column, &mut out) },
        LC_OK
    );
    out
}

/// An event, waiting up to `timeout_ms`; the status when there is none.
pub fn recv_event(manager: lc_manager, connection: u64, timeout_ms: u32) -> Result<u32, lc_status> {
    let mut event = 0;
    // SAFETY: `event` is a live local.
    match unsafe { lc_connection_recv_event(manager, connection, timeout_ms, &mut event) } {
        LC_OK => Ok(event),
        other => Err(other),
    }
}

/// A sized struct of the ABI, zeroed, with `struct_size` set to its full size.
pub fn sized_struct<T>() -> T {
    // SAFETY: every sized struct of the ABI holds integers, floats and raw pointers only, so
    // all-zero is a valid value; its first field is the u32 struct_size.
    unsafe {
        let mut value: T = std::mem::zeroed();
        (&mut value as *mut T)
            .cast::<u32>()
            .write(std::mem::size_of::<T>() as u32);
        value
    }
}

pub fn topic_config(partitions: u32) -> lc_topic_config {
    let mut config: lc_topic_config = sized_struct();
    // SAFETY: `config` is a live local with its struct_size set.
    assert_status!(unsafe { lc_topic_config_init(&mut config) }, LC_OK);
    config.partitions = partitions;
    config
}

pub fn create_topic(manager: lc_manager, name: &str, config: &lc_topic_config) {
    let name = c(name);
    assert_status!(
        // SAFETY: `name` is a live NUL-terminated string; `config` a live struct.
        unsafe { lc_topic_create(manager, name.as_ptr(), config) },
        LC_OK
    );
}

pub fn route_options(
    change_types: u32,
    key_column: Option<&std::ffi::CStr>,
) -> lc_topic_route_options {
    let mut options: lc_topic_route_options = sized_struct();
    // SAFETY: `options` is a live local with its struct_size set.
    assert_status!(unsafe { lc_topic_route_options_init(&mut options) }, LC_OK);
    options.change_types = change_types;
    options.key_column = key_column.map_or(ptr::null(), |column| column.as_ptr());
    options
}

/// Adds a route from subscription SQL; returns its id.
pub fn route_sql(
    manager: lc_manager,
    topic: &str,
    sql: &str,
    options: &lc_topic_route_options,
) -> u64 {
    let (topic, sql) = (c(topic), c(sql));
    let mut id = 0;
    assert_status!(
        // SAFETY: the strings and `options` are live; `id` is a live local.
        unsafe { lc_topic_route_add_sql(manager, topic.as_ptr(), sql.as_ptr(), options, &mut id) },
        LC_OK
    );
    id
}

pub fn group_config(reset: lc_topic_reset_policy, lease_ms: u64) -> lc_topic_group_config {
    let mut config: lc_topic_group_config = sized_struct();
    // SAFETY: `config` is a live local with its struct_size set.
    assert_status!(unsafe { lc_topic_group_config_init(&mut config) }, LC_OK);
    config.reset = reset as u32;
    config.lease_ms = lease_ms;
    config
}

pub fn create_group(manager: lc_manager, topic: &str, group: &str, config: &lc_topic_group_config) {
    let (topic, group) = (c(topic), c(group));
    assert_status!(
        // SAFETY: the strings and `config` are live.
        unsafe { lc_topic_group_create(manager, topic.as_ptr(), group.as_ptr(), config) },
        LC_OK
    );
}

/// A consume's status and batch (the default handle when there is none).
pub fn try_consume(
    manager: lc_manager,
    connection: u64,
    topic: &str,
    group: &str,
    max: usize,
    timeout_ms: u32,
) -> (lc_status, lc_topic_batch) {
    let (topic, group) = (c(topic), c(group));
    let mut batch = lc_topic_batch::default();
    // SAFETY: the strings are live; `batch` is a live local.
    let status = unsafe {
        lc_topic_consume(
            manager,
            connection,
            topic.as_ptr(),
            group.as_ptr(),
            max,
            timeout_ms,
            &mut batch,
        )
    };
    (status, batch)
}

pub fn consume(
    manager: lc_manager,
    connection: u64,
    topic: &str,
    group: &str,
    max: usize,
    timeout_ms: u32,
) -> lc_topic_batch {
    let (status, batch) = try_consume(manager, connection, topic, group, max, timeout_ms);
    assert_eq!(status, LC_OK, "lc_topic_consume: {}", last_error());
    batch
}

pub fn batch_info(batch: lc_topic_batch) -> lc_topic_batch_info {
    let mut info: lc_topic_batch_info = sized_struct();
    // SAFETY: `info` is a live local with its struct_size set.
    assert_status!(unsafe { lc_topic_batch_get_info(batch, &mut info) }, LC_OK);
    info
}

pub fn batch_message(batch: lc_topic_batch, index: usize) -> lc_topic_message {
    let mut message: lc_topic_message = sized_struct();
    assert_status!(
        // SAFETY: `message` is a live local with its struct_size set.
        unsafe { lc_topic_batch_message(batch, index, &mut message) },
        LC_OK
    );
    message
}

/// Reads a JSON text a batch owns: pointer and length as the call gave them.
fn owned_json(json: *const c_char, len: usize) -> String {
    // SAFETY: the pointer comes from a successful call and points at `len` bytes and a NUL
    // that the live batch owns.
    unsafe {
        assert_eq!(*json.add(len), 0, "the JSON is NUL-terminated");
        String::from_utf8(std::slice::from_raw_parts(json.cast::<u8>(), len).to_vec()).unwrap()
    }
}

pub fn message_json(batch: lc_topic_batch, index: usize) -> String {
    let mut json: *const c_char = ptr::null();
    let mut len = 0;
    assert_status!(
        // SAFETY: both are live locals.
        unsafe { lc_topic_batch_message_json(batch, index, &mut json, &mut len) },
        LC_OK
    );
    owned_json(json, len)
}

pub fn row_json(batch: lc_topic_batch, index: usize, version: lc_row_version) -> String {
    let mut json: *const c_char = ptr::null();
    let mut len = 0;
    assert_status!(
        // SAFETY: both are live locals.
        unsafe { lc_topic_batch_row_json(batch, index, version as u32, &mut json, &mut len) },
        LC_OK
    );
    owned_json(json, len)
}

/// Every message of a batch as JSON.
pub fn batch_json(batch: lc_topic_batch) -> Vec<String> {
    (0..batch_info(batch).message_count as usize)
        .map(|index| message_json(batch, index))
        .collect()
}

pub fn batch_position(batch: lc_topic_batch, index: usize) -> lc_topic_position {
    let mut position: lc_topic_position = sized_struct();
    assert_status!(
        // SAFETY: `position` is a live local with its struct_size set.
        unsafe { lc_topic_batch_position(batch, index, &mut position) },
        LC_OK
    );
    position
}

pub fn group_partition(
    manager: lc_manager,
    topic: &str,
    group: &str,
    partition: u32,
) -> lc_topic_group_partition {
    let (topic, group) = (c(topic), c(group));
    let mut out: lc_topic_group_partition = sized_struct();
    assert_status!(
        // SAFETY: the strings are live; `out` is a live local with its struct_size set.
        unsafe {
            lc_topic_group_get_partition(
                manager,
                topic.as_ptr(),
                group.as_ptr(),
                partition,
                &mut out,
            )
        },
        LC_OK
    );
    out
}

pub fn group_stats(manager: lc_manager, topic: &str, group: &str) -> lc_topic_group_stats {
    let (topic, group) = (c(topic), c(group));
    let mut out: lc_topic_group_stats = sized_struct();
    assert_status!(
        // SAFETY: the strings are live; `out` is a live local with its struct_size set.
        unsafe { lc_topic_group_get_stats(manager, topic.as_ptr(), group.as_ptr(), &mut out) },
        LC_OK
    );
    out
}

pub fn topic_info(manager: lc_manager, topic: &str) -> lc_topic_info {
    let topic = c(topic);
    let mut out: lc_topic_info = sized_struct();
    assert_status!(
        // SAFETY: the string is live; `out` is a live local with its struct_size set.
        unsafe { lc_topic_get_info(manager, topic.as_ptr(), &mut out) },
        LC_OK
    );
    out
}

/// The status of committing `offset` on `partition`.
pub fn commit(
    manager: lc_manager,
    connection: u64,
    topic: &str,
    group: &str,
    partition: u32,
    offset: u64,
) -> lc_status {
    let (topic, group) = (c(topic), c(group));
    // SAFETY: the strings are live.
    unsafe {
        lc_topic_commit(
            manager,
            connection,
            topic.as_ptr(),
            group.as_ptr(),
            partition,
            offset,
        )
    }
}

/// The status of seeking `group` to `offset` on `partition`.
pub fn seek(
    manager: lc_manager,
    topic: &str,
    group: &str,
    partition: u32,
    offset: u64,
) -> lc_status {
    let (topic, group) = (c(topic), c(group));
    // SAFETY: the strings are live.
    unsafe { lc_topic_seek(manager, topic.as_ptr(), group.as_ptr(), partition, offset) }
}

/// Publishes `payload` directly to a topic; returns (partition, offset).
pub fn publish_direct(
    manager: lc_manager,
    topic: &str,
    seq: u64,
    key: Option<&lc_value>,
    payload: &[u8],
) -> (u32, u64) {
    let topic = c(topic);
    let (mut partition, mut offset) = (u32::MAX, u64::MAX);
    assert_status!(
        // SAFETY: the string, key and payload are live; the outs are live locals.
        unsafe {
            lc_topic_publish(
                manager,
                topic.as_ptr(),
                seq,
                key.map_or(ptr::null(), |key| key as *const lc_value),
                LC_TOPIC_ANY_PARTITION,
                payload.as_ptr(),
                payload.len(),
                &mut partition,
                &mut offset,
            )
        },
        LC_OK
    );
    (partition, offset)
}
