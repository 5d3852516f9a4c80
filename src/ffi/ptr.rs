//! Checked access to what C hands over: pointers, slices, strings and sized structs. Every
//! raw-pointer read or write of the C ABI goes through these few functions.
//!
//! A NULL where a pointer is required is `LC_ERR_NULL_ARGUMENT`; a misaligned pointer or an
//! impossible length is `LC_ERR_INVALID_ARGUMENT`; text that is not UTF-8 is
//! `LC_ERR_INVALID_UTF8`. What cannot be checked (that a non-NULL pointer points at live
//! memory of the right size) is the caller's promise, stated in each function's `# Safety`.

use std::ffi::{c_char, CStr};
use std::mem::size_of;
use std::ptr::NonNull;

use crate::ffi::status::{lc_status, FfiError};
use crate::ffi::types::*;

/// A checked, writable out-parameter.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Checks a required out-pointer.
    ///
    /// # Safety
    /// `ptr` is NULL or valid for writing a `T` for as long as the returned value is used.
    pub(crate) unsafe fn new(ptr: *mut T, name: &str) -> Result<Self, FfiError> {
        let ptr = NonNull::new(ptr).ok_or_else(|| FfiError::null(name))?;
        if !ptr.as_ptr().is_aligned() {
            return Err(misaligned(name));
        }
        Ok(Self(ptr))
    }

    /// Checks an optional out-pointer: NULL means the caller does not want the value.
    ///
    /// # Safety
    /// As for [`Out::new`].
    pub(crate) unsafe fn optional(ptr: *mut T, name: &str) -> Result<Option<Self>, FfiError> {
        if ptr.is_null() {
            return Ok(None);
        }
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { Self::new(ptr, name) }.map(Some)
    }

    /// Writes a value a later [`write`](Self::write) may replace: a default written first,
    /// so that no early return leaves the memory unwritten. Only for values with nothing
    /// to drop, since the next write does not drop it.
    pub(crate) fn preset(&self, value: T)
    where
        T: Copy,
    {
        // SAFETY: as for `write`.
        unsafe { self.0.as_ptr().write(value) }
    }

    /// Writes the value (without dropping whatever the memory held).
    pub(crate) fn write(self, value: T) {
        // SAFETY: checked non-NULL and aligned at construction, and the constructor's
        // caller promised the memory is writable for as long as this lives.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// A checked, writable out-array of `len` items.
pub(crate) struct OutSlice<T> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T> OutSlice<T> {
    /// Checks a required out-array.
    ///
    /// # Safety
    /// `ptr` is NULL or valid for writing `len` items for as long as the returned value is
    /// used.
    pub(crate) unsafe fn new(ptr: *mut T, len: usize, name: &str) -> Result<Self, FfiError> {
        let ptr = NonNull::new(ptr).ok_or_else(|| FfiError::null(name))?;
        if !ptr.as_ptr().is_aligned() {
            return Err(misaligned(name));
        }
        if len
            .checked_mul(size_of::<T>().max(1))
            .is_none_or(|bytes| bytes > isize::MAX as usize)
        {
            return Err(FfiError::invalid(format!(
                "the length of `{name}` ({len}) is impossibly large"
            )));
        }
        Ok(Self { ptr, len })
    }

    /// Checks the out-array of a call that hands out between 1 and `len` items (a batch):
    /// `len` 0 is refused before the pointer is looked at.
    ///
    /// # Safety
    /// As [`new`](Self::new).
    pub(crate) unsafe fn for_batch(ptr: *mut T, len: usize, name: &str) -> Result<Self, FfiError> {
        if len == 0 {
            return Err(FfiError::invalid("capacity must be at least 1"));
        }
        // SAFETY: the caller's promise, passed on.
        unsafe { Self::new(ptr, len, name) }
    }

    /// Number of items the array holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Writes item `index` (which must be below `len`).
    pub(crate) fn write(&mut self, index: usize, value: T) {
        assert!(
            index < self.len,
            "out-array index {index} past its length {}",
            self.len
        );
        // SAFETY: `index < len`, and the constructor's caller promised `len` writable items.
        unsafe { self.ptr.as_ptr().add(index).write(value) }
    }
}

fn misaligned(name: &(impl std::fmt::Display + ?Sized)) -> FfiError {
    FfiError::invalid(format!("argument `{name}` is not aligned for its type"))
}

/// Borrows a required input pointer.
///
/// # Safety
/// `ptr` is NULL or points at a live `T` that nothing writes during `'a`.
pub(crate) unsafe fn borrow<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    if !ptr.is_aligned() {
        return Err(misaligned(name));
    }
    // SAFETY: non-NULL and aligned; the caller promised it points at a live T.
    Ok(unsafe { &*ptr })
}

/// Borrows `len` items at `ptr`. A length of 0 needs no pointer.
///
/// # Safety
/// When `len` is not 0, `ptr` is NULL or points at `len` live items that nothing writes
/// during `'a`.
pub(crate) unsafe fn slice<'a, T>(
    ptr: *const T,
    len: usize,
    // Formatted only on failure: building it per value would cost the hot path.
    name: &(impl std::fmt::Display + ?Sized),
) -> Result<&'a [T], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    if !ptr.is_aligned() {
        return Err(misaligned(name));
    }
    if len
        .checked_mul(size_of::<T>().max(1))
        .is_none_or(|bytes| bytes > isize::MAX as usize)
    {
        return Err(FfiError::invalid(format!(
            "the length of `{name}` ({len}) is impossibly large"
        )));
    }
    // SAFETY: non-NULL, aligned, and the size fits in isize; the caller promised `len` live
    // items.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a required NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or points at a NUL-terminated string that stays unchanged during `'a`.
pub(crate) unsafe fn c_str<'a>(
    ptr: *const c_char,
    name: &(impl std::fmt::Display + ?Sized),
) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL; the caller promised a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|error| {
        FfiError::new(
            lc_status::LC_ERR_INVALID_UTF8,
            format!(
                "argument `{name}` is not valid UTF-8 (at byte {})",
                error.valid_up_to()
            ),
        )
    })
}

/// Borrows `len` bytes of UTF-8 text at `ptr` (not NUL-terminated). A length of 0 needs no
/// pointer.
///
/// # Safety
/// As for [`slice`]: when `len` is not 0, `ptr` is NULL or points at `len` bytes that
/// nothing writes during `'a`.
pub(crate) unsafe fn text<'a>(
    ptr: *const u8,
    len: usize,
    // Formatted only on failure.
    name: &(impl std::fmt::Display + ?Sized),
) -> Result<&'a str, FfiError> {
    // SAFETY: the caller's promise is passed on unchanged.
    let bytes = unsafe { slice(ptr, len, name) }?;
    std::str::from_utf8(bytes).map_err(|error| {
        FfiError::new(
            lc_status::LC_ERR_INVALID_UTF8,
            format!(
                "`{name}` is not valid UTF-8 (at byte {})",
                error.valid_up_to()
            ),
        )
    })
}

/// Checks a count the caller passes against its documented limit, before anything is
/// read or allocated for it: more than `max` is `status` (`LC_ERR_OUT_OF_BOUNDS` or the
/// function's own limit status).
pub(crate) fn check_count(
    count: usize,
    max: usize,
    // Formatted only on failure.
    name: &(impl std::fmt::Display + ?Sized),
    status: lc_status,
) -> Result<(), FfiError> {
    if count > max {
        return Err(FfiError::new(
            status,
            format!("`{name}` is {count}; the limit is {max}"),
        ));
    }
    Ok(())
}

/// Checks the length of a name against `max` bytes: an empty or longer name is
/// `LC_ERR_INVALID_NAME` (the rule of every name the C ABI takes; topic and group names
/// pass their own `max` and have their characters checked by the core too).
pub(crate) fn check_name_len(
    value: &str,
    max: usize,
    // Formatted only on failure.
    name: &(impl std::fmt::Display + ?Sized),
) -> Result<(), FfiError> {
    let reason = if value.is_empty() {
        "is empty".to_string()
    } else if value.len() > max {
        format!("is {} bytes long; the limit is {max}", value.len())
    } else {
        return Ok(());
    };
    Err(FfiError::new(
        lc_status::LC_ERR_INVALID_NAME,
        format!("`{name}` {reason}"),
    ))
}

/// Borrows a required NUL-terminated UTF-8 name of a namespace, table, column, user or
/// role: 1 to `LC_MAX_NAME_LEN` bytes (`LC_ERR_INVALID_NAME` otherwise).
///
/// # Safety
/// As for [`c_str`].
pub(crate) unsafe fn name_str<'a>(
    ptr: *const c_char,
    name: &(impl std::fmt::Display + ?Sized),
) -> Result<&'a str, FfiError> {
    // SAFETY: the caller's promise is passed on unchanged.
    let value = unsafe { c_str(ptr, name) }?;
    check_name_len(value, LC_MAX_NAME_LEN, name)?;
    Ok(value)
}

/// Borrows an optional NUL-terminated UTF-8 string: NULL is `None`.
///
/// # Safety
/// As for [`c_str`].
pub(crate) unsafe fn optional_c_str<'a>(
    ptr: *const c_char,
    name: &(impl std::fmt::Display + ?Sized),
) -> Result<Option<&'a str>, FfiError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's promise is passed on unchanged.
    unsafe { c_str(ptr, name) }.map(Some)
}

/// A C struct that begins with `uint32_t struct_size` so it can grow in later versions.
///
/// # Safety
/// Implementors are `#[repr(C)]`, begin with a `u32` holding the size, and contain only
/// integers, floats, raw pointers, optional function pointers and structs of those, so any
/// bytes are a valid value.
pub(crate) unsafe trait SizedStruct: Copy {
    /// The size of the struct's first published version: the smallest a caller may pass.
    const MIN_SIZE: usize;

    /// The value of the leading `struct_size` field.
    fn struct_size_of(&self) -> usize {
        // SAFETY: every SizedStruct begins with its u32 struct_size (trait contract).
        unsafe { (self as *const Self).cast::<u32>().read() as usize }
    }
}

macro_rules! sized_structs {
    ($($ty:ty $(= since $first_new:ident)?),* $(,)?) => {$(
        // SAFETY: each of these is #[repr(C)] in types.rs, begins with `struct_size: u32`,
        // and holds only integers, floats, raw pointers, optional function pointers (any
        // bits are a valid `Option<fn>`: zero is None) and structs of those.
        unsafe impl SizedStruct for $ty {
            // A struct that grew accepts its first version's size: up to the first field
            // added later.
            const MIN_SIZE: usize = sized_structs!(@min $ty $(, $first_new)?);
        }
    )*};
    (@min $ty:ty) => { size_of::<$ty>() };
    (@min $ty:ty, $first_new:ident) => { std::mem::offset_of!($ty, $first_new) };
}

sized_structs!(
    lc_config = since topic_max_topics,
    lc_subscription_options,
    lc_subscription_info,
    lc_subscription_status,
    lc_connection_info,
    lc_notification_info,
    lc_publish_summary = since topic_messages,
    lc_snapshot_progress,
    lc_initial_load_report,
    lc_check_report,
    lc_shutdown_report,
    lc_stats = since topic_messages,
    lc_live_query_record,
    lc_failover_info,
    lc_topic_config,
    lc_topic_info,
    lc_topic_route_options,
    lc_topic_group_config = since dead_letter_topic,
    lc_topic_group_partition,
    lc_topic_group_stats = since nacks,
    lc_topic_batch_info,
    lc_topic_message,
    lc_topic_position,
    lc_topic_store,
    lc_topic_route_info,
);

/// Checks a caller's `struct_size` for an output: at least the struct's first published
/// size. A larger size than this library's is accepted (the caller was built against a
/// newer header whose struct grew): only this library's fields are written, never a byte
/// past them, so a size that claims more than the caller's buffer holds costs nothing.
fn checked_size<T: SizedStruct>(size: u32, name: &str) -> Result<usize, FfiError> {
    let size = size as usize;
    if size < T::MIN_SIZE {
        return Err(FfiError::new(
            lc_status::LC_ERR_STRUCT_SIZE,
            format!(
                "`{name}->struct_size` is {size}; this library accepts {} or more (set it to sizeof the struct)",
                T::MIN_SIZE
            ),
        ));
    }
    Ok(size)
}

/// A caller's `struct_size` for an input: one of its published sizes only. A size between
/// them would copy part of a field over its default (half a pointer, then dereferenced).
/// A larger one (a newer header) is refused too: its newer fields are settings this
/// library cannot honour, and checking that they are left at 0 would read bytes past this
/// library's struct on the strength of the caller's count alone.
fn published_size<T: SizedStruct>(size: u32, name: &str) -> Result<usize, FfiError> {
    let size = size as usize;
    if size == T::MIN_SIZE || size == size_of::<T>() {
        return Ok(size);
    }
    let sizes = if T::MIN_SIZE == size_of::<T>() {
        format!("{}", T::MIN_SIZE)
    } else {
        format!("{} (an older header) or {}", T::MIN_SIZE, size_of::<T>())
    };
    Err(FfiError::new(
        lc_status::LC_ERR_STRUCT_SIZE,
        format!(
            "`{name}->struct_size` is {size}; this library reads {sizes} (set it to sizeof the struct)"
        ),
    ))
}

/// Reads a sized input struct: the caller's `struct_size` bytes over `defaults`, so fields
/// a caller built against an older header does not know keep their defaults.
///
/// # Safety
/// `ptr` is NULL or points at a struct whose first `struct_size` bytes are readable.
pub(crate) unsafe fn read_sized<T: SizedStruct>(
    ptr: *const T,
    defaults: T,
    name: &str,
) -> Result<T, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    if !ptr.is_aligned() {
        return Err(misaligned(name));
    }
    // SAFETY: non-NULL and aligned; every SizedStruct begins with a u32 (its size), which
    // the caller promised is readable.
    let size = published_size::<T>(unsafe { ptr.cast::<u32>().read() }, name)?;
    let mut value = defaults;
    // SAFETY: `size` bytes are readable at `ptr` (the caller's promise) and fit in `value`
    // (published_size allows no more than size_of::<T>()); any bytes are a valid T
    // (SizedStruct).
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&mut value as *mut T).cast::<u8>(), size)
    };
    Ok(value)
}

/// A checked out-pointer to a sized struct: writes the fields that fit in the caller's
/// `struct_size` (all of this library's fields when the caller's struct is as large or
/// larger), leaves the caller's bytes beyond this library's struct untouched (fields of a
/// newer header that this library does not know), and sets `struct_size` to the bytes
/// written: the smaller of the caller's size and this library's.
pub(crate) struct SizedOut<T> {
    ptr: NonNull<T>,
    size: usize,
}

impl<T: SizedStruct> SizedOut<T> {
    /// Checks a required sized out-pointer and its `struct_size`.
    ///
    /// # Safety
    /// `ptr` is NULL or points at a struct whose first `struct_size` bytes are writable
    /// for as long as the returned value is used.
    pub(crate) unsafe fn new(ptr: *mut T, name: &str) -> Result<Self, FfiError> {
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { Self::checked_with(ptr, name, checked_size::<T>) }
    }

    /// Checks a non-NULL, aligned `ptr` and its `struct_size` with `check`.
    ///
    /// # Safety
    /// As for [`SizedOut::new`].
    unsafe fn checked_with(
        ptr: *mut T,
        name: &str,
        check: fn(u32, &str) -> Result<usize, FfiError>,
    ) -> Result<Self, FfiError> {
        let ptr = NonNull::new(ptr).ok_or_else(|| FfiError::null(name))?;
        if !ptr.as_ptr().is_aligned() {
            return Err(misaligned(name));
        }
        // SAFETY: non-NULL and aligned; the leading u32 is readable (caller's promise).
        let size = check(unsafe { ptr.as_ptr().cast::<u32>().read() }, name)?;
        Ok(Self { ptr, size })
    }

    /// As [`SizedOut::new`], for a struct the caller fills to pass back as an input (the
    /// `_init` functions): only its published sizes, which an input is read at. A newer
    /// header's larger size is refused here, as the call it prepares for would refuse it:
    /// brought down to this library's size, a newer field the host then set would be
    /// ignored without a word.
    ///
    /// # Safety
    /// As for [`SizedOut::new`].
    pub(crate) unsafe fn new_input(ptr: *mut T, name: &str) -> Result<Self, FfiError> {
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { Self::checked_with(ptr, name, published_size::<T>) }
    }

    /// As [`SizedOut::new`], but NULL means the caller does not want the report.
    ///
    /// # Safety
    /// As for [`SizedOut::new`].
    pub(crate) unsafe fn optional(ptr: *mut T, name: &str) -> Result<Option<Self>, FfiError> {
        if ptr.is_null() {
            return Ok(None);
        }
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { Self::new(ptr, name) }.map(Some)
    }

    /// Writes `value`: its first `min(struct_size, size_of::<T>())` bytes, nothing past
    /// them, and sets `struct_size` to that many.
    pub(crate) fn write(self, value: T) {
        let known = self.size.min(size_of::<T>());
        // SAFETY: `size` bytes at `ptr` are writable (constructor's promise); `known` is at
        // most `size` and at most size_of::<T>() (the bytes of `value`); the leading u32 is
        // within `known` (known >= MIN_SIZE >= 4).
        unsafe {
            let bytes = self.ptr.as_ptr().cast::<u8>();
            std::ptr::copy_nonoverlapping((&value as *const T).cast::<u8>(), bytes, known);
            self.ptr.as_ptr().cast::<u32>().write(known as u32);
        }
    }
}

/// Reads an array of sized input structs. The first element's `struct_size` is the stride
/// (the size of the struct in the header the caller was built with), and every element
/// must declare the same size.
///
/// # Safety
/// `ptr` is NULL (only when `count` is 0) or points at `count` structs of the size the
/// first one declares, all readable.
pub(crate) unsafe fn read_sized_array<T: SizedStruct>(
    ptr: *const T,
    count: usize,
    defaults: T,
    name: &str,
) -> Result<Vec<T>, FfiError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the caller promised the first element is readable (or ptr is NULL).
    let first = unsafe { read_sized(ptr, defaults, name) }?;
    let stride = first.struct_size_of();
    if count
        .checked_mul(stride)
        .is_none_or(|bytes| bytes > isize::MAX as usize)
    {
        return Err(FfiError::invalid(format!(
            "the length of `{name}` ({count}) is impossibly large"
        )));
    }
    let mut items = Vec::with_capacity(count.min(1 << 16));
    items.push(first);
    for index in 1..count {
        // SAFETY: `count` elements of `stride` bytes are readable (caller's promise) and
        // the total fits in isize (checked above); SizedStruct alignment holds for every
        // stride a valid header size produces (sizes are multiples of the alignment).
        let element = unsafe { ptr.cast::<u8>().add(index * stride).cast::<T>() };
        if !element.is_aligned() {
            return Err(misaligned(name));
        }
        // SAFETY: as above; the element's leading u32 is within its `stride` bytes.
        if unsafe { element.cast::<u32>().read() } as usize != stride {
            // Checked before reading the element, which reads as many bytes as it declares.
            return Err(FfiError::new(
                lc_status::LC_ERR_STRUCT_SIZE,
                format!(
                    "`{name}[{index}].struct_size` differs from `{name}[0].struct_size` ({stride}), which this library steps through the array by (an array of structs larger than this library's, from a newer header, cannot be read)"
                ),
            ));
        }
        // SAFETY: as above.
        let item = unsafe { read_sized(element, defaults, name) }?;
        items.push(item);
    }
    Ok(items)
}
