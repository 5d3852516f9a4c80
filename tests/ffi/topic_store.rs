//! Host-supplied topic stores through the C ABI: a C-style store (extern "C" callbacks
//! over a Vec of blobs per partition behind a Mutex) backs a topic fed by a route; groups
//! commit into it and a second manager over the same store resumes where they were. Then
//! its failures: offsets out of range, a failing append, a damaged blob, lying callbacks,
//! and `free_user_data` called exactly once. Also `lc_topic_read`, `lc_topic_list` and
//! `lc_topic_route_list`.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

use lc_change_type::*;

const EARLIEST: lc_topic_reset_policy = lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST;

/// What the test store holds and how it misbehaves on request.
#[derive(Default)]
pub struct StoreState {
    /// Blobs per partition; offset = index.
    pub partitions: Vec<Vec<Vec<u8>>>,
    /// Committed offsets by (group, partition).
    pub offsets: HashMap<(String, u32), u64>,
    /// Code `append` returns instead of appending.
    pub fail_append: Option<i32>,
    /// `read` flips a bit in every blob it hands over.
    pub corrupt_reads: bool,
    /// `bounds` reports start after end.
    pub lying_bounds: bool,
    /// `bounds` reports every partition as `0..u64::MAX`.
    pub huge_bounds: bool,
    /// Code `bounds` returns instead of the bounds.
    pub fail_bounds: Option<i32>,
    /// Code `delete_group` returns instead of deleting.
    pub fail_delete_group: Option<i32>,
    /// `read` reports every offset out of range.
    pub read_out_of_range: bool,
    /// Status of the last push.
    pub last_push: Option<lc_status>,
    /// `read` pushes a script of invalid and valid blobs instead (see `probe_pushes`),
    /// recording their statuses in `probe_results`.
    pub probe: bool,
    /// Statuses of the probe's pushes.
    pub probe_results: Vec<lc_status>,
    /// The address of the last sink a read was given (stale once it returned).
    pub last_sink: usize,
    /// Offsets below this are gone: a read pushes from the first one at or after it (so
    /// nothing when none is left), and `bounds` starts there.
    pub lost_below: u64,
    /// After its pushes, `read` pushes the partition's first blob again at this offset,
    /// recording the status in `bogus_push_status`.
    pub bogus_push: Option<u64>,
    /// `read` pushes only the bogus offset.
    pub only_bogus: bool,
    /// Status of the bogus push.
    pub bogus_push_status: Option<lc_status>,
    /// Reads so far.
    pub reads: usize,
    /// `commit_offset` calls `lc_topic_group_get_partition` on this manager (topic "s",
    /// group "g", partition 0) and `lc_last_error`, recording both statuses and the error
    /// in `reentered`.
    pub reenter: Option<lc_manager>,
    /// What the re-entrant calls returned.
    pub reentered: Vec<(lc_status, lc_status, String)>,
}

/// The store's user_data: shared with the test, which watches `freed`.
#[derive(Default)]
pub struct TestStore {
    pub state: Mutex<StoreState>,
    pub freed: AtomicUsize,
}

impl TestStore {
    pub fn new(partitions: usize) -> Arc<Self> {
        let store = Arc::new(TestStore::default());
        store.state.lock().unwrap().partitions = vec![Vec::new(); partitions];
        store
    }

    pub fn freed(&self) -> usize {
        self.freed.load(Ordering::SeqCst)
    }

    pub fn committed(&self, group: &str, partition: u32) -> Option<u64> {
        let state = self.state.lock().unwrap();
        state.offsets.get(&(group.to_string(), partition)).copied()
    }

    pub fn blob_count(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.partitions.iter().map(Vec::len).sum()
    }
}

/// The store behind a user_data pointer.
///
/// # Safety
/// `user_data` came from [`callbacks`] and `free_user_data` has not run for it.
unsafe fn store<'a>(user_data: *mut c_void) -> &'a TestStore {
    // SAFETY: the caller's promise: it is a live Arc<TestStore> leaked by `callbacks`.
    unsafe { &*(user_data as *const TestStore) }
}

unsafe extern "C" fn append(
    user_data: *mut c_void,
    partition: u32,
    blobs: *const lc_topic_blob,
    count: usize,
    out_first_offset: *mut u64,
) -> i32 {
    // SAFETY: livecore passes the user_data it was given.
    let store = unsafe { store(user_data) };
    let mut state = store.state.lock().unwrap();
    if let Some(code) = state.fail_append {
        return code;
    }
    let Some(log) = state.partitions.get_mut(partition as usize) else {
        return 50;
    };
    // SAFETY: livecore passes `count` blob descriptors, each of `len` readable bytes.
    let blobs = unsafe { std::slice::from_raw_parts(blobs, count) };
    // SAFETY: livecore passes a writable out-pointer.
    unsafe { out_first_offset.write(log.len() as u64) };
    for blob in blobs {
        // SAFETY: as above.
        log.push(unsafe { std::slice::from_raw_parts(blob.data, blob.len) }.to_vec());
    }
    LC_TOPIC_STORE_OK
}

unsafe extern "C" fn read(
    user_data: *mut c_void,
    partition: u32,
    offset: u64,
    max_messages: usize,
    sink: *mut lc_topic_read_sink,
) -> i32 {
    // SAFETY: livecore passes the user_data it was given.
    let store = unsafe { store(user_data) };
    let mut state = store.state.lock().unwrap();
    let corrupt = state.corrupt_reads;
    if state.read_out_of_range {
        return LC_TOPIC_STORE_OUT_OF_RANGE;
    }
    state.last_sink = sink as usize;
    state.reads += 1;
    if state.probe {
        let blob = state.partitions[partition as usize][0].clone();
        state.probe_results = probe_pushes(sink, &blob);
        return LC_TOPIC_STORE_OK;
    }
    let Some(log) = state.partitions.get(partition as usize) else {
        return 51;
    };
    if offset > log.len() as u64 {
        return LC_TOPIC_STORE_OUT_OF_RANGE;
    }
    let mut last = None;
    let from = offset.max(state.lost_below) as usize;
    let take = if state.only_bogus { 0 } else { max_messages };
    for (index, blob) in log.iter().enumerate().skip(from).take(take) {
        let mut blob = blob.clone();
        if corrupt {
            let middle = blob.len() / 2;
            blob[middle] ^= 0x10;
        }
        // SAFETY: `sink` is the one livecore passed to this callback, on this thread;
        // the blob is a live local.
        last =
            Some(unsafe { lc_topic_read_sink_push(sink, index as u64, blob.as_ptr(), blob.len()) });
    }
    let mut bogus_status = None;
    if let (Some(bogus), Some(blob)) = (state.bogus_push, log.first()) {
        // SAFETY: as above.
        let status = unsafe { lc_topic_read_sink_push(sink, bogus, blob.as_ptr(), blob.len()) };
        bogus_status = Some(status);
    }
    state.last_push = last;
    if bogus_status.is_some() {
        state.bogus_push_status = bogus_status;
    }
    // Whatever the pushes said, the callback reports success: livecore must still fail
    // the read when a push was refused.
    LC_TOPIC_STORE_OK
}

/// Pushes, in order: to a NULL sink, NULL data, an empty blob, the valid blob from another
/// thread, the valid blob at offset 0, again at 0 (out of order), at 2 (the partition's end
/// when it holds 2 messages), at 1, and at 2 (beyond a maximum of 2 messages).
fn probe_pushes(sink: *mut lc_topic_read_sink, blob: &[u8]) -> Vec<lc_status> {
    let address = sink as usize;
    let from_elsewhere = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: the sink is alive (its read waits for this thread), but belongs
                // to another thread: livecore must refuse it without touching it.
                unsafe {
                    lc_topic_read_sink_push(
                        address as *mut lc_topic_read_sink,
                        0,
                        blob.as_ptr(),
                        blob.len(),
                    )
                }
            })
            .join()
            .unwrap()
    });
    // SAFETY: `sink` is the one this read callback was given, on this thread; the data
    // pointers are NULL (refused) or live.
    unsafe {
        vec![
            lc_topic_read_sink_push(null_mut(), 0, blob.as_ptr(), blob.len()),
            lc_topic_read_sink_push(sink, 0, null(), 5),
            lc_topic_read_sink_push(sink, 0, blob.as_ptr(), 0),
            from_elsewhere,
            lc_topic_read_sink_push(sink, 0, blob.as_ptr(), blob.len()),
            lc_topic_read_sink_push(sink, 0, blob.as_ptr(), blob.len()),
            lc_topic_read_sink_push(sink, 2, blob.as_ptr(), blob.len()),
            lc_topic_read_sink_push(sink, 1, blob.as_ptr(), blob.len()),
            lc_topic_read_sink_push(sink, 2, blob.as_ptr(), blob.len()),
        ]
    }
}

unsafe extern "C" fn bounds(
    user_data: *mut c_void,
    partition: u32,
    out_start: *mut u64,
    out_end: *mut u64,
) -> i32 {
    // SAFETY: livecore passes the user_data it was given.
    let store = unsafe { store(user_data) };
    let state = store.state.lock().unwrap();
    let Some(log) = state.partitions.get(partition as usize) else {
        return 52;
    };
    if let Some(code) = state.fail_bounds {
        return code;
    }
    let (start, end) = if state.lying_bounds {
        (10, 5)
    } else if state.huge_bounds {
        (0, u64::MAX)
    } else {
        (state.lost_below.min(log.len() as u64), log.len() as u64)
    };
    // SAFETY: livecore passes writable out-pointers.
    unsafe {
        out_start.write(start);
        out_end.write(end);
    }
    LC_TOPIC_STORE_OK
}

/// # Safety
/// `group` is a NUL-terminated string.
unsafe fn group_name(group: *const c_char) -> String {
    // SAFETY: the caller's promise.
    unsafe { CStr::from_ptr(group) }
        .to_str()
        .unwrap()
        .to_string()
}

unsafe extern "C" fn commit_offset(
    user_data: *mut c_void,
    group: *const c_char,
    partition: u32,
    offset: u64,
) -> i32 {
    // SAFETY: livecore passes the user_data it was given and a NUL-terminated name.
    let (store, group) = unsafe { (store(user_data), group_name(group)) };
    let reenter = store.state.lock().unwrap().reenter;
    if let Some(manager) = reenter {
        // Calling back into livecore from a callback (which the header forbids): livecore
        // holds the group's lock around this callback, so this would deadlock if it ran.
        let mut partition_info: lc_topic_group_partition = sized_struct();
        let (topic, group) = (c"s", c"g");
        // SAFETY: the strings and the out-struct are live.
        let status = unsafe {
            lc_topic_group_get_partition(
                manager,
                topic.as_ptr(),
                group.as_ptr(),
                0,
                &mut partition_info,
            )
        };
        let mut message: *const c_char = null();
        // SAFETY: `message` is a live local.
        let last = unsafe { lc_last_error(&mut message) };
        // SAFETY: lc_last_error gives a NUL-terminated string, read before any other call.
        let text = unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned();
        store
            .state
            .lock()
            .unwrap()
            .reentered
            .push((status, last, text));
    }
    store
        .state
        .lock()
        .unwrap()
        .offsets
        .insert((group, partition), offset);
    LC_TOPIC_STORE_OK
}

unsafe extern "C" fn committed_offset(
    user_data: *mut c_void,
    group: *const c_char,
    partition: u32,
    out_offset: *mut u64,
) -> i32 {
    // SAFETY: livecore passes the user_data it was given and a NUL-terminated name.
    let (store, group) = unsafe { (store(user_data), group_name(group)) };
    match store.state.lock().unwrap().offsets.get(&(group, partition)) {
        Some(offset) => {
            // SAFETY: livecore passes a writable out-pointer.
            unsafe { out_offset.write(*offset) };
            LC_TOPIC_STORE_OK
        }
        None => LC_TOPIC_STORE_NOT_FOUND,
    }
}

unsafe extern "C" fn delete_group(user_data: *mut c_void, group: *const c_char) -> i32 {
    // SAFETY: livecore passes the user_data it was given and a NUL-terminated name.
    let (store, group) = unsafe { (store(user_data), group_name(group)) };
    let mut state = store.state.lock().unwrap();
    if let Some(code) = state.fail_delete_group {
        return code;
    }
    state.offsets.retain(|(name, _), _| *name != group);
    LC_TOPIC_STORE_OK
}

unsafe extern "C" fn free_user_data(user_data: *mut c_void) {
    // SAFETY: the pointer is the Arc leaked by `callbacks`, freed exactly once.
    let store = unsafe { Arc::from_raw(user_data as *const TestStore) };
    store.freed.fetch_add(1, Ordering::SeqCst);
}

/// The callbacks over `store`, with a new reference to it as user_data (released by
/// `free_user_data`, or by [`release`] when the create failed).
pub fn callbacks(store: &Arc<TestStore>) -> lc_topic_store {
    let mut callbacks: lc_topic_store = sized_struct();
    callbacks.user_data = Arc::into_raw(store.clone()) as *mut c_void;
    callbacks.append = Some(append);
    callbacks.read = Some(read);
    callbacks.bounds = Some(bounds);
    callbacks.commit_offset = Some(commit_offset);
    callbacks.committed_offset = Some(committed_offset);
    callbacks.delete_group = Some(delete_group);
    callbacks.free_user_data = Some(free_user_data);
    callbacks
}

/// Releases the user_data of callbacks livecore did not take.
pub fn release(callbacks: &lc_topic_store) {
    // SAFETY: the create failed, so livecore never freed it: the reference is ours.
    drop(unsafe { Arc::from_raw(callbacks.user_data as *const TestStore) });
}

/// The status of creating topic `name` over `store`.
pub fn try_create(
    manager: lc_manager,
    name: &str,
    partitions: u32,
    callbacks: &lc_topic_store,
) -> lc_status {
    let name = c(name);
    let config = topic_config(partitions);
    // SAFETY: the string, config and callbacks are live.
    unsafe { lc_topic_create_with_store(manager, name.as_ptr(), &config, callbacks) }
}

/// Creates topic `name` over `store`.
pub fn create(manager: lc_manager, name: &str, partitions: u32, store: &Arc<TestStore>) {
    let callbacks = callbacks(store);
    assert_status!(try_create(manager, name, partitions, &callbacks), LC_OK);
}

/// The status and batch of `lc_topic_read`.
pub fn try_read(
    manager: lc_manager,
    topic: &str,
    partition: u32,
    offset: u64,
    max: usize,
) -> (lc_status, lc_topic_batch) {
    let topic = c(topic);
    let mut batch = lc_topic_batch::default();
    // SAFETY: the string is live; `batch` is a live local.
    let status =
        unsafe { lc_topic_read(manager, topic.as_ptr(), partition, offset, max, &mut batch) };
    (status, batch)
}

fn commit_batch(manager: lc_manager, consumer: u64, batch: lc_topic_batch) {
    assert_status!(lc_topic_batch_commit(manager, consumer, batch), LC_OK);
}

fn insert(messages: u32, row: &[lc_value]) -> lc_change {
    change(messages, LC_CHANGE_INSERT, row, None)
}

fn seqs(batch: lc_topic_batch) -> Vec<u64> {
    (0..batch_info(batch).message_count as usize)
        .map(|index| batch_message(batch, index).seq)
        .collect()
}

#[test]
fn a_host_store_backs_a_routed_topic_and_groups_resume_after_a_restart() {
    let _serial = serial();
    let before = live_handle_counts();
    let shared = TestStore::new(1);

    // First life: a route feeds the store; a group consumes and commits.
    let (manager, messages, _) = manager();
    create(manager, "durable", 1, &shared);
    route_sql(
        manager,
        "durable",
        "SELECT id, body FROM chat.messages WHERE room = 7",
        &route_options(LC_TOPIC_CHANGE_ALL, Some(c"id")),
    );
    create_group(
        manager,
        "durable",
        "indexer",
        &group_config(EARLIEST, 30_000),
    );
    let consumer = connect(manager, "indexer");
    let (a, b, x) = (b"a".as_slice(), b"b".as_slice(), b"x".as_slice());
    let rows = [
        [int(1), int(7), text(a)],
        [int(2), int(8), text(x)],
        [int(3), int(7), text(b)],
    ];
    let summary = publish(
        manager,
        11,
        &[
            insert(messages, &rows[0]),
            insert(messages, &rows[1]),
            insert(messages, &rows[2]),
        ],
    );
    assert_eq!(
        (summary.topic_messages, summary.topic_write_failures),
        (2, 0)
    );
    assert_eq!(shared.blob_count(), 2);

    let batch = consume(manager, consumer, "durable", "indexer", 10, 0);
    assert_eq!(seqs(batch), [11, 11]);
    assert_eq!(
        message_json(batch, 0),
        r#"{"partition":0,"offset":0,"seq":11,"timestamp_ms":1000000,"key":1,"change":{"op":"insert","source_op":"insert","table":"chat.messages","row":{"id":1,"body":"a"}}}"#
    );
    assert_eq!(batch_message(batch, 1).key.int_value, 3);
    commit_batch(manager, consumer, batch);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(shared.committed("indexer", 0), Some(2));

    // More arrives after the commit, and is not consumed before the restart.
    let late = [int(4), int(7), text(b)];
    publish(manager, 12, &[insert(messages, &late)]);
    assert_eq!(shared.blob_count(), 3);

    // lc_topic_read sees everything, outside the group; its batch cannot be committed.
    let (status, read) = try_read(manager, "durable", 0, 1, 10);
    assert_status!(status, LC_OK);
    assert_eq!(seqs(read), [11, 12]);
    assert_eq!(batch_info(read).position_count, 0);
    assert_status!(
        lc_topic_batch_commit(manager, consumer, read),
        LC_ERR_INVALID_ARGUMENT
    );
    assert_eq!(lc_topic_batch_free(read), LC_OK);

    assert_eq!(shared.freed(), 0);
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(
        shared.freed(),
        1,
        "freeing the manager drops the store once"
    );

    // Second life: a new manager over the same store. The group resumes at its committed
    // offset: only the late message is handed out.
    let (manager, _, _) = crate::support::manager();
    create(manager, "durable", 1, &shared);
    create_group(
        manager,
        "durable",
        "indexer",
        &group_config(EARLIEST, 30_000),
    );
    let consumer = connect(manager, "indexer");
    let batch = consume(manager, consumer, "durable", "indexer", 10, 0);
    assert_eq!(seqs(batch), [12]);
    assert_eq!(batch_message(batch, 0).offset, 2);
    assert!(message_json(batch, 0).contains(r#""row":{"id":4,"body":"b"}"#));
    commit_batch(manager, consumer, batch);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(shared.committed("indexer", 0), Some(3));
    // A new group starts at the oldest message the store holds.
    create_group(manager, "durable", "audit", &group_config(EARLIEST, 30_000));
    let batch = consume(manager, consumer, "durable", "audit", 10, 0);
    assert_eq!(seqs(batch), [11, 11, 12]);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    // Deleting a group deletes its offsets in the store.
    let (t, g) = (c("durable"), c("indexer"));
    assert_status!(
        // SAFETY: the strings are live.
        unsafe { lc_topic_group_delete(manager, t.as_ptr(), g.as_ptr()) },
        LC_OK
    );
    assert_eq!(shared.committed("indexer", 0), None);

    // Deleting the topic drops the store once nothing refers to it: the consumer that
    // consumed from it holds it until it is unregistered. Freed once more, not again with
    // the manager.
    // SAFETY: the string is live.
    assert_status!(unsafe { lc_topic_delete(manager, t.as_ptr()) }, LC_OK);
    assert_status!(lc_connection_unregister(manager, consumer), LC_OK);
    assert_eq!(shared.freed(), 2);
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(shared.freed(), 2);
    assert_eq!(
        Arc::strong_count(&shared),
        1,
        "every user_data reference was released"
    );
    assert_eq!(live_handle_counts(), before);
}

#[test]
fn store_failures_come_back_as_statuses_and_counters() {
    let _serial = serial();
    let before = live_handle_counts();
    let shared = TestStore::new(2);
    let (manager, messages, _) = manager();
    create(manager, "s", 2, &shared);
    route_sql(
        manager,
        "s",
        "SELECT * FROM chat.messages",
        &route_options(LC_TOPIC_CHANGE_ALL, Some(c"id")),
    );
    let (partition, offset) = publish_direct(manager, "s", 1, None, b"one");
    assert_eq!(offset, 0);

    // Out of range: below the start is impossible here, past the end is refused; at the
    // end is an empty read.
    let (status, _) = try_read(manager, "s", partition, 5, 10);
    assert_status!(status, LC_ERR_OFFSET_OUT_OF_RANGE);
    let (status, empty) = try_read(manager, "s", partition, 1, 10);
    assert_status!(status, LC_OK);
    assert_eq!(batch_info(empty).message_count, 0);
    assert_eq!(lc_topic_batch_free(empty), LC_OK);
    let (status, _) = try_read(manager, "s", 2, 0, 10);
    assert_status!(status, LC_ERR_UNKNOWN_PARTITION);
    let (status, _) = try_read(manager, "s", partition, 0, 0);
    assert_status!(status, LC_ERR_OUT_OF_BOUNDS);

    // A read callback that calls everything out of range while its bounds contain the
    // offset contradicts itself: a store error, not a retry loop.
    shared.state.lock().unwrap().read_out_of_range = true;
    let (status, _) = try_read(manager, "s", partition, 0, 10);
    assert_status!(status, LC_ERR_TOPIC_STORE);
    assert!(
        last_error().contains("out of range, but its bounds are 0..1"),
        "{}",
        last_error()
    );
    shared.state.lock().unwrap().read_out_of_range = false;

    // A failing append: a direct publish fails with the status, a routed publish succeeds
    // and counts the failure; the topic's last write error says why.
    shared.state.lock().unwrap().fail_append = Some(77);
    let topic = c("s");
    assert_status!(try_publish_two(manager, &topic), LC_ERR_TOPIC_STORE);
    assert!(
        last_error().contains("append callback failed with code 77"),
        "{}",
        last_error()
    );
    let row = [int(1), int(7), text(b"hi")];
    let summary = publish(manager, 3, &[insert(messages, &row)]);
    assert_eq!(
        (summary.topic_messages, summary.topic_write_failures),
        (0, 1)
    );
    let info = topic_info(manager, "s");
    assert_eq!((info.appended, info.write_failures), (1, 2));
    assert!(stats(manager).topic_write_failures >= 2);
    let message = last_write_error(manager, &topic);
    assert!(message.contains("code 77"), "{message}");
    shared.state.lock().unwrap().fail_append = None;

    // A damaged blob: the read and a consume fail with a store error, nothing panics, and
    // the sink refused the push.
    shared.state.lock().unwrap().corrupt_reads = true;
    let (status, _) = try_read(manager, "s", partition, 0, 10);
    assert_status!(status, LC_ERR_TOPIC_STORE);
    assert!(last_error().contains("checksum"), "{}", last_error());
    assert_eq!(
        shared.state.lock().unwrap().last_push,
        Some(LC_ERR_TOPIC_STORE)
    );
    create_group(manager, "s", "g", &group_config(EARLIEST, 30_000));
    let consumer = connect(manager, "worker");
    let (status, _) = try_consume(manager, consumer, "s", "g", 10, 0);
    assert_status!(status, LC_ERR_TOPIC_STORE);
    shared.state.lock().unwrap().corrupt_reads = false;
    let batch = consume(manager, consumer, "s", "g", 10, 0);
    assert_eq!(batch_info(batch).message_count, 1);
    assert_eq!(batch_message(batch, 0).payload_len, 3);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);

    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(shared.freed(), 1);
    assert_eq!(Arc::strong_count(&shared), 1);
    assert_eq!(live_handle_counts(), before);
}

/// A direct publish of "two" to `topic` (any partition): its status.
fn try_publish_two(manager: lc_manager, topic: &CStr) -> lc_status {
    let mut out_offset = 0;
    // SAFETY: the string and payload are live; the out-pointer is a live local.
    unsafe {
        lc_topic_publish(
            manager,
            topic.as_ptr(),
            2,
            null(),
            LC_TOPIC_ANY_PARTITION,
            b"two".as_ptr(),
            3,
            null_mut(),
            &mut out_offset,
        )
    }
}

/// The topic's last write error, read with `lc_topic_get_last_write_error` (which must
/// succeed, and give the whole length).
fn last_write_error(manager: lc_manager, topic: &CStr) -> String {
    let mut buffer = [0 as c_char; 256];
    let mut len = 0;
    // SAFETY: the buffer and length are live locals.
    let status = unsafe {
        lc_topic_get_last_write_error(manager, topic.as_ptr(), buffer.as_mut_ptr(), 256, &mut len)
    };
    assert_status!(status, LC_OK);
    // SAFETY: the library NUL-terminated the buffer.
    let message = unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    assert_eq!(len, message.len());
    message
}

/// A store that misbehaves in what it reports, rather than in its data: bounds that add
/// up past 64 bits, bounds that fail, a group deletion that fails. Each comes back as a
/// status (never a panic or a wrapped number), the topic's last write error stays
/// readable, and a group whose deletion failed in the store can be deleted again.
#[test]
fn a_store_failing_its_bookkeeping_leaves_the_topic_readable_and_deletions_retryable() {
    let _serial = serial();
    let before = live_handle_counts();
    let shared = TestStore::new(2);
    let (manager, _, _) = manager();
    create(manager, "s", 2, &shared);
    publish_direct(manager, "s", 1, None, b"one");
    let topic = c("s");

    // Two partitions of 0..u64::MAX each: `retained` saturates.
    shared.state.lock().unwrap().huge_bounds = true;
    assert_eq!(topic_info(manager, "s").retained, u64::MAX);
    shared.state.lock().unwrap().huge_bounds = false;

    // A failing append, then failing bounds (a dead disk): the info fails with the store's
    // status, the last write error is still read.
    shared.state.lock().unwrap().fail_append = Some(77);
    assert_status!(try_publish_two(manager, &topic), LC_ERR_TOPIC_STORE);
    shared.state.lock().unwrap().fail_bounds = Some(-5);
    let mut info: lc_topic_info = sized_struct();
    // SAFETY: the string and the out-struct are live.
    let status = unsafe { lc_topic_get_info(manager, topic.as_ptr(), &mut info) };
    assert_status!(status, LC_ERR_TOPIC_STORE);
    assert!(last_error().contains("code -5"), "{}", last_error());
    let message = last_write_error(manager, &topic);
    assert!(message.contains("code 77"), "{message}");
    {
        let mut state = shared.state.lock().unwrap();
        state.fail_append = None;
        state.fail_bounds = None;
    }

    // A group commits; its deletion fails in the store: the group is gone, the store still
    // holds its offset, and deleting again forgets it, after which the name is unknown.
    create_group(manager, "s", "g", &group_config(EARLIEST, 30_000));
    let consumer = connect(manager, "worker");
    let batch = consume(manager, consumer, "s", "g", 10, 0);
    assert_eq!(batch_info(batch).message_count, 1);
    commit_batch(manager, consumer, batch);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert!(shared.state.lock().unwrap().offsets.len() == 1);
    shared.state.lock().unwrap().fail_delete_group = Some(9);
    let group = c("g");
    let delete = || {
        // SAFETY: the strings are live.
        unsafe { lc_topic_group_delete(manager, topic.as_ptr(), group.as_ptr()) }
    };
    assert_status!(delete(), LC_ERR_TOPIC_STORE);
    let mut stats: lc_topic_group_stats = sized_struct();
    // SAFETY: the strings and the out-struct are live.
    let status =
        unsafe { lc_topic_group_get_stats(manager, topic.as_ptr(), group.as_ptr(), &mut stats) };
    assert_status!(status, LC_ERR_UNKNOWN_GROUP);
    assert_status!(delete(), LC_ERR_TOPIC_STORE);
    // While the store still fails, the name cannot be created again: it would resume.
    let config = group_config(EARLIEST, 30_000);
    // SAFETY: the strings and the config are live.
    let status = unsafe { lc_topic_group_create(manager, topic.as_ptr(), group.as_ptr(), &config) };
    assert_status!(status, LC_ERR_TOPIC_STORE);
    shared.state.lock().unwrap().fail_delete_group = None;
    assert_status!(delete(), LC_OK);
    assert!(shared.state.lock().unwrap().offsets.is_empty());
    assert_status!(delete(), LC_ERR_UNKNOWN_GROUP);
    // Created again, the group starts from its reset policy, not the deleted offset.
    create_group(manager, "s", "g", &config);
    let batch = consume(manager, consumer, "s", "g", 10, 0);
    assert_eq!(batch_info(batch).message_count, 1);
    commit_batch(manager, consumer, batch);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    // A create after a failed deletion finishes it once the store works again.
    shared.state.lock().unwrap().fail_delete_group = Some(9);
    assert_status!(delete(), LC_ERR_TOPIC_STORE);
    shared.state.lock().unwrap().fail_delete_group = None;
    create_group(manager, "s", "g", &config);
    let batch = consume(manager, consumer, "s", "g", 10, 0);
    assert_eq!(batch_info(batch).message_count, 1, "not resumed past it");
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_status!(delete(), LC_OK);

    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(shared.freed(), 1);
    assert_eq!(live_handle_counts(), before);
}

#[test]
fn a_failed_create_leaves_user_data_with_the_caller() {
    let _serial = serial();
    let shared = TestStore::new(1);
    let (manager, _, _) = manager();

    // A missing callback.
    let mut missing = callbacks(&shared);
    missing.delete_group = None;
    assert_status!(try_create(manager, "t", 1, &missing), LC_ERR_NULL_ARGUMENT);
    assert!(
        last_error().contains("store->delete_group"),
        "{}",
        last_error()
    );
    release(&missing);

    // Bounds that make no sense, asked during the create.
    shared.state.lock().unwrap().lying_bounds = true;
    let lying = callbacks(&shared);
    assert_status!(try_create(manager, "t", 1, &lying), LC_ERR_TOPIC_STORE);
    assert!(
        last_error().contains("start 10 after end 5"),
        "{}",
        last_error()
    );
    release(&lying);
    shared.state.lock().unwrap().lying_bounds = false;

    // A taken name.
    create_topic(manager, "taken", &topic_config(1));
    let taken = callbacks(&shared);
    assert_status!(try_create(manager, "taken", 1, &taken), LC_ERR_TOPIC_EXISTS);
    release(&taken);

    // A store without free_user_data is fine: nothing is freed.
    let mut no_free = callbacks(&shared);
    no_free.free_user_data = None;
    assert_status!(try_create(manager, "t", 1, &no_free), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
    release(&no_free);

    assert_eq!(shared.freed(), 0);
    assert_eq!(Arc::strong_count(&shared), 1);
}

#[test]
fn topics_and_routes_are_listed() {
    let _serial = serial();
    let before = live_handle_counts();
    let (manager, messages, _) = manager();
    create_topic(manager, "b", &topic_config(1));
    create_topic(manager, "a", &topic_config(1));
    let keyed = route_sql(
        manager,
        "a",
        "SELECT id, body FROM chat.messages WHERE room = 7",
        &route_options(LC_TOPIC_CHANGE_INSERT | LC_TOPIC_CHANGE_DELETE, Some(c"id")),
    );
    let table = c("a");
    let mut all = 0;
    assert_status!(
        // SAFETY: the string and options are live; `all` is a live local.
        unsafe {
            lc_topic_route_add(
                manager,
                table.as_ptr(),
                messages,
                null(),
                &route_options(LC_TOPIC_CHANGE_ALL, None),
                &mut all,
            )
        },
        LC_OK
    );

    let mut names = lc_topic_names::default();
    let mut count = 0;
    // SAFETY: the out-pointers are live locals; names are read before the list is freed.
    unsafe {
        assert_status!(lc_topic_list(manager, &mut names), LC_OK);
        assert_status!(lc_topic_names_count(names, &mut count), LC_OK);
        let listed: Vec<String> = (0..count)
            .map(|index| {
                let (mut name, mut len) = (null(), 0);
                assert_status!(lc_topic_names_get(names, index, &mut name, &mut len), LC_OK);
                let name = CStr::from_ptr(name).to_str().unwrap().to_string();
                assert_eq!(name.len(), len);
                name
            })
            .collect();
        assert_eq!(listed, ["a", "b"]);
    }
    assert_eq!(lc_topic_names_free(names), LC_OK);

    let mut routes = lc_topic_routes::default();
    // SAFETY: the out-pointers are live locals; strings are read before the list is freed.
    unsafe {
        assert_status!(
            lc_topic_route_list(manager, table.as_ptr(), &mut routes),
            LC_OK
        );
        assert_status!(lc_topic_routes_count(routes, &mut count), LC_OK);
        assert_eq!(count, 2);
        let text = |ptr: *const c_char| {
            (!ptr.is_null()).then(|| CStr::from_ptr(ptr).to_str().unwrap().to_string())
        };
        let mut info: lc_topic_route_info = sized_struct();
        assert_status!(lc_topic_routes_get(routes, 0, &mut info), LC_OK);
        assert_eq!(info.id, keyed);
        assert_eq!(info.table, messages);
        assert_eq!(
            info.change_types,
            LC_TOPIC_CHANGE_INSERT | LC_TOPIC_CHANGE_DELETE
        );
        assert_eq!(info.flags, 0);
        assert_eq!(text(info.table_namespace).as_deref(), Some("chat"));
        assert_eq!(text(info.table_name).as_deref(), Some("messages"));
        assert!(text(info.filter).unwrap().contains("room"));
        assert_eq!(text(info.key_column).as_deref(), Some("id"));
        assert_eq!(text(info.broken), None);
        assert_eq!(info.column_count, 2);
        let mut column = null();
        let mut column_len = 0;
        assert_status!(
            lc_topic_routes_column(routes, 0, 1, &mut column, &mut column_len),
            LC_OK
        );
        assert_eq!(text(column).as_deref(), Some("body"));
        assert_eq!(column_len, 4);
        assert_eq!(
            (
                info.table_namespace_len,
                info.table_name_len,
                info.key_column_len
            ),
            (4, 8, 2)
        );
        assert_eq!(info.broken_len, 0);

        assert_status!(lc_topic_routes_get(routes, 1, &mut info), LC_OK);
        assert_eq!(info.id, all);
        assert_eq!(info.flags, LC_TOPIC_ROUTE_ALL_COLUMNS);
        assert_eq!(info.change_types, LC_TOPIC_CHANGE_ALL);
        assert_eq!((text(info.filter), text(info.key_column)), (None, None));
        assert_eq!(info.column_count, 0);
        assert_status!(
            lc_topic_routes_column(routes, 1, 0, &mut column, &mut column_len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
    }
    assert_eq!(lc_topic_routes_free(routes), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(live_handle_counts(), before);
}

/// A manager over a one-partition [`TestStore`] topic "s" holding 3 messages, with group
/// "g" (earliest) and a consumer.
fn three_messages() -> (lc_manager, Arc<TestStore>, u64) {
    let shared = TestStore::new(1);
    let (manager, _, _) = manager();
    create(manager, "s", 1, &shared);
    create_group(manager, "s", "g", &group_config(EARLIEST, 30_000));
    for seq in 0..3 {
        publish_direct(manager, "s", seq, None, b"old");
    }
    let consumer = connect(manager, "worker");
    (manager, shared, consumer)
}

#[test]
fn a_store_read_that_pushes_nothing_moves_past_the_gap_and_parks() {
    let _serial = serial();
    let (manager, shared, consumer) = three_messages();
    // The store lost everything up to the end: a read at 0 pushes nothing (there is no
    // retained offset after it), and its bounds start at 3.
    shared.state.lock().unwrap().lost_below = 3;
    let parks = stats(manager).consume_parks;
    let (status, batch) = try_consume(manager, consumer, "s", "g", 10, 200);
    assert_status!(status, LC_OK);
    let info = batch_info(batch);
    assert_eq!((info.message_count, info.retention_skip_count), (0, 1));
    assert_eq!(batch_position(batch, 0).next, 3);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    // It parked (before, it spun on reads that found nothing until the timeout).
    assert!(stats(manager).consume_parks > parks);
    let reads = shared.state.lock().unwrap().reads;
    assert!(reads <= 3, "{reads} reads");
    assert_eq!(group_stats(manager, "s", "g").skipped_by_retention, 3);
    // Later messages come through.
    publish_direct(manager, "s", 3, None, b"later");
    let batch = consume(manager, consumer, "s", "g", 10, 0);
    assert_eq!(seqs(batch), [3]);
    assert_eq!(batch_message(batch, 0).offset, 3);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(shared.freed(), 1);
}

#[test]
fn pushes_at_or_past_the_partition_end_are_refused() {
    let _serial = serial();
    let (manager, shared, consumer) = three_messages();
    // After the 3 real messages the store pushes one at offset 1,000,000 (end is 3): it is
    // refused and not handed out, so the lease and the commit stay within the partition.
    shared.state.lock().unwrap().bogus_push = Some(1_000_000);
    let batch = consume(manager, consumer, "s", "g", 10, 0);
    assert_eq!(seqs(batch), [0, 1, 2]);
    assert_eq!(batch_position(batch, 0).next, 3);
    assert_eq!(
        shared.state.lock().unwrap().bogus_push_status,
        Some(LC_ERR_TOPIC_STORE)
    );
    commit_batch(manager, consumer, batch);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(shared.committed("g", 0), Some(3));
    // At the end exactly, too: a message livecore has not seen appended.
    shared.state.lock().unwrap().bogus_push = Some(3);
    create_group(manager, "s", "h", &group_config(EARLIEST, 30_000));
    let batch = consume(manager, consumer, "s", "h", 10, 0);
    assert_eq!(seqs(batch), [0, 1, 2]);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(
        shared.state.lock().unwrap().bogus_push_status,
        Some(LC_ERR_TOPIC_STORE)
    );
    // A store pushing only the bogus offset while its bounds hold 0..3: a store error,
    // and the group does not move.
    {
        let mut state = shared.state.lock().unwrap();
        state.bogus_push = Some(1_000_000);
        state.only_bogus = true;
    }
    create_group(manager, "s", "k", &group_config(EARLIEST, 30_000));
    let (status, _) = try_consume(manager, consumer, "s", "k", 10, 0);
    assert_status!(status, LC_ERR_TOPIC_STORE);
    assert!(
        last_error().contains("returned nothing below the end 3"),
        "{}",
        last_error()
    );
    assert_eq!(shared.committed("k", 0), None);
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(shared.freed(), 1);
}

#[test]
fn a_store_callback_calling_back_into_livecore_is_refused_not_deadlocked() {
    let _serial = serial();
    let (manager, shared, consumer) = three_messages();
    shared.state.lock().unwrap().reenter = Some(manager);
    let batch = consume(manager, consumer, "s", "g", 10, 0);
    // The commit calls the store's commit_offset under the group's lock; the callback's
    // lc_topic_group_get_partition is refused at once (it would wait for that lock).
    commit_batch(manager, consumer, batch);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    let reentered = std::mem::take(&mut shared.state.lock().unwrap().reentered);
    assert_eq!(reentered.len(), 1);
    let (status, last, message) = &reentered[0];
    assert_eq!((*status, *last), (LC_ERR_INVALID_STATE, LC_OK));
    assert!(
        message.contains("lc_topic_group_get_partition: called from inside a topic store callback"),
        "{message}"
    );
    assert_eq!(shared.committed("g", 0), Some(3));
    // Outside the callback the same call works.
    shared.state.lock().unwrap().reenter = None;
    let mut info: lc_topic_group_partition = sized_struct();
    let (topic, group) = (c("s"), c("g"));
    assert_status!(
        // SAFETY: the strings and the out-struct are live.
        unsafe {
            lc_topic_group_get_partition(manager, topic.as_ptr(), group.as_ptr(), 0, &mut info)
        },
        LC_OK
    );
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(shared.freed(), 1);
}

#[test]
fn a_read_during_thread_local_teardown_fails_cleanly() {
    let _serial = serial();
    let (manager, shared, _) = three_messages();
    /// Reads topic "s" when its thread's thread-locals are destroyed.
    struct ReadOnExit {
        manager: lc_manager,
        status: Arc<Mutex<Option<lc_status>>>,
    }
    impl Drop for ReadOnExit {
        fn drop(&mut self) {
            let (status, batch) = try_read(self.manager, "s", 0, 0, 10);
            if status == LC_OK {
                lc_topic_batch_free(batch);
            }
            *self.status.lock().unwrap() = Some(status);
        }
    }
    thread_local! {
        static READ_ON_EXIT: std::cell::RefCell<Option<ReadOnExit>> =
            const { std::cell::RefCell::new(None) };
    }
    let status = Arc::new(Mutex::new(None));
    let reader = {
        let status = status.clone();
        std::thread::spawn(move || {
            // Registered first, so destroyed after livecore's own thread-locals, which the
            // read below registers.
            READ_ON_EXIT.with(|slot| *slot.borrow_mut() = Some(ReadOnExit { manager, status }));
            let (read, batch) = try_read(manager, "s", 0, 0, 10);
            assert_status!(read, LC_OK);
            assert_eq!(lc_topic_batch_free(batch), LC_OK);
        })
    };
    // Joining waits for the thread's exit, thread-local destructors included.
    reader.join().unwrap();
    // A store error (the read cannot take pushes), not a panic caught at the boundary.
    assert_eq!(*status.lock().unwrap(), Some(LC_ERR_TOPIC_STORE));
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(shared.freed(), 1);
}
