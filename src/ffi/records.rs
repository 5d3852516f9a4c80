//! Live-query records (a host's view of its live queries) and failover across nodes.

use std::ffi::c_char;
use std::time::Duration;

use crate::ffi::handles::Handle;
use crate::ffi::manager::manager_entry;
use crate::ffi::ptr::{check_count, check_name_len, read_sized_array, slice, text, Out, SizedOut};
use crate::ffi::state::{optional_text, FailoverEntry, RecordEntry};
use crate::ffi::status::{boundary, lc_status, FfiError};
use crate::ffi::types::*;
use crate::ffi::values::subscribe_options_from_c;
use crate::{
    ConnectionId, FailoverHandler, LiveQueryId, LiveQueryRecord, NodeId, QueryText, SubscriptionId,
    TableId, UserId,
};

fn live_query_to_c(id: LiveQueryId) -> lc_live_query_id {
    lc_live_query_id {
        connection_id: id.connection_id.0,
        subscription_id: id.subscription_id.0,
    }
}

/// A record as C sees it, borrowing its strings from `entry`.
fn record_to_c(entry: &RecordEntry) -> lc_live_query_record {
    let record = &entry.record;
    let (user_id, user_id_len) = optional_text(entry.user_id.as_ref());
    let options = &record.options;
    let mut options_flags = 0;
    if options.initial_load {
        options_flags |= LC_SUBSCRIBE_INITIAL_LOAD;
    }
    if options.resume_from.is_some() {
        options_flags |= LC_SUBSCRIBE_RESUME;
    }
    lc_live_query_record {
        struct_size: 0,
        status: lc_subscription_phase::tag(record.status),
        live_query: live_query_to_c(record.live_query_id),
        node_id: record.node_id.0,
        table_namespace: entry.table_namespace.as_ptr(),
        table_namespace_len: entry.table_namespace.len(),
        table_name: entry.table_name.as_ptr(),
        table_name_len: entry.table_name.len(),
        user_id,
        user_id_len,
        query: entry.query.as_ptr(),
        query_len: entry.query.len(),
        options_flags,
        reserved: 0,
        batch_size: options.batch_size as u64,
        resume_from: options.resume_from.map_or(0, |seq| seq.0),
        created_at_ms: record.created_at_ms,
        last_update_ms: record.last_update_ms,
        last_heartbeat_ms: record.last_heartbeat_ms,
        changes_delivered: record.changes_delivered,
    }
}

/// A record given by C as livecore's.
///
/// # Safety
/// The record's string pointers are NULL or point at their lengths of readable bytes.
unsafe fn record_from_c(
    record: &lc_live_query_record,
    // Formatted only on failure.
    name: &dyn std::fmt::Display,
) -> Result<LiveQueryRecord, FfiError> {
    let status = lc_subscription_phase::from_tag(record.status)?;
    let options = subscribe_options_from_c(
        record.options_flags,
        record.batch_size,
        record.resume_from,
        &format_args!("{name}.options_flags"),
        &format_args!("{name}.batch_size"),
    )?;
    if record.reserved != 0 {
        return Err(FfiError::invalid(format!(
            "{name}.reserved must be 0, not {}",
            record.reserved
        )));
    }
    // Names are bounded before their bytes are read (the C ABI's rule for every name).
    for (len, field) in [
        (record.table_namespace_len, "table_namespace"),
        (record.table_name_len, "table_name"),
        (record.user_id_len, "user_id"),
    ] {
        check_count(
            len,
            LC_MAX_NAME_LEN,
            &format_args!("{name}.{field}_len"),
            lc_status::LC_ERR_INVALID_NAME,
        )?;
    }
    // The query is SQL a subscribe would take, bounded as such before it is read.
    check_count(
        record.query_len,
        LC_MAX_SUBSCRIPTION_SQL_LEN,
        &format_args!("{name}.query_len"),
        lc_status::LC_ERR_OUT_OF_BOUNDS,
    )?;
    // SAFETY: the caller promised each string pointer is NULL or readable for its length.
    let (namespace, table, query) = unsafe {
        (
            text(
                record.table_namespace.cast::<u8>(),
                record.table_namespace_len,
                &format_args!("{name}.table_namespace"),
            )?,
            text(
                record.table_name.cast::<u8>(),
                record.table_name_len,
                &format_args!("{name}.table_name"),
            )?,
            text(
                record.query.cast::<u8>(),
                record.query_len,
                &format_args!("{name}.query"),
            )?,
        )
    };
    check_name_len(
        namespace,
        LC_MAX_NAME_LEN,
        &format_args!("{name}.table_namespace"),
    )?;
    check_name_len(table, LC_MAX_NAME_LEN, &format_args!("{name}.table_name"))?;
    let user = if record.user_id.is_null() {
        None
    } else {
        // SAFETY: as above.
        let user = unsafe {
            text(
                record.user_id.cast::<u8>(),
                record.user_id_len,
                &format_args!("{name}.user_id"),
            )
        }?;
        check_name_len(user, LC_MAX_NAME_LEN, &format_args!("{name}.user_id"))?;
        Some(UserId::from(user))
    };
    let connection_id = ConnectionId(record.live_query.connection_id);
    let subscription_id = SubscriptionId(record.live_query.subscription_id);
    Ok(LiveQueryRecord {
        live_query_id: LiveQueryId::new(connection_id, subscription_id),
        connection_id,
        subscription_id,
        table_id: TableId::new(namespace, table),
        user_id: user,
        query: QueryText::from(query),
        options,
        node_id: NodeId(record.node_id),
        status,
        created_at_ms: record.created_at_ms,
        last_update_ms: record.last_update_ms,
        last_heartbeat_ms: record.last_heartbeat_ms,
        changes_delivered: record.changes_delivered,
    })
}

fn empty_record() -> lc_live_query_record {
    lc_live_query_record {
        struct_size: std::mem::size_of::<lc_live_query_record>() as u32,
        status: 0,
        live_query: lc_live_query_id::default(),
        node_id: 0,
        table_namespace: std::ptr::null(),
        table_namespace_len: 0,
        table_name: std::ptr::null(),
        table_name_len: 0,
        user_id: std::ptr::null(),
        user_id_len: 0,
        query: std::ptr::null(),
        query_len: 0,
        options_flags: 0,
        reserved: 0,
        batch_size: 0,
        resume_from: 0,
        created_at_ms: 0,
        last_update_ms: 0,
        last_heartbeat_ms: 0,
        changes_delivered: 0,
    }
}

/// Takes a record of every live query of the manager, sorted by id, without stalling
/// publishers (the walk reads the routing index as publishing does). `*out_records`
/// receives a list handle: read it with `lc_records_count` and `lc_records_get`, free it
/// with `lc_records_free`.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_records` is NULL or valid for writing an `lc_records`.
#[no_mangle]
pub unsafe extern "C" fn lc_record_list(
    manager: lc_manager,
    out_records: *mut lc_records,
) -> lc_status {
    boundary("lc_record_list", || {
        // SAFETY: the caller promised `out_records` is NULL or writable.
        let out = unsafe { Out::new(out_records, "out_records") }?;
        let records = manager_entry(manager)?.manager.live_query_records();
        // C borrows each string: render them now, once.
        out.write(lc_records::insert(
            records
                .into_iter()
                .map(RecordEntry::new)
                .collect::<Box<[_]>>(),
        ));
        Ok(lc_status::LC_OK)
    })
}

/// Gives the number of records in a list.
///
/// Thread safety: any thread; a list may be read from several threads at once.
///
/// # Safety
/// `out_count` is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_records_count(records: lc_records, out_count: *mut usize) -> lc_status {
    boundary("lc_records_count", || {
        // SAFETY: the caller promised `out_count` is NULL or writable.
        let out = unsafe { Out::new(out_count, "out_count") }?;
        records.write_count(out)
    })
}

/// Reads record `index` of a list. Its strings point into the list and stay valid until
/// `lc_records_free`.
///
/// Thread safety: any thread; a list may be read from several threads at once.
///
/// # Safety
/// `out_record` is NULL or points at an `lc_live_query_record` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_records_get(
    records: lc_records,
    index: usize,
    out_record: *mut lc_live_query_record,
) -> lc_status {
    boundary("lc_records_get", || {
        // SAFETY: the caller promised `out_record` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_record, "out_record") }?;
        let list = records.get()?;
        let record = list
            .get(index)
            .ok_or_else(|| FfiError::index("record", index, list.len()))?;
        // The strings live in the list, which the table keeps until it is freed.
        out.write(record_to_c(record));
        Ok(lc_status::LC_OK)
    })
}

/// Frees a record list. A second free is `LC_ERR_INVALID_HANDLE`.
///
/// Thread safety: any thread, once no other thread uses the list or a string read from it.
#[no_mangle]
pub extern "C" fn lc_records_free(records: lc_records) -> lc_status {
    boundary("lc_records_free", || records.free())
}

/// Runs one failover pass on this manager's node: given every node's live-query records
/// (`record_count` of them, replicated by the host; only read during the call), the ids of
/// the nodes that are active (this node always counts as active) and a staleness bound,
/// it reports the records of nodes that are gone (delete them), the records whose
/// connection was silent longer than `stale_after_ms` at the manager clock's reading, and
/// unsubscribes the stale ones of this node. `*out_report` receives a report handle; free
/// it with `lc_failover_report_free`.
///
/// Limits, checked after the manager handle and before anything is read: `record_count`
/// at most `LC_MAX_FAILOVER_RECORDS`, `active_count` at most `LC_MAX_ACTIVE_NODES`
/// (`LC_ERR_OUT_OF_BOUNDS`). Each record's namespace, table name and user (when not NULL)
/// are names of 1 to `LC_MAX_NAME_LEN` bytes (`LC_ERR_INVALID_NAME`), and its query at
/// most `LC_MAX_SUBSCRIPTION_SQL_LEN` bytes (`LC_ERR_OUT_OF_BOUNDS`), each checked before
/// its bytes are read.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `records` is NULL or points at `record_count` records (each with the same
/// `struct_size`, strings readable for their lengths); `active_nodes` is NULL or points at
/// `active_count` ids; `out_report` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_failover_run(
    manager: lc_manager,
    records: *const lc_live_query_record,
    record_count: usize,
    active_nodes: *const u64,
    active_count: usize,
    stale_after_ms: u64,
    out_report: *mut lc_failover_report,
) -> lc_status {
    boundary("lc_failover_run", || {
        // SAFETY: the caller promised `out_report` is NULL or writable.
        let out = unsafe { Out::new(out_report, "out_report") }?;
        // The handle and the counts before anything is read or allocated.
        let entry = manager_entry(manager)?;
        check_count(
            record_count,
            LC_MAX_FAILOVER_RECORDS,
            "record_count",
            lc_status::LC_ERR_OUT_OF_BOUNDS,
        )?;
        check_count(
            active_count,
            LC_MAX_ACTIVE_NODES,
            "active_count",
            lc_status::LC_ERR_OUT_OF_BOUNDS,
        )?;
        // SAFETY: the caller promised `record_count` records of one declared size.
        let given = unsafe { read_sized_array(records, record_count, empty_record(), "records") }?;
        // SAFETY: the caller promised `active_count` ids at `active_nodes`.
        let active: Vec<NodeId> = unsafe { slice(active_nodes, active_count, "active_nodes") }?
            .iter()
            .map(|&id| NodeId(id))
            .collect();
        let records = given
            .iter()
            .enumerate()
            .map(|(index, record)| {
                // SAFETY: each record's strings are readable (caller's promise).
                unsafe { record_from_c(record, &format_args!("records[{index}]")) }
            })
            .collect::<Result<Vec<_>, FfiError>>()?;
        let handler = FailoverHandler::new(
            entry.manager.config().node_id,
            Duration::from_millis(stale_after_ms),
        );
        let report = handler.run_on(&entry.manager, &records, &active);
        out.write(lc_failover_report::insert(FailoverEntry::new(report)));
        Ok(lc_status::LC_OK)
    })
}

/// Reads the sizes of a failover report's lists.
///
/// Thread safety: any thread; a report may be read from several threads at once.
///
/// # Safety
/// `out_info` is NULL or points at an `lc_failover_info` whose first `struct_size` bytes
/// are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_failover_report_get_info(
    report: lc_failover_report,
    out_info: *mut lc_failover_info,
) -> lc_status {
    boundary("lc_failover_report_get_info", || {
        // SAFETY: the caller promised `out_info` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_info, "out_info") }?;
        let report = report.get()?;
        out.write(lc_failover_info {
            struct_size: 0,
            reserved: 0,
            orphaned: report.orphaned.len() as u64,
            stale: report.stale.len() as u64,
            removed: report.removed.len() as u64,
            failed: report.failed.len() as u64,
        });
        Ok(lc_status::LC_OK)
    })
}

/// Reads record `index` of a report's orphaned or stale list (`list` is an
/// `lc_failover_list`). Its strings stay valid until `lc_failover_report_free`.
///
/// Thread safety: any thread; a report may be read from several threads at once.
///
/// # Safety
/// `out_record` is NULL or points at an `lc_live_query_record` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_failover_report_record(
    report: lc_failover_report,
    list: u32,
    index: usize,
    out_record: *mut lc_live_query_record,
) -> lc_status {
    boundary("lc_failover_report_record", || {
        // SAFETY: the caller promised `out_record` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_record, "out_record") }?;
        let report = report.get()?;
        let records = match list {
            0 => &report.orphaned,
            1 => &report.stale,
            other => return Err(FfiError::tag("lc_failover_list", other)),
        };
        let record = records
            .get(index)
            .ok_or_else(|| FfiError::index("record", index, records.len()))?;
        out.write(record_to_c(record));
        Ok(lc_status::LC_OK)
    })
}

/// Reads entry `index` of a report's list of local live queries it removed.
///
/// Thread safety: any thread; a report may be read from several threads at once.
///
/// # Safety
/// `out_live_query` is NULL or valid for writing an `lc_live_query_id`.
#[no_mangle]
pub unsafe extern "C" fn lc_failover_report_removed(
    report: lc_failover_report,
    index: usize,
    out_live_query: *mut lc_live_query_id,
) -> lc_status {
    boundary("lc_failover_report_removed", || {
        // SAFETY: the caller promised `out_live_query` is NULL or writable.
        let out = unsafe { Out::new(out_live_query, "out_live_query") }?;
        let report = report.get()?;
        let id = report
            .removed
            .get(index)
            .ok_or_else(|| FfiError::index("removed entry", index, report.removed.len()))?;
        out.write(live_query_to_c(*id));
        Ok(lc_status::LC_OK)
    })
}

/// Reads entry `index` of a report's list of local removals that failed: the live query
/// and why (`*out_reason`: `*out_len` bytes of UTF-8 followed by a NUL, valid until
/// `lc_failover_report_free`).
///
/// Thread safety: any thread; a report may be read from several threads at once.
///
/// # Safety
/// `out_live_query`, `out_reason` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_failover_report_failed(
    report: lc_failover_report,
    index: usize,
    out_live_query: *mut lc_live_query_id,
    out_reason: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_failover_report_failed", || {
        // SAFETY: the caller promised each out-pointer is NULL or writable.
        let (id_out, reason_out, len_out) = unsafe {
            (
                Out::new(out_live_query, "out_live_query")?,
                Out::new(out_reason, "out_reason")?,
                Out::new(out_len, "out_len")?,
            )
        };
        let report = report.get()?;
        let (id, reason) = report
            .failed
            .get(index)
            .ok_or_else(|| FfiError::index("failed entry", index, report.failed.len()))?;
        id_out.write(live_query_to_c(*id));
        reason_out.write(reason.as_ptr());
        len_out.write(reason.len());
        Ok(lc_status::LC_OK)
    })
}

/// Frees a failover report. A second free is `LC_ERR_INVALID_HANDLE`.
///
/// Thread safety: any thread, once no other thread uses the report or a string read from
/// it.
#[no_mangle]
pub extern "C" fn lc_failover_report_free(report: lc_failover_report) -> lc_status {
    boundary("lc_failover_report_free", || {
        report.remove()?;
        Ok(lc_status::LC_OK)
    })
}
