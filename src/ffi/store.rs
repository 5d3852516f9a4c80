//! Host-supplied topic stores: `lc_topic_create_with_store` plugs a C store (an
//! `lc_topic_store` of callbacks) in as a topic's [`TopicLog`], and
//! `lc_topic_read_sink_push` is how its `read` callback hands blobs back.
//!
//! Records cross the boundary as blobs of `record_codec` (livecore's topic record format):
//! livecore encodes on append and decodes (checking the checksum and every field) on read,
//! so a store that returns damaged bytes makes the read fail with a store error; nothing a
//! callback returns is trusted (offsets that would overflow, bounds with `start > end`,
//! pushes out of order, beyond the maximum or at or past the partition's end are refused).
//! No memory changes owner: blobs are borrowed for the duration of a callback, in both
//! directions.
//!
//! Every callback runs under a `StoreCallbackGuard`: while it runs, the `lc_` functions
//! called on its thread (but the sink push and a few pure ones) are refused with
//! `LC_ERR_INVALID_STATE` instead of deadlocking on a lock livecore holds around it.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::ffi::manager::manager_entry;
use crate::ffi::ptr::{c_str, read_sized, slice};
use crate::ffi::status::{boundary, lc_status, FfiError, StoreCallbackGuard};
use crate::ffi::topics::{check_topic_name, default_topic_config};
use crate::ffi::types::*;
use crate::sync::{Arc, AtomicU8, DataArc, Ordering};
use crate::topics::record_codec::{decode_record, encode_record};
use crate::{PartitionBounds, TopicConfig, TopicLog, TopicLogError, TopicMessage, TopicRecord};

/// Where the `read` callback of an `lc_topic_store` hands over blobs, with
/// `lc_topic_read_sink_push`. Opaque; valid only during that callback, on its thread.
pub struct lc_topic_read_sink {
    partition: u32,
    /// The offset the read asked for: pushes start at or after it.
    requested: u64,
    /// The partition's end as livecore's own appends have raised it when the read started:
    /// pushes must stay below it.
    end: u64,
    max_messages: usize,
    state: RefCell<SinkState>,
}

struct SinkState {
    messages: Vec<DataArc<TopicMessage>>,
    /// The lowest offset the next push may carry.
    next_min: u64,
    /// The first thing that went wrong; the read fails with it.
    error: Option<String>,
}

thread_local! {
    /// The sinks of the read callbacks running on this thread (innermost last), by
    /// address: `lc_topic_read_sink_push` only dereferences a pointer found here.
    static ACTIVE_SINKS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Keeps a sink in [`ACTIVE_SINKS`] while it lives on the stack of a read.
struct ActiveSink(usize);

impl ActiveSink {
    /// Lists the sink. During thread-local teardown (a C destructor of another
    /// thread-local reading a topic) there is no list, so no push could be accepted: the
    /// read fails with a store error instead of panicking.
    fn enter(sink: &lc_topic_read_sink) -> Result<Self, TopicLogError> {
        let address = sink as *const lc_topic_read_sink as usize;
        ACTIVE_SINKS
            .try_with(|sinks| sinks.borrow_mut().push(address))
            .map_err(|_| {
                TopicLogError::Store(
                    "the calling thread is exiting (its thread-locals are gone): a topic store cannot be read on it".into(),
                )
            })?;
        Ok(Self(address))
    }
}

impl Drop for ActiveSink {
    fn drop(&mut self) {
        // During thread-local teardown the list is gone already: nothing to remove.
        let _ = ACTIVE_SINKS.try_with(|sinks| {
            let mut sinks = sinks.borrow_mut();
            if let Some(at) = sinks.iter().rposition(|address| *address == self.0) {
                sinks.remove(at);
            }
        });
    }
}

/// True when `address` is a sink of a read running on this thread (never during
/// thread-local teardown, when no read can be running).
fn is_active(address: usize) -> bool {
    ACTIVE_SINKS
        .try_with(|sinks| sinks.borrow().contains(&address))
        .unwrap_or(false)
}

/// Ownership of the store's `user_data`: livecore calls `free_user_data` only once the
/// create succeeded, and exactly once.
const PENDING: u8 = 0;
const OWNED: u8 = 1;
const DROPPED: u8 = 2;

/// A C store as a [`TopicLog`].
struct HostStore {
    callbacks: lc_topic_store,
    partitions: u32,
    ownership: Arc<AtomicU8>,
}

// SAFETY: the store's callbacks and `user_data` are the host's, and the contract of
// `lc_topic_store` (stated in the header) requires them to be callable from any thread,
// concurrently; livecore never dereferences `user_data` itself.
unsafe impl Send for HostStore {}
// SAFETY: as above: every use is a call of a thread-safe callback.
unsafe impl Sync for HostStore {}

impl Drop for HostStore {
    fn drop(&mut self) {
        if self.ownership.swap(DROPPED, Ordering::AcqRel) == OWNED {
            free_user_data(&self.callbacks);
        }
    }
}

fn free_user_data(callbacks: &lc_topic_store) {
    if let Some(free) = callbacks.free_user_data {
        let _guard = StoreCallbackGuard::enter();
        // SAFETY: the host gave this callback for this user_data, and livecore calls it
        // once (the ownership state moves to DROPPED only once), after every other call.
        unsafe { free(callbacks.user_data) };
    }
}

fn failed(callback: &str, code: i32) -> TopicLogError {
    let meaning = match code {
        LC_TOPIC_STORE_OUT_OF_RANGE => " (LC_TOPIC_STORE_OUT_OF_RANGE, which it may not return)",
        LC_TOPIC_STORE_NOT_FOUND => " (LC_TOPIC_STORE_NOT_FOUND, which it may not return)",
        _ => "",
    };
    TopicLogError::Store(format!(
        "the topic store's {callback} callback failed with code {code}{meaning}"
    ))
}

fn group_name(group: &str) -> Result<CString, TopicLogError> {
    CString::new(group)
        .map_err(|_| TopicLogError::Store(format!("group name {group:?} contains a NUL byte")))
}

impl HostStore {
    fn required<T>(callback: Option<T>, name: &str) -> Result<T, TopicLogError> {
        callback.ok_or_else(|| TopicLogError::Store(format!("the store has no {name} callback")))
    }
}

impl TopicLog for HostStore {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn append(&self, partition: u32, records: Vec<TopicRecord>) -> Result<u64, TopicLogError> {
        let append = Self::required(self.callbacks.append, "append")?;
        let mut bytes = Vec::with_capacity(records.len() * 64);
        let mut ends = Vec::with_capacity(records.len());
        for record in &records {
            encode_record(record, &mut bytes);
            ends.push(bytes.len());
        }
        let mut start = 0;
        let blobs: Vec<lc_topic_blob> = ends
            .iter()
            .map(|end| {
                let blob = lc_topic_blob {
                    data: bytes[start..].as_ptr(),
                    len: end - start,
                };
                start = *end;
                blob
            })
            .collect();
        let mut first = 0u64;
        let _guard = StoreCallbackGuard::enter();
        // SAFETY: a callback the host supplied for this user_data; `blobs` points at
        // `blobs.len()` descriptors of bytes in `bytes`, all alive until it returns, and
        // `first` is a live local.
        let code = unsafe {
            append(
                self.callbacks.user_data,
                partition,
                blobs.as_ptr(),
                blobs.len(),
                &mut first,
            )
        };
        if code != LC_TOPIC_STORE_OK {
            return Err(failed("append", code));
        }
        if first.checked_add(records.len() as u64).is_none() {
            return Err(TopicLogError::Store(format!(
                "the topic store's append callback gave first offset {first}, which leaves no room for {} messages",
                records.len()
            )));
        }
        Ok(first)
    }

    fn read(
        &self,
        partition: u32,
        offset: u64,
        max_messages: usize,
        out: &mut Vec<DataArc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        self.read_until(partition, offset, u64::MAX, max_messages, out)
    }

    fn read_until(
        &self,
        partition: u32,
        offset: u64,
        end: u64,
        max_messages: usize,
        out: &mut Vec<DataArc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        let read = Self::required(self.callbacks.read, "read")?;
        let sink = lc_topic_read_sink {
            partition,
            requested: offset,
            end,
            max_messages,
            state: RefCell::new(SinkState {
                messages: Vec::new(),
                next_min: offset,
                error: None,
            }),
        };
        let code = {
            let _active = ActiveSink::enter(&sink)?;
            let _guard = StoreCallbackGuard::enter();
            let pointer = &sink as *const lc_topic_read_sink as *mut lc_topic_read_sink;
            // SAFETY: a callback the host supplied for this user_data; the sink lives on
            // this stack frame until the callback returned, and is only ever accessed
            // through shared references (its state is behind a RefCell).
            unsafe {
                read(
                    self.callbacks.user_data,
                    partition,
                    offset,
                    max_messages,
                    pointer,
                )
            }
        };
        let state = sink.state.into_inner();
        match code {
            LC_TOPIC_STORE_OK => {
                if let Some(error) = state.error {
                    return Err(TopicLogError::Store(error));
                }
                out.extend(state.messages);
                Ok(())
            }
            LC_TOPIC_STORE_OUT_OF_RANGE => {
                let bounds = self.bounds(partition)?;
                if offset < bounds.start || offset > bounds.end {
                    Err(TopicLogError::OutOfRange(bounds))
                } else {
                    Err(TopicLogError::Store(format!(
                        "the topic store's read callback said offset {offset} is out of range, but its bounds are {}..{}",
                        bounds.start, bounds.end
                    )))
                }
            }
            code => Err(failed("read", code)),
        }
    }

    fn bounds(&self, partition: u32) -> Result<PartitionBounds, TopicLogError> {
        let bounds = Self::required(self.callbacks.bounds, "bounds")?;
        let (mut start, mut end) = (0u64, 0u64);
        let _guard = StoreCallbackGuard::enter();
        // SAFETY: a callback the host supplied for this user_data; both out-pointers are
        // live locals.
        let code = unsafe { bounds(self.callbacks.user_data, partition, &mut start, &mut end) };
        if code != LC_TOPIC_STORE_OK {
            return Err(failed("bounds", code));
        }
        if start > end {
            return Err(TopicLogError::Store(format!(
                "the topic store's bounds callback gave start {start} after end {end}"
            )));
        }
        Ok(PartitionBounds { start, end })
    }

    fn commit_offset(&self, group: &str, partition: u32, offset: u64) -> Result<(), TopicLogError> {
        let commit = Self::required(self.callbacks.commit_offset, "commit_offset")?;
        let group = group_name(group)?;
        let _guard = StoreCallbackGuard::enter();
        // SAFETY: a callback the host supplied for this user_data; `group` is a
        // NUL-terminated string alive until it returns.
        let code = unsafe { commit(self.callbacks.user_data, group.as_ptr(), partition, offset) };
        match code {
            LC_TOPIC_STORE_OK => Ok(()),
            code => Err(failed("commit_offset", code)),
        }
    }

    fn committed_offset(&self, group: &str, partition: u32) -> Result<Option<u64>, TopicLogError> {
        let committed = Self::required(self.callbacks.committed_offset, "committed_offset")?;
        let group = group_name(group)?;
        let mut offset = 0u64;
        let _guard = StoreCallbackGuard::enter();
        // SAFETY: a callback the host supplied for this user_data; `group` is a
        // NUL-terminated string alive until it returns, `offset` a live local.
        let code = unsafe {
            committed(
                self.callbacks.user_data,
                group.as_ptr(),
                partition,
                &mut offset,
            )
        };
        match code {
            LC_TOPIC_STORE_OK => Ok(Some(offset)),
            LC_TOPIC_STORE_NOT_FOUND => Ok(None),
            code => Err(failed("committed_offset", code)),
        }
    }

    fn delete_group(&self, group: &str) -> Result<(), TopicLogError> {
        let delete = Self::required(self.callbacks.delete_group, "delete_group")?;
        let group = group_name(group)?;
        let _guard = StoreCallbackGuard::enter();
        // SAFETY: a callback the host supplied for this user_data; `group` is a
        // NUL-terminated string alive until it returns.
        let code = unsafe { delete(self.callbacks.user_data, group.as_ptr()) };
        match code {
            LC_TOPIC_STORE_OK => Ok(()),
            code => Err(failed("delete_group", code)),
        }
    }
}

fn default_store() -> lc_topic_store {
    lc_topic_store {
        struct_size: std::mem::size_of::<lc_topic_store>() as u32,
        reserved: 0,
        user_data: std::ptr::null_mut(),
        append: None,
        read: None,
        bounds: None,
        commit_offset: None,
        committed_offset: None,
        delete_group: None,
        free_user_data: None,
    }
}

/// Creates a topic kept in a store the host implements (a durable one, say): `name` and
/// `config` as for `lc_topic_create` (the retention bounds are checked, but applying
/// retention is the store's business), `store` the callbacks (see `lc_topic_store`),
/// copied during the call. The store must hold `config->partitions` partitions; livecore
/// asks each partition's bounds during this call, so messages the store already holds can
/// be consumed and read, and a consumer group created later resumes at the offset the
/// store has committed for it.
///
/// Messages go to the store as blobs livecore encodes (versioned, with a checksum) and
/// come back through `lc_topic_read_sink_push`, which decodes and checks them: a damaged
/// blob fails the read, consume or group creation with `LC_ERR_TOPIC_STORE`. A failing
/// callback is `LC_ERR_TOPIC_STORE` for the call that needed it; on the publish path
/// (routes) it never fails the publish but is counted (`lc_topic_get_info`'s
/// `write_failures`, `lc_stats`) and kept as `lc_topic_get_last_write_error`.
///
/// Ownership: on `LC_OK` livecore owns `store->user_data` and calls
/// `store->free_user_data` with it exactly once, when it drops the store (the topic
/// deleted and no longer used, or the manager freed; see `lc_topic_store`). On any other status it never calls `free_user_data` and the caller
/// still owns `user_data`. Every callback but `free_user_data` is required
/// (`LC_ERR_NULL_ARGUMENT` naming the missing one); a taken name is `LC_ERR_TOPIC_EXISTS`.
///
/// Thread safety: any thread, concurrently with any other call. The store's callbacks
/// are called from many threads at once from this call on (see `lc_topic_store`).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `config` and `store` are NULL or readable
/// for their `struct_size`; the callbacks obey `lc_topic_store`'s contract for as long as
/// livecore holds the store.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_create_with_store(
    manager: lc_manager,
    name: *const c_char,
    config: *const lc_topic_config,
    store: *const lc_topic_store,
) -> lc_status {
    boundary("lc_topic_create_with_store", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: the caller promised `config` is NULL or readable for its struct_size.
        let config = unsafe { read_sized(config, default_topic_config(), "config") }?;
        // SAFETY: the caller promised `store` is NULL or readable for its struct_size.
        let callbacks = unsafe { read_sized(store, default_store(), "store") }?;
        if callbacks.reserved != 0 {
            return Err(FfiError::invalid(format!(
                "store->reserved must be 0, not {}",
                callbacks.reserved
            )));
        }
        let required = [
            ("store->append", callbacks.append.is_some()),
            ("store->read", callbacks.read.is_some()),
            ("store->bounds", callbacks.bounds.is_some()),
            ("store->commit_offset", callbacks.commit_offset.is_some()),
            (
                "store->committed_offset",
                callbacks.committed_offset.is_some(),
            ),
            ("store->delete_group", callbacks.delete_group.is_some()),
        ];
        if let Some((field, _)) = required.iter().find(|(_, present)| !present) {
            return Err(FfiError::null(field));
        }
        let entry = manager_entry(manager)?;
        check_topic_name(&entry, name, "name")?;
        let ownership = Arc::new(AtomicU8::new(PENDING));
        let store = HostStore {
            callbacks,
            partitions: config.partitions,
            ownership: ownership.clone(),
        };
        entry.manager.create_topic_with_log(
            name,
            TopicConfig::partitions(config.partitions)
                .retention(config.retention_max_messages, config.retention_max_bytes),
            Box::new(store),
        )?;
        // Created: user_data is livecore's from now on. If the topic was already deleted
        // (and the store dropped) meanwhile, the drop did not free it: free it here.
        if ownership
            .compare_exchange(PENDING, OWNED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            free_user_data(&callbacks);
        }
        Ok(lc_status::LC_OK)
    })
}

/// Hands one blob to livecore from inside the `read` callback of an `lc_topic_store`: the
/// message at `offset` of the partition being read, `len` bytes at `data` (a blob the
/// store got from `append`, unchanged). livecore decodes and copies it during the call;
/// `data` stays the store's. Offsets must be pushed in increasing order, from the offset
/// the read asked for on, at most `max_messages` of them, and below the partition's end as
/// livecore knows it (the offset after the last message whose append livecore has seen
/// complete, taken when the read started).
///
/// A sink that is not the one of a `read` callback running on the calling thread (NULL,
/// stale, another thread's) is refused (`LC_ERR_NULL_ARGUMENT`,
/// `LC_ERR_INVALID_ARGUMENT`) without being touched. A damaged blob is `LC_ERR_TOPIC_STORE`,
/// an offset out of order or a push beyond `max_messages` `LC_ERR_INVALID_ARGUMENT`; after
/// such a refusal the whole read fails with `LC_ERR_TOPIC_STORE`, whatever the callback
/// returns. An offset at or past the partition's end is `LC_ERR_TOPIC_STORE` too, but
/// only that message and the ones after it are left out (the read keeps what was pushed
/// before): the store should stop pushing there. A message whose append is still
/// returning may legitimately be there; it is read again once the append completed. A read
/// that keeps nothing below the end although the store's bounds say it holds the offset
/// asked for fails the consume with `LC_ERR_TOPIC_STORE`.
///
/// Thread safety: only on the thread running the `read` callback that received `sink`,
/// during that callback.
///
/// # Safety
/// `data` is NULL or points at `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_read_sink_push(
    sink: *mut lc_topic_read_sink,
    offset: u64,
    data: *const u8,
    len: usize,
) -> lc_status {
    boundary("lc_topic_read_sink_push", || {
        if sink.is_null() {
            return Err(FfiError::null("sink"));
        }
        if !is_active(sink as usize) {
            return Err(FfiError::invalid(
                "`sink` is not the sink of a read callback running on this thread",
            ));
        }
        // SAFETY: the address is that of a sink on the stack of a read running on this
        // thread (ACTIVE_SINKS lists it until that read's callback returned), and sinks
        // are only accessed through shared references.
        let sink = unsafe { &*sink };
        // SAFETY: the caller promised `len` readable bytes at `data`.
        let bytes = unsafe { slice(data, len, "data") };
        let mut state = sink.state.borrow_mut();
        if offset >= sink.end && state.messages.len() < sink.max_messages {
            // Left out without failing the read: the message may be one whose append is
            // still returning (livecore raises the end only after it returned).
            return Err(FfiError::new(
                lc_status::LC_ERR_TOPIC_STORE,
                format!(
                    "offset {offset} of partition {} is at or past the partition's end {} (the offset after the last message livecore appended); it is not handed out",
                    sink.partition, sink.end
                ),
            ));
        }
        let outcome = bytes.and_then(|bytes| push(sink, &state, offset, bytes));
        match outcome {
            Ok(message) => {
                state.next_min = offset + 1;
                state.messages.push(DataArc::new(message));
                Ok(lc_status::LC_OK)
            }
            Err(error) => {
                if state.error.is_none() {
                    state.error = Some(format!(
                        "the topic store's read callback pushed a refused message: {}",
                        error.message
                    ));
                }
                Err(error)
            }
        }
    })
}

/// Checks and decodes one pushed blob.
fn push(
    sink: &lc_topic_read_sink,
    state: &SinkState,
    offset: u64,
    bytes: &[u8],
) -> Result<TopicMessage, FfiError> {
    if state.messages.len() >= sink.max_messages {
        return Err(FfiError::invalid(format!(
            "the read asked for at most {} messages",
            sink.max_messages
        )));
    }
    if offset < state.next_min || offset == u64::MAX {
        return Err(FfiError::invalid(format!(
            "offset {offset} is out of order (the read asked from offset {}; the next push must be at {} or later)",
            sink.requested, state.next_min
        )));
    }
    let record = decode_record(bytes).map_err(|error| {
        FfiError::new(
            lc_status::LC_ERR_TOPIC_STORE,
            format!(
                "the blob at offset {offset} of partition {}: {error}",
                sink.partition
            ),
        )
    })?;
    Ok(record.into_message(sink.partition, offset))
}
