//! Values, rows and changes between their C form and livecore's.

use std::fmt;

use crate::ffi::ptr::{optional_c_str, slice};
use crate::ffi::status::{lc_status, FfiError};
use crate::ffi::types::{lc_change, lc_change_type, lc_value, lc_value_type};
use crate::models::change::{ChangeNotification, ChangeType};
use crate::models::ids::{TableId, UserId};
use crate::models::value::{Row, Value};
use crate::sync::DataArc;

impl lc_value_type {
    /// The tag with this number, if any.
    pub(crate) fn from_tag(tag: u32) -> Option<Self> {
        Some(match tag {
            0 => lc_value_type::LC_VALUE_NULL,
            1 => lc_value_type::LC_VALUE_BOOL,
            2 => lc_value_type::LC_VALUE_INT,
            3 => lc_value_type::LC_VALUE_FLOAT,
            4 => lc_value_type::LC_VALUE_TEXT,
            5 => lc_value_type::LC_VALUE_BYTES,
            _ => return None,
        })
    }
}

impl lc_change_type {
    pub(crate) fn from_tag(tag: u32) -> Result<ChangeType, FfiError> {
        match tag {
            0 => Ok(ChangeType::Insert),
            1 => Ok(ChangeType::Update),
            2 => Ok(ChangeType::Delete),
            _ => Err(FfiError::tag("lc_change_type", tag)),
        }
    }
}

/// A C value as livecore's value (text and bytes are copied).
///
/// # Safety
/// For text and bytes, `value.data` is NULL or points at `value.len` readable bytes.
/// `name` names the value in error messages; it is formatted only on failure.
pub(crate) unsafe fn value_from_c(
    value: &lc_value,
    name: &dyn fmt::Display,
) -> Result<Value, FfiError> {
    let tag = lc_value_type::from_tag(value.tag)
        .ok_or_else(|| FfiError::tag("lc_value_type", value.tag))?;
    if value.reserved != 0 {
        return Err(FfiError::invalid(format!(
            "{name}: `reserved` must be 0, not {}",
            value.reserved
        )));
    }
    Ok(match tag {
        lc_value_type::LC_VALUE_NULL => Value::Null,
        lc_value_type::LC_VALUE_BOOL => match value.int_value {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            other => {
                return Err(FfiError::invalid(format!(
                    "{name}: a boolean's int_value must be 0 or 1, not {other}"
                )))
            }
        },
        lc_value_type::LC_VALUE_INT => Value::Int(value.int_value),
        lc_value_type::LC_VALUE_FLOAT => Value::Float(value.float_value),
        lc_value_type::LC_VALUE_TEXT => {
            // SAFETY: the caller promised `len` readable bytes at `data`.
            let bytes = unsafe { slice(value.data, value.len, name) }?;
            let text = std::str::from_utf8(bytes).map_err(|error| {
                FfiError::new(
                    lc_status::LC_ERR_INVALID_UTF8,
                    format!(
                        "{name}: the text is not valid UTF-8 (at byte {})",
                        error.valid_up_to()
                    ),
                )
            })?;
            Value::Text(DataArc::from(text))
        }
        lc_value_type::LC_VALUE_BYTES => {
            // SAFETY: the caller promised `len` readable bytes at `data`.
            Value::Bytes(DataArc::from(unsafe {
                slice(value.data, value.len, name)
            }?))
        }
    })
}

/// `len` C values at `ptr` as a row.
///
/// # Safety
/// `ptr` is NULL or points at `len` values, each obeying [`value_from_c`]'s contract.
pub(crate) unsafe fn row_from_c(
    ptr: *const lc_value,
    len: usize,
    name: &dyn fmt::Display,
) -> Result<Row, FfiError> {
    // SAFETY: the caller promised `len` values at `ptr`.
    let values = unsafe { slice(ptr, len, name) }?;
    let mut row = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        // SAFETY: each value's data obeys the caller's promise.
        row.push(unsafe { value_from_c(value, &format_args!("{name}[{index}]")) }?);
    }
    Ok(Row::new(row))
}

/// A C change as livecore's change; `table_id` resolves the change's table key.
///
/// # Safety
/// The change's pointers obey the contract documented on `lc_change`.
pub(crate) unsafe fn change_from_c(
    change: &lc_change,
    name: &dyn fmt::Display,
    table_id: impl FnOnce(u32) -> Result<TableId, FfiError>,
) -> Result<ChangeNotification, FfiError> {
    let change_type = lc_change_type::from_tag(change.change_type)?;
    let table_id = table_id(change.table)?;
    // SAFETY: the caller promised `row_len` values at `row`.
    let row = unsafe { row_from_c(change.row, change.row_len, &format_args!("{name}.row")) }?;
    let old_row = match change_type {
        ChangeType::Update => {
            if change.old_row.is_null() && change.old_row_len == 0 {
                None
            } else {
                // SAFETY: the caller promised `old_row_len` values at `old_row`.
                Some(unsafe {
                    row_from_c(
                        change.old_row,
                        change.old_row_len,
                        &format_args!("{name}.old_row"),
                    )
                }?)
            }
        }
        _ => {
            if !change.old_row.is_null() || change.old_row_len != 0 {
                return Err(FfiError::invalid(format!(
                    "{name}: only updates carry old_row (a delete passes the deleted row as `row`)"
                )));
            }
            None
        }
    };
    // SAFETY: the caller promised `owner` is NULL or a NUL-terminated string.
    let owner = unsafe { optional_c_str(change.owner, &format_args!("{name}.owner")) }?;
    Ok(ChangeNotification {
        table_id,
        change_type,
        row,
        old_row,
        owner: owner.map(UserId::from),
    })
}

/// livecore's value as a C value borrowing its text or bytes.
pub(crate) fn value_to_c(value: &Value) -> lc_value {
    let mut out = lc_value {
        tag: lc_value_type::LC_VALUE_NULL as u32,
        reserved: 0,
        int_value: 0,
        float_value: 0.0,
        data: std::ptr::null(),
        len: 0,
    };
    match value {
        Value::Null => {}
        Value::Bool(b) => {
            out.tag = lc_value_type::LC_VALUE_BOOL as u32;
            out.int_value = i64::from(*b);
        }
        Value::Int(i) => {
            out.tag = lc_value_type::LC_VALUE_INT as u32;
            out.int_value = *i;
        }
        Value::Float(f) => {
            out.tag = lc_value_type::LC_VALUE_FLOAT as u32;
            out.float_value = *f;
        }
        Value::Text(text) => {
            out.tag = lc_value_type::LC_VALUE_TEXT as u32;
            out.data = text.as_ptr();
            out.len = text.len();
        }
        Value::Bytes(bytes) => {
            out.tag = lc_value_type::LC_VALUE_BYTES as u32;
            out.data = bytes.as_ptr();
            out.len = bytes.len();
        }
    }
    out
}
