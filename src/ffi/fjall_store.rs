//! The durable fjall store through the C ABI: a store opened by path, with no host
//! callbacks (`lc_fjall_store_open`), and topics kept in it (`lc_topic_create_with_fjall`).
//!
//! The functions exist only in a library built with the core's `fjall` feature (cargo-c
//! included: `cargo cbuild --features fjall`); the header declares them only when the host
//! defines `LC_HAS_FJALL` before including it (cbindgen turns the `cfg` into that `#if`).
//! The handle and the sync enum are declared in every build, so the handle table stays the
//! same shape with and without the feature.

#[cfg(feature = "fjall")]
use crate::ffi::status::{boundary, lc_status, FfiError};

/// A durable topic store in a directory (`lc_fjall_store_open`, only with `LC_HAS_FJALL`).
/// Opaque. Freed by `lc_fjall_store_free`; topics created in it keep it open until they
/// are deleted and no longer used (or their manager is freed and the calls running on it
/// have returned).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct lc_fjall_store {
    /// Opaque.
    pub id: u64,
}

/// When a fjall store acknowledges an append or a commit (passed as `uint32_t` to
/// `lc_fjall_store_open`, checked).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lc_fjall_sync {
    /// fsync before each acknowledgement (of each append — the records one publish
    /// routes to one partition, as one batch — and of each commit): nothing acknowledged
    /// is lost, even on power loss; every publish that feeds the topic waits for an fsync
    /// per partition it feeds.
    LC_FJALL_SYNC_EVERY_APPEND = 0,
    /// Written to the operating system (a `write`, no fsync) before each acknowledgement
    /// and fsynced every `sync_interval_ms` in the background: a crash of the process loses
    /// nothing acknowledged; a power loss or kernel crash may lose what was acknowledged in
    /// the last interval. Publish waits for no fsync of its own, but an append arriving
    /// during the background fsync waits for it (fjall holds its journal lock then), and
    /// under either policy fjall may stall writes while its flushes and compactions catch
    /// up. No policy syncs once for several appends: an append is readable (and consumers
    /// are woken) when it returns, so it must be as durable as promised by then.
    LC_FJALL_SYNC_INTERVAL = 1,
}

/// What an `lc_fjall_store` handle holds: the open store (only with the feature; without
/// it no handle of this kind is ever made).
pub(crate) struct FjallStoreEntry {
    #[cfg(feature = "fjall")]
    pub(crate) store: crate::sync::Arc<crate::FjallStore>,
}

#[cfg(feature = "fjall")]
mod enabled {
    use std::ffi::c_char;
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::ffi::handles::Handle;
    use crate::ffi::manager::manager_entry;
    use crate::ffi::ptr::{c_str, read_sized, Out};
    use crate::ffi::topics::{check_topic_name, default_topic_config};
    use crate::ffi::types::lc_topic_config;
    use crate::topics::validate_name;
    use crate::{FjallStore, FjallSync, LiveError, TopicConfig, TopicLogError};

    fn store_failed(error: TopicLogError) -> FfiError {
        FfiError::new(lc_status::LC_ERR_TOPIC_STORE, error.to_string())
    }

    const EVERY_APPEND: u32 = lc_fjall_sync::LC_FJALL_SYNC_EVERY_APPEND as u32;
    const INTERVAL: u32 = lc_fjall_sync::LC_FJALL_SYNC_INTERVAL as u32;

    /// Checks `sync` and its interval.
    pub(super) fn sync_policy(sync: u32, interval_ms: u32) -> Result<FjallSync, FfiError> {
        match sync {
            EVERY_APPEND if interval_ms == 0 => Ok(FjallSync::EveryAppend),
            EVERY_APPEND => Err(FfiError::invalid(format!(
                "sync_interval_ms must be 0 with LC_FJALL_SYNC_EVERY_APPEND, not {interval_ms}"
            ))),
            INTERVAL if (1..=u32::from(u16::MAX)).contains(&interval_ms) => Ok(
                FjallSync::Interval(Duration::from_millis(u64::from(interval_ms))),
            ),
            INTERVAL => Err(FfiError::invalid(format!(
                "sync_interval_ms must be 1 to 65535 with LC_FJALL_SYNC_INTERVAL, not {interval_ms}"
            ))),
            other => Err(FfiError::new(
                lc_status::LC_ERR_INVALID_TAG,
                format!("sync {other} is not an lc_fjall_sync"),
            )),
        }
    }

    /// Checks the path: not empty, and neither it nor the nearest of its parents that
    /// exists is something other than a directory (a file, say, or a symbolic link that
    /// leads nowhere: dangling or looping).
    pub(super) fn check_path(path: &str) -> Result<&Path, FfiError> {
        if path.is_empty() {
            return Err(FfiError::invalid("path is empty"));
        }
        let path = Path::new(path);
        // `None` for a link whose target cannot be reached.
        let existing = path.ancestors().find_map(|at| match std::fs::metadata(at) {
            Ok(meta) => Some((at, Some(meta))),
            Err(_) if std::fs::symlink_metadata(at).is_ok() => Some((at, None)),
            Err(_) => None,
        });
        match existing {
            Some((at, None)) => Err(FfiError::invalid(format!(
                "path {}: {} is a symbolic link that leads nowhere (dangling or looping)",
                path.display(),
                at.display()
            ))),
            Some((at, Some(meta))) if !meta.is_dir() => Err(FfiError::invalid(format!(
                "path {}: {} exists and is not a directory",
                path.display(),
                at.display()
            ))),
            _ => Ok(path),
        }
    }

    pub(super) fn open(
        path: *const c_char,
        sync: u32,
        sync_interval_ms: u32,
        out_store: *mut lc_fjall_store,
    ) -> Result<lc_status, FfiError> {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let path = unsafe { c_str(path, "path") }?;
        // SAFETY: the caller promised `out_store` is NULL or writable.
        let out = unsafe { Out::new(out_store, "out_store") }?;
        let policy = sync_policy(sync, sync_interval_ms)?;
        let path = check_path(path)?;
        let store = FjallStore::open(path, policy).map_err(store_failed)?;
        out.write(lc_fjall_store::insert(FjallStoreEntry { store }));
        Ok(lc_status::LC_OK)
    }

    /// # Safety
    /// As `lc_topic_create_with_fjall`.
    pub(super) unsafe fn create(
        manager: crate::ffi::types::lc_manager,
        name: *const c_char,
        config: *const lc_topic_config,
        store: lc_fjall_store,
    ) -> Result<lc_status, FfiError> {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: the caller promised `config` is NULL or readable for its struct_size.
        let config = unsafe { read_sized(config, default_topic_config(), "config") }?;
        let store = store.get()?;
        let entry = manager_entry(manager)?;
        check_topic_name(&entry, name, "name")?;
        let topic = TopicConfig::partitions(config.partitions)
            .retention(config.retention_max_messages, config.retention_max_bytes);
        // What the manager would refuse (name, limits, a taken name) is refused before the
        // store is touched; the manager checks again when it installs the topic.
        validate_name("topic", name, entry.manager.config().topics.max_name_len)?;
        entry.manager.check_topic_config(&topic)?;
        if entry.manager.topic(name).is_ok() {
            return Err(LiveError::TopicExists(name.to_string()).into());
        }
        let log = store
            .store
            .topic_log(name, topic.partitions, topic.retention)
            .map_err(store_failed)?;
        entry
            .manager
            .create_topic_with_log(name, topic, Box::new(log))?;
        Ok(lc_status::LC_OK)
    }
}

/// Opens (or creates, with its parents) the durable fjall store in directory `path`,
/// recovering what the last process acknowledged, and gives its handle in `*out_store`.
/// `sync` is an `lc_fjall_sync`: `LC_FJALL_SYNC_EVERY_APPEND` with `sync_interval_ms` 0,
/// or `LC_FJALL_SYNC_INTERVAL` with `sync_interval_ms` 1 to 65535 (what each loses on power
/// loss: see `lc_fjall_sync`). Topics are created in it with `lc_topic_create_with_fjall`;
/// no host callback is involved.
///
/// Only in a library built with the `fjall` feature, and declared only when
/// `LC_HAS_FJALL` is defined before the header is included.
///
/// Errors: NULL `path` or `out_store` `LC_ERR_NULL_ARGUMENT`; `path` not UTF-8
/// `LC_ERR_INVALID_UTF8`; an unknown `sync` `LC_ERR_INVALID_TAG`; a bad interval, an empty
/// path, or a path that is (or lies under) something other than a directory (a file, a
/// symbolic link that leads nowhere) `LC_ERR_INVALID_ARGUMENT`; a directory this
/// process already holds open (a store not yet freed, or still used by a topic)
/// `LC_ERR_TOPIC_STORE`, as are an I/O error and files damaged beyond recovery
/// (`lc_last_error` says which). A failed call opens nothing.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out_store` is NULL or writable.
#[cfg(feature = "fjall")]
#[no_mangle]
pub unsafe extern "C" fn lc_fjall_store_open(
    path: *const std::ffi::c_char,
    sync: u32,
    sync_interval_ms: u32,
    out_store: *mut lc_fjall_store,
) -> lc_status {
    boundary("lc_fjall_store_open", || {
        enabled::open(path, sync, sync_interval_ms, out_store)
    })
}

/// Gives up this handle on a fjall store. Topics created in it keep the store open until
/// they are deleted and no longer used, or their manager is freed and the calls other
/// threads were making on that manager when it was freed have returned (`lc_manager_free`
/// does not wait for them); then its directory may be opened again. A zero, stale or already freed handle is `LC_ERR_INVALID_HANDLE`.
///
/// Only in a library built with the `fjall` feature, and declared only when
/// `LC_HAS_FJALL` is defined before the header is included.
///
/// Thread safety: any thread, concurrently with any other call.
#[cfg(feature = "fjall")]
#[no_mangle]
pub extern "C" fn lc_fjall_store_free(store: lc_fjall_store) -> lc_status {
    use crate::ffi::handles::Handle;
    boundary("lc_fjall_store_free", || store.free())
}

/// Creates a topic kept in the fjall store `store`: `name` and `config` as for
/// `lc_topic_create` (retention is applied by the store, trimming in the same write as the
/// append). Messages and committed group offsets the store already holds for a topic of
/// this name are there again: they can be consumed and read, and a consumer group created
/// later resumes at its committed offset. A topic stored before with another partition
/// count is refused, as is one whose stored messages are damaged (a checksum that fails,
/// offsets that are not contiguous): both `LC_ERR_TOPIC_STORE`.
///
/// Only in a library built with the `fjall` feature, and declared only when
/// `LC_HAS_FJALL` is defined before the header is included.
///
/// Errors: as `lc_topic_create` (a taken name `LC_ERR_TOPIC_EXISTS`), and a zero, stale or
/// freed `store` `LC_ERR_INVALID_HANDLE`. The store's failures are `LC_ERR_TOPIC_STORE`
/// (on the publish path they are counted, as for `lc_topic_create_with_store`).
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `config` is NULL or readable for its
/// `struct_size`.
#[cfg(feature = "fjall")]
#[no_mangle]
pub unsafe extern "C" fn lc_topic_create_with_fjall(
    manager: crate::ffi::types::lc_manager,
    name: *const std::ffi::c_char,
    config: *const crate::ffi::types::lc_topic_config,
    store: lc_fjall_store,
) -> lc_status {
    boundary("lc_topic_create_with_fjall", || {
        // SAFETY: the caller's promises are passed on unchanged.
        unsafe { enabled::create(manager, name, config, store) }
    })
}
