//! Publishing committed changes.

use crate::ffi::manager::manager_entry;
use crate::ffi::ptr::{borrow, check_count, slice, SizedOut};
use crate::ffi::state::ManagerEntry;
use crate::ffi::status::{boundary, lc_status, panic_point, FfiError, PanicPoint};
use crate::ffi::types::*;
use crate::ffi::values::change_from_c;
use crate::{ChangeNotification, PublishSummary, SeqId, TableKey};

/// The table keys of a commit's changes, inline for small commits.
type TableKeys = smallvec::SmallVec<[TableKey; 8]>;

/// The C changes as livecore's, with their table keys.
///
/// # Safety
/// Each change obeys the contract documented on `lc_change`.
unsafe fn convert(
    entry: &ManagerEntry,
    changes: &[lc_change],
) -> Result<(Vec<ChangeNotification>, TableKeys), FfiError> {
    // A plain loop into a presized vector: this runs on every publish. The presize is
    // capped so that a count larger than the memory behind it allocates nothing huge. The
    // keys stay inline for commits of up to eight changes: no second allocation per publish.
    let mut converted = Vec::with_capacity(changes.len().min(1024));
    let mut keys = TableKeys::new();
    for (index, change) in changes.iter().enumerate() {
        keys.push(TableKey(change.table));
        // SAFETY: each change obeys lc_change's contract (this function's caller's promise).
        converted.push(unsafe {
            change_from_c(change, &format_args!("changes[{index}]"), |key| {
                entry.table(key)
            })
        }?);
    }
    Ok((converted, keys))
}

/// Refuses a commit of more than `LC_MAX_COMMIT_CHANGES` changes before any is read.
pub(crate) fn check_changes(change_count: usize) -> Result<(), FfiError> {
    check_count(
        change_count,
        LC_MAX_COMMIT_CHANGES,
        "change_count",
        lc_status::LC_ERR_COMMIT_TOO_LARGE,
    )
}

fn write_summary(out: Option<SizedOut<lc_publish_summary>>, summary: PublishSummary) {
    if let Some(out) = out {
        out.write(lc_publish_summary {
            struct_size: 0,
            reserved: 0,
            matched: summary.matched as u64,
            enqueued: summary.enqueued as u64,
            dropped: summary.dropped as u64,
            buffered: summary.buffered as u64,
            covered_by_snapshot: summary.covered_by_snapshot as u64,
            evaluated: summary.evaluated as u64,
            topic_messages: summary.topic_messages as u64,
            topic_write_failures: summary.topic_write_failures as u64,
        });
    }
}

/// Publishes one change as its own commit numbered `seq`. See `lc_commit_publish`.
///
/// Thread safety: any thread; publish each table's commits in ascending SeqId order, one at
/// a time (livecore does not reorder them).
///
/// # Safety
/// `change` is NULL or points at one change obeying `lc_change`'s contract; `out_summary`
/// is NULL or writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn lc_change_publish(
    manager: lc_manager,
    seq: u64,
    change: *const lc_change,
    out_summary: *mut lc_publish_summary,
) -> lc_status {
    boundary("lc_change_publish", || {
        // SAFETY: the caller promised `change` is NULL or a live change.
        let change = unsafe { borrow(change, "change") }?;
        // SAFETY: the caller promised `out_summary` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::optional(out_summary, "out_summary") }?;
        let entry = manager_entry(manager)?;
        // SAFETY: the caller promised the change obeys lc_change's contract.
        let (changes, keys) = unsafe { convert(&entry, std::slice::from_ref(change)) }?;
        panic_point(PanicPoint::ChangesConverted);
        let summary = entry
            .manager
            .publish_commit_keyed(SeqId(seq), changes, &keys)?;
        write_summary(out, summary);
        Ok(lc_status::LC_OK)
    })
}

/// Publishes the `change_count` changes of one commit, numbered `seq`, after the engine
/// committed it. Every change is validated first (known table key, row lengths, an owner
/// on user-scoped tables, an old row on updates): an invalid commit is refused whole and
/// nothing is delivered. Each matching subscription then gets one delivery with all the
/// commit's changes it matched, in commit order. The changes are only read during the
/// call (livecore copies them). `out_summary` may be NULL.
///
/// Limits, checked (after the manager handle) before anything is read: `change_count` is
/// at most `LC_MAX_COMMIT_CHANGES` (`LC_ERR_COMMIT_TOO_LARGE`), each `row_len` (and an
/// update's `old_row_len`) the table's column count (`LC_ERR_ROW_ARITY`), each text or bytes value
/// at most `LC_MAX_VALUE_BYTES` (`LC_ERR_OUT_OF_BOUNDS`).
///
/// Thread safety: any thread; publish each table's commits in ascending SeqId order, one at
/// a time (livecore does not reorder them).
///
/// # Safety
/// `changes` is NULL or points at `change_count` changes obeying `lc_change`'s contract;
/// `out_summary` is NULL or writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn lc_commit_publish(
    manager: lc_manager,
    seq: u64,
    changes: *const lc_change,
    change_count: usize,
    out_summary: *mut lc_publish_summary,
) -> lc_status {
    boundary("lc_commit_publish", || {
        // The handle and the count first: nothing is read for a freed manager or an
        // impossible commit.
        let entry = manager_entry(manager)?;
        check_changes(change_count)?;
        // SAFETY: the caller promised `change_count` changes at `changes`.
        let changes = unsafe { slice(changes, change_count, "changes") }?;
        // SAFETY: the caller promised `out_summary` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::optional(out_summary, "out_summary") }?;
        // SAFETY: the caller promised the changes obey lc_change's contract.
        let (changes, keys) = unsafe { convert(&entry, changes) }?;
        panic_point(PanicPoint::ChangesConverted);
        let summary = entry
            .manager
            .publish_commit_keyed(SeqId(seq), changes, &keys)?;
        write_summary(out, summary);
        Ok(lc_status::LC_OK)
    })
}
