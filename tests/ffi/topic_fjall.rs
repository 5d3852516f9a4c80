//! The fjall store opened by path through the C ABI (feature `fjall`): the contract cases
//! of its functions (NULL, invalid, stale handles; run by `contract.rs` with the others),
//! and a store written through the C ABI, given up, reopened by path and read back.

use std::ffi::c_char;
use std::path::PathBuf;
use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

/// Invalid UTF-8, NUL-terminated.
const BAD_UTF8: &[u8] = b"\xff\xfeab\0";

fn bad_utf8() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

const EVERY: u32 = lc_fjall_sync::LC_FJALL_SYNC_EVERY_APPEND as u32;
const INTERVAL: u32 = lc_fjall_sync::LC_FJALL_SYNC_INTERVAL as u32;

/// A fresh directory for one test (removed when dropped).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("livecore-ffi-fjall-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn c_path(&self) -> std::ffi::CString {
        c(self.0.to_str().unwrap())
    }
}

impl Drop for TempDir {
    /// Removes what the case left under the path: a directory, or the plain file a case
    /// writes there to be refused. A store's background writer that is still finishing
    /// may add a file while the directory is removed, so removal is tried a few times.
    fn drop(&mut self) {
        if self.0.is_file() {
            let _ = std::fs::remove_file(&self.0);
            return;
        }
        for _ in 0..5 {
            if std::fs::remove_dir_all(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn open(dir: &TempDir, sync: u32, interval_ms: u32) -> (lc_status, lc_fjall_store) {
    let path = dir.c_path();
    let mut store = lc_fjall_store::default();
    // SAFETY: the path is a live NUL-terminated string; `store` is a live local.
    let status = unsafe { lc_fjall_store_open(path.as_ptr(), sync, interval_ms, &mut store) };
    (status, store)
}

fn create_in(manager: lc_manager, name: &str, partitions: u32, store: lc_fjall_store) -> lc_status {
    let name = c(name);
    let config = topic_config(partitions);
    // SAFETY: the name and config are live.
    unsafe { lc_topic_create_with_fjall(manager, name.as_ptr(), &config, store) }
}

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

fn case_lc_fjall_store_open() {
    let dir = TempDir::new("open-case");
    let path = dir.c_path();
    let mut store = lc_fjall_store::default();
    let file = TempDir::new("open-case-file");
    std::fs::write(&file.0, b"not a directory").unwrap();
    let file_path = file.c_path();
    let under_file = c(file.0.join("store").to_str().unwrap());
    // A link to a path that does not exist, and a link to itself.
    let links = TempDir::new("open-case-links");
    std::fs::create_dir(&links.0).unwrap();
    let dangling = links.0.join("dangling");
    std::os::unix::fs::symlink(links.0.join("nowhere"), &dangling).unwrap();
    let looping = links.0.join("looping");
    std::os::unix::fs::symlink(&looping, &looping).unwrap();
    let (dangling, looping) = (c(dangling.to_str().unwrap()), c(looping.to_str().unwrap()));
    let empty = c("");
    // SAFETY: see above.
    unsafe {
        let open = |path: *const c_char, sync: u32, interval: u32, out: *mut lc_fjall_store| {
            lc_fjall_store_open(path, sync, interval, out)
        };
        assert_status!(open(null(), EVERY, 0, &mut store), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            open(path.as_ptr(), EVERY, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(open(bad_utf8(), EVERY, 0, &mut store), LC_ERR_INVALID_UTF8);
        assert_status!(open(path.as_ptr(), 2, 0, &mut store), LC_ERR_INVALID_TAG);
        assert_status!(
            open(path.as_ptr(), EVERY, 5, &mut store),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            open(path.as_ptr(), INTERVAL, 0, &mut store),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            open(path.as_ptr(), INTERVAL, 65_536, &mut store),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            open(empty.as_ptr(), EVERY, 0, &mut store),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            open(file_path.as_ptr(), EVERY, 0, &mut store),
            LC_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("not a directory"), "{}", last_error());
        assert_status!(
            open(under_file.as_ptr(), EVERY, 0, &mut store),
            LC_ERR_INVALID_ARGUMENT
        );
        for link in [&dangling, &looping] {
            assert_status!(
                open(link.as_ptr(), EVERY, 0, &mut store),
                LC_ERR_INVALID_ARGUMENT
            );
            assert!(last_error().contains("leads nowhere"), "{}", last_error());
        }
        assert_eq!(
            store,
            lc_fjall_store::default(),
            "a refused open writes nothing"
        );
        assert!(!dir.0.exists(), "a refused open creates nothing");
        assert_status!(open(path.as_ptr(), INTERVAL, 50, &mut store), LC_OK);
        // The directory is held open by this process: a second open is refused.
        let mut second = lc_fjall_store::default();
        assert_status!(
            open(path.as_ptr(), EVERY, 0, &mut second),
            LC_ERR_TOPIC_STORE
        );
        assert!(last_error().contains("already open"), "{}", last_error());
        assert_eq!(second, lc_fjall_store::default());
    }
    assert_eq!(lc_fjall_store_free(store), LC_OK);
    // Given up (no topic uses it): the directory opens again.
    let (status, again) = open(&dir, EVERY, 0);
    assert_status!(status, LC_OK);
    assert_eq!(lc_fjall_store_free(again), LC_OK);
}

fn case_lc_fjall_store_free() {
    let dir = TempDir::new("free-case");
    let (status, store) = open(&dir, EVERY, 0);
    assert_status!(status, LC_OK);
    assert_status!(
        lc_fjall_store_free(lc_fjall_store::default()),
        LC_ERR_INVALID_HANDLE
    );
    let (manager, _, _) = manager();
    // A handle of another kind.
    assert_status!(
        lc_fjall_store_free(lc_fjall_store { id: manager.id }),
        LC_ERR_INVALID_HANDLE
    );
    assert_eq!(lc_fjall_store_free(store), LC_OK);
    assert_status!(lc_fjall_store_free(store), LC_ERR_INVALID_HANDLE);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

fn case_lc_topic_create_with_fjall() {
    let dir = TempDir::new("create-case");
    let (status, store) = open(&dir, EVERY, 0);
    assert_status!(status, LC_OK);
    let (manager, _, _) = manager();
    let stale_manager = manager_with(&config());
    assert_eq!(lc_manager_free(stale_manager), LC_OK);
    let (stale_dir, stale_store) = {
        let dir = TempDir::new("create-case-stale");
        let (status, stale) = open(&dir, EVERY, 0);
        assert_status!(status, LC_OK);
        assert_eq!(lc_fjall_store_free(stale), LC_OK);
        (dir, stale)
    };
    let (t, bad_name) = (c("t"), c("no spaces"));
    let good = topic_config(2);
    let mut too_many = topic_config(2);
    too_many.partitions = 0;
    let mut short = topic_config(2);
    short.struct_size = 0;
    // SAFETY: see above.
    unsafe {
        let create = |manager: lc_manager,
                      name: *const c_char,
                      config: *const lc_topic_config,
                      store: lc_fjall_store| {
            lc_topic_create_with_fjall(manager, name, config, store)
        };
        assert_status!(create(manager, null(), &good, store), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            create(manager, bad_utf8(), &good, store),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            create(manager, t.as_ptr(), null(), store),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            create(manager, t.as_ptr(), &short, store),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            create(manager, bad_name.as_ptr(), &good, store),
            LC_ERR_INVALID_NAME
        );
        assert_status!(
            create(manager, t.as_ptr(), &too_many, store),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            create(manager, t.as_ptr(), &good, lc_fjall_store::default()),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            create(manager, t.as_ptr(), &good, stale_store),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            create(
                manager,
                t.as_ptr(),
                &good,
                lc_fjall_store { id: manager.id }
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            create(stale_manager, t.as_ptr(), &good, store),
            LC_ERR_INVALID_HANDLE
        );
        // None of the refusals made the topic.
        let mut info: lc_topic_info = sized_struct();
        assert_status!(
            lc_topic_get_info(manager, t.as_ptr(), &mut info),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(create(manager, t.as_ptr(), &good, store), LC_OK);
        assert_status!(
            create(manager, t.as_ptr(), &good, store),
            LC_ERR_TOPIC_EXISTS
        );
    }
    // Another manager, while the first one's topic lives: one log per topic and store.
    let other = manager_with(&config());
    assert_status!(create_in(other, "t", 2, store), LC_ERR_TOPIC_STORE);
    assert!(last_error().contains("live log"), "{}", last_error());
    // Once it is gone, the store remembers the topic's shape: another partition count is
    // refused, the same one accepted.
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_status!(create_in(other, "t", 3, store), LC_ERR_TOPIC_STORE);
    assert!(last_error().contains("partitions"), "{}", last_error());
    assert_status!(create_in(other, "t", 2, store), LC_OK);
    assert_eq!(lc_manager_free(other), LC_OK);
    assert_eq!(lc_fjall_store_free(store), LC_OK);
    drop(stale_dir);
}

/// The cases of the fjall functions, run by `contract.rs` in a `fjall` build.
pub const FJALL_CASES: &[(&str, fn())] = &[
    ("lc_fjall_store_open", case_lc_fjall_store_open),
    ("lc_fjall_store_free", case_lc_fjall_store_free),
    (
        "lc_topic_create_with_fjall",
        case_lc_topic_create_with_fjall,
    ),
];

/// The payload of a batch's message, copied.
fn payload(batch: lc_topic_batch, index: usize) -> Vec<u8> {
    let message = batch_message(batch, index);
    // SAFETY: the live batch owns `payload_len` bytes at `payload`.
    unsafe { std::slice::from_raw_parts(message.payload, message.payload_len).to_vec() }
}

#[test]
fn a_fjall_topic_written_through_the_c_abi_reads_back_after_a_reopen_by_path() {
    let _serial = serial();
    let before = live_handle_counts();
    let dir = TempDir::new("reopen");
    let mut first_life = Vec::new();
    // First life: publish, consume and commit part of it.
    {
        let (status, store) = open(&dir, EVERY, 0);
        assert_status!(status, LC_OK);
        let (manager, _, _) = manager();
        assert_status!(create_in(manager, "orders", 2, store), LC_OK);
        // The topic keeps the store open: the handle can go at once.
        assert_eq!(lc_fjall_store_free(store), LC_OK);
        create_group(
            manager,
            "orders",
            "billing",
            &group_config(lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST, 30_000),
        );
        for seq in 0..6u64 {
            let key = int(seq as i64 % 2);
            publish_direct(
                manager,
                "orders",
                seq + 1,
                Some(&key),
                format!("m{seq}").as_bytes(),
            );
        }
        let worker = connect(manager, "worker");
        let batch = consume(manager, worker, "orders", "billing", 2, 0);
        assert_eq!(batch_info(batch).message_count, 2);
        for index in 0..2 {
            first_life.push(String::from_utf8(payload(batch, index)).unwrap());
            let message = batch_message(batch, index);
            assert_status!(
                commit(
                    manager,
                    worker,
                    "orders",
                    "billing",
                    message.partition,
                    message.offset + 1
                ),
                LC_OK
            );
        }
        assert_eq!(lc_topic_batch_free(batch), LC_OK);
        assert_eq!(topic_info(manager, "orders").appended, 6);
        // Freeing the manager drops the topic, which closes the store.
        assert_eq!(lc_manager_free(manager), LC_OK);
    }
    // Second life: the same path, a new manager; everything is there.
    let (status, store) = open(&dir, INTERVAL, 20);
    assert_status!(status, LC_OK);
    let (manager, _, _) = manager();
    assert_status!(create_in(manager, "orders", 2, store), LC_OK);
    let info = topic_info(manager, "orders");
    assert_eq!(info.appended, 0, "nothing was appended in this life");
    let mut total = 0;
    let mut payloads = Vec::new();
    for partition in 0..2u32 {
        let (mut start, mut end) = (u64::MAX, u64::MAX);
        let name = c("orders");
        // SAFETY: the name is live; the outs are live locals.
        let status = unsafe {
            lc_topic_get_partition_bounds(manager, name.as_ptr(), partition, &mut start, &mut end)
        };
        assert_status!(status, LC_OK);
        assert_eq!(start, 0);
        total += end;
    }
    assert_eq!(total, 6, "every message is back");
    // The group resumes at its committed offsets: the 4 messages not committed come out,
    // in offset order per partition.
    create_group(
        manager,
        "orders",
        "billing",
        &group_config(lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST, 30_000),
    );
    let worker = connect(manager, "worker");
    let batch = consume(manager, worker, "orders", "billing", 100, 0);
    let count = batch_info(batch).message_count as usize;
    let mut last_offset = [None::<u64>; 2];
    for index in 0..count {
        let message = batch_message(batch, index);
        let partition = message.partition as usize;
        assert!(last_offset[partition].is_none_or(|last| message.offset == last + 1));
        last_offset[partition] = Some(message.offset);
        payloads.push(String::from_utf8(payload(batch, index)).unwrap());
    }
    assert_eq!(count, 4, "{payloads:?}");
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    // Published in this life, read back too (the interval policy acknowledges on write).
    publish_direct(manager, "orders", 7, Some(&int(0)), b"m6");
    assert_eq!(topic_info(manager, "orders").appended, 1);
    assert_eq!(lc_fjall_store_free(store), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
    assert_eq!(live_handle_counts(), before);
    // What the first life committed and what the second handed out are the six messages.
    let mut every: Vec<String> = payloads.into_iter().chain(first_life).collect();
    every.sort();
    let expected: Vec<String> = (0..6).map(|seq| format!("m{seq}")).collect();
    assert_eq!(every, expected);
}

#[test]
fn a_damaged_store_is_refused_with_a_store_error() {
    let _serial = serial();
    let dir = TempDir::new("damaged");
    let (status, store) = open(&dir, EVERY, 0);
    assert_status!(status, LC_OK);
    assert_eq!(lc_fjall_store_free(store), LC_OK);
    // The engine's format marker overwritten: the files cannot be trusted.
    let marker = dir.0.join("version");
    assert!(marker.exists(), "fjall keeps a format marker at {marker:?}");
    std::fs::write(&marker, b"junk").unwrap();
    let (status, store) = open(&dir, EVERY, 0);
    assert_status!(status, LC_ERR_TOPIC_STORE);
    assert!(last_error().contains("damaged"), "{}", last_error());
    assert_eq!(store, lc_fjall_store::default());
    // Refused, it holds nothing: the directory can be opened again once repaired.
    std::fs::remove_dir_all(&dir.0).unwrap();
    let (status, store) = open(&dir, EVERY, 0);
    assert_status!(status, LC_OK);
    assert_eq!(lc_fjall_store_free(store), LC_OK);
}
