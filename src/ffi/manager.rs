//! The library, the manager and its manager-wide operations.

use std::ffi::{c_char, CStr};
use std::time::{Duration, Instant};

use crate::ffi::manager_lookup::{self, ManagerRef};
use crate::ffi::ptr::{
    c_str, check_name_len, name_str, optional_c_str, read_sized, slice, Out, OutSlice, SizedOut,
};
use crate::ffi::state::{receive_status, ManagerEntry, RegisteredTable, WAIT_SLICE};
use crate::ffi::status::{boundary, last_error_ptr, lc_status, FfiError};
use crate::ffi::types::*;
use crate::sync::{lock, Arc};
use crate::{
    ConnectionsManager, FilterLimits, ManagerConfig, ManualClock, NodeId, ReceiveError, TableId,
    TableSchema, TableScope, TopicLimits, UserId,
};

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the crate version contains a NUL byte"),
    };

/// The manager behind a handle.
#[inline]
pub(crate) fn manager_entry(manager: lc_manager) -> Result<ManagerRef, FfiError> {
    manager_lookup::find(manager)
}

/// Runs a wait of `timeout_ms` (0: do not wait; `LC_WAIT_FOREVER`: no limit) in slices, so a
/// wait ends with `Closed` soon after `gone` becomes true. `receive(None)` must not block;
/// `receive(Some(slice))` waits up to `slice`.
fn wait_with<T>(
    timeout_ms: u32,
    mut receive: impl FnMut(Option<Duration>) -> Result<T, ReceiveError>,
    gone: impl Fn() -> bool,
) -> Result<T, ReceiveError> {
    if timeout_ms == 0 {
        return receive(None);
    }
    let deadline = (timeout_ms != LC_WAIT_FOREVER)
        .then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)));
    loop {
        if gone() {
            return Err(ReceiveError::Closed);
        }
        let slice = match deadline {
            None => WAIT_SLICE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ReceiveError::Timeout);
                }
                left.min(WAIT_SLICE)
            }
        };
        match receive(Some(slice)) {
            Err(ReceiveError::Timeout) => continue,
            other => return other,
        }
    }
}

fn flag(flags: u32, bit: u32) -> bool {
    flags & bit != 0
}

fn size(value: u64, name: &str) -> Result<usize, FfiError> {
    usize::try_from(value)
        .map_err(|_| FfiError::invalid(format!("`{name}` ({value}) does not fit in size_t")))
}

fn default_config() -> lc_config {
    let defaults = ManagerConfig::default();
    let topics = &defaults.topics;
    let millis = |duration: Duration| duration.as_millis() as u64;
    lc_config {
        struct_size: std::mem::size_of::<lc_config>() as u32,
        flags: 0,
        slow_consumer_policy: lc_slow_consumer_policy::LC_SLOW_CONSUMER_GAP_NOTICE as u32,
        reserved: 0,
        max_connections: defaults.max_connections as u64,
        max_subscriptions_per_connection: defaults.max_subscriptions_per_connection as u64,
        notification_channel_capacity: defaults.notification_channel_capacity as u64,
        event_channel_capacity: defaults.event_channel_capacity as u64,
        gate_buffer_capacity: defaults.gate_buffer_capacity as u64,
        max_snapshot_batch_size: defaults.max_snapshot_batch_size as u64,
        auth_timeout_ms: millis(defaults.auth_timeout),
        ping_interval_ms: millis(defaults.ping_interval),
        heartbeat_timeout_ms: millis(defaults.heartbeat_timeout),
        filter_max_depth: defaults.filter_limits.max_depth as u64,
        filter_max_nodes: defaults.filter_limits.max_nodes as u64,
        filter_max_in_list: defaults.filter_limits.max_in_list as u64,
        filter_max_like_pattern: defaults.filter_limits.max_like_pattern as u64,
        manual_clock_start_ms: 0,
        checker_interval_ms: 0,
        node_id: defaults.node_id.0,
        query_cache_capacity: defaults.query_cache_capacity as u64,
        default_namespace: std::ptr::null(),
        topic_max_topics: topics.max_topics as u64,
        topic_max_partitions: u64::from(topics.max_partitions),
        topic_max_routes: topics.max_routes as u64,
        topic_max_groups_per_topic: topics.max_groups_per_topic as u64,
        topic_max_groups_per_session: topics.max_groups_per_session as u64,
        topic_max_consume_messages: topics.max_consume_messages as u64,
        topic_max_poll_timeout_ms: millis(topics.max_poll_timeout),
        topic_min_lease_ms: millis(topics.min_lease),
        topic_max_lease_ms: millis(topics.max_lease),
        topic_max_retention_messages: topics.max_retention_messages,
        topic_max_retention_bytes: topics.max_retention_bytes,
        topic_max_message_bytes: topics.max_message_bytes as u64,
        topic_max_name_len: topics.max_name_len as u64,
    }
}

/// The topic limits a C config describes (its defaults when the caller's `struct_size`
/// ends before the topic fields).
fn topic_limits_from_c(config: &lc_config) -> Result<TopicLimits, FfiError> {
    Ok(TopicLimits {
        max_topics: size(config.topic_max_topics, "topic_max_topics")?,
        max_partitions: u32::try_from(config.topic_max_partitions).map_err(|_| {
            FfiError::invalid(format!(
                "`topic_max_partitions` ({}) does not fit in 32 bits",
                config.topic_max_partitions
            ))
        })?,
        max_routes: size(config.topic_max_routes, "topic_max_routes")?,
        max_groups_per_topic: size(
            config.topic_max_groups_per_topic,
            "topic_max_groups_per_topic",
        )?,
        max_groups_per_session: size(
            config.topic_max_groups_per_session,
            "topic_max_groups_per_session",
        )?,
        max_consume_messages: size(
            config.topic_max_consume_messages,
            "topic_max_consume_messages",
        )?,
        max_poll_timeout: Duration::from_millis(config.topic_max_poll_timeout_ms),
        min_lease: Duration::from_millis(config.topic_min_lease_ms),
        max_lease: Duration::from_millis(config.topic_max_lease_ms),
        max_retention_messages: config.topic_max_retention_messages,
        max_retention_bytes: config.topic_max_retention_bytes,
        max_message_bytes: size(config.topic_max_message_bytes, "topic_max_message_bytes")?,
        max_name_len: size(config.topic_max_name_len, "topic_max_name_len")?,
    })
}

/// The manager configuration a C config describes.
///
/// # Safety
/// `config.default_namespace` is NULL or a NUL-terminated string.
unsafe fn config_from_c(config: &lc_config) -> Result<ManagerConfig, FfiError> {
    let known = LC_CONFIG_READY_QUEUE | LC_CONFIG_MANUAL_CLOCK;
    if config.flags & !known != 0 {
        return Err(FfiError::invalid(format!(
            "config->flags has unknown bits 0x{:x}",
            config.flags & !known
        )));
    }
    if config.reserved != 0 {
        return Err(FfiError::invalid("config->reserved must be 0"));
    }
    let slow_consumer_policy = lc_slow_consumer_policy::from_tag(config.slow_consumer_policy)?;
    Ok(ManagerConfig {
        max_connections: size(config.max_connections, "max_connections")?,
        max_subscriptions_per_connection: size(
            config.max_subscriptions_per_connection,
            "max_subscriptions_per_connection",
        )?,
        notification_channel_capacity: size(
            config.notification_channel_capacity,
            "notification_channel_capacity",
        )?,
        event_channel_capacity: size(config.event_channel_capacity, "event_channel_capacity")?,
        gate_buffer_capacity: size(config.gate_buffer_capacity, "gate_buffer_capacity")?,
        max_snapshot_batch_size: size(config.max_snapshot_batch_size, "max_snapshot_batch_size")?,
        auth_timeout: Duration::from_millis(config.auth_timeout_ms),
        ping_interval: Duration::from_millis(config.ping_interval_ms),
        heartbeat_timeout: Duration::from_millis(config.heartbeat_timeout_ms),
        slow_consumer_policy,
        filter_limits: FilterLimits {
            max_depth: size(config.filter_max_depth, "filter_max_depth")?,
            max_nodes: size(config.filter_max_nodes, "filter_max_nodes")?,
            max_in_list: size(config.filter_max_in_list, "filter_max_in_list")?,
            max_like_pattern: size(config.filter_max_like_pattern, "filter_max_like_pattern")?,
        },
        ready_queue: flag(config.flags, LC_CONFIG_READY_QUEUE),
        node_id: NodeId(config.node_id),
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        default_namespace: match unsafe {
            optional_c_str(config.default_namespace, "config->default_namespace")
        }? {
            Some(namespace) => {
                check_name_len(namespace, LC_MAX_NAME_LEN, "config->default_namespace")?;
                namespace.to_string()
            }
            None => "default".to_string(),
        },
        query_cache_capacity: size(config.query_cache_capacity, "query_cache_capacity")?,
        topics: topic_limits_from_c(config)?,
    })
}

/// Gives the library's version (the crate version, e.g. "0.1.0").
///
/// `*out_version` receives a static NUL-terminated string: never free it.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `out_version` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn lc_version(out_version: *mut *const c_char) -> lc_status {
    boundary("lc_version", || {
        // SAFETY: the caller promised `out_version` is NULL or writable.
        let out = unsafe { Out::new(out_version, "out_version") }?;
        out.write(VERSION.as_ptr());
        Ok(lc_status::LC_OK)
    })
}

/// Gives the ABI version of the loaded library. A program should check at start-up that it
/// equals the `LIVECORE_ABI_VERSION` it was built with.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `out_abi_version` is NULL or valid for writing a `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_abi_version(out_abi_version: *mut u32) -> lc_status {
    boundary("lc_abi_version", || {
        // SAFETY: the caller promised `out_abi_version` is NULL or writable.
        let out = unsafe { Out::new(out_abi_version, "out_abi_version") }?;
        out.write(LIVECORE_ABI_VERSION);
        Ok(lc_status::LC_OK)
    })
}

/// Gives the message of the last failed call (status 100 or more) on the calling thread,
/// naming the function and what was wrong; an empty string when no call failed yet.
///
/// `*out_message` receives a NUL-terminated string owned by livecore, at most 4096 bytes
/// (a longer message, quoting a long caller string, is cut and ends with `...`): do not
/// free it. It stays valid until the next failing `lc_` call on the same thread. This function itself
/// never changes the last error (not even when `out_message` is NULL).
///
/// Thread safety: any thread; each thread has its own last error.
///
/// # Safety
/// `out_message` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn lc_last_error(out_message: *mut *const c_char) -> lc_status {
    boundary("lc_last_error", || {
        // SAFETY: the caller promised `out_message` is NULL or writable.
        match unsafe { Out::new(out_message, "out_message") } {
            Ok(out) => {
                out.write(last_error_ptr());
                Ok(lc_status::LC_OK)
            }
            // Reported without recording: the last error stays what it was.
            Err(error) => Ok(error.status),
        }
    })
}

/// Gives the name of a status code as the header spells it ("LC_ERR_NULL_ARGUMENT").
///
/// `*out_name` receives a static NUL-terminated string: never free it. An unknown code is
/// `LC_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `out_name` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn lc_status_name(status: u32, out_name: *mut *const c_char) -> lc_status {
    boundary("lc_status_name", || {
        // SAFETY: the caller promised `out_name` is NULL or writable.
        let out = unsafe { Out::new(out_name, "out_name") }?;
        let known = lc_status::from_code(status)
            .ok_or_else(|| FfiError::invalid(format!("{status} is not a livecore status code")))?;
        out.write(known.name().as_ptr());
        Ok(lc_status::LC_OK)
    })
}

/// Fills a config with the defaults. Set `config->struct_size = sizeof(lc_config)` first;
/// on return it holds the bytes written. Only the sizes `lc_manager_new` reads are
/// accepted (this header's, or an older header's that ends before the `topic_` fields):
/// any other, a newer header's larger one included, is `LC_ERR_STRUCT_SIZE` here rather
/// than from `lc_manager_new`.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `config` is NULL or points at an `lc_config` whose first `struct_size` bytes are
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lc_config_init(config: *mut lc_config) -> lc_status {
    boundary("lc_config_init", || {
        // SAFETY: the caller promised `config` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new_input(config, "config") }?;
        out.write(default_config());
        Ok(lc_status::LC_OK)
    })
}

/// Creates a manager. `config` is only read during the call. A `struct_size` from an
/// older header, whose struct ends before the `topic_` fields, is accepted: the fields it
/// lacks keep their defaults.
///
/// `*out_manager` receives the new handle; free it with `lc_manager_free`.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `config` is NULL or points at an `lc_config` whose first `struct_size` bytes are
/// readable, with `default_namespace` NULL or a NUL-terminated string; `out_manager` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_manager_new(
    config: *const lc_config,
    out_manager: *mut lc_manager,
) -> lc_status {
    boundary("lc_manager_new", || {
        // SAFETY: the caller promised `config` is NULL or readable for its struct_size.
        let config = unsafe { read_sized(config, default_config(), "config") }?;
        // SAFETY: the caller promised `out_manager` is NULL or writable.
        let out = unsafe { Out::new(out_manager, "out_manager") }?;
        let manual = flag(config.flags, LC_CONFIG_MANUAL_CLOCK);
        let checker = (config.checker_interval_ms > 0)
            .then(|| Duration::from_millis(config.checker_interval_ms));
        // SAFETY: the caller promised `default_namespace` is NULL or a NUL-terminated string.
        let core_config = unsafe { config_from_c(&config) }?;
        let (manager, clock) = if manual {
            let clock = Arc::new(ManualClock::new(config.manual_clock_start_ms));
            (
                ConnectionsManager::with_clock(core_config, clock.clone())?,
                Some(clock),
            )
        } else {
            (ConnectionsManager::new(core_config)?, None)
        };
        out.write(manager_lookup::insert(ManagerEntry::new(
            manager, clock, checker,
        )));
        Ok(lc_status::LC_OK)
    })
}

/// Frees a manager: every connection is unregistered (their receivers report
/// `LC_CLOSED`), waits in other threads end with `LC_CLOSED`, the background checker
/// stops. The free does not wait for calls already running on other threads: they finish
/// on their own, and what the manager holds (a fjall store its topics use, among others) is
/// released when the last of them returns. Later calls with the handle get
/// `LC_ERR_INVALID_HANDLE`, and so does a second free. Notifications and subscription
/// results already handed out stay valid until freed.
///
/// Thread safety: any thread, also while other threads are inside calls with this manager
/// or starting them. Guaranteed (and tested): a thread inside or entering a publish
/// (`lc_commit_publish`, `lc_topic_publish`), a receive (`lc_connection_recv`,
/// `lc_connection_recv_event`), a wait (`lc_manager_wait_ready`) or a consume
/// (`lc_topic_consume`) ends cleanly, whatever its timeout: with `LC_CLOSED` or
/// `LC_ERR_INVALID_HANDLE` once the free has begun (a call that completed just before
/// may still return its normal result). No call crashes or hangs.
#[no_mangle]
pub extern "C" fn lc_manager_free(manager: lc_manager) -> lc_status {
    boundary("lc_manager_free", || {
        let entry = manager_lookup::remove(manager)?;
        entry.close();
        Ok(lc_status::LC_OK)
    })
}

/// Gives the manager clock's current reading in milliseconds (since the Unix epoch with the
/// system clock).
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_now_ms` is NULL or valid for writing a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_manager_get_clock(
    manager: lc_manager,
    out_now_ms: *mut u64,
) -> lc_status {
    boundary("lc_manager_get_clock", || {
        // SAFETY: the caller promised `out_now_ms` is NULL or writable.
        let out = unsafe { Out::new(out_now_ms, "out_now_ms") }?;
        out.write(manager_entry(manager)?.manager.now_ms());
        Ok(lc_status::LC_OK)
    })
}

/// Sets the manual clock (a manager created with `LC_CONFIG_MANUAL_CLOCK`; otherwise
/// `LC_ERR_NOT_ENABLED`).
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_manager_set_clock(manager: lc_manager, now_ms: u64) -> lc_status {
    boundary("lc_manager_set_clock", || {
        let entry = manager_entry(manager)?;
        let clock = entry.clock.as_ref().ok_or_else(|| {
            FfiError::new(
                lc_status::LC_ERR_NOT_ENABLED,
                "the manager was not created with LC_CONFIG_MANUAL_CLOCK",
            )
        })?;
        clock.set(now_ms);
        Ok(lc_status::LC_OK)
    })
}

/// Waits until some connection has something to read, for servers that serve many
/// connections from one thread (the manager needs `LC_CONFIG_READY_QUEUE`, otherwise
/// `LC_ERR_NOT_ENABLED`).
///
/// Writes up to `capacity` connection ids to `out_connection_ids` and their number to
/// `*out_count`. Returns `LC_OK` with at least one id, `LC_EMPTY` (timeout 0) or
/// `LC_TIMEOUT` with none, or `LC_CLOSED` when the manager is freed while the call waits (a
/// call made after the free gets `LC_ERR_INVALID_HANDLE`, as every call with a freed
/// handle); `capacity` 0 is `LC_ERR_INVALID_ARGUMENT`. On any status but `LC_OK`,
/// `*out_count` is 0 (when `out_count` is not NULL). For each id: drain the
/// connection with `lc_connection_recv` and `lc_connection_recv_event` until both return
/// `LC_EMPTY`, then call `lc_connection_arm_ready` so its next delivery or event queues it
/// again (a connection is queued once per arming; new connections start armed). An id may
/// name a connection unregistered meanwhile: its receive then returns
/// `LC_ERR_UNKNOWN_CONNECTION`; skip it.
///
/// Thread safety: any thread; several threads may wait at once, and each queued id goes to
/// one of them.
///
/// # Safety
/// `out_connection_ids` is NULL or writable for `capacity` ids; `out_count` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lc_manager_wait_ready(
    manager: lc_manager,
    timeout_ms: u32,
    out_connection_ids: *mut u64,
    capacity: usize,
    out_count: *mut usize,
) -> lc_status {
    boundary("lc_manager_wait_ready", || {
        // SAFETY: the caller promised `out_count` is NULL or writable.
        let count_out = unsafe { Out::new(out_count, "out_count") }?;
        // First, so no early return leaves the count unwritten.
        count_out.preset(0);
        // SAFETY: the caller promised `capacity` writable ids at `out_connection_ids`.
        let mut ids =
            unsafe { OutSlice::for_batch(out_connection_ids, capacity, "out_connection_ids") }?;
        let entry = manager_entry(manager)?;
        let ready = entry.ready.as_ref().ok_or_else(|| {
            FfiError::new(
                lc_status::LC_ERR_NOT_ENABLED,
                "the manager was not created with LC_CONFIG_READY_QUEUE",
            )
        })?;
        let first = wait_with(
            timeout_ms,
            |slice| match slice {
                None => ready.try_recv(),
                Some(slice) => ready.recv_timeout(slice),
            },
            || entry.is_freed(),
        );
        let first = match first {
            Ok(id) => id,
            Err(error) => {
                return Ok(receive_status(error));
            }
        };
        let mut count = 0;
        let mut next = Some(first);
        while let Some(id) = next {
            ids.write(count, id.0);
            count += 1;
            next = if count < ids.len() {
                ready.try_recv().ok()
            } else {
                None
            };
        }
        // Freeing the manager unregisters its connections, which queues each of them: a
        // wait woken by that (or one that collected ids a free queued meanwhile) is told
        // the manager is gone, not handed their ids.
        if entry.is_freed() {
            return Ok(lc_status::LC_CLOSED);
        }
        count_out.write(count);
        Ok(lc_status::LC_OK)
    })
}

/// Checks every connection's timers at `now_ms` (or at the clock's reading with `LC_NOW`)
/// and raises `LC_EVENT_AUTH_TIMEOUT`, `LC_EVENT_HEARTBEAT_TIMEOUT` or
/// `LC_EVENT_SEND_PING` on the connections due one. `out_report` may be NULL.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_report` is NULL or points at an `lc_check_report` whose first `struct_size` bytes
/// are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_manager_check_connections(
    manager: lc_manager,
    now_ms: u64,
    out_report: *mut lc_check_report,
) -> lc_status {
    boundary("lc_manager_check_connections", || {
        // SAFETY: the caller promised `out_report` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::optional(out_report, "out_report") }?;
        let entry = manager_entry(manager)?;
        let report = if now_ms == LC_NOW {
            entry.manager.check_connections_now()
        } else {
            entry.manager.check_connections(now_ms)
        };
        if let Some(out) = out {
            out.write(lc_check_report {
                struct_size: 0,
                reserved: 0,
                checked: report.checked as u64,
                pings: report.pings as u64,
                auth_timeouts: report.auth_timeouts as u64,
                heartbeat_timeouts: report.heartbeat_timeouts as u64,
            });
        }
        Ok(lc_status::LC_OK)
    })
}

/// Shuts down: new connections and subscriptions are refused, every connection gets
/// `LC_EVENT_SHUTDOWN`, and this call waits up to `timeout_ms` for the host to unregister
/// them (from other threads); livecore closes those still registered then, and their
/// receivers report `LC_CLOSED` (unregister them to release them). `out_report` may be
/// NULL.
///
/// Thread safety: any thread; it blocks, so unregister connections from other threads.
///
/// # Safety
/// `out_report` is NULL or points at an `lc_shutdown_report` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_manager_shutdown(
    manager: lc_manager,
    timeout_ms: u32,
    out_report: *mut lc_shutdown_report,
) -> lc_status {
    boundary("lc_manager_shutdown", || {
        // SAFETY: the caller promised `out_report` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::optional(out_report, "out_report") }?;
        let entry = manager_entry(manager)?;
        let report = entry
            .manager
            .shutdown(Duration::from_millis(u64::from(timeout_ms)));
        if let Some(out) = out {
            out.write(lc_shutdown_report {
                struct_size: 0,
                reserved: 0,
                notified: report.notified as u64,
                closed_by_host: report.closed_by_host as u64,
                forced: report.forced as u64,
            });
        }
        Ok(lc_status::LC_OK)
    })
}

/// Reads the manager-wide statistics.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_stats` is NULL or points at an `lc_stats` whose first `struct_size` bytes are
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lc_manager_get_stats(
    manager: lc_manager,
    out_stats: *mut lc_stats,
) -> lc_status {
    boundary("lc_manager_get_stats", || {
        // SAFETY: the caller promised `out_stats` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_stats, "out_stats") }?;
        let stats = manager_entry(manager)?.manager.stats();
        out.write(lc_stats {
            struct_size: 0,
            reserved: 0,
            connections: stats.connections as u64,
            subscriptions: stats.subscriptions as u64,
            published: stats.published,
            published_changes: stats.published_changes,
            delivered: stats.delivered,
            dropped: stats.dropped,
            dropped_closed: stats.dropped_closed,
            buffered: stats.buffered,
            covered_by_snapshot: stats.covered_by_snapshot,
            gaps: stats.gaps,
            resyncs: stats.resyncs,
            snapshot_batches: stats.snapshot_batches,
            filter_evaluations: stats.filter_evaluations,
            topic_messages: stats.topic_messages,
            topic_write_failures: stats.topic_write_failures,
            consume_parks: stats.consume_parks,
            discarded: stats.discarded,
        });
        Ok(lc_status::LC_OK)
    })
}

/// `LC_ERR_INVALID_SCHEMA` for more columns than a table may have, checked before any
/// name is read (a count that lies is refused without touching memory).
fn check_column_count(column_count: usize) -> Result<(), FfiError> {
    if column_count > LC_MAX_COLUMNS {
        return Err(FfiError::new(
            lc_status::LC_ERR_INVALID_SCHEMA,
            format!("{column_count} columns; a table has at most {LC_MAX_COLUMNS}"),
        ));
    }
    Ok(())
}

/// The `column_count` column names at `columns`, each checked as a name.
///
/// # Safety
/// `columns` is NULL or points at `column_count` pointers, each NULL or a NUL-terminated
/// string, valid for `'a`.
unsafe fn column_names<'a>(
    columns: *const *const c_char,
    column_count: usize,
) -> Result<Vec<&'a str>, FfiError> {
    // SAFETY: the caller promised `column_count` pointers at `columns`.
    let column_ptrs = unsafe { slice(columns, column_count, "columns") }?;
    column_ptrs
        .iter()
        .enumerate()
        .map(|(index, &column)| {
            // SAFETY: each pointer is NULL or a NUL-terminated string (caller's promise).
            unsafe { name_str(column, &format_args!("columns[{index}]")) }
        })
        .collect()
}

/// Registers a table's schema, or replaces it (ALTER TABLE: subscriptions are recompiled,
/// and those using a dropped column are closed). `scope` is an `lc_table_scope`;
/// `columns` holds `column_count` NUL-terminated UTF-8 names in row order. All strings are
/// only read during the call.
///
/// `table_namespace`, `name` and every column name are 1 to `LC_MAX_NAME_LEN` bytes
/// (`LC_ERR_INVALID_NAME` otherwise). `column_count` is 1 to `LC_MAX_COLUMNS`
/// (`LC_ERR_INVALID_SCHEMA` otherwise, checked after the manager handle and before any
/// column is read); two columns may not share a name ignoring ASCII case
/// (`LC_ERR_INVALID_SCHEMA`).
///
/// `*out_table_key` (may be NULL) receives the table's key, stable across schema versions:
/// changes name their table by it.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `table_namespace` and `name` are NULL or NUL-terminated strings; `columns` is NULL or points
/// at `column_count` pointers, each NULL or a NUL-terminated string; `out_table_key` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_table_register(
    manager: lc_manager,
    table_namespace: *const c_char,
    name: *const c_char,
    scope: u32,
    columns: *const *const c_char,
    column_count: usize,
    out_table_key: *mut u32,
) -> lc_status {
    boundary("lc_table_register", || {
        // The handle and the count before the loop over the columns.
        let entry = manager_entry(manager)?;
        check_column_count(column_count)?;
        // SAFETY: the caller promised NULL or NUL-terminated strings.
        let namespace = unsafe { name_str(table_namespace, "table_namespace") }?;
        // SAFETY: as above.
        let table_name = unsafe { name_str(name, "name") }?;
        // SAFETY: the caller promised `column_count` pointers at `columns`, each NULL or a
        // NUL-terminated string.
        let column_names = unsafe { column_names(columns, column_count) }?;
        // SAFETY: the caller promised `out_table_key` is NULL or writable.
        let out = unsafe { Out::optional(out_table_key, "out_table_key") }?;
        let scope = lc_table_scope::from_tag(scope)?;
        let table_id = TableId::new(namespace, table_name);
        let column_count = column_names.len();
        let _changing = lock(&entry.table_changes);
        let key = entry.manager.register_table(TableSchema::new(
            table_id.clone(),
            scope,
            column_names,
        ))?;
        entry.remember_table(
            key.0,
            RegisteredTable {
                id: table_id,
                columns: column_count,
                user_scoped: scope == TableScope::User,
            },
        );
        if let Some(out) = out {
            out.write(key.0);
        }
        Ok(lc_status::LC_OK)
    })
}

/// Drops a table (its key from `lc_table_register`): every subscription on it ends with a
/// closed notification (`LC_CLOSE_TABLE_DROPPED`) and the table is unregistered, so its key
/// is refused from now on (`LC_ERR_UNKNOWN_TABLE`); registering the table again gives it a
/// key anew. `*out_ended` (may be NULL) receives how many subscriptions ended.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_ended` is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_table_drop(
    manager: lc_manager,
    table: u32,
    out_ended: *mut usize,
) -> lc_status {
    boundary("lc_table_drop", || {
        // SAFETY: the caller promised `out_ended` is NULL or writable.
        let out = unsafe { Out::optional(out_ended, "out_ended") }?;
        let entry = manager_entry(manager)?;
        let _changing = lock(&entry.table_changes);
        let table_id = entry.table_id(table)?;
        let ended = entry.manager.drop_table(&table_id)?;
        entry.forget_table(table);
        if let Some(out) = out {
            out.write(ended);
        }
        Ok(lc_status::LC_OK)
    })
}

/// Ends every subscription of every connection authenticated as `user_id` (a token
/// expired, a permission was withdrawn): each subscriber gets a closed notification
/// (`LC_CLOSE_REVOKED`) carrying `reason` (NUL-terminated UTF-8), and nothing more of those
/// subscriptions is delivered once this returns. The connections stay registered.
/// `user_id` is a user name as `lc_connection_authenticate` takes it (1 to
/// `LC_MAX_NAME_LEN` bytes; `LC_ERR_INVALID_NAME` otherwise).
/// `*out_ended` (may be NULL) receives how many subscriptions ended.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `user_id` and `reason` are NULL or NUL-terminated strings; `out_ended` is NULL or
/// valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_user_revoke(
    manager: lc_manager,
    user_id: *const c_char,
    reason: *const c_char,
    out_ended: *mut usize,
) -> lc_status {
    boundary("lc_user_revoke", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let user = unsafe { name_str(user_id, "user_id") }?;
        // SAFETY: as above.
        let reason = unsafe { c_str(reason, "reason") }?;
        // SAFETY: the caller promised `out_ended` is NULL or writable.
        let out = unsafe { Out::optional(out_ended, "out_ended") }?;
        let ended = manager_entry(manager)?
            .manager
            .revoke_user(&UserId::from(user), reason);
        if let Some(out) = out {
            out.write(ended);
        }
        Ok(lc_status::LC_OK)
    })
}

/// Ends every subscription on a table (its key from `lc_table_register`), which stays
/// registered, for a host that lost commits of the table before publishing them (a
/// replica that missed part of its log, a commit it could not decode or apply): each
/// subscriber gets `LC_NOTIFICATION_RESYNC_REQUIRED` and must subscribe again with a fresh
/// initial load, since what it holds may be stale and resuming would need the lost
/// commits. `*out_ended` (may be NULL) receives how many subscriptions ended; nothing of
/// theirs is delivered after the call returns. `LC_ERR_UNKNOWN_TABLE` for a key that names
/// no registered table.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_ended` is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_table_resync(
    manager: lc_manager,
    table: u32,
    out_ended: *mut usize,
) -> lc_status {
    boundary("lc_table_resync", || {
        // SAFETY: the caller promised `out_ended` is NULL or writable.
        let out = unsafe { Out::optional(out_ended, "out_ended") }?;
        let entry = manager_entry(manager)?;
        let table_id = entry.table_id(table)?;
        let ended = entry.manager.resync_table(&table_id)?;
        if let Some(out) = out {
            out.write(ended);
        }
        Ok(lc_status::LC_OK)
    })
}

/// Ends the subscriptions on a table (its key from `lc_table_register`) that read one of
/// `columns` (`column_count` NUL-terminated UTF-8 names, matched ignoring ASCII case) in
/// their filter or their projection, `SELECT *` included: each subscriber gets a closed
/// notification (`LC_CLOSE_SCHEMA_CHANGED`, naming the column), for a host whose database
/// changed the columns' values without a row change it publishes (a column's type
/// changed, which converts every value; a name that now belongs to another column). Call
/// it after registering the schema the table now has. Subscriptions reading none of them
/// are untouched. `*out_ended` (may be NULL) receives how many ended; nothing of theirs is
/// delivered after the call returns.
///
/// `LC_ERR_UNKNOWN_TABLE` for a key that names no registered table; `LC_ERR_UNKNOWN_COLUMN`
/// for a name the table does not have (nothing ends then); `LC_ERR_INVALID_SCHEMA` for
/// more than `LC_MAX_COLUMNS` names (checked before any is read); `LC_ERR_INVALID_NAME`
/// for a name that is not 1 to `LC_MAX_NAME_LEN` bytes, `LC_ERR_INVALID_UTF8` for one that
/// is not UTF-8.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `columns` is NULL or points at `column_count` pointers, each NULL or a NUL-terminated
/// string; `out_ended` is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_table_columns_rewritten(
    manager: lc_manager,
    table: u32,
    columns: *const *const c_char,
    column_count: usize,
    out_ended: *mut usize,
) -> lc_status {
    boundary("lc_table_columns_rewritten", || {
        // The handle and the count before the loop over the columns.
        let entry = manager_entry(manager)?;
        check_column_count(column_count)?;
        // SAFETY: the caller promised `column_count` pointers at `columns`, each NULL or a
        // NUL-terminated string.
        let column_names = unsafe { column_names(columns, column_count) }?;
        // SAFETY: the caller promised `out_ended` is NULL or writable.
        let out = unsafe { Out::optional(out_ended, "out_ended") }?;
        let table_id = entry.table_id(table)?;
        let ended = entry.manager.columns_rewritten(&table_id, &column_names)?;
        if let Some(out) = out {
            out.write(ended);
        }
        Ok(lc_status::LC_OK)
    })
}

/// Ends every subscription on a table (its key from `lc_table_register`), which stays
/// registered: each subscriber gets a closed notification (`LC_CLOSE_REVOKED`) carrying
/// `reason` (NUL-terminated UTF-8). `*out_ended` (may be NULL) receives how many
/// subscriptions ended.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `reason` is NULL or a NUL-terminated string; `out_ended` is NULL or valid for writing a
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_table_revoke(
    manager: lc_manager,
    table: u32,
    reason: *const c_char,
    out_ended: *mut usize,
) -> lc_status {
    boundary("lc_table_revoke", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let reason = unsafe { c_str(reason, "reason") }?;
        // SAFETY: the caller promised `out_ended` is NULL or writable.
        let out = unsafe { Out::optional(out_ended, "out_ended") }?;
        let entry = manager_entry(manager)?;
        let table_id = entry.table_id(table)?;
        let ended = entry.manager.revoke_table(&table_id, reason)?;
        if let Some(out) = out {
            out.write(ended);
        }
        Ok(lc_status::LC_OK)
    })
}
