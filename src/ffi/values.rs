//! Values, rows and changes between their C form and livecore's.

use std::fmt;

use crate::ffi::ptr::{check_count, name_str, slice, text};
use crate::ffi::state::RegisteredTable;
use crate::ffi::status::{lc_status, FfiError};
use crate::ffi::types::{
    lc_change, lc_change_type, lc_slow_consumer_policy, lc_subscription_phase, lc_table_scope,
    lc_topic_reset_policy, lc_value, lc_value_type, LC_MAX_COLUMNS, LC_MAX_VALUE_BYTES,
    LC_SUBSCRIBE_INITIAL_LOAD, LC_SUBSCRIBE_RESUME,
};
use crate::sync::DataArc;
use crate::{
    ChangeNotification, ChangeType, ResetPolicy, Row, SeqId, SlowConsumerPolicy,
    SubscriptionOptions, SubscriptionPhase, TableScope, UserId, Value,
};

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

/// Reads a C tag (a `uint32_t` naming a variant of the C enum `$c_enum`) as the Rust value
/// paired with it, comparing with the enum's own constants rather than raw numbers; any
/// other number is `LC_ERR_INVALID_TAG`.
macro_rules! from_tag {
    ($c_enum:ident, $tag:expr, { $($variant:ident => $value:expr),+ $(,)? }) => {
        match $tag {
            $(tag if tag == $c_enum::$variant as u32 => Ok($value),)+
            other => Err(FfiError::tag(stringify!($c_enum), other)),
        }
    };
}

impl lc_table_scope {
    pub(crate) fn from_tag(tag: u32) -> Result<TableScope, FfiError> {
        from_tag!(lc_table_scope, tag, {
            LC_SCOPE_SHARED => TableScope::Shared,
            LC_SCOPE_USER => TableScope::User,
        })
    }
}

impl lc_slow_consumer_policy {
    pub(crate) fn from_tag(tag: u32) -> Result<SlowConsumerPolicy, FfiError> {
        from_tag!(lc_slow_consumer_policy, tag, {
            LC_SLOW_CONSUMER_GAP_NOTICE => SlowConsumerPolicy::GapNotice,
            LC_SLOW_CONSUMER_DISCONNECT => SlowConsumerPolicy::Disconnect,
        })
    }
}

impl lc_topic_reset_policy {
    pub(crate) fn from_tag(tag: u32) -> Result<ResetPolicy, FfiError> {
        from_tag!(lc_topic_reset_policy, tag, {
            LC_TOPIC_RESET_EARLIEST => ResetPolicy::Earliest,
            LC_TOPIC_RESET_LATEST => ResetPolicy::Latest,
            LC_TOPIC_RESET_NONE => ResetPolicy::None,
        })
    }
}

impl lc_change_type {
    pub(crate) fn from_tag(tag: u32) -> Result<ChangeType, FfiError> {
        from_tag!(lc_change_type, tag, {
            LC_CHANGE_INSERT => ChangeType::Insert,
            LC_CHANGE_UPDATE => ChangeType::Update,
            LC_CHANGE_DELETE => ChangeType::Delete,
        })
    }

    /// The tag of a change type.
    pub(crate) fn tag(change_type: ChangeType) -> u32 {
        match change_type {
            ChangeType::Insert => lc_change_type::LC_CHANGE_INSERT as u32,
            ChangeType::Update => lc_change_type::LC_CHANGE_UPDATE as u32,
            ChangeType::Delete => lc_change_type::LC_CHANGE_DELETE as u32,
        }
    }
}

impl lc_subscription_phase {
    pub(crate) fn from_tag(tag: u32) -> Result<SubscriptionPhase, FfiError> {
        from_tag!(lc_subscription_phase, tag, {
            LC_PHASE_LOADING => SubscriptionPhase::Loading,
            LC_PHASE_LIVE => SubscriptionPhase::Live,
            LC_PHASE_CLOSED => SubscriptionPhase::Closed,
        })
    }

    /// The tag of a subscription phase.
    pub(crate) fn tag(phase: SubscriptionPhase) -> u32 {
        match phase {
            SubscriptionPhase::Loading => lc_subscription_phase::LC_PHASE_LOADING as u32,
            SubscriptionPhase::Live => lc_subscription_phase::LC_PHASE_LIVE as u32,
            SubscriptionPhase::Closed => lc_subscription_phase::LC_PHASE_CLOSED as u32,
        }
    }
}

/// Subscribe options given by C as flags (`LC_SUBSCRIBE_*`), a batch size and a resume
/// position (read only with `LC_SUBSCRIBE_RESUME`). `flags_name` and `batch_size_name`
/// name the fields in error messages; they are formatted only on failure.
pub(crate) fn subscribe_options_from_c(
    flags: u32,
    batch_size: u64,
    resume_from: u64,
    flags_name: &dyn fmt::Display,
    batch_size_name: &dyn fmt::Display,
) -> Result<SubscriptionOptions, FfiError> {
    let known = LC_SUBSCRIBE_INITIAL_LOAD | LC_SUBSCRIBE_RESUME;
    if flags & !known != 0 {
        return Err(FfiError::invalid(format!(
            "{flags_name} has unknown bits 0x{:x}",
            flags & !known
        )));
    }
    Ok(SubscriptionOptions {
        initial_load: flags & LC_SUBSCRIBE_INITIAL_LOAD != 0,
        batch_size: usize::try_from(batch_size)
            .map_err(|_| FfiError::invalid(format!("{batch_size_name} does not fit in size_t")))?,
        resume_from: (flags & LC_SUBSCRIBE_RESUME != 0).then_some(SeqId(resume_from)),
    })
}

/// Pushes the conversion of a value that passes every check onto `row`, or returns false
/// (pushing nothing) for one that [`value_from_c`] must look at and, if it is refused,
/// describe; also false when `row` has no spare capacity. Every value of every published
/// row goes through here, so it carries none of the error paths.
///
/// # Safety
/// As for [`value_from_c`].
#[inline(always)]
unsafe fn push_well_formed(row: &mut Vec<Value>, value: &lc_value) -> bool {
    if value.reserved != 0 {
        return false;
    }
    let bytes = || -> Option<&[u8]> {
        match value.len {
            0 => Some(&[]),
            len if len > LC_MAX_VALUE_BYTES || value.data.is_null() => None,
            // SAFETY: non-NULL (and a byte pointer is always aligned), at most
            // LC_MAX_VALUE_BYTES long, and the caller promised `len` readable bytes.
            len => Some(unsafe { std::slice::from_raw_parts(value.data, len) }),
        }
    };
    let Some(slot) = row.spare_capacity_mut().first_mut() else {
        return false;
    };
    // Each kind writes its own value into the slot. Through one shared `push`, the value
    // was built on the stack (its tag byte and payload stored apart) and then copied with
    // one wide load, which waits for those stores to land: a stall on every value, which
    // made converting a C row three times as costly as the same conversion in Rust.
    match value.tag {
        tag if tag == lc_value_type::LC_VALUE_NULL as u32 => {
            slot.write(Value::Null);
        }
        tag if tag == lc_value_type::LC_VALUE_BOOL as u32 => match value.int_value {
            0 => {
                slot.write(Value::Bool(false));
            }
            1 => {
                slot.write(Value::Bool(true));
            }
            _ => return false,
        },
        tag if tag == lc_value_type::LC_VALUE_INT as u32 => {
            slot.write(Value::Int(value.int_value));
        }
        tag if tag == lc_value_type::LC_VALUE_FLOAT as u32 => {
            slot.write(Value::Float(value.float_value));
        }
        tag if tag == lc_value_type::LC_VALUE_TEXT as u32 => {
            match bytes().and_then(|bytes| std::str::from_utf8(bytes).ok()) {
                Some(text) => {
                    slot.write(Value::Text(DataArc::from(text)));
                }
                None => return false,
            }
        }
        tag if tag == lc_value_type::LC_VALUE_BYTES as u32 => match bytes() {
            Some(bytes) => {
                slot.write(Value::Bytes(DataArc::from(bytes)));
            }
            None => return false,
        },
        _ => return false,
    }
    // SAFETY: the slot exists, so the length is below the capacity, and it is the one
    // right after the row's last value, just written.
    unsafe { row.set_len(row.len() + 1) };
    true
}

/// A C value as livecore's value (text and bytes are copied), every check spelled out with
/// a message for each refusal. A row's values take [`push_well_formed`] first and come here
/// only when it declines one.
///
/// # Safety
/// For text and bytes, `value.data` is NULL or points at `value.len` readable bytes.
/// `name` names the value in error messages; it is formatted only on failure.
#[inline(never)]
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
    if matches!(
        tag,
        lc_value_type::LC_VALUE_TEXT | lc_value_type::LC_VALUE_BYTES
    ) {
        // Bounded before the copy: a lying length must not become a huge allocation.
        check_count(
            value.len,
            LC_MAX_VALUE_BYTES,
            &format_args!("{name}.len"),
            lc_status::LC_ERR_OUT_OF_BOUNDS,
        )?;
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
            Value::Text(DataArc::from(unsafe { text(value.data, value.len, name) }?))
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
    // No table has more columns: refused before anything is read or allocated.
    check_count(len, LC_MAX_COLUMNS, name, lc_status::LC_ERR_ROW_ARITY)?;
    // SAFETY: the caller promised `len` values at `ptr`.
    let values = unsafe { slice(ptr, len, name) }?;
    let mut row = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        // SAFETY: each value's data obeys the caller's promise.
        if !unsafe { push_well_formed(&mut row, value) } {
            // SAFETY: as above.
            let checked = unsafe { value_from_c(value, &format_args!("{name}[{index}]")) };
            row.push(checked?);
        }
    }
    Ok(Row::new(row))
}

/// A C change as livecore's change; `table` resolves the change's table key to its id and
/// column count. A row whose length is not the table's column count is refused before
/// any of its values is read (a count that disagrees with the schema reads nothing).
///
/// # Safety
/// The change's pointers obey the contract documented on `lc_change`.
pub(crate) unsafe fn change_from_c(
    change: &lc_change,
    name: &dyn fmt::Display,
    table: impl FnOnce(u32) -> Result<RegisteredTable, FfiError>,
) -> Result<ChangeNotification, FfiError> {
    let change_type = lc_change_type::from_tag(change.change_type)?;
    let RegisteredTable {
        id: table_id,
        columns,
        user_scoped,
    } = table(change.table)?;
    // An update's old row, when it has one (other changes carrying one are refused below).
    let old_row_given =
        change_type == ChangeType::Update && (!change.old_row.is_null() || change.old_row_len != 0);
    for (field, len) in [("row", change.row_len), ("old_row", change.old_row_len)] {
        if len != columns && (field == "row" || old_row_given) {
            return Err(FfiError::new(
                lc_status::LC_ERR_ROW_ARITY,
                format!("{name}.{field} has {len} values; table {table_id} has {columns} columns"),
            ));
        }
    }
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
    // Read on user-scoped tables only (a shared table's change ignores it, as documented),
    // and held to the rule of every user name: the owner must be a user a connection can
    // authenticate as.
    let owner = if user_scoped && !change.owner.is_null() {
        // SAFETY: the caller promised `owner` is NULL or a NUL-terminated string.
        Some(unsafe { name_str(change.owner, &format_args!("{name}.owner")) }?)
    } else {
        None
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn c_value(tag: u32, int_value: i64, data: &[u8], len: usize) -> lc_value {
        lc_value {
            tag,
            reserved: 0,
            int_value,
            float_value: 2.5,
            data: if data.is_empty() {
                std::ptr::null()
            } else {
                data.as_ptr()
            },
            len,
        }
    }

    /// A row's values take the fast conversion; one it declines takes the checked one. The
    /// fast one must accept every well-formed value and nothing else, and both must give
    /// the same value, or the same refusal, for every kind of value.
    #[test]
    fn a_row_converts_each_value_as_the_checked_conversion_does() {
        let text = "héllo".as_bytes();
        // Zeroes (valid UTF-8) one byte past the limit, allocated zeroed and never touched
        // unless a conversion reads it: a too-long value is refused before any byte is
        // read, and a conversion that read it would find nothing else to refuse.
        let too_long = vec![0u8; LC_MAX_VALUE_BYTES + 1];
        let (null, boolean, int, float, text_tag, bytes_tag) = (0, 1, 2, 3, 4, 5);
        let well_formed = [
            c_value(null, 0, &[], 0),
            c_value(boolean, 0, &[], 0),
            c_value(boolean, 1, &[], 0),
            c_value(int, -9, &[], 0),
            c_value(float, 0, &[], 0),
            c_value(text_tag, 0, text, text.len()),
            c_value(text_tag, 0, &[], 0),
            c_value(bytes_tag, 0, &[0xff, 0, 1], 3),
            c_value(bytes_tag, 0, &[], 0),
        ];
        let refused = [
            c_value(boolean, 2, &[], 0),
            c_value(text_tag, 0, &[0xff, 0xfe], 2),
            c_value(text_tag, 0, &[], 3),
            c_value(text_tag, 0, &too_long, too_long.len()),
            c_value(bytes_tag, 0, &[], 5),
            c_value(bytes_tag, 0, &too_long, too_long.len()),
            c_value(6, 0, &[], 0),
            c_value(u32::MAX, 0, &[], 0),
            lc_value {
                reserved: 1,
                ..c_value(int, 1, &[], 0)
            },
        ];
        let cases = well_formed.iter().map(|value| (value, true));
        let cases = cases.chain(refused.iter().map(|value| (value, false)));
        for (index, (value, accepted)) in cases.enumerate() {
            let mut fast = Vec::with_capacity(1);
            // SAFETY: every value's data points at `len` readable bytes, or is NULL.
            let (pushed, one, row) = unsafe {
                (
                    push_well_formed(&mut fast, value),
                    value_from_c(value, &"value"),
                    row_from_c(value, 1, &"row"),
                )
            };
            assert_eq!(
                pushed, accepted,
                "case {index}: taken by the fast conversion"
            );
            assert_eq!(fast.len(), usize::from(pushed), "case {index}");
            match (one, row) {
                (Ok(one), Ok(row)) => {
                    assert!(accepted, "case {index}: accepted by the checked conversion");
                    assert_eq!(fast, vec![one.clone()], "case {index}");
                    assert_eq!(vec![one], row.to_vec(), "case {index}");
                }
                (Err(one), Err(row)) => assert_eq!(one.status, row.status, "case {index}"),
                (one, row) => panic!("case {index}: {one:?} against {row:?}"),
            }
        }
    }
}
