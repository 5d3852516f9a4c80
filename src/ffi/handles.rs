//! Generation-checked handles.
//!
//! C code never holds a Rust pointer. Every object it owns (a manager, a received
//! notification, a subscription result) lives in a table here, under a 64-bit handle: the
//! kind in the top 8 bits and a serial number, never reused, below. A lookup checks the kind
//! and finds the entry or not, so a zero handle, a handle of another kind, a freed handle
//! (use after free) and a handle freed twice are all reported as `LC_ERR_INVALID_HANDLE`
//! instead of touching freed memory.
//!
//! Each table is split into shards with their own lock, so threads that receive and free
//! notifications at a high rate do not all queue on one lock; a lookup holds a shard's read
//! lock only long enough to clone the entry's `Arc`. The shards are B-trees rather than
//! hash maps: a hash table's allocation is referenced from its middle, which valgrind
//! reports as "possibly lost" at exit for these static tables, hiding real leaks.

use std::collections::BTreeMap;

use crate::ffi::ptr::Out;
use crate::ffi::state::HandleKind;
use crate::ffi::status::{lc_status, FfiError, FfiResult};
use crate::sync::{read, write, Arc, AtomicU64, Ordering, RwLock};

/// A C handle type (`lc_manager`, `lc_notification`, ...): a copyable struct around the
/// handle's bits, tied once to its kind and to the table of the objects behind it (the
/// [`handle_kinds!`] list in `state.rs` writes every impl). Extern functions go through it
/// (`manager.get()`, `list.free()`), never through a table named by hand, so a handle can
/// only be looked up in its own table.
pub(crate) trait Handle: Copy {
    /// What the handle stands for.
    type Object: 'static;
    /// Its kind, in the handle's top bits.
    const KIND: HandleKind;
    /// The live objects of this kind.
    fn table() -> &'static HandleTable<Self::Object>;
    /// The handle's bits.
    fn bits(self) -> u64;
    /// A handle with these bits.
    fn with_bits(bits: u64) -> Self;

    /// Stores `object` and returns its new handle.
    fn insert(object: Self::Object) -> Self {
        Self::with_bits(Self::table().insert(object))
    }

    /// Stores `object` and returns its new handle with a reference to it (for a lookup
    /// that keeps one of its own, as `manager_lookup` does).
    fn insert_shared(object: Self::Object) -> (Self, Arc<Self::Object>) {
        let (bits, shared) = Self::table().insert_shared(object);
        (Self::with_bits(bits), shared)
    }

    /// The object behind the handle.
    fn get(self) -> Result<Arc<Self::Object>, FfiError> {
        Self::table().get(self.bits())
    }

    /// Takes the object out of its table: the handle is dead from now on.
    fn remove(self) -> Result<Arc<Self::Object>, FfiError> {
        Self::table().remove(self.bits())
    }

    /// The body of an extern `_free` function.
    fn free(self) -> FfiResult {
        self.remove()?;
        Ok(lc_status::LC_OK)
    }

    /// The body of an extern list `_count` function.
    fn write_count<U>(self, out: Out<usize>) -> FfiResult
    where
        Self::Object: std::ops::Deref<Target = [U]>,
    {
        out.write(self.get()?.len());
        Ok(lc_status::LC_OK)
    }
}

/// Declares the kinds of handle, once each: its number (kept in a handle's top 8 bits),
/// its C type, the object behind it and the static table holding those objects. From that
/// one list come the [`HandleKind`] enum, its names and number lookup, the tables, each
/// C type's [`Handle`] impl, and `live_handle_counts`.
macro_rules! handle_kinds {
    ($($kind:ident = $number:literal: $c_type:ident => $object:ty, $table:ident;)+) => {
        /// The kinds of handle. The number is stored in a handle's top 8 bits.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum HandleKind {
            $($kind = $number,)+
        }

        impl HandleKind {
            const ALL: [HandleKind; [$($number),+].len()] = [$(HandleKind::$kind),+];

            /// The C type of handles of this kind.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(HandleKind::$kind => stringify!($c_type),)+
                }
            }

            /// The kind in a handle's top bits, if any.
            pub(crate) fn from_bits(bits: u64) -> Option<HandleKind> {
                let number = bits >> $crate::ffi::handles::KIND_SHIFT;
                Self::ALL.into_iter().find(|kind| *kind as u64 == number)
            }
        }

        $(
            static $table: LazyLock<HandleTable<$object>> =
                LazyLock::new(|| HandleTable::new(<$c_type as Handle>::KIND));

            impl Handle for $c_type {
                type Object = $object;
                const KIND: HandleKind = HandleKind::$kind;
                fn table() -> &'static HandleTable<$object> {
                    &$table
                }
                fn bits(self) -> u64 {
                    self.id
                }
                fn with_bits(bits: u64) -> Self {
                    Self { id: bits }
                }
            }
        )+

        /// Live handles of each kind, in the order of the list.
        pub(crate) fn live_counts() -> [usize; [$($number),+].len()] {
            [$($table.len()),+]
        }
    };
}
pub(crate) use handle_kinds;

pub(crate) const KIND_SHIFT: u32 = 56;
const SHARDS: usize = 16;

/// Serial numbers of all handles of all kinds: 2^56 of them before any could repeat.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// The live objects of one kind, by handle.
pub(crate) struct HandleTable<T> {
    kind: HandleKind,
    shards: Vec<RwLock<BTreeMap<u64, Arc<T>>>>,
}

impl<T> HandleTable<T> {
    pub(crate) fn new(kind: HandleKind) -> Self {
        Self {
            kind,
            shards: (0..SHARDS).map(|_| RwLock::new(BTreeMap::new())).collect(),
        }
    }

    fn shard(&self, bits: u64) -> &RwLock<BTreeMap<u64, Arc<T>>> {
        &self.shards[(bits as usize) % SHARDS]
    }

    /// Stores `value` and returns its new handle.
    pub(crate) fn insert(&self, value: T) -> u64 {
        self.insert_shared(value).0
    }

    /// Stores `value` and returns its new handle and a reference to it.
    pub(crate) fn insert_shared(&self, value: T) -> (u64, Arc<T>) {
        let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
        let bits = ((self.kind as u64) << KIND_SHIFT) | (serial & ((1 << KIND_SHIFT) - 1));
        let shared = Arc::new(value);
        write(self.shard(bits)).insert(bits, Arc::clone(&shared));
        (bits, shared)
    }

    /// The object behind a handle.
    pub(crate) fn get(&self, bits: u64) -> Result<Arc<T>, FfiError> {
        self.check_kind(bits)?;
        read(self.shard(bits))
            .get(&bits)
            .cloned()
            .ok_or_else(|| self.stale(bits))
    }

    /// Takes the object out of the table: the handle is dead from now on. The object itself
    /// is dropped when the last call still using it returns.
    pub(crate) fn remove(&self, bits: u64) -> Result<Arc<T>, FfiError> {
        self.check_kind(bits)?;
        write(self.shard(bits))
            .remove(&bits)
            .ok_or_else(|| self.stale(bits))
    }

    fn check_kind(&self, bits: u64) -> Result<(), FfiError> {
        if bits == 0 {
            return Err(FfiError::new(
                lc_status::LC_ERR_INVALID_HANDLE,
                format!("the {} handle is zero (never set)", self.kind.name()),
            ));
        }
        match HandleKind::from_bits(bits) {
            Some(kind) if kind == self.kind => Ok(()),
            Some(kind) => Err(FfiError::new(
                lc_status::LC_ERR_INVALID_HANDLE,
                format!(
                    "an {} handle was passed where an {} handle is expected",
                    kind.name(),
                    self.kind.name()
                ),
            )),
            None => Err(FfiError::new(
                lc_status::LC_ERR_INVALID_HANDLE,
                format!("0x{bits:016x} is not an {} handle", self.kind.name()),
            )),
        }
    }

    fn stale(&self, bits: u64) -> FfiError {
        FfiError::new(
            lc_status::LC_ERR_INVALID_HANDLE,
            format!(
                "{} handle 0x{bits:016x} was already freed, or never issued",
                self.kind.name()
            ),
        )
    }

    /// Number of live objects (for tests that look for leaks).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| read(shard).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_wrong_kind_and_zero_handles_are_refused() {
        let table = HandleTable::new(HandleKind::Notification);
        let other = HandleTable::<u8>::new(HandleKind::Manager);
        let handle = table.insert(5u32);
        assert_eq!(*table.get(handle).unwrap(), 5);
        let foreign = other.insert(1);
        let refused = |result: Result<Arc<u32>, FfiError>| {
            assert_eq!(result.unwrap_err().status, lc_status::LC_ERR_INVALID_HANDLE)
        };
        refused(table.get(foreign));
        refused(table.get(0));
        refused(table.get(u64::MAX));
        assert_eq!(*table.remove(handle).unwrap(), 5);
        refused(table.get(handle));
        refused(table.remove(handle));
        // Serials are never reused: a new object never revives an old handle.
        let next = table.insert(6);
        assert_ne!(next, handle);
        refused(table.get(handle));
        assert_eq!(table.len(), 1);
    }
}
