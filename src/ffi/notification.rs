//! Reading received notifications.

use std::ffi::c_char;

use crate::ffi::handles::Handle;
use crate::ffi::ptr::{Out, SizedOut};
use crate::ffi::state::{json_bytes, json_parts, CText, NotificationEntry};
use crate::ffi::status::{boundary, lc_status, FfiError};
use crate::ffi::types::*;
use crate::ffi::values::value_to_c;
use crate::sync::DataArc;
use crate::{CloseReason, Notification, SeqId, Value};

fn column_names(notification: &Notification) -> &[DataArc<str>] {
    match notification {
        Notification::Changes(changes) => changes.column_names(),
        Notification::Snapshot(batch) => batch.column_names(),
        _ => &[],
    }
}

fn info(notification: &Notification) -> lc_notification_info {
    let live = notification.live_query_id();
    let mut info = lc_notification_info {
        struct_size: 0,
        kind: 0,
        live_query: lc_live_query_id {
            connection_id: live.connection_id.0,
            subscription_id: live.subscription_id.0,
        },
        has_seq: 0,
        close_reason: lc_close_reason::LC_CLOSE_NONE as u32,
        seq: 0,
        row_count: 0,
        column_count: column_names(notification).len() as u64,
        batch: 0,
        snapshot_rows: 0,
        missed: 0,
    };
    let mut set_seq = |seq: Option<SeqId>| {
        if let Some(seq) = seq {
            info.has_seq = 1;
            info.seq = seq.0;
        }
    };
    let kind = match notification {
        Notification::Changes(changes) => {
            set_seq(Some(changes.seq()));
            info.row_count = changes.len() as u64;
            lc_notification_kind::LC_NOTIFICATION_CHANGES
        }
        Notification::Snapshot(batch) => {
            info.row_count = batch.rows().len() as u64;
            info.batch = u64::from(batch.batch_number());
            lc_notification_kind::LC_NOTIFICATION_SNAPSHOT
        }
        Notification::InitialLoadComplete {
            boundary,
            batches,
            rows,
            ..
        } => {
            set_seq(*boundary);
            info.batch = u64::from(*batches);
            info.snapshot_rows = *rows;
            lc_notification_kind::LC_NOTIFICATION_LOAD_COMPLETE
        }
        Notification::Gap {
            last_seq, missed, ..
        } => {
            set_seq(*last_seq);
            info.missed = *missed;
            lc_notification_kind::LC_NOTIFICATION_GAP
        }
        Notification::ResyncRequired { .. } => {
            lc_notification_kind::LC_NOTIFICATION_RESYNC_REQUIRED
        }
        Notification::ResumeUnavailable { .. } => {
            lc_notification_kind::LC_NOTIFICATION_RESUME_UNAVAILABLE
        }
        Notification::Closed { reason, .. } => {
            info.close_reason = match reason {
                CloseReason::SchemaChanged { .. } => lc_close_reason::LC_CLOSE_SCHEMA_CHANGED,
                CloseReason::TableDropped => lc_close_reason::LC_CLOSE_TABLE_DROPPED,
                CloseReason::Revoked { .. } => lc_close_reason::LC_CLOSE_REVOKED,
            } as u32;
            lc_notification_kind::LC_NOTIFICATION_CLOSED
        }
    };
    info.kind = kind as u32;
    info
}

/// Reads what kind of notification it is, its subscription and its numbers.
///
/// Thread safety: any thread; a notification may be read from several threads at once.
///
/// # Safety
/// `out_info` is NULL or writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn lc_notification_get_info(
    notification: lc_notification,
    out_info: *mut lc_notification_info,
) -> lc_status {
    boundary("lc_notification_get_info", || {
        // SAFETY: the caller promised `out_info` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_info, "out_info") }?;
        out.write(notification.with(|entry| info(&entry.notification))?);
        Ok(lc_status::LC_OK)
    })
}

/// Gives the notification as one JSON object (the format of the README: every value has a
/// defined form; integers beyond 2^53 are strings, NaN and infinities are "NaN",
/// "Infinity", "-Infinity", bytes are base64). `*out_json` points at `*out_len` bytes of
/// UTF-8 followed by a NUL (not counted in the length), owned by the notification and
/// valid until `lc_notification_free`. Built once, on the first call.
///
/// Thread safety: any thread; a notification may be read from several threads at once.
///
/// # Safety
/// `out_json` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_notification_json(
    notification: lc_notification,
    out_json: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_notification_json", || {
        // SAFETY: the caller promised `out_json` is NULL or writable.
        let json_out = unsafe { Out::new(out_json, "out_json") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        // The bytes live in a buffer of the entry, kept until the notification is freed.
        let cached = notification.with(|entry| entry.json.get().map(|bytes| json_parts(bytes)))?;
        let (json, len) = match cached {
            Some(parts) => parts,
            None => {
                // Built outside the shard's lock (a large notification takes a while), from
                // a copy of the notification (references: no row is copied); when two
                // threads build it at once, the first stored is the one kept.
                let copy = notification.with(|entry| entry.notification.clone())?;
                let built = json_bytes(|out| copy.write_json(out));
                notification.with(|entry| json_parts(entry.json.get_or_init(|| built)))?
            }
        };
        json_out.write(json);
        len_out.write(len);
        Ok(lc_status::LC_OK)
    })
}

/// Gives the name of projected column `index` of a changes or snapshot notification:
/// `*out_name` points at `*out_len` bytes of UTF-8 followed by a NUL, valid until
/// `lc_notification_free`.
///
/// Thread safety: any thread; a notification may be read from several threads at once.
///
/// # Safety
/// `out_name` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_notification_column(
    notification: lc_notification,
    index: usize,
    out_name: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_notification_column", || {
        // SAFETY: the caller promised `out_name` is NULL or writable.
        let name_out = unsafe { Out::new(out_name, "out_name") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        let (name, len) = notification.with(|entry| {
            let names = entry.columns.get_or_init(|| {
                column_names(&entry.notification)
                    .iter()
                    .map(|name| CText::new(name))
                    .collect()
            });
            // The text lives in a buffer of the entry, which stays in its slot until the
            // notification is freed.
            names
                .get(index)
                .map(|name| (name.as_ptr(), name.len()))
                .ok_or_else(|| FfiError::index("column", index, names.len()))
        })??;
        name_out.write(name);
        len_out.write(len);
        Ok(lc_status::LC_OK)
    })
}

/// Describes change `index` of a changes notification (its type as the subscriber sees it,
/// whether it has an old row, its position in the commit). Other kinds have no changes.
///
/// Thread safety: any thread; a notification may be read from several threads at once.
///
/// # Safety
/// `out_change` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_notification_change(
    notification: lc_notification,
    index: usize,
    out_change: *mut lc_change_info,
) -> lc_status {
    boundary("lc_notification_change", || {
        // SAFETY: the caller promised `out_change` is NULL or writable.
        let out = unsafe { Out::new(out_change, "out_change") }?;
        let change = notification.with(|entry| {
            let Notification::Changes(changes) = &entry.notification else {
                return Err(FfiError::index("change", index, 0));
            };
            let change = changes
                .change(index)
                .ok_or_else(|| FfiError::index("change", index, changes.len()))?;
            Ok(lc_change_info {
                change_type: lc_change_type::tag(change.change_type),
                has_old_row: u32::from(change.old_row.is_some()),
                position: change.position() as u64,
            })
        })??;
        out.write(change);
        Ok(lc_status::LC_OK)
    })
}

fn value_at(
    entry: &NotificationEntry,
    row: usize,
    version: u32,
    column: usize,
) -> Result<&Value, FfiError> {
    let old = match version {
        0 => false,
        1 => true,
        other => return Err(FfiError::tag("lc_row_version", other)),
    };
    let columns = column_names(&entry.notification).len();
    if column >= columns {
        return Err(FfiError::index("column", column, columns));
    }
    match &entry.notification {
        Notification::Changes(changes) => {
            let change = changes
                .change(row)
                .ok_or_else(|| FfiError::index("change", row, changes.len()))?;
            let projected = if old {
                change.old_row.ok_or_else(|| {
                    FfiError::invalid(format!(
                        "change {row} has no old row (it is of type {})",
                        change.change_type
                    ))
                })?
            } else {
                change.row
            };
            Ok(projected.value(column))
        }
        Notification::Snapshot(batch) => {
            if old {
                return Err(FfiError::invalid("snapshot rows have no old version"));
            }
            let rows = batch.rows();
            let values = rows
                .get(row)
                .ok_or_else(|| FfiError::index("row", row, rows.len()))?;
            Ok(values.value(column))
        }
        _ => Err(FfiError::index("row", row, 0)),
    }
}

/// Reads one value: row `row` (a change's index in a changes notification, a row's in a
/// snapshot batch), `version` (an `lc_row_version`: the current row, or the old row of an
/// update), projected column `column`. Text and bytes in `*out_value` point into the
/// notification and stay valid until `lc_notification_free`.
///
/// Thread safety: any thread; a notification may be read from several threads at once.
///
/// # Safety
/// `out_value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_notification_value(
    notification: lc_notification,
    row: usize,
    version: u32,
    column: usize,
    out_value: *mut lc_value,
) -> lc_status {
    boundary("lc_notification_value", || {
        // SAFETY: the caller promised `out_value` is NULL or writable.
        let out = unsafe { Out::new(out_value, "out_value") }?;
        // The value's bytes are shared with the notification, which stays in its slot
        // until it is freed.
        let value =
            notification.with(|entry| value_at(entry, row, version, column).map(value_to_c))??;
        out.write(value);
        Ok(lc_status::LC_OK)
    })
}

/// Frees a notification and everything borrowed from it. A second free (or any use after
/// it) is `LC_ERR_INVALID_HANDLE`.
///
/// Thread safety: any thread, once no other thread uses the notification or a pointer
/// borrowed from it.
#[no_mangle]
pub extern "C" fn lc_notification_free(notification: lc_notification) -> lc_status {
    boundary("lc_notification_free", || {
        notification.remove()?;
        Ok(lc_status::LC_OK)
    })
}
