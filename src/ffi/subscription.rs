//! Subscribing, the initial-load protocol and resume.

use std::ffi::c_char;

use crate::ffi::handles::Handle;
use crate::ffi::manager::manager_entry;
use crate::ffi::ptr::{c_str, check_count, read_sized, slice, Out, SizedOut};
use crate::ffi::publish::check_changes;
use crate::ffi::state::SubscriptionResultEntry;
use crate::ffi::status::{boundary, lc_status, FfiError};
use crate::ffi::types::*;
use crate::ffi::values::{change_from_c, row_from_c, subscribe_options_from_c};
use crate::{
    ConnectionId, LiveError, LiveQueryId, Row, SeqId, SubscriptionId, SubscriptionOptions,
};

fn to_live_query(id: lc_live_query_id) -> LiveQueryId {
    LiveQueryId::new(
        ConnectionId(id.connection_id),
        SubscriptionId(id.subscription_id),
    )
}

fn default_options() -> lc_subscription_options {
    let defaults = SubscriptionOptions::default();
    lc_subscription_options {
        struct_size: std::mem::size_of::<lc_subscription_options>() as u32,
        flags: 0,
        batch_size: defaults.batch_size as u64,
        resume_from: 0,
    }
}

fn options_from_c(options: &lc_subscription_options) -> Result<SubscriptionOptions, FfiError> {
    subscribe_options_from_c(
        options.flags,
        options.batch_size,
        options.resume_from,
        &"options->flags",
        &"options->batch_size",
    )
}

/// Fills subscribe options with the defaults (live at once, batches of 1000). Set
/// `options->struct_size = sizeof(lc_subscription_options)` first; on return it holds the
/// bytes written.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `options` is NULL or points at an `lc_subscription_options` whose first `struct_size` bytes
/// are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_subscription_options_init(
    options: *mut lc_subscription_options,
) -> lc_status {
    boundary("lc_subscription_options_init", || {
        // SAFETY: the caller promised `options` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new_input(options, "options") }?;
        out.write(default_options());
        Ok(lc_status::LC_OK)
    })
}

/// Opens a live query for an authenticated connection: `sql` is
/// `SELECT cols|* FROM [namespace.]table [WHERE ...]` (NUL-terminated UTF-8; a table without
/// a namespace is in the config's `default_namespace`; names match ignoring ASCII case when
/// no table has the exact spelling and only one matches so). Unsupported SQL is
/// `LC_ERR_SQL`, whose message names the construct and its position; text longer than
/// `LC_MAX_SUBSCRIPTION_SQL_LEN` bytes is `LC_ERR_OUT_OF_BOUNDS`, refused before it is
/// read further. The filter and
/// projection are checked against the table's schema now, and the subscription is in the
/// routing index when this returns. With `LC_SUBSCRIBE_INITIAL_LOAD` or
/// `LC_SUBSCRIBE_RESUME` it starts gated: read the snapshot SeqId only after this returns,
/// then `lc_subscription_set_snapshot_boundary`, the snapshot, `lc_subscription_complete_initial_load`.
///
/// What a plain subscription (neither `LC_SUBSCRIBE_INITIAL_LOAD` nor
/// `LC_SUBSCRIBE_RESUME`) receives: every matching change of every commit whose
/// `lc_commit_publish` or `lc_change_publish` call starts after this call returned. A commit
/// published concurrently with this call may or may not be delivered to it. An engine that
/// needs an exact starting point uses the initial-load or the resume protocol, whose
/// SeqId boundary says exactly which commits the subscription gets.
///
/// `*out_result` receives a result handle (the live query id and the projected columns);
/// free it with `lc_subscription_result_free`, which does not unsubscribe.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `sql` is NULL or a NUL-terminated string; `options` is NULL or readable for its
/// `struct_size`; `out_result` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_subscription_create_sql(
    manager: lc_manager,
    connection_id: u64,
    sql: *const c_char,
    options: *const lc_subscription_options,
    out_result: *mut lc_subscription_result,
) -> lc_status {
    boundary("lc_subscription_create_sql", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let sql = unsafe { c_str(sql, "sql") }?;
        // SAFETY: the caller promised `options` is NULL or readable for its struct_size.
        let options = unsafe { read_sized(options, default_options(), "options") }?;
        // SAFETY: the caller promised `out_result` is NULL or writable.
        let out = unsafe { Out::new(out_result, "out_result") }?;
        let options = options_from_c(&options)?;
        let entry = manager_entry(manager)?;
        let result = entry
            .manager
            .subscribe_sql(ConnectionId(connection_id), sql, options)?;
        out.write(lc_subscription_result::insert(
            SubscriptionResultEntry::new(result),
        ));
        Ok(lc_status::LC_OK)
    })
}

/// Reads a subscription result: the live query id, whether it starts gated, and the number
/// of projected columns.
///
/// Thread safety: any thread; a result may be read from several threads at once.
///
/// # Safety
/// `out_info` is NULL or points at an `lc_subscription_info` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_subscription_result_get_info(
    result: lc_subscription_result,
    out_info: *mut lc_subscription_info,
) -> lc_status {
    boundary("lc_subscription_result_get_info", || {
        // SAFETY: the caller promised `out_info` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_info, "out_info") }?;
        let entry = result.get()?;
        let result = &entry.result;
        let mut flags = 0;
        if result.gated {
            flags |= LC_SUBSCRIPTION_GATED;
        }
        if result.resume_from.is_some() {
            flags |= LC_SUBSCRIPTION_RESUMING;
        }
        out.write(lc_subscription_info {
            struct_size: 0,
            flags,
            live_query: lc_live_query_id {
                connection_id: result.live_query_id.connection_id.0,
                subscription_id: result.live_query_id.subscription_id.0,
            },
            resume_from: result.resume_from.map_or(0, |seq| seq.0),
            column_count: result.columns.len() as u64,
        });
        Ok(lc_status::LC_OK)
    })
}

/// Gives the name of projected column `index`: `*out_name` points at `*out_len` bytes of
/// UTF-8 followed by a NUL, owned by the result and valid until
/// `lc_subscription_result_free`.
///
/// Thread safety: any thread; a result may be read from several threads at once.
///
/// # Safety
/// `out_name` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_subscription_result_column(
    result: lc_subscription_result,
    index: usize,
    out_name: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_subscription_result_column", || {
        // SAFETY: the caller promised `out_name` is NULL or writable.
        let name_out = unsafe { Out::new(out_name, "out_name") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        let entry = result.get()?;
        let columns = &entry.columns;
        let column = columns.get(index).ok_or_else(|| {
            FfiError::index(
                "column",
                index,
                format_args!("{} projected columns", columns.len()),
            )
        })?;
        // The bytes live in the entry, which the table keeps until the result is freed.
        name_out.write(column.as_ptr());
        len_out.write(column.len());
        Ok(lc_status::LC_OK)
    })
}

/// Frees a subscription result (the subscription itself goes on). A second free is
/// `LC_ERR_INVALID_HANDLE`.
///
/// Thread safety: any thread, once no other thread uses the result or a name borrowed from
/// it.
#[no_mangle]
pub extern "C" fn lc_subscription_result_free(result: lc_subscription_result) -> lc_status {
    boundary("lc_subscription_result_free", || {
        result.remove()?;
        Ok(lc_status::LC_OK)
    })
}

/// Ends a subscription. When this returns it has left the routing index, and the
/// connection's receiver hands out nothing more of it, even what was already queued (for a
/// subscription livecore ended, its terminal notice if not handed out yet).
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_subscription_cancel(
    manager: lc_manager,
    live_query: lc_live_query_id,
) -> lc_status {
    boundary("lc_subscription_cancel", || {
        manager_entry(manager)?
            .manager
            .unsubscribe(to_live_query(live_query))?;
        Ok(lc_status::LC_OK)
    })
}

/// Initial load, step 2: the SeqId of the engine's snapshot, read after `lc_subscription_create_sql`
/// returned. Changes at or below it are dropped at the gate (the snapshot holds them). It
/// may be set again at the same SeqId or a later one; a lower one is `LC_ERR_INVALID_STATE`
/// (what the first boundary dropped would be in neither the snapshot nor the stream).
/// Completing without a boundary delivers every buffered change. A boundary above
/// `UINT64_MAX - 4` is `LC_ERR_OUT_OF_BOUNDS` (so is a resume position above it).
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_subscription_set_snapshot_boundary(
    manager: lc_manager,
    live_query: lc_live_query_id,
    seq: u64,
) -> lc_status {
    boundary("lc_subscription_set_snapshot_boundary", || {
        manager_entry(manager)?
            .manager
            .set_snapshot_boundary(to_live_query(live_query), SeqId(seq))?;
        Ok(lc_status::LC_OK)
    })
}

/// Initial load, step 3, when livecore delivers the snapshot: `values` holds `row_count`
/// rows of `column_count` values each, row after row (only read during the call).
/// livecore filters and projects them and sends them as snapshot batches ahead of any live
/// change. When the channel fills, returns `LC_WOULD_BLOCK` with `consumed` rows taken:
/// call again with the rest once the receiver has drained. `out_progress` may be NULL.
///
/// Checked before any row is read, in this order: the manager handle
/// (`LC_ERR_INVALID_HANDLE`); `row_count` at most `LC_MAX_SNAPSHOT_PUSH_ROWS`
/// (`LC_ERR_OUT_OF_BOUNDS`: push a larger snapshot in several calls); a `column_count` of 0
/// with rows (`LC_ERR_INVALID_ARGUMENT`); `values` not NULL when there are rows
/// (`LC_ERR_NULL_ARGUMENT`); the subscription (`LC_ERR_UNKNOWN_SUBSCRIPTION`); and
/// `column_count` equal to its table's column count (`LC_ERR_ROW_ARITY`). Each text or
/// bytes value is at most `LC_MAX_VALUE_BYTES` (`LC_ERR_OUT_OF_BOUNDS`).
///
/// On a user-scoped table, snapshot rows carry no owner, so livecore cannot check tenancy:
/// the engine must pass only rows owned by the subscribing connection's user. livecore
/// filters and projects them, but does not check whose they are.
///
/// Thread safety: any thread; push one subscription's snapshot from one thread at a time
/// (batches are numbered in call order).
///
/// # Safety
/// `values` is NULL or points at `row_count * column_count` values (their text and bytes
/// readable); `out_progress` is NULL or writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn lc_subscription_push_snapshot_rows(
    manager: lc_manager,
    live_query: lc_live_query_id,
    values: *const lc_value,
    row_count: usize,
    column_count: usize,
    out_progress: *mut lc_snapshot_progress,
) -> lc_status {
    boundary("lc_subscription_push_snapshot_rows", || {
        // SAFETY: the caller promised `out_progress` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::optional(out_progress, "out_progress") }?;
        // The handle and every count before any work: a loop over `row_count` runs only
        // once the rows are known to be real and of the table's width.
        let entry = manager_entry(manager)?;
        check_count(
            row_count,
            LC_MAX_SNAPSHOT_PUSH_ROWS,
            "row_count",
            lc_status::LC_ERR_OUT_OF_BOUNDS,
        )?;
        let live_query = to_live_query(live_query);
        let rows = if row_count == 0 {
            Vec::new()
        } else {
            if column_count == 0 {
                return Err(FfiError::invalid(format!(
                    "{row_count} rows of 0 columns: a row has its table's columns"
                )));
            }
            if values.is_null() {
                return Err(FfiError::null("values"));
            }
            let subscription = entry.manager.subscription(live_query)?;
            let expected = entry
                .manager
                .table_schema(&subscription.table_id)?
                .columns
                .len();
            if column_count != expected {
                return Err(LiveError::RowArity {
                    table: subscription.table_id.clone(),
                    expected,
                    got: column_count,
                }
                .into());
            }
            // Within LC_MAX_SNAPSHOT_PUSH_ROWS * LC_MAX_COLUMNS: no overflow.
            let total = row_count * column_count;
            // SAFETY: the caller promised `row_count * column_count` values at `values`.
            let values = unsafe { slice(values, total, "values") }?;
            values
                .chunks_exact(column_count)
                .enumerate()
                .map(|(index, row)| {
                    // SAFETY: `row` is a sub-slice of the caller's values, whose text and
                    // bytes the caller promised are readable.
                    unsafe {
                        row_from_c(
                            row.as_ptr(),
                            row.len(),
                            &format_args!("values[row {index}]"),
                        )
                    }
                })
                .collect::<Result<Vec<Row>, FfiError>>()?
        };
        let progress = match entry.manager.push_snapshot_rows(live_query, &rows) {
            Ok(progress) => progress,
            Err(LiveError::WouldBlock { consumed }) => {
                if let Some(out) = out {
                    out.write(lc_snapshot_progress {
                        struct_size: 0,
                        reserved: 0,
                        consumed: consumed as u64,
                        batches: 0,
                        rows: 0,
                    });
                }
                return Ok(lc_status::LC_WOULD_BLOCK);
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(out) = out {
            out.write(lc_snapshot_progress {
                struct_size: 0,
                reserved: 0,
                consumed: progress.consumed as u64,
                batches: u64::from(progress.batches),
                rows: progress.rows,
            });
        }
        Ok(lc_status::LC_OK)
    })
}

/// Initial load, step 4: the subscriber gets a load-complete notification, after the
/// snapshot batches, then the changes buffered above the boundary in order, then live
/// changes. Never `LC_WOULD_BLOCK`: a marker that finds the channel full goes to the
/// receiver out of band, with the buffered changes behind it (nothing is dropped, no
/// connection cut off), handed out once what was queued before them is read, or before
/// the subscription's next change; it counts against the connection's subscription limit
/// until then. If the gate's
/// buffer overflowed meanwhile, returns `LC_ERR_SUBSCRIPTION_ENDED` and sends no marker
/// (the subscriber gets resync-required); a connection cut off as a slow consumer is
/// `LC_ERR_INVALID_STATE`. `out_report` may be NULL.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_report` is NULL or writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn lc_subscription_complete_initial_load(
    manager: lc_manager,
    live_query: lc_live_query_id,
    out_report: *mut lc_initial_load_report,
) -> lc_status {
    boundary("lc_subscription_complete_initial_load", || {
        // SAFETY: the caller promised `out_report` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::optional(out_report, "out_report") }?;
        let report = manager_entry(manager)?
            .manager
            .complete_initial_load(to_live_query(live_query))?;
        if let Some(out) = out {
            out.write(lc_initial_load_report {
                struct_size: 0,
                has_boundary: u32::from(report.boundary.is_some()),
                boundary: report.boundary.map_or(0, |seq| seq.0),
                flushed: report.flushed,
                covered_by_snapshot: report.covered_by_snapshot,
                batches: u64::from(report.batches),
                rows: report.rows,
            });
        }
        Ok(lc_status::LC_OK)
    })
}

/// Resume: hands one commit the client missed (`change_count` changes, only read during
/// the call) to a gated subscription: one opened with `LC_SUBSCRIBE_RESUME` (or
/// `LC_SUBSCRIBE_INITIAL_LOAD`), until its load completes; afterwards
/// `LC_ERR_INVALID_STATE`. Its changes are filtered
/// for this subscription alone and sent straight into the connection's channel, ahead of
/// the completion marker and of the live changes buffered meanwhile, so a client any
/// distance behind can resume (replayed commits take no room in the gate's buffer, which
/// bounds only live commits racing the replay). Replay in log order: a commit at or below
/// the resume point or the highest one already replayed is ignored. `*out_held` (may be
/// NULL) is 1 when some change matched and was sent. When the channel is full the call
/// returns `LC_WOULD_BLOCK` and records nothing: call again with the same commit once the
/// receiver has drained. On a subscription livecore ended (its gate buffer overflowed,
/// its table changed) it returns `LC_ERR_SUBSCRIPTION_ENDED`. The limits of
/// `lc_commit_publish` apply (`LC_MAX_COMMIT_CHANGES`, `LC_MAX_COLUMNS`,
/// `LC_MAX_VALUE_BYTES`), checked after the manager handle and before anything is read.
///
/// Thread safety: any thread; replay one subscription's commits from one thread, in order.
///
/// # Safety
/// `changes` is NULL or points at `change_count` changes obeying `lc_change`'s contract;
/// `out_held` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_subscription_replay_commit(
    manager: lc_manager,
    live_query: lc_live_query_id,
    seq: u64,
    changes: *const lc_change,
    change_count: usize,
    out_held: *mut u32,
) -> lc_status {
    boundary("lc_subscription_replay_commit", || {
        // SAFETY: the caller promised `out_held` is NULL or writable.
        let out = unsafe { Out::optional(out_held, "out_held") }?;
        // The handle and the count before anything is read (as lc_commit_publish).
        let entry = manager_entry(manager)?;
        check_changes(change_count)?;
        // SAFETY: the caller promised `change_count` changes at `changes`.
        let changes = unsafe { slice(changes, change_count, "changes") }?;
        let changes = changes
            .iter()
            .enumerate()
            .map(|(index, change)| {
                // SAFETY: each change obeys lc_change's contract (caller's promise).
                unsafe {
                    change_from_c(change, &format_args!("changes[{index}]"), |key| {
                        entry.table(key)
                    })
                }
            })
            .collect::<Result<Vec<_>, FfiError>>()?;
        let held = entry
            .manager
            .replay_commit(to_live_query(live_query), SeqId(seq), changes)?;
        if let Some(out) = out {
            out.write(u32::from(held));
        }
        Ok(lc_status::LC_OK)
    })
}

/// Resume: the engine cannot replay from the subscription's SeqId. The subscriber gets a
/// resume-unavailable notification and the subscription ends. Only while the subscription
/// is gated (opened with `LC_SUBSCRIBE_RESUME` or `LC_SUBSCRIBE_INITIAL_LOAD`, until
/// `lc_subscription_complete_initial_load`): afterwards `LC_ERR_INVALID_STATE`, on a
/// subscription livecore ended `LC_ERR_SUBSCRIPTION_ENDED`.
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_subscription_resume_unavailable(
    manager: lc_manager,
    live_query: lc_live_query_id,
) -> lc_status {
    boundary("lc_subscription_resume_unavailable", || {
        manager_entry(manager)?
            .manager
            .resume_unavailable(to_live_query(live_query))?;
        Ok(lc_status::LC_OK)
    })
}

/// Reads a subscription's phase and counters.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_status` is NULL or writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn lc_subscription_get_status(
    manager: lc_manager,
    live_query: lc_live_query_id,
    out_status: *mut lc_subscription_status,
) -> lc_status {
    boundary("lc_subscription_get_status", || {
        // SAFETY: the caller promised `out_status` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_status, "out_status") }?;
        let registered = manager_entry(manager)?
            .manager
            .subscription(to_live_query(live_query))?;
        let stats = registered.stats;
        out.write(lc_subscription_status {
            struct_size: 0,
            phase: lc_subscription_phase::tag(registered.state),
            created_at_ms: registered.created_at_ms,
            delivered: stats.delivered,
            dropped: stats.dropped,
            last_update_ms: stats.last_update_ms,
            buffered: stats.buffered as u64,
            has_last_received_seq: u32::from(stats.last_received_seq.is_some()),
            reserved: 0,
            last_received_seq: stats.last_received_seq.map_or(0, |seq| seq.0),
        });
        Ok(lc_status::LC_OK)
    })
}
